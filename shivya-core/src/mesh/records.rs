//! The replicated workload state: one versioned record per origin, merged as a CRDT.
//!
//! Per origin the highest version wins, so merging is commutative, associative and
//! idempotent; two nodes that have seen the same records hold the same map, whatever the
//! order or repetition of delivery. Versions are ordered by [`version_order`]: a death
//! certificate for an origin is its held version with [`DEAD`] set (an empty record). It
//! beats that version and loses to the next, so a live origin refutes one by writing
//! again, and every node that issues a certificate for the same version issues the same
//! record. Records live in a `BTreeMap`, so every walk over them
//! (digests, the flow sum) runs in ascending origin order.

pub use crate::p2p::protocol::DEAD;
use crate::p2p::protocol::{RecordWire, MAX_DIGEST_ENTRIES, MAX_RANGE_BITS};
use crate::p2p::NodeId;
use std::collections::BTreeMap;

/// The order of versions: by the version without [`DEAD`], then a certificate after the
/// live version it names. `v | DEAD` is above `v` and below `v + 1`.
pub fn version_order(v: u64) -> u128 {
    (u128::from(v & !DEAD) << 1) | u128::from(v >> 63)
}

/// The death certificate for `held`: the same origin and version with [`DEAD`] set, no
/// entries. `None` when `held` is one already.
pub fn death_certificate(held: &RecordWire) -> Option<RecordWire> {
    (held.version & DEAD == 0).then(|| RecordWire {
        origin: held.origin,
        version: held.version | DEAD,
        queue: Vec::new(),
        offload: Vec::new(),
        seal: None,
    })
}

/// Fixed-point scale of [`MergedSums`]: values are kept in units of 2^-32.
const FIXED_SCALE: f64 = 4_294_967_296.0;

/// `x` (a record value: finite, `0 ≤ x ≤ 1e15`) in units of 2^-32, rounded to nearest.
/// Multiplying by a power of two is exact and the rounding is the same on every machine,
/// so every node turns the same value into the same integer.
pub fn to_fixed(x: f64) -> i128 {
    (x * FIXED_SCALE).round() as i128
}

/// A fixed-point sum back as `f64` (rounded to nearest once, then scaled exactly).
pub fn from_fixed(v: i128) -> f64 {
    v as f64 / FIXED_SCALE
}

/// The merged sums of every held record's entries: queue length per vertex and offload
/// rate per `(src, dst)`, as exact fixed-point integers. Integer addition is associative,
/// so the sums are the same bits whatever order records arrived or were merged in, and a
/// changed record updates them in time proportional to its entries (subtract the old
/// record, add the new), not to the number of records. Values are quantized to 2^-32
/// (about 2.3e-10) once, when they enter; 4 096 records of 4 096 values at 1e15 stay far
/// inside an `i128`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergedSums {
    queue: BTreeMap<u32, i128>,
    offload: BTreeMap<(u32, u32), i128>,
}

impl MergedSums {
    /// Adds (`sign` 1) or removes (`sign` −1) one record's entries.
    pub fn apply(&mut self, r: &RecordWire, sign: i128) {
        for &(v, q) in &r.queue {
            Self::bump(&mut self.queue, v, sign * to_fixed(q));
        }
        for &(a, b, x) in &r.offload {
            Self::bump(&mut self.offload, (a, b), sign * to_fixed(x));
        }
    }

    fn bump<K: Ord + Copy>(map: &mut BTreeMap<K, i128>, key: K, delta: i128) {
        if delta == 0 {
            return;
        }
        let slot = map.entry(key).or_insert(0);
        *slot += delta;
        if *slot == 0 {
            // Keep only non-zero sums: walks stay proportional to what is loaded.
            map.remove(&key);
        }
    }

