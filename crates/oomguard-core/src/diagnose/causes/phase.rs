//! Rules that read where in the program it failed: the phase (model load,
//! forward, backward, optimizer step, generation, evaluation, data loading,
//! start-up), the text around the failure (weights loaded or gathered, a
//! second model, memory kept from earlier steps, a batch of one, a
//! batch-size finder that gave up), what the process's memory did before it failed, and the
//! differential for a failure that states nothing.

use super::processes::CONTEXT_AND_DISPLAY;
use super::{pct, CauseId, Ranking};
use crate::diagnose::accounting::{Accounting, SegmentKind};
use crate::diagnose::trend::MemoryTrend;
use crate::diagnose::Cause;
use crate::oom::{Framework, OomEvent, Phase};
use crate::size::format_size as fs;

/// How much the framework held for live tensors, as the phase rules weigh
/// it: the share of what it could use, the sentence that says it, and the
/// batch's weight that follows from the share.
struct Held {
    /// Live tensors over what the framework could have used.
    share: Option<f64>,
    /// "live tensors hold X of the Y device (Z%)", or empty when unknown.
    sentence: String,
    known: bool,
}

impl Held {
    fn of(event: &OomEvent, acc: &Accounting) -> Held {
        let a = event.memory.allocated_bytes;
        let share = match (a, acc.framework_budget) {
            (Some(a), Some(b)) if b > 0 => Some(a as f64 / b as f64),
            _ => None,
        };
        let sentence = match (a, acc.extent) {
            (Some(a), Some(t)) => format!(
                "live tensors hold {} of the {} device ({})",
                fs(a),
                fs(t),
                pct(a, t)
            ),
            (Some(a), None) => format!("live tensors hold {}", fs(a)),
            _ => String::new(),
        };
        Held {
            share,
            sentence,
            known: a.is_some(),
        }
    }

    /// Tensor memory dominates what the framework could use: the workload.
    fn dominant(&self) -> bool {
        self.share.is_none_or(|s| s >= 0.5)
    }

    /// The batch's score: 0.3 plus up to 0.35 by the tensors' share.
    fn weight(&self) -> f64 {
        self.share.map_or(0.5, |s| 0.3 + 0.35 * s.min(1.0))
    }

    /// `s`, after the sentence on what the tensors hold when known.
    fn with(&self, s: &str) -> String {
        if self.sentence.is_empty() {
            s.to_string()
        } else {
            format!("{}; {s}", self.sentence)
        }
    }
}

/// Rules that read the phase and how much the framework held for tensors.
/// Serving engines and the OOM killer have rules of their own.
pub(super) fn by_phase(r: &mut Ranking, event: &OomEvent, acc: &Accounting) {
    if matches!(event.framework, Framework::Vllm | Framework::LlamaCpp) || event.facts.oom_killer()
    {
        return;
    }
    let held = Held::of(event, acc);
    match event.phase {
        Phase::ModelLoad => model_load(r, &held),
        Phase::OptimizerStep => optimizer_step(r, &held),
        Phase::Generation if event.facts.context.diffusion.is_some() => {
            diffusion(r, &held);
        }
        Phase::Generation => generation(r, event, &held),
        Phase::Evaluation => evaluation(r, event, &held),
        Phase::Startup => startup(r, &held),
        Phase::DataLoading => data_loading(r, &held),
        Phase::Forward | Phase::Backward | Phase::Unknown => training_step(r, event, &held),
    }
}

fn model_load(r: &mut Ranking, held: &Held) {
    r.add(
        CauseId::ModelTooLarge,
        0.8,
        held.with("it failed while loading the weights, before any batch ran"),
    );
    r.add(
        CauseId::MultipleModels,
        0.3,
        "a model already loaded on the device (a previous cell or a second model) leaves less room",
    );
}

fn optimizer_step(r: &mut Ranking, held: &Held) {
    r.add(
        CauseId::ModelTooLarge,
        0.65,
        held.with("it failed creating optimizer states (AdamW keeps two fp32 copies per parameter): full fine-tuning of this model needs more memory"),
    );
    r.add(
        CauseId::BatchTooLarge,
        0.3,
        "activations freed by then; the batch matters less at this step",
    );
}

/// KV cache's score when the text names the cache or the context length
/// the run was given, and when it does not: a model generating in a
/// training framework (`generate()`, a sampler loop) holds its cache as
/// ordinary tensors of the batch, and reports of such runs are cut by
/// fewer or shorter sequences, so the batch leads unless the text speaks
/// of the cache.
const KV_NAMED: f64 = 0.6;
const KV_UNNAMED: f64 = 0.45;

fn generation(r: &mut Ranking, event: &OomEvent, held: &Held) {
    let kv = if event.facts.context.long_context.is_some() {
        KV_NAMED
    } else {
        KV_UNNAMED
    };
    r.add(
        CauseId::KvCache,
        kv,
        held.with("generation grows the KV cache with every token, batch x length"),
    );
    r.add(
        CauseId::BatchTooLarge,
        held.weight().min(0.55),
        held.with("fewer sequences at once shrink the KV cache and logits"),
    );
}

/// A diffusion pipeline generating: no KV cache; the activations of the
/// denoiser grow with the image's pixels and the batch (its attention with
/// their square), the VAE's decode at full resolution, and the weights of
/// the denoiser, text encoders and VAE share the card.
fn diffusion(r: &mut Ranking, held: &Held) {
    r.add(
        CauseId::BatchTooLarge,
        0.55,
        held.with("a diffusion step's activations grow with the image's size and the batch (attention with the square of the latent's tokens), and the VAE decodes at full resolution: a smaller size or batch, or tiled VAE decoding, fits"),
    );
    r.add(
        CauseId::ModelTooLarge,
        0.5,
        held.with("the denoiser's weights with the text encoders and the VAE may not fit the card together: offloading (enable_model_cpu_offload, --lowvram, --medvram) keeps only the running part on it"),
    );
}

/// A request of at least this share of the device (1/4) is one tensor of
/// the input's size, not the small allocations of graphs kept alive.
const LARGE_REQUEST_SHARE: u64 = 4;

fn evaluation(r: &mut Ranking, event: &OomEvent, held: &Held) {
    let m = &event.memory;
    if let (Some(q), Some(t)) = (m.requested_bytes, m.total_bytes) {
        if q.saturating_mul(LARGE_REQUEST_SHARE) >= t {
            // Evaluation often runs whole images or sequences where training
            // ran crops or windows: one tensor of that input is the limit.
            r.add_checked(
                CauseId::BatchTooLarge,
                0.65,
                format!(
                    "one request of {} is {} of the device: a single tensor of the evaluated input (a full-resolution image, a whole sequence where training used crops or windows) does not fit",
                    fs(q),
                    pct(q, t)
                ),
                Some("evaluate with a smaller batch or in tiles or chunks (sliding-window inference): if it passes, the input's size was the limit"),
            );
        }
    }
    r.add(
        CauseId::LeftoverTensors,
        0.5,
        held.with("evaluation without torch.no_grad() keeps activations for a backward that never comes; training tensors (optimizer states, gradients) may still be alive"),
    );
    r.add(
        CauseId::BatchTooLarge,
        held.weight(),
        held.with("the evaluation batch may be larger than the training batch"),
    );
}

