//! Real UDP on 127.0.0.1: nodes in one process, driven by a mio poll loop that waits on the
//! sockets for at most `next_timeout_ms`. No fixed sleeps anywhere.

use mio::{Events, Interest, Poll, Token};
use shivya_core::mesh::{MeshError, Node, NodeConfig, WorkloadTopology};
use shivya_core::p2p::{NodeId, P2pError};
use std::time::{Duration, Instant};

struct Cluster {
    poll: Poll,
    events: Events,
    nodes: Vec<Option<Node>>,
    start: Instant,
}

fn config(i: usize, vertices: u32) -> NodeConfig {
    NodeConfig {
        seed: 9_000 + i as u64,
        topology: WorkloadTopology::for_backends(vertices).unwrap(),
        ..NodeConfig::default()
    }
}

impl Cluster {
    fn new(n: usize, vertices: u32) -> Cluster {
        let poll = Poll::new().unwrap();
        let start = Instant::now();
        let mut nodes: Vec<Option<Node>> = Vec::new();
        let mut seed_addr = None;
        for i in 0..n {
            let mut c = config(i, vertices);
            if let Some(a) = seed_addr {
                c.bootstrap = vec![a];
            }
            let mut node = Node::bind(c, 0).unwrap();
            if i == 0 {
                seed_addr = Some(node.local_addr());
            }
            poll.registry()
                .register(node.socket_mut(), Token(i), Interest::READABLE)
                .unwrap();
            nodes.push(Some(node));
        }
        Cluster {
            poll,
            events: Events::with_capacity(256),
            nodes,
            start,
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn live(&mut self) -> impl Iterator<Item = &mut Node> {
        self.nodes.iter_mut().flatten()
    }

    /// One round of the host loop: wait for a socket or the earliest timer, then step.
    fn turn(&mut self) {
        let now = self.now();
        let wait = self
            .nodes
            .iter()
            .flatten()
            .map(|n| n.next_timeout_ms(now))
            .min()
            .unwrap_or(10);
        self.poll
            .poll(&mut self.events, Some(Duration::from_millis(wait.min(50))))
            .unwrap();
        let now = self.now();
        for n in self.live() {
            n.step(now).unwrap();
        }
    }

    /// Runs the loop until `done` holds; returns the elapsed milliseconds, or `None` at
    /// the deadline.
    fn run_until(
        &mut self,
        deadline_ms: u64,
        mut done: impl FnMut(&mut Cluster) -> bool,
    ) -> Option<u64> {
        let begin = self.now();
        loop {
            if done(self) {
                return Some(self.now() - begin);
            }
            if self.now() - begin > deadline_ms {
                return None;
            }
            self.turn();
        }
    }

    fn run_for(&mut self, ms: u64) {
        let end = self.now() + ms;
        while self.now() < end {
            self.turn();
        }
    }

    fn node(&mut self, i: usize) -> &mut Node {
        self.nodes[i].as_mut().unwrap()
    }

    fn flow_bits(&mut self, i: usize) -> Vec<u64> {
        let s = self.node(i).state_mut().settlement().unwrap();
        s.flow.iter().map(|x| x.to_bits()).collect()
    }
}

#[test]
fn seven_nodes_discover_each_other_quickly() {
    let n = 7;
    let mut c = Cluster::new(n, 3);
    let half = c
        .run_until(10_000, |c| {
            c.nodes.iter().flatten().all(|x| x.status().peers >= n / 2)
        })
        .expect("every node sees at least N/2 peers");
    let full = c
        .run_until(10_000, |c| {
            let ids: Vec<NodeId> = c.nodes.iter().flatten().map(|x| x.state().id()).collect();
            c.nodes.iter().flatten().all(|x| {
                let me = x.state().id();
                let k = x.state().config().kad.k;
                let mut per = std::collections::BTreeMap::new();
                for id in &ids {
                    if let Some(b) = me.bucket_index(id) {
                        *per.entry(b).or_insert(0usize) += 1;
                    }
                }
                let cap: usize = per.values().map(|&v| v.min(k)).sum();
                x.status().peers >= cap.min(n - 1)
            })
        })
        .expect("full discovery");
    println!(
        "discovery on 127.0.0.1 with {n} nodes: N/2 peers each after {half} ms, full after {} ms",
        half + full
    );
}

/// Node `i`'s writes: every vertex and two edges, with values inexact in binary (tenths,
/// thousandths, thirds), so a node that summed records in another order would differ in
/// the last bits.
fn write(c: &mut Cluster, i: usize, round: u32) {
    let node = c.node(i);
    for v in 0..4u32 {
        let q = 0.1 * (1 + (i as u32 * 5 + round * 3 + v) % 9) as f64 + 1e-3 * i as f64;
        node.record_queue_len(v, q).unwrap();
    }
    node.record_offload(
        (i as u32 + 1) % 4,
        (i as u32 + 2) % 4,
        0.1 + round as f64 / 3.0,
    )
    .unwrap();
    node.record_offload(0, 1, 1.0 / 3.0 + 1e-3 * i as f64)
        .unwrap();
}

#[test]
fn partition_by_blocking_then_heal_settles_all_seven_to_the_same_bits() {
    let n = 7;
    let mut c = Cluster::new(n, 4);
    c.run_until(10_000, |c| {
        c.nodes.iter().flatten().all(|x| x.status().peers >= n / 2)
    })
    .expect("discovery");
    let addrs: Vec<_> = c.nodes.iter().flatten().map(|x| x.local_addr()).collect();
    let side = |i: usize| i < 4;
    for i in 0..n {
        for (j, a) in addrs.iter().enumerate() {
            if side(i) != side(j) {
                c.node(i).block(*a);
            }
        }
    }
    for i in 0..n {
        write(&mut c, i, 1);
    }
    c.run_for(1_000);
    assert_ne!(
        c.flow_bits(0),
        c.flow_bits(6),
        "the sides agree while cut off"
    );
    for i in 0..n {
        write(&mut c, i, 2);
    }
    c.run_for(300);
    for i in 0..n {
        for a in &addrs {
            c.node(i).unblock(*a);
        }
    }
    let healed = c.run_until(20_000, |c| {
        let first = c.flow_bits(0);
        let all_records = c.nodes.iter().flatten().all(|x| x.status().records == n);
        all_records && (1..n).all(|i| c.flow_bits(i) == first)
    });
    let ms = healed.expect("all seven nodes settle to bit-identical flows after the heal");
    println!("converged {ms} ms after unblock");
    let blocked: u64 = c
        .nodes
        .iter()
        .flatten()
        .map(|x| x.status().counters.dropped.blocked)
        .sum();
    assert!(blocked > 0, "block dropped nothing");
    let routes = c.node(3).settle().unwrap();
    assert!(!routes.is_empty());
}

#[test]
fn a_node_that_vanishes_without_leave_is_removed_from_every_table() {
    let n = 5;
    let mut c = Cluster::new(n, 2);
    c.run_until(10_000, |c| {
        c.nodes.iter().flatten().all(|x| x.status().peers >= n - 1)
    })
    .expect("discovery");
    // The one that will vanish is a balancer with requests in flight at backend 0.
    let now = c.now();
    for _ in 0..7 {
        c.node(4).state_mut().request_started(0, now).unwrap();
    }
    let gone = c.node(4).state().id();
    c.run_until(10_000, |c| {
        c.nodes.iter().flatten().all(|x| {
            x.state()
                .records()
                .get(&gone)
                .is_some_and(|r| !r.queue.is_empty())
        })
    })
    .expect("its in-flight record reaches every node");
    c.nodes[4] = None; // socket closed, no LEAVE
    let ms = c
        .run_until(30_000, |c| {
            c.nodes.iter().flatten().all(|x| {
                x.state()
                    .records()
                    .get(&gone)
                    .is_some_and(|r| r.version & shivya_core::mesh::DEAD != 0 && r.queue.is_empty())
            })
        })
        .expect("the vanished balancer's requests stop counting everywhere");
    println!("vanished balancer's record withdrawn on every node after {ms} ms");
    assert!(ms <= 5_000, "took {ms} ms (target 5 s)");
    let digests: Vec<u64> = c
        .nodes
        .iter()
        .flatten()
        .map(|x| x.state().records().view_digest())
        .collect();
    assert!(
        digests.iter().all(|d| *d == digests[0]),
        "one view: {digests:?}"
    );
    let ms = c
        .run_until(30_000, |c| {
            c.nodes
                .iter()
                .flatten()
                .all(|x| x.state().kademlia().table().get(&gone).is_none())
        })
        .expect("the vanished node is removed everywhere");
    println!("vanished node removed from all tables after {ms} ms");
    // The rest still work together.
    assert!(c.nodes.iter().flatten().all(|x| x.status().peers >= n - 2));
}

#[test]
fn binding_a_port_in_use_is_a_clear_error() {
    let first = Node::bind(config(0, 2), 0).unwrap();
    let taken = NodeConfig {
        listen: first.local_addr(),
        ..config(1, 2)
    };
    match Node::bind(taken, 0) {
        Err(MeshError::P2p(P2pError::Bind { addr, reason })) => {
            assert_eq!(addr, first.local_addr());
            assert!(!reason.is_empty());
        }
        other => panic!("expected a bind error, got {other:?}"),
    }
}

#[test]
fn garbage_datagrams_from_a_real_socket_are_counted_and_harmless() {
    let mut c = Cluster::new(3, 2);
    c.run_until(10_000, |c| {
        c.nodes.iter().flatten().all(|x| x.status().peers >= 2)
    })
    .expect("discovery");
    let target = c.node(0).local_addr();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(b"not a frame", target).unwrap();
    sock.send_to(&[0u8; 2000], target).unwrap();
    let mut truncated = b"SH\x01\x04".to_vec();
    truncated.extend_from_slice(&[0; 28]);
    truncated.push(9);
    sock.send_to(&truncated, target).unwrap();
    c.run_until(5_000, |c| c.node(0).status().counters.dropped.total() >= 3)
        .expect("the three bad datagrams are counted");
    let d = c.node(0).status().counters.dropped;
    assert_eq!((d.too_short, d.oversized, d.truncated), (1, 1, 1));
    assert!(
        c.nodes.iter().flatten().all(|x| x.status().peers >= 2),
        "the mesh keeps working"
    );
}

#[test]
fn chaos_on_real_sockets_ends_in_identical_records_and_bits() {
    let n = 7;
    let mut c = Cluster::new(n, 4);
    c.run_until(10_000, |c| {
        c.nodes.iter().flatten().all(|x| x.status().peers >= n / 2)
    })
    .expect("discovery");
    for (i, node) in c.nodes.iter_mut().flatten().enumerate() {
        node.set_loss(0.15, 1_000 + i as u64);
    }
    for i in 0..n {
        write(&mut c, i, 0);
    }
    let addrs: Vec<_> = c.nodes.iter().flatten().map(|x| x.local_addr()).collect();
    let step = c.node(0).state().config().step_interval_ms;
    let victim = 1 + (c.now() as usize % (n - 1));
    let mut disagreed = false;
    for s in 0..60u32 {
        // Isolation from step 15, a hard partition from 30, both healed at 45; every node
        // keeps writing through it.
        match s {
            15 => {
                for j in 0..n {
                    if j != victim {
                        c.node(victim).block(addrs[j]);
                        c.node(j).block(addrs[victim]);
                    }
                }
            }
            30 => {
                for i in 0..n {
                    for (j, a) in addrs.iter().enumerate() {
                        if (i < n / 2) != (j < n / 2) {
                            c.node(i).block(*a);
                        }
                    }
                }
            }
            45 => {
                for i in 0..n {
                    for a in &addrs {
                        c.node(i).unblock(*a);
                    }
                }
            }
            _ => {}
        }
        if s % 10 == 5 {
            for i in 0..n {
                write(&mut c, i, s);
            }
        }
        c.run_for(step);
        if (30..45).contains(&s) && c.flow_bits(0) != c.flow_bits(n - 1) {
            disagreed = true;
        }
        let f: f64 = c
            .nodes
            .iter()
            .flatten()
            .map(|x| x.status().f_collective)
            .sum();
        assert!(f.is_finite(), "F_collective {f} at step {s}");
    }
    assert!(disagreed, "the sides never disagreed while cut off");
    let healed = c.run_until(20_000, |c| {
        let first = c.flow_bits(0);
        let all_records = c.nodes.iter().flatten().all(|x| x.status().records == n);
        all_records && (1..n).all(|i| c.flow_bits(i) == first)
    });
    let ms = healed.expect("all seven nodes hold every record and settle to the same bits");
    println!("real-socket chaos: identical after {ms} ms more, isolated node {victim}");
    c.run_until(15_000, |c| {
        c.nodes.iter().flatten().all(|x| x.status().peers >= n / 2)
    })
    .expect("every node sees at least N/2 peers after recovery");
}

#[test]
fn a_clock_that_steps_back_does_not_stretch_the_wait() {
    let cfg = NodeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..NodeConfig::default()
    };
    let mut node = Node::bind(cfg, 0).unwrap();
    node.step(1_000_000).unwrap();
    let ahead = node.next_timeout_ms(1_000_000);
    let back = node.next_timeout_ms(0);
    assert!(ahead <= 100, "{ahead}");
    assert_eq!(back, ahead, "a step back of 1000 s changed the wait");
}

#[test]
fn a_peer_the_socket_cannot_send_to_does_not_stop_the_node() {
    // An IPv6 peer in the routing table of an IPv4 node (as a forged FOUND_NODES could put
    // there): every send to it fails, the node counts it and keeps stepping.
    use shivya_core::p2p::{Body, Frame};
    let cfg = NodeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..NodeConfig::default()
    };
    let mut node = Node::bind(cfg, 0).unwrap();
    let v6: std::net::SocketAddr = "[::1]:7000".parse().unwrap();
    let ping = Frame::new(1, NodeId::from_seed(77), Body::Ping)
        .encode()
        .unwrap();
    node.state_mut().handle_datagram(v6, &ping, 1);
    for t in [2, 100, 200, 5_000] {
        node.step(t).unwrap();
    }
    assert!(node.status().counters.send_errors > 0);
}

