//! TensorFlow and JAX/XLA: `OOM when allocating tensor with shape[...] and
//! type T`, the BFC allocator's `ran out of memory trying to allocate`, the
//! stream executor's `failed to allocate ... CUDA_ERROR_OUT_OF_MEMORY`, and
//! XLA's `RESOURCE_EXHAUSTED` messages.
//!
//! A tensor shape gives the request exactly: the product of the dimensions
//! times the size of the dtype (TensorFlow's `DataTypeString` names).

use crate::oom::patterns::{
    device_index, find_u64, message_from, re, says_non_fatal, size_at, Parsed, PartKind,
};
use crate::oom::{DeviceKind, EventKind, Framework, Phase};
use regex::Regex;
use std::sync::LazyLock;

/// Phrases one of which every message this family reads contains.
pub(super) const TRIGGERS: &[&str] = &[
    "OOM when allocating",
    // The BFC allocator's `ran out of memory`, XLA's `Out of memory while ...`.
    "out of memory",
    "Out of memory",
    // The stream executor's `failed to allocate ... from device`, XLA's
    // `Failed to allocate request for`.
    "ailed to alloc",
    "hipError_t(1002)",
    "RESOURCE_EXHAUSTED",
    "esource exhausted",
    // XLA on TPU: `Attempting to allocate X. That was not possible.`
    "Attempting to allocate",
    // The GPU device's Eigen allocator (see `eigen`).
    "out of GPU memory",
    // The stream executor's context creation (see `context_retain`).
    "CUDA_ERROR_OUT_OF_MEMORY",
    // A copy whose destination buffer the device could not allocate (see
    // `dst_uninitialized`).
    "Dst tensor is not initialized",
];
/// Words one of which every message `parse` reads holds.
pub(super) const WORDS: &[&str] = &[
    "OOM when",
    "trying to allocate",
    "failed to alloc",
    "RESOURCE_EXHAUSTED",
    "esource exhausted",
    "allocate request",
    "Out of memory allocating",
    // XLA's TPU compiler: `Ran out of memory in memory space hbm`.
    "memory space",
    // The TPU runtime: `Attempting to reserve X at the bottom of memory.
    // That was not possible. There are Y free, ...`.
    "That was not possible",
    "EigenAllocator",
    "out of GPU memory",
    "PrimaryCtxRetain",
    "Dst tensor",
];
/// Messages of this family as TensorFlow, XLA and JAX print them.
#[cfg(test)]
pub(super) const EXAMPLES: &[&str] = &[
    "tensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM when allocating tensor with shape[32,256,56,56] and type float on /job:localhost/replica:0/task:0/device:GPU:0 by allocator GPU_0_bfc",
    "Allocator (GPU_0_bfc) ran out of memory trying to allocate 4.50GiB (rounded to 4831838208)requested by op model/conv2d/Conv2D",
    "failed to allocate 17.79G (19104890880 bytes) from device: CUDA_ERROR_OUT_OF_MEMORY: out of memory",
    "jaxlib.xla_extension.XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying to allocate 17179869184 bytes.",
    "jaxlib.xla_extension.XlaRuntimeError: RESOURCE_EXHAUSTED: Failed to allocate request for 48.09GiB (51635652936B) on device ordinal 0",
    "Compilation failure: Ran out of memory in memory space hbm. Used 20.51G of 15.48G hbm. Exceeded hbm capacity by 5.03G.",
    "F tensorflow/core/common_runtime/gpu/gpu_device.cc:103] EigenAllocator for GPU ran out of memory when allocating 0. See error logs for more detailed info.",
    "E1103 18:23:55.103160 3413767 gpu_cudamallocasync_allocator.cc:361] gpu_async_1 cuMemAllocAsync failed to allocate 1225195446464 bytes: RESOURCE_EXHAUSTED: : CUDA_ERROR_OUT_OF_MEMORY: out of memory",
    "Internal: failed call to cuDevicePrimaryCtxRetain: CUDA_ERROR_OUT_OF_MEMORY; total memory reported: 12782075904",
    "tensorflow.python.framework.errors_impl.InternalError: Failed copying input tensor from /job:localhost/replica:0/task:0/device:CPU:0 to /job:localhost/replica:0/task:0/device:GPU:0 in order to run _EagerConst: Dst tensor is not initialized.",
];

struct Patterns {
    oom_tensor: Regex,
    bfc: Regex,
    stream_executor: Regex,
    host_alloc: Regex,
    malloc_async: Regex,
    driver_free_total: Regex,
    resource_exhausted: Regex,
    xla_bytes: Regex,
    xla_request: Regex,
    tpu_hbm: Regex,
    tpu_reserve: Regex,
    eigen: Regex,
    context_retain: Regex,
    dst_uninitialized: Regex,
    copy_destination: Regex,
    op: Regex,
    kernel_file: Regex,
    tf_device: Regex,
}

