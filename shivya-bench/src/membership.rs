//! Membership: how long until every node knows every other node, and how long after a
//! partition heals until every node holds the same state, with the frames it cost.
//!
//! Two notions of "discovered" are measured: the Kademlia routing table holds every peer
//! it has room for (`min(N − 1, capacity)`, where capacity counts at most `K` ids per
//! bucket), and every node holds every node's record (the state the balancing needs).
//! Heal: the nodes split in two halves (1 s in the simulator, 0.3 s seven times over UDP),
//! every node writes a new record, the cut ends; measured until every node holds the same
//! record versions from all `N` origins (and, in the simulator, settles to bit-identical
//! flows). A round is one gossip interval (50 ms).
//!
//! Reference: SWIM/memberlist disseminate by infection-style gossip, which reaches all of
//! `N` members in `O(log N)` rounds; the line drawn is the push-gossip estimate
//! `log_{1+f} N + ln N / f` rounds for fanout `f` (Pittel 1987), with our `f = 2`.

use crate::report::Table;
use mio::{Events, Interest, Poll, Token};
use shivya_core::mesh::sim::{NetConfig, Sim};
use shivya_core::mesh::{Node, NodeConfig, NodeState, WorkloadTopology};
use shivya_core::p2p::NodeId;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One measurement.
#[derive(Debug, Clone)]
pub struct MembershipRow {
    /// "sim" or "udp".
    pub transport: &'static str,
    /// Nodes.
    pub n: usize,
    /// ms until every routing table is as full as it can be.
    pub table_ms: f64,
    /// ms until every node holds every record.
    pub discovery_ms: f64,
    /// The same in gossip rounds.
    pub discovery_rounds: f64,
    /// Frames sent per node until then.
    pub discovery_frames: f64,
    /// ms from the end of the partition to identical state everywhere (median of the
    /// trials; the simulator runs one).
    pub heal_ms: f64,
    /// The worst trial.
    pub heal_max_ms: f64,
    /// The worst trial in gossip rounds.
    pub heal_rounds: f64,
    /// Frames sent per node during the heal.
    pub heal_frames: f64,
    /// The push-gossip reference, rounds.
    pub swim_rounds: f64,
}

const GOSSIP_MS: u64 = 50;
const FANOUT: usize = 2;
const HEAL_TRIALS: usize = 7;

fn config(i: usize) -> NodeConfig {
    NodeConfig {
        seed: 77_000 + i as u64,
        topology: WorkloadTopology::complete(4).unwrap(),
        gossip_interval_ms: GOSSIP_MS,
        fanout: FANOUT,
        ..NodeConfig::default()
    }
}

/// `log_{1+f} N + ln N / f`.
pub fn swim_reference(n: usize) -> f64 {
    let (n, f) = (n as f64, FANOUT as f64);
    n.ln() / (1.0 + f).ln() + n.ln() / f
}

fn tables_full(states: &[&NodeState]) -> bool {
    let ids: Vec<NodeId> = states.iter().map(|s| s.id()).collect();
    let n = ids.len();
    states.iter().all(|s| {
        let me = s.id();
        let k = s.config().kad.k;
        let mut per = BTreeMap::new();
        for id in &ids {
            if let Some(b) = me.bucket_index(id) {
                *per.entry(b).or_insert(0usize) += 1;
            }
        }
        let cap: usize = per.values().map(|&v| v.min(k)).sum();
        s.kademlia().table().len() >= cap.min(n - 1)
    })
}

fn all_records(states: &[&NodeState]) -> bool {
    states.iter().all(|s| s.records().len() == states.len())
}

/// Same `(origin, version)` everywhere, all `N` origins.
fn identical(states: &[&NodeState]) -> bool {
    let view = |s: &NodeState| -> Vec<(NodeId, u64)> {
        s.records().iter().map(|r| (r.origin, r.version)).collect()
    };
    let first = view(states[0]);
    first.len() == states.len() && states.iter().all(|s| view(s) == first)
}

/// An error when the halves agree at the end of a cut: the partition did not hold, and a
/// heal time measured from it would mean nothing.
fn still_cut(states: &[&NodeState]) -> Result<(), String> {
    if identical(states) {
        Err("the halves agree while cut: the partition did not hold".into())
    } else {
        Ok(())
    }
}

fn write(state: &mut NodeState, i: usize, round: u32) -> Result<(), String> {
    state
        .record_queue_len(i as u32 % 4, 1.0 + ((i as u32 * 5 + round * 3) % 9) as f64)
        .map_err(|e| e.to_string())
}

