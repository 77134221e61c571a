//! The node's own agent (L1 + L2) and its coupling to peers' beliefs (L3).
//!
//! Each node runs one active-inference agent on its local observation. Beliefs travel in
//! BELIEF frames; a node diffuses its mean towards fresh peer beliefs along a symmetric
//! coupling and takes its Shapley share of the local coalition game. Losing BELIEF frames
//! costs accuracy, never correctness: nothing in the routes depends on them.

use super::MeshError;
use crate::flux::{GaussianModel, GibbsFluxAgent};
use crate::morphic::{MorphicConfig, MorphicController};
use crate::onsager::{add_diffusion, coalition_share, diffusion_rate, AgentConfig, MAX_PLAYERS};
use crate::p2p::protocol::MAX_BELIEF_DIM;
use crate::p2p::NodeId;
use std::collections::BTreeMap;

/// Settings of the node's agent and of belief exchange.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BeliefConfig {
    /// The agent, as in an ensemble (the L2 seed is mixed with the node id).
    pub agent: AgentConfig,
    /// A peer belief older than this is ignored.
    pub belief_ttl_ms: u64,
    /// Most peer beliefs held.
    pub max_peer_beliefs: usize,
    /// Send this node's belief to its most strongly coupled peers after each step (L3
    /// diffusion across nodes). Off by default: nothing a host sees (routes, picks,
    /// weights, capacity signals) depends on it, and it was half of an idle mesh's
    /// frames. Received beliefs are used either way.
    pub exchange: bool,
}

impl Default for BeliefConfig {
    fn default() -> Self {
        BeliefConfig {
            agent: AgentConfig::default(),
            belief_ttl_ms: 1_000,
            max_peer_beliefs: 64,
            exchange: false,
        }
    }
}

impl BeliefConfig {
    /// Checks the agent's settings and that its latent dimension can never outgrow a
    /// BELIEF frame.
    pub fn validate(&self) -> Result<(), MeshError> {
        self.agent.validate().map_err(|e| match e {
            crate::onsager::OnsagerError::Config { what, value, why } => MeshError::Config {
                what,
                why: format!("{value} {why}"),
            },
            other => MeshError::Config {
                what: "belief.agent",
                why: other.to_string(),
            },
        })?;
        if self.agent.morphic.max_dim > MAX_BELIEF_DIM {
            return Err(MeshError::Config {
                what: "morphic.max_dim",
                why: format!("must be at most {MAX_BELIEF_DIM} (the BELIEF frame limit)"),
            });
        }
        Ok(())
    }
}

/// Observation dimension of a node's agent.
pub const OBS_DIM: usize = 2;

/// The symmetric coupling between two nodes: `(1 + min(p, 8)) / 9`, where `p` is the
/// length of the ids' common prefix. `L(a, b) = L(b, a)` by construction (XOR is
/// symmetric), so the Onsager reciprocity holds across the mesh without coordination.
pub fn coupling(a: &NodeId, b: &NodeId) -> f64 {
    let p = a.distance(b).leading_zeros().min(8);
    (1.0 + p as f64) / 9.0
}

#[derive(Debug, Clone)]
struct PeerBelief {
    mean: Vec<f64>,
    free_energy: f64,
    received_ms: u64,
}

/// What one layer step produced.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BeliefReport {
    /// Variational free energy of this node's agent.
    pub free_energy: f64,
    /// This node's Shapley share of its coalition's dividends.
    pub dividend: f64,
    /// `free_energy − dividend`: this node's term of the mesh's collective free energy.
    pub f_collective: f64,
    /// Fresh peer beliefs used.
    pub peers_used: usize,
    /// Latent dimension after the step.
    pub latent_dim: usize,
    /// A latent expansion happened.
    pub expanded: bool,
}

/// The node's agent and what it knows of its peers' beliefs.
#[derive(Debug, Clone)]
pub struct BeliefState {
    me: NodeId,
    config: BeliefConfig,
    agent: GibbsFluxAgent,
    controller: MorphicController,
    peers: BTreeMap<NodeId, PeerBelief>,
    members: Vec<(f64, NodeId)>,
    means: Vec<Vec<f64>>,
    table: Vec<f64>,
    centroid: Vec<f64>,
    delta: Vec<f64>,
    last: BeliefReport,
    steps: u64,
}

impl BeliefState {
    /// A fresh agent for node `me`.
    pub fn new(me: NodeId, config: BeliefConfig) -> Result<BeliefState, MeshError> {
        config.validate()?;
        let a = config.agent;
        let model = GaussianModel::isotropic(2, OBS_DIM, a.prior_var, a.sensory_var);
        let agent = GibbsFluxAgent::new(model, a.flux).map_err(MeshError::Agent)?;
        let seed = me.fold64();
        let morphic = MorphicConfig {
            seed: a.morphic.seed ^ seed,
            ..a.morphic
        };
        let controller = MorphicController::new(morphic, OBS_DIM).map_err(MeshError::Agent)?;
        Ok(BeliefState {
            me,
            config,
            agent,
            controller,
            peers: BTreeMap::new(),
            members: Vec::with_capacity(MAX_PLAYERS + 1),
            means: vec![Vec::new(); MAX_PLAYERS],
            table: vec![0.0; 1 << MAX_PLAYERS],
            centroid: vec![0.0; MAX_BELIEF_DIM],
            delta: vec![0.0; MAX_BELIEF_DIM],
            last: BeliefReport::default(),
            steps: 0,
        })
    }

