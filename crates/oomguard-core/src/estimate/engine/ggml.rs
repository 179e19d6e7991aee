//! llama.cpp's weight and cache types by name: bits per weight from ggml's
//! type table (`ggml/src/ggml.c` `type_traits`: block size and bytes per
//! block, the same table `model::gguf` reads files with), and the
//! quantization presets `llama-quantize` names (`q4_k_m`, `q5_k_s`, ...),
//! which mix types per tensor following `llama_tensor_get_type` in
//! `src/llama-quant.cpp`: the output head in q6_K, and for the `_m` presets
//! `attn_v` and `ffn_down` one type up in the layers `use_more_bits` picks
//! (the first and last eighth, and every third layer between).

use crate::model::gguf::ggml_block_layout;

/// A ggml tensor type, by its id in `enum ggml_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgmlType(pub u32);

/// 32-bit float, 4 bytes per weight.
pub const F32: GgmlType = GgmlType(0);
/// 16-bit float, 2 bytes per weight.
pub const F16: GgmlType = GgmlType(1);
/// 4-bit blocks of 32 with one scale (4.5 bits per weight).
pub const Q4_0: GgmlType = GgmlType(2);
/// 4-bit blocks of 32 with a scale and a minimum (5 bits per weight).
pub const Q4_1: GgmlType = GgmlType(3);
/// 5-bit blocks of 32 with one scale (5.5 bits per weight).
pub const Q5_0: GgmlType = GgmlType(6);
/// 5-bit blocks of 32 with a scale and a minimum (6 bits per weight).
pub const Q5_1: GgmlType = GgmlType(7);
/// 8-bit blocks of 32 with one scale (8.5 bits per weight).
pub const Q8_0: GgmlType = GgmlType(8);
/// 2-bit k-quant super-blocks of 256.
pub const Q2_K: GgmlType = GgmlType(10);
/// 3-bit k-quant super-blocks of 256.
pub const Q3_K: GgmlType = GgmlType(11);
/// 4-bit k-quant super-blocks of 256.
pub const Q4_K: GgmlType = GgmlType(12);
/// 5-bit k-quant super-blocks of 256.
pub const Q5_K: GgmlType = GgmlType(13);
/// 6-bit k-quant super-blocks of 256.
pub const Q6_K: GgmlType = GgmlType(14);
/// 4-bit non-linear blocks of 32 (i-quant).
pub const IQ4_NL: GgmlType = GgmlType(20);
/// 4-bit non-linear super-blocks of 256 (i-quant, smaller scales).
pub const IQ4_XS: GgmlType = GgmlType(23);
/// bfloat16, 2 bytes per weight.
pub const BF16: GgmlType = GgmlType(30);

impl GgmlType {
    /// Bytes of `elements` values, whole blocks (rows are whole blocks in
    /// every model here).
    pub fn bytes(self, elements: u64) -> u64 {
        let (block, bytes) = ggml_block_layout(self.0).unwrap_or((1, 2));
        elements.div_ceil(block).saturating_mul(bytes)
    }

    /// Average bits per weight of this type, block scales included.
    pub fn bits_per_weight(self) -> f64 {
        let (block, bytes) = ggml_block_layout(self.0).unwrap_or((1, 2));
        bytes as f64 * 8.0 / block as f64
    }
}

/// The types `--cache-type-k/v` accept (llama.cpp `common/arg.cpp`
/// `kv_cache_types`).
pub fn cache_type(name: &str) -> Option<GgmlType> {
    Some(match name.to_ascii_lowercase().as_str() {
        "f32" => F32,
        "f16" => F16,
        "bf16" => BF16,
        "q8_0" => Q8_0,
        "q4_0" => Q4_0,
        "q4_1" => Q4_1,
        "iq4_nl" => IQ4_NL,
        "q5_0" => Q5_0,
        "q5_1" => Q5_1,
        _ => return None,
    })
}

/// The role of a weight inside a block, as the presets treat it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorRole {
    /// The token embedding matrix (`token_embd`).
    TokenEmbd,
    /// The output (LM head) matrix (`output`).
    Output,
    /// The attention value projection (`attn_v`), kept at higher precision by some presets.
    AttnV,
    /// The MLP's down projection (`ffn_down`), kept at higher precision by some presets.
    FfnDown,
    /// The fused query-key-value projection (`attn_qkv`) of the architectures
    /// that keep one, one type up in some presets.
    AttnQkv,
    /// Every other 2-D weight of a block.
    Other,
}

/// A `llama-quantize` preset (or a plain type) as `--quant` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgufQuant {
    /// The preset's name as `--quant` and `llama-quantize` spell it (`Q4_K_M`).
    pub name: &'static str,
    base: GgmlType,
    /// Type of `attn_v` / `ffn_down` in the layers `use_more_bits` picks.
    more_bits: Option<GgmlType>,
    output: GgmlType,
    /// Type of a fused `attn_qkv` in every layer, when the preset raises it
    /// (`llama_tensor_get_type`: Q3_K_M and Q3_K_L to q4_K, Q4_K_M to q5_K,
    /// Q5_K_M to q6_K).
    qkv: Option<GgmlType>,
}

