//! The status snapshot: built from the node, rendered as JSON (socket, dashboard) and as
//! a table (`shivyad status`).

use crate::json;
use shivya_core::mesh::Node;
use std::fmt::Write;

/// Everything the status socket and the dashboard show.
pub fn snapshot_json(node: &mut Node, vertex: u32, history: &[f64]) -> String {
    let status = node.status();
    let local = node.local_addr();
    let peers: Vec<(String, String, u64)> = node
        .state()
        .kademlia()
        .table()
        .peers()
        .map(|p| (p.id.to_hex(), p.addr.to_string(), p.last_seen_ms))
        .collect();
    let edges: Vec<(u32, u32)> = node.state().config().topology.edges().to_vec();
    let n_vertices = node.state().config().topology.n_vertices();
    let settlement = node.state_mut().settlement().ok().cloned();

    let mut o = String::with_capacity(2048);
    o.push('{');
    json::key(&mut o, true, "id");
    json::string(&mut o, &status.id.to_hex());
    json::key(&mut o, false, "addr");
    json::string(&mut o, &local.to_string());
    json::key(&mut o, false, "vertex");
    let _ = write!(o, "{vertex}");
    json::key(&mut o, false, "peer_count");
    let _ = write!(o, "{}", status.peers);
    json::key(&mut o, false, "peers");
    o.push('[');
    for (i, (id, addr, seen)) in peers.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push('{');
        json::key(&mut o, true, "id");
        json::string(&mut o, id);
        json::key(&mut o, false, "addr");
        json::string(&mut o, addr);
        json::key(&mut o, false, "last_seen_ms");
        let _ = write!(o, "{seen}");
        o.push('}');
    }
    o.push(']');
    for (k, v) in [
        ("records", status.records as u64),
        ("own_version", status.own_version),
        ("cg_iterations", status.last_iterations as u64),
        ("latent_dim", status.latent_dim as u64),
    ] {
        json::key(&mut o, false, k);
        let _ = write!(o, "{v}");
    }
    for (k, v) in [
        ("f_collective", status.f_collective),
        ("free_energy", status.free_energy),
        ("dividend", status.dividend),
        ("residual", status.last_residual),
    ] {
        json::key(&mut o, false, k);
        json::number(&mut o, v);
    }
    json::key(&mut o, false, "n_vertices");
    let _ = write!(o, "{n_vertices}");
    json::key(&mut o, false, "edges");
    o.push('[');
    for (i, (a, b)) in edges.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        let _ = write!(o, "[{a},{b}]");
    }
    o.push(']');
    json::key(&mut o, false, "queue");
    o.push('[');
    if let Some(s) = &settlement {
        for (i, q) in s.queue.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            json::number(&mut o, *q);
        }
    }
    o.push(']');
    json::key(&mut o, false, "routes");
    o.push('[');
    if let Some(s) = &settlement {
        for (i, r) in s.routes.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let _ = write!(o, "{{\"src\":{},\"dst\":{},\"rate\":", r.src, r.dst);
            json::number(&mut o, r.rate);
            o.push('}');
        }
    }
    o.push(']');
    json::key(&mut o, false, "view");
    json::string(
        &mut o,
        &format!("{:016x}", node.state().records().view_digest()),
    );
    // The capacity signals of the merged records (L4): identical on every node that holds
    // the same records.
    json::key(&mut o, false, "signals");
    o.push('[');
    for (i, sig) in node.state().capacity_signals().iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        let (backend, kind) = match *sig {
            shivya_core::balancer::CapacitySignal::Split { backend } => (backend, "split"),
            shivya_core::balancer::CapacitySignal::Cull { backend } => (backend, "cull"),
        };
        let _ = write!(o, "{{\"vertex\":{backend},\"signal\":\"{kind}\"}}");
    }
    o.push(']');
    json::key(&mut o, false, "f_history");
    o.push('[');
    for (i, f) in history.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        json::number(&mut o, *f);
    }
    o.push(']');
    let c = status.counters;
    json::key(&mut o, false, "counters");
    let _ = write!(
        o,
        "{{\"frames_in\":{},\"frames_out\":{},\"bytes_in\":{},\"bytes_out\":{},\"dropped\":{},\"records_merged\":{},\"layer_steps\":{},\"layer_errors\":{}}}",
        c.frames_in,
        c.frames_out,
        c.bytes_in,
        c.bytes_out,
        c.dropped.total(),
        c.records_merged,
        c.layer_steps,
        c.layer_errors
    );
    o.push('}');
    o
}

