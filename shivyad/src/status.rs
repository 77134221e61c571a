//! The status snapshot: built from the node, written as JSON (socket, dashboard) with
//! serde, read back into the same type for the table of `shivyad status`.

use serde::{Deserialize, Serialize};
use shivya_core::balancer::CapacitySignal;
use shivya_core::mesh::{Node, NodeState};
use std::fmt::Write;

/// One peer of the routing table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peer {
    pub id: String,
    pub addr: String,
    pub last_seen_ms: u64,
}

/// One route of the settlement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub src: u32,
    pub dst: u32,
    pub rate: Option<f64>,
}

/// One capacity signal (L4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub vertex: u32,
    /// `split` (add capacity) or `cull` (drain).
    pub signal: String,
}

/// Traffic and work counters, with drops by reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountersJson {
    pub frames_in: u64,
    pub frames_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Every dropped frame, whatever the reason.
    pub dropped: u64,
    pub dropped_malformed: u64,
    pub dropped_blocked: u64,
    pub dropped_bad_auth: u64,
    pub dropped_bad_record: u64,
    pub dropped_other: u64,
    pub records_merged: u64,
    pub death_certificates: u64,
    pub identity_rotations: u64,
    pub layer_steps: u64,
    pub layer_errors: u64,
    pub send_errors: u64,
}

/// How a node protects its traffic and records, in words.
fn protection(c: &shivya_core::mesh::NodeConfig) -> String {
    let wire = match (&c.keyring, &c.auth_key) {
        (Some(_), _) => "encrypted",
        (None, Some(_)) => "keyed",
        (None, None) => "open",
    };
    match (&c.identity, &c.admission) {
        (None, _) => wire.to_string(),
        (Some(_), shivya_core::mesh::Admission::AnyKey) => format!("{wire} + signed"),
        (Some(_), shivya_core::mesh::Admission::Keys(_)) => format!("{wire} + signed + allowlist"),
    }
}

/// Everything the status socket and the dashboard show. Non-finite numbers are `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: String,
    /// The node's public key (signed meshes).
    pub public_key: Option<String>,
    /// How datagrams and records are protected: "open", "keyed", "encrypted", each with
    /// "+ signed" or "+ signed + allowlist".
    pub protection: String,
    /// The keyring's key ids and its primary key (encrypted meshes).
    pub keyring_ids: Option<Vec<u8>>,
    pub keyring_primary: Option<u8>,
    pub addr: String,
    pub vertex: u32,
    pub peer_count: usize,
    pub peers: Vec<Peer>,
    pub records: usize,
    pub own_version: u64,
    /// Mean and longest time since each other origin's record last changed here.
    pub record_age_mean_ms: Option<f64>,
    pub record_age_max_ms: u64,
    pub cg_iterations: u32,
    pub latent_dim: usize,
    pub f_collective: Option<f64>,
    pub free_energy: Option<f64>,
    pub dividend: Option<f64>,
    pub residual: Option<f64>,
    pub n_vertices: u32,
    pub edges: Vec<(u32, u32)>,
    /// Merged load per vertex (the records' sum).
    pub queue: Vec<Option<f64>>,
    /// The balancer's weight per vertex.
    pub weights: Vec<Option<f64>>,
    pub routes: Vec<Route>,
    /// Digest of the records held: equal on nodes that hold the same records.
    pub view: String,
    pub signals: Vec<Signal>,
    pub f_history: Vec<Option<f64>>,
    pub counters: CountersJson,
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// The kind of a capacity signal and its backend.
pub fn signal_parts(sig: &CapacitySignal) -> (u32, &'static str) {
    match *sig {
        CapacitySignal::Split { backend } => (backend, "split"),
        CapacitySignal::Cull { backend } => (backend, "cull"),
    }
}

/// The balancer's weights, one per vertex.
pub fn weights(state: &NodeState) -> Vec<f64> {
    let mut w = vec![0.0; state.config().topology.n_vertices() as usize];
    // The buffer has exactly one slot per vertex, the only size `weights` refuses.
    let _ = state.weights(&mut w);
    w
}

