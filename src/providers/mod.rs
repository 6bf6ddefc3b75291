//! Secret backends behind one trait: Vault/OpenBao and AWS.
//!
//! Design note: the controller resolves every `ExternalSecret` reference
//! through [`Provider`], so it never knows which backend answered. What it
//! does need to know is *how* a call failed, because that decides the retry
//! and the status reason: [`ProviderError`] has one variant per decision
//! (`NotFound` is the user's to fix, `Throttled`/`Unavailable` are retried
//! with backoff, `Unauthenticated` triggers a re-login), and each variant
//! has a stable [`ProviderError::metric_label`].
//!
//! Values come back in [`crate::secret`] types. Error messages carry the
//! store, the reference and the server's own error text, never a value;
//! tests capture trace-level logs and grep them for planted values.
//!
//! Known limit: the HTTP client libraries (reqwest, the AWS SDK) buffer
//! response bodies in ordinary memory before we can wrap them; our copies
//! are zeroized, theirs are freed but not wiped.

pub mod aws;
pub mod cache;
pub mod config;
pub mod lease;
pub mod property;
pub mod sops_keys;
pub mod vault;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::secret::SecretBytes;

/// What to fetch from a store: the shape of an `ExternalSecret`
/// `remoteRef`, so the controller can pass it through unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Reference {
    /// Path or name in the backend (KV path relative to the mount, engine
    /// path for dynamic secrets, secret name or ARN for AWS).
    pub key: String,
    /// A field of a key/value secret; dotted for nested JSON (`db.password`).
    pub property: Option<String>,
    /// A specific version (KV v2 version number, AWS VersionId, or
    /// `AWSCURRENT`-style stage).
    pub version: Option<String>,
    /// How to decode the fetched value before handing it out.
    pub decoding: Decoding,
}

impl Reference {
    /// A reference to a whole secret, latest version.
    pub fn key(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            ..Self::default()
        }
    }

    /// The same reference narrowed to one property.
    pub fn property(mut self, property: impl Into<String>) -> Self {
        self.property = Some(property.into());
        self
    }

    /// The same reference pinned to a version.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }
}

/// Decoding applied to a fetched value; binary data is often stored as
/// base64 text because KV stores and Parameter Store hold strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Decoding {
    /// Use the bytes as stored.
    #[default]
    None,
    /// The stored text is standard base64; decode it.
    Base64,
    /// The stored text is URL-safe base64; decode it.
    Base64Url,
    /// Decode when the text is valid standard or URL-safe base64, else use
    /// it as stored (ESO's `Auto`: for stores holding a mix).
    Auto,
}

/// A fetched secret: one value, or a key/value map (a KV entry, a JSON
/// secret). Keys are not secret; values are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretValue {
    /// A single value (a property, a plain-string secret, binary data).
    Bytes(SecretBytes),
    /// Every field of a key/value secret.
    Map(BTreeMap<String, SecretBytes>),
}

/// A dynamic secret's lease: the controller renews it before it expires and
/// revokes it when the Kubernetes Secret goes away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The backend's lease id (`database/creds/app/Xyz…`). Not a secret by
    /// itself: revoking needs a token with rights on `sys/leases`.
    pub id: String,
    /// Time to live granted at issue or last renewal.
    pub duration: Duration,
    /// Whether the backend accepts renewals for this lease.
    pub renewable: bool,
}

/// Facts about a fetch that the controller records in status and uses for
/// refresh decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Backend version identifier of what was returned, when it has one.
    pub version: Option<String>,
    /// Present for leased (dynamic) secrets.
    pub lease: Option<Lease>,
    /// When the value was fetched, for cache age and `refreshTime`.
    pub fetched_at: SystemTime,
    /// Custom metadata or tags of the secret (never values).
    pub labels: BTreeMap<String, String>,
}

impl Metadata {
    fn now() -> Self {
        Self {
            version: None,
            lease: None,
            fetched_at: SystemTime::now(),
            labels: BTreeMap::new(),
        }
    }
}

/// The result of one successful fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The secret material.
    pub value: SecretValue,
    /// Version, lease and timing facts.
    pub meta: Metadata,
}

