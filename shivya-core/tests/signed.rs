//! Signed meshes: records count only with their origin's signature, certificates only
//! with a proof of the version they name, LEAVEs only signed; allowlists keep other keys
//! out. Deterministic, on the in-memory network.

mod common;

use common::{addr_of, NetConfig, Sim};
use shivya_core::mesh::{Admission, NodeConfig, WorkloadTopology, DEAD};
use shivya_core::p2p::identity::{certificate_message, record_message};
use shivya_core::p2p::protocol::{entries_hash, RecordWire, Seal};
use shivya_core::p2p::{Body, Frame, Identity, NodeId};
use std::collections::BTreeSet;

fn identity(i: usize) -> Identity {
    Identity::from_secret(&[i as u8 + 1; 32])
}

fn config(i: usize, vertices: u32) -> NodeConfig {
    NodeConfig {
        seed: 3000 + i as u64,
        topology: WorkloadTopology::complete(vertices).unwrap(),
        identity: Some(identity(i)),
        ..NodeConfig::default()
    }
}

fn signed_mesh(n: usize, seed: u64) -> Sim {
    let mut sim = Sim::new(n, seed, NetConfig::default(), |i| config(i, 3)).unwrap();
    sim.run_until(3_000);
    for i in 0..n {
        sim.nodes[i].record_queue_len(1, 1.0).unwrap();
    }
    sim.run_until(5_000);
    sim
}

/// Every node holds the same records and settles to the same bits.
fn assert_one_view(sim: &mut Sim, nodes: &[usize]) {
    let view = |sim: &Sim, i: usize| -> Vec<(NodeId, u64)> {
        sim.nodes[i]
            .records()
            .iter()
            .map(|r| (r.origin, r.version))
            .collect()
    };
    let reference = view(sim, nodes[0]);
    let flow = sim.flow_bits(nodes[0]).unwrap();
    for &i in &nodes[1..] {
        assert_eq!(view(sim, i), reference, "node {i} holds other records");
        assert_eq!(
            sim.flow_bits(i).unwrap(),
            flow,
            "node {i} settled otherwise"
        );
    }
}

fn deliver(sim: &mut Sim, to: usize, sender: NodeId, body: Body) {
    let bytes = Frame::new(0, sender, body).encode().unwrap();
    let now = sim.now;
    sim.nodes[to].handle_datagram(addr_of(200), &bytes, now);
}

#[test]
fn ids_are_certified_by_keys_and_every_held_record_is_signed() {
    let n = 8;
    let mut sim = signed_mesh(n, 71);
    for i in 0..n {
        assert_eq!(sim.nodes[i].id(), identity(i).node_id());
        assert_eq!(sim.nodes[i].records().len(), n);
        for r in sim.nodes[i].records().iter() {
            assert!(
                matches!(r.seal.as_deref(), Some(Seal::Signed { key, .. }) if key.node_id() == r.origin),
                "node {i} holds an unsigned record of {:?}",
                r.origin
            );
        }
        assert_eq!(
            sim.nodes[i].settlement().unwrap().queue,
            vec![0.0, n as f64, 0.0]
        );
    }
    assert_one_view(&mut sim, &(0..n).collect::<Vec<_>>());
    // A signed node's id is the one its key certifies: another id is refused.
    let mut bad = config(0, 3);
    bad.id = Some(NodeId::from_seed(1));
    assert!(bad.validate().is_err());
}

