//! The layer under the family parsers: any line that says an allocation
//! failed for lack of memory, in the wordings and error codes runtimes share
//! (`out of memory`, `OUT_OF_DEVICE_MEMORY`, `OutOfMemory`, `cannot
//! allocate`, `could not be allocated`, `insufficient memory`,
//! `ALLOCATION_FAILURE`, `bad_alloc`, `MemoryError`), and every wording of
//! the kernel's OOM killer and of a process killed by it (the shell's
//! `Killed`, torchrun's exit code -9, a container's OOMKilled). It becomes an
//! event of framework `other` unless the text names a known one, with the
//! size and device read when present. The family parsers run first and
//! refine what they know; this layer only catches what none of them claims.
//!
//! What mentions memory without a failed allocation stays eventless: lines
//! at warning or info level, the pinned-memory and mlock fallbacks, tactic
//! and autotuner skips, source code (quoted or backticked phrases, diffs,
//! assignments, `case` labels, placeholders), and prose.

use crate::oom::patterns::{device_index, re, windows_commit_limit_at, Parsed, PartKind};
use crate::oom::{DeviceKind, EventKind, Framework, MemoryFigures, MemoryLimit, Phase};
use crate::size::log_figure_to_bytes;
use regex::Regex;
use std::sync::LazyLock;

/// Phrases one of which every failure this layer reads contains: the common
/// wordings and codes, and the words of a process killed for memory.
pub(super) const TRIGGERS: &[&str] = &[
    // "out of memory", "Out of memory".
    "ut of memory",
    // "Out Of Memory", "out of Memory".
    "f Memory",
    "OUT OF MEMORY",
    "out of the memory",
    // The acronym in a report's words or a bug report's title ("says cuda
    // oom when capturing cuda graphs", "[Bug]: CUDA OOM").
    "OOM",
    " oom",
    // CUDA_ERROR_OUT_OF_MEMORY, UR_RESULT_ERROR_OUT_OF_DEVICE_MEMORY,
    // CL_OUT_OF_HOST_MEMORY, CL_OUT_OF_RESOURCES.
    "OUT_OF_",
    "out_of_memory",
    // `OutOfMemoryError`, and Vulkan's results as vulkan.hpp names them
    // (`to_string(Result)`: `vk::Device::allocateMemory:
    // ErrorOutOfDeviceMemory`, its host twin `ErrorOutOfHostMemory`; the
    // exceptions `vk::OutOfDeviceMemoryError`, `vk::OutOfHostMemoryError`).
    // One `OutOf` for the three made the 1 GiB scan 15% slower: the phrases
    // the searchers share out changed.
    "OutOfMemory",
    "OutOfDeviceMemory",
    "OutOfHostMemory",
    "RESOURCE_EXHAUSTED",
    // "Resource exhausted"; MLX's `[metal::malloc] Resource limit (N)
    // exceeded`; Boost.Compute's `Out of Resources` (CL_OUT_OF_RESOURCES).
    // It also finds every line the Triton family's `resource` finds.
    "esource",
    // Boost.Compute's `Out of Host Memory` (CL_OUT_OF_HOST_MEMORY), as
    // LightGBM's GPU learner re-raises it.
    "of Host Memory",
    // Paddle's GPU buddy allocator (fluid before 1.4, platform/gpu_info.cc):
    // `enforce allocating <= available failed, A > B`.
    "allocating <= available",
    // "Failed to allocate", "failed to alloc ".
    "ailed to alloc",
    // Paddle's host allocator: "Fail to alloc memory of N size".
    "ail to alloc memory",
    // "Unable to allocate", "Tried to allocate", "Attempting to allocate".
    "to allocate",
    // "cannot allocate", "can't allocate", "could not allocate".
    "t allocate",
    "ould not be allocated",
    // "Not enough memory", "not enough GPU memory", "not enough Metal memory
    // for KV cache" (vllm-metal), "not enough space in the context's memory
    // pool" (ggml), "you may not have enough available memory" (Ollama),
    // "Memory isn't enough" (MindSpore): one phrase for them all.
    "enough",
    // "insufficient memory", "Insufficient Memory".
    "nsufficient",
    // Rust's allocation-error hook (`memory allocation of N bytes failed`,
    // library/std/src/alloc.rs) and ggml-vulkan's `Device memory allocation
    // of size N failed` are found by `llocation` below.
    // Rust before 1.28 (`fatal runtime error: allocator memory exhausted`),
    // GCC and glibc tools (`virtual memory exhausted`).
    "memory exhausted",
    // Go on Windows (runtime/mem_windows.go): `runtime: VirtualAlloc of N
    // bytes failed with errno=1455`.
    "VirtualAlloc",
    // "allocation failed", "Allocation Failure" (Boost.Compute's
    // CL_MEM_OBJECT_ALLOCATION_FAILURE), "memory allocation of", "Allocation
    // on device".
    "llocation",
    "ALLOCATION_FAILURE",
    "ALLOC_FAILED",
    "bad_alloc",
    "MemoryError",
    "ErrorMemoryAllocation",
    "内存不足",
    "ENOMEM",
    "posix_memalign",
    // Covers posix_memalign and NCCL's posix_fallocate in one phrase.
    "posix_",
    // A memory cgroup at its limit: `memory: usage N kB, limit N kB, failcnt N`.
    "kB, failcnt",
    // Processes killed for memory: the kernel, a shell, a launcher (one
    // phrase for `Killed` and `killed`).
    "illed",
    // Google Colab's notice when the VM's RAM ran out: `Your session crashed
    // after using all available RAM.`
    "all available RAM",
    "已杀死",
    "oom-kill",
    "exitcode: -9",
    "SIGKILL",
    // Exit status 128 + 9 as job runners, IDEs and containers print it;
    // Python's subprocess (`returned non-zero exit status -9`) and
    // DeepSpeed's launcher (`exits with return code = -9`).
    "code 137",
    "exit status",
    "code = -9",
    // Hadoop's NodeManager killing a container (`is running beyond physical
    // memory limits. Current usage: ...`, Hadoop 3's `is running N B beyond
    // the 'VIRTUAL' memory limit. Current usage: ...`); Spark's words hold
    // `killed`.
    "limits. Current usage",
    "' memory limit",
    // Batch schedulers enforcing a job's memory request: Slurm's
    // jobacct_gather (`Exceeded job memory limit`, `Exceeded step memory
    // limit at some point`), LSF's exit reason, srun's task summary; and
    // Metal's validation of a buffer above `maxBufferLength` (`newBufferWith*:
    // length 0x6692c000 must not exceed 1024 MB.`, read by other_runtimes).
    "xceed",
    "TERM_MEMLIMIT",
    // TensorRT's builder when its workspace pool is too small: no tactic of
    // a node fits (`could not find any implementation for node X, try
    // increasing the workspace size`), or a plugin asks more scratch memory
    // than the pool allows (`plugin node X requires N bytes of scratch
    // space, but only M is available. Try increasing the workspace size`).
    "workspace size",
    // Compilers out of memory while building: nvcc's tools killed, MSVC's
    // heap (gcc's `Killed signal`, ptxas' `Memory allocation failure` and
    // EDG's `catastrophic error: out of memory` hold phrases above).
    "died due to signal 9",
    "out of heap space",
    // Windows' commit limit (ERROR_COMMITMENT_LIMIT, 1455) as Python's
    // `OSError: [WinError 1455]`, a DLL loader's `Error code 1455` and
    // Rust's `io::Error` (`(os error 1455)`) print it, in any language of
    // the system (`rror 1455` finds the first and the last, and a runtime's
    // `error 1455`), and its English system message quoted without the code.
    "rror 1455",
    "code 1455",
    "aging file is too small",
    // A file system out of space, read only where shared memory filled
    // (`OSError: [Errno 28] No space left on device`).
    "o space left on device",
];
/// Failures of this layer as runtimes, shells and launchers print them.
#[cfg(test)]
pub(super) const EXAMPLES: &[&str] = &[
    "numpy.core._exceptions._ArrayMemoryError: Unable to allocate 201. GiB for an array with shape (2999, 2999, 2999) and data type int64",
    "[TensorRT] ERROR: Requested amount of memory (150994944 bytes) could not be allocated. There may not be enough free memory for allocation to succeed.",
    "RuntimeError: Native API failed. Native API returns: 39 (UR_RESULT_ERROR_OUT_OF_DEVICE_MEMORY)",
    "ResourceExhaustedError: Fail to alloc memory of 776212480 size, error code is 12.",
    "terminate called after throwing an instance of 'std::bad_alloc'",
    "Memory cgroup out of memory: Kill process 62685 (bash) score 0 or sacrifice child",
    "ERROR:torch.distributed.elastic.multiprocessing.api:failed (exitcode: -9) local_rank: 0 (pid: 2410412) of binary: /bin/python",
    "Killed",
    "ERROR: Job failed: exit code 137",
    "MIOpen Error: /data/repo/MIOpen/src/hip/handlehip.cpp:68: Memory not available to allocate buffer: 528515072",
    "radv/amdgpu: Not enough memory for command submission.",
    "ggml_vulkan: vk::Device::allocateMemory: ErrorOutOfDeviceMemory",
    "ManagedCuda.NPP.NPPException: Device allocation error",
    // Found by this layer's `killed`, read by the PyTorch family.
    "RuntimeError: DataLoader worker (pid 4312) is killed by signal: Bus error. It is possible that dataloader's workers are out of shared memory. Please try to raise your shared memory limit.",
    "subprocess.CalledProcessError: Command '['python', 'train.py']' died with <Signals.SIGKILL: 9>.",
    "[E] [TRT] Internal error: could not find any implementation for node conv1, try increasing the workspace size with IBuilder::setMaxWorkspaceSize()",
    // Windows' commit limit, in the system's language.
    "OSError: [WinError 1455] The paging file is too small for this operation to complete. Error loading \"C:\\Python\\lib\\site-packages\\torch\\lib\\cudnn_cnn_infer64_8.dll\" or one of its dependencies.",
    "Could not load library cudnn_cnn_infer64_8.dll. Error code 1455",
    "Error: Failed to map the model file: The paging file is too small for this operation to complete. (os error 1455)",
    "Unexpected error 1455 in `std.os.windows.CreateProcessW`: `The paging file is too small for this operation to complete.`",
    // Vulkan's host result as vulkan.hpp names it.
    "vk::Device::allocateMemory: ErrorOutOfHostMemory",
    // std::bad_alloc in Microsoft's C++ runtime.
    "OnnxRuntimeGenAIException: 'bad allocation' when option `max_length` is not set",
    // Reports in words.
    "Gemma 2 9b on 8xL4(24gb) says cuda oom when capturing cuda graphs",
    "[Bug]: CUDA OOM (due to flaky profiler?)",
    // TensorRT's builder above its workspace pool.
    "[TRT] [E] IBuilder::buildSerializedNetwork: Error Code 4: Internal Error (Internal error: plugin node gpt_attention requires 210571452800 bytes of scratch space, but only 47697362944 is available. Try increasing the workspace size with IBuilderConfig::setMemoryPoolLimit().",
];

struct Patterns {
    failure: Regex,
    kernel_kill: Regex,
    shell_killed: Regex,
    launcher_kill: Regex,
    code_like: Regex,
    assignment: Regex,
    logfmt: Regex,
    kernel_frame: Regex,
    size_after: Regex,
    size_exact: Regex,
    size_requested: Regex,
    array_shape: Regex,
    free_after: Regex,
    allocated_before: Regex,
    pool_total: Regex,
    driver_report: Regex,
    negative_size: Regex,
    wrapped_size: Regex,
}

/// A size with thousands separators or a bare trailing dot (numpy prints
/// `201. GiB`). The unit ends at an ASCII word boundary: Paddle's Chinese
/// messages run the next word on (`分配50.000000MB内存`).
const LOOSE_SIZE: &str =
    r"(\d{1,3}(?:,\d{3})+|\d+(?:\.\d*)?)\s*(bytes|B|[KMGTPE]i?B|[KMGTPEkmg]b?)(?-u:\b)";

