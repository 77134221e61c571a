//! p2p — Kademlia over UDP: ids, k-buckets, the wire protocol, the DHT store, transport.
//!
//! This layer knows nothing of the mathematics; it moves frames. [`Kademlia`] is a pure
//! state machine (frames and time in; frames, events and deadlines out). [`UdpTransport`]
//! is the only code that touches a socket. The mesh layer joins the two.
//!
//! * [`NodeId`]: 160 bits, XOR distance, bucket `159 − leading_zeros(a ⊕ b)`.
//! * [`RoutingTable`]: 160 buckets of K peers, least-recently-seen first. A full bucket
//!   PINGs its oldest peer when a newcomer appears; the oldest keeps its slot if it answers
//!   and is evicted for the newcomer if it does not.
//! * [`protocol`]: fixed-layout big-endian frames ≤ 1200 bytes; decoding is total.
//! * [`DhtStore`]: bounded values under 160-bit keys, for STORE and FIND_VALUE.

pub mod auth;
mod id;
pub mod identity;
mod kad;
pub mod protocol;
mod routing;
mod store;
mod transport;

pub use id::{NodeId, ID_BITS, ID_LEN};
pub use identity::{Identity, PublicKey};
pub use kad::{KadConfig, KadCounters, KadEvent, Kademlia};
pub use protocol::{Body, Contact, DecodeError, Frame, StoreStatus};
pub use routing::{InsertOutcome, Peer, RoutingTable};
pub use store::DhtStore;
pub use transport::{Recv, UdpTransport};

use std::net::SocketAddr;
use thiserror::Error;

/// Errors of the p2p layer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum P2pError {
    /// A setting is out of range.
    #[error("p2p setting {what} = {value} is out of range: {why}")]
    Config {
        /// Setting.
        what: &'static str,
        /// Value.
        value: u64,
        /// Accepted range.
        why: &'static str,
    },
    /// The local store refused a value.
    #[error("the DHT store refused the value: {status:?}")]
    Store {
        /// Why.
        status: StoreStatus,
    },
    /// The socket could not be bound.
    #[error("cannot bind UDP {addr}: {reason}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// The OS's reason (e.g. address in use).
        reason: String,
    },
}
