//! `sealgate crds`: print or write the CustomResourceDefinitions.
//!
//! Design note: this is the one list of every sealgate CRD (controller and
//! GitOps loop), so `crds/`, `deploy/` and the staleness test all come from
//! the same place.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

use super::ExitStatus;
use crate::controller;

/// Arguments of `sealgate crds`.
#[derive(Debug, Args)]
pub struct CrdsArgs {
    /// Write one file per CRD into this directory instead of printing a
    /// multi-document stream (the repository's `crds/` is made this way).
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// Every CRD sealgate installs.
pub fn all() -> Vec<CustomResourceDefinition> {
    let mut crds = controller::crds::controller_crds();
    crds.push(<crate::gitops::spec::GitSync as kube::CustomResourceExt>::crd());
    crds
}

pub(super) fn run(args: &CrdsArgs) -> anyhow::Result<ExitStatus> {
    let mut docs = Vec::new();
    for crd in all() {
        docs.push(controller::crds::render(&crd).context("rendering a CRD")?);
    }
    match &args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, text) in docs {
                let path = dir.join(name);
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        None => {
            let stream = docs
                .into_iter()
                .map(|(_, text)| text)
                .collect::<Vec<_>>()
                .join("---\n");
            print!("{stream}");
        }
    }
    Ok(ExitStatus::Success)
}
