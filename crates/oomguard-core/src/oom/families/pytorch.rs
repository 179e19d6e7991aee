//! PyTorch's out-of-memory messages, every era and backend: the THC message
//! of 0.x, the caching allocator's message as it changed from 1.0 to 2.x
//! (`cached`, `reserved in total by PyTorch`, `allowed`, `total capacty`,
//! `Process N has`, `private pools`), ROCm/HIP and XPU spellings, the
//! cudaMallocAsync backend, `CUDA error: out of memory`, MPS and the CPU
//! allocator; and Hugging Face accelerate's batch-size finder giving up
//! (`No executable batch size found, reached zero.`, from
//! accelerate/utils/memory.py `find_executable_batch_size`); and a
//! DataLoader worker killed for memory (torch/csrc/DataLoader.cpp:
//! `DataLoader worker (pid N) is killed by signal: ` + `strsignal()`, where
//! SIGBUS is a full `/dev/shm` and SIGKILL the OOM killer; a worker's
//! segmentation fault or SIGTERM is no memory failure).
//!
//! Field mapping follows docs/reference.md: 1.0's `X cached` is the cached-but-free
//! part, 1.4+'s `reserved in total by PyTorch` is all the allocator holds.

use crate::oom::patterns::{
    contains_ignore_case, device_index, find_size, find_u64, first_size_in, message_from, re,
    size_at, Parsed, PartKind,
};
use crate::oom::{DeviceKind, EventFacts, EventKind, Framework, Phase, ProcessMemory, PyTorchEra};
use aho_corasick::AhoCorasick;
use regex::{Match, Regex};
use std::sync::LazyLock;

/// Phrases one of which every message this family reads contains.
pub(super) const TRIGGERS: &[&str] = &[
    // `CUDA out of memory`, `MPS backend out of memory`, THC's `cuda runtime
    // error (2) : out of memory`, `CUDA error: out of memory`.
    "out of memory",
    // A caching-allocator message quoted without its first words.
    "Tried to allocate",
    // The cudaMallocAsync backend; its message cut after its first words.
    "would exceed allowed memory",
    "Allocation on device",
    // The CPU allocator: `not enough memory`, `can't allocate memory`.
    "ot enough memory",
    "an't allocate",
    // accelerate's find_executable_batch_size after halving to zero.
    "executable batch size found",
    // A DataLoader worker's SIGBUS handler: a full `/dev/shm`.
    "insufficient shared memory",
    // The MPS allocator refusing a buffer above Metal's largest.
    "nvalid buffer size",
    // The CPU allocator handed a size that wrapped below zero
    // (c10/core/impl/alloc_cpu.cpp, `alloc_cpu() seems to have been called
    // with negative number: N`).
    "called with negative number",
];
/// Messages of this family as PyTorch and accelerate print them.
#[cfg(test)]
pub(super) const EXAMPLES: &[&str] = &[
    "RuntimeError: cuda runtime error (2) : out of memory at /opt/conda/conda-bld/pytorch_1524590031827/work/aten/src/THC/generic/THCStorage.cu:58",
    "RuntimeError: CUDA out of memory. Tried to allocate 1024.00 MiB (GPU 0; 15.90 GiB total capacity; 14.25 GiB already allocated; 991.56 MiB free; 607.00 KiB cached)",
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.65 GiB of which 1.06 GiB is free. Including non-PyTorch memory, this process has 22.58 GiB memory in use. Of the allocated memory 20.12 GiB is allocated by PyTorch, and 1.95 GiB is reserved by PyTorch but unallocated.",
    "torch.OutOfMemoryError: Allocation on device 0 would exceed allowed memory. (out of memory)",
    "RuntimeError: MPS backend out of memory (MPS allocated: 7.80 GiB, other allocations: 6.94 GiB, max allowed: 18.13 GiB). Tried to allocate 3.46 GiB on private pool.",
    "torch.AcceleratorError: CUDA error: out of memory",
    "RuntimeError: [enforce fail at alloc_cpu.cpp:117] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to allocate 1125899906842624 bytes. Error code 12 (Cannot allocate memory)",
    "RuntimeError: No executable batch size found, reached zero.",
    "RuntimeError: Invalid buffer size: 3.57 GB",
    "RuntimeError: [enforce fail at CPUAllocator.cpp:47] ((ptrdiff_t)nbytes) >= 0. alloc_cpu() seems to have been called with negative number: 18446744072009756672",
];

struct Patterns {
    key: Regex,
    mps: Regex,
    thc: Regex,
    cuda_error: Regex,
    cpu: Regex,
    async_backend: Regex,
    async_cut: Regex,
    requested: Regex,
    request_told: Regex,
    absurd: Regex,
    total_v1: Regex,
    total_v2: Regex,
    free_v1: Regex,
    free_v2: Regex,
    allocated_v1: Regex,
    allocated_v2: Regex,
    cached: Regex,
    reserved_total: Regex,
    reserved_unallocated: Regex,
    allowed: Regex,
    process_self: Regex,
    process_other: Regex,
    private_pools: Regex,
    alloc_conf: Regex,
    gpu_index: Regex,
    cpu_bytes: Regex,
    cpu_gb: Regex,
    async_allocated: Regex,
    async_requested: Regex,
    async_limit: Regex,
    async_free: Regex,
    async_fraction: Regex,
    batch_finder: Regex,
}

