//! Inference runtimes and engines: ONNX Runtime's BFC arena and CUDA
//! provider, candle/cudarc driver errors, llama.cpp/ggml buffer allocation,
//! vLLM's start-up memory checks (KV cache blocks, maximum model length,
//! free memory against `gpu_memory_utilization`), and SGLang's start-up KV
//! pool check (`Not enough memory. Please try to increase
//! --mem-fraction-static.`, from python/sglang/srt/model_executor/
//! model_runner.py `init_memory_pool` and, in newer releases,
//! pool_configurator.py `MemoryPoolConfig.__post_init__`, which appends
//! ` Current value: mem_fraction_static=F`), and Triton Inference Server's
//! CUDA memory pool running out (CNMeM).

use crate::oom::patterns::{device_index, find_u64, message_from, re, size_at, Parsed, PartKind};
use crate::oom::text::strip_log_prefix;
use crate::oom::{
    DeviceKind, EngineCheck, EngineLog, EventKind, Framework, LlamaBuffer, LlamaBufferKind,
    LlamaOffload, Phase, SglangCheck, VllmCheck,
};
use aho_corasick::AhoCorasick;
use regex::Regex;
use std::sync::LazyLock;

/// Phrases one of which every message this family reads contains.
pub(super) const TRIGGERS: &[&str] = &[
    // ONNX Runtime's arena, llama.cpp's buffers.
    "ailed to alloc",
    "nable to allocate",
    // ONNX Runtime's CUDA provider, llama.cpp's cudaMalloc.
    "out of memory",
    // candle's cudarc `DriverError(CUDA_ERROR_OUT_OF_MEMORY, ...)`.
    "OUT_OF_MEMORY",
    // vLLM's start-up checks.
    "available memory for the cache blocks",
    "KV cache",
    "on startup is less than desired",
    // SGLang's `Not enough memory. Please try to increase --mem-fraction-static.`
    "ot enough ",
    // Ollama's check before it loads a model (llm/server.go): `model
    // requires more system memory (X) than is available (Y)`.
    "more system memory",
    // ggml-sycl.cpp: `..._buffer_type_alloc_buffer: can't allocate N Bytes of
    // memory on device`.
    "t allocate",
    // ggml-vulkan.cpp: `ggml_vulkan: Device memory allocation of size N failed.`
    "emory allocation of",
    // ggml-metal.m before ggml-backend: `ggml_metal_add_buffer: buffer 'data'
    // size N is larger than buffer maximum of M`.
    "buffer maximum",
    // ONNX Runtime's arena at its limit (bfc_arena.cc, `Available memory of
    // N is smaller than requested bytes of M`).
    "smaller than requested bytes",
    // A ggml context's fixed pools (ggml.c, `ggml_new_object` and before it
    // `ggml_new_tensor_impl`: `not enough space in the context's memory
    // pool (needed N, available M)`, `... in the scratch memory pool`);
    // lower case as ggml prints it (a shorter phrase slows the search).
    "not enough space in the",
];
/// Words one of which every message `parse` reads holds.
pub(super) const WORDS: &[&str] = &[
    "buffer",
    "failure",
    "DriverError",
    "cudaMalloc",
    "cache blocks",
    "seq len",
    "KV cache",
    "startup",
    "mem-fraction",
    "system memory",
    "allocation of size",
    // Triton Inference Server's CUDA memory pool.
    "CNMEM",
    // ONNX Runtime's arena at its limit, and its allocation cut short.
    "requested bytes",
    "BFCArena",
    // A ggml context's pools.
    "memory pool",
    "scratch memory",
    // SGLang's pools while serving.
    "alloc_req_slots",
    "Prefill out",
    "Decode out",
];
/// Messages of this family as the engines print them.
#[cfg(test)]
pub(super) const EXAMPLES: &[&str] = &[
    "onnxruntime.capi.onnxruntime_pybind11_state.RuntimeException: [ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running Conv node. Name:'Conv_3' Status Message: Failed to allocate memory for requested buffer of size 1073741824",
    "Error: DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")",
    "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 144817.04 MiB on device 0: cudaMalloc failed: out of memory",
    "ggml_new_object: not enough space in the context's memory pool (needed 3539648, available 3539280)",
    "ggml_new_tensor_impl: not enough space in the scratch memory pool (needed 877775360, available 536870912)",
    "ggml_new_tensor_impl: not enough space in the scratch memory",
    "ggml_tallocr_alloc: not enough space in the buffer (needed 155582464, largest block available 151388160)",
    "ggml_dyn_tallocr_alloc: not enough space in the buffer to allocate 155582464 bytes, largest block available 151388160 bytes",
    "alloc_tensor_range: failed to allocate CUDA0 buffer of size 151851674624",
    "RuntimeError: alloc_req_slots runs out of memory. Please set a smaller number for `--max-running-requests`. self.req_to_token_pool.available_size()=1, num_reqs=2,",
    "ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine.",
    "ValueError: The model's max seq len (32768) is larger than the maximum number of tokens that can be stored in KV cache (23392). Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.",
    "ValueError: Free memory on device cuda:0 (15.32/22.04 GiB) on startup is less than desired GPU memory utilization (0.88, 19.39 GiB). Decrease GPU memory utilization or reduce GPU memory used by other processes.",
    "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static. Current value: mem_fraction_static=0.8",
    "ValueError: Loaded weights leave no GPU memory for the KV cache under --mem-fraction-static=0.88. Raise --mem-fraction-static above 0.912",
    "Error: model requires more system memory (7.5 GiB) than is available (5.1 GiB)",
    "ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size 2147483648",
    "ggml_backend_sycl_buffer_type_alloc_buffer: can't allocate 3503030272 Bytes of memory on device",
    "ggml_vulkan: Device memory allocation of size 118497280 failed.",
    "ggml_metal_add_buffer: buffer 'data' size 18300780544 is larger than buffer maximum of 17179869184",
    "W0410 13:51:44.743979 1 memory.cc:212] Failed to allocate CUDA memory with byte size 102236160 on GPU 0: CNMEM_STATUS_OUT_OF_MEMORY, falling back to pinned system memory",
];

struct Patterns {
    ort_arena: Regex,
    ort_arena_cut: Regex,
    ort_cuda: Regex,
    ort_cap: Regex,
    ort_node: Regex,
    candle: Regex,
    llama_cuda_malloc: Regex,
    llama_buffer: Regex,
    llama_unable: Regex,
    llama_alloc_buffer: Regex,
    llama_vulkan: Regex,
    llama_metal_max: Regex,
    ollama_check: Regex,
    llama_compute: Regex,
    vllm_blocks: Regex,
    vllm_old_len: Regex,
    vllm_new_len: Regex,
    vllm_estimated: Regex,
    vllm_startup: Regex,
    sglang_pool: Regex,
    sglang_fraction: Regex,
    sglang_serving: Regex,
}

