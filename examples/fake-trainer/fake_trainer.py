#!/usr/bin/env python3
"""Simulated PyTorch 2.x training job on a GPU of a given size (no GPU, stdlib only).

It models PyTorch's CUDA caching allocator (allocated / reserved / cached but
unusable), allocates weights once and activations layer by layer at every step,
and dies with PyTorch 2.4+'s exact `torch.OutOfMemoryError` text when a request
does not fit.  See README.md next to this file for the model and the formulas.
"""

import argparse
import json
import math
import os
import signal
import sys
import time
from fractions import Fraction

MIB = 1 << 20
GIB = 1 << 30
GRAIN = 2 * MIB  # kRoundLarge in c10/cuda/CUDACachingAllocator.cpp
OTHER_PID = 4242
HOLD_TIMEOUT_S = 20.0  # --hold-samples gives up waiting for a sampler after this
TORCH = "/usr/lib/python3.11/site-packages/torch"

# Frames printed below the script's own frames, as PyTorch 2.5 on Python 3.11 shows them.
MODULE_CALL = [
    (TORCH + "/nn/modules/module.py", 1736, "_wrapped_call_impl",
     "return self._call_impl(*args, **kwargs)"),
    (TORCH + "/nn/modules/module.py", 1747, "_call_impl",
     "return forward_call(*args, **kwargs)"),
]
LINEAR_FRAMES = MODULE_CALL + [
    (TORCH + "/nn/modules/linear.py", 125, "forward",
     "return F.linear(input, self.weight, self.bias)"),
]
TO_FRAMES = [
    (TORCH + "/nn/modules/module.py", 1340, "to", "return self._apply(convert)"),
    (TORCH + "/nn/modules/module.py", 900, "_apply", "module._apply(fn)"),
    (TORCH + "/nn/modules/module.py", 927, "_apply", "param_applied = fn(param)"),
    (TORCH + "/nn/modules/module.py", 1326, "convert",
     "return t.to("),
]
LOSS_FRAMES = MODULE_CALL + [
    (TORCH + "/nn/modules/loss.py", 1293, "forward",
     "return F.cross_entropy("),
    (TORCH + "/nn/functional.py", 3479, "cross_entropy",
     "return torch._C._nn.cross_entropy_loss("),
]


# --------------------------------------------------------------------------- sizes

def format_size(size):
    """c10's format_size: `N bytes` up to 1024, then KiB/MiB/GiB, boundaries inclusive."""
    if size <= 1024:
        return "%d bytes" % size
    if size <= 1048576:
        return "%.2f KiB" % (size / 1024.0)
    if size <= 1073741824:
        return "%.2f MiB" % (size / 1048576.0)
    return "%.2f GiB" % (size / 1073741824.0)


