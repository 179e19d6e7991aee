//! The host: the kernel's OOM killer, host RAM the CPU allocator (or
//! numpy, or a ggml CPU buffer) could not get, a serving engine's check of
//! the system's memory, and a container's memory limit.

use super::{sizes, CauseId, Ranking};
use crate::oom::{MemoryLimit, OomEvent, Phase};
use crate::size::format_size as fs;

/// The host ran out: the killer or the CPU allocator says so; a stated
/// limit with the killer is the container's; a huge host request is a size
/// gone wrong; the batch and the data loading lower host memory.
pub(super) fn host(r: &mut Ranking, event: &OomEvent) {
    // The JVM's or V8's own limit, not the host's RAM, stopped it.
    if runtime_heap_limit(r, event) {
        return;
    }
    host_ran_out(r, event);
    container_limit(r, event);
    // A build's memory is its parallel compile jobs': no batch to cut.
    if event.facts.compiling {
        return;
    }
    sizes::host_request_suspect(r, event);
    r.add(
        CauseId::BatchTooLarge,
        0.4,
        "a smaller batch, fewer DataLoader workers or memory-mapped data lower host memory",
    );
}

/// Shared memory filled: a tmpfs (`/dev/shm`) or the kernel's System V
/// segment limits, each sized apart from RAM (Docker gives a container a
/// 64 MB /dev/shm unless `--shm-size` or `--ipc=host`; docs.docker.com,
/// `docker run --shm-size`): the size set for it, not the machine's RAM,
/// ran out first.
pub(super) fn shared_memory_full(r: &mut Ranking) {
    r.add_checked(
        CauseId::MemoryCap,
        0.9,
        "shared memory ran out: /dev/shm (or the System V segment limits) is sized apart from RAM, 64 MB in a Docker container by default, and filled before the machine's memory did",
        Some("df -h /dev/shm (and ipcs -lm for System V segments) while it runs: Use% at 100 means the shared-memory size, not RAM"),
    );
    r.limit(
        CauseId::HostMemory,
        0.7,
        "though shared memory has a size of its own, below the RAM",
    );
    r.limit(
        CauseId::BatchTooLarge,
        0.4,
        "a smaller batch only shrinks what each worker passes through shared memory",
    );
}

/// Memory the network card (or the GPU) must pin could not be locked:
/// pinned pages count against the process's locked-memory limit
/// (RLIMIT_MEMLOCK, `ulimit -l`), which distributions set to a few MB and
/// containers inherit, so registration fails long before RAM runs out
/// (NCCL's InfiniBand troubleshooting; RDMA stacks ask for `memlock
/// unlimited` in /etc/security/limits.conf).
pub(super) fn locked_memory_limit(r: &mut Ranking) {
    r.add_checked(
        CauseId::MemoryCap,
        0.9,
        "registering buffers for the network card failed with ENOMEM: pinned memory counts against the locked-memory limit (ulimit -l), often a few MB, not against RAM; raise memlock to unlimited in /etc/security/limits.conf (or docker run --ulimit memlock=-1) for the processes the launcher starts",
        Some("ulimit -l inside the job, as the launcher starts it (mpirun/srun/torchrun -- bash -c 'ulimit -l'): a number in KB rather than unlimited is the limit"),
    );
    r.add(
        CauseId::HostMemory,
        0.35,
        "only if the limit is already unlimited: the host's RAM itself is short",
    );
}

fn host_ran_out(r: &mut Ranking, event: &OomEvent) {
    let evidence = if event.facts.compiling {
        format!(
            "the compiler{} ran out of host RAM building code: each parallel compile job (ninja starts one per core, or MAX_JOBS) holds its own, several GB for CUDA kernels",
            event.facts.call.as_deref().map(|c| format!(" ({c})")).unwrap_or_default()
        )
    } else if let Some(monitor) = memory_monitor(&event.message) {
        format!("{monitor} stopped the work when the node's memory passed its threshold, before the kernel's OOM killer would have: the processes on the node together hold too much")
    } else if event.facts.oom_killer() {
        format!(
            "the kernel's OOM killer ended {}",
            event.facts.call.as_deref().unwrap_or("the process")
        )
    } else if windows_commit_limit(&event.message) {
        "Windows could not commit the memory (error 1455): RAM plus the paging file is used up. Each process that loads the CUDA libraries commits several GB for them, and on Windows every DataLoader worker is a new process that loads them again".into()
    } else {
        match (event.memory.requested_bytes, numpy_shape(&event.message)) {
            (Some(q), Some(shape)) => format!(
                "numpy could not get {} of host RAM for one array of shape {shape}: the machine (or the process's limit) has less free",
                fs(q)
            ),
            (Some(q), None) => format!("the CPU allocator could not get {} of host RAM", fs(q)),
            (None, _) => "the CPU allocator ran out of host RAM".into(),
        }
    };
    if windows_commit_limit(&event.message) {
        r.add_checked(
            CauseId::HostMemory,
            0.85,
            evidence,
            Some("Task Manager > Performance > Memory while it starts: Committed near its limit (the second figure) means the commit limit; rerun with num_workers=0"),
        );
    } else {
        r.add(CauseId::HostMemory, 0.85, evidence);
    }
    // SIGKILL alone is likely the OOM killer, not certainly.
    if event.facts.signal_only_kill {
        r.undecided();
    }
}

