//! Rules over the allocator's figures: the request against what was free,
//! what the cache held free (fragmentation), a first request that takes the
//! device, a working set beyond the device, and the pools of TensorFlow and
//! JAX.

use super::{pct, CauseId, Ranking, GIB};
use crate::diagnose::accounting::{Accounting, SegmentKind};
use crate::oom::{DeviceKind, Framework, OomEvent};
use crate::size::format_size as fs;

/// The allocator's rounding, which the printed figures hide: PyTorch's
/// caching allocator takes requests of 1-10 MiB as 20 MiB segments and
/// rounds larger ones up to 2 MiB (CUDACachingAllocator.cpp kLargeBuffer,
/// kRoundLarge), and printed figures are rounded to two decimals.
const ROUNDING_SLACK: u64 = 20 << 20;

/// True when the request fitted the free memory beyond what rounding
/// hides: equal figures as printed mean the device is simply full.
pub(super) fn fits_free(q: u64, f: u64) -> bool {
    f > q.saturating_add((q / 50).max(ROUNDING_SLACK))
}

/// The cached-but-free score by its share of the device: a few percent is
/// the allocator's normal slack, from 5% on it is memory the workload could
/// have had in one piece.
fn cached_free_score(share: Option<f64>) -> f64 {
    match share {
        Some(s) if s >= 0.05 => 0.85,
        Some(s) if s >= 0.02 => 0.5,
        Some(_) => 0.25,
        None => 0.6,
    }
}

/// The largest request PyTorch's caching allocator serves from its small
/// pool (CUDACachingAllocator.cpp kSmallSize, 1 MiB; small blocks live in
/// 2 MiB segments, kSmallBuffer). The cached-but-free figure is mostly the
/// large pool's, which never serves these requests.
const SMALL_POOL_MAX: u64 = 1 << 20;
/// The segment the allocator reserves for requests of 1-10 MiB
/// (CUDACachingAllocator.cpp kLargeBuffer, 20 MiB): the slack a single
/// partly used segment can hold without anything being wrong.
const LARGE_SEGMENT: u64 = 20 << 20;

/// The slack of a few partly used segments: a running model always keeps
/// several of the 20 MiB segments that hold its 1-10 MiB tensors
/// (kLargeBuffer) partly used, each with up to a segment free. Cached-free
/// bytes beyond the request by less than three of them would, compacted,
/// give the workload this one allocation and nothing after it.
const SEGMENTS_SLACK: u64 = 3 * LARGE_SEGMENT;

/// Whether cached-but-free bytes at least as large as the request point at
/// fragmentation, and how strongly. The allocator splits a cached block for
/// a request and keeps remainders over 1 MiB as free blocks
/// (`should_split`; blocks of `max_split_size_mb` or more are never split),
/// then frees every unsplit segment and retries before raising: what stays
/// cached but free lies in partly used segments. A few partly used
/// segments hold up to a segment of slack each, so cached-free bytes
/// exceeding the request by less than that (`SEGMENTS_SLACK`) are the
/// allocator's ordinary slack on a full device, not memory lost to
/// fragmentation: the workload fills the device, and compacting would not
/// leave room for its next tensor; and a request from the small pool cannot
/// use the large pool's cached bytes at all. Beyond that, the share of the
/// device decides (`cached_free_score`).
fn fragmentation_strength(cf: u64, q: u64, share: Option<f64>) -> Option<f64> {
    if q <= SMALL_POOL_MAX || cf < q || cf == 0 {
        return None;
    }
    let score = cached_free_score(share);
    if cf - q < SEGMENTS_SLACK {
        return Some(score.min(0.45));
    }
    Some(score)
}

