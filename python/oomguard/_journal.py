"""What the framework callbacks share: the batch ``oomguard run`` chose (from
``OOMGUARD_BATCH``/``OOMGUARD_ACCUM``), the peak memory of the last step, the
JSON-lines journal, and the record written when training dies of an OOM.

Journal lines written from Python carry ``"kind"``: ``train_begin``, ``step``
or ``oom``, so they can share a file with ``oomguard run --journal`` (whose
lines carry ``attempt``).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import resource
import sys
from typing import Optional, Tuple

from ._api import exception_text, explain
from ._binary import OomguardError

log = logging.getLogger("oomguard")

#: Where the supervisor's choices arrive (set by ``oomguard run`` / ``tune``).
BATCH_ENV = "OOMGUARD_BATCH"
ACCUM_ENV = "OOMGUARD_ACCUM"
#: The journal path, when set, wins over the one given to a callback.
JOURNAL_ENV = "OOMGUARD_JOURNAL"


def _env_int(name: str) -> Optional[int]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if value < 1:
        raise ValueError(f"{name}={raw!r} must be at least 1")
    return value


def batch_from_env() -> Tuple[Optional[int], Optional[int]]:
    """``(OOMGUARD_BATCH, OOMGUARD_ACCUM)`` as ints, None where unset."""
    return _env_int(BATCH_ENV), _env_int(ACCUM_ENV)


def now_rfc3339() -> str:
    return (
        datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def step_peak_memory(reset: bool = True) -> Tuple[Optional[int], str]:
    """Peak memory and what it measures.

    On CUDA: ``torch.cuda.max_memory_reserved()`` since the last call (the
    peak statistics are reset after reading, so each step has its own), source
    ``cuda_max_memory_reserved``. Elsewhere: the process's peak resident set
    since it started (``getrusage().ru_maxrss``, which cannot be reset), source
    ``process_peak_rss``.
    """
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            peak = int(torch.cuda.max_memory_reserved())
            if reset:
                torch.cuda.reset_peak_memory_stats()
            return peak, "cuda_max_memory_reserved"
    except Exception as e:  # a broken driver must not stop training
        log.debug("cannot read CUDA memory statistics: %s", e)
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kibibytes, macOS bytes (getrusage(2) on each).
    return (maxrss if sys.platform == "darwin" else maxrss * 1024), "process_peak_rss"


class Journal:
    """Appends JSON lines to ``OOMGUARD_JOURNAL`` or the given path; a no-op
    without either. Each line is written and flushed on its own, so a crash
    loses nothing already written."""

    def __init__(self, path: Optional[str] = None):
        self.path = os.environ.get(JOURNAL_ENV) or path

    def write(self, record: dict) -> None:
        if not self.path:
            return
        line = json.dumps({"time": now_rfc3339(), "pid": os.getpid(), **record}, default=str)
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError as e:
            log.warning("cannot write the journal %s: %s", self.path, e)


def write_train_begin(
    journal: Journal, framework: str, batch, accum, env_batch, env_accum, snapshot: bool
) -> None:
    journal.write(
        {
            "kind": "train_begin",
            "framework": framework,
            "batch": batch,
            "accum": accum,
            "env_batch": env_batch,
            "env_accum": env_accum,
            "recording_snapshot": snapshot,
        }
    )
    log.info("training at batch %s x accumulation %s", batch, accum)


def write_step(journal: Journal, step: int, batch, accum, **extra) -> None:
    """One ``step`` line with the peak memory since the previous one."""
    peak, source = step_peak_memory()
    journal.write(
        {
            "kind": "step",
            "step": step,
            **extra,
            "batch": batch,
            "accum": accum,
            "peak_bytes": peak,
            "peak_source": source,
        }
    )


def start_memory_history() -> bool:
    """Start recording CUDA allocations for a snapshot; False without CUDA."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return False
    try:
        torch.cuda.memory._record_memory_history(max_entries=100_000)
        return True
    except Exception as e:
        log.warning("cannot record CUDA memory history: %s", e)
        return False


def dump_memory_snapshot(path: str) -> Optional[str]:
    """Write ``torch.cuda.memory._dump_snapshot(path)``; the path, or None
    without CUDA or on failure (said in the log)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        log.info("no memory snapshot: CUDA is not in use")
        return None
    try:
        torch.cuda.memory._dump_snapshot(path)
        return path
    except Exception as e:
        log.warning("cannot write the memory snapshot %s: %s", path, e)
        return None


def record_oom(
    journal: Journal,
    exc: BaseException,
    batch: Optional[int],
    accum: Optional[int],
    step: Optional[int],
    snapshot_path: Optional[str],
) -> Optional[dict]:
    """If ``exc`` is an OOM: write its diagnosis (and the snapshot, when asked)
    to the journal and log the best fix; return the EVENT. None otherwise."""
    from ._fit import is_oom

    try:
        event = explain(exception_text(exc), batch=batch)
    except OomguardError as e:
        log.warning("oomguard explain failed: %s", e)
        event = None
    if not is_oom(exc, event):
        return None
    snapshot = dump_memory_snapshot(snapshot_path) if snapshot_path else None
    first = (str(exc).strip().splitlines() or [""])[0]
    journal.write(
        {
            "kind": "oom",
            "batch": batch,
            "accum": accum,
            "step": step,
            "error": f"{type(exc).__name__}: {first}",
            "oom": event,
            "snapshot": snapshot,
        }
    )
    fixes = (event or {}).get("fixes") or []
    log.error(
        "out of memory at batch %s (step %s): %s",
        batch,
        step,
        fixes[0]["title"] if fixes else first,
    )
    return event
