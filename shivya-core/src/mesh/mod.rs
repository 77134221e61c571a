//! mesh — where the layers meet: a node that joins the Kademlia network, replicates
//! workload records, runs the agent stack, and settles routes.
//!
//! * [`NodeState`] is the node as a deterministic state machine (quinn-proto's shape):
//!   `handle_datagram`, `handle_timeout`, `poll_transmit`, `poll_timeout`, `poll_event`,
//!   plus the proxy calls. No sockets, no clock, no threads.
//! * [`Node`] drives a `NodeState` over a non-blocking mio UDP socket; a host puts
//!   [`Node::raw_fd`] into its own poll loop and calls [`Node::step`].
//! * [`WorkloadMeshProxy`] is the three-call surface: `record_queue_len`,
//!   `record_offload`, `settle`.
//!
//! **Why every node settles to the same routes.** Each node's writes form one record,
//! tagged with its origin id and a version it alone increments. Records merge by highest
//! version per origin (a state-based CRDT), and anti-entropy (digest pages of
//! `(origin, version)` pairs, answered with the records the other side lacks) makes every
//! connected node hold the same records. The flow is summed in ascending origin order and
//! projected by the workspace's solver, deterministic either way (an exact sparse Cholesky
//! factor made once per topology by default, Jacobi CG from a zero start when the factor
//! would be too large), so equal records give bit-identical routes.
//! Each node owns a [`crate::balancer::Balancer`]: the host reports requests and asks
//! for picks; the node publishes its requests in flight per backend in its record and
//! hands the merged sums back (see `state/balance.rs`). Belief exchange between the
//! nodes' own agents (BELIEF frames) is off unless [`BeliefConfig::exchange`] is set: it
//! affects only the agents' free energies, never routes, picks or weights. A node that disappears without LEAVE keeps its last record
//! in the mesh (records carry no expiry: expiring by local clock would make nodes
//! disagree); a node that leaves publishes an empty record first.

mod belief;
mod config;
mod counters;
mod node;
mod outbox;
mod own;
mod proxy;
mod records;
pub mod sim;
mod state;
mod workload;

pub use crate::p2p::auth::{Keyring, KeyringError};
pub use belief::{coupling, BeliefConfig, BeliefReport, BeliefState, OBS_DIM};
pub use config::{usable_peer, Admission, MeshKey, NodeConfig, MAX_INCARNATION};
pub use counters::{Counters, DropCounters, RecordAges, Status};
pub use node::{Node, StepOutcome, RECV_BUDGET};
pub use proxy::WorkloadMeshProxy;
pub use records::{
    death_certificate, from_fixed, to_fixed, version_order, DigestPage, MergeOutcome, MergedSums,
    RecordStore, DEAD,
};
pub use state::{
    NodeState, AMPLIFICATION, ASSEMBLY_TIMEOUT_MS, MAX_ASSEMBLIES, RUMOR_RECORDS, RUMOR_SUBROUNDS,
};
pub use workload::{EdgeRecommendation, Reconciler, SettleMode, Settlement, WorkloadTopology};

use crate::flux::SubstrateError;
use crate::hodge::HodgeError;
use crate::p2p::P2pError;
use thiserror::Error;

/// Errors of the mesh layer. A call that returns one has changed nothing.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum MeshError {
    /// A setting is out of range.
    #[error("mesh setting {what} is invalid: {why}")]
    Config {
        /// Setting.
        what: &'static str,
        /// Why.
        why: String,
    },
    /// The topology is malformed.
    #[error("workload topology is invalid: {0}")]
    Topology(String),
    /// A vertex outside the topology.
    #[error("vertex {vertex} is unknown: the topology has {n} vertices")]
    UnknownVertex {
        /// Vertex given.
        vertex: u32,
        /// Vertices in the topology.
        n: u32,
    },
    /// An offload between vertices the topology does not connect.
    #[error("there is no edge between {src} and {dst} in the topology")]
    UnknownEdge {
        /// Source.
        src: u32,
        /// Destination.
        dst: u32,
    },
    /// An offload from a vertex to itself.
    #[error("offload from vertex {vertex} to itself")]
    SelfEdge {
        /// The vertex.
        vertex: u32,
    },
    /// A NaN, infinite, negative or absurdly large number (above 1e15) where a load value
    /// is needed.
    #[error("{what} = {value} is invalid: must be finite, non-negative and at most 1e15")]
    BadValue {
        /// Which input.
        what: &'static str,
        /// Value given.
        value: f64,
    },
    /// A slice of the wrong length.
    #[error("{what} has {got} entries, expected {expected}")]
    Length {
        /// Which input.
        what: &'static str,
        /// Expected.
        expected: usize,
        /// Given.
        got: usize,
    },
    /// Our record has no room for another entry (it must fit one frame).
    #[error("our record already holds the maximum of {max} {what}")]
    RecordFull {
        /// Which list.
        what: &'static str,
        /// Limit.
        max: usize,
    },
    /// A write after [`NodeState::leave`]: it would never be sent.
    #[error("the node has left the mesh; its writes would never reach a peer")]
    Left,
    /// The balancer refused a report or a setting.
    #[error(transparent)]
    Balancer(#[from] crate::balancer::BalancerError),
    /// The agent failed.
    #[error("agent: {0}")]
    Agent(SubstrateError),
    /// The reconciler failed.
    #[error(transparent)]
    Hodge(#[from] HodgeError),
    /// The p2p layer failed (bind, config, store).
    #[error(transparent)]
    P2p(P2pError),
    /// A socket error other than would-block.
    #[error("socket error: {0}")]
    Io(String),
    /// An invariant broke; please report it.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl MeshError {
    fn io(e: std::io::Error) -> MeshError {
        MeshError::Io(e.to_string())
    }
}
