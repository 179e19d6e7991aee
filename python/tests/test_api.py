"""explain() and plan() over the binary; the binary's discovery and timeout."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import pytest

import oomguard
from oomguard._binary import flag_args, run_json
from oomguard._fit import batch_from_event

from conftest import REPO

RUNPOD = (REPO / "examples" / "runpod-oom.txt").read_text()
CUDA_OOM = (
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 512.00 MiB (GPU 0; 8.00 GiB total "
    "capacity; 6.50 GiB already allocated; 256.00 MiB free; 6.70 GiB reserved in total by PyTorch)"
)


def test_explain_text_gives_the_first_event_and_a_batch_that_fits():
    event = oomguard.explain(RUNPOD, batch=64)
    assert event["framework"] == "pytorch"
    assert event["device"] == {"kind": "cuda", "index": 0}
    assert event["memory"]["requested_bytes"] == 512 * 1024 * 1024
    batch = batch_from_event(event)
    assert batch is not None and 1 <= batch < 64


def test_explain_an_exception_reads_its_traceback():
    def evaluate():
        raise RuntimeError(CUDA_OOM.split(": ", 1)[1])

    try:
        evaluate()
    except RuntimeError as e:
        event = oomguard.explain(e)
    assert event is not None
    assert event["phase"] == "evaluation"


def test_explain_without_an_oom_is_none():
    assert oomguard.explain("ValueError: shapes (3,) and (4,) do not match") is None


def test_explain_rejects_other_types():
    with pytest.raises(TypeError, match="str, bytes or exception"):
        oomguard.explain(42)


def test_plan_maps_keyword_arguments_to_flags():
    p = oomguard.plan("bert-base-uncased", train=True, grad_checkpointing=True, batch=4, gpu="rtx-4090")
    assert p["workload"]["train"] is True
    assert p["workload"]["grad_checkpointing"] is True
    assert p["workload"]["batch"] == 4
    assert isinstance(p["fits"], bool)
    assert p["per_gpu"]["weights_bytes"] > 0


def test_plan_names_an_unknown_model():
    with pytest.raises(oomguard.OomguardError) as info:
        oomguard.plan("no-such-model-anywhere")
    assert info.value.returncode == 2
    assert "no-such-model-anywhere" in str(info.value)


def test_flag_args():
    assert flag_args({"train": True, "amp": False, "lora": None, "batch": 4, "grad_checkpointing": True}) == [
        "--train",
        "--batch",
        "4",
        "--grad-checkpointing",
    ]


def test_a_missing_override_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("OOMGUARD_BIN", str(tmp_path / "nope"))
    with pytest.raises(oomguard.OomguardError, match="OOMGUARD_BIN"):
        oomguard.find_binary()


def test_a_hung_binary_is_abandoned_at_the_timeout(monkeypatch, tmp_path):
    fake = tmp_path / "oomguard"
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("OOMGUARD_BIN", str(fake))
    t0 = time.monotonic()
    with pytest.raises(oomguard.OomguardError, match="did not finish"):
        run_json(["explain", "-", "--json"], stdin="x", timeout=0.5)
    assert time.monotonic() - t0 < 10


def test_works_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import oomguard\n"
        "e = oomguard.explain(sys.stdin.read(), batch=64)\n"
        "print(e['phase'], 'torch' in sys.modules and sys.modules['torch'] is not None)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=RUNPOD,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["forward", "False"]


def test_an_evaluation_fix_names_the_evaluation_batch():
    # explain gives an evaluation OOM the `reduce_eval_batch` fix, whose code
    # sets per_device_eval_batch_size: that is the batch to use next.
    event = {
        "fixes": [
            {"id": "clear_cache", "code": "torch.cuda.empty_cache()", "title": "x"},
            {
                "id": "reduce_eval_batch",
                "code": "TrainingArguments(per_device_eval_batch_size=13, eval_accumulation_steps=8)",
                "title": "Lower the evaluation batch (per_device_eval_batch_size=13)",
            },
        ]
    }
    assert batch_from_event(event) == 13
    assert batch_from_event({"fixes": [{"id": "fused_optimizer", "code": "batch_size=4"}]}) is None
