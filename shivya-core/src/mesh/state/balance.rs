//! The balancer on a node: the host reports requests and asks for picks; at every layer
//! step the node publishes this balancer's requests in flight per backend (vertex) in its
//! record and hands the merged sums back to the balancer.

use super::NodeState;
use crate::balancer::{Balancer, CapacitySignal, Outcome};
use crate::mesh::MeshError;

impl NodeState {
    /// The balancer (weights, estimates, counters).
    pub fn balancer(&self) -> &Balancer {
        &self.balancer
    }

    /// A request went to `backend` (a vertex of the topology) at `now_ms`. From the first
    /// report on, the node owns this node's queue entries: at each layer step it writes
    /// there the time-averaged requests in flight per backend (do not mix with
    /// [`record_queue_len`](Self::record_queue_len)).
    pub fn request_started(&mut self, backend: u32, now_ms: u64) -> Result<(), MeshError> {
        let now = self.clock(now_ms);
        self.balancer.started(backend, now)?;
        self.balancing = true;
        Ok(())
    }

    /// A request to `backend` ended at `now_ms` after `latency_ms`, with `outcome`.
    pub fn request_finished(
        &mut self,
        backend: u32,
        latency_ms: f64,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<(), MeshError> {
        let now = self.clock(now_ms);
        self.balancer.finished(backend, latency_ms, outcome, now)?;
        self.balancing = true;
        Ok(())
    }

    /// The backend for the next request (`None` only with an empty topology). Cheap
    /// enough to call per request; report it with [`request_started`](Self::request_started).
    pub fn pick(&mut self, now_ms: u64) -> Option<u32> {
        let now = self.clock(now_ms);
        self.balancer.pick(now)
    }

    /// Sets the configured weight of `backend` (1 by default).
    pub fn set_backend_weight(&mut self, backend: u32, weight: f64) -> Result<(), MeshError> {
        Ok(self.balancer.set_base_weight(backend, weight)?)
    }

    /// The dispatch weights, one per backend, summing to 1.
    pub fn weights(&self, out: &mut [f64]) -> Result<(), MeshError> {
        Ok(self.balancer.weights(out)?)
    }

    /// The capacity signals of the merged records as of the last layer step (identical on
    /// nodes that held the same records at their last step).
    pub fn capacity_signals(&self) -> &[CapacitySignal] {
        self.balancer.signals()
    }

    /// Publishes our requests in flight, settles, and refreshes the balancer's view.
    pub(super) fn balance_step(&mut self, now_ms: u64) {
        if self.balancing && !self.left {
            self.room_to_write();
            let n = self.config.topology.n_vertices() as usize;
            let published = self.balancer.publish(now_ms);
            // Time averages of counts: finite, non-negative, far below the record bound.
            let values = &published[..n.min(published.len())];
            let dropped = self.own.replace_queue(&mut self.records, values);
            // A record holds MAX_RECORD_QUEUE_ENTRIES (4 096) backends: beyond that, the
            // smallest loads go unpublished.
            self.counters.unpublished_backends += dropped as u64;
        }
        let generation = self.records.generation();
        let changed = self.balanced_generation != Some(generation);
        if let Err(e) = self.settle_now() {
            self.counters.layer_errors += 1;
            tracing::warn!(error = %e, "reconciliation failed");
            return;
        }
        // settle_now just stored it; borrowed as a field, beside the balancer, not copied.
        let Some((_, settlement)) = self.last_settle.as_ref() else {
            return;
        };
        let me = self.id;
        let peers = self
            .records
            .iter()
            .filter(|r| r.origin != me && !r.queue.is_empty())
            .count();
        match self
            .balancer
            .refresh(&settlement.queue, peers, changed, now_ms)
        {
            Ok(()) => self.balanced_generation = Some(generation),
            Err(e) => {
                self.counters.layer_errors += 1;
                tracing::warn!(error = %e, "balancer refresh failed");
            }
        }
    }
}