static P: LazyLock<Patterns> = LazyLock::new(|| Patterns {
    oom_tensor: re(
        // The shape is missing from quoted excerpts and printed as a
        // `TensorShape` proto (`shapedim { size: N } ...`) by the first
        // releases (tensorflow/core/common_runtime/bfc_allocator.cc, 2015).
        r"OOM\s*when\s*allocating\s*tensor(?:\s*(?:with|of)\s*shape\s*\[([\d,\s]*)\](?:\s*and\s*type\s*(\w+))?(?:\s*on\s*(\S+))?)?",
    ),
    // Intel's Extension for TensorFlow (itex/core/devices/bfc_allocator.cc)
    // names no allocator and counts in `Bytes`: `Allocator ran out of memory
    // trying to allocate N Bytes (rounded to M Bytes)`.
    bfc: re(
        r"(?:Allocator\s*(?:\((\w+)\)\s*)?ran|\bRan)\s*out\s*of\s*memory\s*trying\s*to\s*allocate\s*(?:{SIZE}|(\d+)\s*Bytes)(?:\s*\(rounded\s*to\s*(\d+)(?:\s*Bytes)?\))?",
    ),
    // XLA's driver wrapper (external/local_xla/xla/stream_executor/cuda/
    // cuda_driver.cc, 2024) puts the status before the driver's code:
    // `from device: RESOURCE_EXHAUSTED: : CUDA_ERROR_OUT_OF_MEMORY`.
    stream_executor: re(
        r"failed\s*to\s*allocate\s*{SIZE}\s*(?:\((\d+)\s*bytes\)\s*)?from\s*device\s*:\s*(?:RESOURCE_EXHAUSTED\s*:\s*:?\s*)?(CUDA_ERROR_OUT_OF_MEMORY|hipError_t\(1002\))",
    ),
    host_alloc: re(
        r"failed\s*to\s*alloc\s*(\d+)\s*bytes\s*on\s*host\s*:\s*CUDA_ERROR_OUT_OF_MEMORY",
    ),
    // The cudaMallocAsync allocator (TF_GPU_ALLOCATOR=cuda_malloc_async in
    // TensorFlow, XLA's `gpu_cudamallocasync_allocator.cc` under JAX):
    // `gpu_async_0 cuMemAllocAsync failed to allocate N bytes: <status>` and,
    // on the record's next line, ` Reported by CUDA: Free memory/Total
    // memory: F/T`, both in bytes, from cuMemGetInfo after the failure.
    malloc_async: re(r"cuMemAllocAsync\s*failed\s*to\s*allocate\s*(\d+)\s*bytes"),
    driver_free_total: re(r"Free\s*memory\s*/\s*Total\s*memory\s*:\s*(\d+)\s*/\s*(\d+)"),
    resource_exhausted: re(r"RESOURCE_EXHAUSTED|Resource\s*exhausted"),
    xla_bytes: re(
        r"Out\s*of\s*memory\s*(?:while\s*trying\s*to\s*allocate|allocating)\s*(\d+)\s*bytes",
    ),
    xla_request: re(
        r"Failed\s*to\s*allocate\s*request\s*for\s*{SIZE}\s*(?:\((\d+)\s*B\))?(?:\s*on\s*device\s*ordinal\s*(\d+))?",
    ),
    tpu_hbm: re(
        r"Ran\s*out\s*of\s*memory\s*in\s*memory\s*space\s*(\w+)\.?\s*(?:Used\s*{SIZE}\s*of\s*{SIZE})?",
    ),
    // The TPU runtime (libtpu, closed source; the wording as PyTorch/XLA and
    // TensorFlow TPU users quote it: pytorch/xla issues 1735, 2569, 3470,
    // 4847, huggingface/transformers issue 22328): `Attempting to reserve
    // 6.48G at the bottom of memory. That was not possible. There are 6.78G
    // free, 0B reserved, and 3.33G reservable.` for a program, `Attempting to
    // allocate 180.59M. That was not possible. There are 142.58M free.` for a
    // buffer.
    tpu_reserve: re(
        r"Attempting\s*to\s*(?:reserve|allocate)\s*{SIZE}(?:\s*at\s*the\s*bottom\s*of\s*memory)?\.\s*That\s*was\s*not\s*possible\.(?:\s*There\s*are\s*{SIZE}\s*free)?",
    ),
    // The GPU device's Eigen allocator, whose caller does not check for
    // null (tensorflow/core/common_runtime/gpu/gpu_device.cc,
    // EigenGpuStreamDevice::allocate): `LOG(FATAL) << "EigenAllocator for GPU
    // ran out of memory when allocating " << num_bytes << ". See error logs
    // ..."` without a kernel context, the ResourceExhausted status `Ran out of
    // GPU memory when allocating N bytes for <op>` with one; Intel's
    // extension for TensorFlow prints the first with ` bytes`.
    eigen: re(
        r"(?:EigenAllocator\s*for\s*GPU\s*ran\s*out\s*of\s*memory|\bRan\s*out\s*of\s*GPU\s*memory)\s*when\s*allocating\s*(\d+)(?:\s*bytes(?:\s*for\s*([\w/.\-]+))?)?",
    ),
    // The stream executor creating its CUDA context (cuda_driver.cc,
    // `GpuDriver::CreateContext`): `failed call to cuDevicePrimaryCtxRetain:
    // CUDA_ERROR_OUT_OF_MEMORY[: out of memory]; total memory reported: N`,
    // raised as `failed initializing StreamExecutor for CUDA device ordinal
    // D`. N is the card's total memory in bytes.
    context_retain: re(
        r"failed\s*call\s*to\s*cuDevicePrimaryCtxRetain\s*:\s*CUDA_ERROR_OUT_OF_MEMORY(?:\s*:\s*out\s*of\s*memory)?(?:\s*;\s*total\s*memory\s*reported\s*:\s*(\d+))?",
    ),
    // A copy between devices whose destination buffer is null: the
    // device's allocator returned nothing for it (TensorFlow's copy checks,
    // common_runtime/gpu/gpu_util.cc and pluggable_device_util.cc: `if
    // (dst->TotalBytes() > 0 && !dst->IsInitialized()) return
    // errors::Internal("Dst tensor is not initialized.")`). Raised as
    // `InternalError`, often after `Failed copying input tensor from
    // /job:.../device:CPU:0 to /job:.../device:GPU:0 in order to run X`.
    dst_uninitialized: re(
        r"(?:Failed\s*copying\s*input\s*tensor\s*from\s*\S+\s*to\s*\S+\s*in\s*order\s*to\s*run\s*\w+\s*:\s*)?Dst\s*tensor\s*is\s*not\s*initialized",
    ),
    copy_destination: re(r"\bto\s*/job:\S*?/device:(GPU|CPU):(\d+)"),
    op: re(r"\[Op:(\w+)\]|(?i:node):?\s+([\w/.\-]+)|by\s*op\s+(\w+)"),
    kernel_file: re(r"OP_REQUIRES\s*failed\s*at\s*(\w+)\.cc:\d+"),
    // TensorFlow before 1.4 printed legacy device names (`/job:localhost/
    // replica:0/task:0/gpu:0`, DeviceNameUtils::LegacyName in
    // tensorflow/core/util/device_name_utils.cc); later ones `/device:GPU:0`.
    tf_device: re(r"/(?:device:(GPU|CPU|TPU|XLA_GPU)|(gpu|cpu)):(\d+)"),
});

/// TensorFlow's dtype names and their sizes in bytes (tensorflow/core/
/// framework/types.cc `DataTypeStringInternal`).
fn dtype_bytes(name: &str) -> Option<u64> {
    Some(match name {
        "float" | "int32" | "uint32" | "qint32" => 4,
        "double" | "int64" | "uint64" | "complex64" => 8,
        "half" | "bfloat16" | "int16" | "uint16" | "qint16" | "quint16" => 2,
        "int8" | "uint8" | "bool" | "qint8" | "quint8" | "float8_e4m3fn" | "float8_e5m2" => 1,
        "complex128" => 16,
        _ => return None,
    })
}

