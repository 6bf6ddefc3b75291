//! Leases of dynamic secrets (`dataFrom.dynamic`): renewed in the
//! background, re-issued before they run out, the replaced credential
//! revoked after an overlap, everything revoked when the owner goes away.
//!
//! Design note: the reconciler owns *issuing* (it must write the new
//! credential to the Secret before anything else happens), this module owns
//! *time*. After the reconciler issued and wrote a credential it hands the
//! lease to [`LeaseManager::adopt`]; from then on one background task per
//! lease renews it (at half of each granted period, asking for the TTL it
//! was issued with). The backend grants less than asked once the lease's
//! maximum life is near; from that answer the task learns the maximum life
//! and marks the lease *re-issue due* at `reissue_at` of it (or at once if
//! that point has passed), and pushes the owner on the trigger stream so
//! the reconciler runs, issues a fresh credential and adopts it. A refused
//! renewal (lease revoked or unknown) does the same. The replaced lease is
//! not revoked at once: consumers may still hold the old credential, so it
//! stays valid for `overlap`, then it is revoked (zero-downtime rotation).
//!
//! [`crate::providers::lease::LeaseKeeper`] renews *and* issues by itself;
//! that suits a standalone client but not the controller, where a new
//! credential is useless until it is in the Secret. Its renewal rule (a
//! grant shorter than asked means the maximum life is near) is the same.
//!
//! The state is in memory. After a controller restart the reconciler finds
//! the lease id in the Secret's annotations ([`LEASE_ID_ANNOTATION`]) and
//! calls [`LeaseManager::resume`], which looks the lease up in the backend
//! (`sys/leases/lookup`) instead of issuing a new credential. Lease ids are
//! not secret values (using one needs a token allowed on `sys/leases`), so
//! they appear in logs and annotations; credentials never pass through here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use futures::channel::mpsc;
use kube::runtime::reflector::ObjectRef;
use tokio::task::AbortHandle;

use crate::controller::api::ExternalSecret;
use crate::providers::vault::VaultProvider;
use crate::providers::{Lease, ProviderError};

/// Annotation on the Secret naming the lease behind its credential, so a
/// restarted controller resumes it instead of issuing (and leaking) one.
pub const LEASE_ID_ANNOTATION: &str = "sealgate.dev/lease-id";

/// Annotation on the Secret with the lease's expiry (RFC 3339), for people
/// and tools that look at the Secret only.
pub const LEASE_EXPIRES_AT_ANNOTATION: &str = "sealgate.dev/lease-expires-at";

/// How long a replaced credential stays valid when `spec.lease.overlap` is
/// absent: long enough for consumers reading the Secret to pick up the new
/// one (kubelet refreshes mounted Secrets within about a minute; apps that
/// re-read on change are faster).
pub const DEFAULT_OVERLAP: Duration = Duration::from_secs(30);

/// Fraction of a lease's maximum life after which it is re-issued when not
/// configured: leaves a third of the life for the reconciler to replace it
/// and for the overlap.
pub const DEFAULT_REISSUE_AT: f64 = 0.66;

/// Renewals happen when this fraction of the current grant has passed,
/// leaving the other half for retries when the backend is briefly away.
const RENEW_AT: f64 = 0.5;

/// Which ExternalSecret a lease belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseOwner {
    /// Namespace of the ExternalSecret.
    pub namespace: String,
    /// Name of the ExternalSecret.
    pub name: String,
    /// UID, so a deleted and re-created ExternalSecret of the same name is
    /// a different owner whose leases are separate.
    pub uid: String,
}

impl LeaseOwner {
    /// The reference the reconciler's trigger stream carries.
    pub fn object_ref(&self) -> ObjectRef<ExternalSecret> {
        ObjectRef::new(&self.name).within(&self.namespace)
    }
}

/// How leases of one ExternalSecret are handled (from spec.lease + defaults).
#[derive(Clone, Debug)]
pub struct LeasePolicy {
    /// How long the previous credential stays valid after a re-issue before revocation.
    pub overlap: Duration,
    /// Re-issue when this fraction of the lease's maximum life has passed (default 0.66)
    pub reissue_at: f64,
}

