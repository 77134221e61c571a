//! Criterion benches of the mesh: encoding and decoding one frame of each gossip kind
//! (the decode path is the one every untrusted datagram takes), and an idle
//! `Node::step` (a real socket with nothing to read and no timer due: the cost a host
//! pays for each wake-up).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shivya_core::mesh::{Node, NodeConfig};
use shivya_core::p2p::protocol::{RecordWire, MAX_DELTAS, MAX_DIGEST_ENTRIES, MAX_QUEUE_ENTRIES};
use shivya_core::p2p::{Body, Frame, NodeId};
use std::hint::black_box;

fn frames() -> Vec<(&'static str, Frame)> {
    let me = NodeId::from_seed(1);
    let entries: Vec<(NodeId, u64)> = (0..MAX_DIGEST_ENTRIES as u64)
        .map(|i| (NodeId::from_seed(100 + i), 1_000 + i))
        .collect();
    let mut sorted = entries;
    sorted.sort();
    let record = RecordWire {
        origin: NodeId::from_seed(7),
        version: 42,
        queue: (0..MAX_QUEUE_ENTRIES as u32)
            .map(|v| (v, 1.5 + v as f64))
            .collect(),
        offload: vec![(0, 1, 2.5), (1, 2, 0.5)],
        seal: None,
    };
    vec![
        ("ping", Frame::new(9, me, Body::Ping)),
        (
            "digest36",
            Frame::new(
                0,
                me,
                Body::Digest {
                    reply: false,
                    lo: NodeId::ZERO,
                    hi: sorted[sorted.len() - 1].0,
                    entries: sorted,
                },
            ),
        ),
        ("delta48", Frame::new(0, me, Body::Delta(record))),
        (
            "deltas38",
            Frame::new(
                0,
                me,
                Body::Deltas(
                    (0..MAX_DELTAS as u64)
                        .map(|i| RecordWire {
                            origin: NodeId::from_seed(500 + i),
                            version: i,
                            queue: Vec::new(),
                            offload: Vec::new(),
                            seal: None,
                        })
                        .collect(),
                ),
            ),
        ),
        (
            "belief2",
            Frame::new(
                0,
                me,
                Body::Belief {
                    step: 12,
                    free_energy: 3.25,
                    mean: vec![0.5, -1.25],
                },
            ),
        ),
    ]
}

fn wire(c: &mut Criterion) {
    let mut group = c.benchmark_group("wire");
    let mut buf = Vec::with_capacity(2048);
    for (name, frame) in frames() {
        let bytes = frame.encode().unwrap();
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| black_box(&frame).encode_into(&mut buf).unwrap())
        });
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| Frame::decode(black_box(&bytes)).unwrap())
        });
    }
    group.finish();
}

fn idle_step(c: &mut Criterion) {
    let cfg = NodeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..NodeConfig::default()
    };
    let mut node = Node::bind(cfg, 0).unwrap();
    node.step(0).unwrap();
    // A time at which no timer is due: just before the earliest one.
    let idle = node.next_timeout_ms(0).saturating_sub(1);
    c.bench_function("node/step_idle", |b| {
        b.iter(|| node.step(black_box(idle)).unwrap())
    });
}

/// The per-request decision: `pick` on a balancer over N backends with every estimate in
/// play (answers heard, the others' load from records), and the report pair around it.
fn pick(c: &mut Criterion) {
    use shivya_core::balancer::{Balancer, BalancerConfig, Outcome};
    let mut group = c.benchmark_group("balancer");
    for n in [3u32, 48, 512] {
        let edges: Vec<(u32, u32)> = (0..n.saturating_sub(1)).map(|v| (v, v + 1)).collect();
        let mut b = Balancer::new(BalancerConfig::default(), n, &edges, 7, 0).unwrap();
        let merged: Vec<f64> = (0..n).map(|v| 1.0 + (v % 7) as f64 / 3.0).collect();
        for t in 0..2_000u64 {
            let v = (t % u64::from(n)) as u32;
            b.started(v, t).unwrap();
            b.finished(v, 1.0 + (t % 13) as f64, Outcome::Ok, t)
                .unwrap();
        }
        b.refresh(&merged, 3, true, 2_000).unwrap();
        group.bench_function(format!("pick/{n}"), |bench| {
            let mut t = 2_000u64;
            bench.iter(|| {
                t += 1;
                black_box(b.pick(black_box(t)))
            })
        });
        group.bench_function(format!("pick_start_finish/{n}"), |bench| {
            let mut t = 2_000u64;
            bench.iter(|| {
                t += 1;
                let v = b.pick(t).unwrap_or(0);
                b.started(v, t).unwrap();
                b.finished(v, 3.0, Outcome::Ok, t).unwrap();
            })
        });
        group.bench_function(format!("refresh/{n}"), |bench| {
            let mut t = 2_000u64;
            bench.iter(|| {
                t += 1;
                b.refresh(black_box(&merged), 3, false, t).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, wire, idle_step, pick);
criterion_main!(benches);
