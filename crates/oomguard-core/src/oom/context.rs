//! What the text around an event shows about its cause, beyond the phase:
//! frames and log lines that build, move, load or gather a model's weights
//! (the model's states fill the device, not the batch), words and logs that
//! show a second model loaded or a model switched in the same process (the
//! first one is still there), words that show memory kept from earlier
//! steps, runs or notebook cells (tensors kept alive), and a batch that was
//! already 1. Each reading keeps the line that shows it, quoted in the
//! cause's evidence. Frameworks' own function names are the marks:
//! `torch.nn.Module._apply` (every `.to()`, `.cuda()`, `.half()` of a
//! model), `torch.serialization`'s restore of CUDA storages, transformers'
//! and accelerate's loaders, DeepSpeed ZeRO's parameter coordinator and
//! engine set-up, FSDP's unshard, ComfyUI's and Fooocus' model management.

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use regex::{Regex, RegexSet};

use super::named_model::{self, NamedModel};
use super::phase::load_done_at;

/// Lines read above the failure: a traceback and the log lines of the step
/// that led to it.
const LINES_BEFORE: usize = 80;

/// Lines read above the failure for a loader's log line: a load finished
/// long before the failure says nothing about it.
const LOG_LINES_BEFORE: usize = 15;

/// Longest quote kept from a line, in characters.
const QUOTE_CHARS: usize = 120;

/// What the text around one event shows; each field quotes the line that
/// shows it, `None` when nothing does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContextEvidence {
    /// A frame or log line that builds, moves, loads or gathers weights.
    pub model_states: Option<String>,
    /// Of `model_states`, whether the line gathers parameters across ranks
    /// (ZeRO-3, FSDP) rather than loading or moving them.
    pub gathering: bool,
    /// Of a gathering `model_states`, whether the gather builds a state dict
    /// to save a checkpoint (FSDP's full state dict, ZeRO-3's 16-bit
    /// consolidation, a distributed checkpoint's full state dict): the whole
    /// model, not a layer, is put together on one GPU.
    pub for_checkpoint: bool,
    /// Words or logs that show a second model, a switch or a reload in the
    /// same process.
    pub several_models: Option<String>,
    /// Words that show memory kept from earlier steps, runs or cells.
    pub kept_alive: Option<String>,
    /// A notebook's frames (`Cell In[..]`, `<ipython-input-..>`): state from
    /// earlier cells stays in the kernel.
    pub notebook: Option<String>,
    /// Words that say the batch was already 1.
    pub batch_of_one: Option<String>,
    /// A frame or line of an image or video diffusion pipeline: its
    /// generation denoises latents, with no KV cache.
    pub diffusion: Option<String>,
    /// The model the text names by its size, with its weights' precision
    /// and the GPUs they are spread over.
    pub named_model: Option<NamedModel>,
    /// A multi-GPU job whose ranks put memory on the first GPU: resuming
    /// from a checkpoint every rank loads onto `cuda:0` (`torch.load`
    /// without `map_location` restores tensors to the device they were
    /// saved from), or every process creating its context there.
    pub ranks_on_first_gpu: Option<String>,
    /// A framework's or engine's memory share set below 0.6 of the GPU
    /// (XLA_PYTHON_CLIENT_MEM_FRACTION, set_per_process_memory_fraction,
    /// gpu_memory_utilization, ...), or a limit set in megabytes
    /// (TensorFlow's `memory_limit`, `TF_MEMORY_ALLOCATION`): the program
    /// may use only that part.
    pub low_fraction: Option<String>,
    /// Words that name the KV cache or the context length an inference run
    /// was given (`--max-model-len`, `n_ctx`, `num_ctx`, `--kv-...`,
    /// "context size"): the cache sized from it is a candidate.
    pub long_context: Option<String>,
    /// Words of a report that doubt the device is large enough for the
    /// model: how much memory the model needs, a minimum requirement, a
    /// bigger GPU, a smaller model that works.
    pub capacity_doubt: Option<String>,
    /// Words or code that show TensorFlow taking the GPU in a process that
    /// runs another framework (JAX or PyTorch with TensorFlow for its data
    /// pipeline): TensorFlow reserves most of the device when it starts,
    /// and the other framework's allocations fail beside it.
    pub second_framework: Option<String>,
    /// Words that put TensorFlow or JAX in the process (their names,
    /// `MirroredStrategy`, JAX's memory variables, the `nccl_archive` their
    /// builds bundle NCCL as): both reserve most of the GPU for their own
    /// pool when they start, so a library that allocates outside that pool
    /// (NCCL, cuDNN) finds little left.
    pub preallocating_framework: Option<String>,
    /// Words that name Whisper (openai-whisper, whisper.cpp, faster-whisper,
    /// WhisperX): a speech model whose decoder keeps a short, fixed context.
    pub speech_model: Option<String>,
    /// Words or frames that show a training run: a training script or
    /// loop, epochs, fine-tuning, a backward pass or an optimizer's step.
    /// Its batch is a knob the run sets; an app that only runs a model
    /// (a desktop image generator, a transcriber) has the model's size as
    /// its lever.
    pub training: Option<String>,
    /// Words that name a GPU of at most 4 GB: a card sold with no more
    /// (GeForce MX, the 900M laptops, GTX 750 to 1650, Jetson Nano), a
    /// card written with its size (`GTX 1060 3GB`), a stated video memory
    /// (`2GB VRAM`), or an `nvidia-smi` row whose total is that small.
    pub small_device: Option<String>,
}

impl ContextEvidence {
    /// Readings from two printings of one failure: the first that has each.
    pub fn merge(self, other: ContextEvidence) -> ContextEvidence {
        let (gathering, for_checkpoint) = if self.model_states.is_some() {
            (self.gathering, self.for_checkpoint)
        } else {
            (other.gathering, other.for_checkpoint)
        };
        ContextEvidence {
            model_states: self.model_states.or(other.model_states),
            gathering,
            for_checkpoint,
            several_models: self.several_models.or(other.several_models),
            kept_alive: self.kept_alive.or(other.kept_alive),
            notebook: self.notebook.or(other.notebook),
            batch_of_one: self.batch_of_one.or(other.batch_of_one),
            diffusion: self.diffusion.or(other.diffusion),
            named_model: self.named_model.or(other.named_model),
            ranks_on_first_gpu: self.ranks_on_first_gpu.or(other.ranks_on_first_gpu),
            low_fraction: self.low_fraction.or(other.low_fraction),
            long_context: self.long_context.or(other.long_context),
            capacity_doubt: self.capacity_doubt.or(other.capacity_doubt),
            second_framework: self.second_framework.or(other.second_framework),
            preallocating_framework: self
                .preallocating_framework
                .or(other.preallocating_framework),
            speech_model: self.speech_model.or(other.speech_model),
            training: self.training.or(other.training),
            small_device: self.small_device.or(other.small_device),
        }
    }
}

/// A serving engine's own collectives (vLLM's `device_communicators`,
/// SGLang's `distributed` package): tensor parallelism there gathers
/// activations and logits; the weights stay sharded and are never gathered.
static ENGINE_COLLECTIVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:vllm|sglang)[/\\](?:\w+[/\\])*(?:distributed|device_communicators)[/\\]")
        .expect("pattern compiles")
});

/// Parameters gathered across ranks before a layer runs: DeepSpeed ZeRO-3's
/// coordinator (`fetch_sub_module`, `__all_gather_params`,
/// `GatheredParameters`), FSDP's unshard (`_unshard`, `wait_for_unshard`,
/// `foreach_all_gather`), and a bare `torch.distributed.all_gather` frame.
const GATHER: &str = concat!(
    r"fetch_sub_module|_all_?gather_params|all_gather_coalesced|partition_parameters\.py|",
    r"GatheredParameters|\bin _?unshard\b|wait_for_unshard|_all_gather_flat_param|",
    r"foreach_all_gather|\bin all_gather\b",
);

