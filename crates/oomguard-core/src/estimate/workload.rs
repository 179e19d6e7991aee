//! What the user will run: training or inference, batch, sequence, precision,
//! quantization, optimizer, checkpointing, LoRA, attention kernel, and how
//! the work is split over GPUs. `Workload::resolve` fills the defaults docs/reference.md
//! gives from the model (its dtype, its maximum length) and rejects
//! combinations that cannot run.

use crate::model::{Dtype, ModelKind, ModelShape};
use serde::Serialize;
use std::fmt;

/// Weight quantization (`--quant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Quant {
    /// bitsandbytes LLM.int8().
    Int8,
    /// 4-bit integer (GPTQ/AWQ-style).
    Int4,
    /// bitsandbytes 4-bit NormalFloat (QLoRA).
    Nf4,
    /// 8-bit floating point (FP8 E4M3).
    Fp8,
}

impl Quant {
    /// Reads the name `--quant` takes (`int8`, `int4`, `nf4`, `fp8`); `None` for anything else.
    pub fn parse(s: &str) -> Option<Quant> {
        Some(match s {
            "int8" => Quant::Int8,
            "int4" => Quant::Int4,
            "nf4" => Quant::Nf4,
            "fp8" => Quant::Fp8,
            _ => return None,
        })
    }

    /// The name `--quant` takes.
    pub fn name(self) -> &'static str {
        match self {
            Quant::Int8 => "int8",
            Quant::Int4 => "int4",
            Quant::Nf4 => "nf4",
            Quant::Fp8 => "fp8",
        }
    }
}

/// `--optimizer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Optimizer {
    /// AdamW: two fp32 states (8 bytes) per trainable parameter, stepped by
    /// the fused kernel (no temporaries).
    Adamw,
    /// torch's foreach AdamW (`torch.optim.AdamW` without `fused=True`, the
    /// Trainer's `adamw_torch` before PyTorch 2.8): AdamW's states plus one
    /// parameter-sized temporary during the step.
    #[serde(rename = "adamw-foreach")]
    AdamwForeach,
    /// bitsandbytes' 8-bit AdamW: two 8-bit states (2 bytes) per trainable parameter.
    #[serde(rename = "adamw-8bit")]
    Adamw8bit,
    /// Adafactor: factored second moments, far smaller than AdamW's states.
    Adafactor,
    /// Plain SGD: no optimizer state.
    Sgd,
    /// SGD with momentum: one state per trainable parameter.
    SgdMomentum,
    /// Lion: one momentum state per trainable parameter.
    Lion,
}

impl Optimizer {
    /// Reads the name `--optimizer` takes (and common aliases such as `adam`, `adamw_bnb_8bit`); `None` for anything else.
    pub fn parse(s: &str) -> Option<Optimizer> {
        Some(match s {
            "adamw" | "adam" | "adamw-fused" | "adamw_torch_fused" => Optimizer::Adamw,
            "adamw-foreach" => Optimizer::AdamwForeach,
            "adamw-8bit" | "adamw8bit" | "adamw_bnb_8bit" => Optimizer::Adamw8bit,
            "adafactor" => Optimizer::Adafactor,
            "sgd" => Optimizer::Sgd,
            "sgd-momentum" => Optimizer::SgdMomentum,
            "lion" => Optimizer::Lion,
            _ => return None,
        })
    }
}

/// `--attention`: which kernel computes attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Attention {
    /// Materializes the full score matrix (heads x seq x seq per sequence).
    Eager,
    /// PyTorch's scaled_dot_product_attention: a fused kernel, no score matrix.
    Sdpa,
    /// FlashAttention-2: no score matrix.
    Flash,
}

impl Attention {
    /// Reads the name `--attention` takes (`eager`, `sdpa`, `flash` or its aliases); `None` for anything else.
    pub fn parse(s: &str) -> Option<Attention> {
        Some(match s {
            "eager" => Attention::Eager,
            "sdpa" => Attention::Sdpa,
            "flash" | "flash_attention_2" | "fa2" => Attention::Flash,
            _ => return None,
        })
    }
}

/// `--lora-targets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoraTargets {
    /// The query and value projections (PEFT's default for Llama).
    Qv,
    /// The four attention projections.
    Qkvo,
    /// Every linear layer of every block.
    AllLinear,
}

/// LoRA adapters to train instead of the full model (`--lora RANK`, `--lora-targets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Lora {
    /// The adapters' rank (r), at least 1.
    pub rank: u64,
    /// Which linear layers get adapters.
    pub targets: LoraTargets,
}

/// Which activations training keeps for backward (`--activation-checkpointing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Checkpointing {
    /// Every activation autograd saves stays until backward.
    None,
    /// Each block keeps only its input and is recomputed whole in backward
    /// (`torch.utils.checkpoint` around every block: Hugging Face's
    /// `gradient_checkpointing_enable()`, torchtune's
    /// `enable_activation_checkpointing`, torchtitan's `mode = "full"`).
    Full,
    /// torchtitan's per-op selective checkpointing (`mode = "selective"`,
    /// `selective_ac_option = "op"`): each block keeps its input, the
    /// attention kernel's output and every other matmul's output, and
    /// recomputes the rest.
    Selective,
}

