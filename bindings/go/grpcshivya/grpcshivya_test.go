package grpcshivya

import (
	"context"
	"fmt"
	"math/rand"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	_ "google.golang.org/grpc/balancer/leastrequest"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"shivya.dev/go/shivya"
)

// backend is a real gRPC server (the health service) that serves `slots` calls at once,
// each taking `service`; more wait for a slot.
type backend struct {
	healthpb.UnimplementedHealthServer
	slots   chan struct{}
	service time.Duration
	srv     *grpc.Server
	addr    string
}

func (b *backend) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	select {
	case b.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	time.Sleep(b.service)
	<-b.slots
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func startBackends(t *testing.T, services []time.Duration) []*backend {
	t.Helper()
	var bs []*backend
	for _, s := range services {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		b := &backend{slots: make(chan struct{}, 4), service: s, srv: grpc.NewServer(), addr: l.Addr().String()}
		healthpb.RegisterHealthServer(b.srv, b)
		go b.srv.Serve(l)
		bs = append(bs, b)
	}
	return bs
}

type result struct {
	policy  string
	p50     time.Duration
	p99     time.Duration
	perAddr map[string]int
	errors  int
	// Share of the successful calls the slow server answered.
	slowShare float64
}

var seq int

// run sends an open-loop Poisson load (rate per client) through `clients` ClientConns
// using the load-balancing policy `lb` and measures latency from each call's scheduled
// start.
func run(t *testing.T, lb string, addrs []string, clients int, rate float64, d time.Duration) result {
	t.Helper()
	seq++
	var conns []*grpc.ClientConn
	for c := 0; c < clients; c++ {
		r := manual.NewBuilderWithScheme(fmt.Sprintf("shivyatest%d", seq*100+c))
		var as []resolver.Address
		for _, a := range addrs {
			as = append(as, resolver.Address{Addr: a})
		}
		r.InitialState(resolver.State{Addresses: as})
		name := lb
		if lb == "shivya" {
			name = fmt.Sprintf("shivya-%d", c)
		}
		conn, err := grpc.NewClient(r.Scheme()+":///backends",
			grpc.WithResolvers(r),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultServiceConfig(fmt.Sprintf(`{"loadBalancingConfig":[{%q:{}}]}`, name)))
		if err != nil {
			t.Fatal(err)
		}
		conn.Connect()
		conns = append(conns, conn)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// Warm up every connection (one call each, not measured).
	for _, c := range conns {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := healthpb.NewHealthClient(c).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true)); err != nil {
			t.Fatalf("%s: warm-up: %v", lb, err)
		}
		cancel()
	}
	var mu sync.Mutex
	var lat []time.Duration
	res := result{policy: lb, perAddr: map[string]int{}}
	var wg sync.WaitGroup
	rng := rand.New(rand.NewSource(7))
	start := time.Now()
	for c, conn := range conns {
		client := healthpb.NewHealthClient(conn)
		at := time.Duration(0)
		for {
			at += time.Duration(rng.ExpFloat64() / rate * float64(time.Second))
			if at >= d {
				break
			}
			wg.Add(1)
			go func(at time.Duration, c int) {
				defer wg.Done()
				time.Sleep(time.Until(start.Add(at)))
				scheduled := start.Add(at)
				var p peer.Peer
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				_, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
				took := time.Since(scheduled)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					res.errors++
					return
				}
				lat = append(lat, took)
				if p.Addr != nil {
					res.perAddr[p.Addr.String()]++
				}
			}(at, c)
		}
	}
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) == 0 {
		t.Fatalf("%s: no call succeeded", lb)
	}
	res.p50 = lat[len(lat)/2]
	res.p99 = lat[len(lat)*99/100]
	return res
}

// Two client processes (each its own Shivya node, meshed over UDP), three real gRPC
// servers with four slots each, the second five times slower; an open-loop load of
// 900 calls/s in all. Shivya's picker against grpc-go's round_robin, pick_first and
// least_request, one after the other, each on fresh servers.
func TestShivyaPickerAvoidsTheSlowServerAndBeatsRoundRobinAndPickFirst(t *testing.T) {
	if testing.Short() {
		t.Skip("a load test of several seconds")
	}
	services := []time.Duration{4 * time.Millisecond, 20 * time.Millisecond, 4 * time.Millisecond}
	clock := shivya.MonotonicClock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var nodes []*shivya.Node
	runs := make(chan error, 2)
	for c := 0; c < 2; c++ {
		cfg := shivya.Config{Listen: "127.0.0.1:0", Seed: uint64(500 + c), Vertices: 3}
		if c > 0 {
			a, _ := nodes[0].LocalAddr()
			cfg.Bootstrap = []string{a}
		}
		n, err := shivya.NewNode(cfg, clock())
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		nodes = append(nodes, n)
		go func() { runs <- n.Run(ctx, clock) }()
	}
	results := map[string]result{}
	var builders []*Builder
	for _, lb := range []string{"shivya", "round_robin", "pick_first", "least_request_experimental"} {
		bs := startBackends(t, services)
		var addrs []string
		for _, b := range bs {
			addrs = append(addrs, b.addr)
		}
		if lb == "shivya" {
			for c, n := range nodes {
				b, err := NewBuilder(fmt.Sprintf("shivya-%d", c), Options{Node: n, Backends: addrs, Now: clock})
				if err != nil {
					t.Fatal(err)
				}
				balancer.Register(b)
				builders = append(builders, b)
			}
		}
		r := run(t, lb, addrs, 2, 450, 4*time.Second)
		for _, b := range bs {
			b.srv.Stop()
		}
		slow := r.perAddr[addrs[1]]
		total := 0
		for _, k := range r.perAddr {
			total += k
		}
		r.slowShare = float64(slow) / float64(max(total, 1))
		t.Logf("%-28s p50 %8v  p99 %8v  to the slow server %5.1f%%  errors %d",
			lb, r.p50.Round(100*time.Microsecond), r.p99.Round(100*time.Microsecond), 100*r.slowShare, r.errors)
		results[lb] = r
	}
	cancel()
	for range nodes {
		<-runs
	}
	s, rr, pf := results["shivya"], results["round_robin"], results["pick_first"]
	if s.errors != 0 {
		t.Fatalf("shivya: %d failed calls", s.errors)
	}
	picks := uint64(0)
	for _, b := range builders {
		picks += b.Counters().Picks
	}
	if picks == 0 {
		t.Fatal("the Shivya picker was never used")
	}
	if !(s.slowShare < rr.slowShare/2) {
		t.Fatalf("shivya sent %.1f%% to the slow server, round_robin %.1f%%", 100*s.slowShare, 100*rr.slowShare)
	}
	if !(s.p99 < rr.p99 && s.p99 < pf.p99) {
		t.Fatalf("shivya p99 %v, round_robin %v, pick_first %v", s.p99, rr.p99, pf.p99)
	}
}
