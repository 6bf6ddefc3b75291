//! Fuzzes the GitSync renderer on arbitrary file contents. Invariants:
//! never panics, never exceeds the object cap, and every rendered object
//! has a kind, a name and a line inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealgate::gitops::render::{MAX_OBJECTS, render};
use sealgate::gitops::source::SourceFile;

fuzz_target!(|data: &[u8]| {
    let lines = data.iter().filter(|b| **b == b'\n').count() + 1;
    let files = [SourceFile {
        path: "fuzz.yaml".into(),
        data: data.to_vec(),
    }];
    if let Ok(objects) = render(&files) {
        assert!(objects.len() <= MAX_OBJECTS);
        for o in objects {
            assert!(!o.kind().is_empty() && !o.name().is_empty());
            assert!(o.line >= 1 && o.line <= lines);
        }
    }
});
