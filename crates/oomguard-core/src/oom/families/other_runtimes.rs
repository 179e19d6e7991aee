//! Runtimes with failure wordings of their own that share no words with the
//! generic layer's: MindSpore's device memory manager, Spark's start-up
//! memory check, Android's app heap, OpenVINO's GPU plugin, and the numeric result codes of
//! Vulkan and OpenCL calls.
//! Each becomes an event of framework `other`, with the figures it prints.

use super::generic::message_at;
use crate::oom::patterns::{re, Parsed};
use crate::oom::{DeviceKind, Framework};
use regex::Regex;
use std::sync::LazyLock;

/// Phrases one of which every message this family reads contains.
pub(super) const TRIGGERS: &[&str] = &[
    // MindSpore's runtime (ccsrc/runtime/graph_scheduler): `Device(id:N)
    // memory isn't enough and alloc failed, kernel name: K, alloc size: NB.`;
    // its CPU device `Memory isn't enough and alloc failed, ...`; the
    // kernel runners' `Malloc for kernel output failed, Memory isn't
    // enough, node:N` (input, output and workspace alike).
    "emory isn't enough",
    // MindSpore's dynamic pool (mem_dynamic_allocator.cc): `TotalUsedMem
    // Statistics : N [plus TotalUsedByEventMemStatistics : M and] plus alloc
    // size : K is more than total mem size : T.`
    "than total mem size",
    // Spark's UnifiedMemoryManager: `System memory N must be at least M.`,
    // `Executor memory N must be at least M.`
    " must be at least ",
    // Vulkan's allocation calls with their VkResult as a number.
    "vkAllocate",
    // OpenCL calls with their error code as a number (`OpenCL error:
    // clEnqueueNDRangeKernel: -4` as CLBlast prints it, `OpenCL Error (-61)`
    // as ArrayFire does, `clCreateBuffer error -4` as ggml did), and the
    // size error by name.
    "clCreateBuffer",
    // OpenCL allocates a buffer's memory when a command first uses it, so a
    // shortage often surfaces at the enqueue (`clEnqueueNDRangeKernel (-4)`,
    // `clEnqueueWriteBuffer: -4`); those are read when another phrase finds
    // their line (`OpenCL error: clEnqueueNDRangeKernel: -4`): a phrase of
    // their own cost the 1 GiB scan 5% (the searchers are full).
    "penCL error",
    "penCL Error",
    "INVALID_BUFFER_SIZE",
    // OpenVINO's GPU plugin (intel_gpu, `Exceeded max size of memory object
    // allocation: requested N bytes, but max alloc size supported by device
    // is M bytes`) and Metal's buffer validation (`must not exceed 1024 MB`)
    // hold `xceed`, searched by the generic layer; Android's heap
    // (`java.lang.OutOfMemoryError: Failed to allocate a N byte allocation`)
    // its `OutOfMemory`.
];
/// Messages of this family as the runtimes print them.
#[cfg(test)]
pub(super) const EXAMPLES: &[&str] = &[
    "[ERROR] PRE_ACT(54175,fffdbcff91e0,python):2024-10-22-11:24:55.301.443 [mindspore/ccsrc/backend/common/mem_reuse/mem_dynamic_allocator.cc:392] AddMemBlockAndMemBufByEagerFree] TotalUsedMemStatistics : 29356337664 plus TotalUsedByEventMemStatistics : 0 and plus alloc size : 301990400 is more than total mem size : 29464985600.",
    "RuntimeError: Device(id:0) memory isn't enough and alloc failed, kernel name: Default/MatMul-op0, alloc size: 1073741824B.",
    "java.lang.IllegalArgumentException: System memory 466092032 must be at least 471859200. Please increase heap size using the --driver-memory option or spark.driver.memory in Spark configuration.",
    "Failure in vkAllocateMemory at 191 /home/x/src/mvulkan.cpp  ErrCode=-2",
    "OpenCL Error (-61): Invalid Buffer Size when calling clCreateBuffer",
    "CLBlast: OpenCL error: clEnqueueNDRangeKernel: -4",
    "RuntimeError: Malloc for kernel output failed, Memory isn't enough, node:Default/Cast-op446",
];

