//! Many independent dispatchers in front of heterogeneous servers, open-loop Poisson
//! load: the balancing policies side by side, with the library's own balancer for Shivya.
//!
//! Model. Server `i` serves one job at a time (FIFO, exponential service) at rate
//! `μ_i = base · {0.5, 1, 2}[i mod 3]` jobs/s (all `base` in the *equal* scenario). Jobs
//! arrive in one Poisson stream of rate `ρ · Σμ` at a uniformly random dispatcher, which
//! sends each to a server at once. Sojourn is completion minus arrival (including any
//! probe round trip and refusals). Jobs arriving in the first fifth (warm-up) are not
//! measured; measured jobs still queued at the end are counted as unfinished, and jobs
//! lost to a failing server as lost.
//!
//! Scenarios: *steady* (heterogeneous), *equal*, *slowdown* (server 0 becomes 10× slower
//! halfway), *flash* (the arrival rate is 1.5× between 50 % and 60 % of the run) and
//! *failure* (server 0 fails halfway: its queue is lost, and jobs sent to it are refused
//! one round trip later and dispatched again, at most three times).
//!
//! Policies, each with what it knows (every one knows the servers' capacities, as nginx's
//! `weight=` would tell it):
//! * `round-robin` — each dispatcher cycles through the servers (nginx's default).
//! * `weighted random` — capacity-weighted choice; no load information.
//! * `least-requests` — each dispatcher's own requests in flight per unit of capacity
//!   (nginx `least_conn`, Envoy's LEAST_REQUEST: local only).
//! * `p2c stale` — two random servers, the smaller `(q + 1)/μ` by the mesh's merged view
//!   (the very records Shivya reads, as old as Shivya's).
//! * `p2c fresh` — two random servers probed when the job arrives (two probes and two
//!   replies per job, and one round trip before the job is sent).
//! * `prequal` — Prequal's hot-cold rule: each dispatcher keeps a pool of at most 16 probe
//!   answers (requests in flight and expected wait), refreshed by two asynchronous probes
//!   per job (4 messages); among answers younger than 50 ms, the lowest expected wait
//!   among the cold (in flight below the pool's 84th percentile), else the fewest in
//!   flight; a used answer is dropped.
//! * `jsq (perfect)` — the smallest `(q + 1)/μ` with exact, instant knowledge: the bound.
//! * `shivya` — every dispatcher is a mesh node (`NodeState` over the deterministic
//!   network simulator) and asks its own `pick()`; it reports every start and finish.
//!   The ablations switch one layer off each (`shivya −L1`, `−L2`, `−L3`) or the shared
//!   view altogether (`shivya local`: the same policy on this dispatcher's own
//!   information only).
//!
//! Messages are counted per dispatcher per second: mesh frames for the mesh policies
//! (BELIEF frames included), probes and replies for the probing ones.

use crate::report::{fmt_stat, percentile, Table};
use shivya_core::balancer::{BalancerConfig, Layers, Outcome};
use shivya_core::mesh::sim::{NetConfig, Sim};
use shivya_core::mesh::{NodeConfig, WorkloadTopology};
use shivya_core::p2p::NodeId;
use shivya_core::rng::Rng;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

/// The policies compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Cycle through servers, per dispatcher.
    RoundRobin,
    /// Capacity-weighted random choice.
    WeightedRandom,
    /// Fewest own requests in flight per unit of capacity.
    LeastRequests,
    /// Power of two choices on the mesh's view.
    P2cStale,
    /// Power of two choices with two probes per job.
    P2cFresh,
    /// Prequal's hot-cold rule over an asynchronous probe pool.
    Prequal,
    /// Exact shortest expected delay.
    JsqPerfect,
    /// The library's balancer, every layer on.
    Shivya,
    /// Without L1 (plain averages, reports taken as they are).
    ShivyaNoFilter,
    /// Without L2 (configured weights instead of the law).
    ShivyaNoLaw,
    /// Without L3 (weights jump to the law's target).
    ShivyaNoDamping,
    /// Without the shared view: the same policy on local information only.
    ShivyaLocal,
}

impl Policy {
    /// Every policy, in table order.
    pub const ALL: [Policy; 12] = [
        Policy::RoundRobin,
        Policy::WeightedRandom,
        Policy::LeastRequests,
        Policy::P2cStale,
        Policy::P2cFresh,
        Policy::Prequal,
        Policy::JsqPerfect,
        Policy::Shivya,
        Policy::ShivyaNoFilter,
        Policy::ShivyaNoLaw,
        Policy::ShivyaNoDamping,
        Policy::ShivyaLocal,
    ];

