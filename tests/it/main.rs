//! The single integration-test binary (one link step; see Cargo.toml).
//!
//! `support` holds the real-service fixtures; each module below tests one
//! area against them.

#[path = "../support/mod.rs"]
mod support;

mod cli;
mod cluster;
mod controller_process;
mod convert;
mod corpus;
mod crds;
mod deploy;
mod external_secret;
mod fixtures;
mod gate;
mod gitops;
mod gitops_ssh;
mod leases;
mod lint;
mod master_keys;
mod providers;
mod restarts;
mod sops;
mod sops_secret;
mod sops_store;
mod webhook;
