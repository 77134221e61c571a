//! `shivya_node`: a mesh node on its own UDP socket, its step and timers, the proxy
//! calls, its snapshot and peers, and partition hooks for tests.

use crate::boundary::{
    fill_buffer, free_boxed, guard, guard_value, set_last_error, try_ref, try_slice_mut, try_str,
    write_out,
};
use crate::config::{parse_addr, shivya_config};
use crate::status::{shivya_status, Error, SHIVYA_ERR_BUFFER_TOO_SHORT, SHIVYA_ERR_BUSY};
use crate::{SHIVYA_ADDR_LEN, SHIVYA_ID_LEN};
use shivya_core::mesh::Node;
use std::cell::UnsafeCell;
use std::ffi::c_char;
use std::sync::atomic::{AtomicBool, Ordering};

/// A mesh node on its own UDP socket. Use it from one thread at a time: a call that finds
/// another thread inside the same node returns `SHIVYA_ERR_BUSY` instead of racing.
pub struct shivya_node {
    busy: AtomicBool,
    fd: i32,
    inner: UnsafeCell<Node>,
}

/// Exclusive access to a node for the length of one call.
pub(crate) struct NodeAccess<'a> {
    node: &'a shivya_node,
}

impl shivya_node {
    pub(crate) fn enter(&self) -> Result<NodeAccess<'_>, Error> {
        if self
            .busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err(Error {
                status: SHIVYA_ERR_BUSY,
                message: "the node is in use by another thread; calls on one node must not overlap"
                    .into(),
            });
        }
        Ok(NodeAccess { node: self })
    }
}

impl std::ops::Deref for NodeAccess<'_> {
    type Target = Node;
    fn deref(&self) -> &Node {
        // SAFETY: `busy` is held by this access, so no other reference to the node exists.
        unsafe { &*self.node.inner.get() }
    }
}

impl std::ops::DerefMut for NodeAccess<'_> {
    fn deref_mut(&mut self) -> &mut Node {
        // SAFETY: as for `deref`; the access is exclusive.
        unsafe { &mut *self.node.inner.get() }
    }
}

impl Drop for NodeAccess<'_> {
    fn drop(&mut self) {
        // Runs on unwinding too, so a panic inside a call does not leave the node locked.
        self.node.busy.store(false, Ordering::Release);
    }
}

/// Binds a node with `config` (copied; the config may be freed afterwards) and starts
/// joining through its bootstrap peers at `now_ms`. Writes the handle to `*out` (NULL on
/// error). An address in use gives `SHIVYA_ERR_IO`.
#[no_mangle]
pub extern "C" fn shivya_node_new(
    config: *const shivya_config,
    now_ms: u64,
    out: *mut *mut shivya_node,
) -> shivya_status {
    if !out.is_null() {
        // SAFETY: non-null out-pointer, writable per the contract.
        unsafe { out.write(std::ptr::null_mut()) };
    }
    guard(|| {
        // SAFETY: as above.
        let c = unsafe { try_ref(config, "config")? };
        if out.is_null() {
            return Err(Error::invalid("out is NULL"));
        }
        let node = Node::bind(c.inner.clone(), now_ms)?;
        let raw = Box::into_raw(Box::new(shivya_node {
            busy: AtomicBool::new(false),
            fd: node.raw_fd(),
            inner: UnsafeCell::new(node),
        }));
        // SAFETY: checked non-null above.
        unsafe { write_out(out, raw, "out") }
    })
}

/// Closes the node's socket and releases it (no LEAVE is sent; call [`shivya_leave`]
/// first for a graceful exit). NULL is ignored.
#[no_mangle]
pub extern "C" fn shivya_node_free(node: *mut shivya_node) {
    // SAFETY: a non-null `node` came from `shivya_node_new` and is freed once.
    guard_value((), || unsafe { free_boxed(node) })
}

