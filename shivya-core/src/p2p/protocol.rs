//! The wire format: fixed-layout, big-endian frames of at most [`MAX_FRAME`] bytes.
//!
//! `docs/PROTOCOL.md` is the normative description, with a byte table per message and test
//! vectors that `tests/protocol.rs` decodes. Every frame is
//!
//! ```text
//! magic "SH" (2) | version (1) | type (1) | request id (8) | sender NodeId (20) | body
//! ```
//!
//! Decoding is total: any byte string yields a [`Frame`] or a [`DecodeError`], never a
//! panic. Every count is checked against the bytes actually present before anything is
//! allocated, so a frame never causes an allocation larger than itself.

use super::id::{NodeId, ID_LEN};
use super::identity::{PublicKey, PUBLIC_KEY_LEN, SIGNATURE_LEN};
use sha2::{Digest, Sha256};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use thiserror::Error;

/// Frame magic, ASCII "SH".
pub const MAGIC: [u8; 2] = *b"SH";
/// The protocol version this code speaks.
pub const VERSION: u8 = 1;
/// Largest frame, in bytes (one MTU with room to spare).
pub const MAX_FRAME: usize = 1200;
/// Bytes in the common header.
pub const HEADER_LEN: usize = 32;
/// Bytes in one encoded contact: id (20) + IPv6 or IPv4-mapped address (16) + port (2).
pub const CONTACT_LEN: usize = ID_LEN + 16 + 2;
/// Most contacts in one FOUND_NODES / FOUND_VALUE frame.
pub const MAX_CONTACTS: usize = 20;
/// Longest DHT value.
pub const MAX_VALUE_LEN: usize = 1024;
/// Most (origin, version) pairs in one DIGEST frame.
pub const MAX_DIGEST_ENTRIES: usize = 36;
/// Most range bits in a RANGES frame: 256 hashes of 4 bytes.
pub const MAX_RANGE_BITS: u8 = 8;
/// Most queue-length entries in one frame (a DELTA record or a CHUNK part).
pub const MAX_QUEUE_ENTRIES: usize = 48;
/// Most queue-length entries in one record: a balancer's backends. A record with more
/// than [`MAX_QUEUE_ENTRIES`] travels as CHUNK frames, one part each.
pub const MAX_RECORD_QUEUE_ENTRIES: usize = 4096;
/// Most parts of a chunked record.
pub const MAX_PARTS: usize = MAX_RECORD_QUEUE_ENTRIES.div_ceil(MAX_QUEUE_ENTRIES);
/// Bytes of a CHUNK body before its entries and seal: origin, version, part, parts, the
/// two counts and the seal kind.
pub const CHUNK_BASE_LEN: usize = ID_LEN + 8 + 4 + 1;
/// Most offload entries in one record.
pub const MAX_OFFLOAD_ENTRIES: usize = 32;
/// The record-version bit that marks a death certificate: a record whose version has it
/// carries no entries (see `mesh::records::version_order` for how versions compare).
pub const DEAD: u64 = 1 << 63;
/// Largest queue length or offload rate a record may carry. Sums over every record the
/// mesh can hold stay many orders of magnitude inside what the reconciler accepts.
pub const MAX_RECORD_VALUE: f64 = 1e15;

/// Whether `x` may be carried as a queue length or offload rate: `0 ≤ x ≤ MAX_RECORD_VALUE`
/// (false for NaN and infinities). The one definition of the bound, for the wire and the
/// proxy alike.
pub fn is_record_value(x: f64) -> bool {
    (0.0..=MAX_RECORD_VALUE).contains(&x)
}
/// Largest belief vector.
pub const MAX_BELIEF_DIM: usize = 16;
/// Bytes of a record with no entries (origin, version, two counts).
pub const RECORD_BASE_LEN: usize = ID_LEN + 8 + 2;
/// Most records in one DELTAS frame: as many empty records as fit in a frame.
pub const MAX_DELTAS: usize = (MAX_FRAME - HEADER_LEN - 1) / RECORD_BASE_LEN;

/// Bytes of a record's signature block in SIGNED_DELTAS: kind, public key, signature.
pub const SIGNED_SEAL_LEN: usize = 1 + PUBLIC_KEY_LEN + SIGNATURE_LEN;
/// Bytes of a death certificate's block: kind, the origin's key and signature of the
/// version it names with the entries' hash, the issuer's key and signature.
pub const CERTIFIED_SEAL_LEN: usize = 1 + 2 * PUBLIC_KEY_LEN + 32 + 2 * SIGNATURE_LEN;
/// Most offload entries a signed record can hold: with 48 queue entries and its
/// signature it then still fits one frame, as a SIGNED_DELTAS record or as the first part
/// of a CHUNK (the larger of the two).
pub const MAX_SIGNED_OFFLOAD_ENTRIES: usize =
    (MAX_FRAME - HEADER_LEN - CHUNK_BASE_LEN - 12 * MAX_QUEUE_ENTRIES - (SIGNED_SEAL_LEN - 1)) / 16;
const _: () = assert!(MAX_SIGNED_OFFLOAD_ENTRIES == 28);

/// Encoded size of a record in a DELTA, DELTAS or SIGNED_DELTAS body (its seal included).
pub fn record_wire_len(r: &RecordWire) -> usize {
    RECORD_BASE_LEN
        + 12 * r.queue.len()
        + 16 * r.offload.len()
        + match r.seal.as_deref() {
            None => 0,
            Some(Seal::Signed { .. }) => SIGNED_SEAL_LEN,
            Some(Seal::Certified { .. }) => CERTIFIED_SEAL_LEN,
        }
}

