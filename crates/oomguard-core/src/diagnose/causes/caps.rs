//! Configured limits below the device's size: MPS's high-watermark, a
//! per-process memory fraction, and the single-allocation limit of Intel
//! GPUs.

use super::{CauseId, Ranking};
use crate::oom::{DeviceKind, Framework, OomEvent};
use crate::size::format_size as fs;

/// Intel GPUs refuse a single allocation of 4 GiB or more unless the
/// program opts in (intel/compute-runtime, programmers-guide
/// ALLOCATIONS_GREATER_THAN_4GB.md): Level Zero's `maxMemAllocSize` is a
/// little under 2^32 (oneapi-src/level-zero#78), so exactly 4 GiB fails too.
const XPU_MAX_SINGLE_ALLOCATION: u64 = 4 << 30;
/// How Intel's extension for PyTorch states that limit before any figure.
const XPU_LIMIT_STATEMENT: &str = "can NOT allocate memory block with size larger than";
/// Printed figures are rounded to two decimals: within 2% of a cap is at it.
const PRINTED_ROUNDING: f64 = 0.98;
/// A request of a tenth of the cap or more is a sizeable step, not the last
/// small allocation that happened to cross it.
const SIZEABLE_SHARE: u64 = 10;

/// The cap of the device: MPS's watermark on Apple GPUs, else a memory
/// fraction. TensorFlow's BFC `Limit` is the pool the allocator was given
/// (nearly the whole GPU by default), not a cap a user set: the pool rules
/// read it.
pub(super) fn configured_caps(r: &mut Ranking, event: &OomEvent) {
    if event.device.kind == DeviceKind::Mps {
        mps_watermark(r, event);
    } else if event.framework != Framework::TensorFlow {
        memory_fraction(r, event);
    }
}

/// MPS: "other allocations" beyond PyTorch's tensors, and the watermark.
/// PyTorch raises this message when what the device holds for the process
/// (its tensors plus other allocations) and the request exceed the
/// high-watermark cap (`MPSAllocator.mm`, `alloc_buffer_block`), by default
/// 1.7 x the GPU's recommended working set: a small request at the cap is
/// the cap, while a sizeable one is the step or the model, which raising the
/// cap only pushes into swap.
fn mps_watermark(r: &mut Ranking, event: &OomEvent) {
    let m = &event.memory;
    let (Some(a), Some(nf), Some(cap)) =
        (m.allocated_bytes, m.non_framework_bytes, m.allowed_bytes)
    else {
        return;
    };
    let q = m.requested_bytes.unwrap_or(0);
    if nf > a {
        r.add(
            CauseId::NonFrameworkMemory,
            0.85,
            format!(
                "other allocations hold {} against {} of PyTorch tensors, within a cap of {}",
                fs(nf),
                fs(a),
                fs(cap)
            ),
        );
    }
    // Printed figures are rounded: within 2% of the cap is at it.
    if ((a + nf + q) as f64) < cap as f64 * PRINTED_ROUNDING {
        below_the_watermark(r, a, nf, q, cap);
        return;
    }
    let check = Some("rerun with PYTORCH_MPS_HIGH_WATERMARK_RATIO=0.0 and watch Activity Monitor's memory pressure: if it passes without swapping, the cap was the limit");
    if q.saturating_mul(SIZEABLE_SHARE) < cap {
        r.add_checked(
            CauseId::MemoryCap,
            0.8,
            format!(
                "{} allocated + {} other reach the {} high-watermark cap, and a request of only {} crossed it",
                fs(a),
                fs(nf),
                fs(cap),
                fs(q)
            ),
            check,
        );
        return;
    }
    // A tenth of the cap or more in one request: the step itself is large.
    let (id, what) = if a.saturating_mul(4) >= cap.saturating_mul(3) {
        (
            CauseId::ModelTooLarge,
            "the tensors already held are mostly the model's weights",
        )
    } else {
        (
            CauseId::BatchTooLarge,
            "one step's activations (batch, resolution, sequence length) are that request",
        )
    };
    r.add(
        id,
        0.75,
        format!(
            "{} allocated of a {} cap, and one request of {} on top: {what}; a smaller model or step fits, a higher cap only swaps",
            fs(a),
            fs(cap),
            fs(q)
        ),
    );
    r.add_checked(
        CauseId::MemoryCap,
        0.55,
        format!(
            "{} allocated + {} other + {} requested exceeds the {} high-watermark cap",
            fs(a),
            fs(nf),
            fs(q),
            fs(cap)
        ),
        check,
    );
}

