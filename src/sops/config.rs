//! `.sops.yaml`: discovery and creation rules.
//!
//! Design note: sops looks for `.sops.yaml` from the **current directory**
//! upwards (not from the file), and takes the first creation rule whose
//! `path_regex` matches the target path made relative to the config's
//! directory (sops-format.md §9). The config is parsed with our own YAML
//! store, so the same typing rules apply. Only what the engine needs is
//! kept: key groups as [`Recipient`]s, the threshold, the selector.

use std::path::{Path, PathBuf};

use regex::Regex;

use super::error::SopsError;
use super::keys::{Recipient, scalar_text};
use super::rules::{SELECTOR_FIELDS, Selector};
use super::tree::{Item, Value, get};

/// A chosen creation rule, ready for the engine.
#[derive(Debug, Clone, Default)]
pub struct CreationRule {
    /// Key groups (one group unless `key_groups` is used).
    pub groups: Vec<Vec<Recipient>>,
    /// `shamir_threshold`.
    pub shamir_threshold: Option<usize>,
    /// The selector, if the rule sets one.
    pub selector: Option<Selector>,
    /// `mac_only_encrypted`.
    pub mac_only_encrypted: bool,
}

/// Walks up from `start` looking for `.sops.yaml` (at most 100 levels).
pub fn find_config(start: &Path) -> Option<PathBuf> {
    let mut dir = Some(start.to_path_buf());
    for _ in 0..100 {
        let d = dir?;
        let candidate = d.join(".sops.yaml");
        if candidate.is_file() {
            return Some(candidate);
        }
        if d.join(".sops.yml").is_file() {
            tracing::warn!(dir = %d.display(), ".sops.yml is ignored (sops reads only .sops.yaml)");
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    None
}

fn cfg_err(file: &Path, reason: impl Into<String>) -> SopsError {
    SopsError::Config {
        file: file.display().to_string(),
        reason: reason.into(),
    }
}

/// A list-or-comma-string of keys.
fn key_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::List(l)) => l
            .iter()
            .filter_map(scalar_text)
            .flat_map(|s| {
                s.split(',')
                    .map(|p| p.trim().to_owned())
                    .collect::<Vec<_>>()
            })
            .filter(|s| !s.is_empty())
            .collect(),
        Some(v) => scalar_text(v)
            .map(|s| {
                s.split(',')
                    .map(|p| p.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    }
}

const UNSUPPORTED_KINDS: [(&str, &str); 4] = [
    ("pgp", "pgp"),
    ("gcp_kms", "gcp_kms"),
    ("azure_keyvault", "azure_kv"),
    ("hckms", "hckms"),
];

/// Vault Transit URIs and KMS ARNs of a rule or key group. In a key group
/// sops spells the Transit list `hc_vault` and writes KMS keys as objects
/// (`arn`, `role`, `context`, `aws_profile`); a role or context cannot be
/// honoured yet, so such a rule is refused rather than silently weakened.
fn cloud_keys(items: &[Item], file: &Path, in_group: bool) -> Result<Vec<Recipient>, SopsError> {
    let transit_field = if in_group {
        "hc_vault"
    } else {
        "hc_vault_transit_uri"
    };
    let mut out: Vec<Recipient> = key_list(get(items, transit_field))
        .into_iter()
        .map(|id| Recipient {
            kind: "hc_vault".into(),
            id,
        })
        .collect();
    let kms = get(items, "kms");
    let objects: Vec<&[Item]> = match kms {
        Some(Value::List(l)) => l
            .iter()
            .filter_map(|v| match v {
                Value::Map(m) => Some(m.as_slice()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if objects.is_empty() {
        out.extend(key_list(kms).into_iter().map(|id| Recipient {
            kind: "kms".into(),
            id,
        }));
    }
    for o in objects {
        let role = get(o, "role").and_then(scalar_text).unwrap_or_default();
        if !role.trim().is_empty() || get(o, "context").is_some_and(|c| !matches!(c, Value::Null)) {
            return Err(cfg_err(
                file,
                "kms keys with a role or an encryption context are not supported yet; use sops for this file",
            ));
        }
        if let Some(arn) = get(o, "arn").and_then(scalar_text) {
            out.push(Recipient {
                kind: "kms".into(),
                id: arn,
            });
        }
    }
    Ok(out)
}

fn group_from(items: &[Item], file: &Path, in_group: bool) -> Result<Vec<Recipient>, SopsError> {
    let mut g: Vec<Recipient> = key_list(get(items, "age"))
        .into_iter()
        .map(Recipient::age)
        .collect();
    g.extend(cloud_keys(items, file, in_group)?);
    for (field, kind) in UNSUPPORTED_KINDS {
        if let Some(v) = get(items, field) {
            let present = match v {
                Value::List(l) => !l.is_empty(),
                Value::Null => false,
                other => scalar_text(other).is_some_and(|s| !s.trim().is_empty()),
            };
            if present {
                return Err(cfg_err(
                    file,
                    format!(
                        "creation rule uses {kind} keys, which sealgate cannot wrap yet (age only); use sops for this file"
                    ),
                ));
            }
        }
    }
    g.dedup();
    Ok(g)
}

/// Loads `config` and picks the rule for `target` (any path; made absolute
/// against the current directory).
pub fn rule_for(config: &Path, target: &Path) -> Result<CreationRule, SopsError> {
    let text = std::fs::read(config).map_err(|e| cfg_err(config, format!("cannot read: {e}")))?;
    let docs = super::formats::yaml::parse(super::formats::utf8(&text)?)
        .map_err(|e| cfg_err(config, e.to_string()))?;
    let root = docs.into_iter().next().unwrap_or_default();
    let Some(Value::List(rules)) = get(&root, "creation_rules") else {
        return Err(cfg_err(config, "no creation_rules"));
    };
    let abs = |p: &Path| -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|d| d.join(p))
                .unwrap_or_else(|_| p.to_path_buf())
        }
    };
    let target = abs(target);
    let base = abs(config.parent().unwrap_or(Path::new(".")));
    let rel = target.strip_prefix(&base).unwrap_or(&target);
    let rel = rel.to_string_lossy().replace('\\', "/");
    for (n, rule) in rules.iter().enumerate() {
        let Value::Map(items) = rule else {
            return Err(cfg_err(config, format!("creation_rules[{n}] is not a map")));
        };
        if let Some(re) = get(items, "path_regex").and_then(scalar_text) {
            let re = Regex::new(&re)
                .map_err(|e| cfg_err(config, format!("creation_rules[{n}].path_regex: {e}")))?;
            if !re.is_match(&rel) {
                continue;
            }
        }
        let groups = match get(items, "key_groups") {
            Some(Value::List(gs)) if !gs.is_empty() => {
                let mut out = Vec::new();
                for g in gs {
                    let Value::Map(gi) = g else {
                        return Err(cfg_err(
                            config,
                            format!("creation_rules[{n}].key_groups entry is not a map"),
                        ));
                    };
                    let mut group = group_from(gi, config, true)?;
                    if let Some(Value::List(merges)) = get(gi, "merge") {
                        for m in merges {
                            if let Value::Map(mi) = m {
                                group.extend(group_from(mi, config, true)?);
                            }
                        }
                    }
                    group.dedup();
                    out.push(group);
                }
                out
            }
            _ => vec![group_from(items, config, false)?],
        };
        let shamir_threshold = match get(items, "shamir_threshold").and_then(scalar_text) {
            Some(t) => Some(
                t.parse()
                    .map_err(|_| cfg_err(config, "shamir_threshold is not a number"))?,
            ),
            None => None,
        };
        let sels: Vec<(&str, Option<String>)> = SELECTOR_FIELDS
            .iter()
            .map(|f| (*f, get(items, f).and_then(scalar_text)))
            .collect();
        let refs: Vec<(&str, Option<&str>)> =
            sels.iter().map(|(f, v)| (*f, v.as_deref())).collect();
        let selector = if refs.iter().any(|(_, v)| v.is_some()) {
            Some(Selector::from_options(&refs).map_err(|e| cfg_err(config, e.to_string()))?)
        } else {
            None
        };
        let mac_only_encrypted = get(items, "mac_only_encrypted")
            .and_then(scalar_text)
            .is_some_and(|s| s == "true" || s == "True");
        return Ok(CreationRule {
            groups,
            shamir_threshold,
            selector,
            mac_only_encrypted,
        });
    }
    Err(cfg_err(
        config,
        format!("no matching creation rules found for {rel}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_rule_wins() {
        let dir = std::env::temp_dir().join(format!("sealgate-cfg-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("k8s")).unwrap();
        let cfg = dir.join(".sops.yaml");
        std::fs::write(
            &cfg,
            "creation_rules:\n  - path_regex: ^k8s/.*\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    key_groups:\n      - age: [age1a, age1b]\n      - age:\n          - age1c\n    shamir_threshold: 2\n  - path_regex: \\.env$\n    age: age1a, age1b\n  - age: age1z\n",
        )
        .unwrap();
        let r = rule_for(&cfg, &dir.join("k8s/app.yaml")).unwrap();
        assert_eq!(r.groups.len(), 2);
        assert_eq!(
            r.groups[0],
            vec![Recipient::age("age1a"), Recipient::age("age1b")]
        );
        assert_eq!(r.shamir_threshold, Some(2));
        assert!(matches!(r.selector, Some(Selector::EncryptedRegex(_))));
        let r = rule_for(&cfg, &dir.join("prod.env")).unwrap();
        assert_eq!(
            r.groups,
            vec![vec![Recipient::age("age1a"), Recipient::age("age1b")]]
        );
        let r = rule_for(&cfg, &dir.join("other.json")).unwrap();
        assert_eq!(r.groups, vec![vec![Recipient::age("age1z")]]);
        assert_eq!(find_config(&dir.join("k8s")), Some(cfg));
        std::fs::remove_dir_all(&dir).ok();
    }
}
