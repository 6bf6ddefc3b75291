//! `ExternalSecret` end to end: the real controller runner (in process)
//! against a real kube-apiserver, real OpenBao and real moto.
//!
//! Each test scopes its controller(s) to its own namespace(s), so tests run
//! in parallel on the shared control plane without touching each other's
//! objects. Waiting uses generous timeouts; no assertion depends on timing.

use crate::support::wait_for;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Event, Namespace, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use sealgate::controller::api::{ClusterSecretStore, ExternalSecret, SecretStore};
use sealgate::controller::external_secret::{FINALIZER, MERGE_TARGET_LABEL};
use sealgate::controller::runner::{self, RunnerConfig};
use serde_json::json;

use crate::support::cluster::TestCluster;
use crate::support::moto::{Moto, REGION};
use crate::support::openbao::{OpenBao, PersistentBao};

const PLANTED: &str = "PLANTED-es-pw-7f3a91c2";
const PLANTED2: &str = "PLANTED-es-pw2-2b8e44d0";
const TM: &str = "sealgate-test";

/// A controller runner started by a test; stopped on drop.
struct Ctl {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
    addr: Arc<Mutex<Option<SocketAddr>>>,
}

impl Ctl {
    fn start(client: &Client, ns: &str, controller_ns: &str, identity: &str, leader: bool) -> Self {
        let mut config = RunnerConfig::new(controller_ns, identity);
        config.namespace = Some(ns.to_owned());
        config.concurrency = 4;
        config.leader_election = leader;
        config.lease_name = format!("sealgate-{controller_ns}");
        config.lease_duration_seconds = 6;
        config.http_addr = Some("127.0.0.1:0".parse().expect("addr"));
        config.cache_ttl = Duration::ZERO;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let addr = Arc::new(Mutex::new(None));
        let a = Arc::clone(&addr);
        let client = client.clone();
        let handle = tokio::spawn(async move {
            runner::run(
                client,
                config,
                async move {
                    let _ = rx.await;
                },
                move |ep| *a.lock().expect("addr") = Some(ep.addr),
            )
            .await
            .expect("runner");
        });
        Self {
            stop: Some(tx),
            handle: Some(handle),
            addr,
        }
    }

    async fn metrics(&self) -> String {
        let addr = wait_for("metrics address", || async {
            *self.addr.lock().expect("addr")
        })
        .await;
        reqwest::get(format!("http://{addr}/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body")
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), h).await;
        }
    }
}

impl Drop for Ctl {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

fn ready_of(es: &ExternalSecret) -> Option<(String, String)> {
    let c = es
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((c.status.clone(), c.reason.clone().unwrap_or_default()))
}

async fn wait_ready(api: &Api<ExternalSecret>, name: &str, status: &str, reason: &str) {
    wait_for(
        &format!("ExternalSecret {name} Ready={status} ({reason})"),
        || async {
            let es = api.get_opt(name).await.ok().flatten()?;
            ready_of(&es).filter(|(s, r)| s == status && r == reason)
        },
    )
    .await;
}

async fn apply(client: &Client, ns: &str, obj: serde_json::Value) {
    let kind = obj["kind"].as_str().expect("kind").to_owned();
    let name = obj["metadata"]["name"].as_str().expect("name").to_owned();
    let pp = PatchParams::apply(TM).force();
    match kind.as_str() {
        "ExternalSecret" => {
            let es: ExternalSecret = serde_json::from_value(obj).expect("ExternalSecret");
            Api::<ExternalSecret>::namespaced(client.clone(), ns)
                .patch(&name, &pp, &Patch::Apply(&es))
                .await
                .expect("apply ExternalSecret");
        }
        "SecretStore" => {
            let s: SecretStore = serde_json::from_value(obj).expect("SecretStore");
            Api::<SecretStore>::namespaced(client.clone(), ns)
                .patch(&name, &pp, &Patch::Apply(&s))
                .await
                .expect("apply SecretStore");
        }
        "ClusterSecretStore" => {
            let s: ClusterSecretStore = serde_json::from_value(obj).expect("ClusterSecretStore");
            Api::<ClusterSecretStore>::all(client.clone())
                .patch(&name, &pp, &Patch::Apply(&s))
                .await
                .expect("apply ClusterSecretStore");
        }
        "Secret" => {
            Api::<Secret>::namespaced(client.clone(), ns)
                .patch(&name, &pp, &Patch::Apply(&obj))
                .await
                .expect("apply Secret");
        }
        other => panic!("unexpected kind {other}"),
    }
}

fn es(name: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "sealgate.dev/v1alpha1", "kind": "ExternalSecret",
           "metadata": {"name": name}, "spec": spec})
}

fn secret(name: &str, data: &[(&str, &str)]) -> serde_json::Value {
    let data: BTreeMap<String, ByteString> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data})
}

fn vault_store(name: &str, addr: &str, token_secret: &str) -> serde_json::Value {
    json!({"apiVersion": "sealgate.dev/v1alpha1", "kind": "SecretStore",
           "metadata": {"name": name},
           "spec": {"provider": {"vault": {"server": addr, "path": "secret", "version": "v2",
               "auth": {"tokenSecretRef": {"name": token_secret, "key": "token"}}}}}})
}

fn value(s: &Secret, key: &str) -> Option<String> {
    s.data
        .as_ref()?
        .get(key)
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
}

