//! Libraries that allocate outside the framework's cache: cuBLAS, cuDNN
//! and NCCL, whose failures to start share one status with a broken set-up;
//! the RAPIDS pools (RMM) and the allocators that bypass them; several
//! models served from one device; ggml's backends; and Triton kernels that ask for more on-chip shared memory than the GPU
//! has, and XLA programs that overflow a TPU core's on-chip memory spaces,
//! neither of which is device memory at all.

use super::{CauseId, Ranking};
use crate::oom::{Framework, OomEvent, Phase, SharedMemoryLimit};
use crate::size::format_size as fs;
use regex::Regex;
use std::sync::LazyLock;

/// The rules of the library that failed.
pub(super) fn library(r: &mut Ranking, event: &OomEvent) {
    library_with_room(r, event);
    match event.framework {
        Framework::Cublas => cublas(r, event),
        Framework::Cudnn => cudnn(r, event),
        Framework::Nccl => nccl(r, event),
        _ => {}
    }
}

/// A library that fails while a quarter of the device is free.
fn library_with_room(r: &mut Ranking, event: &OomEvent) {
    // With a quarter of the device free, a library that fails to start is
    // rarely short of memory: versions or the driver are the usual suspects.
    if let (Some(f), Some(t)) = (event.memory.free_bytes, event.memory.total_bytes) {
        if f * 4 >= t {
            r.add(
                CauseId::NotMemory,
                0.75,
                format!("{} of the {} device was free when it failed: check the CUDA, cuDNN and driver versions", fs(f), fs(t)),
            );
        }
    }
}

fn cublas(r: &mut Ranking, event: &OomEvent) {
    handle_differential(r, event, "cuBLAS");
}

/// The CUDA math libraries other than cuBLAS, by the status each returns
/// when its handle, plan or workspace cannot get device memory (the
/// libraries' API references: `CUSOLVER_STATUS_ALLOC_FAILED`,
/// `CUSPARSE_STATUS_ALLOC_FAILED`, `CUFFT_ALLOC_FAILED`,
/// `CURAND_STATUS_ALLOCATION_FAILED`).
const MATH_LIBRARY_STATUSES: &[(&str, &str)] = &[
    ("CUSOLVER_STATUS_ALLOC_FAILED", "cuSOLVER"),
    ("CUSPARSE_STATUS_ALLOC_FAILED", "cuSPARSE"),
    ("CUFFT_ALLOC_FAILED", "cuFFT"),
    ("CURAND_STATUS_ALLOCATION_FAILED", "cuRAND"),
];

/// The CUDA math library whose allocation status the message prints.
pub(super) fn math_library(event: &OomEvent) -> Option<&'static str> {
    MATH_LIBRARY_STATUSES
        .iter()
        .find(|(status, _)| event.message.contains(status))
        .map(|(_, name)| *name)
}

/// A CUDA math library that could not allocate its handle, plan or
/// workspace: like cuBLAS, it allocates outside the framework's cache, and
/// the same status comes from a full device or a broken set-up.
pub(super) fn math_library_alloc(r: &mut Ranking, event: &OomEvent, library: &str) {
    library_with_room(r, event);
    handle_differential(r, event, library);
}

/// The differential of a CUDA library that failed to create its handle or
/// workspace: the device was full (of the model before any batch ran, of
/// the batch after), another process, a set-up the status also covers, and
/// the library's own memory outside the framework's cache.
fn handle_differential(r: &mut Ranking, event: &OomEvent, library: &str) {
    // The library reports a full device and a broken set-up with the same
    // status: a differential, each with its check.
    r.undecided();
    let any_call = format!("a {library} call");
    let call = event.facts.call.as_deref().unwrap_or(&any_call);
    preallocated_pool(r, event, &format!("{call} failed"), library, "");
    if GGML_MARKS.iter().any(|m| event.message.contains(m)) {
        // ggml sizes its weights, KV cache and compute buffers when the
        // model loads and creates the handle at the first product of
        // matrices: no batch grows after that, the load's buffers left no
        // room.
        r.add_checked(
            CauseId::NonFrameworkMemory,
            0.55,
            format!("{call} failed in a ggml program: the weights, KV cache and compute buffers it placed when the model loaded left no room for {library}'s handle and workspace, which it creates at the first prompt"),
            Some("nvidia-smi after the model has loaded, before the first prompt: with almost nothing free, offload one or two layers fewer (--n-gpu-layers) or shorten the context, and the handle fits"),
        );
        r.add(
            CauseId::ModelTooLarge,
            0.5,
            "the layers offloaded to the GPU take nearly all of it",
        );
    } else if matches!(event.phase, Phase::ModelLoad | Phase::Startup) {
        // No batch has run yet: what filled the device is the model.
        r.add(
            CauseId::ModelTooLarge,
            0.5,
            format!("{call} failed during {}, before any batch: the weights already on the device left no room for its handle and workspace", event.phase.describe()),
        );
    } else {
        r.add(
            CauseId::BatchTooLarge,
            0.5,
            format!("{call} needs memory for its handle and workspace outside the framework's cache: the framework's tensors had filled the GPU"),
        );
    }
    r.add(
        CauseId::OtherProcesses,
        0.45,
        format!("another process on the same GPU leaves {library} no room for its handle"),
    );
    r.add_checked(
        CauseId::NotMemory,
        0.4,
        "the same status comes from a CUDA toolkit the driver does not support, or a handle created against the wrong current device",
        Some("rerun with CUDA_LAUNCH_BLOCKING=1 and the same device as cuda:0; compare torch.version.cuda with the driver's CUDA version in nvidia-smi"),
    );
    r.add(
        CauseId::NonFrameworkMemory,
        0.35,
        format!("{call} allocates outside the framework's cache, which already took the GPU"),
    );
}

