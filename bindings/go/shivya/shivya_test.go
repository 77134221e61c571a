package shivya

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

var start = time.Now()

func nowMs() uint64 { return uint64(time.Since(start).Milliseconds()) }

func makeNodes(t *testing.T, n int, seed uint64) []*Node {
	t.Helper()
	var nodes []*Node
	for i := 0; i < n; i++ {
		cfg := Config{Listen: "127.0.0.1:0", Seed: seed + uint64(i), Vertices: 3}
		if len(nodes) > 0 {
			a, err := nodes[0].LocalAddr()
			if err != nil {
				t.Fatal(err)
			}
			cfg.Bootstrap = []string{a}
		}
		node, err := NewNode(cfg, nowMs())
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, node)
	}
	return nodes
}

// turn waits for the earliest node timer (capped at 5 ms) and steps every node.
func turn(t *testing.T, nodes []*Node) {
	wait := uint64(5)
	for _, n := range nodes {
		w, err := n.NextTimeoutMs(nowMs())
		if err != nil {
			t.Fatal(err)
		}
		if w < wait {
			wait = w
		}
	}
	time.Sleep(time.Duration(wait) * time.Millisecond)
	now := nowMs()
	for _, n := range nodes {
		if err := n.Step(now); err != nil {
			t.Fatal(err)
		}
	}
}

func runUntil(t *testing.T, nodes []*Node, what string, done func() bool) time.Duration {
	t.Helper()
	begin := time.Now()
	for !done() {
		if time.Since(begin) > 10*time.Second {
			t.Fatalf("%s: not reached before the deadline", what)
		}
		turn(t, nodes)
	}
	return time.Since(begin)
}

func settle(t *testing.T, n *Node) []Route {
	r, err := n.Settle()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func sameRoutes(t *testing.T, nodes []*Node) bool {
	first := settle(t, nodes[0])
	if len(first) == 0 {
		return false
	}
	for _, n := range nodes[1:] {
		if !reflect.DeepEqual(settle(t, n), first) {
			return false
		}
	}
	return true
}

func TestThreeNodesDiscoverPartitionHealAndAgree(t *testing.T) {
	nodes := makeNodes(t, 3, 600)
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	d := runUntil(t, nodes, "discovery", func() bool {
		for _, n := range nodes {
			if s, _ := n.Status(); s.Peers < 2 {
				return false
			}
		}
		return true
	})
	t.Logf("discovery in %v", d)
	// Every node writes every vertex and one shared edge, with values inexact in binary:
	// a node summing records in another order would differ in the last bits.
	for i, n := range nodes {
		for v := 0; v < 3; v++ {
			if err := n.RecordQueueLen(uint32(v), float64(v+1)*(0.1*float64(i+1)+1.0/3)); err != nil {
				t.Fatal(err)
			}
		}
		if err := n.RecordOffload(0, 1, 0.1+float64(i)/3); err != nil {
			t.Fatal(err)
		}
	}
	runUntil(t, nodes, "first agreement", func() bool {
		for _, n := range nodes {
			if s, _ := n.Status(); s.Records != 3 {
				return false
			}
		}
		return sameRoutes(t, nodes)
	})
	addrs := make([]string, 3)
	for i, n := range nodes {
		addrs[i], _ = n.LocalAddr()
	}
	for _, p := range [][2]int{{0, 2}, {1, 2}, {2, 0}, {2, 1}} {
		if err := nodes[p[0]].Block(addrs[p[1]]); err != nil {
			t.Fatal(err)
		}
	}
	nodes[0].RecordQueueLen(1, 40.1)
	nodes[2].RecordQueueLen(0, 25.3)
	end := time.Now().Add(600 * time.Millisecond)
	for time.Now().Before(end) {
		turn(t, nodes)
	}
	if reflect.DeepEqual(settle(t, nodes[0]), settle(t, nodes[2])) {
		t.Fatal("sides agree while cut off")
	}
	for _, n := range nodes {
		for _, a := range addrs {
			n.Unblock(a)
		}
	}
	d = runUntil(t, nodes, "agreement after heal", func() bool { return sameRoutes(t, nodes) })
	t.Logf("converged %v after heal: %v", d, settle(t, nodes[0]))
}

func TestBadArgumentsReturnErrorsAndTheNodeKeepsWorking(t *testing.T) {
	n := makeNodes(t, 1, 650)[0]
	var e *Error
	err := n.RecordOffload(0, 1, math.NaN())
	if !errors.As(err, &e) || e.Status != InvalidArgument || !strings.Contains(e.Message, "rate") {
		t.Fatalf("NaN rate: %v", err)
	}
	err = n.RecordQueueLen(99, 1)
	if !errors.As(err, &e) || e.Status != InvalidArgument || !strings.Contains(e.Message, "vertex 99") {
		t.Fatalf("unknown vertex: %v", err)
	}
	if err := n.Block("nonsense"); err == nil {
		t.Fatal("bad address accepted")
	}
	if err := n.RecordQueueLen(0, 3); err != nil {
		t.Fatal(err)
	}
	if err := n.Step(nowMs()); err != nil {
		t.Fatal(err)
	}
	if len(settle(t, n)) == 0 {
		t.Fatal("no routes")
	}
	n.Close()
	if _, err := n.Settle(); err != ErrClosed {
		t.Fatalf("closed node: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := NewNode(Config{Listen: "not an address"}, 0); err == nil {
		t.Fatal("bad listen address accepted")
	}
}

func TestBowtieMatchesRustBitForBit(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "bowtie.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		NVertices    uint32      `json:"n_vertices"`
		Edges        [][2]uint32 `json:"edges"`
		Triangles    [][3]uint32 `json:"triangles"`
		Flow         []float64   `json:"flow"`
		ExpectedBits []string    `json:"expected_bits"`
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	r, err := NewReconciler(g.NVertices, g.Edges, g.Triangles)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out, rep, err := r.Reconcile(g.Flow)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range out {
		want, _ := strconv.ParseUint(g.ExpectedBits[i], 16, 64)
		if math.Float64bits(x) != want {
			t.Fatalf("edge %d: %016x, Rust gives %016x", i, math.Float64bits(x), want)
		}
	}
	if !rep.Converged {
		t.Fatal("not converged")
	}
	if _, _, err := r.Reconcile([]float64{1}); err == nil {
		t.Fatal("wrong length accepted")
	}
	if _, err := NewReconciler(3, [][2]uint32{{0, 0}}, nil); err == nil {
		t.Fatal("self-loop accepted")
	}
}

func rssKiB(t *testing.T) int {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc")
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			v, _ := strconv.Atoi(f[1])
			return v
		}
	}
	t.Skip("no VmRSS")
	return 0
}

