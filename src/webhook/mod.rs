//! The admission webhook: the plaintext gate at the apiserver's door.
//!
//! Design note: `sealgate lint` stops plaintext secrets in CI and the
//! reconcile loop stops them before apply, but anything written straight to
//! the apiserver (`kubectl create secret`, a Helm release, a CI job with
//! cluster access) bypasses both. A ValidatingWebhookConfiguration for
//! Secrets, ConfigMaps and the workload kinds sends those writes here, and
//! the same engine (`crate::gate::check_object`) decides. The webhook only
//! validates — it never mutates — so `sideEffects: None` holds and a
//! dry-run is as safe as a real request.
//!
//! Split: [`config`] (who is exempt), [`review`] (one AdmissionReview in,
//! one decision out, no network — unit-tested and fuzzed), [`server`]
//! (HTTPS with certificate reload). It depends only on the gate and on the
//! controller's field-manager constant, so it never touches a Kubernetes
//! client and never reads a Secret of its own beyond its mounted TLS files.

pub mod config;
pub mod review;
pub mod server;

pub use config::{ConfigError, Policy};
pub use review::{AllowReason, Outcome, ReviewError, Reviewed, review};
pub use server::{ServerError, TlsFiles, VALIDATE_PATH, bind_and_serve, router, serve};

#[cfg(test)]
mod tests;
