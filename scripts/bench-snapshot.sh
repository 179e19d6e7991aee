#!/usr/bin/env bash
# Benchmark: `oomguard snapshot` on a generated memory snapshot of about SIZE
# MiB (a long training trace, 60-frame stacks with C++ frames), against
# Python's own `pickle.load` of the same file (which only decodes it).
# Prints wall time and max RSS of each, and the ratios.
#   scripts/bench-snapshot.sh [SIZE_MIB=1024]
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1024}
snap=${TMPDIR:-/tmp}/oomguard-bench-snapshot-${size}m.pickle
[ -s "$snap" ] || python3 scripts/make-snapshots.py --big "$snap" --mib "$size"
cargo build --release -q -p oomguard
bin=target/release/oomguard
cat "$snap" >/dev/null # warm the page cache for both

measure() { # prints "seconds max_rss_kib" of the best of 2 runs
  local best=999999 rss=0
  for _ in 1 2; do
    /usr/bin/time -f "%e %M" -o /tmp/oomguard-bench-time "$@" >/tmp/oomguard-bench-out 2>&1 || true
    read -r t m </tmp/oomguard-bench-time
    if awk "BEGIN{exit !($t < $best)}"; then best=$t; rss=$m; fi
  done
  echo "$best $rss"
}

read -r ot om < <(measure "$bin" snapshot --json "$snap")
read -r pt pm < <(measure python3 -c 'import pickle,sys; pickle.load(open(sys.argv[1],"rb"))' "$snap")
entries=$("$bin" snapshot "$snap" | grep -o '[0-9]* trace entries' | head -1)
mib=$(du -m "$snap" | cut -f1)
printf '| tool | time (s) | max RSS (MiB) |\n|---|---|---|\n'
awk -v t="$ot" -v m="$om" 'BEGIN{printf "| oomguard snapshot --json | %.2f | %.0f |\n", t, m/1024}'
awk -v t="$pt" -v m="$pm" 'BEGIN{printf "| python3 pickle.load | %.2f | %.0f |\n", t, m/1024}'
awk -v a="$ot" -v b="$pt" -v c="$om" -v d="$pm" 'BEGIN{printf "\noomguard/pickle.load: time %.2fx, memory %.2fx\n", a/(b>0?b:0.01), c/(d>0?d:1)}'
echo "file: $snap ($mib MiB, $entries)"
