// Package shivya embeds a Shivya mesh node in a Go program through the C ABI
// (include/shivya.h). Build libshivya first (cargo build --release -p shivya-ffi) and tell
// cgo where it is, e.g. statically:
//
//	CGO_LDFLAGS="$CARGO_TARGET_DIR/release/libshivya.a" go build
//
// or, with libshivya installed (cargo cinstall), CGO_LDFLAGS=-lshivya.
// scripts/test-go.sh does the former.
//
// A Node is driven by the host: call Step when its Fd is readable or when NextTimeoutMs
// has elapsed, or let Run do that on a goroutine of the host's until a context is done.
// The library itself starts no goroutine and reads no clock (MonotonicClock is a helper
// for the host). The grpcshivya package is a grpc-go balancer on top of a Node.
// Methods on one Node are serialised by a mutex, so a Node may be shared between
// goroutines.
package shivya

/*
#cgo CFLAGS: -I${SRCDIR}/../../../include
#cgo LDFLAGS: -lm -ldl -lpthread
#include <stdlib.h>
#include "shivya.h"
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"
)

// Status is a shivya_status code.
type Status int32

// The C status codes.
const (
	OK              Status = 0
	InvalidArgument Status = -1
	BufferTooShort  Status = -2
	IO              Status = -3
	Capacity        Status = -4
	Numeric         Status = -5
	Panic           Status = -6
	Internal        Status = -7
	Busy            Status = -8
)

func (s Status) String() string { return C.GoString(C.shivya_status_name(C.int32_t(s))) }

// Error is a failed call: the status code and the library's message.
type Error struct {
	Status  Status
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("shivya: %s: %s", e.Status, e.Message) }

// ErrClosed is returned by every method of a closed Node or Reconciler.
var ErrClosed = &Error{Status: InvalidArgument, Message: "closed"}

func check(s C.enum_shivya_status) error {
	if s == C.SHIVYA_OK {
		return nil
	}
	n := C.shivya_last_error_message(nil, 0)
	buf := make([]byte, int(n)+1)
	C.shivya_last_error_message((*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
	return &Error{Status: Status(s), Message: string(buf[:n])}
}

// Version is the library version.
func Version() string { return C.GoString(C.shivya_version()) }

// Config holds node settings. Zero values take the library defaults.
type Config struct {
	Listen         string       // UDP address, default "127.0.0.1:0"
	Bootstrap      []string     // peers to join through
	Seed           uint64       // seed of every random choice (node id derives from it)
	StepIntervalMs uint64       // period of the layer stack
	K              int          // Kademlia bucket size
	CGTolerance    float64      // reconciler tolerance
	Vertices       uint32       // workload graph vertices (default 4)
	Edges          [][2]uint32  // its edges; empty = the default (complete up to 64 vertices, ring with chords beyond)
	GradientOnly   bool         // settle keeps only the gradient part
	Incarnation    uint64       // versions start at Incarnation<<20; use wall-clock ms when restarting without state
	AuthKey        []byte       // shared mesh key (>= 16 bytes) for authenticated frames; nil = off
	WeightLaw      string       // the balancer's weight law; "" = the library's default
	IdentitySecret []byte       // Ed25519 secret (32 bytes, see GenerateIdentity): a signed mesh; nil = unsigned
	AdmitKeys      [][]byte     // public keys (32 bytes) admitted to a signed mesh; empty = any key
	Keyring        []KeyringKey // encryption keys (the first with Primary set encrypts); empty = off
}

// KeyringKey is one key of an encryption keyring.
type KeyringKey struct {
	ID      uint8
	Key     []byte // 32 bytes
	Primary bool
}

// withBytes passes b to f as a C pointer and length (NULL for an empty slice).
func withBytes(b []byte, f func(*C.uint8_t, C.size_t) C.enum_shivya_status) error {
	if len(b) == 0 {
		return check(f(nil, 0))
	}
	p := C.CBytes(b)
	defer C.free(p)
	return check(f((*C.uint8_t)(p), C.size_t(len(b))))
}

// GenerateIdentity returns a fresh Ed25519 secret key (32 bytes from the OS).
func GenerateIdentity() ([]byte, error) {
	out := make([]byte, C.SHIVYA_SECRET_KEY_LEN)
	err := check(C.shivya_identity_generate((*C.uint8_t)(unsafe.Pointer(&out[0])), C.size_t(len(out))))
	return out, err
}

// PublicKeyOf returns the public key (32 bytes) of a secret key.
func PublicKeyOf(secret []byte) ([]byte, error) {
	out := make([]byte, C.SHIVYA_PUBLIC_KEY_LEN)
	err := withBytes(secret, func(p *C.uint8_t, n C.size_t) C.enum_shivya_status {
		return C.shivya_identity_public_key(p, n, (*C.uint8_t)(unsafe.Pointer(&out[0])), C.size_t(len(out)))
	})
	return out, err
}

func withCString(s string, f func(*C.char) C.enum_shivya_status) error {
	cs := C.CString(s)
	defer C.free(unsafe.Pointer(cs))
	return check(f(cs))
}

func (c *Config) build() (*C.shivya_config, error) {
	var cfg *C.shivya_config
	if err := check(C.shivya_config_new(&cfg)); err != nil {
		return nil, err
	}
	fail := func(err error) (*C.shivya_config, error) { C.shivya_config_free(cfg); return nil, err }
	if c.Listen != "" {
		if err := withCString(c.Listen, func(s *C.char) C.enum_shivya_status { return C.shivya_config_set_listen(cfg, s) }); err != nil {
			return fail(err)
		}
	}
	for _, b := range c.Bootstrap {
		if err := withCString(b, func(s *C.char) C.enum_shivya_status { return C.shivya_config_add_bootstrap(cfg, s) }); err != nil {
			return fail(err)
		}
	}
	if c.Seed != 0 {
		if err := check(C.shivya_config_set_seed(cfg, C.uint64_t(c.Seed))); err != nil {
			return fail(err)
		}
	}
	if c.StepIntervalMs != 0 {
		if err := check(C.shivya_config_set_step_interval_ms(cfg, C.uint64_t(c.StepIntervalMs))); err != nil {
			return fail(err)
		}
	}
	if c.K != 0 {
		if err := check(C.shivya_config_set_k(cfg, C.size_t(c.K))); err != nil {
			return fail(err)
		}
	}
	if c.CGTolerance != 0 {
		if err := check(C.shivya_config_set_cg_tolerance(cfg, C.double(c.CGTolerance))); err != nil {
			return fail(err)
		}
	}
	if c.Vertices != 0 || len(c.Edges) > 0 {
		flat := make([]C.uint32_t, 0, 2*len(c.Edges))
		for _, e := range c.Edges {
			flat = append(flat, C.uint32_t(e[0]), C.uint32_t(e[1]))
		}
		var p *C.uint32_t
		if len(flat) > 0 {
			p = &flat[0]
		}
		if err := check(C.shivya_config_set_topology(cfg, C.uint32_t(c.Vertices), p, C.size_t(len(c.Edges)))); err != nil {
			return fail(err)
		}
	}
	if err := check(C.shivya_config_set_gradient_only(cfg, C.bool(c.GradientOnly))); err != nil {
		return fail(err)
	}
	if err := check(C.shivya_config_set_incarnation(cfg, C.uint64_t(c.Incarnation))); err != nil {
		return fail(err)
	}
	if c.WeightLaw != "" {
		if err := withCString(c.WeightLaw, func(s *C.char) C.enum_shivya_status { return C.shivya_config_set_weight_law(cfg, s) }); err != nil {
			return fail(err)
		}
	}
	if len(c.IdentitySecret) > 0 {
		if err := withBytes(c.IdentitySecret, func(p *C.uint8_t, n C.size_t) C.enum_shivya_status {
			return C.shivya_config_set_identity(cfg, p, n)
		}); err != nil {
			return fail(err)
		}
	}
	for _, k := range c.AdmitKeys {
		if err := withBytes(k, func(p *C.uint8_t, n C.size_t) C.enum_shivya_status {
			return C.shivya_config_admit_key(cfg, p, n)
		}); err != nil {
			return fail(err)
		}
	}
	if len(c.AdmitKeys) > 0 {
		// This node's own key is always admitted.
		own, err := PublicKeyOf(c.IdentitySecret)
		if err == nil {
			err = withBytes(own, func(p *C.uint8_t, n C.size_t) C.enum_shivya_status {
				return C.shivya_config_admit_key(cfg, p, n)
			})
		}
		if err != nil {
			return fail(err)
		}
	}
	for _, k := range c.Keyring {
		primary := C.int32_t(0)
		if k.Primary {
			primary = 1
		}
		if err := withBytes(k.Key, func(p *C.uint8_t, n C.size_t) C.enum_shivya_status {
			return C.shivya_config_add_keyring_key(cfg, C.uint8_t(k.ID), p, n, primary)
		}); err != nil {
			return fail(err)
		}
	}
	if len(c.AuthKey) > 0 {
		k := C.CBytes(c.AuthKey)
		err := check(C.shivya_config_set_auth_key(cfg, (*C.uint8_t)(k), C.size_t(len(c.AuthKey))))
		C.free(k)
		if err != nil {
			return fail(err)
		}
	}
	return cfg, nil
}

// Node is a mesh node on its own UDP socket.
type Node struct {
	mu  sync.Mutex
	ptr *C.shivya_node
}

// NewNode binds a node and starts joining at nowMs (the host's monotonic milliseconds).
func NewNode(cfg Config, nowMs uint64) (*Node, error) {
	c, err := cfg.build()
	if err != nil {
		return nil, err
	}
	defer C.shivya_config_free(c)
	var n *C.shivya_node
	if err := check(C.shivya_node_new(c, C.uint64_t(nowMs), &n)); err != nil {
		return nil, err
	}
	return &Node{ptr: n}, nil
}

func (n *Node) do(f func(p *C.shivya_node) error) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ptr == nil {
		return ErrClosed
	}
	return f(n.ptr)
}

// Close leaves the mesh (records withdrawn, peers told) and frees the node. Calling it
// again returns nil.
func (n *Node) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ptr == nil {
		return nil
	}
	err := check(C.shivya_leave(n.ptr))
	C.shivya_node_free(n.ptr)
	n.ptr = nil
	return err
}

// Step reads arrived datagrams, runs due timers and sends what is queued.
func (n *Node) Step(nowMs uint64) error {
	return n.do(func(p *C.shivya_node) error { return check(C.shivya_step(p, C.uint64_t(nowMs))) })
}

// Fd is the socket descriptor to poll for readability (-1 when closed).
func (n *Node) Fd() int {
	fd := -1
	_ = n.do(func(p *C.shivya_node) error { fd = int(C.shivya_fd(p)); return nil })
	return fd
}

// NextTimeoutMs is how long the host may wait before the next Step (0 = now).
func (n *Node) NextTimeoutMs(nowMs uint64) (uint64, error) {
	var t C.uint64_t
	err := n.do(func(p *C.shivya_node) error { return check(C.shivya_next_timeout_ms(p, C.uint64_t(nowMs), &t)) })
	return uint64(t), err
}

// RecordQueueLen records this node's queue length at a vertex.
func (n *Node) RecordQueueLen(vertex uint32, q float64) error {
	return n.do(func(p *C.shivya_node) error {
		return check(C.shivya_record_queue_len(p, C.uint32_t(vertex), C.double(q)))
	})
}

// RecordOffload records the rate at which this node moves work from src to dst.
func (n *Node) RecordOffload(src, dst uint32, rate float64) error {
	return n.do(func(p *C.shivya_node) error {
		return check(C.shivya_record_offload(p, C.uint32_t(src), C.uint32_t(dst), C.double(rate)))
	})
}

// Outcome is how a request ended.
type Outcome uint32

// The outcomes, as the C header numbers them.
const (
	OutcomeOK      Outcome = C.SHIVYA_OUTCOME_OK
	OutcomeFailed  Outcome = C.SHIVYA_OUTCOME_FAILED
	OutcomeRefused Outcome = C.SHIVYA_OUTCOME_REFUSED
)

// Pick returns the backend (a vertex) for the next request; report it with RequestStarted.
func (n *Node) Pick(nowMs uint64) (uint32, error) {
	var b C.uint32_t
	err := n.do(func(p *C.shivya_node) error { return check(C.shivya_pick(p, C.uint64_t(nowMs), &b)) })
	return uint32(b), err
}

// RequestStarted reports that a request went to backend at nowMs.
func (n *Node) RequestStarted(backend uint32, nowMs uint64) error {
	return n.do(func(p *C.shivya_node) error {
		return check(C.shivya_request_started(p, C.uint32_t(backend), C.uint64_t(nowMs)))
	})
}

// RequestFinished reports that a request to backend ended at nowMs after latencyMs.
func (n *Node) RequestFinished(backend uint32, latencyMs float64, outcome Outcome, nowMs uint64) error {
	return n.do(func(p *C.shivya_node) error {
		return check(C.shivya_request_finished(p, C.uint32_t(backend), C.double(latencyMs), C.uint32_t(outcome), C.uint64_t(nowMs)))
	})
}

// SetBackendWeight sets the configured weight of backend (the prior for its capacity).
func (n *Node) SetBackendWeight(backend uint32, weight float64) error {
	return n.do(func(p *C.shivya_node) error {
		return check(C.shivya_set_backend_weight(p, C.uint32_t(backend), C.double(weight)))
	})
}

// Weights returns the dispatch weights, one per backend, summing to 1.
func (n *Node) Weights() ([]float64, error) {
	var out []float64
	err := n.do(func(p *C.shivya_node) error {
		var need C.size_t
		s := C.shivya_weights(p, nil, 0, &need)
		if s != C.SHIVYA_OK && s != C.SHIVYA_ERR_BUFFER_TOO_SHORT {
			return check(s)
		}
		out = make([]float64, int(need))
		if need == 0 {
			return nil
		}
		var got C.size_t
		return check(C.shivya_weights(p, (*C.double)(unsafe.Pointer(&out[0])), need, &got))
	})
	return out, err
}

// Signal is what a capacity signal asks for.
type Signal uint32

// The signals, as the C header numbers them.
const (
	SignalSplit Signal = C.SHIVYA_SIGNAL_SPLIT // saturated: add capacity beside it
	SignalCull  Signal = C.SHIVYA_SIGNAL_CULL  // idle: it can be drained
)

// CapacitySignal is a capacity signal for one backend.
type CapacitySignal struct {
	Backend uint32
	Kind    Signal
}

// CapacitySignals returns the capacity signals of the merged records (identical on every
// node holding the same records).
func (n *Node) CapacitySignals() ([]CapacitySignal, error) {
	var out []CapacitySignal
	err := n.do(func(p *C.shivya_node) error {
		var need C.size_t
		s := C.shivya_capacity_signals(p, nil, 0, &need)
		if s != C.SHIVYA_OK && s != C.SHIVYA_ERR_BUFFER_TOO_SHORT {
			return check(s)
		}
		out = []CapacitySignal{}
		if need == 0 {
			return nil
		}
		buf := make([]C.shivya_capacity_signal, int(need))
		var got C.size_t
		if err := check(C.shivya_capacity_signals(p, &buf[0], need, &got)); err != nil {
			return err
		}
		for i := 0; i < int(got); i++ {
			out = append(out, CapacitySignal{Backend: uint32(buf[i].backend), Kind: Signal(buf[i].kind)})
		}
		return nil
	})
	return out, err
}

// ViewDigest is a fingerprint of the records held: equal on nodes holding the same records.
func (n *Node) ViewDigest() (uint64, error) {
	var d C.uint64_t
	err := n.do(func(p *C.shivya_node) error { return check(C.shivya_view_digest(p, &d)) })
	return uint64(d), err
}

// PublicKey returns the node's public key (signed meshes; an error when unsigned).
func (n *Node) PublicKey() ([]byte, error) {
	out := make([]byte, C.SHIVYA_PUBLIC_KEY_LEN)
	err := n.do(func(p *C.shivya_node) error {
		return check(C.shivya_node_public_key(p, (*C.uint8_t)(unsafe.Pointer(&out[0])), C.size_t(len(out))))
	})
	return out, err
}

// AddKeyringKey is key rotation's first step on a running encrypted node: accept key id
// (32 bytes) too. Do it on every node before any makes the key primary.
func (n *Node) AddKeyringKey(id uint8, key []byte) error {
	return n.do(func(p *C.shivya_node) error {
		return withBytes(key, func(k *C.uint8_t, l C.size_t) C.enum_shivya_status {
			return C.shivya_node_add_keyring_key(p, C.uint8_t(id), k, l)
		})
	})
}

// SetPrimaryKey is rotation's second step: encrypt with key id from now on.
func (n *Node) SetPrimaryKey(id uint8) error {
	return n.do(func(p *C.shivya_node) error { return check(C.shivya_node_set_primary_key(p, C.uint8_t(id))) })
}

// RemoveKeyringKey is rotation's last step: stop accepting key id (not the primary one).
func (n *Node) RemoveKeyringKey(id uint8) error {
	return n.do(func(p *C.shivya_node) error { return check(C.shivya_node_remove_keyring_key(p, C.uint8_t(id))) })
}

// Route is one settled route.
type Route struct {
	Src, Dst uint32
	Rate     float64
}

// Settle returns the settled routes.
func (n *Node) Settle() ([]Route, error) {
	var out []Route
	err := n.do(func(p *C.shivya_node) error {
		var need C.size_t
		s := C.shivya_settle(p, nil, 0, &need)
		if s != C.SHIVYA_OK && s != C.SHIVYA_ERR_BUFFER_TOO_SHORT {
			return check(s)
		}
		if need == 0 {
			out = []Route{}
			return nil
		}
		buf := make([]C.shivya_route, int(need))
		var got C.size_t
		if err := check(C.shivya_settle(p, &buf[0], need, &got)); err != nil {
			return err
		}
		out = make([]Route, int(got))
		for i := range out {
			out[i] = Route{Src: uint32(buf[i].src), Dst: uint32(buf[i].dst), Rate: float64(buf[i].rate)}
		}
		return nil
	})
	return out, err
}

// Snapshot is a node's status.
type Snapshot struct {
	ID                           [20]byte
	Peers, Records, OwnVersion   uint64
	LastResidual                 float64
	FCollective, FreeEnergy      float64
	Dividend                     float64
	FramesIn, FramesOut, Dropped uint64
}

// Status returns a snapshot.
func (n *Node) Status() (Snapshot, error) {
	var s C.shivya_snapshot
	err := n.do(func(p *C.shivya_node) error { return check(C.shivya_node_snapshot(p, &s)) })
	if err != nil {
		return Snapshot{}, err
	}
	var id [20]byte
	for i := range id {
		id[i] = byte(s.id[i])
	}
	return Snapshot{
		ID: id, Peers: uint64(s.peers), Records: uint64(s.records), OwnVersion: uint64(s.own_version),
		LastResidual: float64(s.last_residual), FCollective: float64(s.f_collective),
		FreeEnergy: float64(s.free_energy), Dividend: float64(s.dividend),
		FramesIn: uint64(s.frames_in), FramesOut: uint64(s.frames_out), Dropped: uint64(s.dropped),
	}, nil
}

// LocalAddr is the bound UDP address.
func (n *Node) LocalAddr() (string, error) {
	var addr string
	err := n.do(func(p *C.shivya_node) error {
		buf := make([]byte, C.SHIVYA_ADDR_LEN)
		var l C.size_t
		if err := check(C.shivya_local_addr(p, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &l)); err != nil {
			return err
		}
		addr = string(buf[:l])
		return nil
	})
	return addr, err
}

// Block drops all traffic to and from addr (for partition tests).
func (n *Node) Block(addr string) error {
	return n.do(func(p *C.shivya_node) error {
		return withCString(addr, func(s *C.char) C.enum_shivya_status { return C.shivya_block(p, s) })
	})
}

// Unblock lifts a Block.
func (n *Node) Unblock(addr string) error {
	return n.do(func(p *C.shivya_node) error {
		return withCString(addr, func(s *C.char) C.enum_shivya_status { return C.shivya_unblock(p, s) })
	})
}

// SolverReport describes a reconciliation's solve.
type SolverReport struct {
	Iterations uint64
	Residual   float64
	Converged  bool
}

// Reconciler is a standalone Hodge reconciler over a simplicial complex.
type Reconciler struct {
	mu  sync.Mutex
	ptr *C.shivya_complex
	n   int
}

// NewReconciler builds a complex of nVertices vertices, these edges and filled triangles.
func NewReconciler(nVertices uint32, edges [][2]uint32, triangles [][3]uint32) (*Reconciler, error) {
	e := make([]C.uint32_t, 0, 2*len(edges)+1)
	for _, x := range edges {
		e = append(e, C.uint32_t(x[0]), C.uint32_t(x[1]))
	}
	t := make([]C.uint32_t, 0, 3*len(triangles)+1)
	for _, x := range triangles {
		t = append(t, C.uint32_t(x[0]), C.uint32_t(x[1]), C.uint32_t(x[2]))
	}
	e = append(e, 0) // keeps &e[0] valid when there are no edges
	t = append(t, 0)
	var c *C.shivya_complex
	if err := check(C.shivya_complex_new(C.uint32_t(nVertices), &e[0], C.size_t(len(edges)), &t[0], C.size_t(len(triangles)), &c)); err != nil {
		return nil, err
	}
	return &Reconciler{ptr: c, n: int(C.shivya_complex_n_edges(c))}, nil
}

// Reconcile returns the curl-free part of flow (one value per edge).
func (r *Reconciler) Reconcile(flow []float64) ([]float64, SolverReport, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ptr == nil {
		return nil, SolverReport{}, ErrClosed
	}
	if len(flow) != r.n {
		return nil, SolverReport{}, &Error{Status: InvalidArgument, Message: fmt.Sprintf("flow has %d values, the complex has %d edges", len(flow), r.n)}
	}
	if r.n == 0 {
		return []float64{}, SolverReport{Converged: true}, nil
	}
	in := make([]C.double, r.n)
	for i, x := range flow {
		in[i] = C.double(x)
	}
	out := make([]C.double, r.n)
	var rep C.shivya_solver_report
	if err := check(C.shivya_reconcile(r.ptr, &in[0], &out[0], C.size_t(r.n), &rep)); err != nil {
		return nil, SolverReport{}, err
	}
	res := make([]float64, r.n)
	for i := range res {
		res[i] = float64(out[i])
	}
	return res, SolverReport{Iterations: uint64(rep.iterations), Residual: float64(rep.residual), Converged: bool(rep.converged)}, nil
}

// Close frees the reconciler; calling it again is fine.
func (r *Reconciler) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ptr != nil {
		C.shivya_complex_free(r.ptr)
		r.ptr = nil
	}
}