/// A framework's own monitor of the node's memory that stops work before
/// the kernel must: Ray's (`RayOutOfMemoryError` before 1.0, then the
/// raylet killing a worker past `RAY_memory_usage_threshold`, Ray's
/// "Out-Of-Memory Prevention" docs) and Dask's nanny (a worker past its
/// memory budget, distributed/nanny.py).
pub(in crate::diagnose) fn memory_monitor(message: &str) -> Option<&'static str> {
    const RAY: &[&str] = &[
        "RayOutOfMemoryError",
        "running low on memory",
        "Ray killed this worker",
        "killed due to memory pressure",
    ];
    if RAY.iter().any(|w| message.contains(w)) {
        Some("Ray's memory monitor")
    } else if message.contains("memory budget") {
        Some("Dask's nanny")
    } else {
        None
    }
}

/// How numpy words a failed array allocation (numpy `_ArrayMemoryError`:
/// "Unable to allocate {size} for an array with shape {shape} and data type
/// {dtype}"): the shape and dtype the program asked for.
pub(super) const NUMPY_ARRAY: &str = "for an array with shape ";

/// The shape numpy printed, `(753, 536, 536)`.
fn numpy_shape(message: &str) -> Option<&str> {
    let at = message.find(NUMPY_ARRAY)? + NUMPY_ARRAY.len();
    let rest = &message[at..];
    let end = rest.find(')')?;
    rest.starts_with('(').then(|| &rest[..=end])
}

/// How Ollama refuses a model its system-memory check finds too large
/// before loading it (ollama `llm/server.go`: "model requires more system
/// memory (X) than is available (Y)").
const SYSTEM_MEMORY_CHECK: &str = "requires more system memory";

/// A serving engine's own check of the host's memory at model load: the
/// model (weights not offloaded, and its context) needs more RAM than is
/// free. Returns true when it applied.
pub(super) fn system_memory_check(r: &mut Ranking, event: &OomEvent) -> bool {
    if !event.message.contains(SYSTEM_MEMORY_CHECK) {
        return false;
    }
    r.add_checked(
        CauseId::HostMemory,
        0.85,
        "the engine checked the system's memory before loading and found less free than the model needs: host RAM, not the GPU, is short",
        Some("free -g (and the container's memory limit) against the size the message asks for; ollama ps shows what is loaded"),
    );
    r.add(
        CauseId::ModelTooLarge,
        0.6,
        "a smaller model or quantization, or a shorter context (num_ctx), lowers what it needs",
    );
    true
}

/// The JVM's own limits, as `java.lang.OutOfMemoryError` names them
/// (OpenJDK's messages): the heap (`Java heap space`, `GC overhead limit
/// exceeded`; its size is `-Xmx`, under Spark `spark.driver.memory` /
/// `spark.executor.memory`), `Metaspace` / `Compressed class space`
/// (`-XX:MaxMetaspaceSize`) and `Direct buffer memory`
/// (`-XX:MaxDirectMemorySize`). Each is a configured cap the process
/// reached, whatever the machine has free.
const JVM_LIMITS: &[&str] = &[
    "Java heap space",
    "GC overhead limit exceeded",
    "Metaspace",
    "Compressed class space",
    "Direct buffer memory",
];

/// Spark's start-up check that the heap it was given holds its reserved
/// memory (UnifiedMemoryManager: `System memory N must be at least M.
/// Please increase heap size using the --driver-memory option or
/// spark.driver.memory ...`, and the executor's): the heap setting, too low.
fn spark_heap_check(message: &str) -> bool {
    message.contains("must be at least")
        && [
            "--driver-memory",
            "--executor-memory",
            "spark.driver.memory",
            "spark.executor.memory",
        ]
        .iter()
        .any(|k| message.contains(k))
}

