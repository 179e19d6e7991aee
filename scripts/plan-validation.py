#!/usr/bin/env python3
"""Error table of `oomguard plan` against published measurements.

Runs the binary on every row of the validation files and prints the median
relative error of oomguard and the share of rows within their tolerance, per
category and per split (dev: rows the rules were tuned against; held-out:
rows kept aside and only scored), next to two rules of thumb applied to the
same rows: the weights times 4, and the weights plus 20% (weights at the
row's dtype and quantization, as oomguard computes them; only for the
PyTorch peaks, where the rules apply). Rows marked `"scored": false` (a setup
no flag expresses) are listed apart with their reason; rows outside their
tolerance are listed by name.

Usage: scripts/plan-validation.py [--bin PATH] [--compare PATH] [FILE ...]
       (default: the release binary, built first, and the project's files)
       --compare PATH also runs a second binary (an older build, a trial
       rule) on the same rows and prints both figures per split and every
       row whose error moved.
"""
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "crates/oomguard/tests/fixtures/plan"
FILES = [FIXTURES / "shared_measured.jsonl", FIXTURES / "collected_measured.jsonl", FIXTURES / "corpus_measured.jsonl",
         FIXTURES / "corpus_measured_breadth.jsonl", FIXTURES / "corpus_measured_training.jsonl",
         FIXTURES / "corpus_measured_act.jsonl", FIXTURES / "corpus_measured_setups.jsonl",
         FIXTURES / "corpus_measured_multi.jsonl", FIXTURES / "corpus_measured_training2.jsonl",
         FIXTURES / "corpus_measured_heldout2.jsonl"]
PEAKS = ("allocated_peak_bytes", "reserved_peak_bytes", "device_used_bytes")


def figure(plan, metric):
    """The plan's figure for a row's metric: `engine.X`, `max_seq`, or a per-GPU field."""
    if metric.startswith("engine."):
        return (plan.get("engine") or {}).get(metric.split(".", 1)[1])
    if metric in ("max_seq", "max_batch"):
        return plan.get(metric)
    return plan["per_gpu"].get(metric)


def run(row, binary):
    args = [binary, "plan", row["model"], "--json", *row["args"].split()]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if out.returncode == 2:
        return None, out.stderr.strip().splitlines()[0] if out.stderr.strip() else "exit 2"
    return json.loads(out.stdout), None


def median_pct(values):
    values = [abs(v) for v in values if v is not None]
    return f"{statistics.median(values) * 100:.1f}%" if values else "n/a"


def within_pct(rows):
    return f"{sum(1 for r in rows if r['ok']) / len(rows) * 100:.0f}%" if rows else "n/a"


def table(title, groups):
    print(f"\n{title}\n")
    print("| group | rows | oomguard median | within tolerance | weights x4 median | weights +20% median |")
    print("|---|---|---|---|---|---|")
    for name, rows in groups:
        if not rows:
            continue
        print(
            f"| {name} | {len(rows)} | {median_pct([r['err'] for r in rows])} | {within_pct(rows)} "
            f"| {median_pct([r['x4'] for r in rows])} | {median_pct([r['plus20'] for r in rows])} |"
        )


def score(files, binary):
    """Runs `binary` on every row: (scored rows, unscored rows, rows it refused)."""
    scored, unscored, errors = [], [], []
    for f in files:
        for line in f.read_text().splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            reason = row.get("reason") if row.get("scored") is False else row.get("skip")
            plan, error = run(row, binary)
            if error:
                errors.append((row["id"], error))
                continue
            want, got = row["expected"], figure(plan, row["metric"])
            err = (got - want) / want if got is not None else None
            if reason:
                unscored.append((row["id"], row["metric"], err, reason))
                continue
            weights = plan["per_gpu"]["weights_bytes"]
            peak = row["metric"] in PEAKS
            scored.append({
                "id": row["id"],
                "category": row.get("category", "uncategorized"),
                "split": row.get("split", "dev"),
                "err": err,
                "ok": err is not None and abs(err) <= row["tol"],
                "x4": weights * 4 / want - 1 if peak else None,
                "plus20": weights * 1.2 / want - 1 if peak else None,
            })
    return scored, unscored, errors


