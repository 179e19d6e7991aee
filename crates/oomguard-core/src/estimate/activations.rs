//! Activation memory: what training keeps for the backward pass, and what
//! inference holds at its peak inside one layer, per architecture, attention
//! kernel and checkpointing choice; and the logits over the vocabulary.
//!
//! Training per layer and token follows Korthikanti et al. 2022 ("Reducing
//! Activation Recomputation in Large Transformer Models", section 4.1):
//! 34·h bytes + 5·a·s bytes for a GPT block in 16 bits with dropout, which
//! this module derives tensor by tensor so it holds for gated MLPs, grouped
//! KV heads, fp32, models without dropout and fused attention kernels (which
//! keep no a·s score matrix: FlashAttention, Dao et al. 2022).

use super::weights::kept_4bit_input_bytes_per_token_per_layer;
use super::workload::{Attention, Head, Workload};
use crate::model::{ModelKind, ModelShape};

/// The MLP width one token passes through: the dense intermediate size, or
/// for a mixture of experts its routed experts' widths plus the shared
/// expert's.
pub fn token_mlp_width(s: &ModelShape) -> u64 {
    match &s.moe {
        Some(m) => m.expert_intermediate_size * m.experts_per_token + m.shared_intermediate_size,
        None => s.intermediate_size,
    }
}

/// Bytes one block keeps for backward, per token.
///
/// Under autocast (AMP) matmul inputs are saved as half-precision copies,
/// but LayerNorm and softmax run in fp32 (PyTorch's autocast op lists), so
/// norm inputs and attention probabilities stay 4 bytes, and the eager
/// attention path saves the fp32 probabilities and their half cast.
pub fn training_bytes_per_token_per_layer(s: &ModelShape, w: &Workload) -> u64 {
    let e = w.activation_bytes();
    let fp32_ops = (if w.amp { 4 } else { e }).max(super::framework::residual_bytes(w));
    let h = s.hidden_size;
    let q = s.heads * s.head_dim;
    let kv = s.kv_heads * s.head_dim;
    let i = token_mlp_width(s);
    // Two norms' inputs; one where attention and MLP share a norm.
    let norms = if s.shared_block_norm { 1 } else { 2 };
    let mut bytes = norms * h * fp32_ops;
    // The q/k/v projection input, the output projection input, and q, k, v.
    let mut elems = h + q + (q + 2 * kv);
    // MLP input (under a shared norm, the q/k/v input already counted), and
    // inside it: gated keeps gate, activation, up and their product (4
    // widths); plain keeps the activation's input and output (2).
    let mlp_input = if s.shared_block_norm { 0 } else { h };
    elems += mlp_input
        + if s.gated_mlp || s.moe.is_some() {
            4 * i
        } else {
            plain_mlp_saved_widths(s) * i
        };
    bytes += elems * e;
    if s.dropout {
        // One-byte masks after attention and after the MLP.
        bytes += 2 * h;
    }
    if w.attention == Attention::Eager {
        // The softmax output (a row of seq scores per head) is saved for
        // its backward, and the matmul with V saves what it multiplies:
        // with an fp32 softmax (autocast, or the family's upcast in half
        // precision) the fp32 probabilities and their half cast; with
        // attention dropout, its one-byte mask too.
        let upcast = w.amp || (e < 4 && s.softmax_in_fp32);
        let per_head = match (s.attention_dropout, upcast) {
            (true, true) => 4 + 1 + 2,
            (true, false) => 2 * e + 1,
            (false, true) => 4 + 2,
            (false, false) => e,
        };
        bytes += s.heads * w.seq * per_head;
    }
    bytes
}

/// Tensors of the intermediate width a plain (non-gated) MLP keeps per
/// token for backward, by the activation its family's Hugging Face code
/// applies (the config's `activation_function` / `hidden_act` default).
/// A native GELU keeps its input, and the next linear its output (2).
/// `gelu_new` (`NewGELUActivation`, the default of GPT-2, GPT-J, GPT-Neo
/// and CodeGen) is the tanh formula written out in Python, so autograd
/// keeps x, tanh(..), 1 + tanh(..) and 0.5·x besides the output (5;
/// measured with torch's saved-tensor hooks: 4 input-sized tensors against
/// 1 for `gelu` and `gelu_pytorch_tanh`). Phi-1/1.5/2 also default to
/// `gelu_new` in transformers but run the native tanh GELU in LitGPT, where
/// their published peaks come from; they stay at 2. ReLU (OPT) keeps only
/// its output, the very tensor the next linear keeps (1).
fn plain_mlp_saved_widths(s: &ModelShape) -> u64 {
    if s.python_tanh_gelu {
        5
    } else if s.architecture == "opt" {
        1
    } else {
        2
    }
}

