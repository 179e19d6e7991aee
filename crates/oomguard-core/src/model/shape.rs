//! The shape of a model as memory estimation needs it, read from a Hugging
//! Face `config.json` (any of the key spellings the families use), with the
//! parameter count computed from that shape when no checkpoint header gives
//! it exactly.
//!
//! Family rules (which projections carry biases, whether the MLP is gated,
//! whether embeddings are tied, how positions are stored) come from the
//! families' modeling code in Hugging Face transformers; each rule names its
//! family. An unknown `model_type` falls back to the generic decoder rule and
//! says so in `notes`.

use super::ModelError;
use serde::Serialize;
use serde_json::Value;

/// Storage type of weights or activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// 32-bit float, 4 bytes per value.
    Fp32,
    /// 16-bit float (IEEE half), 2 bytes per value.
    Fp16,
    /// bfloat16, 2 bytes per value.
    Bf16,
}

impl Dtype {
    /// Bytes per value.
    pub fn bytes(self) -> u64 {
        match self {
            Dtype::Fp32 => 4,
            Dtype::Fp16 | Dtype::Bf16 => 2,
        }
    }

    /// `torch_dtype` spellings of a config, and safetensors dtypes.
    pub fn from_name(name: &str) -> Option<Dtype> {
        match name.to_ascii_lowercase().as_str() {
            "float32" | "fp32" | "f32" | "float" => Some(Dtype::Fp32),
            "float16" | "fp16" | "f16" | "half" => Some(Dtype::Fp16),
            "bfloat16" | "bf16" => Some(Dtype::Bf16),
            _ => None,
        }
    }

    /// The name as the output and `--dtype` spell it (`fp32`, `fp16`, `bf16`).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Fp32 => "fp32",
            Dtype::Fp16 => "fp16",
            Dtype::Bf16 => "bf16",
        }
    }
}

/// How the model is built, as far as memory is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// GPT-style causal language model: generates, keeps a KV cache.
    Decoder,
    /// BERT-style encoder: no generation, no KV cache.
    Encoder,
    /// T5-style: an encoder and a decoder with cross-attention.
    EncoderDecoder,
    /// ViT: an encoder over image patches; sequence length is fixed.
    Vision,
}

/// Mixture-of-experts layout: all experts are held in memory, few are used
/// per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MoeShape {
    /// Experts per MoE layer, all held in memory.
    pub experts: u64,
    /// Experts each token is routed to.
    pub experts_per_token: u64,
    /// Width of one expert's MLP (its intermediate size).
    pub expert_intermediate_size: u64,
    /// Width of the always-on shared expert MLP(s), 0 when there is none.
    pub shared_intermediate_size: u64,
    /// Layers that are dense (DeepSeek-MoE's first layer).
    pub dense_layers: u64,
}

/// How a local-attention layer limits the keys it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalAttentionKind {
    /// Each token sees the last `window` tokens (Mistral, Gemma 2/3, Qwen2
    /// with `use_sliding_window`).
    Sliding,
    /// Tokens see only their own chunk of `window` tokens (Llama 4's
    /// `attention_chunk_size`).
    Chunked,
}

impl LocalAttentionKind {
    /// The kind as the output spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            LocalAttentionKind::Sliding => "sliding-window",
            LocalAttentionKind::Chunked => "chunked",
        }
    }
}

/// The layers whose attention is local: they cache at most `window` tokens
/// per sequence; the model's other layers attend (and cache) globally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LocalAttention {
    /// Whether the window slides or the sequence is cut into chunks.
    pub kind: LocalAttentionKind,
    /// Tokens each local layer attends to and caches, per sequence.
    pub window: u64,
    /// How many of the decoder layers are local.
    pub layers: u64,
}

/// Where a GGUF file's bytes sit, as llama.cpp places them: the token
/// embeddings stay in host memory, each repeating block goes to the GPU
/// while `-ngl` lasts, and the output head goes last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GgufLayout {
    /// Bytes of the token embeddings (`token_embd`), kept in host memory.
    pub token_embd_bytes: u64,
    /// Bytes of the output head (`output`), offloaded last.
    pub output_bytes: u64,
    /// Bytes of `blk.N.*`, by N.
    pub layer_bytes: Vec<u64>,
    /// Everything else (final norm, rope factors).
    pub other_bytes: u64,
}

/// Rotary position embedding, as serving engines cache it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rotary {
    /// Dimensions rotated per attention head.
    pub dims: u64,
    /// How many cos/sin tables the model builds.
    pub tables: u64,
}

