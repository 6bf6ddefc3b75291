//! sops awareness: encryption claims are verified, not trusted.
//!
//! Design note: a sops file is accepted only when its metadata is intact and
//! every value its own rules (`encrypted_regex`, `unencrypted_suffix`, …, as
//! recorded in the `sops` block) select is `ENC[…]`. A file that a
//! `.sops.yaml` creation rule or its name (`*.enc.*`, `*.sops.*`) says must
//! be encrypted but has no metadata is refused: excluding `*.enc.yaml` from
//! scanning must not become a bypass. No keys are needed; nothing is
//! decrypted and the MAC is not verified (CI has no keys).

use std::sync::LazyLock;

use regex::Regex;

use super::yaml::{Node, Value, parse_documents};
use super::{Ctx, Site, k8s};

static ENC: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^ENC\[[A-Z0-9_]+,data:[^\]]*\]$").expect("enc regex"));

/// `creation_rules` from a `.sops.yaml`, plus where the scanned file sits
/// relative to it.
#[derive(Debug, Clone, Default)]
pub struct SopsRules {
    path_regexes: Vec<Regex>,
    /// The scanned file's path relative to the `.sops.yaml` directory.
    pub rel_path: String,
}

impl SopsRules {
    /// Parses a `.sops.yaml`. Errors name the problem (and never contain
    /// values: the file holds recipients and regexes only).
    pub fn parse(text: &str) -> Result<SopsRules, String> {
        let docs = parse_documents(text).map_err(|e| format!("invalid YAML: {e}"))?;
        let mut path_regexes = Vec::new();
        for doc in &docs {
            for (i, rule) in doc
                .get("creation_rules")
                .map(Node::items)
                .unwrap_or(&[])
                .iter()
                .enumerate()
            {
                if let Some(p) = rule.get("path_regex").and_then(Node::as_str) {
                    let re = Regex::new(p)
                        .map_err(|e| format!("creation_rules[{i}].path_regex: {e}"))?;
                    path_regexes.push(re);
                }
            }
        }
        Ok(SopsRules {
            path_regexes,
            rel_path: String::new(),
        })
    }

    /// Same rules for another file.
    pub fn for_file(&self, rel_path: &str) -> SopsRules {
        SopsRules {
            path_regexes: self.path_regexes.clone(),
            rel_path: rel_path.to_owned(),
        }
    }

    fn matches(&self, path: &str) -> bool {
        self.path_regexes
            .iter()
            .any(|r| r.is_match(&self.rel_path) || r.is_match(path))
    }
}

/// Whether the file name says "sops-encrypted".
fn name_claims(path: &str) -> bool {
    let name = path
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(path)
        .to_ascii_lowercase();
    name != ".sops.yaml"
        && (name.contains(".enc.")
            || name.contains(".sops.")
            || name.ends_with(".enc")
            || name.ends_with(".sops"))
}

/// Reports `sops/missing-metadata` when the file should be encrypted but has
/// no sops metadata.
pub fn demand_encryption(ctx: &mut Ctx<'_>, has_metadata: bool) {
    if has_metadata {
        return;
    }
    let path = ctx.path;
    let by_name = name_claims(path);
    let by_rule = ctx
        .opts
        .sops_rules
        .as_ref()
        .is_some_and(|r| r.matches(path));
    if by_name || by_rule {
        let why = if by_rule {
            "a .sops.yaml creation rule matches this file"
        } else {
            "the file name says it is sops-encrypted"
        };
        ctx.emit(
            "sops/missing-metadata",
            &Site {
                line: 1,
                col: 1,
                ..Site::default()
            },
            "",
            format!("{why}, but it has no sops metadata (committed in clear?)"),
        );
    }
}

/// Whether `doc` has a top-level `sops` mapping.
pub fn has_metadata(doc: &Node) -> bool {
    const MARKERS: &[&str] = &[
        "mac",
        "lastmodified",
        "version",
        "age",
        "pgp",
        "kms",
        "gcp_kms",
        "azure_kv",
        "hc_vault",
        "key_groups",
        "encrypted_regex",
        "unencrypted_suffix",
        "encrypted_suffix",
        "unencrypted_regex",
    ];
    doc.get("sops").is_some_and(|s| {
        s.pairs()
            .iter()
            .any(|(k, _)| k.as_str().is_some_and(|k| MARKERS.contains(&k)))
    })
}

struct LeafRules {
    unencrypted_suffix: Option<String>,
    encrypted_suffix: Option<String>,
    unencrypted_regex: Option<Regex>,
    encrypted_regex: Option<Regex>,
}

