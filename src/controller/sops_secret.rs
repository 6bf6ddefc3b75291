//! The `SopsSecret` reconciler: a sops-encrypted source, as committed to
//! Git, becomes a Kubernetes Secret in the same namespace.
//!
//! Design note: one reconcile reads the decryption keys (age identities in
//! Flux's `*.agekey` format from a Secret in the controller's own namespace,
//! and/or the data keys unwrapped through a store's Vault Transit or AWS
//! KMS session when `decryption.storeRef` is set), decrypts in memory with
//! the MAC checked, and writes the Secret with
//! server-side apply only when its content differs from what is there. Any
//! failure — missing key Secret, no matching key, a tampered file, a Secret
//! sealgate does not own — leaves the existing Secret exactly as it was and
//! is reported through the `Ready` condition and a Warning event. Plaintext
//! exists only in `SecretBytes` and, unavoidably, in the serialized apply
//! body; it never reaches status, events, errors or logs.
//!
//! A `storeRef` goes through [`Stores`] exactly like an `ExternalSecret`'s
//! `secretStoreRef`: a `SecretStore` of the SopsSecret's own namespace, or a
//! `ClusterSecretStore` whose conditions admit the namespace (its
//! `allowedKeyPrefixes`, when set, must cover the Transit key path
//! `ENGINE/keys/NAME` or the KMS key ARN). Only the `enc` entries of the
//! file's own metadata are sent to the backend, and Transit only to the
//! store's own server, so a file cannot make the controller send the
//! store's token elsewhere.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PartialObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};

use super::api::SopsSecret;
use super::api::{ClusterSecretStore, SecretStore, SecretStoreRef, StoreKind};
use super::status::{self, ready};
use super::stores::{StoreError, StoreObject, Stores};
use crate::providers::ProviderError;
use crate::providers::sops_keys::{prefetch_kms, prefetch_transit};
use crate::secret::{ExposeSecret, SecretBytes};
use crate::sops::secret_data::{self, SecretDataError};
use crate::sops::{AgeIdentities, Format, Keyring, SopsError};

/// Field manager for every write sealgate makes.
pub const FIELD_MANAGER: &str = "sealgate";
/// Label on every Secret sealgate manages.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "sealgate";
/// Label naming the object that produced a Secret (`SopsSecret.<name>`).
pub const OWNER_LABEL: &str = "sealgate.dev/owner";
/// Annotation carrying the owner in full when [`OWNER_LABEL`]'s value had
/// to be shortened: label values stop at 63 characters, names at 253.
pub const OWNER_ANNOTATION: &str = "sealgate.dev/owner";

/// The [`OWNER_LABEL`] value for `kind`/`name`: `Kind.name`, or for a name
/// too long for a label value a prefix plus a stable hash of the whole name
/// (still unique per owner, so ownership checks stay exact), in which case
/// the full value also goes into [`OWNER_ANNOTATION`].
pub fn owner_label_value(kind: &str, name: &str) -> String {
    let full = format!("{kind}.{name}");
    if full.len() <= 63 {
        return full;
    }
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let keep = 63usize.saturating_sub(kind.len() + 1 + 9);
    let prefix: String = name.chars().take(keep).collect();
    let prefix = prefix.trim_end_matches(['.', '-']);
    format!("{kind}.{prefix}-{h:08x}")
}

/// Whether [`owner_label_value`] had to shorten the value.
pub fn owner_label_shortened(kind: &str, name: &str) -> bool {
    kind.len() + 1 + name.len() > 63
}

/// How often a healthy `SopsSecret` is re-checked, to pick up rotated
/// decryption keys and repair a Secret changed by hand.
const RESYNC: Duration = Duration::from_secs(300);
/// Retry delay after a failure that may heal by itself.
const RETRY: Duration = Duration::from_secs(30);

/// What the reconciler needs; built once per controller process.
pub struct SopsContext {
    /// Cluster client.
    pub client: Client,
    /// Namespace holding the age key Secrets (the controller's own).
    pub key_namespace: String,
    /// Event publisher.
    pub recorder: Recorder,
    /// Stores for `decryption.storeRef` (Transit / KMS); `None` refuses
    /// store-backed decryption.
    pub stores: Option<Arc<Stores>>,
}

