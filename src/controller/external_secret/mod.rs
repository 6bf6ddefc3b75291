//! The `ExternalSecret` reconciler: values from a store become a
//! Kubernetes Secret, refreshed on schedule.
//!
//! Design note: one reconcile resolves the store (with the multi-tenancy
//! checks in [`super::stores`]), fetches every reference through the store's
//! shared cache, shapes the result ([`render`]), compares it with the
//! Secret that is there and applies (server-side apply) only when something
//! differs — a steady state costs backend reads but no API writes, not even
//! status writes. Any failure leaves the existing Secret exactly as it was;
//! status `Ready=False` and a Warning event carry the reason.
//!
//! Who owns the Secret follows `creationPolicy`: `Owner` (owner reference,
//! our labels, field manager `sealgate`), `Orphan` (our labels, no owner
//! reference), `Merge` (only our keys, into a Secret that must exist, under
//! a field manager of its own per ExternalSecret so two ExternalSecrets can
//! merge into one Secret without removing each other's keys). Deletion
//! honours `deletionPolicy`; a finalizer is added only where deletion needs
//! the controller ([`needs_finalizer`]), otherwise the owner reference and
//! the garbage collector do it and creating the object costs a write less.
//!
//! Scheduling: `refreshInterval` (default 1h, `0` = fetch once) on
//! *slots*: wall-clock instants `phase + n·interval`, where the phase is a
//! stable hash of the store and the remote keys an object reads. Different
//! keys get different phases (the spread jitter gives, so a fleet does not
//! refresh at once), while every object reading the same keys comes due at
//! the same instant and asks the store for data read at or after that
//! instant ([`crate::providers::Provider::fetch_since`]): the first one
//! reads and the rest of the wave share its copy — one backend call per
//! distinct secret per refresh, however many objects read it. A backend
//! change is still picked up within one interval. After a controller start, objects that were already synced at
//! their current generation wait a random part of their interval (at most
//! five minutes) before their first fetch, so never-synced objects are
//! served first and a restart does not stampede the backends.
//!
//! Dynamic (leased) secrets: the lease manager owns renewals; the
//! reconciler issues a credential only when there is no usable lease (none
//! tracked and none to resume from the Secret's `sealgate.dev/lease-id`
//! annotation, or a re-issue is due), writes it, then hands the lease over.

pub mod render;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::{Stream, StreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, PartialObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Resource, ResourceExt};
use serde_json::json;

pub use super::leases::{LeaseManager, LeaseOwner, LeasePolicy, LeaseView};
pub use super::restarts::Restarter;

use super::api::{
    ClusterSecretStore, CreationPolicy, DeletionPolicy, ExpirePolicy, ExternalSecret, RemoteRef,
    SecretStore, StoreKind, WorkloadRef,
};
use super::context::Context;
use super::sops_secret::{
    FIELD_MANAGER, MANAGED_BY, MANAGED_BY_LABEL, OWNER_ANNOTATION, OWNER_LABEL,
    owner_label_shortened, owner_label_value,
};
use super::status::{self, condition, ready};
use super::stores::StoreError;
use crate::providers::{Decoding, FindQuery, ProviderError, Reference};
use crate::secret::{ExposeSecret, SecretBytes};
use crate::sops::engine::format_unix;
use render::RenderError;

/// Label on a Secret that `Merge` ExternalSecrets write into, applied under
/// each one's own field manager (so it goes with the last of them): it lets
/// the controller watch merge targets — a deleted target or an edited key
/// is noticed at once, not at the next refresh — without watching every
/// Secret in the cluster.
pub const MERGE_TARGET_LABEL: &str = "sealgate.dev/merge-target";

/// Finalizer that runs an explicit `deletionPolicy` and releases leases
/// (only on objects whose deletion needs the controller).
pub const FINALIZER: &str = "sealgate.dev/externalsecret";
/// Annotation with the id of the lease backing a dynamic Secret.
pub const LEASE_ID_ANNOTATION: &str = "sealgate.dev/lease-id";
/// Annotation with the lease's expiry (RFC 3339).
pub const LEASE_EXPIRES_ANNOTATION: &str = "sealgate.dev/lease-expires-at";
/// Annotation on an ExternalSecret naming workloads to roll on change
/// (`deployment/api,statefulset/db`).
pub const RESTART_ANNOTATION: &str = "sealgate.dev/restart";
/// Metric `kind` label.
const KIND: &str = "ExternalSecret";

/// Default `refreshInterval`.
const DEFAULT_REFRESH: Duration = Duration::from_secs(3600);
/// Retry delay after a failure that may heal by itself.
const RETRY: Duration = Duration::from_secs(30);
/// Longest start-up deferral of an already-synced object.
const MAX_STARTUP_SPREAD: Duration = Duration::from_secs(300);

/// Why an ExternalSecret could not be synced. Messages name objects, keys
/// and stores, never values.
#[derive(Debug, thiserror::Error)]
pub enum ExternalSecretError {
    /// The spec is contradictory or asks for something refused.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// The store cannot be used by this object.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The backend failed or refused a read.
    #[error("{0}")]
    Provider(#[from] ProviderError),
    /// The values could not be shaped into a Secret.
    #[error("{0}")]
    Render(#[from] RenderError),
    /// A Secret of that name exists and is not this object's.
    #[error(
        "Secret {0} exists and is not managed by this ExternalSecret; refusing to take it over (use creationPolicy: Merge to add keys to it)"
    )]
    NotOwned(String),
    /// `Merge` needs an existing Secret.
    #[error("Secret {0} does not exist; creationPolicy Merge only adds keys to an existing Secret")]
    MergeTargetMissing(String),
    /// The apiserver failed a request.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl ExternalSecretError {
    /// One CamelCase word for status reasons, events and metric labels.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::InvalidSpec(_) => "InvalidSpec",
            Self::Store(e) => e.metric_label(),
            Self::Provider(e) => match e {
                ProviderError::NotFound { .. } => "SecretNotFoundInBackend",
                ProviderError::PermissionDenied { .. } => "BackendPermissionDenied",
                ProviderError::Unauthenticated { .. } => "AuthenticationFailed",
                ProviderError::Throttled { .. } | ProviderError::Unavailable { .. } => {
                    "BackendUnavailable"
                }
                ProviderError::Invalid { .. } => "InvalidReference",
            },
            Self::Render(RenderError::ForbiddenType(_)) => "ForbiddenType",
            Self::Render(RenderError::Template { .. }) => "TemplateFailed",
            Self::Render(_) => "InvalidData",
            Self::NotOwned(_) => "SecretNotOwned",
            Self::MergeTargetMissing(_) => "MergeTargetMissing",
            Self::Kube(_) => "KubernetesError",
            Self::Finalizer(_) => "FinalizerFailed",
        }
    }

    /// Whether waiting may fix it (backend back, Secret created, ...).
    pub fn retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.retryable(),
            Self::Provider(e) => e.is_retryable() || matches!(e, ProviderError::NotFound { .. }),
            Self::Kube(_) | Self::Finalizer(_) | Self::MergeTargetMissing(_) => true,
            Self::NotOwned(_) => true,
            Self::InvalidSpec(_) | Self::Render(_) => false,
        }
    }
}

