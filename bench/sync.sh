#!/usr/bin/env bash
# GitSync benchmark: 1,000 ConfigMaps in 50 files against the test
# kube-apiserver (tests/support/cluster.rs, the audited control plane).
# Prints one JSON line per phase (first sync, no-change reconcile,
# one-object change) with wall time, the API calls the loop counted itself
# (`apiCalls`) and the requests kube-apiserver's audit log recorded for the
# sync's own user (`audit.byVerb`, dry-run patches as `patch(dryRun)`;
# `audit.byVerbResource`), then the peak RSS of the test process (the loop,
# the kube client and the test harness; etcd and kube-apiserver are
# separate processes and not included).
#
# Usage: SEALGATE_TOOLS_DIR=.tools bench/sync.sh
#        SEALGATE_BENCH_RELEASE=1 bench/sync.sh   # optimised build (slow
#                                                  # first build of the test binary)
set -euo pipefail
cd "$(dirname "$0")/.."
export SEALGATE_TOOLS_DIR="${SEALGATE_TOOLS_DIR:-$PWD/.tools}"
profile=()
[ -n "${SEALGATE_BENCH_RELEASE:-}" ] && profile=(--release)
cargo test "${profile[@]}" --test it --no-run 2>/dev/null
bin=$(cargo test "${profile[@]}" --test it --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4)
/usr/bin/time -v "$bin" gitops::bench_1000_objects_in_50_files --ignored --exact --nocapture --test-threads=1 \
  2>"${TMPDIR:-/tmp}/sealgate-bench-time.txt" | grep "\"phase\""
grep -E "Maximum resident set size|Elapsed" "${TMPDIR:-/tmp}/sealgate-bench-time.txt"