async fn wait_secret<P>(api: &Api<Secret>, name: &str, what: &str, pred: P) -> Secret
where
    P: Fn(&Secret) -> bool,
{
    wait_for(what, || async {
        api.get_opt(name).await.ok().flatten().filter(|s| pred(s))
    })
    .await
}

/// An Owner ExternalSecret reading one property of `app/db` into key `p`,
/// with `deletionPolicy` set or not.
fn with_deletion(name: &str, property: &str, policy: Option<&str>) -> serde_json::Value {
    let mut target = json!({});
    if let Some(p) = policy {
        target["deletionPolicy"] = json!(p);
    }
    es(
        name,
        json!({
            "secretStoreRef": {"name": "bao"},
            "target": target,
            "data": [{"secretKey": "p", "remoteRef": {"key": "app/db", "property": property}}]
        }),
    )
}

async fn wait_finalizer(api: &Api<ExternalSecret>, name: &str, present: bool) {
    let what = format!("finalizer on {name} present={present}");
    wait_for(&what, || async {
        let es = api.get(name).await.ok()?;
        (es.finalizers().iter().any(|f| f == FINALIZER) == present).then_some(())
    })
    .await
}

async fn kv_set(bao: &OpenBao, path: &str, data: &[(&str, &str)]) {
    let map: BTreeMap<&str, &str> = data.iter().copied().collect();
    vaultrs::kv2::set(&bao.client(), "secret", path, &map)
        .await
        .expect("kv2 set");
}

