//! Secret backends against real OpenBao (+ PostgreSQL for dynamic
//! credentials) and moto.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sealgate::providers::aws::{
    AwsAuth, AwsConfig, ParameterStoreProvider, SecretsManagerProvider,
};
use sealgate::providers::vault::{KvVersion, VaultAuth, VaultConfig, VaultProvider};
use sealgate::providers::{Decoding, Provider, ProviderError, Reference, SecretValue};
use sealgate::secret::{ExposeSecret, SecretString};

use crate::support::moto::{Moto, REGION};
use crate::support::openbao::OpenBao;
use crate::support::postgres::{Postgres, database_engine};

fn bytes(v: &SecretValue) -> &[u8] {
    match v {
        SecretValue::Bytes(b) => b.expose_secret(),
        SecretValue::Map(_) => panic!("expected a single value"),
    }
}

fn map(v: &SecretValue) -> BTreeMap<String, String> {
    match v {
        SecretValue::Map(m) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    String::from_utf8(v.expose_secret().to_vec()).unwrap(),
                )
            })
            .collect(),
        SecretValue::Bytes(_) => panic!("expected a map"),
    }
}

async fn root_provider(bao: &OpenBao) -> VaultProvider {
    VaultProvider::connect(VaultConfig::new(
        "vault-test",
        bao.addr(),
        VaultAuth::Token(SecretString::from(bao.root_token())),
    ))
    .await
    .expect("connect with root token")
}

#[tokio::test]
async fn vault_kv2_versions_properties_and_metadata() {
    let bao = OpenBao::start();
    bao.cli(&[
        "kv",
        "put",
        "-mount=secret",
        "app/db",
        "user=app",
        "password=v1-pass",
    ]);
    bao.cli(&[
        "kv",
        "put",
        "-mount=secret",
        "app/db",
        "user=app",
        "password=v2-pass",
        r#"config={"tls":{"ca":"PEMDATA"},"port":5432}"#,
    ]);
    bao.cli(&[
        "kv",
        "metadata",
        "put",
        "-mount=secret",
        "-custom-metadata=owner=team-a",
        "app/db",
    ]);
    let p = root_provider(&bao).await;

    let latest = p.fetch(&Reference::key("app/db")).await.unwrap();
    assert_eq!(latest.meta.version.as_deref(), Some("2"));
    assert_eq!(map(&latest.value)["password"], "v2-pass");
    assert_eq!(
        latest.meta.labels.get("owner").map(String::as_str),
        Some("team-a")
    );

    let v1 = p
        .fetch(&Reference::key("app/db").version("1"))
        .await
        .unwrap();
    assert_eq!(map(&v1.value)["password"], "v1-pass");
    assert!(!map(&v1.value).contains_key("config"));

    let prop = p
        .fetch(&Reference::key("app/db").property("password"))
        .await
        .unwrap();
    assert_eq!(bytes(&prop.value), b"v2-pass");
    let nested = p
        .fetch(&Reference::key("app/db").property("config.tls.ca"))
        .await
        .unwrap();
    assert_eq!(bytes(&nested.value), b"PEMDATA");
    let number = p
        .fetch(&Reference::key("app/db").property("config.port"))
        .await
        .unwrap();
    assert_eq!(bytes(&number.value), b"5432");

    let e = p
        .fetch(&Reference::key("app/db").property("nope"))
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::NotFound { .. }), "{e}");
    let e = p.fetch(&Reference::key("app/missing")).await.unwrap_err();
    assert!(matches!(e, ProviderError::NotFound { .. }), "{e}");
    assert_eq!(e.metric_label(), "not_found");
    let e = p
        .fetch(&Reference::key("app/db").version("latest"))
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::Invalid { .. }), "{e}");
}

#[tokio::test]
async fn vault_kv1_and_base64_binary_values() {
    let bao = OpenBao::start();
    bao.cli(&["secrets", "enable", "-path=kv1", "-version=1", "kv"]);
    // "\x00\xffbin" as base64.
    bao.cli(&[
        "kv",
        "put",
        "-mount=kv1",
        "certs/key",
        "der=AP9iaW4=",
        "name=plain",
    ]);
    let mut cfg = VaultConfig::new(
        "vault-kv1",
        bao.addr(),
        VaultAuth::Token(SecretString::from(bao.root_token())),
    );
    cfg.kv_mount = "kv1".into();
    cfg.kv_version = KvVersion::V1;
    let p = VaultProvider::connect(cfg).await.unwrap();
    let all = p.fetch(&Reference::key("certs/key")).await.unwrap();
    assert_eq!(map(&all.value)["name"], "plain");
    assert_eq!(all.meta.version, None);
    let mut r = Reference::key("certs/key").property("der");
    r.decoding = Decoding::Base64;
    let bin = p.fetch(&r).await.unwrap();
    assert_eq!(bytes(&bin.value), b"\x00\xffbin");
    let mut bad = Reference::key("certs/key").property("name");
    bad.decoding = Decoding::Base64;
    let e = p.fetch(&bad).await.unwrap_err();
    assert!(matches!(e, ProviderError::Invalid { .. }), "{e}");
    let e = p
        .fetch(&Reference::key("certs/key").version("2"))
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::Invalid { .. }), "{e}");
}

