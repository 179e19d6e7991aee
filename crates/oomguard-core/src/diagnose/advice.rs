//! What to do right now and what to do next time, in one sentence each, for
//! the end of an explanation: by the framework's usual recovery, except
//! where a smaller retry cannot help (a kernel's shared memory, a batch
//! finder that already reached zero, SGLang's start-up budget).

use crate::oom::{Framework, OomEvent};

/// What to do now.
pub(super) fn workaround(e: &OomEvent) -> &'static str {
    let facts = &e.facts;
    if facts.shared_memory().is_some() {
        return "Retrying smaller does not help: the kernel's configuration has to fit this GPU. Until the library ships one, take the non-Triton path for that layer (attn_implementation=\"sdpa\", or torch.compiler.disable on it).";
    }
    if facts.sglang().is_some() {
        return "Restart the server with the values above; other processes on the GPU must release their memory first.";
    }
    if facts.batch_search_exhausted() {
        return "A smaller batch does not help when batch 1 failed: free what the failed attempts hold (accelerator.free_memory(), del model, optimizer), then make the model fit with the changes above.";
    }
    match e.framework {
        Framework::PyTorch | Framework::Cublas | Framework::Cudnn | Framework::Nccl => {
            "Catch torch.cuda.OutOfMemoryError, drop the references (del outputs, loss), gc.collect(), torch.cuda.empty_cache(), and retry the step with a smaller batch (on the CPU as a last resort)."
        }
        Framework::TensorFlow => {
            "Catch tf.errors.ResourceExhaustedError, call tf.keras.backend.clear_session(), and retry with a smaller batch."
        }
        Framework::Jax => "Catch the XlaRuntimeError, drop references to the large arrays (del x, or x.delete()), and retry with a smaller batch.",
        Framework::Vllm => "Restart the engine with the values above; other processes must release their memory first.",
        Framework::LlamaCpp => "Retry with fewer GPU layers or a smaller context; llama.cpp runs the rest on the CPU.",
        _ => "Free what the process holds, and retry smaller.",
    }
}

/// What to do before the next run.
pub(super) fn prevention(e: &OomEvent) -> &'static str {
    let facts = &e.facts;
    if facts.shared_memory().is_some() {
        return "Run the kernels once on each GPU class you deploy to (shared memory per block differs by compute capability), and pin library releases that ship configurations for it.";
    }
    if facts.sglang().is_some() {
        return "Size --mem-fraction-static, --context-length and --tp to the model and GPU before serving (oomguard plan MODEL --gpu GPU); keep the GPU to one engine.";
    }
    if facts.batch_search_exhausted() {
        return "Check that the model fits before searching a batch (oomguard plan MODEL --train --gpu GPU), and create the model inside the function a batch finder retries.";
    }
    match e.framework {
        Framework::Vllm => {
            "Size max_model_len and gpu_memory_utilization to the GPU before serving; keep the GPU to one engine."
        }
        Framework::LlamaCpp => "Pick the quantization, --n-gpu-layers and --ctx-size from the GPU's free memory before loading.",
        _ => {
            "Size the batch to the GPU before the run, watch memory while it runs (nvidia-smi --query-gpu=memory.used,memory.total --format=csv -l 1), prefer bf16 and gradient checkpointing, and shard (FSDP/ZeRO) models that do not fit one GPU."
        }
    }
}
