//! The `sealgate.dev/v1alpha1` custom resources the controller reconciles.
//!
//! Design note: `ExternalSecret`, `SecretStore` and `ClusterSecretStore`
//! follow External Secrets Operator's field names (`secretStoreRef`,
//! `remoteRef`, `dataFrom`, `creationPolicy`, ...) so that `sealgate convert`
//! is a mechanical rewrite and people's muscle memory carries over.
//!
//! Every optional field is an `Option` (or an empty list skipped on output)
//! and the generated schemas carry no `default`: the apiserver then never
//! fills in values the user did not write, so Argo CD and Flux see the object
//! exactly as committed and report no perpetual drift. Defaults live in the
//! controller (the `effective_*` helpers below), not in the schema.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every sealgate resource.
pub const GROUP: &str = "sealgate.dev";
/// API version of every sealgate resource.
pub const VERSION: &str = "v1alpha1";

// ---------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------

/// A key of a Kubernetes Secret that holds a credential for a store.
///
/// `namespace` is honoured only for a `ClusterSecretStore` (a namespaced
/// store reads credentials from its own namespace only), so a tenant cannot
/// point its store at another tenant's Secret.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    /// Name of the Secret.
    pub name: String,
    /// Key inside the Secret's `data`.
    pub key: String,
    /// Namespace of the Secret (ClusterSecretStore only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A ServiceAccount whose token (from the TokenRequest API) is used to log
/// in, so no long-lived credential has to be stored anywhere.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountSelector {
    /// Name of the ServiceAccount.
    pub name: String,
    /// Namespace (ClusterSecretStore only; a SecretStore uses its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Audiences requested for the token; the backend's role must accept one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
}

/// One status condition, in the shape `kubectl wait --for=condition=...`
/// and kstatus understand.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// One CamelCase word a program can match on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A sentence for people; never carries secret values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When `status` last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The `metadata.generation` this condition describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Which kind of store a reference points at.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum StoreKind {
    /// A `SecretStore` in the referring object's namespace.
    SecretStore,
    /// A `ClusterSecretStore`, subject to its `conditions`.
    ClusterSecretStore,
}

/// A reference from an `ExternalSecret` or `SopsSecret` to a store.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreRef {
    /// Name of the store.
    pub name: String,
    /// Kind of the store; `SecretStore` when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<StoreKind>,
}

impl SecretStoreRef {
    /// The kind with the controller-side default applied.
    pub fn effective_kind(&self) -> StoreKind {
        self.kind.unwrap_or(StoreKind::SecretStore)
    }
}

// ---------------------------------------------------------------------------
// Stores
// ---------------------------------------------------------------------------

/// Where secrets come from, and how the controller authenticates there.
/// Exactly one provider must be set.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreProvider {
    /// Vault or OpenBao (same API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<VaultStore>,
    /// AWS Secrets Manager or SSM Parameter Store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsStore>,
}

/// KV engine version of a Vault mount.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum KvVersion {
    /// KV version 1 (no versions, no metadata).
    #[serde(rename = "v1")]
    V1,
    /// KV version 2 (versioned).
    #[serde(rename = "v2")]
    V2,
}

/// A Vault/OpenBao backend.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultStore {
    /// Server address, e.g. `https://vault.example:8200`.
    pub server: String,
    /// Mount path of the KV engine (`secret` when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// KV version of the mount (`v2` when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<KvVersion>,
    /// Vault Enterprise / OpenBao namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// PEM CA bundle to trust for the server (base64 of the PEM, as in ESO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// How the controller logs in.
    pub auth: VaultAuth,
}

/// Vault login methods; exactly one must be set.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultAuth {
    /// A token read from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeySelector>,
    /// AppRole login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_role: Option<VaultAppRole>,
    /// Kubernetes auth method (Vault checks a ServiceAccount token by TokenReview).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<VaultKubernetesAuth>,
    /// JWT/OIDC auth method with a JWT from a Secret or a ServiceAccount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<VaultJwtAuth>,
}

/// AppRole credentials.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultAppRole {
    /// Mount path of the approle method (`approle` when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The role id (not secret on its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_id: Option<String>,
    /// The role id read from a Secret, instead of `roleId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_ref: Option<SecretKeySelector>,
    /// The secret id.
    pub secret_ref: SecretKeySelector,
}

/// Kubernetes auth method.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultKubernetesAuth {
    /// Mount path of the method (`kubernetes` when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<String>,
    /// Vault role to log in as.
    pub role: String,
    /// ServiceAccount whose token is presented; the controller's own when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_ref: Option<ServiceAccountSelector>,
    /// A token read from a Secret instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeySelector>,
}

/// JWT auth method.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultJwtAuth {
    /// Mount path of the method (`jwt` when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Vault role to log in as.
    pub role: String,
    /// A JWT read from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeySelector>,
    /// Or a fresh ServiceAccount token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_service_account_token: Option<ServiceAccountSelector>,
}

