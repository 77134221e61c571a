//! Hot paths allocate nothing: VM eval, the Hodge projection with a workspace, the agent
//! update, and a steady-state ensemble step. Counted by a global allocator wrapper with a
//! per-thread counter (tests in this binary run on several threads).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = ALLOCS.with(|c| c.get());
    let r = f();
    (ALLOCS.with(|c| c.get()) - before, r)
}

use shivya_core::flux::{FluxConfig, GaussianModel, GibbsFluxAgent};
use shivya_core::hodge::{HodgeParts, SimplicialComplex};
use shivya_core::morphic::{BinOp, Expr, MorphicConfig, Program, UnOp};
use shivya_core::onsager::{AgentConfig, Coupling, EnsembleConfig, OnsagerCollectiveEnsemble};

#[test]
fn the_counter_sees_allocations() {
    let (n, v) = allocations(|| vec![1u8; 64]);
    assert!(n >= 1 && v.len() == 64);
}

#[test]
fn vm_eval_allocates_nothing() {
    let e = Expr::Binary(
        BinOp::Add,
        Box::new(Expr::Unary(UnOp::Tanh, Box::new(Expr::Input(0)))),
        Box::new(Expr::Binary(
            BinOp::Mul,
            Box::new(Expr::Const(2.5)),
            Box::new(Expr::Input(1)),
        )),
    );
    let p = Program::compile(&e).unwrap();
    let (n, r) = allocations(|| {
        let mut acc = 0.0;
        for i in 0..1000 {
            acc += p.eval(&[i as f64 * 0.01, 1.0]).unwrap();
        }
        acc
    });
    assert_eq!(n, 0);
    assert!(r.is_finite());
    // Errors are values without heap data too.
    let div = Program::compile(&Expr::Binary(
        BinOp::Div,
        Box::new(Expr::Const(1.0)),
        Box::new(Expr::Const(0.0)),
    ))
    .unwrap();
    let (n, r) = allocations(|| div.eval(&[]));
    assert_eq!(n, 0);
    assert!(r.is_err());
}

#[test]
fn repeated_hodge_calls_on_one_workspace_allocate_nothing() {
    let c = SimplicialComplex::new(
        5,
        &[(0, 1), (1, 2), (0, 2), (0, 3), (3, 4), (0, 4)],
        &[(0, 1, 2), (0, 3, 4)],
    )
    .unwrap();
    let mut ws = c.workspace();
    let mut out = vec![0.0; 6];
    let mut parts = HodgeParts::default();
    c.decompose_into(&[1.0; 6], &mut ws, &mut parts).unwrap();
    let (n, _) = allocations(|| {
        for k in 0..100 {
            let x = [k as f64, 1.0, -2.0, 0.5, 3.0, -1.0];
            c.project_curl_free_into(&x, &mut ws, &mut out).unwrap();
            c.decompose_into(&x, &mut ws, &mut parts).unwrap();
            c.project_gradient_into(&x, &mut ws, &mut out).unwrap();
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn agent_updates_allocate_nothing() {
    let mut a = GibbsFluxAgent::new(
        GaussianModel::isotropic(3, 3, 2.0, 0.5),
        FluxConfig::default(),
    )
    .unwrap();
    a.update(&[0.0, 0.0, 0.0]).unwrap();
    let (n, _) = allocations(|| {
        for k in 0..100 {
            a.update(&[k as f64 * 0.01, 1.0, -1.0]).unwrap();
            a.absorb(0.01).unwrap();
            let _ = a.free_energy();
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn steady_state_ensemble_steps_allocate_nothing() {
    let edges = [
        (0, 1, 1.0),
        (1, 2, 0.5),
        (0, 2, 0.8),
        (2, 3, 1.0),
        (3, 4, 1.0),
        (4, 5, 0.3),
        (5, 6, 1.0),
        (6, 0, 0.7),
        (3, 5, 0.4),
    ];
    let cfg = EnsembleConfig {
        agent: AgentConfig {
            morphic: MorphicConfig {
                novelty_threshold: 1e12,
                ..MorphicConfig::default()
            },
            ..AgentConfig::default()
        },
        ..EnsembleConfig::default()
    };
    let mut e =
        OnsagerCollectiveEnsemble::new(Coupling::from_edges(7, &edges).unwrap(), cfg).unwrap();
    let obs: Vec<f64> = (0..14).map(|i| (i as f64 * 0.37).sin()).collect();
    e.step(&obs).unwrap();
    let (n, _) = allocations(|| {
        for _ in 0..50 {
            e.step(&obs).unwrap();
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn idle_node_steps_allocate_nothing() {
    use shivya_core::mesh::{Node, NodeConfig};
    let cfg = NodeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..NodeConfig::default()
    };
    let mut node = Node::bind(cfg, 0).unwrap();
    node.step(0).unwrap();
    let due = node.next_timeout_ms(0);
    assert!(due > 1, "a timer is due {due} ms after the first step");
    // A wake-up with nothing to read and no timer due: the socket is polled, nothing runs.
    let (n, _) = allocations(|| {
        for _ in 0..100 {
            node.step(due - 1).unwrap();
        }
    });
    assert_eq!(n, 0);
    // The test can fail: a step with timers due does allocate (it builds frames).
    let (busy, _) = allocations(|| node.step(due + 1_000).unwrap());
    assert!(busy > 0);
}

#[test]
fn sending_what_a_gossiping_node_queued_allocates_nothing() {
    use shivya_core::mesh::sim::{NetConfig, Sim};
    use shivya_core::mesh::{NodeConfig, WorkloadTopology};
    // Eight nodes that know each other and hold each other's records, so every round
    // queues digests, deltas, rumours and beliefs.
    let mut sim = Sim::new(8, 3, NetConfig::default(), |i| NodeConfig {
        seed: 70 + i as u64,
        topology: WorkloadTopology::complete(4).unwrap(),
        ..NodeConfig::default()
    })
    .unwrap();
    sim.run_until(2_000);
    for i in 0..8 {
        sim.nodes[i]
            .record_queue_len(i as u32 % 4, 0.1 * (i + 1) as f64)
            .unwrap();
    }
    sim.run_until(3_000);
    let node = &mut sim.nodes[0];
    let mut buf = Vec::with_capacity(2048);
    let (mut now, mut sent, mut drains) = (3_000, 0, 0);
    for k in 0..40 {
        node.record_queue_len(1, 0.1 + 1e-3 * k as f64).unwrap();
        now += 50;
        node.handle_timeout(now);
        let (n, count) = allocations(|| {
            let mut count = 0;
            while node.poll_transmit(&mut buf).is_some() {
                count += 1;
            }
            count
        });
        drains += n;
        sent += count;
    }
    assert_eq!(
        drains, 0,
        "draining {sent} datagrams allocated {drains} times"
    );
    // The test can fail: the rounds really queued frames to send.
    assert!(sent > 40, "only {sent} datagrams were queued");
}