/// A library that allocates outside the framework's pool (NCCL's buffers,
/// a math library's handle), in a process that runs TensorFlow or JAX:
/// both reserve most of the GPU for their pool when they start
/// (TensorFlow's `allow_growth` is off by default, JAX takes 75%), so what
/// the library lacks is the room the pool left, whatever the batch.
/// `what` tells the failure, `library` names it, `also` adds a fix of the
/// library's own to the check.
fn preallocated_pool(r: &mut Ranking, event: &OomEvent, what: &str, library: &str, also: &str) {
    let Some(line) = &event.facts.context.preallocating_framework else {
        return;
    };
    r.add_checked(
        CauseId::NonFrameworkMemory,
        0.65,
        format!("{what}: the process runs TensorFlow or JAX (\"{line}\"), whose own pool takes most of the GPU when it starts and leaves {library} only the rest"),
        Some(&format!("let the framework grow its pool instead (TF_FORCE_GPU_ALLOW_GROWTH=true, or XLA_PYTHON_CLIENT_MEM_FRACTION=0.7 / XLA_PYTHON_CLIENT_PREALLOCATE=false){also}: if {library} then works, the pool had left it too little")),
    );
}

fn cudnn(r: &mut Ranking, event: &OomEvent) {
    let handle = event.message.contains("handle");
    if handle {
        r.add(
            CauseId::NonFrameworkMemory,
            0.7,
            "cuDNN could not create its handle: the framework's allocator had already taken the GPU (TensorFlow reserves nearly all of it by default)",
        );
    } else if event.message.contains("ALLOC_FAILED") {
        r.add(
            CauseId::NonFrameworkMemory,
            0.6,
            "cuDNN could not allocate its workspace outside the framework's cache",
        );
        r.add(
            CauseId::BatchTooLarge,
            0.45,
            "the framework's tensors filled the GPU before cuDNN's workspace",
        );
    } else {
        r.add(
            CauseId::NotMemory,
            0.5,
            "CUDNN_STATUS_NOT_INITIALIZED is often a cuDNN/CUDA/driver mismatch; it is also what cuDNN reports when it cannot allocate at initialization",
        );
        r.add(
            CauseId::NonFrameworkMemory,
            0.45,
            "cuDNN initializes lazily, at the first convolution: the GPU may already be full then",
        );
    }
    r.add(
        CauseId::OtherProcesses,
        0.3,
        "another process may hold the memory cuDNN needs",
    );
}

fn nccl(r: &mut Ranking, event: &OomEvent) {
    let what = match event.memory.requested_bytes {
        Some(q) => format!("NCCL could not allocate {} for its buffers", fs(q)),
        None => "NCCL could not allocate device memory for its buffers".into(),
    };
    // TensorFlow and JAX reserve most of the GPU for their own pool when
    // they start (TensorFlow's `allow_growth` is off by default, JAX takes
    // 75%): NCCL allocates outside that pool, so what it lacks is the room
    // the pool left, whatever the batch.
    preallocated_pool(
        r,
        event,
        &what,
        "NCCL",
        ", or shrink NCCL's buffers (NCCL_BUFFSIZE=2097152)",
    );
    // NCCL's buffers are small next to a training job's tensors:
    // when they do not fit, the job had already filled the GPU.
    r.add(
        CauseId::BatchTooLarge,
        0.55,
        format!("{what}: the training's own tensors had filled the GPU, leaving no room for communication buffers"),
    );
    r.add(
        CauseId::NonFrameworkMemory,
        0.45,
        format!("{what}, outside the framework's cache (NCCL_BUFFSIZE and the number of channels size them)"),
    );
    r.add(
        CauseId::OtherProcesses,
        0.3,
        "another process on the GPU shrinks what NCCL can get",
    );
}

/// What RMM (the RAPIDS memory manager under cuDF, cuML, cuGraph and
/// dask-cuda) says when its pool reached the `maximum_pool_size` it was
/// created with (rmm `pool_memory_resource.hpp`: the pool throws
/// `out_of_memory` "Maximum pool size exceeded" when it cannot grow).
const RMM_POOL_AT_MAXIMUM: &str = "Maximum pool size exceeded";
/// RMM's resource without a pool: every allocation is a plain `cudaMalloc`
/// (rmm `cuda_memory_resource.hpp`), so a failure means the device itself
/// had no room left for an allocation of this process.
const RMM_WITHOUT_POOL: &str = "cuda_memory_resource";
/// Allocators that bypass a RAPIDS pool in the same process: Thrust's
/// default allocator (`parallel_for failed: out of memory`, as XGBoost and
/// cuML kernels print it) and numba's driver calls (`Call to cuMemAlloc
/// results in CUDA_ERROR_OUT_OF_MEMORY`).
const OUTSIDE_THE_POOL: &[&str] = &[
    "parallel_for failed: out of memory",
    "Call to cuMemAlloc results in CUDA_ERROR_OUT_OF_MEMORY",
];

/// Words that put a RAPIDS pool in the process: RMM itself, cuDF, or a
/// dask worker (dask-cuda gives each worker an RMM pool when asked, with
/// `rmm_pool_size`). Without them, numba or Thrust failing says nothing of
/// a pool.
const RAPIDS_IN_THE_PROCESS: &[&str] =
    &["rmm", "RMM", "cudf", "cuDF", "dask", "distributed/worker"];

