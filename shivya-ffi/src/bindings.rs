//! The UniFFI surface (Python, Kotlin, Swift): objects with a mutex inside, so every method
//! may be called from any foreign thread; calls on one object are serialised.
//!
//! [`ShivyaError`] maps one-to-one onto the C `shivya_status` codes, each carrying the
//! same message `shivya_last_error_message` would give.

use crate::config::{settle_mode, topology};
use crate::status::{shivya_status, Error};
use shivya_core::hodge::{HodgeWorkspace, SimplicialComplex};
use shivya_core::mesh::{Admission, Keyring, Node, NodeConfig};
use shivya_core::p2p::{Identity, PublicKey};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// Errors, one variant per C status code: `InvalidArgument` = −1, `BufferTooShort` = −2,
/// `Io` = −3, `Capacity` = −4, `Numeric` = −5, `Panic` = −6, `Internal` = −7, `Busy` = −8
/// (never raised here: these objects serialise calls with a mutex).
/// Crosses as a "flat" error: each variant carries its display text, which is what foreign
/// code sees as the exception message (and avoids a clash with Kotlin's `message`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum ShivyaError {
    /// `SHIVYA_ERR_INVALID_ARGUMENT` (also: the node is closed).
    #[error("invalid argument: {message}")]
    InvalidArgument {
        /// What was wrong.
        message: String,
    },
    /// `SHIVYA_ERR_BUFFER_TOO_SHORT` (not raised by these bindings, which size their own
    /// buffers; present so the mapping is complete).
    #[error("buffer too short: {message}")]
    BufferTooShort {
        /// Details.
        message: String,
    },
    /// `SHIVYA_ERR_IO`.
    #[error("i/o: {message}")]
    Io {
        /// Details.
        message: String,
    },
    /// `SHIVYA_ERR_CAPACITY`.
    #[error("capacity: {message}")]
    Capacity {
        /// Details.
        message: String,
    },
    /// `SHIVYA_ERR_NUMERIC`.
    #[error("numeric: {message}")]
    Numeric {
        /// Details.
        message: String,
    },
    /// `SHIVYA_ERR_PANIC`.
    #[error("panic: {message}")]
    Panic {
        /// Details.
        message: String,
    },
    /// `SHIVYA_ERR_INTERNAL`.
    #[error("internal: {message}")]
    Internal {
        /// Details.
        message: String,
    },
    /// `SHIVYA_ERR_BUSY`.
    #[error("busy: {message}")]
    Busy {
        /// Details.
        message: String,
    },
}

impl From<Error> for ShivyaError {
    fn from(e: Error) -> ShivyaError {
        let message = e.message;
        match e.status {
            shivya_status::SHIVYA_OK | shivya_status::SHIVYA_ERR_INTERNAL => {
                ShivyaError::Internal { message }
            }
            shivya_status::SHIVYA_ERR_INVALID_ARGUMENT => ShivyaError::InvalidArgument { message },
            shivya_status::SHIVYA_ERR_BUFFER_TOO_SHORT => ShivyaError::BufferTooShort { message },
            shivya_status::SHIVYA_ERR_IO => ShivyaError::Io { message },
            shivya_status::SHIVYA_ERR_CAPACITY => ShivyaError::Capacity { message },
            shivya_status::SHIVYA_ERR_NUMERIC => ShivyaError::Numeric { message },
            shivya_status::SHIVYA_ERR_PANIC => ShivyaError::Panic { message },
            shivya_status::SHIVYA_ERR_BUSY => ShivyaError::Busy { message },
        }
    }
}

impl From<shivya_core::mesh::MeshError> for ShivyaError {
    fn from(e: shivya_core::mesh::MeshError) -> ShivyaError {
        Error::from(e).into()
    }
}

fn invalid(message: impl Into<String>) -> ShivyaError {
    ShivyaError::InvalidArgument {
        message: message.into(),
    }
}

/// The library version.
#[uniffi::export]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// An undirected edge `(a, b)`, oriented from `a` to `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct Edge {
    /// First vertex.
    pub a: u32,
    /// Second vertex.
    pub b: u32,
}

/// A triangle `(a, b, c)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct Triangle {
    /// First vertex.
    pub a: u32,
    /// Second vertex.
    pub b: u32,
    /// Third vertex.
    pub c: u32,
}

