//! The Kademlia engine as a pure state machine: frames and time in, frames and events out.

use super::id::{NodeId, ID_BITS};
use super::protocol::{Body, Contact, FoundValue, Frame, StoreStatus, MAX_CONTACTS};
use super::routing::{InsertOutcome, RoutingTable};
use super::store::DhtStore;
use super::P2pError;
use crate::rng::Rng;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

/// Kademlia settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KadConfig {
    /// Bucket size K (1..=20).
    pub k: usize,
    /// Parallel requests per lookup (α, 1..=8).
    pub alpha: usize,
    /// How long to wait for an answer before resending.
    pub request_timeout_ms: u64,
    /// Resends after the first attempt before a request counts as failed.
    pub retries: u32,
    /// Failed requests in a row after which a peer is removed.
    pub max_failures: u32,
    /// A peer not heard from for this long is PINGed.
    pub ping_interval_ms: u64,
    /// Period of refresh lookups (one per period: a sweep of a self-lookup and one lookup
    /// per bucket) and of re-contacting bootstrap addresses, while the routing table
    /// changes.
    pub refresh_interval_ms: u64,
    /// While the routing table stays the same, the refresh period doubles up to this
    /// (a quiet mesh is quiet); any change brings it back to `refresh_interval_ms`.
    pub max_refresh_interval_ms: u64,
    /// Most quiet peers PINGed per ping round (every `ping_interval_ms`), the longest
    /// silent first: the liveness traffic of a node does not grow with the mesh. A peer
    /// that failed to answer is PINGed again every half interval until it answers or is
    /// removed, so a dead peer, once found silent, is removed as fast as before.
    pub pings_per_round: usize,
    /// When a full bucket's least recently seen peer would make room for a newcomer, it is
    /// PINGed first only if it has been silent this long, and longer than one turn of the
    /// liveness pings over the whole table takes (table size × `ping_interval_ms` /
    /// `pings_per_round`, plus one interval: a live peer in a quiet mesh is heard from at
    /// least that often); one heard from more recently is kept and the newcomer dropped
    /// (Kademlia's preference for old contacts, without a probe for every stranger that
    /// writes to us; the liveness pings still check it). 0 probes every time.
    pub probe_silent_ms: u64,
    /// Most values in the local DHT store.
    pub store_max_entries: usize,
    /// Longest DHT value accepted.
    pub store_max_value_len: usize,
}

impl Default for KadConfig {
    fn default() -> Self {
        KadConfig {
            k: 4,
            alpha: 3,
            request_timeout_ms: 250,
            retries: 1,
            max_failures: 2,
            ping_interval_ms: 1_000,
            refresh_interval_ms: 1_000,
            max_refresh_interval_ms: 64_000,
            pings_per_round: 1,
            probe_silent_ms: 10_000,
            store_max_entries: 1_024,
            store_max_value_len: 1_024,
        }
    }
}

impl KadConfig {
    /// Checks every setting.
    pub fn validate(&self) -> Result<(), P2pError> {
        let bad = |what: &'static str, value: u64, why: &'static str| {
            Err(P2pError::Config { what, value, why })
        };
        if !(1..=MAX_CONTACTS).contains(&self.k) {
            return bad("k", self.k as u64, "must be 1..=20");
        }
        if !(1..=8).contains(&self.alpha) {
            return bad("alpha", self.alpha as u64, "must be 1..=8");
        }
        if self.request_timeout_ms == 0 {
            return bad("request_timeout_ms", 0, "must be positive");
        }
        if self.max_failures == 0 {
            return bad("max_failures", 0, "must be positive");
        }
        if self.ping_interval_ms == 0 || self.refresh_interval_ms == 0 {
            return bad("ping/refresh interval", 0, "must be positive");
        }
        if self.max_refresh_interval_ms < self.refresh_interval_ms {
            return bad(
                "max_refresh_interval_ms",
                self.max_refresh_interval_ms,
                "must be at least refresh_interval_ms",
            );
        }
        if self.pings_per_round == 0 {
            return bad("pings_per_round", 0, "must be positive");
        }
        Ok(())
    }
}