impl SopsContext {
    /// A context publishing events as `sealgate` from `instance`.
    pub fn new(client: Client, key_namespace: String, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: "sealgate".into(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            key_namespace,
            stores: None,
        }
    }

    /// Enables `decryption.storeRef`, resolving stores through the same
    /// [`Stores`] (cache, admission rules) as ExternalSecrets.
    #[must_use]
    pub fn with_stores(mut self, stores: Arc<Stores>) -> Self {
        self.stores = Some(stores);
        self
    }
}

/// Why a `SopsSecret` could not be turned into a Secret. Each variant is a
/// status reason; none carries a secret value.
#[derive(Debug, thiserror::Error)]
pub enum SopsSecretError {
    /// Neither or both of `manifest` and `file` are set.
    #[error("spec must set exactly one of `manifest` and `file`")]
    InvalidSpec,
    /// No decryption key source was configured.
    #[error("spec.decryption.ageKeySecretRef is not set; no key to decrypt with")]
    NoKeySource,
    /// The controller runs without store support.
    #[error(
        "spec.decryption.storeRef is not available: this controller runs without stores; use ageKeySecretRef"
    )]
    UnsupportedKeySource,
    /// The store is missing, refuses this namespace or key, or cannot connect.
    #[error("spec.decryption.storeRef: {0}")]
    Store(#[from] StoreError),
    /// The store's backend could not unwrap any data key of the file.
    #[error("spec.decryption.storeRef {store}: could not unwrap the data key: {source}")]
    KeyBackend {
        /// Store label.
        store: String,
        /// The backend's answer (never a key).
        #[source]
        source: ProviderError,
    },
    /// The key Secret does not exist or holds no `*.agekey` entry.
    #[error("decryption key Secret {namespace}/{name}: {reason}")]
    KeySecret {
        /// Namespace searched.
        namespace: String,
        /// Secret name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Decryption or shaping failed.
    #[error("{0}")]
    Decrypt(#[from] SecretDataError),
    /// The manifest names a namespace other than the SopsSecret's.
    #[error(
        "the encrypted manifest targets namespace {found:?}; a SopsSecret writes only to its own ({expected:?})"
    )]
    WrongNamespace {
        /// The SopsSecret's namespace.
        expected: String,
        /// What the manifest says.
        found: String,
    },
    /// The Secret type would grant cluster access.
    #[error("Secret type {0:?} is refused: it grants cluster access")]
    ForbiddenType(String),
    /// A Secret of that name exists and is not sealgate's.
    #[error("Secret {0} exists and is not managed by sealgate; refusing to take it over")]
    NotOwned(String),
    /// The apiserver refused or failed a request.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

impl SopsSecretError {
    /// One CamelCase word for status reasons, events and metric labels.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::InvalidSpec => "InvalidSpec",
            Self::NoKeySource | Self::UnsupportedKeySource => "NoKeySource",
            Self::Store(e) => e.metric_label(),
            Self::KeyBackend { source, .. } => match source {
                ProviderError::Unavailable { .. } | ProviderError::Throttled { .. } => {
                    "BackendUnavailable"
                }
                _ => "KeyUnwrapFailed",
            },
            Self::KeySecret { .. } => "KeySecretUnavailable",
            Self::Decrypt(SecretDataError::Sops(e)) => match e {
                SopsError::NoMatchingKeys { .. } => "NoMatchingKeys",
                SopsError::InvalidMac | SopsError::MacUndecryptable => "InvalidMac",
                SopsError::ValueTampered { .. } => "InvalidMac",
                SopsError::MetadataNotFound => "NotEncrypted",
                _ => "DecryptionFailed",
            },
            Self::Decrypt(_) => "InvalidManifest",
            Self::WrongNamespace { .. } => "WrongNamespace",
            Self::ForbiddenType(_) => "ForbiddenType",
            Self::NotOwned(_) => "SecretNotOwned",
            Self::Kube(_) => "KubernetesError",
        }
    }

    /// Whether waiting may fix it (the apiserver or a key Secret may come
    /// back); spec and content errors need a new commit instead.
    fn retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.retryable(),
            Self::KeyBackend { source, .. } => source.is_retryable(),
            _ => matches!(
                self,
                Self::Kube(_) | Self::KeySecret { .. } | Self::NotOwned(_)
            ),
        }
    }
}

