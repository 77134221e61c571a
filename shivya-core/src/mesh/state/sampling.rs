//! Uniform peer sampling beside the Kademlia table (Cyclon, Voulgaris et al. 2005).
//!
//! Kademlia's table holds peers by XOR distance: many close ones, few far ones. Gossip
//! targets drawn only from it spread information along that bias, and dissemination at
//! hundreds of nodes took about twice the O(log N) rounds of uniform gossip. So each node
//! also keeps a small *sample view* (`NodeConfig::sample_view` contacts, each with an
//! age) and, every [`SHUFFLE_EVERY_MS`], shuffles it with the oldest entry's node: it sends a
//! few of its entries (the receiver adds the sender itself), gets as many back, and each
//! side swaps the entries it sent for the ones it received. While shuffles bring only
//! nodes whose records this node already holds (a mesh whose membership stays the same)
//! the period doubles per shuffle, up to [`MAX_SHUFFLE_EVERY_MS`]: the views
//! are mixed by then and further shuffles only cost bytes. A shuffle that brings a node
//! unknown here (a newcomer), or a view entry lost (unresponsive, or certified dead),
//! brings the base period back at once. Views so kept approach uniform
//! random samples of the live nodes, and dead entries age out because the oldest is always
//! the next shuffled (and dropped when it does not answer). One gossip target per round is
//! drawn from the view entries the table lacks (when there are any: in a mesh small
//! enough for the table to hold everyone there are none), the others from the table.
//!
//! Entries come from untrusted frames: the view is bounded, addresses are checked as any
//! bootstrap peer's, and the table (with its ping-before-evict) is never replaced by it.

use super::NodeState;
use crate::mesh::usable_peer;
use crate::p2p::{Body, Contact, Frame, NodeId};
use std::net::SocketAddr;

/// Contacts sent in one shuffle.
pub const SHUFFLE_LEN: usize = 6;
/// A node starts a shuffle at most this often (views mix over tens of seconds; what
/// spreads a write is the gossip itself).
pub const SHUFFLE_EVERY_MS: u64 = 4_000;
/// The longest shuffle period, reached while shuffles bring no unknown node.
pub const MAX_SHUFFLE_EVERY_MS: u64 = 32_000;

/// One entry of the sample view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ViewEntry {
    id: NodeId,
    addr: SocketAddr,
    age: u32,
}

impl NodeState {
    /// The ids in the peer-sampling view, in view order.
    pub fn sample_view(&self) -> Vec<NodeId> {
        self.sample.iter().map(|e| e.id).collect()
    }

    fn view_has(&self, id: &NodeId) -> bool {
        self.sample.iter().any(|e| e.id == *id)
    }

    /// A peer Kademlia just added seeds the view while it has room.
    pub(super) fn view_learn(&mut self, c: &Contact) {
        if self.sample.len() < self.config.sample_view && c.id != self.id && !self.view_has(&c.id) {
            self.sample.push(ViewEntry {
                id: c.id,
                addr: c.addr,
                age: 0,
            });
        }
    }

    /// A peer that went unresponsive (or was certified dead) leaves the view too, and the
    /// view, one entry short, shuffles at the base period again.
    pub(super) fn view_forget(&mut self, id: &NodeId) {
        let before = self.sample.len();
        self.sample.retain(|e| e.id != *id);
        if self.sample.len() < before {
            self.shuffle_soon();
        }
    }

    /// The next shuffle at the base period, from now at the latest.
    fn shuffle_soon(&mut self) {
        self.shuffle_every_ms = SHUFFLE_EVERY_MS;
        let soon = self.clock_ms.saturating_add(SHUFFLE_EVERY_MS);
        self.next_shuffle_ms = self.next_shuffle_ms.min(soon);
    }

    /// Up to `n` random entries, excluding `except`.
    fn view_pick(&mut self, n: usize, except: Option<NodeId>) -> Vec<ViewEntry> {
        let mut pool: Vec<ViewEntry> = self
            .sample
            .iter()
            .copied()
            .filter(|e| Some(e.id) != except)
            .collect();
        let n = n.min(pool.len());
        for i in 0..n {
            let j = i + self.rng.below((pool.len() - i) as u64) as usize;
            pool.swap(i, j);
        }
        pool.truncate(n);
        pool
    }

