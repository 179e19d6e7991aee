//! The linear layers of a model's blocks, as (inputs, outputs, how many):
//! what LoRA adapts and quantization compresses. Embeddings, norms and the
//! output head are not in the list: quantization libraries leave them in 16
//! bits and LoRA does not target them by default.

use crate::model::{ModelKind, ModelShape};

/// One kind of linear layer, repeated `count` times across the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Linear {
    pub inputs: u64,
    pub outputs: u64,
    pub count: u64,
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Query,
    Key,
    Value,
    Output,
    Mlp,
    Expert,
}

/// The block linears of `s`.
pub fn linears(s: &ModelShape) -> Vec<Linear> {
    let h = s.hidden_size;
    let q = s.heads * s.head_dim;
    let kv = s.kv_heads * s.head_dim;
    // Self-attention blocks: decoder layers, plus encoder layers and the
    // decoder's cross-attention for encoder-decoders.
    let attn_blocks = s.layers
        + s.encoder_layers.unwrap_or(0)
        + if s.kind == ModelKind::EncoderDecoder {
            s.layers
        } else {
            0
        };
    let mlp_blocks = s.layers + s.encoder_layers.unwrap_or(0);
    let mut out = vec![
        Linear {
            inputs: h,
            outputs: q,
            count: attn_blocks,
            role: Role::Query,
        },
        Linear {
            inputs: h,
            outputs: kv,
            count: attn_blocks,
            role: Role::Key,
        },
        Linear {
            inputs: h,
            outputs: kv,
            count: attn_blocks,
            role: Role::Value,
        },
        Linear {
            inputs: q,
            outputs: h,
            count: attn_blocks,
            role: Role::Output,
        },
    ];
    let mlp = |width: u64, count: u64, role: Role, out: &mut Vec<Linear>| {
        if s.gated_mlp || role == Role::Expert {
            out.push(Linear {
                inputs: h,
                outputs: width,
                count: 2 * count,
                role,
            });
        } else {
            out.push(Linear {
                inputs: h,
                outputs: width,
                count,
                role,
            });
        }
        out.push(Linear {
            inputs: width,
            outputs: h,
            count,
            role,
        });
    };
    match &s.moe {
        Some(moe) => {
            let moe_layers = s.layers - moe.dense_layers;
            mlp(
                moe.expert_intermediate_size,
                moe_layers * moe.experts,
                Role::Expert,
                &mut out,
            );
            if moe.shared_intermediate_size > 0 {
                mlp(
                    moe.shared_intermediate_size,
                    moe_layers,
                    Role::Mlp,
                    &mut out,
                );
            }
            if moe.dense_layers > 0 {
                mlp(
                    s.intermediate_size.max(moe.expert_intermediate_size),
                    moe.dense_layers,
                    Role::Mlp,
                    &mut out,
                );
            }
        }
        None => mlp(s.intermediate_size, mlp_blocks, Role::Mlp, &mut out),
    }
    out
}

/// Parameters of the linears (weights only).
pub fn linear_params(s: &ModelShape) -> u64 {
    linears(s)
        .iter()
        .map(|l| l.inputs * l.outputs * l.count)
        .sum()
}
