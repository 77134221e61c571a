//! L4 — turing: Gierer–Meinhardt reaction–diffusion on the node graph, with split/cull.
//!
//! Each node carries an activator `a` and an inhibitor `h`:
//!
//! ```text
//! da/dt = ρ a² / (h (1 + κ a²)) − μ_a a + σ_a + γ s_i − D_a (L a)_i
//! dh/dt = ρ a²                  − μ_h h           − D_h (L h)_i
//! ```
//!
//! where `L` is the weighted graph Laplacian over active nodes and `s_i` an external
//! stress input. Integration is classic RK4 with `dt` clamped to the explicit-diffusion
//! bound `0.45 / (D_max · degree_max)` (weighted degree). With `D_h ≫ D_a` and `μ_h > μ_a`
//! the uniform state is stable without diffusion and unstable with it (a Turing pattern).
//!
//! High activation splits a node (mitosis into a slot of a pool allocated up front; a
//! full pool is reported, never grown); low activation with low utility culls one
//! (apoptosis), never below a minimum cluster size. This module depends on no other layer.

use crate::graph::Graph;
use crate::rng::Rng;
use thiserror::Error;

/// Errors from the substrate; its state is unchanged whenever one is returned.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TuringError {
    /// A parameter is out of range.
    #[error("turing parameter {what} = {value} is out of range: {why}")]
    Config {
        /// Which parameter.
        what: &'static str,
        /// Its value.
        value: f64,
        /// The accepted range.
        why: &'static str,
    },
    /// An input slice has the wrong length.
    #[error("{what} has {got} entries but the pool has {expected} slots")]
    Length {
        /// Which input.
        what: &'static str,
        /// Slots.
        expected: usize,
        /// Entries given.
        got: usize,
    },
    /// An input entry is NaN or infinite.
    #[error("{what}[{index}] is {value}; inputs must be finite")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Index.
        index: usize,
        /// Value.
        value: f64,
    },
}

/// Parameters of the reaction–diffusion system and of split/cull.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TuringConfig {
    /// Production rate `ρ`.
    pub rho: f64,
    /// Activator decay `μ_a`.
    pub mu_a: f64,
    /// Inhibitor decay `μ_h`.
    pub mu_h: f64,
    /// Activator diffusion `D_a`.
    pub d_a: f64,
    /// Inhibitor diffusion `D_h`.
    pub d_h: f64,
    /// Basal activator production `σ_a`.
    pub sigma_a: f64,
    /// Saturation `κ` (0 = classic Gierer–Meinhardt).
    pub saturation: f64,
    /// Gain `γ` of the stress input.
    pub stress_gain: f64,
    /// Requested time step; clamped to the CFL bound.
    pub dt: f64,
    /// Floor on `h` in the division (guards against `h → 0`).
    pub h_floor: f64,
    /// Activation above which a node splits.
    pub split_threshold: f64,
    /// Activation below which a node may be culled.
    pub cull_activation: f64,
    /// Utility below which a low-activation node is culled.
    pub cull_utility: f64,
    /// Active nodes never drop below this.
    pub min_cluster: usize,
    /// Splits allowed per step.
    pub max_splits_per_step: usize,
}

impl Default for TuringConfig {
    fn default() -> Self {
        TuringConfig {
            rho: 1.0,
            mu_a: 1.0,
            mu_h: 2.0,
            d_a: 0.05,
            d_h: 2.0,
            sigma_a: 0.0,
            saturation: 0.0,
            stress_gain: 0.1,
            dt: 0.1,
            h_floor: 1e-6,
            split_threshold: 6.0,
            cull_activation: 0.05,
            cull_utility: 0.0,
            min_cluster: 3,
            max_splits_per_step: 1,
        }
    }
}

impl TuringConfig {
    /// The uniform steady state `(a*, h*)` without basal production or stress
    /// (`a* = μ_h / μ_a`, `h* = ρ a*² / μ_h`; saturation ignored).
    pub fn steady_state(&self) -> (f64, f64) {
        let a = self.mu_h / self.mu_a;
        (a, self.rho * a * a / self.mu_h)
    }