#[test]
fn a_members_forgery_of_another_origin_is_dropped_at_every_version() {
    let n = 6;
    let mut sim = signed_mesh(n, 72);
    let victim = sim.nodes[2].id();
    let forger = identity(5);
    let before: Vec<Vec<f64>> = (0..n)
        .map(|i| sim.nodes[i].settlement().unwrap().queue.clone())
        .collect();
    for version in [
        3,
        1 << 40,
        DEAD - 2,
        DEAD - 1,
        DEAD | 5,
        u64::MAX - 1,
        u64::MAX,
    ] {
        let dead = version & DEAD != 0;
        let mut r = RecordWire {
            origin: victim,
            version,
            queue: if dead { vec![] } else { vec![(0, 1e6)] },
            offload: vec![],
            seal: None,
        };
        // Unsigned: refused outright.
        deliver(&mut sim, 4, forger.node_id(), Body::Delta(r.clone()));
        // Signed by the member's own key, which does not certify the victim's id.
        let message = record_message(&victim, version & !DEAD, &entries_hash(&r));
        r.seal = Some(Box::new(if dead {
            Seal::Certified {
                key: forger.public_key(),
                sig: forger.sign(&message),
                entries_hash: entries_hash(&r),
                issuer: forger.public_key(),
                issuer_sig: forger.sign(&certificate_message(&victim, version)),
            }
        } else {
            Seal::Signed {
                key: forger.public_key(),
                sig: forger.sign(&message),
            }
        }));
        deliver(&mut sim, 4, forger.node_id(), Body::Delta(r.clone()));
        // The victim's real key with a signature over other bytes (a stolen signature
        // of an earlier version, replayed under a new version).
        let real = sim.nodes[2].own_record().clone();
        if let (Some(Seal::Signed { key, sig }), false) = (real.seal.as_deref(), dead) {
            r.seal = Some(Box::new(Seal::Signed {
                key: *key,
                sig: *sig,
            }));
            deliver(&mut sim, 4, forger.node_id(), Body::Delta(r.clone()));
        }
        // A certificate naming a version the victim never signed, proven with a real
        // signature of another version.
        if let (Some(Seal::Signed { key, sig }), true) = (real.seal.as_deref(), dead) {
            r.seal = Some(Box::new(Seal::Certified {
                key: *key,
                sig: *sig,
                entries_hash: entries_hash(&real),
                issuer: forger.public_key(),
                issuer_sig: forger.sign(&certificate_message(&victim, version)),
            }));
            deliver(&mut sim, 4, forger.node_id(), Body::Delta(r));
        }
    }
    let d = sim.nodes[4].status().counters.dropped;
    assert_eq!(d.unsigned, 7, "{d:?}");
    assert_eq!(d.bad_signature, 7 + 3 + 4, "{d:?}");
    let now = sim.now;
    sim.run_until(now + 2_000);
    // Nothing forged is held anywhere, the victim never had to move, and its next write
    // reaches everyone.
    sim.nodes[2].record_queue_len(2, 7.0).unwrap();
    sim.run_until(now + 4_000);
    for (i, queue) in before.iter().enumerate() {
        assert!(
            sim.nodes[i].records().version(&victim) < 1 << 40,
            "node {i}"
        );
        let mut want = queue.clone();
        want[2] += 7.0;
        assert_eq!(sim.nodes[i].settlement().unwrap().queue, want, "node {i}");
    }
    assert_eq!(sim.nodes[2].id(), victim);
    assert_eq!(sim.nodes[2].status().counters.identity_rotations, 0);
    assert_one_view(&mut sim, &(0..n).collect::<Vec<_>>());
}