/// SHA-256 of a record's entries as encoded on the wire (counts, queue, offload): what
/// an origin's signature covers besides origin and version.
pub fn entries_hash(r: &RecordWire) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([r.queue.len() as u8, r.offload.len() as u8]);
    for (v, q) in &r.queue {
        h.update(v.to_be_bytes());
        h.update(q.to_bits().to_be_bytes());
    }
    for (s, d, x) in &r.offload {
        h.update(s.to_be_bytes());
        h.update(d.to_be_bytes());
        h.update(x.to_bits().to_be_bytes());
    }
    h.finalize().into()
}

/// Message type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// Liveness probe.
    Ping = 0x01,
    /// Answer to PING.
    Pong = 0x02,
    /// Ask for the contacts closest to a target.
    FindNode = 0x03,
    /// Answer to FIND_NODE.
    FoundNodes = 0x04,
    /// Store a value under a key.
    Store = 0x05,
    /// Answer to STORE.
    StoreAck = 0x06,
    /// Ask for a value, or the contacts closest to its key.
    FindValue = 0x07,
    /// Answer to FIND_VALUE.
    FoundValue = 0x08,
    /// Mesh: (origin, version) pairs for a range of origins.
    Digest = 0x10,
    /// Mesh: one origin's record.
    Delta = 0x11,
    /// Mesh: the sender's belief and free energy.
    Belief = 0x12,
    /// Mesh: the sender is leaving.
    Leave = 0x13,
    /// Mesh: several origins' records in one frame.
    Deltas = 0x14,
    /// Mesh: one hash of every record the sender holds (a quiet round's digest).
    Summary = 0x15,
    /// Mesh: records with their origins' signatures (signed meshes).
    SignedDeltas = 0x16,
    /// Mesh: the sender is leaving, signed (signed meshes).
    SignedLeave = 0x17,
    /// Mesh: one part of a record with more than 48 queue entries.
    Chunk = 0x18,
    /// Mesh: a peer-sampling shuffle (a few contacts from the sender's sample view).
    Shuffle = 0x19,
    /// Mesh: one short hash per range of origins (where two views differ).
    Ranges = 0x1a,
}

impl MessageType {
    /// The type a header's type byte names, or `None` for an unknown one.
    pub fn from_u8(b: u8) -> Option<MessageType> {
        Some(match b {
            0x01 => MessageType::Ping,
            0x02 => MessageType::Pong,
            0x03 => MessageType::FindNode,
            0x04 => MessageType::FoundNodes,
            0x05 => MessageType::Store,
            0x06 => MessageType::StoreAck,
            0x07 => MessageType::FindValue,
            0x08 => MessageType::FoundValue,
            0x10 => MessageType::Digest,
            0x11 => MessageType::Delta,
            0x12 => MessageType::Belief,
            0x13 => MessageType::Leave,
            0x14 => MessageType::Deltas,
            0x15 => MessageType::Summary,
            0x16 => MessageType::SignedDeltas,
            0x17 => MessageType::SignedLeave,
            0x18 => MessageType::Chunk,
            0x19 => MessageType::Shuffle,
            0x1a => MessageType::Ranges,
            _ => return None,
        })
    }
}

/// A peer as carried on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Contact {
    /// Its id.
    pub id: NodeId,
    /// Its UDP address.
    pub addr: SocketAddr,
}

/// Outcome of a STORE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StoreStatus {
    /// Stored.
    Ok = 0,
    /// The value is longer than the receiver accepts.
    ValueTooLarge = 1,
    /// The receiver's store is full and the key is new.
    StoreFull = 2,
}

/// The proof a record carries in a signed mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seal {
    /// A live record, signed by its origin: `key` certifies the origin id, `sig` covers
    /// `identity::record_message(origin, version, entries_hash(record))`.
    Signed {
        /// The origin's public key.
        key: PublicKey,
        /// The origin's signature.
        sig: [u8; SIGNATURE_LEN],
    },
    /// A death certificate: the origin's signature of the live version it names (with
    /// that version's entries hash, so the version is one the origin really wrote), and
    /// the signature of the member that issued it over
    /// `identity::certificate_message(origin, version)`.
    Certified {
        /// The origin's public key.
        key: PublicKey,
        /// The origin's signature of the named version.
        sig: [u8; SIGNATURE_LEN],
        /// The hash of that version's entries.
        entries_hash: [u8; 32],
        /// The issuer's public key.
        issuer: PublicKey,
        /// The issuer's signature.
        issuer_sig: [u8; SIGNATURE_LEN],
    },
}

/// One origin's record, as carried by DELTA. Entries are strictly ascending by key.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecordWire {
    /// The node that wrote it.
    pub origin: NodeId,
    /// Its version; higher wins.
    pub version: u64,
    /// `(vertex, queue length ≥ 0)`, ascending by vertex.
    pub queue: Vec<(u32, f64)>,
    /// `(src, dst, rate ≥ 0)`, ascending by `(src, dst)`, `src != dst`.
    pub offload: Vec<(u32, u32, f64)>,
    /// Its signature block (signed meshes); `None` in unsigned ones. Sealed records
    /// travel in SIGNED_DELTAS.
    pub seal: Option<Box<Seal>>,
}