pub(super) fn parse(text: &str) -> Option<Parsed> {
    mindspore(text)
        .or_else(|| spark_minimum(text))
        .or_else(|| android_heap(text))
        .or_else(|| openvino_largest_allocation(text))
        .or_else(|| metal_buffer_validation(text))
        .or_else(|| vulkan_code(text))
        .or_else(|| opencl_code(text))
}

/// MindSpore's two failures of device memory: an allocation its manager
/// refused, and the dynamic pool's check that what is in use plus the
/// request stays under the pool's total. The device is an Ascend NPU or a
/// GPU, which the message does not say; the CPU variant has no `Device`.
fn mindspore(text: &str) -> Option<Parsed> {
    static REFUSED: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"(?:Device\s*\(\s*id\s*:\s*(\d+)\s*\)\s*|(Device)\s+)?[Mm]emory\s*isn't\s*enough\s*and\s*alloc\s*failed[^\n]*?alloc\s*size\s*:\s*(\d+)",
        )
    });
    static POOL: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"TotalUsedMemStatistics\s*:\s*(\d+)\s*(?:plus\s*TotalUsedByEventMemStatistics\s*:\s*(\d+)\s*and\s*)?plus\s*alloc\s*size\s*:\s*(\d+)\s*is\s*more\s*than\s*total\s*mem\s*size\s*:\s*(\d+)",
        )
    });
    if let Some(c) = POOL.captures(text) {
        let mut parsed = Parsed::new(
            Framework::Other,
            DeviceKind::Unknown,
            message_at(text, c.get(0)?.start()),
        );
        let used: Option<u64> = c[1].parse().ok();
        let by_events: u64 = c.get(2).map_or(Some(0), |m| m.as_str().parse().ok())?;
        parsed.memory.allocated_bytes = used.and_then(|u| u.checked_add(by_events));
        parsed.memory.requested_bytes = c[3].parse().ok();
        parsed.memory.total_bytes = c[4].parse().ok();
        parsed.exact_request = true;
        return Some(parsed);
    }
    static KERNEL: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"Malloc\s*for\s*kernel\s*(?:input|output|workspace)s?\s*failed\s*,\s*Memory\s*isn't\s*enough",
        )
    });
    let Some(c) = REFUSED.captures(text) else {
        // The kernel runner's words name no device and no size: a device
        // kernel's buffers (the CPU runner refuses with its own words).
        let m = KERNEL.find(text)?;
        return Some(Parsed::new(
            Framework::Other,
            DeviceKind::Unknown,
            message_at(text, m.start()),
        ));
    };
    let on_device = c.get(1).is_some() || c.get(2).is_some();
    let kind = if on_device {
        DeviceKind::Unknown
    } else {
        DeviceKind::Cpu
    };
    let mut parsed = Parsed::new(Framework::Other, kind, message_at(text, c.get(0)?.start()));
    parsed.device.index = c.get(1).and_then(|m| m.as_str().parse().ok());
    parsed.memory.requested_bytes = c[3].parse().ok();
    parsed.exact_request = true;
    Some(parsed)
}

/// Spark's check at start-up that the JVM's heap leaves room for its
/// reserved memory (core/.../memory/UnifiedMemoryManager.scala,
/// `getMaxMemory`: the heap must be at least 1.5 times the 300 MiB it
/// reserves). The first figure is the heap the JVM was given, the second
/// what Spark needs: a limit set too low, not the machine's RAM.
fn spark_minimum(text: &str) -> Option<Parsed> {
    static MINIMUM: LazyLock<Regex> = LazyLock::new(|| {
        re(r"\b(?:System|Executor)\s*memory\s*(\d+)\s*must\s*be\s*at\s*least\s*(\d+)")
    });
    let c = MINIMUM.captures(text)?;
    let mut parsed = Parsed::new(
        Framework::Other,
        DeviceKind::Cpu,
        message_at(text, c.get(0)?.start()),
    );
    parsed.memory.allowed_bytes = c[1].parse().ok();
    parsed.memory.requested_bytes = c[2].parse().ok();
    parsed.exact_request = true;
    Some(parsed)
}