/// MPS refusing a request below its watermark: PyTorch raises the same
/// message when Metal itself could not allocate (`MPSAllocator.mm`: the
/// watermark reached, or the device out of memory). An Apple GPU's memory
/// is the Mac's unified memory, shared with every app and the system, so
/// that is the machine's memory running out. With nothing allocated the
/// backend failed outright (see `figures::mps_nothing_allocated`).
fn below_the_watermark(r: &mut Ranking, a: u64, nf: u64, q: u64, cap: u64) {
    if a <= 1 << 20 {
        return;
    }
    // The figures show the cap had room: they outrank what the phase
    // alone suggests (a model being loaded).
    r.add_checked(
        CauseId::HostMemory,
        0.85,
        format!(
            "{} allocated + {} other + {} requested is below the {} high-watermark cap, so Metal itself refused the allocation: the Mac's unified memory, shared with other apps and the system, ran out",
            fs(a),
            fs(nf),
            fs(q),
            fs(cap)
        ),
        Some("watch Activity Monitor's Memory Pressure and swap while it runs: red pressure means the machine's memory, so close other apps or use a smaller model or step"),
    );
}

/// A per-process fraction (set_per_process_memory_fraction) that the
/// reserved memory and the request reach.
fn memory_fraction(r: &mut Ranking, event: &OomEvent) {
    let m = &event.memory;
    let (Some(cap), Some(q)) = (m.allowed_bytes, m.requested_bytes) else {
        return;
    };
    let reserved = m.reserved_bytes.unwrap_or(0);
    if (reserved + q) as f64 >= cap as f64 * PRINTED_ROUNDING {
        r.add(
            CauseId::MemoryCap,
            0.8,
            format!(
                "a cap of {} is set (set_per_process_memory_fraction); {} reserved + {} requested exceeds it",
                fs(cap),
                fs(reserved),
                fs(q)
            ),
        );
    }
}

