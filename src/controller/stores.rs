//! Stores: a `SecretStore` / `ClusterSecretStore` turned into a connected,
//! rate-limited provider, plus the reconciler that reports whether each
//! store can authenticate.
//!
//! Design note: a store is a security boundary, so everything that decides
//! *who may read what* lives here and nowhere else:
//! - a `SecretStore` reads its credentials only from its own namespace and
//!   serves only `ExternalSecret`s of that namespace;
//! - a `ClusterSecretStore` reads credentials only from the namespace each
//!   selector names (required), and serves a namespace only when one of its
//!   `conditions` admits it (by name or label selector); the admitting
//!   conditions' `allowedKeyPrefixes` then bound the remote keys;
//! - a namespaced store may not fall back to the controller's own ambient
//!   identity (AWS default chain, the controller's ServiceAccount token),
//!   which would let a tenant borrow the controller's rights.
//!
//! Connected providers are cached per store and rebuilt when the store's
//! uid or generation change, when a credential Secret's `resourceVersion`
//! changes (checked at most every [`RECHECK`], metadata only), or when a
//! ServiceAccount token we minted is half-way to expiry. Every provider is
//! wrapped in [`Frugal`] with the store's `limits`, so all `ExternalSecret`s
//! of a store share one cache, one rate limit and one concurrency cap, and
//! the per-store counters feed `/metrics` through a registry
//! ([`StoreCounters`]) that outlives connections, so they never go down.
//!
//! Which store an object names is read from watch caches, not the
//! apiserver: the store reconcilers' own reflector caches and a
//! metadata-only Namespace cache (for label-selector admission). A cache
//! that has not listed yet, or a miss (a store created a moment ago), costs
//! one GET, so a missing store is reported only when the apiserver agrees.
//!
//! AWS web identity gets its token the way Vault Kubernetes auth does
//! (TokenRequest for the store's ServiceAccount); the SDK reads web identity
//! tokens from a file, so it is written to a private per-`Stores` directory
//! that is removed with it.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};

use super::api::{
    ClusterSecretStore, ClusterStoreCondition, ExternalSecret, KvVersion as ApiKvVersion,
    SecretKeySelector, SecretStore, SecretStoreStatus, ServiceAccountSelector, StoreKind,
    StoreLimits, StoreProvider,
};
use super::metrics::StoreCounters;
use super::status::{self, ready};
use crate::providers::aws::{AwsAuth, AwsConfig, ParameterStoreProvider, SecretsManagerProvider};
use crate::providers::cache::{Counters, Frugal, FrugalConfig};
use crate::providers::vault::{KvVersion, VaultAuth, VaultConfig, VaultProvider};
use crate::providers::{Fetched, FindQuery, Provider, ProviderError, Reference};
use crate::secret::{ExposeSecret, SecretBytes, SecretString};

/// How often a cached store's credential Secrets are re-checked for a new
/// `resourceVersion` (metadata only; no values are read unless changed).
const RECHECK: Duration = Duration::from_secs(60);
/// Lifetime requested for ServiceAccount tokens we mint for logins.
const SA_TOKEN_SECONDS: i64 = 3600;
/// Re-check interval of a healthy store.
const STORE_RESYNC: Duration = Duration::from_secs(300);
/// Retry delay of a failing store.
const STORE_RETRY: Duration = Duration::from_secs(30);
/// Where a pod's own ServiceAccount token is mounted.
const OWN_TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Why a store cannot be used (for one object, or at all). No variant
/// carries a credential or secret value.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The referenced store does not exist.
    #[error("{kind:?} {name:?} not found{}", namespace.as_ref().map(|n| format!(" in namespace {n}")).unwrap_or_default())]
    NotFound {
        /// Kind referenced.
        kind: StoreKind,
        /// Name referenced.
        name: String,
        /// Namespace searched (SecretStore only).
        namespace: Option<String>,
    },
    /// A ClusterSecretStore's conditions do not admit the namespace.
    #[error(
        "ClusterSecretStore {store:?} does not admit namespace {namespace:?} (no condition matches it)"
    )]
    NamespaceNotAllowed {
        /// Store name.
        store: String,
        /// The refused namespace.
        namespace: String,
    },
    /// A remote key is outside every admitting condition's allowed prefixes.
    #[error(
        "ClusterSecretStore {store:?} does not allow namespace {namespace:?} to read {key:?} (allowed prefixes: {allowed})"
    )]
    KeyNotAllowed {
        /// Store name.
        store: String,
        /// The namespace asking.
        namespace: String,
        /// The refused key.
        key: String,
        /// The prefixes that would have been allowed.
        allowed: String,
    },
    /// The store's spec is wrong or asks for something refused.
    #[error("{store}: {field}: {message}")]
    InvalidSpec {
        /// Store label.
        store: String,
        /// Dotted field path.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A credential could not be read.
    #[error("{store}: credential {what}: {reason}")]
    Credential {
        /// Store label.
        store: String,
        /// Which credential (`Secret ns/name key k`, `ServiceAccount ns/name`).
        what: String,
        /// What is wrong (never the value).
        reason: String,
    },
    /// The backend refused the login or could not be reached.
    #[error("{0}")]
    Provider(#[from] ProviderError),
    /// The apiserver failed a request.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

impl StoreError {
    /// One CamelCase word for status reasons, events and metric labels.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "StoreNotFound",
            Self::NamespaceNotAllowed { .. } => "StoreNotAllowed",
            Self::KeyNotAllowed { .. } => "KeyNotAllowed",
            Self::InvalidSpec { .. } => "InvalidStoreSpec",
            Self::Credential { .. } => "CredentialUnavailable",
            Self::Provider(e) => match e {
                ProviderError::Unauthenticated { .. } | ProviderError::PermissionDenied { .. } => {
                    "AuthenticationFailed"
                }
                ProviderError::Unavailable { .. } | ProviderError::Throttled { .. } => {
                    "BackendUnavailable"
                }
                ProviderError::NotFound { .. } | ProviderError::Invalid { .. } => {
                    "InvalidStoreSpec"
                }
            },
            Self::Kube(_) => "KubernetesError",
        }
    }

    /// Whether waiting may fix it without anyone changing a spec.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Provider(e) => e.is_retryable(),
            Self::Kube(_) | Self::Credential { .. } | Self::NotFound { .. } => true,
            _ => false,
        }
    }
}

