// memberlist-harness: N HashiCorp memberlist members in one process on 127.0.0.1, with
// the library's default LAN configuration, measured the way shivya-bench measures a
// Shivya mesh: time to full membership, time for one update to reach every member (a user
// broadcast that every member re-broadcasts once on first receipt, as Serf does with
// events), idle bytes and packets per member per second, CPU per member, and the time
// until every member has dropped one killed without leaving. Prints one JSON object.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

// counting wraps the default transport: packets and bytes written, UDP and TCP.
type counting struct {
	*memberlist.NetTransport
	packets, bytes *atomic.Int64
}

func (c *counting) WriteTo(b []byte, addr string) (time.Time, error) {
	c.packets.Add(1)
	c.bytes.Add(int64(len(b)))
	return c.NetTransport.WriteTo(b, addr)
}

type countedConn struct {
	net.Conn
	bytes *atomic.Int64
}

func (c *countedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.bytes.Add(int64(n))
	return n, err
}

func (c *counting) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	c.packets.Add(1)
	c.bytes.Add(int64(len(b)))
	return c.NetTransport.WriteToAddress(b, a)
}

func (c *counting) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	conn, err := c.NetTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	c.packets.Add(1)
	return &countedConn{conn, c.bytes}, nil
}

func (c *counting) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	conn, err := c.NetTransport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	c.packets.Add(1)
	return &countedConn{conn, c.bytes}, nil
}

type broadcast []byte

func (b broadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b broadcast) Message() []byte                       { return b }
func (b broadcast) Finished()                             {}

// delegate carries user broadcasts: on first receipt a member records the time and
// queues the message for its own gossip.
type delegate struct {
	queue *memberlist.TransmitLimitedQueue
	mu    sync.Mutex
	got   map[string]time.Time
}

func (d *delegate) NodeMeta(int) []byte { return nil }
func (d *delegate) NotifyMsg(b []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	key := string(b)
	if _, seen := d.got[key]; seen {
		return
	}
	d.got[key] = time.Now()
	d.queue.QueueBroadcast(broadcast(append([]byte(nil), b...)))
}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}
func (d *delegate) LocalState(bool) []byte        { return nil }
func (d *delegate) MergeRemoteState([]byte, bool) {}
func (d *delegate) received(key string) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.got[key]
	return t, ok
}

type result struct {
	System                string  `json:"system"`
	N                     int     `json:"n"`
	FullMs                float64 `json:"full_ms"`
	UpdateMs              float64 `json:"update_ms"`
	IdleBytesPerMemberS   float64 `json:"idle_bytes_per_member_s"`
	IdlePacketsPerMemberS float64 `json:"idle_packets_per_member_s"`
	CPUPerMemberPct       float64 `json:"cpu_per_member_pct"`
	DropMs                float64 `json:"drop_ms"`
	GossipIntervalMs      float64 `json:"gossip_interval_ms"`
	ProbeIntervalMs       float64 `json:"probe_interval_ms"`
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func waitFor(what string, deadline time.Duration, done func() bool) (time.Duration, error) {
	start := time.Now()
	for !done() {
		if time.Since(start) > deadline {
			return 0, fmt.Errorf("%s: not within %v", what, deadline)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start), nil
}

func main() {
	n := flag.Int("n", 16, "members")
	settle := flag.Duration("settle", 2*time.Second, "pause after full membership, before the idle window")
	idle := flag.Duration("idle", 10*time.Second, "idle window")
	flag.Parse()
	log.SetOutput(io.Discard)

	var packets, bytes atomic.Int64
	members := make([]*memberlist.Memberlist, *n)
	delegates := make([]*delegate, *n)
	for i := 0; i < *n; i++ {
		cfg := memberlist.DefaultLANConfig()
		cfg.Name = fmt.Sprintf("m%d", i)
		cfg.BindAddr = "127.0.0.1"
		cfg.BindPort = 0
		cfg.AdvertiseAddr = "127.0.0.1"
		cfg.LogOutput = io.Discard
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: 0})
		if err != nil {
			fail(err)
		}
		cfg.Transport = &counting{nt, &packets, &bytes}
		cfg.AdvertisePort = nt.GetAutoBindPort()
		cfg.BindPort = nt.GetAutoBindPort()
		d := &delegate{got: map[string]time.Time{}}
		cfg.Delegate = d
		m, err := memberlist.Create(cfg)
		if err != nil {
			fail(err)
		}
		d.queue = &memberlist.TransmitLimitedQueue{NumNodes: m.NumMembers, RetransmitMult: cfg.RetransmitMult}
		members[i], delegates[i] = m, d
	}
	start := time.Now()
	seed := members[0].LocalNode().Address()
	for i := 1; i < *n; i++ {
		if _, err := members[i].Join([]string{seed}); err != nil {
			fail(err)
		}
	}
	if _, err := waitFor("full membership", 60*time.Second, func() bool {
		for _, m := range members {
			if m.NumMembers() != *n {
				return false
			}
		}
		return true
	}); err != nil {
		fail(err)
	}
	full := time.Since(start)

	// Idle: let joins settle, then count.
	time.Sleep(*settle)
	p0, b0, c0, t0 := packets.Load(), bytes.Load(), cpuSeconds(), time.Now()
	time.Sleep(*idle)
	secs := time.Since(t0).Seconds()
	idleP := float64(packets.Load()-p0) / secs / float64(*n)
	idleB := float64(bytes.Load()-b0) / secs / float64(*n)
	cpu := (cpuSeconds() - c0) / secs / float64(*n) * 100

	// One update from member 1.
	key := "update-1"
	sent := time.Now()
	delegates[1].NotifyMsg([]byte(key))
	update, err := waitFor("one update everywhere", 60*time.Second, func() bool {
		for i, d := range delegates {
			if i == 1 {
				continue
			}
			if _, ok := d.received(key); !ok {
				return false
			}
		}
		return true
	})
	if err != nil {
		fail(err)
	}
	_ = sent

	// Kill the last member without leaving.
	victim := members[*n-1]
	name := victim.LocalNode().Name
	_ = victim.Shutdown()
	drop, err := waitFor("killed member dropped", 120*time.Second, func() bool {
		for _, m := range members[:*n-1] {
			for _, node := range m.Members() {
				if node.Name == name {
					return false
				}
			}
		}
		return true
	})
	if err != nil {
		fail(err)
	}
	for _, m := range members[:*n-1] {
		_ = m.Shutdown()
	}
	cfg := memberlist.DefaultLANConfig()
	out, _ := json.Marshal(result{
		System: "memberlist", N: *n,
		FullMs:                float64(full.Milliseconds()),
		UpdateMs:              float64(update.Milliseconds()),
		IdleBytesPerMemberS:   idleB,
		IdlePacketsPerMemberS: idleP,
		CPUPerMemberPct:       cpu,
		DropMs:                float64(drop.Milliseconds()),
		GossipIntervalMs:      float64(cfg.GossipInterval.Milliseconds()),
		ProbeIntervalMs:       float64(cfg.ProbeInterval.Milliseconds()),
	})
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "memberlist-harness:", err)
	os.Exit(1)
}
