//! What a node counts (traffic, work, dropped frames by reason) and the snapshot it
//! reports.

use crate::p2p::{DecodeError, NodeId};

/// Frames dropped, by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropCounters {
    /// Shorter than a header.
    pub too_short: u64,
    /// Longer than the frame limit.
    pub oversized: u64,
    /// Wrong magic.
    pub bad_magic: u64,
    /// Unknown protocol version.
    pub unknown_version: u64,
    /// Unknown message type.
    pub unknown_type: u64,
    /// Body shorter than its lengths say.
    pub truncated: u64,
    /// Bytes after the body.
    pub trailing: u64,
    /// A field out of range.
    pub bad_value: u64,
    /// A frame claiming our own id.
    pub own_id: u64,
    /// A reply matching no outstanding request.
    pub unmatched_reply: u64,
    /// A record naming vertices or edges outside the topology.
    pub bad_record: u64,
    /// A new origin while the record store is full.
    pub records_full: u64,
    /// A belief from a new peer while the belief table is full.
    pub beliefs_full: u64,
    /// To or from a blocked address (counted by the transport driver).
    pub blocked: u64,
    /// Without a valid authentication tag (keyed meshes only).
    pub bad_auth: u64,
    /// A LEAVE in the name of a peer from another address than the one held for it, or
    /// (signed meshes) naming a version older than the one held for it.
    pub bad_leave: u64,
    /// A record or LEAVE without a signature in a signed mesh.
    pub unsigned: u64,
    /// A record, certificate or LEAVE whose signature does not verify, or whose key does
    /// not certify the id it speaks for (signed meshes).
    pub bad_signature: u64,
    /// Signed by a key the allowlist does not hold, or sent by an id it does not certify
    /// (signed meshes with an allowlist).
    pub not_admitted: u64,
}

impl DropCounters {
    /// Sum of every reason.
    pub fn total(&self) -> u64 {
        self.by_reason().iter().map(|(_, n)| n).sum()
    }

    /// Every reason with its name (as metrics label it) and count.
    pub fn by_reason(&self) -> [(&'static str, u64); 19] {
        [
            ("too_short", self.too_short),
            ("oversized", self.oversized),
            ("bad_magic", self.bad_magic),
            ("unknown_version", self.unknown_version),
            ("unknown_type", self.unknown_type),
            ("truncated", self.truncated),
            ("trailing", self.trailing),
            ("bad_value", self.bad_value),
            ("own_id", self.own_id),
            ("unmatched_reply", self.unmatched_reply),
            ("bad_record", self.bad_record),
            ("records_full", self.records_full),
            ("beliefs_full", self.beliefs_full),
            ("blocked", self.blocked),
            ("bad_auth", self.bad_auth),
            ("bad_leave", self.bad_leave),
            ("unsigned", self.unsigned),
            ("bad_signature", self.bad_signature),
            ("not_admitted", self.not_admitted),
        ]
    }

    /// Frames that failed to decode: every reason the wire codec can give.
    pub fn malformed(&self) -> u64 {
        self.too_short
            + self.oversized
            + self.bad_magic
            + self.unknown_version
            + self.unknown_type
            + self.truncated
            + self.trailing
            + self.bad_value
    }

    /// Counts a decoding failure under its reason.
    pub(crate) fn count_decode(&mut self, e: &DecodeError) {
        let slot = match e {
            DecodeError::TooShort { .. } => &mut self.too_short,
            DecodeError::Oversized { .. } => &mut self.oversized,
            DecodeError::BadMagic(_) => &mut self.bad_magic,
            DecodeError::UnknownVersion(_) => &mut self.unknown_version,
            DecodeError::UnknownType(_) => &mut self.unknown_type,
            DecodeError::Truncated { .. } => &mut self.truncated,
            DecodeError::Trailing { .. } => &mut self.trailing,
            DecodeError::BadValue { .. } => &mut self.bad_value,
        };
        *slot += 1;
    }
}

/// Traffic and work counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Datagrams handed to `handle_datagram`.
    pub frames_in: u64,
    /// Datagrams handed out by `poll_transmit`.
    pub frames_out: u64,
    /// Bytes in.
    pub bytes_in: u64,
    /// Bytes out.
    pub bytes_out: u64,
    /// Dropped frames by reason.
    pub dropped: DropCounters,
    /// Records applied from the network.
    pub records_merged: u64,
    /// Death certificates this node issued (for peers that went unresponsive).
    pub death_certificates: u64,
    /// Times this node took a new id because its own origin was pushed past the top of
    /// the version range (see `NodeState::rotate_identity`).
    pub identity_rotations: u64,
    /// Orphan probes started (lookups of held origins no routing table here holds).
    pub orphan_probes: u64,
    /// DIGEST frames sent.
    pub digests_sent: u64,
    /// DELTA frames sent.
    pub deltas_sent: u64,
    /// BELIEF frames received.
    pub beliefs_in: u64,
    /// Layer-stack steps run.
    pub layer_steps: u64,
    /// Layer-stack steps that failed (the node keeps running).
    pub layer_errors: u64,
    /// Backend loads left out of our record because it was full (summed over steps).
    pub unpublished_backends: u64,
    /// Frames that could not be encoded (a bug if ever non-zero).
    pub encode_errors: u64,
    /// Datagrams the socket refused to send (an unreachable or unusable destination);
    /// the node counts them and goes on with the rest.
    pub send_errors: u64,
}

/// Age of the other origins' records at one node (see `NodeState::record_ages`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RecordAges {
    /// Other origins whose record this node holds.
    pub origins: usize,
    /// Mean time since each last changed here, in milliseconds.
    pub mean_ms: f64,
    /// The longest such time, in milliseconds.
    pub max_ms: u64,
}

/// A snapshot of the node.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// Our id.
    pub id: NodeId,
    /// Peers in the routing table.
    pub peers: usize,
    /// Records held (ours included once we have written).
    pub records: usize,
    /// Version of our own record.
    pub own_version: u64,
    /// Residual of the last reconciliation.
    pub last_residual: f64,
    /// Iterations of the last reconciliation's solve: 0 when the exact sparse factor
    /// solved it (the default while the factor fits), CG iterations otherwise.
    pub last_iterations: usize,
    /// Our term of the collective free energy (`F − φ`) at the last layer step.
    pub f_collective: f64,
    /// Our agent's free energy at the last layer step.
    pub free_energy: f64,
    /// Our dividend share at the last layer step.
    pub dividend: f64,
    /// Our agent's latent dimension.
    pub latent_dim: usize,
    /// Values in the local DHT store.
    pub dht_values: usize,
    /// Counters.
    pub counters: Counters,
}
