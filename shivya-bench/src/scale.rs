//! Scale: the whole protocol in the simulator at hundreds to thousands of nodes, in
//! virtual time, one run per `N` with every measure of issue 18 in it.
//!
//! One run: every node starts at time 0, bootstraps through node 0 and writes one record
//! (four backends, the complete graph); *discovery* ends when every node holds all `N`
//! records. After 20 s more, 20 s of idle traffic are counted (bytes and frames per node
//! per second, CPU per simulated node-second, heap per node). Then one node writes and
//! the *spread* is the time until every node holds it. Then the nodes split in two halves
//! by parity for 1 s, each writes, the cut ends, and the *heal* is the time until every
//! node holds every origin's newest version. Last, the *load*: for 2 s every node writes
//! every gossip period (as a balancer publishing its requests in flight does) and the
//! *information age* is sampled every period over the last second: for every node and
//! every other origin, how long ago the version it holds was written. Rounds are base
//! gossip periods (50 ms); the reference is [`swim_reference`].
//!
//! Memory per node at `N` balancers of 64 backends is measured apart, on one node that is
//! handed `N` records of 64 entries ([`node_memory`]): records of 64 backends at
//! 10 000 nodes would need 10⁸ records in one process.

use crate::heap;
use crate::membership::{sent, spread_times, swim_reference};
use crate::report::Table;
use shivya_core::mesh::sim::{addr_of, NetConfig, Sim};
use shivya_core::mesh::{version_order, NodeConfig, NodeState, WorkloadTopology};
use shivya_core::p2p::protocol::{split_record, Body, Frame, MessageType, RecordWire};
use shivya_core::p2p::NodeId;
use std::collections::HashMap;

const PERIOD_MS: u64 = 50;
const CHECK_MS: u64 = 10;

/// One run's measures.
#[derive(Debug, Clone)]
pub struct ScaleRow {
    /// Nodes.
    pub n: usize,
    /// The run's seed.
    pub seed: u64,
    /// ms until every node holds every record.
    pub discovery_ms: f64,
    /// ms until one write is held everywhere.
    pub spread_ms: f64,
    /// ... and by half the nodes.
    pub spread_p50_ms: f64,
    /// ms from the end of the cut to every node holding every newest version.
    pub heal_ms: f64,
    /// The push-gossip reference in rounds ([`swim_reference`]).
    pub reference_rounds: f64,
    /// Mean information age under load, ms.
    pub age_mean_ms: f64,
    /// Its 90th percentile, ms.
    pub age_p90_ms: f64,
    /// Idle bytes sent per node per second.
    pub idle_bytes_per_s: f64,
    /// Idle frames sent per node per second.
    pub idle_frames_per_s: f64,
    /// Frames sent per node per second under load.
    pub load_frames_per_s: f64,
    /// Heap held per node after the idle window (the simulator's queues included), bytes;
    /// NaN when the counting allocator is not installed.
    pub heap_per_node: f64,
    /// Resident set per node at the same moment, bytes.
    pub rss_per_node: f64,
    /// CPU per simulated node-second in the idle window, µs.
    pub idle_cpu_us: f64,
    /// CPU per simulated node-second under load, µs.
    pub load_cpu_us: f64,
    /// CPU of the whole run, s.
    pub total_cpu_s: f64,
    /// Idle traffic by frame type: (type, frames, bytes) per node per second.
    pub idle_by_type: Vec<(String, f64, f64)>,
}

fn config(n: usize, seed: u64, i: usize) -> NodeConfig {
    NodeConfig {
        seed: 500_000 + seed * 100_000 + i as u64,
        topology: WorkloadTopology::complete(4).unwrap_or_default(),
        max_records: n.max(4_096),
        ..NodeConfig::default()
    }
}