/// One part of a record too large for a frame (more than [`MAX_QUEUE_ENTRIES`] queue
/// entries), as carried by CHUNK. Part `k` of `parts` holds the record's queue entries
/// `48k .. 48k + 48`; part 0 also holds every offload entry; every part carries the whole
/// record's seal (signed meshes), which is verified once the parts are joined.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecordPart {
    /// The node that wrote the record.
    pub origin: NodeId,
    /// The record's version.
    pub version: u64,
    /// This part's index, `< parts`.
    pub part: u8,
    /// How many parts the record has (2 ..= [`MAX_PARTS`]).
    pub parts: u8,
    /// Its queue entries, ascending.
    pub queue: Vec<(u32, f64)>,
    /// The record's offload entries (part 0 only).
    pub offload: Vec<(u32, u32, f64)>,
    /// The whole record's seal: only `Seal::Signed`.
    pub seal: Option<Box<Seal>>,
}

/// Splits a record into its CHUNK parts (deterministic, so any node relaying a record
/// sends the very parts its origin sent). A record of at most [`MAX_QUEUE_ENTRIES`] queue
/// entries is one part (it travels as DELTA instead).
pub fn split_record(r: &RecordWire) -> Vec<RecordPart> {
    let parts = r.queue.len().div_ceil(MAX_QUEUE_ENTRIES).max(1);
    (0..parts)
        .map(|k| RecordPart {
            origin: r.origin,
            version: r.version,
            part: k as u8,
            parts: parts as u8,
            queue: r
                .queue
                .iter()
                .skip(k * MAX_QUEUE_ENTRIES)
                .take(MAX_QUEUE_ENTRIES)
                .copied()
                .collect(),
            offload: if k == 0 {
                r.offload.clone()
            } else {
                Vec::new()
            },
            seal: r.seal.clone(),
        })
        .collect()
}

/// Joins the parts of one record (`parts[k]` is part `k`; all of one origin, version and
/// part count, as the caller checked). The result still has to pass [`validate_record`].
pub fn join_parts(parts: &[RecordPart]) -> RecordWire {
    let first = parts.first().cloned().unwrap_or_default();
    RecordWire {
        origin: first.origin,
        version: first.version,
        queue: parts.iter().flat_map(|p| p.queue.iter().copied()).collect(),
        offload: first.offload,
        seal: first.seal,
    }
}

/// Checks a part against the limits CHUNK decoding enforces.
pub fn validate_part(p: &RecordPart) -> Result<(), EncodeError> {
    check_count("chunk queue entries", p.queue.len(), MAX_QUEUE_ENTRIES)?;
    check_count(
        "chunk offload entries",
        p.offload.len(),
        MAX_OFFLOAD_ENTRIES,
    )?;
    let bad = |what| Err(EncodeError::BadValue { what });
    if p.parts < 2 || usize::from(p.parts) > MAX_PARTS || p.part >= p.parts {
        return bad("chunk part");
    }
    if p.version & DEAD != 0 {
        return bad("chunked death certificate");
    }
    if p.part > 0 && !p.offload.is_empty() {
        return bad("offload entries after the first part");
    }
    if matches!(p.seal.as_deref(), Some(Seal::Certified { .. })) {
        return bad("chunk with a certificate's seal");
    }
    // The entries' own rules are a record's: check them as one.
    validate_record(&RecordWire {
        origin: p.origin,
        version: p.version,
        queue: p.queue.clone(),
        offload: p.offload.clone(),
        seal: None,
    })
}

/// What a FOUND_VALUE carries.
#[derive(Debug, Clone, PartialEq)]
pub enum FoundValue {
    /// The value.
    Value(Vec<u8>),
    /// No value here; the closest contacts instead.
    Nodes(Vec<Contact>),
}

/// A frame's body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// PING.
    Ping,
    /// PONG.
    Pong,
    /// FIND_NODE.
    FindNode {
        /// Target id.
        target: NodeId,
    },
    /// FOUND_NODES.
    FoundNodes {
        /// Closest contacts known to the sender.
        contacts: Vec<Contact>,
    },
    /// STORE.
    Store {
        /// Key.
        key: NodeId,
        /// Value (≤ [`MAX_VALUE_LEN`]).
        value: Vec<u8>,
    },
    /// STORE_ACK.
    StoreAck {
        /// Outcome.
        status: StoreStatus,
    },
    /// FIND_VALUE.
    FindValue {
        /// Key.
        key: NodeId,
    },
    /// FOUND_VALUE.
    FoundValue(FoundValue),
    /// DIGEST: the sender's versions for every origin in `[lo, hi]` it holds.
    Digest {
        /// A reply to a digest (replies never trigger another reply).
        reply: bool,
        /// First origin covered (inclusive).
        lo: NodeId,
        /// Last origin covered (inclusive).
        hi: NodeId,
        /// `(origin, version)`, strictly ascending, all within `[lo, hi]`.
        entries: Vec<(NodeId, u64)>,
    },
    /// DELTA (a sealed record encodes as a SIGNED_DELTAS of one record).
    Delta(RecordWire),
    /// DELTAS: 1 to [`MAX_DELTAS`] records whose encoding fits in one frame; all sealed
    /// (then the frame is SIGNED_DELTAS) or none.
    Deltas(Vec<RecordWire>),
    /// BELIEF.
    Belief {
        /// The sender's step counter.
        step: u64,
        /// The sender's variational free energy.
        free_energy: f64,
        /// The sender's belief mean.
        mean: Vec<f64>,
    },
    /// LEAVE.
    Leave,
    /// CHUNK: one part of a record with more than [`MAX_QUEUE_ENTRIES`] queue entries.
    Chunk(RecordPart),
    /// SHUFFLE: contacts from the sender's sample view (peer sampling).
    Shuffle {
        /// An answer to a shuffle (answers are not answered).
        reply: bool,
        /// At most [`MAX_CONTACTS`] contacts.
        contacts: Vec<Contact>,
    },
    /// SIGNED_LEAVE: LEAVE with the sender's key and its signature over
    /// `identity::leave_message(sender, version)`.
    SignedLeave {
        /// The version of the sender's last record.
        version: u64,
        /// The sender's public key.
        key: PublicKey,
        /// Its signature.
        sig: [u8; SIGNATURE_LEN],
    },
    /// PING with the sender's view (type `01` with a 12-byte body): what a quiet mesh
    /// sends instead of an empty PING and a SUMMARY, so that liveness and anti-entropy
    /// share one frame. Answered with PONG like PING.
    PingView {
        /// `RecordStore::view_digest` of the sender.
        view: u64,
        /// Records the sender holds.
        records: u32,
    },
    /// RANGES: the origin id space cut into `2^bits` equal ranges by the ids' first `bits`
    /// bits, and for each (ascending) a 32-bit hash of the sender's records in it
    /// (`RecordStore::range_hashes`): the answer to a SUMMARY whose view differs, so that
    /// the receiver finds in one frame which ranges differ and sends their DIGEST pages.
    Ranges {
        /// At most [`MAX_RANGE_BITS`].
        bits: u8,
        /// Exactly `2^bits` hashes.
        hashes: Vec<u32>,
    },
    /// SUMMARY: the sender's view digest over every record it holds, how many, and the
    /// record it learned or wrote last.
    Summary {
        /// `RecordStore::view_digest` of the sender.
        view: u64,
        /// Records the sender holds.
        records: u32,
        /// Origin of the record the sender changed last (zero id: none).
        latest_origin: NodeId,
        /// Its version there (0: none).
        latest_version: u64,
    },
}

