//! `NodeConfig`: everything a node needs to start, and its one validation, which every
//! surface (Rust, the C ABI, the bindings, shivyad) calls.

use super::belief::BeliefConfig;
use super::workload::{SettleMode, WorkloadTopology};
use super::MeshError;
use crate::balancer::BalancerConfig;
use crate::hodge::CgConfig;
use crate::p2p::auth::Keyring;
use crate::p2p::{Identity, KadConfig, NodeId, PublicKey};
use std::collections::BTreeSet;
use std::net::SocketAddr;

/// Largest [`NodeConfig::incarnation`]: versions start at `incarnation << 20` in a `u64`.
pub const MAX_INCARNATION: u64 = (1 << 43) - 1;

/// Everything a node needs to start.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// Address to bind (used by [`super::Node`]; `NodeState` ignores it).
    pub listen: SocketAddr,
    /// Our id; derived from `seed` when `None`.
    pub id: Option<NodeId>,
    /// Seed of every random choice this node makes.
    pub seed: u64,
    /// Addresses to join through.
    pub bootstrap: Vec<SocketAddr>,
    /// Kademlia settings.
    pub kad: KadConfig,
    /// The workload graph (identical on every node of a mesh).
    pub topology: WorkloadTopology,
    /// Period of the layer stack (agent, diffusion, dividends, reconciliation).
    pub step_interval_ms: u64,
    /// Period of anti-entropy rounds while anything changes.
    pub gossip_interval_ms: u64,
    /// While nothing changes (no write, no record learned, every digest exchanged agrees,
    /// no rumour left), the round period doubles up to this; any change brings it back to
    /// `gossip_interval_ms`, and a write is published within `gossip_interval_ms` of being
    /// made. Quiet rounds send one SUMMARY frame instead of digest pages. Equal to
    /// `gossip_interval_ms`: the quiet mesh is off (no backoff, digest pages every round).
    pub max_gossip_interval_ms: u64,
    /// Every this many milliseconds, look up one held origin that is not in the routing
    /// table (never probed ones first, the latest changed first; an origin found alive is
    /// not probed again for 360 intervals) and, when the lookup does not find it and no
    /// newer record of it came meanwhile, suspect it (it is certified dead after the
    /// suspicion wait): how records of origins that nobody routes to (invented by forged
    /// traffic, or gone before anyone held them) stop counting. Each probe that finds its
    /// origin alive doubles the wait, up to 16 intervals; a new origin or an origin not
    /// found brings it back to this. 0 turns it off.
    pub orphan_probe_interval_ms: u64,
    /// Contacts in the uniform peer-sampling view (Cyclon) that supplies one gossip target
    /// per round beside the Kademlia table; 0 turns peer sampling off (targets then all
    /// come from the table).
    pub sample_view: usize,
    /// Peers contacted per anti-entropy round (a quiet round's SUMMARY goes to one).
    pub fanout: usize,
    /// Most DELTA/DELTAS frames pushed in answer to one DIGEST (each DELTAS packs as many
    /// records as fit in a frame).
    pub max_push_per_digest: usize,
    /// Most origins held.
    pub max_records: usize,
    /// Pushes of a newly learned record (rumour mongering, on top of the digest
    /// anti-entropy): each push goes to the `fanout` gossip targets of a rumour sub-round
    /// ([`RUMOR_SUBROUNDS`](super::RUMOR_SUBROUNDS) per base period), at most
    /// [`RUMOR_RECORDS`](super::RUMOR_RECORDS) such records per period, freshest first,
    /// packed into DELTAS frames; gossip keeps the base pace for as many rounds. `None` picks
    /// `⌈log₂(records held + 1)⌉`, enough that a node misses a rumour with probability
    /// about `e^(−2·fanout·log₂N)`; `Some(0)` turns it off (anti-entropy alone then needs
    /// a full digest cycle, `records / 36` rounds, per hop).
    pub rumor_rounds: Option<u32>,
    /// Which part of the flow `settle` keeps.
    pub settle_mode: SettleMode,
    /// Weight of the queue-length gradient in the flow.
    pub queue_gain: f64,
    /// Routes at or below this rate are not reported.
    pub min_rate: f64,
    /// Reconciliation solver settings.
    pub cg: CgConfig,
    /// Agent and belief exchange settings.
    pub belief: BeliefConfig,
    /// The dispatch policy (layers, weight law, capacity signals).
    pub balancer: BalancerConfig,
    /// Distinguishes this run of a node id from earlier ones: our record's versions start
    /// at `incarnation << 20` (values up to [`MAX_INCARNATION`] = 2^43 − 1, so own versions
    /// stay below the death-certificate bit; about 278 years of wall-clock milliseconds). A
    /// host that
    /// restarts a node with the same id but without its state (see
    /// [`super::NodeState::restore_own`]) should pass something that grows across restarts, such
    /// as wall-clock milliseconds since the Unix epoch, so the new run's versions are above
    /// every version an earlier run published (that holds while a run makes fewer than 2^20
    /// writes per millisecond it lived). Otherwise a restarted node can reuse a version with
    /// different content, and nodes would not converge on that origin.
    pub incarnation: u64,
    /// A key shared by every member: when set, each datagram carries an HMAC-SHA-256 tag
    /// and datagrams without a valid one are dropped (counted as `bad_auth`). See
    /// docs/CONSISTENCY.md and PROTOCOL.md.
    pub auth_key: Option<MeshKey>,
    /// Encrypt every datagram (XChaCha20-Poly1305) under this keyring's primary key and
    /// accept datagrams under any of its keys; others are dropped (`bad_auth`). Encryption
    /// authenticates too, so it replaces `auth_key` (setting both is refused). Keys can
    /// be rotated at run time with `NodeState::set_keyring`. See PROTOCOL.md.
    pub keyring: Option<Keyring>,
    /// This node's key pair. Set, the mesh is **signed**: the node id is the one the
    /// public key certifies (`id` must then be unset or equal), every record this node
    /// writes carries its signature, and records, death certificates and LEAVEs from
    /// others are merged or acted on only with a valid signature of their origin (see
    /// docs/CONSISTENCY.md). Unset (the default): unsigned, for labs and tests.
    pub identity: Option<Identity>,
    /// Who may write in a signed mesh (ignored without `identity`).
    pub admission: Admission,
    /// Bind with SO_REUSEPORT (Unix), so that the next generation of a host process can
    /// bind the same port before this one has closed it (nginx reloads and binary
    /// upgrades). Both generations then receive datagrams until the old one closes.
    pub reuse_port: bool,
}

