//! The `sealgate` command line.
//!
//! Design note: this is the only layer that talks to a terminal. It parses
//! arguments (clap derive), sets up logging, runs one subcommand, and turns
//! the outcome into one of the documented exit codes (`docs/cli.md`). Library
//! modules return typed errors; here they become `anyhow` chains with a
//! [`Failure`] tag that says which exit code the user (or CI) should see.
//! Subcommands are added only when the capability behind them works.

mod controller;
mod convert;
pub mod crds;
pub mod gitops;
mod lint;
mod logging;
pub mod sops;
mod store;
mod version;
mod webhook;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use logging::LogFormat;

/// Exit codes, stable across releases because CI pipelines branch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitStatus {
    /// The command did what was asked and found nothing to refuse.
    Success = 0,
    /// The command ran, and what it checked must be refused (lint findings,
    /// a refused manifest, a MAC mismatch).
    Findings = 1,
    /// The command line or an input file is wrong; fixing the input fixes it.
    UsageOrInput = 2,
    /// A backend or the cluster could not be reached; retrying may help.
    Unavailable = 3,
}

impl From<ExitStatus> for ExitCode {
    fn from(s: ExitStatus) -> Self {
        ExitCode::from(s as u8)
    }
}

/// An error tagged with the exit code it should produce. Errors without the
/// tag are treated as input errors (exit 2): a wrong path or unreadable file
/// is by far the most common untagged failure at the CLI edge.
#[derive(Debug, thiserror::Error)]
#[error("{source:#}")]
pub struct Failure {
    /// Exit code to report.
    pub status: ExitStatus,
    /// What went wrong, with context.
    pub source: anyhow::Error,
}

impl Failure {
    /// Tags `source` as a backend/cluster outage (exit 3).
    pub fn unavailable(source: impl Into<anyhow::Error>) -> Self {
        Self {
            status: ExitStatus::Unavailable,
            source: source.into(),
        }
    }
}

