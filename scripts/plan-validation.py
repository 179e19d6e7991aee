#!/usr/bin/env python3
"""Error table of `oomguard plan` against published measurements.

Runs the release binary on every row of the validation files and prints, per
metric, the median and worst relative error of oomguard next to two rules of
thumb applied to the same rows: the weights times 4, and the weights plus 20%
(weights at the row's dtype and quantization, as oomguard computes them).
Rows marked `skip` (setups no flag expresses) are listed apart.

Usage: scripts/plan-validation.py [FILE ...]   (default: the project's files)
"""
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = [
    ROOT / "crates/oomguard/tests/fixtures/plan/shared_measured.jsonl",
    ROOT / "crates/oomguard/tests/fixtures/plan/collected_measured.jsonl",
]
PEAKS = ("allocated_peak_bytes", "reserved_peak_bytes", "device_used_bytes")


def run(row, binary):
    args = [binary, "plan", row["model"], "--json", *row["args"].split()]
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode == 2:
        raise SystemExit(f"{row['id']}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def main():
    files = [Path(f) for f in sys.argv[1:]] or FILES
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    binary = str(ROOT / "target/release/oomguard")
    errors = {}  # metric -> list of (ours, x4, plus20)
    skipped, misses = [], []
    for f in files:
        for line in f.read_text().splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            plan = run(row, binary)
            metric, want = row["metric"], row["expected"]
            got = plan["max_seq"] if metric == "max_seq" else plan["per_gpu"][metric]
            err = (got - want) / want if got is not None else float("inf")
            if row.get("skip"):
                skipped.append((row["id"], metric, err, row["skip"]))
                continue
            if abs(err) > row["tol"]:
                misses.append(row["id"])
            weights = plan["per_gpu"]["weights_bytes"]
            rules = (weights * 4 / want - 1, weights * 1.2 / want - 1) if metric in PEAKS else (None, None)
            errors.setdefault(metric, []).append((err, *rules))

    def cell(values):
        values = [abs(v) for v in values if v is not None]
        if not values:
            return "n/a", "n/a"
        return f"{statistics.median(values) * 100:.1f}%", f"{max(values) * 100:.1f}%"

    print("| metric | cases | oomguard median | oomguard worst | weights x4 median | weights x4 worst | weights +20% median | weights +20% worst |")
    print("|---|---|---|---|---|---|---|---|")
    everything = []
    for metric in sorted(errors):
        rows = errors[metric]
        everything += rows
        cols = [cell([r[i] for r in rows]) for i in range(3)]
        print(f"| {metric} | {len(rows)} | {cols[0][0]} | {cols[0][1]} | {cols[1][0]} | {cols[1][1]} | {cols[2][0]} | {cols[2][1]} |")
    cols = [cell([r[i] for r in everything]) for i in range(3)]
    print(f"| all | {len(everything)} | {cols[0][0]} | {cols[0][1]} | {cols[1][0]} | {cols[1][1]} | {cols[2][0]} | {cols[2][1]} |")
    print(f"\ncases outside their tolerance: {len(misses)} {' '.join(misses)}")
    if skipped:
        print("\nrows not scored (a setup no flag expresses):")
        for rid, metric, err, why in skipped:
            print(f"- {rid} ({metric}, oomguard {err * 100:+.0f}%): {why}")


if __name__ == "__main__":
    main()
