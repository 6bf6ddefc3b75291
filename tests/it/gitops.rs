//! GitSync end to end: real Git repositories made with the `git` CLI in temp
//! dirs (served over file:// and over HTTP by `git http-backend`), a real
//! sops-encrypted Secret, and the real kube-apiserver. Every refusal is
//! checked for what it names (file:line, rule) and for what it must never
//! contain (the planted value), in status, the audit record and TRACE logs.

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use kube::{Client, ResourceExt};
use sealgate::gitops::spec::{GitSync, GitSyncStatus};
use sealgate::gitops::sync::{self, DryRunCache, SyncContext, SyncReport};
use serde_json::json;

use crate::sops::Lab;
use crate::support::cluster::TestCluster;
use crate::support::tools;

const PLAIN_PW: &str = "PLANTED-gitops-pw-7f3a91c2";
const SOPS_PW: &str = "PLANTED-gitops-sops-4be02d";
const DRIFT_PW: &str = "PLANTED-gitops-drift-93ce1a";
/// A GitHub-token-shaped value (36 chars after the prefix) so the gate's
/// token detector fires; built at runtime so this file holds no token.
fn api_token() -> String {
    format!("ghp_{}", "Zq8vK2mW9xR4tY7uP3sD6fG1hJ5kL0nB8cV2")
}

/// A Git repository driven with the real `git` CLI.
pub(crate) struct Repo {
    pub(crate) dir: PathBuf,
}

impl Repo {
    pub(crate) fn new(root: &Path) -> Self {
        let dir = root.join("repo");
        std::fs::create_dir_all(dir.join("deploy")).expect("repo dir");
        let r = Repo { dir };
        r.git(&["init", "-q", "-b", "main"]);
        r
    }
    pub(crate) fn git(&self, args: &[&str]) -> String {
        let out = tools::run_ok(
            Command::new("git")
                .current_dir(&self.dir)
                .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
                .args(args),
            None,
        );
        String::from_utf8(out).expect("utf8").trim().to_owned()
    }
    pub(crate) fn write(&self, rel: &str, text: &str) {
        let p = self.dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    fn remove(&self, rel: &str) {
        std::fs::remove_file(self.dir.join(rel)).expect("remove");
    }
    pub(crate) fn commit(&self, msg: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", msg]);
        self.git(&["rev-parse", "HEAD"])
    }
    pub(crate) fn url(&self) -> String {
        format!("file://{}", self.dir.display())
    }
}

pub(crate) fn gitsync(ns: &str, url: &str, extra: serde_json::Value) -> GitSync {
    let mut spec = json!({"source": {"url": url, "ref": {"branch": "main"}}, "path": "deploy"});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({
        "apiVersion": "sealgate.dev/v1alpha1", "kind": "GitSync",
        "metadata": {"name": "apps", "namespace": ns}, "spec": spec,
    }))
    .expect("GitSync")
}

pub(crate) struct Harness {
    pub(crate) client: Client,
    pub(crate) ctx: SyncContext,
    pub(crate) cache: DryRunCache,
    pub(crate) status: GitSyncStatus,
}

impl Harness {
    pub(crate) async fn new(cluster: &TestCluster, tmp: &Path) -> Self {
        let client = cluster.admin().await;
        Harness {
            ctx: SyncContext {
                client: client.clone(),
                config: None,
                cache_dir: tmp.join("git-cache"),
                dry_run: false,
                force: true,
                progress: None,
            },
            client,
            cache: DryRunCache::new(),
            status: GitSyncStatus::default(),
        }
    }
    pub(crate) async fn sync(&mut self, gs: &GitSync) -> SyncReport {
        let (st, report) = sync::reconcile(gs, &self.status, &self.ctx, &mut self.cache).await;
        self.status = st;
        report
    }
    pub(crate) fn ready(&self) -> (String, String, String) {
        let c = self
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .expect("Ready condition");
        (
            c.status.clone(),
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        )
    }
}

fn deployment(name: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: app\n        image: registry.example.invalid/{name}:1\n"
    )
}

pub(crate) fn configmap(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  mode: {value}\n")
}

pub(crate) async fn cm_value(client: &Client, ns: &str, name: &str) -> Option<String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    api.get_opt(name)
        .await
        .expect("get ConfigMap")
        .and_then(|c| c.data?.get("mode").cloned())
}

fn encrypt_in_repo(lab: &Lab, repo: &Repo, rel: &str, plain: &str) {
    repo.write(rel, plain);
    let enc = tools::run_ok(
        Command::new(tools::sops_go())
            .current_dir(&repo.dir)
            .env_remove("SOPS_AGE_KEY")
            .env_remove("SOPS_AGE_KEY_FILE")
            .args(["encrypt", "--age", lab.recipient(0)])
            .args(["--encrypted-regex", "^(data|stringData)$"])
            .arg(repo.dir.join(rel)),
        None,
    );
    std::fs::write(repo.dir.join(rel), enc).expect("write encrypted");
}

