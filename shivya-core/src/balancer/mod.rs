//! The balancer: which backend gets this request, decided from this balancer's fresh
//! observations and the merged records of every balancer. One policy, used unchanged by
//! every embedder (the C ABI, the bindings, the nginx module, shivyad, the benchmark).
//!
//! A host tells the balancer what it does and sees — [`Balancer::started`] when a request
//! goes to a backend, [`Balancer::finished`] with its latency and outcome — and asks
//! [`Balancer::pick`] per request or [`Balancer::weights`] for weighted hosts. The node
//! publishes this balancer's requests in flight per backend in its record and hands the
//! merged sums back with [`Balancer::refresh`] at every layer step.
//!
//! **The decision.** Two candidates ([`BalancerConfig::choices`]) are drawn at random in
//! proportion to the weights, and the one with the smaller expected delay
//! `(local + others + 1) · svc` wins (`svc` the delay one request adds there, taken one
//! standard deviation optimistic; `others` what the records add to what this balancer's
//! own traffic predicts, see `estimate`),
//! where `local` is this balancer's own requests in flight (exact, fresh), `others` the
//! predicted requests of every other balancer (from the records) and `latency` the
//! filtered estimate. The mesh adds to what a local policy knows (the others' load);
//! the fresh local count keeps it from acting on old news alone.
//!
//! **What each layer does**, each switchable in [`Layers`]:
//! * L1 (`filter`): a Gaussian belief per backend: latency by a Kalman filter on its log,
//!   the others' load predicted to the moment of use (see `estimate`).
//! * L2 (`law`): the weights are a law compiled to the sandboxed VM, over the inputs
//!   [`LAW_INPUTS`]; [`DEFAULT_LAW`] ships, an operator may give another
//!   ([`BalancerConfig::law`]), refused at configuration when it does not parse or
//!   compile within the cycle budget. A law that faults at run time (a division by zero)
//!   gives that backend weight 0 for the round and is counted.
//! * L3 (`damping`): a weight moves towards the law's target by the coupling rate per
//!   refresh instead of jumping: no flapping when records arrive in bursts.
//! * L4 (`capacity`): split/cull signals from Gierer–Meinhardt on the backend graph, a
//!   function of the merged records alone (see `capacity`).
//! * `shared`: with it off the balancer ignores the records and is a local policy (two
//!   choices by requests in flight and latency), which is what the ablation compares.
//!
//! Deterministic: the same calls with the same times and seed give the same picks. `pick`
//! allocates nothing.

mod capacity;
mod estimate;

pub use capacity::{CapacityConfig, CapacitySignal, CAPACITY_STEPS};
pub use estimate::{DRIFT_PER_MS, FAILURE_PENALTY, OBS_VAR, RELAX_LATENCIES, TRUST_SERVICES};

use crate::graph::Graph;
use crate::morphic::{parse_law, ParseError, Program, VmError};
use crate::rng::Rng;
use estimate::{LatencyBelief, OthersInFlight};
use thiserror::Error;

/// The names a weight law may use, in input order:
/// * `q` — predicted requests in flight at the backend, every balancer together;
/// * `local` — this balancer's requests in flight there;
/// * `svc` — estimated delay one more request adds there, ms (for a FIFO server, its
///   service time; the inverse of its capacity);
/// * `lat` — average observed latency, ms;
/// * `sd` — uncertainty of that estimate (standard deviation of its log; 0 without L1);
/// * `err` — share of recent requests that failed (0..1);
/// * `weight` — the configured weight of the backend;
/// * `n` — the number of backends.
pub const LAW_INPUTS: [&str; 8] = ["q", "local", "svc", "lat", "sd", "err", "weight", "n"];

/// The weight law used unless another is configured: the estimated capacity, with a
/// bonus for a backend nobody has measured lately and a malus for errors. It leaves the
/// queues out on purpose: the weights choose the candidates, the fresh costs decide
/// between them, and weights that chase stale queues make every balancer draw the same
/// candidates (herding; measured in docs/PERFORMANCE.md).
pub const DEFAULT_LAW: &str = "(1 + sd) * (1 - err) / svc";

/// No backend's weight falls below this share of the largest (nothing starves, so a
/// backend that recovers is seen recovering).
pub const MIN_WEIGHT_SHARE: f64 = 0.01;