const PRESETS: &[GgufQuant] = &[
    GgufQuant {
        name: "f32",
        base: F32,
        more_bits: None,
        output: F32,
        qkv: None,
    },
    GgufQuant {
        name: "f16",
        base: F16,
        more_bits: None,
        output: F16,
        qkv: None,
    },
    GgufQuant {
        name: "bf16",
        base: BF16,
        more_bits: None,
        output: BF16,
        qkv: None,
    },
    GgufQuant {
        name: "q8_0",
        base: Q8_0,
        more_bits: None,
        output: Q8_0,
        qkv: None,
    },
    GgufQuant {
        name: "q6_k",
        base: Q6_K,
        more_bits: None,
        output: Q6_K,
        qkv: None,
    },
    GgufQuant {
        name: "q5_k_m",
        base: Q5_K,
        more_bits: Some(Q6_K),
        output: Q6_K,
        qkv: Some(Q6_K),
    },
    GgufQuant {
        name: "q5_k_s",
        base: Q5_K,
        more_bits: None,
        output: Q6_K,
        qkv: None,
    },
    GgufQuant {
        name: "q5_0",
        base: Q5_0,
        more_bits: None,
        output: Q6_K,
        qkv: None,
    },
    GgufQuant {
        name: "q5_1",
        base: Q5_1,
        more_bits: None,
        output: Q6_K,
        qkv: None,
    },
    GgufQuant {
        name: "q4_k_m",
        base: Q4_K,
        more_bits: Some(Q6_K),
        output: Q6_K,
        qkv: Some(Q5_K),
    },
    GgufQuant {
        name: "q4_k_s",
        base: Q4_K,
        more_bits: None,
        output: Q6_K,
        qkv: None,
    },
    GgufQuant {
        name: "q4_0",
        base: Q4_0,
        more_bits: None,
        output: Q6_K,
        qkv: None,
    },
    GgufQuant {
        name: "q4_1",
        base: Q4_1,
        more_bits: None,
        output: Q6_K,
        qkv: None,
    },
    GgufQuant {
        name: "iq4_xs",
        base: IQ4_XS,
        more_bits: None,
        output: Q6_K,
        qkv: None,
    },
    GgufQuant {
        name: "iq4_nl",
        base: IQ4_NL,
        more_bits: None,
        output: Q6_K,
        qkv: None,
    },
    GgufQuant {
        name: "q3_k_l",
        base: Q3_K,
        more_bits: Some(Q5_K),
        output: Q6_K,
        qkv: Some(Q4_K),
    },
    GgufQuant {
        name: "q3_k_m",
        base: Q3_K,
        more_bits: Some(Q4_K),
        output: Q6_K,
        qkv: Some(Q4_K),
    },
    GgufQuant {
        name: "q3_k_s",
        base: Q3_K,
        more_bits: None,
        output: Q6_K,
        qkv: None,
    },
    GgufQuant {
        name: "q2_k",
        base: Q2_K,
        more_bits: Some(Q3_K),
        output: Q6_K,
        qkv: None,
    },
];

impl GgufQuant {
    /// The preset named `name` (case-insensitive), or `None`.
    pub fn parse(name: &str) -> Option<GgufQuant> {
        let n = name.to_ascii_lowercase();
        PRESETS.iter().copied().find(|p| p.name == n)
    }

    /// Every name `--quant` takes for llama.cpp.
    pub fn names() -> Vec<&'static str> {
        PRESETS.iter().map(|p| p.name).collect()
    }

    /// The type of a weight with `role` in layer `layer` of `layers`.
    pub fn tensor_type(&self, role: TensorRole, layer: u64, layers: u64) -> GgmlType {
        match role {
            TensorRole::Output => self.output,
            TensorRole::AttnQkv => self.qkv.unwrap_or(self.base),
            TensorRole::AttnV | TensorRole::FfnDown => match self.more_bits {
                Some(t) if use_more_bits(layer, layers) => t,
                _ => self.base,
            },
            _ => self.base,
        }
    }
}

/// llama.cpp's `use_more_bits(i, n)`: the first and last eighth of the
/// layers, and every third layer between them.
pub fn use_more_bits(i: u64, n: u64) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_per_weight_follow_ggmls_blocks() {
        assert_eq!(Q4_0.bits_per_weight(), 4.5);
        assert_eq!(Q8_0.bits_per_weight(), 8.5);
        assert_eq!(Q4_K.bits_per_weight(), 4.5);
        assert_eq!(Q6_K.bits_per_weight(), 6.5625);
        assert_eq!(F16.bits_per_weight(), 16.0);
    }

    #[test]
    fn presets_parse_and_unknown_names_do_not() {
        assert_eq!(GgufQuant::parse("Q4_K_M").unwrap().name, "q4_k_m");
        assert!(GgufQuant::parse("q7_z").is_none());
        let q = GgufQuant::parse("q4_k_m").unwrap();
        assert_eq!(q.tensor_type(TensorRole::Output, 0, 32), Q6_K);
        assert_eq!(q.tensor_type(TensorRole::AttnV, 0, 32), Q6_K);
        assert_eq!(q.tensor_type(TensorRole::AttnV, 4, 32), Q4_K);
        // 32 layers: 4 + 4 at the ends, and every third of the 24 between.
        assert_eq!((0..32).filter(|i| use_more_bits(*i, 32)).count(), 16);
    }
}