#[test]
fn a_crashed_signed_node_is_certified_dead_everywhere_and_a_false_certificate_is_refuted() {
    let n = 8;
    let mut sim = signed_mesh(n, 73);
    sim.nodes[3].record_queue_len(0, 50.0).unwrap();
    let now = sim.now;
    sim.run_until(now + 2_000);
    let live_record = sim.nodes[3].own_record().clone();
    // A member's certificate for the version node 3 really holds is a valid suspicion:
    // accepted, then refuted by node 3 writing past it.
    let issuer = identity(1);
    let Some(Seal::Signed { key, sig }) = live_record.seal.as_deref() else {
        panic!("own record unsigned");
    };
    let version = live_record.version | DEAD;
    let cert = RecordWire {
        origin: live_record.origin,
        version,
        queue: vec![],
        offload: vec![],
        seal: Some(Box::new(Seal::Certified {
            key: *key,
            sig: *sig,
            entries_hash: entries_hash(&live_record),
            issuer: issuer.public_key(),
            issuer_sig: issuer.sign(&certificate_message(&live_record.origin, version)),
        })),
    };
    deliver(&mut sim, 0, issuer.node_id(), Body::Delta(cert));
    assert_eq!(
        sim.nodes[0].settlement().unwrap().queue[0],
        0.0,
        "certificate applied"
    );
    let now = sim.now;
    sim.run_until(now + 1_000);
    for i in 0..n {
        let r = sim.nodes[i].records().get(&live_record.origin).unwrap();
        assert!(
            r.version > live_record.version && r.version & DEAD == 0,
            "node {i}"
        );
        assert_eq!(
            sim.nodes[i].settlement().unwrap().queue[0],
            50.0,
            "node {i}"
        );
    }
    // Now node 3 crashes: some node certifies it, with a certificate every node verifies.
    sim.alive[3] = false;
    let crash = sim.now;
    let live: Vec<usize> = (0..n).filter(|&i| i != 3).collect();
    let mut gone = None;
    while sim.now < crash + 10_000 {
        let t = sim.now + 50;
        sim.run_until(t);
        if live
            .iter()
            .all(|&i| sim.nodes[i].settlement().unwrap().queue[0] == 0.0)
        {
            gone = Some(sim.now - crash);
            break;
        }
    }
    let took = gone.expect("the crashed signed node never stopped counting");
    println!(
        "crashed signed node withdrawn on all {} live nodes after {took} ms",
        live.len()
    );
    assert!(took <= 5_000, "took {took} ms");
    for &i in &live {
        let r = sim.nodes[i].records().get(&live_record.origin).unwrap();
        assert!(matches!(r.seal.as_deref(), Some(Seal::Certified { .. })));
        assert_eq!(
            sim.nodes[i].status().counters.dropped.bad_signature,
            0,
            "node {i}"
        );
    }
    assert_one_view(&mut sim, &live);
}

#[test]
fn leaves_must_be_signed_and_cannot_be_replayed() {
    let n = 5;
    let mut sim = signed_mesh(n, 74);
    let leaver = sim.nodes[4].id();
    // An unsigned LEAVE, and one signed by another key, from the leaver's own address.
    let other = identity(1);
    let signed_by = |who: &Identity, version: u64| Body::SignedLeave {
        version,
        key: who.public_key(),
        sig: who.sign(&shivya_core::p2p::identity::leave_message(&leaver, version)),
    };
    let now = sim.now;
    for body in [Body::Leave, signed_by(&other, u64::from(u32::MAX))] {
        let bytes = Frame::new(0, leaver, body).encode().unwrap();
        sim.nodes[0].handle_datagram(addr_of(4), &bytes, now);
    }
    // A LEAVE really signed by the leaver, but naming a version older than its record.
    let old = sim.nodes[4].own_record().version - 1;
    let bytes = Frame::new(0, leaver, signed_by(&identity(4), old))
        .encode()
        .unwrap();
    sim.nodes[0].handle_datagram(addr_of(4), &bytes, now);
    let d = sim.nodes[0].status().counters.dropped;
    assert_eq!(
        (d.unsigned, d.bad_signature, d.bad_leave),
        (1, 1, 1),
        "{d:?}"
    );
    assert!(sim.nodes[0].kademlia().table().get(&leaver).is_some());
    // The real leave: its signed record and signed LEAVE remove it everywhere.
    sim.nodes[4].leave();
    sim.run_until(now + 2_000);
    for i in 0..4 {
        assert!(
            sim.nodes[i].kademlia().table().get(&leaver).is_none(),
            "node {i}"
        );
        assert_eq!(sim.nodes[i].settlement().unwrap().queue[1], 4.0, "node {i}");
    }
}

