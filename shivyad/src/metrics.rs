//! `/metrics`: the node in the Prometheus / OpenMetrics text format, encoded by
//! prometheus-client. Built fresh from the node at every scrape (the node's counters are
//! the source of truth); only the step-time histogram lives across scrapes.

use crate::status::{signal_parts, weights};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use shivya_core::mesh::Node;
use std::sync::atomic::AtomicU64;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// Timings kept between scrapes.
pub struct Timings {
    /// Wall time of the `step` calls that ran the layer stack, in seconds.
    pub layer_step: Histogram,
    /// Wall time of every other `step` call (gossip, Kademlia, input), in seconds.
    pub io_step: Histogram,
}

impl Default for Timings {
    fn default() -> Timings {
        Timings {
            layer_step: Histogram::new(exponential_buckets(1e-5, 4.0, 10)),
            io_step: Histogram::new(exponential_buckets(1e-6, 4.0, 10)),
        }
    }
}

fn gauge(reg: &mut Registry, name: &str, help: &str, v: f64) {
    let g = FloatGauge::default();
    g.set(v);
    reg.register(name, help, g);
}

fn counter(reg: &mut Registry, name: &str, help: &str, v: u64) {
    let c: Counter = Counter::default();
    c.inc_by(v);
    reg.register(name, help, c);
}

fn label(k: &str, v: impl ToString) -> (String, String) {
    (k.to_string(), v.to_string())
}

/// The exposition of `node` at host time `now_ms`.
pub fn render(node: &mut Node, timings: &Timings, now_ms: u64) -> String {
    let merged_load: Vec<f64> = node
        .state_mut()
        .settlement()
        .map_or_else(|_| Vec::new(), |s| s.queue.clone());
    let state = node.state();
    let status = node.status();
    let c = status.counters;
    let d = c.dropped;
    let ages = state.record_ages(now_ms);
    let mut reg = Registry::with_prefix("shivya");

    gauge(
        &mut reg,
        "peers",
        "Peers in the routing table",
        status.peers as f64,
    );
    gauge(
        &mut reg,
        "records",
        "Records held, ours included",
        status.records as f64,
    );
    gauge(
        &mut reg,
        "own_version",
        "Version of this node's own record",
        status.own_version as f64,
    );
    gauge(
        &mut reg,
        "record_age_mean_seconds",
        "Mean time since each other origin's record last changed here",
        ages.mean_ms / 1e3,
    );
    gauge(
        &mut reg,
        "record_age_max_seconds",
        "Longest time since another origin's record last changed here",
        ages.max_ms as f64 / 1e3,
    );
    counter(&mut reg, "frames_in", "Datagrams received", c.frames_in);
    counter(&mut reg, "frames_out", "Datagrams sent", c.frames_out);
    counter(&mut reg, "bytes_in", "Bytes received", c.bytes_in);
    counter(&mut reg, "bytes_out", "Bytes sent", c.bytes_out);
    counter(
        &mut reg,
        "records_merged",
        "Records applied from the network",
        c.records_merged,
    );
    counter(
        &mut reg,
        "death_certificates",
        "Death certificates this node issued for peers that went unresponsive",
        c.death_certificates,
    );
    counter(
        &mut reg,
        "identity_rotations",
        "Times this node took a new id because a forged frame pushed its origin to the top of the version range",
        c.identity_rotations,
    );
    counter(
        &mut reg,
        "layer_steps",
        "Layer-stack steps run",
        c.layer_steps,
    );
    counter(
        &mut reg,
        "layer_errors",
        "Layer-stack steps that failed",
        c.layer_errors,
    );
    counter(
        &mut reg,
        "send_errors",
        "Datagrams the socket refused to send",
        c.send_errors,
    );
    counter(
        &mut reg,
        "unpublished_backends",
        "Backend loads left out of a full record, summed over steps",
        c.unpublished_backends,
    );

    let drops = Family::<Labels, Counter>::default();
    for (reason, n) in d.by_reason() {
        drops
            .get_or_create(&vec![label("reason", reason)])
            .inc_by(n);
    }
    reg.register("dropped_frames", "Frames dropped, by reason", drops);

    let n = state.config().topology.n_vertices() as usize;
    let weight = Family::<Labels, FloatGauge>::default();
    for (b, w) in weights(state).iter().enumerate() {
        weight.get_or_create(&vec![label("backend", b)]).set(*w);
    }
    reg.register(
        "backend_weight",
        "The balancer's weight per backend",
        weight,
    );
    let in_flight = Family::<Labels, FloatGauge>::default();
    for (b, k) in state.balancer().in_flight().iter().enumerate().take(n) {
        in_flight
            .get_or_create(&vec![label("backend", b)])
            .set(f64::from(*k));
    }
    reg.register(
        "backend_in_flight",
        "Requests this node has in flight per backend",
        in_flight,
    );
    let merged = Family::<Labels, FloatGauge>::default();
    for (b, q) in merged_load.iter().enumerate() {
        merged.get_or_create(&vec![label("backend", b)]).set(*q);
    }
    reg.register(
        "backend_load",
        "Merged load per backend: the sum over every balancer's record",
        merged,
    );
    let signals = Family::<Labels, FloatGauge>::default();
    for s in state.capacity_signals() {
        let (b, kind) = signal_parts(s);
        signals
            .get_or_create(&vec![label("backend", b), label("signal", kind)])
            .set(1.0);
    }
    reg.register(
        "capacity_signal",
        "1 for each backend with a capacity signal (split: add capacity, cull: drain)",
        signals,
    );
    reg.register(
        "layer_step_seconds",
        "Wall time of the steps that ran the layer stack",
        timings.layer_step.clone(),
    );
    reg.register(
        "io_step_seconds",
        "Wall time of the other steps (input, gossip, Kademlia)",
        timings.io_step.clone(),
    );

    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &reg);
    out
}
