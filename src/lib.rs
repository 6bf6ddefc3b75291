//! sealgate: a secrets bridge for GitOps.
//!
//! Git stays the single source of truth, but secrets never sit in it in clear.
//! This crate is one library plus the `sealgate` binary; modules are split by
//! responsibility and depend downward only:
//!
//! ```text
//! cli ─▶ controller / gitops ─▶ providers / sops / gate ─▶ shared types (secret)
//! ```
//!
//! `docs/architecture.md` has the module map and the planned data flow from
//! Git to a Kubernetes Secret. Modules are added when their first real code
//! lands, not as empty shells.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod controller;
pub mod gate;
pub mod gitops;
pub mod leader;
pub mod providers;
pub mod secret;
pub mod sops;
pub mod telemetry;
pub mod webhook;
