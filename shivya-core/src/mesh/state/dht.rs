//! The DHT calls a host may make through the node, and the node's lifecycle (joining
//! more peers, taking a new identity, leaving).

use super::NodeState;
use crate::mesh::records::MergeOutcome;
use crate::mesh::MeshError;
use crate::p2p::protocol::RecordWire;
use crate::p2p::{Body, Frame, Kademlia, NodeId};
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

    /// Our origin is held somewhere at a version we cannot outbid: the top of the
    /// own-version range (2^63 − 1) or a death certificate above it, which only a forged
    /// frame can have put there (we never write so high). Without signed records nothing
    /// stops such a frame, and a total order always has a top, so no later write under
    /// this id could ever be seen again. The node instead takes a new id and goes on:
    /// it issues the final certificate for the old id (version `u64::MAX`, which nothing
    /// can beat, so every node drops the forged content for good), republishes its own
    /// entries under the new id, and rejoins through every peer it knew. Records, the
    /// balancer's state and the counters are kept; the belief agent starts afresh (its
    /// seed follows the id). Counted as `identity_rotations`; [`NodeState::id`] and
    /// [`NodeState::config`]'s `id` name the new id.
    pub(super) fn rotate_identity(&mut self) {
        let fold = self.id.fold64();
        let new = NodeId::from_seed(self.rng.next_u64() ^ fold);
        let now_ms = self.clock_ms;
        // Both can only fail on a configuration `validate` refused; then nothing changes.
        let Ok(mut kad) = Kademlia::new(new, self.config.kad, self.config.seed ^ fold) else {
            return;
        };
        let Ok(belief) = super::BeliefState::new(new, self.config.belief) else {
            return;
        };
        let old = self.id;
        let final_cert = RecordWire {
            origin: old,
            version: u64::MAX,
            queue: Vec::new(),
            offload: Vec::new(),
            seal: None,
        };
        if self.records.merge(&final_cert) == MergeOutcome::Applied {
            self.learned(old, u64::MAX);
        }
        let peers: Vec<std::net::SocketAddr> = self.kad.table().peers().map(|p| p.addr).collect();
        kad.bootstrap(&peers, now_ms);
        self.kad = kad;
        self.belief = belief;
        self.id = new;
        self.config.id = Some(new);
        let version = self.config.incarnation << 20;
        self.own
            .rename(&mut self.records, new, version.saturating_add(1));
        self.digest_cursor = NodeId::ZERO;
        self.counters.identity_rotations += 1;
        tracing::warn!(old = %old, new = %new, "own origin pushed past the top of the version range; continuing under a new id");
        self.drain_kad();
    }

    /// Replaces the keyring of an encrypted mesh at run time (key rotation: add the new
    /// key everywhere, make it primary everywhere, then remove the old one). Refused,
    /// changing nothing, on a node configured without a keyring: encryption cannot be
    /// turned on or off at run time, since peers would stop understanding each other.
    pub fn set_keyring(&mut self, ring: crate::mesh::Keyring) -> Result<(), MeshError> {
        if self.config.keyring.is_none() || !self.envelope.rekey(&ring) {
            return Err(MeshError::Config {
                what: "keyring",
                why:
                    "this node was started without encryption; a keyring can only replace a keyring"
                        .into(),
            });
        }
        self.config.keyring = Some(ring);
        Ok(())
    }

    /// Leaves the mesh: our record is replaced by an empty one (so our writes stop
    /// counting everywhere), pushed to every peer, followed by LEAVE. Afterwards the node
    /// ignores input and has no timers; drain `poll_transmit` once more and drop it.
    pub fn leave(&mut self) {
        if self.left {
            return;
        }
        self.room_to_write();
        self.own.clear(&mut self.records);
        let peers: Vec<SocketAddr> = self.kad.table().peers().map(|p| p.addr).collect();
        let last = Body::Delta(self.own.wire().clone());
        self.outbox
            .push_to(peers.iter().copied(), Frame::new(0, self.id, last));
        self.counters.deltas_sent += peers.len() as u64;
        let leave = self.leave_body();
        self.outbox.push_to(peers, Frame::new(0, self.id, leave));
        self.left = true;
    }
}
