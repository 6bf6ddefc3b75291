//! The `sops` metadata block: reading every layout, writing one.
//!
//! Design note: sops ≤3.12 writes struct order with empty lists, 3.13 writes
//! every level alphabetically (sops-format.md §7.2). We read any order and
//! any of those shapes, and we **write the 3.13 alphabetical layout**: it is
//! what the newest sops produces (smallest diffs for teams on current sops)
//! and every sops 3.x reader accepts it. Flat formats (dotenv, INI) store
//! the block flattened with `__map_`/`__list_<n>` (§7.3); that lives here
//! too so both stores share it.

use super::error::SopsError;
use super::keys::{KEY_KINDS, KeyEntry, scalar_text};
use super::rules::{SELECTOR_FIELDS, Selector};
use super::tree::{Item, Value, get};

/// The sops version written into files. It must be strict semver for sops'
/// own version check; it names the format generation we emulate.
pub const WRITTEN_VERSION: &str = "3.13.2";

/// Parsed metadata of one file.
#[derive(Debug, Clone)]
pub struct Metadata {
    /// Key groups; one group means no Shamir.
    pub key_groups: Vec<Vec<KeyEntry>>,
    /// Shamir threshold (0 when unset).
    pub shamir_threshold: usize,
    /// `lastmodified` text, also the MAC's AAD.
    pub lastmodified: String,
    /// The encrypted MAC (`ENC[...]`).
    pub mac: String,
    /// The selector, `None` when the file names none (binary since 3.11);
    /// readers then use the default.
    pub selector: Option<Selector>,
    /// `mac_only_encrypted`.
    pub mac_only_encrypted: bool,
    /// The writer's version.
    pub version: String,
}

impl Metadata {
    /// The selector to apply (default when none stored).
    pub fn effective_selector(&self) -> Selector {
        self.selector.clone().unwrap_or_default()
    }

    /// The number of groups that must be opened.
    pub fn groups_needed(&self) -> usize {
        if self.key_groups.len() <= 1 {
            1
        } else if self.shamir_threshold == 0 {
            self.key_groups.len()
        } else {
            self.shamir_threshold
        }
    }

    /// Every recipient listed, for messages.
    pub fn recipients(&self) -> String {
        let all: Vec<String> = self
            .key_groups
            .iter()
            .flatten()
            .map(KeyEntry::describe)
            .collect();
        if all.is_empty() {
            "none".into()
        } else {
            all.join(", ")
        }
    }

    /// Reads the metadata map (any sops 3 layout, nested or unflattened).
    pub fn from_value(v: &Value) -> Result<Self, SopsError> {
        let Value::Map(items) = v else {
            return Err(SopsError::meta("sops", "is not a map"));
        };
        let text = |f: &str| get(items, f).and_then(scalar_text);
        let version = text("version").ok_or_else(|| SopsError::meta("sops.version", "missing"))?;
        if !version.starts_with("3.") && version != "3" {
            return Err(SopsError::UnsupportedVersion(version));
        }
        let lastmodified =
            text("lastmodified").ok_or_else(|| SopsError::meta("sops.lastmodified", "missing"))?;
        let mac = text("mac").ok_or_else(|| SopsError::meta("sops.mac", "missing"))?;
        let mut key_groups = Vec::new();
        match get(items, "key_groups") {
            Some(Value::List(groups)) if !groups.is_empty() => {
                for (i, g) in groups.iter().enumerate() {
                    let Value::Map(gi) = g else {
                        return Err(SopsError::meta(
                            &format!("sops.key_groups[{i}]"),
                            "is not a map",
                        ));
                    };
                    key_groups.push(read_group(gi, &format!("sops.key_groups[{i}]"))?);
                }
            }
            Some(Value::List(_)) | Some(Value::Null) | None => {
                key_groups.push(read_group(items, "sops")?);
            }
            Some(_) => return Err(SopsError::meta("sops.key_groups", "is not a list")),
        }
        let shamir_threshold = match text("shamir_threshold") {
            Some(t) => t
                .parse()
                .map_err(|_| SopsError::meta("sops.shamir_threshold", "is not a number"))?,
            None => 0,
        };
        let mac_only_encrypted = match text("mac_only_encrypted") {
            Some(t) => parse_bool(&t)
                .ok_or_else(|| SopsError::meta("sops.mac_only_encrypted", "is not a boolean"))?,
            None => false,
        };
        let sels: Vec<(&str, Option<String>)> =
            SELECTOR_FIELDS.iter().map(|f| (*f, text(f))).collect();
        let refs: Vec<(&str, Option<&str>)> =
            sels.iter().map(|(f, v)| (*f, v.as_deref())).collect();
        let selector = if refs.iter().any(|(_, v)| v.is_some_and(|v| !v.is_empty())) {
            Some(Selector::from_options(&refs)?)
        } else {
            None
        };
        Ok(Metadata {
            key_groups,
            shamir_threshold,
            lastmodified,
            mac,
            selector,
            mac_only_encrypted,
            version,
        })
    }

