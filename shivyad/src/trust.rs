//! The daemon's identity, allowlist and keyring files (`--identity-file`,
//! `--admit-key`, `--keyring-file`), read into the core's types with one clear error per
//! bad file or line.

use shivya_core::mesh::{Admission, Keyring, NodeConfig};
use shivya_core::p2p::{Identity, PublicKey};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

/// A key file is a line of hex: far below this.
const MAX_KEY_FILE: u64 = 64 * 1024;

fn read_small(path: &Path, what: &str) -> Result<Option<String>, String> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_KEY_FILE => {
            return Err(format!("{what} {shown} is {} bytes: too large", m.len()))
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {what} {shown}: {e}")),
    }
    std::fs::read_to_string(path)
        .map(Some)
        .map_err(|e| format!("cannot read {what} {shown}: {e}"))
}

/// The identity in `path` (64 hex characters, the secret key); a missing file is created
/// with a fresh key, readable by the owner only, as ssh does with host keys.
pub fn load_or_create_identity(path: &Path) -> Result<Identity, String> {
    let shown = path.display();
    if let Some(text) = read_small(path, "identity file")? {
        return Identity::from_secret_hex(&text).ok_or_else(|| {
            format!("identity file {shown} does not hold a 64-character hex secret key")
        });
    }
    let identity =
        Identity::generate().map_err(|e| format!("cannot draw a key from the OS: {e}"))?;
    let hex: String = identity
        .secret()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .map_err(|e| format!("cannot create identity file {shown}: {e}"))?;
    f.write_all(format!("{hex}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write identity file {shown}: {e}"))?;
    tracing::info!(path = %shown, "created a new identity");
    Ok(identity)
}

/// The `--admit-key` values (64 hex characters each).
pub fn admitted_keys(keys: &[String]) -> Result<BTreeSet<PublicKey>, String> {
    keys.iter()
        .map(|k| {
            PublicKey::from_hex(k)
                .ok_or_else(|| format!("--admit-key {k:?} is not a 64-character hex public key"))
        })
        .collect()
}

/// Reads a keyring file: one key per line, `ID HEX [primary]` (ID 0..=255, HEX 64
/// characters); `#` starts a comment. Exactly one line is marked `primary`, unless the
/// file holds one key.
pub fn load_keyring(path: &Path) -> Result<Keyring, String> {
    let shown = path.display();
    let text = read_small(path, "keyring file")?
        .ok_or_else(|| format!("keyring file {shown} does not exist"))?;
    let mut keys: Vec<(u8, [u8; 32], bool)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = |why: &str| format!("keyring file {shown} line {}: {why}", n + 1);
        let mut words = line.split_whitespace();
        let id: u8 = words
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| bad("expected a key id 0..=255 first"))?;
        let hex = words
            .next()
            .ok_or_else(|| bad("expected a 64-character hex key"))?;
        let key = PublicKey::from_hex(hex)
            .map(|k| k.0)
            .ok_or_else(|| bad("the key must be 64 hex characters"))?;
        let primary = match words.next() {
            None => false,
            Some("primary") => true,
            Some(w) => {
                return Err(bad(&format!(
                    "unexpected {w:?} (only 'primary' may follow the key)"
                )))
            }
        };
        keys.push((id, key, primary));
    }
    Keyring::from_keys(&keys).map_err(|e| format!("keyring file {shown}: {e}"))
}

/// Applies `--identity-file`, `--admit-key` and `--keyring-file` to `config`.
pub fn configure(
    config: &mut NodeConfig,
    identity_file: Option<&Path>,
    admit: &[String],
    keyring_file: Option<&Path>,
) -> Result<(), String> {
    // Every flag is checked before the identity file is created.
    let mut listed = admitted_keys(admit)?;
    let keyring = keyring_file.map(load_keyring).transpose()?;
    match identity_file {
        Some(p) => {
            let identity = load_or_create_identity(p)?;
            if !listed.is_empty() {
                listed.insert(identity.public_key());
                config.admission = Admission::Keys(listed);
            }
            config.identity = Some(identity);
        }
        None if !admit.is_empty() => {
            return Err("--admit-key needs --identity-file (a signed mesh)".into());
        }
        None => {}
    }
    if keyring.is_some() && config.auth_key.is_some() {
        return Err(
            "--keyring-file encrypts and authenticates every datagram: drop --auth-key-file".into(),
        );
    }
    config.keyring = keyring;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyring_files_are_read_or_refused_with_the_line() {
        let dir = std::env::temp_dir().join(format!("shivyad-keyring-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("ring");
        let k = |b: u8| format!("{b:02x}").repeat(32);
        std::fs::write(&p, format!("# two keys\n1 {}\n2 {} primary\n", k(1), k(2))).unwrap();
        let ring = load_keyring(&p).unwrap();
        assert_eq!((ring.ids(), ring.primary()), (vec![1, 2], 2));
        std::fs::write(&p, format!("7 {}\n", k(7))).unwrap();
        assert_eq!(load_keyring(&p).unwrap().primary(), 7);
        for (text, needle) in [
            (format!("1 {}\n2 {}\n", k(1), k(2)), "mark one key"),
            (
                format!("1 {} primary\n2 {} primary\n", k(1), k(2)),
                "more than one",
            ),
            (format!("300 {}\n", k(1)), "line 1"),
            ("1 abcd\n".to_string(), "64 hex"),
            (format!("1 {} primary\n1 {}\n", k(1), k(2)), "twice"),
            (format!("1 {} extra\n", k(1)), "unexpected"),
            ("# nothing\n".to_string(), "no key"),
        ] {
            std::fs::write(&p, &text).unwrap();
            let e = load_keyring(&p).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
        // An identity file is created once, owner-only, and read back as the same key.
        let idp = dir.join("id");
        let _ = std::fs::remove_file(&idp);
        let a = load_or_create_identity(&idp).unwrap();
        let b = load_or_create_identity(&idp).unwrap();
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&idp).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&idp, "not hex").unwrap();
        assert!(load_or_create_identity(&idp).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
