//! vLLM's start-up accounting (V1 engine, `vllm/v1/worker/gpu_worker.py`
//! `determine_available_memory` and `vllm/v1/core/kv_cache_utils.py`):
//!
//! 1. the weights load ("Model loading took X GiB"): every parameter at the
//!    dtype (a multimodal checkpoint's vision encoder too), linears and
//!    embeddings split over `--tensor-parallel-size`, and the rotary
//!    embedding's cos/sin table on every GPU;
//! 2. a profile run with `--max-num-batched-tokens` tokens and a dummy
//!    sampler pass over `--max-num-seqs` sequences gives the torch
//!    activation peak; what CUDA allocated outside torch (NCCL, cuBLAS
//!    workspaces) is added;
//! 3. the KV cache gets `gpu_memory_utilization · total` minus both
//!    ("Available KV cache memory"), cut into blocks of 16 tokens over all
//!    layers ("GPU KV cache size: N tokens");
//! 4. start-up fails when one request of `--max-model-len` does not fit
//!    the cache; "Maximum concurrency for N tokens per request" is the cache
//!    over what one such request needs;
//! 5. CUDA graphs are captured afterwards, outside the utilization budget
//!    (vLLM 0.19 with its default `VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0`):
//!    "Graph capturing finished in N secs, took X GiB", estimated by
//!    [`cuda_graph_bytes`].
//!
//! Layers with a sliding window need only their window (plus the tokens of
//! one scheduling step) per request, as vLLM's `SlidingWindowSpec`
//! `max_memory_usage_bytes` counts; multi-head latent attention caches one
//! latent per token and layer (`MLAAttentionSpec`).

use super::{EngineName, EngineReport};
use crate::estimate::weights::weights_bytes;
use crate::estimate::workload::Workload;
use crate::model::{LocalAttentionKind, ModelShape};

/// vLLM's KV cache block, in tokens (`CacheConfig.block_size` default for
/// CUDA).
pub const BLOCK_TOKENS: u64 = 16;

/// Bytes vLLM measured outside torch during the profile run, on one GPU and
/// with tensor parallelism (NCCL communicators and the custom all-reduce
/// buffers): 0.24-0.26 GiB in five single-GPU start-up logs of vLLM 0.19 on
/// H100 (Llama-3.1-8B, Qwen2.5-7B, Qwen3-30B-A3B, Phi-4, DeepSeek-V2-Lite),
/// 2.1-2.2 GiB in three with TP 2 and 4 (Qwen2.5-72B, Llama-3.3-70B,
/// Llama-4-Scout): the logs' "non-torch increase" (llm-d-planner
/// accuracy/results/v0.19.0/logs).
pub const NON_TORCH_BYTES_TP1: u64 = 256 << 20;
/// The same with tensor parallelism (see [`NON_TORCH_BYTES_TP1`]).
pub const NON_TORCH_BYTES_TP: u64 = 2202 << 20;

/// Bytes the sampler's dummy pass holds per sequence and vocabulary entry:
/// top-k/top-p sampling keeps the fp32 logits, their sorted copy and the
/// sort's int64 indices (16 bytes), less what it frees on the way. Measured
/// at 15: the "torch peak increase" of three vLLM 0.19 start-up logs on H100
/// (Llama-3.1-8B 1.89 GiB, Qwen2.5-7B 2.21 GiB, Phi-4 1.52 GiB, with 1024
/// sequences) over their logits gives 14.9-15.1 bytes each, beside the
/// batch's hidden states (llm-d-planner accuracy/results/v0.19.0/logs).
const SAMPLER_BYTES_PER_LOGIT: u64 = 15;