fn startup(r: &mut Ranking, held: &Held) {
    r.add(
        CauseId::ModelTooLarge,
        0.5,
        held.with("it failed at start-up, sizing memory for the model"),
    );
}

fn data_loading(r: &mut Ranking, held: &Held) {
    r.add(
        CauseId::BatchTooLarge,
        0.6,
        held.with("the batch itself is too large to move to the device"),
    );
}

/// Forward, backward or an unknown phase: the batch when the tensors
/// dominate, weakly when they are a small part, and without figures the
/// differential of a training step.
fn training_step(r: &mut Ranking, event: &OomEvent, held: &Held) {
    if held.known && held.dominant() && event.phase == Phase::Unknown && small_request(event) {
        match nothing_freed(event) {
            Some(cached_free) => persistent_differential(r, held, cached_free),
            None => full_device_differential(r, held, model_leads_on_small_device(event)),
        }
    } else if held.known && held.dominant() {
        let what = if event.phase == Phase::Backward {
            "the backward pass needs the activations of the whole batch plus their gradients"
        } else {
            "activations grow with batch x sequence length (x image size)"
        };
        r.add(CauseId::BatchTooLarge, held.weight(), held.with(what));
        r.add(
            CauseId::ModelTooLarge,
            0.2,
            "if batch 1 fails too, the model's own memory (weights, and for training gradients and optimizer states) does not fit",
        );
        r.add(
            CauseId::LeftoverTensors,
            0.15,
            "if memory climbs step after step, tensors from earlier steps are kept alive (a loss kept with its graph, outputs in a list)",
        );
    } else if held.known {
        r.add(
            CauseId::BatchTooLarge,
            0.3,
            held.with("the framework's own tensors are a small part of the device"),
        );
    } else if matches!(event.phase, Phase::Forward | Phase::Backward) {
        r.add(
            CauseId::BatchTooLarge,
            0.5,
            format!(
                "it failed in {}, which scales with the batch",
                event.phase.describe()
            ),
        );
        r.add(
            CauseId::LeftoverTensors,
            0.3,
            "without figures, a run that fails only after some steps points at tensors kept alive from earlier steps",
        );
        r.add(
            CauseId::ModelTooLarge,
            0.25,
            "if batch 1 fails too, the model does not fit",
        );
    }
}

/// Below this share of the device (1/16), a request is one tensor among
/// many: it says the device was already full, not that this allocation's
/// batch filled it. Activations of a batch that is too large show as
/// requests of a sizeable fraction of the device (an attention score matrix,
/// a high-resolution feature map).
const SMALL_REQUEST_SHARE: u64 = 16;

/// The request is a small share of the device (or of the configured cap).
fn small_request(event: &OomEvent) -> bool {
    let m = &event.memory;
    match (m.requested_bytes, m.total_bytes.or(m.allowed_bytes)) {
        (Some(q), Some(t)) => q.saturating_mul(SMALL_REQUEST_SHARE) < t,
        _ => false,
    }
}

/// Devices of at most this size (with the rounding of printed figures) are
/// small for deep-learning work: the 2, 3 and 4 GiB cards of laptops and
/// entry desktops (GeForce MX, GTX 1050/1650, Quadro P1000). A model of one
/// billion parameters in fp16 takes 2 GiB of weights, Stable Diffusion 1.5's
/// UNet, text encoder and VAE about 2 GiB, and the CUDA context a few hundred
/// MiB more (2 bytes a parameter; the context's size varies with the driver
/// and the libraries loaded): on such a card the model's own memory is most
/// of the device before any batch.
const SMALL_DEVICE: u64 = (4 << 30) + (512 << 20);

/// The device (or the cap the framework had) is a small one, by its figures
/// or, when the message has none, by the card the text names; and nothing
/// shows a training run: a run that trains sets its batch (and on a small
/// card picks a small model to begin with), so its batch stays the first
/// lever; an app that only runs a model has the model's size as its own.
fn model_leads_on_small_device(event: &OomEvent) -> bool {
    let m = &event.memory;
    let small = match m.total_bytes.or(m.allowed_bytes) {
        Some(t) => t <= SMALL_DEVICE,
        None => event.facts.context.small_device.is_some(),
    };
    small && event.facts.context.training.is_none()
}

/// The device is full of this framework's tensors, the request is small and
/// nothing names the phase: the text cannot tell a batch's activations from
/// the model's own states, tensors kept alive from earlier steps or a second
/// model. The batch still leads by a hair (the most common cause of full
/// devices in a training loop) unless the device is small, where the model's
/// own memory leads; each candidate carries the check that tells it apart.
fn full_device_differential(r: &mut Ranking, held: &Held, small_device: bool) {
    let lead = held.weight();
    let (batch, model) = if small_device {
        (lead - 0.05, lead)
    } else {
        (lead, lead - 0.05)
    };
    r.undecided();
    r.add_checked(
        CauseId::BatchTooLarge,
        batch,
        held.with("the device was full before a small request; in a training or batched loop the activations of the batch are the usual filler"),
        Some("rerun with half the batch (or sequence length, image size): if it passes, the batch's activations were the limit"),
    );
    let small = if small_device {
        "on a device this small the model's own memory (weights, and for training gradients and optimizer states, plus the CUDA context) is most of it before any batch"
    } else {
        "if it fails on the first step or at batch size 1, the model's own memory (weights, and for training gradients and optimizer states) fills the device"
    };
    r.add_checked(
        CauseId::ModelTooLarge,
        model,
        small,
        Some("run one step at batch size 1 and print torch.cuda.memory_allocated() after loading the model: most of the device already gone means the model"),
    );
    r.add_checked(
        CauseId::LeftoverTensors,
        lead - 0.1,
        "if it fails only after some steps or epochs, tensors from earlier steps are kept alive (a loss kept with its graph, outputs collected in a list, evaluation without torch.no_grad())",
        Some("print torch.cuda.memory_allocated() at the start of every step: a value that climbs step after step means tensors kept alive"),
    );
    r.add_checked(
        CauseId::MultipleModels,
        lead - 0.15,
        "a model loaded earlier in the same process (a notebook cell, a server's previous model, a second pipeline) still holds its weights",
        Some("list the models the process keeps on the device and torch.cuda.memory_allocated() after loading each; del the unused one and call torch.cuda.empty_cache()"),
    );
}

