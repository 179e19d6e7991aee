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
    BatchTooLarge,
    ModelTooLarge,
    Fragmentation,
    OtherProcesses,
    LeftoverTensors,
    MultipleModels,
    NonFrameworkMemory,
    MemoryCap,
    HostMemory,
    KvCache,
    InvalidSize,
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
    pub id: CauseId,
    /// How likely, 0 to 1; causes are sorted by it.
    pub score: f64,
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
    Medium,
    /// The text covers several causes: the checks tell them apart.
    Low,
}

impl Confidence {
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
    AllocatorConfig,
    BatchFinderScope,
    CheckCgroupLimit,
    CheckCudaSetup,
    CheckLimits,
    CheckShapes,
    CheckVersions,
    FitModelForTraining,
    FreeCache,
    FreeLeftoverTensors,
    JaxPreallocate,
    LeaveHeadroom,
    LighterOptimizer,
    LlamaCtxSize,
    LlamaNGpuLayers,
    MixedPrecisionCheckpointing,
    NcclBuffers,
    NonTritonPath,
    OneModelPerDevice,
    RaiseMemoryFraction,
    RaiseMpsWatermark,
    ReduceBatch,
    ReduceHostMemory,
    SglangContextLength,
    SglangKvCacheDtype,
    SglangMemFractionStatic,
    SglangQuantize,
    SglangTensorParallel,
    ShardOrQuantize,
    ShorterGeneration,
    SplitAllocation,
    StopOtherProcess,
    TfMemoryGrowth,
    TritonKernelConfig,
    TruncateSequences,
    UpdateKernelLibrary,
    UpgradePytorch,
    VllmGpuMemoryUtilization,
    VllmKvCacheDtype,
    VllmMaxModelLen,
    FusedOptimizer,
    ReduceEvalBatch,
    VllmMaxNumSeqs,
}

impl FixId {
    /// The id as users and the Python package read it.
    pub fn as_str(self) -> &'static str {
        match self {
            FixId::AllocatorConfig => "allocator_config",
            FixId::BatchFinderScope => "batch_finder_scope",
            FixId::CheckCgroupLimit => "check_cgroup_limit",
            FixId::CheckCudaSetup => "check_cuda_setup",
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
    pub id: FixId,
    pub title: String,
    pub detail: String,
    pub code: Option<String>,
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
    #[serde(skip)]
    pub accounting: Accounting,
    /// One sentence: what failed, in numbers when the message has them.
    #[serde(skip)]
    pub summary: String,
    pub causes: Vec<Cause>,
    pub fixes: Vec<Fix>,
    pub confidence: Confidence,
    /// The batch size the fixes suggest, when `--batch` was given.
    #[serde(skip)]
    pub suggested_batch: Option<u64>,
    /// What to do now, and before the next run: one sentence each.
    #[serde(skip)]
    pub workaround: &'static str,
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
    #[serde(flatten)]
    pub event: OomEvent,
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