/// Why a backend call failed, at the granularity the controller acts on.
///
/// Every variant names the store and the reference so a status message
/// points at the right object; `detail` is the backend's own error text
/// (which never contains secret values) or a transport error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The secret, version or property does not exist.
    #[error("{store}: {key:?} not found: {detail}")]
    NotFound {
        /// Store name.
        store: String,
        /// Reference key.
        key: String,
        /// What exactly is missing.
        detail: String,
    },
    /// Authenticated, but the policy does not allow this read.
    #[error("{store}: permission denied for {key:?}: {detail}")]
    PermissionDenied {
        /// Store name.
        store: String,
        /// Reference key.
        key: String,
        /// Backend message.
        detail: String,
    },
    /// Credentials missing, expired or rejected; a re-login may fix it.
    #[error("{store}: not authenticated: {detail}")]
    Unauthenticated {
        /// Store name.
        store: String,
        /// Backend message.
        detail: String,
    },
    /// The backend asked us to slow down; retried with backoff.
    #[error("{store}: throttled: {detail}")]
    Throttled {
        /// Store name.
        store: String,
        /// Backend message.
        detail: String,
    },
    /// The backend could not be reached or failed (5xx, timeout,
    /// connection refused, sealed); retried with backoff.
    #[error("{store}: unavailable: {detail}")]
    Unavailable {
        /// Store name.
        store: String,
        /// Transport error or backend message.
        detail: String,
    },
    /// The reference or configuration is wrong (bad property, bad version
    /// syntax, undecodable value); retrying will not help.
    #[error("{store}: invalid reference {key:?}: {detail}")]
    Invalid {
        /// Store name.
        store: String,
        /// Reference key.
        key: String,
        /// What is wrong.
        detail: String,
    },
}

impl ProviderError {
    /// A stable, low-cardinality label for metrics and status reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::PermissionDenied { .. } => "permission_denied",
            Self::Unauthenticated { .. } => "unauthenticated",
            Self::Throttled { .. } => "throttled",
            Self::Unavailable { .. } => "unavailable",
            Self::Invalid { .. } => "invalid",
        }
    }

    /// The same error about another reference key (batch calls answer for
    /// several keys at once).
    pub fn with_key(&self, new_key: &str) -> Self {
        let mut e = self.clone();
        match &mut e {
            Self::NotFound { key, .. }
            | Self::PermissionDenied { key, .. }
            | Self::Invalid { key, .. } => {
                new_key.clone_into(key);
            }
            Self::Unauthenticated { .. } | Self::Throttled { .. } | Self::Unavailable { .. } => {}
        }
        e
    }

    /// Whether retrying the same call later can succeed without a change
    /// by a person.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Unavailable { .. })
    }
}

/// A `dataFrom.find` query: every secret below `path` whose name (relative
/// to the store's root, e.g. `app/db`) matches `name` and that carries all
/// `tags` (KV v2 custom metadata, AWS tags).
#[derive(Debug, Clone, Default)]
pub struct FindQuery {
    /// Path prefix to search under (none: the whole store).
    pub path: Option<String>,
    /// Regular expression the name must match (unanchored, as in ESO).
    pub name: Option<regex::Regex>,
    /// Tags that must all be present with these values.
    pub tags: BTreeMap<String, String>,
}

impl FindQuery {
    fn matches_name(&self, name: &str) -> bool {
        self.name.as_ref().is_none_or(|r| r.is_match(name))
    }