/// Node settings. Defaults: see [`default_config`].
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ShivyaConfig {
    /// UDP address to bind, e.g. `127.0.0.1:0`.
    pub listen: String,
    /// Peers to join through.
    pub bootstrap: Vec<String>,
    /// Seed of every random choice; the node id derives from it.
    pub seed: u64,
    /// Period of the layer stack.
    pub step_interval_ms: u64,
    /// Kademlia bucket size (1..=20).
    pub k: u32,
    /// Reconciler CG tolerance.
    pub cg_tolerance: f64,
    /// Vertices of the workload graph.
    pub n_vertices: u32,
    /// Its edges; empty means the default topology (every pair connected up to 64
    /// vertices, the ring with chords beyond).
    pub edges: Vec<Edge>,
    /// Keep only the gradient part when settling.
    pub gradient_only: bool,
    /// This run's versions start at `incarnation << 20` (at most 2^43 − 1); pass something
    /// that grows across restarts (wall-clock milliseconds) when a node may restart without
    /// its state.
    pub incarnation: u64,
    /// Shared mesh key (≥ 16 bytes) for HMAC-authenticated frames; `None` = off.
    pub auth_key: Option<Vec<u8>>,
    /// This node's Ed25519 secret key (32 bytes, see [`generate_identity`]): the mesh is
    /// then signed and the node id is the one the key certifies. `None` = unsigned.
    pub identity_secret: Option<Vec<u8>>,
    /// Public keys (32 bytes each) admitted to a signed mesh; empty = any key. This
    /// node's own key is added when missing.
    pub admit_keys: Vec<Vec<u8>>,
    /// Encryption keys: every datagram encrypted under the primary one (exactly one, or
    /// the only key); empty = no encryption. Replaces `auth_key`.
    pub keyring: Vec<KeyringKey>,
    /// The balancer's weight law (see the C `shivya_config_set_weight_law`); `None` = the
    /// library's default.
    pub weight_law: Option<String>,
}

/// The default settings (127.0.0.1:0, seed 1, step 100 ms, K 4, 4 vertices, complete).
#[uniffi::export]
pub fn default_config() -> ShivyaConfig {
    let d = NodeConfig::default();
    ShivyaConfig {
        listen: d.listen.to_string(),
        bootstrap: Vec::new(),
        seed: d.seed,
        step_interval_ms: d.step_interval_ms,
        k: d.kad.k as u32,
        cg_tolerance: d.cg.tolerance,
        n_vertices: d.topology.n_vertices(),
        edges: Vec::new(),
        gradient_only: false,
        incarnation: 0,
        auth_key: None,
        identity_secret: None,
        admit_keys: Vec::new(),
        keyring: Vec::new(),
        weight_law: None,
    }
}

fn parse_addr(s: &str) -> Result<SocketAddr, ShivyaError> {
    Ok(crate::config::parse_addr(s, "address")?)
}

impl TryFrom<&ShivyaConfig> for NodeConfig {
    type Error = ShivyaError;
    fn try_from(c: &ShivyaConfig) -> Result<NodeConfig, ShivyaError> {
        let mut n = NodeConfig {
            listen: parse_addr(&c.listen)?,
            seed: c.seed,
            step_interval_ms: c.step_interval_ms,
            ..NodeConfig::default()
        };
        for b in &c.bootstrap {
            n.bootstrap.push(parse_addr(b)?);
        }
        n.kad.k = c.k as usize;
        n.cg.tolerance = c.cg_tolerance;
        let pairs: Vec<(u32, u32)> = c.edges.iter().map(|e| (e.a, e.b)).collect();
        n.topology = topology(c.n_vertices, &pairs)?;
        n.incarnation = c.incarnation;
        n.auth_key = match &c.auth_key {
            Some(k) => Some(shivya_core::mesh::MeshKey::new(k)?),
            None => None,
        };
        if let Some(secret) = &c.identity_secret {
            let identity = Identity::from_secret(&key32(secret, "identity_secret")?);
            if !c.admit_keys.is_empty() {
                let mut keys = BTreeSet::from([identity.public_key()]);
                for k in &c.admit_keys {
                    keys.insert(PublicKey(key32(k, "admit_keys entry")?));
                }
                n.admission = Admission::Keys(keys);
            }
            n.identity = Some(identity);
        } else if !c.admit_keys.is_empty() {
            return Err(invalid("admit_keys needs identity_secret (a signed mesh)"));
        }
        n.keyring = keyring(&c.keyring)?;
        n.settle_mode = settle_mode(c.gradient_only);
        n.balancer.law = c.weight_law.clone();
        n.validate()?;
        Ok(n)
    }
}

/// One key of an encryption keyring.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct KeyringKey {
    /// Its id (the first byte of every datagram encrypted with it).
    pub id: u8,
    /// The key, 32 bytes.
    pub key: Vec<u8>,
    /// Encrypt with this key.
    pub primary: bool,
}

