//! GPUs: the built-in catalog of devices and their memory as the driver
//! reports it, and live readings from `nvidia-smi`'s CSV queries.

pub mod catalog;
pub mod nvidia_smi;

pub use catalog::{find as find_gpu, gpus, GpuSpec};
