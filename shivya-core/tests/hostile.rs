//! Hostile traffic against one node: floods of fake ids, STOREs and records.

use shivya_core::mesh::{NodeConfig, NodeState, WorkloadTopology};
use shivya_core::p2p::auth::AuthKey;
use shivya_core::p2p::protocol::RecordWire;
use shivya_core::p2p::{Body, Frame, NodeId, StoreStatus};
use std::collections::BTreeMap;
use std::net::SocketAddr;

fn node(max_records: usize) -> NodeState {
    NodeState::new(
        NodeConfig {
            seed: 77,
            max_records,
            topology: WorkloadTopology::complete(3).unwrap(),
            ..NodeConfig::default()
        },
        0,
    )
    .unwrap()
}

/// An id in bucket 159 of `me` (top bit flipped), distinguished by `n`.
fn far_id(me: &NodeId, n: u64) -> NodeId {
    let mut b = me.0;
    b[0] ^= 0x80;
    b[12..20].copy_from_slice(&n.to_be_bytes());
    NodeId(b)
}

fn addr(i: u64) -> SocketAddr {
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 9000))
}

fn send(n: &mut NodeState, from: SocketAddr, f: Frame, now: u64) {
    n.handle_datagram(from, &f.encode().unwrap(), now);
}

#[test]
fn a_ping_flood_from_fake_ids_cannot_evict_live_peers_or_grow_memory() {
    let mut n = node(64);
    let me = n.id();
    // Four live peers fill bucket 159 (K = 4).
    let live: Vec<(NodeId, SocketAddr)> = (0..4).map(|i| (far_id(&me, i), addr(i))).collect();
    for (id, a) in &live {
        send(&mut n, *a, Frame::new(0, *id, Body::Ping), 1);
    }
    while n.poll_transmit(&mut Vec::new()).is_some() {}
    let live_addrs: BTreeMap<SocketAddr, NodeId> = live.iter().map(|(i, a)| (*a, *i)).collect();
    let mut now = 10;
    let mut max_outstanding = 0;
    for k in 0..20_000u64 {
        now += 1;
        let fake = far_id(&me, 1_000_000 + k);
        send(
            &mut n,
            addr(100 + k),
            Frame::new(k + 1, fake, Body::Ping),
            now,
        );
        if k % 50 == 0 {
            n.handle_timeout(now);
        }
        // The live peers answer whatever is asked of them; fake addresses never answer.
        let mut payload = Vec::new();
        while let Some(destination) = n.poll_transmit(&mut payload) {
            if let Some(id) = live_addrs.get(&destination) {
                if let Ok(f) = Frame::decode(&payload) {
                    let reply = match f.body {
                        Body::Ping | Body::PingView { .. } => Some(Body::Pong),
                        Body::FindNode { .. } => Some(Body::FoundNodes { contacts: vec![] }),
                        _ => None,
                    };
                    if let Some(body) = reply {
                        send(
                            &mut n,
                            destination,
                            Frame::new(f.request_id, *id, body),
                            now,
                        );
                    }
                }
            }
        }
        max_outstanding = max_outstanding.max(n.kademlia().outstanding());
    }
    let table = n.kademlia().table();
    for (id, _) in &live {
        assert!(
            table.get(id).is_some(),
            "live peer {id:?} was evicted by the flood"
        );
    }
    assert_eq!(table.bucket(159).len(), 4);
    assert!(
        max_outstanding <= 16,
        "outstanding requests grew to {max_outstanding}"
    );
    assert!(n.belief().peer_count() <= 64);
}

#[test]
fn a_store_flood_is_capped_by_the_store_limits() {
    let mut n = node(64);
    let cap = n.config().kad.store_max_entries;
    let mut full = 0;
    for k in 0..(cap as u64 + 500) {
        let f = Frame::new(
            k + 1,
            NodeId::from_seed(1 << 50 | k),
            Body::Store {
                key: NodeId::from_seed(1 << 40 | k),
                value: vec![7; 64],
            },
        );
        send(&mut n, addr(k), f, 1);
        let mut payload = Vec::new();
        while n.poll_transmit(&mut payload).is_some() {
            if let Ok(Frame {
                body:
                    Body::StoreAck {
                        status: StoreStatus::StoreFull,
                    },
                ..
            }) = Frame::decode(&payload)
            {
                full += 1;
            }
        }
    }
    assert_eq!(n.kademlia().store().len(), cap);
    assert_eq!(full, 500);
}

#[test]
fn a_record_flood_from_fake_origins_is_capped_and_counted() {
    let mut n = node(100);
    n.record_queue_len(0, 1.0).unwrap();
    for k in 0..5_000u64 {
        let r = RecordWire {
            origin: NodeId::from_seed(10_000 + k),
            version: 1,
            queue: vec![(1, 1.0)],
            offload: vec![],
            seal: None,
        };
        send(
            &mut n,
            addr(k),
            Frame::new(0, NodeId::from_seed(1 << 50 | k), Body::Delta(r)),
            1,
        );
    }
    assert_eq!(n.records().len(), 100, "our own record plus 99 others");
    assert_eq!(n.status().counters.dropped.records_full, 5_000 - 99);
    assert!(
        n.records().get(&n.id()).is_some(),
        "our own record is never pushed out"
    );
    // Our own writes still work and still count.
    n.record_queue_len(0, 2.0).unwrap();
    assert_eq!(n.records().get(&n.id()).unwrap().queue, vec![(0, 2.0)]);
}

