//! Anti-entropy and rumours: how records spread. Each gossip round sends every target the
//! next digest page (origin → version) and our own record when it changed, and pushes
//! freshly merged records for a few rounds; a digest is answered with the records its
//! sender lacks, and with our own digest of the range when we lack some of theirs.

use super::NodeState;
use crate::mesh::records::{successor, version_order, DigestPage, MergeOutcome, RecordStore, DEAD};
use crate::p2p::protocol::{
    join_parts, record_wire_len, split_record, validate_record, RecordPart, RecordWire, HEADER_LEN,
    MAX_DELTAS, MAX_FRAME, MAX_QUEUE_ENTRIES,
};
use crate::p2p::{Body, Frame, NodeId};
use std::net::SocketAddr;

/// Without a mesh key, the bytes pushed in answer to a DIGEST are held to this multiple of
/// its size (at least one frame).
pub const AMPLIFICATION: usize = 3;

/// Most records a node rumours per gossip round (eight frames of the smallest records).
pub const RUMOR_RECORDS: usize = 8 * MAX_DELTAS;

/// Rumours, and a write of our own not yet published, go out in this many sub-rounds per
/// base gossip period (the round itself is the first), each to freshly drawn targets with
/// an equal share of [`RUMOR_RECORDS`]: the same frames per period and the same pushes per
/// rumour, but a relay forwards what it learned within a quarter period instead of at
/// its next round, half a period later on average.
pub const RUMOR_SUBROUNDS: u64 = 4;

impl NodeState {
    pub(super) fn on_digest(
        &mut self,
        from: SocketAddr,
        request_len: usize,
        reply: bool,
        lo: NodeId,
        hi: NodeId,
        theirs: &[(NodeId, u64)],
    ) {
        // Push what they lack in the range they covered, several records per frame.
        // Without a mesh key the source address is unverified (it may be a spoofed
        // victim's), so the answer is held to three times the digest's size, and at least
        // one frame: a forged digest cannot turn this node into an amplifier.
        let limit = if self.envelope.authenticated() {
            self.config.max_push_per_digest
        } else {
            let frames = (AMPLIFICATION * request_len / MAX_FRAME).max(1);
            self.config.max_push_per_digest.min(frames)
        };
        let push = self
            .records
            .newer_than(lo, hi, theirs, limit.saturating_mul(MAX_DELTAS));
        let records: Vec<RecordWire> = push
            .iter()
            .filter_map(|o| self.records.get(o).cloned())
            .collect();
        let lacking = self.records.lacks_any(theirs);
        // The two views differ: gossip at the base pace until they agree again.
        if !records.is_empty() || lacking {
            self.gossip_activity = true;
        }
        self.send_records(from, &records, limit);
        // Pull what we lack: answer with our own digest of the range, once.
        if !reply && lacking {
            let page = self.records.digest_range(lo, hi);
            self.send_digest(from, page, true);
        }
    }

    pub(super) fn on_delta(&mut self, r: &RecordWire) {
        if !self.reconciler.fits(r) {
            self.counters.dropped.bad_record += 1;
            return;
        }
        // Signatures are checked only for what would change something here (a stale copy
        // costs no verification), and always for our own origin.
        if r.origin == self.id || self.records.would_apply(r) {
            if let Err(why) = self.check_record(r) {
                self.count_refusal(why);
                return;
            }
        }
        if r.origin == self.id {
            if !self.own.outbid(&mut self.records, r) {
                if self.signed() {
                    // Our own key signed it (an earlier run): nothing to rotate away from.
                    self.counters.dropped.bad_record += 1;
                } else {
                    self.rotate_identity();
                }
            }
            return;
        }
        match self.records.merge(r) {
            MergeOutcome::Applied => {
                self.counters.records_merged += 1;
                self.learned(r.origin, r.version);
            }
            MergeOutcome::Stale => {}
            MergeOutcome::Full => self.counters.dropped.records_full += 1,
        }
    }

    /// A record of another origin changed here (merged from a peer, or certified dead by
    /// us): its age restarts, it is rumoured, gossip runs at the base pace, and it becomes
    /// the latest change our SUMMARY names.
    pub(super) fn learned(&mut self, origin: NodeId, version: u64) {
        if self.received_ms.insert(origin, self.clock_ms).is_none() {
            // The first record of this origin: it may be one nobody routes to.
            self.orphan_probe_soon();
        }
        if version & DEAD != 0 {
            // Certified dead: not a gossip target any more.
            self.view_forget(&origin);
        }
        self.rumour(origin);
        self.gossip_activity = true;
        self.latest = (origin, version);
    }

