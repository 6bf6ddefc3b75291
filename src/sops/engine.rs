//! The tree walk: encrypt/decrypt leaves, compute the MAC, manage the data key.
//!
//! Design note: one walk serves both directions so encryption and
//! verification can never disagree about order or canonical bytes. The MAC
//! is SHA-512 over the canonical plaintext of every non-null, non-comment
//! leaf in document order (only the encrypted ones when
//! `mac_only_encrypted`), hex-uppercased, then encrypted with AAD =
//! `lastmodified` (sops-format.md §6). AAD of a value is its map-key path
//! joined with `:` plus a trailing `:`; list indices are not in it (§3).

use sha2::{Digest, Sha256, Sha512};

use super::cipher::{self, EncValue};
use super::error::SopsError;
use super::keys::{KeyEntry, Keyring, Recipient};
use super::metadata::{Metadata, parse_bool};
use super::rules::Selector;
use super::shamir;
use super::tree::{Branch, Item, Value};
use crate::secret::{ExposeSecret, SecretBytes, SecretString};

enum Dir<'a> {
    Encrypt,
    Decrypt {
        ignore_mac: bool,
        errors: &'a mut Vec<SopsError>,
    },
}

/// IVs of the values a decrypt saw, keyed by a digest of (path, type,
/// exact plaintext bytes). Re-encrypting the same bytes at the same path
/// reuses the IV, as sops does on edit, so untouched lines keep their
/// ciphertext and diffs stay small. Same key + IV + AAD + plaintext gives
/// the same ciphertext, which reveals nothing new; any other plaintext
/// misses the cache and gets a fresh IV, so an IV is never reused for
/// different content.
#[derive(Default)]
pub struct IvCache(std::collections::HashMap<[u8; 32], Vec<u8>>);

impl std::fmt::Debug for IvCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IvCache({} entries)", self.0.len())
    }
}

impl IvCache {
    fn slot(aad: &[u8], kind: &str, plain: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update((aad.len() as u64).to_be_bytes());
        h.update(aad);
        h.update(kind.as_bytes());
        h.update([0]);
        h.update(plain);
        h.finalize().into()
    }

    fn remember(&mut self, aad: &[u8], kind: &str, plain: &[u8], iv: &[u8]) {
        if iv.len() == 32 {
            self.0.insert(Self::slot(aad, kind, plain), iv.to_vec());
        }
    }

    fn lookup(&self, aad: &[u8], kind: &str, plain: &[u8]) -> Option<&[u8]> {
        self.0.get(&Self::slot(aad, kind, plain)).map(Vec::as_slice)
    }
}

struct Walk<'a> {
    ivs: IvCache,
    key: &'a SecretBytes,
    selector: &'a Selector,
    mac_only: bool,
    hasher: Sha512,
    path: Vec<String>,
    comment_stack: Vec<Vec<String>>,
    dir: Dir<'a>,
}

fn aad(path: &[String]) -> Vec<u8> {
    let mut s = String::new();
    for p in path {
        s.push_str(p);
        s.push(':');
    }
    if path.is_empty() {
        s.push(':');
    }
    s.into_bytes()
}

fn dotted(path: &[String]) -> String {
    if path.is_empty() {
        "<root>".into()
    } else {
        path.join(".")
    }
}

