//! The balancer on mesh nodes: what one balancer sends shows in every other balancer's
//! decision, and capacity signals agree wherever the records agree.

mod common;

use common::{NetConfig, Sim};
use shivya_core::balancer::{BalancerConfig, CapacitySignal, Layers, Outcome};
use shivya_core::mesh::{NodeConfig, WorkloadTopology};

fn config(i: usize, vertices: u32, shared: bool) -> NodeConfig {
    NodeConfig {
        seed: 500 + i as u64,
        topology: WorkloadTopology::complete(vertices).unwrap(),
        balancer: BalancerConfig {
            layers: Layers {
                shared,
                ..Layers::default()
            },
            ..BalancerConfig::default()
        },
        ..NodeConfig::default()
    }
}

#[test]
fn one_balancers_load_steers_every_other_balancers_picks() {
    for shared in [true, false] {
        let (n, backends) = (8, 4);
        let mut sim =
            Sim::new(n, 9, NetConfig::default(), |i| config(i, backends, shared)).unwrap();
        sim.run_until(3_000);
        // Balancer 0 holds 40 requests at backend 2; every balancer has answers from all
        // backends at the same latency.
        for _ in 0..40 {
            sim.nodes[0].request_started(2, 3_000).unwrap();
        }
        for i in 0..n {
            for b in 0..backends {
                sim.nodes[i].request_started(b, 3_000).unwrap();
                sim.nodes[i]
                    .request_finished(b, 10.0, Outcome::Ok, 3_001)
                    .unwrap();
            }
        }
        sim.run_until(6_000);
        let mut to2 = 0;
        for t in 0..1_000 {
            if sim.nodes[5].pick(6_000 + t / 10) == Some(2) {
                to2 += 1;
            }
        }
        if shared {
            assert!(
                to2 < 50,
                "{to2} of 1000 picks to the backend balancer 0 loads"
            );
        } else {
            assert!(to2 > 150, "without the records nothing is known: {to2}");
        }
    }
}

#[test]
fn capacity_signals_are_identical_wherever_the_records_are() {
    let (n, backends) = (12, 6);
    let mut sim = Sim::new(n, 13, NetConfig::default(), |i| config(i, backends, true)).unwrap();
    sim.run_until(3_000);
    // Every balancer loads backend 1 heavily (inexact thirds of requests over time do not
    // matter: the published value is a time average) and leaves backend 4 idle.
    for i in 0..n {
        for _ in 0..(10 + i) {
            sim.nodes[i].request_started(1, 3_000).unwrap();
        }
        for b in [0, 2, 3, 5] {
            sim.nodes[i].request_started(b, 3_000 + i as u64).unwrap();
        }
    }
    sim.run_until(10_000);
    let reference = sim.nodes[0].capacity_signals().to_vec();
    assert!(
        reference.contains(&CapacitySignal::Split { backend: 1 }),
        "{reference:?}"
    );
    assert!(
        reference.contains(&CapacitySignal::Cull { backend: 4 }),
        "{reference:?}"
    );
    let digest = sim.nodes[0].records().view_digest();
    for i in 1..n {
        assert_eq!(sim.nodes[i].capacity_signals(), &reference[..], "node {i}");
        assert_eq!(sim.nodes[i].records().view_digest(), digest, "node {i}");
    }
    // One more request somewhere: a new version, a new digest once the step publishes it.
    sim.nodes[3].request_started(0, 10_000).unwrap();
    sim.run_until(10_200);
    assert_ne!(sim.nodes[3].records().view_digest(), digest);
}

#[test]
fn reports_about_unknown_backends_or_bad_latencies_are_refused() {
    let mut sim = Sim::new(2, 3, NetConfig::default(), |i| config(i, 3, true)).unwrap();
    let node = &mut sim.nodes[0];
    assert!(node.request_started(3, 0).is_err());
    node.request_started(0, 0).unwrap();
    for bad in [f64::NAN, -1.0, f64::INFINITY] {
        let e = node.request_finished(0, bad, Outcome::Ok, 1).unwrap_err();
        assert!(e.to_string().contains("latency_ms"), "{e}");
    }
    assert_eq!(node.balancer().in_flight(), &[1, 0, 0]);
    let mut w = [0.0; 2];
    assert!(node.weights(&mut w).is_err());
    let bad_law = NodeConfig {
        balancer: BalancerConfig {
            law: Some("weight /".into()),
            ..BalancerConfig::default()
        },
        ..config(0, 3, true)
    };
    let e = bad_law.validate().unwrap_err();
    assert!(e.to_string().contains("weight law"), "{e}");
}

#[test]
fn a_record_full_of_backends_keeps_the_most_loaded_ones() {
    let backends = shivya_core::p2p::protocol::MAX_RECORD_QUEUE_ENTRIES as u32 + 12;
    let cfg = NodeConfig {
        topology: WorkloadTopology::new(
            backends,
            &(0..backends - 1).map(|v| (v, v + 1)).collect::<Vec<_>>(),
        )
        .unwrap(),
        ..config(0, 3, true)
    };
    let mut sim = Sim::new(1, 3, NetConfig::default(), |_| cfg.clone()).unwrap();
    // Backend v gets 1 + v % 7 requests: the loads 7, 6, … fill the 4 096 slots first.
    for v in 0..backends {
        for _ in 0..(1 + v % 7) {
            sim.nodes[0].request_started(v, 0).unwrap();
        }
    }
    sim.run_until(1_000);
    let own = sim.nodes[0].own_record().queue.clone();
    assert_eq!(
        own.len(),
        shivya_core::p2p::protocol::MAX_RECORD_QUEUE_ENTRIES
    );
    let kept_min = own.iter().map(|e| e.1).fold(f64::INFINITY, f64::min);
    for v in 0..backends {
        let load = f64::from(1 + v % 7);
        let kept = own.iter().any(|e| e.0 == v);
        assert!(
            kept || load <= kept_min,
            "backend {v} with load {load} left out"
        );
    }
    assert!(own.windows(2).all(|w| w[0].0 < w[1].0), "sorted by vertex");
    assert!(sim.nodes[0].status().counters.unpublished_backends > 0);
}