impl Default for LeasePolicy {
    fn default() -> Self {
        Self {
            overlap: DEFAULT_OVERLAP,
            reissue_at: DEFAULT_REISSUE_AT,
        }
    }
}

/// What the reconciler needs to know about the lease currently backing a Secret.
#[derive(Clone, Debug)]
pub struct LeaseView {
    /// The backend's lease id.
    pub lease_id: String,
    /// When the credential stops working unless renewed.
    pub expires_at: SystemTime,
    /// The credential must be replaced now (near max TTL / not renewable any more / renewal failed).
    pub reissue_due: bool,
}

/// Shared (Clone = Arc) manager; runs its own renew/revoke background tasks.
#[derive(Clone)]
pub struct LeaseManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LeaseManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseManager")
            .field("owners", &self.inner.lock().len())
            .finish()
    }
}

struct Inner {
    owners: Mutex<HashMap<LeaseOwner, OwnerState>>,
    trigger: mpsc::UnboundedSender<ObjectRef<ExternalSecret>>,
}

impl Inner {
    /// The map, even if a task panicked while holding it (the data is
    /// plain bookkeeping, consistent after every statement).
    fn lock(&self) -> MutexGuard<'_, HashMap<LeaseOwner, OwnerState>> {
        self.owners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn signal(&self, owner: &LeaseOwner) {
        // The receiver is gone only when the controller shuts down.
        let _ = self.trigger.unbounded_send(owner.object_ref());
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let owners = self
            .owners
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for state in owners.values() {
            state.abort_tasks();
        }
    }
}

#[derive(Default)]
struct OwnerState {
    current: Option<Tracked>,
    /// Replaced leases waiting for the end of their overlap (or for a
    /// revocation that failed and is retried by `release`).
    retiring: Vec<Retiring>,
}

impl OwnerState {
    fn abort_tasks(&self) {
        if let Some(t) = &self.current {
            t.task.abort();
        }
        for r in &self.retiring {
            if let Some(t) = &r.task {
                t.abort();
            }
        }
    }
}

struct Tracked {
    lease: Lease,
    vault: Arc<VaultProvider>,
    expires_at: SystemTime,
    reissue_due: bool,
    task: AbortHandle,
}

impl Tracked {
    fn view(&self) -> LeaseView {
        LeaseView {
            lease_id: self.lease.id.clone(),
            expires_at: self.expires_at,
            reissue_due: self.reissue_due,
        }
    }
}

struct Retiring {
    lease: Lease,
    vault: Arc<VaultProvider>,
    task: Option<AbortHandle>,
}

/// Where a lease stands, as the keeper task plans its next step.
#[derive(Clone, Debug, PartialEq)]
struct Schedule {
    /// The TTL it was issued with: what each renewal asks for.
    increment: Duration,
    /// Start of the lease's life (issue time).
    issued_at: SystemTime,
    /// Start of the current grant (issue or last renewal).
    granted_at: SystemTime,
    /// End of the current grant.
    expires_at: SystemTime,
    /// End of the maximum life, once known (capped grant, not renewable).
    hard_expiry: Option<SystemTime>,
    renewable: bool,
    reissue_at: f64,
    reissue_due: bool,
}

/// The keeper's next step.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Next {
    /// Renew at this time.
    Renew(SystemTime),
    /// Mark re-issue due at this time.
    Reissue(SystemTime),
    /// The lease ends at this time; nothing can be done but report it.
    Expire(SystemTime),
}

impl Schedule {
    fn next(&self) -> Next {
        if !self.reissue_due {
            if let Some(hard) = self.hard_expiry {
                let life = hard.duration_since(self.issued_at).unwrap_or_default();
                return Next::Reissue(self.issued_at + life.mul_f64(self.reissue_at));
            }
            if self.renewable {
                let grant = self
                    .expires_at
                    .duration_since(self.granted_at)
                    .unwrap_or_default();
                return Next::Renew(self.granted_at + grant.mul_f64(RENEW_AT));
            }
        }
        Next::Expire(self.expires_at)
    }