static P: LazyLock<Patterns> = LazyLock::new(|| Patterns {
    failure: re(concat!(
        r"(?i:out[ _-]of[ _-](?:device[ _]|host[ _]|gpu[ _]|the[ _])?memory|outof(?:device|host)?memory|out_o\s?f_memory|",
        r"(?:failed|unable|cannot|can't|could\s*not)\s*(?:to\s*)?(?:allocate|alloc)\b|could\s*not\s*be\s*allocated|",
        // The memory named by its device or kind, up to two words
        // (`not enough GPU video memory`, `not enough Metal memory`), not
        // the on-chip shared memory of a kernel.
        // Also as a program guesses it (Ollama's `llama runner exited, you
        // may not have enough available memory to run this model`).
        r"not\s*(?:have\s*)?enough\s*(?:(?:gpu|device|host|metal|system|free|video|vram|cuda|unified|physical|available)\s*){0,2}memory|insufficient\s*(?:gpu\s*|device\s*)?memory|",
        r"allocation[_ ]failure|alloc_failed|allocation\s*failed|errormemoryallocation|resource[_ ]exhausted|",
        // NPP's NPP_MEMORY_ALLOCATION_ERR as ManagedCuda words it (`NPPException:
        // Device allocation error`), and C libraries' `Memory allocation error`.
        r"(?:device|host|gpu|memory)\s*allocation\s*error)|",
        // SYCL's out-of-resources codes: the Unified Runtime's, OpenCL's, and
        // the plugin interface's before UR (sycl/include/sycl/detail/pi_error.def
        // in intel/llvm: `PI_ERROR_OUT_OF_RESOURCES`, -5).
        r"(?:UR_RESULT_ERROR|PI_ERROR|CL)_OUT_OF_RESOURCES|\bENOMEM\b|",
        // An allocator call that returned errno 12 (ENOMEM).
        r"(?:posix_memalign|malloc|mmap)\([^)]*\)\s*:\s*12\b|",
        // Caffe2's and ATen's (before 1.5) CPU allocator: CAFFE_ENFORCE_EQ
        // prints `posix_memalign(&data, gAlignment, nbytes) == 0. 12 vs 0`.
        r"posix_memalign\([^)]*\)\s*==\s*0\s*\.\s*12\s*vs\s*0\b|",
        // A single buffer above the runtime's limit (Metal's maximum buffer size).
        r"(?:greater\s*than|exceeds?)\s*the\s*maximum\s*(?:allowed\s*)?(?:buffer|allocation)\s*size|",
        r"\bbad_alloc\b|MemoryError\b|内存不足|",
        // std::bad_alloc's text in Microsoft's C++ runtime (vcruntime_exception.h:
        // `bad_alloc() noexcept : exception("bad allocation", 1)`), as a
        // Windows program or its Python binding prints it.
        r"\bbad\s*allocation\b|",
        // MIOpen's handle refusing a buffer (src/hip/handlehip.cpp:
        // `Memory not available to allocate buffer: N`).
        r"[Mm]emory\s*not\s*available\s*to\s*allocate\b|",
        // Language runtimes that abort when the host has no memory left:
        // Rust (`memory allocation of N bytes failed`, std's
        // default_alloc_error_hook; `allocator memory exhausted` before 1.28),
        // Go on Windows (`VirtualAlloc of N bytes failed`), GCC and glibc
        // tools (`virtual memory exhausted`).
        r"memory\s*allocation\s*of\s*\d+\s*bytes\s*failed|(?:allocator|virtual)\s*memory\s*exhausted|",
        r"VirtualAlloc\s*of\s*\d+\s*bytes\s*failed"
    )),
    kernel_kill: re(concat!(
        r"(?i:out\s*of\s*memory\s*:\s*kill(?:ed)?\s*process|\bkilled\s*process\s*\d+\s*\(|",
        // runc (libcontainer/process_linux.go): `container init was
        // OOM-killed (memory limit too low?)`, also quoted in a kubelet event.
        r"container\s*init\s*was\s*oom-killed|",
        r"invoked\s*oom-killer|oom-kill:|killed\s*as\s*a\s*result\s*of\s*limit|\boomkilled\b|",
        // A kill that states its reason: `killed out of memory`, `Killed
        // (out of memory)`, `killed due to out of memory`.
        r"\bkilled\s*[:(\-]?\s*(?:due\s*to\s*|because\s*of\s*)?(?:an?\s*)?out\s*of\s*memory\b|",
        // Slurm's step daemon reporting its cgroup's kills (slurmstepd:
        // `Detected N oom_kill event(s) in StepId=...`, `oom-kill event(s)`
        // before 21.08) or its own enforcement of the job's limit.
        r"detected\s*\d+\s*oom[-_]kill\s*events?|exceeded\s*memory\s*limit\s*\(\d+\s*>\s*\d+\),?\s*being\s*killed|",
        r"exceeded\s*(?:job|step)\s*memory\s*limit|",
        // systemd's report of a service the kernel killed for its memory
        // (src/core/unit.c: `A process of this unit has been killed by the
        // OOM killer.`; the unit's result, `Failed with result 'oom-kill'.`).
        r"process\s*of\s*this\s*unit\s*has\s*been\s*killed\s*by\s*the\s*oom\s*killer|result\s*'oom-kill'|",
        // LSF's exit reason (`TERM_MEMLIMIT: job killed after reaching LSF
        // memory usage limit`), PBS's kill (`=>> PBS: job killed: mem 2097152kb
        // exceeded limit 1048576kb`), srun's summary of a task the cgroup
        // killed (`srun: error: node1: task 0: Out Of Memory`).
        r"TERM_MEMLIMIT|PBS:\s*job\s*killed:\s*v?mem\b|\btask\s*\d+:\s*out\s*of\s*memory\b|",
        // Dask's nanny restarting a worker above its memory_limit
        // (distributed/nanny.py: `Worker exceeded 95% memory budget.
        // Restarting`; `Worker tcp://... (pid=N) exceeded 95% memory
        // budget. Restarting...` since 2022).
        // A budget of 0% is a threshold set to nothing, not memory running out.
        r"\bexceeded\s*[1-9]\d*%\s*memory\s*budget|",
        // Ray's memory monitor killing a worker when the node's memory passes
        // RAY_memory_usage_threshold (0.95 by default; Ray's "Out-Of-Memory
        // Prevention" docs): `ray.exceptions.OutOfMemoryError: Task was
        // killed due to the node running low on memory.`
        r"killed\s*due\s*to\s*the\s*node\s*running\s*low\s*on\s*memory|",
        // Ray's raylet summing up its monitor's kills (node_manager.cc: `1
        // Workers (tasks / actors) killed due to memory pressure (OOM)`).
        r"(?:^|\D)[1-9]\d*\s*workers\s*\(tasks\s*/\s*actors\)\s*killed\s*due\s*to\s*memory\s*pressure|",
        // The same line cut before its count (an issue's title) or wrapped
        // inside `(tasks /` and `actors)`: its own `(OOM)` marks it.
        r"^\W*(?:actors\)\s*)?killed\s*due\s*to\s*memory\s*pressure\s*\(OOM\)|",
        // The monitor's full report of one kill (`... which exceeds the
        // memory usage threshold of 0.95. Ray killed this worker (ID: ...)
        // because it was the most recently scheduled task`).
        r"\bexceeds\s*the\s*memory\s*usage\s*threshold\b[^\n]*?\bray\s*killed\s*this\s*worker\b|",
        // Ray's monitor before 1.0 raising instead of killing
        // (python/ray/memory_monitor.py, RayOutOfMemoryError: `More than 95%
        // of the memory on node X is used (15.98 / 16.82 GB).`).
        r"\bmore\s*than\s*\d+%\s*of\s*the\s*memory\s*on\s*node\s*\S+\s*is\s*used\b|",
        // YARN ending a container above its memory allocation: Spark's
        // YarnAllocator (`Container killed by YARN for exceeding memory
        // limits. 7.2 GB of 4.2 GB virtual memory used.`, later `exceeding
        // physical memory limits`) and Hadoop's NodeManager (`Container
        // [pid=N,containerID=...] is running beyond physical memory limits.
        // Current usage: 2.1 GB of 2 GB physical memory used; ... Killing
        // container.`).
        r"container\s*killed\s*by\s*yarn\s*for\s*exceeding\s*(?:physical\s*|virtual\s*)?memory\s*limits|",
        r"\bis\s*running\s*beyond\s*(?:physical|virtual)\s*memory\s*limits|",
        r"\bis\s*running\s*\d+B\s*beyond\s*the\s*'(?:physical|virtual)'\s*memory\s*limit\b|",
        // The kubelet evicting a pod when the node runs out (its eviction
        // manager: `The node was low on resource: memory.`).
        r"\bthe\s*node\s*was\s*low\s*on\s*resource:\s*memory\b)"
    )),
    shell_killed: re(concat!(
        r"(?:^|[\s\]|*>])(?:Killed|已杀死)\**\s*(?:`+|'|\x22)?\s*$|",
        r"^\S*:\s*line\s*\d+:\s*\d+\s*Killed\s|",
        // A shell's job report naming the killed command: bash's `[1]+
        // Killed   python x.py`, zsh's `zsh: killed     python x.py` and
        // `[1]    1234 killed     python x.py` (zsh's signal names are
        // lower case, Src/signames2.awk), fish's `terminated by signal
        // SIGKILL`. A progress bar that never ended its line (tqdm's
        // `7/8 [00:12<00:01,  1.84s/it]`) may come first.
        r"(?:^\s*|(?:it/s|s/it)\]\s*)(?:\[\d+\]\s*[+-]?|\w*sh:)\s+(?:\d+\s+)?(?:Killed|killed)\s+\S|",
        // zsh's job report once a log reader took its `[1]` for a tag: the
        // pid, then `killed` padded to its column.
        r"^\s*\d+\s+killed\s{2,}\S|",
        r"terminated\s*by\s*signal\s*SIGKILL"
    )),
    // A launcher or runner reporting its child's SIGKILL: torchrun
    // (`exitcode: -9`, `Signal 9 (SIGKILL) received by PID`), Python's
    // subprocess (`died with <Signals.SIGKILL: 9>`, accelerate launch),
    // torch.multiprocessing (`terminated with signal SIGKILL`), Go's
    // os/exec (`signal: killed`), and exit status 137 (128 + 9) as shells,
    // job runners, IDEs and container runtimes print it.
    launcher_kill: re(concat!(
        r"(?i:exitcode\s*:?\s*-9\b|signal\s*9\s*\(SIGKILL\)|Signals\.SIGKILL|",
        r"terminated\s*with\s*signal\s*SIGKILL|\bsignal:\s*killed\b|",
        r"\bexit(?:ed)?\s*(?:with\s*)?(?:status\s*|code\s*)*[:=]?\s*\(?137\b|",
        r"\bstatus\s*(?:code\s*)?[:=]?\s*137\b|\binterrupted\s*by\s*signal\s*9\b|",
        // The same status in a report's words (`crashes with error code
        // 137`, `returns error code 137`, `exitCode: 137` of a pod's status).
        r"\b(?:error|return|exit)\s*code\s*[:=]?\s*137\b|\bcrash(?:es|ed)?\s*with\s*code\s*137\b|",
        r"\bexit\s*status\s*:?\s*-9\b|\breturn\s*code\s*=\s*-9\b|SIGKILL\s*\(\s*-9\s*\))",
    )),
    code_like: re(concat!(
        // A diff's line, not a Markdown list item with a bold key and its
        // colon (ComfyUI's error report: `- **Exception Message:** ...`).
        r#"^[+\-]\s*$|^[+\-]\s(?:[^*]|\*[^*]|\*\*[^*\n]*(?:[^:*\n]\*|\*[^*]))|^(?:case\s|#\s*define|return\s|raise\s|except\s|if\s|elif\s|//|/\*|\*\s|>>>|def\s|class\s)|"#,
        // An arrow (`=>`), not PBS's `=>> PBS: job killed` banner.
        r#"XXXX|%s|\{\}|=>(?:[^>]|$)"#
    )),
    // A string assigned to a name: source code. A keyword argument inside
    // an object's printed form (`Shard(model_id='m', ...)`) and a log's
    // `key="value"` fields (logfmt: Go's logrus and slog, runc, kubelet)
    // are not.
    assignment: re(r#"(?:^|[^\w\s(,=])\s*[\w.\[\]]+\s*=\s*["'(]"#),
    logfmt: re(r"\blevel=\w+\b.*\bmsg=|\bmsg=.*\blevel=\w"),
    kernel_frame: re(r"^\s*\??\s*\w+(?:\.\w+)*\+0x[0-9a-f]+/0x[0-9a-f]+"),
    size_after: re(&format!(
        r"(?i:allocat\w*|reserve|分配|virtualalloc)\s*(?:of\s*|a\s*)?{LOOSE_SIZE}"
    )),
    // `(N bytes)`; Go's heap (runtime/mheap.go): `cannot allocate N-byte block`.
    // Ascend's runtime (CANN, error EL0004): `Failed to allocate
    // resource[DeviceMemory] with info [size:N]`. Paddle's host allocator
    // before 2.0 (paddle/fluid/memory/detail/system_allocator.cc,
    // `PADDLE_ENFORCE_EQ(posix_memalign(&p, alignment, size), 0, "Alloc %ld
    // error!", size)`): `Alloc N error!`.
    size_exact: re(concat!(
        r"\((\d+)\s*bytes\)|cannot\s*allocate\s*(\d+)-byte\s*block|resource\[\w*Memory\]\s*with\s*info\s*\[size:(\d+)\]|\bAlloc\s*(\d+)\s*error!|",
        // MIOpen's refused buffer, in bytes (src/hip/handlehip.cpp).
        r"not\s*available\s*to\s*allocate\s*buffer:\s*(\d+)\b|",
        // A tensor's bytes as torch-directml words its refusal (`Could not
        // allocate tensor with N bytes. There is not enough GPU video memory
        // available!`).
        r"allocate\s*tensor\s*with\s*(\d+)\s*bytes\b",
    )),
    size_requested: re(
        r"(?i:requested\s*(?:amount\s*of\s*(?:gpu\s*)?memory|size\s*was|buffer\s*of\s*size)\s*(?:was\s*)?\(?\s*(\d+)\s*(?:bytes)?)",
    ),
    array_shape: re(r"(?:shape|form)\s*\(([\d,\s]+)\)\s*and\s*data\s*type\s*(\w+)"),
    free_after: re(&format!(
        r"(?i:available\s*memory\s*is\s*only|可用内存仅为)\s*{LOOSE_SIZE}"
    )),
    allocated_before: re(&format!(
        r"(?i:{LOOSE_SIZE}\s*memory\s*has\s*been\s*allocated|已分配\s*{LOOSE_SIZE}|allocated\s*so\s*far\s*:\s*{LOOSE_SIZE})"
    )),
    pool_total: re(r"\(total\s*(\d[\d,]*)\s*bytes\)"),
    // Theano's CUDA backend (theano/sandbox/cuda/cuda_ndarray.cu): `Error
    // allocating N bytes of device memory (out of memory). Driver report F
    // bytes free and T bytes total`, the driver's cuMemGetInfo.
    driver_report: re(r"Driver\s*report\s*(\d+)\s*bytes\s*free\s*and\s*(\d+)\s*bytes\s*total"),
    // A byte count printed with a minus sign: a size held in a signed
    // integer that overflowed upstream. Go before 1.6 printed the heap's
    // request as int64 (golang/go#11789: `cannot allocate
    // -8410442019078995968-byte block`); C and C++ allocators print their
    // signed sizes the same way (`Out of memory trying to allocate
    // -41183520 bytes`, UModel's `Trying to allocate -773094096 bytes`).
    negative_size: re(r"(?i:allocat\w*\s*(?:a\s*)?-\d+(?:-byte|\s*bytes?\b))"),
    // The same overflow printed unsigned: a count of 19-20 digits after an
    // allocation's words (`new(sz=18446744073709551615)`, `malloc of
    // 18446744073709551615 bytes`), checked against 2^63 below.
    wrapped_size: re(r"(?i:(?:allocat\w*|malloc|\bnew|\bsz|\bsize)\W{0,3}(\d{19,20})\b)"),
});

/// The smallest count a signed 64-bit size that went negative prints as
/// when printed unsigned (2^63): no machine has that memory, so such a
/// request is a size computed wrong.
const WRAPPED_SIZE_MIN: u64 = 1 << 63;

fn loose_bytes(value: &str, unit: &str) -> Option<u64> {
    let value = value.replace(',', "");
    let value = value.trim_end_matches('.');
    let unit = match unit {
        "b" | "B" | "bytes" => "bytes",
        u if u.len() == 2 && u.ends_with('b') => &u[..1],
        u => u,
    };
    log_figure_to_bytes(value, unit)
}

/// numpy's dtype names and their sizes in bytes.
fn numpy_dtype_bytes(name: &str) -> Option<u64> {
    Some(match name {
        "float64" | "int64" | "uint64" | "complex64" | "datetime64" | "timedelta64" => 8,
        "float32" | "int32" | "uint32" => 4,
        "float16" | "int16" | "uint16" => 2,
        "int8" | "uint8" | "bool" => 1,
        "complex128" => 16,
        _ => return None,
    })
}

/// True when `text` reads as source code: a diff, a statement keyword, a
/// format placeholder, a string assigned to a name (see `assignment`).
fn looks_like_code(text: &str) -> bool {
    let p = &*P;
    p.code_like.is_match(text) || (p.assignment.is_match(text) && !p.logfmt.is_match(text))
}

/// True when the phrase at `at` is the failure itself, not a mention: the
/// text is not a warning, not source code, and the phrase is neither quoted
/// nor backticked. A line its log put at error level (`error_level`) needs
/// no error word of its own before the phrase.
fn stands_as_failure(text: &str, at: usize, error_level: bool) -> bool {
    let head = text.trim_start();
    if is_quiet_level(head) || looks_like_code(head) {
        return false;
    }
    let before = &text[..at];
    // Inside a short backticked span (`rmm::bad_alloc` in prose): a
    // mention. A paste that opens with a backtick and runs on is not, nor a
    // span that holds the C++ runtime's abort banner before the phrase
    // (`terminate called after throwing`, libc++abi's `terminating due to
    // uncaught exception`), nor one that opens with the raised exception's
    // class and its colon, as Python and Java print an error (`OSError:
    // [Errno 12] Cannot allocate memory`): nobody writes those to name a case.
    let ticks = before.matches('`').count();
    if ticks % 2 == 1 && text[at..].chars().take(60).any(|c| c == '`') {
        static PRINTED: LazyLock<Regex> = LazyLock::new(|| {
            re(concat!(
                r"terminate\s*called\s*after\s*throwing|terminating\s*due\s*to\s*uncaught\s*exception|",
                r"^\s*[\w.]*(?:Error|Exception):\s*(?:\[\w+\s*-?\d+\]\s*)?$|",
                // A runtime's own prefix (`CUDA error: out of memory`), and a
                // log line cut from its source location (`bfc_arena.cc ...
                // Failed to allocate memory for requested buffer`).
                r"^\s*\w+\s+(?i:error):\s*$|^\s*[\w./-]+\.(?:cc|cpp|cxx|c|h|hpp|cu|py|rs|go)\b|",
                // An error chained through the layers that passed it on,
                // each adding its words and a colon (`returned 500:
                // transcription failed: CUDA failed with error out of
                // memory`, as Go and Rust services and Python wrappers
                // print a cause).
                r"(?i:\b(?:failed|error)\s*:\s)",
            ))
        });
        let span = &before[before.rfind('`').map_or(0, |i| i + 1)..];
        if !PRINTED.is_match(span) {
            return false;
        }
    }
    // Prose around a phrase in words: only an error marker before it, or
    // the phrase opening the line, makes it the failure; identifiers
    // (OutOfMemoryError, CL_MEM_OBJECT_ALLOCATION_FAILURE) stand alone.
    let phrase = &text[at..];
    let identifier = phrase.starts_with(|c: char| c.is_ascii_uppercase())
        && phrase
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .next()
            .is_some_and(|w| w.contains('_') || w.chars().skip(1).any(|c| c.is_ascii_uppercase()));
    static MARKER: LazyLock<Regex> = LazyLock::new(|| {
        re(concat!(
            // A component's tag before the phrase (`ggml_vulkan:`,
            // `radv/amdgpu:`, `ggml-cuda:`) names who failed.
            // The line may open with the quote mark of a pasted message.
            r#"(?i:error|exception|fatal|failed|failure|abort|terminate|what\(\)|\[E\]|panic)|^[EF]\d{4}\s|报错|错误|^\s*["'“]?[\w./-]+:\s*$|"#,
            // .NET's exception properties as a debugger dumps them
            // (`HResult=...`, `Message=...`, `Source=...`).
            r"^\s*Message\s*=\s*$|",
            // A failure's HRESULT printed before its text, as Windows
            // formats one (`8007000E Not enough memory resources are
            // available to complete this operation.`, E_OUTOFMEMORY;
            // `0x80070008`, ERROR_NOT_ENOUGH_MEMORY): a failure code has its
            // high bit set (winerror.h).
            r"\b(?:0[xX])?[89A-F][0-9A-F]{7}\s*:?\s*$|\b0[xX][89a-fA-F][0-9a-fA-F]{7}\s*:?\s*$|",
            // The source location a C++ or Python log line starts with
            // (`bfc_arena.cc:380]`, `bfc_arena.cc ...` as a reporter cuts it).
            r"\b[\w-]+\.(?:cc|cpp|cxx|c|h|hpp|cu|py|rs|go)(?::\d+)?\]?[\s.…]*$",
        ))
    });
    // An exception class opening a line and followed by prose, not by its
    // message (`Name: ...`), is a heading or a mention ("OutOfMemoryError
    // Stack trace" on a web page), not a raised error; Python prints a raised
    // exception as `Name: message`, or `Name` alone.
    let module_path_only = before
        .trim()
        .trim_end_matches(|c: char| c.is_alphanumeric() || c == '_' || c == '.')
        .is_empty();
    if identifier && module_path_only {
        let word_end = phrase
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(phrase.len());
        let (word, rest) = phrase.split_at(word_end);
        let class = word.ends_with("Error") || word.ends_with("Exception");
        let prose =
            rest.starts_with(' ') && rest.trim_start().starts_with(|c: char| c.is_alphabetic());
        if class && prose {
            return false;
        }
    }
    // The class's message as a subject ("better MemoryError message", a
    // changelog's or a pull request's words about the text), not a raise.
    if identifier && names_its_message(phrase) {
        return false;
    }
    if names_what_code_handles(before)
        || plans_work(before)
        || supposes(before)
        || explains(before)
        || asks(text, at)
    {
        return false;
    }
    let standalone = ["bad_alloc", "内存不足", "posix_memalign", "malloc", "mmap"]
        .iter()
        .any(|w| phrase.starts_with(w));
    // Markdown around a pasted line (a code span, bold, a quote) is no word.
    let opens_line = before
        .trim_matches(|c: char| c.is_whitespace() || matches!(c, '`' | '*' | '>'))
        .is_empty();
    if !(identifier || standalone || opens_line || error_level || MARKER.is_match(before)) {
        return false;
    }
    !says_fallback(text)
}

/// How a line that names the failure at `at` stands: printed by the
/// program, or the reporter's question about it ("unable to allocate buffer
/// on vulkan?"): a sentence that runs from the failure to a question mark,
/// off any log level, is the reporter's words telling of the failure, which
/// give way to the error pasted under them. Runtimes end no error line with
/// a question mark.
fn printed_or_asked(text: &str, at: usize, error_level: bool) -> PartKind {
    let ends = text[at..].find(['.', '!', '?', '\n']).map(|i| at + i);
    if !error_level && ends.is_some_and(|e| text[e..].starts_with('?')) {
        PartKind::Reported
    } else {
        PartKind::Primary
    }
}

/// Where the reporter's own sentence that tells of the failure at `at`
/// begins ("other plugins have the same error \"out of memory\""): a verb of
/// meeting it earlier in the same sentence, off any log level, makes the
/// quoted failure the reporter's words, which give way to the error pasted
/// under them.
fn told_before(text: &str, at: usize, error_level: bool) -> Option<usize> {
    if error_level {
        return None;
    }
    let from = reported_in_prose(text).filter(|&p| p < at)?;
    let between = &text[from..at];
    (!between.contains(['.', '!', '?', '\n'])).then_some(from)
}

/// True when the phrase at `at` sits in a yes-or-no question: a sentence
/// that opens with an auxiliary ("Is this error an out of memory error?",
/// "Does it run out of memory with SDXL?") and ends with a question mark
/// asks whether the failure is one; the error it asks about, pasted below,
/// is the event. A question of how or why ("How to solve OutOfMemory
/// error?") takes the failure as given: not read.
fn asks(text: &str, at: usize) -> bool {
    static INTERROGATIVE: LazyLock<Regex> = LazyLock::new(|| {
        re(r"(?i)^[\s*>#`]*(?:is|are|was|were|do|does|did|can|could|should|would|will|has|have)\b")
    });
    let start = text[..at].rfind(['.', '!', '?', '\n']).map_or(0, |i| i + 1);
    let end = text[at..].find(['.', '!', '?', '\n']).map(|i| at + i);
    end.is_some_and(|e| text[e..].starts_with('?')) && INTERROGATIVE.is_match(&text[start..at])
}

/// True when an exception class's name is followed by the word "message":
/// the text is about the error's wording, as a changelog or a pull request
/// says "a better MemoryError message".
fn names_its_message(phrase: &str) -> bool {
    let end = phrase
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(phrase.len());
    let next = phrase[end..].trim_start_matches(' ');
    end < phrase.len()
        && next.starts_with("message")
        && !next["message".len()..].starts_with(|c: char| c.is_alphanumeric() && c != 's')
}

/// True when the phrase is said of an error shown elsewhere: "This error
/// means you ran out of memory on your GPU." (ComfyUI's footer under the
/// exception it caught, execution.py), "the message means ...". The error
/// it explains is the event.
fn explains(before: &str) -> bool {
    static EXPLAIN: LazyLock<Regex> = LazyLock::new(|| {
        re(r"(?i)\b(?:this|the|that)\s+(?:error|exception|message)\s+(?:means|indicates)\b")
    });
    EXPLAIN.is_match(before)
}

/// True when the phrase is the condition of a supposition: "one can run
/// into errors if there is not enough memory", "unless the device is out
/// of memory", "in case of an OOM". A condition puts the failure in a
/// general statement or advice, not in what happened. At most three words
/// stand between the conjunction and the phrase (the phrase may start
/// inside "not").
fn supposes(before: &str) -> bool {
    static SUPPOSE: LazyLock<Regex> =
        LazyLock::new(|| re(r"(?i)\b(?:if|unless|whenever|in\s+case)\s+(?:[\w']+\s+){0,3}n?$"));
    SUPPOSE.is_match(before)
}

/// True when the line names itself as planned work, not a failure seen: a
/// tracking issue, an RFC, a feature request, a proposal or a roadmap
/// ("[Bug]: TRACKING ISSUE: CUDA OOM with Logprobs", "[RFC]: Avoid OOM in
/// ..."). Issue templates put these words before the title's subject.
fn plans_work(before: &str) -> bool {
    static PLAN: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"(?i)\btracking\s+issue\b|\[\s*(?:rfc|feature(?:\s+request)?|proposal|roadmap)\s*\]|\b(?:rfc|feature\s+request|proposal)\s*:",
        )
    });
    PLAN.is_match(before)
}