/// Errors of the balancer; a call that returns one has changed nothing.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum BalancerError {
    /// A backend index past the configured backends.
    #[error("backend {backend} is unknown: there are {n} backends")]
    UnknownBackend {
        /// Index given.
        backend: u32,
        /// Backends.
        n: u32,
    },
    /// A NaN, infinite or negative number where a latency, weight or load is needed.
    #[error("{what} = {value} is invalid: must be finite and non-negative")]
    BadValue {
        /// Which input.
        what: &'static str,
        /// Value given.
        value: f64,
    },
    /// A slice of the wrong length.
    #[error("{what} has {got} entries, expected {expected}")]
    Length {
        /// Which input.
        what: &'static str,
        /// Expected.
        expected: usize,
        /// Given.
        got: usize,
    },
    /// The weight law does not parse.
    #[error("weight law: {0}")]
    Law(#[from] ParseError),
    /// The weight law does not compile within the VM's limits.
    #[error("weight law: {0}")]
    LawProgram(#[from] VmError),
    /// A setting out of range.
    #[error("balancer setting {what} is invalid: {why}")]
    Config {
        /// Setting.
        what: &'static str,
        /// Why.
        why: String,
    },
}

/// Which layers take part in the decision (all by default; the ablation turns them off
/// one at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layers {
    /// L1: filtered latency and predicted load (off: plain averages, reports as they are).
    pub filter: bool,
    /// L2: weights from the law (off: the configured weights).
    pub law: bool,
    /// L3: weights move by the coupling rate (off: they jump to the target).
    pub damping: bool,
    /// L4: capacity signals.
    pub capacity: bool,
    /// Use the other balancers' records at all (off: a purely local policy).
    pub shared: bool,
}

impl Default for Layers {
    fn default() -> Self {
        Layers {
            filter: true,
            law: true,
            damping: true,
            capacity: true,
            shared: true,
        }
    }
}

/// The balancer's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BalancerConfig {
    /// Which layers take part.
    pub layers: Layers,
    /// The weight law's text over [`LAW_INPUTS`]; `None` is [`DEFAULT_LAW`].
    pub law: Option<String>,
    /// Latency assumed for a backend before its first answer, ms.
    pub latency_prior_ms: f64,
    /// L3: share of the way to its target a weight moves per refresh, in (0, 1].
    pub coupling: f64,
    /// Typical age of the merged records when they arrive, ms (about one gossip period);
    /// added to the time since they changed when predicting the others' load.
    pub info_age_ms: f64,
    /// Candidates drawn per pick (2 is "two choices"; at least 1, at most 16).
    pub choices: u32,
    /// L4 settings.
    pub capacity: CapacityConfig,
}

impl Default for BalancerConfig {
    fn default() -> Self {
        BalancerConfig {
            layers: Layers::default(),
            law: None,
            latency_prior_ms: 10.0,
            coupling: 0.5,
            info_age_ms: 50.0,
            choices: 2,
            capacity: CapacityConfig::default(),
        }
    }
}

impl BalancerConfig {
    /// The compiled law (checks the text and the VM's limits).
    pub fn compile_law(&self) -> Result<Program, BalancerError> {
        let text = self.law.as_deref().unwrap_or(DEFAULT_LAW);
        let expr = parse_law(text, &LAW_INPUTS)?;
        Ok(Program::compile(&expr)?)
    }

    /// Checks every setting.
    pub fn validate(&self) -> Result<(), BalancerError> {
        self.compile_law()?;
        let positive = |what: &'static str, v: f64, max: f64| {
            if v.is_finite() && v > 0.0 && v <= max {
                Ok(())
            } else {
                Err(BalancerError::Config {
                    what,
                    why: format!("{v} must be positive, finite and at most {max}"),
                })
            }
        };
        positive("latency_prior_ms", self.latency_prior_ms, 1e9)?;
        positive("coupling", self.coupling, 1.0)?;
        if !(self.info_age_ms.is_finite() && (0.0..=1e9).contains(&self.info_age_ms)) {
            return Err(BalancerError::Config {
                what: "info_age_ms",
                why: format!("{} must be finite and in [0, 1e9]", self.info_age_ms),
            });
        }
        if !(1..=16).contains(&self.choices) {
            return Err(BalancerError::Config {
                what: "choices",
                why: format!("{} must be between 1 and 16", self.choices),
            });
        }
        let c = &self.capacity;
        for (what, v) in [
            ("capacity.split_activation", c.split_activation),
            ("capacity.split_load", c.split_load),
            ("capacity.cull_activation", c.cull_activation),
            ("capacity.cull_load", c.cull_load),
            ("capacity.min_total_in_flight", c.min_total_in_flight),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(BalancerError::Config {
                    what,
                    why: format!("{v} must be finite and non-negative"),
                });
            }
        }
        Ok(())
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer.
    Ok,
    /// An error or a timeout (the backend took it and failed).
    Failed,
    /// The backend refused it (connection refused, overloaded answer).
    Refused,
}

