//! What every family parser shares: the parsed result, size capture helpers,
//! the trigger words the scanner looks for, and the dispatch that tries each
//! family in turn on one logical line.

use super::{Device, DeviceKind, EventFacts, Framework, MemoryFigures, Phase};
use crate::size::log_figure_to_bytes;
use regex::{Captures, Regex};
use std::sync::LazyLock;

/// A size as frameworks print it: number, optional space, unit.
pub(crate) const SIZE: &str = r"(\d+(?:\.\d+)?)\s*(bytes|[KMGTPE]iB|[KMGTPE]B|[KMGTPEkmg])";

/// Literal substrings, one of which every OOM message family contains. The
/// scanner looks only for these, so a log without any of them costs one pass
/// of a multi-pattern search. Keep each specific: a trigger that fires on
/// ordinary log lines slows the scan, though the parsers still reject them.
/// The search is case-sensitive (aho-corasick's packed SIMD searcher is off
/// for case-insensitive searches), so a wording's capitalized forms are
/// listed, or the trigger starts after its first letter. Keep them at most
/// 64, the packed searcher's limit (past 32 it uses its wider variant, which
/// costs about a third more instructions: callgrind on a 16 MiB training
/// log, 45 M against 60 M).
pub(crate) const TRIGGERS: &[&str] = &[
    // The common wordings and codes (generic.rs reads any of them).
    "out of memory",
    "Out of memory",
    "Out Of Memory",
    "OUT OF MEMORY",
    "out of Memory",
    "out of the memory",
    "OUT_OF_MEMORY",
    "out_of_memory",
    "OUT_OF_DEVICE_MEMORY",
    "OUT_OF_HOST_MEMORY",
    "OUT_OF_RESOURCES",
    "OutOfMemory",
    "OOM when allocating",
    "RESOURCE_EXHAUSTED",
    "esource exhausted",
    // "Failed to allocate", "failed to alloc ", "Failed to CUDA calloc" is below.
    "ailed to alloc",
    "nable to allocate",
    "annot allocate",
    "an't allocate",
    "ould not allocate",
    "ould not be allocated",
    "ot enough memory",
    "nsufficient memory",
    "nsufficient Memory",
    "llocation failed",
    "ALLOCATION_FAILURE",
    "ALLOC_FAILED",
    "bad_alloc",
    "MemoryError",
    "ErrorMemoryAllocation",
    "内存不足",
    "ENOMEM",
    "posix_memalign",
    "kB, failcnt",
    // Processes killed for memory: the kernel, a shell, a launcher.
    "Killed",
    "killed",
    "已杀死",
    "oom-kill",
    "Out of memory: Kill",
    "exitcode: -9",
    "SIGKILL",
    // CUDA libraries.
    "STATUS_NOT_INITIALIZED",
    "CUDNN_STATUS_INTERNAL_ERROR",
    "cudnn handle",
    "cublas handle",
    "valid cuDNN algorithm",
    "Failed to CUDA calloc",
    // Frameworks' own checks and wordings.
    "Tried to allocate",
    "would exceed allowed memory",
    "available memory for the cache blocks",
    "KV cache",
    "on startup is less than desired",
    "hipError_t(1002)",
    "Attempting to allocate",
    // Triton's shared-memory OutOfResources (not device memory, but read as
    // an OOM by users; the diagnosis says so).
    "out of resource: shared memory",
    // accelerate's find_executable_batch_size after halving to zero.
    "executable batch size found",
];

/// Whether the part is the failure itself or a line that announces it (a
/// warning printed just before the exception, an allocation log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PartKind {
    Primary,
    Preliminary,
}

/// One family parser's reading of one logical line.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub framework: Framework,
    pub device: Device,
    pub message: String,
    pub memory: MemoryFigures,
    pub phase_hint: Option<Phase>,
    pub facts: EventFacts,
    pub kind: PartKind,
    /// The request is an exact byte count, not a rounded figure.
    pub exact_request: bool,
    /// Read by the generic layer, no family parser claimed it.
    pub generic: bool,
}

impl Parsed {
    pub(crate) fn new(framework: Framework, kind: DeviceKind, message: String) -> Parsed {
        Parsed {
            framework,
            device: Device { kind, index: None },
            message,
            memory: MemoryFigures::default(),
            phase_hint: None,
            facts: EventFacts::default(),
            kind: PartKind::Primary,
            exact_request: false,
            generic: false,
        }
    }
}

/// Compiles a pattern known at build time; `{SIZE}` expands to [`SIZE`].
pub(crate) fn re(pattern: &str) -> Regex {
    Regex::new(&pattern.replace("{SIZE}", SIZE)).expect("built-in pattern compiles")
}

/// The size in capture groups `n` (value) and `n + 1` (unit).
pub(crate) fn size_at(caps: &Captures<'_>, n: usize) -> Option<u64> {
    log_figure_to_bytes(caps.get(n)?.as_str(), caps.get(n + 1)?.as_str())
}

