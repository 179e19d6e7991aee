//! The logits' bytes at the training peak when the loss is computed in
//! chunks along the sequence (torchtune's `CEWithChunkedOutputLoss`): the
//! model applies its output projection to each chunk of the hidden states
//! and returns a list of half-precision logits, and the loss upcasts one
//! chunk at a time to fp32 before its cross-entropy ("saves memory by only
//! upcasting one chunk at a time", torchtune/modules/loss/
//! ce_chunked_output_loss.py). The whole-tensor loss is in `activations`.
//!
//! What stays alive, per logit: every chunk's logits at the model's
//! activation dtype (the recipe holds the list until the loss is computed,
//! then `del logits` before backward), and every chunk's fp32 log-softmax,
//! which `F.cross_entropy` saves for its backward. One chunk at a time adds
//! its fp32 upcast in forward, or in backward its fp32 gradient and the
//! cast of that gradient back to the logits' dtype. Without chunks the same
//! loss also holds the whole fp32 copy and the whole fp32 gradient.

use super::workload::Workload;
use crate::model::{ModelKind, ModelShape};

/// Bytes of logits and loss buffers at the peak, for `chunks` chunks.
pub fn chunked_logits_bytes(s: &ModelShape, w: &Workload, chunks: u64) -> u64 {
    if matches!(s.kind, ModelKind::Encoder | ModelKind::Vision) {
        return 0;
    }
    let e = w.activation_bytes();
    let logits = w.tokens().saturating_mul(s.vocab_size);
    // Half logits of every chunk and the fp32 log-softmax of every chunk.
    let whole = logits.saturating_mul(e + 4);
    // One chunk's fp32 upcast (forward) or fp32 gradient plus its cast
    // (backward): the larger. An fp32 model has no upcast copy.
    let upcast = if e == 4 { 0 } else { 4 };
    let per_chunk = upcast.max(4 + e);
    whole.saturating_add(logits.div_ceil(chunks.max(1)).saturating_mul(per_chunk))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::{activations, Loss, WorkloadRequest};
    use crate::model::{catalog, Dtype};

    fn workload(s: &ModelShape, loss: Option<Loss>) -> Workload {
        let req = WorkloadRequest {
            train: true,
            batch: Some(2),
            seq: Some(2048),
            dtype: Some(Dtype::Bf16),
            loss,
            ..WorkloadRequest::default()
        };
        Workload::resolve(&req, s).unwrap()
    }

    #[test]
    fn chunks_hold_half_logits_and_log_softmax_plus_one_chunk() {
        let s = catalog::shape("meta-llama/Llama-3.1-8B").unwrap();
        let w = workload(&s, Some(Loss::Chunked { chunks: 8 }));
        let logits = 2 * 2048 * 128_256u64;
        // bf16: 2 + 4 bytes for every logit, (4 + 2) / 8 for one chunk.
        assert_eq!(
            chunked_logits_bytes(&s, &w, 8),
            logits * 6 + logits.div_ceil(8) * 6
        );
        // One chunk is the whole-tensor loss without the fp32 copy it keeps.
        let whole = activations::training_logits(&s, &workload(&s, None));
        assert!(chunked_logits_bytes(&s, &w, 1) < whole);
        assert!(chunked_logits_bytes(&s, &w, 8) < chunked_logits_bytes(&s, &w, 1));
    }

    #[test]
    fn encoders_have_no_vocabulary_logits() {
        let s = catalog::shape("bert-base-uncased").unwrap();
        let w = workload(&s, Some(Loss::Chunked { chunks: 8 }));
        assert_eq!(chunked_logits_bytes(&s, &w, 8), 0);
    }
}
