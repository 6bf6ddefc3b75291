//! Accuracy on the labelled corpus (tests/support/corpus.rs): the whole CLI
//! pipeline (walk, parse, rules, JSON output) against planted secrets and
//! decoys. Thresholds from the issue: recall ≥ 0.98, precision ≥ 0.95.

use std::path::Path;

use assert_cmd::Command;

use crate::support::corpus::{self, Corpus};

/// Writes the corpus under `dir`.
pub fn write(c: &Corpus, dir: &Path) {
    for (p, text) in &c.files {
        let full = dir.join(p);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }
}

/// Runs `sealgate lint --format json .` in `dir` and returns (path, line).
pub fn lint_findings(dir: &Path) -> (Vec<(String, usize)>, serde_json::Value) {
    let out = Command::cargo_bin("sealgate")
        .unwrap()
        .current_dir(dir)
        .args(["lint", "--no-config", "--format", "json", "."])
        .output()
        .unwrap();
    assert!(
        out.status.code() == Some(1),
        "expected findings (exit 1), got {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["line"].as_u64().unwrap() as usize,
            )
        })
        .collect();
    (f, v)
}

#[test]
fn recall_and_precision_on_the_labelled_corpus() {
    let c = corpus::generate(20261126, 24);
    let dir = tempfile::tempdir().unwrap();
    write(&c, dir.path());
    let (findings, _) = lint_findings(dir.path());
    let s = corpus::score(&c, &findings);
    let kinds: std::collections::BTreeSet<&str> = c.labels.iter().map(|l| l.kind).collect();
    eprintln!(
        "corpus: {} files, {} planted secrets of {} kinds; {} findings; recall {:.4}, precision {:.4}",
        c.files.len(),
        c.labels.len(),
        kinds.len(),
        findings.len(),
        s.recall,
        s.precision
    );
    for m in s.missed.iter().take(20) {
        eprintln!("missed: {}:{} {}", m.path, m.line, m.kind);
    }
    for (p, l) in s.false_positives.iter().take(usize::MAX) {
        eprintln!("false positive: {p}:{l}");
    }
    assert!(kinds.len() >= 30, "every rule planted: {kinds:?}");
    assert!(s.recall >= 0.98, "recall {:.4}", s.recall);
    assert!(s.precision >= 0.95, "precision {:.4}", s.precision);
}