static P: LazyLock<Patterns> = LazyLock::new(|| Patterns {
    // torch_npu (Ascend) prints the caching allocator's message with `NPU`
    // for the device (`NPU out of memory. Tried to allocate 52.00 MiB (NPU 0;
    // ...)`, torch_npu's NPUCachingAllocator.cpp).
    key: re(r"\b(CUDA|HIP|XPU|MTIA|NPU)\s*out\s*of\s*memory"),
    mps: re(r"MPS\s*backend\s*out\s*of\s*memory"),
    thc: re(
        r"(?:cuda\s*runtime\s*error\s*\(2\)\s*:\s*out\s*of\s*memory|THCudaCheck\s*FAIL.*?error=2\s*:\s*out\s*of\s*memory)",
    ),
    cuda_error: re(r"\b(CUDA|HIP)\s*error\s*:\s*out\s*of\s*memory"),
    // c10's host allocator names itself `DefaultCPUAllocator`
    // (c10/core/impl/alloc_cpu.cpp); Caffe2's jemalloc build
    // `JEMallocCPUAllocator`; reports that quote it cut short keep
    // `CPUAllocator: not enough memory: you tried to allocate N bytes`.
    cpu: re(
        r"\b(?:Default|JEMalloc)?CPUAllocator\s*:\s*(?:not\s*enough\s*memory|can't\s*allocate\s*memory)|Torch\s*:\s*not\s*enough\s*memory",
    ),
    // The allocator streams the device's index as a raw byte (a
    // `c10::DeviceIndex`, an int8, in CUDAMallocAsyncAllocator.cpp's
    // message), so device 0 prints an invisible NUL that pastes drop:
    // `Allocation on device  would exceed allowed memory`.
    async_backend: re(r"Allocation\s*on\s*device\s*(\d+)?\s*would\s*exceed\s*allowed\s*memory"),
    // The same message with nothing after its first words: ComfyUI's error
    // report and log show the cudaMallocAsync OOM as `Exception Message:
    // Allocation on device ` and `!!! Exception during processing !!!
    // Allocation on device ` (Comfy-Org/ComfyUI issues 4852, 4934, 4936,
    // 5166, 5511, 6073, 6176).
    async_cut: re(r"Allocation\s*on\s*device\s*$"),
    requested: re(r"Tried\s*to\s*allocate\s*{SIZE}"),
    request_told: re(
        r"(?i:\b(?:memory\s*error|oom(?:\s*error)?|error))\s*[:\-]\s*Tried\s*to\s*allocate\s*{SIZE}",
    ),
    absurd: re(r"Tried\s*to\s*allocate\s*more\s*than\s*1\s*EB"),
    total_v1: re(r"{SIZE}\s*total\s*capac"),
    total_v2: re(r"total\s*capac\w*\s*of\s*{SIZE}"),
    free_v1: re(r"{SIZE}\s*free\s*;"),
    free_v2: re(r"of\s*which\s*{SIZE}\s*is\s*free"),
    allocated_v1: re(r"{SIZE}\s*already\s*allocated"),
    allocated_v2: re(r"{SIZE}\s*is\s*allocated\s*by\s*(?:PyTorch|the\s*allocator)"),
    cached: re(r"{SIZE}\s*cached\s*\)"),
    reserved_total: re(r"{SIZE}\s*reserved\s*in\s*total\s*by\s*PyTorch"),
    reserved_unallocated: re(r"{SIZE}\s*is\s*reserved\s*by\s*PyTorch\s*but\s*unallocated"),
    allowed: re(r"{SIZE}\s*allowed\s*;"),
    process_self: re(r"this\s*process\s*has\s*{SIZE}\s*memory\s*in\s*use"),
    process_other: re(r"Process\s*(\d+)\s*has\s*{SIZE}\s*memory\s*in\s*use"),
    private_pools: re(r"with\s*{SIZE}\s*allocated\s*in\s*private\s*pools"),
    alloc_conf: re(r"\b(PYTORCH_(?:CUDA_|HIP_)?ALLOC_CONF)\b"),
    gpu_index: re(r"\(?(?:GPU|NPU)\s*(\d+)\s*(?:;|has\s*a\s*total)"),
    cpu_bytes: re(r"you\s*tried\s*to\s*allocate\s*(\d+)\s*bytes"),
    // TH (0.x/1.0): "you tried to allocate 2GB", whole GiB as printed.
    cpu_gb: re(r"you\s*tried\s*to\s*allocate\s*(\d+)\s*GB"),
    async_allocated: re(r"Currently\s*allocated\s*:\s*{SIZE}"),
    async_requested: re(r"Requested\s*:\s*{SIZE}"),
    async_limit: re(r"Device\s*limit\s*:\s*{SIZE}"),
    async_free: re(r"Free\s*\(according\s*to\s*CUDA\)\s*:\s*{SIZE}"),
    async_fraction: re(
        r"PyTorch\s*limit\s*\(set\s*by\s*user-supplied\s*memory\s*fraction\)(?:\s|\\n)*:\s*{SIZE}",
    ),
    batch_finder: re(r"No\s*executable\s*batch\s*size\s*found"),
});

