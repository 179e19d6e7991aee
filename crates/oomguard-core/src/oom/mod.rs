//! Finding and parsing out-of-memory events in text.
//!
//! [`scan_reader`] reads any stream (a log, a traceback, a pasted issue) in bounded
//! memory and yields one [`OomEvent`] per failure: the framework, the device,
//! the figures the message states and the phase its traceback shows. The
//! rooms, bottom up: `patterns` (the toolbox of every parser), `families/`
//! (one file per framework family turns a message into figures; its `mod.rs`
//! tries each family), `text` (line cleaning), `phase`, `context` (what the
//! frames and log lines around a failure show about its cause, with `named_model`: a model
//! named by its size), `attribution` (the software and device a
//! message leaves unsaid, from the lines around it), `scan` (the chunked
//! search) and `group` (one event per failure printed several times). This
//! module holds the types they share. Deciding *why* the event happened is not done here but in
//! `crate::diagnose`.

mod attribution;
mod context;
mod families;
mod group;
mod named_model;
mod patterns;
mod phase;
mod scan;
mod text;
mod watchdog;

use serde::Serialize;

pub use context::ContextEvidence;
pub use named_model::NamedModel;
pub(crate) use patterns::windows_commit_limit_at;
pub use scan::{scan_reader, ScanError, ScanOptions, ScanSummary};
pub use watchdog::{JobFailure, WatchdogTimeout};

/// The software that printed the failure, as docs/reference.md names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Framework {
    /// PyTorch (CUDA, ROCm, MPS, XPU or CPU).
    #[serde(rename = "pytorch")]
    PyTorch,
    /// TensorFlow, including Keras.
    #[serde(rename = "tensorflow")]
    TensorFlow,
    /// JAX and its XLA runtime.
    #[serde(rename = "jax")]
    Jax,
    /// ONNX Runtime.
    #[serde(rename = "onnxruntime")]
    OnnxRuntime,
    /// Hugging Face's candle.
    #[serde(rename = "candle")]
    Candle,
    /// llama.cpp and tools built on ggml.
    #[serde(rename = "llama.cpp")]
    LlamaCpp,
    /// The vLLM serving engine.
    #[serde(rename = "vllm")]
    Vllm,
    /// NCCL, the collective-communication library.
    #[serde(rename = "nccl")]
    Nccl,
    /// cuBLAS, NVIDIA's linear-algebra library.
    #[serde(rename = "cublas")]
    Cublas,
    /// cuDNN, NVIDIA's deep-learning kernel library.
    #[serde(rename = "cudnn")]
    Cudnn,
    /// Any other software, or one the text does not name (`other` in JSON).
    #[serde(rename = "other")]
    Other,
}

impl Framework {
    /// The name a user knows the framework by.
    pub fn display_name(self) -> &'static str {
        match self {
            Framework::PyTorch => "PyTorch",
            Framework::TensorFlow => "TensorFlow",
            Framework::Jax => "JAX/XLA",
            Framework::OnnxRuntime => "ONNX Runtime",
            Framework::Candle => "candle",
            Framework::LlamaCpp => "llama.cpp",
            Framework::Vllm => "vLLM",
            Framework::Nccl => "NCCL",
            Framework::Cublas => "cuBLAS",
            Framework::Cudnn => "cuDNN",
            Framework::Other => "unknown framework",
        }
    }
}

/// The kind of memory that ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// An NVIDIA GPU through CUDA.
    Cuda,
    /// An AMD GPU through ROCm/HIP.
    Rocm,
    /// An Apple GPU through Metal Performance Shaders.
    Mps,
    /// An Intel GPU (XPU).
    Xpu,
    /// The host's RAM.
    Cpu,
    /// The text does not say which kind of device.
    Unknown,
}

impl DeviceKind {
    /// What a user calls the device ("CUDA GPU", "host RAM").
    pub fn display_name(self) -> &'static str {
        match self {
            DeviceKind::Cuda => "CUDA GPU",
            DeviceKind::Rocm => "ROCm GPU",
            DeviceKind::Mps => "Apple MPS",
            DeviceKind::Xpu => "Intel XPU",
            DeviceKind::Cpu => "host RAM",
            DeviceKind::Unknown => "unknown device",
        }
    }
}

