//! Which software printed an event and which kind of device ran out, when
//! the family that read the message could not tell from the message alone:
//! the log prefix of its line, the lines before it and a few wordings that
//! belong to one runtime settle it.
//!
//! Each rule names its source: the runtime's source that prints the words.

use super::patterns::{Parsed, PartKind};
use super::{DeviceKind, Framework};
use regex::Regex;
use std::sync::LazyLock;

/// Lines before an event read for the software around it (a traceback's
/// frames, the log lines of the same failure).
const CONTEXT_LINES: usize = 15;

/// Lines before an event read for the code that placed its tensors (the
/// statement a REPL or a traceback shows last).
const CODE_LINES: usize = 8;

/// Lines after an event read for the GPU its reporter names ("RTX3090 24G"
/// under a pasted error).
const NAMING_LINES: usize = 3;

/// Corrects the framework and device of `parsed` from its raw first line
/// (`raw`, log prefix included), the lines `before` it, its `text` and the
/// lines `after` it.
pub(crate) fn refine(
    raw: &str,
    before: &[String],
    text: &str,
    after: &[String],
    parsed: &mut Parsed,
) {
    let recent = &before[before.len().saturating_sub(CONTEXT_LINES)..];
    let around =
        |re: &Regex| re.is_match(text) || re.is_match(raw) || recent.iter().any(|l| re.is_match(l));
    // The software around a failure told in words shows in the paste
    // under the sentence (a title above its traceback) as often as above it.
    // Under a title, and past the lines any message reads after it under a
    // sentence, only the pasted lines count (frames, log lines: a path, an
    // identifier, a prefix, code quoted in backticks), not the prose that
    // retells the failure.
    let pasted = |l: &String| l.contains(['/', '\\', '_', ':', '[', '`']);
    let kind = parsed.kind;
    let then = |re: &Regex| match kind {
        PartKind::Reported => after
            .iter()
            .enumerate()
            .any(|(i, l)| (i < super::phase::FOLLOWING_LINES || pasted(l)) && re.is_match(l)),
        PartKind::Title => after.iter().filter(|l| pasted(l)).any(|l| re.is_match(l)),
        _ => false,
    };
    let around_or_then = |re: &Regex| around(re) || then(re);
    if let Some(framework) = framework_of(raw, text, parsed, &around, &around_or_then) {
        parsed.framework = framework;
    }
    // ggml's Metal backend logs the command buffer that failed next to the
    // error Metal gave it (ggml-metal: `ggml_metal_graph_compute: command
    // buffer 3 failed with status 5`, then `error: Insufficient Memory
    // (00000008:kIOGPUCommandBufferCallbackErrorOutOfMemory)`): a Metal
    // error with that line just under it is ggml's.
    if parsed.framework == Framework::Other
        && after
            .iter()
            .take(NAMING_LINES)
            .any(|l| l.contains("ggml_metal_"))
    {
        parsed.framework = Framework::LlamaCpp;
    }
    let code = &before[before.len().saturating_sub(CODE_LINES)..];
    let in_code = |re: &Regex| re.is_match(text) || code.iter().any(|l| re.is_match(l));
    // Read only where it can change the device: XLA's events taken for a
    // GPU's (every event runs this, copies in a dense log too).
    let tpu_named = matches!(parsed.framework, Framework::TensorFlow | Framework::Jax)
        && parsed.device.kind == DeviceKind::Cuda
        && around_or_then(&TPU);
    if let Some(kind) = device_of(text, parsed, &around, &in_code, tpu_named) {
        parsed.device.kind = kind;
    }
    if parsed.framework == Framework::TensorFlow {
        super::families::tensorflow_jax::device_from_node_lines(after, parsed);
    }
    if matches!(parsed.framework, Framework::TensorFlow | Framework::Jax) {
        super::families::tensorflow_jax::device_from_allocator_lines(before, after, parsed);
    }
    shared_memory_named(before, text, after, parsed);
    if parsed.device.kind == DeviceKind::Unknown && !parsed.facts.oom_killer() {
        let next = &after[..after.len().min(NAMING_LINES)];
        let names = |re: &Regex| around(re) || then(re) || next.iter().any(|l| re.is_match(l));
        if !names(&CROSS_VENDOR_API) && names(&NVIDIA_GPU) {
            parsed.device.kind = DeviceKind::Cuda;
        } else if names(&APPLE_GPU) && !names(&NVIDIA_GPU) {
            parsed.device.kind = DeviceKind::Mps;
        }
    }
}

/// Shared memory named as what ran out: the tmpfs at `/dev/shm` (POSIX
/// segments: UCX's `Please check that /dev/shm ... has more available
/// memory`), System V segments (`shmget(...) failed: No space left on
/// device, please check shared memory limits by 'ipcs -l'`), or a hint that
/// blames it (`insufficient shared memory`, `out of shared memory`), or
/// pandarallel's transfer through it (`Pandarallel will use Memory file
/// system to transfer data`, its `use_memory_fs` on `/dev/shm`), or
/// PyTorch's own segment for a tensor that crosses processes, which it
/// names `/torch_<pid>_<random>` and prints in angle brackets. A command line that
/// sizes it (`--shm-size`) names nothing that ran out.
static SHARED_MEMORY_RAN_OUT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)/dev/shm\b|\bshmget\b|shared memory limits|(?:insufficient|out of) shared memory|\bmemory file system\b|</torch_\d+_\d+",
    )
    .expect("pattern compiles")
});

/// Lines on each side of a file system running out of space read for the
/// shared memory it was: a traceback's frames and the log lines above it.
const SPACE_LINES: usize = 12;

/// True when a file system that ran out of space (ENOSPC) was shared
/// memory: its line, or one of the lines around it, names shared memory as
/// what filled.
pub(crate) fn space_was_shared_memory(before: &[String], text: &str, after: &[String]) -> bool {
    names_shared_memory(before, text, after, SPACE_LINES)
}

/// True when `text`, or one of the `lines` next to it on either side,
/// names shared memory as what ran out.
fn names_shared_memory(before: &[String], text: &str, after: &[String], lines: usize) -> bool {
    SHARED_MEMORY_RAN_OUT.is_match(text)
        || before
            .iter()
            .rev()
            .take(lines)
            .chain(after.iter().take(lines))
            .any(|l| SHARED_MEMORY_RAN_OUT.is_match(l))
}

/// Lines on each side of a failure read for the shared memory it names.
const SHM_LINES: usize = 2;

/// A failure off any GPU whose line, or a line next to it, names shared
/// memory as what ran out filled host shared memory (a tmpfs or the
/// kernel's segment limits, sized apart from RAM), whichever runtime
/// reported it.
fn shared_memory_named(before: &[String], text: &str, after: &[String], parsed: &mut Parsed) {
    let on_host = matches!(parsed.device.kind, DeviceKind::Unknown | DeviceKind::Cpu);
    if !on_host || parsed.facts.shared_memory().is_some() {
        return;
    }
    if !names_shared_memory(before, text, after, SHM_LINES) {
        return;
    }
    parsed.facts.shm_full = true;
    if parsed.device.kind == DeviceKind::Unknown {
        parsed.device.kind = DeviceKind::Cpu;
    }
}

/// Apple's GPU by its runtime or its chips: MLX and Metal (whose buffer
/// limit is `MTLDevice.maxBufferLength`, "the maximum allowed buffer
/// size"), Apple silicon and its Macs. Their memory is the GPU's too
/// (unified), so an allocation that names no device was the GPU's.
static APPLE_GPU: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i:\bmlx\b|\bmlx[_-]|\bmetal\b|apple\s+silicon|\bmac\s*book|\bmac\s*(?:mini|studio|pro)\b|\bmac\b)|",
        r"(?-u:\b)M[1-5](?:\s+(?:Pro|Max|Ultra))?(?-u:\b)\s+(?:Mac|chip|GPU)|maximum allowed buffer size"
    ))
    .expect("pattern compiles")
});

