//! Serving engines that size their memory from a share of the GPU: vLLM's
//! start-up checks and its steps inside a reserved share, SGLang's static
//! budget, and llama.cpp's offloaded layers and context.

use super::{CauseId, Ranking, GIB};
use crate::oom::{
    Framework, LlamaBufferKind, OomEvent, Phase, ServingEngine, SglangCheck, VllmCheck,
};
use crate::size::format_size as fs;
use regex::Regex;
use std::sync::LazyLock;

/// Missing the utilization target by less than this share of the GPU is a
/// target set a sliver too high, not memory held elsewhere.
const SLIVER_OF_THE_GPU: u64 = 20;
/// A CUDA context and its libraries take a few GiB at most; more in use
/// before the engine starts is other processes.
const CONTEXT_AND_LIBRARIES: u64 = 4 * GIB;

/// The vLLM check that failed at start-up.
pub(super) fn vllm(r: &mut Ranking, check: &VllmCheck, event: &OomEvent) {
    match check {
        VllmCheck::NoCacheBlocks => vllm_no_cache_blocks(r),
        VllmCheck::MaxLenExceedsKvCache {
            max_model_len,
            kv_tokens,
            needed_bytes,
            available_bytes,
            ..
        } => vllm_max_len(
            r,
            *max_model_len,
            *kv_tokens,
            *needed_bytes,
            *available_bytes,
        ),
        VllmCheck::FreeBelowUtilization { utilization } => {
            vllm_free_below_utilization(r, event, *utilization)
        }
    }
}

fn vllm_no_cache_blocks(r: &mut Ranking) {
    // vLLM sizes the KV cache as gpu_memory_utilization x the GPU,
    // minus the weights and the profiled activations (worker
    // `determine_num_available_blocks`): the cap and what the
    // KV cache needs come first; the weights only when they alone
    // exceed the cap, which the check's text does not show.
    r.add(
        CauseId::MemoryCap,
        0.7,
        "after the weights and one profiled batch, nothing was left within gpu_memory_utilization for the KV cache: the cap is too low for this model on this GPU",
    );
    r.add(
        CauseId::KvCache,
        0.6,
        "the KV cache gets only what the weights and the profiled batch leave: --max-num-seqs and --max-model-len size that batch",
    );
    r.add(
        CauseId::ModelTooLarge,
        0.45,
        "if the weights alone exceed gpu_memory_utilization x the GPU (the 'Loading model weights took' line), no cap helps: shard or quantize",
    );
}

/// One sequence of the maximum length needs more KV cache than there is.
fn vllm_max_len(
    r: &mut Ranking,
    max_model_len: Option<u64>,
    kv_tokens: Option<u64>,
    needed_bytes: Option<u64>,
    available_bytes: Option<u64>,
) {
    let evidence = match (max_model_len, kv_tokens, needed_bytes, available_bytes) {
        (Some(len), Some(tok), _, _) => {
            format!("one sequence of max_model_len {len} tokens needs more KV cache than the {tok} tokens that fit")
        }
        (Some(len), _, Some(n), Some(a)) => format!(
            "one sequence of {len} tokens needs {} of KV cache; {} is available",
            fs(n),
            fs(a)
        ),
        _ => "the model's maximum length needs more KV cache than is available".into(),
    };
    r.add(CauseId::KvCache, 0.85, evidence);
    r.add(
        CauseId::MemoryCap,
        0.45,
        "gpu_memory_utilization limits the memory left for the KV cache",
    );
}

/// The free memory at start-up is below gpu_memory_utilization x the GPU.
fn vllm_free_below_utilization(r: &mut Ranking, event: &OomEvent, utilization: Option<f64>) {
    let m = &event.memory;
    // Missing by a sliver (under 5% of the GPU): the target leaves too
    // little for this process's own CUDA context and libraries.
    if let (Some(f), Some(t), Some(a)) = (m.free_bytes, m.total_bytes, m.allowed_bytes) {
        let short = a.saturating_sub(f);
        if short * SLIVER_OF_THE_GPU < t {
            r.add(
                CauseId::MemoryCap,
                0.8,
                format!(
                    "gpu_memory_utilization {} asks for {} of the whole GPU, only {} more than the {} free: a slightly lower target fits",
                    utilization.map_or("n/a".into(), |u| u.to_string()),
                    fs(a),
                    fs(short),
                    fs(f)
                ),
            );
            let used = t.saturating_sub(f);
            // A few GiB is this process's CUDA context and libraries;
            // more is other processes on the GPU.
            if used > CONTEXT_AND_LIBRARIES {
                r.add(
                    CauseId::OtherProcesses,
                    0.7,
                    format!("{} of the GPU is held before vLLM starts: other processes (or a previous engine)", fs(used)),
                );
            } else {
                r.add(
                    CauseId::NonFrameworkMemory,
                    0.5,
                    format!(
                        "{} of the GPU is in use before vLLM starts (CUDA context, libraries)",
                        fs(used)
                    ),
                );
            }
            return;
        }
    }
    let evidence = match (m.free_bytes, m.total_bytes, m.allowed_bytes) {
        (Some(f), Some(t), Some(a)) => format!(
            "only {} of {} was free at start-up; gpu_memory_utilization asks for {}: {} is held by other processes (or a previous engine)",
            fs(f),
            fs(t),
            fs(a),
            fs(t.saturating_sub(f))
        ),
        _ => "free memory at start-up is below what gpu_memory_utilization asks for".into(),
    };
    r.add(CauseId::OtherProcesses, 0.8, evidence);
    r.add(
        CauseId::MemoryCap,
        0.5,
        format!(
            "gpu_memory_utilization {} is a share of the whole GPU, not of its free memory",
            utilization.map_or("n/a".into(), |u| u.to_string())
        ),
    );
}

/// A PyTorch failure inside a serving engine that reserved its share of the
/// GPU up front.
pub(super) fn serving_engine(r: &mut Ranking, event: &OomEvent) {
    let (Some(engine), Framework::PyTorch) = (event.facts.serving_engine, event.framework) else {
        return;
    };
    // The weights load before the engine sizes its share (vLLM's
    // `load_model` runs before `determine_num_available_blocks`): no share
    // limits them.
    if event.phase == Phase::ModelLoad {
        return;
    }
    if engine == ServingEngine::Tgi {
        if event.phase == Phase::Startup {
            tgi_startup(r);
        } else {
            tgi_serving(r);
        }
        return;
    }
    let (name, knob) = engine.name_and_knob();
    // Above memory this process holds outside PyTorch's allocator (0.7):
    // in an engine that is its CUDA graphs, NCCL and all-reduce buffers,
    // which the engine's profile counts against the same share.
    r.add_checked(
        CauseId::MemoryCap,
        0.75,
        format!("{name} reserves {knob} x the GPU up front for the weights and the KV cache; a step that needs more than its profiled peak (CUDA-graph capture, the sampler, a long prompt) finds only the rest"),
        Some("the engine's start-up lines: the memory it profiled, the KV cache size, and the share it was given"),
    );
    r.add(
        CauseId::KvCache,
        0.55,
        format!("a smaller KV cache (lower {knob}, shorter maximum length, fewer sequences at once) leaves the headroom the failing step needs"),
    );
}

