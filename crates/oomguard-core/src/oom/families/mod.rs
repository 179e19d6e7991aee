//! The family parsers and the dispatch over them. Each family file reads the
//! wordings of one group of tools and declares two lists: its `TRIGGERS`,
//! literal phrases one of which every message it reads contains (the scanner
//! searches a whole log for the union of all families' triggers, and nothing
//! else), and its `WORDS`, cheaper words that must appear in a logical line
//! before its patterns run at all. This module assembles the triggers and
//! tries each family in turn on one logical line.
//!
//! The families use `super::patterns` and the event types; none uses this
//! module or another family, except that the generic layer sits under all.

pub(super) mod cuda_libs;
pub(super) mod generic;
pub(super) mod inference_engines;
pub(super) mod other_runtimes;
pub(super) mod pytorch;
pub(super) mod tensorflow_jax;
pub(super) mod triton;

use super::patterns::Parsed;
use super::DeviceKind;
use aho_corasick::{AhoCorasick, AhoCorasickKind};
use std::sync::LazyLock;

/// Every family's trigger list, in the order the families are tried.
const FAMILY_TRIGGERS: &[&[&str]] = &[
    triton::TRIGGERS,
    cuda_libs::TRIGGERS,
    inference_engines::TRIGGERS,
    tensorflow_jax::TRIGGERS,
    pytorch::TRIGGERS,
    other_runtimes::TRIGGERS,
    generic::TRIGGERS,
];

/// The phrases the scanner searches for: every family's triggers, each once,
/// in family order, without a trigger that holds another one (the shorter
/// finds every line the longer would, so a family can list the wording it
/// reads and another family a short phrase that covers it). Keep each
/// trigger specific: one that fires on ordinary log lines slows the scan,
/// though the parsers still reject the lines.
///
/// The scanner splits them over two packed SIMD searchers (aho-corasick's
/// Teddy; a slim one that holds the phrases under four bytes, and a fat one,
/// see `scan::FINDERS`), together at most twice [`PHRASES_PER_SEARCHER`]:
/// one searcher past 64 patterns gives way to a much slower automaton (1.94 s
/// against 0.50 s on the 1 GiB benchmark log for 75 phrases), and three
/// searchers took longer than two. Keep the list within
/// two searchers; a wording past that goes in under a
/// shorter phrase that several wordings share (`t allocate` finds `cannot
/// allocate`, `can't allocate` and `could not allocate`). The search is
/// case-sensitive (the packed searcher is off for case-insensitive
/// searches), so a wording's capitalized forms are listed, or a trigger
/// starts after its first letter.
pub(super) static TRIGGERS: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| searched_triggers(FAMILY_TRIGGERS.iter().flat_map(|f| f.iter().copied())));

/// The most phrases one packed searcher takes: a margin under the 64 past
/// which it is no longer the fast one (see [`TRIGGERS`]).
pub(super) const PHRASES_PER_SEARCHER: usize = 40;

/// `triggers` each once, in order, without those that hold another.
fn searched_triggers<'a>(triggers: impl Iterator<Item = &'a str> + Clone) -> Vec<&'a str> {
    let mut all: Vec<&str> = Vec::new();
    for trigger in triggers.clone() {
        let covered = triggers
            .clone()
            .any(|other| other != trigger && trigger.contains(other));
        if !covered && !all.contains(&trigger) {
            all.push(trigger);
        }
    }
    all
}

/// The words of the families whose patterns run only when one is present,
/// bit `i` for family `i`.
const FAMILY_WORDS: [&[&str]; 4] = [
    triton::WORDS,
    cuda_libs::WORDS,
    inference_engines::WORDS,
    tensorflow_jax::WORDS,
];

/// Which of [`FAMILY_WORDS`] the text holds, as a bit set, from one search.
fn mentioned_families(text: &str) -> u32 {
    static WORDS: LazyLock<(AhoCorasick, Vec<u32>)> = LazyLock::new(|| {
        let mut words: Vec<&str> = Vec::new();
        let mut families: Vec<u32> = Vec::new();
        for (family, list) in FAMILY_WORDS.iter().enumerate() {
            for word in *list {
                match words.iter().position(|w| w == word) {
                    Some(i) => families[i] |= 1 << family,
                    None => {
                        words.push(word);
                        families.push(1 << family);
                    }
                }
            }
        }
        let finder = AhoCorasick::builder()
            .kind(Some(AhoCorasickKind::DFA))
            .build(&words)
            .expect("family words build");
        (finder, families)
    });
    let (finder, families) = &*WORDS;
    finder
        .find_overlapping_iter(text)
        .fold(0, |set, m| set | families[m.pattern().as_usize()])
}

