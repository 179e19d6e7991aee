//! `oomguard plan`: resolve the model and the workload, estimate per-GPU
//! memory, and with `--gpu` say whether it fits, the largest batch and
//! sequence, and the changes that make it fit. Exit 0 when it fits (or no
//! GPU was given), 1 when it does not, 2 on bad input.

use crate::flags::PlanArgs;
use crate::style::{proportional_cells, Style};
use anyhow::{anyhow, Context};
use oomguard_core::estimate::device_map::{
    infer_auto_device_map, with_device_map, DeviceMap, MaxMemory, MaxMemoryProblem,
};
use oomguard_core::estimate::engine::ggml::{self, GgufQuant};
use oomguard_core::estimate::engine::llama_cpp::{self, LlamaCppSettings};
use oomguard_core::estimate::engine::sglang::{self, SglangSettings};
use oomguard_core::estimate::engine::vllm::{self, VllmSettings};
use oomguard_core::estimate::engine::{check_fraction, EngineName, EngineReport};
use oomguard_core::estimate::Framework;
use oomguard_core::estimate::{
    estimate, max_batch, max_seq, recommendations, usable_capacity, Attention, Checkpointing, Head,
    Lora, LoraTargets, Loss, MemoryBreakdown, Optimizer, PrecisionRegime, Quant, Recommendation,
    Workload, WorkloadError, WorkloadRequest, DEFAULT_LOSS_CHUNKS, MAX_BATCH_OR_SEQ, SAFETY_MARGIN,
};
use oomguard_core::gpu::{find_gpu, gpus};
use oomguard_core::model::{resolve, Dtype, HubCache, ModelShape, ModelSource};
use oomguard_core::size::{format_size, parse_gpu_size};
use serde::Serialize;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

/// The GPU the plan is fitted to.
#[derive(Debug, Clone, Serialize)]
struct TargetGpu {
    name: String,
    memory_bytes: u64,
}

#[derive(Debug, Serialize)]
struct ModelJson<'a> {
    id: &'a str,
    architecture: &'a str,
    params: u64,
    layers: u64,
    hidden_size: u64,
    heads: u64,
    kv_heads: u64,
    head_dim: u64,
    intermediate_size: u64,
    vocab_size: u64,
    max_position_embeddings: Option<u64>,
}

#[derive(Debug, Serialize)]
struct PlanJson<'a> {
    model: ModelJson<'a>,
    workload: &'a Workload,
    per_gpu: MemoryBreakdown,
    gpu: Option<TargetGpu>,
    fits: Option<bool>,
    max_batch: Option<u64>,
    max_seq: Option<u64>,
    recommendations: Vec<Recommendation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    engine: Option<EngineReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_map: Option<DeviceMap>,
}

fn request(args: &PlanArgs, engine: EngineName) -> WorkloadRequest {
    WorkloadRequest {
        train: args.train,
        batch: args.batch,
        seq: args.seq,
        dtype: args.dtype.as_deref().and_then(Dtype::from_name),
        amp: args.amp,
        quant: match engine {
            EngineName::LlamaCpp => None,
            _ => args.quant.as_deref().and_then(Quant::parse),
        },
        optimizer: args.optimizer.as_deref().and_then(Optimizer::parse),
        grad_checkpointing: args.grad_checkpointing,
        lora: args.lora.map(|rank| Lora {
            rank,
            targets: match args.lora_targets.as_deref() {
                Some("all-linear") => LoraTargets::AllLinear,
                Some("qkvo") => LoraTargets::Qkvo,
                _ => LoraTargets::Qv,
            },
        }),
        attention: args.attention.as_deref().and_then(Attention::parse),
        gpus: args.gpus,
        zero: if args.fsdp { Some(3) } else { args.zero },
        tp: args.tp,
        bitsandbytes_version: args.bitsandbytes_version,
        // --grad-checkpointing, the older spelling, wins: a recommended
        // change appended to the command must take effect.
        checkpointing: if args.grad_checkpointing && args.activation_checkpointing.is_some() {
            Some(Checkpointing::Full)
        } else {
            args.activation_checkpointing
                .as_deref()
                .and_then(Checkpointing::parse)
        },
        loss: args.loss.as_deref().map(|kind| match kind {
            "chunked" => Loss::Chunked {
                chunks: args.loss_chunks.unwrap_or(DEFAULT_LOSS_CHUNKS),
            },
            "sum" => Loss::Sum,
            _ => Loss::Full,
        }),
        head: args.head.as_deref().and_then(Head::parse),
        optimizer_in_backward: args.optimizer_in_backward,
        grad_accum: args.grad_accum,
        paged_optimizer: args.paged_optimizer,
        context_parallel: args.context_parallel,
        sequence_parallel: args.sequence_parallel,
        framework: args.framework.as_deref().and_then(Framework::parse),
        compile: args.compile,
        activation_offloading: args.activation_offloading,
        logits_kept: args.logits_kept,
        new_tokens: args.new_tokens,
        transformers_version: args.transformers_version,
    }
}

fn target_gpu(arg: &str) -> anyhow::Result<TargetGpu> {
    if let Some(g) = find_gpu(arg) {
        return Ok(TargetGpu {
            name: g.id.clone(),
            memory_bytes: g.memory_bytes,
        });
    }
    // "24GB" is what the vendor sells as 24 GB: binary, as GPUs count.
    match parse_gpu_size(arg) {
        Ok(bytes) if bytes >= 1 << 20 => Ok(TargetGpu {
            name: arg.to_string(),
            memory_bytes: bytes,
        }),
        _ => Err(anyhow!(
            "--gpu {arg:?} is neither a GPU of the catalog (`oomguard gpus` lists them) nor a size such as 24GiB or 80g"
        )),
    }
}

