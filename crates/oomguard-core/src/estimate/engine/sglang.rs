//! SGLang's start-up accounting (`python/sglang/srt/model_executor/
//! model_runner_kv_cache_mixin.py` `profile_max_num_token`): after the
//! weights load, the KV pool takes what is free minus `(1 -
//! mem_fraction_static)` of the memory that was free before loading
//! (`pre_model_load_memory`, read after the CUDA context and distributed
//! init), which stays for activations and CUDA graphs; `max_total_num_tokens`
//! is the pool over the bytes of one token in every layer. The default
//! `--mem-fraction-static` is `server_args.py` `_handle_gpu_memory_settings`:
//! the GPU's capacity less a reserve for prefill activations, CUDA graphs
//! and the parallel group, over the capacity.

use super::vllm::{activation_peak, kv_bytes_per_token_layer, rope_cache_bytes};
use super::{EngineName, EngineReport};
use crate::estimate::weights::weights_bytes;
use crate::estimate::workload::Workload;
use crate::model::ModelShape;

/// The settings SGLang is started with; `None` is SGLang's default.
#[derive(Debug, Clone, Default)]
pub struct SglangSettings {
    /// `--mem-fraction-static` (default from the GPU's memory and the TP
    /// degree, [`default_fraction`]).
    pub mem_fraction_static: Option<f64>,
    /// `--context-length` (default: the model's maximum).
    pub context_length: Option<u64>,
}

/// What SGLang's process holds before it loads the weights (CUDA context,
/// cuBLAS and NCCL state, the distributed group): the gap between the GPU's
/// capacity and the "Load weight begin. avail mem" SGLang prints, measured
/// at 0.84 GiB on an H100 80GB (TP 1, docs.sglang.ai quick start, January
/// 2025), 0.86 GiB on 4 x L4 (TP 4, of which "Init torch distributed ends.
/// mem usage=0.13 GB") and 0.91 GiB on 4 x RTX 4090 (TP 4).
pub const PRE_LOAD_BYTES: u64 = 870 << 20;

/// SGLang's defaults that follow the GPU's memory (`server_args.py`
/// `_handle_gpu_memory_settings`, v0.5): the chunked-prefill size and the
/// largest CUDA-graph batch, by capacity in MiB and TP degree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryDefaults {
    /// `--chunked-prefill-size`.
    pub chunked_prefill_size: u64,
    /// `--cuda-graph-max-bs`.
    pub cuda_graph_max_bs: u64,
}

/// [`MemoryDefaults`] for a GPU of `total_bytes` (`None`: SGLang's fallback
/// when it cannot read the capacity, 4096 and 160).
pub fn memory_defaults(total_bytes: Option<u64>, tp: u64) -> MemoryDefaults {
    let small_tp = tp < 4;
    let (chunked_prefill_size, cuda_graph_max_bs) = match total_bytes.map(|b| b >> 20) {
        None => (4096, 160),
        // T4, RTX 4080.
        Some(mib) if mib < 20 * 1024 => (2048, 8),
        // A10, RTX 4090, RTX 5090.
        Some(mib) if mib < 35 * 1024 => (2048, if small_tp { 24 } else { 80 }),
        // A100 40GB, L40.
        Some(mib) if mib < 60 * 1024 => (4096, if small_tp { 32 } else { 160 }),
        // H100, A100 80GB, H20, H200.
        Some(mib) if mib < 160 * 1024 => (8192, if small_tp { 256 } else { 512 }),
        // B200, MI300.
        Some(_) => (16384, 512),
    };
    MemoryDefaults {
        chunked_prefill_size,
        cuda_graph_max_bs,
    }
}