/// What a successful sync did.
struct Outcome {
    secret: String,
    resource_version: Option<String>,
    wrote: bool,
    /// The write created the Secret (no Event: status says it, and a fleet
    /// of new objects would cost as many Event writes as Secret writes).
    created: bool,
    lease_expires: Option<SystemTime>,
}

/// The shaped Secret.
struct Desired {
    type_: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    data: BTreeMap<String, SecretBytes>,
}

/// Runs the ExternalSecret controller until `shutdown` resolves. Watches
/// ExternalSecrets, the metadata of the Secrets sealgate manages and of
/// the Secrets `Merge` objects write into (a deleted or edited Secret is
/// repaired promptly without caching values),
/// stores (a store's spec change re-reconciles its ExternalSecrets), and
/// the lease manager's triggers.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    concurrency: u16,
    lease_triggers: impl Stream<Item = ObjectRef<ExternalSecret>> + Send + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let (es_api, secret_api, store_api): (
        Api<ExternalSecret>,
        Api<PartialObjectMeta<Secret>>,
        Api<SecretStore>,
    ) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
        ),
    };
    let merged = watcher::watcher(
        secret_api.clone(),
        watcher::Config::default().labels(&format!("{MERGE_TARGET_LABEL}=true")),
    )
    .touched_objects();
    let cluster_store_api: Api<ClusterSecretStore> = Api::all(client.clone());
    let owned = watcher::watcher(
        secret_api,
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}")),
    )
    .touched_objects();
    // Only spec (generation) and annotation changes trigger: our own status
    // and finalizer writes would otherwise double the reconciles (the
    // finalizer is added and the object synced in one pass, see
    // `reconcile`). Deletion bumps the generation of an object with
    // finalizers, so it passes.
    // managedFields are dropped from the cache: at 10,000 objects they are
    // a large share of the controller's memory and nothing reads them.
    let (reader, writer) = kube::runtime::reflector::store();
    let es_events = watcher::watcher(es_api, watcher::Config::default())
        .default_backoff()
        .modify(|es: &mut ExternalSecret| es.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            kube::runtime::Predicate::combine(
                predicates::generation as fn(&ExternalSecret) -> Option<u64>,
                predicates::annotations as fn(&ExternalSecret) -> Option<u64>,
            ),
            Default::default(),
        );
    let controller = Controller::for_stream(es_events, reader.clone());
    let reader2 = reader.clone();
    let reader3 = reader.clone();
    let stores = watcher::watcher(store_api, watcher::Config::default())
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let cluster_stores = watcher::watcher(cluster_store_api, watcher::Config::default())
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let echo_ctx = Arc::clone(&ctx);
    let merge_echo_ctx = Arc::clone(&ctx);
    controller
        .watches_stream(owned, move |s: PartialObjectMeta<Secret>| {
            let ns = s.namespace();
            let key = format!("{}/{}", ns.as_deref().unwrap_or_default(), s.name_any());
            if echo_ctx.is_echo(&key, s.resource_version().as_deref()) {
                return None;
            }
            // The annotation holds the full name when the label had to be
            // shortened.
            s.annotations()
                .get(OWNER_ANNOTATION)
                .or_else(|| s.labels().get(OWNER_LABEL))
                .and_then(|v| v.strip_prefix("ExternalSecret."))
                .zip(ns)
                .map(|(name, ns)| ObjectRef::new(name).within(&ns))
        })
        .watches_stream(merged, move |s: PartialObjectMeta<Secret>| {
            // Every Merge ExternalSecret writing into this Secret.
            let ns = s.namespace();
            let name = s.name_any();
            let key = format!("{}/{name}", ns.as_deref().unwrap_or_default());
            if merge_echo_ctx.is_echo(&key, s.resource_version().as_deref()) {
                return Vec::new();
            }
            reader3
                .state()
                .into_iter()
                .filter(|es| {
                    es.namespace() == ns
                        && creation_policy(es) == CreationPolicy::Merge
                        && target_name(es) == name
                })
                .map(|es| ObjectRef::from_obj(&*es))
                .collect::<Vec<_>>()
        })
        .watches_stream(stores, move |s: SecretStore| {
            let ns = s.namespace();
            let name = s.name_any();
            reader
                .state()
                .into_iter()
                .filter(|es| {
                    let r = &es.spec.secret_store_ref;
                    r.effective_kind() == StoreKind::SecretStore
                        && r.name == name
                        && es.namespace() == ns
                })
                .map(|es| ObjectRef::from_obj(&*es))
                .collect::<Vec<_>>()
        })
        .watches_stream(cluster_stores, move |s: ClusterSecretStore| {
            let name = s.name_any();
            reader2
                .state()
                .into_iter()
                .filter(|es| {
                    let r = &es.spec.secret_store_ref;
                    r.effective_kind() == StoreKind::ClusterSecretStore && r.name == name
                })
                .map(|es| ObjectRef::from_obj(&*es))
                .collect::<Vec<_>>()
        })
        .reconcile_on(lease_triggers)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "externalsecret reconcile request failed");
            }
        })
        .await;
}

fn error_policy(es: Arc<ExternalSecret>, err: &ExternalSecretError, ctx: Arc<Context>) -> Action {
    let interval = refresh_interval(&es).unwrap_or(DEFAULT_REFRESH);
    let delay = if err.retryable() {
        if interval.is_zero() {
            RETRY
        } else {
            RETRY.min(interval)
        }
    } else if interval.is_zero() {
        MAX_STARTUP_SPREAD
    } else {
        interval.max(RETRY)
    };
    Action::requeue(jittered(delay, ctx.jitter))
}

