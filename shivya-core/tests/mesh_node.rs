//! One node's proxy calls, settle semantics and configuration checks.

use shivya_core::mesh::{MeshError, NodeConfig, NodeState, SettleMode, WorkloadTopology};

fn node(topology: WorkloadTopology, mode: SettleMode) -> NodeState {
    NodeState::new(
        NodeConfig {
            topology,
            settle_mode: mode,
            ..NodeConfig::default()
        },
        0,
    )
    .unwrap()
}

fn route_map(n: &mut NodeState) -> Vec<(u32, u32, f64)> {
    n.settle()
        .unwrap()
        .iter()
        .map(|r| (r.src, r.dst, r.rate))
        .collect()
}

#[test]
fn bad_proxy_input_is_an_error_and_changes_nothing() {
    let mut n = node(
        WorkloadTopology::new(4, &[(0, 1), (1, 2), (2, 3)]).unwrap(),
        SettleMode::CurlFree,
    );
    n.record_queue_len(1, 5.0).unwrap();
    n.record_offload(0, 1, 2.0).unwrap();
    let version = n.status().own_version;
    let before = n.settlement().unwrap().clone();
    let bad: Vec<(&str, Result<(), MeshError>)> = vec![
        ("NaN queue", n.record_queue_len(0, f64::NAN)),
        ("negative queue", n.record_queue_len(0, -1.0)),
        ("infinite queue", n.record_queue_len(0, f64::INFINITY)),
        ("unknown vertex", n.record_queue_len(4, 1.0)),
        ("self edge", n.record_offload(2, 2, 1.0)),
        ("not an edge", n.record_offload(0, 3, 1.0)),
        ("unknown src", n.record_offload(9, 1, 1.0)),
        ("NaN rate", n.record_offload(1, 2, f64::NAN)),
        ("negative rate", n.record_offload(1, 2, -0.5)),
        ("absurd queue", n.record_queue_len(0, 1e16)),
        ("absurd rate", n.record_offload(1, 2, 1e300)),
        ("observation length", n.observe(&[1.0])),
        ("observation NaN", n.observe(&[1.0, f64::NAN])),
    ];
    for (what, r) in bad {
        let e = r.expect_err(what);
        assert!(!e.to_string().is_empty(), "{what}: message");
    }
    assert!(matches!(
        n.record_queue_len(4, 1.0),
        Err(MeshError::UnknownVertex { vertex: 4, n: 4 })
    ));
    assert!(matches!(
        n.record_offload(2, 2, 1.0),
        Err(MeshError::SelfEdge { vertex: 2 })
    ));
    assert_eq!(n.status().own_version, version, "no write happened");
    assert_eq!(n.settlement().unwrap(), &before, "settled state unchanged");
}

#[test]
fn work_moves_from_long_queues_to_short_ones() {
    let mut n = node(WorkloadTopology::complete(3).unwrap(), SettleMode::CurlFree);
    n.record_queue_len(0, 9.0).unwrap();
    n.record_queue_len(1, 3.0).unwrap();
    let routes = route_map(&mut n);
    // Gain 1: rate = q_src − q_dst on each edge, from long to short.
    assert_eq!(routes, vec![(0, 1, 6.0), (0, 2, 9.0), (1, 2, 3.0)]);
}

#[test]
fn circular_offload_around_a_filled_triangle_is_removed() {
    let mut n = node(WorkloadTopology::complete(3).unwrap(), SettleMode::CurlFree);
    for (s, d) in [(0, 1), (1, 2), (2, 0)] {
        n.record_offload(s, d, 4.0).unwrap();
    }
    let s = n.settlement().unwrap();
    assert!(s.flow.iter().all(|x| x.abs() < 1e-9), "{:?}", s.flow);
    assert!(s.routes.is_empty());
}

#[test]
fn circulation_around_a_hole_survives_curl_free_but_not_gradient_only() {
    let square = WorkloadTopology::new(4, &[(0, 1), (1, 2), (2, 3), (0, 3)]).unwrap();
    let ring = [(0, 1), (1, 2), (2, 3), (3, 0)];
    let mut keep = node(square.clone(), SettleMode::CurlFree);
    let mut drop = node(square, SettleMode::GradientOnly);
    for (s, d) in ring {
        keep.record_offload(s, d, 1.0).unwrap();
        drop.record_offload(s, d, 1.0).unwrap();
    }
    let kept = keep.settlement().unwrap().flow.clone();
    assert_eq!(kept.len(), 4);
    for x in &kept {
        assert!(
            (x.abs() - 1.0).abs() < 1e-12,
            "harmonic circulation kept: {kept:?}"
        );
    }
    assert!(drop
        .settlement()
        .unwrap()
        .flow
        .iter()
        .all(|x| x.abs() < 1e-9));
}