static P: LazyLock<Patterns> = LazyLock::new(|| Patterns {
    ort_arena: re(
        r"Failed\s*to\s*allocate\s*memory\s*for\s*requested\s*buffer\s*of\s*size\s*(\d+)",
    ),
    // The arena's allocation throws only for memory (bfc_arena.cc
    // `AllocateRawInternal`: `Failed to allocate memory for requested buffer
    // of size N`, or `Extend`'s status): its name before a message a title
    // cut short (`... AllocateRawInternal(size_t, bool, ...) Failed to
    // alloc`) is the same failure without its size.
    ort_arena_cut: re(r"BFCArena::AllocateRawInternal\b[^\n]{0,240}?Failed\s*to\s*alloc"),
    ort_cuda: re(r"CUDA\s*failure\s*2\s*:\s*out\s*of\s*memory"),
    ort_cap: re(
        r"Available\s*memory\s*of\s*(\d+)\s*is\s*smaller\s*than\s*requested\s*bytes\s*of\s*(\d+)",
    ),
    ort_node: re(r"running\s*(\w+)\s*node\.\s*Name\s*:\s*'([^']*)'"),
    candle: re(r"DriverError\s*\(\s*CUDA_ERROR_OUT_OF_MEMORY"),
    llama_cuda_malloc: re(
        r"allocating\s*{SIZE}\s*on\s*device\s*(\d+)\s*:\s*cudaMalloc\s*failed\s*:\s*out\s*of\s*memory",
    ),
    llama_buffer: re(
        r"failed\s*to\s*allocate\s*(CUDA|ROCm|Metal|Vulkan|SYCL|CPU)(\d*)\s*buffer\s*of\s*size\s*(\d+)",
    ),
    llama_unable: re(
        r"unable\s*to\s*allocate\s*(?:(CUDA|ROCm|Metal|Vulkan|SYCL|CPU)(\d*)|backend)\s*buffer",
    ),
    // ggml's allocator of one backend (ggml-backend.cpp, ggml-cuda.cu):
    // `ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size N`.
    // ggml-sycl.cpp: `...sycl_buffer_type_alloc_buffer: can't allocate N Bytes
    // of memory on device`.
    llama_alloc_buffer: re(
        r"ggml_backend_(cpu|cuda|metal|vk|vulkan|sycl|rocm|hip|cann)\w*_buffer_type_alloc_buffer\s*:\s*(?:failed\s*to\s*allocate\s*buffer\s*of\s*size|can't\s*allocate)\s*(\d+)",
    ),
    // ggml-vulkan.cpp's allocation of device memory (ggml_vk_create_buffer),
    // quoted with or without its `ggml_vulkan:` prefix.
    llama_vulkan: re(r"Device\s*memory\s*allocation\s*of\s*size\s*(\d+)\s*failed"),
    // ggml-metal.m before ggml-backend (2023): one buffer above the device's
    // maxBufferLength.
    llama_metal_max: re(
        r"ggml_metal_add_buffer\s*:\s*buffer\s*'[^']*'\s*size\s*(\d+)\s*is\s*larger\s*than\s*buffer\s*maximum\s*of\s*(\d+)",
    ),

    llama_compute: re(r"failed\s*to\s*allocate\s*compute\s*(?:pp\s*)?buffers?"),
    vllm_blocks: re(r"No\s*available\s*memory\s*for\s*the\s*cache\s*blocks"),
    vllm_old_len: re(
        r"max\s*seq\s*len\s*\((\d+)\)\s*is\s*larger\s*than\s*the\s*maximum\s*number\s*of\s*tokens\s*that\s*can\s*be\s*stored\s*in\s*KV\s*cache\s*\((\d+)\)",
    ),
    vllm_new_len: re(
        r"max\s*seq\s*len\s*\((\d+)\)\s*,?\s*\(?\s*{SIZE}\s*KV\s*cache\s*is\s*needed,\s*which\s*is\s*larger\s*than\s*the\s*available\s*KV\s*cache\s*memory\s*\({SIZE}\)",
    ),
    vllm_estimated: re(r"estimated\s*maximum\s*model\s*length\s*is\s*(\d+)"),
    vllm_startup: re(
        r"Free\s*memory\s*on\s*device\s*(?:cuda:(\d+)\s*)?\(\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*(GiB|GB)\s*\)\s*on\s*startup\s*is\s*less\s*than\s*desired\s*GPU\s*memory\s*utilization\s*\(\s*(\d+(?:\.\d+)?)\s*,\s*{SIZE}\s*\)",
    ),
    // Its older and its newer words (model_runner.py, 2026: `Loaded weights
    // leave no GPU memory for the KV cache under --mem-fraction-static=F.
    // Raise --mem-fraction-static above G`).
    sglang_pool: re(
        r"Not\s*enough\s*memory\.\s*Please\s*try\s*to\s*increase\s*--mem-fraction-static|Loaded\s*weights\s*leave\s*no\s*GPU\s*memory\s*for\s*the\s*KV\s*cache",
    ),
    sglang_fraction: re(
        r"(?:Current\s*value\s*:\s*mem_fraction_static\s*=|KV\s*cache\s*under\s*--mem-fraction-static\s*=)\s*(\d+(?:\.\d+)?)",
    ),
    sglang_serving: re(
        r"alloc_req_slots\s*runs\s*out\s*of\s*memory|\b(?:Prefill|Decode)\s*out\s*of\s*memory",
    ),
    ollama_check: re(
        r"model\s*requires\s*more\s*system\s*memory\s*\(\s*{SIZE}\s*\)\s*than\s*is\s*available\s*\(\s*{SIZE}\s*\)",
    ),
});

pub(crate) fn parse(text: &str) -> Option<Parsed> {
    onnxruntime(text)
        .or_else(|| candle(text))
        .or_else(|| llama_cpp(text))
        .or_else(|| vllm(text))
        .or_else(|| sglang(text))
        .or_else(|| sglang_serving(text))
        .or_else(|| ollama(text))
        .or_else(|| triton_pool(text))
        .or_else(|| ggml_graph_buffer(text))
        .or_else(|| ggml_context_pool(text))
}

/// A ggml context's pool, sized once by the program that made the context,
/// without room for one more tensor (ggml.c: `ggml_new_object: not enough
/// space in the context's memory pool (needed N, available M)`, before 2023
/// `ggml_new_tensor_impl`), or its scratch buffer, the pool 2023's ggml
/// put intermediate tensors in (`not enough space in the scratch memory`,
/// later with `pool (needed N, available M)`). Host memory the program set aside, not the
/// device: the tensor that did not fit grows with the batch, prompt or
/// context the program was asked for, or the pool was sized wrong. Apps on
/// ggml (llama.cpp, whisper.cpp, llama-cpp-python) print it alike.
fn ggml_context_pool(text: &str) -> Option<Parsed> {
    static POOL: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"not\s*enough\s*space\s*in\s*the\s*(?:context'?s\s*memory\s*pool|scratch\s*memory(?:\s*pool)?)(?:\s*\(\s*needed\s*(\d+)\s*,\s*available\s*\d+\s*\))?",
        )
    });
    // ggml_init takes the pool from the host's allocator (ggml.c:
    // `ggml_aligned_malloc` for the context's buffer; the scratch buffer was
    // the program's own host buffer): host memory, though it did not run
    // out; the program sized the pool.
    ggml_no_space(text, &POOL, DeviceKind::Cpu)
}

/// ggml's graph allocator placing a tensor in the compute buffer it
/// measured beforehand (ggml-alloc.c: `ggml_tallocr_alloc: not enough space
/// in the buffer (needed N, largest block available M)` with its assertion,
/// later `ggml_dyn_tallocr_alloc: not enough space in the buffer to
/// allocate N bytes, largest block available M bytes` and "graph
/// allocation: failed to reserve memory"). Only with its figures: the words
/// alone are common in other programs.
fn ggml_graph_buffer(text: &str) -> Option<Parsed> {
    static BUFFER: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"not\s*enough\s*space\s*in\s*the\s*buffer\s*(?:\(\s*needed\s*(\d+)|to\s*allocate\s*(\d+)\s*bytes)\s*,\s*largest\s*block\s*available\s*\d+",
        )
    });
    // The compute buffer is the backend's: a GPU's or the host's.
    ggml_no_space(text, &BUFFER, DeviceKind::Unknown)
}

