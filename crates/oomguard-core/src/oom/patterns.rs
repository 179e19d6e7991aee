//! The toolbox every family parser uses: the parsed result of one logical
//! line, the size pattern and its capture helpers, the device index, the
//! message as a user would quote it. It knows no family: the families import
//! it, never the other way round.

use super::{Device, DeviceKind, EventFacts, Framework, MemoryFigures, Phase};
use crate::size::log_figure_to_bytes;
use aho_corasick::{AhoCorasick, MatchKind};
use regex::{Captures, Regex};
use std::sync::LazyLock;

/// A size as frameworks print it: number, optional space, unit. The number
/// starts a word: the digits after the exponent of `1e400 GiB`, or inside
/// `x86`, are no size.
pub(crate) const SIZE: &str = r"(?-u:\b)(\d+(?:\.\d+)?)\s*(bytes|[KMGTPE]iB|[KMGTPE]B|[KMGTPEkmg])";

/// Whether the part is the failure itself or a line that announces it (a
/// warning printed just before the exception, an allocation log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PartKind {
    Primary,
    Preliminary,
    /// A sentence that tells of the failure in words ("I got a CUDA OOM
    /// during eval"): it stands for the failure until the error itself
    /// appears, and folds into the error printed near it.
    Reported,
    /// A failure without a figure named on the text's first line, set apart
    /// from the text under it (an issue's title): it stands for the failure
    /// until a part that says more (figures, the software's own wording, an
    /// exception) appears, and takes in parts that say no more.
    Title,
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
    /// A file system ran out of space (`No space left on device`, ENOSPC):
    /// a failure of memory only where the lines around it name shared
    /// memory, whose tmpfs RAM backs; a full disk is no event.
    pub space_ran_out: bool,
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
            space_ran_out: false,
        }
    }
}

/// Where a message states Windows' commit limit (`ERROR_COMMITMENT_LIMIT`,
/// 1455: "The paging file is too small for this operation to complete"),
/// as Python's `OSError: [WinError 1455]` prints it in any system
/// language, a DLL loader's `Error code 1455`, Rust's `io::Error` (`...
/// (os error 1455)`, as tauri or a Rust server passes it on), a runtime's
/// `error 1455`, or the English system message alone: RAM plus the paging
/// file is used up. The parser places the event there; the diagnosis reads the
/// same words, so both follow this one reading.
pub(crate) fn windows_commit_limit_at(text: &str) -> Option<usize> {
    static COMMIT: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"\[WinError\s*1455\]|(?i:\berror\s*(?:code\s*)?:?\s*1455\b)|\(os error 1455\)|The paging file is too small for this operation to complete",
        )
    });
    COMMIT.find(text).map(|m| m.start())
}

/// Compiles a pattern known at build time; `{SIZE}` expands to [`SIZE`].
pub(crate) fn re(pattern: &str) -> Regex {
    Regex::new(&pattern.replace("{SIZE}", SIZE)).expect("built-in pattern compiles")
}

/// The size in capture groups `n` (value) and `n + 1` (unit).
pub(crate) fn size_at(caps: &Captures<'_>, n: usize) -> Option<u64> {
    log_figure_to_bytes(caps.get(n)?.as_str(), caps.get(n + 1)?.as_str())
}

/// The first size `re` captures in `text` (groups 1 and 2), for patterns
/// whose first number-and-unit is that size (no figure in the words before
/// it). Reads the size from the match itself: finding a match needs only the
/// regex's DFA, capture groups its much slower backtracker, which on a log
/// dense with OOM lines was a sixth of the whole run.
pub(crate) fn find_size(re: &Regex, text: &str) -> Option<u64> {
    re.find(text).and_then(|m| first_size_in(m.as_str()))
}

/// The first size in `s` spelled as [`SIZE`] spells it: digits with an
/// optional fraction, optional whitespace, then `bytes`, `KiB`..`EiB`,
/// `KB`..`EB` or one of `KMGTPEkmg`, tried in that order. As in [`SIZE`],
/// the number starts a word (`1e400 GiB` holds no size).
pub(crate) fn first_size_in(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') {
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
        let number = &s[start..i];
        let rest = s[i..].trim_start();
        if let Some(unit) = unit_prefix(rest) {
            return crate::size::log_figure_to_bytes(number, unit);
        }
    }
    None
}

