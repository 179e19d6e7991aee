//! Ranking the causes of one event from its figures, its phase and its
//! framework. Each rule adds a cause with a score and the numbers behind it;
//! a cause added twice keeps its highest score. The rules read the figures,
//! never the source of a particular message.

use super::accounting::{Accounting, SegmentKind};
use super::{Cause, CauseId};
use crate::oom::{
    DeviceKind, Framework, OomEvent, Phase, SglangCheck, SharedMemoryLimit, VllmCheck,
};
use crate::size::format_size as fs;

const GIB: u64 = 1 << 30;
/// A request this large (1 PiB) exceeds any single device or host.
const ABSURD_BYTES: u64 = 1 << 50;
/// A single host allocation this large (64 GiB) exceeds most machines' RAM
/// and is more often a size computed wrong than a real need.
const HOST_SUSPECT_BYTES: u64 = 64 << 30;
/// Intel GPUs refuse a single allocation above 4 GiB unless the program
/// opts in (intel/compute-runtime, programmers-guide
/// ALLOCATIONS_GREATER_THAN_4GB.md).
const XPU_MAX_SINGLE_ALLOCATION: u64 = 4 << 30;
/// No GPU holds a terabyte (the largest, MI325X and B300, hold 256 and
/// 288 GB): a device request this large is a size computed wrong.
const DEVICE_INVALID_BYTES: u64 = 1 << 40;

/// The allocator's rounding, which the printed figures hide: PyTorch's
/// caching allocator takes requests of 1-10 MiB as 20 MiB segments and
/// rounds larger ones up to 2 MiB (CUDACachingAllocator.cpp kLargeBuffer,
/// kRoundLarge), and printed figures are rounded to two decimals.
const ROUNDING_SLACK: u64 = 20 << 20;

/// True when the request fitted the free memory beyond what rounding
/// hides: equal figures as printed mean the device is simply full.
fn fits_free(q: u64, f: u64) -> bool {
    f > q.saturating_add((q / 50).max(ROUNDING_SLACK))
}

/// The request fitted what the driver reported free and still failed: the
/// limit lies where the figures do not look. Without a cap in the text,
/// that is memory another process took and gave back between the failure
/// and the reading, the host (pinned or shared system memory) or the
/// driver; the text cannot tell which.
fn fitted_free(r: &mut Ranking, event: &OomEvent, q: u64, f: u64) {
    let far = f >= q.saturating_mul(2) && f - q >= GIB;
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
    let _ = event;
}

/// Nothing allocated on MPS and a tiny request refused: the Metal backend
/// failed to allocate, which is not a shortage (an old macOS or torch, a VM
/// without a Metal device).
fn mps_nothing_allocated(r: &mut Ranking, event: &OomEvent) {
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

struct Ranking(Vec<Cause>, bool);

impl Ranking {
    fn add(&mut self, id: CauseId, score: f64, evidence: impl Into<String>) {
        self.add_checked(id, score, evidence, None);
    }

    /// Adds a cause with the check that tells it apart from the others.
    fn add_checked(
        &mut self,
        id: CauseId,
        score: f64,
        evidence: impl Into<String>,
        check: Option<&str>,
    ) {
        let score = (score.clamp(0.0, 1.0) * 100.0).round() / 100.0;
        let check = check.map(str::to_string);
        match self.0.iter_mut().find(|c| c.id == id) {
            Some(c) if c.score >= score => {}
            Some(c) => {
                c.score = score;
                c.evidence = evidence.into();
                c.check = check;
            }
            None => self.0.push(Cause {
                id,
                score,
                evidence: evidence.into(),
                check,
            }),
        }
    }

    /// Marks the event as one whose text covers several causes.
    fn undecided(&mut self) {
        self.1 = true;
    }
}

/// The ranked causes, and whether the text itself leaves them open.
pub(super) struct Ranked {
    pub causes: Vec<Cause>,
    pub undecided: bool,
}

/// How far the ranking decides: low when a rule said the text cannot tell
/// the causes apart or the first two are within 0.1; high when the first
/// leads by 0.25 or more at 0.8 or above; medium otherwise.
pub(super) fn confidence(causes: &[Cause], undecided: bool) -> super::Confidence {
    use super::Confidence;
    let top = causes.first().map_or(0.0, |c| c.score);
    let second = causes.get(1).map_or(0.0, |c| c.score);
    if undecided || top < 0.5 || top - second < 0.1 {
        Confidence::Low
    } else if top >= 0.8 && top - second >= 0.25 {
        Confidence::High
    } else {
        Confidence::Medium
    }
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "n/a".into();
    }
    format!("{:.0}%", part as f64 * 100.0 / whole as f64)
}

