//! Fixes for the ranked causes, with concrete values: the batch size that fits
//! the figures, the allocator variable spelled as that PyTorch version reads
//! it, the pid to stop, vLLM's `gpu_memory_utilization` and `max_model_len`,
//! TensorFlow's memory growth, JAX's preallocation, llama.cpp's offloaded
//! layers, SGLang's `--mem-fraction-static`, a Triton kernel configuration
//! that fits the GPU's shared memory, and what to do when accelerate's
//! batch-size finder reached zero (never a smaller batch for those two).

use super::accounting::Accounting;
use super::causes::ManagedHeap;
use super::next_batch::{next_batch, BatchFigures, Caution};
use super::{Cause, CauseId, DiagnoseContext, Fix, FixId};
use crate::oom::{
    DeviceKind, Framework, MemoryLimit, OomEvent, Phase, PyTorchEra, ServingEngine, SglangCheck,
    SharedMemoryLimit, VllmCheck,
};
use crate::size::format_size as fs;
use regex::Regex;
use std::collections::BTreeMap;
use std::sync::LazyLock;

fn env1(k: &str, v: &str) -> Option<BTreeMap<String, String>> {
    Some(BTreeMap::from([(k.to_string(), v.to_string())]))
}

fn fix(
    id: FixId,
    title: impl Into<String>,
    detail: impl Into<String>,
    code: Option<String>,
) -> Fix {
    Fix {
        id,
        title: title.into(),
        detail: detail.into(),
        code,
        env: None,
    }
}

/// The batch one more run by hand may take: the next-batch rule with the
/// caution of one more run; `None` without the figures.
fn batch_that_fits(event: &OomEvent, acc: &Accounting, batch: u64) -> Option<u64> {
    next_batch(event, acc, batch, Caution::OneMoreRun).map(|n| n.batch)
}

pub(super) fn propose(
    event: &OomEvent,
    acc: &Accounting,
    causes: &[Cause],
    ctx: &DiagnoseContext,
) -> (Vec<Fix>, Option<u64>) {
    let mut fixes: Vec<Fix> = Vec::new();
    let mut suggested = None;
    for cause in causes {
        let new = match cause.id {
            CauseId::BatchTooLarge if event.phase == Phase::Evaluation => {
                let (f, s) = reduce_eval_batch(event, acc, ctx);
                suggested = suggested.or(s);
                f
            }
            CauseId::BatchTooLarge => {
                let (f, s) = reduce_batch(event, acc, ctx);
                suggested = suggested.or(s);
                f
            }
            CauseId::Fragmentation => fragmentation(event),
            CauseId::OtherProcesses => other_processes(event, acc),
            CauseId::ModelTooLarge => model_too_large(event),
            CauseId::NonFrameworkMemory => non_framework(event),
            CauseId::MemoryCap => memory_cap(event),
            CauseId::KvCache => kv_cache(event),
            CauseId::LeftoverTensors => leftovers(event),
            CauseId::MultipleModels => vec![fix(
                FixId::OneModelPerDevice,
                "Load one model per GPU, or free the previous one",
                "Delete the previous model and clear the cache before loading the next, or place each model on its own device.",
                Some("del old_model\nimport gc; gc.collect()\ntorch.cuda.empty_cache()".into()),
            )],
            CauseId::HostMemory => host_memory(event),
            CauseId::InvalidSize => invalid_size(event),
            CauseId::NotMemory => not_memory(event),
        };
        for f in new {
            if !fixes.iter().any(|g| g.id == f.id) {
                fixes.push(f);
            }
        }
    }
    // Each framework's classic remedy, when the causes did not bring it.
    let classic = match event.framework {
        Framework::Jax => jax_prealloc(),
        Framework::TensorFlow => tf_memory_growth(),
        _ => Vec::new(),
    };
    for f in classic {
        if !fixes.iter().any(|g| g.id == f.id) {
            fixes.push(f);
        }
    }
    // vLLM's sampler/pooler warm-up runs max_num_seqs dummy requests at
    // once: that is the batch to lower; training and loading knobs do not
    // apply to a serving engine, another process on the GPU still may.
    if let Some(seqs) = warmup_requests(&event.message) {
        fixes.retain(|f| f.id == FixId::StopOtherProcess);
        fixes.insert(0, vllm_max_num_seqs(seqs));
    }
    // TGI's batch and KV cache are its launcher's token budgets: a training
    // loader's batch size or a `generate` call do not apply.
    if served_by_tgi(event)
        && causes
            .iter()
            .any(|c| matches!(c.id, CauseId::BatchTooLarge | CauseId::KvCache))
    {
        fixes.retain(|f| !FOR_TRAINING_OR_LIBRARY_USE.contains(&f.id));
        fixes.insert(0, tgi_token_budget());
    }
    // The step's own temporaries come before a smaller batch, which does not
    // shrink them: right after the first fix.
    if event.framework == Framework::PyTorch && event.phase == Phase::OptimizerStep {
        for f in fused_optimizer() {
            if !fixes.iter().any(|g| g.id == f.id) {
                fixes.insert(fixes.len().min(1), f);
            }
        }
    }
    (fixes, suggested)
}

fn reduce_batch(
    event: &OomEvent,
    acc: &Accounting,
    ctx: &DiagnoseContext,
) -> (Vec<Fix>, Option<u64>) {
    let mut out = Vec::new();
    let fitting = ctx
        .batch
        .and_then(|b| batch_that_fits(event, acc, b).map(|n| (b, n)));
    let suggested = match (ctx.batch, fitting) {
        (_, Some((b, n))) => {
            // Same effective batch: the fewest accumulation steps whose
            // micro-batch fits.
            let accum = b.div_ceil(n);
            let micro = b.div_ceil(accum);
            let m = &event.memory;
            let detail = format!(
                "At batch {b} the framework needed at least {} (live tensors {} + the failed request {}) and could use at most {} (what it held + what was free). Batch {n} scales that need to {:.0}% of what it could use, leaving room for the weights, which do not shrink with the batch. To keep the effective batch of {b}: {micro} x {accum} accumulation steps.",
                fs(m.allocated_bytes.unwrap_or(0) + m.requested_bytes.unwrap_or(0)),
                fs(m.allocated_bytes.unwrap_or(0)),
                fs(m.requested_bytes.unwrap_or(0)),
                fs(acc.framework_budget.unwrap_or(0)),
                Caution::OneMoreRun.share() * 100.0,
            );
            let code = format!(
                "loader = DataLoader(dataset, batch_size={n})\n# same effective batch with the Hugging Face Trainer:\nTrainingArguments(per_device_train_batch_size={micro}, gradient_accumulation_steps={accum})"
            );
            let code = if matches!(event.framework, Framework::TensorFlow | Framework::Jax) {
                batch_code(event, n, accum)
            } else {
                code
            };
            out.push(fix(
                FixId::ReduceBatch,
                format!("Reduce the batch from {b} to {n}"),
                detail,
                Some(code),
            ));
            Some(n)
        }
        (Some(b), None) => {
            let n = (b / 2).max(1);
            out.push(fix(
                FixId::ReduceBatch,
                format!("Halve the batch from {b} to {n}"),
                "The message does not give the figures to size the batch exactly; halve it and keep the effective batch with gradient accumulation.",
                Some(batch_code(event, n, b.div_ceil(n))),
            ));
            Some(n)
        }
        (None, _) => {
            let ratio = BatchFigures::of(event, acc)
                .map(|f| f.usable_bytes as f64 / f.need_bytes as f64 * Caution::OneMoreRun.share());
            let detail = match ratio {
                Some(r) if r < 1.0 => format!(
                    "The figures say the batch must shrink to about {:.0}% of its current size (pass --batch N for an exact number); keep the effective batch with gradient accumulation.",
                    r * 100.0
                ),
                _ => "Pass --batch N (the failing batch size) for a size computed from the figures; keep the effective batch with gradient accumulation.".into(),
            };
            out.push(fix(
                FixId::ReduceBatch,
                "Reduce the batch size",
                detail,
                Some(batch_code(event, 0, 0)),
            ));
            None
        }
    };
    if matches!(event.framework, Framework::PyTorch) && event.phase != Phase::Generation {
        out.push(fix(
            FixId::MixedPrecisionCheckpointing,
            "Use bf16/fp16 activations and gradient checkpointing",
            "Autocast halves activation memory; checkpointing keeps only layer boundaries and recomputes the rest in the backward pass (about 30% more compute).",
            Some("model.gradient_checkpointing_enable()  # Hugging Face models\nwith torch.autocast('cuda', dtype=torch.bfloat16):\n    loss = model(**batch).loss\n# Hugging Face Trainer:\nTrainingArguments(gradient_checkpointing=True, bf16=True)".into()),
        ));
    }
    (out, suggested)
}

