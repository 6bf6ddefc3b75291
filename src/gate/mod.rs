//! The plaintext gate: one rule engine that refuses plaintext secrets in CI
//! (`sealgate lint`), in the reconcile loop before apply, and at admission.
//!
//! Design note: structure first, patterns second. A file is parsed (YAML/JSON
//! with positions, dotenv, line-oriented text) so the engine knows the
//! Kubernetes kind, the field path and whether sops protects the document
//! before it decides; provider tokens, private keys and URL passwords are
//! then caught anywhere by prefix-anchored detectors. Anything that does not
//! parse degrades to line scanning plus a `scan/unparseable` note — never to
//! "no findings". The module knows nothing of Kubernetes clients, Git or the
//! filesystem walk: inputs are bytes or an already-parsed object, output is
//! a list of [`Finding`]s that carry a redacted preview and a keyed
//! fingerprint, never the value.

pub mod baseline;
mod classify;
pub mod config;
mod detect;
mod k8s;
pub mod rules;
mod sops;
mod text;
pub mod yaml;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;

use hmac::{Hmac, Mac};
use regex::Regex;
use serde::Serialize;
use sha2::Sha256;

pub use classify::{KeyClass, classify_key, entropy, preview};
pub use sops::SopsRules;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Reported, does not fail the gate.
    Warning,
    /// Refuses: exit 1 in CI, apply refused in the reconcile loop, denied at
    /// admission.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// The Kubernetes object a finding sits in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ObjectRef {
    /// `apiVersion`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.namespace`, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `metadata.name`, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        match (&self.namespace, &self.name) {
            (Some(ns), Some(n)) => write!(f, " {ns}/{n}"),
            (None, Some(n)) => write!(f, " {n}"),
            _ => Ok(()),
        }
    }
}

/// One reported secret. Holds a redacted preview and a keyed fingerprint,
/// never the value, so findings can be logged, serialised and sent to CI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Rule id (see [`rules::RULES`]).
    pub rule: String,
    /// Effective severity (after configuration).
    pub severity: Severity,
    /// File path as given (or `<object>` for [`check_object`]).
    pub path: String,
    /// 1-based line; 0 when the input had no text.
    pub line: usize,
    /// 1-based column; 0 when the input had no text.
    pub column: usize,
    /// Kubernetes object identity, for manifests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectRef>,
    /// Field path inside the document (`stringData.password`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What was found, without the value.
    pub message: String,
    /// First four characters, `…` and the length (nothing for short values).
    pub preview: String,
    /// Keyed hash of rule + path + value (hex); stable across edits
    /// elsewhere in the file, used by baselines and SARIF.
    pub fingerprint: String,
}

/// A non-finding remark about a file: it did not parse and was line-scanned,
/// it was binary, a config problem. Kept apart from findings so it never
/// counts as a detection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// `scan/unparseable`, `scan/binary`, …
    pub kind: &'static str,
    /// File.
    pub path: String,
    /// 1-based line, 0 when not tied to a line.
    pub line: usize,
    /// Explanation (never content).
    pub message: String,
}

/// What the engine found in one input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Findings, sorted by line.
    pub findings: Vec<Finding>,
    /// Remarks.
    pub notes: Vec<Note>,
}

/// Knobs for one run, shared by every file.
#[derive(Debug, Clone)]
pub struct Options {
    /// Key for fingerprints. A baseline carries its own salt so that its
    /// entries are not unsalted hashes of (possibly short) passwords.
    pub fingerprint_key: Vec<u8>,
    /// Per-rule overrides: `None` switches a rule off.
    pub rule_levels: HashMap<String, Option<Severity>>,
    /// Values matching any of these are accepted (config allowlist).
    pub allow_values: Vec<Regex>,
    /// sops `creation_rules` in force for this file, if a `.sops.yaml` was
    /// found; used to demand encryption of matching files.
    pub sops_rules: Option<SopsRules>,
    /// Directory of the file, to resolve kustomize `secretGenerator` file
    /// references; `None` when scanning an object or stdin.
    pub base_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            fingerprint_key: DEFAULT_FINGERPRINT_KEY.to_vec(),
            rule_levels: HashMap::new(),
            allow_values: Vec::new(),
            sops_rules: None,
            base_dir: None,
        }
    }
}

/// Fingerprint key when no baseline salt is in use (SARIF fingerprints).
pub const DEFAULT_FINGERPRINT_KEY: &[u8] = b"sealgate/fingerprint/v1";

