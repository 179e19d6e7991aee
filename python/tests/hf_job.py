"""A tiny randomly-initialised GPT-2 trained by the Hugging Face Trainer with
OomGuardCallback; no downloads (the model is built from a config here).

  python hf_job.py OUTDIR [LIMIT]   train 3 steps; with LIMIT (bytes), under
                                    an address-space limit (for the OOM test)
  python hf_job.py OUTDIR --measure print the run's VmPeak as JSON
"""

from __future__ import annotations

import json
import sys

import cpu_job

VOCAB, SEQ = 2048, 128


def main(argv):
    outdir = argv[0]
    measure = "--measure" in argv
    limit = int(argv[1]) if len(argv) > 1 and not measure else None

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

    from oomguard.integrations.hf import OomGuardCallback

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=SEQ, n_embd=32, n_layer=2, n_head=2))
    data = [
        {"input_ids": ids, "labels": ids}
        for ids in torch.randint(0, VOCAB, (512, SEQ), generator=torch.Generator().manual_seed(0))
    ]
    guard = OomGuardCallback()
    args = guard.apply(
        TrainingArguments(
            output_dir=outdir,
            max_steps=3,
            per_device_train_batch_size=2,
            report_to=[],
            use_cpu=True,
            save_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
    )
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[guard])
    if limit is not None:
        cpu_job.limit_address_space(limit)
    trainer.train()
    print(
        json.dumps(
            {
                "train_batch_size": trainer.state.train_batch_size,
                "accum": trainer.args.gradient_accumulation_steps,
                "vm_peak": cpu_job.vm_peak_bytes(),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