pub(super) fn sglang(r: &mut Ranking, check: &SglangCheck) {
    let SglangCheck::NoKvCacheRoom {
        mem_fraction_static,
    } = check;
    let fraction = mem_fraction_static.map_or("mem_fraction_static".to_string(), |f| {
        format!("mem_fraction_static={f}")
    });
    // SGLang sizes its KV pool as what is left of mem_fraction_static x the
    // GPU after the weights (model_runner.py profile_max_num_token): the
    // check fails when that is nothing. The cap is the direct cause and
    // raising it the direct fix, so memory_cap leads; when the weights nearly
    // fill the GPU no cap helps, so model_too_large follows; the KV cache
    // itself is not too large, it got no room at all, so it comes last.
    r.add(
        CauseId::MemoryCap,
        0.8,
        format!(
            "SGLang's static budget ({fraction} of the GPU's memory, for the weights and the KV cache) left no room for a single KV-cache token once the weights were loaded: the fraction is too low for this model on this GPU"
        ),
    );
    r.add(
        CauseId::ModelTooLarge,
        0.6,
        "if a fraction of 0.9 or more still fails (or then runs out of memory while serving), the weights alone nearly fill the GPU: shard or quantize them",
    );
    r.add(
        CauseId::OtherProcesses,
        0.4,
        "SGLang measures the memory still free after loading: whatever other processes hold on the GPU comes out of the same budget",
    );
    r.add(
        CauseId::KvCache,
        0.3,
        "the KV-cache pool is what got no room: fewer bytes per token (an fp8 KV cache) make a small remainder go further",
    );
}

/// How far llama.cpp got before the failure, from the buffers its log
/// reported: it places the weights (`load_tensors`), then the KV cache
/// (`llama_kv_cache_init`), then reserves the compute buffers
/// (`ggml_gallocr_reserve_n`), each on the devices it chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LlamaStage {
    /// No buffer on a GPU reported yet: the weights were being placed.
    Weights,
    /// The weights are on the GPUs: the KV cache or compute buffers failed.
    Context,
    /// The KV cache is on the GPUs too: the compute buffers failed.
    Compute,
}

/// A buffer on a GPU, as llama.cpp names devices (`CUDA0`, `ROCm1`,
/// `Metal`, `Vulkan0`), not host memory (`CPU`, `CPU_Mapped`, `CUDA_Host`).
fn on_a_gpu(device: &str) -> bool {
    !device.starts_with("CPU") && !device.ends_with("_Host")
}

fn llama_stage(event: &OomEvent) -> LlamaStage {
    let Some(offload) = &event.facts.llama_offload else {
        return LlamaStage::Weights;
    };
    let placed = |kind: LlamaBufferKind| {
        offload
            .buffers
            .iter()
            .any(|b| b.kind == kind && on_a_gpu(&b.device))
    };
    if placed(LlamaBufferKind::KvCache) {
        LlamaStage::Compute
    } else if placed(LlamaBufferKind::Model) {
        LlamaStage::Context
    } else {
        LlamaStage::Weights
    }
}

/// The model the text names and an upper bound of its weights, when one
/// buffer asked for more than that: a GGUF's weights take at most 16 bits
/// a parameter (its quantizations take fewer), so a larger buffer cannot
/// be the weights being placed.
fn beyond_named_weights(event: &OomEvent) -> Option<BeyondWeights> {
    let m = event.facts.context.named_model.as_ref()?;
    let bound = m.params.saturating_mul(2).max(m.weight_bytes_per_gpu());
    let request = event.memory.requested_bytes?;
    (request > bound).then(|| BeyondWeights {
        name: m.name.clone(),
        bound,
        request,
    })
}

/// One llama.cpp buffer larger than the named model's weights.
struct BeyondWeights {
    name: String,
    /// The weights' bytes at 16 bits a parameter (or at the named precision).
    bound: u64,
    request: u64,
}

/// The buffer is the context's: its KV cache or compute buffers.
fn llama_context_buffer(r: &mut Ranking, b: &BeyondWeights) {
    r.add_checked(
        CauseId::KvCache,
        0.8,
        format!(
            "one buffer of {} is more than all the weights of {} (at most {} even at 16 bits): it is the context's, the KV cache sized for n_ctx or the compute buffers (flash attention, -fa, shrinks those); a smaller -c / num_ctx fits",
            fs(b.request),
            b.name,
            fs(b.bound)
        ),
        Some(LLAMA_BUFFER_CHECK),
    );
    r.add(
        CauseId::BatchTooLarge,
        0.6,
        "the compute buffers also grow with the batch (-b / -ub)",
    );
    r.add(
        CauseId::ModelTooLarge,
        0.4,
        "fewer offloaded layers leave room for the context",
    );
}

/// Where to look in llama.cpp's log to tell the weights from the context.
const LLAMA_BUFFER_CHECK: &str = "the lines around the failure: `llama_model_load: ... unable to allocate` is the weights (lower -ngl / num_gpu), `llama_kv_cache_init: failed` the context (lower -c / num_ctx), `failed to allocate compute buffers` the compute graph (lower -b / -ub)";

