//! `sealgate controller` (and `sealgate gitops`) as a real process (the
//! built binary) against the real kube-apiserver: two replicas with leader
//! election, AWS web identity
//! through moto's STS, store lookups served from watch caches and backend
//! counters that survive reconnects.
//!
//! Each test scopes its controller(s) to its own namespace; waiting uses
//! generous timeouts and no assertion depends on timing.

use std::collections::BTreeMap;
use std::process::Command;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use nix::sys::signal::Signal;
use sealgate::controller::api::{ClusterSecretStore, ExternalSecret, SecretStore};
use serde_json::{Value, json};

use crate::support::cluster::TestCluster;
use crate::support::moto::{Moto, REGION};
use crate::support::openbao::OpenBao;
use crate::support::process::{Service, free_port};
use crate::support::wait_for;

const TM: &str = "sealgate-test";

/// One `sealgate controller` process, logging JSON at TRACE to a file.
struct Proc {
    service: Option<Service>,
    port: u16,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Proc {
    /// Starts a controller watching `ns` (also its own namespace) with
    /// `extra` flags and environment.
    fn start(
        cluster: &TestCluster,
        ns: &str,
        identity: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut args = vec![
            "controller",
            "--namespace",
            ns,
            "--controller-namespace",
            ns,
        ];
        args.extend(["--identity", identity, "--cache-ttl", "0"]);
        args.extend(extra);
        Self::spawn(cluster, &args, env)
    }

    /// Starts `sealgate gitops` watching `ns`, its leader Lease in `ns`.
    fn gitops(cluster: &TestCluster, ns: &str, identity: &str) -> Self {
        let args = [
            "gitops",
            "--namespace",
            ns,
            "--lease-namespace",
            ns,
            "--identity",
            identity,
            "--lease-duration",
            "4",
        ];
        Self::spawn(cluster, &args, &[])
    }

    /// Runs `sealgate <args>` with JSON TRACE logs, a metrics port, the
    /// test cluster's kubeconfig and a private HOME/TMPDIR (the Git cache
    /// defaults under TMPDIR).
    fn spawn(cluster: &TestCluster, args: &[&str], env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("process.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sealgate"));
        cmd.args(args)
            .args(["--log-format", "json", "--log-level", "trace"])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .env("KUBECONFIG", cluster.kubeconfig())
            .env("HOME", dir.path())
            .env("TMPDIR", dir.path())
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .env_remove("SEALGATE_GIT_CACHE")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let name = if args.first() == Some(&"gitops") {
            "sealgate gitops"
        } else {
            "sealgate controller"
        };
        let service = Service::spawn(name, cmd, &log, Signal::SIGTERM);
        Self {
            service: Some(service),
            port,
            log,
            _dir: dir,
        }
    }

    async fn metrics(&self) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.port);
        wait_for("controller /metrics", || async {
            reqwest::get(&url).await.ok()?.text().await.ok()
        })
        .await
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.service.as_ref().expect("running").pid()
    }

    /// SIGKILL: no graceful shutdown, the Lease is not released.
    async fn kill(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid() as i32),
            Signal::SIGKILL,
        );
        let s = self.service.take();
        let _ = tokio::task::spawn_blocking(move || drop(s)).await;
    }

    /// SIGTERM and wait; returns the process's HOME/TMPDIR for checks of
    /// what it left behind.
    async fn stop(mut self) -> tempfile::TempDir {
        let s = self.service.take();
        let _ = tokio::task::spawn_blocking(move || drop(s)).await;
        let placeholder = tempfile::tempdir().expect("tmp");
        std::mem::replace(&mut self._dir, placeholder)
    }

    /// Directories `sealgate-tokens-*` under the process's TMPDIR.
    fn token_dirs(&self) -> Vec<std::path::PathBuf> {
        token_dirs(self._dir.path())
    }
}