/// An OOM while evaluating: the evaluation batch and the predictions the
/// Trainer keeps on the GPU until the end of the loop are what grow, not the
/// training batch.
fn reduce_eval_batch(
    event: &OomEvent,
    acc: &Accounting,
    ctx: &DiagnoseContext,
) -> (Vec<Fix>, Option<u64>) {
    let fitting = ctx.batch.and_then(|b| batch_that_fits(event, acc, b));
    let n = fitting.or(ctx.batch.map(|b| (b / 2).max(1)));
    let shown = n.map_or("N".to_string(), |n| n.to_string());
    let detail = match (ctx.batch, fitting) {
        (Some(b), Some(n)) => format!("At evaluation batch {b} the figures leave room for {n} ({:.0}% of what the framework could use). ", Caution::OneMoreRun.share() * 100.0),
        (Some(b), None) => format!("Without the figures to size it, halve the evaluation batch from {b}. "),
        _ => String::new(),
    };
    let f = fix(
        FixId::ReduceEvalBatch,
        format!("Lower the evaluation batch (per_device_eval_batch_size={shown}) and move predictions to the CPU as they come"),
        format!("{detail}The training batch is not what failed. The Trainer keeps every prediction on the GPU until the evaluation loop ends unless eval_accumulation_steps is set; with it, they go to the CPU every that many steps."),
        Some(format!("TrainingArguments(per_device_eval_batch_size={shown}, eval_accumulation_steps=8)\n# own loop: with torch.no_grad(): preds.append(model(**batch).logits.cpu())")),
    );
    (vec![f], n)
}

/// vLLM's warm-up failure (gpu_model_runner.py `_dummy_sampler_run` /
/// `_dummy_pooler_run`): "CUDA out of memory occurred when warming up sampler
/// with N dummy requests", N being `max_num_seqs`.
static WARMUP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"out of memory occurred when warming up (?:sampler|pooler) with (\d+) dummy requests",
    )
    .expect("warm-up pattern compiles")
});

/// The dummy requests of a failed vLLM warm-up, from its message.
fn warmup_requests(message: &str) -> Option<u64> {
    WARMUP.captures(message)?.get(1)?.as_str().parse().ok()
}

/// Fixes written for a training loop or a library call (a loader's batch,
/// mixed precision, `generate`'s arguments), which a server's user cannot
/// apply.
const FOR_TRAINING_OR_LIBRARY_USE: [FixId; 5] = [
    FixId::ReduceBatch,
    FixId::ReduceEvalBatch,
    FixId::MixedPrecisionCheckpointing,
    FixId::ShorterGeneration,
    FixId::TruncateSequences,
];

/// The failure is TGI's: its launcher or server named around it, or its own
/// warm-up message naming its budgets.
fn served_by_tgi(event: &OomEvent) -> bool {
    event.facts.serving_engine == Some(ServingEngine::Tgi)
        || event.message.contains("--max-batch-prefill-tokens")
        || event.message.contains("--max-batch-total-tokens")
}

fn tgi_token_budget() -> Fix {
    fix(
        FixId::TgiTokenBudget,
        "Set TGI's token budgets explicitly",
        "TGI's warm-up runs one prefill of --max-batch-prefill-tokens and then sizes the KV cache for --max-batch-total-tokens (from the memory left when unset). Lower the prefill budget (and --max-input-tokens with it), and give the total budget a value that fits next to the weights; a quantized model (--quantize) or more shards (--num-shard) leave more for both.",
        Some("text-generation-launcher --model-id MODEL --max-input-tokens 2048 --max-total-tokens 4096 --max-batch-prefill-tokens 4096 --max-batch-total-tokens 16384".into()),
    )
}

fn vllm_max_num_seqs(seqs: u64) -> Fix {
    let half = (seqs / 2).max(1);
    fix(
        FixId::VllmMaxNumSeqs,
        format!("Lower --max-num-seqs from {seqs} to {half}"),
        format!("The warm-up runs the sampler on {seqs} sequences at once (max_num_seqs) in what the KV cache left; halve it until it starts, or lower --gpu-memory-utilization to leave more outside the cache."),
        Some(format!("vllm serve MODEL --max-num-seqs {half}")),
    )
}

/// PyTorch's default `foreach` optimizers update every parameter of a group
/// at once and allocate temporaries the size of a whole state list
/// (`torch._foreach_sqrt(exp_avg_sqs)` in `_multi_tensor_adamw`); the fused
/// kernel, or the per-parameter loop, needs none of that.
fn fused_optimizer() -> Vec<Fix> {
    vec![fix(
        FixId::FusedOptimizer,
        "Use the fused optimizer (or foreach=False) so the step needs no group-sized temporaries",
        "The default multi-tensor (foreach) Adam/AdamW allocates intermediates as large as one of its state lists for the whole parameter group; fused=True updates in one kernel without them, foreach=False one parameter at a time.",
        Some("torch.optim.AdamW(model.parameters(), lr=lr, fused=True)\n# or: torch.optim.AdamW(model.parameters(), lr=lr, foreach=False)\n# Hugging Face Trainer: TrainingArguments(optim='adamw_torch_fused')".into()),
    )]
}

fn batch_code(event: &OomEvent, n: u64, accum: u64) -> String {
    let (n, accum) = if n == 0 {
        ("N".to_string(), "K".to_string())
    } else {
        (n.to_string(), accum.to_string())
    };
    match event.framework {
        Framework::TensorFlow => format!("model.fit(x, y, batch_size={n})"),
        Framework::Jax => format!("batch_size = {n}  # and accumulate gradients over {accum} steps (optax.MultiSteps)"),
        _ => format!(
            "loader = DataLoader(dataset, batch_size={n})\n# Hugging Face Trainer:\nTrainingArguments(per_device_train_batch_size={n}, gradient_accumulation_steps={accum})"
        ),
    }
}

fn alloc_var(event: &OomEvent) -> String {
    if let Some(v) = &event.facts.alloc_conf_var {
        return v.clone();
    }
    if event.device.kind == DeviceKind::Rocm {
        "PYTORCH_HIP_ALLOC_CONF".into()
    } else {
        "PYTORCH_CUDA_ALLOC_CONF".into()
    }
}

fn fragmentation(event: &OomEvent) -> Vec<Fix> {
    let var = alloc_var(event);
    match event.framework {
        Framework::PyTorch => match event.facts.pytorch_era {
            Some(PyTorchEra::Cached | PyTorchEra::ReservedInTotal) => vec![fix(
                FixId::UpgradePytorch,
                "Upgrade PyTorch (1.10 or later) to tune the allocator",
                "This PyTorch predates PYTORCH_CUDA_ALLOC_CONF; meanwhile free the cache between phases with torch.cuda.empty_cache().",
                Some("torch.cuda.empty_cache()".into()),
            )],
            Some(PyTorchEra::MaxSplitHint) => {
                let mb = split_size_mb(event.memory.requested_bytes);
                let value = format!("max_split_size_mb:{mb}");
                let mut f = fix(
                    FixId::AllocatorConfig,
                    format!("Set {var}={value}"),
                    format!("Blocks above {mb} MiB are then never split, so large requests find whole blocks; this PyTorch (1.10-2.0) has no expandable segments."),
                    Some(format!("export {var}={value}")),
                );
                f.env = env1(&var, &value);
                vec![f]
            }
            _ => {
                let value = "expandable_segments:True";
                let mut f = fix(
                    FixId::AllocatorConfig,
                    format!("Set {var}={value}"),
                    "Segments then grow in place instead of leaving holes between fixed-size blocks; set it before the first CUDA allocation (PyTorch 2.1+).",
                    Some(format!("export {var}={value}")),
                );
                f.env = env1(&var, value);
                vec![f]
            }
        },
        Framework::TensorFlow => {
            let mut f = fix(
                FixId::AllocatorConfig,
                "Use the CUDA async allocator",
                "TF_GPU_ALLOCATOR=cuda_malloc_async lets the driver manage fragmentation.",
                Some("export TF_GPU_ALLOCATOR=cuda_malloc_async".into()),
            );
            f.env = env1("TF_GPU_ALLOCATOR", "cuda_malloc_async");
            vec![f]
        }
        _ => vec![fix(
            FixId::FreeCache,
            "Release cached blocks between phases",
            "Free memory the framework caches but does not use, between evaluation and training or between models.",
            None,
        )],
    }
}

