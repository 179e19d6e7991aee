//! oomguard-core: find, parse and diagnose GPU out-of-memory failures.
//!
//! The library behind the `oomguard` command. It has no command-line,
//! terminal or HTTP code: it turns inputs (logs, model files, GPU samples)
//! into values (events, diagnoses, estimates) that the caller renders.
//!
//! Each domain is a module that re-exports what a caller needs; its inner
//! files are private.
//!
//! - [`size`]: byte sizes as frameworks print them and users type them.
//! - [`oom`]: finding OOM events in any text, in bounded memory
//!   ([`oom::scan_reader`], [`oom::OomEvent`]).
//! - [`diagnose`]: an event's memory accounting, ranked causes and fixes
//!   ([`diagnose::diagnose`], [`diagnose::ExplainedEvent`]).
//! - [`estimate`]: a workload's per-GPU memory, and what fits a GPU
//!   ([`estimate::estimate`], [`estimate::max_batch`]); serving engines in
//!   [`estimate::engine`].
//! - [`model`]: model shapes from config files, checkpoint headers, the Hub
//!   cache and the catalog ([`model::resolve`]).
//! - [`gpu`]: the GPU catalog and live readings ([`gpu::open_source`],
//!   [`gpu::Monitor`], [`gpu::metrics`]).
//! - [`supervise`]: command templates, restart and batch-search decisions
//!   for supervising a training job ([`supervise::RestartPolicy`],
//!   [`supervise::BatchSearch`]).
//! - [`snapshot`]: PyTorch memory snapshots read safely, replayed and
//!   explained ([`snapshot::read_snapshot`], [`snapshot::explain_snapshot`]).
//!
//! The cargo feature `nvml` (on by default) loads NVML at run time; without
//! it GPUs are read through `nvidia-smi` or a recording only.
//!
//! # Example
//!
//! Find the out-of-memory failures in a log and say what to do first:
//!
//! ```
//! use oomguard_core::diagnose::{DiagnoseContext, ExplainedEvent};
//! use oomguard_core::oom::{scan_reader, ScanOptions};
//!
//! let log = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. \
//!     GPU 0 has a total capacity of 23.65 GiB of which 1.06 GiB is free. Including \
//!     non-PyTorch memory, this process has 22.58 GiB memory in use. Of the allocated \
//!     memory 20.12 GiB is allocated by PyTorch, and 1.95 GiB is reserved by PyTorch \
//!     but unallocated.\n";
//! let mut explained = Vec::new();
//! scan_reader("train.log", log.as_bytes(), &ScanOptions::default(), |event| {
//!     explained.push(ExplainedEvent::new(event, &DiagnoseContext::default()));
//! })?;
//! let first = &explained[0];
//! assert_eq!(first.event.memory.requested_bytes, Some(2 << 30));
//! println!("{}: {}", first.diagnosis.causes[0].id.as_str(), first.diagnosis.fixes[0].title);
//! # Ok::<(), oomguard_core::oom::ScanError>(())
//! ```

#![warn(missing_docs)]

pub mod diagnose;
pub mod estimate;
pub mod gpu;
pub mod model;
pub mod oom;
pub mod size;
pub mod snapshot;
pub mod supervise;
