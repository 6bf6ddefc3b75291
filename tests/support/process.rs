//! A child process that is always stopped: SIGTERM on drop, SIGKILL if it
//! lingers, and its log kept for the failure message.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A free loopback port. Another process may grab it before the service
/// binds; fixtures retry start-up on that (see [`start_with_retry`]).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// A running service process.
pub struct Service {
    name: &'static str,
    child: Child,
    /// A `sh` that waits for EOF on its stdin (a pipe only this test process
    /// holds) and then kills the service. It fires when the test binary
    /// exits by any route — even SIGKILL or a timeout, where `Drop` never
    /// runs — and so also cleans up control planes shared in a `static`.
    watchdog: Option<Child>,
    log: PathBuf,
    /// Signal that makes this service shut down cleanly (PostgreSQL wants
    /// SIGINT for a fast shutdown that also stops its children).
    stop_signal: Signal,
}

impl Service {
    /// Spawns `cmd` with stdout and stderr going to `log`.
    pub fn spawn(name: &'static str, mut cmd: Command, log: &Path, stop_signal: Signal) -> Self {
        let out = File::create(log).expect("create service log");
        let err = out.try_clone().expect("clone log handle");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let pid = child.id();
        let script =
            format!("read x; kill -TERM {pid} 2>/dev/null; sleep 5; kill -KILL {pid} 2>/dev/null");
        let watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        Self {
            name,
            child,
            watchdog,
            log: log.to_owned(),
            stop_signal,
        }
    }

    /// Operating-system process id (tests use it to prove the process ends).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of the service's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Whether the process has exited (e.g. because its port was taken).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Polls `ready` until it returns true, the process dies, or `timeout`
    /// passes. Returns `Err(log tail)` on failure so callers can retry.
    pub fn wait_ready(
        &mut self,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if ready() {
                return Ok(());
            }
            if self.exited() {
                return Err(format!(
                    "{} exited during start-up:\n{}",
                    self.name,
                    self.log_tail()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} not ready after {timeout:?}:\n{}",
                    self.name,
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let pid = Pid::from_raw(self.child.id() as i32);
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = kill(pid, self.stop_signal);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a service up to three times: a free port can be taken between
/// [`free_port`] and the service's bind, and that race must not fail a test.
pub fn start_with_retry<T>(name: &str, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    let mut last = String::new();
    for _ in 0..3 {
        match attempt() {
            Ok(t) => return t,
            Err(e) => last = e,
        }
    }
    panic!("{name} failed to start three times; last error:\n{last}")
}

/// True when a minimal HTTP GET to `127.0.0.1:port` + `path` returns a status
/// accepted by `ok_status`. std-only so readiness checks need no client crate.
pub fn http_get_status(port: u16, path: &str, ok_status: impl Fn(u16) -> bool) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let Ok(n) = s.read(&mut buf) else {
        return false;
    };
    // "HTTP/1.x NNN ..."
    std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .is_some_and(ok_status)
}

/// Whether a process with this pid still exists (and is not a zombie we
/// already reaped).
pub fn process_alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the parenthesised command name (which may contain
    // spaces); "Z" is a zombie, which counts as gone.
    match stat.rsplit_once(')') {
        Some((_, rest)) => rest.split_whitespace().next() != Some("Z"),
        None => false,
    }
}

/// Removes `dir` when this test process exits, however it exits: the same
/// pipe trick as the service watchdog, for state held in a `static` whose
/// `Drop` never runs. Keep the returned child alive as long as `dir` is used.
pub fn remove_dir_on_exit(dir: &Path) -> Child {
    // Wait for the services' own watchdogs (SIGTERM, then SIGKILL after 5 s)
    // before deleting their data.
    Command::new("sh")
        .args(["-c", "read x; sleep 6; rm -rf -- \"$0\""])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn cleanup watchdog")
}
