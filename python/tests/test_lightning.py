"""The Lightning callback on a real LightningModule on the CPU."""

from __future__ import annotations

import json

import pytest

from conftest import read_journal, require, run_script


@pytest.fixture(autouse=True)
def _needs_lightning():
    require("torch")
    try:
        require("lightning")
    except BaseException:
        require("pytorch_lightning")


def test_the_supervisors_batch_reaches_the_module_and_steps_are_journaled(tmp_path):
    j = tmp_path / "journal.jsonl"
    done = run_script(
        "lightning_job.py", env={"OOMGUARD_BATCH": "4", "OOMGUARD_ACCUM": "2", "OOMGUARD_JOURNAL": str(j)}
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["batch_size"] == 4 and out["accum"] == 2
    lines = read_journal(j)
    begin = [l for l in lines if l["kind"] == "train_begin"]
    steps = [l for l in lines if l["kind"] == "step"]
    assert begin[0]["batch"] == 4 and begin[0]["accum"] == 2
    # 3 optimizer steps of 2 accumulated batches each.
    assert len(steps) == 6 and steps[-1]["step"] == 3
    assert all(s["peak_source"] == "process_peak_rss" and s["peak_bytes"] > 10 << 20 for s in steps)


def test_an_oom_is_diagnosed_through_on_exception(tmp_path):
    small = run_script("lightning_job.py", "--measure", env={"OOMGUARD_BATCH": "2", "OOMGUARD_ACCUM": "1"})
    assert small.returncode == 0, small.stderr[-4000:]
    peak = json.loads(small.stdout.strip().splitlines()[-1])["vm_peak"]
    # The job needs about 20 MiB per sample (measured by cpu_job's
    # calibration); 128 samples cannot fit 256 MiB above batch 2's peak.
    j = tmp_path / "journal.jsonl"
    done = run_script(
        "lightning_job.py", peak + (256 << 20), env={"OOMGUARD_BATCH": "128", "OOMGUARD_JOURNAL": str(j)}
    )
    assert done.returncode != 0
    ooms = [l for l in read_journal(j) if l["kind"] == "oom"]
    assert len(ooms) == 1, done.stderr[-4000:]
    assert ooms[0]["batch"] == 128
    assert "DefaultCPUAllocator" in ooms[0]["error"]
    assert ooms[0]["oom"]["device"]["kind"] == "cpu"