/// Parses a PyTorch OOM message; `None` when the text is not one.
pub(crate) fn parse(text: &str) -> Option<Parsed> {
    let p = &*P;
    if text.contains("DataLoader worker") {
        if let Some(parsed) = dataloader_worker(text) {
            return Some(parsed);
        }
    }
    if text.contains("insufficient shared memory") {
        if let Some(parsed) = worker_bus_error(text) {
            return Some(parsed);
        }
    }
    if let Some(key) = p.key.find(text) {
        // Without figures, only a message that stands as an error counts:
        // "CUDA out of memory" inside a help text or a sentence is not one.
        let has_figures = p.requested.is_match(text) || is_absurd(text);
        if !has_figures && !stands_as_error(text, key.start()) {
            return None;
        }
        // The device's name opens the match (a plain search: capture groups
        // cost a pass of their own on every line of a dense log).
        let device = key.as_str();
        let kind = if device.starts_with("HIP") {
            DeviceKind::Rocm
        } else if device.starts_with("XPU") {
            DeviceKind::Xpu
        } else if device.starts_with("MTIA") || device.starts_with("NPU") {
            DeviceKind::Unknown
        } else {
            DeviceKind::Cuda
        };
        return Some(caching_allocator(text, kind));
    }
    // A message quoted from "Tried to allocate" on, without its first words:
    // with the device's figures, or after words that call it the error
    // ("Memory error: Tried to allocate 1024.00 GiB" in a report's title).
    if p.requested.is_match(text)
        && ((p.gpu_index.is_match(text)
            && (p.total_v1.is_match(text) || p.total_v2.is_match(text)))
            || p.request_told.is_match(text))
    {
        return Some(caching_allocator(text, DeviceKind::Cuda));
    }
    if let Some(c) = p.async_backend.captures(text) {
        let mut parsed = Parsed::new(
            Framework::PyTorch,
            DeviceKind::Cuda,
            message_from(text, &p.async_backend),
        );
        parsed.device.index = c.get(1).and_then(|m| m.as_str().parse().ok());
        let m = &mut parsed.memory;
        m.allocated_bytes = find_size(&p.async_allocated, text);
        m.requested_bytes = find_size(&p.async_requested, text);
        m.total_bytes = find_size(&p.async_limit, text);
        m.free_bytes = find_size(&p.async_free, text);
        m.allowed_bytes = find_size(&p.async_fraction, text);
        parsed.facts.pytorch_era = Some(PyTorchEra::Modern);
        return Some(parsed);
    }
    if let Some(m) = p.async_cut.find(text) {
        if !cut_message_stands(&text[..m.start()]) {
            return None;
        }
        let mut parsed = Parsed::new(
            Framework::PyTorch,
            DeviceKind::Cuda,
            text[m.start()..].trim().to_string(),
        );
        parsed.facts.pytorch_era = Some(PyTorchEra::Modern);
        return Some(parsed);
    }
    if p.mps.is_match(text) {
        return Some(mps(text));
    }
    if let Some(parsed) = mps_buffer_limit(text) {
        return Some(parsed);
    }
    if p.thc.is_match(text) {
        let mut parsed = Parsed::new(
            Framework::PyTorch,
            DeviceKind::Cuda,
            message_from(text, &p.thc),
        );
        parsed.facts.pytorch_era = Some(PyTorchEra::Thc);
        // THC names no device; a trainer's line joined to it may (fairseq's
        // `| WARNING: ran out of memory on GPU #2, skipping batch`).
        parsed.device.index = device_index(text);
        return Some(parsed);
    }
    if let Some(c) = p.cuda_error.captures(text) {
        if !stands_as_error(text, c.get(0)?.start()) {
            return None;
        }
        let kind = if &c[1] == "HIP" {
            DeviceKind::Rocm
        } else {
            DeviceKind::Cuda
        };
        let mut parsed = Parsed::new(Framework::PyTorch, kind, message_from(text, &p.cuda_error));
        parsed.facts.pytorch_era = Some(PyTorchEra::Unversioned);
        return Some(parsed);
    }
    if let Some(m) = p.batch_finder.find(text) {
        return batch_finder(text, m.start());
    }
    if let Some(parsed) = negative_cpu_size(text) {
        return Some(parsed);
    }
    if p.cpu.is_match(text) {
        let mut parsed = Parsed::new(
            Framework::PyTorch,
            DeviceKind::Cpu,
            message_from(text, &p.cpu),
        );
        parsed.memory.requested_bytes = find_u64(&p.cpu_bytes, text)
            .or_else(|| find_u64(&p.cpu_gb, text).and_then(|g| g.checked_mul(1 << 30)));
        parsed.exact_request = find_u64(&p.cpu_bytes, text).is_some();
        parsed.facts.pytorch_era = Some(PyTorchEra::Unversioned);
        return Some(parsed);
    }
    None
}