impl Body {
    /// The type byte this body encodes as.
    pub fn message_type(&self) -> MessageType {
        match self {
            Body::Ping | Body::PingView { .. } => MessageType::Ping,
            Body::Pong => MessageType::Pong,
            Body::FindNode { .. } => MessageType::FindNode,
            Body::FoundNodes { .. } => MessageType::FoundNodes,
            Body::Store { .. } => MessageType::Store,
            Body::StoreAck { .. } => MessageType::StoreAck,
            Body::FindValue { .. } => MessageType::FindValue,
            Body::FoundValue(_) => MessageType::FoundValue,
            Body::Digest { .. } => MessageType::Digest,
            Body::Delta(r) if r.seal.is_some() => MessageType::SignedDeltas,
            Body::Delta(_) => MessageType::Delta,
            Body::Deltas(rs) if rs.first().is_some_and(|r| r.seal.is_some()) => {
                MessageType::SignedDeltas
            }
            Body::Deltas(_) => MessageType::Deltas,
            Body::SignedLeave { .. } => MessageType::SignedLeave,
            Body::Chunk(_) => MessageType::Chunk,
            Body::Shuffle { .. } => MessageType::Shuffle,
            Body::Belief { .. } => MessageType::Belief,
            Body::Leave => MessageType::Leave,
            Body::Summary { .. } => MessageType::Summary,
            Body::Ranges { .. } => MessageType::Ranges,
        }
    }
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Matches a reply to its request; 0 for unsolicited messages.
    pub request_id: u64,
    /// The sender's id.
    pub sender: NodeId,
    /// The message.
    pub body: Body,
}

/// Why a byte string is not a frame. Each kind is counted separately by the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Shorter than the header.
    #[error("frame of {len} bytes is shorter than the {HEADER_LEN}-byte header")]
    TooShort {
        /// Bytes received.
        len: usize,
    },
    /// Longer than [`MAX_FRAME`].
    #[error("frame of {len} bytes exceeds the {MAX_FRAME}-byte limit")]
    Oversized {
        /// Bytes received.
        len: usize,
    },
    /// Wrong magic.
    #[error("bad magic {0:02x?}")]
    BadMagic([u8; 2]),
    /// A version this code does not speak.
    #[error("unsupported protocol version {0}")]
    UnknownVersion(u8),
    /// An unknown type byte.
    #[error("unknown message type 0x{0:02x}")]
    UnknownType(u8),
    /// The body is shorter than its fixed part or its counts say.
    #[error("{what}: body needs {needed} bytes but {available} remain")]
    Truncated {
        /// Field being read.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// Bytes left over after the body.
    #[error("{extra} trailing bytes after the body")]
    Trailing {
        /// Extra bytes.
        extra: usize,
    },
    /// A field holds a value outside its range (count over the limit, non-finite or
    /// negative number, unsorted entries, unknown enum byte).
    #[error("invalid {what}")]
    BadValue {
        /// Which field.
        what: &'static str,
    },
}

impl DecodeError {
    /// A short stable name for counters and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::TooShort { .. } => "too_short",
            DecodeError::Oversized { .. } => "oversized",
            DecodeError::BadMagic(_) => "bad_magic",
            DecodeError::UnknownVersion(_) => "unknown_version",
            DecodeError::UnknownType(_) => "unknown_type",
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::Trailing { .. } => "trailing",
            DecodeError::BadValue { .. } => "bad_value",
        }
    }
}

/// Why a frame could not be encoded (the caller built a body over the limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// A list or value exceeds its limit.
    #[error("{what} has {got} entries, the limit is {max}")]
    TooMany {
        /// Which field.
        what: &'static str,
        /// Entries given.
        got: usize,
        /// Limit.
        max: usize,
    },
    /// A number is non-finite or out of range, or entries are unsorted.
    #[error("invalid {what}")]
    BadValue {
        /// Which field.
        what: &'static str,
    },
}