/// Counters of the balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BalancerCounters {
    /// `pick` calls.
    pub picks: u64,
    /// Finished requests reported.
    pub finished: u64,
    /// Requests reported failed or refused.
    pub failures: u64,
    /// Law evaluations that faulted (the backend got weight 0 for that refresh).
    pub law_faults: u64,
    /// `finished` calls for a backend with nothing in flight here (ignored for the count).
    pub unmatched_finishes: u64,
}

/// The dispatch policy of one balancer over `n` backends.
#[derive(Debug, Clone)]
pub struct Balancer {
    config: BalancerConfig,
    law: Program,
    graph: Graph,
    base: Vec<f64>,
    local: Vec<u32>,
    latency: Vec<LatencyBelief>,
    others: Vec<OthersInFlight>,
    /// Time integral of `local` since the last publication, and when it was last advanced.
    area: Vec<f64>,
    area_from_ms: u64,
    area_at_ms: u64,
    published: Vec<f64>,
    peers: f64,
    target: Vec<f64>,
    weight: Vec<f64>,
    /// Per backend: delay per request (optimistic), as of the last refresh or answer.
    unit: Vec<f64>,
    /// Per backend: what the records add to the queue in the decision.
    others_term: Vec<f64>,
    cumulative: Vec<f64>,
    signals: Vec<CapacitySignal>,
    stress: Vec<f64>,
    rng: Rng,
    clock_ms: u64,
    counters: BalancerCounters,
}

impl Balancer {
    /// A balancer over the backends of `n` vertices joined by `edges` (the workload
    /// topology: L4 diffuses along it), seeded with `seed`, at `now_ms`.
    pub fn new(
        config: BalancerConfig,
        n: u32,
        edges: &[(u32, u32)],
        seed: u64,
        now_ms: u64,
    ) -> Result<Balancer, BalancerError> {
        config.validate()?;
        let law = config.compile_law()?;
        let weighted: Vec<(u32, u32, f64)> = edges.iter().map(|&(a, b)| (a, b, 1.0)).collect();
        let graph = Graph::new(n as usize, &weighted).map_err(|e| BalancerError::Config {
            what: "topology",
            why: e.to_string(),
        })?;
        let n = n as usize;
        let mut b = Balancer {
            law,
            graph,
            base: vec![1.0; n],
            local: vec![0; n],
            latency: vec![LatencyBelief::new(config.latency_prior_ms, now_ms); n],
            others: vec![OthersInFlight::default(); n],
            area: vec![0.0; n],
            area_from_ms: now_ms,
            area_at_ms: now_ms,
            published: vec![0.0; n],
            peers: 0.0,
            target: vec![0.0; n],
            weight: vec![1.0 / n.max(1) as f64; n],
            cumulative: vec![0.0; n],
            unit: vec![0.0; n],
            others_term: vec![0.0; n],
            signals: Vec::new(),
            stress: Vec::with_capacity(n),
            rng: Rng::new(seed ^ 0x6261_6c61_6e63_6572),
            clock_ms: now_ms,
            counters: BalancerCounters::default(),
            config,
        };
        b.rebuild_cumulative();
        for i in 0..n {
            b.recache(i, now_ms);
        }
        Ok(b)
    }

    /// Backends.
    pub fn len(&self) -> usize {
        self.base.len()
    }

    /// True when there are no backends.
    pub fn is_empty(&self) -> bool {
        self.base.is_empty()
    }

    /// The settings.
    pub fn config(&self) -> &BalancerConfig {
        &self.config
    }

    /// Counters.
    pub fn counters(&self) -> BalancerCounters {
        self.counters
    }

    fn index(&self, backend: u32) -> Result<usize, BalancerError> {
        if (backend as usize) < self.len() {
            Ok(backend as usize)
        } else {
            Err(BalancerError::UnknownBackend {
                backend,
                n: self.len() as u32,
            })
        }
    }

    fn clock(&mut self, now_ms: u64) -> u64 {
        self.clock_ms = self.clock_ms.max(now_ms);
        self.clock_ms
    }

    /// Advances the in-flight time integral to `now`.
    fn advance_area(&mut self, now: u64) {
        let dt = now.saturating_sub(self.area_at_ms) as f64;
        if dt > 0.0 {
            for (a, &l) in self.area.iter_mut().zip(&self.local) {
                *a += dt * f64::from(l);
            }
            self.area_at_ms = now;
        }
    }

