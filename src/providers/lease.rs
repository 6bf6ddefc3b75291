//! Keeping a dynamic secret alive: renew before expiry, re-issue before the
//! backend's max TTL cuts it off.
//!
//! Design note: a [`LeaseKeeper`] owns one leased secret. Each
//! [`LeaseKeeper::step`] sleeps until the renewal point (by default two
//! thirds into the lease), then renews. Once the backend grants less than a
//! useful period (the max TTL is near: it grants only what is left), the
//! keeper issues a fresh credential instead and hands back the old lease so
//! the caller can revoke it *after* the new value is in place — consumers
//! never see a gap. The controller runs one keeper per leased
//! `ExternalSecret`; the logic is here so it is tested against a real
//! backend without Kubernetes.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::vault::VaultProvider;
use super::{Fetched, Lease, ProviderError, Reference};

/// What one step did.
#[derive(Debug)]
pub enum Step {
    /// The lease was extended; the value is unchanged.
    Renewed(Lease),
    /// A new credential was issued. `old` is still valid until it expires
    /// or is revoked by the caller once the new value is in use.
    Reissued {
        /// The new credential (its lease is now the one kept).
        new: Box<Fetched>,
        /// The previous lease, to revoke after switching over.
        old: Lease,
    },
}

/// Renews or re-issues one leased secret on schedule.
pub struct LeaseKeeper {
    provider: Arc<VaultProvider>,
    reference: Reference,
    lease: Lease,
    /// TTL granted at issue: what each renewal asks for.
    ttl: Duration,
    due: Instant,
    fraction: f64,
}

impl LeaseKeeper {
    /// Starts keeping `fetched`'s lease. `fraction` (0 < f < 1) is how far
    /// into each lease period the keeper acts; 2/3 is the usual choice.
    /// Returns `None` when the secret has no lease to keep.
    pub fn new(
        provider: Arc<VaultProvider>,
        reference: Reference,
        fetched: &Fetched,
        fraction: f64,
    ) -> Option<Self> {
        let lease = fetched.meta.lease.clone()?;
        let fraction = fraction.clamp(0.05, 0.95);
        Some(Self {
            provider,
            reference,
            ttl: lease.duration,
            due: Instant::now() + lease.duration.mul_f64(fraction),
            lease,
            fraction,
        })
    }

    /// The lease currently kept.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// When the next step will act.
    pub fn due(&self) -> Instant {
        self.due
    }

    /// Waits until due, then renews or re-issues. On error the lease is
    /// unchanged and the step may be retried (the caller decides how soon,
    /// e.g. from [`ProviderError::is_retryable`]).
    pub async fn step(&mut self) -> Result<Step, ProviderError> {
        tokio::time::sleep_until(self.due).await;
        // A useful period: at least the renewal fraction of a full TTL.
        let useful = self.ttl.mul_f64(self.fraction);
        if self.lease.renewable {
            let renewed = self.provider.renew(&self.lease, Some(self.ttl)).await?;
            if renewed.duration >= useful {
                self.due = Instant::now() + renewed.duration.mul_f64(self.fraction);
                self.lease = renewed.clone();
                return Ok(Step::Renewed(renewed));
            }
            tracing::debug!(lease = %self.lease.id, granted = ?renewed.duration, "max TTL near; re-issuing");
        }
        let new = self.provider.issue(&self.reference).await?;
        let Some(lease) = new.meta.lease.clone() else {
            return Err(ProviderError::Invalid {
                store: String::new(),
                key: self.reference.key.clone(),
                detail: "re-issued secret came back without a lease".into(),
            });
        };
        let old = std::mem::replace(&mut self.lease, lease);
        self.ttl = self.lease.duration;
        self.due = Instant::now() + self.ttl.mul_f64(self.fraction);
        Ok(Step::Reissued {
            new: Box::new(new),
            old,
        })
    }
}