/// Which device failed; the index is `None` when the text does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Device {
    /// The kind of device.
    pub kind: DeviceKind,
    /// The device's index as the text prints it (`GPU 0`, `cuda:1`); `None` when the text does not say.
    pub index: Option<u32>,
}

impl Device {
    /// A device of unknown kind and index, for text that names none.
    pub const UNKNOWN: Device = Device {
        kind: DeviceKind::Unknown,
        index: None,
    };
}

/// A process the message says holds memory on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProcessMemory {
    /// The process id as printed.
    pub pid: u32,
    /// Bytes the process holds on the device.
    pub bytes: u64,
}

/// Calls macro `$m` with every field of [`MemoryFigures`], so that code
/// that visits each figure lists them once.
macro_rules! figure_fields {
    ($m:ident) => {
        $m!(
            requested_bytes,
            total_bytes,
            free_bytes,
            allocated_bytes,
            reserved_bytes,
            reserved_unallocated_bytes,
            process_bytes,
            non_framework_bytes,
            other_processes,
            allowed_bytes,
            private_pools_bytes
        )
    };
}

/// The figures an OOM message states, in bytes, mapped onto the reference's (docs/reference.md)
/// meanings whatever the framework's own words. `None` is "the text does not
/// say", never zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemoryFigures {
    /// Bytes the failed allocation asked for.
    pub requested_bytes: Option<u64>,
    /// Bytes of the device in total (its capacity).
    pub total_bytes: Option<u64>,
    /// Bytes free on the device when the allocation failed.
    pub free_bytes: Option<u64>,
    /// Held by the framework's allocator for live tensors.
    pub allocated_bytes: Option<u64>,
    /// All the framework's allocator holds, allocated included.
    pub reserved_bytes: Option<u64>,
    /// Held by the framework's allocator but not allocated to tensors (cached, free to reuse).
    pub reserved_unallocated_bytes: Option<u64>,
    /// This process in all, as the driver sees it.
    pub process_bytes: Option<u64>,
    /// This process outside the framework's allocator.
    pub non_framework_bytes: Option<u64>,
    /// One entry per `Process N has M memory in use` clause, as printed.
    pub other_processes: Option<Vec<ProcessMemory>>,
    /// A configured cap (memory fraction, MPS watermark, vLLM utilization).
    pub allowed_bytes: Option<u64>,
    /// Held in CUDA-graph private memory pools (PyTorch's `private pools` figure).
    pub private_pools_bytes: Option<u64>,
}

impl MemoryFigures {
    /// Fills the derived fields from the stated ones, without overwriting
    /// anything stated: reserved = allocated + cached-but-free (and the other
    /// two ways round), non-framework = process - reserved.
    pub fn derive(&mut self) {
        match (
            self.allocated_bytes,
            self.reserved_bytes,
            self.reserved_unallocated_bytes,
        ) {
            (Some(a), None, Some(u)) => self.reserved_bytes = Some(a.saturating_add(u)),
            (Some(a), Some(r), None) => self.reserved_unallocated_bytes = Some(r.saturating_sub(a)),
            (None, Some(r), Some(u)) => self.allocated_bytes = Some(r.saturating_sub(u)),
            _ => {}
        }
        if let (Some(p), Some(r), None) = (
            self.process_bytes,
            self.reserved_bytes,
            self.non_framework_bytes,
        ) {
            self.non_framework_bytes = Some(p.saturating_sub(r));
        }
    }

    /// Fills every unknown field of `self` from `other`.
    pub fn fill_from(&mut self, other: &MemoryFigures) {
        macro_rules! fill {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = other.$f.clone(); } )* };
        }
        figure_fields!(fill);
    }

    /// How many figures are known.
    pub fn count(&self) -> usize {
        macro_rules! count {
            ($($f:ident),*) => { 0 $( + usize::from(self.$f.is_some()) )* };
        }
        figure_fields!(count)
    }

    /// True when the message stated no figure at all.
    pub fn is_empty(&self) -> bool {
        *self == MemoryFigures::default()
    }
}