/// KV v2 → Secret with a template, rotation within a refresh, extract /
/// find / rewrite, every creation and deletion policy, refusals with
/// reasons — and no planted value in TRACE logs, status, events or
/// metrics.
#[tokio::test(flavor = "current_thread")]
async fn kv_secrets_become_secrets_with_every_policy_and_nothing_leaks() {
    let cluster = TestCluster::get();
    let client = cluster.admin().await;
    crate::crds::install(&client).await;
    let ns = cluster.namespace("es-kv").await;
    let bao = tokio::task::spawn_blocking(OpenBao::start)
        .await
        .expect("bao");
    kv_set(
        &bao,
        "app/db",
        &[("username", "app"), ("password", PLANTED)],
    )
    .await;
    kv_set(&bao, "app/api", &[("token", PLANTED)]).await;
    apply(
        &client,
        &ns,
        secret("bao-token", &[("token", bao.root_token())]),
    )
    .await;
    apply(&client, &ns, vault_store("bao", &bao.addr(), "bao-token")).await;
    // The real binary at TRACE, so every log line it writes is captured.
    let mut ctl = Binary::start(cluster, &ns);

    let stores: Api<SecretStore> = Api::namespaced(client.clone(), &ns);
    wait_for("SecretStore Ready", || async {
        let s = stores.get("bao").await.ok()?;
        let c = s
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (c.status == "True").then_some(())
    })
    .await;

    let es_api: Api<ExternalSecret> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);

    // Owner (default) with a template.
    apply(
        &client,
        &ns,
        es(
            "db",
            json!({
            "secretStoreRef": {"name": "bao", "kind": "SecretStore"},
            "refreshInterval": "2s",
            "target": {"name": "db-creds", "template": {
                "type": "kubernetes.io/basic-auth",
                "metadata": {"labels": {"team": "a"}},
                "data": {"username": "{{ username }}", "password": "{{ password }}",
                         "url": "postgres://{{ username }}:{{ password }}@db:5432/app"}}},
            "data": [
                {"secretKey": "username", "remoteRef": {"key": "app/db", "property": "username"}},
                {"secretKey": "password", "remoteRef": {"key": "app/db", "property": "password"}}
            ]}),
        ),
    )
    .await;
    let s = wait_secret(&secrets, "db-creds", "Secret db-creds", |_| true).await;
    assert_eq!(value(&s, "password").as_deref(), Some(PLANTED));
    assert_eq!(
        value(&s, "url"),
        Some(format!("postgres://app:{PLANTED}@db:5432/app"))
    );
    assert_eq!(s.type_.as_deref(), Some("kubernetes.io/basic-auth"));
    assert_eq!(s.labels().get("team").map(String::as_str), Some("a"));
    assert_eq!(
        s.labels()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("sealgate")
    );
    let db = es_api.get("db").await.expect("es");
    assert!(
        s.owner_references()
            .iter()
            .any(|r| Some(&r.uid) == db.metadata.uid.as_ref() && r.controller == Some(true)),
        "Owner: controller owner reference"
    );
    wait_ready(&es_api, "db", "True", "SecretSynced").await;

    // Unchanged content: several refreshes, no write.
    let rv = s.metadata.resource_version.clone();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let again = secrets.get("db-creds").await.expect("secret");
    assert_eq!(
        again.metadata.resource_version, rv,
        "no write without change"
    );

    // Rotation in OpenBao reaches the Secret within a refresh.
    kv_set(
        &bao,
        "app/db",
        &[("username", "app"), ("password", PLANTED2)],
    )
    .await;
    wait_secret(&secrets, "db-creds", "rotated password", |s| {
        value(s, "password").as_deref() == Some(PLANTED2)
    })
    .await;

    // Orphan with extract + find + rewrite.
    apply(
        &client,
        &ns,
        es(
            "bulk",
            json!({
            "secretStoreRef": {"name": "bao"},
            "refreshInterval": "0",
            "target": {"name": "bulk", "creationPolicy": "Orphan"},
            "dataFrom": [
                {"extract": {"key": "app/db"}},
                {"find": {"path": "app", "name": {"regexp": "api$"}},
                 "rewrite": [{"regexp": {"source": "^app_(.*)$", "target": "found_$1"}}]}
            ]}),
        ),
    )
    .await;
    let bulk = wait_secret(&secrets, "bulk", "Secret bulk", |_| true).await;
    assert_eq!(value(&bulk, "username").as_deref(), Some("app"));
    assert_eq!(value(&bulk, "password").as_deref(), Some(PLANTED2));
    let found = value(&bulk, "found_api").expect("find result under its rewritten key");
    assert!(found.contains("token"), "find value is the secret as JSON");
    assert!(
        bulk.owner_references().is_empty(),
        "Orphan: no owner reference"
    );

    // Merge into an existing Secret, then Delete removes only our keys.
    apply(&client, &ns, secret("shared", &[("keep", "mine")])).await;
    apply(&client, &ns, es("merge", json!({
        "secretStoreRef": {"name": "bao"},
        "refreshInterval": "1h",
        "target": {"name": "shared", "creationPolicy": "Merge", "deletionPolicy": "Delete"},
        "data": [{"secretKey": "added", "remoteRef": {"key": "app/db", "property": "username"}}]
    }))).await;
    let merged = wait_secret(&secrets, "shared", "merged key", |s| {
        value(s, "added").as_deref() == Some("app") && value(s, "keep").as_deref() == Some("mine")
    })
    .await;
    assert_eq!(
        merged.labels().get(MERGE_TARGET_LABEL).map(String::as_str),
        Some("true")
    );
    // Merge targets are watched (the refresh is 1h): an edited key is put
    // back, and a deleted target is reported at once.
    Api::<Secret>::namespaced(client.clone(), &ns)
        .patch(
            "shared",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"added": "ZWRpdGVk"}})),
        )
        .await
        .expect("edit merged key");
    wait_secret(&secrets, "shared", "edited merged key put back", |s| {
        value(s, "added").as_deref() == Some("app")
    })
    .await;
    secrets
        .delete("shared", &DeleteParams::default())
        .await
        .expect("delete merge target");
    wait_ready(&es_api, "merge", "False", "MergeTargetMissing").await;
    apply(&client, &ns, secret("shared", &[("keep", "mine")])).await;
    wait_secret(
        &secrets,
        "shared",
        "merged again into the new target",
        |s| {
            value(s, "added").as_deref() == Some("app")
                && value(s, "keep").as_deref() == Some("mine")
        },
    )
    .await;
    es_api
        .delete("merge", &DeleteParams::default())
        .await
        .expect("delete merge");
    wait_secret(&secrets, "shared", "merged key removed", |s| {
        value(s, "added").is_none() && value(s, "keep").as_deref() == Some("mine")
    })
    .await;

    // Refusals, each with its reason; nothing written.
    apply(
        &client,
        &ns,
        es(
            "merge-missing",
            json!({
                "secretStoreRef": {"name": "bao"},
                "target": {"name": "nope", "creationPolicy": "Merge"},
                "data": [{"secretKey": "a", "remoteRef": {"key": "app/db", "property": "username"}}]
            }),
        ),
    )
    .await;
    apply(
        &client,
        &ns,
        es(
            "sat",
            json!({
                "secretStoreRef": {"name": "bao"},
                "target": {"template": {"type": "kubernetes.io/service-account-token"}},
                "data": [{"secretKey": "a", "remoteRef": {"key": "app/db", "property": "password"}}]
            }),
        ),
    )
    .await;
    apply(&client, &ns, es("badtpl", json!({
        "secretStoreRef": {"name": "bao"},
        "target": {"template": {"data": {"x": "{{ password }}{{ missing }}"}}},
        "data": [{"secretKey": "password", "remoteRef": {"key": "app/db", "property": "password"}}]
    }))).await;
    apply(
        &client,
        &ns,
        es(
            "absent",
            json!({
                "secretStoreRef": {"name": "bao"},
                "data": [{"secretKey": "a", "remoteRef": {"key": "app/absent"}}]
            }),
        ),
    )
    .await;
    apply(&client, &ns, secret("foreign", &[("x", "y")])).await;
    apply(
        &client,
        &ns,
        es(
            "takeover",
            json!({
                "secretStoreRef": {"name": "bao"},
                "target": {"name": "foreign"},
                "data": [{"secretKey": "a", "remoteRef": {"key": "app/db", "property": "password"}}]
            }),
        ),
    )
    .await;
    wait_ready(&es_api, "merge-missing", "False", "MergeTargetMissing").await;
    wait_ready(&es_api, "sat", "False", "ForbiddenType").await;
    wait_ready(&es_api, "badtpl", "False", "TemplateFailed").await;
    wait_ready(&es_api, "absent", "False", "SecretNotFoundInBackend").await;
    wait_ready(&es_api, "takeover", "False", "SecretNotOwned").await;
    for name in ["nope", "sat", "badtpl", "absent"] {
        assert!(
            secrets.get_opt(name).await.expect("get").is_none(),
            "{name} not written"
        );
    }
    let foreign = secrets.get("foreign").await.expect("foreign");
    assert_eq!(
        value(&foreign, "x").as_deref(),
        Some("y"),
        "foreign Secret untouched"
    );

    // Owner, deletionPolicy unset: no finalizer. The controller owner
    // reference hands the Secret to the garbage collector, as in ESO (this
    // control plane runs no garbage collector, so the reference is checked).
    let db = es_api.get("db").await.expect("es db");
    assert!(
        !db.finalizers().iter().any(|f| f == FINALIZER),
        "no finalizer without clean-up: {:?}",
        db.finalizers()
    );

    // Owner + explicit Delete: a finalizer appears when the policy is set,
    // and the controller deletes the Secret itself.
    apply(&client, &ns, with_deletion("del", "username", None)).await;
    wait_secret(&secrets, "del", "Secret del", |_| true).await;
    wait_ready(&es_api, "del", "True", "SecretSynced").await;
    apply(
        &client,
        &ns,
        with_deletion("del", "username", Some("Delete")),
    )
    .await;
    wait_finalizer(&es_api, "del", true).await;
    es_api
        .delete("del", &DeleteParams::default())
        .await
        .expect("delete del");
    wait_for("Secret del deleted", || async {
        secrets
            .get_opt("del")
            .await
            .ok()
            .and_then(|s| s.is_none().then_some(()))
    })
    .await;

    // Owner + explicit Retain: the finalizer goes when the policy is unset
    // again and comes back with it; on deletion the Secret stays, without
    // our owner reference.
    apply(
        &client,
        &ns,
        with_deletion("keep", "password", Some("Retain")),
    )
    .await;
    wait_finalizer(&es_api, "keep", true).await;
    apply(&client, &ns, with_deletion("keep", "password", None)).await;
    wait_finalizer(&es_api, "keep", false).await;
    apply(
        &client,
        &ns,
        with_deletion("keep", "password", Some("Retain")),
    )
    .await;
    wait_finalizer(&es_api, "keep", true).await;
    wait_secret(&secrets, "keep", "Secret keep", |s| {
        !s.owner_references().is_empty()
    })
    .await;
    es_api
        .delete("keep", &DeleteParams::default())
        .await
        .expect("delete keep");
    wait_for("ExternalSecret keep gone", || async {
        es_api
            .get_opt("keep")
            .await
            .ok()
            .and_then(|e| e.is_none().then_some(()))
    })
    .await;
    let kept = secrets.get("keep").await.expect("retained Secret");
    assert!(
        kept.owner_references().is_empty(),
        "owner reference dropped on Retain"
    );
    assert_eq!(value(&kept, "p").as_deref(), Some(PLANTED2));

    // Metrics show reconciles and per-store backend calls.
    let metrics = ctl.metrics().await;
    assert!(
        metrics.contains("sealgate_reconciles_total{kind=\"ExternalSecret\""),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "sealgate_backend_calls_total{{store=\"{ns}/bao\"}}"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("reason=\"TemplateFailed\""), "{metrics}");
    ctl.stop().await;

    // No leak: logs, statuses, events, metrics.
    let logs = std::fs::read_to_string(&ctl.log).expect("controller log");
    assert!(
        logs.contains("externalsecret synced"),
        "TRACE logs were captured"
    );
    let statuses = serde_json::to_string(
        &es_api
            .list(&ListParams::default())
            .await
            .expect("list es")
            .items,
    )
    .expect("json");
    let events = serde_json::to_string(
        &Api::<Event>::namespaced(client.clone(), &ns)
            .list(&ListParams::default())
            .await
            .expect("events")
            .items,
    )
    .expect("json");
    assert!(
        events.contains("TemplateFailed"),
        "refusals are reported as events"
    );
    for planted in [PLANTED, PLANTED2] {
        for (what, text) in [
            ("logs", &logs),
            ("status", &statuses),
            ("events", &events),
            ("metrics", &metrics),
        ] {
            assert!(!text.contains(planted), "planted value leaked into {what}");
        }
    }
}