/// The cached-but-free bytes a run of allocations leaves when nothing was
/// ever freed: PyTorch's caching allocator carves 1-10 MiB tensors out of
/// 20 MiB segments (CUDACachingAllocator.cpp kLargeBuffer) and smaller ones
/// out of 2 MiB segments (kSmallBuffer), so the unused tail of the current
/// segment of each stays cached but free; and the figures are printed to
/// 0.01 GiB (about 10 MiB). Below their sum, what is cached but free is
/// segment tails, not blocks that tensors freed by a step left behind.
const TAILS_ONLY: u64 = (20 + 2 + 10) << 20;

/// The allocator's cache holds nothing but segment tails, on a device full
/// of the framework's tensors: no tensor was freed, or what was freed was
/// given back. A forward or backward pass frees temporaries all along (the
/// allocator caches their blocks, `free` keeps them in the pool) and, when
/// it fails, the blocks still cached but free are the holes they left in
/// segments partly in use (it releases whole free segments and retries
/// before raising, `release_cached_blocks`). A cache without such holes is
/// the signature of allocations that all stay alive: weights being loaded
/// or moved to the device, a cache preallocated at start-up, a second
/// model. Returns the cached-but-free bytes when so.
fn nothing_freed(event: &OomEvent) -> Option<u64> {
    let m = &event.memory;
    let (Some(a), Some(cf)) = (m.allocated_bytes, m.reserved_unallocated_bytes) else {
        return None;
    };
    (a >= 1 << 30 && cf < TAILS_ONLY).then_some(cf)
}

/// The differential of a full device whose cache holds no freed block: the
/// model's own memory first, then a second model (its weights are as
/// persistent), the batch behind them (a step frees temporaries and would
/// have left holes), and tensors kept from earlier steps last (those steps
/// freed their temporaries too). Still undecided, each with its check.
fn persistent_differential(r: &mut Ranking, held: &Held, cached_free: u64) {
    let lead = held.weight();
    r.undecided();
    r.add_checked(
        CauseId::ModelTooLarge,
        lead,
        held.with(&format!(
            "the allocator holds only {} cached but free, no more than the tails of its current segments: nothing was freed before the failure, as when weights are being loaded or moved to the device; the model's own memory fills it",
            fs(cached_free)
        )),
        Some("print torch.cuda.memory_allocated() right after the model is loaded and moved to the device: most of the device gone before the first batch means the model"),
    );
    r.add_checked(
        CauseId::MultipleModels,
        lead - 0.05,
        "a model loaded earlier in the same process (a notebook cell, a server's previous model, a second pipeline) holds its weights as persistently",
        Some("list the models the process keeps on the device and torch.cuda.memory_allocated() after loading each; del the unused one and call torch.cuda.empty_cache()"),
    );
    r.add_checked(
        CauseId::BatchTooLarge,
        lead - 0.08,
        "a training or inference step frees temporaries and leaves cached holes; with none, the batch is less likely what filled the device",
        Some("rerun with half the batch (or sequence length, image size): if it passes, the batch's activations were the limit"),
    );
    r.add_checked(
        CauseId::LeftoverTensors,
        lead - 0.15,
        "tensors kept across steps come with steps that freed their temporaries; a cache without holes makes this less likely",
        Some("print torch.cuda.memory_allocated() at the start of every step: a value that climbs step after step means tensors kept alive"),
    );
}

/// What the device's figures put beside this process's allocator (other
/// processes, listed or inferred, and memory outside the framework), where
/// they say.
fn ranks_room(acc: &Accounting) -> Option<u64> {
    let others = acc.bytes(SegmentKind::OtherProcesses);
    let outside = acc.bytes(SegmentKind::OutsideFramework);
    match (others, outside) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    }
}

/// The model's score when the report doubts the device is large enough
/// for it: above the batch's score from the figures of a full device (at
/// most 0.65) and of a bare failure (0.45), below the readings that decide
/// (a load in the frames, a second model: 0.8 and more).
const CAPACITY_DOUBT_SCORE: f64 = 0.66;