/// The CPU allocator's check that the size is not negative
/// (c10/core/impl/alloc_cpu.cpp: `TORCH_CHECK(((ptrdiff_t)nbytes) >= 0,
/// "alloc_cpu() seems to have been called with negative number: ", nbytes)`).
/// The printed figure is the negative size read as unsigned: no request the
/// host could meet, but a size computed wrong (an overflow, a shape bug).
fn negative_cpu_size(text: &str) -> Option<Parsed> {
    static NEGATIVE: LazyLock<Regex> = LazyLock::new(|| {
        re(r"alloc_cpu\(\)\s*seems\s*to\s*have\s*been\s*called\s*with\s*negative\s*number")
    });
    NEGATIVE.find(text)?;
    let mut parsed = Parsed::new(
        Framework::PyTorch,
        DeviceKind::Cpu,
        message_from(text, &NEGATIVE),
    );
    parsed.facts.absurd_request = true;
    parsed.facts.pytorch_era = Some(PyTorchEra::Unversioned);
    Some(parsed)
}

/// The worker's own SIGBUS handler (torch/csrc/DataLoader.cpp,
/// `handler_SIGBUS`): `ERROR: Unexpected bus error encountered in worker.
/// This might be caused by insufficient shared memory (shm).`, printed by
/// the worker before the main process reports it killed; often the only
/// line a report quotes.
fn worker_bus_error(text: &str) -> Option<Parsed> {
    static BUS: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"Unexpected\s*bus\s*error\s*encountered\s*in\s*worker\.?\s*This\s*might\s*be\s*caused\s*by\s*insufficient\s*shared\s*memory",
        )
    });
    BUS.find(text)?;
    let mut parsed = Parsed::new(
        Framework::PyTorch,
        DeviceKind::Cpu,
        message_from(text, &BUS),
    );
    parsed.phase_hint = Some(Phase::DataLoading);
    // The main process's `DataLoader worker (pid N) is killed by signal:
    // Bus error` that follows is the same failure.
    parsed.kind = PartKind::Preliminary;
    parsed.facts.shm_full = true;
    Some(parsed)
}

/// A DataLoader worker the kernel ended for memory: SIGBUS (`Bus error`,
/// macOS `Bus error: 10`) when its shared-memory tensors overflow
/// `/dev/shm`, SIGKILL (`Killed`) from the OOM killer. Lines hard-wrapped or
/// quoted with `> ` keep the words apart by spaces and `>` only.
fn dataloader_worker(text: &str) -> Option<Parsed> {
    static WORKER: LazyLock<Regex> = LazyLock::new(|| {
        re(concat!(
            // The pid as printed, or as a reporter masked it (`(pid n)`,
            // `(pid ...)`, `(pid XXXX)`).
            r"DataLoader[\s>]*worker[\s>]*\(pid[\s>]*([^()\s]{1,12})\)[\s>]*is[\s>]*killed[\s>]*by[\s>]*",
            r"signal[\s>]*:[\s>]*(Bus[\s>]*error|Killed)\b"
        ))
    });
    let c = WORKER.captures(text)?;
    let mut parsed = Parsed::new(
        Framework::PyTorch,
        DeviceKind::Cpu,
        message_from(text, &WORKER),
    );
    parsed.phase_hint = Some(Phase::DataLoading);
    // SIGBUS: a page of the worker's shared-memory mapping could not be
    // backed, an allocation that failed; SIGKILL: the OOM killer.
    if c[2].starts_with("Killed") {
        parsed.facts.kind = EventKind::OomKill;
        parsed.facts.signal_only_kill = true;
        parsed.facts.call = Some(if c[1].bytes().all(|b| b.is_ascii_digit()) {
            format!("a DataLoader worker (pid {})", &c[1])
        } else {
            "a DataLoader worker".to_string()
        });
    } else {
        parsed.facts.shm_full = true;
    }
    Some(parsed)
}

/// accelerate's `find_executable_batch_size` halves the batch on every OOM
/// (from `starting_batch_size`, 128 by default) and raises this when it
/// reaches zero: batch size 1 failed too. Its own event, never merged into
/// the `CUDA out of memory` events a log may show before it.
fn batch_finder(text: &str, at: usize) -> Option<Parsed> {
    // The `raise RuntimeError("No executable ...")` source line a traceback
    // quotes is not the error.
    if !stands_as_error(text, at) {
        return None;
    }
    let kind = if text.contains("CUDA") || text.contains("cuda") {
        DeviceKind::Cuda
    } else {
        DeviceKind::Unknown
    };
    let mut parsed = Parsed::new(
        Framework::PyTorch,
        kind,
        message_from(text, &P.batch_finder),
    );
    parsed.device.index = device_index(text).filter(|_| kind == DeviceKind::Cuda);
    parsed.facts.kind = EventKind::BatchSearchExhausted;
    Some(parsed)
}