impl Checkpointing {
    /// Reads the name `--activation-checkpointing` takes (`none`, `full`,
    /// `selective`); `None` for anything else.
    pub fn parse(s: &str) -> Option<Checkpointing> {
        Some(match s {
            "none" => Checkpointing::None,
            "full" => Checkpointing::Full,
            "selective" | "op" => Checkpointing::Selective,
            _ => return None,
        })
    }

    /// The name as the output spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Checkpointing::None => "none",
            Checkpointing::Full => "full",
            Checkpointing::Selective => "selective",
        }
    }
}

/// How the loss turns the logits into a number (`--loss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Loss {
    /// Cross-entropy over the whole logits tensor upcast to fp32 at once
    /// (Hugging Face's `ForCausalLMLoss`, torch.nn.CrossEntropyLoss).
    Full,
    /// The output projection and the cross-entropy run in `chunks` pieces
    /// along the sequence, upcasting one piece at a time (torchtune's
    /// `CEWithChunkedOutputLoss`, 8 chunks by default).
    Chunked {
        /// Pieces the sequence is cut into, at least 1.
        chunks: u64,
    },
    /// A plain sum of the logits, no cross-entropy (the `logits.sum().backward()`
    /// of Hugging Face's SDPA training benchmarks): the logits stay at the
    /// model's output dtype and their gradient is materialized at that dtype.
    Sum,
}

/// What sits on top of an encoder (`--head`), which decides whether its
/// output is a vocabulary-wide tensor for every token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Head {
    /// A masked-LM head (`AutoModelForMaskedLM`, the fill-mask task): a
    /// transform (dense, activation, LayerNorm) and logits over the
    /// vocabulary for every token.
    Mlm,
    /// A sequence or token classification head
    /// (`AutoModelForSequenceClassification`): a few labels per sequence
    /// or token. The default.
    Classification,
    /// The bare encoder (`AutoModel`): hidden states only.
    None,
}

impl Head {
    /// Reads the name `--head` takes; `None` for anything else.
    pub fn parse(s: &str) -> Option<Head> {
        Some(match s {
            "mlm" | "masked-lm" | "fill-mask" => Head::Mlm,
            "classification" | "cls" => Head::Classification,
            "none" => Head::None,
            _ => return None,
        })
    }

    /// The name `--head` takes and the JSON shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Head::Mlm => "mlm",
            Head::Classification => "classification",
            Head::None => "none",
        }
    }
}

/// torchtune's `CEWithChunkedOutputLoss(num_output_chunks=8)` default.
pub const DEFAULT_LOSS_CHUNKS: u64 = 8;

/// How training keeps its numbers, the choice that doubles or halves the
/// training state: full fp32; automatic mixed precision (fp32 master
/// weights, fp32 gradients and optimizer states, half-precision compute:
/// AdamW 4 + 4 + 8 = 16 bytes per parameter plus the half copies autocast
/// makes); pure half precision (weights, gradients and states in bf16/fp16:
/// AdamW 2 + 2 + 4 = 8 bytes per parameter). Inference has no regime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrecisionRegime {
    /// Full fp32 training: weights, gradients and optimizer states in fp32.
    Fp32,
    /// Automatic mixed precision: fp32 master weights, gradients and states, half-precision compute.
    Amp,
    /// Pure half precision: weights, gradients and states in bf16/fp16.
    PureHalf,
    /// Inference: no gradients or optimizer states.
    Inference,
}

impl PrecisionRegime {
    /// The regime as the output spells it: `fp32`, `amp`, `pure-half` or `inference`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrecisionRegime::Fp32 => "fp32",
            PrecisionRegime::Amp => "amp",
            PrecisionRegime::PureHalf => "pure-half",
            PrecisionRegime::Inference => "inference",
        }
    }
}

/// The precision regime and what it costs per trainable parameter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Precision {
    /// Which regime the workload trains (or infers) in.
    pub regime: PrecisionRegime,
    /// Bytes per trainable parameter of its weight (master copy), gradient
    /// and optimizer states; 0 for inference.
    pub weight_bytes_per_param: f64,
    /// Bytes per trainable parameter of its gradient; 0 for inference.
    pub gradient_bytes_per_param: f64,
    /// Bytes per trainable parameter of the optimizer's states; 0 for inference.
    pub optimizer_bytes_per_param: f64,
    /// `--amp` over weights that are already half precision: autocast only,
    /// no fp32 masters.
    pub autocast_only: bool,
}

