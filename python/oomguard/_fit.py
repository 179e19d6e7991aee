"""``@fit_batch``: run a training function, and after an out-of-memory error
run it again with the batch size oomguard picks from the error's figures.

What counts as an OOM: ``torch.OutOfMemoryError`` (``torch.cuda.OutOfMemoryError``),
Python's ``MemoryError``, and any other ``RuntimeError`` whose text
``oomguard explain`` recognises as an out-of-memory event (CUDA, HIP, MPS, XPU,
``DefaultCPUAllocator: can't allocate memory``, cuBLAS/cuDNN allocation
failures, ...) and does not rank as "not really memory". Every other exception
propagates untouched: the same object, with its own traceback.

Evaluation OOMs are told apart so that only the evaluation batch shrinks. An
OOM is an evaluation OOM when any of these holds:

* it was raised inside ``with oomguard.evaluation():`` or a function decorated
  with ``@oomguard.evaluation``;
* the model was called inside ``with torch.no_grad():``,
  ``with torch.inference_mode():`` or ``with torch.set_grad_enabled(False):``,
  or from a function decorated with ``@torch.no_grad()``/``@torch.inference_mode()``
  (read from the traceback and the source after the fact: no cost while
  training; autograd turned off inside a module's forward or by PyTorch's own
  helpers, such as gradient clipping, does not count);
* ``oomguard explain`` reads the evaluation or generation phase from the
  traceback (``evaluate``, ``prediction_step``, ``validation_step``, ``generate``...).

The training function opts in to a separate evaluation batch by taking an
``eval_batch_size`` parameter; without one, an evaluation OOM shrinks
``batch_size`` (the only batch there is) and the log line says so.
"""

from __future__ import annotations

import ast
import functools
import gc
import inspect
import linecache
import logging
import os
import re
import sys
import traceback
from typing import Any, Callable, Optional

from ._api import exception_text, explain
from ._binary import DEFAULT_TIMEOUT_S, OomguardError

log = logging.getLogger("oomguard")

#: Used only when the binary names no batch (it is missing, or the error is a
#: bare ``MemoryError`` it has no event for): halve, the same rule the binary
#: applies when a message carries no memory figures.
FALLBACK_SHRINK = 0.5

# Local recognition of OOM texts, used only when the binary cannot be run.
# The phrases are those the frameworks print: PyTorch's CUDA/HIP/XPU caching
# allocators ("... out of memory. Tried to allocate"), its MPS backend ("MPS
# backend out of memory"), its CPU allocator (c10/core/impl/alloc_cpu.cpp,
# "DefaultCPUAllocator: can't allocate memory") and the CUDA runtime's
# cudaErrorMemoryAllocation ("CUDA error: out of memory").
_OOM_TEXT = re.compile(
    r"(?:CUDA|HIP|XPU) out of memory|MPS backend out of memory|"
    r"DefaultCPUAllocator: can't allocate memory|CUDA error: out of memory"
)

# A `with` item that turns autograd off: the code inside is evaluation.
_GRAD_OFF = re.compile(
    r"\b(?:no_grad|inference_mode)\s*\((?!\s*(?:mode\s*=\s*)?False\s*\))|set_grad_enabled\s*\(\s*(?:False|0)\s*\)"
)
# torch/utils/_contextlib.py renames the frame of a function decorated with
# @torch.no_grad() / @torch.inference_mode() after the context manager.
_GRAD_OFF_FRAMES = ("no_grad", "inference_mode")
# torch/nn/modules/module.py: the frames of calling an nn.Module.
_MODULE_CALL_FRAMES = ("_call_impl", "_wrapped_call_impl")

_EVAL_MARK = "__oomguard_evaluation__"


class _Evaluation:
    """Context manager marking evaluation code (see :func:`evaluation`)."""

    def __enter__(self) -> "_Evaluation":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is not None:
            try:
                setattr(exc, _EVAL_MARK, True)
            except (AttributeError, TypeError):  # an exception type with __slots__
                pass
        return False  # never swallow: the exception continues unchanged


