//! llama.cpp's buffers at load (`llama_model_load` and `llama_context`
//! logs): the model buffer split between the GPU (`CUDA0 model buffer
//! size`: the `-ngl` offloaded blocks, and the output head once every block
//! is offloaded) and the host (`CPU model buffer size`: the token
//! embeddings, which llama.cpp always keeps on the CPU, and the blocks not
//! offloaded); the KV buffer (`n_ctx` cells of K and V for every layer, at
//! `--cache-type-k/v`, on the device of its layer); and the compute buffer
//! the graph allocator reserves for one `--ubatch-size` step.
//!
//! The compute buffer is the largest tensor of a step plus the small ones
//! alive beside it: the attention scores (ubatch x n_ctx per head, fp32)
//! without flash attention, else the larger of the logits (ubatch x vocab,
//! fp32) and the MLP's intermediate; plus six ubatch x n_embd fp32 tensors
//! (input, residual, norm, attention output). The llama.cpp CI logs
//! (pythia-2.8b on a V100, n_ctx 2048, ubatch 512) print 162 MiB, this
//! gives 158 MiB.

use super::ggml::{self, GgmlType, GgufQuant, TensorRole};
use super::{EngineName, EngineReport};
use crate::estimate::allocator::CUDA_CONTEXT_BYTES;
use crate::model::{GgufLayout, ModelShape};
use std::fmt;

/// The settings llama.cpp is started with; `None` is its default.
#[derive(Debug, Clone, Default)]
pub struct LlamaCppSettings {
    /// The weights' preset, for a model that is not a GGUF file.
    pub quant: Option<GgufQuant>,
    /// Layers to offload to the GPU (`-ngl`); `None` for all of them, as recent builds do.
    pub n_gpu_layers: Option<u64>,
    /// Context size in tokens (`--ctx-size`); `None` for the caller's default length.
    pub ctx_size: Option<u64>,
    /// Type of the K cache (`--cache-type-k`); `None` for f16.
    pub cache_type_k: Option<GgmlType>,
    /// Type of the V cache (`--cache-type-v`); `None` for f16.
    pub cache_type_v: Option<GgmlType>,
    /// Tokens per physical batch (`--ubatch-size`); `None` for llama.cpp's 512.
    pub ubatch_size: Option<u64>,
    /// Flash attention is on (`-fa`).
    pub flash_attn: bool,
}

/// llama.cpp's default `--ubatch-size` (`common/common.h`, `n_ubatch`).
pub const DEFAULT_UBATCH: u64 = 512;

/// Where the weights sit, from a GGUF file's tensors or, for a model given
/// by its config, from the preset's type rules applied tensor by tensor.
pub fn layout(s: &ModelShape, quant: Option<GgufQuant>) -> Option<GgufLayout> {
    if let Some(l) = &s.gguf_layout {
        return Some(l.clone());
    }
    let q = quant?;
    let n = s.layers;
    let h = s.hidden_size;
    let qd = s.heads * s.head_dim;
    let kvd = s.kv_heads * s.head_dim;
    let t =
        |role: TensorRole, layer: u64, elements: u64| q.tensor_type(role, layer, n).bytes(elements);
    let layer_bytes = (0..n)
        .map(|i| {
            let qkv = if fused_qkv(&s.architecture) {
                t(TensorRole::AttnQkv, i, h * (qd + 2 * kvd))
            } else {
                t(TensorRole::Other, i, h * qd)
                    + t(TensorRole::Other, i, h * kvd)
                    + t(TensorRole::AttnV, i, h * kvd)
            };
            let attn = qkv + t(TensorRole::Other, i, qd * h);
            let mlp = match &s.moe {
                Some(m) if i >= m.dense_layers => {
                    let width = m.expert_intermediate_size;
                    let experts = m.experts;
                    let shared = m.shared_intermediate_size;
                    t(TensorRole::Other, i, 2 * experts * h * width)
                        + t(TensorRole::FfnDown, i, experts * width * h)
                        + t(TensorRole::Other, i, 2 * h * shared)
                        + t(TensorRole::FfnDown, i, shared * h)
                        + ggml::F32.bytes(experts * h)
                }
                _ => {
                    let i_size = s.intermediate_size;
                    let ups = if s.gated_mlp { 2 } else { 1 };
                    t(TensorRole::Other, i, ups * h * i_size)
                        + t(TensorRole::FfnDown, i, i_size * h)
                }
            };
            // Norms stay f32.
            attn + mlp + ggml::F32.bytes(2 * h)
        })
        .collect();
    let embd = t(TensorRole::TokenEmbd, 0, s.vocab_size * h);
    Some(GgufLayout {
        token_embd_bytes: embd,
        output_bytes: if s.tie_word_embeddings {
            0
        } else {
            t(TensorRole::Output, 0, s.vocab_size * h)
        },
        layer_bytes,
        other_bytes: ggml::F32.bytes(h),
    })
}

