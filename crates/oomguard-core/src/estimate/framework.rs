//! The training framework that runs a workload (`--framework`), for the
//! choices a framework makes in its code that change memory and that no
//! other setting names: how the loss treats the logits, whether LoRA
//! adapters apply dropout to their input, how FSDP wraps adapters and
//! their frozen layers, and whether FSDP accumulates gradients sharded.
//!
//! - Hugging Face (transformers' Trainer, PEFT, Accelerate): the default;
//!   what the rest of the estimate describes.
//! - LitGPT (Lightning Fabric): `finetune/lora.py` and its successors.
//! - torchtune: its recipes' chunked cross-entropy is their default loss.

use super::linears::linears;
use super::workload::{Lora, Workload};
use crate::model::{ModelKind, ModelShape};
use serde::Serialize;

/// Who runs the training loop (`--framework`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Framework {
    /// transformers' Trainer with PEFT and Accelerate.
    #[default]
    Hf,
    /// LitGPT on Lightning Fabric.
    Litgpt,
    /// torchtune's recipes.
    Torchtune,
}

/// Tokens per piece of LitGPT's output head in fine-tuning: its scripts call
/// `model(input_ids, lm_head_chunk_size=128)` and `chunked_cross_entropy`
/// with `chunk_size=128` (litgpt finetune/lora.py and lit_gpt/utils.py,
/// since lit-gpt commit 8641822 of 2023-10).
pub const LITGPT_LM_HEAD_CHUNK: u64 = 128;

impl Framework {
    /// Reads the name `--framework` takes (`hf`, `litgpt`, `torchtune`);
    /// `None` for anything else.
    pub fn parse(s: &str) -> Option<Framework> {
        Some(match s {
            "hf" | "transformers" | "huggingface" => Framework::Hf,
            "litgpt" | "lit-gpt" => Framework::Litgpt,
            "torchtune" => Framework::Torchtune,
            _ => return None,
        })
    }

    /// The name as the output spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Framework::Hf => "hf",
            Framework::Litgpt => "litgpt",
            Framework::Torchtune => "torchtune",
        }
    }

    /// Whether every LoRA adapter applies dropout to its input before its
    /// A matrix, keeping the dropped copy (saved by the A matmul) and the
    /// one-byte mask (saved by dropout) for backward. LitGPT's `LoRALinear`
    /// computes `self.lora_dropout(x) @ self.lora_A.T` and every LitGPT
    /// LoRA script and config sets `lora_dropout: 0.05`; PEFT's
    /// `LoraConfig` and torchtune's LoRA builders default to 0.0, where
    /// the dropout is an identity and keeps nothing.
    pub fn lora_input_dropout(self) -> bool {
        self == Framework::Litgpt
    }

    /// Whether LoRA adapters (and so their gradients and optimizer states)
    /// are fp32 whatever the base model's dtype: PEFT's
    /// `autocast_adapter_dtype=True` upcasts them. LitGPT builds them inside
    /// `fabric.init_module()`, under the precision plugin's default dtype
    /// (`bf16-true`: bf16; lightning/fabric/plugins/precision/half.py), and
    /// torchtune's recipes build the whole model, adapters included, under
    /// `training.set_default_dtype(self._dtype)` (recipes/
    /// lora_finetune_single_device.py `_setup_model`): the model's dtype.
    pub fn adapters_in_fp32(self) -> bool {
        self == Framework::Hf
    }

    /// Whether FSDP puts the adapters in the same flat parameter as the
    /// frozen weights of their block, so that every weight of the block
    /// gets a gradient. LitGPT wraps each transformer `Block` (its
    /// `auto_wrap_policy={Block}`) and Fabric's FSDP sets
    /// `use_orig_params=True` (lightning/fabric/strategies/fsdp.py), so one
    /// `FlatParameter` holds frozen and trainable weights and its gradient
    /// covers all of them (torch FSDP warns: "the gradient memory usage
    /// will be higher than expected", torch/distributed/fsdp/_wrap_utils.py).
    /// PEFT's `fsdp_auto_wrap_policy` wraps the adapters apart, and
    /// torchtune shards each parameter (FSDP2), so frozen weights get none.
    pub fn fsdp_grads_cover_frozen_block_weights(self) -> bool {
        self == Framework::Litgpt
    }

    /// Whether FSDP keeps whole (unsharded) gradients over accumulating
    /// micro-batches: Fabric's `no_backward_sync` enters FSDP's `no_sync()`
    /// (lightning/fabric/strategies/fsdp.py `_FSDPBackwardSyncControl`),
    /// under which FSDP accumulates the unsharded gradient of every flat
    /// parameter until the synchronizing micro-batch (torch FSDP
    /// `no_sync` docstring: "FSDP will accumulate the full model
    /// gradients (instead of gradient shards) until the eventual sync").
    pub fn fsdp_accumulates_unsharded_gradients(self) -> bool {
        self == Framework::Litgpt
    }

    /// Whether 4-bit LoRA training casts the norms to fp32: PEFT's
    /// `prepare_model_for_kbit_training`, which transformers' and TRL's QLoRA
    /// recipes call (TRL's `SFTTrainer` does it for any 4-bit model it is
    /// given a LoRA config for), casts every fp16/bf16 parameter that is not
    /// a `Params4bit` to fp32 (peft/utils/other.py, v0.13), and TRL's
    /// `peft_module_casting_to_bf16` casts the embeddings and the head back
    /// but keeps the norms in fp32. LitGPT and torchtune leave the norms at
    /// the model's dtype.
    pub fn kbit_norms_in_fp32(self) -> bool {
        self == Framework::Hf
    }
}

