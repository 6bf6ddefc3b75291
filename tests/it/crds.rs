//! The committed CRDs are exactly what the Rust types generate, and the real
//! kube-apiserver accepts them without adding defaults (which GitOps tools
//! would report as drift).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;

use crate::support::cluster::TestCluster;

/// Installs (server-side apply, idempotent) every sealgate CRD and waits
/// until each is Established. Other test modules call this first.
pub async fn install(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in sealgate::cli::crds::all() {
        let name = crd.metadata.name.clone().expect("CRD name");
        api.patch(
            &name,
            &PatchParams::apply("sealgate-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("apiserver refused CRD {name}: {e}"));
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not Established within 30 s"))
        .expect("watch CRD");
    }
}

fn read_dir_yaml(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("read CRD"))
        })
        .collect()
}

#[test]
fn committed_crds_are_not_stale() {
    let out = tempfile::tempdir().expect("tempdir");
    Command::cargo_bin("sealgate")
        .expect("binary")
        .args(["crds", "--out-dir"])
        .arg(out.path())
        .assert()
        .success();
    let generated = read_dir_yaml(out.path());
    let committed = read_dir_yaml(&Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"));
    assert_eq!(
        generated.keys().collect::<Vec<_>>(),
        committed.keys().collect::<Vec<_>>(),
        "crds/ has a different set of files; run `cargo run -- crds --out-dir crds`"
    );
    for (name, text) in &generated {
        assert!(
            committed[name] == *text,
            "crds/{name} is stale; run `cargo run -- crds --out-dir crds`"
        );
    }
}

#[test]
fn printed_stream_matches_the_files() {
    let out = Command::cargo_bin("sealgate")
        .expect("binary")
        .arg("crds")
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert_eq!(
        text.matches("kind: CustomResourceDefinition").count(),
        sealgate::cli::crds::all().len()
    );
}

/// One minimal-but-complete object per kind. After a round trip through the
/// apiserver its spec must come back unchanged: no defaulting, no pruning.
fn samples() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "SecretStore",
            json!({"provider": {"vault": {"server": "http://127.0.0.1:8200", "path": "secret", "version": "v2",
                   "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}}}},
                   "limits": {"requestsPerSecond": 2.5, "maxConcurrent": 4}}),
        ),
        (
            "ClusterSecretStore",
            json!({"provider": {"aws": {"service": "SecretsManager", "region": "eu-west-1",
                   "auth": {"secretRef": {
                       "accessKeyIdSecretRef": {"name": "aws", "key": "id", "namespace": "ops"},
                       "secretAccessKeySecretRef": {"name": "aws", "key": "secret", "namespace": "ops"}}}}},
                   "conditions": [{"namespaceSelector": {"matchLabels": {"team": "a"}},
                                   "allowedKeyPrefixes": ["team-a/"]}]}),
        ),
        (
            "ExternalSecret",
            json!({"secretStoreRef": {"name": "vault", "kind": "SecretStore"},
                   "refreshInterval": "1h",
                   "target": {"name": "db", "creationPolicy": "Merge", "deletionPolicy": "Delete",
                              "template": {"type": "Opaque", "engineVersion": "v2",
                                           "metadata": {"labels": {"app": "x"}},
                                           "data": {"url": "postgres://{{ user }}@db"}},
                              "restart": [{"kind": "Deployment", "name": "web"}]},
                   "data": [{"secretKey": "user", "remoteRef": {"key": "app/db", "property": "user", "version": "3"}}],
                   "dataFrom": [{"extract": {"key": "app/common"}},
                                {"find": {"path": "app/", "name": {"regexp": "^x"}, "tags": {"env": "prod"}},
                                 "rewrite": [{"regexp": {"source": "^x_", "target": ""}}]},
                                {"dynamic": {"path": "database/creds/app"}}],
                   "lease": {"overlap": "30s"}}),
        ),
        (
            "SopsSecret",
            json!({"file": {"content": "a: ENC[...]\n", "format": "yaml", "key": "config.yaml"},
                   "decryption": {"ageKeySecretRef": "sops-age"},
                   "target": {"name": "cfg", "type": "Opaque"}}),
        ),
        (
            "GitSync",
            json!({"source": {"url": "https://git.example.invalid/deploy.git", "ref": {"branch": "main"},
                              "secretRef": {"name": "git-auth"}, "pollInterval": "1m"},
                   "path": "./clusters/prod", "interval": "10m", "retryInterval": "2m", "timeout": "5m",
                   "suspend": false, "serviceAccountName": "deployer",
                   "decryption": {"ageKeySecretRef": {"name": "sops-age"}},
                   "secrets": {"plaintextPolicy": "Deny",
                               "allow": [{"kind": "Secret", "namespace": "kube-system", "name": "bootstrap",
                                          "rule": "k8s/secret-plaintext", "reason": "kubeadm token"}]},
                   "drift": {"mode": "Detect", "ignore": [{"paths": ["/spec/replicas"], "target": {"kind": "Deployment"}}]},
                   "prune": {"enabled": true, "maxDeleteRatio": 0.5, "protectKinds": ["Namespace"]},
                   "health": {"wait": true}}),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_accepts_every_crd_and_adds_no_defaults() {
    let cluster = TestCluster::get();
    let client = cluster.admin().await;
    install(&client).await;
    let ns = cluster.namespace("crds").await;
    for (kind, spec) in samples() {
        let crd = sealgate::cli::crds::all()
            .into_iter()
            .find(|c| c.spec.names.kind == kind)
            .expect("sample kind has a CRD");
        let resource = ApiResource {
            group: crd.spec.group.clone(),
            version: crd.spec.versions[0].name.clone(),
            api_version: format!("{}/{}", crd.spec.group, crd.spec.versions[0].name),
            kind: kind.to_owned(),
            plural: crd.spec.names.plural.clone(),
        };
        let api: Api<DynamicObject> = if crd.spec.scope == "Namespaced" {
            Api::namespaced_with(client.clone(), &ns, &resource)
        } else {
            Api::all_with(client.clone(), &resource)
        };
        let name = format!("sample-{}", ns);
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": resource.api_version, "kind": kind,
            "metadata": {"name": name}, "spec": spec,
        }))
        .expect("sample object");
        let created = api
            .create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("apiserver refused a {kind}: {e}"));
        assert_eq!(
            created.data["spec"], spec,
            "{kind}: the apiserver changed the spec"
        );
        // The typed client reads it back too (the Rust types and the schema agree).
        let typed_ok = match kind {
            "SecretStore" => {
                serde_json::from_value::<sealgate::controller::api::SecretStoreSpec>(spec.clone())
                    .is_ok()
            }
            "ClusterSecretStore" => serde_json::from_value::<
                sealgate::controller::api::ClusterSecretStoreSpec,
            >(spec.clone())
            .is_ok(),
            "ExternalSecret" => serde_json::from_value::<
                sealgate::controller::api::ExternalSecretSpec,
            >(spec.clone())
            .is_ok(),
            "SopsSecret" => {
                serde_json::from_value::<sealgate::controller::api::SopsSecretSpec>(spec.clone())
                    .is_ok()
            }
            "GitSync" => {
                serde_json::from_value::<sealgate::gitops::spec::GitSyncSpec>(spec.clone()).is_ok()
            }
            _ => false,
        };
        assert!(typed_ok, "{kind}: sample does not parse as the Rust type");
        if crd.spec.scope != "Namespaced" {
            api.delete(&name, &Default::default())
                .await
                .expect("delete cluster sample");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_rejects_a_wrong_enum_value() {
    let cluster = TestCluster::get();
    let client = cluster.admin().await;
    install(&client).await;
    let ns = cluster.namespace("crds-bad").await;
    let resource = ApiResource {
        group: "sealgate.dev".into(),
        version: "v1alpha1".into(),
        api_version: "sealgate.dev/v1alpha1".into(),
        kind: "ExternalSecret".into(),
        plural: "externalsecrets".into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &resource);
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "sealgate.dev/v1alpha1", "kind": "ExternalSecret",
        "metadata": {"name": "bad"},
        "spec": {"secretStoreRef": {"name": "s"}, "target": {"creationPolicy": "Sometimes"}},
    }))
    .expect("object");
    let err = api
        .create(&PostParams::default(), &obj)
        .await
        .expect_err("must be refused");
    assert!(err.to_string().contains("creationPolicy"), "{err}");
}