// ---------------------------------------------------------------------------------------
// Encoding

fn put_contact(out: &mut Vec<u8>, c: &Contact) {
    out.extend_from_slice(&c.id.0);
    let v6 = match c.addr.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    out.extend_from_slice(&v6.octets());
    out.extend_from_slice(&c.addr.port().to_be_bytes());
}

fn check_count(what: &'static str, got: usize, max: usize) -> Result<(), EncodeError> {
    if got > max {
        Err(EncodeError::TooMany { what, got, max })
    } else {
        Ok(())
    }
}

fn put_record(out: &mut Vec<u8>, r: &RecordWire, sealed: bool) -> Result<(), EncodeError> {
    validate_record(r)?;
    if r.seal.is_some() != sealed {
        return Err(EncodeError::BadValue {
            what: "sealed and unsealed records in one frame",
        });
    }
    check_count(
        "queue entries in one frame (larger records travel as CHUNK)",
        r.queue.len(),
        MAX_QUEUE_ENTRIES,
    )?;
    if r.seal.is_some() {
        check_count(
            "sealed record bytes",
            HEADER_LEN + 1 + record_wire_len(r),
            MAX_FRAME,
        )?;
    }
    out.extend_from_slice(&r.origin.0);
    out.extend_from_slice(&r.version.to_be_bytes());
    out.push(r.queue.len() as u8);
    out.push(r.offload.len() as u8);
    put_entries(out, &r.queue, &r.offload);
    put_seal(out, r.seal.as_deref());
    Ok(())
}

fn put_part(out: &mut Vec<u8>, p: &RecordPart) -> Result<(), EncodeError> {
    validate_part(p)?;
    out.extend_from_slice(&p.origin.0);
    out.extend_from_slice(&p.version.to_be_bytes());
    out.push(p.part);
    out.push(p.parts);
    out.push(p.queue.len() as u8);
    out.push(p.offload.len() as u8);
    put_entries(out, &p.queue, &p.offload);
    match p.seal.as_deref() {
        None => out.push(0),
        seal => put_seal(out, seal),
    }
    Ok(())
}

fn put_entries(out: &mut Vec<u8>, queue: &[(u32, f64)], offload: &[(u32, u32, f64)]) {
    for (v, q) in queue {
        out.extend_from_slice(&v.to_be_bytes());
        out.extend_from_slice(&q.to_bits().to_be_bytes());
    }
    for (s, d, x) in offload {
        out.extend_from_slice(&s.to_be_bytes());
        out.extend_from_slice(&d.to_be_bytes());
        out.extend_from_slice(&x.to_bits().to_be_bytes());
    }
}

fn put_seal(out: &mut Vec<u8>, seal: Option<&Seal>) {
    match seal {
        None => {}
        Some(Seal::Signed { key, sig }) => {
            out.push(1);
            out.extend_from_slice(&key.0);
            out.extend_from_slice(sig);
        }
        Some(Seal::Certified {
            key,
            sig,
            entries_hash,
            issuer,
            issuer_sig,
        }) => {
            out.push(2);
            out.extend_from_slice(&key.0);
            out.extend_from_slice(sig);
            out.extend_from_slice(entries_hash);
            out.extend_from_slice(&issuer.0);
            out.extend_from_slice(issuer_sig);
        }
    }
}

fn put_contacts(out: &mut Vec<u8>, cs: &[Contact]) -> Result<(), EncodeError> {
    check_count("contacts", cs.len(), MAX_CONTACTS)?;
    out.push(cs.len() as u8);
    for c in cs {
        put_contact(out, c);
    }
    Ok(())
}

/// Checks a record against the limits and invariants DELTA decoding enforces.
pub fn validate_record(r: &RecordWire) -> Result<(), EncodeError> {
    check_count("queue entries", r.queue.len(), MAX_RECORD_QUEUE_ENTRIES)?;
    // The top version bit marks a death certificate, which withdraws every entry.
    if r.version & DEAD != 0 && !(r.queue.is_empty() && r.offload.is_empty()) {
        return Err(EncodeError::BadValue {
            what: "death certificate with entries",
        });
    }
    check_count("offload entries", r.offload.len(), MAX_OFFLOAD_ENTRIES)?;
    match r.seal.as_deref() {
        Some(Seal::Signed { .. }) if r.version & DEAD != 0 => {
            return Err(EncodeError::BadValue {
                what: "death certificate with a record's seal",
            })
        }
        Some(Seal::Certified { .. }) if r.version & DEAD == 0 => {
            return Err(EncodeError::BadValue {
                what: "live record with a certificate's seal",
            })
        }
        _ => {}
    }
    for (k, &(v, q)) in r.queue.iter().enumerate() {
        if !is_record_value(q) {
            return Err(EncodeError::BadValue {
                what: "queue length",
            });
        }
        if k > 0 && r.queue[k - 1].0 >= v {
            return Err(EncodeError::BadValue {
                what: "queue order",
            });
        }
    }
    for (k, &(s, d, x)) in r.offload.iter().enumerate() {
        if !is_record_value(x) || s == d {
            return Err(EncodeError::BadValue {
                what: "offload entry",
            });
        }
        if k > 0 && (r.offload[k - 1].0, r.offload[k - 1].1) >= (s, d) {
            return Err(EncodeError::BadValue {
                what: "offload order",
            });
        }
    }
    Ok(())
}

