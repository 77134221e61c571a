//! The wire format: round trips, the PROTOCOL.md vectors, and hostile input.

mod vectors;

use proptest::prelude::*;
use shivya_core::mesh::{NodeConfig, NodeState};
use shivya_core::p2p::protocol::{
    FoundValue, RecordWire, MAX_CONTACTS, MAX_DELTAS, MAX_DIGEST_ENTRIES, MAX_FRAME,
    MAX_OFFLOAD_ENTRIES, MAX_QUEUE_ENTRIES, MAX_RANGE_BITS, MAX_VALUE_LEN,
};
use shivya_core::p2p::{Body, Contact, DecodeError, Frame, NodeId, StoreStatus};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

fn parse_vectors() -> Vec<(String, Vec<u8>)> {
    let doc = include_str!("../../docs/PROTOCOL.md");
    let mut out = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line.strip_prefix("#### vector: ") else {
            continue;
        };
        let mut bytes = Vec::new();
        let mut inside = false;
        for l in lines.by_ref() {
            if l.starts_with("```") {
                if inside {
                    break;
                }
                inside = true;
                continue;
            }
            if inside {
                for h in l.split_whitespace() {
                    bytes.push(u8::from_str_radix(h, 16).expect("hex byte"));
                }
            }
        }
        out.push((name.trim().to_string(), bytes));
    }
    out
}

#[test]
fn protocol_md_vectors_decode_to_their_frames_and_re_encode_to_their_bytes() {
    let doc = parse_vectors();
    let expected = vectors::vectors();
    assert_eq!(doc.len(), expected.len(), "every message type has a vector");
    for ((name, bytes), (ename, frame)) in doc.iter().zip(&expected) {
        assert_eq!(name, ename);
        assert_eq!(Frame::decode(bytes).as_ref(), Ok(frame), "vector {name}");
        assert_eq!(&frame.encode().unwrap(), bytes, "vector {name}");
    }
}

fn id(b: u8) -> NodeId {
    NodeId([b; 20])
}

#[test]
fn largest_frames_fit_and_match_the_documented_sizes() {
    let c = Contact {
        id: id(1),
        addr: SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 9),
    };
    let rec = RecordWire {
        origin: id(3),
        version: 1,
        queue: (0..MAX_QUEUE_ENTRIES as u32).map(|v| (v, 1.0)).collect(),
        offload: (0..MAX_OFFLOAD_ENTRIES as u32)
            .map(|v| (v, v + 1, 1.0))
            .collect(),
        seal: None,
    };
    let cases = [
        (
            Body::FoundNodes {
                contacts: vec![c; MAX_CONTACTS],
            },
            793,
        ),
        (
            Body::Store {
                key: id(2),
                value: vec![0; MAX_VALUE_LEN],
            },
            1078,
        ),
        (
            Body::Digest {
                reply: false,
                lo: NodeId::ZERO,
                hi: id(0xff),
                entries: (0..MAX_DIGEST_ENTRIES as u8)
                    .map(|i| (id(i + 1), 1))
                    .collect(),
            },
            1082,
        ),
        (Body::Delta(rec), 1150),
        (
            Body::Belief {
                step: 1,
                free_energy: 0.0,
                mean: vec![0.0; 16],
            },
            177,
        ),
    ];
    for (body, size) in cases {
        let bytes = Frame::new(1, id(9), body).encode().unwrap();
        assert_eq!(bytes.len(), size);
        assert!(bytes.len() <= MAX_FRAME);
    }
}

