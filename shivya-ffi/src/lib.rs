//! # shivya-ffi — the C ABI of Shivya
//!
//! A thin skin over `shivya-core`: every function checks its pointers and lengths, calls
//! the core, and maps the error to a [`shivya_status`] plus a message readable with
//! [`shivya_last_error_message`]. Every body runs inside a panic boundary. There is no
//! logic here that the Rust API lacks.
//!
//! Conventions (also in `include/shivya.h`):
//! * Objects are opaque handles created by `*_new(…, T **out)` and released by `*_free`
//!   (NULL is accepted and ignored; freeing twice is undefined behaviour).
//! * Slices cross as `(pointer, length)`; a NULL pointer is allowed only with length 0.
//! * Strings are NUL-terminated UTF-8.
//! * A `shivya_node` may move between threads but must be used by one thread at a time.
//!   A `shivya_config` and a `shivya_complex` likewise.
//! * The last error message is per thread and is only meaningful right after a call
//!   returned an error.
#![allow(non_camel_case_types)]
#![deny(missing_docs)]
// Every exported function checks its pointers through the helpers in `error.rs` before
// touching them; the contract of each pointer is documented on the function.
#![allow(clippy::missing_safety_doc, clippy::not_unsafe_ptr_arg_deref)]

mod bindings;
mod error;

pub use bindings::*;

uniffi::setup_scaffolding!();

pub use error::shivya_status;
use error::*;

use shivya_core::hodge::{HodgeWorkspace, SimplicialComplex};
use shivya_core::mesh::{Node, NodeConfig, SettleMode, WorkloadTopology};
use std::cell::UnsafeCell;
use std::ffi::c_char;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

/// The ABI version. It changes only when an existing function or type changes shape.
pub const SHIVYA_ABI_VERSION: u32 = 1;

/// Bytes in a node id.
pub const SHIVYA_ID_LEN: usize = 20;

/// Bytes reserved for a peer address string, including the NUL.
pub const SHIVYA_ADDR_LEN: usize = 64;

static VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// Library version as a static NUL-terminated string (never free it). Thread-safe.
#[no_mangle]
pub extern "C" fn shivya_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

/// The ABI version ([`SHIVYA_ABI_VERSION`] of the library actually loaded). Thread-safe.
#[no_mangle]
pub extern "C" fn shivya_abi_version() -> u32 {
    SHIVYA_ABI_VERSION
}

/// A static NUL-terminated name for a status code (never free it); `"unknown"` for a
/// number that is not a status. Takes an `int` so any value is safe to pass. Thread-safe.
#[no_mangle]
pub extern "C" fn shivya_status_name(status: i32) -> *const c_char {
    let s: &'static str = match status {
        0 => "SHIVYA_OK\0",
        -1 => "SHIVYA_ERR_INVALID_ARGUMENT\0",
        -2 => "SHIVYA_ERR_BUFFER_TOO_SHORT\0",
        -3 => "SHIVYA_ERR_IO\0",
        -4 => "SHIVYA_ERR_CAPACITY\0",
        -5 => "SHIVYA_ERR_NUMERIC\0",
        -6 => "SHIVYA_ERR_PANIC\0",
        -7 => "SHIVYA_ERR_INTERNAL\0",
        -8 => "SHIVYA_ERR_BUSY\0",
        _ => "unknown\0",
    };
    s.as_ptr().cast()
}

/// Copies this thread's last error message into `buf` (capacity `cap` bytes, always
/// NUL-terminated when `cap > 0`, truncated if needed) and returns the message's full
/// length in bytes, not counting the NUL. `buf` may be NULL when `cap` is 0 (to ask the
/// length). Returns 0 when there is no message.
#[no_mangle]
pub extern "C" fn shivya_last_error_message(buf: *mut c_char, cap: usize) -> usize {
    guard_value(0, || {
        with_last_error(|msg| {
            if cap > 0 && !buf.is_null() {
                let n = msg.len().min(cap - 1);
                // SAFETY: the caller gives `cap` writable bytes at `buf`; n + 1 <= cap.
                unsafe {
                    std::ptr::copy_nonoverlapping(msg.as_ptr(), buf.cast::<u8>(), n);
                    *buf.add(n) = 0;
                }
            }
            msg.len()
        })
    })
}

