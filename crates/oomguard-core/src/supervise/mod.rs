//! Supervising a training or inference command from outside: filling its
//! batch-size placeholders, choosing the next batch after an OOM from the
//! event's figures (`run`), searching the largest batch that survives
//! (`tune`), and the journal record of each attempt.
//!
//! Spawning processes, terminals and signals belong to the binary; this
//! module holds the decisions, so they can be tested without a process.

pub mod command;
pub mod host;
pub mod journal;
pub mod restart;
pub mod search;
pub mod state;
pub mod trace;

pub use command::{CommandTemplate, TemplateError};
pub use journal::AttemptRecord;
pub use restart::{Decision, RestartPolicy};
pub use search::{BatchSearch, TrialOutcome};