/// An NVIDIA GPU by its product name (`RTX3090`, `GeForce`, `A6000`,
/// `A100`, `H100`, `Tesla V100`, `Quadro`, `1080ti`; the data-center cards by their
/// bare names too: `V100`, `T4`, `L4`, `L20`, `P100`, `K80`, `B200`; its
/// Jetson modules and DGX systems), as reporters name the card that failed.
static NVIDIA_GPU: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        // Laptop parts add an `M` (`GTX960M`, `GTX 1060M`).
        r"(?-u:\b)(?:RTX|GTX)\s*-?\s*(?:A\s*)?\d{3,4}M?(?-u:\b)|(?-u:\b)(?:GeForce|Quadro)(?-u:\b)|(?-u:\b)Tesla\s*[KPVMT]\d|",
        // A GeForce by its bare number with its Ti or Super suffix
        // (`1080ti`, `2080 Ti`, `1660 super`): the suffixes are NVIDIA's
        // alone.
        r"(?i-u:\b(?:9[5-8]0|10[5-8]0|16[56]0|20[678]0|30[5-9]0|40[6-9]0|50[6-9]0)\s?(?:ti|super)\b)|",
        // CUDA's variable choosing the GPUs a run sees, set on the command
        // that failed (`CUDA_VISIBLE_DEVICES=0 vllm serve ...`).
        r"(?-u:\b)CUDA_VISIBLE_DEVICES(?-u:\b)|",
        r"(?-u:\b)(?:Jetson|DGX|[AHB]100|A(?:800|6000|5500|5000|4500|4000|40|30|16|10|2)|H(?:800|200|20)|L40S?|L20|L4|T4|V100S?|P100|P40|P4|K80|GB?200|TITAN\s*[XVR]\w*)(?-u:\b)"
    ))
    .expect("pattern compiles")
});

/// APIs that run on any vendor's GPU (Vulkan, OpenCL, DirectML and
/// torch-directml's `not enough GPU video memory`): the card's name does not
/// say which runtime ran out.
pub(crate) static CROSS_VENDOR_API: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i:vulkan|\bvk::|opencl|directml)|\bCL_|GPU video memory")
        .expect("pattern compiles")
});

/// A TPU named by its users and its library (`TPU v3-8`, `libtpu`,
/// `jax[tpu]`); not an issue template's question `(CPU?/GPU?/TPU?)`.
static TPU: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i:\b(?:lib)?tpus?(?:$|[^?\w]))").expect("pattern compiles"));

/// A message that names a GPU or CUDA itself.
static GPU_NAMED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i:\bgpu|cuda)").expect("pattern compiles"));

/// torch_xla prints XLA's words (`RESOURCE_EXHAUSTED`, `hbm`) but is
/// PyTorch: its C++ client raises `RuntimeError: Bad StatusOr access`
/// (absl's `StatusOr::value()` through c10), logs from its own
/// `xla_client/xla_util.cc`, runs the `XRTExecute`/`XRTCompile` nodes, and
/// `xla_multiprocessing` reports `Exception in device=TPU:N`.
static TORCH_XLA: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"RuntimeError: Bad StatusOr access|torch_xla|xla_client[/\\]xla_util|XRT(?:Execute|Compile)\b|",
        r"Exception in device=(?:TPU|XLA)|xla_model\.py|xmp\.spawn"
    ))
    .expect("pattern compiles")
});

/// TensorFlow's graph nodes (`[[{{node X}}]]`): JAX has none. (Both
/// spell the status `Resource exhausted:` where XLA came from TensorFlow's
/// tree, so that spelling tells nothing.)
static TENSORFLOW_WORDS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{\{node \w").expect("pattern compiles"));

/// JAX's own words, or XLA built from its tree (`external/org_tensorflow/`).
static JAX_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\bjax|external/org_tensorflow/|external/xla/").expect("pattern compiles")
});

/// A log line's source path in the trees jaxlib builds XLA from.
static JAX_VENDORED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|\s)external/(?:tsl|xla|org_tensorflow)/").expect("pattern compiles")
});

/// JAX named by itself, its library, its client's settings
/// (`XLA_PYTHON_CLIENT_MEM_FRACTION`, jax/_src/xla_bridge.py) or its
/// sources, for an error no parser attributed.
static JAX_OWN_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i:\bjax(?:lib)?\b)|XLA_PYTHON_CLIENT_|jax[/\\]_src\b").expect("pattern compiles")
});

/// XLA run from Elixir (EXLA, under Nx and Bumblebee): its words, its
/// shell (`iex`), Elixir's raised-exception format (`** (RuntimeError)`),
/// and the Logger's default console line (`13:21:27.502 [error] ...`, or
/// `[error] ...` without its time: a lowercase level in brackets, which
/// Python's logging and absl never print).
static ELIXIR_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\bEXLA\b|\bBumblebee\b|\biex\b|\*\* \(\w+(?:Error|Exception)\)")
        .expect("pattern compiles")
});
static ELIXIR_LOGGER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(?:\d{2}:\d{2}:\d{2}\.\d{3}\s+)?\[(?:debug|info|notice|warning|error)\]\s")
        .expect("pattern compiles")
});

/// A glog prefix whose source path is TensorFlow's tree (`E tensorflow/...`);
/// JAX logs from `external/xla/` or `external/org_tensorflow/`. A log that
/// keeps only the file's name (a TPU worker's, `W1110 07:24:24.387306 892
/// op_kernel.cc:1639]`) names TensorFlow by its op kernels' file, which XLA
/// and JAX do not have.
static TENSORFLOW_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|\s)[IWEF]\d*(?:\s+[\d:.]+\s+\d+)?\s+(?:(?:[A-Za-z]:\\\S*?\\)?tensorflow[/\\][\w/\\.\-]+|op_kernel\.cc):\d+\]")
        .expect("pattern compiles")
});

/// SYCL's Unified Runtime and PI error codes (`UR_RESULT_ERROR_OUT_OF_DEVICE_MEMORY`,
/// `PI_ERROR_OUT_OF_RESOURCES`) raised as a Python `RuntimeError`: PyTorch's
/// XPU backend turns the C++ error into that class.
static SYCL_RUNTIME_ERROR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"RuntimeError:.*\b(?:UR_RESULT_|PI_ERROR_)").expect("pattern compiles")
});

/// ggml's backends log under their own names (`ggml_metal_synchronize:
/// error: command buffer 0 failed with status 5`, `ggml_vulkan: ...`,
/// `ggml-metal-context.m:235: fatal error`) right before the runtime's own
/// words for the failure (Metal's `Insufficient Memory
/// (00000008:kIOGPUCommandBufferCallbackErrorOutOfMemory)`): llama.cpp and
/// the tools built on ggml. ggml's assertion macro (`GGML_ASSERT:
/// ggml-opencl.cpp:1758: false`) names it too.
static GGML_BACKEND: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\bggml[_-](?:metal|vulkan|vk|sycl|cann|cuda|hip|musa|opencl|kompute|rpc|backend)|\bGGML_ASSERT\b")
        .expect("pattern compiles")
});