/// Discovery and heal for `n` nodes in the deterministic simulator (1–5 ms delays).
pub fn simulate(n: usize) -> Result<MembershipRow, String> {
    let mut sim = Sim::new(n, 5, NetConfig::default(), config).map_err(|e| e.to_string())?;
    for i in 0..n {
        write(&mut sim.nodes[i], i, 0)?;
    }
    let frames = |sim: &Sim| (0..n).map(|i| sim.frames_sent(i)).sum::<u64>() as f64 / n as f64;
    let step = 2;
    let limit = 600_000;
    let mut table_ms = f64::NAN;
    while sim.now < limit {
        let states: Vec<&NodeState> = sim.nodes.iter().collect();
        if table_ms.is_nan() && tables_full(&states) {
            table_ms = sim.now as f64;
        }
        if all_records(&states) {
            break;
        }
        sim.run_until(sim.now + step);
    }
    let discovery_ms = sim.now as f64;
    let discovery_frames = frames(&sim);
    while table_ms.is_nan() && sim.now < limit {
        sim.run_until(sim.now + step);
        let states: Vec<&NodeState> = sim.nodes.iter().collect();
        if tables_full(&states) {
            table_ms = sim.now as f64;
        }
    }
    sim.partition(|i| (i % 2) as u32);
    for i in 0..n {
        write(&mut sim.nodes[i], i, 1)?;
    }
    let cut = sim.now + 1_000;
    sim.run_until(cut);
    still_cut(&sim.nodes.iter().collect::<Vec<_>>())?;
    sim.heal();
    let before = frames(&sim);
    loop {
        let states: Vec<&NodeState> = sim.nodes.iter().collect();
        if identical(&states) || sim.now > cut + limit {
            break;
        }
        sim.run_until(sim.now + step);
    }
    let heal_ms = (sim.now - cut) as f64;
    let first = sim.flow_bits(0).map_err(|e| e.to_string())?;
    for i in 1..n {
        if sim.flow_bits(i).map_err(|e| e.to_string())? != first {
            return Err(format!(
                "node {i} holds the same records but settles differently"
            ));
        }
    }
    Ok(MembershipRow {
        transport: "sim",
        n,
        table_ms,
        discovery_ms,
        discovery_rounds: discovery_ms / GOSSIP_MS as f64,
        discovery_frames,
        heal_ms,
        heal_max_ms: heal_ms,
        heal_rounds: heal_ms / GOSSIP_MS as f64,
        heal_frames: frames(&sim) - before,
        swim_rounds: swim_reference(n),
    })
}