#[test]
fn encoding_refuses_bodies_over_the_limits() {
    let too_many = Body::FoundNodes {
        contacts: vec![
            Contact {
                id: id(1),
                addr: "127.0.0.1:1".parse().unwrap()
            };
            MAX_CONTACTS + 1
        ],
    };
    assert!(Frame::new(1, id(9), too_many).encode().is_err());
    let nan = Body::Belief {
        step: 1,
        free_energy: f64::NAN,
        mean: vec![],
    };
    assert!(Frame::new(1, id(9), nan).encode().is_err());
    let unsorted = Body::Delta(RecordWire {
        origin: id(1),
        version: 1,
        queue: vec![(2, 1.0), (1, 1.0)],
        offload: vec![],
        seal: None,
    });
    assert!(Frame::new(1, id(9), unsorted).encode().is_err());
    let negative = Body::Delta(RecordWire {
        origin: id(1),
        version: 1,
        queue: vec![(1, -1.0)],
        offload: vec![],
        seal: None,
    });
    assert!(Frame::new(1, id(9), negative).encode().is_err());
    let small = |k: u8| RecordWire {
        origin: id(k),
        version: 1,
        queue: vec![],
        offload: vec![],
        seal: None,
    };
    assert!(Frame::new(0, id(9), Body::Deltas(vec![])).encode().is_err());
    let most: Vec<RecordWire> = (0..MAX_DELTAS as u8).map(small).collect();
    let bytes = Frame::new(0, id(9), Body::Deltas(most.clone()))
        .encode()
        .unwrap();
    assert!(bytes.len() <= MAX_FRAME);
    let mut over = most;
    over.push(small(200));
    assert!(Frame::new(0, id(9), Body::Deltas(over)).encode().is_err());
    // Two records that each fit in a frame but not together.
    let big = |k: u8| RecordWire {
        queue: (0..MAX_QUEUE_ENTRIES as u32).map(|v| (v, 1.0)).collect(),
        ..small(k)
    };
    assert!(Frame::new(0, id(9), Body::Deltas(vec![big(1)]))
        .encode()
        .is_ok());
    assert!(Frame::new(0, id(9), Body::Deltas(vec![big(1), big(2)]))
        .encode()
        .is_err());
}

#[test]
fn malformed_deltas_are_refused_whole_and_bad_records_only_skip_themselves() {
    let good = valid("deltas");
    // Count byte (offset 32): zero, over the limit, and more records than bytes.
    for (n, what) in [(0u8, "empty deltas"), (MAX_DELTAS as u8 + 1, "deltas")] {
        let mut b = good.clone();
        b[32] = n;
        assert_eq!(
            Frame::decode(&b),
            Err(DecodeError::BadValue { what }),
            "n = {n}"
        );
    }
    let mut b = good.clone();
    b[32] = 3;
    assert!(matches!(
        Frame::decode(&b),
        Err(DecodeError::Truncated { .. })
    ));
    // Cut inside the second record.
    assert!(matches!(
        Frame::decode(&good[..good.len() - 3]),
        Err(DecodeError::Truncated { .. })
    ));
    // A node merges the records that fit its topology and counts the one that does not.
    let mut node = NodeState::new(NodeConfig::default(), 0).unwrap();
    let rec = |k: u8, vertex: u32| RecordWire {
        origin: id(k),
        version: 5,
        queue: vec![(vertex, 2.0)],
        offload: vec![],
        seal: None,
    };
    let f = Frame::new(
        0,
        id(0x77),
        Body::Deltas(vec![rec(1, 0), rec(2, 99), rec(3, 3)]),
    );
    node.handle_datagram("10.0.0.7:7000".parse().unwrap(), &f.encode().unwrap(), 1);
    assert_eq!(node.records().len(), 2);
    assert_eq!(node.status().counters.dropped.bad_record, 1);
    assert_eq!(node.status().counters.records_merged, 2);
}

fn valid(name: &str) -> Vec<u8> {
    vectors::vectors()
        .into_iter()
        .find(|v| v.0 == name)
        .unwrap()
        .1
        .encode()
        .unwrap()
}