/// A ggml space that `pattern` finds full: llama.cpp's event on memory of
/// the `kind` given, the request the first group that matched (the bytes
/// needed), when printed.
fn ggml_no_space(text: &str, pattern: &Regex, kind: DeviceKind) -> Option<Parsed> {
    let c = pattern.captures(text)?;
    let mut parsed = Parsed::new(Framework::LlamaCpp, kind, message_from(text, pattern));
    parsed.memory.requested_bytes = c
        .iter()
        .skip(1)
        .flatten()
        .next()
        .and_then(|m| m.as_str().parse().ok());
    parsed.exact_request = parsed.memory.requested_bytes.is_some();
    Some(parsed)
}

/// Triton Inference Server's CUDA memory pool (CNMeM, sized by
/// `--cuda-memory-pool-byte-size`, 64 MiB a GPU by default) unable to hold a
/// tensor (core's cuda_memory_manager.cc: `Failed to allocate CUDA memory
/// with byte size N on GPU D` with the CNMeM status appended). Triton logs
/// it as a warning and falls back to pinned host memory, but a backend
/// that needs the tensor on the GPU then fails (the PyTorch backend's
/// device mismatch, the Python backend's `failed to load GPU buffers`), so
/// unlike the other fallbacks it is read as the pool running out
/// (`says_non_fatal` leaves this fallback out).
fn triton_pool(text: &str) -> Option<Parsed> {
    static POOL: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"Failed\s*to\s*allocate\s*CUDA\s*memory\s*with\s*byte\s*size\s*(\d+)\s*on\s*GPU\s*(\d+)\s*:\s*CNMEM_STATUS_OUT_OF_MEMORY",
        )
    });
    let c = POOL.captures(text)?;
    let mut parsed = Parsed::new(
        Framework::Other,
        DeviceKind::Cuda,
        message_from(text, &POOL),
    );
    parsed.device.index = c[2].parse().ok();
    parsed.memory.requested_bytes = c[1].parse().ok();
    parsed.exact_request = true;
    Some(parsed)
}

/// Ollama's check before loading a model (llm/server.go, `model requires
/// more system memory (%s) than is available (%s)`): the weights, KV cache
/// and graph it estimates against the host's free memory, printed bare, in
/// an HTTP 500 body, or re-raised by a client. Nothing was allocated: the
/// server refused to load. Ollama runs its models on llama.cpp (ggml), so
/// its failures are credited to llama.cpp, as an app's are to the framework
/// it runs on.
fn ollama(text: &str) -> Option<Parsed> {
    let p = &*P;
    let c = p.ollama_check.captures(text)?;
    let mut parsed = Parsed::new(
        Framework::LlamaCpp,
        DeviceKind::Cpu,
        message_from(text, &p.ollama_check),
    );
    parsed.memory.requested_bytes = size_at(&c, 1);
    parsed.memory.free_bytes = size_at(&c, 3);
    parsed.phase_hint = Some(Phase::ModelLoad);
    Some(parsed)
}

fn onnxruntime(text: &str) -> Option<Parsed> {
    let p = &*P;
    let key = if p.ort_arena.is_match(text) {
        &p.ort_arena
    } else if p.ort_cap.is_match(text) {
        &p.ort_cap
    } else if p.ort_cuda.is_match(text) {
        &p.ort_cuda
    } else if p.ort_arena_cut.is_match(text) {
        &p.ort_arena_cut
    } else {
        return None;
    };
    let mut parsed = Parsed::new(
        Framework::OnnxRuntime,
        DeviceKind::Unknown,
        message_from(text, key),
    );
    if let Some(at) = text.find("[ONNXRuntimeError]") {
        parsed.message = text[at..].trim().chars().take(4096).collect();
    }
    parsed.memory.requested_bytes = find_u64(&p.ort_arena, text);
    // The arena at its own limit (`BFCArena::Extend`: the limit minus what
    // it holds is below the rounded request).
    if let Some(c) = p.ort_cap.captures(text) {
        parsed.memory.free_bytes = c[1].parse().ok();
        parsed.memory.requested_bytes = c[2].parse().ok();
    }
    if p.ort_cuda.is_match(text) || text.contains("Cuda") || text.contains("CUDA") {
        parsed.device.kind = DeviceKind::Cuda;
        static GPU_EQ: LazyLock<Regex> = LazyLock::new(|| re(r"GPU\s*=\s*(\d+)"));
        parsed.device.index = find_u64(&GPU_EQ, text).map(|i| i as u32);
    }
    if let Some(c) = p.ort_node.captures(text) {
        parsed.facts.op = Some(c[1].to_string());
    }
    Some(parsed)
}

fn candle(text: &str) -> Option<Parsed> {
    let p = &*P;
    p.candle.is_match(text).then(|| {
        let mut parsed = Parsed::new(
            Framework::Candle,
            DeviceKind::Cuda,
            message_from(text, &p.candle),
        );
        parsed.device.index = device_index(text);
        parsed
    })
}

fn llama_cpp(text: &str) -> Option<Parsed> {
    let p = &*P;
    if let Some(c) = p.llama_cuda_malloc.captures(text) {
        let mut parsed = Parsed::new(
            Framework::LlamaCpp,
            DeviceKind::Cuda,
            message_from(text, &p.llama_cuda_malloc),
        );
        parsed.memory.requested_bytes = size_at(&c, 1);
        parsed.device.index = c[3].parse().ok();
        parsed.kind = PartKind::Preliminary;
        parsed.phase_hint = Some(Phase::ModelLoad);
        return Some(parsed);
    }
    if let Some(c) = p.llama_buffer.captures(text) {
        let mut parsed = Parsed::new(
            Framework::LlamaCpp,
            backend_kind(&c[1]),
            message_from(text, &p.llama_buffer),
        );
        parsed.device.index = c[2].parse().ok();
        parsed.memory.requested_bytes = c[3].parse().ok();
        parsed.exact_request = true;
        parsed.kind = PartKind::Preliminary;
        // Weights, KV cache and compute buffers are all placed while the
        // model loads (llama_model_load, then the context's
        // llama_init_from_model): the runner reports any of them as a
        // failed load ("unable to load model").
        parsed.phase_hint = Some(Phase::ModelLoad);
        return Some(parsed);
    }
    if let Some(c) = p.llama_alloc_buffer.captures(text) {
        let mut parsed = Parsed::new(
            Framework::LlamaCpp,
            backend_kind(&ggml_backend_name(&c[1])),
            message_from(text, &p.llama_alloc_buffer),
        );
        parsed.memory.requested_bytes = c[2].parse().ok();
        parsed.exact_request = true;
        parsed.kind = PartKind::Preliminary;
        parsed.phase_hint = Some(Phase::ModelLoad);
        return Some(parsed);
    }
    if let Some(c) = p.llama_vulkan.captures(text) {
        let mut parsed = Parsed::new(
            Framework::LlamaCpp,
            DeviceKind::Unknown,
            message_from(text, &p.llama_vulkan),
        );
        parsed.memory.requested_bytes = c[1].parse().ok();
        parsed.exact_request = true;
        // ggml's allocator then names the buffer (`alloc_tensor_range:
        // failed to allocate Vulkan0 buffer of size N`) when it was the caller.
        parsed.kind = PartKind::Preliminary;
        return Some(parsed);
    }
    if let Some(c) = p.llama_metal_max.captures(text) {
        let mut parsed = Parsed::new(
            Framework::LlamaCpp,
            DeviceKind::Mps,
            message_from(text, &p.llama_metal_max),
        );
        parsed.memory.requested_bytes = c[1].parse().ok();
        parsed.exact_request = true;
        return Some(parsed);
    }
    if let Some(c) = p.llama_unable.captures(text) {
        let kind = c
            .get(1)
            .map_or(DeviceKind::Unknown, |m| backend_kind(m.as_str()));
        let mut parsed = Parsed::new(
            Framework::LlamaCpp,
            kind,
            message_from(text, &p.llama_unable),
        );
        parsed.device.index = c.get(2).and_then(|m| m.as_str().parse().ok());
        parsed.phase_hint = Some(Phase::ModelLoad);
        return Some(parsed);
    }
    if p.llama_compute.is_match(text) {
        let mut parsed = Parsed::new(
            Framework::LlamaCpp,
            DeviceKind::Unknown,
            message_from(text, &p.llama_compute),
        );
        parsed.phase_hint = Some(Phase::Startup);
        return Some(parsed);
    }
    None
}