    /// Merged queue length per vertex with a non-zero sum, ascending.
    pub fn queue(&self) -> impl Iterator<Item = (u32, f64)> + '_ {
        self.queue.iter().map(|(v, s)| (*v, from_fixed(*s)))
    }

    /// Merged offload rate per `(src, dst)` with a non-zero sum, ascending.
    pub fn offload(&self) -> impl Iterator<Item = ((u32, u32), f64)> + '_ {
        self.offload.iter().map(|(k, s)| (*k, from_fixed(*s)))
    }

    /// The sums of `records`.
    pub fn of<'a>(records: impl Iterator<Item = &'a RecordWire>) -> MergedSums {
        let mut sums = MergedSums::default();
        for r in records {
            sums.apply(r, 1);
        }
        sums
    }
}

/// What [`RecordStore::merge`] did with an incoming record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeOutcome {
    /// New origin or newer version: stored.
    Applied,
    /// Same or older version than held: nothing changed.
    Stale,
    /// New origin but the store is full: dropped, nothing changed.
    Full,
}

/// One digest page: the versions of every held origin in `[lo, hi]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestPage {
    /// First origin covered.
    pub lo: NodeId,
    /// Last origin covered.
    pub hi: NodeId,
    /// `(origin, version)`, ascending.
    pub entries: Vec<(NodeId, u64)>,
}

/// All records this node holds, its own included.
#[derive(Debug, Clone)]
pub struct RecordStore {
    max_records: usize,
    records: BTreeMap<NodeId, RecordWire>,
    generation: u64,
    /// The merged sums of `records`, kept with every change.
    sums: MergedSums,
}

const MAX_ID: NodeId = NodeId([0xff; crate::p2p::ID_LEN]);
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// The id after `id`, if any.
pub(crate) fn successor(id: &NodeId) -> Option<NodeId> {
    let mut out = id.0;
    for b in out.iter_mut().rev() {
        if *b == 0xff {
            *b = 0;
        } else {
            *b += 1;
            return Some(NodeId(out));
        }
    }
    None
}

impl RecordStore {
    /// An empty store of at most `max_records` origins (at least 1).
    pub fn new(max_records: usize) -> RecordStore {
        RecordStore {
            max_records: max_records.max(1),
            records: BTreeMap::new(),
            generation: 0,
            sums: MergedSums::default(),
        }
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The record of `origin`.
    pub fn get(&self, origin: &NodeId) -> Option<&RecordWire> {
        self.records.get(origin)
    }

    /// Every record, ascending by origin.
    pub fn iter(&self) -> impl Iterator<Item = &RecordWire> + '_ {
        self.records.values()
    }

    /// Version held for `origin` (0 when absent: real versions start at 1).
    pub fn version(&self, origin: &NodeId) -> u64 {
        self.records.get(origin).map_or(0, |r| r.version)
    }

    /// A fingerprint of which records are held: FNV-1a over every `(origin, version)` in
    /// origin order. Nodes holding the same records have the same digest (operators
    /// compare it to see whether balancers share one view); different sets differ except
    /// by a 64-bit accident.
    pub fn view_digest(&self) -> u64 {
        let mut h = FNV_OFFSET;
        for r in self.records.values() {
            for b in r.origin.0.iter().chain(r.version.to_le_bytes().iter()) {
                h ^= u64::from(*b);
                h = h.wrapping_mul(FNV_PRIME);
            }
        }
        h
    }

    /// The range bits for a view of `records` records: the fewest that leave about half
    /// a DIGEST page of origins per range (so that a differing range's page is one
    /// frame), at most [`MAX_RANGE_BITS`].
    pub fn range_bits(records: usize) -> u8 {
        let per = MAX_DIGEST_ENTRIES / 2;
        let mut bits = 0;
        while bits < MAX_RANGE_BITS && records > per << bits {
            bits += 1;
        }
        bits
    }

    /// The first and last id of range `index` of `2^bits` (the ids whose first `bits`
    /// bits are `index`); `bits` at most [`MAX_RANGE_BITS`].
    pub fn range_bounds(bits: u8, index: usize) -> (NodeId, NodeId) {
        let bits = bits.min(MAX_RANGE_BITS);
        let (mut lo, mut hi) = (NodeId::ZERO, MAX_ID);
        if bits > 0 {
            let shift = 8 - u32::from(bits);
            let first = (index as u32) << shift;
            let last = first | ((1u32 << shift) - 1);
            lo.0[0] = (first & 0xff) as u8;
            hi.0[0] = (last & 0xff) as u8;
        }
        (lo, hi)
    }

