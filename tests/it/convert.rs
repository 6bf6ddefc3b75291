//! `sealgate convert`: External Secrets Operator manifests become sealgate
//! objects the real apiserver accepts; unconvertible fields are refused by
//! name and nothing is written.

use assert_cmd::Command;
use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;

use crate::support::cluster::TestCluster;

const ESO: &str = r#"
apiVersion: external-secrets.io/v1beta1
kind: SecretStore
metadata:
  name: vault
spec:
  provider:
    vault:
      server: "https://vault.example:8200"
      path: secret
      version: v2
      auth:
        kubernetes:
          mountPath: kubernetes
          role: app
          serviceAccountRef:
            name: app
---
apiVersion: external-secrets.io/v1
kind: ClusterSecretStore
metadata:
  name: aws
spec:
  conditions:
    - namespaces: [team-a]
  provider:
    aws:
      service: SecretsManager
      region: eu-west-1
      auth:
        secretRef:
          accessKeyIDSecretRef: {name: aws, key: id, namespace: ops}
          secretAccessKeySecretRef: {name: aws, key: secret, namespace: ops}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: untouched
data:
  a: b
---
apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata:
  name: db
  labels: {app: web}
spec:
  refreshInterval: 15m
  secretStoreRef:
    name: vault
    kind: SecretStore
  target:
    name: db-credentials
    creationPolicy: Owner
    deletionPolicy: Retain
    template:
      engineVersion: v2
      mergePolicy: Replace
      data:
        url: "postgres://{{ .user }}:{{ .password }}@db:5432/app"
  data:
    - secretKey: user
      remoteRef:
        key: app/db
        property: user
        conversionStrategy: Default
        decodingStrategy: None
        metadataPolicy: None
  dataFrom:
    - extract:
        key: app/common
    - find:
        path: app/
        name: {regexp: "^feature_"}
      rewrite:
        - regexp: {source: "^feature_", target: ""}
"#;

#[test]
fn eso_manifests_convert_and_other_documents_pass_through() {
    let out = Command::cargo_bin("sealgate")
        .expect("binary")
        .arg("convert")
        .write_stdin(ESO)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("converted 3 object(s); 1 other"),
        "{stderr}"
    );
    let text = String::from_utf8(out.stdout).expect("utf8");
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).expect("YAML out");
    assert_eq!(docs.len(), 4);
    assert_eq!(docs[2]["kind"], "ConfigMap");
    assert_eq!(docs[2]["data"]["a"], "b");
    let es = &docs[3];
    assert_eq!(es["apiVersion"], "sealgate.dev/v1alpha1");
    // ESO's deletionPolicy is about the provider's secret vanishing; its
    // `Retain` is sealgate's fixed behaviour there, so it is not carried
    // into sealgate's field of the same name (ExternalSecret deletion).
    assert!(
        es["spec"]["target"].get("deletionPolicy").is_none(),
        "{}",
        es["spec"]["target"]
    );
    assert_eq!(
        es["spec"]["target"]["template"]["data"]["url"],
        "postgres://{{ user }}:{{ password }}@db:5432/app"
    );
    assert!(
        es["spec"]["data"][0]["remoteRef"]
            .get("conversionStrategy")
            .is_none()
    );
    assert_eq!(
        docs[1]["spec"]["provider"]["aws"]["auth"]["secretRef"]["accessKeyIdSecretRef"]["name"],
        "aws"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converted_objects_are_accepted_by_the_apiserver() {
    let out = Command::cargo_bin("sealgate")
        .expect("binary")
        .arg("convert")
        .write_stdin(ESO)
        .output()
        .expect("run");
    assert!(out.status.success());
    let docs: Vec<DynamicObject> =
        serde_saphyr::from_multiple(&String::from_utf8(out.stdout).expect("utf8")).expect("YAML");
    let cluster = TestCluster::get();
    let client = cluster.admin().await;
    crate::crds::install(&client).await;
    let ns = cluster.namespace("convert").await;
    for mut doc in docs.into_iter().filter(|d| {
        d.types
            .as_ref()
            .is_some_and(|t| t.api_version == "sealgate.dev/v1alpha1")
    }) {
        let kind = doc.types.as_ref().expect("types").kind.clone();
        let resource = ApiResource {
            group: "sealgate.dev".into(),
            version: "v1alpha1".into(),
            api_version: "sealgate.dev/v1alpha1".into(),
            plural: format!("{}s", kind.to_lowercase()),
            kind: kind.clone(),
        };
        let api: Api<DynamicObject> = if kind == "ClusterSecretStore" {
            doc.metadata.name = Some(format!("aws-{ns}"));
            Api::all_with(client.clone(), &resource)
        } else {
            Api::namespaced_with(client.clone(), &ns, &resource)
        };
        api.create(&PostParams::default(), &doc)
            .await
            .unwrap_or_else(|e| panic!("apiserver refused the converted {kind}: {e}"));
        if kind == "ClusterSecretStore" {
            api.delete(&format!("aws-{ns}"), &Default::default())
                .await
                .expect("cleanup");
        }
    }
}

#[test]
fn unconvertible_fields_are_named_and_nothing_is_written() {
    let input = r#"
apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata: {name: x, namespace: apps}
spec:
  secretStoreRef: {name: s}
  target:
    creationPolicy: None
    deletionPolicy: Delete
    template:
      data:
        cfg: "{{ .a | b64dec }}"
  dataFrom:
    - sourceRef:
        generatorRef: {kind: Password, name: p}
"#;
    let dir = tempfile::tempdir().expect("tempdir");
    let out_file = dir.path().join("out.yaml");
    let out = Command::cargo_bin("sealgate")
        .expect("binary")
        .args(["convert", "-o"])
        .arg(&out_file)
        .write_stdin(input)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for field in [
        "ExternalSecret/apps/x: spec.target.creationPolicy",
        "spec.target.deletionPolicy",
        "spec.target.template.data.cfg",
        "spec.dataFrom[0].sourceRef",
    ] {
        assert!(stderr.contains(field), "missing {field} in:\n{stderr}");
    }
    assert!(!out_file.exists(), "nothing may be written on refusal");
}
