//! The phase of work an OOM happened in, read from the Python traceback (or
//! stack of log lines) printed before the error.
//!
//! Frames are read innermost last, as Python prints them. A phase that wraps
//! others wins over the forward pass it calls: generation and evaluation run
//! forward passes, the backward pass re-runs them under activation
//! checkpointing, loading a model moves tensors. So the rules are tried in
//! order of that nesting, not of position.

use super::Phase;
use regex::Regex;
use std::sync::LazyLock;

/// (phase, pattern over one frame's text: file path, function and code line).
static RULES: LazyLock<Vec<(Phase, Regex)>> = LazyLock::new(|| {
    let rules: &[(Phase, &str)] = &[
        (
            Phase::ModelLoad,
            r"from_pretrained|load_state_dict|load_checkpoint|torch\.load\b|paddle\.load\b|_load_state_dict|safetensors|load_model|modeling_utils\.py|llama_model_load|load_tensors|in _apply\b|(?i:model\w*(?:\(\))?\.(?:cuda|to)\()|in __init__\b|::load\b|\.init\(|init_params",
        ),
        (
            Phase::DataLoading,
            r"(?i:dataloader)|_next_data|collate|pin_memory|data_collator|__getitem__|fetch\.py",
        ),
        (
            Phase::OptimizerStep,
            r"optimizer\.step|in step\b|torch/optim/|_multi_tensor_adam|_single_tensor_adam|_fused_adam|optimizer_step|bitsandbytes/optim|lr_scheduler",
        ),
        (
            Phase::Backward,
            r"\.backward\(|in backward\b|autograd/__init__\.py|_engine_run_backward|run_backward|accelerator\.backward|manual_backward|torch/_tensor\.py.*backward",
        ),
        (
            Phase::Startup,
            r"profile_run|determine_num_available_blocks|determine_available_memory|_initialize_kv_caches|init_device|initialize_cache|capture_model|in capture\w*\b|in warmup\b|in warm_up\b",
        ),
        (
            Phase::Generation,
            r"\.generate\(|in generate\b|in _?\w*_generate\b|generation/utils\.py|in _sample\b|in sample\b|greedy_search|beam_search|in _beam_search|in _greedy_search|sampler\.py|generate_until|\blogits\b.*(?:temperature|\.sort\(|top_[kp])|logits_sort",
        ),
        (
            Phase::Evaluation,
            r"evaluation_loop|prediction_step|in evaluate\b|\.evaluate\(|validation_step|in predict\b|\.predict\(|in validate\b|test_step|eval_step",
        ),
        (
            Phase::Forward,
            r"in forward\b|in _?\w+_forward\b|_call_impl|forward_call|in __call__\b|\.forward\(|training_step|compute_loss|outputs = model\(|model\(\*\*|_wrapped_call_impl|in call\b",
        ),
    ];
    rules
        .iter()
        .map(|(phase, p)| (*phase, Regex::new(p).expect("phase pattern compiles")))
        .collect()
});

/// The lines of the traceback that ends just before the error: from the last
/// `Traceback (most recent call last):` among `before`, else the run of frame
/// lines immediately above the error.
fn traceback_lines(before: &[String]) -> &[String] {
    if let Some(start) = before
        .iter()
        .rposition(|l| l.contains("Traceback (most recent call last)"))
    {
        return &before[start..];
    }
    // No header in the window: take the frames directly above the error.
    // A launcher's tag (`[rank0]:`, `(EngineCore pid=1) ERROR ... [x.py:1]`)
    // before a frame's indentation keeps it a frame.
    static TAGGED_INDENT: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^\S.*?[\]:|]\s{2,}\S").expect("pattern compiles"));
    let mut start = before.len();
    for (i, line) in before.iter().enumerate().rev() {
        let t = line.trim_start();
        if t.contains("File \"")
            || t.starts_with("at ")
            || line.starts_with(' ')
            || line.starts_with('\t')
            || t.starts_with('^')
            || t.starts_with('~')
            || TAGGED_INDENT.is_match(line)
        {
            start = i;
        } else {
            break;
        }
    }
    &before[start..]
}

fn is_traceback_start(line: &str) -> bool {
    let t = line.trim_start();
    t.contains("Traceback (most recent call last)")
        || t.starts_with("0: ")
        || t.starts_with("Stack backtrace")
}

/// True when a traceback starts within the first three of `after`.
pub(crate) fn starts_traceback(after: &[String]) -> bool {
    after.iter().take(3).any(|l| is_traceback_start(l))
}

/// The phase a traceback printed *after* the message shows: Python's when a
/// log line announced the error first, Rust's backtrace (`   0: crate::fn`)
/// after a candle error. Only a traceback that starts within three lines
/// counts.
pub(crate) fn from_following(after: &[String]) -> Option<Phase> {
    let start = after.iter().take(3).position(|l| is_traceback_start(l))?;
    let frames: Vec<String> = after[start..]
        .iter()
        .take_while(|l| !l.trim().is_empty() || l.is_empty())
        .take(80)
        .cloned()
        .collect();
    RULES
        .iter()
        .find(|(_, re)| frames.iter().any(|l| re.is_match(l)))
        .map(|(phase, _)| *phase)
}

