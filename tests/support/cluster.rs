//! A real Kubernetes control plane for tests: etcd + kube-apiserver on
//! 127.0.0.1, no kubelet, no controller-manager (like controller-runtime's
//! envtest).
//!
//! Design note: one control plane per test binary, started on first use and
//! shared; every test works in its own namespace (`TestCluster::namespace`).
//! kube-apiserver takes several seconds and ~300 MB to start, so one per
//! test would make the suite slow on a 2-core machine. The processes are not
//! dropped (they live in a `static`); the watchdog in `process::Service`
//! stops them when the test binary exits, however it exits.
//!
//! The binaries are built by `scripts/setup-dev` from `tests/kube-apiserver/`
//! (a wrapper Go module over `k8s.io/kubernetes`) into a cache outside the
//! repository, linked as `.tools/kube/`. Set `USE_EXISTING_CLUSTER=true`
//! (with `KUBECONFIG`) to run against an existing cluster instead.
//!
//! `TestCluster::audited()` is a second, separate control plane (started
//! only by the tests that call it, e.g. the GitSync benchmark) whose
//! kube-apiserver writes a Metadata-level audit log for every request
//! (JSON lines, blocking mode: an event is on disk before the response is
//! sent), so a test can count the API calls a component really made
//! ([`AuditLog`]), by verb, resource and user.
//!
//! Without a controller-manager nothing runs controllers: namespaces are
//! never finalized after deletion, no default ServiceAccount is created, and
//! Pods are never scheduled. Tests create what they need explicitly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use nix::sys::signal::Signal;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::process::{Service, free_port, http_get_status};
use super::tools;

/// Certificates and keys of one control plane, PEM encoded.
pub struct Pki {
    /// The CA that signs the serving and client certificates.
    pub ca_cert: String,
    ca_key: KeyPair,
    ca_params: CertificateParams,
}

impl Pki {
    /// A fresh CA (ECDSA P-256).
    pub fn new(common_name: &str) -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert").pem();
        Self {
            ca_cert,
            ca_key,
            ca_params,
        }
    }

    /// A serving certificate for 127.0.0.1 / localhost: `(cert, key)`.
    pub fn server_cert(&self, extra_names: &[&str]) -> (String, String) {
        let mut names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        names.extend(extra_names.iter().map(|s| (*s).to_owned()));
        let mut params = CertificateParams::new(names).expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A client certificate: `CN=user`, `O=group` for each group.
    pub fn client_cert(&self, user: &str, groups: &[&str]) -> (String, String) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, user);
        for g in groups {
            params.distinguished_name.push(DnType::OrganizationName, *g);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> (String, String) {
        let key = KeyPair::generate().expect("leaf key");
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).expect("sign leaf");
        (cert.pem(), key.serialize_pem())
    }
}

/// Where the control plane came from.
enum Backing {
    /// Processes this test binary started.
    Local(Box<LocalProcesses>),
    /// `USE_EXISTING_CLUSTER=true`: someone else's cluster.
    Existing,
}

/// What a local control plane owns; dropping it is never needed (see the
/// module note), the watchdogs stop and clean up at exit.
struct LocalProcesses {
    _etcd: Service,
    _apiserver: Service,
    /// Deletes the temp dir (etcd data, keys) when the binary exits.
    _cleanup: std::process::Child,
}

/// A running control plane shared by the tests of this binary.
pub struct TestCluster {
    kubeconfig: PathBuf,
    version: String,
    /// The CA (local control planes only), to mint client certificates for
    /// other users ([`TestCluster::client_as`]).
    pki: Option<Pki>,
    /// The audit log of an [`TestCluster::audited`] control plane.
    audit: Option<AuditLog>,
    /// Service-account token issuer and the PEM public key that verifies
    /// its tokens (local control planes only).
    issuer: Option<(String, String)>,
    _backing: Backing,
}

/// A failed start is remembered too, so the other tests fail at once with
/// the same message instead of each retrying a slow start.
static CLUSTER: OnceLock<Result<TestCluster, String>> = OnceLock::new();
/// The audited control plane (see [`TestCluster::audited`]).
static AUDITED: OnceLock<Result<TestCluster, String>> = OnceLock::new();
static NAMESPACE_SEQ: AtomicU32 = AtomicU32::new(0);