    /// Spreads the record of `origin` by rumour for the next rounds.
    fn rumour(&mut self, origin: NodeId) {
        let rounds = self
            .config
            .rumor_rounds
            .unwrap_or_else(|| (usize::BITS - self.records.len().leading_zeros()).max(1));
        if rounds > 0 {
            self.hot.insert(origin, rounds);
        }
        // Anti-entropy stays at the base pace for as many rounds as a rumour lives: the
        // sub-rounds push a rumour out within a period or two, but the peers it missed
        // are caught up by the digest exchange, which must not back off meanwhile.
        let linger = u64::from(rounds.max(1)).saturating_mul(self.config.gossip_interval_ms);
        self.busy_until_ms = self.busy_until_ms.max(self.clock_ms.saturating_add(linger));
    }

    /// `id` went unresponsive (Kademlia removed it after failed requests to `addr`, or an
    /// orphan probe did not find it): unless its record is already empty, it becomes a
    /// suspect, is PINGed once more at `addr`, and is certified dead
    /// [`suspicion_ms`](Self::suspicion_ms) later unless by then it sent us a frame (the
    /// PONG) or a newer record of it arrived. Requests that went out during a partition
    /// fail after it heals; without this, every node on one side would certify the live
    /// nodes of the other, and the heal would wait for each to refute.
    pub(super) fn certify_dead(&mut self, id: NodeId, addr: Option<SocketAddr>) {
        let Some(held) = self.records.get(&id) else {
            return;
        };
        if held.queue.is_empty() && held.offload.is_empty() || self.suspects.contains_key(&id) {
            return;
        }
        // Keys are held origins: bounded like the record store.
        self.suspects.insert(id, (self.clock_ms, held.version));
        if let Some(addr) = addr {
            self.kad.ping(addr, self.clock_ms);
        }
    }

    /// How long a suspect has to show it is alive: as long as Kademlia took to find it
    /// unresponsive (every attempt of `max_failures` requests).
    pub(super) fn suspicion_ms(&self) -> u64 {
        let k = &self.config.kad;
        k.request_timeout_ms
            .saturating_mul(u64::from(k.retries) + 1)
            .saturating_mul(u64::from(k.max_failures))
    }