#[test]
fn each_kind_of_malformed_frame_gets_its_own_error() {
    let ping = valid("ping");
    assert_eq!(
        Frame::decode(&ping[..31]),
        Err(DecodeError::TooShort { len: 31 })
    );
    assert_eq!(
        Frame::decode(&[0u8; MAX_FRAME + 1]),
        Err(DecodeError::Oversized { len: MAX_FRAME + 1 })
    );
    let mut b = ping.clone();
    b[0] = b'X';
    assert!(matches!(Frame::decode(&b), Err(DecodeError::BadMagic(_))));
    let mut b = ping.clone();
    b[2] = 2;
    assert_eq!(Frame::decode(&b), Err(DecodeError::UnknownVersion(2)));
    let mut b = ping.clone();
    b[3] = 0x55;
    assert_eq!(Frame::decode(&b), Err(DecodeError::UnknownType(0x55)));
    let mut b = valid("pong");
    b.push(0);
    assert_eq!(Frame::decode(&b), Err(DecodeError::Trailing { extra: 1 }));
    // A PING's body is empty or exactly a view: one byte more is a view cut short, one
    // byte past the view is trailing.
    let mut b = ping.clone();
    b.push(0);
    assert!(matches!(
        Frame::decode(&b),
        Err(DecodeError::Truncated { .. })
    ));
    let mut b = valid("ping_view");
    b.push(0);
    assert_eq!(Frame::decode(&b), Err(DecodeError::Trailing { extra: 1 }));

    // RANGES: exactly 2^bits hashes, bits at most MAX_RANGE_BITS.
    let ranges = valid("ranges");
    assert!(matches!(
        Frame::decode(&ranges[..ranges.len() - 1]),
        Err(DecodeError::Truncated { .. })
    ));
    let mut b = ranges.clone();
    b.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(Frame::decode(&b), Err(DecodeError::Trailing { extra: 4 }));
    let mut b = ranges.clone();
    b[32] = MAX_RANGE_BITS + 1;
    assert!(matches!(
        Frame::decode(&b),
        Err(DecodeError::BadValue { .. })
    ));
    // Eight bits promise 256 hashes: a short frame is truncated, nothing allocated past it.
    let mut b = ranges.clone();
    b[32] = MAX_RANGE_BITS;
    assert!(matches!(
        Frame::decode(&b),
        Err(DecodeError::Truncated { .. })
    ));
    for (bits, len) in [(1u8, 1usize), (0, 2), (MAX_RANGE_BITS + 1, 1 << 9)] {
        let f = Frame::new(
            0,
            NodeId([0x11; 20]),
            Body::Ranges {
                bits,
                hashes: vec![0; len],
            },
        );
        assert!(f.encode().is_err(), "bits {bits} with {len} hashes encoded");
    }
    let largest = Frame::new(
        0,
        NodeId([0x11; 20]),
        Body::Ranges {
            bits: MAX_RANGE_BITS,
            hashes: vec![7; 1 << MAX_RANGE_BITS],
        },
    )
    .encode()
    .unwrap();
    assert_eq!(largest.len(), 32 + 1 + 4 * 256);

    // Counts that promise more than is there, or more than the limit.
    let fnodes = valid("found_nodes");
    assert!(matches!(
        Frame::decode(&fnodes[..fnodes.len() - 1]),
        Err(DecodeError::Truncated { .. })
    ));
    let mut b = fnodes.clone();
    b[32] = (MAX_CONTACTS + 1) as u8;
    assert!(matches!(
        Frame::decode(&b),
        Err(DecodeError::BadValue { .. })
    ));
    let mut b = valid("store");
    b[52] = 0xff; // value length 0xff02 > 1024
    assert!(matches!(
        Frame::decode(&b),
        Err(DecodeError::BadValue { .. })
    ));

    // Values that must be finite, non-negative and sorted.
    let delta = valid("delta");
    let q0 = 32 + 30 + 4; // first queue length
    let mut b = delta.clone();
    b[q0..q0 + 8].copy_from_slice(&f64::NAN.to_bits().to_be_bytes());
    assert!(matches!(
        Frame::decode(&b),
        Err(DecodeError::BadValue { .. })
    ));
    let mut b = delta.clone();
    b[q0..q0 + 8].copy_from_slice(&(-1.0f64).to_bits().to_be_bytes());
    assert!(matches!(
        Frame::decode(&b),
        Err(DecodeError::BadValue { .. })
    ));
    let mut b = delta.clone();
    b[32 + 30 + 12..32 + 30 + 16].copy_from_slice(&0u32.to_be_bytes()); // second vertex = first
    assert!(matches!(
        Frame::decode(&b),
        Err(DecodeError::BadValue { .. })
    ));
    let mut b = valid("belief");
    let fe = 32 + 8;
    b[fe..fe + 8].copy_from_slice(&f64::INFINITY.to_bits().to_be_bytes());
    assert!(matches!(
        Frame::decode(&b),
        Err(DecodeError::BadValue { .. })
    ));
    let mut b = valid("digest");
    b[32] = 7; // flags
    assert!(matches!(
        Frame::decode(&b),
        Err(DecodeError::BadValue { .. })
    ));
    let mut b = valid("store_ack");
    b[32] = 9;
    assert!(matches!(
        Frame::decode(&b),
        Err(DecodeError::BadValue { .. })
    ));
}

fn arb_id() -> impl Strategy<Value = NodeId> {
    any::<[u8; 20]>().prop_map(NodeId)
}

fn arb_contact() -> impl Strategy<Value = Contact> {
    (arb_id(), any::<[u8; 4]>(), 1u16..).prop_map(|(id, ip, port)| {
        let ip = if ip == [0; 4] || ip == [255; 4] {
            [10, 0, 0, 1]
        } else {
            ip
        };
        Contact {
            id,
            addr: SocketAddr::from((ip, port)),
        }
    })
}

