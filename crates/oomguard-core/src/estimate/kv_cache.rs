//! The KV cache of generation: keys and values for every layer, KV head and
//! cached token: 2 · kv_heads · head_dim · bytes per layer and token.
//! Grouped-query and multi-query attention shrink it through kv_heads; layers
//! with local attention (sliding window, chunks) keep at most their window
//! of tokens per sequence, global layers the whole sequence, so a hybrid
//! model's cache is counted layer type by layer type.

use super::workload::Workload;
use crate::model::{ModelKind, ModelShape};

/// Cached tokens summed over the decoder layers, for one sequence of `seq`
/// tokens: global layers keep all of them, local layers their window.
pub fn layer_tokens(s: &ModelShape, seq: u64) -> u64 {
    match s.local_attention {
        Some(local) => {
            let global = s.layers.saturating_sub(local.layers);
            global
                .saturating_mul(seq)
                .saturating_add(local.layers.saturating_mul(seq.min(local.window)))
        }
        None => s.layers.saturating_mul(seq),
    }
}

/// Bytes of keys and values of one token in one layer, at `elem` bytes.
pub fn bytes_per_token_per_layer(s: &ModelShape, elem: u64) -> u64 {
    2 * s.kv_heads * s.head_dim * elem
}

pub fn kv_cache_bytes(s: &ModelShape, w: &Workload) -> u64 {
    if w.train || !matches!(s.kind, ModelKind::Decoder | ModelKind::EncoderDecoder) {
        return 0;
    }
    // Quantized weights still cache in 16 bits; fp32 models cache in fp32.
    layer_tokens(s, w.seq)
        .saturating_mul(w.batch)
        .saturating_mul(bytes_per_token_per_layer(s, w.dtype.bytes()))
}

/// Bytes a Hugging Face `DynamicCache` copies while it grows by one decoded
/// token: `update` (transformers 4.4x-4.5x, `cache_utils.py`) rebinds each
/// layer's entry to `torch.cat([cached, new], dim=-2)`, so the grown key (then
/// value) tensor of one layer is allocated while the old one is still held.
/// At most one such tensor exists at a time: the longest layer's, batch x
/// KV heads x head_dim x cached tokens. 0 when nothing is generated.
pub fn decode_copy_bytes(s: &ModelShape, w: &Workload) -> u64 {
    if w.train
        || w.new_tokens == 0
        || !matches!(s.kind, ModelKind::Decoder | ModelKind::EncoderDecoder)
    {
        return 0;
    }
    let longest = match s.local_attention {
        Some(local) if local.layers >= s.layers => w.seq.min(local.window),
        _ => w.seq,
    };
    w.batch
        .saturating_mul(longest)
        .saturating_mul(bytes_per_token_per_layer(s, w.dtype.bytes()) / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::WorkloadRequest;
    use crate::model::catalog;

    fn kv_gib(model: &str, seq: u64) -> f64 {
        let s = catalog::shape(model).unwrap();
        let w = Workload::resolve(
            &WorkloadRequest {
                seq: Some(seq),
                ..WorkloadRequest::default()
            },
            &s,
        )
        .unwrap();
        kv_cache_bytes(&s, &w) as f64 / (1u64 << 30) as f64
    }

    #[test]
    fn a_dynamic_cache_copies_one_layers_keys_per_decoded_token() {
        // Qwen2.5-7B: 4 KV heads of 128 in bf16, 32768 cached tokens: one
        // layer's keys are 32768 x 4 x 128 x 2 B = 32 MiB; nothing is copied
        // when the whole sequence is the prompt.
        let s = catalog::shape("Qwen2.5-7B").unwrap();
        let copy = |new_tokens| {
            let w = Workload::resolve(
                &WorkloadRequest {
                    seq: Some(32768),
                    new_tokens,
                    ..WorkloadRequest::default()
                },
                &s,
            )
            .unwrap();
            decode_copy_bytes(&s, &w)
        };
        assert_eq!(copy(Some(2048)), 32 << 20);
        assert_eq!(copy(None), 0);
    }

    #[test]
    fn gemma3_caches_its_global_layers_whole_and_local_ones_to_the_window() {
        // 48 layers, 8 global (every 6th), 40 with a 1024-token window;
        // 8 KV heads of 256 in bf16: 8 KiB per token and layer.
        // 32k: 8·32768·8 KiB + 40·1024·8 KiB = 2 GiB + 320 MiB.
        assert!((kv_gib("gemma-3-12b-it", 32768) - 2.3125).abs() < 1e-9);
        assert!((kv_gib("gemma-3-12b-it", 8192) - (0.5 + 0.3125)).abs() < 1e-9);
        assert!(kv_gib("gemma-3-12b-it", 4096) < kv_gib("gemma-3-12b-it", 8192));
    }

    #[test]
    fn gemma2_alternates_and_qwen25_without_use_sliding_window_is_global() {
        let g = catalog::shape("gemma-2-9b").unwrap();
        let local = g.local_attention.unwrap();
        assert_eq!((local.layers, local.window), (21, 4096));
        assert!(catalog::shape("Qwen2.5-7B")
            .unwrap()
            .local_attention
            .is_none());
        let m = catalog::shape("Mistral-7B-v0.1").unwrap();
        assert_eq!(m.local_attention.unwrap().layers, 32);
    }
}
