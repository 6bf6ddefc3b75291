//! `SopsSecret` with `decryption.storeRef`: a file encrypted by the real
//! `sops` CLI to an OpenBao Transit key becomes a Secret, the data key
//! unwrapped through a `SecretStore`'s own Vault session (a token allowed
//! only to decrypt with that key). A missing store or one that does not
//! admit the namespace is reported in status and leaves the Secret as it
//! was; no plaintext reaches logs, status or events.

use crate::support::wait_for;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use sealgate::controller::api::{ClusterSecretStore, SecretStore, SopsSecret};
use sealgate::controller::sops_secret::{self, SopsContext};
use sealgate::controller::stores::Stores;
use serde_json::json;

use crate::support::cluster::TestCluster;
use crate::support::openbao::OpenBao;
use crate::support::tools;

const PASSWORD: &str = "PLANTED-transit-pw-6d02af";

fn ready_reason(s: &SopsSecret) -> Option<(String, String, String)> {
    let c = s
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    ))
}

fn sops_secret(name: &str, spec: serde_json::Value) -> SopsSecret {
    serde_json::from_value(json!({
        "apiVersion": "sealgate.dev/v1alpha1", "kind": "SopsSecret",
        "metadata": {"name": name}, "spec": spec,
    }))
    .expect("SopsSecret")
}

/// Encrypts a Secret manifest to the Transit key with the real sops CLI.
fn encrypt_to_transit(bao: &OpenBao, uri: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("db.enc.yaml");
    std::fs::write(
        &plain,
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\nstringData:\n  password: {PASSWORD}\n  user: app\n"
        ),
    )
    .expect("write plaintext");
    let out = tools::run_ok(
        Command::new(tools::sops_go())
            .env("HOME", dir.path())
            .env("VAULT_ADDR", bao.addr())
            .env("VAULT_TOKEN", bao.root_token())
            .env_remove("SOPS_AGE_KEY")
            .env_remove("SOPS_AGE_KEY_FILE")
            .args(["encrypt", "--hc-vault-transit", uri])
            .args(["--encrypted-regex", "^(data|stringData)$"])
            .arg(&plain),
        None,
    );
    String::from_utf8(out).expect("utf8")
}