/// Admin user name in the client certificate (group `system:masters`).
pub const ADMIN_USER: &str = "sealgate-test-admin";

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, contents).expect("write control-plane file");
    p
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Builds `etcd` and `kube-apiserver` paths from `.tools/kube/`.
fn binaries() -> (PathBuf, PathBuf) {
    let dir = tools::tools_dir().join("kube");
    let etcd = dir.join("etcd");
    let apiserver = dir.join("kube-apiserver");
    for p in [&etcd, &apiserver] {
        assert!(
            p.is_file(),
            "{} not found: run scripts/setup-dev (builds kube-apiserver and etcd from \
             tests/kube-apiserver/ once per machine; the first build takes several minutes)",
            p.display()
        );
    }
    (etcd, apiserver)
}

/// Every request at Metadata level (who, verb, resource, URI, response
/// code; no bodies), logged once when the response is complete.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1\nkind: Policy\n\
omitStages: [\"RequestReceived\"]\nrules:\n- level: Metadata\n";

fn start_local(audit: bool) -> TestCluster {
    let (etcd_bin, apiserver_bin) = binaries();
    let dir = tempfile::tempdir().expect("tempdir");
    let cleanup = super::process::remove_dir_on_exit(dir.path());

    // etcd: own data dir, random client and peer ports, no fsync (tests).
    let (etcd, etcd_port) = super::process::start_with_retry("etcd", || {
        let client = free_port();
        let peer = free_port();
        let data = dir.path().join(format!("etcd-{client}"));
        let mut cmd = Command::new(&etcd_bin);
        cmd.arg(format!("--data-dir={}", data.display()))
            .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
            ))
            .arg(format!("--initial-cluster=default=http://127.0.0.1:{peer}"))
            .arg("--unsafe-no-fsync")
            .arg("--log-level=warn");
        let mut svc = Service::spawn(
            "etcd",
            cmd,
            &dir.path().join(format!("etcd-{client}.log")),
            Signal::SIGTERM,
        );
        svc.wait_ready(Duration::from_secs(30), || {
            http_get_status(client, "/health", |c| c == 200)
        })?;
        Ok((svc, client))
    });

    let pki = Pki::new("sealgate-test-ca");
    let (serving_cert, serving_key) = pki.server_cert(&["kubernetes", "kubernetes.default.svc"]);
    let (admin_cert, admin_key) = pki.client_cert(ADMIN_USER, &["system:masters"]);
    let sa_key = KeyPair::generate().expect("service-account key");
    let d = dir.path();
    let ca_file = write(d, "ca.crt", &pki.ca_cert);
    let cert_file = write(d, "apiserver.crt", &serving_cert);
    let key_file = write(d, "apiserver.key", &serving_key);
    let sa_key_file = write(d, "sa.key", &sa_key.serialize_pem());
    let sa_pub_file = write(d, "sa.pub", &sa_key.public_key_pem());
    if audit {
        write(d, "audit-policy.yaml", AUDIT_POLICY);
    }

    let (apiserver, port) = super::process::start_with_retry("kube-apiserver", || {
        let port = free_port();
        let mut cmd = Command::new(&apiserver_bin);
        cmd.arg(format!("--etcd-servers=http://127.0.0.1:{etcd_port}"))
            .arg(format!("--etcd-prefix=/sealgate-{port}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            // The default reconciler refuses a loopback advertise address;
            // with no Service network there is nothing to reconcile anyway.
            .arg("--endpoint-reconciler-type=none")
            .arg(format!("--secure-port={port}"))
            .arg(format!("--cert-dir={}", d.join("certs").display()))
            .arg(format!("--tls-cert-file={}", cert_file.display()))
            .arg(format!("--tls-private-key-file={}", key_file.display()))
            .arg(format!("--client-ca-file={}", ca_file.display()))
            .arg("--authorization-mode=Node,RBAC")
            .arg(format!(
                "--service-account-key-file={}",
                sa_pub_file.display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                sa_key_file.display()
            ))
            .arg(format!("--service-account-issuer=https://127.0.0.1:{port}"))
            .arg("--service-cluster-ip-range=10.96.0.0/24")
            .arg("--allow-privileged=true")
            .arg("--v=1");
        if audit {
            cmd.arg(format!(
                "--audit-policy-file={}",
                d.join("audit-policy.yaml").display()
            ))
            .arg(format!(
                "--audit-log-path={}",
                d.join("audit.log").display()
            ))
            .arg("--audit-log-format=json")
            // Synchronous: the event is written before the response.
            .arg("--audit-log-mode=blocking")
            .arg("--audit-log-maxsize=0");
        }
        let mut svc = Service::spawn(
            "kube-apiserver",
            cmd,
            &d.join(format!("kube-apiserver-{port}.log")),
            Signal::SIGTERM,
        );
        // /readyz needs TLS; wait for the port, then poll /readyz with the
        // admin client below.
        svc.wait_ready(Duration::from_secs(60), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })?;
        Ok((svc, port))
    });

    let kubeconfig = write(
        d,
        "kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: sealgate-test\n  cluster:\n    \
             server: https://127.0.0.1:{port}\n    certificate-authority-data: {ca}\n\
             users:\n- name: admin\n  user:\n    client-certificate-data: {cert}\n    \
             client-key-data: {key}\ncontexts:\n- name: admin\n  context:\n    cluster: \
             sealgate-test\n    user: admin\ncurrent-context: admin\n",
            ca = b64(&pki.ca_cert),
            cert = b64(&admin_cert),
            key = b64(&admin_key),
        ),
    );

    let audit_path = d.join("audit.log");
    // From here on the directory is owned by the cleanup watchdog.
    let _ = dir.keep();
    let version = wait_ready(&kubeconfig, Duration::from_secs(90)).unwrap_or_else(|e| {
        panic!(
            "kube-apiserver not ready: {e}\n--- kube-apiserver log (tail) ---\n{}",
            apiserver.log_tail()
        )
    });
    TestCluster {
        kubeconfig,
        version,
        pki: Some(pki),
        audit: audit.then_some(AuditLog { path: audit_path }),
        issuer: Some((format!("https://127.0.0.1:{port}"), sa_key.public_key_pem())),
        _backing: Backing::Local(Box::new(LocalProcesses {
            _etcd: etcd,
            _apiserver: apiserver,
            _cleanup: cleanup,
        })),
    }
}