/// A store of either kind, reduced to what connecting and admission need.
#[derive(Clone, Debug)]
pub struct StoreObject {
    /// `SecretStore` or `ClusterSecretStore`.
    pub kind: StoreKind,
    /// Namespace (SecretStore only).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.generation`.
    pub generation: i64,
    /// The backend.
    pub provider: StoreProvider,
    /// API budget.
    pub limits: Option<StoreLimits>,
    /// Namespace admission (ClusterSecretStore only).
    pub conditions: Vec<ClusterStoreCondition>,
}

impl StoreObject {
    /// From a `SecretStore`.
    pub fn from_namespaced(s: &SecretStore) -> Self {
        Self {
            kind: StoreKind::SecretStore,
            namespace: s.namespace(),
            name: s.name_any(),
            uid: s.uid().unwrap_or_default(),
            generation: s.meta().generation.unwrap_or(0),
            provider: s.spec.provider.clone(),
            limits: s.spec.limits.clone(),
            conditions: Vec::new(),
        }
    }

    /// From a `ClusterSecretStore`.
    pub fn from_cluster(s: &ClusterSecretStore) -> Self {
        Self {
            kind: StoreKind::ClusterSecretStore,
            namespace: None,
            name: s.name_any(),
            uid: s.uid().unwrap_or_default(),
            generation: s.meta().generation.unwrap_or(0),
            provider: s.spec.provider.clone(),
            limits: s.spec.limits.clone(),
            conditions: s.spec.conditions.clone(),
        }
    }

    /// `ns/name` for a SecretStore, `name` for a ClusterSecretStore: the
    /// store name in provider errors and the `store` label of metrics.
    pub fn label(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    fn key(&self) -> CacheKey {
        (
            self.kind == StoreKind::ClusterSecretStore,
            self.namespace.clone().unwrap_or_default(),
            self.name.clone(),
        )
    }

    fn invalid(&self, field: &str, message: impl Into<String>) -> StoreError {
        StoreError::InvalidSpec {
            store: self.label(),
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// A connected store, shared by every object that uses it.
pub struct StoreHandle {
    label: String,
    provider: Arc<dyn Provider>,
    vault: Option<Arc<VaultProvider>>,
    aws: Option<AwsConfig>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHandle")
            .field("store", &self.label)
            .finish_non_exhaustive()
    }
}

impl StoreHandle {
    /// The provider to read through: cached, coalesced and rate-limited.
    pub fn provider(&self) -> &dyn Provider {
        self.provider.as_ref()
    }

    /// The raw Vault session, for what must bypass the cache: dynamic
    /// secrets (issue/renew/revoke leases) and sops Transit unwrapping.
    pub fn vault(&self) -> Option<Arc<VaultProvider>> {
        self.vault.clone()
    }

    /// The AWS connection settings (credentials resolved), for KMS
    /// unwrapping of sops data keys with the store's identity.
    pub fn aws_config(&self) -> Option<&AwsConfig> {
        self.aws.as_ref()
    }

    /// Backend call counters of this store (for `/metrics`).
    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    /// The store's label (`ns/name` or `name`).
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// A Vault session shared between the [`Frugal`] cache and the lease
/// manager (which needs the uncached, concrete provider).
struct SharedVault(Arc<VaultProvider>);

#[async_trait::async_trait]
impl Provider for SharedVault {
    fn store(&self) -> &str {
        self.0.store()
    }
    async fn fetch(&self, reference: &Reference) -> Result<Fetched, ProviderError> {
        self.0.fetch(reference).await
    }
    async fn find(&self, query: &FindQuery) -> Result<BTreeMap<String, Fetched>, ProviderError> {
        self.0.find(query).await
    }
}

type CacheKey = (bool, String, String);

struct Cached {
    /// uid + generation + credential resourceVersions.
    fingerprint: String,
    checked: Instant,
    /// Rebuild after this (minted ServiceAccount tokens age).
    expires: Option<Instant>,
    handle: Arc<StoreHandle>,
}

/// What a connection used, so the cache knows when to rebuild it.
#[derive(Default)]
struct Used {
    /// `ns/name=resourceVersion` of each credential Secret read.
    secrets: Vec<(String, String, String)>,
    /// A minted token makes the connection age.
    expires: Option<Instant>,
}

/// All stores' connections, per controller process. Clone-free: share it
/// in an `Arc`.
pub struct Stores {
    client: Client,
    cache_ttl: Duration,
    ca_dir: PathBuf,
    /// Minted ServiceAccount tokens for AWS web identity (see
    /// [`Stores::token_file`]).
    token_dir: PathBuf,
    entries: Mutex<HashMap<CacheKey, Cached>>,
    /// Serialises connects so a burst of reconciles logs in once per store.
    connecting: tokio::sync::Mutex<()>,
    /// Watch caches of stores and namespaces, once their watchers run.
    caches: Caches,
    /// Backend counters per store that survive reconnects (and, when
    /// shared through [`Stores::with_counters`], leadership terms).
    counters: Arc<StoreCounters>,
}

impl Drop for Stores {
    fn drop(&mut self) {
        // Minted tokens must not outlive the term that minted them.
        let _ = std::fs::remove_dir_all(&self.token_dir);
    }
}

/// Numbers each [`Stores`] so every one has its own token directory.
static NEXT_STORES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The STS session name of a store (`[\w+=,.@-]{2,64}`): shows in
/// CloudTrail which store assumed the role.
fn session_name(store: &StoreObject) -> String {
    let mut s: String = format!("sealgate-{}", store.label())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '.'
            }
        })
        .collect();
    s.truncate(64);
    s
}

/// Shared reflector stores: the store reconcilers' own caches and a
/// metadata-only namespace cache, so a reconcile reads no store or
/// namespace from the apiserver. Empty until attached (then a GET).
#[derive(Default)]
struct Caches {
    secret_stores: Mutex<Option<reflector::Store<SecretStore>>>,
    cluster_stores: Mutex<Option<reflector::Store<ClusterSecretStore>>>,
    namespaces: Mutex<Option<reflector::Store<PartialObjectMeta<Namespace>>>>,
}

/// The cached object, when a synced cache has it. A cache that has not
/// finished its first list answers nothing (a miss must not mean NotFound).
fn cache_get<K>(slot: &Mutex<Option<reflector::Store<K>>>, key: &ObjectRef<K>) -> Option<Arc<K>>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    let store = lock(slot).clone()?;
    store.wait_until_ready().now_or_never()?.ok()?;
    store.get(key)
}

