//! A throwaway OpenSSH server on 127.0.0.1 for Git-over-ssh tests: its own
//! host key, its own `authorized_keys`, a random port, logging to a file.
//!
//! Design note: sshd runs as the user running the tests and lets only that
//! user in (a non-root sshd cannot switch users anyway), so the remote
//! `git-upload-pack` reads the test's repositories with the test's rights.
//! Run as root (CI containers), sshd needs its privilege-separation
//! directory `/run/sshd`, which Debian creates only when the system service
//! starts (policy-rc.d keeps apt from starting it in containers); the
//! fixture creates it then (empty, root-owned, 0755 — what the package's
//! tmpfiles entry would create). `UsePAM no` and `StrictModes no` keep it
//! independent of the machine's PAM stack and of temp-dir permissions.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::{User, geteuid};
use tempfile::TempDir;

use super::process::{Service, free_port, start_with_retry};
use super::tools;

/// Where Debian's openssh-server puts the daemon (sshd re-execs itself and
/// insists on an absolute path).
const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd owned by one test.
pub struct Sshd {
    service: Service,
    port: u16,
    user: String,
    host_public: String,
    dir: TempDir,
    keys: u32,
}

/// A client key pair made with `ssh-keygen` (ed25519, no passphrase).
pub struct ClientKey {
    /// The private key file's contents (OpenSSH format).
    pub private: String,
    /// `ssh-ed25519 AAAA… comment`.
    pub public: String,
}

impl ClientKey {
    /// A fresh key pair.
    pub fn generate(dir: &Path, name: &str) -> Self {
        let path = dir.join(name);
        tools::run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
                .arg(&path),
            None,
        );
        ClientKey {
            private: std::fs::read_to_string(&path).expect("read private key"),
            public: std::fs::read_to_string(path.with_extension("pub"))
                .expect("read public key")
                .trim()
                .to_owned(),
        }
    }

    /// The base64 body lines of the private key (each long and unique):
    /// what a leak check greps for.
    pub fn private_body_lines(&self) -> Vec<String> {
        self.private
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 20)
            .map(str::to_owned)
            .collect()
    }
}

impl Sshd {
    /// Starts sshd. Fails (never skips) with the install command when
    /// OpenSSH is missing.
    pub fn start() -> Self {
        assert!(
            Path::new(SSHD).is_file(),
            "{SSHD} not found: run scripts/setup-dev (installs Debian's openssh-server)"
        );
        let me = User::from_uid(geteuid())
            .expect("look up the test user")
            .expect("the test user has a passwd entry");
        let shell = me.shell.display().to_string();
        assert!(
            !shell.ends_with("nologin") && !shell.ends_with("false"),
            "the test user {} has shell {shell}: sshd runs the remote git-upload-pack through it",
            me.name
        );
        if geteuid().is_root() && !Path::new("/run/sshd").is_dir() {
            std::fs::DirBuilder::new()
                .mode(0o755)
                .recursive(true)
                .create("/run/sshd")
                .expect("create sshd's privilege-separation directory /run/sshd");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let host_key = dir.path().join("host_key");
        tools::run_ok(
            Command::new("ssh-keygen")
                .args([
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "sealgate-test-host",
                    "-f",
                ])
                .arg(&host_key),
            None,
        );
        let host_public = std::fs::read_to_string(host_key.with_extension("pub"))
            .expect("host public key")
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let authorized = dir.path().join("authorized_keys");
        std::fs::write(&authorized, "").expect("authorized_keys");
        let d = dir.path().to_owned();
        let (service, port) = start_with_retry("sshd", || {
            let port = free_port();
            let config = d.join(format!("sshd_config-{port}"));
            std::fs::write(
                &config,
                format!(
                    "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nAuthorizedKeysFile {}\n\
                     PidFile none\nUsePAM no\nStrictModes no\nPubkeyAuthentication yes\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     PermitRootLogin prohibit-password\nAllowUsers {}\nAcceptEnv GIT_PROTOCOL\n\
                     X11Forwarding no\nAllowTcpForwarding no\nPrintMotd no\nLogLevel VERBOSE\n",
                    host_key.display(),
                    authorized.display(),
                    me.name,
                ),
            )
            .expect("sshd_config");
            let mut cmd = Command::new(SSHD);
            cmd.args(["-D", "-e", "-f"]).arg(&config);
            let mut svc = Service::spawn(
                "sshd",
                cmd,
                &d.join(format!("sshd-{port}.log")),
                Signal::SIGTERM,
            );
            svc.wait_ready(Duration::from_secs(20), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            })?;
            Ok((svc, port))
        });
        Sshd {
            service,
            port,
            user: me.name,
            host_public,
            dir,
            keys: 0,
        }
    }

    /// A new client key the server accepts.
    pub fn authorize_new_key(&mut self) -> ClientKey {
        self.keys += 1;
        let key = ClientKey::generate(self.dir.path(), &format!("client-{}", self.keys));
        let authorized = self.dir.path().join("authorized_keys");
        let mut text = std::fs::read_to_string(&authorized).expect("read authorized_keys");
        text.push_str(&key.public);
        text.push('\n');
        std::fs::write(&authorized, text).expect("write authorized_keys");
        key
    }

    /// A client key the server does not know.
    pub fn unknown_key(&self) -> ClientKey {
        ClientKey::generate(self.dir.path(), "stranger")
    }

    /// The `known_hosts` line for this server (`[127.0.0.1]:port type key`).
    pub fn known_hosts(&self) -> String {
        format!("[127.0.0.1]:{} {}", self.port, self.host_public)
    }

    /// `ssh://user@127.0.0.1:port/abs/path`.
    pub fn url(&self, repo: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            repo.display()
        )
    }

    /// The port sshd listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user the server lets in (the test user).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// sshd's log (failure messages).
    pub fn log_tail(&self) -> String {
        self.service.log_tail()
    }

    /// The server's directory (host key, authorized_keys, logs).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}