#[tokio::test(flavor = "current_thread")]
async fn revision_with_crd_cr_and_sops_secret_syncs_and_plaintext_is_refused_whole() {
    let (buf, _guard) = crate::support::logs::capture();

    let cluster = TestCluster::get();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::new(cluster, tmp.path()).await;
    let ns = cluster.namespace("gitops-main").await;
    let lab = Lab::new(1);
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &ns);
    secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: kube::api::ObjectMeta {
                    name: Some("sops-age".into()),
                    ..Default::default()
                },
                data: Some(
                    [(
                        "identity.agekey".to_owned(),
                        ByteString(std::fs::read(&lab.keys[0].0).expect("identity")),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
        )
        .await
        .expect("key Secret");

    let repo = Repo::new(tmp.path());
    let group = format!("{ns}.example.com");
    repo.write(
        "deploy/web.yaml",
        &format!("{}---\n{}", deployment("web"), deployment("worker")),
    );
    repo.write("deploy/config.yaml", &configmap("settings", "blue"));
    repo.write(
        "deploy/crd.yaml",
        &format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.{group}\nspec:\n  group: {group}\n  scope: Namespaced\n  names: {{plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec:\n            type: object\n            properties:\n              size: {{type: integer}}\n"
        ),
    );
    repo.write(
        "deploy/widget.yaml",
        &format!("apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: 3\n"),
    );
    encrypt_in_repo(
        &lab,
        &repo,
        "deploy/db.enc.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\nstringData:\n  password: {SOPS_PW}\n"
        ),
    );
    let first = repo.commit("first");
    let gs = gitsync(
        &ns,
        &repo.url(),
        json!({"decryption": {"ageKeySecretRef": {"name": "sops-age"}}}),
    );

    let report = h.sync(&gs).await;
    assert!(
        report.ok,
        "first sync failed: {} {}",
        report.reason, report.message
    );
    assert_eq!(h.ready().0, "True");
    assert!(h.ready().2.contains("Applied revision"), "{:?}", h.ready());
    assert_eq!(
        h.status.last_applied_revision.as_deref(),
        Some(first.as_str())
    );
    assert_eq!(h.status.inventory.len(), 6, "{:?}", h.status.inventory);
    assert_eq!(h.status.history.len(), 1);
    assert!(
        h.status
            .conditions
            .iter()
            .any(|c| c.type_ == "SecretsSafe" && c.status == "True")
    );
    let db = secrets.get("db").await.expect("decrypted Secret");
    assert_eq!(
        db.data.expect("data")["password"].0,
        SOPS_PW.as_bytes(),
        "the Secret holds the decrypted value"
    );
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), &ns);
    let web = deployments.get("web").await.expect("Deployment");
    assert_eq!(
        web.labels()
            .get("sealgate.dev/gitsync-name")
            .map(String::as_str),
        Some("apps")
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(
        h.client.clone(),
        &ns,
        &ApiResource {
            group: group.clone(),
            version: "v1".into(),
            api_version: format!("{group}/v1"),
            kind: "Widget".into(),
            plural: "widgets".into(),
        },
    );
    assert_eq!(widgets.get("w1").await.expect("CR").data["spec"]["size"], 3);

    // The same revision again: nothing written.
    let report = h.sync(&gs).await;
    assert!(report.ok, "{}", report.message);
    assert!(
        report.applied.is_empty(),
        "no-change sync wrote {:?}",
        report.applied
    );

    // A commit adding a plaintext Secret (and changing the ConfigMap) is
    // refused whole.
    repo.write("deploy/config.yaml", &configmap("settings", "green"));
    repo.write(
        "deploy/leak.yaml",
        &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: leak\nstringData:\n  password: {PLAIN_PW}\n"),
    );
    let bad = repo.commit("plaintext");
    let report = h.sync(&gs).await;
    assert!(!report.ok);
    assert_eq!(report.reason, "PlaintextSecretRefused");
    let (ready, reason, message) = h.ready();
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "PlaintextSecretRefused")
    );
    assert!(message.contains("deploy/leak.yaml:6"), "{message}");
    assert!(message.contains("k8s/secret-plaintext"), "{message}");
    assert!(message.contains("stringData.password"), "{message}");
    assert!(
        h.status
            .conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True")
    );
    assert_eq!(
        h.status.last_applied_revision.as_deref(),
        Some(first.as_str())
    );
    assert_eq!(
        h.status.last_attempted_revision.as_deref(),
        Some(bad.as_str())
    );
    assert_eq!(
        cm_value(&h.client, &ns, "settings").await.as_deref(),
        Some("blue")
    );
    assert!(secrets.get_opt("leak").await.expect("get").is_none());
    let audit = report.audit.to_string();
    assert!(
        audit.contains("deploy/leak.yaml:6") && audit.contains("PlaintextSecretRefused"),
        "{audit}"
    );

    // Separately: an API token in a ConfigMap.
    repo.remove("deploy/leak.yaml");
    repo.write(
        "deploy/config.yaml",
        &format!(
            "{}  token: {}\n",
            configmap("settings", "green"),
            api_token()
        ),
    );
    repo.commit("token in configmap");
    let report = h.sync(&gs).await;
    assert_eq!(
        report.reason, "PlaintextSecretRefused",
        "{}",
        report.message
    );
    assert!(
        report.message.contains("deploy/config.yaml:7"),
        "{}",
        report.message
    );
    assert_eq!(
        cm_value(&h.client, &ns, "settings").await.as_deref(),
        Some("blue")
    );

    // Fixed: applies.
    repo.write("deploy/config.yaml", &configmap("settings", "green"));
    let good = repo.commit("fixed");
    let report = h.sync(&gs).await;
    assert!(report.ok, "{}", report.message);
    assert_eq!(
        h.status.last_applied_revision.as_deref(),
        Some(good.as_str())
    );
    assert_eq!(
        cm_value(&h.client, &ns, "settings").await.as_deref(),
        Some("green")
    );

    // Drift on the decrypted Secret: attributed to the field manager by key
    // name only; neither the drifted nor the decrypted value (nor their
    // base64) reaches the report, audit, status or logs.
    let drift_b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(DRIFT_PW)
    };
    secrets
        .patch(
            "db",
            &PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({"stringData": {"password": DRIFT_PW}})),
        )
        .await
        .expect("out-of-band Secret edit");
    let report = h.sync(&gs).await;
    assert!(report.ok, "{}", report.message);
    let db_id = format!("{ns}_db__Secret");
    let rec = report
        .drift
        .iter()
        .find(|r| r.id == db_id)
        .unwrap_or_else(|| panic!("Secret drift not reported: {:?}", report.drift));
    assert_eq!(rec.managers, ["kubectl-edit"]);
    assert_eq!(rec.paths, ["/data/password"]);
    let db = secrets.get("db").await.expect("Secret");
    assert_eq!(db.data.expect("data")["password"].0, SOPS_PW.as_bytes());
    let report_text = format!("{} {:?} {:?}", report.audit, report.drift, report.plan);
    for planted in [DRIFT_PW, drift_b64.as_str(), SOPS_PW] {
        assert!(!report_text.contains(planted), "the report holds a value");
    }

    let status_text = serde_json::to_string(&h.status).expect("status json");
    let logs = buf.text();
    for planted in [PLAIN_PW, SOPS_PW, &api_token(), DRIFT_PW, &drift_b64] {
        assert!(!logs.contains(planted), "a log line holds a planted value");
        assert!(
            !status_text.contains(planted),
            "status holds a planted value"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn drift_is_reverted_in_correct_mode_and_reported_in_detect_mode() {
    let cluster = TestCluster::get();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::new(cluster, tmp.path()).await;
    let ns = cluster.namespace("gitops-drift").await;
    let repo = Repo::new(tmp.path());
    repo.write("deploy/config.yaml", &configmap("settings", "blue"));
    repo.commit("one");
    let correct = gitsync(&ns, &repo.url(), json!({}));
    assert!(h.sync(&correct).await.ok);

    let api: Api<ConfigMap> = Api::namespaced(h.client.clone(), &ns);
    let edit = || async {
        api.patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"mode": "red"}})),
        )
        .await
        .expect("kubectl-style patch");
    };
    edit().await;
    let report = h.sync(&correct).await;
    assert!(report.ok, "{}", report.message);
    assert_eq!(report.drifted.len(), 1, "{:?}", report.plan);
    assert_eq!(
        cm_value(&h.client, &ns, "settings").await.as_deref(),
        Some("blue")
    );

    let detect = gitsync(&ns, &repo.url(), json!({"drift": {"mode": "Detect"}}));
    edit().await;
    let report = h.sync(&detect).await;
    assert!(report.ok, "{}", report.message);
    assert_eq!(report.drifted.len(), 1);
    assert!(report.applied.is_empty());
    assert_eq!(
        cm_value(&h.client, &ns, "settings").await.as_deref(),
        Some("red")
    );
    assert!(
        h.status
            .conditions
            .iter()
            .any(|c| c.type_ == "Drifted" && c.status == "True"),
        "{:?}",
        h.status.conditions
    );

    // An ignored field is not drift.
    let ignoring = gitsync(
        &ns,
        &repo.url(),
        json!({"drift": {"mode": "Detect", "ignore": [{"paths": ["/data/mode"], "target": {"kind": "ConfigMap"}}]}}),
    );
    h.cache.clear();
    let report = h.sync(&ignoring).await;
    assert!(report.drifted.is_empty(), "{:?}", report.drifted);
}

