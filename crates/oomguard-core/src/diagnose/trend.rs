//! The memory timeline's shape now lives in `crate::supervise::trace`; this
//! name stays so the diagnosis keeps reading it where it did.

pub use crate::supervise::trace::{classify, MemoryTrend};
