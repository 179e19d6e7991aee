//! The error every model reader returns: which input, what kind of problem,
//! and what exactly is wrong, in one sentence a user can act on. An error
//! from the file system stays attached as the [`source`](std::error::Error::source),
//! so a caller that prints the chain shows the operating system's words.

use std::fmt;
use std::sync::Arc;

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
#[derive(Debug, Clone)]
pub struct ModelError {
    /// What kind of problem it is.
    pub kind: ModelErrorKind,
    /// The input named by the user or found on the way (a path, a repo id).
    pub input: String,
    /// What is wrong with it. For an error of the file system, what could
    /// not be done; the error itself is the source.
    pub detail: String,
    /// The file system's error, shared so the error stays cheap to clone.
    source: Option<Arc<std::io::Error>>,
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
            source: None,
        }
    }

    /// An error for content that is not what its format says.
    pub fn malformed(input: impl Into<String>, detail: impl Into<String>) -> ModelError {
        ModelError::new(ModelErrorKind::Malformed, input, detail)
    }

    /// An error from reading `input` (`NotFound` when it does not exist, `Io`
    /// otherwise); `err` is kept as the source.
    pub fn io(input: impl Into<String>, err: std::io::Error) -> ModelError {
        let kind = if err.kind() == std::io::ErrorKind::NotFound {
            ModelErrorKind::NotFound
        } else {
            ModelErrorKind::Io
        };
        ModelError {
            source: Some(Arc::new(err)),
            ..ModelError::new(kind, input, "cannot read")
        }
    }

    /// The file system's error, if that is what went wrong.
    pub fn io_error(&self) -> Option<&std::io::Error> {
        self.source.as_deref()
    }
}

/// Equal when they say the same thing: the kind, the input and the detail
/// (an io error is compared by its kind).
impl PartialEq for ModelError {
    fn eq(&self, other: &ModelError) -> bool {
        self.kind == other.kind
            && self.input == other.input
            && self.detail == other.detail
            && self.io_error().map(|e| e.kind()) == other.io_error().map(|e| e.kind())
    }
}

impl Eq for ModelError {}

/// The input and what is wrong; an io error's own text is left to the
/// source, so a chain printed with `{:#}` says it once.
impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.input, self.detail)
    }
}

impl std::error::Error for ModelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[test]
    fn an_io_error_is_kept_as_the_source() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = ModelError::io("models/config.json", io);
        assert_eq!(e.kind, ModelErrorKind::NotFound);
        assert_eq!(e.to_string(), "models/config.json: cannot read");
        let source = e.source().expect("the io error is the source");
        assert_eq!(source.to_string(), "gone");
        assert_eq!(
            source.downcast_ref::<std::io::Error>().map(|e| e.kind()),
            Some(std::io::ErrorKind::NotFound)
        );
        assert_eq!(e.clone(), e);
        assert!(!e.to_string().contains("--"));
    }

    #[test]
    fn other_errors_have_no_source() {
        let e = ModelError::malformed("m.gguf", "truncated");
        assert!(e.source().is_none());
        assert_eq!(e.to_string(), "m.gguf: truncated");
        let denied = ModelError::io(
            "m.gguf",
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied"),
        );
        assert_eq!(denied.kind, ModelErrorKind::Io);
        assert_ne!(denied, e);
    }
}
