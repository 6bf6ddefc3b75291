//! The `sealgate` binary as a user runs it.

use assert_cmd::Command;
use predicates::prelude::*;

fn sealgate() -> Command {
    Command::cargo_bin("sealgate").expect("binary built")
}

#[test]
fn version_prints_version_commit_and_features() {
    sealgate()
        .arg("version")
        .assert()
        .success()
        .stdout(predicate::str::contains(concat!(
            "sealgate ",
            env!("CARGO_PKG_VERSION")
        )))
        .stdout(predicate::str::contains("commit:"))
        .stdout(predicate::str::contains("features:"));
}

#[test]
fn version_json_is_valid_json() {
    let out = sealgate().args(["version", "--json"]).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["commit"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(v["features"].is_array());
}

#[test]
fn help_lists_exit_codes_and_subcommands() {
    sealgate()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("version"))
        .stdout(predicate::str::contains("Exit codes"));
}

#[test]
fn usage_errors_exit_2() {
    sealgate().arg("no-such-command").assert().code(2);
    sealgate().assert().code(2);
    sealgate()
        .args(["--log-format", "xml", "version"])
        .assert()
        .code(2);
}

#[test]
fn invalid_log_filter_is_an_input_error() {
    sealgate()
        .args(["--log-level", "sealgate=notalevel", "version"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid --log-level"));
}

#[test]
fn json_logs_are_one_object_per_line() {
    let out = sealgate()
        .args(["--log-format", "json", "--log-level", "trace", "version"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sealgate starting"), "{stderr}");
    for line in stderr.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
    }
}