/// Weighs in what the process's memory did before it failed.
pub(super) fn from_trend(causes: &mut Vec<Cause>, trend: Option<super::trend::MemoryTrend>) {
    use super::trend::MemoryTrend;
    let mut r = Ranking(std::mem::take(causes), false);
    match trend {
        Some(MemoryTrend::Climbing { from_bytes, to_bytes, seconds }) => r.add(
            CauseId::LeftoverTensors,
            0.9,
            format!(
                "GPU memory climbed from {} to {} over {seconds:.0} s, step after step: tensors from earlier steps stay alive (a smaller batch only delays the OOM)",
                fs(from_bytes),
                fs(to_bytes)
            ),
        ),
        Some(MemoryTrend::SpikeAtStart { peak_bytes, seconds_to_peak }) => r.add(
            CauseId::BatchTooLarge,
            0.75,
            format!(
                "memory reached {} within {seconds_to_peak:.1} s and stayed flat: the first step already needs it all",
                fs(peak_bytes)
            ),
        ),
        None => {}
    }
    *causes = r.0;
}

pub(super) fn rank(event: &OomEvent, acc: &Accounting) -> Ranked {
    let mut r = Ranking(Vec::new(), false);
    rank_into(&mut r, event, acc);
    Ranked {
        causes: r.0,
        undecided: r.1,
    }
}

fn rank_into(r: &mut Ranking, event: &OomEvent, acc: &Accounting) {
    let m = &event.memory;
    // Messages whose meaning the facts fix entirely: the phase rules below
    // would add a batch cause, which is wrong for each of them.
    if let Some(shm) = event.facts.shared_memory() {
        shared_memory(r, shm);
        return;
    }
    if let Some(check) = event.facts.sglang() {
        sglang(r, check);
        return;
    }
    if event.facts.batch_search_exhausted() {
        batch_search_exhausted(r);
        return;
    }
    if event.facts.absurd_request {
        r.add(
            CauseId::InvalidSize,
            0.95,
            "the request is over 1 EB: a negative or overflowed size computed upstream, not a capacity problem",
        );
    }
    // No device or host holds a petabyte: such a request is a size computed
    // wrong (an overflow, a corrupted shape), not a capacity problem.
    if m.requested_bytes.is_some_and(|q| q >= ABSURD_BYTES) && !event.facts.absurd_request {
        r.add(
            CauseId::InvalidSize,
            0.95,
            format!("the request of {} is larger than any device or host: a size computed wrong (overflow, corrupted shape)", fs(m.requested_bytes.unwrap_or(0))),
        );
    }
    if let Some(q) = m.requested_bytes.filter(|&q| {
        (DEVICE_INVALID_BYTES..ABSURD_BYTES).contains(&q) && event.device.kind != DeviceKind::Cpu
    }) {
        r.add(
            CauseId::InvalidSize,
            0.9,
            format!("one device allocation of {} is more than any GPU holds: a size computed wrong (an overflowed shape, a wrong dimension)", fs(q)),
        );
    }
    if let Some(check) = event.facts.vllm() {
        vllm(r, check, event);
    }
    if let (Some(engine), Framework::PyTorch) = (event.facts.serving_engine, event.framework) {
        let (name, knob) = engine.name_and_knob();
        r.add_checked(
            CauseId::MemoryCap,
            0.7,
            format!("{name} reserves {knob} x the GPU up front for the weights and the KV cache; a step that needs more than its profiled peak (CUDA-graph capture, the sampler, a long prompt) finds only the rest"),
            Some("the engine's start-up lines: the memory it profiled, the KV cache size, and the share it was given"),
        );
        r.add(
            CauseId::KvCache,
            0.55,
            format!("a smaller KV cache (lower {knob}, shorter maximum length, fewer sequences at once) leaves the headroom the failing step needs"),
        );
    }
    if event.facts.model_state_frames {
        r.add(
            CauseId::ModelTooLarge,
            0.8,
            "the traceback shows parameters being gathered or weights being built: the model's states, not the batch, take the memory",
        );
    }
    if event.device.kind == DeviceKind::Mps {
        mps_nothing_allocated(r, event);
    }
    if event.facts.oom_killer() || event.device.kind == DeviceKind::Cpu {
        host(r, event);
    }
    match event.framework {
        Framework::Cublas | Framework::Cudnn | Framework::Nccl => library(r, event),
        Framework::LlamaCpp => llama(r, event),
        Framework::TensorFlow | Framework::Jax => tensorflow(r, event),
        _ => {}
    }
    figures(r, event, acc);
    by_phase(r, event, acc);
    if r.0.is_empty() {
        bare_failure(r, event);
    }
}

