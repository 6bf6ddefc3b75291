//! The admission webhook against the real kube-apiserver: sealgate's
//! webhook server runs in-process on 127.0.0.1 with a certificate made in
//! the test, a ValidatingWebhookConfiguration points the apiserver at it by
//! URL, and objects are written with `kube` directly — no lint, no
//! reconcile loop in between.

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use sealgate::webhook::{Policy, TlsFiles};
use serde_json::json;

use crate::support::cluster::{ADMIN_USER, Pki, TestCluster};

/// Values planted in the objects under review; none may appear in an
/// error message or a log line. Assembled at run time so this file holds
/// no credential-shaped literal.
fn planted(tag: &str) -> String {
    format!("PLANTED-{tag}-{}", "c3f9e1a77b")
}

/// A GitHub-format token (the gate's `token/github` detector) that is
/// clearly a test value.
fn planted_token() -> String {
    format!("ghp_{}{}", "PLANTEDwebhook", "R8c2Kq9LmW3zX7vB1nT5yP0s")
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A namespace labelled so that only this test's webhook sees it (the
/// control plane is shared with every other test).
async fn labelled_namespace(
    cluster: &TestCluster,
    client: &Client,
    prefix: &str,
    run: &str,
) -> String {
    let ns = cluster.namespace(prefix).await;
    Api::<Namespace>::all(client.clone())
        .patch(
            &ns,
            &PatchParams::apply("sealgate-tests"),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"sealgate-webhook-test": run}}
            })),
        )
        .await
        .expect("label namespace");
    ns
}

/// The webhook registration the shipped manifest uses, pointed at a URL
/// and limited to namespaces labelled with `run`.
fn registration(name: &str, url: &str, ca: &str, run: &str) -> ValidatingWebhookConfiguration {
    let ops = json!(["CREATE", "UPDATE"]);
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "webhooks": [{
            "name": "gate.sealgate.dev",
            "clientConfig": {"url": url, "caBundle": base64_encode(ca)},
            "rules": [
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ops,
                 "resources": ["secrets", "configmaps", "pods"], "scope": "Namespaced"},
                {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ops,
                 "resources": ["deployments", "statefulsets", "daemonsets"], "scope": "Namespaced"},
                {"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": ops,
                 "resources": ["jobs", "cronjobs"], "scope": "Namespaced"}
            ],
            "namespaceSelector": {"matchLabels": {"sealgate-webhook-test": run}},
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 10
        }]
    }))
    .expect("ValidatingWebhookConfiguration")
}

fn plaintext_secret(name: &str, value: &str) -> Secret {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "stringData": {"password": value}
    }))
    .expect("Secret")
}

/// The apiserver's refusal of `result`, which must be a denial by the
/// webhook (403 with sealgate's message).
fn denial<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) -> String {
    match result {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 403, "{what}: {e:?}");
            assert!(
                e.message.contains("sealgate refused"),
                "{what}: {}",
                e.message
            );
            e.message
        }
        other => panic!("{what} was not refused by the webhook: {other:?}"),
    }
}

/// A ServiceAccount that may write Secrets in `ns`, as a client: someone
/// other than sealgate who claims sealgate's field manager.
async fn intruder(cluster: &TestCluster, admin: &Client, ns: &str) -> Client {
    let token = cluster.service_account_token(ns, "intruder").await;
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "secret-writer"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"],
                   "verbs": ["get", "create", "patch", "update"]}]
    }))
    .expect("Role");
    Api::<Role>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("Role");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "secret-writer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secret-writer"},
        "subjects": [{"kind": "ServiceAccount", "name": "intruder", "namespace": ns}]
    }))
    .expect("RoleBinding");
    Api::<RoleBinding>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("RoleBinding");
    cluster.client_with_token(token).await
}

