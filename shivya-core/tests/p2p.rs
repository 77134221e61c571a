//! Kademlia: ids, buckets, ping-before-evict, the DHT store, lookups.

mod common;

use common::{NetConfig, Sim};
use proptest::prelude::*;
use shivya_core::mesh::{NodeConfig, WorkloadTopology};
use shivya_core::p2p::protocol::MAX_VALUE_LEN;
use shivya_core::p2p::{
    Body, Contact, Frame, InsertOutcome, KadConfig, KadEvent, Kademlia, NodeId, RoutingTable,
    StoreStatus, ID_LEN,
};
use std::net::SocketAddr;

fn id_with(first: u8, last: u8) -> NodeId {
    let mut b = [0u8; ID_LEN];
    b[0] = first;
    b[ID_LEN - 1] = last;
    NodeId(b)
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn xor_distance_and_bucket_index() {
    let a = id_with(0b1010_0000, 0);
    let b = id_with(0b1000_0000, 1);
    let d = a.distance(&b);
    assert_eq!(d, id_with(0b0010_0000, 1));
    assert_eq!(d, b.distance(&a), "XOR distance is symmetric");
    assert_eq!(a.distance(&a), NodeId::ZERO);
    assert_eq!(d.leading_zeros(), 2);
    assert_eq!(a.bucket_index(&b), Some(157));
    assert_eq!(a.bucket_index(&a), None);
    assert_eq!(NodeId::ZERO.bucket_index(&id_with(0, 1)), Some(0));
    assert_eq!(NodeId::ZERO.bucket_index(&id_with(0x80, 0)), Some(159));
}

proptest! {
    #[test]
    fn random_id_in_bucket_lands_in_that_bucket(seed in any::<[u8; 20]>(), b in 0usize..160, r in any::<u64>()) {
        let me = NodeId(seed);
        let mut x = r;
        let id = me.random_in_bucket(b, || { x = x.wrapping_mul(6364136223846793005).wrapping_add(1); x });
        prop_assert_eq!(me.bucket_index(&id), Some(b));
    }

    #[test]
    fn hex_round_trips(bytes in any::<[u8; 20]>()) {
        let id = NodeId(bytes);
        prop_assert_eq!(NodeId::from_hex(&id.to_hex()), Some(id));
    }
}

#[test]
fn table_keeps_least_recently_seen_first_and_refreshes_on_contact() {
    let mut t = RoutingTable::new(NodeId::ZERO, 2);
    let (p1, p2) = (id_with(0x80, 1), id_with(0x80, 2));
    assert_eq!(
        t.insert(
            Contact {
                id: p1,
                addr: addr(1)
            },
            10
        ),
        InsertOutcome::Added
    );
    assert_eq!(
        t.insert(
            Contact {
                id: p2,
                addr: addr(2)
            },
            20
        ),
        InsertOutcome::Added
    );
    assert_eq!(
        t.bucket(159).iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![p1, p2]
    );
    assert_eq!(
        t.insert(
            Contact {
                id: p1,
                addr: addr(1)
            },
            30
        ),
        InsertOutcome::Refreshed
    );
    assert_eq!(
        t.bucket(159).iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![p2, p1]
    );
    assert_eq!(
        t.insert(
            Contact {
                id: NodeId::ZERO,
                addr: addr(9)
            },
            30
        ),
        InsertOutcome::IsSelf
    );
}

#[test]
fn oldest_peer_answering_keeps_its_slot() {
    let mut t = RoutingTable::new(NodeId::ZERO, 2);
    let (old, mid, new) = (id_with(0x80, 1), id_with(0x80, 2), id_with(0x80, 3));
    t.insert(
        Contact {
            id: old,
            addr: addr(1),
        },
        1,
    );
    t.insert(
        Contact {
            id: mid,
            addr: addr(2),
        },
        2,
    );
    let out = t.insert(
        Contact {
            id: new,
            addr: addr(3),
        },
        3,
    );
    assert_eq!(
        out,
        InsertOutcome::ProbeOldest {
            probe: Contact {
                id: old,
                addr: addr(1)
            }
        }
    );
    // A second newcomer while probing is dropped.
    assert_eq!(
        t.insert(
            Contact {
                id: id_with(0x80, 4),
                addr: addr(4)
            },
            3
        ),
        InsertOutcome::Dropped
    );
    // The oldest answers.
    t.insert(
        Contact {
            id: old,
            addr: addr(1),
        },
        4,
    );
    assert!(t.get(&new).is_none());
    assert!(
        t.probe_failed(&old, 5).is_none(),
        "no pending probe after the answer"
    );
    assert_eq!(t.len(), 2);
    assert!(t.get(&old).is_some());
}

#[test]
fn oldest_peer_silent_is_evicted_for_the_newcomer() {
    let mut t = RoutingTable::new(NodeId::ZERO, 2);
    let (old, mid, new) = (id_with(0x80, 1), id_with(0x80, 2), id_with(0x80, 3));
    t.insert(
        Contact {
            id: old,
            addr: addr(1),
        },
        1,
    );
    t.insert(
        Contact {
            id: mid,
            addr: addr(2),
        },
        2,
    );
    t.insert(
        Contact {
            id: new,
            addr: addr(3),
        },
        3,
    );
    assert_eq!(t.probe_failed(&old, 9).map(|c| c.id), Some(new));
    assert!(t.get(&old).is_none());
    assert_eq!(
        t.bucket(159).iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![mid, new]
    );
    assert_eq!(t.len(), 2);
}

fn engine(k: usize) -> Kademlia {
    let cfg = KadConfig {
        k,
        ..KadConfig::default()
    };
    Kademlia::new(NodeId::ZERO, cfg, 1).unwrap()
}

fn drain(k: &mut Kademlia) -> Vec<(SocketAddr, Frame)> {
    std::iter::from_fn(|| k.poll_transmit()).collect()
}

#[test]
fn engine_pings_the_oldest_and_keeps_it_when_it_answers() {
    let mut k = engine(2);
    let (old, mid, new) = (id_with(0x80, 1), id_with(0x80, 2), id_with(0x80, 3));
    k.observe(old, addr(1), 0);
    k.observe(mid, addr(2), 0);
    drain(&mut k);
    // Heard from lately, the oldest is kept without a probe and the newcomer dropped.
    k.observe(new, addr(3), 10);
    assert!(
        drain(&mut k).is_empty(),
        "no probe of a peer heard 10 ms ago"
    );
    assert!(k.table().get(&new).is_none());
    // Silent for long, it is probed first.
    let t = k.config().probe_silent_ms + 10;
    k.observe(new, addr(3), t);
    let sent = drain(&mut k);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, addr(1));
    assert_eq!(sent[0].1.body, Body::Ping);
    let pong = Frame::new(sent[0].1.request_id, old, Body::Pong);
    k.observe(old, addr(1), t + 10);
    assert!(k.handle(addr(1), &pong, t + 10));
    k.handle_timeout(t + 10_000);
    assert!(k.table().get(&old).is_some());
    assert!(k.table().get(&new).is_none());
}