    /// Applies a granted renewal received at `now`.
    fn renewed(&mut self, now: SystemTime, granted: &Lease) {
        self.granted_at = now;
        self.expires_at = now + granted.duration;
        self.renewable = granted.renewable;
        // A grant shorter than asked is capped by the maximum life; a lease
        // that is no longer renewable ends with this grant.
        if granted.duration < self.increment || !granted.renewable {
            self.hard_expiry = Some(self.expires_at);
        }
    }

    /// The backend refused a renewal for good: the lease ends as it is.
    fn refused(&mut self) {
        self.hard_expiry = Some(self.expires_at);
        self.reissue_due = true;
    }
}

fn clamp_fraction(f: f64) -> f64 {
    if f.is_finite() {
        f.clamp(0.05, 0.95)
    } else {
        DEFAULT_REISSUE_AT
    }
}

impl LeaseManager {
    /// Returns the manager and a stream of ExternalSecrets that need a reconcile now
    /// (re-issue due, lease lost). The runner feeds the stream to `Controller::reconcile_on`.
    pub fn new() -> (
        Self,
        impl futures::Stream<Item = ObjectRef<ExternalSecret>> + Send + 'static,
    ) {
        let (tx, rx) = mpsc::unbounded();
        (
            Self {
                inner: Arc::new(Inner {
                    owners: Mutex::new(HashMap::new()),
                    trigger: tx,
                }),
            },
            rx,
        )
    }

    /// After the reconciler issued a credential (VaultProvider::issue) AND wrote it to the
    /// Secret: track it, renew it in the background, and schedule revocation of the lease it
    /// replaces (if any) after `policy.overlap`.
    pub fn adopt(
        &self,
        owner: LeaseOwner,
        vault: Arc<VaultProvider>,
        lease: Lease,
        policy: LeasePolicy,
    ) {
        let now = SystemTime::now();
        let schedule = Schedule {
            increment: lease.duration,
            issued_at: now,
            granted_at: now,
            expires_at: now + lease.duration,
            hard_expiry: (!lease.renewable).then_some(now + lease.duration),
            renewable: lease.renewable,
            reissue_at: clamp_fraction(policy.reissue_at),
            reissue_due: false,
        };
        self.track(owner, vault, lease, schedule, policy.overlap);
    }

    /// Installs `lease` as the owner's current lease with a keeper task,
    /// retiring the previous one (if it is a different lease).
    fn track(
        &self,
        owner: LeaseOwner,
        vault: Arc<VaultProvider>,
        lease: Lease,
        schedule: Schedule,
        overlap: Duration,
    ) {
        let mut owners = self.inner.lock();
        let state = owners.entry(owner.clone()).or_default();
        if let Some(prev) = state.current.take() {
            prev.task.abort();
            if prev.lease.id != lease.id {
                tracing::info!(
                    namespace = %owner.namespace, name = %owner.name,
                    old = %prev.lease.id, new = %lease.id, ?overlap,
                    "lease replaced; revoking the old one after the overlap"
                );
                let task = tokio::spawn(retire(
                    Arc::downgrade(&self.inner),
                    owner.clone(),
                    Arc::clone(&prev.vault),
                    prev.lease.clone(),
                    overlap,
                ))
                .abort_handle();
                state.retiring.push(Retiring {
                    lease: prev.lease,
                    vault: prev.vault,
                    task: Some(task),
                });
            }
        }
        // A lease adopted again (the reconciler re-running on the same
        // credential) must not be revoked by an earlier replacement.
        if let Some(i) = state.retiring.iter().position(|r| r.lease.id == lease.id) {
            let r = state.retiring.swap_remove(i);
            if let Some(t) = r.task {
                t.abort();
            }
        }
        let task = tokio::spawn(keep(
            Arc::downgrade(&self.inner),
            owner,
            Arc::clone(&vault),
            lease.clone(),
            schedule.clone(),
        ))
        .abort_handle();
        state.current = Some(Tracked {
            lease,
            vault,
            expires_at: schedule.expires_at,
            reissue_due: schedule.reissue_due,
            task,
        });
    }

