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

/// Opt-in shared memory per thread block, in bytes, by the GPU class that
/// has it (NVIDIA CUDA C Programming Guide, "Technical Specifications per
/// Compute Capability": maximum shared memory per block, opt-in), which is
/// the `max_shared_mem` Triton compares a kernel's need with. AMD Instinct
/// GPUs (CDNA 1-3) have 64 KiB of LDS per compute unit (AMD CDNA3 ISA
/// reference guide), which Triton reports as the same 65536.
const SHARED_MEMORY_LIMITS: &[(u64, &str)] = &[
    (
        101_376,
        "compute capability 8.6/8.9/12.0: a consumer or workstation GPU (RTX 30xx/40xx/50xx, A10, L4, L40)",
    ),
    (166_912, "compute capability 8.0 (A100, A800)"),
    (232_448, "compute capability 9.0 (H100, H200)"),
    (
        65_536,
        "compute capability 7.5 (T4, RTX 20xx), or an AMD Instinct GPU's 64 KiB LDS",
    ),
    (98_304, "compute capability 7.0 (V100)"),
];

/// The limit AMD's GPUs share with an NVIDIA class: it does not tell the vendor.
const SHARED_BY_VENDORS: u64 = 65_536;

/// The GPU class a shared-memory limit points at, when it is a known one.
pub(crate) fn shared_memory_gpu_class(limit: u64) -> Option<&'static str> {
    SHARED_MEMORY_LIMITS
        .iter()
        .find(|(bytes, _)| *bytes == limit)
        .map(|(_, class)| *class)
}

/// True when only NVIDIA GPUs report this limit: the kernel ran on CUDA.
fn nvidia_only(limit: u64) -> bool {
    limit != SHARED_BY_VENDORS && shared_memory_gpu_class(limit).is_some()
}

struct Patterns {
    key: Regex,
    figures: Regex,
    autotune_tag: Regex,
    cuda_device: Regex,
}

static P: LazyLock<Patterns> = LazyLock::new(|| Patterns {
    key: re(r"out\s*of\s*resource\s*:\s*shared\s*memory"),
    figures: re(
        r"out\s*of\s*resource\s*:\s*shared\s*memory\s*,\s*Required\s*:\s*(\d+)\s*,\s*Hardware\s*limit(?:ation)?\s*:\s*(\d+)",
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
    } else if number(2).is_some_and(nvidia_only) {
        parsed.device.kind = DeviceKind::Cuda;
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
        assert_eq!(parsed.device.kind, DeviceKind::Cuda);
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
    fn gpu_classes_by_their_limit() {
        assert!(shared_memory_gpu_class(166_912).unwrap().contains("A100"));
        assert_eq!(shared_memory_gpu_class(12345), None);
        // Only NVIDIA GPUs report 99 KiB; 64 KiB is also AMD's LDS.
        let on = |limit: u64| {
            let text = format!(
                "out of resource: shared memory, Required: 262144, Hardware limit: {limit}."
            );
            parse(&text).expect("an event").device.kind
        };
        assert_eq!(on(101_376), DeviceKind::Cuda);
        assert_eq!(on(232_448), DeviceKind::Cuda);
        assert_eq!(on(65_536), DeviceKind::Unknown);
        assert_eq!(on(12_345), DeviceKind::Unknown);
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