#[tokio::test(flavor = "current_thread")]
async fn prune_deletes_removed_files_and_refuses_mass_or_empty_deletes() {
    let cluster = TestCluster::get();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::new(cluster, tmp.path()).await;
    let ns = cluster.namespace("gitops-prune").await;
    let repo = Repo::new(tmp.path());
    for i in 0..5 {
        repo.write(
            &format!("deploy/c{i}.yaml"),
            &configmap(&format!("c{i}"), "x"),
        );
    }
    repo.commit("five");
    let gs = gitsync(&ns, &repo.url(), json!({}));
    assert!(h.sync(&gs).await.ok);

    // Removing one file deletes its object.
    repo.remove("deploy/c4.yaml");
    repo.commit("drop c4");
    let report = h.sync(&gs).await;
    assert!(report.ok, "{}", report.message);
    assert_eq!(report.pruned.len(), 1);
    assert!(cm_value(&h.client, &ns, "c4").await.is_none());

    // An object that lost our labels is never deleted.
    let api: Api<ConfigMap> = Api::namespaced(h.client.clone(), &ns);
    api.patch(
        "c3",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"sealgate.dev/gitsync-name": null}}})),
    )
    .await
    .expect("unlabel");
    repo.remove("deploy/c3.yaml");
    repo.commit("drop c3");
    let report = h.sync(&gs).await;
    assert!(report.ok, "{}", report.message);
    assert!(report.pruned.is_empty());
    assert_eq!(cm_value(&h.client, &ns, "c3").await.as_deref(), Some("x"));

    // Deleting most of the inventory is refused.
    repo.remove("deploy/c0.yaml");
    repo.remove("deploy/c1.yaml");
    let most = repo.commit("drop most");
    let report = h.sync(&gs).await;
    assert_eq!(report.reason, "PruneBlocked", "{}", report.message);
    assert!(report.message.contains("sealgate.dev/prune-approved"));
    assert_eq!(cm_value(&h.client, &ns, "c0").await.as_deref(), Some("x"));

    // Acknowledged for this commit: allowed.
    let mut approved = gs.clone();
    approved.metadata.annotations =
        Some([("sealgate.dev/prune-approved".to_owned(), most.clone())].into());
    let report = h.sync(&approved).await;
    assert!(report.ok, "{}", report.message);
    assert_eq!(report.pruned.len(), 2);

    // Emptying the path is refused.
    repo.remove("deploy/c2.yaml");
    repo.write("deploy/README.yaml", "# nothing here\n");
    repo.commit("empty");
    let report = h.sync(&gs).await;
    assert_eq!(report.reason, "PruneBlocked", "{}", report.message);
    assert_eq!(cm_value(&h.client, &ns, "c2").await.as_deref(), Some("x"));
}

#[tokio::test(flavor = "current_thread")]
async fn immutable_field_fails_cleanly_without_opt_in_and_recreates_with_it() {
    let cluster = TestCluster::get();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::new(cluster, tmp.path()).await;
    let ns = cluster.namespace("gitops-immutable").await;
    let repo = Repo::new(tmp.path());
    let frozen = |v: &str, annotated: bool| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: frozen\n{}immutable: true\ndata:\n  mode: {v}\n",
            if annotated {
                "  annotations: {sealgate.dev/recreate: enabled}\n"
            } else {
                ""
            }
        )
    };
    repo.write("deploy/frozen.yaml", &frozen("one", false));
    repo.commit("one");
    let gs = gitsync(&ns, &repo.url(), json!({}));
    assert!(h.sync(&gs).await.ok);
    let api: Api<ConfigMap> = Api::namespaced(h.client.clone(), &ns);
    let uid = api.get("frozen").await.expect("cm").uid();

    repo.write("deploy/frozen.yaml", &frozen("two", false));
    repo.commit("two");
    let report = h.sync(&gs).await;
    assert_eq!(report.reason, "ImmutableField", "{}", report.message);
    assert!(
        report.message.contains("sealgate.dev/recreate"),
        "{}",
        report.message
    );
    let still = api.get("frozen").await.expect("not deleted");
    assert_eq!(still.uid(), uid);
    assert_eq!(
        cm_value(&h.client, &ns, "frozen").await.as_deref(),
        Some("one")
    );

    repo.write("deploy/frozen.yaml", &frozen("two", true));
    repo.commit("two, opted in");
    let report = h.sync(&gs).await;
    assert!(report.ok, "{}", report.message);
    let now = api.get("frozen").await.expect("recreated");
    assert_ne!(now.uid(), uid, "recreated");
    assert_eq!(
        cm_value(&h.client, &ns, "frozen").await.as_deref(),
        Some("two")
    );
}