/// Bytes of one element of the residual stream (every block's input and
/// output) in training.
///
/// With the norms in fp32 under 4-bit LoRA ([`Framework::kbit_norms_in_fp32`]),
/// a norm's output is fp32 (a Llama-style RMSNorm returns its fp32 weight
/// times its input cast back, transformers' `LlamaRMSNorm`), and
/// bitsandbytes' `Linear4bit` casts its output back to its input's dtype
/// (`out.to(inp_dtype)`, bitsandbytes/nn/modules.py, 0.43), so the MLP's down
/// projection returns fp32 and the residual sum is fp32 from the first block
/// on: every checkpointed block input is 4 bytes an element. Otherwise the
/// activation dtype.
pub fn residual_bytes(w: &Workload) -> u64 {
    let fp32 = w.train
        && w.lora.is_some()
        && w.quant == Some(super::workload::Quant::Nf4)
        && w.framework.kbit_norms_in_fp32();
    if fp32 {
        4
    } else {
        w.activation_bytes()
    }
}

/// Bytes of the gradients of every block weight held by one GPU when FSDP's
/// flat parameters mix adapters with frozen weights (see
/// [`Framework::fsdp_grads_cover_frozen_block_weights`]): the block
/// linears, in the weights' dtype (the flat parameter's). Embeddings, the
/// output head and norms outside the blocks sit in the root's flat
/// parameter, which holds no adapter and gets no gradient; the blocks'
/// norms are too small to count.
pub fn frozen_block_gradient_bytes(s: &ModelShape, w: &Workload) -> u64 {
    let block: u64 = linears(s)
        .iter()
        .map(|l| l.inputs.saturating_mul(l.outputs).saturating_mul(l.count))
        .sum();
    block.saturating_mul(w.dtype.bytes())
}

/// Bytes per token and layer LoRA's input dropout keeps for backward (see
/// [`Framework::lora_input_dropout`]): for each distinct adapted input its
/// dropped copy at the activation dtype and its one-byte mask. LitGPT's
/// fused q/k/v linear drops its input once; the output projection, both
/// MLP input linears (`fc_1`, `fc_2`: one dropout each) and the down
/// projection each drop their own.
pub fn lora_dropout_bytes_per_token_per_layer(s: &ModelShape, w: &Workload) -> u64 {
    let Some(Lora { targets, .. }) = w.lora else {
        return 0;
    };
    if !w.framework.lora_input_dropout() || !w.train {
        return 0;
    }
    use super::workload::LoraTargets;
    let h = s.hidden_size;
    let q = s.heads * s.head_dim;
    let i = super::activations::token_mlp_width(s);
    let elems = match targets {
        LoraTargets::Qv => h,
        LoraTargets::Qkvo => h + q,
        LoraTargets::AllLinear => {
            let mlp_inputs = if s.gated_mlp || s.moe.is_some() { 2 } else { 1 };
            h + q + mlp_inputs * h + i
        }
    };
    elems.saturating_mul(w.activation_bytes() + 1)
}

