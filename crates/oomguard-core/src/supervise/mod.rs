//! Supervising a training or inference command from outside: filling its
//! batch-size placeholders, choosing the next batch after an OOM from the
//! event's figures (`run`), searching the largest batch that survives
//! (`tune`), the memory timeline of an attempt, and the journal record of
//! each attempt. [`host`] reads the host's memory and limits; [`state`]
//! keeps the decision a multi-rank job shares.
//!
//! Spawning processes, terminals and signals belong to the binary; this
//! module holds the decisions, so they can be tested without a process.

#![deny(missing_docs)]

mod command;
pub mod host;
mod journal;
mod restart;
mod search;
pub mod state;
mod trace;

pub use command::{CommandTemplate, TemplateError};
pub use host::{HostLimit, HostLimitKind};
pub use journal::{rfc3339, AttemptMemory, AttemptRecord};
pub use restart::{
    at_host_limit, largest_divisor, Decision, Failure, MemoryLine, RestartPolicy, RetryReason,
    StopReason, AT_LIMIT_SHARE,
};
pub use search::{BatchSearch, TrialOutcome};
pub use state::{RunIdSource, StateRecord};
pub use trace::{
    classify as classify_trend, classify_host as classify_host_trend, MemoryTrace, MemoryTrend,
    Reading, TraceFold,
};
