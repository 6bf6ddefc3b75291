//! Writes the labelled benchmark corpus: `gen_corpus DIR APPS [BULK_KIB [SEED]]`.
//!
//! Used by bench/lint.sh; the generator itself lives in
//! tests/support/corpus.rs so the accuracy test and the benchmark share one
//! definition of "planted" and "decoy". Labels go to DIR/../labels.tsv
//! (path, line, kind), outside the scanned tree.

#[path = "../tests/support/corpus.rs"]
mod corpus;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(apps)) = (args.get(1), args.get(2).and_then(|a| a.parse().ok())) else {
        eprintln!("usage: gen_corpus DIR APPS [BULK_KIB [SEED]]");
        return std::process::ExitCode::from(2);
    };
    let bulk = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
    let seed = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(20261126);
    let c = corpus::generate_with_bulk(seed, apps, bulk);
    let root = std::path::Path::new(dir);
    for (p, text) in &c.files {
        let full = root.join(p);
        if let Some(parent) = full.parent()
            && let Err(e) = std::fs::create_dir_all(parent)
        {
            eprintln!("error: {}: {e}", parent.display());
            return std::process::ExitCode::from(2);
        }
        if let Err(e) = std::fs::write(&full, text) {
            eprintln!("error: {}: {e}", full.display());
            return std::process::ExitCode::from(2);
        }
    }
    let mut tsv = String::new();
    for l in &c.labels {
        tsv.push_str(&format!("{}\t{}\t{}\n", l.path, l.line, l.kind));
    }
    let labels = root.with_extension("labels.tsv");
    if let Err(e) = std::fs::write(&labels, tsv) {
        eprintln!("error: {}: {e}", labels.display());
        return std::process::ExitCode::from(2);
    }
    eprintln!(
        "{} files, {} labels -> {}",
        c.files.len(),
        c.labels.len(),
        labels.display()
    );
    std::process::ExitCode::SUCCESS
}
