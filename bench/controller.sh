#!/usr/bin/env bash
# The controller at scale: a local kube-apiserver + etcd and an OpenBao dev
# server (the test fixtures, via examples/controller_bench.rs), N
# ExternalSecrets in M namespaces referencing D distinct OpenBao KV
# secrets, and the real `sealgate controller` binary. Reports the time until
# every ExternalSecret is Ready, backend calls (controller /metrics and
# OpenBao's audit log), apiserver writes by resource (apiserver_request_total)
# and the controller's peak RSS; then one refresh cycle with no backend
# change (Secret/status writes must be 0).
#
#   bench/controller.sh                      (10000 ExternalSecrets, 100 ns, 1000 secrets)
#   BENCH_EXTERNALSECRETS=1000 BENCH_NAMESPACES=10 BENCH_DISTINCT=100 bench/controller.sh
#
# Other knobs: BENCH_REFRESH_SECONDS (600; shorter intervals make refreshes of already-synced objects compete with the initial sync), BENCH_TIMEOUT_SECONDS (600),
# BENCH_CONTROLLER_ARGS (extra flags, e.g. "--concurrency 64"),
# PROFILE=release for an optimised controller (default debug: a release
# build of the whole graph takes longer than the benchmark on 2 cores).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup-dev" >/dev/null
export SEALGATE_TOOLS_DIR="${SEALGATE_TOOLS_DIR:-$root/.tools}"
profile="${PROFILE:-debug}"
if [ "$profile" = release ]; then
  cargo build --quiet --release --bin sealgate --example controller_bench --manifest-path "$root/Cargo.toml"
else
  cargo build --quiet --bin sealgate --example controller_bench --manifest-path "$root/Cargo.toml"
fi
export SEALGATE_BIN="$root/target/$profile/sealgate"
echo "# sealgate $(git -C "$root" rev-parse --short HEAD) profile=$profile $(uname -r)"
exec "$root/target/$profile/examples/controller_bench"