    /// Writes the 3.13 alphabetical layout.
    pub fn to_value(&self) -> Value {
        let mut m: Vec<(String, Value)> = Vec::new();
        if self.key_groups.len() == 1 {
            for (kind, list) in group_lists(&self.key_groups[0], false) {
                m.push((kind, list));
            }
        } else {
            let groups = self
                .key_groups
                .iter()
                .map(|g| Value::Map(sorted(group_lists(g, true))))
                .collect();
            m.push(("key_groups".into(), Value::List(groups)));
            if self.shamir_threshold > 0 {
                m.push((
                    "shamir_threshold".into(),
                    Value::Int(self.shamir_threshold as i64),
                ));
            }
        }
        m.push(("lastmodified".into(), Value::str(&self.lastmodified)));
        m.push(("mac".into(), Value::str(&self.mac)));
        if self.mac_only_encrypted {
            m.push(("mac_only_encrypted".into(), Value::Bool(true)));
        }
        if let Some(sel) = &self.selector {
            let (f, v) = sel.field();
            m.push((f.into(), Value::str(v)));
        }
        m.push(("version".into(), Value::str(&self.version)));
        Value::Map(sorted(m))
    }
}

fn sorted(mut m: Vec<(String, Value)>) -> Vec<Item> {
    m.sort_by(|a, b| a.0.cmp(&b.0));
    m.into_iter().map(|(k, v)| Item::Pair(k, v)).collect()
}

fn sort_value(v: Value) -> Value {
    match v {
        Value::Map(items) => {
            let pairs = items
                .into_iter()
                .filter_map(|i| match i {
                    Item::Pair(k, v) => Some((k, sort_value(v))),
                    Item::Comment(_) => None,
                })
                .collect();
            Value::Map(sorted(pairs))
        }
        Value::List(l) => Value::List(l.into_iter().map(sort_value).collect()),
        other => other,
    }
}

/// The per-kind lists of one group; inside `key_groups` sops 3.13 always
/// writes `age` and `hc_vault`, even empty.
fn group_lists(group: &[KeyEntry], in_groups: bool) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for kind in KEY_KINDS {
        let entries: Vec<Value> = group
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| sort_value(Value::Map(e.fields.clone())))
            .collect();
        if !entries.is_empty() || (in_groups && (kind == "age" || kind == "hc_vault")) {
            out.push((kind.to_owned(), Value::List(entries)));
        }
    }
    out
}

fn read_group(items: &[Item], at: &str) -> Result<Vec<KeyEntry>, SopsError> {
    let mut group = Vec::new();
    for kind in KEY_KINDS {
        match get(items, kind) {
            None | Some(Value::Null) => {}
            Some(Value::List(list)) => {
                for (i, e) in list.iter().enumerate() {
                    let Value::Map(fields) = e else {
                        return Err(SopsError::meta(
                            &format!("{at}.{kind}[{i}]"),
                            "is not a map",
                        ));
                    };
                    group.push(KeyEntry {
                        kind: kind.into(),
                        fields: fields.clone(),
                    });
                }
            }
            Some(_) => return Err(SopsError::meta(&format!("{at}.{kind}"), "is not a list")),
        }
    }
    Ok(group)
}

/// Go `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Flattens a metadata map for dotenv/INI: `a__map_b`, `a__list_0__map_c`.
/// Values become strings; newlines stay real (the store escapes them).
pub fn flatten(v: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Value::Map(items) = v {
        for i in items {
            if let Item::Pair(k, v) = i {
                flatten_into(k.clone(), v, &mut out);
            }
        }
    }
    out
}

fn flatten_into(prefix: String, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Map(items) => {
            for i in items {
                if let Item::Pair(k, v) = i {
                    flatten_into(format!("{prefix}__map_{k}"), v, out);
                }
            }
        }
        Value::List(l) => {
            for (n, v) in l
                .iter()
                .filter(|v| !matches!(v, Value::Comment(_)))
                .enumerate()
            {
                flatten_into(format!("{prefix}__list_{n}"), v, out);
            }
        }
        Value::Null => {}
        other => out.push((prefix, scalar_text(other).unwrap_or_default())),
    }
}

enum Seg {
    Map(String),
    List(usize),
}

/// Rebuilds the metadata map from flattened pairs; gaps in list indices and
/// colliding keys are errors, as in sops.
pub fn unflatten(pairs: &[(String, String)]) -> Result<Value, SopsError> {
    let mut root = Value::Map(Vec::new());
    for (k, v) in pairs {
        let segs = parse_flat_key(k)?;
        insert(&mut root, &segs, Value::str(v.clone()), k)?;
    }
    Ok(root)
}