pub(crate) fn parse(text: &str) -> Option<Parsed> {
    let p = &*P;
    if let Some(c) = p.oom_tensor.captures(text) {
        let mut parsed = Parsed::new(
            Framework::TensorFlow,
            DeviceKind::Unknown,
            message_from(text, &p.oom_tensor),
        );
        let dims: Option<Vec<u64>> = c.get(1).and_then(|shape| {
            shape
                .as_str()
                .split(',')
                .filter(|d| !d.trim().is_empty())
                .map(|d| d.trim().parse::<u64>().ok())
                .collect()
        });
        // Without its dtype (older releases, quoted excerpts) the shape
        // alone does not give the bytes.
        let dtype = c.get(2).and_then(|t| dtype_bytes(t.as_str()));
        if let (Some(dims), Some(size)) = (dims, dtype) {
            parsed.memory.requested_bytes =
                dims.iter().try_fold(size, |acc, d| acc.checked_mul(*d));
            parsed.exact_request = true;
        }
        tf_device(text, &mut parsed);
        tf_op(text, &mut parsed);
        return Some(parsed);
    }
    if let Some(c) = p.bfc.captures(text) {
        let mut parsed = Parsed::new(
            Framework::TensorFlow,
            DeviceKind::Unknown,
            message_from(text, &p.bfc),
        );
        // The count in bytes as asked, else the rounded block (the printed
        // size is itself rounded to two decimals).
        parsed.memory.requested_bytes = c
            .get(4)
            .or(c.get(5))
            .and_then(|m| m.as_str().parse().ok())
            .or_else(|| size_at(&c, 2));
        parsed.exact_request = c.get(5).is_some() || c.get(4).is_some();
        // The oldest BFC line names no allocator: `Ran out of memory trying
        // to allocate 2.0KiB.  See logs for memory state.`
        let allocator = c.get(1).map_or("", |m| m.as_str());
        if let Some((kind, index)) = allocator_device(allocator) {
            parsed.device.kind = kind;
            parsed.device.index = index;
        } else if text.contains("itex/") {
            // ITEX runs TensorFlow on Intel GPUs.
            parsed.device.kind = DeviceKind::Xpu;
        }
        parsed.kind = PartKind::Preliminary;
        if says_non_fatal(text) {
            return None;
        }
        tf_op(text, &mut parsed);
        return Some(parsed);
    }
    // The stream executor's allocation failures: TensorFlow sizing its pool
    // at start (it retries 10% smaller), or pinned host memory. JAX logs them
    // from `external/xla/`, TensorFlow from `tensorflow/` or `external/local_xla/`.
    let framework = if text.contains("jax") || text.contains("external/xla/") {
        Framework::Jax
    } else {
        Framework::TensorFlow
    };
    if let Some(c) = p.malloc_async.captures(text) {
        // The same file serves both; TensorFlow's copy logs from its own
        // tree or from `external/local_xla/`.
        let framework = if text.contains("tensorflow") || text.contains("local_xla") {
            Framework::TensorFlow
        } else {
            Framework::Jax
        };
        let mut parsed = Parsed::new(
            framework,
            DeviceKind::Cuda,
            message_from(text, &p.malloc_async),
        );
        parsed.memory.requested_bytes = c[1].parse().ok();
        parsed.exact_request = true;
        if let Some(f) = p.driver_free_total.captures(text) {
            parsed.memory.free_bytes = f[1].parse().ok();
            parsed.memory.total_bytes = f[2].parse().ok();
        }
        return Some(parsed);
    }
    if let Some(c) = p.stream_executor.captures(text) {
        let kind = if c[4].starts_with("hip") {
            DeviceKind::Rocm
        } else {
            DeviceKind::Cuda
        };
        let mut parsed = Parsed::new(framework, kind, message_from(text, &p.stream_executor));
        // hipTensorFlow (2017) printed the size alone, without its bytes.
        let bytes = c.get(3).and_then(|m| m.as_str().parse().ok());
        parsed.exact_request = bytes.is_some();
        parsed.memory.requested_bytes = bytes.or_else(|| size_at(&c, 1));
        parsed.kind = PartKind::Preliminary;
        parsed.facts.kind = EventKind::PoolReservation;
        return Some(parsed);
    }
    if let Some(c) = p.eigen.captures(text) {
        let mut parsed = Parsed::new(
            Framework::TensorFlow,
            DeviceKind::Cuda,
            message_from(text, &p.eigen),
        );
        // Eigen asks for 0 bytes when the allocator already failed: no request.
        parsed.memory.requested_bytes = c[1].parse().ok().filter(|n| *n > 0);
        parsed.exact_request = parsed.memory.requested_bytes.is_some();
        parsed.facts.op = c.get(2).map(|m| m.as_str().to_string());
        return Some(parsed);
    }
    if let Some(c) = p.context_retain.captures(text) {
        let mut parsed = Parsed::new(
            framework,
            DeviceKind::Cuda,
            message_from(text, &p.context_retain),
        );
        parsed.memory.total_bytes = c.get(1).and_then(|m| m.as_str().parse().ok());
        parsed.device.index = device_index(text);
        parsed.phase_hint = Some(Phase::Startup);
        return Some(parsed);
    }
    if let Some(c) = p.host_alloc.captures(text) {
        let mut parsed = Parsed::new(
            framework,
            DeviceKind::Cpu,
            message_from(text, &p.host_alloc),
        );
        parsed.memory.requested_bytes = c[1].parse().ok();
        parsed.exact_request = true;
        parsed.kind = PartKind::Preliminary;
        return Some(parsed);
    }
    if p.dst_uninitialized.is_match(text) {
        let mut parsed = Parsed::new(
            Framework::TensorFlow,
            DeviceKind::Unknown,
            message_from(text, &p.dst_uninitialized),
        );
        // The copy's destination names the device that had no room.
        if let Some(c) = p.copy_destination.captures(text) {
            parsed.device.kind = if &c[1] == "GPU" {
                DeviceKind::Cuda
            } else {
                DeviceKind::Cpu
            };
            parsed.device.index = c[2].parse().ok();
        }
        tf_op(text, &mut parsed);
        return Some(parsed);
    }
    // XLA's compiler reports a program that does not fit a memory space
    // (`Ran out of memory in memory space hbm. Used X of Y hbm.`) with or
    // without the RESOURCE_EXHAUSTED status it is raised with.
    if p.resource_exhausted.is_match(text)
        || p.xla_request.is_match(text)
        || p.tpu_hbm.is_match(text)
        || p.tpu_reserve.is_match(text)
    {
        let mut parsed = Parsed::new(Framework::Jax, DeviceKind::Unknown, String::new());
        let key = if p.resource_exhausted.is_match(text) {
            &p.resource_exhausted
        } else if p.xla_request.is_match(text) {
            &p.xla_request
        } else if p.tpu_hbm.is_match(text) {
            &p.tpu_hbm
        } else {
            &p.tpu_reserve
        };
        parsed.message = message_from(text, key);
        parsed.memory.requested_bytes = find_u64(&p.xla_bytes, text);
        if let Some(c) = p.xla_request.captures(text) {
            parsed.memory.requested_bytes = c
                .get(3)
                .and_then(|m| m.as_str().parse().ok())
                .or_else(|| size_at(&c, 1));
            parsed.device.index = c.get(4).and_then(|m| m.as_str().parse().ok());
            // "device ordinal" is XLA's GPU allocator speaking.
            if parsed.device.index.is_some() {
                parsed.device.kind = DeviceKind::Cuda;
            }
        }
        if let Some(c) = p.tpu_reserve.captures(text) {
            parsed.memory.requested_bytes = size_at(&c, 1);
            parsed.memory.free_bytes = size_at(&c, 3);
        }
        // TPU memory: the reference has no TPU device kind, so the kind stays unknown.
        if let Some(c) = p.tpu_hbm.captures(text) {
            // "Used X of Y hbm": X is what the program needs.
            parsed.memory.requested_bytes = size_at(&c, 2);
            parsed.memory.total_bytes = size_at(&c, 4);
        }
        // TensorFlow's own words around XLA's: its exception class, the
        // function graph it names (`{{function_node __inference_train_
        // function_453721}}`) and its count of a step's errors (`9 root
        // error(s) found.`). The status `Resource exhausted:` is no mark:
        // jaxlib before 0.4 raised `RuntimeError: Resource exhausted: ...`.
        const TENSORFLOW_WORDS: &[&str] = &[
            "OOM when allocating",
            "tensorflow",
            "ResourceExhaustedError",
            "{{function_node",
            "root error(s) found",
        ];
        if TENSORFLOW_WORDS.iter().any(|w| text.contains(w)) {
            parsed.framework = Framework::TensorFlow;
        }
        // A bare RESOURCE_EXHAUSTED may be a quota or rate limit (gRPC uses
        // the same code): require a memory word.
        let lower = text.to_ascii_lowercase();
        if !(lower.contains("memory") || lower.contains("allocate")) {
            return None;
        }
        if text.contains("CUDA") || text.contains("GPU") {
            parsed.device.kind = DeviceKind::Cuda;
        }
        tf_op(text, &mut parsed);
        return Some(parsed);
    }
    None
}