/// A workload as the user asked for it; `None` is "use the default".
#[derive(Debug, Clone, Default)]
pub struct WorkloadRequest {
    /// Training (`--train`) rather than inference.
    pub train: bool,
    /// Sequences per step on each data-parallel GPU (`--batch`); default 1.
    pub batch: Option<u64>,
    /// Tokens per sequence (`--seq`); default the reference's length, capped at the model's maximum.
    pub seq: Option<u64>,
    /// Dtype the weights are held in (`--dtype`); default the checkpoint's.
    pub dtype: Option<Dtype>,
    /// Mixed-precision training (`--amp`).
    pub amp: bool,
    /// Weight quantization (`--quant`).
    pub quant: Option<Quant>,
    /// The optimizer when training (`--optimizer`); default AdamW.
    pub optimizer: Option<Optimizer>,
    /// Gradient checkpointing (`--grad-checkpointing`), training only.
    pub grad_checkpointing: bool,
    /// LoRA adapters to train (`--lora`).
    pub lora: Option<Lora>,
    /// The attention kernel (`--attention`); default SDPA.
    pub attention: Option<Attention>,
    /// GPUs in all (`--gpus`); default the tensor-parallel size.
    pub gpus: Option<u64>,
    /// The DeepSpeed ZeRO stage, 0 to 3 (`--zero`); default 0.
    pub zero: Option<u8>,
    /// The tensor-parallel size (`--tp`); default 1.
    pub tp: Option<u64>,
    /// The bitsandbytes release running NF4 (`--bitsandbytes-version`);
    /// default: a current one.
    pub bitsandbytes_version: Option<super::release::Release>,
    /// Which activations are kept (`--activation-checkpointing`); when
    /// `None`, `grad_checkpointing` decides between full and none.
    pub checkpointing: Option<Checkpointing>,
    /// The loss (`--loss`); default [`Loss::Full`].
    pub loss: Option<Loss>,
    /// An encoder's head (`--head`); default [`Head::Classification`].
    pub head: Option<Head>,
    /// The optimizer steps each parameter as soon as its gradient is
    /// complete and frees it (`--optimizer-in-backward`).
    pub optimizer_in_backward: bool,
    /// Micro-batches whose gradients add up before each optimizer step
    /// (`--grad-accum`); default 1.
    pub grad_accum: Option<u64>,
    /// Optimizer states in CUDA managed memory (`--paged-optimizer`).
    pub paged_optimizer: bool,
    /// GPUs each sequence is split over (`--context-parallel`); default 1.
    pub context_parallel: Option<u64>,
    /// Tensor parallelism also splits the norms' and dropouts' activations
    /// along the sequence (`--sequence-parallel`).
    pub sequence_parallel: bool,
    /// The framework running the training (`--framework`); default Hugging Face.
    pub framework: Option<super::framework::Framework>,
    /// The loss runs under `torch.compile` (`--compile`).
    pub compile: bool,
    /// Saved activations move to CPU memory in forward
    /// (`--activation-offloading`); needs full checkpointing.
    pub activation_offloading: bool,
    /// The training loop keeps the logits referenced through backward
    /// (`--logits-kept`).
    pub logits_kept: bool,
    /// Of the sequence, the tokens generation produces after the prompt
    /// (`--new-tokens`); default 0, the whole sequence is the prompt.
    pub new_tokens: Option<u64>,
    /// The transformers release running generation
    /// (`--transformers-version`); default: a current one.
    pub transformers_version: Option<super::release::Release>,
}

/// The first transformers release whose decoding loop drops each step's
/// outputs before the next forward: 4.42.0 (`generation/utils.py`: the next
/// token's logits are `outputs.logits[:, -1, :].clone()`, then
/// `del outputs`). Before it, `next_token_logits = outputs.logits[:, -1, :]`
/// was a view and `outputs` stayed bound, so the whole previous output lived
/// through the next step's forward (read in the 4.38.2, 4.41.2 and 4.42.4
/// wheels on PyPI).
pub const TRANSFORMERS_FREES_STEP_OUTPUTS: super::release::Release =
    super::release::Release::new(4, 42, 0);