/// Architectures whose GGUF keeps the query, key and value projections in
/// one `attn_qkv` tensor per layer, as llama.cpp's converter writes them
/// (`convert_hf_to_gguf.py` maps GPT-NeoX's `query_key_value`, Falcon's and
/// BLOOM's `query_key_value`, GPT-2's and StarCoder's `c_attn`, and Phi-3's
/// `qkv_proj` to `attn_qkv`); `llama-quantize` types that tensor by its own
/// rule, and an `attn_v` rule never applies to it.
fn fused_qkv(model_type: &str) -> bool {
    matches!(
        model_type,
        "gpt_neox" | "falcon" | "bloom" | "gpt2" | "gpt_bigcode" | "phi3" | "mpt" | "qwen"
    )
}

/// KV bytes of `ctx` cells for the layers `layers` (ids), K and V at their
/// types; sliding-window layers keep their window plus one ubatch
/// (llama.cpp's SWA cache without `--swa-full`).
fn kv_bytes(
    s: &ModelShape,
    ctx: u64,
    ubatch: u64,
    k: GgmlType,
    v: GgmlType,
    offloaded: u64,
) -> (u64, u64) {
    let kvd = s.kv_heads * s.head_dim;
    let per_cell = k.bytes(kvd) + v.bytes(kvd);
    let (local_layers, window) = match s.local_attention {
        Some(l) => (l.layers, l.window),
        None => (0, ctx),
    };
    let swa_cells = (window + ubatch).min(ctx);
    // Local layers are spread over the model; count them in proportion.
    let gpu_layers = offloaded.min(s.layers);
    let cpu_layers = s.layers - gpu_layers;
    let share = |layers: u64| -> u64 {
        if s.layers == 0 {
            return 0;
        }
        let local = local_layers * layers / s.layers;
        let global = layers - local;
        (global * ctx + local * swa_cells) * per_cell
    };
    (share(gpu_layers), share(cpu_layers))
}

/// The compute buffer for one ubatch (see the module doc).
pub fn compute_bytes(s: &ModelShape, ctx: u64, ubatch: u64, flash_attn: bool) -> u64 {
    let f32b = 4;
    let scores = if flash_attn {
        0
    } else {
        ubatch * ctx.max(ubatch) * s.heads * f32b
    };
    let logits = ubatch * s.vocab_size * f32b;
    let width = match &s.moe {
        Some(m) => m.expert_intermediate_size * m.experts_per_token,
        None => s.intermediate_size,
    };
    let mlp = 2 * ubatch * width * f32b;
    scores.max(logits).max(mlp) + 6 * ubatch * s.hidden_size * f32b
}

/// One configuration's buffers.
struct Load {
    gpu_weights: u64,
    host_weights: u64,
    gpu_kv: u64,
    compute: u64,
}

fn load(s: &ModelShape, l: &GgufLayout, ngl: u64, ctx: u64, st: &LlamaCppSettings) -> Load {
    let ubatch = st.ubatch_size.unwrap_or(DEFAULT_UBATCH).min(ctx.max(1));
    let n = l.layer_bytes.len() as u64;
    let offloaded = ngl.min(n);
    let first_gpu = (n - offloaded) as usize;
    let gpu_layers: u64 = l.layer_bytes[first_gpu..].iter().sum();
    let cpu_layers: u64 = l.layer_bytes[..first_gpu].iter().sum();
    // Tied models have no output tensor: llama.cpp duplicates the token
    // embeddings for the head.
    let output = if l.output_bytes == 0 {
        l.token_embd_bytes
    } else {
        l.output_bytes
    };
    let output_on_gpu = ngl > n;
    let k = st.cache_type_k.unwrap_or(ggml::F16);
    let v = st.cache_type_v.unwrap_or(ggml::F16);
    let (gpu_kv, _cpu_kv) = kv_bytes(s, ctx, ubatch, k, v, offloaded);
    Load {
        gpu_weights: gpu_layers
            + if output_on_gpu {
                output + l.other_bytes
            } else {
                0
            },
        host_weights: l.token_embd_bytes
            + cpu_layers
            + if output_on_gpu {
                0
            } else {
                output + l.other_bytes
            },
        gpu_kv,
        compute: if offloaded > 0 {
            compute_bytes(s, ctx, ubatch, st.flash_attn)
        } else {
            0
        },
    }
}