/// The backend name of a ggml function (`ggml_backend_cuda_...`) as
/// llama.cpp's buffer lines spell it (`CUDA`).
fn ggml_backend_name(function_part: &str) -> String {
    match function_part {
        "vk" | "vulkan" => "Vulkan".into(),
        "metal" => "Metal".into(),
        "hip" | "rocm" => "ROCm".into(),
        "cann" => "CANN".into(),
        other => other.to_ascii_uppercase(),
    }
}

fn backend_kind(name: &str) -> DeviceKind {
    match name {
        "CUDA" => DeviceKind::Cuda,
        "ROCm" => DeviceKind::Rocm,
        "Metal" => DeviceKind::Mps,
        "SYCL" => DeviceKind::Xpu,
        "CPU" => DeviceKind::Cpu,
        _ => DeviceKind::Unknown,
    }
}

fn set_vllm(parsed: &mut Parsed, check: VllmCheck) {
    parsed.facts.kind = EventKind::EngineCheck(EngineCheck::Vllm(check));
}

fn set_sglang(parsed: &mut Parsed, check: SglangCheck) {
    parsed.facts.kind = EventKind::EngineCheck(EngineCheck::Sglang(check));
}

/// The device of vLLM's start-up checks: its CPU backend words them with
/// the setting that sizes its KV cache in host memory (vllm's CPU worker:
/// "Try increasing `VLLM_CPU_KVCACHE_SPACE` ..."); the GPU backends name
/// `gpu_memory_utilization`, and leave the kind to the rest of the text.
fn vllm_device(text: &str) -> DeviceKind {
    if text.contains("VLLM_CPU_KVCACHE_SPACE") {
        DeviceKind::Cpu
    } else {
        DeviceKind::Unknown
    }
}

fn vllm(text: &str) -> Option<Parsed> {
    let p = &*P;
    if p.vllm_blocks.is_match(text) {
        let mut parsed = Parsed::new(
            Framework::Vllm,
            vllm_device(text),
            message_from(text, &p.vllm_blocks),
        );
        parsed.phase_hint = Some(Phase::Startup);
        set_vllm(&mut parsed, VllmCheck::NoCacheBlocks);
        return Some(parsed);
    }
    if let Some(c) = p.vllm_new_len.captures(text) {
        let mut parsed = Parsed::new(
            Framework::Vllm,
            vllm_device(text),
            message_from(text, &p.vllm_new_len),
        );
        let needed = size_at(&c, 2);
        let available = size_at(&c, 4);
        parsed.memory.requested_bytes = needed;
        parsed.memory.free_bytes = available;
        parsed.phase_hint = Some(Phase::Startup);
        set_vllm(
            &mut parsed,
            VllmCheck::MaxLenExceedsKvCache {
                max_model_len: c[1].parse().ok(),
                kv_tokens: None,
                estimated_max_len: find_u64(&p.vllm_estimated, text),
                needed_bytes: needed,
                available_bytes: available,
            },
        );
        return Some(parsed);
    }
    if let Some(c) = p.vllm_old_len.captures(text) {
        let mut parsed = Parsed::new(
            Framework::Vllm,
            vllm_device(text),
            message_from(text, &p.vllm_old_len),
        );
        parsed.phase_hint = Some(Phase::Startup);
        set_vllm(
            &mut parsed,
            VllmCheck::MaxLenExceedsKvCache {
                max_model_len: c[1].parse().ok(),
                kv_tokens: c[2].parse().ok(),
                estimated_max_len: None,
                needed_bytes: None,
                available_bytes: None,
            },
        );
        return Some(parsed);
    }
    if let Some(c) = p.vllm_startup.captures(text) {
        let mut parsed = Parsed::new(
            Framework::Vllm,
            DeviceKind::Cuda,
            message_from(text, &p.vllm_startup),
        );
        parsed.device.index = c.get(1).and_then(|m| m.as_str().parse().ok());
        parsed.memory.free_bytes = crate::size::log_figure_to_bytes(&c[2], &c[4]);
        parsed.memory.total_bytes = crate::size::log_figure_to_bytes(&c[3], &c[4]);
        parsed.memory.allowed_bytes = size_at(&c, 6);
        parsed.phase_hint = Some(Phase::Startup);
        set_vllm(
            &mut parsed,
            VllmCheck::FreeBelowUtilization {
                utilization: c[5].parse().ok(),
            },
        );
        return Some(parsed);
    }
    None
}

/// SGLang's start-up check: the static budget (mem_fraction_static x the
/// GPU's memory) minus the weights leaves no room for one KV-cache token.
/// SGLang prints no device; it is a CUDA (or ROCm) GPU, index unknown.
fn sglang(text: &str) -> Option<Parsed> {
    let p = &*P;
    if !p.sglang_pool.is_match(text) {
        return None;
    }
    let mut parsed = Parsed::new(
        Framework::Other,
        DeviceKind::Cuda,
        message_from(text, &p.sglang_pool),
    );
    // The same phase as vLLM's start-up checks: sizing the KV cache after
    // the weights are loaded.
    parsed.phase_hint = Some(Phase::Startup);
    let mem_fraction_static = p
        .sglang_fraction
        .captures(text)
        .and_then(|c| c.get(1)?.as_str().parse::<f64>().ok())
        .filter(|f| f.is_finite());
    set_sglang(
        &mut parsed,
        SglangCheck::NoKvCacheRoom {
            mem_fraction_static,
        },
    );
    Some(parsed)
}

/// SGLang's pools exhausted while serving: its request rows
/// (`alloc_req_slots runs out of memory. Please set a smaller number for
/// --max-running-requests.`, mem_cache/common.py and schedule_batch.py) or
/// its KV tokens (`Prefill out of memory`, `Decode out of memory`, before
/// its retraction handled them). Both pools were sized at start-up; the
/// GPU allocator did not fail.
fn sglang_serving(text: &str) -> Option<Parsed> {
    let p = &*P;
    if !p.sglang_serving.is_match(text) {
        return None;
    }
    let mut parsed = Parsed::new(
        Framework::Other,
        DeviceKind::Cuda,
        message_from(text, &p.sglang_serving),
    );
    parsed.phase_hint = Some(Phase::Generation);
    Some(parsed)
}

/// Buffers a [`LlamaOffload`] keeps.
const MAX_LLAMA_BUFFERS: usize = 64;