/// PyTorch's own words for a failed CUDA allocation in the generic layer's
/// reach: its caching allocator's `CUDA out of memory` (c10/cuda/
/// CUDACachingAllocator.cpp; no other runtime puts those words together:
/// the CUDA runtime says `out of memory` after `error:`, CTranslate2 `CUDA
/// failed with error`), its `RuntimeError: CUDA error: out of memory` (c10's
/// CUDA check raises a RuntimeError; CuPy, Numba and MXNet raise their own
/// classes), the trailer c10 adds to every CUDA or HIP error (`Device-side
/// assertion tracking was not enabled by user`, `Compile with
/// TORCH_USE_CUDA_DSA`), `torch.AcceleratorError` (PyTorch 2.8's class for
/// those errors), its exception class named in full (`torch.OutOfMemoryError`,
/// `torch.cuda.OutOfMemoryError`: torch/cuda/__init__.py), and the frames of
/// PyTorch and the libraries built on it
/// (pip's `site-packages`, Debian's `dist-packages`).
static PYTORCH_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        // An ASCII boundary: Chinese reports run the words on ("报错CUDA out of memory").
        r"(?i:(?-u:\b)cuda\s+out\s+of\s+memory\b)|RuntimeError:\s*(?i:cuda\s+error:\s*out\s+of\s+memory)|",
        r"Device-side assertion tracking was not enabled|TORCH_USE_(?:CUDA|HIP)_DSA|\bAcceleratorError\b|\btorch\.(?:cuda\.)?OutOfMemoryError\b|",
        r"(?:site|dist)-packages[/\\](?:torch|transformers|diffusers|vllm|accelerate|peft|pytorch_lightning|lightning|sglang|deepspeed)[/\\]|",
        // Image generators built on PyTorch: ComfyUI's error report
        // (app/logger's "# ComfyUI Error Report") and its frames, the
        // webui's frames.
        r"ComfyUI Error Report|\b(?:ComfyUI|comfy|stable-diffusion-webui(?:-forge)?)[/\\]\w+\.py|",
        // torch-directml's refusal (PyTorch's DirectML backend, on AMD and
        // Intel GPUs under Windows): "Could not allocate tensor with N
        // bytes. There is not enough GPU video memory available!".
        r"Could not allocate tensor with \d+ bytes\. There is not enough GPU video memory|",
        // Its C++ core, also under bindings (Rust's tch, libtorch): c10's
        // namespace and library, and its host allocator's check
        // (c10/core/CPUAllocator.cpp, c10/core/impl/alloc_cpu.cpp: `[enforce
        // fail at CPUAllocator.cpp:56] posix_memalign(...) == 0. 12 vs 0`).
        r"\bc10::\w|\blibc10\.(?:so|dylib)\b|\b(?:CPUAllocator|alloc_cpu)\.cpp:\d",
    ))
    .expect("pattern compiles")
});

/// PyTorch named in the words around a failure no parser attributed (its
/// modules' `load_state_dict` call counts: no other framework names the
/// method so): its
/// module (`torch`, in `import torch`, `torch.load`, or prose such as "a
/// torch out of memory error"), DeepSpeed (a PyTorch library; its `deepspeed`
/// launcher, and its ZeRO stages, written as DeepSpeed writes them), and
/// PyTorch's own wrappers (`DataParallel`, `DistributedDataParallel`,
/// `FSDP`).
static PYTORCH_NAMED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?-u:\b)torch(?-u:\b)|(?i:\bdeepspeed\b)|\bZeRO\b|\b(?:Distributed)?DataParallel\b|\bFSDP\b|\.load_state_dict\(",
    )
    .expect("pattern compiles")
});

/// TensorFlow named in the words around a failure no parser attributed:
/// its name (`TensorFlow`, a `tensorflow:2.4` image, `KERAS_BACKEND =
/// "tensorflow"`) or Keras (whose default backend it is; a Keras run on
/// another backend names that backend too, which is read first).
static TENSORFLOW_NAMED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i:(?-u:\b)(?:tensorflow|keras)(?-u:\b))").expect("pattern compiles")
});

/// Keras run on Theano or CNTK: the line Keras prints when it loads the
/// backend, the setting that chooses it, or Theano named.
static OTHER_KERAS_BACKEND: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"Using (?:Theano|CNTK) backend|KERAS_BACKEND\W{1,6}(?:theano|cntk)\b|(?i:(?-u:\b)theano(?-u:\b))"#)
        .expect("pattern compiles")
});

/// Ollama, which runs llama.cpp, by its own command (`ollama run`, `ollama
/// create`, `ollama serve`), its settings (`OLLAMA_NUM_PARALLEL`,
/// `OLLAMA_VULKAN`) or the journal's tag of its service (`ollama[27678]:`,
/// as `journalctl -u ollama` prints every line of it).
static OLLAMA_STARTED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\bollama\s+(?:run|serve|create|show|pull|ps|list)\b|\bollama\[\d+\]:|\bOLLAMA_[A-Z_]+\b",
    )
    .expect("pattern compiles")
});

/// Ollama by its name, for a failure told in words or titled.
static OLLAMA_NAMED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i:(?-u:\b)ollama(?-u:\b))").expect("pattern compiles"));

/// vLLM by its name, as users and its own logs write it.
static VLLM_NAMED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i:(?-u:\b)vllm(?-u:\b))").expect("pattern compiles"));

/// llama.cpp, or an app that runs it (LM Studio, KoboldCpp, whisper.cpp on
/// the same ggml), by its name as reports write it (`llama.cpp`,
/// `llama-cpp`, `llama_cpp`, `llama-cpp-python`).
static LLAMA_CPP_NAMED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i:(?-u:\b)(?:llama[.\-_]?cpp|lm[ -]?studio|koboldcpp|whisper\.cpp)(?-u:\b))")
        .expect("pattern compiles")
});

/// vLLM started by its own command or module (`vllm serve MODEL`, `python -m
/// vllm.entrypoints.openai.api_server`) in the lines above an error no
/// parser attributed, or its own allocator's source (`csrc/cumem_allocator.cpp`,
/// the CUDA virtual-memory pool behind its sleep mode, which reports `Cuda
/// error: out of memory at .../cumem_allocator.cpp: 62`): the engine printed it.
static VLLM_STARTED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\bvllm\s+serve\b|\bvllm\.entrypoints\b|\bcumem_allocator\.cpp\b")
        .expect("pattern compiles")
});

/// TensorFlow's own words: its status class (`ResourceExhaustedError`,
/// tensorflow/python/framework/errors_impl.py), its Python tree in frames,
/// and its stream executor's `failed to allocate N from device:`
/// (stream_executor/cuda/cuda_driver.cc and rocm_driver.cc, which JAX's XLA
/// prints too: only without JAX's words around).
static TENSORFLOW_STACK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"ResourceExhaustedError|tensorflow[/\\](?:python|core)[/\\]|\bkeras[/\\]engine[/\\]|",
        r"failed to allocate \S+ (?:\(\d+ bytes\) )?from device:"
    ))
    .expect("pattern compiles")
});

/// PaddlePaddle raises its enforce errors under TensorFlow's status names
/// (`ResourceExhaustedError: Out of memory error on GPU 0`, paddle/fluid/
/// platform/enforce.h) in its `Error Message Summary` block; its
/// allocators' own sentences (`Fail to alloc memory of N size`,
/// memory/detail/system_allocator.cc; `Out of memory error on GPU 0`,
/// memory/allocation/cuda_allocator.cc) name it without its name.
static PADDLE_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i:paddle)|Error Message Summary|Fail to alloc memory of|Out of memory error on (?:GPU|CPU|XPU)",
    )
    .expect("pattern compiles")
});

/// llama.cpp's loader and context set-up log under their own names
/// (`llm_load_print_meta:`, `llama_model_load:`, `llama_new_context_with_model:`,
/// `llama_kv_cache_init:`; src/llama*.cpp), its programs and its KV cache's
/// error.
static LLAMA_CPP_LOG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"\b(?:llm_load_\w+|llama_model_load\w*|llama_new_context\w*|llama_kv_cache_init|llama_init_from_model):|",
        // llama.cpp's programs and its release builds (`llama-server`,
        // `llama-cli`, `llama-b6996-bin-ubuntu-vulkan-x64`).
        r"\bllama-(?:server|cli|bench|b\d{4}-bin)\b|",
        // Its KV cache's own error (src/llama-kv-cache.cpp throws `failed to
        // allocate buffer for kv cache`), as apps on it (LM Studio) relay it.
        r"failed to allocate buffer for kv cache",
    ))
    .expect("pattern compiles")
});

