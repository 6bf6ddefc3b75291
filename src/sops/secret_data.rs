//! From a sops file to the key → bytes map a Kubernetes Secret carries.
//!
//! Design note: the controller (`SopsSecret`) and the reconcile loop both
//! turn sops sources into Secret data. The shape of a Secret manifest
//! (`metadata`, `type`, `data` in base64, `stringData` in clear) is plain
//! data, not a Kubernetes client concern, so it lives here beside the
//! engine and both callers share it. Every decrypted byte goes straight
//! into a [`SecretBytes`]; errors name keys and paths, never values.

use std::collections::BTreeMap;

use base64::Engine as _;

use super::api::decrypt_tree;
use super::error::SopsError;
use super::formats::{self, Format};
use super::keys::Keyring;
use super::tree::{Item, Value};
use crate::secret::{ExposeSecret, SecretBytes};

/// Why a decrypted source cannot become Secret data. Separate from
/// [`SopsError`] (which is about the sops file itself) so callers can report
/// "decrypted fine, but it is not a Secret" with its own reason.
#[derive(Debug, thiserror::Error)]
pub enum SecretDataError {
    /// Decryption failed (no key, MAC, tampering, parse error).
    #[error(transparent)]
    Sops(#[from] SopsError),
    /// The decrypted manifest is not a v1 Secret.
    #[error("not a Kubernetes Secret manifest: {0}")]
    NotASecret(String),
    /// A `data` entry is not valid base64.
    #[error("data.{key} is not valid base64")]
    BadBase64 {
        /// The Secret key.
        key: String,
    },
    /// A value is a map or list where a Secret needs a scalar.
    #[error(
        "{path} is a {kind}; Secret values must be scalars (set file.key to keep the whole file)"
    )]
    NotScalar {
        /// The key path.
        path: String,
        /// `map` or `list`.
        kind: &'static str,
    },
    /// A key is not a valid Secret key (`[-._a-zA-Z0-9]+`).
    #[error("{key:?} is not a valid Secret key (allowed: letters, digits, '-', '_', '.')")]
    BadKey {
        /// The key.
        key: String,
    },
    /// The same key appears in both `data` and `stringData`, or twice.
    #[error("key {key:?} appears more than once")]
    DuplicateKey {
        /// The key.
        key: String,
    },
}

/// Secret data decrypted from a sops-encrypted Secret manifest, plus the
/// manifest's public parts.
#[derive(Debug, Default)]
pub struct SecretManifest {
    /// `metadata.name`, if present.
    pub name: Option<String>,
    /// `metadata.namespace`, if present.
    pub namespace: Option<String>,
    /// `type`, if present.
    pub type_: Option<String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `data` (decoded) and `stringData` merged, as Kubernetes does.
    pub data: BTreeMap<String, SecretBytes>,
    /// sops `lastmodified` of the source.
    pub last_modified: String,
}

/// Whether `key` is a valid Secret data key (as the apiserver checks it).
pub fn valid_secret_key(key: &str) -> bool {
    !key.is_empty()
        && key != "."
        && key != ".."
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Decrypts a sops-encrypted Secret manifest (YAML or JSON; one document).
pub fn decrypt_secret_manifest(
    input: &[u8],
    format: Format,
    keyring: &Keyring,
) -> Result<SecretManifest, SecretDataError> {
    let decrypted = decrypt_tree(input, format, keyring, false)?;
    let modified = decrypted.metadata.lastmodified.clone();
    let [doc] = decrypted.branches.as_slice() else {
        return Err(SecretDataError::NotASecret(format!(
            "expected one document, found {}",
            decrypted.branches.len()
        )));
    };
    let mut out = SecretManifest {
        last_modified: modified,
        ..SecretManifest::default()
    };
    let kind = public_str(doc, "kind");
    let api_version = public_str(doc, "apiVersion");
    if kind.as_deref() != Some("Secret") || api_version.as_deref() != Some("v1") {
        return Err(SecretDataError::NotASecret(format!(
            "apiVersion/kind is {}/{}, expected v1/Secret",
            api_version.as_deref().unwrap_or("(none)"),
            kind.as_deref().unwrap_or("(none)")
        )));
    }
    out.type_ = public_str(doc, "type");
    if let Some(Value::Map(meta)) = get(doc, "metadata") {
        out.name = public_str(meta, "name");
        out.namespace = public_str(meta, "namespace");
        out.labels = public_map(meta, "labels");
        out.annotations = public_map(meta, "annotations");
    }
    if let Some(v) = get(doc, "data") {
        let Value::Map(items) = v else {
            return Err(SecretDataError::NotASecret("data is not a map".into()));
        };
        for (key, value) in pairs(items) {
            let text = scalar_bytes(value, &format!("data.{key}"))?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(text.expose_secret())
                .map_err(|_| SecretDataError::BadBase64 { key: key.clone() })?;
            insert(&mut out.data, key, SecretBytes::new(decoded))?;
        }
    }
    if let Some(v) = get(doc, "stringData") {
        let Value::Map(items) = v else {
            return Err(SecretDataError::NotASecret(
                "stringData is not a map".into(),
            ));
        };
        for (key, value) in pairs(items) {
            let bytes = scalar_bytes(value, &format!("stringData.{key}"))?;
            // Kubernetes lets stringData win over data for the same key.
            if !valid_secret_key(key) {
                return Err(SecretDataError::BadKey { key: key.clone() });
            }
            out.data.insert(key.clone(), bytes);
        }
    }
    Ok(out)
}

/// Decrypts a whole sops file into Secret data: each top-level scalar
/// becomes a key, or with `whole_file_key` the whole plaintext file (in its
/// own format) goes under that one key.
pub fn decrypt_file_to_data(
    input: &[u8],
    format: Format,
    keyring: &Keyring,
    whole_file_key: Option<&str>,
) -> Result<(BTreeMap<String, SecretBytes>, String), SecretDataError> {
    let decrypted = decrypt_tree(input, format, keyring, false)?;
    let modified = decrypted.metadata.lastmodified.clone();
    let mut data = BTreeMap::new();
    if let Some(key) = whole_file_key {
        if !valid_secret_key(key) {
            return Err(SecretDataError::BadKey { key: key.into() });
        }
        let plain = formats::emit_plain(format, &decrypted.branches)?;
        data.insert(key.to_owned(), SecretBytes::new(plain));
        return Ok((data, modified));
    }
    if format == Format::Binary {
        // A binary file has no keys to flatten.
        return Err(SecretDataError::NotScalar {
            path: "(binary file)".into(),
            kind: "blob",
        });
    }
    for branch in &decrypted.branches {
        for (key, value) in pairs(branch) {
            if matches!(value, Value::Null) {
                continue;
            }
            let bytes = scalar_bytes(value, key)?;
            insert(&mut data, key, bytes)?;
        }
    }
    Ok((data, modified))
}

fn insert(
    data: &mut BTreeMap<String, SecretBytes>,
    key: &str,
    value: SecretBytes,
) -> Result<(), SecretDataError> {
    if !valid_secret_key(key) {
        return Err(SecretDataError::BadKey { key: key.into() });
    }
    if data.insert(key.to_owned(), value).is_some() {
        return Err(SecretDataError::DuplicateKey { key: key.into() });
    }
    Ok(())
}

fn pairs(items: &[Item]) -> impl Iterator<Item = (&String, &Value)> {
    items.iter().filter_map(|i| match i {
        Item::Pair(k, v) => Some((k, v)),
        Item::Comment(_) => None,
    })
}

fn get<'a>(items: &'a [Item], key: &str) -> Option<&'a Value> {
    pairs(items).find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// A metadata string. These fields are left unencrypted by the usual
