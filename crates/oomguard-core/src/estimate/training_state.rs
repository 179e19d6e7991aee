//! What training keeps besides weights and activations: gradients, optimizer
//! states, LoRA adapters and their states, and the half-precision weight
//! copies autocast makes under mixed precision.
//!
//! Bytes per parameter follow the Hugging Face "model memory anatomy" guide
//! (AdamW: 8 bytes of state per trainable parameter in fp32; mixed precision:
//! weights 4 + 2 bytes, gradients 4) and the optimizers' own definitions:
//! torch.optim keeps states in the parameter's dtype, bitsandbytes' 8-bit
//! AdamW keeps two 1-byte states (Dettmers et al. 2021), Lion and SGD with
//! momentum one state, Adafactor factored second moments only. AdamW is
//! taken as the fused kernel (`adamw_torch_fused`, Hugging Face Trainer's
//! default on recent PyTorch), which has no state-sized temporaries; torch's
//! foreach AdamW (`adamw-foreach`) adds one during the step.

use super::linears::{linears, Role};
use super::workload::{LoraTargets, Optimizer, Workload};
use crate::model::{Dtype, ModelShape};

/// The trainable part of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainingState {
    /// Parameters that receive gradients.
    pub trainable_params: u64,
    /// Bytes of the LoRA adapters' own weights (0 without LoRA).
    pub adapter_bytes: u64,
    /// Bytes of gradients for the trainable parameters.
    pub gradients_bytes: u64,
    /// Bytes of the optimizer's states for the trainable parameters.
    pub optimizer_bytes: u64,
    /// Half-precision copies of the weights autocast keeps for backward.
    pub autocast_copy_bytes: u64,
    /// Bytes the optimizer allocates only during its step: torch's foreach
    /// AdamW (`_multi_tensor_adamw`) computes `exp_avg_sq_sqrt =
    /// torch._foreach_sqrt(exp_avg_sqs)`, a new tensor per parameter in the
    /// state dtype, before `_foreach_addcdiv_`; every other update is in
    /// place. 0 for the fused kernel and the others.
    pub step_temporary_bytes: u64,
}

/// LoRA parameters for `rank` on the chosen targets.
pub fn lora_params(s: &ModelShape, rank: u64, targets: LoraTargets) -> u64 {
    linears(s)
        .iter()
        .filter(|l| match targets {
            LoraTargets::Qv => matches!(l.role, Role::Query | Role::Value),
            LoraTargets::Qkvo => {
                matches!(l.role, Role::Query | Role::Key | Role::Value | Role::Output)
            }
            LoraTargets::AllLinear => true,
        })
        .map(|l| rank * (l.inputs + l.outputs) * l.count)
        .sum()
}

/// Bytes of optimizer state per trainable parameter, for states kept in
/// `state_dtype`. Adafactor's factored moments are a row and a column per
/// matrix: for the shapes here that is under 1% of the parameters, so it is
/// taken as 0.04 bytes per parameter.
pub fn state_bytes_per_param(opt: Optimizer, state_dtype: Dtype) -> f64 {
    let b = state_dtype.bytes() as f64;
    match opt {
        Optimizer::Adamw | Optimizer::AdamwForeach => 2.0 * b,
        Optimizer::Adamw8bit => 2.0,
        Optimizer::Lion | Optimizer::SgdMomentum => b,
        Optimizer::Sgd => 0.0,
        Optimizer::Adafactor => 0.04,
    }
}

/// The allocator's peak over one training step from its parts.
///
/// The gradients and the activations saved for backward are never whole at
/// the same time: Hugging Face's Trainer calls `model.zero_grad()` after
/// every optimizer step, which frees the gradients since PyTorch 2.0
/// (`set_to_none=True` by default), so the forward starts without them;
/// backward then allocates each layer's gradients while it frees that
/// layer's saved activations. The total moves from "all activations" at the
/// start of backward to "all gradients" at the optimizer step, so the peak
/// is the larger end, plus what stays through both (weights, optimizer
/// states) and the short-lived buffers of either phase.
pub fn step_peak(stay: u64, gradients: u64, activations: u64, transient: u64) -> u64 {
    stay.saturating_add(gradients.max(activations))
        .saturating_add(transient)
}

