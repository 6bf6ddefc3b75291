//! Master keys: wrapping the data key, and finding identities to unwrap it.
//!
//! Design note: a master-key entry is kept as its generic metadata fields
//! ([`KeyEntry`]), so entries of types sealgate does not speak yet (pgp,
//! kms, gcp_kms, azure_kv, hc_vault, hckms) survive every rewrite untouched.
//! Each type we do speak is a [`MasterKeyBackend`]; age is the first, Vault
//! Transit and AWS KMS plug in later through the same trait without the
//! engine changing. A [`Keyring`] is the set of backends available to one
//! command.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::error::SopsError;
use super::tree::{Item, Value};
use crate::secret::{ExposeSecret, SecretBytes, SecretString};

/// Metadata list names of every master-key type sops knows, in sops' default
/// decryption order (age first).
pub const KEY_KINDS: [&str; 7] = [
    "age", "pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "hckms",
];

/// One master-key entry as stored in the metadata (`{recipient, enc}` for
/// age). The fields are public data: recipients and wrapped keys.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyEntry {
    /// Metadata list name: `age`, `pgp`, ...
    pub kind: String,
    /// The entry's fields, in file order.
    pub fields: Vec<Item>,
}

impl KeyEntry {
    /// A string field of the entry.
    pub fn field(&self, name: &str) -> Option<String> {
        super::tree::get(&self.fields, name).and_then(scalar_text)
    }

    /// The public identifier for messages (recipient, fingerprint, ARN...).
    pub fn describe(&self) -> String {
        let id = [
            "recipient",
            "fp",
            "arn",
            "resource_id",
            "key_name",
            "key_id",
            "name",
        ]
        .iter()
        .find_map(|f| self.field(f))
        .unwrap_or_else(|| "?".into());
        format!("{}:{id}", self.kind)
    }
}

/// Text of a scalar metadata value (metadata is public, so exposing is fine).
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) | Value::Time(s) => Some(s.expose_secret().to_owned()),
        Value::Int(i) => Some(i.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Float(f) => Some(super::tree::format_float_plain(*f)),
        _ => None,
    }
}

/// A recipient to encrypt for: a key type and its public identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// Metadata list name (`age`).
    pub kind: String,
    /// The public identifier (`age1...`).
    pub id: String,
}

impl Recipient {
    /// An age recipient.
    pub fn age(id: impl Into<String>) -> Self {
        Recipient {
            kind: "age".into(),
            id: id.into(),
        }
    }
}

/// A master-key type that can wrap and unwrap data keys (or Shamir shares).
pub trait MasterKeyBackend: Send + Sync {
    /// The metadata list name this backend handles.
    fn kind(&self) -> &'static str;
    /// Wraps `secret` for `recipient`, producing the metadata entry.
    fn wrap(&self, recipient: &str, secret: &SecretBytes) -> Result<KeyEntry, SopsError>;
    /// Tries to unwrap an entry of this backend's kind. `Ok(None)` means no
    /// identity we hold fits (not an error: another entry may).
    fn unwrap(&self, entry: &KeyEntry) -> Result<Option<SecretBytes>, SopsError>;
}

/// The backends available to one operation.
#[derive(Default)]
pub struct Keyring {
    backends: Vec<Box<dyn MasterKeyBackend>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<_> = self.backends.iter().map(|b| b.kind()).collect();
        f.debug_struct("Keyring").field("backends", &kinds).finish()
    }
}

impl Keyring {
    /// An empty keyring (can still encrypt for age recipients).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a backend; a later backend of the same kind is tried after.
    pub fn with(mut self, backend: Box<dyn MasterKeyBackend>) -> Self {
        self.backends.push(backend);
        self
    }

    /// A keyring with age identities (possibly none: encryption only).
    pub fn age(identities: AgeIdentities) -> Self {
        Self::new().with(Box::new(AgeBackend { identities }))
    }

    fn backend(&self, kind: &str) -> Option<&dyn MasterKeyBackend> {
        self.backends
            .iter()
            .find(|b| b.kind() == kind)
            .map(|b| b.as_ref())
    }

    /// Wraps `secret` for a recipient.
    pub fn wrap(&self, r: &Recipient, secret: &SecretBytes) -> Result<KeyEntry, SopsError> {
        match self.backend(&r.kind) {
            Some(b) => b.wrap(&r.id, secret),
            None if r.kind == "age" => AgeBackend::default().wrap(&r.id, secret),
            None => Err(SopsError::UnsupportedKeyType {
                kind: r.kind.clone(),
                hint: "use age recipients, or sops itself for this key type".into(),
            }),
        }
    }