/// llama.cpp's default micro-batch and logical batch (common.h:
/// `n_ubatch = 512`, `n_batch = 2048`): a micro-batch of four times the
/// default batch or more makes the compute buffers, which grow with it, the
/// first suspect.
const LLAMA_LARGE_UBATCH: u64 = 4 * 2048;
pub(super) fn llama(r: &mut Ranking, event: &OomEvent) {
    // Ranked with the engine's own words: one buffer above the limit.
    if event.facts.engine_log.per_buffer_limit {
        return;
    }
    if let Some(kind) = event.facts.engine_log.llama_failed {
        llama_failed_buffer(r, event, kind);
        return;
    }
    if llama_large_ubatch(r, event) {
        return;
    }
    let log = &event.facts.engine_log;
    if log.graph_failed && log.serving_request && llama_stage(event) != LlamaStage::Compute {
        llama_request_graph(r, event);
        return;
    }
    let q = event.memory.requested_bytes;
    if event.phase != Phase::ModelLoad {
        r.add(
            CauseId::KvCache,
            0.6,
            "the context (KV cache) and compute buffers do not fit next to the weights",
        );
        r.add(
            CauseId::ModelTooLarge,
            0.4,
            "fewer offloaded layers leave room for the context",
        );
        return;
    }
    let stage = llama_stage(event);
    if stage == LlamaStage::Weights {
        if let Some(beyond) = beyond_named_weights(event) {
            llama_context_buffer(r, &beyond);
            return;
        }
    }
    match stage {
        LlamaStage::Weights => {
            r.add_checked(
                CauseId::ModelTooLarge,
                0.8,
                match q {
                    Some(q) => format!(
                        "the weights offloaded to the GPU need {} in one buffer",
                        fs(q)
                    ),
                    None => "the layers offloaded to the GPU do not fit".into(),
                },
                Some(LLAMA_BUFFER_CHECK),
            );
            r.add_checked(
                CauseId::KvCache,
                0.6,
                "if the weights were placed and the context failed, the KV cache sized for n_ctx is what does not fit",
                Some(LLAMA_BUFFER_CHECK),
            );
        }
        LlamaStage::Context => {
            r.add_checked(
                CauseId::KvCache,
                0.8,
                "the log already placed the weights on the GPU: what failed after them is the context, the KV cache sized for n_ctx (or its compute buffers)",
                Some(LLAMA_BUFFER_CHECK),
            );
            r.add(
                CauseId::ModelTooLarge,
                0.5,
                "fewer offloaded layers leave room for the context",
            );
        }
        LlamaStage::Compute => {
            r.add_checked(
                CauseId::KvCache,
                0.7,
                "the log already placed the weights and the KV cache: the compute buffers that failed after them grow with the context length",
                Some(LLAMA_BUFFER_CHECK),
            );
            r.add_checked(
                CauseId::BatchTooLarge,
                0.6,
                "the compute buffers also grow with the logical and physical batch (-b / -ub, n_batch / n_ubatch)",
                Some(LLAMA_BUFFER_CHECK),
            );
            r.add(
                CauseId::ModelTooLarge,
                0.45,
                "fewer offloaded layers leave room for the compute buffers",
            );
        }
    }
}

/// llama.cpp's own error line named the buffer that failed: that decides
/// between the weights, the KV cache and the compute buffers, whatever the
/// log placed before.
fn llama_failed_buffer(r: &mut Ranking, event: &OomEvent, kind: LlamaBufferKind) {
    let size = event
        .memory
        .requested_bytes
        .map_or(String::new(), |q| format!(" ({})", fs(q)));
    match kind {
        LlamaBufferKind::KvCache if event.facts.context.speech_model.is_some() => {
            // whisper.cpp keeps one decoder cache per beam (or best-of
            // candidate) and per parallel processor: its context is short,
            // its cache grows with them.
            r.add_checked(
                CauseId::KvCache,
                0.85,
                format!("whisper.cpp says its KV-cache buffer{size} could not be allocated: the decoder keeps one cache per beam and per parallel processor, so fewer beams (--beam-size) or processors fit"),
                Some("rerun with --beam-size 1 (or a lower best-of): if it passes, the per-beam caches were the limit"),
            );
            r.add(
                CauseId::ModelTooLarge,
                0.45,
                "a smaller or quantized model leaves more room for the caches",
            );
        }
        LlamaBufferKind::KvCache => {
            r.add_checked(
                CauseId::KvCache,
                0.85,
                format!("llama.cpp says the KV-cache buffer{size} could not be allocated: it is sized for the context (n_ctx x layers x KV heads), so a smaller -c / num_ctx or a quantized cache (-ctk q8_0 -ctv q8_0) fits"),
                Some(LLAMA_BUFFER_CHECK),
            );
            r.add(
                CauseId::ModelTooLarge,
                0.45,
                "fewer offloaded layers (-ngl) move part of the KV cache to host memory with them",
            );
        }
        LlamaBufferKind::Compute => {
            let ubatch = event.facts.engine_log.ubatch;
            let large = ubatch.is_some_and(|u| u >= LLAMA_LARGE_UBATCH);
            r.add_checked(
                CauseId::BatchTooLarge,
                if large { 0.8 } else { 0.6 },
                format!(
                    "llama.cpp says its compute buffers{size} could not be allocated: they grow with the micro-batch{}; a smaller -ub / -b fits",
                    ubatch.map_or(String::new(), |u| format!(" ({u} tokens)"))
                ),
                Some(LLAMA_BUFFER_CHECK),
            );
            r.add_checked(
                CauseId::KvCache,
                if large { 0.55 } else { 0.7 },
                format!("llama.cpp says its compute buffers{size} could not be allocated: they also grow with the context (-c / num_ctx) the attention reads"),
                Some(LLAMA_BUFFER_CHECK),
            );
            r.add(
                CauseId::ModelTooLarge,
                0.45,
                "fewer offloaded layers leave room for the compute buffers",
            );
        }
        LlamaBufferKind::Model | LlamaBufferKind::Output => {
            r.add_checked(
                CauseId::ModelTooLarge,
                0.85,
                format!("llama.cpp says the weights' buffer{size} could not be allocated: fewer offloaded layers (-ngl / num_gpu) or a smaller quantization fit"),
                Some(LLAMA_BUFFER_CHECK),
            );
            r.add(
                CauseId::KvCache,
                0.4,
                "once the weights fit, the context still needs its KV cache next to them",
            );
        }
    }
}

/// ggml's graph allocator failed while a request was served or an input
/// encoded, with no word from llama.cpp that it was creating the context
/// (`failed to allocate compute buffers`) and no KV cache placed before
/// it: the graph of one request (an image through a vision encoder, a
/// prompt batch) is sized by that input, so the input and the micro-batch
/// lead. At load, the graph reserved is the context's worst case, ranked
/// by the load's own rules.
fn llama_request_graph(r: &mut Ranking, event: &OomEvent) {
    let size = event
        .memory
        .requested_bytes
        .map_or(String::new(), |q| format!(" of {}", fs(q)));
    r.add_checked(
        CauseId::BatchTooLarge,
        0.75,
        format!("ggml could not reserve a compute graph's buffer{size}: it holds one request's tensors (an image through the vision encoder, a batch of prompt tokens) and grows with that input; a smaller image, a smaller -b / -ub, or the projector on the CPU (--no-mmproj-offload) fits"),
        Some(LLAMA_BUFFER_CHECK),
    );
    r.add(
        CauseId::KvCache,
        0.5,
        "the graph's attention also grows with the context it reads (-c / num_ctx)",
    );
    r.add(
        CauseId::ModelTooLarge,
        0.45,
        "fewer offloaded layers (-ngl / num_gpu) leave room for the graph",
    );
}