    fn matches_tags(&self, labels: &BTreeMap<String, String>) -> bool {
        self.tags.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// Most secrets a single `find` returns; a larger match is refused rather
/// than silently truncated or allowed to hammer the backend.
pub const FIND_LIMIT: usize = 1_000;

/// One secret backend. Implemented by [`vault::VaultProvider`] and
/// [`aws::SecretsManagerProvider`] / [`aws::ParameterStoreProvider`].
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// The store's name, used in errors and metrics.
    fn store(&self) -> &str;

    /// Fetches one reference.
    async fn fetch(&self, reference: &Reference) -> Result<Fetched, ProviderError>;

    /// Fetches one reference, accepting a copy read at or after
    /// `not_before`. A refresh only needs data as new as the moment it came
    /// due, so every `ExternalSecret` due at the same moment can share one
    /// backend read; a plain backend has no copies and simply reads.
    async fn fetch_since(
        &self,
        reference: &Reference,
        not_before: std::time::SystemTime,
    ) -> Result<Fetched, ProviderError> {
        let _ = not_before;
        self.fetch(reference).await
    }

    /// How many references one batch call of this backend can answer
    /// (1: the backend has no batch API, so batching would only hide
    /// single calls).
    fn batch_size(&self) -> usize {
        1
    }

    /// Fetches several references with as few backend calls as the
    /// backend allows; results in input order, one failure does not fail
    /// the others.
    async fn fetch_batch(&self, refs: &[Reference]) -> Vec<Result<Fetched, ProviderError>> {
        let mut out = Vec::with_capacity(refs.len());
        for r in refs {
            out.push(self.fetch(r).await);
        }
        out
    }

    /// [`Provider::fetch_batch`] accepting copies read at or after
    /// `not_before` (see [`Provider::fetch_since`]).
    async fn fetch_batch_since(
        &self,
        refs: &[Reference],
        not_before: std::time::SystemTime,
    ) -> Vec<Result<Fetched, ProviderError>> {
        let _ = not_before;
        self.fetch_batch(refs).await
    }

    /// Every secret matching `query`, by name (for `dataFrom.find`).
    async fn find(&self, query: &FindQuery) -> Result<BTreeMap<String, Fetched>, ProviderError> {
        let _ = query;
        Err(ProviderError::Invalid {
            store: self.store().to_owned(),
            key: String::new(),
            detail: "this store does not support find".into(),
        })
    }

    /// [`Provider::find`] accepting a listing made at or after
    /// `not_before`, so every `ExternalSecret` running the same find in one
    /// refresh slot shares one listing (see [`Provider::fetch_since`]).
    async fn find_since(
        &self,
        query: &FindQuery,
        not_before: std::time::SystemTime,
    ) -> Result<BTreeMap<String, Fetched>, ProviderError> {
        let _ = not_before;
        self.find(query).await
    }
}

/// The error for a `find` that matched more than [`FIND_LIMIT`] secrets.
pub(crate) fn too_many(store: &str, query: &FindQuery) -> ProviderError {
    ProviderError::Invalid {
        store: store.to_owned(),
        key: query.path.clone().unwrap_or_default(),
        detail: format!(
            "find matched more than {FIND_LIMIT} secrets; narrow the path, name or tags"
        ),
    }
}

/// Applies `reference.property` and `reference.decoding` to a fetched map
/// or value; shared by every backend so they behave the same.
pub(crate) fn shape(
    store: &str,
    reference: &Reference,
    value: SecretValue,
) -> Result<SecretValue, ProviderError> {
    let invalid = |detail: String| ProviderError::Invalid {
        store: store.to_owned(),
        key: reference.key.clone(),
        detail,
    };
    // A missing property is NotFound (the user may add it in the backend);
    // a property on a non-JSON value is Invalid (the reference is wrong).
    let property_error = |e: property::PropertyError| match e {
        property::PropertyError::Missing(_) => ProviderError::NotFound {
            store: store.to_owned(),
            key: reference.key.clone(),
            detail: e.to_string(),
        },
        other => invalid(other.to_string()),
    };
    let picked = match (&reference.property, value) {
        (None, v) => v,
        (Some(p), SecretValue::Map(map)) => {
            SecretValue::Bytes(property::from_map(&map, p).map_err(property_error)?)
        }
        (Some(p), SecretValue::Bytes(b)) => {
            SecretValue::Bytes(property::from_json(&b, p).map_err(property_error)?)
        }
    };
    let decode = |b: &SecretBytes| -> Result<SecretBytes, &'static str> {
        match reference.decoding {
            Decoding::None => Ok(b.clone()),
            Decoding::Base64 => {
                property::decode_base64(b).map_err(|_| "not valid base64 (decoding: Base64)")
            }
            Decoding::Base64Url => property::decode_base64_url(b)
                .map_err(|_| "not valid URL-safe base64 (decoding: Base64URL)"),
            Decoding::Auto => Ok(property::decode_base64(b)
                .or_else(|_| property::decode_base64_url(b))
                .unwrap_or_else(|_| b.clone())),
        }
    };
    if reference.decoding == Decoding::None {
        return Ok(picked);
    }
    match picked {
        SecretValue::Bytes(b) => Ok(SecretValue::Bytes(
            decode(&b).map_err(|why| invalid(format!("value is {why}")))?,
        )),
        SecretValue::Map(m) => {
            let mut out = BTreeMap::new();
            for (k, v) in m {
                let d = decode(&v).map_err(|why| invalid(format!("field {k:?} is {why}")))?;
                out.insert(k, d);
            }
            Ok(SecretValue::Map(out))
        }
    }
}

/// An error and its sources on one line, for `detail` fields: transport
/// errors hide the useful part ("connection refused") in the chain.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