func lightScenario(i int) error {
	n, err := NewNode(Config{Listen: "127.0.0.1:0", Seed: uint64(i + 1), Vertices: 3}, 0)
	if err != nil {
		return err
	}
	defer n.Close()
	if err := n.RecordQueueLen(0, 5); err != nil {
		return err
	}
	if err := n.RecordOffload(0, 1, 1); err != nil {
		return err
	}
	if err := n.Step(1); err != nil {
		return err
	}
	if r, err := n.Settle(); err != nil || len(r) == 0 {
		return fmt.Errorf("settle: %v %v", r, err)
	}
	if n.RecordQueueLen(9, 1) == nil {
		return fmt.Errorf("bad vertex accepted")
	}
	r, err := NewReconciler(3, [][2]uint32{{0, 1}, {1, 2}, {0, 2}}, [][3]uint32{{0, 1, 2}})
	if err != nil {
		return err
	}
	defer r.Close()
	_, _, err = r.Reconcile([]float64{1, 1, -1})
	return err
}

func TestAThousandScenariosKeepRSSStable(t *testing.T) {
	for i := 0; i < 50; i++ {
		if err := lightScenario(i); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	before := rssKiB(t)
	for i := 0; i < 1000; i++ {
		if err := lightScenario(i); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	growth := rssKiB(t) - before
	t.Logf("1000 scenarios: RSS grew %d KiB", growth)
	if growth > 8*1024 {
		t.Fatalf("RSS grew %d KiB over 1000 scenarios", growth)
	}
}

func TestTheBalancerSeesAnotherBalancersLoad(t *testing.T) {
	nodes := makeNodes(t, 3, 900)
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	runUntil(t, nodes, "discovery", func() bool {
		for _, n := range nodes {
			s, err := n.Status()
			if err != nil || s.Peers < 2 {
				return false
			}
		}
		return true
	})
	for i := 0; i < 40; i++ {
		if err := nodes[1].RequestStarted(2, nowMs()); err != nil {
			t.Fatal(err)
		}
	}
	for b := uint32(0); b < 3; b++ {
		if err := nodes[0].RequestStarted(b, nowMs()); err != nil {
			t.Fatal(err)
		}
		if err := nodes[0].RequestFinished(b, 10, OutcomeOK, nowMs()); err != nil {
			t.Fatal(err)
		}
	}
	picksOf2 := func() int {
		c := 0
		for k := 0; k < 200; k++ {
			b, err := nodes[0].Pick(nowMs())
			if err != nil || b > 2 {
				t.Fatalf("pick %d, %v", b, err)
			}
			if b == 2 {
				c++
			}
		}
		return c
	}
	before := picksOf2()
	runUntil(t, nodes, "picks avoid the loaded backend", func() bool { return picksOf2() <= 10 })
	if before <= 30 {
		t.Fatalf("%d picks of backend 2 before the records arrived", before)
	}
	w, err := nodes[0].Weights()
	if err != nil || len(w) != 3 || math.Abs(w[0]+w[1]+w[2]-1) > 1e-9 {
		t.Fatalf("weights %v, %v", w, err)
	}
	// Backend 2 carries nearly all the load: the merged records ask for capacity there.
	runUntil(t, nodes, "a split signal for backend 2", func() bool {
		sig, err := nodes[0].CapacitySignals()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sig {
			if s == (CapacitySignal{Backend: 2, Kind: SignalSplit}) {
				return true
			}
		}
		return false
	})
	runUntil(t, nodes, "one view", func() bool {
		a, _ := nodes[0].ViewDigest()
		b, _ := nodes[1].ViewDigest()
		c, _ := nodes[2].ViewDigest()
		return a == b && b == c
	})
	for _, bad := range []float64{math.NaN(), -1, math.Inf(1)} {
		err := nodes[0].RequestFinished(0, bad, OutcomeFailed, nowMs())
		var e *Error
		if !errors.As(err, &e) || e.Status != InvalidArgument {
			t.Fatalf("latency %v: %v", bad, err)
		}
	}
	if err := nodes[0].RequestFinished(0, 1, Outcome(9), nowMs()); err == nil {
		t.Fatal("outcome 9 accepted")
	}
	if err := nodes[0].RequestStarted(3, nowMs()); err == nil {
		t.Fatal("backend 3 of 3 accepted")
	}
	if _, err := NewNode(Config{WeightLaw: "weight / latency"}, nowMs()); err == nil ||
		!strings.Contains(err.Error(), "unknown name 'latency'") {
		t.Fatalf("bad law: %v", err)
	}
}

func TestASignedEncryptedPairAdmitsEachOtherAndRotatesKeys(t *testing.T) {
	var secrets, keys [][]byte
	for i := 0; i < 2; i++ {
		s, err := GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		k, err := PublicKeyOf(s)
		if err != nil {
			t.Fatal(err)
		}
		secrets, keys = append(secrets, s), append(keys, k)
	}
	k1 := KeyringKey{ID: 1, Key: []byte(strings.Repeat("\x11", 32)), Primary: true}
	var nodes []*Node
	for i := 0; i < 2; i++ {
		cfg := Config{Listen: "127.0.0.1:0", Seed: 970 + uint64(i), Vertices: 3,
			IdentitySecret: secrets[i], AdmitKeys: [][]byte{keys[1-i]}, Keyring: []KeyringKey{k1}}
		if len(nodes) > 0 {
			a, err := nodes[0].LocalAddr()
			if err != nil {
				t.Fatal(err)
			}
			cfg.Bootstrap = []string{a}
		}
		n, err := NewNode(cfg, nowMs())
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		nodes = append(nodes, n)
	}
	for i, n := range nodes {
		k, err := n.PublicKey()
		if err != nil || !reflect.DeepEqual(k, keys[i]) {
			t.Fatalf("node %d key %x, %v", i, k, err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(nodes[0].RecordQueueLen(0, 1.5))
	must(nodes[1].RecordQueueLen(1, 2.5))
	same := func() bool {
		a, _ := nodes[0].ViewDigest()
		b, _ := nodes[1].ViewDigest()
		s0, _ := nodes[0].Status()
		s1, _ := nodes[1].Status()
		return a == b && s0.Records == 2 && s1.Records == 2
	}
	runUntil(t, nodes, "one view", same)
	// Rotation while running: add key 2 everywhere, make it primary, retire key 1.
	k2 := []byte(strings.Repeat("\x22", 32))
	for _, n := range nodes {
		must(n.AddKeyringKey(2, k2))
	}
	for _, n := range nodes {
		must(n.SetPrimaryKey(2))
	}
	for _, n := range nodes {
		must(n.RemoveKeyringKey(1))
	}
	before, _ := nodes[1].Status()
	must(nodes[0].RecordQueueLen(2, 4.0))
	runUntil(t, nodes, "one view after the rotation", same)
	after, _ := nodes[1].Status()
	if after.Dropped != before.Dropped {
		t.Fatalf("datagrams dropped during the rotation: %d -> %d", before.Dropped, after.Dropped)
	}
	// Bad keys: each a clear error.
	var e *Error
	for name, err := range map[string]error{
		"short key":      nodes[0].AddKeyringKey(3, []byte("short")),
		"duplicate id":   nodes[0].AddKeyringKey(2, k2),
		"unknown id":     nodes[0].SetPrimaryKey(9),
		"remove primary": nodes[0].RemoveKeyringKey(2),
	} {
		if !errors.As(err, &e) || e.Status != InvalidArgument {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := PublicKeyOf([]byte("short")); !errors.As(err, &e) {
		t.Errorf("short secret: %v", err)
	}
	if _, err := NewNode(Config{AdmitKeys: keys}, nowMs()); !errors.As(err, &e) {
		t.Errorf("allowlist without identity: %v", err)
	}
	plain := makeNodes(t, 1, 990)[0]
	defer plain.Close()
	if _, err := plain.PublicKey(); !errors.As(err, &e) {
		t.Errorf("unsigned node has a key: %v", err)
	}
	if err := plain.AddKeyringKey(1, k2); !errors.As(err, &e) {
		t.Errorf("plain node took a keyring: %v", err)
	}
}
