//! `sealgate webhook`: the admission webhook server.
//!
//! Design note: a thin edge over `crate::webhook` — load the exemption
//! config, load the TLS files, serve until SIGTERM/SIGINT, then drain for a
//! few seconds so in-flight reviews are answered (the apiserver would
//! otherwise apply the failure policy to them). A config or certificate
//! problem is an input error (exit 2) reported before listening, so a bad
//! rollout fails its readiness instead of denying everything.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::{ExitStatus, Failure};
use crate::webhook::{self, Policy, ServerError, TlsFiles};

/// Arguments of `sealgate webhook`.
#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// Address to serve HTTPS on.
    #[arg(long, default_value = "0.0.0.0:8443", value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// Serving certificate (PEM chain, leaf first); re-read when it changes.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: PathBuf,
    /// Private key of the serving certificate (PEM); re-read when it changes.
    #[arg(long, value_name = "FILE")]
    pub tls_key: PathBuf,
    /// Webhook config: exempt namespaces and labels, sealgate's users, an
    /// optional `.sealgate.yaml` (docs/webhook.md). Without it nothing is
    /// exempt except writes with sealgate's field manager.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How often the TLS files are checked for a new certificate, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub tls_reload_interval: u64,
}

pub(super) fn run(args: &WebhookArgs) -> anyhow::Result<ExitStatus> {
    let policy = match &args.config {
        Some(p) => Policy::load(p).context("cannot load the webhook config")?,
        None => Policy::default(),
    };
    if policy.sealgate_users.is_empty() {
        tracing::warn!(
            field_manager = %policy.field_manager,
            "sealgate_users is empty: any client naming sealgate's field manager is exempt"
        );
    }
    let tls = TlsFiles {
        cert: args.tls_cert.clone(),
        key: args.tls_key.clone(),
    };
    let reload = Duration::from_secs(args.tls_reload_interval.max(1));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let addr = args.listen;
    let result = rt.block_on(async move {
        let handle = axum_server::Handle::new();
        let stopper = handle.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: draining in-flight reviews");
            stopper.graceful_shutdown(Some(Duration::from_secs(10)));
        });
        webhook::bind_and_serve(addr, tls, reload, policy, handle).await
    });
    match result {
        Ok(()) => Ok(ExitStatus::Success),
        Err(e @ ServerError::Tls { .. }) => Err(e.into()),
        Err(e) => Err(Failure::unavailable(e).into()),
    }
}

#[cfg(unix)]
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::warn!("cannot install signal handlers; stop the process with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(not(unix))]
async fn shutdown_signal() {
    std::future::pending::<()>().await;
}