fn key32(bytes: &[u8], what: &str) -> Result<[u8; 32], ShivyaError> {
    bytes
        .try_into()
        .map_err(|_| invalid(format!("{what} must be 32 bytes, not {}", bytes.len())))
}

/// The keyring of `keys` (`None` when empty): exactly one primary, or a single key.
fn keyring(keys: &[KeyringKey]) -> Result<Option<Keyring>, ShivyaError> {
    if keys.is_empty() {
        return Ok(None);
    }
    let mut entries = Vec::with_capacity(keys.len());
    for k in keys {
        entries.push((k.id, key32(&k.key, "keyring key")?, k.primary));
    }
    Keyring::from_keys(&entries)
        .map(Some)
        .map_err(|e| invalid(format!("keyring: {e}")))
}

/// A fresh Ed25519 secret key (32 bytes from the OS): a node's identity. Keep it safe.
#[uniffi::export]
pub fn generate_identity() -> Result<Vec<u8>, ShivyaError> {
    Identity::generate()
        .map(|i| i.secret().to_vec())
        .map_err(|e| invalid(format!("no random bytes from the OS: {e}")))
}

/// The public key (32 bytes) of a secret key: what other nodes admit.
#[uniffi::export]
pub fn public_key_of(secret: Vec<u8>) -> Result<Vec<u8>, ShivyaError> {
    Ok(Identity::from_secret(&key32(&secret, "secret")?)
        .public_key()
        .0
        .to_vec())
}

/// A settled route.
#[derive(Debug, Clone, Copy, PartialEq, uniffi::Record)]
pub struct Route {
    /// Vertex work leaves.
    pub src: u32,
    /// Vertex work goes to.
    pub dst: u32,
    /// Rate, > 0.
    pub rate: f64,
}

/// A snapshot of a node.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct NodeStatus {
    /// Node id, 40 hex characters.
    pub id: String,
    /// Peers in the routing table.
    pub peers: u64,
    /// Records held.
    pub records: u64,
    /// Version of the node's own record.
    pub own_version: u64,
    /// Residual of the last reconciliation.
    pub last_residual: f64,
    /// This node's term of the collective free energy.
    pub f_collective: f64,
    /// Free energy of the node's agent.
    pub free_energy: f64,
    /// The node's dividend share.
    pub dividend: f64,
    /// Datagrams received.
    pub frames_in: u64,
    /// Datagrams sent.
    pub frames_out: u64,
    /// Datagrams dropped, all reasons.
    pub dropped: u64,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Outcome {
    /// An answer.
    Ok,
    /// An error or a timeout.
    Failed,
    /// The backend refused it.
    Refused,
}

/// What a capacity signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SignalKind {
    /// The backend is saturated: add capacity beside it.
    Split,
    /// The backend is idle: it can be drained.
    Cull,
}

/// A capacity signal for one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct CapacitySignal {
    /// The backend (a vertex).
    pub backend: u32,
    /// Split or cull.
    pub kind: SignalKind,
}

/// A routing-table peer.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PeerInfo {
    /// Id, 40 hex characters.
    pub id: String,
    /// Address.
    pub addr: String,
    /// When last heard from (host milliseconds).
    pub last_seen_ms: u64,
}

/// A mesh node on its own UDP socket. Thread-safe: a mutex serialises calls.
#[derive(uniffi::Object)]
pub struct ShivyaNode {
    inner: Mutex<Option<Node>>,
}

impl ShivyaNode {
    fn with<R>(
        &self,
        f: impl FnOnce(&mut Node) -> Result<R, ShivyaError>,
    ) -> Result<R, ShivyaError> {
        let mut guard: MutexGuard<'_, Option<Node>> = match self.inner.lock() {
            Ok(g) => g,
            // A panic inside an earlier call poisoned the lock; the node itself is intact
            // (every mutation is validated first), so keep serving.
            Err(p) => p.into_inner(),
        };
        match guard.as_mut() {
            Some(n) => f(n),
            None => Err(invalid("the node is closed")),
        }
    }
}

#[uniffi::export]
impl ShivyaNode {
    /// Binds a node and starts joining at `now_ms`.
    #[uniffi::constructor]
    pub fn new(config: ShivyaConfig, now_ms: u64) -> Result<Arc<ShivyaNode>, ShivyaError> {
        let c = NodeConfig::try_from(&config)?;
        let node = Node::bind(c, now_ms)?;
        Ok(Arc::new(ShivyaNode {
            inner: Mutex::new(Some(node)),
        }))
    }