/// vLLM's rotary embedding keeps a cos/sin table of `max_position_embeddings`
/// rows of `rotary_dim` values in the model's dtype on every GPU
/// (`RotaryEmbedding.cos_sin_cache`, a buffer counted in "Model loading
/// took"): 32 MiB for Llama-3.1-8B, 2.5 GiB for Llama 4 Scout's 10M
/// positions.
pub fn rope_cache_bytes(s: &ModelShape, elem: u64) -> u64 {
    match (s.rotary, s.max_position_embeddings) {
        (Some(r), Some(max)) => max
            .saturating_mul(r.dims)
            .saturating_mul(r.tables)
            .saturating_mul(elem),
        _ => 0,
    }
}

/// The settings vLLM is started with; `None` is vLLM's default.
#[derive(Debug, Clone, Default)]
pub struct VllmSettings {
    /// `--gpu-memory-utilization` (vLLM's default 0.9).
    pub gpu_memory_utilization: Option<f64>,
    /// `--max-model-len` (default: the model's maximum).
    pub max_model_len: Option<u64>,
    /// `--max-num-seqs` (default by GPU size, [`default_batching`]).
    pub max_num_seqs: Option<u64>,
    /// `--max-num-batched-tokens` (default by GPU size).
    pub max_num_batched_tokens: Option<u64>,
    /// fp8 KV cache (`--kv-cache-dtype fp8`).
    pub kv_fp8: bool,
    /// `--enforce-eager`: no CUDA graphs.
    pub enforce_eager: bool,
}

/// vLLM's defaults for the OpenAI server (`vllm/engine/arg_utils.py`,
/// `_set_default_args`): on GPUs of 70 GiB or more other than the A100,
/// 8192 batched tokens and 1024 sequences; elsewhere 2048 and 256.
pub fn default_batching(total_bytes: Option<u64>, gpu_name: &str) -> (u64, u64) {
    let big = total_bytes.is_some_and(|t| t >= 70 << 30)
        && !gpu_name.to_ascii_lowercase().contains("a100");
    if big {
        (8192, 1024)
    } else {
        (2048, 256)
    }
}

/// KV bytes of one token in one layer on one GPU.
pub fn kv_bytes_per_token_layer(s: &ModelShape, tp: u64, kv_elem: u64) -> u64 {
    match s.mla_cache_width {
        Some(width) => width * kv_elem,
        None => {
            // KV heads are split over TP ranks, and replicated when there
            // are fewer heads than ranks.
            let heads = (s.kv_heads / tp.max(1)).max(1);
            2 * heads * s.head_dim * kv_elem
        }
    }
}

/// How vLLM's hybrid allocator groups layers
/// (`kv_cache_utils.py`, `_get_kv_cache_groups_uniform_page_size`): layers
/// of one attention type are cut into groups of `group_size` layers, the
/// size of the smallest type (or of the largest when it is within 25%, to
/// avoid padding); one block tensor per position in a group is shared by
/// all groups. Returns (group_size, groups). A model of one type is one
/// group of all its layers.
pub fn kv_groups(s: &ModelShape) -> (u64, u64) {
    match s.local_attention {
        Some(local) if local.layers < s.layers => {
            let global = s.layers - local.layers;
            let (small, large) = (global.min(local.layers), global.max(local.layers));
            let size = if (large as f64) < small as f64 * 1.25 {
                large
            } else {
                small
            };
            (size, global.div_ceil(size) + local.layers.div_ceil(size))
        }
        _ => (s.layers.max(1), 1),
    }
}

/// Bytes one request of `len` tokens needs in the cache: global layers
/// hold all its blocks, sliding-window layers their window plus one
/// scheduling step, chunked layers one chunk (vLLM's
/// `max_memory_usage_bytes` per spec).
pub fn request_bytes(s: &ModelShape, len: u64, step_tokens: u64, per_layer_token: u64) -> u64 {
    let blocks = |tokens: u64| tokens.div_ceil(BLOCK_TOKENS);
    let page = BLOCK_TOKENS * per_layer_token;
    match s.local_attention {
        Some(local) => {
            let global = s.layers.saturating_sub(local.layers);
            let local_blocks = match local.kind {
                LocalAttentionKind::Sliding => {
                    blocks((local.window - 1 + step_tokens).min(len)) + 1
                }
                LocalAttentionKind::Chunked => blocks(local.window.min(len)) + 1,
            };
            (global * blocks(len) + local.layers * local_blocks.min(blocks(len) + 1)) * page
        }
        None => s.layers * blocks(len) * page,
    }
}