/// Logits bytes at the training peak under LitGPT: `chunked_cross_entropy`
/// calls `F.cross_entropy(..., reduction="none")` on 128-token pieces in the
/// logits' own dtype, without an fp32 upcast, so every piece's logits and
/// its saved log-softmax stay until backward (2 values per logit).
/// Backward then makes the gradients: with adapters (finetune/lora.py,
/// adapter.py) the output head itself ran per piece, so one piece's
/// gradient (of the log-softmax and of the logits) at a time; in full
/// fine-tuning (finetune/full.py) the head ran whole and the pieces were
/// split from its output, so the split's backward gathers every piece's
/// gradient into one whole-size gradient (2 more values per logit).
pub fn litgpt_logits_bytes(s: &ModelShape, w: &Workload) -> u64 {
    if matches!(s.kind, ModelKind::Encoder | ModelKind::Vision) {
        return 0;
    }
    let e = w.activation_bytes();
    let logits = w.tokens().saturating_mul(s.vocab_size);
    let piece = if w.lora.is_some() {
        w.batch
            .saturating_mul(w.seq.min(LITGPT_LM_HEAD_CHUNK))
            .saturating_mul(s.vocab_size)
    } else {
        logits
    };
    logits
        .saturating_mul(2 * e)
        .saturating_add(piece.saturating_mul(2 * e))
}

/// Bytes the previous micro-batch leaves alive through the next forward
/// under LitGPT: its loop assigns `logits = model(...)` and `loss =
/// chunked_cross_entropy(...)` inside the iteration and only rebinds them
/// in the next one, after that forward (litgpt finetune/lora.py, full.py),
/// so the previous logits stay allocated (at the activation dtype), and
/// through their `grad_fn` the previous graph's nodes. Backward has freed
/// what nodes `save_for_backward`, but not what they keep as attributes:
/// bitsandbytes before 0.43.2 keeps each 4-bit linear's input as
/// `ctx.tensors`, so the previous step's kept inputs stay too (without
/// checkpointing; a checkpointed forward builds no graph for them).
pub fn litgpt_previous_step_bytes(s: &ModelShape, w: &Workload) -> u64 {
    if w.framework != Framework::Litgpt || !w.train {
        return 0;
    }
    let logits = if matches!(s.kind, ModelKind::Encoder | ModelKind::Vision) {
        0
    } else {
        w.tokens()
            .saturating_mul(s.vocab_size)
            .saturating_mul(w.activation_bytes())
    };
    let kept = if w.grad_checkpointing {
        0
    } else {
        w.tokens()
            .saturating_mul((s.layers + s.encoder_layers.unwrap_or(0)).saturating_mul(
                super::weights::kept_4bit_input_bytes_per_token_per_layer(s, w),
            ))
    };
    logits.saturating_add(kept)
}

/// Activations torchtune's `OffloadActivations` keeps on the GPU in forward
/// before moving them to CPU memory: its forward stash holds the last
/// `max_fwd_stash_size = 5` saved tensors
/// (torchtune/training/_activation_offloading.py); under full
/// checkpointing those are block inputs.
pub const OFFLOAD_FORWARD_STASH: u64 = 5;