fn write(s: &mut NodeState, i: usize, k: u64) -> Result<(), String> {
    // Values inexact in binary, different per node and per write.
    let v = 0.1 * (1 + (i as u64 * 7 + k * 3) % 97) as f64;
    s.record_queue_len((i % 4) as u32, v)
        .map_err(|e| e.to_string())
}

/// Whether every node holds the same versions of all `N` origins, none older than `want`
/// (ascending by origin). Newer is allowed: an origin certified dead by a probe that could
/// not reach it during the cut refutes the certificate by writing again.
fn healed(sim: &Sim, want: &[(NodeId, u64)]) -> bool {
    let first = sim.nodes[0].records();
    first.len() == want.len()
        && first
            .iter()
            .zip(want)
            .all(|(r, w)| r.origin == w.0 && version_order(r.version) >= version_order(w.1))
        && sim.nodes.iter().all(|s| {
            s.records().len() == want.len()
                && s.records()
                    .iter()
                    .zip(first.iter())
                    .all(|(a, b)| a.origin == b.origin && a.version == b.version)
        })
}

/// One line of the heal trace: the (node, origin) pairs still short of `want`, and the
/// frames per node of each type sent since `by0`.
fn heal_trace(sim: &Sim, want: &[(NodeId, u64)], cut: u64, by0: &[(u64, u64); 32]) -> String {
    let missing: usize = sim
        .nodes
        .iter()
        .map(|s| {
            want.iter()
                .filter(|(o, v)| {
                    s.records()
                        .get(o)
                        .is_none_or(|r| version_order(r.version) < version_order(*v))
                })
                .count()
        })
        .sum();
    let n = sim.nodes.len() as f64;
    let by_type: Vec<String> = sent_by_type(sim, by0)
        .into_iter()
        .map(|(name, f, _)| format!("{name} {:.1}", f as f64 / n))
        .collect();
    format!(
        "heal +{} ms: {missing} pairs missing; frames/node {}",
        sim.now - cut,
        by_type.join(", ")
    )
}

/// The frames and bytes of each frame type the nodes sent since `by0` (types that sent
/// none are left out).
fn sent_by_type(sim: &Sim, by0: &[(u64, u64); 32]) -> Vec<(String, u64, u64)> {
    (0..32u8)
        .filter_map(|t| {
            let (f, b) = sim.sent_by_type[usize::from(t)];
            let (f, b) = (f - by0[usize::from(t)].0, b - by0[usize::from(t)].1);
            let name =
                MessageType::from_u8(t).map_or("sealed or unknown".into(), |m| format!("{m:?}"));
            (f > 0).then_some((name, f, b))
        })
        .collect()
}