    /// Table name.
    pub fn name(self) -> &'static str {
        match self {
            Policy::RoundRobin => "round-robin",
            Policy::WeightedRandom => "weighted random",
            Policy::LeastRequests => "least-requests",
            Policy::P2cStale => "p2c stale",
            Policy::P2cFresh => "p2c fresh",
            Policy::Prequal => "prequal",
            Policy::JsqPerfect => "jsq (perfect)",
            Policy::Shivya => "shivya",
            Policy::ShivyaNoFilter => "shivya -L1",
            Policy::ShivyaNoLaw => "shivya -L2",
            Policy::ShivyaNoDamping => "shivya -L3",
            Policy::ShivyaLocal => "shivya local",
        }
    }

    /// The policy with this table name.
    pub fn from_name(name: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.name() == name)
    }

    fn layers(self) -> Option<Layers> {
        let all = Layers::default();
        Some(match self {
            Policy::Shivya => all,
            Policy::ShivyaNoFilter => Layers {
                filter: false,
                ..all
            },
            Policy::ShivyaNoLaw => Layers { law: false, ..all },
            Policy::ShivyaNoDamping => Layers {
                damping: false,
                ..all
            },
            Policy::ShivyaLocal => Layers {
                shared: false,
                ..all
            },
            Policy::P2cStale => all,
            _ => return None,
        })
    }

    fn uses_mesh(self) -> bool {
        self.layers().is_some() && self != Policy::ShivyaLocal
    }
}

/// What happens during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// Heterogeneous servers, constant load.
    Steady,
    /// Equal servers.
    Equal,
    /// Server 0 turns 10× slower halfway.
    Slowdown,
    /// 1.5× the arrival rate between 50 % and 60 % of the run.
    Flash,
    /// Server 0 fails halfway.
    Failure,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 5] = [
        Scenario::Steady,
        Scenario::Equal,
        Scenario::Slowdown,
        Scenario::Flash,
        Scenario::Failure,
    ];

    /// Table name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Steady => "steady",
            Scenario::Equal => "equal",
            Scenario::Slowdown => "slowdown",
            Scenario::Flash => "flash crowd",
            Scenario::Failure => "failure",
        }
    }

    /// The scenario with this table name (or its first word).
    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL
            .into_iter()
            .find(|s| s.name() == name || s.name().split(' ').next() == Some(name))
    }
}

/// One run's settings.
#[derive(Debug, Clone, Copy)]
pub struct ClusterConfig {
    /// Servers.
    pub n: usize,
    /// Dispatchers.
    pub dispatchers: usize,
    /// Offered load ρ (arrival rate over total service rate).
    pub load: f64,
    /// What happens.
    pub scenario: Scenario,
    /// Simulated time with jobs, ms (the first fifth is warm-up).
    pub duration_ms: u64,
    /// The mesh's gossip and layer period, ms.
    pub period_ms: u64,
    /// Service rate of the middle class, jobs/s.
    pub base_rate: f64,
    /// Round trip of a probe or a refusal, ms.
    pub rtt_ms: f64,
    /// Seed of arrivals, service times and choices (identical across policies).
    pub seed: u64,
    /// Candidates per Shivya pick (the balancer's `choices`).
    pub choices: u32,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            n: 8,
            dispatchers: 8,
            load: 0.9,
            scenario: Scenario::Steady,
            duration_ms: 20_000,
            period_ms: 50,
            base_rate: 100.0,
            rtt_ms: 0.5,
            seed: 1,
            choices: BalancerConfig::default().choices,
        }
    }
}

/// One run's measurements.
#[derive(Debug, Clone)]
pub struct ClusterResult {
    /// Policy.
    pub policy: Policy,
    /// Settings.
    pub config: ClusterConfig,
    /// Measured jobs completed.
    pub completed: usize,
    /// Measured jobs still queued or in transit at the end.
    pub unfinished: usize,
    /// Measured jobs lost (a failed server's queue, or refused three times).
    pub lost: usize,
    /// Median sojourn, ms.
    pub p50_ms: f64,
    /// 99th percentile sojourn, ms.
    pub p99_ms: f64,
    /// 99th percentile sojourn of jobs arriving in the second after the scenario's event
    /// (slowdown, flash, failure; NaN for the others).
    pub p99_event_ms: f64,
    /// Messages per dispatcher per second.
    pub msgs_per_node_s: f64,
    /// Mean age of the other dispatchers' records a mesh dispatcher held, ms (NaN
    /// without a mesh).
    pub info_age_ms: f64,
}