/// Bytes of checkpointed block inputs that activation offloading moves off
/// the GPU: every block's input but the forward stash's. Backward brings
/// each back for its block's recompute, one block at a time. 0 without
/// offloading.
pub fn offloaded_block_input_bytes(s: &ModelShape, w: &Workload) -> u64 {
    if !w.activation_offloading || !w.grad_checkpointing {
        return 0;
    }
    let layers = s.layers + s.encoder_layers.unwrap_or(0);
    let kept = layers.min(OFFLOAD_FORWARD_STASH);
    w.tokens()
        .saturating_mul(layers - kept)
        .saturating_mul(s.hidden_size)
        .saturating_mul(w.activation_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::{LoraTargets, WorkloadRequest};
    use crate::model::{catalog, Dtype};

    fn lora(model: &str, framework: Framework, targets: LoraTargets) -> (ModelShape, Workload) {
        let s = catalog::shape(model).unwrap();
        let req = WorkloadRequest {
            train: true,
            dtype: Some(Dtype::Bf16),
            batch: Some(4),
            seq: Some(1024),
            lora: Some(Lora { rank: 8, targets }),
            framework: Some(framework),
            ..WorkloadRequest::default()
        };
        let w = Workload::resolve(&req, &s).unwrap();
        (s, w)
    }

    #[test]
    fn names_read_and_print() {
        for f in [Framework::Hf, Framework::Litgpt, Framework::Torchtune] {
            assert_eq!(Framework::parse(f.as_str()), Some(f));
        }
        assert_eq!(Framework::parse("lit-gpt"), Some(Framework::Litgpt));
        assert_eq!(Framework::parse("keras"), None);
    }

    #[test]
    fn litgpt_adapters_keep_a_dropped_copy_and_a_mask_per_input() {
        let (s, w) = lora(
            "TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T",
            Framework::Litgpt,
            LoraTargets::AllLinear,
        );
        // q/k/v input, output projection input, fc_1 and fc_2 inputs, down
        // projection input: 2048 + 2048 + 2 x 2048 + 5632, 3 bytes each.
        assert_eq!(
            lora_dropout_bytes_per_token_per_layer(&s, &w),
            (4 * 2048 + 5632) * 3
        );
        let (s, w) = lora(
            "TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T",
            Framework::Litgpt,
            LoraTargets::Qv,
        );
        assert_eq!(lora_dropout_bytes_per_token_per_layer(&s, &w), 2048 * 3);
        // PEFT's default dropout is 0: nothing kept.
        let (s, w) = lora(
            "TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T",
            Framework::Hf,
            LoraTargets::AllLinear,
        );
        assert_eq!(lora_dropout_bytes_per_token_per_layer(&s, &w), 0);
    }

    #[test]
    fn litgpt_logits_stay_in_half_precision_with_one_piece_of_gradient() {
        let (s, w) = lora("microsoft/phi-1_5", Framework::Litgpt, LoraTargets::Qv);
        let v = s.vocab_size;
        assert_eq!(
            litgpt_logits_bytes(&s, &w),
            4 * 1024 * v * 4 + 4 * 128 * v * 4
        );
        // Below Hugging Face's fp32 upcast of the whole tensor.
        assert!(litgpt_logits_bytes(&s, &w) < super::super::activations::training_logits(&s, &w));
    }

    #[test]
    fn litgpt_keeps_the_previous_logits_and_old_bitsandbytes_inputs() {
        let s = catalog::shape("TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T").unwrap();
        let with = |framework, version: Option<&str>, checkpointing| {
            let req = WorkloadRequest {
                train: true,
                dtype: Some(Dtype::Bf16),
                quant: version.map(|_| crate::estimate::Quant::Nf4),
                bitsandbytes_version: version.and_then(crate::estimate::Release::parse),
                batch: Some(8),
                seq: Some(512),
                lora: Some(Lora {
                    rank: 32,
                    targets: LoraTargets::Qv,
                }),
                grad_checkpointing: checkpointing,
                framework: Some(framework),
                ..WorkloadRequest::default()
            };
            litgpt_previous_step_bytes(&s, &Workload::resolve(&req, &s).unwrap())
        };
        let logits = 8 * 512 * 32_000 * 2;
        assert_eq!(with(Framework::Litgpt, None, false), logits);
        // bitsandbytes 0.41: every layer's kept 4-bit inputs (attention,
        // output projection, MLP input, down projection).
        let kept = 8 * 512 * 22 * (3 * 2048 + 5632) * 2;
        assert_eq!(
            with(Framework::Litgpt, Some("0.41.0"), false),
            logits + kept
        );
        assert_eq!(with(Framework::Litgpt, Some("0.41.0"), true), logits);
        assert_eq!(with(Framework::Hf, Some("0.41.0"), false), 0);
    }

    #[test]
    fn offloading_keeps_the_forward_stash_of_block_inputs_only() {
        let s = catalog::shape("meta-llama/Llama-3.2-3B").unwrap();
        let offloaded = |offload: bool, checkpointing: bool| {
            let req = WorkloadRequest {
                train: true,
                dtype: Some(Dtype::Bf16),
                batch: Some(2),
                seq: Some(4096),
                grad_checkpointing: checkpointing,
                activation_offloading: offload,
                ..WorkloadRequest::default()
            };
            Workload::resolve(&req, &s).map(|w| offloaded_block_input_bytes(&s, &w))
        };
        // 28 blocks, 5 inputs kept: 23 of 2 x 4096 x 3072 bf16 values.
        assert_eq!(offloaded(true, true).unwrap(), 23 * 2 * 4096 * 3072 * 2);
        assert_eq!(offloaded(false, true).unwrap(), 0);
        // torchtune refuses offloading without checkpointing.
        assert!(offloaded(true, false).is_err());
    }

    #[test]
    fn frozen_block_gradients_cover_the_block_linears_in_the_weights_dtype() {
        let (s, w) = lora(
            "meta-llama/Llama-2-13b-hf",
            Framework::Litgpt,
            LoraTargets::Qv,
        );
        let g = frozen_block_gradient_bytes(&s, &w);
        // 40 blocks of 4 x 5120^2 + 3 x 5120 x 13824 weights, 2 bytes each.
        assert_eq!(g, 40 * (4 * 5120 * 5120 + 3 * 5120 * 13824) * 2);
    }
}
