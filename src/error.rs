//! The one error type of the library.
//!
//! Policy: every error says *what* failed with enough context to act on (which database, which
//! object, which file) and, where the user can do something about it, a `hint` saying what. The
//! [`ErrorKind`] lets callers decide without string matching: the backup loop retries
//! [`ErrorKind::Mysql`] errors that [`Error::is_transient`] marks, the CLI maps kinds to exit codes.
//! Secrets never go into an error: messages are built from names and ids, never from passwords,
//! keys or URLs with credentials.

use std::fmt;

/// Boxed underlying cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure this is; decides retries and exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad arguments, configuration or names given by the user.
    InvalidInput,
    /// No key slot of the repository opens with the given passphrase or key provider.
    WrongPassword,
    /// A snapshot, database, table or object that was asked for does not exist.
    NotFound,
    /// Something that must not be overwritten already exists.
    AlreadyExists,
    /// Repository data failed authentication, a hash check or parsing.
    Corrupt,
    /// The storage backend failed (I/O, permissions, network).
    Storage,
    /// The MySQL server or the connection to it failed.
    Mysql,
}

/// A library error: a kind, a message with context, an optional hint and cause.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    hint: Option<String>,
    transient: bool,
    source: Option<BoxError>,
}

impl Error {
    /// A new error of `kind` with a context message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
            transient: false,
            source: None,
        }
    }

    /// Shorthand for [`ErrorKind::InvalidInput`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// Shorthand for [`ErrorKind::Corrupt`].
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Corrupt, message)
    }

    /// Shorthand for [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// Attach what the user can do about it.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Attach the underlying cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Mark whether retrying the same operation may succeed.
    pub fn transient(mut self, transient: bool) -> Self {
        self.transient = transient;
        self
    }

    /// Wrap with an outer context, keeping kind, hint and retry class.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// Whether a retry of the failed operation may succeed (lost connection, lock wait timeout,
    /// concurrent DDL, throttling).
    pub fn is_transient(&self) -> bool {
        self.transient
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Adds context to foreign errors on their way into [`Error`].
pub trait ResultExt<T> {
    /// Convert the error into an [`Error`] of `kind`, prefixed with `context`.
    fn or_kind(self, kind: ErrorKind, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<BoxError>> ResultExt<T> for std::result::Result<T, E> {
    fn or_kind(self, kind: ErrorKind, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::new(kind, context()).with_source(e))
    }
}