/// A model's shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelShape {
    /// The name the model was resolved from (a repo id, a catalog name or a path).
    pub id: String,
    /// The config's `model_type`.
    pub architecture: String,
    /// What kind of model it is (decoder, encoder, vision...).
    pub kind: ModelKind,
    /// Total parameters (exact from a checkpoint, else computed).
    pub params: u64,
    /// Decoder layers (encoder layers for encoders).
    pub layers: u64,
    /// Encoder layers of an encoder-decoder model.
    pub encoder_layers: Option<u64>,
    /// Width of the hidden states (`hidden_size`).
    pub hidden_size: u64,
    /// Attention (query) heads per layer.
    pub heads: u64,
    /// Key/value heads per layer (fewer than `heads` with grouped-query attention).
    pub kv_heads: u64,
    /// Width of one attention head.
    pub head_dim: u64,
    /// Width of the MLP's intermediate layer.
    pub intermediate_size: u64,
    /// Tokens in the vocabulary.
    pub vocab_size: u64,
    /// The longest sequence, in tokens, the model takes; `None` when the config does not say.
    pub max_position_embeddings: Option<u64>,
    /// The output head shares the token embedding matrix.
    pub tie_word_embeddings: bool,
    /// The MLP is gated (SwiGLU/GeGLU: three matrices instead of two).
    pub gated_mlp: bool,
    /// Local (sliding-window or chunked) attention layers, when the model
    /// has any; `None` is global attention in every layer.
    pub local_attention: Option<LocalAttention>,
    /// The mixture-of-experts layout; `None` for a dense model.
    pub moe: Option<MoeShape>,
    /// Tokens per image (ViT).
    pub image_tokens: Option<u64>,
    /// Weights' dtype as the checkpoint stores them, when known.
    pub checkpoint_dtype: Option<Dtype>,
    /// Whether `params` came from a checkpoint header (exact).
    pub params_exact: bool,
    /// Parameters held in linear layers (the ones quantization and LoRA act on).
    pub linear_params: u64,
    /// Training uses dropout (BERT-era models): masks are kept for backward.
    pub dropout: bool,
    /// Dropout on the attention probabilities: the config's
    /// `attention_dropout` / `attn_pdrop` / `attention_probs_dropout_prob`
    /// above 0, else the family's habit.
    pub attention_dropout: bool,
    /// Eager attention computes its softmax in fp32 when the model runs in
    /// half precision, then casts back (`softmax(..., dtype=torch.float32)`
    /// in the Llama, Mistral, Qwen, Gemma, GPT-NeoX, Falcon, OPT, BLOOM, T5
    /// and StarCoder attention code); BERT, GPT-2 and ViT stay in the
    /// model's dtype.
    pub softmax_in_fp32: bool,
    /// The plain MLP's activation is the tanh GELU written out in Python
    /// (transformers' `gelu_new` / `gelu_fast`), whose temporaries are
    /// tensors of the intermediate width: the config's `hidden_act` /
    /// `activation_function`, else its class default (see
    /// `python_tanh_gelu`).
    pub python_tanh_gelu: bool,
    /// The block is parallel with one norm: attention and MLP read the same
    /// normed tensor (see `shared_block_norm`), so what either keeps of its
    /// input is one tensor, and the block has one norm input to save.
    pub shared_block_norm: bool,
    /// Bytes of the weights as a GGUF file stores them (quantized), when the
    /// shape came from one.
    pub gguf_weights_bytes: Option<u64>,
    /// Multi-head latent attention (DeepSeek V2/V3): values cached per token
    /// and layer, `kv_lora_rank + qk_rope_head_dim`, one latent shared by
    /// all heads instead of K and V per KV head.
    pub mla_cache_width: Option<u64>,
    /// Parameters of a vision encoder and its projector that the
    /// checkpoint carries beside the language model (Gemma 3's SigLIP),
    /// from the config's `vision_config`; 0 for text-only models. Serving
    /// engines load them; `params` counts the language model only.
    pub vision_params: u64,
    /// The checkpoint is a multimodal "prefix LM" whose image tokens attend
    /// to each other both ways: the config's `is_mm_prefix_lm`, else a
    /// top-level `model_type` among bagel, gemma3, molmo2 and paligemma
    /// (vLLM 0.19 `ModelConfig.is_mm_prefix_lm`, vllm/config/model.py).
    /// vLLM's FlashAttention backend cannot mask that, so it serves these
    /// with its Triton backend. A text-only Gemma 3 (`gemma3_text`) is not
    /// one.
    #[serde(skip)]
    pub mm_prefix_lm: bool,
    /// Rotary position embedding: the dimensions rotated per head, and how
    /// many cos/sin tables the model builds (Gemma 3: one for its local
    /// and one for its global layers). `None` for learned, ALiBi or
    /// relative positions.
    pub rotary: Option<Rotary>,
    /// The checkpoint stores its linears in fp8 (`quantization_config`
    /// with `quant_method` fp8: DeepSeek V3/R1, RedHat's fp8 releases).
    pub checkpoint_fp8: bool,
    /// Per-block bytes of a GGUF file.
    pub gguf_layout: Option<GgufLayout>,
    /// Caveats about the estimate for this model, in sentences for the user.
    pub notes: Vec<String>,
}

/// Reads `key` from the first of the spellings that is present.
/// Whether the MLP's activation is `gelu_new` or `gelu_fast`, the tanh
/// GELU that transformers' `NewGELUActivation` / `FastGELUActivation` write
/// out as Python arithmetic (src/transformers/activations.py), so each step
/// allocates a tensor of the intermediate width. The config's
/// `hidden_act` / `activation_function` decides; without one, the config
/// class's default: `gelu_new` for GPT-2, GPT-J, GPT-Neo, CodeGen and ALBERT
/// (`AlbertConfig(hidden_act="gelu_new")`). Phi also defaults to `gelu_new`
/// in transformers, but its published peaks come from LitGPT, which runs
/// the native tanh GELU, so it stays native here.
fn python_tanh_gelu(model_type: &str, cfg: &Value) -> bool {
    if model_type.starts_with("phi") {
        return false;
    }
    let named = ["hidden_act", "activation_function"]
        .iter()
        .find_map(|k| cfg.get(*k).and_then(Value::as_str));
    match named {
        Some(act) => matches!(act, "gelu_new" | "gelu_fast"),
        None => matches!(
            model_type,
            "gpt2" | "gptj" | "gpt_neo" | "codegen" | "albert"
        ),
    }
}

/// Whether attention and MLP run side by side on one normed input:
/// transformers' `PhiDecoderLayer`, `GPTJBlock` and `CodeGenBlock` apply one
/// norm (`input_layernorm` / `ln_1`) and pass its output to both, as
/// LitGPT's `Block` does for phi-1.5/phi-2 and Falcon-7B
/// (`shared_attention_norm=True` in litgpt/config.py); Falcon does so when
/// `parallel_attn` holds and `new_decoder_architecture` does not (Falcon-40B's
/// new architecture gives each its own norm, `ln_attn` and `ln_mlp`).
/// GPT-NeoX's parallel residual has two norms and is not one of them; Phi-3
/// is sequential.
fn shared_block_norm(model_type: &str, cfg: &Value) -> bool {
    match model_type {
        "phi" | "gptj" | "codegen" => true,
        "falcon" | "RefinedWeb" | "RefinedWebModel" => {
            get_bool(cfg, "parallel_attn").unwrap_or(true)
                && !get_bool(cfg, "new_decoder_architecture").unwrap_or(false)
        }
        _ => false,
    }
}

fn get_u64(cfg: &Value, keys: &[&str]) -> Option<u64> {
    keys.iter().find_map(|k| {
        let v = cfg.get(*k)?;
        v.as_u64().or_else(|| {
            v.as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                .map(|f| f as u64)
        })
    })
}

