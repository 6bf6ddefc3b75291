//! `sealgate lint` as CI and pre-commit run it: exit codes, formats,
//! walking, configuration, inline allows, baselines, Git modes.

use std::path::Path;
use std::process::Command as StdCommand;

use assert_cmd::Command;
use predicates::prelude::*;

const LEAK: &str = "DB_PASSWORD=Winter-river-Orange50\n";

fn lint(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("sealgate").unwrap();
    c.current_dir(dir).arg("lint");
    c
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn git(dir: &Path, args: &[&str]) {
    let out = StdCommand::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn exit_codes_clean_findings_and_io_errors() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "ok.yaml", "a: b\n");
    lint(d.path())
        .arg(".")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("0 error(s)"));
    write(d.path(), "app/.env", LEAK);
    lint(d.path())
        .arg(".")
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "app/.env:1:13: error[dotenv/credential]",
        ))
        .stdout(predicate::str::contains("Winter-river-Orange50").not());
    lint(d.path())
        .arg("no/such/file")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no/such/file"));
    lint(d.path()).args(["--format", "xml"]).assert().code(2);
    // Warnings alone pass unless --fail-on warning.
    write(
        d.path(),
        "app/.env",
        "LICENSE_KEY=9fK2xQ7LmB4zR8tW1vY6pN3s\n",
    );
    lint(d.path())
        .arg(".")
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "warning[entropy/generic-assignment]",
        ));
    lint(d.path())
        .args(["--fail-on", "warning", "."])
        .assert()
        .code(1);
}

#[test]
fn stdin_and_output_file() {
    let d = tempfile::tempdir().unwrap();
    lint(d.path())
        .args(["--stdin-filename", "secret.yaml", "-"])
        .write_stdin("apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringData:\n  password: Winter-river-Orange50\n")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("secret.yaml:5:13: error[k8s/secret-plaintext]"));
    let out = d.path().join("report.json");
    lint(d.path())
        .args(["--format", "json", "--output"])
        .arg(&out)
        .arg("-")
        .write_stdin(LEAK)
        .assert()
        .code(1)
        .stdout(predicate::str::is_empty());
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["findings"][0]["rule"], "generic/credential-literal");
}

#[test]
fn json_and_sarif_reports() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "k/s.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: prod}\nstringData:\n  password: Winter-river-Orange50\n",
    );
    let out = lint(d.path())
        .args(["--format", "json", "."])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = &v["findings"][0];
    assert_eq!(f["rule"], "k8s/secret-plaintext");
    assert_eq!(f["path"], "k/s.yaml");
    assert_eq!(f["line"], 5);
    assert_eq!(f["object"]["kind"], "Secret");
    assert_eq!(f["object"]["namespace"], "prod");
    assert_eq!(f["field"], "stringData.password");
    assert_eq!(f["preview"], "Wint…(21 chars)");
    assert_eq!(v["summary"]["errors"], 1);

    let out = lint(d.path())
        .args(["--format", "sarif", "."])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["version"], "2.1.0");
    let run = &s["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert!(rules.len() >= 30);
    assert!(
        rules
            .iter()
            .all(|r| r["shortDescription"]["text"].is_string()
                && r["defaultConfiguration"]["level"].is_string())
    );
    let r = &run["results"][0];
    assert_eq!(r["ruleId"], "k8s/secret-plaintext");
    assert_eq!(
        rules[r["ruleIndex"].as_u64().unwrap() as usize]["id"],
        "k8s/secret-plaintext"
    );
    assert_eq!(
        r["locations"][0]["physicalLocation"]["region"]["startLine"],
        5
    );
    let fp = r["partialFingerprints"]["secretFingerprint/v1"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(fp.len(), 32);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Winter-river-Orange50"));
    // Stable: moving the finding to another line keeps the fingerprint.
    write(
        d.path(),
        "k/s.yaml",
        "# moved\n\napiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: prod}\nstringData:\n  password: Winter-river-Orange50\n",
    );
    let out = lint(d.path())
        .args(["--format", "sarif", "."])
        .output()
        .unwrap();
    let s2: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        s2["runs"][0]["results"][0]["partialFingerprints"]["secretFingerprint/v1"],
        fp.as_str()
    );
    assert_eq!(
        s2["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        7
    );
}

#[test]
fn walk_honours_gitignore_and_size_limit_and_scans_hidden_files() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), ".gitignore", "ignored/\n");
    write(d.path(), "ignored/.env", LEAK);
    write(
        d.path(),
        "big/.env",
        &format!("{LEAK}{}", "# pad\n".repeat(100)),
    );
    lint(d.path())
        .arg(".")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("big/.env"));
    lint(d.path())
        .args(["--max-file-size", "100", "--format", "json", "."])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("scan/too-large"))
        .stdout(predicate::str::contains("ignored/").not());
    // An explicitly named ignored file is scanned.
    lint(d.path()).arg("ignored/.env").assert().code(1);
    // Binary files are not parsed as text (a PNG header plus noise).
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\0".to_vec();
    png.extend_from_slice(b"password=Winter-river-Orange50\0\0\0");
    std::fs::write(d.path().join("img.png"), png).unwrap();
    std::fs::remove_dir_all(d.path().join("big")).unwrap();
    lint(d.path()).arg(".").assert().code(0);
}

