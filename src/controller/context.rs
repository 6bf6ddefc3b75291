//! What every reconciler of one leadership term shares.
//!
//! Design note: a [`Context`] is built when this replica becomes leader and
//! dropped when it stops leading, so nothing a previous term learnt (store
//! sessions, tracked leases) outlives the lock; leases are resumed from the
//! annotations on their Secrets. [`Metrics`] outlive terms and are owned by
//! the runner.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use super::external_secret::{LeaseManager, Restarter};
use super::metrics::{EXPIRY_WINDOW, Metrics, Snapshot};
use super::stores::Stores;

/// Shared state of the reconcilers.
pub struct Context {
    /// Cluster client.
    pub client: Client,
    /// Connected stores.
    pub stores: Arc<Stores>,
    /// Event publisher.
    pub recorder: Recorder,
    /// Process metrics.
    pub metrics: Arc<Metrics>,
    /// Leases of dynamic secrets.
    pub leases: LeaseManager,
    /// Rolls workloads whose Secret changed (absent when it could not start).
    pub restarter: Option<Restarter>,
    /// The controller's own namespace.
    pub controller_namespace: String,
    /// Spread refreshes (on by default).
    pub jitter: bool,
    /// ExternalSecrets reconciled at least once in this term (uids).
    pub(crate) seen: Mutex<HashSet<String>>,
    /// Secrets this term wrote, by `namespace/name`, with the
    /// resourceVersion the write produced: the watch event of our own write
    /// is not a reason to reconcile again.
    pub(crate) own_writes: Mutex<HashMap<String, String>>,
}

impl Context {
    /// Builds a context; events are published as `sealgate` from `instance`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        stores: Arc<Stores>,
        metrics: Arc<Metrics>,
        leases: LeaseManager,
        restarter: Option<Restarter>,
        controller_namespace: String,
        instance: Option<String>,
        jitter: bool,
    ) -> Self {
        let reporter = Reporter {
            controller: "sealgate".into(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            stores,
            metrics,
            leases,
            restarter,
            controller_namespace,
            jitter,
            seen: Mutex::new(HashSet::new()),
            own_writes: Mutex::new(HashMap::new()),
        }
    }

    /// Figures read at scrape time.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            stores: self.stores.counters(),
            expiring: self.leases.expiring_within(EXPIRY_WINDOW),
        }
    }

    /// Remembers that this term wrote `key` (`namespace/name`) at
    /// `resource_version`.
    pub(crate) fn wrote(&self, key: String, resource_version: Option<String>) {
        if let Some(rv) = resource_version {
            self.own_writes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(key, rv);
        }
    }

    /// Whether a watch event for `key` at `resource_version` is the echo
    /// of our own write (consumed: a later event is not).
    pub(crate) fn is_echo(&self, key: &str, resource_version: Option<&str>) -> bool {
        let mut m = self
            .own_writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match (m.get(key), resource_version) {
            (Some(rv), Some(seen)) if rv == seen => {
                m.remove(key);
                true
            }
            _ => false,
        }
    }

    /// Marks `uid` seen; returns whether it was the first time this term.
    pub(crate) fn first_sight(&self, uid: &str) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(uid.to_owned())
    }
}
