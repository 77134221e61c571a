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

criterion_group!(benches, wire, idle_step);
criterion_main!(benches);
