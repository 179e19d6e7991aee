//! Bytes of the weights: every parameter at the workload's dtype, or, with
//! quantization, the block linears at their quantized size and everything
//! else (embeddings, norms, output head) left in 16 bits, as bitsandbytes
//! and the GPTQ/AWQ loaders leave them.

use super::linears::{linear_params, linears};
use super::workload::{Quant, Workload};
use crate::model::{Dtype, ModelShape};

/// Bytes per quantized linear parameter, scales included.
///
/// - NF4 with blocks of 64 and an fp32 scale each: 4 + 32/64 = 4.5 bits
///   (QLoRA paper, Dettmers et al. 2023, section 3, "blocksize of 64").
/// - int4 (GPTQ/AWQ checkpoints): groups of 128 with an fp16 scale: 4 +
///   16/128 = 4.125 bits (AutoGPTQ's and AutoAWQ's default group_size 128).
/// - LLM.int8(): 1 byte plus one fp32 scale per output row (negligible here).
/// - FP8: 1 byte plus per-tensor scales.
pub fn quantized_bytes_per_param(q: Quant) -> f64 {
    match q {
        Quant::Nf4 => 4.5 / 8.0,
        Quant::Int4 => 4.125 / 8.0,
        Quant::Int8 | Quant::Fp8 => 1.0,
    }
}

pub fn weights_bytes(s: &ModelShape, w: &Workload) -> u64 {
    match w.quant {
        // A GGUF file's weights load as stored.
        None if s.gguf_weights_bytes.is_some() => s.gguf_weights_bytes.unwrap_or(0),
        None => s.params.saturating_mul(w.dtype.bytes()),
        Some(q) => {
            let quantized = linear_params(s).min(s.params);
            let rest = s.params - quantized;
            // The unquantized part stays in 16 bits (fp32 only if asked).
            let rest_dtype = if w.dtype == Dtype::Fp32 {
                Dtype::Fp32
            } else {
                w.dtype
            };
            (quantized as f64 * quantized_bytes_per_param(q)) as u64 + rest * rest_dtype.bytes()
        }
    }
}

/// Bytes of the full-precision copy a 4-bit linear's weight is dequantized
/// to while it computes: bitsandbytes' `MatMul4Bit` runs
/// `F.linear(A, dequantize_4bit(B, quant_state).to(A.dtype).t())` in forward
/// and dequantizes again for the input's gradient in backward
/// (bitsandbytes/autograd/_functions.py), one linear at a time, so the
/// largest quantized linear at the compute dtype is alive at the peak. The
/// other schemes compute from the quantized weights (LLM.int8's int8
/// matmul, GPTQ/AWQ and FP8 kernels).
pub fn dequantized_weight_bytes(s: &ModelShape, w: &Workload) -> u64 {
    if w.quant != Some(Quant::Nf4) {
        return 0;
    }
    let largest = linears(s)
        .iter()
        .map(|l| l.inputs.saturating_mul(l.outputs))
        .max()
        .unwrap_or(0);
    largest.saturating_mul(w.activation_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::WorkloadRequest;
    use crate::model::catalog;

    #[test]
    fn nf4_dequantizes_the_largest_linear_at_the_compute_dtype() {
        let s = catalog::shape("meta-llama/Llama-3.1-8B").unwrap();
        let with = |quant| {
            let req = WorkloadRequest {
                train: true,
                quant,
                dtype: Some(Dtype::Bf16),
                lora: Some(crate::estimate::Lora {
                    rank: 8,
                    targets: crate::estimate::LoraTargets::Qv,
                }),
                ..WorkloadRequest::default()
            };
            dequantized_weight_bytes(&s, &Workload::resolve(&req, &s).unwrap())
        };
        // The 14336 x 4096 MLP projections in bf16.
        assert_eq!(with(Some(Quant::Nf4)), 14336 * 4096 * 2);
        assert_eq!(with(Some(Quant::Int8)), 0);
        assert_eq!(with(None), 0);
    }
}