/// llama.cpp's account of the model load in the lines before a failure (see
/// [`LlamaOffload`]): llama.cpp's `llm_load_tensors:` (before mid-2024) and
/// `load_tensors:` lines for the weights, `llama_kv_cache_init:`,
/// `llama_kv_cache_unified:` and `llama_kv_cache:` for the KV cache,
/// `llama_new_context_with_model:` and `llama_context:` for the compute and
/// output buffers. An `offloaded N/M` line starts a new load: only the last
/// one counts. `None` when no such line is there.
pub(crate) fn llama_offload(before: &[String]) -> Option<LlamaOffload> {
    static OFFLOADED: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"^(?:llm_load_tensors|load_tensors)\s*:\s*offloaded\s*(\d+)\s*/\s*(\d+)\s*layers\s*to\s*GPU",
        )
    });
    static BUFFER: LazyLock<Regex> = LazyLock::new(|| {
        re(concat!(
            r"^(llm_load_tensors|load_tensors|llama_kv_cache\w*|llama_new_context_with_model|llama_context)\s*:",
            r"\s*(\S+?)\s+(?:(model|KV|compute|output)\s+)?buffer\s*size\s*=\s*{SIZE}"
        ))
    });
    let mut offload: Option<LlamaOffload> = None;
    for raw in before {
        let line = strip_log_prefix(raw);
        if let Some(c) = OFFLOADED.captures(line) {
            offload = Some(LlamaOffload {
                offloaded_layers: c[1].parse().ok(),
                total_layers: c[2].parse().ok(),
                buffers: Vec::new(),
            });
            continue;
        }
        let Some(c) = BUFFER.captures(line) else {
            continue;
        };
        let kind = match (&c[1], c.get(3).map(|m| m.as_str())) {
            (_, Some("KV")) => LlamaBufferKind::KvCache,
            (_, Some("compute")) => LlamaBufferKind::Compute,
            (_, Some("output")) => LlamaBufferKind::Output,
            ("llm_load_tensors" | "load_tensors", _) => LlamaBufferKind::Model,
            (f, None) if f.starts_with("llama_kv_cache") => LlamaBufferKind::KvCache,
            _ => continue,
        };
        let Some(bytes) = size_at(&c, 4) else {
            continue;
        };
        let offload = offload.get_or_insert_with(LlamaOffload::default);
        if offload.buffers.len() < MAX_LLAMA_BUFFERS {
            offload.buffers.push(LlamaBuffer {
                device: c[2].to_string(),
                kind,
                bytes,
            });
        }
    }
    offload
}

/// At most this many engine sizes are kept from one log.
const MAX_ENGINES: usize = 8;

/// What the lines around a failure say in an engine's or library's own
/// words (see [`EngineLog`]): `before` are the lines before the message,
/// `text` the message, `following` the lines after it.
/// The words with which runtimes refuse one buffer above the device's
/// largest single allocation: ggml's Metal backend (`buffer 'data' size N is
/// larger than buffer maximum of M`), MLX (`greater than the maximum allowed
/// buffer size`), PyTorch's MPS allocator (`Invalid buffer size: N GB`,
/// MPSAllocator.mm) and ggml's Vulkan backend (`Requested buffer size exceeds
/// device memory allocation limit`, ggml-vulkan.cpp, above the driver's
/// `maxMemoryAllocationSize`).
const PER_BUFFER_LIMIT: &[&str] = &[
    "larger than buffer maximum",
    "greater than the maximum allowed buffer size",
    "Invalid buffer size:",
    "exceeds device memory allocation limit",
];

/// Lines before and after a failure that may say its buffer was above the
/// limit (the backend's own lines, the allocator's that names the buffer).
const LIMIT_LINES: usize = 4;

pub(crate) fn engine_log(before: &[String], text: &str, following: &[String]) -> EngineLog {
    // llama.cpp's error lines (llama-kv-cache.cpp, llama-context.cpp,
    // llama-model-loader.cpp) name the buffer that failed, right after
    // ggml's allocation failure.
    static LLAMA_FAILED: LazyLock<Regex> = LazyLock::new(|| {
        re(concat!(
            // whisper.cpp, on the same ggml buffers, words its own:
            // "whisper_kv_cache_init: failed to allocate memory for the kv
            // cache", "whisper_kv_cache_init() failed for self-attention
            // cache".
            r"(failed to allocate (?:buffer|memory) for (?:the )?kv cache|(?:llama|whisper)_kv_cache_init\(\) failed|",
            r"failed to allocate compute (?:pp )?buffers|compute buffer allocation failed|",
            r"error loading model: unable to allocate|failed to load model|",
            r"alloc_tensor_range: failed to allocate)"
        ))
    });
    static UBATCH: LazyLock<Regex> = LazyLock::new(|| {
        re(r#"(?:\bn_ubatch\s*=\s*|(?:^|[\s`'"])(?:-ub|--ubatch-size)[ =])(\d+)"#)
    });
    static CAPTURE: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"(?i)captur\w*\s+(?:the model for\s+)?(?:cuda[- ]?graph|cudagraph)|graph capturing|cuda[- ]?graph captur|(?:during|while|in) (?:the )?graph capture\b|cuda_graph_runner|capture_generation_cuda_graphs",
        )
    });
    static CAPTURE_DONE: LazyLock<Regex> = LazyLock::new(|| {
        re(r"(?i)graph capturing finished|capturing .*?finished|capture cuda graph end")
    });
    static ENGINE_SIZE: LazyLock<Regex> = LazyLock::new(|| re(r"Loaded engine size:\s*{SIZE}"));
    static CACHE_WORDS: LazyLock<Regex> =
        LazyLock::new(|| re(r"(?i)prompt_cache|kv_cache|kvcache"));
    static RAN_LONG: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"(?i)long[- ]running|after (?:\d+|several|many) (?:hours|days|requests|generations)|\b\d+ hours\b",
        )
    });
    static FRAME: LazyLock<Regex> = LazyLock::new(|| re(r#"^\s*File "[^"]*", line \d+, in (\S+)"#));
    // A request being served or an input being encoded, in the words of
    // llama.cpp's server (`srv  process_chun: processing image`,
    // `slot launch_slot_`), its multimodal tools (`--mmproj`, `--image`,
    // `clip_image_...`, `encoding image slice`) and Ollama's runner
    // (`loading cache slot`).
    static SERVING_REQUEST: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"(?i)^\s*(?:srv|slot)\s+\w+:|process_chun|processing image|encoding image|image slice|--mmproj\b|--image\b|\bclip_image|loading cache slot|launch_slot",
        )
    });
    // Words at least one of which each pattern above needs (ASCII case
    // folded): other lines are skipped, which keeps a log dense with OOM
    // messages fast.
    static ENGINE_WORDS: LazyLock<AhoCorasick> = LazyLock::new(|| {
        AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build([
                "fail",
                "error loading model",
                "kIOGPUCommandBuffer",
                "ubatch",
                "-ub",
                "captur",
                "cuda_graph",
                "cudagraph",
                "loaded engine size",
                "cache",
                "long",
                "after",
                "hours",
                "file \"",
                "buffer",
                "allocation limit",
                "srv",
                "slot",
                "process_chun",
                "image",
                "mmproj",
            ])
            .expect("the engine words build")
    });
    let mut log = EngineLog::default();
    let mut capturing = false;
    let mut innermost: Option<String> = None;
    let lines = before
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(text))
        .chain(following.iter().map(String::as_str));
    for (i, raw) in lines.enumerate() {
        if !ENGINE_WORDS.is_match(raw) {
            continue;
        }
        let line = strip_log_prefix(raw);
        if let Some(c) = LLAMA_FAILED.captures(line) {
            let said = &c[1];
            let kind = if said.contains("kv") {
                LlamaBufferKind::KvCache
            } else if said.contains("compute") {
                LlamaBufferKind::Compute
            } else {
                LlamaBufferKind::Model
            };
            // The first error line is the one that failed; later lines
            // report its consequences (a context that could not be made).
            log.llama_failed.get_or_insert(kind);
        }
        log.graph_failed |= line.contains("gallocr_reserve_n: failed to allocate");
        if line.contains("kIOGPUCommandBufferCallbackErrorOutOfMemory")
            || line.contains("Command buffer execution failed: Insufficient Memory")
        {
            log.metal_command_buffer = true;
        }
        if let Some(c) = UBATCH.captures(line) {
            log.ubatch = c[1].parse().ok().or(log.ubatch);
        }
        if i + LIMIT_LINES >= before.len() && i <= before.len() + LIMIT_LINES {
            log.per_buffer_limit |= PER_BUFFER_LIMIT.iter().any(|w| line.contains(w));
        }
        if i <= before.len() {
            if CAPTURE_DONE.is_match(line) {
                capturing = false;
            } else if CAPTURE.is_match(line) {
                capturing = true;
            }
            if let Some(bytes) = ENGINE_SIZE.captures(line).and_then(|c| size_at(&c, 1)) {
                if log.engines_loaded.len() < MAX_ENGINES {
                    log.engines_loaded.push(bytes);
                }
            }
            if let Some(c) = FRAME.captures(raw) {
                innermost = Some(c[1].to_string());
            }
            log.cache_frames |= CACHE_WORDS.is_match(line);

            log.ran_long |= RAN_LONG.is_match(line);
            log.serving_request |= SERVING_REQUEST.is_match(line);
        }
    }
    log.cuda_graph_capture = capturing;
    log.in_constructor = matches!(
        innermost.as_deref(),
        Some("__init__" | "init" | "load_model" | "_load_model" | "from_pretrained")
    );
    log
}

