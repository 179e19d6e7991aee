"""A real PyTorch training job on the CPU whose memory grows with the batch,
run in a child process under an address-space limit so that PyTorch's own CPU
allocator fails with ``DefaultCPUAllocator: can't allocate memory``.

Used by the tests and by scripts/compare-accelerate.py. Modes (each prints
one JSON object on stdout):

  measure B            train at batch B with no limit; report VmPeak
  probe B LIMIT        train at batch B under LIMIT bytes; exit 0 ok, 3 on OOM
  fit START LIMIT      @oomguard.fit_batch(START) under LIMIT
  accelerate START LIMIT   accelerate's find_executable_batch_size under LIMIT
  eval START LIMIT     fit_batch where only evaluation (under no_grad) OOMs

Run it with MALLOC_ARENA_MAX=1 and MALLOC_MMAP_THRESHOLD_=131072 (see
:func:`child_env`): glibc then maps every large tensor on its own and unmaps
it on free, so the peak address space repeats from run to run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys

# Shape of the job: SEQ x WIDTH activations per sample, DEPTH blocks. Each
# block keeps a few SEQ x WIDTH float32 tensors per sample for the backward
# pass, so memory grows by several MiB per sample while the model is small.
SEQ, WIDTH, DEPTH = 2048, 64, 6


def child_env(extra: dict | None = None) -> dict:
    """Environment for a repeatable peak: one malloc arena, large blocks mapped
    individually, one compute thread, no network for Hugging Face."""
    env = dict(os.environ)
    env.update(
        MALLOC_ARENA_MAX="1",
        MALLOC_MMAP_THRESHOLD_="131072",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    env.update(extra or {})
    return env


def vm_peak_bytes() -> int:
    """This process's peak address space (what RLIMIT_AS bounds), from /proc."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmPeak:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmPeak in /proc/self/status")


def limit_address_space(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def make_model():
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(WIDTH)
            self.up = nn.Linear(WIDTH, 2 * WIDTH)
            self.down = nn.Linear(2 * WIDTH, WIDTH)

        def forward(self, x):
            return x + self.down(torch.nn.functional.gelu(self.up(self.norm(x))))

    torch.manual_seed(0)
    return nn.Sequential(*[Block() for _ in range(DEPTH)], nn.Linear(WIDTH, 1))


def train(batch_size: int, accum: int = 1, steps: int = 1) -> float:
    """``steps`` optimizer steps of ``accum`` micro-batches of ``batch_size``."""
    import torch

    torch.set_num_threads(1)
    model = make_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(1)
    last = float("nan")
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        for _ in range(accum):
            x = torch.randn(batch_size, SEQ, WIDTH, generator=gen)
            loss = model(x).pow(2).mean() / accum
            loss.backward()
            last = loss.item()
        opt.step()
    return last


def evaluate(model, batch_size: int) -> float:
    import torch

    with torch.no_grad():
        x = torch.randn(batch_size, SEQ, WIDTH)
        # Keep every block's output alive, as a model returning hidden states does.
        outs = []
        h = x
        for block in model:
            h = block(h)
            outs.append(h)
        return float(sum(o.mean() for o in outs))


def is_cpu_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or "can't allocate memory" in str(exc)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["measure", "probe", "fit", "accelerate", "eval"])
    p.add_argument("batch", type=int)
    p.add_argument("limit", type=int, nargs="?")
    p.add_argument("--global-batch", type=int)
    p.add_argument("--eval-start", type=int)
    p.add_argument("--steps", type=int, default=1)
    a = p.parse_args(argv)

    import torch  # noqa: F401 - imported before the limit, as a training script does

    if a.mode == "measure":
        train(a.batch, 1, a.steps)
        print(json.dumps({"batch": a.batch, "vm_peak": vm_peak_bytes()}))
        return 0
    if a.limit is None:
        p.error(f"{a.mode} needs LIMIT (bytes of address space)")
    limit_address_space(a.limit)

    if a.mode == "probe":
        try:
            train(a.batch, 1, a.steps)
        except (RuntimeError, MemoryError) as e:
            if not is_cpu_oom(e):
                raise
            print(json.dumps({"batch": a.batch, "ok": False}))
            return 3
        print(json.dumps({"batch": a.batch, "ok": True}))
        return 0

    if a.mode == "accelerate":
        from accelerate.utils import find_executable_batch_size

        tried = []

        @find_executable_batch_size(starting_batch_size=a.batch)
        def run(batch_size):
            tried.append(batch_size)
            return train(batch_size, 1, a.steps)

        loss = run()
        print(json.dumps({"batch_size": tried[-1], "accum": 1, "tried": tried, "loss": loss}))
        return 0

    import oomguard

    if a.mode == "fit":

        @oomguard.fit_batch(a.batch, global_batch=a.global_batch)
        def run(batch_size, accum):
            return train(batch_size, accum, a.steps)

    else:  # eval: training fits, the evaluation batch does not

        @oomguard.fit_batch(a.batch, eval_start=a.eval_start)
        def run(batch_size, accum, eval_batch_size):
            train(batch_size, accum, a.steps)
            return evaluate(make_model(), eval_batch_size)

    result = run()
    print(
        json.dumps(
            {
                "result": result,
                "batch_size": run.batch_size,
                "accum": run.accum,
                "eval_batch_size": run.eval_batch_size,
                "attempts": run.attempts,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
