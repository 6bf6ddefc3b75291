//! The `GitSync` resource: which Git revision to mirror into the cluster,
//! and the guards around it.
//!
//! Design note: the same type serves the controller (a namespaced custom
//! resource) and `sealgate sync --once -f sync.yaml` (a file), so CI and
//! the operator read one schema. Like the controller's CRDs, every optional
//! field is an `Option` or a list skipped when empty and the schema carries
//! no `default`: the apiserver never writes a field the user did not commit,
//! so the GitSync itself never shows as drift in another GitOps tool.
//! Defaults live in the `effective_*` helpers below.

use std::time::Duration;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::controller::api::Condition;

/// Where the manifests come from.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSource {
    /// Repository URL: `https://…`, `ssh://…` or `file://…`.
    pub url: String,
    /// What to follow: exactly one of branch, tag or commit.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<GitRef>,
    /// Secret (in the GitSync's namespace) with `username`+`password` or
    /// `bearerToken` for https, or `identity` (private key) and
    /// `known_hosts` for ssh (Flux's key names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalRef>,
    /// How often the ref is resolved (Go duration; `1m` when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<String>,
}

/// A branch, tag or commit. A commit may be combined with a branch (for
/// display); branch and tag are exclusive.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct GitRef {
    /// Branch name (`main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Tag name (`v1.2.3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Full 40-hex commit id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// A reference to an object by name in the GitSync's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalRef {
    /// Object name.
    pub name: String,
}

/// How sops-encrypted Secrets in the revision are decrypted.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Decryption {
    /// Secret with `*.agekey` entries (Flux's format), in the GitSync's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_key_secret_ref: Option<LocalRef>,
}

/// What happens when the gate finds a plaintext secret.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PlaintextPolicy {
    /// Refuse the whole revision (the default).
    Deny,
    /// Apply, but report the findings in status, events and audit.
    Warn,
}

/// A cluster-side exemption from the plaintext gate. It lives in the
/// GitSync (owned by the cluster operator), never in Git, so a commit
/// cannot exempt itself.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretAllow {
    /// Object kind.
    pub kind: String,
    /// Object namespace (any when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
    /// Only this gate rule (any rule when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Why the exemption exists (required; shown in audit records).
    pub reason: String,
}

/// Plaintext-secret handling.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretsPolicy {
    /// `Deny` (default) or `Warn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaintext_policy: Option<PlaintextPolicy>,
    /// Exemptions, each with a reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<SecretAllow>,
}

/// Drift handling mode.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DriftMode {
    /// Revert out-of-band changes (the default).
    Correct,
    /// Only report them (`Drifted` condition, events, audit).
    Detect,
}

/// Which objects an ignore rule applies to; every set field must match.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Fields left alone in diffs and drift checks (e.g. `/spec/replicas` of a
/// Deployment scaled by an autoscaler).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftIgnore {
    /// JSON pointers (RFC 6901).
    pub paths: Vec<String>,
    /// Objects the rule applies to (all when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

/// Drift handling.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct DriftPolicy {
    /// `Correct` (default) or `Detect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<DriftMode>,
    /// Ignored fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<DriftIgnore>,
}

/// Garbage collection of objects removed from Git.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct PrunePolicy {
    /// Delete objects that left the revision (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Refuse a prune deleting more than this share of the inventory
    /// (0–1; `0.5` when omitted) unless acknowledged with the annotation
    /// `sealgate.dev/prune-approved: <commit>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delete_ratio: Option<f64>,
    /// Kinds never deleted (Namespace, CustomResourceDefinition,
    /// PersistentVolumeClaim and PersistentVolume when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protect_kinds: Option<Vec<String>>,
}

/// Readiness checks after apply.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct HealthPolicy {
    /// Wait for applied objects to become healthy (kstatus rules) within `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<bool>,
}