/// A state dict put together to save a checkpoint: FSDP's full state dict
/// hooks and the warning its clone prints when that runs out of memory
/// (`torch/distributed/fsdp/_state_dict_utils.py`), its optimizer-state
/// gather (`full_optim_state_dict`, `_all_gather_optim_state`), the
/// distributed checkpoint's `get_model_state_dict`/`_gather_state_dict`,
/// ZeRO-3's `_zero3_consolidated_16bit_state_dict`, `ZeroRedundancyOptimizer`'s
/// `consolidate_state_dict`, and a save call of the trainer or the user's
/// code (`save_model`, `_save_checkpoint`, `save_pretrained`, `fsdp_save_*`):
/// a GPU that runs out of memory while saving holds the gathered model.
const SAVE_GATHER: &str = concat!(
    r"_full_(?:pre|post)_state_dict_hook|_common_unshard_(?:pre|post)_state_dict_hook|",
    r"Failed to clone\(\) tensor with name|full_optim_state_dict|_all_gather_optim_state|",
    r"_gather_orig_param_state|\bget_(?:model|optimizer)_state_dict\b|_gather_state_dict|",
    r"consolidated_16bit_state_dict|\bin save_16bit_model\b|\bin consolidate_state_dict\b|",
    r"\bin _?save_(?:model|checkpoint|pretrained)\w*\b|\bin \w*fsdp_save\w*\b",
);

/// Frames and calls that build, move or load weights.
const MODEL_FRAMES: &str = concat!(
    // Built: parameter initialisation, materialising meta tensors.
    r"reset_parameters|\bin _?init_weights\b|\bin to_empty\b|\bin _materialize|zero_init|",
    // A layer's constructor making its weight (`self.weight =
    // Parameter(torch.empty(out, in))`, as torch.nn's and Megatron's
    // parallel layers write it).
    r"\bParameter\(\s*torch\.(?:Tensor|empty|zeros|ones|randn?)\(|",
    r"init_empty_weights|_initialize_missing_keys|\bin initialize_weights\b|",
    // Moved or cast: nn.Module.to/.cuda/.half all go through _apply.
    r"\bin _apply\b|\b(?:self|module)\._apply\(|param_applied = fn\(param\)|",
    // torch.load restoring CUDA storages onto the device.
    r"_cuda_deserialize|default_restore_location|restore_location\(|",
    // transformers, accelerate, safetensors loaders.
    r"\bin from_pretrained\b|\bin from_preset\b|\.from_preset\(|_load_pretrained_model|_load_state_dict_into_meta_model|",
    r"set_module_tensor_to_device|\bin load_state_dict\b|\.load_state_dict\(|",
    r"_move_model_to_device|\bin prepare_model\b|\bdispatch_model\b|load_checkpoint_in_model|",
    r"safe_open|safetensors\W+torch\.py|",
    // Any loader that names the model, weights or checkpoint.
    r"\bin _*load_(?:\w+_)?(?:model|models|weights|checkpoint|state_dict)\w*\b|",
    r"\bin model_load\b|load_models_gpu|load_checkpoint_guess_config|",
    // DeepSpeed's and FSDP's set-up: weights, gradients and optimizer
    // states placed before the first step (ZeRO-3's optimizer builds its
    // fp32 partitions and states in `_setup_for_real_optimizer`,
    // deepspeed/runtime/zero/stage3.py).
    r"deepspeed\.initialize\(|DeepSpeedEngine\(|_configure_zero_optimizer|_setup_for_real_optimizer|",
    r"initialize_optimizer_states|_create_fp32_partitions|_configure_distributed_model|",
    r"_broadcast_model|_init_param_handle_from_module|_move_module_to_device|",
    r"_sync_module_params_and_buffers|",
    // The call that moves a model in the user's own code.
    r"(?i:\b(?:self\.)?(?:model|pipe|pipeline|net|unet|vae|text_encoder|encoder|decoder|module)(?:\(\))?\.(?:cuda|to)\(|",
    r"^\s*(?:self\.)?\w*model\s*=\s*\S.*\)\.(?:cuda|to)\()",
);

/// Log lines printed while a model is being loaded: progress bars, loaders'
/// messages, a loader node that failed, a load reported as failed.
const MODEL_LOGS: &str = concat!(
    r"Loading checkpoint shards|(?i:\bloading (?:the )?(?:model|weights|checkpoint|pipeline)\b)|",
    r"(?i:failed to load (?:the |\w+ )?model|model failed to load)|",
    r"Creating model from config|Requested to load \w+|Loading \d+ new models?|",
    r"Moving model\(s\)|",
    // ComfyUI's message for a node that raised: a loader node.
    r"Error occurred when executing \w*(?:Load|load)\w*|",
    "加载模型",
);

/// Words that say a second model came onto the device, or that the model
/// was switched or reloaded in the same process.
const SEVERAL_MODELS: &str = concat!(
    r"(?i:\bswitch(?:ed|es|ing)?\b[^.\n]{0,25}\b(?:models?|checkpoints?)\b|",
    r"\bmodels?\b[^.\n]{0,10}\bswitch|",
    r"\bchang(?:e|ed|es|ing)\b (?:the |to (?:an)?other |between )?(?:models?|checkpoints?)\b|",
    r"\breload(?:ed|ing|s)? (?:the |a |another )?(?:models?|checkpoints?|pipelines?)\b|",
    r"\b(?:second|another|previous|old|both|two|multiple) (?:models|model|checkpoints?|pipelines?)\b|",
    r"\b(?:[2-9]|three|four|several) models\b|\bmodels (?:concurrently|at (?:the same|once))\b|",
    r"\bmodels?\b[^.\n]{0,20}\b(?:not|never|doesn'?t|does not|didn'?t|won'?t) (?:get )?(?:be )?(?:unload|release|free)|",
    r"\bunload(?:ing)? (?:the )?(?:previous|old|other|first) model|",
    // A model built or loaded over and over (in a loop, per request): each
    // copy stays until the last reference to it goes.
    r"\b(?:models?|pipelines?)\b[^.\n]{0,20}\bin a loop\b|",
    r"\b(?:continuously|repeatedly)\s+(?:\w+\s+)?(?:initiali[sz]\w*|creat\w*|load\w*|instantiat\w*|build\w*)\b[^.\n]{0,40}\bmodels?\b|",
    // Work that keeps several models on the device by design: distillation
    // (a teacher beside the student), speculative decoding (a draft model
    // beside the target), RLHF (reward, reference and critic models beside
    // the policy).
    r"\b(?:teacher|student|draft|reward|reference|critic) models?\b|\bspeculative decoding\b|\bknowledge distillation\b|",
    // A model said to stay resident beside the work ("while the 27B model
    // was resident", "two resident models").
    r"\bresident\b[^.\n]{0,15}\bmodels?\b|\bmodels?\b[^.\n]{0,20}\b(?:was|were|is|are|stays?|stayed|remains?|remained|kept) (?:still )?resident\b)|",
    "重新加载模型|切换模型|老模型|旧模型",
);