/// Windows' commit limit stated in the message (see
/// `oom::windows_commit_limit_at`, the reading the parser used).
pub(in crate::diagnose) fn windows_commit_limit(message: &str) -> bool {
    crate::oom::windows_commit_limit_at(message).is_some()
}

/// A managed runtime whose own heap limit the message says it reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::diagnose) enum ManagedHeap {
    /// The JVM: its heap or metaspace (`JVM_LIMITS`), or Spark's start-up
    /// check of the heap it was given.
    Jvm,
    /// V8 (Node.js, Electron and the JavaScript tools built on them):
    /// `FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap
    /// out of memory` (older releases: `CALL_AND_RETRY_LAST Allocation
    /// failed`, `Ineffective mark-compacts near heap limit`). Its limit is
    /// the old space's size, `--max-old-space-size` (MiB), which Node sets
    /// from the machine's memory unless told.
    V8,
    /// Android's runtime (ART): an app's Java heap stops at its growth
    /// limit (`dalvik.vm.heapgrowthlimit`, or `dalvik.vm.heapsize` for an
    /// app that asks for `android:largeHeap`), far below the phone's RAM.
    /// Its message counts down to it (`... free bytes and 164MB until OOM`,
    /// art/runtime/gc/heap.cc).
    Android,
}

/// The managed runtime whose own heap limit `message` says it reached.
pub(in crate::diagnose) fn managed_heap(message: &str) -> Option<ManagedHeap> {
    if message.contains("JavaScript heap out of memory") {
        return Some(ManagedHeap::V8);
    }
    if message.contains(" until OOM") {
        return Some(ManagedHeap::Android);
    }
    // The limit's words first: most host events name none, and only those
    // that do pay for the case-folded copy (`OutofMemoryError` as typed).
    let jvm = JVM_LIMITS.iter().any(|l| message.contains(l))
        && message.to_ascii_lowercase().contains("outofmemoryerror");
    (jvm || spark_heap_check(message)).then_some(ManagedHeap::Jvm)
}

/// A JVM or V8 that reached its own heap limit: the cap first, the host's
/// RAM (when the cap is raised) second.
fn runtime_heap_limit(r: &mut Ranking, event: &OomEvent) -> bool {
    let evidence = match managed_heap(&event.message) {
        None => return false,
        Some(ManagedHeap::Jvm) => (
            "the JVM reached its own limit (the heap's -Xmx; under Spark spark.driver.memory or spark.executor.memory; -XX:MaxMetaspaceSize, -XX:MaxDirectMemorySize), not the machine's RAM: raise it, or process the data in smaller parts",
            "the limit in effect: jcmd <pid> VM.flags | grep -i max (or the Spark UI's Environment tab), against free -g",
        ),
        Some(ManagedHeap::Android) => (
            "Android's runtime refused the app's Java heap at its growth limit, a per-app cap far below the phone's RAM: a whole model or file read into one byte array needs that much heap at once",
            "adb shell getprop dalvik.vm.heapgrowthlimit (and dalvik.vm.heapsize, what android:largeHeap=\"true\" gives): a request near the limit needs the large heap, or the data read from a file path or a memory-mapped buffer instead of one array",
        ),
        Some(ManagedHeap::V8) => (
            "V8 reached its heap limit (the old space's size, --max-old-space-size), not the machine's RAM: raise it, or process the data in smaller parts",
            "node -e \"console.log(require('v8').getHeapStatistics().heap_size_limit / 2**20)\" prints the limit in MiB, against free -g",
        ),
    };
    r.add_checked(CauseId::MemoryCap, 0.8, evidence.0, Some(evidence.1));
    r.add(
        CauseId::HostMemory,
        0.4,
        "a limit raised past the machine's free RAM moves the failure to the host",
    );
    true
}

/// The calls that allocate page-locked (pinned) host memory for a GPU: the
/// CUDA runtime's `cudaHostAlloc` / `cudaMallocHost`, the driver's
/// `cuMemHostAlloc` / `cuMemAllocHost`, HIP's `hipHostMalloc` /
/// `hipHostAlloc` / `hipMallocHost` (each runtime's API reference). Their
/// failure is host memory, or the locked-memory limit, whatever the device
/// has free.
const PINNED_HOST_CALLS: &[&str] = &[
    "cudaHostAlloc",
    "cudaMallocHost",
    "cuMemHostAlloc",
    "cuMemAllocHost",
    "hipHostMalloc",
    "hipHostAlloc",
    "hipMallocHost",
];