/// A workload with every default resolved: what the estimate computes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workload {
    /// Training rather than inference.
    pub train: bool,
    /// Sequences per step on each data-parallel GPU, at least 1.
    pub batch: u64,
    /// Tokens per sequence (for vision models, the image's tokens).
    pub seq: u64,
    /// Dtype the weights are held in.
    pub dtype: Dtype,
    /// Mixed-precision training (autocast).
    pub amp: bool,
    /// Weight quantization; an fp8 checkpoint served for inference is `Fp8` unless told otherwise.
    pub quant: Option<Quant>,
    /// The optimizer when training; `None` for inference.
    pub optimizer: Option<Optimizer>,
    /// Gradient checkpointing; only ever true when training.
    pub grad_checkpointing: bool,
    /// LoRA adapters being trained, if any.
    pub lora: Option<Lora>,
    /// The attention kernel.
    pub attention: Attention,
    /// GPUs in all, a multiple of `tp`.
    pub gpus: u64,
    /// The DeepSpeed ZeRO stage, 0 to 3.
    pub zero: u8,
    /// The tensor-parallel size: GPUs each layer's weights are split over.
    pub tp: u64,
    /// Which activations are kept for backward; `grad_checkpointing` is
    /// true exactly when this is [`Checkpointing::Full`].
    pub checkpointing: Checkpointing,
    /// The loss.
    pub loss: Loss,
    /// The encoder's head; `None` for models that are not encoders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<Head>,
    /// The optimizer step runs inside backward, one parameter at a time.
    pub optimizer_in_backward: bool,
    /// Micro-batches per optimizer step, at least 1.
    pub grad_accum: u64,
    /// Optimizer states live in CUDA managed memory, outside PyTorch's allocator.
    pub paged_optimizer: bool,
    /// GPUs each sequence is split over (context parallelism), at least 1.
    pub context_parallel: u64,
    /// Sequence parallelism with tensor parallelism: no activation is
    /// replicated over the tensor-parallel group.
    pub sequence_parallel: bool,
    /// The precision regime, stated in the output.
    pub precision: Precision,
    /// True when the sequence was cut to the model's maximum.
    #[serde(skip)]
    pub seq_capped: bool,
    /// The bitsandbytes release, when the user named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitsandbytes_version: Option<super::release::Release>,
    /// The framework running the training.
    pub framework: super::framework::Framework,
    /// The loss runs under `torch.compile`.
    pub compile: bool,
    /// Checkpointed block inputs move to CPU memory in forward.
    pub activation_offloading: bool,
    /// The training loop keeps the logits referenced through backward.
    pub logits_kept: bool,
    /// Inference: of `seq`, the tokens generated after the prompt (0: the
    /// whole sequence is the prompt, one prefill over all of it).
    pub new_tokens: u64,
    /// The transformers release, when the user named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transformers_version: Option<super::release::Release>,
}

/// The regime of a resolved workload. Adapters (LoRA) are trained in fp32
/// (PEFT's default), so their regime is AMP when `--amp` is given and fp32
/// otherwise, whatever the frozen base holds.
fn precision(
    train: bool,
    amp: bool,
    dtype: Dtype,
    lora: bool,
    optimizer: Option<Optimizer>,
) -> Precision {
    let opt = optimizer.unwrap_or(Optimizer::Adamw);
    let (regime, master) = match (train, lora, amp, dtype) {
        (false, ..) => (PrecisionRegime::Inference, Dtype::Fp32),
        (true, true, true, _) | (true, false, true, Dtype::Fp32) => {
            (PrecisionRegime::Amp, Dtype::Fp32)
        }
        (true, true, false, _) | (true, false, false, Dtype::Fp32) => {
            (PrecisionRegime::Fp32, Dtype::Fp32)
        }
        (true, false, _, half) => (PrecisionRegime::PureHalf, half),
    };
    if regime == PrecisionRegime::Inference {
        return Precision {
            regime,
            weight_bytes_per_param: 0.0,
            gradient_bytes_per_param: 0.0,
            optimizer_bytes_per_param: 0.0,
            autocast_only: false,
        };
    }
    Precision {
        regime,
        weight_bytes_per_param: master.bytes() as f64,
        gradient_bytes_per_param: master.bytes() as f64,
        optimizer_bytes_per_param: super::training_state::state_bytes_per_param(opt, master),
        autocast_only: amp && !lora && dtype != Dtype::Fp32,
    }
}

/// The training-only settings of a request, checked and resolved.
struct TrainingSetup {
    checkpointing: Checkpointing,
    loss: Loss,
    optimizer_in_backward: bool,
    grad_accum: u64,
    paged_optimizer: bool,
}

