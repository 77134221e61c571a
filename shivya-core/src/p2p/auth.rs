//! Frame authentication for meshes with a shared key: HMAC-SHA-256 (RFC 2104), truncated
//! to 16 bytes and appended to each datagram. The primitives are RustCrypto's `hmac` and
//! `sha2` (audited, constant-time comparison); checked here against RFC 4231's vectors.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Bytes of the tag appended to an authenticated datagram.
pub const TAG_LEN: usize = 16;

/// SHA-256's block size: HMAC keys are zero-padded (or first hashed) to this length.
const BLOCK: usize = 64;

/// A mesh key, ready to tag and verify datagrams.
#[derive(Clone)]
pub struct AuthKey {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthKey(…)")
    }
}

impl AuthKey {
    /// A key of any length (longer than 64 bytes is hashed first, per RFC 2104).
    pub fn new(key: &[u8]) -> AuthKey {
        // RFC 2104's keying, done here so that it cannot fail: a key is zero-padded to
        // the block, a longer one is hashed first.
        let mut block = [0u8; BLOCK];
        if key.len() > BLOCK {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        AuthKey {
            mac: <Hmac<Sha256> as Mac>::new(&block.into()),
        }
    }

    /// HMAC-SHA-256 of `data`.
    pub fn hmac(&self, data: &[u8]) -> [u8; 32] {
        let mut m = self.mac.clone();
        m.update(data);
        m.finalize().into_bytes().into()
    }

    /// The 16-byte tag of `data`.
    pub fn tag(&self, data: &[u8]) -> [u8; TAG_LEN] {
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(&self.hmac(data)[..TAG_LEN]);
        t
    }

    /// Checks `datagram = frame || tag` in constant time; returns the frame part.
    pub fn verify<'a>(&self, datagram: &'a [u8]) -> Option<&'a [u8]> {
        if datagram.len() < TAG_LEN {
            return None;
        }
        let (frame, tag) = datagram.split_at(datagram.len() - TAG_LEN);
        let mut m = self.mac.clone();
        m.update(frame);
        m.verify_truncated_left(tag).ok().map(|()| frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 1.
        let k = AuthKey::new(&[0x0b; 20]);
        assert_eq!(
            hex(&k.hmac(b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        // Test case 2.
        let k = AuthKey::new(b"Jefe");
        assert_eq!(
            hex(&k.hmac(b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        let k = AuthKey::new(&[0xaa; 131]);
        assert_eq!(
            hex(&k.hmac(b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn verify_accepts_only_the_right_tag() {
        let k = AuthKey::new(b"mesh key");
        let mut d = b"frame bytes".to_vec();
        d.extend_from_slice(&k.tag(b"frame bytes"));
        assert_eq!(k.verify(&d), Some(&b"frame bytes"[..]));
        let last = d.len() - 1;
        d[last] ^= 1;
        assert_eq!(k.verify(&d), None);
        assert_eq!(AuthKey::new(b"other").verify(&d), None);
        assert_eq!(k.verify(b"short"), None);
    }
}
