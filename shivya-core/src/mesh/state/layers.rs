//! The layer stack on a node: the agent (L1, L2) steps on this node's observation, its
//! belief goes to the most strongly coupled peers (L3), and the records are re-settled
//! (L0) when they changed.

use super::NodeState;
use crate::mesh::belief::{coupling, OBS_DIM};
use crate::mesh::MeshError;
use crate::p2p::{Body, Frame, NodeId};
use std::net::SocketAddr;

impl NodeState {
    pub(super) fn on_belief(&mut self, from: NodeId, free_energy: f64, mean: &[f64], now_ms: u64) {
        self.counters.beliefs_in += 1;
        if !self.belief.receive(from, free_energy, mean, now_ms) {
            self.counters.dropped.beliefs_full += 1;
        }
    }

    pub(super) fn layer_step(&mut self, now_ms: u64) {
        self.counters.layer_steps += 1;
        let obs = if self.observation_set {
            self.observation
        } else {
            self.derived_observation()
        };
        match self.belief.step(&obs, now_ms) {
            Ok(_) if !self.config.belief.exchange => {}
            Ok(r) => {
                let body = Body::Belief {
                    step: self.belief.steps(),
                    free_energy: r.free_energy,
                    mean: self.belief.agent().mean().to_vec(),
                };
                let mut peers: Vec<(f64, NodeId, SocketAddr)> = self
                    .kad
                    .table()
                    .peers()
                    .map(|p| (coupling(&self.id, &p.id), p.id, p.addr))
                    .collect();
                peers.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                peers.truncate(crate::onsager::MAX_PLAYERS - 1);
                self.outbox
                    .push_to(peers.iter().map(|p| p.2), Frame::new(0, self.id, body));
            }
            Err(e) => {
                self.counters.layer_errors += 1;
                tracing::warn!(error = %e, "layer step failed; the node keeps running");
            }
        }
        self.balance_step(now_ms);
    }

    /// The agent's default observation: `[ln(1 + mean own queue), ln(1 + Σ own offload)]`.
    fn derived_observation(&self) -> [f64; OBS_DIM] {
        let own = self.own.wire();
        let nq = own.queue.len().max(1) as f64;
        let q: f64 = own.queue.iter().map(|e| e.1).sum::<f64>() / nq;
        let x: f64 = own.offload.iter().map(|e| e.2).sum();
        [q.ln_1p(), x.ln_1p()]
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
}
