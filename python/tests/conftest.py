"""Shared set-up: the package and binary under test, PyTorch when required,
and the address-space limit calibrated from the job's own measured peak."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
JOB = HERE / "cpu_job.py"

try:  # the installed wheel; else the source tree
    import oomguard  # noqa: F401
except ImportError:
    sys.path.insert(0, str(REPO / "python"))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO / "python"), os.environ.get("PYTHONPATH")) if p
    )
    import oomguard  # noqa: F401

# Outside an installed wheel, use the binary cargo built in this tree.
try:
    oomguard.find_binary()
except oomguard.OomguardError:
    for profile in ("release", "debug"):
        candidate = REPO / "target" / profile / "oomguard"
        if candidate.is_file():
            os.environ["OOMGUARD_BIN"] = str(candidate)
            break

sys.path.insert(0, str(HERE))
import cpu_job  # noqa: E402


def require(module: str):
    """Import ``module`` or skip; under CI a missing module fails instead."""
    try:
        return __import__(module)
    except ImportError as e:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{module} is required in CI but cannot be imported: {e}")
        pytest.skip(f"{module} is not installed")


def run_job(*args: str, timeout: float = 600, env: dict | None = None, check: bool = True):
    """Run cpu_job.py in a child with the repeatable-peak environment."""
    done = subprocess.run(
        [sys.executable, str(JOB), *map(str, args)],
        env=cpu_job.child_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"cpu_job {args} exited {done.returncode}:\n{done.stderr[-4000:]}")
    return done


def run_script(script: str, *args, env: dict | None = None, timeout: float = 600):
    """Run one of this directory's job scripts in a child (repeatable-peak environment)."""
    return subprocess.run(
        [sys.executable, str(HERE / script), *map(str, args)],
        env=cpu_job.child_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def read_journal(path) -> list:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


class Calibration:
    """Peak address space of the job as a line in the batch size, measured."""

    def __init__(self, base: float, per_sample: float):
        self.base = base
        self.per_sample = per_sample

    def limit_for(self, largest_fitting: int) -> int:
        """A limit half a sample above what ``largest_fitting`` needs."""
        return int(self.base + self.per_sample * (largest_fitting + 0.5))


@pytest.fixture(scope="session")
def calibration() -> Calibration:
    require("torch")
    lo, hi = 8, 16
    peaks = {}
    for b in (lo, hi):
        out = run_job("measure", b).stdout
        peaks[b] = json.loads(out.strip().splitlines()[-1])["vm_peak"]
    per_sample = (peaks[hi] - peaks[lo]) / (hi - lo)
    assert per_sample > 1 << 20, f"the job's peak does not grow with the batch: {peaks}"
    return Calibration(peaks[lo] - lo * per_sample, per_sample)
