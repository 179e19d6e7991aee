//! Triton's `OutOfResources` for shared memory: a compiled kernel needs more
//! on-chip shared memory per thread block than the GPU allows. Users read it
//! as a GPU OOM; it is not one: device memory did not run out, the kernel's
//! configuration (block sizes, `num_stages`) does not fit this GPU.
//!
//! The format is Triton's own (triton/runtime/errors.py, `OutOfResources.__str__`,
//! raised from triton/compiler/compiler.py as
//! `OutOfResources(self.metadata.shared, max_shared, "shared memory")`):
//! `out of resource: shared memory, Required: N, Hardware limit: M. Reducing
//! block sizes or `num_stages` may help.` It appears with its class
//! (`triton.runtime.errors.OutOfResources: `), wrapped by torch.compile
//! (`torch._inductor.exc.InductorError: OutOfResources: ...`,
//! `BackendCompilerFailed: backend='inductor' raised:` then the message), or
//! bare. Both figures are bytes of shared memory, so they go into
//! [`SharedMemoryLimit`](crate::oom::SharedMemoryLimit), never into the device
//! memory figures.
//!
//! Inductor's autotuner logs the same words for each candidate kernel it
//! skips (`... [0/0] out of resource: ...`, `Exception out of resource: ...
//! for benchmark choice ...`, `Runtime error during autotuning: ... Ignoring
//! this choice.`): those are not failures and are not events.

use crate::oom::patterns::{device_index, message_from, re, Parsed};
use crate::oom::{DeviceKind, EventKind, Framework, SharedMemoryLimit};
use regex::Regex;
use std::sync::LazyLock;

/// The phrase every message this family reads contains.
pub(super) const TRIGGERS: &[&str] = &["out of resource: shared memory"];
/// Words one of which every message `parse` reads holds.
pub(super) const WORDS: &[&str] = &["resource"];
/// Messages of this family as Triton and torch.compile print them.
#[cfg(test)]
pub(super) const EXAMPLES: &[&str] = &[
    "triton.runtime.errors.OutOfResources: out of resource: shared memory, Required: 147456, Hardware limit: 101376. Reducing block sizes or `num_stages` may help.",
    "torch._inductor.exc.InductorError: OutOfResources: out of resource: shared memory, Required: 260224, Hardware limit: 166912. Reducing block sizes or `num_stages` may help.",
];

struct Patterns {
    key: Regex,
    figures: Regex,
    autotune_tag: Regex,
    cuda_device: Regex,
}

static P: LazyLock<Patterns> = LazyLock::new(|| Patterns {
    // The resource by its name, or by the Inductor kernel that ran out of
    // it (`out of resource: triton_per_fused_add_7` then `Required: 327768
    // Hardware limit:232448`, as torch.compile's Triton build words it;
    // Inductor names its kernels `triton_poi_`, `triton_per_`, `triton_red_`).
    // Other resources (`threads`) are no memory.
    key: re(concat!(
        r"out\s*of\s*resource\s*:\s*shared\s*memory|",
        r"out\s*of\s*resource\s*:\s*triton_\w+[\s\S]{0,400}?Required\s*:\s*\d+\s*,?\s*Hardware\s*limit"
    )),
    figures: re(
        r"out\s*of\s*resource\s*:[\s\S]{0,400}?Required\s*:\s*(\d+)\s*,?\s*Hardware\s*limit(?:ation)?\s*:\s*(\d+)",
    ),
    // A torch logging record's compile id (`[0/0]`, `[2/1_1]`) before the
    // words: Inductor's select_algorithm.py logging a skipped candidate.
    autotune_tag: re(r"^\[\d+/\d+(?:_\d+)?\]\s*(?:Exception\s*)?out\s*of\s*resource"),
    cuda_device: re(r"\bcuda:\d+|\bCUDA\s*device"),
});