/// Resolves and checks the settings that only training has. `--grad-checkpointing`
/// on inference is ignored as it always was; the newer settings are errors there.
fn training_setup(req: &WorkloadRequest) -> Result<TrainingSetup, WorkloadError> {
    let train_only = |given: bool, what: &'static str| {
        if given && !req.train {
            Err(WorkloadError::TrainingOnly(what))
        } else {
            Ok(())
        }
    };
    train_only(req.checkpointing.is_some(), "activation checkpointing")?;
    train_only(req.loss.is_some(), "the training loss")?;
    train_only(req.optimizer_in_backward, "the optimizer step in backward")?;
    train_only(req.grad_accum.is_some(), "gradient accumulation")?;
    train_only(req.paged_optimizer, "a paged optimizer")?;
    train_only(req.framework.is_some(), "the training framework")?;
    train_only(req.compile, "the compiled loss")?;
    train_only(req.activation_offloading, "activation offloading")?;
    train_only(req.logits_kept, "logits kept through backward")?;
    let grad_accum = req.grad_accum.unwrap_or(1);
    if grad_accum == 0 {
        return Err(WorkloadError::GradAccumZero);
    }
    if req.optimizer_in_backward && grad_accum > 1 {
        return Err(WorkloadError::OptimizerInBackwardWithGradAccum);
    }
    let optimizer = req.optimizer.unwrap_or(Optimizer::Adamw);
    if req.paged_optimizer
        && !matches!(
            optimizer,
            Optimizer::Adamw | Optimizer::Adamw8bit | Optimizer::Lion
        )
    {
        return Err(WorkloadError::PagedOptimizerUnsupported);
    }
    if let Some(Loss::Chunked { chunks: 0 }) = req.loss {
        return Err(WorkloadError::LossChunksZero);
    }
    let checkpointing = match (req.train, req.checkpointing, req.grad_checkpointing) {
        (false, ..) => Checkpointing::None,
        (true, Some(c), _) => c,
        (true, None, true) => Checkpointing::Full,
        (true, None, false) => Checkpointing::None,
    };
    // torchtune's recipes compute the loss with CEWithChunkedOutputLoss
    // unless told otherwise (recipes/configs/*: `loss:
    // _component_: torchtune.modules.loss.CEWithChunkedOutputLoss`).
    let default_loss = match req.framework {
        Some(super::framework::Framework::Torchtune) => Loss::Chunked {
            chunks: DEFAULT_LOSS_CHUNKS,
        },
        _ => Loss::Full,
    };
    // torchtune refuses offloading without activation checkpointing
    // (recipes' `_setup_model`: "enable_activation_offloading should only be
    // True when enable_activation_checkpointing is True").
    if req.activation_offloading && checkpointing != Checkpointing::Full {
        return Err(WorkloadError::OffloadingWithoutCheckpointing);
    }
    Ok(TrainingSetup {
        checkpointing,
        loss: req.loss.unwrap_or(default_loss),
        optimizer_in_backward: req.optimizer_in_backward,
        grad_accum,
        paged_optimizer: req.paged_optimizer,
    })
}

/// the reference's (docs/reference.md) default sequence length.
pub const DEFAULT_SEQ: u64 = 512;

/// The largest batch or sequence accepted (2^24): far beyond any GPU, and
/// small enough that byte counts cannot overflow.
pub const MAX_BATCH_OR_SEQ: u64 = 1 << 24;

/// A [`WorkloadRequest`] that describes no workload oomguard can estimate.
/// The messages name the settings as [`WorkloadRequest`] does; a front end
/// that exposes them under other names (a CLI's flags) says so itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkloadError {
    /// The batch is 0.
    BatchZero,
    /// The sequence length is 0.
    SeqZero,
    /// The batch or the sequence length is above `max`
    /// ([`MAX_BATCH_OR_SEQ`]).
    TooLarge {
        /// The largest batch or sequence length accepted.
        max: u64,
    },
    /// The GPU count is not a multiple of the tensor-parallel degree.
    GpusNotMultipleOfTp {
        /// The number of GPUs asked for.
        gpus: u64,
        /// The tensor-parallel degree asked for.
        tp: u64,
    },
    /// A ZeRO stage other than 0 to 3.
    ZeroStage(u8),
    /// Training quantized weights without adapters (only QLoRA trains them).
    QuantizedTrainingWithoutLora,
    /// A LoRA rank of 0.
    LoraRankZero,
    /// LoRA adapters without training.
    LoraWithoutTraining,
    /// Mixed precision without training.
    AmpWithoutTraining,
    /// A training-only setting (named) on an inference workload.
    TrainingOnly(&'static str),
    /// Gradient accumulation of 0 micro-batches.
    GradAccumZero,
    /// Gradient accumulation with the optimizer step inside backward, which
    /// frees each gradient as soon as it is complete.
    OptimizerInBackwardWithGradAccum,
    /// Paged states with an optimizer bitsandbytes has no paged version of.
    PagedOptimizerUnsupported,
    /// A loss cut into 0 chunks.
    LossChunksZero,
    /// A head was named for a model that is not an encoder.
    HeadNeedsEncoder,
    /// Generated tokens (`--new-tokens`) on a training workload.
    NewTokensWithTraining,
    /// Generated tokens on a model without a language-model head (a
    /// vision model, an encoder with a classification head or none).
    NewTokensWithoutLanguageHead,
    /// As many generated tokens as the sequence holds, or more: no prompt.
    NewTokensNotBelowSeq {
        /// The generated tokens asked for.
        new_tokens: u64,
        /// The sequence length (prompt plus generated).
        seq: u64,
    },
    /// Activation offloading without full activation checkpointing.
    OffloadingWithoutCheckpointing,
    /// A context-parallel degree of 0.
    ContextParallelZero,
    /// Sequence parallelism without tensor parallelism, which it extends.
    SequenceParallelWithoutTp,
    /// The GPU count is not a multiple of tensor times context parallelism.
    GpusNotMultipleOfTpCp {
        /// The number of GPUs asked for.
        gpus: u64,
        /// The tensor-parallel degree.
        tp: u64,
        /// The context-parallel degree.
        cp: u64,
    },
}

