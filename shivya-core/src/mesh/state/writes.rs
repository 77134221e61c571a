//! The proxy calls: this node's writes, validated against the topology and the value
//! bounds, then applied to its own record (see `mesh::own`).

use super::NodeState;
use crate::mesh::MeshError;
use crate::p2p::protocol::{is_record_value, validate_record, RecordWire};

impl NodeState {
    fn check_not_left(&self) -> Result<(), MeshError> {
        if self.left {
            return Err(MeshError::Left);
        }
        Ok(())
    }

    /// Sets this node's contribution to the queue length of `vertex` (requests this node
    /// has queued or in flight there). 0 removes the entry. Bad input changes nothing.
    pub fn record_queue_len(&mut self, vertex: u32, q: f64) -> Result<(), MeshError> {
        self.check_not_left()?;
        let n = self.config.topology.n_vertices();
        if vertex >= n {
            return Err(MeshError::UnknownVertex { vertex, n });
        }
        if !is_record_value(q) {
            return Err(MeshError::BadValue {
                what: "queue length",
                value: q,
            });
        }
        self.room_to_write();
        self.own.set_queue(&mut self.records, vertex, q)
    }

    /// Sets the rate at which this node observed work moving from `src` to `dst`. 0
    /// removes the entry. The pair must be an edge of the topology. Bad input changes
    /// nothing.
    pub fn record_offload(&mut self, src: u32, dst: u32, rate: f64) -> Result<(), MeshError> {
        self.check_not_left()?;
        let n = self.config.topology.n_vertices();
        for v in [src, dst] {
            if v >= n {
                return Err(MeshError::UnknownVertex { vertex: v, n });
            }
        }
        if src == dst {
            return Err(MeshError::SelfEdge { vertex: src });
        }
        if self.config.topology.edge_index(src, dst).is_none() {
            return Err(MeshError::UnknownEdge { src, dst });
        }
        if !is_record_value(rate) {
            return Err(MeshError::BadValue {
                what: "offload rate",
                value: rate,
            });
        }
        self.room_to_write();
        self.own.set_offload(&mut self.records, src, dst, rate)
    }

    /// Our version sits at the very top of the own-version range (a forged frame pushed
    /// it there and we outbid it by one): the next write has no version left under this
    /// id, so the node first takes a new one (see `rotate_identity`).
    pub(super) fn room_to_write(&mut self) {
        // Signed meshes never get here: only our own key signs our origin's versions.
        if !self.signed() && self.own.version() >= crate::p2p::protocol::DEAD - 1 {
            self.rotate_identity();
        }
    }

    /// This node's own record (origin, version, entries), e.g. to persist it.
    pub fn own_record(&self) -> &RecordWire {
        self.own.wire()
    }

    /// Restores this node's own record from durable storage after a restart, so a node
    /// that comes back with the same id resumes its version and its writes instead of
    /// superseding them with an empty record. Validated like a record from the network
    /// (origin must be ours, entries sorted, finite, within the topology); on error nothing
    /// changes.
    pub fn restore_own(&mut self, record: RecordWire) -> Result<(), MeshError> {
        self.check_not_left()?;
        if record.origin != self.id {
            return Err(MeshError::Config {
                what: "restored record",
                why: format!("origin {} is not this node ({})", record.origin, self.id),
            });
        }
        validate_record(&record).map_err(|e| MeshError::Config {
            what: "restored record",
            why: e.to_string(),
        })?;
        if record.version >= crate::p2p::protocol::DEAD {
            return Err(MeshError::Config {
                what: "restored record",
                why: format!(
                    "version {} is not an own version (below 2^63)",
                    record.version
                ),
            });
        }
        if record.offload.len() > self.own.max_offload() {
            return Err(MeshError::Config {
                what: "restored record",
                why: format!(
                    "{} offload entries; a record of this node holds at most {}",
                    record.offload.len(),
                    self.own.max_offload()
                ),
            });
        }
        if !self.reconciler.fits(&record) {
            return Err(MeshError::Topology(
                "the restored record names vertices or edges outside the topology".into(),
            ));
        }
        self.own.restore(&mut self.records, record);
        Ok(())
    }
}