fn token_dirs(tmp: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(tmp)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("sealgate-tokens-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Who holds the Lease `name`, if anyone.
async fn lease_holder(leases: &Api<Lease>, name: &str) -> Option<String> {
    leases
        .get_opt(name)
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
}

/// The value of the sample `name{labels}` (exact label text), if present.
fn sample(metrics: &str, series: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

async fn apply<K>(api: &Api<K>, obj: Value)
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = obj["metadata"]["name"].as_str().expect("name").to_owned();
    api.patch(&name, &PatchParams::apply(TM).force(), &Patch::Apply(&obj))
        .await
        .unwrap_or_else(|e| panic!("apply {} {name}: {e}", K::kind(&())));
}

fn es(name: &str, store: Value, key: &str, property: &str) -> Value {
    json!({"apiVersion": "sealgate.dev/v1alpha1", "kind": "ExternalSecret",
           "metadata": {"name": name},
           "spec": {"secretStoreRef": store, "refreshInterval": "1h",
                    "data": [{"secretKey": property, "remoteRef": {"key": key, "property": property}}]}})
}

fn token_secret(token: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bao-token"},
           "stringData": {"token": token}})
}

fn vault_provider(addr: &str, token_ns: Option<&str>) -> Value {
    let mut sel = json!({"name": "bao-token", "key": "token"});
    if let Some(ns) = token_ns {
        sel["namespace"] = json!(ns);
    }
    json!({"vault": {"server": addr, "path": "secret", "version": "v2",
                     "auth": {"tokenSecretRef": sel}}})
}

async fn kv_set(bao: &OpenBao, path: &str, data: &[(&str, &str)]) {
    let map: BTreeMap<&str, &str> = data.iter().copied().collect();
    vaultrs::kv2::set(&bao.client(), "secret", path, &map)
        .await
        .expect("kv2 set");
}

fn value(s: &Secret, key: &str) -> Option<String> {
    s.data
        .as_ref()?
        .get(key)
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
}

async fn wait_value(api: &Api<Secret>, name: &str, key: &str, want: &str) -> Secret {
    wait_for(&format!("Secret {name} with {key}={want}"), || async {
        api.get_opt(name)
            .await
            .ok()
            .flatten()
            .filter(|s| value(s, key).as_deref() == Some(want))
    })
    .await
}

async fn wait_ready(api: &Api<ExternalSecret>, name: &str) {
    wait_for(&format!("ExternalSecret {name} Ready"), || async {
        let es = api.get_opt(name).await.ok().flatten()?;
        es.status?
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
            .then_some(())
    })
    .await;
}

