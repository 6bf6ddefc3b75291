//! `SopsSecret` end to end: files encrypted by the real `sops` CLI and
//! committed to a real Git repository become Secrets on the real
//! kube-apiserver; tampered or undecryptable sources are refused without
//! touching the existing Secret, and no plaintext reaches status, events or
//! logs.

use crate::support::wait_for;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use sealgate::controller::api::SopsSecret;
use sealgate::controller::sops_secret::{self, SopsContext};
use serde_json::json;

use crate::sops::Lab;
use crate::support::cluster::TestCluster;
use crate::support::tools;

const PASSWORD: &str = "PLANTED-sops-pw-51c9e2";
const TOKEN: &str = "PLANTED-sops-token-0d7a36";
const ENV_VALUE: &str = "PLANTED-sops-env-8e21f4";

/// Encrypts `plain` with the real sops CLI, commits it to a fresh Git
/// repository and returns the committed bytes as Git stores them.
fn commit_encrypted(lab: &Lab, name: &str, plain: &str, extra: &[&str]) -> String {
    let repo = lab.path("repo");
    std::fs::create_dir_all(&repo).expect("repo dir");
    let git = |args: &[&str]| {
        tools::run_ok(
            Command::new("git")
                .current_dir(&repo)
                .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
                .args(args),
            None,
        )
    };
    if !repo.join(".git").exists() {
        git(&["init", "-q", "-b", "main"]);
    }
    let path = repo.join(name);
    std::fs::write(&path, plain).expect("write plaintext");
    let enc = tools::run_ok(
        Command::new(tools::sops_go())
            .current_dir(&repo)
            .env_remove("SOPS_AGE_KEY")
            .env_remove("SOPS_AGE_KEY_FILE")
            .args(["encrypt", "--age", lab.recipient(0)])
            .args(extra)
            .arg(&path),
        None,
    );
    std::fs::write(&path, &enc).expect("write encrypted");
    git(&["add", name]);
    git(&["commit", "-q", "-m", "add encrypted secret"]);
    String::from_utf8(git(&["show", &format!("HEAD:{name}")])).expect("utf8")
}

fn ready_reason(s: &SopsSecret) -> Option<(String, String)> {
    let c = s
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((c.status.clone(), c.reason.clone().unwrap_or_default()))
}

async fn key_secret(client: &Client, ns: &str, lab: &Lab) {
    let identity = std::fs::read(&lab.keys[0].0).expect("identity");
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let s = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("sops-age".into()),
            ..Default::default()
        },
        data: Some([("identity.agekey".to_owned(), ByteString(identity))].into()),
        ..Default::default()
    };
    api.create(&PostParams::default(), &s)
        .await
        .expect("key Secret");
}

fn sops_secret(name: &str, spec: serde_json::Value) -> SopsSecret {
    serde_json::from_value(json!({
        "apiVersion": "sealgate.dev/v1alpha1", "kind": "SopsSecret",
        "metadata": {"name": name}, "spec": spec,
    }))
    .expect("SopsSecret")
}

/// Flips one character inside the first `ENC[...]` payload: a structurally
/// valid file whose ciphertext no longer verifies.
fn tamper(text: &str) -> String {
    let marker = "ENC[AES256_GCM,data:";
    let at = text.find(marker).expect("an ENC value") + marker.len();
    let mut bytes = text.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("utf8")
}