#[test]
fn engine_evicts_a_silent_oldest_after_its_retries() {
    let mut k = engine(2);
    let (old, mid, new) = (id_with(0x80, 1), id_with(0x80, 2), id_with(0x80, 3));
    k.observe(old, addr(1), 0);
    k.observe(mid, addr(2), 0);
    let mut now = k.config().probe_silent_ms + 10;
    k.observe(new, addr(3), now);
    let timeout = k.config().request_timeout_ms;
    for _ in 0..=k.config().retries {
        now += timeout;
        k.handle_timeout(now);
    }
    assert!(k.table().get(&old).is_none(), "silent oldest evicted");
    assert!(k.table().get(&new).is_some(), "newcomer admitted");
    let events: Vec<KadEvent> = std::iter::from_fn(|| k.poll_event()).collect();
    assert!(events
        .iter()
        .any(|e| matches!(e, KadEvent::PeerRemoved { id, reason: "evicted", .. } if *id == old)));
}

/// A frame a peer sent before its LEAVE but that arrives after it does not put the peer
/// back in the table; once every request it could be answering has timed out, a frame
/// from it (a restart) adds it again.
#[test]
fn a_frame_delayed_past_a_leave_does_not_bring_the_peer_back() {
    let mut k = engine(4);
    let gone = id_with(0x80, 1);
    k.observe(gone, addr(1), 0);
    assert!(k.peer_left(&gone, addr(1), 100));
    assert!(k.table().get(&gone).is_none());
    k.observe(gone, addr(1), 110);
    assert!(k.table().get(&gone).is_none(), "a late frame re-added it");
    let window = k.config().request_timeout_ms * (u64::from(k.config().retries) + 1);
    k.observe(gone, addr(1), 100 + window);
    assert!(
        k.table().get(&gone).is_some(),
        "a restarted peer is kept out"
    );
    // A LEAVE from another address than the one held is refused and remembers nothing.
    let other = id_with(0x40, 2);
    k.observe(other, addr(2), 0);
    assert!(!k.peer_left(&other, addr(9), 10));
    k.observe(other, addr(2), 20);
    assert!(k.table().get(&other).is_some());
}