/// Tensors of the intermediate width alive at once in a plain MLP at
/// inference: the first linear's output and the activation's (2); the tanh
/// GELU written out in Python (`gelu_new`) holds x, 0.5·x, 1 + tanh(..) and
/// the product when its last multiply runs (4). Measured on ALBERT (CPU,
/// torch 2.15, transformers 5.24, `torch.profiler` memory events under
/// `inference_mode`): a layer's peak is 4.5 intermediate widths with
/// `gelu_new` against 2.5 with `gelu`.
fn plain_mlp_inference_widths(s: &ModelShape) -> u64 {
    if s.python_tanh_gelu {
        4
    } else {
        2
    }
}

/// Layers that run per token: decoder layers, plus the encoder's.
fn layers(s: &ModelShape) -> u64 {
    s.layers + s.encoder_layers.unwrap_or(0)
}

/// Training activations for the whole batch (without logits).
///
/// Old bitsandbytes' 4-bit linears also keep their inputs while the graph
/// lives (see `kept_4bit_input_bytes_per_token_per_layer`); under
/// checkpointing the forward runs without a graph, so only the layer being
/// recomputed keeps them. The same holds for the dropped copies of the
/// adapters' inputs under LitGPT (`framework::lora_dropout_bytes_per_token_per_layer`).
pub fn training_activations(s: &ModelShape, w: &Workload) -> u64 {
    let tokens = w.tokens();
    let per_layer = training_bytes_per_token_per_layer(s, w);
    let kept_4bit = kept_4bit_input_bytes_per_token_per_layer(s, w)
        + super::framework::lora_dropout_bytes_per_token_per_layer(s, w);
    // The residual stream's dtype (fp32 under PEFT's 4-bit preparation, see
    // `framework::residual_bytes`).
    let r = super::framework::residual_bytes(w);
    // Embedding output and final norm.
    let edges = 2 * s.hidden_size * r;
    let per_token = if w.grad_checkpointing {
        // Each layer keeps its input; one layer is recomputed at a time.
        layers(s) * s.hidden_size * r + per_layer + kept_4bit + edges
    } else {
        layers(s) * (per_layer + kept_4bit) + edges
    };
    tokens.saturating_mul(per_token)
}

/// Whether the model ends in a tensor over the vocabulary for every token:
/// a decoder's language-model head, or an encoder's masked-LM head
/// (`--head mlm`). Classification heads (encoders, ViT) give a few numbers
/// per sequence or token, which this estimate neglects.
pub fn has_vocabulary_logits(s: &ModelShape, w: &Workload) -> bool {
    match s.kind {
        ModelKind::Decoder | ModelKind::EncoderDecoder => true,
        ModelKind::Encoder => w.head == Some(Head::Mlm),
        ModelKind::Vision => false,
    }
}

/// Bytes the masked-LM head's transform keeps for backward, for the whole
/// batch: BERT's `BertPredictionHeadTransform` (dense, activation,
/// LayerNorm) before the decoder keeps the activation's input, the
/// LayerNorm's input (fp32 under autocast) and the decoder's input. 0 for
/// every other head.
pub fn mlm_transform_training_bytes(s: &ModelShape, w: &Workload) -> u64 {
    if s.kind != ModelKind::Encoder || w.head != Some(Head::Mlm) {
        return 0;
    }
    let e = w.activation_bytes();
    let norm = if w.amp { 4 } else { e };
    w.tokens()
        .saturating_mul(s.hidden_size)
        .saturating_mul(2 * e + norm)
}

