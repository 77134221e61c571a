//! The DHT calls a host may make through the node, and the node's lifecycle (joining
//! more peers, leaving).

use super::NodeState;
use crate::mesh::MeshError;
use crate::p2p::{Body, Frame, NodeId};
use std::net::SocketAddr;

impl NodeState {
    /// Adds bootstrap addresses at run time. Refused, changing nothing, when one of them
    /// cannot be sent to from our listen address (see [`crate::mesh::usable_peer`]).
    pub fn bootstrap(&mut self, addrs: &[SocketAddr], now_ms: u64) -> Result<(), MeshError> {
        for a in addrs {
            crate::mesh::usable_peer(a, &self.config.listen)?;
        }
        let now_ms = self.clock(now_ms);
        self.kad.bootstrap(addrs, now_ms);
        self.drain_kad();
        Ok(())
    }

    /// Starts an iterative FIND_VALUE (result as [`crate::p2p::KadEvent::Value`]).
    pub fn dht_get(&mut self, key: NodeId, now_ms: u64) -> u64 {
        let now_ms = self.clock(now_ms);
        let id = self.kad.get(key, now_ms);
        self.drain_kad();
        id
    }

    /// Stores a value locally and on the K closest nodes (result as
    /// [`crate::p2p::KadEvent::Stored`]).
    pub fn dht_put(&mut self, key: NodeId, value: &[u8], now_ms: u64) -> Result<u64, MeshError> {
        let now_ms = self.clock(now_ms);
        let id = self.kad.put(key, value, now_ms).map_err(MeshError::P2p)?;
        self.drain_kad();
        Ok(id)
    }

    /// Starts an iterative FIND_NODE (result as [`crate::p2p::KadEvent::NodesFound`]).
    pub fn find_node(&mut self, target: NodeId, now_ms: u64) -> u64 {
        let now_ms = self.clock(now_ms);
        let id = self.kad.find_node(target, now_ms);
        self.drain_kad();
        id
    }

    /// Leaves the mesh: our record is replaced by an empty one (so our writes stop
    /// counting everywhere), pushed to every peer, followed by LEAVE. Afterwards the node
    /// ignores input and has no timers; drain `poll_transmit` once more and drop it.
    pub fn leave(&mut self) {
        if self.left {
            return;
        }
        self.own.clear(&mut self.records);
        let peers: Vec<SocketAddr> = self.kad.table().peers().map(|p| p.addr).collect();
        let last = Body::Delta(self.own.wire().clone());
        self.outbox
            .push_to(peers.iter().copied(), Frame::new(0, self.id, last));
        self.counters.deltas_sent += peers.len() as u64;
        self.outbox
            .push_to(peers, Frame::new(0, self.id, Body::Leave));
        self.left = true;
    }
}