/// The profile run's torch peak: the sampler's dummy pass over
/// `max_num_seqs` logit rows or the forward pass over `batched_tokens`,
/// whichever is larger, plus the batch's hidden states; a mixture of
/// experts adds the fused-MoE kernel's intermediate buffers (gate/up
/// output and expert output for every routed token).
pub fn activation_peak(
    s: &ModelShape,
    w: &Workload,
    batched_tokens: u64,
    max_num_seqs: u64,
) -> u64 {
    let e = w.dtype.bytes();
    let tp = w.tp.max(1);
    let h = s.hidden_size;
    let sampler = max_num_seqs
        .saturating_mul(s.vocab_size)
        .saturating_mul(SAMPLER_BYTES_PER_LOGIT);
    let hidden = batched_tokens.saturating_mul(h).saturating_mul(e);
    let (forward, moe) = match &s.moe {
        Some(m) => {
            let routed = batched_tokens.saturating_mul(m.experts_per_token);
            let moe = routed
                .saturating_mul(2 * m.expert_intermediate_size / tp + h)
                .saturating_mul(e);
            (0, moe)
        }
        None => {
            // Gate/up output and the activation of the MLP, split over TP.
            let i = s.intermediate_size / tp;
            (batched_tokens.saturating_mul(3 * i).saturating_mul(e), 0)
        }
    };
    sampler
        .max(forward)
        .saturating_add(hidden)
        .saturating_add(moe)
}

/// The batch sizes vLLM captures CUDA graphs for (`vllm/config/vllm.py`,
/// `_set_cudagraph_sizes`): 1, 2, 4, the multiples of 8 below 256, then the
/// multiples of 16, up to `min(2 x max_num_seqs, 512)` and never above the
/// batched tokens.
pub fn cudagraph_capture_sizes(max_num_seqs: u64, batched_tokens: u64) -> Vec<u64> {
    let largest = max_num_seqs
        .saturating_mul(2)
        .min(512)
        .min(batched_tokens)
        .max(1);
    [1, 2, 4]
        .into_iter()
        .chain((8..256).step_by(8))
        .chain((256..=512).step_by(16))
        .filter(|&n| n <= largest)
        .collect()
}

/// The attention backend vLLM 0.19 picks on a CUDA GPU for a decoder
/// (`vllm/platforms/cuda.py` walks its priority list and skips a backend
/// that `validate_configuration` rejects, `vllm/v1/attention/backend.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionBackend {
    /// FlashAttention (FA3 on Hopper), first choice for fp16/bf16.
    FlashAttn,
    /// vLLM's Triton unified attention, the fallback.
    Triton,
}

/// FlashAttention takes fp16/bf16 only and head sizes that are multiples
/// of 8 up to 256 (`FlashAttentionBackend.supported_dtypes` and
/// `supports_head_size`), and cannot mask a multimodal prefix LM's
/// bidirectional image tokens ("partial multimodal token full attention
/// not supported"); vLLM then falls back to Triton. The start-up logs show
/// it: "Using TRITON_ATTN attention backend" for Gemma 3 (multimodal) and
/// for fp32, "Using FLASH_ATTN" otherwise.
pub fn attention_backend(s: &ModelShape, w: &Workload) -> AttentionBackend {
    let half = w.dtype != crate::model::Dtype::Fp32;
    let head_ok = s.mla_cache_width.is_some() || (s.head_dim % 8 == 0 && s.head_dim <= 256);
    if half && head_ok && !s.mm_prefix_lm {
        AttentionBackend::FlashAttn
    } else {
        AttentionBackend::Triton
    }
}

