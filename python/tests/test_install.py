"""In CI the tests run against the installed wheel: its package and the
binary it put next to the interpreter."""

from __future__ import annotations

import os
import subprocess
import sysconfig

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