/// The RAPIDS family (RMM pools, numba, Thrust), from the words of its own
/// errors: which pool or allocator failed says more than the missing
/// figures. Returns true when it applied.
pub(super) fn rapids_pools(r: &mut Ranking, event: &OomEvent) -> bool {
    let text = &event.message;
    let pool_check = Some("the pool the program creates (rmm.reinitialize(pool_allocator=True, maximum_pool_size=...), LocalCUDACluster(rmm_pool_size=...)) against nvidia-smi --query-compute-apps=pid,used_memory --format=csv");
    if text.contains(RMM_POOL_AT_MAXIMUM) {
        r.add_checked(
            CauseId::MemoryCap,
            0.7,
            "RMM's pool reached the maximum size it was created with (maximum_pool_size), not the device's: the pool's cap refused the allocation",
            pool_check,
        );
        r.add(
            CauseId::LeftoverTensors,
            0.5,
            "what the pool holds is still referenced (dataframes or series kept alive, an exception that keeps its frame's buffers): a full pool with a small request means memory not given back",
        );
    } else if text.contains(RMM_WITHOUT_POOL) {
        r.add_checked(
            CauseId::OtherProcesses,
            0.55,
            "RMM allocates straight from the driver here (no pool), so the device itself was full: another process (a second notebook kernel, a dask worker) holds it",
            Some(process_lister(event)),
        );
        r.add(
            CauseId::NonFrameworkMemory,
            0.45,
            "another allocator in this process (a pool created by another library, CuPy's or PyTorch's cache) may hold the GPU",
        );
        r.add(
            CauseId::NotMemory,
            0.4,
            "if even an empty input fails, the CUDA set-up (driver, toolkit, a corrupted context) is at fault, not the data",
        );
    } else if OUTSIDE_THE_POOL.iter().any(|w| text.contains(w))
        && RAPIDS_IN_THE_PROCESS.iter().any(|w| text.contains(w))
    {
        r.add_checked(
            CauseId::NonFrameworkMemory,
            0.55,
            "an allocator outside the RAPIDS pool (Thrust's inside XGBoost or cuML, numba's cuMemAlloc) failed: when an RMM pool (rmm_pool_size, pool_allocator=True) reserves most of the GPU up front, allocations that bypass it find only the rest",
            pool_check,
        );
        r.add(
            CauseId::MemoryCap,
            0.45,
            "a smaller pool (or routing these allocations through RMM: rmm_cupy_allocator, numba's RMM EMM plugin, XGBoost's use_rmm) leaves them room",
        );
        r.add(
            CauseId::OtherProcesses,
            0.42,
            "another process, or another dask worker on the same GPU, holds the rest",
        );
    } else {
        return false;
    }
    r.undecided();
    true
}

/// Rules over the words of libraries that allocate on their own (CuPy's
/// pool, CTranslate2, MLX's Metal command buffers). Returns true when one
/// applied.
pub(super) fn runtime_messages(r: &mut Ranking, event: &OomEvent) -> bool {
    cupy_pool(r, event)
        || ctranslate2(r, event)
        || mlx_command_buffer(r, event)
        || onnx_arena_limit(r, event)
}

/// ONNX Runtime's BFC arena at the limit it was given (bfc_arena.cc
/// `BFCArena::Extend`: "Available memory of N is smaller than requested
/// bytes of M", where N is the limit less what the arena holds). The
/// limit is the session's (`gpu_mem_limit` of the CUDA provider,
/// `OrtArenaCfg`'s `max_mem`), and the arena keeps what it took until the
/// session ends.
fn onnx_arena_limit(r: &mut Ranking, event: &OomEvent) -> bool {
    if event.framework != Framework::OnnxRuntime
        || !event.message.contains("smaller than requested bytes")
    {
        return false;
    }
    let check = Some("the session's arena settings: gpu_mem_limit in the CUDA provider's options, max_mem in OrtArenaCfg, and arena_extend_strategy (kNextPowerOfTwo reserves up to twice a request)");
    r.add_checked(
        CauseId::MemoryCap,
        0.75,
        "the arena reached the limit the session gave it, whatever the device has free: a higher limit, or kSameAsRequested extension, fits",
        check,
    );
    r.add(
        CauseId::BatchTooLarge,
        0.5,
        "a smaller batch or input asks the arena for less",
    );
    r.add_checked(
        CauseId::Fragmentation,
        0.4,
        "the arena never returns what it took until the session ends: inputs of changing shapes leave chunks of sizes the next run cannot use",
        check,
    );
    true
}

