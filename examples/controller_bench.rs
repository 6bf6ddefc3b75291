//! Driver of `bench/controller.sh`: the real `sealgate controller` binary
//! against a local kube-apiserver and OpenBao, with N ExternalSecrets in M
//! namespaces referencing D distinct KV secrets.
//!
//! Phases: seed OpenBao and the cluster (before the controller starts, so
//! the driver's own writes are not counted), start the controller, time
//! until every ExternalSecret is `Ready=True`, then wait one full refresh
//! cycle with nothing changed in the backend. For each phase it reports
//! backend calls (the controller's `/metrics` and OpenBao's audit log),
//! apiserver writes by resource (the apiserver's `apiserver_request_total`)
//! and the controller's peak RSS (`VmHWM`).
//!
//! Knobs (environment): `BENCH_EXTERNALSECRETS` (10000), `BENCH_NAMESPACES`
//! (100), `BENCH_DISTINCT` (1000), `BENCH_REFRESH_SECONDS` (600),
//! `SEALGATE_BIN` (the binary to run), `BENCH_CONTROLLER_ARGS` (extra
//! flags).
//!
//! `BENCH_PEER=eso` runs the peer instead, on the same input and with the
//! same measurements: External Secrets Operator's binary (`ESO_DIR` holds
//! `external-secrets` and `crds.yaml`, as `scripts/build-eso` leaves them),
//! its `external-secrets.io/v1` CRDs, a ClusterSecretStore and
//! ExternalSecrets of the same shape (ESO's API is the one sealgate's
//! mirrors, so only `apiVersion` differs). `BENCH_ESO_ARGS` adds ESO
//! flags; its default `--concurrent 16` matches sealgate's default
//! concurrency (ESO's own default is one). The last line, `summary ...`,
//! is what `bench/controller-eso.sh` turns into ratios.

#[path = "../tests/support/mod.rs"]
#[allow(unused)]
mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use nix::sys::signal::Signal;
use serde_json::json;

use support::cluster::TestCluster;
use support::openbao::OpenBao;
use support::process::{Service, free_port};

/// The controller under test: sealgate's, or the peer's (External Secrets
/// Operator) on the same input.
enum Peer {
    Sealgate { bin: String },
    Eso { dir: PathBuf },
}

impl Peer {
    fn from_env() -> Peer {
        match std::env::var("BENCH_PEER").as_deref() {
            Ok("eso") => Peer::Eso {
                dir: std::env::var_os("ESO_DIR")
                    .map(PathBuf::from)
                    .expect("ESO_DIR: the directory scripts/build-eso printed"),
            },
            Ok("sealgate") | Err(_) => Peer::Sealgate {
                bin: std::env::var("SEALGATE_BIN")
                    .expect("SEALGATE_BIN: the sealgate binary to run"),
            },
            Ok(other) => panic!("BENCH_PEER={other}: expected sealgate or eso"),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Peer::Sealgate { .. } => "sealgate",
            Peer::Eso { .. } => "eso",
        }
    }