/// Android's runtime (ART) refusing an allocation on an app's Java heap
/// (art/runtime/gc/heap.cc, `ThrowOutOfMemoryError`: `Failed to allocate a
/// N byte allocation with M free bytes and XMB until OOM, target footprint
/// F, growth limit G`; releases before Android 10 end at `until OOM`). The
/// heap is capped per app at its growth limit (`dalvik.vm.heapgrowthlimit`,
/// `dalvik.vm.heapsize` with `android:largeHeap`), well below the phone's
/// RAM: the growth limit is the limit the program may use.
fn android_heap(text: &str) -> Option<Parsed> {
    static ART: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"Failed\s*to\s*allocate\s*a\s*(\d+)\s*byte\s*allocation\s*with\s*(\d+)\s*free\s*bytes\s*and\s*[\d.]+\s*[KMG]?B\s*until\s*OOM(?:,\s*target\s*footprint\s*\d+,\s*growth\s*limit\s*(\d+))?",
        )
    });
    let c = ART.captures(text)?;
    let mut parsed = Parsed::new(
        Framework::Other,
        DeviceKind::Cpu,
        message_at(text, c.get(0)?.start()),
    );
    parsed.memory.requested_bytes = c[1].parse().ok();
    parsed.memory.free_bytes = c[2].parse().ok();
    parsed.memory.allowed_bytes = c.get(3).and_then(|m| m.as_str().parse().ok());
    parsed.exact_request = true;
    Some(parsed)
}

/// A Vulkan allocation call that returned `VK_ERROR_OUT_OF_HOST_MEMORY`
/// (-1) or `VK_ERROR_OUT_OF_DEVICE_MEMORY` (-2) as a number (the VkResult
/// values of the Vulkan specification), as programs that print the raw
/// result word it (`Failure in vkAllocateMemory ... ErrCode=-2`). The
/// names themselves are read by the generic layer.
fn vulkan_code(text: &str) -> Option<Parsed> {
    static CODE: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"\bvkAllocate\w*\b[^\n]{0,200}?\b(?:ErrCode|err(?:or)?|result|returned|code|VkResult|status)\s*[=:(]?\s*(-[12])\b",
        )
    });
    let c = CODE.captures(text)?;
    let kind = if &c[1] == "-1" {
        DeviceKind::Cpu
    } else {
        DeviceKind::Unknown
    };
    Some(Parsed::new(
        Framework::Other,
        kind,
        message_at(text, c.get(0)?.start()),
    ))
}

/// An OpenCL call failing for memory, its error code printed as a number
/// or by name (the error codes of the OpenCL specification, cl.h):
/// CL_MEM_OBJECT_ALLOCATION_FAILURE (-4), CL_OUT_OF_RESOURCES (-5),
/// CL_OUT_OF_HOST_MEMORY (-6), and CL_INVALID_BUFFER_SIZE (-61: a size of
/// zero or above the device's largest single allocation,
/// CL_DEVICE_MAX_MEM_ALLOC_SIZE). The code must sit by the call's name or
/// by `OpenCL error`: a bare -4 is any number.
fn opencl_code(text: &str) -> Option<Parsed> {
    static CODE: LazyLock<Regex> = LazyLock::new(|| {
        re(concat!(
            r"(?i:OpenCL\s*error)\s*\((-(?:4|5|6|61))\)|",
            r"\bcl[A-Z]\w*\b[^\n]{0,80}?(?:\b(?:err(?:or)?|returned|code|status)\s*[=:(]?\s*|:\s*)(-(?:4|5|6|61))\b|",
            // The code in parentheses right after the call's name.
            r"\bcl[A-Z]\w*\s*\((-(?:4|5|6|61))\)|",
            r"\b(CL_INVALID_BUFFER_SIZE)\b"
        ))
    });
    let c = CODE.captures(text)?;
    let code = c.get(1).or(c.get(2)).or(c.get(3)).or(c.get(4))?.as_str();
    let kind = if code == "-6" {
        DeviceKind::Cpu
    } else {
        DeviceKind::Unknown
    };
    let mut parsed = Parsed::new(Framework::Other, kind, message_at(text, c.get(0)?.start()));
    parsed.facts.engine_log.per_buffer_limit = code == "-61" || code == "CL_INVALID_BUFFER_SIZE";
    Some(parsed)
}