/// The BFC allocator's `Stats:` dump printed before the failure (bfc_allocator.cc
/// `DumpMemoryLog` then `Stats::DebugString`: `Limit:` is the pool the
/// allocator was given, `InUse:` what live tensors hold, both in bytes).
/// Only the dump closest to the failure counts.
pub(crate) fn fill_pool_stats(before: &[String], memory: &mut crate::oom::MemoryFigures) {
    let recent = &before[before.len().saturating_sub(60)..];
    if let Some(stats) = pool_stats(recent.iter().rev()) {
        set_pool_stats(stats, memory);
    }
}

/// True when the allocator's warning announces its dump under it (`ran out
/// of memory trying to allocate 2.00GiB.  Current allocation summary
/// follows.`).
pub(crate) fn announces_pool_dump(text: &str) -> bool {
    text.contains("allocation summary follows")
}

/// The same dump printed after the warning that announces it, when no dump
/// came before: the first one in `after`.
pub(crate) fn fill_pool_stats_after(after: &[String], memory: &mut crate::oom::MemoryFigures) {
    if let Some(stats) = pool_stats(after.iter()) {
        set_pool_stats(stats, memory);
    }
}

/// The first `Limit:` and `InUse:` figures in `lines`, in their order.
fn pool_stats<'a>(lines: impl Iterator<Item = &'a String> + Clone) -> Option<(u64, u64)> {
    static LIMIT: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*Limit:\s+(\d+)\s*$"));
    static IN_USE: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*InUse:\s+(\d+)\s*$"));
    let first = |re: &Regex| {
        lines
            .clone()
            .find_map(|l| re.captures(l)?.get(1)?.as_str().parse::<u64>().ok())
    };
    Some((first(&LIMIT)?, first(&IN_USE)?))
}

fn set_pool_stats((limit, in_use): (u64, u64), memory: &mut crate::oom::MemoryFigures) {
    if memory.allowed_bytes.is_none() && memory.allocated_bytes.is_none() {
        memory.allowed_bytes = Some(limit);
        memory.allocated_bytes = Some(in_use);
    }
}

/// The device's total and free memory as TensorFlow logged them when it
/// found the GPU, before it took its pool (core/common_runtime/gpu/
/// gpu_device.cc: `Found device 0 with properties:` then `Total memory:
/// 7.92GiB` and `Free memory: 190.31MiB` on their own lines in TF 1.0-1.4,
/// `totalMemory: 7.92GiB freeMemory: 7.80GiB` on one line in 1.5-1.13).
/// Read from the lines before the failure and after it (a report pasting
/// them under the error); the device the failure names, else the only one
/// logged. Fills only what the message left unknown.
pub(crate) fn fill_device_log(before: &[String], after: &[String], parsed: &mut Parsed) {
    static FIGURES: LazyLock<(Regex, Regex, Regex)> = LazyLock::new(|| {
        (
            re(r"Found\s*device\s*(\d+)\s*with\s*properties"),
            re(r"(?:Total\s*memory:|totalMemory:)\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B)"),
            re(r"(?:Free\s*memory:|freeMemory:)\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B)"),
        )
    });
    let (found, total, free) = &*FIGURES;
    let m = &parsed.memory;
    if m.total_bytes.is_some() && m.free_bytes.is_some() {
        return;
    }
    let recent = &before[before.len().saturating_sub(60)..];
    // (device, total, free) of each device logged, in order.
    let mut devices: Vec<(Option<u32>, Option<u64>, Option<u64>)> = Vec::new();
    for line in recent.iter().chain(after.iter()) {
        if !(line.contains("emory:") || line.contains("Found device")) {
            continue;
        }
        if let Some(c) = found.captures(line) {
            devices.push((c[1].parse().ok(), None, None));
        }
        let size = |re: &Regex| {
            let c = re.captures(line)?;
            crate::size::log_figure_to_bytes(&c[1], &c[2])
        };
        if devices.is_empty() {
            devices.push((None, None, None));
        }
        let last = devices.last_mut().expect("one device pushed");
        last.1 = last.1.or(size(total));
        last.2 = last.2.or(size(free));
    }
    let chosen = match parsed.device.index {
        Some(i) => devices.iter().rev().find(|d| d.0 == Some(i)),
        None if devices.len() == 1 => devices.first(),
        None => None,
    };
    if let Some(&(_, t, f)) = chosen {
        let m = &mut parsed.memory;
        m.total_bytes = m.total_bytes.or(t);
        m.free_bytes = m.free_bytes.or(f);
    }
}