/// What the text around the failure shows, as evidence for a cause: the
/// lines themselves are quoted. A second model or a model switched in the
/// same process outweighs a model load (the load fails because the first
/// model is still there); memory kept from earlier steps or runs outweighs
/// the batch of the step that failed; weights being loaded, moved or
/// gathered, or a batch that was already 1, put the model's states ahead of
/// the batch.
pub(super) fn context(r: &mut Ranking, event: &OomEvent, acc: &Accounting) {
    let c = &event.facts.context;
    if let Some(line) = &c.ranks_on_first_gpu {
        // Above a load's 0.8: a resume loads, and what it loads lands on
        // one GPU from every rank. Unless the figures show no more memory
        // beside this process's allocator than its own context and a
        // display take: then the other ranks hold little there, and the
        // reading stays a candidate with its check.
        let beside = ranks_room(acc);
        let shown = beside.is_none_or(|b| b > CONTEXT_AND_DISPLAY);
        r.add_checked(
            CauseId::OtherProcesses,
            if shown { 0.85 } else { 0.4 },
            format!("a multi-GPU job whose ranks put memory on the first GPU (\"{line}\"): resuming, every rank loads the checkpoint where rank 0 saved it (cuda:0) unless torch.load is given map_location; a rank that never calls torch.cuda.set_device makes its CUDA context there too"),
            Some("nvidia-smi while it starts: one process per rank on GPU 0 means the ranks share it; load with torch.load(path, map_location='cpu') (or the rank's own device) and call torch.cuda.set_device(local_rank) before any CUDA work"),
        );
        r.add(
            CauseId::LeftoverTensors,
            if shown { 0.55 } else { 0.3 },
            "the loaded optimizer and model states stay referenced after they were copied into the model",
        );
    }
    if let Some(line) = &c.long_context {
        // Training keeps no KV cache: only an inference run's cache counts.
        let training = matches!(
            event.phase,
            Phase::Backward | Phase::OptimizerStep | Phase::DataLoading
        );
        if !training {
            r.add_checked(
                CauseId::KvCache,
                0.55,
                format!("the text names the KV cache or the context length the run was given (\"{line}\"): the cache sized from that length may be what fills the device"),
                Some("rerun with half the context length (--max-model-len, -c / n_ctx, num_ctx, the engine's KV reservation): if the failure moves or goes, it was the cache"),
            );
        }
    }
    if let Some(line) = &c.capacity_doubt {
        r.add_checked(
            CauseId::ModelTooLarge,
            CAPACITY_DOUBT_SCORE,
            format!("the report doubts the device is large enough for the model (\"{line}\"): its weights, and for training its gradients and optimizer states, may not fit whatever the batch"),
            Some("estimate the weights: parameters x bytes per parameter (2 for fp16/bf16, 4 for fp32, about 0.5 for 4-bit); for training add about 16 bytes per parameter with Adam in mixed precision; compare with the device's memory"),
        );
    }
    if let Some(line) = &c.second_framework {
        if event.framework != Framework::TensorFlow {
            r.add_checked(
                CauseId::NonFrameworkMemory,
                0.8,
                format!("TensorFlow holds the GPU in the same process (\"{line}\"): it reserves most of the device when it starts, outside this framework's allocator, and what this framework asks for next does not fit"),
                Some("nvidia-smi right after TensorFlow is imported and used for data: most of the GPU taken by this process before the model runs is TensorFlow's; hide the GPU from it with tf.config.set_visible_devices([], \"GPU\") and rerun"),
            );
        }
    }
    // The share caps the framework's own pool; a library that allocates
    // outside it (cuBLAS's and cuDNN's handles, NCCL's buffers) finds more
    // room the lower the share, so the cap is no cause of its failure.
    let outside_the_pool = matches!(
        event.framework,
        Framework::Cublas | Framework::Cudnn | Framework::Nccl
    );
    if let (Some(line), false) = (&c.low_fraction, outside_the_pool) {
        r.add_checked(
            CauseId::MemoryCap,
            0.75,
            format!("the text caps the program's share of the GPU (\"{line}\"): it may use only that part, whatever else is free"),
            Some("nvidia-smi while it runs: memory free on the GPU while the program fails at its share means the cap; raise the fraction (or unset it) and rerun"),
        );
    }
    if let Some(line) = &c.several_models {
        r.add_checked(
            CauseId::MultipleModels,
            0.85,
            format!("the text says another model was loaded, switched or reloaded in the same process (\"{line}\"): the earlier model's weights stay on the device until nothing references them"),
            Some("nvidia-smi before and after the switch: memory that does not drop when the first model is replaced means it is still referenced; del it (and its pipeline), gc.collect(), torch.cuda.empty_cache(), or restart the app between models"),
        );
        r.add(
            CauseId::LeftoverTensors,
            0.6,
            "outputs or caches of the earlier model's runs may be what is still referenced",
        );
    }
    if let Some(line) = &c.kept_alive {
        r.add_checked(
            CauseId::LeftoverTensors,
            0.8,
            format!("the text says memory stays from earlier steps or runs (\"{line}\"): something keeps tensors alive across them (a loss kept with its graph, outputs appended to a list, a previous run's objects)"),
            Some("print torch.cuda.memory_allocated() at the start of every step or run: a value that climbs means tensors kept alive; a flat value that a larger input breaks means the batch"),
        );
    }
    if let Some(line) = &c.model_states {
        let (what, check) = if c.for_checkpoint {
            ("a state dict is being put together to save a checkpoint (a full state dict of FSDP, ZeRO-3's 16-bit consolidation): the whole model's weights, or its optimizer states, gathered onto one GPU beside what training keeps there, not the batch",
             "save with the gathered state offloaded to the CPU (FSDP: FullStateDictConfig(offload_to_cpu=True, rank0_only=True); DeepSpeed: stage3_gather_16bit_weights_on_model_save false and zero_to_fp32.py afterwards): a save that then passes was the gather")
        } else if c.gathering {
            ("parameters are being gathered across ranks (ZeRO-3, FSDP): the full weights of the layers gathered, with each rank's gradients and optimizer states, take the memory, not the batch", ESTIMATE_WEIGHTS)
        } else {
            ("weights are being built, loaded or moved to the device: the model's own memory (and, when training starts, its gradients and optimizer states) fills it before any batch runs", ESTIMATE_WEIGHTS)
        };
        r.add_checked(
            CauseId::ModelTooLarge,
            0.8,
            format!("{what} (\"{line}\")"),
            Some(check),
        );
        if let Some(cell) = &c.notebook {
            r.add_checked(
                CauseId::MultipleModels,
                0.6,
                format!("a notebook kernel keeps every model earlier cells loaded (\"{cell}\")"),
                Some("restart the kernel and run only the cell that loads this model: if it fits, an earlier cell's model was still on the device"),
            );
        }
    }
    named_model(r, event);
    // No batch ran before a runtime reserved its pool or while the program
    // started: a batch of 1 says nothing about those.
    let started = event.phase == Phase::Startup || event.facts.pool_reservation();
    let huge = event
        .memory
        .requested_bytes
        .filter(|&q| q >= LARGEST_WEIGHT_TENSOR);
    match (c.batch_of_one.as_ref().filter(|_| !started), huge) {
        (Some(line), Some(q)) => r.add_checked(
            CauseId::BatchTooLarge,
            0.75,
            format!("the batch was already 1 (\"{line}\") and one request is {}: no model's weight tensor is that large, so one sample's activations are (a long audio, sequence or video, a high resolution)", fs(q)),
            Some("cut the sample: split long audio or text into chunks (sliding windows), lower the resolution or the frame count; if memory drops with it, the input's size was the limit"),
        ),
        (Some(line), None) => r.add_checked(
            CauseId::ModelTooLarge,
            0.75,
            format!("the batch was already 1 (\"{line}\"): what remains is the model's weights, gradients and optimizer states, or one very long sample"),
            Some("run one step at batch size 1 and print torch.cuda.memory_allocated() right after the model and optimizer are created: most of the device gone before the batch means the model"),
        ),
        (None, _) => {}
    }
}

/// A single request at least this large is no weight tensor: the largest
/// tensors of published models are a few GiB (Llama 3.1 405B's embedding,
/// 128256 x 16384 in bf16, is 3.9 GiB, from its config.json's vocab_size
/// and hidden_size; a fused MoE layer's experts in DeepSeek-V3, 256 x 2 x
/// 2048 x 7168 in fp8, are 7 GiB), so a request above 16 GiB holds
/// activations of the input.
const LARGEST_WEIGHT_TENSOR: u64 = 16 << 30;

/// The check that sets the model's own memory against the device.
const ESTIMATE_WEIGHTS: &str = "estimate the weights: parameters x bytes per parameter (2 for fp16/bf16, 4 for fp32); for training add gradients and optimizer states (about 16 bytes per parameter with Adam in mixed precision); compare with the device";

/// Share of the device the weights of the model the text names must take
/// for the model to rank first: with half the card gone to weights, what a
/// batch adds is the smaller part, and training's gradients and optimizer
/// states come on top.
const NAMED_MODEL_SHARE: f64 = 0.5;