/// A failure with no figures and no phase: the text covers several causes
/// and cannot rank them; each gets the check that tells it apart. The batch
/// is the most common cause of these on real reports (19 of 33 bare
/// failures in the development corpus accept it, 11 the model, 11 another
/// process), so it leads by a hair; a compiler running out (LLVM) is
/// usually not the device's memory at all.
fn bare_failure(r: &mut Ranking, event: &OomEvent) {
    r.undecided();
    if event.message.contains("LLVM") {
        r.add(
            CauseId::NotMemory,
            0.6,
            "LLVM ran out while compiling a kernel: a driver or toolchain fault far more often than a full device",
        );
        r.add(
            CauseId::HostMemory,
            0.45,
            "the compiler runs in host memory: a machine short of RAM fails here too",
        );
        return;
    }
    r.add(
        CauseId::BatchTooLarge,
        0.45,
        "the message gives no figures; in a training or batched loop the batch (or sequence, image size) is the usual cause",
    );
    r.add(
        CauseId::ModelTooLarge,
        0.42,
        "if it fails on the first step, or at any batch size, the model itself does not fit next to what else the device holds",
    );
    r.add(
        CauseId::OtherProcesses,
        0.4,
        "another process (a second job, a notebook kernel, a previous run) may hold the device",
    );
    r.add(
        CauseId::LeftoverTensors,
        0.25,
        "if it fails only after some steps, tensors from earlier steps are kept alive",
    );
    r.add(
        CauseId::MultipleModels,
        0.2,
        "a second model or inference session on the same device halves what each gets",
    );
    if matches!(event.framework, Framework::TensorFlow | Framework::Jax) {
        r.add(
            CauseId::Fragmentation,
            0.2,
            "the framework's pool can hold enough free bytes in pieces too small for one tensor",
        );
    }
}

fn vllm(r: &mut Ranking, check: &VllmCheck, event: &OomEvent) {
    match check {
        VllmCheck::NoCacheBlocks => {
            // vLLM sizes the KV cache as gpu_memory_utilization x the GPU,
            // minus the weights and the profiled activations (worker
            // `determine_num_available_blocks`): the cap and what the
            // KV cache needs come first; the weights only when they alone
            // exceed the cap, which the check's text does not show.
            r.add(
                CauseId::MemoryCap,
                0.7,
                "after the weights and one profiled batch, nothing was left within gpu_memory_utilization for the KV cache: the cap is too low for this model on this GPU",
            );
            r.add(
                CauseId::KvCache,
                0.6,
                "the KV cache gets only what the weights and the profiled batch leave: --max-num-seqs and --max-model-len size that batch",
            );
            r.add(
                CauseId::ModelTooLarge,
                0.45,
                "if the weights alone exceed gpu_memory_utilization x the GPU (the 'Loading model weights took' line), no cap helps: shard or quantize",
            );
        }
        VllmCheck::MaxLenExceedsKvCache {
            max_model_len,
            kv_tokens,
            needed_bytes,
            available_bytes,
            ..
        } => {
            let evidence = match (max_model_len, kv_tokens, needed_bytes, available_bytes) {
                (Some(len), Some(tok), _, _) => {
                    format!("one sequence of max_model_len {len} tokens needs more KV cache than the {tok} tokens that fit")
                }
                (Some(len), _, Some(n), Some(a)) => format!(
                    "one sequence of {len} tokens needs {} of KV cache; {} is available",
                    fs(*n),
                    fs(*a)
                ),
                _ => "the model's maximum length needs more KV cache than is available".into(),
            };
            r.add(CauseId::KvCache, 0.85, evidence);
            r.add(
                CauseId::MemoryCap,
                0.45,
                "gpu_memory_utilization limits the memory left for the KV cache",
            );
        }
        VllmCheck::FreeBelowUtilization { utilization } => {
            let m = &event.memory;
            // Missing by a sliver (under 5% of the GPU): the target leaves too
            // little for this process's own CUDA context and libraries.
            if let (Some(f), Some(t), Some(a)) = (m.free_bytes, m.total_bytes, m.allowed_bytes) {
                let short = a.saturating_sub(f);
                if short * 20 < t {
                    r.add(
                        CauseId::MemoryCap,
                        0.8,
                        format!(
                            "gpu_memory_utilization {} asks for {} of the whole GPU, only {} more than the {} free: a slightly lower target fits",
                            utilization.map_or("n/a".into(), |u| u.to_string()),
                            fs(a),
                            fs(short),
                            fs(f)
                        ),
                    );
                    let used = t.saturating_sub(f);
                    // A few GiB is this process's CUDA context and libraries;
                    // more is other processes on the GPU.
                    if used > 4 * GIB {
                        r.add(
                            CauseId::OtherProcesses,
                            0.7,
                            format!("{} of the GPU is held before vLLM starts: other processes (or a previous engine)", fs(used)),
                        );
                    } else {
                        r.add(
                            CauseId::NonFrameworkMemory,
                            0.5,
                            format!("{} of the GPU is in use before vLLM starts (CUDA context, libraries)", fs(used)),
                        );
                    }
                    return;
                }
            }
            let evidence = match (m.free_bytes, m.total_bytes, m.allowed_bytes) {
                (Some(f), Some(t), Some(a)) => format!(
                    "only {} of {} was free at start-up; gpu_memory_utilization asks for {}: {} is held by other processes (or a previous engine)",
                    fs(f),
                    fs(t),
                    fs(a),
                    fs(t.saturating_sub(f))
                ),
                _ => "free memory at start-up is below what gpu_memory_utilization asks for".into(),
            };
            r.add(CauseId::OtherProcesses, 0.8, evidence);
            r.add(
                CauseId::MemoryCap,
                0.5,
                format!(
                    "gpu_memory_utilization {} is a share of the whole GPU, not of its free memory",
                    utilization.map_or("n/a".into(), |u| u.to_string())
                ),
            );
        }
    }
}

