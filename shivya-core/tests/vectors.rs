//! The frames behind the test vectors of docs/PROTOCOL.md (shared by the protocol tests).
#![allow(dead_code)]

use shivya_core::p2p::identity::{leave_message, record_message};
use shivya_core::p2p::protocol::{entries_hash, FoundValue, RecordPart, RecordWire, Seal};
use shivya_core::p2p::{Body, Contact, Frame, Identity, NodeId, StoreStatus};
use std::net::SocketAddr;

pub fn id(b: u8) -> NodeId {
    NodeId([b; 20])
}

/// The key pair of the signed vectors: secret 32 bytes of `55`.
pub fn signer() -> Identity {
    Identity::from_secret(&[0x55; 32])
}

/// The signed vectors' record: origin the signer's id, version 3, queue (0, 2.5).
pub fn signed_record() -> RecordWire {
    let me = signer();
    let mut r = RecordWire {
        origin: me.node_id(),
        version: 3,
        queue: vec![(0, 2.5)],
        offload: vec![],
        seal: None,
    };
    let sig = me.sign(&record_message(&r.origin, r.version, &entries_hash(&r)));
    r.seal = Some(Box::new(Seal::Signed {
        key: me.public_key(),
        sig,
    }));
    r
}

pub fn vectors() -> Vec<(&'static str, Frame)> {
    let c1 = Contact {
        id: id(0x33),
        addr: "127.0.0.1:7000".parse::<SocketAddr>().unwrap(),
    };
    let c2 = Contact {
        id: id(0x44),
        addr: "[::1]:7001".parse::<SocketAddr>().unwrap(),
    };
    vec![
        ("ping", Frame::new(0x0102030405060708, id(0x11), Body::Ping)),
        ("pong", Frame::new(0x0102030405060708, id(0x22), Body::Pong)),
        (
            "ping_view",
            Frame::new(
                0x0102030405060708,
                id(0x11),
                Body::PingView {
                    view: 0x1112131415161718,
                    records: 5,
                },
            ),
        ),
        (
            "find_node",
            Frame::new(1, id(0x11), Body::FindNode { target: id(0xaa) }),
        ),
        (
            "found_nodes",
            Frame::new(
                1,
                id(0x22),
                Body::FoundNodes {
                    contacts: vec![c1, c2],
                },
            ),
        ),
        (
            "store",
            Frame::new(
                2,
                id(0x11),
                Body::Store {
                    key: id(0xbb),
                    value: b"hi".to_vec(),
                },
            ),
        ),
        (
            "store_ack",
            Frame::new(
                2,
                id(0x22),
                Body::StoreAck {
                    status: StoreStatus::StoreFull,
                },
            ),
        ),
        (
            "find_value",
            Frame::new(3, id(0x11), Body::FindValue { key: id(0xbb) }),
        ),
        (
            "found_value_value",
            Frame::new(
                3,
                id(0x22),
                Body::FoundValue(FoundValue::Value(b"hi".to_vec())),
            ),
        ),
        (
            "found_value_nodes",
            Frame::new(4, id(0x22), Body::FoundValue(FoundValue::Nodes(vec![c1]))),
        ),
        (
            "digest",
            Frame::new(
                0,
                id(0x11),
                Body::Digest {
                    reply: false,
                    lo: NodeId::ZERO,
                    hi: id(0xff),
                    entries: vec![(id(0x33), 5), (id(0x44), 9)],
                },
            ),
        ),
        (
            "delta",
            Frame::new(
                0,
                id(0x22),
                Body::Delta(RecordWire {
                    origin: id(0x11),
                    version: 3,
                    queue: vec![(0, 2.5), (2, 10.0)],
                    offload: vec![(0, 1, 1.25)],
                    seal: None,
                }),
            ),
        ),
        (
            "deltas",
            Frame::new(
                0,
                id(0x22),
                Body::Deltas(vec![
                    RecordWire {
                        origin: id(0x11),
                        version: 3,
                        queue: vec![(1, 4.0)],
                        offload: vec![],
                        seal: None,
                    },
                    RecordWire {
                        origin: id(0x33),
                        version: 8,
                        queue: vec![],
                        offload: vec![],
                        seal: None,
                    },
                ]),
            ),
        ),
        (
            "belief",
            Frame::new(
                0,
                id(0x11),
                Body::Belief {
                    step: 7,
                    free_energy: 1.5,
                    mean: vec![0.25, -0.5],
                },
            ),
        ),
        ("leave", Frame::new(0, id(0x11), Body::Leave)),
        (
            "summary",
            Frame::new(
                0,
                id(0x11),
                Body::Summary {
                    view: 0x0102030405060708,
                    records: 5,
                    latest_origin: id(0x33),
                    latest_version: 9,
                },
            ),
        ),
        (
            "signed_deltas",
            Frame::new(0, id(0x22), Body::Deltas(vec![signed_record()])),
        ),
        (
            "chunk",
            Frame::new(
                0,
                id(0x22),
                Body::Chunk(RecordPart {
                    origin: id(0x11),
                    version: 7,
                    part: 1,
                    parts: 2,
                    queue: vec![(48, 1.5)],
                    offload: vec![],
                    seal: None,
                }),
            ),
        ),
        (
            "shuffle",
            Frame::new(
                0,
                id(0x11),
                Body::Shuffle {
                    reply: false,
                    contacts: vec![c1],
                },
            ),
        ),
        (
            "ranges",
            Frame::new(
                0,
                id(0x11),
                Body::Ranges {
                    bits: 1,
                    hashes: vec![0x0102_0304, 0xa1b2_c3d4],
                },
            ),
        ),
        (
            "signed_leave",
            Frame::new(
                0,
                signer().node_id(),
                Body::SignedLeave {
                    version: 4,
                    key: signer().public_key(),
                    sig: signer().sign(&leave_message(&signer().node_id(), 4)),
                },
            ),
        ),
    ]
}

#[test]
#[ignore = "prints the vectors for docs/PROTOCOL.md; run by hand when the format changes"]
fn print_vectors() {
    for (name, f) in vectors() {
        let bytes = f.encode().unwrap();
        let hex: Vec<String> = bytes
            .chunks(16)
            .map(|c| {
                c.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        println!("#### vector: {name}\n\n```text\n{}\n```\n", hex.join("\n"));
    }
}