/// Reads what has arrived, runs due timers and sends what is queued. Call it when the fd
/// is readable or the timeout from [`shivya_next_timeout_ms`] has passed. `now_ms` is the
/// host's monotonic clock in milliseconds.
#[no_mangle]
pub extern "C" fn shivya_step(node: *mut shivya_node, now_ms: u64) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let mut n = unsafe { try_ref(node, "node")? }.enter()?;
        n.step(now_ms)?;
        Ok(())
    })
}

/// The node's socket descriptor, to poll for readability; -1 when `node` is NULL.
#[no_mangle]
pub extern "C" fn shivya_fd(node: *const shivya_node) -> i32 {
    guard_value(-1, || {
        // SAFETY: as above.
        match unsafe { try_ref(node, "node") } {
            Ok(n) => n.fd,
            Err(e) => {
                set_last_error(&e.message);
                -1
            }
        }
    })
}

/// Writes to `*out` how many milliseconds may pass before `shivya_step` must be called
/// again (0 = now; `UINT64_MAX` = only when the fd is readable).
#[no_mangle]
pub extern "C" fn shivya_next_timeout_ms(
    node: *const shivya_node,
    now_ms: u64,
    out: *mut u64,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let n = unsafe { try_ref(node, "node")? }.enter()?;
        // SAFETY: as above.
        unsafe { write_out(out, n.next_timeout_ms(now_ms), "out") }
    })
}

/// Records this node's queue length at `vertex` (finite, 0 ≤ value ≤
/// `SHIVYA_MAX_RECORD_VALUE`; 0 removes the entry). After `shivya_leave` it is refused.
#[no_mangle]
pub extern "C" fn shivya_record_queue_len(
    node: *mut shivya_node,
    vertex: u32,
    queue_len: f64,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let mut n = unsafe { try_ref(node, "node")? }.enter()?;
        n.record_queue_len(vertex, queue_len)?;
        Ok(())
    })
}

/// Records the rate at which this node moves work from `src` to `dst` (an edge of the
/// workload graph; finite, 0 ≤ rate ≤ `SHIVYA_MAX_RECORD_VALUE`; 0 removes the entry).
/// After `shivya_leave` it is refused.
#[no_mangle]
pub extern "C" fn shivya_record_offload(
    node: *mut shivya_node,
    src: u32,
    dst: u32,
    rate: f64,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let mut n = unsafe { try_ref(node, "node")? }.enter()?;
        n.record_offload(src, dst, rate)?;
        Ok(())
    })
}

/// One settled route: move `rate` units of work per unit time from `src` to `dst`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct shivya_route {
    /// Vertex work leaves.
    pub src: u32,
    /// Vertex work goes to.
    pub dst: u32,
    /// Rate, > 0.
    pub rate: f64,
}

/// Writes the settled routes into `buf` (room for `cap` routes) and their number to
/// `*len`. When `cap` is too small nothing is written to `buf`, `*len` gets the number
/// needed, and `SHIVYA_ERR_BUFFER_TOO_SHORT` is returned. `buf` may be NULL when `cap` is 0.
#[no_mangle]
pub extern "C" fn shivya_settle(
    node: *mut shivya_node,
    buf: *mut shivya_route,
    cap: usize,
    len: *mut usize,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let mut n = unsafe { try_ref(node, "node")? }.enter()?;
        let routes: Vec<shivya_route> = n
            .settle()?
            .into_iter()
            .map(|r| shivya_route {
                src: r.src,
                dst: r.dst,
                rate: r.rate,
            })
            .collect();
        // SAFETY: `buf`, `cap` and `len` per the documented contract.
        unsafe { fill_buffer(buf, cap, len, &routes, "routes")? };
        Ok(())
    })
}