def main():
    argv = sys.argv[1:]
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__.strip())
        return
    binary = None
    if argv[:1] == ["--bin"]:
        if len(argv) < 2:
            sys.exit("plan-validation: --bin needs a path")
        binary, argv = argv[1], argv[2:]
    other = None
    if argv[:1] == ["--compare"]:
        if len(argv) < 2:
            sys.exit("plan-validation: --compare needs a path")
        other, argv = argv[1], argv[2:]
    unknown = [a for a in argv if a.startswith("-")]
    if unknown:
        sys.exit(f"plan-validation: unknown option {unknown[0]} (see --help)")
    missing = [f for f in argv if not Path(f).is_file()]
    if missing:
        sys.exit(f"plan-validation: no such file: {missing[0]}")
    files = [Path(f) for f in argv] or FILES
    if binary is None:
        subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
        binary = str(ROOT / "target/release/oomguard")
    scored, unscored, errors = score(files, binary)
    splits = ["dev", "held-out"]
    categories = sorted({r["category"] for r in scored})
    table("By split", [(s, [r for r in scored if r["split"] == s]) for s in splits] + [("all", scored)])
    print("\nBy category (dev / held-out)\n")
    print("| category | dev rows | dev median | dev within | held-out rows | held-out median | held-out within | weights x4 median | weights +20% median |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c in categories:
        rows = [r for r in scored if r["category"] == c]
        dev = [r for r in rows if r["split"] == "dev"]
        held = [r for r in rows if r["split"] == "held-out"]
        print(
            f"| {c} | {len(dev)} | {median_pct([r['err'] for r in dev])} | {within_pct(dev)} "
            f"| {len(held)} | {median_pct([r['err'] for r in held])} | {within_pct(held)} "
            f"| {median_pct([r['x4'] for r in rows])} | {median_pct([r['plus20'] for r in rows])} |"
        )
    misses = [r for r in scored if not r["ok"]]
    print(f"\nrows outside their tolerance: {len(misses)} of {len(scored)}")
    for r in misses:
        e = "no figure" if r["err"] is None else f"{r['err'] * 100:+.0f}%"
        print(f"- {r['id']} ({r['split']}, {r['category']}): {e}")
    if unscored:
        print("\nrows not scored (a setup no flag expresses), by reason:")
        reasons = {}
        for rid, metric, err, why in unscored:
            e = "no figure" if err is None else f"{err * 100:+.0f}%"
            reasons.setdefault(why, []).append(f"{rid} ({metric}, oomguard {e})")
        for why, rows in reasons.items():
            print(f"- {len(rows)} row(s): {', '.join(rows)}\n  why: {why}")
    if errors:
        print("\nrows the binary refused (exit 2):")
        for rid, why in errors:
            print(f"- {rid}: {why}")
    if other:
        compare(scored, score(files, other)[0], splits)


def signed(err):
    return "no figure" if err is None else f"{err * 100:+.1f}%"


def compare(scored, theirs, splits):
    """Prints, for two binaries on the same rows, each split's median and
    share within tolerance, and every row whose error moved."""
    by_id = {r["id"]: r for r in theirs}
    print("\nCompared with --compare (this binary -> the other)\n")
    print("| split | median | within tolerance |")
    print("|---|---|---|")
    for s in splits + ["all"]:
        mine = [r for r in scored if s == "all" or r["split"] == s]
        other = [by_id[r["id"]] for r in mine if r["id"] in by_id]
        print(
            f"| {s} | {median_pct([r['err'] for r in mine])} -> {median_pct([r['err'] for r in other])} "
            f"| {within_pct(mine)} -> {within_pct(other)} |"
        )
    moved = [
        (r, by_id[r["id"]])
        for r in scored
        if r["id"] in by_id and (r["err"] is None) != (by_id[r["id"]]["err"] is None)
        or r["id"] in by_id and r["err"] is not None and by_id[r["id"]]["err"] is not None
        and abs(r["err"] - by_id[r["id"]]["err"]) >= 0.0005
    ]
    print(f"\nrows whose error moved: {len(moved)}")
    for a, b in moved:
        flag = "" if a["ok"] == b["ok"] else ("  now outside" if a["ok"] else "  now within")
        print(f"- {a['id']} ({a['split']}, {a['category']}): {signed(a['err'])} -> {signed(b['err'])}{flag}")


if __name__ == "__main__":
    main()