/// Polls `/readyz` through a kube client; returns the server's git version.
/// Runs its own runtime on a separate thread: the caller may be inside a
/// test's runtime, and clients must not outlive the runtime that made them.
fn wait_ready(kubeconfig: &Path, timeout: Duration) -> Result<String, String> {
    let kubeconfig = kubeconfig.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let client = client_from(&kubeconfig, None).await;
            let deadline = tokio::time::Instant::now() + timeout;
            let mut last;
            loop {
                let req = http::Request::get("/readyz")
                    .body(Vec::new())
                    .map_err(|e| e.to_string())?;
                match client.request_text(req).await {
                    Ok(body) if body.trim() == "ok" => break,
                    Ok(body) => last = body,
                    Err(e) => last = e.to_string(),
                }
                if tokio::time::Instant::now() > deadline {
                    return Err(format!("/readyz still failing after {timeout:?}: {last}"));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            let v = client
                .apiserver_version()
                .await
                .map_err(|e| e.to_string())?;
            Ok(v.git_version)
        })
    })
    .join()
    .map_err(|_| "readiness thread panicked".to_owned())?
}

async fn client_from(kubeconfig: &Path, token: Option<String>) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig to config");
    if let Some(token) = token {
        config.auth_info = AuthInfo {
            token: Some(token.into()),
            ..AuthInfo::default()
        };
    }
    Client::try_from(config).expect("kube client")
}