/// True when the words just before a failure's name make it the object of
/// code that handles it: a pull request's or changelog's title and text
/// ("Handle torch.cuda.OutOfMemoryError", "Mitigate CUDA OutOfMemory error",
/// "Clear cache in case of PI_ERROR_OUT_OF_HOST_MEMORY as well as for
/// PI_ERROR_OUT_OF_RESOURCES"). At most three words may stand between the
/// verb and the name, none ending in a colon: `failed to handle request:
/// CUDA out of memory` is the error.
fn names_what_code_handles(before: &str) -> bool {
    static HANDLED: LazyLock<Regex> = LazyLock::new(|| {
        re(concat!(
            r"(?i)\b(?:handl(?:e|es|ed|ing)|catch(?:es|ing)?|mitigat(?:e|es|ed|ing)|",
            r"recover(?:s|ed|ing)?\s+from|retry(?:ing)?\s+on|in\s+case\s+of|as\s+well\s+as\s+for|",
            // What code may do, not what it did: "vmaCreateBuffer could
            // potentially return VK_ERROR_OUT_OF_HOST_MEMORY", "the call can
            // throw bad_alloc"; and a change's words for a branch it adds
            // ("adds the case for UR_RESULT_ERROR_OUT_OF_DEVICE_MEMORY").
            r"\b(?:can|could|may|might|should|would)\s+(?:\w+\s+){0,2}?(?:return|throw|raise|yield|emit)s?|",
            r"\bcases?\s+(?:for|where|of|when)|",
            // A request to tell the failure better ("Better reporting about
            // OOMed containers", "Improve the error message on OOM").
            r"\b(?:better|improve[sd]?|improving|clearer)\s+(?:the\s+)?(?:error\s+)?(?:report(?:ing|s)?|messages?|handling|detection|logging)\s+(?:about|of|for|on|when)|",
            // An exception type proposed or named for it ("Have a custom
            // Exception for CUDA Out of Memory").
            r"\b(?:exception|error\s+(?:type|class))e?s?\s+for|",
            // A change's title that opens with what the code will do with
            // the failure ("Report CUDA out of memory errors", "Expose other
            // errors except `cudaErrorMemoryAllocation` to users.").
            r"^\W*(?:report|expose|surface|propagate))",
            r"\s+(?:[\w.`'\x22]+\s+){0,3}[\w.`'\x22]*$"
        ))
    });
    HANDLED.is_match(before)
}

/// True when a `RESOURCE_EXHAUSTED` status is a quota, not memory: gRPC
/// gives every exhausted resource that code (grpc's status code 8: a message
/// above the size limit, `Received message larger than max (N vs. M)`; a
/// server's quota or rate limit, `429 Resource has been exhausted (e.g.
/// check quota)`), printed as `StatusCode.RESOURCE_EXHAUSTED` (Python),
/// `8-RESOURCE_EXHAUSTED` (grpc-rs), `code = ResourceExhausted` (Go). Such
/// a status is memory only when its words say so (XLA's `RESOURCE_EXHAUSTED:
/// Out of memory while trying to allocate`).
fn exhausts_another_resource(phrase: &str, text: &str) -> bool {
    static GRPC_OR_QUOTA: LazyLock<Regex> = LazyLock::new(|| {
        re(concat!(
            r"(?i:StatusCode\.RESOURCE|\b\d+-RESOURCE_EXHAUSTED|code\s*=\s*ResourceExhausted|RpcFailure|\bgrpc|",
            r"message\s*larger\s*than\s*max|quota|rate[\s_-]*limit|too\s*many\s*requests|\b429\b)"
        ))
    });
    static MEMORY_WORDS: LazyLock<Regex> =
        LazyLock::new(|| re(r"(?i:memory|alloc|\bOOM\b|\bhbm\b|\bvram\b)"));
    phrase
        .get(..8)
        .is_some_and(|w| w.eq_ignore_ascii_case("resource"))
        && GRPC_OR_QUOTA.is_match(text)
        && !MEMORY_WORDS.is_match(text)
}

/// Google Colab's notice that the VM's host memory ran out and the
/// runtime restarted: `Your session crashed after using all available RAM.`
/// (often followed by an offer of high-RAM runtimes). The host's RAM, not
/// the GPU's.
fn colab_ram(text: &str) -> Option<Parsed> {
    let at = text.find("crashed after using all available RAM")?;
    let start = text[..at].rfind("Your session").unwrap_or(at);
    Some(Parsed::new(
        Framework::Other,
        DeviceKind::Cpu,
        message_at(text, start),
    ))
}

/// A kernel library's fixed workspace that ran out, not the device:
/// FlashInfer carves its temporary buffers out of one workspace the engine
/// allocated up front (include/flashinfer/allocator.h, `AlignedAllocator`:
/// `Failed to allocate memory for batch_prefill_tmp_v with size N and
/// alignment 16 in AlignedAllocator`, later `Buffer overflow when allocating
/// memory for ... but only M bytes available in AlignedAllocator. Increase
/// the workspace buffer size.`). The device may have room; the workspace's
/// size is a setting.
fn fixed_workspace_full(text: &str) -> bool {
    text.contains("in AlignedAllocator")
}

/// True when a failure to allocate names what it could not get, and that
/// is no memory: a port, an address, a terminal, a file descriptor, a GPU
/// or CPU as a scheduler hands them out, a node, an id, a slot, a licence
/// (`failed to allocate port`, `Failed to allocate GPU: no devices
/// available`, `Failed to allocate a TTY`). Followed by a memory word, the
/// same nouns are memory (`failed to allocate GPU memory`, `CPU buffer`,
/// `address space`).
fn allocates_another_resource(phrase: &str, after: &str) -> bool {
    static OTHER: LazyLock<Regex> = LazyLock::new(|| {
        re(concat!(
            r"(?i)^\s*(?:(?:an?|the|new|free|enough)\s+)*",
            r"(?:ports?|ips?|ipv[46]|address(?:es)?|tty|pty|terminals?|file\s*descriptors?|fds?|sockets?|",
            r"gpus?|cpus?|cores?|nodes?|ids?|slots?|licen[cs]es?|leases?|threads?|workers?|containers?|",
            r"volumes?|disks?|inodes?|pids?|subnets?|vlans?|tickets?|devices?)\b[\s:]*(\w*)"
        ))
    });
    if !phrase.to_ascii_lowercase().contains("alloc") {
        return false;
    }
    let Some(c) = OTHER.captures(after) else {
        return false;
    };
    let next = c[1].to_ascii_lowercase();
    !matches!(
        next.as_str(),
        "memory"
            | "mem"
            | "buffer"
            | "buffers"
            | "ram"
            | "vram"
            | "space"
            | "tensor"
            | "tensors"
            | "array"
            | "pool"
            | "block"
            | "blocks"
            | "storage"
            | "heap"
            | "bytes"
    )
}

/// True when the text says the program fell back or retried after the
/// failed allocation (pinned memory, mlock, autotuners, TensorRT tactics):
/// it went on.
fn says_fallback(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    const FALLBACKS: &[&str] = &[
        "pinned memory",
        "mlock",
        "skipping tactic",
        "ignoring this choice",
        "autotun",
        "will retry",
        "retrying",
        "falling back",
        "fall back",
        "no space left",
        "no valid triton configs",
    ];
    FALLBACKS.iter().any(|w| lower.contains(w))
}

/// Any failed allocation or kill the family parsers did not claim, with
/// the limit its words name (a container's or a batch job's), however it
/// was worded. `error_level`: the line's log prefix, stripped from `text`,
/// put it at error level.
pub(crate) fn parse(text: &str, error_level: bool) -> Option<Parsed> {
    let mut parsed = parse_failure(text, error_level)?;
    parsed.facts.memory_limit = limit_of_kill(text);
    Some(parsed)
}

fn parse_failure(text: &str, error_level: bool) -> Option<Parsed> {
    let p = &*P;
    if p.kernel_frame.is_match(text) || oom_killed_false(text) || fixed_workspace_full(text) {
        return None;
    }
    if let Some(parsed) = compiler_out_of_memory(text)
        .or_else(|| killed(text))
        .or_else(|| paddle_host(text))
        .or_else(|| jvm_native(text))
        .or_else(|| paddle_legacy_gpu(text))
        .or_else(|| metal_resource_limit(text))
        .or_else(|| opencl_error_text(text))
        .or_else(|| cgroup_at_limit(text))
        .or_else(|| tensorrt_no_tactic(text))
        .or_else(|| tensorrt_scratch(text))
        .or_else(|| windows_commit_limit(text))
        .or_else(|| colab_ram(text))
        .or_else(|| space_ran_out(text))
    {
        return Some(parsed);
    }
    let found = p.failure.find(text);
    if found.is_some_and(|m| allocates_another_resource(m.as_str(), &text[m.end()..])) {
        return None;
    }
    let (at, kind) = match found {
        Some(m) if stands_as_failure(text, m.start(), error_level) => {
            let kind = match told_before(text, m.start(), error_level) {
                Some(_) => PartKind::Reported,
                None => printed_or_asked(text, m.start(), error_level),
            };
            (m.start(), kind)
        }
        _ => (
            reported_in_prose(text).or_else(|| reported_in_cjk(text))?,
            PartKind::Reported,
        ),
    };
    if exhausts_another_resource(&text[at..], text) {
        return None;
    }
    let message = message_at(text, at);
    let mut parsed = Parsed::new(framework_named(text), device_kind(text), message);
    parsed.kind = kind;
    parsed.device.index = device_index(text).or_else(|| {
        static OPENCL_DEVICE: LazyLock<Regex> = LazyLock::new(|| re(r"\(Device\s*(\d+)\)"));
        OPENCL_DEVICE.captures(text)?.get(1)?.as_str().parse().ok()
    });
    let mem = &mut parsed.memory;
    if let Some(c) = p.array_shape.captures(text) {
        let dims: Option<Vec<u64>> = c[1]
            .split(',')
            .filter(|d| !d.trim().is_empty())
            .map(|d| d.trim().parse().ok())
            .collect();
        if let (Some(dims), Some(size)) = (dims, numpy_dtype_bytes(&c[2])) {
            mem.requested_bytes = dims.iter().try_fold(size, |acc, d| acc.checked_mul(*d));
            parsed.exact_request = true;
            // A shape whose byte count does not fit 64 bits is no real need.
            parsed.facts.absurd_request |= mem.requested_bytes.is_none();
        }
    }
    parsed.facts.absurd_request |= p.negative_size.is_match(text);
    let wrapped = p
        .wrapped_size
        .captures(text)
        .and_then(|c| c[1].parse::<u64>().ok())
        .filter(|n| *n >= WRAPPED_SIZE_MIN);
    if let Some(n) = wrapped {
        mem.requested_bytes = Some(n);
        parsed.exact_request = true;
        parsed.facts.absurd_request = true;
    }
    if mem.requested_bytes.is_none() {
        mem.requested_bytes = p
            .size_exact
            .captures(text)
            .and_then(|c| c.iter().skip(1).flatten().next()?.as_str().parse().ok())
            .or_else(|| {
                p.size_requested
                    .captures(text)?
                    .get(1)?
                    .as_str()
                    .parse()
                    .ok()
            })
            .or_else(|| {
                let c = p.size_after.captures(text)?;
                loose_bytes(&c[1], &c[2])
            });
    }
    mem.free_bytes = p
        .free_after
        .captures(text)
        .and_then(|c| loose_bytes(&c[1], &c[2]));
    if let Some(c) = p.driver_report.captures(text) {
        mem.free_bytes = c[1].parse().ok();
        mem.total_bytes = c[2].parse().ok();
        parsed.device.kind = DeviceKind::Cuda;
    }
    mem.allocated_bytes = p.allocated_before.captures(text).and_then(|c| {
        let (v, u) = if c.get(1).is_some() {
            (1, 2)
        } else if c.get(3).is_some() {
            (3, 4)
        } else {
            (5, 6)
        };
        loose_bytes(c.get(v)?.as_str(), c.get(u)?.as_str())
    });
    // A memory pool's running total (CuPy's `(total N bytes)`, `allocated
    // so far`): all the pool holds.
    if text.contains("allocated so far") {
        mem.reserved_bytes = mem.allocated_bytes.take();
    } else if let Some(c) = p.pool_total.captures(text) {
        mem.reserved_bytes = c[1].replace(',', "").parse().ok();
    }
    if text.contains("Loading checkpoint") || text.contains("load_state_dict") {
        parsed.phase_hint = Some(Phase::ModelLoad);
    }
    // Text Generation Inference's warm-up (server's `warmup`, raised to the
    // router at start-up): `Not enough memory to handle N prefill tokens`,
    // `... N total tokens with M prefill tokens`.
    static TGI_WARMUP: LazyLock<Regex> = LazyLock::new(|| {
        re(r"Not\s*enough\s*memory\s*to\s*handle\s*\d+\s*(?:total|prefill)\s*tokens")
    });
    if TGI_WARMUP.is_match(text) {
        parsed.phase_hint = Some(Phase::Startup);
    }
    Some(parsed)
}

/// Words before a failure's name that hedge, advise or deny ("if you see",
/// "to avoid", "it may", "I didn't get"): no report of a failure seen.
static HEDGED: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:if|unless|whether|avoid\w*|prevent\w*|how\s+to|to\s+fix|without|never|not|no|don't|doesn't|didn't|won't|can't|may|might|could|would|should|can|will|often|usually|sometimes|typically|instead|once|possible|you|your|users?|people)\b",
    )
});

/// One sentence: up to its stop (Latin or CJK) or the line's end.
static SENTENCE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?:[^.!?;。！？\n]|[.!?;][^\s.!?;])+(?:[.!?;。！？]|\n|$)"));

/// Words that make what follows a condition (`when we are running out of
/// memory`): how code or docs describe the case, not a report.
static CONDITION: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\b(?:when(?:ever)?|before|after|certain|until)\b"));

/// `before` without the spans that tell how long a run went before it failed
/// ("after three hours training", "after 2 epochs"): a report's time, not
/// the condition of a general statement ("after you run out of memory").
fn without_elapsed(before: &str) -> std::borrow::Cow<'_, str> {
    static ELAPSED: LazyLock<Regex> = LazyLock::new(|| {
        re(concat!(
            r"(?i)\bafter\s+(?:\w+ing\s+)?(?:\S+\s+)?(?:for\s+)?",
            r"(?:\d+|a\s+few|a\s+couple\s+of|several|some|one|two|three|four|five|six|seven|eight|nine|ten|many)\s+",
            r"(?:hours?|hrs?|minutes?|mins?|days?|epochs?|steps?|iterations?|iters?|batches|images)\b"
        ))
    });
    ELAPSED.replace_all(before, "")
}

/// Where a sentence of `text` tells that a process, a run or a job was
/// killed, in words ("the training gets killed", "it ends with Killed
/// error", "the process was directly killed by the system", "keeps getting
/// killed"): with no other reason given, the kernel's OOM killer. A kill by
/// a named other signal or by a person (`killed by signal: Segmentation
/// fault`, `by SIGTERM`, `by the user`), a question, a condition ("when a
/// job is killed by the oom killer") and hedged words tell of none.
fn killed_in_prose(text: &str) -> Option<usize> {
    static TOLD: LazyLock<Regex> = LazyLock::new(|| {
        re(concat!(
            r#"(?i)\b(?:gets?|got|getting|was|were|been|being|ends?\s+(?:up\s+)?with(?:\s+an?|\s+the)?|keeps?\s+(?:getting|being)|(?:gets?|got|getting|see|saw)\s+(?:the\s+|an?\s+)?(?:error|message|output)\s*:?)\s+"#,
            r#"(?:(?:directly|silently|just|always|randomly|suddenly|automatically)\s+)?["'`*]*killed\b"#
        ))
    });
    static OTHER_KILLER: LazyLock<Regex> = LazyLock::new(|| {
        re(concat!(
            r"(?i)^[\x22'`*]*\s*by\s+(?:signal\s*:?\s*(?:segmentation|bus|terminated|abort|sig(?:term|int|segv|abrt|bus)|15|11|7|6|2)\b|",
            r"sig(?:term|int|segv|abrt|bus)\b|(?:the\s+|a\s+)?(?:user|me|admin\w*|ctrl)\b)"
        ))
    });
    // What asks about the kill ("why it is killed") or says what happens to
    // some or any process ("some processes get killed by the OOM killer")
    // tells of none.
    static ASKS: LazyLock<Regex> =
        LazyLock::new(|| re(r"(?i)\b(?:why|what|how|some|any|many|most|all|every|each)\b"));
    if !text.contains("killed") && !text.contains("Killed") {
        return None;
    }
    SENTENCE.find_iter(text).find_map(|sentence| {
        let s = sentence.as_str();
        let m = TOLD.find(s)?;
        let before = &s[..m.start()];
        if s.trim_end().ends_with('?')
            || HEDGED.is_match(before)
            || CONDITION.is_match(before)
            || ASKS.is_match(before)
            || OTHER_KILLER.is_match(&s[m.end()..])
            || plans_work(before)
            || looks_like_code(s.trim_start())
        {
            return None;
        }
        Some(sentence.start() + m.start())
    })
}