/// A `max_split_size_mb` just above the request, so a block of that size is
/// kept whole: the request in MiB rounded up to a power of two, 128 to 1024.
fn split_size_mb(requested: Option<u64>) -> u64 {
    let mib = requested.map_or(128, |q| q.div_ceil(1 << 20));
    mib.next_power_of_two().clamp(128, 1024)
}

fn other_processes(event: &OomEvent, acc: &Accounting) -> Vec<Fix> {
    let target = acc.others.iter().max_by_key(|p| p.bytes);
    let (title, code) = match target {
        Some(p) => (
            format!("Stop process {} ({} on the device)", p.pid, fs(p.bytes)),
            format!("nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv\nkill {}   # after checking it is yours and idle", p.pid),
        ),
        None => (
            "Find and stop the other processes on the GPU".to_string(),
            "nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv\n# a Jupyter kernel or a crashed run that still holds memory is the usual culprit".to_string(),
        ),
    };
    let mut out = vec![fix(
        FixId::StopOtherProcess,
        title,
        "Memory another process holds is invisible to this one's allocator; stop it, or pin each job to its own GPU with CUDA_VISIBLE_DEVICES.",
        Some(code),
    )];
    if matches!(event.framework, Framework::Vllm) {
        out.extend(vllm_utilization(event));
    }
    out
}

fn model_too_large(event: &OomEvent) -> Vec<Fix> {
    if event.facts.sglang().is_some() {
        return sglang_shard_or_quantize();
    }
    if event.facts.batch_search_exhausted() {
        return fit_model_for_training();
    }
    if event.facts.context.for_checkpoint {
        return vec![save_state_on_cpu()];
    }
    match event.framework {
        Framework::LlamaCpp => llama_layers(event),
        Framework::Vllm => {
            let mut v = vec![fix(
                FixId::ShardOrQuantize,
                "Shard across GPUs or load a quantized checkpoint",
                "Tensor parallelism splits the weights; an AWQ/GPTQ/FP8 checkpoint needs a half or a quarter of the memory.",
                Some("vllm serve MODEL --tensor-parallel-size 2\nvllm serve MODEL --quantization fp8".into()),
            )];
            v.extend(vllm_utilization(event));
            v
        }
        _ if event.phase == Phase::OptimizerStep => vec![fix(
            FixId::LighterOptimizer,
            "Use an 8-bit optimizer or LoRA, or shard optimizer states",
            "AdamW keeps 8 bytes of state per parameter; 8-bit AdamW keeps 2, LoRA trains a fraction of the parameters, ZeRO/FSDP split states across GPUs.",
            Some("TrainingArguments(optim='adamw_bnb_8bit')  # bitsandbytes\n# or LoRA: peft.get_peft_model(model, LoraConfig(r=16, target_modules='all-linear'))".into()),
        )],
        _ => vec![fix(
            FixId::ShardOrQuantize,
            "Load in half precision or quantized, or shard the model",
            "bf16/fp16 halves the weights, 8-bit quarters fp32, 4-bit NF4 takes an eighth; device_map='auto' spreads layers over GPUs and CPU.",
            Some("from transformers import AutoModelForCausalLM, BitsAndBytesConfig\nmodel = AutoModelForCausalLM.from_pretrained(\n    name, torch_dtype=torch.bfloat16, device_map='auto',\n    quantization_config=BitsAndBytesConfig(load_in_4bit=True))".into()),
        )],
    }
}

fn non_framework(event: &OomEvent) -> Vec<Fix> {
    match event.framework {
        Framework::TensorFlow | Framework::Cudnn if event.message.contains("handle") || event.framework == Framework::TensorFlow => {
            tf_memory_growth()
        }
        Framework::Jax => jax_prealloc(),
        Framework::Vllm => vllm_utilization(event),
        Framework::Nccl => {
            let mut f = fix(
                FixId::NcclBuffers,
                "Leave room for NCCL, or shrink its buffers",
                "NCCL allocates its buffers outside the framework's cache; a smaller NCCL_BUFFSIZE or fewer channels lower it.",
                Some("export NCCL_BUFFSIZE=2097152".into()),
            );
            f.env = env1("NCCL_BUFFSIZE", "2097152");
            vec![f]
        }
        Framework::PyTorch if event.device.kind == DeviceKind::Mps => memory_cap(event),
        _ => vec![fix(
            FixId::LeaveHeadroom,
            "Leave headroom for memory outside the framework",
            "The CUDA context, cuBLAS/cuDNN workspaces and any second framework in the process live outside the allocator's figures; cap the framework (torch.cuda.set_per_process_memory_fraction) or release its cache before library-heavy calls.",
            Some("torch.cuda.empty_cache()\n# keep one framework per process; set TF_FORCE_GPU_ALLOW_GROWTH=true if TensorFlow shares it".into()),
        )],
    }
}

fn memory_cap(event: &OomEvent) -> Vec<Fix> {
    if let Some(check) = event.facts.sglang() {
        return sglang_mem_fraction(check);
    }
    if event.device.kind == DeviceKind::Mps {
        let mut f = fix(
            FixId::RaiseMpsWatermark,
            "Raise the MPS high-watermark (with care)",
            "PYTORCH_MPS_HIGH_WATERMARK_RATIO caps MPS memory as a share of the recommended maximum; 0.0 removes the cap and may make the system swap or hang.",
            Some("export PYTORCH_MPS_HIGH_WATERMARK_RATIO=0.0".into()),
        );
        f.env = env1("PYTORCH_MPS_HIGH_WATERMARK_RATIO", "0.0");
        return vec![f];
    }
    if let Some(limit) = host_limit(event) {
        return vec![limit];
    }
    if event.facts.locked_memory() {
        return vec![fix(
            FixId::RaiseMemoryLimit,
            "Raise the locked-memory limit (ulimit -l)",
            "Buffers registered with the network card are pinned, and pinned pages count against RLIMIT_MEMLOCK, which is often a few MB. Set memlock to unlimited for the user in /etc/security/limits.conf (a new login or a reboot applies it; check it under the launcher), or pass it to the container.",
            Some("* soft memlock unlimited   # /etc/security/limits.conf\n* hard memlock unlimited\ndocker run --ulimit memlock=-1 ...\nmpirun -np 2 bash -c 'ulimit -l'".into()),
        )];
    }
    if let Some(heap) = runtime_heap_limit(event) {
        return vec![heap];
    }
    match event.framework {
        Framework::Vllm => vllm_utilization(event),
        Framework::Jax => jax_prealloc(),
        Framework::OnnxRuntime => vec![fix(
            FixId::RaiseArenaLimit,
            "Raise the limit of ONNX Runtime's arena",
            "The session gave its arena a limit (the CUDA provider's gpu_mem_limit, OrtArenaCfg's max_mem) and the arena reached it; raise it, or let the arena grow by what each request needs (kSameAsRequested) instead of doubling.",
            Some("providers=[(\"CUDAExecutionProvider\", {\"gpu_mem_limit\": 8 * 1024**3, \"arena_extend_strategy\": \"kSameAsRequested\"})]".into()),
        )],
        _ if event.device.kind == DeviceKind::Xpu => vec![fix(
            FixId::SplitAllocation,
            "Split the tensor, or allow large allocations on the XPU",
            "Intel's driver limits a single allocation; split the operation into chunks (smaller batch or sequence), or use a driver and PyTorch that enable large allocations.",
            None,
        )],
        _ if event.memory.allowed_bytes.is_some() => vec![fix(
            FixId::RaiseMemoryFraction,
            "Raise or remove the per-process memory fraction",
            format!(
                "torch.cuda.set_per_process_memory_fraction caps this process at {}.",
                fs(event.memory.allowed_bytes.unwrap_or(0))
            ),
            Some("torch.cuda.set_per_process_memory_fraction(0.95)".into()),
        )],
        _ => vec![fix(
            FixId::CheckLimits,
            "Check per-allocation and driver limits",
            "The request fitted the free memory; look for a memory fraction, a MIG slice or a driver limit, and retry after torch.cuda.empty_cache().",
            None,
        )],
    }
}