/// One reconcile of one ExternalSecret: through the finalizer when its
/// deletion needs us ([`needs_finalizer`]), straight to [`apply`] otherwise.
pub async fn reconcile(
    es: Arc<ExternalSecret>,
    ctx: Arc<Context>,
) -> Result<Action, ExternalSecretError> {
    let started = Instant::now();
    let result = if needs_finalizer(&es) || es.meta().deletion_timestamp.is_some() {
        reconcile_with_finalizer(es, &ctx).await
    } else {
        reconcile_without_finalizer(es, &ctx).await
    };
    ctx.metrics.reconciled(
        KIND,
        started.elapsed(),
        result.as_ref().err().map(ExternalSecretError::metric_label),
    );
    result
}

async fn reconcile_with_finalizer(
    es: Arc<ExternalSecret>,
    ctx: &Arc<Context>,
) -> Result<Action, ExternalSecretError> {
    let ns = es.namespace().unwrap_or_default();
    let api: Api<ExternalSecret> = Api::namespaced(ctx.client.clone(), &ns);
    let ctx2 = Arc::clone(ctx);
    // The finalizer helper only adds our finalizer on first sight and
    // waits for the watch to bring the object back; syncing in the same
    // pass saves a round trip per new object (the ExternalSecret watch does
    // not trigger on finalizer changes).
    let adding = es.meta().deletion_timestamp.is_none() && !has_finalizer(&es);
    let first = Arc::clone(&es);
    let result = finalizer(&api, FINALIZER, es, |event| async move {
        match event {
            finalizer::Event::Apply(es) => apply(es, &ctx2).await,
            finalizer::Event::Cleanup(es) => cleanup(es, &ctx2).await,
        }
    })
    .await
    .map_err(|e| match e {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        other => ExternalSecretError::Finalizer(other.to_string()),
    });
    match result {
        Ok(_) if adding => apply(first, ctx).await,
        other => other,
    }
}