#[tokio::test(flavor = "current_thread")]
async fn the_webhook_refuses_plaintext_and_admits_clean_sealgate_and_exempt_objects() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let (buf, _guard) = crate::support::logs::capture();

    let cluster = TestCluster::get();
    let admin = cluster.admin().await;
    let run = format!("hook-{}", std::process::id());
    let ns = labelled_namespace(cluster, &admin, "webhook-gate", &run).await;
    let exempt_ns = labelled_namespace(cluster, &admin, "webhook-exempt", &run).await;

    // The webhook server, in-process, with a certificate made here.
    let pki = Pki::new("sealgate-webhook-test-ca");
    let (cert, key) = pki.server_cert(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let tls = TlsFiles {
        cert: dir.path().join("tls.crt"),
        key: dir.path().join("tls.key"),
    };
    std::fs::write(&tls.cert, cert).expect("write cert");
    std::fs::write(&tls.key, key).expect("write key");
    let mut policy = Policy::default();
    policy.exempt_namespaces.insert(exempt_ns.clone());
    policy.sealgate_users.insert(ADMIN_USER.to_owned());
    policy
        .exempt_labels
        .insert("sealgate.dev/gate".to_owned(), "skip".to_owned());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = axum_server::Handle::new();
    let server = tokio::spawn(sealgate::webhook::serve(
        listener,
        tls.clone(),
        Duration::from_secs(1),
        policy,
        handle.clone(),
    ));

    let name = format!("sealgate-gate-{run}");
    let vwcs: Api<ValidatingWebhookConfiguration> = Api::all(admin.clone());
    let _ = vwcs.delete(&name, &DeleteParams::default()).await;
    vwcs.create(
        &PostParams::default(),
        &registration(
            &name,
            &format!("https://127.0.0.1:{port}/validate"),
            &pki.ca_cert,
            &run,
        ),
    )
    .await
    .expect("create ValidatingWebhookConfiguration");

    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns);
    // The apiserver loads webhook configurations asynchronously: probe
    // until the webhook answers (bounded; not a timing assertion).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let probe = plaintext_secret(&format!("probe-{attempt}"), &planted("probe"));
        match secrets.create(&PostParams::default(), &probe).await {
            Err(kube::Error::Api(e)) if e.code == 403 => break,
            Ok(_) | Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            other => panic!("the webhook never answered: {other:?}"),
        }
    }

    // 1. A plaintext Secret written with kube directly is refused; the
    // message names object, field and rule, never the value.
    let pw = planted("password");
    let msg = denial(
        secrets
            .create(&PostParams::default(), &plaintext_secret("db", &pw))
            .await,
        "plaintext Secret",
    );
    assert!(msg.contains(&format!("Secret {ns}/db")), "{msg}");
    // The apiserver folds stringData into data before admission.
    assert!(msg.contains("data.password"), "{msg}");
    assert!(msg.contains("k8s/secret-plaintext"), "{msg}");
    assert!(!msg.contains(&pw) && !msg.contains("PLAN"), "{msg}");
    assert!(secrets.get_opt("db").await.expect("get").is_none());

    // 2. A ConfigMap carrying an API token is refused.
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns);
    let token = planted_token();
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "app"},
        "data": {"GITHUB_TOKEN": token, "LOG_LEVEL": "info"}
    }))
    .expect("ConfigMap");
    let msg = denial(
        cms.create(&PostParams::default(), &cm).await,
        "ConfigMap with a token",
    );
    assert!(msg.contains(&format!("ConfigMap {ns}/app")), "{msg}");
    assert!(msg.contains("data.GITHUB_TOKEN"), "{msg}");
    assert!(!msg.contains(&token) && !msg.contains("ghp_"), "{msg}");

    // 3. A clean ConfigMap is admitted.
    let clean: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "settings"},
        "data": {"LOG_LEVEL": "info", "DB_HOST": "db.team-a.svc", "FEATURES": "search,checkout"}
    }))
    .expect("ConfigMap");
    cms.create(&PostParams::default(), &clean)
        .await
        .expect("a clean ConfigMap is admitted");

    // 4. A workload with a literal credential in its env is refused.
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &ns);
    let env_value = planted("env");
    let dep: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx",
                    "env": [{"name": "DB_PASSWORD", "value": env_value}]}]}
            }
        }
    }))
    .expect("Deployment");
    let msg = denial(
        deployments.create(&PostParams::default(), &dep).await,
        "Deployment with a literal password",
    );
    assert!(
        msg.contains("spec.template.spec.containers[0].env[0].value"),
        "{msg}"
    );
    assert!(msg.contains("k8s/env-literal-credential"), "{msg}");
    assert!(!msg.contains(&env_value), "{msg}");

    // 5. A Secret written by sealgate (server-side apply, field manager
    // `sealgate`, from a configured sealgate user) is admitted ...
    let managed_value = planted("managed");
    let managed = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "managed", "labels": {
            "app.kubernetes.io/managed-by": "sealgate",
            "sealgate.dev/owner": "SopsSecret.managed"}},
        "stringData": {"password": managed_value}
    });
    let ssa = PatchParams::apply(sealgate::controller::sops_secret::FIELD_MANAGER).force();
    secrets
        .patch("managed", &ssa, &Patch::Apply(&managed))
        .await
        .expect("sealgate's own server-side apply is admitted");
    // (an update by sealgate — a rotated value — too) ...
    let mut rotated = managed.clone();
    rotated["stringData"]["password"] = json!(planted("rotated"));
    secrets
        .patch("managed", &ssa, &Patch::Apply(&rotated))
        .await
        .expect("sealgate's own update is admitted");
    // ... and so is a later edit by someone else that leaves the stored
    // value alone (a label), with a warning instead of a refusal ...
    secrets
        .patch(
            "managed",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
        )
        .await
        .expect("relabelling a sealgate-managed Secret is admitted");
    // ... but someone else changing the value is refused.
    let msg = denial(
        secrets
            .patch(
                "managed",
                &PatchParams::default(),
                &Patch::Merge(json!({"stringData": {"password": planted("overwrite")}})),
            )
            .await,
        "an edit of a managed Secret's value",
    );
    assert!(msg.contains("data.password"), "{msg}");

    // 6. Claiming sealgate's field manager from another identity is not
    // enough.
    let other = intruder(cluster, &admin, &ns).await;
    let other_secrets: Api<Secret> = Api::namespaced(other, &ns);
    let mut forged = managed.clone();
    forged["metadata"]["name"] = json!("forged");
    denial(
        other_secrets
            .patch("forged", &ssa, &Patch::Apply(&forged))
            .await,
        "a forged sealgate apply",
    );

    // 7. An exempt namespace admits a plaintext Secret.
    Api::<Secret>::namespaced(admin.clone(), &exempt_ns)
        .create(
            &PostParams::default(),
            &plaintext_secret("legacy", &planted("exempt")),
        )
        .await
        .expect("exempt namespace admits");

    // 8. So does an exempt label, and only with the configured value.
    let mut labelled = plaintext_secret("labelled", &planted("label"));
    labelled.metadata.labels = Some([("sealgate.dev/gate".to_owned(), "skip".to_owned())].into());
    secrets
        .create(&PostParams::default(), &labelled)
        .await
        .expect("exempt label admits");
    let mut wrong = plaintext_secret("labelled-wrong", &planted("label"));
    wrong.metadata.labels = Some([("sealgate.dev/gate".to_owned(), "off".to_owned())].into());
    denial(
        secrets.create(&PostParams::default(), &wrong).await,
        "another label value",
    );

    vwcs.delete(&name, &DeleteParams::default())
        .await
        .expect("delete webhook configuration");
    handle.shutdown();
    let _ = server.await;

    // No log line — ours, kube's, hyper's, rustls's — carries a value.
    let logs = String::from_utf8(buf.0.lock().expect("logs").clone()).expect("utf8 logs");
    assert!(
        logs.contains("refused plaintext secret"),
        "the capture saw the webhook's logs"
    );
    for v in [
        pw,
        token,
        env_value,
        managed_value,
        planted("overwrite"),
        planted("rotated"),
        planted("probe"),
        planted("exempt"),
        planted("label"),
    ] {
        assert!(!logs.contains(&v), "a planted value reached the logs");
    }
    assert!(
        !logs.contains("PLANTED"),
        "a planted value reached the logs"
    );
}

