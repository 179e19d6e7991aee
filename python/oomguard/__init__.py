"""oomguard for Python: explain out-of-memory errors, plan memory, and retry
training with a batch size that fits.

The package is a thin layer over the ``oomguard`` binary that the wheel puts
on ``PATH``: every diagnosis and every batch-size decision comes from the
binary's ``--json`` output, so Python and the command line always agree.
PyTorch is optional: :func:`explain` and :func:`plan` work without it;
:func:`fit_batch` uses it only when the program has already imported it.
"""

from __future__ import annotations

from ._api import exception_text, explain, plan
from ._binary import OomguardError, find_binary
from ._fit import FitBatch, evaluation, fit_batch, is_oom

__all__ = [
    "OomguardError",
    "FitBatch",
    "evaluation",
    "exception_text",
    "explain",
    "find_binary",
    "fit_batch",
    "is_oom",
    "plan",
]

try:  # the version the wheel was built with
    from importlib.metadata import PackageNotFoundError, version

    try:
        __version__ = version("oomguard")
    except PackageNotFoundError:  # running from a source tree
        __version__ = None
except ImportError:  # pragma: no cover - Python without importlib.metadata
    __version__ = None