impl Stores {
    /// `cache_ttl`: how long a fetched value is served to other objects
    /// reading the same reference (coalescing window).
    pub fn new(client: Client, cache_ttl: Duration) -> Self {
        Self {
            client,
            cache_ttl,
            ca_dir: std::env::temp_dir().join(format!("sealgate-ca-{}", std::process::id())),
            token_dir: std::env::temp_dir().join(format!(
                "sealgate-tokens-{}-{}",
                std::process::id(),
                NEXT_STORES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            )),
            entries: Mutex::new(HashMap::new()),
            connecting: tokio::sync::Mutex::new(()),
            caches: Caches::default(),
            counters: Arc::new(StoreCounters::default()),
        }
    }

    /// Counts backend calls in `counters` (the process-wide registry of
    /// [`Metrics`](super::metrics::Metrics)), so `/metrics` stays monotonic
    /// across reconnects and leadership terms.
    pub fn with_counters(mut self, counters: Arc<StoreCounters>) -> Self {
        self.counters = counters;
        self
    }

    /// Per-store backend counters (every store connected since the
    /// registry was created, summed over reconnects), for `/metrics`.
    pub fn counters(&self) -> Vec<(String, Arc<Counters>)> {
        self.counters.totals()
    }

    /// Forgets a store's connection (deleted store, or a rejected login).
    pub fn forget(&self, store: &StoreObject) {
        lock(&self.entries).remove(&store.key());
    }

    /// Reads the store `obj` refers to, checks that `obj` may use it
    /// (namespace admission, key prefixes) and returns its connection.
    pub async fn for_object(
        &self,
        es: &ExternalSecret,
    ) -> Result<(StoreObject, Arc<StoreHandle>), StoreError> {
        let ns = es.namespace().unwrap_or_default();
        let r = &es.spec.secret_store_ref;
        let store = self.resolve(r.effective_kind(), &ns, &r.name).await?;
        self.admit(&store, &ns, &remote_keys(es)).await?;
        let handle = self.get(&store).await?;
        Ok((store, handle))
    }

    /// The store of `kind` named `name` (a SecretStore in `ns`): from the
    /// shared watch cache when it has it, else one GET (the cache is not
    /// synced yet, or the store was created a moment ago).
    pub async fn resolve(
        &self,
        kind: StoreKind,
        ns: &str,
        name: &str,
    ) -> Result<StoreObject, StoreError> {
        let not_found = || StoreError::NotFound {
            kind,
            name: name.to_owned(),
            namespace: (kind == StoreKind::SecretStore).then(|| ns.to_owned()),
        };
        match kind {
            StoreKind::SecretStore => {
                let key = ObjectRef::<SecretStore>::new(name).within(ns);
                if let Some(s) = cache_get(&self.caches.secret_stores, &key) {
                    self.counters.lookup(true);
                    return Ok(StoreObject::from_namespaced(&s));
                }
                self.counters.lookup(false);
                let api: Api<SecretStore> = Api::namespaced(self.client.clone(), ns);
                api.get_opt(name)
                    .await?
                    .map(|s| StoreObject::from_namespaced(&s))
                    .ok_or_else(not_found)
            }
            StoreKind::ClusterSecretStore => {
                let key = ObjectRef::<ClusterSecretStore>::new(name);
                if let Some(s) = cache_get(&self.caches.cluster_stores, &key) {
                    self.counters.lookup(true);
                    return Ok(StoreObject::from_cluster(&s));
                }
                self.counters.lookup(false);
                let api: Api<ClusterSecretStore> = Api::all(self.client.clone());
                api.get_opt(name)
                    .await?
                    .map(|s| StoreObject::from_cluster(&s))
                    .ok_or_else(not_found)
            }
        }
    }

    /// A namespace's labels: from the namespace metadata cache, else one
    /// metadata GET (a missing namespace has no labels).
    async fn namespace_labels(&self, ns: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let key = ObjectRef::<PartialObjectMeta<Namespace>>::new(ns);
        if let Some(m) = cache_get(&self.caches.namespaces, &key) {
            self.counters.lookup(true);
            return Ok(m.metadata.labels.clone().unwrap_or_default());
        }
        self.counters.lookup(false);
        let api: Api<Namespace> = Api::all(self.client.clone());
        Ok(api
            .get_metadata_opt(ns)
            .await?
            .and_then(|m| m.metadata.labels)
            .unwrap_or_default())
    }

    /// Store and namespace lookups so far: `(answered from the watch
    /// caches, fell back to a GET)`. Tests and benchmarks use it to prove
    /// reconciles do not read stores from the apiserver.
    pub fn lookups(&self) -> (u64, u64) {
        self.counters.lookups()
    }

    /// Serves SecretStore lookups from `store` (the SecretStore
    /// reconciler's own reflector: no second watch).
    pub fn attach_secret_stores(&self, store: reflector::Store<SecretStore>) {
        *lock(&self.caches.secret_stores) = Some(store);
    }

    /// Serves ClusterSecretStore lookups from `store`.
    pub fn attach_cluster_stores(&self, store: reflector::Store<ClusterSecretStore>) {
        *lock(&self.caches.cluster_stores) = Some(store);
    }