/// The Microsoft Cognitive Toolkit by its name, its Python package and its
/// C++ namespace.
static CNTK_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i:\bcntk\b|[/\\]cntk[/\\]|_cntk_py)|Microsoft::MSR::CNTK")
        .expect("pattern compiles")
});

/// ONNX Runtime by its names.
static ORT_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i:onnx\s*runtime|onnxruntime)|\bORT\b").expect("pattern compiles")
});

/// ONNX Runtime's own printing (see [`framework_of`]).
static ORT_PRINTED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\[[EWF]:onnxruntime:|onnxruntime::|onnxruntime_pybind11_state|\[ONNXRuntimeError\]",
    )
    .expect("pattern compiles")
});

fn framework_of(
    raw: &str,
    text: &str,
    parsed: &Parsed,
    around: &dyn Fn(&Regex) -> bool,
    around_or_then: &dyn Fn(&Regex) -> bool,
) -> Option<Framework> {
    let xla_family = matches!(
        parsed.framework,
        Framework::Jax | Framework::TensorFlow | Framework::Other
    );
    if xla_family && around(&TORCH_XLA) {
        return Some(Framework::PyTorch);
    }
    if parsed.framework == Framework::Jax && (ELIXIR_LOGGER.is_match(raw) || around(&ELIXIR_WORDS))
    {
        return Some(Framework::Other);
    }
    // CNTK's CUDA check raises the words ONNX Runtime's later copied
    // (`Microsoft::MSR::CNTK::RuntimeError("%s failure %d: %s ; GPU=%d ;
    // hostname=%s ; expr=%s", ...)`, without ONNX Runtime's `; file=` and
    // trailing message); CNTK named around it, and not ONNX Runtime, is
    // CNTK's.
    if parsed.framework == Framework::OnnxRuntime && around(&CNTK_WORDS) && !around(&ORT_WORDS) {
        return Some(Framework::Other);
    }
    if parsed.framework == Framework::Jax && around(&TENSORFLOW_WORDS) && !around(&JAX_WORDS) {
        return Some(Framework::TensorFlow);
    }
    // TensorFlow's allocator as jaxlib vendors it logs from the trees JAX
    // builds XLA from (`external/tsl/tsl/framework/bfc_allocator.cc`,
    // `external/xla/...`, `external/org_tensorflow/...` in jaxlib before
    // 0.4); TensorFlow names its own copies `local_tsl` and `local_xla`
    // (tensorflow/workspace3.bzl).
    if parsed.framework == Framework::TensorFlow && JAX_VENDORED.is_match(raw) {
        return Some(Framework::Jax);
    }
    if matches!(parsed.framework, Framework::Jax | Framework::Other)
        && !parsed.facts.oom_killer()
        && TENSORFLOW_PREFIX.is_match(raw)
    {
        return Some(Framework::TensorFlow);
    }
    if parsed.framework != Framework::Other || parsed.facts.oom_killer() {
        return None;
    }
    if around_or_then(&GGML_BACKEND)
        || around_or_then(&LLAMA_CPP_LOG)
        || super::families::inference_engines::OLLAMA_RUNNER.is_match(text)
    {
        return Some(Framework::LlamaCpp);
    }
    if around_or_then(&TENSORFLOW_STACK)
        && !around_or_then(&JAX_WORDS)
        && !around_or_then(&PADDLE_WORDS)
    {
        return Some(Framework::TensorFlow);
    }
    // ONNX Runtime's own printing around a failure no parser claimed: its
    // log prefix (`[E:onnxruntime:, inference_session.cc:1484 ...]`), its
    // C++ namespace in a frame or lambda, its Python module's binary, its
    // exception tag. A PyTorch script running an ORT session shows torch's
    // frames too; the failure is the runtime's that printed it.
    if around_or_then(&ORT_PRINTED) {
        return Some(Framework::OnnxRuntime);
    }
    if around_or_then(&PYTORCH_WORDS) {
        return Some(Framework::PyTorch);
    }
    // Ollama's events are llama.cpp's, the engine it runs.
    let told = matches!(parsed.kind, PartKind::Reported | PartKind::Title);
    if around_or_then(&OLLAMA_STARTED) || (told && around_or_then(&OLLAMA_NAMED)) {
        return Some(Framework::LlamaCpp);
    }
    if around_or_then(&JAX_OWN_WORDS) {
        return Some(Framework::Jax);
    }
    // A failure told in words or titled, by a report that names the
    // serving engine it ran ("out of memory running mixtral in vllm
    // 0.2.7"): the engine, ahead of the PyTorch it runs on.
    if matches!(parsed.kind, PartKind::Reported | PartKind::Title) && around_or_then(&VLLM_NAMED) {
        return Some(Framework::Vllm);
    }
    if around(&VLLM_STARTED) {
        return Some(Framework::Vllm);
    }
    // The same for llama.cpp and the apps on it ("CUDA OOM ... before
    // running llama-cpp"), whose events are llama.cpp's as Ollama's are.
    if told && around_or_then(&LLAMA_CPP_NAMED) {
        return Some(Framework::LlamaCpp);
    }
    // Runtimes that word their own errors keep them: CTranslate2's (`CUDA
    // failed with error out of memory`, its `CUDA_CHECK` in src/cuda/utils.h;
    // faster-whisper and WhisperX load PyTorch models beside it) and
    // Triton's on-chip memory (`OutOfResources: out of resource: shared
    // memory`, raised under torch.compile's frames).
    let own_wording =
        text.contains("CUDA failed with error") || parsed.facts.shared_memory().is_some();
    if !own_wording && around_or_then(&PYTORCH_NAMED) {
        return Some(Framework::PyTorch);
    }
    // Keras on Theano or CNTK prints its backend when imported (`Using
    // Theano backend.`, keras/backend/__init__.py of Keras 1 and 2): Keras
    // there names no TensorFlow.
    if !own_wording && around_or_then(&OTHER_KERAS_BACKEND) {
        return Some(Framework::Other);
    }
    if !own_wording && around_or_then(&TENSORFLOW_NAMED) {
        return Some(Framework::TensorFlow);
    }
    if parsed.device.kind == DeviceKind::Xpu && SYCL_RUNTIME_ERROR.is_match(text) {
        return Some(Framework::PyTorch);
    }
    None
}

/// Intel's extension for PyTorch refuses blocks over 4 GB with its own
/// words (`Current platform can NOT allocate memory block with size larger
/// than 4GB!`, its XPU caching allocator): an Intel GPU.
static IPEX_LIMIT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"Current platform can NOT allocate memory block").expect("pattern compiles")
});

/// Libraries that run on CUDA alone: CuPy's memory pool
/// (`cupy/cuda/memory.pyx`, `OutOfMemoryError`: `Out of memory allocating N
/// bytes (allocated so far: M bytes)`) or its frames, and RAPIDS (its memory
/// manager RMM, `RMM_ERROR_OUT_OF_MEMORY` and `rmm.rmm.RMMError`, and the
/// libraries on it: cuDF, cuML, cuGraph, dask-cuda).
static CUDA_ONLY_LIBRARY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"Out of memory allocating [\d,]+ bytes \(allocated so far|cupy[/\\.]cuda|\bcupy\b|",
        r"\bRMM_|(?i:\brmm\b)|\bcu(?:df|ml|graph)\b|\bdask[_-]cuda\b"
    ))
    .expect("pattern compiles")
});