    /// One 32-bit hash per range of `2^bits` (see [`range_bounds`](Self::range_bounds)):
    /// FNV-1a 64 over the range's records as in [`view_digest`](Self::view_digest),
    /// folded to 32 bits. Two views with equal hashes in a range very likely hold the same
    /// versions there; `bits` at most [`MAX_RANGE_BITS`].
    pub fn range_hashes(&self, bits: u8) -> Vec<u32> {
        let bits = bits.min(MAX_RANGE_BITS);
        let mut out = vec![0u32; 1 << bits];
        let mut current: Option<(usize, u64)> = None;
        let fold = |h: u64| (h ^ (h >> 32)) as u32;
        for r in self.records.values() {
            let index = if bits == 0 {
                0
            } else {
                usize::from(r.origin.0[0] >> (8 - bits))
            };
            let mut h = match current {
                Some((i, h)) if i == index => h,
                Some((i, h)) => {
                    out[i] = fold(h);
                    FNV_OFFSET
                }
                None => FNV_OFFSET,
            };
            for b in r.origin.0.iter().chain(r.version.to_le_bytes().iter()) {
                h ^= u64::from(*b);
                h = h.wrapping_mul(FNV_PRIME);
            }
            current = Some((index, h));
        }
        if let Some((i, h)) = current {
            out[i] = fold(h);
        }
        out
    }

    /// Moves whenever a record is stored: equal generations mean equal contents, so a
    /// result computed from the records stays valid while it stands still.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether [`merge`](Self::merge) would store `record` (a new origin, or a newer
    /// version than held; a full store aside).
    pub fn would_apply(&self, record: &RecordWire) -> bool {
        self.records
            .get(&record.origin)
            .is_none_or(|held| version_order(record.version) > version_order(held.version))
    }

    /// Highest-version-wins merge (in [`version_order`]).
    pub fn merge(&mut self, record: &RecordWire) -> MergeOutcome {
        let full = self.records.len() >= self.max_records;
        match self.records.get_mut(&record.origin) {
            Some(held) if version_order(held.version) >= version_order(record.version) => {
                MergeOutcome::Stale
            }
            Some(held) => {
                self.sums.apply(held, -1);
                self.sums.apply(record, 1);
                held.clone_from(record);
                self.generation += 1;
                MergeOutcome::Applied
            }
            None if full => MergeOutcome::Full,
            None => {
                self.sums.apply(record, 1);
                self.records.insert(record.origin, record.clone());
                self.generation += 1;
                MergeOutcome::Applied
            }
        }
    }

    /// Replaces our own record unconditionally (the caller bumps the version).
    pub(crate) fn put_own(&mut self, record: RecordWire) {
        self.sums.apply(&record, 1);
        if let Some(old) = self.records.insert(record.origin, record) {
            self.sums.apply(&old, -1);
        }
        self.generation += 1;
    }

    /// The merged sums of every held record.
    pub fn sums(&self) -> &MergedSums {
        &self.sums
    }

    /// The digest page starting at `from`: up to [`MAX_DIGEST_ENTRIES`] origins. Returns the
    /// page and where the next page starts (`None` after the last page).
    pub fn digest_page(&self, from: NodeId) -> (DigestPage, Option<NodeId>) {
        let entries: Vec<(NodeId, u64)> = self
            .records
            .range(from..)
            .take(MAX_DIGEST_ENTRIES)
            .map(|(o, r)| (*o, r.version))
            .collect();
        let full = entries.len() == MAX_DIGEST_ENTRIES;
        let (hi, next) = match (full, entries.last()) {
            (true, Some((last, _))) => {
                let next = successor(last).filter(|n| self.records.range(*n..).next().is_some());
                (if next.is_some() { *last } else { MAX_ID }, next)
            }
            _ => (MAX_ID, None),
        };
        (
            DigestPage {
                lo: from,
                hi,
                entries,
            },
            next,
        )
    }

