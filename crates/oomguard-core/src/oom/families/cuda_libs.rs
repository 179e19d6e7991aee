//! CUDA libraries and the operating system: cuBLAS and cuDNN handle and
//! workspace failures, NCCL's CUDA allocation failures, bare CUDA driver and
//! runtime codes (`CUDA_ERROR_OUT_OF_MEMORY`, `cudaErrorMemoryAllocation`),
//! NCCL's shared-memory segments in `/dev/shm` (misc/shmutils.cc), and the
//! Linux kernel's OOM killer.
//!
//! A cuDNN or cuBLAS failure is listed as an event because it is usually
//! memory, but it is not always: the diagnosis weighs that.

use crate::oom::patterns::{device_index, find_u64, message_from, re, Parsed};
use crate::oom::{DeviceKind, EventKind, Framework};
use regex::Regex;
use std::sync::LazyLock;

/// Phrases one of which every message this family reads contains: cuBLAS
/// and cuDNN status codes and handle errors, NCCL's allocation warnings, the
/// CUDA driver's and runtime's codes, the kernel's OOM killer.
pub(super) const TRIGGERS: &[&str] = &[
    "STATUS_NOT_INITIALIZED",
    "ALLOC_FAILED",
    "CUDNN_STATUS_INTERNAL_ERROR",
    "cudnn handle",
    "cublas handle",
    "valid cuDNN algorithm",
    "Failed to CUDA calloc",
    "out of memory",
    "Out of memory",
    "OUT_OF_MEMORY",
    "ErrorMemoryAllocation",
    // NCCL's shared-memory transport: `failed to extend /dev/shm/nccl-X to
    // N bytes`, `Error while creating shared memory segment /dev/shm/nccl-X`
    // (2.7 and later), `Call to posix_fallocate failed` (before 2.7).
    "/dev/shm/nccl-",
    "posix_fallocate",
];
/// Words one of which every message `parse` reads holds (`parse_generic`
/// runs on every line no framework claimed).
pub(super) const WORDS: &[&str] = &[
    "CUBLAS",
    "cublas",
    "CUDNN",
    "cuDNN",
    "cudnn",
    "Cuda failure",
    "calloc",
    "/dev/shm/nccl-",
    "posix_fallocate",
    "ibv_reg",
    "register memory",
];
/// Messages of this family as the libraries and the kernel print them.
#[cfg(test)]
pub(super) const EXAMPLES: &[&str] = &[
    "RuntimeError: CUDA error: CUBLAS_STATUS_NOT_INITIALIZED when calling `cublasCreate(handle)`",
    "Could not create cudnn handle: CUDNN_STATUS_INTERNAL_ERROR",
    "RuntimeError: Unable to find a valid cuDNN algorithm to run convolution",
    "node01:48213:48299 [3] include/alloc.h:124 NCCL WARN Failed to CUDA calloc 536870912 bytes",
    "node01:48213:48299 [3] NCCL WARN Cuda failure 'out of memory'",
    "node01:48213:48299 [3] misc/shmutils.cc:72 NCCL WARN Error: failed to extend /dev/shm/nccl-AbC123 to 9637892 bytes",
    "Out of memory: Killed process 935 (python) total-vm:113656kB, anon-rss:10245652kB",
    "numba.cuda.cudadrv.driver.CudaAPIError: [2] Call to cuMemAlloc results in CUDA_ERROR_OUT_OF_MEMORY",
];

struct Patterns {
    cublas: Regex,
    cublas_call: Regex,
    cudnn: Regex,
    cudnn_handle: Regex,
    cudnn_algorithm: Regex,
    memory_usage: Regex,
    nccl_device: Regex,
    nccl_cuda: Regex,
    nccl_calloc: Regex,
    nccl_shm_extend: Regex,
    nccl_shm_failed: Regex,
    nccl_registration: Regex,
    driver: Regex,
    runtime: Regex,
    oom_killer: Regex,
}