impl Frame {
    /// A frame.
    pub fn new(request_id: u64, sender: NodeId, body: Body) -> Frame {
        Frame {
            request_id,
            sender,
            body,
        }
    }

    /// Encodes the frame; the result is at most [`MAX_FRAME`] bytes.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(128);
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Encodes the frame, appending to `out` (cleared first).
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.clear();
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.body.message_type() as u8);
        out.extend_from_slice(&self.request_id.to_be_bytes());
        out.extend_from_slice(&self.sender.0);
        match &self.body {
            Body::Ping | Body::Pong | Body::Leave => {}
            Body::PingView { view, records } => {
                out.extend_from_slice(&view.to_be_bytes());
                out.extend_from_slice(&records.to_be_bytes());
            }
            Body::SignedLeave { version, key, sig } => {
                out.extend_from_slice(&version.to_be_bytes());
                out.extend_from_slice(&key.0);
                out.extend_from_slice(sig);
            }
            Body::Shuffle { reply, contacts } => {
                out.push(u8::from(*reply));
                put_contacts(out, contacts)?;
            }
            Body::Chunk(p) => {
                put_part(out, p)?;
                check_count("chunk bytes", out.len(), MAX_FRAME)?;
            }
            Body::Summary {
                view,
                records,
                latest_origin,
                latest_version,
            } => {
                out.extend_from_slice(&view.to_be_bytes());
                out.extend_from_slice(&records.to_be_bytes());
                out.extend_from_slice(&latest_origin.0);
                out.extend_from_slice(&latest_version.to_be_bytes());
            }
            Body::Ranges { bits, hashes } => {
                if *bits > MAX_RANGE_BITS || hashes.len() != 1usize << bits {
                    return Err(EncodeError::BadValue { what: "ranges" });
                }
                out.push(*bits);
                for h in hashes {
                    out.extend_from_slice(&h.to_be_bytes());
                }
            }
            Body::FindNode { target } => out.extend_from_slice(&target.0),
            Body::FindValue { key } => out.extend_from_slice(&key.0),
            Body::FoundNodes { contacts } => put_contacts(out, contacts)?,
            Body::Store { key, value } => {
                check_count("value bytes", value.len(), MAX_VALUE_LEN)?;
                out.extend_from_slice(&key.0);
                out.extend_from_slice(&(value.len() as u16).to_be_bytes());
                out.extend_from_slice(value);
            }
            Body::StoreAck { status } => out.push(*status as u8),
            Body::FoundValue(FoundValue::Value(value)) => {
                check_count("value bytes", value.len(), MAX_VALUE_LEN)?;
                out.push(0);
                out.extend_from_slice(&(value.len() as u16).to_be_bytes());
                out.extend_from_slice(value);
            }
            Body::FoundValue(FoundValue::Nodes(contacts)) => {
                out.push(1);
                put_contacts(out, contacts)?;
            }
            Body::Digest {
                reply,
                lo,
                hi,
                entries,
            } => {
                check_count("digest entries", entries.len(), MAX_DIGEST_ENTRIES)?;
                if lo > hi {
                    return Err(EncodeError::BadValue {
                        what: "digest range",
                    });
                }
                for (k, (o, _)) in entries.iter().enumerate() {
                    if o < lo || o > hi || (k > 0 && entries[k - 1].0 >= *o) {
                        return Err(EncodeError::BadValue {
                            what: "digest order",
                        });
                    }
                }
                out.push(*reply as u8);
                out.extend_from_slice(&lo.0);
                out.extend_from_slice(&hi.0);
                out.push(entries.len() as u8);
                for (o, v) in entries {
                    out.extend_from_slice(&o.0);
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            Body::Delta(r) if r.seal.is_some() => {
                out.push(1);
                put_record(out, r, true)?;
            }
            Body::Delta(r) => put_record(out, r, false)?,
            Body::Deltas(rs) => {
                if rs.is_empty() {
                    return Err(EncodeError::BadValue {
                        what: "empty deltas",
                    });
                }
                check_count("deltas", rs.len(), MAX_DELTAS)?;
                let bytes: usize = rs.iter().map(record_wire_len).sum();
                check_count("deltas bytes", HEADER_LEN + 1 + bytes, MAX_FRAME)?;
                out.push(rs.len() as u8);
                let sealed = rs[0].seal.is_some();
                for r in rs {
                    put_record(out, r, sealed)?;
                }
            }
            Body::Belief {
                step,
                free_energy,
                mean,
            } => {
                check_count("belief dimension", mean.len(), MAX_BELIEF_DIM)?;
                if !free_energy.is_finite() || mean.iter().any(|x| !x.is_finite()) {
                    return Err(EncodeError::BadValue { what: "belief" });
                }
                out.extend_from_slice(&step.to_be_bytes());
                out.extend_from_slice(&free_energy.to_bits().to_be_bytes());
                out.push(mean.len() as u8);
                for x in mean {
                    out.extend_from_slice(&x.to_bits().to_be_bytes());
                }
            }
        }
        debug_assert!(
            out.len() <= MAX_FRAME,
            "limits keep every frame within MAX_FRAME"
        );
        Ok(())
    }

    /// Decodes one datagram. Total: never panics, allocates at most the frame's size.
    pub fn decode(bytes: &[u8]) -> Result<Frame, DecodeError> {
        if bytes.len() > MAX_FRAME {
            return Err(DecodeError::Oversized { len: bytes.len() });
        }
        if bytes.len() < HEADER_LEN {
            return Err(DecodeError::TooShort { len: bytes.len() });
        }
        let mut r = Reader { buf: bytes, pos: 0 };
        let magic = r.array::<2>("magic")?;
        if magic != MAGIC {
            return Err(DecodeError::BadMagic(magic));
        }
        let version = r.u8("version")?;
        if version != VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        let ty_byte = r.u8("type")?;
        let ty = MessageType::from_u8(ty_byte).ok_or(DecodeError::UnknownType(ty_byte))?;
        let request_id = r.u64("request id")?;
        let sender = r.id("sender")?;
        let body = match ty {
            // An empty PING, or one with the sender's view (any other length is
            // truncated or trailing, as for every body).
            MessageType::Ping if r.pos == r.buf.len() => Body::Ping,
            MessageType::Ping => Body::PingView {
                view: r.u64("ping view")?,
                records: r.u32("ping records")?,
            },
            MessageType::Pong => Body::Pong,
            MessageType::Leave => Body::Leave,
            MessageType::Chunk => Body::Chunk(r.part()?),
            MessageType::Shuffle => Body::Shuffle {
                reply: match r.u8("shuffle flags")? {
                    0 => false,
                    1 => true,
                    _ => {
                        return Err(DecodeError::BadValue {
                            what: "shuffle flags",
                        })
                    }
                },
                contacts: r.contacts()?,
            },
            MessageType::SignedLeave => Body::SignedLeave {
                version: r.u64("leave version")?,
                key: PublicKey(r.array("leave key")?),
                sig: r.array("leave signature")?,
            },
            MessageType::Summary => Body::Summary {
                view: r.u64("summary view")?,
                records: r.u32("summary records")?,
                latest_origin: r.id("summary latest origin")?,
                latest_version: r.u64("summary latest version")?,
            },
            MessageType::Ranges => {
                let bits = r.u8("range bits")?;
                if bits > MAX_RANGE_BITS {
                    return Err(DecodeError::BadValue { what: "range bits" });
                }
                // At most 2^MAX_RANGE_BITS hashes, whatever the frame claims.
                let mut hashes = Vec::with_capacity(1 << bits);
                for _ in 0..1u32 << bits {
                    hashes.push(r.u32("range hash")?);
                }
                Body::Ranges { bits, hashes }
            }
            MessageType::FindNode => Body::FindNode {
                target: r.id("target")?,
            },
            MessageType::FindValue => Body::FindValue { key: r.id("key")? },
            MessageType::FoundNodes => Body::FoundNodes {
                contacts: r.contacts()?,
            },
            MessageType::Store => {
                let key = r.id("key")?;
                let value = r.value()?;
                Body::Store { key, value }
            }
            MessageType::StoreAck => Body::StoreAck {
                status: match r.u8("store status")? {
                    0 => StoreStatus::Ok,
                    1 => StoreStatus::ValueTooLarge,
                    2 => StoreStatus::StoreFull,
                    _ => {
                        return Err(DecodeError::BadValue {
                            what: "store status",
                        })
                    }
                },
            },
            MessageType::FoundValue => match r.u8("found-value kind")? {
                0 => Body::FoundValue(FoundValue::Value(r.value()?)),
                1 => Body::FoundValue(FoundValue::Nodes(r.contacts()?)),
                _ => {
                    return Err(DecodeError::BadValue {
                        what: "found-value kind",
                    })
                }
            },
            MessageType::Digest => {
                let reply = match r.u8("digest flags")? {
                    0 => false,
                    1 => true,
                    _ => {
                        return Err(DecodeError::BadValue {
                            what: "digest flags",
                        })
                    }
                };
                let lo = r.id("digest lo")?;
                let hi = r.id("digest hi")?;
                if lo > hi {
                    return Err(DecodeError::BadValue {
                        what: "digest range",
                    });
                }
                let n = r.count("digest entries", MAX_DIGEST_ENTRIES, ID_LEN + 8)?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let o = r.id("digest origin")?;
                    let v = r.u64("digest version")?;
                    if o < lo || o > hi || entries.last().is_some_and(|&(p, _)| p >= o) {
                        return Err(DecodeError::BadValue {
                            what: "digest order",
                        });
                    }
                    entries.push((o, v));
                }
                Body::Digest {
                    reply,
                    lo,
                    hi,
                    entries,
                }
            }
            MessageType::Delta => Body::Delta(r.record(false)?),
            MessageType::Deltas | MessageType::SignedDeltas => {
                let sealed = ty == MessageType::SignedDeltas;
                let n = r.count("deltas", MAX_DELTAS, RECORD_BASE_LEN)?;
                if n == 0 {
                    return Err(DecodeError::BadValue {
                        what: "empty deltas",
                    });
                }
                let mut rs = Vec::with_capacity(n);
                for _ in 0..n {
                    rs.push(r.record(sealed)?);
                }
                Body::Deltas(rs)
            }
            MessageType::Belief => {
                let step = r.u64("belief step")?;
                let free_energy = r.f64("free energy")?;
                let n = r.count("belief dimension", MAX_BELIEF_DIM, 8)?;
                let mut mean = Vec::with_capacity(n);
                for _ in 0..n {
                    mean.push(r.f64("belief mean")?);
                }
                if !free_energy.is_finite() || mean.iter().any(|x| !x.is_finite()) {
                    return Err(DecodeError::BadValue { what: "belief" });
                }
                Body::Belief {
                    step,
                    free_energy,
                    mean,
                }
            }
        };
        if r.pos != bytes.len() {
            return Err(DecodeError::Trailing {
                extra: bytes.len() - r.pos,
            });
        }
        Ok(Frame {
            request_id,
            sender,
            body,
        })
    }
}