def evaluation(fn: Optional[Callable] = None):
    """Mark evaluation code, so an OOM raised in it shrinks only the evaluation
    batch: ``with oomguard.evaluation(): ...`` or ``@oomguard.evaluation``.

    The mark is an attribute set on the exception as it leaves the block; it
    does not turn autograd off (combine with ``torch.no_grad()`` as usual).
    """
    if fn is None:
        return _Evaluation()
    if not callable(fn):
        raise TypeError("@oomguard.evaluation decorates a function")

    @functools.wraps(fn)
    def marked(*args, **kwargs):
        with _Evaluation():
            return fn(*args, **kwargs)

    return marked


def _torch_oom_types() -> tuple:
    """PyTorch's OOM exception classes, when the program has imported torch."""
    torch = sys.modules.get("torch")
    if torch is None:
        return ()
    types = []
    for owner, name in ((torch, "OutOfMemoryError"), (getattr(torch, "cuda", None), "OutOfMemoryError")):
        cls = getattr(owner, name, None) if owner is not None else None
        if isinstance(cls, type) and cls not in types:
            types.append(cls)
    return tuple(types)


def is_oom(exc: BaseException, event: Optional[dict] = None) -> bool:
    """Whether ``exc`` is an out-of-memory error (see the module's rules).

    ``event`` is what :func:`oomguard.explain` returned for it, when known;
    otherwise the binary is asked for RuntimeErrors whose type does not decide.
    """
    if isinstance(exc, MemoryError) or isinstance(exc, _torch_oom_types()):
        return True
    if not isinstance(exc, RuntimeError):
        return False
    if event is None:
        try:
            event = explain(exception_text(exc))
        except OomguardError as e:
            log.debug("oomguard explain unavailable (%s); recognising the text locally", e)
            return bool(_OOM_TEXT.search(str(exc)))
    return _event_is_memory(event)


def _event_is_memory(event: Optional[dict]) -> bool:
    if not event:
        return False
    causes = event.get("causes") or []
    return not (causes and causes[0].get("id") == "not_memory")


_with_ranges_cache: dict = {}


def _grad_off_ranges(filename: str) -> list:
    """Line ranges of ``with`` bodies that turn autograd off in a source file."""
    if filename in _with_ranges_cache:
        return _with_ranges_cache[filename]
    ranges = []
    source = "".join(linecache.getlines(filename))
    if source:
        try:
            tree = ast.parse(source, filename)
        except (SyntaxError, ValueError):
            tree = None
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, (ast.With, ast.AsyncWith)) and node.body:
                if any(_GRAD_OFF.search(ast.unparse(item.context_expr)) for item in node.items):
                    ranges.append((node.body[0].lineno, node.end_lineno or node.body[-1].lineno))
    _with_ranges_cache[filename] = ranges
    return ranges


def _torch_dir() -> Optional[str]:
    torch = sys.modules.get("torch")
    path = getattr(torch, "__file__", None) if torch is not None else None
    return os.path.dirname(path) + os.sep if path else None


def raised_with_grad_off(tb) -> bool:
    """Whether the failing step ran with autograd turned off by a ``with``
    block or a decorator around it (read from the source after the fact).

    Only what encloses the model call counts: frames are read from the
    outermost in, up to the first ``nn.Module`` call, and PyTorch's own uses
    of ``no_grad`` (gradient clipping, optimizer internals) are skipped. A
    module whose forward turns autograd off for a part (rotary embeddings)
    therefore does not make a training step look like evaluation.
    """
    torch_dir = _torch_dir()

    def in_torch(filename: str) -> bool:
        return bool(torch_dir) and filename.startswith(torch_dir)

    while tb is not None:
        code = tb.tb_frame.f_code
        filename = code.co_filename
        if code.co_name in _MODULE_CALL_FRAMES and in_torch(filename):
            return False  # inside the model: what follows is its own business
        if code.co_name in _GRAD_OFF_FRAMES and filename.endswith("_contextlib.py"):
            inner = tb.tb_next
            if inner is not None and not in_torch(inner.tb_frame.f_code.co_filename):
                return True
        elif not in_torch(filename):
            line = tb.tb_lineno
            if any(lo <= line <= hi for lo, hi in _grad_off_ranges(filename)):
                return True
        tb = tb.tb_next
    return False