/// Splits FlashAttention may use under a full CUDA graph: vLLM fixes the
/// bound so the split-KV buffers can be allocated at capture
/// (`AttentionConfig.flash_attn_max_num_splits_for_cuda_graph`, default 32,
/// vllm/config/attention.py; used in `FlashAttentionMetadataBuilder`).
const FLASH_ATTN_GRAPH_SPLITS: u64 = 32;

/// Fixed part of the capture: 136 MiB (fitted, see [`cuda_graph_bytes`]).
const GRAPH_FIXED_BYTES: u64 = 136 << 20;
/// Bytes each captured graph holds per decoder layer on a GPU (the kernel
/// nodes of the graph, or of the layer's piece in piecewise mode): 170 KiB
/// (fitted, see [`cuda_graph_bytes`]).
const GRAPH_BYTES_PER_GRAPH_LAYER: u64 = 170 << 10;

/// What the graph pool must hold while the largest batch is captured,
/// besides the kernel nodes: the MLP's transient outputs at that size
/// (gate/up and the activation; for a mixture of experts the fused-MoE
/// kernel's caches for every routed token: gate/up, activation and the
/// expert outputs), and with FlashAttention the fp32 split-KV buffers of
/// the full graph, `[splits, tokens, heads, head_size]` (vLLM's note in
/// `flash_attn.py`: "the intermediate buffers of size [num_splits,
/// num_heads, num_tokens, head_size] are allocated"). The logs' own
/// per-mode profile agrees: a FULL first capture of 260 MiB with
/// FlashAttention for Llama-3.1-8B (32 x 512 x 32 heads x 128 x 4 B =
/// 256 MiB), 132 and 70 MiB at TP 2 and 4, 4 MiB with Triton.
pub fn graph_pool_bytes(s: &ModelShape, w: &Workload, largest: u64) -> u64 {
    let tp = w.tp.max(1);
    let e = w.dtype.bytes();
    let mlp_width = match &s.moe {
        Some(m) => {
            m.experts_per_token * (3 * m.expert_intermediate_size / tp + s.hidden_size)
                + 3 * m.shared_intermediate_size / tp
        }
        None => {
            let outputs = if s.gated_mlp { 3 } else { 2 };
            outputs * s.intermediate_size / tp
        }
    };
    let mlp = largest.saturating_mul(mlp_width).saturating_mul(e);
    let split_kv = if attention_backend(s, w) == AttentionBackend::FlashAttn {
        // Multi-head latent attention decodes in the latent space: each
        // head's output is `kv_lora_rank` wide (the cached latent less its
        // rotary part); the DeepSeek-V2-Lite log's FULL first capture,
        // 522 MiB, is 32 x 512 x 16 heads x 512 x 4 B.
        let head = match s.mla_cache_width {
            Some(latent) => latent.saturating_sub(s.rotary.map_or(0, |r| r.dims)),
            None => s.head_dim,
        };
        let width = (s.heads / tp).max(1) * head;
        FLASH_ATTN_GRAPH_SPLITS
            .saturating_mul(largest)
            .saturating_mul(width)
            .saturating_mul(4)
    } else {
        0
    };
    mlp.saturating_add(split_kv)
}