/// The code around a PyTorch error that puts tensors on a device other
/// than CUDA (`device='xpu'`, `torch.xpu`, `.to("mps")`).
static CONTEXT_DEVICE: LazyLock<Vec<(DeviceKind, Regex)>> = LazyLock::new(|| {
    let rules: &[(DeviceKind, &str)] = &[
        (
            DeviceKind::Xpu,
            r#"device\s*=\s*['"]xpu|torch\.xpu\.\w+\(|\.to\(\s*['"]xpu"#,
        ),
        (
            DeviceKind::Mps,
            r#"device\s*=\s*['"]mps|torch\.mps\.\w+\(|\.to\(\s*['"]mps"#,
        ),
    ];
    rules
        .iter()
        .map(|(kind, p)| (*kind, Regex::new(p).expect("pattern compiles")))
        .collect()
});

/// A log line of Intel's Extension for TensorFlow (its source paths).
static ITEX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bitex[/\\](?:core|python)[/\\]").expect("pattern compiles"));

/// OpenVINO named around a failure, and its GPU plugin (`intel_gpu`), which
/// runs on Intel GPUs only (docs.openvino.ai, "GPU Device": integrated and
/// discrete Intel GPUs).
static OPENVINO: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i:openvino)|\bintel_gpu\b").expect("pattern compiles"));

/// Words of an NVIDIA device in the failure's own text.
static NVIDIA_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i:\bcuda|nvidia|\bcudnn|\bcublas|geforce|\brtx\b|\bgtx\b)")
        .expect("pattern compiles")
});