/// `sealgate.dev/decrypt: disabled`: a sops-encrypted custom resource that
/// another controller decrypts is applied as committed (ciphertext and
/// `sops` metadata, no key needed); without the annotation it is refused
/// naming the way out; on a Secret the annotation is refused.
#[tokio::test(flavor = "current_thread")]
async fn decrypt_disabled_passes_custom_resources_through_encrypted() {
    let cluster = TestCluster::get();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::new(cluster, tmp.path()).await;
    let ns = cluster.namespace("gitops-passthrough").await;
    let lab = Lab::new(1);
    let group = format!("{ns}.example.com");
    let repo = Repo::new(tmp.path());
    repo.write(
        "deploy/crd.yaml",
        &format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: vaulted.{group}\nspec:\n  group: {group}\n  scope: Namespaced\n  names: {{plural: vaulted, singular: vaulted, kind: Vaulted}}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}\n"
        ),
    );
    let cr = |annotated: bool| {
        format!(
            "apiVersion: {group}/v1\nkind: Vaulted\nmetadata:\n  name: v1\n{}data:\n  password: {SOPS_PW}\n",
            if annotated {
                "  annotations: {sealgate.dev/decrypt: disabled}\n"
            } else {
                ""
            }
        )
    };
    encrypt_in_repo(&lab, &repo, "deploy/vaulted.enc.yaml", &cr(false));
    repo.commit("encrypted CR, not annotated");
    let gs = gitsync(&ns, &repo.url(), json!({}));
    let report = h.sync(&gs).await;
    assert_eq!(report.reason, "DecryptionFailed", "{}", report.message);
    assert!(
        report.message.contains("deploy/vaulted.enc.yaml")
            && report.message.contains("sealgate.dev/decrypt: disabled"),
        "{}",
        report.message
    );

    encrypt_in_repo(&lab, &repo, "deploy/vaulted.enc.yaml", &cr(true));
    repo.commit("encrypted CR, passes through");
    let report = h.sync(&gs).await;
    assert!(report.ok, "{} {}", report.reason, report.message);
    let res = ApiResource {
        group: group.clone(),
        version: "v1".into(),
        api_version: format!("{group}/v1"),
        kind: "Vaulted".into(),
        plural: "vaulted".into(),
    };
    let live = Api::<DynamicObject>::namespaced_with(h.client.clone(), &ns, &res)
        .get("v1")
        .await
        .expect("the CR was applied");
    let text = serde_json::to_string(&live.data).expect("json");
    assert!(text.contains("ENC[AES256_GCM"), "still encrypted: {text}");
    assert!(live.data.get("sops").is_some(), "sops metadata kept");
    assert!(!text.contains(SOPS_PW), "never decrypted");

    // On a Secret the annotation is refused: nothing would decrypt it.
    encrypt_in_repo(
        &lab,
        &repo,
        "deploy/db.enc.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  annotations: {{sealgate.dev/decrypt: disabled}}\nstringData:\n  password: {SOPS_PW}\n"
        ),
    );
    repo.commit("encrypted Secret marked pass-through");
    let report = h.sync(&gs).await;
    assert_eq!(report.reason, "DecryptionFailed", "{}", report.message);
    assert!(
        report.message.contains("deploy/db.enc.yaml"),
        "{}",
        report.message
    );
    assert!(!report.message.contains(SOPS_PW));
}

/// `spec.timeout` bounds applying, not only the health wait: a CRD whose
/// kind clashes with an existing one is never Established, so its stage
/// never settles and the 3 s budget runs out (`ApplyTimeout`, naming the
/// file) long before the stage's own 30 s limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_bounds_applying_a_stage_that_never_settles() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let cluster = TestCluster::get();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::new(cluster, tmp.path()).await;
    let ns = cluster.namespace("gitops-timeout").await;
    let group = format!("{ns}.example.com");
    let crd = |plural: &str, kind: &str| {
        format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {plural}.{group}\nspec:\n  group: {group}\n  scope: Namespaced\n  names: {{plural: {plural}, kind: {kind}}}\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      schema: {{openAPIV3Schema: {{type: object}}}}\n"
        )
    };
    let crds: Api<CustomResourceDefinition> = Api::all(h.client.clone());
    let existing: CustomResourceDefinition =
        serde_saphyr::from_str(&crd("widgets", "Widget")).expect("CRD");
    crds.create(&PostParams::default(), &existing)
        .await
        .expect("create the first CRD");
    let repo = Repo::new(tmp.path());
    // Same kind, other plural: NamesAccepted=False, never Established.
    repo.write("deploy/crd.yaml", &crd("gizmos", "Widget"));
    repo.commit("clashing CRD");
    let gs = gitsync(
        &ns,
        &repo.url(),
        json!({"timeout": "3s", "prune": {"enabled": false}}),
    );
    let report = h.sync(&gs).await;
    assert_eq!(report.reason, "ApplyTimeout", "{}", report.message);
    assert!(
        report.message.contains("deploy/crd.yaml"),
        "{}",
        report.message
    );
    assert!(report.message.contains("3s"), "{}", report.message);
    for name in [format!("widgets.{group}"), format!("gizmos.{group}")] {
        let _ = crds.delete(&name, &Default::default()).await;
    }
    // A zero budget is refused up front.
    let zero = gitsync(&ns, &repo.url(), json!({"timeout": "0s"}));
    let report = h.sync(&zero).await;
    assert!(!report.ok);
    assert!(report.message.contains("timeout"), "{}", report.message);
}

