//! The error a snapshot read returns: which file, what kind of problem, and
//! where (the byte offset, when the pickle itself is at fault).

use super::pickle::{PickleError, PickleErrorKind};
use std::fmt;

/// What went wrong reading a memory snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotErrorKind {
    /// The file could not be opened or read.
    Io,
    /// The pickle asks to import or call something: refused, never run.
    Refused,
    /// Not a readable pickle, or a pickle that is not a memory snapshot.
    Malformed,
    /// Beyond a cap (a length, the nesting depth).
    Limit,
}

/// A snapshot that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotError {
    pub kind: SnapshotErrorKind,
    /// The file as the user named it.
    pub input: String,
    /// Byte offset of the opcode at fault (in the decompressed stream for a
    /// gzipped file), when the pickle itself is at fault.
    pub offset: Option<u64>,
    pub gzipped: bool,
    pub detail: String,
}

impl SnapshotError {
    pub fn new(kind: SnapshotErrorKind, input: &str, detail: impl Into<String>) -> SnapshotError {
        SnapshotError {
            kind,
            input: input.to_string(),
            offset: None,
            gzipped: false,
            detail: detail.into(),
        }
    }

    pub(crate) fn from_pickle(input: &str, gzipped: bool, e: PickleError) -> SnapshotError {
        let kind = match e.kind {
            PickleErrorKind::Refused => SnapshotErrorKind::Refused,
            PickleErrorKind::Limit => SnapshotErrorKind::Limit,
            PickleErrorKind::Io => SnapshotErrorKind::Io,
            PickleErrorKind::Truncated | PickleErrorKind::Malformed => SnapshotErrorKind::Malformed,
        };
        SnapshotError {
            kind,
            input: input.to_string(),
            offset: Some(e.offset),
            gzipped,
            detail: e.detail,
        }
    }
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset {
            Some(at) if self.gzipped => write!(
                f,
                "{}: byte {at} of the decompressed pickle: {}",
                self.input, self.detail
            ),
            Some(at) => write!(f, "{}: byte {at}: {}", self.input, self.detail),
            None => write!(f, "{}: {}", self.input, self.detail),
        }
    }
}

impl std::error::Error for SnapshotError {}
