//! `sealgate sync --once` and `sealgate gitops`.
//!
//! Design note: `sync --once` runs exactly the controller's reconcile for a
//! GitSync read from a file (CI, or clusters without the operator). Its
//! status — inventory included, which prune needs — lives in a ConfigMap
//! `sealgate-gitsync-<name>` in the GitSync's namespace, written with
//! server-side apply. `--diff` plans with server-side dry-run and writes
//! nothing. `sealgate gitops` runs only the GitSync controller, and serves
//! its metrics with `/healthz` and `/readyz` on `--metrics-addr`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::{ExitStatus, Failure};
use crate::controller::sops_secret::FIELD_MANAGER;
use crate::gitops::controller::{self, GitOpsOptions};
use crate::gitops::metrics;
use crate::gitops::spec::{self, GitSyncStatus};
use crate::gitops::sync::{self, Change, SyncContext};
use crate::leader;

/// Arguments of `sealgate sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Run one reconcile and exit (the only mode; the loop is `sealgate gitops`).
    #[arg(long, required = true)]
    once: bool,
    /// The GitSync to run (YAML or JSON, same schema as the resource).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: PathBuf,
    /// Show what would change (per-key for Secrets, never values) and write nothing.
    #[arg(long)]
    diff: bool,
    /// Git object cache directory.
    #[arg(long, value_name = "DIR", env = "SEALGATE_GIT_CACHE")]
    cache_dir: Option<PathBuf>,
}

/// Arguments of `sealgate gitops`.
#[derive(Debug, Args)]
pub struct GitopsArgs {
    /// Watch GitSyncs in this namespace only.
    #[arg(long)]
    namespace: Option<String>,
    /// Git object cache directory.
    #[arg(long, value_name = "DIR", env = "SEALGATE_GIT_CACHE")]
    cache_dir: Option<PathBuf>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: std::net::SocketAddr,
    /// GitSyncs reconciled in parallel.
    #[arg(long, default_value_t = 2)]
    concurrency: u16,
    /// Namespace of the leader Lease (the process's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "sealgate-system")]
    lease_namespace: String,
    /// This replica's identity in the leader Lease (default: POD_NAME, else
    /// host name and process id).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Run without leader election (only safe with a single replica).
    #[arg(long)]
    disable_leader_election: bool,
    /// Seconds the leader Lease stays valid without renewal.
    #[arg(long, default_value_t = 15)]
    lease_duration: u64,
}

/// Name of the Lease `sealgate gitops` replicas elect a leader with (the
/// controller has its own, so the two elect independently).
pub const GITOPS_LEASE: &str = "sealgate-gitops";

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn default_cache() -> PathBuf {
    std::env::temp_dir().join("sealgate-git-cache")
}

/// Name of the ConfigMap holding a file-mode GitSync's status.
pub fn status_configmap(name: &str) -> String {
    format!("sealgate-gitsync-{name}")
}

