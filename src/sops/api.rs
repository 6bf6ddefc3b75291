//! Public entry points: bytes + format + key sources in, bytes or a tree out.
//!
//! Design note: these are the only functions the CLI, the controller and
//! the reconcile loop need. Every one either returns complete output or an
//! error — never partial plaintext — because callers write the result
//! straight to stdout, a file or a Kubernetes Secret.

use super::engine::{self, EncryptOptions, IvCache};
use super::error::SopsError;
use super::formats::{self, Format};
use super::keys::{Keyring, Recipient};
use super::metadata::Metadata;
use super::tree::{Branch, Value};
use crate::secret::SecretBytes;

/// A decrypted file: plaintext tree, its metadata and the data key (kept
/// for re-encryption after an edit).
#[derive(Debug)]
pub struct Decrypted {
    /// Plaintext documents.
    pub branches: Vec<Branch>,
    /// The metadata the file carried.
    pub metadata: Metadata,
    /// The unwrapped data key.
    pub data_key: SecretBytes,
    /// IVs of the decrypted values, for [`reencrypt`] to keep unchanged
    /// values byte-identical.
    pub ivs: IvCache,
    /// Whether the MAC matched. Always true unless `ignore_mac` was given;
    /// when false the caller must tell the user loudly.
    pub mac_verified: bool,
}

/// Encrypts a plaintext file. `output` is the format written (binary input
/// always produces the JSON envelope).
pub fn encrypt(
    input: &[u8],
    format: Format,
    output: Format,
    opts: &EncryptOptions,
    keyring: &Keyring,
) -> Result<Vec<u8>, SopsError> {
    let mut branches = formats::parse_plain(format, input)?;
    if format != Format::Binary && is_blank(input, format) {
        // sops refuses these too ("Error unmarshalling file: EOF").
        return Err(SopsError::EmptyFile);
    }
    if formats::has_metadata(format, &branches) {
        return Err(SopsError::AlreadyEncrypted);
    }
    let mut opts = opts.clone();
    opts.binary = format == Format::Binary;
    let (md, _key) = engine::encrypt_new(&mut branches, &opts, keyring)?;
    let out = if format == Format::Binary {
        Format::Binary
    } else {
        output
    };
    formats::emit_encrypted(out, &branches, &md.to_value())
}

/// Whether a YAML input has nothing but whitespace, comments and document
/// markers (go-yaml sees no document there and sops refuses it; dotenv and
/// INI files of only comments are encrypted by sops, so they are here too).
fn is_blank(input: &[u8], format: Format) -> bool {
    let text = String::from_utf8_lossy(input);
    format == Format::Yaml
        && text
            .lines()
            .map(str::trim)
            .all(|l| l.is_empty() || l.starts_with('#') || l == "---" || l == "...")
}

/// Reads the encrypted tree and its metadata without decrypting.
pub fn load_encrypted(input: &[u8], format: Format) -> Result<(Vec<Branch>, Metadata), SopsError> {
    let (branches, meta) = formats::parse_encrypted(format, input)?;
    let meta = meta.ok_or(SopsError::MetadataNotFound)?;
    Ok((branches, Metadata::from_value(&meta)?))
}

/// Decrypts a file into a tree, verifying the MAC (unless `ignore_mac`).
pub fn decrypt_tree(
    input: &[u8],
    format: Format,
    keyring: &Keyring,
    ignore_mac: bool,
) -> Result<Decrypted, SopsError> {
    let (mut branches, metadata) = load_encrypted(input, format)?;
    let data_key = engine::unwrap_data_key(&metadata, keyring)?;
    let (ivs, mac_verified) =
        engine::decrypt_branches(&mut branches, &metadata, &data_key, ignore_mac)?;
    Ok(Decrypted {
        branches,
        metadata,
        data_key,
        ivs,
        mac_verified,
    })
}

/// Decrypts a file to plaintext bytes in `output` format.
pub fn decrypt(
    input: &[u8],
    format: Format,
    output: Format,
    keyring: &Keyring,
    ignore_mac: bool,
) -> Result<Vec<u8>, SopsError> {
    let d = decrypt_tree(input, format, keyring, ignore_mac)?;
    formats::emit_plain(output, &d.branches)
}

/// Re-encrypts edited plaintext with the file's existing data key and key
/// groups (as `sops edit` does): only changed values, `lastmodified` and the
/// MAC change (unchanged values keep their IV, hence their ciphertext); master-key entries, including types sealgate does not speak,
/// are kept byte for byte.
pub fn reencrypt(
    mut branches: Vec<Branch>,
    previous: &Metadata,
    data_key: &SecretBytes,
    ivs: IvCache,
    output: Format,
) -> Result<Vec<u8>, SopsError> {
    let md = engine::encrypt_branches(
        &mut branches,
        data_key,
        previous.key_groups.clone(),
        previous.shamir_threshold,
        previous.selector.clone(),
        previous.mac_only_encrypted,
        ivs,
    )?;
    formats::emit_encrypted(output, &branches, &md.to_value())
}

