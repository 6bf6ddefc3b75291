#!/usr/bin/env bash
# Benchmark: sealgate lint vs gitleaks (--no-git directory mode) vs
# detect-secrets on ONE generated, labelled GitOps corpus, in one run.
#
# Reports per tool: median wall time over RUNS runs (detect-secrets: SLOW_RUNS,
# it takes minutes), peak RSS (GNU time), findings, and recall/precision
# against the corpus labels at line granularity (a finding counts when its
# file and line carry a planted secret). Prints a Markdown table for
# docs/benchmarks.md. Timings are never asserted anywhere.
#
#   bench/lint.sh [APPS] [BULK_KIB]     defaults: 150 apps, 560 KiB bulk/app (~100 MB)
#
# Peers are pinned in scripts/tool-versions.env and installed by
# scripts/setup-bench (into .tools/, or $SEALGATE_TOOLS_DIR).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../scripts/tool-versions.env
. "$root/scripts/tool-versions.env"
tools="${SEALGATE_TOOLS_DIR:-$root/.tools}"
apps="${1:-150}"
bulk="${2:-560}"
runs="${RUNS:-3}"
slow_runs="${SLOW_RUNS:-1}"
work="${BENCH_DIR:-$(mktemp -d /tmp/sealgate-bench.XXXXXX)}"
corpus="$work/corpus"

"$root/scripts/setup-bench"
gitleaks="$tools/bin/gitleaks-$GITLEAKS_VERSION"
detect_secrets="$tools/bench-venv/bin/detect-secrets"

# The generator is an example (it shares tests/support/corpus.rs), so it is
# built in the dev profile: examples pull in dev-dependencies, which are
# already built for the tests but would be a long cold release build.
(cd "$root" && cargo build --quiet --example gen_corpus && cargo build --release --quiet --bin sealgate)
sealgate="$root/target/release/sealgate"

rm -rf "$corpus"
"$root/target/debug/examples/gen_corpus" "$corpus" "$apps" "$bulk"
labels="$corpus.labels.tsv"
files=$(find "$corpus" -type f | wc -l)
bytes=$(find "$corpus" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
echo "corpus: $files files, $bytes bytes, $(wc -l < "$labels") planted secrets" >&2

# run NAME N CMD...: runs CMD N times in the corpus dir, records wall seconds
# and peak RSS (KiB) of each run in $work/NAME.times.
run() {
  local name=$1 n=$2
  shift 2
  : > "$work/$name.times"
  for _ in $(seq "$n"); do
    (cd "$corpus" && /usr/bin/time -f '%e %M' -o "$work/$name.one" "$@" > "$work/$name.stdout" 2> "$work/$name.stderr") || true
    cat "$work/$name.one" >> "$work/$name.times"
  done
}

run sealgate "$runs" "$sealgate" lint --no-config --fail-on never --format json --output "$work/sealgate.json" .
run gitleaks "$runs" "$gitleaks" detect --no-git --no-banner --source . --report-format json --report-path "$work/gitleaks.json" --exit-code 0
run detect-secrets "$slow_runs" "$detect_secrets" scan --all-files .
cp "$work/detect-secrets.stdout" "$work/detect-secrets.json"

python3 - "$work" "$labels" "$files" "$bytes" "$(nproc)" <<'PY'
import json, statistics, sys, os
work, labels_path, files, nbytes, cpus = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
labels = set()
for line in open(labels_path):
    p, l, _ = line.rstrip("\n").split("\t")
    labels.add((p, int(l)))
def norm(p):
    p = p.replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    return p
def found(name):
    path = os.path.join(work, f"{name}.json")
    data = json.load(open(path))
    if name == "sealgate":
        return {(norm(f["path"]), f["line"]) for f in data["findings"]}
    if name == "gitleaks":
        return {(norm(f["File"]), f["StartLine"]) for f in (data or [])}
    out = set()
    for p, items in data.get("results", {}).items():
        for it in items:
            out.add((norm(p), it["line_number"]))
    return out
rows = {}
for name in ["sealgate", "gitleaks", "detect-secrets"]:
    times = [tuple(map(float, l.split())) for l in open(os.path.join(work, f"{name}.times")) if l.strip()]
    wall = statistics.median(t[0] for t in times)
    rss = max(t[1] for t in times) / 1024
    f = found(name)
    tp = len(f & labels)
    rows[name] = dict(wall=wall, rss=rss, n=len(f), recall=tp / len(labels), precision=(tp / len(f)) if f else 1.0, runs=len(times))
mb = nbytes / 1e6
print(f"Corpus: {files} files, {mb:.1f} MB, {len(labels)} planted secrets; machine: {cpus} CPUs (`nproc`), shared.")
print()
print("| tool | runs | median wall (s) | MB/s | peak RSS (MB) | findings (distinct lines) | recall | precision |")
print("|---|---|---|---|---|---|---|---|")
for name, r in rows.items():
    print(f"| {name} | {r['runs']} | {r['wall']:.2f} | {mb / r['wall']:.1f} | {r['rss']:.1f} | {r['n']} | {r['recall']:.3f} | {r['precision']:.3f} |")
s = rows["sealgate"]["wall"]
print()
print(f"Speed-up of sealgate: {rows['gitleaks']['wall'] / s:.1f}x vs gitleaks, {rows['detect-secrets']['wall'] / s:.1f}x vs detect-secrets.")
PY
echo "work dir (outputs, corpus): $work" >&2