/// The same on 127.0.0.1 with real sockets, driven by a mio loop that waits for a socket
/// or the earliest timer; the partition is made with `block`.
pub fn real_udp(n: usize) -> Result<MembershipRow, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let mut poll = Poll::new().map_err(|e| err(&e))?;
    let mut events = Events::with_capacity(256);
    let start = Instant::now();
    let now = |start: Instant| start.elapsed().as_millis() as u64;
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..n {
        let mut c = config(i);
        c.listen = "127.0.0.1:0".parse().map_err(|e| err(&e))?;
        if let Some(seed) = nodes.first() {
            c.bootstrap = vec![seed.local_addr()];
        }
        let mut node = Node::bind(c, now(start)).map_err(|e| err(&e))?;
        poll.registry()
            .register(node.socket_mut(), Token(i), Interest::READABLE)
            .map_err(|e| err(&e))?;
        write(node.state_mut(), i, 0)?;
        nodes.push(node);
    }
    let t0 = now(start);
    let mut turn = |nodes: &mut Vec<Node>| -> Result<(), String> {
        let t = now(start);
        let wait = nodes
            .iter()
            .map(|x| x.next_timeout_ms(t))
            .min()
            .unwrap_or(10);
        poll.poll(&mut events, Some(Duration::from_millis(wait.min(20))))
            .map_err(|e| err(&e))?;
        let t = now(start);
        for x in nodes.iter_mut() {
            x.step(t).map_err(|e| err(&e))?;
        }
        Ok(())
    };
    let frames = |nodes: &Vec<Node>| {
        nodes
            .iter()
            .map(|x| x.status().counters.frames_out)
            .sum::<u64>() as f64
            / n as f64
    };
    let deadline = 30_000;
    let mut table_ms = f64::NAN;
    loop {
        let states: Vec<&NodeState> = nodes.iter().map(|x| x.state()).collect();
        if table_ms.is_nan() && tables_full(&states) {
            table_ms = (now(start) - t0) as f64;
        }
        if (all_records(&states) && !table_ms.is_nan()) || now(start) - t0 > deadline {
            break;
        }
        turn(&mut nodes)?;
    }
    // Discovery of records: re-measured against the first moment all were present.
    let discovery_ms = (now(start) - t0) as f64;
    let discovery_frames = frames(&nodes);
    let addrs: Vec<_> = nodes.iter().map(|x| x.local_addr()).collect();
    // Several cuts: how fast a heal completes depends on where the gossip timers stand
    // when the cut ends, so report the median and the worst.
    let mut heals = Vec::new();
    let mut heal_frames = 0.0;
    for trial in 0..HEAL_TRIALS {
        for (i, x) in nodes.iter_mut().enumerate() {
            for (j, a) in addrs.iter().enumerate() {
                if i % 2 != j % 2 {
                    x.block(*a);
                }
            }
            write(x.state_mut(), i, 1 + trial as u32)?;
        }
        let cut = now(start) + 300 + 37 * trial as u64;
        while now(start) < cut {
            turn(&mut nodes)?;
        }
        still_cut(&nodes.iter().map(|x| x.state()).collect::<Vec<_>>())?;
        for x in nodes.iter_mut() {
            for a in &addrs {
                x.unblock(*a);
            }
        }
        let healed_at = now(start);
        let before = frames(&nodes);
        loop {
            let states: Vec<&NodeState> = nodes.iter().map(|x| x.state()).collect();
            if identical(&states) {
                break;
            }
            if now(start) - healed_at > deadline {
                return Err(format!("no heal within {deadline} ms"));
            }
            turn(&mut nodes)?;
        }
        heals.push((now(start) - healed_at) as f64);
        heal_frames += frames(&nodes) - before;
    }
    heals.sort_by(f64::total_cmp);
    let heal_ms = heals[heals.len() / 2];
    let heal_max_ms = heals[heals.len() - 1];
    let heal_frames = heal_frames / HEAL_TRIALS as f64;
    Ok(MembershipRow {
        transport: "udp",
        n,
        table_ms,
        discovery_ms,
        discovery_rounds: discovery_ms / GOSSIP_MS as f64,
        discovery_frames,
        heal_ms,
        heal_max_ms,
        heal_rounds: heal_max_ms / GOSSIP_MS as f64,
        heal_frames,
        swim_rounds: swim_reference(n),
    })
}