/// The memory CUDA graph capture takes after the KV cache is allocated, as
/// vLLM 0.19 logs it ("Graph capturing finished in N secs, took X GiB"),
/// with its default `FULL_AND_PIECEWISE` mode: a piecewise and a full graph
/// per capture size, all in one memory pool, largest size first so the
/// smaller ones reuse its blocks (`capture_model` in
/// `vllm/v1/worker/gpu_model_runner.py`). Three parts: a fixed one, the
/// graphs' kernel nodes (graphs x layers) and the pool kept for the largest
/// size ([`graph_pool_bytes`], from vLLM's source with no fitted factor).
/// The two fitted constants are a least-squares fit to the "took" figures
/// of the 20 dev rows (vLLM 0.19.0 on H100: dense, mixture-of-experts,
/// multimodal Gemma 3 on Triton, fp32, TP 1, 2 and 4; llm-d-planner
/// accuracy/results/v0.19.0/logs).
pub fn cuda_graph_bytes(
    s: &ModelShape,
    w: &Workload,
    batched_tokens: u64,
    max_num_seqs: u64,
) -> u64 {
    let sizes = cudagraph_capture_sizes(max_num_seqs, batched_tokens);
    let graphs = 2 * sizes.len() as u64;
    let largest = sizes.last().copied().unwrap_or(1);
    GRAPH_FIXED_BYTES
        .saturating_add(
            graphs
                .saturating_mul(s.layers)
                .saturating_mul(GRAPH_BYTES_PER_GRAPH_LAYER),
        )
        .saturating_add(graph_pool_bytes(s, w, largest))
}

/// vLLM's start-up on one GPU of `total_bytes` (as `torch.cuda.mem_get_info`
/// reports it), or without a GPU (`None`: no KV figures).
pub fn plan(
    s: &ModelShape,
    w: &Workload,
    settings: &VllmSettings,
    total_bytes: Option<u64>,
    gpu_name: &str,
) -> EngineReport {
    let tp = w.tp.max(1);
    let util = settings.gpu_memory_utilization.unwrap_or(0.9);
    let (default_tokens, default_seqs) = default_batching(total_bytes, gpu_name);
    let max_len = settings
        .max_model_len
        .or(s.max_position_embeddings)
        .unwrap_or(w.seq);
    let batched = settings.max_num_batched_tokens.unwrap_or(default_tokens);
    let seqs = settings.max_num_seqs.unwrap_or(default_seqs);
    let weights = weights_bytes(s, w)
        .saturating_add(s.vision_params.saturating_mul(w.dtype.bytes()))
        .div_ceil(tp)
        .saturating_add(rope_cache_bytes(s, w.dtype.bytes()));
    let peak = activation_peak(s, w, batched, seqs);
    let other = if tp > 1 {
        NON_TORCH_BYTES_TP
    } else {
        NON_TORCH_BYTES_TP1
    };
    let kv_elem = if settings.kv_fp8 { 1 } else { w.dtype.bytes() };
    let per_layer_token = kv_bytes_per_token_layer(s, tp, kv_elem);
    let non_kv = weights.saturating_add(peak).saturating_add(other);
    let one_request = request_bytes(s, max_len, batched, per_layer_token);
    let mut report = EngineReport {
        // Eager mode captures no graphs.
        cuda_graph_bytes: Some(if settings.enforce_eager {
            0
        } else {
            cuda_graph_bytes(s, w, batched, seqs)
        }),
        ..EngineReport::new(EngineName::Vllm, weights, peak, other, max_len)
    };
    if let Some(total) = total_bytes {
        let budget = (total as f64 * util) as u64;
        let kv = budget.saturating_sub(non_kv);
        // "GPU KV cache size": blocks per slot tensor, shared among the
        // groups (`_report_kv_cache_config`).
        let (group_size, groups) = kv_groups(s);
        let blocks = kv / (BLOCK_TOKENS * per_layer_token.max(1) * group_size) / groups;
        report.kv_cache_bytes = Some(kv);
        report.kv_cache_tokens = Some(blocks * BLOCK_TOKENS);
        report.max_concurrency = Some(kv as f64 / one_request.max(1) as f64);
        let model_max = s.max_position_embeddings.unwrap_or(max_len.max(1));
        report.max_model_len_fit = crate::estimate::fit::largest(model_max, |len| {
            request_bytes(s, len, batched, per_layer_token) <= kv
        });
        let needed = (non_kv.saturating_add(one_request)) as f64 / total as f64;
        report.gpu_memory_utilization_needed = Some((needed * 100.0).ceil() / 100.0);
        let graphs = report.cuda_graph_bytes.unwrap_or(0);
        let graphs_fit = budget.saturating_add(graphs) <= total;
        let fits = kv > 0 && one_request <= kv && graphs_fit;
        report.fits = Some(fits);
        if kv == 0 {
            report.refusal = Some(format!(
                "no memory left for the KV cache: weights, activations and buffers take {:.2} GiB of the {:.2} GiB that --gpu-memory-utilization {util} allows",
                non_kv as f64 / (1u64 << 30) as f64,
                budget as f64 / (1u64 << 30) as f64
            ));
        } else if one_request > kv {
            report.refusal = Some(format!(
                "one request of --max-model-len {max_len} needs {:.2} GiB of KV cache, more than the {:.2} GiB available",
                one_request as f64 / (1u64 << 30) as f64,
                kv as f64 / (1u64 << 30) as f64
            ));
        } else if !graphs_fit {
            report.refusal = Some(format!(
                "CUDA graph capture needs {:.2} GiB beyond the {:.2} GiB --gpu-memory-utilization {util} gives vLLM, and the GPU has {:.2} GiB left: lower --gpu-memory-utilization or add --enforce-eager",
                graphs as f64 / (1u64 << 30) as f64,
                budget as f64 / (1u64 << 30) as f64,
                total.saturating_sub(budget) as f64 / (1u64 << 30) as f64
            ));
        }
    }
    let paste_len = match (report.fits, report.max_model_len_fit) {
        (Some(false), Some(fit)) => fit,
        _ => max_len,
    };
    report.flags = flags(w, settings, util, paste_len);
    report
}