#[test]
fn a_reply_from_the_wrong_address_or_id_is_not_accepted() {
    let mut k = engine(4);
    let p = id_with(0x80, 1);
    k.observe(p, addr(1), 0);
    k.handle_timeout(5_000); // liveness ping to the quiet peer
    let ping = drain(&mut k)
        .into_iter()
        .find(|f| f.1.body == Body::Ping)
        .unwrap();
    let rid = ping.1.request_id;
    assert!(
        !k.handle(addr(2), &Frame::new(rid, p, Body::Pong), 5_001),
        "wrong address"
    );
    assert!(
        !k.handle(
            addr(1),
            &Frame::new(rid, id_with(0x80, 9), Body::Pong),
            5_001
        ),
        "wrong id"
    );
    assert!(
        !k.handle(addr(1), &Frame::new(rid ^ 1, p, Body::Pong), 5_001),
        "unknown request id"
    );
    assert!(
        !k.handle(
            addr(1),
            &Frame::new(
                rid,
                p,
                Body::StoreAck {
                    status: StoreStatus::Ok
                }
            ),
            5_001
        ),
        "wrong reply type"
    );
    assert!(k.handle(addr(1), &Frame::new(rid, p, Body::Pong), 5_001));
    assert_eq!(k.counters().unmatched_replies, 4);
}

#[test]
fn store_over_the_limits_gets_an_error_reply_and_keeps_what_was_stored() {
    let cfg = KadConfig {
        store_max_entries: 2,
        store_max_value_len: 8,
        ..KadConfig::default()
    };
    let mut k = Kademlia::new(NodeId::ZERO, cfg, 1).unwrap();
    let from = id_with(0x80, 1);
    let ask = |k: &mut Kademlia, key: u8, value: Vec<u8>| {
        let f = Frame::new(
            7,
            from,
            Body::Store {
                key: id_with(0, key),
                value,
            },
        );
        k.handle(addr(1), &f, 0);
        match drain(k).pop().map(|f| f.1.body) {
            Some(Body::StoreAck { status }) => status,
            other => panic!("expected STORE_ACK, got {other:?}"),
        }
    };
    assert_eq!(ask(&mut k, 1, b"one".to_vec()), StoreStatus::Ok);
    assert_eq!(ask(&mut k, 2, vec![0; 9]), StoreStatus::ValueTooLarge);
    assert_eq!(ask(&mut k, 2, b"two".to_vec()), StoreStatus::Ok);
    assert_eq!(ask(&mut k, 3, b"three".to_vec()), StoreStatus::StoreFull);
    assert_eq!(
        ask(&mut k, 1, b"uno".to_vec()),
        StoreStatus::Ok,
        "replacing fits when full"
    );
    assert_eq!(k.store().len(), 2);
    assert_eq!(k.store().get(&id_with(0, 1)), Some(&b"uno"[..]));
    assert_eq!(k.store().get(&id_with(0, 2)), Some(&b"two"[..]));
    // A local put over the limit is an error and changes nothing.
    assert!(k.put(id_with(0, 9), &[0; 9], 0).is_err());
    assert!(k.put(id_with(0, 9), &[0; 1], 0).is_err(), "store full");
    assert_eq!(k.store().len(), 2);
}