/// Logits bytes at the training peak of a cross-entropy loss over the whole
/// logits tensor (`--loss full`).
///
/// Decoders: the head's output, its fp32 copy for the loss (transformers'
/// `ForCausalLMLoss` upcasts logits before cross-entropy), the saved
/// log-softmax, and the gradient flowing back: (e + 4 + 4 + 4) bytes per
/// vocabulary entry per token.
///
/// A masked-LM head: `BertForMaskedLM` hands its logits to
/// `CrossEntropyLoss` as they are, so the log-softmax and the gradient are
/// at the logits' dtype (3·e bytes); under autocast `cross_entropy` is on
/// PyTorch's fp32 list and the loss costs what a decoder's does.
pub fn training_logits(s: &ModelShape, w: &Workload) -> u64 {
    if !has_vocabulary_logits(s, w) {
        return 0;
    }
    let e = w.activation_bytes();
    let per_logit = if s.kind == ModelKind::Encoder && !w.amp {
        3 * e
    } else {
        let upcast = if e == 4 { 0 } else { 4 };
        e + upcast + 4 + 4
    };
    w.tokens()
        .saturating_mul(s.vocab_size)
        .saturating_mul(per_logit)
}

/// Hidden-size tensors per token that a Hugging Face decoder's forward keeps
/// alive through each layer besides the layer's own: the model's loop
/// (`LlamaModel.forward` and the families written after it, transformers
/// 4.4x-4.5x: `layer_outputs = decoder_layer(hidden_states, ...)`, then
/// `hidden_states = layer_outputs[0]`) still references the layer's input
/// while the layer makes its post-attention residual, and `inputs_embeds`,
/// the embedding output, stays bound until the forward returns. So a layer
/// past the first holds its input, the embedding output, the post-attention
/// residual and the MLP's normed input next to the MLP's intermediates. The
/// Qwen2.5 speed benchmark (QwenLM/Qwen2.5 speed_benchmark.rst, transformers
/// 4.46, FlashAttention 2, one `max_memory_allocated` over `generate`) puts
/// 37-39 KB per prompt token above weights and KV cache for
/// Qwen2.5-0.5B (h 896, MLP 4864) and 147-151 KB for Qwen2.5-7B (h 3584,
/// MLP 18944): (4h + 3i) x 2 B gives 36.4 and 142.3 KB, (2h + 3i) x 2 B
/// 32.8 and 128.0 KB. Encoders (BERT's layer keeps its attention output
/// instead of a normed copy) are left as they were.
fn held_by_decoder_forward(s: &ModelShape) -> u64 {
    match s.kind {
        ModelKind::Decoder => 2 * s.hidden_size,
        _ => 0,
    }
}

/// Inference under Hugging Face `generate`, as (activations, KV cache) at
/// the peak: the larger of the prefill and the last decode step.
///
/// The prefill runs the prompt (`--seq` minus `--new-tokens`) in one pass:
/// the prompt's KV cache and one layer's transient over every prompt token.
/// Each decode step runs one token per sequence over the cache of all but
/// the newest tokens: the whole KV cache at the end, the copy a
/// `DynamicCache` makes as it grows (`kv_cache::decode_copy_bytes`), the last
/// position's logits, and with eager attention one row of scores per head
/// over the cache. With a long prompt the prefill's intermediates outweigh
/// what the generated tokens add to the cache; with a short one the decode
/// ends higher. Without `--new-tokens` the whole sequence is the prompt.
pub fn inference_peak(s: &ModelShape, w: &Workload) -> (u64, u64) {
    if w.generates_without_cache() {
        return (uncached_generate_activations(s, w), 0);
    }
    let whole_cache = super::kv_cache::kv_cache_bytes(s, w);
    if w.new_tokens == 0 || !matches!(s.kind, ModelKind::Decoder | ModelKind::EncoderDecoder) {
        return (inference_activations(s, w), whole_cache);
    }
    let mut prompt = w.clone();
    prompt.seq = w.prompt_tokens();
    let prefill = (
        inference_activations(s, &prompt),
        super::kv_cache::kv_cache_bytes(s, &prompt),
    );
    let mut step = w.clone();
    step.seq = 1;
    let mut decode_acts =
        inference_activations(s, &step).saturating_add(super::kv_cache::decode_copy_bytes(s, w));
    if w.attention == Attention::Eager {
        // One query's scores and their softmax over the cache, per head.
        decode_acts = decode_acts.saturating_add(
            w.batch
                .saturating_mul(2 * s.heads)
                .saturating_mul(w.seq)
                .saturating_mul(w.activation_bytes()),
        );
    }
    let decode = (decode_acts, whole_cache);
    if prefill.0.saturating_add(prefill.1) >= decode.0.saturating_add(decode.1) {
        prefill
    } else {
        decode
    }
}

