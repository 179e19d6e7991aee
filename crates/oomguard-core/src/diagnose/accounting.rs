//! Where the device's memory was when the allocation failed: held for live
//! tensors, cached but free, used outside the framework in this process,
//! held by other processes, free; and the request against what was free.
//!
//! Figures a message does not state stay unknown. When the message cannot
//! tell this process's non-framework memory from other processes (PyTorch
//! 1.x), the two are one "outside the framework" segment.

use crate::oom::{
    DeviceKind, Framework, MemoryFigures, MemoryLimit, OomEvent, ProcessMemory, SglangCheck,
};
use crate::size::format_size;

/// A part of the device's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// Held by the framework's allocator for live tensors.
    Allocated,
    /// Held by the framework's allocator but free (cached).
    CachedFree,
    /// This process, outside the framework's allocator (CUDA context, cuBLAS/cuDNN/NCCL).
    NonFramework,
    /// Other processes on the device.
    OtherProcesses,
    /// Used outside the framework's allocator, by this process or others.
    OutsideFramework,
    /// Free on the device.
    Free,
}

impl SegmentKind {
    /// A short label for the segment in human output.
    pub fn label(self) -> &'static str {
        match self {
            SegmentKind::Allocated => "allocated (live tensors)",
            SegmentKind::CachedFree => "cached but free",
            SegmentKind::NonFramework => "non-framework (this process)",
            SegmentKind::OtherProcesses => "other processes",
            SegmentKind::OutsideFramework => "outside the framework",
            SegmentKind::Free => "free",
        }
    }
}

/// A share of the device's memory of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// What this memory was used for.
    pub kind: SegmentKind,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The memory picture of one event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Accounting {
    /// The extent the bar spans: the device's total, else a configured cap.
    pub extent: Option<u64>,
    /// True when `extent` is a cap (MPS watermark), not the device's size.
    pub extent_is_cap: bool,
    /// The parts of the device's memory the message states, in display order; parts it does not state are left out.
    pub segments: Vec<Segment>,
    /// Bytes the failed allocation asked for; `None` when the message does not say.
    pub requested: Option<u64>,
    /// Request minus free memory: how much was missing (negative: the
    /// request would have fit the free memory).
    pub shortfall: Option<i128>,
    /// A `Process N has` clause that is this process itself (in a container
    /// PyTorch cannot match its own pid).
    pub self_process: Option<ProcessMemory>,
    /// Other processes, the self process removed.
    pub others: Vec<ProcessMemory>,
    /// What the framework could have used: what it held plus what was free.
    pub framework_budget: Option<u64>,
}

/// The CUDA context and library handles of one process rarely exceed this;
/// a `Process N has` clause within this of the framework's reserved memory is
/// taken for the process itself. (A CUDA context is ~300-600 MiB on recent
/// GPUs, cuBLAS/cuDNN workspaces add a few hundred MiB: PyTorch docs, "CUDA
/// semantics", memory management notes.)
const CONTEXT_SLACK: u64 = 2 << 30;

impl Accounting {
    /// The accounting of `event`, from the figures its message states.
    pub fn of(event: &OomEvent) -> Accounting {
        let m = &event.memory;
        let mut acc = Accounting {
            requested: m.requested_bytes,
            ..Accounting::default()
        };
        // A figure of 0 where the rest shows memory in use is a reading that
        // failed (NVML without access to the process), not a process that
        // holds nothing: it is no evidence either way.
        let in_use = m.reserved_bytes.or(m.allocated_bytes).unwrap_or(0) > 0;
        let listed: Vec<ProcessMemory> = m
            .other_processes
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.bytes > 0)
            .collect();
        let mut process = m.process_bytes.filter(|&p| p > 0 || !in_use);
        let mut others = listed.clone();
        if process.is_none() {
            if let Some(i) = self_clause(m, &listed) {
                acc.self_process = Some(listed[i]);
                process = Some(listed[i].bytes);
                others.remove(i);
            }
        }
        acc.others = others;
        let others_sum: u64 = acc.others.iter().map(|p| p.bytes).sum();

