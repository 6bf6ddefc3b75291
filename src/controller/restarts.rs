//! Rolling consumers when a Secret's content changes.
//!
//! Design note: applications that read a Secret once at start need a new
//! pod to see a rotated credential. The reconciler tells the [`Restarter`]
//! that a Secret's content changed; the restarter sets the pod-template
//! annotation [`HASH_ANNOTATION`] of each named Deployment, StatefulSet or
//! DaemonSet to a hash of the new content, and the workload controller
//! rolls the pods as for any template change.
//!
//! The hash is an HMAC-SHA256 with a key of the controller's own (the
//! Secret [`KEY_SECRET`] in the controller's namespace, created with 32
//! random bytes on first use): a plain SHA-256 of a short password on a
//! Deployment that many more people can read than the Secret would let
//! them test guesses offline. The key is stable across controller
//! restarts, so the same content gives the same hash; a workload whose
//! annotation already holds the hash is not touched, which is why a
//! controller restart (which re-reconciles everything) never rolls pods
//! whose Secret did not change.
//!
//! Changes are debounced per workload (a burst of writes, e.g. several
//! ExternalSecrets feeding one Deployment rotating together, gives one
//! roll, with the last hash) and the patches of the whole controller are
//! rate-limited (a token bucket of `max_per_minute`), so a mass rotation
//! cannot restart every workload of the cluster at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hmac::{Hmac, Mac};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use sha2::Sha256;
use tokio::time::Instant;

use crate::controller::api::WorkloadRef;
use crate::controller::sops_secret::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::secret::{ExposeSecret, SecretBytes};

/// Pod-template annotation carrying the keyed content hash.
pub const HASH_ANNOTATION: &str = "sealgate.dev/secret-hash";

/// Secret (in the controller's namespace) holding the HMAC key.
pub const KEY_SECRET: &str = "sealgate-restart-key";

/// Data key of the HMAC key in [`KEY_SECRET`].
pub const KEY_FIELD: &str = "key";

/// Field manager of the restart patches: separate from the Secret writer's
/// so the annotation's ownership is visible and never conflicts with it.
pub const FIELD_MANAGER: &str = "sealgate-restart";

/// Why the restarter could not start. Patch failures later are logged per
/// workload (they must not fail the reconcile that wrote the Secret).
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    /// Reading or creating the key Secret failed.
    #[error("restart key Secret {namespace}/{KEY_SECRET}: {source}")]
    Kube {
        /// The controller's namespace.
        namespace: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The key Secret exists but holds no usable key.
    #[error("restart key Secret {namespace}/{KEY_SECRET}: {detail}")]
    BadKey {
        /// The controller's namespace.
        namespace: String,
        /// What is wrong (never the key).
        detail: String,
    },
    /// No randomness for a new key.
    #[error("restart key: no randomness: {0}")]
    Random(String),
}

impl RestartError {
    /// A stable, low-cardinality label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube { .. } => "kube",
            Self::BadKey { .. } => "bad_key",
            Self::Random(_) => "random",
        }
    }
}

/// Rolls workloads when a Secret's content changes. Clone = Arc.
#[derive(Clone)]
pub struct Restarter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Restarter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Restarter")
            .field("debounce", &self.inner.debounce)
            .finish_non_exhaustive()
    }
}

struct Inner {
    client: Client,
    key: SecretBytes,
    debounce: Duration,
    bucket: tokio::sync::Mutex<Bucket>,
    pending: Mutex<HashMap<Workload, Pending>>,
}

/// A workload, normalised.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Workload {
    namespace: String,
    kind: Kind,
    name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl Kind {
    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "deployment" | "deployments" | "deploy" => Some(Self::Deployment),
            "statefulset" | "statefulsets" | "sts" => Some(Self::StatefulSet),
            "daemonset" | "daemonsets" | "ds" => Some(Self::DaemonSet),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
        }
    }
}

/// The latest hash for a workload and when to act on it.
struct Pending {
    hash: String,
    deadline: Instant,
    /// Latest moment the deadline may be pushed to, so a Secret that keeps
    /// changing still rolls its consumers.
    cap: Instant,
}

/// Token bucket over all patches.
struct Bucket {
    tokens: f64,
    capacity: f64,
    per_sec: f64,
    last: Instant,
}

impl Bucket {
    fn new(max_per_minute: u32) -> Self {
        let capacity = f64::from(max_per_minute.max(1));
        Self {
            tokens: capacity,
            capacity,
            per_sec: capacity / 60.0,
            last: Instant::now(),
        }
    }

    /// Takes a token, or says how long until one is available.
    fn take(&mut self) -> Result<(), Duration> {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.per_sec)
            .min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec))
        }
    }
}