/// Flags that belong to one engine (or to training), and the engines they
/// apply to.
fn engine_flags(args: &PlanArgs) -> Vec<(&'static str, bool, &'static [EngineName])> {
    use EngineName::*;
    vec![
        (
            "--gpu-memory-utilization",
            args.gpu_memory_utilization.is_some(),
            &[Vllm],
        ),
        ("--max-model-len", args.max_model_len.is_some(), &[Vllm]),
        ("--max-num-seqs", args.max_num_seqs.is_some(), &[Vllm]),
        (
            "--max-num-batched-tokens",
            args.max_num_batched_tokens.is_some(),
            &[Vllm],
        ),
        ("--kv-cache-dtype", args.kv_cache_dtype.is_some(), &[Vllm]),
        ("--enforce-eager", args.enforce_eager, &[Vllm]),
        ("--n-gpu-layers", args.n_gpu_layers.is_some(), &[LlamaCpp]),
        ("--ctx-size", args.ctx_size.is_some(), &[LlamaCpp]),
        ("--cache-type-k", args.cache_type_k.is_some(), &[LlamaCpp]),
        ("--cache-type-v", args.cache_type_v.is_some(), &[LlamaCpp]),
        ("--ubatch-size", args.ubatch_size.is_some(), &[LlamaCpp]),
        ("--flash-attn", args.flash_attn, &[LlamaCpp]),
        (
            "--mem-fraction-static",
            args.mem_fraction_static.is_some(),
            &[Sglang],
        ),
        ("--context-length", args.context_length.is_some(), &[Sglang]),
        ("--max-memory", args.max_memory.is_some(), &[Hf]),
        ("--train", args.train, &[Hf]),
        ("--amp", args.amp, &[Hf]),
        ("--lora", args.lora.is_some(), &[Hf]),
        ("--optimizer", args.optimizer.is_some(), &[Hf]),
        ("--grad-checkpointing", args.grad_checkpointing, &[Hf]),
        (
            "--bitsandbytes-version",
            args.bitsandbytes_version.is_some(),
            &[Hf],
        ),
        (
            "--activation-checkpointing",
            args.activation_checkpointing.is_some(),
            &[Hf],
        ),
        ("--loss", args.loss.is_some(), &[Hf]),
        ("--head", args.head.is_some(), &[Hf]),
        ("--optimizer-in-backward", args.optimizer_in_backward, &[Hf]),
        ("--grad-accum", args.grad_accum.is_some(), &[Hf]),
        ("--paged-optimizer", args.paged_optimizer, &[Hf]),
        ("--context-parallel", args.context_parallel.is_some(), &[Hf]),
        ("--new-tokens", args.new_tokens.is_some(), &[Hf]),
        (
            "--transformers-version",
            args.transformers_version.is_some(),
            &[Hf],
        ),
        ("--sequence-parallel", args.sequence_parallel, &[Hf]),
        ("--framework", args.framework.is_some(), &[Hf]),
        ("--compile", args.compile, &[Hf]),
        ("--activation-offloading", args.activation_offloading, &[Hf]),
        ("--logits-kept", args.logits_kept, &[Hf]),
        ("--zero", args.zero.is_some(), &[Hf]),
        ("--fsdp", args.fsdp, &[Hf]),
        ("--attention", args.attention.is_some(), &[Hf]),
        ("--gpus", args.gpus.is_some(), &[Hf]),
        ("--batch", args.batch.is_some(), &[Hf]),
        ("--tp", args.tp.is_some(), &[Hf, Vllm, Sglang]),
    ]
}

/// The engine asked for, or llama.cpp for a GGUF file; and a clear error
/// for a flag another engine owns or a quantization the engine does not
/// know.
fn choose_engine(args: &PlanArgs, shape: &ModelShape) -> anyhow::Result<EngineName> {
    let engine = match args.engine.as_deref() {
        Some(e) => EngineName::parse(e)
            .ok_or_else(|| anyhow!("--engine {e}: use hf, vllm, llama.cpp or sglang"))?,
        None if shape.gguf_layout.is_some() => EngineName::LlamaCpp,
        None => EngineName::Hf,
    };
    if shape.gguf_layout.is_some() && engine != EngineName::LlamaCpp {
        return Err(anyhow!(
            "{} is a GGUF file, which llama.cpp loads: drop --engine {} (or use --engine llama.cpp)",
            args.model,
            engine.as_str()
        ));
    }
    for (flag, given, engines) in engine_flags(args) {
        if given && !engines.contains(&engine) {
            let owners: Vec<&str> = engines.iter().map(|e| e.as_str()).collect();
            return Err(anyhow!(
                "{flag} does not apply to --engine {} (it is a flag of {})",
                engine.as_str(),
                owners.join(", ")
            ));
        }
    }
    if let Some(q) = args.quant.as_deref() {
        match engine {
            EngineName::LlamaCpp if shape.gguf_layout.is_some() => {
                return Err(anyhow!(
                    "--quant {q}: {} is a GGUF file, whose tensors already have their types; drop --quant",
                    args.model
                ))
            }
            EngineName::LlamaCpp => {
                if GgufQuant::parse(q).is_none() {
                    return Err(anyhow!(
                        "--quant {q} is not a GGUF type llama.cpp knows; use one of {}",
                        GgufQuant::names().join(", ")
                    ));
                }
            }
            _ => {
                if Quant::parse(q).is_none() {
                    return Err(anyhow!(
                        "--quant {q}: use int8, int4, nf4 or fp8 (GGUF types such as q4_k_m go with --engine llama.cpp)"
                    ));
                }
            }
        }
    }
    for (flag, v) in [
        ("--cache-type-k", args.cache_type_k.as_deref()),
        ("--cache-type-v", args.cache_type_v.as_deref()),
    ] {
        if let Some(v) = v {
            if ggml::cache_type(v).is_none() {
                return Err(anyhow!(
                    "{flag} {v}: llama.cpp's cache types are f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1"
                ));
            }
        }
    }
    if let Some(v) = args.cache_type_v.as_deref() {
        let quantized = !matches!(v.to_ascii_lowercase().as_str(), "f32" | "f16" | "bf16");
        if quantized && !args.flash_attn {
            return Err(anyhow!(
                "--cache-type-v {v}: llama.cpp quantizes the V cache only with flash attention; add --flash-attn"
            ));
        }
    }
    for (flag, v) in [
        ("--max-model-len", args.max_model_len),
        ("--max-num-seqs", args.max_num_seqs),
        ("--max-num-batched-tokens", args.max_num_batched_tokens),
        ("--ctx-size", args.ctx_size),
        ("--ubatch-size", args.ubatch_size),
        ("--context-length", args.context_length),
        ("--n-gpu-layers", args.n_gpu_layers),
    ] {
        if v.is_some_and(|v| v > MAX_BATCH_OR_SEQ) {
            return Err(anyhow!("{flag} goes up to {MAX_BATCH_OR_SEQ}"));
        }
    }
    if let Some(f) = args.gpu_memory_utilization {
        check_fraction("--gpu-memory-utilization", f).map_err(|e| anyhow!(e))?;
    }
    if let Some(f) = args.mem_fraction_static {
        check_fraction("--mem-fraction-static", f).map_err(|e| anyhow!(e))?;
    }
    Ok(engine)
}