/// The real `sealgate controller` binary, scoped to one namespace, logging
/// at TRACE (JSON) to a file; stopped with SIGTERM.
struct Binary {
    child: Option<std::process::Child>,
    port: u16,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Binary {
    fn start(cluster: &TestCluster, ns: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("controller.log");
        let file = std::fs::File::create(&log).expect("log file");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_sealgate"))
            .args(["controller", "--log-format", "json", "--log-level", "trace"])
            .args([
                "--namespace",
                ns,
                "--disable-leader-election",
                "--cache-ttl",
                "0",
            ])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .env("KUBECONFIG", cluster.kubeconfig())
            .env("POD_NAMESPACE", ns)
            .env("POD_NAME", "kv-test")
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("start sealgate controller");
        Self {
            child: Some(child),
            port,
            log,
            _dir: dir,
        }
    }

    async fn metrics(&self) -> String {
        reqwest::get(format!("http://127.0.0.1:{}/metrics", self.port))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body")
    }

    async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = tokio::task::spawn_blocking(move || c.wait()).await;
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// OpenBao stopped (the real server process, file storage): the Secret is
/// kept, status says why; after a restart (and unseal) it recovers.
#[tokio::test(flavor = "current_thread")]
async fn backend_outage_keeps_the_secret_and_recovers() {
    let cluster = TestCluster::get();
    let client = cluster.admin().await;
    crate::crds::install(&client).await;
    let ns = cluster.namespace("es-outage").await;
    let mut bao = tokio::task::spawn_blocking(PersistentBao::start)
        .await
        .expect("bao");
    let kv = |bao: &PersistentBao, v: &'static str| {
        let c = bao.client();
        async move {
            vaultrs::kv2::set(&c, "secret", "svc", &BTreeMap::from([("password", v)]))
                .await
                .expect("kv2 set");
        }
    };
    kv(&bao, "first").await;
    apply(
        &client,
        &ns,
        secret("bao-token", &[("token", bao.root_token())]),
    )
    .await;
    apply(&client, &ns, vault_store("bao", &bao.addr(), "bao-token")).await;
    let ctl = Ctl::start(&client, &ns, &ns, "outage-test", false);
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), &ns);
    deployments
        .patch(
            "web",
            &PatchParams::apply(TM).force(),
            &Patch::Apply(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web"},
                "spec": {"selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
            })),
        )
        .await
        .expect("deployment");
    let mut svc = es(
        "svc",
        json!({
            "secretStoreRef": {"name": "bao"},
            "refreshInterval": "1s",
            "data": [{"secretKey": "password", "remoteRef": {"key": "svc", "property": "password"}}]
        }),
    );
    svc["metadata"]["annotations"] = json!({"sealgate.dev/restart": "deployment/web"});
    apply(&client, &ns, svc).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let es_api: Api<ExternalSecret> = Api::namespaced(client.clone(), &ns);
    let before = wait_secret(&secrets, "svc", "Secret svc", |_| true).await;
    wait_ready(&es_api, "svc", "True", "SecretSynced").await;

    let mut bao = tokio::task::spawn_blocking(move || {
        bao.stop();
        bao
    })
    .await
    .expect("stop bao");
    wait_ready(&es_api, "svc", "False", "BackendUnavailable").await;
    let during = secrets.get("svc").await.expect("Secret kept");
    assert_eq!(during.data, before.data, "content kept during the outage");
    assert_eq!(
        during.metadata.resource_version,
        before.metadata.resource_version
    );

    let bao = tokio::task::spawn_blocking(move || {
        bao.restart();
        bao
    })
    .await
    .expect("restart bao");
    // The data survived the restart; then the backend changes.
    let kept: BTreeMap<String, String> = vaultrs::kv2::read(&bao.client(), "secret", "svc")
        .await
        .expect("kv2 read after restart");
    assert_eq!(kept.get("password").map(String::as_str), Some("first"));
    kv(&bao, "second").await;
    wait_ready(&es_api, "svc", "True", "SecretSynced").await;
    wait_secret(&secrets, "svc", "recovered value", |s| {
        value(s, "password").as_deref() == Some("second")
    })
    .await;
    // The content changed: the Deployment named in the annotation rolls
    // (keyed hash in its pod template).
    let hash = wait_for("restart annotation on Deployment web", || async {
        let d = serde_json::to_value(deployments.get("web").await.ok()?).ok()?;
        d["spec"]["template"]["metadata"]["annotations"]["sealgate.dev/secret-hash"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    assert!(!hash.contains("second"), "the hash is keyed, not the value");
    ctl.stop().await;
}

/// ClusterSecretStore conditions: namespaces by name and by label, key
/// prefixes; a SecretStore may not read credentials from another namespace.
#[tokio::test(flavor = "current_thread")]
async fn cross_namespace_use_and_foreign_keys_are_refused() {
    let cluster = TestCluster::get();
    let client = cluster.admin().await;
    crate::crds::install(&client).await;
    let ns_a = cluster.namespace("es-tenant-a").await;
    let ns_b = cluster.namespace("es-tenant-b").await;
    let ns_c = cluster.namespace("es-tenant-c").await;
    let tenant = format!("c-{}", std::process::id());
    Api::<Namespace>::all(client.clone())
        .patch(
            &ns_c,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"sealgate-test/tenant": tenant}}})),
        )
        .await
        .expect("label namespace");
    let bao = tokio::task::spawn_blocking(OpenBao::start)
        .await
        .expect("bao");
    kv_set(&bao, "team-a/db", &[("password", "a")]).await;
    kv_set(&bao, "team-b/db", &[("password", "b")]).await;
    apply(
        &client,
        &ns_a,
        secret("bao-token", &[("token", bao.root_token())]),
    )
    .await;
    let css = format!("shared-{}-{ns_a}", std::process::id());
    apply(
        &client,
        "",
        json!({
        "apiVersion": "sealgate.dev/v1alpha1", "kind": "ClusterSecretStore",
        "metadata": {"name": css},
        "spec": {
            "provider": {"vault": {"server": bao.addr(), "auth": {"tokenSecretRef":
                {"name": "bao-token", "key": "token", "namespace": ns_a}}}},
            "conditions": [
                {"namespaces": [ns_a], "allowedKeyPrefixes": ["team-a/"]},
                {"namespaceSelector": {"matchLabels": {"sealgate-test/tenant": tenant}}}
            ]}}),
    )
    .await;
    // A tenant's SecretStore pointing at another namespace's credential.
    apply(
        &client,
        &ns_b,
        json!({
        "apiVersion": "sealgate.dev/v1alpha1", "kind": "SecretStore",
        "metadata": {"name": "borrowed"},
        "spec": {"provider": {"vault": {"server": bao.addr(), "auth": {"tokenSecretRef":
            {"name": "bao-token", "key": "token", "namespace": ns_a}}}}}}),
    )
    .await;
    let ctls: Vec<Ctl> = [&ns_a, &ns_b, &ns_c]
        .iter()
        .map(|ns| Ctl::start(&client, ns, ns, "tenancy-test", false))
        .collect();
    let read = |key: &str, kind: &str, store: &str| {
        json!({"secretStoreRef": {"name": store, "kind": kind},
               "data": [{"secretKey": "password", "remoteRef": {"key": key, "property": "password"}}]})
    };
    apply(
        &client,
        &ns_a,
        es("ok", read("team-a/db", "ClusterSecretStore", &css)),
    )
    .await;
    apply(
        &client,
        &ns_a,
        es("other-team", read("team-b/db", "ClusterSecretStore", &css)),
    )
    .await;
    apply(
        &client,
        &ns_b,
        es(
            "not-admitted",
            read("team-a/db", "ClusterSecretStore", &css),
        ),
    )
    .await;
    apply(
        &client,
        &ns_c,
        es("by-label", read("team-b/db", "ClusterSecretStore", &css)),
    )
    .await;
    apply(
        &client,
        &ns_b,
        es("borrow", read("team-a/db", "SecretStore", "borrowed")),
    )
    .await;

    let a: Api<ExternalSecret> = Api::namespaced(client.clone(), &ns_a);
    let b: Api<ExternalSecret> = Api::namespaced(client.clone(), &ns_b);
    let c: Api<ExternalSecret> = Api::namespaced(client.clone(), &ns_c);
    wait_ready(&a, "ok", "True", "SecretSynced").await;
    wait_ready(&a, "other-team", "False", "KeyNotAllowed").await;
    wait_ready(&b, "not-admitted", "False", "StoreNotAllowed").await;
    wait_ready(&c, "by-label", "True", "SecretSynced").await;
    wait_ready(&b, "borrow", "False", "InvalidStoreSpec").await;
    let sb: Api<Secret> = Api::namespaced(client.clone(), &ns_b);
    assert!(sb.get_opt("not-admitted").await.expect("get").is_none());
    assert!(sb.get_opt("borrow").await.expect("get").is_none());
    let msg = b
        .get("not-admitted")
        .await
        .expect("es")
        .status
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.message)
        .unwrap_or_default();
    assert!(
        msg.contains(&ns_b) && msg.contains("does not admit"),
        "{msg}"
    );
    for c in ctls {
        c.stop().await;
    }
    let _ = Api::<ClusterSecretStore>::all(client.clone())
        .delete(&css, &DeleteParams::default())
        .await;
}

