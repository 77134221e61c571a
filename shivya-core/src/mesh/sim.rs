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
    /// Frames and bytes handed to the network, by frame type (the header's type byte of a
    /// clear frame; index 0 counts sealed frames and anything without a readable header).
    pub sent_by_type: [(u64, u64); 32],
    /// Min-heap of (next timeout, node); an entry counts while `scheduled` names it.
    timers: BinaryHeap<Reverse<(u64, usize)>>,
    /// The timeout each node's live heap entry stands for.
    scheduled: Vec<Option<u64>>,
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
            sent_by_type: [(0, 0); 32],
            timers: BinaryHeap::new(),
            scheduled: Vec::new(),
        })
    }

    fn can_talk(&self, a: usize, b: usize) -> bool {
        self.alive[a]
            && self.alive[b]
            && !self.isolated[a]
            && !self.isolated[b]
            && self.group[a] == self.group[b]
    }

    /// Drains the outboxes of `nodes` (ascending) onto the network.
    fn collect(&mut self, nodes: &[usize]) {
        for &i in nodes {
            while let Some(destination) = self.nodes[i].poll_transmit(&mut self.buf) {
                let kind = match self.buf.get(..4) {
                    Some([b'S', b'H', _, t]) if usize::from(*t) < 32 => usize::from(*t),
                    _ => 0,
                };
                self.sent_by_type[kind].0 += 1;
                self.sent_by_type[kind].1 += self.buf.len() as u64;
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

    /// Puts node `i`'s next timeout on the timer heap, unless that entry is there already.
    fn schedule(&mut self, i: usize) {
        let t = if self.alive[i] {
            self.nodes[i].poll_timeout()
        } else {
            None
        };
        if t != self.scheduled[i] {
            self.scheduled[i] = t;
            if let Some(t) = t {
                self.timers.push(Reverse((t, i)));
            }
        }
    }

    /// The earliest live timer, dropping entries that a later change replaced.
    fn next_timer(&mut self) -> Option<u64> {
        while let Some(&Reverse((t, i))) = self.timers.peek() {
            if self.scheduled[i] == Some(t) {
                return Some(t);
            }
            self.timers.pop();
        }
        None
    }

    /// Runs until virtual time `until`.
    ///
    /// Each step jumps to the earliest frame or timer, delivers every frame due, then runs
    /// every due timer in node order and sends what the touched nodes queued. Only the
    /// nodes an event touched are looked at (a heap holds every node's next timeout), so
    /// a step costs the events it handles, not the number of nodes. The host may call any
    /// node, or change `alive`, between two runs: every node is looked at once on entry.
    pub fn run_until(&mut self, until: u64) {
        let n = self.nodes.len();
        self.scheduled.clear();
        self.scheduled.resize(n, None);
        self.timers.clear();
        let mut touched: Vec<usize> = (0..n).collect();
        let mut due: Vec<usize> = Vec::new();
        loop {
            touched.sort_unstable();
            touched.dedup();
            self.collect(&touched);
            for &i in &touched {
                self.schedule(i);
            }
            touched.clear();
            let mut next = u64::MAX;
            if let Some(Reverse((at, ..))) = self.queue.peek() {
                next = *at;
            }
            if let Some(t) = self.next_timer() {
                next = next.min(t);
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
                    touched.push(to);
                }
            }
            // Due: every live timer at or before now, and every node a frame just made due.
            while let Some(t) = self.next_timer() {
                if t > self.now {
                    break;
                }
                if let Some(Reverse((_, i))) = self.timers.pop() {
                    self.scheduled[i] = None;
                    due.push(i);
                }
            }
            due.extend(touched.iter().copied());
            due.sort_unstable();
            due.dedup();
            for &i in &due {
                if self.alive[i] && self.nodes[i].poll_timeout().is_some_and(|t| t <= self.now) {
                    self.nodes[i].handle_timeout(self.now);
                }
                // Sent what it queued, and its timer back on the heap.
                touched.push(i);
            }
            due.clear();
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