/// Checks one document that carries a `sops` block.
pub fn check_document(ctx: &mut Ctx<'_>, doc: &Node) {
    let Some((meta_key, meta)) = doc.pairs().iter().find(|(k, _)| k.as_str() == Some("sops"))
    else {
        return;
    };
    let site = |n: &Node, field: &str| Site {
        line: n.line,
        col: n.col,
        object: None,
        field: Some(field.to_owned()),
    };
    let mac_ok = meta
        .get("mac")
        .and_then(Node::as_str)
        .is_some_and(|m| ENC.is_match(m));
    let groups = [
        "age",
        "pgp",
        "kms",
        "gcp_kms",
        "azure_kv",
        "hc_vault",
        "key_groups",
    ];
    let has_keys = groups.iter().any(|g| {
        meta.get(g)
            .is_some_and(|n| !n.items().is_empty() || !n.pairs().is_empty())
    });
    if !mac_ok || !has_keys {
        let what = match (mac_ok, has_keys) {
            (false, false) => "sops metadata has neither a valid `mac` nor any key group",
            (false, true) => "sops metadata has no valid `mac` (ENC[…])",
            _ => "sops metadata lists no key group (age/pgp/kms/…)",
        };
        ctx.emit(
            "sops/missing-metadata",
            &site(meta_key, "sops"),
            "",
            format!("{what}: the file cannot be decrypted or verified"),
        );
    }
    let s = |k: &str| meta.get(k).and_then(Node::as_str).map(str::to_owned);
    let re = |k: &str| s(k).and_then(|p| Regex::new(&p).ok());
    let mut rules = LeafRules {
        unencrypted_suffix: s("unencrypted_suffix"),
        encrypted_suffix: s("encrypted_suffix"),
        unencrypted_regex: re("unencrypted_regex"),
        encrypted_regex: re("encrypted_regex"),
    };
    if rules.unencrypted_suffix.is_none()
        && rules.encrypted_suffix.is_none()
        && rules.unencrypted_regex.is_none()
        && rules.encrypted_regex.is_none()
    {
        // sops' default when no rule is recorded.
        rules.unencrypted_suffix = Some("_unencrypted".to_owned());
    }
    let selective = rules.encrypted_suffix.is_some() || rules.encrypted_regex.is_some();
    for (k, v) in doc.pairs() {
        let Some(key) = k.as_str() else { continue };
        if key == "sops" {
            continue;
        }
        walk(ctx, v, key, key, &rules, !selective, &site);
    }
}

fn walk(
    ctx: &mut Ctx<'_>,
    node: &Node,
    key: &str,
    field: &str,
    rules: &LeafRules,
    encrypt: bool,
    site: &dyn Fn(&Node, &str) -> Site,
) {
    // Decide for this key: unencrypted markers win, then encrypted markers.
    let mut enc = encrypt;
    if rules
        .unencrypted_suffix
        .as_deref()
        .is_some_and(|s| key.ends_with(s))
        || rules
            .unencrypted_regex
            .as_ref()
            .is_some_and(|r| r.is_match(key))
    {
        return;
    }
    if rules
        .encrypted_suffix
        .as_deref()
        .is_some_and(|s| key.ends_with(s))
        || rules
            .encrypted_regex
            .as_ref()
            .is_some_and(|r| r.is_match(key))
    {
        enc = true;
    }
    match &node.value {
        Value::Map(pairs) => {
            for (k, v) in pairs {
                let Some(kk) = k.as_str() else { continue };
                walk(ctx, v, kk, &k8s::join(field, kk), rules, enc, site);
            }
        }
        Value::Seq(items) => {
            for (i, it) in items.iter().enumerate() {
                walk(ctx, it, key, &format!("{field}[{i}]"), rules, enc, site);
            }
        }
        Value::Scalar(s, _) => {
            if enc && !ENC.is_match(s.trim()) {
                ctx.emit(
                    "sops/plaintext-leaf",
                    &site(node, field),
                    s,
                    format!(
                        "`{field}` is in clear in a sops-encrypted file (added after encryption?)"
                    ),
                );
            }
        }
        Value::Alias => {}
    }
}

/// sops dotenv (`sops_mac=`) and INI (`[sops]`) files: every value outside
/// the metadata must be `ENC[…]`. Returns whether the text was sops.
pub fn scan_text_sops(ctx: &mut Ctx<'_>, text: &str) -> bool {
    let dotenv = text.lines().any(|l| l.starts_with("sops_mac="));
    let ini = text.lines().any(|l| l.trim() == "[sops]");
    if !dotenv && !ini {
        return false;
    }
    let mut in_sops_section = false;
    let mut has_mac = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') && t.ends_with(']') {
            in_sops_section = t == "[sops]";
            continue;
        }
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        let Some((k, v)) = t.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.starts_with("sops_") || in_sops_section {
            if k == "sops_mac" || k == "mac" {
                has_mac = ENC.is_match(v);
            }
            continue;
        }
        if !ENC.is_match(v) {
            ctx.emit(
                "sops/plaintext-leaf",
                &Site {
                    line: i + 1,
                    col: line.find('=').map_or(1, |p| p + 2),
                    object: None,
                    field: Some(k.to_owned()),
                },
                v,
                format!("`{k}` is in clear in a sops-encrypted file (added after encryption?)"),
            );
        }
    }
    if !has_mac {
        ctx.emit(
            "sops/missing-metadata",
            &Site {
                line: 1,
                col: 1,
                ..Site::default()
            },
            "",
            "sops metadata has no valid mac: the file cannot be verified".to_owned(),
        );
    }
    true
}