static P: LazyLock<Patterns> = LazyLock::new(|| Patterns {
    // cuBLAS's own text for CUBLAS_STATUS_ALLOC_FAILED, as
    // `cublasGetStatusString` words it ("the resource allocation failed"),
    // is what XLA (`failed to create cublas handle: ...`), ggml (`CUDA
    // error: ... in function cublas_handle`) and ONNX Runtime (`CUBLAS
    // failure 3: ...`) print since CUDA 12; cuTENSOR words its status the
    // same, so the line must name cuBLAS.
    cublas: re(concat!(
        r"CUBLAS_STATUS_ALLOC_FAILED|CUBLAS_STATUS_NOT_INITIALIZED|",
        r"(?i:cublas).{0,300}?the\s*resource\s*allocation\s*failed|",
        r"the\s*resource\s*allocation\s*failed.{0,300}?(?i:cublas)"
    )),
    cublas_call: re(r"when\s*calling\s*`([^`]+)`"),
    cudnn: re(r"CUDNN_STATUS_(?:NOT_INITIALIZED|ALLOC_FAILED)"),
    cudnn_handle: re(r"Could\s*not\s*create\s*cudnn\s*handle\s*:\s*CUDNN_STATUS_\w+"),
    cudnn_algorithm: re(r"Unable\s*to\s*find\s*a\s*valid\s*cuDNN\s*algorithm"),
    memory_usage: re(r"Memory\s*usage\s*:\s*(\d+)\s*bytes\s*free\s*,\s*(\d+)\s*bytes\s*total"),
    nccl_device: re(r"^\S+:\d+:\d+\s+\[(\d+)\]"),
    nccl_cuda: re(r"(?:NCCL\s*WARN\s*)?Cuda\s*failure\s*(?:\d+\s*)?'out\s*of\s*memory'"),
    nccl_calloc: re(r"Failed\s*to\s*CUDA\s*calloc\s*(?:async\s*)?(\d+)\s*bytes"),
    nccl_shm_extend: re(r"failed\s*to\s*extend\s*/dev/shm/nccl-\S*\s*to\s*(\d+)\s*bytes"),
    // A segment NCCL could not create or size for lack of room: the errno
    // (ENOSPC on the tmpfs, ENOMEM) says it was memory; the same line after
    // a failed CUDA host registration or `mmap` of another kind is not.
    nccl_shm_failed: re(concat!(
        r"(?:Error\s*while\s*creating\s*shared\s*memory\s*segment\s*/dev/shm/nccl-|",
        r"Call\s*to\s*posix_fallocate\s*failed)",
        r".*?(?:No\s*space\s*left\s*on\s*device|Cannot\s*allocate\s*memory)"
    )),
    // NCCL's network transports pin their buffers for the NIC: the verbs
    // call (`Call to ibv_reg_mr failed with error Cannot allocate memory`,
    // misc/ibvwrap.cc) or the OFI plugin (`NET/OFI Unable to register
    // memory ... RC: 12, Error: Cannot allocate memory`) refused with
    // ENOMEM: the process's locked-memory limit (RLIMIT_MEMLOCK), not RAM.
    // The generic layer's trigger for `Cannot allocate memory` finds them.
    nccl_registration: re(concat!(
        r"NCCL\s*WARN.*?(?:ibv_reg_(?:dmabuf_)?mr\w*|Unable\s*to\s*register\s*memory)",
        r".*?(?:Cannot\s*allocate\s*memory|RC:\s*12\b)"
    )),
    driver: re(r"CUDA_ERROR_OUT_OF_MEMORY"),
    runtime: re(r"cudaErrorMemoryAllocation"),
    oom_killer: re(r"Out\s*of\s*memory\s*:\s*Kill(?:ed)?\s*process\s*(\d+)\s*\(([^)]*)\)"),
});

