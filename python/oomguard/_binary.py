"""Finding and calling the ``oomguard`` binary.

Every decision (is this text an out-of-memory error, which cause, which batch
fits) is made by the Rust binary; this module only locates it, runs it with
``--json`` under a timeout and decodes what it prints.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from typing import Optional, Sequence

#: Seconds any single call to the binary may take before it is abandoned.
#: ``explain`` on a traceback takes milliseconds; ``plan`` reads at most a
#: model's headers. The bound exists so a wedged child cannot hang training.
DEFAULT_TIMEOUT_S = 60.0

_EXE = "oomguard.exe" if os.name == "nt" else "oomguard"


class OomguardError(Exception):
    """The binary could not be found, timed out, or rejected its input.

    ``returncode`` is the binary's exit code (None when it did not run) and
    ``stderr`` its one-paragraph message.
    """

    def __init__(self, message: str, returncode: Optional[int] = None, stderr: str = ""):
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


def _candidates() -> list:
    """Where the binary may be, in the order they are tried."""
    found = []
    override = os.environ.get("OOMGUARD_BIN")
    if override:
        found.append(override)
    # What `pip install oomguard` puts next to the interpreter's scripts.
    for scheme in (None, f"{os.name}_user"):
        try:
            scripts = sysconfig.get_path("scripts", scheme) if scheme else sysconfig.get_path("scripts")
        except KeyError:
            continue
        if scripts:
            found.append(os.path.join(scripts, _EXE))
    found.append(os.path.join(os.path.dirname(sys.executable), _EXE))
    on_path = shutil.which("oomguard")
    if on_path:
        found.append(on_path)
    return found


def find_binary() -> str:
    """The path of the ``oomguard`` binary.

    ``OOMGUARD_BIN`` when set (an explicit choice wins), else the one the wheel
    installed into this interpreter's scripts directory, else the first
    ``oomguard`` on ``PATH``.
    """
    override = os.environ.get("OOMGUARD_BIN")
    if override and not (os.path.isfile(override) and os.access(override, os.X_OK)):
        raise OomguardError(f"OOMGUARD_BIN={override!r} is not an executable file")
    for path in _candidates():
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise OomguardError(
        "the oomguard binary was not found: install the wheel (pip install oomguard), "
        "put oomguard on PATH, or set OOMGUARD_BIN to its path"
    )


def run_json(
    args: Sequence[str],
    stdin: Optional[str] = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    ok_codes: Sequence[int] = (0,),
) -> tuple:
    """Run ``oomguard ARGS`` and return ``(exit_code, decoded JSON or None)``.

    Exit codes in ``ok_codes`` return the JSON printed on stdout (None when
    stdout is empty); any other code, a timeout or undecodable output raises
    :class:`OomguardError` carrying the binary's message.
    """
    exe = find_binary()
    try:
        done = subprocess.run(
            [exe, *args],
            input=(stdin if stdin is not None else "").encode("utf-8", "replace"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise OomguardError(f"oomguard {' '.join(args)} did not finish within {timeout:g} s") from e
    except OSError as e:
        raise OomguardError(f"cannot run {exe}: {e}") from e
    err = done.stderr.decode("utf-8", "replace").strip()
    if done.returncode not in ok_codes:
        raise OomguardError(
            err or f"oomguard {' '.join(args)} exited with code {done.returncode}",
            returncode=done.returncode,
            stderr=err,
        )
    out = done.stdout.decode("utf-8", "replace").strip()
    if not out:
        return done.returncode, None
    try:
        return done.returncode, json.loads(out)
    except ValueError as e:
        raise OomguardError(
            f"oomguard {' '.join(args)} printed output that is not JSON: {out[:200]!r}"
        ) from e


def flag_args(flags: dict) -> list:
    """Keyword arguments as command-line flags.

    ``train=True`` -> ``--train``; ``grad_checkpointing=True`` ->
    ``--grad-checkpointing``; ``batch=4`` -> ``--batch 4``. ``False`` and
    ``None`` leave the flag out, so a default stays the binary's own.
    """
    out: list = []
    for key, value in flags.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            out.append(flag)
        elif isinstance(value, (list, tuple)):
            for v in value:
                out.extend([flag, str(v)])
        else:
            out.extend([flag, str(value)])
    return out