/// A Git revision mirrored into the cluster, refusing plaintext secrets.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "sealgate.dev",
    version = "v1alpha1",
    kind = "GitSync",
    doc = "Manifests from a Git revision, applied only when the whole revision carries no plaintext secret.",
    namespaced,
    status = "GitSyncStatus",
    category = "sealgate",
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.lastAppliedRevision"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GitSyncSpec {
    /// The repository and ref.
    pub source: GitSource,
    /// Directory inside the repository (the root when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Full reconcile period including the drift check (Go duration; `10m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Delay after a transient failure (Go duration; `2m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_interval: Option<String>,
    /// Budget for fetch, apply and health (Go duration; `5m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Stop reconciling (status keeps its last value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// ServiceAccount (in the GitSync's namespace) impersonated for
    /// dry-run, apply and prune.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// sops decryption keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decryption: Option<Decryption>,
    /// Plaintext-secret policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<SecretsPolicy>,
    /// Drift policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftPolicy>,
    /// Prune policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<PrunePolicy>,
    /// Health checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthPolicy>,
}

/// One object sealgate applied for this GitSync (Flux's id format:
/// `<namespace>_<name>_<group>_<kind>`, plus the version to address it).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryEntry {
    /// `<namespace>_<name>_<group>_<kind>`.
    pub id: String,
    /// API version it was applied with.
    pub v: String,
}

/// One past reconcile of a revision.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// Commit id.
    pub revision: String,
    /// `Applied`, or the failure reason.
    pub result: String,
    /// When it finished (RFC 3339).
    pub finished_at: String,
    /// Objects in the revision.
    pub objects: i64,
    /// Objects created or updated.
    pub changed: i64,
    /// Objects deleted.
    pub pruned: i64,
}

/// What the loop last did.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSyncStatus {
    /// `Ready`, `Reconciling`, `Stalled`, `SecretsSafe`, `Drifted`, `Healthy`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Generation the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Commit last tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_revision: Option<String>,
    /// Commit last applied in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    /// When the last full reconcile (with drift check) finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconcile_time: Option<String>,
    /// Objects applied from the last applied revision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory: Vec<InventoryEntry>,
    /// Last 10 reconciles of new revisions, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
}

/// Every field of [`GitSyncStatus`] as serialized. A status write sends
/// `null` for each one the new status leaves out, so a JSON merge patch
/// clears stale values (an emptied inventory, a dropped condition list)
/// instead of keeping them.
pub const STATUS_FIELDS: [&str; 7] = [
    "conditions",
    "observedGeneration",
    "lastAttemptedRevision",
    "lastAppliedRevision",
    "lastReconcileTime",
    "inventory",
    "history",
];

impl GitSyncStatus {
    /// The status as a merge-patch body that replaces the whole status:
    /// fields absent from `self` are sent as `null` (deleted).
    pub fn replacing_patch(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_else(|_| serde_json::json!({}));
        if let Some(m) = v.as_object_mut() {
            for k in STATUS_FIELDS {
                m.entry(k).or_insert(serde_json::Value::Null);
            }
        }
        serde_json::json!({ "status": v })
    }
}

/// Why a GitSync spec or file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// File path.
        path: String,
        /// I/O error.
        source: std::io::Error,
    },
    /// The file is not a GitSync.
    #[error("{path}: not a sealgate.dev/v1alpha1 GitSync: {reason}")]
    Parse {
        /// File path.
        path: String,
        /// Parser message.
        reason: String,
    },
    /// A field has a value the loop cannot use.
    #[error("spec.{field}: {reason}")]
    Invalid {
        /// Field path.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl SpecError {
    /// One CamelCase word for status reasons and metric labels.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Read { .. } => "ReadFailed",
            Self::Parse { .. } | Self::Invalid { .. } => "InvalidSpec",
        }
    }
}

