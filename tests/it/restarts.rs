//! Workload restarts on the real kube-apiserver: a content change sets the
//! pod-template hash annotation once after the debounce, the same content
//! never writes again, the hash is keyed (not a digest of the secret bytes)
//! and the key survives a new `Restarter`.
//!
//! No kubelet or workload controllers run in the harness; the template
//! change itself (generation, annotation) is what rolls pods in a cluster.

use crate::support::wait_for;
use std::collections::BTreeMap;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use sealgate::controller::api::WorkloadRef;
use sealgate::controller::restarts::{HASH_ANNOTATION, KEY_FIELD, KEY_SECRET, Restarter};
use sealgate::secret::SecretBytes;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::support::cluster::TestCluster;

const PLANTED: &str = "PLANTED-restart-pw-3e71b0";
const DEBOUNCE: Duration = Duration::from_millis(1500);

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, SecretBytes> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), SecretBytes::new(v.as_bytes().to_vec())))
        .collect()
}

fn pod_template() -> serde_json::Value {
    json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
    })
}

async fn deployment(client: &Client, ns: &str, name: &str) -> Api<Deployment> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": pod_template()},
    }))
    .expect("Deployment");
    api.create(&PostParams::default(), &d)
        .await
        .expect("create Deployment");
    api
}

fn template_hash(d: &Deployment) -> Option<String> {
    d.spec
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(HASH_ANNOTATION)
        .cloned()
}

fn target(kind: &str, name: &str) -> WorkloadRef {
    WorkloadRef {
        kind: kind.into(),
        name: name.into(),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn content_changes_roll_workloads_once_and_same_content_never_writes() {
    let (buf, _guard) = crate::support::logs::capture();

    let cluster = TestCluster::get();
    let client = cluster.admin().await;
    let ns = cluster.namespace("restarts").await;
    let key_ns = cluster.namespace("restarts-key").await;
    let api = deployment(&client, &ns, "api").await;
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let s: StatefulSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "serviceName": "db",
                 "template": pod_template()},
    }))
    .expect("StatefulSet");
    sts.create(&PostParams::default(), &s)
        .await
        .expect("create StatefulSet");
    let before = api.get("api").await.expect("get");

    let restarter = Restarter::new(client.clone(), &key_ns, DEBOUNCE, 60)
        .await
        .expect("restarter");
    let old = restarter.content_hash(&data(&[("password", "old-value")]));
    let new = restarter.content_hash(&data(&[("password", PLANTED), ("user", "app")]));
    assert_ne!(old, new);

    // A burst of changes within the debounce: one patch, with the last hash.
    let targets = [
        target("Deployment", "api"),
        target("statefulset", "db"),
        target("CronJob", "ignored"),
        target("Deployment", "missing"),
    ];
    restarter.content_changed(&ns, &targets, old.clone());
    restarter.content_changed(&ns, &targets, new.clone());
    let rolled = wait_for("the Deployment's template annotation", || async {
        let d = api.get("api").await.ok()?;
        (template_hash(&d).as_deref() == Some(new.as_str())).then_some(d)
    })
    .await;
    assert_eq!(
        rolled.metadata.generation,
        before.metadata.generation.map(|g| g + 1),
        "exactly one template change"
    );
    let managers: Vec<_> = rolled
        .managed_fields()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        managers.iter().any(|m| m == "sealgate-restart"),
        "{managers:?}"
    );
    wait_for("the StatefulSet's template annotation", || async {
        let s = sts.get("db").await.ok()?;
        let h = s
            .spec
            .template
            .metadata
            .as_ref()?
            .annotations
            .as_ref()?
            .get(HASH_ANNOTATION)
            .cloned();
        (h.as_deref() == Some(new.as_str())).then_some(())
    })
    .await;

    // The same content again (e.g. after a controller restart): no write.
    // A second restarter on the same key namespace stands in for the
    // restarted controller; its hash must be the same.
    let restarted = Restarter::new(client.clone(), &key_ns, DEBOUNCE, 60)
        .await
        .expect("restarter after restart");
    let again = restarted.content_hash(&data(&[("user", "app"), ("password", PLANTED)]));
    assert_eq!(again, new, "the key survives a new Restarter");
    restarted.content_changed(&ns, &[target("Deployment", "api")], again);
    tokio::time::sleep(DEBOUNCE * 4).await;
    let after = api.get("api").await.expect("get");
    assert_eq!(
        after.metadata.resource_version, rolled.metadata.resource_version,
        "unchanged content must not write"
    );
    assert_eq!(after.metadata.generation, rolled.metadata.generation);

    // The key is a Secret of 32 random bytes in the controller namespace.
    let key_secret = Api::<Secret>::namespaced(client.clone(), &key_ns)
        .get(KEY_SECRET)
        .await
        .expect("key Secret");
    let key = key_secret.data.as_ref().expect("data")[KEY_FIELD].0.clone();
    assert_eq!(key.len(), 32);

    // Keyed: not any plain SHA-256 of the secret bytes, and another key
    // (another controller namespace) gives another hash.
    let digests = [
        Sha256::digest(PLANTED.as_bytes()),
        Sha256::digest(format!("{PLANTED}app").as_bytes()),
        Sha256::digest(format!("password={PLANTED}\nuser=app\n").as_bytes()),
        Sha256::digest(
            json!({"password": PLANTED, "user": "app"})
                .to_string()
                .as_bytes(),
        ),
    ];
    for d in digests {
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!hex.contains(&new), "hash is an unkeyed digest");
    }
    let other_ns = cluster.namespace("restarts-key-2").await;
    let other = Restarter::new(client.clone(), &other_ns, DEBOUNCE, 60)
        .await
        .expect("other restarter");
    assert_ne!(
        other.content_hash(&data(&[("password", PLANTED), ("user", "app")])),
        new
    );

    // Nothing derived from the value in clear: logs, the workload, Debug.
    let logs = String::from_utf8(buf.0.lock().expect("log buffer").clone()).expect("utf8");
    assert!(logs.contains("rolled workload"), "no logs captured");
    let rendered = serde_json::to_string(&after).expect("json");
    for text in [&logs, &rendered, &format!("{restarter:?}")] {
        assert!(!text.contains(PLANTED), "value leaked");
    }
}
