//! The logits' bytes at the training peak when the loss runs under
//! `torch.compile` (`--compile`): torchtune compiles the upcast and
//! cross-entropy of each chunk (`compile_loss` compiles
//! `CEWithChunkedOutputLoss.compute_cross_entropy`, or the whole loss
//! otherwise; torchtune/training/_compile.py) and torchtitan compiles its
//! loss when `training.compile` is set (torchtitan/components/loss.py
//! `build_cross_entropy_loss`, since 2025-02).
//!
//! Compiled, `F.cross_entropy(logits.float(), labels)` keeps for backward
//! only the half-precision logits it was given and two fp32 values per row
//! (the row's maximum and log-sum-exp): the partitioner recomputes the
//! upcast and the softmax in backward instead of saving them, and backward
//! writes the logits' gradient at their own dtype in the same fused
//! kernel. Measured with CPU torch's saved-tensor hooks on
//! `torch.compile(lambda x, y: F.cross_entropy(x.float(), y))`: 2 bytes
//! per bf16 logit saved compiled, 8 (the fp32 log-probabilities, saved by
//! both log-softmax and the NLL) in eager mode.

use super::workload::{Loss, Workload};
use crate::model::{ModelKind, ModelShape};

/// Bytes of logits and loss buffers at the peak under a compiled loss:
/// every logit at the model's activation dtype (saved by the compiled
/// cross-entropy), plus its gradient at the same dtype for the whole
/// tensor, or for one chunk at a time under the chunked loss.
pub fn compiled_logits_bytes(s: &ModelShape, w: &Workload) -> u64 {
    if matches!(s.kind, ModelKind::Encoder | ModelKind::Vision) {
        return 0;
    }
    let e = w.activation_bytes();
    let logits = w.tokens().saturating_mul(s.vocab_size);
    let gradient = match w.loss {
        Loss::Full | Loss::Sum => logits,
        Loss::Chunked { chunks } => logits.div_ceil(chunks.max(1)),
    };
    logits.saturating_add(gradient).saturating_mul(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::{activations, loss, WorkloadRequest};
    use crate::model::{catalog, Dtype};

    /// Llama 3.1 8B, 2 x 2048 bf16 tokens, `loss` compiled.
    fn compiled(loss: Option<Loss>) -> (ModelShape, Workload) {
        let s = catalog::shape("meta-llama/Llama-3.1-8B").unwrap();
        let mut req = WorkloadRequest {
            train: true,
            compile: true,
            loss,
            ..WorkloadRequest::default()
        };
        (req.batch, req.seq, req.dtype) = (Some(2), Some(2048), Some(Dtype::Bf16));
        let w = Workload::resolve(&req, &s).unwrap();
        (s, w)
    }

    #[test]
    fn compiled_cross_entropy_keeps_the_half_logits_and_their_gradient() {
        let logits = 2 * 2048 * 128_256u64;
        let (s, whole) = compiled(None);
        assert_eq!(compiled_logits_bytes(&s, &whole), logits * 4);
        assert!(compiled_logits_bytes(&s, &whole) < activations::training_logits(&s, &whole));
        let (_, chunked) = compiled(Some(Loss::Chunked { chunks: 8 }));
        assert_eq!(
            compiled_logits_bytes(&s, &chunked),
            (logits + logits / 8) * 2
        );
        assert!(compiled_logits_bytes(&s, &chunked) < loss::chunked_logits_bytes(&s, &chunked, 8));
    }
}
