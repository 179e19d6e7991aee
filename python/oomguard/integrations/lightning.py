"""Lightning callback: takes the batch ``oomguard run`` chose, journals the
batch and each step's peak memory, and records the diagnosis when training
dies of an out-of-memory error (Lightning's ``on_exception`` hook).

Usage::

    trainer = Trainer(callbacks=[OomGuardCallback(journal="run.jsonl")], ...)
    trainer.fit(model, datamodule=dm)

``OOMGUARD_BATCH`` is written in ``setup`` (before the data loaders are built)
to the attribute ``batch_arg_name`` (default ``batch_size``) of the
LightningModule, its ``hparams`` or the DataModule, wherever it is found, as
Lightning's own batch-size finder does; the data loaders must read it from
there. ``OOMGUARD_ACCUM`` sets ``trainer.accumulate_grad_batches``. Works with
``lightning`` and with the older ``pytorch_lightning`` package.
"""

from __future__ import annotations

from typing import Optional

try:
    from lightning.pytorch import Callback
    from lightning.pytorch.utilities.parsing import lightning_getattr, lightning_hasattr, lightning_setattr
except ImportError:  # the package's name before Lightning 2.0
    from pytorch_lightning import Callback
    from pytorch_lightning.utilities.parsing import lightning_getattr, lightning_hasattr, lightning_setattr

from .._journal import (
    Journal,
    batch_from_env,
    record_oom,
    start_memory_history,
    write_step,
    write_train_begin,
)


class OomGuardCallback(Callback):
    """``journal``: JSON-lines path (``OOMGUARD_JOURNAL`` wins when set).
    ``memory_snapshot``: on CUDA, a path for ``torch.cuda.memory._dump_snapshot``
    written at the OOM. ``batch_arg_name``: where the batch size lives.
    """

    def __init__(
        self,
        journal: Optional[str] = None,
        memory_snapshot: Optional[str] = None,
        batch_arg_name: str = "batch_size",
    ):
        self.journal = Journal(journal)
        self.memory_snapshot = memory_snapshot
        self.batch_arg_name = batch_arg_name
        self.batch, self.accum = batch_from_env()
        self.batch_in_use: Optional[int] = None
        self.accum_in_use: Optional[int] = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        if self.batch is not None:
            if not lightning_hasattr(pl_module, self.batch_arg_name):
                raise AttributeError(
                    f"OOMGUARD_BATCH={self.batch} is set but neither the LightningModule, its hparams "
                    f"nor the DataModule has `{self.batch_arg_name}`: give OomGuardCallback the "
                    "batch_arg_name your data loaders read"
                )
            lightning_setattr(pl_module, self.batch_arg_name, self.batch)
        if self.accum is not None:
            trainer.accumulate_grad_batches = self.accum

    def on_train_start(self, trainer, pl_module) -> None:
        self.batch_in_use = (
            lightning_getattr(pl_module, self.batch_arg_name)
            if lightning_hasattr(pl_module, self.batch_arg_name)
            else None
        )
        self.accum_in_use = trainer.accumulate_grad_batches
        snapshot = bool(self.memory_snapshot) and start_memory_history()
        write_train_begin(
            self.journal, "lightning", self.batch_in_use, self.accum_in_use, self.batch, self.accum, snapshot
        )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        write_step(
            self.journal, trainer.global_step, self.batch_in_use, self.accum_in_use, batch_idx=batch_idx
        )

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        record_oom(
            self.journal,
            exception,
            self.batch_in_use,
            self.accum_in_use,
            trainer.global_step,
            self.memory_snapshot,
        )
