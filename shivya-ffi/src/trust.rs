//! Signed and encrypted meshes through the C ABI: node identities (Ed25519 key pairs),
//! the allowlist of admitted keys, and the encryption keyring with its rotation at run
//! time. Every key crosses as `(pointer, length)` and is checked for its exact length.

use crate::boundary::{guard, try_mut, try_ref, try_slice, try_slice_mut};
use crate::config::shivya_config;
use crate::node::shivya_node;
use crate::status::{shivya_status, Error};
use shivya_core::mesh::{Admission, Keyring};
use shivya_core::p2p::{Identity, PublicKey};

/// Bytes of an identity's secret key.
pub const SHIVYA_SECRET_KEY_LEN: usize = 32;
/// Bytes of a public key.
pub const SHIVYA_PUBLIC_KEY_LEN: usize = 32;
/// Bytes of an encryption key.
pub const SHIVYA_KEYRING_KEY_LEN: usize = 32;

const _: () = {
    assert!(SHIVYA_SECRET_KEY_LEN == shivya_core::p2p::identity::SECRET_KEY_LEN);
    assert!(SHIVYA_PUBLIC_KEY_LEN == shivya_core::p2p::identity::PUBLIC_KEY_LEN);
    assert!(SHIVYA_KEYRING_KEY_LEN == shivya_core::p2p::auth::KEYRING_KEY_LEN);
};

fn exact<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N], Error> {
    bytes
        .try_into()
        .map_err(|_| Error::invalid(format!("{what} must be {N} bytes, not {}", bytes.len())))
}

fn keyring_error(e: shivya_core::mesh::KeyringError) -> Error {
    Error::invalid(format!("keyring: {e}"))
}

/// Writes a fresh secret key (32 bytes from the operating system's random generator) to
/// `secret_out`, which holds `len` bytes (`SHIVYA_SECRET_KEY_LEN`). Keep it as carefully as
/// a TLS private key: it is the node's identity.
#[no_mangle]
pub extern "C" fn shivya_identity_generate(secret_out: *mut u8, len: usize) -> shivya_status {
    guard(|| {
        // SAFETY: `secret_out` holds `len` writable bytes.
        let out = unsafe { try_slice_mut(secret_out, len, "secret_out")? };
        if out.len() != SHIVYA_SECRET_KEY_LEN {
            return Err(Error::invalid(format!(
                "secret_out must hold {SHIVYA_SECRET_KEY_LEN} bytes, not {}",
                out.len()
            )));
        }
        let id = Identity::generate()
            .map_err(|e| Error::invalid(format!("no random bytes from the OS: {e}")))?;
        out.copy_from_slice(&id.secret());
        Ok(())
    })
}

/// Writes the public key of `secret` (`secret_len` = 32 bytes) to `public_out`
/// (`public_len` = 32 bytes): what other nodes list to admit this one.
#[no_mangle]
pub extern "C" fn shivya_identity_public_key(
    secret: *const u8,
    secret_len: usize,
    public_out: *mut u8,
    public_len: usize,
) -> shivya_status {
    guard(|| {
        // SAFETY: each pointer holds its length in bytes.
        let (s, out) = unsafe {
            (
                try_slice(secret, secret_len, "secret")?,
                try_slice_mut(public_out, public_len, "public_out")?,
            )
        };
        let id = Identity::from_secret(&exact::<SHIVYA_SECRET_KEY_LEN>(s, "secret")?);
        if out.len() != SHIVYA_PUBLIC_KEY_LEN {
            return Err(Error::invalid(format!(
                "public_out must hold {SHIVYA_PUBLIC_KEY_LEN} bytes, not {}",
                out.len()
            )));
        }
        out.copy_from_slice(&id.public_key().0);
        Ok(())
    })
}

/// Makes the mesh **signed**: the node takes the identity of `secret` (32 bytes; its id is
/// then the one the public key certifies, and `shivya_config_set_id`-style ids are
/// refused), signs every record it writes and merges others' records only with their
/// origins' valid signatures. `secret` NULL with `len` 0 makes the node unsigned again
/// (and clears the allowlist).
#[no_mangle]
pub extern "C" fn shivya_config_set_identity(
    config: *mut shivya_config,
    secret: *const u8,
    len: usize,
) -> shivya_status {
    guard(|| {
        // SAFETY: `config` is a live handle used by one thread; `secret` holds `len` bytes.
        let (c, s) = unsafe {
            (
                try_mut(config, "config")?,
                try_slice(secret, len, "secret")?,
            )
        };
        let identity = if s.is_empty() {
            None
        } else {
            Some(Identity::from_secret(&exact::<SHIVYA_SECRET_KEY_LEN>(
                s, "secret",
            )?))
        };
        c.update(|c| {
            if identity.is_none() {
                c.admission = Admission::AnyKey;
            }
            c.identity = identity;
        })
    })
}

