//! The live demo (the README's main job): several balancers, each embedding a Shivya node
//! that meshes with the others over real UDP on 127.0.0.1, spread one open-loop load over
//! backends with fixed concurrency limits, one of which is slow and one of which turns
//! slow half-way. The same arrivals and the same job sizes go, side by side in the same
//! wall-clock window, through three local policies a user would pick instead:
//! least-requests, random-two least-requests (nginx's `random two least_conn`) and
//! round-robin. Every policy has its own copy of the backends.
//!
//! Backends are in-process servers (slots and a FIFO queue, service time = job size ×
//! the backend's current mean); time is the wall clock, and each latency is computed from
//! the scheduled arrival and completion times, so a late loop iteration delays decisions
//! but never distorts what is measured. No backend's slowness is in the configuration:
//! every policy is configured with equal weights and learns what it can from its own
//! traffic (and, for Shivya, from the other balancers' records).

use crate::report::{fmt_stat, lines, percentile, Series, Table};
use shivya_core::balancer::{BalancerConfig, CapacitySignal, Outcome};
use shivya_core::mesh::{Node, NodeConfig, WorkloadTopology};
use shivya_core::rng::Rng;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::Write;
use std::time::{Duration, Instant};

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Length of the load, in seconds.
    pub seconds: u64,
    /// Balancers (each a Shivya node for the Shivya policy).
    pub balancers: usize,
    /// Backends.
    pub backends: usize,
    /// Requests a backend serves at once.
    pub slots: usize,
    /// Mean service time of a healthy backend, in ms.
    pub service_ms: f64,
    /// How much slower the slow backends are.
    pub slowdown: f64,
    /// Offered load as a fraction of the configured capacity (every backend healthy).
    pub load: f64,
    /// Seed of arrivals, job sizes and choices.
    pub seed: u64,
    /// Redraw a live view on the terminal (otherwise a line every 5 s).
    pub live: bool,
}

impl Default for DemoConfig {
    fn default() -> DemoConfig {
        DemoConfig {
            seconds: 60,
            balancers: 8,
            backends: 6,
            slots: 4,
            service_ms: 20.0,
            slowdown: 5.0,
            load: 0.6,
            seed: 1,
            live: true,
        }
    }
}

impl DemoConfig {
    /// Refuses settings the demo cannot run.
    pub fn check(&self) -> Result<(), String> {
        let bad = |what: &str| Err(what.to_string());
        if !(1..=3_600).contains(&self.seconds) {
            return bad("--seconds must be in 1..=3600");
        }
        if !(1..=64).contains(&self.balancers) {
            return bad("--balancers must be in 1..=64");
        }
        if !(3..=48).contains(&self.backends) {
            return bad(
                "--backends must be in 3..=48 (one slow, one turning slow, the rest healthy)",
            );
        }
        if !(1..=1_000).contains(&self.slots) {
            return bad("--slots must be in 1..=1000");
        }
        if !(self.service_ms.is_finite() && (0.1..=10_000.0).contains(&self.service_ms)) {
            return bad("--service-ms must be in [0.1, 10000]");
        }
        if !(self.slowdown.is_finite() && (1.0..=100.0).contains(&self.slowdown)) {
            return bad("--slowdown must be in [1, 100]");
        }
        if !(self.load.is_finite() && self.load > 0.0 && self.load <= 2.0) {
            return bad("--load must be in (0, 2]");
        }
        if self.rate_per_s() > 20_000.0 {
            return bad("the offered load is above 20 000 requests/s: fewer or slower backends");
        }
        if self.rate_per_s() * self.seconds as f64 > 1e7 {
            return bad("more than 10 million requests in all: a shorter run or a lower load");
        }
        Ok(())
    }

    /// Offered requests per second.
    pub fn rate_per_s(&self) -> f64 {
        self.load * (self.backends * self.slots) as f64 * 1_000.0 / self.service_ms
    }

    fn half_ms(&self) -> f64 {
        self.seconds as f64 * 500.0
    }

