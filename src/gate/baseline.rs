//! Baselines: known findings accepted for now, keyed by content.
//!
//! Design note: an entry is (path, rule, fingerprint) where the fingerprint
//! is an HMAC of rule + path + value under the baseline's own random salt —
//! no line numbers (edits elsewhere and merges do not churn it), no
//! timestamps, sorted, and never the value or an unsalted hash of it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Finding;

/// One accepted finding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry {
    /// File path as scanned.
    pub path: String,
    /// Rule id.
    pub rule: String,
    /// Keyed content fingerprint (see [`super::fingerprint`]).
    pub fingerprint: String,
}

/// A baseline file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    /// Format version.
    pub version: u32,
    /// Hex salt: the fingerprint key for runs using this baseline.
    pub salt: String,
    /// Accepted findings, sorted.
    pub entries: Vec<Entry>,
}

/// Why a baseline could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid baseline: {0}")]
pub struct BaselineError(String);

impl Baseline {
    /// An empty baseline with a fresh salt.
    pub fn new() -> Baseline {
        Baseline {
            version: 1,
            salt: new_salt(),
            entries: Vec::new(),
        }
    }

    /// Parses baseline JSON.
    pub fn parse(text: &str) -> Result<Baseline, BaselineError> {
        let b: Baseline = serde_json::from_str(text).map_err(|e| BaselineError(e.to_string()))?;
        if b.version != 1 {
            return Err(BaselineError(format!("unsupported version {}", b.version)));
        }
        if b.salt.len() < 16 {
            return Err(BaselineError("salt too short".to_owned()));
        }
        Ok(b)
    }

    /// The fingerprint key for a run that uses this baseline.
    pub fn key(&self) -> Vec<u8> {
        self.salt.as_bytes().to_vec()
    }

    /// Replaces the entries with `findings` (which must have been computed
    /// with [`Baseline::key`]); sorted and de-duplicated.
    pub fn set_findings(&mut self, findings: &[Finding]) {
        let mut e: Vec<Entry> = findings
            .iter()
            .map(|f| Entry {
                path: f.path.clone(),
                rule: f.rule.clone(),
                fingerprint: f.fingerprint.clone(),
            })
            .collect();
        e.sort();
        e.dedup();
        self.entries = e;
    }

    /// Whether a finding is accepted by this baseline.
    pub fn contains(&self, f: &Finding) -> bool {
        self.entries
            .binary_search_by(|e| {
                (e.path.as_str(), e.rule.as_str(), e.fingerprint.as_str()).cmp(&(
                    f.path.as_str(),
                    f.rule.as_str(),
                    f.fingerprint.as_str(),
                ))
            })
            .is_ok()
    }

    /// Pretty JSON with a trailing newline (diff-friendly).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

impl Default for Baseline {
    fn default() -> Self {
        Self::new()
    }
}

/// A salt unique to this baseline (not a key: it only has to differ between
/// repositories so precomputed tables of common passwords do not apply).
fn new_salt() -> String {
    let mut h = Sha256::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.update(now.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    let local = 0u8;
    h.update(format!("{:p}", &local).as_bytes());
    if let Ok(d) = std::env::current_dir() {
        h.update(d.to_string_lossy().as_bytes());
    }
    super::hex(&h.finalize()[..16])
}