/// Rows as a table.
pub fn table(rows: &[MembershipRow]) -> Table {
    let mut t = Table::new(&[
        "transport",
        "N",
        "tables full ms",
        "all records ms",
        "rounds",
        "frames/node",
        "heal ms (median)",
        "heal ms (worst)",
        "heal rounds (worst)",
        "heal frames/node",
        "SWIM ref. rounds",
    ]);
    for r in rows {
        t.push(vec![
            r.transport.to_string(),
            r.n.to_string(),
            format!("{:.0}", r.table_ms),
            format!("{:.0}", r.discovery_ms),
            format!("{:.1}", r.discovery_rounds),
            format!("{:.0}", r.discovery_frames),
            format!("{:.0}", r.heal_ms),
            format!("{:.0}", r.heal_max_ms),
            format!("{:.1}", r.heal_rounds),
            format!("{:.0}", r.heal_frames),
            format!("{:.1}", r.swim_rounds),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seven_simulated_nodes_discover_and_heal_in_a_few_rounds() {
        let r = simulate(7).unwrap();
        assert!(r.table_ms.is_finite() && r.discovery_ms > 0.0, "{r:?}");
        // Bounded by the protocol, not by luck: fanout 2 over 7 nodes.
        assert!(r.discovery_rounds < 40.0, "{r:?}");
        assert!(r.heal_rounds < 40.0, "{r:?}");
        assert!(r.heal_frames > 0.0, "{r:?}");
    }

    #[test]
    fn reference_grows_like_log_n() {
        assert!((swim_reference(1) - 0.0).abs() < 1e-12);
        let (a, b) = (swim_reference(64), swim_reference(4096));
        assert!(
            (b / a - 2.0).abs() < 1e-9,
            "doubling log N doubles the rounds"
        );
    }
}

/// One idle-traffic measurement (the quiet mesh).
#[derive(Debug, Clone)]
pub struct IdleRow {
    /// Nodes.
    pub n: usize,
    /// Backoff on (the defaults) or off (every period at its base).
    pub quiet: bool,
    /// Frames sent per node per second over 30 idle seconds.
    pub frames_per_s: f64,
    /// Bytes sent per node per second over the same.
    pub bytes_per_s: f64,
    /// ms until one new write is held by every node.
    pub write_ms: f64,
    /// The same at the median and the 99th percentile node.
    pub write_p50_ms: f64,
    /// See above.
    pub write_p99_ms: f64,
}

/// Frames and bytes sent so far by all of `sim`'s nodes.
pub fn sent(sim: &Sim) -> (u64, u64) {
    sim.nodes.iter().fold((0, 0), |(f, b), x| {
        let c = x.status().counters;
        (f + c.frames_out, b + c.bytes_out)
    })
}

/// Runs `sim` in 10 ms steps until every node holds a record of `origin` above version
/// `v0`; returns the ms each node took (ascending), or `None` when some node still lacks
/// it after `limit_ms`.
pub fn spread_times(sim: &mut Sim, origin: NodeId, v0: u64, limit_ms: u64) -> Option<Vec<f64>> {
    let t0 = sim.now;
    let mut got = vec![None; sim.nodes.len()];
    while got.iter().any(Option::is_none) {
        for (s, g) in sim.nodes.iter().zip(got.iter_mut()) {
            if g.is_none() && s.records().get(&origin).is_some_and(|r| r.version > v0) {
                *g = Some((sim.now - t0) as f64);
            }
        }
        if sim.now - t0 > limit_ms {
            return None;
        }
        let next = sim.now + 10;
        sim.run_until(next);
    }
    let mut times: Vec<f64> = got.into_iter().flatten().collect();
    times.sort_by(f64::total_cmp);
    Some(times)
}

/// Simulator: `n` nodes join and write once each (20 s, then 30 s to settle), then 30 s
/// of idle traffic are counted, then one node writes and the time until each node holds
/// that write is measured. `quiet = false` turns every backoff off (gossip and refresh
/// at their base period, every silent peer PINGed), the behaviour before the quiet mesh.
pub fn idle(n: usize, quiet: bool) -> Result<IdleRow, String> {
    let mut sim = Sim::new(n, 7, NetConfig::default(), |i| {
        let mut c = NodeConfig {
            seed: 1_000 + i as u64,
            topology: WorkloadTopology::complete(4).unwrap_or_default(),
            ..NodeConfig::default()
        };
        if !quiet {
            c.max_gossip_interval_ms = c.gossip_interval_ms;
            c.kad.max_refresh_interval_ms = c.kad.refresh_interval_ms;
            c.kad.pings_per_round = 1_000;
        }
        c
    })
    .map_err(|e| e.to_string())?;
    sim.run_until(20_000);
    for i in 0..n {
        sim.nodes[i]
            .record_queue_len((i % 4) as u32, 1.0 + i as f64)
            .map_err(|e| e.to_string())?;
    }
    sim.run_until(50_000);
    let (f0, b0) = sent(&sim);
    sim.run_until(80_000);
    let (f1, b1) = sent(&sim);
    let per = |x: u64| x as f64 / n as f64 / 30.0;
    let writer = 5 % n;
    let v0 = sim.nodes[writer].status().own_version;
    let id = sim.nodes[writer].id();
    sim.nodes[writer]
        .record_queue_len(1, 77.0)
        .map_err(|e| e.to_string())?;
    let Some(times) = spread_times(&mut sim, id, v0, 60_000) else {
        return Err(format!(
            "idle N={n}: the write did not reach every node in 60 s"
        ));
    };
    Ok(IdleRow {
        n,
        quiet,
        frames_per_s: per(f1 - f0),
        bytes_per_s: per(b1 - b0),
        write_ms: times[n - 1],
        write_p50_ms: times[n / 2],
        write_p99_ms: times[(n * 99 / 100).min(n - 1)],
    })
}

/// The idle-traffic table.
pub fn idle_table(rows: &[IdleRow]) -> Table {
    let mut t = Table::new(&[
        "N",
        "backoff",
        "idle frames/node/s",
        "idle bytes/node/s",
        "one write: all ms",
        "p50 ms",
        "p99 ms",
    ]);
    for r in rows {
        t.push(vec![
            r.n.to_string(),
            if r.quiet { "quiet" } else { "off" }.to_string(),
            format!("{:.1}", r.frames_per_s),
            format!("{:.0}", r.bytes_per_s),
            format!("{:.0}", r.write_ms),
            format!("{:.0}", r.write_p50_ms),
            format!("{:.0}", r.write_p99_ms),
        ]);
    }
    t
}
