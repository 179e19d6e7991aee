//! Libraries that allocate outside the framework's cache: cuBLAS, cuDNN
//! and NCCL, whose failures to start share one status with a broken set-up;
//! and Triton kernels that ask for more on-chip shared memory than the GPU
//! has, and XLA programs that overflow a TPU core's on-chip memory spaces,
//! neither of which is device memory at all.

use super::{CauseId, Ranking};
use crate::oom::{Framework, OomEvent, SharedMemoryLimit};
use crate::size::format_size as fs;

/// The rules of the library that failed.
pub(super) fn library(r: &mut Ranking, event: &OomEvent) {
    library_with_room(r, event);
    match event.framework {
        Framework::Cublas => cublas(r, event),
        Framework::Cudnn => cudnn(r, event),
        Framework::Nccl => nccl(r, event),
        _ => {}
    }
}

/// A library that fails while a quarter of the device is free.
fn library_with_room(r: &mut Ranking, event: &OomEvent) {
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
}

fn cublas(r: &mut Ranking, event: &OomEvent) {
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
        format!("{call} allocates outside the framework's cache, which already took the GPU"),
    );
}

fn cudnn(r: &mut Ranking, event: &OomEvent) {
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
        r.add(
            CauseId::NonFrameworkMemory,
            0.45,
            "cuDNN initializes lazily, at the first convolution: the GPU may already be full then",
        );
    }
    r.add(
        CauseId::OtherProcesses,
        0.3,
        "another process may hold the memory cuDNN needs",
    );
}

fn nccl(r: &mut Ranking, event: &OomEvent) {
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
pub(in crate::diagnose) fn shared_memory_gpu_class(limit: u64) -> Option<&'static str> {
    SHARED_MEMORY_LIMITS
        .iter()
        .find(|(bytes, _)| *bytes == limit)
        .map(|(_, class)| *class)
}

pub(super) fn shared_memory(r: &mut Ranking, shm: &SharedMemoryLimit) {
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

/// XLA's TPU compiler names the memory space it ran out of ("Ran out of
/// memory in memory space vmem"). `hbm` is the device memory; the others
/// (`vmem`, `smem`, `cmem`, `sflag`) are a core's on-chip memories, a few
/// MiB that the compiler plans per fused op (Cloud TPU system architecture:
/// each TensorCore's vector and scalar memories), so running out of them is
/// a compiler limit, not a full device.
pub(super) fn on_chip_memory_space(message: &str) -> Option<&str> {
    const MARK: &str = "memory space ";
    let at = message.find(MARK)? + MARK.len();
    let name = message[at..]
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .filter(|n| !n.is_empty())?;
    (!name.eq_ignore_ascii_case("hbm")).then_some(name)
}

/// A compiled program overflowed an on-chip memory space.
pub(super) fn on_chip_memory(r: &mut Ranking, space: &str) {
    r.add_checked(
        CauseId::NotMemory,
        0.9,
        format!("the compiler ran out of {space}, a TPU core's on-chip memory of a few MiB that it plans for each fused op: not the device's memory (HBM), so freeing device memory does not help"),
        Some("the compiler's own report of the op (XLA_FLAGS=--xla_dump_to=DIR): a fused op with many operands or a very long dimension"),
    );
    r.add(
        CauseId::BatchTooLarge,
        0.35,
        "smaller shapes for that op (a shorter sequence or maximum length, a smaller batch) change the compiler's tiling and can fit",
    );
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::oom::MemoryFigures;

    fn failed(framework: Framework, message: &str, free: Option<u64>) -> OomEvent {
        let mut e = event(
            framework,
            MemoryFigures {
                total_bytes: free.map(|_| 24 * GIB),
                free_bytes: free,
                ..MemoryFigures::default()
            },
        );
        e.message = message.into();
        e
    }

    #[test]
    fn a_library_failing_with_a_quarter_of_the_device_free_is_not_memory() {
        let mut r = Ranking::new();
        library(
            &mut r,
            &failed(
                Framework::Cudnn,
                "CUDNN_STATUS_NOT_INITIALIZED",
                Some(12 * GIB),
            ),
        );
        assert_eq!(r.top(), Some(CauseId::NotMemory));
        assert_eq!(r.score(CauseId::NotMemory), Some(0.75));
    }

    #[test]
    fn cublas_is_an_undecided_differential_with_checks() {
        let mut r = Ranking::new();
        library(
            &mut r,
            &failed(Framework::Cublas, "CUBLAS_STATUS_ALLOC_FAILED", None),
        );
        assert!(r.1);
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        assert!(r
            .0
            .iter()
            .any(|c| c.id == CauseId::NotMemory && c.check.is_some()));
    }

    #[test]
    fn a_cudnn_handle_is_memory_outside_the_framework() {
        let mut r = Ranking::new();
        library(
            &mut r,
            &failed(
                Framework::Cudnn,
                "Could not create cudnn handle: CUDNN_STATUS_INTERNAL_ERROR",
                None,
            ),
        );
        assert_eq!(r.top(), Some(CauseId::NonFrameworkMemory));
        let mut r = Ranking::new();
        library(
            &mut r,
            &failed(Framework::Nccl, "NCCL failure: out of memory", None),
        );
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
    }

    #[test]
    fn shared_memory_limits_name_the_gpu_class() {
        assert!(shared_memory_gpu_class(166_912).unwrap().contains("A100"));
        assert_eq!(shared_memory_gpu_class(12345), None);
        let mut r = Ranking::new();
        shared_memory(
            &mut r,
            &SharedMemoryLimit {
                required_bytes: Some(196_608),
                limit_bytes: Some(101_376),
                via_inductor: false,
            },
        );
        assert_eq!(r.top(), Some(CauseId::NotMemory));
        assert!(r.0[0].evidence.contains("RTX"));
    }

    #[test]
    fn xla_memory_spaces_other_than_hbm_are_on_chip() {
        let vmem = "RESOURCE_EXHAUSTED: XLA:TPU compile permanent error. Ran out of memory in memory space vmem. Used 32.42M of 16.00M vmem.";
        assert_eq!(on_chip_memory_space(vmem), Some("vmem"));
        assert_eq!(
            on_chip_memory_space("Ran out of memory in memory space smem."),
            Some("smem")
        );
        assert_eq!(
            on_chip_memory_space(
                "Ran out of memory in memory space hbm. Used 21.90G of 7.48G hbm."
            ),
            None
        );
        assert_eq!(on_chip_memory_space("CUDA out of memory"), None);
        let mut r = Ranking::new();
        on_chip_memory(&mut r, "vmem");
        assert_eq!(r.top(), Some(CauseId::NotMemory));
    }
}