    /// Sets the configured weight of `backend` (nginx's `weight=`; 1 by default).
    pub fn set_base_weight(&mut self, backend: u32, weight: f64) -> Result<(), BalancerError> {
        let i = self.index(backend)?;
        if !(weight.is_finite() && weight > 0.0 && weight <= 1e6) {
            return Err(BalancerError::BadValue {
                what: "weight",
                value: weight,
            });
        }
        self.base[i] = weight;
        self.latency[i].set_prior(self.config.latency_prior_ms / weight);
        let now = self.clock_ms;
        self.recache(i, now);
        Ok(())
    }

    /// A request went to `backend` at `now_ms`.
    pub fn started(&mut self, backend: u32, now_ms: u64) -> Result<(), BalancerError> {
        let i = self.index(backend)?;
        let now = self.clock(now_ms);
        self.advance_area(now);
        self.local[i] = self.local[i].saturating_add(1);
        Ok(())
    }

    /// A request to `backend` ended at `now_ms` after `latency_ms`, with `outcome`.
    pub fn finished(
        &mut self,
        backend: u32,
        latency_ms: f64,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<(), BalancerError> {
        let i = self.index(backend)?;
        if !(latency_ms.is_finite() && latency_ms >= 0.0) {
            return Err(BalancerError::BadValue {
                what: "latency_ms",
                value: latency_ms,
            });
        }
        let now = self.clock(now_ms);
        self.advance_area(now);
        if self.local[i] == 0 {
            self.counters.unmatched_finishes += 1;
        } else {
            self.local[i] -= 1;
        }
        self.counters.finished += 1;
        let failed = outcome != Outcome::Ok;
        if failed {
            self.counters.failures += 1;
        }
        let queued = f64::from(self.local[i]) + self.predicted_others(i, now);
        self.latency[i].observe(latency_ms, queued, failed, now);
        self.recache(i, now);
        Ok(())
    }

    /// This balancer's requests in flight at each backend now.
    pub fn in_flight(&self) -> &[u32] {
        &self.local
    }

    /// What to publish in our record: per backend, the mean requests in flight since the
    /// last call (a time average, steadier than one sample). Remembers it as published.
    pub fn publish(&mut self, now_ms: u64) -> &[f64] {
        let now = self.clock(now_ms);
        self.advance_area(now);
        let span = now.saturating_sub(self.area_from_ms) as f64;
        for i in 0..self.len() {
            self.published[i] = if span > 0.0 {
                self.area[i] / span
            } else {
                f64::from(self.local[i])
            };
            self.area[i] = 0.0;
        }
        self.area_from_ms = now;
        &self.published
    }

    /// Takes the merged requests in flight per backend (every record summed, ours
    /// included, as [`crate::mesh::Settlement::queue`] holds them) and the number of
    /// other balancers that published load, and recomputes the weights and, when
    /// `records_changed`, the capacity signals.
    pub fn refresh(
        &mut self,
        merged: &[f64],
        peers: usize,
        records_changed: bool,
        now_ms: u64,
    ) -> Result<(), BalancerError> {
        if merged.len() != self.len() {
            return Err(BalancerError::Length {
                what: "merged load",
                expected: self.len(),
                got: merged.len(),
            });
        }
        if let Some(&v) = merged.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
            return Err(BalancerError::BadValue {
                what: "merged load",
                value: v,
            });
        }
        let now = self.clock(now_ms);
        let layers = self.config.layers;
        for i in 0..self.len() {
            let others = if layers.shared {
                (merged[i] - self.published[i]).max(0.0)
            } else {
                0.0
            };
            self.others[i].update(others, self.published[i], now);
        }
        self.peers = if layers.shared { peers as f64 } else { 0.0 };
        let n = self.len() as f64;
        let mut inputs = [0.0; LAW_INPUTS.len()];
        for i in 0..self.len() {
            self.target[i] = if layers.law {
                let b = &self.latency[i];
                inputs[0] = f64::from(self.local[i]) + self.predicted_others(i, now);
                inputs[1] = f64::from(self.local[i]);
                inputs[2] = b.svc_ms(layers.filter);
                inputs[3] = b.ewma_latency;
                inputs[4] = b.sd(layers.filter, now);
                inputs[5] = b.err;
                inputs[6] = self.base[i];
                inputs[7] = n;
                match self.law.eval(&inputs) {
                    Ok(w) if w.is_finite() && w > 0.0 => w,
                    Ok(_) => 0.0,
                    Err(_) => {
                        self.counters.law_faults += 1;
                        0.0
                    }
                }
            } else {
                self.base[i]
            };
        }
        // Weights are shares: the law's scale does not matter, only its ratios.
        let total: f64 = self.target.iter().sum();
        let mut max_w: f64 = 0.0;
        for i in 0..self.len() {
            let target = if total > 0.0 {
                self.target[i] / total
            } else {
                1.0 / n
            };
            self.weight[i] = if layers.damping {
                self.weight[i] + self.config.coupling * (target - self.weight[i])
            } else {
                target
            };
            max_w = max_w.max(self.weight[i]);
        }
        if max_w > 0.0 {
            for w in &mut self.weight {
                *w = w.max(MIN_WEIGHT_SHARE * max_w);
            }
        }
        self.rebuild_cumulative();
        for i in 0..self.len() {
            self.recache(i, now);
        }
        if records_changed {
            if layers.capacity && layers.shared {
                capacity::signals(
                    &self.config.capacity,
                    &self.graph,
                    merged,
                    &mut self.stress,
                    &mut self.signals,
                );
            } else {
                self.signals.clear();
            }
        }
        Ok(())
    }