/// The TPU runtime's memory report printed under a failed reservation
/// (libtpu; quoted in pytorch/xla issues 1735 and 3470 and in TensorFlow TPU
/// reports): `HBM capacity 8.00G:` then aligned rows such as `Currently
/// allocated:    6.08G (   6,532,939,776 bytes)`. The exact byte count in
/// parentheses wins over the rounded figure. Fills only what the message
/// left unknown.
/// The message may have taken the report's first rows as its continuation,
/// so both it and the lines after it are read.
pub(crate) fn fill_tpu_report(
    text: &str,
    after: &[String],
    memory: &mut crate::oom::MemoryFigures,
) {
    static CAPACITY: LazyLock<Regex> = LazyLock::new(|| re(r"HBM\s*capacity\s*{SIZE}\s*:"));
    static ALLOCATED: LazyLock<Regex> =
        LazyLock::new(|| re(r"Currently\s*allocated:\s*{SIZE}(?:\s*\(\s*([\d,]+)\s*bytes\))?"));
    let report = std::iter::once(text).chain(after.iter().take(12).map(String::as_str));
    for line in report {
        if memory.total_bytes.is_none() {
            if let Some(c) = CAPACITY.captures(line) {
                memory.total_bytes = size_at(&c, 1);
            }
        }
        if memory.allocated_bytes.is_none() {
            if let Some(c) = ALLOCATED.captures(line) {
                let exact = c
                    .get(3)
                    .and_then(|b| b.as_str().replace(',', "").parse().ok());
                memory.allocated_bytes = exact.or_else(|| size_at(&c, 1));
            }
        }
    }
}

/// The device of a TensorFlow failure its own line leaves unsaid, from the
/// graph node printed under it (`[[Node: ... _device="/job:localhost/
/// replica:0/task:0/gpu:0"](...)]]`), indented by spaces or a tab.
pub(crate) fn device_from_node_lines(after: &[String], parsed: &mut Parsed) {
    if parsed.device.kind != DeviceKind::Unknown && parsed.device.index.is_some() {
        return;
    }
    // The node line may keep its log level (`E \t [[Node: ...]]`).
    let node = after.iter().take(4).find(|l| {
        let l = l.trim_start();
        let l = l
            .strip_prefix(['E', 'W', 'I', 'F'])
            .filter(|rest| rest.starts_with([' ', '\t']))
            .unwrap_or(l);
        l.trim_start().starts_with("[[") && l.contains("_device=")
    });
    let Some(line) = node else {
        return;
    };
    // The index is what is missing here; a node on another kind of device
    // than the event already names is not this failure's.
    let known = parsed.device;
    tf_device(line, parsed);
    if known.kind != DeviceKind::Unknown && parsed.device.kind != known.kind {
        parsed.device = known;
    }
}

/// Lines around an XLA or TensorFlow error read for the allocator that
/// refused it.
const ALLOCATOR_LINES: usize = 6;

/// Fills the device of a TensorFlow or JAX error that names none from the
/// BFC allocator's own lines a few lines around it: the allocator is named
/// for its device (`Allocator (GPU_0_bfc) ran out of memory trying to
/// allocate 3.37GiB`, tsl/framework/bfc_allocator.cc), also when it logs a
/// retry as no failure before JAX raises `RESOURCE_EXHAUSTED: Out of memory
/// while trying to allocate N bytes`.
pub(crate) fn device_from_allocator_lines(
    before: &[String],
    after: &[String],
    parsed: &mut Parsed,
) {
    static ALLOCATOR: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\bAllocator \((\w+_bfc)\)|\bby allocator (\w+_bfc)\b")
            .expect("pattern compiles")
    });
    if parsed.device.kind != DeviceKind::Unknown {
        return;
    }
    let near = before
        .iter()
        .rev()
        .take(ALLOCATOR_LINES)
        .chain(after.iter().take(ALLOCATOR_LINES));
    let found = near
        .filter_map(|l| ALLOCATOR.captures(l))
        .find_map(|c| allocator_device(c.get(1).or(c.get(2))?.as_str()));
    if let Some((kind, index)) = found {
        parsed.device.kind = kind;
        parsed.device.index = parsed.device.index.or(index);
    }
}

/// The device a BFC allocator is named for (`GPU_0_bfc`: GPU 0, `cpu`:
/// the host), `None` for a name that gives none.
fn allocator_device(allocator: &str) -> Option<(DeviceKind, Option<u32>)> {
    if let Some(index) = allocator.strip_prefix("GPU_") {
        let index = index.split('_').next().and_then(|i| i.parse().ok());
        Some((DeviceKind::Cuda, index))
    } else if allocator.to_ascii_lowercase().contains("cpu") {
        Some((DeviceKind::Cpu, None))
    } else {
        None
    }
}

fn tf_device(text: &str, parsed: &mut Parsed) {
    if let Some(c) = P.tf_device.captures(text) {
        let name = c.get(1).or(c.get(2)).map_or("", |m| m.as_str());
        parsed.device.kind = match name {
            "GPU" | "XLA_GPU" | "gpu" => DeviceKind::Cuda,
            "CPU" | "cpu" => DeviceKind::Cpu,
            _ => DeviceKind::Unknown,
        };
        parsed.device.index = c[3].parse().ok();
    } else if let Some(i) = device_index(text) {
        parsed.device = crate::oom::Device {
            kind: DeviceKind::Cuda,
            index: Some(i),
        };
    }
}

/// The device a TensorFlow failure ran on when its own line does not say
/// (the stream executor's `failed to allocate N from device`): the devices
/// TensorFlow created before it (`Creating TensorFlow device (/gpu:0) ->
/// (device: 0, ...)`, `Created TensorFlow device (/job:.../device:GPU:0
/// with N MB memory) -> physical GPU (device: 0, ...)`,
/// tensorflow/core/common_runtime/gpu/gpu_device.cc), when they were all
/// the same one.
pub(crate) fn device_from_context(before: &[String], parsed: &mut Parsed) {
    static CREATED: LazyLock<Regex> = LazyLock::new(|| {
        re(r"Creat(?:ed|ing)\s*TensorFlow\s*device\s*\((?:\S*/device:GPU:|/gpu:)(\d+)")
    });
    if parsed.device.index.is_some() {
        return;
    }
    let mut indices = before
        .iter()
        .filter(|l| l.contains("TensorFlow device"))
        .filter_map(|l| CREATED.captures(l)?.get(1)?.as_str().parse::<u32>().ok());
    let Some(first) = indices.next() else {
        return;
    };
    if indices.all(|i| i == first) {
        parsed.device.index = Some(first);
    }
}