/// A micro-batch far above llama.cpp's default, outside model loading: the
/// compute buffers it sizes are the first suspect. Returns true when it
/// applied.
fn llama_large_ubatch(r: &mut Ranking, event: &OomEvent) -> bool {
    let Some(u) = event
        .facts
        .engine_log
        .ubatch
        .filter(|&u| u >= LLAMA_LARGE_UBATCH)
    else {
        return false;
    };
    if event.phase == Phase::ModelLoad {
        return false;
    }
    r.add_checked(
        CauseId::BatchTooLarge,
        0.7,
        format!("a micro-batch of {u} tokens (-ub), far above llama.cpp's default of 512: the compute buffers grow with it, and one allocation may exceed what the backend gives at once (Vulkan's maxMemoryAllocationSize)"),
        Some("rerun with the default -ub 512 (and -b 2048): if it passes, it was the batch"),
    );
    r.add(
        CauseId::KvCache,
        0.5,
        "the compute buffers also grow with the context (-c) the attention reads",
    );
    true
}

/// One buffer above the device's per-buffer limit (Metal's
/// `maxBufferLength`), refused before any memory runs out. ggml's Metal
/// backend names the weights' buffer `data`; MLX reports the array it
/// evaluates. Returns true when it applied.
pub(super) fn per_buffer_limit(r: &mut Ranking, event: &OomEvent) -> bool {
    if !event.facts.engine_log.per_buffer_limit {
        return false;
    }
    let size = event
        .memory
        .requested_bytes
        .map_or("one buffer".to_string(), |q| {
            format!("one buffer of {}", fs(q))
        });
    let check = Some("the limit in the message is the device's largest single buffer, not its memory: a smaller piece (fewer layers per buffer, a shorter prompt chunk) fits where the total does");
    // llama.cpp loads the weights and creates the context (KV cache,
    // compute buffers) in one "model load": the buffer its log names wins
    // over the phase.
    let weights = event.message.contains("'data'")
        || match event.facts.engine_log.llama_failed {
            Some(kind) => kind == LlamaBufferKind::Model,
            None => event.phase == Phase::ModelLoad && !event.message.contains("gallocr"),
        };
    if weights {
        r.add_checked(
            CauseId::ModelTooLarge,
            0.8,
            format!("{size} for the weights is larger than the largest buffer the GPU allows: the model must be split over several buffers or made smaller"),
            check,
        );
        return true;
    }
    // Frames that evaluate a KV or prompt cache say which array it is; a
    // compute buffer holds the step's arrays, not the cache.
    let log = &event.facts.engine_log;
    let cache = match log.llama_failed {
        Some(kind) => kind == LlamaBufferKind::KvCache,
        None => log.cache_frames,
    };
    r.add_checked(
        CauseId::BatchTooLarge,
        if cache { 0.5 } else { 0.65 },
        format!("{size} is larger than the largest buffer the GPU allows: one array of the step (a prompt processed at once, a long attention) is too big; a smaller prefill step or batch splits it"),
        check,
    );
    r.add_checked(
        CauseId::KvCache,
        if cache { 0.7 } else { 0.55 },
        format!("{size} is larger than the largest buffer the GPU allows: a KV cache for a long context can be that array{}", if cache { ", and the failing frames evaluate the cache" } else { "" }),
        check,
    );
    true
}

/// Rules over an engine's own words around a failure: a buffer above the
/// per-buffer limit, TGI's warm-up, a CUDA-graph capture, a TensorRT-LLM
/// engine loaded twice. Returns true when one applied.
pub(super) fn engine_messages(r: &mut Ranking, event: &OomEvent) -> bool {
    per_buffer_limit(r, event)
        | ggml_context_pool(r, event)
        | ggml_graph_buffer(r, event)
        | sglang_serving(r, event)
        | tgi_warmup(r, event)
        | cuda_graph_capture(r, event)
        | tensorrt_llm_engine_copy(r, event)
        | turbomind(r, event)
}

/// Where LMDeploy's TurboMind engine failed, by the source file its error
/// names (`[TM][ERROR] CUDA runtime error: out of memory
/// .../turbomind/utils/allocator.h:223`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::diagnose) enum TurbomindFailure {
    /// Its allocator (`allocator.h`), or its cache manager out of entries
    /// (`No enough cache entries`): at start-up TurboMind gives the KV cache
    /// `cache_max_entry_count` of the memory left after the weights (0.8 by
    /// default; lmdeploy/messages.py), so the buffers of the requests that
    /// follow find little. LMDeploy's FAQ puts this failure on that share.
    Runtime,
    /// `memory_utils.cu`'s `deviceMalloc`, with which TurboMind's weight
    /// classes allocate the model's weights: the weights do not fit.
    Weights,
}

/// TurboMind's failure, from its tag (`[TM]`) or its sources' path.
pub(in crate::diagnose) fn turbomind_failure(message: &str) -> Option<TurbomindFailure> {
    if !(message.contains("[TM]") || message.contains("turbomind/")) {
        return None;
    }
    if message.contains("allocator.h") || message.contains("cache entries") {
        Some(TurbomindFailure::Runtime)
    } else if message.contains("memory_utils.cu") {
        Some(TurbomindFailure::Weights)
    } else {
        None
    }
}

/// LMDeploy's TurboMind ran out: its KV-cache share, or the weights. Returns
/// true when it applied.
fn turbomind(r: &mut Ranking, event: &OomEvent) -> bool {
    let check = Some("lmdeploy's log of the KV cache blocks it allocated at start-up; rerun with --cache-max-entry-count 0.2 (TurbomindEngineConfig(cache_max_entry_count=0.2)): if it passes, the cache's share was the cause; if it still fails while loading, the weights do not fit");
    match turbomind_failure(&event.message) {
        None => return false,
        Some(TurbomindFailure::Runtime) => {
            r.add_checked(
                CauseId::KvCache,
                0.8,
                "TurboMind's allocator failed after start-up: the KV cache took its share (cache_max_entry_count, 0.8 of the memory left after the weights by default) and the buffers of the requests in flight find too little beside it",
                check,
            );
            r.add(
                CauseId::BatchTooLarge,
                0.45,
                "more requests at once (max_batch_size, the client's concurrency) or longer sessions need more of what the cache left",
            );
        }
        Some(TurbomindFailure::Weights) => {
            r.add_checked(
                CauseId::ModelTooLarge,
                0.75,
                "TurboMind failed allocating with deviceMalloc (memory_utils.cu), as it allocates the model's weights: the weights do not fit the GPU (or its share with tensor parallelism)",
                Some("parameters x bytes per parameter (2 for bf16/fp16, about 0.5 for 4-bit AWQ) against the GPU's memory; split it with --tp N or load a quantized (AWQ) model"),
            );
            r.add_checked(
                CauseId::KvCache,
                0.4,
                "a KV-cache share set before the weights were placed leaves them less",
                check,
            );
        }
    }
    true
}