    /// Serves namespace-label lookups (label-selector admission) from `store`.
    pub fn attach_namespaces(&self, store: reflector::Store<PartialObjectMeta<Namespace>>) {
        *lock(&self.caches.namespaces) = Some(store);
    }

    /// Multi-tenancy: may namespace `ns` read `keys` through `store`?
    pub async fn admit(
        &self,
        store: &StoreObject,
        ns: &str,
        keys: &[String],
    ) -> Result<(), StoreError> {
        match store.kind {
            StoreKind::SecretStore => {
                // The reference carries no namespace, so this holds by
                // construction; checked anyway as a guard.
                if store.namespace.as_deref() != Some(ns) {
                    return Err(StoreError::NamespaceNotAllowed {
                        store: store.label(),
                        namespace: ns.to_owned(),
                    });
                }
                Ok(())
            }
            StoreKind::ClusterSecretStore => {
                if store.conditions.is_empty() {
                    return Ok(());
                }
                let mut labels: Option<BTreeMap<String, String>> = None;
                let mut admitting = Vec::new();
                for c in &store.conditions {
                    let by_name = c.namespaces.iter().any(|n| n == ns);
                    let by_label = match &c.namespace_selector {
                        None => false,
                        Some(sel) => {
                            if labels.is_none() {
                                labels = Some(self.namespace_labels(ns).await?);
                            }
                            selector_matches(sel, labels.as_ref().unwrap_or(&BTreeMap::new()))
                        }
                    };
                    if by_name || by_label {
                        admitting.push(c);
                    }
                }
                if admitting.is_empty() {
                    return Err(StoreError::NamespaceNotAllowed {
                        store: store.name.clone(),
                        namespace: ns.to_owned(),
                    });
                }
                if admitting.iter().any(|c| c.allowed_key_prefixes.is_empty()) {
                    return Ok(());
                }
                let prefixes: Vec<&String> = admitting
                    .iter()
                    .flat_map(|c| c.allowed_key_prefixes.iter())
                    .collect();
                for key in keys {
                    if !key_allowed(key, &prefixes) {
                        return Err(StoreError::KeyNotAllowed {
                            store: store.name.clone(),
                            namespace: ns.to_owned(),
                            key: key.clone(),
                            allowed: prefixes
                                .iter()
                                .map(|p| format!("{p:?}"))
                                .collect::<Vec<_>>()
                                .join(", "),
                        });
                    }
                }
                Ok(())
            }
        }
    }

    /// The connection of `store`, from cache when still valid.
    pub async fn get(&self, store: &StoreObject) -> Result<Arc<StoreHandle>, StoreError> {
        let base = format!("{}@{}", store.uid, store.generation);
        if let Some(h) = self.cached_if(store, |c| {
            c.fingerprint.starts_with(&base) && c.checked.elapsed() < RECHECK
        }) {
            return Ok(h);
        }
        let _guard = self.connecting.lock().await;
        // Someone else may have connected while we waited.
        if let Some(h) = self.cached_if(store, |c| {
            c.fingerprint.starts_with(&base) && c.checked.elapsed() < RECHECK
        }) {
            return Ok(h);
        }
        // Still the same credentials? (metadata only)
        let current = self.fingerprint(store).await?;
        if let Some(h) = self.cached_if(store, |c| c.fingerprint == current) {
            if let Some(c) = lock(&self.entries).get_mut(&store.key()) {
                c.checked = Instant::now();
            }
            return Ok(h);
        }
        let (handle, used) = self.connect(store).await?;
        let fingerprint = fingerprint_of(store, &used.secrets);
        let handle = Arc::new(handle);
        self.counters.track(&handle.label, handle.counters());
        lock(&self.entries).insert(
            store.key(),
            Cached {
                fingerprint,
                checked: Instant::now(),
                expires: used.expires,
                handle: Arc::clone(&handle),
            },
        );
        tracing::info!(store = %store.label(), kind = ?store.kind, "store connected");
        Ok(handle)
    }

    fn cached_if(
        &self,
        store: &StoreObject,
        ok: impl Fn(&Cached) -> bool,
    ) -> Option<Arc<StoreHandle>> {
        let entries = lock(&self.entries);
        let c = entries.get(&store.key())?;
        if c.expires.is_some_and(|t| Instant::now() >= t) || !ok(c) {
            return None;
        }
        Some(Arc::clone(&c.handle))
    }

    /// The fingerprint the store would have now, reading only metadata.
    async fn fingerprint(&self, store: &StoreObject) -> Result<String, StoreError> {
        let mut secrets = Vec::new();
        for sel in credential_refs(&store.provider) {
            let ns = self.credential_namespace(store, sel.namespace.as_deref(), "secretRef")?;
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
            let rv = api
                .get_metadata_opt(&sel.name)
                .await?
                .and_then(|m| m.metadata.resource_version)
                .unwrap_or_default();
            secrets.push((ns, sel.name.clone(), rv));
        }
        Ok(fingerprint_of(store, &secrets))
    }

    /// Which namespace a credential may come from: a SecretStore's own,
    /// or the one a ClusterSecretStore's selector names (required).
    fn credential_namespace(
        &self,
        store: &StoreObject,
        asked: Option<&str>,
        field: &str,
    ) -> Result<String, StoreError> {
        match (&store.namespace, asked) {
            (Some(own), None) => Ok(own.clone()),
            (Some(own), Some(a)) if a == own => Ok(own.clone()),
            (Some(own), Some(a)) => Err(store.invalid(
                field,
                format!(
                    "a SecretStore reads credentials only from its own namespace {own:?}, not {a:?}"
                ),
            )),
            (None, Some(a)) => Ok(a.to_owned()),
            (None, None) => Err(store.invalid(
                field,
                "a ClusterSecretStore must name the namespace of every credential",
            )),
        }
    }

