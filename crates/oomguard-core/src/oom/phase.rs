//! The phase of work an OOM happened in, read from the Python traceback (or
//! stack of log lines) around the error, else from the sentences near it.
//!
//! The precedence is one rule: within the traceback that ends at the error,
//! the innermost frame that names a phase wins. Frames are read innermost
//! first (Python prints them innermost last); a frame's file, function and
//! code line are matched together. Two kinds of frame name a phase only
//! when nothing else does, and one always does:
//! - the forward pass (`forward`, `_call_impl`, `model(...)`) runs inside
//!   evaluation, generation, the backward pass's recomputation and weight
//!   loading alike, so it is the phase only when no other frame names one;
//! - a start-up run (a serving engine's profiling run, a warm-up, CUDA graph
//!   capture) encloses the forward, backward or sampling it runs, so any
//!   frame of one makes the phase start-up.
//!
//! Without frames, a sentence that ties a phase to the failure decides,
//! then markers in the log around it (a loading bar, a CUDA graph capture,
//! a validation bar), then the shell command printed right above the error
//! (the program failed before printing anything: start-up).

use super::patterns::contains_ignore_case;
use super::Phase;
use aho_corasick::AhoCorasick;
use regex::{Regex, RegexSet};
use std::sync::LazyLock;

/// A loop head that draws the next batch from a loader (`for i, (x, y) in
/// enumerate(train_loader):`, `for b in tqdm(self.val_dataloader, ...):`),
/// for the frame rules and the sentences that name where a failure came.
macro_rules! loop_head {
    () => {
        r"for\b[^\n]{0,80}?\bin\s+(?:(?:enumerate|tqdm|iter)\(\s*)*(?:self\.)?\w*loader\w*\b[^\n]{0,40}?:"
    };
}

/// How a rule's phase ranks against the others (see the module's rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rank {
    /// Wins wherever its frame is: the phase encloses whatever it runs.
    Encloses,
    /// The innermost frame of this rank decides.
    Names,
    /// Counts only when no frame of another rank names a phase.
    Fallback,
}

/// torch.nn's own source lines pasted without their frames: a layer's call
/// into torch.nn.functional (`return F.conv2d(input, weight, ...)`,
/// `return F.linear(...)`) and functional.py's own (`result =
/// torch.relu(input)`). Names torchvision's transforms (also imported as
/// `F`) share, such as `pad` and `resize`, are not read.
macro_rules! torch_nn_source {
    () => {
        concat!(
            r"\breturn F\.(?:conv\d?d|conv_transpose\dd|linear|bilinear|(?:layer|group|batch|instance)_norm|embedding|scaled_dot_product_attention|multi_head_attention_forward|gelu|silu|relu|softmax|log_softmax|dropout|interpolate|cross_entropy)\(|",
            r"\bresult = torch\.\w+\(input\b",
        )
    };
}

/// (phase, rank, pattern over one line of a frame: its file and function,
/// or its code line). Sources: the frames PyTorch (`torch/autograd`,
/// `torch/optim`, `torch/utils/data`, `torch/serialization.py`), Hugging Face
/// transformers (`generation/utils.py`, `trainer.py`, `modeling_utils.py`),
/// accelerate, DeepSpeed, Lightning and vLLM print, read in their sources.
static RULES: LazyLock<Vec<(Phase, Rank, Regex)>> = LazyLock::new(|| {
    let rules: &[(Phase, Rank, &str)] = &[
        (
            Phase::Startup,
            Rank::Encloses,
            concat!(
                r"profile_run|determine_num_available_blocks|determine_available_memory|",
                r"_initialize_kv_caches|init_device\b|initialize_cache|capture_model|",
                // vLLM V1's workers allocating the KV cache the engine sized
                // (`Worker.initialize_from_config(kv_cache_config)` ->
                // `GPUModelRunner.initialize_kv_cache` ->
                // `_allocate_kv_cache_tensors`); SGLang's `init_memory_pool`.
                r"\binitialize_from_config\b|\binitialize_kv_cache\w*|_allocate_kv_cache\w*|\binit_memory_pool\b|",
                r"compile_or_warm_up_model|profile_cudagraph_memory|make_graphed_callables|",
                r"in capture\w*\b|_dummy_run\b|_dummy_sampler_run|",
                r"(?i:in _?warm_?up\w*\b)",
            ),
        ),
        // Compiling a program (XLA's jit, a kernel build) happens before
        // its first run. Sources: jax/_src/compiler.py (`backend_compile`,
        // `compile_or_get_cached`), jax/_src/interpreters/pxla.py.
        (
            Phase::Startup,
            Rank::Names,
            concat!(
                r"backend_compile|compile_or_get_cached|_cached_compilation|in lower_and_compile\b|in compile_module\b|",
                // torch.compile's Inductor (torch/_inductor/compile_fx.py).
                r"_inductor[/\\]compile_fx\.py|in compile_fx\w*\b",
            ),
        ),
        (
            Phase::ModelLoad,
            Rank::Names,
            concat!(
                r"from_pretrained|from_single_file|from_preset|load_state_dict|load_checkpoint|torch\.load\b|paddle\.load\b|",
                r"_load_state_dict|safetensors|load_model|load_weights|load_pipeline|modeling_utils\.py|",
                r"set_module_tensor_to_device|dispatch_model|_cuda_deserialize|restore_location|",
                r"create_weights|_initialize_model|model_loader|llama_model_load|load_tensors|LoadParams|",
                r"in _apply\b|\._apply\(|::load\b|paddle[/\\]framework[/\\]io\.py|\.from_config\(|in from_config\b|",
                // The source lines of `Module.to` and `Module._apply`
                // (torch/nn/modules/module.py: `convert`'s `return t.to(device,
                // dtype if t.is_floating_point() ...)`, `param_applied =
                // fn(param)`), pasted without their frames.
                r"return t\.to\(device, dtype if t\.is_floating_point\(\)|param_applied = fn\(param\)|",
                // A layer's constructor making its weight (`self.weight =
                // Parameter(torch.empty(out, in))`).
                r"\bParameter\(\s*torch\.(?:Tensor|empty|zeros|ones|randn?)\(|",
                // DeepSpeed's engine set-up: building a ZeRO optimizer
                // partitions the weights and makes their fp32 copies
                // (deepspeed/runtime/engine.py `_configure_zero_optimizer`).
                r"in _configure_(?:zero_|basic_)?optimizer\b|DeepSpeedZeroOptimizer\w*\(|",
                // TensorRT's Python builder (build_cuda_engine before 8,
                // build_engine, build_serialized_network) and its runtime
                // loading a built engine.
                r"build_(?:cuda_|serialized_)?engine\b|build_serialized_network\b|deserialize_cuda_engine\b|",
                // TensorRT-LLM's runners made from a built engine's directory
                // (tensorrt_llm/runtime/model_runner.py and
                // model_runner_cpp.py: `ModelRunner.from_dir`), which load
                // the engine and its runtime buffers.
                r"\bin from_dir\b|\.from_dir\(|",
                // A runtime's session or predictor built from a model file:
                // ONNX Runtime's `InferenceSession` (its Python wrapper's
                // `_create_inference_session` -> `initialize_session`, which
                // places the initializers), Paddle Inference's
                // `create_predictor`.
                r"_create_inference_session\b|\binitialize_session\b|\bcreate_predictor\b|",
                r"\brestore_(?:model|checkpoint|weights)|saver\.restore|load_opt_state|",
                // TensorFlow 1's initializer op builds every variable's
                // memory (tf.compat.v1 `variables_initializer`,
                // `global_variables_initializer`, the older
                // `initialize_all_variables`).
                r"variables_initializer\b|initialize_all_variables\b|",
                // MXNet binds a graph's memory (`GraphExecutor::Init`).
                r"InitDataEntryMemory|simple_bind|SimpleBind|",
                // Wrapping a model for a device or a method: accelerate's
                // `prepare_model`, FSDP's module move, PEFT's set-up.
                r"in prepare_model\b|_move_module_to_device|get_peft_model|prepare_model_for_(?:kbit|int8)_training|",
                // llama.cpp's context creation (KV cache, compute buffers).
                r"llama_new_context|llama_init_from_model|llama_kv_cache_init|graph_reserve|gallocr_reserve|alloc_tensor_range|",
                // Weights or parameters moved to a device one by one.
                r"(?i:\b(?:weights?|params?|parameters?)\w*\.(?:data\.)?(?:cuda|to)\()|weighs?_to_device|weights?_to_device|",
                // The whole model, pipeline or module moved to a device.
                r"(?i:\b(?:model|pipe|pipeline|net|unet|vae|module|text_encoder|transformer)\w*(?:\([^()]*\))?\.(?:cuda|to)\()",
            ),
        ),
        (
            Phase::DataLoading,
            Rank::Names,
            concat!(
                r"(?i:dataloader)|_next_data|_try_get_data|_error_if_any_worker_fails|collate|",
                r"pin_memory|data_collator|__getitem__|fetch\.py|",
                r"DMatrix\(|read_csv\(|read_parquet\(|load_dataset\(|",
                // pandas' readers and frame building, cuDF's readers, Keras'
                // generator thread, tf.data's iterator, 🤗 datasets' map.
                r"pandas[/\\](?:io|core)[/\\]|pandas[/\\]_libs[/\\]parsers|pandas\._libs\.parsers|",
                r"\bread_(?:json|table|feather|orc|hdf|excel|fwf)\(|cudf[/\\]io[/\\]|",
                r"data_generator_task|iterator_ops\.py|datasets[/\\]arrow_dataset\.py|in _?preprocess\w*\b|",
                // A storage put in shared memory to cross a process queue
                // (torch/multiprocessing/reductions.py `reduce_storage`, the
                // storage's `_share_fd_`/`_share_filename_`, 2017's
                // `_new_shared`): a worker handing a batch to the loop.
                r"\bin reduce_storage\b|\._share_(?:fd|filename)_(?:cpu_)?\(|\._new_shared\(|",
                // The loop head that draws the next batch from a loader:
                // the frame that shows it is iterating, not running the model.
                r"\b",
                loop_head!(),
            ),
        ),
        (
            Phase::OptimizerStep,
            Rank::Names,
            concat!(
                r"optimizer\.step|optimizer_step|[/\\]optim[/\\]|_multi_tensor_adam|_single_tensor_adam|",
                r"_fused_adam|in _init_group\b|zero_grad|scaler\.step\(|in _maybe_opt_step\b|",
                r"bitsandbytes[/\\]optim|lr_scheduler|",
                // Keras/TensorFlow optimizers, DeepSpeed's engine step.
                r"apply_gradients|_resource_apply_\w+|optimizer_v2[/\\]|keras[/\\]optimizers[/\\]|_take_model_step|",
                // `step` itself only in an optimizer's or DeepSpeed's file.
                r#"(?:optim|deepspeed)[^"]*"?, line \d+, in step\b"#,
            ),
        ),
        (
            Phase::Backward,
            Rank::Names,
            concat!(
                r"\.backward\(|in _?backward\w*\b|autograd[/\\]__init__\.py|autograd[/\\]graph\.py|",
                r"_engine_run_backward|run_backward|manual_backward|autograd\.grad\(|",
                r"torch[/\\]_tensor\.py.*backward|",
                // TensorFlow's tape; ZeRO-3 and FSDP hooks that gather
                // parameters or reduce gradients for the backward pass.
                r"tape\.gradient\(|eager[/\\]backprop\.py|gradients_util\.py|",
                r"pre_sub_module_backward|_run_before_backward|_pre_backward_module_hook|_post_backward_hook|",
                r"reduce_partition_and_remove_grads|reduce_ready_partitions|reduce_independent_p_g_buckets",
            ),
        ),
        (
            Phase::Generation,
            Rank::Names,
            concat!(
                // A function that generates output (`generate`,
                // `generate_step`, `generate_segments`, `_generate_with_fallback`),
                // not one that builds a tensor inside a model's forward
                // (`generate_qkv`, `generate_anchors`, `generate_mask`).
                r"\.generate\(|\b_?\w*_generate\(|in (?:_\w*)?generate\b|",
                r"in (?:_\w*)?generate_(?:step|until|with_\w+|segments?|latents\w*|video\w*|audio|speech|images?|text\w*|tokens?\w*|stream\w*|sequences?|batch\w*|beams?\w*|greedy\w*|no_beam\w*|sample\w*|samples|responses?|completions?|outputs?|ids|answers?|captions?|chunks?|\w*search)\b|",
                r"generation[/\\]utils\.py|",
                r"in _?sample\b|greedy_search|beam_search|contrastive_search|sampler\.py|generate_until|",
                r"\blogits\b.*(?:temperature|\.sort\(|top_[kp])|logits_sort|",
                // Diffusion pipelines (diffusers' `pipeline_*.py` `__call__`,
                // k-diffusion samplers, the webui and ComfyUI entry points)
                // and MLX's token loop.
                r"pipelines[/\\]\S*pipeline_\w+\.py|k_diffusion[/\\]sampling\.py|samplers\.py|",
                r"in (?:txt2img|img2img|process_images\w*|process_diffusion|decode_latents)\b|",
                r"in sample_(?:euler\w*|heun|dpm\w*|lms|ddim|ddpm|unipc|lcm)\b|",
                r"batch_generator\.py|generate_step|stream_generate|in prompt_step\b|",
                // A serving engine's step (vLLM's `execute_model`, TGI's
                // `Prefill`/`Decode`, SGLang's `forward_decode`); its start-up
                // runs of the same functions are enclosed by the rule above.
                r"in execute_model\b|in (?:Prefill|Decode)\b|forward_decode|forward_extend|forward_batch_generation",
            ),
        ),
        (
            Phase::Evaluation,
            Rank::Names,
            concat!(
                r"evaluation_loop|prediction_loop|prediction_step|validation_step|eval_step|test_step|",
                r"\.evaluate\(|\.predict\(|in predict\b|",
                // Keras' and Lightning's prediction and test loops,
                // detectron2's evaluator.
                r"predict_loop|predict_function|predict_on_batch|predict_generator|in predict_\w+|",
                r"test_function|test_loop|test_on_batch|evaluate_generator|evaluation_epoch_loop|",
                r"_evaluation_step|sanity_check|inference_on_dataset|in (?:test|_?test_epoch|run_test\w*)\b|",
                r#"single_gpu_test|multi_gpu_test|compute_metrics|validator\.py|[/\\]val\.py", line \d+, in run\b|"#,
                // A script named for evaluation or inference, run as the
                // program (`evaluate.py", line 94, in <module>`, mmdet's
                // `tools/test.py`, `predict.py`): what it runs of the model
                // is evaluation unless an inner frame names more.
                r#"(?:^|[/\\"])(?:eval|evaluate|evaluation|test|testing|val|valid|validate|validation|predict|prediction|inference|infer)\.py", line \d+, in <module>|"#,
                r"in (?:_?evaluat\w*|eval|eval_\w+|validate\w*|_?validation\w*|valid|val_\w+|_?run_validation\w*)\b",
            ),
        ),
        // Building a module (its constructor, an `init`) makes weights, but
        // a constructor also wraps data sets and trainers: only when no
        // other frame names a phase. A paste rendered as Markdown shows
        // `__init__` as a bold `init` (`File "x.py", line 125, in init`).
        (
            Phase::ModelLoad,
            Rank::Fallback,
            r"in __init__\b|\.init\(|init_params|, in init\s*$",
        ),
        (
            Phase::Forward,
            Rank::Fallback,
            concat!(
                r"in forward\b|in _?\w+_forward\b|_call_impl|forward_call|in __call__\b|\.forward\(|",
                r"training_step|compute_loss|outputs = model\(|model\(\*\*|_wrapped_call_impl|in call\b|",
                // ZeRO-3 gathers a module's parameters before its forward
                // (`fetch_sub_module`, deepspeed/runtime/zero); its backward
                // hooks name the backward pass above.
                r"pre_sub_module_forward|_pre_forward_module_hook|fetch_sub_module|_all_gather_params|all_gather_coalesced|",
                // The code a module's forward calls: torch.nn's layers and
                // functions, and the model files of transformers
                // (`models/<name>/modeling_<name>.py`) and diffusers
                // (`diffusers/models/`), whatever the function's name
                // (`get_attention_scores`, `softmax`, `einsum`).
                r"torch[/\\]nn[/\\](?:functional\.py|modules[/\\])|torch[/\\]functional\.py|",
                r"transformers[/\\]models[/\\]\w+[/\\]modeling_\w+\.py|diffusers[/\\]models[/\\]|",
                // The same functions when a paste lost the frame's path: the
                // bindings torch.nn.functional calls (`torch._C._nn.`), and a
                // loss computed from the outputs (`in cross_entropy`,
                // `in compute_mlm_loss`).
                r"torch\._C\._nn\.|in \w*(?:cross_entropy|_loss)\b|",
                torch_nn_source!(),
            ),
        ),
    ];
    rules
        .iter()
        .map(|(phase, rank, p)| {
            let re = Regex::new(p).expect("phase pattern compiles");
            (*phase, *rank, re)
        })
        .collect()
});

