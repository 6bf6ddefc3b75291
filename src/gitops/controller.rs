//! The GitSync controller: the kube-rs runtime around [`super::sync`].
//!
//! Design note: one reconcile per GitSync at a time (kube-rs serialises per
//! object). The cheap path — resolve the ref, see the commit was applied and
//! no drift check is due — costs one Git round trip and no API writes; a
//! full reconcile runs every `interval`. The dry-run cache lives here, per
//! GitSync, so an unchanged cluster costs about one LIST per kind. Status is
//! written only when it changed, as a merge patch that replaces the whole
//! status (absent fields sent as `null`, so nothing stale survives); a new
//! revision additionally gets one interim write (`Reconciling=True`) before
//! its first apply. Events go out on changes, drift and refusals (names
//! only; messages were scrubbed by the sync). Every reconcile feeds the
//! [`GitOpsMetrics`] served on `/metrics`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use super::metrics::GitOpsMetrics;
use super::spec::{GitSync, GitSyncStatus};
use super::sync::{self, DryRunCache, ProgressHook, SyncContext};

/// How the GitSync controller runs.
#[derive(Clone, Debug)]
pub struct GitOpsOptions {
    /// Watch one namespace, or all.
    pub namespace: Option<String>,
    /// Git object cache.
    pub cache_dir: PathBuf,
    /// Client configuration, needed to impersonate `serviceAccountName`.
    pub config: Option<kube::Config>,
    /// Parallel reconciles (different GitSyncs).
    pub concurrency: u16,
    /// Event reporter instance (pod name).
    pub instance: Option<String>,
    /// Where reconciles are counted (served on `/metrics` by the CLI).
    pub metrics: Arc<GitOpsMetrics>,
}

impl Default for GitOpsOptions {
    fn default() -> Self {
        Self {
            namespace: None,
            cache_dir: std::env::temp_dir().join("sealgate-git-cache"),
            config: None,
            concurrency: 2,
            instance: None,
            metrics: Arc::default(),
        }
    }
}

/// Shared reconcile state.
struct Ctx {
    client: Client,
    options: GitOpsOptions,
    recorder: Recorder,
    caches: Mutex<HashMap<String, DryRunCache>>,
}

/// Why a reconcile request failed at the controller level (the sync itself
/// reports through status; this is only for status writes).
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The status could not be written.
    #[error("writing status: {0}")]
    Status(#[from] kube::Error),
}

impl ControllerError {
    /// One CamelCase word for metric labels.
    pub fn metric_label(&self) -> &'static str {
        "StatusWriteFailed"
    }
}

/// Runs the GitSync controller until the process ends.
pub async fn run(client: Client, options: GitOpsOptions) {
    run_until(client, options, std::future::pending()).await;
}

/// Runs the GitSync controller until `shutdown` resolves.
pub async fn run_until(
    client: Client,
    options: GitOpsOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let api: Api<GitSync> = match &options.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let reporter = Reporter {
        controller: "sealgate-gitops".into(),
        instance: options.instance.clone(),
    };
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        caches: Mutex::new(HashMap::new()),
        options: options.clone(),
    });
    ctx.options.metrics.set_ready(true);
    Controller::new(api, watcher::Config::default())
        .with_config(kube::runtime::controller::Config::default().concurrency(options.concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "gitsync reconcile request failed");
            }
        })
        .await;
}

/// Replaces the status (absent fields deleted), so no stale message,
/// inventory or condition outlives the reconcile that dropped it.
async fn write_status(
    api: &Api<GitSync>,
    name: &str,
    st: &GitSyncStatus,
) -> Result<(), kube::Error> {
    api.patch_status(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(st.replacing_patch()),
    )
    .await
    .map(|_| ())
}

fn error_policy(_obj: Arc<GitSync>, _err: &ControllerError, _ctx: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_secs(30))
}

async fn reconcile(gs: Arc<GitSync>, ctx: Arc<Ctx>) -> Result<Action, ControllerError> {
    let ns = gs.namespace().unwrap_or_default();
    let name = gs.name_any();
    if gs.spec.suspend == Some(true) {
        return Ok(Action::await_change());
    }
    let started = std::time::Instant::now();
    let key = format!("{ns}/{name}");
    let api: Api<GitSync> = Api::namespaced(ctx.client.clone(), &ns);
    let progressed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hook: ProgressHook = {
        let api = api.clone();
        let name = name.clone();
        let progressed = Arc::clone(&progressed);
        Arc::new(move |interim: GitSyncStatus| {
            let api = api.clone();
            let name = name.clone();
            let progressed = Arc::clone(&progressed);
            Box::pin(async move {
                // Best effort: a failed interim write only loses the
                // Reconciling=True display; the final write still happens.
                match write_status(&api, &name, &interim).await {
                    Ok(()) => progressed.store(true, std::sync::atomic::Ordering::Relaxed),
                    Err(e) => tracing::debug!(error = %e, "could not write Reconciling status"),
                }
            })
        })
    };
    let mut cache = ctx
        .caches
        .lock()
        .map(|mut c| c.remove(&key).unwrap_or_default())
        .unwrap_or_default();
    let sctx = SyncContext {
        client: ctx.client.clone(),
        config: ctx.options.config.clone(),
        cache_dir: ctx.options.cache_dir.clone(),
        dry_run: false,
        force: false,
        progress: Some(hook),
    };
    let previous = gs.status.clone().unwrap_or_default();
    let (status, report) = sync::reconcile(&gs, &previous, &sctx, &mut cache).await;
    if let Ok(mut c) = ctx.caches.lock() {
        c.insert(key, cache);
    }
    ctx.options
        .metrics
        .record(&ns, &name, &report, started.elapsed());
    let changed = progressed.load(std::sync::atomic::Ordering::Relaxed)
        || gs.status.as_ref() != Some(&status);
    if changed && let Err(e) = write_status(&api, &name, &status).await {
        ctx.options.metrics.status_write_failed();
        return Err(e.into());
    }
    let ready_changed = previous
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone()))
        != status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| (c.status.clone(), c.reason.clone()));
    if !report.ok && ready_changed {
        publish(
            &ctx,
            &gs,
            EventType::Warning,
            &report.reason,
            report.message.clone(),
        )
        .await;
    } else if report.ok && (!report.applied.is_empty() || !report.pruned.is_empty()) {
        publish(
            &ctx,
            &gs,
            EventType::Normal,
            "Applied",
            report.message.clone(),
        )
        .await;
    }
    if !report.drifted.is_empty() {
        let corrected = gs.spec.effective_drift_mode() == super::spec::DriftMode::Correct;
        let reason = if corrected {
            "DriftCorrected"
        } else {
            "DriftDetected"
        };
        let note = format!(
            "{} objects drifted: {}",
            report.drifted.len(),
            report
                .drifted
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
        publish(&ctx, &gs, EventType::Warning, reason, note).await;
    }
    let next = if report.ok {
        gs.spec
            .effective_poll_interval()
            .min(gs.spec.effective_interval())
    } else if report.stalled {
        gs.spec.effective_interval()
    } else {
        gs.spec.effective_retry_interval()
    };
    Ok(Action::requeue(next))
}

async fn publish(ctx: &Ctx, gs: &GitSync, type_: EventType, reason: &str, note: String) {
    let mut note = note;
    if note.len() > 1000 {
        let mut end = 1000;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
    }
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &gs.object_ref(&())).await {
        tracing::debug!(error = %e, "could not publish event");
    }
}