    /// Reads one credential value from a Secret.
    async fn read_secret(
        &self,
        store: &StoreObject,
        sel: &SecretKeySelector,
        field: &str,
        used: &mut Used,
    ) -> Result<SecretString, StoreError> {
        let ns = self.credential_namespace(store, sel.namespace.as_deref(), field)?;
        let what = format!("Secret {ns}/{} key {:?}", sel.name, sel.key);
        let err = |reason: &str| StoreError::Credential {
            store: store.label(),
            what: what.clone(),
            reason: reason.to_owned(),
        };
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        let secret = match api.get_opt(&sel.name).await {
            Ok(Some(s)) => s,
            Ok(None) => return Err(err("the Secret does not exist")),
            Err(kube::Error::Api(e)) if e.code == 403 => {
                return Err(err("the controller may not read it (forbidden)"));
            }
            Err(e) => return Err(e.into()),
        };
        used.secrets.push((
            ns.clone(),
            sel.name.clone(),
            secret.metadata.resource_version.clone().unwrap_or_default(),
        ));
        let mut data = secret.data.unwrap_or_default();
        let Some(value) = data.remove(&sel.key) else {
            return Err(err("the Secret has no such key"));
        };
        let text = SecretBytes::new(value.0)
            .into_string()
            .map_err(|_| err("the value is not UTF-8"))?;
        let trimmed = text.expose_secret().trim_end_matches(['\n', '\r', ' ']);
        if trimmed.is_empty() {
            return Err(err("the value is empty"));
        }
        Ok(SecretString::new(trimmed.to_owned()))
    }