/// The phase of a traceback's lines, listed outermost first as printed:
/// the module's precedence rule.
fn phase_of_frames<S: AsRef<str>>(lines: &[S]) -> Option<Phase> {
    // Wrapped frames joined, IPython's frames read as Python's.
    let lines: Vec<String> = unwrapped_frames(lines)
        .into_iter()
        .map(|l| ipython_frame(l.trim_start()).unwrap_or(l))
        .collect();
    let named = |rank: Rank| {
        lines.iter().rev().find_map(|line| {
            RULES
                .iter()
                .find(|(_, r, re)| *r == rank && re.is_match(line))
                .map(|(phase, _, _)| *phase)
        })
    };
    named(Rank::Encloses)
        .or_else(|| named(Rank::Names))
        .or_else(|| named(Rank::Fallback))
}

/// The lines with each frame a terminal wrapped inside its file's path
/// (`File "/x/torch/utils/data/dataload` over `er.py", line 301, in
/// __iter__`) joined again, so the path and function read whole.
fn unwrapped_frames<S: AsRef<str>>(lines: &[S]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut open = false;
    for l in lines {
        let l = l.as_ref();
        match out.last_mut() {
            Some(last) if open => last.push_str(l.trim_start()),
            _ => out.push(l.to_string()),
        }
        let last = out.last().map_or("", String::as_str);
        open = last
            .rfind("File \"")
            .is_some_and(|at| !last[at + 6..].contains('"'));
    }
    out
}

/// The lines of the traceback that ends just before the error: from the last
/// `Traceback (most recent call last):` among `before`, else the run of frame
/// lines immediately above the error.
fn traceback_lines(before: &[String]) -> &[String] {
    if let Some(start) = before.iter().rposition(|l| is_traceback_header(l)) {
        return &before[start..];
    }
    // No header in the window: take the frames directly above the error.
    // A launcher's tag (`[rank0]:`, `(EngineCore pid=1) ERROR ... [x.py:1]`)
    // before a frame's indentation keeps it a frame.
    // Blank lines a paste puts between the frames and the error do not
    // end them.
    let end = before
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .map_or(0, |i| i + 1)
        .max(before.len().saturating_sub(2));
    // A paste that lost the traceback's indentation (Markdown outside a
    // code block) leaves each code line flush left under its frame: the
    // line right under a `File "x.py", line 3, in f` line is that frame's.
    let mut start = end;
    for (i, line) in before[..end].iter().enumerate().rev() {
        let under_frame = i > 0 && is_frame_line(&before[i - 1]);
        if is_frame_part(line) || under_frame {
            start = i;
        } else {
            break;
        }
    }
    &before[start..end]
}

/// The second half of a frame line wrapped inside its file's path: the
/// path's end, with no space and no opening quote in it (the quote is on
/// the line before), then `", line N`.
fn is_wrapped_frame_tail(t: &str) -> bool {
    t.split_once("\", line ").is_some_and(|(path, _)| {
        !path.is_empty() && !path.contains(char::is_whitespace) && !path.contains('"')
    })
}

/// A line of a traceback printed without its header: a frame, its code,
/// the carets under it, a line of rich's boxed traceback (`│ x.py:3 in f`),
/// also quoted (`> `) or behind a launcher's tag.
fn is_frame_part(line: &str) -> bool {
    static TAGGED_INDENT: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^\S.*?[\]:|]\s{2,}\S").expect("pattern compiles"));
    // A code span a report opened on the first pasted line (`` `    return
    // t.to(...)``) keeps what follows it as pasted.
    if let Some(rest) = line
        .strip_prefix('`')
        .filter(|r| !r.is_empty() && !r.starts_with('`'))
    {
        return is_frame_part(rest);
    }
    // A log collector's timestamp and its one separating space before each
    // line (`2025-10-27 18:45:39   File "x.py", line 3, in f`): the
    // traceback's own indentation follows it.
    static STAMP: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\[?\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\]? ")
            .expect("pattern compiles")
    });
    if let Some(m) = STAMP.find(line) {
        let rest = &line[m.end()..];
        return rest.starts_with([' ', '\t']) && is_frame_part(rest);
    }
    let unquoted = line.trim_start_matches(['>', ' ']);
    let quoted = unquoted.len() + 1 < line.len() && line.trim_start().starts_with('>');
    let t = line.trim_start();
    t.contains("File \"")
        || t.starts_with("at ")
        || line.starts_with(' ')
        || line.starts_with('\t')
        || t.starts_with('^')
        || t.starts_with('~')
        || t.starts_with("-> ")
        || is_frame_line(t)
        // The rest of a frame a terminal wrapped inside its path
        // (`er.py", line 301, in __iter__`).
        || is_wrapped_frame_tail(t)
        || line.contains(['│', '└', '╰', '╭', '┌'])
        // The mark a paste leaves where it cut frames out.
        || matches!(t.trim_end(), "..." | "…" | "[...]" | "(...)")
        || (quoted && !unquoted.is_empty())
        || TAGGED_INDENT.is_match(line)
}

/// Python's traceback header, also as a paste lowercased it (a report's
/// editor or a chat client capitalising sentences the other way).
fn is_traceback_header(line: &str) -> bool {
    line.contains("raceback (most recent call last)")
}

fn is_traceback_start(line: &str) -> bool {
    let t = line.trim_start();
    is_traceback_header(t)
        || t.starts_with("0: ")
        || t.starts_with("Stack backtrace")
        // dmlc's fatal log (MXNet, XGBoost): `Stack trace returned 10 entries:`.
        || t.starts_with("Stack trace")
}

/// A Python frame's first line, also quoted (`> File "x.py", line 3, in f`)
/// or behind a launcher's tag.
fn is_frame_line(line: &str) -> bool {
    static FRAME: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"^(?:>\s*)*File "[^"]+", line \d+"#).expect("pattern compiles")
    });
    let t = line.trim_start();
    FRAME.is_match(t) || ipython_frame(t).is_some()
}

/// IPython's (8+) frame line, `File ~/x/engine.py:1184, in
/// DeepSpeedEngine._configure_optimizer(self, client_optimizer)`: the
/// function named as Python names it (`in _configure_optimizer`), for the
/// rules written against Python's frames.
///
/// IPython before 8 printed a frame as the file, then the function and its
/// arguments (`/x/keras/engine/training.py in _fit_loop(self, f, ins)`,
/// `<ipython-input-5-0a1b> in <module>()`), with no line number.
fn ipython_frame(line: &str) -> Option<String> {
    static FRAME: LazyLock<(Regex, Regex)> = LazyLock::new(|| {
        let re = |p: &str| Regex::new(p).expect("pattern compiles");
        (
            re(r"^File\s+(\S[^,]*?):(\d+),\s+in\s+(?:[\w<>]+\.)*([\w<>]+)"),
            re(r"^(\S+\.py|<ipython-input-[\w-]+>)\s+in\s+([\w<>]+)\("),
        )
    });
    let (modern, old) = &*FRAME;
    if let Some(c) = modern.captures(line) {
        return Some(format!("File \"{}\", line {}, in {}", &c[1], &c[2], &c[3]));
    }
    // Cheap test first: an old frame holds " in " right after a file name.
    if !line.contains(" in ") {
        return None;
    }
    let c = old.captures(line)?;
    Some(format!("File \"{}\", line 0, in {}", &c[1], &c[2]))
}

/// Raw lines after an event read for a traceback printed after it; within
/// them, the traceback must start on one of the first [`FOLLOWING_START`]
/// lines that are not blank.
pub(crate) const FOLLOWING_LINES: usize = 6;
const FOLLOWING_START: usize = 3;

/// Where a traceback starts in `after`, when it starts on one of its first
/// lines (blank lines, as a paste puts between the error and its
/// traceback, do not count).
///
/// Frames without a heading count only after a sentence that introduces
/// them (`Fully traceback is:`, `It happens around here:`): frames right
/// after an error may be another failure's.
///
/// An event on the text's first line (an issue's title) is the one the
/// body's frames belong to: there, frames count without an introduction.
fn traceback_start(after: &[String], opens_text: bool) -> Option<usize> {
    let lines: Vec<(usize, &String)> = after
        .iter()
        .take(FOLLOWING_LINES)
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .take(FOLLOWING_START)
        .collect();
    lines.iter().enumerate().find_map(|(k, (i, l))| {
        // A frame right under the error, with no header: a debugger's
        // report (VS Code's "Exception has occurred") lists the frames
        // there, innermost first.
        let introduced =
            (opens_text || *i == 0 || (k > 0 && lines[k - 1].1.trim_end().ends_with(':')))
                && is_frame_line(l);
        (is_traceback_start(l) || introduced).then_some(*i)
    })
}

/// True when a traceback starts right after the event (see
/// [`traceback_start`]).
pub(crate) fn starts_traceback(after: &[String], opens_text: bool) -> bool {
    traceback_start(after, opens_text).is_some()
}

/// The phase a traceback printed *after* the message shows: Python's when a
/// log line announced the error first or a report pasted the error above
/// its frames, Rust's backtrace (`   0: crate::fn`) after a candle error.
pub(crate) fn from_following(after: &[String], opens_text: bool) -> Option<Phase> {
    let start = traceback_start(after, opens_text)?;
    let frames: Vec<&str> = after[start..]
        .iter()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty() || l.is_empty())
        .take(80)
        .map(String::as_str)
        .collect();
    phase_of_frames(&frames)
}

/// The phase a traceback pasted under a failure told at the top of a text
/// shows (an issue's title, or a report's first sentences, with the
/// program's output pasted below): the paste is that failure's, so its
/// first traceback counts wherever it starts, after command lines and log
/// lines the program printed first.
pub(crate) fn from_paste(paste: &[String]) -> Option<Phase> {
    let start = paste.iter().position(|l| is_traceback_start(l))?;
    let frames: Vec<&str> = paste[start..]
        .iter()
        .take_while(|l| !l.trim().is_empty() || l.is_empty())
        .take(80)
        .map(String::as_str)
        .collect();
    phase_of_frames(&frames)
}

/// The serving engine whose frames or log prefixes surround the failure.
///
/// `line` is the event's first line as printed: its log prefix may be all
/// that names the engine (vLLM's workers print `(VllmWorker rank=1 pid=9)`,
/// vllm/v1/executor/multiproc_executor.py).
pub(crate) fn serving_engine(
    before: &[String],
    line: &str,
    text: &str,
) -> Option<super::ServingEngine> {
    let recent = &before[before.len().saturating_sub(60)..];
    let names = |word: &str| {
        text.contains(word) || line.contains(word) || recent.iter().any(|l| l.contains(word))
    };
    if names("sglang") {
        Some(super::ServingEngine::Sglang)
    } else if [
        // TGI's launcher, its Python server package, its image, and its
        // router's client crate, which logs a shard's error as it passes it on
        // (`text_generation_client: router/client/src/lib.rs: Server error`).
        "text-generation-launcher",
        "text_generation_server",
        "text-generation-inference",
        "text_generation_client",
    ]
    .iter()
    .any(|w| names(w))
    {
        Some(super::ServingEngine::Tgi)
    } else if [
        "vllm",
        "Vllm",
        "VLLM",
        // The project's own spelling, in report titles.
        "vLLM",
        "EngineCore",
        "RayWorkerWrapper",
    ]
    .iter()
    .any(|w| names(w))
    {
        Some(super::ServingEngine::Vllm)
    } else {
        None
    }
}

