//! An OpenBao dev server (in-memory storage, unsealed, KV v2 at `secret/`),
//! and [`PersistentBao`]: a server with on-disk storage that survives restarts.

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use tempfile::TempDir;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};

use super::process::{Service, free_port, http_get_status, start_with_retry};
use super::tools;

/// A running OpenBao dev server owned by one test.
pub struct OpenBao {
    service: Service,
    port: u16,
    /// `Some(CA file)` when started with TLS (`-dev-tls`).
    ca: Option<std::path::PathBuf>,
    root_token: String,
    _dir: TempDir,
}

impl OpenBao {
    /// Starts a fresh server; each test gets its own, so mounts and policies
    /// never leak between tests.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Starts a server with TLS (`-dev-tls`): it generates its own CA,
    /// written to [`OpenBao::ca_file`], for tests of custom CA bundles.
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Self {
        let bin = tools::bao();
        start_with_retry("OpenBao", || {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = free_port();
            // Random per server so no test can rely on a well-known token.
            let root_token = format!("root-{}-{port}", std::process::id());
            // A file audit device (OpenBao 2.x only allows declaring them in
            // configuration) lets tests count the requests the server saw.
            let audit_log = dir.path().join("audit.log");
            let config = dir.path().join("audit.hcl");
            std::fs::write(
                &config,
                format!(
                    "audit \"file\" \"test\" {{\n  options {{\n    file_path = \"{}\"\n  }}\n}}\n",
                    audit_log.display()
                ),
            )
            .expect("write audit config");
            let mut cmd = Command::new(&bin);
            cmd.arg("server")
                .arg("-dev")
                .arg(format!("-config={}", config.display()))
                .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
                .arg(format!("-dev-root-token-id={root_token}"))
                .arg("-dev-no-store-token")
                .args(if tls {
                    vec![
                        "-dev-tls".to_owned(),
                        format!("-dev-tls-cert-dir={}", dir.path().display()),
                    ]
                } else {
                    Vec::new()
                })
                // Keep the developer's ~/.vault-token and config out of it.
                .env("HOME", dir.path())
                .env_remove("VAULT_ADDR")
                .env_remove("BAO_ADDR")
                .env_remove("VAULT_TOKEN")
                .env_remove("BAO_TOKEN");
            let mut service =
                Service::spawn("OpenBao", cmd, &dir.path().join("bao.log"), Signal::SIGTERM);
            let ca = tls.then(|| dir.path().join("vault-ca.pem"));
            if let Some(ca) = &ca {
                // TLS: ask the CLI (it verifies with the generated CA).
                let addr = format!("https://127.0.0.1:{port}");
                service.wait_ready(Duration::from_secs(30), || {
                    ca.is_file()
                        && tools::run(
                            Command::new(&bin)
                                .arg("status")
                                .env("BAO_ADDR", &addr)
                                .env("BAO_CACERT", ca),
                            None,
                        )
                        .status
                        .success()
                })?;
            } else {
                // 200 = initialized, unsealed, active.
                service.wait_ready(Duration::from_secs(30), || {
                    http_get_status(port, "/v1/sys/health", |c| c == 200)
                })?;
            }
            Ok(Self {
                service,
                port,
                ca,
                root_token,
                _dir: dir,
            })
        })
    }