/// What the program was doing when memory ran out, read from the traceback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Loading or building the model's weights.
    ModelLoad,
    /// The forward pass of training or inference.
    Forward,
    /// The backward pass (gradients).
    Backward,
    /// The optimizer's update step.
    OptimizerStep,
    /// Generating tokens (`generate`, sampling).
    Generation,
    /// An evaluation or validation loop.
    Evaluation,
    /// Loading or preparing data (DataLoader workers, collation).
    DataLoading,
    /// Starting up: a runtime or serving engine reserving memory or profiling.
    Startup,
    /// The traceback does not show the phase.
    Unknown,
}

impl Phase {
    /// The phase in words, for human output.
    pub fn describe(self) -> &'static str {
        match self {
            Phase::ModelLoad => "loading the model",
            Phase::Forward => "the forward pass",
            Phase::Backward => "the backward pass",
            Phase::OptimizerStep => "the optimizer step",
            Phase::Generation => "generation",
            Phase::Evaluation => "evaluation",
            Phase::DataLoading => "data loading",
            Phase::Startup => "start-up",
            Phase::Unknown => "an unknown phase",
        }
    }
}

/// Which generation of PyTorch's message this is: the wording changed, and
/// so did the allocator settings that version understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PyTorchEra {
    /// 0.x THC `cuda runtime error (2) : out of memory`.
    Thc,
    /// 1.0-1.3: `X cached)`.
    Cached,
    /// 1.4-1.9: `reserved in total by PyTorch)`, no allocator settings.
    ReservedInTotal,
    /// 1.10-2.0: as above with the `max_split_size_mb` hint.
    MaxSplitHint,
    /// 2.1: `total capacty of X of which Y is free`.
    Capacty,
    /// 2.2 and later: `total capacity`, `expandable_segments` hint.
    Modern,
    /// A message without figures (`CUDA error: out of memory`, MPS, CPU).
    Unversioned,
}

/// What kind of failure an event is, as its wording says. Most are a
/// device (or host) allocation that failed; the others are told apart because
/// their causes and fixes differ. Figures that only one kind has are its
/// payload.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum EventKind {
    /// An allocation on the device (or in host memory) failed.
    #[default]
    Allocation,
    /// The process was killed for memory: the kernel's OOM killer, a memory
    /// cgroup at its limit, a shell's `Killed`, a launcher's SIGKILL.
    OomKill,
    /// A runtime failed to reserve its device memory pool at start-up
    /// (TensorFlow's stream executor).
    PoolReservation,
    /// A GPU kernel asked for more on-chip shared memory per thread block
    /// than the GPU allows (Triton's `OutOfResources`): not device memory.
    SharedMemory(SharedMemoryLimit),
    /// A serving engine's start-up check found no room for its KV cache.
    EngineCheck(EngineCheck),
    /// A CUDA library (cuBLAS, cuDNN) could not create its handle or
    /// workspace, or find an algorithm that fits.
    LibraryHandle,
    /// A batch-size finder halved the batch on every OOM until it reached
    /// zero (accelerate's `find_executable_batch_size`): batch 1 failed too.
    BatchSearchExhausted,
    /// Memory could not be pinned for a network card or the GPU (NCCL's
    /// `ibv_reg_mr` refused with ENOMEM): the process's locked-memory limit
    /// (`ulimit -l`, RLIMIT_MEMLOCK), not its RAM, stopped it.
    LockedMemory,
}

/// The start-up check of a serving engine that failed.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineCheck {
    /// vLLM's check, and which one failed.
    Vllm(VllmCheck),
    /// SGLang's check, and which one failed.
    Sglang(SglangCheck),
}