/// Words around an event without a traceback that name what the program
/// was doing: a loading progress bar, the call quoted in the report, the
/// engine build, a warm-up. Only strong markers count, in this order.
/// One set, so a line is read once for all of them (a log dense with OOM
/// lines reads each line for every event near it).
static CONTEXT_RULES: LazyLock<(Vec<Phase>, RegexSet)> = LazyLock::new(|| {
    let rules: &[(Phase, &str)] = &[
        (
            Phase::Startup,
            concat!(
                r"(?i:\bwarm[- ]?up\b|warming up|capture cuda graph|",
                // vLLM's and SGLang's start-up logs: graph capture, the
                // profiling run that sizes the KV cache.
                r"captur\w* (?:the model for )?cuda[- ]?graphs?|cuda[- ]?graph captur\w*|",
                r"memory profiling|profil\w* run\b|",
                // A GPU kernel compiled before the first run (LightGBM's OpenCL).
                r"compiling (?:the )?(?:opencl |cuda |gpu )?kernels?|",
                // A device or runtime being set up ("running init kernel failed").
                r"\binit kernel\b|initiali[sz]\w* (?:of )?(?:the )?(?:gpu|cuda|device|backend|runtime|context)\b)|",
                // NCCL setting up a communicator (its init.cc in the error's
                // trail, ncclCommInitRank, torch.distributed's group).
                r"NCCL (?:INFO|WARN) init\.cc|ncclCommInit\w*|init_process_group",
            ),
        ),
        (
            Phase::ModelLoad,
            concat!(
                r"Loading checkpoint shards|from_pretrained\(|from_preset\(|load_state_dict\(|",
                // torch.load's safe unpickler names itself in the errors it
                // raises while it reads a checkpoint
                // (torch/_weights_only_unpickler.py, torch/serialization.py).
                r"WeightsUnpickler error|",
                r"(?i:failed to load|loading (?:the )?(?:model|weights|checkpoint)|build(?:ing)? (?:the )?engine)|",
                r"buildEngine|build_(?:cuda_|serialized_)?engine\b|build_serialized_network\b|InitDataEntryMemory|load_tensors|",
                r"llama_new_context|llama_init_from_model|kv_cache_init|graph_reserve|gallocr_reserve|",
                // ggml reserves every buffer (weights, KV cache, compute) when
                // a model is loaded; Ollama's runner dies while it loads.
                r"ggml_backend_\w*alloc\w*|ggml_\w*_?malloc|unable to allocate \w+ buffer|llama runner process has terminated|",
                // TensorRT tries tactics only while it builds an engine.
                r"skipping tactic|",
                // ONNX Runtime's session set-up, which places the model's
                // initializers (its weights) and plans its memory
                // (onnxruntime/core/session/inference_session.cc,
                // `Initialize`: "Exception during initialization: ").
                r"Exception during initialization:|",
                // The same set-up named by its method in ONNX Runtime's log
                // prefix (`inference_session.cc:1268
                // onnxruntime::InferenceSession::Initialize::<lambda>`),
                // when a wrapped line leaves the message under it; Triton
                // Inference Server's backends loading a model
                // (`TRITONBACKEND_ModelInitialize`,
                // `TRITONBACKEND_ModelInstanceInitialize`); a serving
                // engine loading a built engine file ("Loading TensorRT
                // engine: vae.plan").
                r"InferenceSession::Initialize\b|TRITONBACKEND_Model(?:Instance)?Initialize\b|(?i:\bloading (?:the )?(?:\w+ )?engine\b)|",
                // A call whose name says it loads a model's parameters
                // (`load_and_format_params(ckpt_path)`, ncnn's
                // `load_param("x.param")`). Not `load_model(`: a script
                // pasted above the error loads its model in its first lines
                // and fails later, where it runs it.
                r"\bload(?:_\w+?)?_(?:params?|weights?|checkpoint)\(|",
                // The object built and moved in one statement too:
                // `Model(opt.cfg, nc=nc).to(device)`.
                r"(?i:\b(?:model|pipe|pipeline|net|unet|vae)\w*(?:\([^()]*\))?\.(?:cuda|to)\()|",
                // A layer's constructor making its weight, quoted without
                // its frame (`self.weight = Parameter(torch.Tensor(...))`).
                r"\bParameter\(\s*torch\.(?:Tensor|empty|zeros|ones|randn?)\(|",
                // A model object built: `model = WhisperModel("large-v3",
                // device="cuda")`, `pipe = StableDiffusionPipeline(...)`.
                r"(?i:\b(?:model|pipe|pipeline|net)\w*\s*=\s*)[\w.]*(?:Model|Pipeline|ForCausalLM|ForConditionalGeneration)\w*\(",
            ),
        ),
        (
            Phase::Evaluation,
            concat!(
                r"(?i:evaluation step|during evaluation|in the evaluation|validation step|",
                // The validation stage by its short name ("(Only with val
                // stage)", "OOM at the val step").
                r"\bval (?:stage|phase|step|loop)\b|",
                // A validation or test loop's progress bar (Lightning's).
                r"\b(?:validating|validation|testing|sanity checking|evaluating)\b[^|]{0,30}\d+%\s*\|)|",
                // The header an evaluation or prediction pass logs when it
                // starts: transformers' Trainer (`evaluation_loop` logs
                // "***** Running {description} *****", description
                // "Evaluation" or "Prediction"), TensorFlow NMT and its forks
                // (nmt/train.py `run_external_eval`: "# External evaluation,
                // global step %d"), and the MetricLogger of BLIP/LAVIS-style
                // code (`log_every(loader, freq, header="Evaluation")` prints
                // "Evaluation  [ 20/500]  eta: ...").
                r"\*{3,}\s*Running (?:Evaluation|Prediction)\s*\*{3,}|# External evaluation\b|",
                r"^\s*(?:Evaluation|Validation):?\s+\[\s*\d+/\d+\]|",
                // TensorFlow's Estimator through Python's logging
                // (tensorflow/python/training/evaluation.py: "Starting
                // evaluation at %s", then "Evaluation [%d/%d]" per step).
                r"^(?:INFO|I\d*)?:?[\w.]*:?\s*(?:Starting evaluation at\b|Evaluation \[\d+/\d+\])|",
                // detectron2's evaluation loop and its forks' (fastreid,
                // AdelaiDet): `inference_on_dataset` logs "Start inference
                // on N batches", then "Inference done i/N" through the
                // `<pkg>.evaluation.evaluator` logger
                // (detectron2/evaluation/evaluator.py).
                r"\b\w+\.evaluation\.evaluator\]|\bStart inference on \d+ (?:batches|images)\b|\bInference done \d+/\d+\.",
            ),
        ),
        (
            Phase::Generation,
            concat!(
                r"(?i:\bgenerating\b[^|]{0,30}\d+%\s*\|)|",
                // A program's status line as it starts generating
                // ("Generating response...", "> Generating...").
                r"(?i:^\W{0,3}generating\b[^.\n]{0,40}(?:\.\.\.|…)\s*$)|",
                // The serving router's tracing spans of a request's two
                // steps (TGI's and LoRAX's `batch{batch_size=1}:prefill:
                // prefill{id=13 size=1}: ...`, `decode{size=4}`).
                r"(?:^|[:\s])(?:prefill|decode)\{(?:id|size|batch_size)=|",
                // transformers' generation logging: `generate()` logs its
                // config as it starts ("Generate config GenerationConfig
                // {"), and the text-generation pipelines log from their own
                // files (`[WARNING|text2text_generation.py:307]`).
                r"Generate config GenerationConfig\b|\btext2?text_generation\.py\b|",
                // An engine's prefill of a request failing ("Prefill failed
                // for chatcmpl-...: RuntimeError: ..."): generation's first
                // step.
                r"(?i:\bprefill(?:ing)?\s+(?:failed|error)|\bfailed\s+(?:during|in)\s+(?:the\s+)?prefill)|",
                // The call quoted in the report ("an input of 17,000 tokens
                // into `model.generate(x, temperature)`").
                r"\b(?:model|pipe|pipeline|llm|generator)\w*\.generate\(",
            ),
        ),
        (
            Phase::DataLoading,
            r"(?i:preprocess|DMatrix\(|read_csv|todense\(|toarray\(|DataLoader worker)",
        ),
        // Keras re-raises an error from a layer's call with its own line
        // above the original message (keras/src/utils/traceback_utils.py:
        // Keras 2.9+ `Exception encountered when calling layer "dense"
        // (type Dense).`, Keras 3 `... when calling Softmax.call().`): the
        // layer was running its forward computation.
        (Phase::Forward, r"Exception encountered when calling\b"),
        // The same source lines flush left, as a paste outside a code block
        // leaves them.
        (Phase::Forward, torch_nn_source!()),
        // MATLAB's stack as it prints it under an error (`Error in
        // dagnn.Conv/forward (line 11)`, MatConvNet's and the Deep Learning
        // Toolbox's layers): the method the failure came from.
        (Phase::Backward, r"\w/backward \(line \d+\)"),
        (Phase::Forward, r"\w/forward \(line \d+\)"),
        // Weakest: a serving engine's own start-up banner. vLLM reserves
        // its KV cache while it starts, so its failures without a nearer
        // marker come from start-up (vllm/engine/llm_engine.py's banner);
        // a server that says it is starting (`Starting server, this might
        // take a few minutes...`) has not served yet.
        (
            Phase::Startup,
            r"Initializing an? (?:V1 )?LLM engine|Initializing a V1 LLM engine|(?i:\bstarting (?:the )?(?:\w+ )?server\b)",
        ),
    ];
    let set = RegexSet::new(rules.iter().map(|(_, p)| *p)).expect("context patterns compile");
    (rules.iter().map(|(phase, _)| *phase).collect(), set)
});

/// A word each alternative of [`CONTEXT_RULES`] contains (ASCII case
/// folded): a line with none of them is not matched against the rules.
static CONTEXT_WORDS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        // A DFA: one table step per byte, for lines read once per nearby event.
        .kind(Some(aho_corasick::AhoCorasickKind::DFA))
        .build([
            "warm",
            "capture cuda graph",
            "captur",
            "cuda graph",
            "cudagraph",
            "memory profiling",
            "profil",
            "compiling",
            "load",
            "llama_new_context",
            "llama_init_from_model",
            "kv_cache_init",
            "graph_reserve",
            "gallocr_reserve",
            "from_pretrained(",
            "from_preset(",
            "WeightsUnpickler",
            "build",
            "InitDataEntryMemory",
            "skipping tactic",
            ".cuda(",
            ".to(",
            "parameter(",
            "model(",
            "pipeline(",
            "forcausallm(",
            "forconditionalgeneration(",
            "evaluation",
            "inference on",
            "inference done",
            "validation step",
            "validating",
            "validation",
            "testing",
            "sanity checking",
            "evaluating",
            "running prediction",
            "generating",
            "prefill",
            "val ",
            "Generate config",
            ".generate(",
            "_generation.py",
            "decode{",
            "preprocess",
            "DMatrix(",
            "read_csv",
            "todense(",
            "toarray(",
            "DataLoader worker",
            "Exception encountered when calling",
            "return F.",
            "result = torch.",
            "ward (line",
            "init kernel",
            "init.cc",
            "ncclCommInit",
            "init_process_group",
            "initiali",
            "ggml_",
            "unable to allocate",
            "llama runner",
            "Initializing a",
            "starting",
        ])
        .expect("context words build")
});

/// Sentences that tie a phase to the failure: a time word (during, while,
/// when, in, at, upon) a few words before the phase's name, in a sentence
/// that also speaks of the failure ([`FAILURE`]). "It occurs in the
/// evaluation step", "ran out of memory while loading the model", "when
/// it comes to evaluation ... this error".
static TIED_RULES: LazyLock<Vec<(Phase, Regex)>> = LazyLock::new(|| {
    // A failure told as what could not be done ("can't start server",
    // "unable to load the model") ties its phase as a time word does.
    const WHEN: &str = r"\b(?:during|while|when|whilst|in|at|on|upon|from|run|runs|running|ran|can[’']?t|cannot|couldn[’']?t|could\s+not|unable\s+to|fail(?:s|ed)?\s+to|try(?:ing)?\s+to)\b(?:\s+[\w'-]+){0,6}?\s+";
    let rules: &[(Phase, &str)] = &[
        (
            Phase::Startup,
            concat!(
                r"(?:start-?up|warm[- ]?up|launch(?:ing)?|boot(?:ing)?|(?:jit[- ])?compil(?:ing|ation))\b|",
                // "when I start the server", "when starting the vllm engine".
                r"start(?:ing)?\s+(?:up\s+)?(?:the\s+|my\s+|a\s+)?(?:[\w.-]+\s+)?",
                r"(?:server|service|engine|container|app|application|program|webui|daemon|api|instance|pod)\b|",
                // "Failed to initialize executor on rank 1" (TensorRT-LLM),
                // "while initializing the LLM engine": the serving runtime
                // coming up, not a model being built.
                r"initiali[sz](?:e|es|ed|ing)\s+(?:the\s+|an?\s+)?(?:[\w.-]+\s+)?(?:executor|engine|runtime|backend)\b",
            ),
        ),
        (
            Phase::Evaluation,
            concat!(
                r"(?:evaluat\w*|validat\w*|eval\b|testing\b|predict(?:ion|ions|ing)?\b|",
                r"test(?:ing)?\s+(?:code|script|set|data|stage|mode|phase|step|loop|time)\b|",
                // The verb or a script: "when I test", "try to do test",
                // "running tools/test.py" (not "tests", a suite's).
                r"test\b)",
            ),
        ),
        (
            Phase::Generation,
            // The call too: "when using `mlx_lm.generate()`", "while
            // calling model.generate(...)".
            // A chat model's `chat` method (ChatGLM's, InternLM's, Qwen's
            // remote code) runs `generate` under it.
            // An LLM runner's prefill of the prompt ("during prompt
            // reading", "prompt processing", "prompt eval") is generation's
            // first step, not reading data.
            // A diffusion pipeline's last step, the VAE decoding the latents
            // to pixels ("OOM error during VAE decode"), is its generation.
            r"(?:generat(?:ing|ion)\b|generate(?:\(|\s+(?:an?|the|some|my|\d+)\s+(?:\w+\s+)?(?:images?|pictures?|videos?|text|tokens?|responses?|answers?|samples?)\b)|chat(?:ting|\(\))?\b|sampling\b|decoding\b|prompt\s+(?:reading|processing|eval\w*)\b|vae[ _-]?decod\w*)",
        ),
        // Data before weights: "loading the dataset" is not the model's.
        (
            Phase::DataLoading,
            concat!(
                // "at `for i, (x, y) in enumerate(train_loader):`".
                loop_head!(),
                "|",
                r"(?:reading\b|preprocess\w*|tokeniz\w*|",
                r"(?:load|process)(?:ing)?\s+(?:the\s+|my\s+|a\s+)?(?:\S+\s+)?(?:data|datasets?|batch\w*|csv|images|corpus)\b)",
            ),
        ),
        (Phase::ModelLoad, r"(?:loading|load)\b"),
        // Building a model makes its weights, as its constructor's frame
        // says ("when initializing `keras.applications` models in a loop",
        // "while creating the model").
        (
            Phase::ModelLoad,
            r"(?:initiali[sz]\w*|creat(?:e|es|ed|ing)|instantiat\w*|build(?:s|ing)?)\s+(?:the\s+|a\s+|an\s+|new\s+)?(?:[`\w.-]+\s+){0,2}?models?\b",
        ),
        (
            Phase::Backward,
            r"(?:backward(?: pass)?|backprop\w*|gradient computation)\b",
        ),
        (Phase::OptimizerStep, r"(?:optimi[sz]er(?:'s)? step)\b"),
        (Phase::Forward, r"(?:forward pass|forward propagation)\b"),
    ];
    // Chinese puts the time word after the phase: 验证时 "when
    // validating", 加载模型时 "when loading the model".
    // A program that does not come up at all ("fails to start on current
    // main", "the server won't start."), but not a step it did not begin
    // ("failed to start training").
    let cjk: &[(Phase, &str)] = &[
        (
            Phase::Startup,
            concat!(
                r"(?i)\b(?:fail(?:s|ed|ing)?\s+to|won[’']?t|doesn[’']?t|does\s+not|will\s+not|cannot|can[’']?t|unable\s+to)\s+",
                r"start(?:\s*$|[.,;:!)]|\s+(?:on|with|after|when|up|anymore|properly|at\s+all)\b)"
            ),
        ),
        (
            Phase::Startup,
            r"(?:启动|初始化)(?:的)?(?:时|时候|阶段|过程)",
        ),
        (
            Phase::Evaluation,
            r"(?:验证|测试|评估|评测)(?:的)?(?:时|时候|阶段|过程)",
        ),
        (Phase::Generation, r"生成(?:的)?(?:时|时候|阶段|过程)"),
        (Phase::DataLoading, r"(?:加载|读取|处理)(?:数据|数据集)"),
        (Phase::ModelLoad, r"加载(?:模型|权重|预训练|checkpoint)"),
        (Phase::Backward, r"反向传播"),
    ];
    rules
        .iter()
        .map(|(phase, p)| {
            let re =
                // A method call names its phase after its object
                // (`trainer.evaluate`), a script after its folder
                // (`tools/test.py`).
                // The call may be quoted (`when using `mlx_lm.generate()``).
                Regex::new(&format!("(?i){WHEN}(?:the\\s+)?[`'\\x22*]{{0,2}}(?:[\\w-]+[./\\\\])*(?:{p})"))
                    .expect("tied pattern compiles");
            (*phase, re)
        })
        .chain(
            cjk.iter()
                .map(|(phase, p)| (*phase, Regex::new(p).expect("tied pattern compiles"))),
        )
        .collect()
});