/// Which keys a signed mesh admits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Admission {
    /// Any key: a record still counts only when signed by the key its origin id
    /// certifies, so no member can write in another's name (use a mesh key to keep
    /// strangers out altogether).
    #[default]
    AnyKey,
    /// Only these keys (this node's own among them): records, certificates and LEAVEs
    /// signed by any other key are dropped, and so is every frame whose sender id is
    /// not one these keys certify (`not_admitted`).
    Keys(BTreeSet<PublicKey>),
}

/// A shared mesh key (at least 16 bytes). Its bytes never appear in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct MeshKey(Vec<u8>);

impl MeshKey {
    /// Shortest key accepted, in bytes.
    pub const MIN_LEN: usize = 16;

    /// A key; refused when shorter than [`MeshKey::MIN_LEN`].
    pub fn new(bytes: &[u8]) -> Result<MeshKey, MeshError> {
        if bytes.len() < Self::MIN_LEN {
            return Err(MeshError::Config {
                what: "auth_key",
                why: format!(
                    "{} bytes is too short; use at least {}",
                    bytes.len(),
                    Self::MIN_LEN
                ),
            });
        }
        Ok(MeshKey(bytes.to_vec()))
    }

    /// The key's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for MeshKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MeshKey({} bytes)", self.0.len())
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            id: None,
            seed: 1,
            bootstrap: Vec::new(),
            kad: KadConfig::default(),
            topology: WorkloadTopology::default(),
            step_interval_ms: 100,
            gossip_interval_ms: 50,
            max_gossip_interval_ms: 1_000,
            orphan_probe_interval_ms: 5_000,
            sample_view: 32,
            fanout: 2,
            max_push_per_digest: 16,
            max_records: 4_096,
            rumor_rounds: None,
            settle_mode: SettleMode::CurlFree,
            queue_gain: 1.0,
            min_rate: 1e-9,
            cg: CgConfig::default(),
            belief: BeliefConfig::default(),
            balancer: BalancerConfig::default(),
            incarnation: 0,
            auth_key: None,
            keyring: None,
            identity: None,
            admission: Admission::AnyKey,
            reuse_port: false,
        }
    }
}