/// Fragmentation: the cache holds enough free bytes, but not in one block.
pub(super) fn fragmentation(r: &mut Ranking, event: &OomEvent, acc: &Accounting) {
    let m = &event.memory;
    let (Some(cf), Some(q)) = (acc.bytes(SegmentKind::CachedFree), m.requested_bytes) else {
        return;
    };
    let total = m.total_bytes;
    let reserved = m.reserved_bytes.unwrap_or(0);
    let share = total.map(|t| cf as f64 / t.max(1) as f64);
    if let Some(score) = fragmentation_strength(cf, q, share) {
        // The caching allocator frees every unsplit cached segment and
        // retries before it raises (CUDACachingAllocator.cpp `malloc`:
        // release_available_cached_blocks, then release_cached_blocks),
        // so what the message still counts as cached but free lies in
        // segments partly in use: enough bytes, in pieces.
        r.add_checked(
            CauseId::Fragmentation,
            score,
            format!(
                "{} is cached by the allocator but free ({} of the device), at least the {} requested: the allocator already released what it could, so these bytes lie in pieces of partly used segments, none large enough",
                fs(cf),
                total.map_or("n/a".into(), |t| pct(cf, t)),
                fs(q)
            ),
            None,
        );
    } else if reserved > 0 && cf * 4 >= reserved && cf >= 256 << 20 {
        r.add(
            CauseId::Fragmentation,
            0.4,
            format!(
                "{} of the {} the allocator holds is cached but free ({})",
                fs(cf),
                fs(reserved),
                pct(cf, reserved)
            ),
        );
    }
}

/// The request fitted what the driver reported free and still failed, on a
/// device without a stated cap (MPS and XPU have rules of their own).
pub(super) fn fitted_free_memory(r: &mut Ranking, event: &OomEvent, acc: &Accounting) {
    let (Some(q), Some(f)) = (event.memory.requested_bytes, acc.bytes(SegmentKind::Free)) else {
        return;
    };
    if fits_free(q, f)
        && event.device.kind != DeviceKind::Mps
        && event.memory.allowed_bytes.is_none()
        && event.device.kind != DeviceKind::Xpu
    {
        fitted_free(r, q, f);
    }
}

/// The limit lies where the figures do not look. Without a cap in the text,
/// that is memory another process took and gave back between the failure
/// and the reading, the host (pinned or shared system memory) or the
/// driver; the text cannot tell which.
fn fitted_free(r: &mut Ranking, q: u64, f: u64) {
    let far = f >= q.saturating_mul(2) && f - q >= GIB;
    // Just above the request, the free figure counts every piece the
    // device or pool has left: a request that needs one piece that large
    // can fail on it (a pool's free chunks, the driver's mapped segments).
    // Far above it, pieces do not explain the failure.
    if !far {
        r.add_checked(
            CauseId::Fragmentation,
            0.55,
            format!(
                "{} was free, only a little more than the {} requested: the free figure adds up every piece left, and none was as large as the request",
                fs(f),
                fs(q)
            ),
            Some("rerun with the request halved (half the batch or chunk): if it passes while the free figure stays the same, the free memory was in pieces"),
        );
    }
    let how = if far { "far more than" } else { "more than" };
    r.undecided();
    r.add_checked(
        CauseId::OtherProcesses,
        if far { 0.55 } else { 0.5 },
        format!(
            "{} was free, {how} the {} requested: no cap shows in the text, so the memory was most likely taken by another process for a moment (another job, a second worker) and freed before the figures were read",
            fs(f),
            fs(q)
        ),
        Some("nvidia-smi --query-compute-apps=pid,used_memory --format=csv -l 1 while it runs: another pid whose memory jumps at the failure"),
    );
    r.add_checked(
        CauseId::NotMemory,
        0.45,
        "a driver or runtime refusal reported as out of memory (an old driver, a Windows WDDM limit, a corrupted context after an earlier error)",
        Some("compare torch.version.cuda with the driver version nvidia-smi prints, and rerun with CUDA_LAUNCH_BLOCKING=1"),
    );
    r.add_checked(
        CauseId::MemoryCap,
        0.48,
        "a limit the message does not print: a CUDA MPS memory limit, a scheduler's per-worker GPU share, or a container's device-memory limit refuses allocations while the device has room",
        Some("echo $CUDA_MPS_PINNED_DEVICE_MEM_LIMIT, and look for a per-worker GPU share or memory fraction in the tool's settings"),
    );
    r.add_checked(
        CauseId::HostMemory,
        0.4,
        "pinned (page-locked) host memory or the system memory the driver shares with the GPU can run out while the device has room",
        Some("free -g at the failure: little available host memory points here"),
    );
}

/// Nothing held yet and one request takes a quarter of the device or more:
/// the model (its weights or first layer) is large for this GPU.
pub(super) fn first_request_takes_the_device(r: &mut Ranking, event: &OomEvent) {
    let m = &event.memory;
    if let (Some(0), Some(q), Some(t)) = (m.allocated_bytes, m.requested_bytes, m.total_bytes) {
        if m.reserved_bytes.unwrap_or(0) == 0 && q * 4 >= t && q <= t {
            r.add(
                CauseId::ModelTooLarge,
                0.65,
                format!(
                    "the framework held nothing yet and its first request takes {} ({}) of the {} device: the model is large for this GPU",
                    fs(q),
                    pct(q, t),
                    fs(t)
                ),
            );
        }
    }
}