impl Restarter {
    /// `key_namespace`: the controller's namespace; the HMAC key lives in Secret
    /// `sealgate-restart-key` there (created on first use, 32 random bytes) so hashes are
    /// stable across controller restarts and unkeyed hashes of secret bytes never appear.
    pub async fn new(
        client: Client,
        key_namespace: &str,
        debounce: Duration,
        max_per_minute: u32,
    ) -> Result<Self, RestartError> {
        let key = load_or_create_key(&client, key_namespace).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                key,
                debounce,
                bucket: tokio::sync::Mutex::new(Bucket::new(max_per_minute)),
                pending: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Keyed hash (HMAC-SHA256, hex, truncated ok) of the Secret's data, order-independent.
    pub fn content_hash(&self, data: &BTreeMap<String, SecretBytes>) -> String {
        content_hash(self.inner.key.expose_secret(), data)
    }

    /// Called by the reconciler after it wrote changed content. Debounced per workload; patches
    /// `spec.template.metadata.annotations["sealgate.dev/secret-hash"] = hash` (server-side apply,
    /// field manager `sealgate-restart`) on each Deployment/StatefulSet/DaemonSet in `targets`,
    /// skipping workloads whose annotation already equals `hash` (so a controller restart never
    /// rolls anything whose Secret did not change). Returns without waiting for the debounce.
    pub fn content_changed(&self, namespace: &str, targets: &[WorkloadRef], hash: String) {
        let now = Instant::now();
        for t in targets {
            let Some(kind) = Kind::parse(&t.kind) else {
                tracing::warn!(namespace, kind = %t.kind, name = %t.name, "restart target is not a Deployment, StatefulSet or DaemonSet; ignored");
                continue;
            };
            let w = Workload {
                namespace: namespace.to_owned(),
                kind,
                name: t.name.clone(),
            };
            let mut pending = self.inner.lock_pending();
            match pending.get_mut(&w) {
                Some(p) => {
                    // A timer is already running: it picks up the newest
                    // hash; quiet time restarts, up to the cap.
                    p.hash.clone_from(&hash);
                    p.deadline = (now + self.inner.debounce).min(p.cap);
                }
                None => {
                    pending.insert(
                        w.clone(),
                        Pending {
                            hash: hash.clone(),
                            deadline: now + self.inner.debounce,
                            cap: now + self.inner.debounce * 3,
                        },
                    );
                    drop(pending);
                    tokio::spawn(Arc::clone(&self.inner).roll_after_debounce(w));
                }
            }
        }
    }
}

impl Inner {
    fn lock_pending(&self) -> MutexGuard<'_, HashMap<Workload, Pending>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn roll_after_debounce(self: Arc<Self>, w: Workload) {
        // Wait until the workload's Secret content has been quiet.
        let hash = loop {
            let deadline = match self.lock_pending().get(&w) {
                Some(p) => p.deadline,
                None => return,
            };
            if Instant::now() >= deadline {
                match self.lock_pending().remove(&w) {
                    Some(p) => break p.hash,
                    None => return,
                }
            }
            tokio::time::sleep_until(deadline).await;
        };
        loop {
            let wait = self.bucket.lock().await.take();
            match wait {
                Ok(()) => break,
                Err(d) => tokio::time::sleep(d).await,
            }
        }
        let result = match w.kind {
            Kind::Deployment => self.roll::<Deployment>(&w, &hash).await,
            Kind::StatefulSet => self.roll::<StatefulSet>(&w, &hash).await,
            Kind::DaemonSet => self.roll::<DaemonSet>(&w, &hash).await,
        };
        match result {
            Ok(true) => {
                tracing::info!(namespace = %w.namespace, kind = w.kind.as_str(), name = %w.name, "rolled workload after its Secret changed");
            }
            Ok(false) => {
                tracing::debug!(namespace = %w.namespace, kind = w.kind.as_str(), name = %w.name, "workload already runs this content; not rolled");
            }
            Err(e) => {
                tracing::warn!(namespace = %w.namespace, kind = w.kind.as_str(), name = %w.name, error = %e, "could not roll workload");
            }
        }
    }

    /// Patches the template annotation unless it already holds `hash`.
    /// `Ok(false)`: nothing to do (same hash, or the workload is gone).
    async fn roll<K>(&self, w: &Workload, hash: &str) -> Result<bool, kube::Error>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + DeserializeOwned
            + serde::Serialize
            + TemplateAnnotations,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &w.namespace);
        let Some(live) = api.get_opt(&w.name).await? else {
            tracing::warn!(namespace = %w.namespace, kind = w.kind.as_str(), name = %w.name, "restart target not found");
            return Ok(false);
        };
        if live.template_annotation(HASH_ANNOTATION) == Some(hash) {
            return Ok(false);
        }
        let body = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "metadata": { "name": w.name },
            "spec": { "template": { "metadata": { "annotations": { HASH_ANNOTATION: hash } } } },
        });
        api.patch(
            &w.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
        Ok(true)
    }
}

/// Read access to a workload's pod-template annotations.
trait TemplateAnnotations {
    fn template_annotation(&self, key: &str) -> Option<&str>;
}