impl NodeConfig {
    /// The id this configuration gives the node.
    pub fn node_id(&self) -> NodeId {
        match (&self.identity, self.id) {
            (Some(identity), _) => identity.node_id(),
            (None, Some(id)) => id,
            (None, None) => NodeId::from_seed(self.seed),
        }
    }

    /// Checks every setting. The one validation of a node's configuration: `NodeState::new`
    /// calls it, and so does every surface before it accepts a change.
    pub fn validate(&self) -> Result<(), MeshError> {
        self.kad.validate().map_err(MeshError::P2p)?;
        self.belief.validate()?;
        self.balancer.validate()?;
        let positive = [
            ("step_interval_ms", self.step_interval_ms),
            ("gossip_interval_ms", self.gossip_interval_ms),
            ("fanout", self.fanout as u64),
            ("max_push_per_digest", self.max_push_per_digest as u64),
            ("max_records", self.max_records as u64),
        ];
        for (what, v) in positive {
            if v == 0 {
                return Err(MeshError::Config {
                    what,
                    why: "must be positive".into(),
                });
            }
        }
        if self.max_gossip_interval_ms < self.gossip_interval_ms {
            return Err(MeshError::Config {
                what: "max_gossip_interval_ms",
                why: format!(
                    "{} is below gossip_interval_ms ({})",
                    self.max_gossip_interval_ms, self.gossip_interval_ms
                ),
            });
        }
        for peer in &self.bootstrap {
            usable_peer(peer, &self.listen)?;
        }
        if self.keyring.is_some() && self.auth_key.is_some() {
            return Err(MeshError::Config {
                what: "keyring",
                why: "an encrypted mesh is authenticated by its keyring; drop auth_key".into(),
            });
        }
        match (&self.identity, &self.admission) {
            (Some(identity), _) if self.id.is_some_and(|id| id != identity.node_id()) => {
                return Err(MeshError::Config {
                    what: "id",
                    why: format!(
                        "a signed node's id is the one its key certifies ({}), not {}",
                        identity.node_id(),
                        self.id.unwrap_or_default()
                    ),
                });
            }
            (None, Admission::Keys(_)) => {
                return Err(MeshError::Config {
                    what: "admission",
                    why: "an allowlist of keys needs this node's own identity (a signed mesh)"
                        .into(),
                });
            }
            (Some(identity), Admission::Keys(keys)) if !keys.contains(&identity.public_key()) => {
                return Err(MeshError::Config {
                    what: "admission",
                    why: format!(
                        "the allowlist does not hold this node's own key {}",
                        identity.public_key()
                    ),
                });
            }
            _ => {}
        }
        if self.incarnation > MAX_INCARNATION {
            return Err(MeshError::Config {
                what: "incarnation",
                why: format!("{} exceeds 2^43 - 1", self.incarnation),
            });
        }
        if !(self.queue_gain >= 0.0 && self.queue_gain.is_finite()) {
            return Err(MeshError::Config {
                what: "queue_gain",
                why: format!("{} must be finite and non-negative", self.queue_gain),
            });
        }
        if !(self.min_rate >= 0.0 && self.min_rate.is_finite()) {
            return Err(MeshError::Config {
                what: "min_rate",
                why: format!("{} must be finite and non-negative", self.min_rate),
            });
        }
        if !(self.cg.tolerance > 0.0 && self.cg.tolerance.is_finite())
            || self.cg.max_iterations == 0
        {
            return Err(MeshError::Config {
                what: "cg",
                why: "tolerance must be finite and positive, max_iterations positive".into(),
            });
        }
        Ok(())
    }
}

/// Whether a datagram from a socket bound to `listen` can reach `peer`: a real port, a
/// specified address, and the same address family (a socket bound to an IPv4 address
/// cannot send to an IPv6 one, nor the reverse).
pub fn usable_peer(peer: &SocketAddr, listen: &SocketAddr) -> Result<(), MeshError> {
    let why = if peer.port() == 0 {
        "port 0 cannot be sent to"
    } else if peer.ip().is_unspecified() {
        "an unspecified address (0.0.0.0 or ::) cannot be sent to"
    } else if peer.ip().is_multicast() {
        "a multicast address is not a peer"
    } else if peer.is_ipv4() != listen.is_ipv4() {
        "its address family differs from the listen address's"
    } else {
        return Ok(());
    };
    Err(MeshError::Config {
        what: "bootstrap",
        why: format!("peer {peer} is unusable from {listen}: {why}"),
    })
}
