//! `NodeState`: the whole node as a deterministic state machine, with no sockets and no
//! clock. The host (or [`super::Node`]) feeds it datagrams and time and drains what it
//! wants sent.

use super::belief::{BeliefConfig, BeliefReport, BeliefState, OBS_DIM};
use super::records::{MergeOutcome, RecordStore};
use super::workload::{Reconciler, SettleMode, Settlement, WorkloadTopology};
use super::MeshError;
use crate::hodge::CgConfig;
use crate::p2p::auth::AuthKey;
use crate::p2p::auth::TAG_LEN;
use crate::p2p::protocol::{
    record_wire_len, RecordWire, HEADER_LEN, MAX_DELTAS, MAX_FRAME, MAX_OFFLOAD_ENTRIES,
    MAX_QUEUE_ENTRIES,
};
use crate::p2p::{Body, DecodeError, Frame, KadConfig, KadEvent, Kademlia, NodeId};
use crate::rng::Rng;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

/// Largest [`NodeConfig::incarnation`]: versions start at `incarnation << 20` in a `u64`.
pub const MAX_INCARNATION: u64 = (1 << 44) - 1;

/// Without a mesh key, the bytes pushed in answer to a DIGEST are held to this multiple of
/// its size (at least one frame).
pub const AMPLIFICATION: usize = 3;

/// Most records a node rumours per gossip round (two frames of the smallest records).
pub const RUMOR_RECORDS: usize = 2 * MAX_DELTAS;

/// Everything a node needs to start.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// Address to bind (used by [`super::Node`]; `NodeState` ignores it).
    pub listen: SocketAddr,
    /// Our id; derived from `seed` when `None`.
    pub id: Option<NodeId>,
    /// Seed of every random choice this node makes.
    pub seed: u64,
    /// Addresses to join through.
    pub bootstrap: Vec<SocketAddr>,
    /// Kademlia settings.
    pub kad: KadConfig,
    /// The workload graph (identical on every node of a mesh).
    pub topology: WorkloadTopology,
    /// Period of the layer stack (agent, diffusion, dividends, reconciliation).
    pub step_interval_ms: u64,
    /// Period of anti-entropy rounds.
    pub gossip_interval_ms: u64,
    /// Peers contacted per anti-entropy round.
    pub fanout: usize,
    /// Most DELTA/DELTAS frames pushed in answer to one DIGEST (each DELTAS packs as many
    /// records as fit in a frame).
    pub max_push_per_digest: usize,
    /// Most origins held.
    pub max_records: usize,
    /// Rounds a newly learned record is pushed on (rumour mongering, on top of the
    /// digest anti-entropy): each round it goes to the `fanout` gossip targets, at most
    /// [`RUMOR_RECORDS`] such records per round, freshest first, packed into DELTAS frames. `None` picks
    /// `⌈log₂(records held + 1)⌉`, enough that a node misses a rumour with probability
    /// about `e^(−2·fanout·log₂N)`; `Some(0)` turns it off (anti-entropy alone then needs
    /// a full digest cycle, `records / 36` rounds, per hop).
    pub rumor_rounds: Option<u32>,
    /// Which part of the flow `settle` keeps.
    pub settle_mode: SettleMode,
    /// Weight of the queue-length gradient in the flow.
    pub queue_gain: f64,
    /// Routes at or below this rate are not reported.
    pub min_rate: f64,
    /// Reconciliation solver settings.
    pub cg: CgConfig,
    /// Agent and belief exchange settings.
    pub belief: BeliefConfig,
    /// Distinguishes this run of a node id from earlier ones: our record's versions start
    /// at `incarnation << 20` (values up to [`MAX_INCARNATION`] = 2^44 − 1). A host that
    /// restarts a node with the same id but without its state (see
    /// [`NodeState::restore_own`]) should pass something that grows across restarts, such
    /// as wall-clock milliseconds since the Unix epoch, so the new run's versions are above
    /// every version an earlier run published (that holds while a run makes fewer than 2^20
    /// writes per millisecond it lived). Otherwise a restarted node can reuse a version with
    /// different content, and nodes would not converge on that origin.
    pub incarnation: u64,
    /// A key shared by every member: when set, each datagram carries an HMAC-SHA-256 tag
    /// and datagrams without a valid one are dropped (counted as `bad_auth`). See
    /// docs/CONSISTENCY.md and PROTOCOL.md.
    pub auth_key: Option<MeshKey>,
}

