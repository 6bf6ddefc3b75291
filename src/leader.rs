//! Leader election through a `coordination.k8s.io` Lease, shared by
//! `sealgate controller` and `sealgate gitops`.
//!
//! Design note: a replica campaigns for the Lease and runs one *term* of
//! work (the caller's reconcilers) while it holds it. Losing the Lease ends
//! the term (the caller stops gracefully: in-flight work finishes, nothing
//! new starts) and the replica campaigns again. Stopping (the `stop`
//! watch turning true) ends the term and then *releases* the Lease, so a
//! standby takes over at once rather than after the Lease expires. Each
//! process keeps its own Lease name, so the controller and the GitOps loop
//! elect leaders independently.

use std::future::Future;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;

/// Who campaigns for which Lease.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// Namespace of the Lease (the process's own).
    pub namespace: String,
    /// Name of the Lease; one per kind of process.
    pub lease_name: String,
    /// This replica's identity in the Lease (pod name).
    pub identity: String,
    /// Seconds a Lease stays valid without renewal.
    pub duration_seconds: u64,
}

/// The Lease could not be set up (RBAC, a missing namespace).
#[derive(Debug, thiserror::Error)]
#[error("leader election (Lease {namespace}/{name}): {message}")]
pub struct LeaderError {
    /// Lease namespace.
    pub namespace: String,
    /// Lease name.
    pub name: String,
    /// What failed.
    pub message: String,
}

/// Campaigns until `stop` turns true, calling `term(end)` each time this
/// replica becomes leader; `end` resolves when leadership is lost or a stop
/// is asked for, and the term must return once it has. `on_change` hears
/// every change of leadership (for a leader gauge).
pub async fn campaign<T, Fut>(
    client: &Client,
    config: &LeaderConfig,
    stop: watch::Receiver<bool>,
    mut term: T,
    on_change: impl Fn(bool),
) -> Result<(), LeaderError>
where
    T: FnMut(BoxFuture<'static, ()>) -> Fut,
    Fut: Future<Output = ()>,
{
    let err = |message: String| LeaderError {
        namespace: config.namespace.clone(),
        name: config.lease_name.clone(),
        message,
    };
    let manager = LeaseManagerBuilder::new(client.clone(), &config.lease_name)
        .with_namespace(&config.namespace)
        .with_identity(&config.identity)
        .with_duration(config.duration_seconds)
        .with_grace((config.duration_seconds / 3).max(1))
        .with_field_manager(format!("sealgate-leader-{}", config.identity))
        .build()
        .await
        .map_err(|e| err(e.to_string()))?;
    let (mut leader, task) = manager.watch().await;
    let mut stop = stop;
    loop {
        // Wait to lead, or to stop.
        tokio::select! {
            r = leader.wait_for(|l| *l) => {
                if r.is_err() {
                    break;
                }
            }
            _ = stop.wait_for(|s| *s) => break,
        }
        tracing::info!(identity = %config.identity, lease = %config.lease_name, "became leader; starting work");
        on_change(true);
        let mut lost = leader.clone();
        let mut stop2 = stop.clone();
        let end = async move {
            tokio::select! {
                _ = lost.wait_for(|l| !*l) => {}
                _ = stop2.wait_for(|s| *s) => {}
            }
        }
        .boxed();
        term(end).await;
        on_change(false);
        if *stop.borrow() {
            break;
        }
        tracing::warn!(identity = %config.identity, lease = %config.lease_name, "lost the leader Lease; work stopped");
    }
    // Closing the channel makes the manager release the Lease.
    drop(leader);
    match tokio::time::timeout(Duration::from_secs(5), task).await {
        Ok(Ok(Ok(_))) => tracing::info!(lease = %config.lease_name, "leader Lease released"),
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "could not release the leader Lease"),
        _ => tracing::warn!("leader election task did not finish"),
    }
    Ok(())
}

/// A replica's identity when no `--identity`/`POD_NAME` is given: host name
/// and process id, unique enough for two processes on one machine.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "sealgate".into());
    format!("{host}-{}", std::process::id())
}

/// A future that resolves once `rx` holds `true` (Send + Sync, as
/// kube-runtime's graceful shutdown wants).
pub fn wait_true(rx: watch::Receiver<bool>) -> impl Future<Output = ()> + Send + Sync {
    let (tx, done) = futures::channel::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut rx = rx;
        let _ = rx.wait_for(|v| *v).await;
        let _ = tx.send(());
    });
    async move {
        let _ = done.await;
    }
}