// ---------------------------------------------------------------------------------------
// Config

/// Node settings. Create with [`shivya_config_new`], adjust with the setters, pass to
/// [`shivya_node_new`] (which copies it), release with [`shivya_config_free`].
pub struct shivya_config {
    inner: NodeConfig,
}

/// Creates a config with defaults (listen 127.0.0.1:0, seed 1, K 4, step 100 ms, a complete
/// workload graph on 4 vertices). Writes the handle to `*out` (set to NULL on error).
#[no_mangle]
pub extern "C" fn shivya_config_new(out: *mut *mut shivya_config) -> shivya_status {
    guard(|| {
        if out.is_null() {
            return Err(Error::invalid("out is NULL"));
        }
        let boxed = Box::new(shivya_config {
            inner: NodeConfig::default(),
        });
        // SAFETY: `out` checked by `write_out`.
        unsafe { write_out(out, Box::into_raw(boxed), "out") }
    })
}

/// Releases a config. NULL is ignored.
#[no_mangle]
pub extern "C" fn shivya_config_free(config: *mut shivya_config) {
    // SAFETY: a non-null `config` came from `shivya_config_new` and is freed once.
    guard_value((), || unsafe { free_boxed(config) })
}

pub(crate) fn parse_addr(s: &str, what: &str) -> Result<SocketAddr, Error> {
    s.parse::<SocketAddr>().map_err(|e| {
        Error::invalid(format!(
            "{what} {s:?} is not an address like 127.0.0.1:7000: {e}"
        ))
    })
}

/// Sets the UDP address to bind, e.g. `"127.0.0.1:7000"` or `"[::1]:0"` (port 0 picks one).
#[no_mangle]
pub extern "C" fn shivya_config_set_listen(
    config: *mut shivya_config,
    addr: *const c_char,
) -> shivya_status {
    guard(|| {
        // SAFETY: pointers checked by the helpers; contracts as documented.
        let (c, a) = unsafe { (try_mut(config, "config")?, try_str(addr, "addr")?) };
        c.inner.listen = parse_addr(a, "listen address")?;
        Ok(())
    })
}

/// Adds a bootstrap peer address.
#[no_mangle]
pub extern "C" fn shivya_config_add_bootstrap(
    config: *mut shivya_config,
    addr: *const c_char,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let (c, a) = unsafe { (try_mut(config, "config")?, try_str(addr, "addr")?) };
        let addr = parse_addr(a, "bootstrap address")?;
        if !c.inner.bootstrap.contains(&addr) {
            c.inner.bootstrap.push(addr);
        }
        Ok(())
    })
}

/// Sets the seed of every random choice; the node id is derived from it.
#[no_mangle]
pub extern "C" fn shivya_config_set_seed(config: *mut shivya_config, seed: u64) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let c = unsafe { try_mut(config, "config")? };
        c.inner.seed = seed;
        c.inner.id = None;
        Ok(())
    })
}

/// Sets the incarnation (at most 2^44 − 1): this run's record versions start at
/// `incarnation << 20`. Pass a value that grows across restarts (wall-clock milliseconds
/// since the Unix epoch) when a node may restart with the same seed without its state.
#[no_mangle]
pub extern "C" fn shivya_config_set_incarnation(
    config: *mut shivya_config,
    incarnation: u64,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let c = unsafe { try_mut(config, "config")? };
        if incarnation > shivya_core::mesh::MAX_INCARNATION {
            return Err(Error::invalid(format!(
                "incarnation {incarnation} exceeds 2^44 - 1"
            )));
        }
        c.inner.incarnation = incarnation;
        Ok(())
    })
}

/// Sets the mesh key (`len` ≥ 16 bytes, copied): every datagram then carries an
/// HMAC-SHA-256 tag and datagrams without a valid one are dropped. All members of a mesh
/// must use the same key. `key` NULL with `len` 0 turns authentication off.
#[no_mangle]
pub extern "C" fn shivya_config_set_auth_key(
    config: *mut shivya_config,
    key: *const u8,
    len: usize,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above; `key` holds `len` bytes.
        let (c, k) = unsafe { (try_mut(config, "config")?, try_slice(key, len, "key")?) };
        c.inner.auth_key = if k.is_empty() {
            None
        } else {
            Some(shivya_core::mesh::MeshKey::new(k)?)
        };
        Ok(())
    })
}