fn newest(sim: &Sim) -> Vec<(NodeId, u64)> {
    let mut v: Vec<(NodeId, u64)> = sim
        .nodes
        .iter()
        .map(|s| (s.id(), s.status().own_version))
        .collect();
    v.sort();
    v
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// One run at `n` nodes (see the module docs). `idle_s` is the idle window's length;
/// `seed` seeds the network (delays) and, through the node seeds, every node's choices;
/// with `trace_heal` the heal is logged period by period ([`heal_trace`]).
pub fn run(
    n: usize,
    idle_s: u64,
    seed: u64,
    trace_heal: bool,
    log: &mut dyn FnMut(&str),
) -> Result<ScaleRow, String> {
    let cpu0 = heap::thread_cpu_s();
    let mut sim = Sim::new(n, seed, NetConfig::default(), |i| config(n, seed, i))
        .map_err(|e| e.to_string())?;
    for i in 0..n {
        write(&mut sim.nodes[i], i, 0)?;
    }
    let limit = 600_000;
    while sim.nodes.iter().any(|s| s.records().len() < n) {
        if sim.now > limit {
            return Err(format!("N={n}: no full discovery in {limit} ms"));
        }
        sim.run_until(sim.now + CHECK_MS);
    }
    let discovery_ms = sim.now as f64;
    log(&format!("discovery {discovery_ms} ms"));

    sim.run_until(sim.now + 20_000);
    let (f0, b0) = sent(&sim);
    let by0 = sim.sent_by_type;
    let c0 = heap::thread_cpu_s();
    sim.run_until(sim.now + idle_s * 1_000);
    let idle_cpu = heap::thread_cpu_s() - c0;
    let (f1, b1) = sent(&sim);
    let per_node_s = |x: u64, s: u64| x as f64 / n as f64 / s as f64;
    let idle_by_type = sent_by_type(&sim, &by0)
        .into_iter()
        .map(|(name, f, b)| (name, per_node_s(f, idle_s), per_node_s(b, idle_s)))
        .collect();
    let heap_per_node = heap::live_bytes().map_or(f64::NAN, |b| b as f64 / n as f64);
    let rss_per_node = heap::rss_bytes().map_or(f64::NAN, |b| b as f64 / n as f64);
    log(&format!(
        "idle {:.0} B/node/s, heap {:.0} KiB/node",
        per_node_s(b1 - b0, idle_s),
        heap_per_node / 1024.0
    ));

    // One write.
    let writer = 5 % n;
    let id = sim.nodes[writer].id();
    let v0 = sim.nodes[writer].status().own_version;
    write(&mut sim.nodes[writer], writer, 1)?;
    let Some(times) = spread_times(&mut sim, id, v0, 60_000) else {
        return Err(format!("N={n}: one write did not reach every node in 60 s"));
    };
    let spread_ms = times[n - 1];
    let spread_p50_ms = times[n / 2];
    log(&format!("spread {spread_ms} ms"));

    // Heal.
    sim.run_until(sim.now + 5_000);
    sim.partition(|i| (i % 2) as u32);
    for i in 0..n {
        write(&mut sim.nodes[i], i, 2)?;
    }
    sim.run_until(sim.now + 1_000);
    let want = newest(&sim);
    if healed(&sim, &want) {
        return Err(format!("N={n}: the halves agree while cut"));
    }
    sim.heal();
    let cut = sim.now;
    let mut traced = (sim.now, sim.sent_by_type);
    while !healed(&sim, &want) {
        if sim.now - cut > 60_000 {
            return Err(format!("N={n}: no heal in 60 s"));
        }
        sim.run_until(sim.now + CHECK_MS);
        if trace_heal && sim.now - traced.0 >= PERIOD_MS {
            log(&heal_trace(&sim, &want, cut, &traced.1));
            traced = (sim.now, sim.sent_by_type);
        }
    }
    let heal_ms = (sim.now - cut) as f64;
    let certificates: u64 = sim
        .nodes
        .iter()
        .map(|s| s.status().counters.death_certificates)
        .sum();
    log(&format!(
        "heal {heal_ms} ms ({certificates} death certificates issued so far)"
    ));

    // Load: every node writes every period, at its own phase.
    sim.run_until(sim.now + 5_000);
    let index: HashMap<NodeId, usize> = sim
        .nodes
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id(), i))
        .collect();
    // written[i]: (version, time) of node i's writes, ascending.
    let mut written: Vec<Vec<(u64, u64)>> = vec![Vec::new(); n];
    for (i, s) in sim.nodes.iter().enumerate() {
        written[i].push((s.status().own_version, 0));
    }
    let start = sim.now;
    let (lf0, _) = sent(&sim);
    let lc0 = heap::thread_cpu_s();
    let mut ages: Vec<f64> = Vec::new();
    let mut k = 3;
    let load_ms = 2_000;
    let slots = PERIOD_MS / CHECK_MS;
    while sim.now < start + load_ms {
        let slot = ((sim.now - start) / CHECK_MS) % slots;
        let now = sim.now;
        for (i, (node, w)) in sim.nodes.iter_mut().zip(written.iter_mut()).enumerate() {
            if i as u64 % slots == slot {
                write(node, i, k)?;
                w.push((node.status().own_version, now));
            }
        }
        k += 1;
        sim.run_until(sim.now + CHECK_MS);
        if sim.now >= start + load_ms / 2 && slot == slots - 1 {
            for s in &sim.nodes {
                let me = s.id();
                for r in s.records().iter().filter(|r| r.origin != me) {
                    let Some(&o) = index.get(&r.origin) else {
                        continue;
                    };
                    let w = &written[o];
                    // The write time of the held version: the last write at or below it.
                    let at = match w.binary_search_by(|x| x.0.cmp(&r.version)) {
                        Ok(p) => w[p].1,
                        Err(0) => continue,
                        Err(p) => w[p - 1].1,
                    };
                    ages.push((sim.now - at) as f64);
                }
            }
        }
    }
    let load_cpu = heap::thread_cpu_s() - lc0;
    let (lf1, _) = sent(&sim);
    ages.sort_by(f64::total_cmp);
    let age_mean_ms = ages.iter().sum::<f64>() / ages.len().max(1) as f64;
    let age_p90_ms = percentile(&ages, 0.9);
    log(&format!("age mean {age_mean_ms:.0} ms"));
    Ok(ScaleRow {
        n,
        seed,
        discovery_ms,
        spread_ms,
        spread_p50_ms,
        heal_ms,
        reference_rounds: swim_reference(n),
        age_mean_ms,
        age_p90_ms,
        idle_bytes_per_s: per_node_s(b1 - b0, idle_s),
        idle_frames_per_s: per_node_s(f1 - f0, idle_s),
        load_frames_per_s: (lf1 - lf0) as f64 / n as f64 / (load_ms as f64 / 1e3),
        heap_per_node,
        rss_per_node,
        idle_cpu_us: idle_cpu * 1e6 / (n as f64 * idle_s as f64),
        load_cpu_us: load_cpu * 1e6 / (n as f64 * load_ms as f64 / 1e3),
        total_cpu_s: heap::thread_cpu_s() - cpu0,
        idle_by_type,
    })
}

