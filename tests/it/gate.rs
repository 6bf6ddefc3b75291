//! The gate engine through its public API: `check_file` / `check_object`,
//! the no-leak guarantee, and property tests for the parsers.

use proptest::prelude::*;
use sealgate::gate::{self, Options};

use crate::support::corpus;

/// No finding, note, log line or error ever carries a full planted value:
/// every output format of a full corpus run, with trace logging, is searched
/// for every planted secret.
#[test]
fn no_output_ever_contains_a_planted_secret() {
    let c = corpus::generate(7, 12);
    let dir = tempfile::tempdir().unwrap();
    crate::corpus::write(&c, dir.path());
    let mut outputs = Vec::new();
    for format in ["text", "json", "sarif"] {
        let out = assert_cmd::Command::cargo_bin("sealgate")
            .unwrap()
            .current_dir(dir.path())
            .args([
                "--log-level",
                "trace",
                "--log-format",
                "json",
                "lint",
                "--no-config",
                "--format",
                format,
                ".",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
        outputs.push(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    // Library Debug output too (what a caller might log).
    for (p, text) in &c.files {
        let r = gate::check_file(p, text.as_bytes(), &Options::default());
        outputs.push(format!("{r:?}"));
    }
    // A baseline file.
    let bl = dir.path().join("baseline.json");
    assert_cmd::Command::cargo_bin("sealgate")
        .unwrap()
        .current_dir(dir.path())
        .args(["lint", "--no-config", "--write-baseline"])
        .arg(&bl)
        .arg(".")
        .assert()
        .success();
    outputs.push(std::fs::read_to_string(&bl).unwrap());
    assert!(c.planted_values.len() > 100);
    for v in &c.planted_values {
        assert!(v.len() >= 8, "planted values are long enough to search for");
        for o in &outputs {
            assert!(
                !o.contains(v.as_str()),
                "a planted value leaked into output"
            );
        }
    }
    // The trace log did run (the search above covered real log lines).
    assert!(outputs.iter().any(|o| o.contains("\"scanning\"")));
}

#[test]
fn errors_and_notes_carry_no_content() {
    // A config error quotes no value from the scanned files; a parse failure
    // note names a position, not the text.
    let secret = "Zq8wL3pR9tK2mB7vX4cY";
    let r = gate::check_file(
        "broken.yaml",
        format!("a: [\n\tpassword: {secret}\n").as_bytes(),
        &Options::default(),
    );
    assert!(!r.notes.is_empty());
    for n in &r.notes {
        assert!(!n.message.contains(secret), "{n:?}");
    }
    assert!(
        r.findings
            .iter()
            .all(|f| !format!("{f:?}").contains(secret))
    );
    assert_eq!(r.findings.len(), 1, "{r:?}");
}

#[test]
fn check_object_accepts_parsed_objects() {
    let obj = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx",
            "env": [{"name": "LOG", "value": "x"}, {"name": "DB_PASSWORD", "value": "Winter-river-Orange50"},
                    {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "a", "key": "b"}}}]}]}}}
    });
    let r = gate::check_object(&obj, &Options::default());
    assert_eq!(r.findings.len(), 1, "{r:?}");
    let f = &r.findings[0];
    assert_eq!(f.rule, "k8s/env-literal-credential");
    assert_eq!(
        f.field.as_deref(),
        Some("spec.template.spec.containers[0].env[1].value")
    );
    let o = f.object.as_ref().unwrap();
    assert_eq!(o.kind, "Deployment");
    assert_eq!(o.namespace.as_deref(), Some("shop"));
    // A SealedSecret object is accepted.
    let sealed = serde_json::json!({"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": "x"}, "spec": {"encryptedData": {"password": "AgBy3i4OJSWK+PiTySYZZA9rO43cGDEqAgBy3i4OJSWK"}}});
    assert!(
        gate::check_object(&sealed, &Options::default())
            .findings
            .is_empty()
    );
}

#[test]
fn config_levels_and_allowlist_apply() {
    let cfg = gate::config::Config::parse(
        "rules:\n  dotenv/credential: warning\n  token/github: off\nallowlist:\n  - value: '^dev-'\n    reason: local defaults\n",
    )
    .unwrap();
    let mut o = Options::default();
    cfg.apply(&mut o);
    let r = gate::check_file(
        ".env",
        b"DB_PASSWORD=Winter-river-Orange50\nOTHER_PASSWORD=dev-Winter-river\nGH=ghp_R8c2Kq9LmW3zX7vB1nT5yP0sD4fG6hJ2kL9a\n",
        &o,
    );
    assert_eq!(r.findings.len(), 1, "{r:?}");
    assert_eq!(r.findings[0].severity, gate::Severity::Warning);
    let e = gate::config::Config::parse("rules:\n  no/such-rule: off\n").unwrap_err();
    assert!(e.to_string().contains("line 2"), "{e}");
    assert!(gate::config::Config::parse("allowlist:\n  - value: x\n").is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The YAML reader never panics, whatever the input.
    #[test]
    fn yaml_parser_never_panics(s in "\\PC{0,400}") {
        let _ = gate::yaml::parse_documents(&s);
    }

    /// The config, baseline and `.sops.yaml` readers reject bad input with
    /// an error, never a panic.
    #[test]
    fn config_baseline_and_sops_rules_never_panic(s in "\\PC{0,300}") {
        let _ = gate::config::Config::parse(&s);
        let _ = gate::baseline::Baseline::parse(&s);
        let _ = gate::SopsRules::parse(&s);
    }

    /// `check_file` never panics on arbitrary bytes under any file name kind.
    #[test]
    fn check_file_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600),
                               name in prop::sample::select(vec!["a.yaml", ".env", "x.json", "run.sh", "README.md", "kustomization.yaml", "values.yaml"])) {
        let _ = gate::check_file(name, &bytes, &Options::default());
    }

    /// Robustness: one planted credential in a .env file is found on its line
    /// whatever junk lines (%, tabs, quotes, invalid UTF-8) surround it.
    #[test]
    fn dotenv_secret_survives_surrounding_junk(
        before in proptest::collection::vec("[^\\n\\r]{0,40}", 0..6),
        after in proptest::collection::vec("[^\\n\\r]{0,40}", 0..6),
        secret in "[A-Za-z0-9]{20,32}",
        junk_byte in any::<u8>(),
    ) {
        let mut text: Vec<u8> = Vec::new();
        for l in &before { text.extend_from_slice(l.as_bytes()); text.push(b'\n'); }
        let line = before.len() + 1;
        text.extend_from_slice(format!("DB_PASSWORD={secret}\n").as_bytes());
        text.push(junk_byte);
        text.push(b'\n');
        for l in &after { text.extend_from_slice(l.as_bytes()); text.push(b'\n'); }
        let r = gate::check_file(".env", &text, &Options::default());
        prop_assert!(r.findings.iter().any(|f| f.line == line), "{:?}", r);
    }

    /// A Secret's stringData value is found in any position of a multi-document
    /// stream, and its preview never reveals it.
    #[test]
    fn secret_found_in_multidoc(n_before in 0usize..4, secret in "[A-Za-z0-9]{16,40}") {
        let mut text = String::new();
        for i in 0..n_before {
            text.push_str(&format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\ndata: {{a: b}}\n"));
        }
        text.push_str(&format!("---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\nstringData:\n  key: {secret}\n"));
        let r = gate::check_file("all.yaml", text.as_bytes(), &Options::default());
        prop_assert_eq!(r.findings.len(), 1);
        prop_assert_eq!(r.findings[0].line, n_before * 5 + 6);
        prop_assert!(!r.findings[0].preview.contains(&secret));
    }
}