/// Service rate of server `i`, jobs/s.
pub fn service_rate(cfg: &ClusterConfig, i: usize) -> f64 {
    match cfg.scenario {
        Scenario::Equal => cfg.base_rate,
        _ => cfg.base_rate * [0.5, 1.0, 2.0][i % 3],
    }
}

/// The workload graph over the servers: complete up to 8, otherwise a ring lattice
/// joining each server to the 4 next on each side (L4 diffuses along it).
pub fn topology(n: usize) -> WorkloadTopology {
    if n <= 8 {
        return WorkloadTopology::complete(n as u32).unwrap_or_default();
    }
    let mut edges = Vec::new();
    for u in 0..n as u32 {
        for d in 1..=4u32 {
            let v = (u + d) % n as u32;
            let e = (u.min(v), u.max(v));
            if !edges.contains(&e) {
                edges.push(e);
            }
        }
    }
    edges.sort_unstable();
    WorkloadTopology::new(n as u32, &edges).unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Job {
    /// Arrival time, as f64 bits.
    arrived: u64,
    /// When it was last sent to a server, as f64 bits.
    sent: u64,
    dispatcher: u32,
    tries: u8,
}

impl Job {
    fn arrived(&self) -> f64 {
        f64::from_bits(self.arrived)
    }
    fn sent(&self) -> f64 {
        f64::from_bits(self.sent)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// The next arrival of the Poisson stream.
    Arrival,
    /// A server finishes its job in service (`epoch` guards against a failure since).
    Departure { server: u32, epoch: u32 },
    /// A job reaches a server (after a probe round trip).
    Deliver { server: u32, job: Job },
    /// A refusal reaches the dispatcher.
    Refused { server: u32, job: Job },
    /// A probe answer reaches a dispatcher (Prequal).
    ProbeAnswer {
        dispatcher: u32,
        server: u32,
        in_flight: u32,
        wait_bits: u64,
    },
}

#[derive(Debug, Clone, Copy)]
struct ProbeAnswer {
    server: u32,
    in_flight: u32,
    wait_ms: f64,
    at: f64,
}

struct World {
    /// Live service rates (the scenario changes them).
    mu: Vec<f64>,
    /// The capacities the policies are configured with (nginx's `weight=`): the rates at
    /// the start. Only JSQ (the bound) and the servers' own probe answers see `mu`.
    config_mu: Vec<f64>,
    failed: Vec<bool>,
    epoch: Vec<u32>,
    queue: Vec<VecDeque<Job>>,
    heap: BinaryHeap<Reverse<(u64, u64, Event)>>,
    seq: u64,
    rng: Rng,
    service_rng: Rng,
    choice_rng: Rng,
    now: f64,
    warmup: f64,
    sojourn: Vec<f64>,
    event_sojourn: Vec<f64>,
    event_window: Option<(f64, f64)>,
    lost: usize,
    probes: u64,
}

fn exp(rng: &mut Rng, rate: f64) -> f64 {
    -(1.0 - rng.next_f64()).ln() / rate
}

impl World {
    fn schedule(&mut self, at: f64, ev: Event) {
        self.seq += 1;
        // Non-negative doubles order like their bit patterns.
        self.heap.push(Reverse((at.to_bits(), self.seq, ev)));
    }

    fn measured(&self, job: &Job) -> bool {
        job.arrived() >= self.warmup
    }

    fn start_service(&mut self, server: usize) {
        let s = exp(&mut self.service_rng, self.mu[server]);
        let epoch = self.epoch[server];
        self.schedule(
            self.now + s,
            Event::Departure {
                server: server as u32,
                epoch,
            },
        );
    }

    fn done(&mut self, job: &Job) {
        if self.measured(job) {
            let s = self.now - job.arrived();
            self.sojourn.push(s);
            if let Some((a, b)) = self.event_window {
                if job.arrived() >= a && job.arrived() < b {
                    self.event_sojourn.push(s);
                }
            }
        }
    }

    fn lose(&mut self, job: &Job) {
        if self.measured(job) {
            self.lost += 1;
        }
    }
}

/// What a dispatcher decides with.
struct Dispatch {
    policy: Policy,
    rr: Vec<usize>,
    /// Own requests in flight per dispatcher and server (least-requests).
    own: Vec<Vec<u32>>,
    cumulative: Vec<f64>,
    /// Mesh view per dispatcher (p2c stale).
    view: Vec<Vec<f64>>,
    pool: Vec<Vec<ProbeAnswer>>,
}

fn check(cfg: &ClusterConfig) -> Result<(), String> {
    if cfg.n == 0 || cfg.n > 1 << 20 {
        return Err(format!("{} servers: need 1 to 2^20", cfg.n));
    }
    if cfg.dispatchers == 0 || cfg.dispatchers > 4096 {
        return Err(format!("{} dispatchers: need 1 to 4096", cfg.dispatchers));
    }
    for (what, v) in [
        ("load", cfg.load),
        ("service rate", cfg.base_rate),
        ("rtt", cfg.rtt_ms),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return Err(format!("{what} {v} must be finite and positive"));
        }
    }
    if cfg.period_ms == 0 || cfg.duration_ms == 0 {
        return Err("period and duration must be positive".into());
    }
    Ok(())
}

/// Runs one policy. Identical seeds give identical arrival and service streams.
pub fn run(policy: Policy, cfg: &ClusterConfig) -> Result<ClusterResult, String> {
    check(cfg)?;
    let (n, d) = (cfg.n, cfg.dispatchers);
    let mu: Vec<f64> = (0..n).map(|i| service_rate(cfg, i) / 1000.0).collect();
    let mean_mu = mu.iter().sum::<f64>() / n as f64;
    let lambda = cfg.load * mu.iter().sum::<f64>();
    let end = cfg.duration_ms as f64;
    let half = end / 2.0;
    let event_window = match cfg.scenario {
        Scenario::Slowdown | Scenario::Failure => Some((half, half + 1_000.0)),
        Scenario::Flash => Some((half, half + 1_000.0)),
        _ => None,
    };
    let mut w = World {
        mu: mu.clone(),
        config_mu: mu.clone(),
        failed: vec![false; n],
        epoch: vec![0; n],
        queue: vec![VecDeque::new(); n],
        heap: BinaryHeap::new(),
        seq: 0,
        rng: Rng::new(cfg.seed),
        service_rng: Rng::new(cfg.seed ^ 0x5eed),
        choice_rng: Rng::new(cfg.seed ^ 0xc401ce),
        now: 0.0,
        warmup: end / 5.0,
        sojourn: Vec::new(),
        event_sojourn: Vec::new(),
        event_window,
        lost: 0,
        probes: 0,
    };
    let mut cumulative = Vec::with_capacity(n);
    let mut acc = 0.0;
    for m in &mu {
        acc += m;
        cumulative.push(acc);
    }
    let mut ds = Dispatch {
        policy,
        rr: (0..d).map(|k| k * n / d).collect(),
        own: vec![vec![0; n]; d],
        cumulative,
        view: vec![vec![0.0; n]; if policy == Policy::P2cStale { d } else { 0 }],
        pool: vec![Vec::new(); if policy == Policy::Prequal { d } else { 0 }],
    };

    // Mesh dispatchers join before jobs start; mesh time = job time + MESH_WARMUP_MS.
    const MESH_WARMUP_MS: u64 = 3_000;
    let topo = topology(n);
    let mut mesh: Option<Sim> = None;
    if let Some(layers) = policy.layers() {
        let period = cfg.period_ms;
        let net = if policy.uses_mesh() {
            NetConfig::default()
        } else {
            // A local-only balancer needs no peers: every datagram is dropped.
            NetConfig {
                loss: 1.0,
                ..NetConfig::default()
            }
        };
        let mut sim = Sim::new(d, cfg.seed, net, |i| NodeConfig {
            seed: 1_000 + i as u64,
            topology: topo.clone(),
            gossip_interval_ms: period,
            step_interval_ms: period,
            balancer: BalancerConfig {
                layers,
                info_age_ms: period as f64,
                latency_prior_ms: 1.0 / mean_mu,
                choices: cfg.choices,
                ..BalancerConfig::default()
            },
            ..NodeConfig::default()
        })
        .map_err(|e| e.to_string())?;
        for node in &mut sim.nodes {
            for (s, m) in mu.iter().enumerate() {
                node.set_backend_weight(s as u32, m / mean_mu)
                    .map_err(|e| e.to_string())?;
            }
        }
        sim.run_until(MESH_WARMUP_MS);
        mesh = Some(sim);
    }
    let frames = |m: &Option<Sim>| -> u64 {
        m.as_ref()
            .map_or(0, |m| (0..m.nodes.len()).map(|i| m.frames_sent(i)).sum())
    };
    let mut frames_at_warmup = None;
    let mut probes_at_warmup = 0;
    // (origin, version) → when its node first held it, for the information age.
    let mut first_seen: HashMap<(NodeId, u64), u64> = HashMap::new();
    let (mut age_sum, mut age_count) = (0.0f64, 0u64);

    let first = exp(&mut w.rng, lambda);
    w.schedule(first, Event::Arrival);
    let mut boundary = 0u64;
    let mut mesh_ms = 0u64;
    let mut scenario_done = false;
    while (boundary as f64) < end {
        if let Some(sim) = mesh.as_mut() {
            sim.run_until(MESH_WARMUP_MS + boundary);
            mesh_ms = boundary;
            let now = sim.now;
            for node in &sim.nodes {
                let own = node.own_record();
                first_seen.entry((own.origin, own.version)).or_insert(now);
            }
            if policy.uses_mesh() && boundary as f64 >= w.warmup {
                for node in &sim.nodes {
                    let me = node.id();
                    for r in node.records().iter().filter(|r| r.origin != me) {
                        if let Some(t) = first_seen.get(&(r.origin, r.version)) {
                            age_sum += (now - t) as f64;
                            age_count += 1;
                        }
                    }
                }
            }
            if policy == Policy::P2cStale {
                for (k, row) in ds.view.iter_mut().enumerate() {
                    let s = sim.nodes[k].settlement().map_err(|e| e.to_string())?;
                    row.copy_from_slice(&s.queue);
                }
            }
        }
        if frames_at_warmup.is_none() && boundary as f64 >= w.warmup {
            frames_at_warmup = Some(frames(&mesh));
            probes_at_warmup = w.probes;
        }
        if !scenario_done && boundary as f64 >= half {
            scenario_done = true;
            match cfg.scenario {
                Scenario::Slowdown => w.mu[0] /= 10.0,
                Scenario::Failure => {
                    w.failed[0] = true;
                    w.epoch[0] += 1;
                    let lost: Vec<Job> = w.queue[0].drain(..).collect();
                    w.now = boundary as f64;
                    for job in lost {
                        w.lose(&job);
                        finish(
                            &mut ds,
                            &mut mesh,
                            &w,
                            0,
                            &job,
                            Outcome::Failed,
                            MESH_WARMUP_MS,
                        );
                    }
                }
                _ => {}
            }
        }
        boundary += cfg.period_ms;
        let until = (boundary as f64).min(end);
        while let Some(&Reverse((at, _, ev))) = w.heap.peek() {
            let at = f64::from_bits(at);
            if at >= until {
                break;
            }
            w.heap.pop();
            w.now = at;
            if let Some(sim) = mesh.as_mut() {
                let t = at as u64;
                if t > mesh_ms {
                    sim.run_until(MESH_WARMUP_MS + t);
                    mesh_ms = t;
                }
            }
            match ev {
                Event::Arrival => {
                    let flash = cfg.scenario == Scenario::Flash && at >= half && at < end * 0.6;
                    let rate = if flash { 1.5 * lambda } else { lambda };
                    let dt = exp(&mut w.rng, rate);
                    w.schedule(at + dt, Event::Arrival);
                    let k = w.rng.below(d as u64) as u32;
                    let job = Job {
                        arrived: at.to_bits(),
                        sent: at.to_bits(),
                        dispatcher: k,
                        tries: 0,
                    };
                    dispatch(&mut ds, &mut mesh, &mut w, cfg, job, MESH_WARMUP_MS);
                }
                Event::Deliver { server, job } => deliver(&mut w, cfg, server as usize, job),
                Event::Departure { server, epoch } => {
                    let s = server as usize;
                    if epoch != w.epoch[s] || w.failed[s] {
                        continue;
                    }
                    if let Some(job) = w.queue[s].pop_front() {
                        w.done(&job);
                        finish(&mut ds, &mut mesh, &w, s, &job, Outcome::Ok, MESH_WARMUP_MS);
                    }
                    if !w.queue[s].is_empty() {
                        w.start_service(s);
                    }
                }
                Event::Refused { server, job } => {
                    finish(
                        &mut ds,
                        &mut mesh,
                        &w,
                        server as usize,
                        &job,
                        Outcome::Refused,
                        MESH_WARMUP_MS,
                    );
                    if job.tries >= 3 {
                        w.lose(&job);
                    } else {
                        let again = Job {
                            tries: job.tries + 1,
                            sent: at.to_bits(),
                            ..job
                        };
                        dispatch(&mut ds, &mut mesh, &mut w, cfg, again, MESH_WARMUP_MS);
                    }
                }
                Event::ProbeAnswer {
                    dispatcher,
                    server,
                    in_flight,
                    wait_bits,
                } => {
                    let pool = &mut ds.pool[dispatcher as usize];
                    if pool.len() >= 16 {
                        pool.remove(0);
                    }
                    pool.push(ProbeAnswer {
                        server,
                        in_flight,
                        wait_ms: f64::from_bits(wait_bits),
                        at,
                    });
                }
            }
        }
        w.now = until;
    }
    let unfinished = w
        .queue
        .iter()
        .flat_map(|q| q.iter())
        .filter(|j| w.measured(j))
        .count()
        + w.heap
            .iter()
            .filter(|Reverse((_, _, e))| match e {
                Event::Deliver { job, .. } | Event::Refused { job, .. } => w.measured(job),
                _ => false,
            })
            .count();
    let secs = (end - w.warmup) / 1000.0;
    let msgs = match policy {
        Policy::RoundRobin
        | Policy::WeightedRandom
        | Policy::LeastRequests
        | Policy::ShivyaLocal => 0.0,
        Policy::JsqPerfect => 2.0 * n as f64 * (w.sojourn.len() as f64 / secs) / d as f64,
        Policy::P2cFresh | Policy::Prequal => {
            2.0 * (w.probes - probes_at_warmup) as f64 / d as f64 / secs
        }
        _ => {
            let after = frames(&mesh);
            (after - frames_at_warmup.unwrap_or(after)) as f64 / d as f64 / secs
        }
    };
    let mut s = std::mem::take(&mut w.sojourn);
    s.sort_by(f64::total_cmp);
    let mut e = std::mem::take(&mut w.event_sojourn);
    e.sort_by(f64::total_cmp);
    Ok(ClusterResult {
        policy,
        config: *cfg,
        completed: s.len(),
        unfinished,
        lost: w.lost,
        p50_ms: percentile(&s, 0.5),
        p99_ms: percentile(&s, 0.99),
        p99_event_ms: percentile(&e, 0.99),
        msgs_per_node_s: msgs,
        info_age_ms: if age_count > 0 {
            age_sum / age_count as f64
        } else {
            f64::NAN
        },
    })
}

/// Tells the dispatcher (and its balancer) that `job` at `server` ended.
fn finish(
    ds: &mut Dispatch,
    mesh: &mut Option<Sim>,
    w: &World,
    server: usize,
    job: &Job,
    outcome: Outcome,
    offset: u64,
) {
    let k = job.dispatcher as usize;
    if let Some(own) = ds.own.get_mut(k) {
        own[server] = own[server].saturating_sub(1);
    }
    if let Some(sim) = mesh.as_mut() {
        let latency = (w.now - job.sent()).max(0.0);
        let now = offset + w.now as u64;
        // The simulator only reports jobs it started: an error here is a bug.
        if let Err(e) = sim.nodes[k].request_finished(server as u32, latency, outcome, now) {
            eprintln!("cluster: finish refused: {e}");
        }
    }
}

fn cost(w: &World, s: usize) -> f64 {
    (w.queue[s].len() + 1) as f64 / w.mu[s]
}

fn two(w: &mut World, n: usize) -> (usize, usize) {
    let a = w.choice_rng.below(n as u64) as usize;
    if n == 1 {
        return (a, a);
    }
    let mut b = w.choice_rng.below(n as u64 - 1) as usize;
    if b >= a {
        b += 1;
    }
    (a, b)
}

fn dispatch(
    ds: &mut Dispatch,
    mesh: &mut Option<Sim>,
    w: &mut World,
    cfg: &ClusterConfig,
    job: Job,
    offset: u64,
) {
    let n = w.mu.len();
    let k = job.dispatcher as usize;
    let mut delay = 0.0;
    let target = match ds.policy {
        Policy::RoundRobin => {
            ds.rr[k] = (ds.rr[k] + 1) % n;
            ds.rr[k]
        }
        Policy::WeightedRandom => {
            let total = ds.cumulative[n - 1];
            let x = w.choice_rng.next_f64() * total;
            ds.cumulative.partition_point(|&c| c <= x).min(n - 1)
        }
        Policy::LeastRequests => {
            // Ties broken at random from a random start, as nginx does with weights.
            let start = w.choice_rng.below(n as u64) as usize;
            let mut best = start;
            for j in 0..n {
                let s = (start + j) % n;
                let c = |s: usize| f64::from(ds.own[k][s] + 1) / w.config_mu[s];
                if c(s) < c(best) {
                    best = s;
                }
            }
            best
        }
        Policy::P2cStale => {
            let (a, b) = two(w, n);
            let c = |s: usize| (ds.view[k][s] + 1.0) / w.config_mu[s];
            if c(b) < c(a) {
                b
            } else {
                a
            }
        }
        Policy::P2cFresh => {
            let (a, b) = two(w, n);
            w.probes += 2;
            delay = cfg.rtt_ms;
            // The probes return queue lengths; capacities are the configured ones.
            let c = |s: usize| (w.queue[s].len() + 1) as f64 / w.config_mu[s];
            if c(b) < c(a) {
                b
            } else {
                a
            }
        }
        Policy::Prequal => {
            // Two asynchronous probes per job refresh the pool.
            for _ in 0..2 {
                let s = w.choice_rng.below(n as u64) as usize;
                w.probes += 1;
                let in_flight = w.queue[s].len() as u32;
                let wait = if w.failed[s] {
                    f64::INFINITY
                } else {
                    cost(w, s)
                };
                w.schedule(
                    w.now + cfg.rtt_ms,
                    Event::ProbeAnswer {
                        dispatcher: k as u32,
                        server: s as u32,
                        in_flight,
                        wait_bits: wait.min(1e12).to_bits(),
                    },
                );
            }
            prequal_pick(&mut ds.pool[k], w, n)
        }
        Policy::JsqPerfect => (0..n)
            .filter(|&s| !w.failed[s])
            .min_by(|&a, &b| cost(w, a).total_cmp(&cost(w, b)))
            .unwrap_or(0),
        _ => {
            let now = offset + w.now as u64;
            match mesh.as_mut() {
                Some(sim) => sim.nodes[k].pick(now).unwrap_or(0) as usize,
                None => 0,
            }
        }
    };
    if let Some(own) = ds.own.get_mut(k) {
        own[target] += 1;
    }
    if let Some(sim) = mesh.as_mut() {
        let now = offset + w.now as u64;
        if let Err(e) = sim.nodes[k].request_started(target as u32, now) {
            eprintln!("cluster: start refused: {e}");
        }
    }
    let job = Job {
        sent: w.now.to_bits(),
        ..job
    };
    if delay > 0.0 {
        w.schedule(
            w.now + delay,
            Event::Deliver {
                server: target as u32,
                job,
            },
        );
    } else {
        deliver(w, cfg, target, job);
    }
}

fn prequal_pick(pool: &mut Vec<ProbeAnswer>, w: &mut World, n: usize) -> usize {
    pool.retain(|p| w.now - p.at <= 50.0);
    if pool.is_empty() {
        return w.choice_rng.below(n as u64) as usize;
    }
    let mut rif: Vec<u32> = pool.iter().map(|p| p.in_flight).collect();
    rif.sort_unstable();
    let hot_from = rif[((rif.len() as f64 * 0.84) as usize).min(rif.len() - 1)];
    let cold = pool
        .iter()
        .enumerate()
        .filter(|(_, p)| p.in_flight < hot_from)
        .min_by(|a, b| a.1.wait_ms.total_cmp(&b.1.wait_ms));
    let i = match cold {
        Some((i, _)) => i,
        None => pool
            .iter()
            .enumerate()
            .min_by_key(|(_, p)| p.in_flight)
            .map_or(0, |(i, _)| i),
    };
    pool.swap_remove(i).server as usize
}

fn deliver(w: &mut World, cfg: &ClusterConfig, server: usize, job: Job) {
    if w.failed[server] {
        w.schedule(
            w.now + cfg.rtt_ms,
            Event::Refused {
                server: server as u32,
                job,
            },
        );
        return;
    }
    w.queue[server].push_back(job);
    if w.queue[server].len() == 1 {
        w.start_service(server);
    }
}

/// Summary over seeds: median and range of each measure.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Policy.
    pub policy: Policy,
    /// Settings (seed of the first run).
    pub config: ClusterConfig,
    /// Runs.
    pub runs: usize,
    /// p99: median, min, max over seeds.
    pub p99: (f64, f64, f64),
    /// p50 median.
    pub p50: f64,
    /// p99 in the second after the event: median, min, max.
    pub p99_event: (f64, f64, f64),
    /// Median messages per dispatcher per second.
    pub msgs: f64,
    /// Median information age, ms.
    pub info_age_ms: f64,
    /// Total unfinished and lost jobs over the runs.
    pub unfinished: usize,
    /// Total lost.
    pub lost: usize,
}

