//! From one OOM event to what a senior engineer would say about it: where the
//! device's memory went (the accounting), the likely causes ranked with the
//! evidence in numbers, and fixes with concrete values and code.
//!
//! Nothing here parses text or prints: it reads an [`OomEvent`] and returns a
//! [`Diagnosis`] value for the binary to render.

mod accounting;
mod advice;
mod causes;
mod checks;
mod fixes;
pub(crate) mod next_batch;
mod trend;

pub use accounting::{Accounting, Segment, SegmentKind};
pub use next_batch::{next_batch, share_of, upper_bound, BatchFigures, Caution, NextBatch};
pub use trend::MemoryTrend;

use crate::oom::OomEvent;
use serde::Serialize;
use std::collections::BTreeMap;

/// A cause docs/reference.md names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CauseId {
    /// The batch needs more than the memory left after the model; a smaller batch fits.
    BatchTooLarge,
    /// The model alone (weights, and optimizer states when training) does not fit the device.
    ModelTooLarge,
    /// Enough memory is free in total but the allocator's cache has no block large enough.
    Fragmentation,
    /// Other processes on the same device hold the memory this one needed.
    OtherProcesses,
    /// Tensors from earlier steps (losses, outputs, graphs) are still referenced and keep memory.
    LeftoverTensors,
    /// More than one model was loaded on the same device.
    MultipleModels,
    /// This process uses much memory outside the framework's allocator (CUDA context, libraries, NCCL).
    NonFrameworkMemory,
    /// A configured cap (memory fraction, MPS watermark, driver limit) stopped the allocation, not the device's size.
    MemoryCap,
    /// The host's RAM, not the GPU's memory, ran out (the OOM killer or a container limit).
    HostMemory,
    /// A serving engine's KV cache does not fit the memory left after the weights.
    KvCache,
    /// The requested size is impossible (negative or overflowed), a bug rather than a lack of memory.
    InvalidSize,
    /// The message looks like an OOM but most likely has another cause (driver, CUDA setup, kernel limits).
    NotMemory,
}

impl CauseId {
    /// The id as docs/reference.md spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            CauseId::BatchTooLarge => "batch_too_large",
            CauseId::ModelTooLarge => "model_too_large",
            CauseId::Fragmentation => "fragmentation",
            CauseId::OtherProcesses => "other_processes",
            CauseId::LeftoverTensors => "leftover_tensors",
            CauseId::MultipleModels => "multiple_models",
            CauseId::NonFrameworkMemory => "non_framework_memory",
            CauseId::MemoryCap => "memory_cap",
            CauseId::HostMemory => "host_memory",
            CauseId::KvCache => "kv_cache",
            CauseId::InvalidSize => "invalid_size",
            CauseId::NotMemory => "not_memory",
        }
    }

    /// A short title for human output.
    pub fn title(self) -> &'static str {
        match self {
            CauseId::BatchTooLarge => "batch too large for the memory left",
            CauseId::ModelTooLarge => "model too large for this device",
            CauseId::Fragmentation => "fragmentation of the allocator's cache",
            CauseId::OtherProcesses => "other processes hold the memory",
            CauseId::LeftoverTensors => "tensors kept alive from earlier steps",
            CauseId::MultipleModels => "several models on one device",
            CauseId::NonFrameworkMemory => "memory used outside the framework's allocator",
            CauseId::MemoryCap => "a configured memory cap",
            CauseId::HostMemory => "host (CPU) memory exhausted",
            CauseId::KvCache => "KV cache too large",
            CauseId::InvalidSize => "an impossible allocation size",
            CauseId::NotMemory => "probably not a memory problem",
        }
    }
}

/// One ranked cause with the figures that support it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cause {
    /// Which cause this is.
    pub id: CauseId,
    /// How likely, 0 to 1; causes are sorted by it.
    pub score: f64,
    /// The figures from the event that support this cause, in one sentence.
    pub evidence: String,
    /// The one command to run or thing to look at that confirms or rules
    /// out this cause.
    pub check: Option<String>,
}

/// How far the text alone decides between the causes listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// The figures decide.
    High,
    /// The figures favour one cause, but another remains possible.
    Medium,
    /// The text covers several causes: the checks tell them apart.
    Low,
}