#[test]
fn merged_writes_of_several_origins_add_up() {
    // Two nodes write to the same vertex; a third holds both records.
    let t = WorkloadTopology::complete(2).unwrap();
    let mut a = NodeState::new(
        NodeConfig {
            seed: 1,
            topology: t.clone(),
            ..NodeConfig::default()
        },
        0,
    )
    .unwrap();
    let mut b = NodeState::new(
        NodeConfig {
            seed: 2,
            topology: t.clone(),
            ..NodeConfig::default()
        },
        0,
    )
    .unwrap();
    a.record_queue_len(0, 2.0).unwrap();
    b.record_queue_len(0, 3.0).unwrap();
    let mut c = NodeState::new(
        NodeConfig {
            seed: 3,
            topology: t,
            ..NodeConfig::default()
        },
        0,
    )
    .unwrap();
    for r in [
        a.records().get(&a.id()).unwrap().clone(),
        b.records().get(&b.id()).unwrap().clone(),
    ] {
        let f = shivya_core::p2p::Frame::new(0, r.origin, shivya_core::p2p::Body::Delta(r));
        c.handle_datagram("10.0.0.9:1".parse().unwrap(), &f.encode().unwrap(), 1);
    }
    assert_eq!(c.records().len(), 2);
    assert_eq!(c.settlement().unwrap().queue, vec![5.0, 0.0]);
    assert_eq!(c.status().counters.records_merged, 2);
    // An older version of a record does not overwrite a newer one.
    let old = a.records().get(&a.id()).unwrap().clone();
    a.record_queue_len(0, 7.0).unwrap();
    let newer = a.records().get(&a.id()).unwrap().clone();
    for r in [newer, old] {
        let f = shivya_core::p2p::Frame::new(0, r.origin, shivya_core::p2p::Body::Delta(r));
        c.handle_datagram("10.0.0.9:1".parse().unwrap(), &f.encode().unwrap(), 2);
    }
    assert_eq!(c.settlement().unwrap().queue, vec![10.0, 0.0]);
    assert_eq!(c.status().counters.records_merged, 3);
    // Information age: a's record changed at t = 2, b's at t = 1; the stale copy of a's
    // record did not refresh it.
    let ages = c.record_ages(1_001);
    assert_eq!(ages.origins, 2);
    assert_eq!(ages.max_ms, 1_000);
    assert_eq!(ages.mean_ms, 999.5);
    // A host clock that steps back does not make ages negative or smaller.
    assert_eq!(c.record_ages(0).max_ms, 1);
}

#[test]
fn a_record_outside_the_topology_is_dropped_and_counted() {
    let mut n = node(WorkloadTopology::complete(2).unwrap(), SettleMode::CurlFree);
    let r = shivya_core::p2p::protocol::RecordWire {
        origin: shivya_core::p2p::NodeId::from_seed(77),
        version: 1,
        queue: vec![(5, 1.0)],
        offload: vec![],
        seal: None,
    };
    let f = shivya_core::p2p::Frame::new(0, r.origin, shivya_core::p2p::Body::Delta(r));
    n.handle_datagram("10.0.0.9:1".parse().unwrap(), &f.encode().unwrap(), 1);
    assert_eq!(n.records().len(), 0);
    assert_eq!(n.status().counters.dropped.bad_record, 1);
}

#[test]
fn bad_configuration_is_rejected_with_a_reason() {
    let cases = [
        NodeConfig {
            step_interval_ms: 0,
            ..NodeConfig::default()
        },
        NodeConfig {
            fanout: 0,
            ..NodeConfig::default()
        },
        NodeConfig {
            queue_gain: f64::NAN,
            ..NodeConfig::default()
        },
        NodeConfig {
            min_rate: -1.0,
            ..NodeConfig::default()
        },
    ];
    for c in cases {
        let e = NodeState::new(c, 0).expect_err("invalid config");
        assert!(e.to_string().contains("invalid"), "{e}");
    }
    assert!(WorkloadTopology::new(3, &[(0, 0)]).is_err(), "self-loop");
    assert!(
        WorkloadTopology::new(3, &[(0, 1), (1, 0)]).is_err(),
        "duplicate"
    );
    assert!(WorkloadTopology::new(3, &[(0, 3)]).is_err(), "out of range");
}