/// CuPy's pool (cupy/cuda/memory.pyx `_try_malloc`): with a limit set it
/// refuses before calling the driver when the bytes it holds, cached free
/// blocks included, plus the request exceed the limit; without one it
/// releases its free blocks, collects garbage and retries twice before
/// raising. "allocated so far" is what it held when the request came (the
/// old wording's "total" adds the request).
fn cupy_pool(r: &mut Ranking, event: &OomEvent) -> bool {
    static NEW: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"Out of memory allocating ([\d,]+) bytes \(allocated so far: ([\d,]+) bytes(?:, limit set to: ([\d,]+) bytes)?\)")
            .expect("pattern compiles")
    });
    static OLD: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"out of memory to allocate (\d+) bytes \(total (\d+) bytes(?:, limit set to (\d+) bytes)?\)")
            .expect("pattern compiles")
    });
    let number =
        |m: Option<regex::Match<'_>>| -> Option<u64> { m?.as_str().replace(',', "").parse().ok() };
    let (size, held, limit) = if let Some(c) = NEW.captures(&event.message) {
        (number(c.get(1)), number(c.get(2)), number(c.get(3)))
    } else if let Some(c) = OLD.captures(&event.message) {
        let size = number(c.get(1));
        let total = number(c.get(2));
        (
            size,
            total.zip(size).map(|(t, q)| t.saturating_sub(q)),
            number(c.get(3)),
        )
    } else {
        return false;
    };
    let (Some(q), Some(held)) = (size, held) else {
        return false;
    };
    let usage = Some("cupy.get_default_memory_pool().used_bytes() and .total_bytes() printed each iteration: used bytes that climb are arrays kept alive, total far above used is the pool's cache");
    if let Some(limit) = limit.filter(|&l| held.saturating_add(q) > l) {
        r.add_checked(
            CauseId::MemoryCap,
            0.8,
            format!("CuPy's pool limit of {} (set_limit / CUPY_GPU_MEMORY_LIMIT) refused {}: it counts the {} the pool holds, its cached free blocks included", fs(limit), fs(q), fs(held)),
            usage,
        );
        r.add(
            CauseId::Fragmentation,
            0.5,
            "free blocks the pool keeps count against the limit: free_all_blocks() before a large allocation gives them back",
        );
        return true;
    }
    r.undecided();
    // Chainer's trainer prints "Exception in main training loop" before
    // the error it caught.
    let training = matches!(
        event.phase,
        Phase::Forward | Phase::Backward | Phase::OptimizerStep
    ) || event.message.contains("training loop");
    if held >= q.saturating_mul(4) && training {
        r.add_checked(
            CauseId::BatchTooLarge,
            0.6,
            format!("CuPy's pool held {} in a training step when {} more was asked, and releasing its cached blocks did not make room: the step's arrays (batch, crop size) fill the device", fs(held), fs(q)),
            usage,
        );
        r.add(
            CauseId::LeftoverTensors,
            0.5,
            "if the pool's used bytes climb from one iteration to the next, arrays from earlier steps are kept alive",
        );
    } else if held >= q.saturating_mul(4) {
        r.add_checked(
            CauseId::LeftoverTensors,
            0.6,
            format!("CuPy's pool held {} when {} more was asked, and releasing its cached blocks did not make room: arrays from earlier work are still referenced (results kept in a list, a framework's leak)", fs(held), fs(q)),
            usage,
        );
        r.add(
            CauseId::BatchTooLarge,
            0.5,
            "if memory does not climb between iterations, one iteration's arrays are simply too large",
        );
    } else {
        r.add_checked(
            CauseId::BatchTooLarge,
            0.6,
            format!("one array of {} against {} held by the pool: the data processed at once is too large for the device", fs(q), fs(held)),
            usage,
        );
        r.add(
            CauseId::LeftoverTensors,
            0.4,
            "arrays kept from earlier work take part of the device",
        );
    }
    r.add_checked(
        CauseId::OtherProcesses,
        0.45,
        "another process (or PyTorch's or another library's cache in this one) may hold the rest of the device",
        Some(process_lister(event)),
    );
    true
}

/// CTranslate2 (under faster-whisper, whisperX, OpenNMT) reports CUDA errors
/// as "CUDA failed with error <the CUDA error string>" (its `CUDA_CHECK`).
/// Failing in a model's constructor is the weights; anywhere else the batch
/// and beam sizes weigh in.
fn ctranslate2(r: &mut Ranking, event: &OomEvent) -> bool {
    if !event
        .message
        .contains("CUDA failed with error out of memory")
    {
        return false;
    }
    let check = Some("load the model alone and read nvidia-smi, then run one input with batch_size=1 and beam_size=1: the first shows the weights, the second a step");
    if event.facts.engine_log.in_constructor {
        r.add_checked(
            CauseId::ModelTooLarge,
            0.75,
            "CTranslate2 failed while the model was being built: its weights in this compute_type do not fit; a smaller model or compute_type int8 / int8_float16 fits",
            check,
        );
        r.add(
            CauseId::OtherProcesses,
            0.4,
            "another process on the GPU leaves less for the weights",
        );
        return true;
    }
    r.undecided();
    r.add_checked(
        CauseId::BatchTooLarge,
        0.55,
        "CTranslate2 ran out while translating or transcribing: batch_size x beam_size x length sizes its buffers",
        check,
    );
    r.add_checked(
        CauseId::ModelTooLarge,
        0.5,
        "if one input at batch 1 fails too, the weights in this compute_type leave no room: compute_type int8 or a smaller model",
        check,
    );
    true
}

/// MLX's Metal command buffer failed for lack of memory
/// (`kIOGPUCommandBufferCallbackErrorOutOfMemory`): the GPU could not make
/// the buffers of a step resident. MLX keeps freed buffers in its cache up
/// to its memory limit (mlx `allocator.cpp`), so memory that builds up over
/// a long run is the cache or arrays kept alive; a failure on one request
/// is that request's size.
fn mlx_command_buffer(r: &mut Ranking, event: &OomEvent) -> bool {
    if !event.facts.engine_log.metal_command_buffer || event.framework == Framework::LlamaCpp {
        return false;
    }
    let check = Some("print mx.get_active_memory(), mx.get_cache_memory() and mx.get_peak_memory() between requests: a growing cache is released with mx.clear_cache() or capped with mx.set_cache_limit(), growing active memory is arrays kept alive");
    r.undecided();
    if event.facts.engine_log.ran_long {
        r.add_checked(
            CauseId::Fragmentation,
            0.6,
            "the process had been running long: MLX's buffer cache keeps freed Metal buffers of every size it met, and a new size finds none to reuse",
            check,
        );
        r.add_checked(
            CauseId::LeftoverTensors,
            0.55,
            "arrays kept between requests (a prompt cache, results held in a list) grow over a long run",
            check,
        );
        return true;
    }
    r.add_checked(
        CauseId::BatchTooLarge,
        0.55,
        "one step needed more than the GPU could make resident: a long prompt processed at once (prefill step size) or a large batch",
        check,
    );
    r.add(
        CauseId::ModelTooLarge,
        0.5,
        "the weights take most of the unified memory macOS lets the GPU wire",
    );
    r.add_checked(
        CauseId::Fragmentation,
        0.45,
        "MLX's buffer cache keeps freed buffers up to its memory limit",
        check,
    );
    true
}