    /// Mints a ServiceAccount token through the TokenRequest API.
    async fn service_account_token(
        &self,
        store: &StoreObject,
        sel: &ServiceAccountSelector,
        field: &str,
        used: &mut Used,
    ) -> Result<SecretString, StoreError> {
        let ns = self.credential_namespace(store, sel.namespace.as_deref(), field)?;
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &ns);
        let tr = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: (!sel.audiences.is_empty()).then(|| sel.audiences.clone()),
                expiration_seconds: Some(SA_TOKEN_SECONDS),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let err = |reason: String| StoreError::Credential {
            store: store.label(),
            what: format!("ServiceAccount {ns}/{}", sel.name),
            reason,
        };
        let out = match api
            .create_token_request(&sel.name, &PostParams::default(), &tr)
            .await
        {
            Ok(o) => o,
            Err(kube::Error::Api(e)) if e.code == 404 => {
                return Err(err("the ServiceAccount does not exist".into()));
            }
            Err(kube::Error::Api(e)) if e.code == 403 => {
                return Err(err("the controller may not request its tokens".into()));
            }
            Err(e) => return Err(e.into()),
        };
        let token = out
            .status
            .and_then(|s| s.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| err("TokenRequest returned no token".into()))?;
        let half = Instant::now() + Duration::from_secs((SA_TOKEN_SECONDS / 2) as u64);
        used.expires = Some(used.expires.map_or(half, |t| t.min(half)));
        Ok(SecretString::new(token))
    }

    /// The controller's own mounted token; only ClusterSecretStores may
    /// use it (a tenant's store must not borrow the controller identity).
    fn own_token(&self, store: &StoreObject, field: &str) -> Result<SecretString, StoreError> {
        if store.kind == StoreKind::SecretStore {
            return Err(store.invalid(
                field,
                "a SecretStore must name a serviceAccountRef or secretRef; the controller's own identity is reserved for ClusterSecretStores",
            ));
        }
        let t = std::fs::read_to_string(OWN_TOKEN_PATH).map_err(|e| StoreError::Credential {
            store: store.label(),
            what: format!("the controller's own ServiceAccount token ({OWN_TOKEN_PATH})"),
            reason: e.to_string(),
        })?;
        Ok(SecretString::new(t.trim().to_owned()))
    }

    /// Builds and authenticates the provider (the real authentication check).
    async fn connect(&self, store: &StoreObject) -> Result<(StoreHandle, Used), StoreError> {
        let mut used = Used::default();
        let label = store.label();
        let frugal = frugal_config(store.limits.as_ref(), self.cache_ttl);
        match (&store.provider.vault, &store.provider.aws) {
            (Some(v), None) => {
                let a = &v.auth;
                let n = [
                    a.token_secret_ref.is_some(),
                    a.app_role.is_some(),
                    a.kubernetes.is_some(),
                    a.jwt.is_some(),
                ]
                .iter()
                .filter(|b| **b)
                .count();
                if n != 1 {
                    return Err(store.invalid(
                        "spec.provider.vault.auth",
                        "set exactly one of tokenSecretRef, appRole, kubernetes, jwt",
                    ));
                }
                let auth = if let Some(sel) = &a.token_secret_ref {
                    VaultAuth::Token(
                        self.read_secret(store, sel, "auth.tokenSecretRef", &mut used)
                            .await?,
                    )
                } else if let Some(ar) = &a.app_role {
                    let role_id = match (&ar.role_id, &ar.role_ref) {
                        (Some(id), None) => id.clone(),
                        (None, Some(sel)) => self
                            .read_secret(store, sel, "auth.appRole.roleRef", &mut used)
                            .await?
                            .expose_secret()
                            .to_owned(),
                        _ => {
                            return Err(store.invalid(
                                "spec.provider.vault.auth.appRole",
                                "set exactly one of roleId, roleRef",
                            ));
                        }
                    };
                    VaultAuth::AppRole {
                        mount: ar.path.clone().unwrap_or_else(|| "approle".into()),
                        role_id,
                        secret_id: self
                            .read_secret(store, &ar.secret_ref, "auth.appRole.secretRef", &mut used)
                            .await?,
                    }
                } else if let Some(k) = &a.kubernetes {
                    let field = "auth.kubernetes";
                    let jwt = match (&k.service_account_ref, &k.secret_ref) {
                        (Some(sa), None) => {
                            self.service_account_token(store, sa, field, &mut used)
                                .await?
                        }
                        (None, Some(sel)) => self.read_secret(store, sel, field, &mut used).await?,
                        (None, None) => self.own_token(store, field)?,
                        (Some(_), Some(_)) => {
                            return Err(store.invalid(
                                "spec.provider.vault.auth.kubernetes",
                                "set at most one of serviceAccountRef, secretRef",
                            ));
                        }
                    };
                    VaultAuth::Kubernetes {
                        mount: k.mount_path.clone().unwrap_or_else(|| "kubernetes".into()),
                        role: k.role.clone(),
                        jwt,
                    }
                } else if let Some(j) = &a.jwt {
                    let field = "auth.jwt";
                    let jwt = match (&j.kubernetes_service_account_token, &j.secret_ref) {
                        (Some(sa), None) => {
                            self.service_account_token(store, sa, field, &mut used)
                                .await?
                        }
                        (None, Some(sel)) => self.read_secret(store, sel, field, &mut used).await?,
                        _ => {
                            return Err(store.invalid(
                                "spec.provider.vault.auth.jwt",
                                "set exactly one of secretRef, kubernetesServiceAccountToken",
                            ));
                        }
                    };
                    VaultAuth::Jwt {
                        mount: j.path.clone().unwrap_or_else(|| "jwt".into()),
                        role: j.role.clone(),
                        jwt,
                    }
                } else {
                    return Err(store.invalid("spec.provider.vault.auth", "not set"));
                };
                let mut config = VaultConfig::new(label.clone(), v.server.clone(), auth);
                if let Some(p) = &v.path {
                    config.kv_mount = p.trim_matches('/').to_owned();
                }
                config.kv_version = match v.version {
                    Some(ApiKvVersion::V1) => KvVersion::V1,
                    _ => KvVersion::V2,
                };
                config.namespace = v.namespace.clone();
                if let Some(ca) = &v.ca_bundle {
                    config.ca_certs = vec![self.ca_file(store, ca)?];
                }
                // connect() logs in: this is the authentication check.
                let vault = Arc::new(VaultProvider::connect(config).await?);
                vault.check().await?;
                let inner = Frugal::new(SharedVault(Arc::clone(&vault)), frugal);
                let counters = inner.counters();
                Ok((
                    StoreHandle {
                        label,
                        provider: Arc::new(inner),
                        vault: Some(vault),
                        aws: None,
                        counters,
                    },
                    used,
                ))
            }
            (None, Some(a)) => {
                let auth = match &a.auth {
                    None => {
                        if store.kind == StoreKind::SecretStore {
                            return Err(store.invalid(
                                "spec.provider.aws.auth",
                                "a SecretStore must set auth.secretRef; the controller's own AWS identity is reserved for ClusterSecretStores",
                            ));
                        }
                        AwsAuth::DefaultChain
                    }
                    Some(auth) => match (&auth.secret_ref, &auth.jwt) {
                        (Some(s), None) => AwsAuth::Static {
                            access_key_id: self
                                .read_secret(
                                    store,
                                    &s.access_key_id_secret_ref,
                                    "auth.secretRef.accessKeyIDSecretRef",
                                    &mut used,
                                )
                                .await?
                                .expose_secret()
                                .to_owned(),
                            secret_access_key: self
                                .read_secret(
                                    store,
                                    &s.secret_access_key_secret_ref,
                                    "auth.secretRef.secretAccessKeySecretRef",
                                    &mut used,
                                )
                                .await?,
                            session_token: match &s.session_token_secret_ref {
                                Some(t) => Some(
                                    self.read_secret(
                                        store,
                                        t,
                                        "auth.secretRef.sessionTokenSecretRef",
                                        &mut used,
                                    )
                                    .await?,
                                ),
                                None => None,
                            },
                        },
                        (None, Some(j)) => {
                            let field = "auth.jwt.serviceAccountRef";
                            let token = self
                                .service_account_token(
                                    store,
                                    &j.service_account_ref,
                                    field,
                                    &mut used,
                                )
                                .await?;
                            AwsAuth::WebIdentity {
                                token_file: self.token_file(store, &token)?,
                                role_arn: j.role_arn.clone(),
                                session_name: session_name(store),
                            }
                        }
                        _ => {
                            return Err(store.invalid(
                                "spec.provider.aws.auth",
                                "set exactly one of secretRef, jwt",
                            ));
                        }
                    },
                };
                let config = AwsConfig {
                    store: label.clone(),
                    region: a.region.clone(),
                    endpoint: a.endpoint.clone(),
                    auth,
                    timeout: Duration::from_secs(10),
                };
                let (provider, counters): (Arc<dyn Provider>, _) = match a.service {
                    super::api::AwsService::SecretsManager => {
                        let p = SecretsManagerProvider::connect(&config).await;
                        p.check().await?;
                        let f = Frugal::new(p, frugal);
                        let c = f.counters();
                        (Arc::new(f), c)
                    }
                    super::api::AwsService::ParameterStore => {
                        let p = ParameterStoreProvider::connect(&config).await;
                        p.check().await?;
                        let f = Frugal::new(p, frugal);
                        let c = f.counters();
                        (Arc::new(f), c)
                    }
                };
                Ok((
                    StoreHandle {
                        label,
                        provider,
                        vault: None,
                        aws: Some(config),
                        counters,
                    },
                    used,
                ))
            }
            _ => Err(store.invalid("spec.provider", "set exactly one of vault, aws")),
        }
    }

    /// Writes a minted ServiceAccount token to this process's private token
    /// directory (0700, file 0600), because the AWS SDK's web identity
    /// provider reads the token from a file. One file per store, replaced
    /// atomically on every reconnect; the SDK re-reads it whenever it
    /// refreshes the STS credentials, so a connection built earlier also
    /// picks up the fresh token. Removed when the [`Stores`] is dropped.
    fn token_file(&self, store: &StoreObject, token: &SecretString) -> Result<PathBuf, StoreError> {
        use sha2::Digest as _;
        use std::io::Write as _;
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        let io = |e: std::io::Error| StoreError::Credential {
            store: store.label(),
            what: format!(
                "ServiceAccount token file under {}",
                self.token_dir.display()
            ),
            reason: e.to_string(),
        };
        match std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&self.token_dir)
        {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
        let (kind, ns, name) = store.key();
        let name_hash: String = sha2::Sha256::digest(format!("{kind}/{ns}/{name}").as_bytes())
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect();
        let path = self.token_dir.join(format!("{name_hash}.jwt"));
        let tmp = self.token_dir.join(format!("{name_hash}.jwt.tmp"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(token.expose_secret().as_bytes()).map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(path)
    }

    /// Writes a store's CA bundle (base64 of PEM, or PEM) to a file named by
    /// its hash, because the Vault client takes CA files.
    fn ca_file(&self, store: &StoreObject, ca: &str) -> Result<PathBuf, StoreError> {
        use base64::Engine as _;
        use sha2::Digest as _;
        let text = ca.trim();
        let pem = if text.starts_with("-----BEGIN") {
            text.as_bytes().to_vec()
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text.split_whitespace().collect::<String>())
                .map_err(|_| {
                    store.invalid(
                        "spec.provider.vault.caBundle",
                        "neither PEM nor base64 of PEM",
                    )
                })?
        };
        let hash: String = sha2::Sha256::digest(&pem)
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect();
        let io = |e: std::io::Error| {
            store.invalid(
                "spec.provider.vault.caBundle",
                format!("cannot write CA file: {e}"),
            )
        };
        std::fs::create_dir_all(&self.ca_dir).map_err(io)?;
        let path = self.ca_dir.join(format!("{hash}.pem"));
        if !path.exists() {
            std::fs::write(&path, &pem).map_err(io)?;
        }
        Ok(path)
    }
}

