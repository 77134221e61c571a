//! Orphan probes: how records of origins that no routing table holds stop counting.
//!
//! A node that crashes is found unresponsive by the peers that route to it and certified
//! dead (`certify_dead`). An origin that no node ever routed to — one invented by forged
//! traffic, or a node that vanished before anyone held it — is never found unresponsive.
//! So every `orphan_probe_interval_ms` a node picks one held origin whose record still
//! counts, that is not in its routing table and that has not itself sent this node a frame
//! lately (an origin found or heard alive is not probed for 360 intervals, half an hour at
//! the default), and looks it up (an iterative FIND_NODE for its id). A live node is found by
//! its own id and answers; when the lookup ends without it, the node issues the origin's
//! death certificate. A live origin wrongly certified refutes it by writing again, as for
//! any certificate.

use super::NodeState;
use crate::mesh::records::DEAD;
use crate::p2p::{Contact, NodeId};

/// How many probe intervals pass before an origin found alive is probed again: a live
/// origin stays live, so once found it costs nothing for long.
const REPROBE_INTERVALS: u64 = 360;

impl NodeState {
    /// Starts the next orphan probe when one is due.
    pub(super) fn probe_orphans(&mut self, now_ms: u64) {
        let every = self.config.orphan_probe_interval_ms;
        if every == 0 || now_ms < self.next_orphan_probe_ms {
            return;
        }
        self.next_orphan_probe_ms = now_ms.saturating_add(every);
        let again = every.saturating_mul(REPROBE_INTERVALS);
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
            // Round robin over origin order, starting after the last one probed.
            .map(|r| r.origin)
            .min_by_key(|o| (*o <= self.orphan_cursor, *o));
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
        if !found && self.records.version(&origin) == version {
            self.certify_dead(origin, None);
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
