//! `shivya_config`: node settings and their setters. Every setter changes a copy and
//! keeps it only when the core's `NodeConfig::validate` accepts it, so C, the bindings and
//! shivyad share one validation.

use crate::boundary::{free_boxed, guard, guard_value, try_mut, try_slice, try_str, write_out};
use crate::status::{shivya_status, Error};
use shivya_core::balancer::Layers;
use shivya_core::mesh::{MeshKey, NodeConfig, SettleMode, WorkloadTopology};
use std::ffi::c_char;
use std::net::SocketAddr;

/// Node settings. Create with [`shivya_config_new`], adjust with the setters, pass to
/// [`shivya_node_new`] (which copies it), release with [`shivya_config_free`].
pub struct shivya_config {
    pub(crate) inner: NodeConfig,
}

impl shivya_config {
    /// Applies `change` to a copy and keeps it only if the whole configuration is still
    /// valid: a refused setting changes nothing.
    pub(crate) fn update(&mut self, change: impl FnOnce(&mut NodeConfig)) -> Result<(), Error> {
        let mut next = self.inner.clone();
        change(&mut next);
        next.validate()?;
        self.inner = next;
        Ok(())
    }
}

/// Runs `change` on the config behind `config` (checked for NULL) through
/// [`shivya_config::update`].
fn set(config: *mut shivya_config, change: impl FnOnce(&mut NodeConfig)) -> shivya_status {
    guard(|| {
        // SAFETY: `config` is NULL or a live handle from `shivya_config_new`, used by one
        // thread at a time (the documented contract).
        let c = unsafe { try_mut(config, "config")? };
        c.update(change)
    })
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
        let listen = parse_addr(a, "listen address")?;
        c.update(|c| c.listen = listen)
    })
}

/// Adds a bootstrap peer address. Refused when the node could never send to it: port 0,
/// an unspecified (`0.0.0.0`, `::`) or multicast address, or another address family than
/// the listen address (set the listen address first when it is IPv6).
#[no_mangle]
pub extern "C" fn shivya_config_add_bootstrap(
    config: *mut shivya_config,
    addr: *const c_char,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let (c, a) = unsafe { (try_mut(config, "config")?, try_str(addr, "addr")?) };
        let addr = parse_addr(a, "bootstrap address")?;
        c.update(|c| {
            if !c.bootstrap.contains(&addr) {
                c.bootstrap.push(addr);
            }
        })
    })
}

/// Sets the seed of every random choice; the node id is derived from it.
#[no_mangle]
pub extern "C" fn shivya_config_set_seed(config: *mut shivya_config, seed: u64) -> shivya_status {
    set(config, |c| {
        c.seed = seed;
        c.id = None;
    })
}

/// Sets the incarnation (at most 2^43 − 1): this run's record versions start at
/// `incarnation << 20`. Pass a value that grows across restarts (wall-clock milliseconds
/// since the Unix epoch) when a node may restart with the same seed without its state.
#[no_mangle]
pub extern "C" fn shivya_config_set_incarnation(
    config: *mut shivya_config,
    incarnation: u64,
) -> shivya_status {
    set(config, |c| c.incarnation = incarnation)
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
        let key = if k.is_empty() {
            None
        } else {
            Some(MeshKey::new(k)?)
        };
        c.update(|c| c.auth_key = key)
    })
}

/// Sets the period of the layer stack in milliseconds (> 0).
#[no_mangle]
pub extern "C" fn shivya_config_set_step_interval_ms(
    config: *mut shivya_config,
    ms: u64,
) -> shivya_status {
    set(config, |c| c.step_interval_ms = ms)
}

/// Sets the Kademlia bucket size K (1..=20).
#[no_mangle]
pub extern "C" fn shivya_config_set_k(config: *mut shivya_config, k: usize) -> shivya_status {
    set(config, |c| c.kad.k = k)
}

/// Sets the CG tolerance of the reconciler (finite, > 0).
#[no_mangle]
pub extern "C" fn shivya_config_set_cg_tolerance(
    config: *mut shivya_config,
    tolerance: f64,
) -> shivya_status {
    set(config, |c| c.cg.tolerance = tolerance)
}

/// Sets the workload graph: `n_vertices` vertices and `n_edges` edges given as
/// `2 * n_edges` vertex indices `(u0, v0, u1, v1, …)`. `edges` NULL with `n_edges` 0 means
/// the default topology for `n_vertices` backends: every pair connected up to 64
/// vertices, and beyond that the ring with chords (each vertex joined to its next two, 2n
/// edges; docs/PERFORMANCE.md, "Large upstreams", says why). Every node of a mesh must use the same graph.
/// At most `SHIVYA_MAX_VERTICES` vertices and `SHIVYA_MAX_EDGES` edges with at most
/// `SHIVYA_MAX_TRIANGLES` triangles among them; larger graphs are refused before anything
/// is allocated. A node publishes the loads of at most 4 096 backends.
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
        let pairs: Vec<(u32, u32)> = flat.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        let topology = topology(n_vertices, &pairs)?;
        c.update(|c| c.topology = topology)
    })
}