#[tokio::test(flavor = "current_thread")]
async fn transit_encrypted_sops_file_becomes_a_secret_through_a_store() {
    let (buf, _guard) = crate::support::logs::capture();

    let bao = OpenBao::start();
    bao.cli(&["secrets", "enable", "transit"]);
    bao.cli(&["write", "-f", "transit/keys/sops"]);
    let uri = format!("{}/v1/transit/keys/sops", bao.addr());
    let encrypted = encrypt_to_transit(&bao, &uri);
    assert!(encrypted.contains("hc_vault"), "{encrypted}");
    assert!(!encrypted.contains(PASSWORD));

    // The store's token may only decrypt with this key.
    let policy = tempfile::NamedTempFile::new().expect("policy file");
    std::fs::write(
        policy.path(),
        "path \"transit/decrypt/sops\" { capabilities = [\"update\"] }\n",
    )
    .expect("write policy");
    bao.cli(&[
        "policy",
        "write",
        "sops-decrypt",
        &policy.path().display().to_string(),
    ]);
    let token = bao
        .cli(&[
            "token",
            "create",
            "-policy=sops-decrypt",
            "-field=token",
            "-ttl=1h",
        ])
        .trim()
        .to_owned();

    let cluster = TestCluster::get();
    let client = cluster.admin().await;
    crate::crds::install(&client).await;
    let ns = cluster.namespace("sops-store").await;
    let key_ns = cluster.namespace("sops-store-ctl").await;

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "vault-token"},
                "stringData": {"token": token},
            }))
            .expect("Secret"),
        )
        .await
        .expect("token Secret");
    let vault_provider = json!({"vault": {
        "server": bao.addr(),
        "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}},
    }});
    let store: SecretStore = serde_json::from_value(json!({
        "apiVersion": "sealgate.dev/v1alpha1", "kind": "SecretStore",
        "metadata": {"name": "vault"},
        "spec": {"provider": vault_provider},
    }))
    .expect("SecretStore");
    Api::<SecretStore>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &store)
        .await
        .expect("create SecretStore");
    // A cluster store that admits another namespace only.
    let cluster_store_name = format!("{ns}-elsewhere");
    let cluster_store: ClusterSecretStore = serde_json::from_value(json!({
        "apiVersion": "sealgate.dev/v1alpha1", "kind": "ClusterSecretStore",
        "metadata": {"name": cluster_store_name},
        "spec": {
            "provider": {"vault": {
                "server": bao.addr(),
                "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token", "namespace": ns}},
            }},
            "conditions": [{"namespaces": ["somewhere-else"]}],
        },
    }))
    .expect("ClusterSecretStore");
    Api::<ClusterSecretStore>::all(client.clone())
        .create(&PostParams::default(), &cluster_store)
        .await
        .expect("create ClusterSecretStore");

    let stores = Arc::new(Stores::new(client.clone(), Duration::from_secs(5)));
    let ctx = Arc::new(
        SopsContext::new(client.clone(), key_ns.clone(), Some("test".into())).with_stores(stores),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(sops_secret::run(ctx, Some(ns.clone()), 2, async move {
        let _ = stop_rx.await;
    }));

    let sopses: Api<SopsSecret> = Api::namespaced(client.clone(), &ns);
    sopses
        .create(
            &PostParams::default(),
            &sops_secret(
                "db",
                json!({"manifest": encrypted,
                       "decryption": {"storeRef": {"name": "vault", "kind": "SecretStore"}}}),
            ),
        )
        .await
        .expect("create SopsSecret");

    let secret = wait_for("Secret db", || async {
        secrets.get_opt("db").await.expect("get")
    })
    .await;
    let data = secret.data.clone().expect("data");
    assert_eq!(data["password"].0, PASSWORD.as_bytes());
    assert_eq!(data["user"].0, b"app");
    wait_for("db Ready", || async {
        let s = sopses.get("db").await.expect("get");
        ready_reason(&s).filter(|(st, _, _)| st == "True")
    })
    .await;

    // The store goes missing from the spec's point of view: refused with a
    // clear reason; the Secret keeps its value and is not written.
    let rv = secret.metadata.resource_version.clone();
    sopses
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"decryption": {"storeRef": {"name": "no-such-store"}}}})),
        )
        .await
        .expect("point at a missing store");
    let (_, reason, message) = wait_for("StoreNotFound", || async {
        let s = sopses.get("db").await.expect("get");
        ready_reason(&s).filter(|(st, r, _)| st == "False" && r == "StoreNotFound")
    })
    .await;
    assert!(message.contains("no-such-store"), "{message}");
    assert_eq!(reason, "StoreNotFound");

    // A cluster store that does not admit this namespace: refused.
    sopses
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"decryption": {"storeRef": {
                "name": cluster_store_name, "kind": "ClusterSecretStore"}}}})),
        )
        .await
        .expect("point at a foreign cluster store");
    let (_, _, message) = wait_for("StoreNotAllowed", || async {
        let s = sopses.get("db").await.expect("get");
        ready_reason(&s).filter(|(st, r, _)| st == "False" && r == "StoreNotAllowed")
    })
    .await;
    assert!(message.contains(&ns), "{message}");

    let after = secrets.get("db").await.expect("get");
    assert_eq!(
        after.metadata.resource_version, rv,
        "a refused store must not touch the Secret"
    );
    assert_eq!(after.data.expect("data")["password"].0, PASSWORD.as_bytes());

    // No SopsSecret with a missing store ever creates a Secret.
    sopses
        .create(
            &PostParams::default(),
            &sops_secret(
                "orphan",
                json!({"manifest": encrypted, "target": {"name": "orphan"},
                       "decryption": {"storeRef": {"name": "no-such-store"}}}),
            ),
        )
        .await
        .expect("create orphan");
    wait_for("orphan refused", || async {
        let s = sopses.get("orphan").await.expect("get");
        ready_reason(&s).filter(|(st, r, _)| st == "False" && r == "StoreNotFound")
    })
    .await;
    assert!(secrets.get_opt("orphan").await.expect("get").is_none());

    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), controller).await;

    // No plaintext in logs, status or events.
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let events = events.list(&ListParams::default()).await.expect("events");
    let statuses = serde_json::to_string(&sopses.list(&ListParams::default()).await.expect("list"))
        .expect("json");
    let logs = String::from_utf8(buf.0.lock().expect("log buffer").clone()).expect("utf8");
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "no logs captured"
    );
    for text in [
        &logs,
        &statuses,
        &serde_json::to_string(&events).expect("json"),
    ] {
        assert!(!text.contains(PASSWORD), "plaintext leaked");
    }
    Api::<ClusterSecretStore>::all(client.clone())
        .delete(&cluster_store_name, &Default::default())
        .await
        .expect("delete cluster store");
}
