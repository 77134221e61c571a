//! Shivya and HashiCorp memberlist side by side, the same measures in one command: N
//! members in one process on 127.0.0.1, default settings of both. For each N the two run
//! one after the other (interleaved), Shivya first.
//!
//! * **full**: from the first join until every member knows every member. For memberlist
//!   that is `NumMembers() == N` everywhere; for Shivya, every node holds every node's
//!   record (its view of the mesh; every node writes once at start).
//! * **update**: one member publishes one new value; until every other member has it
//!   (memberlist: a user broadcast that each member re-broadcasts once on first receipt,
//!   as Serf does; Shivya: a record write).
//! * **idle**: after the same settling pause for both (30 s), datagrams and bytes sent per member per second
//!   (memberlist: UDP packets plus TCP push/pull streams and their bytes), and the
//!   process's CPU time per member.
//! * **drop**: one member is killed without leaving; until every other member has
//!   dropped it (memberlist: it is gone from `Members()`; Shivya: its record is withdrawn
//!   by a death certificate everywhere).
//!
//! Times are also given in each system's own rounds: Shivya's base gossip period (50 ms),
//! memberlist's gossip interval (200 ms; it probes every 1 s).

use crate::report::Table;
use mio::{Events, Interest, Poll, Token};
use shivya_core::mesh::{Node, NodeConfig, WorkloadTopology, DEAD};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// One system at one size.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// "shivya" or "memberlist".
    pub system: String,
    /// Members.
    pub n: usize,
    /// ms to full knowledge.
    pub full_ms: f64,
    /// ms for one update to reach every member.
    pub update_ms: f64,
    /// Idle bytes sent per member per second.
    pub idle_bytes: f64,
    /// Idle datagrams (and streams) sent per member per second.
    pub idle_packets: f64,
    /// CPU per member, percent of one core.
    pub cpu_pct: f64,
    /// ms until a killed member is dropped everywhere.
    pub drop_ms: f64,
    /// The system's gossip round, ms.
    pub round_ms: f64,
}

/// Process CPU seconds (user + system) from /proc/self/stat (Linux).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |k: usize| f.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

struct Mesh {
    poll: Poll,
    events: Events,
    nodes: Vec<Option<Node>>,
    start: Instant,
}

impl Mesh {
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn turn(&mut self) -> Result<(), String> {
        let t = self.now();
        let wait = self
            .nodes
            .iter()
            .flatten()
            .map(|x| x.next_timeout_ms(t))
            .min()
            .unwrap_or(10);
        self.poll
            .poll(&mut self.events, Some(Duration::from_millis(wait.min(20))))
            .map_err(|e| e.to_string())?;
        let t = self.now();
        for x in self.nodes.iter_mut().flatten() {
            x.step(t).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Turns until `done` holds; the elapsed ms, or an error at `deadline_ms`.
    fn until(
        &mut self,
        what: &str,
        deadline_ms: u64,
        mut done: impl FnMut(&Mesh) -> bool,
    ) -> Result<f64, String> {
        let begin = Instant::now();
        while !done(self) {
            if begin.elapsed() > Duration::from_millis(deadline_ms) {
                return Err(format!("shivya: {what} not within {deadline_ms} ms"));
            }
            self.turn()?;
        }
        Ok(begin.elapsed().as_secs_f64() * 1e3)
    }

    fn for_ms(&mut self, ms: u64) -> Result<(), String> {
        let end = self.now() + ms;
        while self.now() < end {
            self.turn()?;
        }
        Ok(())
    }

    fn live(&self) -> impl Iterator<Item = &Node> + '_ {
        self.nodes.iter().flatten()
    }
}

/// Shivya with its defaults (quiet mesh on), `n` nodes over UDP on 127.0.0.1.
pub fn shivya(n: usize, settle_s: u64, idle_s: u64) -> Result<Row, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let mut m = Mesh {
        poll: Poll::new().map_err(|e| err(&e))?,
        events: Events::with_capacity(1024),
        nodes: Vec::new(),
        start: Instant::now(),
    };
    let topology = WorkloadTopology::for_backends(4).map_err(|e| err(&e))?;
    for i in 0..n {
        let mut c = NodeConfig {
            seed: 31_000 + i as u64,
            topology: topology.clone(),
            listen: "127.0.0.1:0".parse().map_err(|e| err(&e))?,
            ..NodeConfig::default()
        };
        if let Some(Some(seed)) = m.nodes.first() {
            c.bootstrap = vec![seed.local_addr()];
        }
        let t = m.now();
        let mut node = Node::bind(c, t).map_err(|e| err(&e))?;
        m.poll
            .registry()
            .register(node.socket_mut(), Token(i), Interest::READABLE)
            .map_err(|e| err(&e))?;
        node.state_mut()
            .record_queue_len(i as u32 % 4, 1.0)
            .map_err(|e| err(&e))?;
        m.nodes.push(Some(node));
    }
    let full_ms = m.until("full knowledge", 60_000, |m| {
        m.live().all(|x| x.state().records().len() == n)
    })?;
    // Settle (the quiet mesh backs off: gossip to its 1 s period, refreshes and orphan
    // probes further), then count.
    m.for_ms(settle_s * 1_000)?;
    let sent = |m: &Mesh| -> (u64, u64) {
        m.live().fold((0, 0), |(f, b), x| {
            let c = x.status().counters;
            (f + c.frames_out, b + c.bytes_out)
        })
    };
    let (f0, b0, c0, t0) = (sent(&m).0, sent(&m).1, cpu_seconds(), Instant::now());
    m.for_ms(idle_s * 1_000)?;
    let secs = t0.elapsed().as_secs_f64();
    let (f1, b1) = sent(&m);
    let per = |x: u64| x as f64 / secs / n as f64;
    let cpu_pct = (cpu_seconds() - c0) / secs / n as f64 * 100.0;
    // One update from node 1.
    let origin = m.nodes[1]
        .as_ref()
        .map(|x| x.state().id())
        .unwrap_or_default();
    if let Some(x) = m.nodes[1].as_mut() {
        x.state_mut()
            .record_queue_len(1, 42.0)
            .map_err(|e| err(&e))?;
    }
    let version = m.nodes[1]
        .as_ref()
        .map_or(0, |x| x.state().own_record().version);
    let update_ms = m.until("one update everywhere", 60_000, |m| {
        m.live()
            .all(|x| x.state().records().version(&origin) == version)
    })?;
    // Kill the last node: no LEAVE, its socket closed.
    let victim = m.nodes[n - 1]
        .as_ref()
        .map(|x| x.state().id())
        .unwrap_or_default();
    m.nodes[n - 1] = None;
    let drop_ms = m.until("killed node withdrawn", 120_000, |m| {
        m.live()
            .all(|x| x.state().records().version(&victim) & DEAD != 0)
    })?;
    Ok(Row {
        system: "shivya".into(),
        n,
        full_ms,
        update_ms,
        idle_bytes: per(b1 - b0),
        idle_packets: per(f1 - f0),
        cpu_pct,
        drop_ms,
        round_ms: 50.0,
    })
}

