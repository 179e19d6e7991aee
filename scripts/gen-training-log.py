#!/usr/bin/env python3
"""Writes a synthetic training log of a given size with a few OOM events in it.

Usage: gen-training-log.py OUT SIZE_MIB [EVENTS]

The ordinary lines imitate what Hugging Face / PyTorch training prints (step
lines with loss and throughput, memory summaries, tqdm bars, warnings); the
events are PyTorch 2.x OOM tracebacks, spread evenly. Deterministic: the same
arguments give the same bytes.
"""
import random
import sys

OOM = (
    "Traceback (most recent call last):\n"
    '  File "train.py", line 212, in <module>\n'
    "    loss.backward()\n"
    '  File "/usr/lib/python3.11/site-packages/torch/_tensor.py", line 581, in backward\n'
    "    torch.autograd.backward(\n"
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {req:.2f} MiB. GPU 0 has a total capacity "
    "of 23.65 GiB of which 301.06 MiB is free. Including non-PyTorch memory, this process has 23.34 GiB memory "
    "in use. Of the allocated memory 21.87 GiB is allocated by PyTorch, and 1.02 GiB is reserved by PyTorch but "
    "unallocated. If reserved but unallocated memory is large try setting "
    "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for Memory "
    "Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)\n"
)


def ordinary(rng, step):
    kind = rng.random()
    ts = f"2024-03-11 14:{(step // 60) % 60:02d}:{step % 60:02d},{rng.randint(0, 999):03d}"
    if kind < 0.7:
        return (f"{ts} INFO train.py:212 epoch {step // 5000} step {step} loss={rng.uniform(0.5, 3):.4f} "
                f"lr={rng.uniform(1e-5, 3e-4):.2e} tok/s={rng.randint(30000, 45000)}\n")
    if kind < 0.85:
        return (f"{ts} INFO train.py:219 gpu0 mem: allocated {rng.uniform(8, 12):.2f} GiB | reserved "
                f"{rng.uniform(12, 14):.2f} GiB | peak {rng.uniform(14, 16):.2f} GiB | total 23.65 GiB\n")
    if kind < 0.97:
        pct = rng.randint(0, 100)
        return f"{pct:3d}%|{'#' * (pct // 10):<10}| {step}/100000 [01:23<04:56, {rng.uniform(3, 9):.2f}it/s]\n"
    return f"{ts} WARNING trainer.py:88 gradient norm {rng.uniform(5, 50):.1f} clipped to 1.0\n"


def main():
    out, size_mib = sys.argv[1], int(sys.argv[2])
    events = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    target = size_mib << 20
    rng = random.Random(42)
    every = target // (events + 1)
    written, next_event, step = 0, every, 0
    with open(out, "w", buffering=1 << 20) as f:
        while written < target:
            if written >= next_event:
                line = OOM.format(req=rng.choice([256.0, 512.0, 1024.0]))
                next_event += every
            else:
                line = ordinary(rng, step)
                step += 1
            f.write(line)
            written += len(line)


if __name__ == "__main__":
    main()