/// True when a bare `CUDA error: out of memory` (read as PyTorch's by
/// default) was printed by ggml's CUDA backend. ggml-cuda's error handler
/// (`ggml_cuda_error` in ggml/src/ggml-cuda/ggml-cuda.cu) prints
/// `<NAME> error: <reason>`, where NAME is CUDA, ROCm or MUSA as built, then
/// `  current device: N, in function F at FILE:LINE` and the failed
/// statement; before 2024 it printed `CUDA error N at FILE:LINE: <reason>`
/// then `current device: N`. Ollama passes its runner's last lines on in
/// its own error (`llama runner process has terminated: ...`). llama.cpp,
/// Ollama's runner and other ggml programs print their `llama_*` / `ggml_*`
/// / `load_tensors:` lines before it, with no Python frames or exception
/// class in between.
pub(crate) fn printed_by_ggml(before: &[String], text: &str, after: &[String]) -> bool {
    let head = strip_log_prefix(text).trim_start();
    let bare = ["CUDA error", "ROCm error", "MUSA error"]
        .iter()
        .any(|p| head.starts_with(p));
    if !bare && !OLLAMA_RUNNER.is_match(text) {
        return false;
    }
    let names_ggml = |l: &str| l.contains("current device:") && l.contains("ggml");
    let ggml_function = names_ggml(text) || after.iter().take(3).any(|l| names_ggml(l));
    let recent = &before[before.len().saturating_sub(30)..];
    if recent
        .iter()
        .any(|l| l.contains("File \"") || l.contains("Traceback") || l.contains("torch"))
    {
        return false;
    }
    ggml_function
        || OLLAMA_RUNNER.is_match(text)
        || recent.iter().rev().take(12).any(|l| {
            let l = strip_log_prefix(l).trim_start();
            [
                "llama_",
                "ggml_",
                "llm_load_",
                "load_tensors:",
                "print_info:",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
}

/// Ollama's words for its llama.cpp runner's failure, with the runner's
/// last error lines after them (llm/server.go: `llama runner process has
/// terminated: %w`, `llama runner process no longer running`; 2024's
/// dynamic-library server: `an unknown error was encountered while running
/// the model`; before 0.1.20, llm/llama.go's predict loop when the runner
/// died under it: `llama runner exited: %v`, or without its last error,
/// `llama runner exited, you may not have enough available memory to run
/// this model`).
pub(crate) static OLLAMA_RUNNER: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"llama\s*runner\s*(?:process\s*(?:has\s*terminated|no\s*longer\s*running)|exited\b)|",
        r"an\s*unknown\s*error\s*was\s*encountered\s*while\s*running\s*the\s*model"
    ))
});

/// The device ggml-cuda's error handler names (`current device: N`), in the
/// message or the lines right after it; -1 (the device could not be read)
/// names none.
pub(crate) fn ggml_current_device(text: &str, after: &[String]) -> Option<u32> {
    static CURRENT: LazyLock<Regex> = LazyLock::new(|| re(r"current\s*device\s*:\s*(\d+)"));
    std::iter::once(text)
        .chain(after.iter().take(3).map(String::as_str))
        .find_map(|l| CURRENT.captures(l))
        .and_then(|c| c[1].parse().ok())
}

