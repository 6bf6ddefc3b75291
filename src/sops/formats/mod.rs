//! Stores: parse and emit each file format, with the `sops` block split off.
//!
//! Design note: sops picks a store by extension (`.yaml/.yml`, `.json`,
//! `.env`, `.ini`, anything else binary) or by `--input-type`; the format is
//! not recorded in the file. Each store turns bytes into ordered
//! [`Branch`]es and back; this module adds the per-format placement of the
//! metadata (a `sops` key, `sops_*` dotenv lines, an INI `[sops]` section,
//! a JSON envelope for binary).

pub mod dotenv;
pub mod ini;
pub mod json;
pub mod yaml;

use std::path::Path;

use super::error::SopsError;
use super::metadata::{flatten, unflatten};
use super::tree::{Branch, Item, Value};
use crate::secret::{ExposeSecret, SecretBytes};

/// A file format (sops "store").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML (multi-document aware).
    Yaml,
    /// JSON.
    Json,
    /// dotenv (`KEY=value` lines).
    Dotenv,
    /// INI.
    Ini,
    /// Any bytes, stored under `data` in a JSON envelope.
    Binary,
}

impl Format {
    /// The sops choice by extension.
    pub fn from_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml") | Some("yml") => Format::Yaml,
            Some("json") => Format::Json,
            Some("env") => Format::Dotenv,
            Some("ini") => Format::Ini,
            _ => Format::Binary,
        }
    }

    /// Parses `--input-type`/`--output-type` names.
    pub fn from_name(name: &str) -> Option<Format> {
        Some(match name {
            "yaml" | "yml" => Format::Yaml,
            "json" => Format::Json,
            "dotenv" | "env" => Format::Dotenv,
            "ini" => Format::Ini,
            "binary" => Format::Binary,
            _ => return None,
        })
    }

    /// Lowercase name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Yaml => "yaml",
            Format::Json => "json",
            Format::Dotenv => "dotenv",
            Format::Ini => "ini",
            Format::Binary => "binary",
        }
    }
}

/// Text input as UTF-8, with a located error otherwise. A UTF-8 BOM is
/// skipped (editors on Windows add one).
pub fn utf8(input: &[u8]) -> Result<&str, SopsError> {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    std::str::from_utf8(input).map_err(|e| SopsError::NotUtf8 {
        offset: e.valid_up_to(),
    })
}

/// Parses a plaintext file into branches.
pub fn parse_plain(format: Format, input: &[u8]) -> Result<Vec<Branch>, SopsError> {
    let branches = match format {
        Format::Binary => {
            return Ok(vec![vec![Item::Pair(
                "data".into(),
                Value::Bytes(SecretBytes::from(input)),
            )]]);
        }
        Format::Yaml => yaml::parse(utf8(input)?)?,
        Format::Json => vec![json::parse(utf8(input)?)?],
        Format::Dotenv => vec![dotenv::parse(utf8(input)?)?],
        Format::Ini => vec![ini::parse(utf8(input)?)?],
    };
    Ok(branches)
}

/// Whether parsed plaintext already carries sops metadata.
pub fn has_metadata(format: Format, branches: &[Branch]) -> bool {
    let Some(first) = branches.first() else {
        return false;
    };
    first.iter().any(|i| match i {
        Item::Pair(k, _) => match format {
            Format::Dotenv => k.starts_with("sops_"),
            _ => k == "sops",
        },
        Item::Comment(_) => false,
    })
}

/// Emits plaintext branches.
pub fn emit_plain(format: Format, branches: &[Branch]) -> Result<Vec<u8>, SopsError> {
    match format {
        Format::Binary => {
            let data = branches
                .first()
                .and_then(|b| super::tree::get(b, "data"))
                .ok_or_else(|| SopsError::Unrepresentable {
                    format: "binary",
                    message: "no top-level `data` key to write as binary output".into(),
                })?;
            match data {
                Value::Bytes(b) => Ok(b.expose_secret().to_vec()),
                Value::Str(s) => Ok(s.expose_secret().as_bytes().to_vec()),
                _ => Err(SopsError::Unrepresentable {
                    format: "binary",
                    message: "`data` is not a string".into(),
                }),
            }
        }
        Format::Yaml => Ok(yaml::emit(branches)?.into_bytes()),
        Format::Json => Ok(json::emit(single(branches, "json")?)?.into_bytes()),
        Format::Dotenv => Ok(dotenv::emit(single(branches, "dotenv")?)?.into_bytes()),
        Format::Ini => Ok(ini::emit(single(branches, "ini")?, None)?.into_bytes()),
    }
}