impl TestCluster {
    /// The shared control plane, started on first call (blocking).
    pub fn get() -> &'static TestCluster {
        let started = CLUSTER.get_or_init(|| {
            std::panic::catch_unwind(Self::start).map_err(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "control plane start panicked".to_owned())
            })
        });
        match started {
            Ok(c) => c,
            Err(e) => panic!("test control plane unavailable: {e}"),
        }
    }

    fn start() -> TestCluster {
        let existing = std::env::var("USE_EXISTING_CLUSTER").is_ok_and(|v| v == "true");
        if existing {
            let kubeconfig = std::env::var_os("KUBECONFIG")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".kube/config")))
                .expect("USE_EXISTING_CLUSTER=true needs KUBECONFIG or ~/.kube/config");
            let version = wait_ready(&kubeconfig, Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("existing cluster not ready: {e}"));
            TestCluster {
                kubeconfig,
                version,
                pki: None,
                audit: None,
                issuer: None,
                _backing: Backing::Existing,
            }
        } else {
            start_local(false)
        }
    }

    /// A second control plane, separate from [`TestCluster::get`]'s, with
    /// the apiserver audit log on (see [`AuditLog`]); started on first
    /// call. Always local (an existing cluster's audit log is not ours to
    /// read). For benchmarks and API-call counting; other tests use `get`.
    pub fn audited() -> &'static TestCluster {
        let started = AUDITED.get_or_init(|| {
            std::panic::catch_unwind(|| start_local(true)).map_err(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "control plane start panicked".to_owned())
            })
        });
        match started {
            Ok(c) => c,
            Err(e) => panic!("audited test control plane unavailable: {e}"),
        }
    }

    /// The audit log ([`TestCluster::audited`] only).
    pub fn audit_log(&self) -> Option<&AuditLog> {
        self.audit.as_ref()
    }

    /// A client authenticating as `user` in `groups` with a client
    /// certificate from this control plane's CA (local control planes
    /// only), so a component's requests can be told apart in the audit log.
    pub async fn client_as(&self, user: &str, groups: &[&str]) -> Client {
        let pki = self
            .pki
            .as_ref()
            .expect("client_as needs a local control plane (not USE_EXISTING_CLUSTER)");
        let (cert, key) = pki.client_cert(user, groups);
        let kc = Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig to config");
        config.auth_info = AuthInfo {
            client_certificate_data: Some(b64(&cert)),
            client_key_data: Some(b64(&key).into()),
            ..AuthInfo::default()
        };
        Client::try_from(config).expect("kube client")
    }

    /// Path of a kubeconfig with admin rights (client certificate in
    /// `system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The service-account token issuer (also the default audience of
    /// TokenRequest tokens) and the PEM public key that verifies them, so
    /// JWT-based logins (Vault/OpenBao `jwt` auth) can be configured.
    pub fn token_issuer(&self) -> Option<(&str, &str)> {
        self.issuer.as_ref().map(|(i, k)| (i.as_str(), k.as_str()))
    }

    /// The server's version, e.g. `v1.37.2`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// An admin client bound to the calling test's runtime.
    pub async fn admin(&self) -> Client {
        client_from(&self.kubeconfig, None).await
    }

    /// A client authenticating with a bearer token (e.g. a ServiceAccount
    /// token from [`TestCluster::service_account_token`]).
    pub async fn client_with_token(&self, token: String) -> Client {
        client_from(&self.kubeconfig, Some(token)).await
    }

    /// Creates a unique namespace for one test and returns its name.
    pub async fn namespace(&self, prefix: &str) -> String {
        let n = NAMESPACE_SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        let api: Api<Namespace> = Api::all(self.admin().await);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        api.create(&PostParams::default(), &ns)
            .await
            .expect("create test namespace");
        name
    }

    /// Creates ServiceAccount `name` in `ns` and mints a token for it via
    /// the TokenRequest API (the way kubelet does for pods).
    pub async fn service_account_token(&self, ns: &str, name: &str) -> String {
        let client = self.admin().await;
        let sas: Api<ServiceAccount> = Api::namespaced(client, ns);
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        match sas.create(&PostParams::default(), &sa).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("create ServiceAccount {ns}/{name}: {e}"),
        }
        let tr = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let out = sas
            .create_token_request(name, &PostParams::default(), &tr)
            .await
            .expect("TokenRequest");
        out.status
            .and_then(|s| s.token)
            .expect("TokenRequest returned no token")
    }
}

/// The kube-apiserver audit log of an audited control plane: JSON lines,
/// one per completed request.
pub struct AuditLog {
    path: PathBuf,
}

