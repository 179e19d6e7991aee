#!/usr/bin/env python3
"""Benchmark of `oomguard run` and `oomguard tune` on the simulated trainer.

Prints three tables:
1. trials `tune` needs to find the exact largest batch, without and with a
   memory source (the stand-in nvidia-smi), next to Lightning's binsearch and
   accelerate's find_executable_batch_size replayed against the same trainer;
2. the batch `run` lands on and its restarts, next to blind halving, from
   starts 1.3x, 3x and 6x too large;
3. `run`'s passthrough throughput on 1 GiB of child output, as a ratio to
   `cat` writing the same file.

With --torch PYTHON (a Python with torch and accelerate) it prints only a
fourth table: a real PyTorch job on the CPU (examples/torch-cpu/train.py)
under an address-space limit calibrated from its own peaks so that its
largest batch is about 48, searched by `oomguard tune`, recovered by
`oomguard run` from batch 96, and by accelerate's find_executable_batch_size
from 96 (trials, landing batch, wall time).

Usage: scripts/bench-supervise.py [--torch PYTHON]
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from lightning_binsearch import binsearch  # noqa: E402
TRAINER = ROOT / "examples/fake-trainer/fake_trainer.py"
BIN = Path(os.environ.get("OOMGUARD_BIN", ROOT / "target/release/oomguard"))


def limit_of(opts):
    out = subprocess.run(["python3", TRAINER, *opts, "--print-max-batch"], capture_output=True, text=True, check=True)
    return int(out.stdout)


def fits(batch, opts):
    return subprocess.run(["python3", TRAINER, "--batch", str(batch), *opts], capture_output=True).returncode == 0


def lightning(limit, start=8):
    """Lightning's binsearch: the one reference copy, in lightning_binsearch.py."""
    return binsearch(limit, start)


def accelerate(limit, start=128):
    """accelerate.utils.find_executable_batch_size: x0.9 after each OOM; never grows."""
    size, trials = start, 0
    while size > 0:
        trials += 1
        if size <= limit:
            return trials, size
        size = int(size * 0.9)
    return trials, None


def tune(opts, source, env=None, extra=()):
    args = [BIN, "tune", "--json", "--source", source, "--", "python3", TRAINER, "--batch", "{batch}", *opts, *extra]
    out = subprocess.run(args, capture_output=True, text=True, env=env)
    data = json.loads(out.stdout)
    return len(data["trials"]), data["batch"]


TORCH_SCRIPT = ROOT / "examples/torch-cpu/train.py"
# One malloc arena, large tensors mapped and unmapped whole, one thread: peaks repeat.
TORCH_ENV = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": "131072", "OMP_NUM_THREADS": "1"}
TORCH_OPTS = ["--steps", "2", "--size", "32"]
# Where run and accelerate start: twice the calibrated limit.
START = 96


def torch_limit(python, target):
    """The address-space limit that puts the job's largest batch near `target`, from its peaks at 8 and 24."""
    out = subprocess.run([python, TORCH_SCRIPT, "--batch", "1", *TORCH_OPTS, "--calibrate", "8,24"],
                         capture_output=True, text=True, env=dict(os.environ, **TORCH_ENV), check=True)
    (b1, p1), (b2, p2) = [tuple(map(int, l.split()[1:])) for l in out.stdout.splitlines() if l.startswith("calibration ")]
    slope = (p2 - p1) / (b2 - b1)
    return int(p1 + slope * (target - b1) + slope / 2)


def torch_table(python):
    env = dict(os.environ, **TORCH_ENV)
    limit = torch_limit(python, 48)
    job = ["prlimit", f"--as={limit}", python, TORCH_SCRIPT, "--batch", "{batch}", *TORCH_OPTS]
    print(f"## a real PyTorch job on the CPU under prlimit --as={limit} (calibrated for a largest batch near 48)\n")
    print("| method | trials | landing batch | wall time |\n|---|---|---|---|")
    t = time.perf_counter()
    out = subprocess.run([BIN, "tune", "--json", "--source", "proc", "--", *job], capture_output=True, text=True, env=env)
    data = json.loads(out.stdout)
    tried = " ".join(f"{x['batch']}{'' if x['ok'] else 'x'}" for x in data["trials"])
    print(f"| `oomguard tune` (from 8) | {len(data['trials'])} ({tried}) | {data['batch']} | {time.perf_counter() - t:.0f} s |")
    t = time.perf_counter()
    out = subprocess.run([BIN, "run", "--json", "--batch", str(START), "--", *job], capture_output=True, text=True, env=env)
    data = json.loads(out.stdout)
    tried = " ".join(str(a["batch"]) for a in data["attempts"])
    print(f"| `oomguard run --batch {START}` | {len(data['attempts'])} ({tried}) | {data['batch']} | {time.perf_counter() - t:.0f} s |")
    t = time.perf_counter()
    acc = [f if f != "{batch}" else str(START) for f in job] + ["--accelerate"]
    out = subprocess.run(acc, capture_output=True, text=True, env=env)
    m = re.search(r"landed on (\d+) after (\d+) trials \(([^)]*)\)", out.stdout)
    if m:
        print(f"| accelerate `find_executable_batch_size` (from {START}, in one process) | {m.group(2)} ({m.group(3)}) | {m.group(1)} | {time.perf_counter() - t:.0f} s |")
    else:
        print(f"| accelerate `find_executable_batch_size` (from {START}, in one process) | failed: {out.stderr.strip().splitlines()[-1:]} | - | {time.perf_counter() - t:.0f} s |")


