//! One reconcile of one GitSync, in order: fetch, render, validate (the
//! gate on every file), decrypt, then — only if all of that passed for the
//! whole revision — plan and apply stage by stage, prune, check health and
//! record.
//!
//! Design note: the function takes the GitSync and its previous status and
//! returns the new status plus a report; persisting them (the resource's
//! status subresource, or a ConfigMap for `sync --once`) and publishing
//! events is the caller's job, so the CLI and the controller share this
//! path exactly. Every string that leaves this module went through the
//! [`Redactor`]. Steady state: the live objects are read with one LIST per
//! kind (label-selected), dry-runs are skipped when the (desired digest,
//! live resourceVersion) pair was already found unchanged, and nothing is
//! written.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use kube::{Client, ResourceExt};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

use super::render::{self, RenderError};
use super::secrets::{self, DecryptError, KeyChange, Redactor};
use super::source::{self, Credentials, SourceError};
use super::spec::{
    DriftMode, GitSync, GitSyncStatus, HistoryEntry, InventoryEntry, PlaintextPolicy,
};
use crate::controller::sops_secret::{FIELD_MANAGER, MANAGED_BY, MANAGED_BY_LABEL};
use crate::controller::status;
use crate::gate;
use crate::secret::SecretString;
use crate::sops::engine::now_rfc3339;

/// Label naming the GitSync that applied an object.
pub const SYNC_NAME_LABEL: &str = "sealgate.dev/gitsync-name";
/// Label naming the GitSync's namespace.
pub const SYNC_NAMESPACE_LABEL: &str = "sealgate.dev/gitsync-namespace";
/// Per-object opt-in to delete-and-recreate on an immutable-field change.
pub const RECREATE_ANNOTATION: &str = "sealgate.dev/recreate";
/// Per-object opt-out of pruning.
pub const PRUNE_ANNOTATION: &str = "sealgate.dev/prune";
/// On the GitSync: acknowledges a large prune for exactly this commit.
pub const PRUNE_APPROVED_ANNOTATION: &str = "sealgate.dev/prune-approved";
/// Per-object opt-out of reconciliation (Flux's
/// `kustomize.toolkit.fluxcd.io/reconcile`): `disabled` on the object in Git
/// or in the cluster means it is never applied, drift-corrected or pruned.
pub const RECONCILE_ANNOTATION: &str = "sealgate.dev/reconcile";
/// Per-object apply policy (Flux's `kustomize.toolkit.fluxcd.io/ssa`):
/// `IfNotPresent` creates a missing object and never updates it; `Ignore`
/// skips it entirely.
pub const SSA_ANNOTATION: &str = "sealgate.dev/ssa";
/// How many history entries are kept.
pub const HISTORY_LEN: usize = 10;

/// Called with an interim status before the first write of a new revision
/// (the `Reconciling=True` condition), so the resource shows the apply in
/// progress. The controller writes it to the status subresource; the CLI
/// passes none.
pub type ProgressHook =
    std::sync::Arc<dyn Fn(GitSyncStatus) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// Cache of dry-run results: object id → (desired digest, live
/// resourceVersion) last found unchanged. Kept by the controller across
/// reconciles of one GitSync.
pub type DryRunCache = HashMap<String, (String, String)>;

/// What a reconcile needs besides the GitSync.
pub struct SyncContext {
    /// Client with the controller's (or CLI user's) own rights.
    pub client: Client,
    /// Config to build impersonating clients from (`serviceAccountName`).
    pub config: Option<kube::Config>,
    /// Git object cache root.
    pub cache_dir: PathBuf,
    /// Plan only: no writes (`sync --once --diff`).
    pub dry_run: bool,
    /// Force the full drift check even when the commit was already applied.
    pub force: bool,
    /// Where the `Reconciling=True` interim status goes (none: not written).
    pub progress: Option<ProgressHook>,
}

/// How one object compares with the cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Change {
    /// Not in the cluster.
    Create,
    /// Differs at these JSON pointers (Secrets: per-key changes instead).
    Update(Vec<String>),
    /// Same as desired.
    Unchanged,
}

/// One planned object (names only).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedObject {
    /// Flux-style id.
    pub id: String,
    /// `file:line`.
    pub source: String,
    /// The change.
    pub change: Change,
    /// For Secrets: per-key classification.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_keys: BTreeMap<String, KeyChange>,
}

/// What one reconcile did, for the CLI, events and tests.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// Commit reconciled.
    pub revision: String,
    /// `ReconciliationSucceeded` or the failure reason.
    pub reason: String,
    /// Human message (scrubbed).
    pub message: String,
    /// Whether the sync succeeded.
    pub ok: bool,
    /// Whether the failure needs a new commit or spec (not a retry).
    pub stalled: bool,
    /// The plan (every object of the revision).
    pub plan: Vec<PlannedObject>,
    /// Ids written.
    pub applied: Vec<String>,
    /// Ids deleted.
    pub pruned: Vec<String>,
    /// Ids drifted from the last applied state.
    pub drifted: Vec<String>,
    /// Who drifted what: one record per drifted object.
    pub drift: Vec<DriftRecord>,
    /// Ids left alone by `sealgate.dev/reconcile: disabled`,
    /// `sealgate.dev/ssa: Ignore`, or `IfNotPresent` on an existing object.
    pub skipped_objects: Vec<String>,
    /// Gate findings (refused or warned), one line each, no values.
    pub findings: Vec<String>,
    /// The audit record (one JSON line).
    pub audit: Json,
    /// Nothing to do: same commit, no drift check due.
    pub skipped: bool,
    /// API requests this reconcile made, by kind of call (counted at the
    /// call sites): discovery, list, get, dryRun, apply, delete.
    pub api_calls: BTreeMap<&'static str, u64>,
}

/// One drifted object and the field managers that changed it out of band
/// (from the live object's `managedFields`; names only, never values).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftRecord {
    /// Flux-style id.
    pub id: String,
    /// Object kind (the metric label).
    pub kind: String,
    /// Field managers other than `sealgate` owning a drifted field; when
    /// none owns one (a removed field), the most recent other manager;
    /// `unknown` when there is none.
    pub managers: Vec<String>,
    /// The drifted JSON pointers.
    pub paths: Vec<String>,
}

impl SyncReport {
    fn count(&mut self, what: &'static str, n: u64) {
        *self.api_calls.entry(what).or_default() += n;
    }
}