/// Scans one file. Never fails: a file that does not parse is line-scanned
/// and a note says so.
///
/// ```
/// let r = sealgate::gate::check_file(
///     "secret.yaml",
///     b"apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData:\n  password: Winter-river-Orange50\n",
///     &Default::default(),
/// );
/// assert_eq!(r.findings[0].rule, "k8s/secret-plaintext");
/// assert_eq!(r.findings[0].field.as_deref(), Some("stringData.password"));
/// ```
pub fn check_file(path: &str, bytes: &[u8], opts: &Options) -> Report {
    let mut ctx = Ctx::new(path, opts);
    let text = String::from_utf8_lossy(bytes);
    if matches!(text, std::borrow::Cow::Owned(_)) {
        ctx.notes.push(Note {
            kind: "scan/invalid-utf8",
            path: path.to_owned(),
            line: 0,
            message: "invalid UTF-8 replaced; scanned anyway".to_owned(),
        });
    }
    let mut kind = FileKind::of(path, &text);
    if kind == FileKind::Other && is_binary(bytes) {
        // Binary blobs (images, archives, keystores) get the context-free
        // detectors only: a private key or token inside is still reported,
        // but no key=value parsing of noise.
        ctx.notes.push(Note {
            kind: "scan/binary",
            path: path.to_owned(),
            line: 0,
            message: "binary content: scanned for token formats and private keys only".to_owned(),
        });
        kind = FileKind::Docs;
    }
    match kind {
        // Nothing a structural rule could report (no credential-like word,
        // no detector candidate, no sops block, no base64 PEM, no AWS key id):
        // skip parsing, but still apply the file-name sops rules.
        FileKind::Yaml if !needs_structure(&text) => sops::demand_encryption(&mut ctx, false),
        FileKind::Yaml => match yaml::parse_documents(&text) {
            Ok(docs) => k8s::scan_documents(&mut ctx, &docs, &text),
            Err(e) => {
                ctx.notes.push(Note {
                    kind: "scan/unparseable",
                    path: path.to_owned(),
                    line: e.line,
                    message: format!("not valid YAML/JSON ({e}); scanned line by line"),
                });
                text::scan_fallback(&mut ctx, &text);
            }
        },
        FileKind::Dotenv => text::scan_file(&mut ctx, &text, text::Mode::Dotenv),
        FileKind::Docs => text::scan_file(&mut ctx, &text, text::Mode::Docs),
        FileKind::Example => text::scan_file(&mut ctx, &text, text::Mode::Example),
        FileKind::Other => text::scan_file(&mut ctx, &text, text::Mode::Generic),
    }
    ctx.finish(Some(&text))
}

/// Scans an already-parsed Kubernetes object (the admission webhook and the
/// reconcile loop call this). Positions are 0; the field path locates.
pub fn check_object(object: &serde_json::Value, opts: &Options) -> Report {
    let mut ctx = Ctx::new("<object>", opts);
    let node = yaml::Node::from_json(object);
    k8s::scan_documents(&mut ctx, std::slice::from_ref(&node), "");
    ctx.finish(None)
}

fn needs_structure(text: &str) -> bool {
    text::CRED_HINT.is_match(text)
        || detect::may_contain_secret(text)
        || text.contains("sops")
        || text.contains("LS0tLS1")
        || text.contains("AKIA")
        || text.contains("ASIA")
}

/// Many NUL bytes early on. One stray NUL in a text file must not silence
/// it, so a single one is not enough.
pub fn is_binary(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(8192)];
    let nuls = head.iter().filter(|b| **b == 0).count();
    nuls > (head.len() / 100).max(1)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Yaml,
    Dotenv,
    Docs,
    Example,
    Other,
}

impl FileKind {
    fn of(path: &str, text: &str) -> FileKind {
        let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
        let lower = name.to_ascii_lowercase();
        let example = [".example", ".sample", ".template", ".dist", ".tmpl"]
            .iter()
            .any(|s| lower.ends_with(s) || lower.contains(&format!("{s}.")));
        if example {
            // Templates for humans (`.env.example`, `values.sample.yaml`):
            // detectors only; their key=value pairs are placeholders.
            return FileKind::Example;
        }
        if lower == ".env" || lower.starts_with(".env.") || lower.ends_with(".env") {
            return FileKind::Dotenv;
        }
        if lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json") {
            return FileKind::Yaml;
        }
        if lower.ends_with(".md") || lower.ends_with(".rst") || lower.ends_with(".adoc") {
            return FileKind::Docs;
        }
        if !lower.contains('.')
            && (text.starts_with("apiVersion:") || text.contains("\napiVersion:"))
        {
            return FileKind::Yaml;
        }
        // JSON without a .json name (`.dockerconfigjson`, `.eslintrc`): parse
        // it; if it is not JSON after all, the line fallback still runs.
        let ext = lower.rsplit_once('.').map_or("", |(_, e)| e);
        let unknown_ext = ext.is_empty() || lower.starts_with('.') && !lower[1..].contains('.');
        if unknown_ext && text.trim_start().starts_with('{') {
            return FileKind::Yaml;
        }
        FileKind::Other
    }
}