        let (extent, is_cap) = match (m.total_bytes, m.allowed_bytes) {
            (Some(t), _) => (Some(t), false),
            (None, Some(cap)) => (Some(cap), true),
            _ => (None, false),
        };
        acc.extent = extent;
        acc.extent_is_cap = is_cap;
        let mut segments: Vec<Segment> = Vec::new();
        let mut push = |kind, bytes: Option<u64>| {
            if let Some(b) = bytes {
                segments.push(Segment { kind, bytes: b });
            }
        };
        push(SegmentKind::Allocated, m.allocated_bytes);
        push(SegmentKind::CachedFree, m.reserved_unallocated_bytes);
        let broken_process = process.is_none() && m.process_bytes.is_some();
        let non_framework = m
            .non_framework_bytes
            .filter(|_| !broken_process)
            .or_else(|| Some(process?.saturating_sub(m.reserved_bytes?)));
        if event.device.kind == DeviceKind::Mps {
            // MPS "other allocations": everything Metal holds beyond the
            // allocator's live tensors, for this process and the system.
            push(SegmentKind::NonFramework, non_framework);
        } else if let Some(nf) = non_framework {
            push(SegmentKind::NonFramework, Some(nf));
            // What the device has in use beyond this process is other
            // processes', listed or not: a container's NVML lists only the
            // processes it can see, so the clauses can fall short of it.
            let rest = match (m.total_bytes, m.free_bytes, process) {
                (Some(t), Some(f), Some(p)) => t.saturating_sub(f).saturating_sub(p),
                _ => 0,
            };
            let others = others_sum.max(rest);
            if others > 0 {
                push(SegmentKind::OtherProcesses, Some(others));
            }
        } else if let (Some(t), Some(f), Some(r)) = (m.total_bytes, m.free_bytes, m.reserved_bytes)
        {
            if others_sum > 0 {
                push(SegmentKind::OtherProcesses, Some(others_sum));
            }
            let outside = t
                .saturating_sub(f)
                .saturating_sub(r)
                .saturating_sub(others_sum);
            push(SegmentKind::OutsideFramework, Some(outside));
        } else if others_sum > 0 {
            push(SegmentKind::OtherProcesses, Some(others_sum));
        } else if let (Some(t), Some(f), None, Framework::Vllm | Framework::TensorFlow) = (
            m.total_bytes,
            m.free_bytes,
            m.allocated_bytes,
            event.framework,
        ) {
            // Only the device's total and free are known, as the framework
            // found them before it allocated (vLLM's start-up check,
            // TensorFlow's device log): what is used lies outside it.
            push(SegmentKind::OutsideFramework, Some(t.saturating_sub(f)));
        }
        let used: u64 = segments.iter().map(|s| s.bytes).sum();
        // Free within a cap is the cap less what the message says is used;
        // with nothing said to be used, free is unknown, not the whole cap
        // (a kill's report names the limit and no usage).
        let free = m.free_bytes.or_else(|| {
            if is_cap && !segments.is_empty() {
                Some(extent?.saturating_sub(used))
            } else {
                None
            }
        });
        if let Some(f) = free {
            segments.push(Segment {
                kind: SegmentKind::Free,
                bytes: f,
            });
        }
        acc.segments = segments;
        acc.shortfall = match (m.requested_bytes, free) {
            (Some(q), Some(f)) => Some(q as i128 - f as i128),
            _ => None,
        };
        acc.framework_budget = match (m.reserved_bytes, free) {
            (Some(r), Some(f)) => Some(r + f),
            (None, Some(f)) => m.allocated_bytes.map(|a| a + f),
            _ => None,
        };
        acc
    }

    /// Bytes of one kind of segment, when the message told it.
    pub fn bytes(&self, kind: SegmentKind) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| s.kind == kind)
            .map(|s| s.bytes)
    }
}

/// Which `Process N has` clause, if any, is this process itself: PyTorch
/// prints one for every process on the device and, in a container, cannot
/// tell its own pid from the host's, so it writes no "this process has".
/// Without one, this process's reserved memory must be among the clauses:
/// - the only clause, within [`CONTEXT_SLACK`] above the reserved memory;
/// - or the only clause holding at least the reserved memory, when what the
///   clauses leave of the used memory (total - free) is less than the
///   reserved memory: this process's memory cannot lie outside them.
fn self_clause(m: &MemoryFigures, listed: &[ProcessMemory]) -> Option<usize> {
    let reserved = m.reserved_bytes.filter(|&r| r > 0)?;
    let holds_reserved = |p: &ProcessMemory| p.bytes >= reserved;
    if let [only] = listed {
        if holds_reserved(only) && only.bytes - reserved <= CONTEXT_SLACK {
            return Some(0);
        }
    }
    let used = m.total_bytes?.checked_sub(m.free_bytes?)?;
    let listed_sum: u64 = listed.iter().map(|p| p.bytes).sum();
    if used.saturating_sub(listed_sum) >= reserved {
        return None;
    }
    let mut holders = listed.iter().enumerate().filter(|(_, p)| holds_reserved(p));
    match (holders.next(), holders.next()) {
        (Some((i, _)), None) => Some(i),
        _ => None,
    }
}