/// The heap limit of the managed runtime the message names: the JVM's
/// (`-Xmx`; Spark's `spark.driver.memory` / `spark.executor.memory`) or
/// V8's (`--max-old-space-size`, in MiB).
fn runtime_heap_limit(event: &OomEvent) -> Option<Fix> {
    Some(match super::causes::managed_heap(&event.message)? {
        ManagedHeap::V8 => fix(
            FixId::RaiseHeapLimit,
            "Raise V8's heap limit",
            "Node.js sets the old space's size from the machine's memory unless told; give it more with --max-old-space-size (MiB), within the RAM that is free, or process the data in smaller parts.",
            Some("NODE_OPTIONS=--max-old-space-size=8192 node app.js".into()),
        ),
        ManagedHeap::Android => fix(
            FixId::RaiseHeapLimit,
            "Use Android's large heap, or avoid one large array",
            "An app's heap stops at its growth limit; android:largeHeap=\"true\" in the manifest raises it to the device's larger heap size. Better still, let the runtime read the model from a file path (ONNX Runtime, TensorFlow Lite and PyTorch Mobile accept one) or a memory-mapped buffer, so the whole file is never copied into the Java heap.",
            Some("<application android:largeHeap=\"true\" ...>   <!-- AndroidManifest.xml -->".into()),
        ),
        ManagedHeap::Jvm => fix(
            FixId::RaiseHeapLimit,
            "Raise the JVM's heap limit",
            "The heap is capped by -Xmx (under Spark, spark.driver.memory and spark.executor.memory); raise it within the RAM that is free, or process the data in smaller partitions.",
            Some("java -Xmx8g ...   # Spark: spark-submit --driver-memory 8g --executor-memory 8g ...".into()),
        ),
    })
}

/// The limit a kill enforced, in the words of whoever set it: a container
/// (`resources.limits.memory`, `docker run --memory`) or a batch job
/// (`#SBATCH --mem`, LSF's `-M`, PBS's `-l mem`).
fn host_limit(event: &OomEvent) -> Option<Fix> {
    let limit = event.facts.memory_limit.or_else(|| {
        (event.facts.oom_killer() && event.memory.allowed_bytes.is_some())
            .then_some(MemoryLimit::Container)
    })?;
    Some(match limit {
        MemoryLimit::Container => fix(
            FixId::RaiseMemoryLimit,
            "Raise the container's memory limit, or lower the peak under it",
            "The kernel killed the container at its memory cgroup's limit. Give it more (the pod's resources.limits.memory, docker run --memory) if the node has it; otherwise lower host memory use below the limit.",
            Some("kubectl describe pod POD | grep -A3 -i limits\ndocker run --memory=32g ...\ncat /sys/fs/cgroup/memory.max".into()),
        ),
        MemoryLimit::Job => fix(
            FixId::RaiseMemoryLimit,
            "Request more memory for the job",
            "The scheduler killed the job when it passed the memory it requested. Ask for the peak it reached plus a margin; seff or sacct shows the peak (MaxRSS).",
            Some("#SBATCH --mem=64G            # Slurm (or --mem-per-cpu)\nbsub -M 64G ...              # LSF\n#PBS -l mem=64gb             # PBS\nseff JOBID".into()),
        ),
    })
}

fn vllm_utilization(event: &OomEvent) -> Vec<Fix> {
    let m = &event.memory;
    let mut out = Vec::new();
    match event.facts.vllm() {
        Some(VllmCheck::FreeBelowUtilization { .. }) => {
            if let (Some(f), Some(t)) = (m.free_bytes, m.total_bytes) {
                // Leave 0.5 GiB of what is free for the CUDA context and activations headroom.
                let u = ((f.saturating_sub(512 << 20)) as f64 / t as f64 * 100.0).floor() / 100.0;
                if u > 0.0 {
                    out.push(fix(
                        FixId::VllmGpuMemoryUtilization,
                        format!("Set gpu_memory_utilization to {u:.2}, or free the GPU first"),
                        format!("{} of {} is free; vLLM may use at most that share of the whole GPU.", fs(f), fs(t)),
                        Some(format!("vllm serve MODEL --gpu-memory-utilization {u:.2}")),
                    ));
                }
            }
        }
        Some(VllmCheck::MaxLenExceedsKvCache {
            max_model_len,
            kv_tokens,
            estimated_max_len,
            needed_bytes,
            available_bytes,
        }) => {
            let fitting = vllm_len_that_fits(
                *max_model_len,
                *kv_tokens,
                *estimated_max_len,
                *needed_bytes,
                *available_bytes,
            );
            if let Some((len, how)) = fitting {
                out.push(fix(
                    FixId::VllmMaxModelLen,
                    format!("Set --max-model-len to {len} or less"),
                    format!("{how}, rounded down to a multiple of vLLM's {VLLM_BLOCK_TOKENS}-token KV cache block: that many tokens of one sequence fit the KV cache that is left."),
                    Some(format!("vllm serve MODEL --max-model-len {len}")),
                ));
            }
            out.push(fix(
                FixId::VllmGpuMemoryUtilization,
                "Raise gpu_memory_utilization (default 0.9) if nothing else uses the GPU",
                "A larger share leaves more for the KV cache after the weights.",
                Some("vllm serve MODEL --gpu-memory-utilization 0.95".into()),
            ));
        }
        _ => out.push(fix(
            FixId::VllmGpuMemoryUtilization,
            "Raise gpu_memory_utilization, or lower max_model_len / max_num_seqs",
            "After the weights and the profiling batch, the KV cache gets what is left of the utilization share.",
            Some("vllm serve MODEL --gpu-memory-utilization 0.95 --max-model-len 8192 --max-num-seqs 64".into()),
        )),
    }
    out
}

/// Tokens per KV cache block in vLLM (the default `--block-size` of its CUDA
/// backend, vllm/config `CacheConfig.block_size`).
const VLLM_BLOCK_TOKENS: u64 = 16;

/// The resolution of vLLM's printed KV cache figures: 0.01 GiB.
const VLLM_PRINTED_GIB_STEP: f64 = (1u64 << 30) as f64 / 100.0;

/// The `--max-model-len` that fits vLLM's KV cache, with how it was found:
/// the length vLLM printed, else the token count it printed, else the
/// available KV memory over the bytes one token needs (the needed bytes over
/// the asked length); rounded down to a whole block. `None` without figures.
fn vllm_len_that_fits(
    asked: Option<u64>,
    kv_tokens: Option<u64>,
    estimated: Option<u64>,
    needed: Option<u64>,
    available: Option<u64>,
) -> Option<(u64, String)> {
    let (raw, how) = if let Some(e) = estimated {
        (
            e,
            format!("vLLM estimated {e} tokens from the memory available"),
        )
    } else if let Some(m) = kv_tokens {
        (m, format!("the KV cache holds {m} tokens"))
    } else {
        let (asked, needed, available) = (asked?, needed?, available?);
        if asked == 0 || needed == 0 {
            return None;
        }
        // vLLM prints both in GiB with two decimals (kv_cache_utils.py
        // `:.2f`): take the worst end of each rounding.
        let half_step = VLLM_PRINTED_GIB_STEP / 2.0;
        let per_token = (needed as f64 + half_step) / asked as f64;
        let n = ((available as f64 - half_step).max(0.0) / per_token).floor() as u64;
        (
            n,
            format!(
                "{} available / ({} needed / {asked} tokens = {per_token:.0} bytes per token) = {n} tokens (the worse end of each figure's 0.01 GiB rounding)",
                fs(available),
                fs(needed)
            ),
        )
    };
    let len = raw / VLLM_BLOCK_TOKENS * VLLM_BLOCK_TOKENS;
    (len > 0).then_some((len, how))
}