/// An AWS Secrets Manager store (moto) with static keys read from a Secret.
#[tokio::test(flavor = "current_thread")]
async fn aws_store_with_static_keys_from_a_secret() {
    let cluster = TestCluster::get();
    let client = cluster.admin().await;
    crate::crds::install(&client).await;
    let ns = cluster.namespace("es-aws").await;
    let moto = tokio::task::spawn_blocking(Moto::start)
        .await
        .expect("moto");
    let sm = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
    sm.create_secret()
        .name("prod/api")
        .secret_string(r#"{"key":"aws-value","user":"svc"}"#)
        .send()
        .await
        .expect("create secret");
    apply(
        &client,
        &ns,
        secret("aws-creds", &[("id", "testing"), ("secret", "testing")]),
    )
    .await;
    apply(
        &client,
        &ns,
        json!({
        "apiVersion": "sealgate.dev/v1alpha1", "kind": "SecretStore",
        "metadata": {"name": "aws"},
        "spec": {"provider": {"aws": {"service": "SecretsManager", "region": REGION,
            "endpoint": moto.endpoint(),
            "auth": {"secretRef": {
                "accessKeyIdSecretRef": {"name": "aws-creds", "key": "id"},
                "secretAccessKeySecretRef": {"name": "aws-creds", "key": "secret"}}}}}}}),
    )
    .await;
    let ctl = Ctl::start(&client, &ns, &ns, "aws-test", false);
    apply(&client, &ns, es("api", json!({
        "secretStoreRef": {"name": "aws"},
        "data": [{"secretKey": "key", "remoteRef": {"key": "prod/api", "property": "key"}}],
        "dataFrom": [{"extract": {"key": "prod/api"}, "rewrite": [{"regexp": {"source": "^(.*)$", "target": "all_$1"}}]}]
    }))).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let s = wait_secret(&secrets, "api", "Secret api", |_| true).await;
    assert_eq!(value(&s, "key").as_deref(), Some("aws-value"));
    assert_eq!(value(&s, "all_user").as_deref(), Some("svc"));
    let stores: Api<SecretStore> = Api::namespaced(client.clone(), &ns);
    let st = stores.get("aws").await.expect("store");
    let ready = st
        .status
        .expect("status")
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(ready.status, "True");
    ctl.stop().await;
}

/// Vault Kubernetes auth: OpenBao validates a ServiceAccount token the
/// controller minted (TokenRequest) through TokenReview on the harness
/// apiserver.
#[tokio::test(flavor = "current_thread")]
async fn vault_kubernetes_auth_end_to_end() {
    let cluster = TestCluster::get();
    let client = cluster.admin().await;
    crate::crds::install(&client).await;
    let ns = cluster.namespace("es-k8sauth").await;
    let bao = tokio::task::spawn_blocking(OpenBao::start)
        .await
        .expect("bao");
    kv_set(&bao, "k8s/app", &[("password", "via-k8s-auth")]).await;

    // A reviewer ServiceAccount allowed to call TokenReview.
    let reviewer = cluster.service_account_token(&ns, "reviewer").await;
    let crb = format!("sealgate-test-reviewer-{ns}");
    let crbs: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(client.clone());
    crbs.patch(
        &crb,
        &PatchParams::apply(TM).force(),
        &Patch::Apply(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": crb},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
            "subjects": [{"kind": "ServiceAccount", "name": "reviewer", "namespace": ns}]
        })),
    )
    .await
    .expect("auth-delegator binding");
    let _ = cluster.service_account_token(&ns, "app").await; // creates SA app

    let kc = kube::config::Kubeconfig::read_from(cluster.kubeconfig()).expect("kubeconfig");
    let c = kc.clusters[0].cluster.as_ref().expect("cluster");
    let host = c.server.clone().expect("server");
    let ca = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(c.certificate_authority_data.as_ref().expect("ca"))
            .expect("ca b64")
    };
    let dir = tempfile::tempdir().expect("tmp");
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, ca).expect("ca file");
    let policy = dir.path().join("read.hcl");
    std::fs::write(
        &policy,
        "path \"secret/data/k8s/*\" { capabilities = [\"read\"] }\n",
    )
    .expect("policy");
    bao.cli(&["auth", "enable", "kubernetes"]);
    bao.cli(&[
        "write",
        "auth/kubernetes/config",
        &format!("kubernetes_host={host}"),
        &format!("kubernetes_ca_cert=@{}", ca_file.display()),
        &format!("token_reviewer_jwt={reviewer}"),
    ]);
    bao.cli(&["policy", "write", "k8s-read", &policy.display().to_string()]);
    bao.cli(&[
        "write",
        "auth/kubernetes/role/app",
        "bound_service_account_names=app",
        &format!("bound_service_account_namespaces={ns}"),
        "token_policies=k8s-read",
        "ttl=10m",
    ]);

    apply(
        &client,
        &ns,
        json!({
        "apiVersion": "sealgate.dev/v1alpha1", "kind": "SecretStore",
        "metadata": {"name": "bao-k8s"},
        "spec": {"provider": {"vault": {"server": bao.addr(), "auth": {"kubernetes": {
            "role": "app", "serviceAccountRef": {"name": "app"}}}}}}}),
    )
    .await;
    let ctl = Ctl::start(&client, &ns, &ns, "k8s-auth-test", false);
    apply(&client, &ns, es("app", json!({
        "secretStoreRef": {"name": "bao-k8s"},
        "data": [{"secretKey": "password", "remoteRef": {"key": "k8s/app", "property": "password"}}]
    }))).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let s = wait_secret(&secrets, "app", "Secret app via Kubernetes auth", |_| true).await;
    assert_eq!(value(&s, "password").as_deref(), Some("via-k8s-auth"));
    let stores: Api<SecretStore> = Api::namespaced(client.clone(), &ns);
    let st = stores.get("bao-k8s").await.expect("store");
    let ready = st
        .status
        .expect("status")
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(ready.status, "True", "{ready:?}");
    ctl.stop().await;
    let _ = crbs.delete(&crb, &DeleteParams::default()).await;
}

