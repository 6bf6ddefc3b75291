//! Runs the controller: health and metrics endpoints, leader election, and
//! the reconcilers while this replica leads.
//!
//! Design note (leader election itself is [`crate::leader`]): every replica serves `/healthz`, `/readyz` and `/metrics`
//! (a standby is healthy and ready — it is ready to take over); only the
//! holder of the `coordination.k8s.io` Lease runs reconcilers, so only one
//! replica ever writes. Each leadership term gets a fresh [`Context`]
//! (store sessions, tracked leases); losing the Lease stops the reconcilers
//! gracefully (in-flight reconciles finish, nothing new starts) and the
//! replica goes back to campaigning. Shutdown (SIGTERM/ctrl-c, or the
//! future passed to [`run`]) stops the reconcilers, then releases the Lease
//! so a peer takes over at once instead of after the Lease expires.
//!
//! The reconcilers are a list of futures built in [`reconcilers`]; adding
//! one (e.g. a GitSync reconciler) is one entry there.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use kube::Client;
use tokio::sync::watch;

use super::context::Context;
use super::external_secret::{self, LeaseManager, Restarter};
use super::metrics::{Metrics, Snapshot};
use super::sops_secret::{self, SopsContext};
use super::stores::{self, StoreContext, Stores};

/// Settings of one controller process.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Watch only this namespace (all when `None`).
    pub namespace: Option<String>,
    /// Reconciles in flight per controller.
    pub concurrency: u16,
    /// The controller's own namespace (Lease, age keys, restart key).
    pub controller_namespace: String,
    /// This replica's identity in the Lease and in events.
    pub identity: String,
    /// Campaign for the Lease (off: lead unconditionally, one replica only).
    pub leader_election: bool,
    /// Name of the Lease.
    pub lease_name: String,
    /// Seconds a Lease stays valid without renewal.
    pub lease_duration_seconds: u64,
    /// Address of `/metrics`, `/healthz`, `/readyz` (`None`: not served).
    pub http_addr: Option<SocketAddr>,
    /// Spread refreshes.
    pub jitter: bool,
    /// How long a fetched value is shared between objects.
    pub cache_ttl: Duration,
}

impl RunnerConfig {
    /// Defaults for a controller in `controller_namespace` named `identity`.
    pub fn new(controller_namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            namespace: None,
            concurrency: 64,
            controller_namespace: controller_namespace.into(),
            identity: identity.into(),
            leader_election: true,
            lease_name: "sealgate-controller".into(),
            lease_duration_seconds: 15,
            http_addr: None,
            jitter: true,
            cache_ttl: Duration::from_secs(5),
        }
    }
}

/// Why the runner stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The HTTP endpoint could not bind.
    #[error("cannot serve metrics/health on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The Lease could not be set up.
    #[error("leader election (Lease {namespace}/{name}): {message}")]
    LeaderElection {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// What failed.
        message: String,
    },
}

impl RunnerError {
    /// One CamelCase word for logs and metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Bind { .. } => "BindFailed",
            Self::LeaderElection { .. } => "LeaderElectionFailed",
        }
    }
}

/// State the HTTP handlers read.
struct Shared {
    metrics: Arc<Metrics>,
    current: Mutex<Option<Arc<Context>>>,
}

impl Shared {
    fn render(&self) -> String {
        let ctx = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let snap = match ctx {
            Some(c) => c.snapshot(),
            None => Snapshot {
                stores: Vec::new(),
                expiring: 0,
            },
        };
        self.metrics.render(&snap)
    }

    fn set_current(&self, ctx: Option<Arc<Context>>) {
        *self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = ctx;
    }
}

/// A running HTTP endpoint: its bound address (useful with port 0).
pub struct Endpoint {
    /// Where it listens.
    pub addr: SocketAddr,
}

/// Runs until `shutdown` resolves. `on_listen` is told the bound HTTP
/// address (tests bind port 0).
pub async fn run(
    client: Client,
    config: RunnerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_listen: impl FnOnce(Endpoint) + Send,
) -> Result<(), RunnerError> {
    let metrics = Arc::new(Metrics::default());
    let shared = Arc::new(Shared {
        metrics: Arc::clone(&metrics),
        current: Mutex::new(None),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopper = tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let http = match config.http_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| RunnerError::Bind { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| RunnerError::Bind { addr, source })?;
            on_listen(Endpoint { addr: bound });
            let app = router(Arc::clone(&shared));
            let stop = crate::leader::wait_true(stop_rx.clone());
            Some(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::warn!(error = %e, "metrics endpoint stopped");
                }
            }))
        }
        None => None,
    };
    metrics.set_ready(true);
    tracing::info!(identity = %config.identity, namespace = ?config.namespace, leader_election = config.leader_election, "controller starting");

    let result = if config.leader_election {
        campaign(&client, &config, &shared, stop_rx.clone()).await
    } else {
        metrics.set_leader(true);
        term(
            &client,
            &config,
            &shared,
            crate::leader::wait_true(stop_rx.clone()),
        )
        .await;
        Ok(())
    };
    metrics.set_leader(false);
    stopper.abort();
    if let Some(h) = http {
        h.abort();
    }
    tracing::info!("controller stopped");
    result
}