/// `git http-backend` behind a tiny axum CGI bridge on 127.0.0.1 that
/// demands a bearer token. Returns the base URL. (gix sends basic-auth
/// passwords only over TLS, and its reqwest backend takes no custom CA, so
/// the credential path is tested with a bearer token over loopback http.)
async fn serve_git_http(root: PathBuf, token: &'static str) -> String {
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, Response, StatusCode};
    let expected = format!("Bearer {token}");
    let app = axum::Router::new().fallback(move |req: Request<Body>| {
        let root = root.clone();
        let expected = expected.clone();
        async move {
            let auth = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if auth != expected {
                return Response::builder()
                    .status(StatusCode::UNAUTHORIZED)
                    .header("WWW-Authenticate", "Basic realm=\"git\"")
                    .body(Body::empty())
                    .expect("response");
            }
            let path = req.uri().path().to_owned();
            let query = req.uri().query().unwrap_or("").to_owned();
            let method = req.method().to_string();
            let ctype = req
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let proto = req
                .headers()
                .get("git-protocol")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let body = to_bytes(req.into_body(), 64 << 20).await.expect("body");
            let out = tokio::task::spawn_blocking(move || {
                use std::io::Write;
                let mut child = Command::new("git")
                    .arg("http-backend")
                    .env("GIT_PROJECT_ROOT", &root)
                    .env("GIT_HTTP_EXPORT_ALL", "1")
                    .env("PATH_INFO", &path)
                    .env("QUERY_STRING", &query)
                    .env("REQUEST_METHOD", &method)
                    .env("CONTENT_TYPE", &ctype)
                    .env("CONTENT_LENGTH", body.len().to_string())
                    .env("GIT_PROTOCOL", &proto)
                    .env("REMOTE_USER", "t")
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .expect("git http-backend");
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(&body)
                    .expect("write body");
                child.wait_with_output().expect("cgi output").stdout
            })
            .await
            .expect("cgi task");
            let split = out.windows(4).position(|w| w == b"\r\n\r\n");
            let (head, rest) = match split {
                Some(i) => (&out[..i], &out[i + 4..]),
                None => (&out[..0], &out[..]),
            };
            let mut resp = Response::builder();
            for line in String::from_utf8_lossy(head).lines() {
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("status") {
                        let code = v.trim().split(' ').next().unwrap_or("200");
                        resp = resp.status(code.parse::<u16>().unwrap_or(200));
                    } else {
                        resp = resp.header(k.trim(), v.trim());
                    }
                }
            }
            resp.body(Body::from(rest.to_vec())).expect("response")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_over_http_with_credentials_and_a_wrong_ref_fails_cleanly() {
    let cluster = TestCluster::get();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::new(cluster, tmp.path()).await;
    let ns = cluster.namespace("gitops-http").await;
    let repo = Repo::new(tmp.path());
    repo.write("deploy/config.yaml", &configmap("settings", "http"));
    let head = repo.commit("one");
    let base = serve_git_http(tmp.path().to_path_buf(), "PLANTED-git-token-19ab").await;
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &ns);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "git-auth"},
                "stringData": {"bearerToken": "PLANTED-git-token-19ab"},
            }))
            .expect("secret"),
        )
        .await
        .expect("auth Secret");
    let url = format!("{base}/repo");
    let gs = gitsync(&ns, &url, json!({}));
    let mut with_auth = gs.clone();
    with_auth.spec.source.secret_ref = Some(sealgate::gitops::spec::LocalRef {
        name: "git-auth".into(),
    });

    let report = h.sync(&gs).await;
    assert!(!report.ok, "no credentials must fail");
    assert_eq!(report.reason, "FetchFailed", "{}", report.message);

    let report = h.sync(&with_auth).await;
    assert!(report.ok, "{}: {}", report.reason, report.message);
    assert_eq!(
        h.status.last_applied_revision.as_deref(),
        Some(head.as_str())
    );
    assert_eq!(
        cm_value(&h.client, &ns, "settings").await.as_deref(),
        Some("http")
    );

    let mut wrong = with_auth.clone();
    wrong.spec.source.git_ref = Some(sealgate::gitops::spec::GitRef {
        branch: Some("does-not-exist".into()),
        ..Default::default()
    });
    let report = h.sync(&wrong).await;
    assert_eq!(report.reason, "RefNotFound", "{}", report.message);
    assert!(
        report.message.contains("branch does-not-exist"),
        "{}",
        report.message
    );
    assert_eq!(
        h.status.last_applied_revision.as_deref(),
        Some(head.as_str())
    );
    let text = serde_json::to_string(&h.status).expect("json");
    assert!(!text.contains("PLANTED-git-token"));
}

#[tokio::test(flavor = "current_thread")]
async fn sync_once_cli_applies_and_diff_writes_nothing() {
    let cluster = TestCluster::get();
    let tmp = tempfile::tempdir().expect("tempdir");
    let client = cluster.admin().await;
    let ns = cluster.namespace("gitops-cli").await;
    let repo = Repo::new(tmp.path());
    repo.write("deploy/config.yaml", &configmap("settings", "cli"));
    repo.commit("one");
    let file = tmp.path().join("sync.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: sealgate.dev/v1alpha1\nkind: GitSync\nmetadata: {{name: cli, namespace: {ns}}}\nspec:\n  source:\n    url: {}\n    ref: {{branch: main}}\n  path: deploy\n",
            repo.url()
        ),
    )
    .expect("write sync.yaml");
    let run = |diff: bool| {
        let mut c = assert_cmd::Command::cargo_bin("sealgate").expect("binary");
        c.env("KUBECONFIG", cluster.kubeconfig())
            .env("SEALGATE_GIT_CACHE", tmp.path().join("cache"))
            .args(["sync", "--once", "-f"])
            .arg(&file);
        if diff {
            c.arg("--diff");
        }
        c.output().expect("run sealgate")
    };
    let out = run(true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "+ {ns}_settings__ConfigMap (deploy/config.yaml:1)"
        )),
        "{stdout}"
    );
    assert!(
        cm_value(&client, &ns, "settings").await.is_none(),
        "--diff wrote"
    );
    let out = run(false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        cm_value(&client, &ns, "settings").await.as_deref(),
        Some("cli")
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let st = cms
        .get("sealgate-gitsync-cli")
        .await
        .expect("status ConfigMap");
    assert!(st.data.expect("data")["status"].contains("lastAppliedRevision"));
}

