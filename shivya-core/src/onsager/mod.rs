//! L3 — onsager: a coupled ensemble of active-inference agents.
//!
//! * **Coupling.** A symmetric, non-negative matrix `L_ij = L_ji` (the Onsager reciprocal
//!   relation); asymmetric input is rejected. Its non-zero entries are the ensemble graph.
//! * **Belief diffusion.** Each step moves belief means along the couplings:
//!   `Δμ_i = r Σ_j L_ij (μ_j − μ_i)`, a flux proportional to `L_ij` times the belief
//!   difference, computed from the old means for all agents at once (so the total belief
//!   is conserved exactly up to rounding). `r` is clamped so `r · max_i Σ_j L_ij ≤ ½`.
//! * **Harsanyi dividends.** Agent `i`'s coalition is itself plus its (at most) 7 strongest
//!   neighbours (ties by lower index), so masks fit a `u8`. The coalition game is
//!   `v(S) = W(S) · exp(−D(S)/T)`, with `W(S)` the coupling inside `S` and `D(S)` the
//!   mean squared distance of members' beliefs from their centroid: strongly coupled,
//!   agreeing groups are worth more. Dividends come from the Möbius transform; each
//!   coalition's dividend is shared equally among its members, so agent `i`'s share is its
//!   Shapley value `φ_i` in its local game.
//! * **Collective free energy** `F_collective = Σ_i F_i − Σ_i φ_i`.
//!
//! [`OnsagerCollectiveEnsemble::step`] runs the whole stack on the ensemble's graph:
//! L1/L2 updates (through each agent's [`MorphicController`]), L3 diffusion and dividends,
//! L0 reconciliation of the migration flow (curl projected out by CG), and L4
//! reaction–diffusion driven by free-energy stress, whose split/cull events are applied
//! when `adapt_topology` is on. (L3 composes L4 here as the issue asks; L4 itself depends on
//! no other layer, so there is no cycle.)

mod agent;
mod harsanyi;

pub use agent::{add_diffusion, diffusion_rate, AgentConfig};

pub use harsanyi::{coalition_share, dividends_in_place, shapley_from_dividends, MAX_PLAYERS};

use crate::flux::{GaussianModel, GibbsFluxAgent, SubstrateError};
use crate::graph::{Graph, GraphError};
use crate::hodge::{CgConfig, HodgeError, HodgeWorkspace, SimplicialComplex};
use crate::morphic::{MorphicConfig, MorphicController};
use crate::turing::{TopologyEvent, TuringConfig, TuringError, TuringSubstrate};
use thiserror::Error;