/// Windows (WDDM) lets allocations spill over into shared system memory: a
/// working set beyond the device. Half again beyond it is the model's.
pub(super) fn spilled_into_shared_memory(r: &mut Ranking, event: &OomEvent) {
    let (Some(a), Some(t)) = (event.memory.allocated_bytes, event.memory.total_bytes) else {
        return;
    };
    if a > t.saturating_add(t / 2) {
        r.add(
            CauseId::ModelTooLarge,
            0.9,
            format!(
                "{} allocated is {:.1}x the device's {}: the Windows driver spilled into shared system memory; a working set that far beyond the GPU is the model's, not one batch's",
                fs(a),
                a as f64 / t as f64,
                fs(t)
            ),
        );
        r.add(
            CauseId::BatchTooLarge,
            0.5,
            "a smaller batch lowers the activations, but the rest still exceeds the GPU",
        );
    } else if a > t {
        r.add(
            CauseId::BatchTooLarge,
            0.9,
            format!(
                "{} allocated exceeds the device's {}: the Windows driver spilled into shared system memory before failing",
                fs(a),
                fs(t)
            ),
        );
    }
}

/// Nothing allocated on MPS and a tiny request refused: the Metal backend
/// failed to allocate, which is not a shortage (an old macOS or torch, a VM
/// without a Metal device).
pub(super) fn mps_nothing_allocated(r: &mut Ranking, event: &OomEvent) {
    let m = &event.memory;
    if let (Some(a), Some(q)) = (m.allocated_bytes, m.requested_bytes) {
        if a <= 1 << 20 && q <= 1 << 20 && m.non_framework_bytes.unwrap_or(0) <= 1 << 20 {
            r.add(
                CauseId::NotMemory,
                0.85,
                format!(
                    "nothing is allocated ({}) and a request of {} was refused: the Metal backend could not allocate at all, which is not a shortage (the macOS or torch version, or a machine without a usable Metal device)",
                    fs(a),
                    fs(q)
                ),
            );
        }
    }
}

/// TensorFlow's and JAX's pools: a pool TensorFlow could not reserve at
/// start, and, from the BFC allocator's own figures, a full pool against a
/// split one.
pub(super) fn tensorflow_pool(r: &mut Ranking, event: &OomEvent) {
    if event.facts.pool_reservation() {
        r.add(
            CauseId::OtherProcesses,
            0.7,
            match event.memory.requested_bytes {
                Some(q) => format!("TensorFlow could not reserve its {} memory pool at start: another process (a notebook kernel, a previous run) holds the GPU", fs(q)),
                None => "TensorFlow could not reserve its memory pool at start: another process holds the GPU".into(),
            },
        );
    }
    let m = &event.memory;
    match (m.allowed_bytes, m.allocated_bytes, m.requested_bytes) {
        // The pool's own figures decide: live tensors plus the request
        // beyond the pool is a full pool, within it a split one.
        (Some(limit), Some(in_use), Some(q)) if event.framework == Framework::TensorFlow => {
            if q > limit {
                // One request beyond the whole pool: no tensor freed would
                // make room. TensorFlow's pool is what was free on the GPU
                // when it started, times per_process_gpu_memory_fraction
                // (gpu_options; TF-TRT hands the rest to TensorRT).
                r.add_checked(
                    CauseId::MemoryCap,
                    0.7,
                    format!(
                        "the {} request is larger than the allocator's whole pool of {} ({} in use): the pool was capped (a memory fraction, memory another process or TensorRT held when TensorFlow started), or the request is too large for this GPU",
                        fs(q),
                        fs(limit),
                        fs(in_use)
                    ),
                    Some("compare the dump's Limit with the GPU's memory (nvidia-smi): a Limit well below it is a fraction (gpu_options.per_process_gpu_memory_fraction) or memory others held at start"),
                );
                r.add(
                    CauseId::BatchTooLarge,
                    0.6,
                    "if the pool spans the GPU, the one request is too large: a smaller batch or input shrinks it",
                );
            } else if in_use.saturating_add(q) > limit {
                r.add(
                    CauseId::BatchTooLarge,
                    0.7,
                    format!(
                        "the allocator's pool of {} holds {} of live tensors; the {} request does not fit the rest: the pool is full, not fragmented",
                        fs(limit),
                        fs(in_use),
                        fs(q)
                    ),
                );
            } else {
                r.add(
                    CauseId::Fragmentation,
                    0.75,
                    format!(
                        "live tensors hold {} of the {} pool, so the {} request fits its free bytes, but not in one chunk",
                        fs(in_use),
                        fs(limit),
                        fs(q)
                    ),
                );
            }
        }
        // The BFC allocator's "If the cause is memory fragmentation maybe
        // ... TF_GPU_ALLOCATOR=cuda_malloc_async" follows every failure it
        // logs (bfc_allocator.cc prints it unconditionally): a standing
        // hint, no evidence of a split pool.
        _ => {}
    }
}