/// Which AWS service holds the secrets.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AwsService {
    /// AWS Secrets Manager.
    SecretsManager,
    /// SSM Parameter Store.
    ParameterStore,
}

/// An AWS backend.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsStore {
    /// Which service.
    pub service: AwsService,
    /// Region, e.g. `eu-west-1`.
    pub region: String,
    /// Endpoint override (VPC endpoints, LocalStack, moto).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Credentials; the default chain of the controller's environment when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AwsAuth>,
}

/// AWS credentials; exactly one must be set.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsAuth {
    /// Static access keys read from Secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<AwsSecretRef>,
    /// Web identity: a ServiceAccount token exchanged through STS for a role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<AwsJwtAuth>,
}

/// Static AWS keys.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsSecretRef {
    /// The access key id.
    pub access_key_id_secret_ref: SecretKeySelector,
    /// The secret access key.
    pub secret_access_key_secret_ref: SecretKeySelector,
    /// A session token, for temporary keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token_secret_ref: Option<SecretKeySelector>,
}

/// Web identity through STS.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsJwtAuth {
    /// Role to assume.
    pub role_arn: String,
    /// ServiceAccount whose token is exchanged.
    pub service_account_ref: ServiceAccountSelector,
}

/// Per-store API budget, so one busy tenant cannot exhaust a backend's
/// rate limit for everyone.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreLimits {
    /// Sustained backend requests per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<f64>,
    /// Requests in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
}

/// A namespaced backend definition, usable by `ExternalSecret`s of its own
/// namespace only.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "sealgate.dev",
    version = "v1alpha1",
    kind = "SecretStore",
    doc = "A namespaced secret backend definition.",
    namespaced,
    status = "SecretStoreStatus",
    category = "sealgate",
    shortname = "ss",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreSpec {
    /// The backend.
    pub provider: StoreProvider,
    /// API budget towards the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<StoreLimits>,
}

/// Which namespaces may use a `ClusterSecretStore`, and what they may read.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStoreCondition {
    /// Namespaces admitted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Namespaces admitted by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Remote key prefixes the admitted namespaces may read; any key when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_key_prefixes: Vec<String>,
}

/// A cluster-wide backend definition; `conditions` say which namespaces may
/// use it (none listed = every namespace).
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "sealgate.dev",
    version = "v1alpha1",
    kind = "ClusterSecretStore",
    doc = "A cluster-wide secret backend definition.",
    status = "SecretStoreStatus",
    category = "sealgate",
    shortname = "css",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSecretStoreSpec {
    /// The backend.
    pub provider: StoreProvider,
    /// API budget towards the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<StoreLimits>,
    /// Namespace admission rules; a namespace must match at least one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ClusterStoreCondition>,
}

/// Status of either store kind.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreStatus {
    /// `Ready` after a real authentication check against the backend.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

// ---------------------------------------------------------------------------
// ExternalSecret
// ---------------------------------------------------------------------------

/// Who owns the target Secret.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CreationPolicy {
    /// Created and owned (owner reference; garbage-collected with the ExternalSecret).
    Owner,
    /// Only this ExternalSecret's keys are merged into an existing Secret.
    Merge,
    /// Created but not owned; left alone when the ExternalSecret goes.
    Orphan,
}

/// What happens to the target Secret when the ExternalSecret is deleted.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep the Secret.
    Retain,
    /// Delete the Secret (or, for `Merge`, remove our keys).
    Delete,
}

/// What happens to a Secret whose lease can no longer be renewed or re-issued.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ExpirePolicy {
    /// Keep the (soon invalid) credential; status reports it.
    Retain,
    /// Delete the Secret at lease expiry, so consumers fail fast.
    Delete,
}

/// Metadata for the generated Secret.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMetadata {
    /// Labels added to the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Shapes the Secret from the fetched values (minijinja templates).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    /// Secret `type` (`Opaque` when omitted).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Labels and annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,
    /// Output keys and their templates; the fetched values are the variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// Template engine version (`v2`, accepted for ESO compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
}

/// A workload to roll when the Secret's content changes.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    /// `Deployment`, `StatefulSet` or `DaemonSet`.
    pub kind: String,
    /// Name, in the ExternalSecret's namespace.
    pub name: String,
}

/// The Secret the ExternalSecret writes.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretTarget {
    /// Secret name (the ExternalSecret's name when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `Owner` when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_policy: Option<CreationPolicy>,
    /// Unset: the Secret follows its owner reference (`Owner`: deleted with
    /// the ExternalSecret by the garbage collector; `Orphan`, `Merge`: kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
    /// How to shape the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<SecretTemplate>,
    /// Lease expiry behaviour (`Retain` when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire: Option<ExpirePolicy>,
    /// Workloads to roll when the content changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart: Vec<WorkloadRef>,
}

/// A value in the backend.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoteRef {
    /// Path or name of the secret in the backend.
    pub key: String,
    /// A field of a structured (JSON/KV) secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    /// A version (KV v2 number, Secrets Manager VersionId or stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `None`, `Base64`, `Base64URL` or `Auto` (`None` when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoding_strategy: Option<String>,
}