/// Sets the period of the layer stack in milliseconds (> 0).
#[no_mangle]
pub extern "C" fn shivya_config_set_step_interval_ms(
    config: *mut shivya_config,
    ms: u64,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let c = unsafe { try_mut(config, "config")? };
        if ms == 0 {
            return Err(Error::invalid("step interval must be positive"));
        }
        c.inner.step_interval_ms = ms;
        Ok(())
    })
}

/// Sets the Kademlia bucket size K (1..=20).
#[no_mangle]
pub extern "C" fn shivya_config_set_k(config: *mut shivya_config, k: usize) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let c = unsafe { try_mut(config, "config")? };
        if !(1..=20).contains(&k) {
            return Err(Error::invalid(format!("K = {k} is out of range 1..=20")));
        }
        c.inner.kad.k = k;
        Ok(())
    })
}

/// Sets the CG tolerance of the reconciler (finite, > 0).
#[no_mangle]
pub extern "C" fn shivya_config_set_cg_tolerance(
    config: *mut shivya_config,
    tolerance: f64,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let c = unsafe { try_mut(config, "config")? };
        if !(tolerance > 0.0 && tolerance.is_finite()) {
            return Err(Error::invalid(format!(
                "CG tolerance {tolerance} must be finite and positive"
            )));
        }
        c.inner.cg.tolerance = tolerance;
        Ok(())
    })
}

/// Sets the workload graph: `n_vertices` vertices and `n_edges` edges given as
/// `2 * n_edges` vertex indices `(u0, v0, u1, v1, …)`. `edges` NULL with `n_edges` 0 means
/// every pair connected. Every node of a mesh must use the same graph.
#[no_mangle]
pub extern "C" fn shivya_config_set_topology(
    config: *mut shivya_config,
    n_vertices: u32,
    edges: *const u32,
    n_edges: usize,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above; `edges` holds 2 * n_edges values.
        let c = unsafe { try_mut(config, "config")? };
        let flat_len = n_edges
            .checked_mul(2)
            .ok_or_else(|| Error::invalid("n_edges is too large"))?;
        // SAFETY: as above.
        let flat = unsafe { try_slice(edges, flat_len, "edges")? };
        let topology = if n_edges == 0 {
            WorkloadTopology::complete(n_vertices)
        } else {
            let pairs: Vec<(u32, u32)> = flat.chunks_exact(2).map(|p| (p[0], p[1])).collect();
            WorkloadTopology::new(n_vertices, &pairs)?
        };
        c.inner.topology = topology;
        Ok(())
    })
}

/// Chooses what `shivya_settle` keeps: `false` (default) the curl-free part (circulation
/// around holes survives), `true` the gradient part only.
#[no_mangle]
pub extern "C" fn shivya_config_set_gradient_only(
    config: *mut shivya_config,
    gradient_only: bool,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let c = unsafe { try_mut(config, "config")? };
        c.inner.settle_mode = if gradient_only {
            SettleMode::GradientOnly
        } else {
            SettleMode::CurlFree
        };
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// Node

/// A mesh node on its own UDP socket. Use it from one thread at a time: a call that finds
/// another thread inside the same node returns `SHIVYA_ERR_BUSY` instead of racing.
pub struct shivya_node {
    busy: AtomicBool,
    fd: i32,
    inner: UnsafeCell<Node>,
}

/// Exclusive access to a node for the length of one call.
struct NodeAccess<'a> {
    node: &'a shivya_node,
}

