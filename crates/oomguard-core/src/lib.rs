//! oomguard-core: find, parse and diagnose GPU out-of-memory failures.
//!
//! The library behind the `oomguard` command. It has no command-line,
//! terminal or HTTP code: it turns inputs (logs, model files, GPU samples)
//! into values (events, diagnoses, estimates) that the binary renders.
//!
//! - [`size`]: byte sizes as frameworks print them and users type them.
//! - [`oom`]: finding OOM events in any text, in bounded memory.
//! - [`supervise`]: batch placeholders, restart and search decisions for `run` and `tune`.
//! - [`diagnose`]: an event's memory accounting, ranked causes and fixes.
//! - [`estimate`]: a workload's per-GPU memory, and what fits a GPU.
//! - [`gpu`]: the GPU catalog.
//! - [`model`]: model shapes from config files, checkpoint headers and catalogs.
//! - [`snapshot`]: PyTorch memory snapshots read safely, replayed and explained.

pub mod diagnose;
pub mod estimate;
pub mod gpu;
pub mod model;
pub mod oom;
pub mod size;
pub mod snapshot;
pub mod supervise;
