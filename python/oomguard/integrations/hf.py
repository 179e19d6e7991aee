"""Hugging Face ``Trainer`` callback: takes the batch ``oomguard run`` chose,
journals the batch and each step's peak memory, and records the diagnosis
when training dies of an out-of-memory error.

Usage::

    guard = OomGuardCallback(journal="run.jsonl")
    args = guard.apply(TrainingArguments(...))     # before Trainer(...)
    trainer = Trainer(model=model, args=args, callbacks=[guard], ...)
    trainer.train()

``Trainer.__init__`` fixes its training batch size from the arguments before
any callback runs, so ``OOMGUARD_BATCH`` reaches the data loader only through
:meth:`OomGuardCallback.apply` called before the ``Trainer`` is created.
``OOMGUARD_ACCUM`` is also applied in ``on_init_end`` (the Trainer reads the
accumulation steps when training starts); when ``OOMGUARD_BATCH`` arrives only
there, a warning says the batch could not be changed, and the journal records
the batch the data loader really uses.

The Trainer has no exception hook, so the OOM record is written from
``sys.excepthook`` (installed for the duration of ``train()``; the previous
hook still prints the traceback) or by calling :meth:`record_exception`
from your own ``except`` block.
"""

from __future__ import annotations

import logging
import sys
from typing import Optional

from transformers import TrainerCallback

from .._journal import (
    Journal,
    batch_from_env,
    record_oom,
    start_memory_history,
    write_step,
    write_train_begin,
)

log = logging.getLogger("oomguard")


def _loader_batch_size(loader) -> Optional[int]:
    if loader is None:
        return None
    size = getattr(loader, "batch_size", None)
    if size is None:
        size = getattr(getattr(loader, "batch_sampler", None), "batch_size", None)
    return size if isinstance(size, int) else None


class OomGuardCallback(TrainerCallback):
    """``journal``: JSON-lines path (``OOMGUARD_JOURNAL`` wins when set).
    ``memory_snapshot``: on CUDA, a path for ``torch.cuda.memory._dump_snapshot``
    written at the OOM (memory history is recorded from the start of training).
    """

    def __init__(self, journal: Optional[str] = None, memory_snapshot: Optional[str] = None):
        self.journal = Journal(journal)
        self.memory_snapshot = memory_snapshot
        self.batch, self.accum = batch_from_env()
        self.batch_in_use: Optional[int] = None
        self.accum_in_use: Optional[int] = None
        self.step: Optional[int] = None
        self._previous_hook = None

    def apply(self, args):
        """Set ``per_device_train_batch_size`` and ``gradient_accumulation_steps``
        from ``OOMGUARD_BATCH``/``OOMGUARD_ACCUM`` (those set); returns ``args``."""
        if self.batch is not None:
            args.per_device_train_batch_size = self.batch
        if self.accum is not None:
            args.gradient_accumulation_steps = self.accum
        return args

    def on_init_end(self, args, state, control, **kwargs):
        if self.batch is not None and args.per_device_train_batch_size != self.batch:
            log.warning(
                "OOMGUARD_BATCH=%d arrived after the Trainer fixed its batch at %d: call "
                "OomGuardCallback.apply(training_args) before creating the Trainer",
                self.batch,
                args.per_device_train_batch_size,
            )
        if self.accum is not None:
            args.gradient_accumulation_steps = self.accum
        return control

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        self.batch_in_use = _loader_batch_size(train_dataloader) or args.per_device_train_batch_size
        self.accum_in_use = args.gradient_accumulation_steps
        self.step = state.global_step
        snapshot = bool(self.memory_snapshot) and start_memory_history()
        write_train_begin(
            self.journal,
            "transformers",
            self.batch_in_use,
            self.accum_in_use,
            self.batch,
            self.accum,
            snapshot,
        )
        self._install_hook()
        return control

    def on_step_end(self, args, state, control, **kwargs):
        self.step = state.global_step
        write_step(self.journal, state.global_step, self.batch_in_use, self.accum_in_use)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self._remove_hook()
        return control

    def record_exception(self, exc: BaseException) -> Optional[dict]:
        """Journal ``exc``'s diagnosis if it is an OOM; returns the EVENT or None."""
        return record_oom(
            self.journal, exc, self.batch_in_use, self.accum_in_use, self.step, self.memory_snapshot
        )

    def _install_hook(self) -> None:
        if self._previous_hook is not None:
            return
        previous = sys.excepthook

        def hook(exc_type, exc, tb):
            try:
                self.record_exception(exc)
            except Exception as e:  # the traceback must still be printed
                log.warning("oomguard could not record the error: %s", e)
            previous(exc_type, exc, tb)

        self._previous_hook = previous
        sys.excepthook = hook

    def _remove_hook(self) -> None:
        if self._previous_hook is not None:
            sys.excepthook = self._previous_hook
            self._previous_hook = None