impl shivya_node {
    fn enter(&self) -> Result<NodeAccess<'_>, Error> {
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

/// Records this node's queue length at `vertex` (finite, ≥ 0; 0 removes the entry).
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
/// workload graph; finite, ≥ 0; 0 removes the entry).
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
    /// CG iterations of the last reconciliation.
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
        let malformed = d.too_short
            + d.oversized
            + d.bad_magic
            + d.unknown_version
            + d.unknown_type
            + d.truncated
            + d.trailing
            + d.bad_value;
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
            dropped_malformed: malformed,
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
/// node stays allocated (free it afterwards) but no longer takes part.
#[no_mangle]
pub extern "C" fn shivya_leave(node: *mut shivya_node) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let mut n = unsafe { try_ref(node, "node")? }.enter()?;
        n.leave()?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// Standalone reconciler

/// A simplicial complex with its solver workspace, for reconciling flows without a mesh.
/// One thread at a time.
pub struct shivya_complex {
    complex: SimplicialComplex,
    ws: HodgeWorkspace,
}

/// What a reconciliation's solve did.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct shivya_solver_report {
    /// CG iterations.
    pub iterations: u64,
    /// Final residual norm.
    pub residual: f64,
    /// Whether the residual reached the tolerance.
    pub converged: bool,
}

/// Builds a complex of `n_vertices` vertices, `n_edges` edges given as `2 * n_edges`
/// vertex indices, and `n_triangles` triangles given as `3 * n_triangles` indices (each
/// triangle's edges must exist). Writes the handle to `*out` (NULL on error).
#[no_mangle]
pub extern "C" fn shivya_complex_new(
    n_vertices: u32,
    edges: *const u32,
    n_edges: usize,
    triangles: *const u32,
    n_triangles: usize,
    out: *mut *mut shivya_complex,
) -> shivya_status {
    if !out.is_null() {
        // SAFETY: non-null out-pointer, writable per the contract.
        unsafe { out.write(std::ptr::null_mut()) };
    }
    guard(|| {
        if out.is_null() {
            return Err(Error::invalid("out is NULL"));
        }
        let e_len = n_edges
            .checked_mul(2)
            .ok_or_else(|| Error::invalid("n_edges is too large"))?;
        let t_len = n_triangles
            .checked_mul(3)
            .ok_or_else(|| Error::invalid("n_triangles is too large"))?;
        // SAFETY: as above.
        let (e, t) = unsafe {
            (
                try_slice(edges, e_len, "edges")?,
                try_slice(triangles, t_len, "triangles")?,
            )
        };
        let pairs: Vec<(u32, u32)> = e.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        let tris: Vec<(u32, u32, u32)> = t.chunks_exact(3).map(|p| (p[0], p[1], p[2])).collect();
        let complex = SimplicialComplex::new(n_vertices as usize, &pairs, &tris)
            .map_err(|e| Error::invalid(e.to_string()))?;
        let ws = complex.workspace();
        let raw = Box::into_raw(Box::new(shivya_complex { complex, ws }));
        // SAFETY: as above.
        unsafe { write_out(out, raw, "out") }
    })
}

/// Releases a complex. NULL is ignored.
#[no_mangle]
pub extern "C" fn shivya_complex_free(complex: *mut shivya_complex) {
    // SAFETY: a non-null pointer came from `shivya_complex_new` and is freed once.
    guard_value((), || unsafe { free_boxed(complex) })
}

/// Number of edges of the complex (the length `shivya_reconcile` expects); 0 for NULL.
#[no_mangle]
pub extern "C" fn shivya_complex_n_edges(complex: *const shivya_complex) -> usize {
    guard_value(0, || {
        // SAFETY: as above.
        unsafe { try_ref(complex, "complex") }.map_or(0, |c| c.complex.n_edges())
    })
}