/// The libraries whose messages would otherwise be read as a framework's.
pub(crate) fn parse(text: &str) -> Option<Parsed> {
    let p = &*P;
    if p.cublas.is_match(text) {
        let mut parsed = Parsed::new(
            Framework::Cublas,
            DeviceKind::Cuda,
            message_from(text, &p.cublas),
        );
        parsed.device.index = device_index(text);
        parsed.facts.call = p.cublas_call.captures(text).map(|c| c[1].to_string());
        parsed.facts.kind = EventKind::LibraryHandle;
        return Some(parsed);
    }
    let cudnn = if p.cudnn_handle.is_match(text) {
        Some(&p.cudnn_handle)
    } else if p.cudnn.is_match(text) {
        Some(&p.cudnn)
    } else if p.cudnn_algorithm.is_match(text) {
        Some(&p.cudnn_algorithm)
    } else {
        None
    };
    if let Some(key) = cudnn {
        let mut parsed = Parsed::new(Framework::Cudnn, DeviceKind::Cuda, message_from(text, key));
        parsed.device.index = device_index(text);
        parsed.facts.kind = EventKind::LibraryHandle;
        // TensorFlow and XLA print the device's memory after a failed handle
        // (stream_executor/cuda/cuda_dnn.cc: `Memory usage: N bytes free, M
        // bytes total.`).
        if let Some(c) = p.memory_usage.captures(text) {
            parsed.memory.free_bytes = c[1].parse().ok();
            parsed.memory.total_bytes = c[2].parse().ok();
        }
        if ample_free(parsed.memory.free_bytes, parsed.memory.total_bytes) {
            return None;
        }
        return Some(parsed);
    }
    if let Some(parsed) = nccl_shared_memory(text) {
        return Some(parsed);
    }
    if p.nccl_registration.is_match(text) {
        let message = text[text.find("NCCL WARN").unwrap_or(0)..]
            .trim()
            .chars()
            .take(4096)
            .collect();
        let mut parsed = Parsed::new(Framework::Nccl, DeviceKind::Cpu, message);
        parsed.facts.kind = EventKind::LockedMemory;
        return Some(parsed);
    }
    if p.nccl_cuda.is_match(text) || p.nccl_calloc.is_match(text) {
        let key = if p.nccl_cuda.is_match(text) {
            &p.nccl_cuda
        } else {
            &p.nccl_calloc
        };
        let mut parsed = Parsed::new(Framework::Nccl, DeviceKind::Cuda, message_from(text, key));
        parsed.memory.requested_bytes = find_u64(&p.nccl_calloc, text);
        parsed.exact_request = parsed.memory.requested_bytes.is_some();
        // NCCL's WARN lines precede the error the framework raises.
        parsed.kind = crate::oom::patterns::PartKind::Preliminary;
        // NCCL's own log lines start `host:pid:tid [cudaDev]`.
        parsed.device.index = find_u64(&p.nccl_device, text).map(|i| i as u32);
        return Some(parsed);
    }
    None
}

/// Free memory no handle could lack: half the device and at least
/// [`HANDLE_ROOM`]. A handle that failed with that much free failed for
/// another reason (a library the build does not match, a driver), and the
/// report the runtime printed under it says so.
fn ample_free(free: Option<u64>, total: Option<u64>) -> bool {
    matches!((free, total), (Some(free), Some(total)) if free >= HANDLE_ROOM && free.saturating_mul(2) >= total)
}

/// More than a cuDNN or cuBLAS handle takes with its workspace and the
/// kernels it loads (hundreds of MiB; CUDA's lazy loading makes it less).
const HANDLE_ROOM: u64 = 2 << 30;

/// NCCL could not size a shared-memory segment in `/dev/shm` (host memory,
/// a tmpfs a container keeps small: Docker's default is 64 MiB). The
/// `failed to extend ... to N bytes` line holds the size; the `Error while
/// creating shared memory segment` line that follows it holds no figure of
/// its own here, so that it joins that failure.
fn nccl_shared_memory(text: &str) -> Option<Parsed> {
    let p = &*P;
    let extend = p.nccl_shm_extend.captures(text);
    let key = match &extend {
        Some(_) => &p.nccl_shm_extend,
        None if p.nccl_shm_failed.is_match(text) => &p.nccl_shm_failed,
        None => return None,
    };
    let message = match text.find("NCCL WARN") {
        Some(at) => text[at..].trim().chars().take(4096).collect(),
        None => message_from(text, key),
    };
    let mut parsed = Parsed::new(Framework::Nccl, DeviceKind::Cpu, message);
    if let Some(c) = extend {
        parsed.memory.requested_bytes = c[1].parse().ok();
        parsed.exact_request = true;
    }
    Some(parsed)
}