/// One sentence saying what failed.
pub(crate) fn summary(event: &OomEvent, acc: &Accounting) -> String {
    if let Some(said) = summary_from_facts(event) {
        return said;
    }
    let who = event.framework.display_name();
    let dev = match event.device.index {
        Some(i) => format!("{} {i}", event.device.kind.display_name()),
        None => event.device.kind.display_name().to_string(),
    };
    match (acc.requested, acc.bytes(SegmentKind::Free), acc.extent) {
        (Some(q), Some(f), Some(t)) => format!(
            "{who} asked for {} on {dev} during {}; only {} of the {} {} was free.",
            format_size(q),
            event.phase.describe(),
            format_size(f),
            format_size(t),
            if acc.extent_is_cap {
                "allowed"
            } else {
                "device"
            },
        ),
        (Some(q), _, _) => format!(
            "{who} could not allocate {} on {dev} during {}.",
            format_size(q),
            event.phase.describe()
        ),
        (None, Some(f), Some(t)) if event.memory.allowed_bytes.is_some() => format!(
            "{who} wanted {} of the {} {dev} during {}; only {} was free.",
            format_size(event.memory.allowed_bytes.unwrap_or(0)),
            format_size(t),
            event.phase.describe(),
            format_size(f)
        ),
        _ => format!(
            "{who} ran out of memory on {dev} during {}; the message gives no figures.",
            event.phase.describe()
        ),
    }
}

/// A process killed for memory: who killed it, at which limit, and what it
/// held, as far as the text says.
fn kill_summary(event: &OomEvent) -> String {
    let f = &event.facts;
    let victim = f.call.as_deref().unwrap_or(match f.memory_limit {
        Some(MemoryLimit::Job) => "the job",
        Some(MemoryLimit::Container) => "the container",
        None => "the process",
    });
    let killer = match (
        super::causes::memory_monitor(&event.message),
        f.memory_limit,
    ) {
        (Some(monitor), _) => format!("{monitor} stopped"),
        (None, Some(MemoryLimit::Job)) => "The batch scheduler's memory enforcement ended".into(),
        (None, Some(MemoryLimit::Container)) => "The container's memory limit ended".into(),
        (None, None) if f.signal_only_kill => "A SIGKILL ended".into(),
        (None, None) => "The kernel's OOM killer ended".into(),
    };
    let limit = event.memory.allowed_bytes.map_or(String::new(), |b| {
        format!(" at its {} limit", format_size(b))
    });
    let held = event.memory.process_bytes.map_or(String::new(), |b| {
        format!(", holding {} of its own memory", format_size(b))
    });
    let when = event.phase.describe();
    let likely = if f.signal_only_kill && f.memory_limit.is_none() {
        " (most likely the OOM killer: only the signal is shown)"
    } else {
        ""
    };
    format!("{killer} {victim}{limit}{held} during {when}{likely}.")
}