/// A ggml context's fixed pool without room for one more tensor (see the
/// parser): the program sized the pool for the batch, prompt or context it
/// expected, and one tensor of this step is larger, or its estimate of the
/// size is wrong (ggml's issues trace several such pools to a size
/// computed too small, fixed in a later release). Not the device's memory.
fn ggml_context_pool(r: &mut Ranking, event: &OomEvent) -> bool {
    if !ggml_fixed_pool(event) {
        return false;
    }
    let check = Some("whether a smaller batch (n_batch) or a shorter prompt or context passes; if the same input passed on an older release, the program's pool estimate is at fault: update it");
    r.add_checked(
        CauseId::BatchTooLarge,
        0.75,
        "one tensor of this step is larger than the pool the program set aside for it: a batch (n_batch), prompt or context larger than the pool was sized for",
        check,
    );
    r.add_checked(
        CauseId::InvalidSize,
        0.5,
        "the program computed its pool too small: a sizing bug, not a lack of memory",
        check,
    );
    true
}

/// True when the event is a ggml pool the program sized (a context's pool,
/// or the scratch buffer 2023's ggml put intermediate tensors in): host
/// memory set aside, not the host's memory running out.
pub(super) fn ggml_fixed_pool(event: &OomEvent) -> bool {
    event.message.contains("space in the context's memory pool")
        || event.message.contains("space in the scratch memory")
}

/// ggml's graph allocator without a block for a tensor in the compute
/// buffer it measured for the same graph beforehand (see the parser): the
/// measurement and the allocation disagree, an allocator bug of that
/// release (llama.cpp traced such reports to a node order that split the
/// buffer's free space, and fixed them in later releases), not the
/// device's memory running out. The largest free block below the need
/// says the free space was there, in pieces.
fn ggml_graph_buffer(r: &mut Ranking, event: &OomEvent) -> bool {
    if !event.message.contains("not enough space in the buffer") {
        return false;
    }
    let check = Some("update llama.cpp (or the app that bundles it) and rerun the same input: if it passes, it was the allocator's bug; a different batch (-b, -ub) changes the graph and may pass meanwhile");
    r.add_checked(
        CauseId::NotMemory,
        0.75,
        "the graph allocator could not place a tensor in the compute buffer it had measured for this very graph: a sizing bug of this release, not a lack of device memory",
        check,
    );
    r.add_checked(
        CauseId::Fragmentation,
        0.6,
        "the buffer's free space was split into blocks each smaller than the tensor (the largest block available is below what was needed)",
        check,
    );
    true
}

/// SGLang's pools exhausted while serving (see the parser): the request
/// rows, sized by --max-running-requests, or the KV tokens, sized at
/// start-up from what --mem-fraction-static left after the weights. A pool
/// that runs out only after a while of serving may be losing slots to
/// requests that never returned them.
fn sglang_serving(r: &mut Ranking, event: &OomEvent) -> bool {
    let rows = event.message.contains("alloc_req_slots runs out of memory");
    let tokens = event.message.contains("Prefill out of memory")
        || event.message.contains("Decode out of memory");
    if event.framework != Framework::Other || !(rows || tokens) {
        return false;
    }
    let check = Some("SGLang's start-up log (max_total_num_tokens, max_running_requests, the KV cache's size) against the requests in flight; if the pool's free count falls while no request runs, slots are not returned");
    r.add_checked(
        CauseId::KvCache,
        0.7,
        if rows {
            "SGLang's request pool (one row of the KV cache's token map per running request, --max-running-requests of them) had no free row for the batch: fewer running requests fit"
        } else {
            "SGLang's KV-cache token pool, sized at start-up, had no room for the batch's tokens: fewer running requests, a shorter context (--context-length) or an fp8 KV cache (--kv-cache-dtype fp8_e5m2) fit"
        },
        check,
    );
    r.add_checked(
        CauseId::LeftoverTensors,
        0.5,
        "when it fails only after serving for a while, with few requests in flight, finished or aborted requests may keep their slots",
        check,
    );
    true
}

/// A PyTorch failure while TGI starts: after the weights, its warm-up runs
/// one prefill of `--max-batch-prefill-tokens` tokens and sizes the KV cache
/// for `--max-batch-total-tokens` (server `flash_causal_lm.py` `warmup`).
/// The prefill's activations are the batch; the cache comes after. Its
/// share (`--cuda-memory-fraction`) is 1.0 unless set, so no cap is
/// assumed.
fn tgi_startup(r: &mut Ranking) {
    r.add_checked(
        CauseId::BatchTooLarge,
        0.6,
        "TGI's warm-up runs one prefill of --max-batch-prefill-tokens tokens (with --max-concurrent-requests and --max-input-length behind it) next to the weights",
        Some("the launcher's Args line: max_batch_prefill_tokens, max_input_tokens and max_concurrent_requests"),
    );
    r.add(
        CauseId::KvCache,
        0.55,
        "the warm-up then reserves the KV cache for --max-batch-total-tokens; left unset, TGI sizes it from what the prefill left, so set it explicitly to a budget that fits",
    );
}

/// A PyTorch failure while TGI serves: the warm-up gave the KV cache what
/// its one prefill left of the device (`--max-batch-total-tokens`, inferred
/// when unset), so PyTorch's allocator holding nearly the whole device is
/// the cache by design, not the weights. A step that needs more than the
/// warm-up measured (a decode batch grown to the inferred total, a longer
/// prefill than the warm-up's) finds nothing left.
fn tgi_serving(r: &mut Ranking) {
    r.add_checked(
        CauseId::KvCache,
        0.7,
        "TGI sized its KV cache at warm-up to fill what its prefill left (--max-batch-total-tokens, inferred when unset): serving a full batch leaves no headroom for a step that needs more than the warm-up measured",
        Some("the launcher's log: the inferred max_batch_total_tokens; set --max-batch-total-tokens (or --cuda-memory-fraction) lower so the cache leaves room"),
    );
    r.add(
        CauseId::BatchTooLarge,
        0.6,
        "fewer or shorter requests at once (--max-batch-prefill-tokens, --max-concurrent-requests, --max-input-length) need less than that headroom",
    );
}

/// While TGI serves, PyTorch's allocator holding the whole device is its KV
/// cache by design ([`tgi_serving`]): the figures' reading of the weights
/// filling the device gives way to the cache. Weights too large for the
/// device fail the warm-up, before any request.
pub(super) fn tgi_cache_fills_the_device(r: &mut Ranking, event: &OomEvent) {
    let serving = event.facts.serving_engine == Some(ServingEngine::Tgi)
        && event.framework == Framework::PyTorch
        && !matches!(event.phase, Phase::Startup | Phase::ModelLoad);
    if serving {
        r.limit(
            CauseId::ModelTooLarge,
            0.65,
            "but TGI's warm-up sized its KV cache to fill what the weights left, so a full device while serving is the cache, not weights too large (those fail the warm-up)",
        );
    }
}