pub(super) fn run_sync(args: &SyncArgs) -> anyhow::Result<ExitStatus> {
    let gs = spec::load_file(&args.file).map_err(anyhow::Error::from)?;
    runtime()?.block_on(async {
        let config = kube::Config::infer()
            .await
            .map_err(|e| Failure::unavailable(anyhow::anyhow!("no cluster configuration: {e}")))?;
        let client = kube::Client::try_from(config.clone()).map_err(Failure::unavailable)?;
        let ns = gs
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let mut gs = gs;
        gs.metadata.namespace = Some(ns.clone());
        let name = gs.metadata.name.clone().unwrap_or_default();
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        let cm_name = status_configmap(&name);
        let previous: GitSyncStatus = cms
            .get_opt(&cm_name)
            .await
            .map_err(Failure::unavailable)?
            .and_then(|cm| cm.data?.get("status").cloned())
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        let ctx = SyncContext {
            client: client.clone(),
            config: Some(config),
            cache_dir: args.cache_dir.clone().unwrap_or_else(default_cache),
            dry_run: args.diff,
            force: true,
            progress: None,
        };
        let mut cache = Default::default();
        let (status, report) = sync::reconcile(&gs, &previous, &ctx, &mut cache).await;
        if args.diff {
            for p in &report.plan {
                match &p.change {
                    Change::Create => println!("+ {} ({})", p.id, p.source),
                    Change::Update(paths) => {
                        println!("~ {} ({}): {}", p.id, p.source, paths.join(", "))
                    }
                    Change::Unchanged => {}
                }
                for (k, c) in &p.secret_keys {
                    println!(
                        "    key {k}: {}",
                        serde_json::to_value(c)
                            .unwrap_or_default()
                            .as_str()
                            .unwrap_or("")
                    );
                }
            }
        } else {
            let body = json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": cm_name, "namespace": ns,
                             "labels": {"app.kubernetes.io/managed-by": "sealgate"}},
                "data": {"status": serde_json::to_string(&status)?},
            });
            cms.patch(
                &cm_name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
            .map_err(Failure::unavailable)?;
        }
        println!("{}", report.audit);
        if report.ok {
            return Ok(ExitStatus::Success);
        }
        eprintln!("error: {}: {}", report.reason, report.message);
        Ok(match report.reason.as_str() {
            "KubernetesError" | "FetchFailed" => ExitStatus::Unavailable,
            "InvalidSpec" | "ReadFailed" | "UnsupportedSource" => ExitStatus::UsageOrInput,
            _ => ExitStatus::Findings,
        })
    })
}

pub(super) fn run_gitops(args: &GitopsArgs) -> anyhow::Result<ExitStatus> {
    runtime()?.block_on(async {
        let config = kube::Config::infer()
            .await
            .map_err(|e| Failure::unavailable(anyhow::anyhow!("no cluster configuration: {e}")))?;
        let client = kube::Client::try_from(config.clone()).map_err(Failure::unavailable)?;
        let identity = args
            .identity
            .clone()
            .unwrap_or_else(crate::leader::default_identity);
        let options = GitOpsOptions {
            namespace: args.namespace.clone(),
            cache_dir: args.cache_dir.clone().unwrap_or_else(default_cache),
            config: Some(config),
            instance: Some(identity.clone()),
            concurrency: args.concurrency.max(1),
            ..GitOpsOptions::default()
        };
        let listener = tokio::net::TcpListener::bind(args.metrics_addr)
            .await
            .map_err(|e| {
                Failure::unavailable(anyhow::anyhow!(
                    "cannot serve metrics/health on {}: {e}",
                    args.metrics_addr
                ))
            })?;
        tracing::info!(addr = %args.metrics_addr, "serving /metrics, /healthz, /readyz");
        let metrics = options.metrics.clone();
        let app = metrics::router(metrics.clone());
        let http = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "metrics endpoint stopped");
            }
        });
        // A standby is ready: it is ready to take over.
        metrics.set_ready(true);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            crate::controller::runner::shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
        if args.disable_leader_election {
            metrics.set_leader(true);
            controller::run_until(client, options, leader::wait_true(stop_rx)).await;
        } else {
            let lease = leader::LeaderConfig {
                namespace: args.lease_namespace.clone(),
                lease_name: GITOPS_LEASE.into(),
                identity,
                duration_seconds: args.lease_duration.max(3),
            };
            let term = |end: futures::future::BoxFuture<'static, ()>| {
                // kube-runtime wants a Sync shutdown future: relay `end`
                // through a watch channel.
                let (tx, rx) = tokio::sync::watch::channel(false);
                tokio::spawn(async move {
                    end.await;
                    let _ = tx.send(true);
                });
                controller::run_until(client.clone(), options.clone(), leader::wait_true(rx))
            };
            let leads = |l: bool| metrics.set_leader(l);
            leader::campaign(&client, &lease, stop_rx, term, leads)
                .await
                .map_err(|e| Failure::unavailable(anyhow::Error::from(e)))?;
        }
        http.abort();
        Ok(ExitStatus::Success)
    })
}