fn kv_cache(event: &OomEvent) -> Vec<Fix> {
    if let Some(SglangCheck::NoKvCacheRoom {
        mem_fraction_static,
    }) = event.facts.sglang()
    {
        return sglang_kv_cache(*mem_fraction_static);
    }
    if event.facts.serving_engine == Some(ServingEngine::Sglang)
        || event.message.contains("alloc_req_slots")
    {
        return vec![fix(
            FixId::SglangMaxRunningRequests,
            "Run fewer requests at once in SGLang",
            "SGLang's request and KV-cache pools are sized at start-up; fewer running requests, a shorter context or an fp8 KV cache make them last. If it fails only after serving a while with few requests in flight, upgrade SGLang: finished requests may be keeping their slots.",
            Some("python -m sglang.launch_server --model-path MODEL --max-running-requests 32 --context-length 8192 --kv-cache-dtype fp8_e5m2".into()),
        )];
    }
    if super::causes::turbomind_failure(&event.message).is_some() {
        return vec![fix(
            FixId::TurbomindCacheShare,
            "Give TurboMind's KV cache a smaller share",
            "TurboMind hands cache_max_entry_count (0.8 by default) of the memory left after the weights to its KV cache at start-up; a smaller share leaves room for the buffers of the requests in flight. Fewer concurrent requests or a shorter session_len help as well.",
            Some("lmdeploy serve api_server MODEL --cache-max-entry-count 0.2   # Python: TurbomindEngineConfig(cache_max_entry_count=0.2)".into()),
        )];
    }
    match event.framework {
        Framework::Vllm => {
            let mut v = vllm_utilization(event);
            v.push(fix(
                FixId::VllmKvCacheDtype,
                "Store the KV cache in fp8",
                "Halves the KV cache of an fp16/bf16 model.",
                Some("vllm serve MODEL --kv-cache-dtype fp8".into()),
            ));
            v
        }
        Framework::LlamaCpp => vec![fix(
            FixId::LlamaCtxSize,
            "Lower the context size, or quantize the KV cache",
            "The KV cache grows with --ctx-size; a q8_0 cache halves it.",
            Some("llama-server -m model.gguf --ctx-size 8192 --cache-type-k q8_0 --cache-type-v q8_0 -fa".into()),
        )],
        _ => vec![fix(
            FixId::ShorterGeneration,
            "Generate for fewer sequences at once, or fewer new tokens",
            "The KV cache grows with batch x (prompt + new tokens); a static or quantized cache bounds it.",
            Some("model.generate(**inputs, max_new_tokens=256, num_beams=1)".into()),
        )],
    }
}

fn leftovers(event: &OomEvent) -> Vec<Fix> {
    if event.facts.batch_search_exhausted() {
        return batch_finder_scope();
    }
    vec![fix(
        FixId::FreeLeftoverTensors,
        "Drop references to finished tensors; evaluate under no_grad",
        "Keep losses as numbers (loss.item()), not tensors with their graphs; delete outputs you no longer need before clearing the cache.",
        Some("with torch.no_grad():\n    outputs = model(**batch)\ntotal_loss += loss.item()   # not total_loss += loss\ndel outputs; gc.collect(); torch.cuda.empty_cache()".into()),
    )]
}