/// Words that say memory stays from earlier steps or runs: it grows step
/// after step, fails only after many steps or on a second run, never goes
/// down.
const KEPT_ALIVE: &str = concat!(
    r"(?i:\bafter (?:about |maybe |around |roughly |some |a few |several |certain |many |\d+ )+",
    r"(?:steps|iterations|iters|batches|generations|runs|images|requests|calls)\b|",
    r"\b(?:second|2nd) (?:run|time|call|generation|try|attempt)\b|\brun(?:ning)? (?:it )?(?:again|twice)\b|",
    r"\b(?:doesn'?t|does not|don'?t|never|won'?t) (?:go|come) (?:back )?down\b|",
    r"\b(?:memory|vram|usage)\b[^.\n]{0,20}\b(?:keeps? (?:growing|increasing|rising|climbing)|grows|increases|leaks?)\b|",
    r"\bmemory leak|",
    // A loop around the whole run: "if you run it in a loop", "called
    // repeatedly". (Time alone, "after some time", also tells of a
    // training run reaching a longer input: not read.)
    r"\bin a loop\b|\brepeatedly\b|\bover and over\b)|",
    // The same growth in Chinese reports: 显存一直增加 "GPU memory keeps
    // increasing", 内存不断增长 "memory grows and grows".
    r"(?:显存|内存)(?:占用|使用)?量?(?:一直|持续|不断|逐渐|越来越)在?(?:增加|增长|上涨|升高|变大|多)",
);

/// A notebook's frames.
const NOTEBOOK: &str = r"Cell In ?\[\d*\]|<ipython-input-|ipykernel_\d+|in <cell line";

/// Words that say the batch was already 1; diffusion scripts name their
/// batch by the images made at once (`--n_samples` of the Stable Diffusion
/// scripts, "a.k.a. batch size" in their help; diffusers'
/// `num_images_per_prompt`).
const BATCH_OF_ONE: &str = concat!(
    r#"(?i:\b(?:micro_|per_device_\w*|train_micro_)?batch[ _-]?size\w*"?\s*(?:=|:|is|was|of|to|as|set to)?\s*"#,
    r"1(?:$|[^.\d]|\.(?:$|\D))|\bbs[ =]1(?:$|[^.\d]|\.(?:$|\D))|",
    r"(?:--n_samples|\bnum_images_per_prompt)\s*[= ]\s*1(?:$|[^.\d])|",
    // The number before the words ("to train the model with 1 batch
    // size"), or spelled out ("a batch size of one").
    r"(?:^|[^.\d])\b1 batch[ _-]size\b|\bbatch[ _-]size (?:of |is |was )?one\b)",
);

/// Words that say a batch of one runs ("There's no error when the batch
/// size is 1", "batch size 1 works"): the batch was not already 1, it is
/// what a smaller one fixes.
static BATCH_OF_ONE_WORKS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i:\bno (?:errors?|problems?|issues?|oom)\s+(?:when|with|at|if|for)\b|",
        r"\b(?:batch[ _-]?size|bs)\s*(?:=|:|of|is)?\s*1\s+(?:works|worked|runs|ran|is fine|is ok|trains)\b)"
    ))
    .expect("pattern compiles")
});

/// Frames and lines of diffusion pipelines: diffusers' pipelines and UNet,
/// k-diffusion's samplers, ComfyUI (its `comfy/` package and its nodes),
/// the webui's and Forge's `modules/sd_*`, Fooocus' `ldm_patched`, and the
/// words users name them by: the image and video diffusion models by their
/// published names (FLUX.1, SD3, Wan 2.x, HunyuanVideo, CogVideoX,
/// LTX-Video, AnimateDiff, Stable Video Diffusion), image-to-video or
/// text-to-video work, and the VAE decoding latents. FLUX is read only
/// with its version or variant, as Julia's `Flux` is a training library.
const DIFFUSION: &str = concat!(
    r"diffusers[/\\]|k_diffusion|comfy[/\\]|ComfyUI|KSampler|SamplerCustom|VAEDecode|VAEEncode|",
    r"ldm_patched|modules[/\\]sd_|(?i:stable[ _-]?diffusion|\bsdxl\b|txt2img|img2img|\bunet\b|denois|",
    r"\bflux[ ._-]?(?:1|dev|schnell|krea|kontext|fill)|\bsd3|\bwan[ _-]?2(?:\.\d)?\b|wan2gp|",
    r"hunyuan[ _-]?video|cogvideo|\bltx[ _-]?v(?:ideo)?\b|animatediff|stable[ _-]video|",
    r"\b(?:image|img|text|txt)[ _-]?(?:2|to)[ _-]?vid(?:eo)?\b|\b[it]2v\b|video[ _-]generation|",
    r"\bvae[ _.-]?(?:decod|encod|tiled|tiling)|decod\w*\s+(?:the\s+)?latents\b)",
);

/// A memory share set below 0.6 of the GPU, by the knob of each stack: JAX
/// (XLA_PYTHON_CLIENT_MEM_FRACTION, default .75), TensorFlow 1
/// (per_process_gpu_memory_fraction), PyTorch
/// (torch.cuda.set_per_process_memory_fraction), Paddle
/// (FLAGS_fraction_of_gpu_memory_to_use, default .92), vLLM
/// (gpu_memory_utilization, default .9), TGI (--cuda-memory-fraction, 1.0)
/// and SGLang (--mem-fraction-static, about .88). Every default is above
/// 0.6: a value below it was set on purpose, and caps the program there.
/// Knobs that set a limit whatever their value cap it too: TensorFlow's
/// `LogicalDeviceConfiguration(memory_limit=MB)` (and the older
/// `VirtualDeviceConfiguration`), and NVIDIA Merlin's and NVTabular's
/// `TF_MEMORY_ALLOCATION` (a fraction below 1, megabytes above; unset it
/// is 0.5), which they hand to TensorFlow as that `memory_limit`. Paddle's
/// own OOM message states the share in effect (`FLAGS_fraction_of_gpu_
/// memory_to_use is 0.50 now`), whatever the code tried to set.
const LOW_FRACTION: &str = concat!(
    r#"(?i:(?:XLA_PYTHON_CLIENT_MEM_FRACTION|per_process_gpu_memory_fraction|set_per_process_memory_fraction|"#,
    r#"fraction_of_gpu_memory_to_use|gpu[_-]memory[_-]utilization|cuda[_-]memory[_-]fraction|mem[_-]fraction[_-]static)"#,
    r#"["'\]\s]*(?:is\s+)?[=:(,]?\s*["']?0?\.[0-5]\d*(?:$|[^\d.]))|"#,
    r#"(?:Logical|Virtual)DeviceConfiguration\(\s*memory_limit\s*=\s*\d|"#,
    r#"\bTF_MEMORY_ALLOCATION["'\]\s]*[=:]\s*["']?\d*\.?\d"#,
);

/// The KV cache or the context length an inference run was given, by the
/// knob of each engine: vLLM's `--max-model-len` / `max_model_len`,
/// llama.cpp's `-c` / `--ctx-size` / `n_ctx`, Ollama's `num_ctx`, SGLang's
/// `--context-length`, engines' `--kv-...` flags, the cache by its name in
/// code (Transformers' `past_key_values`, MLX-LM's `prompt_cache`), and the
/// words users name them by ("KV cache", "context size", "context length").
const LONG_CONTEXT: &str = concat!(
    r"(?i:\bkv[-_ ]?cache\b|\bpast_key_values\b|\bprompt_cache\b|--kv-[a-z][\w-]*|\bn_ctx\b|--ctx-size\b|\bnum_ctx\b|--max-model-len\b|\bmax_model_len\b|",
    r"--context-length\b|\bcontext[ _](?:size|length|window)s?\b|\bctx[-_]size\b)",
);