/// Errors from the ensemble. No state changes when one is returned from `step`.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum OnsagerError {
    /// `L_ij != L_ji`.
    #[error("coupling is not symmetric: L[{i}][{j}] = {lij} but L[{j}][{i}] = {lji}")]
    Asymmetric {
        /// Row.
        i: usize,
        /// Column.
        j: usize,
        /// `L_ij`.
        lij: f64,
        /// `L_ji`.
        lji: f64,
    },
    /// A coupling entry is negative, non-finite, or on the diagonal.
    #[error("coupling L[{i}][{j}] = {value} is invalid: {why}")]
    BadCoupling {
        /// Row.
        i: usize,
        /// Column.
        j: usize,
        /// Value.
        value: f64,
        /// What is wrong.
        why: &'static str,
    },
    /// A slice has the wrong length.
    #[error("{what} has {got} entries, expected {expected}")]
    Length {
        /// Which input.
        what: &'static str,
        /// Expected entries.
        expected: usize,
        /// Given entries.
        got: usize,
    },
    /// An observation holds NaN or an infinity.
    #[error("observation of agent {agent}, entry {index}, is {value}; must be finite")]
    NonFiniteObservation {
        /// Agent slot.
        agent: usize,
        /// Entry.
        index: usize,
        /// Value.
        value: f64,
    },
    /// A configuration value is out of range.
    #[error("ensemble setting {what} = {value} is out of range: {why}")]
    Config {
        /// Setting.
        what: &'static str,
        /// Value.
        value: f64,
        /// Accepted range.
        why: &'static str,
    },
    /// The ensemble graph is malformed.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// An agent failed.
    #[error("agent {agent}: {source}")]
    Agent {
        /// Agent slot.
        agent: usize,
        /// The agent's error.
        source: SubstrateError,
    },
    /// The Hodge layer failed.
    #[error(transparent)]
    Hodge(#[from] HodgeError),
    /// The Turing layer failed.
    #[error(transparent)]
    Turing(#[from] TuringError),
}

/// A validated symmetric coupling.
#[derive(Debug, Clone, PartialEq)]
pub struct Coupling {
    n: usize,
    edges: Vec<(u32, u32, f64)>,
}

impl Coupling {
    /// From a dense row-major `n × n` matrix; rejects asymmetry, negative or non-finite
    /// entries and a non-zero diagonal. Zero entries mean "not coupled".
    pub fn from_dense(n: usize, l: &[f64]) -> Result<Self, OnsagerError> {
        if l.len() != n * n {
            return Err(OnsagerError::Length {
                what: "coupling matrix",
                expected: n * n,
                got: l.len(),
            });
        }
        let mut edges = Vec::new();
        for i in 0..n {
            for j in 0..n {
                let v = l[i * n + j];
                if !v.is_finite() || v < 0.0 {
                    return Err(OnsagerError::BadCoupling {
                        i,
                        j,
                        value: v,
                        why: "must be finite and non-negative",
                    });
                }
                if i == j && v != 0.0 {
                    return Err(OnsagerError::BadCoupling {
                        i,
                        j,
                        value: v,
                        why: "the diagonal must be zero",
                    });
                }
                if l[j * n + i] != v {
                    return Err(OnsagerError::Asymmetric {
                        i,
                        j,
                        lij: v,
                        lji: l[j * n + i],
                    });
                }
                if i < j && v > 0.0 {
                    edges.push((i as u32, j as u32, v));
                }
            }
        }
        Ok(Coupling { n, edges })
    }

    /// From undirected weighted edges (symmetric by construction); validated as a graph.
    pub fn from_edges(n: usize, edges: &[(u32, u32, f64)]) -> Result<Self, OnsagerError> {
        Graph::new(n, edges)?;
        let mut edges: Vec<_> = edges
            .iter()
            .filter(|e| e.2 > 0.0)
            .map(|&(u, v, w)| (u.min(v), u.max(v), w))
            .collect();
        edges.sort_by_key(|a| (a.0, a.1));
        Ok(Coupling { n, edges })
    }

    /// Agents.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Coupled pairs `(i, j, L_ij)` with `i < j`.
    pub fn edges(&self) -> &[(u32, u32, f64)] {
        &self.edges
    }
}

/// Settings of the ensemble and of every layer it runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnsembleConfig {
    /// Latent dimension of each agent at start.
    pub state_dim: usize,
    /// Observation dimension.
    pub obs_dim: usize,
    /// Every agent's settings (the L2 seed is offset by the agent index).
    pub agent: AgentConfig,
    /// L0 solver settings.
    pub cg: CgConfig,
    /// L4 settings.
    pub turing: TuringConfig,
    /// Slots in the pool (at least the number of agents); splits need spare slots.
    pub pool_capacity: usize,
    /// Apply L4's split/cull events to the ensemble.
    pub adapt_topology: bool,
}

impl Default for EnsembleConfig {
    fn default() -> Self {
        EnsembleConfig {
            state_dim: 2,
            obs_dim: 2,
            agent: AgentConfig::default(),
            cg: CgConfig::default(),
            turing: TuringConfig::default(),
            pool_capacity: 0,
            adapt_topology: false,
        }
    }
}

/// What one ensemble step did.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepReport {
    /// `Σ F_i − Σ φ_i`.
    pub f_collective: f64,
    /// `Σ F_i`.
    pub sum_free_energy: f64,
    /// `Σ φ_i` (dividend shares).
    pub sum_dividends: f64,
    /// L0: `‖d1 · settled‖`, the CG residual of the curl solve.
    pub residual: f64,
    /// L0: CG iterations.
    pub cg_iterations: usize,
    /// L2: latent expansions this step.
    pub expansions: usize,
    /// L2: agents whose law faulted and fell back to the default rule.
    pub law_fallbacks: usize,
    /// L4: the time step used.
    pub turing_dt: f64,
    /// L4: splits applied.
    pub splits: usize,
    /// L4: culls applied.
    pub culls: usize,
    /// L4: splits refused for a full pool.
    pub pool_full: usize,
    /// Active agents after the step.
    pub active: usize,
}

