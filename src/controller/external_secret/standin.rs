//! Temporary stand-ins for `controller::leases` and `controller::restarts`
//! (owned by another change), with the agreed signatures, so the
//! ExternalSecret reconciler compiles and runs before they land. Removed
//! when the real modules are merged.
//!
//! Design note: the lease stand-in only remembers the lease it was given
//! (no renewal, no revocation of replaced leases); the restarter does
//! nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use kube::runtime::reflector::ObjectRef;

use crate::controller::api::{ExternalSecret, WorkloadRef};
use crate::providers::vault::VaultProvider;
use crate::providers::{Lease, ProviderError};
use crate::secret::SecretBytes;

/// Which ExternalSecret a lease belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseOwner {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

/// Lease handling policy.
#[derive(Clone, Debug)]
pub struct LeasePolicy {
    /// Overlap before revoking a replaced lease.
    pub overlap: Duration,
    /// Fraction of max life after which to re-issue.
    pub reissue_at: f64,
}

/// The lease backing a Secret.
#[derive(Clone, Debug)]
pub struct LeaseView {
    /// Lease id.
    pub lease_id: String,
    /// Expiry.
    pub expires_at: SystemTime,
    /// Must be replaced now.
    pub reissue_due: bool,
}

type Tracked = (Arc<VaultProvider>, Lease, SystemTime);

/// Stand-in lease manager: remembers adopted leases.
#[derive(Clone, Default)]
pub struct LeaseManager {
    owners: Arc<Mutex<HashMap<LeaseOwner, Tracked>>>,
}

impl LeaseManager {
    /// The manager and its (here: never firing) trigger stream.
    pub fn new() -> (
        Self,
        impl futures::Stream<Item = ObjectRef<ExternalSecret>> + Send + 'static,
    ) {
        (Self::default(), futures::stream::pending())
    }

    /// Track an issued lease.
    pub fn adopt(
        &self,
        owner: LeaseOwner,
        vault: Arc<VaultProvider>,
        lease: Lease,
        _policy: LeasePolicy,
    ) {
        let exp = SystemTime::now() + lease.duration;
        lock(&self.owners).insert(owner, (vault, lease, exp));
    }

    /// Resume a lease recorded on a Secret (stand-in: not resumable).
    pub async fn resume(
        &self,
        _owner: LeaseOwner,
        _vault: Arc<VaultProvider>,
        _lease_id: &str,
        _policy: LeasePolicy,
    ) -> Result<Option<LeaseView>, ProviderError> {
        Ok(None)
    }

    /// The tracked lease.
    pub fn current(&self, owner: &LeaseOwner) -> Option<LeaseView> {
        lock(&self.owners).get(owner).map(|(_, l, exp)| LeaseView {
            lease_id: l.id.clone(),
            expires_at: *exp,
            reissue_due: false,
        })
    }

    /// Revoke the owner's leases.
    pub async fn release(&self, owner: &LeaseOwner) -> Result<(), ProviderError> {
        let entry = lock(&self.owners).remove(owner);
        if let Some((vault, lease, _)) = entry {
            vault.revoke(&lease).await?;
        }
        Ok(())
    }

    /// Leases expiring within `within`.
    pub fn expiring_within(&self, within: Duration) -> usize {
        let limit = SystemTime::now() + within;
        lock(&self.owners)
            .values()
            .filter(|(_, _, e)| *e <= limit)
            .count()
    }
}

/// Stand-in restarter: does nothing.
#[derive(Clone, Default)]
pub struct Restarter;

impl Restarter {
    /// Keyed content hash (stand-in: constant).
    pub fn content_hash(&self, _data: &BTreeMap<String, SecretBytes>) -> String {
        String::new()
    }

    /// Roll `targets` (stand-in: nothing).
    pub fn content_changed(&self, _namespace: &str, _targets: &[WorkloadRef], _hash: String) {}
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