    /// Namespace of the store's token Secret (and sealgate's own).
    fn controller_ns(&self) -> &'static str {
        match self {
            Peer::Sealgate { .. } => "sealgate-system",
            Peer::Eso { .. } => "external-secrets",
        }
    }

    fn group_version(&self) -> (&'static str, &'static str) {
        match self {
            Peer::Sealgate { .. } => ("sealgate.dev", "v1alpha1"),
            Peer::Eso { .. } => ("external-secrets.io", "v1"),
        }
    }

    fn resource(&self, kind: &str) -> ApiResource {
        let (group, version) = self.group_version();
        ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
    }

    fn api_version(&self) -> String {
        let (group, version) = self.group_version();
        format!("{group}/{version}")
    }

    fn crds(&self) -> Vec<CustomResourceDefinition> {
        match self {
            Peer::Sealgate { .. } => sealgate::cli::crds::all(),
            Peer::Eso { dir } => {
                let path = dir.join("crds.yaml");
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                docs.into_iter()
                    .filter(|d| !d.is_null())
                    .map(|d| serde_json::from_value(d).expect("ESO CRD"))
                    .collect()
            }
        }
    }

    fn command(&self, metrics_port: u16, kubeconfig: &std::path::Path) -> Command {
        let metrics = format!("127.0.0.1:{metrics_port}");
        match self {
            Peer::Sealgate { bin } => {
                let mut cmd = Command::new(bin);
                cmd.arg("controller")
                    .args(["--metrics-addr", &metrics])
                    .args(["--log-format", "json", "--log-level", "warn"])
                    .env("KUBECONFIG", kubeconfig)
                    .env("POD_NAMESPACE", self.controller_ns())
                    .env("POD_NAME", "sealgate-bench");
                if let Ok(extra) = std::env::var("BENCH_CONTROLLER_ARGS") {
                    cmd.args(extra.split_whitespace());
                }
                cmd
            }
            Peer::Eso { dir } => {
                let mut cmd = Command::new(dir.join("external-secrets"));
                cmd.arg(format!("--metrics-addr={metrics}"))
                    .arg("--enable-leader-election=false")
                    .arg("--loglevel=warn")
                    .env("KUBECONFIG", kubeconfig);
                let extra =
                    std::env::var("BENCH_ESO_ARGS").unwrap_or_else(|_| "--concurrent 16".into());
                cmd.args(extra.split_whitespace());
                cmd
            }
        }
    }

    /// Backend calls and reconciles as the controller's own metrics count them.
    fn metric_figures(&self, m: &str) -> (f64, f64) {
        match self {
            Peer::Sealgate { .. } => (
                sum_metric(m, "sealgate_backend_calls_total", ""),
                sum_metric(m, "sealgate_reconciles_total", ""),
            ),
            Peer::Eso { .. } => (
                sum_metric(m, "externalsecret_provider_api_calls_count", ""),
                sum_metric(
                    m,
                    "controller_runtime_reconcile_total",
                    "controller=\"externalsecret\"",
                ),
            ),
        }
    }

    /// Label selector of the Secrets the controller manages.
    fn managed_selector(&self) -> &'static str {
        match self {
            Peer::Sealgate { .. } => "app.kubernetes.io/managed-by=sealgate",
            Peer::Eso { .. } => "reconcile.external-secrets.io/managed=true",
        }
    }
}

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Sum of a Prometheus counter family in a text exposition, over the
/// series whose line contains `having` (e.g. a `label="value"` pair).
fn sum_metric(text: &str, name: &str, having: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with(name)
                && matches!(l.as_bytes().get(name.len()), Some(b'{') | Some(b' '))
                && l.contains(having)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
        + 0.0 // an empty sum is -0.0
}

/// `resource[/subresource] → count` of mutating requests the apiserver served.
fn apiserver_writes(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for l in text.lines() {
        let Some(rest) = l.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |k: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let verb = label("verb");
        if !matches!(verb.as_str(), "POST" | "PUT" | "PATCH" | "APPLY" | "DELETE") {
            continue;
        }
        let mut key = label("resource");
        let sub = label("subresource");
        if !sub.is_empty() {
            key = format!("{key}/{sub}");
        }
        *out.entry(key).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
    }
    out
}