/// A shared mesh key (at least 16 bytes). Its bytes never appear in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct MeshKey(Vec<u8>);

impl MeshKey {
    /// Shortest key accepted, in bytes.
    pub const MIN_LEN: usize = 16;

    /// A key; refused when shorter than [`MeshKey::MIN_LEN`].
    pub fn new(bytes: &[u8]) -> Result<MeshKey, MeshError> {
        if bytes.len() < Self::MIN_LEN {
            return Err(MeshError::Config {
                what: "auth_key",
                why: format!(
                    "{} bytes is too short; use at least {}",
                    bytes.len(),
                    Self::MIN_LEN
                ),
            });
        }
        Ok(MeshKey(bytes.to_vec()))
    }
}

impl std::fmt::Debug for MeshKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MeshKey({} bytes)", self.0.len())
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            id: None,
            seed: 1,
            bootstrap: Vec::new(),
            kad: KadConfig::default(),
            topology: WorkloadTopology::complete(4),
            step_interval_ms: 100,
            gossip_interval_ms: 50,
            fanout: 2,
            max_push_per_digest: 16,
            max_records: 4_096,
            rumor_rounds: None,
            settle_mode: SettleMode::CurlFree,
            queue_gain: 1.0,
            min_rate: 1e-9,
            cg: CgConfig::default(),
            belief: BeliefConfig::default(),
            incarnation: 0,
            auth_key: None,
        }
    }
}

impl NodeConfig {
    /// The id this configuration gives the node.
    pub fn node_id(&self) -> NodeId {
        self.id.unwrap_or_else(|| NodeId::from_seed(self.seed))
    }

    /// Checks every setting.
    pub fn validate(&self) -> Result<(), MeshError> {
        self.kad.validate().map_err(MeshError::P2p)?;
        let positive = [
            ("step_interval_ms", self.step_interval_ms),
            ("gossip_interval_ms", self.gossip_interval_ms),
            ("fanout", self.fanout as u64),
            ("max_push_per_digest", self.max_push_per_digest as u64),
            ("max_records", self.max_records as u64),
        ];
        for (what, v) in positive {
            if v == 0 {
                return Err(MeshError::Config {
                    what,
                    why: "must be positive".into(),
                });
            }
        }
        if self.incarnation > MAX_INCARNATION {
            return Err(MeshError::Config {
                what: "incarnation",
                why: format!("{} exceeds 2^44 - 1", self.incarnation),
            });
        }
        if !(self.queue_gain >= 0.0 && self.queue_gain.is_finite()) {
            return Err(MeshError::Config {
                what: "queue_gain",
                why: format!("{} must be finite and non-negative", self.queue_gain),
            });
        }
        if !(self.min_rate >= 0.0 && self.min_rate.is_finite()) {
            return Err(MeshError::Config {
                what: "min_rate",
                why: format!("{} must be finite and non-negative", self.min_rate),
            });
        }
        if !(self.cg.tolerance > 0.0 && self.cg.tolerance.is_finite())
            || self.cg.max_iterations == 0
        {
            return Err(MeshError::Config {
                what: "cg",
                why: "tolerance must be finite and positive, max_iterations positive".into(),
            });
        }
        Ok(())
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub destination: SocketAddr,
    /// The encoded frame.
    pub payload: Vec<u8>,
}

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
}