#[test]
fn with_reuse_port_a_second_generation_binds_the_same_port() {
    let cfg = |reuse_port| NodeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        reuse_port,
        ..NodeConfig::default()
    };
    let old = Node::bind(cfg(true), 0).unwrap();
    let same = NodeConfig {
        listen: old.local_addr(),
        ..cfg(true)
    };
    let new = Node::bind(same.clone(), 0)
        .expect("the next generation binds while the old holds the port");
    assert_eq!(new.local_addr(), old.local_addr());
    // A socket that did not ask for it still finds the port in use.
    let plain = NodeConfig {
        reuse_port: false,
        ..same
    };
    assert!(matches!(
        Node::bind(plain, 0),
        Err(MeshError::P2p(P2pError::Bind { .. }))
    ));
    drop(old);
    let mut new = new;
    new.step(1).unwrap();
}

#[test]
fn after_the_host_clock_steps_back_timers_run_on_schedule() {
    // The host once reported a time 2000 s ahead, then its clock went back to normal: the
    // node's timers keep their period instead of waiting 2000 s for the host to catch up.
    let cfg = NodeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..NodeConfig::default()
    };
    let step = cfg.step_interval_ms;
    let mut node = Node::bind(cfg, 0).unwrap();
    node.step(2_000_000).unwrap();
    let before = node.status().counters.layer_steps;
    for t in (10..=1_000).step_by(10) {
        node.step(t).unwrap();
    }
    let steps = node.status().counters.layer_steps - before;
    assert!(
        steps >= 1_000 / step - 1,
        "{steps} layer steps in 1000 ms after the step back"
    );
    assert!(node.next_timeout_ms(1_000) <= step);
}

#[test]
fn records_of_a_thousand_backends_cross_real_sockets_in_chunks() {
    let (n, backends) = (4, 1_000);
    let mut c = Cluster::new(n, backends);
    for i in 0..n {
        for v in 0..backends {
            let q = 0.25 * f64::from(1 + (v + i as u32) % 5);
            c.node(i).state_mut().record_queue_len(v, q).unwrap();
        }
    }
    let took = c
        .run_until(10_000, |c| {
            (0..n).all(|i| {
                let s = c.node(i).state();
                s.records().len() == n && s.records().iter().all(|r| r.queue.len() == 1_000)
            })
        })
        .expect("records of 1 000 entries never reached every node");
    println!("{n} records of {backends} backends (21 CHUNK parts each) everywhere after {took} ms");
    let bits = c.flow_bits(0);
    for i in 1..n {
        assert_eq!(c.flow_bits(i), bits, "node {i}");
    }
    // Node 0: Σ_i 0.25·(1 + i % 5) over the four writers at vertex 0.
    let q0 = c.node(0).state_mut().settlement().unwrap().queue[0];
    assert_eq!(q0, 0.25 * (1.0 + 2.0 + 3.0 + 4.0));
}