    /// Reads arrived datagrams, runs due timers, sends what is queued.
    pub fn step(&self, now_ms: u64) -> Result<(), ShivyaError> {
        self.with(|n| Ok(n.step(now_ms).map(|_| ())?))
    }

    /// Milliseconds until `step` is needed (0 = now).
    pub fn next_timeout_ms(&self, now_ms: u64) -> Result<u64, ShivyaError> {
        self.with(|n| Ok(n.next_timeout_ms(now_ms)))
    }

    /// The socket's file descriptor, for the host's poll loop.
    pub fn fd(&self) -> Result<i32, ShivyaError> {
        self.with(|n| Ok(n.raw_fd()))
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<String, ShivyaError> {
        self.with(|n| Ok(n.local_addr().to_string()))
    }

    /// Records this node's queue length at `vertex`.
    pub fn record_queue_len(&self, vertex: u32, queue_len: f64) -> Result<(), ShivyaError> {
        self.with(|n| Ok(n.record_queue_len(vertex, queue_len)?))
    }

    /// Records the rate at which this node moves work from `src` to `dst`.
    pub fn record_offload(&self, src: u32, dst: u32, rate: f64) -> Result<(), ShivyaError> {
        self.with(|n| Ok(n.record_offload(src, dst, rate)?))
    }

    /// The backend (a vertex) for the next request; report it with `request_started`.
    pub fn pick(&self, now_ms: u64) -> Result<u32, ShivyaError> {
        self.with(|n| {
            n.state_mut()
                .pick(now_ms)
                .ok_or_else(|| invalid("the topology has no vertices to pick from"))
        })
    }

    /// A request went to `backend` at `now_ms`.
    pub fn request_started(&self, backend: u32, now_ms: u64) -> Result<(), ShivyaError> {
        self.with(|n| Ok(n.state_mut().request_started(backend, now_ms)?))
    }

    /// A request to `backend` ended at `now_ms` after `latency_ms`, with `outcome`.
    pub fn request_finished(
        &self,
        backend: u32,
        latency_ms: f64,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<(), ShivyaError> {
        let outcome = match outcome {
            Outcome::Ok => shivya_core::balancer::Outcome::Ok,
            Outcome::Failed => shivya_core::balancer::Outcome::Failed,
            Outcome::Refused => shivya_core::balancer::Outcome::Refused,
        };
        self.with(|n| {
            Ok(n.state_mut()
                .request_finished(backend, latency_ms, outcome, now_ms)?)
        })
    }

    /// Sets the configured weight of `backend` (the prior for its capacity; 1 by default).
    pub fn set_backend_weight(&self, backend: u32, weight: f64) -> Result<(), ShivyaError> {
        self.with(|n| Ok(n.state_mut().set_backend_weight(backend, weight)?))
    }

    /// The dispatch weights, one per backend, summing to 1.
    pub fn weights(&self) -> Result<Vec<f64>, ShivyaError> {
        self.with(|n| {
            let mut w = vec![0.0; n.state().balancer().len()];
            n.state().weights(&mut w)?;
            Ok(w)
        })
    }

    /// The capacity signals of the merged records.
    pub fn capacity_signals(&self) -> Result<Vec<CapacitySignal>, ShivyaError> {
        self.with(|n| {
            Ok(n.state()
                .capacity_signals()
                .iter()
                .map(|s| match *s {
                    shivya_core::balancer::CapacitySignal::Split { backend } => CapacitySignal {
                        backend,
                        kind: SignalKind::Split,
                    },
                    shivya_core::balancer::CapacitySignal::Cull { backend } => CapacitySignal {
                        backend,
                        kind: SignalKind::Cull,
                    },
                })
                .collect())
        })
    }

    /// A digest of the records held: equal on nodes holding the same records.
    pub fn view_digest(&self) -> Result<u64, ShivyaError> {
        self.with(|n| Ok(n.state().records().view_digest()))
    }

    /// The settled routes.
    pub fn settle(&self) -> Result<Vec<Route>, ShivyaError> {
        self.with(|n| {
            Ok(n.settle()?
                .into_iter()
                .map(|r| Route {
                    src: r.src,
                    dst: r.dst,
                    rate: r.rate,
                })
                .collect())
        })
    }

    /// A snapshot.
    pub fn status(&self) -> Result<NodeStatus, ShivyaError> {
        self.with(|n| {
            let s = n.status();
            Ok(NodeStatus {
                id: s.id.to_hex(),
                peers: s.peers as u64,
                records: s.records as u64,
                own_version: s.own_version,
                last_residual: s.last_residual,
                f_collective: s.f_collective,
                free_energy: s.free_energy,
                dividend: s.dividend,
                frames_in: s.counters.frames_in,
                frames_out: s.counters.frames_out,
                dropped: s.counters.dropped.total(),
            })
        })
    }

    /// The routing table's peers.
    pub fn peers(&self) -> Result<Vec<PeerInfo>, ShivyaError> {
        self.with(|n| {
            Ok(n.state()
                .kademlia()
                .table()
                .peers()
                .map(|p| PeerInfo {
                    id: p.id.to_hex(),
                    addr: p.addr.to_string(),
                    last_seen_ms: p.last_seen_ms,
                })
                .collect())
        })
    }

    /// The node's public key (signed meshes), `None` when unsigned.
    pub fn public_key(&self) -> Result<Option<Vec<u8>>, ShivyaError> {
        self.with(|n| {
            Ok(n.state()
                .config()
                .identity
                .as_ref()
                .map(|i| i.public_key().0.to_vec()))
        })
    }

    /// Replaces the keyring of an encrypted node at run time (rotation: add the new key
    /// everywhere, make it primary everywhere, drop the old one). Refused for a node
    /// started without encryption.
    pub fn set_keyring(&self, keys: Vec<KeyringKey>) -> Result<(), ShivyaError> {
        let Some(ring) = keyring(&keys)? else {
            return Err(invalid("keyring: at least one key is needed"));
        };
        self.with(|n| Ok(n.state_mut().set_keyring(ring)?))
    }

    /// Drops all traffic to and from `addr` (partition tests).
    pub fn block(&self, addr: String) -> Result<(), ShivyaError> {
        let a = parse_addr(&addr)?;
        self.with(|n| {
            n.block(a);
            Ok(())
        })
    }

    /// Lifts a `block`.
    pub fn unblock(&self, addr: String) -> Result<(), ShivyaError> {
        let a = parse_addr(&addr)?;
        self.with(|n| {
            n.unblock(a);
            Ok(())
        })
    }

    /// Leaves the mesh (withdraws records, tells peers) and closes the socket. Further
    /// calls raise `InvalidArgument`; shutting down twice is fine. (Named `shutdown`
    /// because Kotlin's generated `AutoCloseable.close()` already frees the handle; the
    /// Python package also offers it as `close()`.)
    pub fn shutdown(&self) -> Result<(), ShivyaError> {
        let mut guard = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(mut n) = guard.take() {
            n.leave()?;
        }
        Ok(())
    }
}

/// What one reconciliation did.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Reconciled {
    /// The curl-free flow.
    pub flow: Vec<f64>,
    /// CG iterations.
    pub iterations: u64,
    /// Final residual.
    pub residual: f64,
}

/// A standalone reconciler over a simplicial complex. Thread-safe (mutex inside).
#[derive(uniffi::Object)]
pub struct Reconciler {
    inner: Mutex<(SimplicialComplex, HodgeWorkspace)>,
}

#[uniffi::export]
impl Reconciler {
    /// A complex of `n_vertices` vertices, these edges and these filled triangles.
    #[uniffi::constructor]
    pub fn new(
        n_vertices: u32,
        edges: Vec<Edge>,
        triangles: Vec<Triangle>,
    ) -> Result<Arc<Reconciler>, ShivyaError> {
        let e: Vec<(u32, u32)> = edges.iter().map(|e| (e.a, e.b)).collect();
        let t: Vec<(u32, u32, u32)> = triangles.iter().map(|t| (t.a, t.b, t.c)).collect();
        let complex = SimplicialComplex::new(n_vertices as usize, &e, &t).map_err(Error::from)?;
        let ws = complex.workspace();
        Ok(Arc::new(Reconciler {
            inner: Mutex::new((complex, ws)),
        }))
    }

    /// Edges of the complex (the length `reconcile` expects).
    pub fn n_edges(&self) -> u64 {
        match self.inner.lock() {
            Ok(g) => g.0.n_edges() as u64,
            Err(p) => p.into_inner().0.n_edges() as u64,
        }
    }

    /// The curl-free part of `flow`.
    pub fn reconcile(&self, flow: Vec<f64>) -> Result<Reconciled, ShivyaError> {
        let mut guard = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let (complex, ws) = &mut *guard;
        let mut out = vec![0.0; complex.n_edges()];
        let r = complex
            .project_curl_free_into(&flow, ws, &mut out)
            .map_err(Error::from)?;
        Ok(Reconciled {
            flow: out,
            iterations: r.iterations as u64,
            residual: r.residual,
        })
    }
}