/// The snapshot of `node` at host time `now_ms`.
pub fn snapshot(node: &mut Node, vertex: u32, history: &[f64], now_ms: u64) -> Snapshot {
    let status = node.status();
    let ages = node.state().record_ages(now_ms);
    let settlement = node.state_mut().settlement().ok().cloned();
    let state = node.state();
    let c = status.counters;
    let d = c.dropped;
    Snapshot {
        id: status.id.to_hex(),
        public_key: state
            .config()
            .identity
            .as_ref()
            .map(|i| i.public_key().to_hex()),
        protection: protection(state.config()),
        keyring_ids: state.config().keyring.as_ref().map(|r| r.ids()),
        keyring_primary: state.config().keyring.as_ref().map(|r| r.primary()),
        addr: node.local_addr().to_string(),
        vertex,
        peer_count: status.peers,
        peers: state
            .kademlia()
            .table()
            .peers()
            .map(|p| Peer {
                id: p.id.to_hex(),
                addr: p.addr.to_string(),
                last_seen_ms: p.last_seen_ms,
            })
            .collect(),
        records: status.records,
        own_version: status.own_version,
        record_age_mean_ms: finite(ages.mean_ms),
        record_age_max_ms: ages.max_ms,
        cg_iterations: status.last_iterations as u32,
        latent_dim: status.latent_dim,
        f_collective: finite(status.f_collective),
        free_energy: finite(status.free_energy),
        dividend: finite(status.dividend),
        residual: finite(status.last_residual),
        n_vertices: state.config().topology.n_vertices(),
        edges: state.config().topology.edges().to_vec(),
        queue: settlement
            .as_ref()
            .map_or_else(Vec::new, |s| s.queue.iter().map(|q| finite(*q)).collect()),
        weights: weights(state).into_iter().map(finite).collect(),
        routes: settlement.as_ref().map_or_else(Vec::new, |s| {
            s.routes
                .iter()
                .map(|r| Route {
                    src: r.src,
                    dst: r.dst,
                    rate: finite(r.rate),
                })
                .collect()
        }),
        view: format!("{:016x}", state.records().view_digest()),
        signals: state
            .capacity_signals()
            .iter()
            .map(|s| {
                let (vertex, kind) = signal_parts(s);
                Signal {
                    vertex,
                    signal: kind.to_string(),
                }
            })
            .collect(),
        f_history: history.iter().map(|f| finite(*f)).collect(),
        counters: CountersJson {
            frames_in: c.frames_in,
            frames_out: c.frames_out,
            bytes_in: c.bytes_in,
            bytes_out: c.bytes_out,
            dropped: d.total(),
            dropped_malformed: d.malformed(),
            dropped_blocked: d.blocked,
            dropped_bad_auth: d.bad_auth,
            dropped_bad_record: d.bad_record,
            dropped_other: d.total() - d.malformed() - d.blocked - d.bad_auth - d.bad_record,
            records_merged: c.records_merged,
            death_certificates: c.death_certificates,
            identity_rotations: c.identity_rotations,
            layer_steps: c.layer_steps,
            layer_errors: c.layer_errors,
            send_errors: c.send_errors,
        },
    }
}

/// The snapshot as one JSON line.
pub fn snapshot_json(node: &mut Node, vertex: u32, history: &[f64], now_ms: u64) -> String {
    to_json(&snapshot(node, vertex, history, now_ms))
}

/// Any of our own types as JSON (they always serialize: no maps with non-string keys).
pub fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| {
        let mut o = String::from("{\"ok\":false,\"error\":");
        o.push_str(&serde_json::Value::String(e.to_string()).to_string());
        o.push('}');
        o
    })
}

/// A record as JSON: `queue` is `[[vertex, load]…]`, `offload` `[[src, dst, rate]…]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordJson {
    pub origin: String,
    pub version: u64,
    pub queue: Vec<(u32, f64)>,
    pub offload: Vec<(u32, u32, f64)>,
}

impl From<&shivya_core::p2p::protocol::RecordWire> for RecordJson {
    fn from(r: &shivya_core::p2p::protocol::RecordWire) -> RecordJson {
        RecordJson {
            origin: r.origin.to_hex(),
            version: r.version,
            queue: r.queue.clone(),
            offload: r.offload.clone(),
        }
    }
}

