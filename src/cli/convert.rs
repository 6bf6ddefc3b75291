//! `sealgate convert`: External Secrets Operator manifests → sealgate.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{ExitStatus, Failure};
use crate::controller::convert::{ConvertError, convert_stream};

/// Arguments of `sealgate convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// YAML file with one or more documents (`-` for stdin).
    #[arg(default_value = "-")]
    input: PathBuf,
    /// Write here instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

pub(super) fn run(args: &ConvertArgs) -> anyhow::Result<ExitStatus> {
    let name = args.input.display().to_string();
    let text = if name == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading stdin")?;
        s
    } else {
        std::fs::read_to_string(&args.input).with_context(|| format!("reading {name}"))?
    };
    let converted = match convert_stream(&text) {
        Ok(c) => c,
        Err(e @ ConvertError::Unconvertible(_)) => {
            return Err(Failure {
                status: ExitStatus::Findings,
                source: anyhow::Error::new(e).context(format!("{name}: nothing written")),
            }
            .into());
        }
        Err(e) => return Err(anyhow::Error::new(e).context(name)),
    };
    match &args.output {
        Some(path) => std::fs::write(path, &converted.yaml)
            .with_context(|| format!("writing {}", path.display()))?,
        None => print!("{}", converted.yaml),
    }
    eprintln!(
        "converted {} object(s); {} other document(s) passed through unchanged",
        converted.converted, converted.passed_through
    );
    Ok(ExitStatus::Success)
}