/// Bytes a node sends to `victim` in answer to one forged, empty, full-range digest.
fn answer_to_forged_digest(mut n: NodeState, key: Option<&AuthKey>) -> (usize, usize) {
    // 100 records from distinct origins, each with one queue entry.
    for k in 0..100u64 {
        let r = RecordWire {
            origin: NodeId::from_seed(1 << 40 | k),
            version: 1,
            queue: vec![(0, 1.0 + k as f64)],
            offload: vec![],
            seal: None,
        };
        let mut b = Frame::new(0, NodeId::from_seed(1 << 41 | k), Body::Delta(r))
            .encode()
            .unwrap();
        if let Some(key) = key {
            b.extend_from_slice(&key.tag(&b));
        }
        n.handle_datagram(addr(k), &b, 1);
    }
    assert_eq!(n.records().len(), 100);
    while n.poll_transmit(&mut Vec::new()).is_some() {}
    let digest = Frame::new(
        0,
        NodeId::from_seed(999),
        Body::Digest {
            reply: false,
            lo: NodeId::ZERO,
            hi: NodeId([0xff; 20]),
            entries: vec![],
        },
    );
    let mut b = digest.encode().unwrap();
    if let Some(key) = key {
        b.extend_from_slice(&key.tag(&b));
    }
    let victim = addr(50_000);
    n.handle_datagram(victim, &b, 2);
    let (mut frames, mut bytes) = (0, 0);
    let mut payload = Vec::new();
    while let Some(destination) = n.poll_transmit(&mut payload) {
        if destination == victim {
            frames += 1;
            bytes += payload.len();
        }
    }
    (frames, bytes)
}

#[test]
fn a_forged_digest_gets_at_most_one_frame_back_without_a_key() {
    let (frames, bytes) = answer_to_forged_digest(node(4_096), None);
    // The digest is 73 bytes; the answer is one packed frame, not 16.
    assert_eq!(frames, 1);
    assert!(bytes <= shivya_core::p2p::protocol::MAX_FRAME, "{bytes}");
    // With a key the sender is authenticated, and the full push budget applies: all 100
    // records, 42 bytes each, 27 to a frame (1200 − 32 header − 1 count − 16 tag).
    let key = shivya_core::mesh::MeshKey::new(&[7u8; 32]).unwrap();
    let keyed = NodeState::new(
        NodeConfig {
            seed: 77,
            topology: WorkloadTopology::complete(3).unwrap(),
            auth_key: Some(key.clone()),
            ..NodeConfig::default()
        },
        0,
    )
    .unwrap();
    let (frames, _) = answer_to_forged_digest(keyed, Some(&AuthKey::new(&[7u8; 32])));
    assert_eq!(frames, 4);
}

/// Frames `n` queued for `to`, decoded.
fn sent_to(n: &mut NodeState, to: SocketAddr) -> Vec<Frame> {
    let mut payload = Vec::new();
    let mut out = Vec::new();
    while let Some(d) = n.poll_transmit(&mut payload) {
        if d == to {
            out.push(Frame::decode(&payload).unwrap());
        }
    }
    out
}

#[test]
fn a_leave_in_a_peers_name_from_another_address_is_dropped() {
    let mut n = node(16);
    let peer = NodeId::from_seed(5);
    let (real, forger) = (addr(1), addr(2));
    send(&mut n, real, Frame::new(1, peer, Body::Ping), 1);
    assert!(n.kademlia().table().get(&peer).is_some());
    send(&mut n, forger, Frame::new(0, peer, Body::Leave), 2);
    assert!(
        n.kademlia().table().get(&peer).is_some(),
        "a forged LEAVE removed it"
    );
    assert_eq!(n.status().counters.dropped.bad_leave, 1);
    send(&mut n, real, Frame::new(0, peer, Body::Leave), 3);
    assert!(
        n.kademlia().table().get(&peer).is_none(),
        "its own LEAVE counts"
    );
}

#[test]
fn a_live_peers_address_cannot_be_taken_over_but_a_silent_one_moves() {
    let mut n = node(16);
    let peer = NodeId::from_seed(5);
    let (held, claim) = (addr(1), addr(2));
    let held_at = |n: &NodeState| n.kademlia().table().get(&peer).map(|p| p.addr);
    // Runs timers up to `until`, the peer answering every request at its held address
    // when `alive`.
    let run = |n: &mut NodeState, from: u64, until: u64, alive: bool| {
        for t in (from..=until).step_by(50) {
            n.handle_timeout(t);
            for f in sent_to(n, held) {
                let answer = match f.body {
                    Body::Ping | Body::PingView { .. } => Body::Pong,
                    Body::FindNode { .. } => Body::FoundNodes { contacts: vec![] },
                    _ => continue,
                };
                if alive {
                    send(n, held, Frame::new(f.request_id, peer, answer), t);
                }
            }
        }
    };
    send(&mut n, held, Frame::new(1, peer, Body::Ping), 1);
    run(&mut n, 1, 100, true);
    // Someone else claims the id, again and again: each time the held address is checked
    // with a PING, the real peer answers, and it stays where it is.
    for k in 0..5 {
        send(
            &mut n,
            claim,
            Frame::new(2 + k, peer, Body::Ping),
            101 + 400 * k,
        );
        run(&mut n, 101 + 400 * k, 500 + 400 * k, true);
        assert_eq!(
            held_at(&n),
            Some(held),
            "a live peer's address was taken over"
        );
    }
    // Now the peer really moved: its held address stays silent, so the new one is taken.
    send(&mut n, claim, Frame::new(9, peer, Body::Ping), 2_101);
    run(&mut n, 2_101, 2_700, false);
    assert_eq!(
        held_at(&n),
        Some(claim),
        "a silent held address was never replaced"
    );
    let c = n.kademlia().counters();
    assert_eq!((c.address_conflicts, c.address_moves), (6, 1));
}