fn fingerprint_of(store: &StoreObject, secrets: &[(String, String, String)]) -> String {
    let mut s = format!("{}@{}", store.uid, store.generation);
    for (ns, name, rv) in secrets {
        s.push_str(&format!(";{ns}/{name}={rv}"));
    }
    s
}

fn frugal_config(limits: Option<&StoreLimits>, cache_ttl: Duration) -> FrugalConfig {
    let mut c = FrugalConfig {
        max_age: cache_ttl,
        ..FrugalConfig::default()
    };
    if let Some(l) = limits {
        if let Some(rps) = l.requests_per_second
            && rps.is_finite()
            && rps > 0.0
        {
            c.rate_per_second = rps.ceil().min(f64::from(u32::MAX)) as u32;
        }
        if let Some(m) = l.max_concurrent {
            c.max_concurrency = m.max(1) as usize;
        }
    }
    c
}

/// Credential Secrets a store reads (for the cache fingerprint).
fn credential_refs(p: &StoreProvider) -> Vec<&SecretKeySelector> {
    let mut out = Vec::new();
    if let Some(v) = &p.vault {
        let a = &v.auth;
        out.extend(a.token_secret_ref.iter());
        if let Some(ar) = &a.app_role {
            out.extend(ar.role_ref.iter());
            out.push(&ar.secret_ref);
        }
        if let Some(k) = &a.kubernetes {
            out.extend(k.secret_ref.iter());
        }
        if let Some(j) = &a.jwt {
            out.extend(j.secret_ref.iter());
        }
    }
    if let Some(a) = &p.aws
        && let Some(auth) = &a.auth
        && let Some(s) = &auth.secret_ref
    {
        out.push(&s.access_key_id_secret_ref);
        out.push(&s.secret_access_key_secret_ref);
        out.extend(s.session_token_secret_ref.iter());
    }
    out
}

/// Every remote key an ExternalSecret reads, for `allowedKeyPrefixes`.
/// A `find` without a path would search the whole store: its key is "".
pub fn remote_keys(es: &ExternalSecret) -> Vec<String> {
    let mut keys: Vec<String> = es
        .spec
        .data
        .iter()
        .map(|d| d.remote_ref.key.clone())
        .collect();
    for df in &es.spec.data_from {
        if let Some(e) = &df.extract {
            keys.push(e.key.clone());
        }
        if let Some(f) = &df.find {
            keys.push(f.path.clone().unwrap_or_default());
        }
        if let Some(d) = &df.dynamic {
            keys.push(d.path.clone());
        }
    }
    keys
}

/// A key fits when it starts with one of the prefixes and has no `..`
/// segment (which a backend might resolve outside the prefix).
fn key_allowed(key: &str, prefixes: &[&String]) -> bool {
    let key = key.trim_start_matches('/');
    if key.split('/').any(|seg| seg == "..") {
        return false;
    }
    prefixes
        .iter()
        .any(|p| key.starts_with(p.trim_start_matches('/')))
}

