//! From a model's shape and a workload to a per-GPU memory breakdown: weights,
//! gradients, optimizer states, activations, KV cache, temporaries, CUDA
//! context; and the three peaks published measurements use
//! (`torch.cuda.max_memory_allocated`, `max_memory_reserved`, and what
//! `nvidia-smi` shows). `fit` searches the largest batch and sequence that
//! fit a GPU and the changes that make a workload fit.
//!
//! Each rule is in the file named for what it computes; this module adds
//! them up and applies sharding over GPUs.

mod activations;
mod allocator;
mod checkpointing;
mod compiled_loss;
pub mod device_map;
pub mod engine;
mod fit;
mod framework;
mod kv_cache;
mod linears;
mod loss;
mod release;
mod training_state;
mod weights;
mod workload;

pub use fit::{
    larger_gpu, max_batch, max_seq, recommendations, usable_capacity, Recommendation, SAFETY_MARGIN,
};
pub use framework::Framework;
pub use release::Release;
pub use training_state::TrainingState;
pub use workload::{
    Attention, Checkpointing, Head, Lora, LoraTargets, Loss, Optimizer, Precision, PrecisionRegime,
    Quant, Workload, WorkloadError, WorkloadRequest, DEFAULT_LOSS_CHUNKS, DEFAULT_SEQ,
    MAX_BATCH_OR_SEQ,
};

use crate::model::ModelShape;
use serde::Serialize;

/// Per-GPU memory of a workload, in bytes (the reference's (docs/reference.md) `per_gpu`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MemoryBreakdown {
    /// Bytes of the weights held on this GPU.
    pub weights_bytes: u64,
    /// Bytes of the gradients (0 for inference).
    pub gradients_bytes: u64,
    /// Bytes of the optimizer's states (0 for inference).
    pub optimizer_bytes: u64,
    /// Bytes of activations at the peak of a step.
    pub activations_bytes: u64,
    /// Bytes of the KV cache (generation), 0 when there is none.
    pub kv_cache_bytes: u64,
    /// Bytes of short-lived buffers at the peak (autocast copies, a layer's gradients, gathered ZeRO-3 shards).
    pub temporary_bytes: u64,
    /// Bytes the CUDA context and library handles take, outside the allocator.
    pub cuda_context_bytes: u64,
    /// What `torch.cuda.max_memory_allocated` would report.
    pub allocated_peak_bytes: u64,
    /// What `torch.cuda.max_memory_reserved` would report.
    pub reserved_peak_bytes: u64,
    /// What `nvidia-smi` would show for the process.
    pub device_used_bytes: u64,
}

/// Share of a transformer block's activations that tensor parallelism does
/// not split (norms and the inputs of the first projections): 10 of the
/// 34·h bytes per token of Korthikanti et al. 2022, section 4.2.1.
const TP_REPLICATED_ACTIVATIONS: f64 = 10.0 / 34.0;

fn share(bytes: u64, parts: u64) -> u64 {
    bytes.div_ceil(parts.max(1))
}

/// One rank's part of the LoRA adapters: split over TP like the layers they
/// sit on, and under ZeRO-3 / FSDP sharded over data parallelism with every
/// other parameter (FSDP flattens all of a wrapped module's parameters,
/// trainable or frozen, into the shards it all-gathers: torch FSDP
/// `FlatParamHandle`, FSDP2 `fully_shard`; DeepSpeed stage 3 partitions
/// every parameter).
fn adapter_share(adapter_bytes: u64, tp: u64, dp: u64, zero: u8) -> u64 {
    let per_tp = share(adapter_bytes, tp);
    if zero >= 3 {
        share(per_tp, dp)
    } else {
        per_tp
    }
}