    /// Our digest over exactly `[lo, hi]`, truncated to one page (the page's `hi` then
    /// shrinks to its last entry).
    pub fn digest_range(&self, lo: NodeId, hi: NodeId) -> DigestPage {
        let mut entries = Vec::new();
        let mut hi_out = hi;
        for (o, r) in self.records.range(lo..=hi) {
            if entries.len() == MAX_DIGEST_ENTRIES {
                if let Some((last, _)) = entries.last() {
                    hi_out = *last;
                }
                break;
            }
            entries.push((*o, r.version));
        }
        DigestPage {
            lo,
            hi: hi_out,
            entries,
        }
    }

    /// Origins in `[lo, hi]` whose record we hold newer than `theirs` says (absent from
    /// `theirs` counts as version 0), at most `limit`, ascending.
    pub fn newer_than(
        &self,
        lo: NodeId,
        hi: NodeId,
        theirs: &[(NodeId, u64)],
        limit: usize,
    ) -> Vec<NodeId> {
        let mut out = Vec::new();
        for (o, r) in self.records.range(lo..=hi) {
            if out.len() == limit {
                break;
            }
            let their_version = theirs
                .binary_search_by(|e| e.0.cmp(o))
                .map_or(0, |k| theirs[k].1);
            if version_order(r.version) > version_order(their_version) {
                out.push(*o);
            }
        }
        out
    }