/// Words of a report that doubt the device is large enough for the model:
/// a question on how much memory it needs or requires, a minimum
/// requirement, the reporter's own GPU to upgrade, a smaller model that
/// works, memory simply too little. Advice to switch to a larger GPU or a
/// smaller model (a guide's fixes pasted with the error) is not read, nor
/// asking what another user's run took ("how much memory did you use"):
/// neither doubts this device.
const CAPACITY_DOUBT: &str = concat!(
    r"(?i:\bhow much (?:gpu |cuda |video |graphics |system )?(?:memory|v?ram)\b[^.?\n]{0,30}\b(?:need|needs|needed|require|requires|required)\b|",
    r"\bminimum (?:gpu |system |hardware )?(?:memory|v?ram|requirements?)\b|",
    r"\bupgrade (?:my|our) (?:gpu|graphics card|video card)\b|\b(?:i|we) (?:need|have to buy) (?:a )?(?:bigger|larger) (?:gpu|graphics card)\b|",
    // A smaller model that works: the size word names a model, not a data
    // set ("works well on small pool" is the data).
    r"\bwork(?:s|ed)? (?:fine |well |ok )?(?:with|on|for) (?:the |a )?(?:smaller|medium|base|small|tiny)(?:[ -][\w.]+)?[ -](?:models?|ones?|versions?|variants?|checkpoints?)\b|",
    r"\bsmaller models? (?:works?|runs?|is fine)\b|\bwith (?:a |the )?smaller models?,? (?:it )?(?:works?|runs?)\b|",
    r"\b(?:simply|just) too (?:little|small)\b|\btoo (?:little|small) (?:gpu |video )?(?:memory|v?ram)\b)",
);

/// TensorFlow holding the GPU beside another framework. TensorFlow maps
/// nearly all of a GPU's memory when it first touches it (its
/// `allow_growth` is off by default), and JAX's GPU memory notes tell
/// users who load data with TensorFlow to hide the GPU from it with
/// `tf.config.set_visible_devices([], "GPU")`: that line in a report, or
/// words saying TensorFlow grabs, eats or preallocates all of the memory.
const SECOND_FRAMEWORK: &str = concat!(
    r#"set_visible_devices\(\s*\[\s*\]\s*,\s*["']GPU["']\s*\)|"#,
    r"(?i:\b(?:tf|tensorflow)\b[^.\n]{0,40}?\b(?:grab|eat|take|hog|prealloc\w*|reserv)\w*\s+(?:up\s+)?(?:all|most|the\s+whole|the\s+entire)\b)",
);

/// TensorFlow or JAX in the process (see
/// [`ContextEvidence::preallocating_framework`]); TensorFlow's bazel
/// workspace names its NCCL `nccl_archive` (tensorflow/workspace2.bzl), and
/// XLA kept the name.
const PREALLOCATING_FRAMEWORK: &str = concat!(
    r"(?i:\btensorflow\b|\btf-nightly|MirroredStrategy|\bjax(?:lib)?\b|XLA_PYTHON_CLIENT_\w+|\bnccl_archive\b)|",
    r"\bTF\b",
);

/// Whisper by its names: openai-whisper, whisper.cpp (`whisper_full`,
/// `whisper_init`), faster-whisper, WhisperX, and apps that say
/// "whisper: transcription failed".
const SPEECH_MODEL: &str = r"(?i:\bwhisper(?:x|\.cpp|_\w+)?\b|faster[-_]whisper)";

/// A training run by its words and frames: train, training, fine-tuning
/// (in English and Chinese, 训练 "train", 微调 "fine-tune"), epochs, a
/// `train.py`, a backward pass or an optimizer's step. "Pre-trained" and
/// "trained" say what a model is, not what the run does: not read.
const TRAINING: &str = concat!(
    r"(?i:\btrain(?:s|ing)?\b|\bfine-?tun(?:e|es|ed|ing)\b|\bepochs?\b|\btrainer\.train\(|",
    r"\.backward\(|\brun_backward\b|\boptimizer\.step\(|训练|微调)",
);

/// A GPU of at most 4 GB by its name or its stated size. The names are of
/// cards every variant of which has at most 4 GB (NVIDIA's product
/// specification pages: GeForce MX110-MX550 2-4 GB; GeForce 810M-960M 1-4
/// GB; GT 710-740 and GT 1010/1030 1-4 GB; GTX 750-780 1-3 GB (4 GB
/// variants of 750 Ti, 760, 770), GTX 950-970 2-4 GB, GTX 1050/1050 Ti 2-4
/// GB, GTX 1630/1650 4 GB; Jetson Nano 2-4 GB shared with its CPU); a card
/// written with a size of 1-4 GB after its number (`GTX 1060 3GB`, `RTX 3050
/// 4GB`); 1-4 GB of VRAM, video or GPU memory in words; and `nvidia-smi`'s
/// usage column (`262MiB / 976MiB`) with a total up to 4608 MiB.
const SMALL_DEVICE: &str = concat!(
    r"(?i:\bgeforce\s*mx\s?\d{3}\b|\bmx\s?[1-5][1-5]0\b|\b(?:8[1-6]0|9[1-6]0)mx?\b|",
    r"\bgtx\s?(?:7[5-8]0|9[5-7]0|10[35]0|16[35]0)(?:\s?ti)?\b|\bgt\s?(?:7[1-4]0|10[13]0)\b|\bjetson\s+nano\b|",
    r"\b(?:gtx?|rtx)\s?\d{3,4}(?:\s?ti)?\s?[1-4]\s?gb?\b|",
    r"\b[1-4](?:\.\d)?\s?gb?\s*(?:of\s+)?(?:vram|video\s*memory|gpu\s*memory|显存)|\b[1-4]\s?gb?\s+(?:gpu|graphics\s*card|video\s*card)\b|",
    r"\bmib\s*/\s*(?:[1-9]\d{2}|[1-3]\d{3}|4[0-5]\d{2}|460[0-8])\s?mib\b)",
);

/// Where a line read for the context stands.
#[derive(Clone, Copy)]
enum At {
    /// Its index among the lines before the failure.
    Before(usize),
    /// A line of the failure's own text.
    Own,
    /// Its index among the lines after the failure.
    After(usize),
}

