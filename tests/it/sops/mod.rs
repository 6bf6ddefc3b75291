//! sops compatibility, tested against the real `sops` (3.11 wheel and 3.13
//! Go build) and the Go `age` CLI. Every file is created at test time with
//! fresh keys from `age-keygen`; nothing here mocks sops.

mod cli;
mod interop;
mod props;
mod vectors;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::tools;

/// A scratch directory with age keys.
pub struct Lab {
    pub dir: tempfile::TempDir,
    /// (identity file, recipient) pairs.
    pub keys: Vec<(PathBuf, String)>,
}

impl Lab {
    pub fn new(nkeys: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = (0..nkeys)
            .map(|i| {
                let p = dir.path().join(format!("key{i}.txt"));
                tools::run_ok(Command::new(tools::age_keygen()).arg("-o").arg(&p), None);
                let r = tools::run_ok(Command::new(tools::age_keygen()).arg("-y").arg(&p), None);
                (p, String::from_utf8(r).unwrap().trim().to_owned())
            })
            .collect();
        Lab { dir, keys }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    /// A key file holding the given identities.
    pub fn keyfile(&self, which: &[usize]) -> PathBuf {
        let mut text = String::new();
        for &i in which {
            text.push_str(&std::fs::read_to_string(&self.keys[i].0).unwrap());
        }
        let name = format!(
            "ids-{}.txt",
            which
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join("-")
        );
        self.write(&name, text.as_bytes())
    }

    pub fn recipient(&self, i: usize) -> &str {
        &self.keys[i].1
    }
}

/// Which sops builds to test against.
pub fn sopses() -> Vec<(&'static str, PathBuf)> {
    vec![
        ("sops-3.11", tools::sops_pypi()),
        ("sops-3.13", tools::sops_go()),
    ]
}

/// A command with a clean sops environment (no stray user keys).
pub fn clean(mut c: Command, lab: &Lab, keyfile: Option<&Path>) -> Command {
    c.current_dir(lab.dir.path())
        .env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_RECIPIENTS")
        .env_remove("SOPS_CONFIG")
        .env("HOME", lab.dir.path())
        .env("XDG_CONFIG_HOME", lab.path("xdg"));
    match keyfile {
        Some(k) => c.env("SOPS_AGE_KEY_FILE", k),
        None => c.env_remove("SOPS_AGE_KEY_FILE"),
    };
    c
}

pub fn sealgate(lab: &Lab, keyfile: Option<&Path>) -> Command {
    clean(Command::new(env!("CARGO_BIN_EXE_sealgate")), lab, keyfile)
}

pub fn sops(bin: &Path, lab: &Lab, keyfile: Option<&Path>) -> Command {
    clean(Command::new(bin), lab, keyfile)
}

pub fn ok(mut c: Command) -> Vec<u8> {
    tools::run_ok(&mut c, None)
}

pub fn run(mut c: Command) -> Output {
    tools::run(&mut c, None)
}

/// `--input-type/--output-type` arguments for a format name.
pub fn type_args(fmt: &str) -> Vec<String> {
    vec![
        "--input-type".into(),
        fmt.into(),
        "--output-type".into(),
        fmt.into(),
    ]
}