/// The serving engine's start-up, on the GPU when one is given.
fn engine_report(
    args: &PlanArgs,
    engine: EngineName,
    shape: &ModelShape,
    workload: &Workload,
    gpu: Option<&TargetGpu>,
) -> anyhow::Result<Option<EngineReport>> {
    let spec = gpu.and_then(|g| find_gpu(&g.name));
    let total = gpu.map(|g| {
        spec.and_then(|s| s.cuda_total_bytes)
            .unwrap_or(g.memory_bytes)
    });
    let name = gpu.map_or("", |g| g.name.as_str());
    Ok(match engine {
        EngineName::Hf => None,
        EngineName::Vllm => Some(vllm::plan(
            shape,
            workload,
            &VllmSettings {
                gpu_memory_utilization: args.gpu_memory_utilization,
                // An explicit --seq is the request length when
                // --max-model-len is not given.
                max_model_len: args.max_model_len.or(args.seq),
                max_num_seqs: args.max_num_seqs,
                max_num_batched_tokens: args.max_num_batched_tokens,
                kv_fp8: args.kv_cache_dtype.as_deref() == Some("fp8"),
                enforce_eager: args.enforce_eager,
            },
            total,
            name,
        )),
        EngineName::Sglang => Some(sglang::plan(
            shape,
            workload,
            &SglangSettings {
                mem_fraction_static: args.mem_fraction_static,
                context_length: args.context_length.or(args.seq),
            },
            total,
        )),
        EngineName::LlamaCpp => Some(
            llama_cpp::plan(
                shape,
                &llama_cpp_settings(args),
                gpu.map(|g| usable_capacity(g.memory_bytes)),
                workload.seq,
            )
            .map_err(|e| match e {
                llama_cpp::LlamaCppError::WeightTypeUnknown => anyhow!(
                    "{}: llama.cpp needs the weights' type: give a .gguf file or --quant with one of {}",
                    args.model,
                    GgufQuant::names().join(", ")
                ),
                e => anyhow!("{}: {e}", args.model),
            })?,
        ),
    })
}

fn llama_cpp_settings(args: &PlanArgs) -> LlamaCppSettings {
    LlamaCppSettings {
        quant: args.quant.as_deref().and_then(GgufQuant::parse),
        n_gpu_layers: args.n_gpu_layers,
        ctx_size: args.ctx_size,
        cache_type_k: args.cache_type_k.as_deref().and_then(ggml::cache_type),
        cache_type_v: args.cache_type_v.as_deref().and_then(ggml::cache_type),
        ubatch_size: args.ubatch_size,
        flash_attn: args.flash_attn,
    }
}

/// The per-GPU figures of an engine, in the breakdown's fields: the
/// activation peak as activations, CUDA graphs as temporaries, and the
/// process's other buffers as context.
fn engine_breakdown(r: &EngineReport) -> MemoryBreakdown {
    let allocated = r
        .weights_bytes
        .saturating_add(r.activation_peak_bytes)
        .saturating_add(r.kv_cache_bytes.unwrap_or(0))
        .saturating_add(r.cuda_graph_bytes.unwrap_or(0));
    MemoryBreakdown {
        weights_bytes: r.weights_bytes,
        gradients_bytes: 0,
        optimizer_bytes: 0,
        activations_bytes: r.activation_peak_bytes,
        kv_cache_bytes: r.kv_cache_bytes.unwrap_or(0),
        temporary_bytes: r.cuda_graph_bytes.unwrap_or(0),
        cuda_context_bytes: r.other_bytes,
        allocated_peak_bytes: allocated,
        reserved_peak_bytes: allocated,
        device_used_bytes: r.device_used_bytes(),
    }
}

/// Changes for an engine that does not start, each re-planned: for vLLM a
/// shorter `--max-model-len`, the utilization the length needs, an fp8 KV
/// cache, more tensor parallelism; for llama.cpp fewer offloaded layers, a
/// shorter context, a quantized KV cache.
fn engine_recommendations(
    args: &PlanArgs,
    engine: EngineName,
    shape: &ModelShape,
    workload: &Workload,
    gpu: &TargetGpu,
    r: &EngineReport,
) -> anyhow::Result<Vec<Recommendation>> {
    let mut out = Vec::new();
    let try_change = |out: &mut Vec<Recommendation>,
                      change: String,
                      a: PlanArgs,
                      w: &Workload|
     -> anyhow::Result<()> {
        if let Some(n) = engine_report(&a, engine, shape, w, Some(gpu))? {
            out.push(Recommendation {
                change,
                device_used_bytes: n.device_used_bytes(),
                fits: n.fits == Some(true),
            });
        }
        Ok(())
    };
    match engine {
        EngineName::Vllm | EngineName::Sglang => {
            if let Some(len) = r.max_model_len_fit {
                let mut a = args.clone();
                let flag = if engine == EngineName::Vllm {
                    a.max_model_len = Some(len);
                    "--max-model-len"
                } else {
                    a.context_length = Some(len);
                    "--context-length"
                };
                try_change(&mut out, format!("{flag} {len}"), a, workload)?;
            }
            if engine == EngineName::Vllm {
                if let Some(u) = r.gpu_memory_utilization_needed.filter(|u| *u <= 0.98) {
                    let mut a = args.clone();
                    a.gpu_memory_utilization = Some(u);
                    try_change(
                        &mut out,
                        format!("--gpu-memory-utilization {u}"),
                        a,
                        workload,
                    )?;
                }
                if args.kv_cache_dtype.as_deref() != Some("fp8") {
                    let mut a = args.clone();
                    a.kv_cache_dtype = Some("fp8".into());
                    try_change(&mut out, "--kv-cache-dtype fp8".into(), a, workload)?;
                }
            }
            for tp in [2u64, 4, 8] {
                if tp <= workload.tp {
                    continue;
                }
                let mut a = args.clone();
                a.tp = Some(tp);
                let w = Workload {
                    tp,
                    gpus: tp,
                    ..workload.clone()
                };
                try_change(&mut out, format!("--tp {tp}"), a, &w)?;
                if out.last().is_some_and(|r| r.fits) {
                    break;
                }
            }
        }
        EngineName::LlamaCpp => {
            if let Some(n) = r.n_gpu_layers_fit {
                let mut a = args.clone();
                a.n_gpu_layers = Some(n);
                try_change(&mut out, format!("--n-gpu-layers {n}"), a, workload)?;
            }
            if let Some(c) = r.ctx_size_fit {
                let mut a = args.clone();
                a.ctx_size = Some(c);
                a.n_gpu_layers = None;
                try_change(&mut out, format!("--ctx-size {c}"), a, workload)?;
            }
            if args.cache_type_k.is_none() {
                let mut a = args.clone();
                a.cache_type_k = Some("q8_0".into());
                a.cache_type_v = Some("q8_0".into());
                a.flash_attn = true;
                try_change(
                    &mut out,
                    "--cache-type-k q8_0 --cache-type-v q8_0 --flash-attn".into(),
                    a,
                    workload,
                )?;
            }
        }
        EngineName::Hf => {}
    }
    out.sort_by_key(|r| !r.fits);
    Ok(out)
}