/// The benchmark behind `bench/sync.sh` (ignored in normal runs): 1,000
/// ConfigMaps in 50 files; first sync, a no-change reconcile, and a
/// one-object change. Prints one JSON line per phase with the wall time,
/// the API calls the loop counted at its call sites (`apiCalls`) and the
/// requests the apiserver's audit log recorded for the sync's own user
/// (`audit`: by verb, dry-run patches apart, and by verb+resource). Runs on
/// the audited control plane (`TestCluster::audited`) with its own client
/// certificate user, so the harness's admin requests are not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run through bench/sync.sh"]
async fn bench_1000_objects_in_50_files() {
    const SYNC_USER: &str = "sealgate-bench-sync";
    let cluster = TestCluster::audited();
    let audit = cluster.audit_log().expect("audited control plane");
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::new(cluster, tmp.path()).await;
    h.ctx.client = cluster.client_as(SYNC_USER, &["system:masters"]).await;
    h.ctx.force = false;
    let ns = cluster.namespace("gitops-bench").await;
    let repo = Repo::new(tmp.path());
    let write_all = |changed: Option<usize>| {
        for f in 0..50 {
            let text: String = (0..20)
                .map(|i| {
                    let n = f * 20 + i;
                    let v = if changed == Some(n) { "changed" } else { "v1" };
                    format!("---\n{}", configmap(&format!("cm-{n:04}"), v))
                })
                .collect();
            repo.write(&format!("deploy/f{f:02}.yaml"), &text);
        }
    };
    write_all(None);
    repo.commit("1000 objects");
    let gs = gitsync(&ns, &repo.url(), json!({}));
    let admin = h.client.clone();
    let phase = async |name: &str,
                       r: &SyncReport,
                       t: std::time::Duration,
                       mark: crate::support::cluster::AuditMark| {
        assert!(r.ok, "{name}: {} {}", r.reason, r.message);
        let by_verb = audit.count_by_verb(&admin, mark, SYNC_USER).await;
        let by_resource = audit
            .count_by_verb_and_resource(&admin, mark, SYNC_USER)
            .await;
        println!(
            "{}",
            json!({"phase": name, "seconds": t.as_secs_f64(), "objects": r.plan.len(),
                   "applied": r.applied.len(), "apiCalls": r.api_calls,
                   "audit": {"byVerb": by_verb, "byVerbResource": by_resource}})
        );
        by_verb
    };
    let mark = audit.mark();
    let t = std::time::Instant::now();
    let r = h.sync(&gs).await;
    phase("first-sync", &r, t.elapsed(), mark).await;
    assert_eq!(r.applied.len(), 1000);
    // No-change: force the full drift check (not the same-commit shortcut).
    h.ctx.force = true;
    let mark = audit.mark();
    let t = std::time::Instant::now();
    let r = h.sync(&gs).await;
    let calls = phase("no-change", &r, t.elapsed(), mark).await;
    assert!(r.applied.is_empty());
    for write in ["create", "update", "patch", "delete"] {
        assert_eq!(
            calls.get(write),
            None,
            "no-change reconcile wrote ({write}): {calls:?}"
        );
    }
    write_all(Some(417));
    repo.commit("one change");
    let mark = audit.mark();
    let t = std::time::Instant::now();
    let r = h.sync(&gs).await;
    let calls = phase("one-change", &r, t.elapsed(), mark).await;
    assert_eq!(r.applied.len(), 1);
    assert_eq!(calls.get("patch"), Some(&1), "one apply: {calls:?}");
}

/// The GitSync controller entry point: a GitSync resource is reconciled,
/// its status written through the status subresource, and a plaintext
/// commit turns it Ready=False with a Warning event naming file:line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_reconciles_a_gitsync_resource() {
    use k8s_openapi::api::core::v1::Event;
    use kube::api::ListParams;
    use sealgate::gitops::controller::{self, GitOpsOptions};

    let cluster = TestCluster::get();
    let tmp = tempfile::tempdir().expect("tempdir");
    let client = cluster.admin().await;
    crate::crds::install(&client).await;
    let ns = cluster.namespace("gitops-ctrl").await;
    let repo = Repo::new(tmp.path());
    repo.write("deploy/config.yaml", &configmap("settings", "ctrl"));
    let first = repo.commit("one");
    let gitsyncs: Api<GitSync> = Api::namespaced(client.clone(), &ns);
    gitsyncs
        .create(
            &PostParams::default(),
            &gitsync(&ns, &repo.url(), json!({"interval": "1s"})),
        )
        .await
        .expect("create GitSync");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let options = GitOpsOptions {
        namespace: Some(ns.clone()),
        cache_dir: tmp.path().join("cache"),
        ..GitOpsOptions::default()
    };
    let task = tokio::spawn(controller::run_until(client.clone(), options, async move {
        let _ = stop_rx.await;
    }));
    let ready = |gs: &GitSync| {
        gs.status.as_ref().and_then(|s| {
            let c = s.conditions.iter().find(|c| c.type_ == "Ready")?;
            Some((
                c.status.clone(),
                c.reason.clone().unwrap_or_default(),
                s.last_applied_revision.clone(),
            ))
        })
    };
    let mut ok = false;
    for _ in 0..150 {
        let gs = gitsyncs.get("apps").await.expect("get");
        if ready(&gs)
            .is_some_and(|(s, _, rev)| s == "True" && rev.as_deref() == Some(first.as_str()))
        {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(ok, "GitSync never became Ready with the commit");
    assert_eq!(
        cm_value(&client, &ns, "settings").await.as_deref(),
        Some("ctrl")
    );

    repo.write(
        "deploy/leak.yaml",
        &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: leak\nstringData:\n  password: {PLAIN_PW}\n"),
    );
    repo.commit("leak");
    // Poll is at most `interval` (1s); a spec touch triggers it at once too.
    let mut refused = None;
    for _ in 0..150 {
        let gs = gitsyncs.get("apps").await.expect("get");
        if let Some((s, reason, _)) = ready(&gs)
            && s == "False"
        {
            refused = Some(reason);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(refused.as_deref(), Some("PlaintextSecretRefused"));
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let mut found = false;
    for _ in 0..50 {
        let list = events.list(&ListParams::default()).await.expect("events");
        if list.items.iter().any(|e| {
            e.reason.as_deref() == Some("PlaintextSecretRefused")
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.contains("deploy/leak.yaml:6"))
        }) {
            found = true;
            for e in &list.items {
                assert!(!e.message.as_deref().unwrap_or("").contains(PLAIN_PW));
            }
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(found, "a Warning event names the file and line");
    let gs = gitsyncs.get("apps").await.expect("get");
    assert!(
        !serde_json::to_string(&gs.status)
            .expect("json")
            .contains(PLAIN_PW)
    );
    assert_eq!(
        cm_value(&client, &ns, "settings").await.as_deref(),
        Some("ctrl")
    );
    let _ = stop_tx.send(());
    let _ = task.await;
}

/// `serviceAccountName` is impersonated for plan and apply: without RBAC the
/// sync fails and writes nothing; with a Role it applies. `Warn` policy
/// applies a revision with a finding and reports it.
#[tokio::test(flavor = "current_thread")]
async fn service_account_is_impersonated_and_warn_policy_applies() {
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    use kube::config::{KubeConfigOptions, Kubeconfig};

    let cluster = TestCluster::get();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::new(cluster, tmp.path()).await;
    let kc = Kubeconfig::read_from(cluster.kubeconfig()).expect("kubeconfig");
    h.ctx.config = Some(
        kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("config"),
    );
    let ns = cluster.namespace("gitops-sa").await;
    cluster.service_account_token(&ns, "deployer").await;
    let repo = Repo::new(tmp.path());
    repo.write("deploy/config.yaml", &configmap("settings", "sa"));
    repo.commit("one");
    let gs = gitsync(&ns, &repo.url(), json!({"serviceAccountName": "deployer"}));

    let report = h.sync(&gs).await;
    assert!(!report.ok, "an SA without rights must not apply");
    assert!(
        report.message.contains("forbidden") || report.message.contains("Forbidden"),
        "{}",
        report.message
    );
    assert!(cm_value(&h.client, &ns, "settings").await.is_none());

    let roles: Api<Role> = Api::namespaced(h.client.clone(), &ns);
    roles
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "deployer"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["*"]}],
            }))
            .expect("role"),
        )
        .await
        .expect("create Role");
    let bindings: Api<RoleBinding> = Api::namespaced(h.client.clone(), &ns);
    bindings
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "deployer"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
                "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": ns}],
            }))
            .expect("binding"),
        )
        .await
        .expect("create RoleBinding");
    let report = h.sync(&gs).await;
    assert!(report.ok, "{}: {}", report.reason, report.message);
    assert_eq!(
        cm_value(&h.client, &ns, "settings").await.as_deref(),
        Some("sa")
    );

    // Warn: the finding is reported, the revision applied.
    repo.write(
        "deploy/config.yaml",
        &format!(
            "{}  token: {}\n",
            configmap("settings", "warned"),
            api_token()
        ),
    );
    repo.commit("token, warned");
    let warn = gitsync(
        &ns,
        &repo.url(),
        json!({"serviceAccountName": "deployer", "secrets": {"plaintextPolicy": "Warn"}}),
    );
    let report = h.sync(&warn).await;
    assert!(report.ok, "{}: {}", report.reason, report.message);
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    assert!(
        report.findings[0].starts_with("deploy/config.yaml:7"),
        "{:?}",
        report.findings
    );
    assert!(
        h.status
            .conditions
            .iter()
            .any(|c| c.type_ == "SecretsSafe" && c.status == "False")
    );
    assert_eq!(
        cm_value(&h.client, &ns, "settings").await.as_deref(),
        Some("warned")
    );
}

