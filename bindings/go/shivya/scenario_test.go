package shivya

import (
	"reflect"
	"runtime"
	"testing"
	"time"
)

// threeNodeScenario: three nodes on loopback discover each other, write, and settle to
// identical routes; then they are closed. Driven by the same loop as the main test.
func threeNodeScenario(t *testing.T, seed uint64) {
	nodes := makeNodes(t, 3, seed)
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	for i, n := range nodes {
		for v := 0; v < 3; v++ {
			if err := n.RecordQueueLen(uint32(v), float64(v+1)*(0.1*float64(i+1)+1.0/3)); err != nil {
				t.Fatal(err)
			}
		}
	}
	begin := time.Now()
	for {
		done := true
		for _, n := range nodes {
			if s, _ := n.Status(); s.Records != 3 || s.Peers < 2 {
				done = false
			}
		}
		if done {
			r0 := settle(t, nodes[0])
			if len(r0) > 0 && reflect.DeepEqual(settle(t, nodes[1]), r0) && reflect.DeepEqual(settle(t, nodes[2]), r0) {
				return
			}
		}
		if time.Since(begin) > 10*time.Second {
			t.Fatal("three-node scenario did not settle")
		}
		turn(t, nodes)
	}
}

func TestTheThreeNodeScenarioAThousandTimesKeepsRSSStable(t *testing.T) {
	for i := 0; i < 20; i++ {
		threeNodeScenario(t, uint64(10_000+3*i))
	}
	runtime.GC()
	before := rssKiB(t)
	start := time.Now()
	for i := 0; i < 1000; i++ {
		threeNodeScenario(t, uint64(20_000+3*i))
		if i%250 == 249 {
			runtime.GC()
			t.Logf("after %d scenarios: RSS %+d KiB", i+1, rssKiB(t)-before)
		}
	}
	runtime.GC()
	growth := rssKiB(t) - before
	t.Logf("1000 three-node scenarios in %v: RSS grew %d KiB", time.Since(start), growth)
	if growth > 8*1024 {
		t.Fatalf("RSS grew %d KiB over 1000 scenarios", growth)
	}
}
