//! The KV cache of generation: keys and values for every layer, KV head and
//! cached token: 2 · layers · kv_heads · head_dim · tokens · batch · bytes.
//! Grouped-query and multi-query attention shrink it through kv_heads; a
//! sliding window caps the tokens kept.

use super::workload::Workload;
use crate::model::{ModelKind, ModelShape};

pub fn kv_cache_bytes(s: &ModelShape, w: &Workload) -> u64 {
    if w.train || !matches!(s.kind, ModelKind::Decoder | ModelKind::EncoderDecoder) {
        return 0;
    }
    let tokens = match s.sliding_window {
        Some(window) => w.seq.min(window),
        None => w.seq,
    };
    // Quantized weights still cache in 16 bits; fp32 models cache in fp32.
    let e = w.dtype.bytes();
    2u64.saturating_mul(s.layers)
        .saturating_mul(s.kv_heads * s.head_dim)
        .saturating_mul(tokens)
        .saturating_mul(w.batch)
        .saturating_mul(e)
}