/// Where a sentence of `text` reports that an out-of-memory failure
/// happened, in words rather than as the error itself: someone got, hit,
/// received or ran into it ("I received a CUDA out of memory during
/// evaluation", "says cuda oom when capturing cuda graphs", "I get the error
/// `CUDA failed with error out of memory`"), it happened at a time ("OOM
/// error during VAE decode", "Cuda out of memory while testing"), the quoted
/// error appeared, or a bug report's title names it (`[Bug]: ... OOM`, the
/// issue templates of vLLM, SGLang and others). Sentences that hedge, advise
/// or deny ("if you see out-of-memory errors", "to avoid OOM when loading",
/// "it may hit OOM", "I didn't get OOM") report nothing.
fn reported_in_prose(text: &str) -> Option<usize> {
    // The failure's name in words, as a class (`OutOfMemoryError`) or as
    // TensorFlow's status (`ResourceExhaustedError`, which a graph raises
    // for an allocation the BFC allocator refused).
    const OOM: &str =
        r"(?:oom|out[ -]of[ -]memory|outofmemory(?:error)?|resource_?exhausted(?:error)?)\b";
    static REPORTS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
        [
            format!(
                r#"(?i)\b(?:got|get|gets|getting|ha(?:ve|s|d|ving)|received?|receiving|hit|hits|hitting|encounter(?:s|ed|ing)?|rais(?:e|es|ed|ing)|throw(?:s|n|ing)?|threw|says|said|run\s+into|ran\s+into|runs\s+into|running\s+into|met|facing|faced|experienc(?:e|es|ed|ing)|(?:came|come|comes|coming)\s+(?:up\s+with|across)|saw|see|sees|seeing|trigger(?:s|ed|ing)?|produc(?:e|es|ed|ing)|showed|gave|giving|reported|returned|displayed|printed|prompt(?:s|ed|ing)?|pop(?:s|ped)?\s+up(?:\s+with)?)\s+(?:(?:an?|the|this|that|same)\s+(?:\w+\s+)?)*(?:(?:cuda|gpu|cpu|host|hip|mps|v?ram)\s+|(?:errors?:?\s+)?["'`“‘](?:[\w:.]+\s+){{0,4}}?)?{OOM}"#
            ),
            format!(
                r#"(?i)^\s*(?:\[[^\]]*\]:?\s*)?["'`“‘]?(?:(?:cuda|gpu|xpu|hip|npu|tpu)\s+|(?:\w+\.)+)?{OOM}["'`”’]?(?:\s+error)?\s+(?:during|while|when|at|in|on|for|with|after)\s+[\w`'"(-]"#
            ),
            // The failure as what something ran into or led to ("the job
            // runs out of memory at step 40", "it OOMed", "went OOM", "leads
            // to CUDA OOM"); not `OOMs`, a count's noun as often as a verb.
            format!(
                r#"(?i)\b(?:r[au]n(?:s|ning)?\s+out[ -]of[ -](?:gpu\s+|cuda\s+|device\s+|v?ram\s+)?memory\b|oom(?:ed|ing|'d)\b|(?:goes|went|going)\s+oom\b|(?:leads?|led)\s+to\s+(?:an?\s+)?(?:cuda\s+|gpu\s+)?{OOM}|(?:caus(?:e|es|ed)|results?\s+in|resulted\s+in|end(?:s|ed)?\s+(?:up\s+)?with|crash(?:es|ed)?\s+with)\s+(?:an?\s+|the\s+)?(?:cuda\s+|gpu\s+)?{OOM})"#
            ),
            format!(
                r#"(?i)["'`“](?:cuda\s+)?{OOM}["'`”]?\s+(?:error\s+)?(?:appeared|appears|occurred|occurs|happened|happens|shows\s+up|showed\s+up)\b"#
            ),
            format!(r"^\s*\[(?:Bug|BUG|bug)\]:?\s.*\b(?i:{OOM})"),
            // A title or sentence that ends on the failure named with its
            // device ("ZeRO-3 with NVMe offload: CPU OOM").
            format!(r"(?i)\b(?:cuda|gpu|cpu|host|v?ram|hbm|tpu|xpu|npu)\s+{OOM}(?:\s+(?:errors?|problems?|issues?))?\s*[.!]?\s*$"),
        ]
        .iter()
        .map(|p| re(p))
        .collect()
    });
    // The indexes in REPORTS of the rule that reads what ran into the
    // failure, of the `[Bug]` title and of the failure that ends a title.
    const RAN_INTO: usize = 2;
    const BUG_TITLE: usize = 4;
    const ENDS_ON_IT: usize = 5;
    let lower = text.to_ascii_lowercase();
    if !(lower.contains("oom")
        || lower.contains("of memory")
        || lower.contains("of-memory")
        || lower.contains("ofmemory")
        || lower.contains("exhausted"))
    {
        return None;
    }
    if is_quiet_level(text.trim_start()) || says_fallback(text) {
        return None;
    }
    SENTENCE.find_iter(text).find_map(|sentence| {
        let s = sentence.as_str();
        // The killer and its score are the mechanism, not a failure.
        static MECHANISM: LazyLock<Regex> =
            LazyLock::new(|| re(r"(?i)^[\s_-]*(?:kill|score|adj|reaper)"));
        let (rule, m) = REPORTS
            .iter()
            .enumerate()
            .find_map(|(i, r)| Some((i, r.find(s)?)))?;
        // A question asks; a `[Bug]` title states.
        let question = rule != BUG_TITLE && s.trim_end().ends_with('?');
        // What runs out of memory under a condition (`when we are running out
        // of memory`) is how code or docs describe the case, not a report.
        let conditional = matches!(rule, RAN_INTO | ENDS_ON_IT)
            && CONDITION.is_match(&without_elapsed(&s[..m.start()]));
        let mechanism = MECHANISM.is_match(&s[m.end()..]);
        if question
            || conditional
            || mechanism
            || HEDGED.is_match(after_contrast(&s[..m.start()]))
            || names_what_code_handles(&s[..m.start()])
            || plans_work(&s[..m.end()])
            || looks_like_code(s.trim_start())
        {
            return None;
        }
        Some(sentence.start() + m.start())
    })
}

/// The words after the last contrast ("it can run with one plugin, but
/// the others have the same error"): a clause after `but` states what
/// happened, whatever the clause before it hedged.
fn after_contrast(before: &str) -> &str {
    static BUT: LazyLock<Regex> = LazyLock::new(|| re(r"(?i),?\s+but\s+"));
    BUT.find_iter(before)
        .last()
        .map_or(before, |m| &before[m.end()..])
}

/// A failure told in Chinese prose: a verb of reporting or meeting before
/// the failure's name (`也会报OOM`, `训练时出现out of memory`, `遇到OOM`),
/// or the name with the particle of a change that happened (`跑到一半就
/// OOM了`). Not in a question, a negation, a condition or advice (`不会`,
/// `没有`, `如果`, `如何避免`, `是否`).
fn reported_in_cjk(text: &str) -> Option<usize> {
    static REPORT: LazyLock<Regex> = LazyLock::new(|| {
        re(concat!(
            r"(?i)(?:报|出现|遇到|碰到|发生|产生|提示|出|爆)了?\s*(?:cuda\s*|gpu\s*|显存\s*)?",
            r"(?:oom|out[ -]of[ -]memory|outofmemory(?:error)?)(?:\b|[^\x00-\x7F])|",
            r"(?i)(?:oom|out[ -]of[ -]memory)\s*了"
        ))
    });
    static NOT_A_REPORT: LazyLock<Regex> = LazyLock::new(|| {
        re(r"不会|没有|没|未|不再|避免|防止|如果|假如|若|如何|怎么|怎样|是否|能否|可能")
    });
    if !text.bytes().any(|b| b >= 0x80) {
        return None;
    }
    SENTENCE.find_iter(text).find_map(|sentence| {
        let s = sentence.as_str();
        let m = REPORT.find(s)?;
        let question = s.trim_end().ends_with(['?', '？']) || s.contains('吗');
        if question || NOT_A_REPORT.is_match(&s[..m.start()]) || looks_like_code(s.trim_start()) {
            return None;
        }
        Some(sentence.start() + m.start())
    })
}

/// Paddle's host allocator when `posix_memalign` fails (CPUAllocator::Alloc
/// in paddle/fluid/memory/detail/system_allocator.cc raises ResourceExhausted
/// `Fail to alloc memory of N size, error code is E.`): N bytes of host memory.
fn paddle_host(text: &str) -> Option<Parsed> {
    static HOST: LazyLock<Regex> =
        LazyLock::new(|| re(r"Fail\s*to\s*alloc\s*memory\s*of\s*(\d+)\s*size"));
    let c = HOST.captures(text)?;
    let mut parsed = Parsed::new(
        Framework::Other,
        DeviceKind::Cpu,
        message_at(text, c.get(0)?.start()),
    );
    parsed.memory.requested_bytes = c[1].parse().ok();
    parsed.exact_request = parsed.memory.requested_bytes.is_some();
    Some(parsed)
}

/// The JVM's fatal error when the host gives it no native memory (OpenJDK's
/// hotspot/share/utilities/vmError.cpp prints a `#` banner: "There is
/// insufficient memory for the Java Runtime Environment to continue." and
/// "Native memory allocation (mmap) failed to map N bytes for committing
/// reserved memory."; `malloc` for its own allocations): host memory, with
/// the size it asked for. The banner's `#` is no comment.
fn jvm_native(text: &str) -> Option<Parsed> {
    static NATIVE: LazyLock<Regex> = LazyLock::new(|| {
        re(concat!(
            r"insufficient\s*memory\s*for\s*the\s*Java\s*Runtime\s*Environment|",
            r"Native\s*memory\s*allocation\s*\((?:mmap|malloc)\)\s*failed\s*to\s*(?:map|allocate)\s*(\d+)\s*bytes"
        ))
    });
    let c = NATIVE.captures(text)?;
    let mut parsed = Parsed::new(
        Framework::Other,
        DeviceKind::Cpu,
        message_at(text, c.get(0)?.start()),
    );
    parsed.memory.requested_bytes = c.get(1).and_then(|m| m.as_str().parse().ok());
    parsed.exact_request = parsed.memory.requested_bytes.is_some();
    Some(parsed)
}

/// Paddle's GPU allocators before fluid 1.4. The buddy allocator sizes its
/// first chunk from the free memory and enforces it fits
/// (paddle/fluid/platform/gpu_info.cc, `GpuMaxChunkSize`:
/// `PADDLE_ENFORCE_LE(allocating, available)`, printed `enforce allocating
/// <= available failed, A > B`: A bytes asked, B free); the v1 trainer's
/// allocators CHECK their pointer (paddle/math/Allocator.h: `Fail to
/// allocate GPU memory N bytes`, `Fail to allocate CPU memory: size=N`).
fn paddle_legacy_gpu(text: &str) -> Option<Parsed> {
    static CHUNK: LazyLock<Regex> = LazyLock::new(|| {
        re(r"enforce\s*allocating\s*<=\s*available\s*failed\s*,\s*(\d+)\s*>\s*(\d+)")
    });
    static CHECK: LazyLock<Regex> = LazyLock::new(|| {
        re(r"Fail\s*to\s*allocate\s*(GPU|CPU)\s*memory\s*(?::\s*size\s*=\s*)?(\d+)")
    });
    if looks_like_code(text.trim_start()) {
        return None;
    }
    if let Some(c) = CHUNK.captures(text) {
        let mut parsed = Parsed::new(
            Framework::Other,
            DeviceKind::Cuda,
            message_at(text, c.get(0)?.start()),
        );
        parsed.memory.requested_bytes = c[1].parse().ok();
        parsed.memory.free_bytes = c[2].parse().ok();
        parsed.exact_request = true;
        return Some(parsed);
    }
    let c = CHECK.captures(text)?;
    let kind = if &c[1] == "GPU" {
        DeviceKind::Cuda
    } else {
        DeviceKind::Cpu
    };
    let mut parsed = Parsed::new(Framework::Other, kind, message_at(text, c.get(0)?.start()));
    parsed.memory.requested_bytes = c[2].parse().ok();
    parsed.exact_request = true;
    Some(parsed)
}

/// MLX's Metal allocator refusing a buffer past the resource-count limit
/// (`iogpu.rsrc_limit`, 499000 when unreadable; mlx/backend/metal/
/// allocator.cpp since ml-explore/mlx PR 1718: `[metal::malloc] Resource
/// limit (N) exceeded.`). A limit on the number of live buffers, not bytes:
/// the figures stay unread. The error is often quoted in backticks in a
/// report, so only source code and a warning level rule it out.
fn metal_resource_limit(text: &str) -> Option<Parsed> {
    static LIMIT: LazyLock<Regex> = LazyLock::new(|| {
        re(r"\[metal::malloc\]\s*Resource\s*limit\s*(?:\(\s*\d+\s*\)\s*)?exceeded")
    });
    let m = LIMIT.find(text)?;
    let head = text.trim_start();
    if looks_like_code(head) || is_quiet_level(head) {
        return None;
    }
    Some(Parsed::new(
        Framework::Other,
        DeviceKind::Mps,
        message_at(text, m.start()),
    ))
}

/// OpenCL's allocation failures in Boost.Compute's words
/// (boost/compute/exception/opencl_error.hpp `to_string`:
/// CL_MEM_OBJECT_ALLOCATION_FAILURE `Memory Object Allocation Failure`,
/// CL_OUT_OF_RESOURCES `Out of Resources`, CL_OUT_OF_HOST_MEMORY `Out of
/// Host Memory`), as the exception's `what()` or re-raised by LightGBM's GPU
/// learner (`LightGBMError: ...`, `[LightGBM] [Fatal] ...`). The title-case
/// text alone, ending the line, after one of those markers: the words in
/// prose are something else.
fn opencl_error_text(text: &str) -> Option<Parsed> {
    static WHAT: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"(?:LightGBMError|what\(\)|\[Fatal\])\s*:?\s*(Memory\s*Object\s*Allocation\s*Failure|Out\s*of\s*Resources|Out\s*of\s*Host\s*Memory)\s*$",
        )
    });
    // A Markdown fence closing the paste on the same line is no word.
    let c = WHAT.captures(text.trim_end().trim_end_matches('`').trim_end())?;
    let kind = if c[1].ends_with("Host Memory") {
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

/// A memory cgroup at its limit with failed charges (`memory: usage
/// 1048576kB, limit 1048576kB, failcnt 141`, the kernel's report of a
/// cgroup OOM): its processes ran out of the memory the container allows.
fn cgroup_at_limit(text: &str) -> Option<Parsed> {
    static AT_LIMIT: LazyLock<Regex> = LazyLock::new(|| {
        re(r"(?:^|\s)memory:\s*usage\s*(\d+)kB,\s*limit\s*(\d+)kB,\s*failcnt\s*(\d+)")
    });
    let c = AT_LIMIT.captures(text)?;
    let usage: u64 = c[1].parse().ok()?;
    let limit: u64 = c[2].parse().ok()?;
    let failed: u64 = c[3].parse().ok()?;
    if usage < limit || failed == 0 {
        return None;
    }
    let mut parsed = Parsed::new(
        Framework::Other,
        DeviceKind::Cpu,
        message_at(text, c.get(0)?.start()),
    );
    parsed.facts.kind = EventKind::OomKill;
    parsed.memory.allowed_bytes = limit.checked_mul(1024);
    Some(parsed)
}

/// The kernel's OOM killer, a shell reporting its child `Killed`, a
/// launcher whose child died of SIGKILL, a container OOMKilled.
fn killed(text: &str) -> Option<Parsed> {
    let p = &*P;
    let kernel = p.kernel_kill.find(text);
    let shell = p.shell_killed.find(text);
    let launcher = p.launcher_kill.find(text);
    let (at, kind) = match kernel.or(shell).or(launcher) {
        Some(m) => (m.start(), PartKind::Primary),
        None => (killed_in_prose(text)?, PartKind::Reported),
    };
    if looks_like_code(text.trim_start()) {
        return None;
    }
    let mut parsed = Parsed::new(Framework::Other, DeviceKind::Cpu, message_at(text, at));
    parsed.kind = kind;
    parsed.facts.kind = EventKind::OomKill;
    parsed.facts.signal_only_kill = kernel.is_none();
    static VICTIM: LazyLock<Regex> =
        LazyLock::new(|| re(r"(?i:kill(?:ed)?\s*process)\s*(\d+)\s*\(([^)]*)\)"));
    if let Some(c) = VICTIM.captures(text) {
        parsed.facts.call = Some(format!("{} (pid {})", &c[2], &c[1]));
    }
    parsed.memory.process_bytes = victim_resident(text);
    parsed.memory.allowed_bytes = yarn_container_limit(text);
    parsed.memory.total_bytes = ray_monitor_total(text);
    if text.contains("Loading checkpoint") {
        parsed.phase_hint = Some(Phase::ModelLoad);
    }
    Some(parsed)
}

/// The node's memory as Ray's monitor before 1.0 reported it (`is used
/// (15.98 / 16.82 GB)`): psutil's total, or the cgroup's limit when lower,
/// divided by 1e9 (python/ray/memory_monitor.py), so decimal gigabytes.
fn ray_monitor_total(text: &str) -> Option<u64> {
    static TOTAL: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"of\s*the\s*memory\s*on\s*node\s*\S+\s*is\s*used\s*\(\s*\d+(?:\.\d+)?\s*/\s*(\d+(?:\.\d+)?)\s*GB\s*\)",
        )
    });
    let gb: f64 = TOTAL.captures(text)?[1].parse().ok()?;
    // At most a petabyte: a figure beyond is no node's memory.
    (gb > 0.0 && gb < 1e6).then(|| (gb * 1e9).round() as u64)
}

/// The container's allocation YARN enforced, from its usage report (`7.2
/// GB of 4.2 GB virtual memory used`, Hadoop's binary units: a GB is 2^30
/// bytes, StringUtils.TraditionalBinaryPrefix).
fn yarn_container_limit(text: &str) -> Option<u64> {
    static USED: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"\b\d+(?:\.\d+)?\s*[KMGT]B\s*of\s*(\d+(?:\.\d+)?)\s*([KMGT]B)\s*(physical|virtual)\s*memory\s*used",
        )
    });
    if !text.contains("memory used") {
        return None;
    }
    // The limit the kill names (Hadoop 3's `beyond the 'VIRTUAL' memory
    // limit`, the older `beyond virtual memory limits`); else the first.
    let lower = text.to_ascii_lowercase();
    let virtual_kill =
        lower.contains("beyond the 'virtual'") || lower.contains("beyond virtual memory");
    let c = virtual_kill
        .then(|| USED.captures_iter(text).find(|c| &c[3] == "virtual"))
        .flatten()
        .or_else(|| USED.captures(text))?;
    log_figure_to_bytes(&c[1], &c[2])
}