/// The first training-only flag given, for an error that names it.
fn training_flag(args: &PlanArgs) -> &'static str {
    [
        (
            "--activation-checkpointing",
            args.activation_checkpointing.is_some(),
        ),
        ("--loss", args.loss.is_some()),
        ("--optimizer-in-backward", args.optimizer_in_backward),
        ("--grad-accum", args.grad_accum.is_some()),
        ("--paged-optimizer", args.paged_optimizer),
        ("--framework", args.framework.is_some()),
        ("--compile", args.compile),
        ("--activation-offloading", args.activation_offloading),
        ("--logits-kept", args.logits_kept),
    ]
    .into_iter()
    .find_map(|(flag, given)| given.then_some(flag))
    .unwrap_or("this flag")
}

/// The library's workload error in the words of plan's flags, which set
/// those fields of the request.
fn workload_error(e: WorkloadError, args: &PlanArgs) -> anyhow::Error {
    match e {
        WorkloadError::BatchZero => anyhow!("--batch must be at least 1"),
        WorkloadError::SeqZero => anyhow!("--seq must be at least 1"),
        WorkloadError::TooLarge { max } => anyhow!("--batch and --seq go up to {max}"),
        WorkloadError::GpusNotMultipleOfTp { gpus, tp } => {
            anyhow!("--gpus {gpus} is not a multiple of --tp {tp}")
        }
        WorkloadError::ZeroStage(zero) => anyhow!("--zero {zero}: ZeRO stages are 0 to 3"),
        WorkloadError::QuantizedTrainingWithoutLora => anyhow!(
            "training a quantized model needs adapters: add --lora RANK (QLoRA), or drop --quant"
        ),
        WorkloadError::LoraRankZero => anyhow!("--lora RANK must be at least 1"),
        WorkloadError::LoraWithoutTraining => anyhow!("--lora describes training: add --train"),
        WorkloadError::AmpWithoutTraining => anyhow!(
            "--amp describes mixed-precision training: add --train (for half-precision inference use --dtype bf16 or fp16)"
        ),
        WorkloadError::TrainingOnly(what) => {
            anyhow!("{} describes training ({what}): add --train", training_flag(args))
        }
        WorkloadError::GradAccumZero => anyhow!(
            "--grad-accum 0: gradient accumulation needs at least 1 micro-batch per optimizer step"
        ),
        WorkloadError::OptimizerInBackwardWithGradAccum => anyhow!(
            "--optimizer-in-backward with --grad-accum above 1: the step inside backward frees each gradient at once, so nothing accumulates (torchtune refuses the same combination); drop one of them"
        ),
        WorkloadError::PagedOptimizerUnsupported => anyhow!(
            "--paged-optimizer: bitsandbytes has paged versions of adamw, adamw-8bit and lion only; pick one of them with --optimizer"
        ),
        WorkloadError::LossChunksZero => anyhow!("--loss-chunks must be at least 1"),
        WorkloadError::HeadNeedsEncoder => anyhow!(
            "--head {}: the head is chosen for encoder models (BERT-like); {} is not one, and a decoder always ends in its language-model head",
            args.head.as_deref().unwrap_or(""),
            args.model
        ),
        WorkloadError::SequenceParallelWithoutTp => anyhow!(
            "--sequence-parallel splits activations over the tensor-parallel group: add --tp N (N of 2 or more)"
        ),
        WorkloadError::OffloadingWithoutCheckpointing => anyhow!(
            "--activation-offloading moves the checkpointed block inputs to the CPU: add --grad-checkpointing (torchtune refuses offloading without activation checkpointing)"
        ),
        WorkloadError::ContextParallelZero => anyhow!("--context-parallel must be at least 1"),
        WorkloadError::GpusNotMultipleOfTpCp { gpus, tp, cp } => anyhow!(
            "--gpus {gpus} is not a multiple of --tp {tp} times --context-parallel {cp}"
        ),
        e => anyhow!(e),
    }
}