def _marked_evaluation(exc: BaseException) -> bool:
    seen = set()
    e: Optional[BaseException] = exc
    while e is not None and id(e) not in seen:  # the mark may sit on a cause
        seen.add(id(e))
        if getattr(e, _EVAL_MARK, False):
            return True
        e = e.__cause__ or e.__context__
    return False


#: The fix ids whose code names the next batch size.
BATCH_FIXES = ("reduce_batch", "reduce_eval_batch")


def batch_from_event(event: Optional[dict]) -> Optional[int]:
    """The batch size the binary's ``reduce_batch`` (or, for an evaluation OOM,
    ``reduce_eval_batch``) fix names, or None.

    ``oomguard explain --batch N`` writes the batch that fits into the fix's
    code (``batch_size=K``); the title ("... to K") is read when there is no code.
    """
    for fix in (event or {}).get("fixes") or []:
        if fix.get("id") not in BATCH_FIXES:
            continue
        m = re.search(r"batch_size\s*=\s*(\d+)", fix.get("code") or "")
        if m is None:
            m = re.search(r"\bto (\d+)\b", fix.get("title") or "")
        if m is not None:
            return int(m.group(1))
    return None


def largest_divisor_at_most(n: int, limit: int) -> int:
    """The largest divisor of ``n`` that is at most ``limit`` (1 at least)."""
    for d in range(min(n, max(limit, 1)), 0, -1):
        if n % d == 0:
            return d
    return 1