/// True when the words before a message cut after its first words (`before`)
/// introduce it as the error: nothing, an exception class or log tag ending
/// in `:`, `!!!` or `]`, or a Markdown field (`**Exception Message:**`).
fn cut_message_stands(before: &str) -> bool {
    let before = before.trim_end();
    before.is_empty()
        || before.ends_with(':')
        || before.ends_with(":**")
        || before.ends_with("!!!")
        || before.ends_with(']')
}

/// True when the phrase at `at` is the error itself: the line starts with it,
/// or an exception class (`RuntimeError:`, `torch.OutOfMemoryError:`)
/// introduces it.
fn stands_as_error(text: &str, at: usize) -> bool {
    static ERR: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?:Error|Exception|error|ERROR)\s*:\s*$").expect("pattern compiles")
    });
    let before = text[..at].trim_end();
    before.is_empty()
        || ERR.is_match(&text[..at])
        || before.ends_with("Error:")
        || before.ends_with(']')
}

fn caching_allocator(text: &str, kind: DeviceKind) -> Parsed {
    let p = &*P;
    let text = first_message(text);
    let key = if p.key.is_match(text) {
        &p.key
    } else {
        &p.requested
    };
    let mut parsed = Parsed::new(
        Framework::PyTorch,
        kind,
        trim_after_message(&message_from(text, key)),
    );
    // An engine's CUDA-graph capture at start-up (SGLang's `Capture cuda
    // graph failed: ...`, vLLM's capture_model).
    if contains_ignore_case(text, "cuda graph") {
        parsed.phase_hint = Some(crate::oom::Phase::Startup);
    }
    // The index is the match's only digits (read from the match, as the
    // figures below are, not from a capture group).
    parsed.device.index = p
        .gpu_index
        .find(text)
        .and_then(|m| {
            let digits = m.as_str().trim_start_matches(|c: char| !c.is_ascii_digit());
            let end = digits
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(digits.len());
            digits[..end].parse().ok()
        })
        .or_else(|| device_index(text));
    let m = &mut parsed.memory;
    // Each figure's pattern runs only where its words are: the patterns open
    // with a number, which no literal search can skip to.
    // The size is read from the match (`first_size_in`): capture groups
    // would cost a backtracking pass per figure.
    let found = |needle: &str, re: &'static Regex| {
        if text.contains(needle) {
            re.find(text)
        } else {
            None
        }
    };
    let figure = |m: &Option<Match<'_>>| m.and_then(|m| first_size_in(m.as_str()));
    let size = |needle: &str, re: &'static Regex| figure(&found(needle, re));
    // The phrases that also date the message (see `era`) are matched once.
    let cached = found("cached", &p.cached);
    let unallocated = found("unallocated", &p.reserved_unallocated);
    let reserved_total = found("in total", &p.reserved_total);
    let total_v2 = found("capac", &p.total_v2);
    m.requested_bytes = size("allocate", &p.requested);
    m.total_bytes = figure(&total_v2).or_else(|| size("capac", &p.total_v1));
    m.free_bytes = size("is free", &p.free_v2).or_else(|| size("free", &p.free_v1));
    m.allocated_bytes =
        size("allocated by", &p.allocated_v2).or_else(|| size("already", &p.allocated_v1));
    // 1.0: "X cached" is what the cache holds beyond live tensors.
    m.reserved_unallocated_bytes = figure(&cached).or_else(|| figure(&unallocated));
    m.reserved_bytes = figure(&reserved_total);
    m.allowed_bytes = size("allowed", &p.allowed);
    m.process_bytes = size("this process", &p.process_self);
    m.private_pools_bytes = size("private pools", &p.private_pools);
    let others: Vec<ProcessMemory> = p
        .process_other
        .captures_iter(if text.contains("Process ") { text } else { "" })
        .filter_map(|c| {
            Some(ProcessMemory {
                pid: c.get(1)?.as_str().parse().ok()?,
                bytes: size_at(&c, 2)?,
            })
        })
        .collect();
    if !others.is_empty() {
        m.other_processes = Some(others);
    }
    m.derive();
    parsed.facts = EventFacts {
        pytorch_era: Some(era(
            text,
            cached.is_some(),
            reserved_total.is_some(),
            total_v2.is_some() || unallocated.is_some(),
        )),
        alloc_conf_var: if text.contains("ALLOC_CONF") {
            p.alloc_conf.captures(text).map(|c| c[1].to_string())
        } else {
            None
        },
        absurd_request: is_absurd(text),
        ..EventFacts::default()
    };
    parsed
}