/// Builds the Go harness (through the Go module proxy) into `target/memberlist`.
pub fn build_memberlist(source: &Path, target: &Path) -> Result<std::path::PathBuf, String> {
    std::fs::create_dir_all(target).map_err(|e| e.to_string())?;
    let bin = target.join("memberlist-harness");
    let out = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(source)
        .output()
        .map_err(|e| format!("cannot run go (install Go to measure memberlist): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "go build of the memberlist harness failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(bin)
}

/// Runs the harness for `n` members.
pub fn memberlist(bin: &Path, n: usize, settle_s: u64, idle_s: u64) -> Result<Row, String> {
    let out = Command::new(bin)
        .args([
            "-n",
            &n.to_string(),
            "-settle",
            &format!("{settle_s}s"),
            "-idle",
            &format!("{idle_s}s"),
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let num = |key: &str| -> Result<f64, String> {
        let at = text
            .find(&format!("\"{key}\":"))
            .ok_or_else(|| format!("memberlist harness output lacks {key}: {text}"))?;
        let rest = &text[at + key.len() + 3..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        rest[..end]
            .trim()
            .parse()
            .map_err(|e| format!("{key}: {e}"))
    };
    Ok(Row {
        system: "memberlist".into(),
        n,
        full_ms: num("full_ms")?,
        update_ms: num("update_ms")?,
        idle_bytes: num("idle_bytes_per_member_s")?,
        idle_packets: num("idle_packets_per_member_s")?,
        cpu_pct: num("cpu_per_member_pct")?,
        drop_ms: num("drop_ms")?,
        round_ms: num("gossip_interval_ms")?,
    })
}

/// The side-by-side table.
pub fn table(rows: &[Row]) -> Table {
    let mut t = Table::new(&[
        "system",
        "N",
        "full knowledge ms (rounds)",
        "one update everywhere ms (rounds)",
        "idle bytes/member/s",
        "idle packets/member/s",
        "CPU % of a core per member",
        "killed member dropped ms (rounds)",
    ]);
    for r in rows {
        let rounds = |ms: f64| {
            if ms < 10.0 {
                format!("{ms:.1} ({:.2})", ms / r.round_ms)
            } else {
                format!("{ms:.0} ({:.1})", ms / r.round_ms)
            }
        };
        t.push(vec![
            r.system.clone(),
            r.n.to_string(),
            rounds(r.full_ms),
            rounds(r.update_ms),
            format!("{:.0}", r.idle_bytes),
            format!("{:.1}", r.idle_packets),
            format!("{:.3}", r.cpu_pct),
            rounds(r.drop_ms),
        ]);
    }
    t
}