/// Loads a GitSync from a YAML or JSON file (`sealgate sync --once -f`).
pub fn load_file(path: &std::path::Path) -> Result<GitSync, SpecError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: shown.clone(),
        source,
    })?;
    let obj: GitSync = serde_saphyr::from_str(&text).map_err(|e| SpecError::Parse {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let api_version = text_field(&text, "apiVersion");
    let kind = text_field(&text, "kind");
    if kind.as_deref() != Some("GitSync") || api_version.as_deref() != Some("sealgate.dev/v1alpha1")
    {
        return Err(SpecError::Parse {
            path: shown,
            reason: "apiVersion must be sealgate.dev/v1alpha1 and kind GitSync".into(),
        });
    }
    obj.spec.validate()?;
    Ok(obj)
}

/// `apiVersion`/`kind` checked separately: the derived type does not
/// deserialize them.
fn text_field(text: &str, key: &str) -> Option<String> {
    let v: serde_json::Value = serde_saphyr::from_str(text).ok()?;
    v.get(key)?.as_str().map(str::to_owned)
}

impl GitSyncSpec {
    /// Checks what the schema cannot: ref exclusivity, durations, ratio.
    pub fn validate(&self) -> Result<(), SpecError> {
        let r = self.source.git_ref.clone().unwrap_or_default();
        if r.branch.is_some() && r.tag.is_some() {
            return Err(SpecError::Invalid {
                field: "source.ref",
                reason: "set branch or tag, not both".into(),
            });
        }
        if let Some(c) = &r.commit
            && !(c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(SpecError::Invalid {
                field: "source.ref.commit",
                reason: "must be a full 40-hex commit id".into(),
            });
        }
        for (field, v) in [
            ("interval", &self.interval),
            ("retryInterval", &self.retry_interval),
            ("timeout", &self.timeout),
            ("source.pollInterval", &self.source.poll_interval),
        ] {
            if let Some(v) = v {
                let d = parse_duration(v).map_err(|reason| SpecError::Invalid { field, reason })?;
                // A zero budget would fail every apply; a zero interval
                // would spin.
                if d.is_zero() {
                    return Err(SpecError::Invalid {
                        field,
                        reason: format!("{v:?} must be longer than zero"),
                    });
                }
            }
        }
        if let Some(r) = self.prune.as_ref().and_then(|p| p.max_delete_ratio)
            && !(0.0..=1.0).contains(&r)
        {
            return Err(SpecError::Invalid {
                field: "prune.maxDeleteRatio",
                reason: "must be between 0 and 1".into(),
            });
        }
        for a in self.secrets.iter().flat_map(|s| &s.allow) {
            if a.reason.trim().is_empty() {
                return Err(SpecError::Invalid {
                    field: "secrets.allow",
                    reason: format!("exemption for {} {} has no reason", a.kind, a.name),
                });
            }
        }
        for i in self.drift.iter().flat_map(|d| &d.ignore) {
            for p in &i.paths {
                if !p.is_empty() && !p.starts_with('/') {
                    return Err(SpecError::Invalid {
                        field: "drift.ignore",
                        reason: format!("{p:?} is not a JSON pointer (must start with '/')"),
                    });
                }
            }
        }
        Ok(())
    }

    /// The reconcile period.
    pub fn effective_interval(&self) -> Duration {
        dur_or(&self.interval, 600)
    }
    /// The delay after a transient failure.
    pub fn effective_retry_interval(&self) -> Duration {
        dur_or(&self.retry_interval, 120)
    }
    /// The budget for one reconcile.
    pub fn effective_timeout(&self) -> Duration {
        dur_or(&self.timeout, 300)
    }
    /// How often the ref is resolved.
    pub fn effective_poll_interval(&self) -> Duration {
        dur_or(&self.source.poll_interval, 60)
    }
    /// Plaintext policy (Deny unless set).
    pub fn effective_plaintext_policy(&self) -> PlaintextPolicy {
        self.secrets
            .as_ref()
            .and_then(|s| s.plaintext_policy)
            .unwrap_or(PlaintextPolicy::Deny)
    }
    /// Drift mode (Correct unless set).
    pub fn effective_drift_mode(&self) -> DriftMode {
        self.drift
            .as_ref()
            .and_then(|d| d.mode)
            .unwrap_or(DriftMode::Correct)
    }
    /// Whether prune runs (true unless disabled).
    pub fn effective_prune(&self) -> bool {
        self.prune.as_ref().and_then(|p| p.enabled).unwrap_or(true)
    }
    /// Largest share of the inventory one prune may delete without ack.
    pub fn effective_max_delete_ratio(&self) -> f64 {
        self.prune
            .as_ref()
            .and_then(|p| p.max_delete_ratio)
            .unwrap_or(0.5)
    }
    /// Kinds never pruned.
    pub fn effective_protect_kinds(&self) -> Vec<String> {
        self.prune
            .as_ref()
            .and_then(|p| p.protect_kinds.clone())
            .unwrap_or_else(|| {
                [
                    "Namespace",
                    "CustomResourceDefinition",
                    "PersistentVolumeClaim",
                    "PersistentVolume",
                ]
                .map(String::from)
                .to_vec()
            })
    }
    /// Whether to wait for health.
    pub fn effective_health_wait(&self) -> bool {
        self.health.as_ref().and_then(|h| h.wait).unwrap_or(false)
    }
}

fn dur_or(v: &Option<String>, default_secs: u64) -> Duration {
    v.as_deref()
        .and_then(|s| parse_duration(s).ok())
        .unwrap_or(Duration::from_secs(default_secs))
}

/// Parses a Go-style duration (`90s`, `1m30s`, `1h`, `500ms`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration like 30s, 5m or 1h30m");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(n * secs).map_err(|_| bad())?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("m5").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn status_patch_names_every_field_and_nulls_the_absent_ones() {
        let full = GitSyncStatus {
            conditions: vec![crate::controller::status::ready(true, "R", "m", Some(1))],
            observed_generation: Some(1),
            last_attempted_revision: Some("a".into()),
            last_applied_revision: Some("a".into()),
            last_reconcile_time: Some("t".into()),
            inventory: vec![InventoryEntry {
                id: "i".into(),
                v: "v1".into(),
            }],
            history: vec![HistoryEntry {
                revision: "a".into(),
                result: "Applied".into(),
                finished_at: "t".into(),
                objects: 1,
                changed: 1,
                pruned: 0,
            }],
        };
        let v = serde_json::to_value(&full).expect("json");
        let mut keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        let mut want = STATUS_FIELDS.to_vec();
        keys.sort_unstable();
        want.sort_unstable();
        assert_eq!(keys, want, "STATUS_FIELDS must list every status field");
        let empty = GitSyncStatus::default().replacing_patch();
        for k in STATUS_FIELDS {
            assert!(empty["status"][k].is_null(), "{k}");
            assert!(empty["status"].get(k).is_some(), "{k} sent as null");
        }
    }

    #[test]
    fn file_loads_and_is_validated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("sync.yaml");
        std::fs::write(
            &p,
            "apiVersion: sealgate.dev/v1alpha1\nkind: GitSync\nmetadata: {name: apps, namespace: default}\n\
             spec:\n  source:\n    url: file:///tmp/repo\n    ref: {branch: main}\n  path: ./deploy\n  \
             interval: 5m\n  drift: {mode: Detect, ignore: [{paths: [/spec/replicas], target: {kind: Deployment}}]}\n",
        )
        .expect("write");
        let gs = load_file(&p).expect("load");
        assert_eq!(gs.spec.effective_drift_mode(), DriftMode::Detect);
        assert_eq!(gs.spec.effective_interval(), Duration::from_secs(300));
        assert_eq!(gs.spec.effective_plaintext_policy(), PlaintextPolicy::Deny);
        std::fs::write(
            &p,
            "apiVersion: sealgate.dev/v1alpha1\nkind: GitSync\nmetadata: {name: a}\n\
             spec:\n  source:\n    url: file:///r\n    ref: {branch: main, tag: v1}\n",
        )
        .expect("write");
        assert!(matches!(
            load_file(&p),
            Err(SpecError::Invalid {
                field: "source.ref",
                ..
            })
        ));
    }
}