fn host_memory(event: &OomEvent) -> Vec<Fix> {
    let mut v = Vec::new();
    if event.facts.compiling {
        // ninja runs one job per core unless told; PyTorch's extension
        // builder (torch.utils.cpp_extension) and flash-attention's setup
        // read MAX_JOBS, nvcc's --threads splits one job further.
        v.push(fix(
            FixId::FewerBuildJobs,
            "Build with fewer parallel jobs",
            "Each compile job holds its own memory (CUDA kernels take several GB each): cap the jobs to what the RAM holds, or add swap for the build.",
            Some("MAX_JOBS=4 pip install flash-attn --no-build-isolation\nNVCC_THREADS=1 MAX_JOBS=2 python setup.py install\nmake -j4   # cmake --build . -j 4, cargo build -j 2".into()),
        ));
        if event.facts.oom_killer() {
            v.push(check_cgroup_limit());
        }
        return v;
    }
    if event.facts.shm_full {
        // DataLoader workers hand batches to the main process through
        // shared memory (torch.multiprocessing), NCCL and MPI keep their
        // intra-node buffers there; a container's /dev/shm is its own size
        // (Docker: 64 MB unless --shm-size or --ipc=host).
        v.push(fix(
            FixId::RaiseShmSize,
            "Give /dev/shm more room",
            "DataLoader workers pass every batch through shared memory, and NCCL and MPI keep their buffers between processes there; a container sizes it apart from its RAM (64 MB by default under Docker). Raise it, or let the DataLoader share through files instead.",
            Some("docker run --shm-size=8g ...   # or --ipc=host\ndf -h /dev/shm\ntorch.multiprocessing.set_sharing_strategy('file_system')".into()),
        ));
    }
    if event.device.kind == DeviceKind::Mps {
        // An Apple GPU has no memory of its own: Metal allocates from the
        // Mac's RAM, which every app and the system share.
        v.push(fix(
            FixId::ReduceHostMemory,
            "Free the Mac's unified memory",
            "The GPU allocates from the machine's RAM: quit other memory-heavy apps (browsers, other model servers), load the weights in half precision, or run a smaller step. A CI runner or a small Mac may simply not hold the model.",
            Some("model = model.to('mps', dtype=torch.float16)
# watch Activity Monitor > Memory: Memory Pressure and Swap Used".into()),
        ));
    } else if super::causes::windows_commit_limit(&event.message) {
        v.push(fix(
            FixId::ReduceHostMemory,
            "Start fewer processes, or enlarge the paging file",
            "Windows' commit limit is RAM plus the paging file; every DataLoader worker is a new process that loads the CUDA libraries again. Use fewer workers (num_workers=0 or 2), or let Windows manage a larger paging file (System > Advanced system settings > Performance > Virtual memory) on a drive with room.",
            Some("DataLoader(dataset, num_workers=0)".into()),
        ));
    } else {
        v.push(fix(
            FixId::ReduceHostMemory,
            "Lower host memory use",
            "Fewer DataLoader workers (each copies the dataset object), memory-mapped datasets, loading weights straight to the GPU (low_cpu_mem_usage / device_map), or more swap.",
            Some("DataLoader(dataset, num_workers=2)\nAutoModel.from_pretrained(name, low_cpu_mem_usage=True, device_map='cuda')".into()),
        ));
    }
    if event.facts.oom_killer() && event.facts.memory_limit != Some(MemoryLimit::Job) {
        v.push(check_cgroup_limit());
    }
    v
}

fn check_cgroup_limit() -> Fix {
    fix(
        FixId::CheckCgroupLimit,
        "Check the container's memory limit",
        "In a container the OOM killer fires at the cgroup limit, not at the machine's RAM.",
        Some("cat /sys/fs/cgroup/memory.max".into()),
    )
}

fn invalid_size(event: &OomEvent) -> Vec<Fix> {
    if event.facts.absurd_request {
        return vec![fix(
            FixId::CheckVersions,
            "Treat it as a bug upstream: check library versions",
            "A request over 1 EB comes from a negative or overflowed size (seen with mismatched NCCL, bitsandbytes or CUDA versions); upgrade or pin the library named in the traceback.",
            Some("python -c \"import torch; print(torch.__version__, torch.version.cuda, torch.cuda.nccl.version())\"".into()),
        )];
    }
    vec![fix(
        FixId::CheckShapes,
        "Check the shape of the tensor being allocated",
        "Print the shapes going into the failing line: an unbounded sequence length, an image at full resolution or a wrong dimension gives a request larger than the device.",
        Some("print({k: v.shape for k, v in batch.items()})".into()),
    )]
}

fn not_memory(event: &OomEvent) -> Vec<Fix> {
    if let Some(shm) = event.facts.shared_memory() {
        return triton_shared_memory(shm);
    }
    vec![fix(
        FixId::CheckCudaSetup,
        "Check the CUDA setup, then look for an earlier OOM",
        "Run once with CUDA_LAUNCH_BLOCKING=1 to see the real failing call, and check that the driver supports the CUDA and cuDNN versions the framework was built with.",
        Some("CUDA_LAUNCH_BLOCKING=1 python train.py\npython -c \"import torch; print(torch.version.cuda, torch.backends.cudnn.version())\"; nvidia-smi".into()),
    )]
}

fn tf_memory_growth() -> Vec<Fix> {
    let mut f = fix(
        FixId::TfMemoryGrowth,
        "Let TensorFlow grow its memory instead of taking it all",
        "By default TensorFlow maps nearly all GPU memory at start, leaving none for cuDNN or other processes.",
        Some("for gpu in tf.config.list_physical_devices('GPU'):\n    tf.config.experimental.set_memory_growth(gpu, True)".into()),
    );
    f.env = env1("TF_FORCE_GPU_ALLOW_GROWTH", "true");
    vec![f]
}

fn jax_prealloc() -> Vec<Fix> {
    let mut f = fix(
        FixId::JaxPreallocate,
        "Stop JAX from preallocating 75% of the GPU",
        "XLA reserves 75% of GPU memory at start; disable it, or set the fraction it may take.",
        Some("export XLA_PYTHON_CLIENT_PREALLOCATE=false\n# or: export XLA_PYTHON_CLIENT_MEM_FRACTION=.90".into()),
    );
    f.env = env1("XLA_PYTHON_CLIENT_PREALLOCATE", "false");
    vec![f]
}

/// Share of the device the offloaded weights may take: llama.cpp allocates
/// the KV cache and its compute buffers on the same GPU after the weights.
const LLAMA_WEIGHTS_SHARE: f64 = 0.9;

/// The share of the currently offloaded layers that fits: the memory the
/// weights may take over the buffer llama.cpp asked for (layers are of
/// about equal size, so the buffer scales with their count). `None` without
/// both figures or when the buffer already fits.
fn llama_layer_share(asked: Option<u64>, room: Option<u64>) -> Option<f64> {
    let (asked, room) = (asked? as f64, room? as f64 * LLAMA_WEIGHTS_SHARE);
    (asked > 0.0 && room < asked).then_some(room / asked)
}

fn llama_layers(event: &OomEvent) -> Vec<Fix> {
    let m = &event.memory;
    let room = m.free_bytes.or(m.total_bytes);
    let share = llama_layer_share(m.requested_bytes, room);
    let offloaded = event
        .facts
        .llama_offload
        .as_ref()
        .and_then(|o| o.offloaded_layers);
    let (detail, code) = match (share, m.requested_bytes, room, offloaded) {
        (Some(share), Some(q), Some(room), Some(offloaded)) => {
            let n = (f64::from(offloaded) * share).floor() as u64;
            (
                format!(
                    "The offloaded weights need {} in one buffer; {:.0}% of {} is what they may take beside the KV cache and compute buffers, so about {:.0}% of the {offloaded} offloaded layers fit: --n-gpu-layers {n}.",
                    fs(q),
                    LLAMA_WEIGHTS_SHARE * 100.0,
                    fs(room),
                    share * 100.0,
                ),
                format!("llama-server -m model.gguf --n-gpu-layers {n}\n# or split across GPUs: --tensor-split 1,1"),
            )
        }
        (Some(share), Some(q), Some(room), None) => (
            format!(
                "The offloaded weights need {} in one buffer; {:.0}% of {} is what they may take beside the KV cache and compute buffers, so about {:.0}% of the layers fit: --n-gpu-layers = floor(the N of your log's 'offloaded N/M layers to GPU' x {share:.2}).",
                fs(q),
                LLAMA_WEIGHTS_SHARE * 100.0,
                fs(room),
                share * 100.0
            ),
            format!("llama-server -m model.gguf --n-gpu-layers N   # N = floor(offloaded layers x {share:.2})\n# or split across GPUs: --tensor-split 1,1"),
        ),
        (_, Some(q), _, _) => (
            format!("The offloaded weights need {} in one buffer and the log does not say how much the GPU has: lower --n-gpu-layers a few layers at a time (the log's 'offloaded N/M layers to GPU' gives the current N) until it loads, or pick a smaller quantization (Q4_K_M takes about a quarter of fp16).", fs(q)),
            "llama-server -m model.gguf --n-gpu-layers N   # a few below the current N; repeat until it loads\n# or split across GPUs: --tensor-split 1,1".to_string(),
        ),
        _ => (
            "Lower --n-gpu-layers a few layers at a time until it loads, or pick a smaller quantization.".to_string(),
            "llama-server -m model.gguf --n-gpu-layers N   # a few below the current N; repeat until it loads".to_string(),
        ),
    };
    vec![fix(
        FixId::LlamaNGpuLayers,
        "Offload fewer layers to the GPU (--n-gpu-layers)",
        detail,
        Some(code),
    )]
}

/// The highest `--mem-fraction-static` suggested: SGLang needs the rest of
/// the GPU for activations, CUDA graphs and the CUDA context.
const SGLANG_MAX_FRACTION: f64 = 0.95;
/// How far one suggestion raises the current fraction: on an 80 GB GPU,
/// 0.05 is 4 GB more for the KV cache.
const SGLANG_FRACTION_STEP: f64 = 0.05;

/// The fraction to suggest above `current`, in hundredths, capped; `None`
/// when `current` is already at the cap.
fn sglang_next_fraction(current: Option<f64>) -> Option<f64> {
    match current {
        Some(f) if f >= SGLANG_MAX_FRACTION - 1e-9 => None,
        Some(f) => Some(((f + SGLANG_FRACTION_STEP) * 100.0).round().min(95.0) / 100.0),
        None => Some(0.9),
    }
}

fn sglang_mem_fraction(check: &SglangCheck) -> Vec<Fix> {
    let SglangCheck::NoKvCacheRoom {
        mem_fraction_static,
    } = check;
    let opposite = "This is the opposite of SGLang's advice for an out-of-memory error while serving (lower it, to leave room for activations and CUDA graphs): here start-up found the static pool too small.";
    match sglang_next_fraction(*mem_fraction_static) {
        Some(next) => {
            let from = mem_fraction_static.map_or(String::new(), |f| format!(" from {f}"));
            vec![fix(
                FixId::SglangMemFractionStatic,
                format!("Raise --mem-fraction-static{from} to {next:.2}"),
                format!(
                    "A larger share of the GPU for the static pool leaves room for the KV cache after the weights. {opposite} Stay at or below {SGLANG_MAX_FRACTION}; if a higher value then fails with CUDA out of memory while serving, the model does not fit this GPU: shard or quantize it (below)."
                ),
                Some(format!(
                    "python -m sglang.launch_server --model-path MODEL --mem-fraction-static {next:.2}"
                )),
            )]
        }
        None => vec![fix(
            FixId::SglangMemFractionStatic,
            "Do not raise --mem-fraction-static further: the weights do not leave room",
            format!(
                "At {SGLANG_MAX_FRACTION} or more, what is left of the GPU is needed for activations and CUDA graphs. {opposite} Shard or quantize the model instead (below)."
            ),
            None,
        )],
    }
}

fn sglang_shard_or_quantize() -> Vec<Fix> {
    vec![
        fix(
            FixId::SglangTensorParallel,
            "Shard the weights over two GPUs (--tp 2)",
            "Tensor parallelism splits the weights, so each GPU keeps half of them and the rest of the static budget goes to the KV cache.",
            Some("python -m sglang.launch_server --model-path MODEL --tp 2".into()),
        ),
        fix(
            FixId::SglangQuantize,
            "Serve a quantized checkpoint",
            "An FP8 checkpoint (or --quantization fp8 on an fp16/bf16 one, on GPUs that support it) halves the weights; AWQ/GPTQ 4-bit checkpoints quarter them.",
            Some("python -m sglang.launch_server --model-path MODEL --quantization fp8".into()),
        ),
    ]
}

fn sglang_kv_cache(current: Option<f64>) -> Vec<Fix> {
    let fraction = sglang_next_fraction(current)
        .map_or(String::new(), |f| format!(" --mem-fraction-static {f:.2}"));
    vec![
        fix(
            FixId::SglangKvCacheDtype,
            "Store the KV cache in fp8",
            "Halves the bytes per token of an fp16/bf16 model's KV cache, so a small remainder of the budget holds twice the tokens; it does not help when nothing is left at all.",
            Some("python -m sglang.launch_server --model-path MODEL --kv-cache-dtype fp8_e5m2".into()),
        ),
        fix(
            FixId::SglangContextLength,
            "Lower --context-length along with the higher fraction",
            "With little room the KV pool stays small; a shorter context keeps each request within it. On its own it does not make room for the pool.",
            Some(format!("python -m sglang.launch_server --model-path MODEL{fraction} --context-length 8192")),
        ),
    ]
}

fn triton_shared_memory(shm: &SharedMemoryLimit) -> Vec<Fix> {
    let (title, need) = match (shm.required_bytes, shm.limit_bytes) {
        (Some(need), Some(limit)) => {
            let cut = need.saturating_sub(limit) as f64 * 100.0 / need.max(1) as f64;
            let class = super::causes::shared_memory_gpu_class(limit)
                .map(|c| format!(" {limit} bytes per block is the limit of {c}."))
                .unwrap_or_default();
            (
                format!("Use a kernel configuration that fits {limit} bytes of shared memory per block"),
                format!(
                    "The kernel needs {need} bytes of shared memory per thread block and the GPU allows {limit}: its tiles must shrink by at least {cut:.0}%.{class} "
                ),
            )
        }
        _ => (
            "Use a kernel configuration that fits this GPU's shared memory".to_string(),
            String::new(),
        ),
    };
    let config_code = if shm.via_inductor {
        "# FlexAttention under torch.compile: smaller tiles, fewer stages\nflex_attention(q, k, v, block_mask=mask,\n               kernel_options={\"BLOCK_M\": 64, \"BLOCK_N\": 64, \"num_stages\": 1})"
    } else {
        "# your own Triton kernel: offer configs with smaller blocks and fewer stages\n@triton.autotune(configs=[\n    triton.Config({\"BLOCK_M\": 64, \"BLOCK_N\": 64, \"BLOCK_K\": 32}, num_stages=2, num_warps=4),\n], key=[\"M\", \"N\", \"K\"])"
    };
    vec![
        fix(
            FixId::TritonKernelConfig,
            title,
            format!(
                "{need}Shared memory per block grows with the block sizes and with num_stages (each pipeline stage buffers one more tile), as the message says: use smaller blocks or fewer stages. The batch size does not change it."
            ),
            Some(config_code.into()),
        ),
        fix(
            FixId::UpdateKernelLibrary,
            "Update the library that ships the kernel",
            "Many shipped Triton configurations were tuned on A100/H100 (163/227 KiB of shared memory per block) and do not fit GPUs with less; newer releases of flash-attention, unsloth, the vLLM/SGLang Triton backends and bitsandbytes carry configurations for more GPUs. The traceback's file paths name the package. Changing the torch.compile mode (max-autotune-no-cudagraphs) is not a fix.",
            Some("pip install -U PACKAGE   # the one in the traceback: flash-attn, unsloth, vllm, sglang, bitsandbytes".into()),
        ),
        fix(
            FixId::NonTritonPath,
            "Choose a non-Triton path for this layer",
            "PyTorch's scaled-dot-product attention runs cuDNN/CUDA kernels that fit every GPU; leaving the layer out of torch.compile (torch.compiler.disable) also avoids the generated kernel.",
            Some("model = AutoModelForCausalLM.from_pretrained(name, attn_implementation=\"sdpa\")".into()),
        ),
    ]
}

fn save_state_on_cpu() -> Fix {
    fix(
        FixId::SaveStateOnCpu,
        "Put the checkpoint's state dict together on the CPU, on rank 0 only",
        "Saving a full state dict gathers every shard of the model (and of the optimizer's states) onto one GPU that still holds what training keeps there. FSDP can gather onto the CPU of rank 0 instead; DeepSpeed ZeRO-3 can save its shards as they are and merge them afterwards. Training itself needs no change.",
        Some("# FSDP\nfrom torch.distributed.fsdp import FullStateDictConfig, StateDictType\ncfg = FullStateDictConfig(offload_to_cpu=True, rank0_only=True)\nwith FSDP.state_dict_type(model, StateDictType.FULL_STATE_DICT, cfg):\n    state = model.state_dict()\n# or save sharded: StateDictType.SHARDED_STATE_DICT (torch.distributed.checkpoint)\n# DeepSpeed ZeRO-3: \"stage3_gather_16bit_weights_on_model_save\": false, then\npython zero_to_fp32.py CHECKPOINT_DIR pytorch_model.bin".into()),
    )
}

fn fit_model_for_training() -> Vec<Fix> {
    vec![
        fix(
            FixId::FitModelForTraining,
            "Make the model itself fit: the memory is in the model, not in the batch",
            "Gradient checkpointing, bf16/AMP, an 8-bit AdamW and LoRA/QLoRA shrink what training the model needs before any batch; FSDP or DeepSpeed ZeRO-3 split weights, gradients and optimizer states across GPUs. oomguard plan shows what fits this GPU before the next run.",
            Some("oomguard plan MODEL --train --gpu GPU --grad-checkpointing --optimizer adamw-8bit\nTrainingArguments(gradient_checkpointing=True, bf16=True, optim=\"adamw_bnb_8bit\")\n# LoRA/QLoRA: peft.get_peft_model(model, LoraConfig(r=16, target_modules=\"all-linear\"))\n# several GPUs: accelerate launch --use_fsdp train.py   (or a DeepSpeed ZeRO-3 config)".into()),
        ),
        fix(
            FixId::TruncateSequences,
            "Cap the sequence length of each sample",
            "One sample that does not fit fails at any batch size: truncate long texts (a missing truncation is a common cause of this error).",
            Some("tokenizer(texts, truncation=True, max_length=2048)".into()),
        ),
    ]
}

fn batch_finder_scope() -> Vec<Fix> {
    vec![fix(
        FixId::BatchFinderScope,
        "Create the model and optimizer inside the decorated function, or free them before each retry",
        "find_executable_batch_size runs gc.collect() and empty_cache() between attempts, but that frees nothing still referenced from outside the function: build the model and optimizer inside it (after accelerator.free_memory()), or del them before retrying. With the Trainer's auto_find_batch_size, update transformers (older releases kept the prepared model across retries).",
        Some("@find_executable_batch_size(starting_batch_size=args.batch_size)\ndef inner_training_loop(batch_size):\n    nonlocal accelerator\n    accelerator.free_memory()        # drop what the failed attempt prepared\n    model = build_model()            # created here, not outside\n    optimizer = torch.optim.AdamW(model.parameters())\n    model, optimizer = accelerator.prepare(model, optimizer)\n    ...".into()),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_managed_runtime_at_its_heap_limit_gets_that_limit_raised() {
        for (message, title) in [
            (
                "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
                "V8",
            ),
            ("java.lang.OutOfMemoryError: Java heap space", "JVM"),
        ] {
            let mut e = crate::diagnose::causes::testing::event(
                Framework::Other,
                crate::oom::MemoryFigures::default(),
            );
            e.device.kind = DeviceKind::Cpu;
            e.message = message.into();
            let fixes = memory_cap(&e);
            assert_eq!(fixes[0].id, FixId::RaiseHeapLimit, "{message}");
            assert!(fixes[0].title.contains(title), "{message}");
        }
    }

    #[test]
    fn a_checkpoint_gathered_on_the_gpu_is_saved_through_the_cpu() {
        let mut e = crate::diagnose::causes::testing::event(
            Framework::PyTorch,
            crate::oom::MemoryFigures::default(),
        );
        assert_ne!(model_too_large(&e)[0].id, FixId::SaveStateOnCpu);
        e.facts.context.model_states = Some("in _full_pre_state_dict_hook".into());
        e.facts.context.gathering = true;
        e.facts.context.for_checkpoint = true;
        let fixes = model_too_large(&e);
        assert_eq!(fixes[0].id, FixId::SaveStateOnCpu);
        assert!(fixes[0]
            .code
            .as_deref()
            .unwrap()
            .contains("rank0_only=True"));
    }

    #[test]
    fn sglang_fraction_steps_up_to_the_cap() {
        assert_eq!(sglang_next_fraction(Some(0.8)), Some(0.85));
        assert_eq!(sglang_next_fraction(Some(0.88)), Some(0.93));
        assert_eq!(sglang_next_fraction(Some(0.93)), Some(0.95));
        assert_eq!(sglang_next_fraction(Some(0.95)), None);
        assert_eq!(sglang_next_fraction(None), Some(0.9));
    }

    #[test]
    fn vllm_length_is_the_printed_one_or_computed_and_whole_blocks() {
        // vLLM printed its estimate: kept, already a whole block.
        let (len, _) = vllm_len_that_fits(Some(221000), None, Some(122080), None, None).unwrap();
        assert_eq!(len, 122080);
        // Printed token count, rounded down to 16.
        let (len, _) = vllm_len_that_fits(Some(32768), Some(20001), None, None, None).unwrap();
        assert_eq!(len, 20000);
        // Computed: 4 GiB needed for 32768 tokens = 131072 B/token; 3 GiB
        // available holds 24576 tokens, less the printed rounding
        // (3 - 0.005 GiB) / ((4 + 0.005 GiB) / 32768) = 24504.9 -> 24496.
        let (len, how) =
            vllm_len_that_fits(Some(32768), None, None, Some(4 << 30), Some(3 << 30)).unwrap();
        assert_eq!(len, 24496);
        assert!(how.contains("131236 bytes per token"), "{how}");
        assert_eq!(
            vllm_len_that_fits(Some(32768), None, None, None, Some(3 << 30)),
            None
        );
    }

    #[test]
    fn warmup_requests_are_read_from_vllm_s_message() {
        assert_eq!(warmup_requests("RuntimeError: CUDA out of memory occurred when warming up sampler with 256 dummy requests. Please try lowering `max_num_seqs`"), Some(256));
        assert_eq!(
            warmup_requests(
                "CUDA out of memory occurred when warming up pooler with 64 dummy requests."
            ),
            Some(64)
        );
        assert_eq!(
            warmup_requests("CUDA out of memory. Tried to allocate 2.00 GiB"),
            None
        );
        assert!(vllm_max_num_seqs(256)
            .code
            .unwrap()
            .contains("--max-num-seqs 128"));
    }

    #[test]
    fn a_full_dev_shm_asks_for_more_shared_memory_first() {
        use crate::oom::{Device, EventFacts, Framework, MemoryFigures, Phase};
        let mut event = OomEvent {
            source: "-".into(),
            line: 1,
            framework: Framework::PyTorch,
            device: Device::UNKNOWN,
            message: String::new(),
            memory: MemoryFigures::default(),
            phase: Phase::DataLoading,
            ranks: None,
            facts: EventFacts::default(),
        };
        assert_eq!(host_memory(&event)[0].id, FixId::ReduceHostMemory);
        event.message =
            "OSError: [WinError 1455] The paging file is too small for this operation to complete."
                .into();
        assert!(host_memory(&event)[0].detail.contains("paging file"));
        event.facts.shm_full = true;
        let fixes = host_memory(&event);
        assert_eq!(fixes[0].id, FixId::RaiseShmSize);
        assert!(fixes[0].code.as_deref().unwrap().contains("--shm-size"));
    }

    #[test]
    fn a_build_out_of_memory_asks_for_fewer_jobs() {
        use crate::oom::{Device, EventFacts, Framework, MemoryFigures, Phase};
        let event = OomEvent {
            source: "-".into(),
            line: 1,
            framework: Framework::Other,
            device: Device::UNKNOWN,
            message: String::new(),
            memory: MemoryFigures::default(),
            phase: Phase::Unknown,
            ranks: None,
            facts: EventFacts {
                compiling: true,
                ..EventFacts::default()
            },
        };
        let fixes = host_memory(&event);
        assert_eq!(fixes[0].id, FixId::FewerBuildJobs);
        assert!(fixes[0].code.as_deref().unwrap().contains("MAX_JOBS"));
        assert!(fixes.iter().all(|f| f.id != FixId::ReduceHostMemory));
    }

    #[test]
    fn sglang_s_pools_give_sglang_s_own_knobs() {
        use crate::oom::{Device, EventFacts, Framework, MemoryFigures, Phase};
        let event = OomEvent {
            source: "-".into(),
            line: 1,
            framework: Framework::Other,
            device: Device::UNKNOWN,
            message: "RuntimeError: alloc_req_slots runs out of memory.".into(),
            memory: MemoryFigures::default(),
            phase: Phase::Generation,
            ranks: None,
            facts: EventFacts::default(),
        };
        let fixes = kv_cache(&event);
        assert_eq!(fixes[0].id, FixId::SglangMaxRunningRequests);
        assert!(fixes[0]
            .code
            .as_deref()
            .unwrap()
            .contains("--max-running-requests"));
    }

    #[test]
    fn onnx_runtime_s_arena_cap_is_raised_in_the_session_s_options() {
        use crate::oom::{Device, EventFacts, Framework, MemoryFigures, Phase};
        let event = OomEvent {
            source: "-".into(),
            line: 1,
            framework: Framework::OnnxRuntime,
            device: Device::UNKNOWN,
            message: "Available memory of 0 is smaller than requested bytes of 2048".into(),
            memory: MemoryFigures::default(),
            phase: Phase::Unknown,
            ranks: None,
            facts: EventFacts::default(),
        };
        let fixes = memory_cap(&event);
        assert_eq!(fixes[0].id, FixId::RaiseArenaLimit);
        assert!(fixes[0].code.as_deref().unwrap().contains("gpu_mem_limit"));
    }

    #[test]
    fn a_kill_at_a_limit_asks_whoever_set_it_for_more() {
        use crate::oom::{Device, EventFacts, EventKind, Framework, MemoryFigures, Phase};
        let mut event = OomEvent {
            source: "-".into(),
            line: 1,
            framework: Framework::Other,
            device: Device::UNKNOWN,
            message: String::new(),
            memory: MemoryFigures::default(),
            phase: Phase::Unknown,
            ranks: None,
            facts: EventFacts {
                kind: EventKind::OomKill,
                memory_limit: Some(MemoryLimit::Job),
                ..EventFacts::default()
            },
        };
        let job = memory_cap(&event);
        assert_eq!(job[0].id, FixId::RaiseMemoryLimit);
        assert!(job[0].code.as_deref().unwrap().contains("#SBATCH --mem"));
        // A job's limit is not a container's cgroup to inspect.
        assert!(host_memory(&event)
            .iter()
            .all(|f| f.id != FixId::CheckCgroupLimit));
        event.facts.memory_limit = Some(MemoryLimit::Container);
        assert!(memory_cap(&event)[0]
            .code
            .as_deref()
            .unwrap()
            .contains("docker run --memory"));
        // The kernel's cgroup report with its limit names a container too.
        event.facts.memory_limit = None;
        event.memory.allowed_bytes = Some(8 << 30);
        assert_eq!(memory_cap(&event)[0].id, FixId::RaiseMemoryLimit);
    }

    #[test]
    fn llama_layers_scale_the_offloaded_count() {
        use crate::oom::{Device, EventFacts, Framework, LlamaOffload, MemoryFigures, Phase};
        let mut event = OomEvent {
            source: "-".into(),
            line: 1,
            framework: Framework::LlamaCpp,
            device: Device::UNKNOWN,
            message: String::new(),
            memory: MemoryFigures::default(),
            phase: Phase::ModelLoad,
            ranks: None,
            facts: EventFacts::default(),
        };
        event.memory.requested_bytes = Some(43_200 << 20);
        event.memory.total_bytes = Some(24_000 << 20);
        // Without the offloaded count, no number is made up.
        let code = llama_layers(&event)[0].code.clone().unwrap();
        assert!(code.contains("--n-gpu-layers N"), "{code}");
        event.facts.llama_offload = Some(LlamaOffload {
            offloaded_layers: Some(81),
            total_layers: Some(81),
            buffers: Vec::new(),
        });
        // Half of 81 layers: 40, rounded down so the 41st does not overflow.
        let fix = &llama_layers(&event)[0];
        assert!(
            fix.code.as_deref().unwrap().contains("--n-gpu-layers 40"),
            "{:?}",
            fix.code
        );
    }

    #[test]
    fn llama_share_scales_the_layers_by_the_room_over_the_buffer() {
        // 24 GiB device, 90% for weights = 21.6 GiB of a 43.2 GiB buffer: half.
        let share = llama_layer_share(Some(43_200 << 20), Some(24_000 << 20)).unwrap();
        assert!((share - 0.5).abs() < 1e-9, "{share}");
        assert_eq!(llama_layer_share(Some(1 << 30), Some(24 << 30)), None);
        assert_eq!(llama_layer_share(Some(1 << 30), None), None);
    }

    #[test]
    fn split_size_is_a_power_of_two_within_bounds() {
        assert_eq!(split_size_mb(Some(216 << 20)), 256);
        assert_eq!(split_size_mb(Some(10 << 20)), 128);
        assert_eq!(split_size_mb(Some(8 << 30)), 1024);
        assert_eq!(split_size_mb(None), 128);
    }
}
