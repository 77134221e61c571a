//! `Node`: a [`NodeState`] driven over a non-blocking mio UDP socket. No threads, no
//! sleeps, no clock: the host calls [`Node::step`] with the time and waits on
//! [`Node::raw_fd`] for at most [`Node::next_timeout_ms`].

use super::config::NodeConfig;
use super::counters::Status;
use super::state::NodeState;
use super::workload::EdgeRecommendation;
use super::MeshError;
use crate::p2p::protocol::MAX_FRAME;
use crate::p2p::{Recv, UdpTransport};
use std::net::SocketAddr;

/// Most datagrams read in one `step`, so one busy socket cannot starve the host loop.
pub const RECV_BUDGET: usize = 512;

/// What one [`Node::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StepOutcome {
    /// Datagrams read.
    pub received: usize,
    /// Datagrams sent.
    pub sent: usize,
    /// The receive budget ran out with data still waiting: step again soon.
    pub more_pending: bool,
}

/// A mesh node on a real UDP socket.
#[derive(Debug)]
pub struct Node {
    transport: UdpTransport,
    state: NodeState,
    buf: Vec<u8>,
    /// Reused for every datagram sent.
    send_buf: Vec<u8>,
    more_pending: bool,
}

impl Node {
    /// Binds `config.listen` (port 0 picks one) and starts joining at `now_ms`.
    pub fn bind(config: NodeConfig, now_ms: u64) -> Result<Node, MeshError> {
        let state = NodeState::new(config.clone(), now_ms)?;
        let transport =
            UdpTransport::bind_with(config.listen, config.reuse_port).map_err(MeshError::P2p)?;
        let mut node = Node {
            transport,
            state,
            buf: vec![0u8; MAX_FRAME + 1],
            send_buf: Vec::with_capacity(MAX_FRAME),
            more_pending: false,
        };
        node.flush()?;
        Ok(node)
    }

    /// Reads what has arrived, runs due timers and sends what is queued.
    pub fn step(&mut self, now_ms: u64) -> Result<StepOutcome, MeshError> {
        let mut out = StepOutcome::default();
        loop {
            if out.received == RECV_BUDGET {
                out.more_pending = true;
                break;
            }
            match self.transport.recv(&mut self.buf).map_err(MeshError::io)? {
                Recv::Datagram(n, from) => {
                    out.received += 1;
                    let Node { state, buf, .. } = self;
                    state.handle_datagram(from, &buf[..n], now_ms);
                }
                Recv::Blocked => self.state.count_blocked(),
                Recv::Oversized(from) => {
                    // Hand the state machine the oversize so it counts it like any frame.
                    out.received += 1;
                    let Node { state, buf, .. } = self;
                    state.handle_datagram(from, &buf[..], now_ms);
                }
                Recv::Empty => break,
            }
        }
        self.more_pending = out.more_pending;
        let node_now = self.state.advance_clock(now_ms);
        if self.state.poll_timeout().is_some_and(|t| t <= node_now) {
            self.state.handle_timeout(now_ms);
        }
        out.sent = self.flush()?;
        Ok(out)
    }

    fn flush(&mut self) -> Result<usize, MeshError> {
        let mut sent = 0;
        while let Some(destination) = self.state.poll_transmit(&mut self.send_buf) {
            match self.transport.send(destination, &self.send_buf) {
                Ok(true) => sent += 1,
                Ok(false) if self.transport.is_blocked(&destination) => {
                    self.state.count_blocked();
                }
                Ok(false) => {}
                // One destination the socket cannot send to (a peer address that is
                // unreachable or of the wrong family, possibly learned from a forged frame)
                // must not stop the node: count it and send the rest.
                Err(e) => {
                    self.state.count_send_error();
                    tracing::debug!(peer = %destination, error = %e, "send failed");
                }
            }
        }
        Ok(sent)
    }

    /// Milliseconds until `step` has timer work (0 when it has work now). After the host
    /// clock steps back the node's clock moves on from where it was, so the wait is not
    /// stretched by the size of the step.
    pub fn next_timeout_ms(&self, now_ms: u64) -> u64 {
        if self.more_pending {
            return 0;
        }
        let now_ms = self.state.node_time(now_ms);
        self.state
            .poll_timeout()
            .map_or(u64::MAX, |t| t.saturating_sub(now_ms))
    }

    /// The socket's file descriptor: readable means `step` has datagrams to read.
    #[cfg(unix)]
    pub fn raw_fd(&self) -> std::os::unix::io::RawFd {
        self.transport.raw_fd()
    }

    /// The socket, for registering with a mio `Poll`.
    pub fn socket_mut(&mut self) -> &mut mio::net::UdpSocket {
        self.transport.socket_mut()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.transport.local_addr()
    }

    /// Drops all traffic to and from `addr` (partition tests).
    pub fn block(&mut self, addr: SocketAddr) {
        self.transport.block(addr);
    }

    /// Drops each outgoing datagram with probability `p` (seeded): loss on real sockets,
    /// for tests. `p = 0` turns it off.
    pub fn set_loss(&mut self, p: f64, seed: u64) {
        self.transport.set_loss(p, seed);
    }

    /// Lifts a [`block`](Self::block).
    pub fn unblock(&mut self, addr: SocketAddr) {
        self.transport.unblock(addr);
    }

    /// The state machine.
    pub fn state(&self) -> &NodeState {
        &self.state
    }

    /// The state machine, mutably (DHT calls, observations, events).
    pub fn state_mut(&mut self) -> &mut NodeState {
        &mut self.state
    }

    /// A snapshot.
    pub fn status(&self) -> Status {
        self.state.status()
    }

    /// See [`NodeState::record_queue_len`].
    pub fn record_queue_len(&mut self, vertex: u32, q: f64) -> Result<(), MeshError> {
        self.state.record_queue_len(vertex, q)
    }

    /// See [`NodeState::record_offload`].
    pub fn record_offload(&mut self, src: u32, dst: u32, rate: f64) -> Result<(), MeshError> {
        self.state.record_offload(src, dst, rate)
    }

    /// See [`NodeState::settle`].
    pub fn settle(&mut self) -> Result<Vec<EdgeRecommendation>, MeshError> {
        self.state.settle()
    }

    /// Leaves the mesh (empty record and LEAVE to every peer, sent now).
    pub fn leave(&mut self) -> Result<(), MeshError> {
        self.state.leave();
        self.flush().map(|_| ())
    }
}
