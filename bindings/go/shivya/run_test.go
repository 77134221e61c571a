package shivya

import (
	"context"
	"errors"
	"os"
	"runtime"
	"testing"
	"time"
)

func openFds(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(entries)
}

// settleGoroutines waits (bounded) for goroutines that are ending to end.
func settleGoroutines(want int) int {
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return runtime.NumGoroutine()
}

func TestRunDrivesNodesUntilCancelledAndLeavesNothingBehind(t *testing.T) {
	goroutines, fds := runtime.NumGoroutine(), openFds(t)
	clock := MonotonicClock()
	a, err := NewNode(Config{Listen: "127.0.0.1:0", Seed: 71, Vertices: 3}, clock())
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := a.LocalAddr()
	b, err := NewNode(Config{Listen: "127.0.0.1:0", Seed: 72, Vertices: 3, Bootstrap: []string{addr}}, clock())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- a.Run(ctx, clock) }()
	go func() { done <- b.Run(ctx, clock) }()
	// The host only writes; Run does every Step. Both learn each other and b's write.
	if err := b.RecordQueueLen(1, 4.5); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		sa, _ := a.Status()
		sb, _ := b.Status()
		if sa.Peers == 1 && sb.Peers == 1 && sa.Records == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no discovery under Run: %+v %+v", sa, sb)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Cancelling ends both promptly, even while they wait on an idle socket.
	start := time.Now()
	cancel()
	for i := 0; i < 2; i++ {
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Run returned %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Run took %v to notice the cancel", took)
	}
	a.Close()
	b.Close()
	if g := settleGoroutines(goroutines); g > goroutines {
		t.Fatalf("%d goroutines left (had %d)", g, goroutines)
	}
	if f := openFds(t); f != fds {
		t.Fatalf("%d descriptors open (had %d)", f, fds)
	}
}

func TestRunRefusesBadInputAndEndsOnAClosedNode(t *testing.T) {
	clock := MonotonicClock()
	n, err := NewNode(Config{Listen: "127.0.0.1:0", Seed: 73, Vertices: 3}, clock())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Run(context.Background(), nil); err == nil {
		t.Fatal("Run with a nil clock accepted")
	}
	// Already cancelled: returns at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := n.Run(ctx, clock); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run on a cancelled context: %v", err)
	}
	// Closed while running: Run ends with ErrClosed at its next wakeup (<= its timer).
	done := make(chan error, 1)
	go func() { done <- n.Run(context.Background(), clock) }()
	time.Sleep(20 * time.Millisecond)
	n.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Run on a closed node: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not end after Close")
	}
}
