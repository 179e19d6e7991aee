"""fit_batch against real PyTorch on the CPU: the job runs in a child under an
address-space limit calibrated from its own measured peak, so the OOMs are
PyTorch's own allocator errors."""

from __future__ import annotations

import json


import oomguard
from conftest import require, run_job


def last_json(done):
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_training_oom_lands_below_the_limit_and_keeps_the_global_batch(calibration):
    largest = 20
    limit = calibration.limit_for(largest)
    # The calibration's claim, checked for real: the largest batch fits, a
    # few samples more do not.
    assert run_job("probe", largest, limit, check=False).returncode == 0
    assert run_job("probe", largest + 4, limit, check=False).returncode == 3

    out = last_json(run_job("fit", 64, limit, "--global-batch", 64))
    attempts = out["attempts"]
    assert attempts[0]["batch_size"] == 64
    assert all("DefaultCPUAllocator: can't allocate memory" in a["error"] for a in attempts[:-1])
    assert attempts[-1]["error"] is None
    assert len(attempts) >= 2
    assert out["batch_size"] <= largest + 3
    assert out["batch_size"] * out["accum"] == 64
    assert isinstance(out["result"], float)


def test_evaluation_oom_under_no_grad_shrinks_only_the_evaluation_batch(calibration):
    limit = calibration.limit_for(20)
    out = last_json(run_job("eval", 4, limit, "--eval-start", 512))
    assert out["batch_size"] == 4
    assert out["eval_batch_size"] < 512
    assert all(a["batch_size"] == 4 for a in out["attempts"])
    assert len(out["attempts"]) >= 2
    assert out["attempts"][-1]["error"] is None


def test_torch_oom_types_count_without_asking_about_the_text():
    torch = require("torch")

    @oomguard.fit_batch(8)
    def train(batch_size, accum):
        if batch_size > 2:
            raise torch.OutOfMemoryError("the text does not matter for this type")
        return batch_size

    assert train() == 2


def test_no_grad_blocks_and_decorators_mark_evaluation():
    torch = require("torch")
    text = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 8.00 GiB total capacity; 7.00 GiB already allocated; 100.00 MiB free; 7.10 GiB reserved in total by PyTorch)"

    @torch.no_grad()
    def score(n):
        if n > 5:
            raise torch.OutOfMemoryError(text)

    @oomguard.fit_batch(4, eval_start=40)
    def train(batch_size, accum, eval_batch_size):
        with torch.inference_mode():
            pass
        score(eval_batch_size)
        with torch.no_grad():
            if eval_batch_size > 3:
                raise torch.OutOfMemoryError(text)
        return eval_batch_size

    assert train() <= 3
    assert train.batch_size == 4
    assert all(a["batch_size"] == 4 for a in train.attempts)


def test_autograd_off_inside_the_model_is_still_training():
    torch = require("torch")
    text = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 8.00 GiB total capacity; 7.00 GiB already allocated; 100.00 MiB free; 7.10 GiB reserved in total by PyTorch)"

    class Rotary(torch.nn.Module):  # like a rotary embedding: forward under no_grad
        @torch.no_grad()
        def forward(self, n):
            if n > 5:
                raise torch.OutOfMemoryError(text)
            return n

    rotary = Rotary()

    @oomguard.fit_batch(8, eval_start=40)
    def train(batch_size, accum, eval_batch_size):
        return rotary(batch_size)

    assert train() <= 5
    assert train.eval_batch_size == 40