/// Emits one extracted value (`decrypt --extract`): maps as a document,
/// lists as a top-level sequence/array, scalars as their raw text.
pub fn emit_fragment(format: Format, v: &Value) -> Result<Vec<u8>, SopsError> {
    match v {
        Value::Map(items) => emit_plain(format, std::slice::from_ref(items)),
        Value::List(l) => match format {
            Format::Json => Ok(json::emit_fragment(v)?.into_bytes()),
            _ => Ok(yaml::emit_list_document(l).into_bytes()),
        },
        scalar => Ok(scalar
            .to_plain_bytes()
            .map(|b| b.expose_secret().to_vec())
            .unwrap_or_default()),
    }
}

fn single<'a>(branches: &'a [Branch], format: &'static str) -> Result<&'a Branch, SopsError> {
    match branches {
        [one] => Ok(one),
        [] => Ok(&EMPTY),
        _ => Err(SopsError::Unrepresentable {
            format,
            message: "multi-document YAML can only be written as YAML".into(),
        }),
    }
}

static EMPTY: Branch = Vec::new();

/// Parses an encrypted file: the branches without metadata, plus the
/// metadata map (`None` when the file has none).
pub fn parse_encrypted(
    format: Format,
    input: &[u8],
) -> Result<(Vec<Branch>, Option<Value>), SopsError> {
    let mut branches = match format {
        Format::Binary | Format::Json => vec![json::parse(utf8(input)?)?],
        Format::Yaml => yaml::parse(utf8(input)?)?,
        Format::Dotenv => vec![dotenv::parse(utf8(input)?)?],
        Format::Ini => vec![ini::parse(utf8(input)?)?],
    };
    let meta = match format {
        Format::Dotenv => {
            let b = branches.first_mut().map(std::mem::take).unwrap_or_default();
            let (meta, data): (Vec<Item>, Vec<Item>) = b
                .into_iter()
                .partition(|i| matches!(i, Item::Pair(k, _) if k.starts_with("sops_")));
            branches = vec![data];
            if meta.is_empty() {
                None
            } else {
                let pairs: Vec<(String, String)> = meta
                    .into_iter()
                    .filter_map(|i| match i {
                        Item::Pair(k, Value::Str(v)) => {
                            Some((k["sops_".len()..].to_owned(), v.expose_secret().to_owned()))
                        }
                        _ => None,
                    })
                    .collect();
                Some(unflatten(&pairs)?)
            }
        }
        Format::Ini => {
            let b = branches.first_mut().map(std::mem::take).unwrap_or_default();
            let (meta, data): (Vec<Item>, Vec<Item>) = b
                .into_iter()
                .partition(|i| matches!(i, Item::Pair(k, _) if k == "sops"));
            branches = vec![data];
            match meta.into_iter().next() {
                Some(Item::Pair(_, Value::Map(items))) => {
                    let pairs: Vec<(String, String)> = items
                        .into_iter()
                        .filter_map(|i| match i {
                            Item::Pair(k, Value::Str(v)) => {
                                Some((k, v.expose_secret().replace("\\n", "\n")))
                            }
                            _ => None,
                        })
                        .collect();
                    Some(unflatten(&pairs)?)
                }
                _ => None,
            }
        }
        _ => {
            // Only the first document's `sops` map is used; it is removed
            // from every document (it was repeated on write).
            let mut found = None;
            for (n, b) in branches.iter_mut().enumerate() {
                if let Some(pos) = b
                    .iter()
                    .position(|i| matches!(i, Item::Pair(k, _) if k == "sops"))
                    && let Item::Pair(_, v) = b.remove(pos)
                    && n == 0
                {
                    found = Some(v);
                }
            }
            found
        }
    };
    Ok((branches, meta))
}

/// Emits an encrypted file with its metadata block.
pub fn emit_encrypted(
    format: Format,
    branches: &[Branch],
    meta: &Value,
) -> Result<Vec<u8>, SopsError> {
    match format {
        Format::Yaml => {
            let docs: Vec<Branch> = if branches.is_empty() {
                vec![Vec::new()]
            } else {
                branches.to_vec()
            };
            let docs: Vec<Branch> = docs
                .into_iter()
                .map(|mut b| {
                    b.push(Item::Pair("sops".into(), meta.clone()));
                    b
                })
                .collect();
            Ok(yaml::emit(&docs)?.into_bytes())
        }
        Format::Json | Format::Binary => {
            let mut b = single(branches, "json")?.clone();
            if format == Format::Binary {
                // The data leaf is already ciphertext; binary uses JSON.
                b.retain(|i| matches!(i, Item::Pair(k, _) if k == "data"));
            }
            b.push(Item::Pair("sops".into(), meta.clone()));
            Ok(json::emit(&b)?.into_bytes())
        }
        Format::Dotenv => {
            let mut b = single(branches, "dotenv")?.clone();
            for (k, v) in flatten(meta) {
                b.push(Item::Pair(format!("sops_{k}"), Value::str(v)));
            }
            Ok(dotenv::emit(&b)?.into_bytes())
        }
        Format::Ini => {
            let flat = flatten(meta);
            Ok(ini::emit(single(branches, "ini")?, Some(&flat))?.into_bytes())
        }
    }
}
