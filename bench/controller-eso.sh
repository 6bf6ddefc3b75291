#!/usr/bin/env bash
# The controller benchmark against its peer, External Secrets Operator (ESO),
# on the same input in one run: examples/controller_bench.rs runs twice back
# to back, first with the real `sealgate controller`, then (BENCH_PEER=eso)
# with ESO's `external-secrets` binary, each on a fresh local kube-apiserver +
# etcd and OpenBao dev server with N ExternalSecrets in M namespaces reading
# D distinct KV secrets through one ClusterSecretStore (token auth). Prints
# both sets of figures and the ratios sealgate / ESO (the machine is noisy;
# compare the ratios, not the absolute numbers across runs).
#
#   bench/controller-eso.sh                  (10000 ExternalSecrets, 100 ns, 1000 secrets)
#   BENCH_EXTERNALSECRETS=1000 BENCH_NAMESPACES=10 BENCH_DISTINCT=100 \
#     BENCH_REFRESH_SECONDS=30 PROFILE=release bench/controller-eso.sh
#
# Knobs: those of bench/controller.sh (BENCH_*, PROFILE), SEALGATE_BIN (a
# prebuilt sealgate binary to run instead of building one), BENCH_ESO_ARGS
# (extra ESO flags; default "--concurrent 16", sealgate's default
# concurrency, where ESO's own default is 1). ESO is built once by
# scripts/build-eso (version pinned in scripts/tool-versions.env) into
# ~/.cache/sealgate/eso-<version>/; the first run takes long.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup-dev" >/dev/null
export SEALGATE_TOOLS_DIR="${SEALGATE_TOOLS_DIR:-$root/.tools}"
ESO_DIR="$("$root/scripts/build-eso" | tail -n 1)"
export ESO_DIR
profile="${PROFILE:-debug}"
if [ -n "${SEALGATE_BIN:-}" ]; then
  # A prebuilt controller (e.g. another checkout's release build of the
  # same commit): only the driver is built, in debug.
  profile="debug (driver); controller $SEALGATE_BIN"
  cargo build --quiet --example controller_bench --manifest-path "$root/Cargo.toml"
  driver="$root/target/debug/examples/controller_bench"
else
  if [ "$profile" = release ]; then
    cargo build --quiet --release --bin sealgate --example controller_bench --manifest-path "$root/Cargo.toml"
  else
    cargo build --quiet --bin sealgate --example controller_bench --manifest-path "$root/Cargo.toml"
  fi
  export SEALGATE_BIN="$root/target/$profile/sealgate"
  driver="$root/target/$profile/examples/controller_bench"
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

. "$root/scripts/tool-versions.env"
echo "# sealgate $(git -C "$root" rev-parse --short HEAD) profile=$profile vs ESO $ESO_VERSION; $(uname -r); load $(cut -d' ' -f1-3 /proc/loadavg)"
for peer in sealgate eso; do
  echo "## $peer"
  BENCH_PEER="$peer" "$driver" | tee "$out/$peer"
  echo "# load after $peer: $(cut -d' ' -f1-3 /proc/loadavg)"
done

# Ratios from the two `summary` lines (key=value pairs).
echo "## sealgate / ESO"
awk '
  $1 == "summary" {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); v[FILENAME, kv[1]] = kv[2] }
    files[++nf] = FILENAME
    if (nf == 1) for (i = 3; i <= NF; i++) { split($i, kv, "="); keys[++nk] = kv[1] }
  }
  END {
    if (nf != 2) { print "missing a summary line (did a run fail?)"; exit 1 }
    printf "%-36s %12s %12s %8s\n", "figure", "sealgate", "eso", "ratio"
    for (k = 1; k <= nk; k++) {
      s = v[files[1], keys[k]]; e = v[files[2], keys[k]]
      r = (e + 0 != 0 && s ~ /^[0-9.]+$/) ? sprintf("%.2f", s / e) : "-"
      printf "%-36s %12s %12s %8s\n", keys[k], s, e, r
    }
  }' "$out/sealgate" "$out/eso"