/// Facts a message states that are not memory figures but that the diagnosis
/// needs. Not part of the JSON EVENT.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFacts {
    /// What kind of failure this is.
    pub kind: EventKind,
    /// Which generation of PyTorch's message this is; `None` when not PyTorch's.
    pub pytorch_era: Option<PyTorchEra>,
    /// The allocator variable the message itself names
    /// (`PYTORCH_CUDA_ALLOC_CONF`, `PYTORCH_HIP_ALLOC_CONF`, `PYTORCH_ALLOC_CONF`).
    pub alloc_conf_var: Option<String>,
    /// The request is larger than any real allocation (the `1EB` guard).
    pub absurd_request: bool,
    /// TensorFlow/ONNX op or node named in the message.
    pub op: Option<String>,
    /// The failing call, when a library names it (`cublasCreate(handle)`),
    /// or the process the OOM killer ended (`python (pid 935)`).
    pub call: Option<String>,
    /// What the frames and log lines around the failure show about its
    /// cause (weights loaded or gathered, a second model, memory kept from
    /// earlier steps, a batch of one).
    pub context: ContextEvidence,
    /// The failure happened inside a serving engine that reserves its share
    /// of the GPU up front (its frames or log prefixes name it).
    pub serving_engine: Option<ServingEngine>,
    /// What llama.cpp's log said it placed where before the failure.
    pub llama_offload: Option<LlamaOffload>,
    /// What an engine's or library's own log lines around the message say.
    pub engine_log: EngineLog,
    /// The kill is known only from a SIGKILL or exit status 137 that a
    /// launcher, shell or runner reported, not from the kernel's or a
    /// container runtime's own report: the OOM killer is the usual sender,
    /// not the only one (a user, a timeout).
    pub signal_only_kill: bool,
    /// The host's shared memory (`/dev/shm`, which a container sizes on its
    /// own: 64 MB by default under Docker) ran out under a DataLoader worker
    /// (SIGBUS), not the RAM as a whole.
    pub shm_full: bool,
    /// The compiler ran out, building code (gcc's `cc1plus`, nvcc's `cicc`
    /// or `ptxas`, MSVC's heap): host memory of parallel compile jobs, not
    /// a model's.
    pub compiling: bool,
    /// The limit a kill enforced, when its report names one: a container's
    /// memory cgroup or a batch job's memory request.
    pub memory_limit: Option<MemoryLimit>,
}

/// Whose memory limit a kill enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryLimit {
    /// A container's memory cgroup (Kubernetes' `OOMKilled`, Docker, runc,
    /// the kernel's `Memory cgroup out of memory`).
    Container,
    /// The memory a batch scheduler's job asked for (Slurm's `--mem`, LSF's
    /// `-M`, PBS's `-l mem`), or a cluster's per-worker limit (Dask's
    /// `memory_limit`).
    Job,
}

/// What the log lines of a serving engine or library around a failure say
/// about it: which of llama.cpp's buffers failed, the micro-batch the
/// compute buffers were sized for, whether CUDA graphs were being captured,
/// which TensorRT engines were loaded, and whether the failing frame built a
/// model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineLog {
    /// The buffer llama.cpp's error lines name (`llama_kv_cache_init: failed
    /// to allocate buffer for kv cache`, `failed to allocate compute
    /// buffers`, `llama_model_load: ... unable to allocate`).
    pub llama_failed: Option<LlamaBufferKind>,
    /// The micro-batch in tokens (`n_ubatch = N`, `-ub N`, `--ubatch-size N`).
    pub ubatch: Option<u64>,
    /// The engine was capturing CUDA graphs when it failed (its last word
    /// before the failure is a capture starting, not finishing).
    pub cuda_graph_capture: bool,
    /// The sizes TensorRT(-LLM) reported for the engines it loaded
    /// (`Loaded engine size: N MiB`), in log order, at most 8.
    pub engines_loaded: Vec<u64>,
    /// The innermost frame of the traceback before the message is a
    /// constructor or loader (`__init__`, `load_model`): the model was
    /// being built.
    pub in_constructor: bool,
    /// The traceback's frames evaluate a KV or prompt cache
    /// (`prompt_cache`, `kv_cache`, `KVCache`).
    pub cache_frames: bool,
    /// A Metal command buffer failed for lack of memory
    /// (`kIOGPUCommandBufferCallbackErrorOutOfMemory`), on any line of the
    /// failure (the message is often wrapped).
    pub metal_command_buffer: bool,
    /// The failure, or the lines just before it, says one buffer was above
    /// the device's largest single allocation (Metal's `maxBufferLength`,
    /// Vulkan's `maxMemoryAllocationSize`, MLX's and PyTorch MPS's buffer
    /// limit), not that the memory ran out.
    pub per_buffer_limit: bool,
    /// The text before the failure says the process had been running long
    /// (`long-running`, `after 14 hours`, `after many requests`).
    pub ran_long: bool,
    /// ggml's graph allocator failed (`ggml_gallocr_reserve_n: failed to
    /// allocate <dev> buffer`, ggml-alloc.c): the buffer held one compute
    /// graph's tensors, never the weights or the KV cache, which ggml
    /// allocates apart (`alloc_tensor_range`).
    pub graph_failed: bool,
    /// The lines before the failure show a request being served or an
    /// input being encoded (llama.cpp's `srv` / `slot` lines, an image
    /// through a vision projector, Ollama's `loading cache slot`).
    pub serving_request: bool,
}

