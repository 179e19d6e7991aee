//! Serving engines: how vLLM, SGLang and llama.cpp lay a model out on a GPU
//! at start-up, in the figures each engine prints (weights, activation peak
//! of the profile run, CUDA graphs, KV cache size and tokens, maximum
//! concurrency; for llama.cpp the GPU and host model buffers, the KV buffer
//! and the compute buffer), and what fits: the longest `--max-model-len`,
//! the `--gpu-memory-utilization` a length needs, the most `-ngl` layers,
//! the longest `--ctx-size`. The flags to paste come out in each engine's
//! own spelling.
//!
//! Each engine is a file; this module holds what they share. The Hugging
//! Face path (`hf`) is the estimate of the parent module, not an engine here.

pub mod ggml;
pub mod llama_cpp;
pub mod sglang;
pub mod vllm;

use serde::Serialize;

/// `--engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EngineName {
    /// Hugging Face Transformers: the workload estimate, no serving engine.
    #[serde(rename = "hf")]
    Hf,
    /// vLLM.
    #[serde(rename = "vllm")]
    Vllm,
    /// llama.cpp (`llama-server`, `llama-cli`).
    #[serde(rename = "llama.cpp")]
    LlamaCpp,
    /// SGLang.
    #[serde(rename = "sglang")]
    Sglang,
}

impl EngineName {
    /// Reads the name `--engine` takes (any case; `transformers`, `llamacpp` and `llama-cpp` too); `None` for anything else.
    pub fn parse(s: &str) -> Option<EngineName> {
        Some(match s.to_ascii_lowercase().as_str() {
            "hf" | "transformers" => EngineName::Hf,
            "vllm" => EngineName::Vllm,
            "llama.cpp" | "llamacpp" | "llama-cpp" => EngineName::LlamaCpp,
            "sglang" => EngineName::Sglang,
            _ => return None,
        })
    }

    /// The name as `--engine` and JSON spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineName::Hf => "hf",
            EngineName::Vllm => "vllm",
            EngineName::LlamaCpp => "llama.cpp",
            EngineName::Sglang => "sglang",
        }
    }
}

/// What a serving engine would print at start-up, per GPU (the reference's `engine`
/// object). `None` where the engine has no such figure or it cannot be
/// known without a GPU size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineReport {
    /// Which engine the figures are for.
    pub name: EngineName,
    /// Bytes of weights on one GPU.
    pub weights_bytes: u64,
    /// Bytes of the activation peak the engine reserves (vLLM's profile run, llama.cpp's compute buffer).
    pub activation_peak_bytes: u64,
    /// Bytes the engine's captured CUDA graphs hold; `None` when it captures none or it is unknown.
    pub cuda_graph_bytes: Option<u64>,
    /// Bytes left for the KV cache; `None` without a GPU size.
    pub kv_cache_bytes: Option<u64>,
    /// Tokens the KV cache holds; `None` without a GPU size.
    pub kv_cache_tokens: Option<u64>,
    /// How many requests of the planned length the KV cache holds at once; `None` without a GPU size.
    pub max_concurrency: Option<f64>,
    /// The longest `--max-model-len` (tokens) whose KV cache fits; `None` when not computed.
    pub max_model_len_fit: Option<u64>,
    /// The `--gpu-memory-utilization` the planned length needs; `None` when not computed.
    pub gpu_memory_utilization_needed: Option<f64>,
    /// The most layers `-ngl` can put on the GPU; `None` outside llama.cpp or without a GPU size.
    pub n_gpu_layers_fit: Option<u64>,
    /// The longest `--ctx-size` (tokens) that fits; `None` outside llama.cpp or without a GPU size.
    pub ctx_size_fit: Option<u64>,
    /// Bytes of model buffers kept in host memory (llama.cpp layers not offloaded); `None` when none.
    pub host_bytes: Option<u64>,
    /// The flags to paste, in the engine's own spelling.
    pub flags: Vec<String>,
    /// Memory the process holds on the GPU besides the figures above
    /// (CUDA context, NCCL and library buffers).
    #[serde(skip)]
    pub other_bytes: u64,
    /// Whether the engine starts with the settings asked for.
    #[serde(skip)]
    pub fits: Option<bool>,
    /// The request length planned for (`--max-model-len`,
    /// `--context-length`, `--ctx-size`).
    #[serde(skip)]
    pub request_len: u64,
    /// Why it would refuse to start, in the engine's terms.
    #[serde(skip)]
    pub refusal: Option<String>,
}

impl EngineReport {
    /// A report with the figures every engine has; every other figure is
    /// unknown (`None`) until the engine's own accounting fills it in.
    pub fn new(
        name: EngineName,
        weights_bytes: u64,
        activation_peak_bytes: u64,
        other_bytes: u64,
        request_len: u64,
    ) -> EngineReport {
        EngineReport {
            name,
            weights_bytes,
            activation_peak_bytes,
            cuda_graph_bytes: None,
            kv_cache_bytes: None,
            kv_cache_tokens: None,
            max_concurrency: None,
            max_model_len_fit: None,
            gpu_memory_utilization_needed: None,
            n_gpu_layers_fit: None,
            ctx_size_fit: None,
            host_bytes: None,
            flags: Vec::new(),
            other_bytes,
            fits: None,
            refusal: None,
            request_len,
        }
    }

    /// What the GPU shows for the process at the end of start-up.
    pub fn device_used_bytes(&self) -> u64 {
        self.weights_bytes
            .saturating_add(self.activation_peak_bytes)
            .saturating_add(self.cuda_graph_bytes.unwrap_or(0))
            .saturating_add(self.kv_cache_bytes.unwrap_or(0))
            .saturating_add(self.other_bytes)
    }
}

/// A fraction flag (`--gpu-memory-utilization`, `--mem-fraction-static`)
/// must be in (0, 1].
pub fn check_fraction(flag: &str, v: f64) -> Result<f64, String> {
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(format!(
            "{flag} {v}: a fraction of the GPU's memory, above 0 and at most 1"
        ))
    }
}