#[test]
fn an_allowlist_keeps_other_keys_out() {
    let n = 6;
    let listed: BTreeSet<_> = (0..5).map(|i| identity(i).public_key()).collect();
    let mut everyone = listed.clone();
    everyone.insert(identity(5).public_key());
    let mut sim = Sim::new(n, 75, NetConfig::default(), |i| NodeConfig {
        // Node 5 lists everyone, the others only 0..5: node 5 is the outsider.
        admission: Admission::Keys(if i == 5 {
            everyone.clone()
        } else {
            listed.clone()
        }),
        ..config(i, 3)
    })
    .unwrap();
    sim.run_until(3_000);
    for i in 0..n {
        sim.nodes[i].record_queue_len(1, 1.0).unwrap();
    }
    sim.run_until(6_000);
    let outsider = sim.nodes[5].id();
    for i in 0..5 {
        assert!(sim.nodes[i].records().get(&outsider).is_none(), "node {i}");
        assert_eq!(sim.nodes[i].settlement().unwrap().queue[1], 5.0, "node {i}");
        assert!(sim.nodes[i].kademlia().table().get(&outsider).is_none());
    }
    let refused: u64 = (0..5)
        .map(|i| sim.nodes[i].status().counters.dropped.not_admitted)
        .sum();
    assert!(refused > 0);
    assert_one_view(&mut sim, &(0..5).collect::<Vec<_>>());
    // An allowlist must hold the node's own key, and needs an identity.
    let mut c = config(0, 3);
    c.admission = Admission::Keys(BTreeSet::from([identity(1).public_key()]));
    assert!(c.validate().is_err());
    c.identity = None;
    assert!(c.validate().is_err());
}

#[test]
fn signed_records_fit_one_datagram_at_their_limits() {
    use shivya_core::p2p::protocol::{MAX_FRAME, MAX_QUEUE_ENTRIES, MAX_SIGNED_OFFLOAD_ENTRIES};
    let vertices = 64;
    for key in [
        None,
        Some(shivya_core::mesh::MeshKey::new(&[9; 32]).unwrap()),
    ] {
        let keyed = key.is_some();
        let mut node = shivya_core::mesh::NodeState::new(
            NodeConfig {
                topology: WorkloadTopology::complete(vertices).unwrap(),
                auth_key: key,
                ..config(0, 3)
            },
            0,
        )
        .unwrap();
        for v in 0..MAX_QUEUE_ENTRIES as u32 {
            node.record_queue_len(v, 1.0 + f64::from(v)).unwrap();
        }
        let mut written = 0;
        for dst in 1..vertices {
            if node.record_offload(0, dst, 1.0).is_err() {
                break;
            }
            written += 1;
        }
        let limit = if keyed {
            MAX_SIGNED_OFFLOAD_ENTRIES - 1
        } else {
            MAX_SIGNED_OFFLOAD_ENTRIES
        };
        assert_eq!(written, limit, "keyed {keyed}");
        let overhead = if keyed { 16 } else { 0 };
        let frame = Frame::new(0, node.id(), Body::Delta(node.own_record().clone()))
            .encode()
            .unwrap();
        assert!(frame.len() + overhead <= MAX_FRAME, "{} bytes", frame.len());
        let back = Frame::decode(&frame).unwrap();
        assert_eq!(back.body, Body::Deltas(vec![node.own_record().clone()]));
        // With more backends the record travels in CHUNK parts; the first (48 queue
        // entries, every offload entry, the seal) is the largest frame, and it fits.
        for v in MAX_QUEUE_ENTRIES as u32..vertices {
            node.record_queue_len(v, 0.5).unwrap();
        }
        let parts = shivya_core::p2p::protocol::split_record(node.own_record());
        assert_eq!(parts.len(), 2);
        let first = Frame::new(0, node.id(), Body::Chunk(parts[0].clone()))
            .encode()
            .unwrap();
        let datagram = first.len() + overhead;
        assert!(datagram <= MAX_FRAME, "{datagram} bytes");
        assert!(
            datagram > MAX_FRAME - 16,
            "{datagram} bytes: the limit is tight"
        );
    }
}
