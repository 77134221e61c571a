//! The routing table: one k-bucket per bit of distance, least-recently-seen first.

use super::id::{NodeId, ID_BITS};
use super::protocol::Contact;
use std::net::SocketAddr;

/// A peer in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Its id.
    pub id: NodeId,
    /// Where it was last heard from.
    pub addr: SocketAddr,
    /// When it was last heard from (host milliseconds).
    pub last_seen_ms: u64,
    /// Requests to it that failed in a row since it was last heard from.
    pub failures: u32,
}

impl Peer {
    /// The peer as a wire contact.
    pub fn contact(&self) -> Contact {
        Contact {
            id: self.id,
            addr: self.addr,
        }
    }
}

/// A newcomer waiting on the answer of the bucket's oldest peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PendingInsert {
    newcomer: Contact,
    probed: NodeId,
}

#[derive(Debug, Clone, Default)]
struct Bucket {
    /// Oldest first.
    peers: Vec<Peer>,
    pending: Option<PendingInsert>,
}

/// What [`RoutingTable::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// The peer was known; it moved to the tail (most recently seen).
    Refreshed,
    /// The peer was added.
    Added,
    /// The bucket is full: the caller must PING `probe` (the oldest peer) and report the
    /// result through [`RoutingTable::probe_failed`]; an answer arrives as a normal
    /// `insert` of the probed peer.
    ProbeOldest {
        /// The bucket's least-recently-seen peer.
        probe: Contact,
    },
    /// The bucket is full and already probing for another newcomer; this one is dropped.
    Dropped,
    /// The id is our own.
    IsSelf,
    /// The peer is known at another address: nothing changed. The caller checks the held
    /// address (a PING) and calls [`RoutingTable::move_address`] only if it stays silent,
    /// so a frame from anywhere cannot redirect a live peer's traffic.
    AddressHeld {
        /// The address the table holds.
        held: SocketAddr,
    },
}

/// Kademlia routing table with buckets of at most `k` peers.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    local: NodeId,
    k: usize,
    buckets: Vec<Bucket>,
    len: usize,
    /// A full bucket's oldest peer is probed for a newcomer only when silent this long.
    probe_silent_ms: u64,
}

impl RoutingTable {
    /// An empty table around `local`; `k` is clamped to at least 1.
    pub fn new(local: NodeId, k: usize) -> RoutingTable {
        RoutingTable {
            local,
            k: k.max(1),
            buckets: vec![Bucket::default(); ID_BITS],
            len: 0,
            probe_silent_ms: 0,
        }
    }

    /// The same table, probing a full bucket's oldest peer for a newcomer only when that
    /// peer has been silent `ms` (0, the default: always).
    pub fn with_probe_silent_ms(mut self, ms: u64) -> RoutingTable {
        self.probe_silent_ms = ms;
        self
    }

    /// Changes how long a full bucket's oldest peer must have been silent to be probed.
    pub fn set_probe_silent_ms(&mut self, ms: u64) {
        self.probe_silent_ms = ms;
    }

    /// Our own id.
    pub fn local(&self) -> NodeId {
        self.local
    }

    /// Bucket size.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Peers held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no peer is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Peers in bucket `i`, oldest first.
    pub fn bucket(&self, i: usize) -> &[Peer] {
        self.buckets.get(i).map_or(&[], |b| &b.peers)
    }

    /// The lowest non-empty bucket index, if any.
    pub fn lowest_nonempty(&self) -> Option<usize> {
        self.buckets.iter().position(|b| !b.peers.is_empty())
    }