/// No clean-up is ours to do at deletion, so no finalizer: one API write
/// fewer per new object (a third of the initial sync's writes). A finalizer
/// left from an earlier spec is removed first, so deleting the object never
/// waits on a clean-up that no longer applies.
async fn reconcile_without_finalizer(
    es: Arc<ExternalSecret>,
    ctx: &Arc<Context>,
) -> Result<Action, ExternalSecretError> {
    if let Some(i) = es.finalizers().iter().position(|f| f == FINALIZER) {
        let ns = es.namespace().unwrap_or_default();
        let api: Api<ExternalSecret> = Api::namespaced(ctx.client.clone(), &ns);
        // `test` first: a concurrent change to the list fails the patch
        // instead of removing someone else's finalizer.
        let patch: json_patch::Patch = serde_json::from_value(json!([
            {"op": "test", "path": format!("/metadata/finalizers/{i}"), "value": FINALIZER},
            {"op": "remove", "path": format!("/metadata/finalizers/{i}")},
        ]))
        .map_err(|e| ExternalSecretError::Finalizer(e.to_string()))?;
        api.patch(
            &es.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await
        .map_err(|e| ExternalSecretError::Finalizer(e.to_string()))?;
    }
    apply(es, ctx).await
}

fn has_finalizer(es: &ExternalSecret) -> bool {
    es.finalizers().iter().any(|f| f == FINALIZER)
}

/// The `deletionPolicy` in force. Unset, the Secret follows its owner
/// reference, as in External Secrets Operator: an `Owner` Secret goes with
/// the ExternalSecret (garbage collector), `Orphan` and `Merge` ones stay.
fn deletion_policy(es: &ExternalSecret) -> DeletionPolicy {
    let explicit = es.spec.target.as_ref().and_then(|t| t.deletion_policy);
    explicit.unwrap_or(match creation_policy(es) {
        CreationPolicy::Owner => DeletionPolicy::Delete,
        CreationPolicy::Merge | CreationPolicy::Orphan => DeletionPolicy::Retain,
    })
}

/// Whether deleting `es` needs the controller (and so a finalizer): leases
/// to revoke, or a `deletionPolicy` the garbage collector would not carry
/// out by itself. An explicit `Delete` is enforced by the controller even
/// for `Owner` (it holds under `--cascade=orphan` and on clusters whose
/// garbage collector lags); an explicit `Retain` on `Owner` must drop the
/// owner reference before the collector sees the deletion.
fn needs_finalizer(es: &ExternalSecret) -> bool {
    let explicit = es.spec.target.as_ref().and_then(|t| t.deletion_policy);
    let leased = es.spec.data_from.iter().any(|d| d.dynamic.is_some());
    leased
        || match (creation_policy(es), explicit) {
            (_, None) => false,
            (CreationPolicy::Owner, Some(_)) => true,
            (CreationPolicy::Merge | CreationPolicy::Orphan, Some(DeletionPolicy::Delete)) => true,
            (CreationPolicy::Merge | CreationPolicy::Orphan, Some(DeletionPolicy::Retain)) => false,
        }
}

fn refresh_interval(es: &ExternalSecret) -> Result<Duration, ExternalSecretError> {
    match &es.spec.refresh_interval {
        None => Ok(DEFAULT_REFRESH),
        Some(s) => render::parse_duration("spec.refreshInterval", s).map_err(Into::into),
    }
}

/// Where in each interval the refresh slots of `es` fall: the same for
/// every object reading the same keys through the same store (so they
/// share reads), different across keys (so refreshes spread out). Zero
/// when jitter is off. FNV-1a: stable across processes and replicas.
fn phase(es: &ExternalSecret, interval: Duration) -> Duration {
    let millis = interval.as_millis() as u64;
    if millis == 0 {
        return Duration::ZERO;
    }
    let r = &es.spec.secret_store_ref;
    let mut keys = super::stores::remote_keys(es);
    keys.sort();
    keys.dedup();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let kind = format!("{:?}", r.effective_kind());
    let ns = es.namespace().unwrap_or_default();
    // A namespaced store is a different store in every namespace.
    let store_ns = match r.effective_kind() {
        StoreKind::SecretStore => ns.as_str(),
        StoreKind::ClusterSecretStore => "",
    };
    for part in [kind.as_str(), store_ns, r.name.as_str()]
        .into_iter()
        .chain(keys.iter().map(String::as_str))
    {
        for b in part.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    Duration::from_millis(h % millis)
}

/// The refresh slot `now` falls in: (its start, the next slot's start).
fn slot(now: SystemTime, interval: Duration, phase: Duration) -> (SystemTime, SystemTime) {
    let iv = interval.as_millis().max(1);
    let t = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let p = phase.as_millis() % iv;
    // Time since the last slot start, modulo the interval (t + iv - p ≥ 0).
    let into = (t + iv - p) % iv;
    let start = SystemTime::UNIX_EPOCH + Duration::from_millis(t.saturating_sub(into) as u64);
    (start, start + interval)
}

/// `d` ± 10%, unless jitter is off.
fn jittered(d: Duration, jitter: bool) -> Duration {
    if !jitter || d.is_zero() {
        return d;
    }
    d.mul_f64(0.9 + 0.2 * random_fraction())
}

fn random_fraction() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

fn target_name(es: &ExternalSecret) -> String {
    es.spec
        .target
        .as_ref()
        .and_then(|t| t.name.clone())
        .unwrap_or_else(|| es.name_any())
}

fn creation_policy(es: &ExternalSecret) -> CreationPolicy {
    es.spec
        .target
        .as_ref()
        .and_then(|t| t.creation_policy)
        .unwrap_or(CreationPolicy::Owner)
}

fn owner_label(es: &ExternalSecret) -> String {
    owner_label_value(KIND, &es.name_any())
}

/// Annotations to apply: the template's, plus the full owner name when the
/// owner label is shortened.
fn full_annotations(
    es: &ExternalSecret,
    policy: CreationPolicy,
    d: &Desired,
) -> BTreeMap<String, String> {
    let mut annotations = d.annotations.clone();
    if policy != CreationPolicy::Merge && owner_label_shortened(KIND, &es.name_any()) {
        annotations.insert(OWNER_ANNOTATION.into(), format!("{KIND}.{}", es.name_any()));
    }
    annotations
}

fn merge_manager(es: &ExternalSecret) -> String {
    let mut m = format!("sealgate.{}", es.name_any());
    m.truncate(128);
    m
}

/// Whether the SecretSynced condition says this generation was synced.
fn synced_at_generation(es: &ExternalSecret) -> bool {
    es.status.as_ref().is_some_and(|s| {
        s.conditions.iter().any(|c| {
            c.type_ == "SecretSynced"
                && c.status == "True"
                && c.observed_generation == es.meta().generation
        })
    })
}

async fn apply(es: Arc<ExternalSecret>, ctx: &Context) -> Result<Action, ExternalSecretError> {
    let ns = es.namespace().unwrap_or_default();
    let name = es.name_any();
    let interval = match refresh_interval(&es) {
        Ok(i) => i,
        Err(e) => return report(&es, ctx, Err(e)).await,
    };
    let first = ctx.first_sight(&es.uid().unwrap_or_default());
    if synced_at_generation(&es) && (first || interval.is_zero()) {
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        if secrets.get_metadata_opt(&target_name(&es)).await?.is_some() {
            if interval.is_zero() {
                // Fetch once: done for this generation.
                return Ok(Action::await_change());
            }
            // Already synced before this start: serve never-synced
            // objects first and spread the backend load.
            let spread = interval.min(MAX_STARTUP_SPREAD);
            let wait = if ctx.jitter {
                spread.mul_f64(random_fraction())
            } else {
                Duration::ZERO
            };
            if !wait.is_zero() {
                tracing::debug!(namespace = %ns, name = %name, ?wait, "deferring first refresh after start");
                return Ok(Action::requeue(wait));
            }
        }
    }
    let now = SystemTime::now();
    let (floor, next) = if interval.is_zero() {
        // Fetch once: data as new as the object itself.
        let created = es
            .meta()
            .creation_timestamp
            .as_ref()
            .and_then(|t| {
                SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(
                    u64::try_from(t.0.as_second()).unwrap_or(0),
                ))
            })
            .unwrap_or(now);
        (created, now)
    } else {
        let p = if ctx.jitter {
            phase(&es, interval)
        } else {
            Duration::ZERO
        };
        slot(now, interval, p)
    };
    let result = sync(&es, ctx, &ns, floor).await;
    let ok = result.is_ok();
    report(&es, ctx, result).await?;
    if ok && interval.is_zero() {
        return Ok(Action::await_change());
    }
    // Just after the next slot starts, so the floor has moved on.
    let wait =
        next.duration_since(SystemTime::now()).unwrap_or_default() + Duration::from_millis(50);
    Ok(Action::requeue(wait))
}

/// Records the outcome in status (only when it changed) and events.
async fn report(
    es: &ExternalSecret,
    ctx: &Context,
    result: Result<Outcome, ExternalSecretError>,
) -> Result<Action, ExternalSecretError> {
    let ns = es.namespace().unwrap_or_default();
    let name = es.name_any();
    let api: Api<ExternalSecret> = Api::namespaced(ctx.client.clone(), &ns);
    let generation = es.meta().generation;
    let old = es.status.clone();
    let mut st = old.clone().unwrap_or_default();
    match result {
        Ok(o) => {
            // The same words whether or not this pass wrote, so the
            // reconcile our own write triggers finds status unchanged.
            let message = format!("Secret {} is in sync with the store", o.secret);
            status::set(
                &mut st.conditions,
                ready(true, "SecretSynced", &message, generation),
            );
            status::set(
                &mut st.conditions,
                condition("SecretSynced", true, "SecretSynced", &message, generation),
            );
            if o.wrote || st.refresh_time.is_none() {
                st.refresh_time = Some(crate::sops::engine::now_rfc3339());
            }
            st.synced_resource_version = o.resource_version;
            st.lease_expires_at = o.lease_expires.map(rfc3339);
            status::patch_if_changed(&api, &name, old.as_ref(), &st).await?;
            if o.wrote {
                ctx.metrics.secret_written(KIND);
                if !o.created {
                    let note = format!("Secret {} rewritten from the store", o.secret);
                    publish(ctx, es, EventType::Normal, "Updated", note).await;
                }
            } else {
                ctx.metrics.write_skipped();
            }
            tracing::info!(namespace = %ns, name = %name, secret = %o.secret, wrote = o.wrote, "externalsecret synced");
            Ok(Action::await_change())
        }
        Err(err) => {
            let reason = err.metric_label();
            let message = err.to_string();
            tracing::warn!(namespace = %ns, name = %name, reason, error = %message, "externalsecret not synced; existing Secret left unchanged");
            let changed = status::set(
                &mut st.conditions,
                ready(false, reason, &message, generation),
            );
            if !st.conditions.iter().any(|c| c.type_ == "SecretSynced") {
                status::set(
                    &mut st.conditions,
                    condition("SecretSynced", false, reason, &message, generation),
                );
            }
            // A status write failure must not hide the original error.
            let _ = status::patch_if_changed(&api, &name, old.as_ref(), &st).await;
            if changed {
                publish(ctx, es, EventType::Warning, reason, message).await;
            }
            Err(err)
        }
    }
}

fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    format_unix(secs)
}

fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let ts: k8s_openapi::jiff::Timestamp = s.parse().ok()?;
    let secs = u64::try_from(ts.as_second()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Fetches, shapes, compares and (if needed) writes.
async fn sync(
    es: &ExternalSecret,
    ctx: &Context,
    ns: &str,
    floor: SystemTime,
) -> Result<Outcome, ExternalSecretError> {
    validate(es)?;
    let (_store, handle) = ctx.stores.for_object(es).await?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let name = target_name(es);
    let policy = creation_policy(es);
    let existing = secrets.get_opt(&name).await?;
    match (&existing, policy) {
        (None, CreationPolicy::Merge) => {
            return Err(ExternalSecretError::MergeTargetMissing(format!(
                "{ns}/{name}"
            )));
        }
        (Some(s), CreationPolicy::Owner | CreationPolicy::Orphan) if !is_ours(s, es) => {
            return Err(ExternalSecretError::NotOwned(format!("{ns}/{name}")));
        }
        _ => {}
    }
    if let Some(d) = es.spec.data_from.iter().find_map(|d| d.dynamic.as_ref()) {
        let vault = handle.vault().ok_or_else(|| {
            ExternalSecretError::InvalidSpec("dataFrom.dynamic needs a Vault/OpenBao store".into())
        })?;
        return sync_dynamic(es, ctx, ns, &name, existing, vault, &d.path).await;
    }
    let values = fetch_all(es, handle.provider(), floor).await?;
    let template = es.spec.target.as_ref().and_then(|t| t.template.as_ref());
    let rendered = render::render(template, values)?;
    let desired = Desired {
        type_: rendered.type_,
        labels: rendered.labels,
        annotations: rendered.annotations,
        data: rendered.data,
    };
    write(es, ctx, ns, &name, existing.as_ref(), desired, None).await
}

/// Refuses specs that cannot be served, before touching anything.
fn validate(es: &ExternalSecret) -> Result<(), ExternalSecretError> {
    let spec = &es.spec;
    if spec.data.is_empty() && spec.data_from.is_empty() {
        return Err(ExternalSecretError::InvalidSpec(
            "set data or dataFrom".into(),
        ));
    }
    for (i, df) in spec.data_from.iter().enumerate() {
        let n = [
            df.extract.is_some(),
            df.find.is_some(),
            df.dynamic.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if n != 1 {
            return Err(ExternalSecretError::InvalidSpec(format!(
                "dataFrom[{i}] must set exactly one of extract, find, dynamic"
            )));
        }
    }
    let dynamic = spec
        .data_from
        .iter()
        .filter(|d| d.dynamic.is_some())
        .count();
    if dynamic > 0 && (dynamic > 1 || spec.data_from.len() > 1 || !spec.data.is_empty()) {
        return Err(ExternalSecretError::InvalidSpec(
            "an ExternalSecret with dataFrom.dynamic may have no other data or dataFrom entries"
                .into(),
        ));
    }
    if dynamic > 0 && creation_policy(es) == CreationPolicy::Merge {
        return Err(ExternalSecretError::InvalidSpec(
            "dataFrom.dynamic cannot be used with creationPolicy Merge".into(),
        ));
    }
    let type_ = spec
        .target
        .as_ref()
        .and_then(|t| t.template.as_ref())
        .and_then(|t| t.type_.as_deref());
    if type_ == Some(render::FORBIDDEN_TYPE) {
        return Err(RenderError::ForbiddenType(render::FORBIDDEN_TYPE.into()).into());
    }
    Ok(())
}

fn reference(r: &RemoteRef) -> Result<Reference, ExternalSecretError> {
    let decoding = match r.decoding_strategy.as_deref() {
        None | Some("None") => Decoding::None,
        Some("Base64") => Decoding::Base64,
        Some("Base64URL") => Decoding::Base64Url,
        Some("Auto") => Decoding::Auto,
        Some(other) => {
            return Err(ExternalSecretError::InvalidSpec(format!(
                "remoteRef.decodingStrategy {other:?} is not supported (None, Base64, Base64URL, Auto)"
            )));
        }
    };
    Ok(Reference {
        key: r.key.clone(),
        property: r.property.clone(),
        version: r.version.clone(),
        decoding,
    })
}

/// `dataFrom` first (in order), then `data[]`, which wins on a clash.
async fn fetch_all(
    es: &ExternalSecret,
    provider: &dyn crate::providers::Provider,
    floor: SystemTime,
) -> Result<BTreeMap<String, SecretBytes>, ExternalSecretError> {
    // Every single-key read in one batch (one call where the backend has a
    // batch API), answered in this order: extracts, then data[].
    let mut refs = Vec::new();
    for df in &es.spec.data_from {
        if let Some(e) = &df.extract {
            refs.push(reference(e)?);
        }
    }
    for d in &es.spec.data {
        refs.push(reference(&d.remote_ref)?);
    }
    let mut answers = provider.fetch_batch_since(&refs, floor).await.into_iter();
    let mut next = || {
        answers.next().unwrap_or_else(|| {
            Err(ProviderError::Unavailable {
                store: provider.store().to_owned(),
                detail: "internal: batch answered too few references".into(),
            })
        })
    };
    let mut out = BTreeMap::new();
    for (i, df) in es.spec.data_from.iter().enumerate() {
        let part = if let Some(e) = &df.extract {
            let f = next()?;
            render::extract(&e.key, f.value)?
        } else if let Some(find) = &df.find {
            let name = match &find.name {
                Some(n) => Some(regex::Regex::new(&n.regexp).map_err(|e| {
                    ExternalSecretError::InvalidSpec(format!("dataFrom[{i}].find.name.regexp: {e}"))
                })?),
                None => None,
            };
            let q = FindQuery {
                path: find.path.clone(),
                name,
                tags: find.tags.clone(),
            };
            provider
                .find_since(&q, floor)
                .await?
                .into_iter()
                .map(|(k, f)| (render::find_key(&k), render::single_value(f.value)))
                .collect()
        } else {
            continue;
        };
        out.extend(render::rewrite(i, part, &df.rewrite)?);
    }
    for d in &es.spec.data {
        let f = next()?;
        out.insert(d.secret_key.clone(), render::single_value(f.value));
    }
    Ok(out)
}

/// A Secret is ours when it carries our owner label, or an owner
/// reference to this ExternalSecret.
fn is_ours(secret: &Secret, es: &ExternalSecret) -> bool {
    let labelled = secret.labels().get(OWNER_LABEL) == Some(&owner_label(es));
    let referenced = es
        .uid()
        .is_some_and(|uid| secret.owner_references().iter().any(|r| r.uid == uid));
    labelled || referenced
}

fn full_labels(
    es: &ExternalSecret,
    policy: CreationPolicy,
    d: &Desired,
) -> BTreeMap<String, String> {
    let mut labels = d.labels.clone();
    if policy != CreationPolicy::Merge {
        labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
        labels.insert(OWNER_LABEL.into(), owner_label(es));
    }
    labels
}

/// Whether applying would change nothing we manage (values compared in
/// constant time).
fn up_to_date(current: &Secret, es: &ExternalSecret, policy: CreationPolicy, d: &Desired) -> bool {
    let empty = BTreeMap::new();
    let data = current.data.as_ref().unwrap_or(&empty);
    let same_values = d.data.iter().all(|(k, want)| {
        data.get(k)
            .is_some_and(|have| SecretBytes::new(have.0.clone()) == *want)
    });
    if policy == CreationPolicy::Merge {
        return same_values
            && current.labels().get(MERGE_TARGET_LABEL).map(String::as_str) == Some("true");
    }
    if current.type_.as_deref().unwrap_or("Opaque") != d.type_ {
        return false;
    }
    let labels = current.labels();
    if full_labels(es, policy, d)
        .iter()
        .any(|(k, v)| labels.get(k) != Some(v))
    {
        return false;
    }
    let annotations = current.annotations();
    if full_annotations(es, policy, d)
        .iter()
        .any(|(k, v)| annotations.get(k) != Some(v))
    {
        return false;
    }
    if policy == CreationPolicy::Owner
        && !es
            .uid()
            .is_some_and(|uid| current.owner_references().iter().any(|r| r.uid == uid))
    {
        return false;
    }
    same_values && data.len() == d.data.len()
}

/// Applies `d` unless the Secret already matches; runs restarts after a
/// content change.
async fn write(
    es: &ExternalSecret,
    ctx: &Context,
    ns: &str,
    name: &str,
    existing: Option<&Secret>,
    d: Desired,
    lease_expires: Option<SystemTime>,
) -> Result<Outcome, ExternalSecretError> {
    let policy = creation_policy(es);
    if let Some(current) = existing
        && up_to_date(current, es, policy, &d)
    {
        return Ok(Outcome {
            secret: format!("{ns}/{name}"),
            resource_version: current.metadata.resource_version.clone(),
            wrote: false,
            created: false,
            lease_expires,
        });
    }
    let content_changed = existing.is_none_or(|current| {
        let empty = BTreeMap::new();
        let data = current.data.as_ref().unwrap_or(&empty);
        !d.data.iter().all(|(k, want)| {
            data.get(k)
                .is_some_and(|have| SecretBytes::new(have.0.clone()) == *want)
        })
    });
    let data: BTreeMap<String, ByteString> = d
        .data
        .iter()
        .map(|(k, v)| (k.clone(), ByteString(v.expose_secret().to_vec())))
        .collect();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let (body, manager) = if policy == CreationPolicy::Merge {
        (
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": ns,
                             "labels": {MERGE_TARGET_LABEL: "true"}},
                "data": data,
            }),
            merge_manager(es),
        )
    } else {
        let owner_refs = if policy == CreationPolicy::Owner {
            let r = es.controller_owner_ref(&()).ok_or_else(|| {
                ExternalSecretError::InvalidSpec("the ExternalSecret has no uid yet".into())
            })?;
            vec![r]
        } else {
            Vec::new()
        };
        let mut metadata = json!({
            "name": name, "namespace": ns,
            "labels": full_labels(es, policy, &d),
        });
        let annotations = full_annotations(es, policy, &d);
        if !annotations.is_empty() {
            metadata["annotations"] = json!(annotations);
        }
        if !owner_refs.is_empty() {
            metadata["ownerReferences"] = json!(owner_refs);
        }
        (
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": metadata,
                "type": d.type_,
                "data": data,
            }),
            FIELD_MANAGER.to_owned(),
        )
    };
    let written = secrets
        .patch(
            name,
            &PatchParams::apply(&manager).force(),
            &Patch::Apply(&body),
        )
        .await?;
    ctx.wrote(
        format!("{ns}/{name}"),
        written.metadata.resource_version.clone(),
    );
    if content_changed {
        restart(es, ctx, ns, &d.data);
    }
    Ok(Outcome {
        secret: format!("{ns}/{name}"),
        resource_version: written.metadata.resource_version,
        wrote: true,
        created: existing.is_none(),
        lease_expires,
    })
}

