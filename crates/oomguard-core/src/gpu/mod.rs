//! GPUs: the built-in catalog of devices and their memory as the driver
//! reports it; live readings (`nvidia-smi`'s CSV queries, recordings) as
//! samples; the time-to-full forecast, alerts and Prometheus text over them.

pub mod alert;
pub mod catalog;
pub mod container;
pub mod forecast;
pub mod metrics;
pub mod monitor;
pub mod nvidia_smi;
pub mod sample;
pub mod sampler;
pub mod source;

pub use catalog::{find as find_gpu, gpus, GpuClass, GpuSpec};
