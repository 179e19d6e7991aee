#!/usr/bin/env python3
"""Write PyTorch memory snapshots with known answers, without torch or a GPU.

Each scenario drives a small model of PyTorch's CUDA caching allocator
(c10/cuda/CUDACachingAllocator.cpp: 512-byte rounding, requests up to 1 MiB
served from 2 MiB segments, up to 10 MiB from 20 MiB segments, larger ones
from segments rounded to 2 MiB, best fit, cached segments released before an
OOM is raised) and records what torch.cuda.memory._record_memory_history()
would: trace entries alloc / free_requested / free_completed /
segment_alloc / segment_free / oom (with device_free), frames innermost
first, frame dicts shared between stacks. The file has the structure of
torch.cuda.memory._snapshot() (segments with blocks, device_traces,
allocator_settings) and is written with Python's own pickle of plain dicts
and lists, in every protocol asked for.

Simplification: a block is always split when something is left over (PyTorch
keeps up to 1 MiB unsplit in the large pool), so a block's size is its
request rounded to 512 bytes.

Beside each NAME.pickle the script writes NAME.expected.json: the figures
the model itself knew at the OOM (or at the peak), for tests to compare.

Usage:
  make-snapshots.py OUTDIR                       all scenarios
  make-snapshots.py --big OUT.pickle --mib 1024  a long trace of about that size
"""

import argparse
import gzip
import json
import os
import pickle
import sys

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

SMALL_SIZE = 1 * MIB  # kSmallSize
SMALL_BUFFER = 2 * MIB  # kSmallBuffer
LARGE_BUFFER = 20 * MIB  # kLargeBuffer
MIN_LARGE_ALLOC = 10 * MIB  # kMinLargeAlloc
ROUND_LARGE = 2 * MIB  # kRoundLarge


def round_size(n):
    return 512 if n < 512 else (n + 511) // 512 * 512


def segment_size(n):
    if n <= SMALL_SIZE:
        return SMALL_BUFFER
    if n < MIN_LARGE_ALLOC:
        return LARGE_BUFFER
    return (n + ROUND_LARGE - 1) // ROUND_LARGE * ROUND_LARGE


class Frames:
    """Shared frame dicts, as PyTorch's symbolizer shares them."""

    def __init__(self):
        self.cache = {}

    def frame(self, filename, line, name):
        key = (filename, line, name)
        if key not in self.cache:
            self.cache[key] = {"filename": filename, "line": line, "name": name}
        return self.cache[key]

    def stack(self, user, via=(), cpp=0):
        """Innermost first: C++ frames, library frames, then the user's."""
        out = [self.frame("??", 0, f"c10::cuda::CUDACachingAllocator::malloc_{i}") for i in range(cpp)]
        out += [self.frame(*f) for f in via]
        out += [self.frame(*f) for f in user]
        return out


TORCH = "/opt/conda/lib/python3.11/site-packages/torch"
LINEAR = (f"{TORCH}/nn/modules/linear.py", 116, "forward")
MODULE = (f"{TORCH}/nn/modules/module.py", 1527, "_call_impl")
ADAMW = (f"{TORCH}/optim/adamw.py", 410, "_single_tensor_adamw")
RUNPY = ("/opt/conda/lib/python3.11/runpy.py", 88, "_run_code")


def label(frame):
    return f"{frame[0]}:{frame[1]} ({frame[2]})"


class OutOfMemory(Exception):
    pass