#[tokio::test(flavor = "current_thread")]
async fn committed_sops_files_become_secrets_and_tampering_is_refused() {
    let (buf, _guard) = crate::support::logs::capture();

    let cluster = TestCluster::get();
    let client = cluster.admin().await;
    crate::crds::install(&client).await;
    let ns = cluster.namespace("sops-secret").await;
    let key_ns = cluster.namespace("sealgate-system").await;
    let lab = Lab::new(2);
    key_secret(&client, &key_ns, &lab).await;

    let manifest = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  labels:\n    app: web\ntype: Opaque\nstringData:\n  password: {PASSWORD}\ndata:\n  token: {}\n",
        base64_encode(TOKEN.as_bytes())
    );
    let committed = commit_encrypted(
        &lab,
        "db.enc.yaml",
        &manifest,
        &["--encrypted-regex", "^(data|stringData)$"],
    );
    assert!(
        !committed.contains(PASSWORD),
        "sops left the value in clear"
    );
    let env_committed = commit_encrypted(
        &lab,
        "app.env",
        &format!("API_KEY={ENV_VALUE}\nMODE=prod\n"),
        &[],
    );

    let ctx = Arc::new(SopsContext::new(
        client.clone(),
        key_ns.clone(),
        Some("test".into()),
    ));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(sops_secret::run(ctx, Some(ns.clone()), 2, async move {
        let _ = stop_rx.await;
    }));

    let sopses: Api<SopsSecret> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    sopses
        .create(
            &PostParams::default(),
            &sops_secret(
                "db",
                json!({"manifest": committed, "decryption": {"ageKeySecretRef": "sops-age"}}),
            ),
        )
        .await
        .expect("create SopsSecret");
    sopses
        .create(
            &PostParams::default(),
            &sops_secret(
                "env",
                json!({"file": {"content": env_committed, "format": "dotenv"},
                       "decryption": {"ageKeySecretRef": "sops-age"},
                       "target": {"name": "app-env"}}),
            ),
        )
        .await
        .expect("create file SopsSecret");

    // The manifest's Secret appears with the decrypted values.
    let secret = wait_for("Secret db", || async {
        secrets
            .get_opt("db")
            .await
            .expect("get")
            .filter(|s| s.data.is_some())
    })
    .await;
    let data = secret.data.clone().expect("data");
    assert_eq!(data["password"].0, PASSWORD.as_bytes());
    assert_eq!(data["token"].0, TOKEN.as_bytes());
    assert_eq!(secret.labels()["app"], "web");
    assert_eq!(secret.labels()["app.kubernetes.io/managed-by"], "sealgate");
    let owner = &secret
        .metadata
        .owner_references
        .as_ref()
        .expect("owner refs")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("SopsSecret", "db")
    );
    let ready = wait_for("db Ready", || async {
        let s = sopses.get("db").await.expect("get");
        ready_reason(&s).filter(|(st, _)| st == "True").map(|_| s)
    })
    .await;
    assert_eq!(
        ready
            .status
            .as_ref()
            .and_then(|s| s.synced_resource_version.clone()),
        secret.metadata.resource_version
    );

    // The dotenv file: one key per line.
    let env = wait_for("Secret app-env", || async {
        secrets.get_opt("app-env").await.expect("get")
    })
    .await;
    let env_data = env.data.expect("data");
    assert_eq!(env_data["API_KEY"].0, ENV_VALUE.as_bytes());
    assert_eq!(env_data["MODE"].0, b"prod");

    // A reconcile with nothing changed writes nothing.
    let rv = secret.metadata.resource_version.clone();
    sopses
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"poke": "1"}}})),
        )
        .await
        .expect("poke");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        secrets
            .get("db")
            .await
            .expect("get")
            .metadata
            .resource_version,
        rv
    );

    // Tampered source: refused with a reason, the Secret keeps its value.
    sopses
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"manifest": tamper(&committed)}})),
        )
        .await
        .expect("tamper");
    let refused = wait_for("db refused", || async {
        let s = sopses.get("db").await.expect("get");
        ready_reason(&s)
            .filter(|(st, _)| st == "False")
            .map(|r| (s, r))
    })
    .await;
    assert_eq!(refused.1.1, "InvalidMac", "{:?}", refused.0.status);
    let after = secrets.get("db").await.expect("get");
    assert_eq!(
        after.metadata.resource_version, rv,
        "a refused source must not touch the Secret"
    );
    assert_eq!(after.data.expect("data")["password"].0, PASSWORD.as_bytes());

    // A Secret sealgate does not own is never taken over.
    let foreign = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("foreign".into()),
            ..Default::default()
        },
        string_data: Some([("k".to_owned(), "v".to_owned())].into()),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &foreign)
        .await
        .expect("foreign");
    sopses
        .create(
            &PostParams::default(),
            &sops_secret(
                "takeover",
                json!({"file": {"content": env_committed}, "target": {"name": "foreign"},
                       "decryption": {"ageKeySecretRef": "sops-age"}}),
            ),
        )
        .await
        .expect("create");
    let takeover = wait_for("takeover refused", || async {
        let s = sopses.get("takeover").await.expect("get");
        ready_reason(&s).filter(|(st, _)| st == "False")
    })
    .await;
    assert_eq!(takeover.1, "SecretNotOwned");
    assert_eq!(
        secrets
            .get("foreign")
            .await
            .expect("get")
            .data
            .expect("data")["k"]
            .0,
        b"v"
    );

    // A key Secret without the right identity: NoMatchingKeys.
    let other_key = std::fs::read(&lab.keys[1].0).expect("identity");
    Api::<Secret>::namespaced(client.clone(), &key_ns)
        .create(
            &PostParams::default(),
            &Secret {
                metadata: kube::api::ObjectMeta {
                    name: Some("wrong-age".into()),
                    ..Default::default()
                },
                data: Some([("other.agekey".to_owned(), ByteString(other_key))].into()),
                ..Default::default()
            },
        )
        .await
        .expect("wrong key Secret");
    sopses
        .create(
            &PostParams::default(),
            &sops_secret(
                "nokey",
                json!({"file": {"content": env_committed}, "decryption": {"ageKeySecretRef": "wrong-age"}}),
            ),
        )
        .await
        .expect("create");
    let nokey = wait_for("nokey refused", || async {
        ready_reason(&sopses.get("nokey").await.expect("get")).filter(|(st, _)| st == "False")
    })
    .await;
    assert_eq!(nokey.1, "NoMatchingKeys");
    assert!(secrets.get_opt("nokey").await.expect("get").is_none());

    // Events explain the refusals; nothing anywhere carries a value.
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let evs = wait_for("warning events", || async {
        let l = events.list(&ListParams::default()).await.expect("events");
        let warnings: Vec<_> = l
            .items
            .into_iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .collect();
        (warnings.len() >= 3).then_some(warnings)
    })
    .await;
    let reasons: Vec<_> = evs.iter().filter_map(|e| e.reason.clone()).collect();
    assert!(reasons.iter().any(|r| r == "InvalidMac"), "{reasons:?}");
    let all_status = serde_json::to_string(
        &sopses
            .list(&ListParams::default())
            .await
            .expect("list")
            .items,
    )
    .expect("json");
    let all_events = serde_json::to_string(&evs).expect("json");

    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), controller).await;
    let logs = String::from_utf8(buf.0.lock().expect("logs").clone()).expect("utf8 logs");
    assert!(
        logs.contains("sopssecret"),
        "the capture saw the controller's logs"
    );
    for planted in [PASSWORD, TOKEN, ENV_VALUE] {
        assert!(
            !all_status.contains(planted),
            "value in a SopsSecret object/status"
        );
        assert!(!all_events.contains(planted), "value in an event");
        assert!(!logs.contains(planted), "value in the logs");
        assert!(
            !logs.contains(&base64_encode(planted.as_bytes())),
            "base64 value in the logs"
        );
    }
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}