/// Writes the curl-free part of the edge flow `input` (length `len`, which must equal the
/// edge count; finite values of magnitude ≤ 1e100) to `output` (length `len`; may not
/// alias `input`). `report` may be NULL. Repeated calls allocate nothing. A flow whose
/// magnitudes floating point cannot resolve gives `SHIVYA_ERR_NUMERIC`; on any error the
/// contents of `output` are unspecified.
#[no_mangle]
pub extern "C" fn shivya_reconcile(
    complex: *mut shivya_complex,
    input: *const f64,
    output: *mut f64,
    len: usize,
    report: *mut shivya_solver_report,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let c = unsafe { try_mut(complex, "complex")? };
        let e = c.complex.n_edges();
        if len != e {
            return Err(Error::invalid(format!(
                "len is {len} but the complex has {e} edges"
            )));
        }
        if e > 0 && (input.is_null() || output.is_null()) {
            return Err(Error::invalid("input or output is NULL"));
        }
        if e > 0 && std::ptr::eq(input, output.cast_const()) {
            return Err(Error::invalid("input and output must not alias"));
        }
        // SAFETY: as above; distinct buffers per the contract.
        let (inp, out) = unsafe {
            (
                try_slice(input, len, "input")?,
                try_slice_mut(output, len, "output")?,
            )
        };
        let r = c
            .complex
            .project_curl_free_into(inp, &mut c.ws, out)
            .map_err(|e| match e {
                shivya_core::hodge::HodgeError::Breakdown { .. } => Error {
                    status: SHIVYA_ERR_NUMERIC,
                    message: e.to_string(),
                },
                e => Error::invalid(e.to_string()),
            })?;
        if !report.is_null() {
            let rep = shivya_solver_report {
                iterations: r.iterations as u64,
                residual: r.residual,
                converged: r.converged,
            };
            // SAFETY: non-null, writable per the contract.
            unsafe { write_out(report, rep, "report")? };
        }
        Ok(())
    })
}