/// One request at or above the single-allocation limit of Intel GPUs: on
/// an XPU by its size, anywhere when the message states the limit itself.
/// It is the cause when the device had room for the request (free memory,
/// or the live tensors and the request within the device); on a full device
/// it is only a second possibility.
pub(super) fn xpu_single_allocation(r: &mut Ranking, event: &OomEvent) {
    let m = &event.memory;
    let stated = event.message.contains(XPU_LIMIT_STATEMENT);
    if event.device.kind != DeviceKind::Xpu && !stated {
        return;
    }
    let Some(q) = m
        .requested_bytes
        .filter(|&q| q >= XPU_MAX_SINGLE_ALLOCATION || stated)
    else {
        return;
    };
    let room = m.free_bytes.map(|f| f >= q).unwrap_or(false)
        || matches!((m.allocated_bytes, m.total_bytes), (Some(a), Some(t)) if a.saturating_add(q) <= t);
    r.add_checked(
        CauseId::MemoryCap,
        if room { 0.85 } else { 0.45 },
        format!(
            "one request of {} is at or above the 4 GiB Intel GPUs allow for a single allocation unless large allocations are enabled",
            fs(q)
        ),
        Some("rerun with UR_L0_ENABLE_RELAXED_ALLOCATION_LIMITS=1 (and SYCL_PI_LEVEL_ZERO_... on older oneAPI): if it passes, it was the single-allocation limit"),
    );
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn mps_other_allocations_at_the_watermark_are_the_cap() {
        let mut e = pytorch(0, 100 * MIB, 0);
        e.memory.total_bytes = None;
        e.memory.free_bytes = None;
        e.device.kind = DeviceKind::Mps;
        e.memory.allocated_bytes = Some(2 * GIB);
        e.memory.non_framework_bytes = Some(16 * GIB);
        e.memory.allowed_bytes = Some(18 * GIB);
        let mut r = Ranking::new();
        configured_caps(&mut r, &e);
        assert_eq!(r.score(CauseId::MemoryCap), Some(0.8));
        assert_eq!(r.top(), Some(CauseId::NonFrameworkMemory));
        // A sizeable request over the cap: the step or the model leads.
        e.memory.non_framework_bytes = Some(GIB);
        e.memory.requested_bytes = Some(16 * GIB);
        let mut r = Ranking::new();
        configured_caps(&mut r, &e);
        assert_eq!(r.score(CauseId::MemoryCap), Some(0.55));
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        e.memory.allocated_bytes = Some(15 * GIB);
        e.memory.requested_bytes = Some(5 * GIB);
        let mut r = Ranking::new();
        configured_caps(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::ModelTooLarge));
    }

    #[test]
    fn a_small_request_at_the_watermark_within_rounding_is_the_cap() {
        let mut e = pytorch(0, 6 * MIB, 0);
        e.memory.total_bytes = None;
        e.memory.free_bytes = None;
        e.device.kind = DeviceKind::Mps;
        // 8.89 GB + 172.98 MB + 6.25 MB printed against 9.07 GB.
        e.memory.allocated_bytes = Some(8890 * MIB);
        e.memory.non_framework_bytes = Some(173 * MIB);
        e.memory.allowed_bytes = Some(9070 * MIB);
        let mut r = Ranking::new();
        configured_caps(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::MemoryCap));
        assert_eq!(r.score(CauseId::MemoryCap), Some(0.8));
        // Far below the cap: not the cap, Metal itself refused.
        e.memory.allocated_bytes = Some(4000 * MIB);
        let mut r = Ranking::new();
        configured_caps(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::HostMemory));
        assert_eq!(r.score(CauseId::MemoryCap), None);
        // Nothing allocated: the backend failed, a rule of its own.
        e.memory.allocated_bytes = Some(0);
        let mut r = Ranking::new();
        configured_caps(&mut r, &e);
        assert_eq!(r.score(CauseId::HostMemory), None);
    }

    #[test]
    fn a_fraction_reached_within_rounding_is_the_cap_but_not_tensorflow_s_pool() {
        let mut e = pytorch(24 * GIB, 2 * GIB, 10 * GIB);
        e.memory.allowed_bytes = Some(12 * GIB);
        e.memory.reserved_bytes = Some(9 * GIB + GIB * 8 / 10);
        let mut r = Ranking::new();
        configured_caps(&mut r, &e);
        assert_eq!(r.score(CauseId::MemoryCap), Some(0.8));
        e.framework = Framework::TensorFlow;
        let mut r = Ranking::new();
        configured_caps(&mut r, &e);
        assert!(r.0.is_empty());
    }

    #[test]
    fn an_intel_gpu_refuses_one_allocation_above_4_gib() {
        let mut e = pytorch(48 * GIB, 5 * GIB, 40 * GIB);
        e.device.kind = DeviceKind::Xpu;
        let mut r = Ranking::new();
        xpu_single_allocation(&mut r, &e);
        assert_eq!(r.score(CauseId::MemoryCap), Some(0.85));
        // A full device: the limit is only a second possibility.
        let mut full = pytorch(14 * GIB, 4 * GIB, 0);
        full.device.kind = DeviceKind::Xpu;
        full.memory.allocated_bytes = Some(11 * GIB);
        let mut r = Ranking::new();
        xpu_single_allocation(&mut r, &full);
        assert_eq!(r.score(CauseId::MemoryCap), Some(0.45));
        // Exactly 4 GiB is above the limit, which is a little under it.
        e.memory.requested_bytes = Some(4 * GIB);
        let mut r = Ranking::new();
        xpu_single_allocation(&mut r, &e);
        assert_eq!(r.score(CauseId::MemoryCap), Some(0.85));
        e.memory.requested_bytes = Some(3 * GIB);
        let mut r = Ranking::new();
        xpu_single_allocation(&mut r, &e);
        assert!(r.0.is_empty());
        // The extension's own statement of the limit, whatever the device.
        let mut stated = pytorch(16 * GIB, 7 * GIB, 15 * GIB);
        stated.message = "RuntimeError: Current platform can NOT allocate memory block with size larger than 4GB! Tried to allocate 7.62 GiB".into();
        let mut r = Ranking::new();
        xpu_single_allocation(&mut r, &stated);
        assert_eq!(r.score(CauseId::MemoryCap), Some(0.85));
    }
}