    fn rebuild_cumulative(&mut self) {
        let mut acc = 0.0;
        for (c, w) in self.cumulative.iter_mut().zip(&self.weight) {
            acc += w;
            *c = acc;
        }
    }

    fn predicted_others(&self, i: usize, now: u64) -> f64 {
        let filter = self.config.layers.filter;
        let tau = self.latency[i].ewma_latency;
        self.others[i].level(filter, now, self.config.info_age_ms, tau)
    }

    fn draw(&mut self) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let n = self.len();
        if !(total > 0.0) {
            return self.rng.below(n as u64) as usize;
        }
        let x = self.rng.next_f64() * total;
        self.cumulative.partition_point(|&c| c <= x).min(n - 1)
    }

    /// Recomputes backend `i`'s part of the per-request cost that does not change with
    /// every request (so `pick` does arithmetic only): the delay per request, optimistic
    /// by one standard deviation of its belief (a backend not measured for a while gets
    /// tried again rather than written off for good), and the others' term, both as of
    /// now (the last refresh or answer).
    fn recache(&mut self, i: usize, now: u64) {
        let filter = self.config.layers.filter;
        let b = &self.latency[i];
        let svc = b.svc_ms(filter);
        self.unit[i] = svc * (-b.sd(filter, now)).exp();
        self.others_term[i] =
            self.others[i].decision_term(filter, self.peers, self.config.info_age_ms, svc);
    }

    /// The expected delay of one more request at backend `i`, ms.
    fn cost(&self, i: usize) -> f64 {
        let queue = (f64::from(self.local[i]) + self.others_term[i]).max(0.0);
        (queue + 1.0) * self.unit[i]
    }

    /// The backend for the next request (call [`Balancer::started`] when it is sent).
    /// `None` only when there are no backends.
    pub fn pick(&mut self, now_ms: u64) -> Option<u32> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        self.clock(now_ms);
        self.counters.picks += 1;
        let a = self.draw();
        if n == 1 {
            return Some(0);
        }
        let mut best = (a, self.cost(a));
        for _ in 1..self.config.choices.min(n as u32) {
            let mut b = self.draw();
            for _ in 0..3 {
                if b != best.0 {
                    break;
                }
                b = self.draw();
            }
            let c = self.cost(b);
            if c < best.1 {
                best = (b, c);
            }
        }
        Some(best.0 as u32)
    }

    /// The current weights, one per backend, summing to 1 (uniform before any refresh).
    pub fn weights(&self, out: &mut [f64]) -> Result<(), BalancerError> {
        if out.len() != self.len() {
            return Err(BalancerError::Length {
                what: "weights buffer",
                expected: self.len(),
                got: out.len(),
            });
        }
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        for (o, w) in out.iter_mut().zip(&self.weight) {
            *o = if total > 0.0 {
                w / total
            } else {
                1.0 / self.base.len() as f64
            };
        }
        Ok(())
    }

    /// The delay one request adds at `backend` (ms), and the others' predicted requests
    /// there.
    pub fn estimate(&self, backend: u32) -> Result<(f64, f64), BalancerError> {
        let i = self.index(backend)?;
        Ok((
            self.latency[i].svc_ms(self.config.layers.filter),
            self.predicted_others(i, self.clock_ms),
        ))
    }

    /// The capacity signals of the last refresh with changed records (L4).
    pub fn signals(&self) -> &[CapacitySignal] {
        &self.signals
    }
}

#[cfg(test)]
mod tests;
