#!/usr/bin/env python3
"""A real PyTorch training job on the CPU: a small convolutional network on
random 64x64 images, AdamW, a few steps at --batch.

Used by oomguard's tests and benchmark under an address-space limit
(`prlimit --as=BYTES`), where PyTorch's own allocator fails with its own
`RuntimeError: [enforce fail at alloc_cpu.cpp] ... DefaultCPUAllocator:
can't allocate memory`. Run it with MALLOC_ARENA_MAX=1 and
MALLOC_MMAP_THRESHOLD_=131072 so large tensors are mapped and unmapped
whole and the peak repeats from run to run.

--report-peak prints the process's peak virtual size (VmPeak) at the end,
which is what an address-space limit counts; the tests calibrate the limit
from it at a small batch, so no byte figure is tied to one torch version.

--accelerate wraps the loop in accelerate's find_executable_batch_size, to
compare with oomguard on the same job.
"""

import argparse
import sys
import time


def vm_peak_bytes():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmPeak:"):
                return int(line.split()[1]) * 1024
    return None


def build(torch, channels):
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10),
    )


def train(torch, batch, steps, channels, size):
    torch.manual_seed(0)
    model = build(torch, channels)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    for step in range(steps):
        x = torch.randn(batch, 3, size, size)
        y = torch.randint(0, 10, (batch,))
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        print("step %d/%d batch %d loss %.4f" % (step + 1, steps, batch, loss.item()), flush=True)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--report-peak", action="store_true")
    p.add_argument("--calibrate", metavar="B1,B2",
                   help="train at B1 then at B2 in this process, printing VmPeak after each")
    p.add_argument("--accelerate", action="store_true",
                   help="find the batch with accelerate's find_executable_batch_size from --batch")
    args = p.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    started = time.monotonic()
    if args.calibrate:
        for b in [int(v) for v in args.calibrate.split(",")]:
            train(torch, b, args.steps, args.channels, args.size)
            print("calibration %d %d" % (b, vm_peak_bytes()), flush=True)
    elif args.accelerate:
        from accelerate.utils import find_executable_batch_size
        tried = []

        @find_executable_batch_size(starting_batch_size=args.batch)
        def loop(batch_size):
            tried.append(batch_size)
            train(torch, batch_size, args.steps, args.channels, args.size)
            return batch_size

        landed = loop()
        print("accelerate: landed on %d after %d trials (%s) in %.1f s"
              % (landed, len(tried), " ".join(map(str, tried)), time.monotonic() - started),
              flush=True)
    else:
        train(torch, args.batch, args.steps, args.channels, args.size)
    if args.report_peak:
        print("vm_peak_bytes %d" % vm_peak_bytes(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
