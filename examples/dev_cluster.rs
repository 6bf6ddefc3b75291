//! A local Kubernetes control plane (etcd + kube-apiserver) and, on request,
//! an OpenBao dev server, outside the test suite — for `make demo` and the
//! controller/sync benchmarks.
//!
//! It reuses the test fixtures (`tests/support`), so demo, benchmarks and
//! tests run the very same real components. Prints `KUBECONFIG=<path>` (and
//! `VAULT_ADDR=...`, `VAULT_TOKEN=...` with `--openbao`) as shell assignments
//! on stdout, then runs until stdin closes or it gets SIGTERM/SIGINT; the
//! services stop with it.
//!
//! Usage: dev_cluster [--openbao]   (eval "$(... | head -n N)" style use:
//! see bench/*.sh and the Makefile's demo target)

#[path = "../tests/support/mod.rs"]
#[allow(unused)]
mod support;

use std::io::{Read, Write};

fn main() {
    let openbao = std::env::args().any(|a| a == "--openbao");
    let cluster = support::cluster::TestCluster::get();
    let bao = openbao.then(support::openbao::OpenBao::start);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "KUBECONFIG={}", cluster.kubeconfig().display());
    if let Some(b) = &bao {
        let _ = writeln!(out, "VAULT_ADDR={}", b.addr());
        let _ = writeln!(out, "VAULT_TOKEN={}", b.root_token());
    }
    let _ = writeln!(out, "READY=1");
    let _ = out.flush();
    drop(out);
    // Block until the parent closes our stdin (or kills us); the process
    // watchdogs stop etcd, kube-apiserver and OpenBao when we exit.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(bao);
}
