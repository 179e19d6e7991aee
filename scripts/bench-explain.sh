#!/usr/bin/env bash
# Benchmark: `oomguard explain` on a generated training log with a few OOM
# events, and on a log dense with OOM lines (100,000 of them, as a loop that
# catches every OOM prints), against `grep -c 'out of memory'` on the same
# files in the same run. Prints wall time, throughput and max RSS of each,
# and the ratios.
#   scripts/bench-explain.sh [SIZE_MIB=1024]
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1024}
log=${TMPDIR:-/tmp}/oomguard-bench-${size}m.log
[ -s "$log" ] || python3 scripts/gen-training-log.py "$log" "$size" 5
cargo build --release -q
bin=target/release/oomguard
cat "$log" >/dev/null # warm the page cache for both tools

measure() { # prints "seconds max_rss_kib"
  local best=999999 rss=0
  for _ in 1 2 3; do
    # Output goes to a file, not /dev/null: GNU grep stops at the first match
    # when it sees its output is /dev/null, which would flatter it.
    /usr/bin/time -f "%e %M" -o /tmp/oomguard-bench-time "$@" >/tmp/oomguard-bench-out 2>&1 || true
    read -r t m </tmp/oomguard-bench-time
    if awk "BEGIN{exit !($t < $best)}"; then best=$t; rss=$m; fi
  done
  echo "$best $rss"
}

read -r gt gm < <(measure grep -c 'out of memory' "$log")
read -r ot om < <(measure "$bin" explain --json "$log")
events=$("$bin" explain --json "$log" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["events"]))')
mib=$(du -m "$log" | cut -f1)
printf '| tool | time (s) | MiB/s | max RSS (MiB) |\n|---|---|---|---|\n'
awk -v n="$mib" -v t="$gt" -v m="$gm" 'BEGIN{printf "| grep -c '\''out of memory'\'' | %.2f | %.0f | %.1f |\n", t, n/(t>0?t:0.01), m/1024}'
awk -v n="$mib" -v t="$ot" -v m="$om" 'BEGIN{printf "| oomguard explain --json | %.2f | %.0f | %.1f |\n", t, n/(t>0?t:0.01), m/1024}'
awk -v a="$ot" -v b="$gt" 'BEGIN{printf "\noomguard/grep time ratio: %.2f\n", a/(b>0?b:0.01)}'
echo "file: $log ($mib MiB), events found: $events"

# A log dense with OOM lines: every line a failure, figures and devices varying.
dense=${TMPDIR:-/tmp}/oomguard-bench-dense.log
[ -s "$dense" ] || python3 - "$dense" <<'PY'
import random, sys
random.seed(7)
with open(sys.argv[1], "w") as f:
    for i in range(100_000):
        f.write("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate %.2f MiB. GPU %d has a total capacity of 23.65 GiB of which 1.06 GiB is free. Including non-PyTorch memory, this process has 22.58 GiB memory in use. Of the allocated memory 20.12 GiB is allocated by PyTorch, and 1.95 GiB is reserved by PyTorch but unallocated.\n" % (random.random() * 1000, i % 8))
PY
read -r dgt dgm < <(measure grep -c 'out of memory' "$dense")
read -r dot dom < <(measure "$bin" explain --json "$dense")
dmib=$(du -m "$dense" | cut -f1)
printf '\n| dense log (100,000 OOM lines, %s MiB) | time (s) | max RSS (MiB) |\n|---|---|---|\n' "$dmib"
awk -v t="$dgt" -v m="$dgm" 'BEGIN{printf "| grep -c '\''out of memory'\'' | %.2f | %.1f |\n", t, m/1024}'
awk -v t="$dot" -v m="$dom" 'BEGIN{printf "| oomguard explain --json | %.2f | %.1f |\n", t, m/1024}'