/// A validation failure of decoded content, as the decoder reports it.
fn invalid(e: EncodeError) -> DecodeError {
    match e {
        EncodeError::TooMany { what, .. } | EncodeError::BadValue { what } => {
            DecodeError::BadValue { what }
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn need(&self, what: &'static str, n: usize) -> Result<(), DecodeError> {
        let available = self.buf.len() - self.pos;
        if n > available {
            Err(DecodeError::Truncated {
                what,
                needed: n,
                available,
            })
        } else {
            Ok(())
        }
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        self.need(what, N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[self.pos..self.pos + N]);
        self.pos += N;
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    fn f64(&mut self, what: &'static str) -> Result<f64, DecodeError> {
        Ok(f64::from_bits(self.u64(what)?))
    }

    fn id(&mut self, what: &'static str) -> Result<NodeId, DecodeError> {
        Ok(NodeId(self.array(what)?))
    }

    /// Reads one record (origin, version, both entry lists, and its seal when `sealed`)
    /// and validates it.
    fn record(&mut self, sealed: bool) -> Result<RecordWire, DecodeError> {
        let origin = self.id("origin")?;
        let version = self.u64("version")?;
        let (queue, offload) = self.entries("record entry count", "record entries")?;
        let mut rec = RecordWire {
            origin,
            version,
            queue,
            offload,
            seal: None,
        };
        if sealed {
            let kind = self.u8("seal kind")?;
            rec.seal = Some(Box::new(self.seal(kind)?));
        }
        validate_record(&rec).map_err(invalid)?;
        Ok(rec)
    }

    /// Reads one CHUNK part and validates it.
    fn part(&mut self) -> Result<RecordPart, DecodeError> {
        let origin = self.id("origin")?;
        let version = self.u64("version")?;
        let part = self.u8("part")?;
        let parts = self.u8("parts")?;
        let (queue, offload) = self.entries("chunk entry count", "chunk entries")?;
        // A part carries no seal or a record's signature (never a certificate's).
        let seal = match self.u8("seal kind")? {
            0 => None,
            1 => Some(Box::new(self.seal(1)?)),
            _ => return Err(DecodeError::BadValue { what: "seal kind" }),
        };
        let p = RecordPart {
            origin,
            version,
            part,
            parts,
            queue,
            offload,
            seal,
        };
        validate_part(&p).map_err(invalid)?;
        Ok(p)
    }

    /// The two counts and both entry lists of a record or part (unvalidated order and
    /// values; the caller validates the whole).
    #[allow(clippy::type_complexity)]
    fn entries(
        &mut self,
        count_what: &'static str,
        what: &'static str,
    ) -> Result<(Vec<(u32, f64)>, Vec<(u32, u32, f64)>), DecodeError> {
        let nq = self.u8("queue count")? as usize;
        let no = self.u8("offload count")? as usize;
        if nq > MAX_QUEUE_ENTRIES || no > MAX_OFFLOAD_ENTRIES {
            return Err(DecodeError::BadValue { what: count_what });
        }
        self.need(what, nq * 12 + no * 16)?;
        let mut queue = Vec::with_capacity(nq);
        for _ in 0..nq {
            let v = self.u32("vertex")?;
            let q = self.f64("queue length")?;
            queue.push((v, q));
        }
        let mut offload = Vec::with_capacity(no);
        for _ in 0..no {
            let s = self.u32("src")?;
            let d = self.u32("dst")?;
            let x = self.f64("rate")?;
            offload.push((s, d, x));
        }
        Ok((queue, offload))
    }

    /// The seal that follows its kind byte: 1 a record's signature, 2 a certificate's.
    fn seal(&mut self, kind: u8) -> Result<Seal, DecodeError> {
        Ok(match kind {
            1 => Seal::Signed {
                key: PublicKey(self.array("seal key")?),
                sig: self.array("seal signature")?,
            },
            2 => Seal::Certified {
                key: PublicKey(self.array("seal key")?),
                sig: self.array("seal signature")?,
                entries_hash: self.array("seal entries hash")?,
                issuer: PublicKey(self.array("seal issuer")?),
                issuer_sig: self.array("seal issuer signature")?,
            },
            _ => return Err(DecodeError::BadValue { what: "seal kind" }),
        })
    }

    /// Reads a one-byte count, checks it against `max` and against the bytes present.
    fn count(&mut self, what: &'static str, max: usize, each: usize) -> Result<usize, DecodeError> {
        let n = self.u8(what)? as usize;
        if n > max {
            return Err(DecodeError::BadValue { what });
        }
        self.need(what, n * each)?;
        Ok(n)
    }

    fn contacts(&mut self) -> Result<Vec<Contact>, DecodeError> {
        let n = self.count("contacts", MAX_CONTACTS, CONTACT_LEN)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let id = self.id("contact id")?;
            let ip = Ipv6Addr::from(self.array::<16>("contact address")?);
            let port = self.u16("contact port")?;
            let ip = match ip.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(ip),
            };
            if port == 0 || ip.is_unspecified() || ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
                return Err(DecodeError::BadValue {
                    what: "contact address",
                });
            }
            out.push(Contact {
                id,
                addr: SocketAddr::new(ip, port),
            });
        }
        Ok(out)
    }

    fn value(&mut self) -> Result<Vec<u8>, DecodeError> {
        let n = self.u16("value length")? as usize;
        if n > MAX_VALUE_LEN {
            return Err(DecodeError::BadValue {
                what: "value length",
            });
        }
        self.need("value", n)?;
        let v = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(v)
    }
}