/// Something the host (or the mesh) may want to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KadEvent {
    /// A peer entered the routing table.
    PeerAdded(Contact),
    /// A peer left the routing table.
    PeerRemoved {
        /// Its id.
        id: NodeId,
        /// The address it was held at.
        addr: SocketAddr,
        /// Why: "unresponsive", "evicted" or "left".
        reason: &'static str,
    },
    /// A [`Kademlia::find_node`] lookup finished.
    NodesFound {
        /// Lookup id returned by `find_node`.
        lookup: u64,
        /// The target.
        target: NodeId,
        /// The closest responsive contacts, nearest first.
        closest: Vec<Contact>,
    },
    /// A [`Kademlia::get`] lookup finished.
    Value {
        /// Lookup id returned by `get`.
        lookup: u64,
        /// Key.
        key: NodeId,
        /// The value, or `None` when no node had it.
        value: Option<Vec<u8>>,
    },
    /// A [`Kademlia::put`] finished.
    Stored {
        /// Lookup id returned by `put`.
        lookup: u64,
        /// Key.
        key: NodeId,
        /// Nodes (other than us) that acknowledged the store.
        acked: usize,
        /// Nodes that refused it or did not answer.
        failed: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CandState {
    Fresh,
    Asked,
    Answered,
    Failed,
}

#[derive(Debug, Clone)]
enum Purpose {
    /// Internal: refresh.
    Maintain,
    /// Internal: the self-lookup after joining; refreshes every bucket when done.
    Join,
    FindNode,
    Get,
    Put(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Lookup {
    target: NodeId,
    purpose: Purpose,
    /// Sorted by distance to the target, nearest first.
    cands: Vec<(Contact, CandState)>,
    in_flight: usize,
    /// Put: STOREs sent, acked, failed.
    stores: (usize, usize, usize),
    storing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReqKind {
    /// Liveness or bootstrap PING (`probe`: ping-before-evict of that bucket's oldest).
    Ping { probe: bool },
    /// A lookup step.
    Lookup(u64),
    /// A STORE of a put.
    Store(u64),
    /// A PING to a peer's held address after a frame claimed it from `moved_to`: an
    /// answer keeps the held address, silence moves the peer there.
    AddressCheck { moved_to: SocketAddr },
}

#[derive(Debug, Clone)]
struct Request {
    to: SocketAddr,
    peer: Option<NodeId>,
    kind: ReqKind,
    body: Body,
    deadline: u64,
    attempts: u32,
}

/// Counters the engine keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KadCounters {
    /// Requests sent (first attempts).
    pub requests: u64,
    /// Resends after a timeout.
    pub retries: u64,
    /// Requests that failed after every retry.
    pub timeouts: u64,
    /// Replies whose request id (or source address) matched nothing outstanding.
    pub unmatched_replies: u64,
    /// Peers removed for not answering.
    pub removed_unresponsive: u64,
    /// Lookups started.
    pub lookups: u64,
    /// Frames from a known peer's id at another address than the one held.
    pub address_conflicts: u64,
    /// Peers moved to a new address after their held address stopped answering.
    pub address_moves: u64,
    /// Liveness PINGs that carried the mesh's view (see [`Kademlia::set_ping_view`]).
    pub view_pings: u64,
}

/// The Kademlia node: routing table, DHT store, outstanding requests and lookups.
#[derive(Debug, Clone)]
pub struct Kademlia {
    id: NodeId,
    config: KadConfig,
    table: RoutingTable,
    store: DhtStore,
    rng: Rng,
    requests: BTreeMap<u64, Request>,
    lookups: BTreeMap<u64, Lookup>,
    next_lookup: u64,
    bootstrap: Vec<SocketAddr>,
    outbox: VecDeque<(SocketAddr, Frame)>,
    events: VecDeque<KadEvent>,
    next_ping_ms: u64,
    /// Half-interval ping ticks so far: the even ones are the regular rounds, the odd
    /// ones only re-PING peers that failed to answer.
    ping_ticks: u64,
    /// What liveness PINGs carry: the mesh's view and record count while it is quiet.
    ping_view: Option<(u64, u32)>,
    next_refresh_ms: u64,
    /// The current refresh period (doubles while the table stays the same).
    refresh_every_ms: u64,
    /// The routing table as of the last refresh (see `table_fingerprint`), and how many
    /// refreshes in a row found it unchanged.
    table_at_refresh: (usize, u64),
    unchanged_refreshes: usize,
    refresh_cursor: usize,
    /// Peers that left (a valid LEAVE) and when: a frame they sent before leaving and that
    /// arrives after the LEAVE must not put them back in the table. At most [`LEFT_MAX`],
    /// each kept for one request's whole life (`request_timeout_ms × (retries + 1)`).
    left: BTreeMap<NodeId, u64>,
    joined: bool,
    counters: KadCounters,
}

/// Most peers remembered as having left (the oldest go first).
pub const LEFT_MAX: usize = 64;

impl Kademlia {
    /// A node with `id`, randomness seeded by `seed`.
    pub fn new(id: NodeId, config: KadConfig, seed: u64) -> Result<Kademlia, P2pError> {
        config.validate()?;
        Ok(Kademlia {
            id,
            config,
            table: RoutingTable::new(id, config.k).with_probe_silent_ms(config.probe_silent_ms),
            store: DhtStore::new(config.store_max_entries, config.store_max_value_len),
            rng: Rng::new(seed ^ 0x6b61_6465_6d6c_6961),
            requests: BTreeMap::new(),
            lookups: BTreeMap::new(),
            next_lookup: 1,
            bootstrap: Vec::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            next_ping_ms: 0,
            ping_ticks: 0,
            ping_view: None,
            next_refresh_ms: 0,
            refresh_every_ms: config.refresh_interval_ms,
            table_at_refresh: (0, 0),
            unchanged_refreshes: 0,
            refresh_cursor: 0,
            left: BTreeMap::new(),
            joined: false,
            counters: KadCounters::default(),
        })
    }

    /// Sets what the liveness PINGs carry from now on: `Some((view, records))` sends
    /// PING with the view (the mesh's quiet anti-entropy riding on liveness), `None` empty
    /// PINGs.
    pub fn set_ping_view(&mut self, view: Option<(u64, u32)>) {
        self.ping_view = view;
    }

    /// Our id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Settings.
    pub fn config(&self) -> &KadConfig {
        &self.config
    }

    /// The routing table.
    pub fn table(&self) -> &RoutingTable {
        &self.table
    }

    /// The local DHT store.
    pub fn store(&self) -> &DhtStore {
        &self.store
    }

    /// Counters.
    pub fn counters(&self) -> KadCounters {
        self.counters
    }

    /// Outstanding requests.
    pub fn outstanding(&self) -> usize {
        self.requests.len()
    }

    /// Adds bootstrap addresses and PINGs them now. They are PINGed again at every
    /// refresh while not in the table, so a node finds its way back after a partition.
    pub fn bootstrap(&mut self, addrs: &[SocketAddr], now_ms: u64) {
        for a in addrs {
            if !self.bootstrap.contains(a) {
                self.bootstrap.push(*a);
            }
            self.send_request(*a, None, ReqKind::Ping { probe: false }, Body::Ping, now_ms);
        }
    }

    /// PINGs `addr` once (with the usual retries); an answer enters the routing table
    /// like any frame, and nothing is reported when none comes.
    pub fn ping(&mut self, addr: SocketAddr, now_ms: u64) {
        self.send_request(
            addr,
            None,
            ReqKind::Ping { probe: false },
            Body::Ping,
            now_ms,
        );
    }

    /// Starts an iterative FIND_NODE; the result arrives as [`KadEvent::NodesFound`]. The
    /// lookup ends as soon as the target itself answers (it is then first in `closest`),
    /// otherwise when the `k` closest candidates have all answered or failed.
    pub fn find_node(&mut self, target: NodeId, now_ms: u64) -> u64 {
        self.start_lookup(target, Purpose::FindNode, now_ms)
    }

    /// Starts an iterative FIND_VALUE; the result arrives as [`KadEvent::Value`]. A value
    /// held locally is reported without touching the network.
    pub fn get(&mut self, key: NodeId, now_ms: u64) -> u64 {
        if let Some(v) = self.store.get(&key) {
            let lookup = self.next_lookup;
            self.next_lookup += 1;
            self.events.push_back(KadEvent::Value {
                lookup,
                key,
                value: Some(v.to_vec()),
            });
            return lookup;
        }
        self.start_lookup(key, Purpose::Get, now_ms)
    }

    /// Stores `value` locally and on the K nodes closest to `key`; completion arrives as
    /// [`KadEvent::Stored`]. Refused (nothing changes) when the local store refuses it.
    pub fn put(&mut self, key: NodeId, value: &[u8], now_ms: u64) -> Result<u64, P2pError> {
        self.store
            .put(key, value)
            .map_err(|status| P2pError::Store { status })?;
        Ok(self.start_lookup(key, Purpose::Put(value.to_vec()), now_ms))
    }

    /// A LEAVE from `id` arrived from `from`. It counts only from the address the table
    /// holds for `id` (from anywhere else it is a forgery that would drop a live peer):
    /// then the peer is removed. Returns false, changing nothing, otherwise.
    pub fn peer_left(&mut self, id: &NodeId, from: SocketAddr, now_ms: u64) -> bool {
        if self.table.get(id).map(|p| p.addr) != Some(from) {
            return false;
        }
        if self.table.remove(id, now_ms) {
            self.events.push_back(KadEvent::PeerRemoved {
                id: *id,
                addr: from,
                reason: "left",
            });
        }
        let window = self.left_window_ms();
        self.left.retain(|_, t| now_ms.saturating_sub(*t) < window);
        if self.left.len() >= LEFT_MAX {
            if let Some(oldest) = self.left.iter().min_by_key(|(_, t)| **t).map(|(i, _)| *i) {
                self.left.remove(&oldest);
            }
        }
        self.left.insert(*id, now_ms);
        true
    }

    /// How long a peer that left is kept out of the table: the longest a frame it sent
    /// before leaving (an answer to our request) can still be on its way.
    fn left_window_ms(&self) -> u64 {
        self.config
            .request_timeout_ms
            .saturating_mul(u64::from(self.config.retries) + 1)
    }

    /// Notes that a valid frame came from `sender` at `from`: Kademlia's update rule.
    pub fn observe(&mut self, sender: NodeId, from: SocketAddr, now_ms: u64) {
        if let Some(t) = self.left.get(&sender) {
            if now_ms.saturating_sub(*t) < self.left_window_ms() {
                return;
            }
            self.left.remove(&sender);
        }
        let c = Contact {
            id: sender,
            addr: from,
        };
        match self.table.insert(c, now_ms) {
            InsertOutcome::Added => self.events.push_back(KadEvent::PeerAdded(c)),
            InsertOutcome::ProbeOldest { probe } => {
                // Ping-before-evict: the oldest keeps its slot if it answers in time.
                self.send_request(
                    probe.addr,
                    Some(probe.id),
                    ReqKind::Ping { probe: true },
                    Body::Ping,
                    now_ms,
                );
            }
            InsertOutcome::AddressHeld { held } => {
                self.counters.address_conflicts += 1;
                // One check at a time per peer: further claims wait for its outcome.
                let checking = self.requests.values().any(|r| {
                    r.peer == Some(sender) && matches!(r.kind, ReqKind::AddressCheck { .. })
                });
                if !checking {
                    self.send_request(
                        held,
                        Some(sender),
                        ReqKind::AddressCheck { moved_to: from },
                        Body::Ping,
                        now_ms,
                    );
                }
            }
            InsertOutcome::Refreshed | InsertOutcome::Dropped | InsertOutcome::IsSelf => {}
        }
    }

    /// Handles a Kademlia frame (call [`observe`](Self::observe) first). Mesh frames are
    /// ignored here. Returns false when a reply matched no outstanding request.
    pub fn handle(&mut self, from: SocketAddr, frame: &Frame, now_ms: u64) -> bool {
        let rid = frame.request_id;
        match &frame.body {
            Body::Ping | Body::PingView { .. } => self.reply(from, rid, Body::Pong),
            Body::FindNode { target } => {
                let contacts = self.closest_excluding(target, &frame.sender);
                self.reply(from, rid, Body::FoundNodes { contacts });
            }
            Body::FindValue { key } => {
                let body = match self.store.get(key) {
                    Some(v) => Body::FoundValue(FoundValue::Value(v.to_vec())),
                    None => Body::FoundValue(FoundValue::Nodes(
                        self.closest_excluding(key, &frame.sender),
                    )),
                };
                self.reply(from, rid, body);
            }
            Body::Store { key, value } => {
                let status = match self.store.put(*key, value) {
                    Ok(()) => StoreStatus::Ok,
                    Err(s) => s,
                };
                self.reply(from, rid, Body::StoreAck { status });
            }
            Body::Pong | Body::FoundNodes { .. } | Body::FoundValue(_) | Body::StoreAck { .. } => {
                return self.handle_reply(from, frame, now_ms);
            }
            Body::Digest { .. }
            | Body::Summary { .. }
            | Body::Ranges { .. }
            | Body::Delta(_)
            | Body::Deltas(_)
            | Body::Belief { .. }
            | Body::Leave
            | Body::SignedLeave { .. }
            | Body::Chunk(_)
            | Body::Shuffle { .. } => {}
        }
        true
    }

    fn closest_excluding(&self, target: &NodeId, asker: &NodeId) -> Vec<Contact> {
        let mut v = self.table.closest(target, self.config.k + 1);
        v.retain(|c| c.id != *asker);
        v.truncate(self.config.k);
        v
    }

    fn reply(&mut self, to: SocketAddr, rid: u64, body: Body) {
        self.outbox.push_back((to, Frame::new(rid, self.id, body)));
    }

    fn handle_reply(&mut self, from: SocketAddr, frame: &Frame, now_ms: u64) -> bool {
        let rid = frame.request_id;
        // A reply must come from the address the request went to, and from the peer we
        // meant (when we knew its id): otherwise anyone could answer for anyone.
        let matches = self.requests.get(&rid).is_some_and(|r| {
            r.to == from
                && r.peer.is_none_or(|p| p == frame.sender)
                && reply_fits(&r.body, &frame.body)
        });
        if !matches {
            self.counters.unmatched_replies += 1;
            return false;
        }
        let Some(req) = self.requests.remove(&rid) else {
            return false;
        };
        match req.kind {
            // The held address answered: the peer stays there (`observe` refreshed it).
            ReqKind::AddressCheck { .. } => {}
            ReqKind::Ping { .. } => {
                // `observe` already refreshed the peer; a probed oldest keeps its slot.
                if self.bootstrap.contains(&from) && !self.joined {
                    self.joined = true;
                    let me = self.id;
                    self.start_lookup(me, Purpose::Join, now_ms);
                }
            }
            ReqKind::Lookup(l) => {
                let (contacts, value) = match &frame.body {
                    Body::FoundNodes { contacts } => (contacts.as_slice(), None),
                    Body::FoundValue(FoundValue::Nodes(c)) => (c.as_slice(), None),
                    Body::FoundValue(FoundValue::Value(v)) => (&[][..], Some(v.clone())),
                    _ => (&[][..], None),
                };
                self.lookup_answer(l, frame.sender, contacts, value, now_ms);
            }
            ReqKind::Store(l) => {
                let ok = matches!(
                    frame.body,
                    Body::StoreAck {
                        status: StoreStatus::Ok
                    }
                );
                self.store_answer(l, ok);
            }
        }
        true
    }

    /// Runs due timers: request timeouts and retries, liveness pings, refreshes.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        let due: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, r)| r.deadline <= now_ms)
            .map(|(&id, _)| id)
            .collect();
        for rid in due {
            let Some(mut req) = self.requests.remove(&rid) else {
                continue;
            };
            if req.attempts <= self.config.retries {
                req.attempts += 1;
                req.deadline = now_ms.saturating_add(self.config.request_timeout_ms);
                self.counters.retries += 1;
                self.outbox
                    .push_back((req.to, Frame::new(rid, self.id, req.body.clone())));
                self.requests.insert(rid, req);
                continue;
            }
            self.counters.timeouts += 1;
            self.request_failed(&req, now_ms);
        }
        if now_ms >= self.next_ping_ms {
            self.next_ping_ms = now_ms.saturating_add((self.config.ping_interval_ms / 2).max(1));
            let regular = self.ping_ticks % 2 == 0;
            let turn = (self.table.len() as u64).saturating_mul(self.config.ping_interval_ms)
                / self.config.pings_per_round as u64;
            let silent = if self.config.probe_silent_ms == 0 {
                0
            } else {
                self.config
                    .probe_silent_ms
                    .max(turn.saturating_add(self.config.ping_interval_ms))
            };
            self.table.set_probe_silent_ms(silent);
            self.ping_ticks = self.ping_ticks.wrapping_add(1);
            self.ping_quiet_peers(now_ms, regular);
        }
        if now_ms >= self.next_refresh_ms {
            // Refreshing only sends requests: the table compared below is unchanged by it.
            let lost_bootstrap = self.refresh(now_ms);
            let table = self.table_fingerprint();
            // Back off only once a whole sweep (the self-lookup and every bucket, one per
            // refresh) found nothing new: a table still filling keeps the base period.
            let span = ID_BITS - self.table.lowest_nonempty().unwrap_or(ID_BITS - 1) + 1;
            if table != self.table_at_refresh || lost_bootstrap {
                self.unchanged_refreshes = 0;
            } else {
                self.unchanged_refreshes = self.unchanged_refreshes.saturating_add(1);
            }
            self.refresh_every_ms = if self.unchanged_refreshes < span {
                self.config.refresh_interval_ms
            } else {
                self.refresh_every_ms
                    .saturating_mul(2)
                    .min(self.config.max_refresh_interval_ms)
            };
            self.table_at_refresh = table;
            self.next_refresh_ms = now_ms.saturating_add(self.refresh_every_ms);
        }
    }

    fn request_failed(&mut self, req: &Request, now_ms: u64) {
        if let (Some(peer), ReqKind::AddressCheck { moved_to }) = (req.peer, req.kind) {
            // The held address went silent: the peer really moved.
            if self.table.move_address(&peer, moved_to, now_ms) {
                self.counters.address_moves += 1;
            }
            return;
        }
        if let Some(peer) = req.peer {
            if let ReqKind::Ping { probe: true } = req.kind {
                if let Some(c) = self.table.probe_failed(&peer, now_ms) {
                    self.events.push_back(KadEvent::PeerRemoved {
                        id: peer,
                        addr: req.to,
                        reason: "evicted",
                    });
                    self.events.push_back(KadEvent::PeerAdded(c));
                }
            } else if self.table.record_failure(&peer) >= self.config.max_failures
                && self.table.remove(&peer, now_ms)
            {
                self.counters.removed_unresponsive += 1;
                self.events.push_back(KadEvent::PeerRemoved {
                    id: peer,
                    addr: req.to,
                    reason: "unresponsive",
                });
            }
        }
        match req.kind {
            ReqKind::Lookup(l) => {
                if let Some(peer) = req.peer {
                    self.lookup_failed(l, peer, now_ms);
                }
            }
            ReqKind::Store(l) => self.store_answer(l, false),
            ReqKind::Ping { .. } | ReqKind::AddressCheck { .. } => {}
        }
    }

    /// The routing table's size and an order-free digest of its ids: what the refresh
    /// backoff compares.
    fn table_fingerprint(&self) -> (usize, u64) {
        let mut x = 0u64;
        for p in self.table.peers() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&p.id.0[..8]);
            x ^= u64::from_be_bytes(b);
        }
        (self.table.len(), x)
    }

    /// One ping round: the longest silent peers (a `regular` round) or only those that
    /// failed to answer (the half-interval ticks between).
    fn ping_quiet_peers(&mut self, now_ms: u64, regular: bool) {
        let mut quiet: Vec<(u64, Contact)> = self
            .table
            .peers()
            .filter(|p| regular || p.failures > 0)
            .filter(|p| p.last_seen_ms.saturating_add(self.config.ping_interval_ms) <= now_ms)
            .filter(|p| !self.requests.values().any(|r| r.peer == Some(p.id)))
            .map(|p| (p.last_seen_ms, p.contact()))
            .collect();
        // The longest silent first (ties by id): a dead peer stays first until removed.
        quiet.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.id.cmp(&b.1.id)));
        quiet.truncate(self.config.pings_per_round);
        for (_, c) in quiet {
            let body = match self.ping_view {
                Some((view, records)) => {
                    self.counters.view_pings += 1;
                    Body::PingView { view, records }
                }
                None => Body::Ping,
            };
            self.send_request(
                c.addr,
                Some(c.id),
                ReqKind::Ping { probe: false },
                body,
                now_ms,
            );
        }
    }

    /// One refresh; returns whether some bootstrap address has no peer in the table.
    fn refresh(&mut self, now_ms: u64) -> bool {
        // Re-contact bootstrap addresses we hold no peer for.
        let lost: Vec<SocketAddr> = self
            .bootstrap
            .iter()
            .filter(|a| self.table.find_addr(a).is_none())
            .copied()
            .collect();
        let lost_any = !lost.is_empty();
        for a in lost {
            let busy = self.requests.values().any(|r| r.to == a);
            if !busy {
                self.send_request(a, None, ReqKind::Ping { probe: false }, Body::Ping, now_ms);
            }
        }
        if self.table.is_empty() {
            return lost_any;
        }
        // One lookup per period, in a sweep: a self-lookup (it covers the buckets below
        // the lowest non-empty one), then each bucket from there up.
        let lo = self.table.lowest_nonempty().unwrap_or(ID_BITS - 1);
        let step = self.refresh_cursor % (ID_BITS - lo + 1);
        self.refresh_cursor = self.refresh_cursor.wrapping_add(1);
        let target = match step.checked_sub(1) {
            None => self.id,
            Some(b) => self.id.random_in_bucket(lo + b, || self.rng.next_u64()),
        };
        self.start_lookup(target, Purpose::Maintain, now_ms);
        lost_any
    }

    /// Refreshes every bucket from the lowest non-empty one up, at once (used after
    /// joining, so a new node fills its table in a few round trips).
    pub fn refresh_all(&mut self, now_ms: u64) {
        let Some(lo) = self.table.lowest_nonempty() else {
            return;
        };
        for b in lo..ID_BITS {
            let target = self.id.random_in_bucket(b, || self.rng.next_u64());
            self.start_lookup(target, Purpose::Maintain, now_ms);
        }
    }

    fn send_request(
        &mut self,
        to: SocketAddr,
        peer: Option<NodeId>,
        kind: ReqKind,
        body: Body,
        now_ms: u64,
    ) -> u64 {
        let mut rid = self.rng.next_u64();
        while rid == 0 || self.requests.contains_key(&rid) {
            rid = self.rng.next_u64();
        }
        self.counters.requests += 1;
        self.outbox
            .push_back((to, Frame::new(rid, self.id, body.clone())));
        self.requests.insert(
            rid,
            Request {
                to,
                peer,
                kind,
                body,
                deadline: now_ms.saturating_add(self.config.request_timeout_ms),
                attempts: 1,
            },
        );
        rid
    }

    fn start_lookup(&mut self, target: NodeId, purpose: Purpose, now_ms: u64) -> u64 {
        let id = self.next_lookup;
        self.next_lookup += 1;
        self.counters.lookups += 1;
        let cands = self
            .table
            .closest(&target, self.config.k)
            .into_iter()
            .map(|c| (c, CandState::Fresh))
            .collect();
        self.lookups.insert(
            id,
            Lookup {
                target,
                purpose,
                cands,
                in_flight: 0,
                stores: (0, 0, 0),
                storing: false,
            },
        );
        self.advance(id, now_ms);
        id
    }

    fn lookup_answer(
        &mut self,
        l: u64,
        from: NodeId,
        contacts: &[Contact],
        value: Option<Vec<u8>>,
        now_ms: u64,
    ) {
        let me = self.id;
        let Some(lk) = self.lookups.get_mut(&l) else {
            return;
        };
        lk.in_flight = lk.in_flight.saturating_sub(1);
        if let Some(c) = lk.cands.iter_mut().find(|c| c.0.id == from) {
            c.1 = CandState::Answered;
        }
        if let (Some(v), Purpose::Get) = (value, &lk.purpose) {
            let key = lk.target;
            self.lookups.remove(&l);
            self.events.push_back(KadEvent::Value {
                lookup: l,
                key,
                value: Some(v),
            });
            return;
        }
        // Looking for a node and it answered itself: found, nothing nearer to ask.
        if matches!(lk.purpose, Purpose::FindNode) && from == lk.target {
            self.finish(l, now_ms);
            return;
        }
        for c in contacts {
            if c.id != me && !lk.cands.iter().any(|x| x.0.id == c.id) {
                lk.cands.push((*c, CandState::Fresh));
            }
        }
        let t = lk.target;
        lk.cands.sort_by_key(|a| a.0.id.distance(&t));
        // Keep the list bounded: nothing beyond 3K candidates can matter.
        let keep = 3 * self.config.k;
        if lk.cands.len() > keep {
            lk.cands.truncate(keep);
        }
        self.advance(l, now_ms);
    }

    fn lookup_failed(&mut self, l: u64, peer: NodeId, now_ms: u64) {
        let Some(lk) = self.lookups.get_mut(&l) else {
            return;
        };
        lk.in_flight = lk.in_flight.saturating_sub(1);
        if let Some(c) = lk.cands.iter_mut().find(|c| c.0.id == peer) {
            c.1 = CandState::Failed;
        }
        self.advance(l, now_ms);
    }

    /// Sends the next queries of lookup `l`, or finishes it.
    fn advance(&mut self, l: u64, now_ms: u64) {
        let (k, alpha) = (self.config.k, self.config.alpha);
        let Some(lk) = self.lookups.get_mut(&l) else {
            return;
        };
        if lk.storing {
            return;
        }
        let mut to_ask = Vec::new();
        let mut considered = 0;
        let mut pending_near = false;
        for (c, st) in lk.cands.iter_mut() {
            if considered == k {
                break;
            }
            match *st {
                CandState::Failed => continue,
                CandState::Answered => {}
                CandState::Asked => pending_near = true,
                CandState::Fresh => {
                    if lk.in_flight + to_ask.len() < alpha {
                        *st = CandState::Asked;
                        to_ask.push(*c);
                    }
                    pending_near = true;
                }
            }
            considered += 1;
        }
        if to_ask.is_empty() && !pending_near && lk.in_flight == 0 {
            self.finish(l, now_ms);
            return;
        }
        let body_for = |t: NodeId, p: &Purpose| match p {
            Purpose::Get => Body::FindValue { key: t },
            _ => Body::FindNode { target: t },
        };
        let body = body_for(lk.target, &lk.purpose);
        lk.in_flight += to_ask.len();
        for c in to_ask {
            self.send_request(c.addr, Some(c.id), ReqKind::Lookup(l), body.clone(), now_ms);
        }
    }

    fn finish(&mut self, l: u64, now_ms: u64) {
        let k = self.config.k;
        let Some(lk) = self.lookups.get_mut(&l) else {
            return;
        };
        let closest: Vec<Contact> = lk
            .cands
            .iter()
            .filter(|c| c.1 == CandState::Answered)
            .take(k)
            .map(|c| c.0)
            .collect();
        let target = lk.target;
        match lk.purpose.clone() {
            Purpose::Maintain => {
                self.lookups.remove(&l);
            }
            Purpose::Join => {
                self.lookups.remove(&l);
                self.refresh_all(now_ms);
            }
            Purpose::FindNode => {
                self.lookups.remove(&l);
                self.events.push_back(KadEvent::NodesFound {
                    lookup: l,
                    target,
                    closest,
                });
            }
            Purpose::Get => {
                self.lookups.remove(&l);
                self.events.push_back(KadEvent::Value {
                    lookup: l,
                    key: target,
                    value: None,
                });
            }
            Purpose::Put(value) => {
                if closest.is_empty() {
                    self.lookups.remove(&l);
                    self.events.push_back(KadEvent::Stored {
                        lookup: l,
                        key: target,
                        acked: 0,
                        failed: 0,
                    });
                    return;
                }
                lk.storing = true;
                lk.stores = (closest.len(), 0, 0);
                for c in closest {
                    self.send_request(
                        c.addr,
                        Some(c.id),
                        ReqKind::Store(l),
                        Body::Store {
                            key: target,
                            value: value.clone(),
                        },
                        now_ms,
                    );
                }
            }
        }
    }

    fn store_answer(&mut self, l: u64, ok: bool) {
        let Some(lk) = self.lookups.get_mut(&l) else {
            return;
        };
        if ok {
            lk.stores.1 += 1;
        } else {
            lk.stores.2 += 1;
        }
        if lk.stores.1 + lk.stores.2 >= lk.stores.0 {
            let (key, acked, failed) = (lk.target, lk.stores.1, lk.stores.2);
            self.lookups.remove(&l);
            self.events.push_back(KadEvent::Stored {
                lookup: l,
                key,
                acked,
                failed,
            });
        }
    }

    /// Next frame to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Frame)> {
        self.outbox.pop_front()
    }

    /// Next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<KadEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work.
    #[must_use]
    pub fn poll_timeout(&self) -> u64 {
        let mut t = self.next_ping_ms.min(self.next_refresh_ms);
        for r in self.requests.values() {
            t = t.min(r.deadline);
        }
        t
    }

    /// True once a bootstrap peer has answered our ping and the join lookup has started.
    /// A node started without bootstrap peers never joins this way and stays false.
    pub fn joined(&self) -> bool {
        self.joined
    }
}

/// Whether `reply` is an acceptable answer to `request`.
fn reply_fits(request: &Body, reply: &Body) -> bool {
    matches!(
        (request, reply),
        (Body::Ping | Body::PingView { .. }, Body::Pong)
            | (Body::FindNode { .. }, Body::FoundNodes { .. })
            | (Body::FindValue { .. }, Body::FoundValue(_))
            | (Body::Store { .. }, Body::StoreAck { .. })
    )
}
