//! Bytes of the weights: every parameter at the workload's dtype, or, with
//! quantization, the block linears at their quantized size and everything
//! else (embeddings, norms, output head) left in 16 bits, as bitsandbytes
//! and the GPTQ/AWQ loaders leave them.

use super::framework::Framework;
use super::linears::{linear_params, linears};
use super::release::Release;
use super::workload::{Quant, Workload};
use crate::model::{Dtype, ModelKind, ModelShape};

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

/// Bits per parameter of torchao's `NF4Tensor`, the 4-bit base weight of
/// torchtune's QLoRA (`quantize_base=True` -> `torchao.dtypes.to_nf4`):
/// 4-bit codes in blocks of 64, each block's absmax scaler quantized to
/// int8, and one fp32 factor per 256 scalers (`to_nf4(tensor,
/// block_size=64, scaler_block_size=256)` and `double_quantize_scalers`,
/// torchao/dtypes/nf4tensor.py): 4 + 8/64 + 32/(64·256) ≈ 4.127 bits, the
/// QLoRA paper's double-quantization figure. bitsandbytes does this only
/// with `bnb_4bit_use_double_quant=True` (LitGPT's `bnb.nf4-dq`), which is
/// not transformers' default.
const TORCHAO_NF4_BITS: f64 = 4.0 + 8.0 / 64.0 + 32.0 / (64.0 * 256.0);

/// Bytes per quantized linear parameter as the framework stores it:
/// torchtune's NF4 is torchao's double-quantized tensor; every other
/// framework's NF4 is bitsandbytes' default (see
/// `quantized_bytes_per_param`).
fn framework_quantized_bytes_per_param(q: Quant, framework: Framework) -> f64 {
    match (q, framework) {
        (Quant::Nf4, Framework::Torchtune) => TORCHAO_NF4_BITS / 8.0,
        _ => quantized_bytes_per_param(q),
    }
}

/// Parameters of a decoder's output head (vocabulary x hidden).
fn head_params(s: &ModelShape) -> u64 {
    if s.kind == ModelKind::Decoder {
        s.vocab_size.saturating_mul(s.hidden_size)
    } else {
        0
    }
}

/// The output head as LitGPT holds it, in parameters: a `torch.nn.Linear`
/// of its own (`GPT.lm_head`, litgpt/model.py) even where the checkpoint
/// ties it to the embedding, since its conversion script copies the
/// embedding into `lm_head.weight` when the checkpoint has none
/// (litgpt/scripts/convert_hf_checkpoint.py). Returns the parameters LitGPT
/// adds to the model's count (the copy, for tied models; 0 otherwise) and
/// the head's parameters when its quantization plugin replaces it: Fabric's
/// `BitsandbytesPrecision` converts every `torch.nn.Linear` not listed in
/// `ignore_modules`, and LitGPT's scripts list none
/// (lightning/fabric/plugins/precision/bitsandbytes.py `_convert_layers`).
fn litgpt_head(s: &ModelShape, w: &Workload) -> (u64, u64) {
    if w.framework != Framework::Litgpt {
        return (0, 0);
    }
    let head = head_params(s);
    let copy = if s.tie_word_embeddings { head } else { 0 };
    (copy, if w.quant.is_some() { head } else { 0 })
}