/// The decrypted result, ready to apply.
struct Desired {
    name: String,
    type_: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    data: BTreeMap<String, SecretBytes>,
    last_modified: String,
}

/// Runs the `SopsSecret` controller until `shutdown` resolves. Watches
/// SopsSecrets (in `namespace`, or all) and the metadata of the Secrets
/// they own, so a deleted or edited Secret is repaired promptly without the
/// controller caching any secret value.
pub async fn run(
    ctx: Arc<SopsContext>,
    namespace: Option<String>,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let (sops_api, secret_api): (Api<SopsSecret>, Api<PartialObjectMeta<Secret>>) = match &namespace
    {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let owned = watcher::watcher(
        secret_api,
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}")),
    )
    .touched_objects();
    Controller::new(sops_api, watcher::Config::default())
        .owns_stream(owned)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "sopssecret reconcile request failed");
            }
        })
        .await;
}

fn error_policy(_obj: Arc<SopsSecret>, err: &SopsSecretError, _ctx: Arc<SopsContext>) -> Action {
    if err.retryable() {
        Action::requeue(RETRY)
    } else {
        Action::requeue(RESYNC)
    }
}

/// One reconcile of one `SopsSecret`.
pub async fn reconcile(
    obj: Arc<SopsSecret>,
    ctx: Arc<SopsContext>,
) -> Result<Action, SopsSecretError> {
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let api: Api<SopsSecret> = Api::namespaced(ctx.client.clone(), &ns);
    match sync(&obj, &ctx, &ns).await {
        Ok((secret_name, resource_version, last_modified, wrote)) => {
            let message = if wrote {
                format!("Secret {secret_name} written from the decrypted source")
            } else {
                format!("Secret {secret_name} is up to date")
            };
            let mut st = obj.status.clone().unwrap_or_default();
            status::set(
                &mut st.conditions,
                ready(true, "Decrypted", &message, obj.meta().generation),
            );
            st.synced_resource_version = resource_version;
            st.source_last_modified = Some(last_modified);
            status::patch_if_changed(&api, &name, obj.status.as_ref(), &st).await?;
            if wrote {
                publish(&ctx, &obj, EventType::Normal, "Decrypted", message).await;
            }
            tracing::info!(namespace = %ns, name = %name, secret = %secret_name, wrote, "sopssecret synced");
            Ok(Action::requeue(RESYNC))
        }
        Err(err) => {
            let reason = err.metric_label();
            let message = err.to_string();
            tracing::warn!(namespace = %ns, name = %name, reason, error = %message, "sopssecret not synced; existing Secret left unchanged");
            let mut st = obj.status.clone().unwrap_or_default();
            let changed = status::set(
                &mut st.conditions,
                ready(false, reason, &message, obj.meta().generation),
            );
            // A status write failure must not hide the original error.
            let _ = status::patch_if_changed(&api, &name, obj.status.as_ref(), &st).await;
            if changed {
                publish(&ctx, &obj, EventType::Warning, reason, message).await;
            }
            Err(err)
        }
    }
}