fn median_range(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let m = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        0.5 * (v[v.len() / 2 - 1] + v[v.len() / 2])
    };
    (m, v[0], v[v.len() - 1])
}

/// Medians and ranges of runs of one policy and setting.
pub fn summarize(runs: &[ClusterResult]) -> Option<Summary> {
    let first = runs.first()?;
    Some(Summary {
        policy: first.policy,
        config: first.config,
        runs: runs.len(),
        p99: median_range(runs.iter().map(|r| r.p99_ms).collect()),
        p50: median_range(runs.iter().map(|r| r.p50_ms).collect()).0,
        p99_event: median_range(runs.iter().map(|r| r.p99_event_ms).collect()),
        msgs: median_range(runs.iter().map(|r| r.msgs_per_node_s).collect()).0,
        info_age_ms: median_range(runs.iter().map(|r| r.info_age_ms).collect()).0,
        unfinished: runs.iter().map(|r| r.unfinished).sum(),
        lost: runs.iter().map(|r| r.lost).sum(),
    })
}

/// Summaries as a table.
pub fn table(rows: &[Summary]) -> Table {
    let mut t = Table::new(&[
        "scenario",
        "D",
        "N",
        "load",
        "policy",
        "p50 ms",
        "p99 ms (median)",
        "p99 range",
        "p99 after event",
        "msgs/node/s",
        "info age ms",
        "unfinished+lost",
    ]);
    for r in rows {
        t.push(vec![
            r.config.scenario.name().to_string(),
            r.config.dispatchers.to_string(),
            r.config.n.to_string(),
            format!("{:.0}%", r.config.load * 100.0),
            r.policy.name().to_string(),
            fmt_stat(r.p50),
            fmt_stat(r.p99.0),
            format!("{}–{}", fmt_stat(r.p99.1), fmt_stat(r.p99.2)),
            fmt_stat(r.p99_event.0),
            fmt_stat(r.msgs),
            fmt_stat(r.info_age_ms),
            format!("{}", r.unfinished + r.lost),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(n: usize, d: usize, load: f64) -> ClusterConfig {
        ClusterConfig {
            n,
            dispatchers: d,
            load,
            duration_ms: 20_000,
            seed: 3,
            ..ClusterConfig::default()
        }
    }

    #[test]
    fn a_single_server_matches_the_m_m_1_formula() {
        // N = 1, μ = 50/s, ρ = 0.7: mean sojourn 1/(μ − λ) = 66.7 ms, exponential, so the
        // median is ln 2 · 66.7 = 46.2 ms and p99 = ln 100 · 66.7 = 307 ms.
        let r = run(
            Policy::WeightedRandom,
            &ClusterConfig {
                duration_ms: 2_000_000,
                ..cfg(1, 1, 0.7)
            },
        )
        .unwrap();
        assert!(r.completed > 50_000, "{r:?}");
        let mean = 1000.0 / (50.0 - 35.0);
        assert!((r.p50_ms - 2f64.ln() * mean).abs() < 0.1 * mean, "{r:?}");
        let p99 = 100f64.ln() * mean;
        assert!((r.p99_ms - p99).abs() < 0.15 * p99, "{r:?} vs {p99}");
    }

    #[test]
    fn perfect_information_beats_blind_choice_and_jobs_are_counted() {
        let c = cfg(8, 4, 0.9);
        let rr = run(Policy::RoundRobin, &c).unwrap();
        let jsq = run(Policy::JsqPerfect, &c).unwrap();
        // Round-robin overloads the slow third (0.9 · mean μ > slowest μ): its queues
        // grow; shortest expected delay keeps every queue short.
        assert!(rr.unfinished > 10 * jsq.unfinished.max(1), "{rr:?} {jsq:?}");
        assert!(jsq.p99_ms < rr.p99_ms / 5.0, "{rr:?} {jsq:?}");
        assert_eq!(rr.msgs_per_node_s, 0.0);
        assert!(rr.info_age_ms.is_nan());
    }

    #[test]
    fn runs_are_deterministic_and_every_policy_completes_jobs() {
        let c = ClusterConfig {
            duration_ms: 3_000,
            ..cfg(8, 4, 0.7)
        };
        for p in Policy::ALL {
            let a = run(p, &c).unwrap();
            let b = run(p, &c).unwrap();
            assert_eq!(a.p99_ms.to_bits(), b.p99_ms.to_bits(), "{p:?}");
            assert!(a.completed > 1_000, "{a:?}");
            if p.uses_mesh() {
                assert!(a.msgs_per_node_s > 0.0, "{a:?}");
                assert!(a.info_age_ms >= 0.0, "{a:?}");
            }
        }
    }

    #[test]
    fn a_failed_server_loses_its_queue_and_refused_jobs_go_elsewhere() {
        let c = ClusterConfig {
            scenario: Scenario::Failure,
            duration_ms: 6_000,
            ..cfg(8, 4, 0.7)
        };
        let r = run(Policy::RoundRobin, &c).unwrap();
        // Round-robin keeps sending to the failed server: every such job is refused and
        // re-sent; only the failed server's queue at the moment of failure is lost.
        assert!(r.lost > 0 && r.lost < 200, "{r:?}");
        assert!(r.completed > 2_000, "{r:?}");
        let none = run(
            Policy::RoundRobin,
            &ClusterConfig {
                scenario: Scenario::Steady,
                ..c
            },
        )
        .unwrap();
        assert_eq!(none.lost, 0);
    }
}