class Device:
    def __init__(self, index, capacity, context, trace):
        self.index = index
        self.capacity = capacity
        self.context = context
        self.trace = trace
        self.segments = []  # dicts: address, size, pool, blocks (list of dicts)
        self.next_addr = 0x7F0000000000 + index * 0x10000000000
        self.allocated = 0
        self.peak = None
        self.peak_allocated = -1
        self.oom = None

    def reserved(self):
        return sum(s["size"] for s in self.segments)

    def device_free(self):
        return self.capacity - self.context - self.reserved()

    def figures(self):
        """What the model knows right now: the expected answers."""
        holes = [b["size"] for s in self.segments for b in s["blocks"] if not b["allocated"]]
        sites = {}
        for s in self.segments:
            for b in s["blocks"]:
                if b["allocated"]:
                    e = sites.setdefault(b["site"], [0, 0])
                    e[0] += b["size"]
                    e[1] += 1
        top = sorted(sites.items(), key=lambda kv: (-kv[1][0], kv[0]))
        reserved = self.reserved()
        return {
            "allocated_bytes": self.allocated,
            "reserved_bytes": reserved,
            "cached_free_bytes": reserved - self.allocated,
            "largest_free_block_bytes": max(holes, default=0),
            "segments": len(self.segments),
            "top_sites": [{"frame": k, "bytes": v[0], "blocks": v[1]} for k, v in top],
        }

    def _record(self, action, addr, size, frames, **extra):
        entry = {"action": action}
        if action == "oom":
            entry["device_free"] = extra["device_free"]
        else:
            entry["addr"] = addr
        entry["size"] = size
        entry["stream"] = 0
        entry["frames"] = frames
        entry["time_us"] = len(self.trace)
        self.trace.append(entry)

    def _best_fit(self, size, small):
        best = None
        for s in self.segments:
            if s["small"] != small or s["pool"] != (0, 0):
                continue
            for i, b in enumerate(s["blocks"]):
                if not b["allocated"] and b["size"] >= size:
                    if best is None or (b["size"], b["addr"]) < (best[2]["size"], best[2]["addr"]):
                        best = (s, i, b)
        return best

    def _new_segment(self, seg_size, small):
        if self.device_free() < seg_size:
            return None
        addr = self.next_addr
        self.next_addr += (seg_size + ROUND_LARGE - 1) // ROUND_LARGE * ROUND_LARGE
        seg = {
            "address": addr,
            "size": seg_size,
            "small": small,
            "pool": (0, 0),
            "expandable": False,
            "blocks": [{"addr": addr, "size": seg_size, "allocated": False}],
        }
        self.segments.append(seg)
        self.segments.sort(key=lambda s: s["address"])
        self._record("segment_alloc", addr, seg_size, [])
        return seg

    def _release_cached(self):
        for s in list(self.segments):
            if s["pool"] == (0, 0) and all(not b["allocated"] for b in s["blocks"]):
                self.segments.remove(s)
                self._record("segment_free", s["address"], s["size"], [])

    def malloc(self, requested, frames, site):
        size = round_size(requested)
        small = size <= SMALL_SIZE
        found = self._best_fit(size, small)
        if found is None:
            seg = self._new_segment(segment_size(size), small)
            if seg is None:
                self._release_cached()
                seg = self._new_segment(segment_size(size), small)
            if seg is None:
                self.oom = dict(self.figures(), requested_bytes=size, device_free_bytes=self.device_free())
                self._record("oom", 0, size, frames, device_free=self.device_free())
                raise OutOfMemory()
            found = (seg, 0, seg["blocks"][0])
        seg, i, b = found
        if b["size"] > size:
            rest = {"addr": b["addr"] + size, "size": b["size"] - size, "allocated": False}
            seg["blocks"].insert(i + 1, rest)
            b["size"] = size
        b.update(allocated=True, requested=requested, frames=frames, site=site)
        self.allocated += size
        self._record("alloc", b["addr"], requested, frames)
        if self.allocated > self.peak_allocated:
            self.peak_allocated = self.allocated
            self.peak = self.figures()
        return b["addr"]

    def free(self, addr):
        for s in self.segments:
            for i, b in enumerate(s["blocks"]):
                if b["addr"] == addr and b["allocated"]:
                    self._record("free_requested", addr, b["requested"], b["frames"])
                    self._record("free_completed", addr, b["requested"], b["frames"])
                    self.allocated -= b["size"]
                    b["allocated"] = False
                    for k in ("requested", "frames", "site"):
                        b.pop(k, None)
                    blocks = s["blocks"]
                    if i + 1 < len(blocks) and not blocks[i + 1]["allocated"]:
                        b["size"] += blocks.pop(i + 1)["size"]
                    if i > 0 and not blocks[i - 1]["allocated"]:
                        blocks[i - 1]["size"] += blocks.pop(i)["size"]
                    return
        raise KeyError(hex(addr))

    def segment_dicts(self, legacy=False):
        out = []
        for s in self.segments:
            blocks = []
            for b in s["blocks"]:
                if legacy:
                    d = {"size": b["size"], "state": "active_allocated" if b["allocated"] else "inactive"}
                    if b["allocated"]:
                        d["history"] = [{"addr": b["addr"], "real_size": b["requested"], "frames": b["frames"]}]
                else:
                    d = {
                        "address": b["addr"],
                        "size": b["size"],
                        "requested_size": b.get("requested", 0),
                        "state": "active_allocated" if b["allocated"] else "inactive",
                        "frames": b.get("frames", []),
                    }
                blocks.append(d)
            allocated = sum(b["size"] for b in s["blocks"] if b["allocated"])
            seg = {
                "device": self.index,
                "address": s["address"],
                "total_size": s["size"],
                "allocated_size": allocated,
                "active_size": allocated,
                "requested_size": sum(b.get("requested", 0) for b in s["blocks"]),
                "stream": 0,
                "segment_type": "small" if s["small"] else "large",
                "segment_pool_id": s["pool"],
                "is_expandable": s["expandable"],
                "frames": [],
                "blocks": blocks,
            }
            if legacy:
                for k in ("requested_size", "segment_pool_id", "is_expandable", "frames"):
                    seg.pop(k)
            out.append(seg)
        return out