/// TGI's warm-up (server `flash_causal_lm.py` `warmup`) allocates the KV
/// blocks for `--max-batch-total-tokens`, then runs one prefill of
/// `--max-batch-prefill-tokens`; on OOM it says which budget to lower.
fn tgi_warmup(r: &mut Ranking, event: &OomEvent) -> bool {
    static WARMUP: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"Not enough memory to handle (\d+) (total|prefill) tokens")
            .expect("pattern compiles")
    });
    let Some(c) = WARMUP.captures(&event.message) else {
        return false;
    };
    let n = &c[1];
    if &c[2] == "total" {
        r.add_checked(
            CauseId::KvCache,
            0.75,
            format!("TGI's warm-up could not hold the KV cache for {n} total tokens (--max-batch-total-tokens) next to the weights: a smaller budget, or leaving it unset so TGI sizes it from free memory, fits"),
            Some("the launcher's Args line: max_batch_total_tokens and max_batch_prefill_tokens against the GPU memory left after the weights"),
        );
        r.add(
            CauseId::BatchTooLarge,
            0.6,
            "the warm-up prefill (--max-batch-prefill-tokens) runs on top of that KV cache",
        );
    } else {
        r.add_checked(
            CauseId::BatchTooLarge,
            0.75,
            format!("TGI's warm-up prefill of {n} tokens did not fit after the weights: lower --max-batch-prefill-tokens (and --max-input-length)"),
            Some("the launcher's Args line: max_batch_prefill_tokens; a quantized or sharded model leaves more for it"),
        );
        r.add(
            CauseId::ModelTooLarge,
            0.5,
            "if even a small prefill fails, the weights leave too little: quantize or shard (--num-shard)",
        );
    }
    true
}

/// The engine's log says it was capturing CUDA graphs when the allocation
/// failed. vLLM (worker `determine_num_available_blocks` before 0.10) and
/// SGLang size the KV cache from a profile without graphs, so the graphs'
/// memory comes on top of the share they were given; vLLM's own log line
/// says to lower gpu_memory_utilization or enforce eager mode.
fn cuda_graph_capture(r: &mut Ranking, event: &OomEvent) -> bool {
    if !event.facts.engine_log.cuda_graph_capture {
        return false;
    }
    r.add_checked(
        CauseId::MemoryCap,
        0.9,
        "the engine was capturing CUDA graphs: it had already given the KV cache its share of the GPU (gpu_memory_utilization / mem_fraction_static), and the graphs' memory comes on top of it; a lower share, fewer capture sizes or eager mode (--enforce-eager) leave the room",
        Some("rerun with --enforce-eager (or --disable-cuda-graph): if it starts, the graph capture was what did not fit"),
    );
    r.add(
        CauseId::BatchTooLarge,
        0.5,
        "graphs are captured up to the largest batch (--max-num-seqs / cuda_graph_max_bs): fewer sequences capture smaller graphs",
    );
    true
}