/// Codes any CUDA program can print, and the kernel's OOM killer: tried
/// after every framework, so that a framework's own message wins.
pub(crate) fn parse_generic(text: &str) -> Option<Parsed> {
    let p = &*P;
    if let Some(c) = p.oom_killer.captures(text) {
        let mut parsed = Parsed::new(
            Framework::Other,
            DeviceKind::Cpu,
            message_from(text, &p.oom_killer),
        );
        parsed.facts.kind = EventKind::OomKill;
        parsed.facts.call = Some(format!("{} (pid {})", &c[2], &c[1]));
        return Some(parsed);
    }
    let key = if p.driver.is_match(text) {
        &p.driver
    } else if p.runtime.is_match(text) {
        &p.runtime
    } else {
        return None;
    };
    let mut parsed = Parsed::new(Framework::Other, DeviceKind::Cuda, message_from(text, key));
    parsed.device.index = device_index(text);
    Some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nccl_buffers_the_locked_memory_limit_refused() {
        for line in [
            "gpu7:311:402 [0] misc/ibvwrap.cc:278 NCCL WARN Call to ibv_reg_mr_iova2 failed with error Cannot allocate memory",
            "ip-10:149:298 [5] register_mr_buffers:465 NCCL WARN NET/OFI Unable to register memory (type = 1) for device 0. RC: 12, Error: Cannot allocate memory",
        ] {
            let e = parse(line).expect(line);
            assert_eq!(e.framework, Framework::Nccl, "{line}");
            assert_eq!(e.device.kind, DeviceKind::Cpu, "{line}");
            assert_eq!(e.facts.kind, EventKind::LockedMemory, "{line}");
            assert!(e.message.starts_with("NCCL WARN"), "{line}");
        }
        // Another errno is not memory.
        assert!(parse("gpu7:311:402 [0] misc/ibvwrap.cc:278 NCCL WARN Call to ibv_reg_mr failed with error Bad address").is_none());
    }

    #[test]
    fn nccl_shared_memory_segments_that_do_not_fit() {
        let e = parse("gpu7:311:402 [2] misc/shmutils.cc:72 NCCL WARN Error: failed to extend /dev/shm/nccl-Qx81Zp to 16777220 bytes")
            .expect("an event");
        assert_eq!(e.framework, Framework::Nccl);
        assert_eq!(e.device.kind, DeviceKind::Cpu);
        assert_eq!(e.memory.requested_bytes, Some(16_777_220));
        assert!(e.message.starts_with("NCCL WARN"));
        for text in [
            "gpu7:311:402 [2] misc/shmutils.cc:129 NCCL WARN Error while creating shared memory segment /dev/shm/nccl-Qx81Zp (size 16777216), error: No space left on device (28)",
            "gpu7:311:402 [2] include/shm.h:28 NCCL WARN Call to posix_fallocate failed : No space left on device",
        ] {
            let e = parse(text).unwrap_or_else(|| panic!("an event in {text}"));
            assert!(e.memory.is_empty(), "{text}");
        }
        for text in [
            "gpu7:311:402 [2] misc/shmutils.cc:114 NCCL WARN Error while creating shared memory segment /dev/shm/nccl-Qx81Zp (size 16777216)",
            "gpu7:311:402 [2] NCCL WARN Error while attaching to shared memory segment /dev/shm/nccl-Qx81Zp (size 16777216), error: No such file or directory (2)",
        ] {
            assert!(parse(text).is_none(), "{text}");
        }
    }

    #[test]
    fn cublas_s_own_words_for_a_failed_allocation_are_a_cublas_handle_failure() {
        for line in [
            "E external/local_xla/xla/stream_executor/cuda/cuda_blas.cc:185] failed to create cublas handle: the resource allocation failed",
            "CUDA error: the resource allocation failed current device: 0, in function cublas_handle at ggml/src/ggml-cuda/common.cuh:1500 cublasCreate_v2(&cublas_handles[device])",
            "CUBLAS failure 3: the resource allocation failed ; GPU=0 ; hostname=a ; file=cuda_execution_provider.cc ; line=170",
        ] {
            let e = parse(line).expect(line);
            assert_eq!(e.framework, Framework::Cublas, "{line}");
            assert_eq!(e.facts.kind, EventKind::LibraryHandle, "{line}");
        }
        // cuTENSOR words its status the same; without cuBLAS named it is not one.
        assert!(parse("CUTENSOR error: the resource allocation failed").is_none());
    }

    #[test]
    fn a_cudnn_handle_with_most_of_the_device_free_is_not_a_memory_failure() {
        let handle = "Could not create cudnn handle: CUDNN_STATUS_INTERNAL_ERROR";
        let with = |free: u64, total: u64| {
            parse(&format!(
                "{handle} Memory usage: {free} bytes free, {total} bytes total."
            ))
        };
        assert!(with(15_993_929_728, 17_179_344_896).is_none());
        let full = with(190_840_832, 8_513_978_368).expect("a full device's handle");
        assert_eq!(full.memory.free_bytes, Some(190_840_832));
        // Half of a small card is too little to rule memory out.
        assert!(with(1 << 30, 2 << 30).is_some());
        assert!(parse(handle).is_some());
    }
}