#[test]
fn a_frame_claiming_our_own_id_is_dropped() {
    let mut n = node(WorkloadTopology::complete(2).unwrap(), SettleMode::CurlFree);
    let f = shivya_core::p2p::Frame::new(0, n.id(), shivya_core::p2p::Body::Ping);
    n.handle_datagram("10.0.0.9:1".parse().unwrap(), &f.encode().unwrap(), 1);
    assert_eq!(n.status().counters.dropped.own_id, 1);
    assert_eq!(n.status().peers, 0);
}

#[test]
fn a_forged_record_of_our_own_origin_cannot_overwrite_ours_or_crash_us() {
    let mut n = node(WorkloadTopology::complete(2).unwrap(), SettleMode::CurlFree);
    n.record_queue_len(0, 4.0).unwrap();
    let send = |n: &mut NodeState, version: u64, q: f64| {
        let r = shivya_core::p2p::protocol::RecordWire {
            origin: n.id(),
            version,
            queue: vec![(1, q)],
            offload: vec![],
            seal: None,
        };
        let f = shivya_core::p2p::Frame::new(
            0,
            shivya_core::p2p::NodeId::from_seed(9),
            shivya_core::p2p::Body::Delta(r),
        );
        n.handle_datagram("10.0.0.9:1".parse().unwrap(), &f.encode().unwrap(), 1);
    };
    // A newer version of "our" record from elsewhere: we keep our content and move past it.
    send(&mut n, 10, 99.0);
    assert_eq!(n.status().own_version, 11);
    assert_eq!(
        n.settlement().unwrap().queue,
        vec![4.0, 0.0],
        "our own content stays authoritative"
    );
    // A death certificate for us (our version with the top bit, no entries): refuted by
    // writing our content at the next version.
    let cert = shivya_core::mesh::death_certificate(n.own_record()).unwrap();
    assert_eq!(cert.version, shivya_core::mesh::DEAD | 11);
    let f = shivya_core::p2p::Frame::new(
        0,
        shivya_core::p2p::NodeId::from_seed(9),
        shivya_core::p2p::Body::Delta(cert),
    );
    n.handle_datagram("10.0.0.9:1".parse().unwrap(), &f.encode().unwrap(), 1);
    assert_eq!(n.status().own_version, 12);
    assert_eq!(n.settlement().unwrap().queue, vec![4.0, 0.0]);
    // A certificate that carries entries is no frame at all: it cannot even be encoded.
    let bad = shivya_core::p2p::protocol::RecordWire {
        origin: n.id(),
        version: shivya_core::mesh::DEAD | 12,
        queue: vec![(1, 1.0)],
        offload: vec![],
        seal: None,
    };
    assert!(
        shivya_core::p2p::Frame::new(0, n.id(), shivya_core::p2p::Body::Delta(bad))
            .encode()
            .is_err()
    );
    // The top own version cannot be outbid: the node certifies its old id for good
    // (version u64::MAX, so the forged content counts nowhere) and goes on under a new id,
    // with its own content.
    let old = n.id();
    send(&mut n, shivya_core::mesh::DEAD - 1, 99.0);
    assert_ne!(n.id(), old);
    assert_eq!(n.config().node_id(), n.id());
    assert_eq!(n.status().counters.identity_rotations, 1);
    assert_eq!(n.records().version(&old), u64::MAX);
    assert_eq!(n.own_record().origin, n.id());
    assert_eq!(n.settlement().unwrap().queue, vec![4.0, 0.0]);
    n.record_queue_len(0, 5.0).unwrap();
    assert_eq!(n.settlement().unwrap().queue, vec![5.0, 0.0]);
}

#[test]
fn incarnations_and_restored_records_keep_versions_moving_forward() {
    let t = WorkloadTopology::complete(3).unwrap();
    let cfg = |inc: u64| NodeConfig {
        seed: 5,
        incarnation: inc,
        topology: t.clone(),
        ..NodeConfig::default()
    };
    let mut first = NodeState::new(cfg(1), 0).unwrap();
    first.record_queue_len(0, 2.0).unwrap();
    first.record_queue_len(1, 3.0).unwrap();
    let saved = first.own_record().clone();
    assert_eq!(saved.version, (1 << 20) + 2);

    // A later run of the same id, restored from the saved record: same content, and a
    // version above everything the first run published.
    let mut second = NodeState::new(cfg(2), 0).unwrap();
    second.restore_own(saved.clone()).unwrap();
    assert_eq!(second.own_record().queue, saved.queue);
    assert!(second.own_record().version >= 2 << 20);
    second.record_queue_len(2, 4.0).unwrap();
    assert!(second.own_record().version > saved.version);

    // Restoring someone else's record, or one outside the topology, is refused.
    let mut other = saved.clone();
    other.origin = shivya_core::p2p::NodeId::from_seed(999);
    assert!(second.restore_own(other).is_err());
    let mut outside = saved;
    outside.origin = second.id();
    outside.queue = vec![(7, 1.0)];
    assert!(second.restore_own(outside).is_err());
    assert!(NodeState::new(cfg(shivya_core::mesh::MAX_INCARNATION + 1), 0).is_err());
}