macro_rules! template_annotations {
    ($($t:ty),*) => {$(
        impl TemplateAnnotations for $t {
            fn template_annotation(&self, key: &str) -> Option<&str> {
                self.spec
                    .template
                    .metadata
                    .as_ref()?
                    .annotations
                    .as_ref()?
                    .get(key)
                    .map(String::as_str)
            }
        }
    )*};
}
template_annotations!(Deployment, StatefulSet, DaemonSet);

/// HMAC-SHA256 over every entry in key order, each field length-prefixed
/// so no two different maps hash alike; hex of the first 16 bytes.
fn content_hash(key: &[u8], data: &BTreeMap<String, SecretBytes>) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        // HMAC accepts keys of any length; unreachable in practice.
        return String::new();
    };
    for (k, v) in data {
        let v = v.expose_secret();
        mac.update(&(k.len() as u64).to_be_bytes());
        mac.update(k.as_bytes());
        mac.update(&(v.len() as u64).to_be_bytes());
        mac.update(v);
    }
    mac.finalize().into_bytes()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads the key Secret, creating it with 32 random bytes when absent
/// (when two replicas race, the loser reads the winner's key).
async fn load_or_create_key(client: &Client, namespace: &str) -> Result<SecretBytes, RestartError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let kube_err = |source| RestartError::Kube {
        namespace: namespace.to_owned(),
        source,
    };
    for _ in 0..3 {
        if let Some(s) = api.get_opt(KEY_SECRET).await.map_err(kube_err)? {
            let key = s
                .data
                .and_then(|mut d| d.remove(KEY_FIELD))
                .map(|b| SecretBytes::new(b.0))
                .ok_or_else(|| RestartError::BadKey {
                    namespace: namespace.to_owned(),
                    detail: format!("no {KEY_FIELD:?} entry"),
                })?;
            if key.len() < 16 {
                return Err(RestartError::BadKey {
                    namespace: namespace.to_owned(),
                    detail: format!("key is {} bytes; at least 16 are needed", key.len()),
                });
            }
            return Ok(key);
        }
        let mut fresh = vec![0u8; 32];
        getrandom::fill(&mut fresh).map_err(|e| RestartError::Random(e.to_string()))?;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(KEY_SECRET.to_owned()),
                labels: Some([(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned())].into()),
                ..ObjectMeta::default()
            },
            data: Some([(KEY_FIELD.to_owned(), ByteString(fresh.clone()))].into()),
            ..Secret::default()
        };
        let key = SecretBytes::new(fresh);
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => {
                tracing::info!(namespace, "created the restart hash key Secret");
                return Ok(key);
            }
            // Another replica created it meanwhile: read theirs.
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(kube_err(e)),
        }
    }
    Err(RestartError::BadKey {
        namespace: namespace.to_owned(),
        detail: "the key Secret keeps appearing and disappearing".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, SecretBytes> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), SecretBytes::new(v.as_bytes().to_vec())))
            .collect()
    }

    #[test]
    fn hash_is_keyed_stable_and_order_independent() {
        let a = data(&[("user", "app"), ("password", "hunter2")]);
        let b = data(&[("password", "hunter2"), ("user", "app")]);
        let h = content_hash(b"k1-0123456789abcdef", &a);
        assert_eq!(h, content_hash(b"k1-0123456789abcdef", &b));
        assert_eq!(h.len(), 32);
        assert_ne!(h, content_hash(b"k2-0123456789abcdef", &a), "keyed");
        assert_ne!(
            h,
            content_hash(b"k1-0123456789abcdef", &data(&[("user", "app")])),
            "content-sensitive"
        );
        // Not a plain digest of the value.
        let plain = format!("{:x}", Sha256::digest(b"hunter2"));
        assert!(!plain.starts_with(&h));
    }

    #[test]
    fn field_boundaries_matter() {
        let k = b"0123456789abcdef";
        assert_ne!(
            content_hash(k, &data(&[("a", "bc")])),
            content_hash(k, &data(&[("ab", "c")]))
        );
    }

    #[test]
    fn kinds_parse_case_insensitively() {
        assert_eq!(Kind::parse("deployment"), Some(Kind::Deployment));
        assert_eq!(Kind::parse("StatefulSet"), Some(Kind::StatefulSet));
        assert_eq!(Kind::parse("DAEMONSET"), Some(Kind::DaemonSet));
        assert_eq!(Kind::parse("CronJob"), None);
    }

    #[tokio::test]
    async fn bucket_limits_to_the_rate() {
        let mut b = Bucket::new(2);
        assert!(b.take().is_ok());
        assert!(b.take().is_ok());
        // Two per minute: the next token is about 30 s away.
        let wait = b.take().expect_err("empty");
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30));
        b.last -= Duration::from_secs(31);
        assert!(b.take().is_ok());
    }
}
