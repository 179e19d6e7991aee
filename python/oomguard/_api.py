"""explain and plan: the binary's JSON as Python dicts."""

from __future__ import annotations

import traceback
from typing import Any, Optional, Union

from ._binary import DEFAULT_TIMEOUT_S, OomguardError, flag_args, run_json


def exception_text(exc: BaseException) -> str:
    """The text Python would print for ``exc``: traceback, chained causes, message."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def explain(
    text_or_exception: Union[str, bytes, BaseException],
    batch: Optional[int] = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Optional[dict]:
    """Diagnose an out-of-memory error: the first EVENT ``oomguard explain``
    finds, or None when the text holds no OOM.

    ``text_or_exception`` is a log, a traceback, or an exception object (its
    traceback is included, so the phase can be told). ``batch`` is the batch
    size of the failing run; the ``reduce_batch`` fix then names one that fits.
    Raises :class:`OomguardError` when the binary is missing or fails.
    """
    if isinstance(text_or_exception, BaseException):
        text = exception_text(text_or_exception)
    elif isinstance(text_or_exception, bytes):
        text = text_or_exception.decode("utf-8", "replace")
    elif isinstance(text_or_exception, str):
        text = text_or_exception
    else:
        raise TypeError(f"explain() takes a str, bytes or exception, not {type(text_or_exception).__name__}")
    args = ["explain", "-", "--json"]
    if batch is not None:
        args += ["--batch", str(_positive_int("batch", batch))]
    _, out = run_json(args, stdin=text, timeout=timeout, ok_codes=(0, 1))
    events = (out or {}).get("events") or []
    return events[0] if events else None


def plan(model: str, timeout: float = DEFAULT_TIMEOUT_S, **flags: Any) -> dict:
    """Memory plan for ``model`` (a path, a cached Hub id or a catalog name):
    ``oomguard plan MODEL --json`` with keyword arguments as flags.

    ``train=True`` -> ``--train``, ``grad_checkpointing=True`` ->
    ``--grad-checkpointing``, ``batch=4`` -> ``--batch 4``, ``gpu="a100-80gb"``
    -> ``--gpu a100-80gb``. Returns the JSON whether or not it fits (read
    ``fits``); raises :class:`OomguardError` on a usage or input error.
    """
    if not isinstance(model, str) or not model:
        raise TypeError("plan() needs the model as a non-empty string")
    _, out = run_json(["plan", model, "--json", *flag_args(flags)], timeout=timeout, ok_codes=(0, 1))
    if out is None:
        raise OomguardError(f"oomguard plan {model} printed nothing")
    return out


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")
    return value