/// Decrypts and applies; returns (Secret name, its resourceVersion, sops
/// lastmodified, whether a write happened).
async fn sync(
    obj: &SopsSecret,
    ctx: &SopsContext,
    ns: &str,
) -> Result<(String, Option<String>, String, bool), SopsSecretError> {
    let keyring = load_keyring(obj, ctx, ns).await?;
    let desired = decrypt(obj, ns, &keyring)?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let existing = secrets.get_opt(&desired.name).await?;
    if let Some(current) = &existing {
        if !is_ours(current, obj) {
            return Err(SopsSecretError::NotOwned(format!("{ns}/{}", desired.name)));
        }
        if up_to_date(current, &desired) {
            return Ok((
                desired.name,
                current.metadata.resource_version.clone(),
                desired.last_modified,
                false,
            ));
        }
    }
    let body = secret_body(obj, ns, &desired)?;
    let written = secrets
        .patch(
            &desired.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    Ok((
        desired.name,
        written.metadata.resource_version,
        desired.last_modified,
        true,
    ))
}

/// The keys to decrypt with: age identities of the key Secret and/or data
/// keys unwrapped through the referenced store.
async fn load_keyring(
    obj: &SopsSecret,
    ctx: &SopsContext,
    ns: &str,
) -> Result<Keyring, SopsSecretError> {
    let decryption = obj.spec.decryption.as_ref();
    let age_ref = decryption.and_then(|d| d.age_key_secret_ref.as_deref());
    let store_ref = decryption.and_then(|d| d.store_ref.as_ref());
    let mut keyring = match age_ref {
        Some(secret_name) => age_keyring(ctx, secret_name).await?,
        None if store_ref.is_some() => Keyring::new(),
        None => return Err(SopsSecretError::NoKeySource),
    };
    if let Some(store_ref) = store_ref {
        let stores = ctx
            .stores
            .as_ref()
            .ok_or(SopsSecretError::UnsupportedKeySource)?;
        match store_keys(obj, &ctx.client, stores, store_ref, ns).await {
            Ok(backend) => keyring = keyring.with(backend),
            // With age keys too, a failing store is not fatal: the file
            // may open with age alone (decryption reports it if not).
            Err(e) if age_ref.is_some() => {
                tracing::info!(namespace = %ns, name = %obj.name_any(), error = %e, "store-backed keys unavailable; trying age keys only");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(keyring)
}

/// The sops source of the object: bytes and format.
fn source(obj: &SopsSecret) -> Result<(&[u8], Format), SopsSecretError> {
    match (&obj.spec.manifest, &obj.spec.file) {
        (Some(manifest), None) => {
            let bytes = manifest.as_bytes();
            Ok((bytes, secret_data::sniff_format(bytes)))
        }
        (None, Some(file)) => {
            let bytes = file.content.as_bytes();
            let format = match file.format {
                Some(f) => format_of(f),
                None => secret_data::sniff_format(bytes),
            };
            Ok((bytes, format))
        }
        _ => Err(SopsSecretError::InvalidSpec),
    }
}

/// Resolves `store_ref` for namespace `ns` under the multi-tenancy rules,
/// then unwraps the file's Transit or KMS data keys with that store.
async fn store_keys(
    obj: &SopsSecret,
    client: &Client,
    stores: &Stores,
    store_ref: &SecretStoreRef,
    ns: &str,
) -> Result<Box<dyn crate::sops::MasterKeyBackend>, SopsSecretError> {
    let (bytes, format) = source(obj)?;
    let (_, metadata) = crate::sops::load_encrypted(bytes, format)
        .map_err(|e| SopsSecretError::Decrypt(SecretDataError::Sops(e)))?;
    let client = client.clone();
    let store = match store_ref.effective_kind() {
        StoreKind::SecretStore => {
            let api: Api<SecretStore> = Api::namespaced(client, ns);
            match api
                .get_opt(&store_ref.name)
                .await
                .map_err(StoreError::from)?
            {
                Some(s) => StoreObject::from_namespaced(&s),
                None => {
                    return Err(StoreError::NotFound {
                        kind: StoreKind::SecretStore,
                        name: store_ref.name.clone(),
                        namespace: Some(ns.to_owned()),
                    }
                    .into());
                }
            }
        }
        StoreKind::ClusterSecretStore => {
            let api: Api<ClusterSecretStore> = Api::all(client);
            match api
                .get_opt(&store_ref.name)
                .await
                .map_err(StoreError::from)?
            {
                Some(s) => StoreObject::from_cluster(&s),
                None => {
                    return Err(StoreError::NotFound {
                        kind: StoreKind::ClusterSecretStore,
                        name: store_ref.name.clone(),
                        namespace: None,
                    }
                    .into());
                }
            }
        }
    };
    // The "remote keys" a sops file reads are its master keys.
    let keys: Vec<String> = metadata
        .key_groups
        .iter()
        .flatten()
        .filter_map(|e| match e.kind.as_str() {
            "hc_vault" => Some(format!(
                "{}/keys/{}",
                e.field("engine_path")?,
                e.field("key_name")?
            )),
            "kms" => e.field("arn"),
            _ => None,
        })
        .collect();
    stores.admit(&store, ns, &keys).await?;
    let handle = stores.get(&store).await?;
    let backend_err = |source| SopsSecretError::KeyBackend {
        store: handle.label().to_owned(),
        source,
    };
    let prefetched = if let Some(vault) = handle.vault() {
        prefetch_transit(&metadata, &vault)
            .await
            .map_err(backend_err)?
    } else if let Some(aws) = handle.aws_config() {
        prefetch_kms(&metadata, aws).await.map_err(backend_err)?
    } else {
        return Err(SopsSecretError::Store(StoreError::InvalidSpec {
            store: handle.label().to_owned(),
            field: "spec.provider".into(),
            message: "this store has no Vault Transit or AWS KMS keys".into(),
        }));
    };
    Ok(Box::new(prefetched))
}

/// Reads every `*.agekey` entry of the key Secret (Flux's convention).
async fn age_keyring(ctx: &SopsContext, secret_name: &str) -> Result<Keyring, SopsSecretError> {
    let key_err = |reason: String| SopsSecretError::KeySecret {
        namespace: ctx.key_namespace.clone(),
        name: secret_name.to_owned(),
        reason,
    };
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.key_namespace);
    let secret = match api.get_opt(secret_name).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(key_err("not found".into())),
        Err(kube::Error::Api(e)) if e.code == 403 => {
            return Err(key_err("the controller may not read it (forbidden)".into()));
        }
        Err(e) => return Err(e.into()),
    };
    let mut identities = AgeIdentities::default();
    for (key, value) in secret.data.unwrap_or_default() {
        if !key.ends_with(".agekey") {
            continue;
        }
        let text = SecretBytes::new(value.0)
            .into_string()
            .map_err(|_| key_err(format!("{key} is not UTF-8")))?;
        identities
            .add_text(&text, &format!("{}/{secret_name}:{key}", ctx.key_namespace))
            .map_err(|e| key_err(e.to_string()))?;
    }
    if identities.is_empty() {
        return Err(key_err(
            "it has no *.agekey entry with an age identity".into(),
        ));
    }
    Ok(Keyring::age(identities))
}

fn decrypt(obj: &SopsSecret, ns: &str, keyring: &Keyring) -> Result<Desired, SopsSecretError> {
    let spec = &obj.spec;
    let target = spec.target.as_ref();
    let (bytes, format) = source(obj)?;
    let mut desired = match (&spec.manifest, &spec.file) {
        (Some(_), None) => {
            let m = secret_data::decrypt_secret_manifest(bytes, format, keyring)?;
            if let Some(found) = m.namespace.filter(|n| n != ns) {
                return Err(SopsSecretError::WrongNamespace {
                    expected: ns.to_owned(),
                    found,
                });
            }
            Desired {
                name: target
                    .and_then(|t| t.name.clone())
                    .or(m.name)
                    .unwrap_or_else(|| obj.name_any()),
                type_: target
                    .and_then(|t| t.type_.clone())
                    .or(m.type_)
                    .unwrap_or_else(|| "Opaque".into()),
                labels: m.labels,
                annotations: m.annotations,
                data: m.data,
                last_modified: m.last_modified,
            }
        }
        (None, Some(file)) => {
            let (data, last_modified) =
                secret_data::decrypt_file_to_data(bytes, format, keyring, file.key.as_deref())?;
            Desired {
                name: target
                    .and_then(|t| t.name.clone())
                    .unwrap_or_else(|| obj.name_any()),
                type_: target
                    .and_then(|t| t.type_.clone())
                    .unwrap_or_else(|| "Opaque".into()),
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
                data,
                last_modified,
            }
        }
        _ => return Err(SopsSecretError::InvalidSpec),
    };
    if desired.type_ == "kubernetes.io/service-account-token" {
        return Err(SopsSecretError::ForbiddenType(desired.type_));
    }
    desired
        .labels
        .insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    desired.labels.insert(
        OWNER_LABEL.into(),
        owner_label_value("SopsSecret", &obj.name_any()),
    );
    if owner_label_shortened("SopsSecret", &obj.name_any()) {
        desired.annotations.insert(
            OWNER_ANNOTATION.into(),
            format!("SopsSecret.{}", obj.name_any()),
        );
    }
    Ok(desired)
}

fn format_of(f: super::api::SopsFormat) -> Format {
    use super::api::SopsFormat as F;
    match f {
        F::Yaml => Format::Yaml,
        F::Json => Format::Json,
        F::Dotenv => Format::Dotenv,
        F::Ini => Format::Ini,
        F::Binary => Format::Binary,
    }
}

/// A Secret is ours when it carries our owner label for this object, or an
/// owner reference to it.
fn is_ours(secret: &Secret, obj: &SopsSecret) -> bool {
    let labelled = secret.labels().get(OWNER_LABEL).map(String::as_str)
        == Some(&owner_label_value("SopsSecret", &obj.name_any()));
    let referenced = obj
        .meta()
        .uid
        .as_ref()
        .is_some_and(|uid| secret.owner_references().iter().any(|r| &r.uid == uid));
    labelled || referenced
}

/// Whether applying `desired` would change nothing we manage (compared in
/// constant time per value).
fn up_to_date(current: &Secret, desired: &Desired) -> bool {
    if current.type_.as_deref().unwrap_or("Opaque") != desired.type_ {
        return false;
    }
    let labels = current.labels();
    if desired.labels.iter().any(|(k, v)| labels.get(k) != Some(v)) {
        return false;
    }
    let annotations = current.annotations();
    if desired
        .annotations
        .iter()
        .any(|(k, v)| annotations.get(k) != Some(v))
    {
        return false;
    }
    let empty = BTreeMap::new();
    let data = current.data.as_ref().unwrap_or(&empty);
    data.len() == desired.data.len()
        && desired.data.iter().all(|(k, want)| {
            data.get(k)
                .is_some_and(|have| SecretBytes::new(have.0.clone()) == *want)
        })
}

fn secret_body(obj: &SopsSecret, ns: &str, desired: &Desired) -> Result<Secret, SopsSecretError> {
    let owner = obj
        .controller_owner_ref(&())
        .ok_or(SopsSecretError::InvalidSpec)?;
    let data = desired
        .data
        .iter()
        .map(|(k, v)| (k.clone(), ByteString(v.expose_secret().to_vec())))
        .collect();
    Ok(Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(desired.name.clone()),
            namespace: Some(ns.to_owned()),
            labels: Some(desired.labels.clone()),
            annotations: (!desired.annotations.is_empty()).then(|| desired.annotations.clone()),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        type_: Some(desired.type_.clone()),
        data: Some(data),
        ..Default::default()
    })
}

async fn publish(
    ctx: &SopsContext,
    obj: &SopsSecret,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Decrypt".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &obj.object_ref(&())).await {
        tracing::debug!(error = %e, "could not publish event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_status_reasons() {
        let tampered = SopsSecretError::Decrypt(SecretDataError::Sops(SopsError::InvalidMac));
        assert_eq!(tampered.metric_label(), "InvalidMac");
        assert!(
            !tampered.retryable(),
            "a tampered file needs a new commit, not a retry"
        );
        let missing = SopsSecretError::KeySecret {
            namespace: "ns".into(),
            name: "k".into(),
            reason: "not found".into(),
        };
        assert_eq!(missing.metric_label(), "KeySecretUnavailable");
        assert!(missing.retryable());
    }
}
