// Package grpcshivya is a grpc-go load-balancing policy whose picker is Shivya's: every
// RPC goes where the node's Pick says, and its start, latency and outcome are reported
// back, so that every client process of a mesh balances on one shared view of the
// backends.
//
// One Shivya node per client process, driven by the host (Node.Run on a goroutine);
// the backends' addresses, in one order shared by every client of the mesh, are the
// node's vertices:
//
//	clock := shivya.MonotonicClock()
//	node, _ := shivya.NewNode(shivya.Config{Listen: ":7946", Vertices: uint32(len(backends)), Bootstrap: peers}, clock())
//	go node.Run(ctx, clock)
//	b, _ := grpcshivya.NewBuilder("shivya", grpcshivya.Options{Node: node, Backends: backends, Now: clock})
//	balancer.Register(b)
//	conn, _ := grpc.NewClient(target, grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"shivya":{}}]}`), ...)
//
// An address the resolver gives that is not in Backends is not used; a pick of a backend
// whose connection is not ready falls back to the ready ones in turn (counted).
package grpcshivya

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"shivya.dev/go/shivya"
)

// Options of a Shivya balancer.
type Options struct {
	// Node is this client process's Shivya node (its Vertices = len(Backends)).
	Node *shivya.Node
	// Backends are the backend addresses ("host:port", as the resolver gives them), in
	// vertex order: the same order on every client of the mesh.
	Backends []string
	// Now is the clock the node is driven with (milliseconds).
	Now func() uint64
}

// Counters of a builder's pickers.
type Counters struct {
	// Picks answered.
	Picks uint64
	// Picks of a backend whose connection was not ready, sent to a ready one instead.
	Fallbacks uint64
	// Reports the node refused (a closed node): the RPC went ahead.
	ReportErrors uint64
}

type shared struct {
	o                             Options
	index                         map[string]uint32
	picks, fallbacks, reportError atomic.Uint64
}

// Builder is a grpc-go balancer.Builder (register it with balancer.Register).
type Builder struct {
	balancer.Builder
	s *shared
}

// Counters of every picker this builder made.
func (b *Builder) Counters() Counters {
	return Counters{Picks: b.s.picks.Load(), Fallbacks: b.s.fallbacks.Load(), ReportErrors: b.s.reportError.Load()}
}

// NewBuilder makes a balancer named name over o.
func NewBuilder(name string, o Options) (*Builder, error) {
	if name == "" {
		return nil, errors.New("grpcshivya: empty balancer name")
	}
	if o.Node == nil || o.Now == nil {
		return nil, errors.New("grpcshivya: Options.Node and Options.Now are required")
	}
	w, err := o.Node.Weights()
	if err != nil {
		return nil, fmt.Errorf("grpcshivya: %w", err)
	}
	if len(o.Backends) == 0 || len(o.Backends) != len(w) {
		return nil, fmt.Errorf("grpcshivya: %d backends for a node with %d vertices", len(o.Backends), len(w))
	}
	s := &shared{o: o, index: make(map[string]uint32, len(o.Backends))}
	for i, a := range o.Backends {
		if _, dup := s.index[a]; dup {
			return nil, fmt.Errorf("grpcshivya: backend %q listed twice", a)
		}
		s.index[a] = uint32(i)
	}
	return &Builder{Builder: base.NewBalancerBuilder(name, s, base.Config{}), s: s}, nil
}

// Build makes a picker over the ready connections (base.PickerBuilder).
func (s *shared) Build(info base.PickerBuildInfo) balancer.Picker {
	p := &picker{s: s, byVertex: make([]balancer.SubConn, len(s.o.Backends))}
	for sc, sci := range info.ReadySCs {
		if v, ok := s.index[sci.Address.Addr]; ok {
			p.byVertex[v] = sc
			p.ready = append(p.ready, v)
		}
	}
	if len(p.ready) == 0 {
		return base.NewErrPicker(balancer.ErrNoSubConnAvailable)
	}
	return p
}

type picker struct {
	s        *shared
	byVertex []balancer.SubConn
	ready    []uint32
	next     atomic.Uint32
}

// outcome maps how an RPC ended to what the backend did: an answer (whatever the
// application's status), a failure, or a refusal before anything was received.
func outcome(err error, received bool) shivya.Outcome {
	if err == nil {
		return shivya.OutcomeOK
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted:
		if !received {
			return shivya.OutcomeRefused
		}
		return shivya.OutcomeFailed
	case codes.DeadlineExceeded, codes.Internal, codes.Unknown, codes.DataLoss:
		return shivya.OutcomeFailed
	default:
		return shivya.OutcomeOK
	}
}

func (p *picker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	s := p.s
	now := s.o.Now()
	v, err := s.o.Node.Pick(now)
	if err != nil || int(v) >= len(p.byVertex) || p.byVertex[v] == nil {
		v = p.ready[int(p.next.Add(1))%len(p.ready)]
		s.fallbacks.Add(1)
	}
	s.picks.Add(1)
	if err := s.o.Node.RequestStarted(v, now); err != nil {
		s.reportError.Add(1)
	}
	start := time.Now()
	return balancer.PickResult{
		SubConn: p.byVertex[v],
		Done: func(d balancer.DoneInfo) {
			latency := float64(time.Since(start).Microseconds()) / 1000
			if err := s.o.Node.RequestFinished(v, latency, outcome(d.Err, d.BytesReceived), s.o.Now()); err != nil {
				s.reportError.Add(1)
			}
		},
	}, nil
}