/// The allocator's peak over one training step for the workload's setup.
///
/// - Gradient accumulation (`grad_accum > 1`): the gradients of the first
///   micro-batches stay allocated while the next micro-batch's forward
///   saves its activations (the Trainer and torchtune's recipes zero the
///   gradients only after the optimizer step), so both are held at once.
/// - The optimizer step inside backward (torchtune's `optimizer_in_bwd`:
///   `register_optim_in_bwd_hooks` steps each parameter's optimizer from a
///   post-accumulate-grad hook and then calls `zero_grad()`): gradients
///   never accumulate; `gradients` is then the one parameter's gradient
///   alive next to the activations still saved.
/// - Otherwise [`step_peak`]: the larger of gradients and activations.
///
/// `stay` is what is held through the whole step (weights, and optimizer
/// states unless they live outside PyTorch's allocator).
///
/// `step_temporary` exists only during the optimizer step, when the
/// gradients are whole and the activations freed (inside backward, with the
/// step in backward).
pub fn training_peak(
    w: &Workload,
    stay: u64,
    gradients: u64,
    activations: u64,
    transient: u64,
    step_temporary: u64,
) -> u64 {
    if w.optimizer_in_backward {
        stay.saturating_add(gradients)
            .saturating_add(activations)
            .saturating_add(transient)
            .saturating_add(step_temporary)
    } else if w.grad_accum > 1 {
        stay.saturating_add(gradients)
            .saturating_add(activations.max(step_temporary))
            .saturating_add(transient)
    } else {
        step_peak(
            stay,
            gradients.saturating_add(step_temporary),
            activations,
            transient,
        )
    }
}

/// Elements of the largest trainable tensor, whose gradient is the most the
/// optimizer step in backward holds at once: the largest adapter matrix
/// with LoRA, else the largest of the embedding and the block linears.
pub fn largest_trainable_tensor(s: &ModelShape, w: &Workload) -> u64 {
    let ls = linears(s);
    match w.lora {
        Some(lora) => ls
            .iter()
            .map(|l| lora.rank * l.inputs.max(l.outputs))
            .max()
            .unwrap_or(0),
        None => ls
            .iter()
            .map(|l| l.inputs.saturating_mul(l.outputs))
            .chain(std::iter::once(s.vocab_size.saturating_mul(s.hidden_size)))
            .max()
            .unwrap_or(0),
    }
}

/// Bytes of foreach AdamW's step temporary for `params` parameters whose
/// states are in `state_dtype`.
fn foreach_temporary(opt: Optimizer, params: u64, state_dtype: Dtype) -> u64 {
    match opt {
        Optimizer::AdamwForeach => params.saturating_mul(state_dtype.bytes()),
        _ => 0,
    }
}