fn recipients_of(md: &Metadata) -> Result<Vec<Vec<Recipient>>, SopsError> {
    let unsupported = |kind: &str| {
        SopsError::UnsupportedKeyType {
        kind: kind.to_owned(),
        hint: "rotating would drop this key; rotate with sops, or remove the key with updatekeys first".into(),
    }
    };
    md.key_groups
        .iter()
        .map(|g| {
            g.iter()
                .map(|e| {
                    let field = |name: &str| {
                        e.field(name).ok_or_else(|| {
                            SopsError::meta(&format!("sops.{}.{name}", e.kind), "missing")
                        })
                    };
                    match e.kind.as_str() {
                        "age" => field("recipient").map(Recipient::age),
                        // Transit entries are re-wrapped for the same key.
                        "hc_vault" => Ok(Recipient {
                            kind: "hc_vault".into(),
                            id: format!(
                                "{}/v1/{}/keys/{}",
                                field("vault_address")?,
                                field("engine_path")?,
                                field("key_name")?
                            ),
                        }),
                        // KMS entries with a role or an encryption context
                        // cannot be reproduced yet; plain ARNs can.
                        "kms"
                            if e.field("role").is_none_or(|r| r.is_empty())
                                && crate::sops::tree::get(&e.fields, "context").is_none() =>
                        {
                            Ok(Recipient {
                                kind: "kms".into(),
                                id: field("arn")?,
                            })
                        }
                        other => Err(unsupported(other)),
                    }
                })
                .collect()
        })
        .collect()
}

/// Rotates the data key: decrypts, draws a new key, re-wraps it for the same
/// recipients and re-encrypts every value.
pub fn rotate(input: &[u8], format: Format, keyring: &Keyring) -> Result<Vec<u8>, SopsError> {
    let d = decrypt_tree(input, format, keyring, false)?;
    let groups = recipients_of(&d.metadata)?;
    let mut branches = d.branches;
    let opts = EncryptOptions {
        groups,
        shamir_threshold: (d.metadata.shamir_threshold > 0).then_some(d.metadata.shamir_threshold),
        selector: d.metadata.selector.clone(),
        mac_only_encrypted: d.metadata.mac_only_encrypted,
        binary: d.metadata.selector.is_none(),
    };
    let (md, _) = engine::encrypt_new(&mut branches, &opts, keyring)?;
    formats::emit_encrypted(format, &branches, &md.to_value())
}

/// Replaces the master keys with `groups` (same data key): values and the
/// MAC are untouched, so only the metadata block changes in a diff.
pub fn update_keys(
    input: &[u8],
    format: Format,
    keyring: &Keyring,
    groups: &[Vec<Recipient>],
    shamir_threshold: Option<usize>,
) -> Result<(Vec<u8>, bool), SopsError> {
    let (branches, mut md) = load_encrypted(input, format)?;
    let data_key = engine::unwrap_data_key(&md, keyring)?;
    let before = recipients_of(&md).ok();
    let (key_groups, t) = engine::wrap_data_key(&data_key, groups, shamir_threshold, keyring)?;
    let changed = before.as_deref() != Some(groups) || md.shamir_threshold != t;
    if !changed {
        return Ok((input.to_vec(), false));
    }
    md.key_groups = key_groups;
    md.shamir_threshold = t;
    Ok((
        formats::emit_encrypted(format, &branches, &md.to_value())?,
        true,
    ))
}

/// `filestatus`: whether the file carries readable sops metadata.
pub fn is_encrypted(input: &[u8], format: Format) -> bool {
    load_encrypted(input, format).is_ok()
}

/// One step of an `--extract` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    /// `["key"]`.
    Key(String),
    /// `[0]`.
    Index(usize),
}

/// Parses `["a"]["b"][0]`.
pub fn parse_extract_path(expr: &str) -> Result<Vec<PathStep>, SopsError> {
    let bad = |r: &str| SopsError::Extract {
        path: expr.to_owned(),
        reason: r.to_owned(),
    };
    let mut steps = Vec::new();
    let mut rest = expr.trim();
    while !rest.is_empty() {
        rest = rest.strip_prefix('[').ok_or_else(|| bad("expected `[`"))?;
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find("\"]").ok_or_else(|| bad("unterminated key"))?;
            steps.push(PathStep::Key(r[..end].to_owned()));
            rest = &r[end + 2..];
        } else {
            let end = rest.find(']').ok_or_else(|| bad("unterminated index"))?;
            let n = rest[..end]
                .trim()
                .parse()
                .map_err(|_| bad("index is not a number"))?;
            steps.push(PathStep::Index(n));
            rest = &rest[end + 1..];
        }
    }
    if steps.is_empty() {
        return Err(bad("empty path"));
    }
    Ok(steps)
}

/// Follows an extract path in the first document.
pub fn extract<'a>(branches: &'a [Branch], expr: &str) -> Result<&'a Value, SopsError> {
    let steps = parse_extract_path(expr)?;
    let nf = || SopsError::Extract {
        path: expr.to_owned(),
        reason: "not found in the file".into(),
    };
    let first = branches.first().ok_or_else(nf)?;
    let (head, tail) = steps.split_first().ok_or_else(nf)?;
    let PathStep::Key(k) = head else {
        return Err(nf());
    };
    let mut cur = super::tree::get(first, k).ok_or_else(nf)?;
    for s in tail {
        cur = match (s, cur) {
            (PathStep::Key(k), Value::Map(items)) => super::tree::get(items, k).ok_or_else(nf)?,
            (PathStep::Index(i), Value::List(l)) => l
                .iter()
                .filter(|v| !matches!(v, Value::Comment(_)))
                .nth(*i)
                .ok_or_else(nf)?,
            _ => return Err(nf()),
        };
    }
    Ok(cur)
}