#[test]
fn sizes_that_would_exhaust_memory_are_refused_before_allocating() {
    use shivya_core::hodge::SimplicialComplex;
    use shivya_core::limits::MAX_VERTICES;
    // The complete graph on 2 000 vertices has 1.3e9 triangles; on u32::MAX, 9e18 edges.
    for n in [2_000, 100_000, u32::MAX] {
        let e = WorkloadTopology::complete(n).unwrap_err().to_string();
        assert!(e.contains("complete graph"), "{e}");
    }
    assert!(WorkloadTopology::complete(300).is_ok());
    let six = [(0, 1), (0, 2), (1, 2), (2, 3), (2, 4), (3, 4)];
    assert!(WorkloadTopology::new(u32::MAX, &six).is_err());
    assert!(SimplicialComplex::new(u32::MAX as usize, &[], &[]).is_err());
    assert!(SimplicialComplex::new(MAX_VERTICES + 1, &[], &[]).is_err());
    // A graph under the edge limit whose 3-cliques exceed the triangle limit: refused
    // while listing, not after.
    let g = shivya_core::graph::Graph::new(
        6,
        &[
            (0, 1, 1.0),
            (0, 2, 1.0),
            (1, 2, 1.0),
            (1, 3, 1.0),
            (2, 3, 1.0),
        ],
    )
    .unwrap();
    assert_eq!(g.triangles_at_most(2).unwrap().len(), 2);
    assert!(g.triangles_at_most(1).is_err());
}

#[test]
fn unusable_bootstrap_peers_are_refused_when_given() {
    for peer in [
        "127.0.0.1:0",
        "0.0.0.0:7000",
        "[::1]:7000",
        "224.0.0.1:7000",
    ] {
        let cfg = NodeConfig {
            bootstrap: vec![peer.parse().unwrap()],
            ..NodeConfig::default()
        };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains(peer.trim_start_matches('[').split(']').next().unwrap()));
        assert!(NodeState::new(cfg, 0).is_err());
    }
    let v6 = NodeConfig {
        listen: "[::1]:0".parse().unwrap(),
        bootstrap: vec!["[::1]:7000".parse().unwrap()],
        ..NodeConfig::default()
    };
    assert!(v6.validate().is_ok());
    let mut n = NodeState::new(NodeConfig::default(), 0).unwrap();
    assert!(n.bootstrap(&["0.0.0.0:1".parse().unwrap()], 0).is_err());
    assert!(n.bootstrap(&["127.0.0.1:1".parse().unwrap()], 0).is_ok());
}

#[test]
fn writes_after_leaving_are_refused_not_silently_dropped() {
    let mut n = NodeState::new(NodeConfig::default(), 0).unwrap();
    n.record_queue_len(0, 0.1).unwrap();
    n.leave();
    let version = n.status().own_version;
    assert_eq!(n.record_queue_len(0, 0.2), Err(MeshError::Left));
    assert_eq!(n.record_offload(0, 1, 0.2), Err(MeshError::Left));
    assert_eq!(n.status().own_version, version);
}

#[test]
fn writing_the_value_already_held_makes_no_new_version() {
    let mut n = node(WorkloadTopology::complete(3).unwrap(), SettleMode::CurlFree);
    n.record_queue_len(1, 0.1).unwrap();
    n.record_offload(0, 1, 1.0 / 3.0).unwrap();
    let v = n.own_record().version;
    n.record_queue_len(1, 0.1).unwrap();
    n.record_offload(0, 1, 1.0 / 3.0).unwrap();
    assert_eq!(
        n.own_record().version,
        v,
        "an identical write must not be gossiped"
    );
    n.record_queue_len(1, 0.1 + 1e-12).unwrap();
    assert_eq!(n.own_record().version, v + 1);
}