/// Workloads to roll: `target.restart` plus the `sealgate.dev/restart`
/// annotation (`deployment/api,statefulset/db`).
pub fn restart_targets(es: &ExternalSecret) -> Vec<WorkloadRef> {
    let mut out: Vec<WorkloadRef> = es
        .spec
        .target
        .as_ref()
        .map(|t| t.restart.clone())
        .unwrap_or_default();
    if let Some(list) = es.annotations().get(RESTART_ANNOTATION) {
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((kind, name)) = item.split_once('/') else {
                continue;
            };
            let kind = match kind.to_ascii_lowercase().as_str() {
                "deployment" | "deploy" => "Deployment",
                "statefulset" | "sts" => "StatefulSet",
                "daemonset" | "ds" => "DaemonSet",
                _ => continue,
            };
            let w = WorkloadRef {
                kind: kind.into(),
                name: name.trim().into(),
            };
            if !out.contains(&w) {
                out.push(w);
            }
        }
    }
    out
}

fn restart(es: &ExternalSecret, ctx: &Context, ns: &str, data: &BTreeMap<String, SecretBytes>) {
    let targets = restart_targets(es);
    if targets.is_empty() {
        return;
    }
    if let Some(r) = &ctx.restarter {
        let hash = r.content_hash(data);
        r.content_changed(ns, &targets, hash);
    }
}

fn lease_owner(es: &ExternalSecret) -> LeaseOwner {
    LeaseOwner {
        namespace: es.namespace().unwrap_or_default(),
        name: es.name_any(),
        uid: es.uid().unwrap_or_default(),
    }
}

fn lease_policy(es: &ExternalSecret) -> Result<LeasePolicy, ExternalSecretError> {
    let overlap = match es.spec.lease.as_ref().and_then(|l| l.overlap.as_deref()) {
        Some(s) => render::parse_duration("spec.lease.overlap", s)?,
        None => Duration::from_secs(30),
    };
    Ok(LeasePolicy {
        overlap,
        ..LeasePolicy::default()
    })
}