impl Load {
    fn gpu_total(&self) -> u64 {
        self.gpu_weights + self.gpu_kv + self.compute + CUDA_CONTEXT_BYTES
    }
}

/// A model llama.cpp cannot be planned for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LlamaCppError {
    /// The shape does not come from a GGUF file and the settings name no
    /// quantization ([`LlamaCppSettings::quant`]), so the weights' ggml
    /// type is unknown. [`GgufQuant::names`] lists the ones accepted.
    WeightTypeUnknown,
}

impl fmt::Display for LlamaCppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LlamaCppError::WeightTypeUnknown => write!(
                f,
                "llama.cpp needs the weights' type: read a .gguf file or set a quantization, one of {}",
                GgufQuant::names().join(", ")
            ),
        }
    }
}

impl std::error::Error for LlamaCppError {}

/// llama.cpp loading `s` with `st` on a GPU of `capacity` bytes (already
/// less the safety margin), or without a GPU (`None`). `default_ctx` is
/// the context when `--ctx-size` is not given.
pub fn plan(
    s: &ModelShape,
    st: &LlamaCppSettings,
    capacity: Option<u64>,
    default_ctx: u64,
) -> Result<EngineReport, LlamaCppError> {
    let l = layout(s, st.quant).ok_or(LlamaCppError::WeightTypeUnknown)?;
    let n = l.layer_bytes.len() as u64;
    let ctx = st.ctx_size.unwrap_or(default_ctx).max(1);
    // llama.cpp's default -ngl offloads everything in recent builds
    // (`-ngl 999` in the guides): all blocks and the head.
    let ngl = st.n_gpu_layers.unwrap_or(n + 1);
    let here = load(s, &l, ngl, ctx, st);
    let mut report = EngineReport {
        kv_cache_bytes: Some(here.gpu_kv),
        kv_cache_tokens: Some(ctx),
        host_bytes: Some(here.host_weights),
        ..EngineReport::new(
            EngineName::LlamaCpp,
            here.gpu_weights,
            here.compute,
            CUDA_CONTEXT_BYTES,
            ctx,
        )
    };
    if let Some(cap) = capacity {
        report.fits = Some(here.gpu_total() <= cap);
        report.n_gpu_layers_fit = (0..=n + 1)
            .rev()
            .find(|&g| load(s, &l, g, ctx, st).gpu_total() <= cap);
        let limit = s.max_position_embeddings.unwrap_or(1 << 20).max(1);
        let all = n + 1;
        let ok = |c: u64| load(s, &l, all, c, st).gpu_total() <= cap;
        report.ctx_size_fit = crate::estimate::fit::largest(limit, ok);
        if report.fits == Some(false) {
            report.refusal = Some(format!(
                "-ngl {ngl} with --ctx-size {ctx} needs {:.2} GiB of GPU memory",
                here.gpu_total() as f64 / (1u64 << 30) as f64
            ));
        }
    }
    let paste_ngl = match (report.fits, report.n_gpu_layers_fit) {
        (Some(false), Some(fit)) => fit,
        _ => ngl.min(n + 1),
    };
    let mut flags = vec![
        format!("--n-gpu-layers {paste_ngl}"),
        format!("--ctx-size {ctx}"),
    ];
    if let Some(u) = st.ubatch_size {
        flags.push(format!("--ubatch-size {u}"));
    }
    if let Some(k) = st
        .cache_type_k
        .and_then(|t| crate::model::gguf::ggml_type_name(t.0))
    {
        flags.push(format!("--cache-type-k {k}"));
    }
    if let Some(v) = st
        .cache_type_v
        .and_then(|t| crate::model::gguf::ggml_type_name(t.0))
    {
        flags.push(format!("--cache-type-v {v}"));
    }
    if st.flash_attn {
        flags.push("--flash-attn on".into());
    }
    report.flags = flags;
    Ok(report)
}

/// Host memory for the part that is not offloaded at `ngl`.
pub fn host_bytes_at(s: &ModelShape, st: &LlamaCppSettings, ngl: u64, ctx: u64) -> Option<u64> {
    let l = layout(s, st.quant)?;
    Some(load(s, &l, ngl, ctx, st).host_weights)
}