/// Binds the node's socket with SO_REUSEPORT (Unix) when `reuse_port` is true, so that the
/// next generation of a host process (an nginx reload or binary upgrade) can bind the same
/// port while this one still holds it; both receive datagrams until the old one closes.
#[no_mangle]
pub extern "C" fn shivya_config_set_reuse_port(
    config: *mut shivya_config,
    reuse_port: bool,
) -> shivya_status {
    set(config, |c| c.reuse_port = reuse_port)
}

/// The balancer's L1 layer (filtered estimates); for `shivya_config_set_balancer_layers`.
pub const SHIVYA_LAYER_FILTER: u32 = 1;
/// The balancer's L2 layer (weights from the law).
pub const SHIVYA_LAYER_LAW: u32 = 2;
/// The balancer's L3 layer (damped weights).
pub const SHIVYA_LAYER_DAMPING: u32 = 4;
/// The balancer's L4 layer (capacity signals).
pub const SHIVYA_LAYER_CAPACITY: u32 = 8;
/// The other balancers' records in the decision.
pub const SHIVYA_LAYER_SHARED: u32 = 16;
/// Every layer (the default).
pub const SHIVYA_LAYERS_ALL: u32 = 31;

/// Sets which balancer layers take part (an OR of `SHIVYA_LAYER_*`; other bits are
/// refused). All by default; switching one off is for comparisons.
#[no_mangle]
pub extern "C" fn shivya_config_set_balancer_layers(
    config: *mut shivya_config,
    layers: u32,
) -> shivya_status {
    if layers & !SHIVYA_LAYERS_ALL != 0 {
        return guard(|| {
            Err(Error::invalid(format!(
                "layers {layers:#x} has bits outside SHIVYA_LAYERS_ALL ({SHIVYA_LAYERS_ALL:#x})"
            )))
        });
    }
    set(config, |c| {
        c.balancer.layers = Layers {
            filter: layers & SHIVYA_LAYER_FILTER != 0,
            law: layers & SHIVYA_LAYER_LAW != 0,
            damping: layers & SHIVYA_LAYER_DAMPING != 0,
            capacity: layers & SHIVYA_LAYER_CAPACITY != 0,
            shared: layers & SHIVYA_LAYER_SHARED != 0,
        }
    })
}

/// Sets the balancer's weight law: an expression over `q`, `local`, `svc`, `lat`, `sd`,
/// `err`, `weight` and `n` with `+ - * /`, parentheses, `min`, `max`, `abs`, `tanh`
/// (at most 1024 bytes). NULL restores the default law. A law that does not parse or
/// does not fit the VM's budget is refused with a message naming the problem.
#[no_mangle]
pub extern "C" fn shivya_config_set_weight_law(
    config: *mut shivya_config,
    law: *const c_char,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let c = unsafe { try_mut(config, "config")? };
        let law = if law.is_null() {
            None
        } else {
            // SAFETY: non-NULL and NUL-terminated per the contract.
            Some(unsafe { try_str(law, "law")? }.to_string())
        };
        c.update(|c| c.balancer.law = law)
    })
}

/// Sends this node's agent belief to its peers (BELIEF frames) when true; off by default
/// (nothing a host reads depends on it).
#[no_mangle]
pub extern "C" fn shivya_config_set_belief_exchange(
    config: *mut shivya_config,
    exchange: bool,
) -> shivya_status {
    set(config, |c| c.belief.exchange = exchange)
}

/// Chooses what `shivya_settle` keeps: `false` (default) the curl-free part (circulation
/// around holes survives), `true` the gradient part only.
#[no_mangle]
pub extern "C" fn shivya_config_set_gradient_only(
    config: *mut shivya_config,
    gradient_only: bool,
) -> shivya_status {
    set(config, |c| c.settle_mode = settle_mode(gradient_only))
}

/// The settle mode a `gradient_only` flag names.
pub(crate) fn settle_mode(gradient_only: bool) -> SettleMode {
    if gradient_only {
        SettleMode::GradientOnly
    } else {
        SettleMode::CurlFree
    }
}

/// The workload graph from `n_vertices` and flat `(u, v)` pairs; no pairs means complete.
pub(crate) fn topology(n_vertices: u32, pairs: &[(u32, u32)]) -> Result<WorkloadTopology, Error> {
    Ok(if pairs.is_empty() {
        WorkloadTopology::for_backends(n_vertices)?
    } else {
        WorkloadTopology::new(n_vertices, pairs)?
    })
}