/// How the XLA/TensorFlow BFC allocator refuses a request its pool cannot
/// serve (`RESOURCE_EXHAUSTED: Failed to allocate request for 176.00MiB
/// (184549376B) on device ordinal 0`).
const POOL_REQUEST_REFUSED: &str = "Failed to allocate request for";

/// What JAX's default fraction (75%, XLA_PYTHON_CLIENT_MEM_FRACTION) holds
/// back on a 16 GiB card, the smallest common training card (T4, V100 16
/// GB): a single request above it does not come from the fraction there.
const FRACTION_HEADROOM_OF_A_16_GIB_CARD: u64 = 4 << 30;

/// The BFC pool refused a request and the message states no figure of the
/// device. The pool is smaller than the GPU: JAX preallocates a fixed
/// fraction of it (75% by default, XLA_PYTHON_CLIENT_MEM_FRACTION; JAX's
/// "GPU memory allocation" notes), TensorFlow grabs what was free when it
/// started, so another process running then shrinks it. The text cannot
/// decide; each candidate carries its check.
///
/// Only on a GPU: on a device left unknown (a TPU named around the failure,
/// or no device named at all) neither reason is known to hold, and a TPU's
/// memory belongs to one process with no fraction held back, so there the
/// program itself did not fit.
pub(super) fn xla_pool_request(r: &mut Ranking, event: &OomEvent) {
    if !event.message.contains(POOL_REQUEST_REFUSED) || event.device.kind == DeviceKind::Unknown {
        return;
    }
    r.undecided();
    let others = Some("nvidia-smi --query-compute-apps=pid,used_memory --format=csv before the program starts: memory another process holds is missing from the pool");
    let large = event
        .memory
        .requested_bytes
        .is_some_and(|q| q > FRACTION_HEADROOM_OF_A_16_GIB_CARD);
    if event.framework == Framework::Jax && large {
        // One array of many GiB is the work's own size: a batch's
        // activations, or whole weights, at once. The fraction held back
        // would not hold it on common cards.
        let q = fs(event.memory.requested_bytes.unwrap_or(0));
        r.add_checked(
            CauseId::BatchTooLarge,
            0.55,
            format!("one array of {q} in a single request is the step's own size (batch x sequence or image size); raising JAX's fraction from 75% gives at most a quarter of the GPU more"),
            Some("rerun with half the batch or input length: the failing request should halve"),
        );
        r.add_checked(
            CauseId::ModelTooLarge,
            0.5,
            format!("if the input is already small, an array of {q} is the model's own (a weight or an optimizer state made at once)"),
            Some("the sizes of the largest parameters: jax.tree_util.tree_map(lambda x: x.nbytes, params)"),
        );
    }
    if event.framework == Framework::Jax {
        r.add_checked(
            CauseId::MemoryCap,
            if large { 0.45 } else { 0.5 },
            "JAX's pool is the fraction of the GPU it preallocated (75% by default): the request did not fit what is left of that fraction",
            Some("echo $XLA_PYTHON_CLIENT_MEM_FRACTION $XLA_PYTHON_CLIENT_PREALLOCATE; the GPU's total against the fraction; cuDNN and cuBLAS need room outside the pool"),
        );
        r.add_checked(
            CauseId::OtherProcesses,
            0.48,
            "another process on the GPU leaves the fraction less room than it assumes",
            others,
        );
    } else {
        r.add_checked(
            CauseId::OtherProcesses,
            0.5,
            "TensorFlow sizes its pool from the memory free when it started: another process on the GPU (a notebook kernel, a previous run) makes the pool small",
            others,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::oom::MemoryFigures;

    fn acc(e: &OomEvent) -> Accounting {
        Accounting::of(e)
    }

    #[test]
    fn a_refused_pool_request_is_jax_s_fraction_or_tensorflow_s_neighbours() {
        let mut e = event(Framework::Jax, MemoryFigures::default());
        e.message = "RESOURCE_EXHAUSTED: Failed to allocate request for 176.00MiB (184549376B) on device ordinal 0".into();
        let mut r = Ranking::new();
        xla_pool_request(&mut r, &e);
        assert!(r.1);
        assert_eq!(r.top(), Some(CauseId::MemoryCap));
        e.framework = Framework::TensorFlow;
        let mut r = Ranking::new();
        xla_pool_request(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::OtherProcesses));
        // On a TPU neither the fraction nor a neighbour holds the memory.
        e.device.kind = DeviceKind::Unknown;
        let mut r = Ranking::new();
        xla_pool_request(&mut r, &e);
        assert!(r.0.is_empty());
        e.device.kind = DeviceKind::Cuda;
        // Many GiB in one request are the work's own size first.
        e.framework = Framework::Jax;
        e.message = "RESOURCE_EXHAUSTED: Failed to allocate request for 35.58GiB (38204550232B) on device ordinal 0".into();
        e.memory.requested_bytes = Some(38204550232);
        let mut r = Ranking::new();
        xla_pool_request(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        assert!(r.score(CauseId::MemoryCap).is_some());
        e.message = "Resource exhausted: OOM when allocating tensor".into();
        let mut r = Ranking::new();
        xla_pool_request(&mut r, &e);
        assert!(r.0.is_empty());
    }

    #[test]
    fn the_bfc_allocator_s_standing_fragmentation_hint_is_no_evidence() {
        // bfc_allocator.cc prints the hint after every failure it logs.
        let mut e = event(
            Framework::TensorFlow,
            MemoryFigures {
                requested_bytes: Some(77070336),
                ..MemoryFigures::default()
            },
        );
        e.message = "Allocator (GPU_0_bfc) ran out of memory trying to allocate 73.50MiB (rounded to 77070336)requested by op Mul\nIf the cause is memory fragmentation maybe the environment variable 'TF_GPU_ALLOCATOR=cuda_malloc_async' will improve the situation.".into();
        let mut r = Ranking::new();
        tensorflow_pool(&mut r, &e);
        assert_eq!(r.score(CauseId::Fragmentation), None);
    }

    #[test]
    fn equal_figures_as_printed_are_a_full_device_not_a_fit() {
        assert!(!fits_free(GIB, GIB + 10 * MIB));
        assert!(fits_free(GIB, 2 * GIB));
        assert!(!fits_free(10 * GIB, 10 * GIB + 100 * MIB));
    }

    #[test]
    fn cached_free_bytes_that_cover_the_request_are_fragmentation_by_their_share() {
        let mut e = pytorch(24 * GIB, GIB, 10 * MIB);
        e.memory.reserved_bytes = Some(20 * GIB);
        e.memory.allocated_bytes = Some(16 * GIB);
        e.memory.reserved_unallocated_bytes = Some(4 * GIB);
        let mut r = Ranking::new();
        fragmentation(&mut r, &e, &acc(&e));
        assert_eq!(r.score(CauseId::Fragmentation), Some(0.85));
        assert_eq!(cached_free_score(Some(0.03)), 0.5);
        assert_eq!(cached_free_score(Some(0.01)), 0.25);
        assert_eq!(cached_free_score(None), 0.6);
        // Less cached than requested: fragmentation only as a weak hint.
        e.memory.requested_bytes = Some(6 * GIB);
        e.memory.reserved_bytes = Some(16 * GIB);
        e.memory.allocated_bytes = Some(12 * GIB);
        let mut r = Ranking::new();
        fragmentation(&mut r, &e, &acc(&e));
        assert_eq!(r.score(CauseId::Fragmentation), Some(0.4));
    }

    #[test]
    fn a_request_that_fitted_the_free_memory_leaves_the_cause_undecided() {
        let e = pytorch(24 * GIB, GIB, 8 * GIB);
        let mut r = Ranking::new();
        fitted_free_memory(&mut r, &e, &acc(&e));
        assert!(r.1);
        assert_eq!(r.top(), Some(CauseId::OtherProcesses));
        assert!(r.0.iter().all(|c| c.check.is_some()));
        // A stated cap explains it: the cap rules speak instead.
        let mut capped = pytorch(24 * GIB, GIB, 8 * GIB);
        capped.memory.allowed_bytes = Some(12 * GIB);
        let mut r = Ranking::new();
        fitted_free_memory(&mut r, &capped, &acc(&capped));
        assert!(r.0.is_empty());
        // Just above the request (11.35 GiB asked, 12.18 GiB free): the
        // free memory in pieces leads the same differential.
        let near = pytorch(24 * GIB, 11622 * MIB, 12472 * MIB);
        let mut r = Ranking::new();
        fitted_free_memory(&mut r, &near, &acc(&near));
        assert!(r.1);
        assert_eq!(r.top(), Some(CauseId::Fragmentation));
        assert!(r.0.iter().all(|c| c.check.is_some()));
    }

    #[test]
    fn a_first_request_of_a_quarter_of_the_device_is_the_model() {
        let mut e = pytorch(16 * GIB, 6 * GIB, 2 * GIB);
        e.memory.allocated_bytes = Some(0);
        let mut r = Ranking::new();
        first_request_takes_the_device(&mut r, &e);
        assert_eq!(r.score(CauseId::ModelTooLarge), Some(0.65));
        e.memory.requested_bytes = Some(GIB);
        let mut r = Ranking::new();
        first_request_takes_the_device(&mut r, &e);
        assert!(r.0.is_empty());
    }

    #[test]
    fn a_working_set_beyond_the_device_is_the_batch_and_far_beyond_the_model() {
        let mut e = pytorch(8 * GIB, GIB, 0);
        e.memory.allocated_bytes = Some(9 * GIB);
        let mut r = Ranking::new();
        spilled_into_shared_memory(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        e.memory.allocated_bytes = Some(20 * GIB);
        let mut r = Ranking::new();
        spilled_into_shared_memory(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::ModelTooLarge));
    }

    #[test]
    fn a_tiny_refused_request_on_an_empty_mps_device_is_not_memory() {
        let mut e = event(
            Framework::PyTorch,
            MemoryFigures {
                allocated_bytes: Some(0),
                requested_bytes: Some(4096),
                ..MemoryFigures::default()
            },
        );
        e.device.kind = DeviceKind::Mps;
        let mut r = Ranking::new();
        mps_nothing_allocated(&mut r, &e);
        assert_eq!(r.score(CauseId::NotMemory), Some(0.85));
    }

    #[test]
    fn the_bfc_pool_figures_tell_a_full_pool_from_a_split_one() {
        let pool = |in_use: u64| {
            event(
                Framework::TensorFlow,
                MemoryFigures {
                    allowed_bytes: Some(10 * GIB),
                    allocated_bytes: Some(in_use),
                    requested_bytes: Some(GIB),
                    ..MemoryFigures::default()
                },
            )
        };
        let mut r = Ranking::new();
        tensorflow_pool(&mut r, &pool(9 * GIB + GIB / 2));
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        let mut r = Ranking::new();
        tensorflow_pool(&mut r, &pool(4 * GIB));
        assert_eq!(r.top(), Some(CauseId::Fragmentation));
        // One request beyond the whole pool: the pool's size is the question.
        let mut e = pool(4 << 20);
        e.memory.requested_bytes = Some(11 * GIB);
        let mut r = Ranking::new();
        tensorflow_pool(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::MemoryCap));
    }

    #[test]
    fn cached_bytes_just_above_the_request_or_for_the_small_pool_are_slack() {
        // The small pool never uses the large pool's cached bytes.
        assert_eq!(
            fragmentation_strength(100 * MIB, 512 << 10, Some(0.1)),
            None
        );
        // Less than a large segment beyond the request: ordinary slack.
        assert_eq!(
            fragmentation_strength(210 * MIB, 200 * MIB, Some(0.06)),
            Some(0.45)
        );
        // A few segments beyond it (551 MiB cached for 512 MiB asked on an
        // 8 GiB card): still the slack of a full device.
        assert_eq!(
            fragmentation_strength(551 * MIB, 512 * MIB, Some(0.07)),
            Some(0.45)
        );
        // Far beyond it, the share decides.
        assert_eq!(
            fragmentation_strength(8 * GIB, 6 * GIB, Some(0.3)),
            Some(0.85)
        );
        assert_eq!(
            fragmentation_strength(737 * MIB, 546 * MIB, Some(0.05)),
            Some(0.85)
        );
        assert_eq!(fragmentation_strength(MIB, 2 * MIB, Some(0.3)), None);
    }
}