    /// When the earliest suspect's wait ends.
    pub(super) fn next_suspect_ms(&self) -> u64 {
        let wait = self.suspicion_ms();
        self.suspects
            .values()
            .map(|(since, _)| since.saturating_add(wait))
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Certifies every suspect whose wait is over and that gave no sign of life: its
    /// record still at the version it was suspected at, and no frame from it since.
    pub(super) fn confirm_suspects(&mut self, now_ms: u64) {
        if self.next_suspect_ms() > now_ms {
            return;
        }
        let wait = self.suspicion_ms();
        let due: Vec<(NodeId, u64, u64)> = self
            .suspects
            .iter()
            .filter(|(_, (since, _))| since.saturating_add(wait) <= now_ms)
            .map(|(id, (since, version))| (*id, *since, *version))
            .collect();
        for (id, since, version) in due {
            self.suspects.remove(&id);
            let silent = self.heard_ms.get(&id).is_none_or(|t| *t < since);
            if silent && self.records.version(&id) == version {
                self.issue_death_certificate(id);
            }
        }
    }

    /// Issues and merges the death certificate for `id`'s held record (unless it is empty).
    fn issue_death_certificate(&mut self, id: NodeId) {
        let Some(held) = self.records.get(&id) else {
            return;
        };
        if held.queue.is_empty() && held.offload.is_empty() {
            return;
        }
        let Some(cert) = self.issue_certificate(held) else {
            return;
        };
        if self.records.merge(&cert) == MergeOutcome::Applied {
            self.counters.death_certificates += 1;
            self.learned(id, cert.version);
        }
    }

    /// `n` gossip targets: one drawn uniformly from the peer-sampling view (when it has
    /// entries), the others at random from the routing table, all distinct.
    fn gossip_targets(&mut self, n: usize) -> Vec<(NodeId, SocketAddr)> {
        let Some(sampled) = self.view_target().filter(|_| n > 0) else {
            return self.random_peers(n);
        };
        let mut targets = vec![sampled];
        for t in self.random_peers(n) {
            if targets.len() < n && t.0 != sampled.0 {
                targets.push(t);
            }
        }
        targets
    }

    fn random_peers(&mut self, n: usize) -> Vec<(NodeId, SocketAddr)> {
        let mut all: Vec<(NodeId, SocketAddr)> =
            self.kad.table().peers().map(|p| (p.id, p.addr)).collect();
        all.sort_by_key(|a| a.0);
        // Partial Fisher–Yates with our seeded generator.
        let n = n.min(all.len());
        for i in 0..n {
            let j = i + self.rng.below((all.len() - i) as u64) as usize;
            all.swap(i, j);
        }
        all.truncate(n);
        all
    }

    /// The view digest of the records held, recomputed only when they changed.
    pub(super) fn view_digest(&mut self) -> u64 {
        let generation = self.records.generation();
        if self.view_cache.0 != generation {
            self.view_cache = (generation, self.records.view_digest());
        }
        self.view_cache.1
    }

    /// A peer's SUMMARY: when its view differs from ours, the pages of the digest
    /// exchange start (ours to it), and gossip runs at the base pace until they agree.
    pub(super) fn on_summary(
        &mut self,
        from: SocketAddr,
        view: u64,
        records: u32,
        latest: (NodeId, u64),
    ) {
        let ours = self.view_digest();
        if ours == view && self.records.len() as u64 == u64::from(records) {
            return;
        }
        self.gossip_activity = true;
        // The peer's newest record is newer than ours: ask for exactly that one (a digest
        // of the one origin, which the peer answers with the record).
        let (lo, held) = latest;
        if latest.1 != 0 && version_order(held) > version_order(self.records.version(&lo)) {
            let page = self.records.digest_range(lo, lo);
            self.send_digest(from, page, false);
            return;
        }
        // Otherwise where the views differ is not known: our hash of each range of
        // origins, which the peer answers with the DIGEST pages of the ranges that differ.
        // (A page at the record we changed last found a difference only when it was
        // there; a straggler missing an older record waited for a sweep of every page.)
        let bits = RecordStore::range_bits(self.records.len().max(records as usize));
        let hashes = self.records.range_hashes(bits);
        self.outbox
            .push(from, Frame::new(0, self.id, Body::Ranges { bits, hashes }));
        self.counters.digests_sent += 1;
    }

    /// A peer's RANGES (its answer to our SUMMARY or view PING when the views differ):
    /// the DIGEST pages of the ranges whose hashes differ from ours go to it, beginning at
    /// a random one of them, as many frames as an answer may take (one without a mesh key
    /// for a small RANGES, [`MAX_RANGE_PAGES`] at most); it pushes what we lack there and
    /// asks for what it lacks. Repeated exchanges cover the rest.
    pub(super) fn on_ranges(
        &mut self,
        from: SocketAddr,
        request_len: usize,
        bits: u8,
        theirs: &[u32],
    ) {
        let ours = self.records.range_hashes(bits);
        if ours.len() != theirs.len() {
            return;
        }
        let differ: Vec<usize> = (0..ours.len()).filter(|&i| ours[i] != theirs[i]).collect();
        if differ.is_empty() {
            return;
        }
        self.gossip_activity = true;
        let frames = if self.envelope.authenticated() {
            MAX_RANGE_PAGES
        } else {
            (AMPLIFICATION * request_len / MAX_FRAME).clamp(1, MAX_RANGE_PAGES)
        };
        let start = self.rng.below(differ.len() as u64) as usize;
        let mut sent = 0;
        for k in 0..differ.len() {
            let (lo, hi) = RecordStore::range_bounds(bits, differ[(start + k) % differ.len()]);
            let mut next = Some(lo);
            while let Some(first) = next {
                if sent == frames {
                    return;
                }
                let page = self.records.digest_range(first, hi);
                // A range of more origins than a page holds goes on in the next page.
                next = (page.hi < hi).then(|| successor(&page.hi)).flatten();
                self.send_digest(from, page, false);
                sent += 1;
            }
        }
    }

    /// Sends one DIGEST page to `to`.
    fn send_digest(&mut self, to: SocketAddr, page: DigestPage, reply: bool) {
        self.outbox.push(
            to,
            Frame::new(
                0,
                self.id,
                Body::Digest {
                    reply,
                    lo: page.lo,
                    hi: page.hi,
                    entries: page.entries,
                },
            ),
        );
        self.counters.digests_sent += 1;
    }

    /// One anti-entropy round to `fanout` random peers. A quiet round (nothing changed
    /// lately) sends one target (drawn from the peer-sampling view when it has entries)
    /// one SUMMARY of every record held instead of digest pages: a few bytes while the
    /// views agree, and the page exchange, at the base pace, as soon as they do not. When
    /// the liveness PINGs carried our view since the last quiet round (they do while the
    /// mesh is quiet), the quiet round sends nothing: the PINGs were its SUMMARY.
    pub(super) fn gossip(&mut self, quiet: bool) {
        let targets = self.gossip_targets(if quiet { 1 } else { self.config.fanout });
        self.shuffle(self.clock_ms);
        if targets.is_empty() {
            return;
        }
        if quiet {
            // Our liveness PINGs carried the view since the last quiet round: that was
            // this round's anti-entropy.
            let view_pings = self.kad.counters().view_pings;
            if view_pings != self.view_pings_at_round {
                self.view_pings_at_round = view_pings;
                return;
            }
            self.send_summary(&targets);
            return;
        }
        // Lingering (nothing to push, the base pace kept while a rumour may still have
        // missed someone): a SUMMARY to each target finds a difference anywhere in one
        // exchange (a peer whose view differs answers with its RANGES), where digest
        // pages find it only once the sweep reaches it.
        let quiet_mesh = self.config.max_gossip_interval_ms > self.config.gossip_interval_ms;
        if quiet_mesh && self.hot.is_empty() && !self.own.pending() {
            self.send_summary(&targets);
            return;
        }
        self.send_pages(&targets);
        let published = self.publish_own(&targets);
        self.rumor(&targets);
        if published {
            self.rumour(self.id);
        }
    }

    /// Sends each of `targets` the next page of the digest sweep: the sweep over all
    /// origins goes `fanout` times faster than with one page per round.
    fn send_pages(&mut self, targets: &[(NodeId, SocketAddr)]) {
        for (_, addr) in targets {
            let (page, next) = self.records.digest_page(self.digest_cursor);
            self.digest_cursor = next.unwrap_or(NodeId::ZERO);
            self.send_digest(*addr, page, false);
        }
    }

    /// Sends `targets` our SUMMARY.
    fn send_summary(&mut self, targets: &[(NodeId, SocketAddr)]) {
        let view = self.view_digest();
        let records = u32::try_from(self.records.len()).unwrap_or(u32::MAX);
        let (latest_origin, _) = self.latest;
        // The version we hold now (a certificate or a later write may have replaced the
        // one noted).
        let latest_version = self.records.version(&latest_origin);
        self.outbox.push_to(
            targets.iter().map(|t| t.1),
            Frame::new(
                0,
                self.id,
                Body::Summary {
                    view,
                    records,
                    latest_origin,
                    latest_version,
                },
            ),
        );
        self.counters.digests_sent += targets.len() as u64;
    }

    /// A rumour sub-round between rounds (see [`RUMOR_SUBROUNDS`]): a write of our own not
    /// yet published and the freshest rumours, to `fanout` newly drawn targets, and the
    /// next digest pages to them while rumours queue.
    pub(super) fn rumor_subround(&mut self) {
        let targets = self.gossip_targets(self.config.fanout);
        if targets.is_empty() {
            return;
        }
        // More rumours are hot than this sub-round pushes: records are arriving faster
        // than they can be passed on (a heal, discovery, every node writing), and most
        // copies a target gets from pushes it already holds. The next pages of the sweep
        // pull exactly what each target's answer finds us lacking there, and hand it what
        // it lacks (its reply digest).
        if self.hot.len() > RUMOR_RECORDS / RUMOR_SUBROUNDS as usize {
            self.send_pages(&targets);
        }
        let published = self.publish_own(&targets);
        self.rumor(&targets);
        if published {
            self.rumour(self.id);
        }
    }

    /// Sends our own record to `targets` if it changed since it was last published, and
    /// says whether it did. The caller then rumours it like a record learned from a peer
    /// (after this round's rumours, so that these targets do not get it twice): were
    /// these few targets all that a write reached, one gone, one across a cut or one lost
    /// datagram would leave it to anti-entropy alone.
    fn publish_own(&mut self, targets: &[(NodeId, SocketAddr)]) -> bool {
        if !self.own.take_unpublished() {
            return false;
        }
        self.latest = (self.id, self.own.version());
        let own = [self.own.wire().clone()];
        let addrs: Vec<SocketAddr> = targets.iter().map(|t| t.1).collect();
        self.send_records_to(&addrs, &own, usize::MAX);
        true
    }

    /// Pushes the freshest rumours (most rounds left, then a per-round random order) to
    /// `targets`: at most [`RUMOR_RECORDS`] records (eight frames' worth) per round, a
    /// [`RUMOR_SUBROUNDS`]th of it per sub-round.
    fn rumor(&mut self, targets: &[(NodeId, SocketAddr)]) {
        if self.hot.is_empty() {
            return;
        }
        // Equally fresh rumours are ordered by a key drawn anew each round: a fixed order
        // (by origin) would always send the same ones first when there are more than fit,
        // and starve the rest until anti-entropy reached them.
        let salt = self.rng.next_u64();
        let mut picked: Vec<(u32, u64, NodeId)> = self
            .hot
            .iter()
            .map(|(o, r)| (*r, o.fold64() ^ salt, *o))
            .collect();
        // The order is total (the origin breaks ties), so selecting the first `take` and
        // sorting only them gives what sorting all would: linear in the hot set, which
        // holds thousands of records while a large mesh heals.
        let order = |a: &(u32, u64, NodeId), b: &(u32, u64, NodeId)| {
            b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
        };
        let take = RUMOR_RECORDS / RUMOR_SUBROUNDS as usize;
        if picked.len() > take {
            picked.select_nth_unstable_by(take, order);
            picked.truncate(take);
        }
        picked.sort_by(order);
        let mut records = Vec::with_capacity(picked.len());
        for (left, _, origin) in picked {
            match self.records.get(&origin) {
                Some(r) if left > 1 => {
                    records.push(r.clone());
                    self.hot.insert(origin, left - 1);
                }
                Some(r) => {
                    records.push(r.clone());
                    self.hot.remove(&origin);
                }
                None => {
                    self.hot.remove(&origin);
                }
            }
        }
        // A peer is not sent its own record back; every other target gets the same frames,
        // built once.
        let mut shared = Vec::with_capacity(targets.len());
        for &(peer, addr) in targets {
            if records.iter().any(|r| r.origin == peer) {
                let for_peer: Vec<RecordWire> = records
                    .iter()
                    .filter(|r| r.origin != peer)
                    .cloned()
                    .collect();
                self.send_records_to(&[addr], &for_peer, usize::MAX);
            } else {
                shared.push(addr);
            }
        }
        self.send_records_to(&shared, &records, usize::MAX);
    }

    /// Queues `records` for `to`, packed into as few frames as fit (a DELTA for a lone
    /// record, DELTAS otherwise), at most `max_frames` frames; returns the frames queued.
    pub(super) fn send_records(
        &mut self,
        to: SocketAddr,
        records: &[RecordWire],
        max_frames: usize,
    ) -> usize {
        self.send_records_to(&[to], records, max_frames)
    }

    /// [`send_records`](Self::send_records) to every address in `to`, each frame built
    /// once for all of them. Records of at most 48 queue entries are packed into DELTAS
    /// frames (sealed and unsealed ones never share a frame); a larger record goes as its
    /// CHUNK parts, one frame each — when fewer frames are allowed than it has parts, a
    /// random run of them, so that repeated answers complete it at the receiver.
    fn send_records_to(
        &mut self,
        to: &[SocketAddr],
        records: &[RecordWire],
        max_frames: usize,
    ) -> usize {
        if to.is_empty() {
            return 0;
        }
        let budget = MAX_FRAME - HEADER_LEN - 1 - self.envelope.overhead();
        let mut frames = 0;
        let mut batch: Vec<RecordWire> = Vec::new();
        let mut bytes = 0;
        for r in records {
            if frames >= max_frames {
                break;
            }
            if r.queue.len() > MAX_QUEUE_ENTRIES {
                frames += self.flush_batch(to, &mut batch);
                bytes = 0;
                let parts = split_record(r);
                let room = max_frames.saturating_sub(frames);
                let start = if room < parts.len() {
                    self.rng.below(parts.len() as u64) as usize
                } else {
                    0
                };
                for k in 0..parts.len().min(room) {
                    let part = parts[(start + k) % parts.len()].clone();
                    self.outbox.push_to(
                        to.iter().copied(),
                        Frame::new(0, self.id, Body::Chunk(part)),
                    );
                    self.counters.deltas_sent += to.len() as u64;
                    frames += 1;
                }
                continue;
            }
            let len = record_wire_len(r);
            let mixed = batch
                .first()
                .is_some_and(|b| b.seal.is_some() != r.seal.is_some());
            if !batch.is_empty() && (mixed || bytes + len > budget || batch.len() == MAX_DELTAS) {
                frames += self.flush_batch(to, &mut batch);
                bytes = 0;
                if frames >= max_frames {
                    break;
                }
            }
            batch.push(r.clone());
            bytes += len;
        }
        if frames < max_frames {
            frames += self.flush_batch(to, &mut batch);
        }
        frames
    }

    /// Queues the records in `batch` (emptied) as one DELTA or DELTAS frame; returns the
    /// frames queued (0 or 1).
    fn flush_batch(&mut self, to: &[SocketAddr], batch: &mut Vec<RecordWire>) -> usize {
        let body = match batch.len() {
            0 => return 0,
            1 => Body::Delta(batch.remove(0)),
            _ => Body::Deltas(std::mem::take(batch)),
        };
        self.outbox
            .push_to(to.iter().copied(), Frame::new(0, self.id, body));
        self.counters.deltas_sent += to.len() as u64;
        1
    }

    /// One part of a chunked record arrived: it is kept until every part of that version
    /// is here, then the joined record is handled like any DELTA (signature, topology,
    /// merge). At most [`MAX_ASSEMBLIES`] records are assembled at once, each for at most
    /// [`ASSEMBLY_TIMEOUT_MS`]; a newer version replaces an older assembly.
    pub(super) fn on_chunk(&mut self, p: &RecordPart, now_ms: u64) {
        let stale = p.origin != self.id
            && !self.records.would_apply(&RecordWire {
                origin: p.origin,
                version: p.version,
                ..RecordWire::default()
            });
        if stale {
            return;
        }
        self.assemblies
            .retain(|_, a| now_ms.saturating_sub(a.started_ms) < ASSEMBLY_TIMEOUT_MS);
        let fresh = |p: &RecordPart| Assembly {
            version: p.version,
            started_ms: now_ms,
            parts: vec![None; usize::from(p.parts)],
        };
        match self.assemblies.get(&p.origin) {
            Some(a) if a.version == p.version && a.parts.len() == usize::from(p.parts) => {}
            Some(a) if version_order(a.version) > version_order(p.version) => return,
            Some(_) => {
                self.assemblies.insert(p.origin, fresh(p));
            }
            None if self.assemblies.len() >= MAX_ASSEMBLIES => {
                self.counters.dropped.records_full += 1;
                return;
            }
            None => {
                self.assemblies.insert(p.origin, fresh(p));
            }
        }
        let Some(a) = self.assemblies.get_mut(&p.origin) else {
            return;
        };
        let slot = &mut a.parts[usize::from(p.part)];
        if slot.is_none() {
            *slot = Some(p.clone());
        }
        if a.parts.iter().any(Option::is_none) {
            return;
        }
        let Some(a) = self.assemblies.remove(&p.origin) else {
            return;
        };
        let parts: Vec<RecordPart> = a.parts.into_iter().flatten().collect();
        let record = join_parts(&parts);
        if validate_record(&record).is_err() {
            self.counters.dropped.bad_value += 1;
            return;
        }
        self.on_delta(&record);
    }
}

/// Most DIGEST pages sent in answer to one RANGES.
pub const MAX_RANGE_PAGES: usize = 4;

/// Most chunked records assembled at once.
pub const MAX_ASSEMBLIES: usize = 64;
/// How long the parts of one record version are kept waiting for the rest.
pub const ASSEMBLY_TIMEOUT_MS: u64 = 10_000;

/// The parts of one chunked record received so far.
#[derive(Debug, Clone)]
pub(super) struct Assembly {
    version: u64,
    started_ms: u64,
    parts: Vec<Option<RecordPart>>,
}