fn finite() -> impl Strategy<Value = f64> + Clone {
    prop_oneof![Just(0.0f64), 0.0f64..1e12]
}

fn arb_record() -> impl Strategy<Value = RecordWire> {
    arb_record_up_to(MAX_QUEUE_ENTRIES, MAX_OFFLOAD_ENTRIES)
}

fn arb_record_up_to(nq: usize, no: usize) -> impl Strategy<Value = RecordWire> {
    (
        arb_id(),
        any::<u64>(),
        proptest::collection::btree_map(any::<u32>(), finite(), 0..=nq),
        proptest::collection::btree_map((any::<u32>(), any::<u32>()), finite(), 0..=no),
    )
        .prop_map(|(origin, version, q, o)| {
            let mut r = RecordWire {
                origin,
                version,
                queue: q.into_iter().collect(),
                offload: o
                    .into_iter()
                    .filter(|((s, d), _)| s != d)
                    .map(|((s, d), x)| (s, d, x))
                    .collect(),
                seal: None,
            };
            // A version with the top bit is a death certificate: valid only empty.
            if version >> 63 == 1 {
                r.queue.clear();
                r.offload.clear();
            }
            r
        })
}

fn arb_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        Just(Body::Ping),
        (any::<u64>(), any::<u32>()).prop_map(|(view, records)| Body::PingView { view, records }),
        Just(Body::Pong),
        Just(Body::Leave),
        (any::<u64>(), any::<u32>(), arb_id(), any::<u64>()).prop_map(
            |(view, records, latest_origin, latest_version)| Body::Summary {
                view,
                records,
                latest_origin,
                latest_version
            }
        ),
        (0..=MAX_RANGE_BITS)
            .prop_flat_map(|bits| (
                Just(bits),
                proptest::collection::vec(any::<u32>(), 1usize << bits)
            ))
            .prop_map(|(bits, hashes)| Body::Ranges { bits, hashes }),
        arb_id().prop_map(|target| Body::FindNode { target }),
        arb_id().prop_map(|key| Body::FindValue { key }),
        proptest::collection::vec(arb_contact(), 0..=MAX_CONTACTS)
            .prop_map(|contacts| Body::FoundNodes { contacts }),
        (
            arb_id(),
            proptest::collection::vec(any::<u8>(), 0..=MAX_VALUE_LEN)
        )
            .prop_map(|(key, value)| Body::Store { key, value }),
        prop_oneof![
            Just(StoreStatus::Ok),
            Just(StoreStatus::ValueTooLarge),
            Just(StoreStatus::StoreFull)
        ]
        .prop_map(|status| Body::StoreAck { status }),
        proptest::collection::vec(any::<u8>(), 0..=MAX_VALUE_LEN)
            .prop_map(|v| Body::FoundValue(FoundValue::Value(v))),
        proptest::collection::vec(arb_contact(), 0..=MAX_CONTACTS)
            .prop_map(|c| Body::FoundValue(FoundValue::Nodes(c))),
        (
            any::<bool>(),
            proptest::collection::btree_map(arb_id(), any::<u64>(), 0..=MAX_DIGEST_ENTRIES)
        )
            .prop_map(|(reply, m)| Body::Digest {
                reply,
                lo: NodeId::ZERO,
                hi: NodeId([0xff; 20]),
                entries: m.into_iter().collect()
            }),
        arb_record().prop_map(Body::Delta),
        // At most 10 records of at most 110 bytes: always within one frame.
        proptest::collection::vec(arb_record_up_to(4, 2), 1..=10).prop_map(Body::Deltas),
        (
            any::<u64>(),
            -1e9f64..1e9,
            proptest::collection::vec(-1e9f64..1e9, 0..=16)
        )
            .prop_map(|(step, free_energy, mean)| Body::Belief {
                step,
                free_energy,
                mean
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn every_frame_type_round_trips(rid in any::<u64>(), sender in arb_id(), body in arb_body()) {
        let f = Frame::new(rid, sender, body);
        let bytes = f.encode().unwrap();
        prop_assert!(bytes.len() <= MAX_FRAME);
        prop_assert_eq!(Frame::decode(&bytes), Ok(f));
    }
}

/// Feeds `bytes` to a node and checks that a frame that does not decode is counted under
/// exactly its reason, and that nothing panics.
fn feed_and_check(node: &mut NodeState, bytes: &[u8]) {
    let before = node.status().counters;
    node.handle_datagram("10.9.9.9:9".parse().unwrap(), bytes, 1);
    let after = node.status().counters;
    assert_eq!(after.frames_in, before.frames_in + 1);
    if let Err(e) = Frame::decode(bytes) {
        let (b, a) = (before.dropped, after.dropped);
        let delta = match e.reason() {
            "too_short" => a.too_short - b.too_short,
            "oversized" => a.oversized - b.oversized,
            "bad_magic" => a.bad_magic - b.bad_magic,
            "unknown_version" => a.unknown_version - b.unknown_version,
            "unknown_type" => a.unknown_type - b.unknown_type,
            "truncated" => a.truncated - b.truncated,
            "trailing" => a.trailing - b.trailing,
            "bad_value" => a.bad_value - b.bad_value,
            other => panic!("unknown reason {other}"),
        };
        assert_eq!(delta, 1, "{e}");
        assert_eq!(a.total(), b.total() + 1);
    }
}

fn mutate(mut bytes: Vec<u8>, ops: &[(u8, u16, u8)]) -> Vec<u8> {
    for &(op, pos, val) in ops {
        let len = bytes.len().max(1);
        let p = pos as usize % len;
        match op % 4 {
            0 if !bytes.is_empty() => bytes[p] = val,
            1 => bytes.truncate(p),
            2 => bytes.insert(p.min(bytes.len()), val),
            _ => {
                if !bytes.is_empty() {
                    bytes[p] ^= 1 << (val % 8);
                }
            }
        }
    }
    bytes
}

proptest! {
    // 50 000 random byte strings plus 50 000 mutated valid frames: 10^5 hostile inputs.
    #![proptest_config(ProptestConfig { cases: 50_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_and_are_counted(bytes in proptest::collection::vec(any::<u8>(), 0..1300)) {
        thread_local!(static NODE: std::cell::RefCell<NodeState> =
            std::cell::RefCell::new(NodeState::new(NodeConfig::default(), 0).unwrap()));
        NODE.with(|n| feed_and_check(&mut n.borrow_mut(), &bytes));
    }

    #[test]
    fn mutated_frames_never_panic_and_are_counted(
        rid in any::<u64>(),
        body in arb_body(),
        ops in proptest::collection::vec((any::<u8>(), any::<u16>(), any::<u8>()), 1..6),
    ) {
        thread_local!(static NODE: std::cell::RefCell<NodeState> =
            std::cell::RefCell::new(NodeState::new(NodeConfig::default(), 0).unwrap()));
        let bytes = mutate(Frame::new(rid, NodeId([0x5a; 20]), body).encode().unwrap(), &ops);
        NODE.with(|n| feed_and_check(&mut n.borrow_mut(), &bytes));
    }
}