fn annotated_configmap(name: &str, value: &str, annotation: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  annotations: {{{annotation}}}\ndata:\n  mode: {value}\n"
    )
}

/// `sealgate.dev/reconcile: disabled` and `sealgate.dev/ssa: Ignore` leave
/// an object alone (in Git or in the cluster: never applied, drift-corrected
/// or pruned); `ssa: IfNotPresent` creates once and never updates. Drift is
/// attributed to the field manager that made it, in the report, the audit
/// record and the metrics.
#[tokio::test(flavor = "current_thread")]
async fn annotations_skip_or_create_once_and_drift_names_its_field_manager() {
    use sealgate::gitops::metrics::GitOpsMetrics;

    let cluster = TestCluster::get();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::new(cluster, tmp.path()).await;
    let ns = cluster.namespace("gitops-annot").await;
    let repo = Repo::new(tmp.path());
    repo.write("deploy/settings.yaml", &configmap("settings", "blue"));
    repo.write("deploy/other.yaml", &configmap("other", "blue"));
    repo.write(
        "deploy/frozen.yaml",
        &annotated_configmap("frozen", "blue", "sealgate.dev/reconcile: disabled"),
    );
    repo.write(
        "deploy/ignored.yaml",
        &annotated_configmap("ignored", "blue", "sealgate.dev/ssa: Ignore"),
    );
    repo.write(
        "deploy/seed.yaml",
        &annotated_configmap("seed", "blue", "sealgate.dev/ssa: IfNotPresent"),
    );
    repo.commit("one");
    let gs = gitsync(&ns, &repo.url(), json!({}));
    let report = h.sync(&gs).await;
    assert!(report.ok, "{}", report.message);
    assert_eq!(cm_value(&h.client, &ns, "frozen").await, None);
    assert_eq!(cm_value(&h.client, &ns, "ignored").await, None);
    assert_eq!(
        cm_value(&h.client, &ns, "seed").await.as_deref(),
        Some("blue")
    );
    let mut skipped = report.skipped_objects.clone();
    skipped.sort();
    assert_eq!(
        skipped,
        [
            format!("{ns}_frozen__ConfigMap"),
            format!("{ns}_ignored__ConfigMap")
        ]
    );
    let ids: Vec<&str> = h.status.inventory.iter().map(|e| e.id.as_str()).collect();
    assert!(ids.contains(&format!("{ns}_seed__ConfigMap").as_str()));
    assert!(!ids.contains(&format!("{ns}_frozen__ConfigMap").as_str()));

    // Out-of-band edits by a named field manager (as `kubectl edit` does).
    let api: Api<ConfigMap> = Api::namespaced(h.client.clone(), &ns);
    let edit = |name: &'static str, patch: serde_json::Value| {
        let api = api.clone();
        async move {
            let pp = PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..PatchParams::default()
            };
            api.patch(name, &pp, &Patch::Merge(patch))
                .await
                .expect("kubectl-style edit");
        }
    };
    edit("settings", json!({"data": {"mode": "red"}})).await;
    edit("seed", json!({"data": {"mode": "red"}})).await;
    let metrics = GitOpsMetrics::default();
    let report = h.sync(&gs).await;
    assert!(report.ok, "{}", report.message);
    metrics.record(&ns, "apps", &report, std::time::Duration::from_millis(1));
    assert_eq!(report.drifted, [format!("{ns}_settings__ConfigMap")]);
    assert_eq!(report.drift.len(), 1);
    assert_eq!(report.drift[0].kind, "ConfigMap");
    assert_eq!(report.drift[0].managers, ["kubectl-edit"]);
    assert_eq!(report.drift[0].paths, ["/data/mode"]);
    assert!(
        report.audit["driftedBy"][0]["managers"][0] == "kubectl-edit",
        "{}",
        report.audit
    );
    let text = metrics.render();
    assert!(
        text.contains(
            "sealgate_gitsync_drifted_objects_total{kind=\"ConfigMap\",manager=\"kubectl-edit\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("sealgate_gitsync_applied_objects_total{kind=\"ConfigMap\"} 1"));
    assert_eq!(
        cm_value(&h.client, &ns, "settings").await.as_deref(),
        Some("blue"),
        "drift corrected"
    );
    assert_eq!(
        cm_value(&h.client, &ns, "seed").await.as_deref(),
        Some("red"),
        "IfNotPresent never updates"
    );

    // In-cluster opt-out: annotated live objects are neither corrected nor
    // pruned, even after Git drops them.
    edit(
        "settings",
        json!({"metadata": {"annotations": {"sealgate.dev/reconcile": "disabled"}}, "data": {"mode": "red"}}),
    )
    .await;
    let report = h.sync(&gs).await;
    assert!(report.ok, "{}", report.message);
    assert!(report.drifted.is_empty(), "{:?}", report.drifted);
    assert_eq!(
        cm_value(&h.client, &ns, "settings").await.as_deref(),
        Some("red")
    );
    repo.remove("deploy/settings.yaml");
    repo.commit("drop settings");
    let report = h.sync(&gs).await;
    assert!(report.ok, "{}", report.message);
    assert!(report.pruned.is_empty(), "{:?}", report.pruned);
    assert_eq!(
        cm_value(&h.client, &ns, "settings").await.as_deref(),
        Some("red")
    );
    assert_eq!(cm_value(&h.client, &ns, "frozen").await, None);
}