pub fn run(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let gpu = args.gpu.as_deref().map(target_gpu).transpose()?;
    let (shape, source) =
        // The model error names the input; `?` keeps an io error as its
        // source, which main prints after it (`{:#}`).
        resolve(&args.model, &HubCache::from_env())?;
    let engine = choose_engine(args, &shape)?;
    let workload =
        Workload::resolve(&request(args, engine), &shape).map_err(|e| workload_error(e, args))?;
    if engine != EngineName::Hf {
        return run_engine(args, engine, &shape, &source, &workload, gpu);
    }
    let whole = estimate(&shape, &workload);
    let device_map = match args.max_memory.as_deref() {
        Some(spec) => Some(plan_device_map(spec, &shape, &workload)?),
        None => None,
    };
    let per_gpu = device_map
        .as_ref()
        .map_or(whole, |m| with_device_map(whole, m));
    let (fits, mb, ms, recs) = match &gpu {
        Some(g) => {
            let fits = per_gpu.device_used_bytes <= g.memory_bytes;
            // Searches and changes keep the safety margin free; a device
            // map moves the weights off the GPU by the same bytes whatever
            // the batch and sequence.
            let usable = usable_capacity(g.memory_bytes)
                .saturating_add(whole.device_used_bytes)
                .saturating_sub(per_gpu.device_used_bytes);
            let recs = if whole.device_used_bytes <= usable || device_map.is_some() {
                Vec::new()
            } else {
                recommendations(&shape, &workload, g.memory_bytes, gpus(), find_gpu(&g.name))
            };
            (
                Some(fits),
                max_batch(&shape, &workload, usable),
                max_seq(&shape, &workload, usable),
                recs,
            )
        }
        None => (None, None, None, Vec::new()),
    };
    let plan = PlanJson {
        model: model_json(&shape),
        workload: &workload,
        per_gpu,
        gpu,
        fits,
        max_batch: mb,
        max_seq: ms,
        recommendations: recs,
        engine: None,
        device_map,
    };
    let mut out = BufWriter::new(io::stdout().lock());
    if args.json {
        serde_json::to_writer(&mut out, &plan).context("cannot write JSON")?;
        writeln!(out)?;
    } else {
        render(&mut out, &plan, &shape, &source, &Style::detect())?;
    }
    out.flush()?;
    Ok(match plan.fits {
        Some(false) => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

/// The placement of `device_map="auto"` for `--max-memory`, which spreads
/// one copy of the model over the devices it names.
fn plan_device_map(spec: &str, shape: &ModelShape, w: &Workload) -> anyhow::Result<DeviceMap> {
    if w.gpus > 1 || w.tp > 1 || w.zero > 0 {
        return Err(anyhow!(
            "--max-memory places one copy of the model over the devices it names; drop --gpus, --tp, --zero and --fsdp"
        ));
    }
    // The library names no flag; the user typed this one.
    let max = MaxMemory::parse(spec).map_err(|e| match e.problem {
        MaxMemoryProblem::Size(size) => {
            anyhow::Error::new(size).context(format!("--max-memory {:?}", e.spec))
        }
        p => anyhow!("--max-memory {:?}: {}", e.spec, p.describe()),
    })?;
    Ok(infer_auto_device_map(shape, w, &max))
}

fn model_json(shape: &ModelShape) -> ModelJson<'_> {
    ModelJson {
        id: &shape.id,
        architecture: &shape.architecture,
        params: shape.params,
        layers: shape.layers,
        hidden_size: shape.hidden_size,
        heads: shape.heads,
        kv_heads: shape.kv_heads,
        head_dim: shape.head_dim,
        intermediate_size: shape.intermediate_size,
        vocab_size: shape.vocab_size,
        max_position_embeddings: shape.max_position_embeddings,
    }
}

/// `plan --engine vllm|sglang|llama.cpp`: the engine's start-up figures.
fn run_engine(
    args: &PlanArgs,
    engine: EngineName,
    shape: &ModelShape,
    source: &ModelSource,
    workload: &Workload,
    gpu: Option<TargetGpu>,
) -> anyhow::Result<ExitCode> {
    let report = engine_report(args, engine, shape, workload, gpu.as_ref())?
        .ok_or_else(|| anyhow!("no engine report"))?;
    let recs = match (&gpu, report.fits) {
        (Some(g), Some(false)) => {
            engine_recommendations(args, engine, shape, workload, g, &report)?
        }
        _ => Vec::new(),
    };
    let plan = PlanJson {
        model: model_json(shape),
        workload,
        per_gpu: engine_breakdown(&report),
        gpu,
        fits: report.fits,
        max_batch: report.max_concurrency.map(|c| c.floor() as u64),
        max_seq: report.max_model_len_fit.or(report.ctx_size_fit),
        recommendations: recs,
        engine: Some(report),
        device_map: None,
    };
    let mut out = BufWriter::new(io::stdout().lock());
    if args.json {
        serde_json::to_writer(&mut out, &plan).context("cannot write JSON")?;
        writeln!(out)?;
    } else {
        render_engine(&mut out, &plan, shape, source, args, &Style::detect())?;
    }
    out.flush()?;
    Ok(match plan.fits {
        Some(false) => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

fn gib(b: u64) -> String {
    format_size(b)
}

/// The engine's start-up in the lines its own log prints.
fn render_engine(
    out: &mut impl Write,
    plan: &PlanJson<'_>,
    shape: &ModelShape,
    source: &ModelSource,
    args: &PlanArgs,
    s: &Style,
) -> io::Result<()> {
    render_model(out, plan, shape, source, s)?;
    let Some(r) = &plan.engine else {
        return Ok(());
    };
    let na = || "n/a (give --gpu)".to_string();
    writeln!(out)?;
    match r.name {
        EngineName::Vllm | EngineName::Sglang => {
            let title = if r.name == EngineName::Vllm {
                "vLLM start-up, as its log prints it"
            } else {
                "SGLang start-up, as its log prints it"
            };
            writeln!(out, "{}", s.bold(title))?;
            writeln!(
                out,
                "  model weights (per GPU)        {:>12}  {}",
                gib(r.weights_bytes),
                s.dim("Model loading took ...")
            )?;
            writeln!(
                out,
                "  activation peak (profile run)  {:>12}  {}",
                gib(r.activation_peak_bytes),
                s.dim("torch peak of the dummy batch and sampler")
            )?;
            writeln!(
                out,
                "  CUDA, NCCL and other buffers   {:>12}",
                gib(r.other_bytes)
            )?;
            writeln!(
                out,
                "  KV cache                       {:>12}  {}",
                r.kv_cache_bytes.map_or_else(na, gib),
                s.dim("Available KV cache memory")
            )?;
            writeln!(
                out,
                "  KV cache tokens                {:>12}  {}",
                r.kv_cache_tokens.map_or_else(na, |t| t.to_string()),
                s.dim("GPU KV cache size: N tokens")
            )?;
            if let Some(c) = r.max_concurrency {
                writeln!(
                    out,
                    "  maximum concurrency            {:>11.2}x  {}",
                    c,
                    s.dim(&format!("for {} tokens per request", r.request_len))
                )?;
            }
            match r.cuda_graph_bytes {
                Some(0) => writeln!(out, "  CUDA graphs                    {:>12}", "none (--enforce-eager)")?,
                Some(b) => writeln!(
                    out,
                    "  CUDA graphs                    {:>12}  {}",
                    gib(b),
                    s.dim("Graph capturing ... took X GiB (after the cache, beyond the utilization share)")
                )?,
                None => writeln!(out, "  CUDA graphs                    {}", s.dim("not estimated: captured after the KV cache is sized, typically under 1 GiB"))?,
            }
            if let Some(l) = r.max_model_len_fit {
                writeln!(
                    out,
                    "  longest request that fits      {:>12}",
                    format!("{l} tokens")
                )?;
            }
            if let Some(u) = r.gpu_memory_utilization_needed {
                let needed = if u > 1.0 {
                    "more than the GPU".to_string()
                } else {
                    format!("{u:.2}")
                };
                writeln!(
                    out,
                    "  utilization needed             {:>12}  {}",
                    needed,
                    s.dim(&format!("for one request of {} tokens", r.request_len))
                )?;
            }
        }
        EngineName::LlamaCpp => {
            writeln!(out, "{}", s.bold("llama.cpp load, as its log prints it"))?;
            writeln!(out, "  CUDA0 model buffer   {:>12}", gib(r.weights_bytes))?;
            writeln!(
                out,
                "  CPU model buffer     {:>12}  {}",
                r.host_bytes.map_or_else(na, gib),
                s.dim("host RAM")
            )?;
            writeln!(
                out,
                "  CUDA0 KV buffer      {:>12}  {}",
                r.kv_cache_bytes.map_or_else(na, gib),
                s.dim(&format!("{} cells", r.kv_cache_tokens.unwrap_or(0)))
            )?;
            writeln!(
                out,
                "  CUDA0 compute buffer {:>12}",
                gib(r.activation_peak_bytes)
            )?;
            writeln!(out, "  CUDA context         {:>12}", gib(r.other_bytes))?;
            if let Some(n) = r.n_gpu_layers_fit {
                let host = llama_cpp::host_bytes_at(
                    shape,
                    &llama_cpp_settings(args),
                    n,
                    r.kv_cache_tokens.unwrap_or(1),
                )
                .unwrap_or(0);
                writeln!(
                    out,
                    "  most layers on the GPU: -ngl {n} of {} (host RAM for the rest: {})",
                    shape.layers + 1,
                    gib(host)
                )?;
            }
            if let Some(c) = r.ctx_size_fit {
                writeln!(
                    out,
                    "  longest context with every layer on the GPU: {c} tokens"
                )?;
            }
        }
        EngineName::Hf => {}
    }
    let total = plan
        .gpu
        .as_ref()
        .map_or("n/a (give --gpu)".into(), |g| gib(g.memory_bytes));
    let share = match r.name {
        EngineName::Vllm => {
            "vLLM takes its --gpu-memory-utilization share of CUDA's total".to_string()
        }
        EngineName::Sglang => "SGLang takes its --mem-fraction-static share".to_string(),
        _ => format!("the searches keep {:.0}% of it free", SAFETY_MARGIN * 100.0),
    };
    writeln!(out, "  {}", s.dim(&format!("GPU total {total}; {share}")))?;
    if let (Some(g), Some(fits)) = (&plan.gpu, r.fits) {
        writeln!(out)?;
        if fits {
            writeln!(
                out,
                "{}",
                s.bold(&s.green(&format!("Starts on {} ({}).", g.name, gib(g.memory_bytes))))
            )?;
        } else {
            writeln!(
                out,
                "{}",
                s.bold(&s.red(&format!(
                    "Does not start on {} ({}): {}.",
                    g.name,
                    gib(g.memory_bytes),
                    r.refusal.clone().unwrap_or_default()
                )))
            )?;
        }
    }
    // The engine loads what the user named (a repo id or a folder; an
    // -Instruct variant shares its base's shape in the catalog), and the
    // catalog's full id where only a short name was given.
    let served = if args.model.contains('/') {
        args.model.as_str()
    } else {
        shape.id.as_str()
    };
    let program = match r.name {
        EngineName::Vllm => format!("vllm serve {served}"),
        EngineName::Sglang => format!("python -m sglang.launch_server --model-path {served}"),
        EngineName::LlamaCpp => format!(
            "llama-server -m {}",
            if shape.gguf_layout.is_some() {
                args.model.clone()
            } else {
                "MODEL.gguf".into()
            }
        ),
        EngineName::Hf => String::new(),
    };
    writeln!(
        out,
        "
{}",
        s.bold("Flags to paste")
    )?;
    writeln!(out, "  {program} {}", r.flags.join(" "))?;
    render_recommendations(out, plan, s)
}

fn describe_workload(w: &Workload) -> String {
    let mut parts = vec![
        if w.train { "training" } else { "inference" }.to_string(),
        format!("batch {}", w.batch),
        format!(
            "seq {}{}",
            w.seq,
            if w.seq_capped {
                " (the model's maximum)"
            } else {
                ""
            }
        ),
        w.dtype.name().to_string(),
    ];
    if w.amp {
        parts.push("AMP".into());
    }
    if let Some(q) = w.quant {
        parts.push(format!("{q:?} weights").to_lowercase());
    }
    if let Some(o) = w.optimizer {
        if let Some(name) = serde_json::to_value(o)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
        {
            parts.push(name);
        }
    }
    match w.checkpointing {
        Checkpointing::Full => parts.push("gradient checkpointing".into()),
        Checkpointing::Selective => parts.push(
            "selective activation checkpointing (per op: block input, attention output, every other matmul output)"
                .into(),
        ),
        Checkpointing::None => {}
    }
    if let Loss::Chunked { chunks } = w.loss {
        parts.push(format!(
            "loss computed in {chunks} chunks (one chunk upcast to fp32 at a time)"
        ));
    }
    if w.loss == Loss::Sum {
        parts.push("loss is a plain sum of the logits (no cross-entropy)".into());
    }
    if w.head == Some(Head::Mlm) {
        parts.push("masked-LM head (logits over the vocabulary for every token)".into());
    }
    if w.new_tokens > 0 {
        parts.push(format!(
            "generate(): {} new tokens after a {}-token prompt{}",
            w.new_tokens,
            w.prompt_tokens(),
            if w.generates_without_cache() {
                " (no KV cache: each step reruns the whole sequence)"
            } else {
                ""
            }
        ));
    }
    if let Some(v) = w.transformers_version {
        parts.push(format!(
            "transformers {v}{}",
            if w.keeps_step_outputs() && w.generates_without_cache() {
                " (each step's logits live through the next forward)"
            } else {
                ""
            }
        ));
    }
    if w.optimizer_in_backward {
        parts.push("optimizer step in backward (one parameter's gradient at a time)".into());
    }
    if w.grad_accum > 1 {
        parts.push(format!(
            "gradient accumulation over {} micro-batches (gradients held through the next forward)",
            w.grad_accum
        ));
    }
    if w.paged_optimizer {
        parts.push("paged optimizer states (CUDA managed memory)".into());
    }
    if w.activation_offloading {
        parts.push("activation offloading (checkpointed block inputs in CPU memory)".into());
    }
    if w.compile {
        parts.push("compiled loss (half-precision logits kept)".into());
    }
    if w.logits_kept {
        parts.push("logits referenced through backward".into());
    }
    if w.residual_in_fp32() {
        parts.push("norms in fp32 by PEFT's 4-bit preparation (fp32 residual stream)".into());
    }
    if w.framework != Framework::Hf {
        parts.push(format!("run by {}", w.framework.as_str()));
    }
    if w.sequence_parallel {
        parts.push("sequence parallel (no activation replicated over TP)".into());
    }
    if w.context_parallel > 1 {
        parts.push(format!(
            "context parallel {} (each GPU holds 1/{} of every sequence)",
            w.context_parallel, w.context_parallel
        ));
    }
    if let Some(l) = w.lora {
        parts.push(format!(
            "LoRA r{} {}",
            l.rank,
            match l.targets {
                LoraTargets::Qv => "q,v",
                LoraTargets::Qkvo => "q,k,v,o",
                LoraTargets::AllLinear => "all linear",
            }
        ));
    }
    parts.push(format!("{:?} attention", w.attention).to_lowercase());
    if w.gpus > 1 {
        parts.push(format!("{} GPUs (ZeRO {}, TP {})", w.gpus, w.zero, w.tp));
    }
    parts.join(", ")
}

/// The precision regime in words, with its bytes per trainable parameter.
fn describe_precision(w: &Workload) -> Option<String> {
    let p = &w.precision;
    let per = format!(
        "{} B/param (weights {}, gradients {}, optimizer states {})",
        p.weight_bytes_per_param + p.gradient_bytes_per_param + p.optimizer_bytes_per_param,
        p.weight_bytes_per_param,
        p.gradient_bytes_per_param,
        p.optimizer_bytes_per_param
    );
    let trained = if w.lora.is_some() {
        "adapters"
    } else {
        "all weights"
    };
    Some(match p.regime {
        PrecisionRegime::Inference => return None,
        PrecisionRegime::Fp32 => format!("precision: fp32 training of {trained}, {per}"),
        PrecisionRegime::Amp => format!(
            "precision: mixed (AMP) training of {trained}: fp32 masters, half-precision compute, {per}{}",
            if w.lora.is_none() { " plus a 2 B/param half copy for autocast" } else { "" }
        ),
        PrecisionRegime::PureHalf => format!(
            "precision: pure {} training (no fp32 masters), {per}{}",
            w.dtype.name(),
            if p.autocast_only { "; --amp adds autocast only" } else { "" }
        ),
    })
}

fn render_model(
    out: &mut impl Write,
    plan: &PlanJson<'_>,
    shape: &ModelShape,
    source: &ModelSource,
    s: &Style,
) -> io::Result<()> {
    let m = &plan.model;
    let from = match source {
        ModelSource::Path(p) => format!("from {}", p.display()),
        ModelSource::HubCache(p) => format!("from the Hugging Face cache ({})", p.display()),
        ModelSource::Catalog => "from the built-in catalog".to_string(),
    };
    writeln!(out, "{} {}", s.bold(m.id), s.dim(&format!("({from})")))?;
    writeln!(
        out,
        "  {} · {:.2}B parameters{} · {} layers · hidden {} · {} heads ({} KV, dim {}) · MLP {} · vocab {} · max length {}",
        m.architecture,
        m.params as f64 / 1e9,
        if shape.params_exact { " (from the checkpoint)" } else { "" },
        m.layers,
        m.hidden_size,
        m.heads,
        m.kv_heads,
        m.head_dim,
        m.intermediate_size,
        m.vocab_size,
        m.max_position_embeddings.map_or("n/a".into(), |v| v.to_string())
    )?;
    if let Some(local) = shape.local_attention {
        writeln!(
            out,
            "  attention: {} of {} layers {} ({} tokens), the other {} global; the KV cache is counted per layer type",
            local.layers,
            shape.layers,
            local.kind.as_str(),
            local.window,
            shape.layers.saturating_sub(local.layers)
        )?;
    }
    for note in &shape.notes {
        writeln!(out, "  {}", s.yellow(&format!("note: {note}")))?;
    }
    if plan.engine.is_none() {
        writeln!(out, "  {}", describe_workload(plan.workload))?;
    }
    if let Some(line) = describe_precision(plan.workload) {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

/// Where `device_map="auto"` puts each part, per device.
fn render_device_map(out: &mut impl Write, m: &DeviceMap, s: &Style) -> io::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "{}",
        s.bold("device_map=\"auto\" with this max_memory (accelerate's placement)")
    )?;
    for d in &m.devices {
        let budget = d.max_memory_bytes.map_or_else(
            || "no limit".to_string(),
            |b| format!("of {}", format_size(b)),
        );
        writeln!(
            out,
            "  {:<5} {:>12} {:<14} {}",
            d.device.as_str(),
            format_size(d.weights_bytes),
            budget,
            d.modules.join(", ")
        )?;
    }
    writeln!(
        out,
        "  {}",
        s.dim(&format!(
            "GPU 0 keeps {} free for the largest part; per GPU above is GPU 0, with the largest offloaded part ({}) copied in while it runs",
            format_size(m.reserved_bytes),
            format_size(m.offload_transient_bytes)
        ))
    )?;
    if m.offloaded_bytes > 0 {
        writeln!(
            out,
            "  {}",
            s.yellow(&format!(
                "{} of weights offloaded: every forward pass copies them over PCIe, expect generation several times slower",
                format_size(m.offloaded_bytes)
            ))
        )?;
    }
    Ok(())
}

fn render(
    out: &mut impl Write,
    plan: &PlanJson<'_>,
    shape: &ModelShape,
    source: &ModelSource,
    s: &Style,
) -> io::Result<()> {
    render_model(out, plan, shape, source, s)?;
    writeln!(out)?;
    let b = &plan.per_gpu;
    let parts: [(&str, char, u64); 7] = [
        ("weights", '█', b.weights_bytes),
        ("gradients", '▓', b.gradients_bytes),
        ("optimizer states", '▒', b.optimizer_bytes),
        ("activations", '░', b.activations_bytes),
        ("KV cache", '≡', b.kv_cache_bytes),
        ("temporaries", ':', b.temporary_bytes),
        ("CUDA context", '·', b.cuda_context_bytes),
    ];
    let extent = plan.gpu.as_ref().map_or(b.device_used_bytes, |g| {
        g.memory_bytes.max(b.device_used_bytes)
    });
    let values: Vec<u64> = parts
        .iter()
        .map(|p| p.2)
        .chain([extent.saturating_sub(b.allocated_peak_bytes.saturating_add(b.cuda_context_bytes))])
        .collect();
    let cells = proportional_cells(&values, 50);
    let mut bar: String = parts
        .iter()
        .zip(&cells)
        .map(|(p, &c)| p.1.to_string().repeat(c))
        .collect();
    bar.push_str(&" ".repeat(cells[7]));
    writeln!(out, "{}", s.bold("Per GPU"))?;
    writeln!(out, "  [{bar}]")?;
    for (label, glyph, bytes) in parts {
        if bytes > 0 {
            writeln!(out, "   {glyph} {label:<18} {:>12}", format_size(bytes))?;
        }
    }
    writeln!(
        out,
        "   allocated peak     {:>12}  {}",
        format_size(b.allocated_peak_bytes),
        s.dim("torch.cuda.max_memory_allocated")
    )?;
    let listed = parts[..6].iter().fold(0u64, |a, p| a.saturating_add(p.2));
    let w = plan.workload;
    if w.paged_optimizer && b.optimizer_bytes > 0 {
        writeln!(
            out,
            "   {}",
            s.dim("(paged optimizer states live outside PyTorch's allocator: not in the allocated or reserved peak, in device used)")
        )?;
    } else if w.optimizer_in_backward || w.grad_accum > 1 {
        let why = if w.optimizer_in_backward {
            "(the optimizer steps inside backward: one parameter's gradient is held beside the saved activations)"
        } else {
            "(gradient accumulation: the gradients are held while the next micro-batch saves its activations)"
        };
        writeln!(out, "   {}", s.dim(why))?;
    } else if b.gradients_bytes > 0 && listed > b.allocated_peak_bytes {
        writeln!(
            out,
            "   {}",
            s.dim("(gradients and saved activations are not held at once: the step peaks at the larger)")
        )?;
    }
    writeln!(
        out,
        "   reserved peak      {:>12}  {}",
        format_size(b.reserved_peak_bytes),
        s.dim("torch.cuda.max_memory_reserved")
    )?;
    writeln!(
        out,
        "   device used        {:>12}  {}",
        format_size(b.device_used_bytes),
        s.dim("as nvidia-smi shows the process")
    )?;
    if let Some(m) = &plan.device_map {
        render_device_map(out, m, s)?;
    }
    let Some(g) = &plan.gpu else {
        writeln!(
            out,
            "\n  {}",
            s.dim("add --gpu NAME (see `oomguard gpus`) or --gpu SIZE to check the fit")
        )?;
        return Ok(());
    };
    writeln!(out)?;
    let tight = plan.fits == Some(true) && b.device_used_bytes > usable_capacity(g.memory_bytes);
    let verdict = if tight {
        s.yellow(&format!(
            "Fits {} ({}) only within the {:.0}% safety margin: {} to spare; a longer prompt, allocator fragmentation or another process can tip it over.",
            g.name,
            format_size(g.memory_bytes),
            SAFETY_MARGIN * 100.0,
            format_size(g.memory_bytes - b.device_used_bytes)
        ))
    } else if plan.fits == Some(true) {
        s.green(&format!(
            "Fits {} ({}): {} to spare.",
            g.name,
            format_size(g.memory_bytes),
            format_size(g.memory_bytes - b.device_used_bytes)
        ))
    } else {
        s.red(&format!(
            "Does not fit {} ({}): {} over.",
            g.name,
            format_size(g.memory_bytes),
            format_size(b.device_used_bytes - g.memory_bytes)
        ))
    };
    writeln!(out, "{}", s.bold(&verdict))?;
    let none = "none (even 1 does not fit)".to_string();
    writeln!(
        out,
        "  {}",
        s.dim(&format!(
            "largest batch and sequence keep {:.0}% of the card free (the estimate's error and allocator fragmentation)",
            SAFETY_MARGIN * 100.0
        ))
    )?;
    writeln!(
        out,
        "  largest batch that fits: {}",
        plan.max_batch.map_or(none.clone(), |v| v.to_string())
    )?;
    if shape.image_tokens.is_none() {
        writeln!(
            out,
            "  longest sequence that fits: {}",
            plan.max_seq.map_or(none, |v| format!("{v} tokens"))
        )?;
    }
    render_recommendations(out, plan, s)
}

fn render_recommendations(out: &mut impl Write, plan: &PlanJson<'_>, s: &Style) -> io::Result<()> {
    if !plan.recommendations.is_empty() {
        writeln!(out, "\n{}", s.bold("Changes that make it fit"))?;
        let width = plan
            .recommendations
            .iter()
            .map(|r| r.change.chars().count())
            .max()
            .unwrap_or(0);
        for r in &plan.recommendations {
            let mark = if r.fits {
                s.green("fits")
            } else {
                s.red("still over")
            };
            writeln!(
                out,
                "  {:<width$} {:>12}  {}",
                r.change,
                format_size(r.device_used_bytes),
                mark
            )?;
        }
    }
    Ok(())
}