/// A record learned between two gossip rounds goes on at the next rumour sub-round, a
/// quarter of a base period later, not at the next round: relays forward without waiting
/// half a period on average.
#[test]
fn a_record_learned_between_rounds_is_forwarded_within_a_sub_round() {
    use shivya_core::p2p::{Body, Frame};
    let t = WorkloadTopology::complete(2).unwrap();
    let mk = |seed: u64| {
        NodeState::new(
            NodeConfig {
                seed,
                topology: t.clone(),
                ..NodeConfig::default()
            },
            0,
        )
        .unwrap()
    };
    let mut relay = mk(1);
    let mut writers: Vec<NodeState> = (2..6).map(mk).collect();
    for (k, w) in writers.iter_mut().enumerate() {
        w.record_queue_len(0, 1.0 + k as f64).unwrap();
    }
    let deliver = |relay: &mut NodeState, w: &NodeState, k: usize, now: u64| {
        let r = w.records().get(&w.id()).unwrap().clone();
        let f = Frame::new(0, w.id(), Body::Delta(r));
        let from = format!("10.0.0.{}:1", 10 + k).parse().unwrap();
        relay.handle_datagram(from, &f.encode().unwrap(), now);
    };
    let sent_origins = |relay: &mut NodeState| {
        let mut buf = Vec::new();
        let mut origins = Vec::new();
        while relay.poll_transmit(&mut buf).is_some() {
            match Frame::decode(&buf).map(|f| f.body) {
                Ok(Body::Delta(r)) => origins.push(r.origin),
                Ok(Body::Deltas(rs)) => origins.extend(rs.iter().map(|r| r.origin)),
                _ => {}
            }
        }
        origins
    };
    // Three writers become peers and records; a round runs at 1 and sends what it has.
    for (k, w) in writers.iter().take(3).enumerate() {
        deliver(&mut relay, w, k, 1);
    }
    relay.handle_timeout(1);
    sent_origins(&mut relay);
    let base = relay.config().gossip_interval_ms;
    // A fourth record arrives just after the round.
    deliver(&mut relay, &writers[3], 3, 2);
    let due = relay.poll_timeout().unwrap();
    assert!(due <= 1 + base / 4, "next call due at {due}");
    relay.handle_timeout(1 + base / 4);
    let origins = sent_origins(&mut relay);
    assert!(
        origins.contains(&writers[3].id()),
        "not forwarded before the next round: {origins:?}"
    );
}

/// While more rumours are hot than one sub-round pushes, the sub-round also sends each
/// target the next digest page (a pull of what it finds us lacking); with a few rumours
/// hot, a sub-round pushes only.
#[test]
fn a_sub_round_pulls_with_digest_pages_only_while_rumours_queue() {
    use shivya_core::mesh::{RUMOR_RECORDS, RUMOR_SUBROUNDS};
    use shivya_core::p2p::protocol::RecordWire;
    use shivya_core::p2p::{Body, Frame, NodeId};
    let pages_in_sub_round = |arriving: u64| -> usize {
        let mut n = node(WorkloadTopology::complete(2).unwrap(), SettleMode::CurlFree);
        let from: std::net::SocketAddr = "10.0.0.9:1".parse().unwrap();
        let peer = NodeId::from_seed(9);
        let deliver = |n: &mut NodeState, origins: std::ops::Range<u64>, now: u64| {
            let records: Vec<RecordWire> = origins
                .map(|k| RecordWire {
                    origin: NodeId::from_seed(k),
                    version: 3,
                    queue: vec![(1, 2.0)],
                    offload: vec![],
                    seal: None,
                })
                .collect();
            for chunk in records.chunks(10) {
                let f = Frame::new(0, peer, Body::Deltas(chunk.to_vec()));
                n.handle_datagram(from, &f.encode().unwrap(), now);
            }
        };
        let drain = |n: &mut NodeState| {
            let mut buf = Vec::new();
            let mut bodies = Vec::new();
            while n.poll_transmit(&mut buf).is_some() {
                bodies.push(Frame::decode(&buf).unwrap().body);
            }
            bodies
        };
        // The peer becomes known; a round runs at 1 and sends what it has.
        deliver(&mut n, 100..101, 1);
        n.handle_timeout(1);
        drain(&mut n);
        // Just after the round, `arriving` records come in; the sub-round follows.
        deliver(&mut n, 1000..1000 + arriving, 2);
        drain(&mut n);
        let base = n.config().gossip_interval_ms;
        n.handle_timeout(1 + base / RUMOR_SUBROUNDS);
        drain(&mut n)
            .iter()
            .filter(|b| matches!(b, Body::Digest { reply: false, .. }))
            .count()
    };
    let per_sub_round = (RUMOR_RECORDS / RUMOR_SUBROUNDS as usize) as u64;
    assert_eq!(pages_in_sub_round(4), 0, "a few rumours: push only");
    assert_eq!(
        pages_in_sub_round(per_sub_round + 20),
        1,
        "rumours queueing: one page to the one target"
    );
}