/// A container's state field that says it was not killed for memory:
/// `docker inspect`'s `"OOMKilled": false`, Kubernetes' `State.OOMKilled is
/// false` as reporters quote it, often beside an exit code 137 from another
/// SIGKILL (a failed liveness probe, `docker kill`); or the reporter's
/// words that deny it in the sentence of the kill (`Container Exited with
/// code 137 but no OOM`, `killed with signal 9, not an OOM`).
fn oom_killed_false(text: &str) -> bool {
    static FALSE: LazyLock<Regex> = LazyLock::new(|| {
        re(concat!(
            r#"(?i:\boomkilled\b[\s*"'`:=]*(?:is|was|was set to|=|:)?[\s*"'`:=]*false\b|"#,
            // The kill, then in the same sentence "but no OOM", ", not an
            // OOM" or "without an OOM".
            r"\b(?:137|sigkill|killed|signal\s*9)\b[^.\n]{0,60}?",
            r"(?:(?:\bbut|,)\s+(?:there\s+(?:is|was)\s+)?(?:no\s+|not\s+(?:an?\s+)?)|\bwithout\s+(?:an?\s+)?)",
            r"(?:oom|out[ -]of[ -]memory)\b)"
        ))
    });
    FALSE.is_match(text)
}

/// The anonymous resident memory of the process the kernel killed, from its
/// report (mm/oom_kill.c `__oom_kill_process`: "Killed process %d (%s)
/// total-vm:%lukB, anon-rss:%lukB, file-rss:%lukB, shmem-rss:%lukB"): what
/// the process itself held, without the file pages the kernel can drop.
fn victim_resident(text: &str) -> Option<u64> {
    static ANON: LazyLock<Regex> = LazyLock::new(|| re(r"\banon-rss:\s*(\d+)\s*kB"));
    ANON.captures(text)?[1]
        .parse::<u64>()
        .ok()?
        .checked_mul(1024)
}

/// A compiler that ran out of host memory building code, as each says it:
/// gcc's driver when the kernel killed its compiler proper (gcc.c
/// `execute`: "c++: fatal error: Killed signal terminated program cc1plus";
/// before gcc 9 "internal compiler error: Killed (program cc1plus)"),
/// nvcc when it killed one of its tools ("nvcc error : 'cicc' died due to
/// signal 9 (Kill signal)"), ptxas' "fatal : Memory allocation failure",
/// MSVC's C1060/C1002 "compiler is out of heap space", and the EDG front end's "catastrophic error: out of
/// memory" (nvcc's cudafe++, Intel's compilers). Parallel build jobs
/// (ninja's one per core, `MAX_JOBS`, `make -j`) multiply what one takes.
fn compiler_out_of_memory(text: &str) -> Option<Parsed> {
    static COMPILER: LazyLock<(Regex, Regex)> = LazyLock::new(|| {
        (
            // Killed: the OOM killer, most likely.
            re(concat!(
                r"Killed\s*signal\s*terminated\s*program\s*(\S+)|",
                r"internal\s*compiler\s*error:\s*Killed\s*\(program\s*(\S+?)\)|",
                r"'([\w+.-]+)'\s*died\s*due\s*to\s*signal\s*9\b"
            )),
            // Out of memory in the compiler's own words.
            re(concat!(
                r"ptxas\s*fatal\s*:\s*Memory\s*allocation\s*failure|",
                r"\bC10(?:60|02)\b.*out\s*of\s*heap\s*space|",
                r"catastrophic\s*error\s*:\s*out\s*of\s*memory"
            )),
        )
    });
    let (killed, ran_out) = &*COMPILER;
    let (at, kill) = match killed.captures(text) {
        Some(c) => (c.get(0)?.start(), Some(c)),
        None => (ran_out.find(text)?.start(), None),
    };
    let mut parsed = Parsed::new(Framework::Other, DeviceKind::Cpu, message_at(text, at));
    parsed.facts.compiling = true;
    if let Some(c) = kill {
        parsed.facts.kind = EventKind::OomKill;
        parsed.facts.signal_only_kill = true;
        let tool = c.iter().skip(1).flatten().next().map(|m| m.as_str());
        parsed.facts.call = tool.map(|t| t.trim_matches('"').to_string());
    }
    Some(parsed)
}

/// The limit a kill's report names, when it names one. A container's:
/// Kubernetes' container status (`Reason: OOMKilled`; "Assign Memory
/// Resources to Containers and Pods": a container over its limit is
/// terminated), `docker inspect`'s `State.OOMKilled`, runc's "container init
/// was OOM-killed (memory limit too low?)", the kernel's "Memory cgroup out
/// of memory" and "killed as a result of limit of /docker/...", and a
/// scheduler's "exceeded the request memory" (OpenPAI). A batch job's
/// request: Slurm's cgroup plugin ("Detected 1 oom-kill event(s) in
/// StepId=..."; its documentation: the job used more memory than it
/// requested) and accounting ("exceeded memory limit (N > M), being
/// killed", "Exceeded job memory limit"), srun's "task 0: Out Of Memory",
/// LSF's TERM_MEMLIMIT and PBS's "job killed: mem".
fn limit_of_kill(text: &str) -> Option<MemoryLimit> {
    static LIMIT: LazyLock<(Regex, Regex)> = LazyLock::new(|| {
        (
            re(concat!(
                r"(?i:\boomkilled\b|oom-killed|memory\s*cgroup\s*out\s*of\s*memory|",
                r"memory\s*limit\s*too\s*low|killed\s*as\s*a\s*result\s*of\s*limit|exceeded\s*the\s*request\s*memory|",
                r"killed\s*by\s*yarn|running\s*beyond\s*(?:physical|virtual)\s*memory|beyond\s*the\s*'(?:physical|virtual)'\s*memory\s*limit)"
            )),
            re(concat!(
                r"(?i:oom[-_]kill\s*events?|exceeded\s*(?:job\s*|step\s*)?memory\s*limit|",
                r"TERM_MEMLIMIT|PBS:\s*job\s*killed:\s*v?mem\b|\btask\s*\d+:\s*out\s*of\s*memory\b|memory\s*budget)"
            )),
        )
    });
    // Every wording holds one of these words: most failures run no regex.
    let lower = text.to_ascii_lowercase();
    if ![
        "kill",
        "limit",
        "cgroup",
        "request memory",
        "task",
        "budget",
    ]
    .iter()
    .any(|w| lower.contains(w))
    {
        return None;
    }
    let (container, job) = &*LIMIT;
    if job.is_match(text) {
        Some(MemoryLimit::Job)
    } else if container.is_match(text) {
        Some(MemoryLimit::Container)
    } else {
        None
    }
}

/// Windows' commit limit (`ERROR_COMMITMENT_LIMIT`, 1455: "The paging file
/// is too small for this operation to complete"), as Python prints it
/// (`OSError: [WinError 1455] ... Error loading "...\torch\lib\cudnn_cnn_infer64_8.dll"
/// or one of its dependencies`, in the system's language) and as a DLL
/// loader does (`Could not load library cudnn_cnn_infer64_8.dll. Error code
/// 1455`): RAM plus the paging file is used up, host memory. A library
/// under `torch\lib` is PyTorch loading its own.
fn windows_commit_limit(text: &str) -> Option<Parsed> {
    let at = windows_commit_limit_at(text)?;
    if looks_like_code(text.trim_start()) || is_quiet_level(text.trim_start()) {
        return None;
    }
    let framework = if text.contains(r"torch\lib") || text.contains("torch/lib") {
        Framework::PyTorch
    } else {
        framework_named(text)
    };
    Some(Parsed::new(
        framework,
        DeviceKind::Cpu,
        message_at(text, at),
    ))
}

/// A file system out of space (`strerror(ENOSPC)`, "No space left on
/// device", as Python's `OSError: [Errno 28]` and C programs print it). It
/// stands for a failure of memory only where the lines around it say the
/// file system was shared memory (see [`Parsed::space_ran_out`]): a tmpfs
/// such as `/dev/shm` holds its files in RAM, within the size it was
/// mounted with.
fn space_ran_out(text: &str) -> Option<Parsed> {
    let at = text.find("o space left on device")?.checked_sub(1)?;
    if looks_like_code(text.trim_start()) || is_quiet_level(text.trim_start()) {
        return None;
    }
    let mut parsed = Parsed::new(framework_named(text), DeviceKind::Cpu, message_at(text, at));
    parsed.space_ran_out = true;
    Some(parsed)
}

/// TensorRT's builder giving up on a node because none of its tactics got
/// the device memory it needed (TensorRT 7: `Internal error: could not find
/// any implementation for node X, try increasing the workspace size with
/// IBuilder::setMaxWorkspaceSize()`, after `GPU memory allocation error
/// during getBestTactic: X`). The same words without the workspace hint
/// (TensorRT 8's `Could not find any implementation for node ...`) also
/// follow unsupported layers, and are not read as memory.
fn tensorrt_no_tactic(text: &str) -> Option<Parsed> {
    static NO_TACTIC: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"(?i:could\s*not\s*find\s*any\s*implementation\s*for\s*node\s*(.+?),?\s*try\s*increasing\s*the\s*workspace\s*size)",
        )
    });
    let c = NO_TACTIC.captures(text)?;
    let mut parsed = tensorrt_builder(text, &c)?;
    parsed.facts.op = Some(c[1].trim().to_string());
    Some(parsed)
}

/// A failure of TensorRT's engine builder found at `c`: a CUDA device's,
/// while the engine is built (the model's load), unless the line is code.
fn tensorrt_builder(text: &str, c: &regex::Captures) -> Option<Parsed> {
    if looks_like_code(text.trim_start()) {
        return None;
    }
    let mut parsed = Parsed::new(
        Framework::Other,
        DeviceKind::Cuda,
        message_at(text, c.get(0)?.start()),
    );
    parsed.phase_hint = Some(Phase::ModelLoad);
    Some(parsed)
}

/// TensorRT's builder refusing a plugin more scratch memory than the
/// builder's workspace pool allows (`Internal error: plugin node X requires
/// N bytes of scratch space, but only M is available. Try increasing the
/// workspace size with IBuilderConfig::setMemoryPoolLimit()`; TensorRT 7
/// follows it with `OutOfMemory Error in buildSingleLayer`): the pool's
/// limit is the configured cap, the plugin's need the request.
fn tensorrt_scratch(text: &str) -> Option<Parsed> {
    static SCRATCH: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"(?i:(?:plugin\s*node\s*(.+?)\s*)?requires\s*(\d+)\s*bytes\s*of\s*scratch\s*space,?\s*but\s*only\s*(\d+)\s*(?:bytes\s*)?(?:is|are)\s*available)",
        )
    });
    let c = SCRATCH.captures(text)?;
    let mut parsed = tensorrt_builder(text, &c)?;
    parsed.memory.requested_bytes = c[2].parse().ok();
    parsed.memory.allowed_bytes = c[3].parse().ok();
    parsed.exact_request = true;
    parsed.facts.op = c.get(1).map(|m| m.as_str().trim().to_string());
    Some(parsed)
}

/// Lines after a failure that may state its figures.
const FIGURE_LINES: usize = 3;

/// Fills the figures a runtime prints on the lines right after its failure,
/// where `memory` does not have them yet: TensorRT's allocator warning after
/// its `Error Code 1: Cuda Runtime (out of memory)` (`Requested amount of GPU
/// memory (N bytes) could not be allocated`), XGBoost's report under its
/// `std::bad_alloc` (src/common/device_helpers.cuh: `- Free memory: N`,
/// `- Requested memory: N`). The report's lines may also have been joined to
/// the message as its continuation (`text`), so it is read there too.
///
/// XGBoost 2 and later print the two with a unit (`- Free memory:
/// 53.1098GB`, `- Requested memory: 64GB`, its `HumanMemUnit`, powers of
/// 1024), and a worker's error quoted as a Python string keeps its line
/// breaks as `\n`.
pub(crate) fn fill_from_next_lines(text: &str, following: &[String], memory: &mut MemoryFigures) {
    static REQUESTED: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"Requested\s*amount\s*of\s*(?:GPU\s*)?memory\s*\((\d+)\s*bytes\)\s*could\s*not|(?:^|\s|\\n)-\s*Requested\s*memory\s*:\s*(\d+(?:\.\d+)?)\s*([KMGT]?B)?(?:\s|$|\\)",
        )
    });
    static FREE: LazyLock<Regex> = LazyLock::new(|| {
        re(r"(?:^|\s|\\n)-\s*Free\s*memory\s*:\s*(\d+(?:\.\d+)?)\s*([KMGT]?B)?(?:\s|$|\\)")
    });
    // A figure with XGBoost's unit, or bytes without one.
    let bytes = |value: Option<regex::Match>, unit: Option<regex::Match>| {
        let value = value?.as_str();
        match unit {
            Some(u) => log_figure_to_bytes(value, u.as_str()),
            None => value.parse().ok(),
        }
    };
    let lines =
        std::iter::once(text).chain(following.iter().take(FIGURE_LINES).map(String::as_str));
    for line in lines {
        if memory.requested_bytes.is_none() {
            memory.requested_bytes = REQUESTED
                .captures(line)
                .and_then(|c| bytes(c.get(1).or(c.get(2)), c.get(3)));
        }
        if memory.free_bytes.is_none() {
            memory.free_bytes = FREE.captures(line).and_then(|c| bytes(c.get(1), c.get(2)));
        }
    }
    fill_executor_report(text, following, memory);
}

/// Lines of TensorRT-LLM's executor report read for its figures.
const EXECUTOR_REPORT_LINES: usize = 6;

/// The device's figures in TensorRT-LLM's report of an executor it could
/// not create (tensorrt_llm/_torch/pyexecutor/py_executor_creator.py,
/// `_ExecutorMemoryMonitor`): under `Executor creation failed due to
/// insufficient GPU memory.` and the component that failed, `Total GPU
/// memory (GiB): 140.06` and `Free GPU memory before component creation
/// attempt (GiB): 108.86`, both from `torch.cuda.mem_get_info()` with two
/// decimals. The free figure is the device's before the component began,
/// what it had to fit in.
fn fill_executor_report(text: &str, following: &[String], memory: &mut MemoryFigures) {
    static FIGURE: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"^\s*(Total|Free) GPU memory (?:before component creation attempt )?\(GiB\):\s*(\d+(?:\.\d+)?)\s*$",
        )
    });
    if !text.contains("Executor creation failed") {
        return;
    }
    for line in following.iter().take(EXECUTOR_REPORT_LINES) {
        let Some(c) = FIGURE.captures(line) else {
            continue;
        };
        let bytes = log_figure_to_bytes(&c[2], "GiB");
        let slot = if &c[1] == "Total" {
            &mut memory.total_bytes
        } else {
            &mut memory.free_bytes
        };
        if slot.is_none() {
            *slot = bytes;
        }
    }
}

/// The memory cgroup's limit the kernel printed before killing
/// (`memory: usage 1048576kB, limit 1048576kB, failcnt 189`), in bytes.
/// True when a kernel OOM report's lines show a memory cgroup at its
/// limit: the call trace's memcg functions (mm/memcontrol.c:
/// `mem_cgroup_oom_synchronize`, `mem_cgroup_out_of_memory`, `try_charge`
/// through `mem_cgroup_charge`) or the cgroup's stats the report prints
/// (`Memory cgroup stats for /docker/...`).
pub(crate) fn memcg_trace(lines: &[String]) -> bool {
    lines
        .iter()
        .any(|l| l.contains("mem_cgroup_") || l.contains("Memory cgroup stats"))
}

pub(crate) fn cgroup_limit(before: &[String]) -> Option<u64> {
    static LIMIT: LazyLock<Regex> =
        LazyLock::new(|| re(r"memory:\s*usage\s*\d+kB,\s*limit\s*(\d+)kB"));
    before[before.len().saturating_sub(80)..]
        .iter()
        .rev()
        .find_map(|l| LIMIT.captures(l)?.get(1)?.as_str().parse::<u64>().ok())
        .and_then(|kb| kb.checked_mul(1024))
}

/// The memory a Slurm job asked for, from its batch script or command
/// line (`#SBATCH --mem=64G`, `srun --mem 8000`): the limit its cgroup
/// enforces on each node. Slurm reads the figure in MiB unless a K, M, G
/// or T follows, each 1024 times the one before (sbatch(1), `--mem`).
/// `--mem-per-cpu` and `--mem-per-gpu` are left: their limit depends on
/// counts the text may not give.
pub(crate) fn job_memory_request(lines: &[String]) -> Option<u64> {
    static MEM: LazyLock<Regex> =
        LazyLock::new(|| re(r"(?:^|\s)--mem(?:=|\s+)(\d+)\s*([KMGTkmgt])?(?:[bB])?\b"));
    let c = lines
        .iter()
        .filter(|l| l.contains("--mem"))
        .find_map(|l| MEM.captures(l))?;
    // `--mem=0` asks for all of a node's memory: no figure.
    let n: u64 = c[1].parse().ok().filter(|&n| n > 0)?;
    let shift = match c.get(2).map(|m| m.as_str().to_ascii_uppercase()).as_deref() {
        Some("K") => 10,
        None | Some("M") => 20,
        Some("G") => 30,
        Some("T") => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

/// The message from the start of the sentence that holds the phrase (an
/// exception class, a log tag) to the end of the line, or to the end of
/// the code span it was quoted in (`I got `OSError: ...` at ...`).
pub(super) fn message_at(text: &str, at: usize) -> String {
    static MARKER: LazyLock<Regex> = LazyLock::new(|| {
        // An upper-case tag before `ERROR` names who failed (`LLVM ERROR:
        // out of memory`, `CUDA ERROR`): it stays with the message.
        Regex::new(r"(?:[A-Za-z_][\w.:]*(?:Error|Exception)\s*:\s|\[E\]|(?:\b[A-Z][A-Z0-9]{1,9} )?ERROR\b|what\(\):|terminate called)")
            .expect("pattern compiles")
    });
    let start = MARKER
        .find_iter(&text[..at])
        .last()
        .map_or(0, |m| m.start());
    let in_span = text[..start].matches('`').count() % 2 == 1;
    let end = in_span
        .then(|| text[at..].find('`').map(|i| at + i))
        .flatten()
        .unwrap_or(text.len());
    // A Markdown item's bold key before the message (`- **Exception
    // Message:** ...`) is no part of it.
    static BOLD_KEY: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*[-*]\s+\*\*[^*\n]{1,40}:\*\*\s*"));
    let msg = text[start..end].trim();
    let msg = BOLD_KEY.find(msg).map_or(msg, |k| &msg[k.end()..]);
    match msg.char_indices().nth(4096) {
        Some((i, _)) => format!("{}…", &msg[..i]),
        None => msg.to_string(),
    }
}

/// True when a raw log line is at warning or info level: such a line that
/// only the generic layer claims is a notice, not the failure.
pub(crate) fn is_quiet_level(raw: &str) -> bool {
    static QUIET: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"(?:^|[\s|:\]])(?:WARNING|WARN|INFO|DEBUG|Warning|warning)\b\s*[:\-\]]|^\s*(?:\[[WI]\]|\[?[WI]\d{3,4}\s|W:\s)|\s[WI]\s+[\w/.\-]+:\d+\]",
        )
    });
    let says_error = raw.contains("error") || raw.contains("Error") || raw.contains("ERROR");
    QUIET.is_match(raw) && !says_error
}

