//! From what tensors need to what the device shows: PyTorch's caching
//! allocator holds more than is allocated (blocks rounded up, freed blocks
//! kept, activation churn fragmenting segments), and the process adds its
//! CUDA context and library handles, which `nvidia-smi` counts but
//! `torch.cuda.memory_reserved` does not.

/// CUDA context plus cuBLAS/cuDNN handles of one PyTorch process with lazy
/// module loading (CUDA_MODULE_LOADING=LAZY, the default since PyTorch 2.0
/// with CUDA >= 11.7): about 0.5 GiB. Without lazy loading it was larger:
/// the Hugging Face "model memory anatomy" guide measured 1343 MB on a V100.
pub const CUDA_CONTEXT_BYTES: u64 = 512 << 20;

/// The workspace PyTorch hands cuBLAS for each (handle, stream) pair. It is
/// allocated through the caching allocator (`getNewWorkspace` calls
/// `CUDACachingAllocator::get()->allocate`), so `max_memory_allocated`
/// includes it from the first matmul on. Size: the default
/// `CUBLAS_WORKSPACE_CONFIG` ":4096:2:16:8", two 4 MiB chunks and eight
/// 16 KiB ones (pytorch/pytorch aten/src/ATen/cuda/CublasHandlePool.cpp,
/// `parseChosenWorkspaceSize`). Hopper (sm90) gets 32 MiB there instead; the
/// estimate does not know the GPU, so it takes the default.
pub const CUBLAS_WORKSPACE_BYTES: u64 = 4096 * 1024 * 2 + 16 * 1024 * 8;

/// cuBLAS workspaces resident during a step. Handles come from a
/// thread-local pool window (CublasHandlePool.cpp), and autograd runs the
/// backward of CUDA tensors on its own per-device worker thread
/// (torch/csrc/autograd/engine.cpp, `start_device_threads`), so training
/// holds two handles and two workspaces; inference one.
pub fn cublas_workspaces_bytes(train: bool) -> u64 {
    if train {
        2 * CUBLAS_WORKSPACE_BYTES
    } else {
        CUBLAS_WORKSPACE_BYTES
    }
}

/// Extra reserve the allocator holds per byte of memory that is allocated
/// and freed during a step (activations, temporaries, a growing KV cache):
/// freed blocks stay cached and split blocks cannot be merged. Weights and
/// optimizer states, allocated once, add none.
pub const CHURN_OVERHEAD: f64 = 0.2;

/// PyTorch rounds large allocations to 2 MiB (CUDACachingAllocator.cpp,
/// kRoundLarge).
pub const ROUND_LARGE: u64 = 2 << 20;

/// `torch.cuda.max_memory_reserved` for an allocated peak of which `churn`
/// bytes are allocated and freed during a step.
pub fn reserved_peak(allocated_peak: u64, churn: u64) -> u64 {
    let reserved = allocated_peak as f64 + churn as f64 * CHURN_OVERHEAD;
    if reserved >= (u64::MAX - ROUND_LARGE) as f64 {
        return u64::MAX;
    }
    (reserved as u64).max(allocated_peak).div_ceil(ROUND_LARGE) * ROUND_LARGE
}
