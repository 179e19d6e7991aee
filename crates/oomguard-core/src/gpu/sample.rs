//! One reading of the GPUs and the processes on them, as every source
//! (NVML, `nvidia-smi`, a replayed recording) produces it. A recording is
//! these samples as JSON lines. Values a source could not read are `None`
//! and print as `n/a`, never 0.

use serde::{Deserialize, Serialize};

/// One GPU at one time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuState {
    /// The GPU's index, as `nvidia-smi` numbers it.
    pub index: u32,
    /// The GPU's UUID.
    pub uuid: Option<String>,
    /// The product name.
    pub name: Option<String>,
    /// Total memory, in bytes.
    pub total_bytes: Option<u64>,
    /// Memory in use, in bytes.
    pub used_bytes: Option<u64>,
    /// Free memory, in bytes.
    pub free_bytes: Option<u64>,
}

/// One process holding memory on a GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessState {
    /// Index of the GPU.
    pub gpu: u32,
    /// The process id (on the host).
    pub pid: u32,
    /// The command name.
    pub name: Option<String>,
    /// The user owning the process.
    pub user: Option<String>,
    /// GPU memory the process holds, in bytes.
    pub used_bytes: Option<u64>,
}

/// Every GPU and process at one time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuSample {
    /// UNIX time in seconds.
    pub time: f64,
    /// Every GPU the source lists.
    pub gpus: Vec<GpuState>,
    /// Every process the source lists, on any GPU.
    pub processes: Vec<ProcessState>,
}

impl GpuState {
    /// Share of memory in use, 0 to 1.
    pub fn used_fraction(&self) -> Option<f64> {
        let (u, t) = (self.used_bytes?, self.total_bytes?);
        (t > 0).then(|| u as f64 / t as f64)
    }
}

impl GpuSample {
    /// Memory in use on `gpu` that no listed process accounts for: `used`
    /// minus what the listed processes hold. Inside a container NVML does not
    /// list other containers' processes (nor, without the host's PID
    /// namespace, always this one's), and the driver holds some memory of its
    /// own. `None` when the GPU's used memory or any listed process's memory
    /// is unknown: an unknown figure is not taken for 0.
    pub fn unlisted_bytes(&self, gpu: u32) -> Option<u64> {
        let used = self.gpus.iter().find(|g| g.index == gpu)?.used_bytes?;
        let listed = self
            .processes
            .iter()
            .filter(|p| p.gpu == gpu)
            .map(|p| p.used_bytes)
            .sum::<Option<u64>>()?;
        Some(used.saturating_sub(listed))
    }

    /// The process holding the most memory on `gpu`.
    pub fn top_process(&self, gpu: u32) -> Option<&ProcessState> {
        self.processes
            .iter()
            .filter(|p| p.gpu == gpu)
            .max_by_key(|p| p.used_bytes.unwrap_or(0))
    }
}