/// The first of two caching-allocator messages run together on one line:
/// two processes that share a terminal (two jobs on one GPU, the ranks of
/// one job) interleave their output, so another process's message may
/// begin before this one ended (`... See documentation ftorch.cuda.
/// OutOfMemoryError: CUDA out of memory. Tried to allocate ...`). Each
/// names the other as `Process N`; the figures are the first one's. Text
/// whose first part states no request is kept whole.
fn first_message(text: &str) -> &str {
    let p = &*P;
    let mut keys = p.key.find_iter(text);
    let (Some(first), Some(second)) = (keys.next(), keys.next()) else {
        return text;
    };
    // Back from the second message to its exception's name (`torch.cuda.
    // OutOfMemoryError:`, `RuntimeError:`).
    let head = text[..second.start()].trim_end();
    let cut = if head.ends_with(':') {
        head.rfind(char::is_whitespace).map_or(0, |i| i + 1)
    } else {
        second.start()
    };
    if cut <= first.end() || !p.requested.is_match(&text[first.end()..cut]) {
        return text;
    }
    &text[..cut]
}

/// PyTorch's message for a request of 1 EB or more, which prints no size.
fn is_absurd(text: &str) -> bool {
    text.contains("EB") && P.absurd.is_match(text)
}

/// The phrases a caching-allocator message ends with, in its eras.
const MESSAGE_ENDS: [&str; 9] = [
    "reserved in total by PyTorch)",
    "cached)",
    "is reserved by PyTorch but unallocated.",
    "to avoid fragmentation.",
    "PYTORCH_CUDA_ALLOC_CONF",
    "PYTORCH_HIP_ALLOC_CONF",
    "PYTORCH_ALLOC_CONF",
    "#environment-variables)",
    "unoccupied cached memory.",
];

/// Cuts what follows the caching allocator's message on the same logical
/// line (a web page's next heading, a log's next sentence): the message ends
/// with the last of the phrases it is known to end with.
fn trim_after_message(msg: &str) -> String {
    // The last end of any of these phrases. No phrase overlaps another (nor
    // itself), so one plain search meets every occurrence of each; the test
    // below keeps it so.
    static ENDS: LazyLock<AhoCorasick> =
        LazyLock::new(|| AhoCorasick::new(MESSAGE_ENDS).expect("phrases build"));
    let end = ENDS.find_iter(msg).last().map(|m| m.end());
    match end {
        // "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True": keep the value.
        Some(end) => {
            let rest = &msg[end..];
            let value = rest
                .find(|c: char| c.is_whitespace())
                .filter(|_| rest.starts_with('='))
                .unwrap_or(if rest.starts_with('=') { rest.len() } else { 0 });
            msg[..end + value].trim_end().to_string()
        }
        None => msg.to_string(),
    }
}

/// The era of a caching-allocator message from the phrases it holds: `X
/// cached)`, `reserved in total by PyTorch`, the 2.1 misspelling, or the 2.2+
/// `total capacity of` / `reserved by PyTorch but unallocated`.
fn era(text: &str, cached: bool, reserved_in_total: bool, modern: bool) -> PyTorchEra {
    if cached {
        PyTorchEra::Cached
    } else if reserved_in_total {
        if text.contains("max_split_size_mb") || text.contains("ALLOC_CONF") {
            PyTorchEra::MaxSplitHint
        } else {
            PyTorchEra::ReservedInTotal
        }
    } else if text.contains("total capacty") {
        PyTorchEra::Capacty
    } else if modern {
        PyTorchEra::Modern
    } else {
        PyTorchEra::Unversioned
    }
}

fn mps(text: &str) -> Parsed {
    static FIG: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"MPS\s*allocated\s*:\s*{SIZE}\s*,\s*other\s*allocations\s*:\s*{SIZE}\s*,\s*max\s*allowed\s*:\s*{SIZE}",
        )
    });
    static REQ: LazyLock<Regex> = LazyLock::new(|| re(r"Tried\s*to\s*allocate\s*{SIZE}"));
    let mut parsed = Parsed::new(
        Framework::PyTorch,
        DeviceKind::Mps,
        message_from(text, &P.mps),
    );
    if let Some(c) = FIG.captures(text) {
        parsed.memory.allocated_bytes = size_at(&c, 1);
        parsed.memory.non_framework_bytes = size_at(&c, 3);
        parsed.memory.allowed_bytes = size_at(&c, 5);
    }
    parsed.memory.requested_bytes = find_size(&REQ, text);
    parsed.facts.pytorch_era = Some(PyTorchEra::Unversioned);
    parsed
}

