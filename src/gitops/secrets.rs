//! Decrypting sops Secrets of a revision in memory, and scrubbing the
//! decrypted bytes from every outbound message.
//!
//! Design note: the loop holds the plaintext, so it can redact exactly
//! instead of guessing with patterns. Every decrypted value (and its base64
//! form, which is what the apiserver echoes back in validation errors) is
//! registered with the [`Redactor`] before any API call, and every message
//! bound for status, events, logs or the audit record passes through
//! [`Redactor::scrub`]. Values live in `SecretBytes` (zeroized on drop);
//! the only other copy is the serialized apply body, which cannot be
//! avoided.

use std::collections::BTreeMap;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value as Json, json};
use sha2::Sha256;

use super::render::Rendered;
use super::source::SourceFile;
use crate::secret::{ExposeSecret, SecretBytes};
use crate::sops::secret_data::{self, SecretDataError};
use crate::sops::{AgeIdentities, Keyring};

/// Exact-value scrubber for outbound strings.
#[derive(Default)]
pub struct Redactor {
    needles: Vec<SecretBytes>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} values)", self.needles.len())
    }
}

/// Values shorter than this are not scrubbed: replacing every `1` or `on`
/// in a message would make it unreadable without protecting anything.
const MIN_REDACT_LEN: usize = 4;

impl Redactor {
    /// Registers a decrypted value (and its base64 encoding).
    pub fn register(&mut self, value: &[u8]) {
        if value.len() < MIN_REDACT_LEN {
            return;
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(value);
        self.needles.push(SecretBytes::new(value.to_vec()));
        self.needles.push(SecretBytes::new(b64.into_bytes()));
        // Longest first, so a value containing another is removed whole.
        self.needles
            .sort_by_key(|n| std::cmp::Reverse(n.expose_secret().len()));
    }

    /// `text` with every registered value replaced by `[REDACTED]`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for n in &self.needles {
            if let Ok(s) = std::str::from_utf8(n.expose_secret())
                && out.contains(s)
            {
                out = out.replace(s, "[REDACTED]");
            }
        }
        out
    }
}

/// Why a sops Secret of the revision could not be decrypted. Names files
/// and keys, never values or key material.
#[derive(Debug, thiserror::Error)]
pub enum DecryptError {
    /// The revision has sops Secrets but no key Secret is configured.
    #[error("{location}: sops-encrypted Secret but spec.decryption.ageKeySecretRef is not set")]
    NoKeys {
        /// file:line.
        location: String,
    },
    /// The key Secret is missing or holds no age identity.
    #[error("decryption key Secret {namespace}/{name}: {reason}")]
    KeySecret {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Decryption or Secret shaping failed.
    #[error("{location}: {source}")]
    Decrypt {
        /// file:line.
        location: String,
        /// Cause.
        source: SecretDataError,
    },
    /// A Secret marked `decrypt: disabled` would reach the cluster as
    /// ciphertext nothing decrypts.
    #[error(
        "{location}: Secret {name} is annotated sealgate.dev/decrypt: disabled, but nothing in \
         the cluster decrypts a Secret: remove the annotation (sealgate decrypts it) or commit \
         the custom resource of the controller that does"
    )]
    SecretLeftEncrypted {
        /// file:line.
        location: String,
        /// Secret name.
        name: String,
    },
    /// Only v1 Secrets may be sops-encrypted in a revision.
    #[error(
        "{location}: sops-encrypted {kind}; sealgate decrypts only v1 Secrets (annotate \
         sealgate.dev/decrypt: disabled if a controller in the cluster decrypts it)"
    )]
    NotASecret {
        /// file:line.
        location: String,
        /// Kind found.
        kind: String,
    },
}

/// Builds a keyring from a key Secret's `*.agekey` entries (Flux's format).
pub fn keyring_from_secret_data(
    namespace: &str,
    name: &str,
    data: BTreeMap<String, k8s_openapi::ByteString>,
) -> Result<Keyring, DecryptError> {
    let err = |reason: String| DecryptError::KeySecret {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        reason,
    };
    let mut identities = AgeIdentities::default();
    for (key, value) in data {
        if !key.ends_with(".agekey") {
            continue;
        }
        let text = SecretBytes::new(value.0)
            .into_string()
            .map_err(|_| err(format!("{key} is not UTF-8")))?;
        identities
            .add_text(&text, &format!("{namespace}/{name}:{key}"))
            .map_err(|e| err(e.to_string()))?;
    }
    if identities.is_empty() {
        return Err(err("it has no *.agekey entry with an age identity".into()));
    }
    Ok(Keyring::age(identities))
}

/// Per-object opt-out of decryption (the design's `decrypt: disabled`): a
/// sops-encrypted custom resource that another controller decrypts in the
/// cluster (e.g. a sops-secrets-operator `SopsSecret`) is applied as it is
/// in Git, `sops` metadata included. Read from the object's annotations,
/// which sops leaves in clear unless told to encrypt them.
pub const DECRYPT_ANNOTATION: &str = "sealgate.dev/decrypt";

/// Whether `o` is sops-encrypted and marked to pass through encrypted.
pub fn passes_through(o: &Rendered) -> bool {
    o.sops
        && o.object
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(DECRYPT_ANNOTATION))
            .and_then(Json::as_str)
            == Some("disabled")
}