/// Opt-in shared memory per thread block, in bytes, by the GPU class that
/// has it (NVIDIA CUDA C Programming Guide, "Technical Specifications per
/// Compute Capability": maximum shared memory per block, opt-in). AMD
/// Instinct GPUs (CDNA 1-3) have 64 KiB of LDS per compute unit (AMD CDNA3
/// ISA reference guide), which Triton reports as the same 65536.
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

/// The GPU class a shared-memory limit points at, when it is a known one.
pub(super) fn shared_memory_gpu_class(limit: u64) -> Option<&'static str> {
    SHARED_MEMORY_LIMITS
        .iter()
        .find(|(bytes, _)| *bytes == limit)
        .map(|(_, class)| *class)
}

fn shared_memory(r: &mut Ranking, shm: &SharedMemoryLimit) {
    let evidence = match (shm.required_bytes, shm.limit_bytes) {
        (Some(need), Some(limit)) => {
            let class = shared_memory_gpu_class(limit)
                .map(|c| format!(" (a limit of {limit} bytes is that of {c})"))
                .unwrap_or_default();
            format!(
                "the kernel needs {need} bytes of shared memory per block, the GPU allows {limit}{class}: this is on-chip memory, not GPU memory; a smaller batch does not help"
            )
        }
        _ => "a Triton kernel needs more shared memory per block than the GPU allows: this is on-chip memory, not GPU memory; a smaller batch does not help".into(),
    };
    r.add(CauseId::NotMemory, 0.95, evidence);
}

fn sglang(r: &mut Ranking, check: &SglangCheck) {
    let SglangCheck::NoKvCacheRoom {
        mem_fraction_static,
    } = check;
    let fraction = mem_fraction_static.map_or("mem_fraction_static".to_string(), |f| {
        format!("mem_fraction_static={f}")
    });
    // SGLang sizes its KV pool as what is left of mem_fraction_static x the
    // GPU after the weights (model_runner.py profile_max_num_token): the
    // check fails when that is nothing. The cap is the direct cause and
    // raising it the direct fix, so memory_cap leads; when the weights nearly
    // fill the GPU no cap helps, so model_too_large follows; the KV cache
    // itself is not too large, it got no room at all, so it comes last.
    r.add(
        CauseId::MemoryCap,
        0.8,
        format!(
            "SGLang's static budget ({fraction} of the GPU's memory, for the weights and the KV cache) left no room for a single KV-cache token once the weights were loaded: the fraction is too low for this model on this GPU"
        ),
    );
    r.add(
        CauseId::ModelTooLarge,
        0.6,
        "if a fraction of 0.9 or more still fails (or then runs out of memory while serving), the weights alone nearly fill the GPU: shard or quantize them",
    );
    r.add(
        CauseId::OtherProcesses,
        0.4,
        "SGLang measures the memory still free after loading: whatever other processes hold on the GPU comes out of the same budget",
    );
    r.add(
        CauseId::KvCache,
        0.3,
        "the KV-cache pool is what got no room: fewer bytes per token (an fp8 KV cache) make a small remainder go further",
    );
}