def main():
    if "OOMGUARD_BIN" not in os.environ:
        subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    if len(sys.argv) == 3 and sys.argv[1] == "--torch":
        torch_table(sys.argv[2])
        return
    print("## tune: trials to the exact largest batch\n")
    print("| limit | oomguard, no source | oomguard, nvidia-smi | Lightning binsearch | accelerate (x0.9 from 128) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as gpu_dir:
        env = dict(os.environ, FAKE_GPU_DIR=gpu_dir, PATH=f"{TRAINER.parent}:{os.environ['PATH']}")
        for want in (7, 37, 100, 1000, 3000):
            opts = ["--per-sample-mib", f"{20064 / (want + 0.5):.4f}"]
            limit = limit_of(opts)
            plain = tune(opts, "none")
            mem = tune(opts, "nvidia-smi", env, ["--memory-file", f"{gpu_dir}/t.json", "--load-time", "1", "--step-time", "0.6", "--steps", "3"])
            lt, lb = lightning(limit)
            at, ab = accelerate(limit)
            ok = lambda found: "" if found == limit else f" (found {found})"
            print(f"| {limit} | {plain[0]}{ok(plain[1])} | {mem[0]}{ok(mem[1])} | {lt}{ok(lb)} | {at} (found {ab}) |")

    print("\n## run: where it lands from a too-large start (true limit in brackets)\n")
    limit = limit_of([])
    print(f"| start | oomguard batch | oomguard restarts | halving batch | halving restarts |")
    print("|---|---|---|---|---|")
    for factor in (1.3, 3, 6):
        start = int(limit * factor)
        out = subprocess.run([BIN, "run", "--json", "--batch", str(start), "--", "python3", TRAINER, "--batch", "{batch}"],
                             capture_output=True, text=True)
        data = json.loads(out.stdout)
        b, halvings = start, 0
        while b > limit:
            b //= 2
            halvings += 1
        print(f"| {start} ({factor}x of {limit}) | {data['batch']} | {data['restarts']} | {b} | {halvings} |")

    print("\n## run: passthrough of 1 GiB of output\n")
    big = Path(os.environ.get("TMPDIR", "/tmp")) / "oomguard-bench-1024m.log"
    if not big.exists():
        subprocess.run(["python3", ROOT / "scripts/gen-training-log.py", big, "1024", "5"], check=True)
    subprocess.run(["cat", big], stdout=subprocess.DEVNULL)

    def best(cmd):
        times = []
        for _ in range(3):
            with open(os.devnull, "wb") as sink:
                t = time.perf_counter()
                subprocess.run(cmd, stdout=sink, stderr=subprocess.DEVNULL)
                times.append(time.perf_counter() - t)
        return min(times)

    cat = best(["cat", big])
    piped = best(["sh", "-c", f"cat '{big}' | cat"])
    run = best([BIN, "run", "--", "cat", big])
    size_mib = big.stat().st_size / 2**20
    print("| command | seconds | MiB/s | throughput vs cat FILE | vs cat FILE \\| cat |\n|---|---|---|---|---|")
    print(f"| cat FILE (no pipe) | {cat:.2f} | {size_mib / cat:.0f} | 1.00 | {piped / cat:.2f} |")
    print(f"| cat FILE \\| cat (the same pipe, no oomguard) | {piped:.2f} | {size_mib / piped:.0f} | {cat / piped:.2f} | 1.00 |")
    print(f"| oomguard run -- cat FILE | {run:.2f} | {size_mib / run:.0f} | {cat / run:.2f} | {piped / run:.2f} |")


if __name__ == "__main__":
    main()