/// Tries every family on one logical line, most specific first (a cuBLAS
/// failure also says "CUDA error", an ONNX Runtime one "out of memory").
/// Triton's shared-memory error comes first: torch.compile wraps it in
/// PyTorch's exception classes, and it must not be read as a device OOM.
///
/// Each family is tried only when the text holds one of its words (a plain
/// substring search), so a log dense with one family's lines runs that
/// family's patterns and not every family's.
#[cfg(test)]
pub(crate) fn parse_logical(text: &str) -> Option<Parsed> {
    parse_logical_at(text, false)
}

/// [`parse_logical`] of a line whose log prefix, stripped from `text`, put
/// it at error level (`error_level`): the generic layer takes that level
/// as the word that makes its phrase the failure.
pub(crate) fn parse_logical_at(text: &str, error_level: bool) -> Option<Parsed> {
    if is_python_warning(text) || is_source_statement(text) {
        return None;
    }
    parse_families(text, error_level).map(|mut parsed| {
        if parsed.device.kind == DeviceKind::Unknown && says_enomem(text) {
            parsed.device.kind = DeviceKind::Cpu;
        }
        parsed
    })
}

/// The C library's text for ENOMEM (`strerror(ENOMEM)`, "Cannot allocate
/// memory", as glibc and musl word errno 12): the operating system refused
/// the process memory (a JIT's code pages, a thread's stack, pinned or
/// shared host memory), whatever library passed the error on. GPU runtimes
/// have codes of their own.
fn says_enomem(text: &str) -> bool {
    text.contains("Cannot allocate memory")
}

fn parse_families(text: &str, error_level: bool) -> Option<Parsed> {
    let mentioned = mentioned_families(text);
    let mentions = |family: usize| mentioned & (1 << family) != 0;
    None.or_else(|| mentions(0).then(|| triton::parse(text))?)
        .or_else(|| mentions(1).then(|| cuda_libs::parse(text))?)
        .or_else(|| mentions(2).then(|| inference_engines::parse(text))?)
        .or_else(|| mentions(3).then(|| tensorflow_jax::parse(text))?)
        .or_else(|| pytorch::parse(text))
        .or_else(|| other_runtimes::parse(text))
        .or_else(|| cuda_libs::parse_generic(text))
        .or_else(|| {
            generic::parse(text, error_level).map(|mut p| {
                p.generic = true;
                p
            })
        })
}

/// A line Python's `warnings` module printed (`formatwarning`:
/// "{file}:{line}: {Category}: {message}", the category a `Warning`
/// subclass): the program went on, whatever memory words it quotes (CuPy's
/// "UserWarning: Using synchronous transfer as pinned memory (N bytes) could
/// not be allocated ... cudaErrorMemoryAllocation: out of memory"). Unless
/// the warning quotes a caught error with the request that failed (FSDP's
/// `UserWarning: Failed to clone() tensor with name X. ... Error: CUDA out
/// of memory. Tried to allocate N`): that allocation did fail, and the
/// warning is the only place it is told.
fn is_python_warning(text: &str) -> bool {
    static WARNING: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"^\s*\S+:\d+:\s*[A-Z]\w*Warning:\s").expect("pattern compiles")
    });
    let quotes_failed_request = text.contains("Error: ") && text.contains("Tried to allocate");
    text.contains("Warning:") && WARNING.is_match(text) && !quotes_failed_request
}