fn batch_search_exhausted(r: &mut Ranking) {
    r.add(
        CauseId::ModelTooLarge,
        0.75,
        "accelerate's find_executable_batch_size halved the batch on every OOM (from starting_batch_size, 128 by default) until it reached zero: even batch size 1 did not fit, so the batch is not what fills the GPU; the model, its gradients and optimizer states (or one very long sample) do",
    );
    r.add(
        CauseId::LeftoverTensors,
        0.6,
        "a known pitfall: a model, optimizer or outputs referenced from outside the decorated function survive every retry, so each smaller batch starts from the memory the failed one left behind and fails too",
    );
}

fn tensorflow(r: &mut Ranking, event: &OomEvent) {
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
            if in_use.saturating_add(q) > limit {
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
        _ if event.facts.fragmentation_hint => r.add(
            CauseId::Fragmentation,
            0.55,
            "TensorFlow's BFC allocator failed and itself points at fragmentation of its pool",
        ),
        _ => {}
    }
}

fn host(r: &mut Ranking, event: &OomEvent) {
    let evidence = if event.facts.oom_killer() {
        format!(
            "the kernel's OOM killer ended {}",
            event.facts.call.as_deref().unwrap_or("the process")
        )
    } else {
        match event.memory.requested_bytes {
            Some(q) => format!("the CPU allocator could not get {} of host RAM", fs(q)),
            None => "the CPU allocator ran out of host RAM".into(),
        }
    };
    r.add(CauseId::HostMemory, 0.85, evidence);
    if let Some(limit) = event
        .memory
        .allowed_bytes
        .filter(|_| event.facts.oom_killer())
    {
        r.add_checked(
            CauseId::MemoryCap,
            0.88,
            format!("the container's memory cgroup is capped at {} and reached it: the limit, not the machine, ran out", fs(limit)),
            Some("the pod's or container's memory limit (kubectl describe pod, docker inspect) against the process's peak RSS"),
        );
    }
    if let Some(q) = event
        .memory
        .requested_bytes
        .filter(|&q| q >= HOST_SUSPECT_BYTES)
    {
        r.add(
            CauseId::InvalidSize,
            0.9,
            format!("one host allocation of {} is more than most machines' RAM: check the size the failing op computed (an overflowed shape, a huge kernel or stride)", fs(q)),
        );
    }
    r.add(
        CauseId::BatchTooLarge,
        0.4,
        "a smaller batch, fewer DataLoader workers or memory-mapped data lower host memory",
    );
}

