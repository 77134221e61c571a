//! `NodeState`: the whole node as a deterministic state machine, with no sockets and no
//! clock. The host (or [`super::Node`]) feeds it datagrams and time and drains what it
//! wants sent. This file is the dispatch; each concern lives beside it:
//! [`gossip`] (anti-entropy and rumours), [`layers`] (the layer stack), [`writes`] (the
//! proxy calls into our own record), [`balance`] (the balancer's reports and picks) and
//! [`dht`] (DHT calls and leaving).

mod balance;
mod dht;
mod gossip;
mod layers;
mod orphans;
mod sampling;
mod trust;
mod writes;

pub use gossip::{
    AMPLIFICATION, ASSEMBLY_TIMEOUT_MS, MAX_ASSEMBLIES, RUMOR_RECORDS, RUMOR_SUBROUNDS,
};

use super::belief::{BeliefReport, BeliefState, OBS_DIM};
use super::config::Admission;
use super::config::NodeConfig;
use super::counters::{Counters, RecordAges, Status};
use super::outbox::Outbox;
use super::own::{max_offload_entries, OwnRecord};
use super::records::RecordStore;
use super::workload::{Reconciler, Settlement};
use super::MeshError;
use crate::balancer::Balancer;
use crate::p2p::auth::{AuthKey, Envelope};
use crate::p2p::{Body, Frame, KadEvent, Kademlia, NodeId};
use crate::rng::Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;