/// The sentence for messages that are not a failed allocation of device
/// memory, where the figures-based sentence would mislead.
fn summary_from_facts(event: &OomEvent) -> Option<String> {
    let f = &event.facts;
    if let Some(shm) = f.shared_memory() {
        return Some(match (shm.required_bytes, shm.limit_bytes) {
            (Some(need), Some(limit)) => format!(
                "A Triton kernel needs {need} bytes ({}) of shared memory per thread block; this GPU allows {limit} ({}). GPU memory did not run out: the kernel's configuration does not fit this GPU.",
                format_size(need),
                format_size(limit)
            ),
            _ => "A Triton kernel needs more shared memory per thread block than this GPU allows. GPU memory did not run out: the kernel's configuration does not fit this GPU.".into(),
        });
    }
    if let Some(SglangCheck::NoKvCacheRoom {
        mem_fraction_static,
    }) = f.sglang()
    {
        let fraction = mem_fraction_static.map_or("mem_fraction_static".into(), |v| {
            format!("mem_fraction_static={v}")
        });
        return Some(format!(
            "SGLang found no room for its KV cache at start-up: {fraction} of the GPU's memory, minus the weights, left nothing for a single token."
        ));
    }
    if f.oom_killer() && !f.compiling {
        return Some(kill_summary(event));
    }
    if f.batch_search_exhausted() {
        return Some("accelerate's find_executable_batch_size halved the batch on every out-of-memory error until it reached zero: even batch size 1 did not fit.".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::causes::testing::{event, GIB, MIB};
    use crate::oom::Framework;

    fn clauses(list: &[(u32, u64)]) -> Option<Vec<ProcessMemory>> {
        Some(
            list.iter()
                .map(|&(pid, bytes)| ProcessMemory { pid, bytes })
                .collect(),
        )
    }

    /// PyTorch 2.1+ figures: total, free, allocated, reserved but unallocated.
    /// Reserved is derived from them, as the parser does.
    fn figures(total: u64, free: u64, allocated: u64, cached: u64) -> MemoryFigures {
        let mut m = MemoryFigures {
            total_bytes: Some(total),
            free_bytes: Some(free),
            allocated_bytes: Some(allocated),
            reserved_unallocated_bytes: Some(cached),
            ..MemoryFigures::default()
        };
        m.derive();
        m
    }

    #[test]
    fn the_only_clause_that_covers_all_used_memory_is_this_process() {
        // A vLLM worker in a container: 22.97 GiB in use by "Process 133288"
        // on a 23.57 GiB card with 0.59 GiB free, 20.4 GiB reserved by
        // PyTorch: nothing else could hold this process's memory.
        let mut m = figures(23_570 * MIB, 606 * MIB, 20_210 * MIB, 186 * MIB);
        m.other_processes = clauses(&[(133288, 22_970 * MIB)]);
        let acc = Accounting::of(&event(Framework::PyTorch, m));
        assert_eq!(acc.self_process.map(|p| p.pid), Some(133288));
        assert!(acc.others.is_empty());
        assert_eq!(acc.bytes(SegmentKind::NonFramework), Some(2_574 * MIB));
    }

    #[test]
    fn a_kill_says_who_killed_at_which_limit() {
        let mut e = event(Framework::Other, MemoryFigures::default());
        e.facts.kind = crate::oom::EventKind::OomKill;
        e.facts.memory_limit = Some(MemoryLimit::Job);
        e.memory.allowed_bytes = Some(64 * GIB);
        let said = summary(&e, &Accounting::of(&e));
        assert!(
            said.starts_with(
                "The batch scheduler's memory enforcement ended the job at its 64.00 GiB limit"
            ),
            "{said}"
        );
        e.facts.memory_limit = None;
        e.memory.allowed_bytes = None;
        e.memory.process_bytes = Some(12 * GIB);
        e.facts.call = Some("python (pid 9)".into());
        let said = summary(&e, &Accounting::of(&e));
        assert!(
            said.starts_with("The kernel's OOM killer ended python (pid 9), holding 12.00 GiB"),
            "{said}"
        );
        // A framework's monitor stops the work before the kernel does.
        e.message = "ray.exceptions.OutOfMemoryError: Task was killed due to the node running low on memory.".into();
        e.facts.call = None;
        e.memory.process_bytes = None;
        let said = summary(&e, &Accounting::of(&e));
        assert!(
            said.starts_with("Ray's memory monitor stopped the process"),
            "{said}"
        );
    }

    #[test]
    fn a_cap_with_no_usage_leaves_free_unknown() {
        // A kill's report: the cgroup's limit, nothing about what was used.
        let m = MemoryFigures {
            allowed_bytes: Some(64 * GIB),
            ..MemoryFigures::default()
        };
        let acc = Accounting::of(&event(Framework::Other, m));
        assert_eq!(acc.extent, Some(64 * GIB));
        assert_eq!(acc.bytes(SegmentKind::Free), None);
        // With what is used, free within the cap is the rest.
        let m = MemoryFigures {
            allowed_bytes: Some(64 * GIB),
            allocated_bytes: Some(60 * GIB),
            ..MemoryFigures::default()
        };
        let acc = Accounting::of(&event(Framework::Other, m));
        assert_eq!(acc.bytes(SegmentKind::Free), Some(4 * GIB));
    }

    #[test]
    fn a_clause_is_another_process_when_this_one_fits_beside_it() {
        // 10 GiB used outside the clause: room for this process's 6 GiB.
        let mut m = figures(24 * GIB, GIB, 5 * GIB, GIB);
        m.other_processes = clauses(&[(7, 9 * GIB)]);
        let acc = Accounting::of(&event(Framework::PyTorch, m));
        assert_eq!(acc.self_process, None);
        assert_eq!(acc.others.len(), 1);
    }

    #[test]
    fn among_several_clauses_the_one_that_holds_the_reserved_memory_is_this_process() {
        // 21 GiB used, all in two clauses; only pid 2 holds the 12 GiB
        // PyTorch reserved.
        let mut m = figures(24 * GIB, 3 * GIB, 11 * GIB, GIB);
        m.other_processes = clauses(&[(1, 4 * GIB), (2, 17 * GIB)]);
        let acc = Accounting::of(&event(Framework::PyTorch, m));
        assert_eq!(acc.self_process.map(|p| p.pid), Some(2));
        assert_eq!(
            acc.others,
            vec![ProcessMemory {
                pid: 1,
                bytes: 4 * GIB
            }]
        );
        // Two clauses that could each be this process decide nothing.
        let mut m = figures(40 * GIB, GIB, 11 * GIB, GIB);
        m.other_processes = clauses(&[(1, 19 * GIB), (2, 20 * GIB)]);
        let acc = Accounting::of(&event(Framework::PyTorch, m));
        assert_eq!(acc.self_process, None);
        assert_eq!(acc.others.len(), 2);
    }
}