/// Two replicas with leader election: exactly one reconciles and writes;
/// when it stops, the other takes over.
#[tokio::test(flavor = "current_thread")]
async fn two_replicas_only_the_leader_writes() {
    let cluster = TestCluster::get();
    let client = cluster.admin().await;
    crate::crds::install(&client).await;
    let ns = cluster.namespace("es-ha").await;
    let bao = tokio::task::spawn_blocking(OpenBao::start)
        .await
        .expect("bao");
    kv_set(&bao, "ha", &[("v", "one")]).await;
    apply(
        &client,
        &ns,
        secret("bao-token", &[("token", bao.root_token())]),
    )
    .await;
    apply(&client, &ns, vault_store("bao", &bao.addr(), "bao-token")).await;
    let first = Ctl::start(&client, &ns, &ns, "replica-a", true);
    let second = Ctl::start(&client, &ns, &ns, "replica-b", true);
    apply(
        &client,
        &ns,
        es(
            "ha",
            json!({
                "secretStoreRef": {"name": "bao"},
                "refreshInterval": "1s",
                "data": [{"secretKey": "v", "remoteRef": {"key": "ha", "property": "v"}}]
            }),
        ),
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    wait_secret(&secrets, "ha", "Secret ha", |_| true).await;
    let leads = |m: &str| m.contains("sealgate_leader 1");
    let writes = |m: &str| m.contains("sealgate_secret_writes_total{kind=\"ExternalSecret\"}");
    let reconciles = |m: &str| m.contains("sealgate_reconciles_total{kind=\"ExternalSecret\"");
    let (ma, mb) = (first.metrics().await, second.metrics().await);
    assert!(leads(&ma) != leads(&mb), "exactly one leader");
    let (leader, standby, ml, ms) = if leads(&ma) {
        (first, second, ma, mb)
    } else {
        (second, first, mb, ma)
    };
    assert!(writes(&ml) && reconciles(&ml), "the leader wrote");
    assert!(
        !writes(&ms) && !reconciles(&ms),
        "the standby neither reconciled nor wrote:\n{ms}"
    );

    // The leader stops (releasing the Lease); the standby takes over.
    leader.stop().await;
    kv_set(&bao, "ha", &[("v", "two")]).await;
    wait_secret(&secrets, "ha", "value written by the new leader", |s| {
        value(s, "v").as_deref() == Some("two")
    })
    .await;
    let m = standby.metrics().await;
    assert!(
        leads(&m) && writes(&m),
        "the former standby leads and writes:\n{m}"
    );
    standby.stop().await;
    let _ = PostParams::default();
}

/// `dataFrom.dynamic`: database credentials from OpenBao's database engine
/// (real PostgreSQL) become a Secret that logs in; deleting the Secret
/// revokes its lease and issues a new credential; deleting the
/// ExternalSecret revokes that one.
#[tokio::test(flavor = "current_thread")]
async fn dynamic_database_credentials_follow_the_secret_lifecycle() {
    use crate::support::postgres::Postgres;
    let cluster = TestCluster::get();
    let client = cluster.admin().await;
    crate::crds::install(&client).await;
    let ns = cluster.namespace("es-dynamic").await;
    let bao = tokio::task::spawn_blocking(OpenBao::start)
        .await
        .expect("bao");
    let pg = tokio::task::spawn_blocking(Postgres::start)
        .await
        .expect("pg");
    crate::support::postgres::database_engine(&bao, &pg, "1h", "2h");
    apply(
        &client,
        &ns,
        secret("bao-token", &[("token", bao.root_token())]),
    )
    .await;
    apply(&client, &ns, vault_store("bao", &bao.addr(), "bao-token")).await;
    let ctl = Ctl::start(&client, &ns, &ns, "dynamic-test", false);
    apply(
        &client,
        &ns,
        es(
            "db",
            json!({
                "secretStoreRef": {"name": "bao"},
                "refreshInterval": "2s",
                "dataFrom": [{"dynamic": {"path": "database/creds/app"}}],
                "lease": {"overlap": "1s"}
            }),
        ),
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let es_api: Api<ExternalSecret> = Api::namespaced(client.clone(), &ns);
    let first = wait_secret(&secrets, "db", "Secret db", |_| true).await;
    let login = |s: &Secret| {
        let (u, p) = (
            value(s, "username").expect("username"),
            value(s, "password").expect("password"),
        );
        pg.psql(&u, &p, "select 1").status.success()
    };
    assert!(login(&first), "issued credentials log in to PostgreSQL");
    assert!(first.annotations().contains_key("sealgate.dev/lease-id"));
    wait_ready(&es_api, "db", "True", "SecretSynced").await;
    let st = es_api.get("db").await.expect("es").status.expect("status");
    assert!(st.lease_expires_at.is_some(), "leaseExpiresAt in status");

    // Refreshes reuse the lease: no new credential, no write.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let same = secrets.get("db").await.expect("secret");
    assert_eq!(
        same.metadata.resource_version,
        first.metadata.resource_version
    );

    // Deleting the Secret revokes its credential and issues a new one.
    secrets
        .delete("db", &DeleteParams::default())
        .await
        .expect("delete Secret");
    let old_user = value(&first, "username");
    let second = wait_secret(&secrets, "db", "re-issued Secret", |s| {
        value(s, "username") != old_user
    })
    .await;
    assert!(login(&second), "the new credential logs in");
    wait_for("old credential revoked", || async {
        (!login(&first)).then_some(())
    })
    .await;

    // Deleting the ExternalSecret revokes the current one.
    es_api
        .delete("db", &DeleteParams::default())
        .await
        .expect("delete es");
    wait_for("credential revoked with the ExternalSecret", || async {
        (!login(&second)).then_some(())
    })
    .await;
    ctl.stop().await;
}

/// A name too long for a label value (the owner label would be 75
/// characters) still gets a valid, exact owner label plus the full name in
/// an annotation, and the watch on managed Secrets finds the owner through
/// it: a deleted Secret is recreated long before the next refresh.
#[tokio::test(flavor = "current_thread")]
async fn long_names_get_a_hashed_owner_label_and_secrets_are_repaired() {
    let cluster = TestCluster::get();
    let client = cluster.admin().await;
    crate::crds::install(&client).await;
    let ns = cluster.namespace("es-long").await;
    let bao = tokio::task::spawn_blocking(OpenBao::start)
        .await
        .expect("bao");
    kv_set(&bao, "app/long", &[("v", "long-name-value")]).await;
    apply(
        &client,
        &ns,
        secret("bao-token", &[("token", bao.root_token())]),
    )
    .await;
    apply(&client, &ns, vault_store("bao", &bao.addr(), "bao-token")).await;
    let ctl = Ctl::start(&client, &ns, &ns, "long-names", false);
    let name = format!("payments-{}", "x".repeat(52));
    apply(
        &client,
        &ns,
        es(
            &name,
            json!({
            "secretStoreRef": {"name": "bao", "kind": "SecretStore"},
            "refreshInterval": "1h",
            "data": [{"secretKey": "v", "remoteRef": {"key": "app/long", "property": "v"}}]}),
        ),
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let s = wait_secret(&secrets, &name, "long-named Secret", |_| true).await;
    assert_eq!(value(&s, "v").as_deref(), Some("long-name-value"));
    let label = s
        .labels()
        .get("sealgate.dev/owner")
        .cloned()
        .expect("owner label");
    assert!(label.len() <= 63, "{label}");
    assert!(label.starts_with("ExternalSecret.payments-"), "{label}");
    assert_eq!(
        s.annotations()
            .get("sealgate.dev/owner")
            .map(String::as_str),
        Some(format!("ExternalSecret.{name}").as_str())
    );
    let uid = s.metadata.uid.clone();
    secrets
        .delete(&name, &Default::default())
        .await
        .expect("delete Secret");
    let again = wait_secret(&secrets, &name, "recreated Secret", move |s| {
        s.metadata.uid != uid
    })
    .await;
    assert_eq!(value(&again, "v").as_deref(), Some("long-name-value"));
    ctl.stop().await;
}