/// Refines a generic event from the lines before it: the device a
/// traceback's libraries name, and PyTorch when its frames raised it.
pub(crate) fn refine_from_context(before: &[String], parsed: &mut Parsed) {
    let recent = &before[before.len().saturating_sub(40)..];
    let context = recent.join("\n");
    if parsed.device.kind == DeviceKind::Unknown {
        parsed.device.kind = device_kind(&context);
        if parsed.device.kind == DeviceKind::Cpu && !parsed.facts.oom_killer() {
            // A CPU word in the traceback does not make a GPU error a host one.
            parsed.device.kind = DeviceKind::Unknown;
        }
    }
    if parsed.device.index.is_none() {
        // torch_npu's error header: `(PID:316198, Device:7, RankID:-1)`.
        static NPU_DEVICE: LazyLock<Regex> =
            LazyLock::new(|| re(r"\(PID:\s*\d+,\s*Device:\s*(\d+),"));
        parsed.device.index = NPU_DEVICE
            .captures(&context)
            .and_then(|c| c[1].parse().ok());
    }
    let names_runtime = [
        "TensorRT", "cupy", "rmm", "mxnet", "Paddle", "OpenCL", "ggml", "METAL", "metal",
        "xgboost", "numpy",
    ]
    .iter()
    .any(|w| parsed.message.contains(w));
    if parsed.framework == Framework::Other
        && !parsed.facts.oom_killer()
        && !names_runtime
        && (context.contains("site-packages/torch/") || context.contains("site-packages\\torch\\"))
    {
        parsed.framework = Framework::PyTorch;
    }
}

/// The framework the text names, when docs/reference.md has a name for it.
fn framework_named(text: &str) -> Framework {
    if text.contains("torch.") || text.contains("PyTorch") || text.contains("Tried to allocate") {
        Framework::PyTorch
    } else if text.contains("tensorflow") || text.contains("TensorFlow") {
        Framework::TensorFlow
    } else if text.contains("onnxruntime")
        || text.contains("ONNXRuntime")
        || text.contains("OnnxRuntime")
        || text.contains("ONNX Runtime")
        // Its arena (onnxruntime/core/framework/bfc_arena.cc); TensorFlow's
        // is `bfc_allocator.cc`.
        || text.contains("BFCArena")
        || text.contains("bfc_arena")
    {
        Framework::OnnxRuntime
    } else {
        Framework::Other
    }
}

/// The kind of memory the text names.
pub(crate) fn device_kind(text: &str) -> DeviceKind {
    static KINDS: LazyLock<Vec<(DeviceKind, Regex)>> = LazyLock::new(|| {
        vec![
            (
                DeviceKind::Xpu,
                re(r"UR_RESULT|Native\s*API|SYCL|sycl|Level\s*Zero|level_zero|\bXPU\b|oneAPI"),
            ),
            (
                DeviceKind::Rocm,
                // MIOpen is AMD's (ROCm's) library of deep-learning kernels.
                re(r"\bHIP\b|\bhip[A-Z_]|ROCm|\brocm|HIP_ERROR|MIOpen|miopen"),
            ),
            (
                DeviceKind::Mps,
                // MLX's `malloc_or_wait` (mlx/allocator.cpp of its 2023-24
                // releases: `[malloc_or_wait] Unable to allocate N bytes.`)
                // after its Metal allocator refused; MLX's CPU-only Linux
                // build prints it too, but was rarely run then.
                re(r"(?i:\bmetal\b|\[metal|\bMPS\b|kIOGPU)|\[malloc_or_wait\]"),
            ),
            (
                DeviceKind::Cuda,
                re(concat!(
                    // An ASCII boundary: Chinese reports run the words on ("报错CUDA").
                    // NPP, NVIDIA's image primitives (CUDA only).
                    r"\bNPP\b|(?i:(?-u:\b)cuda|cudaMalloc|cupy|\brmm\b|thrust|\bGPU\b|TensorRT|cublas|cudnn|\bcu(?:fft|solver|sparse|rand)\w*)|torch\.(?:cuda\.)?OutOfMemoryError|",
                    // TensorRT's own log (`[TRT]`, `nvinfer1::`) and its
                    // error format `[file::function::line] Error Code 2:
                    // OutOfMemory` (NvInferRuntimeBase.h's ErrorCode, virtual
                    // memory buffers of the builder): NVIDIA only.
                    r"\[TRT\]|nvinfer1::|virtualMemoryBuffer|\bError\s*Code\s*\d+\s*:\s*(?:OutOfMemory|Cuda\s*Runtime)",
                )),
            ),
            (
                DeviceKind::Cpu,
                re(concat!(
                    r"\bMemoryError|_ArrayMemoryError|numpy|\bhost\b|\bRAM\b|bad_alloc|\bbad\s*allocation\b|DefaultCPUAllocator|posix_memalign|\bmalloc\b|\bmmap\b|ENOMEM|",
                    // The C library's allocators and the drop-in ones
                    // (Intel MKL's `mkl_malloc`, jemalloc's, tcmalloc's,
                    // mimalloc's, Windows' `_aligned_malloc`).
                    r"\b(?:mkl_|je_|tc_|mi_|_aligned_)malloc\b|\b(?:calloc|realloc|aligned_alloc)\b|",
                    // ENOMEM as Python's OSError prints it, the JVM's heap
                    // (`java.lang.OutOfMemoryError: Java heap space`) and V8's
                    // (`JavaScript heap out of memory`).
                    r"\[Errno\s*12\]|Java\s*heap\s*space|GC\s*overhead\s*limit\s*exceeded|JavaScript\s*heap|",
                    // The processor's memory named in words ("CPU OOM
                    // errors", "CPU out of memory", "CPU RAM").
                    r"\bCPU\s*(?:OOM|out\s*of\s*memory|RAM|memory)\b|",
                    // The Rust and Go runtimes' own words (see `failure`), and
                    // Go's fatal throw (`fatal error: runtime: out of memory`,
                    // runtime/mem_linux.go, malloc.go) and heap report
                    // (`runtime: out of memory: cannot allocate N-byte block`).
                    r"memory\s*allocation\s*of\s*\d+\s*bytes\s*failed|(?:allocator|virtual)\s*memory\s*exhausted|VirtualAlloc|",
                    r"fatal\s*error:\s*(?:runtime:\s*)?out\s*of\s*memory|runtime:\s*out\s*of\s*memory|",
                    // numpy's message names no module when printed alone
                    // (`_ArrayMemoryError.__str__`: `Unable to allocate {size}
                    // for an array with shape {shape} and data type {dtype}`).
                    r"array\s*with\s*shape\s*\([\d,\s]*\)\s*and\s*data\s*type\b|",
                    // OpenCV's host allocator (modules/core/src/alloc.cpp,
                    // `OutOfMemoryError`: `Failed to allocate N bytes`, raised
                    // as `StsNoMem`, printed `(-4:Insufficient memory)`); its
                    // CUDA module reports a GPU API error (-217) instead.
                    r"\(-4:Insufficient\s*memory\)"
                )),
            ),
        ]
    });
    // OpenCL, Vulkan and DirectML run on any vendor's GPU: the words name none.
    if crate::oom::attribution::CROSS_VENDOR_API.is_match(text) {
        return DeviceKind::Unknown;
    }
    let kind = KINDS
        .iter()
        .find(|(_, re)| re.is_match(text))
        .map_or(DeviceKind::Unknown, |(kind, _)| *kind);
    // A runtime that raises Python's MemoryError for a device's memory
    // (Theano: `MemoryError: Error allocating N bytes of device memory`)
    // names no host.
    if kind == DeviceKind::Cpu && text.contains("device memory") {
        return DeviceKind::Unknown;
    }
    kind
}

#[cfg(test)]
mod tests {

    #[test]
    fn paddle_host_allocation_is_host_memory_of_its_size() {
        let e = super::paddle_host(
            "MemoryError: Fail to alloc memory of 5060694016 size, error code is 12.",
        )
        .expect("an event");
        assert_eq!(e.device.kind, crate::oom::DeviceKind::Cpu);
        assert_eq!(e.memory.requested_bytes, Some(5060694016));
        assert!(super::paddle_host("Fail to alloc memory of size").is_none());
        assert!(super::paddle_host("").is_none());
    }

    #[test]
    fn an_exception_class_followed_by_prose_is_a_heading() {
        let at = |t: &str| t.find("OutOfMemoryError").unwrap();
        let heading = "torch.cuda.OutOfMemoryError Stack trace";
        assert!(!stands_as_failure(heading, at(heading), false));
        for raised in [
            "torch.cuda.OutOfMemoryError: CUDA out of memory.",
            "cupy.cuda.memory.OutOfMemoryError: out of memory to allocate 8 bytes",
            "OutOfMemoryError",
        ] {
            assert!(stands_as_failure(raised, at(raised), false), "{raised}");
        }
    }

    use super::*;

    #[test]
    fn a_change_that_reports_or_exposes_the_failure_is_no_failure() {
        for title in [
            "Report CUDA out of memory errors",
            "Expose other errors except `cudaErrorMemoryAllocation` to users.",
        ] {
            let at = title
                .find("out of memory")
                .or_else(|| title.find("cudaError"))
                .unwrap();
            assert!(!stands_as_failure(title, at, false), "{title}");
        }
        for told in [
            "Report: CUDA error: out of memory when training",
            "Bug report CUDA error: out of memory on A100",
        ] {
            let at = told.find("out of memory").unwrap();
            assert!(stands_as_failure(told, at, false), "{told}");
        }
    }

    #[test]
    fn an_error_s_message_as_a_subject_is_no_failure() {
        let at = |t: &str| t.find("MemoryError").unwrap();
        let title = "MAINT: better MemoryError message (#13225)";
        assert!(!stands_as_failure(title, at(title), false));
        let raised = "MemoryError: Unable to allocate 1.00 GiB for an array";
        assert!(stands_as_failure(raised, at(raised), false));
        let named = "numpy.core._exceptions.MemoryError messages are raised";
        assert!(!stands_as_failure(named, at(named), false));
    }

    #[test]
    fn an_explanation_of_an_error_is_no_failure() {
        let at = |t: &str| t.find("out of memory").unwrap();
        let footer = "This error means you ran out of memory on your GPU.";
        assert!(!stands_as_failure(footer, at(footer), false));
        let told = "Error: this process ran out of memory on your GPU.";
        assert!(stands_as_failure(told, at(told), false));
    }

    #[test]
    fn a_question_about_the_failure_is_no_failure() {
        let at = |t: &str| t.find("out of memory").unwrap();
        for asked in [
            "Is this error an out of memory error?",
            "Does the error say out of memory?",
        ] {
            assert!(!stands_as_failure(asked, at(asked), false), "{asked}");
        }
        for told in [
            "RuntimeError: CUDA error: out of memory",
            "Error: out of memory. Is this a bug?",
        ] {
            assert!(stands_as_failure(told, at(told), false), "{told}");
        }
        let how = "How to solve OutOfMemory error except changing a larger GPU?";
        assert!(stands_as_failure(
            how,
            how.find("OutOfMemory").unwrap(),
            false
        ));
    }

    #[test]
    fn tensorrt_llm_executor_report_gives_the_device_figures() {
        let following: Vec<String> = [
            "",
            "The following component could not be created: KV cache",
            "Total GPU memory (GiB): 140.06",
            "Free GPU memory before component creation attempt (GiB): 108.86",
            "",
            "Previously created components and free GPU memory before/after creation (GiB):",
            "Model: 139.55 / 110.70",
        ]
        .map(String::from)
        .to_vec();
        let mut m = MemoryFigures::default();
        fill_from_next_lines(
            "[TRT-LLM] [RANK 1] [E] Failed to initialize executor on rank 1: Executor creation failed due to insufficient GPU memory.",
            &following,
            &mut m,
        );
        assert_eq!(m.total_bytes, log_figure_to_bytes("140.06", "GiB"));
        assert_eq!(m.free_bytes, log_figure_to_bytes("108.86", "GiB"));
        // The same lines under another message are not read.
        let mut other = MemoryFigures::default();
        fill_from_next_lines("CUDA error: out of memory", &following, &mut other);
        assert_eq!(other.total_bytes, None);
    }

    /// A line read with no log level in front of it.
    fn parse_line(text: &str) -> Option<Parsed> {
        parse(text, false)
    }

    #[test]
    fn colab_s_notice_is_host_memory() {
        let p = parse_line("> Your session crashed after using all available RAM. If you are interested in access to high-RAM runtimes, you may want to check out Colab Pro.")
            .expect("an event");
        assert_eq!(p.device.kind, DeviceKind::Cpu);
        assert!(p.message.contains("Your session crashed"), "{}", p.message);
    }

    #[test]
    fn a_failure_to_allocate_something_other_than_memory_is_no_event() {
        for text in [
            "E0612 10:11:12.123456  1234 server.cc:12] failed to allocate port",
            "ERROR: failed to allocate an IP address for the container",
            "[ERROR] Failed to allocate GPU: no devices available",
            "Error: Failed to allocate a TTY",
            "RuntimeError: Failed to allocate a file descriptor",
            "RuntimeError: Failed to allocate memory for batch_prefill_tmp_v with size 435814400 and alignment 16 in AlignedAllocator",
            "flashinfer/allocator.h:49: Buffer overflow when allocating memory for batch_prefill_tmp_v with size 283115520 and alignment 16, but only 268435456 bytes available in AlignedAllocator. Increase the workspace buffer size.",
        ] {
            assert!(parse_line(text).is_none(), "{text}");
        }
        for text in [
            "RuntimeError: Failed to allocate GPU memory",
            "ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate CPU buffer of size 1024",
            "Error: unable to allocate address space",
            "failed to allocate 2.00 GiB on device 0",
        ] {
            assert!(parse_line(text).is_some(), "{text}");
        }
    }