/// The op TensorFlow names; an op whose name ends in `Grad` runs in the
/// backward pass, one an optimizer adds (Keras's `training/Adam/...`,
/// `ApplyAdam`, `ResourceApplyGradientDescent`) in its step.
fn tf_op(text: &str, parsed: &mut Parsed) {
    if let Some(c) = P.op.captures(text) {
        let op = c
            .get(1)
            .or(c.get(2))
            .or(c.get(3))
            .map(|m| m.as_str().to_string());
        if let Some(op) = op {
            parsed.phase_hint = phase_of_node(&op).or(parsed.phase_hint);
            parsed.facts.op = Some(op);
        }
    }
    if parsed.phase_hint.is_none() {
        parsed.phase_hint = P
            .kernel_file
            .captures(text)
            .and_then(|c| phase_of_kernel_file(&c[1]));
    }
}

/// The pass a kernel's source file serves, from the `OP_REQUIRES failed at
/// conv_grad_input_ops.cc:408` TensorFlow logs: tensorflow/core/kernels
/// puts gradient kernels in files named for them (`conv_grad_input_ops.cc`,
/// `conv_grad_filter_ops.cc`, `depthwise_conv_grad_op.cc`) and the
/// optimizers' update kernels in `training_ops.cc`. Other files hold
/// forward kernels, some with their gradients beside them, so they say
/// nothing.
fn phase_of_kernel_file(file: &str) -> Option<Phase> {
    if file.contains("_grad") {
        Some(Phase::Backward)
    } else if file == "training_ops" {
        Some(Phase::OptimizerStep)
    } else {
        None
    }
}

/// What a graph node's path says it computes: gradients are the backward
/// pass, an optimizer's ops its step, initializers and assignments build the
/// weights, any other scoped node of the model runs its forward pass; `None`
/// for a bare name.
pub(crate) fn phase_of_node(op: &str) -> Option<Phase> {
    if op.contains("Grad") || op.contains("gradient") {
        Some(Phase::Backward)
    } else if op.contains("Initializer") || op.contains("/initial_value") {
        // Initializers run when the variables are created, an optimizer's
        // slots too (`embeddings/Adam/Initializer/zeros`, TF 1's
        // slot_creator), and so does the constant a variable starts from
        // (`Variable_10/initial_value`, tf.Variable's own scope in
        // ops/variables.py): before any step.
        Some(Phase::ModelLoad)
    } else if optimizer_op(op) {
        Some(Phase::OptimizerStep)
    } else if op.contains("/Assign") || op.ends_with("Assign") {
        Some(Phase::ModelLoad)
    } else if op.split('/').any(samples_tokens) {
        Some(Phase::Generation)
    } else if op.contains('/') {
        Some(Phase::Forward)
    } else {
        None
    }
}

/// True for a name scope of a token-sampling loop: GPT-2's
/// `sample_sequence` (openai/gpt-2 src/sample.py, and the tools built on
/// it), a beam search, a `generate` or greedy-decoding scope. A decoder's
/// own scope (`decoder/while`) also runs in training: not read.
fn samples_tokens(scope: &str) -> bool {
    let s = scope.to_ascii_lowercase();
    s == "sample_sequence"
        || s.starts_with("beam_search")
        || s.starts_with("generate")
        || s.starts_with("greedy")
}

