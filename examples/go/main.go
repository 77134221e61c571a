// Two nodes in one Go process: discover each other, report load, print settled routes.
// Run from the repository root after `cargo build --release -p shivya-ffi`:
//
//	cd examples/go && go run .
package main

import (
	"fmt"
	"log"
	"time"

	"shivya.dev/go/shivya"
)

func main() {
	start := time.Now()
	now := func() uint64 { return uint64(time.Since(start).Milliseconds()) }

	a, err := shivya.NewNode(shivya.Config{Seed: 1, Vertices: 3}, now())
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	addr, _ := a.LocalAddr()
	b, err := shivya.NewNode(shivya.Config{Seed: 2, Vertices: 3, Bootstrap: []string{addr}}, now())
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	a.RecordQueueLen(0, 12)
	b.RecordQueueLen(2, 3)
	for time.Since(start) < 3*time.Second {
		wa, _ := a.NextTimeoutMs(now())
		wb, _ := b.NextTimeoutMs(now())
		time.Sleep(time.Duration(min(wa, wb, 5)) * time.Millisecond)
		a.Step(now())
		b.Step(now())
		if sa, _ := a.Status(); sa.Records == 2 {
			break
		}
	}
	routes, err := a.Settle()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("shivya", shivya.Version(), "routes:")
	for _, r := range routes {
		fmt.Printf("  %d -> %d at %.2f\n", r.Src, r.Dst, r.Rate)
	}
	if err := a.RecordQueueLen(0, -1); err != nil {
		fmt.Println("bad input is an error:", err)
	}
}