/// GET /healthz over TLS trusting only `ca`; `Err` when the handshake fails.
async fn healthz(port: u16, ca: &str) -> Result<String, reqwest::Error> {
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes())?])
        .build()?;
    client
        .get(format!("https://127.0.0.1:{port}/healthz"))
        .send()
        .await?
        .text()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_certificate_in_the_mounted_files_is_served_without_a_restart() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let first = Pki::new("first-ca");
    let second = Pki::new("second-ca");
    let dir = tempfile::tempdir().expect("tempdir");
    let tls = TlsFiles {
        cert: dir.path().join("tls.crt"),
        key: dir.path().join("tls.key"),
    };
    let (cert, key) = first.server_cert(&[]);
    std::fs::write(&tls.cert, cert).expect("cert");
    std::fs::write(&tls.key, key).expect("key");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = axum_server::Handle::new();
    let server = tokio::spawn(sealgate::webhook::serve(
        listener,
        tls.clone(),
        Duration::from_millis(200),
        Policy::default(),
        handle.clone(),
    ));
    let mut ok = None;
    for _ in 0..100 {
        if let Ok(body) = healthz(port, &first.ca_cert).await {
            ok = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ok.as_deref(), Some("ok"), "the first certificate is served");
    assert!(healthz(port, &second.ca_cert).await.is_err());

    // A half-written pair (new certificate, old key) is rejected and the
    // old certificate stays in service.
    let (cert2, key2) = second.server_cert(&[]);
    std::fs::write(&tls.cert, &cert2).expect("cert");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        healthz(port, &first.ca_cert).await.ok().as_deref(),
        Some("ok"),
        "a mismatched pair must not replace the working certificate"
    );
    // The complete pair is picked up.
    std::fs::write(&tls.key, &key2).expect("key");
    let mut switched = false;
    for _ in 0..100 {
        if healthz(port, &second.ca_cert).await.is_ok() {
            switched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(switched, "the new certificate was never served");
    assert!(healthz(port, &first.ca_cert).await.is_err());
    handle.shutdown();
    let _ = server.await;
}

/// `deploy/webhook/bootstrap-tls.sh` against the real apiserver: the TLS
/// Secret is created, every webhook of the configuration gets the CA, the
/// certificate is valid for the Service name, and a second run rotates
/// while keeping the previous CA in the bundle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_tls_creates_the_secret_and_patches_the_ca_bundle() {
    use std::process::Command;
    let cluster = TestCluster::get();
    let admin = cluster.admin().await;
    let ns = cluster.namespace("webhook-bootstrap").await;
    let name = format!("sealgate-bootstrap-{ns}");
    // Two webhooks like the shipped file, selecting no namespace at all so
    // that the shared control plane is unaffected.
    let hooks: Vec<serde_json::Value> = ["a.gate.sealgate.dev", "b.gate.sealgate.dev"]
        .iter()
        .map(|n| {
            json!({
                "name": n,
                "clientConfig": {"service": {"name": "sealgate-webhook", "namespace": ns, "path": "/validate"}},
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["secrets"]}],
                "namespaceSelector": {"matchLabels": {"sealgate.dev/never-selected": "true"}},
                "failurePolicy": "Ignore",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"]
            })
        })
        .collect();
    let vwc: ValidatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": name},
        "webhooks": hooks,
    }))
    .expect("ValidatingWebhookConfiguration");
    let vwcs: Api<ValidatingWebhookConfiguration> = Api::all(admin.clone());
    vwcs.create(&PostParams::default(), &vwc)
        .await
        .expect("create ValidatingWebhookConfiguration");

    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/webhook/bootstrap-tls.sh");
    let out = tempfile::tempdir().expect("tempdir");
    let run = |sub: &str| {
        let dir = out.path().join(sub);
        let o = Command::new("bash")
            .arg(&script)
            .env("KUBECONFIG", cluster.kubeconfig())
            .env("NAMESPACE", &ns)
            .env("WEBHOOK", &name)
            .env("DAYS", "2")
            .env("OUT_DIR", &dir)
            .output()
            .expect("run bootstrap-tls.sh");
        assert!(
            o.status.success(),
            "bootstrap-tls.sh failed: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        dir
    };
    let first = run("first");
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns);
    let secret = secrets
        .get("sealgate-webhook-tls")
        .await
        .expect("TLS Secret");
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let data = secret.data.expect("data");
    let crt = std::fs::read(first.join("tls.crt")).expect("tls.crt");
    assert_eq!(data["tls.crt"].0, crt);
    assert!(data.contains_key("tls.key"));

    let bundle = |v: &ValidatingWebhookConfiguration| -> Vec<String> {
        v.webhooks
            .as_ref()
            .expect("webhooks")
            .iter()
            .map(|h| {
                let b = h.client_config.ca_bundle.as_ref().expect("caBundle");
                String::from_utf8(b.0.clone()).expect("PEM")
            })
            .collect()
    };
    let got = bundle(&vwcs.get(&name).await.expect("get"));
    let ca1 = std::fs::read_to_string(first.join("ca.crt")).expect("ca.crt");
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|b| b.trim() == ca1.trim()), "{got:?}");
    // The serving certificate verifies against the bundle for the Service
    // name the apiserver dials.
    let verify = Command::new("openssl")
        .args(["verify", "-verify_hostname"])
        .arg(format!("sealgate-webhook.{ns}.svc"))
        .arg("-CAfile")
        .arg(first.join("ca.crt"))
        .arg(first.join("tls.crt"))
        .output()
        .expect("openssl verify");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // Rotation: new CA first, previous CA kept, Secret replaced.
    let second = run("second");
    let ca2 = std::fs::read_to_string(second.join("ca.crt")).expect("ca.crt");
    assert_ne!(ca1, ca2);
    for b in bundle(&vwcs.get(&name).await.expect("get")) {
        assert!(b.starts_with(ca2.trim()), "new CA first");
        assert!(b.contains(ca1.trim()), "previous CA kept");
        assert_eq!(
            b.matches("BEGIN CERTIFICATE").count(),
            2,
            "only one old CA kept"
        );
    }
    let rotated = secrets
        .get("sealgate-webhook-tls")
        .await
        .expect("TLS Secret");
    assert_eq!(
        rotated.data.expect("data")["tls.crt"].0,
        std::fs::read(second.join("tls.crt")).expect("tls.crt")
    );
    vwcs.delete(&name, &DeleteParams::default())
        .await
        .expect("delete");
}