fn parse_flat_key(k: &str) -> Result<Vec<Seg>, SopsError> {
    let mut segs = Vec::new();
    let mut rest = k;
    // First segment: up to the first marker.
    let cut = |s: &str| {
        [s.find("__map_"), s.find("__list_")]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(s.len())
    };
    let first = cut(rest);
    segs.push(Seg::Map(rest[..first].to_owned()));
    rest = &rest[first..];
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("__map_") {
            let end = cut(r);
            segs.push(Seg::Map(r[..end].to_owned()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix("__list_") {
            let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            let n = r[..end]
                .parse()
                .map_err(|_| SopsError::meta(k, "bad list index in flattened metadata key"))?;
            segs.push(Seg::List(n));
            rest = &r[end..];
        } else {
            return Err(SopsError::meta(k, "malformed flattened metadata key"));
        }
    }
    Ok(segs)
}

fn insert(node: &mut Value, segs: &[Seg], leaf: Value, key: &str) -> Result<(), SopsError> {
    let Some((head, tail)) = segs.split_first() else {
        return Err(SopsError::meta(key, "empty key"));
    };
    let collide = || SopsError::meta(key, "conflicting flattened metadata keys");
    let make = |tail: &[Seg]| match tail.first() {
        Some(Seg::List(_)) => Value::List(Vec::new()),
        Some(Seg::Map(_)) => Value::Map(Vec::new()),
        None => Value::Null,
    };
    match (head, node) {
        (Seg::Map(name), Value::Map(items)) => {
            let pos = items
                .iter()
                .position(|i| matches!(i, Item::Pair(k, _) if k == name));
            let idx = match pos {
                Some(p) => p,
                None => {
                    items.push(Item::Pair(name.clone(), make(tail)));
                    items.len() - 1
                }
            };
            let Item::Pair(_, child) = &mut items[idx] else {
                return Err(collide());
            };
            if tail.is_empty() {
                if !matches!(child, Value::Null) {
                    return Err(collide());
                }
                *child = leaf;
                Ok(())
            } else {
                insert(child, tail, leaf, key)
            }
        }
        (Seg::List(n), Value::List(list)) => {
            if *n > list.len() {
                return Err(SopsError::meta(key, "gap in flattened list indices"));
            }
            if *n == list.len() {
                list.push(make(tail));
            }
            if tail.is_empty() {
                if !matches!(list[*n], Value::Null) {
                    return Err(collide());
                }
                list[*n] = leaf;
                Ok(())
            } else {
                insert(&mut list[*n], tail, leaf, key)
            }
        }
        _ => Err(collide()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_round_trip() {
        let md = Metadata {
            key_groups: vec![
                vec![KeyEntry {
                    kind: "age".into(),
                    fields: vec![
                        Item::Pair("recipient".into(), Value::str("age1x")),
                        Item::Pair("enc".into(), Value::str("A\nB\n")),
                    ],
                }],
                vec![KeyEntry {
                    kind: "pgp".into(),
                    fields: vec![Item::Pair("fp".into(), Value::str("ABC"))],
                }],
            ],
            shamir_threshold: 2,
            lastmodified: "2024-01-01T00:00:00Z".into(),
            mac: "ENC[x]".into(),
            selector: None,
            mac_only_encrypted: true,
            version: WRITTEN_VERSION.into(),
        };
        let flat = flatten(&md.to_value());
        assert!(
            flat.iter()
                .any(|(k, v)| k == "key_groups__list_0__map_age__list_0__map_enc" && v == "A\nB\n")
        );
        assert!(
            flat.iter()
                .any(|(k, v)| k == "shamir_threshold" && v == "2")
        );
        let back = Metadata::from_value(&unflatten(&flat).unwrap()).unwrap();
        assert_eq!(
            back.key_groups,
            md.key_groups
                .iter()
                .map(|g| g
                    .iter()
                    .map(|e| KeyEntry {
                        kind: e.kind.clone(),
                        fields: match sort_value(Value::Map(e.fields.clone())) {
                            Value::Map(f) => f,
                            _ => unreachable!(),
                        }
                    })
                    .collect::<Vec<_>>())
                .collect::<Vec<_>>()
        );
        assert_eq!(back.shamir_threshold, 2);
        assert!(back.mac_only_encrypted);
    }

    #[test]
    fn unflatten_rejects_gaps_and_collisions() {
        let p = |k: &str| (k.to_string(), "v".to_string());
        assert!(unflatten(&[p("age__list_1__map_enc")]).is_err());
        assert!(unflatten(&[p("a"), p("a__map_b")]).is_err());
    }
}