    /// After a controller restart: resume tracking a lease recorded on the Secret
    /// (annotations below) without issuing a new credential. Looks the lease up in the backend
    /// (sys/leases/lookup); returns Ok(None) if it no longer exists (caller then issues anew).
    pub async fn resume(
        &self,
        owner: LeaseOwner,
        vault: Arc<VaultProvider>,
        lease_id: &str,
        policy: LeasePolicy,
    ) -> Result<Option<LeaseView>, ProviderError> {
        if let Some(view) = self.current(&owner).filter(|v| v.lease_id == lease_id) {
            return Ok(Some(view));
        }
        let info = match vault.lookup(lease_id).await {
            Ok(info) => info,
            // Revoked, expired or never existed: Vault answers "invalid
            // lease" (400) or 404.
            Err(ProviderError::Invalid { .. } | ProviderError::NotFound { .. }) => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if info.lease.duration.is_zero() {
            return Ok(None);
        }
        let now = SystemTime::now();
        let expires_at = now + info.lease.duration;
        let granted_at = info.last_renewal.or(info.issue_time).unwrap_or(now);
        // The period of the last grant is what the lease was issued (or
        // last renewed) with: ask for the same at each renewal.
        let increment = info
            .expire_time
            .and_then(|e| e.duration_since(granted_at).ok())
            .map(|d| Duration::from_secs(d.as_secs_f64().round() as u64))
            .filter(|d| !d.is_zero())
            .unwrap_or(info.lease.duration);
        let issued_at = info.issue_time.unwrap_or(granted_at).min(now);
        let mut schedule = Schedule {
            increment,
            issued_at,
            granted_at: granted_at.min(now),
            expires_at,
            hard_expiry: (!info.lease.renewable).then_some(expires_at),
            renewable: info.lease.renewable,
            reissue_at: clamp_fraction(policy.reissue_at),
            reissue_due: false,
        };
        if let Next::Reissue(at) = schedule.next() {
            schedule.reissue_due = at <= now;
        }
        tracing::info!(
            namespace = %owner.namespace, name = %owner.name, lease = %lease_id,
            ttl = ?info.lease.duration, "resumed lease recorded on the Secret"
        );
        self.track(owner.clone(), vault, info.lease, schedule, policy.overlap);
        Ok(self.current(&owner))
    }

    /// The tracked lease, if any. `None` → the reconciler must issue (or resume).
    pub fn current(&self, owner: &LeaseOwner) -> Option<LeaseView> {
        self.inner
            .lock()
            .get(owner)
            .and_then(|s| s.current.as_ref())
            .map(Tracked::view)
    }

    /// ExternalSecret deleted, or its Secret deleted: revoke every lease of the owner now.
    ///
    /// A revocation that fails for a reason that may pass (backend away)
    /// keeps that lease recorded, so calling `release` again retries it;
    /// the first such error is returned.
    pub async fn release(&self, owner: &LeaseOwner) -> Result<(), ProviderError> {
        let Some(state) = self.inner.lock().remove(owner) else {
            return Ok(());
        };
        state.abort_tasks();
        let mut leases: Vec<(Lease, Arc<VaultProvider>)> = state
            .retiring
            .into_iter()
            .map(|r| (r.lease, r.vault))
            .collect();
        if let Some(t) = state.current {
            leases.push((t.lease, t.vault));
        }
        let mut first_error = None;
        for (lease, vault) in leases {
            match revoke(&vault, &lease).await {
                Ok(()) => {
                    tracing::info!(namespace = %owner.namespace, name = %owner.name, lease = %lease.id, "lease revoked on release");
                }
                Err(e) => {
                    tracing::warn!(namespace = %owner.namespace, name = %owner.name, lease = %lease.id, error = %e, "lease revocation failed; kept for retry");
                    self.inner
                        .lock()
                        .entry(owner.clone())
                        .or_default()
                        .retiring
                        .push(Retiring {
                            lease,
                            vault,
                            task: None,
                        });
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// For the `secrets nearing expiry` gauge: number of tracked leases expiring within `within`.
    pub fn expiring_within(&self, within: Duration) -> usize {
        let horizon = SystemTime::now() + within;
        self.inner
            .lock()
            .values()
            .filter_map(|s| s.current.as_ref())
            .filter(|t| t.expires_at <= horizon)
            .count()
    }
}

/// Revokes, treating "already gone" as done.
async fn revoke(vault: &VaultProvider, lease: &Lease) -> Result<(), ProviderError> {
    match vault.revoke(lease).await {
        Ok(()) | Err(ProviderError::NotFound { .. } | ProviderError::Invalid { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sleeps until `at` (now if it has passed).
async fn sleep_until(at: SystemTime) {
    if let Ok(d) = at.duration_since(SystemTime::now()) {
        tokio::time::sleep(d).await;
    }
}

/// The background task of a replaced lease: wait out the overlap, revoke,
/// forget. Retries while the backend is away, at most until the lease
/// would have expired anyway.
async fn retire(
    inner: Weak<Inner>,
    owner: LeaseOwner,
    vault: Arc<VaultProvider>,
    lease: Lease,
    overlap: Duration,
) {
    tokio::time::sleep(overlap).await;
    let mut backoff = Duration::from_secs(1);
    for _ in 0..8 {
        match revoke(&vault, &lease).await {
            Ok(()) => {
                tracing::info!(namespace = %owner.namespace, name = %owner.name, lease = %lease.id, "replaced lease revoked after overlap");
                break;
            }
            Err(e) => {
                tracing::warn!(namespace = %owner.namespace, name = %owner.name, lease = %lease.id, error = %e, "revoking replaced lease failed");
                if !e.is_retryable() {
                    break;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
    let Some(inner) = inner.upgrade() else { return };
    let mut owners = inner.lock();
    if let Some(state) = owners.get_mut(&owner) {
        state.retiring.retain(|r| r.lease.id != lease.id);
        if state.current.is_none() && state.retiring.is_empty() {
            owners.remove(&owner);
        }
    }
}

/// The background task of a current lease: renew on schedule, mark
/// re-issue due and signal the owner, report expiry.
async fn keep(
    inner: Weak<Inner>,
    owner: LeaseOwner,
    vault: Arc<VaultProvider>,
    mut lease: Lease,
    mut schedule: Schedule,
) {
    // The state update of one step; `false` when this lease is no longer
    // the owner's current one (the task then ends).
    let publish = |lease: &Lease, schedule: &Schedule, signal: bool| -> bool {
        let Some(inner) = inner.upgrade() else {
            return false;
        };
        let mut owners = inner.lock();
        let Some(t) = owners
            .get_mut(&owner)
            .and_then(|s| s.current.as_mut())
            .filter(|t| t.lease.id == lease.id)
        else {
            return false;
        };
        t.lease = lease.clone();
        t.expires_at = schedule.expires_at;
        t.reissue_due = schedule.reissue_due;
        drop(owners);
        if signal {
            inner.signal(&owner);
        }
        true
    };
    if schedule.reissue_due && !publish(&lease, &schedule, true) {
        return;
    }
    let mut retry: Option<SystemTime> = None;
    // Whether a failing renewal already asked the reconciler for a fresh
    // credential (once per shortage, not at every retry).
    let mut short_signalled = false;
    loop {
        let next = schedule.next();
        match next {
            Next::Renew(at) => sleep_until(retry.take().unwrap_or(at)).await,
            Next::Reissue(at) | Next::Expire(at) => sleep_until(at).await,
        }
        let now = SystemTime::now();
        match next {
            Next::Renew(_) => match vault.renew(&lease, Some(schedule.increment)).await {
                Ok(granted) => {
                    tracing::debug!(lease = %lease.id, granted = ?granted.duration, "lease renewed");
                    schedule.renewed(now, &granted);
                    lease = granted;
                    short_signalled = false;
                    if !publish(&lease, &schedule, false) {
                        return;
                    }
                }
                Err(e) if e.is_retryable() => {
                    let left = schedule.expires_at.duration_since(now).unwrap_or_default();
                    tracing::warn!(lease = %lease.id, error = %e, ?left, "lease renewal failed; retrying");
                    // Running short: let the reconciler try a fresh
                    // credential while the renewal keeps being retried.
                    let threshold = schedule
                        .increment
                        .mul_f64(1.0 - schedule.reissue_at)
                        .min(schedule.increment.mul_f64(RENEW_AT));
                    if left < threshold && !short_signalled {
                        short_signalled = true;
                        schedule.reissue_due = true;
                        if !publish(&lease, &schedule, true) {
                            return;
                        }
                        // Keep trying to renew until the lease ends.
                        schedule.reissue_due = false;
                    }
                    if left.is_zero() {
                        schedule.reissue_due = true;
                        continue;
                    }
                    retry = Some(
                        now + (left / 4).clamp(Duration::from_millis(500), Duration::from_secs(30)),
                    );
                }
                Err(e) => {
                    tracing::warn!(lease = %lease.id, error = %e, "lease renewal refused; re-issue due");
                    schedule.refused();
                    if !publish(&lease, &schedule, true) {
                        return;
                    }
                }
            },
            Next::Reissue(_) => {
                tracing::info!(namespace = %owner.namespace, name = %owner.name, lease = %lease.id, "lease near its maximum life; re-issue due");
                schedule.reissue_due = true;
                if !publish(&lease, &schedule, true) {
                    return;
                }
            }
            Next::Expire(_) => {
                tracing::warn!(namespace = %owner.namespace, name = %owner.name, lease = %lease.id, "lease expired before it was replaced");
                schedule.reissue_due = true;
                publish(&lease, &schedule, true);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    fn lease(secs: u64, renewable: bool) -> Lease {
        Lease {
            id: "database/creds/app/x".into(),
            duration: Duration::from_secs(secs),
            renewable,
        }
    }

    fn fresh(ttl: u64, renewable: bool) -> Schedule {
        Schedule {
            increment: Duration::from_secs(ttl),
            issued_at: at(0),
            granted_at: at(0),
            expires_at: at(ttl),
            hard_expiry: (!renewable).then_some(at(ttl)),
            renewable,
            reissue_at: 0.66,
            reissue_due: false,
        }
    }

    #[test]
    fn renews_at_half_of_each_grant() {
        let mut s = fresh(60, true);
        assert_eq!(s.next(), Next::Renew(at(30)));
        s.renewed(at(30), &lease(60, true));
        assert_eq!(s.next(), Next::Renew(at(60)));
        assert_eq!(s.hard_expiry, None);
    }

    #[test]
    fn a_capped_grant_reveals_the_max_life_and_schedules_reissue() {
        // TTL 60 s, max 100 s: the renewal at 60 s gets only 40 s.
        let mut s = fresh(60, true);
        s.renewed(at(30), &lease(60, true));
        s.renewed(at(60), &lease(40, true));
        assert_eq!(s.hard_expiry, Some(at(100)));
        // 0.66 of the 100 s life: 66 s.
        assert_eq!(s.next(), Next::Reissue(at(66)));
        s.reissue_due = true;
        assert_eq!(s.next(), Next::Expire(at(100)));
    }

    #[test]
    fn a_lease_that_cannot_be_renewed_is_reissued_at_the_fraction_of_its_life() {
        let s = fresh(100, false);
        assert_eq!(s.next(), Next::Reissue(at(66)));
    }

    #[test]
    fn a_refused_renewal_makes_reissue_due_until_expiry() {
        let mut s = fresh(60, true);
        s.refused();
        assert!(s.reissue_due);
        assert_eq!(s.next(), Next::Expire(at(60)));
    }

    #[test]
    fn a_renewal_that_turns_unrenewable_ends_the_life() {
        let mut s = fresh(60, true);
        s.renewed(at(30), &lease(60, false));
        assert_eq!(s.hard_expiry, Some(at(90)));
        assert!(matches!(s.next(), Next::Reissue(_)));
    }

    #[test]
    fn fractions_are_clamped() {
        assert_eq!(clamp_fraction(f64::NAN), DEFAULT_REISSUE_AT);
        assert_eq!(clamp_fraction(2.0), 0.95);
        assert_eq!(clamp_fraction(0.0), 0.05);
    }
}