pub fn weights_bytes(s: &ModelShape, w: &Workload) -> u64 {
    let (head_copy, quantized_head) = litgpt_head(s, w);
    let params = s.params.saturating_add(head_copy);
    match w.quant {
        // A GGUF file's weights load as stored.
        None if s.gguf_weights_bytes.is_some() => s.gguf_weights_bytes.unwrap_or(0),
        None => params.saturating_mul(w.dtype.bytes()),
        Some(q) => {
            let quantized = linear_params(s).saturating_add(quantized_head).min(params);
            let rest = params - quantized;
            // The unquantized part stays in 16 bits (fp32 only if asked).
            let rest_dtype = if w.dtype == Dtype::Fp32 {
                Dtype::Fp32
            } else {
                w.dtype
            };
            (quantized as f64 * framework_quantized_bytes_per_param(q, w.framework)) as u64
                + rest * rest_dtype.bytes()
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
        .chain(std::iter::once(litgpt_head(s, w).1))
        .max()
        .unwrap_or(0);
    largest.saturating_mul(w.activation_bytes())
}

/// The first bitsandbytes release whose `MatMul4Bit` no longer keeps its
/// input: 0.43.2 (2024-07-23), commit 9e753741 "fix QLoRA mem bug: delete
/// useless buffered activation" (#1270).
pub const BNB_FREES_4BIT_INPUTS: Release = Release::new(0, 43, 2);

/// Whether this bitsandbytes release's 4-bit matmul keeps each linear's
/// input until the step's graph is freed (every release before 0.43.2).
pub fn keeps_4bit_inputs(bitsandbytes: Release) -> bool {
    bitsandbytes < BNB_FREES_4BIT_INPUTS
}

/// Bytes per token and layer of the 4-bit linears' inputs that bitsandbytes
/// before 0.43.2 keeps for backward: its `MatMul4Bit.forward` stored
/// `ctx.tensors = (A, B)` whenever an input needs a gradient (always in
/// QLoRA, past the first adapter), though backward only reads B
/// (bitsandbytes/autograd/_functions.py until commit 9e753741). Tensors on
/// `ctx` rather than `save_for_backward` are not released when backward
/// passes the node: they live as long as the graph, so every layer's are
/// alive at the peak (measured with a `torch.autograd.Function` that does
/// the same: the input outlives `backward()` while the loss is referenced).
///
/// The distinct inputs of a block's quantized linears: the attention input
/// (one tensor for q, k and v), the output projection's input, the MLP input
/// (one for gate and up), and the down projection's input; a mixture of
/// experts copies each routed token's input per expert. In LoRA training
/// these tensors are otherwise dropped (a frozen linear saves no input), so
/// they come on top of what the block keeps.
pub fn kept_4bit_input_bytes_per_token_per_layer(s: &ModelShape, w: &Workload) -> u64 {
    let keeps = w.train
        && w.quant == Some(Quant::Nf4)
        && w.bitsandbytes_version.is_some_and(keeps_4bit_inputs);
    if !keeps {
        return 0;
    }
    let h = s.hidden_size;
    let q = s.heads * s.head_dim;
    let mlp = match &s.moe {
        Some(m) => {
            h + m.experts_per_token * (h + m.expert_intermediate_size) + m.shared_intermediate_size
        }
        // Under a shared norm the MLP's input is the attention's.
        None if s.shared_block_norm => s.intermediate_size,
        None => h + s.intermediate_size,
    };
    (h + q + mlp).saturating_mul(w.activation_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::WorkloadRequest;
    use crate::model::catalog;

    /// bf16 LoRA training of `s` with `quant` on a given bitsandbytes release.
    fn lora_training(s: &ModelShape, quant: Option<Quant>, version: Option<Release>) -> Workload {
        lora_training_by(s, quant, version, Framework::Hf)
    }

    /// The same, run by `framework`.
    fn lora_training_by(
        s: &ModelShape,
        quant: Option<Quant>,
        version: Option<Release>,
        framework: Framework,
    ) -> Workload {
        let req = WorkloadRequest {
            train: true,
            quant,
            dtype: Some(Dtype::Bf16),
            lora: Some(crate::estimate::Lora {
                rank: 8,
                targets: crate::estimate::LoraTargets::Qv,
            }),
            bitsandbytes_version: version,
            framework: Some(framework),
            ..WorkloadRequest::default()
        };
        Workload::resolve(&req, s).unwrap()
    }

    #[test]
    fn torchtune_nf4_is_double_quantized() {
        assert!((TORCHAO_NF4_BITS - 4.127).abs() < 0.001);
        assert_eq!(
            framework_quantized_bytes_per_param(Quant::Nf4, Framework::Hf),
            4.5 / 8.0
        );
        assert_eq!(
            framework_quantized_bytes_per_param(Quant::Int4, Framework::Torchtune),
            quantized_bytes_per_param(Quant::Int4)
        );
    }

    #[test]
    fn nf4_dequantizes_the_largest_linear_at_the_compute_dtype() {
        let s = catalog::shape("meta-llama/Llama-3.1-8B").unwrap();
        let with = |quant| dequantized_weight_bytes(&s, &lora_training(&s, quant, None));
        // The 14336 x 4096 MLP projections in bf16.
        assert_eq!(with(Some(Quant::Nf4)), 14336 * 4096 * 2);
        assert_eq!(with(Some(Quant::Int8)), 0);
        assert_eq!(with(None), 0);
    }

    #[test]
    fn litgpt_holds_its_own_head_and_quantizes_it() {
        let s = catalog::shape("meta-llama/Llama-3.2-1B").unwrap();
        assert!(s.tie_word_embeddings);
        let head = s.vocab_size * s.hidden_size;
        let with = |framework, quant| {
            let w = lora_training_by(&s, quant, None, framework);
            (weights_bytes(&s, &w), dequantized_weight_bytes(&s, &w))
        };
        use crate::estimate::Framework::{Hf, Litgpt};
        // The tied head becomes a bf16 copy of the embedding.
        assert_eq!(with(Litgpt, None).0 - with(Hf, None).0, head * 2);
        // Under NF4 that copy is quantized, and it is the largest linear
        // dequantized while it computes.
        let (lit, hf) = (with(Litgpt, Some(Quant::Nf4)), with(Hf, Some(Quant::Nf4)));
        assert_eq!(lit.0 - hf.0, (head as f64 * 4.5 / 8.0) as u64);
        assert_eq!(lit.1, head * 2);
        assert!(hf.1 < lit.1);
    }

    #[test]
    fn bitsandbytes_versions_read_and_order() {
        let v = |t| Release::parse(t);
        assert_eq!(v("0.42.0").unwrap().to_string(), "0.42.0");
        assert_eq!(v("0.43").unwrap().to_string(), "0.43.0");
        assert_eq!(v("0.43.2.post1").unwrap().to_string(), "0.43.2");
        assert_eq!(v("0.43.0rc1").unwrap().to_string(), "0.43.0");
        assert!(v("latest").is_none() && v("1").is_none() && v("").is_none());
        assert!(keeps_4bit_inputs(v("0.43.1").unwrap()));
        assert!(keeps_4bit_inputs(v("0.41.1").unwrap()));
        assert!(!keeps_4bit_inputs(v("0.43.2").unwrap()));
        assert!(!keeps_4bit_inputs(v("0.45.0").unwrap()));
    }

    #[test]
    fn old_bitsandbytes_keeps_each_block_input_of_its_4bit_linears() {
        let s = catalog::shape("meta-llama/Llama-2-7b-hf").unwrap();
        let kept = |version: &str, quant| {
            let w = lora_training(&s, quant, Release::parse(version));
            kept_4bit_input_bytes_per_token_per_layer(&s, &w)
        };
        // Attention input, output projection input, MLP input, down
        // projection input: 4096 + 4096 + 4096 + 11008 bf16 values.
        assert_eq!(kept("0.42.0", Some(Quant::Nf4)), (3 * 4096 + 11008) * 2);
        assert_eq!(kept("0.43.2", Some(Quant::Nf4)), 0);
        // Only the 4-bit matmul did it; LLM.int8 and unquantized runs keep nothing more.
        assert_eq!(kept("0.42.0", Some(Quant::Int8)), 0);
        assert_eq!(kept("0.42.0", None), 0);
        // Unknown version: today's bitsandbytes.
        assert_eq!(kept("", Some(Quant::Nf4)), 0);
        // Phi-2's attention and MLP read one normed tensor: kept once, then
        // the output projection's and the MLP down projection's inputs.
        let phi = catalog::shape("microsoft/phi-2").unwrap();
        assert!(phi.shared_block_norm);
        let w = lora_training(&phi, Some(Quant::Nf4), Release::parse("0.42.0"));
        assert_eq!(
            kept_4bit_input_bytes_per_token_per_layer(&phi, &w),
            (2560 + 2560 + 10240) * 2
        );
    }
}