impl fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkloadError::BatchZero => f.write_str("the batch must be at least 1"),
            WorkloadError::SeqZero => f.write_str("the sequence length must be at least 1"),
            WorkloadError::TooLarge { max } => {
                write!(f, "the batch and the sequence length go up to {max}")
            }
            WorkloadError::GpusNotMultipleOfTp { gpus, tp } => write!(
                f,
                "{gpus} GPUs is not a multiple of the tensor-parallel degree {tp}"
            ),
            WorkloadError::ZeroStage(z) => write!(f, "ZeRO stage {z}: ZeRO stages are 0 to 3"),
            WorkloadError::QuantizedTrainingWithoutLora => f.write_str(
                "training a quantized model needs LoRA adapters (QLoRA), or unquantized weights",
            ),
            WorkloadError::LoraRankZero => f.write_str("the LoRA rank must be at least 1"),
            WorkloadError::LoraWithoutTraining => {
                f.write_str("LoRA adapters describe training, and the workload is inference")
            }
            WorkloadError::AmpWithoutTraining => f.write_str(
                "mixed precision (AMP) describes training, and the workload is inference \
                 (for half-precision inference set the dtype to bf16 or fp16)",
            ),
            WorkloadError::TrainingOnly(what) => {
                write!(f, "{what} describes training, and the workload is inference")
            }
            WorkloadError::GradAccumZero => {
                f.write_str("gradient accumulation needs at least 1 micro-batch per step")
            }
            WorkloadError::OptimizerInBackwardWithGradAccum => f.write_str(
                "the optimizer step inside backward frees each gradient at once, so gradients \
                 cannot accumulate over micro-batches",
            ),
            WorkloadError::PagedOptimizerUnsupported => f.write_str(
                "bitsandbytes pages the states of AdamW, 8-bit AdamW and Lion only",
            ),
            WorkloadError::LossChunksZero => f.write_str("the loss needs at least 1 chunk"),
            WorkloadError::NewTokensWithTraining => f.write_str(
                "generated tokens describe inference, and the workload is training",
            ),
            WorkloadError::NewTokensWithoutLanguageHead => f.write_str(
                "generated tokens need a language-model head: a decoder, or an encoder \
                 with its masked-LM head (as BertLMHeadModel generates)",
            ),
            WorkloadError::NewTokensNotBelowSeq { new_tokens, seq } => write!(
                f,
                "{new_tokens} generated tokens leave no prompt in a sequence of {seq} \
                 (the sequence length counts prompt and generated tokens)"
            ),
            WorkloadError::HeadNeedsEncoder => f.write_str(
                "the head is chosen for encoder models (BERT-like); decoders always end in their language-model head",
            ),
            WorkloadError::SequenceParallelWithoutTp => f.write_str(
                "sequence parallelism splits activations over the tensor-parallel group, \
                 and the tensor-parallel degree is 1",
            ),
            WorkloadError::OffloadingWithoutCheckpointing => f.write_str(
                "activation offloading moves the checkpointed block inputs to the CPU, and needs full activation checkpointing",
            ),
            WorkloadError::ContextParallelZero => {
                f.write_str("the context-parallel degree must be at least 1")
            }
            WorkloadError::GpusNotMultipleOfTpCp { gpus, tp, cp } => write!(
                f,
                "{gpus} GPUs is not a multiple of the tensor-parallel degree {tp} times the context-parallel degree {cp}"
            ),
        }
    }
}

impl std::error::Error for WorkloadError {}