    /// One gossip target drawn uniformly from the view entries the routing table lacks,
    /// if there are any. While the table holds every node (small meshes) the view adds
    /// nothing the table's uniform draw does not already give, and targets stay as before.
    pub(super) fn view_target(&mut self) -> Option<(NodeId, SocketAddr)> {
        let outside: Vec<(NodeId, SocketAddr)> = self
            .sample
            .iter()
            .filter(|e| self.kad.table().get(&e.id).is_none())
            .map(|e| (e.id, e.addr))
            .collect();
        if outside.is_empty() {
            return None;
        }
        let k = self.rng.below(outside.len() as u64) as usize;
        Some(outside[k])
    }

    /// At most every [`SHUFFLE_EVERY_MS`]: ages the view and shuffles with its oldest
    /// entry (which leaves the view; an answer brings fresh entries in its place).
    pub(super) fn shuffle(&mut self, now_ms: u64) {
        if self.sample.is_empty() || now_ms < self.next_shuffle_ms {
            return;
        }
        self.next_shuffle_ms = now_ms.saturating_add(self.shuffle_every_ms);
        // Back to the base period when a shuffle brings news (`on_shuffle`).
        self.shuffle_every_ms = self
            .shuffle_every_ms
            .saturating_mul(2)
            .min(MAX_SHUFFLE_EVERY_MS);
        for e in &mut self.sample {
            e.age = e.age.saturating_add(1);
        }
        let Some(k) =
            (0..self.sample.len()).max_by_key(|&k| (self.sample[k].age, self.sample[k].id))
        else {
            return;
        };
        let oldest = self.sample.swap_remove(k);
        let sent = self.view_pick(SHUFFLE_LEN - 1, Some(oldest.id));
        self.shuffle_sent = self.send_shuffle(oldest.addr, false, &sent);
    }

    /// Queues a SHUFFLE carrying `entries` to `to`; returns their ids.
    fn send_shuffle(&mut self, to: SocketAddr, reply: bool, entries: &[ViewEntry]) -> Vec<NodeId> {
        let contacts = entries
            .iter()
            .map(|e| Contact {
                id: e.id,
                addr: e.addr,
            })
            .collect();
        self.outbox.push(
            to,
            Frame::new(0, self.id, Body::Shuffle { reply, contacts }),
        );
        entries.iter().map(|e| e.id).collect()
    }

    /// A SHUFFLE from `sender` at `from`: a request is answered with as many entries of
    /// ours; both kinds are merged into the view, replacing the entries we sent.
    pub(super) fn on_shuffle(
        &mut self,
        from: SocketAddr,
        sender: NodeId,
        reply: bool,
        contacts: &[Contact],
    ) {
        if self.config.sample_view == 0 {
            return;
        }
        let sent_ids: Vec<NodeId> = if reply {
            std::mem::take(&mut self.shuffle_sent)
        } else {
            let answer = self.view_pick(SHUFFLE_LEN, Some(sender));
            self.send_shuffle(from, true, &answer)
        };
        // The requester itself is a fresh entry; then what it sent.
        let fresh = Contact {
            id: sender,
            addr: from,
        };
        let incoming = (!reply)
            .then_some(fresh)
            .into_iter()
            .chain(contacts.iter().copied());
        let mut replaceable = sent_ids.into_iter();
        let mut news = false;
        for c in incoming {
            news |= c.id != self.id && self.records.get(&c.id).is_none();
            if c.id == self.id
                || self.view_has(&c.id)
                || usable_peer(&c.addr, &self.config.listen).is_err()
            {
                continue;
            }
            let entry = ViewEntry {
                id: c.id,
                addr: c.addr,
                age: 0,
            };
            if self.sample.len() < self.config.sample_view {
                self.sample.push(entry);
                continue;
            }
            // Full: take the place of an entry we sent away.
            for gone in replaceable.by_ref() {
                if let Some(k) = self.sample.iter().position(|e| e.id == gone) {
                    self.sample[k] = entry;
                    break;
                }
            }
        }
        if news {
            self.shuffle_soon();
        }
    }
}