    /// Whether `theirs` lists any origin with a version newer than ours.
    pub fn lacks_any(&self, theirs: &[(NodeId, u64)]) -> bool {
        theirs
            .iter()
            .any(|(o, v)| version_order(*v) > version_order(self.version(o)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(version: u64, q: f64) -> RecordWire {
        RecordWire {
            origin: NodeId::from_seed(1),
            version,
            queue: if q > 0.0 { vec![(0, q)] } else { vec![] },
            offload: vec![],
            seal: None,
        }
    }

    fn permutations(items: &[RecordWire]) -> Vec<Vec<RecordWire>> {
        if items.len() <= 1 {
            return vec![items.to_vec()];
        }
        let mut out = Vec::new();
        for i in 0..items.len() {
            let mut rest = items.to_vec();
            let head = rest.remove(i);
            for mut p in permutations(&rest) {
                p.insert(0, head.clone());
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn certificates_sit_between_versions_and_every_order_gives_one_store() {
        assert!(version_order(5 | DEAD) > version_order(5));
        assert!(version_order(5 | DEAD) < version_order(6));
        assert_eq!(death_certificate(&rec(5 | DEAD, 0.0)), None);
        let five = rec(5, 2.0);
        let cert5 = death_certificate(&five).unwrap();
        assert_eq!((cert5.version, cert5.queue.len()), (5 | DEAD, 0));
        // A live write past the certificate (the refutation), an older one, and the
        // certificate twice: whatever the order (and repetition), the refutation wins.
        let items = [rec(4, 1.0), five, cert5.clone(), rec(6, 3.0), cert5];
        for order in permutations(&items) {
            let mut s = RecordStore::new(8);
            for r in &order {
                s.merge(r);
                s.merge(r);
            }
            assert_eq!(
                s.get(&NodeId::from_seed(1)),
                Some(&rec(6, 3.0)),
                "{order:?}"
            );
        }
        // Without the refutation the certificate wins in every order.
        let items = [
            rec(4, 1.0),
            rec(5, 2.0),
            death_certificate(&rec(5, 2.0)).unwrap(),
        ];
        for order in permutations(&items) {
            let mut s = RecordStore::new(8);
            order.iter().for_each(|r| {
                s.merge(r);
            });
            assert_eq!(s.version(&NodeId::from_seed(1)), 5 | DEAD);
        }
        // Anti-entropy sees a certificate as newer than the version it names.
        let mut s = RecordStore::new(8);
        s.merge(&death_certificate(&rec(5, 2.0)).unwrap());
        assert!(s.lacks_any(&[(NodeId::from_seed(1), 6)]));
        assert!(!s.lacks_any(&[(NodeId::from_seed(1), 5)]));
        let all = NodeId([0xff; crate::p2p::ID_LEN]);
        assert_eq!(
            s.newer_than(NodeId::ZERO, all, &[(NodeId::from_seed(1), 5)], 8),
            vec![NodeId::from_seed(1)]
        );
    }

    #[test]
    fn merged_sums_are_exact_whatever_the_order_and_follow_every_change() {
        // Values inexact in binary, several versions of several origins, in every order:
        // the kept sums are the same integers, and equal the sums of what is held.
        let r = |o: u64, version: u64, a: f64, b: f64| RecordWire {
            origin: NodeId::from_seed(o),
            version,
            queue: vec![(0, a), (2, b)],
            offload: vec![(0, 1, a / 3.0)],
            seal: None,
        };
        let items = [
            r(1, 1, 0.1, 1e15),
            r(1, 2, 0.3, 0.7),
            r(2, 1, 1.0 / 3.0, 0.2),
            r(3, 5, 2.5, 1e-3),
            r(2, 4, 0.0, 0.9),
        ];
        let mut reference: Option<MergedSums> = None;
        for order in permutations(&items) {
            let mut s = RecordStore::new(8);
            for x in &order {
                s.merge(x);
            }
            assert_eq!(s.sums(), &MergedSums::of(s.iter()), "{order:?}");
            match &reference {
                None => reference = Some(s.sums().clone()),
                Some(want) => assert_eq!(s.sums(), want, "{order:?}"),
            }
        }
        // Removing everything leaves no sum behind (no zero entries kept).
        let mut s = RecordStore::new(8);
        s.merge(&r(1, 1, 0.1, 0.2));
        s.merge(&RecordWire {
            queue: vec![],
            offload: vec![],
            ..r(1, 2, 0.0, 0.0)
        });
        assert_eq!(s.sums(), &MergedSums::default());
        assert!((from_fixed(to_fixed(1.0 / 3.0)) - 1.0 / 3.0).abs() < 2.4e-10);
        assert_eq!(from_fixed(to_fixed(1e15)), 1e15);
    }

    #[test]
    fn range_hashes_tell_exactly_which_ranges_differ() {
        assert_eq!(RecordStore::range_bits(0), 0);
        assert_eq!(RecordStore::range_bits(18), 0);
        assert_eq!(RecordStore::range_bits(19), 1);
        assert_eq!(RecordStore::range_bits(512), 5);
        assert_eq!(RecordStore::range_bits(10_000), MAX_RANGE_BITS);
        // The ranges of every bit count tile the id space in order.
        for bits in 0..=MAX_RANGE_BITS {
            let mut expect = Some(NodeId::ZERO);
            for i in 0..1usize << bits {
                let (lo, hi) = RecordStore::range_bounds(bits, i);
                assert_eq!(Some(lo), expect, "bits {bits} range {i}");
                assert!(lo <= hi);
                expect = successor(&hi);
            }
            assert_eq!(
                expect, None,
                "bits {bits}: the last range ends at the top id"
            );
        }
        let mut a = RecordStore::new(1_000);
        for k in 0..200 {
            let mut r = rec(3, 1.0);
            r.origin = NodeId::from_seed(k);
            assert_eq!(a.merge(&r), MergeOutcome::Applied);
        }
        let mut b = a.clone();
        let bits = RecordStore::range_bits(a.len());
        assert_eq!(a.range_hashes(bits), b.range_hashes(bits));
        assert_eq!(RecordStore::range_hashes(&a, 0).len(), 1);
        // A newer version of one origin changes its range's hash and no other.
        let mut r = rec(4, 2.0);
        r.origin = NodeId::from_seed(77);
        assert_eq!(b.merge(&r), MergeOutcome::Applied);
        let (ha, hb) = (a.range_hashes(bits), b.range_hashes(bits));
        let differ: Vec<usize> = (0..ha.len()).filter(|&i| ha[i] != hb[i]).collect();
        let index = usize::from(r.origin.0[0] >> (8 - bits));
        assert_eq!(differ, vec![index]);
        let (lo, hi) = RecordStore::range_bounds(bits, index);
        assert!(lo <= r.origin && r.origin <= hi);
    }
}