#[tokio::test]
async fn vault_approle_login_and_policy_enforcement() {
    let bao = OpenBao::start();
    bao.cli(&[
        "kv",
        "put",
        "-mount=secret",
        "team-a/api",
        "token=allowed-value",
    ]);
    bao.cli(&[
        "kv",
        "put",
        "-mount=secret",
        "team-b/api",
        "token=forbidden-value",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.hcl");
    std::fs::write(
        &policy,
        "path \"secret/data/team-a/*\" { capabilities = [\"read\"] }\n",
    )
    .unwrap();
    bao.cli(&["policy", "write", "team-a", policy.to_str().unwrap()]);
    bao.cli(&["auth", "enable", "approle"]);
    bao.cli(&[
        "write",
        "auth/approle/role/team-a",
        "token_policies=team-a",
        "token_ttl=1h",
    ]);
    let role_id = bao.cli(&["read", "-field=role_id", "auth/approle/role/team-a/role-id"]);
    let secret_id = bao.cli(&[
        "write",
        "-f",
        "-field=secret_id",
        "auth/approle/role/team-a/secret-id",
    ]);

    let approle = |secret: &str| {
        VaultConfig::new(
            "vault-approle",
            bao.addr(),
            VaultAuth::AppRole {
                mount: "approle".into(),
                role_id: role_id.trim().to_owned(),
                secret_id: SecretString::from(secret),
            },
        )
    };
    let p = VaultProvider::connect(approle(secret_id.trim()))
        .await
        .unwrap();
    p.check().await.unwrap();
    let ok = p
        .fetch(&Reference::key("team-a/api").property("token"))
        .await
        .unwrap();
    assert_eq!(bytes(&ok.value), b"allowed-value");
    let e = p.fetch(&Reference::key("team-b/api")).await.unwrap_err();
    assert!(matches!(e, ProviderError::PermissionDenied { .. }), "{e}");
    assert!(!e.to_string().contains("forbidden-value"));

    let e = VaultProvider::connect(approle("00000000-0000-0000-0000-000000000000"))
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::Unauthenticated { .. }), "{e}");
    let e = VaultProvider::connect(VaultConfig::new(
        "vault-bad-token",
        bao.addr(),
        VaultAuth::Token(SecretString::from("not-a-token")),
    ))
    .await
    .unwrap_err();
    assert!(matches!(e, ProviderError::Unauthenticated { .. }), "{e}");
}

fn can_log_in(pg: &Postgres, creds: &SecretValue) -> bool {
    let m = map(creds);
    pg.psql(&m["username"], &m["password"], "select 1")
        .status
        .success()
}

