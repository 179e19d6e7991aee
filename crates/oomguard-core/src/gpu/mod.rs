//! GPUs: the built-in catalog of devices and their memory as the driver
//! reports it; live readings (`nvidia-smi`'s CSV queries, recordings) as
//! samples; the time-to-full forecast, alerts and Prometheus text over them.

#![deny(missing_docs)]

mod alert;
mod catalog;
pub mod container;
mod forecast;
pub mod metrics;
mod monitor;
mod nvidia_smi;
mod sample;
mod sampler;
mod source;

pub use alert::AlertReason;
pub use catalog::{find as find_gpu, gpus, GpuClass, GpuSpec};
pub use container::ContainerInfo;
pub use monitor::{Alert, Etas, Health, Monitor, Observation};
pub use sample::{GpuSample, GpuState, ProcessState};
pub use sampler::{Sampled, TimedSampler};
pub use source::{
    open as open_source, open_within as open_source_within, GpuSource, SourceChoice, SourceError,
    SAMPLE_TIMEOUT,
};
