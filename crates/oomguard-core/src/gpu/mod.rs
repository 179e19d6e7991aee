//! GPUs: the built-in catalog of devices and their memory as the driver
//! reports it. Live readings (NVML, nvidia-smi, replays) will live here too.

pub mod catalog;

pub use catalog::{find as find_gpu, gpus, GpuSpec};