/// The process lister of the event's device (NVIDIA's unless the device
/// says otherwise).
fn process_lister(event: &OomEvent) -> &'static str {
    match event.device.kind {
        crate::oom::DeviceKind::Rocm => "rocm-smi --showpids",
        _ => "nvidia-smi --query-compute-apps=pid,used_memory --format=csv",
    }
}

/// Words with which a report or a server's log says that several models
/// share the device: Triton Inference Server (its binary and its
/// `instance_group` count, each instance a full copy of the model, per
/// triton-inference-server/server#6928), and users saying so. A directory
/// of that name (`/opt/tritonserver/lmdeploy/...`, the path of NVIDIA's
/// Triton container that other servers build on) is no running server.
static SEVERAL_MODELS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)(?:^|[^/\w])tritonserver(?:[^/\w]|$)|\binstance[_ ]group\b|\binstance count\b|",
        r"\b(?:other|several|multiple|many|\d+) models\b|\bmodels concurrently\b|",
        r"\bswitch(?:ing)? (?:the |between |to another )?models?\b|\bunloading all loaded models\b"
    ))
    .expect("pattern compiles")
});

/// The text says several models share the device: each holds its weights
/// (and its runtime's pool), so the one that fails needs room the others
/// took. Returns true when it applied.
pub(super) fn several_models(r: &mut Ranking, event: &OomEvent) -> bool {
    let Some(found) = SEVERAL_MODELS.find(&event.message) else {
        return false;
    };
    r.add_checked(
        CauseId::MultipleModels,
        0.6,
        format!(
            "the text says several models share the device (\"{}\"): each keeps its weights and its runtime's memory pool, so the allocation that fails needs room the others hold",
            found.as_str().trim_matches(|c: char| !c.is_alphanumeric())
        ),
        Some("nvidia-smi --query-compute-apps=pid,used_memory --format=csv, and the server's loaded models (Triton: GET /v2/repository/index): load one model per GPU or lower the instance count"),
    );
    true
}

/// How TensorRT's builder and runtime report a failed device allocation
/// (`[defaultAllocator.cpp::allocate::19] Error Code 1: Cuda Runtime (out of
/// memory)`, "Requested amount of GPU memory (N bytes) could not be
/// allocated"), in the logger's `[TRT]` / `[TensorRT]` prefix.
const TENSORRT_MARKS: &[&str] = &["defaultAllocator.cpp", "[TRT]", "[TensorRT]"];

/// TensorRT-LLM's runtime (its own buffers sized by max batch and length)
/// is a serving engine, not the builder.
const TENSORRT_LLM: &str = "TensorRT-LLM";

/// TensorRT ran out building or loading an engine. The builder holds the
/// network's weights and times tactics with scratch memory, while the
/// framework the network came from (PyTorch for Torch-TensorRT, ONNX
/// Runtime's TensorRT provider) usually still holds its own copy of the
/// weights in the same process. Returns true when it applied.
pub(super) fn tensorrt(r: &mut Ranking, event: &OomEvent) -> bool {
    let text = &event.message;
    if text.contains(TENSORRT_LLM) || !TENSORRT_MARKS.iter().any(|m| text.contains(m)) {
        return false;
    }
    let check = Some("nvidia-smi while the engine builds: the source model's weights already on the GPU (a PyTorch or ONNX Runtime copy), and the builder's workspace limit (setMemoryPoolLimit / --memPoolSize)");
    r.add_checked(
        CauseId::ModelTooLarge,
        0.5,
        "TensorRT failed to allocate while building or loading an engine: the network's weights plus the tactics' scratch memory do not fit the GPU",
        check,
    );
    r.add_checked(
        CauseId::MultipleModels,
        0.47,
        "the model the engine is built from often stays on the GPU in the same process (Torch-TensorRT, ONNX Runtime's TensorRT provider), or other engines are loaded: two copies of the weights",
        check,
    );
    true
}

/// The ggml backends of llama.cpp (and Ollama, LM Studio and the other
/// programs built on it) name their source files and asserts
/// (`ggml-cuda.cu`, `GGML_ASSERT`, `ggml_backend_...`): a failure there is
/// llama.cpp's even when no llama.cpp line says so.
const GGML_MARKS: &[&str] = &[
    "ggml-cuda",
    "GGML_ASSERT",
    "ggml_backend_cuda",
    "llama runner",
];

/// A ggml failure the family parsers did not take for llama.cpp's.
pub(super) fn ggml_backend(event: &OomEvent) -> bool {
    event.framework == Framework::Other && GGML_MARKS.iter().any(|m| event.message.contains(m))
}