/// `encrypted_regex: ^(data|stringData)$`, and even when encrypted they are
/// names, not secrets.
fn public_str(items: &[Item], key: &str) -> Option<String> {
    match get(items, key)? {
        Value::Str(s) => Some(s.expose_secret().to_owned()),
        _ => None,
    }
}

fn public_map(items: &[Item], key: &str) -> BTreeMap<String, String> {
    match get(items, key) {
        Some(Value::Map(m)) => pairs(m)
            .filter_map(|(k, v)| match v {
                Value::Str(s) => Some((k.clone(), s.expose_secret().to_owned())),
                _ => None,
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// The bytes of a scalar as Kubernetes would store its text form.
fn scalar_bytes(value: &Value, path: &str) -> Result<SecretBytes, SecretDataError> {
    Ok(match value {
        Value::Str(s) | Value::Time(s) => SecretBytes::new(s.expose_secret().as_bytes().to_vec()),
        Value::Bytes(b) => SecretBytes::new(b.expose_secret().to_vec()),
        Value::Int(i) => SecretBytes::new(i.to_string().into_bytes()),
        Value::Float(f) => SecretBytes::new(f.to_string().into_bytes()),
        Value::Bool(b) => SecretBytes::new(b.to_string().into_bytes()),
        Value::Null => SecretBytes::new(Vec::new()),
        Value::Map(_) => {
            return Err(SecretDataError::NotScalar {
                path: path.into(),
                kind: "map",
            });
        }
        Value::List(_) | Value::Comment(_) => {
            return Err(SecretDataError::NotScalar {
                path: path.into(),
                kind: "list",
            });
        }
    })
}

/// Guesses a sops file's format from its content: JSON starts with `{`,
/// dotenv/INI are recognised by their `sops_` / `[sops]` metadata lines,
/// anything else is YAML.
pub fn sniff_format(input: &[u8]) -> Format {
    let text = String::from_utf8_lossy(input);
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        // Binary files are a JSON envelope whose only data key is `data`;
        // they are read as JSON here, which is what sops does too.
        Format::Json
    } else if text.lines().any(|l| l.trim() == "[sops]") {
        Format::Ini
    } else if text.lines().any(|l| l.starts_with("sops_version=")) {
        Format::Dotenv
    } else {
        Format::Yaml
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_follow_the_apiserver_rule() {
        assert!(valid_secret_key("tls.crt"));
        assert!(valid_secret_key("DB_PASSWORD"));
        assert!(!valid_secret_key(""));
        assert!(!valid_secret_key(".."));
        assert!(!valid_secret_key("a/b"));
        assert!(!valid_secret_key("a b"));
    }

    #[test]
    fn sniffing_formats() {
        assert_eq!(sniff_format(b"  {\"a\": 1}"), Format::Json);
        assert_eq!(sniff_format(b"A=1\nsops_version=3.13.2\n"), Format::Dotenv);
        assert_eq!(sniff_format(b"[x]\na=1\n[sops]\nversion=3\n"), Format::Ini);
        assert_eq!(sniff_format(b"a: b\nsops:\n  version: 3\n"), Format::Yaml);
    }

    #[test]
    fn errors_name_keys_not_values() {
        let e = SecretDataError::BadBase64 { key: "pw".into() };
        assert_eq!(e.to_string(), "data.pw is not valid base64");
    }
}