/// OpenVINO's GPU plugin refusing one allocation above the device's largest
/// (src/plugins/intel_gpu, `Exceeded max size of memory object allocation:
/// requested N bytes, but max alloc size supported by device is M bytes`):
/// an Intel GPU's per-allocation limit, not its memory running out.
fn openvino_largest_allocation(text: &str) -> Option<Parsed> {
    static LARGEST: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"Exceeded\s*max\s*size\s*of\s*memory\s*object\s*allocation\s*:\s*requested\s*(\d+)\s*bytes\s*,?\s*but\s*max\s*alloc\s*size\s*supported\s*by\s*device\s*is\s*(\d+)\s*bytes",
        )
    });
    let c = LARGEST.captures(text)?;
    let mut parsed = Parsed::new(
        Framework::Other,
        DeviceKind::Xpu,
        message_at(text, c.get(0)?.start()),
    );
    parsed.memory.requested_bytes = c[1].parse().ok();
    parsed.memory.allowed_bytes = c[2].parse().ok();
    parsed.exact_request = true;
    parsed.facts.engine_log.per_buffer_limit = true;
    Some(parsed)
}

/// Metal's validation layer refusing a buffer longer than the device's
/// `maxBufferLength` (the largest single MTLBuffer, 256 MB to a few GB by
/// device): `newBufferWith*:length 0x6692c000 must not exceed 1024 MB.`,
/// the length in hex bytes and the limit in MB (MiB). One buffer above the
/// limit, not the memory running out. Metal's other buffer validations
/// (a zero length, an unaligned pointer) are no event.
fn metal_buffer_validation(text: &str) -> Option<Parsed> {
    static LENGTH: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"newBufferWith\*?\w*:length\s*(?:0x([0-9a-fA-F]+)|(\d+))\s*must\s*not\s*exceed\s*(\d+)\s*MB",
        )
    });
    let c = LENGTH.captures(text)?;
    let mut parsed = Parsed::new(
        Framework::Other,
        DeviceKind::Mps,
        message_at(text, c.get(0)?.start()),
    );
    parsed.memory.requested_bytes = match (c.get(1), c.get(2)) {
        (Some(hex), _) => u64::from_str_radix(hex.as_str(), 16).ok(),
        (_, Some(dec)) => dec.as_str().parse().ok(),
        _ => None,
    };
    parsed.memory.allowed_bytes = c[3]
        .parse::<u64>()
        .ok()
        .and_then(|mb| mb.checked_mul(1 << 20));
    parsed.exact_request = true;
    parsed.facts.engine_log.per_buffer_limit = true;
    Some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metal_s_buffer_validation_is_one_buffer_above_the_limit() {
        let parsed =
            parse("newBufferWith*:length 0x6692c000 must not exceed 1024 MB.").expect("an event");
        assert_eq!(parsed.memory.requested_bytes, Some(0x6692c000));
        assert_eq!(parsed.memory.allowed_bytes, Some(1024 << 20));
        assert_eq!(parsed.device.kind, DeviceKind::Mps);
        assert!(parsed.facts.engine_log.per_buffer_limit);
        assert!(
            parse("failed assertion `Buffer Validation Cannot create buffer of zero length`.")
                .is_none()
        );
    }

    #[test]
    fn mindspore_s_pool_check_gives_in_use_request_and_total() {
        let parsed = parse(EXAMPLES[0]).expect("an event");
        assert_eq!(parsed.memory.allocated_bytes, Some(29_356_337_664));
        assert_eq!(parsed.memory.requested_bytes, Some(301_990_400));
        assert_eq!(parsed.memory.total_bytes, Some(29_464_985_600));
        assert!(parsed.message.contains("TotalUsedMemStatistics"));
    }

    #[test]
    fn mindspore_s_kernel_runner_refusal_is_an_event_without_figures() {
        let p = parse("RuntimeError: Malloc for kernel input failed, Memory isn't enough, node:Default/ReduceMean-op0")
            .expect("read");
        assert_eq!(p.framework, Framework::Other);
        assert_eq!(p.memory.requested_bytes, None);
        assert!(parse("the GPU memory isn't enough for this model, I think").is_none());
    }

    #[test]
    fn mindspore_s_refused_allocation_names_its_device() {
        let parsed = parse(EXAMPLES[1]).expect("an event");
        assert_eq!(parsed.device.index, Some(0));
        assert_eq!(parsed.device.kind, DeviceKind::Unknown);
        assert_eq!(parsed.memory.requested_bytes, Some(1 << 30));
        let cpu =
            parse("Memory isn't enough and alloc failed, kernel name: Add-op1, alloc size: 4096B.")
                .expect("an event");
        assert_eq!(cpu.device.kind, DeviceKind::Cpu);
    }

    #[test]
    fn spark_s_heap_check_is_a_limit_on_the_host() {
        let parsed = parse(EXAMPLES[2]).expect("an event");
        assert_eq!(parsed.device.kind, DeviceKind::Cpu);
        assert_eq!(parsed.memory.allowed_bytes, Some(466_092_032));
        assert_eq!(parsed.memory.requested_bytes, Some(471_859_200));
        assert!(parsed
            .message
            .starts_with("java.lang.IllegalArgumentException"));
        // Other sizes that must be at least something are no memory check.
        assert!(parse("ValueError: batch size 0 must be at least 1").is_none());
    }

    #[test]
    fn android_s_app_heap_gives_the_request_and_the_growth_limit() {
        let parsed = parse("java.lang.OutOfMemoryError: Failed to allocate a 361332168 byte allocation with 8388608 free bytes and 164MB until OOM, target footprint 372920392, growth limit 536870912")
            .expect("an event");
        assert_eq!(parsed.device.kind, DeviceKind::Cpu);
        assert_eq!(parsed.memory.requested_bytes, Some(361_332_168));
        assert_eq!(parsed.memory.free_bytes, Some(8_388_608));
        assert_eq!(parsed.memory.allowed_bytes, Some(536_870_912));
        assert!(parsed.message.starts_with("java.lang.OutOfMemoryError"));
        // Releases before Android 10 print no footprint and no limit.
        let old = parse("java.lang.OutOfMemoryError: Failed to allocate a 3110412 byte allocation with 1048576 free bytes and 2MB until OOM")
            .expect("an event");
        assert_eq!(old.memory.requested_bytes, Some(3_110_412));
        assert_eq!(old.memory.allowed_bytes, None);
    }

    #[test]
    fn openvino_s_largest_allocation_is_a_per_allocation_limit() {
        let parsed = parse("[GPU] Exceeded max size of memory object allocation: requested 28666553344 bytes, but max alloc size supported by device is 4294959104 bytes.")
            .expect("an event");
        assert_eq!(parsed.device.kind, DeviceKind::Xpu);
        assert_eq!(parsed.memory.requested_bytes, Some(28_666_553_344));
        assert_eq!(parsed.memory.allowed_bytes, Some(4_294_959_104));
        assert!(parsed.facts.engine_log.per_buffer_limit);
    }

    #[test]
    fn vulkan_and_opencl_codes_for_memory_only() {
        assert_eq!(
            parse(EXAMPLES[3]).expect("an event").device.kind,
            DeviceKind::Unknown
        );
        assert_eq!(
            parse("vkAllocateMemory failed, result = -1").map(|p| p.device.kind),
            Some(DeviceKind::Cpu)
        );
        // VK_ERROR_INITIALIZATION_FAILED (-3) is not memory.
        assert!(parse("vkAllocateMemory failed, result = -3").is_none());
        let invalid = parse(EXAMPLES[4]).expect("an event");
        assert!(invalid.facts.engine_log.per_buffer_limit);
        assert!(parse("clCreateBuffer returned error -4").is_some());
        assert!(parse(EXAMPLES[5]).is_some());
        assert!(parse("ggml_opencl: clCreateBuffer error -4 at ggml-opencl.cpp:1450").is_some());
        assert!(parse("sa-solver clEnqueueNDRangeKernel (-4) error").is_some());
        // CL_INVALID_CONTEXT (-34) is not memory.
        assert!(parse("clCreateBuffer returned error -34").is_none());
    }
}
