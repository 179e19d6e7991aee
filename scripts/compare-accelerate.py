#!/usr/bin/env python3
"""oomguard.fit_batch against accelerate's find_executable_batch_size on the
same real PyTorch job on the CPU (python/tests/cpu_job.py), each in a child
under the same address-space limit, so the OOMs are PyTorch's own.

For each target, the limit is calibrated from the job's measured peak (two
unlimited runs give its address space as a line in the batch size), the true
largest batch under it is found by real probe runs, then both decorators
start from --start and the script prints, as a Markdown table: OOMs before a
working batch, the landing batch against the true largest, the effective
batch (batch x accumulation) against the one asked for, and wall time.

  python scripts/compare-accelerate.py [--start 64] [--targets 12,30]

Needs torch, accelerate and oomguard (the wheel, or OOMGUARD_BIN and
PYTHONPATH=python) in the running interpreter.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
JOB = REPO / "python" / "tests" / "cpu_job.py"
sys.path.insert(0, str(JOB.parent))
import cpu_job  # noqa: E402


def run(*args: object, timeout: float = 1800) -> tuple:
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(JOB), *map(str, args)],
        env=cpu_job.child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done, time.monotonic() - t0


def last_json(done) -> dict:
    return json.loads(done.stdout.strip().splitlines()[-1])


def calibrate() -> tuple:
    peaks = {}
    for b in (8, 16):
        done, _ = run("measure", b)
        if done.returncode != 0:
            sys.exit(f"measuring batch {b} failed:\n{done.stderr[-2000:]}")
        peaks[b] = last_json(done)["vm_peak"]
    per_sample = (peaks[16] - peaks[8]) / 8
    return peaks[8] - 8 * per_sample, per_sample


def fits(batch: int, limit: int) -> bool:
    done, _ = run("probe", batch, limit)
    if done.returncode not in (0, 3):
        sys.exit(f"probe {batch} failed:\n{done.stderr[-2000:]}")
    return done.returncode == 0


def true_largest(guess: int, limit: int, start: int) -> int:
    """The largest batch that runs under ``limit``, by probing around ``guess``."""
    b = max(1, min(guess, start))
    if fits(b, limit):
        while b < start and fits(b + 1, limit):
            b += 1
        return b
    while b > 1:
        b -= 1
        if fits(b, limit):
            return b
    return 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--start", type=int, default=64)
    p.add_argument("--targets", default="12,30", help="batches the limits are set for")
    a = p.parse_args()

    base, per_sample = calibrate()
    print(
        f"job peak address space: {base / 2**30:.2f} GiB + {per_sample / 2**20:.1f} MiB per sample",
        file=sys.stderr,
    )
    rows = []
    for target in (int(t) for t in a.targets.split(",")):
        limit = int(base + per_sample * (target + 0.5))
        largest = true_largest(target, limit, a.start)
        for name, args in (
            ("oomguard.fit_batch", ("fit", a.start, limit, "--global-batch", a.start)),
            ("accelerate find_executable_batch_size", ("accelerate", a.start, limit)),
        ):
            done, secs = run(*args)
            if done.returncode != 0:
                rows.append((largest, name, "failed", "", "", f"{secs:.0f}"))
                print(done.stderr[-2000:], file=sys.stderr)
                continue
            out = last_json(done)
            ooms = len(out["attempts"]) - 1 if "attempts" in out else len(out["tried"]) - 1
            effective = out["batch_size"] * out["accum"]
            kept = "yes" if effective == a.start else f"no ({effective})"
            rows.append(
                (largest, name, str(ooms), f"{out['batch_size']} x {out['accum']}", kept, f"{secs:.0f}")
            )
            print(f"target {target}: {name}: {out}", file=sys.stderr)

    print(
        f"| true largest | decorator (start {a.start}) | OOMs | landing batch x accum | effective batch {a.start} kept | wall s |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(map(str, r)) + " |")


if __name__ == "__main__":
    main()