    fn validate(&self) -> Result<(), TuringError> {
        let pos = [
            ("rho", self.rho),
            ("mu_a", self.mu_a),
            ("mu_h", self.mu_h),
            ("dt", self.dt),
            ("h_floor", self.h_floor),
        ];
        for (what, value) in pos {
            if !(value > 0.0 && value.is_finite()) {
                return Err(TuringError::Config {
                    what,
                    value,
                    why: "must be positive and finite",
                });
            }
        }
        let nonneg = [
            ("d_a", self.d_a),
            ("d_h", self.d_h),
            ("sigma_a", self.sigma_a),
            ("saturation", self.saturation),
        ];
        for (what, value) in nonneg {
            if !(value >= 0.0 && value.is_finite()) {
                return Err(TuringError::Config {
                    what,
                    value,
                    why: "must be finite and non-negative",
                });
            }
        }
        for (what, value) in [
            ("stress_gain", self.stress_gain),
            ("split_threshold", self.split_threshold),
            ("cull_activation", self.cull_activation),
            ("cull_utility", self.cull_utility),
        ] {
            if !value.is_finite() {
                return Err(TuringError::Config {
                    what,
                    value,
                    why: "must be finite",
                });
            }
        }
        if self.min_cluster == 0 {
            return Err(TuringError::Config {
                what: "min_cluster",
                value: 0.0,
                why: "must be at least 1",
            });
        }
        Ok(())
    }
}

/// A topology change decided by a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopologyEvent {
    /// `parent` split; `child` is the pool slot it now also occupies.
    Split {
        /// The node that split.
        parent: u32,
        /// The slot taken from the pool.
        child: u32,
    },
    /// `node` was culled and its slot returned to the pool.
    Cull {
        /// The node removed.
        node: u32,
    },
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TuringReport {
    /// The time step actually used (after the CFL clamp).
    pub dt: f64,
    /// The CFL bound in force (`∞` on a graph with no edges).
    pub cfl_bound: f64,
    /// Splits performed.
    pub splits: usize,
    /// Culls performed.
    pub culls: usize,
    /// Splits wanted but refused because the pool was full.
    pub pool_full: usize,
}

/// A fixed set of slots, some active. Never grows after construction.
#[derive(Debug, Clone)]
pub struct NodePool {
    active: Vec<bool>,
    free: Vec<u32>,
    n_active: usize,
}

impl NodePool {
    fn new(capacity: usize, initially_active: usize) -> Self {
        let active = (0..capacity).map(|i| i < initially_active).collect();
        // Free slots are handed out lowest first: the stack holds them descending.
        let free = (initially_active..capacity)
            .rev()
            .map(|i| i as u32)
            .collect();
        NodePool {
            active,
            free,
            n_active: initially_active.min(capacity),
        }
    }

    /// Total slots.
    pub fn capacity(&self) -> usize {
        self.active.len()
    }

    /// Active slots.
    pub fn active_count(&self) -> usize {
        self.n_active
    }

    /// Whether slot `i` is active.
    pub fn is_active(&self, i: usize) -> bool {
        self.active.get(i).copied().unwrap_or(false)
    }

    fn take(&mut self) -> Option<u32> {
        let s = self.free.pop()?;
        self.active[s as usize] = true;
        self.n_active += 1;
        Some(s)
    }

    fn give_back(&mut self, s: u32) {
        // `free` was allocated with room for every slot, so this push never reallocates.
        self.active[s as usize] = false;
        self.free.push(s);
        self.n_active -= 1;
    }
}

/// The reaction–diffusion field over a pool of node slots.
#[derive(Debug, Clone)]
pub struct TuringSubstrate {
    config: TuringConfig,
    pool: NodePool,
    a: Vec<f64>,
    h: Vec<f64>,
    k: [Vec<f64>; 8],
    ya: Vec<f64>,
    yh: Vec<f64>,
    events: Vec<TopologyEvent>,
}

impl TuringSubstrate {
    /// A substrate with `capacity` slots of which the first `active` are live, all at the
    /// uniform steady state.
    pub fn new(config: TuringConfig, capacity: usize, active: usize) -> Result<Self, TuringError> {
        config.validate()?;
        if active > capacity {
            return Err(TuringError::Length {
                what: "active nodes",
                expected: capacity,
                got: active,
            });
        }
        let (a0, h0) = config.steady_state();
        let z = || vec![0.0; capacity];
        let mut pool = NodePool::new(capacity, active);
        pool.free.reserve_exact(capacity - pool.free.len());
        Ok(TuringSubstrate {
            config,
            pool,
            a: (0..capacity)
                .map(|i| if i < active { a0 } else { 0.0 })
                .collect(),
            h: (0..capacity)
                .map(|i| if i < active { h0 } else { 0.0 })
                .collect(),
            k: [z(), z(), z(), z(), z(), z(), z(), z()],
            ya: z(),
            yh: z(),
            events: Vec::with_capacity(capacity * 2),
        })
    }

