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

// ---------------------------------------------------------------------------------------
// Encryption

/// Bytes an encrypted datagram adds to its frame: key id (1), nonce (24), tag (16).
pub const SEALED_OVERHEAD: usize = 1 + NONCE_LEN + 16;
const NONCE_LEN: usize = 24;

/// Bytes of an encryption key.
pub const KEYRING_KEY_LEN: usize = 32;

/// Most keys a keyring holds.
pub const MAX_KEYRING_KEYS: usize = 8;

/// Why a keyring change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// The id is taken already.
    #[error("key id {0} appears twice: it is in the keyring already")]
    Duplicate(u8),
    /// No key given.
    #[error("the keyring holds no key")]
    Empty,
    /// Several keys and none marked primary.
    #[error("mark one key primary")]
    NoPrimary,
    /// More than one key marked primary.
    #[error("more than one key is primary")]
    SeveralPrimaries,
    /// No key has this id.
    #[error("no key with id {0} in the keyring")]
    Unknown(u8),
    /// The keyring is full.
    #[error("a keyring holds at most {MAX_KEYRING_KEYS} keys")]
    Full,
    /// The key that encrypts cannot be removed.
    #[error("key {0} is the primary key; make another key primary first")]
    Primary(u8),
}

/// The keys of an encrypted mesh: every datagram is encrypted (XChaCha20-Poly1305,
/// RustCrypto's audited implementation) under the **primary** key, and a datagram under
/// any key of the ring is accepted. Rotation without downtime: add the new key on every
/// node, then make it primary on every node, then remove the old one. Key bytes never
/// appear in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Keyring {
    keys: std::collections::BTreeMap<u8, [u8; KEYRING_KEY_LEN]>,
    primary: u8,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Keyring(ids {:?}, primary {})",
            self.keys.keys().collect::<Vec<_>>(),
            self.primary
        )
    }
}

impl Keyring {
    /// A ring of one key, `id`, which is primary.
    pub fn new(id: u8, key: &[u8; KEYRING_KEY_LEN]) -> Keyring {
        Keyring {
            keys: std::collections::BTreeMap::from([(id, *key)]),
            primary: id,
        }
    }

    /// A ring of `(id, key, primary)` entries: exactly one marked primary, or a single key
    /// (which then is). Every id at most once, at most [`MAX_KEYRING_KEYS`] keys. The one
    /// reading of a key list, for configuration files and bindings alike.
    pub fn from_keys(keys: &[(u8, [u8; KEYRING_KEY_LEN], bool)]) -> Result<Keyring, KeyringError> {
        let marked: Vec<usize> = (0..keys.len()).filter(|&k| keys[k].2).collect();
        let primary = match (marked.as_slice(), keys) {
            (_, []) => return Err(KeyringError::Empty),
            ([p], _) => *p,
            ([], [_]) => 0,
            ([], _) => return Err(KeyringError::NoPrimary),
            _ => return Err(KeyringError::SeveralPrimaries),
        };
        let mut ring = Keyring::new(keys[primary].0, &keys[primary].1);
        for (k, (id, key, _)) in keys.iter().enumerate() {
            if k != primary {
                ring.add(*id, key)?;
            }
        }
        Ok(ring)
    }

    /// Adds a key that is accepted but does not encrypt yet.
    pub fn add(&mut self, id: u8, key: &[u8; KEYRING_KEY_LEN]) -> Result<(), KeyringError> {
        if self.keys.contains_key(&id) {
            return Err(KeyringError::Duplicate(id));
        }
        if self.keys.len() >= MAX_KEYRING_KEYS {
            return Err(KeyringError::Full);
        }
        self.keys.insert(id, *key);
        Ok(())
    }

    /// Encrypts with key `id` from now on.
    pub fn set_primary(&mut self, id: u8) -> Result<(), KeyringError> {
        if !self.keys.contains_key(&id) {
            return Err(KeyringError::Unknown(id));
        }
        self.primary = id;
        Ok(())
    }

    /// Stops accepting key `id` (not the primary one).
    pub fn remove(&mut self, id: u8) -> Result<(), KeyringError> {
        if id == self.primary {
            return Err(KeyringError::Primary(id));
        }
        self.keys
            .remove(&id)
            .map(|_| ())
            .ok_or(KeyringError::Unknown(id))
    }

