//! `sealgate lint`: the plaintext gate for CI and pre-commit.
//!
//! Design note: this is the filesystem/Git edge around `crate::gate`. It
//! walks paths in parallel (the `ignore` crate, so `.gitignore` is honoured),
//! reads the Git index for `--staged` and the changed files for `--since`
//! (by running `git`, which every CI image has), loads `.sealgate.yaml` and
//! the nearest `.sops.yaml`, applies the baseline, and renders text, JSON or
//! SARIF. Findings carry only redacted previews and keyed fingerprints, so
//! every output is safe to upload. Exit codes: 0 clean, 1 findings at or
//! above `--fail-on`, 2 usage or I/O errors (a scan that could not read
//! everything it was asked to is not "clean").

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde_json::json;

use super::ExitStatus;
use crate::gate::baseline::Baseline;
use crate::gate::config::Config;
use crate::gate::{self, Finding, Note, Options, Report, Severity, SopsRules};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `path:line:col: severity[rule] message` lines and a summary.
    Text,
    /// One JSON document (`schema_version` 1).
    Json,
    /// SARIF 2.1.0 for GitHub code scanning and other CI viewers.
    Sarif,
}

/// Lowest severity that fails the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Only `error` findings fail (default).
    Error,
    /// Warnings fail too (strict mode).
    Warning,
    /// Never fail on findings (advisory roll-out); I/O errors still exit 2.
    Never,
}

/// Arguments of `sealgate lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// Files or directories to scan (default `.`); `-` reads stdin.
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write the report to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Configuration file (default: the nearest `.sealgate.yaml` walking up
    /// from the current directory).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Ignore any `.sealgate.yaml`.
    #[arg(long, conflicts_with = "config")]
    pub no_config: bool,
    /// Accept findings listed in this baseline file.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Write every current finding to FILE as the new baseline and exit 0.
    #[arg(long, value_name = "FILE")]
    pub write_baseline: Option<PathBuf>,
    /// Scan the staged content (the Git index) of staged files: pre-commit.
    #[arg(long, conflicts_with = "since")]
    pub staged: bool,
    /// Scan only files changed since REV (working tree vs REV): pull requests.
    #[arg(long, value_name = "REV")]
    pub since: Option<String>,
    /// Skip files larger than this many bytes (default 10 MiB, or the
    /// config's `max_file_size`).
    #[arg(long, value_name = "BYTES")]
    pub max_file_size: Option<u64>,
    /// Lowest severity that makes the exit code 1.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    pub fail_on: FailOn,
    /// Name reported for stdin input (lets rules that look at file names,
    /// like `.env` or `values.yaml`, apply).
    #[arg(long, default_value = "<stdin>", value_name = "NAME")]
    pub stdin_filename: String,
    /// Worker threads (default: number of CPUs).
    #[arg(long, short = 'j')]
    pub threads: Option<usize>,
}

const DEFAULT_MAX_FILE_SIZE: u64 = 10 * 1024 * 1024;

struct Scan {
    reports: Vec<Report>,
    errors: Vec<String>,
    files: usize,
    bytes: u64,
}

/// Nearest `.sops.yaml` per directory: (its directory, its rules).
type SopsCache = Mutex<HashMap<PathBuf, Option<(PathBuf, Arc<SopsRules>)>>>;

struct Env {
    base: Options,
    ignore: Option<(PathBuf, GlobSet)>,
    max_size: u64,
    sops_cache: SopsCache,
}

