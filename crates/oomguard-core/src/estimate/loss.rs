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
//!
//! A plain sum of the logits (`--loss sum`, the `logits.sum().backward()`
//! of Hugging Face's SDPA benchmark scripts) keeps the logits at their
//! dtype, and its backward materializes their gradient at that dtype: the
//! gradient of a sum is a stride-0 expansion of one number, and the output
//! projection's matmul backward needs it contiguous (`reshape` of an
//! expanded tensor copies). 2·e bytes per logit.

use super::activations;
use super::compiled_loss;
use super::framework::{self, Framework};
use super::workload::{Loss, Workload};
use crate::model::{ModelKind, ModelShape};

/// Bytes of the logits, the loss's buffers and the masked-LM transform at
/// the training peak, for the workload's loss.
pub fn training_logits_bytes(s: &ModelShape, w: &Workload) -> u64 {
    let logits = match w.loss {
        Loss::Sum => summed_logits_bytes(s, w).saturating_add(previous_cache_bytes(s, w)),
        _ if w.compile => compiled_loss::compiled_logits_bytes(s, w),
        Loss::Chunked { chunks } => chunked_logits_bytes(s, w, chunks),
        Loss::Full if w.framework == Framework::Litgpt => framework::litgpt_logits_bytes(s, w),
        Loss::Full => activations::training_logits(s, w),
    };
    logits.saturating_add(activations::mlm_transform_training_bytes(s, w))
}

/// Bytes of the logits and their gradient under a plain sum: 2·e per logit.
pub fn summed_logits_bytes(s: &ModelShape, w: &Workload) -> u64 {
    if !activations::has_vocabulary_logits(s, w) {
        return 0;
    }
    w.tokens()
        .saturating_mul(s.vocab_size)
        .saturating_mul(2 * w.activation_bytes())
}

/// Bytes the previous step's KV cache holds at the end of the next forward
/// under `--loss sum`, the transformers SDPA pull requests' training
/// micro-benchmark (fxmarty's script: `outputs = model(**inputs); loss =
/// outputs.logits.sum(); loss.backward()` in a loop). `outputs` is rebound
/// only when the next forward returns, so the previous step's output stays
/// referenced through that forward: its logits (the second half of
/// `summed_logits_bytes`'s 2 + 2) and, for a decoder, the cache it returns,
/// since these configs default to `use_cache=True` and the models build the
/// cache in training too. What the cache pins per layer and token differs by
/// family: GPT-2's key and value are views into the fused `c_attn` output
/// (`split`, then `_split_heads`), which stays whole (q + k + v widths);
/// GPT-NeoX's value is a view into the fused `query_key_value` output and
/// its key the rotated copy (q + k + v + k); other decoders cache their own
/// key and value tensors (k + v). 0 for encoders and other losses.
pub fn previous_cache_bytes(s: &ModelShape, w: &Workload) -> u64 {
    if !w.train || w.loss != Loss::Sum || s.kind != ModelKind::Decoder {
        return 0;
    }
    let q = s.heads * s.head_dim;
    let kv = s.kv_heads * s.head_dim;
    let width = match s.architecture.as_str() {
        "gpt2" => q + 2 * kv,
        "gpt_neox" => q + 3 * kv,
        _ => 2 * kv,
    };
    w.tokens()
        .saturating_mul(s.layers)
        .saturating_mul(width)
        .saturating_mul(w.activation_bytes())
}

/// Bytes of logits and loss buffers at the peak, for `chunks` chunks.
pub fn chunked_logits_bytes(s: &ModelShape, w: &Workload, chunks: u64) -> u64 {
    if !activations::has_vocabulary_logits(s, w) {
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
    use crate::estimate::{Head, WorkloadRequest};
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
    fn a_plain_sum_keeps_the_logits_and_their_gradient_at_their_dtype() {
        let s = catalog::shape("gpt2-large").unwrap();
        let req = WorkloadRequest {
            train: true,
            batch: Some(4),
            seq: Some(512),
            dtype: Some(Dtype::Fp16),
            loss: Some(Loss::Sum),
            ..WorkloadRequest::default()
        };
        let w = Workload::resolve(&req, &s).unwrap();
        let logits = 4 * 512 * s.vocab_size;
        assert_eq!(summed_logits_bytes(&s, &w), logits * 2 * 2);
        // With the previous step's cache the micro-benchmark holds.
        assert_eq!(
            training_logits_bytes(&s, &w),
            logits * 2 * 2 + previous_cache_bytes(&s, &w)
        );
        // The cross-entropy of the same logits holds the fp32 copy, the
        // log-softmax and the fp32 gradient besides: 2 + 4 + 4 + 4 bytes.
        let full = Workload {
            loss: Loss::Full,
            ..w.clone()
        };
        assert_eq!(training_logits_bytes(&s, &full), logits * 14);
    }

    #[test]
    fn a_summed_loss_holds_the_previous_steps_cache() {
        // The micro-benchmark's previous `outputs` keep the decoder's cache:
        // GPT-2's views into its fused c_attn output (3 widths), GPT-NeoX's
        // fused output plus the rotated key (4), OPT's own k and v (2); an
        // encoder returns none, and a real loss keeps nothing of the kind.
        let cache = |model: &str, loss| {
            let s = catalog::shape(model).unwrap();
            let req = WorkloadRequest {
                train: true,
                batch: Some(2),
                seq: Some(1024),
                dtype: Some(Dtype::Fp16),
                loss: Some(loss),
                ..WorkloadRequest::default()
            };
            previous_cache_bytes(&s, &Workload::resolve(&req, &s).unwrap())
        };
        let tokens = 2 * 1024u64;
        assert_eq!(cache("gpt2-large", Loss::Sum), tokens * 36 * 3 * 1280 * 2);
        assert_eq!(
            cache("EleutherAI/pythia-410m-deduped", Loss::Sum),
            tokens * 24 * 4 * 1024 * 2
        );
        assert_eq!(
            cache("facebook/opt-350m", Loss::Sum),
            tokens * 24 * 2 * 1024 * 2
        );
        assert_eq!(cache("bert-base-uncased", Loss::Sum), 0);
        assert_eq!(cache("facebook/opt-350m", Loss::Full), 0);
    }

    #[test]
    fn a_masked_lm_head_has_vocabulary_logits_and_its_transform() {
        let s = catalog::shape("bert-base-uncased").unwrap();
        let with = |head, loss| {
            let req = WorkloadRequest {
                train: true,
                batch: Some(16),
                seq: Some(512),
                dtype: Some(Dtype::Fp16),
                loss: Some(loss),
                head: Some(head),
                ..WorkloadRequest::default()
            };
            training_logits_bytes(&s, &Workload::resolve(&req, &s).unwrap())
        };
        let tokens = 16 * 512u64;
        let transform = tokens * 768 * 3 * 2;
        assert_eq!(with(Head::Mlm, Loss::Sum), tokens * 30522 * 4 + transform);
        // BertForMaskedLM's CrossEntropyLoss takes the fp16 logits as they
        // are: logits, log-softmax and gradient at 2 bytes.
        assert_eq!(with(Head::Mlm, Loss::Full), tokens * 30522 * 6 + transform);
        assert_eq!(with(Head::Classification, Loss::Full), 0);
        assert_eq!(with(Head::None, Loss::Sum), 0);
    }

    #[test]
    fn encoders_have_no_vocabulary_logits() {
        let s = catalog::shape("bert-base-uncased").unwrap();
        let w = workload(&s, Some(Loss::Chunked { chunks: 8 }));
        assert_eq!(chunked_logits_bytes(&s, &w, 8), 0);
    }
}