#[test]
fn bad_kademlia_settings_are_rejected() {
    for cfg in [
        KadConfig {
            k: 0,
            ..KadConfig::default()
        },
        KadConfig {
            k: 21,
            ..KadConfig::default()
        },
        KadConfig {
            alpha: 0,
            ..KadConfig::default()
        },
        KadConfig {
            request_timeout_ms: 0,
            ..KadConfig::default()
        },
        KadConfig {
            max_failures: 0,
            ..KadConfig::default()
        },
    ] {
        assert!(Kademlia::new(NodeId::ZERO, cfg, 1).is_err(), "{cfg:?}");
    }
}

fn sim(n: usize) -> Sim {
    Sim::new(n, 31, NetConfig::default(), |i| NodeConfig {
        seed: 500 + i as u64,
        topology: WorkloadTopology::complete(2).unwrap(),
        ..NodeConfig::default()
    })
    .unwrap()
}

#[test]
fn put_on_one_node_is_found_by_iterative_lookup_from_another() {
    let mut s = sim(20);
    s.run_until(3_000);
    let key = NodeId::from_seed(99);
    s.nodes[3].dht_put(key, b"hello mesh", s.now).unwrap();
    s.run_until(4_000);
    let stored: Vec<KadEvent> = std::iter::from_fn(|| s.nodes[3].poll_event())
        .filter(|e| matches!(e, KadEvent::Stored { .. }))
        .collect();
    match stored.as_slice() {
        [KadEvent::Stored { acked, failed, .. }] => {
            assert!(*acked >= 3, "acked {acked}");
            assert_eq!(*failed, 0);
        }
        other => panic!("expected one Stored event, got {other:?}"),
    }
    let holders = s
        .nodes
        .iter()
        .filter(|n| n.kademlia().store().get(&key).is_some())
        .count();
    assert!(holders >= 4, "value held by {holders} nodes");
    let getter = s
        .nodes
        .iter()
        .position(|n| n.kademlia().store().get(&key).is_none())
        .unwrap();
    let lookup = s.nodes[getter].dht_get(key, s.now);
    s.run_until(5_000);
    let got = std::iter::from_fn(|| s.nodes[getter].poll_event()).find_map(|e| match e {
        KadEvent::Value {
            lookup: l, value, ..
        } if l == lookup => Some(value),
        _ => None,
    });
    assert_eq!(got, Some(Some(b"hello mesh".to_vec())));
    // A key nobody holds is reported missing.
    let missing = s.nodes[getter].dht_get(NodeId::from_seed(12345), s.now);
    s.run_until(6_000);
    let got = std::iter::from_fn(|| s.nodes[getter].poll_event()).find_map(|e| match e {
        KadEvent::Value {
            lookup: l, value, ..
        } if l == missing => Some(value),
        _ => None,
    });
    assert_eq!(got, Some(None));
}

#[test]
fn find_node_returns_the_k_closest_live_nodes() {
    let mut s = sim(24);
    s.run_until(4_000);
    let target = NodeId::from_seed(4242);
    let lookup = s.nodes[5].find_node(target, s.now);
    s.run_until(5_000);
    let found = std::iter::from_fn(|| s.nodes[5].poll_event()).find_map(|e| match e {
        KadEvent::NodesFound {
            lookup: l, closest, ..
        } if l == lookup => Some(closest),
        _ => None,
    });
    let found: Vec<NodeId> = found
        .expect("lookup finished")
        .iter()
        .map(|c| c.id)
        .collect();
    let mut all: Vec<NodeId> = s
        .nodes
        .iter()
        .map(|n| n.id())
        .filter(|id| *id != s.nodes[5].id())
        .collect();
    all.sort_by_key(|id| id.distance(&target));
    let k = s.nodes[5].config().kad.k;
    assert_eq!(found, all[..k].to_vec());
}

#[test]
fn values_at_the_wire_limit_are_accepted_and_one_more_byte_is_not() {
    let mut k = Kademlia::new(
        NodeId::ZERO,
        KadConfig {
            store_max_value_len: 4096,
            ..KadConfig::default()
        },
        1,
    )
    .unwrap();
    assert!(k.put(id_with(0, 1), &vec![7; MAX_VALUE_LEN], 0).is_ok());
    assert!(k
        .put(id_with(0, 2), &vec![7; MAX_VALUE_LEN + 1], 0)
        .is_err());
}