/// The unit [`SIZE`] would read at the start of `s`.
fn unit_prefix(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    if s.starts_with("bytes") {
        return Some(&s[..5]);
    }
    let first = *b.first()?;
    if b"KMGTPE".contains(&first) {
        if b.get(1) == Some(&b'i') && b.get(2) == Some(&b'B') {
            return Some(&s[..3]);
        }
        if b.get(1) == Some(&b'B') {
            return Some(&s[..2]);
        }
    }
    b"KMGTPEkmg".contains(&first).then(|| &s[..1])
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
    // A char is at least a byte: a text of `max` bytes or fewer is whole.
    if s.len() <= max {
        return s.to_string();
    }
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
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
        // XLA's convolution autotuner when no candidate fits: a warning, the
        // default algorithm runs (gpu_conv_algorithm_picker.cc,
        // `LOG(WARNING) << "Failed to determine best cudnn convolution
        // algorithm: " << status << "\n\nConvolution performance may be
        // suboptimal."`; later `... for:\n<hlo>` with `As a result,
        // convolution performance may be suboptimal.`). The strict picker
        // raises `... algorithm for:` as an error instead.
        "performance may be suboptimal",
        "failed to determine best cudnn convolution algorithm: ",
        // XLA's and TensorFlow's redzone checker when it cannot get its
        // scratch buffer (redzone_allocator / gpu_conv_algorithm_picker:
        // "Failed to allocate memory for convolution redzone checking;
        // skipping this check. This is benign and only means that we won't
        // check cudnn for out-of-bounds reads and writes."): the autotuner
        // goes on without the check.
        "this is benign",
        "skipping this check",
        // TensorFlow's BFC allocator when an allocation that may fail
        // returns null to its caller (bfc_allocator.cc, `AllocateRaw`:
        // "... ran out of memory trying to allocate 2.39GiB with
        // freed_by_count=0.", then "The caller indicates that this is not a
        // failure" unless the caller retries). The caller that cannot go on
        // raises its own error (`OOM when allocating tensor`); the failing
        // path logs "(rounded to N)" and an allocation summary instead. An
        // issue's title often quotes the line's first sentence alone.
        "with freed_by_count=",
    ];
    // Triton Inference Server falls back to pinned host memory when its CUDA
    // pool is out (core's memory.cc), but backends that need the tensor on
    // the GPU then fail: that fallback does not make the failure benign.
    const TRITON_POOL_FALLBACK: &str =
        "cnmem_status_out_of_memory, falling back to pinned system memory";
    // One case-insensitive pass; leftmost-longest lets the Triton phrase
    // swallow the `falling back` inside it.
    static SEARCH: LazyLock<AhoCorasick> = LazyLock::new(|| {
        AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(WORDS.iter().chain(std::iter::once(&TRITON_POOL_FALLBACK)))
            .expect("phrases build")
    });
    SEARCH
        .find_iter(text)
        .any(|m| m.pattern().as_usize() < WORDS.len())
}

/// True when `hay` holds `needle` in any ASCII case, without a lowered copy
/// of `hay`.
pub(crate) fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    let needle = needle.as_bytes();
    needle.is_empty()
        || hay
            .as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The device index in `GPU 3`, `device 3`, `cuda:3`, `CUDA3`, `GPU=3`,
