"""In CI the tests run against the installed wheel: its package and the
binary it put next to the interpreter."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

import oomguard

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def test_the_binary_runs_and_the_installed_package_is_the_one_tested():
    exe = oomguard.find_binary()
    done = subprocess.run([exe, "gpus", "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    if IN_CI:
        assert "OOMGUARD_BIN" not in os.environ
        assert os.path.dirname(exe) == sysconfig.get_path("scripts")
        assert "site-packages" in oomguard.__file__
        assert oomguard.__version__


def test_importing_the_package_imports_no_framework():
    code = (
        "import sys, oomguard, oomguard.integrations\n"
        "print([m for m in ('torch', 'transformers', 'lightning', 'pytorch_lightning') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_binary_loads_nvml_only_at_run_time():
    """No link to libnvidia-ml: the wheel runs on machines without a driver."""
    ldd = shutil.which("ldd")
    if ldd is None:
        assert not IN_CI, "ldd is needed in CI to check the binary's links"
        pytest.skip("no ldd to read the binary's links")
    done = subprocess.run([ldd, oomguard.find_binary()], capture_output=True, text=True, timeout=60)
    assert "nvidia-ml" not in done.stdout + done.stderr
    assert "libcuda" not in done.stdout + done.stderr
