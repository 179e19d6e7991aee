//! The one check that confirms or rules out each cause: a command to run or
//! a thing to look at, chosen for the device and framework of the event. A
//! rule that knows a sharper check sets it on its cause; the others get the
//! check of their cause here.

use super::{Cause, CauseId};
use crate::oom::{DeviceKind, Framework, OomEvent};

/// Sets the check of every cause that has none.
pub(super) fn fill(causes: &mut [Cause], event: &OomEvent) {
    for cause in causes.iter_mut().filter(|c| c.check.is_none()) {
        cause.check = check_for(cause.id, event).map(str::to_string);
    }
}

/// The lister of processes on the event's device.
fn process_lister(kind: DeviceKind) -> &'static str {
    match kind {
        DeviceKind::Rocm => "rocm-smi --showpids",
        DeviceKind::Xpu => "xpu-smi ps",
        DeviceKind::Mps => {
            "Activity Monitor, Memory tab: other apps' memory (unified with the GPU's)"
        }
        _ => "nvidia-smi --query-compute-apps=pid,used_memory --format=csv",
    }
}

fn check_for(id: CauseId, event: &OomEvent) -> Option<&'static str> {
    let torch = matches!(
        event.framework,
        Framework::PyTorch | Framework::Cublas | Framework::Cudnn | Framework::Nccl
    );
    Some(match id {
        CauseId::OtherProcesses => process_lister(event.device.kind),
        CauseId::HostMemory => "free -g while it runs, and dmesg | grep -i -E 'killed process|out of memory'",
        CauseId::NotMemory => match event.framework {
            Framework::Cudnn | Framework::Cublas => {
                "python -c \"import torch; print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version())\" against nvidia-smi's driver and CUDA version; then rerun with CUDA_LAUNCH_BLOCKING=1"
            }
            _ if event.device.kind == DeviceKind::Mps => {
                "python -c \"import torch, platform; print(torch.__version__, platform.mac_ver()[0], torch.backends.mps.is_available())\""
            }
            _ => "rerun with CUDA_LAUNCH_BLOCKING=1: the first failing call names the real error; compare torch.version.cuda with nvidia-smi's driver version",
        },
        CauseId::Fragmentation if torch => {
            "rerun with PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True: if it passes, it was fragmentation; torch.cuda.memory_summary() shows the cached-but-free blocks"
        }
        CauseId::Fragmentation => "the allocator's dump before the error: many small free chunks and no large one",
        CauseId::BatchTooLarge => "rerun with half the batch (or sequence length): if it passes and memory scales with it, the batch is the cause",
        CauseId::ModelTooLarge => "run one step at batch 1: if that fails too, the model (weights, gradients, optimizer states) does not fit",
        CauseId::LeftoverTensors if torch => {
            "print torch.cuda.memory_allocated() after every step: a value that climbs step after step means tensors are kept alive"
        }
        CauseId::LeftoverTensors => "log the device's memory after every step: a value that climbs means tensors are kept alive",
        CauseId::MultipleModels => "print torch.cuda.memory_allocated() just before loading each model: memory already held means an earlier model is still there",
        CauseId::NonFrameworkMemory if torch => {
            "compare nvidia-smi's memory for this pid with torch.cuda.memory_reserved(): the difference is held outside PyTorch"
        }
        CauseId::NonFrameworkMemory => "compare the process's memory in nvidia-smi with what the framework reports holding",
        CauseId::MemoryCap => match event.framework {
            Framework::Vllm => "the gpu_memory_utilization the engine started with, and the 'KV cache' / '# GPU blocks' lines of its log",
            _ if event.device.kind == DeviceKind::Mps => "echo $PYTORCH_MPS_HIGH_WATERMARK_RATIO (unset means the default cap)",
            _ => "look for set_per_process_memory_fraction, per_process_gpu_memory_fraction, XLA_PYTHON_CLIENT_MEM_FRACTION or a container memory limit in the run's code and environment",
        },
        CauseId::KvCache => match event.framework {
            Framework::Vllm => "the engine's 'GPU KV cache size' / 'Maximum concurrency' log lines against --max-model-len",
            Framework::LlamaCpp => "the 'KV self size' / 'llama_kv_cache' line of the load log against the free memory",
            _ => "rerun with fewer sequences or a shorter maximum length: memory should drop with batch x length",
        },
        CauseId::InvalidSize => "print the shapes (and dtypes) of the failing op's inputs: one dimension is far off",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oom::{Device, EventFacts, MemoryFigures, Phase};

    fn event(framework: Framework, kind: DeviceKind) -> OomEvent {
        OomEvent {
            source: "-".into(),
            line: 1,
            framework,
            device: Device { kind, index: None },
            message: String::new(),
            memory: MemoryFigures::default(),
            phase: Phase::Unknown,
            ranks: None,
            facts: EventFacts::default(),
        }
    }

    #[test]
    fn every_cause_gets_a_check_for_its_device() {
        let e = event(Framework::PyTorch, DeviceKind::Rocm);
        assert_eq!(
            check_for(CauseId::OtherProcesses, &e),
            Some("rocm-smi --showpids")
        );
        let e = event(Framework::Cudnn, DeviceKind::Cuda);
        assert!(check_for(CauseId::NotMemory, &e)
            .unwrap()
            .contains("cudnn.version()"));
    }

    #[test]
    fn a_rule_s_own_check_is_kept() {
        let e = event(Framework::PyTorch, DeviceKind::Cuda);
        let mut causes = vec![Cause {
            id: CauseId::BatchTooLarge,
            score: 0.5,
            evidence: String::new(),
            check: Some("mine".into()),
        }];
        fill(&mut causes, &e);
        assert_eq!(causes[0].check.as_deref(), Some("mine"));
    }
}