impl Workload {
    /// Fills defaults from the model and checks the combination.
    pub fn resolve(req: &WorkloadRequest, model: &ModelShape) -> Result<Workload, WorkloadError> {
        let batch = req.batch.unwrap_or(1);
        if batch == 0 {
            return Err(WorkloadError::BatchZero);
        }
        if batch > MAX_BATCH_OR_SEQ || req.seq.unwrap_or(1) > MAX_BATCH_OR_SEQ {
            return Err(WorkloadError::TooLarge {
                max: MAX_BATCH_OR_SEQ,
            });
        }
        let max = model.max_position_embeddings;
        let (seq, seq_capped) = match (model.kind, req.seq) {
            (ModelKind::Vision, _) => (model.image_tokens.unwrap_or(197), false),
            (_, Some(0)) => return Err(WorkloadError::SeqZero),
            (_, Some(s)) => match max {
                Some(m) if s > m => (m.min(MAX_BATCH_OR_SEQ), true),
                _ => (s, false),
            },
            (_, None) => match max {
                Some(m) if m < DEFAULT_SEQ => (m, true),
                _ => (DEFAULT_SEQ, false),
            },
        };
        let tp = req.tp.unwrap_or(1).max(1);
        let cp = req.context_parallel.unwrap_or(1);
        if cp == 0 {
            return Err(WorkloadError::ContextParallelZero);
        }
        // `--tp N` alone runs on N GPUs (times the context-parallel degree).
        let gpus = req.gpus.unwrap_or(tp.saturating_mul(cp)).max(1);
        if gpus % tp != 0 {
            return Err(WorkloadError::GpusNotMultipleOfTp { gpus, tp });
        }
        if gpus % tp.saturating_mul(cp) != 0 {
            return Err(WorkloadError::GpusNotMultipleOfTpCp { gpus, tp, cp });
        }
        if req.sequence_parallel && tp < 2 {
            return Err(WorkloadError::SequenceParallelWithoutTp);
        }
        let setup = training_setup(req)?;
        let new_tokens = match req.new_tokens {
            Some(_) if req.train => return Err(WorkloadError::NewTokensWithTraining),
            Some(n) if n >= seq => {
                return Err(WorkloadError::NewTokensNotBelowSeq { new_tokens: n, seq })
            }
            Some(n) => n,
            None => 0,
        };
        let head = match (model.kind, req.head) {
            (ModelKind::Encoder, h) => Some(h.unwrap_or(Head::Classification)),
            (_, Some(_)) => return Err(WorkloadError::HeadNeedsEncoder),
            (_, None) => None,
        };
        let generates = matches!(model.kind, ModelKind::Decoder | ModelKind::EncoderDecoder)
            || head == Some(Head::Mlm);
        if new_tokens > 0 && !generates {
            return Err(WorkloadError::NewTokensWithoutLanguageHead);
        }
        let zero = req.zero.unwrap_or(0);
        if zero > 3 {
            return Err(WorkloadError::ZeroStage(zero));
        }
        if req.quant.is_some() && req.train && req.lora.is_none() {
            return Err(WorkloadError::QuantizedTrainingWithoutLora);
        }
        if let Some(l) = req.lora {
            if l.rank == 0 {
                return Err(WorkloadError::LoraRankZero);
            }
            if !req.train {
                return Err(WorkloadError::LoraWithoutTraining);
            }
        }
        if req.amp && !req.train {
            return Err(WorkloadError::AmpWithoutTraining);
        }
        // Full training under --amp keeps fp32 master weights whatever the
        // checkpoint's dtype, unless the user asked for half-precision
        // weights (then --amp adds autocast only). With adapters the frozen
        // base stays at the checkpoint's dtype.
        let dtype = match req.dtype {
            Some(d) => d,
            None if req.amp && req.lora.is_none() => Dtype::Fp32,
            None => model.checkpoint_dtype.unwrap_or(Dtype::Fp32),
        };
        let optimizer = if req.train {
            Some(req.optimizer.unwrap_or(Optimizer::Adamw))
        } else {
            None
        };
        // LitGPT and torchtune create the adapters at the model's dtype.
        let fp32_adapters =
            req.lora.is_some() && req.framework.unwrap_or_default().adapters_in_fp32();
        let precision = precision(req.train, req.amp, dtype, fp32_adapters, optimizer);
        Ok(Workload {
            train: req.train,
            batch,
            seq,
            dtype,
            amp: req.amp,
            // An fp8 checkpoint loads as fp8 unless told otherwise.
            quant: req.quant.or(if model.checkpoint_fp8 && !req.train {
                Some(Quant::Fp8)
            } else {
                None
            }),
            optimizer,
            grad_checkpointing: setup.checkpointing == Checkpointing::Full,
            checkpointing: setup.checkpointing,
            loss: setup.loss,
            head,
            optimizer_in_backward: setup.optimizer_in_backward,
            grad_accum: setup.grad_accum,
            paged_optimizer: setup.paged_optimizer,
            context_parallel: cp,
            sequence_parallel: req.sequence_parallel,
            lora: req.lora,
            attention: req.attention.unwrap_or(Attention::Sdpa),
            gpus,
            zero,
            tp,
            precision,
            seq_capped,
            bitsandbytes_version: req.bitsandbytes_version,
            framework: req.framework.unwrap_or_default(),
            compile: req.compile,
            activation_offloading: req.activation_offloading,
            logits_kept: req.logits_kept,
            new_tokens,
            transformers_version: req.transformers_version,
        })
    }

    /// Bytes of one activation element: half precision under AMP.
    pub fn activation_bytes(&self) -> u64 {
        if self.amp {
            2
        } else {
            self.dtype.bytes()
        }
    }

    /// Whether the residual stream is fp32 while the activations are half
    /// precision: PEFT's 4-bit preparation leaves the norms in fp32
    /// (`framework::residual_bytes`).
    pub fn residual_in_fp32(&self) -> bool {
        self.activation_bytes() < 4 && super::framework::residual_bytes(self) == 4
    }

    /// Whether the trainable weights keep fp32 masters next to a
    /// half-precision compute path (autocast copies, half activations).
    pub fn mixed_precision(&self) -> bool {
        self.amp && self.dtype == Dtype::Fp32
    }

    /// Tokens per step on one data-parallel GPU: batch times sequence length.
    pub fn tokens(&self) -> u64 {
        self.batch.saturating_mul(self.seq)
    }

    /// Generation on an encoder with a language-model head (`--head mlm`
    /// with `--new-tokens`): such a model returns no KV cache, so every
    /// step runs the whole sequence again.
    pub fn generates_without_cache(&self) -> bool {
        self.new_tokens > 0 && self.head == Some(Head::Mlm)
    }

