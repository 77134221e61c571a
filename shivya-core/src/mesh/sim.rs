//! A deterministic in-memory network for [`NodeState`]s: virtual time that jumps to the
//! next event, seeded loss, delay and duplication, partitions and isolation. Nothing
//! sleeps, nothing reads a clock: the same seed gives the same run, bit for bit.
//!
//! The tests use it for partition and chaos runs; `shivya-bench` uses it to measure
//! membership and to drive the balancing simulation with the real protocol.

use super::{MeshError, NodeConfig, NodeState};
use crate::rng::Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;

/// The simulated address of node `i`.
pub fn addr_of(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250 + 1) as u8], 7000))
}

/// How the simulated network treats datagrams.
#[derive(Debug, Clone, Copy)]
pub struct NetConfig {
    /// Probability a datagram is lost.
    pub loss: f64,
    /// Probability a delivered datagram arrives twice.
    pub duplicate: f64,
    /// Least one-way delay.
    pub min_delay_ms: u64,
    /// Largest one-way delay (uniform between the two).
    pub max_delay_ms: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            loss: 0.0,
            duplicate: 0.0,
            min_delay_ms: 1,
            max_delay_ms: 5,
        }
    }
}

/// (deliver at, sequence, from, to, payload).
type InFlight = (u64, u64, usize, usize, Vec<u8>);

/// `n` [`NodeState`]s on a simulated network.
#[derive(Debug)]
pub struct Sim {
    /// The nodes; node `i` listens on [`addr_of`]`(i)`.
    pub nodes: Vec<NodeState>,
    /// Dead nodes neither run timers nor send nor receive.
    pub alive: Vec<bool>,
    /// Partition group per node; frames cross only within a group.
    pub group: Vec<u32>,
    /// Isolated nodes neither send nor receive.
    pub isolated: Vec<bool>,
    /// Virtual time, milliseconds.
    pub now: u64,
    /// The network's behaviour.
    pub net: NetConfig,
    rng: Rng,
    index: BTreeMap<SocketAddr, usize>,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    buf: Vec<u8>,
    /// Datagrams delivered so far.
    pub delivered: u64,
    /// Datagrams lost (by chance, partition or isolation).
    pub lost: u64,
}

impl Sim {
    /// `n` nodes; node 0 is the seed every other node bootstraps through (unless
    /// `config(i)` names its own bootstrap list). Fails on the first invalid config.
    pub fn new(
        n: usize,
        seed: u64,
        net: NetConfig,
        mut config: impl FnMut(usize) -> NodeConfig,
    ) -> Result<Sim, MeshError> {
        let mut nodes = Vec::with_capacity(n);
        let mut index = BTreeMap::new();
        for i in 0..n {
            let mut c = config(i);
            c.listen = addr_of(i);
            if i > 0 && c.bootstrap.is_empty() {
                c.bootstrap = vec![addr_of(0)];
            }
            nodes.push(NodeState::new(c, 0)?);
            index.insert(addr_of(i), i);
        }
        Ok(Sim {
            alive: vec![true; n],
            group: vec![0; n],
            isolated: vec![false; n],
            nodes,
            now: 0,
            net,
            rng: Rng::new(seed),
            index,
            queue: BinaryHeap::new(),
            seq: 0,
            buf: Vec::new(),
            delivered: 0,
            lost: 0,
        })
    }

    fn can_talk(&self, a: usize, b: usize) -> bool {
        self.alive[a]
            && self.alive[b]
            && !self.isolated[a]
            && !self.isolated[b]
            && self.group[a] == self.group[b]
    }

    fn collect(&mut self) {
        for i in 0..self.nodes.len() {
            while let Some(destination) = self.nodes[i].poll_transmit(&mut self.buf) {
                let Some(&j) = self.index.get(&destination) else {
                    continue;
                };
                if !self.can_talk(i, j) || self.rng.chance(self.net.loss) {
                    self.lost += 1;
                    continue;
                }
                let copies = if self.rng.chance(self.net.duplicate) {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let span = self.net.max_delay_ms.saturating_sub(self.net.min_delay_ms);
                    let at = self.now + self.net.min_delay_ms + self.rng.below(span + 1);
                    self.seq += 1;
                    self.queue
                        .push(Reverse((at, self.seq, i, j, self.buf.clone())));
                }
            }
        }
    }

    /// Runs until virtual time `until`.
    pub fn run_until(&mut self, until: u64) {
        loop {
            self.collect();
            let mut next = u64::MAX;
            if let Some(Reverse((at, ..))) = self.queue.peek() {
                next = *at;
            }
            for (i, n) in self.nodes.iter().enumerate() {
                if self.alive[i] {
                    if let Some(t) = n.poll_timeout() {
                        next = next.min(t);
                    }
                }
            }
            if next > until {
                self.now = until;
                return;
            }
            self.now = self.now.max(next);
            while let Some(Reverse((at, ..))) = self.queue.peek() {
                if *at > self.now {
                    break;
                }
                let Some(Reverse((_, _, from, to, payload))) = self.queue.pop() else {
                    break;
                };
                // A partition that starts while a frame is in flight drops it too.
                if self.can_talk(from, to) {
                    self.delivered += 1;
                    self.nodes[to].handle_datagram(addr_of(from), &payload, self.now);
                }
            }
            for i in 0..self.nodes.len() {
                if self.alive[i] && self.nodes[i].poll_timeout().is_some_and(|t| t <= self.now) {
                    self.nodes[i].handle_timeout(self.now);
                }
            }
        }
    }

    /// Splits the nodes into groups; `f(i)` is node `i`'s group.
    pub fn partition(&mut self, f: impl Fn(usize) -> u32) {
        for i in 0..self.nodes.len() {
            self.group[i] = f(i);
        }
    }

    /// Ends every partition and isolation.
    pub fn heal(&mut self) {
        self.group.iter_mut().for_each(|g| *g = 0);
        self.isolated.iter_mut().for_each(|x| *x = false);
    }

    /// The settled flow of node `i`, as bits (for bit-identity checks).
    pub fn flow_bits(&mut self, i: usize) -> Result<Vec<u64>, MeshError> {
        let s = self.nodes[i].settlement()?;
        Ok(s.flow.iter().map(|x| x.to_bits()).collect())
    }

    /// Frames sent by node `i` so far.
    pub fn frames_sent(&self, i: usize) -> u64 {
        self.nodes[i].status().counters.frames_out
    }
}