    /// The primary key's id.
    pub fn primary(&self) -> u8 {
        self.primary
    }

    /// A cipher per key, by id.
    fn ciphers(&self) -> Vec<(u8, chacha20poly1305::XChaCha20Poly1305)> {
        use chacha20poly1305::KeyInit;
        self.keys
            .iter()
            .map(|(id, k)| (*id, chacha20poly1305::XChaCha20Poly1305::new(k.into())))
            .collect()
    }

    /// The ids held, ascending.
    pub fn ids(&self) -> Vec<u8> {
        self.keys.keys().copied().collect()
    }
}

/// How a node protects its datagrams: not at all, with an HMAC tag, or encrypted.
#[derive(Clone)]
pub(crate) enum Envelope {
    Clear,
    Tagged(AuthKey),
    Sealed {
        ciphers: Vec<(u8, chacha20poly1305::XChaCha20Poly1305)>,
        primary: u8,
        /// 16 random bytes drawn at start, then a counter: nonces never repeat under a
        /// key, across nodes and restarts alike (2^-64 for two runs to share a prefix
        /// per 2^32 runs).
        nonce_prefix: [u8; 16],
        counter: u64,
    },
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Envelope::Clear => "Clear",
            Envelope::Tagged(_) => "Tagged",
            Envelope::Sealed { .. } => "Sealed",
        })
    }
}

impl Envelope {
    /// The envelope of an encrypted mesh; fails only when the OS gives no random bytes.
    pub fn sealed(ring: &Keyring) -> Result<Envelope, getrandom::Error> {
        let mut nonce_prefix = [0u8; 16];
        getrandom::getrandom(&mut nonce_prefix)?;
        Ok(Envelope::Sealed {
            ciphers: ring.ciphers(),
            primary: ring.primary,
            nonce_prefix,
            counter: 0,
        })
    }

    /// Takes a new keyring's keys, keeping the nonce sequence.
    pub fn rekey(&mut self, ring: &Keyring) -> bool {
        let Envelope::Sealed {
            ciphers, primary, ..
        } = self
        else {
            return false;
        };
        *ciphers = ring.ciphers();
        *primary = ring.primary;
        true
    }

    /// Bytes added to each frame.
    pub fn overhead(&self) -> usize {
        match self {
            Envelope::Clear => 0,
            Envelope::Tagged(_) => TAG_LEN,
            Envelope::Sealed { .. } => SEALED_OVERHEAD,
        }
    }

    /// Whether datagrams prove they come from a key holder.
    pub fn authenticated(&self) -> bool {
        !matches!(self, Envelope::Clear)
    }

    /// The frame inside `datagram` (decrypted into `scratch` when sealed), or `None` when
    /// its tag or encryption does not verify.
    pub fn open<'a>(&self, datagram: &'a [u8], scratch: &'a mut Vec<u8>) -> Option<&'a [u8]> {
        use chacha20poly1305::aead::AeadInPlace;
        match self {
            Envelope::Clear => Some(datagram),
            Envelope::Tagged(key) => key.verify(datagram),
            Envelope::Sealed { ciphers, .. } => {
                if datagram.len() < SEALED_OVERHEAD {
                    return None;
                }
                let (cipher, nonce) = ciphers
                    .iter()
                    .find(|(id, _)| *id == datagram[0])
                    .map(|(_, c)| (c, &datagram[1..1 + NONCE_LEN]))?;
                let (body, tag) =
                    datagram[1 + NONCE_LEN..].split_at(datagram.len() - SEALED_OVERHEAD);
                scratch.clear();
                scratch.extend_from_slice(body);
                cipher
                    .decrypt_in_place_detached(nonce.into(), &[], scratch, tag.into())
                    .ok()?;
                Some(&scratch[..])
            }
        }
    }

