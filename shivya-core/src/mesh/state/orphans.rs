//! Orphan probes: how records of origins that no routing table holds stop counting.
//!
//! A node that crashes is found unresponsive by the peers that route to it and certified
//! dead (`certify_dead`). An origin that no node ever routed to — one invented by forged
//! traffic, or a node that vanished before anyone held it — is never found unresponsive.
//! So now and then a node picks one held origin whose record still counts, that is not in
//! its routing table and that has not itself sent this node a frame lately (an origin
//! found or heard alive is not probed for 360 base intervals, half an hour at the default),
//! and looks it up (an iterative FIND_NODE for its id). A live node is found by its own id
//! and answers; when the lookup ends without it, the node suspects the origin and, after
//! the suspicion wait, issues its death certificate. A live origin wrongly certified
//! refutes it by writing again, as for any certificate.
//!
//! Origins never probed go first, the one whose record changed here last first (a forged
//! origin is the newest record a node holds when it arrives); the others in round robin
//! from a point that differs per node (its own id), so that nodes do not all probe the
//! same origin. The probes come every `orphan_probe_interval_ms` while they find dead
//! origins or new ones keep arriving; each probe that finds its origin alive doubles the
//! wait, up to [`MAX_BACKOFF`] base intervals (80 s at the default), as the gossip period
//! backs off: a
//! quiet mesh whose origins are all alive spends one lookup per node every 80 s instead of
//! every 5 s. The first record of an origin not held before, or a probe that does not find
//! its origin, brings the wait back to one base interval at once.

use super::NodeState;
use crate::mesh::records::DEAD;
use crate::p2p::{Contact, NodeId};

/// How many probe intervals pass before an origin found alive is probed again: a live
/// origin stays live, so once found it costs nothing for long.
const REPROBE_INTERVALS: u64 = 360;

/// The longest wait between probes, in base intervals, while every probe finds its
/// origin alive.
pub const MAX_BACKOFF: u64 = 16;

impl NodeState {
    /// Starts the next orphan probe when one is due.
    pub(super) fn probe_orphans(&mut self, now_ms: u64) {
        let every = self.config.orphan_probe_interval_ms;
        if every == 0 || now_ms < self.next_orphan_probe_ms {
            return;
        }
        self.next_orphan_probe_ms = now_ms.saturating_add(self.orphan_every_ms);
        let again = every.saturating_mul(REPROBE_INTERVALS);
        let cursor = self.orphan_cursor;
        let candidate = self
            .records
            .iter()
            .filter(|r| {
                r.origin != self.id
                    && r.version & DEAD == 0
                    && !(r.queue.is_empty() && r.offload.is_empty())
                    && self.kad.table().get(&r.origin).is_none()
                    && self
                        .probed_ms
                        .get(&r.origin)
                        .is_none_or(|t| now_ms.saturating_sub(*t) >= again)
                    && self
                        .heard_ms
                        .get(&r.origin)
                        .is_none_or(|t| now_ms.saturating_sub(*t) >= again)
            })
            .map(|r| {
                let probed = self.probed_ms.contains_key(&r.origin);
                // Never probed: the latest changed first. Then round robin over origin
                // order, starting after the last one probed.
                let changed = if probed {
                    0
                } else {
                    self.received_ms.get(&r.origin).copied().unwrap_or(0)
                };
                (
                    (probed, std::cmp::Reverse(changed), r.origin <= cursor),
                    r.origin,
                )
            })
            .min()
            .map(|(_, o)| o);
        let Some(origin) = candidate else {
            return;
        };
        self.orphan_cursor = origin;
        self.probed_ms.insert(origin, now_ms);
        // The maps follow the records: entries for origins no longer held go.
        let records = &self.records;
        self.probed_ms.retain(|o, _| records.get(o).is_some());
        self.heard_ms.retain(|o, _| records.get(o).is_some());
        let lookup = self.kad.find_node(origin, now_ms);
        let version = self.records.version(&origin);
        self.orphan_lookups.insert(lookup, (origin, version));
        self.counters.orphan_probes += 1;
    }

    /// Something may need a probe soon (a new origin, or a probe found one dead): the wait
    /// is one base interval again, from now at the latest.
    pub(super) fn orphan_probe_soon(&mut self) {
        let every = self.config.orphan_probe_interval_ms;
        self.orphan_every_ms = every;
        let soon = self.clock_ms.saturating_add(every);
        self.next_orphan_probe_ms = self.next_orphan_probe_ms.min(soon);
    }

    /// A lookup finished: when it was an orphan probe that did not find its origin, the
    /// origin is certified dead. Returns whether the lookup was ours (the host never sees
    /// it).
    pub(super) fn orphan_lookup_done(&mut self, lookup: u64, closest: &[Contact]) -> bool {
        let Some((origin, version)) = self.orphan_lookups.remove(&lookup) else {
            return false;
        };
        let found =
            closest.iter().any(|c| c.id == origin) || self.kad.table().get(&origin).is_some();
        // A newer record of it arrived while the lookup ran: it wrote, so it lives (a
        // partition that healed meanwhile hid it from the lookup).
        if found || self.records.version(&origin) != version {
            let most = self
                .config
                .orphan_probe_interval_ms
                .saturating_mul(MAX_BACKOFF);
            self.orphan_every_ms = self.orphan_every_ms.saturating_mul(2).min(most);
        } else {
            self.certify_dead(origin, None);
            self.orphan_probe_soon();
        }
        true
    }

    /// Origins found unresponsive and waiting out their suspicion (for tests and status).
    pub fn suspects(&self) -> usize {
        self.suspects.len()
    }

    /// Origins currently being probed (for tests and status).
    pub fn orphan_probes_in_flight(&self) -> Vec<NodeId> {
        self.orphan_lookups.values().map(|(o, _)| *o).collect()
    }
}