/// Parses Triton's shared-memory `OutOfResources`; `None` when the text is
/// not one, or is the autotuner skipping a candidate.
pub(crate) fn parse(text: &str) -> Option<Parsed> {
    // Inductor's autotuner tries configurations and drops those that do
    // not fit (`select_algorithm`, `Ignoring this choice`): a skip.
    if text.contains("select_algorithm")
        || text.contains("Ignoring this choice")
        || text.contains("No valid triton configs")
    {
        return None;
    }
    let p = &*P;
    if !p.key.is_match(text) || is_autotune_log(text) {
        return None;
    }
    let mut parsed = Parsed::new(
        Framework::Other,
        DeviceKind::Unknown,
        message_from(text, &p.key),
    );
    let figures = p.figures.captures(text);
    let number = |i: usize| figures.as_ref()?.get(i)?.as_str().parse::<u64>().ok();
    parsed.facts.kind = EventKind::SharedMemory(SharedMemoryLimit {
        required_bytes: number(1),
        limit_bytes: number(2),
        via_inductor: text.contains("_inductor") || text.contains("inductor'"),
    });
    if p.cuda_device.is_match(text) {
        parsed.device.kind = DeviceKind::Cuda;
        parsed.device.index = device_index(text);
    }
    Some(parsed)
}

fn is_autotune_log(text: &str) -> bool {
    const SKIPPED: &[&str] = &[
        "benchmark choice",
        "Ignoring this choice",
        "during autotuning",
    ];
    P.autotune_tag.is_match(text) || SKIPPED.iter().any(|w| text.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRITON: &str = "triton.runtime.errors.OutOfResources: out of resource: shared memory, Required: 147456, Hardware limit: 101376. Reducing block sizes or `num_stages` may help.";

    #[test]
    fn reads_both_figures_as_shared_memory_not_device_memory() {
        let parsed = parse(TRITON).expect("an event");
        assert_eq!(parsed.framework, Framework::Other);
        assert_eq!(parsed.device.kind, DeviceKind::Unknown);
        assert!(parsed.memory.is_empty());
        let shm = parsed
            .facts
            .shared_memory()
            .copied()
            .expect("shared memory facts");
        assert_eq!(shm.required_bytes, Some(147_456));
        assert_eq!(shm.limit_bytes, Some(101_376));
        assert!(!shm.via_inductor);
        assert!(parsed
            .message
            .starts_with("triton.runtime.errors.OutOfResources: out of"));
    }

    #[test]
    fn inductor_wrapper_and_bare_message() {
        let wrapped = parse("torch._inductor.exc.InductorError: OutOfResources: out of resource: shared memory, Required: 260224, Hardware limit: 166912. Reducing block sizes or `num_stages` may help.").expect("an event");
        let shm = wrapped.facts.shared_memory().copied().expect("facts");
        assert_eq!(
            (shm.required_bytes, shm.limit_bytes),
            (Some(260_224), Some(166_912))
        );
        assert!(shm.via_inductor);
        assert!(wrapped
            .message
            .starts_with("torch._inductor.exc.InductorError: "));
        // The kernel named for the resource, its figures on the next line.
        let kernel = parse("OutOfMemoryError: out of resource: triton_per_fused_add_div_7\nRequired: 327768 Hardware limit:232448 Reducing block sizes or `num_stages` may help.").expect("an event");
        let shm = kernel.facts.shared_memory().copied().expect("facts");
        assert_eq!(
            (shm.required_bytes, shm.limit_bytes),
            (Some(327_768), Some(232_448))
        );
        assert!(parse("RuntimeError: out of resource: quota exceeded").is_none());
        let bare = parse("out of resource: shared memory, Required: 98304, Hardware limit: 65536.")
            .expect("an event");
        let spelled = parse("triton.runtime.errors.OutOfResources: out of resource: shared memory, Required: 163842, Hardware limitation: 101376. reducing the block size or `num_stages` may help").expect("an event");
        assert_eq!(
            spelled.facts.shared_memory().and_then(|s| s.limit_bytes),
            Some(101_376)
        );
        assert_eq!(
            bare.facts.shared_memory().and_then(|s| s.limit_bytes),
            Some(65_536)
        );
    }

    #[test]
    fn autotuner_skipping_a_candidate_is_not_an_event() {
        assert!(parse("[2/0] out of resource: shared memory, Required: 131072, Hardware limit: 101376. Reducing block sizes or `num_stages` may help.").is_none());
        assert!(parse("[0/0] Exception out of resource: shared memory, Required: 163840, Hardware limit: 101376. Reducing block sizes or `num_stages` may help. for benchmark choice TritonTemplateCaller(/tmp/x.py, BLOCK_K=256)").is_none());
        assert!(parse("out of resource: threads, Required: 2048, Hardware limit: 1024.").is_none());
    }
}