/// A snapshot of a node.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct shivya_snapshot {
    /// The node id.
    pub id: [u8; SHIVYA_ID_LEN],
    /// Peers in the routing table.
    pub peers: u64,
    /// Records held.
    pub records: u64,
    /// Version of this node's own record.
    pub own_version: u64,
    /// Residual of the last reconciliation.
    pub last_residual: f64,
    /// Solver iterations of the last reconciliation: 0 when the exact sparse factor solved
    /// it (the default while the factor fits), CG iterations otherwise.
    pub last_iterations: u64,
    /// This node's term of the collective free energy (F − dividend).
    pub f_collective: f64,
    /// Free energy of this node's agent.
    pub free_energy: f64,
    /// This node's dividend share.
    pub dividend: f64,
    /// Latent dimension of the agent.
    pub latent_dim: u32,
    /// Datagrams received.
    pub frames_in: u64,
    /// Datagrams sent.
    pub frames_out: u64,
    /// Datagrams dropped, all reasons.
    pub dropped: u64,
    /// Of which malformed (failed to decode).
    pub dropped_malformed: u64,
    /// Of which to or from a blocked address.
    pub dropped_blocked: u64,
    /// Records applied from the network.
    pub records_merged: u64,
    /// Layer steps run.
    pub layer_steps: u64,
    /// Layer steps that failed.
    pub layer_errors: u64,
}

/// Datagrams dropped for one reason.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct shivya_drop_reason {
    /// The reason's stable name (a static NUL-terminated string, e.g. "bad_signature").
    pub name: *const c_char,
    /// Datagrams dropped for it.
    pub count: u64,
}

/// The names of `DropCounters::by_reason`, NUL-terminated, in its order (checked by a test).
pub(crate) const DROP_REASON_NAMES: [&std::ffi::CStr; 19] = [
    c"too_short",
    c"oversized",
    c"bad_magic",
    c"unknown_version",
    c"unknown_type",
    c"truncated",
    c"trailing",
    c"bad_value",
    c"own_id",
    c"unmatched_reply",
    c"bad_record",
    c"records_full",
    c"beliefs_full",
    c"blocked",
    c"bad_auth",
    c"bad_leave",
    c"unsigned",
    c"bad_signature",
    c"not_admitted",
];

/// Copies the node's dropped datagrams by reason (every reason, zeros included, in a fixed
/// order) into `buf[0..cap]`, their number to `*len`; `SHIVYA_ERR_BUFFER_TOO_SHORT` with
/// the number needed when `cap` is too small. The names are static strings.
#[no_mangle]
pub extern "C" fn shivya_drop_reasons(
    node: *const shivya_node,
    buf: *mut shivya_drop_reason,
    cap: usize,
    len: *mut usize,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let n = unsafe { try_ref(node, "node")? }.enter()?;
        let reasons = n.status().counters.dropped.by_reason();
        let items: Vec<shivya_drop_reason> = reasons
            .iter()
            .zip(DROP_REASON_NAMES)
            .map(|((_, count), name)| shivya_drop_reason {
                name: name.as_ptr(),
                count: *count,
            })
            .collect();
        // SAFETY: `buf`, `cap` and `len` per the documented contract.
        unsafe { fill_buffer(buf, cap, len, &items, "drop reasons") }
    })
}

/// Fills `*out` with a snapshot of the node.
#[no_mangle]
pub extern "C" fn shivya_node_snapshot(
    node: *const shivya_node,
    out: *mut shivya_snapshot,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let n = unsafe { try_ref(node, "node")? }.enter()?;
        let s = n.status();
        let d = s.counters.dropped;
        let snap = shivya_snapshot {
            id: s.id.0,
            peers: s.peers as u64,
            records: s.records as u64,
            own_version: s.own_version,
            last_residual: s.last_residual,
            last_iterations: s.last_iterations as u64,
            f_collective: s.f_collective,
            free_energy: s.free_energy,
            dividend: s.dividend,
            latent_dim: s.latent_dim as u32,
            frames_in: s.counters.frames_in,
            frames_out: s.counters.frames_out,
            dropped: d.total(),
            dropped_malformed: d.malformed(),
            dropped_blocked: d.blocked,
            records_merged: s.counters.records_merged,
            layer_steps: s.counters.layer_steps,
            layer_errors: s.counters.layer_errors,
        };
        // SAFETY: as above.
        unsafe { write_out(out, snap, "out") }
    })
}