/// `vllm serve` flags for the settings, in vLLM's spelling.
fn flags(w: &Workload, settings: &VllmSettings, util: f64, max_len: u64) -> Vec<String> {
    let mut out = vec![
        format!("--gpu-memory-utilization {util}"),
        format!("--max-model-len {max_len}"),
    ];
    if w.tp > 1 {
        out.push(format!("--tensor-parallel-size {}", w.tp));
    }
    out.push(format!(
        "--dtype {}",
        match w.dtype {
            crate::model::Dtype::Fp32 => "float32",
            crate::model::Dtype::Fp16 => "float16",
            crate::model::Dtype::Bf16 => "bfloat16",
        }
    ));
    if let Some(q) = w.quant {
        if q == crate::estimate::Quant::Fp8 {
            out.push("--quantization fp8".into());
        }
    }
    if settings.kv_fp8 {
        out.push("--kv-cache-dtype fp8".into());
    }
    if let Some(n) = settings.max_num_seqs {
        out.push(format!("--max-num-seqs {n}"));
    }
    if let Some(n) = settings.max_num_batched_tokens {
        out.push(format!("--max-num-batched-tokens {n}"));
    }
    if settings.enforce_eager {
        out.push("--enforce-eager".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::WorkloadRequest;
    use crate::model::catalog;

    /// H100 80GB as torch sees it in vLLM's logs: "total_memory 79.19 GiB".
    const H100_TOTAL: u64 = 85_029_158_912;

    fn run(model: &str, settings: VllmSettings) -> EngineReport {
        let s = catalog::shape(model).unwrap();
        let w = Workload::resolve(&WorkloadRequest::default(), &s).unwrap();
        plan(&s, &w, &settings, Some(H100_TOTAL), "h100-80gb")
    }

    #[test]
    fn kv_tokens_are_whole_blocks_over_all_layers() {
        let r = run(
            "Llama-3.1-8B",
            VllmSettings {
                gpu_memory_utilization: Some(0.95),
                max_model_len: Some(8192),
                ..VllmSettings::default()
            },
        );
        let tokens = r.kv_cache_tokens.unwrap();
        assert_eq!(tokens % BLOCK_TOKENS, 0);
        // 131072 B per token (32 layers x 8 heads x 128 x 2 x 2 B).
        assert!(tokens * 131_072 <= r.kv_cache_bytes.unwrap());
        assert_eq!(r.fits, Some(true));
        let c = r.max_concurrency.unwrap();
        assert!((c - tokens as f64 / 8192.0).abs() < 0.01, "{c}");
    }

    #[test]
    fn an_impossible_length_is_refused_with_the_length_that_fits() {
        let r = run(
            "Llama-3.1-8B",
            VllmSettings {
                gpu_memory_utilization: Some(0.25),
                ..VllmSettings::default()
            },
        );
        assert_eq!(r.fits, Some(false), "{r:?}");
        let fit = r.max_model_len_fit.unwrap();
        assert!(fit < 131_072);
        assert!(r.flags.contains(&format!("--max-model-len {fit}")));
        assert!(r.gpu_memory_utilization_needed.unwrap() > 0.25);
    }

    #[test]
    fn hybrid_models_are_grouped_as_vllm_groups_them() {
        // Gemma 3 27B: 10 global and 52 sliding layers: groups of 10, one
        // global and six sliding, so tokens count 70 layer slots, not 62.
        let s = catalog::shape("gemma-3-27b-it").unwrap();
        assert_eq!(kv_groups(&s), (10, 7));
        assert_eq!(kv_groups(&catalog::shape("Llama-3.1-8B").unwrap()), (32, 1));
        // Gemma 2: 21 and 21.
        assert_eq!(
            kv_groups(&catalog::shape("gemma-2-9b-it").unwrap()),
            (21, 2)
        );
    }

    #[test]
    fn the_rotary_table_spans_the_models_positions() {
        let l31 = catalog::shape("Llama-3.1-8B").unwrap();
        assert_eq!(rope_cache_bytes(&l31, 2), 131_072 * 128 * 2);
        let scout = catalog::shape("Llama-4-Scout-17B-16E-Instruct").unwrap();
        assert_eq!(rope_cache_bytes(&scout, 2), 10_485_760 * 128 * 2);
        assert_eq!(rope_cache_bytes(&catalog::shape("gpt2").unwrap(), 2), 0);
    }

    #[test]
    fn capture_sizes_follow_vllms_list() {
        let sizes = cudagraph_capture_sizes(1024, 8192);
        assert_eq!(sizes.len(), 51);
        assert_eq!(sizes[..4], [1, 2, 4, 8]);
        assert_eq!(*sizes.last().unwrap(), 512);
        // 16 sequences: up to 32.
        assert_eq!(cudagraph_capture_sizes(16, 8192), [1, 2, 4, 8, 16, 24, 32]);
        // Never above the batched tokens.
        assert_eq!(*cudagraph_capture_sizes(1024, 100).last().unwrap(), 96);
    }

    #[test]
    fn graph_memory_grows_with_layers_and_shrinks_with_eager_mode() {
        // Llama-3.1-8B on one H100: vLLM 0.19 logs "took 0.91 GiB".
        let r = run("Llama-3.1-8B", VllmSettings::default());
        let g = r.cuda_graph_bytes.unwrap() as f64 / (1u64 << 30) as f64;
        assert!((g - 0.91).abs() < 0.05, "{g}");
        let big = run("Llama-3.1-70B", VllmSettings::default());
        assert!(big.cuda_graph_bytes > r.cuda_graph_bytes);
        let eager = run(
            "Llama-3.1-8B",
            VllmSettings {
                enforce_eager: true,
                ..VllmSettings::default()
            },
        );
        assert_eq!(eager.cuda_graph_bytes, Some(0));
    }

    #[test]
    fn the_backend_follows_vllms_choice() {
        let shape = |m: &str| catalog::shape(m).unwrap();
        let w = |s: &ModelShape| Workload::resolve(&WorkloadRequest::default(), s).unwrap();
        // Gemma 3's multimodal checkpoints are prefix LMs: Triton.
        let g3 = shape("gemma-3-4b-it");
        assert!(g3.mm_prefix_lm);
        assert_eq!(attention_backend(&g3, &w(&g3)), AttentionBackend::Triton);
        // The text-only Gemma 3 1B (`gemma3_text`) is not.
        let g1 = shape("google/gemma-3-1b-it");
        assert!(!g1.mm_prefix_lm);
        assert_eq!(attention_backend(&g1, &w(&g1)), AttentionBackend::FlashAttn);
        // Gemma 7B's heads of 256 are within FlashAttention's range.
        let g7 = shape("google/gemma-7b");
        assert!(!g7.mm_prefix_lm);
        assert_eq!(attention_backend(&g7, &w(&g7)), AttentionBackend::FlashAttn);
        // fp32 is not a FlashAttention dtype.
        let l = shape("Llama-3.1-8B");
        let fp32 = Workload::resolve(
            &WorkloadRequest {
                dtype: Some(crate::model::Dtype::Fp32),
                ..WorkloadRequest::default()
            },
            &l,
        )
        .unwrap();
        assert_eq!(attention_backend(&l, &fp32), AttentionBackend::Triton);
    }

    #[test]
    fn the_pool_holds_flash_attentions_split_buffers_and_the_mlp() {
        // Llama-3.1-8B at 512 tokens: 32 splits x 512 x 32 heads x 128 x
        // 4 B = 256 MiB (vLLM's profile logs a 260 MiB first full capture),
        // plus gate/up and activation, 512 x 3 x 14336 x 2 B.
        let l = catalog::shape("Llama-3.1-8B").unwrap();
        let w = Workload::resolve(&WorkloadRequest::default(), &l).unwrap();
        assert_eq!(
            graph_pool_bytes(&l, &w, 512),
            (256 << 20) + 512 * 3 * 14336 * 2
        );
        // DeepSeek-V2-Lite (MLA): 16 heads of the 512-wide latent.
        let ds = catalog::shape("deepseek-ai/DeepSeek-V2-Lite-Chat").unwrap();
        let wd = Workload::resolve(&WorkloadRequest::default(), &ds).unwrap();
        let m = ds.moe.unwrap();
        let mlp = 512
            * (m.experts_per_token * (3 * m.expert_intermediate_size + ds.hidden_size)
                + 3 * m.shared_intermediate_size)
            * 2;
        assert_eq!(graph_pool_bytes(&ds, &wd, 512), (512 << 20) + mlp);
        // With TP 2 both halve.
        let w2 = Workload { tp: 2, ..w.clone() };
        assert_eq!(
            graph_pool_bytes(&l, &w2, 512),
            (128 << 20) + 512 * 3 * 7168 * 2
        );
    }

    #[test]
    fn graphs_that_do_not_fit_above_the_budget_are_refused() {
        let r = run(
            "Llama-3.1-8B",
            VllmSettings {
                gpu_memory_utilization: Some(1.0),
                max_model_len: Some(8192),
                ..VllmSettings::default()
            },
        );
        assert_eq!(r.fits, Some(false));
        assert!(r.refusal.unwrap().contains("--enforce-eager"));
    }

    #[test]
    fn fp8_cache_holds_twice_the_tokens() {
        let a = run("Llama-3.1-8B", VllmSettings::default());
        let b = run(
            "Llama-3.1-8B",
            VllmSettings {
                kv_fp8: true,
                ..VllmSettings::default()
            },
        );
        let (ta, tb) = (a.kv_cache_tokens.unwrap(), b.kv_cache_tokens.unwrap());
        assert!(tb >= 2 * ta - BLOCK_TOKENS && tb <= 2 * ta + BLOCK_TOKENS);
    }
}