/// ggml-cuda's `current device: 3`.
pub(crate) fn device_index(text: &str) -> Option<u32> {
    static IDX: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?:\bGPU\s*[=#]?\s*|\bdevice\s+(?:ordinal\s+)?|\bcurrent\s+device:\s*|cuda:|\bCUDA|device:[GX]PU:|GPU_|\bcuda_gpu_id:\s*)(\d{1,3})(?-u:\b)")
            .expect("pattern compiles")
    });
    IDX.captures(text)?.get(1)?.as_str().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Reading the size from the match gives what the capture groups
        /// give, whatever surrounds it.
        #[test]
        fn find_size_agrees_with_the_capture_groups(
            before in "[ a-z0-9.;(]{0,12}",
            number in "[0-9]{1,5}(\\.[0-9]{1,3})?",
            space in "[ \t]{0,2}",
            unit in "(bytes|[KMGTPE]iB|[KMGTPE]B|[KMGTPEkmgx]|iB|B)",
            after in "[ a-z0-9.;)]{0,12}",
        ) {
            let text = format!("{before}Tried to allocate {number}{space}{unit} free;{after}");
            for pattern in [r"Tried\s*to\s*allocate\s*{SIZE}", r"{SIZE}\s*free\s*;"] {
                let re = re(pattern);
                let by_groups = re.captures(&text).and_then(|c| size_at(&c, 1));
                prop_assert_eq!(find_size(&re, &text), by_groups, "{} in {:?}", pattern, text);
            }
        }
    }

    #[test]
    fn first_size_in_skips_numbers_without_a_unit() {
        assert_eq!(first_size_in("GPU 0; 2.50 GiB total"), Some(5 << 29));
        assert_eq!(first_size_in("12.GiB then 3 MB"), Some(3 << 20));
        assert_eq!(first_size_in("7 bytesize"), Some(7));
        assert_eq!(first_size_in("no size"), None);
    }

    #[test]
    fn an_exponent_is_not_read_as_a_size() {
        assert_eq!(first_size_in("1e400 GiB"), None);
        assert_eq!(first_size_in("1e400 GiB then 2 MiB"), Some(2 << 20));
        assert_eq!(find_size(&re(r"{SIZE}\s*total"), "1E400 GiB total"), None);
        let total = re(r"{SIZE}\s*total\s*capac");
        assert_eq!(find_size(&total, "GPU 0; 1e400 GiB total capacity"), None);
        assert_eq!(find_size(&total, "GPU 0; 1.5e400 GiB total capacity"), None);
        assert_eq!(
            find_size(&total, "GPU 0;15.90 GiB total capacity"),
            Some(17_072_495_002)
        );
    }

    #[test]
    fn a_phrase_is_found_in_any_case() {
        assert!(contains_ignore_case(
            "Capture CUDA Graph failed",
            "cuda graph"
        ));
        assert!(!contains_ignore_case("cuda  graph", "cuda graph"));
        assert!(contains_ignore_case("", ""));
        assert!(!contains_ignore_case("gra", "graph"));
    }

    #[test]
    fn device_index_in_the_ways_tools_write_it() {
        for (text, want) in [
            ("GPU 3 has a total capacity", Some(3)),
            ("on device ordinal 1", Some(1)),
            ("Expected all tensors on cuda:2", Some(2)),
            ("device:GPU:0", Some(0)),
            // Paddle's Chinese message runs the next word on.
            ("GPU 0上出现内存不足错误", Some(0)),
            // fairseq's trainer after catching the OOM.
            (
                "| WARNING: ran out of memory on GPU #2, skipping batch",
                Some(2),
            ),
            // TensorFlow's device name for an Intel GPU (ITEX), and Caffe2's
            // device option.
            (
                "on /job:localhost/replica:0/task:0/device:XPU:1 by allocator",
                Some(1),
            ),
            ("device_option { device_type: 1 cuda_gpu_id: 3 }", Some(3)),
            // ggml-cuda's error handler.
            ("current device: 1, in function cublas_handle", Some(1)),
            ("no device here", None),
        ] {
            assert_eq!(device_index(text), want, "{text}");
        }
    }

    #[test]
    fn message_starts_at_the_exception_class_and_is_bounded() {
        let key = re(r"out\s*of\s*memory");
        assert_eq!(
            message_from("12:00 step 3 RuntimeError: CUDA out of memory.", &key),
            "RuntimeError: CUDA out of memory."
        );
        let long = format!("out of memory {}", "x".repeat(10_000));
        assert_eq!(message_from(&long, &key).chars().count(), 4097);
    }

    #[test]
    fn sizes_and_non_fatal_notices() {
        assert_eq!(
            find_size(&re(r"allocate\s*{SIZE}"), "allocate 2.00 GiB"),
            Some(2 << 30)
        );
        assert!(says_non_fatal(
            "The caller indicates that this is not a failure, but may mean"
        ));
        assert!(!says_non_fatal("CUDA out of memory."));
        // TensorFlow's BFC line for a caller that may fail, quoted alone in
        // an issue's title; the failing path's line is a failure.
        assert!(says_non_fatal(
            "Allocator (GPU_0_bfc) ran out of memory trying to allocate 2.39GiB with freed_by_count=0."
        ));
        assert!(!says_non_fatal(
            "Allocator (GPU_0_bfc) ran out of memory trying to allocate 1.2KiB (rounded to 1280)requested by op Conv2D"
        ));
        // A batch skipped after a caught OOM (fairseq's trainer) lost its
        // work: the allocation failed.
        assert!(!says_non_fatal(
            "WARNING: ran out of memory with exception: CUDA out of memory. Tried to allocate 1.16 GiB; Skipping batch"
        ));
    }

    /// XLA's autotuner warnings are not failures; Triton's pool fallback is
    /// (see `says_non_fatal`).
    #[test]
    fn autotuner_warnings_are_non_fatal_and_the_triton_pool_fallback_is_not() {
        for warning in [
            "Failed to determine best cudnn convolution algorithm: Resource exhausted: Out of memory while trying to allocate 16777716 bytes.",
            "Failed to determine best cudnn convolution algorithm for:\n%cudnn-conv = ...\n\nAs a result, convolution performance may be suboptimal.",
        ] {
            assert!(says_non_fatal(warning), "{warning}");
        }
        // The strict picker's error is raised.
        assert!(!says_non_fatal(
            "jaxlib.xla_extension.XlaRuntimeError: UNKNOWN: Failed to determine best cudnn convolution algorithm for:"
        ));
        assert!(!says_non_fatal(
            "W0410 13:51:44.743979 1 memory.cc:212] Failed to allocate CUDA memory with byte size 102236160 on GPU 0: CNMEM_STATUS_OUT_OF_MEMORY, falling back to pinned system memory"
        ));
        // The redzone checker's notice says it is benign.
        assert!(says_non_fatal(
            "W external/xla/xla/service/gpu/buffer_comparator.cc:1054] Failed to allocate memory for convolution redzone checking; skipping this check. This is benign and only means that we won't check cudnn for out-of-bounds reads and writes."
        ));
        // Other fallbacks stay non-fatal.
        assert!(says_non_fatal(
            "out of memory, falling back to the CPU kernel"
        ));
    }
}