impl Confidence {
    /// The confidence as JSON spells it: `high`, `medium` or `low`.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::High => "high",
            Confidence::Medium => "medium",
            Confidence::Low => "low",
        }
    }
}

/// A fix as docs/reference.md and the Python package name it; printed and
/// serialized through [`FixId::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FixId {
    /// Tune the allocator through its environment variable (expandable segments, split size, async allocator).
    AllocatorConfig,
    /// Build the model and optimizer inside the batch finder's retried function, or free them before each retry.
    BatchFinderScope,
    /// Check the container's (cgroup) memory limit, which the OOM killer enforces before the machine's RAM runs out.
    CheckCgroupLimit,
    /// Check the CUDA driver and library setup, and look for an earlier OOM.
    CheckCudaSetup,
    /// Raise the shared-memory (`/dev/shm`) size the DataLoader's workers pass batches through.
    RaiseShmSize,
    /// Raise the memory limit a container or a batch job ran under.
    RaiseMemoryLimit,
    /// Build with fewer parallel compile jobs.
    FewerBuildJobs,
    /// Raise the limit ONNX Runtime's arena was given (`gpu_mem_limit`, `max_mem`).
    RaiseArenaLimit,
    /// Run fewer requests at once in SGLang (`--max-running-requests`), or give each less KV cache.
    SglangMaxRunningRequests,
    /// Check per-allocation, memory-fraction, MIG and driver limits when the request fitted the free memory.
    CheckLimits,
    /// Check the shape of the tensor being allocated, for a request larger than the device.
    CheckShapes,
    /// Check library versions: the impossible size is a bug upstream.
    CheckVersions,
    /// Make the model itself fit for training (checkpointing, bf16, 8-bit optimizer, LoRA, sharding) before the batch.
    FitModelForTraining,
    /// Release the framework's cached but unused blocks between phases.
    FreeCache,
    /// Drop references to finished tensors and evaluate under `no_grad`.
    FreeLeftoverTensors,
    /// Stop JAX from preallocating most of the GPU.
    JaxPreallocate,
    /// Leave headroom for memory used outside the framework's allocator.
    LeaveHeadroom,
    /// Use an 8-bit optimizer or LoRA, or shard the optimizer states.
    LighterOptimizer,
    /// Lower llama.cpp's context size (`--ctx-size`) or quantize its KV cache.
    LlamaCtxSize,
    /// Offload fewer layers to the GPU with llama.cpp's `--n-gpu-layers`.
    LlamaNGpuLayers,
    /// Use bf16/fp16 activations and gradient checkpointing.
    MixedPrecisionCheckpointing,
    /// Leave room for NCCL's buffers, or shrink them.
    NcclBuffers,
    /// Use a non-Triton kernel path for the failing layer.
    NonTritonPath,
    /// Load one model per GPU, or free the previous one first.
    OneModelPerDevice,
    /// Raise or remove the per-process memory fraction.
    RaiseMemoryFraction,
    /// Raise the MPS high-watermark ratio on Apple GPUs.
    RaiseMpsWatermark,
    /// Reduce the batch size (to a computed value when the figures allow).
    ReduceBatch,
    /// Lower the host's memory use (fewer DataLoader workers, memory-mapped data, loading weights straight to the GPU).
    ReduceHostMemory,
    /// Lower SGLang's `--context-length`.
    SglangContextLength,
    /// Store SGLang's KV cache in fp8.
    SglangKvCacheDtype,
    /// Change SGLang's `--mem-fraction-static`, or say why raising it will not help.
    SglangMemFractionStatic,
    /// Serve a quantized checkpoint with SGLang.
    SglangQuantize,
    /// Shard the weights over GPUs with SGLang's `--tp`.
    SglangTensorParallel,
    /// Shard the model across GPUs or load it quantized or in half precision.
    ShardOrQuantize,
    /// Gather a checkpoint's full state dict onto the CPU, on rank 0 only.
    SaveStateOnCpu,
    /// Generate for fewer sequences at once, or fewer new tokens.
    ShorterGeneration,
    /// Split the tensor into chunks, or allow large allocations on Intel XPUs.
    SplitAllocation,
    /// Stop the other process holding the memory, or give each job its own GPU.
    StopOtherProcess,
    /// Let TensorFlow grow its memory instead of mapping it all at start.
    TfMemoryGrowth,
    /// Pick a Triton kernel configuration that fits this GPU's shared memory.
    TritonKernelConfig,
    /// Cap the sequence length of each sample.
    TruncateSequences,
    /// Update the library that ships the failing kernel.
    UpdateKernelLibrary,
    /// Upgrade PyTorch to a version whose allocator can be tuned.
    UpgradePytorch,
    /// Change vLLM's `--gpu-memory-utilization`.
    VllmGpuMemoryUtilization,
    /// Store vLLM's KV cache in fp8.
    VllmKvCacheDtype,
    /// Lower vLLM's `--max-model-len` to what the KV cache left holds.
    VllmMaxModelLen,
    /// Use the fused (or non-foreach) optimizer step, which needs no group-sized temporaries.
    FusedOptimizer,
    /// Lower the evaluation batch and move predictions to the CPU as they come.
    ReduceEvalBatch,
    /// Lower vLLM's `--max-num-seqs`.
    VllmMaxNumSeqs,
    /// Set TGI's token budgets (`--max-batch-prefill-tokens`, `--max-batch-total-tokens`).
    TgiTokenBudget,
    /// Raise a managed runtime's own heap limit (the JVM's `-Xmx`, V8's `--max-old-space-size`).
    RaiseHeapLimit,
    /// Lower the share of free memory LMDeploy's TurboMind gives its KV cache (`cache_max_entry_count`).
    TurbomindCacheShare,
}