fn library(r: &mut Ranking, event: &OomEvent) {
    // With a quarter of the device free, a library that fails to start is
    // rarely short of memory: versions or the driver are the usual suspects.
    if let (Some(f), Some(t)) = (event.memory.free_bytes, event.memory.total_bytes) {
        if f * 4 >= t {
            r.add(
                CauseId::NotMemory,
                0.75,
                format!("{} of the {} device was free when it failed: check the CUDA, cuDNN and driver versions", fs(f), fs(t)),
            );
        }
    }
    match event.framework {
        Framework::Cublas => {
            // cuBLAS reports a full device and a broken set-up with the same
            // status: a differential, each with its check.
            r.undecided();
            let call = event.facts.call.as_deref().unwrap_or("a cuBLAS call");
            r.add(
                CauseId::BatchTooLarge,
                0.5,
                format!("{call} needs memory for its handle and workspace outside the framework's cache: the framework's tensors had filled the GPU"),
            );
            r.add(
                CauseId::OtherProcesses,
                0.45,
                "another process on the same GPU leaves cuBLAS no room for its handle",
            );
            r.add_checked(
                CauseId::NotMemory,
                0.4,
                "the same status comes from a CUDA toolkit the driver does not support, or a handle created against the wrong current device",
                Some("rerun with CUDA_LAUNCH_BLOCKING=1 and the same device as cuda:0; compare torch.version.cuda with the driver's CUDA version in nvidia-smi"),
            );
            r.add(
                CauseId::NonFrameworkMemory,
                0.35,
                format!(
                    "{call} allocates outside the framework's cache, which already took the GPU"
                ),
            );
        }
        Framework::Cudnn => {
            let handle = event.message.contains("handle");
            if handle {
                r.add(
                    CauseId::NonFrameworkMemory,
                    0.7,
                    "cuDNN could not create its handle: the framework's allocator had already taken the GPU (TensorFlow reserves nearly all of it by default)",
                );
            } else if event.message.contains("ALLOC_FAILED") {
                r.add(
                    CauseId::NonFrameworkMemory,
                    0.6,
                    "cuDNN could not allocate its workspace outside the framework's cache",
                );
                r.add(
                    CauseId::BatchTooLarge,
                    0.45,
                    "the framework's tensors filled the GPU before cuDNN's workspace",
                );
            } else {
                r.add(
                    CauseId::NotMemory,
                    0.5,
                    "CUDNN_STATUS_NOT_INITIALIZED is often a cuDNN/CUDA/driver mismatch; it is also what cuDNN reports when it cannot allocate at initialization",
                );
                r.add(CauseId::NonFrameworkMemory, 0.45, "cuDNN initializes lazily, at the first convolution: the GPU may already be full then");
            }
            r.add(
                CauseId::OtherProcesses,
                0.3,
                "another process may hold the memory cuDNN needs",
            );
        }
        Framework::Nccl => {
            let what = match event.memory.requested_bytes {
                Some(q) => format!("NCCL could not allocate {} for its buffers", fs(q)),
                None => "NCCL could not allocate device memory for its buffers".into(),
            };
            // NCCL's buffers are small next to a training job's tensors:
            // when they do not fit, the job had already filled the GPU.
            r.add(
                CauseId::BatchTooLarge,
                0.55,
                format!("{what}: the training's own tensors had filled the GPU, leaving no room for communication buffers"),
            );
            r.add(
                CauseId::NonFrameworkMemory,
                0.45,
                format!("{what}, outside the framework's cache (NCCL_BUFFSIZE and the number of channels size them)"),
            );
            r.add(
                CauseId::OtherProcesses,
                0.3,
                "another process on the GPU shrinks what NCCL can get",
            );
        }
        _ => {}
    }
}

fn llama(r: &mut Ranking, event: &OomEvent) {
    let q = event.memory.requested_bytes;
    if event.phase == Phase::ModelLoad {
        r.add(
            CauseId::ModelTooLarge,
            0.8,
            match q {
                Some(q) => format!(
                    "the weights offloaded to the GPU need {} in one buffer",
                    fs(q)
                ),
                None => "the layers offloaded to the GPU do not fit".into(),
            },
        );
    } else {
        r.add(
            CauseId::KvCache,
            0.6,
            "the context (KV cache) and compute buffers do not fit next to the weights",
        );
        r.add(
            CauseId::ModelTooLarge,
            0.4,
            "fewer offloaded layers leave room for the context",
        );
    }
}