    /// The agent.
    pub fn agent(&self) -> &GibbsFluxAgent {
        &self.agent
    }

    /// The last step's report.
    pub fn last(&self) -> BeliefReport {
        self.last
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Peer beliefs held (fresh or not).
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Stores a peer's belief. Returns false (and stores nothing) when the table is full
    /// and the peer is new.
    pub fn receive(&mut self, from: NodeId, free_energy: f64, mean: &[f64], now_ms: u64) -> bool {
        if from == self.me {
            return false;
        }
        if !self.peers.contains_key(&from) && self.peers.len() >= self.config.max_peer_beliefs {
            // Make room by dropping stale beliefs first.
            let ttl = self.config.belief_ttl_ms;
            self.peers
                .retain(|_, p| p.received_ms.saturating_add(ttl) > now_ms);
            if self.peers.len() >= self.config.max_peer_beliefs {
                return false;
            }
        }
        let entry = self.peers.entry(from).or_insert(PeerBelief {
            mean: Vec::new(),
            free_energy: 0.0,
            received_ms: now_ms,
        });
        entry.mean.clear();
        entry.mean.extend_from_slice(mean);
        entry.free_energy = free_energy;
        entry.received_ms = now_ms;
        true
    }

    /// Forgets a peer (it left or was removed).
    pub fn forget(&mut self, id: &NodeId) {
        self.peers.remove(id);
    }

    /// One L1/L2/L3 step on observation `obs` (length [`OBS_DIM`], finite).
    /// On error nothing observable changes except counters kept by the caller.
    pub fn step(&mut self, obs: &[f64], now_ms: u64) -> Result<BeliefReport, MeshError> {
        let r = self
            .controller
            .update(&mut self.agent, obs)
            .map_err(MeshError::Agent)?;

        // Coalition: me plus my (at most 7) most strongly coupled fresh peers.
        let ttl = self.config.belief_ttl_ms;
        self.members.clear();
        for (id, p) in &self.peers {
            if p.received_ms.saturating_add(ttl) > now_ms {
                self.members.push((coupling(&self.me, id), *id));
            }
        }
        self.members
            .sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        self.members.truncate(MAX_PLAYERS - 1);

        // Diffusion, the ensemble's step: Δμ = r Σ_j L_ij (μ_j − μ_i). A node knows only
        // its own coupling row, so r is bounded by that row's sum.
        let total: f64 = self.members.iter().map(|m| m.0).sum();
        let rate = diffusion_rate(self.config.agent.diffusion_rate, total);
        let dim = self.agent.dim();
        let delta = self.delta.get_mut(..dim).ok_or(MeshError::Internal(
            "latent dimension above the BELIEF limit",
        ))?;
        delta.fill(0.0);
        let peers = &self.peers;
        add_diffusion(
            rate,
            self.agent.mean(),
            self.members
                .iter()
                .filter_map(|&(w, id)| peers.get(&id).map(|p| (w, p.mean.as_slice()))),
            delta,
        );
        for (d, m) in delta.iter_mut().zip(self.agent.mean()) {
            *d += m;
        }
        self.agent.set_mean(delta).map_err(MeshError::Agent)?;
        let free_energy = self.agent.free_energy();

        // Dividends of the local coalition game; player 0 is this node.
        let k = self.members.len() + 1;
        self.means[0].clear();
        self.means[0].extend_from_slice(self.agent.mean());
        let mut ids = [self.me; MAX_PLAYERS];
        for (a, &(_, id)) in self.members.iter().enumerate() {
            ids[a + 1] = id;
            self.means[a + 1].clear();
            if let Some(p) = self.peers.get(&id) {
                // Compare on the common dimensions only.
                self.means[a + 1].extend(p.mean.iter().take(dim).copied());
            }
            self.means[a + 1].resize(dim, 0.0);
        }
        let means = &self.means;
        let dividend = coalition_share(
            k,
            dim,
            |a| means[a].as_slice(),
            |a, b| coupling(&ids[a], &ids[b]),
            self.config.agent.synergy_temperature,
            &mut self.table,
            &mut self.centroid,
        );
        self.agent
            .absorb(self.config.agent.process_noise)
            .map_err(MeshError::Agent)?;
        self.steps += 1;
        self.last = BeliefReport {
            free_energy,
            dividend,
            f_collective: free_energy - dividend,
            peers_used: k - 1,
            latent_dim: self.agent.dim(),
            expanded: r.expanded,
        };
        Ok(self.last)
    }
}