/// True when the traceback's frames gather parameters (DeepSpeed ZeRO-3,
/// FSDP unsharding) or build weights (a module's `__init__`,
/// `reset_parameters`, `to_empty`): the memory goes to the model's states,
/// whatever the batch.
pub(crate) fn shows_model_states(before: &[String]) -> bool {
    static FRAMES: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"fetch_sub_module|_allgather_params|all_gather_coalesced|partition_parameters\.py|",
            r"GatheredParameters|in _unshard\b|_all_gather_flat_param|in unshard\b|",
            r"reset_parameters|in _init_weights\b|in init_weights\b|in to_empty\b|",
            r"in _materialize|zero_init|init_empty_weights"
        ))
        .expect("pattern compiles")
    });
    traceback_lines(before).iter().any(|l| FRAMES.is_match(l))
}

/// The serving engine whose frames or log prefixes surround the failure.
pub(crate) fn serving_engine(before: &[String], text: &str) -> Option<super::ServingEngine> {
    let recent = &before[before.len().saturating_sub(60)..];
    let names = |word: &str| text.contains(word) || recent.iter().any(|l| l.contains(word));
    if names("sglang") {
        Some(super::ServingEngine::Sglang)
    } else if names("vllm") || names("EngineCore") || names("RayWorkerWrapper") {
        Some(super::ServingEngine::Vllm)
    } else {
        None
    }
}

/// Words around an event without a traceback that name what the program
/// was doing: a loading progress bar, the call quoted in the report, the
/// engine build, a warm-up. Only strong markers count, in this order.
static CONTEXT_RULES: LazyLock<Vec<(Phase, Regex)>> = LazyLock::new(|| {
    let rules: &[(Phase, &str)] = &[
        (
            Phase::Startup,
            r"(?i:warm ?up|capture cuda graph|\bwarmup\b)",
        ),
        (
            Phase::ModelLoad,
            r"Loading checkpoint shards|from_pretrained\(|load_state_dict\(|(?i:failed to load|loading (?:the )?(?:model|weights|checkpoint)|build(?:ing)? (?:the )?engine)|buildEngine|InitDataEntryMemory|load_tensors|\.to\((?:device|'cuda'|\x22cuda\x22)\)",
        ),
        (
            Phase::Evaluation,
            r"(?i:evaluation step|during evaluation|in the evaluation|validation step)",
        ),
        (
            Phase::DataLoading,
            r"(?i:preprocess|DMatrix\(|read_csv|todense\(|toarray\(|DataLoader worker)",
        ),
    ];
    rules
        .iter()
        .map(|(phase, p)| (*phase, Regex::new(p).expect("context pattern compiles")))
        .collect()
});

/// The phase the words around an event name, when no traceback shows one:
/// the last 25 lines before it, the event's own text, and 5 lines after.
pub(crate) fn from_context(before: &[String], text: &str, after: &[String]) -> Option<Phase> {
    let near = before[before.len().saturating_sub(25)..]
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(text))
        .chain(after.iter().take(5).map(String::as_str));
    let lines: Vec<&str> = near.collect();
    CONTEXT_RULES
        .iter()
        .find(|(_, re)| lines.iter().any(|l| re.is_match(l)))
        .map(|(phase, _)| *phase)
}

/// The phase the traceback shows, `None` when no frame says.
pub(crate) fn from_traceback(before: &[String]) -> Option<Phase> {
    let frames = traceback_lines(before);
    if frames.is_empty() {
        return None;
    }
    RULES
        .iter()
        .find(|(_, re)| frames.iter().any(|l| re.is_match(l)))
        .map(|(phase, _)| *phase)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_string).collect()
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
    fn frames_without_a_header_still_count() {
        // A paste that starts mid-traceback, behind a log prefix and a backtick.
        let tb = lines("`ERROR:  File \"/x/torch/optim/adam.py\", line 505, in _multi_tensor_adam\n    exp_avg_sq_sqrt = torch._foreach_sqrt(device_exp_avg_sqs)");
        assert_eq!(from_traceback(&tb), Some(Phase::OptimizerStep));
    }

    #[test]
    fn a_backtrace_after_the_message_counts() {
        let after = lines("   0: candle_core::error::Error::bt\n   5: candle_core::safetensors::MmapedSafetensors::load\n  12: candle_transformers::models::falcon::Falcon::load");
        assert_eq!(from_following(&after), Some(Phase::ModelLoad));
        assert_eq!(
            from_following(&lines(
                "x\ny\nz\nTraceback (most recent call last):\n  File \"a.py\", line 1, in forward"
            )),
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
    fn only_the_last_traceback_counts() {
        let tb = lines("Traceback (most recent call last):\n  File \"a.py\", line 1, in evaluate\nValueError: x\nTraceback (most recent call last):\n  File \"b.py\", line 2, in forward");
        assert_eq!(from_traceback(&tb), Some(Phase::Forward));
    }
}
