//! The node's own record: the one piece of replicated state this node writes.
//!
//! The invariant "the record store holds exactly this record under our origin, and a
//! changed record is published at the next gossip round and re-settled" is kept by
//! [`OwnRecord::commit`], the only place the record changes. (Re-settling follows from the
//! store: every write moves its generation.)

use super::config::MAX_INCARNATION;
use super::records::{version_order, RecordStore, DEAD};
use super::MeshError;
use crate::p2p::identity::record_message;
use crate::p2p::protocol::{
    entries_hash, RecordWire, Seal, CHUNK_BASE_LEN, HEADER_LEN, MAX_FRAME, MAX_OFFLOAD_ENTRIES,
    MAX_QUEUE_ENTRIES, MAX_RECORD_QUEUE_ENTRIES, SIGNED_SEAL_LEN,
};
use crate::p2p::{Identity, NodeId};

/// This node's record and whether peers still have to be sent its latest version.
#[derive(Debug, Clone)]
pub(crate) struct OwnRecord {
    wire: RecordWire,
    unpublished: bool,
    /// Signs every version (signed meshes).
    identity: Option<Identity>,
    /// Most offload entries: what still fits one datagram with every queue entry, the
    /// signature block and the datagram's authentication bytes.
    max_offload: usize,
}

/// Most offload entries a record of this node may hold so that, with
/// [`MAX_QUEUE_ENTRIES`] queue entries, it fits one datagram of [`MAX_FRAME`] bytes
/// whose authentication (tag or encryption envelope) takes `overhead` bytes, as a DELTAS
/// record or as the first CHUNK part of a larger record (the larger framing of the two).
pub(crate) fn max_offload_entries(signed: bool, overhead: usize) -> usize {
    let seal = if signed { SIGNED_SEAL_LEN - 1 } else { 0 };
    let room = MAX_FRAME
        .saturating_sub(HEADER_LEN + CHUNK_BASE_LEN + 12 * MAX_QUEUE_ENTRIES)
        .saturating_sub(seal + overhead);
    (room / 16).min(MAX_OFFLOAD_ENTRIES)
}

/// An entry of a record list, kept sorted by its key.
trait Entry {
    type Key: Ord + Copy;
    fn key(&self) -> Self::Key;
    fn value_mut(&mut self) -> &mut f64;
    fn make(key: Self::Key, value: f64) -> Self;
}

impl Entry for (u32, f64) {
    type Key = u32;
    fn key(&self) -> u32 {
        self.0
    }
    fn value_mut(&mut self) -> &mut f64 {
        &mut self.1
    }
    fn make(vertex: u32, value: f64) -> Self {
        (vertex, value)
    }
}

impl Entry for (u32, u32, f64) {
    type Key = (u32, u32);
    fn key(&self) -> (u32, u32) {
        (self.0, self.1)
    }
    fn value_mut(&mut self) -> &mut f64 {
        &mut self.2
    }
    fn make((src, dst): (u32, u32), value: f64) -> Self {
        (src, dst, value)
    }
}

/// Sets the entry `key` of a sorted list to `value`; 0 removes it. A new entry beyond
/// `max` is refused and nothing changes. Returns whether the list changed (writing the
/// value it already holds changes nothing).
fn upsert<E: Entry>(
    list: &mut Vec<E>,
    key: E::Key,
    value: f64,
    max: usize,
    what: &'static str,
) -> Result<bool, MeshError> {
    match list.binary_search_by_key(&key, E::key) {
        Ok(k) if value == 0.0 => {
            list.remove(k);
        }
        // The same value again is no write: no new version, nothing to gossip.
        Ok(k) if list[k].value_mut().to_bits() == value.to_bits() => return Ok(false),
        Ok(k) => *list[k].value_mut() = value,
        Err(_) if value == 0.0 => return Ok(false),
        Err(k) => {
            if list.len() >= max {
                return Err(MeshError::RecordFull { what, max });
            }
            list.insert(k, E::make(key, value));
        }
    }
    Ok(true)
}

impl OwnRecord {
    /// An empty record whose versions start at `incarnation << 20`, signed by `identity`
    /// when given, with at most `max_offload` offload entries.
    pub fn new(
        id: NodeId,
        incarnation: u64,
        identity: Option<Identity>,
        max_offload: usize,
    ) -> OwnRecord {
        OwnRecord {
            identity,
            max_offload,
            wire: RecordWire {
                origin: id,
                version: incarnation.min(MAX_INCARNATION) << 20,
                queue: Vec::new(),
                offload: Vec::new(),
                seal: None,
            },
            unpublished: false,
        }
    }

    /// The record as published.
    pub fn wire(&self) -> &RecordWire {
        &self.wire
    }

    /// Its version.
    pub fn version(&self) -> u64 {
        self.wire.version
    }

    /// Whether a change waits to be published.
    pub fn pending(&self) -> bool {
        self.unpublished && self.wire.version > 0
    }

    /// True once after each change (once a version has been written): the caller then
    /// publishes the record.
    pub fn take_unpublished(&mut self) -> bool {
        let due = self.unpublished && self.wire.version > 0;
        if due {
            self.unpublished = false;
        }
        due
    }