/// The device kind the lines around a message show when its parser could
/// not tell; `tpu_named`: a TPU is named around it or in the paste under a
/// title.
fn device_of(
    text: &str,
    parsed: &Parsed,
    around: &dyn Fn(&Regex) -> bool,
    in_code: &dyn Fn(&Regex) -> bool,
    tpu_named: bool,
) -> Option<DeviceKind> {
    let kind = parsed.device.kind;
    if IPEX_LIMIT.is_match(text) {
        return Some(DeviceKind::Xpu);
    }
    if kind == DeviceKind::Unknown
        && parsed.framework == Framework::Other
        && around(&CUDA_ONLY_LIBRARY)
    {
        return Some(DeviceKind::Cuda);
    }
    // A failure of OpenVINO's GPU plugin, whose words say only `GPU`.
    if matches!(kind, DeviceKind::Unknown | DeviceKind::Cuda)
        && parsed.framework == Framework::Other
        && around(&OPENVINO)
        && !NVIDIA_WORDS.is_match(text)
    {
        return Some(DeviceKind::Xpu);
    }
    // Intel's Extension for TensorFlow logs from its own sources (`E
    // itex/core/devices/bfc_allocator.cc:101]`): TensorFlow on an Intel GPU.
    if kind == DeviceKind::Unknown && parsed.framework == Framework::TensorFlow && around(&ITEX) {
        return Some(DeviceKind::Xpu);
    }
    // XLA's `Failed to allocate request for N on device ordinal K` is
    // StreamExecutor's, on any platform: the parser took the ordinal for a
    // GPU's, which a TPU named around the failure ("Colab TPU", "TPU VM
    // v3-8", `libtpu`) corrects when the message names no GPU. A TPU has no
    // kind of its own: unknown.
    if matches!(parsed.framework, Framework::TensorFlow | Framework::Jax)
        && kind == DeviceKind::Cuda
        && !GPU_NAMED.is_match(text)
        && tpu_named
    {
        return Some(DeviceKind::Unknown);
    }
    // PyTorch's message names its backend (`CUDA`, `HIP`, `XPU`, `MPS`);
    // one quoted without its first words was taken for CUDA.
    let names_backend = ["CUDA", "cuda", "HIP", "XPU", "MPS"]
        .iter()
        .any(|w| text.contains(w));
    if parsed.framework == Framework::PyTorch && kind == DeviceKind::Cuda && !names_backend {
        return CONTEXT_DEVICE
            .iter()
            .find(|(_, re)| in_code(re))
            .map(|(kind, _)| *kind);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onnx_runtime_s_log_names_a_failure_no_parser_claimed() {
        let raw = "8007000E Not enough memory resources are available to complete this operation.";
        let log = "2022-10-10 10:05:28.0893026 [E:onnxruntime:, inference_session.cc:1484 onnxruntime::InferenceSession::Initialize] Exception during initialization";
        let p = refined(Framework::Other, DeviceKind::Unknown, raw, log);
        assert_eq!(p.framework, Framework::OnnxRuntime);
        let p = refined(
            Framework::Other,
            DeviceKind::Unknown,
            raw,
            "pip install onnxruntime-directml",
        );
        assert_eq!(p.framework, Framework::Other);
    }

    #[test]
    fn xla_s_device_ordinal_on_a_tpu_is_no_gpu() {
        let raw = "ResourceExhaustedError: Failed to allocate request for 64.00MiB (67108864B) on device ordinal 0";
        let tpu = "I'm training an XLM model on a small dataset using Colab TPU.";
        let p = refined(Framework::TensorFlow, DeviceKind::Cuda, raw, tpu);
        assert_eq!(p.device.kind, DeviceKind::Unknown);
        for before in [
            "- Flax version (CPU?/GPU?/TPU?): 0.3.4 (cpu)",
            "on my RTX 3090",
        ] {
            let p = refined(Framework::Jax, DeviceKind::Cuda, raw, before);
            assert_eq!(p.device.kind, DeviceKind::Cuda, "{before}");
        }
        let on_gpu = "RESOURCE_EXHAUSTED: Out of memory allocating on GPU 0";
        let p = refined(Framework::Jax, DeviceKind::Cuda, on_gpu, tpu);
        assert_eq!(p.device.kind, DeviceKind::Cuda);
    }

    fn refined(framework: Framework, kind: DeviceKind, raw: &str, before: &str) -> Parsed {
        let mut parsed = Parsed::new(framework, kind, raw.to_string());
        let before: Vec<String> = before.lines().map(str::to_string).collect();
        refine(raw, &before, raw, &[], &mut parsed);
        parsed
    }

    #[test]
    fn openvino_s_gpu_plugin_is_an_intel_gpu() {
        // openvinotoolkit/openvino issue 35723.
        let raw = "Gemma4 E4B runs very fast on GPU, but after several conversation turns it fails with CL_OUT_OF_RESOURCES.";
        let before = "OS: Ubuntu 26.04\nGPU: Intel Arc B580 12GB\nOpenVINO: 2026.2.0.dev20260506\nDevice: GPU.1";
        let e = refined(Framework::Other, DeviceKind::Cuda, raw, before);
        assert_eq!(e.device.kind, DeviceKind::Xpu);
        // Named beside a CUDA failure, OpenVINO is not the device.
        let cuda = "RuntimeError: CUDA error: out of memory";
        let e = refined(
            Framework::Other,
            DeviceKind::Cuda,
            cuda,
            "pip install openvino",
        );
        assert_eq!(e.device.kind, DeviceKind::Cuda);
    }

    #[test]
    fn a_full_file_system_was_shared_memory_when_its_surroundings_say_so() {
        let lines = |v: &[&str]| v.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        let pandarallel = lines(&[
            "INFO: Pandarallel will use Memory file system to transfer data between the main process and workers.",
            "Traceback (most recent call last):",
            "  File \"/site-packages/pandarallel/core.py\", line 263, in closure",
            "    pickle.dump(chunk, filedescriptor)",
        ]);
        let enospc = "OSError: [Errno 28] No space left on device";
        assert!(space_was_shared_memory(&pandarallel, enospc, &[]));
        assert!(space_was_shared_memory(
            &[],
            "I get `No space left on device`: /dev/shm is 64 MB",
            &[]
        ));
        // A disk that filled, or a command sizing shared memory, is not.
        let disk = lines(&[
            "  File \"torch/serialization.py\", line 1, in save",
            "docker run --shm-size 1g",
        ]);
        assert!(!space_was_shared_memory(&disk, enospc, &[]));
        // Lines too far from the failure say nothing of it.
        let mut far = pandarallel.clone();
        far.truncate(1);
        far.extend(lines(&["step"; SPACE_LINES]));
        assert!(!space_was_shared_memory(&far, enospc, &[]));
    }

    #[test]
    fn shared_memory_named_next_to_a_failure_is_what_filled() {
        let raw = "UCX  ERROR failed to allocate 4208440835 bytes using md posix: Out of memory";
        let shm = refined(
            Framework::Other,
            DeviceKind::Unknown,
            raw,
            "mm_posix.c:88   UCX  ERROR Not enough memory to write total of 4208440835 bytes. Please check that /dev/shm or the directory you specified has more available memory.",
        );
        assert!(shm.facts.shm_full);
        assert_eq!(shm.device.kind, DeviceKind::Cpu);
        // A command that sizes shared memory names nothing that ran out,
        // and a GPU's failure keeps its device.
        let sized = refined(
            Framework::Other,
            DeviceKind::Unknown,
            raw,
            "docker run --shm-size 1g image",
        );
        assert!(!sized.facts.shm_full);
        let gpu = refined(
            Framework::PyTorch,
            DeviceKind::Cuda,
            "CUDA out of memory.",
            "ls /dev/shm",
        );
        assert_eq!(gpu.device.kind, DeviceKind::Cuda);
        assert!(!gpu.facts.shm_full);
    }

    #[test]
    fn a_metal_error_over_ggml_s_command_buffer_line_is_ggml_s() {
        let raw =
            "error: Insufficient Memory (00000008:kIOGPUCommandBufferCallbackErrorOutOfMemory)";
        let under = |line: &str| {
            let mut parsed = Parsed::new(Framework::Other, DeviceKind::Mps, raw.to_string());
            refine(raw, &[], raw, &[line.to_string()], &mut parsed);
            parsed.framework
        };
        assert_eq!(
            under("ggml_metal_graph_compute: command buffer 3 failed with status 5"),
            Framework::LlamaCpp
        );
        assert_eq!(
            under("[METAL] Command buffer execution failed"),
            Framework::Other
        );
    }

    #[test]
    fn tensorflow_s_allocator_inside_jaxlib_is_jax_s() {
        for raw in [
            "W external/tsl/tsl/framework/bfc_allocator.cc:485] Allocator (GPU_0_bfc) ran out of memory trying to allocate 85.87GiB (rounded to 92198188544)requested by op",
            "E external/org_tensorflow/tensorflow/core/common_runtime/bfc_allocator.cc:1 Allocator (GPU_0_bfc) ran out of memory trying to allocate 45.45GiB",
        ] {
            assert_eq!(refined(Framework::TensorFlow, DeviceKind::Cuda, raw, "").framework, Framework::Jax, "{raw}");
        }
        let tf = "W external/local_tsl/tsl/framework/bfc_allocator.cc:485] Allocator (GPU_0_bfc) ran out of memory trying to allocate 2.0GiB";
        assert_eq!(
            refined(Framework::TensorFlow, DeviceKind::Cuda, tf, "").framework,
            Framework::TensorFlow
        );
    }

    #[test]
    fn cntk_s_cuda_check_is_not_onnx_runtime_s() {
        let raw = "CUDA failure 2: out of memory ; GPU=0 ; hostname=MSI ; expr=cudaMalloc((void**) &deviceBufferPtr, sizeof(AllocatedElemType) * numElements)";
        let p = refined(
            Framework::OnnxRuntime,
            DeviceKind::Cuda,
            raw,
            "I tried to increase the size of the convolution kernel and the cntk showed cuda failure error.",
        );
        assert_eq!(p.framework, Framework::Other);
        let p = refined(Framework::OnnxRuntime, DeviceKind::Cuda, raw, "");
        assert_eq!(p.framework, Framework::OnnxRuntime);
    }

    #[test]
    fn pytorch_s_host_allocator_under_a_binding_is_pytorch_s() {
        let raw = r#"value: TorchError { c_error: "[enforce fail at CPUAllocator.cpp:56] posix_memalign(&data, gAlignment, nbytes) == 0. 12 vs 0"#;
        let p = refined(Framework::Other, DeviceKind::Cpu, raw, "");
        assert_eq!(p.framework, Framework::PyTorch);
        let p = refined(
            Framework::Other,
            DeviceKind::Cpu,
            "posix_memalign: Cannot allocate memory",
            "frame #2: c10::alloc_cpu(unsigned long) + 0x65e",
        );
        assert_eq!(p.framework, Framework::PyTorch);
        let p = refined(
            Framework::Other,
            DeviceKind::Cpu,
            "posix_memalign: Cannot allocate memory",
            "",
        );
        assert_eq!(p.framework, Framework::Other);
    }

    #[test]
    fn intel_s_extension_for_tensorflow_runs_on_an_intel_gpu() {
        let raw = "E itex/core/devices/bfc_allocator.cc:101] Allocator ran out of memory trying to allocate 10529419660 Bytes";
        let p = refined(Framework::TensorFlow, DeviceKind::Unknown, raw, "");
        assert_eq!(p.device.kind, DeviceKind::Xpu);
        let p = refined(
            Framework::TensorFlow,
            DeviceKind::Unknown,
            "Allocator ran out of memory trying to allocate 1024 Bytes",
            "",
        );
        assert_eq!(p.device.kind, DeviceKind::Unknown);
    }

    #[test]
    fn ggml_s_backends_and_its_assertion_name_llama_cpp() {
        for raw in [
            "CLBlast: OpenCL error: clEnqueueNDRangeKernel: -4 GGML_ASSERT: ggml-opencl.cpp:1758: false",
            "ggml_opencl: clCreateBuffer error -4 at ggml-opencl.cpp:1450",
        ] {
            let p = refined(Framework::Other, DeviceKind::Unknown, raw, "");
            assert_eq!(p.framework, Framework::LlamaCpp, "{raw}");
        }
        let p = refined(
            Framework::Other,
            DeviceKind::Unknown,
            "clEnqueueNDRangeKernel: -4",
            "",
        );
        assert_eq!(p.framework, Framework::Other);
        // Its programs and release builds named above a failure.
        for before in [
            "llama-b6996-bin-ubuntu-vulkan-x64",
            "./llama-server -m m.gguf -ngl 99",
        ] {
            let raw = "radv/amdgpu: Not enough memory for command submission.";
            let p = refined(Framework::Other, DeviceKind::Unknown, raw, before);
            assert_eq!(p.framework, Framework::LlamaCpp, "{before}");
        }
        let p = refined(
            Framework::Other,
            DeviceKind::Unknown,
            "out of memory",
            "pip install llama-index",
        );
        assert_eq!(p.framework, Framework::Other);
    }

    #[test]
    fn an_error_under_vllm_s_own_command_is_vllm_s() {
        let raw = "ValueError: Paged attention: not enough Metal memory for KV cache.";
        let under =
            |before: &str| refined(Framework::Other, DeviceKind::Mps, raw, before).framework;
        assert_eq!(
            under("vllm serve openai/gpt-oss-20b --max-model-len 8192"),
            Framework::Vllm
        );
        assert_eq!(under("pip install vllm-metal"), Framework::Other);
    }

    #[test]
    fn frameworks_named_around_a_failure_told_in_words() {
        use DeviceKind as D;
        use Framework as F;
        let cases: &[(D, &str, &str, F)] = &[
            // Chinese runs the words on: the boundary is ASCII's.
            (
                D::Unknown,
                "请教：batchsize=1, 还是报错CUDA out of memory",
                "",
                F::PyTorch,
            ),
            (
                D::Unknown,
                "but got OOM error with stage=2",
                "ZeRO Stage 2 consumes more GPU memory than Stage 1",
                F::PyTorch,
            ),
            (
                D::Unknown,
                "but got OOM error with stage=2",
                "zero stage is not the issue",
                F::Other,
            ),
            // Ollama's service in the journal, or its settings: llama.cpp.
            (
                D::Rocm,
                "Feb 18 16:56:30 host ollama[27678]: ROCm error: out of memory",
                "",
                F::LlamaCpp,
            ),
            (
                D::Cuda,
                "CUDA error: out of memory",
                "OLLAMA_NUM_PARALLEL=4 OLLAMA_FLASH_ATTENTION=1",
                F::LlamaCpp,
            ),
            // vLLM's own allocator (its sleep mode's pool) names vLLM.
            (
                D::Cuda,
                "Runtime Error: Cuda error: out of memory at /workspace/csrc/cumem_allocator.cpp: 62",
                "",
                F::Vllm,
            ),
            // llama.cpp's KV-cache error, relayed by an app on it.
            (
                D::Unknown,
                "Failed to initialize the context: failed to allocate buffer for kv cache",
                "",
                F::LlamaCpp,
            ),
            // TensorFlow or Keras named, PyTorch not.
            (
                D::Cpu,
                "terminate called after throwing an instance of 'std::bad_alloc'",
                "INFO:tensorflow:Evaluation [3/10]",
                F::TensorFlow,
            ),
            (
                D::Unknown,
                "failed to allocate memory",
                "os.environ[\"KERAS_BACKEND\"] = \"torch\"; import keras",
                F::PyTorch,
            ),
            // Keras on Theano: no TensorFlow.
            (
                D::Cpu,
                "MemoryError",
                "Using Theano backend.\n  File \"c:\\keras-1.0.3\\keras\\utils\\np_utils.py\", line 14",
                F::Other,
            ),
        ];
        for (kind, raw, before, want) in cases {
            let p = refined(F::Other, *kind, raw, before);
            assert_eq!(p.framework, *want, "{raw} / {before}");
        }
        let mut told = Parsed::new(
            Framework::Other,
            DeviceKind::Unknown,
            "out of memory running mixtral gptq model in vllm 0.2.7".into(),
        );
        told.kind = PartKind::Title;
        let raw = told.message.clone();
        refine(&raw, &[], &raw, &[], &mut told);
        assert_eq!(told.framework, Framework::Vllm);
        // llama.cpp and the apps on it, named by a report; a printed error
        // keeps its own software.
        for (message, want) in [
            (
                "LM Studio 0.2.22 running out of memory with context sizes larger than 56k",
                Framework::LlamaCpp,
            ),
            (
                "CUDA OOM with llama-cpp-python on 2x3090",
                Framework::LlamaCpp,
            ),
            ("CUDA OOM with my own server on 2x3090", Framework::Other),
        ] {
            let mut told = Parsed::new(Framework::Other, DeviceKind::Unknown, message.into());
            told.kind = PartKind::Title;
            refine(message, &[], message, &[], &mut told);
            assert_eq!(told.framework, want, "{message}");
        }
        let printed = refined(
            F::Other,
            D::Cuda,
            "CUDA error: out of memory",
            "pip install llama-cpp-python",
        );
        assert_eq!(printed.framework, F::Other);
    }

    #[test]
    fn an_unattributed_error_among_jax_s_words_is_jax() {
        let raw = "However, with this I get OOM warnings and errors";
        for (before, want) in [
            (
                r#"os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] = ".10""#,
                Framework::Jax,
            ),
            ("Running on jax 0.4.23", Framework::Jax),
            ("import numpy as ajax_helper", Framework::Other),
        ] {
            let p = refined(Framework::Other, DeviceKind::Cuda, raw, before);
            assert_eq!(p.framework, want, "{before}");
        }
    }

    #[test]
    fn a_glog_line_of_tensorflow_s_tree_or_its_op_kernels_is_tensorflow_s() {
        for raw in [
            "W1110 07:24:24.387306     892 op_kernel.cc:1639] Resource exhausted: Compilation failure: Ran out of memory in memory space hbm.",
            "2021-01-05 W tensorflow/core/framework/op_kernel.cc:1763] OP_REQUIRES failed at conv_ops.cc:539 : Resource exhausted: OOM",
        ] {
            let p = refined(Framework::Jax, DeviceKind::Unknown, raw, "");
            assert_eq!(p.framework, Framework::TensorFlow, "{raw}");
        }
        // XLA's own files stay JAX's.
        let raw = "W1110 07:32:01.391885 918 hlo_rematerialization.cc:1363] Can't reduce memory use below 13.58GiB";
        let p = refined(Framework::Jax, DeviceKind::Unknown, raw, "");
        assert_eq!(p.framework, Framework::Jax);
    }

    #[test]
    fn an_allocation_on_a_mac_that_names_no_device_is_apple_s_gpu() {
        let raw = "libc++abi: terminating due to uncaught exception of type std::runtime_error: Attempting to allocate 19081554496 bytes which is greater than the maximum allowed buffer size of 17179869184 bytes.";
        let p = refined(Framework::Other, DeviceKind::Unknown, raw, "");
        assert_eq!(p.device.kind, DeviceKind::Mps);
        let raw = "RuntimeError: failed to allocate 4096 bytes";
        let p = refined(
            Framework::Other,
            DeviceKind::Unknown,
            raw,
            "Running mlx_lm.generate on my M2 Max",
        );
        assert_eq!(p.device.kind, DeviceKind::Mps);
        let p = refined(Framework::Other, DeviceKind::Unknown, raw, "on a Linux box");
        assert_eq!(p.device.kind, DeviceKind::Unknown);
    }

    #[test]
    fn a_card_named_by_its_data_center_name_is_nvidia() {
        for (text, want) in [
            (
                "[Bug]: llama-3.2-11B-vision run in vllm==0.6.3 OOM error（L20）",
                DeviceKind::Cuda,
            ),
            ("OOM during training on a T4 (Colab)", DeviceKind::Cuda),
            ("Out of memory on 8x V100 32GB", DeviceKind::Cuda),
            ("OOM at level L2 of the cache", DeviceKind::Unknown),
            ("Vulkan OOM on an A10", DeviceKind::Unknown),
            ("Out of memory on my GTX 1660 super", DeviceKind::Cuda),
            ("OOM when run in windows + GTX960M", DeviceKind::Cuda),
            (
                "OOM with CUDA_VISIBLE_DEVICES=0 llamafactory-cli api",
                DeviceKind::Cuda,
            ),
            (
                "Out of memory with the super resolution model",
                DeviceKind::Unknown,
            ),
        ] {
            let p = refined(Framework::Other, DeviceKind::Unknown, text, "");
            assert_eq!(p.device.kind, want, "{text}");
        }
    }

    #[test]
    fn an_unattributed_failure_among_pytorch_s_names_is_pytorch() {
        for (before, raw) in [
            ("When switching models a torch \"out of memory\" error appeared.", "RuntimeError: out of memory"),
            ("I run `deepspeed pretrain.py --deepspeed ds_config_zero3.json`", "I get CUDA OOM if I try to train"),
            ("model = nn.DataParallel(model)", "RuntimeError: after cudaLaunch in triple_chevron_launcher::launch(): out of memory"),
            // An app built on PyTorch: ComfyUI's report and its frames.
            ("# ComfyUI Error Report", "- **Exception Message:** Could not allocate tensor with 2025000000 bytes."),
            ("  File \"D:\\SD\\ComfyUI\\execution.py\", line 323, in execute", "RuntimeError: Could not allocate tensor with 2025000000 bytes."),
            ("    113 model.load_state_dict(checkpoint[\"model_state_dict\"])", "OutOfMemoryError                          Traceback (most recent call last)"),
            // torch-directml's own wording, alone.
            ("", "Could not allocate tensor with 1073741824 bytes. There is not enough GPU video memory available!"),
        ] {
            assert_eq!(refined(Framework::Other, DeviceKind::Cuda, raw, before).framework, Framework::PyTorch, "{before}");
        }
        // Only the module's name as a word (`torchvision` is another
        // package), and CTranslate2's own wording keeps its software.
        for (before, raw) in [
            ("pip install torchvision", "RuntimeError: out of memory"),
            (
                "I tried torch.cuda.empty_cache()",
                "RuntimeError: CUDA failed with error out of memory",
            ),
        ] {
            assert_eq!(
                refined(Framework::Other, DeviceKind::Cuda, raw, before).framework,
                Framework::Other,
                "{before}"
            );
        }
    }

    #[test]
    fn a_failure_told_in_words_takes_the_software_of_the_paste_under_it() {
        let title = "[Bug]: llama 3.2 error: Insufficient Memory";
        let after: Vec<String> = ["", "llm_load_print_meta: model ftype      = Q8_0"]
            .iter()
            .map(|l| l.to_string())
            .collect();
        let mut parsed = Parsed::new(Framework::Other, DeviceKind::Mps, title.to_string());
        parsed.kind = PartKind::Reported;
        refine(title, &[], title, &after, &mut parsed);
        assert_eq!(parsed.framework, Framework::LlamaCpp);
        // A message that is the failure itself keeps to its own lines.
        let mut parsed = Parsed::new(Framework::Other, DeviceKind::Mps, title.to_string());
        refine(title, &[], title, &after, &mut parsed);
        assert_eq!(parsed.framework, Framework::Other);
    }

    /// (framework and device read by the family, text, the framework and
    /// device after refining).
    type Case = (Framework, DeviceKind, &'static str, Framework, DeviceKind);

    #[test]
    fn frameworks_and_devices_from_their_runtime_words() {
        use DeviceKind as D;
        use Framework as F;
        let cases: &[Case] = &[
            // torch_xla is PyTorch whatever XLA prints; a JAX error stays JAX.
            (F::Jax, D::Unknown, "RuntimeError: Bad StatusOr access: RESOURCE_EXHAUSTED: Ran out of memory in memory space hbm. Used 9G of 8G hbm.", F::PyTorch, D::Unknown),
            (F::Jax, D::Unknown, "E1201 tensorflow/compiler/xla/xla_client/xla_util.cc:90] RESOURCE_EXHAUSTED: Attempting to reserve 2G", F::PyTorch, D::Unknown),
            (F::Jax, D::Unknown, "jaxlib.xla_extension.XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying to allocate 8 bytes.", F::Jax, D::Unknown),
            // XLA under Elixir's EXLA: its Logger's line, its exception format.
            (F::Jax, D::Unknown, "13:21:27.502 [error] Execution of replica 0 failed: RESOURCE_EXHAUSTED: Out of memory while trying to allocate 117964800 bytes.", F::Other, D::Unknown),
            (F::Jax, D::Unknown, "** (RuntimeError) Out of memory while trying to allocate 117964800 bytes.", F::Other, D::Unknown),
            // TensorFlow's graph nodes and log paths; XLA from JAX's tree stays JAX.
            (F::Jax, D::Cuda, "  (0) Resource exhausted: Failed to allocate request for 1.00GiB on device ordinal 0\n\t [[{{node Conv2D}}]]", F::TensorFlow, D::Cuda),
            (F::Other, D::Rocm, "2023-01-01 10:00:00.1: E tensorflow/compiler/xla/stream_executor/rocm/rocm_driver.cc:606] failed to allocate 1.0G (1073741824 bytes) from device: HIP_ERROR_OutOfMemory", F::TensorFlow, D::Rocm),
            (F::Jax, D::Unknown, "E0101 external/org_tensorflow/tensorflow/compiler/xla/pjrt/x.cc:1] Execution failed: Resource exhausted: Out of memory [[{{node x}}]]", F::Jax, D::Unknown),
            // IPEX's 4 GB limit, CuPy's pool, RAPIDS, SYCL's codes through PyTorch.
            (F::PyTorch, D::Cuda, "RuntimeError: Current platform can NOT allocate memory block with size larger than 4GB! Tried to allocate 7.62 GiB (GPU  0; 15.11 GiB total capacity)", F::PyTorch, D::Xpu),
            (F::Other, D::Unknown, "Exception in main training loop: Out of memory allocating 25,600,000 bytes (allocated so far: 3,635,267,072 bytes).", F::Other, D::Cuda),
            // RAPIDS' memory manager and the libraries on it.
            (F::Other, D::Unknown, "rmm.rmm.RMMError: RMM_ERROR_OUT_OF_MEMORY while trying to create cudf.DataFrame", F::Other, D::Cuda),
            (F::Other, D::Xpu, "RuntimeError: Native API failed. Native API returns: 39 (UR_RESULT_ERROR_OUT_OF_DEVICE_MEMORY)", F::PyTorch, D::Xpu),
            // PyTorch's words and c10's trailer; CTranslate2's and the CUDA
            // runtime's own words stay unattributed.
            (F::Other, D::Cuda, "RuntimeError: CUDA Error: out of memory", F::PyTorch, D::Cuda),
            (F::Other, D::Cuda, "torch.AcceleratorError: HIP error: out of memory\nDevice-side assertion tracking was not enabled by user.", F::PyTorch, D::Cuda),
            (F::Other, D::Cuda, "RuntimeError: CUDA failed with error out of memory", F::Other, D::Cuda),
            (F::Other, D::Cuda, "CUDA error: out of memory", F::Other, D::Cuda),
            // TensorFlow's status class and stream executor; a log path on
            // Windows; a cuBLAS failure TensorFlow logged.
            (F::Other, D::Unknown, "With a batch of 4 the model throws a ResourceExhaustedError after the predictions.", F::TensorFlow, D::Unknown),
            (F::Other, D::Rocm, "mnist.py: failed to allocate 8.00G from device: hipError_t(1002)", F::TensorFlow, D::Rocm),
            (F::Other, D::Cuda, r"E c:\tf_jenkins\workspace\tensorflow\stream_executor\cuda\cuda_driver.cc:1002] failed to allocate 3.00G (3221225472 bytes) from device: CUDA_ERROR_OUT_OF_MEMORY", F::TensorFlow, D::Cuda),
            // Paddle raises its enforce errors under TensorFlow's names.
            (F::Other, D::Cpu, "ResourceExhaustedError: Fail to alloc memory of 776212480 size, error code is 12. (at /paddle/paddle/fluid/memory/detail/system_allocator.cc:67)", F::Other, D::Cpu),
        ];
        for (framework, kind, raw, want_framework, want_kind) in cases {
            let p = refined(*framework, *kind, raw, "");
            assert_eq!(
                (p.framework, p.device.kind),
                (*want_framework, *want_kind),
                "{raw}"
            );
        }
    }

    #[test]
    fn a_quoted_pytorch_message_takes_the_device_of_its_code() {
        let raw = "RuntimeError: Tried to allocate 1.71 GiB (GPU 0; 15.56 GiB total capacity; 0 bytes already allocated)";
        let before =
            ">>> x = torch.rand(46000, 10000, device='xpu')\nTraceback (most recent call last):";
        assert_eq!(
            refined(Framework::PyTorch, DeviceKind::Cuda, raw, before)
                .device
                .kind,
            DeviceKind::Xpu
        );
        // A message that names CUDA keeps it, whatever the code around says.
        let raw = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB";
        assert_eq!(
            refined(Framework::PyTorch, DeviceKind::Cuda, raw, before)
                .device
                .kind,
            DeviceKind::Cuda
        );
    }
}
