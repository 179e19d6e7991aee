"""A small LightningModule trained with OomGuardCallback on the CPU.

python lightning_job.py [LIMIT]    fit 3 steps (under LIMIT bytes when given)
python lightning_job.py --measure  print the run's VmPeak as JSON
"""

from __future__ import annotations

import json
import sys

import cpu_job


def main(argv):
    measure = "--measure" in argv
    limit = int(argv[0]) if argv and not measure else None

    import torch
    from torch.utils.data import DataLoader, TensorDataset

    try:
        import lightning.pytorch as pl
    except ImportError:
        import pytorch_lightning as pl

    from oomguard.integrations.lightning import OomGuardCallback

    torch.set_num_threads(1)

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.batch_size = 2
            self.net = cpu_job.make_model()

        def training_step(self, batch, batch_idx):
            (x,) = batch
            return self.net(x).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=1e-3)

        def train_dataloader(self):
            x = torch.randn(256, cpu_job.SEQ, cpu_job.WIDTH, generator=torch.Generator().manual_seed(0))
            return DataLoader(TensorDataset(x), batch_size=self.batch_size)

    module = Module()
    trainer = pl.Trainer(
        max_steps=3,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[OomGuardCallback()],
    )
    if limit is not None:
        cpu_job.limit_address_space(limit)
    trainer.fit(module)
    print(
        json.dumps(
            {
                "batch_size": module.batch_size,
                "accum": trainer.accumulate_grad_batches,
                "vm_peak": cpu_job.vm_peak_bytes(),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
