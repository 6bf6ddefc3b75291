//! The Kubernetes controller: turns `ExternalSecret`s and `SopsSecret`s into
//! Kubernetes Secrets, using the stores (`SecretStore`,
//! `ClusterSecretStore`) that security teams define.
//!
//! Design note: `api` holds the custom resource types (the CRDs in `crds/`
//! are generated from them by `sealgate crds`); each reconciler lives in its
//! own module and is readable on its own. The controller depends on
//! `providers` and `sops` for values and on kube-rs for the cluster; nothing
//! below it knows about Kubernetes.

pub mod api;
pub mod context;
pub mod convert;
pub mod crds;
pub mod leases;
pub mod external_secret;
pub mod metrics;
pub mod runner;
pub mod restarts;
pub mod sops_secret;
pub mod status;
pub mod stores;