class Scenario:
    def __init__(self, devices):
        self.traces = [[] for _ in devices]
        self.devices = [Device(i, cap, ctx, self.traces[i]) for i, (cap, ctx) in enumerate(devices)]
        self.fr = Frames()
        self.boundaries = [[] for _ in devices]
        self.settings = {"PYTORCH_CUDA_ALLOC_CONF": "", "expandable_segments": False}
        self.causes = {}

    def boundary(self, d):
        """Live bytes per site at the end of an iteration."""
        dev = self.devices[d]
        self.boundaries[d].append({t["frame"]: t["bytes"] for t in dev.figures()["top_sites"]})

    def snapshot(self, legacy=False):
        segs = [s for d in self.devices for s in d.segment_dicts(legacy)]
        if legacy:
            return segs
        return {
            "segments": segs,
            "device_traces": self.traces,
            "allocator_settings": self.settings,
        }

    def expected(self, growing_min=1 * MIB):
        out = []
        for i, dev in enumerate(self.devices):
            if dev.oom is not None:
                fig = dict(dev.oom, at="oom")
            else:
                fig = dict(dev.peak or dev.figures(), at="peak", requested_bytes=None, device_free_bytes=None)
            growing = []
            b = self.boundaries[i]
            if len(b) >= 3:
                for site in sorted(set(b[-1])):
                    first, last = b[0].get(site, 0), b[-1].get(site, 0)
                    series = [x.get(site, 0) for x in b]
                    rises = sum(1 for u, v in zip(series, series[1:]) if v > u)
                    if last >= first + growing_min and rises >= 2 and all(v >= u for u, v in zip(series, series[1:])):
                        # The bytes at every iteration end: a reader that does
                        # not see the first iteration as one (its optimizer
                        # states are created lazily) starts one later.
                        growing.append({"frame": site, "series": series})
            fig["growing_sites"] = growing
            fig["device"] = i
            fig["first_cause"] = self.causes.get(i)
            out.append(fig)
        return out


def training(sc, d, iterations, act_bytes, layers, leak_bytes=0, act_scale_last=1.0, adam=True, weights=40, weight_bytes=64 * MIB):
    """Weights, then iterations of forward (activations), backward (frees,
    gradients), optimizer step (AdamW states on the first step)."""
    dev, fr = sc.devices[d], sc.fr
    init = ("/home/user/project/model.py", 12, "__init__")
    main = ("/home/user/project/train.py", 88, "main")
    fwd = ("/home/user/project/model.py", 31, "forward")
    step = ("/home/user/project/train.py", 61, "train_step")
    leak = ("/home/user/project/train.py", 64, "train_step")
    opt = ("/home/user/project/train.py", 66, "train_step")
    init_stack = fr.stack([init, main, RUNPY], via=[LINEAR[:2] + ("__init__",)], cpp=3)
    for _ in range(weights):
        dev.malloc(weight_bytes, init_stack, label(init))
    grads = []
    states = []
    for it in range(iterations):
        scale = act_scale_last if it == iterations - 1 else 1.0
        acts = []
        fwd_stack = fr.stack([fwd, step, main, RUNPY], via=[LINEAR, MODULE], cpp=5)
        for layer in range(layers):
            acts.append(dev.malloc(int(act_bytes * scale), fwd_stack, label(fwd)))
        if leak_bytes:
            dev.malloc(leak_bytes, fr.stack([leak, main, RUNPY], cpp=2), label(leak))
        bwd_stack = fr.stack([], via=[], cpp=2) + [fr.frame("??", 0, "torch::autograd::Engine::thread_main")]
        for a in reversed(acts):
            dev.free(a)
        for g in grads:
            dev.free(g)
        grads = [dev.malloc(weight_bytes, bwd_stack, "<backward pass (autograd engine)>") for _ in range(weights)]
        if adam and not states:
            opt_stack = fr.stack([opt, main, RUNPY], via=[ADAMW], cpp=2)
            states = [dev.malloc(weight_bytes, opt_stack, label(opt)) for _ in range(2 * weights)]
        sc.boundary(d)