    /// Multiplies every active activator by `1 + ε u`, `u` uniform in `[−1, 1]`.
    pub fn perturb(&mut self, rng: &mut Rng, epsilon: f64) {
        for i in 0..self.a.len() {
            if self.pool.is_active(i) {
                self.a[i] *= 1.0 + epsilon * rng.range_f64(-1.0, 1.0);
            }
        }
    }

    /// Activator levels per slot (0 for inactive slots).
    pub fn activator(&self) -> &[f64] {
        &self.a
    }

    /// Inhibitor levels per slot.
    pub fn inhibitor(&self) -> &[f64] {
        &self.h
    }

    /// The slot pool.
    pub fn pool(&self) -> &NodePool {
        &self.pool
    }

    /// Topology events of the last step.
    pub fn events(&self) -> &[TopologyEvent] {
        &self.events
    }

    /// Total capacity of every buffer (lets tests prove nothing was resized).
    pub fn buffer_capacity(&self) -> usize {
        self.a.capacity()
            + self.h.capacity()
            + self.k.iter().map(Vec::capacity).sum::<usize>()
            + self.ya.capacity()
            + self.yh.capacity()
            + self.events.capacity()
            + self.pool.active.capacity()
            + self.pool.free.capacity()
    }

    /// The CFL bound `0.45 / (D_max · degree_max)` over active nodes of `graph`.
    pub fn cfl_bound(&self, graph: &Graph) -> f64 {
        let mut deg_max: f64 = 0.0;
        for i in 0..self.a.len().min(graph.n_vertices()) {
            if !self.pool.is_active(i) {
                continue;
            }
            let (ns, ws) = graph.neighbours(i);
            let d: f64 = ns
                .iter()
                .zip(ws)
                .filter(|(j, _)| self.pool.is_active(**j as usize))
                .map(|(_, w)| *w)
                .sum();
            deg_max = deg_max.max(d);
        }
        let d_max = self.config.d_a.max(self.config.d_h);
        if deg_max * d_max > 0.0 {
            0.45 / (d_max * deg_max)
        } else {
            f64::INFINITY
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn rhs(
        cfg: &TuringConfig,
        pool: &NodePool,
        graph: &Graph,
        stress: &[f64],
        a: &[f64],
        h: &[f64],
        da: &mut [f64],
        dh: &mut [f64],
    ) {
        for i in 0..a.len() {
            if !pool.is_active(i) {
                da[i] = 0.0;
                dh[i] = 0.0;
                continue;
            }
            let (mut la, mut lh) = (0.0, 0.0);
            let (ns, ws) = graph.neighbours(i);
            for (&j, &w) in ns.iter().zip(ws) {
                let j = j as usize;
                if j < a.len() && pool.is_active(j) {
                    la += w * (a[i] - a[j]);
                    lh += w * (h[i] - h[j]);
                }
            }
            let a2 = a[i] * a[i];
            let hh = h[i].max(cfg.h_floor);
            da[i] = cfg.rho * a2 / (hh * (1.0 + cfg.saturation * a2)) - cfg.mu_a * a[i]
                + cfg.sigma_a
                + cfg.stress_gain * stress[i]
                - cfg.d_a * la;
            dh[i] = cfg.rho * a2 - cfg.mu_h * h[i] - cfg.d_h * lh;
        }
    }

    /// Advances the field one RK4 step over `graph` (vertices are slots), then splits and
    /// culls. `stress` and `utility` have one entry per slot (ignored for inactive ones).
    pub fn step(
        &mut self,
        graph: &Graph,
        stress: &[f64],
        utility: &[f64],
    ) -> Result<TuringReport, TuringError> {
        Self::check_input("utility", utility, self.a.len())?;
        let (dt, cfl_bound) = self.advance(graph, stress)?;
        Ok(self.split_and_cull(utility, dt, cfl_bound))
    }

    fn check_input(what: &'static str, v: &[f64], n: usize) -> Result<(), TuringError> {
        if v.len() != n {
            return Err(TuringError::Length {
                what,
                expected: n,
                got: v.len(),
            });
        }
        if let Some(index) = v.iter().position(|x| !x.is_finite()) {
            return Err(TuringError::NonFinite {
                what,
                index,
                value: v[index],
            });
        }
        Ok(())
    }

    /// Advances the field one RK4 step without any split or cull; returns the step used
    /// and the CFL bound. Clears the event list.
    pub fn advance(&mut self, graph: &Graph, stress: &[f64]) -> Result<(f64, f64), TuringError> {
        let n = self.a.len();
        self.events.clear();
        Self::check_input("stress", stress, n)?;
        let cfl_bound = self.cfl_bound(graph);
        let dt = self.config.dt.min(cfl_bound);
        let cfg = self.config;
        let [k1a, k1h, k2a, k2h, k3a, k3h, k4a, k4h] = &mut self.k;
        let (a, h, ya, yh, pool) = (
            &mut self.a,
            &mut self.h,
            &mut self.ya,
            &mut self.yh,
            &self.pool,
        );
        Self::rhs(&cfg, pool, graph, stress, a, h, k1a, k1h);
        for i in 0..n {
            ya[i] = a[i] + 0.5 * dt * k1a[i];
            yh[i] = h[i] + 0.5 * dt * k1h[i];
        }
        Self::rhs(&cfg, pool, graph, stress, ya, yh, k2a, k2h);
        for i in 0..n {
            ya[i] = a[i] + 0.5 * dt * k2a[i];
            yh[i] = h[i] + 0.5 * dt * k2h[i];
        }
        Self::rhs(&cfg, pool, graph, stress, ya, yh, k3a, k3h);
        for i in 0..n {
            ya[i] = a[i] + dt * k3a[i];
            yh[i] = h[i] + dt * k3h[i];
        }
        Self::rhs(&cfg, pool, graph, stress, ya, yh, k4a, k4h);
        for i in 0..n {
            if !pool.is_active(i) {
                continue;
            }
            let na = a[i] + dt / 6.0 * (k1a[i] + 2.0 * k2a[i] + 2.0 * k3a[i] + k4a[i]);
            let nh = h[i] + dt / 6.0 * (k1h[i] + 2.0 * k2h[i] + 2.0 * k3h[i] + k4h[i]);
            // Concentrations are non-negative; a non-finite value (a blow-up the CFL
            // bound cannot prevent in the reaction terms) resets to the floor.
            a[i] = if na.is_finite() { na.max(0.0) } else { 0.0 };
            h[i] = if nh.is_finite() {
                nh.max(cfg.h_floor)
            } else {
                cfg.h_floor
            };
        }
        Ok((dt, cfl_bound))
    }

    fn split_and_cull(&mut self, utility: &[f64], dt: f64, cfl_bound: f64) -> TuringReport {
        self.events.clear();
        let cfg = self.config;
        let n = self.a.len();
        let (mut splits, mut culls, mut pool_full) = (0, 0, 0);
        for i in 0..n {
            if !self.pool.is_active(i) || self.a[i] <= cfg.split_threshold {
                continue;
            }
            if splits >= cfg.max_splits_per_step {
                break;
            }
            match self.pool.take() {
                Some(c) => {
                    let c = c as usize;
                    self.a[i] *= 0.5;
                    self.a[c] = self.a[i];
                    self.h[c] = self.h[i];
                    self.events.push(TopologyEvent::Split {
                        parent: i as u32,
                        child: c as u32,
                    });
                    splits += 1;
                }
                None => pool_full += 1,
            }
        }
        for i in 0..n {
            if self.pool.active_count() <= cfg.min_cluster {
                break;
            }
            if self.pool.is_active(i)
                && self.a[i] < cfg.cull_activation
                && utility[i] < cfg.cull_utility
            {
                self.pool.give_back(i as u32);
                self.a[i] = 0.0;
                self.h[i] = 0.0;
                self.events.push(TopologyEvent::Cull { node: i as u32 });
                culls += 1;
            }
        }
        TuringReport {
            dt,
            cfl_bound,
            splits,
            culls,
            pool_full,
        }
    }
}
