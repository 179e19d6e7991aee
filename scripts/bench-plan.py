#!/usr/bin/env python3
"""Benchmark: end-to-end process time of `oomguard plan` on a catalog model,
on a local folder of safetensors shards (headers only), and with a max-batch
search over a large limit, next to `python3 -c pass` (the floor any Python
tool pays to start). Prints a table; each figure is the median of N runs.

Usage: scripts/bench-plan.py [RUNS=30]
"""
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sharded_folder(root: Path) -> Path:
    """A Llama-2-7B-shaped folder: config.json, 2 shards of sparse files whose
    headers list all 291 tensors, and the index. Only headers are written."""
    model = root / "llama-2-7b-local"
    model.mkdir()
    cfg = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
           "num_key_value_heads": 32, "intermediate_size": 11008, "vocab_size": 32000,
           "max_position_embeddings": 4096, "torch_dtype": "float16", "tie_word_embeddings": False}
    (model / "config.json").write_text(json.dumps(cfg))
    h, i, v = 4096, 11008, 32000
    tensors = [("model.embed_tokens.weight", [v, h]), ("model.norm.weight", [h]), ("lm_head.weight", [v, h])]
    for layer in range(32):
        p = f"model.layers.{layer}."
        tensors += [(p + n, s) for n, s in [
            ("self_attn.q_proj.weight", [h, h]), ("self_attn.k_proj.weight", [h, h]),
            ("self_attn.v_proj.weight", [h, h]), ("self_attn.o_proj.weight", [h, h]),
            ("mlp.gate_proj.weight", [i, h]), ("mlp.up_proj.weight", [i, h]), ("mlp.down_proj.weight", [h, i]),
            ("input_layernorm.weight", [h]), ("post_attention_layernorm.weight", [h])]]
    shards = [tensors[: len(tensors) // 2], tensors[len(tensors) // 2:]]
    weight_map = {}
    for n, shard in enumerate(shards, 1):
        name = f"model-{n:05d}-of-00002.safetensors"
        header, offset = {}, 0
        for t, shape in shard:
            size = 2
            for d in shape:
                size *= d
            header[t] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + size]}
            weight_map[t] = name
            offset += size
        text = json.dumps(header).encode()
        path = model / name
        with open(path, "wb") as f:
            f.write(len(text).to_bytes(8, "little") + text)
            f.truncate(8 + len(text) + offset)  # sparse: the data is a hole
    (model / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return model


def median_ms(cmd, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    bin_ = str(ROOT / "target/release/oomguard")
    with tempfile.TemporaryDirectory() as tmp:
        folder = sharded_folder(Path(tmp))
        cases = [
            ("python3 -c pass (floor of a Python tool)", ["python3", "-c", "pass"]),
            ("plan meta-llama/Llama-3.1-8B --gpu rtx-4090 (catalog)", [bin_, "plan", "meta-llama/Llama-3.1-8B", "--gpu", "rtx-4090"]),
            ("plan <13 GiB sharded safetensors folder> --gpu a100-80gb", [bin_, "plan", str(folder), "--gpu", "a100-80gb"]),
            ("plan gpt2 --seq 8 --gpu b200 (max batch 128759, found by search)", [bin_, "plan", "gpt2", "--seq", "8", "--gpu", "b200"]),
        ]
        base = None
        print("| command | median ms | vs python3 -c pass |\n|---|---|---|")
        for name, cmd in cases:
            ms = median_ms(cmd, runs)
            base = base or ms
            print(f"| {name} | {ms:.1f} | {ms / base:.2f}x |")


if __name__ == "__main__":
    main()