/// Opt-in shared memory per thread block, in bytes, by the GPU class that
/// has it (NVIDIA CUDA C Programming Guide, "Technical Specifications per
/// Compute Capability": maximum shared memory per block, opt-in). AMD
/// Instinct GPUs (CDNA 1-3) have 64 KiB of LDS per compute unit (AMD CDNA3
/// ISA reference guide), which Triton reports as the same 65536.
const SHARED_MEMORY_LIMITS: &[(u64, &str)] = &[
    (
        101_376,
        "compute capability 8.6/8.9/12.0: a consumer or workstation GPU (RTX 30xx/40xx/50xx, A10, L4, L40)",
    ),
    (166_912, "compute capability 8.0 (A100, A800)"),
    (232_448, "compute capability 9.0 (H100, H200)"),
    (
        65_536,
        "compute capability 7.5 (T4, RTX 20xx), or an AMD Instinct GPU's 64 KiB LDS",
    ),
    (98_304, "compute capability 7.0 (V100)"),
];

/// The GPU class a shared-memory limit points at, when it is a known one.
pub(in crate::diagnose) fn shared_memory_gpu_class(limit: u64) -> Option<&'static str> {
    SHARED_MEMORY_LIMITS
        .iter()
        .find(|(bytes, _)| *bytes == limit)
        .map(|(_, class)| *class)
}

pub(super) fn shared_memory(r: &mut Ranking, shm: &SharedMemoryLimit) {
    let evidence = match (shm.required_bytes, shm.limit_bytes) {
        (Some(need), Some(limit)) => {
            let class = shared_memory_gpu_class(limit)
                .map(|c| format!(" (a limit of {limit} bytes is that of {c})"))
                .unwrap_or_default();
            format!(
                "the kernel needs {need} bytes of shared memory per block, the GPU allows {limit}{class}: this is on-chip memory, not GPU memory; a smaller batch does not help"
            )
        }
        _ => "a Triton kernel needs more shared memory per block than the GPU allows: this is on-chip memory, not GPU memory; a smaller batch does not help".into(),
    };
    r.add(CauseId::NotMemory, 0.95, evidence);
}

/// XLA's TPU compiler names the memory space it ran out of ("Ran out of
/// memory in memory space vmem"). `hbm` is the device memory; the others
/// (`vmem`, `smem`, `cmem`, `sflag`) are a core's on-chip memories, a few
/// MiB that the compiler plans per fused op (Cloud TPU system architecture:
/// each TensorCore's vector and scalar memories), so running out of them is
/// a compiler limit, not a full device.
pub(super) fn on_chip_memory_space(message: &str) -> Option<&str> {
    const MARK: &str = "memory space ";
    let at = message.find(MARK)? + MARK.len();
    let name = message[at..]
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .filter(|n| !n.is_empty())?;
    (!name.eq_ignore_ascii_case("hbm")).then_some(name)
}