impl Walk<'_> {
    fn active_comments(&self) -> Vec<&str> {
        self.comment_stack
            .iter()
            .flatten()
            .map(String::as_str)
            .collect()
    }

    fn map(&mut self, items: &mut [Item]) -> Result<(), SopsError> {
        self.comment_stack.push(Vec::new());
        for item in items.iter_mut() {
            match item {
                Item::Comment(c) => {
                    let text = self.comment(c)?;
                    if let Some(level) = self.comment_stack.last_mut() {
                        level.push(text);
                    }
                }
                Item::Pair(k, v) => {
                    self.path.push(k.clone());
                    let r = self.value(v);
                    self.path.pop();
                    r?;
                    if let Some(level) = self.comment_stack.last_mut() {
                        level.clear();
                    }
                }
            }
        }
        self.comment_stack.pop();
        Ok(())
    }

    /// Encrypts or decrypts a comment in place; returns its plaintext for
    /// the comment-selector stack.
    fn comment(&mut self, c: &mut SecretString) -> Result<String, SopsError> {
        let aad = aad(&self.path);
        match self.dir {
            Dir::Encrypt => {
                let text = c.expose_secret().to_owned();
                let stack = self.active_comments();
                if !text.is_empty() && self.selector.encrypts_comment(&self.path, &stack, &text) {
                    *c = SecretString::new(
                        match self.ivs.lookup(&aad, "comment", text.as_bytes()) {
                            Some(iv) => cipher::encrypt_with_iv(
                                self.key,
                                text.as_bytes(),
                                &aad,
                                "comment",
                                iv,
                            )?,
                            None => cipher::encrypt(self.key, text.as_bytes(), &aad, "comment")?,
                        },
                    );
                }
                Ok(text)
            }
            Dir::Decrypt { .. } => {
                if !cipher::is_enc(c.expose_secret()) {
                    return Ok(c.expose_secret().to_owned());
                }
                let opened = cipher::parse_enc(c.expose_secret()).ok().and_then(|e| {
                    let plain = cipher::decrypt(self.key, &e, &aad)?;
                    self.ivs
                        .remember(&aad, "comment", plain.expose_secret(), &e.iv);
                    plain.into_string().ok()
                });
                match opened {
                    Some(s) => {
                        let t = s.expose_secret().to_owned();
                        *c = s;
                        Ok(t)
                    }
                    None => {
                        // sops keeps such comments (legacy/moved) and warns.
                        tracing::warn!(path = %dotted(&self.path), "an encrypted comment does not decrypt at its position; kept as is");
                        Ok(String::new())
                    }
                }
            }
        }
    }

    fn value(&mut self, v: &mut Value) -> Result<(), SopsError> {
        match v {
            Value::Map(items) => self.map(items),
            Value::List(list) => {
                // A list is a comment level too: a comment governs the
                // next element only (as in sops).
                self.comment_stack.push(Vec::new());
                for el in list.iter_mut() {
                    if let Value::Comment(c) = el {
                        let text = self.comment(c)?;
                        if let Some(level) = self.comment_stack.last_mut() {
                            level.push(text);
                        }
                    } else {
                        self.value(el)?;
                        if let Some(level) = self.comment_stack.last_mut() {
                            level.clear();
                        }
                    }
                }
                self.comment_stack.pop();
                Ok(())
            }
            Value::Comment(c) => self.comment(c).map(|_| ()),
            Value::Null => Ok(()),
            _ => self.leaf(v),
        }
    }

    fn leaf(&mut self, v: &mut Value) -> Result<(), SopsError> {
        let encrypted = {
            let stack = self.active_comments();
            self.selector.encrypts(&self.path, &stack)
        };
        match self.dir {
            Dir::Encrypt => {
                let Some(plain) = v.to_plain_bytes() else {
                    return Ok(());
                };
                if plain.is_empty() {
                    return Ok(()); // empty strings stay bare, add nothing
                }
                if encrypted || !self.mac_only {
                    self.hasher.update(plain.expose_secret());
                }
                if encrypted {
                    let kind = match &*v {
                        Value::Bytes(_) => "str",
                        other => other.type_name(),
                    };
                    let aad = aad(&self.path);
                    *v = Value::str(match self.ivs.lookup(&aad, kind, plain.expose_secret()) {
                        Some(iv) => cipher::encrypt_with_iv(
                            self.key,
                            plain.expose_secret(),
                            &aad,
                            kind,
                            iv,
                        )?,
                        None => cipher::encrypt(self.key, plain.expose_secret(), &aad, kind)?,
                    });
                }
                Ok(())
            }
            Dir::Decrypt { .. } => {
                if encrypted && let Value::Str(s) = v {
                    if s.is_empty() {
                        return Ok(());
                    }
                    let path = dotted(&self.path);
                    let enc = cipher::parse_enc(s.expose_secret()).map_err(|reason| {
                            SopsError::MalformedValue {
                                path: path.clone(),
                                reason: format!("{reason} (expected ENC[AES256_GCM,data:...,iv:...,tag:...,type:...])"),
                            }
                        })?;
                    let plain = match cipher::decrypt(self.key, &enc, &aad(&self.path)) {
                        Some(p) => p,
                        None => {
                            if let Dir::Decrypt {
                                ignore_mac: true,
                                errors,
                            } = &mut self.dir
                            {
                                errors.push(SopsError::ValueTampered { path });
                                return Ok(());
                            }
                            return Err(SopsError::ValueTampered { path });
                        }
                    };
                    let kind = if enc.kind == "bytes" {
                        "str"
                    } else {
                        enc.kind.as_str()
                    };
                    self.ivs
                        .remember(&aad(&self.path), kind, plain.expose_secret(), &enc.iv);
                    *v = typed(plain, &enc, &path)?;
                }
                // sops writes comments inside lists as `- ENC[...,type:comment]`
                // elements; they decrypt back to comments and, like every
                // comment, stay out of the MAC.
                if (encrypted || !self.mac_only)
                    && !matches!(v, Value::Comment(_))
                    && let Some(b) = v.to_plain_bytes()
                {
                    self.hasher.update(b.expose_secret());
                }
                Ok(())
            }
        }
    }
}