/// Every record the node holds, ascending by origin. Numbers print exactly (shortest
/// round-trip form); values are finite by the record store's own checks.
pub fn records_json(state: &NodeState) -> String {
    let all: Vec<RecordJson> = state.records().iter().map(RecordJson::from).collect();
    to_json(&all)
}

fn num(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |x| format!("{x:.4}"))
}

/// The human-readable view of a snapshot (the JSON the socket answered).
pub fn table(json: &str) -> Result<String, String> {
    let s: Snapshot = serde_json::from_str(json).map_err(|e| {
        // An error answer from the daemon carries its message.
        serde_json::from_str::<serde_json::Value>(json)
            .ok()
            .and_then(|v| v.get("error").and_then(|m| m.as_str()).map(str::to_string))
            .unwrap_or_else(|| format!("the daemon's answer is not a status snapshot: {e}"))
    })?;
    let mut t = String::new();
    for (label, v) in [
        ("node id", s.id.clone()),
        (
            "public key",
            s.public_key
                .clone()
                .unwrap_or_else(|| "none (unsigned)".into()),
        ),
        ("protection", s.protection.clone()),
        ("address", s.addr.clone()),
        ("vertex", s.vertex.to_string()),
        ("peers", s.peer_count.to_string()),
        ("records", s.records.to_string()),
        ("view", s.view.clone()),
        (
            "record age",
            format!(
                "mean {} ms, max {} ms",
                num(s.record_age_mean_ms),
                s.record_age_max_ms
            ),
        ),
        ("F_collective", num(s.f_collective)),
        ("free energy", num(s.free_energy)),
        ("dividend", num(s.dividend)),
        ("residual", num(s.residual)),
        ("CG iterations", s.cg_iterations.to_string()),
    ] {
        let _ = writeln!(t, "{label:<14} {v}");
    }
    let list = |xs: &[Option<f64>]| xs.iter().map(|x| num(*x)).collect::<Vec<_>>().join(" ");
    let _ = writeln!(t, "{:<14} {}", "queues", list(&s.queue));
    let _ = writeln!(t, "{:<14} {}", "weights", list(&s.weights));
    let signals: Vec<String> = s
        .signals
        .iter()
        .map(|g| format!("{} {}", g.signal, g.vertex))
        .collect();
    let _ = writeln!(
        t,
        "{:<14} {}",
        "signals",
        if signals.is_empty() {
            "none".to_string()
        } else {
            signals.join(", ")
        }
    );
    let _ = writeln!(t, "routes");
    for r in &s.routes {
        let _ = writeln!(t, "  {:>3} -> {:<3} {}", r.src, r.dst, num(r.rate));
    }
    let _ = writeln!(t, "peers");
    for p in &s.peers {
        let short: String = p.id.chars().take(8).collect();
        let _ = writeln!(t, "  {short}…  {}", p.addr);
    }
    let c = &s.counters;
    let _ = writeln!(
        t,
        "{:<14} in {} out {} frames, dropped {} (malformed {}, blocked {}, bad auth {}, bad record {}, other {}), merged {}, layer steps {} (errors {})",
        "counters",
        c.frames_in,
        c.frames_out,
        c.dropped,
        c.dropped_malformed,
        c.dropped_blocked,
        c.dropped_bad_auth,
        c.dropped_bad_record,
        c.dropped_other,
        c.records_merged,
        c.layer_steps,
        c.layer_errors
    );
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shivya_core::mesh::NodeConfig;

    #[test]
    fn a_snapshot_round_trips_and_renders_as_a_table() {
        let mut node = Node::bind(
            NodeConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                ..NodeConfig::default()
            },
            0,
        )
        .unwrap();
        node.record_queue_len(1, 2.5).unwrap();
        let snap = snapshot(&mut node, 1, &[1.0, f64::NAN], 0);
        let json = to_json(&snap);
        let back: Snapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, snap);
        assert_eq!(back.f_history, vec![Some(1.0), None]);
        assert_eq!(back.queue[1], Some(2.5));
        let t = table(&json).unwrap();
        assert!(t.contains("records        1"), "{t}");
        assert!(t.contains(&snap.view), "{t}");
        // The daemon's error answers reach the user as their message.
        assert_eq!(
            table(r#"{"ok":false,"error":"no such thing"}"#).unwrap_err(),
            "no such thing"
        );
        assert!(table("garbage").is_err());
    }
}
