//! A throwaway PostgreSQL cluster: `initdb` into a temp dir, own port,
//! password authentication over TCP (what Vault's database engine uses).

use std::os::unix::fs::chown;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::{User, geteuid};
use tempfile::TempDir;

use super::process::{Service, free_port, start_with_retry};
use super::tools;

/// The superuser created by `initdb`.
pub const SUPERUSER: &str = "postgres";

/// A running PostgreSQL server owned by one test.
pub struct Postgres {
    service: Service,
    port: u16,
    password: String,
    _dir: TempDir,
}

/// PostgreSQL refuses to run as root. As root we drop to the Debian
/// `postgres` user with `setpriv`, which execs (no intermediate process), so
/// the child we signal is the postmaster itself.
fn as_server_user(bin: &Path) -> Command {
    if geteuid().is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

impl Postgres {
    /// Creates and starts a fresh cluster.
    pub fn start() -> Self {
        // initdb is the slow part (~1-2 s); do it once, retry only the start.
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let sock = dir.path().join("sock");
        std::fs::create_dir(&sock).expect("socket dir");
        let pwfile = dir.path().join("pw");
        let password = format!("pw-{}-{}", std::process::id(), free_port());
        std::fs::write(&pwfile, &password).expect("password file");
        if geteuid().is_root() {
            let user = User::from_name("postgres")
                .expect("look up postgres user")
                .expect("Debian's postgresql package creates the postgres user");
            for p in [dir.path(), sock.as_path(), pwfile.as_path()] {
                chown(p, Some(user.uid.as_raw()), Some(user.gid.as_raw())).expect("chown");
            }
        }
        tools::run_ok(
            as_server_user(&tools::pg_bin("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-U", SUPERUSER, "--auth=scram-sha-256", "--no-sync"])
                .arg(format!("--pwfile={}", pwfile.display())),
            None,
        );
        let (service, port) = start_with_retry("PostgreSQL", || {
            let port = free_port();
            let mut cmd = as_server_user(&tools::pg_bin("postgres"));
            cmd.arg("-D")
                .arg(&data)
                .arg("-p")
                .arg(port.to_string())
                .arg("-k")
                .arg(&sock)
                .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]);
            // The log must be writable by the server user: put it in `dir`.
            let log = dir.path().join(format!("postgres-{port}.log"));
            let mut service = Service::spawn("PostgreSQL", cmd, &log, Signal::SIGINT);
            let ready = || {
                tools::run(
                    Command::new(tools::pg_bin("pg_isready")).args([
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &port.to_string(),
                        "-q",
                    ]),
                    None,
                )
                .status
                .success()
            };
            service.wait_ready(Duration::from_secs(30), ready)?;
            Ok((service, port))
        });
        Self {
            service,
            port,
            password,
            _dir: dir,
        }
    }

    /// TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Process id of the postmaster.
    pub fn pid(&self) -> u32 {
        self.service.pid()
    }

    /// A libpq connection URL for `user`/`password` (Vault's database
    /// engine takes this form).
    pub fn url(&self, user: &str, password: &str) -> String {
        format!(
            "postgresql://{user}:{password}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// Runs SQL through `psql` over TCP as `user` with `password`.
    pub fn psql(&self, user: &str, password: &str, sql: &str) -> Output {
        tools::run(
            Command::new(tools::pg_bin("psql"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-U", user, "-d", "postgres", "-tA", "-v", "ON_ERROR_STOP=1"])
                .args(["-c", sql])
                .env("PGPASSWORD", password)
                .env("PGCONNECT_TIMEOUT", "5"),
            None,
        )
    }

    /// Runs SQL as the superuser and returns trimmed stdout; panics on error.
    pub fn sql(&self, sql: &str) -> String {
        let out = self.psql(SUPERUSER, &self.password, sql);
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// Configures OpenBao's database engine against this PostgreSQL: connection
/// `pg`, role `app` issuing login roles with the given TTLs. Shared so every
/// dynamic-credential test sets the engine up the same way.
pub fn database_engine(
    bao: &super::openbao::OpenBao,
    pg: &Postgres,
    default_ttl: &str,
    max_ttl: &str,
) {
    bao.cli(&["secrets", "enable", "database"]);
    bao.cli(&[
        "write",
        "database/config/pg",
        "plugin_name=postgresql-database-plugin",
        "allowed_roles=app",
        &format!(
            "connection_url=postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?sslmode=disable",
            pg.port()
        ),
        &format!("username={SUPERUSER}"),
        &format!("password={}", pg.password()),
    ]);
    bao.cli(&[
        "write",
        "database/roles/app",
        "db_name=pg",
        "creation_statements=CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
        &format!("default_ttl={default_ttl}"),
        &format!("max_ttl={max_ttl}"),
    ]);
}