/// Admits `public_key` (32 bytes) to a signed mesh. The first call turns the allowlist on:
/// from then on only listed keys' records, certificates and LEAVEs count, and only their
/// ids are heard. Call after `shivya_config_set_identity`, and list this node's own key
/// too (a list without it is refused when the node is created). NULL with `len` 0
/// clears the list (any key is admitted again).
#[no_mangle]
pub extern "C" fn shivya_config_admit_key(
    config: *mut shivya_config,
    public_key: *const u8,
    len: usize,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let (c, k) = unsafe {
            (
                try_mut(config, "config")?,
                try_slice(public_key, len, "public_key")?,
            )
        };
        if k.is_empty() {
            return c.update(|c| c.admission = Admission::AnyKey);
        }
        let key = PublicKey(exact::<SHIVYA_PUBLIC_KEY_LEN>(k, "public_key")?);
        if c.inner.identity.is_none() {
            return Err(Error::invalid(
                "an allowlist needs a signed mesh: call shivya_config_set_identity first",
            ));
        }
        // The own key may come later in the list: validation of the whole list happens
        // when the node is created.
        match &mut c.inner.admission {
            Admission::Keys(keys) => {
                keys.insert(key);
            }
            a @ Admission::AnyKey => *a = Admission::Keys([key].into()),
        }
        Ok(())
    })
}

/// Adds encryption key `id` (`len` = 32 bytes) to the config's keyring, and makes it the
/// key that encrypts when `primary` is non-zero (the first key added is primary). With a
/// keyring every datagram is encrypted (XChaCha20-Poly1305); it replaces the mesh key of
/// `shivya_config_set_auth_key` (setting both is refused). At most 8 keys.
#[no_mangle]
pub extern "C" fn shivya_config_add_keyring_key(
    config: *mut shivya_config,
    id: u8,
    key: *const u8,
    len: usize,
    primary: i32,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let (c, k) = unsafe { (try_mut(config, "config")?, try_slice(key, len, "key")?) };
        let key = exact::<SHIVYA_KEYRING_KEY_LEN>(k, "key")?;
        let ring = match &c.inner.keyring {
            None => Keyring::new(id, &key),
            Some(ring) => {
                let mut ring = ring.clone();
                ring.add(id, &key).map_err(keyring_error)?;
                if primary != 0 {
                    ring.set_primary(id).map_err(keyring_error)?;
                }
                ring
            }
        };
        c.update(|c| c.keyring = Some(ring))
    })
}

/// Runs `change` on a running node's keyring (a copy; kept only if it succeeds).
fn rekey(
    node: *mut shivya_node,
    change: impl FnOnce(&mut Keyring) -> Result<(), Error>,
) -> shivya_status {
    guard(|| {
        // SAFETY: `node` is a live handle; `enter` refuses overlapping calls.
        let mut n = unsafe { try_ref(node, "node")? }.enter()?;
        let state = n.state_mut();
        let Some(mut ring) = state.config().keyring.clone() else {
            return Err(Error::invalid(
                "this node was created without a keyring; encryption cannot be turned on at run time",
            ));
        };
        change(&mut ring)?;
        state.set_keyring(ring)?;
        Ok(())
    })
}

/// Key rotation on a running node, step 1: accept datagrams under key `id` too (32
/// bytes). Do this on every node before any of them makes the key primary.
#[no_mangle]
pub extern "C" fn shivya_node_add_keyring_key(
    node: *mut shivya_node,
    id: u8,
    key: *const u8,
    len: usize,
) -> shivya_status {
    // SAFETY: `key` holds `len` bytes.
    let key = match unsafe { try_slice(key, len, "key") }
        .and_then(|k| exact::<SHIVYA_KEYRING_KEY_LEN>(k, "key"))
    {
        Ok(k) => k,
        Err(e) => return guard(|| Err(e)),
    };
    rekey(node, |r| r.add(id, &key).map_err(keyring_error))
}

/// Key rotation, step 2: encrypt under key `id` from now on.
#[no_mangle]
pub extern "C" fn shivya_node_set_primary_key(node: *mut shivya_node, id: u8) -> shivya_status {
    rekey(node, |r| r.set_primary(id).map_err(keyring_error))
}

/// Key rotation, step 3: stop accepting key `id` (not the primary one).
#[no_mangle]
pub extern "C" fn shivya_node_remove_keyring_key(node: *mut shivya_node, id: u8) -> shivya_status {
    rekey(node, |r| r.remove(id).map_err(keyring_error))
}

/// Writes the node's public key (32 bytes) to `public_out` (`len` bytes); refused for an
/// unsigned node.
#[no_mangle]
pub extern "C" fn shivya_node_public_key(
    node: *const shivya_node,
    public_out: *mut u8,
    len: usize,
) -> shivya_status {
    guard(|| {
        // SAFETY: as above.
        let out = unsafe { try_slice_mut(public_out, len, "public_out")? };
        let n = unsafe { try_ref(node, "node")? }.enter()?;
        let Some(identity) = &n.state().config().identity else {
            return Err(Error::invalid("the node is unsigned: it has no key"));
        };
        if out.len() != SHIVYA_PUBLIC_KEY_LEN {
            return Err(Error::invalid(format!(
                "public_out must hold {SHIVYA_PUBLIC_KEY_LEN} bytes, not {}",
                out.len()
            )));
        }
        out.copy_from_slice(&identity.public_key().0);
        Ok(())
    })
}