/// Every record the node holds, ascending by origin: `[{"origin","version","queue":[[v,q]…],
/// "offload":[[s,d,x]…]}…]`. Numbers print exactly (shortest round-trip form).
pub fn records_json(state: &shivya_core::mesh::NodeState) -> String {
    let mut o = String::from("[");
    for (i, r) in state.records().iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        let _ = write!(
            o,
            "{{\"origin\":\"{}\",\"version\":{},\"queue\":[",
            r.origin, r.version
        );
        for (k, (v, q)) in r.queue.iter().enumerate() {
            let _ = write!(o, "{}[{v},", if k > 0 { "," } else { "" });
            json::number(&mut o, *q);
            o.push(']');
        }
        o.push_str("],\"offload\":[");
        for (k, (s, d, x)) in r.offload.iter().enumerate() {
            let _ = write!(o, "{}[{s},{d},", if k > 0 { "," } else { "" });
            json::number(&mut o, *x);
            o.push(']');
        }
        o.push_str("]}");
    }
    o.push(']');
    o
}

/// Pulls `"key":value` (a number or a flat array/object text) out of our own JSON, for
/// the table view. Not a general parser: it reads only what `snapshot_json` writes.
fn field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":");
    let start = json.find(&pat)? + pat.len();
    let rest = &json[start..];
    let end = match rest.as_bytes().first()? {
        b'[' | b'{' => {
            let (open, close) = if rest.starts_with('[') {
                ('[', ']')
            } else {
                ('{', '}')
            };
            let mut depth = 0;
            let mut end = rest.len();
            for (i, ch) in rest.char_indices() {
                if ch == open {
                    depth += 1;
                } else if ch == close {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
            }
            end
        }
        b'"' => rest[1..].find('"').map_or(rest.len(), |i| i + 2),
        _ => rest.find([',', '}']).unwrap_or(rest.len()),
    };
    Some(&rest[..end])
}

/// The human-readable view of a snapshot.
pub fn table(json: &str) -> String {
    let mut t = String::new();
    let get = |k: &str| field(json, k).unwrap_or("?").trim_matches('"').to_string();
    for (label, k) in [
        ("node id", "id"),
        ("address", "addr"),
        ("vertex", "vertex"),
        ("peers", "peer_count"),
        ("records", "records"),
        ("F_collective", "f_collective"),
        ("free energy", "free_energy"),
        ("dividend", "dividend"),
        ("residual", "residual"),
        ("CG iterations", "cg_iterations"),
    ] {
        let _ = writeln!(t, "{label:<14} {}", get(k));
    }
    let _ = writeln!(t, "{:<14} {}", "queues", get("queue"));
    let routes = get("routes");
    let _ = writeln!(t, "routes");
    for r in routes.trim_matches(['[', ']']).split("},") {
        let (s, d, x) = (field(r, "src"), field(r, "dst"), field(r, "rate"));
        if let (Some(s), Some(d), Some(x)) = (s, d, x) {
            let _ = writeln!(t, "  {s:>3} -> {d:<3} {}", x.trim_end_matches('}'));
        }
    }
    let _ = writeln!(t, "peers");
    let peers = get("peers");
    for p in peers.trim_matches(['[', ']']).split("},") {
        if let (Some(id), Some(addr)) = (field(p, "id"), field(p, "addr")) {
            let _ = writeln!(
                t,
                "  {}…  {}",
                &id.trim_matches('"')[..8.min(id.len() - 1)],
                addr.trim_matches('"')
            );
        }
    }
    let _ = writeln!(t, "{:<14} {}", "counters", get("counters"));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_in_our_own_json() {
        let j = r#"{"id":"ab","peer_count":2,"routes":[{"src":0,"dst":1,"rate":1.5}],"counters":{"a":1}}"#;
        assert_eq!(field(j, "peer_count"), Some("2"));
        assert_eq!(field(j, "id"), Some("\"ab\""));
        assert_eq!(
            field(j, "routes"),
            Some(r#"[{"src":0,"dst":1,"rate":1.5}]"#)
        );
        assert_eq!(field(j, "counters"), Some(r#"{"a":1}"#));
        assert!(table(j).contains("0 -> 1"));
    }
}
