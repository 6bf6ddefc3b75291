//! `sealgate store check` and `sealgate get`: for people who configure
//! backends and need to know "does this store work, and what does it
//! return?" without deploying the controller.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{ExitStatus, Failure};
use crate::providers::config::{StoreError, StoreFile};
use crate::providers::{Decoding, ProviderError, Reference, SecretValue};
use crate::secret::ExposeSecret;

/// `sealgate store …`
#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    command: StoreCommand,
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Validate a store definition, authenticate, and check reachability
    /// and permissions. Prints no secret value.
    ///
    /// Example: VAULT_TOKEN=… sealgate store check --config vault-dev.yaml
    Check {
        /// Store definition file (see docs/providers.md).
        #[arg(long)]
        config: PathBuf,
    },
}

/// `sealgate get`
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Store definition file (see docs/providers.md).
    #[arg(long)]
    config: PathBuf,
    /// Secret key (KV path, secret name or ARN, parameter name).
    key: String,
    /// One property of a key/value or JSON secret (dotted for nesting).
    #[arg(long)]
    property: Option<String>,
    /// A version (KV v2 number, AWS VersionId or stage, SSM version).
    #[arg(long)]
    version: Option<String>,
    /// Decode a base64-stored value before printing.
    #[arg(long)]
    base64: bool,
    /// Print even when stdout is a terminal (the value will be on screen
    /// and in scrollback).
    #[arg(long)]
    reveal: bool,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Exit status for a backend failure: outages are 3, refusals 1, and a
/// wrong reference or definition 2.
fn failure(e: StoreError) -> Failure {
    let status = match &e {
        StoreError::Config(_) => ExitStatus::UsageOrInput,
        StoreError::Provider(p) => match p {
            ProviderError::Unavailable { .. } | ProviderError::Throttled { .. } => {
                ExitStatus::Unavailable
            }
            ProviderError::Unauthenticated { .. } | ProviderError::PermissionDenied { .. } => {
                ExitStatus::Findings
            }
            ProviderError::NotFound { .. } | ProviderError::Invalid { .. } => {
                ExitStatus::UsageOrInput
            }
        },
    };
    Failure {
        status,
        source: e.into(),
    }
}

pub(super) fn run_store(args: StoreArgs) -> anyhow::Result<ExitStatus> {
    let StoreCommand::Check { config } = args.command;
    let file = StoreFile::load(&config).map_err(|e| failure(e.into()))?;
    runtime()?.block_on(async {
        let store = file.connect(&config).await.map_err(failure)?;
        store.check().await.map_err(|e| failure(e.into()))?;
        println!(
            "store {}: reachable, authenticated, permissions sufficient for a check",
            file.name
        );
        Ok(ExitStatus::Success)
    })
}

pub(super) fn run_get(args: GetArgs) -> anyhow::Result<ExitStatus> {
    let stdout = std::io::stdout();
    if stdout.is_terminal() && !args.reveal {
        return Err(Failure {
            status: ExitStatus::UsageOrInput,
            source: anyhow::anyhow!(
                "refusing to print a secret to a terminal; pipe the output or pass --reveal"
            ),
        }
        .into());
    }
    let file = StoreFile::load(&args.config).map_err(|e| failure(e.into()))?;
    let reference = Reference {
        key: args.key.clone(),
        property: args.property.clone(),
        version: args.version.clone(),
        decoding: if args.base64 {
            Decoding::Base64
        } else {
            Decoding::None
        },
    };
    runtime()?.block_on(async {
        let store = file.connect(&args.config).await.map_err(failure)?;
        let fetched = store
            .provider()
            .fetch(&reference)
            .await
            .map_err(|e| failure(e.into()))?;
        let mut out = stdout.lock();
        match &fetched.value {
            SecretValue::Bytes(b) => out.write_all(b.expose_secret())?,
            SecretValue::Map(m) => {
                // A JSON object of the fields; binary fields need --property.
                let mut obj = serde_json::Map::new();
                for (k, v) in m {
                    let text = std::str::from_utf8(v.expose_secret()).map_err(|_| {
                        Failure {
                            status: ExitStatus::UsageOrInput,
                            source: anyhow::anyhow!(
                                "field {k:?} is binary; select it with --property (and --base64 if stored as base64)"
                            ),
                        }
                    })?;
                    obj.insert(k.clone(), serde_json::Value::String(text.to_owned()));
                }
                let text = zeroize::Zeroizing::new(serde_json::Value::Object(obj).to_string());
                out.write_all(text.as_bytes())?;
                out.write_all(b"\n")?;
            }
        }
        out.flush()?;
        Ok(ExitStatus::Success)
    })
}
