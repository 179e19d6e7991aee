//! The error every model reader returns: which input, what kind of problem,
//! and what exactly is wrong, in one sentence a user can act on.

use std::fmt;

/// What went wrong reading a model description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelErrorKind {
    /// The path, cache entry or catalog name does not exist.
    NotFound,
    /// The file exists but could not be read.
    Io,
    /// The content is not what its format says (truncated, absurd lengths,
    /// wrong types, missing required fields).
    Malformed,
    /// Well-formed, but something oomguard does not handle.
    Unsupported,
}

/// A model input that could not be turned into a shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelError {
    /// What kind of problem it is.
    pub kind: ModelErrorKind,
    /// The input named by the user or found on the way (a path, a repo id).
    pub input: String,
    /// What is wrong with it.
    pub detail: String,
}

impl ModelError {
    /// An error of `kind` about `input`, with `detail` saying what is wrong.
    pub fn new(
        kind: ModelErrorKind,
        input: impl Into<String>,
        detail: impl Into<String>,
    ) -> ModelError {
        ModelError {
            kind,
            input: input.into(),
            detail: detail.into(),
        }
    }

    /// An error for content that is not what its format says.
    pub fn malformed(input: impl Into<String>, detail: impl Into<String>) -> ModelError {
        ModelError::new(ModelErrorKind::Malformed, input, detail)
    }

    /// An error from reading `input`: `NotFound` when it does not exist, `Io` otherwise.
    pub fn io(input: impl Into<String>, err: &std::io::Error) -> ModelError {
        let kind = if err.kind() == std::io::ErrorKind::NotFound {
            ModelErrorKind::NotFound
        } else {
            ModelErrorKind::Io
        };
        ModelError::new(kind, input, err.to_string())
    }
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.input, self.detail)
    }
}

impl std::error::Error for ModelError {}