    /// Mean service time of backend `b` at `t_ms`: backend 0 is slow throughout, backend
    /// 1 turns slow at half time.
    fn mean_service(&self, b: usize, t_ms: f64) -> f64 {
        if b == 0 || (b == 1 && t_ms >= self.half_ms()) {
            self.service_ms * self.slowdown
        } else {
            self.service_ms
        }
    }
}

/// The policies side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoPolicy {
    /// Shivya's pick over the mesh's merged view.
    Shivya,
    /// Each balancer's own requests in flight, fewest wins (ties at random).
    LeastRequests,
    /// Two at random, fewer own requests in flight wins.
    RandomTwo,
    /// Each balancer in turn.
    RoundRobin,
}

impl DemoPolicy {
    /// All, in the order shown.
    pub const ALL: [DemoPolicy; 4] = [
        DemoPolicy::Shivya,
        DemoPolicy::LeastRequests,
        DemoPolicy::RandomTwo,
        DemoPolicy::RoundRobin,
    ];

    /// Name shown.
    pub fn name(self) -> &'static str {
        match self {
            DemoPolicy::Shivya => "shivya",
            DemoPolicy::LeastRequests => "least-requests",
            DemoPolicy::RandomTwo => "random-two least-req",
            DemoPolicy::RoundRobin => "round-robin",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Arrival {
    t_ms: f64,
    balancer: usize,
    size: f64,
}

/// A completion: (time, sequence) ordered, then the backend and the arrival's index.
type Completion = (Reverse<(u64, u64)>, usize, usize);

fn key(t_ms: f64) -> u64 {
    // Times are non-negative milliseconds; microsecond resolution orders them.
    (t_ms * 1_000.0) as u64
}

/// One policy's world: its backends and its balancers' own counts.
struct World {
    policy: DemoPolicy,
    busy: Vec<usize>,
    /// Waiting arrivals (indices) per backend.
    queue: Vec<VecDeque<usize>>,
    heap: BinaryHeap<Completion>,
    seq: u64,
    /// Requests in flight per balancer per backend (what a local policy knows).
    own: Vec<Vec<u32>>,
    rr: Vec<usize>,
    rng: Rng,
    next_arrival: usize,
    /// (arrival time, latency ms, backend) of every finished request.
    done: Vec<(f64, f64, usize)>,
    /// Requests left when the run stopped (in `done` with their age at the stop).
    unfinished: usize,
}

impl World {
    fn new(policy: DemoPolicy, cfg: &DemoConfig, seed: u64) -> World {
        let (n, d) = (cfg.backends, cfg.balancers);
        World {
            policy,
            busy: vec![0; n],
            queue: vec![VecDeque::new(); n],
            heap: BinaryHeap::new(),
            seq: 0,
            own: vec![vec![0; n]; d],
            rr: (0..d).map(|k| k * n / d).collect(),
            rng: Rng::new(seed),
            next_arrival: 0,
            done: Vec::new(),
            unfinished: 0,
        }
    }

    /// Requests still queued or in service at `stop_ms` count as done at `stop_ms` (their
    /// latency is at least that): a policy is never flattered by what it left unfinished.
    fn censor(&mut self, arrivals: &[Arrival], stop_ms: f64) {
        let mut left: Vec<(usize, usize)> = self.heap.drain().map(|(_, b, j)| (b, j)).collect();
        for (b, q) in self.queue.iter_mut().enumerate() {
            left.extend(q.drain(..).map(|j| (b, j)));
        }
        self.unfinished = left.len();
        for (b, j) in left {
            let a = arrivals[j];
            self.done.push((a.t_ms, stop_ms - a.t_ms, b));
        }
    }

    fn start(&mut self, cfg: &DemoConfig, b: usize, job: usize, size: f64, t_ms: f64) {
        self.busy[b] += 1;
        let end = t_ms + size * cfg.mean_service(b, t_ms);
        self.seq += 1;
        self.heap.push((Reverse((key(end), self.seq)), b, job));
    }

    fn least(&mut self, k: usize, candidates: &[usize]) -> usize {
        let start = self.rng.below(candidates.len() as u64) as usize;
        let mut best = candidates[start];
        for j in 0..candidates.len() {
            let c = candidates[(start + j) % candidates.len()];
            if self.own[k][c] < self.own[k][best] {
                best = c;
            }
        }
        best
    }

    fn choose(&mut self, k: usize, nodes: &mut [Node], node_ms: u64) -> usize {
        let n = self.busy.len();
        match self.policy {
            DemoPolicy::Shivya => nodes[k].state_mut().pick(node_ms).map_or(0, |b| b as usize),
            DemoPolicy::LeastRequests => {
                let all: Vec<usize> = (0..n).collect();
                self.least(k, &all)
            }
            DemoPolicy::RandomTwo => {
                let a = self.rng.below(n as u64) as usize;
                let mut b = self.rng.below(n as u64 - 1) as usize;
                if b >= a {
                    b += 1;
                }
                self.least(k, &[a, b])
            }
            DemoPolicy::RoundRobin => {
                self.rr[k] = (self.rr[k] + 1) % n;
                self.rr[k]
            }
        }
    }

    /// Runs every event up to `now_ms` (load time) in time order. The nodes are told
    /// `node_ms` (their own clock, never decreasing from call to call); latencies are
    /// exact load times.
    fn advance(
        &mut self,
        cfg: &DemoConfig,
        arrivals: &[Arrival],
        nodes: &mut [Node],
        now_ms: f64,
        node_ms: u64,
    ) {
        loop {
            let next_done = self.heap.peek().map(|c| (c.0 .0 .0, c.0 .0 .1));
            let next_arr = arrivals.get(self.next_arrival).map(|a| key(a.t_ms));
            let take_arrival = match (next_arr, next_done) {
                (Some(a), Some((d, _))) => a < d,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => return,
            };
            if take_arrival {
                let a = arrivals[self.next_arrival];
                if a.t_ms > now_ms {
                    return;
                }
                self.next_arrival += 1;
                let b = self.choose(a.balancer, nodes, node_ms);
                self.own[a.balancer][b] += 1;
                if self.policy == DemoPolicy::Shivya {
                    // `b` came from this node's own pick: always a known backend.
                    let _ = nodes[a.balancer]
                        .state_mut()
                        .request_started(b as u32, node_ms);
                }
                let job = self.next_arrival - 1;
                if self.busy[b] < cfg.slots {
                    self.start(cfg, b, job, a.size, a.t_ms);
                } else {
                    self.queue[b].push_back(job);
                }
            } else {
                let (Reverse((k, _)), b, job) = match self.heap.peek() {
                    Some(c) if (c.0 .0 .0 as f64) / 1_000.0 <= now_ms => *c,
                    _ => return,
                };
                self.heap.pop();
                let t = k as f64 / 1_000.0;
                self.busy[b] -= 1;
                let job = arrivals[job];
                let own = &mut self.own[job.balancer][b];
                *own = own.saturating_sub(1);
                let latency = t - job.t_ms;
                if self.policy == DemoPolicy::Shivya {
                    let _ = nodes[job.balancer].state_mut().request_finished(
                        b as u32,
                        latency,
                        Outcome::Ok,
                        node_ms,
                    );
                }
                self.done.push((job.t_ms, latency, b));
                if let Some(next) = self.queue[b].pop_front() {
                    self.start(cfg, b, next, arrivals[next].size, t);
                }
            }
        }
    }
}

fn sorted(v: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = v.collect();
    v.sort_by(f64::total_cmp);
    v
}

/// What the demo measured.
#[derive(Debug, Clone)]
pub struct DemoResult {
    /// One row per policy: name, requests, p50, p99, p99.9, share sent to the slow backends.
    pub table: Table,
    /// (policy, p99 after warm-up, p99 in the second half).
    pub p99: Vec<(DemoPolicy, f64, f64)>,
    /// The chart: p99 per window, per policy (SVG).
    pub chart: String,
    /// Frames the Shivya nodes sent, per node per second.
    pub frames_per_node_s: f64,
}

const WINDOW_MS: f64 = 5_000.0;
/// How long after the load ends requests may still finish.
const DRAIN_MS: f64 = 5_000.0;

/// Runs the demo, drawing the live view on `out` as it goes.
pub fn run(cfg: &DemoConfig, out: &mut dyn Write) -> Result<DemoResult, String> {
    cfg.check()?;
    let (n, d) = (cfg.backends, cfg.balancers);
    let end_ms = cfg.seconds as f64 * 1_000.0;
    // The arrivals: Poisson, each to a balancer at random, with an Exp(1) job size.
    let mut rng = Rng::new(cfg.seed);
    let rate_per_ms = cfg.rate_per_s() / 1_000.0;
    let mut arrivals = Vec::new();
    let mut t = 0.0;
    loop {
        t += -(1.0 - rng.next_f64()).ln() / rate_per_ms;
        if t >= end_ms {
            break;
        }
        arrivals.push(Arrival {
            t_ms: t,
            balancer: rng.below(d as u64) as usize,
            size: -(1.0 - rng.next_f64()).ln(),
        });
    }

    // The Shivya balancers: real nodes on 127.0.0.1, joined through the first.
    let topology = WorkloadTopology::complete(n as u32).map_err(|e| e.to_string())?;
    let clock = Instant::now();
    let now = |c: &Instant| c.elapsed().as_secs_f64() * 1_000.0;
    let mut nodes: Vec<Node> = Vec::with_capacity(d);
    for k in 0..d {
        let bootstrap = nodes
            .first()
            .map(|n: &Node| vec![n.local_addr()])
            .unwrap_or_default();
        let config = NodeConfig {
            listen: "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
            seed: cfg.seed.wrapping_mul(1_000).wrapping_add(k as u64),
            bootstrap,
            topology: topology.clone(),
            balancer: BalancerConfig {
                latency_prior_ms: cfg.service_ms,
                ..BalancerConfig::default()
            },
            ..NodeConfig::default()
        };
        nodes.push(
            Node::bind(config, now(&clock) as u64)
                .map_err(|e| format!("cannot start a balancer's node on 127.0.0.1: {e}"))?,
        );
    }
    // Let the mesh form before the load starts: every balancer knows a peer (1 s at
    // least, 5 s at most); records then spread by gossip.
    let join_start = Instant::now();
    while join_start.elapsed() < Duration::from_secs(5)
        && (join_start.elapsed() < Duration::from_secs(1)
            || (d > 1 && nodes.iter().any(|n| n.status().peers == 0)))
    {
        let t = now(&clock) as u64;
        for node in &mut nodes {
            let _ = node.step(t);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let frames0: u64 = nodes.iter().map(|n| n.status().counters.frames_out).sum();

    let mut worlds: Vec<World> = DemoPolicy::ALL
        .iter()
        .map(|&p| World::new(p, cfg, cfg.seed ^ 0xc401ce))
        .collect();
    let t0 = now(&clock);
    let mut next_view = 0.0;
    let mut next_line = 0.0;
    loop {
        let wall = now(&clock);
        let mesh_t = wall as u64;
        let at = wall - t0;
        // Arrivals end at end_ms; completions go on until the drain ends.
        for w in &mut worlds {
            w.advance(cfg, &arrivals, &mut nodes, at, mesh_t);
        }
        for node in &mut nodes {
            // A failed step is counted by the node; the balancer keeps its last view.
            let _ = node.step(mesh_t);
        }
        if cfg.live && at >= next_view {
            next_view = at + 500.0;
            let _ = out.write_all(view(cfg, &worlds, &nodes, at.min(end_ms)).as_bytes());
            let _ = out.flush();
        } else if !cfg.live && at >= next_line {
            next_line = at + 5_000.0;
            let _ = writeln!(out, "{}", progress_line(cfg, &worlds, at.min(end_ms)));
        }
        if at >= end_ms
            && worlds
                .iter()
                .all(|w| w.heap.is_empty() && w.queue.iter().all(VecDeque::is_empty))
        {
            break;
        }
        if at >= end_ms + DRAIN_MS {
            // A policy that overloaded a backend has a queue it will not clear soon: stop;
            // its unfinished requests count with their age at the stop.
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let stop = now(&clock) - t0;
    for w in &mut worlds {
        w.censor(&arrivals, stop);
    }
    let elapsed_s = stop / 1_000.0;
    let frames: u64 = nodes.iter().map(|n| n.status().counters.frames_out).sum();
    let frames_per_node_s = (frames - frames0) as f64 / d as f64 / elapsed_s.max(1e-3);
    if cfg.live {
        let _ = out.write_all(view(cfg, &worlds, &nodes, end_ms).as_bytes());
    }
    Ok(summarize(cfg, &worlds, frames_per_node_s))
}

/// Warm-up excluded from the results: the first tenth of the run.
fn warm(cfg: &DemoConfig) -> f64 {
    cfg.seconds as f64 * 100.0
}

fn summarize(cfg: &DemoConfig, worlds: &[World], frames_per_node_s: f64) -> DemoResult {
    let mut table = Table::new(&[
        "policy",
        "requests",
        "unfinished at stop",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "p99 ms, 2nd half",
        "to slow backends",
    ]);
    let half = cfg.half_ms();
    let mut p99 = Vec::new();
    let windows = (cfg.seconds as f64 * 1_000.0 / WINDOW_MS).ceil() as usize;
    let xs: Vec<f64> = (0..windows)
        .map(|i| (i as f64 + 0.5) * WINDOW_MS / 1_000.0)
        .collect();
    let mut series = Vec::new();
    for w in worlds {
        let after: Vec<&(f64, f64, usize)> = w.done.iter().filter(|r| r.0 >= warm(cfg)).collect();
        let all = sorted(after.iter().map(|r| r.1));
        let second = sorted(after.iter().filter(|r| r.0 >= half).map(|r| r.1));
        // Share sent to the slow ones: backend 0 throughout, backend 1 after half time.
        let slow = after
            .iter()
            .filter(|r| r.2 == 0 || (r.2 == 1 && r.0 >= half))
            .count();
        let share = slow as f64 / after.len().max(1) as f64;
        table.push(vec![
            w.policy.name().to_string(),
            (w.done.len() - w.unfinished).to_string(),
            w.unfinished.to_string(),
            fmt_stat(percentile(&all, 0.5)),
            fmt_stat(percentile(&all, 0.99)),
            fmt_stat(percentile(&all, 0.999)),
            fmt_stat(percentile(&second, 0.99)),
            format!("{:.1}%", 100.0 * share),
        ]);
        p99.push((w.policy, percentile(&all, 0.99), percentile(&second, 0.99)));
        series.push(Series {
            name: w.policy.name().to_string(),
            values: (0..windows)
                .map(|i| {
                    let (lo, hi) = (i as f64 * WINDOW_MS, (i + 1) as f64 * WINDOW_MS);
                    percentile(
                        &sorted(w.done.iter().filter(|r| r.0 >= lo && r.0 < hi).map(|r| r.1)),
                        0.99,
                    )
                })
                .collect(),
            dashed: false,
        });
    }
    let chart = lines(
        &format!(
            "p99 latency per {:.0} s window ({} balancers, {} backends; backend 1 turns slow at {:.0} s)",
            WINDOW_MS / 1_000.0,
            cfg.balancers,
            cfg.backends,
            half / 1_000.0
        ),
        "p99 ms (log scale)",
        "seconds",
        &xs,
        &series,
        false,
        true,
    );
    DemoResult {
        table,
        p99,
        chart,
        frames_per_node_s,
    }
}

/// Requests that finished in the last window (done is in completion order).
fn recent(w: &World, now_ms: f64) -> Vec<&(f64, f64, usize)> {
    w.done
        .iter()
        .rev()
        .take_while(|r| r.0 + r.1 >= now_ms - WINDOW_MS)
        .collect()
}

fn progress_line(cfg: &DemoConfig, worlds: &[World], now_ms: f64) -> String {
    let mut s = format!("{:>5.1} s / {} s:", now_ms / 1_000.0, cfg.seconds);
    for w in worlds {
        let r = sorted(recent(w, now_ms).iter().map(|r| r.1));
        s.push_str(&format!(
            "  {} p99 {} ms",
            w.policy.name(),
            fmt_stat(percentile(&r, 0.99))
        ));
    }
    s
}

fn view(cfg: &DemoConfig, worlds: &[World], nodes: &[Node], now_ms: f64) -> String {
    let mut s = String::from("\x1b[H\x1b[2J");
    let frac = (now_ms / (cfg.seconds as f64 * 1_000.0)).clamp(0.0, 1.0);
    let bar = 40;
    let filled = (frac * bar as f64).round() as usize;
    s.push_str(&format!(
        "Shivya demo: {} balancers, {} backends × {} slots, {:.0} ms mean service; balancer 0 holds the records of {} of {} balancers\n",
        cfg.balancers,
        cfg.backends,
        cfg.slots,
        cfg.service_ms,
        nodes[0].state().records().len(),
        cfg.balancers
    ));
    s.push_str(&format!(
        "backend 0 is {:.0}× slower throughout; backend 1 turns {:.0}× slower at {:.0} s; none of it is configured\n",
        cfg.slowdown,
        cfg.slowdown,
        cfg.half_ms() / 1_000.0
    ));
    s.push_str(&format!(
        "[{}{}] {:>5.1} / {} s   open-loop load {:.0} req/s\n\n",
        "#".repeat(filled),
        ".".repeat(bar - filled),
        now_ms / 1_000.0,
        cfg.seconds,
        cfg.rate_per_s()
    ));
    s.push_str(&format!(
        "{:<22}{:>9}{:>10}{:>10}{:>16}\n",
        "policy", "done", "p50 ms", "p99 ms", "p99 last 5 s"
    ));
    for w in worlds {
        let after = sorted(w.done.iter().filter(|r| r.0 >= warm(cfg)).map(|r| r.1));
        let last = sorted(recent(w, now_ms).iter().map(|r| r.1));
        s.push_str(&format!(
            "{:<22}{:>9}{:>10}{:>10}{:>16}\n",
            w.policy.name(),
            w.done.len(),
            fmt_stat(percentile(&after, 0.5)),
            fmt_stat(percentile(&after, 0.99)),
            fmt_stat(percentile(&last, 0.99))
        ));
    }
    s.push_str("\nrequests sent to each backend in the last 5 s, and Shivya's weight and capacity signal\n");
    s.push_str(&format!("{:<9}{:<6}", "backend", "state"));
    for name in ["shivya", "least-req", "random-two", "round-robin"] {
        s.push_str(&format!("{name:>13}"));
    }
    s.push_str(&format!("{:>10}{:>8}\n", "weight", "signal"));
    let mut weights = vec![0.0; cfg.backends];
    let _ = nodes[0].state().weights(&mut weights);
    let signals = nodes[0].state().capacity_signals();
    let shares: Vec<Vec<f64>> = worlds
        .iter()
        .map(|w| {
            let r = recent(w, now_ms);
            let mut c = vec![0usize; cfg.backends];
            for x in &r {
                c[x.2] += 1;
            }
            c.iter()
                .map(|k| *k as f64 / r.len().max(1) as f64)
                .collect()
        })
        .collect();
    for b in 0..cfg.backends {
        let state = if cfg.mean_service(b, now_ms) > cfg.service_ms {
            "SLOW"
        } else {
            "ok"
        };
        s.push_str(&format!("{b:<9}{state:<6}"));
        for sh in &shares {
            s.push_str(&format!("{:>12.1}%", 100.0 * sh[b]));
        }
        let signal = signals
            .iter()
            .find_map(|g| match *g {
                CapacitySignal::Split { backend } if backend as usize == b => Some("split"),
                CapacitySignal::Cull { backend } if backend as usize == b => Some("cull"),
                _ => None,
            })
            .unwrap_or("");
        s.push_str(&format!("{:>10.3}{signal:>8}\n", weights[b]));
    }
    s.push_str(
        "\n(the weights and signals are balancer 0's; every balancer holds the same records)\n",
    );
    s
}
