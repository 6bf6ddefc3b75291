//! `sealgate version`: what build is running.

use clap::Args;

use super::ExitStatus;

/// Arguments of `sealgate version`.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Print one JSON object instead of text (for bug reports and scripts).
    #[arg(long)]
    json: bool,
}

/// Crate features compiled into this binary. Each optional capability that
/// becomes a cargo feature adds its `cfg!` line here, so bug reports show
/// which parts a build contains.
fn enabled_features() -> Vec<&'static str> {
    Vec::new()
}

pub(super) fn run(args: &VersionArgs) -> anyhow::Result<ExitStatus> {
    let version = env!("CARGO_PKG_VERSION");
    let commit = env!("SEALGATE_GIT_COMMIT");
    let features = enabled_features();
    if args.json {
        // Hand-written: three string fields do not justify a serde dependency
        // in the CLI path, and none of them needs escaping beyond this.
        let feats = features
            .iter()
            .map(|f| format!("\"{f}\""))
            .collect::<Vec<_>>()
            .join(",");
        println!("{{\"version\":\"{version}\",\"commit\":\"{commit}\",\"features\":[{feats}]}}");
    } else {
        println!("sealgate {version}");
        println!("commit:   {commit}");
        let list = if features.is_empty() {
            "(none)".to_owned()
        } else {
            features.join(", ")
        };
        println!("features: {list}");
    }
    Ok(ExitStatus::Success)
}
