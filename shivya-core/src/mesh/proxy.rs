//! `WorkloadMeshProxy`: the three calls most users need, over a [`Node`].

use super::config::NodeConfig;
use super::counters::Status;
use super::node::{Node, StepOutcome};
use super::workload::EdgeRecommendation;
use super::MeshError;
use std::net::SocketAddr;

/// Report load, read routes. The mesh underneath does the rest.
///
/// ```no_run
/// use shivya_core::mesh::{NodeConfig, WorkloadMeshProxy, WorkloadTopology};
/// # fn now_ms() -> u64 { 0 }
/// let config = NodeConfig { topology: WorkloadTopology::complete(3)?, ..NodeConfig::default() };
/// let mut proxy = WorkloadMeshProxy::bind(config, now_ms())?;
/// proxy.record_queue_len(0, 12.0)?;     // 12 requests waiting at backend 0
/// proxy.record_offload(0, 1, 3.5)?;     // we moved 3.5 req/s from 0 to 1
/// proxy.step(now_ms())?;                // from the host's event loop
/// for r in proxy.settle()? {
///     println!("move {:.2}/s from {} to {}", r.rate, r.src, r.dst);
/// }
/// # Ok::<(), shivya_core::mesh::MeshError>(())
/// ```
#[derive(Debug)]
pub struct WorkloadMeshProxy {
    node: Node,
}

impl WorkloadMeshProxy {
    /// Binds a node.
    pub fn bind(config: NodeConfig, now_ms: u64) -> Result<WorkloadMeshProxy, MeshError> {
        Ok(WorkloadMeshProxy {
            node: Node::bind(config, now_ms)?,
        })
    }

    /// Wraps an existing node.
    pub fn from_node(node: Node) -> WorkloadMeshProxy {
        WorkloadMeshProxy { node }
    }

    /// Records this process's queue length at `vertex` (non-negative, finite).
    pub fn record_queue_len(&mut self, vertex: u32, q: f64) -> Result<(), MeshError> {
        self.node.record_queue_len(vertex, q)
    }

    /// Records the rate at which this process moves work from `src` to `dst`.
    pub fn record_offload(&mut self, src: u32, dst: u32, rate: f64) -> Result<(), MeshError> {
        self.node.record_offload(src, dst, rate)
    }

    /// The routes over everything the mesh has told us: circular offload removed, work
    /// moving from long queues to short ones.
    pub fn settle(&mut self) -> Result<Vec<EdgeRecommendation>, MeshError> {
        self.node.settle()
    }

    /// Drives the node; call from the host loop.
    pub fn step(&mut self, now_ms: u64) -> Result<StepOutcome, MeshError> {
        self.node.step(now_ms)
    }

    /// Milliseconds until the next `step` is needed.
    pub fn next_timeout_ms(&self, now_ms: u64) -> u64 {
        self.node.next_timeout_ms(now_ms)
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.node.local_addr()
    }

    /// A snapshot.
    pub fn status(&self) -> Status {
        self.node.status()
    }

    /// The node underneath.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The node underneath, mutably.
    pub fn node_mut(&mut self) -> &mut Node {
        &mut self.node
    }
}