/// The first size `re` captures in `text` (groups 1 and 2).
pub(crate) fn find_size(re: &Regex, text: &str) -> Option<u64> {
    re.captures(text).and_then(|c| size_at(&c, 1))
}

/// A whole number captured by group 1.
pub(crate) fn find_u64(re: &Regex, text: &str) -> Option<u64> {
    re.captures(text)?.get(1)?.as_str().parse().ok()
}

/// The message as a user would quote it: from the exception class that
/// announces the key phrase (`torch.OutOfMemoryError: `), or from the start
/// of the line, to its end. Where the key phrase occurs twice (the `raise`
/// line of a traceback printed on the same line as the error), the last one
/// is the error.
pub(crate) fn message_from(text: &str, key: &Regex) -> String {
    static MARKER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?:[A-Za-z_][\w.]*(?:Error|Exception)|\[ONNXRuntimeError\])\s*:\s")
            .expect("pattern compiles")
    });
    let Some(key_at) = key.find_iter(text).last().map(|m| m.start()) else {
        return text.trim().to_string();
    };
    let start = MARKER
        .find_iter(&text[..key_at])
        .last()
        .map(|m| m.start())
        .unwrap_or(0);
    let start = if start == 0 { 0 } else { start };
    let msg = text[start..].trim();
    // Bound what one message can hold: a 100 MB line stays a short message.
    truncate_chars(msg, 4096)
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Words one of which every message triton.rs reads holds.
const TRITON_WORDS: &[&str] = &["resource"];
/// Words one of which every message cuda_libs.rs `parse` reads holds.
const CUDA_LIB_WORDS: &[&str] = &[
    "CUBLAS",
    "CUDNN",
    "cuDNN",
    "cudnn",
    "Cuda failure",
    "calloc",
];
/// Words one of which every message inference_engines.rs reads holds.
const ENGINE_WORDS: &[&str] = &[
    "buffer",
    "failure",
    "DriverError",
    "cudaMalloc",
    "cache blocks",
    "seq len",
    "KV cache",
    "startup",
    "mem-fraction",
];
/// Words one of which every message tensorflow_jax.rs reads holds.
const TF_JAX_WORDS: &[&str] = &[
    "OOM when",
    "trying to allocate",
    "failed to alloc",
    "RESOURCE_EXHAUSTED",
    "esource exhausted",
    "allocate request",
    "Out of memory allocating",
];

/// Tries every family on one logical line, most specific first (a cuBLAS
/// failure also says "CUDA error", an ONNX Runtime one "out of memory").
/// Triton's shared-memory error comes first: torch.compile wraps it in
/// PyTorch's exception classes, and it must not be read as a device OOM.
///
/// Each family is tried only when the text holds one of its words (a plain
/// substring search), so a log dense with one family's lines runs that
/// family's patterns and not every family's.
pub(crate) fn parse_logical(text: &str) -> Option<Parsed> {
    let mentions = |words: &[&str]| words.iter().any(|w| text.contains(w));
    None.or_else(|| mentions(TRITON_WORDS).then(|| super::triton::parse(text))?)
        .or_else(|| mentions(CUDA_LIB_WORDS).then(|| super::cuda_libs::parse(text))?)
        .or_else(|| mentions(ENGINE_WORDS).then(|| super::inference_engines::parse(text))?)
        .or_else(|| mentions(TF_JAX_WORDS).then(|| super::tensorflow_jax::parse(text))?)
        .or_else(|| super::pytorch::parse(text))
        .or_else(|| super::cuda_libs::parse_generic(text))
        .or_else(|| {
            super::generic::parse(text).map(|mut p| {
                p.generic = true;
                p
            })
        })
}

/// True when the text says the condition is not fatal (TensorFlow's BFC
/// allocator warns "The caller indicates that this is not a failure").
pub(crate) fn says_non_fatal(text: &str) -> bool {
    const WORDS: &[&str] = &[
        "this is not a failure",
        "not a fatal",
        "non-fatal",
        "nonfatal",
        "will retry",
        "retrying with",
        "falling back",
        "skipping batch",
        "skipping this batch",
    ];
    let lower = text.to_ascii_lowercase();
    WORDS.iter().any(|w| lower.contains(w))
}

/// The device index in `GPU 3`, `device 3`, `cuda:3`, `CUDA3`, `GPU=3`.
pub(crate) fn device_index(text: &str) -> Option<u32> {
    static IDX: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?:\bGPU\s*=?\s*|\bdevice\s+(?:ordinal\s+)?|cuda:|\bCUDA|device:GPU:|GPU_)(\d{1,3})\b")
            .expect("pattern compiles")
    });
    IDX.captures(text)?.get(1)?.as_str().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::TRIGGERS;

    #[test]
    fn the_triggers_fit_the_fast_packed_searcher() {
        // See TRIGGERS: past 64 the packed searcher gives way to a slower one.
        assert!(TRIGGERS.len() <= 64, "{} triggers", TRIGGERS.len());
    }
}