/// Replaces every sops-encrypted Secret in `objects` by the plain Secret it
/// decrypts to (`data` in base64), registering every value with `redactor`.
/// Objects marked `decrypt: disabled` pass through encrypted — except
/// Secrets, which nothing else would decrypt. Returns how many were
/// decrypted.
pub fn decrypt_all(
    objects: &mut [Rendered],
    files: &[SourceFile],
    keyring: Option<&Keyring>,
    redactor: &mut Redactor,
) -> Result<usize, DecryptError> {
    let mut count = 0;
    for o in objects.iter_mut().filter(|o| o.sops) {
        let location = o.location();
        let is_secret = o.kind() == "Secret" && o.api_version() == "v1";
        if passes_through(o) {
            if is_secret {
                return Err(DecryptError::SecretLeftEncrypted {
                    location,
                    name: o.name().to_owned(),
                });
            }
            tracing::debug!(%location, kind = o.kind(), "sops-encrypted object passes through (decrypt: disabled)");
            o.sops = false;
            continue;
        }
        if !is_secret {
            return Err(DecryptError::NotASecret {
                location,
                kind: o.kind().to_owned(),
            });
        }
        let Some(keyring) = keyring else {
            return Err(DecryptError::NoKeys { location });
        };
        let bytes = &files[o.file_index].data;
        let m =
            secret_data::decrypt_secret_manifest(bytes, secret_data::sniff_format(bytes), keyring)
                .map_err(|source| DecryptError::Decrypt {
                    location: location.clone(),
                    source,
                })?;
        let mut data = serde_json::Map::new();
        for (k, v) in &m.data {
            redactor.register(v.expose_secret());
            data.insert(
                k.clone(),
                Json::String(base64::engine::general_purpose::STANDARD.encode(v.expose_secret())),
            );
        }
        let mut metadata = json!({"name": m.name.unwrap_or_else(|| o.name().to_owned())});
        if let Some(ns) = m.namespace {
            metadata["namespace"] = Json::String(ns);
        }
        if !m.labels.is_empty() {
            metadata["labels"] = json!(m.labels);
        }
        if !m.annotations.is_empty() {
            metadata["annotations"] = json!(m.annotations);
        }
        o.object = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata,
            "type": m.type_.unwrap_or_else(|| "Opaque".into()),
            "data": data,
        });
        o.sops = false;
        count += 1;
    }
    Ok(count)
}

/// How one Secret key differs between desired and live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyChange {
    /// Only in the desired object.
    Added,
    /// Only live.
    Removed,
    /// In both, different value.
    Changed,
    /// Same value.
    Unchanged,
}

type HmacSha256 = Hmac<Sha256>;

/// Per-key comparison of two Secrets' `data` (base64 strings) through a
/// keyed hash with a per-process random key: the result says which keys
/// changed without any value, hash of a value, or length leaving memory.
pub fn secret_key_diff(desired: &Json, live: Option<&Json>) -> BTreeMap<String, KeyChange> {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(|| {
        let mut k = [0u8; 32];
        // A fixed key only weakens the hash against an attacker who already
        // holds both values; failing RNG is not worth a panic here.
        let _ = getrandom::fill(&mut k);
        k
    });
    let digest = |v: &Json| {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
        mac.update(v.as_str().unwrap_or("").as_bytes());
        mac.finalize().into_bytes()
    };
    let empty = serde_json::Map::new();
    let d = desired
        .get("data")
        .and_then(Json::as_object)
        .unwrap_or(&empty);
    let l = live
        .and_then(|l| l.get("data"))
        .and_then(Json::as_object)
        .unwrap_or(&empty);
    let mut out = BTreeMap::new();
    for (k, v) in d {
        let change = match l.get(k) {
            None => KeyChange::Added,
            Some(lv) if digest(lv) == digest(v) => KeyChange::Unchanged,
            Some(_) => KeyChange::Changed,
        };
        out.insert(k.clone(), change);
    }
    for k in l.keys().filter(|k| !d.contains_key(*k)) {
        out.insert(k.clone(), KeyChange::Removed);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redactor_scrubs_values_and_base64() {
        let mut r = Redactor::default();
        r.register(b"PLANTED-value-77");
        r.register(b"ab");
        let b64 = base64::engine::general_purpose::STANDARD.encode("PLANTED-value-77");
        let msg = format!("Invalid value: \"PLANTED-value-77\" and {b64}; ab stays");
        let s = r.scrub(&msg);
        assert!(!s.contains("PLANTED") && !s.contains(&b64), "{s}");
        assert!(s.contains("ab stays"));
        assert!(!format!("{r:?}").contains("PLANTED"));
    }

    #[test]
    fn key_diff_classifies_without_values() {
        let d = json!({"data": {"a": "MQ==", "b": "Mg==", "c": "Mw=="}});
        let l = json!({"data": {"a": "MQ==", "b": "OQ==", "z": "MA=="}});
        let diff = secret_key_diff(&d, Some(&l));
        assert_eq!(diff["a"], KeyChange::Unchanged);
        assert_eq!(diff["b"], KeyChange::Changed);
        assert_eq!(diff["c"], KeyChange::Added);
        assert_eq!(diff["z"], KeyChange::Removed);
    }
}
