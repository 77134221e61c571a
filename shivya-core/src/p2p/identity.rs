//! Self-certifying identities and the signatures of signed meshes.
//!
//! A node with an [`Identity`] (an Ed25519 key pair, RustCrypto's `ed25519-dalek`) has the
//! node id `SHA-256("shivya node id v1" ‖ public key)[..20]`, so an id cannot be claimed
//! without its key. In a signed mesh each record carries its origin's public key and its
//! signature over the record's [`record_message`]; a death certificate carries that proof
//! of the version it names plus the issuer's signature; a LEAVE is signed by the node
//! that leaves. Verification is strict (RFC 8032 with the small-order and
//! non-canonical checks of `verify_strict`).

use super::id::{NodeId, ID_LEN};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::fmt;

/// Bytes of a public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Bytes of a secret key (the Ed25519 seed).
pub const SECRET_KEY_LEN: usize = 32;
/// Bytes of a signature.
pub const SIGNATURE_LEN: usize = 64;

/// A node's public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey(pub [u8; PUBLIC_KEY_LEN]);

impl PublicKey {
    /// The node id this key certifies.
    pub fn node_id(&self) -> NodeId {
        let mut h = Sha256::new();
        h.update(b"shivya node id v1");
        h.update(self.0);
        let d = h.finalize();
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&d[..ID_LEN]);
        NodeId(id)
    }

    /// Whether `sig` is this key's signature of `message` (strict verification; false for
    /// a key that is not a valid curve point).
    pub fn verify(&self, message: &[u8], sig: &[u8; SIGNATURE_LEN]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        key.verify_strict(message, &Signature::from_bytes(sig))
            .is_ok()
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 64 hex characters (surrounding whitespace ignored); `None` otherwise.
    pub fn from_hex(s: &str) -> Option<PublicKey> {
        parse_hex(s.trim()).map(PublicKey)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let bytes = s.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        let hi = (bytes[2 * i] as char).to_digit(16)?;
        let lo = (bytes[2 * i + 1] as char).to_digit(16)?;
        *o = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// A node's key pair. The secret never appears in `Debug` output.
#[derive(Clone)]
pub struct Identity {
    key: SigningKey,
}

impl Identity {
    /// A fresh key pair from the operating system's random generator.
    pub fn generate() -> Result<Identity, getrandom::Error> {
        let mut seed = [0u8; SECRET_KEY_LEN];
        getrandom::getrandom(&mut seed)?;
        Ok(Identity::from_secret(&seed))
    }

    /// The key pair of a saved secret (from [`Identity::secret`]).
    pub fn from_secret(secret: &[u8; SECRET_KEY_LEN]) -> Identity {
        Identity {
            key: SigningKey::from_bytes(secret),
        }
    }

    /// The secret, to keep it across restarts (store it as carefully as a TLS key).
    pub fn secret(&self) -> [u8; SECRET_KEY_LEN] {
        self.key.to_bytes()
    }

    /// Parses a secret written as 64 hex characters (surrounding whitespace ignored).
    pub fn from_secret_hex(s: &str) -> Option<Identity> {
        parse_hex(s.trim()).map(|k| Identity::from_secret(&k))
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.key.verifying_key().to_bytes())
    }

    /// The node id the public key certifies.
    pub fn node_id(&self) -> NodeId {
        self.public_key().node_id()
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.key.sign(message).to_bytes()
    }
}

impl PartialEq for Identity {
    fn eq(&self, other: &Identity) -> bool {
        self.public_key() == other.public_key()
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({:?})", self.public_key())
    }
}

/// Bytes of a [`record_message`].
pub const RECORD_MESSAGE_LEN: usize = 18 + ID_LEN + 8 + 32;

/// What an origin signs for its record: a domain tag, the origin, the version and the
/// SHA-256 of the record's entries as encoded on the wire (so a death certificate can
/// prove the version with the hash alone).
pub fn record_message(
    origin: &NodeId,
    version: u64,
    entries_hash: &[u8; 32],
) -> [u8; RECORD_MESSAGE_LEN] {
    let mut m = [0u8; RECORD_MESSAGE_LEN];
    m[..18].copy_from_slice(b"shivya record v1\0\0");
    m[18..18 + ID_LEN].copy_from_slice(&origin.0);
    m[18 + ID_LEN..26 + ID_LEN].copy_from_slice(&version.to_be_bytes());
    m[26 + ID_LEN..].copy_from_slice(entries_hash);
    m
}

/// What the issuer of a death certificate signs: a domain tag, the origin, the
/// certificate's version (with the DEAD bit).
pub fn certificate_message(origin: &NodeId, version: u64) -> [u8; 18 + ID_LEN + 8] {
    let mut m = [0u8; 18 + ID_LEN + 8];
    m[..18].copy_from_slice(b"shivya death v1\0\0\0");
    m[18..18 + ID_LEN].copy_from_slice(&origin.0);
    m[18 + ID_LEN..].copy_from_slice(&version.to_be_bytes());
    m
}

/// What a leaving node signs: a domain tag, its id, and the version of its last record
/// (so an old LEAVE replayed after the node came back names a version it has passed).
pub fn leave_message(id: &NodeId, version: u64) -> [u8; 18 + ID_LEN + 8] {
    let mut m = [0u8; 18 + ID_LEN + 8];
    m[..18].copy_from_slice(b"shivya leave v1\0\0\0");
    m[18..18 + ID_LEN].copy_from_slice(&id.0);
    m[18 + ID_LEN..].copy_from_slice(&version.to_be_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_8032_test_vector_1() {
        // RFC 8032 §7.1, TEST 1 (empty message).
        let secret =
            parse_hex::<32>("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap();
        let id = Identity::from_secret(&secret);
        assert_eq!(
            id.public_key().to_hex(),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = id.sign(b"");
        assert_eq!(
            sig.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert!(id.public_key().verify(b"", &sig));
        assert!(!id.public_key().verify(b"x", &sig));
        let mut bad = sig;
        bad[0] ^= 1;
        assert!(!id.public_key().verify(b"", &bad));
        // Not a curve point: refused, no panic.
        assert!(!PublicKey([0xff; 32]).verify(b"", &sig));
    }

    #[test]
    fn ids_follow_keys_and_secrets_round_trip() {
        let a = Identity::from_secret(&[7; 32]);
        let b = Identity::from_secret(&[8; 32]);
        assert_ne!(a.node_id(), b.node_id());
        assert_eq!(a.node_id(), a.public_key().node_id());
        let hex: String = a.secret().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(Identity::from_secret_hex(&hex).unwrap(), a);
        assert_eq!(
            PublicKey::from_hex(&a.public_key().to_hex()),
            Some(a.public_key())
        );
        assert!(PublicKey::from_hex("zz").is_none());
        assert!(!format!("{a:?}").contains(&hex));
        let g = Identity::generate().unwrap();
        assert_ne!(g.public_key(), Identity::generate().unwrap().public_key());
    }
}