/// A word each of [`TIED_RULES`]' phase names contains (ASCII case
/// folded): a line with none of them ties no phase, and is not split into
/// sentences nor matched against the rules.
static PHASE_WORDS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        // A DFA: one table step per byte, for lines read once per nearby event.
        .kind(Some(aho_corasick::AhoCorasickKind::DFA))
        .build([
            "start",
            "warm",
            "launch",
            "boot",
            "eval",
            "validat",
            "test",
            "predict",
            "generat",
            "prompt",
            "sampling",
            "vae",
            "decoding",
            "load",
            "initiali",
            "creat",
            "instantiat",
            "build",
            "reading",
            // Not "process" alone: a memory report's "this process has ..."
            // holds it, and every line of a log dense with OOM lines would
            // be split and matched for nothing.
            "preprocess",
            "processing",
            "process the",
            "process my",
            "process a ",
            "process data",
            "process csv",
            "tokeniz",
            "compil",
            "backward",
            "backprop",
            "gradient",
            "optimi",
            "forward",
            "启动",
            "初始化",
            "验证",
            "测试",
            "评估",
            "评测",
            "生成",
            "加载",
            "读取",
            "处理数据",
            "反向传播",
        ])
        .expect("phase words build")
});

/// Words that say a sentence speaks of the failure.
static FAILURE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)error|out of memory|\boom\b|crash|\bfail|exception|\bcan[’']?t\b|\bcannot\b|\bcouldn[’']?t\b|\bunable to\b|\boccur\w*|\bhappen\w*|\bappear\w*|\bproblem|killed|runs? out|ran out|报错|错误|显存不足|内存不足|爆显存|溢出")
        .expect("pattern compiles")
});

/// Fixed wordings of a tool that hold a phase's word without naming the
/// program's phase: googletest's report of an exception
/// (googletest/src/gtest.cc: `C++ exception with description "..." thrown
/// in the test body.`, `... in the test fixture's constructor.`) says where
/// the test harness caught it.
static FIXED_PHRASES: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"thrown in the test (?:body|fixture's (?:constructor|destructor))")
        .expect("pattern compiles")
});

/// The phase a sentence of `lines` ties to the failure (see [`TIED_RULES`]),
/// the sentence nearest the error first. A phrase on the error's own line
/// speaks of it ("`RuntimeError: CUDA out of memory. ...` at eval stage"),
/// however the message's punctuation splits that line.
fn tied_phase(lines: &[&str], error_at: usize) -> Option<Phase> {
    static SENTENCE_END: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"[.!?;:。！？](?:\s|$)").expect("pattern compiles"));
    let mut order: Vec<usize> = (0..lines.len()).collect();
    order.sort_by_key(|&i| i.abs_diff(error_at));
    order.into_iter().find_map(|i| {
        if !PHASE_WORDS.is_match(lines[i]) {
            return None;
        }
        let on_error_line = i == error_at;
        let line = if lines[i].contains("thrown in the test") {
            FIXED_PHRASES.replace_all(lines[i], "")
        } else {
            std::borrow::Cow::Borrowed(lines[i])
        };
        // A task named by what it generates, trained ("scene graph
        // generation training", "image generation fine-tuning"): training,
        // not the generation phase.
        let line = match TRAINED_TASK.replace_all(&line, "training") {
            std::borrow::Cow::Owned(s) => std::borrow::Cow::Owned(s),
            std::borrow::Cow::Borrowed(_) => line,
        };
        SENTENCE_END
            .split(&line)
            .filter(|s| on_error_line || FAILURE.is_match(s))
            .find_map(|s| {
                TIED_RULES
                    .iter()
                    .find(|(_, re)| re.is_match(s))
                    .map(|(phase, _)| *phase)
                    .or_else(|| leading_gerund(s))
            })
    })
}

/// A generation task named as what is trained (see [`tied_phase`]).
static TRAINED_TASK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\bgenerat(?:ion|ive)\s+(?:model\s+)?(?:training|train|fine-?tuning)\b")
        .expect("pattern compiles")
});

/// A sentence whose subject is the phase's act and whose verb the failure:
/// "Loading a quantized GGUF model with CUDA fails with:", "Loading a
/// model with safetensors results in ...", "Evaluating on the test set
/// throws OOM". The failure must follow in the same clause, so "Loading
/// took a minute, then training crashed" ties nothing. Reading is left
/// out: "Reading the logs below, ..." introduces a paste.
fn leading_gerund(sentence: &str) -> Option<Phase> {
    static GERUND: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"(?i)^\W{0,3}(loading|evaluating|validating|generating)\b[^,;]{0,80}?",
            r"\b(?:fail\w*|crash\w*|errors?|oom|out of memory|runs? out|ran out|throws|gives|shows|results? in|raises?)\b"
        ))
        .expect("pattern compiles")
    });
    let act = GERUND.captures(sentence)?;
    Some(match act[1].to_ascii_lowercase().as_str() {
        "loading" => Phase::ModelLoad,
        "generating" => Phase::Generation,
        _ => Phase::Evaluation,
    })
}

/// The phase the words around an event name, when no traceback shows one:
/// the last 25 lines before it, the event's own text and the lines after
/// it. A sentence that ties a phase to the failure wins over a marker.
pub(crate) fn from_context(before: &[String], text: &str, after: &[String]) -> Option<Phase> {
    let near_before = &before[before.len().saturating_sub(25)..];
    let lines: Vec<&str> = near_before
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(text))
        .chain(after.iter().take(FOLLOWING_LINES).map(String::as_str))
        .collect();
    patching_weight(text)
        .or_else(|| worker_method(&lines))
        .or_else(|| comfy_node(&lines))
        .or_else(|| paddle_operator(&lines))
        .or_else(|| tied_phase(&lines, near_before.len()))
        .or_else(|| loading_data_last(near_before))
        .or_else(|| training_fine_then_testing(&lines))
        .or_else(|| {
            // The first rule, in order, that any line matches. The rules are
            // compiled only once a line holds one of their words: a log dense
            // with bare OOM lines never pays for them. A load the log then
            // says finished is not where the failure came.
            // Computed once a loader's line needs it.
            let mut done: Option<Option<usize>> = None;
            let first = lines
                .iter()
                .enumerate()
                .filter(|(_, l)| CONTEXT_WORDS.is_match(**l))
                .filter_map(|(i, l)| {
                    CONTEXT_RULES.1.matches(l).iter().find(|&rule| {
                        CONTEXT_RULES.0[rule] != Phase::ModelLoad
                            || done
                                .get_or_insert_with(|| load_done_at(&lines))
                                .is_none_or(|d| i > d)
                    })
                })
                .min()?;
            Some(CONTEXT_RULES.0[first])
        })
        .or_else(|| follows_command(near_before).then_some(Phase::Startup))
}

/// A report that says training runs fine and then names testing,
/// evaluation, prediction or validation ("train is ok. test is error.",
/// "Train正常Evaluate & Predict失败", "while training is fine in evaluation
/// loop I get CUDA out of memory"): the failure is the second step's.
fn training_fine_then_testing(lines: &[&str]) -> Option<Phase> {
    static FINE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\btrain(?:ing)?\s*(?:is |was |works? |worked |runs? |ran |goes )?(?:ok|okay|fine|normal(?:ly)?|well|正常|没问题)")
            .expect("pattern compiles")
    });
    static SECOND: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(?:test(?:ing)?|eval\w*|predict\w*|validat\w*|inference)\b|Evaluate|Predict|测试|验证|推理")
            .expect("pattern compiles")
    });
    // A line must hold the word before a pattern runs, and only the first
    // few such lines are read: a training log names training on every line.
    let says_train = |l: &&str| contains_ignore_case(l, "train");
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| says_train(l))
        .take(3)
        .find_map(|(i, l)| {
            let fine = FINE.find(l)?;
            std::iter::once(&l[fine.end()..])
                .chain(lines[i + 1..].iter().take(7).copied())
                .any(|r| SECOND.is_match(r))
                .then_some(Phase::Evaluation)
        })
}

/// How many of the last printed lines before a failure show the step it
/// came in.
const LAST_STEP_LINES: usize = 4;

/// A log line that loads a data set, images or samples ("Loading NeRF
/// dataset from ...", "Loaded 70 images of size 4032x3024", "[LoadImages]
/// begin") among the last lines printed before the failure: it came while
/// the data was being read in, before training or inference began. Farther
/// up, a later step ("Training") may have followed, so only the last lines
/// count.
fn loading_data_last(before: &[String]) -> Option<Phase> {
    static DATA: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"(?i)\bload(?:ing|ed)\s+(?:the\s+|all\s+)?(?:\d+\s+)?(?:[\w-]+\s+)?(?:data(?:set)?s?|images|samples|annotations|features)\b|",
            r"\[LoadImages\]"
        ))
        .expect("pattern compiles")
    });
    before
        .iter()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .take(LAST_STEP_LINES)
        .any(|l| DATA.is_match(l))
        .then_some(Phase::DataLoading)
}

/// The last line that says a model finished loading (read over the lines
/// around a failure, a report's paste under it included):
/// "Loaded 1324 weights from 1 file(s)", "Model loaded in 12.3s",
/// "Finished loading model", "done loading". Loader lines above it are a
/// load that ended; the failure came in what followed. (A progress bar at
/// 100% is not read: frameworks move or dispatch the weights after it.)
pub(crate) fn load_done_at<S: AsRef<str>>(before: &[S]) -> Option<usize> {
    static DONE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"(?i)^\W*loaded\b|\b(?:model|weights|checkpoint)s? (?:was |were |is )?(?:successfully )?loaded\b|",
            r"\b(?:finished|done|completed) loading\b|\bloading (?:the )?(?:model|weights|checkpoint) (?:done|finished|complete)"
        ))
        .expect("pattern compiles")
    });
    // Lines without the word skip the pattern, with no allocation: a log
    // dense with OOM lines reads this for every event.
    let says_load = |l: &str| contains_ignore_case(l, "load");
    before
        .iter()
        .map(AsRef::as_ref)
        .rposition(|l| says_load(l) && DONE.is_match(l))
}

/// The phase of the method a distributed worker was running when it
/// failed, as the engine logs it beside the error: vLLM's workers print
/// "Exception in worker VllmWorkerProcess while processing method
/// load_model." (vllm/executor/multiproc_worker_utils.py) or "Error
/// executing method 'determine_num_available_blocks'. This might cause
/// deadlock in distributed execution." (vllm/worker/worker_base.py). The
/// method is read as a frame's function is.
fn worker_method(lines: &[&str]) -> Option<Phase> {
    static METHOD: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?:while processing method|Error executing method)\s+'?(\w+)")
            .expect("pattern compiles")
    });
    lines
        .iter()
        .filter(|l| l.contains(" method "))
        .find_map(|l| METHOD.captures(l))
        .and_then(|c| phase_of_frames(&[format!("in {}", &c[1])]))
}

/// A weight being patched when the failure came: ComfyUI's, Fooocus' and
/// the webui forks' LoRA patcher catches the error of each weight and
/// prints it after the weight's name (`print("ERROR", key, e)`, later
/// `"ERROR {} {} {}".format(patch, key, e)`): "ERROR
/// diffusion_model.output_blocks.2.0.in_layers.2.weight CUDA out of
/// memory". The model's weights are being set up on the device.
fn patching_weight(text: &str) -> Option<Phase> {
    static PATCH: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\s*(?:ERROR\s+)?(?:\w+\s+)?\w+(?:\.\w+){2,}\.(?:weight|bias)\s+\S")
            .expect("pattern compiles")
    });
    // A log prefix (`ERROR`) may have been taken off the line already.
    let names_a_weight = text.contains(".weight ") || text.contains(".bias ");
    (names_a_weight && PATCH.is_match(text)).then_some(Phase::ModelLoad)
}