#[test]
fn seals_are_decoded_totally_and_checked_against_the_record_kind() {
    use shivya_core::p2p::protocol::{DecodeError, Seal, DEAD};
    let frame = Frame::new(0, id(0x22), Body::Deltas(vec![vectors::signed_record()]));
    let good = frame.encode().unwrap();
    assert_eq!(Frame::decode(&good), Ok(frame));
    // The seal kind byte sits right after the record's entries.
    let kind_at = 32 + 1 + 30 + 12;
    assert_eq!(good[kind_at], 1);
    let mut bad = good.clone();
    bad[kind_at] = 3;
    assert_eq!(
        Frame::decode(&bad),
        Err(DecodeError::BadValue { what: "seal kind" })
    );
    // Every truncation is an error, never a panic or a shorter seal.
    for len in 0..good.len() {
        assert!(Frame::decode(&good[..len]).is_err(), "{len} bytes");
    }
    // A certificate's seal on a live version, a record's seal on a certificate, and a
    // sealed record beside an unsealed one are refused by the encoder.
    let mut live_with_cert = vectors::signed_record();
    let Some(Seal::Signed { key, sig }) = live_with_cert.seal.as_deref().cloned() else {
        panic!("signed vector")
    };
    live_with_cert.seal = Some(Box::new(Seal::Certified {
        key,
        sig,
        entries_hash: [0; 32],
        issuer: key,
        issuer_sig: sig,
    }));
    let mut dead_with_record_seal = vectors::signed_record();
    dead_with_record_seal.version |= DEAD;
    dead_with_record_seal.queue.clear();
    let mut unsealed = vectors::signed_record();
    unsealed.seal = None;
    for body in [
        Body::Delta(live_with_cert),
        Body::Delta(dead_with_record_seal),
        Body::Deltas(vec![vectors::signed_record(), unsealed]),
    ] {
        assert!(Frame::new(0, id(1), body).encode().is_err());
    }
}