/// True for an op an optimizer adds: TensorFlow's update kernels
/// (`ApplyAdam`, `ResourceApplyMomentum`, tensorflow/core/kernels/
/// training_ops.cc) and nodes in an optimizer's name scope (Keras names the
/// scope after the optimizer class: `training/Adam/...`, `SGD/...`).
fn optimizer_op(op: &str) -> bool {
    const OPTIMIZERS: &[&str] = &[
        "Adam",
        "AdamW",
        "Adamax",
        "Nadam",
        "SGD",
        "RMSprop",
        "RMSProp",
        "Adagrad",
        "Adadelta",
        "Ftrl",
        "Momentum",
        "GradientDescent",
        "Lamb",
        "LAMB",
    ];
    op.split('/').any(|part| {
        let kernel = part
            .strip_prefix("Resource")
            .unwrap_or(part)
            .strip_prefix("Apply")
            .or_else(|| part.strip_prefix("SparseApply"));
        kernel.is_some_and(|k| OPTIMIZERS.iter().any(|o| k.starts_with(o)))
            || OPTIMIZERS.contains(&part)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intel_s_extension_names_no_allocator_and_counts_bytes() {
        let e = parse("E itex/core/devices/bfc_allocator.cc:101] Allocator ran out of memory trying to allocate 10529419660 Bytes (rounded to 10529419776 Bytes)")
            .expect("an event");
        assert_eq!(e.framework, Framework::TensorFlow);
        assert_eq!(e.device.kind, DeviceKind::Xpu);
        assert_eq!(e.memory.requested_bytes, Some(10529419660));
        // TensorFlow's own line keeps its rounded block and its GPU.
        let e = parse("Allocator (GPU_0_bfc) ran out of memory trying to allocate 4.50GiB (rounded to 4831838208)requested by op model/conv2d/Conv2D")
            .expect("an event");
        assert_eq!(e.memory.requested_bytes, Some(4831838208));
        assert_eq!(e.device.kind, DeviceKind::Cuda);
    }

    #[test]
    fn the_tpu_report_under_a_failed_reservation_gives_capacity_and_allocated() {
        let text = "RuntimeError: Resource exhausted: From /job:tpu_worker/replica:0/task:0: Attempting to reserve 3.95G at the bottom of memory. That was not possible. There are 1.92G free, 0B reserved, and 1.92G reservable.; HBM capacity 8.00G:";
        let after = [
            "       Top-of-Memory reserved:  529.00M (     554,696,704 bytes)".to_string(),
            "          Currently allocated:    6.08G (   6,532,939,776 bytes)".to_string(),
        ];
        let mut m = crate::oom::MemoryFigures::default();
        fill_tpu_report(text, &after, &mut m);
        assert_eq!(m.total_bytes, Some(8 << 30));
        assert_eq!(m.allocated_bytes, Some(6_532_939_776));
        // What the message itself gave is kept.
        let mut m = crate::oom::MemoryFigures {
            total_bytes: Some(1),
            ..Default::default()
        };
        fill_tpu_report(text, &after, &mut m);
        assert_eq!(m.total_bytes, Some(1));
    }

    #[test]
    fn the_eigen_allocator_in_each_wording() {
        // TensorFlow 1.x's fatal log (tensorflow/tensorflow issue 12147,
        // CharlesShang/FastMaskRCNN issues 15 and 129): Eigen asked for 0.
        let e = parse(": F tensorflow/core/common_runtime/gpu/gpu_device.cc:103] EigenAllocator for GPU ran out of memory when allocating 0. See error logs for more detailed info.")
            .expect("an event");
        assert_eq!(e.framework, Framework::TensorFlow);
        assert_eq!(e.device.kind, DeviceKind::Cuda);
        assert_eq!(e.memory.requested_bytes, None);
        assert!(e.message.contains("EigenAllocator for GPU"));
        // Intel's extension prints the size in bytes.
        let e = parse("EigenAllocator for GPU ran out of memory when allocating 4096 bytes. See error logs for more detailed information.")
            .expect("an event");
        assert_eq!(e.memory.requested_bytes, Some(4096));
        // The status raised inside a kernel names the op.
        let e = parse("tensorflow.python.framework.errors_impl.ResourceExhaustedError: Ran out of GPU memory when allocating 1048576 bytes for conv2d/Conv2D")
            .expect("an event");
        assert_eq!(e.memory.requested_bytes, Some(1048576));
        assert_eq!(e.facts.op.as_deref(), Some("conv2d/Conv2D"));
    }

    #[test]
    fn the_stream_executor_context_and_its_total() {
        let e = parse("2017-11-15 11:04:54.020997: E tensorflow/core/common_runtime/direct_session.cc:137] Internal: failed initializing StreamExecutor for CUDA device ordinal 0: Internal: failed call to cuDevicePrimaryCtxRetain: CUDA_ERROR_OUT_OF_MEMORY; total memory reported: 12782075904")
            .expect("an event");
        assert_eq!(e.framework, Framework::TensorFlow);
        assert_eq!(e.device.kind, DeviceKind::Cuda);
        assert_eq!(e.device.index, Some(0));
        assert_eq!(e.memory.total_bytes, Some(12782075904));
        let e = parse("failed call to cuDevicePrimaryCtxRetain: CUDA_ERROR_OUT_OF_MEMORY: out of memory; total memory reported: 11554848768")
            .expect("an event");
        assert_eq!(e.memory.total_bytes, Some(11554848768));
    }

    #[test]
    fn the_driver_allocation_with_xla_s_status_between() {
        let e = parse("2024-12-17 12:39:33.030218: I external/local_xla/xla/stream_executor/cuda/cuda_driver.cc:1193] failed to allocate 2.2KiB (2304 bytes) from device: RESOURCE_EXHAUSTED: : CUDA_ERROR_OUT_OF_MEMORY: out of memory")
            .expect("an event");
        assert_eq!(e.memory.requested_bytes, Some(2304));
        assert_eq!(e.device.kind, DeviceKind::Cuda);
        let e = parse("E C:\\tf_jenkins\\home\\workspace\\rel-win\\M\\windows-gpu\\PY\\35\\tensorflow\\stream_executor\\cuda\\cuda_driver.cc:924] failed to allocate 2.44G (2617515264 bytes) from device: CUDA_ERROR_OUT_OF_MEMORY")
            .expect("an event");
        assert_eq!(e.memory.requested_bytes, Some(2617515264));
        // hipTensorFlow's line without the bytes: the size as printed.
        let e = parse("mnist.py: failed to allocate 8.00G from device: hipError_t(1002)")
            .expect("an event");
        assert_eq!(e.device.kind, DeviceKind::Rocm);
        assert!(e.facts.pool_reservation());
        assert_eq!(e.memory.requested_bytes, Some(8 << 30));
    }

    #[test]
    fn legacy_device_names_give_the_gpu_and_its_index() {
        let e = parse("ResourceExhaustedError: OOM when allocating tensor with shape[10000,14,14,64]\n\t [[Node: Conv2D_1 = Conv2D[_device=\"/job:localhost/replica:0/task:0/gpu:1\"](MaxPool)]]")
            .expect("an event");
        assert_eq!(e.device.kind, DeviceKind::Cuda);
        assert_eq!(e.device.index, Some(1));
    }

    #[test]
    fn the_node_line_under_the_error_names_its_device() {
        let mut e = parse("ResourceExhaustedError (see above for traceback): OOM when allocating tensor with shape[256,112,112,64]")
            .expect("an event");
        e.device.kind = DeviceKind::Unknown;
        let after = vec![
            "     [[Node: a/b = SquaredDifference[T=DT_FLOAT, _device=\"/job:localhost/replica:0/task:0/gpu:0\"](a, b)]]".to_string(),
        ];
        device_from_node_lines(&after, &mut e);
        assert_eq!(e.device.kind, DeviceKind::Cuda);
        assert_eq!(e.device.index, Some(0));
        let mut none = e.clone();
        none.device.kind = DeviceKind::Unknown;
        none.device.index = None;
        device_from_node_lines(&[], &mut none);
        assert_eq!(none.device.kind, DeviceKind::Unknown);
        // A node line that kept its log level gives the index the error's
        // own words left out.
        let mut indexless = e.clone();
        indexless.device.index = None;
        let logged = vec![
            "E \t [[Node: tower_1/ReverseSequence = ReverseSequence[T=DT_FLOAT, _device=\"/job:localhost/replica:0/task:0/gpu:1\"](a, b)]]".to_string(),
        ];
        device_from_node_lines(&logged, &mut indexless);
        assert_eq!(indexless.device.kind, DeviceKind::Cuda);
        assert_eq!(indexless.device.index, Some(1));
    }

    #[test]
    fn the_allocator_s_lines_around_an_xla_error_name_its_device() {
        let mut e = parse("jaxlib.xla_extension.XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying to allocate 3199993600 bytes.")
            .expect("an event");
        assert_eq!(e.device.kind, DeviceKind::Unknown);
        let after = vec![
            String::new(),
            "2025-05-18 21:59:55.086788: W external/xla/xla/tsl/framework/bfc_allocator.cc:310] Allocator (GPU_1_bfc) ran out of memory trying to allocate 3.37GiB with freed_by_count=0. The caller indicates that this is not a failure".to_string(),
        ];
        let mut unnamed = e.clone();
        device_from_allocator_lines(&[], &after, &mut e);
        assert_eq!((e.device.kind, e.device.index), (DeviceKind::Cuda, Some(1)));
        // Nothing near names an allocator: the device stays unknown.
        device_from_allocator_lines(&[], &[], &mut unnamed);
        assert_eq!(unnamed.device.kind, DeviceKind::Unknown);
    }

    #[test]
    fn optimizer_scopes_and_kernels_are_the_step() {
        assert!(optimizer_op("training/Adam/Variable_12"));
        assert!(optimizer_op("ResourceApplyAdam"));
        assert!(optimizer_op("SGD/update_dense/mul"));
        assert!(!optimizer_op("model/dense/MatMul"));
        assert!(!optimizer_op("Adamson/conv1"));
        let e = parse("ResourceExhaustedError: OOM when allocating tensor with shape[4096,4096] and type float on /job:localhost/replica:0/task:0/device:GPU:0 by allocator GPU_0_bfc\n\t [[Node: training/Adam/Variable_12/Assign = Assign[T=DT_FLOAT]]]")
            .expect("an event");
        assert_eq!(e.phase_hint, Some(Phase::OptimizerStep));
        // Gradients under the optimizer's scope are still the backward pass.
        let e = parse("OOM when allocating tensor with shape[64,128] and type float [[{{node training/Adam/gradients/dense/MatMul_grad/MatMul}}]]")
            .expect("an event");
        assert_eq!(e.phase_hint, Some(Phase::Backward));
    }

    #[test]
    fn the_kernel_s_source_file_names_its_pass() {
        let at = |file: &str| {
            parse(&format!("W tensorflow/core/framework/op_kernel.cc:1745] OP_REQUIRES failed at {file}.cc:408 : RESOURCE_EXHAUSTED: OOM when allocating tensor with shape[128,256,28,28] and type float on /job:localhost/replica:0/task:0/device:GPU:0 by allocator GPU_0_bfc"))
                .expect("an event")
                .phase_hint
        };
        assert_eq!(at("conv_grad_input_ops"), Some(Phase::Backward));
        assert_eq!(at("training_ops"), Some(Phase::OptimizerStep));
        assert_eq!(at("conv_ops"), None);
    }

    #[test]
    fn a_shapeless_excerpt_is_still_an_oom() {
        let e =
            parse("ResourceExhaustedError (see above for traceback): OOM when allocating tensor")
                .expect("an event");
        assert_eq!(e.framework, Framework::TensorFlow);
        assert_eq!(e.memory.requested_bytes, None);
    }

    #[test]
    fn the_created_device_names_a_stream_executor_failure() {
        let before: Vec<String> = [
            "I tensorflow/core/common_runtime/gpu/gpu_device.cc:975] Creating TensorFlow device (/gpu:0) -> (device: 0, name: GeForce GTX 950M, pci bus id: 0000:01:00.0)",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut e = parse("E tensorflow/stream_executor/cuda/cuda_driver.cc:1002] failed to allocate 173.69M (182124544 bytes) from device: CUDA_ERROR_OUT_OF_MEMORY")
            .expect("an event");
        device_from_context(&before, &mut e);
        assert_eq!(e.device.index, Some(0));
        // Two devices created: which one failed is not said.
        let mut two = before.clone();
        two.push("Created TensorFlow device (/job:localhost/replica:0/task:0/device:GPU:1 with 7524 MB memory)".into());
        let mut e = parse(
            "failed to allocate 7.35G (7889485824 bytes) from device: CUDA_ERROR_OUT_OF_MEMORY",
        )
        .expect("an event");
        device_from_context(&two, &mut e);
        assert_eq!(e.device.index, None);
    }

    #[test]
    fn the_device_log_gives_total_and_free_before_the_pool() {
        let lines = |s: &str| s.lines().map(String::from).collect::<Vec<_>>();
        let oom =
            "failed to allocate 190.31M (199557120 bytes) from device: CUDA_ERROR_OUT_OF_MEMORY";
        // TF 1.0: one figure per line.
        let before = lines("I gpu_device.cc:885] Found device 0 with properties: \nname: GeForce GTX 1080\nTotal memory: 7.92GiB\nFree memory: 190.31MiB\nI gpu_device.cc:975] Creating TensorFlow device (/gpu:0)");
        let mut e = parse(oom).expect("an event");
        fill_device_log(&before, &[], &mut e);
        assert_eq!(e.memory.total_bytes, Some(8_504_035_246));
        assert_eq!(e.memory.free_bytes, Some(199_554_499));
        // TF 1.5-1.13: one line; the device the failure names.
        let before = lines("Found device 0 with properties: name: A totalMemory: 11.00GiB freeMemory: 10.50GiB\nFound device 1 with properties: name: B totalMemory: 7.00GiB freeMemory: 1.00GiB");
        let mut e = parse(oom).expect("an event");
        e.device.index = Some(1);
        fill_device_log(&before, &[], &mut e);
        assert_eq!(e.memory.total_bytes, Some(7 << 30));
        assert_eq!(e.memory.free_bytes, Some(1 << 30));
        // Two devices and none named: nothing is taken.
        let mut e = parse(oom).expect("an event");
        fill_device_log(&before, &[], &mut e);
        assert_eq!(e.memory.total_bytes, None);
        // Pasted under the error.
        let mut e = parse(oom).expect("an event");
        fill_device_log(&[], &lines("Free memory: 7.75GiB"), &mut e);
        assert_eq!(e.memory.free_bytes, Some(8_321_499_136));
    }

    #[test]
    fn xla_memory_space_without_its_status() {
        let e = parse("Compilation failure: Ran out of memory in memory space hbm. Used 20.51G of 15.48G hbm. Exceeded hbm capacity by 5.03G.")
            .expect("an event");
        assert_eq!(e.framework, Framework::Jax);
        assert_eq!(e.device.kind, DeviceKind::Unknown);
        assert_eq!(
            e.memory.total_bytes,
            crate::size::log_figure_to_bytes("15.48", "G")
        );
        assert_eq!(
            e.memory.requested_bytes,
            crate::size::log_figure_to_bytes("20.51", "G")
        );
        // The same compiler's words raised through TensorFlow.
        let e = parse("(0) Resource exhausted: {{function_node __inference_train_function_453721}} Compilation failure: Ran out of memory in memory space hbm. Used 16.79G of 7.48G hbm. Exceeded hbm capacity by 9.31G.")
            .expect("an event");
        assert_eq!(e.framework, Framework::TensorFlow);
        // jaxlib's own status in old releases.
        let e = parse("RuntimeError: Resource exhausted: Ran out of memory in memory space hbm. Used 20.51G of 15.48G hbm.")
            .expect("an event");
        assert_eq!(e.framework, Framework::Jax);
    }
}