def scenario_train_oom():
    sc = Scenario([(16 * GIB, 512 * MIB)])
    try:
        training(sc, 0, iterations=4, act_bytes=160 * MIB, layers=24, act_scale_last=1.7, weights=40)
    except OutOfMemory:
        pass
    sc.causes[0] = "batch_too_large"
    return sc


def scenario_leak():
    sc = Scenario([(16 * GIB, 512 * MIB)])
    try:
        training(sc, 0, iterations=40, act_bytes=64 * MIB, layers=24, leak_bytes=300 * MIB, weights=40)
    except OutOfMemory:
        pass
    sc.causes[0] = "leftover_tensors"
    return sc


def scenario_peak():
    sc = Scenario([(16 * GIB, 512 * MIB)])
    training(sc, 0, iterations=5, act_bytes=64 * MIB, layers=24, weights=40)
    return sc


def scenario_load_oom():
    sc = Scenario([(8 * GIB, 400 * MIB)])
    init = ("/home/user/project/load.py", 20, "load_model")
    stack = sc.fr.stack([init, RUNPY], via=[(f"{TORCH}/nn/modules/module.py", 1160, "to")], cpp=3)
    try:
        for _ in range(100):
            sc.devices[0].malloc(100 * MIB, stack, label(init))
    except OutOfMemory:
        pass
    sc.causes[0] = "model_too_large"
    return sc


def scenario_fragmentation():
    sc = Scenario([(2 * GIB, 300 * MIB)])
    dev = sc.devices[0]
    collate = ("/home/user/project/data.py", 30, "collate")
    big = ("/home/user/project/data.py", 44, "pad_batch")
    stack = sc.fr.stack([collate, RUNPY], cpp=2)
    live = []
    try:
        while True:
            live.append(dev.malloc(6 * MIB, stack, label(collate)))
    except OutOfMemory:
        pass
    dev.oom = None
    for addr in live[::2]:
        dev.free(addr)
    try:
        dev.malloc(64 * MIB, sc.fr.stack([big, RUNPY], cpp=2), label(big))
    except OutOfMemory:
        pass
    sc.causes[0] = "fragmentation"
    return sc


def scenario_two_devices():
    sc = Scenario([(16 * GIB, 512 * MIB), (8 * GIB, 512 * MIB)])
    training(sc, 0, iterations=3, act_bytes=64 * MIB, layers=8, weights=20)
    try:
        training(sc, 1, iterations=3, act_bytes=200 * MIB, layers=12, act_scale_last=2.0, weights=20)
    except OutOfMemory:
        pass
    sc.causes[1] = "batch_too_large"
    return sc