/// One key of the target Secret.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretData {
    /// Key in the Secret (and variable name in templates).
    pub secret_key: String,
    /// Where its value comes from.
    pub remote_ref: RemoteRef,
}

/// Name filter of a `find`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FindName {
    /// Regular expression a secret's name must match.
    pub regexp: String,
}

/// Selects many backend secrets at once.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FindSpec {
    /// Path prefix to search under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Name filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<FindName>,
    /// Tags (AWS) or custom metadata (Vault KV v2) that must all match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// A regex rewrite of keys.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegexpRewrite {
    /// Pattern.
    pub source: String,
    /// Replacement (`$1` style groups).
    pub target: String,
}

/// Rewrites keys produced by a `dataFrom` entry.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rewrite {
    /// Regex replacement applied to every key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<RegexpRewrite>,
}

/// A leased, dynamic secret (e.g. Vault database credentials).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DynamicRef {
    /// Path that issues the credential, e.g. `database/creds/app`.
    pub path: String,
}

/// Many keys from one source.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretDataFrom {
    /// Every property of one structured secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<RemoteRef>,
    /// Every secret matching a search, one key per secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub find: Option<FindSpec>,
    /// Every field of a leased credential, renewed and re-issued before expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic: Option<DynamicRef>,
    /// Key rewrites, applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rewrite: Vec<Rewrite>,
}

/// Lease handling for dynamic secrets.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeasePolicy {
    /// How long the previous credential stays valid after a re-issue, before
    /// its lease is revoked (Go duration, e.g. `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<String>,
}

/// A Secret built from backend values.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "sealgate.dev",
    version = "v1alpha1",
    kind = "ExternalSecret",
    doc = "A Secret built from values in a secret backend.",
    namespaced,
    status = "ExternalSecretStatus",
    category = "sealgate",
    shortname = "es",
    printcolumn = r#"{"name":"Store","type":"string","jsonPath":".spec.secretStoreRef.name"}"#,
    printcolumn = r#"{"name":"Refresh","type":"string","jsonPath":".spec.refreshInterval"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretSpec {
    /// The store to read from.
    pub secret_store_ref: SecretStoreRef,
    /// How often to re-read (Go duration, `1h` when omitted; `0` = fetch once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_interval: Option<String>,
    /// The Secret to write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ExternalSecretTarget>,
    /// Individual keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<ExternalSecretData>,
    /// Bulk sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_from: Vec<ExternalSecretDataFrom>,
    /// Lease handling for `dataFrom.dynamic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeasePolicy>,
}

/// What the controller last did for an `ExternalSecret`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretStatus {
    /// `Ready` and `SecretSynced`, with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When the backend was last read successfully (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_time: Option<String>,
    /// `resourceVersion` of the Secret as last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_resource_version: Option<String>,
    /// When the current lease ends, for dynamic secrets (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<String>,
}

// ---------------------------------------------------------------------------
// SopsSecret
// ---------------------------------------------------------------------------

/// sops file format of `spec.file.content`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SopsFormat {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
    /// dotenv.
    Dotenv,
    /// INI.
    Ini,
    /// A binary blob wrapped in JSON.
    Binary,
}

/// A whole sops file as committed to Git.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SopsFile {
    /// The encrypted file, byte for byte.
    pub content: String,
    /// Its format (guessed from the content when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<SopsFormat>,
    /// Put the whole decrypted file under this Secret key; when omitted each
    /// top-level scalar becomes a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Where decryption keys come from.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SopsDecryption {
    /// A Secret in the controller's namespace with `*.agekey` entries (Flux's format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_key_secret_ref: Option<String>,
    /// A store whose Vault Transit / AWS KMS keys unwrap the data key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_ref: Option<SecretStoreRef>,
}

/// The Secret a `SopsSecret` writes.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SopsSecretTarget {
    /// Secret name (the SopsSecret's name when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Secret `type` when the source is a file (`Opaque` when omitted).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
}

/// A sops-encrypted Secret kept in Git and decrypted in the cluster.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "sealgate.dev",
    version = "v1alpha1",
    kind = "SopsSecret",
    doc = "A Secret decrypted from a sops-encrypted source.",
    namespaced,
    status = "SopsSecretStatus",
    category = "sealgate",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SopsSecretSpec {
    /// A sops-encrypted Kubernetes Secret manifest (YAML or JSON), verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// Or a whole sops file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<SopsFile>,
    /// Decryption keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decryption: Option<SopsDecryption>,
    /// The Secret to write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<SopsSecretTarget>,
}

/// What the controller last did for a `SopsSecret`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SopsSecretStatus {
    /// `Ready` with a reason (`Decrypted`, `InvalidMac`, `NoMatchingKeys`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// `resourceVersion` of the Secret as last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_resource_version: Option<String>,
    /// The sops `lastmodified` of the decrypted source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_last_modified: Option<String>,
}