/// llama.cpp's account of a model load, from the lines it prints before
/// allocating (`offloaded N/M layers to GPU`, then one `<device> <kind>
/// buffer size = X MiB` line per device and kind): with it a fix can compute
/// how many layers (`--n-gpu-layers`) fit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LlamaOffload {
    /// Layers placed on GPUs (`offloaded N/M`: N).
    pub offloaded_layers: Option<u32>,
    /// Layers of the model (`offloaded N/M`: M, the repeating layers plus
    /// the output layer).
    pub total_layers: Option<u32>,
    /// One entry per buffer line, in log order (at most 64).
    pub buffers: Vec<LlamaBuffer>,
}

/// One buffer llama.cpp reported: on which device (`CUDA0`, `ROCm1`,
/// `Metal`, `CPU`, `CUDA_Host`, `CPU_Mapped`), for what, how many bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlamaBuffer {
    /// Where the buffer is, as llama.cpp names it (`CUDA0`, `CPU`, `CUDA_Host`).
    pub device: String,
    /// What the buffer holds.
    pub kind: LlamaBufferKind,
    /// The buffer's size in bytes.
    pub bytes: u64,
}

/// What a llama.cpp buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlamaBufferKind {
    /// The weights (`llm_load_tensors:` / `load_tensors:` lines).
    Model,
    /// The KV cache (`llama_kv_cache_init:`, `llama_kv_cache_unified:`,
    /// `llama_kv_cache:` lines).
    KvCache,
    /// The compute graph's scratch (`... compute buffer size`).
    Compute,
    /// The logits (`... output buffer size`).
    Output,
}

impl EventFacts {
    /// The process was killed for memory.
    pub fn oom_killer(&self) -> bool {
        self.kind == EventKind::OomKill
    }

    /// A runtime failed to reserve its device memory pool at start-up.
    pub fn pool_reservation(&self) -> bool {
        self.kind == EventKind::PoolReservation
    }

    /// A batch-size finder reached zero.
    pub fn batch_search_exhausted(&self) -> bool {
        self.kind == EventKind::BatchSearchExhausted
    }

    /// The locked-memory limit refused memory to pin.
    pub fn locked_memory(&self) -> bool {
        self.kind == EventKind::LockedMemory
    }

    /// Triton's shared-memory figures, when that is what ran out.
    pub fn shared_memory(&self) -> Option<&SharedMemoryLimit> {
        match &self.kind {
            EventKind::SharedMemory(limit) => Some(limit),
            _ => None,
        }
    }

    /// Which vLLM start-up check failed.
    pub fn vllm(&self) -> Option<&VllmCheck> {
        match &self.kind {
            EventKind::EngineCheck(EngineCheck::Vllm(check)) => Some(check),
            _ => None,
        }
    }

    /// Which SGLang start-up check failed.
    pub fn sglang(&self) -> Option<&SglangCheck> {
        match &self.kind {
            EventKind::EngineCheck(EngineCheck::Sglang(check)) => Some(check),
            _ => None,
        }
    }
}

/// Serving engines that size their memory from a share of the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServingEngine {
    /// vLLM: `gpu_memory_utilization`.
    Vllm,
    /// SGLang: `--mem-fraction-static`.
    Sglang,
    /// Hugging Face Text Generation Inference: `--cuda-memory-fraction`;
    /// its warm-up sizes the KV cache from what is left
    /// (`--max-batch-total-tokens` when unset) after one prefill of
    /// `--max-batch-prefill-tokens`.
    Tgi,
}

impl ServingEngine {
    /// The engine's name and the setting that sizes its share.
    pub fn name_and_knob(self) -> (&'static str, &'static str) {
        match self {
            ServingEngine::Vllm => ("vLLM", "gpu_memory_utilization"),
            ServingEngine::Sglang => ("SGLang", "--mem-fraction-static"),
            ServingEngine::Tgi => ("TGI", "--cuda-memory-fraction"),
        }
    }
}