async fn campaign(
    client: &Client,
    config: &RunnerConfig,
    shared: &Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> Result<(), RunnerError> {
    let leader = crate::leader::LeaderConfig {
        namespace: config.controller_namespace.clone(),
        lease_name: config.lease_name.clone(),
        identity: config.identity.clone(),
        duration_seconds: config.lease_duration_seconds,
    };
    crate::leader::campaign(
        client,
        &leader,
        stop,
        |end| term(client, config, shared, end),
        |leads| shared.metrics.set_leader(leads),
    )
    .await
    .map_err(|e| RunnerError::LeaderElection {
        namespace: e.namespace,
        name: e.name,
        message: e.message,
    })
}

/// One leadership term: runs every reconciler until `end` resolves.
async fn term(
    client: &Client,
    config: &RunnerConfig,
    shared: &Arc<Shared>,
    end: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = watch::channel(false);
    let ender = tokio::spawn(async move {
        end.await;
        let _ = tx.send(true);
    });
    let (leases, triggers) = LeaseManager::new();
    // Without the restart key (e.g. no rights on Secrets in our namespace)
    // the controller still syncs; it only cannot roll workloads.
    let restarter = match Restarter::new(
        client.clone(),
        &config.controller_namespace,
        Duration::from_secs(10),
        30,
    )
    .await
    {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "workload restarts disabled: cannot load the restart key");
            None
        }
    };
    // Backend counters live in the process-wide metrics, not the term.
    let stores = Arc::new(
        Stores::new(client.clone(), config.cache_ttl)
            .with_counters(shared.metrics.store_counters()),
    );
    let ctx = Arc::new(Context::new(
        client.clone(),
        Arc::clone(&stores),
        Arc::clone(&shared.metrics),
        leases,
        restarter,
        config.controller_namespace.clone(),
        Some(config.identity.clone()),
        config.jitter,
    ));
    shared.set_current(Some(Arc::clone(&ctx)));
    let all = reconcilers(
        client,
        config,
        ctx,
        stores,
        futures::StreamExt::boxed(triggers),
        &rx,
    );
    futures::future::join_all(all).await;
    shared.set_current(None);
    ender.abort();
}

/// Every reconciler of a term, each stopping when `stop` turns true.
fn reconcilers(
    client: &Client,
    config: &RunnerConfig,
    ctx: Arc<Context>,
    stores: Arc<Stores>,
    lease_triggers: futures::stream::BoxStream<
        'static,
        kube::runtime::reflector::ObjectRef<super::api::ExternalSecret>,
    >,
    stop: &watch::Receiver<bool>,
) -> Vec<BoxFuture<'static, ()>> {
    // SopsSecrets share the stores so `decryption.storeRef` goes through the
    // same connections and multi-tenancy rules as ExternalSecrets.
    let sops_ctx = Arc::new(
        SopsContext::new(
            client.clone(),
            config.controller_namespace.clone(),
            Some(config.identity.clone()),
        )
        .with_stores(Arc::clone(&stores)),
    );
    // Store and namespace lookups of every reconcile come from watch caches.
    let ns_cache =
        stores::run_namespace_cache(Arc::clone(&stores), crate::leader::wait_true(stop.clone()));
    let store_ctx = Arc::new(StoreContext::new(
        client.clone(),
        stores,
        Some(config.identity.clone()),
    ));
    let ns = config.namespace.clone();
    let n = config.concurrency;
    vec![
        ns_cache.boxed(),
        stores::run_secret_stores(
            Arc::clone(&store_ctx),
            ns.clone(),
            crate::leader::wait_true(stop.clone()),
        )
        .boxed(),
        stores::run_cluster_stores(store_ctx, crate::leader::wait_true(stop.clone())).boxed(),
        external_secret::run(
            ctx,
            ns.clone(),
            n,
            lease_triggers,
            crate::leader::wait_true(stop.clone()),
        )
        .boxed(),
        sops_secret::run(sops_ctx, ns, n, crate::leader::wait_true(stop.clone())).boxed(),
    ]
}

/// Resolves when the flag turns true (or its sender is gone).
fn router(shared: Arc<Shared>) -> axum::Router {
    let r = Arc::clone(&shared);
    crate::telemetry::router(move || shared.render(), move || r.metrics.is_ready())
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutdown requested");
}