#[test]
fn config_file_is_found_walking_up_and_validated() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "sub/dir/.env", LEAK);
    write(d.path(), "vendor/.env", LEAK);
    write(
        d.path(),
        ".sealgate.yaml",
        "rules:\n  dotenv/credential: warning\nignore:\n  - \"vendor/**\"\n",
    );
    let out = lint(&d.path().join("sub")).arg(".").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("warning[dotenv/credential]"));
    let out = lint(d.path()).arg(".").output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("vendor/"));
    lint(d.path()).args(["--no-config", "."]).assert().code(1);
    write(d.path(), "bad.yaml", "rules:\n  nope/rule: off\n");
    lint(d.path())
        .args(["--config", "bad.yaml", "."])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown rule `nope/rule`"));
}

#[test]
fn inline_allow_with_reason() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        ".env",
        "# sealgate:allow dotenv/credential throwaway local database\nDB_PASSWORD=Winter-river-Orange50\n",
    );
    lint(d.path()).arg(".").assert().code(0);
    write(
        d.path(),
        ".env",
        "# sealgate:allow dotenv/credential\nDB_PASSWORD=Winter-river-Orange50\n",
    );
    lint(d.path()).arg(".").assert().code(1);
}

#[test]
fn baseline_accepts_known_findings_and_survives_edits() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "app/.env", LEAK);
    lint(d.path())
        .args(["--write-baseline", "bl.json", "app"])
        .assert()
        .code(0);
    let text = std::fs::read_to_string(d.path().join("bl.json")).unwrap();
    assert!(!text.contains("Winter"), "baseline never holds values");
    assert!(!text.contains("\"line\""), "baseline has no line numbers");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["entries"].as_array().unwrap().len(), 1);
    lint(d.path())
        .args(["--baseline", "bl.json", "app"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("1 suppressed by baseline"));
    // Edits elsewhere in the file do not churn it.
    write(d.path(), "app/.env", &format!("A=1\nB=2\n{LEAK}"));
    lint(d.path())
        .args(["--baseline", "bl.json", "app"])
        .assert()
        .code(0);
    // A new secret is not covered.
    write(
        d.path(),
        "app/.env",
        &format!("{LEAK}API_TOKEN=Another-secret-Value77\n"),
    );
    lint(d.path())
        .args(["--baseline", "bl.json", "app"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("API_TOKEN"));
    // Rewriting keeps the salt (no churn in unchanged entries).
    lint(d.path())
        .args(["--write-baseline", "bl.json", "app"])
        .assert()
        .code(0);
    let v2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("bl.json")).unwrap()).unwrap();
    assert_eq!(v2["salt"], v["salt"]);
    assert!(v2["entries"].as_array().unwrap().contains(&v["entries"][0]));
    lint(d.path())
        .args(["--baseline", "missing.json", "app"])
        .assert()
        .code(2);
}

#[test]
fn staged_scans_the_index_and_since_scans_changes() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    git(p, &["init", "-q", "-b", "main"]);
    write(p, "old/.env", LEAK);
    git(p, &["add", "."]);
    git(p, &["commit", "-qm", "old"]);
    // Clean index: nothing staged.
    lint(p).arg("--staged").assert().code(0);
    // Staged leak is found even after the working tree is cleaned up.
    write(
        p,
        "new/values.yaml",
        "auth:\n  adminPassword: Winter-river-Orange50\n",
    );
    git(p, &["add", "new/values.yaml"]);
    write(p, "new/values.yaml", "auth:\n  existingSecret: admin\n");
    lint(p)
        .arg("--staged")
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "new/values.yaml:2:18: error[helm/values-credential]",
        ))
        .stdout(predicate::str::contains("old/").not());
    git(p, &["commit", "-qm", "new"]);
    // --since: only what changed since the first commit (the working tree).
    write(
        p,
        "new/values.yaml",
        "auth:\n  adminPassword: Second-river-Orange51\n",
    );
    lint(p)
        .args(["--since", "HEAD~1"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("new/values.yaml"))
        .stdout(predicate::str::contains("old/").not());
    lint(p).args(["--since", "no-such-rev"]).assert().code(2);
}

#[test]
fn sops_yaml_creation_rules_demand_encryption() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        ".sops.yaml",
        "creation_rules:\n  - path_regex: secrets/.*\\.yaml$\n    age: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n",
    );
    write(
        d.path(),
        "secrets/db.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n",
    );
    write(
        d.path(),
        "public/db.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n",
    );
    lint(d.path())
        .arg(".")
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "secrets/db.yaml:1:1: error[sops/missing-metadata]",
        ))
        .stdout(predicate::str::contains("public/").not());
}

#[test]
fn pre_commit_hooks_file_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join(".pre-commit-hooks.yaml")).unwrap();
    let docs = sealgate::gate::yaml::parse_documents(&text).unwrap();
    let hooks = docs[0].items();
    assert!(!hooks.is_empty());
    for h in hooks {
        for k in ["id", "name", "entry", "language"] {
            assert!(
                h.get(k).and_then(|n| n.as_str()).is_some(),
                "hook lacks {k}"
            );
        }
        assert!(
            h.get("entry")
                .unwrap()
                .as_str()
                .unwrap()
                .contains("sealgate lint")
        );
    }
}