/// The free memory llama.cpp reported for the device `index` when it began
/// to load the model (src/llama.cpp, `llama_model_load_from_file`: one
/// `using device CUDA0 (NVIDIA GeForce RTX 4090) - 23008 MiB free` line per
/// device, from `ggml_backend_dev_memory`, in whole MiB). The last such
/// line for the device counts: a server reloads. Devices are named by
/// backend and number (`CUDA0`, `ROCm1`, `Vulkan0`, `SYCL0`); a device
/// without a number (`Metal`) is device 0 when it is the only one listed.
pub(crate) fn ggml_device_free(before: &[String], index: u32) -> Option<u64> {
    static USING: LazyLock<Regex> = LazyLock::new(|| {
        re(r"\busing\s+device\s+([A-Za-z]+)(\d*)\s+\(.*\)\s+-\s+(\d+)\s*MiB\s+free")
    });
    let mut unnumbered = None;
    let mut numbered = None;
    let mut devices = 0usize;
    for line in before {
        if !line.contains("MiB free") {
            continue;
        }
        let Some(c) = USING.captures(line) else {
            continue;
        };
        let Some(free) = c[3]
            .parse::<u64>()
            .ok()
            .and_then(|m| m.checked_mul(1 << 20))
        else {
            continue;
        };
        devices += 1;
        match c[2].parse::<u32>() {
            Ok(n) if n == index => numbered = Some(free),
            Ok(_) => {}
            Err(_) => unnumbered = Some(free),
        }
    }
    numbered.or(unnumbered.filter(|_| index == 0 && devices == 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vllm_s_cpu_backend_checks_are_host_memory() {
        // opea-project/GenAIExamples pull 1762.
        let e = parse("ValueError: The model's max seq len (131072) is larger than the maximum number of tokens that can be stored in KV cache (21840). Try increasing `VLLM_CPU_KVCACHE_SPACE` or decreasing `max_model_len` when initializing the engine.").expect("an event");
        assert_eq!(e.device.kind, DeviceKind::Cpu);
        let gpu = parse("ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine.").expect("an event");
        assert_eq!(gpu.device.kind, DeviceKind::Unknown);
    }

    #[test]
    fn free_memory_llama_cpp_reported_for_the_failing_device() {
        // ollama/ollama issue 8776 (three MI210s, ROCm0 failed).
        let lines: Vec<String> = [
            "llama_load_model_from_file: using device ROCm1 (AMD Instinct MI210) - 65430 MiB free",
            "llama_load_model_from_file: using device ROCm2 (AMD Instinct MI210) - 65430 MiB free",
            "llama_load_model_from_file: using device ROCm0 (AMD Instinct MI210) - 64468 MiB free",
            "llm_load_print_meta: expert_weights_norm  = 1",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(ggml_device_free(&lines, 0), Some(64468 << 20));
        assert_eq!(ggml_device_free(&lines, 1), Some(65430 << 20));
        assert_eq!(ggml_device_free(&lines, 3), None);
        let metal = [
            "llama_model_load_from_file_impl: using device Metal (Apple M2 Max) - 49151 MiB free"
                .to_string(),
        ];
        assert_eq!(ggml_device_free(&metal, 0), Some(49151 << 20));
        assert_eq!(ggml_device_free(&metal, 1), None);
        let two = [
            metal[0].clone(),
            "llama_model_load_from_file_impl: using device BLAS (Accelerate) - 0 MiB free"
                .to_string(),
        ];
        assert_eq!(ggml_device_free(&two, 0), None);
        assert_eq!(
            ggml_device_free(
                &["using device CUDA0 (x) - 99999999999999999999 MiB free".to_string()],
                0
            ),
            None
        );
    }

    #[test]
    fn triton_s_cuda_pool_out_of_memory() {
        for (text, bytes) in [
            // triton-inference-server/server issue 8177.
            ("W0410 13:51:44.743979 1 memory.cc:212] Failed to allocate CUDA memory with byte size 102236160 on GPU 0: CNMEM_STATUS_OUT_OF_MEMORY, falling back to pinned system memory", 102236160),
            // Issue 1765, the warning quoted in the report.
            ("Think that tritis can not allocate memory on GPU `Failed to allocate CUDA memory with byte size 78643200 on GPU 0: CNMEM_STATUS_OUT_OF_MEMORY, falling back to pinned system memory` so it collect data in RAM", 78643200),
        ] {
            let e = parse(text).expect("an event");
            assert_eq!(e.device.kind, DeviceKind::Cuda);
            assert_eq!(e.device.index, Some(0));
            assert_eq!(e.memory.requested_bytes, Some(bytes));
            assert!(e.message.contains("CNMEM_STATUS_OUT_OF_MEMORY"));
        }
        // Another pool status is not memory.
        assert!(triton_pool("Failed to allocate CUDA memory with byte size 64 on GPU 0: CNMEM_STATUS_NOT_INITIALIZED").is_none());
    }

    #[test]
    fn onnx_runtime_s_arena_at_its_limit_gives_what_was_left_and_asked() {
        let e = parse("Non-zero status code returned while running Cast node. Name:'cast0' Status Message: BFCArena::AllocateRawInternal Available memory of 34699008 is smaller than requested bytes of 945041920").expect("an event");
        assert_eq!(e.framework, Framework::OnnxRuntime);
        assert_eq!(e.memory.free_bytes, Some(34699008));
        assert_eq!(e.memory.requested_bytes, Some(945041920));
        assert_eq!(e.facts.op.as_deref(), Some("Cast"));
    }

    #[test]
    fn onnx_runtime_s_arena_cut_before_its_size_is_still_its_failure() {
        // Through the families' dispatch: the family's words must admit it.
        let e = crate::oom::families::parse_logical("/onnxruntime_src/onnxruntime/core/framework/bfc_arena.cc:376 void* onnxruntime::BFCArena::AllocateRawInternal(size_t, bool, onnxruntime::Stream*, bool, onnxruntime::WaitNotificationFn) Failed to alloc").expect("an event");
        assert_eq!(e.framework, Framework::OnnxRuntime);
        assert_eq!(e.memory.requested_bytes, None);
        // Another function's failure to allocate is not the arena's.
        assert!(onnxruntime("ArenaWrapper::Init Failed to alloc").is_none());
    }

    #[test]
    fn a_bare_cuda_error_after_llama_lines_is_ggml_s() {
        let before: Vec<String> = [
            "llama_new_context_with_model:      CUDA0 compute buffer size =   296.02 MiB",
            "llama_new_context_with_model: graph splits (measure): 3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert!(printed_by_ggml(&before, "CUDA error: out of memory", &[]));
        let after = vec![
            "  current device: 0, in function ggml_cuda_pool_malloc at ggml-cuda.cu:123"
                .to_string(),
        ];
        assert!(printed_by_ggml(&[], "CUDA error: out of memory", &after));
        // PyTorch's own: a traceback, or its exception class.
        let tb = vec![
            "Traceback (most recent call last):".to_string(),
            "  File \"a.py\", line 1".to_string(),
        ];
        assert!(!printed_by_ggml(&tb, "CUDA error: out of memory", &[]));
        assert!(!printed_by_ggml(
            &before,
            "RuntimeError: CUDA error: out of memory",
            &[]
        ));
        assert!(!printed_by_ggml(&[], "CUDA error: out of memory", &[]));
        // The handler's lines joined into the message, ROCm's name, Ollama's wrapper.
        assert!(printed_by_ggml(
            &[],
            "CUDA error: out of memory current device: 0, in function ggml_cuda_pool_malloc_vmm at ggml-cuda.cu:8583",
            &[]
        ));
        assert!(printed_by_ggml(&[], "ROCm error: out of memory", &after));
        assert!(printed_by_ggml(
            &[],
            "Error: llama runner process has terminated: CUDA error: out of memory",
            &[]
        ));
    }

    #[test]
    fn ggml_names_the_current_device_unless_it_could_not_read_it() {
        let after = vec!["  current device: 3, in function alloc at ggml-cuda.cu:420".to_string()];
        assert_eq!(
            ggml_current_device("ROCm error: out of memory", &after),
            Some(3)
        );
        assert_eq!(
            ggml_current_device(
                "CUDA error 2 at ggml-cuda.cu:5509: out of memory current device: 1",
                &[]
            ),
            Some(1)
        );
        let unknown = vec!["  current device: -1, in function f at ggml-cuda.cu:1".to_string()];
        assert_eq!(
            ggml_current_device("CUDA error: out of memory", &unknown),
            None
        );
        assert_eq!(ggml_current_device("CUDA error: out of memory", &[]), None);
    }

    #[test]
    fn engine_log_reads_the_engine_s_own_lines_around_the_failure() {
        let lines = |v: &[&str]| v.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        let log = engine_log(
            &lines(&["llama_context: n_ubatch = 4096"]),
            "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 204800.00 MiB on device 0: cudaMalloc failed: out of memory",
            &lines(&[
                "llama_kv_cache_init: failed to allocate buffer for kv cache",
                "llama_init_from_model: failed to allocate compute buffers",
            ]),
        );
        assert_eq!(log.llama_failed, Some(LlamaBufferKind::KvCache));
        assert_eq!(log.ubatch, Some(4096));
        // whisper.cpp words the same failure its own way.
        let log = engine_log(
            &[],
            "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 560.00 MiB on device 0: cudaMalloc failed: out of memory",
            &lines(&["whisper_kv_cache_init: failed to allocate memory for the kv cache"]),
        );
        assert_eq!(log.llama_failed, Some(LlamaBufferKind::KvCache));
        let log = engine_log(
            &lines(&[
                "INFO model_runner.py:625] Capturing the model for CUDA graphs.",
                "[TensorRT-LLM][INFO] Loaded engine size: 13768 MiB",
                "  File \"faster_whisper/transcribe.py\", line 125, in __init__",
            ]),
            "RuntimeError: CUDA failed with error out of memory",
            &[],
        );
        assert!(log.cuda_graph_capture);
        assert_eq!(log.engines_loaded, vec![13768 << 20]);
        assert!(log.in_constructor);
        // A capture that finished before the failure is not the failure's.
        let log = engine_log(
            &lines(&[
                "Capturing cudagraphs for decoding.",
                "Graph capturing finished in 5 secs",
            ]),
            "CUDA out of memory",
            &[],
        );
        assert!(!log.cuda_graph_capture);
        // A report's own words for the capture.
        let log = engine_log(
            &[],
            "OOM during graph capture at high `--gpu-memory-utilization`",
            &[],
        );
        assert!(log.cuda_graph_capture);
        // Vulkan's single-allocation limit, said the line before the
        // allocator's failure or after the backend's; not when said long
        // before it.
        let limit = "ggml_vulkan: Requested buffer size exceeds device memory allocation limit: ErrorOutOfDeviceMemory";
        let failed = "ggml_gallocr_reserve_n: failed to allocate Vulkan0 buffer of size 4757131264";
        assert!(engine_log(&lines(&[limit]), failed, &[]).per_buffer_limit);
        assert!(engine_log(&[], failed, &[]).graph_failed);
        for said in [
            "srv  process_chun: processing image...",
            "llama-qwen2vl-cli -m q.gguf --mmproj mmproj.gguf --image facture_1.png",
            "time=2025-05-18T08:36:01.003Z level=DEBUG source=cache.go:136 msg=\"loading cache slot\" id=0",
        ] {
            assert!(engine_log(&lines(&[said]), failed, &[]).serving_request, "{said}");
        }
        assert!(
            !engine_log(
                &lines(&["llama_new_context_with_model: n_ctx = 4096"]),
                failed,
                &[]
            )
            .serving_request
        );
        let cuda = "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 4514.05 MiB on device 0: cudaMalloc failed: out of memory";
        assert!(!engine_log(&[], cuda, &[]).graph_failed);
        let backend = "ggml_vulkan: Device memory allocation of size 4757131264 failed.";
        assert!(engine_log(&[], backend, &lines(&[limit])).per_buffer_limit);
        let mut far = lines(&[limit]);
        far.extend(lines(&["llama_context: n_ctx = 4096"; 6]));
        assert!(!engine_log(&far, failed, &[]).per_buffer_limit);
        let log = engine_log(
            &lines(&[
                "When using it in a long-running process, `-ub 8192` and:",
                "[METAL] Command buffer execution failed: Insufficient Memory",
            ]),
            "(00000008:kIOGPUCommandBufferCallbackErrorOutOfMemory)",
            &[],
        );
        assert!(log.ran_long && log.metal_command_buffer);
        assert_eq!(log.ubatch, Some(8192));
    }

    #[test]
    fn sglang_pool_check_old_and_new_wording() {
        let old =
            parse("RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.")
                .expect("an event");
        assert_eq!(old.framework, Framework::Other);
        assert_eq!(old.device.kind, DeviceKind::Cuda);
        assert_eq!(old.device.index, None);
        assert_eq!(old.phase_hint, Some(Phase::Startup));
        assert!(old.memory.is_empty());
        assert_eq!(
            old.facts.sglang().cloned(),
            Some(SglangCheck::NoKvCacheRoom {
                mem_fraction_static: None
            })
        );
        let new = parse("RuntimeError: Not enough memory. Please try to increase --mem-fraction-static. Current value: mem_fraction_static=0.8")
            .expect("an event");
        assert_eq!(
            new.facts.sglang().cloned(),
            Some(SglangCheck::NoKvCacheRoom {
                mem_fraction_static: Some(0.8)
            })
        );
        assert!(new.message.starts_with("RuntimeError: Not enough memory."));
        // The fraction is a share, not bytes: no memory figure.
        assert_eq!(new.memory.allowed_bytes, None);
        let weights = parse("ValueError: Loaded weights leave no GPU memory for the KV cache under --mem-fraction-static=0.88. Raise --mem-fraction-static above 0.912")
            .expect("an event");
        assert_eq!(
            weights.facts.sglang().cloned(),
            Some(SglangCheck::NoKvCacheRoom {
                mem_fraction_static: Some(0.88)
            })
        );
        assert!(weights.message.starts_with("ValueError: Loaded weights"));
    }

    #[test]
    fn sglang_advice_in_prose_is_not_the_check() {
        assert!(parse(
            "If you see out-of-memory errors during serving, try a smaller --mem-fraction-static."
        )
        .is_none());
    }

    #[test]
    fn llama_offload_from_the_lines_before_the_failure() {
        let lines: Vec<String> = [
            "llm_load_tensors: offloaded 20/41 layers to GPU",
            "llm_load_tensors:        CPU buffer size =  9000.00 MiB",
            // A second load (a retry) replaces the first.
            "Jun 18 10:32:31 host python[15982]: load_tensors: offloaded 41/41 layers to GPU",
            "load_tensors:          CPU model buffer size =   688.88 MiB",
            "load_tensors:        CUDA0 model buffer size =  5434.38 MiB",
            "load_tensors:        CUDA1 model buffer size = 13989.53 MiB",
            "llama_kv_cache_init:      CUDA0 KV buffer size =  1536.00 MiB",
            "llama_kv_cache_unified:      CUDA1 KV buffer size =  3584.00 MiB",
            "llama_new_context_with_model:  CUDA_Host  output buffer size =     1.95 MiB",
            "llama_context:      CUDA0 compute buffer size =   672.01 MiB",
            "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 8900.01 MiB on device 0: cudaMalloc failed: out of memory",
        ]
        .iter()
        .map(|l| l.to_string())
        .collect();
        let o = llama_offload(&lines).expect("offload facts");
        assert_eq!((o.offloaded_layers, o.total_layers), (Some(41), Some(41)));
        let mib = |x: &str| crate::size::log_figure_to_bytes(x, "MiB").expect("a size");
        let got: Vec<(&str, LlamaBufferKind, u64)> = o
            .buffers
            .iter()
            .map(|b| (b.device.as_str(), b.kind, b.bytes))
            .collect();
        assert_eq!(got.len(), 7, "{got:?}");
        assert_eq!(got[0], ("CPU", LlamaBufferKind::Model, mib("688.88")));
        assert_eq!(got[1].0, "CUDA0");
        assert_eq!(got[3], ("CUDA0", LlamaBufferKind::KvCache, mib("1536.0")));
        assert_eq!(got[4].1, LlamaBufferKind::KvCache);
        assert_eq!(got[5], ("CUDA_Host", LlamaBufferKind::Output, mib("1.95")));
        assert_eq!(got[6], ("CUDA0", LlamaBufferKind::Compute, mib("672.01")));
        assert!(llama_offload(&["nothing".to_string()]).is_none());
    }

    #[test]
    fn ollama_refuses_a_model_larger_than_free_host_memory() {
        for text in [
            "Error: model requires more system memory (12.6 GiB) than is available (7.9 GiB)",
            "ResponseError: {\"error\":\"model requires more system memory (12.6 GiB) than is available (7.9 GiB)\"} (status code: 500)",
            "Ollama request failed (500): \"model requires more system memory (12.6 GiB) than is available (7.9 GiB)\"",
        ] {
            let e = parse(text).unwrap_or_else(|| panic!("an event in {text}"));
            assert_eq!(e.device.kind, DeviceKind::Cpu, "{text}");
            let gib = |v: &str| crate::size::log_figure_to_bytes(v, "GiB");
            assert_eq!(e.memory.requested_bytes, gib("12.6"));
            assert_eq!(e.memory.free_bytes, gib("7.9"));
            assert_eq!(e.phase_hint, Some(Phase::ModelLoad));
        }
        assert!(parse("model requires more system memory than this laptop has").is_none());
    }

    #[test]
    fn ggml_backend_allocations_and_the_generic_load_failure() {
        let e = parse("ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size 8589934592")
            .expect("an event");
        assert_eq!(e.framework, Framework::LlamaCpp);
        assert_eq!(e.device.kind, DeviceKind::Cpu);
        assert_eq!(e.memory.requested_bytes, Some(8 << 30));
        let e = parse("ggml_backend_metal_buffer_type_alloc_buffer: failed to allocate buffer of size 1048576")
            .expect("an event");
        assert_eq!(e.device.kind, DeviceKind::Mps);
        let e = parse("llama_model_load: error loading model: unable to allocate backend buffer")
            .expect("an event");
        assert_eq!(e.framework, Framework::LlamaCpp);
        assert_eq!(e.device.kind, DeviceKind::Unknown);
        assert!(e.memory.is_empty());
    }
}