    /// Every peer, by bucket then age.
    pub fn peers(&self) -> impl Iterator<Item = &Peer> + '_ {
        self.buckets.iter().flat_map(|b| b.peers.iter())
    }

    /// The peer with `id`, if held.
    pub fn get(&self, id: &NodeId) -> Option<&Peer> {
        let b = self.local.bucket_index(id)?;
        self.buckets[b].peers.iter().find(|p| p.id == *id)
    }

    /// The peer at `addr`, if held.
    pub fn find_addr(&self, addr: &SocketAddr) -> Option<&Peer> {
        self.peers().find(|p| p.addr == *addr)
    }

    /// Records that `contact` was heard from at `now_ms` (Kademlia's update rule).
    pub fn insert(&mut self, contact: Contact, now_ms: u64) -> InsertOutcome {
        let Some(b) = self.local.bucket_index(&contact.id) else {
            return InsertOutcome::IsSelf;
        };
        let k = self.k;
        let bucket = &mut self.buckets[b];
        if let Some(pos) = bucket.peers.iter().position(|p| p.id == contact.id) {
            if bucket.peers[pos].addr != contact.addr {
                return InsertOutcome::AddressHeld {
                    held: bucket.peers[pos].addr,
                };
            }
            let mut peer = bucket.peers.remove(pos);
            peer.last_seen_ms = now_ms;
            peer.failures = 0;
            bucket.peers.push(peer);
            // The probed oldest answered: it keeps its slot and the newcomer is dropped.
            if bucket.pending.is_some_and(|p| p.probed == contact.id) {
                bucket.pending = None;
            }
            return InsertOutcome::Refreshed;
        }
        if bucket.peers.len() < k {
            bucket.peers.push(Peer {
                id: contact.id,
                addr: contact.addr,
                last_seen_ms: now_ms,
                failures: 0,
            });
            self.len += 1;
            return InsertOutcome::Added;
        }
        if bucket.pending.is_some() {
            return InsertOutcome::Dropped;
        }
        // Heard from lately: alive, and old contacts are the ones to keep.
        if bucket.peers[0]
            .last_seen_ms
            .saturating_add(self.probe_silent_ms)
            > now_ms
        {
            return InsertOutcome::Dropped;
        }
        let oldest = bucket.peers[0].contact();
        bucket.pending = Some(PendingInsert {
            newcomer: contact,
            probed: oldest.id,
        });
        InsertOutcome::ProbeOldest { probe: oldest }
    }

    /// Moves a held peer to `addr` (its old address stopped answering); returns whether the
    /// peer was held.
    pub fn move_address(&mut self, id: &NodeId, addr: SocketAddr, now_ms: u64) -> bool {
        let Some(b) = self.local.bucket_index(id) else {
            return false;
        };
        let bucket = &mut self.buckets[b];
        let Some(pos) = bucket.peers.iter().position(|p| p.id == *id) else {
            return false;
        };
        let mut peer = bucket.peers.remove(pos);
        peer.addr = addr;
        peer.last_seen_ms = now_ms;
        peer.failures = 0;
        bucket.peers.push(peer);
        true
    }

    /// The probe of `probed` went unanswered: it is evicted and the waiting newcomer takes
    /// its place. Returns the newcomer if one was admitted.
    pub fn probe_failed(&mut self, probed: &NodeId, now_ms: u64) -> Option<Contact> {
        let b = self.local.bucket_index(probed)?;
        let bucket = &mut self.buckets[b];
        let pending = bucket.pending.filter(|p| p.probed == *probed)?;
        bucket.pending = None;
        let pos = bucket.peers.iter().position(|p| p.id == *probed)?;
        bucket.peers.remove(pos);
        bucket.peers.push(Peer {
            id: pending.newcomer.id,
            addr: pending.newcomer.addr,
            last_seen_ms: now_ms,
            failures: 0,
        });
        Some(pending.newcomer)
    }

    /// Counts a failed request to `id`; returns its consecutive failures (0 if unknown).
    pub fn record_failure(&mut self, id: &NodeId) -> u32 {
        let Some(b) = self.local.bucket_index(id) else {
            return 0;
        };
        match self.buckets[b].peers.iter_mut().find(|p| p.id == *id) {
            Some(p) => {
                p.failures = p.failures.saturating_add(1);
                p.failures
            }
            None => 0,
        }
    }

    /// Removes `id`; true if it was held. A newcomer waiting on that bucket takes the slot.
    pub fn remove(&mut self, id: &NodeId, now_ms: u64) -> bool {
        let Some(b) = self.local.bucket_index(id) else {
            return false;
        };
        let bucket = &mut self.buckets[b];
        let Some(pos) = bucket.peers.iter().position(|p| p.id == *id) else {
            return false;
        };
        bucket.peers.remove(pos);
        if let Some(p) = bucket.pending.take() {
            bucket.peers.push(Peer {
                id: p.newcomer.id,
                addr: p.newcomer.addr,
                last_seen_ms: now_ms,
                failures: 0,
            });
        } else {
            self.len -= 1;
        }
        true
    }

    /// Up to `n` peers closest to `target`, nearest first (ties cannot occur: XOR
    /// distances to distinct ids differ).
    pub fn closest(&self, target: &NodeId, n: usize) -> Vec<Contact> {
        let mut all: Vec<(NodeId, Contact)> = self
            .peers()
            .map(|p| (p.id.distance(target), p.contact()))
            .collect();
        all.sort_by_key(|a| a.0);
        all.truncate(n);
        all.into_iter().map(|(_, c)| c).collect()
    }
}