/// Re-types a decrypted value by its `type:` label.
fn typed(plain: SecretBytes, enc: &EncValue, path: &str) -> Result<Value, SopsError> {
    let bad = || SopsError::BadTypedValue {
        path: path.to_owned(),
        kind: enc.kind.clone(),
    };
    let text = |p: SecretBytes| p.into_string().map_err(|_| bad());
    Ok(match enc.kind.as_str() {
        "str" => match plain.clone().into_string() {
            Ok(s) => Value::Str(s),
            Err(_) => Value::Bytes(plain),
        },
        "bytes" => Value::Bytes(plain),
        "int" => Value::Int(text(plain)?.expose_secret().parse().map_err(|_| bad())?),
        "float" => Value::Float(parse_go_float(text(plain)?.expose_secret()).ok_or_else(bad)?),
        "bool" => Value::Bool(parse_bool(text(plain)?.expose_secret()).ok_or_else(bad)?),
        "time" => Value::Time(text(plain)?),
        "comment" => Value::Comment(text(plain)?),
        _ => return Err(bad()),
    })
}

fn parse_go_float(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

fn digest_hex(h: Sha512) -> String {
    let d = h.finalize();
    let mut s = String::with_capacity(128);
    for b in d {
        s.push_str(&format!("{b:02X}"));
    }
    s
}

fn new_hasher(mac_only: bool) -> Sha512 {
    let mut h = Sha512::new();
    if mac_only {
        h.update(Sha256::digest(b"sops"));
    }
    h
}

/// The current time as sops writes `lastmodified`: UTC, whole seconds.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    format_unix(secs)
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days).
pub fn format_unix(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// What to encrypt for and how.
#[derive(Debug, Clone, Default)]
pub struct EncryptOptions {
    /// Key groups of recipients; one group means no Shamir.
    pub groups: Vec<Vec<Recipient>>,
    /// Shamir threshold for ≥2 groups (default: all groups).
    pub shamir_threshold: Option<usize>,
    /// The selector; `None` = default `unencrypted_suffix: _unencrypted`
    /// written explicitly, as sops does.
    pub selector: Option<Selector>,
    /// Hash only encrypted values.
    pub mac_only_encrypted: bool,
    /// Binary store: no selector is written (sops 3.11+).
    pub binary: bool,
}

/// Wraps the data key for every group (splitting it for ≥2 groups).
pub fn wrap_data_key(
    data_key: &SecretBytes,
    groups: &[Vec<Recipient>],
    threshold: Option<usize>,
    keyring: &Keyring,
) -> Result<(Vec<Vec<KeyEntry>>, usize), SopsError> {
    let groups: Vec<&Vec<Recipient>> = groups.iter().filter(|g| !g.is_empty()).collect();
    if groups.is_empty() {
        return Err(SopsError::NoRecipients);
    }
    if groups.len() == 1 {
        let entries = groups[0]
            .iter()
            .map(|r| keyring.wrap(r, data_key))
            .collect::<Result<_, _>>()?;
        return Ok((vec![entries], 0));
    }
    let t = threshold.unwrap_or(groups.len());
    let shares = shamir::split(data_key, groups.len(), t)?;
    let mut out = Vec::new();
    for (g, share) in groups.iter().zip(shares) {
        out.push(
            g.iter()
                .map(|r| keyring.wrap(r, &share))
                .collect::<Result<_, _>>()?,
        );
    }
    Ok((out, t))
}

/// Recovers the data key from the metadata with the keyring.
pub fn unwrap_data_key(md: &Metadata, keyring: &Keyring) -> Result<SecretBytes, SopsError> {
    let needed = md.groups_needed();
    let mut shares = Vec::new();
    for g in &md.key_groups {
        if let Some(s) = keyring.unwrap_group(g)? {
            shares.push(s);
            if md.key_groups.len() == 1 || shares.len() >= needed {
                break;
            }
        }
    }
    let no_keys = |opened| SopsError::NoMatchingKeys {
        groups_opened: opened,
        groups_needed: needed,
        recipients: md.recipients(),
    };
    if md.key_groups.len() <= 1 {
        let key = shares.pop().ok_or_else(|| no_keys(0))?;
        return if key.len() == cipher::DATA_KEY_LEN {
            Ok(key)
        } else {
            Err(SopsError::BadDataKey)
        };
    }
    if shares.len() < needed {
        return Err(no_keys(shares.len()));
    }
    let key = shamir::combine(&shares)?;
    if key.len() != cipher::DATA_KEY_LEN {
        return Err(SopsError::BadDataKey);
    }
    Ok(key)
}

/// Encrypts plaintext branches in place with `data_key`, returning the
/// metadata (with the given key groups) to store beside them.
pub fn encrypt_branches(
    branches: &mut [Branch],
    data_key: &SecretBytes,
    key_groups: Vec<Vec<KeyEntry>>,
    shamir_threshold: usize,
    selector: Option<Selector>,
    mac_only_encrypted: bool,
    ivs: IvCache,
) -> Result<Metadata, SopsError> {
    let effective = selector.clone().unwrap_or_default();
    let mut w = Walk {
        ivs,
        key: data_key,
        selector: &effective,
        mac_only: mac_only_encrypted,
        hasher: new_hasher(mac_only_encrypted),
        path: Vec::new(),
        comment_stack: Vec::new(),
        dir: Dir::Encrypt,
    };
    for b in branches.iter_mut() {
        w.map(b)?;
    }
    let digest = digest_hex(w.hasher);
    let lastmodified = now_rfc3339();
    let mac = cipher::encrypt(data_key, digest.as_bytes(), lastmodified.as_bytes(), "str")?;
    Ok(Metadata {
        key_groups,
        shamir_threshold,
        lastmodified,
        mac,
        selector,
        mac_only_encrypted,
        version: super::metadata::WRITTEN_VERSION.into(),
    })
}

/// Decrypts branches in place and verifies the MAC. With `ignore_mac`, a
/// mismatch is only logged and reported as `false` (the caller must warn
/// the user), and undecryptable values are left as ciphertext.
pub fn decrypt_branches(
    branches: &mut [Branch],
    md: &Metadata,
    data_key: &SecretBytes,
    ignore_mac: bool,
) -> Result<(IvCache, bool), SopsError> {
    let selector = md.effective_selector();
    let mut errors = Vec::new();
    let mut w = Walk {
        ivs: IvCache::default(),
        key: data_key,
        selector: &selector,
        mac_only: md.mac_only_encrypted,
        hasher: new_hasher(md.mac_only_encrypted),
        path: Vec::new(),
        comment_stack: Vec::new(),
        dir: Dir::Decrypt {
            ignore_mac,
            errors: &mut errors,
        },
    };
    for b in branches.iter_mut() {
        w.map(b)?;
    }
    let ivs = std::mem::take(&mut w.ivs);
    let computed = digest_hex(w.hasher);
    for e in &errors {
        tracing::warn!(error = %e, "--ignore-mac: value left encrypted");
    }
    let stored = cipher::parse_enc(&md.mac)
        .ok()
        .and_then(|e| cipher::decrypt(data_key, &e, md.lastmodified.as_bytes()));
    let ok = match &stored {
        Some(s) => s.expose_secret() == computed.as_bytes(),
        None => false,
    };
    if !ok {
        if ignore_mac {
            tracing::warn!(
                "MAC CHECK SKIPPED (--ignore-mac): this file's integrity is NOT verified"
            );

            return Ok((ivs, false));
        }
        return Err(if stored.is_none() {
            SopsError::MacUndecryptable
        } else {
            SopsError::InvalidMac
        });
    }
    Ok((ivs, true))
}

/// Fresh data key + wrapping + encryption: the whole "encrypt" operation on
/// a tree.
pub fn encrypt_new(
    branches: &mut [Branch],
    opts: &EncryptOptions,
    keyring: &Keyring,
) -> Result<(Metadata, SecretBytes), SopsError> {
    let data_key = cipher::new_data_key()?;
    let (groups, t) = wrap_data_key(&data_key, &opts.groups, opts.shamir_threshold, keyring)?;
    let selector = if opts.binary {
        None
    } else {
        Some(opts.selector.clone().unwrap_or_default())
    };
    let md = encrypt_branches(
        branches,
        &data_key,
        groups,
        t,
        selector,
        opts.mac_only_encrypted,
        IvCache::default(),
    )?;
    Ok((md, data_key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_time_formats() {
        assert_eq!(format_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_unix(1_704_067_200), "2024-01-01T00:00:00Z");
        assert_eq!(format_unix(951_782_400), "2000-02-29T00:00:00Z");
    }

    fn worked_example() -> Branch {
        vec![
            Item::Pair("foo".into(), Value::str("bar")),
            Item::Pair(
                "app".into(),
                Value::Map(vec![Item::Pair(
                    "db".into(),
                    Value::Map(vec![Item::Pair("password".into(), Value::str("hunter2"))]),
                )]),
            ),
            Item::Pair(
                "hosts".into(),
                Value::List(vec![Value::str("a.example"), Value::str("b.example")]),
            ),
            Item::Pair("port".into(), Value::Int(42)),
            Item::Pair("ratio".into(), Value::Float(1.5)),
            Item::Pair("enabled".into(), Value::Bool(true)),
            Item::Pair("public_unencrypted".into(), Value::str("public")),
        ]
    }

    fn digest_of(mac_only: bool) -> String {
        let key = SecretBytes::new((0u8..32).collect());
        let mut b = vec![worked_example()];
        let md = encrypt_branches(
            &mut b,
            &key,
            vec![vec![]],
            0,
            None,
            mac_only,
            IvCache::default(),
        )
        .unwrap();
        let e = cipher::parse_enc(&md.mac).unwrap();
        let d = cipher::decrypt(&key, &e, md.lastmodified.as_bytes()).unwrap();
        // Round trip verifies too.
        decrypt_branches(&mut b, &md, &key, false).unwrap();
        assert_eq!(b[0], worked_example());
        String::from_utf8(d.expose_secret().to_vec()).unwrap()
    }

    #[test]
    fn documented_mac_digests() {
        assert_eq!(
            digest_of(false),
            "5B57E4CBB4F4BD9E5853457E53F6D4A9A91479CA824A5FC41AF72A6D1263A91A8652A2BBCEA1CDE57FF14F98B2599312EFE322776662743B6CA451E6EE6D19E2"
        );
        assert_eq!(
            digest_of(true),
            "2BAA00C54F7B89621C768483502E8B818AD685EF87EFA88AA85228379CFCEF503B5859D915007BDA52C66AD0C15FE3BF76D8B3C3CFC6E6065043499D4A747FFB"
        );
    }

    #[test]
    fn tampering_is_refused() {
        let key = SecretBytes::new(vec![9; 32]);
        let mut b = vec![worked_example()];
        let md = encrypt_branches(
            &mut b,
            &key,
            vec![vec![]],
            0,
            None,
            false,
            IvCache::default(),
        )
        .unwrap();
        // Change an unencrypted value: MAC mismatch.
        let mut t = b.clone();
        if let Item::Pair(_, v) = &mut t[0][6] {
            *v = Value::str("evil");
        }
        assert!(matches!(
            decrypt_branches(&mut t, &md, &key, false),
            Err(SopsError::InvalidMac)
        ));
        // Move an encrypted value to another key: authentication fails.
        let mut t = b.clone();
        if let Item::Pair(k, _) = &mut t[0][0] {
            *k = "renamed".into();
        }
        let e = decrypt_branches(&mut t, &md, &key, false).unwrap_err();
        assert!(
            matches!(e, SopsError::ValueTampered { ref path } if path == "renamed"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod quorum_tests {
    use super::*;
    use crate::secret::SecretString;
    use crate::sops::keys::{AgeIdentities, Keyring};

    fn ring_with(ids: &[&age::x25519::Identity]) -> Keyring {
        let mut set = AgeIdentities::default();
        for id in ids {
            let text = age::secrecy::ExposeSecret::expose_secret(&id.to_string()).to_owned();
            set.add_text(&SecretString::new(text), "test").unwrap();
        }
        Keyring::age(set)
    }

    /// A 2-of-3 file whose third group holds only a key type we do not
    /// speak (pgp) still opens with two age groups, and not with one.
    #[test]
    fn any_quorum_we_can_open_suffices() {
        let a = age::x25519::Identity::generate();
        let b = age::x25519::Identity::generate();
        let groups = vec![
            vec![Recipient::age(a.to_public().to_string())],
            vec![Recipient::age(b.to_public().to_string())],
            vec![Recipient::age(
                age::x25519::Identity::generate().to_public().to_string(),
            )],
        ];
        let key = cipher::new_data_key().unwrap();
        let (mut wrapped, t) = wrap_data_key(&key, &groups, Some(2), &Keyring::new()).unwrap();
        assert_eq!(t, 2);
        wrapped[2] = vec![KeyEntry {
            kind: "pgp".into(),
            fields: vec![Item::Pair("fp".into(), Value::str("ABCDEF"))],
        }];
        let md = Metadata {
            key_groups: wrapped,
            shamir_threshold: 2,
            lastmodified: String::new(),
            mac: String::new(),
            selector: None,
            mac_only_encrypted: false,
            version: "3.13.2".into(),
        };
        assert_eq!(unwrap_data_key(&md, &ring_with(&[&a, &b])).unwrap(), key);
        let e = unwrap_data_key(&md, &ring_with(&[&b])).unwrap_err();
        assert!(
            matches!(
                e,
                SopsError::NoMatchingKeys {
                    groups_opened: 1,
                    groups_needed: 2,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("pgp:ABCDEF"), "{e}");
    }
}