/// Two controller processes with leader election on one apiserver: only
/// the Lease holder reconciles and writes; SIGKILL of the leader (no
/// release) lets the other take over once the Lease expires, and it syncs
/// an ExternalSecret created after the takeover.
#[tokio::test(flavor = "current_thread")]
async fn two_controller_processes_only_the_leader_writes() {
    let cluster = TestCluster::get();
    let client = cluster.admin().await;
    crate::crds::install(&client).await;
    let ns = cluster.namespace("proc-ha").await;
    let bao = tokio::task::spawn_blocking(OpenBao::start)
        .await
        .expect("bao");
    kv_set(&bao, "ha", &[("v", "one")]).await;
    apply(
        &Api::<Secret>::namespaced(client.clone(), &ns),
        token_secret(bao.root_token()),
    )
    .await;
    apply(&Api::<SecretStore>::namespaced(client.clone(), &ns), json!({"apiVersion": "sealgate.dev/v1alpha1", "kind": "SecretStore",
               "metadata": {"name": "bao"}, "spec": {"provider": vault_provider(&bao.addr(), None)}}),
    )
    .await;
    let flags = ["--lease-duration", "4"];
    let a = Proc::start(cluster, &ns, "replica-a", &flags, &[]);
    let b = Proc::start(cluster, &ns, "replica-b", &flags, &[]);
    apply(
        &Api::<ExternalSecret>::namespaced(client.clone(), &ns),
        es("ha", json!({"name": "bao"}), "ha", "v"),
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let written = wait_value(&secrets, "ha", "v", "one").await;

    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let holder = || lease_holder(&leases, "sealgate-controller");
    let first = wait_for("Lease holder", holder).await;
    let (mut leader, standby, standby_id) = match first.as_str() {
        "replica-a" => (a, b, "replica-b"),
        "replica-b" => (b, a, "replica-a"),
        other => panic!("unexpected Lease holder {other:?}"),
    };
    // The Secret was written by server-side apply with the one field
    // manager; the replicas differ only in who holds the Lease.
    let managers: Vec<String> = written
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(managers, ["sealgate"], "one writer: {managers:?}");
    let (ml, ms) = (leader.metrics().await, standby.metrics().await);
    assert_eq!(sample(&ml, "sealgate_leader"), Some(1), "{ml}");
    assert_eq!(sample(&ms, "sealgate_leader"), Some(0), "{ms}");
    assert!(
        sample(&ml, "sealgate_secret_writes_total{kind=\"ExternalSecret\"}").unwrap_or(0) >= 1,
        "the leader wrote:\n{ml}"
    );
    assert!(
        !ms.contains("sealgate_secret_writes_total{kind=")
            && !ms.contains("sealgate_reconciles_total{kind="),
        "the standby neither reconciled nor wrote:\n{ms}"
    );

    // SIGKILL: the Lease is not released; the standby takes it when it
    // expires and syncs what is created afterwards.
    leader.kill().await;
    wait_for("the standby holds the Lease", || async {
        (holder().await.as_deref() == Some(standby_id)).then_some(())
    })
    .await;
    kv_set(&bao, "after", &[("v", "two")]).await;
    apply(
        &Api::<ExternalSecret>::namespaced(client.clone(), &ns),
        es("after", json!({"name": "bao"}), "after", "v"),
    )
    .await;
    wait_value(&secrets, "after", "v", "two").await;
    let m = standby.metrics().await;
    assert_eq!(sample(&m, "sealgate_leader"), Some(1), "{m}");
    assert!(
        sample(&m, "sealgate_secret_writes_total{kind=\"ExternalSecret\"}").unwrap_or(0) >= 1,
        "the new leader wrote:\n{m}"
    );
    standby.stop().await;
}

/// `aws.auth.jwt`: the controller mints a token for the store's
/// ServiceAccount (TokenRequest on the real apiserver), exchanges it at
/// STS (moto) with AssumeRoleWithWebIdentity, and the ExternalSecret
/// becomes a Secret. Neither the token nor the value reaches the logs,
/// and a SecretStore may not name a ServiceAccount of another namespace.
#[tokio::test(flavor = "current_thread")]
async fn aws_web_identity_store_end_to_end() {
    const PLANTED: &str = "PLANTED-irsa-4c1d7e92";
    let cluster = TestCluster::get();
    let client = cluster.admin().await;
    crate::crds::install(&client).await;
    let ns = cluster.namespace("proc-irsa").await;
    let moto = tokio::task::spawn_blocking(Moto::start)
        .await
        .expect("moto");
    aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await)
        .create_secret()
        .name("irsa/app")
        .secret_string(json!({"password": PLANTED}).to_string())
        .send()
        .await
        .expect("create secret");
    let _ = cluster.service_account_token(&ns, "app").await; // creates SA app
    let store = |name: &str, sa: Value| {
        json!({"apiVersion": "sealgate.dev/v1alpha1", "kind": "SecretStore",
               "metadata": {"name": name},
               "spec": {"provider": {"aws": {"service": "SecretsManager", "region": REGION,
                   "endpoint": moto.endpoint(),
                   "auth": {"jwt": {"roleArn": "arn:aws:iam::123456789012:role/app",
                                    "serviceAccountRef": sa}}}}}})
    };
    apply(
        &Api::<SecretStore>::namespaced(client.clone(), &ns),
        store(
            "aws",
            json!({"name": "app", "audiences": ["sts.amazonaws.com"]}),
        ),
    )
    .await;
    apply(
        &Api::<SecretStore>::namespaced(client.clone(), &ns),
        store(
            "foreign",
            json!({"name": "default", "namespace": "kube-system"}),
        ),
    )
    .await;
    let endpoint = moto.endpoint();
    let ctl = Proc::start(
        cluster,
        &ns,
        "irsa-test",
        &["--disable-leader-election"],
        // STS is reached through the SDK's standard endpoint override.
        &[("AWS_ENDPOINT_URL_STS", &endpoint)],
    );
    apply(
        &Api::<ExternalSecret>::namespaced(client.clone(), &ns),
        es("app", json!({"name": "aws"}), "irsa/app", "password"),
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    wait_value(&secrets, "app", "password", PLANTED).await;
    let stores: Api<SecretStore> = Api::namespaced(client.clone(), &ns);
    let reason = |name: &'static str| {
        let stores = stores.clone();
        async move {
            let st = stores.get_opt(name).await.ok().flatten()?.status?;
            let c = st.conditions.into_iter().find(|c| c.type_ == "Ready")?;
            Some((
                c.status,
                c.reason.unwrap_or_default(),
                c.message.unwrap_or_default(),
            ))
        }
    };
    let ok = wait_for("store aws Ready", || reason("aws")).await;
    assert_eq!((ok.0.as_str(), ok.1.as_str()), ("True", "Valid"));
    let refused = wait_for("store foreign refused", || reason("foreign")).await;
    assert_eq!(refused.0, "False");
    assert_eq!(refused.1, "InvalidStoreSpec", "{}", refused.2);

    let log = ctl.log();
    assert!(
        log.contains("store connected"),
        "the store connected:\n{log}"
    );
    assert!(!log.contains(PLANTED), "the value leaked into the logs");
    // Kubernetes ServiceAccount tokens are JWTs: base64url of `{"alg":...`.
    assert!(!log.contains("eyJhbGci"), "a token leaked into the logs");
    let status = serde_json::to_string(
        &Api::<ExternalSecret>::namespaced(client.clone(), &ns)
            .get("app")
            .await
            .expect("es")
            .status,
    )
    .expect("json");
    assert!(!status.contains(PLANTED) && !status.contains("eyJhbGci"));
    // The minted token sits in a private file while the controller runs
    // and is removed when it stops.
    {
        use std::os::unix::fs::PermissionsExt as _;
        let dirs = ctl.token_dirs();
        assert_eq!(dirs.len(), 1, "one token directory: {dirs:?}");
        let mode = |p: &std::path::Path| {
            std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
        };
        assert_eq!(mode(&dirs[0]), 0o700);
        let files: Vec<_> = std::fs::read_dir(&dirs[0])
            .expect("token dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        assert_eq!(mode(&files[0]), 0o600);
    }
    let tmp = ctl.stop().await;
    assert!(
        token_dirs(tmp.path()).is_empty(),
        "token files removed on shutdown"
    );
}

/// Reconciles read stores and namespace labels from watch caches: once
/// the caches are warm, 20 more ExternalSecrets (through a SecretStore and
/// a ClusterSecretStore admitting by namespace label) cause no store or
/// namespace GET. And `sealgate_backend_calls_total` keeps counting across
/// a store reconnect instead of starting again from zero.
#[tokio::test(flavor = "current_thread")]
async fn store_lookups_come_from_caches_and_backend_counters_survive_reconnects() {
    let cluster = TestCluster::get();
    let client = cluster.admin().await;
    crate::crds::install(&client).await;
    let ns = cluster.namespace("proc-cache").await;
    Api::<Namespace>::all(client.clone())
        .patch(
            &ns,
            &PatchParams::apply(TM).force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"sealgate-test/cache": ns}}})),
        )
        .await
        .expect("label namespace");
    let bao = tokio::task::spawn_blocking(OpenBao::start)
        .await
        .expect("bao");
    for i in 0..10 {
        kv_set(&bao, &format!("app/{i}"), &[("v", &format!("value-{i}"))]).await;
    }
    apply(
        &Api::<Secret>::namespaced(client.clone(), &ns),
        token_secret(bao.root_token()),
    )
    .await;
    apply(&Api::<SecretStore>::namespaced(client.clone(), &ns), json!({"apiVersion": "sealgate.dev/v1alpha1", "kind": "SecretStore",
               "metadata": {"name": "bao"}, "spec": {"provider": vault_provider(&bao.addr(), None)}}),
    )
    .await;
    let cluster_store = format!("cache-{ns}");
    apply(&Api::<ClusterSecretStore>::all(client.clone()), json!({"apiVersion": "sealgate.dev/v1alpha1", "kind": "ClusterSecretStore",
               "metadata": {"name": cluster_store},
               "spec": {"provider": vault_provider(&bao.addr(), Some(&ns)),
                        "conditions": [{"namespaceSelector": {"matchLabels": {"sealgate-test/cache": ns}}}]}}),
    )
    .await;
    let ctl = Proc::start(
        cluster,
        &ns,
        "cache-test",
        &["--disable-leader-election"],
        &[],
    );
    let local = json!({"name": "bao"});
    let global = json!({"name": cluster_store, "kind": "ClusterSecretStore"});
    let es_api: Api<ExternalSecret> = Api::namespaced(client.clone(), &ns);
    apply(
        &Api::<ExternalSecret>::namespaced(client.clone(), &ns),
        es("warm-local", local.clone(), "app/0", "v"),
    )
    .await;
    apply(
        &Api::<ExternalSecret>::namespaced(client.clone(), &ns),
        es("warm-global", global.clone(), "app/0", "v"),
    )
    .await;
    wait_ready(&es_api, "warm-local").await;
    wait_ready(&es_api, "warm-global").await;
    let m0 = ctl.metrics().await;
    let api0 = sample(&m0, "sealgate_store_lookups_total{source=\"api\"}").expect("lookups metric");
    let cache0 = sample(&m0, "sealgate_store_lookups_total{source=\"cache\"}").unwrap_or(0);

    for i in 0..10 {
        apply(
            &Api::<ExternalSecret>::namespaced(client.clone(), &ns),
            es(&format!("l{i}"), local.clone(), &format!("app/{i}"), "v"),
        )
        .await;
        apply(
            &Api::<ExternalSecret>::namespaced(client.clone(), &ns),
            es(&format!("g{i}"), global.clone(), &format!("app/{i}"), "v"),
        )
        .await;
    }
    for i in 0..10 {
        wait_ready(&es_api, &format!("l{i}")).await;
        wait_ready(&es_api, &format!("g{i}")).await;
    }
    let m1 = ctl.metrics().await;
    let api1 = sample(&m1, "sealgate_store_lookups_total{source=\"api\"}").unwrap_or(0);
    let cache1 = sample(&m1, "sealgate_store_lookups_total{source=\"cache\"}").unwrap_or(0);
    assert_eq!(
        api1, api0,
        "no store or namespace GET once the caches are warm:\n{m1}"
    );
    // 20 store lookups plus 10 namespace-label lookups, at least.
    assert!(
        cache1 >= cache0 + 30,
        "lookups served from cache: {cache0} -> {cache1}"
    );

    // Reconnect the store (new generation: the store reconciler logs in
    // again with a new connection), then read through it again.
    let calls_series = format!("sealgate_backend_calls_total{{store=\"{ns}/bao\"}}");
    let before = sample(&m1, &calls_series).expect("calls of the store");
    assert!(
        before >= 10,
        "each distinct key read at least once: {before}\n{m1}"
    );
    let connects = |log: &str| {
        log.lines()
            .filter(|l| l.contains("store connected") && l.contains(&format!("{ns}/bao")))
            .count()
    };
    let connected = connects(&ctl.log());
    apply(
        &Api::<SecretStore>::namespaced(client.clone(), &ns),
        json!({"apiVersion": "sealgate.dev/v1alpha1", "kind": "SecretStore",
               "metadata": {"name": "bao"}, "spec": {"provider": vault_provider(&bao.addr(), None),
                                                     "limits": {"requestsPerSecond": 1000.0}}}),
    )
    .await;
    wait_for("the store reconnected", || async {
        (connects(&ctl.log()) > connected).then_some(())
    })
    .await;
    for i in 0..3 {
        apply(
            &Api::<ExternalSecret>::namespaced(client.clone(), &ns),
            es(
                &format!("after{i}"),
                local.clone(),
                &format!("app/{i}"),
                "v",
            ),
        )
        .await;
    }
    for i in 0..3 {
        wait_ready(&es_api, &format!("after{i}")).await;
    }
    let m2 = ctl.metrics().await;
    let after = sample(&m2, &calls_series).expect("calls of the store");
    assert!(
        after >= before + 3,
        "backend calls keep counting across the reconnect: {before} -> {after}\n{m2}"
    );
    ctl.stop().await;
}

