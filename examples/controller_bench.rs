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

#[path = "../tests/support/mod.rs"]
#[allow(unused)]
mod support;

use std::collections::{BTreeMap, HashSet};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use nix::sys::signal::Signal;
use sealgate::controller::api::{ClusterSecretStore, ExternalSecret};
use serde_json::json;

use support::cluster::TestCluster;
use support::openbao::OpenBao;
use support::process::{Service, free_port};

const CONTROLLER_NS: &str = "sealgate-system";

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Sum of a Prometheus counter family in a text exposition.
fn sum_metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{') | Some(b' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
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

fn is_ready(es: &ExternalSecret) -> bool {
    es.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Follows every ExternalSecret with one watch (a relisting poll of 10,000
/// objects would load the apiserver more than the controller does) and
/// keeps the number that are Ready.
fn count_ready(api: Api<ExternalSecret>) -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let out = Arc::clone(&count);
    tokio::spawn(async move {
        let mut ready: HashSet<String> = HashSet::new();
        let mut stream = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
        while let Some(ev) = stream.next().await {
            let mut apply = |es: &ExternalSecret| {
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
    reconciles: f64,
}

async fn snapshot(client: &Client, port: u16, bao: &OpenBao) -> (Figures, BTreeMap<String, f64>) {
    let m = controller_metrics(port);
    let api = apiserver_writes(&apiserver_metrics(client).await);
    (
        Figures {
            backend_calls: sum_metric(&m, "sealgate_backend_calls_total"),
            bao_reads: bao.requests_to("secret/data/bench/"),
            reconciles: sum_metric(&m, "sealgate_reconciles_total"),
        },
        api,
    )
}

fn report(
    phase: &str,
    before: &(Figures, BTreeMap<String, f64>),
    after: &(Figures, BTreeMap<String, f64>),
) {
    let writes = diff(&after.1, &before.1);
    let total: f64 = writes.values().sum();
    let secret_writes: f64 = writes
        .iter()
        .filter(|(k, _)| {
            k.starts_with("secrets") || k.starts_with("externalsecrets") || k.starts_with("events")
        })
        .map(|(_, v)| v)
        .sum::<f64>()
        + 0.0; // never print -0
    println!(
        "{phase}: backend_calls(metrics)={:.0} openbao_kv_reads(audit)={} reconciles={:.0} apiserver_writes_total={:.0} secret+status+event_writes={:.0} by_resource={:?}",
        after.0.backend_calls - before.0.backend_calls,
        after.0.bao_reads - before.0.bao_reads,
        after.0.reconciles - before.0.reconciles,
        total,
        secret_writes,
        writes,
    );
}

#[tokio::main]
async fn main() {
    let n = knob("BENCH_EXTERNALSECRETS", 10_000) as usize;
    let namespaces = knob("BENCH_NAMESPACES", 100).max(1) as usize;
    let distinct = knob("BENCH_DISTINCT", 1_000).max(1) as usize;
    let refresh = knob("BENCH_REFRESH_SECONDS", 600).max(1);
    let bin = std::env::var("SEALGATE_BIN").expect("SEALGATE_BIN: the sealgate binary to run");
    println!(
        "# externalsecrets={n} namespaces={namespaces} distinct={distinct} refresh={refresh}s bin={bin} machine: {} cores",
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
    for crd in sealgate::cli::crds::all() {
        let name = crd.metadata.name.clone().expect("CRD name");
        crds.patch(
            &name,
            &PatchParams::apply("bench").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("apply CRD");
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // CRDs established
    let ns_api: Api<Namespace> = Api::all(client.clone());
    let ns_names: Vec<String> = (0..namespaces).map(|i| format!("bench-{i}")).collect();
    for name in std::iter::once(CONTROLLER_NS.to_owned()).chain(ns_names.iter().cloned()) {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns");
        let _ = ns_api.create(&PostParams::default(), &ns).await;
    }
    let token: Secret = serde_json::from_value(json!({
        "metadata": {"name": "bench-token"},
        "stringData": {"token": bao.root_token()},
    }))
    .expect("token");
    let _ = Api::<Secret>::namespaced(client.clone(), CONTROLLER_NS)
        .create(&PostParams::default(), &token)
        .await;
    let store: ClusterSecretStore = serde_json::from_value(json!({
        "apiVersion": "sealgate.dev/v1alpha1", "kind": "ClusterSecretStore",
        "metadata": {"name": "bench"},
        "spec": {"provider": {"vault": {
            "server": bao.addr(), "path": "secret", "version": "v2",
            "auth": {"tokenSecretRef": {"name": "bench-token", "key": "token", "namespace": CONTROLLER_NS}},
        }}},
    }))
    .expect("store");
    let _ = Api::<ClusterSecretStore>::all(client.clone())
        .create(&PostParams::default(), &store)
        .await;

    // N ExternalSecrets, object i in namespace i % M reading secret i % D.
    let t = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            let ns = ns_names[i % namespaces].clone();
            async move {
                let es: ExternalSecret = serde_json::from_value(json!({
                    "apiVersion": "sealgate.dev/v1alpha1", "kind": "ExternalSecret",
                    "metadata": {"name": format!("es-{i}")},
                    "spec": {
                        "secretStoreRef": {"name": "bench", "kind": "ClusterSecretStore"},
                        "refreshInterval": format!("{refresh}s"),
                        "data": [{"secretKey": "v", "remoteRef": {"key": format!("bench/s{}", i % distinct), "property": "v"}}],
                    },
                }))
                .expect("ExternalSecret");
                let api: Api<ExternalSecret> = Api::namespaced(client, &ns);
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
        "sealgate-bench-controller-{}.log",
        std::process::id()
    ));
    let mut cmd = Command::new(&bin);
    cmd.arg("controller")
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .args(["--log-format", "json", "--log-level", "warn"])
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("POD_NAMESPACE", CONTROLLER_NS)
        .env("POD_NAME", "sealgate-bench");
    if let Ok(extra) = std::env::var("BENCH_CONTROLLER_ARGS") {
        cmd.args(extra.split_whitespace());
    }
    let api_before = apiserver_writes(&apiserver_metrics(&client).await);
    let bao_before = bao.requests_to("secret/data/bench/");
    let started = Instant::now();
    let controller = Service::spawn("sealgate controller", cmd, &log, Signal::SIGTERM);
    let pid = controller.pid();
    println!("controller pid {pid}, log {}", log.display());
    let es_all: Api<ExternalSecret> = Api::all(client.clone());
    let deadline = Duration::from_secs(knob("BENCH_TIMEOUT_SECONDS", 600));
    let mut last = 0;
    let ready_now = count_ready(es_all.clone());
    let all_ready = loop {
        let ready = ready_now.load(Ordering::Relaxed);
        if ready / 500 != last / 500 || ready >= n {
            println!(
                "  {:6.1}s ready {ready}/{n}",
                started.elapsed().as_secs_f64()
            );
            last = ready;
        }
        if ready >= n {
            break started.elapsed();
        }
        if started.elapsed() > deadline {
            println!(
                "TIMEOUT: {ready}/{n} Ready after {:.0}s",
                deadline.as_secs_f64()
            );
            break started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let base = (
        Figures {
            backend_calls: 0.0,
            bao_reads: bao_before,
            reconciles: 0.0,
        },
        api_before,
    );
    let synced = snapshot(&client, port, &bao).await;
    println!(
        "all_ready_seconds={:.1} peak_rss_kib={}",
        all_ready.as_secs_f64(),
        peak_rss_kib(pid)
    );
    report("initial_sync", &base, &synced);

    // One refresh cycle with no backend change: every object has one
    // refresh slot start within any window of one interval.
    let wait = Duration::from_secs(refresh) + Duration::from_secs(5);
    println!("waiting {:.0}s for one refresh cycle", wait.as_secs_f64());
    tokio::time::sleep(wait).await;
    let refreshed = snapshot(&client, port, &bao).await;
    report("refresh_cycle", &synced, &refreshed);
    println!(
        "peak_rss_kib={} (VmHWM over the whole run)",
        peak_rss_kib(pid)
    );
    let secrets_count = Api::<Secret>::all(client.clone())
        .list_metadata(&ListParams::default().labels("app.kubernetes.io/managed-by=sealgate"))
        .await
        .map(|l| l.items.len())
        .unwrap_or(0);
    println!("managed Secrets: {secrets_count}");
    drop(controller);
}
