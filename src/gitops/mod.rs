//! The GitOps reconcile loop: a `GitSync` pulls manifests from Git, refuses
//! any revision carrying a plaintext secret, decrypts sops Secrets in
//! memory, and applies with server-side apply — correcting drift and
//! pruning safely.
//!
//! Design note: one module per step so each reads on its own: `spec` (the
//! resource and its file form), `source` (resolve and fetch with gix),
//! `render` (files → objects with file:line), `validate` (structure and the
//! gate), `secrets` (decrypt + redactor), `diff`, `plan` (staging, dry-run
//! cache, apply, prune), `sync` (one reconcile, in order) and `controller`
//! (the kube-rs runtime around it), `metrics` (its Prometheus registry). Nothing here writes to the cluster
//! before the whole revision has passed rendering, validation and
//! decryption.

pub mod controller;
pub mod metrics;
pub mod render;
pub mod secrets;
pub mod source;
pub mod spec;
pub mod sync;