fn get_bool(cfg: &Value, key: &str) -> Option<bool> {
    cfg.get(key)?.as_bool()
}

fn require(cfg: &Value, keys: &[&str], input: &str) -> Result<u64, ModelError> {
    match get_u64(cfg, keys) {
        Some(0) => Err(ModelError::malformed(
            input,
            format!("config field `{}` is 0", keys[0]),
        )),
        Some(v) => Ok(v),
        None => {
            let present = keys.iter().find(|k| cfg.get(**k).is_some());
            Err(ModelError::malformed(
                input,
                match present {
                    Some(k) => format!("config field `{k}` is not a whole number: {}", cfg[*k]),
                    None => format!("config has no `{}` (nor {})", keys[0], keys[1..].join(", ")),
                },
            ))
        }
    }
}

/// Builds a shape from a parsed `config.json`.
pub fn from_config(id: &str, cfg: &Value, input: &str) -> Result<ModelShape, ModelError> {
    if !cfg.is_object() {
        return Err(ModelError::malformed(
            input,
            "config.json is not a JSON object",
        ));
    }
    // Multimodal wrappers (Gemma 3) keep the language model under text_config.
    let outer_dtype = cfg
        .get("torch_dtype")
        .and_then(Value::as_str)
        .and_then(Dtype::from_name);
    let outer_cfg = cfg;
    let cfg = match cfg.get("text_config") {
        Some(tc) if tc.is_object() && cfg.get("hidden_size").is_none() => tc,
        _ => cfg,
    };
    let model_type = cfg
        .get("model_type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut notes = Vec::new();
    let family = family_of(&model_type);
    if family == Family::Generic {
        notes.push(format!(
            "architecture {:?} is not one oomguard models explicitly: estimated as a generic decoder from the config's sizes",
            if model_type.is_empty() { "(none)" } else { &model_type }
        ));
    }
    let hidden = require(
        cfg,
        &["hidden_size", "n_embd", "d_model", "dim", "n_embed"],
        input,
    )?;
    let layers = require(
        cfg,
        &["num_hidden_layers", "n_layer", "num_layers", "n_layers"],
        input,
    )?;
    let heads = require(
        cfg,
        &["num_attention_heads", "n_head", "num_heads", "n_heads"],
        input,
    )?;
    let vocab = if family == Family::Vit {
        0
    } else {
        require(cfg, &["vocab_size", "n_vocab", "padded_vocab_size"], input)?
    };
    if hidden % heads != 0 && get_u64(cfg, &["head_dim", "d_kv"]).is_none() {
        return Err(ModelError::malformed(
            input,
            format!("hidden size {hidden} is not divisible by {heads} heads and the config gives no head_dim"),
        ));
    }
    // Sizes far beyond any model are a broken config, and would overflow
    // the parameter arithmetic.
    for (name, value, limit) in [
        ("hidden_size", hidden, 1u64 << 17),
        ("num_hidden_layers", layers, 1 << 12),
        ("num_attention_heads", heads, 1 << 12),
        ("vocab_size", vocab, 1 << 23),
    ] {
        if value > limit {
            return Err(ModelError::malformed(
                input,
                format!(
                    "config field `{name}` is {value}, beyond any real model (at most {limit})"
                ),
            ));
        }
    }
    let head_dim = get_u64(cfg, &["head_dim", "d_kv"]).unwrap_or(hidden / heads);
    // Multi-query (StarCoder, Falcon-7B) keeps one K/V head.
    let multi_query = get_bool(cfg, "multi_query").unwrap_or(false)
        && !get_bool(cfg, "new_decoder_architecture").unwrap_or(false);
    let kv_heads = if multi_query {
        1
    } else {
        get_u64(cfg, &["num_key_value_heads", "num_kv_heads", "n_head_kv"]).unwrap_or(heads)
    };
    if kv_heads == 0 || kv_heads > heads {
        return Err(ModelError::malformed(
            input,
            format!("config gives {kv_heads} key/value heads for {heads} attention heads"),
        ));
    }
    let intermediate = get_u64(
        cfg,
        &[
            "intermediate_size",
            "n_inner",
            "d_ff",
            "ffn_dim",
            "hidden_dim",
            "ffn_hidden_size",
        ],
    )
    .unwrap_or(4 * hidden);
    if intermediate > 1 << 20 || head_dim > 1 << 12 {
        return Err(ModelError::malformed(
            input,
            format!("config gives an MLP of {intermediate} or a head of {head_dim}, beyond any real model"),
        ));
    }
    let max_pos = get_u64(
        cfg,
        &[
            "max_position_embeddings",
            "n_positions",
            "n_ctx",
            "seq_length",
            "max_sequence_length",
        ],
    );
    let gated = match family {
        Family::T5 => cfg
            .get("feed_forward_proj")
            .and_then(Value::as_str)
            .is_some_and(|p| p.starts_with("gated")),
        f => f.gated_mlp(),
    };
    let tie = get_bool(cfg, "tie_word_embeddings").unwrap_or(family.ties_by_default());
    let local_attention = local_attention(cfg, &model_type, layers);
    let rotary_positions = rotary(cfg, family, &model_type, head_dim);
    let moe = moe_shape(cfg, layers);
    if let Some(m) = &moe {
        if m.experts > 1 << 10
            || m.expert_intermediate_size > 1 << 20
            || m.shared_intermediate_size > 1 << 22
        {
            return Err(ModelError::malformed(
                input,
                format!(
                    "config gives {} experts of width {}, beyond any real model",
                    m.experts, m.expert_intermediate_size
                ),
            ));
        }
    }
    let checkpoint_dtype = cfg
        .get("torch_dtype")
        .or_else(|| cfg.get("dtype"))
        .and_then(Value::as_str)
        .and_then(Dtype::from_name)
        .or(outer_dtype);
    let (kind, encoder_layers) = match family {
        Family::Bert | Family::DistilBert => (ModelKind::Encoder, None),
        Family::Vit => (ModelKind::Vision, None),
        Family::T5 => (ModelKind::EncoderDecoder, Some(layers)),
        _ => (ModelKind::Decoder, None),
    };
    let decoder_layers = if family == Family::T5 {
        get_u64(cfg, &["num_decoder_layers"]).unwrap_or(layers)
    } else {
        layers
    };
    let image_tokens = if family == Family::Vit {
        let image = get_u64(cfg, &["image_size"]).unwrap_or(224);
        // ViViT cuts a clip into tubelets (frames x height x width), ViT an
        // image into patches; one CLS token each.
        let tubelet: Vec<u64> = cfg
            .get("tubelet_size")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        match (tubelet.as_slice(), get_u64(cfg, &["num_frames"])) {
            ([t, ph, pw], Some(frames)) => {
                Some((frames / t.max(&1)) * (image / ph.max(&1)) * (image / pw.max(&1)) + 1)
            }
            _ => {
                let patch = get_u64(cfg, &["patch_size"]).unwrap_or(16).max(1);
                Some((image / patch) * (image / patch) + 1)
            }
        }
    } else {
        None
    };
    let python_gelu = python_tanh_gelu(&model_type, cfg);
    let shared_norm = shared_block_norm(&model_type, cfg);
    let mut shape = ModelShape {
        id: id.to_string(),
        architecture: model_type,
        kind,
        params: 0,
        layers: decoder_layers,
        encoder_layers,
        hidden_size: hidden,
        heads,
        kv_heads,
        head_dim,
        intermediate_size: intermediate,
        vocab_size: vocab,
        max_position_embeddings: if family == Family::Vit {
            image_tokens
        } else {
            max_pos
        },
        tie_word_embeddings: tie,
        gated_mlp: gated,
        local_attention,
        moe,
        image_tokens,
        checkpoint_dtype,
        params_exact: false,
        linear_params: 0,
        dropout: family.trains_with_dropout(),
        attention_dropout: match cfg
            .get("attention_dropout")
            .or_else(|| cfg.get("attn_pdrop"))
            .or_else(|| cfg.get("attention_probs_dropout_prob"))
            .or_else(|| cfg.get("attention_dropout_prob"))
            .and_then(Value::as_f64)
        {
            Some(p) => p > 0.0,
            None => family.trains_with_dropout(),
        },
        softmax_in_fp32: !matches!(
            family,
            Family::Bert | Family::DistilBert | Family::Gpt2 | Family::Vit
        ),
        python_tanh_gelu: python_gelu,
        shared_block_norm: shared_norm,
        gguf_weights_bytes: None,
        gguf_layout: None,
        checkpoint_fp8: cfg
            .get("quantization_config")
            .and_then(|q| q.get("quant_method"))
            .and_then(Value::as_str)
            == Some("fp8"),
        rotary: rotary_positions,
        vision_params: vision_params(outer_cfg, hidden),
        mm_prefix_lm: mm_prefix_lm(outer_cfg),
        mla_cache_width: get_u64(cfg, &["kv_lora_rank"])
            .map(|r| r + get_u64(cfg, &["qk_rope_head_dim"]).unwrap_or(0)),
        notes,
    };
    let counts = count_params(&shape, family, cfg);
    shape.params = counts.total;
    shape.linear_params = counts.linear;
    Ok(shape)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// BERT, RoBERTa, ELECTRA: post-norm encoder, learned positions, biases.
    Bert,
    /// DistilBERT: BERT without token types or pooler.
    DistilBert,
    /// GPT-2: learned positions, biases, tied head, 4h GELU MLP.
    Gpt2,
    /// GPT-NeoX / Pythia: rotary, biases, untied head.
    GptNeox,
    /// StarCoder: GPT-2 layout with multi-query attention.
    GptBigCode,
    /// OPT: learned positions (+2 offset), biases, tied head.
    Opt,
    /// BLOOM: ALiBi, biases, tied head.
    Bloom,
    /// Falcon: no biases, 4h GELU MLP, tied head.
    Falcon,
    /// Llama and its descendants: RMSNorm, gated SiLU MLP, no biases.
    Llama,
    /// Qwen2: Llama layout with biases on q, k, v.
    Qwen2,
    /// Gemma: Llama layout, tied head.
    Gemma,
    /// T5: relative positions, encoder-decoder.
    T5,
    /// ViT: patch embedding, biases, GELU MLP.
    Vit,
    Generic,
}

impl Family {
    fn gated_mlp(self) -> bool {
        matches!(
            self,
            Family::Llama | Family::Qwen2 | Family::Gemma | Family::Generic
        )
    }

    fn ties_by_default(self) -> bool {
        // transformers' PretrainedConfig defaults tie_word_embeddings to true;
        // Llama-family configs set it false unless stated.
        matches!(
            self,
            Family::Bert
                | Family::DistilBert
                | Family::Gpt2
                | Family::GptBigCode
                | Family::Opt
                | Family::Bloom
                | Family::Falcon
                | Family::Gemma
                | Family::T5
        )
    }

    fn trains_with_dropout(self) -> bool {
        matches!(
            self,
            Family::Bert
                | Family::DistilBert
                | Family::Gpt2
                | Family::GptBigCode
                | Family::Opt
                | Family::T5
                | Family::Vit
        )
    }
}

fn family_of(model_type: &str) -> Family {
    match model_type {
        "bert" | "roberta" | "xlm-roberta" | "electra" | "camembert" | "deberta" | "deberta-v2"
        | "albert" => Family::Bert,
        "distilbert" => Family::DistilBert,
        "gpt2" => Family::Gpt2,
        "gpt_neox" | "gpt_neox_japanese" | "phi" => Family::GptNeox,
        "gpt_bigcode" => Family::GptBigCode,
        "opt" => Family::Opt,
        "bloom" => Family::Bloom,
        "falcon" | "RefinedWeb" | "RefinedWebModel" => Family::Falcon,
        "llama" | "mistral" | "mixtral" | "qwen3" | "qwen3_moe" | "phi3" | "deepseek"
        | "deepseek_v2" | "deepseek_v3" | "llama4" | "llama4_text" | "olmo" | "olmo2"
        | "granite" | "yi" | "internlm2" | "stablelm" | "cohere" => Family::Llama,
        "qwen2" | "qwen2_moe" => Family::Qwen2,
        "gemma" | "gemma2" | "gemma3" | "gemma3_text" => Family::Gemma,
        "t5" | "mt5" | "umt5" => Family::T5,
        "vit" | "deit" | "vivit" => Family::Vit,
        _ => Family::Generic,
    }
}

/// Which layers attend locally, following each family's configuration
/// class in transformers:
///
/// - an explicit `layer_types` list (written by recent transformers for
///   Gemma 2/3, Qwen 2/3, Cohere 2, GPT-OSS, Llama 4) counts its
///   `sliding_attention` and `chunked_attention` entries;
/// - Gemma 2 (configuration_gemma2.py): layer i slides when (i+1) % 2 != 0,
///   i.e. every other layer, starting with the first;
/// - Gemma 3 and Cohere 2 (configuration_gemma3.py, configuration_cohere2.py):
///   layer i slides when (i+1) % `sliding_window_pattern` != 0 (Gemma 3: 6,
///   five local layers to one global; Cohere 2: 4);
/// - Qwen2/Qwen3 and their MoE variants (configuration_qwen2.py): a window
///   only when `use_sliding_window` is true, and then for layers
///   i >= `max_window_layers`;
/// - Llama 4 (configuration_llama4.py): `attention_chunk_size` chunks every
///   layer except each `no_rope_layer_interval`-th (default 4);
/// - everyone else with a `sliding_window` (Mistral, Phi-3, Starcoder2):
///   every layer slides, as their attention modules pass the window to all
///   layers.
///
/// A window at least as long as the model's maximum length changes nothing
/// and is dropped.
fn local_attention(cfg: &Value, model_type: &str, layers: u64) -> Option<LocalAttention> {
    let window = get_u64(cfg, &["sliding_window"]);
    let chunk = get_u64(cfg, &["attention_chunk_size"]);
    let count = |pred: &dyn Fn(u64) -> bool| (0..layers).filter(|i| pred(*i)).count() as u64;
    let (kind, window, local_layers) =
        if let Some(types) = cfg.get("layer_types").and_then(Value::as_array) {
            let n = |name: &str| types.iter().filter(|t| t.as_str() == Some(name)).count() as u64;
            let (sliding, chunked) = (n("sliding_attention"), n("chunked_attention"));
            if chunked > 0 {
                (LocalAttentionKind::Chunked, chunk?, chunked.min(layers))
            } else {
                (LocalAttentionKind::Sliding, window?, sliding.min(layers))
            }
        } else if model_type.starts_with("llama4") {
            let interval = get_u64(cfg, &["no_rope_layer_interval"])
                .unwrap_or(4)
                .max(1);
            let chunked = match cfg.get("no_rope_layers").and_then(Value::as_array) {
                Some(flags) => flags.iter().filter(|f| f.as_u64() == Some(1)).count() as u64,
                None => count(&|i| (i + 1) % interval != 0),
            };
            (LocalAttentionKind::Chunked, chunk?, chunked.min(layers))
        } else if model_type.starts_with("gemma2") {
            (
                LocalAttentionKind::Sliding,
                window?,
                count(&|i| (i + 1) % 2 != 0),
            )
        } else if model_type.starts_with("gemma3") || model_type.starts_with("cohere2") {
            let default = if model_type.starts_with("cohere2") {
                4
            } else {
                6
            };
            let pattern = get_u64(cfg, &["sliding_window_pattern"])
                .unwrap_or(default)
                .max(1);
            (
                LocalAttentionKind::Sliding,
                window?,
                count(&|i| (i + 1) % pattern != 0),
            )
        } else if model_type.starts_with("qwen2") || model_type.starts_with("qwen3") {
            if get_bool(cfg, "use_sliding_window") != Some(true) {
                return None;
            }
            let first = get_u64(cfg, &["max_window_layers"]).unwrap_or(0);
            (
                LocalAttentionKind::Sliding,
                window?,
                layers.saturating_sub(first),
            )
        } else {
            if get_bool(cfg, "use_sliding_window") == Some(false) {
                return None;
            }
            (LocalAttentionKind::Sliding, window?, layers)
        };
    let max_len = get_u64(cfg, &["max_position_embeddings"]);
    if local_layers == 0 || window == 0 || max_len.is_some_and(|m| window >= m) {
        return None;
    }
    Some(LocalAttention {
        kind,
        window,
        layers: local_layers,
    })
}

/// Rotary dimensions per head: all of `head_dim`, or the share
/// `partial_rotary_factor` / `rotary_pct` gives (Phi, GPT-NeoX), or
/// DeepSeek's `qk_rope_head_dim`; families with learned, ALiBi or
/// relative positions have none.
fn rotary(cfg: &Value, family: Family, model_type: &str, head_dim: u64) -> Option<Rotary> {
    if matches!(
        family,
        Family::Bert
            | Family::DistilBert
            | Family::Gpt2
            | Family::GptBigCode
            | Family::Opt
            | Family::Bloom
            | Family::T5
            | Family::Vit
    ) {
        return None;
    }
    let share = cfg
        .get("partial_rotary_factor")
        .or_else(|| cfg.get("rotary_pct"))
        .and_then(Value::as_f64)
        .filter(|f| *f > 0.0 && *f <= 1.0)
        .unwrap_or(1.0);
    let dims = get_u64(cfg, &["qk_rope_head_dim"]).unwrap_or((head_dim as f64 * share) as u64);
    let tables = if model_type.starts_with("gemma3") {
        2
    } else {
        1
    };
    Some(Rotary { dims, tables })
}

/// Parameters of a ViT/SigLIP-style `vision_config` (pre-norm blocks with
/// biased q, k, v, o and a two-layer MLP, two LayerNorms each; patch and
/// position embeddings; a final LayerNorm) and of a linear projector to
/// the language model's width (Gemma 3's `mm_input_projection`, with its
/// RMSNorm).
fn vision_params(cfg: &Value, text_hidden: u64) -> u64 {
    let Some(v) = cfg.get("vision_config").filter(|v| v.is_object()) else {
        return 0;
    };
    let (Some(h), Some(layers)) = (
        get_u64(v, &["hidden_size"]),
        get_u64(v, &["num_hidden_layers"]),
    ) else {
        return 0;
    };
    if h > 1 << 14 || layers > 1 << 8 {
        return 0;
    }
    let i = get_u64(v, &["intermediate_size"])
        .unwrap_or(4 * h)
        .min(1 << 16);
    let patch = get_u64(v, &["patch_size"]).unwrap_or(14).clamp(1, 64);
    let image = get_u64(v, &["image_size"]).unwrap_or(224).min(1 << 12);
    let channels = get_u64(v, &["num_channels"]).unwrap_or(3).min(16);
    let block = 4 * (h * h + h) + 2 * h * i + i + h + 4 * h;
    let positions = (image / patch) * (image / patch);
    let embed = channels * patch * patch * h + h + positions * h;
    layers * block + embed + 2 * h + h * text_hidden + h
}

/// Whether a (top-level) config is a multimodal prefix LM as vLLM 0.19
/// decides it (`ModelConfig.is_mm_prefix_lm`): the config's own
/// `is_mm_prefix_lm`, else its `model_type` in vLLM's list.
fn mm_prefix_lm(cfg: &Value) -> bool {
    if let Some(flag) = cfg.get("is_mm_prefix_lm").and_then(Value::as_bool) {
        return flag;
    }
    matches!(
        cfg.get("model_type").and_then(Value::as_str),
        Some("bagel" | "gemma3" | "molmo2" | "paligemma")
    )
}

fn moe_shape(cfg: &Value, layers: u64) -> Option<MoeShape> {
    let experts = get_u64(
        cfg,
        &[
            "num_local_experts",
            "num_experts",
            "n_routed_experts",
            "moe_num_experts",
        ],
    )?;
    if experts <= 1 {
        return None;
    }
    let per_token = get_u64(cfg, &["num_experts_per_tok", "moe_top_k", "top_k"]).unwrap_or(2);
    let expert_i = get_u64(cfg, &["moe_intermediate_size", "intermediate_size"]).unwrap_or(0);
    // Qwen-MoE: one shared expert of `shared_expert_intermediate_size`;
    // DeepSeek-MoE: `n_shared_experts` of `moe_intermediate_size` each.
    let shared = get_u64(cfg, &["shared_expert_intermediate_size"])
        .or_else(|| Some(get_u64(cfg, &["n_shared_experts"])? * expert_i))
        .unwrap_or(0);
    let dense_layers = get_u64(cfg, &["first_k_dense_replace"])
        .unwrap_or(0)
        .min(layers);
    // Llama 4 adds one shared expert as wide as a routed one
    // (modeling_llama4.py, Llama4TextMoe.shared_expert).
    let llama4 = cfg
        .get("model_type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.starts_with("llama4"));
    let shared = if llama4 && shared == 0 {
        expert_i
    } else {
        shared
    };
    Some(MoeShape {
        experts,
        experts_per_token: per_token.min(experts),
        expert_intermediate_size: expert_i,
        shared_intermediate_size: shared,
        dense_layers,
    })
}

struct ParamCounts {
    total: u64,
    linear: u64,
}

/// Parameter count from the shape, family by family. Checked against the
/// checkpoints' published totals in the tests below.
fn count_params(s: &ModelShape, family: Family, cfg: &Value) -> ParamCounts {
    let h = s.hidden_size;
    let i = s.intermediate_size;
    let d = s.head_dim;
    let q_out = s.heads * d;
    let kv_out = s.kv_heads * d;
    let biased = matches!(
        family,
        Family::Bert
            | Family::DistilBert
            | Family::Gpt2
            | Family::GptNeox
            | Family::GptBigCode
            | Family::Opt
            | Family::Bloom
            | Family::Vit
    );
    let b = |n: u64| if biased { n } else { 0 };
    // Attention: q, k, v, o; multi-head latent attention (DeepSeek V2/V3)
    // projects q (optionally through a low-rank q_lora_rank), then one
    // shared latent kv_a (kv_lora_rank + rope dims), expanded per head by
    // kv_b into the no-rope key and value parts (modeling_deepseek.py).
    let mut attn = match get_u64(cfg, &["kv_lora_rank"]) {
        Some(kv_rank) => {
            let rope = get_u64(cfg, &["qk_rope_head_dim"]).unwrap_or(0);
            let nope = get_u64(cfg, &["qk_nope_head_dim"]).unwrap_or(d.saturating_sub(rope));
            let v = get_u64(cfg, &["v_head_dim"]).unwrap_or(nope);
            let q_width = s.heads * (nope + rope);
            let q = match get_u64(cfg, &["q_lora_rank"]) {
                Some(r) => h * r + r + r * q_width,
                None => h * q_width,
            };
            q + h * (kv_rank + rope) + kv_rank + kv_rank * s.heads * (nope + v) + s.heads * v * h
        }
        None => h * q_out + 2 * h * kv_out + q_out * h + b(q_out + 2 * kv_out + h),
    };
    if family == Family::Qwen2 {
        attn += q_out + 2 * kv_out;
    }
    if family == Family::Falcon && get_bool(cfg, "bias").unwrap_or(false) {
        attn += q_out + 2 * kv_out + h;
    }
    let mlp_dense = |width: u64, gated: bool| -> u64 {
        if gated {
            3 * h * width
        } else {
            2 * h * width + b(width + h)
        }
    };
    // Norms: LayerNorm has weight and bias, RMSNorm a weight.
    let norm = if matches!(
        family,
        Family::Llama | Family::Qwen2 | Family::Gemma | Family::T5 | Family::Generic
    ) {
        h
    } else {
        2 * h
    };
    // Gemma 2/3 norm before and after each block: four per layer. Falcon-7B's
    // parallel block shares one norm; Falcon-40B's new architecture has two.
    let falcon_parallel = family == Family::Falcon
        && get_bool(cfg, "parallel_attn").unwrap_or(true)
        && !get_bool(cfg, "new_decoder_architecture").unwrap_or(false);
    let norms_per_layer =
        if s.architecture.starts_with("gemma2") || s.architecture.starts_with("gemma3") {
            4
        } else if falcon_parallel {
            1
        } else {
            2
        };
    // Qwen3 and Gemma 3 normalize q and k per head.
    let qk_norm = if s.architecture.starts_with("qwen3") || s.architecture.starts_with("gemma3") {
        2 * d
    } else {
        0
    };
    let (layer_linear, layer_other) = match &s.moe {
        Some(moe) => {
            let experts = moe.experts * 3 * h * moe.expert_intermediate_size;
            let shared = if moe.shared_intermediate_size > 0 {
                3 * h * moe.shared_intermediate_size
            } else {
                0
            };
            // Qwen-MoE gates its shared expert with one more h x 1 projection.
            let shared_gate = if family == Family::Qwen2 && moe.shared_intermediate_size > 0 {
                h
            } else {
                0
            };
            let router = moe.experts * h;
            (
                attn + experts + shared + shared_gate + router,
                norms_per_layer * norm + qk_norm,
            )
        }
        None => (
            attn + mlp_dense(i, s.gated_mlp),
            norms_per_layer * norm + qk_norm,
        ),
    };
    // ALBERT shares one group of layers' weights across the stack.
    let weight_layers = if s.architecture == "albert" {
        get_u64(cfg, &["num_hidden_groups"])
            .unwrap_or(1)
            .min(s.layers)
    } else {
        s.layers
    };
    let mut linear = weight_layers * layer_linear;
    let mut other = weight_layers * layer_other;
    if let Some(moe) = &s.moe {
        // Dense layers replace the expert MLP with a full-width one.
        let moe_mlp = moe.experts * 3 * h * moe.expert_intermediate_size
            + if moe.shared_intermediate_size > 0 {
                3 * h * moe.shared_intermediate_size
            } else {
                0
            }
            + moe.experts * h;
        let dense_mlp = mlp_dense(get_u64(cfg, &["intermediate_size"]).unwrap_or(i), true);
        linear = linear - moe.dense_layers * moe_mlp + moe.dense_layers * dense_mlp;
    }
    let v = s.vocab_size;
    let mut embed = v * h;
    match family {
        Family::Bert => {
            let types = get_u64(cfg, &["type_vocab_size"]).unwrap_or(2);
            // ALBERT factorizes embeddings at embedding_size, then maps them
            // to the hidden size.
            let e = get_u64(cfg, &["embedding_size"]).unwrap_or(h);
            embed = v * e + s.max_position_embeddings.unwrap_or(512) * e + types * e + 2 * e;
            if e != h {
                linear += e * h + h;
            }
            // Pooler (BertModel's dense + tanh).
            linear += h * h + h;
        }
        Family::DistilBert => embed += s.max_position_embeddings.unwrap_or(512) * h + 2 * h,
        Family::Gpt2 | Family::GptBigCode => embed += s.max_position_embeddings.unwrap_or(1024) * h,
        Family::Opt => {
            let proj = get_u64(cfg, &["word_embed_proj_dim"]).unwrap_or(h);
            embed = v * proj + (s.max_position_embeddings.unwrap_or(2048) + 2) * h;
            if proj != h {
                linear += 2 * proj * h;
            }
        }
        Family::Bloom => embed += 2 * h,
        Family::T5 => {
            // Relative attention bias: buckets x heads, in the first layer of
            // encoder and decoder.
            let buckets = get_u64(cfg, &["relative_attention_num_buckets"]).unwrap_or(32);
            embed += 2 * buckets * s.heads;
            // Encoder layers (no cross-attention) and the decoder's cross-attention.
            let enc_layers = s.encoder_layers.unwrap_or(0);
            let self_attn = h * q_out * 4;
            let ff = mlp_dense(i, s.gated_mlp);
            linear = enc_layers * (self_attn + ff) + s.layers * (2 * self_attn + ff);
            other = enc_layers * 2 * h + s.layers * 3 * h + 2 * h;
        }
        Family::Vit => {
            let patch = get_u64(cfg, &["patch_size"]).unwrap_or(16);
            let channels = get_u64(cfg, &["num_channels"]).unwrap_or(3);
            embed = channels * patch * patch * h + h + (s.image_tokens.unwrap_or(197) + 1) * h;
            // Pooler.
            linear += h * h + h;
        }
        _ => {}
    }
    // Final norm (post-norm encoders have none; T5's are counted above).
    other += if matches!(family, Family::T5 | Family::Bert | Family::DistilBert) {
        0
    } else {
        norm
    };
    let head = if s.tie_word_embeddings || family == Family::Vit || s.kind == ModelKind::Encoder {
        0
    } else {
        v * h
    };
    ParamCounts {
        total: embed + linear + other + head,
        linear,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(cfg: Value) -> u64 {
        from_config("m", &cfg, "config.json").unwrap().params
    }

    #[test]
    fn parallel_blocks_with_one_norm_share_it() {
        let shared = |cfg: Value| {
            from_config("m", &cfg, "config.json")
                .unwrap()
                .shared_block_norm
        };
        let base = |model_type: &str| {
            json!({"model_type": model_type, "hidden_size": 2048, "num_hidden_layers": 24,
            "num_attention_heads": 32, "intermediate_size": 8192, "vocab_size": 51200})
        };
        assert!(shared(base("phi")));
        assert!(shared(base("gptj")));
        assert!(shared(base("falcon")));
        // Falcon-40B's new architecture: a norm for each branch.
        let mut f40 = base("falcon");
        f40["new_decoder_architecture"] = json!(true);
        assert!(!shared(f40));
        let mut sequential = base("falcon");
        sequential["parallel_attn"] = json!(false);
        assert!(!shared(sequential));
        // GPT-NeoX's parallel residual has two norms; Llama and Phi-3 are sequential.
        assert!(!shared(base("gpt_neox")));
        assert!(!shared(base("llama")));
        assert!(!shared(base("phi3")));
    }

    #[test]
    fn llama2_7b_matches_its_checkpoint() {
        // 6,738,415,616 parameters (safetensors metadata of meta-llama/Llama-2-7b-hf).
        let p = params(
            json!({"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 32, "intermediate_size": 11008, "vocab_size": 32000, "tie_word_embeddings": false}),
        );
        assert_eq!(p, 6_738_415_616);
    }

    #[test]
    fn llama31_8b_with_gqa() {
        // 8,030,261,248 parameters (meta-llama/Llama-3.1-8B safetensors total).
        let p = params(
            json!({"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256, "tie_word_embeddings": false}),
        );
        assert_eq!(p, 8_030_261_248);
    }

    #[test]
    fn bert_base_counts_embeddings_and_pooler() {
        // BertModel bert-base-uncased: 109,482,240 parameters.
        let p = params(
            json!({"model_type": "bert", "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
            "intermediate_size": 3072, "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2}),
        );
        assert_eq!(p, 109_482_240);
    }

    #[test]
    fn gpt2_small() {
        // GPT2LMHeadModel (tied): 124,439,808 parameters.
        let p = params(
            json!({"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257, "n_positions": 1024}),
        );
        assert_eq!(p, 124_439_808);
    }

    #[test]
    fn catalog_totals_match_published_checkpoints() {
        // Totals from the models' safetensors metadata / model cards.
        for (id, want) in [
            ("mistralai/Mistral-7B-v0.1", 7_241_732_096u64),
            ("Qwen/Qwen2.5-7B", 7_615_616_512),
            ("mistralai/Mixtral-8x7B-v0.1", 46_702_792_704),
            ("google/gemma-7b", 8_537_680_896),
            ("Qwen/Qwen3-30B-A3B", 30_532_122_624),
            ("deepseek-ai/deepseek-moe-16b-base", 16_375_728_128),
            ("tiiuae/falcon-7b", 6_921_720_704),
            ("google-t5/t5-base", 222_903_552),
            ("google/vit-base-patch16-224", 86_389_248),
        ] {
            let s = crate::model::catalog::shape(id).unwrap();
            assert_eq!(s.params, want, "{id}");
        }
    }

    #[test]
    fn missing_and_wrong_fields_are_named() {
        let e = from_config(
            "m",
            &json!({"model_type": "llama", "hidden_size": 4096}),
            "x/config.json",
        )
        .unwrap_err();
        assert!(e.to_string().contains("num_hidden_layers"), "{e}");
        let e = from_config(
            "m",
            &json!({"model_type": "llama", "hidden_size": "big", "num_hidden_layers": 2,
            "num_attention_heads": 2, "vocab_size": 10}),
            "x/config.json",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("`hidden_size` is not a whole number"),
            "{e}"
        );
        let e = from_config("m", &json!([1, 2]), "x/config.json").unwrap_err();
        assert!(e.to_string().contains("not a JSON object"), "{e}");
    }

    #[test]
    fn absurd_sizes_are_refused_not_overflowed() {
        let e = from_config(
            "m",
            &json!({"model_type": "llama", "hidden_size": 1u64 << 40, "num_hidden_layers": 2,
            "num_attention_heads": 2, "vocab_size": 10}),
            "c",
        )
        .unwrap_err();
        assert!(e.to_string().contains("beyond any real model"), "{e}");
        let e = from_config(
            "m",
            &json!({"model_type": "mixtral", "hidden_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "vocab_size": 10, "num_local_experts": 1u64 << 30}),
            "c",
        )
        .unwrap_err();
        assert!(e.to_string().contains("experts"), "{e}");
    }

    fn local(cfg: Value) -> Option<LocalAttention> {
        from_config("m", &cfg, "c").unwrap().local_attention
    }

    #[test]
    fn local_attention_layers_follow_each_family_rule() {
        let base = json!({"hidden_size": 64, "num_hidden_layers": 12, "num_attention_heads": 4,
            "vocab_size": 100, "max_position_embeddings": 32768, "sliding_window": 512});
        let with = |extra: Value| {
            let mut c = base.clone();
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            local(c)
        };
        // Gemma 3: (i+1) % 6 != 0 slides: 10 of 12.
        assert_eq!(
            with(json!({"model_type": "gemma3_text", "sliding_window_pattern": 6}))
                .unwrap()
                .layers,
            10
        );
        // Gemma 2: every other layer.
        assert_eq!(with(json!({"model_type": "gemma2"})).unwrap().layers, 6);
        // Qwen2: only with use_sliding_window, from max_window_layers on.
        assert!(with(
            json!({"model_type": "qwen2", "use_sliding_window": false, "max_window_layers": 4})
        )
        .is_none());
        assert_eq!(
            with(
                json!({"model_type": "qwen2", "use_sliding_window": true, "max_window_layers": 4})
            )
            .unwrap()
            .layers,
            8
        );
        // An explicit list wins.
        let types = json!(["sliding_attention", "full_attention", "sliding_attention"]);
        assert_eq!(
            with(json!({"model_type": "gemma3_text", "layer_types": types}))
                .unwrap()
                .layers,
            2
        );
        // Llama 4: three chunked layers in four.
        let l4 = with(json!({"model_type": "llama4_text", "attention_chunk_size": 8192})).unwrap();
        assert_eq!(
            (l4.kind, l4.layers, l4.window),
            (LocalAttentionKind::Chunked, 9, 8192)
        );
        // A window as long as the model changes nothing.
        assert!(with(json!({"model_type": "mistral", "sliding_window": 32768})).is_none());
    }

    #[test]
    fn a_multimodal_checkpoint_counts_its_vision_encoder_apart() {
        // Gemma 3's SigLIP: about 0.4B parameters ("a 400M variant").
        let s = crate::model::catalog::shape("gemma-3-12b-it").unwrap();
        assert!(
            (400_000_000..440_000_000).contains(&s.vision_params),
            "{}",
            s.vision_params
        );
        assert_eq!(
            crate::model::catalog::shape("Llama-3.1-8B")
                .unwrap()
                .vision_params,
            0
        );
    }

    #[test]
    fn unknown_architecture_is_estimated_and_says_so() {
        let s = from_config(
            "m",
            &json!({"model_type": "mamba9", "hidden_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "vocab_size": 100}),
            "c",
        )
        .unwrap();
        assert!(s.notes[0].contains("generic"), "{:?}", s.notes);
        assert!(s.params > 0);
    }
}