/// A leased credential: reuse the tracked (or resumable) lease; issue,
/// write and hand over a new one when there is none or a re-issue is due.
#[allow(clippy::too_many_arguments)]
async fn sync_dynamic(
    es: &ExternalSecret,
    ctx: &Context,
    ns: &str,
    name: &str,
    existing: Option<Secret>,
    vault: Arc<crate::providers::vault::VaultProvider>,
    path: &str,
) -> Result<Outcome, ExternalSecretError> {
    let owner = lease_owner(es);
    let policy = lease_policy(es)?;
    let recorded = existing
        .as_ref()
        .and_then(|s| s.annotations().get(LEASE_ID_ANNOTATION).cloned());
    let view: Option<LeaseView> = match (&existing, &recorded) {
        (None, _) => {
            // The Secret is gone (deleted by someone): its credential must
            // not outlive it.
            if ctx.leases.current(&owner).is_some()
                && let Err(e) = ctx.leases.release(&owner).await
            {
                tracing::warn!(namespace = %ns, name = %es.name_any(), error = %e, "could not revoke the lease of a deleted Secret");
            }
            None
        }
        (Some(_), Some(id)) => match ctx.leases.current(&owner) {
            Some(v) if &v.lease_id == id => Some(v),
            _ => {
                ctx.leases
                    .resume(owner.clone(), Arc::clone(&vault), id, policy.clone())
                    .await?
            }
        },
        (Some(_), None) => None,
    };
    if let (Some(v), Some(current)) = (&view, &existing)
        && !v.reissue_due
    {
        return Ok(Outcome {
            secret: format!("{ns}/{name}"),
            resource_version: current.metadata.resource_version.clone(),
            wrote: false,
            created: false,
            lease_expires: Some(v.expires_at),
        });
    }
    let fetched = match vault.issue(&Reference::key(path)).await {
        Ok(f) => f,
        Err(e) => {
            let expire = es.spec.target.as_ref().and_then(|t| t.expire);
            let expired_at = view.as_ref().map(|v| v.expires_at).or_else(|| {
                existing
                    .as_ref()
                    .and_then(|s| s.annotations().get(LEASE_EXPIRES_ANNOTATION).cloned())
                    .and_then(|t| parse_rfc3339(&t))
            });
            if expire == Some(ExpirePolicy::Delete)
                && existing.is_some()
                && expired_at.is_some_and(|t| t <= SystemTime::now())
            {
                tracing::warn!(namespace = %ns, secret = %name, "lease expired and could not be re-issued; deleting the Secret (expire: Delete)");
                let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
                secrets.delete(name, &DeleteParams::default()).await?;
            }
            return Err(e.into());
        }
    };
    let Some(lease) = fetched.meta.lease.clone() else {
        return Err(ExternalSecretError::InvalidSpec(format!(
            "dataFrom.dynamic path {path:?} issued no lease; use data or dataFrom.extract for static secrets"
        )));
    };
    let expires = SystemTime::now() + lease.duration;
    let shaped = (|| -> Result<Desired, ExternalSecretError> {
        let values = render::extract(path, fetched.value)?;
        let df = &es.spec.data_from[0];
        let values = render::rewrite(0, values, &df.rewrite)?;
        let template = es.spec.target.as_ref().and_then(|t| t.template.as_ref());
        let rendered = render::render(template, values)?;
        let mut annotations = rendered.annotations;
        annotations.insert(LEASE_ID_ANNOTATION.into(), lease.id.clone());
        annotations.insert(LEASE_EXPIRES_ANNOTATION.into(), rfc3339(expires));
        Ok(Desired {
            type_: rendered.type_,
            labels: rendered.labels,
            annotations,
            data: rendered.data,
        })
    })();
    let written = match shaped {
        Ok(d) => write(es, ctx, ns, name, existing.as_ref(), d, Some(expires)).await,
        Err(e) => Err(e),
    };
    match written {
        Ok(o) => {
            ctx.leases.adopt(owner, vault, lease, policy);
            Ok(o)
        }
        Err(e) => {
            // Nobody will ever use this credential: revoke it now.
            if let Err(re) = vault.revoke(&lease).await {
                tracing::warn!(namespace = %ns, secret = %name, error = %re, "could not revoke an unused credential");
            }
            Err(e)
        }
    }
}

/// The ExternalSecret is being deleted: release leases, then honour
/// `deletionPolicy`.
async fn cleanup(es: Arc<ExternalSecret>, ctx: &Context) -> Result<Action, ExternalSecretError> {
    let ns = es.namespace().unwrap_or_default();
    let name = target_name(&es);
    if es.spec.data_from.iter().any(|d| d.dynamic.is_some())
        && let Err(e) = ctx.leases.release(&lease_owner(&es)).await
    {
        tracing::warn!(namespace = %ns, name = %es.name_any(), error = %e, "could not revoke leases of a deleted ExternalSecret");
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(current) = secrets.get_opt(&name).await? else {
        return Ok(Action::await_change());
    };
    let policy = creation_policy(&es);
    let deletion = deletion_policy(&es);
    match (policy, deletion) {
        (CreationPolicy::Merge, DeletionPolicy::Delete) => {
            // Applying an empty set under our own manager removes exactly
            // the keys we added.
            let body = json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": ns},
            });
            secrets
                .patch(
                    &name,
                    &PatchParams::apply(&merge_manager(&es)).force(),
                    &Patch::Apply(&body),
                )
                .await?;
        }
        (CreationPolicy::Merge, DeletionPolicy::Retain) => {}
        (_, DeletionPolicy::Delete) => {
            if is_ours(&current, &es) {
                secrets.delete(&name, &DeleteParams::default()).await?;
            }
        }
        (CreationPolicy::Owner, DeletionPolicy::Retain) => {
            // Keep the Secret: drop our owner reference so the garbage
            // collector leaves it alone.
            let uid = es.uid().unwrap_or_default();
            let refs: Vec<_> = current
                .owner_references()
                .iter()
                .filter(|r| r.uid != uid)
                .cloned()
                .collect();
            if refs.len() != current.owner_references().len() {
                secrets
                    .patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"metadata": {"ownerReferences": refs}})),
                    )
                    .await?;
            }
        }
        (CreationPolicy::Orphan, DeletionPolicy::Retain) => {}
    }
    tracing::info!(namespace = %ns, secret = %name, ?deletion, "externalsecret deleted");
    Ok(Action::await_change())
}