#[cfg(test)]
mod tests {
    #[test]
    fn weight_type_error_names_no_flag() {
        let e = super::LlamaCppError::WeightTypeUnknown;
        let text = e.to_string();
        assert!(!text.contains("--"), "{text}");
        assert!(text.contains("Q4_K_M") || text.contains("q4_k_m"), "{text}");
        assert!(std::error::Error::source(&e).is_none());
    }

    use super::*;
    use crate::model::shape::from_config;
    use serde_json::json;

    /// pythia-2.8b as llama.cpp's CI loads it (V100, n_ctx 2048, f16 KV).
    fn pythia() -> ModelShape {
        from_config(
            "pythia-2.8b",
            &json!({"model_type": "gpt_neox", "hidden_size": 2560, "num_hidden_layers": 32,
                "num_attention_heads": 32, "intermediate_size": 10240, "vocab_size": 50304,
                "max_position_embeddings": 2048, "tie_word_embeddings": false}),
            "c",
        )
        .unwrap()
    }

    #[test]
    fn kv_and_compute_match_the_ci_log() {
        let st = LlamaCppSettings {
            quant: GgufQuant::parse("f16"),
            ctx_size: Some(2048),
            ..LlamaCppSettings::default()
        };
        let r = plan(&pythia(), &st, Some(16 << 30), 2048).unwrap();
        // 'KV self size = 640.00 MiB'
        assert_eq!(r.kv_cache_bytes, Some(640 << 20));
        // 'CUDA0 compute buffer size = 162.00 MiB'
        let c = r.activation_peak_bytes as f64 / (1 << 20) as f64;
        assert!((c - 162.0).abs() / 162.0 < 0.05, "{c}");
        // 'CPU buffer size = 245.62 MiB': the token embeddings.
        assert_eq!(r.host_bytes, Some(50304 * 2560 * 2));
    }

    #[test]
    fn a_fused_qkv_takes_the_preset_s_own_type() {
        // llama-quantize's Q4_K_M of pythia-2.8b, as llama.cpp's CI log
        // counts it: q4_K 81 tensors, q5_K 32 (every attn_qkv), q6_K 17
        // (the output and the ffn_down of the 16 use_more_bits layers).
        let l = layout(&pythia(), GgufQuant::parse("q4_k_m")).unwrap();
        let (h, ff, vocab) = (2560u64, 10240u64, 50304u64);
        let (q4, q5, q6) = (ggml::Q4_K, ggml::Q5_K, ggml::Q6_K);
        let bumped = (0..32).filter(|&i| ggml::use_more_bits(i, 32)).count() as u64;
        assert_eq!(bumped, 16);
        let blocks = 32 * (q5.bytes(h * 3 * h) + q4.bytes(h * h) + q4.bytes(h * ff))
            + bumped * q6.bytes(ff * h)
            + (32 - bumped) * q4.bytes(ff * h)
            + 32 * ggml::F32.bytes(2 * h);
        assert_eq!(l.layer_bytes.iter().sum::<u64>(), blocks);
        assert_eq!(l.output_bytes, q6.bytes(vocab * h));
        assert_eq!(l.token_embd_bytes, q4.bytes(vocab * h));
        // Llama keeps q, k and v apart: its attn_v follows use_more_bits.
        let llama = from_config(
            "l",
            &json!({"model_type": "llama", "hidden_size": 2048, "num_hidden_layers": 16,
                "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 8192,
                "vocab_size": 128256, "max_position_embeddings": 8192}),
            "c",
        )
        .unwrap();
        let m = layout(&llama, GgufQuant::parse("q4_k_m")).unwrap();
        let s = layout(&llama, GgufQuant::parse("q4_k_s")).unwrap();
        assert!(m.layer_bytes[0] > s.layer_bytes[0]);
        assert_eq!(m.layer_bytes[5], s.layer_bytes[5]);
    }

    #[test]
    fn fewer_layers_fit_a_small_gpu_and_the_rest_goes_to_the_host() {
        let st = LlamaCppSettings {
            quant: GgufQuant::parse("f16"),
            ..LlamaCppSettings::default()
        };
        let r = plan(&pythia(), &st, Some(3 << 30), 2048).unwrap();
        assert_eq!(r.fits, Some(false));
        let ngl = r.n_gpu_layers_fit.unwrap();
        assert!(ngl > 0 && ngl < 32, "{ngl}");
        assert!(r.flags.contains(&format!("--n-gpu-layers {ngl}")));
        let host = host_bytes_at(&pythia(), &st, ngl, 2048).unwrap();
        assert!(host > 1 << 30);
    }
}
