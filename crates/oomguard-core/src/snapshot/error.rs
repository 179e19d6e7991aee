//! The error a snapshot read returns: which file, what kind of problem, and
//! where (the byte offset, when the pickle itself is at fault).

use super::pickle::{PickleError, PickleErrorKind};
use std::fmt;
use std::sync::Arc;

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

/// A snapshot that could not be read. An I/O failure is its
/// [`source`](std::error::Error::source).
#[derive(Debug, Clone)]
pub struct SnapshotError {
    /// What kind of problem.
    pub kind: SnapshotErrorKind,
    /// The file as the user named it.
    pub input: String,
    /// Byte offset of the opcode at fault (in the decompressed stream for a
    /// gzipped file), when the pickle itself is at fault.
    pub offset: Option<u64>,
    /// True when the file is gzipped (offsets count decompressed bytes).
    pub gzipped: bool,
    /// What is wrong, in one sentence.
    pub detail: String,
    /// The I/O error behind a [`SnapshotErrorKind::Io`], when there is one.
    io: Option<Arc<std::io::Error>>,
}

impl SnapshotError {
    pub(crate) fn new(
        kind: SnapshotErrorKind,
        input: &str,
        detail: impl Into<String>,
    ) -> SnapshotError {
        SnapshotError {
            kind,
            input: input.to_string(),
            offset: None,
            gzipped: false,
            detail: detail.into(),
            io: None,
        }
    }

    /// An I/O failure of `what` ("cannot open") on `input`.
    pub(crate) fn io(input: &str, what: &str, err: std::io::Error) -> SnapshotError {
        SnapshotError {
            io: Some(Arc::new(err)),
            ..SnapshotError::new(SnapshotErrorKind::Io, input, what)
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
            io: None,
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

impl std::error::Error for SnapshotError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.io.as_deref().map(|e| e as _)
    }
}