    #[test]
    fn a_report_in_words_is_an_event() {
        for text in [
            "This is surprising because training was running smoothly, but I received a CUDA out of memory during evaluation.",
            "Testing after tuning and fitting raise a CUDA out of memory error.",
            "OOM error during VAE decode. VRAM usage skyrockets from ~15.5GB to ~40GB.",
            "Gemma 2 9b on 8xL4(24gb) says cuda oom when capturing cuda graphs",
            "When a finish the train epcoh and do the validation ,the \"CUDA out of memory\" appeared.",
            "in fact I get the error `CUDA failed with error out of memory`, it seems like it wants to dump it all",
            "[Bug]: CUDA OOM (due to flaky profiler?)",
            // A quoted error straight after the verb, and other verbs.
            "I am unexpectedly getting `cuda failed with error out of memory` after sometime of running",
            "the server threw `CUDA out of memory` error when warmup.",
            "during my evaluating process I came up with the 'CUDA out of memory' error",
            // A version's dots do not end the sentence.
            "[Bug]: llama-3.2-11B-vision run in vllm==0.6.3 OOM error (L20)",
            "\"CUDA out of memory\" error in generate().",
            // What ran into the failure or led to it; a title with a class.
            "The training runs out of memory at step 40 with batch 8.",
            "It OOMed after the second epoch.",
            "Switching to bf16 leads to CUDA OOM on the A10G.",
            "torch.cuda.OutOfMemoryError when loading Mixtral on two GPUs",
            // The failure's class or TensorFlow's status named in words.
            "With a batch size of 4, the model throws a ResourceExhaustedError after the predictions are done.",
            "I keep getting OutOfMemoryError when the second epoch starts.",
            // More verbs, a word between the article and the failure, and
            // the host's memory; a title that ends on the failure.
            "I get the dreaded CUDA out of memory error.",
            "multi-gpu training triggers CUDA out of memory error",
            "I see CPU OOM errors during the partitioning of optimizer states",
            "ZERO Stage 3 with NVME Offload CPU OOM",
            // The device's own words before the failure, quoted; a title
            // that names the failure with a noun after it.
            "`XPU out of memory` error with `-tp=4`, but model loads fine with `-tp=2` or `-tp=1`",
            "GPU OOM problem",
            "hbm OOM",
            "it cause OOM when the training iteration is about 5k.",
        ] {
            assert!(parse_line(text).is_some(), "{text}");
        }
        // What a run has: the error the reporter names, also after a
        // clause that hedged ("it can run ..., but").
        for text in [
            "it can run with hybrid_parallel plugin, but other plugins have the same error \"out of memory\"",
            "in fact I get the error `CUDA failed with error out of memory`, it seems like it wants to dump it all",
            "The second GPU has an OOM error while the first one is fine.",
        ] {
            let p = parse_line(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(p.kind, PartKind::Reported, "{text}");
        }
    }

    #[test]
    fn hedged_advice_and_denials_report_nothing() {
        for text in [
            "If you see out-of-memory errors during serving, please try to reduce the memory usage of the KV cache pool.",
            "To avoid OOM when loading, set low_cpu_mem_usage=True.",
            "Large batches may hit OOM during evaluation.",
            "I didn't get OOM during training.",
            "Distinguishes two OOM scenarios with opposite tuning directions",
            "[Bugfix] fix confusing OOM errors during v1 init",
            "Current OOM error messages in SGLang give one-sided or generic advice",
            "Did you get an OOM during evaluation?",
            "Models that can have OOM errors need a smaller batch.",
            "Do you have an OOM error too?",
            "Some processes get killed by the OOM killer when memory runs low.",
            "The workers hit the oom-kill path and exit.",
            "Training is slow and OOM during evaluation is a known problem.",
            "You may see `CUDA out of memory` when the batch is large.",
            "If a model throws ResourceExhaustedError, lower the batch size.",
            "Seeing v1.2 release notes: OOM handling improved.",
            "Spill buffers to the host when we are certain the device is running out of memory.",
            "|            CUDA OOMs: 0            |        cudaMalloc retries: 0         |",
            "Large images may run out of memory on small cards.",
        ] {
            assert!(parse_line(text).is_none(), "{text}");
        }
    }

    #[test]
    fn printed_objects_and_log_fields_are_not_code() {
        assert!(parse_line("Error processing tensor for shard Shard(model_id='m', start_layer=0): CUDA Error 2, out of memory").is_some());
        assert!(parse_line(r#"Error: container create failed: time="2022-09-14T11:35:13Z" level=error msg="runc create failed: unable to start container process: container init was OOM-killed (memory limit too low?)""#).is_some());
        // A string assigned to a name stays source code.
        assert!(parse_line(r#"msg = "CUDA error: out of memory""#).is_none());
    }

    fn event(text: &str) -> Parsed {
        parse_line(text).unwrap_or_else(|| panic!("an event in {text:?}"))
    }

    #[test]
    fn numpy_wording_alone_is_host_memory() {
        let e = event("Unable to allocate 139. MiB for an array with shape (9131294, 2) and data type float64");
        assert_eq!(e.device.kind, DeviceKind::Cpu);
        assert_eq!(e.memory.requested_bytes, Some(9_131_294 * 2 * 8));
    }

    #[test]
    fn opencv_s_allocator_is_host_memory() {
        // ultralytics/yolov5 issue 10276, caching images in RAM.
        let e = event("cv2.error: OpenCV(4.6.0) /io/opencv/modules/core/src/alloc.cpp:73: error: (-4:Insufficient memory) Failed to allocate 4672512 bytes in function 'OutOfMemoryError'");
        assert_eq!(e.device.kind, DeviceKind::Cpu);
        assert_eq!(e.memory.requested_bytes, Some(4_672_512));
    }

    #[test]
    fn numpy_request_from_shape_and_dtype() {
        let e = event("numpy.core._exceptions._ArrayMemoryError: Unable to allocate 201. GiB for an array with shape (2999, 2999, 2999) and data type int64");
        assert_eq!(e.framework, Framework::Other);
        assert_eq!(e.device.kind, DeviceKind::Cpu);
        assert_eq!(e.memory.requested_bytes, Some(2999u64.pow(3) * 8));
        assert!(e
            .message
            .starts_with("numpy.core._exceptions._ArrayMemoryError"));
    }

    #[test]
    fn negative_and_overflowing_sizes_are_absurd_requests() {
        for text in [
            "runtime: out of memory: cannot allocate -8410442019078995968-byte block (3407872 in use)",
            "Out of memory trying to allocate -41183520 bytes",
            "numpy.core._exceptions._ArrayMemoryError: Unable to allocate 1 EiB for an array with shape (4294967296, 4294967296, 4294967296) and data type float64",
        ] {
            let e = event(text);
            assert!(e.facts.absurd_request, "{text}");
            // No negative count is read as a size; numpy's own rounded
            // figure stands when the shape overflows.
            assert_ne!(e.memory.requested_bytes, Some(41_183_520), "{text}");
        }
        // A minus sign that is punctuation, and a plain size, are not.
        for text in [
            "runtime: out of memory: cannot allocate 4194304-byte block (3407872 in use)",
            "Out of memory - trying to allocate 41183520 bytes",
            "std::bad_alloc: malloc of 9223372036854775807 bytes failed",
        ] {
            assert!(!event(text).facts.absurd_request, "{text}");
        }
        // A negative size printed unsigned (2^64 - 1 is -1).
        let e = event("tensorflow new(sz=18446744073709551615) got std::bad_alloc");
        assert!(e.facts.absurd_request);
        assert_eq!(e.memory.requested_bytes, Some(u64::MAX));
    }

    #[test]
    fn runtime_wordings_with_sizes() {
        let e = event("Exception in main training loop: Out of memory allocating 25,600,000 bytes (allocated so far: 3,635,267,072 bytes).");
        assert_eq!(e.memory.requested_bytes, Some(25_600_000));
        assert_eq!(e.memory.reserved_bytes, Some(3_635_267_072));
        let e = event("[TensorRT] ERROR: Requested amount of memory (150994944 bytes) could not be allocated. There may not be enough free memory for allocation to succeed.");
        assert_eq!(e.memory.requested_bytes, Some(150_994_944));
        assert_eq!(e.device.kind, DeviceKind::Cuda);
        let e = event("Out of memory error on GPU 0. Cannot allocate 25.002197MB memory on GPU 0, available memory is only 15.187500MB.");
        assert_eq!(e.device.index, Some(0));
        assert_eq!(e.memory.free_bytes, Some((15.1875 * 1048576.0) as u64));
        let e = event("RuntimeError: Native API failed. Native API returns: 39 (UR_RESULT_ERROR_OUT_OF_DEVICE_MEMORY)");
        assert_eq!(e.device.kind, DeviceKind::Xpu);
    }

    #[test]
    fn a_kernel_kill_names_what_its_victim_held() {
        let e = event("[441280.8] Out of memory: Killed process 698405 (python) total-vm:49978204kB, anon-rss:12918388kB, file-rss:68668kB, shmem-rss:53352kB");
        assert_eq!(e.memory.process_bytes, Some(12918388 * 1024));
        assert_eq!(e.facts.call.as_deref(), Some("python (pid 698405)"));
        assert_eq!(event("Killed").memory.process_bytes, None);
    }

    #[test]
    fn a_slurm_job_s_memory_request_is_its_limit() {
        let lines = |t: &str| t.lines().map(str::to_string).collect::<Vec<_>>();
        for (text, want) in [
            ("#SBATCH --mem=64Gb", Some(64u64 << 30)),
            ("#SBATCH --mem=16G #memory", Some(16 << 30)),
            ("srun --mem 8000 python x.py", Some(8000 << 20)),
            ("#SBATCH --mem=500M", Some(500 << 20)),
            ("#SBATCH --mem-per-cpu=4G", None),
            ("#SBATCH --mem=0", None),
            ("#SBATCH --ntasks=64", None),
        ] {
            assert_eq!(job_memory_request(&lines(text)), want, "{text}");
        }
    }

    #[test]
    fn kills_of_every_wording() {
        for text in [
            "Killed",
            "**Killed**",
            " 31%|███▉  | 331/1063 [01:06<03:59,  3.06it/s]Killed",
            "已杀死",
            "[ 4018.450000] Killed process 935 (python) total-vm:113656kB",
            "Memory cgroup out of memory: Kill process 62685 (bash) score 0 or sacrifice child",
            "ERROR:torch.distributed.elastic.multiprocessing.api:failed (exitcode: -9) local_rank: 0 (pid: 2410412) of binary: /bin/python",
            "./entrypoint.sh: line 28:     7 Killed                  /app/bin/scalellm",
            "[1]+  Killed                  python train.py",
            "zsh: killed     python train.py",
            "[1]    48213 killed     python train.py --batch 64",
            "Loading checkpoint shards:  88%|███▊  | 7/8 [00:12<00:01,  1.84s/it][1]    14875 killed     python main.py",
            "fish: Job 1, 'python train.py' terminated by signal SIGKILL (Forced quit)",
            "killed out of memory",
            "ollama.service: A process of this unit has been killed by the OOM killer.",
            "Failed with result 'oom-kill'.",
            "Process 4121 killed (out of memory)",
            "worker killed due to out of memory",
        ] {
            let e = event(text);
            assert!(e.facts.oom_killer(), "{text}");
            assert_eq!(e.device.kind, DeviceKind::Cpu);
        }
    }

    #[test]
    fn compilers_out_of_host_memory_while_building() {
        for (text, tool) in [
            (
                "c++: fatal error: Killed signal terminated program cc1plus",
                Some("cc1plus"),
            ),
            (
                "g++: internal compiler error: Killed (program cc1plus)",
                Some("cc1plus"),
            ),
            (
                "nvcc error   : 'cicc' died due to signal 9 (Kill signal)",
                Some("cicc"),
            ),
            (
                "nvcc error   : 'ptxas' died due to signal 9 (Kill signal)",
                Some("ptxas"),
            ),
            ("ptxas fatal   : Memory allocation failure", None),
            (
                "D:/src/cute/atom/mma_traits_sm100.hpp(3324): catastrophic error : out of memory",
                None,
            ),
            (
                "x.cpp(12): fatal error C1060: compiler is out of heap space",
                None,
            ),
        ] {
            let e = event(text);
            assert!(e.facts.compiling, "{text}");
            assert_eq!(e.device.kind, DeviceKind::Cpu, "{text}");
            assert_eq!(e.facts.call.as_deref(), tool, "{text}");
        }
        // A compiler's other fatal errors are not memory.
        assert!(parse_line("c++: fatal error: no input files").is_none());
    }

    #[test]
    fn kills_that_name_whose_limit_they_enforced() {
        let job = Some(MemoryLimit::Job);
        let container = Some(MemoryLimit::Container);
        for (text, limit) in [
            ("slurmstepd: error: Detected 1 oom-kill event(s) in StepId=4351.batch. Some of your processes may have been killed by the cgroup out-of-memory handler.", job),
            ("slurmstepd: error: Detected 2 oom_kill events in StepId=991.0.", job),
            ("slurmstepd: error: Job 1234 exceeded memory limit (4194304 > 4096000), being killed", job),
            ("slurmstepd: error: Exceeded job memory limit", job),
            ("slurmstepd: error: Exceeded step memory limit at some point.", job),
            ("srun: error: node12: task 0: Out Of Memory", job),
            ("TERM_MEMLIMIT: job killed after reaching LSF memory usage limit.", job),
            ("=>> PBS: job killed: mem 8421340kb exceeded limit 8388608kb", job),
            ("ray.exceptions.OutOfMemoryError: Task was killed due to the node running low on memory.", None),
            ("(raylet) node_manager.cc:2963: 1 Workers (tasks / actors) killed due to memory pressure (OOM), 0 Workers crashed due to other reasons at node (ID: effcf9eb)", None),
            // Cut before its count, or wrapped inside `(tasks / actors)`.
            ("killed due to memory pressure (OOM), 0 Workers crashed due to other reasons at node", None),
            (" actors) killed due to memory pressure (OOM), 0 Workers crashed due to other reasons at node (ID: abd4)", None),
            ("The node was low on resource: memory. Container notebook was using 7Gi, which exceeds its request of 1Gi.", None),
            ("distributed.nanny - WARNING - Worker exceeded 95% memory budget. Restarting", job),
            ("distributed.nanny.memory - WARNING - Worker tcp://127.0.0.1:40233 (pid=5101) exceeded 95% memory budget. Restarting...", job),
            ("      Reason:       OOMKilled", container),
            ("container init was OOM-killed (memory limit too low?)", container),
            ("Memory cgroup out of memory: Killed process 4242 (python)", container),
            ("[ 4018.450000] Killed process 935 (python) total-vm:113656kB", None),
            ("Killed", None),
            ("ray.memory_monitor.RayOutOfMemoryError: More than 95% of the memory on node Local is used (15.98 / 16.82 GB). The top 5 memory consumers are:", None),
            ("Memory on the node (IP: 10.0.0.2, ID: 708c) where the task (actor ID: 0dab, name=RayWorkerVllm.__init__, pid=308, memory used=11.15GB) was running was 12.49GB / 13.15GB (0.950003), which exceeds the memory usage threshold of 0.95. Ray killed this worker (ID: 79a5) because it was the most recently scheduled task", None),
            ("17/11/25 18:23:24 ERROR YarnClusterScheduler: Lost executor 9 on h1: Container killed by YARN for exceeding memory limits. 7.2 GB of 4.2 GB virtual memory used. Consider boosting spark.yarn.executor.memoryOverhead.", container),
            ("Container [pid=2301,containerID=container_1_0001_01_000002] is running beyond physical memory limits. Current usage: 2.1 GB of 2 GB physical memory used; 3.9 GB of 4.2 GB virtual memory used. Killing container.", container),
            // Hadoop 3's wording.
            ("2018-12-12 19:43:26 ERROR TonyApplicationMaster:935 - [2018-12-12 19:43:25.607]Container [pid=12069,containerID=container_1544604976318_0003_01_000003] is running 22081205248B beyond the 'VIRTUAL' memory limit. Current usage: 979.3 MB of 2 GB physical memory used; 24.8 GB of 4.2 GB virtual memory used. Killing container.", container),
        ] {
            let e = event(text);
            assert!(e.facts.oom_killer(), "{text}");
            assert_eq!(e.facts.memory_limit, limit, "{text}");
        }
        // Ray's old monitor gives the node's memory in decimal gigabytes.
        let e = event("ray.memory_monitor.RayOutOfMemoryError: More than 95% of the memory on node Local is used (15.98 / 16.82 GB).");
        assert_eq!(e.memory.total_bytes, Some(16_820_000_000));
        // YARN's report gives the container's allocation.
        let e = event("Container killed by YARN for exceeding memory limits. 7.2 GB of 4.2 GB virtual memory used.");
        assert_eq!(
            e.memory.allowed_bytes,
            Some((4.2 * (1u64 << 30) as f64).round() as u64)
        );
        // Hadoop 3 names the limit that was crossed: the virtual one here.
        let e = event("Container [pid=1,containerID=c_3] is running 22081205248B beyond the 'VIRTUAL' memory limit. Current usage: 979.3 MB of 2 GB physical memory used; 24.8 GB of 4.2 GB virtual memory used. Killing container.");
        assert_eq!(
            e.memory.allowed_bytes,
            Some((4.2 * (1u64 << 30) as f64).round() as u64)
        );
        // A failure worded otherwise keeps the limit its words name.
        let e = event("RuntimeError: out of memory (memory limit too low?)");
        assert!(!e.facts.oom_killer());
        assert_eq!(e.facts.memory_limit, container);
    }

    #[test]
    fn a_component_s_message_quoted_on_its_own_line_is_the_failure() {
        let e = parse_line("\"radv/amdgpu: Not enough memory for command submission.\" This problem did not exist in earlier versions.")
            .expect("Mesa's RADV message, quoted");
        assert!(e.message.contains("radv/amdgpu"), "{}", e.message);
        // Prose that quotes no component keeps the phrase a mention.
        assert!(parse_line("\"Not enough memory\" is what the docs call it.").is_none());
    }

    #[test]
    fn a_markdown_item_with_a_bold_key_is_no_diff_line() {
        // ComfyUI's error report, DirectML's wording.
        let e = parse_line("- **Exception Message:** Could not allocate tensor with 2025000000 bytes. There is not enough GPU video memory available!")
            .expect("the report's message");
        assert!(
            e.message.starts_with("Could not allocate tensor"),
            "{}",
            e.message
        );
        assert_eq!(e.memory.requested_bytes, Some(2_025_000_000));
        assert_eq!(e.device.kind, DeviceKind::Unknown);
        assert!(parse_line("- Could not allocate tensor with 2025000000 bytes").is_none());
    }

    #[test]
    fn not_enough_memory_named_by_its_kind_is_a_failure() {
        for line in [
            "ValueError: Paged attention: not enough Metal memory for KV cache.",
            "RuntimeError: not enough GPU memory to load the model",
        ] {
            assert!(parse_line(line).is_some(), "{line}");
        }
        assert!(parse_line("error: not enough shared memory for this kernel").is_none());
        // A program's guess after its worker died is the failure it tells.
        let ollama = "Error: llama runner exited, you may not have enough available memory to run this model";
        assert!(parse_line(ollama).is_some());
        assert!(parse_line("You may not have enough patience for this").is_none());
    }

    #[test]
    fn a_file_system_out_of_space_is_marked_for_its_surroundings() {
        let p = parse_line("OSError: [Errno 28] No space left on device").expect("a part");
        assert!(p.space_ran_out);
        assert_eq!(p.device.kind, DeviceKind::Cpu);
        assert!(p.message.contains("No space left"), "{}", p.message);
        // Other failures are not.
        let p = parse_line("RuntimeError: unable to allocate 2 GiB").expect("a part");
        assert!(!p.space_ran_out);
        assert!(parse_line("    if err == \"No space left on device\":").is_none());
    }

    #[test]
    fn windows_out_of_memory_after_its_hresult_is_a_failure() {
        for line in [
            "8007000E Not enough memory resources are available to complete this operation.",
            "0x80070008 Not enough memory resources are available to process this command.",
        ] {
            assert!(parse_line(line).is_some(), "{line}");
        }
        // A number that is no failure code, and prose, stay mentions.
        for line in [
            "12345678 Not enough memory resources are available to complete this operation.",
            "I wonder if not enough memory resources are available here",
        ] {
            assert!(parse_line(line).is_none(), "{line}");
        }
    }

    #[test]
    fn std_bad_alloc_as_microsoft_s_runtime_words_it_is_the_failure() {
        for line in [
            "OnnxRuntimeGenAIException: 'bad allocation' when option `max_length` is not set",
            "MemoryError: bad allocation",
            "Unhandled exception: bad allocation",
        ] {
            let e = parse_line(line).expect(line);
            assert_eq!(e.device.kind, DeviceKind::Cpu, "{line}");
        }
        for line in [
            "A bad allocation of work across the nodes slows the job",
            "it crashed with a `bad allocation` exception",
        ] {
            assert!(parse_line(line).is_none(), "{line}");
        }
    }

    #[test]
    fn an_exception_printed_in_backticks_in_a_sentence_is_the_failure() {
        let e = parse_line(
            "I got `OSError: [Errno 12] Cannot allocate memory` at `for i, b in enumerate(loader):`.",
        )
        .expect("a raised error quoted in a sentence");
        assert_eq!(e.device.kind, DeviceKind::Cpu);
        assert_eq!(e.message, "OSError: [Errno 12] Cannot allocate memory");
        for line in [
            "processing the request crashes with `CUDA error: out of memory` on 160Gb",
            "the arena fragments → `bfc_arena.cc ... Failed to allocate memory for requested buffer` on every batch",
            // An error chained through the services that passed it on.
            "An upload failed: `voice-server transcribe-meeting returned 500: transcription failed: CUDA failed with error out of memory`.",
        ] {
            assert!(parse_line(line).is_some(), "{line}");
        }
        // A name in a code span, with no class and colon before it, stays a mention.
        assert!(parse_line("It handles `Cannot allocate memory` by retrying").is_none());
    }

    #[test]
    fn a_runtime_abort_in_backticks_is_the_failure() {
        let e = parse_line("`libc++abi: terminating due to uncaught exception of type std::runtime_error: [malloc_or_wait] Unable to allocate 12 bytes.`")
            .expect("an event");
        assert_eq!(e.device.kind, DeviceKind::Mps);
        // A short span naming the case stays a mention.
        assert!(parse_line("When it fails it throws `rmm::bad_alloc` and exits").is_none());
    }

    #[test]
    fn a_failure_told_in_chinese_prose_is_reported() {
        for text in [
            "就算batch设为1，用deepspeed zero2也会报OOM。",
            "训练到第三个epoch时出现CUDA out of memory",
            "跑到一半就OOM了",
        ] {
            let e = parse_line(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(e.kind, PartKind::Reported, "{text}");
        }
        for text in [
            "如何避免出现OOM？",
            "这样会不会出现OOM",
            "设置这个参数后没有出现OOM",
            "如果出现OOM，请减小batch size",
            "用zero3会报OOM吗",
        ] {
            assert!(parse_line(text).is_none(), "{text}");
        }
    }

    #[test]
    fn mentions_and_warnings_are_not_failures() {
        for text in [
            "WARNING: failed to allocate 1024.00 MB of pinned memory: out of memory",
            "warning: failed to mlock 39813120-byte buffer: Cannot allocate memory",
            "WARNING: Requested amount of GPU memory (4294967296 bytes) could not be allocated.",
            "When RMM fails to allocate a buffer, it throws a `rmm::bad_alloc` exception",
            "    cupy.cuda.memory.OutOfMemoryError: out of memory to allocate XXXX bytes (total YYYY bytes)",
            "+                              \"\\n\\nOut of memory error on XPU, Cannot\"",
            "  out_of_memory+0x6d/0xd0",
            "The process was killed by the user",
            "case cudaErrorMemoryAllocation: return \"out of memory\";",
        ] {
            assert!(parse_line(text).is_none(), "{text}");
        }
    }

    #[test]
    fn a_run_that_failed_after_a_time_is_a_report_not_a_condition() {
        for text in [
            "After three hours training, the GPU ran out of memory trying to allocate some memory.",
            "after 2 epochs the job runs out of memory",
        ] {
            assert!(parse_line(text).is_some(), "{text}");
        }
        for text in [
            "After the model runs out of memory, the server restarts it.",
            "Before it runs out of memory, the loader spills to disk.",
        ] {
            assert!(parse_line(text).is_none(), "{text}");
        }
    }

    #[test]
    fn theano_s_driver_report_gives_free_and_total() {
        let p = parse_line("MemoryError: Error allocating 45158400 bytes of device memory (out of memory). Driver report 44666880 bytes free and 536543232 bytes total").unwrap();
        assert_eq!(p.memory.requested_bytes, Some(45158400));
        assert_eq!(p.memory.free_bytes, Some(44666880));
        assert_eq!(p.memory.total_bytes, Some(536543232));
        assert_eq!(p.device.kind, DeviceKind::Cuda);
    }

    #[test]
    fn a_kill_told_in_words_is_a_reported_kill_unless_asked_hedged_or_another_signal() {
        for text in [
            "Training gets killed",
            "I try to run the train command, but it ends with Killed error again..",
            "The training process was directly killed by the system",
            "The 7B checkpoint keeps getting killed while loading.",
            "I run it on an image and I get the error \"killed\".",
            "I ran the script and got the message killed and nothing more.",
        ] {
            let p = parse_line(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(
                (p.kind, p.facts.kind),
                (PartKind::Reported, EventKind::OomKill),
                "{text}"
            );
        }
        for text in [
            "Why is my training killed?",
            "The logs show nothing about why it is killed.",
            "When a job is killed by the oom killer, it may not be evident to the user.",
            "The worker was killed by signal: Segmentation fault.",
            "The run was killed by the user after an hour.",
            "If the process gets killed, restart it.",
            "The job was not killed.",
            "If you get the error \"killed\", add swap.",
        ] {
            assert!(parse_line(text).is_none(), "{text}");
        }
    }

    #[test]
    fn a_container_not_oom_killed_or_a_zero_budget_is_no_kill() {
        for text in [
            "distributed.nanny.memory - WARNING - Worker tls://10.0.0.4:34937 (pid=129) exceeded 0% memory budget. Restarting...",
            "1. container's **State.OOMKilled** is false, and **State.ExitCode** is 137.",
            "            \"OOMKilled\": false,",
            "Container Exited with code 137 but no OOM",
            "The worker was killed with signal 9, not an OOM: the liveness probe failed",
            "Pod exited with code 137 without an OOM event in dmesg",
        ] {
            assert!(parse_line(text).is_none(), "{text}");
        }
        assert!(parse_line("            \"OOMKilled\": true,").is_some());
        assert!(parse_line("Container exited with code 137 (OOM)").is_some());
    }

    #[test]
    fn a_grpc_status_or_an_api_quota_is_not_memory() {
        for text in [
            "gRPC error: RpcFailure: 8-RESOURCE_EXHAUSTED Received message larger than max (4563651 vs. 4194304)",
            "\tstatus = StatusCode.RESOURCE_EXHAUSTED",
            "rpc error: code = ResourceExhausted desc = grpc: received message larger than max (8388608 vs. 4194304)",
            "google.api_core.exceptions.ResourceExhausted: 429 Resource has been exhausted (e.g. check quota).",
        ] {
            assert!(parse_line(text).is_none(), "{text}");
        }
        for text in [
            "jaxlib.xla_extension.XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying to allocate 17179869184 bytes.",
            "status = StatusCode.RESOURCE_EXHAUSTED details = \"OOM when allocating tensor with shape[8,1024,1024]\"",
        ] {
            assert!(parse_line(text).is_some(), "{text}");
        }
    }

    #[test]
    fn launchers_and_runners_reporting_sigkill() {
        for text in [
            "subprocess.CalledProcessError: Command '['accelerate', 'launch', 'sft.py']' died with <Signals.SIGKILL: 9>.",
            "torch.multiprocessing.spawn.ProcessExitedException: process 3 terminated with signal SIGKILL",
            "  traceback : Signal 9 (SIGKILL) received by PID 4410",
            "Error: llama runner process has terminated: signal: killed",
            "ERROR: Job failed: exit code 137",
            "make: *** [train] exit status 137",
            "trainer exited with code 137",
            "Process finished with exit code 137 (interrupted by signal 9:SIGKILL)",
            "Task failed with status code 137",
            "When I test the container with 20 requests, it eventually crashes with error code 137",
            "subprocess.CalledProcessError: Command '['python', 'sft.py']' returned non-zero exit status -9.",
            "[ERROR] [launch.py:341:sigkill_handler] ['python', '-u', 'train.py'] exits with return code = -9",
            "joblib.externals.loky.process_executor.TerminatedWorkerError: A worker process managed by the executor was unexpectedly terminated. The exit codes of the workers are {SIGKILL(-9)}",
        ] {
            let e = event(text);
            assert!(e.facts.oom_killer(), "{text}");
            assert!(e.facts.signal_only_kill, "{text}");
            assert_eq!(e.device.kind, DeviceKind::Cpu, "{text}");
        }
        for text in [
            "[ 81.2] Out of memory: Killed process 935 (python) total-vm:1kB",
            "slurmstepd: error: Detected 2 oom_kill events in StepId=881.0. Some of the step tasks have been OOM Killed.",
            "slurmstepd: error: Detected 1 oom-kill event(s) in step 881.batch cgroup. Some of your processes may have been killed by the cgroup out-of-memory handler.",
            "slurmstepd: error: Step 881.0 exceeded memory limit (9437184 > 8388608), being killed",
        ] {
            let e = event(text);
            assert!(e.facts.oom_killer(), "{text}");
            assert!(!e.facts.signal_only_kill, "{text}");
        }
        for text in [
            "Process finished with exit code 1",
            "exit code 1370 from the linter",
            "subprocess.CalledProcessError: Command 'make' returned non-zero exit status 2.",
            "The exit codes of the workers are {SIGTERM(-15)}",
            "[ERROR] [launch.py:341:sigkill_handler] exits with return code = -2",
            "sent SIGTERM to the trainer",
        ] {
            assert!(parse_line(text).is_none(), "{text}");
        }
    }

    #[test]
    fn the_old_cpu_allocator_enforcement_with_enomem() {
        for text in [
            "RuntimeError: [enforce fail at CPUAllocator.cpp:56] posix_memalign(&data, gAlignment, nbytes) == 0. 12 vs 0",
            "[enforce fail at allocator.h:48] posix_memalign(&data, gCaffe2Alignment, nbytes) == 0. 12 vs 0 Error from operator:",
            "enforce fail at CPUAllocator.cpp:56] posix_memalign(&data, gAlignment, nbytes) == 0. 12 vs 0",
        ] {
            let e = event(text);
            assert_eq!(e.device.kind, DeviceKind::Cpu, "{text}");
            assert!(!e.facts.oom_killer());
        }
        // 22 is EINVAL, a bad alignment: not memory.
        assert!(parse_line(
            "[enforce fail at CPUAllocator.cpp:56] posix_memalign(&data, gAlignment, nbytes) == 0. 22 vs 0"
        )
        .is_none());
    }

    #[test]
    fn mlx_s_metal_resource_count_limit() {
        for text in [
            // lmstudio-ai/mlx-engine issue 264, ml-explore/mlx-lm issue 1672.
            "Error in iterating prediction stream: RuntimeError: [metal::malloc] Resource limit (499000) exceeded.",
            "    RuntimeError: [metal::malloc] Resource limit (499000) exceeded.",
            // Blaizzy/mlx-vlm issue 1972: the bare line.
            "[metal::malloc] Resource limit (499000) exceeded",
            // Quoted in a report (ml-explore/mlx-lm issue 1644).
            "`[metal::malloc] Resource limit (499000) exceeded.` still occurs on **mlx_lm 0.31.3**",
            "[metal::malloc] Resource limit exceeded",
        ] {
            let e = event(text);
            assert_eq!(e.framework, Framework::Other, "{text}");
            assert_eq!(e.device.kind, DeviceKind::Mps, "{text}");
        }
        assert!(parse_line(
            r#"        raise RuntimeError("[metal::malloc] Resource limit (499000) exceeded.")"#
        )
        .is_none());
        assert!(parse_line(
            "Track the metal resource limit `iogpu.rsrc_limit` and throw if it is exceeded."
        )
        .is_none());
    }

    #[test]
    fn paddle_s_legacy_gpu_allocators() {
        // PaddlePaddle/Paddle issues 9230, 7227, 12652, 8992.
        let e = event("paddle.fluid.core.EnforceNotMet: enforce allocating <= available failed, 1829703254 > 1604058880");
        assert_eq!(e.device.kind, DeviceKind::Cuda);
        assert_eq!(e.memory.requested_bytes, Some(1829703254));
        assert_eq!(e.memory.free_bytes, Some(1604058880));
        let e =
            event("  what():  enforce allocating <= available failed, 10484135494 > 3030253312");
        assert_eq!(e.memory.requested_bytes, Some(10484135494));
        // The v1 trainer's CHECK (Paddle issues 1409, 10554; models issue 884).
        for (text, bytes) in [
            ("Check failed: ptr Fail to allocate GPU memory 2048 bytes", 2048),
            ("Check failed:ptr Fail to allocate GPU memory 7168 bytes", 7168),
            ("F0427 12:22:45.654973 29609 Allocator.h:89] Check failed: ptr Fail to allocate GPU memory 1024 bytes", 1024),
        ] {
            let e = event(text);
            assert_eq!(e.device.kind, DeviceKind::Cuda, "{text}");
            assert_eq!(e.memory.requested_bytes, Some(bytes), "{text}");
        }
        let e = event("Check failed: address Fail to allocate CPU memory: size=4096");
        assert_eq!(e.device.kind, DeviceKind::Cpu);
        assert_eq!(e.memory.requested_bytes, Some(4096));
    }

    #[test]
    fn paddle_s_host_allocator_names_its_size() {
        // PaddlePaddle/Paddle issue 29854.
        let e = event("Error: Alloc 524288000 error! [Hint: Expected posix_memalign(&p, alignment, size) == 0, but received posix_memalign(&p, alignment, size):12 != 0:0.] at (/paddle/paddle/fluid/memory/detail/system_alloc");
        assert_eq!(e.device.kind, DeviceKind::Cpu);
        assert_eq!(e.memory.requested_bytes, Some(524288000));
    }

    #[test]
    fn boost_compute_s_opencl_errors_as_lightgbm_raises_them() {
        for (text, kind) in [
            // lightgbm-org/LightGBM issues 4480, 4492, 5214.
            (
                "  what():  Memory Object Allocation Failure",
                DeviceKind::Unknown,
            ),
            (
                "lightgbm.basic.LightGBMError: Out of Host Memory",
                DeviceKind::Cpu,
            ),
            // The paste's closing fence on the same line.
            (
                "lightgbm.basic.LightGBMError: Out of Host Memory ```",
                DeviceKind::Cpu,
            ),
            (
                "lightgbm.basic.LightGBMError: Out of Resources",
                DeviceKind::Unknown,
            ),
        ] {
            let e = event(text);
            assert_eq!(e.framework, Framework::Other, "{text}");
            assert_eq!(e.device.kind, kind, "{text}");
        }
        for text in [
            "The cluster ran Out of Resources today",
            "what():  Out of Resources for the job queue",
        ] {
            assert!(parse_line(text).is_none(), "{text}");
        }
    }

    #[test]
    fn sycl_s_plugin_interface_out_of_resources() {
        // intel/intel-xpu-backend-for-triton issue 1346, vladmandic/sdnext issue 1526.
        let e = event("RuntimeError: Native API failed. Native API returns: -5 (PI_ERROR_OUT_OF_RESOURCES) -5 (PI_ERROR_OUT_OF_RESOURCES)");
        assert_eq!(e.device.kind, DeviceKind::Xpu);
    }

    #[test]
    fn miopen_s_refused_buffer_is_a_rocm_request() {
        let e = event("MIOpen Error: /data/repo/MIOpen/src/hip/handlehip.cpp:68: Memory not available to allocate buffer: 528515072");
        assert_eq!(e.device.kind, DeviceKind::Rocm);
        assert_eq!(e.memory.requested_bytes, Some(528515072));
    }

    #[test]
    fn planned_work_is_no_failure() {
        for text in [
            "[Bug]: TRACKING ISSUE: CUDA OOM with Logprobs",
            "[RFC]: Avoid OOM when loading sharded checkpoints",
            "[Feature]: retry with a smaller batch when the GPU runs out of memory",
            "Feature request: report OOM per rank",
        ] {
            assert!(parse_line(text).is_none(), "{text}");
        }
        assert!(parse_line("[Bug]: CUDA out of memory with Logprobs").is_some());
    }

    #[test]
    fn an_allocation_error_of_device_or_memory_is_a_failure() {
        let e = event("ManagedCuda.NPP.NPPException: Device allocation error");
        assert_eq!(e.device.kind, DeviceKind::Cuda);
        // A debugger's dump of the exception's properties.
        assert!(parse_line("  Message=Device allocation error").is_some());
        for text in [
            "the memory allocation error handling was rewritten",
            "Fixed a memory allocation error in the parser",
            "  Source=Device allocation error",
        ] {
            assert!(parse_line(text).is_none(), "{text}");
        }
    }

    #[test]
    fn a_program_that_shows_or_prompts_the_failure_reports_it() {
        for text in [
            "When I run the model it prompts an \"out of memory\" error.",
            "The webui showed CUDA out of memory after the second image.",
            "nvcc gave an out of memory error at link time.",
            "Then a dialog pops up with \"Out of memory\".",
            "i have 40GB of vram space still it is giving OOM",
        ] {
            let p = parse_line(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(p.kind, PartKind::Reported, "{text}");
        }
        for text in [
            "If it shows an out of memory error, lower the batch.",
            "Does it report OOM when the cache is full?",
            // What a tool does in general, not what happened.
            "TensorRT reports a build OOM as a missing implementation.",
            "This snippet gives an OOM error, as intended.",
        ] {
            assert!(parse_line(text).is_none(), "{text}");
        }
    }

    #[test]
    fn ray_s_summary_of_no_kills_is_none() {
        assert!(parse_line("(raylet) node_manager.cc:3007: 0 Workers (tasks / actors) killed due to memory pressure (OOM), 3 Workers crashed due to other reasons at node (ID: abd4)").is_none());
    }

    #[test]
    fn a_question_tells_of_the_failure_it_asks_about() {
        for text in [
            "unable to allocate buffer on vulkan?",
            "Failed to allocate memory on a 24GB card?",
        ] {
            let p = parse_line(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(p.kind, PartKind::Reported, "{text}");
        }
        // A quoted error inside a sentence that ends in a question is the
        // error; so is a line at a log's error level.
        let text = "I'm getting an \"Error allocating 45158400 bytes of device memory (out of memory). Driver report 44666880 bytes free\". Maybe 512mb is too little?";
        assert_eq!(parse_line(text).map(|p| p.kind), Some(PartKind::Primary));
        let logged = parse("failed to allocate buffer?", true).map(|p| p.kind);
        assert_eq!(logged, Some(PartKind::Primary));
    }

    #[test]
    fn a_supposed_shortage_is_no_failure() {
        for text in [
            "However, one can run into errors if there is not enough memory to support the load.",
            "The loader raises an error if the GPU runs out of memory.",
            "Errors are retried unless the device is out of memory.",
        ] {
            assert!(parse_line(text).is_none(), "{text}");
        }
        for text in [
            "RuntimeError: not enough memory: you tried to allocate 2147483648 bytes.",
            "Error: out of memory if I run it on the GPU",
        ] {
            assert!(parse_line(text).is_some(), "{text}");
        }
    }

    #[test]
    fn code_that_handles_an_oom_is_a_mention() {
        for text in [
            "[python] Handle torch.cuda.OutOfMemoryError",
            "Mitigate CUDA OutOfMemory error",
            "[SYCL] Clear cache in case of PI_ERROR_OUT_OF_HOST_MEMORY",
            "Clear cache in case of PI_ERROR_OUT_OF_HOST_MEMORY as well as for PI_ERROR_OUT_OF_RESOURCES.",
            "fix: catch OutOfMemoryError when loading the checkpoint",
            // What an API may do, and a branch a change adds.
            "vkAllocateMemory may return VK_ERROR_OUT_OF_DEVICE_MEMORY when the heap is exhausted",
            "note that cudaMalloc can also return cudaErrorMemoryAllocation here",
            "This adds the case for CL_OUT_OF_RESOURCES to the retry list.",
            "Have a custom Exception for CUDA Out of Memory, rather than `RuntimeError`",
            "Better reporting about OOMed containers.",
            "Improve the error message on CUDA OOM",
        ] {
            assert!(parse_line(text).is_none(), "{text}");
        }
        // The error itself, after a verb that ends its own clause.
        assert!(parse_line("ERROR: failed to handle batch: out of memory").is_some());
        assert!(
            parse_line("error: vkAllocateMemory returned VK_ERROR_OUT_OF_DEVICE_MEMORY").is_some()
        );
        assert!(parse_line("Exception: CUDA Out of Memory").is_some());
        assert!(parse_line("Out-of-memory error when building the engine").is_some());
        assert!(parse_line("RuntimeError: Native API failed. Native API returns: 39 (UR_RESULT_ERROR_OUT_OF_DEVICE_MEMORY)").is_some());
    }

    #[test]
    fn tensorrt_plugin_asks_more_scratch_than_its_workspace_pool() {
        let e = event("[TRT] [E] IBuilder::buildSerializedNetwork: Error Code 4: Internal Error (Internal error: plugin node L0/gpt_attention requires 210571452800 bytes of scratch space, but only 47697362944 is available. Try increasing the workspace size with IBuilderConfig::setMemoryPoolLimit().");
        assert_eq!(e.device.kind, DeviceKind::Cuda);
        assert_eq!(e.memory.requested_bytes, Some(210_571_452_800));
        assert_eq!(e.memory.allowed_bytes, Some(47_697_362_944));
        assert_eq!(e.facts.op.as_deref(), Some("L0/gpt_attention"));
        // TensorRT 7's plugin wording, glued to its node's name.
        let e = event("Internal error: plugin node (Unnamed Layer* 0) [PluginV2Ext]requires 20677888 bytes of scratch space, but only 20624360 is available.");
        assert_eq!(e.memory.allowed_bytes, Some(20_624_360));
    }

    #[test]
    fn tensorrt_finds_no_tactic_that_fits_its_workspace() {
        let e = event("[E] [TRT] Internal error: could not find any implementation for node fc_out, try increasing the workspace size with IBuilder::setMaxWorkspaceSize()");
        assert_eq!(e.device.kind, DeviceKind::Cuda);
        assert_eq!(e.facts.op.as_deref(), Some("fc_out"));
        assert_eq!(e.phase_hint, Some(Phase::ModelLoad));
        // TensorRT 8's wording names no workspace: unsupported layers give it too.
        assert!(parse_line(
            "[E] Error[10]: Could not find any implementation for node {ForeignNode[/Gather]}."
        )
        .is_none());
    }
}