/// The model the text names by its size ("Llama-2-70b", "Mixtral 8x7b"), its
/// weights at the precision the text states and spread over the GPUs it
/// names, set against the device's total: weights that take half the card or
/// more make the model the first cause, and weights larger than the card
/// make it the cause whatever else the text says.
fn named_model(r: &mut Ranking, event: &OomEvent) {
    let Some(m) = &event.facts.context.named_model else {
        return;
    };
    let Some(total) = event.memory.total_bytes.filter(|t| *t > 0) else {
        return;
    };
    let weights = m.weight_bytes_per_gpu();
    let share = weights as f64 / total as f64;
    if share < NAMED_MODEL_SHARE {
        return;
    }
    let spread = if m.gpus > 1 {
        format!(" on each of {} GPUs", m.gpus)
    } else {
        String::new()
    };
    let (score, verdict) = if share >= 1.0 {
        // Weights larger than the card settle it: no batch or setting fits them.
        r.decided();
        (0.9, "more than the whole device holds".to_string())
    } else {
        (
            0.8,
            format!("{} of the device before any batch", pct(weights, total)),
        )
    };
    r.add_checked(
        CauseId::ModelTooLarge,
        score,
        format!(
            "the text names {} (about {:.1}B parameters): at {} its weights alone are about {}{spread}, {verdict} ({} total)",
            m.name,
            m.params as f64 / 1e9,
            m.precision(),
            fs(weights),
            fs(total),
        ),
        Some("compare the weights with the card: parameters x bytes per parameter (2 for fp16/bf16, 1 for 8-bit, about 0.56 for 4-bit); for training add gradients and optimizer states; a smaller or quantized model, or more GPUs (tensor parallelism, device_map=\"auto\"), is the fix when they do not fit"),
    );
}

/// A notebook's frames without anything else around the failure: a hint
/// listed below the causes the figures rank (earlier cells' objects stay in
/// the kernel), with the check that settles it.
pub(super) fn notebook(r: &mut Ranking, event: &OomEvent) {
    let c = &event.facts.context;
    if c.model_states.is_some() {
        return;
    }
    if let Some(cell) = &c.notebook {
        r.add_checked(
            CauseId::LeftoverTensors,
            0.4,
            format!("it ran in a notebook (\"{cell}\"): tensors, models and exceptions of earlier cells stay alive in the kernel"),
            Some("restart the kernel and run the failing cell alone: if it passes, earlier cells' objects were holding the memory"),
        );
    }
}

/// A batch-size finder halved the batch until zero: batch 1 failed too.
pub(super) fn batch_search_exhausted(r: &mut Ranking) {
    r.add(
        CauseId::ModelTooLarge,
        0.75,
        "accelerate's find_executable_batch_size halved the batch on every OOM (from starting_batch_size, 128 by default) until it reached zero: even batch size 1 did not fit, so the batch is not what fills the GPU; the model, its gradients and optimizer states (or one very long sample) do",
    );
    r.add(
        CauseId::LeftoverTensors,
        0.6,
        "a known pitfall: a model, optimizer or outputs referenced from outside the decorated function survive every retry, so each smaller batch starts from the memory the failed one left behind and fails too",
    );
}

/// Weighs in what the process's memory did before it failed.
pub(in crate::diagnose) fn from_trend(causes: &mut Vec<Cause>, trend: Option<MemoryTrend>) {
    let mut r = Ranking(std::mem::take(causes), false);
    match trend {
        Some(MemoryTrend::Climbing {
            from_bytes,
            to_bytes,
            seconds,
        }) => r.add(
            CauseId::LeftoverTensors,
            0.9,
            format!(
                "GPU memory climbed from {} to {} over {seconds:.0} s, step after step: tensors from earlier steps stay alive (a smaller batch only delays the OOM)",
                fs(from_bytes),
                fs(to_bytes)
            ),
        ),
        Some(MemoryTrend::SpikeAtStart {
            peak_bytes,
            seconds_to_peak,
        }) => r.add(
            CauseId::BatchTooLarge,
            0.75,
            format!(
                "memory reached {} within {seconds_to_peak:.1} s and stayed flat: the first step already needs it all",
                fs(peak_bytes)
            ),
        ),
        None => {}
    }
    *causes = r.0;
}

/// LLVM's own error (`LLVM ERROR: out of memory`, its `report_bad_alloc`):
/// a GPU runtime's kernel compiler (OpenCL, a graphics driver, TensorRT's
/// JIT) ran out while compiling, whatever the program was doing. A driver
/// or toolchain fault far more often than a full device; the host's RAM
/// next. Returns true when it applied.
pub(super) fn llvm_ran_out(r: &mut Ranking, event: &OomEvent) -> bool {
    if !event.message.contains("LLVM") {
        return false;
    }
    r.add(
        CauseId::NotMemory,
        0.6,
        "LLVM ran out while compiling a kernel: a driver or toolchain fault far more often than a full device",
    );
    r.add(
        CauseId::HostMemory,
        0.45,
        "the compiler runs in host memory: a machine short of RAM fails here too",
    );
    true
}

/// A failure with no figures and no phase: the text covers several causes
/// and cannot rank them; each gets the check that tells it apart. The batch
/// is the most common cause of these on real reports (19 of 33 bare
/// failures in the development corpus accept it, 11 the model, 11 another
/// process), so it leads by a hair; a compiler running out (LLVM) is
/// usually not the device's memory at all.
pub(super) fn bare_failure(r: &mut Ranking, event: &OomEvent) {
    r.undecided();
    if llvm_ran_out(r, event) {
        return;
    }
    tiny_request_alone(r, event);
    r.add(
        CauseId::BatchTooLarge,
        0.45,
        "the message gives no figures; in a training or batched loop the batch (or sequence, image size) is the usual cause",
    );
    match event.facts.context.small_device.as_ref() {
        Some(card) if model_leads_on_small_device(event) => r.add_checked(
            CauseId::ModelTooLarge,
            0.47,
            format!("the text names a GPU of at most 4 GB (\"{card}\"): the model's own memory (weights, the CUDA context) is most of such a card before any input"),
            Some(ESTIMATE_WEIGHTS),
        ),
        _ => r.add(
            CauseId::ModelTooLarge,
            0.42,
            "if it fails on the first step, or at any batch size, the model itself does not fit next to what else the device holds",
        ),
    }
    r.add(
        CauseId::OtherProcesses,
        0.4,
        "another process (a second job, a notebook kernel, a previous run) may hold the device",
    );
    r.add(
        CauseId::LeftoverTensors,
        0.25,
        "if it fails only after some steps, tensors from earlier steps are kept alive",
    );
    r.add(
        CauseId::MultipleModels,
        0.2,
        "a second model or inference session on the same device halves what each gets",
    );
    if matches!(event.framework, Framework::TensorFlow | Framework::Jax) {
        r.add_checked(
            CauseId::Fragmentation,
            0.2,
            "the framework's pool can hold enough free bytes in pieces too small for one tensor",
            Some("the allocator's dump logged after the failure: its Stats' InUse near Limit is a full pool, well below it a split one; or rerun with TF_GPU_ALLOCATOR=cuda_malloc_async"),
        );
    }
}

/// A request this small is one small tensor: at most a segment and a half
/// of PyTorch's caching allocator, which serves requests of 1-10 MiB from
/// segments of 20 MiB (CUDACachingAllocator.cpp kLargeBuffer, kMinLargeAlloc),
/// and a few growth steps of ONNX Runtime's or TensorFlow's BFC arena.
const TINY_REQUEST: u64 = 32 << 20;