impl FixId {
    /// The id as users and the Python package read it.
    pub fn as_str(self) -> &'static str {
        match self {
            FixId::AllocatorConfig => "allocator_config",
            FixId::BatchFinderScope => "batch_finder_scope",
            FixId::CheckCgroupLimit => "check_cgroup_limit",
            FixId::CheckCudaSetup => "check_cuda_setup",
            FixId::RaiseShmSize => "raise_shm_size",
            FixId::RaiseMemoryLimit => "raise_memory_limit",
            FixId::RaiseArenaLimit => "raise_arena_limit",
            FixId::SglangMaxRunningRequests => "sglang_max_running_requests",
            FixId::FewerBuildJobs => "fewer_build_jobs",
            FixId::CheckLimits => "check_limits",
            FixId::CheckShapes => "check_shapes",
            FixId::CheckVersions => "check_versions",
            FixId::FitModelForTraining => "fit_model_for_training",
            FixId::FreeCache => "free_cache",
            FixId::FreeLeftoverTensors => "free_leftover_tensors",
            FixId::JaxPreallocate => "jax_preallocate",
            FixId::LeaveHeadroom => "leave_headroom",
            FixId::LighterOptimizer => "lighter_optimizer",
            FixId::LlamaCtxSize => "llama_ctx_size",
            FixId::LlamaNGpuLayers => "llama_n_gpu_layers",
            FixId::MixedPrecisionCheckpointing => "mixed_precision_checkpointing",
            FixId::NcclBuffers => "nccl_buffers",
            FixId::NonTritonPath => "non_triton_path",
            FixId::OneModelPerDevice => "one_model_per_device",
            FixId::RaiseMemoryFraction => "raise_memory_fraction",
            FixId::RaiseMpsWatermark => "raise_mps_watermark",
            FixId::ReduceBatch => "reduce_batch",
            FixId::ReduceHostMemory => "reduce_host_memory",
            FixId::SglangContextLength => "sglang_context_length",
            FixId::SglangKvCacheDtype => "sglang_kv_cache_dtype",
            FixId::SglangMemFractionStatic => "sglang_mem_fraction_static",
            FixId::SglangQuantize => "sglang_quantize",
            FixId::SglangTensorParallel => "sglang_tensor_parallel",
            FixId::ShardOrQuantize => "shard_or_quantize",
            FixId::SaveStateOnCpu => "save_state_on_cpu",
            FixId::ShorterGeneration => "shorter_generation",
            FixId::SplitAllocation => "split_allocation",
            FixId::StopOtherProcess => "stop_other_process",
            FixId::TfMemoryGrowth => "tf_memory_growth",
            FixId::TritonKernelConfig => "triton_kernel_config",
            FixId::TruncateSequences => "truncate_sequences",
            FixId::UpdateKernelLibrary => "update_kernel_library",
            FixId::UpgradePytorch => "upgrade_pytorch",
            FixId::VllmGpuMemoryUtilization => "vllm_gpu_memory_utilization",
            FixId::VllmKvCacheDtype => "vllm_kv_cache_dtype",
            FixId::VllmMaxModelLen => "vllm_max_model_len",
            FixId::FusedOptimizer => "fused_optimizer",
            FixId::ReduceEvalBatch => "reduce_eval_batch",
            FixId::VllmMaxNumSeqs => "vllm_max_num_seqs",
            FixId::TgiTokenBudget => "tgi_token_budget",
            FixId::RaiseHeapLimit => "raise_heap_limit",
            FixId::TurbomindCacheShare => "turbomind_cache_share",
        }
    }
}