fn diff(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

async fn apiserver_metrics(client: &Client) -> String {
    let req = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    client.request_text(req).await.expect("apiserver /metrics")
}

fn controller_metrics(port: u16) -> String {
    let out = Command::new("curl")
        .args(["-fsS", &format!("http://127.0.0.1:{port}/metrics")])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `Ready=True` in `status.conditions`: the same shape in both APIs.
fn is_ready(es: &DynamicObject) -> bool {
    es.data["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Follows every ExternalSecret with one watch (a relisting poll of 10,000
/// objects would load the apiserver more than the controller does) and
/// keeps the number that are Ready.
fn count_ready(api: Api<DynamicObject>) -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let out = Arc::clone(&count);
    tokio::spawn(async move {
        let mut ready: HashSet<String> = HashSet::new();
        let mut stream = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
        while let Some(ev) = stream.next().await {
            let mut apply = |es: &DynamicObject| {
                let key = format!("{}/{}", es.namespace().unwrap_or_default(), es.name_any());
                if is_ready(es) {
                    ready.insert(key);
                } else {
                    ready.remove(&key);
                }
            };
            match ev {
                Ok(watcher::Event::Apply(es) | watcher::Event::InitApply(es)) => apply(&es),
                Ok(watcher::Event::Delete(es)) => {
                    ready.remove(&format!(
                        "{}/{}",
                        es.namespace().unwrap_or_default(),
                        es.name_any()
                    ));
                }
                Ok(watcher::Event::Init | watcher::Event::InitDone) | Err(_) => {}
            }
            out.store(ready.len(), Ordering::Relaxed);
        }
    });
    count
}

struct Figures {
    backend_calls: f64,
    bao_reads: usize,
    /// Every request OpenBao answered (token look-ups, logins, ...).
    bao_requests: usize,
    reconciles: f64,
}

async fn snapshot(
    peer: &Peer,
    client: &Client,
    port: u16,
    bao: &OpenBao,
) -> (Figures, BTreeMap<String, f64>) {
    let m = controller_metrics(port);
    let (backend_calls, reconciles) = peer.metric_figures(&m);
    let api = apiserver_writes(&apiserver_metrics(client).await);
    (
        Figures {
            backend_calls,
            bao_reads: bao.requests_to("secret/data/bench/"),
            bao_requests: bao.requests_to(""),
            reconciles,
        },
        api,
    )
}

/// What one phase cost, for the closing `summary` line.
struct Phase {
    kv_reads: usize,
    bao_requests: usize,
    api_writes: f64,
    secret_writes: f64,
}

fn report(
    phase: &str,
    before: &(Figures, BTreeMap<String, f64>),
    after: &(Figures, BTreeMap<String, f64>),
) -> Phase {
    let writes = diff(&after.1, &before.1);
    let total: f64 = writes.values().sum::<f64>() + 0.0;
    let secret_writes: f64 = writes
        .iter()
        .filter(|(k, _)| {
            k.starts_with("secrets") || k.starts_with("externalsecrets") || k.starts_with("events")
        })
        .map(|(_, v)| v)
        .sum::<f64>()
        + 0.0; // never print -0
    let kv_reads = after.0.bao_reads - before.0.bao_reads;
    let bao_requests = after.0.bao_requests - before.0.bao_requests;
    println!(
        "{phase}: backend_calls(metrics)={:.0} openbao_kv_reads(audit)={kv_reads} openbao_requests(audit)={bao_requests} reconciles={:.0} apiserver_writes_total={:.0} secret+status+event_writes={:.0} by_resource={:?}",
        after.0.backend_calls - before.0.backend_calls,
        after.0.reconciles - before.0.reconciles,
        total,
        secret_writes,
        writes,
    );
    Phase {
        kv_reads,
        bao_requests,
        api_writes: total,
        secret_writes,
    }
}

#[tokio::main]
async fn main() {
    let n = knob("BENCH_EXTERNALSECRETS", 10_000) as usize;
    let namespaces = knob("BENCH_NAMESPACES", 100).max(1) as usize;
    let distinct = knob("BENCH_DISTINCT", 1_000).max(1) as usize;
    let refresh = knob("BENCH_REFRESH_SECONDS", 600).max(1);
    let peer = Peer::from_env();
    let controller_ns = peer.controller_ns();
    let bin = match &peer {
        Peer::Sealgate { bin } => bin.clone(),
        Peer::Eso { dir } => dir.join("external-secrets").display().to_string(),
    };
    println!(
        "# peer={} externalsecrets={n} namespaces={namespaces} distinct={distinct} refresh={refresh}s bin={bin} machine: {} cores",
        peer.name(),
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );

    let cluster = TestCluster::get();
    let bao = OpenBao::start();
    let client = cluster.admin().await;

    // OpenBao: D distinct KV v2 secrets.
    let t = Instant::now();
    let vault = Arc::new(bao.client());
    futures::stream::iter(0..distinct)
        .map(|i| {
            let vault = Arc::clone(&vault);
            async move {
                let data: BTreeMap<String, String> =
                    [("v".to_owned(), format!("value-{i}"))].into();
                vaultrs::kv2::set(&*vault, "secret", &format!("bench/s{i}"), &data)
                    .await
                    .expect("seed kv");
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    println!(
        "seeded {distinct} OpenBao secrets in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    // CRDs, namespaces, the store and its token.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in peer.crds() {
        let name = crd.metadata.name.clone().expect("CRD name");
        crds.patch(
            &name,
            &PatchParams::apply("bench").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // CRDs established
    let ns_api: Api<Namespace> = Api::all(client.clone());
    let ns_names: Vec<String> = (0..namespaces).map(|i| format!("bench-{i}")).collect();
    for name in std::iter::once(controller_ns.to_owned()).chain(ns_names.iter().cloned()) {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns");
        let _ = ns_api.create(&PostParams::default(), &ns).await;
    }
    let token: Secret = serde_json::from_value(json!({
        "metadata": {"name": "bench-token"},
        "stringData": {"token": bao.root_token()},
    }))
    .expect("token");
    let _ = Api::<Secret>::namespaced(client.clone(), controller_ns)
        .create(&PostParams::default(), &token)
        .await;
    // The same manifest for both APIs but `apiVersion`: sealgate's
    // ClusterSecretStore and ExternalSecret are ESO's shape.
    let store_res = peer.resource("ClusterSecretStore");
    let store: DynamicObject = serde_json::from_value(json!({
        "apiVersion": peer.api_version(), "kind": "ClusterSecretStore",
        "metadata": {"name": "bench"},
        "spec": {"provider": {"vault": {
            "server": bao.addr(), "path": "secret", "version": "v2",
            "auth": {"tokenSecretRef": {"name": "bench-token", "key": "token", "namespace": controller_ns}},
        }}},
    }))
    .expect("store");
    Api::<DynamicObject>::all_with(client.clone(), &store_res)
        .create(&PostParams::default(), &store)
        .await
        .expect("create ClusterSecretStore");

    // N ExternalSecrets, object i in namespace i % M reading secret i % D.
    let es_res = peer.resource("ExternalSecret");
    let t = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            let ns = ns_names[i % namespaces].clone();
            let es_res = es_res.clone();
            let api_version = peer.api_version();
            async move {
                let es: DynamicObject = serde_json::from_value(json!({
                    "apiVersion": api_version, "kind": "ExternalSecret",
                    "metadata": {"name": format!("es-{i}")},
                    "spec": {
                        "secretStoreRef": {"name": "bench", "kind": "ClusterSecretStore"},
                        "refreshInterval": format!("{refresh}s"),
                        "data": [{"secretKey": "v", "remoteRef": {"key": format!("bench/s{}", i % distinct), "property": "v"}}],
                    },
                }))
                .expect("ExternalSecret");
                let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &es_res);
                api.create(&PostParams::default(), &es).await.map(|_| ())
            }
        })
        .buffer_unordered(64)
        .try_collect::<Vec<_>>()
        .await
        .expect("create ExternalSecrets");
    println!(
        "created {n} ExternalSecrets in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    // The controller.
    let port = free_port();
    let log = std::env::temp_dir().join(format!(
        "sealgate-bench-controller-{}-{}.log",
        peer.name(),
        std::process::id()
    ));
    let cmd = peer.command(port, cluster.kubeconfig());
    let api_before = apiserver_writes(&apiserver_metrics(&client).await);
    let bao_before = bao.requests_to("secret/data/bench/");
    let bao_requests_before = bao.requests_to("");
    let started = Instant::now();
    let controller = Service::spawn("controller under test", cmd, &log, Signal::SIGTERM);
    let pid = controller.pid();
    println!("controller pid {pid}, log {}", log.display());
    let es_all: Api<DynamicObject> = Api::all_with(client.clone(), &es_res);
    let deadline = Duration::from_secs(knob("BENCH_TIMEOUT_SECONDS", 600));
    let mut last = 0;
    let ready_now = count_ready(es_all.clone());
    let (all_ready, ready) = loop {
        let ready = ready_now.load(Ordering::Relaxed);
        if ready / 500 != last / 500 || ready >= n {
            println!(
                "  {:6.1}s ready {ready}/{n}",
                started.elapsed().as_secs_f64()
            );
            last = ready;
        }
        if ready >= n {
            break (started.elapsed(), ready);
        }
        if started.elapsed() > deadline {
            println!(
                "TIMEOUT: {ready}/{n} Ready after {:.0}s",
                deadline.as_secs_f64()
            );
            break (started.elapsed(), ready);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let base = (
        Figures {
            backend_calls: 0.0,
            bao_reads: bao_before,
            bao_requests: bao_requests_before,
            reconciles: 0.0,
        },
        api_before,
    );
    let synced = snapshot(&peer, &client, port, &bao).await;
    let rss_synced = peak_rss_kib(pid);
    println!(
        "all_ready_seconds={:.1} peak_rss_kib={rss_synced}",
        all_ready.as_secs_f64(),
    );
    let initial = report("initial_sync", &base, &synced);

    // One refresh cycle with no backend change: every object has one
    // refresh start within any window of one interval (sealgate's refresh
    // slots; ESO requeues each object at exactly its interval).
    let wait = Duration::from_secs(refresh) + Duration::from_secs(5);
    println!("waiting {:.0}s for one refresh cycle", wait.as_secs_f64());
    tokio::time::sleep(wait).await;
    let refreshed = snapshot(&peer, &client, port, &bao).await;
    let cycle = report("refresh_cycle", &synced, &refreshed);
    let rss = peak_rss_kib(pid);
    println!("peak_rss_kib={rss} (VmHWM over the whole run)");
    let secrets_count = Api::<Secret>::all(client.clone())
        .list_metadata(&ListParams::default().labels(peer.managed_selector()))
        .await
        .map(|l| l.items.len())
        .unwrap_or(0);
    println!("managed Secrets: {secrets_count}");
    println!(
        "summary peer={} ready={ready}/{n} all_ready_seconds={:.1} peak_rss_mib={:.1} initial_kv_reads={} initial_openbao_requests={} initial_apiserver_writes={:.0} initial_secret_status_event_writes={:.0} refresh_kv_reads={} refresh_openbao_requests={} refresh_apiserver_writes={:.0} refresh_secret_status_event_writes={:.0} managed_secrets={secrets_count}",
        peer.name(),
        all_ready.as_secs_f64(),
        rss as f64 / 1024.0,
        initial.kv_reads,
        initial.bao_requests,
        initial.api_writes,
        initial.secret_writes,
        cycle.kv_reads,
        cycle.bao_requests,
        cycle.api_writes,
        cycle.secret_writes,
    );
    drop(controller);
}