/// Only a tiny request is known: the device was already full before it,
/// and what filled it is not this allocation. The framework's own holdings
/// are unknown, so memory held elsewhere (other processes, other models or
/// sessions of this one) comes first, each with the check that tells it.
fn tiny_request_alone(r: &mut Ranking, event: &OomEvent) {
    let m = &event.memory;
    let Some(q) = m
        .requested_bytes
        .filter(|&q| q <= TINY_REQUEST && m.total_bytes.is_none() && m.allocated_bytes.is_none())
    else {
        return;
    };
    // TensorFlow's BFC pool on a GPU is reserved when the process starts
    // (its `allow_growth` is off by default): a running op's tensor that
    // does not fit it (`OOM when allocating tensor with shape[...] ... by
    // allocator GPU_0_bfc`) found this process's own pool full, which no
    // other process can take from; the step's tensors filled it.
    if event.framework == Framework::TensorFlow && event.message.contains("_bfc") {
        return;
    }
    r.add_checked(
        CauseId::OtherProcesses,
        0.5,
        format!("a request of only {} failed: the device was full before it, and nothing in the text says this program filled it; another process holding the GPU is the first thing to rule out", fs(q)),
        Some("nvidia-smi --query-compute-apps=pid,used_memory --format=csv"),
    );
    r.add(
        CauseId::MultipleModels,
        0.47,
        "other models or inference sessions of this program (each with its own memory pool) may hold the device",
    );
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::oom::MemoryFigures;

    fn at(phase: Phase, e: &mut OomEvent) -> Ranking {
        e.phase = phase;
        let mut r = Ranking::new();
        by_phase(&mut r, e, &Accounting::of(e));
        r
    }

    /// Live tensors hold `allocated` of a 24 GiB device with 4 GiB reserved
    /// on top of them and nothing free.
    fn holding(allocated: u64) -> OomEvent {
        let mut e = pytorch(24 * GIB, GIB, 0);
        e.memory.allocated_bytes = Some(allocated);
        e.memory.reserved_bytes = Some(allocated + 4 * GIB);
        e
    }

    #[test]
    fn a_framework_s_share_is_no_cause_of_a_library_s_failure() {
        let capped = |framework: Framework| {
            let mut e = event(framework, MemoryFigures::default());
            e.facts.context.low_fraction = Some("memory_limit=5* 1024".into());
            let mut r = Ranking::new();
            context(&mut r, &e, &Accounting::of(&e));
            r.score(CauseId::MemoryCap)
        };
        assert_eq!(capped(Framework::TensorFlow), Some(0.75));
        assert_eq!(capped(Framework::Cublas), None);
        assert_eq!(capped(Framework::Nccl), None);
    }

    #[test]
    fn ranks_on_the_first_gpu_need_room_beside_the_allocator() {
        let ranked = |e: &OomEvent| {
            let mut r = Ranking::new();
            context(&mut r, e, &Accounting::of(e));
            r.score(CauseId::OtherProcesses)
        };
        // PyTorch 1.x figures of a resumed two-GPU run: 47.54 GiB device,
        // 40 GiB reserved, 5.76 GiB free, so 1.78 GiB beside the allocator,
        // no more than this process's context and a display.
        let mut e = pytorch(47540 * MIB, 6730 * MIB, 5760 * MIB);
        e.memory.allocated_bytes = Some(39430 * MIB);
        e.memory.reserved_bytes = Some(40 * GIB);
        e.facts.context.ranks_on_first_gpu = Some("resume=True on 2 GPUs".into());
        assert_eq!(ranked(&e), Some(0.4));
        // 10 GiB beside it: the ranks' memory shows.
        e.memory.reserved_bytes = Some(30 * GIB);
        e.memory.allocated_bytes = Some(29 * GIB);
        assert_eq!(ranked(&e), Some(0.85));
        // No figures: the words decide.
        let mut bare = event(Framework::PyTorch, MemoryFigures::default());
        bare.facts.context.ranks_on_first_gpu = Some("resume=True on 2 GPUs".into());
        assert_eq!(ranked(&bare), Some(0.85));
    }

    #[test]
    fn the_batch_weighs_by_the_share_of_live_tensors() {
        let r = at(Phase::Forward, &mut holding(20 * GIB));
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        // 20 of 24 GiB: 0.3 + 0.35 x 0.83.
        assert_eq!(r.score(CauseId::BatchTooLarge), Some(0.59));
        let r = at(Phase::Forward, &mut holding(GIB));
        assert_eq!(r.score(CauseId::BatchTooLarge), Some(0.3));
    }

    #[test]
    fn a_small_request_on_a_full_device_without_a_phase_is_a_differential() {
        // 20 of 24 GiB live, a 1 GiB request (1/24 of the device).
        let mut e = holding(20 * GIB);
        let r = at(Phase::Unknown, &mut e);
        assert!(r.1);
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        for id in [
            CauseId::ModelTooLarge,
            CauseId::LeftoverTensors,
            CauseId::MultipleModels,
        ] {
            assert!(r.0.iter().any(|c| c.id == id && c.check.is_some()));
        }
        // A request of a sixth of the device is the batch's activations.
        e.memory.requested_bytes = Some(4 * GIB);
        let r = at(Phase::Unknown, &mut e);
        assert!(!r.1);
        // A named phase decides too.
        e.memory.requested_bytes = Some(GIB);
        assert!(!at(Phase::Backward, &mut e).1);
    }

    #[test]
    fn on_a_small_device_the_full_device_differential_leads_with_the_model() {
        // 3.35 of 4 GiB live, a 72 MiB request, 60 MiB cached but free.
        let mut e = pytorch(4 * GIB, 72 * MIB, 0);
        e.memory.allocated_bytes = Some(3430 * MIB);
        e.memory.reserved_bytes = Some(3490 * MIB);
        let r = at(Phase::Unknown, &mut e);
        assert!(r.1);
        assert_eq!(r.top(), Some(CauseId::ModelTooLarge));
        assert!(r.score(CauseId::BatchTooLarge).is_some());
        // A run that trains keeps its batch first on the same card.
        e.facts.context.training = Some("File \"train.py\", line 9".into());
        assert_eq!(
            at(Phase::Unknown, &mut e).top(),
            Some(CauseId::BatchTooLarge)
        );
        // The same shares on a 24 GiB card keep the batch first.
        let r = at(Phase::Unknown, &mut holding(20 * GIB));
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
    }

    #[test]
    fn a_full_device_whose_cache_holds_no_freed_block_is_the_model_first() {
        // 20 of 24 GiB live, a 1 GiB request, and only 5 MiB cached but
        // free: nothing was freed, as while weights are loaded.
        let mut e = holding(20 * GIB);
        e.memory.reserved_bytes = Some(20 * GIB + 5 * MIB);
        e.memory.reserved_unallocated_bytes = Some(5 * MIB);
        let r = at(Phase::Unknown, &mut e);
        assert!(r.1, "still a differential");
        assert_eq!(r.top(), Some(CauseId::ModelTooLarge));
        assert!(r.score(CauseId::MultipleModels) > r.score(CauseId::BatchTooLarge));
        assert!(r.score(CauseId::BatchTooLarge) > r.score(CauseId::LeftoverTensors));
        assert!(r.0.iter().all(|c| c.check.is_some()));
        assert!(r.0[0].evidence.contains("5.00 MiB cached but free"));
        // Holes of 200 MiB are blocks a step freed: the batch leads again.
        e.memory.reserved_unallocated_bytes = Some(200 * MIB);
        assert_eq!(
            at(Phase::Unknown, &mut e).top(),
            Some(CauseId::BatchTooLarge)
        );
        // Tails of the segments stay under 32 MiB; at 32 MiB it is a hole.
        e.memory.reserved_unallocated_bytes = Some(31 * MIB);
        assert_eq!(
            at(Phase::Unknown, &mut e).top(),
            Some(CauseId::ModelTooLarge)
        );
        e.memory.reserved_unallocated_bytes = Some(32 * MIB);
        assert_eq!(
            at(Phase::Unknown, &mut e).top(),
            Some(CauseId::BatchTooLarge)
        );
        // A named phase, or a request that is a large share of the device,
        // keeps its own rule.
        e.memory.reserved_unallocated_bytes = Some(0);
        assert_eq!(
            at(Phase::Backward, &mut e).top(),
            Some(CauseId::BatchTooLarge)
        );
        e.memory.requested_bytes = Some(4 * GIB);
        assert_eq!(
            at(Phase::Unknown, &mut e).top(),
            Some(CauseId::BatchTooLarge)
        );
        // Without the cached figure nothing is read into it.
        let mut e = holding(20 * GIB);
        e.memory.reserved_bytes = None;
        e.memory.reserved_unallocated_bytes = None;
        assert_eq!(
            at(Phase::Unknown, &mut e).top(),
            Some(CauseId::BatchTooLarge)
        );
    }

    #[test]
    fn loading_and_optimizer_states_are_the_model_generation_the_kv_cache() {
        let r = at(Phase::ModelLoad, &mut holding(10 * GIB));
        assert_eq!(r.top(), Some(CauseId::ModelTooLarge));
        let r = at(Phase::OptimizerStep, &mut holding(10 * GIB));
        assert_eq!(r.top(), Some(CauseId::ModelTooLarge));
        // Generating with the cache named: the cache; without: the batch
        // of sequences, with the cache still a candidate.
        let mut e = holding(20 * GIB);
        e.facts.context.long_context = Some("max_new_tokens=4096".into());
        assert_eq!(at(Phase::Generation, &mut e).top(), Some(CauseId::KvCache));
        let r = at(Phase::Generation, &mut holding(20 * GIB));
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        assert!(r.0.iter().any(|c| c.id == CauseId::KvCache));
        // A diffusion pipeline keeps no KV cache.
        let mut e = holding(10 * GIB);
        e.facts.context.diffusion = Some("File \"comfy/samplers.py\", line 1, in sample".into());
        let r = at(Phase::Generation, &mut e);
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        assert!(r.0.iter().all(|c| c.id != CauseId::KvCache));
        let r = at(Phase::DataLoading, &mut holding(10 * GIB));
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
    }

    #[test]
    fn evaluation_s_single_large_tensor_is_its_input() {
        // 7.08 GiB asked of a 12 GiB card with 4.87 GiB live.
        let mut e = pytorch(12 * GIB, 7 * GIB, 5 * GIB);
        e.memory.allocated_bytes = Some(5 * GIB);
        let r = at(Phase::Evaluation, &mut e);
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
    }

    #[test]
    fn evaluation_with_few_tensors_points_at_tensors_kept_alive() {
        let r = at(Phase::Evaluation, &mut holding(GIB));
        assert_eq!(r.top(), Some(CauseId::LeftoverTensors));
    }

    #[test]
    fn without_figures_a_backward_is_the_batch_and_an_unknown_phase_nothing() {
        let mut e = event(Framework::PyTorch, MemoryFigures::default());
        let r = at(Phase::Backward, &mut e);
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        let r = at(Phase::Unknown, &mut e);
        assert!(r.0.is_empty());
    }

    #[test]
    fn serving_engines_and_the_oom_killer_skip_the_phase_rules() {
        let mut e = holding(20 * GIB);
        e.framework = Framework::Vllm;
        assert!(at(Phase::Generation, &mut e).0.is_empty());
    }

    #[test]
    fn an_exhausted_batch_search_is_the_model() {
        let mut r = Ranking::new();
        batch_search_exhausted(&mut r);
        assert_eq!(r.top(), Some(CauseId::ModelTooLarge));
    }

    fn with_context(c: crate::oom::ContextEvidence) -> Ranking {
        let mut e = holding(GIB);
        e.facts.context = c;
        let mut r = Ranking::new();
        context(&mut r, &e, &Accounting::of(&e));
        r
    }

    #[test]
    fn weights_loaded_or_gathered_around_the_failure_are_the_model() {
        let r = with_context(crate::oom::ContextEvidence {
            model_states: Some("in fetch_sub_module".into()),
            gathering: true,
            ..Default::default()
        });
        assert_eq!(r.top(), Some(CauseId::ModelTooLarge));
        assert!(r.0[0].evidence.contains("in fetch_sub_module"));
        assert!(r.0[0].check.is_some());
    }

    #[test]
    fn a_state_dict_gathered_to_save_is_the_model_with_the_offload_as_check() {
        let r = with_context(crate::oom::ContextEvidence {
            model_states: Some("in _full_pre_state_dict_hook".into()),
            gathering: true,
            for_checkpoint: true,
            ..Default::default()
        });
        assert_eq!(r.top(), Some(CauseId::ModelTooLarge));
        assert!(r.0[0].evidence.contains("save a checkpoint"));
        assert!(r.0[0]
            .check
            .as_deref()
            .unwrap()
            .contains("offload_to_cpu=True"));
    }

    #[test]
    fn a_model_switch_outweighs_the_load_it_fails_in() {
        let r = with_context(crate::oom::ContextEvidence {
            model_states: Some("in load_model".into()),
            several_models: Some("after i switch the model".into()),
            ..Default::default()
        });
        assert_eq!(r.top(), Some(CauseId::MultipleModels));
        assert!(r.score(CauseId::ModelTooLarge).is_some());
    }

    #[test]
    fn memory_kept_from_earlier_steps_is_tensors_kept_alive() {
        let r = with_context(crate::oom::ContextEvidence {
            kept_alive: Some("After maybe 600 steps".into()),
            ..Default::default()
        });
        assert_eq!(r.top(), Some(CauseId::LeftoverTensors));
    }

    #[test]
    fn a_notebook_alone_only_hints_and_with_a_load_names_earlier_models() {
        let r = with_context(crate::oom::ContextEvidence {
            notebook: Some("Cell In[8], line 2".into()),
            ..Default::default()
        });
        assert!(r.0.is_empty());
        let mut e = holding(GIB);
        e.facts.context.notebook = Some("Cell In[8], line 2".into());
        let mut r = Ranking::new();
        notebook(&mut r, &e);
        assert_eq!(r.score(CauseId::LeftoverTensors), Some(0.4));
        let r = with_context(crate::oom::ContextEvidence {
            notebook: Some("Cell In[8], line 2".into()),
            model_states: Some("in from_pretrained".into()),
            ..Default::default()
        });
        assert_eq!(r.top(), Some(CauseId::ModelTooLarge));
        assert_eq!(r.score(CauseId::MultipleModels), Some(0.6));
    }

    #[test]
    fn a_doubt_on_the_device_s_size_puts_the_model_ahead_of_a_full_device_s_batch() {
        let mut e = holding(GIB);
        e.facts.context.capacity_doubt = Some("how much memory this model require".into());
        let mut r = Ranking::new();
        r.add(CauseId::BatchTooLarge, 0.65, "a full device");
        context(&mut r, &e, &Accounting::of(&e));
        assert_eq!(r.top(), Some(CauseId::ModelTooLarge));
        let mut r = Ranking::new();
        r.add(CauseId::ModelTooLarge, 0.8, "a load in the frames");
        context(&mut r, &e, &Accounting::of(&e));
        assert_eq!(r.score(CauseId::ModelTooLarge), Some(0.8));
    }

    #[test]
    fn a_batch_of_one_points_at_the_model() {
        let r = with_context(crate::oom::ContextEvidence {
            batch_of_one: Some("batch_size to 1".into()),
            ..Default::default()
        });
        assert_eq!(r.top(), Some(CauseId::ModelTooLarge));
        assert!(with_context(Default::default()).0.is_empty());
        let mut e = holding(GIB);
        e.phase = Phase::Startup;
        e.facts.context.batch_of_one = Some("batch size of 1".into());
        let mut r = Ranking::new();
        context(&mut r, &e, &Accounting::of(&e));
        assert!(r.0.is_empty());
        // One request larger than any weight tensor at batch 1: one sample.
        let mut e = event(Framework::PyTorch, MemoryFigures::default());
        e.memory.requested_bytes = Some(92 * GIB);
        e.facts.context.batch_of_one = Some("transcribe(audio, batch_size=1)".into());
        let mut r = Ranking::new();
        context(&mut r, &e, &Accounting::of(&e));
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
    }

    #[test]
    fn a_named_model_larger_than_half_the_card_is_the_first_cause() {
        let model = |billions: u64, tenth_bits: u32, gpus: u64| crate::oom::NamedModel {
            params: billions * 1_000_000_000,
            tenth_bits,
            gpus,
            name: format!("model-{billions}b"),
        };
        let rank = |m| {
            // 20 of 24 GiB live, nothing else in the text.
            let mut e = holding(20 * GIB);
            e.facts.context.named_model = Some(m);
            let mut r = Ranking::new();
            context(&mut r, &e, &Accounting::of(&e));
            r
        };
        // 70B in 16 bits: 140 GB against 24 GiB.
        let r = rank(model(70, 160, 1));
        assert_eq!(
            (r.top(), r.score(CauseId::ModelTooLarge)),
            (Some(CauseId::ModelTooLarge), Some(0.9))
        );
        assert!(!r.1, "weights larger than the card decide the cause");
        // 13B in 16 bits: 26 GB, just above 24 GiB.
        assert_eq!(
            rank(model(13, 160, 1)).score(CauseId::ModelTooLarge),
            Some(0.9)
        );
        // 7B in 16 bits: 14 GB, 54% of the card.
        assert_eq!(
            rank(model(7, 160, 1)).score(CauseId::ModelTooLarge),
            Some(0.8)
        );
        // 7B in 4 bits, or 13B over 4 GPUs: far below half the card.
        assert!(rank(model(7, 45, 1)).0.is_empty());
        assert!(rank(model(13, 160, 4)).0.is_empty());
        // Without the device's total there is nothing to set it against.
        let mut e = event(Framework::PyTorch, MemoryFigures::default());
        e.facts.context.named_model = Some(model(70, 160, 1));
        let mut r = Ranking::new();
        context(&mut r, &e, &Accounting::of(&e));
        assert!(r.0.is_empty());
    }

    #[test]
    fn memory_that_climbed_is_tensors_kept_alive() {
        let mut causes = Vec::new();
        from_trend(
            &mut causes,
            Some(MemoryTrend::Climbing {
                from_bytes: GIB,
                to_bytes: 20 * GIB,
                seconds: 300.0,
            }),
        );
        assert_eq!(causes[0].id, CauseId::LeftoverTensors);
        assert_eq!(causes[0].score, 0.9);
    }

    #[test]
    fn a_bare_failure_is_undecided_and_llvm_is_not_memory() {
        let mut e = event(Framework::PyTorch, MemoryFigures::default());
        let mut r = Ranking::new();
        bare_failure(&mut r, &e);
        assert!(r.1);
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        e.message = "LLVM ERROR: out of memory".into();
        let mut r = Ranking::new();
        bare_failure(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::NotMemory));
    }

    #[test]
    fn a_tiny_request_alone_puts_memory_held_elsewhere_first() {
        let mut e = event(
            Framework::OnnxRuntime,
            MemoryFigures {
                requested_bytes: Some(15 * MIB),
                ..MemoryFigures::default()
            },
        );
        let mut r = Ranking::new();
        bare_failure(&mut r, &e);
        assert!(r.1);
        assert_eq!(r.top(), Some(CauseId::OtherProcesses));
        assert!(r
            .0
            .iter()
            .any(|c| c.id == CauseId::OtherProcesses && c.check.is_some()));
        // A large request alone is the usual differential.
        e.memory.requested_bytes = Some(2 * GIB);
        let mut r = Ranking::new();
        bare_failure(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        // A running op's tensor in TensorFlow's pool, reserved at start:
        // the pool is this process's own, filled by the step.
        let mut e = event(
            Framework::TensorFlow,
            MemoryFigures {
                requested_bytes: Some(20 * MIB),
                ..MemoryFigures::default()
            },
        );
        e.message = "OOM when allocating tensor with shape[10,128,64,64] and type float on /job:localhost/replica:0/task:0/device:GPU:0 by allocator GPU_0_bfc".into();
        let mut r = Ranking::new();
        bare_failure(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
    }
}
