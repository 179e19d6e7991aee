//! Memory outside the framework's allocator: other processes (listed in
//! `Process N has` clauses or inferred from the device's figures), and this
//! process's own memory outside the framework. The accounting has already
//! removed a clause that is this process itself (in a container PyTorch
//! cannot match its own pid) and dropped a broken reading; these rules read
//! what is left. Each is the cause only when the request did not fit what
//! was free.

use super::figures::fits_free;
use super::{pct, CauseId, Ranking, GIB};
use crate::diagnose::accounting::{Accounting, SegmentKind};
use crate::oom::{DeviceKind, OomEvent};
use crate::size::format_size as fs;

/// A fifth of the device held elsewhere is a cause, not background.
fn a_fifth_of(part: u64, total: u64) -> bool {
    part * 5 >= total
}

/// Runs the rules when the request did not fit the free memory (or the
/// free memory is unknown) and the device's size is known.
pub(super) fn outside_the_framework(r: &mut Ranking, event: &OomEvent, acc: &Accounting) {
    let blocked = match (event.memory.requested_bytes, acc.bytes(SegmentKind::Free)) {
        (Some(q), Some(f)) => !fits_free(q, f),
        _ => true,
    };
    let Some(t) = event.memory.total_bytes.filter(|_| blocked) else {
        return;
    };
    other_processes(r, acc, t);
    outside_unattributed(r, acc, t);
    non_framework(r, event, acc, t);
}

/// Other processes hold a fifth of the device: what the figures leave
/// outside this process, which holds the listed clauses and, in a
/// container, processes NVML could not list.
fn other_processes(r: &mut Ranking, acc: &Accounting, t: u64) {
    let listed: u64 = acc.others.iter().map(|p| p.bytes).sum();
    let others = acc.bytes(SegmentKind::OtherProcesses).unwrap_or(0);
    if listed > 0 {
        if a_fifth_of(others, t) {
            let list: Vec<String> = acc
                .others
                .iter()
                .map(|p| format!("pid {} holds {}", p.pid, fs(p.bytes)))
                .collect();
            let unlisted = if others > listed {
                format!(
                    ", and processes the message does not list (another container's) {}",
                    fs(others - listed)
                )
            } else {
                String::new()
            };
            r.add(
                CauseId::OtherProcesses,
                0.85,
                format!(
                    "{}{unlisted} ({} of the device)",
                    list.join(", "),
                    pct(others, t)
                ),
            );
        }
        return;
    }
    if a_fifth_of(others, t) {
        r.add(
            CauseId::OtherProcesses,
            0.85,
            format!(
                "{} of the {} device ({}) is used by neither this process nor its framework: other processes hold it",
                fs(others),
                fs(t),
                pct(others, t)
            ),
        );
    }
}

/// What the device can lose outside the framework's allocator with no other
/// job on it: this process's CUDA context and, on a desktop card, the
/// display. Before CUDA 11.7's lazy loading every kernel of the libraries
/// was loaded into the context, "which took >1000MB" (ptrblck,
/// pytorch/pytorch#107667; pytorch/pytorch#86509 measured 667 MB eager
/// against 287 MB lazy for a bare context, before cuDNN's and cuBLAS's
/// kernels), and the PyTorch 1.x messages that leave this gap unattributed
/// come from those builds. A desktop on the same card adds its display
/// server and compositor (Xorg 28 MiB and gnome-shell 46 MiB in
/// NVIDIA/nvidia-docker#1264) and often a hardware-accelerated browser
/// (2108 MiB in Comfy-Org/ComfyUI_frontend#3272): memory of other processes
/// in the strict sense, but not another job, and the text cannot tell them
/// apart from one.
pub(super) const CONTEXT_AND_DISPLAY: u64 = 2 * GIB;

/// A quarter of the device (and at least 1 GiB) outside the framework, when
/// the message cannot tell this process from others (PyTorch 1.x): another
/// process most likely, this process outside the framework otherwise. Up to
/// what a context and a display take, the gap says nothing of another job:
/// on a small card it is a large share of the device without being a cause,
/// so the other process stays a reading with its check and the figures'
/// other causes lead.
fn outside_unattributed(r: &mut Ranking, acc: &Accounting, t: u64) {
    let Some(outside) = acc.bytes(SegmentKind::OutsideFramework) else {
        return;
    };
    if outside * 4 >= t && (GIB..=CONTEXT_AND_DISPLAY).contains(&outside) {
        r.undecided();
        r.add_checked(
            CauseId::OtherProcesses,
            0.45,
            format!(
                "{} of the {} device ({}) is used outside the framework's allocator: no more than this process's CUDA context and a desktop's display take on their own, so it may or may not be another process",
                fs(outside),
                fs(t),
                pct(outside, t)
            ),
            Some("nvidia-smi while nothing else is started: any process listed besides this one (and the display server) holds the missing memory"),
        );
        return;
    }
    if outside * 4 >= t && outside >= GIB {
        r.add(
            CauseId::OtherProcesses,
            0.75,
            format!(
                "{} of the {} device ({}) is used outside the framework's allocator: far more than a CUDA context, so another process (or another framework in this one) holds it",
                fs(outside),
                fs(t),
                pct(outside, t)
            ),
        );
        r.add(
            CauseId::NonFrameworkMemory,
            0.35,
            "if no other process runs on the GPU, this process holds it outside the framework (another framework, a second model, cuDNN/NCCL buffers)",
        );
    }
}

