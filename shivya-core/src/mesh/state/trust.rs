//! Signed meshes: what a record, a death certificate or a LEAVE must prove before this
//! node merges or acts on it, and the certificates this node issues. Unsigned meshes
//! (no `NodeConfig::identity`) accept every well-formed record, sealed or not.

use super::NodeState;
use crate::mesh::records::{death_certificate, DEAD};
use crate::p2p::identity::{certificate_message, leave_message, record_message};
use crate::p2p::protocol::{entries_hash, RecordWire, Seal};
use crate::p2p::{NodeId, PublicKey};

/// Why a signed mesh refuses something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    Unsigned,
    BadSignature,
    NotAdmitted,
}

impl NodeState {
    /// Whether this mesh is signed.
    pub(super) fn signed(&self) -> bool {
        self.config.identity.is_some()
    }

    fn admits(&self, key: &PublicKey) -> bool {
        match &self.admitted {
            None => true,
            Some(ids) => ids.contains(&key.node_id()),
        }
    }

    /// Whether a frame from `sender` may be looked at (an allowlist admits its id).
    pub(super) fn admits_sender(&self, sender: &NodeId) -> bool {
        self.admitted
            .as_ref()
            .is_none_or(|ids| ids.contains(sender))
    }

    /// Counts a refusal under its reason.
    pub(super) fn count_refusal(&mut self, why: Refusal) {
        let d = &mut self.counters.dropped;
        match why {
            Refusal::Unsigned => d.unsigned += 1,
            Refusal::BadSignature => d.bad_signature += 1,
            Refusal::NotAdmitted => d.not_admitted += 1,
        }
    }

    /// What `r` must prove in a signed mesh: a live record, its origin's signature by the
    /// key that certifies the origin id; a death certificate, the origin's signature of
    /// the live version it names and an admitted issuer's signature of the certificate.
    /// Every key must be admitted. Always `Ok` in an unsigned mesh.
    pub(super) fn check_record(&self, r: &RecordWire) -> Result<(), Refusal> {
        if !self.signed() {
            return Ok(());
        }
        let origin_key = |key: &PublicKey| -> Result<(), Refusal> {
            if key.node_id() != r.origin {
                Err(Refusal::BadSignature)
            } else if !self.admits(key) {
                Err(Refusal::NotAdmitted)
            } else {
                Ok(())
            }
        };
        match r.seal.as_deref() {
            None => Err(Refusal::Unsigned),
            Some(Seal::Signed { key, sig }) => {
                origin_key(key)?;
                let message = record_message(&r.origin, r.version, &entries_hash(r));
                if key.verify(&message, sig) {
                    Ok(())
                } else {
                    Err(Refusal::BadSignature)
                }
            }
            Some(Seal::Certified {
                key,
                sig,
                entries_hash,
                issuer,
                issuer_sig,
            }) => {
                origin_key(key)?;
                if !self.admits(issuer) {
                    return Err(Refusal::NotAdmitted);
                }
                let named = record_message(&r.origin, r.version & !DEAD, entries_hash);
                let cert = certificate_message(&r.origin, r.version);
                if key.verify(&named, sig) && issuer.verify(&cert, issuer_sig) {
                    Ok(())
                } else {
                    Err(Refusal::BadSignature)
                }
            }
        }
    }

    /// Checks a LEAVE from `sender`: in a signed mesh it must be signed by the sender's
    /// admitted key and name a version no older than the record held for the sender (an
    /// old LEAVE replayed after the node came back is refused as `bad_leave`).
    pub(super) fn check_leave(
        &self,
        sender: &NodeId,
        signed: Option<(u64, &PublicKey, &[u8; 64])>,
    ) -> Result<(), Option<Refusal>> {
        if !self.signed() {
            return Ok(());
        }
        let Some((version, key, sig)) = signed else {
            return Err(Some(Refusal::Unsigned));
        };
        if key.node_id() != *sender || !key.verify(&leave_message(sender, version), sig) {
            return Err(Some(Refusal::BadSignature));
        }
        if !self.admits(key) {
            return Err(Some(Refusal::NotAdmitted));
        }
        let held = self.records.version(sender);
        if version & DEAD != 0 || version < held & !DEAD {
            return Err(None);
        }
        Ok(())
    }

    /// The death certificate this node issues for `held`: unsigned in an unsigned mesh;
    /// in a signed one it carries the origin's proof of the version and our signature
    /// (`None` when `held` carries no origin signature to prove it with).
    pub(super) fn issue_certificate(&self, held: &RecordWire) -> Option<RecordWire> {
        let mut cert = death_certificate(held)?;
        let Some(identity) = &self.config.identity else {
            return Some(cert);
        };
        let Some(Seal::Signed { key, sig }) = held.seal.as_deref() else {
            return None;
        };
        cert.seal = Some(Box::new(Seal::Certified {
            key: *key,
            sig: *sig,
            entries_hash: entries_hash(held),
            issuer: identity.public_key(),
            issuer_sig: identity.sign(&certificate_message(&cert.origin, cert.version)),
        }));
        Some(cert)
    }

    /// The LEAVE this node sends: signed in a signed mesh, naming our last version.
    pub(super) fn leave_body(&self) -> crate::p2p::Body {
        match &self.config.identity {
            None => crate::p2p::Body::Leave,
            Some(identity) => {
                let version = self.own.version();
                crate::p2p::Body::SignedLeave {
                    version,
                    key: identity.public_key(),
                    sig: identity.sign(&leave_message(&self.id, version)),
                }
            }
        }
    }
}