/// sealgate: secrets for GitOps without plaintext in Git.
#[derive(Debug, Parser)]
#[command(name = "sealgate", version, about, long_about = None)]
#[command(
    after_help = "Exit codes: 0 ok, 1 findings/refusal, 2 usage or input error, \
                        3 backend or cluster unavailable. See docs/cli.md."
)]
pub struct Cli {
    /// Log output format: `auto` (human-readable, coloured on a terminal),
    /// `human` (no colour) or `json` (one object per line).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto, env = "SEALGATE_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// Log filter in `tracing` syntax (e.g. `info`, `sealgate=debug`).
    #[arg(long, global = true, default_value = "warn", env = "SEALGATE_LOG")]
    pub log_level: String,

    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Every subcommand the binary offers.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Refuse plaintext secrets: scan files, directories (parallel, honouring
    /// .gitignore), stdin (`-`), the Git index (--staged) or changes since a
    /// revision (--since).
    ///
    /// Examples:
    ///   sealgate lint .
    ///   sealgate lint --format sarif --output lint.sarif .
    ///   sealgate lint --staged
    ///   sealgate lint --since origin/main
    ///   kubectl get secret -o yaml | sealgate lint --stdin-filename s.yaml -
    Lint(Box<lint::LintArgs>),
    /// Print version, git commit and enabled features.
    ///
    /// Example: sealgate version --json
    Version(version::VersionArgs),
    /// Check secret-store definitions against their backends.
    Store(store::StoreArgs),
    /// Fetch one secret through a store definition (for debugging a
    /// store; refuses to print to a terminal without --reveal).
    ///
    /// Example: sealgate get --config aws.yaml prod/db --property password | wc -c
    Get(store::GetArgs),
    /// Encrypt a file sops-compatibly (age, Vault Transit or AWS KMS keys;
    /// .sops.yaml rules).
    ///
    /// Example: sealgate encrypt --age age1... -i secrets.yaml
    Encrypt(Box<sops::EncryptArgs>),
    /// Decrypt a sops file (MAC verified) to stdout, a file or in place.
    ///
    /// Example: sealgate decrypt secrets.yaml
    Decrypt(sops::DecryptArgs),
    /// Edit a sops file in $EDITOR, keeping its data key.
    ///
    /// Example: sealgate edit secrets.yaml
    Edit(sops::EditArgs),
    /// Re-wrap a file's data key for the recipients in .sops.yaml.
    ///
    /// Example: sealgate updatekeys -y secrets.yaml
    Updatekeys(sops::UpdateKeysArgs),
    /// Draw a new data key and re-encrypt every value.
    ///
    /// Example: sealgate rotate -i secrets.yaml
    Rotate(sops::RotateArgs),
    /// Report whether a file is sops-encrypted, as JSON.
    ///
    /// Example: sealgate filestatus secrets.yaml
    Filestatus(sops::FileStatusArgs),
    /// Print the CustomResourceDefinitions (or write them, one per file).
    ///
    /// Example: sealgate crds | kubectl apply --server-side -f -
    Crds(crds::CrdsArgs),
    /// Rewrite External Secrets Operator manifests (ExternalSecret,
    /// SecretStore, ClusterSecretStore; external-secrets.io/v1beta1 and v1)
    /// into sealgate's. Refuses, naming each field, anything whose meaning
    /// would change.
    ///
    /// Example: sealgate convert eso/externalsecret.yaml -o es.yaml
    Convert(convert::ConvertArgs),
    /// Serve the admission webhook: refuse plaintext Secrets, ConfigMaps
    /// and workload env at the apiserver (docs/webhook.md).
    ///
    /// Example: sealgate webhook --tls-cert tls.crt --tls-key tls.key --config webhook.yaml
    Webhook(webhook::WebhookArgs),
    /// Run the Kubernetes controller (ExternalSecret, SecretStore,
    /// ClusterSecretStore, SopsSecret) with leader election, /metrics,
    /// /healthz and /readyz. See docs/controller.md.
    ///
    /// Example: POD_NAMESPACE=sealgate-system sealgate controller --log-format json
    Controller(Box<controller::ControllerArgs>),
    /// Run one GitSync reconcile from a file: fetch, refuse plaintext
    /// secrets, decrypt sops Secrets, apply, prune (status in a ConfigMap).
    ///
    /// Example: sealgate sync --once -f sync.yaml --diff
    Sync(gitops::SyncArgs),
    /// Run only the GitSync controller (in-cluster or with $KUBECONFIG).
    ///
    /// Example: sealgate gitops --namespace sealgate-system
    Gitops(gitops::GitopsArgs),
}

/// Parses the process arguments, runs the subcommand, and returns the exit
/// code. Kept here (not in `main.rs`) so integration tests and the binary
/// share one path.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // clap prints help/version to stdout with 0 and usage errors to
        // stderr with 2, which matches our exit-code table.
        Err(e) => e.exit(),
    };
    if let Err(e) = logging::init(cli.log_format, &cli.log_level) {
        eprintln!("error: {e:#}");
        return ExitStatus::UsageOrInput.into();
    }
    tracing::debug!(
        version = env!("CARGO_PKG_VERSION"),
        commit = env!("SEALGATE_GIT_COMMIT"),
        "sealgate starting"
    );
    match run(cli.command) {
        Ok(status) => status.into(),
        Err(e) => {
            let status = e
                .downcast_ref::<Failure>()
                .map_or(ExitStatus::UsageOrInput, |f| f.status);
            tracing::debug!(exit = status as u8, "command failed");
            // A Failure already renders its whole chain; printing the
            // anyhow chain on top would repeat it.
            match e.downcast_ref::<Failure>() {
                Some(f) => eprintln!("error: {f}"),
                None => eprintln!("error: {e:#}"),
            }
            status.into()
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitStatus> {
    match command {
        Command::Lint(args) => lint::run(&args),
        Command::Version(args) => version::run(&args),
        Command::Store(args) => store::run_store(args),
        Command::Get(args) => store::run_get(args),
        Command::Encrypt(args) => sops::encrypt(&args),
        Command::Decrypt(args) => sops::decrypt(&args),
        Command::Edit(args) => sops::edit(&args),
        Command::Updatekeys(args) => sops::updatekeys(&args),
        Command::Rotate(args) => sops::rotate(&args),
        Command::Filestatus(args) => sops::filestatus(&args),
        Command::Crds(args) => crds::run(&args),
        Command::Convert(args) => convert::run(&args),
        Command::Webhook(args) => webhook::run(&args),
        Command::Controller(args) => controller::run(&args),
        Command::Sync(args) => gitops::run_sync(&args),
        Command::Gitops(args) => gitops::run_gitops(&args),
    }
}