def scenario_pools():
    sc = scenario_peak()
    dev = sc.devices[0]
    # A CUDA graph's private pool and an expandable segment, both allocated
    # before the trace window (no trace entries).
    graph = ("/home/user/project/serve.py", 70, "capture")
    stack = sc.fr.stack([graph, RUNPY], cpp=2)
    for pool, expandable, size in (((1, 0), False, 64 * MIB), ((0, 0), True, 128 * MIB)):
        addr = dev.next_addr
        dev.next_addr += size
        dev.segments.append({
            "address": addr, "size": size, "small": False, "pool": pool, "expandable": expandable,
            "blocks": [
                {"addr": addr, "size": 32 * MIB, "allocated": True, "requested": 32 * MIB, "frames": stack, "site": label(graph)},
                {"addr": addr + 32 * MIB, "size": size - 32 * MIB, "allocated": False},
            ],
        })
    sc.settings = {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True", "expandable_segments": True}
    # They were there all along, so the peak holds them too.
    peak = dev.peak
    peak["allocated_bytes"] += 64 * MIB
    peak["reserved_bytes"] += 192 * MIB
    peak["cached_free_bytes"] += 128 * MIB
    peak["largest_free_block_bytes"] = max(peak["largest_free_block_bytes"], 96 * MIB)
    peak["segments"] += 2
    peak["top_sites"].append({"frame": label(graph), "bytes": 64 * MIB, "blocks": 2})
    peak["top_sites"].sort(key=lambda t: (-t["bytes"], t["frame"]))
    return sc


SCENARIOS = {
    "train_oom": scenario_train_oom,
    "leak": scenario_leak,
    "peak": scenario_peak,
    "load_oom": scenario_load_oom,
    "fragmentation": scenario_fragmentation,
    "two_devices": scenario_two_devices,
    "pools": scenario_pools,
}


def write(path, obj, protocol, gz=False):
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


def write_all(outdir):
    os.makedirs(outdir, exist_ok=True)
    for name, make in SCENARIOS.items():
        sc = make()
        expected = {"devices": sc.expected()}
        protocols = [0, 1, 2, 3, 4, 5] if name == "train_oom" else [4]
        for p in protocols:
            suffix = "" if p == 4 else f".p{p}"
            write(os.path.join(outdir, f"{name}{suffix}.pickle"), sc.snapshot(), p)
        with open(os.path.join(outdir, f"{name}.expected.json"), "w") as f:
            json.dump(expected, f, indent=1)
    sc = scenario_leak()
    write(os.path.join(outdir, "leak.pickle.gz"), sc.snapshot(), 4, gz=True)
    # The segment list torch.cuda.memory_snapshot() returned (PyTorch 2.0
    # blocks keep their stack under history[0]).
    sc = scenario_peak()
    write(os.path.join(outdir, "legacy.pickle"), sc.snapshot(legacy=True), 2)
    figs = sc.devices[0].figures()
    with open(os.path.join(outdir, "legacy.expected.json"), "w") as f:
        json.dump({"devices": [dict(figs, at="peak", device=0, requested_bytes=None, device_free_bytes=None, growing_sites=[], first_cause=None)]}, f, indent=1)


def write_big(path, mib):
    """A long training trace with deep stacks (C++ frames included), about
    `mib` MiB: the shape of a snapshot taken with max_entries in the millions.
    The first iteration runs through the allocator model; later ones repeat
    its allocations and frees at the same addresses (as a steady training
    loop does), each entry with its own frame list."""
    sc = Scenario([(80 * GIB, 1 * GIB)])
    dev, fr = sc.devices[0], sc.fr
    stacks = []
    for k in range(200):
        user = [(f"/home/user/project/model_{k % 20}.py", 10 + k, f"block_{k}"), ("/home/user/project/train.py", 88, "main"), RUNPY]
        stacks.append((fr.stack(user, via=[LINEAR, MODULE], cpp=55), label(user[0])))
    live = []
    for k in range(200):
        frames, site = stacks[k]
        live.append(dev.malloc(8 * MIB + 512 * (k % 7), list(frames), site))
    first = len(dev.trace)
    for a in reversed(live):
        dev.free(a)
    pattern = [e for e in dev.trace if e["action"] in ("alloc", "free_requested", "free_completed")]
    per_entry = 347  # bytes per entry in protocol 4 with 60-frame stacks (measured)
    entries = mib * MIB // per_entry
    trace = dev.trace
    while len(trace) < entries:
        for e in pattern:
            n = dict(e)
            n["frames"] = list(e["frames"])
            n["time_us"] = len(trace)
            trace.append(n)
    del first
    write(path, sc.snapshot(), 4)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir", nargs="?")
    ap.add_argument("--big", metavar="OUT")
    ap.add_argument("--mib", type=int, default=1024)
    a = ap.parse_args()
    if a.big:
        write_big(a.big, a.mib)
    elif a.outdir:
        write_all(a.outdir)
    else:
        ap.error("give OUTDIR or --big OUT")


if __name__ == "__main__":
    sys.exit(main())
