//! L4 for the balancer: capacity signals from Gierer–Meinhardt on the backend graph.
//!
//! The stress of backend `v` is its load relative to the mean, `Q_v / mean(Q) − 1`, where
//! `Q` is the requests in flight summed over every balancer's record. From the uniform
//! steady state, a fixed number of RK4 steps of the reaction–diffusion field
//! ([`crate::turing`]) turn that stress into an activator per backend: local activation
//! with lateral inhibition, so a saturated neighbourhood raises one clear peak rather than
//! a plateau, and an isolated spike in one record is smoothed by its neighbours.
//! *Split* (add capacity next to it) where the activator is above `split_activation`
//! times the steady state and the backend is loaded above `split_load` times the mean;
//! *cull* (it can be drained) where the activator is below `cull_activation` times the
//! steady state and the load below `cull_load` times the mean, never leaving fewer than
//! `floor` backends un-culled. Everything is a function of the merged records alone, so
//! every node that holds the same records reports the same signals.

use crate::graph::Graph;
use crate::turing::{TuringConfig, TuringSubstrate};

/// Reaction–diffusion steps per evaluation.
pub const CAPACITY_STEPS: usize = 40;

/// When a backend asks for more capacity or can be drained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapacityConfig {
    /// Split when the activator exceeds this multiple of its steady state …
    pub split_activation: f64,
    /// … and the backend's load this multiple of the mean.
    pub split_load: f64,
    /// Cull when the activator is below this multiple of its steady state …
    pub cull_activation: f64,
    /// … and the load below this multiple of the mean.
    pub cull_load: f64,
    /// Backends never culled below this count.
    pub floor: u32,
    /// No signal at all while the mesh has fewer requests in flight than this (an idle
    /// mesh says nothing about capacity).
    pub min_total_in_flight: f64,
}

impl Default for CapacityConfig {
    fn default() -> Self {
        CapacityConfig {
            split_activation: 1.5,
            split_load: 2.0,
            cull_activation: 0.5,
            cull_load: 0.25,
            floor: 2,
            min_total_in_flight: 1.0,
        }
    }
}

/// A capacity signal for one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacitySignal {
    /// The backend is saturated: add capacity beside it.
    Split {
        /// The backend.
        backend: u32,
    },
    /// The backend is idle: it can be drained.
    Cull {
        /// The backend.
        backend: u32,
    },
}

pub(super) fn reaction() -> TuringConfig {
    TuringConfig {
        stress_gain: 1.0,
        dt: 0.05,
        ..TuringConfig::default()
    }
}

/// The signals for `load` (one entry per backend) on `graph`, into `out` (cleared).
pub(super) fn signals(
    cfg: &CapacityConfig,
    graph: &Graph,
    load: &[f64],
    stress: &mut Vec<f64>,
    out: &mut Vec<CapacitySignal>,
) {
    out.clear();
    let n = load.len();
    let total: f64 = load.iter().sum();
    if n == 0 || !(total >= cfg.min_total_in_flight) {
        return;
    }
    let mean = total / n as f64;
    stress.clear();
    stress.extend(load.iter().map(|q| q / mean - 1.0));
    let react = reaction();
    // A fresh field each time: the signals depend on these records only, not on the
    // history of evaluations (which differs from node to node).
    let Ok(mut f) = TuringSubstrate::new(react, n, n) else {
        return;
    };
    for _ in 0..CAPACITY_STEPS {
        if f.advance(graph, stress).is_err() {
            return;
        }
    }
    let (a0, _) = react.steady_state();
    let a = f.activator();
    let mut remaining = n as u32;
    for v in 0..n {
        let rel = load[v] / mean;
        if a[v] > cfg.split_activation * a0 && rel > cfg.split_load {
            out.push(CapacitySignal::Split { backend: v as u32 });
        }
    }
    for v in 0..n {
        let rel = load[v] / mean;
        if remaining > cfg.floor && a[v] < cfg.cull_activation * a0 && rel < cfg.cull_load {
            out.push(CapacitySignal::Cull { backend: v as u32 });
            remaining -= 1;
        }
    }
}