/// The scale table.
pub fn table(rows: &[ScaleRow]) -> Table {
    let mut t = Table::new(&[
        "N",
        "seed",
        "discovery ms (rounds)",
        "one write: all ms (rounds)",
        "one write: p50 ms",
        "heal ms (rounds)",
        "reference rounds",
        "info age mean ms (periods)",
        "info age p90 ms (periods)",
        "idle B/node/s",
        "idle frames/node/s",
        "load frames/node/s",
        "heap KiB/node",
        "RSS KiB/node",
        "CPU µs per node-s idle",
        "CPU µs per node-s load",
        "run CPU s",
    ]);
    let r1 = |ms: f64| format!("{ms:.0} ({:.1})", ms / PERIOD_MS as f64);
    for r in rows {
        t.push(vec![
            r.n.to_string(),
            r.seed.to_string(),
            r1(r.discovery_ms),
            r1(r.spread_ms),
            format!("{:.0}", r.spread_p50_ms),
            r1(r.heal_ms),
            format!("{:.1}", r.reference_rounds),
            r1(r.age_mean_ms),
            r1(r.age_p90_ms),
            format!("{:.0}", r.idle_bytes_per_s),
            format!("{:.1}", r.idle_frames_per_s),
            format!("{:.0}", r.load_frames_per_s),
            format!("{:.0}", r.heap_per_node / 1024.0),
            format!("{:.0}", r.rss_per_node / 1024.0),
            format!("{:.0}", r.idle_cpu_us),
            format!("{:.0}", r.load_cpu_us),
            format!("{:.1}", r.total_cpu_s),
        ]);
    }
    t
}