    /// Tries every entry of a group (age first, then list order) and
    /// returns the first unwrapped secret.
    pub fn unwrap_group(&self, group: &[KeyEntry]) -> Result<Option<SecretBytes>, SopsError> {
        let mut entries: Vec<&KeyEntry> = group.iter().collect();
        entries.sort_by_key(|e| KEY_KINDS.iter().position(|k| *k == e.kind).unwrap_or(99));
        for e in entries {
            let Some(b) = self.backend(&e.kind) else {
                continue;
            };
            match b.unwrap(e) {
                Ok(Some(s)) => return Ok(Some(s)),
                Ok(None) => {}
                Err(err) => {
                    tracing::debug!(key = %e.describe(), error = %err, "master key did not open")
                }
            }
        }
        Ok(None)
    }
}

/// age X25519 identities (private keys), held as parsed keys; their text
/// form was read from secret-wrapped buffers.
#[derive(Default)]
pub struct AgeIdentities {
    ids: Vec<age::x25519::Identity>,
    sources: Vec<String>,
}

impl std::fmt::Debug for AgeIdentities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AgeIdentities({} keys from {:?})",
            self.ids.len(),
            self.sources
        )
    }
}

impl AgeIdentities {
    /// Number of identities loaded.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether none were found.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Where identities were loaded from (names/paths only), for messages.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// Parses identity text: one or more `AGE-SECRET-KEY-1...` per line
    /// (whitespace separated, as sops 3.13), `#` lines ignored. Other
    /// identity kinds (plugins, post-quantum) are skipped with a warning.
    pub fn add_text(&mut self, text: &SecretString, source: &str) -> Result<usize, SopsError> {
        let mut n = 0;
        for line in text.expose_secret().lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            for tok in line.split_whitespace() {
                if tok.starts_with("AGE-SECRET-KEY-1") {
                    let id = age::x25519::Identity::from_str(tok).map_err(|_| {
                        SopsError::BadIdentity {
                            source_name: source.into(),
                            reason: "an AGE-SECRET-KEY-1 line is not a valid X25519 identity"
                                .into(),
                        }
                    })?;
                    self.ids.push(id);
                    n += 1;
                } else if tok.starts_with("AGE-") {
                    tracing::warn!(
                        source,
                        "skipping an age identity type sealgate does not support (plugin or post-quantum)"
                    );
                } else if tok.starts_with("age-encryption.org") || tok.starts_with("-----BEGIN") {
                    return Err(SopsError::BadIdentity {
                        source_name: source.into(),
                        reason: "passphrase-protected identity files are not supported yet".into(),
                    });
                } else {
                    return Err(SopsError::BadIdentity {
                        source_name: source.into(),
                        reason: "a line is neither a comment nor an AGE-SECRET-KEY-1 identity"
                            .into(),
                    });
                }
            }
        }
        self.sources.push(source.into());
        Ok(n)
    }

    /// Reads an identity file.
    pub fn add_file(&mut self, path: &Path) -> Result<usize, SopsError> {
        let mut buf = String::new();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_string(&mut buf))
            .map_err(|e| SopsError::BadIdentity {
                source_name: path.display().to_string(),
                reason: format!("cannot read: {e}"),
            })?;
        self.add_text(&SecretString::new(buf), &path.display().to_string())
    }

    /// The sops discovery order: `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`, then
    /// the default `keys.txt` if present, then explicit `--identity` files.
    pub fn discover(explicit: &[PathBuf]) -> Result<Self, SopsError> {
        let mut ids = AgeIdentities::default();
        if let Ok(v) = std::env::var("SOPS_AGE_KEY") {
            ids.add_text(&SecretString::new(v), "SOPS_AGE_KEY")?;
        }
        if let Some(p) = std::env::var_os("SOPS_AGE_KEY_FILE") {
            ids.add_file(Path::new(&p))?;
        }
        if let Some(p) = default_keys_file().filter(|p| p.is_file()) {
            ids.add_file(&p)?;
        }
        for p in explicit {
            ids.add_file(p)?;
        }
        Ok(ids)
    }
}