/// A kernel's shared-memory need against the GPU's per-block limit, in bytes
/// of on-chip shared memory as Triton prints them (`Required: N, Hardware
/// limit: M`). Kept out of [`MemoryFigures`], which is device memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedMemoryLimit {
    /// Bytes of shared memory the kernel asked for; `None` when the text does not say.
    pub required_bytes: Option<u64>,
    /// Bytes of shared memory per block the GPU allows; `None` when the text does not say.
    pub limit_bytes: Option<u64>,
    /// Raised while torch.compile (Inductor) compiled the kernel.
    pub via_inductor: bool,
}

/// The checks SGLang makes at start-up that end in a memory error.
#[derive(Debug, Clone, PartialEq)]
pub enum SglangCheck {
    /// `Not enough memory. Please try to increase --mem-fraction-static.`:
    /// the static budget minus the weights leaves no KV-cache token. The
    /// fraction is a share of the GPU, not bytes, so it stays here and out of
    /// `allowed_bytes`.
    NoKvCacheRoom {
        /// The `--mem-fraction-static` share of the GPU (0 to 1) SGLang had;
        /// `None` when the text does not say.
        mem_fraction_static: Option<f64>,
    },
}

/// The checks vLLM makes at start-up that end in a memory error.
#[derive(Debug, Clone, PartialEq)]
pub enum VllmCheck {
    /// `No available memory for the cache blocks`.
    NoCacheBlocks,
    /// The model's maximum length needs more KV cache than fits.
    MaxLenExceedsKvCache {
        /// The `max_model_len` the model was started with, in tokens; `None` when the text does not say.
        max_model_len: Option<u64>,
        /// Tokens the KV cache can hold, when the text says.
        kv_tokens: Option<u64>,
        /// The longest model length that would fit, in tokens, as vLLM estimated it.
        estimated_max_len: Option<u64>,
        /// Bytes of KV cache the maximum length needs, when the text says.
        needed_bytes: Option<u64>,
        /// Bytes available for the KV cache, when the text says.
        available_bytes: Option<u64>,
    },
    /// Free memory at start-up is below `gpu_memory_utilization` x total.
    FreeBelowUtilization {
        /// The `gpu_memory_utilization` share (0 to 1) that was asked for;
        /// `None` when the text does not say.
        utilization: Option<f64>,
    },
}

/// One out-of-memory failure found in text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OomEvent {
    /// The path the text came from, or "-" for standard input.
    pub source: String,
    /// 1-based line where the event's text starts.
    pub line: u64,
    /// The software that printed the failure.
    pub framework: Framework,
    /// The device that ran out of memory.
    pub device: Device,
    /// The error text, wrapped lines joined.
    pub message: String,
    /// The memory figures the message states.
    pub memory: MemoryFigures,
    /// What the program was doing when memory ran out.
    pub phase: Phase,
    /// The ranks whose launcher prefix (`[rank3]:`, `[default3]:`, `3: `,
    /// `[1,3]<stderr>:`) tagged a copy of the failure, each with the device
    /// its copy names; `None` when no copy had a rank prefix. Printed as the
    /// list of ranks.
    #[serde(serialize_with = "ranks_as_numbers")]
    pub ranks: Option<Vec<RankDevice>>,
    /// Facts from the message beyond the figures, for the diagnosis (not serialized).
    #[serde(skip)]
    pub facts: EventFacts,
}

/// A rank that printed an OOM, and the device its copy names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RankDevice {
    /// The rank's number as its prefix prints it.
    pub rank: u32,
    /// The index of the device the rank's copy names; `None` when it names none.
    pub device_index: Option<u32>,
}

fn ranks_as_numbers<S: serde::Serializer>(
    ranks: &Option<Vec<RankDevice>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    ranks
        .as_ref()
        .map(|r| r.iter().map(|c| c.rank).collect::<Vec<u32>>())
        .serialize(serializer)
}

impl OomEvent {
    /// Who failed, for people: the framework, or the tool the reference's (docs/reference.md) framework
    /// list has no name for (it is `other` in JSON).
    pub fn failing_tool(&self) -> &'static str {
        if self.facts.shared_memory().is_some() {
            "Triton"
        } else if self.facts.sglang().is_some() {
            "SGLang"
        } else {
            self.framework.display_name()
        }
    }
}