/// Why a reconcile failed. Messages name files, objects and fields, never
/// values (and pass through the redactor before leaving).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The spec is unusable.
    #[error("{0}")]
    Spec(#[from] super::spec::SpecError),
    /// Fetching failed.
    #[error("{0}")]
    Source(#[from] SourceError),
    /// Rendering failed.
    #[error("{0}")]
    Render(#[from] RenderError),
    /// The gate refused the revision.
    #[error("plaintext secret refused: {0}")]
    Plaintext(String),
    /// Structure, duplicates or scope.
    #[error("{0}")]
    Validation(String),
    /// Decryption failed.
    #[error("{0}")]
    Decrypt(#[from] DecryptError),
    /// An immutable field changed and the object did not opt in to recreate.
    #[error("{0}")]
    Immutable(String),
    /// Apply (or dry-run) failed.
    #[error("{0}")]
    Apply(String),
    /// Prune refused by a guard.
    #[error("{0}")]
    PruneBlocked(String),
    /// Health check timed out.
    #[error("{0}")]
    Health(String),
    /// `spec.timeout` ran out while applying (before the health wait).
    #[error("{0}")]
    Timeout(String),
    /// The API failed in a way a retry may fix.
    #[error("kubernetes API: {0}")]
    Kube(String),
}

impl SyncError {
    /// One CamelCase word: status reason, event reason, metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Spec(e) => e.metric_label(),
            Self::Source(e) => e.metric_label(),
            Self::Render(e) => e.metric_label(),
            Self::Plaintext(_) => "PlaintextSecretRefused",
            Self::Validation(_) => "ValidationFailed",
            Self::Decrypt(_) => "DecryptionFailed",
            Self::Immutable(_) => "ImmutableField",
            Self::Apply(_) => "ApplyFailed",
            Self::PruneBlocked(_) => "PruneBlocked",
            Self::Health(_) => "HealthCheckFailed",
            Self::Timeout(_) => "ApplyTimeout",
            Self::Kube(_) => "KubernetesError",
        }
    }

    /// Needs a new commit or spec change; retrying the same input cannot help.
    pub fn stalled(&self) -> bool {
        match self {
            Self::Source(e) => !e.transient(),
            Self::Kube(_) | Self::Apply(_) | Self::Health(_) | Self::Timeout(_) => false,
            _ => true,
        }
    }
}

/// Flux's inventory id: `<namespace>_<name>_<group>_<kind>`.
pub fn object_id(namespace: Option<&str>, name: &str, api_version: &str, kind: &str) -> String {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    format!("{}_{name}_{group}_{kind}", namespace.unwrap_or(""))
}

fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

/// Apply stage (Flux's order): CRDs, Namespaces and cluster roles first;
/// `*Class` kinds; everything else; webhook configurations last.
pub fn stage_of(kind: &str) -> usize {
    match kind {
        "CustomResourceDefinition" | "Namespace" | "ClusterRole" | "ClusterRoleBinding" => 0,
        k if k.ends_with("Class") => 1,
        "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => 3,
        _ => 2,
    }
}

/// A validated object ready to plan.
#[derive(Debug, Clone)]
struct Desired {
    id: String,
    source: String,
    object: Json,
    digest: String,
}

/// Runs one reconcile. Returns the new status and a report; `Err` is never
/// returned for reconcile failures (they are in the report and status),
/// only the status itself is always produced.
pub async fn reconcile(
    gs: &GitSync,
    previous: &GitSyncStatus,
    ctx: &SyncContext,
    cache: &mut DryRunCache,
) -> (GitSyncStatus, SyncReport) {
    let started = Instant::now();
    let mut redactor = Redactor::default();
    let mut report = SyncReport::default();
    let result = run(gs, previous, ctx, cache, &mut redactor, &mut report).await;
    let mut st = previous.clone();
    let generation = gs.metadata.generation;
    st.observed_generation = generation;
    let revision = report.revision.clone();
    if !revision.is_empty() {
        st.last_attempted_revision = Some(revision.clone());
    }
    match result {
        Ok(inventory) => {
            report.ok = true;
            report.reason = "ReconciliationSucceeded".into();
            if report.skipped {
                report.message = format!("Revision {revision} already applied");
            } else {
                report.message = format!(
                    "Applied revision {revision}: {} objects, {} changed, {} pruned",
                    report.plan.len(),
                    report.applied.len(),
                    report.pruned.len()
                );
            }
            // A skipped reconcile (same commit, no drift check due) leaves a
            // Ready=True status as it is, so polling the ref costs no write.
            let was_ready = st
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if !(report.skipped && was_ready) {
                set(
                    &mut st,
                    "Ready",
                    true,
                    "ReconciliationSucceeded",
                    &report.message,
                    generation,
                );
                set(
                    &mut st,
                    "Stalled",
                    false,
                    "ReconciliationSucceeded",
                    "",
                    generation,
                );
            }
            if !report.skipped {
                let refused = report.findings.len();
                let (safe_reason, safe_msg) = if refused == 0 {
                    (
                        "NoPlaintextSecrets",
                        "the gate found no plaintext secret in the revision".to_owned(),
                    )
                } else {
                    (
                        "PlaintextSecretsAllowed",
                        format!("{refused} findings exempted or warned (see the audit record)"),
                    )
                };
                set(
                    &mut st,
                    "SecretsSafe",
                    refused == 0,
                    safe_reason,
                    &safe_msg,
                    generation,
                );
                let drifted = !report.drifted.is_empty();
                let corrected =
                    gs.spec.effective_drift_mode() == DriftMode::Correct && !ctx.dry_run;
                let drift_msg = if drifted {
                    format!(
                        "{} objects differed from the revision{}",
                        report.drifted.len(),
                        if corrected {
                            " and were re-applied"
                        } else {
                            ""
                        }
                    )
                } else {
                    "live objects match the revision".to_owned()
                };
                // Abnormal-true: True only while drift remains (Detect mode).
                set(
                    &mut st,
                    "Drifted",
                    drifted && !corrected,
                    if drifted { "DriftDetected" } else { "NoDrift" },
                    &drift_msg,
                    generation,
                );
                if gs.spec.effective_health_wait() && !ctx.dry_run {
                    set(
                        &mut st,
                        "Healthy",
                        true,
                        "Healthy",
                        "applied objects are healthy",
                        generation,
                    );
                }
            }
            if !report.skipped && !ctx.dry_run {
                st.inventory = inventory;
                let new_revision = st.last_applied_revision.as_deref() != Some(revision.as_str());
                st.last_applied_revision = Some(revision.clone());
                if new_revision {
                    push_history(&mut st, &report, "Applied");
                }
            }
            // Only a full reconcile (with its drift check) counts: a
            // skipped poll must not push the next drift check back.
            if !report.skipped {
                st.last_reconcile_time = Some(now_rfc3339());
            }
        }
        Err(e) => {
            report.ok = false;
            report.reason = e.metric_label().into();
            report.stalled = e.stalled();
            report.message = redactor.scrub(&e.to_string());
            set(
                &mut st,
                "Ready",
                false,
                &report.reason,
                &truncate(&report.message),
                generation,
            );
            set(
                &mut st,
                "Stalled",
                report.stalled,
                if report.stalled {
                    &report.reason
                } else {
                    "Retrying"
                },
                if report.stalled {
                    "a new commit or spec change is needed"
                } else {
                    ""
                },
                generation,
            );
            if let SyncError::Health(_) = e {
                set(
                    &mut st,
                    "Healthy",
                    false,
                    "HealthCheckFailed",
                    &truncate(&report.message),
                    generation,
                );
            }
            if let SyncError::Plaintext(_) = e {
                set(
                    &mut st,
                    "SecretsSafe",
                    false,
                    "PlaintextSecretRefused",
                    &truncate(&report.message),
                    generation,
                );
            }
            if !revision.is_empty()
                && st
                    .history
                    .first()
                    .is_none_or(|h| h.revision != revision || h.result != report.reason)
            {
                push_history(&mut st, &report, &report.reason.clone());
            }
        }
    }
    // Flux-style: Reconciling is True only while a new revision is being
    // applied (written by the progress hook); afterwards False with the
    // outcome. Conditions that no longer apply are dropped, not left stale.
    if !ctx.dry_run {
        let (reason, msg) = if report.ok {
            (
                "ReconciliationSucceeded".to_owned(),
                format!("reconcile of revision {revision} finished"),
            )
        } else {
            (
                report.reason.clone(),
                if revision.is_empty() {
                    "reconcile failed before the revision was read".to_owned()
                } else {
                    format!("reconcile of revision {revision} failed")
                },
            )
        };
        set(&mut st, "Reconciling", false, &reason, &msg, generation);
    }
    if !gs.spec.effective_health_wait() {
        st.conditions.retain(|c| c.type_ != "Healthy");
    }
    report.audit = json!({
        "audit": "gitsync",
        "gitsync": format!("{}/{}", gs.metadata.namespace.as_deref().unwrap_or(""), gs.metadata.name.as_deref().unwrap_or("")),
        "revision": revision,
        "result": report.reason,
        "message": report.message,
        "objects": report.plan.len(),
        "applied": report.applied,
        "pruned": report.pruned,
        "drifted": report.drifted,
        "driftedBy": report.drift,
        "skippedObjects": report.skipped_objects,
        "findings": report.findings,
        "dryRun": ctx.dry_run,
        "durationMs": started.elapsed().as_millis() as u64,
        "apiCalls": report.api_calls,
    });
    tracing::info!(target: "sealgate::audit", "{}", redactor.scrub(&report.audit.to_string()));
    (st, report)
}

fn truncate(s: &str) -> String {
    if s.len() <= 1024 {
        return s.to_owned();
    }
    let mut end = 1024;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn set(
    st: &mut GitSyncStatus,
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    status::set(
        &mut st.conditions,
        status::condition(type_, ok, reason, message, generation),
    );
}

fn push_history(st: &mut GitSyncStatus, report: &SyncReport, result: &str) {
    st.history.insert(
        0,
        HistoryEntry {
            revision: report.revision.clone(),
            result: result.to_owned(),
            finished_at: now_rfc3339(),
            objects: report.plan.len() as i64,
            changed: report.applied.len() as i64,
            pruned: report.pruned.len() as i64,
        },
    );
    st.history.truncate(HISTORY_LEN);
}

async fn run(
    gs: &GitSync,
    previous: &GitSyncStatus,
    ctx: &SyncContext,
    cache: &mut DryRunCache,
    redactor: &mut Redactor,
    report: &mut SyncReport,
) -> Result<Vec<InventoryEntry>, SyncError> {
    let spec = &gs.spec;
    spec.validate()?;
    let ns = gs
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = gs.metadata.name.clone().unwrap_or_default();

    // 1–2. Resolve and fetch (blocking gix on a worker thread).
    let (creds, ssh) = load_credentials(gs, &ctx.client, &ns).await?;
    let url = spec.source.url.clone();
    let git_ref = spec.source.git_ref.clone().unwrap_or_default();
    let cache_dir = ctx.cache_dir.clone();
    let path = spec.path.clone().unwrap_or_default();
    let rev = tokio::task::spawn_blocking(move || {
        source::fetch_with(&url, &git_ref, &creds, ssh.as_ref(), &cache_dir, &path)
    })
    .await
    .map_err(|e| SyncError::Kube(format!("fetch task failed: {e}")))??;
    report.revision = rev.commit.clone();
    let same_commit = previous.last_applied_revision.as_deref() == Some(rev.commit.as_str());
    let generation_seen = previous.observed_generation == gs.metadata.generation;
    let drift_due = previous
        .last_reconcile_time
        .as_deref()
        .and_then(parse_rfc3339_age)
        .is_none_or(|age| age >= spec.effective_interval());
    if same_commit && generation_seen && !drift_due && !ctx.force && !ctx.dry_run {
        report.skipped = true;
        return Ok(previous.inventory.clone());
    }

    // 3. Render.
    let mut objects = render::render(&rev.files)?;

    // 4. Validate: the gate on every file, then structure and duplicates.
    gate_revision(spec, &ns, &rev.files, report)?;

    // 5. Decrypt sops Secrets in memory (objects another controller
    // decrypts pass through, see `secrets::decrypt_all`).
    let sops_count = objects
        .iter()
        .filter(|o| o.sops && !secrets::passes_through(o))
        .count();
    let keyring = if sops_count > 0 {
        match spec
            .decryption
            .as_ref()
            .and_then(|d| d.age_key_secret_ref.as_ref())
        {
            Some(r) => {
                let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
                let s = secrets
                    .get_opt(&r.name)
                    .await
                    .map_err(|e| SyncError::Kube(e.to_string()))?
                    .ok_or_else(|| DecryptError::KeySecret {
                        namespace: ns.clone(),
                        name: r.name.clone(),
                        reason: "not found".into(),
                    })?;
                Some(secrets::keyring_from_secret_data(
                    &ns,
                    &r.name,
                    s.data.unwrap_or_default(),
                )?)
            }
            None => None,
        }
    } else {
        None
    };
    secrets::decrypt_all(&mut objects, &rev.files, keyring.as_ref(), redactor)?;

    // Cluster client (impersonated when asked).
    let client = match &spec.service_account_name {
        Some(sa) => impersonated(ctx, &ns, sa)?,
        None => ctx.client.clone(),
    };

    // Resolve scope and identities; stage the objects.
    let mut discovery: HashMap<String, Option<(ApiResource, ApiCapabilities)>> = HashMap::new();
    let mut staged: Vec<Vec<Desired>> = vec![Vec::new(); 4];
    let mut seen: HashMap<String, String> = HashMap::new();
    let protected_key = spec
        .decryption
        .as_ref()
        .and_then(|d| d.age_key_secret_ref.as_ref())
        .map(|r| r.name.clone());
    // Kinds defined by CRDs in this revision (not discoverable yet).
    let revision_crds: BTreeSet<(String, String)> = objects
        .iter()
        .filter(|o| o.kind() == "CustomResourceDefinition")
        .filter_map(|o| {
            let g = o.object.pointer("/spec/group")?.as_str()?.to_owned();
            let k = o.object.pointer("/spec/names/kind")?.as_str()?.to_owned();
            let namespaced =
                o.object.pointer("/spec/scope").and_then(Json::as_str) != Some("Cluster");
            Some((format!("{g}/{k}"), namespaced.to_string()))
        })
        .collect();
    for o in &objects {
        let kind = o.kind().to_owned();
        let api_version = o.api_version().to_owned();
        let namespaced = match resolve(&client, &mut discovery, &api_version, &kind).await? {
            Some((_, caps)) => caps.scope == Scope::Namespaced,
            None => {
                let (g, _) = split_api_version(&api_version);
                match revision_crds
                    .iter()
                    .find(|(gk, _)| *gk == format!("{g}/{kind}"))
                {
                    Some((_, n)) => n == "true",
                    None => {
                        return Err(SyncError::Validation(format!(
                            "{}: {api_version} {kind} is not served by the cluster",
                            o.location()
                        )));
                    }
                }
            }
        };
        let mut object = o.object.clone();
        let object_ns = if namespaced {
            let n = o.namespace().unwrap_or(&ns).to_owned();
            object["metadata"]["namespace"] = Json::String(n.clone());
            Some(n)
        } else {
            if let Some(m) = object["metadata"].as_object_mut() {
                m.remove("namespace");
            }
            None
        };
        let id = object_id(object_ns.as_deref(), o.name(), &api_version, &kind);
        if let Some(first) = seen.insert(id.clone(), o.location()) {
            return Err(SyncError::Validation(format!(
                "{kind} {} is defined twice: {first} and {}",
                o.name(),
                o.location()
            )));
        }
        check_annotations(&o.object, &kind, o.name(), &o.location())?;
        // Self-protection: never let a revision rewrite its own GitSync or
        // key Secret.
        let is_self = kind == "GitSync" && object_ns.as_deref() == Some(&ns) && o.name() == name;
        let is_key = kind == "Secret"
            && object_ns.as_deref() == Some(&ns)
            && protected_key.as_deref() == Some(o.name());
        if is_self || is_key {
            return Err(SyncError::Validation(format!(
                "{}: the revision may not modify the GitSync itself or its decryption key Secret",
                o.location()
            )));
        }
        let labels = object["metadata"]
            .as_object_mut()
            .map(|m| m.entry("labels").or_insert_with(|| json!({})));
        if let Some(Json::Object(labels)) = labels {
            labels.insert(MANAGED_BY_LABEL.into(), Json::String(MANAGED_BY.into()));
            labels.insert(SYNC_NAME_LABEL.into(), Json::String(name.clone()));
            labels.insert(SYNC_NAMESPACE_LABEL.into(), Json::String(ns.clone()));
        }
        let digest = crate::gate::hex(&Sha256::digest(object.to_string().as_bytes())[..16]);
        staged[stage_of(&kind)].push(Desired {
            id,
            source: o.location(),
            object,
            digest,
        });
    }
    if staged.iter().all(Vec::is_empty) && spec.effective_prune() && !previous.inventory.is_empty()
    {
        return Err(SyncError::PruneBlocked(format!(
            "revision {} renders no objects; refusing to prune the {} objects of the inventory",
            rev.commit,
            previous.inventory.len()
        )));
    }

    // 6–7. Plan and apply, stage by stage.
    let mode = spec.effective_drift_mode();
    let new_revision = previous.last_applied_revision.as_deref() != Some(rev.commit.as_str());
    // The revision passed render, gate and decryption: tell the resource a
    // new revision (or spec) is being applied before anything is written.
    // A retry of an attempt that already failed for this revision and spec
    // writes nothing here, so a failure that repeats costs no status write
    // (and no watch event that would bring the retry forward).
    let retry = previous.last_attempted_revision.as_deref() == Some(rev.commit.as_str())
        && generation_seen
        && previous
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "False");
    if let Some(hook) = &ctx.progress
        && !ctx.dry_run
        && (new_revision || !generation_seen)
        && !retry
    {
        let mut interim = previous.clone();
        interim.last_attempted_revision = Some(rev.commit.clone());
        set(
            &mut interim,
            "Reconciling",
            true,
            "Progressing",
            &format!("applying revision {}", rev.commit),
            gs.metadata.generation,
        );
        // Flux-style: Ready is Unknown while the outcome is open.
        let mut ready = status::condition(
            "Ready",
            false,
            "Progressing",
            &format!("applying revision {}", rev.commit),
            gs.metadata.generation,
        );
        ready.status = "Unknown".into();
        status::set(&mut interim.conditions, ready);
        hook(interim).await;
    }
    let apply_changes = !ctx.dry_run && (mode == DriftMode::Correct || new_revision);
    let ignores = spec
        .drift
        .as_ref()
        .map(|d| d.ignore.clone())
        .unwrap_or_default();
    let mut inventory = Vec::new();
    let old_ids: BTreeSet<&str> = previous.inventory.iter().map(|e| e.id.as_str()).collect();
    // `spec.timeout` bounds applying and the health wait together (Flux's
    // meaning): a hung apply or a stage that never settles fails the
    // reconcile as `ApplyTimeout`, naming the object it stopped at, like an
    // apply error (what was applied stays labelled as ours).
    let budget = spec.effective_timeout();
    let deadline = tokio::time::Instant::now() + budget;
    let out_of_time = |at: &str, what: &str| {
        SyncError::Timeout(format!(
            "{at}: spec.timeout ({budget:?}) ran out {what}; the next reconcile continues"
        ))
    };
    for stage in &staged {
        if stage.is_empty() {
            continue;
        }
        let (live, lists) = list_live(&client, &mut discovery, stage, &ns, &name).await?;
        report.count("list", lists);
        for d in stage {
            let kind = d.object["kind"].as_str().unwrap_or("").to_owned();
            let api_version = d.object["apiVersion"].as_str().unwrap_or("").to_owned();
            let oname = d.object["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let ons = d.object["metadata"]["namespace"]
                .as_str()
                .map(str::to_owned);
            if apply_changes && tokio::time::Instant::now() >= deadline {
                return Err(out_of_time(
                    &d.source,
                    &format!("before {kind} {oname} was planned"),
                ));
            }
            let resolved = resolve(&client, &mut discovery, &api_version, &kind).await?;
            let Some((ar, caps)) = resolved else {
                // CRD from this revision not established yet (plan only).
                report.plan.push(PlannedObject {
                    id: d.id.clone(),
                    source: d.source.clone(),
                    change: Change::Create,
                    secret_keys: BTreeMap::new(),
                });
                continue;
            };
            let api = dyn_api(&client, &ar, &caps, ons.as_deref());
            if !live.contains_key(&d.id) {
                report.count("get", 1);
            }
            let live_obj = match live.get(&d.id) {
                Some(o) => Some(o.clone()),
                None => api
                    .get_opt(&oname)
                    .await
                    .map_err(|e| kube_err(redactor, &d.source, e))?
                    .map(|o| serde_json::to_value(o).unwrap_or(Json::Null)),
            };
            if let Some(l) = &live_obj {
                let ours = l
                    .pointer("/metadata/labels")
                    .and_then(Json::as_object)
                    .is_some_and(|m| {
                        m.get(SYNC_NAME_LABEL).and_then(Json::as_str) == Some(name.as_str())
                            && m.get(SYNC_NAMESPACE_LABEL).and_then(Json::as_str)
                                == Some(ns.as_str())
                    });
                let other_sync = l
                    .pointer("/metadata/labels")
                    .and_then(|m| m.get(SYNC_NAME_LABEL))
                    .is_some();
                if !ours && other_sync {
                    return Err(SyncError::Validation(format!(
                        "{}: {kind} {oname} belongs to another GitSync",
                        d.source
                    )));
                }
            }
            // Per-object opt-outs: `reconcile: disabled` or `ssa: Ignore` (in
            // Git or in the cluster) leave the object alone; `ssa:
            // IfNotPresent` only ever creates it.
            let disabled = annotation(&d.object, RECONCILE_ANNOTATION) == Some("disabled")
                || live_obj
                    .as_ref()
                    .is_some_and(|l| annotation(l, RECONCILE_ANNOTATION) == Some("disabled"));
            let ssa = annotation(&d.object, SSA_ANNOTATION).or_else(|| {
                live_obj
                    .as_ref()
                    .and_then(|l| annotation(l, SSA_ANNOTATION))
            });
            let ignored = disabled || ssa == Some("Ignore");
            if ignored || (ssa == Some("IfNotPresent") && live_obj.is_some()) {
                tracing::debug!(id = %d.id, "left alone by annotation");
                report.skipped_objects.push(d.id.clone());
                report.plan.push(PlannedObject {
                    id: d.id.clone(),
                    source: d.source.clone(),
                    change: Change::Unchanged,
                    secret_keys: BTreeMap::new(),
                });
                // An ignored object stays in the inventory only if it was
                // there (so this revision does not prune it); one created
                // with IfNotPresent is ours and stays listed.
                if !ignored || old_ids.contains(d.id.as_str()) {
                    inventory.push(InventoryEntry {
                        id: d.id.clone(),
                        v: api_version.clone(),
                    });
                }
                continue;
            }
            let live_rv = live_obj
                .as_ref()
                .and_then(|l| l.pointer("/metadata/resourceVersion"))
                .and_then(Json::as_str)
                .map(str::to_owned);
            let cached = live_rv.as_ref().is_some_and(|rv| {
                cache
                    .get(&d.id)
                    .is_some_and(|(dg, crv)| *dg == d.digest && crv == rv)
            });
            let change = if cached {
                Change::Unchanged
            } else {
                match &live_obj {
                    None => Change::Create,
                    Some(l) => {
                        report.count("dryRun", 1);
                        let dry = api
                            .patch(
                                &oname,
                                &PatchParams::apply(FIELD_MANAGER).force().dry_run(),
                                &Patch::Apply(&d.object),
                            )
                            .await;
                        match dry {
                            Ok(after) => {
                                let after = serde_json::to_value(after).unwrap_or(Json::Null);
                                let paths = diff_paths(
                                    &normalise(l, &ignores, &d.object),
                                    &normalise(&after, &ignores, &d.object),
                                );
                                if paths.is_empty() {
                                    if let Some(rv) = &live_rv {
                                        cache.insert(d.id.clone(), (d.digest.clone(), rv.clone()));
                                    }
                                    Change::Unchanged
                                } else {
                                    Change::Update(paths)
                                }
                            }
                            Err(e) if is_immutable(&e) => Change::Update(vec![format!(
                                "(immutable) {}",
                                redactor.scrub(&e.to_string())
                            )]),
                            Err(e) => {
                                return Err(SyncError::Apply(redactor.scrub(&format!(
                                    "{}: dry-run of {kind} {oname}: {e}",
                                    d.source
                                ))));
                            }
                        }
                    }
                }
            };
            let secret_keys = if kind == "Secret" && change != Change::Unchanged {
                secrets::secret_key_diff(&d.object, live_obj.as_ref())
            } else {
                BTreeMap::new()
            };
            let drifted = !new_revision
                && matches!(change, Change::Update(_))
                && old_ids.contains(d.id.as_str());
            if drifted {
                report.drifted.push(d.id.clone());
                if let (Change::Update(paths), Some(l)) = (&change, &live_obj) {
                    report.drift.push(DriftRecord {
                        id: d.id.clone(),
                        kind: kind.clone(),
                        managers: drift_managers(l, paths),
                        paths: paths.clone(),
                    });
                }
            }
            report.plan.push(PlannedObject {
                id: d.id.clone(),
                source: d.source.clone(),
                change: change.clone(),
                secret_keys,
            });
            if change != Change::Unchanged && apply_changes {
                report.count("apply", 1);
                let rv =
                    tokio::time::timeout_at(deadline, apply_one(&api, d, &oname, &kind, redactor))
                        .await
                        .map_err(|_| {
                            out_of_time(&d.source, &format!("while applying {kind} {oname}"))
                        })??;
                report.applied.push(d.id.clone());
                // What was just applied is the desired state at this
                // resourceVersion: the next reconcile needs no dry-run
                // unless someone changes the object.
                match rv {
                    Some(rv) => cache.insert(d.id.clone(), (d.digest.clone(), rv)),
                    None => cache.remove(&d.id),
                };
            }
            inventory.push(InventoryEntry {
                id: d.id.clone(),
                v: api_version.clone(),
            });
        }
        if apply_changes {
            let at = stage.first().map(|d| d.source.as_str()).unwrap_or("");
            tokio::time::timeout_at(deadline, wait_stage(&client, stage))
                .await
                .map_err(|_| {
                    out_of_time(at, "waiting for a stage (CRDs, Namespaces) to settle")
                })??;
        }
    }
    inventory.sort();

    // 8. Prune.
    if apply_changes && spec.effective_prune() {
        prune(
            gs,
            previous,
            &inventory,
            &client,
            &mut discovery,
            &rev.commit,
            &ns,
            &name,
            protected_key.as_deref(),
            redactor,
            report,
        )
        .await
        .map(|survivors| inventory.extend(survivors))?;
        inventory.sort();
        inventory.dedup();
    }

    // 9. Health: what was applied now, or — for a new revision, or after a
    // failed or missing health check — every object sealgate manages, so
    // a retry that changes nothing cannot report Healthy unchecked.
    let was_healthy = previous
        .conditions
        .iter()
        .any(|c| c.type_ == "Healthy" && c.status == "True");
    let to_check: Vec<String> = if new_revision || !was_healthy {
        report
            .plan
            .iter()
            .map(|p| p.id.clone())
            .filter(|id| !report.skipped_objects.contains(id))
            .collect()
    } else {
        report.applied.clone()
    };
    if apply_changes && spec.effective_health_wait() && !to_check.is_empty() {
        wait_healthy(
            &client,
            &mut discovery,
            &staged,
            &to_check,
            deadline.into_std(),
            budget,
        )
        .await?;
    }
    if !report.drifted.is_empty() {
        let msg = format!(
            "{} objects drifted from revision {}",
            report.drifted.len(),
            rev.commit
        );
        tracing::warn!(gitsync = %name, drifted = report.drifted.len(), "{msg}");
    }
    report.count("discovery", discovery.len() as u64);
    Ok(inventory)
}

/// Gate every file; refuse on errors (Deny) unless exempted.
fn gate_revision(
    spec: &super::spec::GitSyncSpec,
    ns: &str,
    files: &[source::SourceFile],
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let allow = spec
        .secrets
        .as_ref()
        .map(|s| s.allow.clone())
        .unwrap_or_default();
    let opts = gate::Options::default();
    let mut refused = Vec::new();
    for f in files {
        let r = gate::check_file(&f.path, &f.data, &opts);
        for finding in r
            .findings
            .iter()
            .filter(|f| f.severity == gate::Severity::Error)
        {
            let obj = finding.object.clone().unwrap_or_default();
            let exempt = allow.iter().any(|a| {
                a.kind == obj.kind
                    && obj.name.as_deref() == Some(a.name.as_str())
                    && a.namespace
                        .as_deref()
                        .is_none_or(|n| obj.namespace.as_deref().unwrap_or(ns) == n)
                    && a.rule.as_deref().is_none_or(|r| r == finding.rule)
            });
            let line = format!(
                "{}:{}: {} field {} ({}){}",
                finding.path,
                finding.line,
                obj,
                finding.field.as_deref().unwrap_or("(value)"),
                finding.rule,
                if exempt { " [exempted]" } else { "" }
            );
            report.findings.push(line.clone());
            if !exempt {
                refused.push(line);
            }
        }
    }
    if !refused.is_empty() && spec.effective_plaintext_policy() == PlaintextPolicy::Deny {
        return Err(SyncError::Plaintext(refused.join("; ")));
    }
    Ok(())
}

async fn load_credentials(
    gs: &GitSync,
    client: &Client,
    ns: &str,
) -> Result<(Credentials, Option<source::SshCredentials>), SyncError> {
    let Some(r) = &gs.spec.source.secret_ref else {
        return Ok((Credentials::default(), None));
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let s = api
        .get_opt(&r.name)
        .await
        .map_err(|e| SyncError::Kube(e.to_string()))?
        .ok_or_else(|| SourceError::Git {
            url: gs.spec.source.url.clone(),
            step: "reading source.secretRef",
            reason: format!("Secret {ns}/{} not found", r.name),
        })?;
    let mut data = s.data.unwrap_or_default();
    let text = |k: &str| {
        data.get(k)
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .map(|s| s.trim_end_matches('\n').to_owned())
    };
    let creds = Credentials {
        username: text("username"),
        password: text("password").map(SecretString::new),
        bearer_token: text("bearerToken").map(SecretString::new),
    };
    let ssh = source::SshCredentials::from_secret_data(&gs.spec.source.url, &data);
    // The Secret's plain buffers held the credentials: wipe them.
    for v in data.values_mut() {
        zeroize::Zeroize::zeroize(&mut v.0);
    }
    Ok((creds, ssh?))
}

fn impersonated(ctx: &SyncContext, ns: &str, sa: &str) -> Result<Client, SyncError> {
    let Some(config) = &ctx.config else {
        return Err(SyncError::Kube(
            "spec.serviceAccountName is set but no client configuration is available to impersonate it".into(),
        ));
    };
    let mut config = config.clone();
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{ns}:{sa}"));
    Client::try_from(config).map_err(|e| SyncError::Kube(e.to_string()))
}

async fn resolve(
    client: &Client,
    discovery: &mut HashMap<String, Option<(ApiResource, ApiCapabilities)>>,
    api_version: &str,
    kind: &str,
) -> Result<Option<(ApiResource, ApiCapabilities)>, SyncError> {
    let key = format!("{api_version}/{kind}");
    if let Some(Some(hit)) = discovery.get(&key) {
        return Ok(Some(hit.clone()));
    }
    let (g, v) = split_api_version(api_version);
    let gvk = GroupVersionKind::gvk(g, v, kind);
    let found = match kube::discovery::pinned_kind(client, &gvk).await {
        Ok(found) => Some(found),
        Err(kube::Error::Api(e)) if e.code == 404 => None,
        Err(kube::Error::Discovery(_)) => None,
        Err(e) => return Err(SyncError::Kube(e.to_string())),
    };
    discovery.insert(key, found.clone());
    Ok(found)
}

fn dyn_api(
    client: &Client,
    ar: &ApiResource,
    caps: &ApiCapabilities,
    ns: Option<&str>,
) -> Api<DynamicObject> {
    match (caps.scope == Scope::Namespaced, ns) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, ar),
        _ => Api::all_with(client.clone(), ar),
    }
}

/// One LIST per kind (label-selected on this GitSync), so a steady-state
/// reconcile reads each kind once instead of each object.
async fn list_live(
    client: &Client,
    discovery: &mut HashMap<String, Option<(ApiResource, ApiCapabilities)>>,
    stage: &[Desired],
    ns: &str,
    name: &str,
) -> Result<(HashMap<String, Json>, u64), SyncError> {
    let mut out = HashMap::new();
    let mut calls = 0;
    let kinds: BTreeSet<(String, String)> = stage
        .iter()
        .map(|d| {
            (
                d.object["apiVersion"].as_str().unwrap_or("").to_owned(),
                d.object["kind"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let selector = format!("{SYNC_NAME_LABEL}={name},{SYNC_NAMESPACE_LABEL}={ns}");
    for (av, kind) in kinds {
        let Some((ar, _)) = resolve(client, discovery, &av, &kind).await? else {
            continue;
        };
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        calls += 1;
        // A forbidden cluster-wide list (impersonation with namespaced
        // rights) falls back to one GET per object.
        if let Ok(list) = api.list(&ListParams::default().labels(&selector)).await {
            for o in list {
                let id = object_id(o.metadata.namespace.as_deref(), &o.name_any(), &av, &kind);
                out.insert(id, serde_json::to_value(o).unwrap_or(Json::Null));
            }
        }
    }
    Ok((out, calls))
}

fn kube_err(redactor: &Redactor, source: &str, e: kube::Error) -> SyncError {
    SyncError::Kube(redactor.scrub(&format!("{source}: {e}")))
}

fn is_immutable(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 422 && (s.message.contains("immutable") || s.message.contains("Forbidden: updates to")))
}

async fn apply_one(
    api: &Api<DynamicObject>,
    d: &Desired,
    name: &str,
    kind: &str,
    redactor: &Redactor,
) -> Result<Option<String>, SyncError> {
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    match api.patch(name, &pp, &Patch::Apply(&d.object)).await {
        Ok(o) => Ok(o.metadata.resource_version),
        Err(e) if is_immutable(&e) => {
            let opted_in = d
                .object
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(RECREATE_ANNOTATION))
                .and_then(Json::as_str)
                == Some("enabled");
            let msg = redactor.scrub(&e.to_string());
            if !opted_in {
                return Err(SyncError::Immutable(format!(
                    "{}: {kind} {name}: an immutable field changed ({msg}); annotate the object with {RECREATE_ANNOTATION}: enabled to allow delete-and-recreate",
                    d.source
                )));
            }
            tracing::info!(kind, name, "immutable field changed; recreating (opted in)");
            api.delete(name, &DeleteParams::background())
                .await
                .map_err(|e| {
                    SyncError::Apply(redactor.scrub(&format!(
                        "{}: deleting {kind} {name} for recreate: {e}",
                        d.source
                    )))
                })?;
            for _ in 0..100 {
                match api.get_opt(name).await {
                    Ok(None) => break,
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
            api.patch(name, &pp, &Patch::Apply(&d.object))
                .await
                .map(|o| o.metadata.resource_version)
                .map_err(|e| {
                    SyncError::Apply(
                        redactor.scrub(&format!("{}: recreating {kind} {name}: {e}", d.source)),
                    )
                })
        }
        Err(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => {
            Err(SyncError::Apply(redactor.scrub(&format!(
                "{}: {kind} {name} refused by the apiserver: {}",
                d.source, s.message
            ))))
        }
        Err(e) => Err(kube_err(redactor, &d.source, e)),
    }
}

fn annotation<'a>(o: &'a Json, key: &str) -> Option<&'a str> {
    o.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Json::as_str)
}

/// The values each per-object annotation accepts. A typo (`ssa: ifnotpresent`,
/// `prune: disable`) would otherwise silently mean "not set", applying or
/// pruning an object its author meant to protect; it refuses the revision
/// instead, naming file:line, object, annotation and the accepted values.
/// `ssa: Merge` is accepted as Flux spells it: sealgate never strips other
/// field managers' fields, which is what Flux's `Merge` keeps.
const ANNOTATION_VALUES: [(&str, &[&str]); 5] = [
    (SSA_ANNOTATION, &["Merge", "IfNotPresent", "Ignore"]),
    (secrets::DECRYPT_ANNOTATION, &["enabled", "disabled"]),
    (RECONCILE_ANNOTATION, &["enabled", "disabled"]),
    (PRUNE_ANNOTATION, &["enabled", "disabled"]),
    (RECREATE_ANNOTATION, &["enabled", "disabled"]),
];

fn check_annotations(object: &Json, kind: &str, name: &str, at: &str) -> Result<(), SyncError> {
    for (key, allowed) in ANNOTATION_VALUES {
        let Some(v) = object
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(key))
        else {
            continue;
        };
        if !v.as_str().is_some_and(|v| allowed.contains(&v)) {
            // Short values are quoted (a typo is then obvious); anything
            // longer is described, not echoed.
            let shown = match v.as_str() {
                Some(t) if t.chars().count() <= 24 => format!("{t:?}"),
                Some(t) => format!("a {}-character value", t.chars().count()),
                None => "a non-string value".to_owned(),
            };
            return Err(SyncError::Validation(format!(
                "{at}: {kind} {name}: annotation {key}: {shown} is not one of {}",
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

/// The field managers (other than `sealgate`) that own any of the drifted
/// JSON `paths` of `live`, read from its `managedFields`. A drifted field
/// nobody else owns (e.g. one that was removed) is attributed to the most
/// recent other manager; `unknown` when there is none.
pub fn drift_managers(live: &Json, paths: &[String]) -> Vec<String> {
    let entries = live
        .pointer("/metadata/managedFields")
        .and_then(Json::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let others: Vec<&Json> = entries
        .iter()
        .filter(|e| {
            e["manager"].as_str().is_some_and(|m| m != FIELD_MANAGER)
                && e["subresource"].as_str().is_none_or(str::is_empty)
        })
        .collect();
    let mut found = BTreeSet::new();
    for p in paths {
        let segs: Vec<String> = p
            .split('/')
            .skip(1)
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect();
        for e in &others {
            if let (Some(m), Some(f)) = (e["manager"].as_str(), e.get("fieldsV1"))
                && owns_path(f, &segs, live)
            {
                found.insert(m.to_owned());
            }
        }
    }
    if found.is_empty()
        && let Some(m) = others
            .iter()
            .max_by_key(|e| e["time"].as_str().unwrap_or(""))
            .and_then(|e| e["manager"].as_str())
    {
        found.insert(m.to_owned());
    }
    if found.is_empty() {
        return vec!["unknown".into()];
    }
    found.into_iter().collect()
}

/// Whether a `fieldsV1` set covers the path `segs` (object keys and list
/// indexes of `value`, mapped to `k:`/`v:` entries through the live list item).
fn owns_path(fields: &Json, segs: &[String], value: &Json) -> bool {
    let mut node = fields;
    let mut value = value;
    for seg in segs {
        let Some(obj) = node.as_object() else {
            return false;
        };
        if obj.is_empty() {
            // A leaf: the manager owns everything below it.
            return true;
        }
        if let Some(n) = obj.get(&format!("f:{seg}")) {
            node = n;
            value = value.get(seg.as_str()).unwrap_or(&Json::Null);
            continue;
        }
        let item = seg
            .parse::<usize>()
            .ok()
            .and_then(|i| value.as_array()?.get(i));
        let Some(item) = item else {
            return false;
        };
        let hit = obj.iter().find(|(k, _)| list_key_matches(k, item));
        let Some((_, n)) = hit else {
            return false;
        };
        node = n;
        value = item;
    }
    true
}

fn list_key_matches(key: &str, item: &Json) -> bool {
    if let Some(k) = key.strip_prefix("k:") {
        return serde_json::from_str::<serde_json::Map<String, Json>>(k)
            .is_ok_and(|m| m.iter().all(|(f, v)| item.get(f) == Some(v)));
    }
    if let Some(v) = key.strip_prefix("v:") {
        return serde_json::from_str::<Json>(v).is_ok_and(|v| &v == item);
    }
    false
}

/// After a stage: CRDs Established, Namespaces Active.
async fn wait_stage(client: &Client, stage: &[Desired]) -> Result<(), SyncError> {
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    for d in stage {
        let name = d.object["metadata"]["name"].as_str().unwrap_or("");
        match d.object["kind"].as_str() {
            Some("CustomResourceDefinition") => {
                let api: Api<CustomResourceDefinition> = Api::all(client.clone());
                let ok = wait_until(|| async {
                    api.get_opt(name).await.ok().flatten().is_some_and(|c| {
                        c.status
                            .and_then(|s| s.conditions)
                            .unwrap_or_default()
                            .iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    })
                })
                .await;
                if !ok {
                    return Err(SyncError::Apply(format!(
                        "{}: CRD {name} not Established within 30s",
                        d.source
                    )));
                }
            }
            Some("Namespace") => {
                let api: Api<Namespace> = Api::all(client.clone());
                let ok = wait_until(|| async {
                    api.get_opt(name).await.ok().flatten().is_some_and(|n| {
                        n.status.and_then(|s| s.phase).as_deref() == Some("Active")
                    })
                })
                .await;
                if !ok {
                    return Err(SyncError::Apply(format!(
                        "{}: Namespace {name} not Active within 30s",
                        d.source
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

async fn wait_until<F, Fut>(mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..150 {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[allow(clippy::too_many_arguments)]
async fn prune(
    gs: &GitSync,
    previous: &GitSyncStatus,
    new_inventory: &[InventoryEntry],
    client: &Client,
    discovery: &mut HashMap<String, Option<(ApiResource, ApiCapabilities)>>,
    commit: &str,
    ns: &str,
    name: &str,
    key_secret: Option<&str>,
    redactor: &Redactor,
    report: &mut SyncReport,
) -> Result<Vec<InventoryEntry>, SyncError> {
    let new_ids: BTreeSet<&str> = new_inventory.iter().map(|e| e.id.as_str()).collect();
    let stale: Vec<&InventoryEntry> = previous
        .inventory
        .iter()
        .filter(|e| !new_ids.contains(e.id.as_str()))
        .collect();
    if stale.is_empty() {
        return Ok(Vec::new());
    }
    if new_inventory.is_empty() {
        return Err(SyncError::PruneBlocked(
            "the new revision has no objects; refusing to prune".into(),
        ));
    }
    let ratio = stale.len() as f64 / previous.inventory.len().max(1) as f64;
    let max = gs.spec.effective_max_delete_ratio();
    let approved = gs
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PRUNE_APPROVED_ANNOTATION))
        .map(String::as_str)
        == Some(commit);
    if ratio > max && !approved {
        return Err(SyncError::PruneBlocked(format!(
            "revision {commit} would delete {} of {} inventory objects ({:.0}% > {:.0}%); annotate the GitSync with {PRUNE_APPROVED_ANNOTATION}: {commit} to approve",
            stale.len(),
            previous.inventory.len(),
            ratio * 100.0,
            max * 100.0
        )));
    }
    let protect = gs.spec.effective_protect_kinds();
    let mut survivors = Vec::new();
    // Reverse stage order: workloads before their namespaces and CRDs.
    let mut ordered = stale.clone();
    ordered.sort_by_key(|e| std::cmp::Reverse(stage_of(e.id.rsplit('_').next().unwrap_or(""))));
    for e in ordered {
        let parts: Vec<&str> = e.id.splitn(4, '_').collect();
        let [ons, oname, _group, kind] = parts.as_slice() else {
            survivors.push(e.clone());
            continue;
        };
        let ons = (!ons.is_empty()).then_some(*ons);
        let never = protect.iter().any(|k| k == kind)
            || *kind == "GitSync"
            || (*kind == "Namespace" && *oname == ns)
            || (*kind == "Secret" && ons == Some(ns) && Some(*oname) == key_secret);
        if never {
            tracing::info!(id = %e.id, "not pruned: protected");
            continue;
        }
        let Some((ar, caps)) = resolve(client, discovery, &e.v, kind).await? else {
            // The kind is no longer served: the object is gone with it.
            continue;
        };
        let api = dyn_api(client, &ar, &caps, ons);
        let live = match api.get_opt(oname).await {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(err) => {
                tracing::warn!(id = %e.id, error = %redactor.scrub(&err.to_string()), "prune read failed; kept in inventory");
                survivors.push(e.clone());
                continue;
            }
        };
        let labels = live.labels();
        let ours = labels.get(SYNC_NAME_LABEL).map(String::as_str) == Some(name)
            && labels.get(SYNC_NAMESPACE_LABEL).map(String::as_str) == Some(ns)
            && labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY);
        let annotations = live.annotations();
        let disabled = annotations.get(PRUNE_ANNOTATION).map(String::as_str) == Some("disabled")
            || annotations.get(RECONCILE_ANNOTATION).map(String::as_str) == Some("disabled")
            || annotations.get(SSA_ANNOTATION).map(String::as_str) == Some("Ignore");
        if !ours || disabled {
            tracing::info!(id = %e.id, "not pruned: not carrying this GitSync's labels or prune disabled");
            continue;
        }
        match api.delete(oname, &DeleteParams::background()).await {
            Ok(_) => {
                report.count("delete", 1);
                report.pruned.push(e.id.clone());
            }
            Err(err) => {
                tracing::warn!(id = %e.id, error = %redactor.scrub(&err.to_string()), "delete failed; kept in inventory");
                survivors.push(e.clone());
            }
        }
    }
    Ok(survivors)
}

/// kstatus-like health over the applied objects.
async fn wait_healthy(
    client: &Client,
    discovery: &mut HashMap<String, Option<(ApiResource, ApiCapabilities)>>,
    staged: &[Vec<Desired>],
    applied: &[String],
    deadline: Instant,
    timeout: Duration,
) -> Result<(), SyncError> {
    let wanted: BTreeSet<&str> = applied.iter().map(String::as_str).collect();
    let objs: Vec<&Desired> = staged
        .iter()
        .flatten()
        .filter(|d| wanted.contains(d.id.as_str()))
        .collect();
    loop {
        let mut pending = Vec::new();
        for d in &objs {
            let av = d.object["apiVersion"].as_str().unwrap_or("");
            let kind = d.object["kind"].as_str().unwrap_or("");
            let Some((ar, caps)) = resolve(client, discovery, av, kind).await? else {
                continue;
            };
            let api = dyn_api(
                client,
                &ar,
                &caps,
                d.object["metadata"]["namespace"].as_str(),
            );
            let live = api
                .get_opt(d.object["metadata"]["name"].as_str().unwrap_or(""))
                .await
                .map_err(|e| SyncError::Kube(e.to_string()))?
                .map(|o| serde_json::to_value(o).unwrap_or(Json::Null));
            if !live.as_ref().is_some_and(healthy) {
                pending.push(d.id.clone());
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(SyncError::Health(format!(
                "not healthy within {timeout:?}: {}",
                pending.join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// kstatus's generic rules plus Deployment/StatefulSet replica checks.
pub fn healthy(o: &Json) -> bool {
    let generation = o.pointer("/metadata/generation").and_then(Json::as_i64);
    let observed = o
        .pointer("/status/observedGeneration")
        .and_then(Json::as_i64);
    if let (Some(g), Some(og)) = (generation, observed)
        && og < g
    {
        return false;
    }
    let conditions = o
        .pointer("/status/conditions")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    let cond = |t: &str| {
        conditions
            .iter()
            .find(|c| c["type"] == t)
            .and_then(|c| c["status"].as_str())
            .map(str::to_owned)
    };
    if cond("Stalled").as_deref() == Some("True") || cond("Reconciling").as_deref() == Some("True")
    {
        return false;
    }
    if cond("Ready").as_deref() == Some("False") {
        return false;
    }
    match o["kind"].as_str() {
        Some("Deployment") | Some("StatefulSet") | Some("ReplicaSet") => {
            let want = o
                .pointer("/spec/replicas")
                .and_then(Json::as_i64)
                .unwrap_or(1);
            let ready = o
                .pointer("/status/readyReplicas")
                .and_then(Json::as_i64)
                .unwrap_or(0);
            let updated = o
                .pointer("/status/updatedReplicas")
                .and_then(Json::as_i64)
                .unwrap_or(0);
            observed.is_some() && ready >= want && (o["kind"] == "ReplicaSet" || updated >= want)
        }
        Some("CustomResourceDefinition") => cond("Established").as_deref() == Some("True"),
        _ => true,
    }
}

/// Removes fields the apiserver owns and the ignore rules name.
fn normalise(o: &Json, ignores: &[super::spec::DriftIgnore], target: &Json) -> Json {
    let mut o = o.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Json::as_object_mut) {
        for k in [
            "managedFields",
            "resourceVersion",
            "generation",
            "uid",
            "creationTimestamp",
        ] {
            m.remove(k);
        }
    }
    // apiVersion/kind are the same by construction, and list items omit
    // them; identity for the ignore rules comes from the desired object.
    if let Some(m) = o.as_object_mut() {
        for k in ["status", "apiVersion", "kind"] {
            m.remove(k);
        }
    }
    let kind = target["kind"].as_str().unwrap_or("").to_owned();
    let name = target["metadata"]["name"].as_str().unwrap_or("").to_owned();
    let ns = target["metadata"]["namespace"].as_str().map(str::to_owned);
    for rule in ignores {
        let t = rule.target.clone().unwrap_or_default();
        let matches = t.kind.as_deref().is_none_or(|k| k == kind)
            && t.name.as_deref().is_none_or(|n| n == name)
            && t.namespace
                .as_deref()
                .is_none_or(|n| Some(n) == ns.as_deref());
        if matches {
            for p in &rule.paths {
                remove_pointer(&mut o, p);
            }
        }
    }
    o
}

fn remove_pointer(o: &mut Json, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    match o.pointer_mut(parent) {
        Some(Json::Object(m)) => {
            m.remove(&last);
        }
        Some(Json::Array(a)) => {
            if let Ok(i) = last.parse::<usize>()
                && i < a.len()
            {
                a.remove(i);
            }
        }
        _ => {}
    }
}

/// JSON pointers at which `a` and `b` differ (leaves and added/removed keys).
pub fn diff_paths(a: &Json, b: &Json) -> Vec<String> {
    let mut out = Vec::new();
    diff_into(a, b, String::new(), &mut out);
    out
}

fn diff_into(a: &Json, b: &Json, path: String, out: &mut Vec<String>) {
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = format!("{path}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => diff_into(u, v, p, out),
                    _ => out.push(p),
                }
            }
        }
        (Json::Array(x), Json::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                diff_into(u, v, format!("{path}/{i}"), out);
            }
        }
        _ if a == b => {}
        _ => out.push(if path.is_empty() { "/".into() } else { path }),
    }
}

/// Age of an RFC 3339 UTC timestamp (`...Z`), if parseable.
fn parse_rfc3339_age(ts: &str) -> Option<Duration> {
    let b = ts.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let n = |r: std::ops::Range<usize>| ts.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, s) = (
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    );
    // Days from civil (Howard Hinnant).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (mo + if mo > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let then = days * 86_400 + h * 3600 + mi * 60 + s;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs() as i64;
    Some(Duration::from_secs((now - then).max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_typos_refuse_the_revision_naming_where() {
        let obj = |key: &str, v: Json| json!({"kind": "ConfigMap", "metadata": {"name": "c", "annotations": {key: v}}});
        for (key, v) in [
            (SSA_ANNOTATION, json!("Merge")),
            (SSA_ANNOTATION, json!("IfNotPresent")),
            (PRUNE_ANNOTATION, json!("disabled")),
            ("example.com/other", json!("anything")),
        ] {
            assert!(check_annotations(&obj(key, v), "ConfigMap", "c", "a.yaml:3").is_ok());
        }
        let e = check_annotations(
            &obj(SSA_ANNOTATION, json!("ifnotpresent")),
            "ConfigMap",
            "c",
            "a.yaml:3",
        )
        .unwrap_err()
        .to_string();
        for part in [
            "a.yaml:3",
            "ConfigMap c",
            SSA_ANNOTATION,
            "\"ifnotpresent\"",
            "IfNotPresent",
        ] {
            assert!(e.contains(part), "{part} missing: {e}");
        }
        let long = "x".repeat(40);
        let e = check_annotations(
            &obj(PRUNE_ANNOTATION, json!(long)),
            "ConfigMap",
            "c",
            "a.yaml:3",
        )
        .unwrap_err()
        .to_string();
        assert!(!e.contains(&long) && e.contains("40-character"), "{e}");
        assert!(
            check_annotations(
                &obj(RECREATE_ANNOTATION, json!(true)),
                "ConfigMap",
                "c",
                "x"
            )
            .is_err()
        );
    }

    #[test]
    fn ids_stages_and_diffs() {
        assert_eq!(
            object_id(Some("ns"), "web", "apps/v1", "Deployment"),
            "ns_web_apps_Deployment"
        );
        assert_eq!(object_id(None, "x", "v1", "Namespace"), "_x__Namespace");
        assert_eq!(stage_of("CustomResourceDefinition"), 0);
        assert_eq!(stage_of("IngressClass"), 1);
        assert_eq!(stage_of("Deployment"), 2);
        assert_eq!(stage_of("ValidatingWebhookConfiguration"), 3);
        let a = json!({"spec": {"replicas": 1, "x": [1, 2]}, "metadata": {"resourceVersion": "1"}});
        let b = json!({"spec": {"replicas": 3, "x": [1, 2], "y": 1}, "metadata": {"resourceVersion": "2"}});
        assert_eq!(
            diff_paths(&normalise(&a, &[], &a), &normalise(&b, &[], &a)),
            ["/spec/replicas", "/spec/y"]
        );
        let ignore = [super::super::spec::DriftIgnore {
            paths: vec!["/spec/replicas".into(), "/spec/y".into()],
            target: None,
        }];
        assert!(diff_paths(&normalise(&a, &ignore, &a), &normalise(&b, &ignore, &a)).is_empty());
    }

    #[test]
    fn drift_is_attributed_to_the_manager_owning_the_field() {
        let live = json!({
            "metadata": {"managedFields": [
                {"manager": "sealgate", "operation": "Apply", "time": "2026-01-01T00:00:00Z",
                 "fieldsV1": {"f:data": {"f:other": {}}}},
                {"manager": "kubectl-edit", "operation": "Update", "time": "2026-01-01T00:00:01Z",
                 "fieldsV1": {"f:data": {"f:mode": {}}}},
                {"manager": "hpa", "operation": "Update", "time": "2026-01-01T00:00:02Z",
                 "fieldsV1": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {"f:image": {}}}}}},
                {"manager": "kubelet", "operation": "Update", "subresource": "status",
                 "time": "2026-01-01T00:00:09Z", "fieldsV1": {"f:status": {}}}
            ]},
            "data": {"mode": "red"},
            "spec": {"containers": [{"name": "app", "image": "x"}]}
        });
        assert_eq!(
            drift_managers(&live, &["/data/mode".into()]),
            ["kubectl-edit"]
        );
        assert_eq!(
            drift_managers(&live, &["/spec/containers/0/image".into()]),
            ["hpa"]
        );
        // A removed field nobody owns: the latest non-status manager.
        assert_eq!(drift_managers(&live, &["/data/gone".into()]), ["hpa"]);
        assert_eq!(drift_managers(&json!({}), &["/x".into()]), ["unknown"]);
    }

    #[test]
    fn timestamps_age() {
        let age = parse_rfc3339_age(&now_rfc3339()).expect("parse");
        assert!(age < Duration::from_secs(5));
        assert!(
            parse_rfc3339_age("2000-01-01T00:00:00Z").expect("old")
                > Duration::from_secs(86_400 * 365 * 20)
        );
    }

    #[test]
    fn health_rules() {
        assert!(healthy(&json!({"kind": "ConfigMap"})));
        assert!(!healthy(
            &json!({"kind": "Deployment", "metadata": {"generation": 2}, "status": {"observedGeneration": 1}})
        ));
        assert!(healthy(
            &json!({"kind": "Deployment", "metadata": {"generation": 1}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "readyReplicas": 2, "updatedReplicas": 2}})
        ));
    }
}
