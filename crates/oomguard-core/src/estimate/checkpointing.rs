//! Saved activations under torchtitan's per-op selective activation
//! checkpointing (`activation_checkpoint.mode = "selective"`,
//! `selective_ac_option = "op"`; torchtitan/parallelisms/
//! parallelize_llama.py, `_apply_ac_to_transformer_block`). Each block runs
//! under `torch.utils.checkpoint` with a policy that must-saves the outputs
//! of the ops in its save list (`aten.mm`, the flash and memory-efficient
//! SDPA kernels, reduce-scatter, abs/max) "except every second mm", counted
//! per block in call order, and recomputes everything else in backward.
//! Full checkpointing and no checkpointing are in `activations`.

use super::activations;
use super::workload::Workload;
use crate::model::ModelShape;

/// Elements per token one block saves under the per-op policy: its input
/// (the checkpoint's argument), the attention kernel's output, and the
/// outputs of the 1st, 3rd, 5th ... matmul in the block's call order
/// (q, k, v, out; then gate, up, down for a gated MLP or up, down for a
/// plain one).
pub fn selective_saved_elements_per_token(s: &ModelShape) -> u64 {
    let h = s.hidden_size;
    let q = s.heads * s.head_dim;
    let kv = s.kv_heads * s.head_dim;
    let i = activations::token_mlp_width(s);
    let mut matmuls = vec![q, kv, kv, h];
    if s.gated_mlp || s.moe.is_some() {
        matmuls.extend([i, i, h]);
    } else {
        matmuls.extend([i, h]);
    }
    let every_other: u64 = matmuls.iter().step_by(2).sum();
    h + q + every_other
}

/// Training activations for the whole batch under per-op selective
/// checkpointing: every block's saved outputs, plus one block recomputed
/// whole in backward, plus the embedding output and the final norm.
pub fn selective_training_activations(s: &ModelShape, w: &Workload) -> u64 {
    let e = w.activation_bytes();
    let layers = s.layers + s.encoder_layers.unwrap_or(0);
    let per_token = layers * selective_saved_elements_per_token(s) * e
        + activations::training_bytes_per_token_per_layer(s, w)
        + 2 * s.hidden_size * e;
    w.tokens().saturating_mul(per_token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::{Checkpointing, WorkloadRequest};
    use crate::model::catalog;

    #[test]
    fn llama_saves_input_attention_and_q_v_gate_down() {
        let s = catalog::shape("meta-llama/Llama-3.1-8B").unwrap();
        // input 4096 + attention 4096 + wq 4096 + wv 1024 + w1 14336 + w2 4096.
        assert_eq!(
            selective_saved_elements_per_token(&s),
            4096 + 4096 + 4096 + 1024 + 14336 + 4096
        );
    }

    #[test]
    fn selective_sits_between_full_and_none() {
        let s = catalog::shape("meta-llama/Llama-3.1-8B").unwrap();
        let with = |c| {
            let req = WorkloadRequest {
                train: true,
                amp: true,
                seq: Some(8192),
                checkpointing: Some(c),
                ..WorkloadRequest::default()
            };
            let w = Workload::resolve(&req, &s).unwrap();
            match c {
                Checkpointing::Selective => selective_training_activations(&s, &w),
                _ => activations::training_activations(&s, &w),
            }
        };
        let (none, sel, full) = (
            with(Checkpointing::None),
            with(Checkpointing::Selective),
            with(Checkpointing::Full),
        );
        assert!(full < sel && sel < none, "{full} {sel} {none}");
    }
}
