//! Fuzzes the gate on arbitrary bytes under every file-name kind the engine
//! distinguishes (YAML/JSON structure, dotenv, docs, other text, binary).
//! Invariants: never panics, and a finding's preview never holds a whole
//! value of 12+ characters (it is at most 4 characters plus the length).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealgate::gate::{Options, check_file};

const NAMES: &[&str] = &[
    "manifest.yaml",
    "list.json",
    ".env",
    "kustomization.yaml",
    "values.yaml",
    "app.enc.yaml",
    "deploy.sh",
    "README.md",
    "kubeconfig",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let name = NAMES[selector as usize % NAMES.len()];
    let report = check_file(name, rest, &Options::default());
    for f in &report.findings {
        let shown = f.preview.split('…').next().unwrap_or("");
        assert!(shown.chars().count() <= 4, "preview too long");
    }
});