pub(super) fn run(args: &LintArgs) -> anyhow::Result<ExitStatus> {
    let started = std::time::Instant::now();
    let config = load_config(args)?;
    let baseline = match &args.baseline {
        Some(p) => Some(
            Baseline::parse(
                &std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read baseline {}", p.display()))?,
            )
            .with_context(|| format!("baseline {}", p.display()))?,
        ),
        None => None,
    };
    // Rewriting a baseline keeps its salt, so unchanged entries stay equal.
    let mut new_baseline = args
        .write_baseline
        .as_ref()
        .map(|p| match std::fs::read_to_string(p) {
            Ok(t) => Baseline::parse(&t).unwrap_or_default(),
            Err(_) => baseline.clone().unwrap_or_default(),
        });
    let mut base = Options::default();
    if let Some(b) = new_baseline.as_ref().or(baseline.as_ref()) {
        base.fingerprint_key = b.key();
    }
    let mut ignore = None;
    let mut max_size = DEFAULT_MAX_FILE_SIZE;
    if let Some((dir, cfg)) = &config {
        cfg.apply(&mut base);
        if let Some(m) = cfg.max_file_size {
            max_size = m;
        }
        if !cfg.ignore.is_empty() {
            let mut b = GlobSetBuilder::new();
            for g in &cfg.ignore {
                b.add(Glob::new(g).with_context(|| format!("config ignore pattern {g:?}"))?);
            }
            ignore = Some((dir.clone(), b.build()?));
        }
    }
    if let Some(m) = args.max_file_size {
        max_size = m;
    }
    let env = Env {
        base,
        ignore,
        max_size,
        sops_cache: Mutex::new(HashMap::new()),
    };

    let scan = if args.staged {
        scan_staged(&env)?
    } else if let Some(rev) = &args.since {
        scan_since(&env, rev, args.threads)?
    } else {
        scan_paths(&env, args)?
    };

    let mut findings: Vec<Finding> = Vec::new();
    let mut notes: Vec<Note> = Vec::new();
    for r in scan.reports {
        findings.extend(r.findings);
        notes.extend(r.notes);
    }
    findings.sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
    notes.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));

    if let (Some(path), Some(b)) = (&args.write_baseline, new_baseline.as_mut()) {
        b.set_findings(&findings);
        std::fs::write(path, b.to_json())
            .with_context(|| format!("cannot write baseline {}", path.display()))?;
        eprintln!(
            "wrote baseline {} with {} entries",
            path.display(),
            b.entries.len()
        );
        return Ok(if scan.errors.is_empty() {
            ExitStatus::Success
        } else {
            report_errors(&scan.errors);
            ExitStatus::UsageOrInput
        });
    }
    let mut suppressed = 0;
    if let Some(b) = &baseline {
        let before = findings.len();
        findings.retain(|f| !b.contains(f));
        suppressed = before - findings.len();
    }

    let summary = Summary {
        files: scan.files,
        bytes: scan.bytes,
        errors: findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count(),
        warnings: findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .count(),
        suppressed,
        elapsed: started.elapsed(),
    };
    let rendered = match args.format {
        Format::Text => render_text(&findings, &notes, &summary),
        Format::Json => render_json(&findings, &notes, &scan.errors, &summary),
        Format::Sarif => render_sarif(&findings),
    };
    match &args.output {
        Some(p) => {
            std::fs::write(p, rendered).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => {
            let mut out = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth a backtrace.
            let _ = out.write_all(rendered.as_bytes());
        }
    }
    if args.format != Format::Text || args.output.is_some() {
        eprintln!("{}", summary.line());
    }
    if !scan.errors.is_empty() {
        report_errors(&scan.errors);
        return Ok(ExitStatus::UsageOrInput);
    }
    let fail = match args.fail_on {
        FailOn::Error => summary.errors > 0,
        FailOn::Warning => summary.errors + summary.warnings > 0,
        FailOn::Never => false,
    };
    Ok(if fail {
        ExitStatus::Findings
    } else {
        ExitStatus::Success
    })
}

fn report_errors(errors: &[String]) {
    for e in errors {
        eprintln!("error: {e}");
    }
}