/// Idle traffic by frame type, per node and second, one column pair per run.
pub fn by_type_table(rows: &[ScaleRow]) -> Table {
    let mut head = vec!["frame type".to_string()];
    for r in rows {
        head.push(format!("N={} seed {} frames/s", r.n, r.seed));
        head.push(format!("N={} seed {} B/s", r.n, r.seed));
    }
    let refs: Vec<&str> = head.iter().map(String::as_str).collect();
    let mut t = Table::new(&refs);
    let mut names: Vec<&String> = rows
        .iter()
        .flat_map(|r| r.idle_by_type.iter().map(|x| &x.0))
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        let mut line = vec![name.clone()];
        for r in rows {
            let x = r.idle_by_type.iter().find(|x| &x.0 == name);
            line.push(x.map_or("0".into(), |x| format!("{:.2}", x.1)));
            line.push(x.map_or("0".into(), |x| format!("{:.0}", x.2)));
        }
        t.push(line);
    }
    t
}

/// Memory of one node that holds the records of `n` balancers with `backends` backends
/// each (every backend loaded, so every record is full), handed to it as the CHUNK frames
/// they travel in. Returns (records held, heap bytes the node holds), the heap counted as
/// what its creation and the frames left allocated; NaN without the counting allocator.
pub fn node_memory(n: usize, backends: usize) -> Result<(usize, f64), String> {
    let before = heap::live_bytes();
    let topology = WorkloadTopology::for_backends(backends as u32).map_err(|e| e.to_string())?;
    let mut node = NodeState::new(
        NodeConfig {
            listen: addr_of(0),
            seed: 1,
            topology,
            max_records: n + 1,
            ..NodeConfig::default()
        },
        0,
    )
    .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    for k in 0..n {
        let origin = NodeId::from_seed(1_000_000 + k as u64);
        let record = RecordWire {
            origin,
            version: 1,
            queue: (0..backends as u32)
                .map(|v| (v, 0.1 * f64::from(1 + (v + k as u32) % 13)))
                .collect(),
            offload: Vec::new(),
            seal: None,
        };
        for part in split_record(&record) {
            let bytes = Frame::new(k as u64, origin, Body::Chunk(part))
                .encode()
                .map_err(|e| e.to_string())?;
            node.handle_datagram(addr_of(1 + k % 60_000), &bytes, 1);
        }
        while node.poll_transmit(&mut buf).is_some() {}
    }
    let held = node.records().len();
    let bytes = match (before, heap::live_bytes()) {
        (Some(a), Some(b)) => b.saturating_sub(a) as f64,
        _ => f64::NAN,
    };
    drop(node);
    Ok((held, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_mesh_runs_every_phase() {
        let mut lines = Vec::new();
        let r = run(16, 2, 1, true, &mut |l| lines.push(l.to_string())).unwrap();
        // The trace logs once per whole period of the heal, each with the pairs missing.
        let traced: Vec<&String> = lines.iter().filter(|l| l.starts_with("heal +")).collect();
        let periods = (r.heal_ms as u64).div_ceil(PERIOD_MS) as usize;
        assert!(
            traced.len() + 1 >= periods && traced.len() <= periods,
            "{} trace lines for a {} ms heal: {lines:?}",
            traced.len(),
            r.heal_ms
        );
        assert!(traced
            .iter()
            .all(|l| l.contains("pairs missing; frames/node")));
        assert!(
            r.discovery_ms > 0.0 && r.spread_ms > 0.0 && r.heal_ms > 0.0,
            "{r:?}"
        );
        assert!(r.spread_p50_ms <= r.spread_ms, "{r:?}");
        assert!(
            r.age_mean_ms > 0.0 && r.age_p90_ms >= r.age_mean_ms * 0.5,
            "{r:?}"
        );
        assert!(
            r.idle_frames_per_s > 0.0 && r.load_frames_per_s > r.idle_frames_per_s,
            "{r:?}"
        );
        // No counting allocator in the test binary.
        assert!(r.heap_per_node.is_nan());
    }

    #[test]
    fn one_node_holds_every_record_it_is_handed() {
        let (held, _) = node_memory(300, 64).unwrap();
        assert_eq!(held, 300, "every record it was handed");
    }
}
