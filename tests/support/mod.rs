//! Real services for integration tests: a Kubernetes control plane
//! (etcd + kube-apiserver), OpenBao, moto, PostgreSQL, and the age and sops
//! CLIs.
//!
//! Design note: no mock stands in for a backend. Each fixture starts its own
//! process on 127.0.0.1 with a free port, waits until the service answers,
//! and kills it on drop — which also runs when a test panics, because panics
//! unwind. One process per test keeps tests isolated without cleanup logic;
//! all of them start in a few seconds. The exception is the Kubernetes
//! control plane (`cluster`): one per test binary, a namespace per test,
//! because kube-apiserver is too heavy to start per test on 2 cores. Tools come from `scripts/setup-dev`
//! (versions in `scripts/tool-versions.env`); a missing tool fails the test
//! with the command that installs it, never skips it.
#![allow(dead_code)] // each test module uses a different subset

pub mod cluster;
pub mod corpus;
pub mod logs;
pub mod moto;
pub mod openbao;
pub mod postgres;
pub mod process;
pub mod sshd;
pub mod tools;

/// Polls `f` every 200 ms until it yields a value, for up to a minute, then
/// panics naming `what`. Tests wait for the controller to act this way rather
/// than asserting on timings (the machine is shared and noisy).
pub async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..300 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}