/// The node as a pure state machine.
#[derive(Debug, Clone)]
pub struct NodeState {
    id: NodeId,
    config: NodeConfig,
    kad: Kademlia,
    records: RecordStore,
    own: OwnRecord,
    reconciler: Reconciler,
    belief: BeliefState,
    observation: [f64; OBS_DIM],
    observation_set: bool,
    /// How datagrams are protected (nothing, an HMAC tag, or encryption).
    envelope: Envelope,
    /// Where an encrypted datagram is decrypted (reused: no allocation per datagram).
    scratch: Vec<u8>,
    /// The ids an allowlist of keys admits (signed meshes with `Admission::Keys`).
    admitted: Option<BTreeSet<NodeId>>,
    rng: Rng,
    outbox: Outbox,
    events: VecDeque<KadEvent>,
    next_gossip_ms: u64,
    /// When the last gossip round ran, and the current round period (it doubles while
    /// nothing changes, up to `max_gossip_interval_ms`).
    last_gossip_ms: u64,
    gossip_every_ms: u64,
    /// Something changed since the last round: the next one comes at the base period.
    gossip_activity: bool,
    /// The view digest and the record generation it was computed at.
    view_cache: (u64, u64),
    /// The record changed here last (learned, certified or written): named in SUMMARY so
    /// a peer that lacks it asks for exactly that one.
    latest: (NodeId, u64),
    /// When the next rumour sub-round may run (see `gossip::RUMOR_SUBROUNDS`), and until
    /// when gossip keeps the base pace after the last rumour started (`gossip::rumour`).
    next_rumor_ms: u64,
    busy_until_ms: u64,
    /// Kademlia's count of PINGs that carried our view, as of the last quiet round: a
    /// quiet round whose pings carried the view since sends no SUMMARY.
    view_pings_at_round: u64,
    next_layer_ms: u64,
    digest_cursor: NodeId,
    /// Records to rumour: origin → rounds left (ordered map: deterministic choice).
    hot: BTreeMap<NodeId, u32>,
    /// When each other origin's record last changed here (node time): the information
    /// age an operator reads. Same keys as the record store, so bounded like it.
    received_ms: BTreeMap<NodeId, u64>,
    /// The last settlement and the record generation it was computed from.
    last_settle: Option<(u64, Settlement)>,
    counters: Counters,
    /// The dispatch policy over the topology's vertices.
    balancer: Balancer,
    /// The host reports requests: the node publishes its in-flight counts.
    balancing: bool,
    /// The record generation the balancer last saw.
    balanced_generation: Option<u64>,
    left: bool,
    /// The peer-sampling view (at most `config.sample_view` entries) and the ids sent in
    /// the last shuffle (replaced by what its answer brings).
    sample: Vec<sampling::ViewEntry>,
    shuffle_sent: Vec<NodeId>,
    next_shuffle_ms: u64,
    /// The current shuffle period (doubles while shuffles bring no node unknown here; see
    /// `sampling`).
    shuffle_every_ms: u64,
    /// Chunked records being assembled, by origin (at most `MAX_ASSEMBLIES`).
    assemblies: BTreeMap<NodeId, gossip::Assembly>,
    /// Orphan probes in flight: lookup id → the origin looked up and the version of its
    /// record held when the lookup started.
    orphan_lookups: BTreeMap<u64, (NodeId, u64)>,
    /// When each origin was last probed, and last sent us a frame itself (keys: held
    /// origins only).
    probed_ms: BTreeMap<NodeId, u64>,
    heard_ms: BTreeMap<NodeId, u64>,
    /// Origins found unresponsive, waiting to be certified: origin → (node time found,
    /// version held then). Keys are held origins.
    suspects: BTreeMap<NodeId, (u64, u64)>,
    /// The origin probed last (round robin), when the next probe is due and the current
    /// wait between probes (doubles while probes find their origin alive; see `orphans`).
    orphan_cursor: NodeId,
    next_orphan_probe_ms: u64,
    orphan_every_ms: u64,
    /// The node's clock: never decreasing (see `clock`).
    clock_ms: u64,
    /// Added to host times: the sum of the host clock's steps back.
    clock_offset_ms: u64,
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
        let envelope = match (&config.keyring, &config.auth_key) {
            (Some(ring), _) => Envelope::sealed(ring).map_err(|e| MeshError::Config {
                what: "keyring",
                why: format!("the OS gave no random bytes for nonces: {e}"),
            })?,
            (None, Some(key)) => Envelope::Tagged(AuthKey::new(key.bytes())),
            (None, None) => Envelope::Clear,
        };
        let balancer = Balancer::new(
            config.balancer.clone(),
            config.topology.n_vertices(),
            config.topology.edges(),
            config.seed,
            now_ms,
        )?;
        Ok(NodeState {
            id,
            kad,
            records: RecordStore::new(config.max_records),
            own: OwnRecord::new(
                id,
                config.incarnation,
                config.identity.clone(),
                max_offload_entries(config.identity.is_some(), envelope.overhead()),
            ),
            admitted: match &config.admission {
                Admission::Keys(keys) if config.identity.is_some() => {
                    Some(keys.iter().map(|k| k.node_id()).collect())
                }
                _ => None,
            },
            reconciler,
            belief,
            observation: [0.0; OBS_DIM],
            observation_set: false,
            envelope,
            scratch: Vec::new(),
            rng: Rng::new(config.seed ^ 0x6d65_7368),
            outbox: Outbox::default(),
            events: VecDeque::new(),
            next_gossip_ms: now_ms,
            last_gossip_ms: now_ms,
            gossip_every_ms: config.gossip_interval_ms,
            gossip_activity: true,
            view_cache: (u64::MAX, 0),
            latest: (NodeId::ZERO, 0),
            next_rumor_ms: now_ms,
            busy_until_ms: 0,
            view_pings_at_round: 0,
            next_layer_ms: now_ms.saturating_add(config.step_interval_ms),
            digest_cursor: NodeId::ZERO,
            hot: BTreeMap::new(),
            received_ms: BTreeMap::new(),
            last_settle: None,
            counters: Counters::default(),
            balancer,
            balancing: false,
            balanced_generation: None,
            left: false,
            sample: Vec::new(),
            shuffle_sent: Vec::new(),
            next_shuffle_ms: now_ms,
            shuffle_every_ms: sampling::SHUFFLE_EVERY_MS,
            assemblies: BTreeMap::new(),
            orphan_lookups: BTreeMap::new(),
            probed_ms: BTreeMap::new(),
            heard_ms: BTreeMap::new(),
            suspects: BTreeMap::new(),
            orphan_cursor: id,
            next_orphan_probe_ms: now_ms.saturating_add(config.orphan_probe_interval_ms),
            orphan_every_ms: config.orphan_probe_interval_ms,
            clock_ms: now_ms,
            clock_offset_ms: 0,
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

    /// The node's notion of now: the host's time plus an offset that grows whenever the
    /// host clock steps back, so node time never runs backwards and, after a step back,
    /// moves on with the host clock again. A host clock that steps back therefore delays
    /// no timer and breaks nothing (without the offset every timer would wait until the
    /// host clock caught up with the latest time it had reported); a jump forward fires
    /// each due timer once (no catch-up loop).
    fn clock(&mut self, now_ms: u64) -> u64 {
        let t = now_ms.saturating_add(self.clock_offset_ms);
        if t < self.clock_ms {
            self.clock_offset_ms = self.clock_ms - now_ms;
        }
        self.clock_ms = self.clock_ms.max(t);
        self.clock_ms
    }

    /// Tells the node the host's time without any other input, and returns it on the
    /// node's clock (what [`poll_timeout`](Self::poll_timeout) compares with).
    pub fn advance_clock(&mut self, now_ms: u64) -> u64 {
        self.clock(now_ms)
    }

    /// Host time `now_ms` on the node's clock, without recording it: the two differ only
    /// after the host clock has stepped back.
    pub fn node_time(&self, now_ms: u64) -> u64 {
        now_ms
            .saturating_add(self.clock_offset_ms)
            .max(self.clock_ms)
    }

    // -------------------------------------------------------------------------------
    // Input

    /// Handles one datagram from `from`. Every byte string is acceptable input: what is
    /// not a valid frame is counted by reason and dropped.
    pub fn handle_datagram(&mut self, from: SocketAddr, bytes: &[u8], now_ms: u64) {
        let now_ms = self.clock(now_ms);
        self.counters.frames_in += 1;
        self.counters.bytes_in += bytes.len() as u64;
        let mut scratch = std::mem::take(&mut self.scratch);
        let opened = self
            .envelope
            .open(bytes, &mut scratch)
            .map(|frame| (frame.len(), Frame::decode(frame)));
        self.scratch = scratch;
        let Some((frame_len, decoded)) = opened else {
            self.counters.dropped.bad_auth += 1;
            tracing::debug!(peer = %from, reason = "bad_auth", "dropped frame");
            return;
        };
        let frame = match decoded {
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
        if !self.admits_sender(&frame.sender) {
            self.counters.dropped.not_admitted += 1;
            return;
        }
        let leave = match &frame.body {
            Body::Leave => Some(None),
            Body::SignedLeave { version, key, sig } => Some(Some((*version, key, sig))),
            _ => None,
        };
        if let Some(signed) = leave {
            match self.check_leave(&frame.sender, signed) {
                Ok(()) => {}
                Err(Some(why)) => return self.count_refusal(why),
                Err(None) => {
                    self.counters.dropped.bad_leave += 1;
                    return;
                }
            }
            if !self.kad.peer_left(&frame.sender, from, now_ms) {
                self.counters.dropped.bad_leave += 1;
                return;
            }
            self.belief.forget(&frame.sender);
            self.drain_kad();
            return;
        }
        self.kad.observe(frame.sender, from, now_ms);
        // An origin that speaks to us is alive: no orphan probe needed for it.
        if self.records.get(&frame.sender).is_some() {
            self.heard_ms.insert(frame.sender, now_ms);
        }
        if let Body::PingView { view, records } = &frame.body {
            // A quiet peer's PING carries its view: a SUMMARY without the latest record
            // (Kademlia answers it below, as any PING).
            self.on_summary(from, *view, *records, (NodeId::ZERO, 0));
        }
        match &frame.body {
            Body::Digest {
                reply,
                lo,
                hi,
                entries,
            } => self.on_digest(from, frame_len, *reply, *lo, *hi, entries),
            Body::Summary {
                view,
                records,
                latest_origin,
                latest_version,
            } => self.on_summary(from, *view, *records, (*latest_origin, *latest_version)),
            Body::Ranges { bits, hashes } => self.on_ranges(from, frame_len, *bits, hashes),
            Body::Delta(r) => self.on_delta(r),
            Body::Deltas(rs) => {
                for r in rs {
                    self.on_delta(r);
                }
            }
            Body::Chunk(p) => self.on_chunk(p, now_ms),
            Body::Shuffle { reply, contacts } => {
                self.on_shuffle(from, frame.sender, *reply, contacts)
            }
            Body::Belief {
                free_energy, mean, ..
            } => self.on_belief(frame.sender, *free_energy, mean, now_ms),
            _ => {
                if !self.kad.handle(from, &frame, now_ms) {
                    self.counters.dropped.unmatched_reply += 1;
                }
            }
        }
        self.drain_kad();
    }

    /// Runs every timer due at `now_ms`: request timeouts, pings, refreshes, anti-entropy
    /// and the layer stack. Call it when [`poll_timeout`](Self::poll_timeout) is reached
    /// (calling earlier or more often is harmless).
    pub fn handle_timeout(&mut self, now_ms: u64) {
        let now_ms = self.clock(now_ms);
        if self.left {
            return;
        }
        // While the mesh is quiet (gossip backed off all the way, nothing to spread), the
        // liveness PINGs carry our view: anti-entropy rides on them, and quiet rounds send
        // no SUMMARY of their own (see `gossip`). While the period is still doubling, the
        // SUMMARY goes on to the sampled peer: PINGs go only to peers silent for a ping
        // interval, so after a short cut none crosses it, and the heal would wait for one.
        let quiet = self.config.max_gossip_interval_ms > self.config.gossip_interval_ms
            && self.gossip_every_ms >= self.config.max_gossip_interval_ms
            && !self.gossip_activity
            && self.hot.is_empty()
            && !self.own.pending()
            && now_ms >= self.busy_until_ms;
        let ping_view = quiet.then(|| {
            let view = self.view_digest();
            (view, u32::try_from(self.records.len()).unwrap_or(u32::MAX))
        });
        self.kad.set_ping_view(ping_view);
        self.kad.handle_timeout(now_ms);
        self.drain_kad();
        if now_ms >= self.gossip_due() {
            let active = self.gossip_activity
                || !self.hot.is_empty()
                || self.own.pending()
                || now_ms < self.busy_until_ms;
            self.gossip_every_ms = if active {
                self.config.gossip_interval_ms
            } else {
                self.gossip_every_ms
                    .saturating_mul(2)
                    .min(self.config.max_gossip_interval_ms)
            };
            self.gossip_activity = false;
            self.last_gossip_ms = now_ms;
            // While the period doubles, a round waits a uniform draw from the second half
            // of it: nodes that backed off together after one burst of writes would
            // otherwise keep their rounds in step, and a cut that healed just after such a
            // round waited a whole period for the next exchange across it. At the ceiling
            // the view PINGs carry anti-entropy, and a shorter wait would only add SUMMARY
            // frames between them.
            let period = self.gossip_every_ms;
            let wait = if period > self.config.gossip_interval_ms
                && period < self.config.max_gossip_interval_ms
            {
                period - self.rng.below(period / 2 + 1)
            } else {
                period
            };
            self.next_gossip_ms = now_ms.saturating_add(wait);
            // Quiet rounds (a SUMMARY instead of pages) only with the backoff on.
            let quiet_mesh = self.config.max_gossip_interval_ms > self.config.gossip_interval_ms;
            self.next_rumor_ms = now_ms.saturating_add(self.rumor_every_ms());
            self.gossip(!active && quiet_mesh);
        }
        if now_ms >= self.rumor_due() {
            self.next_rumor_ms = now_ms.saturating_add(self.rumor_every_ms());
            self.rumor_subround();
        }
        if now_ms >= self.next_layer_ms {
            self.next_layer_ms = now_ms.saturating_add(self.config.step_interval_ms);
            self.layer_step(now_ms);
        }
        self.probe_orphans(now_ms);
        self.drain_kad();
        self.confirm_suspects(now_ms);
    }

    /// Moves what Kademlia wants sent into our outbox and its events into our queue.
    fn drain_kad(&mut self) {
        while let Some((to, frame)) = self.kad.poll_transmit() {
            self.outbox.push(to, frame);
        }
        while let Some(ev) = self.kad.poll_event() {
            match &ev {
                KadEvent::PeerAdded(c) => self.view_learn(c),
                KadEvent::PeerRemoved { id, addr, reason } => {
                    self.belief.forget(id);
                    if *reason == "unresponsive" {
                        self.view_forget(id);
                        self.certify_dead(*id, Some(*addr));
                    }
                }
                KadEvent::NodesFound {
                    lookup, closest, ..
                } if self.orphan_lookup_done(*lookup, closest) => continue,
                _ => {}
            }
            self.events.push_back(ev);
        }
    }

    // -------------------------------------------------------------------------------
    // Output

    /// Encodes the next datagram into `buf` (cleared first) and returns where it goes;
    /// `None` when nothing is queued. Call until it returns `None` after every input.
    /// Reuse one buffer: once it has grown to a frame's size, sending allocates nothing.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        while let Some((destination, frame)) = self.outbox.pop() {
            match frame.encode_into(buf) {
                Ok(()) => {
                    self.envelope.close(buf);
                    self.counters.frames_out += 1;
                    self.counters.bytes_out += buf.len() as u64;
                    return Some(destination);
                }
                Err(e) => {
                    self.counters.encode_errors += 1;
                    tracing::error!(error = %e, "frame could not be encoded; dropped");
                }
            }
        }
        buf.clear();
        None
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next, on the node's clock
    /// (host milliseconds until the host clock steps back; compare with
    /// [`node_time`](Self::node_time)).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.left {
            return None;
        }
        Some(
            self.kad
                .poll_timeout()
                .min(self.gossip_due())
                .min(self.rumor_due())
                .min(self.next_layer_ms)
                .min(if self.config.orphan_probe_interval_ms == 0 {
                    u64::MAX
                } else {
                    self.next_orphan_probe_ms
                })
                .min(self.next_suspect_ms()),
        )
    }