pub fn training_state(s: &ModelShape, w: &Workload) -> Option<TrainingState> {
    if !w.train {
        return None;
    }
    let opt = w.optimizer.unwrap_or(Optimizer::Adamw);
    let mut state = match w.lora {
        Some(lora) => {
            // PEFT keeps adapters in fp32 (autocast_adapter_dtype) whatever
            // the base model's dtype; LitGPT at the model's.
            let p = lora_params(s, lora.rank, lora.targets);
            let dtype = if w.framework.adapters_in_fp32() {
                Dtype::Fp32
            } else {
                w.dtype
            };
            let states = (p as f64 * state_bytes_per_param(opt, dtype)) as u64;
            Some(TrainingState {
                trainable_params: p,
                adapter_bytes: p * dtype.bytes(),
                gradients_bytes: p * dtype.bytes(),
                optimizer_bytes: states,
                autocast_copy_bytes: 0,
                step_temporary_bytes: foreach_temporary(opt, p, dtype),
            })
        }
        None => {
            let p = s.params;
            // Master weights: fp32 under AMP, else the weights' own dtype.
            let master = w.dtype;
            let states = (p as f64 * state_bytes_per_param(opt, master)) as u64;
            Some(TrainingState {
                trainable_params: p,
                adapter_bytes: 0,
                gradients_bytes: p * master.bytes(),
                optimizer_bytes: states,
                autocast_copy_bytes: if w.mixed_precision() {
                    s.linear_params * 2
                } else {
                    0
                },
                step_temporary_bytes: foreach_temporary(opt, p, master),
            })
        }
    };
    if w.optimizer_in_backward {
        if let Some(t) = state.as_mut() {
            // One parameter at a time: its gradient, and its step's temporary.
            let largest = largest_trainable_tensor(s, w);
            let per_param = t.gradients_bytes / t.trainable_params.max(1);
            t.gradients_bytes = t.gradients_bytes.min(largest.saturating_mul(per_param));
            let per_param = t.step_temporary_bytes / t.trainable_params.max(1);
            t.step_temporary_bytes = t
                .step_temporary_bytes
                .min(largest.saturating_mul(per_param));
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llama_8b(req: crate::estimate::WorkloadRequest) -> (ModelShape, Workload) {
        let s = crate::model::catalog::shape("meta-llama/Llama-3.1-8B").unwrap();
        let w = Workload::resolve(&req, &s).unwrap();
        (s, w)
    }

    #[test]
    fn optimizer_in_backward_holds_one_parameters_gradient() {
        let req = crate::estimate::WorkloadRequest {
            train: true,
            dtype: Some(Dtype::Bf16),
            optimizer_in_backward: true,
            ..Default::default()
        };
        let (s, w) = llama_8b(req);
        let t = training_state(&s, &w).unwrap();
        // The 128256 x 4096 embedding is the largest tensor, in bf16.
        assert_eq!(t.gradients_bytes, 128_256 * 4096 * 2);
        // States are kept for every parameter all the same.
        assert_eq!(t.optimizer_bytes, s.params * 4);
    }

    #[test]
    fn accumulation_and_optimizer_in_backward_hold_gradients_with_activations() {
        let (_, plain) = llama_8b(crate::estimate::WorkloadRequest {
            train: true,
            ..Default::default()
        });
        let (_, accum) = llama_8b(crate::estimate::WorkloadRequest {
            train: true,
            grad_accum: Some(4),
            ..Default::default()
        });
        assert_eq!(training_peak(&plain, 100, 40, 30, 5, 0), 145);
        assert_eq!(training_peak(&accum, 100, 40, 30, 5, 0), 175);
        // Foreach AdamW's temporary joins the gradients at the step.
        assert_eq!(training_peak(&plain, 100, 40, 30, 5, 20), 165);
        assert_eq!(training_peak(&plain, 100, 40, 90, 5, 20), 195);
    }

    #[test]
    fn litgpt_adapters_train_at_the_models_dtype() {
        let with = |framework| {
            let (s, w) = llama_8b(crate::estimate::WorkloadRequest {
                train: true,
                dtype: Some(Dtype::Bf16),
                lora: Some(crate::estimate::Lora {
                    rank: 8,
                    targets: crate::estimate::LoraTargets::Qv,
                }),
                framework: Some(framework),
                ..Default::default()
            });
            (training_state(&s, &w).unwrap(), w.precision.regime)
        };
        let (hf, hf_regime) = with(crate::estimate::Framework::Hf);
        let (lit, lit_regime) = with(crate::estimate::Framework::Litgpt);
        assert_eq!(hf.adapter_bytes, hf.trainable_params * 4);
        assert_eq!(lit.adapter_bytes, lit.trainable_params * 2);
        assert_eq!(lit.optimizer_bytes, lit.trainable_params * 4);
        assert_eq!(hf_regime, crate::estimate::PrecisionRegime::Fp32);
        assert_eq!(lit_regime, crate::estimate::PrecisionRegime::PureHalf);
    }

    #[test]
    fn the_step_peaks_at_the_larger_of_gradients_and_activations() {
        // Few activations (checkpointing): the optimizer step decides.
        assert_eq!(step_peak(100, 40, 10, 5), 145);
        // Many activations (long sequences): the start of backward decides.
        assert_eq!(step_peak(100, 40, 90, 5), 195);
        assert_eq!(step_peak(u64::MAX, 1, 1, 1), u64::MAX);
    }
}