/// This process holds more outside the framework than a CUDA context needs
/// (1.5 GiB and a tenth of the device). MPS counts its "other allocations"
/// differently: caps::mps_watermark reads them.
fn non_framework(r: &mut Ranking, event: &OomEvent, acc: &Accounting, t: u64) {
    let Some(nf) = acc.bytes(SegmentKind::NonFramework) else {
        return;
    };
    if event.device.kind != DeviceKind::Mps && nf >= (3 * GIB) / 2 && nf * 10 >= t {
        r.add(
            CauseId::NonFrameworkMemory,
            0.7,
            format!(
                "this process holds {} outside the framework's allocator ({} of the device): more than a CUDA context needs",
                fs(nf),
                pct(nf, t)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::oom::ProcessMemory;

    fn ranked(e: &OomEvent) -> Ranking {
        let mut r = Ranking::new();
        outside_the_framework(&mut r, e, &Accounting::of(e));
        r
    }

    /// A modern PyTorch message: 24 GiB device, `free` free, 4 GiB
    /// reserved (3 allocated), this process `process` in all.
    fn modern(free: u64, process: u64, others: Vec<ProcessMemory>) -> OomEvent {
        let mut e = pytorch(24 * GIB, 2 * GIB, free);
        e.memory.reserved_bytes = Some(4 * GIB);
        e.memory.allocated_bytes = Some(3 * GIB);
        e.memory.reserved_unallocated_bytes = Some(GIB);
        e.memory.process_bytes = Some(process);
        e.memory.other_processes = Some(others);
        e
    }

    #[test]
    fn a_listed_process_holding_a_fifth_of_the_device_is_the_cause() {
        let other = ProcessMemory {
            pid: 4242,
            bytes: 15 * GIB,
        };
        let r = ranked(&modern(100 * MIB, 5 * GIB, vec![other]));
        assert_eq!(r.score(CauseId::OtherProcesses), Some(0.85));
    }

    #[test]
    fn memory_beyond_the_listed_processes_is_other_processes_too() {
        // This process 5 GiB and one listed process 2 GiB on a full 24 GiB
        // device: 17 GiB is held by processes the message cannot list.
        let other = ProcessMemory {
            pid: 4242,
            bytes: 2 * GIB,
        };
        let r = ranked(&modern(100 * MIB, 5 * GIB, vec![other]));
        assert_eq!(r.score(CauseId::OtherProcesses), Some(0.85));
        // When this process and the listed ones fill the device, the small
        // listed process is no cause.
        let e = modern(100 * MIB, 24 * GIB - 100 * MIB - 2 * GIB, vec![other]);
        assert!(ranked(&e).score(CauseId::OtherProcesses).is_none());
    }

    #[test]
    fn other_processes_count_only_when_the_request_did_not_fit() {
        let other = ProcessMemory {
            pid: 4242,
            bytes: 10 * GIB,
        };
        let r = ranked(&modern(8 * GIB, 5 * GIB, vec![other]));
        assert!(r.0.is_empty());
    }

    #[test]
    fn this_process_far_beyond_its_allocator_is_non_framework_memory() {
        let r = ranked(&modern(100 * MIB, 20 * GIB, vec![]));
        assert_eq!(r.score(CauseId::NonFrameworkMemory), Some(0.7));
    }

    #[test]
    fn a_gap_a_context_and_a_display_explain_is_only_a_reading() {
        // PyTorch 1.x on a 4 GiB card: 1.2 GiB neither free nor reserved.
        let mut e = pytorch(4 * GIB, 40 * MIB, 0);
        e.memory.reserved_bytes = Some(4 * GIB - 1229 * MIB);
        let r = ranked(&e);
        assert_eq!(r.score(CauseId::OtherProcesses), Some(0.45));
        assert!(r.1);
        // Beyond what a context and a display take, another process leads.
        e.memory.reserved_bytes = Some(GIB);
        let r = ranked(&e);
        assert_eq!(r.score(CauseId::OtherProcesses), Some(0.75));
        assert!(!r.1);
    }

    #[test]
    fn unattributed_memory_outside_the_allocator_points_at_another_process() {
        // PyTorch 1.x: total, free and reserved only.
        let mut e = pytorch(16 * GIB, GIB, 50 * MIB);
        e.memory.reserved_bytes = Some(6 * GIB);
        let r = ranked(&e);
        assert_eq!(r.top(), Some(CauseId::OtherProcesses));
        assert_eq!(r.score(CauseId::NonFrameworkMemory), Some(0.35));
    }
}
