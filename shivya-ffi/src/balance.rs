//! The balancer on a `shivya_node`: report requests, ask for a backend, read weights and
//! capacity signals. Each call is a check, one core call and the error mapping.

use crate::boundary::{fill_buffer, guard, try_ref, write_out};
use crate::node::shivya_node;
use crate::status::{shivya_status, Error};
use shivya_core::balancer::{CapacitySignal, Outcome};

/// How a request ended (`shivya_request_finished`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum shivya_outcome {
    /// An answer.
    SHIVYA_OUTCOME_OK = 0,
    /// An error or a timeout: the backend took the request and failed.
    SHIVYA_OUTCOME_FAILED = 1,
    /// The backend refused it (connection refused, an overload answer).
    SHIVYA_OUTCOME_REFUSED = 2,
}

/// What a capacity signal asks for.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum shivya_signal_kind {
    /// The backend is saturated: add capacity beside it.
    SHIVYA_SIGNAL_SPLIT = 1,
    /// The backend is idle: it can be drained.
    SHIVYA_SIGNAL_CULL = 2,
}

/// A capacity signal for one backend.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shivya_capacity_signal {
    /// The backend (a vertex of the topology).
    pub backend: u32,
    /// Split or cull.
    pub kind: shivya_signal_kind,
}

/// Writes to `*out` the backend (a vertex of the topology) the next request should go to.
/// Call `shivya_request_started` when it is sent. Cheap enough for every request;
/// allocates nothing.
#[no_mangle]
pub extern "C" fn shivya_pick(node: *mut shivya_node, now_ms: u64, out: *mut u32) -> shivya_status {
    guard(|| {
        // SAFETY: `node` is NULL or a live handle, used by one thread at a time.
        let mut n = unsafe { try_ref(node, "node")? }.enter()?;
        let pick = n
            .state_mut()
            .pick(now_ms)
            .ok_or_else(|| Error::invalid("the topology has no vertices to pick from"))?;
        // SAFETY: `out` is NULL (refused) or writable.
        unsafe { write_out(out, pick, "out") }
    })
}

/// Reports that a request went to `backend` at `now_ms`. From the first report on, the
/// node publishes its requests in flight per backend in its record (do not also call
/// `shivya_record_queue_len`).
#[no_mangle]
pub extern "C" fn shivya_request_started(
    node: *mut shivya_node,
    backend: u32,
    now_ms: u64,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let mut n = unsafe { try_ref(node, "node")? }.enter()?;
        Ok(n.state_mut().request_started(backend, now_ms)?)
    })
}

/// Reports that a request to `backend` ended at `now_ms` after `latency_ms` (finite,
/// ≥ 0) with `outcome` (a `shivya_outcome` value; others are refused).
#[no_mangle]
pub extern "C" fn shivya_request_finished(
    node: *mut shivya_node,
    backend: u32,
    latency_ms: f64,
    outcome: u32,
    now_ms: u64,
) -> shivya_status {
    guard(|| {
        let outcome = match outcome {
            0 => Outcome::Ok,
            1 => Outcome::Failed,
            2 => Outcome::Refused,
            other => {
                return Err(Error::invalid(format!(
                    "outcome {other} is not a shivya_outcome (0, 1 or 2)"
                )))
            }
        };
        // SAFETY: as above.
        let mut n = unsafe { try_ref(node, "node")? }.enter()?;
        Ok(n.state_mut()
            .request_finished(backend, latency_ms, outcome, now_ms)?)
    })
}

/// Sets the configured weight of `backend` (finite, > 0, ≤ 1e6; 1 by default), as
/// nginx's `weight=`: the prior for its capacity.
#[no_mangle]
pub extern "C" fn shivya_set_backend_weight(
    node: *mut shivya_node,
    backend: u32,
    weight: f64,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let mut n = unsafe { try_ref(node, "node")? }.enter()?;
        Ok(n.state_mut().set_backend_weight(backend, weight)?)
    })
}

/// Copies the dispatch weights (one per vertex, summing to 1) into `buf[0..cap]` and
/// writes their number to `*len`; `SHIVYA_ERR_BUFFER_TOO_SHORT` with the number needed
/// in `*len` when `cap` is too small.
#[no_mangle]
pub extern "C" fn shivya_weights(
    node: *mut shivya_node,
    buf: *mut f64,
    cap: usize,
    len: *mut usize,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let n = unsafe { try_ref(node, "node")? }.enter()?;
        let mut weights = vec![0.0; n.state().balancer().len()];
        n.state().weights(&mut weights)?;
        // SAFETY: `buf`, `cap` and `len` per the documented contract.
        unsafe { fill_buffer(buf, cap, len, &weights, "weights") }
    })
}

/// Copies the capacity signals of the merged records (identical on every node holding
/// the same records) into `buf[0..cap]`, their number to `*len`;
/// `SHIVYA_ERR_BUFFER_TOO_SHORT` with the number needed when `cap` is too small.
#[no_mangle]
pub extern "C" fn shivya_capacity_signals(
    node: *mut shivya_node,
    buf: *mut shivya_capacity_signal,
    cap: usize,
    len: *mut usize,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let n = unsafe { try_ref(node, "node")? }.enter()?;
        let signals: Vec<shivya_capacity_signal> = n
            .state()
            .capacity_signals()
            .iter()
            .map(|s| match *s {
                CapacitySignal::Split { backend } => shivya_capacity_signal {
                    backend,
                    kind: shivya_signal_kind::SHIVYA_SIGNAL_SPLIT,
                },
                CapacitySignal::Cull { backend } => shivya_capacity_signal {
                    backend,
                    kind: shivya_signal_kind::SHIVYA_SIGNAL_CULL,
                },
            })
            .collect();
        // SAFETY: `buf`, `cap` and `len` per the documented contract.
        unsafe { fill_buffer(buf, cap, len, &signals, "capacity signals") }
    })
}

/// Writes to `*out` a fingerprint of the records this node holds (FNV-1a over every
/// `(origin, version)`): nodes holding the same records report the same value, so an
/// operator can see whether balancers share one view.
#[no_mangle]
pub extern "C" fn shivya_view_digest(node: *const shivya_node, out: *mut u64) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let n = unsafe { try_ref(node, "node")? }.enter()?;
        let digest = n.state().records().view_digest();
        // SAFETY: as above.
        unsafe { write_out(out, digest, "out") }
    })
}

/// How old the other balancers' records are at one node (see `shivya_record_ages`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct shivya_ages {
    /// Other origins whose record the node holds.
    pub origins: u64,
    /// Mean time since each last changed at the node, in milliseconds (0 with none).
    pub mean_ms: f64,
    /// The longest such time, in milliseconds: a quiet balancer, or one that is gone and
    /// not yet certified dead.
    pub max_ms: u64,
}

/// Writes to `*out` the information age at host time `now_ms`: how long since each other
/// origin's record last changed at this node (mean and longest).
#[no_mangle]
pub extern "C" fn shivya_record_ages(
    node: *const shivya_node,
    now_ms: u64,
    out: *mut shivya_ages,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let n = unsafe { try_ref(node, "node")? }.enter()?;
        let a = n.state().record_ages(now_ms);
        let ages = shivya_ages {
            origins: a.origins as u64,
            mean_ms: a.mean_ms,
            max_ms: a.max_ms,
        };
        // SAFETY: as above.
        unsafe { write_out(out, ages, "out") }
    })
}