/// The controller writes `Reconciling=True` while a new revision is being
/// applied (here: waiting for a Deployment that never becomes ready, as
/// nothing runs pods in the test cluster) and `False` with the outcome
/// afterwards; status writes replace stale fields (a dropped `Healthy`
/// condition, an emptied inventory, an old error); `source.pollInterval`
/// picks up a new commit although `interval` is an hour; `/metrics` serves
/// the loop's figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_writes_reconciling_replaces_stale_status_and_serves_metrics() {
    use sealgate::gitops::controller::{self, GitOpsOptions};
    use sealgate::gitops::metrics::{self, GitOpsMetrics};

    let cluster = TestCluster::get();
    let tmp = tempfile::tempdir().expect("tempdir");
    let client = cluster.admin().await;
    crate::crds::install(&client).await;
    let ns = cluster.namespace("gitops-status").await;
    let repo = Repo::new(tmp.path());
    repo.write("deploy/web.yaml", &deployment("web"));
    repo.write("deploy/config.yaml", &configmap("settings", "one"));
    let first = repo.commit("one");
    let gitsyncs: Api<GitSync> = Api::namespaced(client.clone(), &ns);
    let mut gs = gitsync(
        &ns,
        &repo.url(),
        json!({"interval": "1h", "timeout": "15s", "health": {"wait": true}}),
    );
    gs.spec.source.poll_interval = Some("1s".into());
    gitsyncs
        .create(&PostParams::default(), &gs)
        .await
        .expect("create GitSync");

    let registry = std::sync::Arc::new(GitOpsMetrics::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = metrics::router(std::sync::Arc::clone(&registry));
    let http = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let options = GitOpsOptions {
        namespace: Some(ns.clone()),
        cache_dir: tmp.path().join("cache"),
        metrics: std::sync::Arc::clone(&registry),
        ..GitOpsOptions::default()
    };
    let task = tokio::spawn(controller::run_until(client.clone(), options, async move {
        let _ = stop_rx.await;
    }));
    let cond = |gs: &GitSync, t: &str| {
        gs.status.as_ref().and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == t)
                .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
        })
    };
    let wait = |what: &'static str, f: Box<dyn Fn(&GitSync) -> bool + Send + Sync>| {
        let gitsyncs = gitsyncs.clone();
        async move {
            let mut last = None;
            for _ in 0..600 {
                let gs = gitsyncs.get("apps").await.expect("get");
                if f(&gs) {
                    return gs;
                }
                last = gs.status;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("timed out waiting for {what}; status: {last:?}");
        }
    };
    let first_c = first.clone();
    let gs = wait(
        "Reconciling=True",
        Box::new(move |gs| {
            cond(gs, "Reconciling") == Some(("True".into(), "Progressing".into()))
                && gs
                    .status
                    .as_ref()
                    .and_then(|s| s.last_attempted_revision.clone())
                    == Some(first_c.clone())
        }),
    )
    .await;
    assert_eq!(
        cond(&gs, "Ready"),
        Some(("Unknown".into(), "Progressing".into())),
        "Ready is Unknown while reconciling"
    );
    let gs = wait(
        "health failure",
        Box::new(|gs| {
            cond(gs, "Ready").is_some_and(|c| c.1 == "HealthCheckFailed")
                && cond(gs, "Reconciling").is_some_and(|c| c.0 == "False")
        }),
    )
    .await;
    assert_eq!(
        cond(&gs, "Reconciling"),
        Some(("False".into(), "HealthCheckFailed".into()))
    );
    assert_eq!(
        cond(&gs, "Healthy"),
        Some(("False".into(), "HealthCheckFailed".into()))
    );
    assert_eq!(
        cm_value(&client, &ns, "settings").await.as_deref(),
        Some("one")
    );

    let body = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body");
    assert!(
        body.contains("sealgate_gitsync_reconcile_errors_total{reason=\"HealthCheckFailed\"}"),
        "{body}"
    );
    assert!(body.contains("sealgate_gitsync_applied_objects_total{kind=\"Deployment\"} 1"));
    for path in ["healthz", "readyz"] {
        let r = reqwest::get(format!("http://{addr}/{path}"))
            .await
            .expect("GET");
        assert!(r.status().is_success(), "/{path}");
    }

    // Turn health waiting off: Ready, and the Healthy condition and the old
    // error message are gone from the stored status.
    gitsyncs
        .patch(
            "apps",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"health": null}})),
        )
        .await
        .expect("patch spec");
    let gs = wait(
        "Ready after health.wait off",
        Box::new(|gs| cond(gs, "Ready").is_some_and(|c| c.0 == "True")),
    )
    .await;
    assert_eq!(cond(&gs, "Healthy"), None, "{:?}", gs.status);
    assert_eq!(
        cond(&gs, "Reconciling"),
        Some(("False".into(), "ReconciliationSucceeded".into()))
    );
    let text = serde_json::to_string(&gs.status).expect("json");
    assert!(!text.contains("not healthy"), "{text}");
    assert_eq!(gs.status.as_ref().map(|s| s.inventory.len()), Some(2));

    // An empty revision (prune off) empties the inventory in the stored
    // status; it is picked up by pollInterval, not interval (1h).
    gitsyncs
        .patch(
            "apps",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"prune": {"enabled": false}}})),
        )
        .await
        .expect("patch spec");
    repo.remove("deploy/web.yaml");
    repo.remove("deploy/config.yaml");
    repo.write("deploy/README.md", "no manifests here\n");
    let empty = repo.commit("empty");
    let empty_c = empty.clone();
    let gs = wait(
        "empty revision applied",
        Box::new(move |gs| {
            gs.status
                .as_ref()
                .and_then(|s| s.last_applied_revision.clone())
                == Some(empty_c.clone())
        }),
    )
    .await;
    let st = gs.status.clone().unwrap_or_default();
    assert!(
        st.inventory.is_empty(),
        "stale inventory: {:?}",
        st.inventory
    );
    assert_eq!(
        cm_value(&client, &ns, "settings").await.as_deref(),
        Some("one"),
        "prune disabled: nothing deleted"
    );
    let _ = stop_tx.send(());
    let _ = task.await;
    http.abort();
}