/// SGLang's default `--mem-fraction-static` (`server_args.py`
/// `_handle_gpu_memory_settings`): reserve, in MiB, 512 for the attention
/// backend's metadata, 1.5 per token of a prefill chunk for activations, 2
/// per CUDA-graph batch and 1024 per 8 GPUs of the parallel group, at least
/// 10 GiB on GPUs over 60 GiB; the fraction is the rest of the capacity,
/// rounded to 3 decimals. Without a capacity SGLang takes 0.88.
pub fn default_fraction(total_bytes: Option<u64>, tp: u64) -> f64 {
    let Some(total) = total_bytes else {
        return 0.88;
    };
    let tp = tp.max(1);
    let d = memory_defaults(Some(total), tp);
    let gpu_mib = total as f64 / (1u64 << 20) as f64;
    let mut reserved = 512.0
        + d.chunked_prefill_size.max(2048) as f64 * 1.5
        + d.cuda_graph_max_bs as f64 * 2.0
        + tp as f64 / 8.0 * 1024.0;
    if gpu_mib > 60.0 * 1024.0 {
        reserved = reserved.max(10.0 * 1024.0);
    }
    (((gpu_mib - reserved) / gpu_mib) * 1000.0).round() / 1000.0
}

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
    let fraction = st
        .mem_fraction_static
        .unwrap_or_else(|| default_fraction(total_bytes, tp));
    let chunk = memory_defaults(total_bytes, tp).chunked_prefill_size;
    // SGLang's rotary layers keep the same cos/sin table as vLLM's.
    let weights = weights_bytes(s, w)
        .saturating_add(s.vision_params.saturating_mul(w.dtype.bytes()))
        .div_ceil(tp)
        .saturating_add(rope_cache_bytes(s, w.dtype.bytes()));
    let peak = activation_peak(s, w, chunk, RUNNING);
    let per_token = kv_bytes_per_token_layer(s, tp, w.dtype.bytes())
        .saturating_mul(s.layers)
        .max(1);
    let len = st
        .context_length
        .or(s.max_position_embeddings)
        .unwrap_or(w.seq);
    let mut report = EngineReport::new(EngineName::Sglang, weights, peak, PRE_LOAD_BYTES, len);
    if let Some(total) = total_bytes {
        let free_before_load = total.saturating_sub(PRE_LOAD_BYTES);
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
        let free = total - PRE_LOAD_BYTES;
        let fraction = default_fraction(Some(total), 1);
        let want = free - r.weights_bytes - (free as f64 * (1.0 - fraction)) as u64;
        assert!(kv.abs_diff(want) < 1 << 20);
        assert_eq!(r.kv_cache_tokens, Some(kv / 131_072));
        assert_eq!(r.fits, Some(true));
    }

    #[test]
    fn the_default_fraction_reserves_for_prefill_graphs_and_the_group() {
        // 80 GiB (81920 MiB): 512 + 8192 x 1.5 + 256 x 2 + 128 = 13440 MiB.
        assert_eq!(default_fraction(Some(80 << 30), 1), 0.836);
        // H100 80GB (81559 MiB) at TP 8: 512 + 12288 + 1024 + 1024 = 14848.
        assert_eq!(default_fraction(Some(85_520_809_984), 8), 0.818);
        // RTX 4090 (24564 MiB): 512 + 3072 + 48 + 128 = 3760, no 10 GiB floor.
        assert_eq!(default_fraction(Some(25_757_220_864), 1), 0.847);
        // T4 (15360 MiB): 512 + 3072 + 16 + 128 = 3728.
        assert_eq!(default_fraction(Some(16_106_127_360), 1), 0.757);
        assert_eq!(default_fraction(None, 1), 0.88);
    }

    #[test]
    fn the_chunk_and_graph_batch_follow_the_capacity() {
        let t4 = memory_defaults(Some(16_106_127_360), 1);
        assert_eq!((t4.chunked_prefill_size, t4.cuda_graph_max_bs), (2048, 8));
        let l4_tp4 = memory_defaults(Some(24_152_899_584), 4);
        assert_eq!(
            (l4_tp4.chunked_prefill_size, l4_tp4.cuda_graph_max_bs),
            (2048, 80)
        );
        let h200 = memory_defaults(Some(150_754_820_096), 8);
        assert_eq!(
            (h200.chunked_prefill_size, h200.cuda_graph_max_bs),
            (8192, 512)
        );
        let b200 = memory_defaults(Some(192 << 30), 8);
        assert_eq!(b200.chunked_prefill_size, 16384);
    }
}