/// Two `sealgate gitops` processes: only the holder of the Lease
/// `sealgate-gitops` reconciles; after SIGKILL of the leader the standby
/// takes the Lease and applies the next commit. The controller's Lease is
/// a different one, so the two kinds of process never block each other.
#[tokio::test(flavor = "current_thread")]
async fn two_gitops_processes_only_the_leader_reconciles() {
    use crate::gitops::{Repo, cm_value, configmap, gitsync};
    use kube::api::PostParams;
    use sealgate::gitops::spec::GitSync;

    let cluster = TestCluster::get();
    let client = cluster.admin().await;
    crate::crds::install(&client).await;
    let ns = cluster.namespace("gitops-ha").await;
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = Repo::new(tmp.path());
    repo.write("deploy/config.yaml", &configmap("settings", "one"));
    repo.commit("one");
    Api::<GitSync>::namespaced(client.clone(), &ns)
        .create(
            &PostParams::default(),
            &gitsync(&ns, &repo.url(), json!({"interval": "1s"})),
        )
        .await
        .expect("create GitSync");
    let a = Proc::gitops(cluster, &ns, "gitops-a");
    let b = Proc::gitops(cluster, &ns, "gitops-b");
    wait_for("ConfigMap settings=one", || async {
        (cm_value(&client, &ns, "settings").await.as_deref() == Some("one")).then_some(())
    })
    .await;

    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let holder = || lease_holder(&leases, "sealgate-gitops");
    let first = wait_for("gitops Lease holder", holder).await;
    let (mut leader, standby, standby_id) = match first.as_str() {
        "gitops-a" => (a, b, "gitops-b"),
        "gitops-b" => (b, a, "gitops-a"),
        other => panic!("unexpected Lease holder {other:?}"),
    };
    let (ml, ms) = (leader.metrics().await, standby.metrics().await);
    assert_eq!(sample(&ml, "sealgate_gitsync_leader"), Some(1), "{ml}");
    assert_eq!(sample(&ms, "sealgate_gitsync_leader"), Some(0), "{ms}");
    assert!(
        sample(&ml, "sealgate_gitsync_reconciles_total{result=\"ok\"}").unwrap_or(0) >= 1,
        "the leader reconciled:\n{ml}"
    );
    assert!(
        !ms.contains("sealgate_gitsync_reconciles_total{"),
        "the standby reconciled nothing:\n{ms}"
    );
    assert!(
        leases
            .get_opt("sealgate-controller")
            .await
            .expect("get")
            .is_none(),
        "the GitOps loop does not take the controller's Lease"
    );

    leader.kill().await;
    wait_for("the standby holds the gitops Lease", || async {
        (holder().await.as_deref() == Some(standby_id)).then_some(())
    })
    .await;
    repo.write("deploy/config.yaml", &configmap("settings", "two"));
    repo.commit("two");
    wait_for("ConfigMap settings=two from the new leader", || async {
        (cm_value(&client, &ns, "settings").await.as_deref() == Some("two")).then_some(())
    })
    .await;
    let m = standby.metrics().await;
    assert_eq!(sample(&m, "sealgate_gitsync_leader"), Some(1), "{m}");
    // A clean stop releases the Lease (no holder left behind).
    standby.stop().await;
    wait_for("gitops Lease released", || async {
        holder().await.is_none().then_some(())
    })
    .await;
}
