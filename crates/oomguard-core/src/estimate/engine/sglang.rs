//! SGLang's start-up accounting (`python/sglang/srt/model_executor/
//! model_runner.py` `profile_max_num_token`): after the weights load, the
//! KV pool takes what is free minus `(1 - mem_fraction_static)` of the
//! memory that was free before loading (`min_per_gpu_memory`, read after
//! the CUDA context and distributed init: "Get memory before model
//! loading"), which stays for activations and CUDA graphs; "max_total_num_tokens" is
//! the pool over the bytes of one token in every layer. The default
//! `--mem-fraction-static` falls with the tensor-parallel degree
//! (`server_args.py`, v0.4: 0.88 on one GPU, 0.87 for TP 2, 0.85 for TP 4,
//! 0.81 for TP 8).

use super::vllm::{activation_peak, kv_bytes_per_token_layer, rope_cache_bytes};
use super::{EngineName, EngineReport};
use crate::estimate::allocator::CUDA_CONTEXT_BYTES;
use crate::estimate::weights::weights_bytes;
use crate::estimate::workload::Workload;
use crate::model::ModelShape;

/// The settings SGLang is started with; `None` is SGLang's default.
#[derive(Debug, Clone, Default)]
pub struct SglangSettings {
    /// `--mem-fraction-static` (default by TP degree, [`default_fraction`]).
    pub mem_fraction_static: Option<f64>,
    /// `--context-length` (default: the model's maximum).
    pub context_length: Option<u64>,
}

/// SGLang's default `--mem-fraction-static` for a TP degree.
pub fn default_fraction(tp: u64) -> f64 {
    match tp {
        0..=1 => 0.88,
        2..=3 => 0.87,
        4..=7 => 0.85,
        8..=15 => 0.81,
        _ => 0.79,
    }
}

/// SGLang's default chunked-prefill size (`server_args.py`): 8192 tokens.
const CHUNKED_PREFILL: u64 = 8192;
/// Running requests SGLang samples at once by default (`max_running_requests` capped by the pool; 256 taken).
const RUNNING: u64 = 256;

/// SGLang's start-up on one GPU of `total_bytes`, or without a GPU (`None`:
/// no pool figures).
pub fn plan(
    s: &ModelShape,
    w: &Workload,
    st: &SglangSettings,
    total_bytes: Option<u64>,
) -> EngineReport {
    let tp = w.tp.max(1);
    let fraction = st.mem_fraction_static.unwrap_or(default_fraction(tp));
    // SGLang's rotary layers keep the same cos/sin table as vLLM's.
    let weights = weights_bytes(s, w)
        .saturating_add(s.vision_params.saturating_mul(w.dtype.bytes()))
        .div_ceil(tp)
        .saturating_add(rope_cache_bytes(s, w.dtype.bytes()));
    let peak = activation_peak(s, w, CHUNKED_PREFILL, RUNNING);
    let per_token = kv_bytes_per_token_layer(s, tp, w.dtype.bytes())
        .saturating_mul(s.layers)
        .max(1);
    let len = st
        .context_length
        .or(s.max_position_embeddings)
        .unwrap_or(w.seq);
    let mut report = EngineReport::new(EngineName::Sglang, weights, peak, CUDA_CONTEXT_BYTES, len);
    if let Some(total) = total_bytes {
        let free_before_load = total.saturating_sub(CUDA_CONTEXT_BYTES);
        let free_after_load = free_before_load.saturating_sub(weights);
        let reserve = (free_before_load as f64 * (1.0 - fraction)) as u64;
        let kv = free_after_load.saturating_sub(reserve);
        let tokens = kv / per_token;
        report.kv_cache_bytes = Some(kv);
        report.kv_cache_tokens = Some(tokens);
        report.max_concurrency = Some(tokens as f64 / len.max(1) as f64);
        report.max_model_len_fit = Some(tokens.min(s.max_position_embeddings.unwrap_or(tokens)));
        // The static fraction that leaves a pool of one request:
        // free_before x f - weights >= len x per_token.
        let needed =
            (weights + len.saturating_mul(per_token)) as f64 / free_before_load.max(1) as f64;
        report.gpu_memory_utilization_needed = Some((needed * 100.0).ceil() / 100.0);
        let fits = tokens >= len && peak <= reserve;
        report.fits = Some(fits);
        if tokens == 0 {
            report.refusal = Some(format!("no room for the KV pool at --mem-fraction-static {fraction}: the weights take {:.2} GiB", weights as f64 / (1u64 << 30) as f64));
        } else if tokens < len {
            report.refusal = Some(format!("the KV pool holds {tokens} tokens, fewer than one request of --context-length {len}"));
        } else if peak > reserve {
            report.refusal = Some(format!("activations of a prefill chunk need {:.2} GiB, more than the {:.2} GiB --mem-fraction-static {fraction} leaves", peak as f64 / (1u64 << 30) as f64, reserve as f64 / (1u64 << 30) as f64));
        }
    }
    let paste_len = match (report.fits, report.max_model_len_fit) {
        (Some(false), Some(fit)) if fit > 0 && fit < len => fit,
        _ => len,
    };
    let mut flags = vec![
        format!("--mem-fraction-static {fraction}"),
        format!("--context-length {paste_len}"),
    ];
    if tp > 1 {
        flags.push(format!("--tp-size {tp}"));
    }
    report.flags = flags;
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::WorkloadRequest;
    use crate::model::catalog;

    #[test]
    fn the_pool_is_what_the_static_fraction_leaves_after_the_weights() {
        let s = catalog::shape("Llama-3.1-8B").unwrap();
        let w = Workload::resolve(&WorkloadRequest::default(), &s).unwrap();
        let total = 80u64 << 30;
        let r = plan(
            &s,
            &w,
            &SglangSettings {
                context_length: Some(8192),
                ..Default::default()
            },
            Some(total),
        );
        let kv = r.kv_cache_bytes.unwrap();
        let free = total - CUDA_CONTEXT_BYTES;
        let want = free - r.weights_bytes - (free as f64 * 0.12) as u64;
        assert!(kv.abs_diff(want) < 1 << 20);
        assert_eq!(r.kv_cache_tokens, Some(kv / 131_072));
        assert_eq!(r.fits, Some(true));
    }
}