/// `matchLabels` and `matchExpressions` (In, NotIn, Exists, DoesNotExist).
/// An unknown operator matches nothing (fail closed).
pub fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    if let Some(ml) = &sel.match_labels
        && ml.iter().any(|(k, v)| labels.get(k) != Some(v))
    {
        return false;
    }
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default();
        let have = labels.get(&e.key);
        let ok = match e.operator.as_str() {
            "In" => have.is_some_and(|v| values.contains(v)),
            "NotIn" => have.is_none_or(|v| !values.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// The store reconciler
// ---------------------------------------------------------------------------

/// What the store reconcilers need.
pub struct StoreContext {
    /// Cluster client.
    pub client: Client,
    /// Shared connections (the ExternalSecret reconciler uses the same).
    pub stores: Arc<Stores>,
    /// Event publisher.
    pub recorder: Recorder,
}

impl StoreContext {
    /// A context publishing events as `sealgate` from `instance`.
    pub fn new(client: Client, stores: Arc<Stores>, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: "sealgate".into(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            stores,
        }
    }
}

/// Runs the `SecretStore` reconciler (in `namespace`, or all) until
/// `shutdown` resolves.
pub async fn run_secret_stores(
    ctx: Arc<StoreContext>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let api: Api<SecretStore> = match &namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let controller = Controller::new(api, watcher::Config::default());
    ctx.stores.attach_secret_stores(controller.store());
    controller
        .graceful_shutdown_on(shutdown)
        .run(
            |s: Arc<SecretStore>, ctx: Arc<StoreContext>| async move {
                let obj = StoreObject::from_namespaced(&s);
                let api: Api<SecretStore> =
                    Api::namespaced(ctx.client.clone(), &s.namespace().unwrap_or_default());
                check_store(&ctx, &obj, &api, s.status.as_ref(), &s.object_ref(&())).await
            },
            |_, _: &StoreError, _| Action::requeue(STORE_RETRY),
            ctx,
        )
        .for_each(|_| async {})
        .await;
}

/// Runs the `ClusterSecretStore` reconciler until `shutdown` resolves.
pub async fn run_cluster_stores(
    ctx: Arc<StoreContext>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let api: Api<ClusterSecretStore> = Api::all(ctx.client.clone());
    let controller = Controller::new(api, watcher::Config::default());
    ctx.stores.attach_cluster_stores(controller.store());
    controller
        .graceful_shutdown_on(shutdown)
        .run(
            |s: Arc<ClusterSecretStore>, ctx: Arc<StoreContext>| async move {
                let obj = StoreObject::from_cluster(&s);
                let api: Api<ClusterSecretStore> = Api::all(ctx.client.clone());
                check_store(&ctx, &obj, &api, s.status.as_ref(), &s.object_ref(&())).await
            },
            |_, _: &StoreError, _| Action::requeue(STORE_RETRY),
            ctx,
        )
        .for_each(|_| async {})
        .await;
}

/// Keeps a metadata-only cache of namespaces (labels, for ClusterSecretStore
/// label-selector admission) in `stores` until `shutdown` resolves.
/// `managedFields` and annotations are dropped: only labels are used.
/// Without the right to list namespaces the watch keeps retrying with
/// backoff and admission falls back to one GET per lookup.
pub async fn run_namespace_cache(
    stores: Arc<Stores>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let api: Api<PartialObjectMeta<Namespace>> = Api::all(stores.client.clone());
    let (reader, writer) = reflector::store();
    stores.attach_namespaces(reader);
    let watch = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|m| {
            m.metadata.managed_fields = None;
            m.metadata.annotations = None;
        })
        .reflect(writer)
        .for_each(|e| async move {
            if let Err(e) = e {
                tracing::debug!(error = %e, "namespace watch failed; retrying");
            }
        });
    tokio::select! {
        () = watch => {}
        () = shutdown => {}
    }
}

/// Connects (a real login), and records the outcome as `Ready`.
async fn check_store<K>(
    ctx: &StoreContext,
    obj: &StoreObject,
    api: &Api<K>,
    old: Option<&SecretStoreStatus>,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
) -> Result<Action, StoreError>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    // A periodic check must prove the login still works, not trust the cache.
    ctx.stores.forget(obj);
    let result = ctx.stores.get(obj).await;
    let mut st = old.cloned().unwrap_or_default();
    let (cond, event) = match &result {
        Ok(_) => (
            ready(
                true,
                "Valid",
                "authenticated against the backend",
                Some(obj.generation),
            ),
            (
                EventType::Normal,
                "Valid".to_owned(),
                "store authenticated".to_owned(),
            ),
        ),
        Err(e) => {
            tracing::warn!(store = %obj.label(), reason = e.metric_label(), error = %e, "store not ready");
            (
                ready(
                    false,
                    e.metric_label(),
                    &e.to_string(),
                    Some(obj.generation),
                ),
                (
                    EventType::Warning,
                    e.metric_label().to_owned(),
                    e.to_string(),
                ),
            )
        }
    };
    let changed = status::set(&mut st.conditions, cond);
    status::patch_if_changed(api, &obj.name, old, &st).await?;
    if changed {
        let ev = Event {
            type_: event.0,
            reason: event.1,
            note: Some(event.2),
            action: "Authenticate".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&ev, reference).await {
            tracing::debug!(error = %e, "could not publish event");
        }
    }
    match result {
        Ok(_) => Ok(Action::requeue(STORE_RESYNC)),
        Err(e) if e.retryable() => Ok(Action::requeue(STORE_RETRY)),
        Err(_) => Ok(Action::requeue(STORE_RESYNC)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn prefixes_bound_keys_and_refuse_dot_dot() {
        let p = ["team-a/".to_owned()];
        let prefixes: Vec<&String> = p.iter().collect();
        assert!(key_allowed("team-a/db", &prefixes));
        assert!(key_allowed("/team-a/db", &prefixes));
        assert!(!key_allowed("team-b/db", &prefixes));
        assert!(!key_allowed("team-a/../team-b/db", &prefixes));
        assert!(!key_allowed("", &prefixes), "an unbounded find is refused");
    }

    #[test]
    fn sts_session_names_are_valid() {
        let mut store = StoreObject {
            kind: StoreKind::SecretStore,
            namespace: Some("team-a".into()),
            name: "aws".into(),
            uid: String::new(),
            generation: 1,
            provider: serde_json::from_value(serde_json::json!({})).expect("provider"),
            limits: None,
            conditions: Vec::new(),
        };
        assert_eq!(session_name(&store), "sealgate-team-a.aws");
        store.name = "x".repeat(300);
        let long = session_name(&store);
        assert_eq!(long.len(), 64);
        assert!(
            long.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
        );
    }

    #[test]
    fn label_selectors_match_like_kubernetes() {
        let labels = BTreeMap::from([("team".to_owned(), "a".to_owned())]);
        let sel = LabelSelector {
            match_labels: Some(labels.clone()),
            match_expressions: None,
        };
        assert!(selector_matches(&sel, &labels));
        assert!(!selector_matches(&sel, &BTreeMap::new()));
        let expr = |op: &str, values: Option<Vec<String>>| LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "team".into(),
                operator: op.into(),
                values,
            }]),
        };
        assert!(selector_matches(
            &expr("In", Some(vec!["a".into()])),
            &labels
        ));
        assert!(!selector_matches(
            &expr("NotIn", Some(vec!["a".into()])),
            &labels
        ));
        assert!(selector_matches(&expr("Exists", None), &labels));
        assert!(!selector_matches(&expr("DoesNotExist", None), &labels));
        assert!(!selector_matches(&expr("Bogus", None), &labels));
    }
}