/// `generate` on an encoder with a language-model head (BERT's
/// `BertLMHeadModel` and its kin): without `is_decoder` the model returns no
/// KV cache, so every step runs the whole sequence again and its head
/// returns logits for every position. The peak is the last step, a forward
/// over all but the newest token; before transformers 4.42 the previous
/// step's logits (one token shorter) are still alive next to it.
fn uncached_generate_activations(s: &ModelShape, w: &Workload) -> u64 {
    let mut last = w.clone();
    last.seq = w.seq.saturating_sub(1).max(1);
    let forward = inference_activations(s, &last);
    if !w.keeps_step_outputs() {
        return forward;
    }
    let previous = w
        .batch
        .saturating_mul(last.seq.saturating_sub(1))
        .saturating_mul(s.vocab_size)
        .saturating_mul(w.activation_bytes());
    forward.saturating_add(previous)
}

/// Inference: the largest transient inside one layer over the prompt
/// (prefill), plus the residual stream, plus the logits of the last token.
pub fn inference_activations(s: &ModelShape, w: &Workload) -> u64 {
    let e = w.activation_bytes();
    let tokens = w.tokens();
    let h = s.hidden_size;
    let i = match &s.moe {
        Some(m) => m.expert_intermediate_size.max(m.shared_intermediate_size),
        None => s.intermediate_size,
    };
    let mlp = if s.gated_mlp || s.moe.is_some() {
        3 * i
    } else {
        plain_mlp_inference_widths(s) * i
    };
    let attn = match w.attention {
        // Scores and their softmax, per head and key.
        Attention::Eager => 2 * s.heads * w.seq + 4 * h,
        _ => 4 * h,
    };
    // Residual stream, normed input, and the larger of the two sub-blocks.
    // A decoder's forward in transformers also holds two more hidden-size
    // tensors through every layer (see `held_by_decoder_forward`).
    let per_token = (2 * h + held_by_decoder_forward(s) + mlp.max(attn)) * e;
    let logits = if matches!(s.kind, ModelKind::Decoder | ModelKind::EncoderDecoder) {
        // Generation computes the last position's logits, upcast to fp32.
        w.batch.saturating_mul(s.vocab_size) * (e + 4)
    } else {
        0
    };
    // A masked-LM head returns logits for every token: after the last
    // layer, the encoder's output, the transform's output and the logits
    // are alive at once; the peak is the larger of that and a layer's.
    let per_token = if has_vocabulary_logits(s, w) && s.kind == ModelKind::Encoder {
        per_token.max((2 * h + s.vocab_size) * e)
    } else {
        per_token
    };
    tokens.saturating_mul(per_token).saturating_add(logits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::WorkloadRequest;
    use crate::model::{catalog, Dtype};

    /// BERT-base generating `new` tokens at the end of `seq` with its LM
    /// head in fp16, on a given transformers release.
    fn bert_generate(seq: u64, new: u64, version: Option<&str>) -> (Workload, ModelShape) {
        let s = catalog::shape("bert-base-uncased").unwrap();
        let req = WorkloadRequest {
            batch: Some(4),
            seq: Some(seq),
            dtype: Some(Dtype::Fp16),
            head: Some(Head::Mlm),
            new_tokens: Some(new),
            transformers_version: version.and_then(crate::estimate::Release::parse),
            ..WorkloadRequest::default()
        };
        (Workload::resolve(&req, &s).unwrap(), s)
    }

    #[test]
    fn an_encoder_generates_without_a_cache_up_to_its_last_step() {
        let (w, s) = bert_generate(356, 100, None);
        assert!(w.generates_without_cache());
        let (acts, kv) = inference_peak(&s, &w);
        assert_eq!(kv, 0, "an encoder returns no KV cache");
        // The last step is one forward over every token but the newest.
        let mut last = w.clone();
        last.new_tokens = 0;
        last.seq = 355;
        assert_eq!(acts, inference_activations(&s, &last));
        // A longer generation ends on a longer forward.
        let (longer, _) = bert_generate(456, 200, None);
        assert!(inference_peak(&s, &longer).0 > acts);
    }

    #[test]
    fn transformers_before_4_42_keeps_the_previous_steps_logits() {
        let (current, s) = bert_generate(356, 100, Some("4.42.0"));
        let (old, _) = bert_generate(356, 100, Some("4.38.2"));
        assert!(!current.keeps_step_outputs());
        assert!(old.keeps_step_outputs());
        let previous_logits = 4 * 354 * s.vocab_size * 2;
        assert_eq!(
            inference_peak(&s, &old).0 - inference_peak(&s, &current).0,
            previous_logits
        );
    }

    fn eager_minus_sdpa(model: &str, dtype: Dtype) -> u64 {
        let s = catalog::shape(model).unwrap();
        let per = |attention| {
            let req = WorkloadRequest {
                train: true,
                seq: Some(256),
                dtype: Some(dtype),
                attention: Some(attention),
                ..WorkloadRequest::default()
            };
            training_bytes_per_token_per_layer(&s, &Workload::resolve(&req, &s).unwrap())
        };
        (per(Attention::Eager) - per(Attention::Sdpa)) / (s.heads * 256)
    }

    #[test]
    fn a_masked_lm_head_returns_logits_for_every_token_at_inference() {
        let s = catalog::shape("bert-base-uncased").unwrap();
        let acts = |head| {
            let req = WorkloadRequest {
                batch: Some(4),
                seq: Some(256),
                dtype: Some(Dtype::Fp16),
                head: Some(head),
                ..WorkloadRequest::default()
            };
            inference_activations(&s, &Workload::resolve(&req, &s).unwrap())
        };
        // The head's phase (encoder output, transform output, logits)
        // outweighs a layer's transient: 4·256 tokens x (2·768 + 30522) x 2 B.
        assert_eq!(acts(Head::Mlm), 4 * 256 * (2 * 768 + 30522) * 2);
        assert!(acts(Head::Classification) < acts(Head::Mlm) / 4);
        assert_eq!(acts(Head::Classification), acts(Head::None));
    }

    #[test]
    fn a_decoder_prefill_holds_the_layer_input_and_the_embedding_output() {
        // Qwen2.5-0.5B (h 896, gated MLP 4864, vocab 151936) in bf16 with
        // FlashAttention: per token the layer's input and the embedding
        // output (held by the model's forward), the post-attention residual,
        // the normed input and the MLP's three intermediates; then the last
        // position's logits and their fp32 copy. No seq x seq term.
        let s = catalog::shape("Qwen2.5-0.5B").unwrap();
        let acts = |seq| {
            let req = WorkloadRequest {
                seq: Some(seq),
                dtype: Some(Dtype::Bf16),
                attention: Some(Attention::Flash),
                ..WorkloadRequest::default()
            };
            inference_activations(&s, &Workload::resolve(&req, &s).unwrap())
        };
        let logits = 151936 * (2 + 4);
        assert_eq!(acts(16384), 16384 * (4 * 896 + 3 * 4864) * 2 + logits);
        assert_eq!(acts(32768) - logits, 2 * (acts(16384) - logits));
        // An encoder's layer has no such extra: BERT keeps 2h + 2i.
        let bert = catalog::shape("bert-base-uncased").unwrap();
        assert_eq!(held_by_decoder_forward(&bert), 0);
        assert_eq!(held_by_decoder_forward(&s), 2 * 896);
    }

    #[test]
    fn generate_peaks_in_the_prefill_for_a_long_prompt_and_in_the_decode_for_a_short_one() {
        use crate::estimate::kv_cache::{decode_copy_bytes, kv_cache_bytes};
        let s = catalog::shape("Qwen2.5-0.5B").unwrap();
        let resolve = |seq, new_tokens| {
            let req = WorkloadRequest {
                seq: Some(seq),
                new_tokens,
                dtype: Some(Dtype::Bf16),
                attention: Some(Attention::Flash),
                ..WorkloadRequest::default()
            };
            Workload::resolve(&req, &s).unwrap()
        };
        // 30720 prompt tokens then 2048 generated: the prefill's MLP
        // intermediates over the prompt outweigh the 2048 tokens' cache.
        let w = resolve(32768, Some(2048));
        let prompt = resolve(30720, None);
        assert_eq!(
            inference_peak(&s, &w),
            (
                inference_activations(&s, &prompt),
                kv_cache_bytes(&s, &prompt)
            )
        );
        // 1 prompt token then 2048 generated: the last decode step, with the
        // whole cache and the DynamicCache's copy of one layer's keys.
        let w = resolve(2049, Some(2048));
        let (acts, kv) = inference_peak(&s, &w);
        assert_eq!(kv, kv_cache_bytes(&s, &w));
        assert!(acts >= decode_copy_bytes(&s, &w) && decode_copy_bytes(&s, &w) > 0);
        assert!(acts < inference_activations(&s, &resolve(2049, None)));
        // Without --new-tokens the whole sequence is one prefill, as before.
        let w = resolve(32768, None);
        assert_eq!(
            inference_peak(&s, &w),
            (inference_activations(&s, &w), kv_cache_bytes(&s, &w))
        );
    }

    #[test]
    fn plain_mlps_keep_what_their_activation_saves() {
        let widths = |m| plain_mlp_saved_widths(&catalog::shape(m).unwrap());
        // gelu_new written out in Python, ReLU, a native GELU.
        assert_eq!(widths("gpt2-large"), 5);
        assert_eq!(widths("facebook/opt-350m"), 1);
        assert_eq!(widths("EleutherAI/pythia-410m-deduped"), 2);
        // ALBERT's config class defaults to gelu_new.
        assert_eq!(widths("albert/albert-base-v1"), 5);
    }

    #[test]
    fn a_python_gelu_holds_four_intermediate_widths_at_inference() {
        let infer = |m| {
            let s = catalog::shape(m).unwrap();
            let req = WorkloadRequest {
                batch: Some(1),
                seq: Some(512),
                dtype: Some(Dtype::Fp16),
                ..WorkloadRequest::default()
            };
            inference_activations(&s, &Workload::resolve(&req, &s).unwrap())
        };
        // Same widths (768 / 3072); only the activation differs.
        let albert = infer("albert/albert-base-v1");
        let bert = infer("bert-base-uncased");
        assert_eq!(albert - bert, 512 * 2 * 3072 * 2);
    }

    #[test]
    fn a_shared_block_norm_saves_one_norm_input_and_one_block_input() {
        // Falcon-7B's parallel block norms once and feeds attention and MLP
        // the same tensor; the same shape with a norm per branch (Falcon-40B's
        // new architecture) keeps one more norm input (fp32 under autocast)
        // and one more MLP input (half precision).
        let mut s = catalog::shape("tiiuae/falcon-7b").unwrap();
        assert!(s.shared_block_norm);
        let per_token = |s: &ModelShape| {
            let req = WorkloadRequest {
                train: true,
                amp: true,
                ..WorkloadRequest::default()
            };
            training_bytes_per_token_per_layer(s, &Workload::resolve(&req, s).unwrap())
        };
        let shared = per_token(&s);
        s.shared_block_norm = false;
        assert_eq!(per_token(&s) - shared, 4544 * 4 + 4544 * 2);
    }

    #[test]
    fn old_bitsandbytes_inputs_stay_for_every_layer_unless_checkpointed() {
        use crate::estimate::{Lora, LoraTargets, Quant, Release};
        let s = catalog::shape("meta-llama/Llama-2-7b-hf").unwrap();
        let acts = |version: &str, grad_checkpointing| {
            let req = WorkloadRequest {
                train: true,
                seq: Some(512),
                dtype: Some(Dtype::Bf16),
                quant: Some(Quant::Nf4),
                lora: Some(Lora {
                    rank: 8,
                    targets: LoraTargets::Qv,
                }),
                grad_checkpointing,
                bitsandbytes_version: Release::parse(version),
                ..WorkloadRequest::default()
            };
            training_activations(&s, &Workload::resolve(&req, &s).unwrap())
        };
        let per_layer = 512 * (3 * 4096 + 11008) * 2;
        assert_eq!(
            acts("0.42.0", false) - acts("0.45.0", false),
            32 * per_layer
        );
        // Checkpointed layers run their forward without a graph; only the
        // layer being recomputed holds its inputs.
        assert_eq!(acts("0.42.0", true) - acts("0.45.0", true), per_layer);
    }

    #[test]
    fn eager_scores_follow_the_familys_softmax_precision() {
        // Llama in bf16: fp32 softmax output and its bf16 cast, no dropout.
        assert_eq!(eager_minus_sdpa("Llama-3.2-1B", Dtype::Bf16), 6);
        // BERT in fp16: softmax in fp16, then attention dropout (mask + output).
        assert_eq!(
            eager_minus_sdpa("bert-base-uncased", Dtype::Fp16),
            2 * 2 + 1
        );
        // fp32 models have nothing to upcast.
        assert_eq!(eager_minus_sdpa("Llama-3.2-1B", Dtype::Fp32), 4);
    }
}
