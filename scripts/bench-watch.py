#!/usr/bin/env python3
"""Benchmark of `oomguard watch --replay`: CPU time per sample and max RSS,
with 8 GPUs and 200 processes per sample, next to the published footprints
of nvitop (about 41 MB) and nviwatch (about 18 MB), which the issue cites.

Usage: scripts/bench-watch.py [SAMPLES=600]
"""
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GIB = 1 << 30


def recording(path: Path, samples: int):
    rng = random.Random(7)
    with open(path, "w") as f:
        for i in range(samples):
            gpus = [{"index": g, "uuid": f"GPU-{g:08d}", "name": "NVIDIA H100 80GB HBM3", "total_bytes": 80 * GIB,
                     "used_bytes": (40 + g + i % 20) * GIB, "free_bytes": (40 - g - i % 20) * GIB} for g in range(8)]
            procs = [{"gpu": p % 8, "pid": 10000 + p, "name": f"python worker-{p}", "user": "alice",
                      "used_bytes": rng.randrange(1, 8) * (GIB // 4)} for p in range(200)]
            f.write(json.dumps({"time": 1.7e9 + i * 0.1, "gpus": gpus, "processes": procs}) + "\n")


def main():
    samples = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        rec = Path(tmp) / "rec.jsonl"
        recording(rec, samples)
        print("| mode | samples | CPU ms per sample | max RSS (MiB) | vs nvitop 41 MB | vs nviwatch 18 MB |")
        print("|---|---|---|---|---|---|")
        for mode, extra in (("table", []), ("--json", ["--json"])):
            out = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", ROOT / "target/release/oomguard", "watch", "--replay", rec,
                                  "--interval", "10ms", *extra], capture_output=True, text=True)
            user, sys_, rss_kib = out.stderr.strip().splitlines()[-1].split()
            cpu_ms = (float(user) + float(sys_)) * 1000 / samples
            rss = int(rss_kib) / 1024
            print(f"| {mode} | {samples} | {cpu_ms:.3f} | {rss:.1f} | {rss * 1.048576 / 41:.2f}x | {rss * 1.048576 / 18:.2f}x |")


if __name__ == "__main__":
    main()