    /// The period of rumour sub-rounds (see `gossip::RUMOR_SUBROUNDS`).
    fn rumor_every_ms(&self) -> u64 {
        (self.config.gossip_interval_ms / gossip::RUMOR_SUBROUNDS).max(1)
    }

    /// When the next rumour sub-round is due: only while there is something to rumour or
    /// publish, and only before the next round (which does both itself).
    fn rumor_due(&self) -> u64 {
        let work = !self.hot.is_empty() || self.own.pending();
        if work && self.next_rumor_ms < self.gossip_due() {
            self.next_rumor_ms
        } else {
            u64::MAX
        }
    }

    /// When the next gossip round is due: its scheduled time, or sooner (one base period
    /// after the last round) when something changed since, such as a write to publish.
    fn gossip_due(&self) -> u64 {
        if self.gossip_activity || self.own.pending() {
            self.next_gossip_ms.min(
                self.last_gossip_ms
                    .saturating_add(self.config.gossip_interval_ms),
            )
        } else {
            self.next_gossip_ms
        }
    }

    /// The next routing-table or DHT event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<KadEvent> {
        self.events.pop_front()
    }

    // -------------------------------------------------------------------------------
    // Results

    /// Settles again when the records changed since the last settlement.
    fn settle_now(&mut self) -> Result<&Settlement, MeshError> {
        let generation = self.records.generation();
        if self.last_settle.as_ref().map(|s| s.0) != Some(generation) {
            let s = self.reconciler.settle_sums(
                self.records.sums(),
                self.config.settle_mode,
                self.config.queue_gain,
                self.config.min_rate,
            )?;
            self.last_settle = Some((generation, s));
        }
        self.last_settle
            .as_ref()
            .map(|s| &s.1)
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

    /// Counts a frame the transport dropped for a blocked address.
    pub fn count_blocked(&mut self) {
        self.counters.dropped.blocked += 1;
    }

    /// Counts a datagram the socket refused to send.
    pub fn count_send_error(&mut self) {
        self.counters.send_errors += 1;
    }

    /// The node's clock: the latest host time given, plus every step back the host clock
    /// has made since (so it never decreases).
    pub fn latest_time_ms(&self) -> u64 {
        self.clock_ms
    }

    /// How old the other origins' records are here at `now_ms` (host time): time since
    /// each last changed at this node. A record that has not changed for long is either
    /// from a quiet balancer or from one that is gone.
    pub fn record_ages(&self, now_ms: u64) -> RecordAges {
        let now = self.node_time(now_ms);
        let mut ages = RecordAges::default();
        let mut sum = 0.0;
        for t in self.received_ms.values() {
            let age = now.saturating_sub(*t);
            ages.origins += 1;
            ages.max_ms = ages.max_ms.max(age);
            sum += age as f64;
        }
        if ages.origins > 0 {
            ages.mean_ms = sum / ages.origins as f64;
        }
        ages
    }

    /// A snapshot.
    pub fn status(&self) -> Status {
        let b: BeliefReport = self.belief.last();
        let (residual, iterations) = self
            .last_settle
            .as_ref()
            .map_or((0.0, 0), |s| (s.1.report.residual, s.1.report.iterations));
        Status {
            id: self.id,
            peers: self.kad.table().len(),
            records: self.records.len(),
            own_version: self.own.version(),
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