def round_up(nbytes):
    """Round a byte count up to a multiple of 2 MiB (0 stays 0)."""
    return -(-nbytes // GRAIN) * GRAIN


def layer_bytes(opts, batch):
    """One layer's activations at this batch: ceil(per_sample * batch / layers MiB), rounded up to 2 MiB."""
    return round_up(math.ceil(opts.per_sample_mib * MIB * batch / opts.layers))


def fixed_bytes(opts):
    return round_up(opts.fixed_mib * MIB)


def state_bytes(opts):
    """Gradients + optimizer states, created in the first step (after the baseline)."""
    return round_up(opts.state_mib * MIB)


def leak_bytes(opts, step):
    """Memory kept alive after `step` steps: ceil(step * leak MiB), rounded up to 2 MiB."""
    return round_up(math.ceil(step * opts.leak_mib_per_step * MIB))


def frag_bytes(opts, freed):
    """Part of the freed activations that stays reserved and unusable, rounded down to 2 MiB."""
    return math.floor(opts.fragmentation * freed / GRAIN) * GRAIN


def available_bytes(opts):
    """What PyTorch's allocator of this process can ever hold."""
    return (opts.gpu_mib - opts.context_mib - opts.other_process_mib) * MIB


def peak_need(opts, batch):
    """Peak of allocated + stranded memory over the whole run (the quantity that must fit)."""
    stranded = frag_bytes(opts, opts.layers * layer_bytes(opts, batch)) if opts.steps >= 2 else 0
    return (fixed_bytes(opts) + state_bytes(opts) + leak_bytes(opts, opts.steps) + stranded
            + opts.layers * layer_bytes(opts, batch))


def max_batch(opts):
    """Largest batch that runs all steps (closed form, see README.md); 0 when none does."""
    budget = (available_bytes(opts) - fixed_bytes(opts) - state_bytes(opts)
              - leak_bytes(opts, opts.steps))
    if budget < GRAIN:
        return 0
    m = budget // GRAIN  # whole 2 MiB granules left for activations (+ stranded memory)
    f = opts.fragmentation if opts.steps >= 2 else Fraction(0)
    # largest k (layer size in granules) with L*k + floor(f*L*k) <= m  <=>  (1+f)*L*k < m+1
    k = math.ceil(Fraction(m + 1) / ((1 + f) * opts.layers)) - 1
    if k <= 0:
        return 0
    # largest batch whose layer size ceil(p*B/L / 2 MiB) granules is <= k
    return math.floor(Fraction(2 * opts.layers * k) / opts.per_sample_mib)


# ---------------------------------------------------------------------- allocator

class SimError(Exception):
    """An error raised at a simulated PyTorch call site.

    `display` is the class name Python prints, `cut` the function of this script
    whose frame is the last one kept, `frames` the library frames printed below it.
    """

    def __init__(self, display, message, cut, frames):
        Exception.__init__(self, message)
        self.display = display
        self.message = message
        self.cut = cut
        self.frames = frames


class CachingAllocator:
    """PyTorch's CUDA caching allocator, reduced to its byte counts.

    allocated: live tensors; reserved: allocated + cached-but-free;
    stranded: the cached part that fragmentation makes unusable.
    """

    def __init__(self, opts):
        self.total = opts.gpu_mib * MIB
        self.context = opts.context_mib * MIB
        self.other = opts.other_process_mib * MIB
        self.allocated = 0
        self.reserved = 0
        self.stranded = 0
        self.peak_reserved = 0
        self.memory_file = opts.memory_file
        self.hold_samples = opts.hold_samples
        self.last_record = None
        self.report()

    def device_free(self):
        return max(0, self.total - self.context - self.other - self.reserved)

    def used_bytes(self):
        """What nvidia-smi shows for this process: CUDA context + reserved."""
        return self.context + self.reserved

    def malloc(self, size, frames, cut):
        usable = self.reserved - self.allocated - self.stranded
        if size > usable:
            if size > self.device_free():
                # cudaMalloc failed: release every cached block that is not split
                # (release_cached_blocks) and retry; stranded memory stays.
                self.reserved = self.allocated + self.stranded
                if size > self.device_free():
                    raise SimError("torch.OutOfMemoryError", self.oom_message(size), cut, frames)
            self.reserved += size
        self.allocated += size
        self.peak_reserved = max(self.peak_reserved, self.reserved)
        self.report()

    def free(self, size, stranded=0):
        self.allocated -= size
        self.stranded = max(self.stranded, stranded)
        self.report()

    def oom_message(self, size):
        # c10/cuda/CUDACachingAllocator.cpp (DeviceCachingAllocator::malloc), PyTorch 2.2+;
        # proc_info from reportProcessMemoryInfo (one clause per NVML compute process).
        proc_info = ""
        if self.other > 0:
            proc_info += "Process %d has %s memory in use. " % (OTHER_PID, format_size(self.other))
        proc_info += ("Including non-PyTorch memory, this process has %s memory in use. "
                      % format_size(self.used_bytes()))
        return (
            "CUDA out of memory. Tried to allocate " + format_size(size)
            + ". GPU 0 has a total capacity of " + format_size(self.total)
            + " of which " + format_size(self.device_free()) + " is free. "
            + proc_info
            + "Of the allocated memory " + format_size(self.allocated)
            + " is allocated by PyTorch, and " + format_size(self.reserved - self.allocated)
            + " is reserved by PyTorch but unallocated."
            + " If reserved but unallocated memory is large try setting"
            + " PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid"
            + " fragmentation.  See documentation for Memory Management "
            + " (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)"
        )

    def report(self):
        if not self.memory_file:
            return
        fields = {"pid": os.getpid(), "used_mib": self.used_bytes() // MIB,
                  "total_mib": self.total // MIB}
        if self.other:
            # the simulated other process, for the stand-in nvidia-smi to list
            fields["other_pid"] = OTHER_PID
            fields["other_mib"] = self.other // MIB
        record = json.dumps(fields)
        if record == self.last_record:
            return  # same content: rewriting it would change nothing
        tmp = "%s.tmp.%d" % (self.memory_file, os.getpid())
        with open(tmp, "w") as fh:
            fh.write(record)
        os.replace(tmp, self.memory_file)
        self.last_record = record

    def hold(self):
        """With --hold-samples N, waits until the stand-in nvidia-smi has answered N
        process queries since now (so a sampler has read this state whole, whatever
        the machine's load); gives up after HOLD_TIMEOUT_S."""
        if not self.hold_samples or not self.memory_file:
            return
        counter = os.path.join(os.path.dirname(os.path.abspath(self.memory_file)), "queries")

        def answered():
            try:
                return os.path.getsize(counter)
            except OSError:
                return 0

        start, deadline = answered(), time.monotonic() + HOLD_TIMEOUT_S
        while answered() - start < self.hold_samples and time.monotonic() < deadline:
            time.sleep(0.005)


# ------------------------------------------------------------------------- model

class Linear:
    """A layer whose forward output (activations kept for backward) is `size` bytes."""

    def __init__(self, model, size):
        self.model = model
        self.size = size

    def __call__(self, x):
        alloc = self.model.alloc
        if alloc is not None:
            alloc.malloc(self.size, LINEAR_FRAMES, "train_step")
        if self.model.layer_time:
            time.sleep(self.model.layer_time)
        return x + self.size


class Model:
    def __init__(self, opts, batch, alloc):
        self.opts = opts
        self.batch = batch
        self.alloc = alloc
        self.layers = [Linear(self, layer_bytes(opts, batch)) for _ in range(opts.layers)]
        self.layer_time = float(opts.step_time) / opts.layers
        self.kept = 0

    def to(self, device):
        if self.alloc is not None and fixed_bytes(self.opts):
            self.alloc.malloc(fixed_bytes(self.opts), TO_FRAMES, "main")
        return self

    def create_state(self):
        """Gradients and AdamW's states: PyTorch creates them in the first step."""
        if self.alloc is not None and state_bytes(self.opts):
            self.alloc.malloc(state_bytes(self.opts), [], "train_step")

    def retain(self, step):
        """Tensors kept alive across steps (e.g. `losses.append(loss)`), cumulative."""
        target = leak_bytes(self.opts, step)
        if self.alloc is not None and target > self.kept:
            self.alloc.malloc(target - self.kept, [], "train_step")
        self.kept = max(self.kept, target)

    def free_activations(self, x):
        if self.alloc is not None:
            self.alloc.free(x, frag_bytes(self.opts, x))


def criterion(model, out, step):
    opts = model.opts
    if opts.crash_at_step is not None and step == opts.crash_at_step:
        target = model.batch // 2 if model.batch > 1 else 2
        raise SimError(
            "ValueError",
            "Expected input batch_size (%d) to match target batch_size (%d)." % (model.batch, target),
            "train_step", LOSS_FRAMES)
    seed = (model.batch * 7919 + step * 104729) % 1000
    return 2.3026 * (0.8 ** step) + seed / 100000.0


def train_step(model, step):
    if step == 1:
        model.create_state()
    model.retain(step)
    x = 0
    for layer in model.layers:
        x = layer(x)
    if model.alloc is not None:
        model.alloc.hold()  # the step's peak
    loss = criterion(model, x, step)
    model.free_activations(x)
    return loss


# ------------------------------------------------------------------------ output

class Progress:
    """A tqdm-like bar on stdout: `\\r` redraws, a green bar, flushed at each update."""

    WIDTH = 20
    PARTS = " ▏▎▍▌▋▊▉"

    def __init__(self, total):
        self.total = total
        self.start = time.monotonic()
        self.n = 0
        self.postfix = ""
        self.draw()

    @staticmethod
    def clock(seconds):
        seconds = int(seconds)
        return "%02d:%02d" % (seconds // 60, seconds % 60)

    def draw(self):
        frac = self.n / self.total
        cells = frac * self.WIDTH
        full = int(cells)
        bar = "█" * full
        if full < self.WIDTH:
            bar += self.PARTS[int((cells - full) * 8)]
            bar = bar.ljust(self.WIDTH)
        elapsed = time.monotonic() - self.start
        if self.n and elapsed > 0:
            rate = self.n / elapsed
            remaining = self.clock((self.total - self.n) / rate)
            rate_s = "%5.2fit/s" % rate
        else:
            remaining, rate_s = "?", "?it/s"
        sys.stdout.write("\rtrain: %3.0f%%|\x1b[32m%s\x1b[0m| %d/%d [%s<%s, %s%s]"
                         % (frac * 100, bar, self.n, self.total, self.clock(elapsed),
                            remaining, rate_s, self.postfix))
        sys.stdout.flush()

    def update(self, loss, mem_mib):
        self.n += 1
        self.postfix = ", loss=%.4f, mem=%dMiB" % (loss, mem_mib)
        self.draw()

    def close(self):
        sys.stdout.write("\n")
        sys.stdout.flush()


def print_traceback(err):
    """Print the traceback Python would print, with the library frames PyTorch adds."""
    import linecache
    import traceback

    frames = traceback.extract_tb(err.__traceback__)
    keep = 0
    for i, fr in enumerate(frames):
        if fr.name == err.cut:
            keep = i + 1
    lines = ["Traceback (most recent call last):\n"]
    for fr in frames[:keep]:
        lines.append('  File "%s", line %d, in %s\n' % (fr.filename, fr.lineno, fr.name))
        src = fr.line or linecache.getline(fr.filename, fr.lineno).strip()
        if src:
            lines.append("    %s\n" % src)
    for filename, lineno, name, src in err.frames:
        lines.append('  File "%s", line %d, in %s\n    %s\n' % (filename, lineno, name, src))
    lines.append("%s: %s\n" % (err.display, err.message))
    sys.stderr.write("".join(lines))
    sys.stderr.flush()


# -------------------------------------------------------------------------- main

def on_cpu():
    """CUDA sees no device when CUDA_VISIBLE_DEVICES is set to an empty list or starts with -1."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return False
    first = value.split(",")[0].strip()
    return first == "" or first.startswith("-")


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="fake_trainer.py",
        description="Simulated PyTorch 2.x training job on a simulated GPU (see README.md).")

    def count(minimum):
        def parse(text):
            try:
                value = int(text)
            except ValueError:
                raise argparse.ArgumentTypeError("invalid integer: %r" % text)
            if value < minimum:
                raise argparse.ArgumentTypeError("must be >= %d, got %d" % (minimum, value))
            return value
        return parse

    def number(low=None, high=None, positive=False):
        def parse(text):
            try:
                value = Fraction(text.strip())
            except (ValueError, ZeroDivisionError):
                raise argparse.ArgumentTypeError("invalid number: %r" % text)
            if positive and value <= 0:
                raise argparse.ArgumentTypeError("must be > 0, got %s" % text)
            if low is not None and value < low:
                raise argparse.ArgumentTypeError("must be >= %s, got %s" % (low, text))
            if high is not None and value > high:
                raise argparse.ArgumentTypeError("must be <= %s, got %s" % (high, text))
            return value
        return parse

    p.add_argument("--batch", type=count(1), default=None,
                   help="batch size (default: $OOMGUARD_BATCH)")
    p.add_argument("--steps", type=count(1), default=5, help="training steps (default 5)")
    p.add_argument("--step-time", type=number(low=0), default=Fraction(0), metavar="SECONDS",
                   help="seconds per step, spread over the layers (default 0)")
    p.add_argument("--load-time", type=number(low=0), default=Fraction(0), metavar="SECONDS",
                   help="seconds spent after the weights are on the GPU, before the first step (default 0)")
    p.add_argument("--gpu-mib", type=count(1), default=24564,
                   help="total GPU memory in MiB (default 24564, an RTX 4090)")
    p.add_argument("--context-mib", type=count(0), default=500,
                   help="CUDA context of the process in MiB (default 500)")
    p.add_argument("--fixed-mib", type=count(0), default=4000,
                   help="weights + optimizer states in MiB (default 4000)")
    p.add_argument("--state-mib", type=count(0), default=0,
                   help="gradients + optimizer states in MiB, created in the first step (default 0)")
    p.add_argument("--per-sample-mib", type=number(positive=True), default=Fraction(150),
                   metavar="F", help="activation MiB per sample at the peak (default 150.0)")
    p.add_argument("--layers", type=count(1), default=12,
                   help="layers the activations are allocated over (default 12)")
    p.add_argument("--other-process-mib", type=count(0), default=0,
                   help="MiB held on the GPU by another process, pid 4242 (default 0)")
    p.add_argument("--fragmentation", type=number(low=0, high=1), default=Fraction(0),
                   metavar="F", help="fraction of freed activations left unusable (0..1, default 0)")
    p.add_argument("--leak-mib-per-step", type=number(low=0), default=Fraction(0),
                   metavar="F", help="MiB kept alive at every step (default 0)")
    p.add_argument("--crash-at-step", type=count(1), default=None, metavar="N",
                   help="fail with a non-OOM ValueError at step N")
    p.add_argument("--memory-file", default=None, metavar="PATH",
                   help="write {pid, used_mib, total_mib} there after every allocation and free")
    p.add_argument("--hold-samples", type=count(0), default=0, metavar="N",
                   help="with --memory-file: before the first step and at each step's peak, wait "
                        "until the stand-in nvidia-smi has answered N process queries (default 0)")
    p.add_argument("--progress", action="store_true",
                   help="tqdm-like progress bar (\\r, ANSI colour) instead of one line per step")
    p.add_argument("--print-max-batch", action="store_true",
                   help="print the largest batch that fits these options and exit")
    opts = p.parse_args(argv)

    if opts.context_mib + opts.other_process_mib > opts.gpu_mib:
        p.error("--context-mib + --other-process-mib exceed --gpu-mib")
    if opts.batch is None and not opts.print_max_batch:
        env = os.environ.get("OOMGUARD_BATCH")
        if env is None or env.strip() == "":
            p.error("--batch is required (or set OOMGUARD_BATCH)")
        try:
            opts.batch = count(1)(env.strip())
        except argparse.ArgumentTypeError as e:
            p.error("OOMGUARD_BATCH: %s" % e)
    return opts


def main():
    # A job started in the background by a non-interactive shell inherits SIGINT as
    # ignored; restore Python's usual handlers so a supervisor's signals always work.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    opts = parse_args(sys.argv[1:])
    if opts.print_max_batch:
        print(max_batch(opts))
        return 0

    device = "cpu" if on_cpu() else "cuda"
    alloc = None
    if device == "cpu":
        print("running on CPU", flush=True)
    else:
        alloc = CachingAllocator(opts)
    model = Model(opts, opts.batch, alloc)
    model = model.to(device)
    if opts.load_time:
        time.sleep(float(opts.load_time))  # loading data, compiling: weights only on the GPU
    if alloc is not None:
        alloc.hold()  # the weights alone: the baseline
    if device == "cpu":
        model.layer_time *= 4  # the CPU is slower

    bar = Progress(opts.steps) if opts.progress else None
    try:
        for step in range(1, opts.steps + 1):
            loss = train_step(model, step)
            mem = alloc.used_bytes() // MIB if alloc else 0
            if bar:
                bar.update(loss, mem)
            else:
                print("step %d/%d loss=%.4f mem=%dMiB" % (step, opts.steps, loss, mem), flush=True)
    finally:
        if bar:
            bar.close()
    peak = (alloc.context + alloc.peak_reserved) // MIB if alloc else 0
    print("done: batch %d peak_mib %d" % (opts.batch, peak), flush=True)
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except SimError as err:
        sys.stdout.flush()
        print_traceback(err)
        code = 1
    sys.exit(code)