/// TensorRT-LLM asked for (nearly) the size of an engine it had loaded: it
/// is loading a copy of an engine. An engine is built on a GPU that held
/// its weights, so a copy that does not fit means the GPU already holds
/// another one (a second instance, another model) or other memory.
fn tensorrt_llm_engine_copy(r: &mut Ranking, event: &OomEvent) -> bool {
    let (Some(q), Some(&engine)) = (
        event.memory.requested_bytes,
        event.facts.engine_log.engines_loaded.last(),
    ) else {
        return false;
    };
    // Within 1%: the log rounds the engine's size to MiB and the request
    // adds a little alignment.
    if q.abs_diff(engine) * 100 > engine {
        return false;
    }
    let check = Some("nvidia-smi --query-compute-apps=pid,used_memory --format=csv before the load, and the server's instance count (Triton config.pbtxt instance_group { count })");
    r.undecided();
    r.add_checked(
        CauseId::MultipleModels,
        0.65,
        format!("the failed request of {} is the size of the engine just loaded ({}): another copy of it (a second model instance) or another engine already holds the GPU", fs(q), fs(engine)),
        check,
    );
    r.add_checked(
        CauseId::OtherProcesses,
        0.5,
        "another process may hold the GPU the engine was built to fit",
        check,
    );
    r.add(
        CauseId::ModelTooLarge,
        0.4,
        "if the engine was built on a larger GPU than this one, it does not fit at all",
    );
    true
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::oom::{MemoryFigures, Phase};

    fn vllm_start(free: u64, asked: u64) -> OomEvent {
        event(
            Framework::Vllm,
            MemoryFigures {
                total_bytes: Some(80 * GIB),
                free_bytes: Some(free),
                allowed_bytes: Some(asked),
                ..MemoryFigures::default()
            },
        )
    }

    fn llama_load(buffers: &[(&str, LlamaBufferKind)]) -> OomEvent {
        let mut e = event(Framework::LlamaCpp, MemoryFigures::default());
        e.phase = Phase::ModelLoad;
        e.memory.requested_bytes = Some(8 * GIB);
        e.facts.llama_offload = Some(crate::oom::LlamaOffload {
            offloaded_layers: None,
            total_layers: None,
            buffers: buffers
                .iter()
                .map(|&(device, kind)| crate::oom::LlamaBuffer {
                    device: device.into(),
                    kind,
                    bytes: GIB,
                })
                .collect(),
        });
        e
    }

    #[test]
    fn turbomind_s_allocator_is_its_kv_cache_share_and_device_malloc_its_weights() {
        let mut e = event(Framework::Other, MemoryFigures::default());
        e.message = "what():  [TM][ERROR] CUDA runtime error: out of memory /opt/tritonserver/lmdeploy/src/turbomind/utils/allocator.h:223".into();
        let mut r = Ranking::new();
        assert!(turbomind(&mut r, &e));
        assert_eq!(r.top(), Some(CauseId::KvCache));
        e.message = "RuntimeError: [TM][ERROR] CUDA runtime error: out of memory /lmdeploy/src/turbomind/utils/memory_utils.cu:32".into();
        let mut r = Ranking::new();
        assert!(turbomind(&mut r, &e));
        assert_eq!(r.top(), Some(CauseId::ModelTooLarge));
        // Another engine's allocator.h is not TurboMind's.
        e.message = "CUDA error: out of memory at src/utils/allocator.h:40".into();
        assert!(!turbomind(&mut Ranking::new(), &e));
    }

    #[test]
    fn sglang_s_pools_running_out_while_serving_are_its_kv_cache() {
        let mut e = pytorch(0, 0, 0);
        e.framework = Framework::Other;
        e.message = "RuntimeError: alloc_req_slots runs out of memory. Please set a smaller number for `--max-running-requests`.".into();
        let mut r = Ranking::new();
        assert!(engine_messages(&mut r, &e));
        assert_eq!(r.top(), Some(CauseId::KvCache));
        e.message = "RuntimeError: CUDA out of memory.".into();
        let mut r = Ranking::new();
        assert!(!sglang_serving(&mut r, &e));
    }

    #[test]
    fn llama_s_log_tells_the_weights_from_the_context() {
        let mut r = Ranking::new();
        llama(
            &mut r,
            &llama_load(&[("CPU_Mapped", LlamaBufferKind::Model)]),
        );
        assert_eq!(r.top(), Some(CauseId::ModelTooLarge));
        assert!(r.0.iter().any(|c| c.id == CauseId::KvCache));
        let mut r = Ranking::new();
        llama(&mut r, &llama_load(&[("CUDA0", LlamaBufferKind::Model)]));
        assert_eq!(r.top(), Some(CauseId::KvCache));
        let mut r = Ranking::new();
        let placed = [
            ("CUDA0", LlamaBufferKind::Model),
            ("CUDA0", LlamaBufferKind::KvCache),
        ];
        llama(&mut r, &llama_load(&placed));
        assert_eq!(r.top(), Some(CauseId::KvCache));
        assert!(r.score(CauseId::BatchTooLarge).is_some());
    }

    #[test]
    fn a_target_missed_by_a_sliver_is_the_cap_and_by_far_other_processes() {
        let check = VllmCheck::FreeBelowUtilization {
            utilization: Some(0.9),
        };
        let mut r = Ranking::new();
        vllm(&mut r, &check, &vllm_start(70 * GIB, 72 * GIB));
        assert_eq!(r.top(), Some(CauseId::MemoryCap));
        assert_eq!(r.score(CauseId::OtherProcesses), Some(0.7));
        let mut r = Ranking::new();
        vllm(&mut r, &check, &vllm_start(30 * GIB, 72 * GIB));
        assert_eq!(r.top(), Some(CauseId::OtherProcesses));
    }

    #[test]
    fn no_cache_blocks_is_the_cap_and_a_long_max_len_the_kv_cache() {
        let mut r = Ranking::new();
        vllm(&mut r, &VllmCheck::NoCacheBlocks, &vllm_start(GIB, GIB));
        assert_eq!(r.top(), Some(CauseId::MemoryCap));
        let check = VllmCheck::MaxLenExceedsKvCache {
            max_model_len: Some(32768),
            kv_tokens: Some(20000),
            estimated_max_len: None,
            needed_bytes: None,
            available_bytes: None,
        };
        let mut r = Ranking::new();
        vllm(&mut r, &check, &vllm_start(GIB, GIB));
        assert_eq!(r.top(), Some(CauseId::KvCache));
        assert!(r.0[0].evidence.contains("20000 tokens"));
    }

    #[test]
    fn a_step_inside_an_engine_s_share_is_the_share() {
        let mut e = pytorch(80 * GIB, GIB, 100 * MIB);
        e.facts.serving_engine = Some(ServingEngine::Vllm);
        let mut r = Ranking::new();
        serving_engine(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::MemoryCap));
        // Loading the weights comes before the share is sized.
        e.phase = Phase::ModelLoad;
        let mut r = Ranking::new();
        serving_engine(&mut r, &e);
        assert!(r.0.is_empty());
        e.phase = Phase::Unknown;
        e.framework = Framework::Vllm;
        let mut r = Ranking::new();
        serving_engine(&mut r, &e);
        assert!(r.0.is_empty());
    }

    #[test]
    fn sglang_without_kv_room_is_its_static_fraction() {
        let mut r = Ranking::new();
        sglang(
            &mut r,
            &SglangCheck::NoKvCacheRoom {
                mem_fraction_static: Some(0.7),
            },
        );
        assert_eq!(r.top(), Some(CauseId::MemoryCap));
        assert!(r.0[0].evidence.contains("mem_fraction_static=0.7"));
    }

    fn with_log(message: &str, log: crate::oom::EngineLog) -> OomEvent {
        let mut e = event(Framework::Other, MemoryFigures::default());
        e.message = message.into();
        e.facts.engine_log = log;
        e
    }

    #[test]
    fn llama_s_error_line_names_the_buffer_that_failed() {
        let mut e = event(Framework::LlamaCpp, MemoryFigures::default());
        e.phase = Phase::ModelLoad;
        e.memory.requested_bytes = Some(200 * GIB);
        e.facts.engine_log.llama_failed = Some(LlamaBufferKind::KvCache);
        let mut r = Ranking::new();
        llama(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::KvCache));
        e.facts.engine_log.llama_failed = Some(LlamaBufferKind::Model);
        let mut r = Ranking::new();
        llama(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::ModelTooLarge));
        // Compute buffers: the context, unless the micro-batch is large.
        e.facts.engine_log.llama_failed = Some(LlamaBufferKind::Compute);
        let mut r = Ranking::new();
        llama(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::KvCache));
        e.facts.engine_log.ubatch = Some(8192);
        let mut r = Ranking::new();
        llama(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
    }

    #[test]
    fn a_request_s_graph_that_failed_is_its_input() {
        // `ggml_gallocr_reserve_n: failed` while a vision encoder
        // reserves an image's graph: the input.
        let mut e = event(Framework::LlamaCpp, MemoryFigures::default());
        e.phase = Phase::ModelLoad;
        e.memory.requested_bytes = Some(4 * GIB);
        e.facts.engine_log.graph_failed = true;
        let mut r = Ranking::new();
        llama(&mut r, &e);
        assert_ne!(
            r.top(),
            Some(CauseId::BatchTooLarge),
            "no request in the log"
        );
        e.facts.engine_log.serving_request = true;
        let mut r = Ranking::new();
        llama(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        // After the KV cache was placed, the context's compute buffers.
        e.facts.llama_offload = Some(crate::oom::LlamaOffload {
            buffers: vec![crate::oom::LlamaBuffer {
                device: "CUDA0".into(),
                kind: LlamaBufferKind::KvCache,
                bytes: GIB,
            }],
            ..Default::default()
        });
        let mut r = Ranking::new();
        llama(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::KvCache));
    }

    #[test]
    fn a_large_micro_batch_outside_loading_is_the_batch() {
        let mut e = event(Framework::LlamaCpp, MemoryFigures::default());
        e.facts.engine_log.ubatch = Some(8192);
        let mut r = Ranking::new();
        llama(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        e.facts.engine_log.ubatch = Some(512);
        let mut r = Ranking::new();
        llama(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::KvCache));
    }

    #[test]
    fn a_ggml_context_pool_too_small_is_the_step_or_its_sizing() {
        let e = with_log(
            "ggml_new_object: not enough space in the context's memory pool (needed 13340448, available 10485760)",
            Default::default(),
        );
        let mut r = Ranking::new();
        assert!(engine_messages(&mut r, &e));
        llama(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        assert!(r.score(CauseId::InvalidSize).is_some());
        // 2023's scratch buffer is such a pool too.
        let scratch = with_log(
            "ggml_new_tensor_impl: not enough space in the scratch memory",
            Default::default(),
        );
        assert!(ggml_fixed_pool(&scratch));
        let mut r = Ranking::new();
        assert!(engine_messages(&mut r, &scratch));
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        assert!(!ggml_context_pool(
            &mut Ranking::new(),
            &with_log("ggml_backend_cuda_buffer_type_alloc_buffer: allocating 512.00 MiB on device 0: cudaMalloc failed: out of memory", Default::default())
        ));
    }

    #[test]
    fn ggml_s_graph_buffer_without_a_block_is_its_allocator_not_the_device() {
        for message in [
            "ggml_tallocr_alloc: not enough space in the buffer (needed 155582464, largest block available 151388160)",
            "ggml_dyn_tallocr_alloc: not enough space in the buffer to allocate 155582464 bytes, largest block available 151388160 bytes",
        ] {
            let e = with_log(message, Default::default());
            let mut r = Ranking::new();
            assert!(engine_messages(&mut r, &e));
            llama(&mut r, &e);
            assert_eq!(r.top(), Some(CauseId::NotMemory), "{message}");
            assert!(r.score(CauseId::Fragmentation).is_some());
        }
    }

    #[test]
    fn a_buffer_above_the_per_buffer_limit_is_the_weights_or_the_step() {
        let limit = || crate::oom::EngineLog {
            per_buffer_limit: true,
            ..Default::default()
        };
        let e = with_log(
            "ggml_metal_add_buffer: buffer 'data' size 18300780544 is larger than buffer maximum of 17179869184",
            limit(),
        );
        let mut r = Ranking::new();
        assert!(per_buffer_limit(&mut r, &e));
        assert_eq!(r.top(), Some(CauseId::ModelTooLarge));
        let text = "RuntimeError: [metal::malloc] Attempting to allocate 48736917632 bytes which is greater than the maximum allowed buffer size of 30150672384 bytes.";
        let mut r = Ranking::new();
        assert!(per_buffer_limit(&mut r, &with_log(text, limit())));
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        let cache = crate::oom::EngineLog {
            cache_frames: true,
            ..limit()
        };
        let mut r = Ranking::new();
        per_buffer_limit(&mut r, &with_log(text, cache));
        assert_eq!(r.top(), Some(CauseId::KvCache));
        // ggml's compute buffer above Vulkan's single-allocation limit: the
        // step's arrays, and llama.cpp's own ranking of the buffer gives way.
        let mut e = with_log(
            "ggml_gallocr_reserve_n: failed to allocate Vulkan0 buffer of size 4757131264",
            crate::oom::EngineLog {
                llama_failed: Some(LlamaBufferKind::Compute),
                ..limit()
            },
        );
        e.framework = Framework::LlamaCpp;
        let mut r = Ranking::new();
        assert!(per_buffer_limit(&mut r, &e));
        llama(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        let mut r = Ranking::new();
        assert!(!per_buffer_limit(
            &mut r,
            &with_log("CUDA out of memory", Default::default())
        ));
    }

    #[test]
    fn tgi_s_warm_up_names_the_budget_that_did_not_fit() {
        let total = "Not enough memory to handle 16000 total tokens with 2 prefill tokens. You need to decrease `--max-batch-total-tokens` or `--max-batch-prefill-tokens`";
        let mut r = Ranking::new();
        assert!(tgi_warmup(&mut r, &with_log(total, Default::default())));
        assert_eq!(r.top(), Some(CauseId::KvCache));
        let prefill = "RuntimeError: Not enough memory to handle 4096 prefill tokens. You need to decrease `--max-batch-prefill-tokens`";
        let mut r = Ranking::new();
        assert!(tgi_warmup(&mut r, &with_log(prefill, Default::default())));
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        assert!(r.0[0].evidence.contains("4096"));
    }

    #[test]
    fn an_oom_while_capturing_cuda_graphs_is_the_engine_s_share() {
        let capture = crate::oom::EngineLog {
            cuda_graph_capture: true,
            ..Default::default()
        };
        let mut r = Ranking::new();
        assert!(cuda_graph_capture(
            &mut r,
            &with_log("CUDA out of memory", capture)
        ));
        assert_eq!(r.top(), Some(CauseId::MemoryCap));
        let mut r = Ranking::new();
        assert!(!cuda_graph_capture(
            &mut r,
            &with_log("CUDA out of memory", Default::default())
        ));
    }

    #[test]
    fn a_request_the_size_of_a_loaded_engine_is_a_second_copy() {
        let engine = 13768 * MIB;
        let log = crate::oom::EngineLog {
            engines_loaded: vec![engine],
            ..Default::default()
        };
        let mut e = with_log("Requested amount of GPU memory", log);
        e.memory.requested_bytes = Some(14_434_380_600);
        let mut r = Ranking::new();
        assert!(tensorrt_llm_engine_copy(&mut r, &e));
        assert_eq!(r.top(), Some(CauseId::MultipleModels));
        assert!(r.1);
        e.memory.requested_bytes = Some(2 * GIB);
        let mut r = Ranking::new();
        assert!(!tensorrt_llm_engine_copy(&mut r, &e));
    }

    #[test]
    fn llama_cpp_at_load_is_the_weights_and_later_the_context() {
        let mut e = event(Framework::LlamaCpp, MemoryFigures::default());
        e.phase = Phase::ModelLoad;
        let mut r = Ranking::new();
        llama(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::ModelTooLarge));
        e.phase = Phase::Generation;
        let mut r = Ranking::new();
        llama(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::KvCache));
    }

    #[test]
    fn a_buffer_larger_than_the_named_model_s_weights_is_the_context() {
        let mut e = event(Framework::LlamaCpp, MemoryFigures::default());
        e.phase = Phase::ModelLoad;
        e.memory.requested_bytes = Some(8849 * MIB);
        e.facts.context.named_model = Some(crate::oom::NamedModel {
            params: 1_000_000_000,
            tenth_bits: 160,
            gpus: 1,
            name: "Llama-3.2-1B".into(),
        });
        let mut r = Ranking::new();
        llama(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::KvCache));
        // A buffer the weights could fill stays the weights.
        e.memory.requested_bytes = Some(1500 * MIB);
        let mut r = Ranking::new();
        llama(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::ModelTooLarge));
    }
}