/// A peer in the routing table.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct shivya_peer {
    /// Its id.
    pub id: [u8; SHIVYA_ID_LEN],
    /// Its address as a NUL-terminated string, e.g. `127.0.0.1:7000`.
    pub addr: [c_char; SHIVYA_ADDR_LEN],
    /// When it was last heard from (host milliseconds).
    pub last_seen_ms: u64,
}

/// Writes the routing table's peers into `buf` (room for `cap`) and their number to
/// `*len`; a too-small `cap` writes nothing to `buf`, sets `*len` to the number needed and
/// returns `SHIVYA_ERR_BUFFER_TOO_SHORT`.
#[no_mangle]
pub extern "C" fn shivya_peers(
    node: *const shivya_node,
    buf: *mut shivya_peer,
    cap: usize,
    len: *mut usize,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let n = unsafe { try_ref(node, "node")? }.enter()?;
        let peers: Vec<shivya_peer> = n
            .state()
            .kademlia()
            .table()
            .peers()
            .map(|p| {
                let mut addr = [0 as c_char; SHIVYA_ADDR_LEN];
                let text = p.addr.to_string();
                for (dst, b) in addr.iter_mut().zip(text.bytes().take(SHIVYA_ADDR_LEN - 1)) {
                    *dst = b as c_char;
                }
                shivya_peer {
                    id: p.id.0,
                    addr,
                    last_seen_ms: p.last_seen_ms,
                }
            })
            .collect();
        // SAFETY: `buf`, `cap` and `len` per the documented contract.
        unsafe { fill_buffer(buf, cap, len, &peers, "peers")? };
        Ok(())
    })
}

/// Writes the bound address as a NUL-terminated string into `buf` (capacity `cap`) and its
/// length (without the NUL) to `*len`; too small a buffer gives
/// `SHIVYA_ERR_BUFFER_TOO_SHORT` with the needed length (without the NUL) in `*len`.
#[no_mangle]
pub extern "C" fn shivya_local_addr(
    node: *const shivya_node,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let n = unsafe { try_ref(node, "node")? }.enter()?;
        if len.is_null() {
            return Err(Error::invalid("len is NULL"));
        }
        let text = n.local_addr().to_string();
        // SAFETY: checked non-null above.
        unsafe { write_out(len, text.len(), "len")? };
        if text.len() + 1 > cap {
            return Err(Error {
                status: SHIVYA_ERR_BUFFER_TOO_SHORT,
                message: format!("address needs {} bytes, buffer has {cap}", text.len() + 1),
            });
        }
        // SAFETY: `cap` writable bytes at `buf` per the contract.
        let out = unsafe { try_slice_mut(buf.cast::<u8>(), cap, "buf")? };
        out[..text.len()].copy_from_slice(text.as_bytes());
        out[text.len()] = 0;
        Ok(())
    })
}

/// Drops all traffic to and from `addr` until [`shivya_unblock`] (for partition tests).
#[no_mangle]
pub extern "C" fn shivya_block(node: *mut shivya_node, addr: *const c_char) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let (n, a) = unsafe { (try_ref(node, "node")?, try_str(addr, "addr")?) };
        n.enter()?.block(parse_addr(a, "address")?);
        Ok(())
    })
}

/// Lifts a [`shivya_block`].
#[no_mangle]
pub extern "C" fn shivya_unblock(node: *mut shivya_node, addr: *const c_char) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let (n, a) = unsafe { (try_ref(node, "node")?, try_str(addr, "addr")?) };
        n.enter()?.unblock(parse_addr(a, "address")?);
        Ok(())
    })
}

/// Leaves the mesh gracefully: withdraws this node's records and tells its peers. The
/// node stays allocated (free it afterwards) but no longer takes part: later writes
/// return `SHIVYA_ERR_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn shivya_leave(node: *mut shivya_node) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let mut n = unsafe { try_ref(node, "node")? }.enter()?;
        n.leave()?;
        Ok(())
    })
}