/// A coupled ensemble of agents; see the module docs.
#[derive(Debug, Clone)]
pub struct OnsagerCollectiveEnsemble {
    config: EnsembleConfig,
    base_edges: Vec<(u32, u32, f64)>,
    agents: Vec<GibbsFluxAgent>,
    controllers: Vec<MorphicController>,
    graph: Graph,
    complex: SimplicialComplex,
    hodge_ws: HodgeWorkspace,
    flow: Vec<f64>,
    settled: Vec<f64>,
    turing: TuringSubstrate,
    free_energy: Vec<f64>,
    shares: Vec<f64>,
    stress: Vec<f64>,
    delta: Vec<f64>,
    mean_buf: Vec<f64>,
    table: Vec<f64>,
    members: Vec<(f64, u32)>,
    centroid: Vec<f64>,
    steps: u64,
}

fn agent_err(agent: usize) -> impl Fn(SubstrateError) -> OnsagerError {
    move |source| OnsagerError::Agent { agent, source }
}

impl OnsagerCollectiveEnsemble {
    /// An ensemble of `coupling.n()` agents, each with an isotropic starting model.
    pub fn new(coupling: Coupling, config: EnsembleConfig) -> Result<Self, OnsagerError> {
        let n = coupling.n;
        let cap = config.pool_capacity.max(n);
        config.agent.validate()?;
        if n == 0 || config.state_dim == 0 || config.obs_dim == 0 {
            return Err(OnsagerError::Config {
                what: "agents/dimensions",
                value: 0.0,
                why: "must be at least 1",
            });
        }
        let model = GaussianModel::isotropic(
            config.state_dim,
            config.obs_dim,
            config.agent.prior_var,
            config.agent.sensory_var,
        );
        let proto = GibbsFluxAgent::new(model, config.agent.flux).map_err(agent_err(0))?;
        let agents = vec![proto; cap];
        let controllers = (0..cap)
            .map(|i| {
                let m = MorphicConfig {
                    seed: config.agent.morphic.seed.wrapping_add(i as u64),
                    ..config.agent.morphic
                };
                MorphicController::new(m, config.obs_dim).map_err(agent_err(i))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let turing = TuringSubstrate::new(config.turing, cap, n)?;
        let graph = Graph::new(cap, &coupling.edges)?;
        let complex = SimplicialComplex::new(cap, &[], &[])?;
        let mut e = OnsagerCollectiveEnsemble {
            config,
            base_edges: coupling.edges,
            agents,
            controllers,
            graph,
            hodge_ws: complex.workspace(),
            complex,
            flow: Vec::new(),
            settled: Vec::new(),
            turing,
            free_energy: vec![0.0; cap],
            shares: vec![0.0; cap],
            stress: vec![0.0; cap],
            delta: Vec::new(),
            mean_buf: Vec::new(),
            table: vec![0.0; 1 << MAX_PLAYERS],
            members: Vec::with_capacity(64),
            centroid: Vec::new(),
            steps: 0,
        };
        e.rebuild_topology()?;
        Ok(e)
    }

    /// Rebuilds the active graph and its complex (on construction and topology changes).
    fn rebuild_topology(&mut self) -> Result<(), OnsagerError> {
        let pool = self.turing.pool();
        let edges: Vec<_> = self
            .base_edges
            .iter()
            .copied()
            .filter(|&(u, v, _)| pool.is_active(u as usize) && pool.is_active(v as usize))
            .collect();
        let cap = self.agents.len();
        self.graph = Graph::new(cap, &edges)?;
        let pairs: Vec<(u32, u32)> = edges.iter().map(|&(u, v, _)| (u, v)).collect();
        let tris = self.graph.triangles_at_most(crate::limits::MAX_TRIANGLES)?;
        self.complex = SimplicialComplex::new(cap, &pairs, &tris)?;
        self.hodge_ws = self.complex.workspace();
        self.hodge_ws.cg = self.config.cg;
        self.flow = vec![0.0; pairs.len()];
        self.settled = vec![0.0; pairs.len()];
        let maxd = self.agents.iter().map(|a| a.dim()).max().unwrap_or(1);
        self.delta = vec![0.0; cap * maxd];
        self.mean_buf = vec![0.0; maxd];
        self.centroid = vec![0.0; maxd];
        Ok(())
    }

    /// Slots (active or not); observations are indexed by slot.
    pub fn slots(&self) -> usize {
        self.agents.len()
    }

    /// Whether slot `i` holds a live agent.
    pub fn is_active(&self, i: usize) -> bool {
        self.turing.pool().is_active(i)
    }

    /// The agent in slot `i`.
    pub fn agent(&self, i: usize) -> Option<&GibbsFluxAgent> {
        self.agents.get(i)
    }

    /// The current ensemble graph (active agents only).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The complex L0 reconciles on (edges of the active graph, its 3-cliques).
    pub fn complex(&self) -> &SimplicialComplex {
        &self.complex
    }

    /// The curl-free migration flow of the last step, one entry per complex edge.
    pub fn settled_flow(&self) -> &[f64] {
        &self.settled
    }

    /// Each slot's free energy after the last step.
    pub fn free_energies(&self) -> &[f64] {
        &self.free_energy
    }

    /// Each slot's dividend share `φ_i` after the last step.
    pub fn dividend_shares(&self) -> &[f64] {
        &self.shares
    }

    /// The L4 substrate.
    pub fn turing(&self) -> &TuringSubstrate {
        &self.turing
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// One full step. `observations` holds `slots() × obs_dim` values, row per slot
    /// (rows of inactive slots are ignored). Validated before anything changes.
    pub fn step(&mut self, observations: &[f64]) -> Result<StepReport, OnsagerError> {
        let (cap, m) = (self.agents.len(), self.config.obs_dim);
        if observations.len() != cap * m {
            return Err(OnsagerError::Length {
                what: "observations",
                expected: cap * m,
                got: observations.len(),
            });
        }
        for i in 0..cap {
            if !self.is_active(i) {
                continue;
            }
            let row = &observations[i * m..(i + 1) * m];
            if let Some(index) = row.iter().position(|x| !x.is_finite()) {
                return Err(OnsagerError::NonFiniteObservation {
                    agent: i,
                    index,
                    value: row[index],
                });
            }
        }
        let mut report = StepReport::default();

        // L1 + L2: each agent takes its observation through its law.
        let mut grew = false;
        for i in 0..cap {
            if !self.is_active(i) {
                continue;
            }
            let row = &observations[i * m..(i + 1) * m];
            let r = self.controllers[i]
                .update(&mut self.agents[i], row)
                .map_err(agent_err(i))?;
            report.expansions += r.expanded as usize;
            report.law_fallbacks += r.law_fallback as usize;
            grew |= r.expanded;
        }
        if grew {
            self.rebuild_topology()?;
        }

        // L3: belief diffusion, from the old means for everyone at once.
        self.diffuse()?;
        for i in 0..cap {
            if self.is_active(i) {
                self.free_energy[i] = self.agents[i].free_energy();
            } else {
                self.free_energy[i] = 0.0;
            }
        }
        self.compute_shares();
        for i in 0..cap {
            if self.is_active(i) {
                report.sum_free_energy += self.free_energy[i];
                report.sum_dividends += self.shares[i];
            }
        }
        report.f_collective = report.sum_free_energy - report.sum_dividends;

        // L0: reconcile the migration flow (first belief coordinate) on the complex.
        for (e, &(u, v)) in self.complex.edges().iter().enumerate() {
            let w = self.coupling_weight(u, v);
            self.flow[e] =
                w * (self.agents[u as usize].mean()[0] - self.agents[v as usize].mean()[0]);
        }
        let solve = self.complex.project_curl_free_into(
            &self.flow,
            &mut self.hodge_ws,
            &mut self.settled,
        )?;
        report.residual = solve.residual;
        report.cg_iterations = solve.iterations;

        // L4: stress is the standardised free energy; utility is the dividend share.
        let (mut mean, mut count) = (0.0, 0.0);
        for i in 0..cap {
            if self.is_active(i) {
                mean += self.free_energy[i];
                count += 1.0;
            }
        }
        mean /= count;
        let mut var = 0.0;
        for i in 0..cap {
            if self.is_active(i) {
                var += (self.free_energy[i] - mean).powi(2);
            }
        }
        let sd = (var / count).sqrt() + 1e-9;
        for i in 0..cap {
            self.stress[i] = if self.is_active(i) {
                ((self.free_energy[i] - mean) / sd).clamp(-3.0, 3.0)
            } else {
                0.0
            };
        }
        let tr = self.turing_step()?;
        report.turing_dt = tr.dt;
        report.pool_full = tr.pool_full;
        if self.config.adapt_topology && (tr.splits + tr.culls) > 0 {
            report.splits = tr.splits;
            report.culls = tr.culls;
            self.apply_events();
            self.rebuild_topology()?;
        }

        // The posterior becomes next step's prior.
        for i in 0..cap {
            if self.is_active(i) {
                self.agents[i]
                    .absorb(self.config.agent.process_noise)
                    .map_err(agent_err(i))?;
            }
        }
        report.active = self.turing.pool().active_count();
        self.steps += 1;
        Ok(report)
    }

    fn turing_step(&mut self) -> Result<crate::turing::TuringReport, OnsagerError> {
        if self.config.adapt_topology {
            return Ok(self.turing.step(&self.graph, &self.stress, &self.shares)?);
        }
        let (dt, cfl_bound) = self.turing.advance(&self.graph, &self.stress)?;
        Ok(crate::turing::TuringReport {
            dt,
            cfl_bound,
            splits: 0,
            culls: 0,
            pool_full: 0,
        })
    }

    fn apply_events(&mut self) {
        for k in 0..self.turing.events().len() {
            match self.turing.events()[k] {
                TopologyEvent::Split { parent, child } => {
                    let (p, c) = (parent as usize, child as usize);
                    let src = self.agents[p].clone();
                    self.agents[c].clone_from(&src);
                    let ctl = self.controllers[p].clone();
                    self.controllers[c].clone_from(&ctl);
                    // The child couples to its parent with the parent's strongest coupling.
                    let w = self
                        .base_edges
                        .iter()
                        .filter(|e| e.0 == parent || e.1 == parent)
                        .map(|e| e.2)
                        .fold(0.0, f64::max)
                        .max(1.0);
                    self.base_edges.retain(|e| e.0 != child && e.1 != child);
                    self.base_edges
                        .push((parent.min(child), parent.max(child), w));
                    self.base_edges.sort_by_key(|a| (a.0, a.1));
                }
                TopologyEvent::Cull { .. } => {}
            }
        }
    }

    fn coupling_weight(&self, u: u32, v: u32) -> f64 {
        edge_weight(&self.graph, u, v)
    }

    fn diffuse(&mut self) -> Result<(), OnsagerError> {
        let cap = self.agents.len();
        let maxd = self.mean_buf.len();
        let mut deg_max: f64 = 0.0;
        for i in 0..cap {
            deg_max = deg_max.max(self.graph.neighbours(i).1.iter().sum());
        }
        // Every agent knows every row here, so one rate bounded by the largest row sum
        // serves all: the flux stays exactly antisymmetric (Onsager reciprocity).
        let rate = diffusion_rate(self.config.agent.diffusion_rate, deg_max);
        for i in 0..cap {
            let active = self.turing.pool().is_active(i);
            let row = &mut self.delta[i * maxd..(i + 1) * maxd];
            row.fill(0.0);
            if !active {
                continue;
            }
            let agents = &self.agents;
            let (ns, ws) = self.graph.neighbours(i);
            add_diffusion(
                rate,
                agents[i].mean(),
                ns.iter()
                    .zip(ws)
                    .map(|(&j, &w)| (w, agents[j as usize].mean())),
                row,
            );
        }
        for i in 0..cap {
            if !self.is_active(i) {
                continue;
            }
            let d = self.agents[i].dim();
            for k in 0..d {
                self.mean_buf[k] = self.agents[i].mean()[k] + self.delta[i * maxd + k];
            }
            self.agents[i]
                .set_mean(&self.mean_buf[..d])
                .map_err(agent_err(i))?;
        }
        Ok(())
    }

    fn compute_shares(&mut self) {
        let cap = self.agents.len();
        let temp = self.config.agent.synergy_temperature;
        for i in 0..cap {
            self.shares[i] = 0.0;
            if !self.is_active(i) {
                continue;
            }
            // Coalition: i plus its strongest neighbours (weight desc, index asc).
            self.members.clear();
            self.members.push((f64::INFINITY, i as u32));
            let (ns, ws) = self.graph.neighbours(i);
            for (&j, &w) in ns.iter().zip(ws) {
                self.members.push((w, j));
            }
            self.members[1..].sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            self.members.truncate(MAX_PLAYERS);
            let k = self.members.len();
            let dim = self.agents[i].dim();
            let (agents, members, graph) = (&self.agents, &self.members, &self.graph);
            self.shares[i] = coalition_share(
                k,
                dim,
                |a| agents[members[a].1 as usize].mean(),
                |a, b| edge_weight(graph, members[a].1, members[b].1),
                temp,
                &mut self.table,
                &mut self.centroid,
            );
        }
    }
}

/// The coupling on edge `{u, v}` of `graph`, 0 when there is none.
fn edge_weight(graph: &Graph, u: u32, v: u32) -> f64 {
    let (ns, ws) = graph.neighbours(u as usize);
    match ns.binary_search(&v) {
        Ok(k) => ws[k],
        Err(_) => 0.0,
    }
}