/// PyTorch's MPS allocator refusing one buffer at or above the largest
/// Metal allows (`MPSHeapAllocatorImpl::alloc_buffer_block`:
/// `TORCH_CHECK(size < m_max_buffer_size, "Invalid buffer size: ",
/// format_size(size))`, the limit `MTLDevice.maxBufferLength`), the size in
/// `format_size`'s binary KB, MB or GB. Other software's "invalid buffer
/// size" (audio, IPC) prints a bare count.
fn mps_buffer_limit(text: &str) -> Option<Parsed> {
    static LIMIT: LazyLock<Regex> =
        LazyLock::new(|| re(r"Invalid\s*buffer\s*size\s*:\s*\d+(?:\.\d+)?\s*(?:KB|MB|GB)\b"));
    let m = LIMIT.find(text)?;
    let mut parsed = Parsed::new(
        Framework::PyTorch,
        DeviceKind::Mps,
        message_from(text, &LIMIT),
    );
    parsed.memory.requested_bytes = first_size_in(m.as_str());
    parsed.facts.pytorch_era = Some(PyTorchEra::Unversioned);
    Some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`trim_after_message`] finds every occurrence of each phrase with one
    /// plain (non-overlapping) search only while no phrase holds another
    /// nor begins with another's end.
    #[test]
    fn the_message_ends_never_overlap() {
        for a in MESSAGE_ENDS {
            for b in MESSAGE_ENDS {
                if a != b {
                    assert!(!a.contains(b), "{a} holds {b}");
                }
                for k in 1..a.len().min(b.len()) {
                    assert!(a[a.len() - k..] != b[..k], "{a} ends as {b} begins");
                }
            }
        }
    }

    #[test]
    fn two_processes_messages_run_together_give_the_first_one_s_figures() {
        // hiyouga/LlamaFactory issue 4652: two LoRA jobs on one GPU.
        let text = "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 136.00 MiB. GPU 0 has a total capacty of 31.73 GiB of which 24.69 MiB is free. Process 149826 has 16.98 GiB memory in use. Including non-PyTorch memory, this process has 14.72 GiB memory in use. Of the allocated memory 14.41 GiB is allocated by PyTorch, and 11.15 MiB is reserved by PyTorch but unallocated. See documentation ftorch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 50.00 MiB. GPU 0 has a total capacty of 31.73 GiB of which 24.69 MiB is free. Including non-PyTorch memory, this process has 16.98 GiB memory in use. Process 150072 has 14.72 GiB memory in use.";
        let e = parse(text).expect("an event");
        assert_eq!(e.memory.requested_bytes, Some(136 << 20));
        let others = e.memory.other_processes.expect("other processes");
        assert_eq!(others.len(), 1);
        assert_eq!(others[0].pid, 149826);
        assert!(!e.message.contains("50.00 MiB"), "{}", e.message);
        // One message, and a title without figures before one: kept whole.
        let one = "RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 3.82 GiB total capacity; 2.41 GiB already allocated; 5.06 MiB free; 2.50 GiB reserved in total by PyTorch)";
        assert_eq!(first_message(one), one);
        let titled = format!("CUDA out of memory when training: {one}");
        assert_eq!(first_message(&titled), titled);
    }

    #[test]
    fn thc_s_failure_takes_the_device_a_trainer_s_line_joined_to_it_names() {
        let thc = "THCudaCheck FAIL file=/pytorch/torch/lib/THC/generic/THCStorage.cu line=58 error=2 : out of memory";
        let alone = parse(thc).expect("an event");
        assert_eq!(
            (alone.device.kind, alone.device.index),
            (DeviceKind::Cuda, None)
        );
        let joined = parse(&format!(
            "{thc} | WARNING: ran out of memory on GPU #2, skipping batch"
        ))
        .expect("an event");
        assert_eq!(joined.device.index, Some(2));
    }

    #[test]
    fn the_async_allocator_s_message_reads_without_its_device_byte() {
        let text = "torch.OutOfMemoryError: Allocation on device  would exceed allowed memory. (out of memory) Currently allocated     : 10.24 GiB Requested               : 114.00 MiB Device limit            : 23.57 GiB Free (according to CUDA): 16.12 MiB";
        let parsed = parse(text).expect("an event");
        assert_eq!(
            (parsed.device.kind, parsed.device.index),
            (DeviceKind::Cuda, None)
        );
        assert_eq!(parsed.memory.requested_bytes, Some(114 << 20));
        assert!(parsed.memory.total_bytes.is_some());
        let numbered = parse(&text.replace("device  would", "device 1 would")).expect("an event");
        assert_eq!(numbered.device.index, Some(1));
    }

    #[test]
    fn the_mps_allocator_refuses_a_buffer_above_metal_s_largest() {
        let parsed = parse("Unable to generate image larger than 640x640 - RuntimeError: Invalid buffer size: 3.57 GB")
            .expect("an event");
        assert_eq!(parsed.device.kind, DeviceKind::Mps);
        assert_eq!(parsed.memory.requested_bytes, Some(3833258312));
        assert_eq!(parsed.message, "RuntimeError: Invalid buffer size: 3.57 GB");
        // Other software's invalid buffer sizes are counts, not memory.
        assert!(parse("E/AudioTrack: Invalid buffer size: -2").is_none());
        assert!(parse("Invalid buffer size: 1024").is_none());
    }

    #[test]
    fn a_negative_cpu_size_is_a_size_computed_wrong() {
        let parsed = parse("RuntimeError: [enforce fail at CPUAllocator.cpp:47] ((ptrdiff_t)nbytes) >= 0. alloc_cpu() seems to have been called with negative number: 18446744072009756672")
            .expect("an event");
        assert_eq!(parsed.framework, Framework::PyTorch);
        assert_eq!(parsed.device.kind, DeviceKind::Cpu);
        assert!(parsed.facts.absurd_request);
        // The wrapped figure is no request.
        assert_eq!(parsed.memory.requested_bytes, None);
        assert!(parsed.message.starts_with("RuntimeError: [enforce fail"));
    }

    #[test]
    fn the_host_allocator_by_each_of_its_names() {
        for text in [
            "RuntimeError: [enforce fail at alloc_cpu.cpp:114] data. DefaultCPUAllocator: not enough memory: you tried to allocate 6553600 bytes.",
            "RuntimeError: CPUAllocator: not enough memory: you tried to allocate 6553600 bytes.",
            "[enforce fail at context.cc:48] data. JEMallocCPUAllocator: not enough memory: you tried to allocate 6553600 bytes.",
        ] {
            let parsed = parse(text).expect(text);
            assert_eq!(parsed.device.kind, DeviceKind::Cpu, "{text}");
            assert_eq!(parsed.memory.requested_bytes, Some(6_553_600), "{text}");
        }
        assert!(parse("class GPUAllocator: not enough memory here")
            .is_none_or(|p| p.device.kind != DeviceKind::Cpu));
    }

    #[test]
    fn accelerate_batch_finder_gave_up() {
        let parsed =
            parse("RuntimeError: No executable batch size found, reached zero.").expect("an event");
        assert_eq!(parsed.framework, Framework::PyTorch);
        assert_eq!(parsed.device.kind, DeviceKind::Unknown);
        assert!(parsed.facts.batch_search_exhausted());
        assert!(parsed.memory.is_empty());
        assert_eq!(
            parsed.message,
            "RuntimeError: No executable batch size found, reached zero."
        );
    }

    #[test]
    fn a_request_quoted_as_the_error_is_pytorch_s() {
        let e = parse("[Bug]: Phi-3-small-128k-instruct on 4 T4 GPUs - Memory error: Tried to allocate 1024.00 GiB")
            .expect("an event");
        assert_eq!(e.framework, Framework::PyTorch);
        assert_eq!(e.memory.requested_bytes, Some(1 << 40));
        // A figure in words, with nothing that calls it the error.
        assert!(parse("I tried to allocate 2.00 GiB with torch.empty and it worked").is_none());
    }

    #[test]
    fn the_quoted_raise_line_is_not_the_error() {
        assert!(parse(
            r#"    raise RuntimeError("No executable batch size found, reached zero.")"#
        )
        .is_none());
        assert!(parse(r#"if "No executable batch size found" in str(e):"#).is_none());
    }

    #[test]
    fn a_dataloader_worker_killed_with_its_pid_masked() {
        for text in [
            "RuntimeError: DataLoader worker (pid n) is killed by signal: Killed",
            "RuntimeError: DataLoader worker (pid ...) is killed by signal: Killed.",
        ] {
            let e = parse(text).expect("an event");
            assert_eq!(e.framework, Framework::PyTorch, "{text}");
            assert_eq!(e.facts.call.as_deref(), Some("a DataLoader worker"));
        }
        let e = parse("RuntimeError: DataLoader worker (pid 22048) is killed by signal: Killed.")
            .expect("an event");
        assert_eq!(
            e.facts.call.as_deref(),
            Some("a DataLoader worker (pid 22048)")
        );
    }

    #[test]
    fn dataloader_workers_killed_for_memory_and_not() {
        let bus = parse("RuntimeError: DataLoader worker (pid 9021) is killed by signal: Bus error. It is possible that dataloader's workers are out of shared memory. Please try to raise your shared memory limit.")
            .expect("an event");
        assert_eq!(bus.framework, Framework::PyTorch);
        assert_eq!(bus.device.kind, DeviceKind::Cpu);
        assert_eq!(bus.phase_hint, Some(Phase::DataLoading));
        assert!(!bus.facts.oom_killer());
        assert!(bus.facts.shm_full);
        let killed = parse("RuntimeError: DataLoader worker (pid 77) is killed by signal: Killed.")
            .expect("an event");
        assert!(killed.facts.oom_killer());
        assert_eq!(
            killed.facts.call.as_deref(),
            Some("a DataLoader worker (pid 77)")
        );
        // Wrapped by a terminal, quoted in a reply, macOS's strsignal.
        for text in [
            "RuntimeError: DataLoader worker (pid 9021) is killed by signal: Bus  error.",
            "> RuntimeError: DataLoader worker (pid 9021) is killed > by signal: Killed.",
            "RuntimeError: DataLoader worker (pid 9021) is killed by signal: Bus error: 10.",
        ] {
            assert!(parse(text).is_some(), "{text}");
        }
        let handler = parse("ERROR: Unexpected bus error encountered in worker. This might be caused by insufficient shared memory (shm).")
            .expect("an event");
        assert_eq!(handler.device.kind, DeviceKind::Cpu);
        assert_eq!(handler.phase_hint, Some(Phase::DataLoading));
        assert!(handler.facts.shm_full);
        for text in [
            "RuntimeError: DataLoader worker (pid 9021) is killed by signal: Segmentation fault.",
            "RuntimeError: DataLoader worker (pid 9021) is killed by signal: Terminated.",
            "RuntimeError: DataLoader worker (pid 9021) is killed by signal: Aborted.",
        ] {
            assert!(parse(text).is_none(), "{text}");
        }
    }
}