/// Rules over the figures any framework may state.
fn figures(r: &mut Ranking, event: &OomEvent, acc: &Accounting) {
    let m = &event.memory;
    let q = m.requested_bytes;
    let total = m.total_bytes;
    // A single tensor larger than the whole device.
    if let (Some(q), Some(t)) = (q, total) {
        if q > t && !event.facts.absurd_request {
            let ratio = q as f64 / t as f64;
            let ev = format!(
                "one request of {} is {:.1}x the device's {}: it can never fit",
                fs(q),
                ratio,
                fs(t)
            );
            if ratio <= 4.0 {
                r.add(CauseId::BatchTooLarge, 0.85, ev.clone());
                r.add(
                    CauseId::InvalidSize,
                    0.5,
                    format!("{ev}; check the tensor's shape"),
                );
            } else {
                r.add(CauseId::InvalidSize, 0.85, format!("{ev}; a shape this far off is usually a bug (wrong dimension, unbounded sequence or image size)"));
                r.add(CauseId::BatchTooLarge, 0.5, ev);
            }
            return;
        }
    }
    let cached_free = acc.bytes(SegmentKind::CachedFree);
    let free = acc.bytes(SegmentKind::Free);
    // TensorFlow's BFC `Limit` is the pool the allocator was given (nearly
    // the whole GPU by default), not a cap a user set: tensorflow() reads it.
    let pool_limit = event.framework == Framework::TensorFlow;
    // Fragmentation: the cache holds enough free bytes, but not in one block.
    // How much it matters is the cached-but-free share of the device: a few
    // percent is the allocator's normal slack, a large share is memory the
    // workload cannot use.
    if let (Some(cf), Some(q)) = (cached_free, q) {
        let reserved = m.reserved_bytes.unwrap_or(0);
        if cf >= q && cf > 0 {
            // The caching allocator frees every unsplit cached segment and
            // retries before it raises (CUDACachingAllocator.cpp `malloc`:
            // release_available_cached_blocks, then release_cached_blocks),
            // so what the message still counts as cached but free lies in
            // segments partly in use: enough bytes, in pieces.
            // A cache of a few percent of the device is the allocator's
            // normal slack and no reason to fail; from 5% on it is memory
            // the workload could have had in one piece.
            let share = total.map(|t| cf as f64 / t.max(1) as f64);
            let score = match share {
                Some(s) if s >= 0.05 => 0.85,
                Some(s) if s >= 0.02 => 0.5,
                Some(_) => 0.25,
                None => 0.6,
            };
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
    // Memory outside the framework: other processes or this one. It is the
    // cause only when the request did not fit what was free.
    let blocked = match (q, free) {
        (Some(q), Some(f)) => !fits_free(q, f),
        _ => true,
    };
    if let Some(t) = total.filter(|_| blocked) {
        let listed: u64 = acc.others.iter().map(|p| p.bytes).sum();
        let others = if listed > 0 {
            listed
        } else {
            acc.bytes(SegmentKind::OtherProcesses).unwrap_or(0)
        };
        if listed == 0 && others * 5 >= t {
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
        if listed > 0 && others * 5 >= t {
            let list: Vec<String> = acc
                .others
                .iter()
                .map(|p| format!("pid {} holds {}", p.pid, fs(p.bytes)))
                .collect();
            r.add(
                CauseId::OtherProcesses,
                0.85,
                format!("{} ({} of the device)", list.join(", "), pct(others, t)),
            );
        }
        if let Some(outside) = acc.bytes(SegmentKind::OutsideFramework) {
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
        if let Some(nf) = acc.bytes(SegmentKind::NonFramework) {
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
    }
    // MPS: "other allocations" and the watermark cap.
    if event.device.kind == DeviceKind::Mps {
        if let (Some(a), Some(nf), Some(cap)) =
            (m.allocated_bytes, m.non_framework_bytes, m.allowed_bytes)
        {
            let q = q.unwrap_or(0);
            if nf > a {
                r.add(
                    CauseId::NonFrameworkMemory,
                    0.7,
                    format!("other allocations hold {} against {} of PyTorch tensors, within a cap of {}", fs(nf), fs(a), fs(cap)),
                );
            }
            if a + nf >= cap {
                r.add(
                    CauseId::MemoryCap,
                    0.8,
                    format!(
                        "{} allocated + {} other already reach the {} high-watermark cap before the request",
                        fs(a),
                        fs(nf),
                        fs(cap)
                    ),
                );
            } else if a + nf + q > cap {
                r.add(
                    CauseId::MemoryCap,
                    0.7,
                    format!(
                        "{} allocated + {} other + {} requested exceeds the {} high-watermark cap",
                        fs(a),
                        fs(nf),
                        fs(q),
                        fs(cap)
                    ),
                );
            }
        }
    } else if let (Some(cap), Some(q), false) = (m.allowed_bytes, q, pool_limit) {
        let reserved = m.reserved_bytes.unwrap_or(0);
        // Within 2%: the printed figures are rounded to two decimals.
        if (reserved + q) as f64 >= cap as f64 * 0.98 {
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
    if let Some(q) = q.filter(|_| event.device.kind == DeviceKind::Xpu) {
        if q > XPU_MAX_SINGLE_ALLOCATION {
            r.add_checked(
                CauseId::MemoryCap,
                0.85,
                format!(
                    "one request of {} is above the 4 GiB Intel GPUs allow for a single allocation unless large allocations are enabled",
                    fs(q)
                ),
                Some("rerun with UR_L0_ENABLE_RELAXED_ALLOCATION_LIMITS=1 (and SYCL_PI_LEVEL_ZERO_... on older oneAPI): if it passes, it was the single-allocation limit"),
            );
        }
    }
    if let (Some(q), Some(f)) = (q, free) {
        if fits_free(q, f)
            && event.device.kind != DeviceKind::Mps
            && m.allowed_bytes.is_none()
            && event.device.kind != DeviceKind::Xpu
        {
            fitted_free(r, event, q, f);
        }
    }
    // Nothing held yet and one request takes a large share of the device:
    // the model (its weights or first layer) is large for this GPU.
    if let (Some(0), Some(q), Some(t)) = (m.allocated_bytes, q, total) {
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
    // Windows (WDDM) lets allocations spill over into shared system memory.
    if let (Some(a), Some(t)) = (m.allocated_bytes, total) {
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
}

/// Rules that read the phase and how much the framework held for tensors.
fn by_phase(r: &mut Ranking, event: &OomEvent, acc: &Accounting) {
    let m = &event.memory;
    if matches!(event.framework, Framework::Vllm | Framework::LlamaCpp) || event.facts.oom_killer()
    {
        return;
    }
    let share = match (m.allocated_bytes, acc.framework_budget) {
        (Some(a), Some(b)) if b > 0 => Some(a as f64 / b as f64),
        _ => None,
    };
    let held = match (m.allocated_bytes, acc.extent) {
        (Some(a), Some(t)) => format!(
            "live tensors hold {} of the {} device ({})",
            fs(a),
            fs(t),
            pct(a, t)
        ),
        (Some(a), None) => format!("live tensors hold {}", fs(a)),
        _ => String::new(),
    };
    // Tensor memory dominates what the framework could use: the workload.
    let dominant = share.is_none_or(|s| s >= 0.5);
    let weight = share.map_or(0.5, |s| 0.3 + 0.35 * s.min(1.0));
    let with = |s: &str| {
        if held.is_empty() {
            s.to_string()
        } else {
            format!("{held}; {s}")
        }
    };
    match event.phase {
        Phase::ModelLoad => {
            r.add(
                CauseId::ModelTooLarge,
                0.8,
                with("it failed while loading the weights, before any batch ran"),
            );
            r.add(CauseId::MultipleModels, 0.3, "a model already loaded on the device (a previous cell or a second model) leaves less room");
        }
        Phase::OptimizerStep => {
            r.add(
                CauseId::ModelTooLarge,
                0.65,
                with("it failed creating optimizer states (AdamW keeps two fp32 copies per parameter): full fine-tuning of this model needs more memory"),
            );
            r.add(
                CauseId::BatchTooLarge,
                0.3,
                "activations freed by then; the batch matters less at this step",
            );
        }
        Phase::Generation => {
            r.add(
                CauseId::KvCache,
                0.6,
                with("generation grows the KV cache with every token, batch x length"),
            );
            r.add(
                CauseId::BatchTooLarge,
                weight.min(0.55),
                with("fewer sequences at once shrink the KV cache and logits"),
            );
        }
        Phase::Evaluation => {
            r.add(
                CauseId::LeftoverTensors,
                0.5,
                with("evaluation without torch.no_grad() keeps activations for a backward that never comes; training tensors (optimizer states, gradients) may still be alive"),
            );
            r.add(
                CauseId::BatchTooLarge,
                weight,
                with("the evaluation batch may be larger than the training batch"),
            );
        }
        Phase::Startup => {
            r.add(
                CauseId::ModelTooLarge,
                0.5,
                with("it failed at start-up, sizing memory for the model"),
            );
        }
        Phase::DataLoading => {
            r.add(
                CauseId::BatchTooLarge,
                0.6,
                with("the batch itself is too large to move to the device"),
            );
        }
        Phase::Forward | Phase::Backward | Phase::Unknown => {
            if m.allocated_bytes.is_some() && dominant {
                let what = if event.phase == Phase::Backward {
                    "the backward pass needs the activations of the whole batch plus their gradients"
                } else {
                    "activations grow with batch x sequence length (x image size)"
                };
                r.add(CauseId::BatchTooLarge, weight, with(what));
                r.add(
                    CauseId::ModelTooLarge,
                    0.2,
                    "if batch 1 fails too, the model's own memory (weights, and for training gradients and optimizer states) does not fit",
                );
                r.add(
                    CauseId::LeftoverTensors,
                    0.15,
                    "if memory climbs step after step, tensors from earlier steps are kept alive (a loss kept with its graph, outputs in a list)",
                );
            } else if m.allocated_bytes.is_some() {
                r.add(
                    CauseId::BatchTooLarge,
                    0.3,
                    with("the framework's own tensors are a small part of the device"),
                );
            } else if matches!(event.phase, Phase::Forward | Phase::Backward) {
                r.add(
                    CauseId::BatchTooLarge,
                    0.5,
                    format!(
                        "it failed in {}, which scales with the batch",
                        event.phase.describe()
                    ),
                );
                r.add(
                    CauseId::LeftoverTensors,
                    0.3,
                    "without figures, a run that fails only after some steps points at tensors kept alive from earlier steps",
                );
                r.add(
                    CauseId::ModelTooLarge,
                    0.25,
                    "if batch 1 fails too, the model does not fit",
                );
            }
        }
    }
}