/// A failed pinned host allocation: the host's RAM or the process's
/// locked-memory limit (`ulimit -l`, a container's memlock), not the GPU.
pub(super) fn pinned_host_alloc(r: &mut Ranking, event: &OomEvent) -> bool {
    if !PINNED_HOST_CALLS.iter().any(|c| event.message.contains(c)) {
        return false;
    }
    r.add_checked(
        CauseId::HostMemory,
        0.8,
        "the failed call allocates page-locked (pinned) host memory for transfers: the host's RAM or the locked-memory limit ran out, not the GPU",
        Some("free -g and ulimit -l (in a container, its memory and memlock limits); fewer data-loader workers or pin_memory=False lower what is pinned"),
    );
    true
}

/// ggml's CPU backend (llama.cpp, Ollama) could not get a host buffer
/// (`ggml_backend_cpu_buffer_type_alloc_buffer`, `failed to allocate CPU
/// buffer`): the layers kept on the CPU, or the context, in host RAM.
const GGML_HOST_BUFFER: &[&str] = &["cpu_buffer_type_alloc_buffer", "allocate CPU buffer"];

/// The size in the message is one an inference engine computed from the
/// model it loads: Ollama's system-memory check, or a ggml host buffer.
pub(super) fn sized_by_the_engine(event: &OomEvent) -> bool {
    event.message.contains(SYSTEM_MEMORY_CHECK) || ggml_host(event)
}

fn ggml_host(event: &OomEvent) -> bool {
    GGML_HOST_BUFFER.iter().any(|w| event.message.contains(w))
}

/// A ggml host buffer that could not be allocated. Returns true when it
/// applied. llama.cpp maps the weights kept on the CPU from the model file
/// by default (`use_mmap`, the `CPU_Mapped` buffers), so the host buffers
/// it allocates hold the context: the KV cache (n_ctx x layers x the K and
/// V widths) and the compute buffers. One larger than most machines' RAM is
/// a context sized for the model's full training length.
pub(super) fn ggml_host_buffer(r: &mut Ranking, event: &OomEvent) -> bool {
    if !ggml_host(event) {
        return false;
    }
    if let Some(q) = event
        .memory
        .requested_bytes
        .filter(|&q| q >= sizes::HOST_SUSPECT_BYTES)
    {
        r.add_checked(
            CauseId::KvCache,
            0.9,
            format!("one ggml host buffer of {} is more than most machines' RAM: with the weights memory-mapped, a buffer that large is the context (KV cache) sized for a very long n_ctx", fs(q)),
            Some("the n_ctx the log prints at llama_new_context_with_model (or llama_context): set -c / num_ctx to what the prompts need"),
        );
    }
    let what = match event.memory.requested_bytes {
        Some(q) => format!("a {} buffer", fs(q)),
        None => "a buffer".into(),
    };
    r.add_checked(
        CauseId::HostMemory,
        0.85,
        format!("ggml's CPU backend could not get {what} in host RAM: the layers left on the CPU (or the context) need more RAM than is free"),
        Some("free -g while it loads: little available memory (or a low container limit) confirms it"),
    );
    if event.phase == Phase::ModelLoad {
        r.add(
            CauseId::ModelTooLarge,
            0.6,
            "a smaller quantization, or more layers offloaded to the GPU, leaves less in host RAM",
        );
    } else {
        r.add(
            CauseId::KvCache,
            0.6,
            "a shorter context (-c / num_ctx) shrinks the KV cache and compute buffers kept in host RAM",
        );
    }
    true
}