async fn publish(ctx: &Context, es: &ExternalSecret, type_: EventType, reason: &str, note: String) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Sync".into(),
        secondary: None,
    };
    // Off the reconcile's path: an Event is a write of its own, and waiting
    // for it adds a full apiserver round trip to every sync.
    let recorder = ctx.recorder.clone();
    let reference = es.object_ref(&());
    tokio::spawn(async move {
        if let Err(e) = recorder.publish(&ev, &reference).await {
            tracing::debug!(error = %e, "could not publish event");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn es(v: serde_json::Value) -> ExternalSecret {
        serde_json::from_value(json!({
            "apiVersion": "sealgate.dev/v1alpha1", "kind": "ExternalSecret",
            "metadata": {"name": "x", "namespace": "ns", "annotations": {RESTART_ANNOTATION: "deployment/api, sts/db,bogus/x"}},
            "spec": v,
        }))
        .unwrap()
    }

    #[test]
    fn validation_refuses_contradictions() {
        let ok = es(
            json!({"secretStoreRef": {"name": "s"}, "data": [{"secretKey": "a", "remoteRef": {"key": "k"}}]}),
        );
        assert!(validate(&ok).is_ok());
        let empty = es(json!({"secretStoreRef": {"name": "s"}}));
        assert!(validate(&empty).is_err());
        let mixed = es(json!({"secretStoreRef": {"name": "s"},
            "data": [{"secretKey": "a", "remoteRef": {"key": "k"}}],
            "dataFrom": [{"dynamic": {"path": "database/creds/app"}}]}));
        assert_eq!(validate(&mixed).unwrap_err().metric_label(), "InvalidSpec");
        let sat = es(json!({"secretStoreRef": {"name": "s"},
            "data": [{"secretKey": "a", "remoteRef": {"key": "k"}}],
            "target": {"template": {"type": "kubernetes.io/service-account-token"}}}));
        assert_eq!(validate(&sat).unwrap_err().metric_label(), "ForbiddenType");
    }

    #[test]
    fn restart_targets_merge_spec_and_annotation() {
        let e = es(json!({"secretStoreRef": {"name": "s"},
            "target": {"restart": [{"kind": "Deployment", "name": "api"}]}}));
        let t = restart_targets(&e);
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].kind, "StatefulSet");
        assert_eq!(t[1].name, "db");
    }

    #[test]
    fn a_finalizer_only_where_deletion_needs_the_controller() {
        let with = |target: serde_json::Value| {
            es(json!({"secretStoreRef": {"name": "s"}, "target": target,
                "data": [{"secretKey": "a", "remoteRef": {"key": "k"}}]}))
        };
        // target, finalizer?, policy in force
        #[rustfmt::skip]
        let cases = [
            (r#"{}"#, false, DeletionPolicy::Delete),
            (r#"{"creationPolicy": "Owner"}"#, false, DeletionPolicy::Delete),
            (r#"{"deletionPolicy": "Delete"}"#, true, DeletionPolicy::Delete),
            (r#"{"deletionPolicy": "Retain"}"#, true, DeletionPolicy::Retain),
            (r#"{"creationPolicy": "Orphan"}"#, false, DeletionPolicy::Retain),
            (r#"{"creationPolicy": "Orphan", "deletionPolicy": "Retain"}"#, false, DeletionPolicy::Retain),
            (r#"{"creationPolicy": "Orphan", "deletionPolicy": "Delete"}"#, true, DeletionPolicy::Delete),
            (r#"{"creationPolicy": "Merge"}"#, false, DeletionPolicy::Retain),
            (r#"{"creationPolicy": "Merge", "deletionPolicy": "Delete"}"#, true, DeletionPolicy::Delete),
        ];
        for (target, finalizer, policy) in cases {
            let e = with(serde_json::from_str(target).unwrap());
            assert_eq!(needs_finalizer(&e), finalizer, "{target}");
            assert_eq!(deletion_policy(&e), policy, "{target}");
        }
        // Leases are revoked at deletion whatever the policy.
        let leased = es(json!({"secretStoreRef": {"name": "s"},
            "dataFrom": [{"dynamic": {"path": "database/creds/app"}}]}));
        assert!(needs_finalizer(&leased));
    }

    fn reader(ns: &str, kind: &str, keys: &[&str]) -> ExternalSecret {
        let data: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| json!({"secretKey": format!("k{i}"), "remoteRef": {"key": k}}))
            .collect();
        let mut e = es(json!({"secretStoreRef": {"name": "vault", "kind": kind}, "data": data}));
        e.metadata.namespace = Some(ns.into());
        e
    }

    #[test]
    fn readers_of_the_same_keys_share_refresh_slots() {
        let iv = Duration::from_secs(600);
        let a = phase(&reader("a", "ClusterSecretStore", &["db", "api"]), iv);
        let b = phase(&reader("b", "ClusterSecretStore", &["api", "db"]), iv);
        assert_eq!(
            a, b,
            "same cluster store and keys, any namespace: same phase"
        );
        assert!(a < iv);
        // Different keys spread out (a fixed pair: hashes differ).
        let c = phase(&reader("a", "ClusterSecretStore", &["other"]), iv);
        assert_ne!(a, c);
        // A namespaced store is a different store per namespace.
        let d = phase(&reader("a", "SecretStore", &["db"]), iv);
        let e = phase(&reader("b", "SecretStore", &["db"]), iv);
        assert_ne!(d, e);
    }

    #[test]
    fn slots_contain_now_and_start_at_the_phase() {
        let iv = Duration::from_secs(600);
        for (secs, ph) in [
            (1_800_000_000u64, 17u64),
            (1_800_000_016, 17),
            (1_800_000_017, 17),
            (1_800_000_005, 599),
        ] {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            let (start, next) = slot(now, iv, Duration::from_secs(ph));
            assert!(start <= now && now < next, "{secs}/{ph}");
            assert_eq!(next.duration_since(start).unwrap(), iv);
            let s = start
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            assert_eq!(s.rem_euclid(600), ph % 600, "{secs}/{ph}");
        }
    }

    #[test]
    fn long_names_get_a_valid_unique_owner_label() {
        let short = owner_label_value(KIND, "db");
        assert_eq!(short, "ExternalSecret.db");
        let base = "a".repeat(60);
        let one = owner_label_value(KIND, &format!("{base}-one"));
        let two = owner_label_value(KIND, &format!("{base}-two"));
        assert_ne!(one, two);
        for v in [&one, &two] {
            assert!(v.len() <= 63, "{v}");
            assert!(v.ends_with(|c: char| c.is_ascii_alphanumeric()), "{v}");
            assert!(v.starts_with("ExternalSecret."), "{v}");
        }
        assert_eq!(one, owner_label_value(KIND, &format!("{base}-one")));
        assert!(owner_label_shortened(KIND, &base) && !owner_label_shortened(KIND, "db"));
    }

    #[test]
    fn rfc3339_round_trips() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
    }
}