/// A line of source code that names an out-of-memory code instead of
/// reporting one: a branch or check on it (`if (res ==
/// VK_ERROR_OUT_OF_DEVICE_MEMORY) {`, `assert(status !=
/// cudaErrorMemoryAllocation)`, `} else if (...)`, `case X:`), a `throw`
/// (what a handler raises, as opposed to the runtime's `terminate called
/// after throwing`), or an entry of an error-name table (`{
/// CL_OUT_OF_RESOURCES, "CL_OUT_OF_RESOURCES" },`). Diffs and review
/// comments paste such lines, also joined into one.
fn is_source_statement(text: &str) -> bool {
    static STATEMENT: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(concat!(
            // Opening a statement.
            r"^\s*(?:\}\s*)?(?:else\s+)?if\s*\(|^\s*\}\s*else\b|^\s*(?:switch|assert|ASSERT\w*|CHECK\w*)\s*\(|",
            r"^\s*case\s+[\w:.]+\s*:|^\s*throw\s+[\w:]+|^\s*\{\s*[A-Za-z_][\w:]*\s*,\s*\x22|",
            // An out-of-memory code on either side of a comparison.
            r"[=!]=\s*[\w:.]*(?:OUT_OF_|OutOf|ALLOC_FAIL|AllocFail|MemoryAllocation|_OOM\b)|",
            r"(?:OUT_OF_|OutOf|ALLOC_FAIL|AllocFail|MemoryAllocation|_OOM\b)\w*\s*[=!]=",
        ))
        .expect("pattern compiles")
    });
    STATEMENT.is_match(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_code_naming_an_oom_code_is_not_a_failure() {
        for line in [
            "    if (res == VK_ERROR_OUT_OF_DEVICE_MEMORY) {",
            "} else if (err == CL_OUT_OF_RESOURCES) {",
            "    case CUDA_ERROR_OUT_OF_MEMORY:",
            "  case UR_RESULT_ERROR_OUT_OF_DEVICE_MEMORY: return \"out of device memory\";",
            "    throw std::bad_alloc();",
            "  assert(status != cudaErrorMemoryAllocation);",
            "  if (status == CUBLAS_STATUS_ALLOC_FAILED) return false;",
            "    { VK_ERROR_OUT_OF_DEVICE_MEMORY, \"VK_ERROR_OUT_OF_DEVICE_MEMORY\" },",
            "  return result == VK_ERROR_OUT_OF_HOST_MEMORY || result == VK_ERROR_OUT_OF_DEVICE_MEMORY;",
            "nullptr); -  if (res == VK_ERROR_OUT_OF_DEVICE_MEMORY) { -    throw std::bad_alloc(); -  }",
            "    elif err == OutOfMemoryError:",
        ] {
            assert!(parse_logical(line).is_none(), "{line}");
        }
    }

    #[test]
    fn the_memory_each_wording_names_is_the_device() {
        let kind = |line: &str| parse_logical(line).expect(line).device.kind;
        // ENOMEM passed on by a JIT.
        assert_eq!(
            kind("BUG: JIT session error: Cannot allocate memory"),
            DeviceKind::Cpu
        );
        assert_eq!(
            generic::device_kind(
                "ZeRO Stage 3 with NVMe offload: CPU OOM errors while partitioning"
            ),
            DeviceKind::Cpu
        );
        // A GPU's own code keeps its device.
        assert_eq!(
            kind("RuntimeError: CUDA error: out of memory"),
            DeviceKind::Cuda
        );
    }

    #[test]
    fn a_failure_that_prints_a_comparison_is_still_one() {
        for line in [
            "vkAllocateMemory failed with VK_ERROR_OUT_OF_DEVICE_MEMORY",
            "RuntimeError: Native API failed. Native API returns: 39 (UR_RESULT_ERROR_OUT_OF_DEVICE_MEMORY)",
            "clEnqueueNDRangeKernel returned CL_OUT_OF_RESOURCES",
            "terminate called after throwing an instance of 'std::bad_alloc'",
            "F0412 12:00:00.000 cudnn.cc:52] Check failed: status == CUDNN_STATUS_SUCCESS (4 vs. 0) CUDNN_STATUS_ALLOC_FAILED",
            "RuntimeError: CUDA error: out of memory",
        ] {
            assert!(parse_logical(line).is_some(), "{line}");
        }
    }

    #[test]
    fn a_trigger_that_holds_another_is_not_searched_twice() {
        let searched = searched_triggers(
            ["Tried to allocate", "to allocate", "OOM", "to allocate"].into_iter(),
        );
        assert_eq!(searched, ["to allocate", "OOM"]);
    }

    /// Each family's every trigger holds a searched phrase: no wording a
    /// family reads is left out of the scan.
    #[test]
    fn every_family_trigger_is_found_by_the_searched_phrases() {
        for trigger in FAMILY_TRIGGERS.iter().flat_map(|f| f.iter()) {
            assert!(
                TRIGGERS.iter().any(|t| trigger.contains(t)),
                "{trigger:?} is not searched"
            );
        }
    }

    #[test]
    fn a_python_warning_is_not_a_failure() {
        assert!(parse_logical("/x/cupy/creation/from_data.py:40: UserWarning: Using synchronous transfer as pinned memory (2147483648 bytes) could not be allocated. The original error was: cudaErrorMemoryAllocation: out of memory").is_none());
        assert!(parse_logical("RuntimeError: CUDA error: out of memory").is_some());
        // A warning that quotes the caught error with its request tells a
        // failed allocation.
        let fsdp = parse_logical("/x/torch/distributed/fsdp/fully_sharded_data_parallel.py:2224: UserWarning: Failed to clone() tensor with name lm_head.weight. Error: CUDA out of memory. Tried to allocate 502.00 MiB (GPU 1; 39.59 GiB total capacity; 35.54 GiB already allocated; 276.19 MiB free; 37.22 GiB reserved in total by PyTorch)")
            .expect("an event");
        assert_eq!(fsdp.device.index, Some(1));
    }

    #[test]
    fn the_triggers_fit_two_fast_packed_searchers() {
        // The scanner searches for the watchdog's phrase too.
        let searched = TRIGGERS.len() + 1;
        assert!(searched <= 2 * PHRASES_PER_SEARCHER, "{searched} triggers");
    }

    /// Every family's examples hold one of that family's own triggers (so
    /// the scanner finds them) and parse to an event.
    #[test]
    fn every_family_example_is_triggered_by_its_family_and_parsed() {
        let families: &[(&str, &[&str], &[&str])] = &[
            ("triton", triton::TRIGGERS, triton::EXAMPLES),
            ("cuda_libs", cuda_libs::TRIGGERS, cuda_libs::EXAMPLES),
            (
                "inference_engines",
                inference_engines::TRIGGERS,
                inference_engines::EXAMPLES,
            ),
            (
                "tensorflow_jax",
                tensorflow_jax::TRIGGERS,
                tensorflow_jax::EXAMPLES,
            ),
            ("pytorch", pytorch::TRIGGERS, pytorch::EXAMPLES),
            (
                "other_runtimes",
                other_runtimes::TRIGGERS,
                other_runtimes::EXAMPLES,
            ),
            ("generic", generic::TRIGGERS, generic::EXAMPLES),
        ];
        for (name, triggers, examples) in families {
            assert!(!examples.is_empty(), "{name} has no examples");
            for example in *examples {
                assert!(
                    triggers.iter().any(|t| example.contains(t)),
                    "no {name} trigger in {example:?}"
                );
                assert!(
                    TRIGGERS.iter().any(|t| example.contains(t)),
                    "no searched phrase in {example:?}"
                );
                assert!(
                    parse_logical(example).is_some(),
                    "{name} example not parsed: {example:?}"
                );
            }
        }
    }

    #[test]
    fn the_families_mentioned_are_those_whose_words_occur() {
        assert_eq!(mentioned_families("nothing here"), 0);
        assert_eq!(mentioned_families("out of resource: shared memory"), 1);
        // "CUBLAS" (cuda_libs) and "RESOURCE_EXHAUSTED" (tensorflow_jax).
        assert_eq!(mentioned_families("CUBLAS RESOURCE_EXHAUSTED"), 0b1010);
        // Overlapping words are all seen: "Cuda failure" holds "failure".
        assert_eq!(mentioned_families("Cuda failure"), 0b0110);
    }

    #[test]
    fn no_trigger_is_listed_twice_in_one_family() {
        for family in FAMILY_TRIGGERS {
            for (i, t) in family.iter().enumerate() {
                assert!(!family[..i].contains(t), "{t:?} twice");
            }
        }
    }
}