/// Reads the lines before the failure, its own text and the lines after.
pub(crate) fn read(before: &[String], text: &str, following: &[String]) -> ContextEvidence {
    let start = before.len().saturating_sub(LINES_BEFORE);
    let log_from = before.len().saturating_sub(LOG_LINES_BEFORE);
    // Each line with where it stands: its index among `before`, the
    // event's own text, or its index among the lines after.
    let lines = before[start..]
        .iter()
        .enumerate()
        .map(|(i, l)| (At::Before(start + i), l.as_str()))
        .chain(text.lines().map(|l| (At::Own, l)))
        .chain(
            following
                .iter()
                .enumerate()
                .map(|(i, l)| (At::After(i), l.as_str())),
        );
    // The last line before the event saying a load finished, and the last
    // after it (a report's log pasted under the error is the run that led
    // to it), looked for only once a loader's line needs it (a log dense
    // with OOM lines has none).
    let mut done: Option<Option<usize>> = None;
    let mut done_after: Option<Option<usize>> = None;
    // One pass of the set over each line; the first line matching each
    // signal is its evidence (a loader's log line only near the error and
    // after the last line that says a load finished).
    let mut found: [Option<String>; SIGNAL_COUNT] = Default::default();
    for (at, line) in lines {
        if !SIGNAL_WORDS.is_match(line) {
            continue;
        }
        let matched = SIGNALS.matches(line);
        for i in matched.iter() {
            if i == Signal::ModelLog as usize {
                match at {
                    At::Before(at) => {
                        let finished = *done.get_or_insert_with(|| load_done_at(before));
                        if at < log_from || finished.is_some_and(|d| at <= d) {
                            continue;
                        }
                    }
                    At::After(at) => {
                        let finished = *done_after.get_or_insert_with(|| load_done_at(following));
                        if finished.is_some_and(|d| at <= d) {
                            continue;
                        }
                    }
                    At::Own => {}
                }
            }
            if i == Signal::BatchOfOne as usize && BATCH_OF_ONE_WORKS.is_match(line) {
                continue;
            }
            if i == Signal::Gather as usize && ENGINE_COLLECTIVE.is_match(line) {
                continue;
            }
            found[i].get_or_insert_with(|| quote(line));
        }
    }
    let take = |s: Signal| found[s as usize].clone();
    let saved = take(Signal::SaveGather);
    let gathered = saved.clone().or_else(|| take(Signal::Gather));
    ContextEvidence {
        gathering: gathered.is_some(),
        for_checkpoint: saved.is_some(),
        model_states: gathered
            .or_else(|| take(Signal::ModelFrame))
            .or_else(|| take(Signal::ModelLog)),
        several_models: take(Signal::SeveralModels),
        kept_alive: take(Signal::KeptAlive),
        notebook: take(Signal::Notebook),
        batch_of_one: take(Signal::BatchOfOne),
        diffusion: take(Signal::Diffusion),
        low_fraction: take(Signal::LowFraction),
        long_context: take(Signal::LongContext),
        capacity_doubt: take(Signal::CapacityDoubt),
        second_framework: take(Signal::SecondFramework),
        preallocating_framework: take(Signal::PreallocatingFramework),
        speech_model: take(Signal::SpeechModel),
        training: take(Signal::Training),
        small_device: take(Signal::SmallDevice),
        named_model: named_model::read(
            before[start..]
                .iter()
                .map(String::as_str)
                .chain(text.lines())
                .chain(following.iter().map(String::as_str)),
        ),
        // Read by the scanner, which knows a report's paste.
        ranks_on_first_gpu: None,
    }
}

/// Lines of a multi-GPU job that put every rank's memory on its first GPU:
/// a resume from a checkpoint (PyTorch's "Saving and loading models" notes:
/// `torch.load` restores storages to the device they were saved from, so a
/// checkpoint saved by rank 0 lands on `cuda:0` in every rank unless
/// `map_location` says otherwise), or the processes said to sit on the
/// first GPU (a rank that never called `torch.cuda.set_device` makes its
/// context there). Read from the failure's lines and, for a report, the
/// paste under it. Returns the line that shows the ranks' memory.
pub(crate) fn ranks_on_first_gpu<'a>(
    lines: impl Iterator<Item = &'a str> + Clone,
) -> Option<String> {
    static MULTI_GPU: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(concat!(
            r"(?i)multi[- ]?gpu|\bddp\b|distributed|torchrun|world_size|accelerate launch|",
            r"\b(?:[2-9]|two|four|eight|multiple|several)\s+gpus\b"
        ))
        .expect("pattern compiles")
    });
    static FIRST_GPU: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(concat!(
            r"(?i)\bresum(?:e|es|ed|ing)\b|\bmap_location\b|",
            r"(?:process(?:es)?|contexts?)\b[^.\n]{0,40}\b(?:first gpu|gpu\s*0\b|cuda:0)"
        ))
        .expect("pattern compiles")
    });
    // Words one of which each pattern needs (ASCII case folded): a log
    // dense with OOM lines runs neither pattern on most lines.
    static FIRST_GPU_WORDS: LazyLock<AhoCorasick> = LazyLock::new(|| {
        AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build([
                "resum",
                "map_location",
                "first gpu",
                "gpu 0",
                "gpu0",
                "cuda:0",
            ])
            .expect("the words build")
    });
    static MULTI_GPU_WORDS: LazyLock<AhoCorasick> = LazyLock::new(|| {
        AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build([
                "gpu",
                "ddp",
                "distributed",
                "torchrun",
                "world_size",
                "accelerate",
            ])
            .expect("the words build")
    });
    let shown = lines
        .clone()
        .find(|l| FIRST_GPU_WORDS.is_match(*l) && FIRST_GPU.is_match(l))?;
    lines
        .into_iter()
        .any(|l| MULTI_GPU_WORDS.is_match(l) && MULTI_GPU.is_match(l))
        .then(|| quote(shown))
}

/// The signals, in the order of [`SIGNALS`].
#[derive(Clone, Copy)]
enum Signal {
    SaveGather,
    Gather,
    ModelFrame,
    ModelLog,
    SeveralModels,
    KeptAlive,
    Notebook,
    BatchOfOne,
    Diffusion,
    LowFraction,
    LongContext,
    CapacityDoubt,
    SecondFramework,
    PreallocatingFramework,
    SpeechModel,
    Training,
    SmallDevice,
}

const SIGNAL_COUNT: usize = 17;

/// Words at least one of which every signal's pattern needs (ASCII case
/// folded): a line with none of them is skipped without running the set,
/// which keeps a log dense with OOM messages fast. The tests of `read` run
/// every signal's examples through it.
static SIGNAL_WORDS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build([
            // SAVE_GATHER
            "state_dict",
            "failed to clone",
            "save_",
            // GATHER
            "gather",
            "unshard",
            "partition_parameters",
            "fetch_sub_module",
            // MODEL_FRAMES
            "reset_parameters",
            "parameter(",
            "init_weights",
            "init_empty",
            "to_empty",
            "_materialize",
            "zero_init",
            "initialize",
            "_missing_keys",
            "_apply",
            "param_applied",
            "_deserialize",
            "restore_location",
            "from_pretrained",
            "from_preset",
            "_pretrained_model",
            "state_dict",
            "set_module_tensor",
            "_to_device",
            "prepare_model",
            "dispatch_model",
            "load_",
            "safe_open",
            "safetensors",
            "model_load",
            "deepspeed",
            "_configure_",
            "_create_fp32",
            "_broadcast_model",
            "_init_param_handle",
            "_sync_module",
            ".cuda(",
            ".to(",
            // MODEL_LOGS
            "loading",
            "failed to load",
            "creating model",
            "requested to load",
            "moving model",
            "error occurred when executing",
            "加载模型",
            // SEVERAL_MODELS
            "switch",
            "chang",
            "reload",
            "model",
            "checkpoint",
            "pipeline",
            "speculative",
            "distillation",
            "模型",
            // KEPT_ALIVE
            "after",
            "second",
            "2nd",
            "again",
            "twice",
            "down",
            "keep",
            "grow",
            "increas",
            "leak",
            "loop",
            "repeatedly",
            "over and over",
            "显存",
            "内存",
            // NOTEBOOK
            "cell in",
            "ipython-input",
            "ipykernel_",
            "cell line",
            // BATCH_OF_ONE
            "batch",
            "bs=",
            "bs ",
            "n_samples",
            "num_images_per_prompt",
            // DIFFUSION
            "diffusers",
            "k_diffusion",
            "comfy",
            "ksampler",
            "samplercustom",
            "vaedecode",
            "vaeencode",
            "ldm_patched",
            "sd_",
            "stable",
            "sdxl",
            "txt2img",
            "img2img",
            "unet",
            "denois",
            "flux",
            "sd3",
            "wan",
            "hunyuan",
            "cogvideo",
            "ltx",
            "animatediff",
            "vid",
            "2v",
            "vae",
            "latents",
            // LOW_FRACTION
            "fraction",
            "utilization",
            "memory_limit",
            "tf_memory_allocation",
            // LONG_CONTEXT
            "kv",
            "ctx",
            "model-len",
            "model_len",
            "context",
            "past_key_values",
            "prompt_cache",
            // CAPACITY_DOUBT
            "how much",
            "minimum",
            "upgrade",
            "bigger",
            "larger",
            "works ",
            "worked ",
            "work fine",
            "work well",
            "work with",
            "work on",
            "work for",
            "smaller model",
            "too little",
            "too small",
            // PREALLOCATING_FRAMEWORK ("tf" also finds "TF").
            "tensorflow",
            "tf-nightly",
            "mirroredstrategy",
            "jax",
            "xla_python_client",
            "nccl_archive",
            "tf",
            // SECOND_FRAMEWORK
            "set_visible_devices",
            "tf",
            "tensorflow",
            // SPEECH_MODEL
            "whisper",
            // TRAINING
            "train",
            "fine-tun",
            "finetun",
            "epoch",
            "backward",
            "optimizer",
            "训练",
            "微调",
            // SMALL_DEVICE
            "geforce",
            "mx1",
            "mx2",
            "mx3",
            "mx4",
            "mx5",
            "mx 1",
            "mx 2",
            "mx 3",
            "mx 4",
            "mx 5",
            "0m",
            "gtx",
            "gt 7",
            "gt 10",
            "gt7",
            "gt10",
            "rtx",
            "jetson",
            "vram",
            "video memory",
            "gpu memory",
            "gb gpu",
            "g gpu",
            "gb graphics",
            "gb video",
            "显存",
            "mib /",
            "mib/",
        ])
        .expect("the signal words build")
});