    /// Protects the frame in `buf` in place: appends the tag, or encrypts it under the
    /// primary key behind key id and nonce.
    pub fn close(&mut self, buf: &mut Vec<u8>) {
        use chacha20poly1305::aead::AeadInPlace;
        match self {
            Envelope::Clear => {}
            Envelope::Tagged(key) => {
                let tag = key.tag(buf);
                buf.extend_from_slice(&tag);
            }
            Envelope::Sealed {
                ciphers,
                primary,
                nonce_prefix,
                counter,
            } => {
                let Some((_, cipher)) = ciphers.iter().find(|(id, _)| id == primary) else {
                    buf.clear();
                    return;
                };
                let mut nonce = [0u8; NONCE_LEN];
                nonce[..16].copy_from_slice(nonce_prefix);
                nonce[16..].copy_from_slice(&counter.to_be_bytes());
                *counter = counter.wrapping_add(1);
                match cipher.encrypt_in_place_detached((&nonce).into(), &[], buf) {
                    Ok(tag) => {
                        buf.extend_from_slice(&tag);
                        let mut head = [0u8; 1 + NONCE_LEN];
                        head[0] = *primary;
                        head[1..].copy_from_slice(&nonce);
                        buf.splice(0..0, head);
                    }
                    Err(_) => buf.clear(),
                }
            }
        }
    }
}

#[cfg(test)]
mod sealed_tests {
    use super::*;

    #[test]
    fn sealed_datagrams_open_only_under_a_key_of_the_ring() {
        let ring = Keyring::new(1, &[7; 32]);
        let mut a = Envelope::sealed(&ring).unwrap();
        let b = Envelope::sealed(&ring).unwrap();
        let mut buf = b"a frame of some bytes".to_vec();
        a.close(&mut buf);
        assert_eq!(buf.len(), 21 + SEALED_OVERHEAD);
        assert!(!buf.windows(5).any(|w| w == b"frame"), "encrypted");
        let mut scratch = Vec::new();
        assert_eq!(
            b.open(&buf, &mut scratch),
            Some(&b"a frame of some bytes"[..])
        );
        // Two datagrams of the same frame differ (fresh nonce).
        let mut again = b"a frame of some bytes".to_vec();
        a.close(&mut again);
        assert_ne!(again, buf);
        // A flipped bit anywhere, a short datagram, an unknown key id or another key:
        // refused.
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 1;
            assert!(b.open(&bad, &mut scratch).is_none(), "bit in byte {i}");
        }
        assert!(b.open(&buf[..SEALED_OVERHEAD - 1], &mut scratch).is_none());
        let other = Envelope::sealed(&Keyring::new(1, &[8; 32])).unwrap();
        assert!(other.open(&buf, &mut scratch).is_none());
        // Rotation: the new key is added (still accepting the old), made primary, and
        // the old one removed.
        let mut next = ring.clone();
        next.add(2, &[9; 32]).unwrap();
        let mut c = Envelope::sealed(&next).unwrap();
        assert_eq!(c.open(&buf, &mut scratch).map(<[u8]>::len), Some(21));
        next.set_primary(2).unwrap();
        assert_eq!(next.remove(2), Err(KeyringError::Primary(2)));
        next.remove(1).unwrap();
        assert!(c.rekey(&next));
        assert!(c.open(&buf, &mut scratch).is_none(), "old key removed");
        let mut fresh = b"x".to_vec();
        c.close(&mut fresh);
        assert_eq!(fresh[0], 2);
        assert_eq!(c.open(&fresh, &mut scratch), Some(&b"x"[..]));
        let mut full = Keyring::new(0, &[0; 32]);
        for id in 1..MAX_KEYRING_KEYS as u8 {
            full.add(id, &[id; 32]).unwrap();
        }
        assert_eq!(full.add(99, &[1; 32]), Err(KeyringError::Full));
        assert_eq!(full.add(3, &[1; 32]), Err(KeyringError::Duplicate(3)));
        assert!(!format!("{full:?}").contains("[3, 3"));
        // A key list: one primary, or a single key; anything else is refused by name.
        let (a, b) = ([1; 32], [2; 32]);
        let ring = Keyring::from_keys(&[(1, a, false), (2, b, true)]).unwrap();
        assert_eq!((ring.ids(), ring.primary()), (vec![1, 2], 2));
        assert_eq!(Keyring::from_keys(&[(7, a, false)]).unwrap().primary(), 7);
        for (keys, err) in [
            (vec![], KeyringError::Empty),
            (vec![(1, a, false), (2, b, false)], KeyringError::NoPrimary),
            (
                vec![(1, a, true), (2, b, true)],
                KeyringError::SeveralPrimaries,
            ),
            (
                vec![(1, a, true), (1, b, false)],
                KeyringError::Duplicate(1),
            ),
        ] {
            assert_eq!(Keyring::from_keys(&keys), Err(err));
        }
    }
}
