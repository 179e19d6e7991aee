"""The Hugging Face Trainer callback, with a tiny model built from a config."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import cpu_job
from conftest import HERE, read_journal, require, run_script


@pytest.fixture(autouse=True)
def _needs_transformers():
    require("torch")
    require("transformers")


def test_the_supervisors_batch_reaches_the_trainer_and_steps_are_journaled(tmp_path):
    j = tmp_path / "journal.jsonl"
    done = run_script(
        "hf_job.py",
        tmp_path / "out",
        env={"OOMGUARD_BATCH": "4", "OOMGUARD_ACCUM": "2", "OOMGUARD_JOURNAL": str(j)},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["train_batch_size"] == 4 and out["accum"] == 2
    lines = read_journal(j)
    begin = [l for l in lines if l["kind"] == "train_begin"]
    steps = [l for l in lines if l["kind"] == "step"]
    assert begin[0]["batch"] == 4 and begin[0]["accum"] == 2
    assert [s["step"] for s in steps] == [1, 2, 3]
    assert all(s["peak_source"] == "process_peak_rss" and s["peak_bytes"] > 10 << 20 for s in steps)


def test_an_oom_is_diagnosed_in_the_journal_before_the_process_exits(tmp_path):
    env = {"OOMGUARD_BATCH": "2", "OOMGUARD_ACCUM": "1"}
    small = run_script("hf_job.py", tmp_path / "out", "--measure", env=env)
    assert small.returncode == 0, small.stderr[-4000:]
    peak = json.loads(small.stdout.strip().splitlines()[-1])["vm_peak"]
    # Logits alone take SEQ x VOCAB x 4 bytes per sequence (1 MiB): 512
    # sequences need far more than 256 MiB above the small run's peak.
    limit = peak + (256 << 20)
    j = tmp_path / "journal.jsonl"
    done = run_script(
        "hf_job.py",
        tmp_path / "out",
        limit,
        env={"OOMGUARD_BATCH": "512", "OOMGUARD_ACCUM": "1", "OOMGUARD_JOURNAL": str(j)},
    )
    assert done.returncode != 0
    assert "can't allocate memory" in done.stderr  # the traceback is still printed
    ooms = [l for l in read_journal(j) if l["kind"] == "oom"]
    assert len(ooms) == 1
    oom = ooms[0]
    assert oom["batch"] == 512
    assert "DefaultCPUAllocator" in oom["error"]
    assert oom["oom"]["device"]["kind"] == "cpu"
    assert oom["oom"]["framework"] == "pytorch"
    assert oom["snapshot"] is None


def test_oomguard_run_restarts_the_trainer_at_a_batch_that_fits(tmp_path):
    """End to end: `oomguard run` supervises the Trainer; its next batch
    reaches TrainingArguments through OOMGUARD_BATCH; both journals share a file."""
    import oomguard

    small = run_script("hf_job.py", tmp_path / "out", "--measure", env={"OOMGUARD_BATCH": "2"})
    assert small.returncode == 0, small.stderr[-4000:]
    limit = json.loads(small.stdout.strip().splitlines()[-1])["vm_peak"] + (256 << 20)
    j = tmp_path / "journal.jsonl"
    done = subprocess.run(
        [
            oomguard.find_binary(),
            "run",
            "--batch",
            "256",
            "--global-batch",
            "256",
            "--journal",
            str(j),
            "--json",
            "--",
            sys.executable,
            str(HERE / "hf_job.py"),
            str(tmp_path / "out"),
            str(limit),
        ],
        env=cpu_job.child_env({"OOMGUARD_JOURNAL": str(j)}),
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = read_journal(j)
    attempts = [l for l in lines if "attempt" in l]
    begins = [l for l in lines if l.get("kind") == "train_begin"]
    ooms = [l for l in lines if l.get("kind") == "oom"]
    assert len(attempts) >= 2 and attempts[-1]["exit_code"] == 0
    assert attempts[0]["oom"] is not None
    # Each attempt's Trainer ran at the batch and accumulation run chose.
    assert [(b["batch"], b["accum"]) for b in begins] == [(a["batch"], a["accum"]) for a in attempts]
    assert len(ooms) == len(attempts) - 1
    assert begins[-1]["batch"] < 128 and begins[-1]["batch"] * begins[-1]["accum"] >= 128
