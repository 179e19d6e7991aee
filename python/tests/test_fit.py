"""fit_batch's rules, with errors raised by hand (no PyTorch needed)."""

from __future__ import annotations

import logging
import traceback

import pytest

import oomguard

CUDA_OOM = (
    "CUDA out of memory. Tried to allocate 512.00 MiB (GPU 0; 8.00 GiB total capacity; "
    "6.50 GiB already allocated; 256.00 MiB free; 6.70 GiB reserved in total by PyTorch)"
)


def test_a_function_without_a_batch_parameter_is_refused_at_decoration():
    with pytest.raises(TypeError, match="batch_size"):

        @oomguard.fit_batch(8)
        def train(n, accum):  # pragma: no cover - never called
            pass


def test_the_decorator_needs_its_start():
    with pytest.raises(TypeError, match="fit_batch"):

        @oomguard.fit_batch
        def train(batch_size, accum):  # pragma: no cover - never called
            pass


def test_a_global_batch_needs_an_accum_parameter():
    with pytest.raises(TypeError, match="accum"):

        @oomguard.fit_batch(8, global_batch=64)
        def train(batch_size):  # pragma: no cover - never called
            pass


@pytest.mark.parametrize(
    "error",
    [
        ValueError("labels and logits differ in shape"),
        RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 4x5)"),
    ],
)
def test_other_exceptions_propagate_unchanged(error):
    calls = []

    def fail():
        raise error

    @oomguard.fit_batch(16)
    def train(batch_size, accum):
        calls.append(batch_size)
        fail()

    with pytest.raises(type(error)) as info:
        train()
    assert info.value is error
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert frames[-2:] == ["train", "fail"]
    assert calls == [16]


def test_an_oom_with_figures_retries_at_the_batch_oomguard_names(caplog):
    @oomguard.fit_batch(64)
    def train(batch_size, accum):
        if batch_size > 40:
            raise RuntimeError(CUDA_OOM)
        return batch_size * 10

    with caplog.at_level(logging.WARNING, logger="oomguard"):
        assert train() == train.batch_size * 10
    expected = oomguard._fit.batch_from_event(oomguard.explain(CUDA_OOM, batch=64))
    assert train.attempts[0]["batch_size"] == 64
    assert train.attempts[1]["batch_size"] == expected
    assert "CUDA out of memory" in train.attempts[0]["error"]
    assert train.attempts[-1]["error"] is None
    retries = [r for r in caplog.records if r.name == "oomguard"]
    assert len(retries) == len(train.attempts) - 1
    assert all("\n" not in r.getMessage() for r in retries)


def test_a_global_batch_is_kept_exactly():
    @oomguard.fit_batch(64, global_batch=96)
    def train(batch_size, accum):
        if batch_size > 20:
            raise RuntimeError(CUDA_OOM)
        return batch_size, accum

    b, k = train()
    assert b * k == 96
    assert all(a["batch_size"] * a["accum"] == 96 for a in train.attempts)
    assert 96 % train.attempts[0]["batch_size"] == 0  # the start became a divisor


def test_memory_error_without_figures_halves():
    @oomguard.fit_batch(40, min=3)
    def train(batch_size, accum):
        if batch_size > 6:
            raise MemoryError()
        return "ok"

    assert train() == "ok"
    assert [a["batch_size"] for a in train.attempts] == [40, 20, 10, 5]


def test_at_the_minimum_the_oom_is_reraised():
    raised = []

    @oomguard.fit_batch(4, min=2)
    def train(batch_size, accum):
        raised.append(MemoryError(f"batch {batch_size}"))
        raise raised[-1]

    with pytest.raises(MemoryError) as info:
        train()
    assert info.value is raised[-1]
    assert [a["batch_size"] for a in train.attempts] == [4, 2]


def test_an_evaluation_oom_shrinks_only_the_evaluation_batch():
    @oomguard.fit_batch(8, eval_start=64)
    def train(batch_size, accum, eval_batch_size):
        with oomguard.evaluation():
            if eval_batch_size > 10:
                raise MemoryError()
        return eval_batch_size

    assert train() == 8
    assert train.batch_size == 8
    assert train.eval_batch_size == 8
    assert [a["eval_batch_size"] for a in train.attempts] == [64, 32, 16, 8]
    assert all(a["batch_size"] == 8 for a in train.attempts)


def test_a_function_marked_as_evaluation_counts_too():
    @oomguard.evaluation
    def validate(n):
        if n > 3:
            raise MemoryError()

    @oomguard.fit_batch(4, eval_start=12)
    def train(batch_size, accum, eval_batch_size):
        validate(eval_batch_size)
        return eval_batch_size

    assert train() == 3
    assert train.batch_size == 4


def test_an_evaluation_phase_read_from_the_traceback_counts():
    def evaluate(n):
        if n > 10:
            raise RuntimeError(CUDA_OOM)

    @oomguard.fit_batch(8, eval_start=64)
    def train(batch_size, accum, eval_batch_size):
        evaluate(eval_batch_size)
        return eval_batch_size

    assert train() <= 10
    assert train.batch_size == 8