/// Estimates one GPU's memory for `w` on `s`.
pub fn estimate(s: &ModelShape, w: &Workload) -> MemoryBreakdown {
    let tp = w.tp.max(1);
    let dp = (w.gpus / tp).max(1);
    let zero = if dp > 1 { w.zero } else { 0 };
    let state = training_state::training_state(s, w);

    let mut weights = share(weights::weights_bytes(s, w), tp);
    // ZeRO-3 / FSDP shard every parameter, frozen or quantized ones included
    // (FSDP-QLoRA stores the 4-bit weights sharded).
    if zero >= 3 {
        weights = share(weights, dp);
    }
    let (mut gradients, mut optimizer, autocast, mut step_temporary) = match &state {
        Some(t) => (
            share(t.gradients_bytes, tp),
            share(t.optimizer_bytes, tp),
            share(t.autocast_copy_bytes, tp),
            share(t.step_temporary_bytes, tp),
        ),
        None => (0, 0, 0, 0),
    };
    if let Some(t) = &state {
        weights += adapter_share(t.adapter_bytes, tp, dp, zero);
    }
    if zero >= 1 {
        // Each rank steps its shard only.
        optimizer = share(optimizer, dp);
        step_temporary = share(step_temporary, dp);
    }
    // LitGPT under FSDP: each block's flat parameter holds its adapters
    // and its frozen weights, so the gradient covers the whole block.
    if zero >= 3 && w.lora.is_some() && w.framework.fsdp_grads_cover_frozen_block_weights() {
        gradients = gradients.max(share(framework::frozen_block_gradient_bytes(s, w), tp));
    }
    // FSDP's `no_sync()` over accumulating micro-batches keeps every
    // gradient whole until the micro-batch that synchronizes.
    let unsharded_accumulation =
        zero >= 3 && w.grad_accum > 1 && w.framework.fsdp_accumulates_unsharded_gradients();
    if zero >= 2 && !unsharded_accumulation {
        gradients = share(gradients, dp);
    }
    // ZeRO-3 / FSDP shard the half-precision compute copy with everything
    // else: no rank keeps the whole model in half precision, only the
    // layers it gathers (below).
    let autocast = if zero >= 3 {
        share(autocast, dp)
    } else {
        autocast
    };
    let tp_activation = |bytes: u64| -> u64 {
        if tp == 1 {
            return bytes;
        }
        // Sequence parallelism splits the rest along the sequence
        // (Korthikanti et al. 2022, section 4.2.2: 34·s·b·h/t; torchtitan's
        // `apply_tp` runs the norms under `SequenceParallel()` and keeps the
        // blocks' inputs `Shard(1)`).
        if w.sequence_parallel {
            return share(bytes, tp);
        }
        let f = TP_REPLICATED_ACTIVATIONS + (1.0 - TP_REPLICATED_ACTIVATIONS) / tp as f64;
        (bytes as f64 * f) as u64
    };
    // Inference: the activations and the KV cache at generate's peak
    // (prefill or decode, see `activations::inference_peak`).
    let (inference_acts, kv) = if w.train {
        (0, kv_cache::kv_cache_bytes(s, w))
    } else {
        activations::inference_peak(s, w)
    };
    let kv = share(kv, tp);
    let dequantized = share(weights::dequantized_weight_bytes(s, w), tp);
    // Context parallelism splits every sequence over its group: each rank
    // computes the activations of its slice (the same workload when the
    // degree is 1).
    let local = w.per_context_parallel_rank();
    let (activations, temporary) = if w.train {
        let saved = match w.checkpointing {
            Checkpointing::Selective => checkpointing::selective_training_activations(s, &local),
            Checkpointing::Full | Checkpointing::None => {
                activations::training_activations(s, &local)
            }
        };
        let logits = loss::training_logits_bytes(s, &local);
        // Under checkpointing the one block recomputed at a time exists only
        // once the loss's backward has freed the logits' buffers, so the
        // two never coincide.
        let recompute = if w.checkpointing == Checkpointing::None {
            0
        } else {
            local
                .tokens()
                .saturating_mul(activations::training_bytes_per_token_per_layer(s, &local))
                .min(saved)
        };
        let offloaded = framework::offloaded_block_input_bytes(s, &local).min(saved - recompute);
        let acts = tp_activation(saved - recompute - offloaded)
            .saturating_add(tp_activation(recompute).max(share(logits, tp)))
            .saturating_add(share(framework::litgpt_previous_step_bytes(s, &local), tp));
        // Backward holds one layer's activation gradients next to the saved
        // activations; under ZeRO-3 / FSDP two layers are gathered whole at
        // a time (the one computing and the one prefetched: FSDP's default
        // BACKWARD_PRE prefetch, DeepSpeed's prefetch bucket), at the
        // compute precision (half under AMP: FSDP MixedPrecision's
        // param_dtype, DeepSpeed's fp16/bf16 parameters).
        let layer_grads = tp_activation(
            local
                .tokens()
                .saturating_mul(activations::training_bytes_per_token_per_layer(s, &local)),
        );
        // Backward runs the loss's nodes before any block's, and once they
        // have run the logits' buffers are gone (the loss's inputs are
        // referenced by nothing else: transformers' Trainer returns only the
        // loss, torchtune's recipes `del logits`), so a block's gradients
        // come when the logits are freed: the step holds the larger of the
        // logits and the block's recompute plus its gradients. A loop that
        // keeps its logits bound through backward (`--logits-kept`; LitGPT's
        // loop; the benchmarks' `logits = model(...).logits;
        // logits.sum().backward()`, `--loss sum`; torchtune's recipes until
        // commit 8a98fbaa3 of 2024-07-28, "delete logits before bwd") keeps
        // them next to the blocks' backward.
        let kept = w.logits_kept || w.loss == Loss::Sum || w.framework == Framework::Litgpt;
        let layer_grads = if kept {
            layer_grads
        } else {
            let logits = share(logits, tp);
            let recompute = tp_activation(recompute);
            recompute
                .saturating_add(layer_grads)
                .max(logits)
                .saturating_sub(recompute.max(logits))
        };
        // Ring attention (context parallelism) receives the next rank's
        // keys and values while it computes with the current ones: two
        // slices of K and V in flight (torch's context_parallel ring).
        let ring = if w.context_parallel > 1 {
            4 * share(
                local
                    .tokens()
                    .saturating_mul(s.kv_heads * s.head_dim * local.activation_bytes()),
                tp,
            )
        } else {
            0
        };
        let gathered = if zero >= 3 && s.layers > 0 {
            let whole = if w.mixed_precision() {
                s.params.saturating_mul(2)
            } else {
                weights::weights_bytes(s, w)
            };
            2 * share(whole, tp) / s.layers
        } else {
            0
        };
        (
            acts,
            autocast
                .saturating_add(layer_grads)
                .saturating_add(gathered)
                .saturating_add(dequantized)
                .saturating_add(ring),
        )
    } else {
        (tp_activation(inference_acts), dequantized)
    };
    // Saturating: an absurd --batch or --seq gives "more than any GPU", not
    // an overflow.
    // bitsandbytes' paged optimizers allocate their states with
    // cudaMallocManaged (`F.get_paged` -> `cget_managed_ptr`), outside
    // PyTorch's caching allocator: max_memory_allocated/reserved do not
    // count them, nvidia-smi does while they are resident.
    let paged = if w.paged_optimizer { optimizer } else { 0 };
    // The cuBLAS workspaces come from the caching allocator too.
    let temporary = temporary.saturating_add(allocator::cublas_workspaces_bytes(w.train));
    let allocated = if w.train {
        training_state::training_peak(
            w,
            weights.saturating_add(optimizer - paged),
            gradients,
            activations,
            temporary.saturating_add(kv),
            step_temporary,
        )
    } else {
        [weights, gradients, optimizer, activations, kv, temporary]
            .iter()
            .fold(0u64, |a, b| a.saturating_add(*b))
    };
    // The step's temporary is listed with the other short-lived buffers.
    let temporary = temporary.saturating_add(step_temporary);
    let churn = activations.saturating_add(temporary).saturating_add(kv);
    let reserved = allocator::reserved_peak(allocated, churn);
    MemoryBreakdown {
        weights_bytes: weights,
        gradients_bytes: gradients,
        optimizer_bytes: optimizer,
        activations_bytes: activations,
        kv_cache_bytes: kv,
        temporary_bytes: temporary,
        cuda_context_bytes: allocator::CUDA_CONTEXT_BYTES,
        allocated_peak_bytes: allocated,
        reserved_peak_bytes: reserved,
        device_used_bytes: reserved
            .saturating_add(allocator::CUDA_CONTEXT_BYTES)
            .saturating_add(paged),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::catalog;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any workload the flags allow, on models of every family, gives an
        /// estimate without overflow, and the peaks are ordered.
        #[test]
        fn every_allowed_workload_estimates(
            model in prop::sample::select(vec!["gpt2", "bert-large-uncased", "meta-llama/Llama-3.1-8B", "mistralai/Mixtral-8x7B-v0.1", "google-t5/t5-base", "google/vit-base-patch16-224", "Qwen/Qwen3-30B-A3B"]),
            batch in 1u64..=workload::MAX_BATCH_OR_SEQ,
            seq in 1u64..=workload::MAX_BATCH_OR_SEQ,
            train in any::<bool>(),
            eager in any::<bool>(),
            checkpointing in any::<bool>(),
            lora in prop::option::of(1u64..512),
            quant in prop::option::of(prop::sample::select(vec![Quant::Int8, Quant::Nf4, Quant::Fp8])),
            tp in prop::sample::select(vec![1u64, 2, 8]),
            zero in 0u8..=3,
            summed_loss in any::<bool>(),
            mlm in any::<bool>(),
        ) {
            let shape = catalog::shape(model).unwrap();
            let encoder = shape.kind == crate::model::ModelKind::Encoder;
            let req = WorkloadRequest {
                train,
                batch: Some(batch),
                seq: Some(seq),
                quant: if train && lora.is_none() { None } else { quant },
                lora: if train { lora.map(|rank| Lora { rank, targets: LoraTargets::AllLinear }) } else { None },
                grad_checkpointing: checkpointing,
                attention: Some(if eager { Attention::Eager } else { Attention::Sdpa }),
                gpus: Some(8),
                tp: Some(tp),
                zero: Some(zero),
                loss: (train && summed_loss).then_some(Loss::Sum),
                head: (encoder && mlm).then_some(Head::Mlm),
                ..WorkloadRequest::default()
            };
            let w = Workload::resolve(&req, &shape).unwrap();
            let b = estimate(&shape, &w);
            prop_assert!(b.allocated_peak_bytes >= b.weights_bytes);
            prop_assert!(b.reserved_peak_bytes >= b.allocated_peak_bytes);
            prop_assert!(b.device_used_bytes >= b.reserved_peak_bytes);
        }
    }

    fn zero3_amp_temporaries(gpus: u64) -> u64 {
        let shape = catalog::shape("Llama-2-70b-hf").unwrap();
        let req = WorkloadRequest {
            train: true,
            amp: true,
            gpus: Some(gpus),
            zero: Some(3),
            grad_checkpointing: true,
            ..WorkloadRequest::default()
        };
        estimate(&shape, &Workload::resolve(&req, &shape).unwrap()).temporary_bytes
    }

    #[test]
    fn cublas_workspaces_are_allocated_memory() {
        // One workspace at inference, two in training (the backward's
        // thread has its own handle): listed with the temporaries and in
        // the allocated peak, whatever the model's size.
        let shape = catalog::shape("albert/albert-base-v1").unwrap();
        let run = |train| {
            let req = WorkloadRequest {
                train,
                dtype: Some(crate::model::Dtype::Fp16),
                batch: Some(4),
                seq: Some(128),
                ..WorkloadRequest::default()
            };
            estimate(&shape, &Workload::resolve(&req, &shape).unwrap())
        };
        let ws = allocator::CUBLAS_WORKSPACE_BYTES;
        assert_eq!(ws, 8_519_680);
        let infer = run(false);
        assert_eq!(infer.temporary_bytes, ws);
        assert_eq!(
            infer.allocated_peak_bytes,
            infer.weights_bytes + infer.activations_bytes + ws
        );
        assert!(run(true).temporary_bytes >= 2 * ws);
    }

    #[test]
    fn zero3_shards_the_half_precision_copy() {
        // 70B in bf16 is ~129 GiB: no GPU holds it whole under ZeRO-3; the
        // temporaries shrink with the GPU count and stay far below it.
        let (t2, t8, t64) = (
            zero3_amp_temporaries(2),
            zero3_amp_temporaries(8),
            zero3_amp_temporaries(64),
        );
        assert!(t2 > t8 && t8 > t64, "{t2} {t8} {t64}");
        assert!(t8 < 20 << 30, "{t8}");
    }

    #[test]
    fn amp_without_dtype_keeps_fp32_masters_and_bf16_amp_is_autocast_only() {
        let shape = catalog::shape("Llama-3.1-8B").unwrap();
        let amp = Workload::resolve(
            &WorkloadRequest {
                train: true,
                amp: true,
                ..WorkloadRequest::default()
            },
            &shape,
        )
        .unwrap();
        assert_eq!(amp.precision.regime, PrecisionRegime::Amp);
        assert_eq!(amp.dtype, crate::model::Dtype::Fp32);
        let bf16 = Workload::resolve(
            &WorkloadRequest {
                train: true,
                amp: true,
                dtype: Some(crate::model::Dtype::Bf16),
                ..WorkloadRequest::default()
            },
            &shape,
        )
        .unwrap();
        assert_eq!(bf16.precision.regime, PrecisionRegime::PureHalf);
        assert!(bf16.precision.autocast_only);
        let per = |p: Precision| {
            p.weight_bytes_per_param + p.gradient_bytes_per_param + p.optimizer_bytes_per_param
        };
        assert_eq!(per(amp.precision), 16.0);
        assert_eq!(per(bf16.precision), 8.0);
    }

    #[test]
    fn sequence_parallelism_splits_every_activation_over_tp() {
        let shape = catalog::shape("Llama-3.1-70B").unwrap();
        let acts = |sp| {
            let req = WorkloadRequest {
                train: true,
                dtype: Some(crate::model::Dtype::Bf16),
                seq: Some(4096),
                tp: Some(8),
                sequence_parallel: sp,
                ..WorkloadRequest::default()
            };
            let w = Workload::resolve(&req, &shape).unwrap();
            estimate(&shape, &w).activations_bytes
        };
        let (tp_only, sp) = (acts(false), acts(true));
        // Without it 10/34 of a block's bytes stay whole on every rank.
        assert!(sp < tp_only, "{sp} {tp_only}");
        assert!(sp as f64 > tp_only as f64 * 0.3, "{sp} {tp_only}");
    }

    fn litgpt_fsdp_lora_gradients(framework: Framework, grad_accum: u64) -> u64 {
        let shape = catalog::shape("meta-llama/Llama-2-13b-hf").unwrap();
        let req = WorkloadRequest {
            train: true,
            dtype: Some(crate::model::Dtype::Bf16),
            lora: Some(Lora {
                rank: 8,
                targets: LoraTargets::Qv,
            }),
            grad_checkpointing: true,
            gpus: Some(4),
            zero: Some(3),
            grad_accum: Some(grad_accum),
            framework: Some(framework),
            ..WorkloadRequest::default()
        };
        estimate(&shape, &Workload::resolve(&req, &shape).unwrap()).gradients_bytes
    }

    #[test]
    fn litgpt_fsdp_gives_frozen_block_weights_gradients_whole_while_accumulating() {
        let blocks = 40 * (4 * 5120 * 5120 + 3 * 5120 * 13824) * 2u64;
        // One micro-batch per step: the block gradients, sharded over 4.
        assert_eq!(litgpt_fsdp_lora_gradients(Framework::Litgpt, 1), blocks / 4);
        // Fabric's no_backward_sync (FSDP no_sync): whole on every GPU.
        assert_eq!(litgpt_fsdp_lora_gradients(Framework::Litgpt, 128), blocks);
        // PEFT wraps adapters apart: only theirs, a few MB.
        assert!(litgpt_fsdp_lora_gradients(Framework::Hf, 128) < 100 << 20);
    }

    #[test]
    fn the_recomputed_block_and_the_logits_never_meet() {
        // Llama 3.1 8B, 2 x 2048 tokens: the logits (fp32 loss buffers,
        // ~7 GB) outweigh one recomputed block (~0.7 GB), so full
        // checkpointing holds the layer inputs plus the logits only.
        let shape = catalog::shape("meta-llama/Llama-3.1-8B").unwrap();
        let req = WorkloadRequest {
            train: true,
            dtype: Some(crate::model::Dtype::Bf16),
            batch: Some(2),
            seq: Some(2048),
            grad_checkpointing: true,
            ..WorkloadRequest::default()
        };
        let w = Workload::resolve(&req, &shape).unwrap();
        let inputs = 4096 * 32 * 4096 * 2 + 4096 * 2 * 4096 * 2;
        let logits = activations::training_logits(&shape, &w);
        assert_eq!(estimate(&shape, &w).activations_bytes, inputs + logits);
    }

    #[test]
    fn a_block_s_gradients_come_after_the_logits_are_freed_unless_they_are_kept() {
        // The same Llama 3.1 8B step: the logits outweigh the recomputed
        // block plus its gradients, so the gradients add nothing unless the
        // loop keeps its logits through backward.
        let shape = catalog::shape("meta-llama/Llama-3.1-8B").unwrap();
        let temporaries = |logits_kept| {
            let req = WorkloadRequest {
                train: true,
                dtype: Some(crate::model::Dtype::Bf16),
                batch: Some(2),
                seq: Some(2048),
                grad_checkpointing: true,
                logits_kept,
                ..WorkloadRequest::default()
            };
            let w = Workload::resolve(&req, &shape).unwrap();
            let block = w.tokens() * activations::training_bytes_per_token_per_layer(&shape, &w);
            assert!(activations::training_logits(&shape, &w) > 2 * block);
            (estimate(&shape, &w).temporary_bytes, block)
        };
        let ((freed, block), (kept, _)) = (temporaries(false), temporaries(true));
        assert_eq!(kept - freed, block);
    }

    #[test]
    fn peft_s_4bit_preparation_makes_the_residual_stream_fp32() {
        // QLoRA under PEFT: norms in fp32, so every checkpointed block input
        // is 4 bytes an element; torchtune keeps the model's dtype.
        let shape = catalog::shape("meta-llama/Llama-3.1-8B").unwrap();
        let acts = |framework| {
            let req = WorkloadRequest {
                train: true,
                dtype: Some(crate::model::Dtype::Bf16),
                quant: Some(super::workload::Quant::Nf4),
                lora: Some(Lora {
                    rank: 8,
                    targets: LoraTargets::Qv,
                }),
                seq: Some(4096),
                grad_checkpointing: true,
                framework: Some(framework),
                ..WorkloadRequest::default()
            };
            let w = Workload::resolve(&req, &shape).unwrap();
            assert_eq!(w.residual_in_fp32(), framework == Framework::Hf);
            (
                framework::residual_bytes(&w),
                activations::training_activations(&shape, &w),
            )
        };
        let ((hf_bytes, hf), (tt_bytes, tt)) = (acts(Framework::Hf), acts(Framework::Torchtune));
        assert_eq!((hf_bytes, tt_bytes), (4, 2));
        // 32 block inputs, the embedding output, the final norm and the
        // recomputed block's two norm inputs, 4096 x 4096 elements each, 2
        // more bytes an element.
        assert_eq!(hf - tt, 36 * 4096 * 4096 * 2);
    }

    #[test]
    fn fsdp_shards_the_adapters_with_the_base() {
        // 8 GPUs of data parallelism: ZeRO-3 keeps an eighth, ZeRO-2 all of it.
        assert_eq!(adapter_share(800, 1, 8, 3), 100);
        assert_eq!(adapter_share(800, 1, 8, 2), 800);
        // TP 2 x DP 4 under FSDP.
        assert_eq!(adapter_share(800, 2, 4, 3), 100);
    }
}
