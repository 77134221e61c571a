//! 160-bit node identifiers and the XOR metric.

use std::fmt;

/// Bytes in a [`NodeId`].
pub const ID_LEN: usize = 20;
/// Bits in a [`NodeId`], and the number of k-buckets.
pub const ID_BITS: usize = ID_LEN * 8;

/// A 160-bit identifier, compared as a big-endian unsigned number.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub [u8; ID_LEN]);

impl NodeId {
    /// The all-zero id.
    pub const ZERO: NodeId = NodeId([0; ID_LEN]);

    /// An id spread over all 160 bits from a 64-bit seed (SplitMix64 output, big-endian).
    /// Deterministic: the same seed gives the same id on every machine.
    pub fn from_seed(seed: u64) -> NodeId {
        let mut state = seed;
        let mut out = [0u8; ID_LEN];
        for chunk in out.chunks_mut(8) {
            let bytes = crate::rng::splitmix64(&mut state).to_be_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        NodeId(out)
    }

    /// The id folded into 64 bits (XOR of its big-endian 8-byte words): a seed that
    /// differs between ids.
    pub fn fold64(&self) -> u64 {
        let mut fold = 0u64;
        for chunk in self.0.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            fold ^= u64::from_be_bytes(b);
        }
        fold
    }

    /// `self XOR other`, the Kademlia distance.
    pub fn distance(&self, other: &NodeId) -> NodeId {
        let mut out = [0u8; ID_LEN];
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.0[i] ^ other.0[i];
        }
        NodeId(out)
    }

    /// Number of leading zero bits (160 for the zero id).
    pub fn leading_zeros(&self) -> usize {
        let mut n = 0;
        for &b in &self.0 {
            if b == 0 {
                n += 8;
            } else {
                return n + b.leading_zeros() as usize;
            }
        }
        n
    }

    /// The k-bucket `other` falls into as seen from `self`: `159 − leading_zeros(self ⊕ other)`,
    /// i.e. bucket `i` holds ids whose distance lies in `[2^i, 2^(i+1))`. `None` for `self`.
    pub fn bucket_index(&self, other: &NodeId) -> Option<usize> {
        let lz = self.distance(other).leading_zeros();
        if lz == ID_BITS {
            None
        } else {
            Some(ID_BITS - 1 - lz)
        }
    }

    /// A uniformly random id in bucket `index` of `self` (distance in `[2^index, 2^(index+1))`),
    /// drawn from `bits`, a source of random bytes. Used for bucket refreshes.
    pub fn random_in_bucket(&self, index: usize, mut bits: impl FnMut() -> u64) -> NodeId {
        let index = index.min(ID_BITS - 1);
        let mut d = [0u8; ID_LEN];
        for chunk in d.chunks_mut(8) {
            let bytes = bits().to_be_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        // Keep only bits below `index`, then set bit `index` itself.
        let top = ID_BITS - 1 - index; // position of bit `index` counted from the MSB
        for (pos, byte) in d.iter_mut().enumerate() {
            for bit in 0..8 {
                let from_msb = pos * 8 + bit;
                let mask = 0x80u8 >> bit;
                if from_msb < top {
                    *byte &= !mask;
                } else if from_msb == top {
                    *byte |= mask;
                }
            }
        }
        self.distance(&NodeId(d))
    }

    /// Lower-case hex, 40 characters.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(2 * ID_LEN);
        for b in &self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// Parses 40 hex characters.
    pub fn from_hex(s: &str) -> Option<NodeId> {
        let bytes = s.as_bytes();
        if bytes.len() != 2 * ID_LEN {
            return None;
        }
        let mut out = [0u8; ID_LEN];
        for (i, o) in out.iter_mut().enumerate() {
            let hi = (bytes[2 * i] as char).to_digit(16)?;
            let lo = (bytes[2 * i + 1] as char).to_digit(16)?;
            *o = (hi * 16 + lo) as u8;
        }
        Some(NodeId(out))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", &self.to_hex()[..8])
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