def release_memory(exc: Optional[BaseException] = None) -> None:
    """Drop what a failed attempt left alive and return cached device memory.

    Clears the local variables of the frames in ``exc``'s traceback (they hold
    the failed step's tensors), collects garbage, and empties the CUDA/XPU/MPS
    caching allocator when PyTorch is in use.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        traceback.clear_frames(exc.__traceback__)
        exc = exc.__cause__ or exc.__context__
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()
        xpu = getattr(torch, "xpu", None)
        if xpu is not None and xpu.is_available():
            xpu.empty_cache()
        mps = getattr(torch, "mps", None)
        if mps is not None and torch.backends.mps.is_available():
            mps.empty_cache()
    except Exception as e:  # emptying a cache must never turn a retry into a crash
        log.debug("could not empty the device cache: %s", e)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


class _Failure:
    """What an OOM told: its event, whether it was evaluation, and the batch
    the binary names for the batch that failed."""

    __slots__ = ("event", "evaluation", "next_batch", "how")

    def __init__(self, event, evaluation, next_batch, how):
        self.event = event
        self.evaluation = evaluation
        self.next_batch = next_batch
        self.how = how


class FitBatch:
    """The function :func:`fit_batch` returns; see there.

    Attributes after a call: ``batch_size``, ``accum`` (and ``eval_batch_size``
    when the function takes one) hold the values of the last attempt, the
    successful one when the call returned; ``attempts`` lists every attempt as
    ``{"batch_size", "accum", "error"}`` (``error`` None for the success).
    """

    def __init__(
        self,
        fn: Callable,
        start: int,
        min_batch: int,
        global_batch: Optional[int],
        eval_start: Optional[int],
        timeout: float,
    ):
        functools.update_wrapper(self, fn)
        self._fn = fn
        self._min = min_batch
        self._global = global_batch
        self._timeout = timeout
        params = _parameters(fn)
        self._takes_accum = "accum" in params or params.get("**") is not None
        self._takes_eval = "eval_batch_size" in params
        if global_batch is not None and not self._takes_accum:
            raise TypeError(
                f"fit_batch(global_batch={global_batch}): {_name(fn)}() must take an `accum` "
                "parameter to receive the gradient-accumulation steps that keep the global batch"
            )
        if global_batch is not None:
            start = largest_divisor_at_most(global_batch, start)
            if start < min_batch:
                raise ValueError(
                    f"fit_batch: no divisor of global_batch={global_batch} lies between "
                    f"min={min_batch} and start"
                )
        self.batch_size: int = start
        self.accum: int = self._accum_for(start)
        self.eval_batch_size: Optional[int] = (eval_start or start) if self._takes_eval else None
        self.attempts: list = []

    def _accum_for(self, batch: int) -> int:
        return self._global // batch if self._global is not None else 1

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.attempts = []
        smallest_failed = {"train": None, "eval": None}
        while True:
            call = dict(kwargs)
            call["batch_size"] = self.batch_size
            if self._takes_accum:
                call["accum"] = self.accum
            if self._takes_eval:
                call["eval_batch_size"] = self.eval_batch_size
            record = {"batch_size": self.batch_size, "accum": self.accum, "error": None}
            if self._takes_eval:
                record["eval_batch_size"] = self.eval_batch_size
            self.attempts.append(record)
            try:
                return self._fn(*args, **call)
            except Exception as exc:
                failure = self._diagnose(exc)
                if failure is None:
                    raise  # not an OOM: the same exception, its traceback intact
                record["error"] = _first_line(exc)
                which = "eval" if (failure.evaluation and self._takes_eval) else "train"
                failed = self.eval_batch_size if which == "eval" else self.batch_size
                prior = smallest_failed[which]
                smallest_failed[which] = failed if prior is None else min(prior, failed)
                nxt = self._next(failed, smallest_failed[which], failure.next_batch, which)
                if nxt is None:
                    log.warning(
                        "OOM at %s; no smaller batch to try (min=%d): giving up",
                        self._describe(which),
                        self._min,
                    )
                    raise
                before = self._describe(which)
                if which == "eval":
                    self.eval_batch_size = nxt
                else:
                    self.batch_size = nxt
                    self.accum = self._accum_for(nxt)
                phase = "evaluation" if failure.evaluation else "training"
                note = ""
                if failure.evaluation and which == "train":
                    note = " (evaluation OOM; the function has no eval_batch_size, so the batch shrinks)"
                log.warning(
                    "OOM in %s at %s: %s; %s; retrying at %s%s",
                    phase,
                    before,
                    record["error"][:160],
                    failure.how,
                    self._describe(which),
                    note,
                )
                release_memory(exc)
                del exc, failure
            gc.collect()

    def _describe(self, which: str) -> str:
        if which == "eval":
            return f"eval batch {self.eval_batch_size}"
        return f"batch {self.batch_size} x accum {self.accum}"

    def _diagnose(self, exc: BaseException) -> Optional[_Failure]:
        """None when ``exc`` is not an OOM; else what to do about it."""
        typed = isinstance(exc, MemoryError) or isinstance(exc, _torch_oom_types())
        if not typed and not isinstance(exc, RuntimeError):
            return None
        evaluation = _marked_evaluation(exc) or raised_with_grad_off(exc.__traceback__)
        which_batch = self.eval_batch_size if (evaluation and self._takes_eval) else self.batch_size
        text = exception_text(exc)
        try:
            event = explain(text, batch=which_batch, timeout=self._timeout)
        except OomguardError as e:
            log.debug("oomguard explain failed (%s); recognising the text locally", e)
            if not typed and not _OOM_TEXT.search(str(exc)):
                return None
            return _Failure(None, evaluation, None, f"oomguard unavailable ({e}); halving")
        if not typed and not _event_is_memory(event):
            return None
        phase = (event or {}).get("phase")
        if not evaluation and phase in ("evaluation", "generation"):
            evaluation = True
            if self._takes_eval and self.eval_batch_size != which_batch:
                try:
                    event = explain(text, batch=self.eval_batch_size, timeout=self._timeout) or event
                except OomguardError:
                    pass
        nxt = batch_from_event(event)
        if nxt is not None:
            title = next(
                (f.get("title") for f in event.get("fixes") or [] if f.get("id") in BATCH_FIXES),
                "",
            )
            how = f"oomguard: {title}" if title else f"oomguard names batch {nxt}"
        elif event is None:
            how = "oomguard found no memory figures in the error; halving"
        else:
            how = "oomguard names no batch for this error; halving"
        return _Failure(event, evaluation, nxt, how)

    def _next(self, failed: int, smallest_failed: int, proposed: Optional[int], which: str) -> Optional[int]:
        """The next batch: oomguard's, else halved; always below every batch
        that failed, at least ``min``; a divisor of the global batch for training."""
        if failed <= self._min:
            return None
        if proposed is None:
            proposed = int(failed * FALLBACK_SHRINK)
        nxt = max(self._min, min(proposed, smallest_failed - 1, failed - 1))
        if which == "train" and self._global is not None:
            nxt = largest_divisor_at_most(self._global, nxt)
            if nxt < self._min:
                return None
        return nxt


def _name(fn: Callable) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _parameters(fn: Callable) -> dict:
    """Parameter names usable as keywords (``"**"`` for a **kwargs catch-all)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as e:
        raise TypeError(f"fit_batch: cannot read the parameters of {fn!r}: {e}") from None
    out = {}
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            out["**"] = p
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            out[p.name] = p
    if "batch_size" not in out:
        raise TypeError(
            f"fit_batch: {_name(fn)}() has no `batch_size` parameter; "
            "write it as `def train(batch_size, accum): ...` so the batch can be passed in"
        )
    return out