/// The phase of the ComfyUI node that failed, as ComfyUI names it: its log
/// before 2024 ("Error occurred when executing KSampler:", execution.py)
/// and its error report ("- **Node Type:** KSampler"). A node that loads
/// (CheckpointLoaderSimple, UNETLoader, LoraLoader, Echo_LoadModel) loads
/// the model; a sampler (KSampler, SamplerCustomAdvanced) or the VAE's
/// decoding and encoding of the latents generates. Other nodes (a text
/// encoder, which also moves its model to the GPU) say neither.
fn comfy_node(lines: &[&str]) -> Option<Phase> {
    static NODE: LazyLock<(Regex, Regex, Regex, Regex)> = LazyLock::new(|| {
        let re = |p: &str| Regex::new(p).expect("pattern compiles");
        (
            re(r"Error occurred when executing (\w+)|Node Type:\**\s*(\w+)"),
            re(r"(?i:loader|^load|_load)"),
            re(r"(?i:sampler|^vae(?:decode|encode))"),
            // An upscaler network run once over the image, in tiles
            // (ComfyUI's `ImageUpscaleWithModel`): one forward pass.
            re(r"(?i:upscale\w*with\w*model)"),
        )
    });
    let (node, loads, generates, runs) = &*NODE;
    let name = named_in(lines, &["when executing", "Node Type"], node)?;
    if loads.is_match(name) {
        Some(Phase::ModelLoad)
    } else if generates.is_match(name) {
        Some(Phase::Generation)
    } else if runs.is_match(name) {
        Some(Phase::Forward)
    } else {
        None
    }
}

/// The name the first line holding one of `words` gives in `re`'s first
/// or second group (a pattern with two spellings of one name).
fn named_in<'a>(lines: &[&'a str], words: &[&str], re: &Regex) -> Option<&'a str> {
    lines
        .iter()
        .filter(|l| words.iter().any(|w| l.contains(w)))
        .find_map(|l| re.captures(l))
        .and_then(|c| c.get(1).or(c.get(2)))
        .map(|m| m.as_str())
}

/// The phase of the operator PaddlePaddle names with its error: Paddle 2
/// ends the message with `[operator < conv2d_grad > error]`, Fluid logged
/// `lookup_table raises an exception paddle::memory::allocation::BadAlloc`
/// (paddle/fluid/framework/operator.cc). A gradient operator (`_grad`
/// suffix, Paddle's naming for the backward kernel of an op) runs in the
/// backward pass, an optimizer's update operator in its step, any other in
/// the forward pass.
fn paddle_operator(lines: &[&str]) -> Option<Phase> {
    static OP: LazyLock<(Regex, Regex)> = LazyLock::new(|| {
        let re = |p: &str| Regex::new(p).expect("pattern compiles");
        (
            re(r"\[operator < (\w+) > error\]|\b(\w+) raises an exception paddle::"),
            // paddle/fluid/operators/optimizers/: adam, adamw, sgd,
            // momentum, lamb, lars_momentum, rmsprop, adagrad, adadelta,
            // adamax, ftrl, and their merged_ forms.
            re(
                r"^(?:merged_)?(?:adamw?|sgd|momentum|lamb|lars_momentum|rmsprop|adagrad|adadelta|adamax|ftrl|dpsgd|decayed_adagrad)$",
            ),
        )
    });
    let (op, optimizer) = &*OP;
    let name = named_in(lines, &["operator <", "raises an exception"], op)?;
    Some(if name.ends_with("_grad") || name.contains("_grad_") {
        Phase::Backward
    } else if optimizer.is_match(name) {
        Phase::OptimizerStep
    } else {
        Phase::Forward
    })
}

/// True when the line just above the error (blank lines aside) is the
/// shell command that started the program: it failed before printing
/// anything, at start-up.
fn follows_command(before: &[String]) -> bool {
    static COMMAND: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"(?:^|[$#>%]\s+|[$#>%] ?)",
            r"(?:python3?(?:\.\d+)?|torchrun|accelerate launch|deepspeed|mpirun|srun|horovodrun)\s+\S+\.py\b"
        ))
        .expect("pattern compiles")
    });
    before
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        // Every command the pattern knows names a `.py` file: a line without
        // one is not matched against it.
        .is_some_and(|l| l.contains(".py") && COMMAND.is_match(l.trim_end()))
}