impl DropCounters {
    /// Sum of every reason.
    pub fn total(&self) -> u64 {
        self.too_short
            + self.oversized
            + self.bad_magic
            + self.unknown_version
            + self.unknown_type
            + self.truncated
            + self.trailing
            + self.bad_value
            + self.own_id
            + self.unmatched_reply
            + self.bad_record
            + self.records_full
            + self.beliefs_full
            + self.blocked
            + self.bad_auth
    }

    fn count_decode(&mut self, e: &DecodeError) {
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
    /// Frames that could not be encoded (a bug if ever non-zero).
    pub encode_errors: u64,
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
    /// CG iterations of the last reconciliation.
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

/// The node as a pure state machine.
#[derive(Debug, Clone)]
pub struct NodeState {
    id: NodeId,
    config: NodeConfig,
    kad: Kademlia,
    records: RecordStore,
    own: RecordWire,
    own_dirty: bool,
    reconciler: Reconciler,
    belief: BeliefState,
    observation: [f64; OBS_DIM],
    observation_set: bool,
    auth: Option<AuthKey>,
    rng: Rng,
    outbox: VecDeque<(SocketAddr, Frame)>,
    events: VecDeque<KadEvent>,
    next_gossip_ms: u64,
    next_layer_ms: u64,
    digest_cursor: NodeId,
    /// Records to rumour: origin → rounds left (ordered map: deterministic choice).
    hot: BTreeMap<NodeId, u32>,
    last_settle: Option<Settlement>,
    settle_dirty: bool,
    counters: Counters,
    left: bool,
    /// The latest host time seen; earlier times are treated as this one.
    clock_ms: u64,
}

impl NodeState {
    /// A node that will join through `config.bootstrap` at `now_ms`.
    pub fn new(config: NodeConfig, now_ms: u64) -> Result<NodeState, MeshError> {
        config.validate()?;
        let id = config.node_id();
        let mut kad = Kademlia::new(id, config.kad, config.seed).map_err(MeshError::P2p)?;
        kad.bootstrap(&config.bootstrap, now_ms);
        let reconciler = Reconciler::new(config.topology.clone(), config.cg)?;
        let belief = BeliefState::new(id, config.belief)?;
        Ok(NodeState {
            id,
            kad,
            records: RecordStore::new(config.max_records),
            own: RecordWire {
                origin: id,
                version: config.incarnation.min(MAX_INCARNATION) << 20,
                queue: Vec::new(),
                offload: Vec::new(),
            },
            own_dirty: false,
            reconciler,
            belief,
            observation: [0.0; OBS_DIM],
            observation_set: false,
            auth: config.auth_key.as_ref().map(|k| AuthKey::new(&k.0)),
            rng: Rng::new(config.seed ^ 0x6d65_7368),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            next_gossip_ms: now_ms,
            next_layer_ms: now_ms.saturating_add(config.step_interval_ms),
            digest_cursor: NodeId::ZERO,
            hot: BTreeMap::new(),
            last_settle: None,
            settle_dirty: true,
            counters: Counters::default(),
            left: false,
            clock_ms: now_ms,
            config,
        })
    }

    /// Our id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The Kademlia engine (routing table, DHT store).
    pub fn kademlia(&self) -> &Kademlia {
        &self.kad
    }

    /// The replicated records.
    pub fn records(&self) -> &RecordStore {
        &self.records
    }

    /// The agent side.
    pub fn belief(&self) -> &BeliefState {
        &self.belief
    }

    /// The node's notion of now: the host's time, but never earlier than a time already
    /// seen. A host clock that steps back therefore delays nothing and breaks nothing; a
    /// jump forward fires each due timer once (no catch-up loop).
    fn clock(&mut self, now_ms: u64) -> u64 {
        self.clock_ms = self.clock_ms.max(now_ms);
        self.clock_ms
    }

    /// Adds bootstrap addresses at run time.
    pub fn bootstrap(&mut self, addrs: &[SocketAddr], now_ms: u64) {
        let now_ms = self.clock(now_ms);
        self.kad.bootstrap(addrs, now_ms);
        self.drain_kad();
    }

    // -------------------------------------------------------------------------------
    // Input

    /// Handles one datagram from `from`. Every byte string is acceptable input: what is
    /// not a valid frame is counted by reason and dropped.
    pub fn handle_datagram(&mut self, from: SocketAddr, bytes: &[u8], now_ms: u64) {
        let now_ms = self.clock(now_ms);
        self.counters.frames_in += 1;
        self.counters.bytes_in += bytes.len() as u64;
        let bytes = match &self.auth {
            None => bytes,
            Some(key) => match key.verify(bytes) {
                Some(frame) => frame,
                None => {
                    self.counters.dropped.bad_auth += 1;
                    tracing::debug!(peer = %from, reason = "bad_auth", "dropped frame");
                    return;
                }
            },
        };
        let frame = match Frame::decode(bytes) {
            Ok(f) => f,
            Err(e) => {
                self.counters.dropped.count_decode(&e);
                tracing::debug!(peer = %from, reason = e.reason(), "dropped frame");
                return;
            }
        };
        if frame.sender == self.id {
            self.counters.dropped.own_id += 1;
            return;
        }
        if self.left {
            return;
        }
        if matches!(frame.body, Body::Leave) {
            self.kad.peer_left(&frame.sender, now_ms);
            self.belief.forget(&frame.sender);
            self.drain_kad();
            return;
        }
        self.kad.observe(frame.sender, from, now_ms);
        match &frame.body {
            Body::Digest {
                reply,
                lo,
                hi,
                entries,
            } => self.on_digest(from, bytes.len(), *reply, *lo, *hi, entries),
            Body::Delta(r) => self.on_delta(r),
            Body::Deltas(rs) => {
                for r in rs {
                    self.on_delta(r);
                }
            }
            Body::Belief {
                free_energy, mean, ..
            } => {
                self.counters.beliefs_in += 1;
                if !self
                    .belief
                    .receive(frame.sender, *free_energy, mean, now_ms)
                {
                    self.counters.dropped.beliefs_full += 1;
                }
            }
            _ => {
                if !self.kad.handle(from, &frame, now_ms) {
                    self.counters.dropped.unmatched_reply += 1;
                }
            }
        }
        self.drain_kad();
    }

    fn on_digest(
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
        let limit = if self.auth.is_some() {
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
        self.send_records(from, &records, limit);
        // Pull what we lack: answer with our own digest of the range, once.
        if !reply && self.records.lacks_any(theirs) {
            let page = self.records.digest_range(lo, hi);
            self.outbox.push_back((
                from,
                Frame::new(
                    0,
                    self.id,
                    Body::Digest {
                        reply: true,
                        lo: page.lo,
                        hi: page.hi,
                        entries: page.entries,
                    },
                ),
            ));
            self.counters.digests_sent += 1;
        }
    }

    fn on_delta(&mut self, r: &RecordWire) {
        if !self.reconciler.fits(r) {
            self.counters.dropped.bad_record += 1;
            return;
        }
        if r.origin == self.id {
            if *r == self.own {
                return; // an echo of what we publish
            }
            // The mesh holds something else under our origin: a previous run of this id, a
            // forgery, or our version with other content. Our own record is authoritative
            // here: move past it if needed and publish ours.
            if r.version >= self.own.version {
                // A version at the very top cannot be outbid (see docs/CONSISTENCY.md).
                let Some(next) = r.version.checked_add(1) else {
                    self.counters.dropped.bad_record += 1;
                    return;
                };
                self.own.version = next;
            }
            self.records.put_own(self.own.clone());
            self.own_dirty = true;
            self.settle_dirty = true;
            return;
        }
        match self.records.merge(r) {
            MergeOutcome::Applied => {
                self.counters.records_merged += 1;
                self.settle_dirty = true;
                let rounds = self
                    .config
                    .rumor_rounds
                    .unwrap_or_else(|| (usize::BITS - self.records.len().leading_zeros()).max(1));
                if rounds > 0 {
                    self.hot.insert(r.origin, rounds);
                }
            }
            MergeOutcome::Stale => {}
            MergeOutcome::Full => self.counters.dropped.records_full += 1,
        }
    }

    /// Runs every timer due at `now_ms`: request timeouts, pings, refreshes, anti-entropy
    /// and the layer stack. Call it when [`poll_timeout`](Self::poll_timeout) is reached
    /// (calling earlier or more often is harmless).
    pub fn handle_timeout(&mut self, now_ms: u64) {
        let now_ms = self.clock(now_ms);
        if self.left {
            return;
        }
        self.kad.handle_timeout(now_ms);
        self.drain_kad();
        if now_ms >= self.next_gossip_ms {
            self.next_gossip_ms = now_ms.saturating_add(self.config.gossip_interval_ms);
            self.gossip();
        }
        if now_ms >= self.next_layer_ms {
            self.next_layer_ms = now_ms.saturating_add(self.config.step_interval_ms);
            self.layer_step(now_ms);
        }
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

    fn gossip(&mut self) {
        let targets = self.random_peers(self.config.fanout);
        if targets.is_empty() {
            return;
        }
        for (_, addr) in &targets {
            // Each target gets the next page: the sweep over all origins goes `fanout`
            // times faster than with one page per round.
            let (page, next) = self.records.digest_page(self.digest_cursor);
            self.digest_cursor = next.unwrap_or(NodeId::ZERO);
            self.outbox.push_back((
                *addr,
                Frame::new(
                    0,
                    self.id,
                    Body::Digest {
                        reply: false,
                        lo: page.lo,
                        hi: page.hi,
                        entries: page.entries,
                    },
                ),
            ));
            self.counters.digests_sent += 1;
        }
        if self.own_dirty && self.own.version > 0 {
            self.own_dirty = false;
            for (_, addr) in &targets {
                self.outbox
                    .push_back((*addr, Frame::new(0, self.id, Body::Delta(self.own.clone()))));
                self.counters.deltas_sent += 1;
            }
        }
        self.rumor(&targets);
    }

    /// Pushes the freshest rumours (most rounds left, then origin order) to `targets`: at
    /// most two frames' worth ([`RUMOR_RECORDS`]) per round.
    fn rumor(&mut self, targets: &[(NodeId, SocketAddr)]) {
        if self.hot.is_empty() {
            return;
        }
        let mut picked: Vec<(u32, NodeId)> = self.hot.iter().map(|(o, r)| (*r, *o)).collect();
        picked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        picked.truncate(RUMOR_RECORDS);
        let mut records = Vec::with_capacity(picked.len());
        for (left, origin) in picked {
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
        for (peer, addr) in targets {
            let for_peer: Vec<RecordWire> = records
                .iter()
                .filter(|r| r.origin != *peer)
                .cloned()
                .collect();
            self.send_records(*addr, &for_peer, usize::MAX);
        }
    }

    /// Queues `records` for `to`, packed into as few frames as fit (a DELTA for a lone
    /// record, DELTAS otherwise), at most `max_frames` frames; returns the frames queued.
    fn send_records(&mut self, to: SocketAddr, records: &[RecordWire], max_frames: usize) -> usize {
        let budget = MAX_FRAME - HEADER_LEN - 1 - if self.auth.is_some() { TAG_LEN } else { 0 };
        let mut frames = 0;
        let mut start = 0;
        while start < records.len() && frames < max_frames {
            let mut end = start;
            let mut bytes = 0;
            while end < records.len() && end - start < MAX_DELTAS {
                let len = record_wire_len(&records[end]);
                if bytes + len > budget {
                    break;
                }
                bytes += len;
                end += 1;
            }
            // Every valid record fits in a frame on its own; guard against looping anyway.
            let end = end.max(start + 1);
            let body = if end - start == 1 {
                Body::Delta(records[start].clone())
            } else {
                Body::Deltas(records[start..end].to_vec())
            };
            self.outbox.push_back((to, Frame::new(0, self.id, body)));
            self.counters.deltas_sent += 1;
            frames += 1;
            start = end;
        }
        frames
    }

    fn layer_step(&mut self, now_ms: u64) {
        self.counters.layer_steps += 1;
        let obs = if self.observation_set {
            self.observation
        } else {
            self.derived_observation()
        };
        match self.belief.step(&obs, now_ms) {
            Ok(r) => {
                let mean = self.belief.agent().mean().to_vec();
                let body = Body::Belief {
                    step: self.belief.steps(),
                    free_energy: r.free_energy,
                    mean,
                };
                let mut peers: Vec<(f64, NodeId, SocketAddr)> = self
                    .kad
                    .table()
                    .peers()
                    .map(|p| (super::belief::coupling(&self.id, &p.id), p.id, p.addr))
                    .collect();
                peers.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                peers.truncate(crate::onsager::MAX_PLAYERS - 1);
                for (_, _, addr) in peers {
                    self.outbox
                        .push_back((addr, Frame::new(0, self.id, body.clone())));
                }
            }
            Err(e) => {
                self.counters.layer_errors += 1;
                tracing::warn!(error = %e, "layer step failed; the node keeps running");
            }
        }
        if self.settle_dirty {
            if let Err(e) = self.settle_now() {
                self.counters.layer_errors += 1;
                tracing::warn!(error = %e, "reconciliation failed");
            }
        }
    }

    /// The agent's default observation: `[ln(1 + mean own queue), ln(1 + Σ own offload)]`.
    fn derived_observation(&self) -> [f64; OBS_DIM] {
        let nq = self.own.queue.len().max(1) as f64;
        let q: f64 = self.own.queue.iter().map(|e| e.1).sum::<f64>() / nq;
        let x: f64 = self.own.offload.iter().map(|e| e.2).sum();
        [q.ln_1p(), x.ln_1p()]
    }

    fn drain_kad(&mut self) {
        while let Some(t) = self.kad.poll_transmit() {
            self.outbox.push_back(t);
        }
        while let Some(ev) = self.kad.poll_event() {
            if let KadEvent::PeerRemoved { id, .. } = &ev {
                self.belief.forget(id);
            }
            self.events.push_back(ev);
        }
    }

    // -------------------------------------------------------------------------------
    // Output

    /// The next datagram to send, if any. Call until it returns `None` after every input.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        while let Some((destination, frame)) = self.outbox.pop_front() {
            match frame.encode() {
                Ok(mut payload) => {
                    if let Some(key) = &self.auth {
                        let tag = key.tag(&payload);
                        payload.extend_from_slice(&tag);
                    }
                    self.counters.frames_out += 1;
                    self.counters.bytes_out += payload.len() as u64;
                    return Some(Transmit {
                        destination,
                        payload,
                    });
                }
                Err(e) => {
                    self.counters.encode_errors += 1;
                    tracing::error!(error = %e, "frame could not be encoded; dropped");
                }
            }
        }
        None
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next (host milliseconds).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.left {
            return None;
        }
        Some(
            self.kad
                .poll_timeout()
                .min(self.next_gossip_ms)
                .min(self.next_layer_ms),
        )
    }

    /// The next routing-table or DHT event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<KadEvent> {
        self.events.pop_front()
    }

    // -------------------------------------------------------------------------------
    // Proxy calls

    fn bump_own(&mut self) {
        // Saturating: a version pushed to the top by a forged frame must not wrap to 0.
        self.own.version = self.own.version.saturating_add(1);
        self.records.put_own(self.own.clone());
        self.own_dirty = true;
        self.settle_dirty = true;
    }

    /// Sets this node's contribution to the queue length of `vertex` (requests this node
    /// has queued or in flight there). 0 removes the entry. Bad input changes nothing.
    pub fn record_queue_len(&mut self, vertex: u32, q: f64) -> Result<(), MeshError> {
        let n = self.config.topology.n_vertices();
        if vertex >= n {
            return Err(MeshError::UnknownVertex { vertex, n });
        }
        if !crate::p2p::protocol::is_record_value(q) {
            return Err(MeshError::BadValue {
                what: "queue length",
                value: q,
            });
        }
        match self.own.queue.binary_search_by_key(&vertex, |e| e.0) {
            Ok(k) if q == 0.0 => {
                self.own.queue.remove(k);
            }
            Ok(k) => self.own.queue[k].1 = q,
            Err(_) if q == 0.0 => return Ok(()),
            Err(k) => {
                if self.own.queue.len() >= MAX_QUEUE_ENTRIES {
                    return Err(MeshError::RecordFull {
                        what: "queue entries",
                        max: MAX_QUEUE_ENTRIES,
                    });
                }
                self.own.queue.insert(k, (vertex, q));
            }
        }
        self.bump_own();
        Ok(())
    }

    /// Sets the rate at which this node observed work moving from `src` to `dst`. 0
    /// removes the entry. The pair must be an edge of the topology. Bad input changes
    /// nothing.
    pub fn record_offload(&mut self, src: u32, dst: u32, rate: f64) -> Result<(), MeshError> {
        let n = self.config.topology.n_vertices();
        for v in [src, dst] {
            if v >= n {
                return Err(MeshError::UnknownVertex { vertex: v, n });
            }
        }
        if src == dst {
            return Err(MeshError::SelfEdge { vertex: src });
        }
        if self.config.topology.edge_index(src, dst).is_none() {
            return Err(MeshError::UnknownEdge { src, dst });
        }
        if !crate::p2p::protocol::is_record_value(rate) {
            return Err(MeshError::BadValue {
                what: "offload rate",
                value: rate,
            });
        }
        match self
            .own
            .offload
            .binary_search_by_key(&(src, dst), |e| (e.0, e.1))
        {
            Ok(k) if rate == 0.0 => {
                self.own.offload.remove(k);
            }
            Ok(k) => self.own.offload[k].2 = rate,
            Err(_) if rate == 0.0 => return Ok(()),
            Err(k) => {
                if self.own.offload.len() >= MAX_OFFLOAD_ENTRIES {
                    return Err(MeshError::RecordFull {
                        what: "offload entries",
                        max: MAX_OFFLOAD_ENTRIES,
                    });
                }
                self.own.offload.insert(k, (src, dst, rate));
            }
        }
        self.bump_own();
        Ok(())
    }

    /// This node's own record (origin, version, entries), e.g. to persist it.
    pub fn own_record(&self) -> &RecordWire {
        &self.own
    }

    /// Restores this node's own record from durable storage after a restart, so a node
    /// that comes back with the same id resumes its version and its writes instead of
    /// superseding them with an empty record. Validated like a record from the network
    /// (origin must be ours, entries sorted, finite, within the topology); on error nothing
    /// changes.
    pub fn restore_own(&mut self, record: RecordWire) -> Result<(), MeshError> {
        if record.origin != self.id {
            return Err(MeshError::Config {
                what: "restored record",
                why: format!("origin {} is not this node ({})", record.origin, self.id),
            });
        }
        crate::p2p::protocol::validate_record(&record).map_err(|e| MeshError::Config {
            what: "restored record",
            why: e.to_string(),
        })?;
        if !self.reconciler.fits(&record) {
            return Err(MeshError::Topology(
                "the restored record names vertices or edges outside the topology".into(),
            ));
        }
        // Keep whichever version is higher: the saved one, or this incarnation's base.
        let version = record.version.max(self.own.version);
        self.own = RecordWire { version, ..record };
        self.records.put_own(self.own.clone());
        self.own_dirty = true;
        self.settle_dirty = true;
        Ok(())
    }

    /// Overrides the agent's observation (length 2, finite) until the next call; without
    /// it the agent observes this node's own queue and offload records.
    pub fn observe(&mut self, obs: &[f64]) -> Result<(), MeshError> {
        if obs.len() != OBS_DIM {
            return Err(MeshError::Length {
                what: "observation",
                expected: OBS_DIM,
                got: obs.len(),
            });
        }
        if let Some(v) = obs.iter().find(|x| !x.is_finite()) {
            return Err(MeshError::BadValue {
                what: "observation",
                value: *v,
            });
        }
        self.observation.copy_from_slice(obs);
        self.observation_set = true;
        Ok(())
    }

    fn settle_now(&mut self) -> Result<&Settlement, MeshError> {
        if self.settle_dirty || self.last_settle.is_none() {
            let s = self.reconciler.settle(
                self.records.iter(),
                self.config.settle_mode,
                self.config.queue_gain,
                self.config.min_rate,
            )?;
            self.last_settle = Some(s);
            self.settle_dirty = false;
        }
        self.last_settle
            .as_ref()
            .ok_or(MeshError::Internal("settlement missing"))
    }

    /// The reconciled state over every record this node holds: routes, flow, queues.
    /// Nodes holding the same records return bit-identical results.
    pub fn settlement(&mut self) -> Result<&Settlement, MeshError> {
        self.settle_now()
    }

    /// The routes of [`settlement`](Self::settlement).
    pub fn settle(&mut self) -> Result<Vec<super::EdgeRecommendation>, MeshError> {
        Ok(self.settle_now()?.routes.clone())
    }

    // -------------------------------------------------------------------------------
    // DHT and lifecycle

    /// Starts an iterative FIND_VALUE (result as [`KadEvent::Value`]).
    pub fn dht_get(&mut self, key: NodeId, now_ms: u64) -> u64 {
        let now_ms = self.clock(now_ms);
        let id = self.kad.get(key, now_ms);
        self.drain_kad();
        id
    }

    /// Stores a value locally and on the K closest nodes (result as [`KadEvent::Stored`]).
    pub fn dht_put(&mut self, key: NodeId, value: &[u8], now_ms: u64) -> Result<u64, MeshError> {
        let now_ms = self.clock(now_ms);
        let id = self.kad.put(key, value, now_ms).map_err(MeshError::P2p)?;
        self.drain_kad();
        Ok(id)
    }

    /// Starts an iterative FIND_NODE (result as [`KadEvent::NodesFound`]).
    pub fn find_node(&mut self, target: NodeId, now_ms: u64) -> u64 {
        let now_ms = self.clock(now_ms);
        let id = self.kad.find_node(target, now_ms);
        self.drain_kad();
        id
    }

    /// Leaves the mesh: our record is replaced by an empty one (so our writes stop
    /// counting everywhere), pushed to every peer, followed by LEAVE. Afterwards the node
    /// ignores input and has no timers; drain `poll_transmit` once more and drop it.
    pub fn leave(&mut self) {
        if self.left {
            return;
        }
        self.own.queue.clear();
        self.own.offload.clear();
        self.bump_own();
        let peers: Vec<SocketAddr> = self.kad.table().peers().map(|p| p.addr).collect();
        for addr in &peers {
            self.outbox
                .push_back((*addr, Frame::new(0, self.id, Body::Delta(self.own.clone()))));
            self.counters.deltas_sent += 1;
        }
        for addr in peers {
            self.outbox
                .push_back((addr, Frame::new(0, self.id, Body::Leave)));
        }
        self.left = true;
    }

    /// Counts a frame the transport dropped for a blocked address.
    pub fn count_blocked(&mut self) {
        self.counters.dropped.blocked += 1;
    }

    /// A snapshot.
    pub fn status(&self) -> Status {
        let b: BeliefReport = self.belief.last();
        let (residual, iterations) = self
            .last_settle
            .as_ref()
            .map_or((0.0, 0), |s| (s.report.residual, s.report.iterations));
        Status {
            id: self.id,
            peers: self.kad.table().len(),
            records: self.records.len(),
            own_version: self.own.version,
            last_residual: residual,
            last_iterations: iterations,
            f_collective: b.f_collective,
            free_energy: b.free_energy,
            dividend: b.dividend,
            latent_dim: self.belief.agent().dim(),
            dht_values: self.kad.store().len(),
            counters: self.counters,
        }
    }
}
