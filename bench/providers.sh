#!/usr/bin/env bash
# Resolve REFS references over DISTINCT OpenBao KV secrets: a naive
# one-call-per-reference loop against sealgate's Frugal provider (cold, then
# warm), in one run against one OpenBao dev server. Reports wall time,
# backend calls (from OpenBao's audit log) and peak RSS of each process.
#
#   bench/providers.sh [REFS] [DISTINCT]      (defaults 10000 1000)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
refs="${1:-10000}"; distinct="${2:-1000}"
"$root/scripts/setup-dev" >/dev/null
bao="${SEALGATE_TOOLS_DIR:-$root/.tools}/venv/bin/bao"
# Debug profile: examples link every dev-dependency, and a release build of
# that graph takes longer than the benchmark. The comparison is about
# backend calls and concurrency, which the profile does not change; set
# PROFILE=release for absolute figures.
profile="${PROFILE:-debug}"
if [ "$profile" = release ]; then
  cargo build --quiet --release --example providers_bench --manifest-path "$root/Cargo.toml"
else
  cargo build --quiet --example providers_bench --manifest-path "$root/Cargo.toml"
fi
bin="$root/target/$profile/examples/providers_bench"

work="$(mktemp -d)"; trap 'kill "$bao_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat > "$work/audit.hcl" <<HCL
audit "file" "bench" {
  options { file_path = "$work/audit.log" }
}
HCL
HOME="$work" "$bao" server -dev -config="$work/audit.hcl" -dev-listen-address="127.0.0.1:$port" \
  -dev-root-token-id=bench-root -dev-no-store-token >"$work/bao.log" 2>&1 &
bao_pid=$!
addr="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -fs "$addr/v1/sys/health" >/dev/null 2>&1 && break; sleep 0.1; done

calls() { grep -c '"type":"response".*"path":"secret/data/bench/' "$work/audit.log" || true; }
run() { # mode -> prints the driver's lines, then calls and peak RSS
  local before after
  before="$(calls)"
  /usr/bin/time -f "peak_rss_kb=%M" -o "$work/time" "$bin" "$addr" bench-root "$1" "$refs" "$distinct"
  after="$(calls)"
  echo "$1 backend_calls=$((after - before)) $(cat "$work/time")"
}
echo "# refs=$refs distinct=$distinct machine: $(nproc) cores, $(uname -r)"
"$bin" "$addr" bench-root seed "$refs" "$distinct"
run naive
run frugal