/// The phase the TensorFlow graph node printed under the error names, when
/// the error's own line leaves the node out: `[[Node: scope/op = Op[...]]]`
/// (TF 1.x) or `[[{{node scope/op}}]]` (later), within its first lines.
/// A node's path says what it computes (the reading the TensorFlow family
/// gives a node on the error's own line): a gradient node
/// (`gradients/.../MatMul_grad`) runs in the backward pass; a node in an
/// optimizer's name scope (Keras names it after the class: `training/Adam/`,
/// `SGD/`) or one of its update kernels (`ApplyAdam`, `ResourceApply*`,
/// tensorflow/core/kernels/training_ops.cc) in its step; an initializer or
/// a variable's `Assign` builds the weights; any other scoped node is the
/// model's forward pass.
pub(crate) fn from_graph_node(after: &[String]) -> Option<Phase> {
    static NODE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\s*\[\[(?:\{\{)?(?i:node):?\s+([\w/.\-]+)").expect("pattern compiles")
    });
    let name = after
        .iter()
        .take(4)
        .find_map(|l| NODE.captures(l).map(|c| c[1].to_string()))?;
    super::families::tensorflow_jax::phase_of_node(&name)
}

/// The phase the traceback that ends at the error shows, `None` when no
/// frame says.
pub(crate) fn from_traceback(before: &[String]) -> Option<Phase> {
    phase_of_frames(traceback_lines(before))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_string).collect()
    }

    #[test]
    fn frames_behind_a_collector_s_timestamp_are_read() {
        let before = lines(concat!(
            "2025-10-27 18:45:39   File \"/x/zipvoice/models/modules/zipformer.py\", line 1295, in forward\n",
            "2025-10-27 18:45:39     attn_weights = softmax(attn_scores, dim=-1)\n",
            "2025-10-27 18:45:39   File \"/x/zipvoice/models/modules/scaling.py\", line 308, in forward\n",
            "2025-10-27 18:45:39     ans = x.softmax(dim=dim)",
        ));
        assert_eq!(from_traceback(&before), Some(Phase::Forward));
        assert!(!is_frame_part("2025-10-27 18:45:39 INFO epoch 3 done"));
    }

    #[test]
    fn a_code_span_opening_the_paste_keeps_its_source_line() {
        let before = lines("Hi,\n\n`    return t.to(device, dtype if t.is_floating_point() or t.is_complex() else None, non_blocking)");
        assert_eq!(from_traceback(&before), Some(Phase::ModelLoad));
        assert!(!is_frame_part("```"));
        assert!(!is_frame_part("`code` in prose"));
    }

    #[test]
    fn a_frame_wrapped_inside_its_path_reads_whole() {
        let tb = lines("Traceback (most recent call last):\n  File \"/a/torch/utils/data/dataload\ner.py\", line 301, in __iter__\n    return DataLoaderIter(self)\n  File \"/a/multiprocessing/forking.py\", line 121, \nin __init__\n    self.pid = os.fork()");
        assert_eq!(from_traceback(&tb), Some(Phase::DataLoading));
        // Without the header, the frames above the error are found whole.
        let tb = lines("why this happened ?\nFile \"/a/torch/utils/data/dataload\ner.py\", line 158, in __init__\n    w.start()\n  File \"/a/multiprocessing/forking.py\", line 121, \nin __init__\n    self.pid = os.fork()");
        assert_eq!(from_traceback(&tb), Some(Phase::DataLoading));
    }

    #[test]
    fn a_storage_shared_to_cross_a_process_queue_is_data_loading() {
        for frame in [
            "  File \"/a/torch/multiprocessing/reductions.py\", line 369, in reduce_storage\n    fd, size = storage._share_fd_cpu_()",
            "  File \"/a/torch/utils/data/dataloader.py\", line 89, in default_collate\n    storage = batch[0].storage()._new_shared(numel)",
        ] {
            assert_frame_reads_as(frame, Phase::DataLoading);
        }
    }

    /// `frame` under a traceback's header reads as `phase`.
    fn assert_frame_reads_as(frame: &str, phase: Phase) {
        let tb = lines(&format!("Traceback (most recent call last):\n{frame}"));
        assert_eq!(from_traceback(&tb), Some(phase), "{frame}");
    }

    #[test]
    fn a_serving_engine_s_workers_allocating_the_kv_cache_start_up() {
        for frame in [
            "  File \"/x/vllm/v1/worker/gpu_worker.py\", line 560, in initialize_from_config\n    self.model_runner.initialize_kv_cache(kv_cache_config)",
            "  File \"/x/vllm/v1/worker/gpu_model_runner.py\", line 3001, in _allocate_kv_cache_tensors\n    tensor = torch.zeros(kv_cache_tensor.size)",
            "  File \"/x/sglang/srt/model_executor/model_runner.py\", line 700, in init_memory_pool\n    self.token_to_kv_pool = MHATokenToKVPool(",
        ] {
            assert_frame_reads_as(frame, Phase::Startup);
        }
    }

    #[test]
    fn a_runtime_loading_its_model_names_the_load() {
        let oom = "CUDA failure 2: out of memory ; GPU=0 ; expr=cudaMalloc((void**)&p, size);";
        for before in [
            "2021-01-28 18:18:38.42 [E:onnxruntime:, inference_session.cc:1268 onnxruntime::InferenceSession::Initialize::<lambda_c6>::operator ()] Exception during",
            "I0620 22:58:13.155567 1 tensorflow.cc:2025] TRITONBACKEND_ModelInstanceInitialize: bert_large (device 0)",
            "Loading TensorRT engine: engine/vae.plan",
            "ran out of memory on step `params = params_lib.load_and_format_params(ckpt_path)`",
            "squeezenet.load_param(\"squeezenet_v1.1.param\");",
        ] {
            let before = vec![before.to_string()];
            assert_eq!(from_context(&before, oom, &[]), Some(Phase::ModelLoad), "{before:?}");
        }
        // A loader of data is no model's, and a script's `load_model(` is
        // where it starts, not where it failed.
        for before in ["batch = load_batch(data_dir)", "model = load_model('m.h5')"] {
            let before = vec![before.to_string()];
            assert_ne!(from_context(&before, oom, &[]), Some(Phase::ModelLoad));
        }
    }

    #[test]
    fn onnx_runtime_s_session_set_up_loads_the_model() {
        let line = "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Exception during initialization: D:\\a\\_work\\1\\s\\onnxruntime\\core\\framework\\bfc_arena.cc:331 onnxruntime::BFCArena::AllocateRawInternal Failed to allocate memory for requested buffer of size 150994944";
        assert_eq!(from_context(&[], line, &[]), Some(Phase::ModelLoad));
    }

    #[test]
    fn a_test_harness_s_report_is_not_an_evaluation() {
        let gtest = "unknown file: error: C++ exception with description \"Non-zero status code returned while running FusedMatMul node. Status Message: bad allocation\" thrown in the test body.";
        assert_eq!(tied_phase(&[gtest], 0), None);
        assert_eq!(
            tied_phase(&["CUDA out of memory in the test step"], 0),
            Some(Phase::Evaluation)
        );
        assert_eq!(
            tied_phase(
                &["Error: Could not load the stable-diffusion model! Reason: CUDA out of memory."],
                0
            ),
            Some(Phase::ModelLoad)
        );
    }

    #[test]
    fn every_alternative_of_a_tied_rule_needs_its_time_word() {
        // The data-loading rule's second alternative once stood alone.
        let told = "Reading the logs below, it seems it triggers an OOM on my system.";
        assert_eq!(tied_phase(&[told], 0), None);
        assert_eq!(
            tied_phase(&["It fails with OOM while reading the dataset."], 0),
            Some(Phase::DataLoading)
        );
        // The start-up rule's second alternative too.
        assert_eq!(tied_phase(&["Starting the server gave an OOM."], 0), None);
        assert_eq!(
            tied_phase(
                &["[E] Failed to initialize executor on rank 1: Executor creation failed due to insufficient GPU memory."],
                0
            ),
            Some(Phase::Startup)
        );
        assert_eq!(
            tied_phase(&["OOM while initializing the model."], 0),
            Some(Phase::ModelLoad)
        );
        assert_eq!(
            tied_phase(
                &["Loading a simple quantized GGUF model with CUDA fails with:"],
                0
            ),
            Some(Phase::ModelLoad)
        );
        assert_eq!(
            tied_phase(&["Evaluating on the test set throws OOM."], 0),
            Some(Phase::Evaluation)
        );
        // The failure is another clause's.
        assert_eq!(
            tied_phase(&["Loading took a minute, then training crashed."], 0),
            None
        );
        assert_eq!(
            tied_phase(&["Reading the logs below, it fails with OOM."], 0),
            None
        );
        assert_eq!(
            tied_phase(&["OOM when starting the vllm server."], 0),
            Some(Phase::Startup)
        );
    }

    #[test]
    fn frames_cut_short_by_the_paste_still_name_the_pass() {
        let tb = lines(concat!(
            "Llama 3.1 8B failed with OOM.\n",
            "    File \"/v/torch/_functorch/_aot_autograd/runtime_wrappers.py\", line 2324, in impl_fn\n",
            "      out = CompiledFunction._backward_impl(ctx, all_args)\n",
            "    File \"/v/torch/_functorch/_aot_autograd/runtime_wrappers.py\", line 2494, in _backward_impl\n",
            "      out = call_func_at_runtime_with_args(\n",
            "...",
        ));
        assert_eq!(from_traceback(&tb), Some(Phase::Backward));
    }

    #[test]
    fn a_paddle_operator_names_its_pass() {
        let phase = |line: &str| paddle_operator(&[line]);
        assert_eq!(
            phase("  [operator < conv2d_grad > error]"),
            Some(Phase::Backward)
        );
        assert_eq!(
            phase("  [operator < softmax > error]"),
            Some(Phase::Forward)
        );
        assert_eq!(
            phase("  [operator < adamw > error]"),
            Some(Phase::OptimizerStep)
        );
        assert_eq!(
            phase("W0223 operator.cc:179] lookup_table raises an exception paddle::memory::allocation::BadAlloc, "),
            Some(Phase::Forward)
        );
        assert_eq!(phase("the operator raised an exception"), None);
    }

    #[test]
    fn a_helper_that_builds_a_tensor_is_not_generating() {
        let tb = lines(concat!(
            "  File \"/x/accelerate/hooks.py\", line 164, in new_forward\n",
            "  File \"/w/mistral_attn_hijack_flash.py\", line 228, in flashattn_forward\n",
            "  File \"/w/mistral_attn_hijack_flash.py\", line 340, in generate_qkv\n",
        ));
        assert_eq!(from_traceback(&tb), Some(Phase::Forward));
        let tb = lines(concat!(
            "  File \"/x/faster_whisper/transcribe.py\", line 1100, in generate_segments\n",
            "  File \"/x/faster_whisper/transcribe.py\", line 1300, in encode\n",
        ));
        assert_eq!(from_traceback(&tb), Some(Phase::Generation));
    }

    #[test]
    fn old_ipython_frames_and_a_debuggers_frames_are_read() {
        let after = lines("/x/keras/backend/tensorflow_backend.py in get_session()\n    199   if uninitialized_vars:\n--> 200       session.run(tf.variables_initializer(uninitialized_vars))");
        assert_eq!(from_following(&after, true), Some(Phase::ModelLoad));
        // VS Code lists the frames right under the error, innermost first.
        let after = lines("  File \"/m/layers.py\", line 248, in forward\n    x = a * b\n  File \"/m/trainer.py\", line 210, in run_epoch");
        assert_eq!(from_following(&after, false), Some(Phase::Forward));
        // A lowercased header still opens a traceback.
        let after = lines("traceback (most recent call last):\n  File \"/w/ui_model_menu.py\", line 213, in load_model_wrapper");
        assert_eq!(from_following(&after, false), Some(Phase::ModelLoad));
    }

    #[test]
    fn the_innermost_frame_that_names_a_phase_wins() {
        // An evaluation loop that reloads the best weights: the load is innermost.
        let tb = lines("Traceback (most recent call last):\n  File \"run.py\", line 9, in main\n    trainer.evaluate()\n  File \"/x/trainer.py\", line 3, in evaluate\n    self._load_best()\n  File \"/x/trainer.py\", line 7, in _load_best\n    model.load_state_dict(sd)");
        assert_eq!(from_traceback(&tb), Some(Phase::ModelLoad));
        // Generation inside evaluation: generation.
        let tb = lines("Traceback (most recent call last):\n  File \"/x/trainer.py\", line 1, in evaluation_loop\n    out = self.prediction_step(m, b)\n  File \"/x/seq2seq.py\", line 2, in prediction_step\n    gen = model.generate(**b)\n  File \"/x/m.py\", line 3, in forward\n    h = self.mlp(x)");
        assert_eq!(from_traceback(&tb), Some(Phase::Generation));
        // The forward pass alone: forward.
        let tb = lines("Traceback (most recent call last):\n  File \"a.py\", line 1, in train\n    out = model(x)\n  File \"m.py\", line 2, in forward\n    return self.net(x)");
        assert_eq!(from_traceback(&tb), Some(Phase::Forward));
    }

    #[test]
    fn a_warm_up_encloses_what_it_runs() {
        let tb = lines("Traceback (most recent call last):\n  File \"/srv/server.py\", line 4, in Warmup\n    self.model.warmup(batch)\n  File \"/srv/lm.py\", line 8, in generate_token\n    out = self.forward(batch)");
        assert_eq!(from_traceback(&tb), Some(Phase::Startup));
    }

    #[test]
    fn a_constructor_names_loading_only_when_nothing_else_does() {
        let tb = lines("Traceback (most recent call last):\n  File \"fit.py\", line 2, in <module>\n    d = xgb.DMatrix('train.txt')\n  File \"/x/core.py\", line 5, in __init__\n    _check_call(lib.Create(path))");
        assert_eq!(from_traceback(&tb), Some(Phase::DataLoading));
        let tb = lines("Traceback (most recent call last):\n  File \"net.py\", line 2, in __init__\n    self.w = torch.empty(n, n, device='cuda')");
        assert_eq!(from_traceback(&tb), Some(Phase::ModelLoad));
        // `__init__` after Markdown made it bold.
        let tb = lines("File \"D:\\app\\main.py\", line 529, in cli\nFile \"faster_whisper\\transcribe.py\", line 125, in init");
        assert_eq!(from_traceback(&tb), Some(Phase::ModelLoad));
        let tb = lines("File \"x.py\", line 5, in init_logging");
        assert_eq!(from_traceback(&tb), None);
    }

    #[test]
    fn an_optimizer_step_needs_an_optimizer_file() {
        let tb = lines("Traceback (most recent call last):\n  File \"/x/torch/optim/adam.py\", line 77, in step\n    state['exp_avg'] = torch.zeros_like(p)");
        assert_eq!(from_traceback(&tb), Some(Phase::OptimizerStep));
        // A diffusion scheduler's `step` is no optimizer.
        let tb = lines("Traceback (most recent call last):\n  File \"/x/schedulers/scheduling_ddim.py\", line 3, in step\n    prev = alpha * x");
        assert_eq!(from_traceback(&tb), None);
    }

    #[test]
    fn frames_introduced_by_a_sentence_follow_the_error() {
        let after = lines("Full traceback is:\n  File \"train.py\", line 5, in main\n    load_checkpoint(model, path)");
        assert_eq!(from_following(&after, false), Some(Phase::ModelLoad));
        // Frames after a blank line under an error, with nothing
        // introducing them, may be another failure's.
        let after =
            lines("\n  File \"train.py\", line 5, in main\n    load_checkpoint(model, path)");
        assert_eq!(from_following(&after, false), None);
        // Under an error that opens the text (an issue's title), the
        // body's frames are its own.
        assert_eq!(from_following(&after, true), Some(Phase::ModelLoad));
    }

    #[test]
    fn engine_builds_and_communicator_set_up_in_the_log() {
        let none: Vec<String> = Vec::new();
        let oom = "Cuda Error in allocate: 2 (out of memory)";
        assert_eq!(
            from_context(
                &none,
                oom,
                &lines("when i call builder.build_cuda_engine(network) it fails")
            ),
            Some(Phase::ModelLoad)
        );
        assert_eq!(
            from_context(
                &lines("ubuntu:9621:9691 [6] misc/shmutils.cc:112 NCCL WARN Error while creating shared memory segment"),
                "NCCL WARN Error: failed to extend /dev/shm/nccl-fjwOOB to 5967876 bytes",
                &lines("ubuntu:9621:9691 [6] NCCL INFO init.cc:1089 -> 2")
            ),
            Some(Phase::Startup)
        );
    }

    #[test]
    fn a_serving_router_s_prefill_or_decode_span_is_generation() {
        let oom = "batch{batch_size=1}:prefill:prefill{id=13 size=1}:prefill{id=13 size=1}: text_generation_client: router/client/src/lib.rs:33: Server error: CUDA out of memory. Tried to allocate 2.00 MiB";
        assert_eq!(from_context(&[], oom, &[]), Some(Phase::Generation));
        let oom = "batch{batch_size=4}:decode:decode{size=4}:decode{size=4}: text_generation_client: router/client/src/lib.rs:33: Server error: CUDA out of memory.";
        assert_eq!(from_context(&[], oom, &[]), Some(Phase::Generation));
    }

    #[test]
    fn building_a_model_is_loading_it() {
        let oom = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.";
        assert_eq!(
            from_context(&lines("I encountered an OOM problem when continuously initializing `keras.applications` models"), oom, &[]),
            Some(Phase::ModelLoad)
        );
        assert_eq!(
            from_context(
                &lines("It ran out of memory while creating the model"),
                oom,
                &[]
            ),
            Some(Phase::ModelLoad)
        );
    }

    #[test]
    fn a_program_that_does_not_come_up_is_start_up() {
        let oom = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.";
        for told in [
            "The model fails to start on current main.",
            "After the update the server failed to start",
        ] {
            assert_eq!(
                from_context(&lines(told), oom, &[]),
                Some(Phase::Startup),
                "{told}"
            );
        }
        // A step it did not begin is not start-up.
        assert_eq!(
            from_context(&lines("It failed to start training"), oom, &[]),
            None
        );
    }

    #[test]
    fn torch_nn_s_source_lines_without_their_frames_are_the_forward_pass() {
        for line in [
            "    return F.conv2d(input, weight, bias, self.stride,",
            "    result = torch.relu(input)",
            "    return F.linear(input, self.weight, self.bias)",
        ] {
            assert_eq!(from_traceback(&lines(line)), Some(Phase::Forward), "{line}");
        }
        let flush = lines("i got this error with main.py ..\nresult = torch.relu(input)");
        assert_eq!(
            from_context(&flush, "RuntimeError: CUDA out of memory.", &[]),
            Some(Phase::Forward)
        );
        // torchvision's transforms are imported as F too: no layer.
        assert_eq!(
            from_traceback(&lines("    return F.pad(img, padding)")),
            None
        );
    }

    #[test]
    fn training_that_works_and_testing_that_fails_is_evaluation() {
        let oom = "RuntimeError: CUDA out of memory. Tried to allocate 38.00 MiB";
        let before = lines("I run this USAD.ipynb in jupyter-notebook.\n\ntrain is ok.\ntest is error.\nerror message is below.\n");
        assert_eq!(from_context(&before, oom, &[]), Some(Phase::Evaluation));
        assert_eq!(
            from_context(&[], "Train正常Evaluate & Predict失败", &[]),
            Some(Phase::Evaluation)
        );
        // Training named without saying it works is no contrast.
        let before = lines("train.py --epochs 3\nvalidation every 100 steps");
        assert_eq!(
            training_fine_then_testing(&before.iter().map(String::as_str).collect::<Vec<_>>()),
            None
        );
    }

    #[test]
    fn data_loaded_just_before_the_failure_is_data_loading() {
        let oom = "13:54:28 ERROR    Uncaught exception: Could not allocate memory";
        let before = lines("13:54:27 INFO     Loading NeRF dataset from\n13:54:27 INFO       C:\\data\\transforms.json\n13:54:28 SUCCESS  Loaded 70 images of size 4032x3024 after 0s\n13:54:28 INFO       cam_aabb=[min=[-1.0], max=[2.0]]");
        assert_eq!(from_context(&before, oom, &[]), Some(Phase::DataLoading));
        // A later step printed after the data was loaded is where it failed.
        let before = lines("Loading datasets\nTraining\nstep 1\nstep 2\nstep 3\nstep 4");
        assert_eq!(from_context(&before, oom, &[]), None);
    }

    #[test]
    fn a_load_the_log_says_finished_is_not_the_phase() {
        let oom = "Insufficient Memory (00000008:kIOGPUCommandBufferCallbackErrorOutOfMemory)";
        let before = lines("Loading model.safetensors...\nLoaded 1324 weights from 1 file(s)\nPrecomputing layer weights...");
        assert_eq!(from_context(&before, oom, &[]), None);
        let before = lines("Loading model.safetensors...\nPrecomputing layer weights...");
        assert_eq!(from_context(&before, oom, &[]), Some(Phase::ModelLoad));
        // A second load begun after the first ended is where it failed.
        let before = lines("Loading model a...\nModel loaded in 3.1s\nLoading model b...");
        assert_eq!(from_context(&before, oom, &[]), Some(Phase::ModelLoad));
        // A report's paste under the failure it tells: the load finished,
        // and the program's status line says what it did next.
        let paste = lines("> Loading model...\n> Model loaded\n> Generating response...\n> Killed");
        assert_eq!(
            from_context(&[], "The program gets killed with oom-error.", &paste),
            Some(Phase::Generation)
        );
        // A title naming the step is no status line.
        assert_eq!(
            from_context(&[], "Generating images fails with Killed", &[]),
            Some(Phase::Generation)
        );
        assert_eq!(from_context(&[], "Generating a report. Killed", &[]), None);
    }

    #[test]
    fn module_to_s_source_line_without_its_frame_is_a_model_load() {
        let tb = lines(" return t.to(device, dtype if t.is_floating_point() or t.is_complex() else None, non_blocking)");
        assert_eq!(from_traceback(&tb), Some(Phase::ModelLoad));
        let tb = lines("    self.weight = Parameter(torch.Tensor(self.output_size_per_partition, self.in_features))");
        assert_eq!(from_traceback(&tb), Some(Phase::ModelLoad));
        let quoted = lines("``` self.weight = Parameter(torch.Tensor(self.output_size_per_partition, self.in_features))");
        assert_eq!(
            from_context(&quoted, "torch.OutOfMemoryError: CUDA out of memory.", &[]),
            Some(Phase::ModelLoad)
        );
    }

    #[test]
    fn matlab_s_stack_names_the_method() {
        let oom = "vl::impl::nnconv_forward_blas: getWorkspace [out of memory error] .";
        assert_eq!(
            from_context(&[], oom, &lines("dagnn.Conv/forward (line 11)")),
            Some(Phase::Forward)
        );
        assert_eq!(
            from_context(&[], oom, &lines("Error in dagnn.Conv/backward (line 40)")),
            Some(Phase::Backward)
        );
    }

    #[test]
    fn a_failed_prefill_is_generation_and_the_val_stage_evaluation() {
        let oom = "RuntimeError: [metal::malloc] Attempting to allocate 21902407808 bytes";
        let line =
            format!("ERROR:vmlx_engine.mllm_batch_generator:Prefill failed for chatcmpl-b8: {oom}");
        assert_eq!(from_context(&[], &line, &[]), Some(Phase::Generation));
        let told =
            lines("Is something wrong?Or I indeed need a more memory GPU?(Only with val stage)");
        assert_eq!(from_context(&[], oom, &told), Some(Phase::Evaluation));
    }

    #[test]
    fn a_vae_decode_or_a_quoted_generate_call_is_generation() {
        let oom = "RuntimeError: out of memory";
        let told = lines("[enhancement]: OOM error during VAE decode");
        assert_eq!(from_context(&told, oom, &[]), Some(Phase::Generation));
        let told = lines(
            "If it put an input of 17,000 tokens into `model.generate(x, temperature)` I get",
        );
        assert_eq!(from_context(&told, oom, &[]), Some(Phase::Generation));
    }

    #[test]
    fn a_generation_task_being_trained_is_not_generation() {
        let oom = "CUDA out of memory. Tried to allocate 294.00 MiB";
        let told = lines("out of memory problem in object detection training and scene graph generation training won't occur");
        assert_ne!(from_context(&told, oom, &[]), Some(Phase::Generation));
        let told = lines("it runs out of memory during generation");
        assert_eq!(from_context(&told, oom, &[]), Some(Phase::Generation));
    }

    #[test]
    fn a_device_that_fails_to_initialise_is_start_up() {
        let oom = "Error allocating 24 bytes of device memory (out of memory).";
        let after = lines("ERROR (theano.sandbox.cuda): ERROR: Not using GPU. Initialisation of device gpu failed:");
        assert_eq!(from_context(&[], oom, &after), Some(Phase::Startup));
    }

    #[test]
    fn a_server_still_starting_is_start_up() {
        let before = lines("tabby_1  | INFO tabby::serve: Starting server, this might takes a few minutes...\ntabby_1  | ggml_init_cublas: found 1 CUDA devices:");
        let oom = "CUDA error 2 at ggml-cuda.cu:7641: out of memory";
        assert_eq!(from_context(&before, oom, &[]), Some(Phase::Startup));
        assert_eq!(
            from_context(&lines("Server started on port 8080"), oom, &[]),
            None
        );
    }

    #[test]
    fn ipython_frames_read_as_python_s() {
        let tb = lines("Traceback (most recent call last):\nFile ~/envs/t/lib/python3.11/site-packages/transformers/trainer.py:2801, in Trainer.evaluate(self, eval_dataset)\n   2799 start_time = time.time()\n-> 2801 output = eval_loop(\nFile /x/torch/nn/modules/module.py:1501, in Module._call_impl(self, *args)");
        assert_eq!(from_traceback(&tb), Some(Phase::Evaluation));
        // Without a header, a run of IPython frames above the error.
        let tb = lines("File /x/deepspeed/runtime/engine.py:1474, in DeepSpeedEngine._configure_zero_optimizer(self, optimizer)\n-> 1474         optimizer = DeepSpeedZeroOptimizer_Stage3(");
        assert_eq!(from_traceback(&tb), Some(Phase::ModelLoad));
        assert_eq!(
            ipython_frame("File <ipython-input-3>:7, in <module>").as_deref(),
            Some("File \"<ipython-input-3>\", line 7, in <module>")
        );
    }

    #[test]
    fn a_runtime_s_session_or_engine_built_from_a_model_file_is_its_load() {
        for frame in [
            "  File \"/x/onnxruntime/capi/onnxruntime_inference_collection.py\", line 472, in _create_inference_session",
            "    sess.initialize_session(providers, provider_options, disabled_optimizers)",
            "    engine = runtime.deserialize_cuda_engine(f.read())",
            "    predictor = paddle_infer.create_predictor(config)",
            "    runner = runner_cls.from_dir(**runner_kwargs)",
            "  File \"/x/tensorrt_llm/runtime/model_runner_cpp.py\", line 169, in from_dir",
        ] {
            let tb = lines(&format!("Traceback (most recent call last):\n  File \"serve.py\", line 3, in <module>\n{frame}"));
            assert_eq!(from_traceback(&tb), Some(Phase::ModelLoad), "{frame}");
        }
    }

    #[test]
    fn keras_hub_s_preset_loader_loads_the_model() {
        // Keras Hub (keras_nlp) builds a model and its weights with
        // `from_preset`, as transformers does with `from_pretrained`.
        let none: Vec<String> = Vec::new();
        let code =
            lines("keras_nlp.models.GemmaCausalLM.from_preset(\"hf://google/gemma-2-27b-it\")");
        assert_eq!(
            from_context(
                &code,
                "XlaRuntimeError: RESOURCE_EXHAUSTED: Error allocating device buffer",
                &none
            ),
            Some(Phase::ModelLoad)
        );
        let tb = lines("Traceback (most recent call last):\n  File \"run.py\", line 3, in <module>\n    lm = keras_hub.models.Llama3CausalLM.from_preset(\"llama3_8b_en\")");
        assert_eq!(from_traceback(&tb), Some(Phase::ModelLoad));
    }

    #[test]
    fn a_sentence_ties_a_phase_to_the_failure() {
        let none: Vec<String> = Vec::new();
        let phase = |before: &str, text: &str| from_context(&lines(before), text, &none);
        assert_eq!(
            phase(
                "Training is fine, but in the validation step it crashes:",
                "RuntimeError: CUDA out of memory."
            ),
            Some(Phase::Evaluation)
        );
        assert_eq!(
            phase(
                "I get this error while loading the model",
                "torch.OutOfMemoryError: CUDA out of memory."
            ),
            Some(Phase::ModelLoad)
        );
        assert_eq!(
            phase(
                "When reading a large matrix file it gives me this error:",
                "MemoryError: Unable to allocate 9 GiB"
            ),
            Some(Phase::DataLoading)
        );
        // transformers' generation logs name the phase.
        assert_eq!(
            phase(
                "[INFO|configuration_utils.py:577] 2023-10-10 15:56:27,605 >> Generate config GenerationConfig {",
                "2023-10-10 15:56:29,603 - machine.jobs - ERROR - CUDA out of memory. Tried to allocate 16.00 MiB"
            ),
            Some(Phase::Generation)
        );
        // An LLM runner reading its prompt is generating, not loading data.
        for sentence in [
            "During prompt reading, here is the error",
            "It crashes during prompt processing with this error",
        ] {
            assert_eq!(
                phase(
                    sentence,
                    "ggml_tallocr_alloc: not enough space in the buffer (needed 155582464, largest block available 151388160)"
                ),
                Some(Phase::Generation),
                "{sentence}"
            );
        }
        // The verb with what it makes ("when I try to generate an image,
        // this error appears"); the verb alone is no phase.
        assert_eq!(
            phase(
                "it started today when I try to generate an image, this error appears",
                "torch.cuda.OutOfMemoryError: CUDA out of memory."
            ),
            Some(Phase::Generation)
        );
        assert_ne!(
            phase(
                "the error appears when I try to generate the config file",
                "torch.cuda.OutOfMemoryError: CUDA out of memory."
            ),
            Some(Phase::Generation)
        );
        // What could not be done ties its phase.
        assert_eq!(
            phase(
                "can't start server with small --max-total-tokens",
                "torch.cuda.OutOfMemoryError: CUDA out of memory."
            ),
            Some(Phase::Startup)
        );
        assert_eq!(
            phase(
                "Unable to load the 13B model on my card",
                "torch.cuda.OutOfMemoryError: CUDA out of memory."
            ),
            Some(Phase::ModelLoad)
        );
        // A loader's loop head named as where it failed.
        assert_eq!(
            phase(
                "Massive RAM requirement",
                "I got `OSError: [Errno 12] Cannot allocate memory` at `for i, (v, b, q, a) in enumerate(train_loader):`."
            ),
            Some(Phase::DataLoading)
        );
        // The call named in backticks or quotes.
        assert_eq!(
            phase(
                "When calling `pipe.generate()` on a long prompt the process dies with an error:",
                "RuntimeError: out of memory"
            ),
            Some(Phase::Generation)
        );
        assert_eq!(
            phase(
                "While running 'trainer.evaluate()' I get this error:",
                "torch.OutOfMemoryError: CUDA out of memory."
            ),
            Some(Phase::Evaluation)
        );
        // A chat model's chat method generates; Markdown may bold it.
        assert_eq!(
            phase(
                "I can load the model. However, when I call the **chat** methods, an exception occurs:",
                "CUDA out of memory. Tried to allocate 1.57 GiB"
            ),
            Some(Phase::Generation)
        );
        // A model built and moved to the device in one statement.
        assert_eq!(
            phase(
                "the error occured in model = Model(opt.cfg, nc=nc).to(device)",
                "RuntimeError: [enforce fail at CPUAllocator.cpp:64] . DefaultCPUAllocator: can't allocate memory"
            ),
            Some(Phase::ModelLoad)
        );
        // A prediction pass is evaluation's; the failure named as the
        // thing it comes from.
        assert_eq!(
            phase(
                "",
                "getting OutOfMemoryError: CUDA out of memory from trainer.evaluate step"
            ),
            Some(Phase::Evaluation)
        );
        assert_eq!(
            phase(
                "The model throws a ResourceExhaustedError when it is running the prediction on all the batches.",
                "ResourceExhaustedError: OOM when allocating tensor"
            ),
            Some(Phase::Evaluation)
        );
        // Testing named as a verb or by its script.
        for said in [
            "Why do I have this problem when I test:",
            "It fails when we test on the full-size images.",
            "Cuda out of memory when running tools/test.py",
        ] {
            assert_eq!(
                phase(said, "RuntimeError: CUDA out of memory."),
                Some(Phase::Evaluation),
                "{said}"
            );
        }
        // A test suite is not a test pass.
        assert_eq!(
            phase(
                "It crashes when I run the tests of the library:",
                "RuntimeError: CUDA out of memory."
            ),
            None
        );
        // Naming a phase without speaking of the failure ties nothing.
        assert_eq!(
            phase(
                "Evaluation runs at the end of each epoch.",
                "RuntimeError: CUDA out of memory."
            ),
            None
        );
        // Running inference is a workload, not a phase.
        assert_eq!(
            phase(
                "I get this error when I run inference:",
                "RuntimeError: CUDA out of memory."
            ),
            None
        );
    }

    #[test]
    fn a_notebook_traceback_after_the_error_counts() {
        let after = lines("---------------------------------------------------------------------------\nOutOfMemoryError                          Traceback (most recent call last)\nCell In[3], line 7\n      5 ids = tok(prompt).input_ids\n----> 7 out = llm.generate(ids.to(\"cuda\"), max_new_tokens=64)\n      8 print(out)");
        assert!(starts_traceback(&after, false));
        assert_eq!(from_following(&after, false), Some(Phase::Generation));
    }

    #[test]
    fn backward_wins_over_forward_under_checkpointing() {
        let tb = lines(
            "Traceback (most recent call last):\n  File \"train.py\", line 10, in <module>\n    loss.backward()\n  File \"/x/torch/utils/checkpoint.py\", line 3, in backward\n  File \"/x/torch/nn/modules/module.py\", line 1, in _call_impl\n    return forward_call(*args)",
        );
        assert_eq!(from_traceback(&tb), Some(Phase::Backward));
    }

    #[test]
    fn generation_and_forward() {
        let tb = lines("Traceback (most recent call last):\n  File \"a.py\", line 1, in <module>\n    out = model.generate(**inputs)\n  File \"m.py\", line 2, in forward");
        assert_eq!(from_traceback(&tb), Some(Phase::Generation));
        let tb = lines("Traceback (most recent call last):\nFile \"app.py\", line 42, in <module>\noutputs = model(input_tensor)\nFile \"module.py\", line 1190, in _call_impl");
        assert_eq!(from_traceback(&tb), Some(Phase::Forward));
    }

    #[test]
    fn a_workers_method_names_the_phase() {
        let oom = "torch.OutOfMemoryError: CUDA out of memory.";
        let after = |l: &str| lines(l);
        let none: Vec<String> = Vec::new();
        assert_eq!(
            from_context(&none, oom, &after("(VllmWorkerProcess pid=9) ERROR [multiproc_worker_utils.py:242] Exception in worker VllmWorkerProcess while processing method load_model.")),
            Some(Phase::ModelLoad)
        );
        assert_eq!(
            from_context(&after("ERROR worker_base.py:464] Error executing method 'determine_num_available_blocks'. This might cause deadlock in distributed execution."), oom, &none),
            Some(Phase::Startup)
        );
        assert_eq!(
            from_context(&none, oom, &after("Error executing method 'execute_model'. This might cause deadlock in distributed execution.")),
            Some(Phase::Generation)
        );
        // A method that names no phase leaves it to the other rules.
        assert_eq!(
            from_context(&none, oom, &after("Exception in worker VllmWorkerProcess while processing method start_worker_execution_loop.")),
            None
        );
    }

    #[test]
    fn a_script_run_to_evaluate_is_evaluation_unless_a_frame_says_more() {
        let tb = lines("Traceback (most recent call last):\n  File \"E:/x/evaluate.py\", line 94, in <module>\n    logit = net(data)\n  File \"/x/torch/nn/modules/module.py\", line 489, in __call__\n    result = self.forward(*input, **kwargs)");
        assert_eq!(from_traceback(&tb), Some(Phase::Evaluation));
        let tb = lines("Traceback (most recent call last):\n  File \"tools/test.py\", line 9, in <module>\n    out = model.generate(**x)\n  File \"/x/generation/utils.py\", line 1, in generate");
        assert_eq!(from_traceback(&tb), Some(Phase::Generation));
        let tb = lines("Traceback (most recent call last):\n  File \"train.py\", line 9, in <module>\n    out = net(x)\n  File \"/x/torch/nn/modules/module.py\", line 489, in __call__");
        assert_eq!(from_traceback(&tb), Some(Phase::Forward));
        let tb = lines("Traceback (most recent call last):\n  File \"my_test.py\", line 9, in <module>\n    out = net(x)\n  File \"/x/torch/nn/modules/module.py\", line 489, in __call__");
        assert_eq!(from_traceback(&tb), Some(Phase::Forward));
    }

    #[test]
    fn a_weight_the_lora_patcher_names_is_being_loaded() {
        let none: Vec<String> = Vec::new();
        for (text, want) in [
            ("ERROR diffusion_model.output_blocks.2.0.in_layers.2.weight MPS backend out of memory (MPS allocated: 8.76 GB).", Some(Phase::ModelLoad)),
            ("ERROR lora diffusion_model.input_blocks.4.1.proj_in.weight CUDA out of memory. Tried to allocate 20.00 MiB", Some(Phase::ModelLoad)),
            ("diffusion_model.output_blocks.2.0.out_layers.3.weight MPS backend out of memory", Some(Phase::ModelLoad)),
            ("ERROR: CUDA out of memory. Tried to allocate 20.00 MiB", None),
            ("CUDA out of memory at step 3 (see model.layers.0.weight norm)", None),
        ] {
            assert_eq!(from_context(&none, text, &none), want, "{text}");
        }
    }

    #[test]
    fn a_comfyui_node_names_the_phase() {
        let oom = "torch.OutOfMemoryError: Allocation on device";
        let none: Vec<String> = Vec::new();
        for (line, want) in [
            (
                "Error occurred when executing KSampler:",
                Some(Phase::Generation),
            ),
            (
                "Error occurred when executing SamplerCustomAdvanced:",
                Some(Phase::Generation),
            ),
            ("- **Node Type:** VAEDecodeTiled", Some(Phase::Generation)),
            ("- **Node Type:** UNETLoader", Some(Phase::ModelLoad)),
            (
                "Error occurred when executing Echo_LoadModel:",
                Some(Phase::ModelLoad),
            ),
            (
                "Error occurred when executing ImageUpscaleWithModel:",
                Some(Phase::Forward),
            ),
            (
                "- **Node Type:** UpscaleModelLoader",
                Some(Phase::ModelLoad),
            ),
            ("- **Node Type:** CLIPTextEncode", None),
            ("- **Node Type:** SaveImage", None),
        ] {
            assert_eq!(from_context(&lines(line), oom, &none), want, "{line}");
        }
    }

    #[test]
    fn a_serving_engine_is_named_by_its_logs_or_its_workers_prefix() {
        use crate::oom::ServingEngine;
        let none: Vec<String> = Vec::new();
        let oom = "torch.OutOfMemoryError: CUDA out of memory.";
        let line = format!(
            "(VllmWorker rank=1 pid=2978) ERROR 03-19 07:27:53 [multiproc_executor.py:375] {oom}"
        );
        assert_eq!(serving_engine(&none, &line, oom), Some(ServingEngine::Vllm));
        let before = lines("[2025-01-02 10:00:00] INFO sglang server starting");
        assert_eq!(
            serving_engine(&before, oom, oom),
            Some(ServingEngine::Sglang)
        );
        let titled = lines("[Bug]: vLLM 0.11.1 runs into OOM error when loading lora adaptors.");
        assert_eq!(serving_engine(&titled, oom, oom), Some(ServingEngine::Vllm));
        assert_eq!(serving_engine(&none, oom, oom), None);
    }

    #[test]
    fn model_code_is_the_forward_pass_unless_a_frame_says_more() {
        // Only the innermost frames pasted: a model file's helper.
        let tb = lines("  File \"/env/site-packages/diffusers/models/cross_attention.py\", line 253, in get_attention_scores\n    attention_probs = attention_scores.softmax(dim=-1)");
        assert_eq!(from_traceback(&tb), Some(Phase::Forward));
        let tb = lines("  File \"/env/site-packages/transformers/models/llama/modeling_llama.py\", line 90, in rotate_half\n    return torch.cat((-x2, x1), dim=-1)");
        assert_eq!(from_traceback(&tb), Some(Phase::Forward));
        let tb = lines("  File \"/env/torch/nn/functional.py\", line 1856, in softmax\n    ret = input.softmax(dim)");
        assert_eq!(from_traceback(&tb), Some(Phase::Forward));
        // The same code when the paste lost the frame's path.
        let tb = lines("line 3479, in cross_entropy\n    return torch._C._nn.cross_entropy_loss(");
        assert_eq!(from_traceback(&tb), Some(Phase::Forward));
        let tb = lines("  File \"run.py\", line 12, in compute_mlm_loss\n    l = crit(logits, y)");
        assert_eq!(from_traceback(&tb), Some(Phase::Forward));
        // transformers' loading code is not a model file.
        let tb = lines("  File \"/env/transformers/modeling_utils.py\", line 3, in _load_state_dict_into_model\n    module._load_from_state_dict(*args)");
        assert_eq!(from_traceback(&tb), Some(Phase::ModelLoad));
        // A frame that names another phase wins over the model's code.
        let tb = lines("Traceback (most recent call last):\n  File \"train.py\", line 9, in evaluate\n    out = model(x)\n  File \"/env/torch/nn/functional.py\", line 1856, in softmax");
        assert_eq!(from_traceback(&tb), Some(Phase::Evaluation));
    }

    #[test]
    fn frames_without_a_header_still_count() {
        // A paste that starts mid-traceback, behind a log prefix and a backtick.
        let tb = lines("`ERROR:  File \"/x/torch/optim/adam.py\", line 505, in _multi_tensor_adam\n    exp_avg_sq_sqrt = torch._foreach_sqrt(device_exp_avg_sqs)");
        assert_eq!(from_traceback(&tb), Some(Phase::OptimizerStep));
        // A paste that lost its indentation: each code line sits flush
        // left under its frame.
        let tb = lines("File \"/x/torch/utils/checkpoint.py\", line 321, in backward\ntorch.autograd.backward(outputs_with_grad, args_with_grad)\nFile \"/x/torch/autograd/graph.py\", line 825, in _engine_run_backward\nreturn Variable._execution_engine.run_backward(");
        assert_eq!(from_traceback(&tb), Some(Phase::Backward));
        // Without a frame line above it, a flush-left line is prose.
        let tb = lines("File \"/x/torch/utils/checkpoint.py\", line 321, in backward\nloss.backward() is called here\nand then it fails:");
        assert_eq!(from_traceback(&tb), None);
    }

    #[test]
    fn a_backtrace_after_the_message_counts() {
        let after = lines("   0: candle_core::error::Error::bt\n   5: candle_core::safetensors::MmapedSafetensors::load\n  12: candle_transformers::models::falcon::Falcon::load");
        assert_eq!(from_following(&after, false), Some(Phase::ModelLoad));
        assert_eq!(
            from_following(
                &lines(
                    "x\ny\nz\nTraceback (most recent call last):\n  File \"a.py\", line 1, in forward"
                ),
                false
            ),
            None
        );
    }

    #[test]
    fn no_traceback_no_phase() {
        assert_eq!(
            from_traceback(&lines("epoch 1 loss 0.3\nepoch 2 loss 0.2")),
            None
        );
    }

    #[test]
    fn framework_loops_name_their_phase() {
        let phase = |frames: &str| from_traceback(&lines(frames));
        // Keras' prediction loop, Lightning's sanity check: evaluation.
        assert_eq!(
            phase("Traceback (most recent call last):\n  File \"/k/engine/training_arrays.py\", line 294, in predict_loop\n    batch_outs = f(ins_batch)"),
            Some(Phase::Evaluation)
        );
        // A diffusers pipeline's `__call__`: generation.
        assert_eq!(
            phase("Traceback (most recent call last):\n  File \"/d/pipelines/stable_diffusion/pipeline_stable_diffusion.py\", line 9, in __call__\n    noise_pred = self.unet(x)"),
            Some(Phase::Generation)
        );
        // ZeRO-3's pre-backward hook gathering parameters: backward.
        assert_eq!(
            phase("Traceback (most recent call last):\n  File \"/ds/zero/parameter_offload.py\", line 400, in _run_before_backward_function\n    self.pre_sub_module_backward_function(module)\n  File \"/ds/zero/partitioned_param_coordinator.py\", line 284, in fetch_sub_module"),
            Some(Phase::Backward)
        );
        // The same gather before a module's forward: forward.
        assert_eq!(
            phase("Traceback (most recent call last):\n  File \"/ds/zero/parameter_offload.py\", line 288, in _pre_forward_module_hook\n    self.pre_sub_module_forward_function(module)"),
            Some(Phase::Forward)
        );
        // XLA compiling a jitted function: start-up.
        assert_eq!(
            phase("Traceback (most recent call last):\n  File \"/jax/_src/compiler.py\", line 238, in backend_compile\n    return backend.compile(built_c)"),
            Some(Phase::Startup)
        );
        // pandas building a frame: data loading.
        assert_eq!(
            phase("  File \"/x/pandas/core/internals.py\", line 4107, in _stack_arrays\n    stacked = np.empty(shape, dtype=dtype)\n"),
            Some(Phase::DataLoading)
        );
        // A loop head drawing the next batch from a loader: data loading.
        for head in [
            "    for i, (v, b, q, a) in enumerate(train_loader):",
            "    for batch in tqdm(self.val_dataloader, desc=\"eval\"):",
            "    for x, y in loader:",
        ] {
            assert_eq!(
                phase(&format!(
                    "  File \"/w/train.py\", line 88, in train\n{head}\n"
                )),
                Some(Phase::DataLoading),
                "{head}"
            );
        }
        // A loop over something else is no loader.
        assert_ne!(
            phase("  File \"/w/train.py\", line 88, in train\n    for layer in self.layers:\n"),
            Some(Phase::DataLoading)
        );
    }

    #[test]
    fn quoted_and_boxed_frames_count() {
        let tb = lines(">   File \"/t/nn/modules/module.py\", line 223, in _apply\n>     param_applied = fn(param)");
        assert_eq!(from_traceback(&tb), Some(Phase::ModelLoad));
        let tb = lines("│ /x/offload.py:105 in weighs_to_device │\n│ > 105 │ module.weight.data = module.weight.data.to(device) │\n└──────────┘");
        assert_eq!(from_traceback(&tb), Some(Phase::ModelLoad));
    }

    #[test]
    fn start_up_logs_and_commands() {
        let none: Vec<String> = Vec::new();
        let phase = |before: &str| {
            from_context(
                &lines(before),
                "RuntimeError: CUDA error: out of memory",
                &none,
            )
        };
        assert_eq!(
            phase("INFO model_runner.py:1442] Capturing cudagraphs for decoding."),
            Some(Phase::Startup)
        );
        assert_eq!(
            phase("[LightGBM] [Info] Compiling OpenCL Kernel with 64 bins..."),
            Some(Phase::Startup)
        );
        assert_eq!(phase("user@host:~> python3 train.py"), Some(Phase::Startup));
        assert_eq!(
            phase("I get this error when I start the vllm server:"),
            Some(Phase::Startup)
        );
        // A command followed by output first says nothing of the phase.
        assert_eq!(phase("$ python3 train.py\nepoch 1 loss 0.3"), None);
    }

    #[test]
    fn an_evaluation_pass_header_names_evaluation() {
        let none: Vec<String> = Vec::new();
        let phase = |before: &str| {
            from_context(
                &lines(before),
                "torch.cuda.OutOfMemoryError: CUDA out of memory.",
                &none,
            )
        };
        // transformers' Trainer, for evaluate() and predict().
        assert_eq!(
            phase("***** Running Evaluation *****\n  Num examples = 872\n  Batch size = 8"),
            Some(Phase::Evaluation)
        );
        assert_eq!(
            phase("***** Running Prediction *****\n  Num examples = 11334"),
            Some(Phase::Evaluation)
        );
        // TensorFlow NMT's external evaluation.
        assert_eq!(
            phase("# External evaluation, global step 1000\n  decoding to output /tmp/out"),
            Some(Phase::Evaluation)
        );
        // A MetricLogger whose header is Evaluation.
        assert_eq!(
            phase("Evaluation  [2060/5000]  eta: 0:02:28    time: 0.0498  data: 0.0003  max mem: 17239"),
            Some(Phase::Evaluation)
        );
        // TensorFlow's Estimator, through Python's logging.
        assert_eq!(
            phase("INFO:tensorflow:Starting evaluation at 2017-07-28-18:09:20\nINFO:tensorflow:Evaluation [3/10]"),
            Some(Phase::Evaluation)
        );
        // detectron2's evaluation loop, and a fork's logger.
        for log in [
            "[06/18 17:46:24 fastreid.evaluation.evaluator]: Inference done 1573/2165. 0.1668 s / batch. ETA=0:01:42",
            "[d2.evaluation.evaluator]: Start inference on 5000 batches",
        ] {
            assert_eq!(phase(log), Some(Phase::Evaluation), "{log}");
        }
        // Training banners are not evaluation.
        assert_eq!(
            phase("***** Running training *****\n  Num examples = 872"),
            None
        );
        assert_eq!(
            phase("Epoch: [0]  [ 20/500]  eta: 0:02:28  loss: 2.1"),
            None
        );
    }

    #[test]
    fn a_graph_node_under_the_error_names_its_phase() {
        let node = |l: &str| from_graph_node(&lines(l));
        assert_eq!(
            node("     [[Node: InceptionV1/Conv2d_1a_7x7/BatchNorm/moments/SquaredDifference = SquaredDifference[T=DT_FLOAT]]]"),
            Some(Phase::Forward)
        );
        assert_eq!(
            node(
                "\t [[Node: yoloconvolution2d_21_b/Assign = Assign[T=DT_FLOAT, use_locking=true]]]"
            ),
            Some(Phase::ModelLoad)
        );
        assert_eq!(
            node("\t [[{{node gradients_1/res3a_branch2a/Conv2D_grad/Conv2DBackpropInput}}]]"),
            Some(Phase::Backward)
        );
        assert_eq!(
            node("\t [[Node: training/Adam/Variable_12/Assign = Assign[T=DT_FLOAT]]]"),
            Some(Phase::OptimizerStep)
        );
        // An optimizer slot's initializer runs when the variables are made.
        assert_eq!(
            node("\t [[Node: embeddings/Adam/Initializer/zeros = Const[dtype=DT_FLOAT]()]]"),
            Some(Phase::ModelLoad)
        );
        // So does the constant a variable starts from.
        assert_eq!(
            node("\t [[Node: Variable_10/initial_value = Const[dtype=DT_FLOAT]()]]"),
            Some(Phase::ModelLoad)
        );
        // GPT-2's sampling loop generates; a decoder's loop may train.
        assert_eq!(
            node("\t [[{{node sample_sequence/while/concat}}]]"),
            Some(Phase::Generation)
        );
        assert_eq!(
            node("\t [[{{node decoder/while/concat}}]]"),
            Some(Phase::Forward)
        );
        // A bare op name says nothing; nor does a line that is not a node.
        assert_eq!(node("\t [[Node: Conv2D_1 = Conv2D[T=DT_FLOAT]]]"), None);
        assert_eq!(
            node("Hint: If you want to see a list of allocated tensors"),
            None
        );
    }

    #[test]
    fn a_phrase_on_the_error_line_ties_to_it() {
        let none: Vec<String> = Vec::new();
        let text = "I encountered `RuntimeError: CUDA out of memory. Tried to allocate 1 GiB (GPU 0; 2 GiB total capacity)` at eval stage.";
        assert_eq!(from_context(&none, text, &none), Some(Phase::Evaluation));
        // "loading the dataset" is data, not weights.
        assert_eq!(
            from_context(&none, "MemoryError while loading the dataset", &none),
            Some(Phase::DataLoading)
        );
        assert_eq!(
            from_context(
                &none,
                "模型训练结束后，进行测试时候报了cuda out of memory",
                &none
            ),
            Some(Phase::Evaluation)
        );
    }

    #[test]
    fn only_the_last_traceback_counts() {
        let tb = lines("Traceback (most recent call last):\n  File \"a.py\", line 1, in evaluate\nValueError: x\nTraceback (most recent call last):\n  File \"b.py\", line 2, in forward");
        assert_eq!(from_traceback(&tb), Some(Phase::Forward));
    }
}
