//! Logging set-up for the CLI and the controller.
//!
//! Logs go to stderr so stdout stays clean for command output (decrypted
//! files, SARIF, JSON) that callers pipe onward. Secret values never reach
//! here: they live in `crate::secret` types whose `Debug`/`Display` redact.

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// How log lines are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, coloured when stderr is a terminal.
    Auto,
    /// Human-readable lines without colour.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber. Fails with a readable message when the
/// filter does not parse, instead of silently logging nothing.
pub fn init(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("invalid --log-level {filter:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Human => builder.with_ansi(false).try_init(),
        LogFormat::Auto => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install logger: {e}"))
}