/// Finds and parses the configuration: `--config`, or the nearest
/// `.sealgate.yaml` walking up from the current directory.
fn load_config(args: &LintArgs) -> anyhow::Result<Option<(PathBuf, Config)>> {
    if args.no_config {
        return Ok(None);
    }
    let path = match &args.config {
        Some(p) => p.clone(),
        None => {
            let cwd = std::env::current_dir().context("cannot read the current directory")?;
            match cwd
                .ancestors()
                .map(|d| d.join(".sealgate.yaml"))
                .find(|p| p.is_file())
            {
                Some(p) => p,
                None => return Ok(None),
            }
        }
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    let cfg = Config::parse(&text).with_context(|| format!("config {}", path.display()))?;
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    tracing::debug!(config = %path.display(), "loaded lint config");
    Ok(Some((dir, cfg)))
}

impl Env {
    fn ignored(&self, path: &Path) -> bool {
        let Some((dir, set)) = &self.ignore else {
            return false;
        };
        let abs = absolute(path);
        let dir = absolute(dir);
        let rel = abs.strip_prefix(&dir).unwrap_or(path);
        set.is_match(rel) || set.is_match(path)
    }

    /// Options for one file: the nearest `.sops.yaml` and the directory for
    /// kustomize file references.
    fn options_for(&self, path: &Path) -> Options {
        let mut o = self.base.clone();
        let abs = absolute(path);
        let dir = abs.parent().map(Path::to_path_buf).unwrap_or_default();
        o.base_dir = Some(dir.clone());
        if let Some((sops_dir, rules)) = self.sops_rules(&dir) {
            let rel = abs.strip_prefix(&sops_dir).unwrap_or(&abs);
            o.sops_rules = Some(rules.for_file(&rel.to_string_lossy()));
        }
        o
    }

    fn sops_rules(&self, dir: &Path) -> Option<(PathBuf, Arc<SopsRules>)> {
        let mut cache = self.sops_cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(hit) = cache.get(dir) {
            return hit.clone();
        }
        let found = dir.ancestors().find_map(|d| {
            let p = d.join(".sops.yaml");
            let text = std::fs::read_to_string(&p).ok()?;
            match SopsRules::parse(&text) {
                Ok(r) => Some((d.to_path_buf(), Arc::new(r))),
                Err(e) => {
                    tracing::warn!(file = %p.display(), error = %e, "ignoring unreadable .sops.yaml");
                    None
                }
            }
        });
        cache.insert(dir.to_path_buf(), found.clone());
        found
    }

    fn check(&self, name: &str, path: &Path, bytes: &[u8]) -> Report {
        tracing::debug!(file = name, bytes = bytes.len(), "scanning");
        gate::check_file(name, bytes, &self.options_for(path))
    }

    fn too_large(&self, display: &str, len: u64) -> Option<Report> {
        (len > self.max_size).then(|| Report {
            findings: Vec::new(),
            notes: vec![Note {
                kind: "scan/too-large",
                path: display.to_owned(),
                line: 0,
                message: format!(
                    "{len} bytes exceeds the {} byte limit; skipped",
                    self.max_size
                ),
            }],
        })
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn display_path(p: &Path) -> String {
    let s = p.to_string_lossy();
    s.strip_prefix("./").unwrap_or(&s).to_owned()
}

fn scan_paths(env: &Env, args: &LintArgs) -> anyhow::Result<Scan> {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let shared = Mutex::new(Scan {
        reports: Vec::new(),
        errors: Vec::new(),
        files: 0,
        bytes: 0,
    });
    let record = |r: Result<(Report, u64), String>| {
        let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
        match r {
            Ok((rep, n)) => {
                s.files += 1;
                s.bytes += n;
                s.reports.push(rep);
            }
            Err(e) => s.errors.push(e),
        }
    };
    let mut dirs = Vec::new();
    for p in &paths {
        if p.as_os_str() == "-" {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("cannot read stdin")?;
            let opts = env.base.clone();
            let n = buf.len() as u64;
            record(Ok((gate::check_file(&args.stdin_filename, &buf, &opts), n)));
        } else if p.is_dir() {
            dirs.push(p.clone());
        } else if p.exists() {
            // Explicitly named files are scanned even if git-ignored.
            record(read_and_check(env, p));
        } else {
            record(Err(format!("{}: no such file or directory", p.display())));
        }
    }
    if let Some((first, rest)) = dirs.split_first() {
        let mut wb = ignore::WalkBuilder::new(first);
        for d in rest {
            wb.add(d);
        }
        wb.hidden(false)
            .require_git(false)
            .parents(true)
            .filter_entry(|e| e.file_name() != ".git")
            .threads(args.threads.unwrap_or(0));
        wb.build_parallel().run(|| {
            Box::new(|entry| {
                match entry {
                    Ok(e) if e.file_type().is_some_and(|t| t.is_file()) => {
                        if !env.ignored(e.path()) {
                            record(read_and_check(env, e.path()));
                        }
                    }
                    Ok(_) => {}
                    Err(err) => record(Err(err.to_string())),
                }
                ignore::WalkState::Continue
            })
        });
    }
    Ok(shared.into_inner().unwrap_or_else(|e| e.into_inner()))
}

fn read_and_check(env: &Env, p: &Path) -> Result<(Report, u64), String> {
    let display = display_path(p);
    let len = std::fs::metadata(p)
        .map_err(|e| format!("{display}: {e}"))?
        .len();
    if let Some(r) = env.too_large(&display, len) {
        return Ok((r, 0));
    }
    let bytes = std::fs::read(p).map_err(|e| format!("{display}: {e}"))?;
    let n = bytes.len() as u64;
    Ok((env.check(&display, p, &bytes), n))
}

fn git(args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let out = Command::new("git")
        .args(args)
        .output()
        .context("cannot run git (is it installed?)")?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

fn split_z(out: &[u8]) -> Vec<String> {
    out.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// Pre-commit: the staged blob of every added/changed file, not the working
/// tree (which may differ).
fn scan_staged(env: &Env) -> anyhow::Result<Scan> {
    let names = split_z(&git(&[
        "diff",
        "--cached",
        "--name-only",
        "--diff-filter=ACMR",
        "--relative",
        "-z",
    ])?);
    let mut scan = Scan {
        reports: Vec::new(),
        errors: Vec::new(),
        files: 0,
        bytes: 0,
    };
    for name in names {
        let p = PathBuf::from(&name);
        if env.ignored(&p) {
            continue;
        }
        let blob = match git(&["show", &format!(":./{name}")]) {
            Ok(b) => b,
            Err(e) => {
                scan.errors.push(format!("{name}: {e:#}"));
                continue;
            }
        };
        if let Some(r) = env.too_large(&name, blob.len() as u64) {
            scan.reports.push(r);
            continue;
        }
        scan.files += 1;
        scan.bytes += blob.len() as u64;
        scan.reports.push(env.check(&name, &p, &blob));
    }
    Ok(scan)
}

/// Pull requests: files added or changed since `rev`, as in the working tree.
fn scan_since(env: &Env, rev: &str, threads: Option<usize>) -> anyhow::Result<Scan> {
    if rev.starts_with('-') {
        bail!("--since {rev:?}: a revision cannot start with '-'");
    }
    let names = split_z(&git(&[
        "diff",
        "--name-only",
        "--diff-filter=ACMR",
        "--relative",
        "-z",
        rev,
        "--",
    ])?);
    let _ = threads;
    let mut scan = Scan {
        reports: Vec::new(),
        errors: Vec::new(),
        files: 0,
        bytes: 0,
    };
    for name in names {
        let p = PathBuf::from(&name);
        if env.ignored(&p) || !p.exists() {
            continue;
        }
        match read_and_check(env, &p) {
            Ok((r, n)) => {
                scan.files += 1;
                scan.bytes += n;
                scan.reports.push(r);
            }
            Err(e) => scan.errors.push(e),
        }
    }
    Ok(scan)
}

struct Summary {
    files: usize,
    bytes: u64,
    errors: usize,
    warnings: usize,
    suppressed: usize,
    elapsed: std::time::Duration,
}

impl Summary {
    fn line(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        let mbps = if secs > 0.0 {
            self.bytes as f64 / 1e6 / secs
        } else {
            0.0
        };
        format!(
            "{} error(s), {} warning(s){} in {} file(s), {} bytes, {:.2}s ({:.1} MB/s)",
            self.errors,
            self.warnings,
            if self.suppressed > 0 {
                format!(", {} suppressed by baseline", self.suppressed)
            } else {
                String::new()
            },
            self.files,
            self.bytes,
            secs,
            mbps
        )
    }
}

fn render_text(findings: &[Finding], notes: &[Note], summary: &Summary) -> String {
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!(
            "{}:{}:{}: {}[{}] {}",
            f.path, f.line, f.column, f.severity, f.rule, f.message
        ));
        if let Some(o) = &f.object {
            out.push_str(&format!(" [{o}"));
            if let Some(field) = &f.field {
                out.push_str(&format!(" {field}"));
            }
            out.push(']');
        } else if let Some(field) = &f.field {
            out.push_str(&format!(" [{field}]"));
        }
        out.push_str(&format!(" ({})\n", f.preview));
    }
    for n in notes {
        out.push_str(&format!(
            "{}:{}: note[{}] {}\n",
            n.path, n.line, n.kind, n.message
        ));
    }
    out.push_str(&summary.line());
    out.push('\n');
    out
}

fn render_json(
    findings: &[Finding],
    notes: &[Note],
    errors: &[String],
    summary: &Summary,
) -> String {
    let v = json!({
        "schema_version": 1,
        "tool": {"name": "sealgate", "version": env!("CARGO_PKG_VERSION")},
        "findings": findings,
        "notes": notes,
        "errors": errors,
        "summary": {
            "files": summary.files,
            "bytes": summary.bytes,
            "errors": summary.errors,
            "warnings": summary.warnings,
            "suppressed_by_baseline": summary.suppressed,
        },
    });
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

/// SARIF 2.1.0: rule metadata for every rule, `partialFingerprints` keyed on
/// content (survive line moves), and no value in any message or snippet.
fn render_sarif(findings: &[Finding]) -> String {
    let rules: Vec<serde_json::Value> = gate::rules::RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.id.replace(['/', '-'], "_"),
                "shortDescription": {"text": r.title},
                "fullDescription": {"text": format!("{}. {}", r.title, r.help)},
                "help": {"text": r.help, "markdown": format!("{}\n\nSee docs/lint.md#{}", r.help, r.id.replace('/', "-"))},
                "defaultConfiguration": {"level": sarif_level(r.severity)},
                "properties": {
                    "tags": ["security", "secret", "external/cwe/cwe-798"],
                    "precision": "high",
                    "security-severity": if r.severity == Severity::Error { "8.0" } else { "5.0" },
                },
            })
        })
        .collect();
    let index: HashMap<&str, usize> = gate::rules::RULES
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id, i))
        .collect();
    // GitHub code scanning accepts at most 25,000 results per run; beyond
    // that the upload is rejected, so cap and say so (errors first).
    const SARIF_MAX_RESULTS: usize = 25_000;
    let mut ordered: Vec<&Finding> = findings.iter().collect();
    ordered.sort_by_key(|f| std::cmp::Reverse(f.severity));
    if ordered.len() > SARIF_MAX_RESULTS {
        eprintln!(
            "warning: SARIF output capped at {SARIF_MAX_RESULTS} of {} results (GitHub code scanning limit)",
            ordered.len()
        );
        ordered.truncate(SARIF_MAX_RESULTS);
    }
    let results: Vec<serde_json::Value> = ordered
        .into_iter()
        .map(|f| {
            let mut msg = f.message.clone();
            if let Some(o) = &f.object {
                msg.push_str(&format!(" [{o}]"));
            }
            if let Some(field) = &f.field {
                msg.push_str(&format!(" at {field}"));
            }
            json!({
                "ruleId": f.rule,
                "ruleIndex": index.get(f.rule.as_str()).copied().unwrap_or(0),
                "level": sarif_level(f.severity),
                "message": {"text": format!("{msg} ({})", f.preview)},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.path.replace('\\', "/"), "uriBaseId": "%SRCROOT%"},
                        "region": {"startLine": f.line.max(1), "startColumn": f.column.max(1)},
                    }
                }],
                "partialFingerprints": {"secretFingerprint/v1": f.fingerprint},
            })
        })
        .collect();
    let v = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "sealgate",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}