impl Serialize for FixId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl PartialEq<&str> for FixId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One fix, best first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fix {
    /// Which fix this is.
    pub id: FixId,
    /// One line saying what to do, with concrete values when known.
    pub title: String,
    /// Why it helps and how to apply it, in a few sentences.
    pub detail: String,
    /// Code or a command to copy, when there is one.
    pub code: Option<String>,
    /// Environment variables to set, name to value, when the fix is one.
    pub env: Option<BTreeMap<String, String>>,
}

/// What the user told us beyond the text.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiagnoseContext {
    /// The batch size of the failing run (`--batch`).
    pub batch: Option<u64>,
    /// What the process's GPU memory did before it failed, when sampled.
    pub memory_trend: Option<trend::MemoryTrend>,
}

/// The diagnosis of one event. Only the causes and fixes are part of the
/// JSON EVENT; the rest is for human output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnosis {
    /// Where the device's memory was when the allocation failed.
    #[serde(skip)]
    pub accounting: Accounting,
    /// One sentence: what failed, in numbers when the message has them.
    #[serde(skip)]
    pub summary: String,
    /// Likely causes, most likely first.
    pub causes: Vec<Cause>,
    /// Fixes to try, best first.
    pub fixes: Vec<Fix>,
    /// How far the text decides between the causes.
    pub confidence: Confidence,
    /// The batch size the fixes suggest, when `--batch` was given.
    #[serde(skip)]
    pub suggested_batch: Option<u64>,
    /// What to do now, and before the next run: one sentence each.
    #[serde(skip)]
    pub workaround: &'static str,
    /// What to change so the next run does not fail this way, in one sentence.
    #[serde(skip)]
    pub prevention: &'static str,
}

/// Diagnoses one event.
pub fn diagnose(event: &OomEvent, ctx: &DiagnoseContext) -> Diagnosis {
    let accounting = Accounting::of(event);
    let ranked = causes::rank(event, &accounting);
    let mut causes = ranked.causes;
    causes::from_trend(&mut causes, ctx.memory_trend);
    causes.sort_by(|a, b| b.score.total_cmp(&a.score));
    checks::fill(&mut causes, event);
    let confidence = causes::confidence(&causes, ranked.undecided);
    let (fixes, suggested_batch) = fixes::propose(event, &accounting, &causes, ctx);
    Diagnosis {
        summary: accounting::summary(event, &accounting),
        accounting,
        causes,
        fixes,
        confidence,
        suggested_batch,
        workaround: advice::workaround(event),
        prevention: advice::prevention(event),
    }
}

/// An event with its diagnosis, serialized as the reference's (docs/reference.md) EVENT (the event's
/// fields, then `causes` and `fixes`).
#[derive(Debug, Clone, Serialize)]
pub struct ExplainedEvent {
    /// The event as found in the text.
    #[serde(flatten)]
    pub event: OomEvent,
    /// The diagnosis of the event.
    #[serde(flatten)]
    pub diagnosis: Diagnosis,
}

impl ExplainedEvent {
    /// Diagnoses `event` and keeps both.
    pub fn new(event: OomEvent, ctx: &DiagnoseContext) -> ExplainedEvent {
        let diagnosis = diagnose(&event, ctx);
        ExplainedEvent { event, diagnosis }
    }
}

#[cfg(test)]
mod tests {
    use super::FixId;

    #[test]
    fn fix_ids_serialize_as_the_names_users_read() {
        assert_eq!(
            serde_json::to_string(&FixId::ReduceBatch).unwrap(),
            "\"reduce_batch\""
        );
        assert_eq!(FixId::ShardOrQuantize.as_str(), "shard_or_quantize");
        assert_eq!(FixId::LlamaNGpuLayers.as_str(), "llama_n_gpu_layers");
    }
}