    /// `http://127.0.0.1:PORT` (`https://` when started with TLS).
    pub fn addr(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The CA that signed the server certificate (TLS servers only).
    pub fn ca_file(&self) -> Option<&std::path::Path> {
        self.ca.as_deref()
    }

    /// The root token of this dev server.
    pub fn root_token(&self) -> &str {
        &self.root_token
    }

    /// Process id, for tests proving the server stops.
    pub fn pid(&self) -> u32 {
        self.service.pid()
    }

    /// A `vaultrs` client authenticated with the root token.
    pub fn client(&self) -> VaultClient {
        self.client_with_token(&self.root_token)
    }

    /// A `vaultrs` client with a chosen token (for policy tests).
    pub fn client_with_token(&self, token: &str) -> VaultClient {
        let settings = VaultClientSettingsBuilder::default()
            .address(self.addr())
            .token(token)
            .build()
            .expect("vault client settings");
        VaultClient::new(settings).expect("vault client")
    }

    /// How many requests on paths starting with `prefix` the server answered
    /// (from its audit log), for tests that count backend calls.
    pub fn requests_to(&self, prefix: &str) -> usize {
        let log = std::fs::read_to_string(self._dir.path().join("audit.log")).unwrap_or_default();
        log.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["type"] == "response")
            .filter(|v| {
                v["request"]["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with(prefix))
            })
            .count()
    }

    /// Runs the `bao` CLI against this server (for set-up steps the product
    /// does not do itself, like enabling engines).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = tools::run_ok(
            Command::new(tools::bao())
                .args(args)
                .env("BAO_ADDR", self.addr())
                .env("BAO_TOKEN", &self.root_token)
                .env(
                    "BAO_CACERT",
                    self.ca.as_deref().unwrap_or(std::path::Path::new("")),
                )
                .env("HOME", self._dir.path()),
            None,
        );
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// An OpenBao server with persistent storage (not `-dev`; integrated raft
/// storage in a temp dir, as OpenBao 2.x has no `file` backend), so it can be stopped
/// and started again keeping its data: initialised with one unseal key
/// share, unsealed, KV v2 at `secret/`. Tests of backend outages stop the
/// real process, not a proxy in front of it.
pub struct PersistentBao {
    service: Option<Service>,
    port: u16,
    root_token: String,
    unseal_key: String,
    dir: TempDir,
}

impl PersistentBao {
    /// Initialises, unseals and starts a fresh server on a random
    /// loopback port.
    pub fn start() -> Self {
        start_with_retry("OpenBao (persistent)", || {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = free_port();
            let data = dir.path().join("data");
            std::fs::create_dir_all(&data).expect("data dir");
            // OpenBao 2.x has no `file` backend: integrated storage (raft,
            // one node) in the temp dir is the persistent one.
            let cluster_port = free_port();
            std::fs::write(
                dir.path().join("bao.hcl"),
                format!(
                    "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"node1\"\n}}\n\
                     listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  cluster_address = \"127.0.0.1:{cluster_port}\"\n  tls_disable = true\n}}\n\
                     api_addr = \"http://127.0.0.1:{port}\"\n\
                     cluster_addr = \"http://127.0.0.1:{cluster_port}\"\n",
                    data.display()
                ),
            )
            .expect("write bao config");
            let mut service = Self::spawn(dir.path());
            // Any answer means it listens (501: not initialised yet).
            service.wait_ready(Duration::from_secs(30), || {
                http_get_status(port, "/v1/sys/health", |_| true)
            })?;
            let out = Self::cli_as(
                dir.path(),
                port,
                None,
                &[
                    "operator",
                    "init",
                    "-key-shares=1",
                    "-key-threshold=1",
                    "-format=json",
                ],
            );
            let init: serde_json::Value = serde_json::from_str(&out).expect("init JSON");
            let unseal_key = init["unseal_keys_b64"][0]
                .as_str()
                .expect("unseal key")
                .to_owned();
            let root_token = init["root_token"].as_str().expect("root token").to_owned();
            let mut bao = Self {
                service: Some(service),
                port,
                root_token,
                unseal_key,
                dir,
            };
            bao.unseal()?;
            bao.cli(&["secrets", "enable", "-path=secret", "-version=2", "kv"]);
            Ok(bao)
        })
    }

    fn spawn(dir: &std::path::Path) -> Service {
        let mut cmd = Command::new(tools::bao());
        cmd.arg("server")
            .arg(format!("-config={}", dir.join("bao.hcl").display()))
            .env("HOME", dir)
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_ADDR")
            .env_remove("VAULT_TOKEN")
            .env_remove("BAO_TOKEN");
        Service::spawn("OpenBao", cmd, &dir.join("bao.log"), Signal::SIGTERM)
    }

    /// Unseals with the single key share and waits until the server is
    /// active (`sys/health` 200).
    fn unseal(&mut self) -> Result<(), String> {
        let port = self.port;
        Self::cli_as(
            self.dir.path(),
            port,
            None,
            &["operator", "unseal", &self.unseal_key],
        );
        let service = self.service.as_mut().expect("running");
        service.wait_ready(Duration::from_secs(30), || {
            http_get_status(port, "/v1/sys/health", |c| c == 200)
        })
    }

    /// Stops the server process (SIGTERM, waiting for it to exit); its
    /// port then refuses connections. Blocking: call from
    /// `spawn_blocking` in async tests.
    pub fn stop(&mut self) {
        // Service's Drop stops the process and waits for it.
        self.service.take();
    }

    /// Starts the server again on the same port and data, and unseals it.
    /// Blocking, like [`PersistentBao::stop`].
    pub fn restart(&mut self) {
        assert!(self.service.is_none(), "stop() before restart()");
        let port = self.port;
        let mut service = Self::spawn(self.dir.path());
        service
            .wait_ready(Duration::from_secs(30), || {
                http_get_status(port, "/v1/sys/health", |_| true)
            })
            .unwrap_or_else(|e| panic!("OpenBao did not come back: {e}"));
        self.service = Some(service);
        self.unseal()
            .unwrap_or_else(|e| panic!("OpenBao did not unseal: {e}"));
    }

    /// `http://127.0.0.1:PORT` (the same across restarts).
    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The root token from `operator init`.
    pub fn root_token(&self) -> &str {
        &self.root_token
    }

    /// A `vaultrs` client authenticated with the root token.
    pub fn client(&self) -> VaultClient {
        let settings = VaultClientSettingsBuilder::default()
            .address(self.addr())
            .token(&self.root_token)
            .build()
            .expect("vault client settings");
        VaultClient::new(settings).expect("vault client")
    }

    /// Runs the `bao` CLI with the root token.
    pub fn cli(&self, args: &[&str]) -> String {
        Self::cli_as(self.dir.path(), self.port, Some(&self.root_token), args)
    }

    fn cli_as(dir: &std::path::Path, port: u16, token: Option<&str>, args: &[&str]) -> String {
        let mut cmd = Command::new(tools::bao());
        cmd.args(args)
            .env("BAO_ADDR", format!("http://127.0.0.1:{port}"))
            .env("HOME", dir)
            .env_remove("VAULT_TOKEN")
            .env_remove("BAO_TOKEN");
        if let Some(t) = token {
            cmd.env("BAO_TOKEN", t);
        }
        let out = tools::run_ok(&mut cmd, None);
        String::from_utf8_lossy(&out).into_owned()
    }
}