#[test]
fn a_ping_carrying_a_view_is_answered_and_a_different_view_starts_the_range_exchange() {
    use shivya_core::mesh::RecordStore;
    use shivya_core::p2p::protocol::RecordWire;
    use shivya_core::p2p::{Body, Frame, NodeId};
    let mut n = node(WorkloadTopology::complete(2).unwrap(), SettleMode::CurlFree);
    n.record_queue_len(0, 4.0).unwrap();
    let from: std::net::SocketAddr = "10.0.0.9:1".parse().unwrap();
    let peer = NodeId::from_seed(9);
    // 40 records of other origins, so that the view spans several ranges.
    let others: Vec<RecordWire> = (100..140)
        .map(|k| RecordWire {
            origin: NodeId::from_seed(k),
            version: 3,
            queue: vec![(1, 2.0)],
            offload: vec![],
            seal: None,
        })
        .collect();
    for chunk in others.chunks(10) {
        let f = Frame::new(0, peer, Body::Deltas(chunk.to_vec()))
            .encode()
            .unwrap();
        n.handle_datagram(from, &f, 5);
    }
    assert_eq!(n.records().len(), 41);
    let drain = |n: &mut NodeState| -> Vec<(std::net::SocketAddr, Body)> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while let Some(to) = n.poll_transmit(&mut buf) {
            out.push((to, Frame::decode(&buf).unwrap().body));
        }
        out
    };
    drain(&mut n);
    let view = n.records().view_digest();
    let records = n.records().len() as u32;
    let ping = |rid: u64, view: u64, records: u32| {
        Frame::new(rid, peer, Body::PingView { view, records })
            .encode()
            .unwrap()
    };
    // Our own view: answered with a PONG, and nothing else.
    n.handle_datagram(from, &ping(1, view, records), 10);
    let sent = drain(&mut n);
    assert_eq!(sent, vec![(from, Body::Pong)]);
    // Another view: the PONG and our hash of each range of origins, to that peer.
    n.handle_datagram(from, &ping(2, view ^ 1, records), 20);
    let sent = drain(&mut n);
    assert!(sent.contains(&(from, Body::Pong)), "{sent:?}");
    let bits = RecordStore::range_bits(41);
    assert_eq!(bits, 2, "41 records: four ranges of about ten");
    let ours = n.records().range_hashes(bits);
    assert!(
        sent.contains(&(
            from,
            Body::Ranges {
                bits,
                hashes: ours.clone()
            }
        )),
        "{sent:?}"
    );
    // The peer's RANGES, equal everywhere: nothing to exchange.
    let ranges = |hashes: Vec<u32>| {
        Frame::new(0, peer, Body::Ranges { bits, hashes })
            .encode()
            .unwrap()
    };
    n.handle_datagram(from, &ranges(ours.clone()), 30);
    assert_eq!(drain(&mut n), vec![]);
    // One range differs: its DIGEST page, with every record we hold in it, and no other.
    let mut theirs = ours.clone();
    theirs[2] ^= 1;
    n.handle_datagram(from, &ranges(theirs), 40);
    let (lo, hi) = RecordStore::range_bounds(bits, 2);
    let want: Vec<(NodeId, u64)> = n
        .records()
        .iter()
        .filter(|r| r.origin >= lo && r.origin <= hi)
        .map(|r| (r.origin, r.version))
        .collect();
    assert!(!want.is_empty());
    assert_eq!(
        drain(&mut n),
        vec![(
            from,
            Body::Digest {
                reply: false,
                lo,
                hi,
                entries: want
            }
        )]
    );
    // Every range differs (a forged RANGES, perhaps, from a spoofed source): without a
    // mesh key the answer is one page, not one per range.
    let forged: Vec<u32> = ours.iter().map(|h| !h).collect();
    n.handle_datagram(from, &ranges(forged), 50);
    let sent = drain(&mut n);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(matches!(sent[0].1, Body::Digest { reply: false, .. }));
}