/// A compiled program overflowed an on-chip memory space.
pub(super) fn on_chip_memory(r: &mut Ranking, space: &str) {
    r.add_checked(
        CauseId::NotMemory,
        0.9,
        format!("the compiler ran out of {space}, a TPU core's on-chip memory of a few MiB that it plans for each fused op: not the device's memory (HBM), so freeing device memory does not help"),
        Some("the compiler's own report of the op (XLA_FLAGS=--xla_dump_to=DIR): a fused op with many operands or a very long dimension"),
    );
    r.add(
        CauseId::BatchTooLarge,
        0.35,
        "smaller shapes for that op (a shorter sequence or maximum length, a smaller batch) change the compiler's tiling and can fit",
    );
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::oom::MemoryFigures;

    fn library_event(message: &str) -> OomEvent {
        let mut e =
            super::super::testing::event(Framework::Other, crate::oom::MemoryFigures::default());
        e.message = message.into();
        e
    }

    #[test]
    fn cupy_s_pool_limit_counts_its_cached_blocks() {
        let e = library_event("cupy.cuda.memory.OutOfMemoryError: Out of memory allocating 805,306,368 bytes (allocated so far: 536,870,912 bytes, limit set to: 1,073,741,824 bytes).");
        let mut r = Ranking::new();
        assert!(runtime_messages(&mut r, &e));
        assert_eq!(r.top(), Some(CauseId::MemoryCap));
    }

    #[test]
    fn cupy_s_pool_full_of_arrays_is_the_step_in_training_and_leftovers_elsewhere() {
        let e = library_event("cupy.cuda.memory.OutOfMemoryError: out of memory to allocate 1073741824 bytes (total 12373894656 bytes)");
        let mut r = Ranking::new();
        assert!(runtime_messages(&mut r, &e));
        assert_eq!(r.top(), Some(CauseId::LeftoverTensors));
        assert!(r.1);
        let e = library_event("Exception in main training loop: Out of memory allocating 25,600,000 bytes (allocated so far: 3,635,267,072 bytes).");
        let mut r = Ranking::new();
        runtime_messages(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        // One array larger than all the pool holds: the data at once.
        let e = library_event(
            "Out of memory allocating 8,000,000,000 bytes (allocated so far: 1,000,000 bytes).",
        );
        let mut r = Ranking::new();
        runtime_messages(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
    }

    #[test]
    fn ctranslate2_in_a_constructor_is_the_model_and_elsewhere_the_batch() {
        let mut e = library_event("RuntimeError: CUDA failed with error out of memory");
        e.facts.engine_log.in_constructor = true;
        let mut r = Ranking::new();
        assert!(runtime_messages(&mut r, &e));
        assert_eq!(r.top(), Some(CauseId::ModelTooLarge));
        e.facts.engine_log.in_constructor = false;
        let mut r = Ranking::new();
        runtime_messages(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        assert!(r.1);
    }

    #[test]
    fn an_mlx_command_buffer_oom_after_a_long_run_is_its_cache() {
        let mut e = library_event(
            "libc++abi: terminating due to uncaught exception of type std::runtime_error:",
        );
        e.facts.engine_log.metal_command_buffer = true;
        let mut r = Ranking::new();
        assert!(runtime_messages(&mut r, &e));
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        e.facts.engine_log.ran_long = true;
        let mut r = Ranking::new();
        runtime_messages(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::Fragmentation));
        // ggml's Metal backend is llama.cpp's, ranked by its own rules.
        e.framework = Framework::LlamaCpp;
        let mut r = Ranking::new();
        assert!(!runtime_messages(&mut r, &e));
    }

    #[test]
    fn tensorrt_s_allocator_is_the_model_and_its_second_copy_not_trt_llm() {
        let mut e = event(Framework::Other, MemoryFigures::default());
        e.message = "[TRT] [E] 1: [defaultAllocator.cpp::allocate::19] Error Code 1: Cuda Runtime (out of memory)".into();
        let mut r = Ranking::new();
        assert!(tensorrt(&mut r, &e));
        assert_eq!(r.top(), Some(CauseId::ModelTooLarge));
        assert!(r.score(CauseId::MultipleModels).is_some());
        e.message = "[TensorRT-LLM][ERROR] CUDA runtime error in ::cudaMallocAsync(ptr, n, mCudaStream->get()): out of memory".into();
        assert!(!tensorrt(&mut Ranking::new(), &e));
    }

    fn failed(framework: Framework, message: &str, free: Option<u64>) -> OomEvent {
        let mut e = event(
            framework,
            MemoryFigures {
                total_bytes: free.map(|_| 24 * GIB),
                free_bytes: free,
                ..MemoryFigures::default()
            },
        );
        e.message = message.into();
        e
    }

    #[test]
    fn a_library_failing_with_a_quarter_of_the_device_free_is_not_memory() {
        let mut r = Ranking::new();
        library(
            &mut r,
            &failed(
                Framework::Cudnn,
                "CUDNN_STATUS_NOT_INITIALIZED",
                Some(12 * GIB),
            ),
        );
        assert_eq!(r.top(), Some(CauseId::NotMemory));
        assert_eq!(r.score(CauseId::NotMemory), Some(0.75));
    }

    #[test]
    fn the_other_cuda_math_libraries_get_cublas_s_differential_in_their_name() {
        let e = failed(
            Framework::Other,
            "RuntimeError: cusolver error: CUSOLVER_STATUS_ALLOC_FAILED, when calling `cusolverDnCreate(handle)`",
            None,
        );
        assert_eq!(math_library(&e), Some("cuSOLVER"));
        let mut r = Ranking::new();
        math_library_alloc(&mut r, &e, "cuSOLVER");
        assert!(r.1);
        assert!(r
            .0
            .iter()
            .any(|c| c.id == CauseId::OtherProcesses && c.evidence.contains("cuSOLVER")));
        assert_eq!(
            math_library(&failed(
                Framework::Other,
                "CUBLAS_STATUS_ALLOC_FAILED",
                None
            )),
            None
        );
    }

    #[test]
    fn cublas_is_an_undecided_differential_with_checks() {
        let mut r = Ranking::new();
        library(
            &mut r,
            &failed(Framework::Cublas, "CUBLAS_STATUS_ALLOC_FAILED", None),
        );
        assert!(r.1);
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        assert!(r
            .0
            .iter()
            .any(|c| c.id == CauseId::NotMemory && c.check.is_some()));
    }

    #[test]
    fn a_cudnn_handle_is_memory_outside_the_framework() {
        let mut r = Ranking::new();
        library(
            &mut r,
            &failed(
                Framework::Cudnn,
                "Could not create cudnn handle: CUDNN_STATUS_INTERNAL_ERROR",
                None,
            ),
        );
        assert_eq!(r.top(), Some(CauseId::NonFrameworkMemory));
        let mut r = Ranking::new();
        library(
            &mut r,
            &failed(Framework::Nccl, "NCCL failure: out of memory", None),
        );
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        // Inside TensorFlow or JAX, their pool left NCCL too little.
        let mut e = failed(
            Framework::Nccl,
            "NCCL WARN Cuda failure 'out of memory'",
            None,
        );
        e.facts.context.preallocating_framework = Some("MirroredStrategy() crashes".into());
        let mut r = Ranking::new();
        library(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::NonFrameworkMemory));
    }

    #[test]
    fn a_handle_that_fails_beside_tensorflow_s_pool_is_the_pool_s_doing() {
        let mut e = failed(
            Framework::Cublas,
            "failed to create cublas handle: CUBLAS_STATUS_ALLOC_FAILED",
            None,
        );
        let mut r = Ranking::new();
        math_library_alloc(&mut r, &e, "cuBLAS");
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        e.facts.context.preallocating_framework = Some("According to TF documentation".into());
        let mut r = Ranking::new();
        math_library_alloc(&mut r, &e, "cuBLAS");
        assert_eq!(r.top(), Some(CauseId::NonFrameworkMemory));
        assert!(r.0[0].check.as_deref().unwrap().contains("ALLOW_GROWTH"));
    }

    #[test]
    fn shared_memory_limits_name_the_gpu_class() {
        assert!(shared_memory_gpu_class(166_912).unwrap().contains("A100"));
        assert_eq!(shared_memory_gpu_class(12345), None);
        let mut r = Ranking::new();
        shared_memory(
            &mut r,
            &SharedMemoryLimit {
                required_bytes: Some(196_608),
                limit_bytes: Some(101_376),
                via_inductor: false,
            },
        );
        assert_eq!(r.top(), Some(CauseId::NotMemory));
        assert!(r.0[0].evidence.contains("RTX"));
    }

    #[test]
    fn xla_memory_spaces_other_than_hbm_are_on_chip() {
        let vmem = "RESOURCE_EXHAUSTED: XLA:TPU compile permanent error. Ran out of memory in memory space vmem. Used 32.42M of 16.00M vmem.";
        assert_eq!(on_chip_memory_space(vmem), Some("vmem"));
        assert_eq!(
            on_chip_memory_space("Ran out of memory in memory space smem."),
            Some("smem")
        );
        assert_eq!(
            on_chip_memory_space(
                "Ran out of memory in memory space hbm. Used 21.90G of 7.48G hbm."
            ),
            None
        );
        assert_eq!(on_chip_memory_space("CUDA out of memory"), None);
        let mut r = Ranking::new();
        on_chip_memory(&mut r, "vmem");
        assert_eq!(r.top(), Some(CauseId::NotMemory));
    }

    #[test]
    fn rapids_errors_name_the_pool_or_what_bypassed_it() {
        let mut r = Ranking::new();
        let full = failed(Framework::Other, "MemoryError: std::bad_alloc: RMM failure at:/x/include/rmm/mr/device/pool_memory_resource.hpp:182: Maximum pool size exceeded", None);
        assert!(rapids_pools(&mut r, &full));
        assert_eq!(r.top(), Some(CauseId::MemoryCap));
        assert!(r.1);
        let mut r = Ranking::new();
        let direct = failed(Framework::Other, "MemoryError: std::bad_alloc: CUDA error at: ../include/rmm/mr/device/cuda_memory_resource.hpp:68: cudaErrorMemoryAllocation out of memory", None);
        assert!(rapids_pools(&mut r, &direct));
        assert_eq!(r.top(), Some(CauseId::OtherProcesses));
        let mut r = Ranking::new();
        let thrust = failed(Framework::Other, "with RMM: terminate called after throwing an instance of 'thrust::system::system_error'\n  what():  parallel_for failed: out of memory", None);
        assert!(rapids_pools(&mut r, &thrust));
        assert_eq!(r.top(), Some(CauseId::NonFrameworkMemory));
        // numba alone puts no pool in the process.
        let mut r = Ranking::new();
        let numba = failed(
            Framework::Other,
            "CudaAPIError: [2] Call to cuMemAlloc results in CUDA_ERROR_OUT_OF_MEMORY",
            None,
        );
        assert!(!rapids_pools(&mut r, &numba));
        assert!(r.0.is_empty());
    }

    #[test]
    fn onnx_runtime_s_arena_at_its_limit_is_the_session_s_cap() {
        let mut r = Ranking::new();
        let e = failed(Framework::OnnxRuntime, "BFCArena::AllocateRawInternal Available memory of 0 is smaller than requested bytes of 2048", None);
        assert!(runtime_messages(&mut r, &e));
        assert_eq!(r.top(), Some(CauseId::MemoryCap));
        let mut r = Ranking::new();
        let e = failed(
            Framework::OnnxRuntime,
            "Failed to allocate memory for requested buffer of size 1073741824",
            None,
        );
        assert!(!runtime_messages(&mut r, &e));
    }

    #[test]
    fn a_text_naming_several_models_on_the_device_is_multiple_models() {
        let mut r = Ranking::new();
        let served = failed(Framework::OnnxRuntime, "Failed to allocate memory for requested buffer of size 15728896. There are 7 other models also hosted on the same server", None);
        assert!(several_models(&mut r, &served));
        assert_eq!(r.score(CauseId::MultipleModels), Some(0.6));
        assert!(r.0[0].evidence.contains("other models"));
        let mut r = Ranking::new();
        let alone = failed(
            Framework::OnnxRuntime,
            "Failed to allocate memory for requested buffer of size 15728896",
            None,
        );
        assert!(!several_models(&mut r, &alone));
        // Triton's server by its name, not a directory named after it.
        let triton = failed(
            Framework::Other,
            "I0730 tritonserver: CUDA runtime error: out of memory",
            None,
        );
        assert!(several_models(&mut Ranking::new(), &triton));
        let path = failed(Framework::Other, "[TM][ERROR] CUDA runtime error: out of memory /opt/tritonserver/lmdeploy/src/turbomind/utils/allocator.h:223", None);
        assert!(!several_models(&mut Ranking::new(), &path));
    }

    #[test]
    fn ggml_s_own_files_mark_a_llama_cpp_failure() {
        let e = failed(
            Framework::Other,
            "CUDA error 2 at /x/llama.cpp/gguf/ggml-cuda.cu:9132: out of memory",
            None,
        );
        assert!(ggml_backend(&e));
        let e = failed(Framework::LlamaCpp, "ggml-cuda.cu: out of memory", None);
        assert!(
            !ggml_backend(&e),
            "llama.cpp's own events have their rules already"
        );
    }

    #[test]
    fn cublas_before_any_batch_is_the_model() {
        let mut e = failed(Framework::Cublas, "CUBLAS_STATUS_ALLOC_FAILED", None);
        e.phase = Phase::ModelLoad;
        let mut r = Ranking::new();
        library(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::ModelTooLarge));
        assert_eq!(r.score(CauseId::BatchTooLarge), None);
    }

    #[test]
    fn a_ggml_program_s_cublas_handle_lacks_the_room_its_load_left() {
        let e = failed(
            Framework::Cublas,
            "CUDA error: the resource allocation failed current device: 0, in function cublas_handle at ggml/src/ggml-cuda/common.cuh:1500 cublasCreate_v2(&cublas_handles[device])",
            None,
        );
        let mut r = Ranking::new();
        library(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::NonFrameworkMemory));
        assert_eq!(r.score(CauseId::BatchTooLarge), None);
        assert!(r.score(CauseId::ModelTooLarge).is_some());
    }
}
