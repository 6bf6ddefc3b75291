#!/usr/bin/env bash
# sealgate vs sops on the same inputs, in one run (issue 4's benchmark).
#
#   bench/sops.sh [RUNS]        # default 5 runs per measurement
#
# Needs: a release build (cargo build --release), age-keygen, the sops
# binaries from scripts/setup-dev (or SOPS=/path/to/sops), GNU time.
# Prints medians (seconds), peak RSS (MiB) and ratios sops/sealgate. Not a
# test: timings never decide pass/fail.
set -euo pipefail

RUNS=${1:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=${SEALGATE_TOOLS_DIR:-$ROOT/.tools}
SG=${SEALGATE:-$ROOT/target/release/sealgate}
SOPS=${SOPS:-$(ls "$TOOLS"/bin/sops-v3.* 2>/dev/null | tail -1)}
[ -x "$SG" ] || { echo "build first: cargo build --release" >&2; exit 2; }
[ -x "$SOPS" ] || { echo "sops not found; set SOPS=" >&2; exit 2; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
age-keygen -o "$WORK/key.txt" 2>/dev/null
R=$(age-keygen -y "$WORK/key.txt")
export SOPS_AGE_KEY_FILE="$WORK/key.txt"
unset SOPS_AGE_KEY SOPS_AGE_RECIPIENTS SOPS_CONFIG || true
cd "$WORK"

# (a) one YAML file with 10,000 leaf values (~1 MB).
python3 - <<'PY'
import random
random.seed(4)
with open("big.yaml", "w") as f:
    for i in range(1000):
        f.write(f"service{i}:\n")
        for j in range(10):
            v = "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(80))
            f.write(f"    key{j}: {v}\n")
# (b) 500 small Kubernetes Secret manifests.
import os
os.makedirs("many", exist_ok=True)
for i in range(500):
    with open(f"many/s{i}.yaml", "w") as f:
        f.write(f"apiVersion: v1\nkind: Secret\nmetadata:\n    name: app{i}\n    namespace: team\ntype: Opaque\nstringData:\n    username: user{i}\n    password: {'p'*24}{i}\n")
PY
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB"
echo "sealgate: $("$SG" version | head -1); sops: $("$SOPS" --version 2>/dev/null | head -1)"
echo "input (a): $(wc -c < big.yaml) bytes, 10000 leaves; runs: $RUNS"

# median seconds and max RSS of a command run $RUNS times
measure() {
  local times=() rss=0
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f "%e %M" -o t.txt "$@" > /dev/null
    read -r s k < t.txt
    times+=("$s")
    [ "$k" -gt "$rss" ] && rss=$k
  done
  local med
  med=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "$med $((rss / 1024))"
}

"$SG" encrypt --age "$R" big.yaml > big.sg.yaml
"$SOPS" encrypt --age "$R" big.yaml > big.sops.yaml

row() { # name, sealgate "med rss", sops "med rss"
  read -r a ar <<< "$2"; read -r b br <<< "$3"
  printf '%-34s %9s s %6s MiB | %9s s %6s MiB | x%s time, x%s RSS\n' "$1" "$a" "$ar" "$b" "$br" \
    "$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.1f", (a>0? b/a : 0)}')" \
    "$(awk -v a="$ar" -v b="$br" 'BEGIN{printf "%.1f", (a>0? b/a : 0)}')"
}
printf '%-34s %21s | %21s | %s\n' "measurement" "sealgate" "sops" "sops/sealgate"
row "(a) encrypt big.yaml" "$(measure "$SG" encrypt --age "$R" big.yaml)" "$(measure "$SOPS" encrypt --age "$R" big.yaml)"
row "(a) decrypt big.yaml (own file)" "$(measure "$SG" decrypt big.sg.yaml)" "$(measure "$SOPS" decrypt big.sops.yaml)"
row "(a) decrypt big.yaml (sops file)" "$(measure "$SG" decrypt big.sops.yaml)" "$(measure "$SOPS" decrypt big.sops.yaml)"

for f in many/*.yaml; do "$SOPS" encrypt --age "$R" -i "$f"; done
cat > many.sh <<SH
#!/bin/sh
for f in many/*.yaml; do "\$1" decrypt "\$f" > /dev/null || exit 1; done
SH
chmod +x many.sh
row "(b) decrypt 500 files, 1 proc/file" "$(measure ./many.sh "$SG")" "$(measure ./many.sh "$SOPS")"