/// `<user config dir>/sops/age/keys.txt` as sops computes it.
pub fn default_keys_file() -> Option<PathBuf> {
    let base = if cfg!(target_os = "windows") {
        std::env::var_os("APPDATA").map(PathBuf::from)
    } else if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        Some(PathBuf::from(x))
    } else if cfg!(target_os = "macos") {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join("Library/Application Support"))
    } else {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config"))
    };
    base.map(|b| b.join("sops").join("age").join("keys.txt"))
}

/// The age backend: wraps with the `age` crate (one armored age file per
/// recipient, as sops does) and unwraps with the identities it holds.
#[derive(Default)]
pub struct AgeBackend {
    /// Identities for unwrapping.
    pub identities: AgeIdentities,
}

impl MasterKeyBackend for AgeBackend {
    fn kind(&self) -> &'static str {
        "age"
    }

    fn wrap(&self, recipient: &str, secret: &SecretBytes) -> Result<KeyEntry, SopsError> {
        let r = age::x25519::Recipient::from_str(recipient.trim()).map_err(|e| {
            SopsError::BadRecipient {
                kind: "age".into(),
                recipient: recipient.into(),
                reason: e.to_string(),
            }
        })?;
        let enc =
            age::encrypt_and_armor(&r, secret.expose_secret()).map_err(|e| SopsError::Wrap {
                kind: "age".into(),
                recipient: recipient.into(),
                reason: e.to_string(),
            })?;
        let enc = if enc.ends_with('\n') { enc } else { enc + "\n" };
        Ok(KeyEntry {
            kind: "age".into(),
            fields: vec![
                Item::Pair("recipient".into(), Value::str(recipient.trim())),
                Item::Pair("enc".into(), Value::str(enc)),
            ],
        })
    }

    fn unwrap(&self, entry: &KeyEntry) -> Result<Option<SecretBytes>, SopsError> {
        if self.identities.is_empty() {
            return Ok(None);
        }
        let Some(enc) = entry.field("enc") else {
            return Err(SopsError::meta("sops.age.enc", "missing"));
        };
        let decryptor =
            match age::Decryptor::new_buffered(age::armor::ArmoredReader::new(enc.as_bytes())) {
                Ok(d) => d,
                Err(e) => {
                    return Err(SopsError::meta(
                        "sops.age.enc",
                        format!("not an age file: {e}"),
                    ));
                }
            };
        let ids = self.identities.ids.iter().map(|i| i as &dyn age::Identity);
        match decryptor.decrypt(ids) {
            Ok(mut reader) => {
                let mut out = zeroize::Zeroizing::new(Vec::new());
                reader.read_to_end(&mut out).map_err(|e| {
                    SopsError::meta("sops.age.enc", format!("corrupt age payload: {e}"))
                })?;
                Ok(Some(SecretBytes::new(std::mem::take(&mut *out))))
            }
            Err(age::DecryptError::NoMatchingKeys) => Ok(None),
            Err(e) => Err(SopsError::meta("sops.age.enc", e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_then_unwrap_with_generated_identity() {
        let id = age::x25519::Identity::generate();
        let recipient = id.to_public().to_string();
        let mut ids = AgeIdentities::default();
        ids.add_text(
            &SecretString::new(
                age::secrecy::ExposeSecret::expose_secret(&id.to_string()).to_string(),
            ),
            "test",
        )
        .unwrap();
        let ring = Keyring::age(ids);
        let key = SecretBytes::new(vec![7; 32]);
        let entry = ring.wrap(&Recipient::age(&recipient), &key).unwrap();
        let enc = entry.field("enc").unwrap();
        assert!(enc.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"));
        assert!(enc.ends_with("-----END AGE ENCRYPTED FILE-----\n"));
        assert_eq!(
            ring.unwrap_group(std::slice::from_ref(&entry)).unwrap(),
            Some(key)
        );
        // Without identities nothing opens, and that is not an error.
        assert_eq!(
            Keyring::age(AgeIdentities::default())
                .unwrap_group(&[entry])
                .unwrap(),
            None
        );
    }

    #[test]
    fn bad_identity_text_does_not_echo_it() {
        let mut ids = AgeIdentities::default();
        let e = ids
            .add_text(
                &SecretString::from("AGE-SECRET-KEY-1-NOTVALIDSECRETMATERIAL"),
                "SOPS_AGE_KEY",
            )
            .unwrap_err();
        assert!(!e.to_string().contains("NOTVALIDSECRET"), "{e}");
    }
}
