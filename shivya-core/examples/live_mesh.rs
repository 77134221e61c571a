//! The main job: a live mesh of five nodes on 127.0.0.1, in one process, driven by a mio
//! poll loop. It shows discovery, load reports, a partition (by blocking addresses), the
//! two sides drifting apart, the heal, and every node settling to the same routes.
//!
//! Run: `cargo run --release -p shivya-core --example live_mesh`

use mio::{Events, Interest, Poll, Token};
use shivya_core::mesh::{MeshError, Node, NodeConfig, WorkloadTopology};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const NODES: usize = 5;
const BACKENDS: u32 = 4;

struct Mesh {
    poll: Poll,
    events: Events,
    nodes: Vec<Node>,
    start: Instant,
}

impl Mesh {
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn turn(&mut self) -> Result<(), MeshError> {
        let now = self.now();
        let wait = self
            .nodes
            .iter()
            .map(|n| n.next_timeout_ms(now))
            .min()
            .unwrap_or(50);
        self.poll
            .poll(&mut self.events, Some(Duration::from_millis(wait.min(50))))
            .map_err(|e| MeshError::Io(e.to_string()))?;
        let now = self.now();
        for n in &mut self.nodes {
            n.step(now)?;
        }
        Ok(())
    }

    fn run_until(
        &mut self,
        deadline_ms: u64,
        mut done: impl FnMut(&mut Mesh) -> bool,
    ) -> Result<Option<u64>, MeshError> {
        let begin = self.now();
        while !done(self) {
            if self.now() - begin > deadline_ms {
                return Ok(None);
            }
            self.turn()?;
        }
        Ok(Some(self.now() - begin))
    }

    fn flows_agree(&mut self) -> bool {
        let mut first: Option<Vec<u64>> = None;
        for n in &mut self.nodes {
            let bits: Vec<u64> = match n.state_mut().settlement() {
                Ok(s) => s.flow.iter().map(|x| x.to_bits()).collect(),
                Err(_) => return false,
            };
            match &first {
                None => first = Some(bits),
                Some(f) if *f != bits => return false,
                Some(_) => {}
            }
        }
        true
    }

    fn print_routes(&mut self, who: usize) -> Result<(), MeshError> {
        let routes = self.nodes[who].settle()?;
        let s = self.nodes[who].state_mut().settlement()?.clone();
        println!(
            "  node {who}: queues {:?}, residual {:.1e} after {} CG iterations",
            s.queue
                .iter()
                .map(|q| (q * 100.0).round() / 100.0)
                .collect::<Vec<_>>(),
            s.report.residual,
            s.report.iterations
        );
        for r in routes {
            println!(
                "    move {:>6.2}/s  backend {} -> backend {}",
                r.rate, r.src, r.dst
            );
        }
        Ok(())
    }

    fn status_line(&self) {
        for (i, n) in self.nodes.iter().enumerate() {
            let s = n.status();
            println!(
                "  node {i} {}…  peers {}  records {}  F {:>7.3}  dividend {:>6.3}  frames in/out {}/{}",
                &s.id.to_hex()[..8],
                s.peers,
                s.records,
                s.free_energy,
                s.dividend,
                s.counters.frames_in,
                s.counters.frames_out
            );
        }
    }
}

fn main() -> Result<(), MeshError> {
    let poll = Poll::new().map_err(|e| MeshError::Io(e.to_string()))?;
    let start = Instant::now();
    let mut nodes = Vec::new();
    let mut seed: Option<SocketAddr> = None;
    for i in 0..NODES {
        let config = NodeConfig {
            seed: 42 + i as u64,
            bootstrap: seed.into_iter().collect(),
            topology: WorkloadTopology::complete(BACKENDS).unwrap(),
            ..NodeConfig::default()
        };
        let mut node = Node::bind(config, start.elapsed().as_millis() as u64)?;
        poll.registry()
            .register(node.socket_mut(), Token(i), Interest::READABLE)
            .map_err(|e| MeshError::Io(e.to_string()))?;
        println!(
            "node {i} listening on {} (id {}…)",
            node.local_addr(),
            &node.state().id().to_hex()[..8]
        );
        seed.get_or_insert(node.local_addr());
        nodes.push(node);
    }
    let mut mesh = Mesh {
        poll,
        events: Events::with_capacity(256),
        nodes,
        start,
    };

    println!("\n== discovery (every node bootstraps through node 0)");
    let t = mesh.run_until(10_000, |m| {
        m.nodes.iter().all(|n| n.status().peers >= NODES - 1)
    })?;
    match t {
        Some(ms) => println!("every node knows all {} others after {ms} ms", NODES - 1),
        None => println!("discovery incomplete after 10 s"),
    }

    println!("\n== load reports: each node is a load balancer in front of {BACKENDS} backends");
    for i in 0..NODES {
        let n = &mut mesh.nodes[i];
        // Requests this balancer has in flight at each backend.
        for b in 0..BACKENDS {
            n.record_queue_len(
                b,
                ((i as u32 * 3 + b * 7) % 10) as f64 + if b == 0 { 20.0 } else { 0.0 },
            )?;
        }
        // A circular offload pattern (0 -> 1 -> 2 -> 0) that the projection removes.
        n.record_offload(0, 1, 2.0)?;
        n.record_offload(1, 2, 2.0)?;
        n.record_offload(2, 0, 2.0)?;
    }
    let t = mesh.run_until(10_000, |m| {
        m.nodes.iter().all(|n| n.status().records == NODES) && m.flows_agree()
    })?;
    if let Some(ms) = t {
        println!("all records everywhere and bit-identical flows after {ms} ms");
    }
    mesh.print_routes(0)?;

    println!("\n== partition: nodes 0-2 | nodes 3-4 (block both ways)");
    let addrs: Vec<SocketAddr> = mesh.nodes.iter().map(|n| n.local_addr()).collect();
    let side = |i: usize| i < 3;
    for (i, node) in mesh.nodes.iter_mut().enumerate() {
        for (j, a) in addrs.iter().enumerate() {
            if side(i) != side(j) {
                node.block(*a);
            }
        }
    }
    // Both sides change their view while cut off.
    mesh.nodes[1].record_queue_len(3, 40.0)?;
    mesh.nodes[4].record_queue_len(2, 35.0)?;
    mesh.run_until(1_500, |_| false)?;
    println!("side A and side B now disagree: {}", !mesh.flows_agree());
    mesh.print_routes(0)?;
    mesh.print_routes(4)?;

    println!("\n== heal (unblock)");
    for n in &mut mesh.nodes {
        for a in &addrs {
            n.unblock(*a);
        }
    }
    let t = mesh.run_until(20_000, |m| {
        m.flows_agree() && m.nodes.iter().all(|n| n.status().records == NODES)
    })?;
    match t {
        Some(ms) => {
            println!("all {NODES} nodes settled to bit-identical flows {ms} ms after the heal")
        }
        None => println!("not converged 20 s after the heal"),
    }
    for i in 0..NODES {
        mesh.print_routes(i)?;
    }
    println!("\n== status");
    mesh.status_line();
    Ok(())
}