/// Pointer-handling tests that need no socket, so they also run under Miri
/// (`scripts/test-miri.sh`).
#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr;

    fn last_error() -> String {
        let mut buf = [0 as c_char; 256];
        let n = shivya_last_error_message(buf.as_mut_ptr(), buf.len());
        let bytes: Vec<u8> = buf[..n.min(255)].iter().map(|&c| c as u8).collect();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn config_setters_check_every_pointer_and_string() {
        let mut c: *mut shivya_config = ptr::null_mut();
        assert_eq!(shivya_config_new(&mut c), SHIVYA_OK);
        assert!(!c.is_null());
        assert_eq!(
            shivya_config_new(ptr::null_mut()),
            SHIVYA_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            shivya_config_set_listen(c, c"127.0.0.1:9".as_ptr()),
            SHIVYA_OK
        );
        assert_eq!(
            shivya_config_set_listen(c, ptr::null()),
            SHIVYA_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("addr is NULL"));
        let bad_utf8 = [0xffu8 as c_char, 0xfe_u8 as c_char, 0];
        assert_eq!(
            shivya_config_set_listen(c, bad_utf8.as_ptr()),
            SHIVYA_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("UTF-8"));
        assert_eq!(
            shivya_config_add_bootstrap(c, c"nope".as_ptr()),
            SHIVYA_ERR_INVALID_ARGUMENT
        );
        let edges = [0u32, 1, 1, 2];
        assert_eq!(
            shivya_config_set_topology(c, 3, edges.as_ptr(), 2),
            SHIVYA_OK
        );
        assert_eq!(
            shivya_config_set_topology(c, 3, ptr::null(), 2),
            SHIVYA_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            shivya_config_set_topology(c, 3, edges.as_ptr(), usize::MAX),
            SHIVYA_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            shivya_config_set_cg_tolerance(c, f64::NAN),
            SHIVYA_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            shivya_config_set_k(ptr::null_mut(), 4),
            SHIVYA_ERR_INVALID_ARGUMENT
        );
        shivya_config_free(c);
        shivya_config_free(ptr::null_mut());
    }

    #[test]
    fn reconciler_round_trip_and_bad_buffers() {
        let edges = [0u32, 1, 0, 2, 1, 2];
        let tris = [0u32, 1, 2];
        let mut cx: *mut shivya_complex = ptr::null_mut();
        assert_eq!(
            shivya_complex_new(3, edges.as_ptr(), 3, tris.as_ptr(), 1, &mut cx),
            SHIVYA_OK
        );
        assert_eq!(shivya_complex_n_edges(cx), 3);
        let input = [1.0, -1.0, 1.0];
        let mut out = [0.0f64; 3];
        let mut rep = shivya_solver_report::default();
        assert_eq!(
            shivya_reconcile(cx, input.as_ptr(), out.as_mut_ptr(), 3, &mut rep),
            SHIVYA_OK
        );
        assert!(out.iter().all(|x| x.abs() < 1e-9), "{out:?}");
        assert_eq!(
            shivya_reconcile(cx, input.as_ptr(), out.as_mut_ptr(), 2, &mut rep),
            SHIVYA_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            shivya_reconcile(cx, ptr::null(), out.as_mut_ptr(), 3, ptr::null_mut()),
            SHIVYA_ERR_INVALID_ARGUMENT
        );
        // Regression (found by fuzzing): finite but enormous values overflowed the solver and
        // came back as NaN with SHIVYA_OK; they are refused now.
        let huge = [-3.4e238, 1.0, 2.0];
        assert_eq!(
            shivya_reconcile(cx, huge.as_ptr(), out.as_mut_ptr(), 3, &mut rep),
            SHIVYA_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("refused"));
        let alias = out.as_mut_ptr();
        assert_eq!(
            shivya_reconcile(cx, alias, alias, 3, ptr::null_mut()),
            SHIVYA_ERR_INVALID_ARGUMENT
        );
        shivya_complex_free(cx);
        let mut bad: *mut shivya_complex = ptr::null_mut();
        let missing = [0u32, 1, 3];
        assert_eq!(
            shivya_complex_new(4, edges.as_ptr(), 3, missing.as_ptr(), 1, &mut bad),
            SHIVYA_ERR_INVALID_ARGUMENT
        );
        assert!(bad.is_null());
        assert_eq!(
            shivya_complex_new(3, edges.as_ptr(), 3, tris.as_ptr(), 1, ptr::null_mut()),
            SHIVYA_ERR_INVALID_ARGUMENT
        );
    }

    #[test]
    fn node_calls_on_null_are_errors() {
        let mut t = 0u64;
        let mut len = 0usize;
        assert_eq!(shivya_step(ptr::null_mut(), 0), SHIVYA_ERR_INVALID_ARGUMENT);
        assert_eq!(shivya_fd(ptr::null()), -1);
        assert_eq!(
            shivya_next_timeout_ms(ptr::null(), 0, &mut t),
            SHIVYA_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            shivya_settle(ptr::null_mut(), ptr::null_mut(), 0, &mut len),
            SHIVYA_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            shivya_block(ptr::null_mut(), c"1.2.3.4:5".as_ptr()),
            SHIVYA_ERR_INVALID_ARGUMENT
        );
        let mut out: *mut shivya_node = std::ptr::dangling_mut();
        assert_eq!(
            shivya_node_new(ptr::null(), 0, &mut out),
            SHIVYA_ERR_INVALID_ARGUMENT
        );
        assert!(out.is_null(), "out is reset on error");
        shivya_node_free(ptr::null_mut());
    }

    #[test]
    fn buffers_report_the_needed_size_and_messages_truncate_safely() {
        let items = [1u32, 2, 3];
        let mut len = 0usize;
        let mut two = [0u32; 2];
        // SAFETY: valid pointers and capacities.
        let e = unsafe { fill_buffer(two.as_mut_ptr(), 2, &mut len, &items, "items") }.unwrap_err();
        assert_eq!(
            (e.status, len, two),
            (SHIVYA_ERR_BUFFER_TOO_SHORT, 3, [0, 0])
        );
        let mut three = [0u32; 3];
        // SAFETY: as above.
        unsafe { fill_buffer(three.as_mut_ptr(), 3, &mut len, &items, "items") }.unwrap();
        assert_eq!(three, items);
        set_last_error("a rather long message");
        let mut tiny = [1 as c_char; 4];
        assert_eq!(shivya_last_error_message(tiny.as_mut_ptr(), 4), 21);
        assert_eq!(tiny, [b'a' as c_char, b' ' as c_char, b'r' as c_char, 0]);
        assert_eq!(shivya_last_error_message(ptr::null_mut(), 0), 21);
        // SAFETY: shivya_status_name returns a static NUL-terminated string.
        let name = unsafe { std::ffi::CStr::from_ptr(shivya_status_name(-8)) };
        assert_eq!(name.to_str().unwrap(), "SHIVYA_ERR_BUSY");
        // SAFETY: as above.
        let unknown = unsafe { std::ffi::CStr::from_ptr(shivya_status_name(99)) };
        assert_eq!(unknown.to_str().unwrap(), "unknown");
    }
}