    /// The one write: stores the record at `version` and marks it for publication.
    fn commit(&mut self, records: &mut RecordStore, version: u64) {
        self.wire.version = version;
        self.wire.seal = self.identity.as_ref().map(|identity| {
            let message = record_message(&self.wire.origin, version, &entries_hash(&self.wire));
            Box::new(Seal::Signed {
                key: identity.public_key(),
                sig: identity.sign(&message),
            })
        });
        records.put_own(self.wire.clone());
        self.unpublished = true;
    }

    /// The version after ours. Saturating: a version pushed to the top by a forged frame
    /// must not wrap to 0, and own versions stay below [`DEAD`] (they start at most at
    /// `MAX_INCARNATION << 20`, 2^20 writes below it).
    fn next_version(&self) -> u64 {
        self.wire.version.saturating_add(1).min(DEAD - 1)
    }

    /// Sets our queue length at `vertex` (0 removes it); the caller has validated both.
    pub fn set_queue(
        &mut self,
        records: &mut RecordStore,
        vertex: u32,
        q: f64,
    ) -> Result<(), MeshError> {
        if upsert(
            &mut self.wire.queue,
            vertex,
            q,
            MAX_RECORD_QUEUE_ENTRIES,
            "queue entries",
        )? {
            self.commit(records, self.next_version());
        }
        Ok(())
    }

    /// Replaces every queue entry with `values` (one per vertex, in vertex order) in one
    /// write: the [`MAX_RECORD_QUEUE_ENTRIES`] largest non-zero values (ties to the lower vertex)
    /// are kept, the rest are left out. Returns how many non-zero values did not fit.
    /// The caller has validated the values.
    pub fn replace_queue(&mut self, records: &mut RecordStore, values: &[f64]) -> usize {
        let mut entries: Vec<(u32, f64)> = values
            .iter()
            .enumerate()
            .filter(|(_, &q)| q != 0.0)
            .map(|(v, &q)| (v as u32, q))
            .collect();
        let dropped = entries.len().saturating_sub(MAX_RECORD_QUEUE_ENTRIES);
        if dropped > 0 {
            entries.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            entries.truncate(MAX_RECORD_QUEUE_ENTRIES);
            entries.sort_by_key(|e| e.0);
        }
        let same = entries.len() == self.wire.queue.len()
            && entries
                .iter()
                .zip(&self.wire.queue)
                .all(|(a, b)| a.0 == b.0 && a.1.to_bits() == b.1.to_bits());
        if !same {
            self.wire.queue = entries;
            self.commit(records, self.next_version());
        }
        dropped
    }

    /// Sets our offload rate on `src → dst` (0 removes it); the caller has validated it.
    pub fn set_offload(
        &mut self,
        records: &mut RecordStore,
        src: u32,
        dst: u32,
        rate: f64,
    ) -> Result<(), MeshError> {
        if upsert(
            &mut self.wire.offload,
            (src, dst),
            rate,
            self.max_offload,
            "offload entries",
        )? {
            self.commit(records, self.next_version());
        }
        Ok(())
    }

    /// Withdraws every entry (a leaving node's last record).
    pub fn clear(&mut self, records: &mut RecordStore) {
        self.wire.queue.clear();
        self.wire.offload.clear();
        self.commit(records, self.next_version());
    }

    /// The mesh holds `seen` under our origin, and it is not what we publish (an earlier
    /// run of this id, a forgery, or our version with other content). Ours is
    /// authoritative: it moves past `seen` if needed and is republished (this is also how a
    /// live node refutes a death certificate issued for it). Returns false,
    /// changing nothing, when `seen` sits at the very top of the version range and cannot
    /// be outbid (see docs/CONSISTENCY.md); true for an echo of our own record too.
    pub fn outbid(&mut self, records: &mut RecordStore, seen: &RecordWire) -> bool {
        if seen.version == self.wire.version
            && seen.queue == self.wire.queue
            && seen.offload == self.wire.offload
        {
            return true;
        }
        // A death certificate names our version: the next one refutes it.
        let version = if version_order(seen.version) >= version_order(self.wire.version) {
            match (seen.version & !DEAD).checked_add(1) {
                Some(v) if v < DEAD => v,
                _ => return false,
            }
        } else {
            self.wire.version
        };
        self.commit(records, version);
        true
    }

    /// Moves our record to a new origin `id` (see `NodeState::rotate_identity`): the same
    /// entries, written at `version` under the new origin and marked for publication.
    pub fn rename(&mut self, records: &mut RecordStore, id: NodeId, version: u64) {
        self.wire.origin = id;
        self.commit(records, version.min(DEAD - 1));
    }

    /// Most offload entries this record may hold.
    pub fn max_offload(&self) -> usize {
        self.max_offload
    }

    /// Resumes a saved record (already validated by the caller), at the higher of its
    /// version and ours.
    pub fn restore(&mut self, records: &mut RecordStore, saved: RecordWire) {
        let version = saved.version.max(self.wire.version);
        self.wire = RecordWire {
            origin: self.wire.origin,
            ..saved
        };
        self.commit(records, version);
    }
}
