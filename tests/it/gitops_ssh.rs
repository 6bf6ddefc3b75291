//! GitSync sources over ssh against a real OpenSSH server on 127.0.0.1
//! (tests/support/sshd.rs): the fetch succeeds with the key and
//! known_hosts from `secretRef`; a wrong known_hosts is refused as a host
//! key failure, an unknown key as an authentication failure, a wrong ref as
//! RefNotFound; and no byte of the private key reaches a TRACE log line, an
//! error, or the GitSync status.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use sealgate::gitops::source::{self, Credentials, SshCredentials};
use sealgate::gitops::spec::{GitRef, LocalRef};
use sealgate::secret::SecretBytes;
use serde_json::json;

use crate::gitops::{Harness, Repo, cm_value, configmap, gitsync};
use crate::support::cluster::TestCluster;
use crate::support::sshd::{ClientKey, Sshd};

fn creds(url: &str, key: &ClientKey, known_hosts: &str) -> SshCredentials {
    SshCredentials::new(url, SecretBytes::from(key.private.as_bytes()), known_hosts)
        .expect("valid ssh credentials")
}

fn main_branch() -> GitRef {
    GitRef {
        branch: Some("main".into()),
        ..Default::default()
    }
}

/// Asserts that no base64 line of the private key occurs in `text`.
fn assert_no_key(key: &ClientKey, text: &str, what: &str) {
    for line in key.private_body_lines() {
        assert!(!text.contains(&line), "private key material in {what}");
    }
}

/// A different host key for the same `[127.0.0.1]:port`: what a
/// man-in-the-middle (or a re-installed server) presents.
fn wrong_known_hosts(sshd: &Sshd, tmp: &std::path::Path) -> String {
    let other = ClientKey::generate(tmp, "impostor-host");
    let typed_key: Vec<&str> = other.public.split_whitespace().take(2).collect();
    format!("[127.0.0.1]:{} {}", sshd.port(), typed_key.join(" "))
}