#[tokio::test]
async fn vault_database_credentials_log_in_renew_and_revoke() {
    let pg = Postgres::start();
    let bao = OpenBao::start();
    database_engine(&bao, &pg, "1m", "10m");
    let p = root_provider(&bao).await;

    let creds = p
        .issue(&Reference::key("database/creds/app"))
        .await
        .unwrap();
    let lease = creds
        .meta
        .lease
        .clone()
        .expect("dynamic creds carry a lease");
    assert!(lease.id.starts_with("database/creds/app/"), "{}", lease.id);
    assert_eq!(lease.duration, Duration::from_secs(60));
    assert!(lease.renewable);
    assert!(
        can_log_in(&pg, &creds.value),
        "issued credentials must log in"
    );

    let renewed = p
        .renew(&lease, Some(Duration::from_secs(300)))
        .await
        .unwrap();
    assert_eq!(renewed.id, lease.id);
    assert_eq!(renewed.duration, Duration::from_secs(300));

    p.revoke(&lease).await.unwrap();
    assert!(
        !can_log_in(&pg, &creds.value),
        "revoked credentials must not log in"
    );
    let e = p.renew(&lease, None).await.unwrap_err();
    assert!(
        matches!(
            e,
            ProviderError::Invalid { .. } | ProviderError::NotFound { .. }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn vault_database_credentials_expire_without_renewal() {
    let pg = Postgres::start();
    let bao = OpenBao::start();
    database_engine(&bao, &pg, "2s", "4s");
    let p = root_provider(&bao).await;
    let creds = p
        .issue(&Reference::key("database/creds/app"))
        .await
        .unwrap();
    assert!(can_log_in(&pg, &creds.value));
    // OpenBao revokes the lease at expiry (dropping the role); bounded wait.
    let deadline = Instant::now() + Duration::from_secs(30);
    while can_log_in(&pg, &creds.value) {
        assert!(
            Instant::now() < deadline,
            "credentials still valid long after TTL"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn lease_keeper_renews_then_reissues_before_max_ttl() {
    use sealgate::providers::lease::{LeaseKeeper, Step};
    use std::sync::Arc;

    let pg = Postgres::start();
    let bao = OpenBao::start();
    // TTL 3 s, max TTL 7 s: renew at 2 s (granted 3 s), at 4 s only 3 s
    // remain of the max (still useful? 3 >= 2: renewed), at 6 s 1 s remains
    // (less than the 2 s useful period): re-issue.
    database_engine(&bao, &pg, "3s", "7s");
    let p = Arc::new(root_provider(&bao).await);
    let r = Reference::key("database/creds/app");
    let first = p.issue(&r).await.unwrap();
    let mut keeper = LeaseKeeper::new(Arc::clone(&p), r, &first, 2.0 / 3.0).expect("leased");
    let first_lease = keeper.lease().clone();

    let mut renewals = 0;
    let reissued = loop {
        match tokio::time::timeout(Duration::from_secs(20), keeper.step())
            .await
            .expect("step in time")
            .expect("step")
        {
            Step::Renewed(l) => {
                assert_eq!(l.id, first_lease.id);
                renewals += 1;
                assert!(
                    can_log_in(&pg, &first.value),
                    "renewed credentials still log in"
                );
            }
            Step::Reissued { new, old } => {
                assert_eq!(old.id, first_lease.id);
                break new;
            }
        }
    };
    assert!(
        renewals >= 1,
        "expected at least one renewal before re-issue"
    );
    assert_ne!(keeper.lease().id, first_lease.id);
    assert!(
        can_log_in(&pg, &reissued.value),
        "re-issued credentials log in"
    );
    // The old credential is still valid until revoked: no gap for consumers.
    assert!(can_log_in(&pg, &first.value));
    p.revoke(&first_lease).await.unwrap();
    assert!(!can_log_in(&pg, &first.value));
    assert!(can_log_in(&pg, &reissued.value));
}

#[tokio::test]
async fn vault_custom_ca_bundle_and_namespaces() {
    let bao = OpenBao::start_tls();
    bao.cli(&["namespace", "create", "team-a"]);
    bao.cli(&["secrets", "enable", "-ns=team-a", "-path=secret", "kv-v2"]);
    bao.cli(&[
        "kv",
        "put",
        "-ns=team-a",
        "-mount=secret",
        "app/db",
        "password=in-namespace",
    ]);
    let ca = bao.ca_file().expect("TLS server").to_owned();
    let config = |namespace: Option<&str>, ca_certs: Vec<std::path::PathBuf>| {
        let mut c = VaultConfig::new(
            "vault-tls",
            bao.addr(),
            VaultAuth::Token(SecretString::from(bao.root_token())),
        );
        c.namespace = namespace.map(str::to_owned);
        c.ca_certs = ca_certs;
        c.timeout = Duration::from_secs(5);
        c
    };
    // The namespace header selects team-a's mount.
    let p = VaultProvider::connect(config(Some("team-a"), vec![ca.clone()]))
        .await
        .expect("connect over TLS with the custom CA");
    let got = p
        .fetch(&Reference::key("app/db").property("password"))
        .await
        .unwrap();
    assert_eq!(bytes(&got.value), b"in-namespace");
    // Without the namespace the secret is not there.
    let root = VaultProvider::connect(config(None, vec![ca]))
        .await
        .unwrap();
    let e = root.fetch(&Reference::key("app/db")).await.unwrap_err();
    assert!(matches!(e, ProviderError::NotFound { .. }), "{e}");
    // Without the CA the server certificate is not trusted.
    let e = VaultProvider::connect(config(Some("team-a"), vec![]))
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::Unavailable { .. }), "{e}");
}

#[tokio::test]
async fn a_stopped_vault_is_unavailable_not_a_hang() {
    let bao = OpenBao::start();
    let mut cfg = VaultConfig::new(
        "vault-down",
        bao.addr(),
        VaultAuth::Token(SecretString::from(bao.root_token())),
    );
    cfg.timeout = Duration::from_secs(2);
    let p = VaultProvider::connect(cfg).await.unwrap();
    drop(bao);
    let started = Instant::now();
    let e = p.fetch(&Reference::key("anything")).await.unwrap_err();
    assert!(matches!(e, ProviderError::Unavailable { .. }), "{e}");
    assert!(e.is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_flight_1000_fetches_of_10_references_make_10_backend_calls() {
    use sealgate::providers::cache::{Frugal, FrugalConfig};
    use std::sync::Arc;

    let bao = OpenBao::start();
    for i in 0..10 {
        bao.cli(&[
            "kv",
            "put",
            "-mount=secret",
            &format!("sf/s{i}"),
            &format!("v=value-{i}"),
        ]);
    }
    let before = bao.requests_to("secret/data/sf/");
    let p = Arc::new(Frugal::new(
        root_provider(&bao).await,
        FrugalConfig::default(),
    ));
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let p = Arc::clone(&p);
        tasks.push(tokio::spawn(async move {
            let r = Reference::key(format!("sf/s{}", i % 10)).property("v");
            let f = p.fetch(&r).await.expect("fetch");
            assert_eq!(bytes(&f.value), format!("value-{}", i % 10).as_bytes());
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    // Audit entries are written before the response is sent.
    assert_eq!(bao.requests_to("secret/data/sf/") - before, 10);
    let c = p.counters();
    assert_eq!(c.calls.load(std::sync::atomic::Ordering::Relaxed), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_finds_of_one_query_make_one_listing() {
    use sealgate::providers::FindQuery;
    use sealgate::providers::cache::{Frugal, FrugalConfig};
    use std::sync::Arc;
    use std::time::SystemTime;

    let bao = OpenBao::start();
    for i in 0..3 {
        bao.cli(&["kv", "put", "-mount=secret", &format!("fl/s{i}"), "v=x"]);
    }
    let q = FindQuery {
        path: Some("fl".into()),
        ..FindQuery::default()
    };
    // What one uncached find costs on this server (a listing and reads).
    let raw = root_provider(&bao).await;
    let before = bao.requests_to("secret/");
    assert_eq!(raw.find(&q).await.expect("find").len(), 3);
    let one = bao.requests_to("secret/") - before;
    assert!(one >= 4, "a listing and three reads, got {one}");

    let p = Arc::new(Frugal::new(
        root_provider(&bao).await,
        FrugalConfig::default(),
    ));
    let slot = SystemTime::now();
    let before = bao.requests_to("secret/");
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (p, q) = (Arc::clone(&p), q.clone());
        tasks.push(tokio::spawn(async move {
            p.find_since(&q, slot).await.expect("find").len()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), 3);
    }
    assert_eq!(
        bao.requests_to("secret/") - before,
        one,
        "200 finds, one listing"
    );
    assert_eq!(
        p.counters()
            .calls
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

fn aws_config(moto: &Moto) -> AwsConfig {
    AwsConfig {
        store: "aws-test".into(),
        region: REGION.into(),
        endpoint: Some(moto.endpoint()),
        auth: AwsAuth::Static {
            access_key_id: "testing".into(),
            secret_access_key: SecretString::from("testing"),
            session_token: None,
        },
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn aws_secrets_manager_values_versions_properties_and_batches() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    sm.create_secret()
        .name("prod/db")
        .secret_string(r#"{"username":"app","password":"first","nested":{"k":"v"}}"#)
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("team")
                .value("a")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let second = sm
        .put_secret_value()
        .secret_id("prod/db")
        .secret_string(r#"{"username":"app","password":"second"}"#)
        .send()
        .await
        .unwrap();
    sm.create_secret()
        .name("prod/blob")
        .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(vec![
            0u8, 1, 255,
        ]))
        .send()
        .await
        .unwrap();
    sm.create_secret()
        .name("staging/db")
        .secret_string("plain-text")
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("team")
                .value("b")
                .build(),
        )
        .send()
        .await
        .unwrap();

    let p = SecretsManagerProvider::connect(&aws_config(&moto)).await;
    let cur = p
        .fetch(&Reference::key("prod/db").property("password"))
        .await
        .unwrap();
    assert_eq!(bytes(&cur.value), b"second");
    assert_eq!(cur.meta.version.as_deref(), second.version_id());
    let prev = p
        .fetch(
            &Reference::key("prod/db")
                .property("password")
                .version("AWSPREVIOUS"),
        )
        .await
        .unwrap();
    assert_eq!(bytes(&prev.value), b"first");
    let by_id = p
        .fetch(&Reference::key("prod/db").version(prev.meta.version.clone().unwrap()))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(bytes(&by_id.value)).contains("first"));
    let blob = p.fetch(&Reference::key("prod/blob")).await.unwrap();
    assert_eq!(bytes(&blob.value), &[0u8, 1, 255]);
    let e = p.fetch(&Reference::key("prod/none")).await.unwrap_err();
    assert!(matches!(e, ProviderError::NotFound { .. }), "{e}");
    let e = p
        .fetch(&Reference::key("staging/db").property("x"))
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::Invalid { .. }), "{e}");

    let refs = [
        Reference::key("prod/db").property("username"),
        Reference::key("staging/db"),
        Reference::key("prod/none"),
        Reference::key("prod/db")
            .property("password")
            .version("AWSPREVIOUS"),
    ];
    let got = p.fetch_many(&refs).await;
    assert_eq!(bytes(&got[0].as_ref().unwrap().value), b"app");
    assert_eq!(bytes(&got[1].as_ref().unwrap().value), b"plain-text");
    assert!(
        matches!(got[2], Err(ProviderError::NotFound { .. })),
        "{:?}",
        got[2]
    );
    assert_eq!(bytes(&got[3].as_ref().unwrap().value), b"first");

    let mut tags = BTreeMap::new();
    assert_eq!(
        p.list(Some("prod/"), &tags).await.unwrap(),
        ["prod/blob", "prod/db"]
    );
    tags.insert("team".to_owned(), "b".to_owned());
    assert_eq!(p.list(None, &tags).await.unwrap(), ["staging/db"]);
}

/// An HTTP proxy in front of moto that answers the first `fail` requests
/// with an AWS error (`status`, `error_type`) and forwards the rest.
/// Returns its endpoint and a request counter.
async fn faulty_proxy(
    moto: &Moto,
    fail: usize,
    status: u16,
    error_type: &'static str,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let seen = Arc::new(AtomicUsize::new(0));
    let upstream = moto.endpoint();
    let client = reqwest::Client::new();
    let counter = Arc::clone(&seen);
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (counter, client, upstream) = (Arc::clone(&counter), client.clone(), upstream.clone());
        async move {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            if n < fail {
                return axum::response::Response::builder()
                    .status(status)
                    .header("content-type", "application/x-amz-json-1.1")
                    .header("x-amzn-ErrorType", error_type)
                    .body(axum::body::Body::from(format!(
                        r#"{{"__type":"{error_type}","message":"injected by the test proxy"}}"#
                    )))
                    .unwrap();
            }
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            let url = format!(
                "{upstream}{}",
                parts.uri.path_and_query().map_or("/", |p| p.as_str())
            );
            let mut fwd = client.request(parts.method, url).body(body);
            for (k, v) in &parts.headers {
                if k != "host" {
                    fwd = fwd.header(k, v);
                }
            }
            let resp = fwd.send().await.unwrap();
            let mut out = axum::response::Response::builder().status(resp.status().as_u16());
            for (k, v) in resp.headers() {
                out = out.header(k, v);
            }
            out.body(axum::body::Body::from(resp.bytes().await.unwrap()))
                .unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn aws_throttling_and_5xx_are_retried_then_surfaced() {
    use sealgate::providers::cache::{Frugal, FrugalConfig};
    use std::sync::atomic::Ordering;

    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name("retry/me")
        .secret_string("after-retries")
        .send()
        .await
        .unwrap();
    let via = |endpoint: String| AwsConfig {
        endpoint: Some(endpoint),
        ..aws_config(&moto)
    };

    // Two throttles, then moto answers: the SDK's standard retry recovers.
    let (endpoint, seen) = faulty_proxy(&moto, 2, 400, "ThrottlingException").await;
    let p = SecretsManagerProvider::connect(&via(endpoint)).await;
    let got = p.fetch(&Reference::key("retry/me")).await.unwrap();
    assert_eq!(bytes(&got.value), b"after-retries");
    assert_eq!(seen.load(Ordering::SeqCst), 3);

    // Always throttled: surfaced as Throttled after every layer retried
    // (SDK: 3 attempts per call; Frugal: 2 calls).
    let (endpoint, seen) = faulty_proxy(&moto, usize::MAX, 400, "ThrottlingException").await;
    let cfg = FrugalConfig {
        max_attempts: 2,
        base_backoff: Duration::from_millis(10),
        ..FrugalConfig::default()
    };
    let p = Frugal::new(
        SecretsManagerProvider::connect(&via(endpoint)).await,
        cfg.clone(),
    );
    let e = p.fetch(&Reference::key("retry/me")).await.unwrap_err();
    assert!(matches!(e, ProviderError::Throttled { .. }), "{e}");
    assert_eq!(seen.load(Ordering::SeqCst), 6);
    assert_eq!(p.counters().errors_of("throttled"), 2);

    // Always failing with a 500: Unavailable.
    let (endpoint, _) = faulty_proxy(&moto, usize::MAX, 500, "InternalServiceError").await;
    let p = Frugal::new(SecretsManagerProvider::connect(&via(endpoint)).await, cfg);
    let e = p.fetch(&Reference::key("retry/me")).await.unwrap_err();
    assert!(matches!(e, ProviderError::Unavailable { .. }), "{e}");
    assert!(e.is_retryable());
}

#[tokio::test]
async fn aws_parameter_store_secure_strings_and_paths() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    for (name, value, ty) in [
        (
            "/app/prod/db-password",
            "ssm-secret-1",
            aws_sdk_ssm::types::ParameterType::SecureString,
        ),
        (
            "/app/prod/api/key",
            "ssm-secret-2",
            aws_sdk_ssm::types::ParameterType::SecureString,
        ),
        (
            "/app/staging/db-password",
            "ssm-secret-3",
            aws_sdk_ssm::types::ParameterType::String,
        ),
    ] {
        ssm.put_parameter()
            .name(name)
            .value(value)
            .r#type(ty)
            .send()
            .await
            .unwrap();
    }
    ssm.put_parameter()
        .name("/app/prod/db-password")
        .value("ssm-secret-1b")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();

    let p = ParameterStoreProvider::connect(&aws_config(&moto)).await;
    let v = p
        .fetch(&Reference::key("/app/prod/db-password"))
        .await
        .unwrap();
    assert_eq!(bytes(&v.value), b"ssm-secret-1b");
    assert_eq!(v.meta.version.as_deref(), Some("2"));
    let v1 = p
        .fetch(&Reference::key("/app/prod/db-password").version("1"))
        .await
        .unwrap();
    assert_eq!(bytes(&v1.value), b"ssm-secret-1");
    let all = p.fetch_by_path("/app/prod").await.unwrap();
    assert_eq!(
        all.keys().collect::<Vec<_>>(),
        ["/app/prod/api/key", "/app/prod/db-password"]
    );
    let e = p.fetch(&Reference::key("/app/none")).await.unwrap_err();
    assert!(matches!(e, ProviderError::NotFound { .. }), "{e}");

    let many = p
        .fetch_many(&[
            Reference::key("/app/prod/api/key"),
            Reference::key("/app/none"),
            Reference::key("/app/prod/db-password").version("1"),
            Reference::key("/app/staging/db-password"),
        ])
        .await;
    assert_eq!(bytes(&many[0].as_ref().unwrap().value), b"ssm-secret-2");
    assert!(
        matches!(many[1], Err(ProviderError::NotFound { .. })),
        "{:?}",
        many[1]
    );
    assert_eq!(bytes(&many[2].as_ref().unwrap().value), b"ssm-secret-1");
    assert_eq!(bytes(&many[3].as_ref().unwrap().value), b"ssm-secret-3");
}

/// Captures every log line (all targets, TRACE) while values flow through
/// both backends, then checks that none of the planted values appears in
/// the logs, in errors or in Debug output.
#[tokio::test(flavor = "current_thread")]
async fn secret_values_never_reach_logs_errors_or_debug() {
    let (buf, _guard) = crate::support::logs::capture();

    const PLANTED: [&str; 3] = [
        "PLANTED-vault-7f3a91",
        "PLANTED-aws-2c8e44",
        "PLANTED-ssm-9b1d07",
    ];
    let bao = OpenBao::start();
    bao.cli(&[
        "kv",
        "put",
        "-mount=secret",
        "leak/check",
        &format!("v={}", PLANTED[0]),
    ]);
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name("leak/check")
        .secret_string(format!(r#"{{"v":"{}"}}"#, PLANTED[1]))
        .send()
        .await
        .unwrap();
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name("/leak/check")
        .value(PLANTED[2])
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();

    let mut rendered = Vec::new();
    let vault = root_provider(&bao).await;
    rendered.push(format!("{vault:?}"));
    let sm = SecretsManagerProvider::connect(&aws_config(&moto)).await;
    let ssm = ParameterStoreProvider::connect(&aws_config(&moto)).await;
    for (p, r) in [
        (&vault as &dyn Provider, Reference::key("leak/check")),
        (&vault, Reference::key("leak/check").property("v")),
        (&sm, Reference::key("leak/check")),
        (&sm, Reference::key("leak/check").property("v")),
        (&ssm, Reference::key("/leak/check")),
    ] {
        let f = p.fetch(&r).await.unwrap();
        rendered.push(format!("{f:?}"));
        // Errors built from a value-bearing secret (wrong property, bad
        // base64) must not quote it either.
        let mut bad = r.clone();
        bad.property = Some("missing".into());
        bad.decoding = Decoding::Base64;
        if let Err(e) = p.fetch(&bad).await {
            rendered.push(format!("{e} {e:?}"));
        }
    }
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "no logs captured"
    );
    for v in PLANTED {
        assert!(!logs.contains(v), "{v} leaked into logs");
        for r in &rendered {
            assert!(!r.contains(v), "{v} leaked into {r}");
        }
    }
}

mod cli {
    //! `sealgate store check` and `sealgate get` against real backends.
    use super::*;
    use assert_cmd::Command;
    use predicates::prelude::*;

    fn sealgate() -> Command {
        Command::cargo_bin("sealgate").expect("binary built")
    }

    fn vault_store(dir: &std::path::Path, addr: &str) -> std::path::PathBuf {
        let p = dir.join("vault.yaml");
        std::fs::write(
            &p,
            format!(
                "name: dev-vault\nvault:\n  server: {addr}\n  mount: secret\n  timeoutSeconds: 2\n  auth:\n    token: {{env: TEST_VAULT_TOKEN}}\n"
            ),
        )
        .unwrap();
        p
    }

    #[test]
    fn store_check_and_get_against_openbao() {
        let bao = OpenBao::start();
        bao.cli(&[
            "kv",
            "put",
            "-mount=secret",
            "app/cfg",
            "password=cli-planted-5e1",
            "user=u",
        ]);
        let dir = tempfile::tempdir().unwrap();
        let def = vault_store(dir.path(), &bao.addr());

        sealgate()
            .args(["store", "check", "--config"])
            .arg(&def)
            .env("TEST_VAULT_TOKEN", bao.root_token())
            .assert()
            .success()
            .stdout(predicate::str::contains("store dev-vault: reachable"));

        let out = sealgate()
            .args(["get", "--config"])
            .arg(&def)
            .args(["app/cfg", "--property", "password"])
            .env("TEST_VAULT_TOKEN", bao.root_token())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"cli-planted-5e1");

        let out = sealgate()
            .args(["get", "--config"])
            .arg(&def)
            .arg("app/cfg")
            .env("TEST_VAULT_TOKEN", bao.root_token())
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["user"], "u");

        // Wrong key: input error, and the message names the key.
        sealgate()
            .args(["get", "--config"])
            .arg(&def)
            .arg("app/none")
            .env("TEST_VAULT_TOKEN", bao.root_token())
            .assert()
            .code(2)
            .stderr(predicate::str::contains("app/none"));
        // Wrong token: a refusal (1), never echoing the token.
        sealgate()
            .args(["store", "check", "--config"])
            .arg(&def)
            .env("TEST_VAULT_TOKEN", "s.wrong-token-value")
            .assert()
            .code(1)
            .stderr(predicate::str::contains("not authenticated"))
            .stderr(predicate::str::contains("wrong-token-value").not());
        // Missing credential source: input error naming the field.
        sealgate()
            .args(["store", "check", "--config"])
            .arg(&def)
            .env_remove("TEST_VAULT_TOKEN")
            .assert()
            .code(2)
            .stderr(predicate::str::contains("vault.auth.token"))
            .stderr(predicate::str::contains("TEST_VAULT_TOKEN is not set"));
        // Server gone: unavailable (3).
        let token = bao.root_token().to_owned();
        drop(bao);
        sealgate()
            .args(["store", "check", "--config"])
            .arg(&def)
            .env("TEST_VAULT_TOKEN", token)
            .assert()
            .code(3);
    }

    #[test]
    fn store_definitions_are_validated_with_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.yaml");
        std::fs::write(
            &p,
            "name: x\nvault:\n  server: http://127.0.0.1:1\n  auth: {}\naws:\n  region: us-east-1\n",
        )
        .unwrap();
        sealgate()
            .args(["store", "check", "--config"])
            .arg(&p)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("bad.yaml"))
            .stderr(predicate::str::contains("vault/aws"));
        std::fs::write(
            &p,
            "name: x\nvault:\n  server: http://127.0.0.1:1\n  auth: {}\n",
        )
        .unwrap();
        sealgate()
            .args(["store", "check", "--config"])
            .arg(&p)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("vault.auth"));
        std::fs::write(&p, "name: x\nvault:\n  servr: typo\n").unwrap();
        sealgate()
            .args(["store", "check", "--config"])
            .arg(&p)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("servr"));
    }

    #[test]
    fn store_check_and_get_against_moto() {
        let moto = Moto::start();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let sdk = moto.sdk_config().await;
            aws_sdk_secretsmanager::Client::new(&sdk)
                .create_secret()
                .name("prod/api")
                .secret_string(r#"{"key":"aws-cli-planted"}"#)
                .send()
                .await
                .unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        let def = dir.path().join("aws.yaml");
        std::fs::write(
            &def,
            format!(
                "name: dev-aws\naws:\n  region: {REGION}\n  endpoint: {}\n  auth:\n    static:\n      accessKeyId: {{env: TEST_AWS_ID}}\n      secretAccessKey: {{env: TEST_AWS_KEY}}\n",
                moto.endpoint()
            ),
        )
        .unwrap();
        sealgate()
            .args(["store", "check", "--config"])
            .arg(&def)
            .env("TEST_AWS_ID", "testing")
            .env("TEST_AWS_KEY", "testing")
            .assert()
            .success();
        sealgate()
            .args(["get", "--config"])
            .arg(&def)
            .args(["prod/api", "--property", "key"])
            .env("TEST_AWS_ID", "testing")
            .env("TEST_AWS_KEY", "testing")
            .assert()
            .success()
            .stdout("aws-cli-planted");
    }
}

#[tokio::test]
async fn find_by_path_name_and_tags_in_vault_and_aws() {
    use sealgate::providers::FindQuery;

    let bao = OpenBao::start();
    for (path, v) in [
        ("app/a", "1"),
        ("app/b", "2"),
        ("app/sub/c", "3"),
        ("other/d", "4"),
    ] {
        bao.cli(&["kv", "put", "-mount=secret", path, &format!("v={v}")]);
    }
    for path in ["app/a", "app/sub/c", "other/d"] {
        bao.cli(&[
            "kv",
            "metadata",
            "put",
            "-mount=secret",
            "-custom-metadata=team=x",
            path,
        ]);
    }
    let p = root_provider(&bao).await;
    let names =
        |m: &BTreeMap<String, sealgate::providers::Fetched>| m.keys().cloned().collect::<Vec<_>>();
    let q = FindQuery {
        path: Some("app".into()),
        ..FindQuery::default()
    };
    assert_eq!(
        names(&p.find(&q).await.unwrap()),
        ["app/a", "app/b", "app/sub/c"]
    );
    let q = FindQuery {
        path: Some("app".into()),
        name: Some(regex::Regex::new("/(a|c)$").unwrap()),
        ..FindQuery::default()
    };
    let got = p.find(&q).await.unwrap();
    assert_eq!(names(&got), ["app/a", "app/sub/c"]);
    assert_eq!(map(&got["app/sub/c"].value)["v"], "3");
    let mut tags = BTreeMap::new();
    tags.insert("team".to_owned(), "x".to_owned());
    let q = FindQuery {
        tags: tags.clone(),
        ..FindQuery::default()
    };
    assert_eq!(
        names(&p.find(&q).await.unwrap()),
        ["app/a", "app/sub/c", "other/d"]
    );
    let q = FindQuery {
        path: Some("nothing-here".into()),
        ..FindQuery::default()
    };
    assert!(p.find(&q).await.unwrap().is_empty());

    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    for (name, team) in [
        ("svc/api-key", "x"),
        ("svc/db", "y"),
        ("svc/api-token", "x"),
    ] {
        sm.create_secret()
            .name(name)
            .secret_string(format!("value-of-{name}"))
            .tags(
                aws_sdk_secretsmanager::types::Tag::builder()
                    .key("team")
                    .value(team)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let aws = SecretsManagerProvider::connect(&aws_config(&moto)).await;
    let q = FindQuery {
        path: Some("svc/".into()),
        name: Some(regex::Regex::new("api").unwrap()),
        tags,
    };
    let got = aws.find(&q).await.unwrap();
    assert_eq!(names(&got), ["svc/api-key", "svc/api-token"]);
    assert_eq!(bytes(&got["svc/api-key"].value), b"value-of-svc/api-key");

    let ssm = aws_sdk_ssm::Client::new(&sdk);
    for name in ["/p/app/one", "/p/app/two", "/p/other/three"] {
        ssm.put_parameter()
            .name(name)
            .value("x")
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .unwrap();
    }
    let ps = ParameterStoreProvider::connect(&aws_config(&moto)).await;
    let q = FindQuery {
        path: Some("/p".into()),
        name: Some(regex::Regex::new("/app/").unwrap()),
        ..FindQuery::default()
    };
    assert_eq!(
        names(&ps.find(&q).await.unwrap()),
        ["/p/app/one", "/p/app/two"]
    );
}

/// JWT auth with a real signed token: a ServiceAccount token minted by the
/// test kube-apiserver (TokenRequest), verified by OpenBao with the
/// apiserver's signing key.
#[tokio::test]
async fn vault_jwt_login_with_a_service_account_token() {
    use crate::support::cluster::TestCluster;

    let cluster = TestCluster::get();
    let Some((issuer, public_key)) = cluster.token_issuer() else {
        eprintln!("skipped: needs the local control plane (not USE_EXISTING_CLUSTER)");
        return;
    };
    let ns = cluster.namespace("jwt").await;
    let jwt = cluster.service_account_token(&ns, "app").await;

    let bao = OpenBao::start();
    bao.cli(&["kv", "put", "-mount=secret", "jwt/app", "password=via-jwt"]);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("sa.pub");
    std::fs::write(&key, public_key).unwrap();
    let policy = dir.path().join("p.hcl");
    std::fs::write(
        &policy,
        "path \"secret/data/jwt/*\" { capabilities = [\"read\"] }\n",
    )
    .unwrap();
    bao.cli(&["policy", "write", "jwt-app", policy.to_str().unwrap()]);
    bao.cli(&["auth", "enable", "jwt"]);
    bao.cli(&[
        "write",
        "auth/jwt/config",
        &format!("jwt_validation_pubkeys=@{}", key.display()),
    ]);
    bao.cli(&[
        "write",
        "auth/jwt/role/app",
        "role_type=jwt",
        &format!("bound_audiences={issuer}"),
        "user_claim=sub",
        &format!("bound_subject=system:serviceaccount:{ns}:app"),
        "token_policies=jwt-app",
        "token_ttl=10m",
    ]);
    let login = |jwt: &str| {
        VaultConfig::new(
            "vault-jwt",
            bao.addr(),
            VaultAuth::Jwt {
                mount: "jwt".into(),
                role: "app".into(),
                jwt: SecretString::from(jwt),
            },
        )
    };
    let p = VaultProvider::connect(login(&jwt))
        .await
        .expect("jwt login");
    let got = p
        .fetch(&Reference::key("jwt/app").property("password"))
        .await
        .unwrap();
    assert_eq!(bytes(&got.value), b"via-jwt");
    // A token for another ServiceAccount does not match the bound subject.
    let other = cluster.service_account_token(&ns, "intruder").await;
    let e = VaultProvider::connect(login(&other)).await.unwrap_err();
    assert!(matches!(e, ProviderError::Unauthenticated { .. }), "{e}");
}

/// The client's own token is renewed before it expires, and when renewal
/// is no longer possible (max TTL) the provider logs in again.
#[tokio::test]
async fn vault_client_token_is_renewed_then_replaced_by_a_new_login() {
    let bao = OpenBao::start();
    bao.cli(&["kv", "put", "-mount=secret", "t/s", "v=1"]);
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.hcl");
    std::fs::write(
        &policy,
        "path \"secret/data/t/*\" { capabilities = [\"read\"] }\n",
    )
    .unwrap();
    bao.cli(&["policy", "write", "read-t", policy.to_str().unwrap()]);
    bao.cli(&["auth", "enable", "approle"]);
    bao.cli(&[
        "write",
        "auth/approle/role/short",
        "token_policies=read-t",
        "token_ttl=2s",
        "token_max_ttl=5s",
    ]);
    let role_id = bao.cli(&["read", "-field=role_id", "auth/approle/role/short/role-id"]);
    let secret_id = bao.cli(&[
        "write",
        "-f",
        "-field=secret_id",
        "auth/approle/role/short/secret-id",
    ]);
    let p = VaultProvider::connect(VaultConfig::new(
        "vault-short",
        bao.addr(),
        VaultAuth::AppRole {
            mount: "approle".into(),
            role_id: role_id.trim().to_owned(),
            secret_id: SecretString::from(secret_id.trim()),
        },
    ))
    .await
    .unwrap();
    // Keep reading for 8 s: past the token TTL (needs renewals) and past
    // its max TTL (needs a new login). Every read must succeed.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        p.fetch(&Reference::key("t/s"))
            .await
            .expect("read with a live token");
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert!(
        bao.requests_to("auth/token/renew-self") >= 1,
        "no renewal seen"
    );
    assert!(
        bao.requests_to("auth/approle/login") >= 2,
        "no second login seen"
    );
}

/// IRSA-style web identity: the SDK exchanges a token file for credentials
/// with STS (moto's), then reads the secret.
#[test]
fn aws_web_identity_credentials_through_sts() {
    let moto = Moto::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let sdk = moto.sdk_config().await;
        aws_sdk_secretsmanager::Client::new(&sdk)
            .create_secret()
            .name("irsa/app")
            .secret_string("via-web-identity")
            .send()
            .await
            .unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    // moto accepts any token; the SDK only needs a file to read.
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhcHAifQ.c2ln").unwrap();
    let def = dir.path().join("aws.yaml");
    std::fs::write(
        &def,
        format!(
            "name: irsa\naws:\n  region: {REGION}\n  endpoint: {endpoint}\n  auth:\n    webIdentity:\n      tokenFile: {}\n      roleArn: arn:aws:iam::123456789012:role/app\n",
            token.display(),
            endpoint = moto.endpoint()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sealgate"))
        .args(["get", "--config"])
        .arg(&def)
        .arg("irsa/app")
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"via-web-identity");
}

/// The controller's read path (`Frugal::fetch_batch_since`) uses
/// BatchGetSecretValue: one HTTP request for every reference of one
/// ExternalSecret, counted as one backend call; a second ExternalSecret due
/// in the same refresh slot is served from the copies, and a later slot
/// reads again.
#[tokio::test]
async fn aws_reads_of_one_refresh_go_out_as_one_batch_request() {
    use sealgate::providers::cache::{Frugal, FrugalConfig};
    use std::sync::atomic::Ordering;
    use std::time::SystemTime;

    let moto = Moto::start();
    let sm = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
    for (name, value) in [
        ("batch/a", r#"{"user":"ua","password":"pa"}"#),
        ("batch/b", "plain-b"),
        ("batch/c", "plain-c"),
    ] {
        sm.create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }
    let (endpoint, seen) = faulty_proxy(&moto, 0, 200, "").await;
    let config = AwsConfig {
        endpoint: Some(endpoint),
        ..aws_config(&moto)
    };
    let p = Frugal::new(
        SecretsManagerProvider::connect(&config).await,
        FrugalConfig::default(),
    );
    assert_eq!(p.batch_size(), 20);
    let refs = [
        Reference::key("batch/a").property("user"),
        Reference::key("batch/a").property("password"),
        Reference::key("batch/b"),
        Reference::key("batch/c"),
        Reference::key("batch/missing"),
    ];
    let slot = SystemTime::now();
    let got = p.fetch_batch_since(&refs, slot).await;
    assert_eq!(seen.load(Ordering::SeqCst), 1, "one HTTP request");
    assert_eq!(p.counters().calls.load(Ordering::Relaxed), 1);
    assert_eq!(bytes(&got[0].as_ref().unwrap().value), b"ua");
    assert_eq!(bytes(&got[1].as_ref().unwrap().value), b"pa");
    assert_eq!(bytes(&got[2].as_ref().unwrap().value), b"plain-b");
    assert_eq!(bytes(&got[3].as_ref().unwrap().value), b"plain-c");
    assert!(
        matches!(got[4], Err(ProviderError::NotFound { .. })),
        "{:?}",
        got[4]
    );

    // Another reader due in the same slot: copies, no request.
    let again = p.fetch_batch_since(&refs[..4], slot).await;
    assert!(again.iter().all(Result::is_ok));
    assert_eq!(seen.load(Ordering::SeqCst), 1);

    // The next slot needs fresh reads: one more request.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let next = SystemTime::now();
    sm.put_secret_value()
        .secret_id("batch/b")
        .secret_string("rotated-b")
        .send()
        .await
        .unwrap();
    let fresh = p.fetch_batch_since(&refs[..4], next).await;
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert_eq!(bytes(&fresh[2].as_ref().unwrap().value), b"rotated-b");
}