/// Every signal's pattern in one set, so a line is read once.
static SIGNALS: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new([
        SAVE_GATHER,
        GATHER,
        MODEL_FRAMES,
        MODEL_LOGS,
        SEVERAL_MODELS,
        KEPT_ALIVE,
        NOTEBOOK,
        BATCH_OF_ONE,
        DIFFUSION,
        LOW_FRACTION,
        LONG_CONTEXT,
        CAPACITY_DOUBT,
        SECOND_FRAMEWORK,
        PREALLOCATING_FRAMEWORK,
        SPEECH_MODEL,
        TRAINING,
        SMALL_DEVICE,
    ])
    .expect("the context signals compile")
});

/// The line, trimmed and cut to `QUOTE_CHARS` characters.
fn quote(line: &str) -> String {
    let line = line.trim().trim_start_matches(['│', '|', '>', '`']).trim();
    match line.char_indices().nth(QUOTE_CHARS) {
        Some((at, _)) => format!("{}...", &line[..at]),
        None => line.to_string(),
    }
}

/// Whether anything around the event reads as one of the signals.
#[cfg(test)]
fn quiet(e: &ContextEvidence) -> bool {
    *e == ContextEvidence::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_string).collect()
    }

    fn around(before: &str) -> ContextEvidence {
        read(&lines(before), "RuntimeError: CUDA out of memory.", &[])
    }

    #[test]
    fn a_gpu_of_at_most_4_gb_by_name_or_size_is_a_small_device() {
        for line in [
            "Graphic NVIDIA Geforce 920M",
            "win10 x64 8G RAM NVIDIA GeForce 940MX",
            "Out of memory on SubCenter-ArcFace-r100-gpu (ubuntu 22.04, Nvidia GTX 10603gb)",
            "a laptop with a GeForce MX130",
            "GTX 1650 Super",
            "I only have 2GB VRAM",
            "RTX 3050 4GB laptop",
            "|   0  GeForce GTX 750     Off  |  |    262MiB /   976MiB |",
            "on a Jetson Nano",
        ] {
            assert!(around(line).small_device.is_some(), "{line}");
        }
        for line in [
            "win10 x64 8G RAM",
            "RTX 3060 12GB",
            "24GB VRAM",
            "GTX 1080 Ti",
            "|    262MiB / 24576MiB |",
            "14GB of GPU memory",
        ] {
            assert!(around(line).small_device.is_none(), "{line}");
        }
    }

    #[test]
    fn a_layer_making_its_weight_is_model_states() {
        let e = around("self.weight = Parameter(torch.Tensor(self.output_size_per_partition, self.in_features))");
        assert!(e.model_states.is_some());
        assert!(around("p = nn.Parameter(x)").model_states.is_none());
    }

    #[test]
    fn a_loader_s_line_above_a_finished_load_is_not_read() {
        let e = around("Loading model.safetensors...\nLoaded 1324 weights from 1 file(s)");
        assert!(e.model_states.is_none(), "{e:?}");
        assert!(around("Loading model.safetensors...")
            .model_states
            .is_some());
    }

    #[test]
    fn a_training_run_is_read() {
        for line in [
            "  File \"train.py\", line 88, in <module>",
            "I'm using a very small data set for training NER using roberta-base",
            "Epoch: [3] \t Batch_speed: 3158.273 samples/sec",
            "fine-tuning llama-7b with LoRA",
            "    loss.backward()",
            "训练模型时显存爆了",
            "    optimizer.step()",
        ] {
            assert!(around(line).training.is_some(), "{line}");
        }
        for line in [
            "loading the pre-trained weights",
            "a model trained on ImageNet",
            "python generate.py --prompt cat",
        ] {
            assert!(around(line).training.is_none(), "{line}");
        }
    }

    #[test]
    fn whisper_is_read_as_a_speech_model() {
        for line in [
            "whisper: transcription failed with code -7",
            "I'm using whisper.cpp as a C++ library",
            "from faster_whisper import WhisperModel",
            "whisper_full_with_state: failed to encode",
        ] {
            assert!(around(line).speech_model.is_some(), "{line}");
        }
        assert!(around("whispering gallery").speech_model.is_none());
    }

    #[test]
    fn tensorflow_holding_the_gpu_beside_another_framework_is_read() {
        for line in [
            "Recent TF breaks JAX on GPU by eating all memory",
            r#"tf.config.experimental.set_visible_devices([], "GPU")"#,
            "tensorflow_datasets makes TensorFlow preallocate all the GPU memory",
            "TF grabs all GPU memory when the dataset is built",
        ] {
            assert!(around(line).second_framework.is_some(), "{line}");
        }
        for line in [
            "tf.config.set_visible_devices(gpus[0], 'GPU')",
            "TF used all the data it was given",
            "the stuff takes all memory",
        ] {
            assert!(around(line).second_framework.is_none(), "{line}");
        }
    }

    #[test]
    fn tensorflow_or_jax_in_the_process_is_read() {
        for line in [
            "I was trying to run a official TF model, which used to run before.",
            "MirroredStrategy() crashes with NVLinked GPUs",
            "bazel-out/k8-py2-opt/bin/external/nccl_archive/alloc.h:40 NCCL WARN Cuda failure 'out of memory'",
            "export XLA_PYTHON_CLIENT_MEM_FRACTION=.8",
        ] {
            assert!(around(line).preallocating_framework.is_some(), "{line}");
        }
        for line in [
            "torch.cuda.OutOfMemoryError: CUDA out of memory",
            "the tfrecord reader",
        ] {
            assert!(around(line).preallocating_framework.is_none(), "{line}");
        }
    }

    #[test]
    fn a_report_that_doubts_the_device_is_large_enough_is_read() {
        for line in [
            "how much memory this model require ?",
            "How much VRAM do I need to run it?",
            "how much Graphics Memory is required to use the function.",
            "Minimum RAM for M1 Mac? 8GB doesn't seem to be enough.",
            "does this mean I need to upgrade my GPU?",
            "works fine with medium model.",
            "With a smaller model it runs.",
            "Maybe 512mb video memory is simply too little?",
        ] {
            assert!(around(line).capacity_doubt.is_some(), "{line}");
        }
        for line in [
            "how much memory did you use for training?",
            "the network works with fp16",
            "a larger batch makes it fail",
            "Switch to a RunPod instance with a larger GPU memory capacity or optimize the model to be smaller.",
            "Try a smaller model or a larger GPU.",
            "For GPU mode CLI version works well on small pool, for the big pool it stops",
        ] {
            assert!(around(line).capacity_doubt.is_none(), "{line}");
        }
    }

    #[test]
    fn the_kv_cache_or_context_length_is_read() {
        for line in [
            "ft serve --model m --kv-reserve-tokens 131072",
            "vllm serve m --max-model-len 131072",
            "llama_new_context_with_model: n_ctx      = 65536",
            "running out of memory with context sizes larger than 56k",
            "the default size of KV-cache is very small",
            "    mx.eval([c.state for c in self.prompt_cache])",
            "    outputs = model(input_ids, past_key_values=past_key_values)",
        ] {
            assert!(around(line).long_context.is_some(), "{line}");
        }
        assert!(around("the context manager exits").long_context.is_none());
    }

    #[test]
    fn a_share_set_below_the_defaults_is_read_with_its_knob() {
        for line in [
            r#"Setting os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] = ".10" leads to jax to only preallocate 10%"#,
            "torch.cuda.set_per_process_memory_fraction(0.5, 0)",
            "config.gpu_options.per_process_gpu_memory_fraction = 0.4",
            "vllm serve m --gpu-memory-utilization 0.3",
            "--mem-fraction-static=0.2",
            r#"os.environ["TF_MEMORY_ALLOCATION"] = "0.7""#,
            "TF_MEMORY_ALLOCATION=8000 python train.py",
            "[tf.config.LogicalDeviceConfiguration(memory_limit=1024)])",
            "tf.config.experimental.VirtualDeviceConfiguration(memory_limit=4096)",
            "   2) FLAGS_fraction_of_gpu_memory_to_use is 0.50 now, please set it to a higher value but less than 1.0.",
        ] {
            assert!(around(line).low_fraction.is_some(), "{line}");
        }
        for line in [
            "vllm serve m --gpu-memory-utilization 0.90",
            "XLA_PYTHON_CLIENT_MEM_FRACTION=.95",
            "--cuda-memory-fraction 0.99",
            "the fraction of memory in use is 0.3",
            "   2) FLAGS_fraction_of_gpu_memory_to_use is 0.92 now, please set it to a higher value but less than 1.0.",
            "memory_limit: 0",
            "TF_MEMORY_ALLOCATION is a fraction of GPU memory if below 1",
        ] {
            assert!(around(line).low_fraction.is_none(), "{line}");
        }
    }

    #[test]
    fn diffusion_pipelines_are_read_by_their_frames_and_names() {
        for line in [
            "  File \"/app/diffusers/pipelines/flux/pipeline_flux.py\", line 889, in __call__",
            "  File \"/ComfyUI/comfy/samplers.py\", line 700, in sample",
            "- **Node Type:** KSampler",
            "  File \"/Fooocus/ldm_patched/modules/model_management.py\", line 1, in load",
            "SDXL at 1024x1024 runs out of memory",
            "Error occurred when executing VAEDecode:",
            "Tested with Wan2.2: Image2video Enhanced Lightning v2 14B",
            "OOM while the pipeline goes to decoding the latents.",
            "I was using FLUX.1-dev at 1024x1024",
            "HunyuanVideo at 720p runs out of memory",
            "Out of memory while VAE decoding on Wan 2.2 t2v 5b.",
            "any video generation preset",
        ] {
            assert!(around(line).diffusion.is_some(), "{line}");
        }
        for line in [
            "  File \"/app/transformers/generation/utils.py\", line 1, in generate",
            "Stable release 2.1",
            "using Flux.jl with a Chain of Dense layers",
            "train a VAE on MNIST",
            "model = Wan(...) # a wide area network model",
        ] {
            assert!(around(line).diffusion.is_none(), "{line}");
        }
    }

    #[test]
    fn zero3_and_fsdp_gathers_read_as_model_states_being_gathered() {
        for frame in [
            "    param_coordinator.fetch_sub_module(sub_module, forward=True)",
            "  File \".../partitioned_param_coordinator.py\", line 424, in __all_gather_params",
            "  File \".../torch/distributed/fsdp/_flat_param.py\", line 1, in _unshard",
            "[rank6]:     self.wait_for_unshard()",
            "  File \".../distributed_c10d.py\", line 1432, in all_gather",
        ] {
            let e = around(frame);
            assert!(e.gathering, "{frame}");
            assert_eq!(e.model_states.as_deref(), Some(frame.trim()), "{frame}");
        }
    }

    #[test]
    fn state_dicts_built_to_save_read_as_the_model_gathered_for_a_checkpoint() {
        for frame in [
            "  File \".../torch/distributed/fsdp/_state_dict_utils.py\", line 303, in _full_pre_state_dict_hook",
            "[rank7]:     _common_unshard_pre_state_dict_hook(",
            ".../fully_sharded_data_parallel.py:2224: UserWarning: Failed to clone() tensor with name lm_head.weight.",
            "    optim_state = FSDP.full_optim_state_dict(model, optimizer)",
            "  File \".../deepspeed/runtime/engine.py\", line 3300, in _zero3_consolidated_16bit_state_dict",
            "  File \".../torch/distributed/checkpoint/state_dict.py\", line 1, in get_model_state_dict",
            "  File \"/x/transformers/trainer.py\", line 2790, in _save_checkpoint",
            "  File \"/x/train/fsdp_utils.py\", line 109, in fsdp_save_ckpt",
        ] {
            let e = around(frame);
            assert!(e.gathering && e.for_checkpoint, "{frame}");
            assert_eq!(e.model_states.as_deref(), Some(frame.trim()), "{frame}");
        }
        // Loading a state dict, or a gather that runs a layer, is not a save.
        for frame in [
            "  File \".../fsdp/_state_dict_utils.py\", line 849, in _pre_load_state_dict_hook",
            "  File \"/x/transformers/modeling_utils.py\", line 717, in _load_state_dict_into_meta_model",
            "  File \".../torch/distributed/fsdp/_flat_param.py\", line 1, in _unshard",
            "save_steps=500, eval_steps=500",
        ] {
            assert!(!around(frame).for_checkpoint, "{frame}");
        }
    }

    #[test]
    fn moving_loading_and_building_weights_read_as_model_states() {
        for frame in [
            "  File \"/x/torch/nn/modules/module.py\", line 641, in _apply",
            "│ ❱ 1145 │   │   return self._apply(convert)",
            "  File \"/x/torch/serialization.py\", line 135, in _cuda_deserialize",
            "  File \"/x/transformers/modeling_utils.py\", line 717, in _load_state_dict_into_meta_model",
            "  File \"/x/accelerate/accelerator.py\", line 912, in prepare_model",
            "  File \"/x/whisper/__init__.py\", line 122, in load_model",
            "  File \"/x/comfy/model_management.py\", line 410, in load_models_gpu",
            "  File \"/x/deepspeed/pt/deepspeed_light.py\", line 591, in _configure_zero_optimizer",
            "    model = hmr(config.SMPL_MEAN_PARAMS).to(device)",
            "  File \"/x/torch/nn/modules/linear.py\", line 96, in reset_parameters",
        ] {
            let e = around(frame);
            assert!(e.model_states.is_some() && !e.gathering, "{frame}");
        }
    }

    #[test]
    fn loaders_logs_read_as_model_states() {
        for log in [
            "Loading checkpoint shards:  53%|█████     | 8/15 [00:16<00:14,  2.04s/it]",
            "Error occurred when executing Echo_LoadModel:",
            "Exception: Failed to load SDXL model",
            "Stable diffusion model failed to load",
            "Requested to load SDXL",
            "正在加载模型，耗时需要几分钟，请稍后...",
        ] {
            assert!(around(log).model_states.is_some(), "{log}");
        }
    }

    #[test]
    fn a_load_that_finished_in_the_log_pasted_under_the_error_is_not_model_states() {
        let oom = "torch.OutOfMemoryError: HIP out of memory. Tried to allocate 47.98 GiB.";
        let log = lines("Requested to load WAN21\nloaded completely 56256.66 2706.17 True");
        assert!(read(&[], oom, &log).model_states.is_none());
        // A load the pasted log shows unfinished is still read.
        let log = lines("Requested to load WAN21");
        assert!(read(&[], oom, &log).model_states.is_some());
    }

    #[test]
    fn a_forward_pass_or_a_data_loader_is_not_model_states() {
        let e = around(concat!(
            "  File \"/x/torch/nn/modules/module.py\", line 1501, in _call_impl\n",
            "    return forward_call(*args, **kwargs)\n",
            "  File \"/x/torch/nn/modules/conv.py\", line 463, in forward\n",
            "  File \"/x/torch/utils/data/dataloader.py\", line 1, in __next__\n",
            "Epoch 3:  45%|████▌     | 450/1000 [01:02<01:16, loss=0.31]",
        ));
        // The epoch says a run trains; nothing says the model's states.
        assert!(e.training.is_some());
        assert!(quiet(&ContextEvidence {
            training: None,
            ..e
        }));
    }

    #[test]
    fn a_switch_or_reload_of_the_model_reads_as_several_models() {
        for words in [
            "i get this error just after i switch the model... then i go to LTXV",
            "It happens when changing the model in the dropdown",
            "After I reload the model the old one stays in VRAM",
            "the previous model is not unloaded",
            "选择ChatGLM-6B-int8 重新加载模型后，报错",
            "I load two models on one GPU",
            "tried accessing all 3 models concurrently through api",
            "loading the draft model next to the 70B one",
            "the teacher model and the student both on one A100",
            "PPO with the reward model and the reference model on each GPU",
            "caused by continuously initializing `keras.applications` models in a loop",
            "the pipeline is created in a loop for every request",
            "using the video model while the 4-bit 27B model was resident",
        ] {
            assert!(around(words).several_models.is_some(), "{words}");
        }
        assert!(around("resident memory of the process grew")
            .several_models
            .is_none());
        assert!(around("Loading model resnet50").several_models.is_none());
        assert!(around("the model is too big for my card")
            .several_models
            .is_none());
        assert!(around("other models work fine").several_models.is_none());
    }

    #[test]
    fn growth_and_second_runs_read_as_kept_alive() {
        for words in [
            "I can train the model correctly in the begining. After maybe 600 steps, I got the error",
            "it stays in 14gb doesnt go down after certain generations",
            "The first call works, the second run fails",
            "GPU memory keeps increasing every epoch",
            "训练时显存一直增加，最后出现 out of memory",
            "If you run the code in a loop, you will encounter the errors",
        ] {
            assert!(around(words).kept_alive.is_some(), "{words}");
        }
        assert!(around("after the first epoch").kept_alive.is_none());
        assert!(around("显存不足，训练失败").kept_alive.is_none());
    }

    #[test]
    fn a_batch_of_one_that_runs_is_not_a_batch_already_one() {
        assert!(
            around("Even when I am using batch size of 1, still cuda out of memory")
                .batch_of_one
                .is_some()
        );
        for words in [
            "There's no error when the batch size is 1. Is there a way to fix this?",
            "batch size 1 works, 2 fails",
        ] {
            assert!(around(words).batch_of_one.is_none(), "{words}");
        }
        // Trying a batch of one without success is one.
        assert!(
            around("even i tried to see if it works with bs=1, but no success")
                .batch_of_one
                .is_some()
        );
        assert!(around("Epoch 1/3, step 10/36").kept_alive.is_none());
        assert!(around("in the training loop").kept_alive.is_none());
        assert!(around("I get the error after some time")
            .kept_alive
            .is_none());
    }

    #[test]
    fn notebook_frames_are_read() {
        assert!(around("Cell In[8], line 2").notebook.is_some());
        assert!(around("<ipython-input-5-d4516447ef56> in <module>")
            .notebook
            .is_some());
        assert!(around("  File \"train.py\", line 3, in <module>")
            .notebook
            .is_none());
    }

    #[test]
    fn ranks_on_the_first_gpu_need_a_multi_gpu_job() {
        let read = |text: &str| ranks_on_first_gpu(text.lines());
        assert!(read("Multi-GPU OOM when resuming from checkpoint").is_some());
        assert!(read("pl.Trainer(gpus=4, distributed_backend='ddp')\nthere is an explosion of processes created on the first GPU").is_some());
        assert!(read(
            "torchrun --nproc_per_node 8 train.py\nstate = torch.load(path)  # no map_location"
        )
        .is_some());
        // A single GPU resuming, or several GPUs without a resume.
        assert!(read("OOM when resuming from checkpoint on one GPU").is_none());
        assert!(read("training on 4 GPUs runs out of memory at step 40").is_none());
    }

    #[test]
    fn a_batch_of_one_is_read_and_larger_batches_are_not() {
        for words in [
            "When I train the WaveGlow model eventhough set the batchsize 1.",
            "i have set batch_size to 1, but it still occur oom",
            "--batch_size 1",
            "bs=1",
            "\"train_micro_batch_size_per_gpu\": 1,",
            "per_device_train_batch_size=1,",
            "I used 8 GPUs to train the model with 1 batch size.",
            "even with a batch size of one",
            " --precision full --device cuda --bf16 --n_samples 1",
            "pipe(prompt, num_images_per_prompt=1)",
        ] {
            assert!(around(words).batch_of_one.is_some(), "{words}");
        }
        for words in [
            "batch_size=16",
            "batch size 128",
            "batch_size = 1.5",
            "--n_samples 12",
            "Parallel:1 BatchSize:512",
            "0.1 batch size",
        ] {
            assert!(around(words).batch_of_one.is_none(), "{words}");
        }
    }

    #[test]
    fn lines_after_the_failure_count_and_quotes_are_short() {
        let after = lines(&format!(
            "    param_coordinator.fetch_sub_module(sub_module, forward=True){}",
            " x".repeat(200)
        ));
        let e = read(
            &[],
            "torch.cuda.OutOfMemoryError: CUDA out of memory.",
            &after,
        );
        let q = e.model_states.expect("read after the failure");
        assert!(q.chars().count() <= QUOTE_CHARS + 3);
    }

    #[test]
    fn a_serving_engine_s_tensor_parallel_gather_is_no_weight_gather() {
        let torch =
            r#"  File "/x/torch/distributed/distributed_c10d.py", line 1432, in all_gather"#;
        assert!(around(torch).gathering);
        for line in [
            r#"  File "/x/site-packages/vllm/distributed/device_communicators/base_device_communicator.py", line 58, in all_gather"#,
            r#"  File "/x/sglang/srt/distributed/parallel_state.py", line 9, in all_gather"#,
        ] {
            assert!(!around(line).gathering, "{line}");
        }
    }

    #[test]
    fn merging_keeps_the_first_reading_of_each_signal() {
        let a = ContextEvidence {
            model_states: Some("a".into()),
            gathering: true,
            ..ContextEvidence::default()
        };
        let b = ContextEvidence {
            model_states: Some("b".into()),
            kept_alive: Some("k".into()),
            ..ContextEvidence::default()
        };
        let m = a.merge(b);
        assert_eq!(m.model_states.as_deref(), Some("a"));
        assert!(m.gathering);
        assert_eq!(m.kept_alive.as_deref(), Some("k"));
    }
}