#[test]
fn fetch_over_ssh_checks_host_keys_and_never_leaks_the_key() {
    let (buf, _guard) = crate::support::logs::capture();

    let mut sshd = Sshd::start();
    let key = sshd.authorize_new_key();
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = Repo::new(tmp.path());
    repo.write("deploy/config.yaml", &configmap("settings", "ssh"));
    let head = repo.commit("one");
    let url = sshd.url(&repo.dir);
    let cache = tmp.path().join("cache");
    let good = creds(&url, &key, &sshd.known_hosts());
    let none = Credentials::default();
    let mut errors = Vec::new();

    let rev = source::fetch_with(&url, &main_branch(), &none, Some(&good), &cache, "deploy")
        .unwrap_or_else(|e| {
            panic!(
                "ssh fetch failed: {e}\n--- sshd log ---\n{}",
                sshd.log_tail()
            )
        });
    assert_eq!(rev.commit, head);
    assert!(!rev.cached);
    assert_eq!(rev.files.len(), 1);
    assert_eq!(rev.files[0].path, "deploy/config.yaml");
    assert!(
        sshd.log_tail().contains("Accepted publickey"),
        "sshd saw a key login:\n{}",
        sshd.log_tail()
    );

    // A new commit over the same cache: fetched again, over ssh.
    repo.write("deploy/config.yaml", &configmap("settings", "ssh-2"));
    let second = repo.commit("two");
    let rev = source::fetch_with(&url, &main_branch(), &none, Some(&good), &cache, "deploy")
        .expect("second fetch");
    assert_eq!(rev.commit, second);

    // A ref that does not exist.
    let wrong_ref = GitRef {
        branch: Some("does-not-exist".into()),
        ..Default::default()
    };
    let e = source::fetch_with(&url, &wrong_ref, &none, Some(&good), &cache, "deploy")
        .map(|r| r.commit)
        .expect_err("wrong ref");
    assert_eq!(e.metric_label(), "RefNotFound", "{e}");
    assert!(e.to_string().contains("branch does-not-exist"), "{e}");
    errors.push(format!("{e} {e:?}"));

    // The server presents a key known_hosts does not pin: refused, with a
    // fresh cache so nothing could come from an earlier fetch.
    let fresh = tmp.path().join("cache-2");
    let mitm = creds(&url, &key, &wrong_known_hosts(&sshd, tmp.path()));
    let e = source::fetch_with(&url, &main_branch(), &none, Some(&mitm), &fresh, "deploy")
        .map(|r| r.commit)
        .expect_err("changed host key");
    assert_eq!(e.metric_label(), "HostKeyRejected", "{e}");
    assert!(e.to_string().contains(&url), "error names the URL: {e}");
    errors.push(format!("{e} {e:?}"));

    // known_hosts that only knows another host: refused as well (never
    // learned on first use).
    let other_host = creds(
        &url,
        &key,
        &format!(
            "git.example.invalid {}",
            sshd.known_hosts()
                .split_whitespace()
                .skip(1)
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
    let e = source::fetch_with(
        &url,
        &main_branch(),
        &none,
        Some(&other_host),
        &fresh,
        "deploy",
    )
    .map(|r| r.commit)
    .expect_err("unknown host");
    assert_eq!(e.metric_label(), "HostKeyRejected", "{e}");
    errors.push(format!("{e} {e:?}"));

    // A key the server does not accept.
    let stranger = sshd.unknown_key();
    let e = source::fetch_with(
        &url,
        &main_branch(),
        &none,
        Some(&creds(&url, &stranger, &sshd.known_hosts())),
        &fresh,
        "deploy",
    )
    .map(|r| r.commit)
    .expect_err("unknown client key");
    assert_eq!(e.metric_label(), "AuthenticationFailed", "{e}");
    assert!(e.to_string().contains(&url), "{e}");
    assert_no_key(&stranger, &format!("{e} {e:?}"), "the auth error");
    errors.push(format!("{e} {e:?}"));

    // The scp-like form goes through the same pinned ssh command (it cannot
    // name a port, so it reaches port 22: refused there, or — where a
    // system sshd runs — a host key known_hosts does not pin).
    let scp = format!("{}@127.0.0.1:{}", sshd.user(), repo.dir.display());
    let e = source::fetch_with(&scp, &main_branch(), &none, Some(&good), &fresh, "deploy")
        .map(|r| r.commit)
        .expect_err("nothing on port 22 that known_hosts pins");
    assert!(
        matches!(e.metric_label(), "FetchFailed" | "HostKeyRejected"),
        "{e}"
    );
    assert!(e.to_string().contains(&scp), "{e}");
    errors.push(format!("{e} {e:?}"));

    // An ssh URL without ssh credentials is refused before any process.
    let e = source::fetch(&url, &main_branch(), &none, &fresh, "deploy")
        .map(|r| r.commit)
        .expect_err("no key");
    assert_eq!(e.metric_label(), "CredentialsInvalid", "{e}");

    // No private key bytes anywhere; no key file left behind.
    for text in &errors {
        assert_no_key(&key, text, "an error");
    }
    assert_no_key(&key, &format!("{good:?}"), "Debug output");
    let logs = buf.text();
    assert_no_key(&key, &logs, "TRACE logs");
    for dir in [&cache, &fresh] {
        let leftovers: Vec<_> = std::fs::read_dir(dir)
            .expect("cache dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".ssh-"))
            .collect();
        assert!(leftovers.is_empty(), "private ssh dirs left: {leftovers:?}");
    }
}

/// The GitSync loop over ssh: the key and known_hosts come from the
/// `secretRef` Secret (`identity`, `known_hosts`); a wrong known_hosts
/// refuses the revision whole and applies nothing.
#[tokio::test(flavor = "current_thread")]
async fn gitsync_over_ssh_applies_and_a_wrong_known_hosts_applies_nothing() {
    let (buf, _guard) = crate::support::logs::capture();

    let mut sshd = Sshd::start();
    let key = sshd.authorize_new_key();
    let cluster = TestCluster::get();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::new(cluster, tmp.path()).await;
    let ns = cluster.namespace("gitops-ssh").await;
    let repo = Repo::new(tmp.path());
    repo.write("deploy/config.yaml", &configmap("settings", "over-ssh"));
    let head = repo.commit("one");
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &ns);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "git-ssh"},
                "stringData": {"identity": key.private, "known_hosts": sshd.known_hosts()},
            }))
            .expect("secret"),
        )
        .await
        .expect("ssh Secret");
    let mut gs = gitsync(&ns, &sshd.url(&repo.dir), json!({}));
    gs.spec.source.secret_ref = Some(LocalRef {
        name: "git-ssh".into(),
    });

    let report = h.sync(&gs).await;
    assert!(
        report.ok,
        "{}: {}\n--- sshd log ---\n{}",
        report.reason,
        report.message,
        sshd.log_tail()
    );
    assert_eq!(
        h.status.last_applied_revision.as_deref(),
        Some(head.as_str())
    );
    assert_eq!(
        cm_value(&h.client, &ns, "settings").await.as_deref(),
        Some("over-ssh")
    );

    // A new commit, but known_hosts now pins another key: nothing applied.
    repo.write(
        "deploy/config.yaml",
        &configmap("settings", "must-not-apply"),
    );
    repo.commit("two");
    secrets
        .patch(
            "git-ssh",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"stringData": {"known_hosts": wrong_known_hosts(&sshd, tmp.path())}}),
            ),
        )
        .await
        .expect("patch known_hosts");
    let report = h.sync(&gs).await;
    assert!(!report.ok);
    assert_eq!(report.reason, "HostKeyRejected", "{}", report.message);
    assert_eq!(
        cm_value(&h.client, &ns, "settings").await.as_deref(),
        Some("over-ssh"),
        "nothing of the refused revision is applied"
    );
    assert_eq!(
        h.status.last_applied_revision.as_deref(),
        Some(head.as_str())
    );
    let (status, reason, _) = h.ready();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "HostKeyRejected")
    );

    let status = serde_json::to_string(&h.status).expect("json");
    assert_no_key(&key, &status, "status");
    assert_no_key(&key, &format!("{report:?}"), "the sync report");
    assert_no_key(&key, &buf.text(), "TRACE logs");
}