def fit_batch(
    start: int,
    min: int = 1,  # noqa: A002 - the name the API documents
    global_batch: Optional[int] = None,
    eval_start: Optional[int] = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Callable[[Callable], FitBatch]:
    """Decorate ``fn(batch_size, accum)`` so that calling it runs ``fn`` and,
    after each out-of-memory error, runs it again with the batch oomguard picks
    from the error's figures, until it returns (its result is returned) or the
    batch cannot shrink below ``min`` (the OOM is re-raised).

    ``global_batch``: keep ``batch_size * accum == global_batch`` exactly: the
    micro-batch is the largest divisor of ``global_batch`` that fits and
    ``accum = global_batch // batch_size``. ``eval_start``: the first
    evaluation batch when ``fn`` takes ``eval_batch_size`` (default ``start``).
    ``timeout``: seconds each call to the binary may take.

    Each retry is logged in one line on the ``oomguard`` logger. Between
    attempts the failed attempt's frames are cleared, garbage is collected and
    the device cache emptied. Exceptions that are not OOMs propagate unchanged.
    """
    if callable(start):
        raise TypeError("fit_batch needs the first batch size: write @fit_batch(start=N), with parentheses")
    for name, value in (
        ("start", start),
        ("min", min),
        ("global_batch", global_batch),
        ("eval_start", eval_start),
    ):
        if value is None and name in ("global_batch", "eval_start"):
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"fit_batch: {name} must be an int, not {type(value).__name__}")
        if value < 1:
            raise ValueError(f"fit_batch: {name} must be at least 1, not {value}")
    if min > start:
        raise ValueError(f"fit_batch: min={min} is above start={start}")

    def decorate(fn: Callable) -> FitBatch:
        if not callable(fn):
            raise TypeError(f"fit_batch decorates a function, not {type(fn).__name__}")
        return FitBatch(fn, start, min, global_batch, eval_start, timeout)

    return decorate