/// Where a value sits: used to build findings.
#[derive(Debug, Clone, Default)]
pub(crate) struct Site {
    pub line: usize,
    pub col: usize,
    pub object: Option<ObjectRef>,
    pub field: Option<String>,
}

/// Per-file state: collects findings, de-duplicates, applies allowlists.
pub(crate) struct Ctx<'a> {
    pub path: &'a str,
    pub opts: &'a Options,
    findings: Vec<Finding>,
    notes: Vec<Note>,
    seen: HashSet<(usize, String)>,
}

impl<'a> Ctx<'a> {
    fn new(path: &'a str, opts: &'a Options) -> Self {
        Self {
            path,
            opts,
            findings: Vec::new(),
            notes: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// Records a finding for `secret` unless the config allows the value or
    /// the same value was already reported on this line.
    pub fn emit(&mut self, rule: &'static str, site: &Site, secret: &str, message: String) {
        let secret = secret.trim();
        if self.opts.allow_values.iter().any(|r| r.is_match(secret)) {
            return;
        }
        let severity = match self.opts.rule_levels.get(rule) {
            Some(None) => return,
            Some(Some(s)) => *s,
            None => rules::rule(rule).map_or(Severity::Error, |r| r.severity),
        };
        let fingerprint = fingerprint(&self.opts.fingerprint_key, rule, self.path, secret);
        let value_key = fingerprint_value(&self.opts.fingerprint_key, secret);
        if !self.seen.insert((site.line, value_key)) {
            return;
        }
        self.findings.push(Finding {
            rule: rule.to_owned(),
            severity,
            path: self.path.to_owned(),
            line: site.line,
            column: site.col,
            object: site.object.clone(),
            field: site.field.clone(),
            message,
            preview: preview(secret),
            fingerprint,
        });
    }

    fn finish(mut self, text: Option<&str>) -> Report {
        if let Some(text) = text.filter(|_| !self.findings.is_empty()) {
            let lines: Vec<&str> = text.lines().collect();
            self.findings
                .retain(|f| !inline_allowed(&lines, f.line, &f.rule));
        }
        self.findings
            .sort_by(|a, b| (a.line, a.column, &a.rule).cmp(&(b.line, b.column, &b.rule)));
        Report {
            findings: self.findings,
            notes: self.notes,
        }
    }
}

/// `sealgate:allow RULE reason` on the finding's line or the line above.
/// A reason is required; `RULE` may end in `*` (`token/*`).
fn inline_allowed(lines: &[&str], line: usize, rule: &str) -> bool {
    let check = |l: &str| {
        let Some(i) = l.find("sealgate:allow") else {
            return false;
        };
        let mut words = l[i + "sealgate:allow".len()..].split_whitespace();
        let Some(r) = words.next() else { return false };
        let has_reason = words.next().is_some();
        let matches = r == rule || r.strip_suffix('*').is_some_and(|p| rule.starts_with(p));
        matches && has_reason
    };
    (line >= 1 && lines.get(line - 1).is_some_and(|l| check(l)))
        || (line >= 2 && lines.get(line - 2).is_some_and(|l| check(l)))
}

type HmacSha256 = Hmac<Sha256>;

/// Keyed content fingerprint: HMAC-SHA-256(key, rule ‖ path ‖ value),
/// truncated to 128 bits. No line numbers, so edits elsewhere in a file do
/// not change it.
pub fn fingerprint(key: &[u8], rule: &str, path: &str, value: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    for part in [rule.as_bytes(), path.as_bytes(), value.as_bytes()] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    hex(&mac.finalize().into_bytes()[..16])
}

fn fingerprint_value(key: &[u8], value: &str) -> String {
    fingerprint(key, "", "", value)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod testdata;
#[cfg(test)]
mod tests;