    /// Whether generation keeps each step's outputs alive through the next
    /// step's forward: a transformers release before 4.42 named by the user.
    pub fn keeps_step_outputs(&self) -> bool {
        self.new_tokens > 0
            && self
                .transformers_version
                .is_some_and(|v| v < TRANSFORMERS_FREES_STEP_OUTPUTS)
    }

    /// Inference: the prompt's tokens per sequence, the part of `seq` the
    /// prefill runs over.
    pub fn prompt_tokens(&self) -> u64 {
        self.seq.saturating_sub(self.new_tokens).max(1)
    }

    /// The part of the workload one GPU of a context-parallel group
    /// computes: its slice of each sequence (torchtitan's `context_parallel`
    /// shards the sequence dimension of every activation over the CP mesh).
    pub fn per_context_parallel_rank(&self) -> Workload {
        let mut w = self.clone();
        w.seq = self.seq.div_ceil(self.context_parallel.max(1)).max(1);
        w
    }
}

#[cfg(test)]
mod error_tests {
    use super::WorkloadError;

    #[test]
    fn workload_errors_name_no_flag() {
        let all = [
            WorkloadError::BatchZero,
            WorkloadError::SeqZero,
            WorkloadError::TooLarge { max: 16 },
            WorkloadError::GpusNotMultipleOfTp { gpus: 6, tp: 4 },
            WorkloadError::ZeroStage(4),
            WorkloadError::QuantizedTrainingWithoutLora,
            WorkloadError::LoraRankZero,
            WorkloadError::LoraWithoutTraining,
            WorkloadError::AmpWithoutTraining,
            WorkloadError::TrainingOnly("gradient accumulation"),
            WorkloadError::GradAccumZero,
            WorkloadError::OptimizerInBackwardWithGradAccum,
            WorkloadError::PagedOptimizerUnsupported,
            WorkloadError::LossChunksZero,
            WorkloadError::HeadNeedsEncoder,
            WorkloadError::ContextParallelZero,
            WorkloadError::SequenceParallelWithoutTp,
            WorkloadError::GpusNotMultipleOfTpCp {
                gpus: 6,
                tp: 2,
                cp: 2,
            },
            WorkloadError::NewTokensWithTraining,
            WorkloadError::NewTokensWithoutLanguageHead,
            WorkloadError::NewTokensNotBelowSeq {
                new_tokens: 2048,
                seq: 2048,
            },
        ];
        for e in all {
            let text = e.to_string();
            assert!(!text.contains("--"), "{text}");
            assert!(std::error::Error::source(&e).is_none());
        }
        let text = WorkloadError::GpusNotMultipleOfTp { gpus: 6, tp: 4 }.to_string();
        assert!(
            text.contains('6') && text.contains("tensor-parallel degree 4"),
            "{text}"
        );
    }
}

#[cfg(test)]
mod head_tests {
    use super::*;
    use crate::model::catalog;

    fn head_of(model: &str, head: Option<Head>) -> Result<Option<Head>, WorkloadError> {
        let s = catalog::shape(model).unwrap();
        let req = WorkloadRequest {
            head,
            ..WorkloadRequest::default()
        };
        Workload::resolve(&req, &s).map(|w| w.head)
    }

    #[test]
    fn encoders_default_to_a_classification_head_and_others_take_none() {
        assert_eq!(
            head_of("bert-base-uncased", None),
            Ok(Some(Head::Classification))
        );
        assert_eq!(
            head_of("bert-base-uncased", Some(Head::Mlm)),
            Ok(Some(Head::Mlm))
        );
        assert_eq!(head_of("gpt2-large", None), Ok(None));
        assert_eq!(
            head_of("gpt2-large", Some(Head::Mlm)),
            Err(WorkloadError::HeadNeedsEncoder)
        );
    }

    #[test]
    fn only_a_language_head_generates() {
        let generate = |model: &str, head| {
            let s = catalog::shape(model).unwrap();
            let req = WorkloadRequest {
                seq: Some(128),
                new_tokens: Some(16),
                head,
                ..WorkloadRequest::default()
            };
            Workload::resolve(&req, &s).map(|w| w.generates_without_cache())
        };
        assert_eq!(generate("gpt2-large", None), Ok(false));
        assert_eq!(generate("bert-base-uncased", Some(Head::Mlm)), Ok(true));
        for head in [None, Some(Head::Classification), Some(Head::None)] {
            assert_eq!(
                generate("bert-base-uncased", head),
                Err(WorkloadError::NewTokensWithoutLanguageHead)
            );
        }
    }

    #[test]
    fn head_names_read_back() {
        for h in [Head::Mlm, Head::Classification, Head::None] {
            assert_eq!(Head::parse(h.as_str()), Some(h));
        }
        assert_eq!(Head::parse("fill-mask"), Some(Head::Mlm));
        assert_eq!(Head::parse("lm"), None);
    }
}