/// A position in the audit log; events after it are counted.
#[derive(Clone, Copy, Debug)]
pub struct AuditMark(u64);

/// One audited request.
#[derive(Clone, Debug)]
pub struct AuditEvent {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, …
    pub verb: String,
    /// Plural resource (`configmaps`), empty for non-resource URLs.
    pub resource: String,
    /// Subresource (`status`), if any.
    pub subresource: String,
    /// Authenticated user name.
    pub user: String,
    /// The request URI (`?dryRun=All` marks a server-side dry run).
    pub uri: String,
    /// HTTP status code of the response.
    pub code: u16,
}

impl AuditEvent {
    /// Whether this was a server-side dry run (nothing persisted).
    pub fn dry_run(&self) -> bool {
        self.uri.contains("dryRun=All")
    }
}

static FENCE_SEQ: AtomicU32 = AtomicU32::new(0);

impl AuditLog {
    /// The current end of the log.
    pub fn mark(&self) -> AuditMark {
        AuditMark(std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0))
    }

    /// Every event after `mark`. First makes a unique request with `client`
    /// and waits until it is in the log, so every request that completed
    /// before this call is counted (blocking mode writes in order of
    /// completion).
    pub async fn events_since(&self, client: &Client, mark: AuditMark) -> Vec<AuditEvent> {
        let fence = format!(
            "sealgate-audit-fence-{}-{}",
            std::process::id(),
            FENCE_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let api: Api<Namespace> = Api::all(client.clone());
        let _ = api.get_opt(&fence).await;
        for _ in 0..200 {
            let events = self.read_from(mark);
            if let Some(i) = events.iter().position(|e| e.uri.contains(&fence)) {
                let mut events = events;
                events.truncate(i);
                return events;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "audit fence {fence} never appeared in {}",
            self.path.display()
        );
    }

    /// Counts of `user`'s events after `mark` by verb (`patch` split into
    /// `patch` and `patch(dryRun)`), plus `total`.
    pub async fn count_by_verb(
        &self,
        client: &Client,
        mark: AuditMark,
        user: &str,
    ) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for e in self.events_since(client, mark).await {
            if e.user != user {
                continue;
            }
            let verb = if e.dry_run() {
                format!("{}(dryRun)", e.verb)
            } else {
                e.verb.clone()
            };
            *out.entry(verb).or_insert(0) += 1;
            *out.entry("total".to_owned()).or_insert(0) += 1;
        }
        out
    }

    /// Counts of `user`'s events after `mark` by `verb resource`.
    pub async fn count_by_verb_and_resource(
        &self,
        client: &Client,
        mark: AuditMark,
        user: &str,
    ) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for e in self.events_since(client, mark).await {
            if e.user != user {
                continue;
            }
            let mut key = format!("{} {}", e.verb, e.resource);
            if !e.subresource.is_empty() {
                key = format!("{key}/{}", e.subresource);
            }
            if e.dry_run() {
                key.push_str(" (dryRun)");
            }
            *out.entry(key).or_insert(0) += 1;
        }
        out
    }

    fn read_from(&self, mark: AuditMark) -> Vec<AuditEvent> {
        use std::io::{Read, Seek, SeekFrom};
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.path) {
            let _ = f.seek(SeekFrom::Start(mark.0));
            let _ = f.read_to_string(&mut text);
        }
        // Only complete lines (a line being written has no newline yet).
        let complete = text.rfind('\n').map_or("", |i| &text[..i]);
        complete
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["stage"] == "ResponseComplete" || v["stage"] == "Panic")
            .map(|v| {
                let s = |p: &str| {
                    v.pointer(p)
                        .and_then(|x| x.as_str())
                        .unwrap_or("")
                        .to_owned()
                };
                AuditEvent {
                    verb: s("/verb"),
                    resource: s("/objectRef/resource"),
                    subresource: s("/objectRef/subresource"),
                    user: s("/user/username"),
                    uri: s("/requestURI"),
                    code: v
                        .pointer("/responseStatus/code")
                        .and_then(|c| c.as_u64())
                        .unwrap_or(0) as u16,
                }
            })
            .collect()
    }
}