/// The limit a kill enforced, not the machine: the OOM killer with a
/// cgroup limit in the text, or a report that names a container's or a
/// batch job's limit.
fn container_limit(r: &mut Ranking, event: &OomEvent) {
    let container_check = Some("the pod's or container's memory limit (kubectl describe pod, docker inspect) against the process's peak RSS");
    let job_check = Some("the job's peak against its request: sacct -j JOBID --format=JobID,State,ReqMem,MaxRSS or seff JOBID (LSF: bjobs -l; PBS: qstat -f)");
    let limit = event
        .memory
        .allowed_bytes
        .filter(|_| event.facts.oom_killer());
    if let (Some(limit), Some(MemoryLimit::Job)) = (limit, event.facts.memory_limit) {
        r.add_checked(
            CauseId::MemoryCap,
            0.88,
            format!("the batch scheduler killed the job at the {} it requested: the job's request, not the node, ran out", fs(limit)),
            job_check,
        );
        return;
    }
    if let Some(limit) = limit {
        r.add_checked(
            CauseId::MemoryCap,
            0.88,
            format!("the container's memory cgroup is capped at {} and reached it: the limit, not the machine, ran out", fs(limit)),
            container_check,
        );
        return;
    }
    match event.facts.memory_limit {
        Some(MemoryLimit::Container) => r.add_checked(
            CauseId::MemoryCap,
            0.88,
            "the container runtime reports the container OOMKilled: the kernel killed it at its memory cgroup's limit, which is below what it needs (a node out of memory kills containers too: the check tells them apart)",
            container_check,
        ),
        Some(MemoryLimit::Job) => r.add_checked(
            CauseId::MemoryCap,
            0.88,
            "the batch scheduler killed the job at the memory it requested (Slurm's --mem or --mem-per-cpu, LSF's -M, PBS's -l mem): the job's request, not the node, ran out",
            job_check,
        ),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::oom::{Framework, MemoryFigures};

    #[test]
    fn an_engine_s_own_sizes_are_needs_and_a_huge_ggml_host_buffer_the_context() {
        let mut e = pytorch(0, 164 * GIB, 0);
        e.device.kind = crate::oom::DeviceKind::Cpu;
        e.message =
            "Error: model requires more system memory (164.8 GiB) than is available (13.4 GiB)"
                .into();
        let mut r = Ranking::new();
        host(&mut r, &e);
        assert!(r.score(CauseId::InvalidSize).is_none());
        e.message = "ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size 137438953504".into();
        e.memory.requested_bytes = Some(128 * GIB);
        let mut r = Ranking::new();
        host(&mut r, &e);
        ggml_host_buffer(&mut r, &e);
        assert!(r.score(CauseId::InvalidSize).is_none());
        assert_eq!(r.top(), Some(CauseId::KvCache));
    }

    #[test]
    fn full_shared_memory_is_its_size_not_the_ram() {
        let mut e = event(Framework::Other, MemoryFigures::default());
        e.device.kind = crate::oom::DeviceKind::Cpu;
        e.message = "UCX ERROR failed to allocate 4259952 bytes using md sysv for mm_recv_desc: Out of memory".into();
        let mut r = Ranking::new();
        host(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::HostMemory));
        shared_memory_full(&mut r);
        assert_eq!(r.top(), Some(CauseId::MemoryCap));
        assert!(r.score(CauseId::HostMemory).is_some_and(|s| s <= 0.7));
    }

    #[test]
    fn buffers_the_locked_memory_limit_refused_are_that_cap() {
        let mut r = Ranking::new();
        locked_memory_limit(&mut r);
        assert_eq!(r.top(), Some(CauseId::MemoryCap));
        assert!(r.0[0]
            .check
            .as_deref()
            .is_some_and(|c| c.contains("ulimit -l")));
    }

    #[test]
    fn windows_commit_limit_is_host_memory_with_its_own_check() {
        let mut e = event(Framework::PyTorch, MemoryFigures::default());
        e.device.kind = crate::oom::DeviceKind::Cpu;
        e.message =
            "OSError: [WinError 1455] The paging file is too small for this operation to complete."
                .into();
        let mut r = Ranking::new();
        host(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::HostMemory));
        let host_cause = r.0.iter().find(|c| c.id == CauseId::HostMemory).unwrap();
        assert!(host_cause.evidence.contains("paging file"));
        assert!(host_cause.check.as_deref().unwrap().contains("Committed"));
        assert!(!windows_commit_limit("RuntimeError: Error code 14550"));
    }

    #[test]
    fn a_jvm_or_v8_at_its_own_heap_limit_is_a_cap() {
        let mut e = event(Framework::Other, MemoryFigures::default());
        for message in [
            "Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space",
            "I get the error  **java.lang.OutofMemoryError: Java heap space.**",
            "java.lang.OutOfMemoryError: GC overhead limit exceeded",
            "java.lang.IllegalArgumentException: System memory 466092032 must be at least 471859200. Please increase heap size using the --driver-memory option or spark.driver.memory in Spark configuration.",
        ] {
            e.message = message.into();
            let mut r = Ranking::new();
            host(&mut r, &e);
            assert_eq!(r.top(), Some(CauseId::MemoryCap), "{message}");
            assert!(r.score(CauseId::HostMemory) < r.score(CauseId::MemoryCap));
        }
        e.message =
            "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory"
                .into();
        let mut r = Ranking::new();
        host(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::MemoryCap));
        // The JVM's native memory is the host's.
        e.message =
            "# There is insufficient memory for the Java Runtime Environment to continue.".into();
        assert!(!runtime_heap_limit(&mut Ranking::new(), &e));
    }

    #[test]
    fn a_failed_pinned_host_allocation_is_host_memory() {
        let mut e = event(Framework::Other, MemoryFigures::default());
        for message in [
            "[arena.cc:250] Init] cudaHostAlloc failed, ret[2], out of memory",
            "cuMemHostAlloc failed: CUDA_ERROR_OUT_OF_MEMORY",
            "hipHostMalloc(&ptr, size) returned hipErrorOutOfMemory",
        ] {
            e.message = message.into();
            let mut r = Ranking::new();
            assert!(pinned_host_alloc(&mut r, &e), "{message}");
            assert_eq!(r.top(), Some(CauseId::HostMemory), "{message}");
        }
        e.message = "cudaMalloc failed: out of memory".into();
        assert!(!pinned_host_alloc(&mut Ranking::new(), &e));
    }

    #[test]
    fn the_oom_killer_is_host_memory_and_with_a_limit_the_container_s_cap() {
        let mut e = event(Framework::Other, MemoryFigures::default());
        e.facts.kind = crate::oom::EventKind::OomKill;
        let mut r = Ranking::new();
        host(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::HostMemory));
        e.memory.allowed_bytes = Some(16 * GIB);
        let mut r = Ranking::new();
        host(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::MemoryCap));
        assert!(r.0.iter().any(|c| c.check.is_some()));
    }

    #[test]
    fn a_cpu_allocation_failure_names_its_request() {
        let e = pytorch(0, 3 * GIB, 0);
        let mut r = Ranking::new();
        host_ran_out(&mut r, &e);
        assert!(r.0[0].evidence.contains("3.00 GiB"), "{}", r.0[0].evidence);
        // Without the killer, a stated cap is not the container's.
        let mut capped = e.clone();
        capped.memory.allowed_bytes = Some(8 * GIB);
        let mut r = Ranking::new();
        container_limit(&mut r, &capped);
        assert!(r.0.is_empty());
    }

    #[test]
    fn a_container_reported_oomkilled_ran_out_of_its_limit() {
        let mut e = event(Framework::Other, MemoryFigures::default());
        e.device.kind = crate::oom::DeviceKind::Cpu;
        e.facts.memory_limit = Some(MemoryLimit::Container);
        let mut r = Ranking::new();
        host(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::MemoryCap));
        assert_eq!(r.score(CauseId::HostMemory), Some(0.85));
    }

    #[test]
    fn a_compiler_out_of_memory_is_the_build_s_host_memory() {
        let mut e = event(Framework::Other, MemoryFigures::default());
        e.device.kind = crate::oom::DeviceKind::Cpu;
        e.facts.compiling = true;
        e.facts.call = Some("cicc".into());
        let mut r = Ranking::new();
        host(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::HostMemory));
        assert!(r.0[0].evidence.contains("(cicc)"));
        assert_eq!(r.score(CauseId::BatchTooLarge), None);
    }

    #[test]
    fn a_batch_job_killed_at_its_request_ran_out_of_its_limit() {
        let mut e = event(Framework::Other, MemoryFigures::default());
        e.facts.kind = crate::oom::EventKind::OomKill;
        e.facts.memory_limit = Some(MemoryLimit::Job);
        let mut r = Ranking::new();
        host(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::MemoryCap));
        assert!(r
            .0
            .iter()
            .any(|c| c.id == CauseId::MemoryCap && c.evidence.contains("--mem")));
        // A kill that names no limit is the machine's.
        e.facts.memory_limit = None;
        let mut r = Ranking::new();
        host(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::HostMemory));
    }

    #[test]
    fn a_kill_known_only_from_its_signal_leaves_the_ranking_undecided() {
        let mut e = event(Framework::Other, MemoryFigures::default());
        e.facts.kind = crate::oom::EventKind::OomKill;
        let mut r = Ranking::new();
        host(&mut r, &e);
        assert!(!r.1);
        e.facts.signal_only_kill = true;
        let mut r = Ranking::new();
        host(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::HostMemory));
        assert!(r.1);
    }
}
