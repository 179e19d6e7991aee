//! The shape of a command's memory timeline over one attempt, as the
//! diagnosis reads it (a leak across steps, or everything needed at once).
//! `supervise::trace` folds the samples and classifies the timeline into
//! this type; it lives here, below `supervise`, so that the diagnosis does
//! not import the supervisor.

use serde::Serialize;

/// The shape of a memory timeline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MemoryTrend {
    /// The level memory rests at between steps kept rising, step after step.
    Climbing {
        /// Bytes at the resting level where the climb started.
        from_bytes: u64,
        /// Bytes at the resting level where the climb ended.
        to_bytes: u64,
        /// Seconds the climb lasted.
        seconds: f64,
    },
    /// At its peak level early, and flat after.
    SpikeAtStart {
        /// Bytes at the peak.
        peak_bytes: u64,
        /// Seconds from the start of the timeline to the peak.
        seconds_to_peak: f64,
    },
}
