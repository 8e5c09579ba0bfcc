//! The error of every use case, with the code the UI matches on.

use std::path::Path;

use api::{ApiError, ErrorCode};

/// What went wrong in a use case. Messages say what failed and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request was malformed.
    #[error("{0}")]
    InvalidInput(String),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The thing to create exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// A file's hash differs from the expected one.
    #[error("{0}")]
    Integrity(String),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The SQLite index failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// git failed.
    #[error(transparent)]
    Vcs(#[from] vcs::Error),
    /// A model file could not be read.
    #[error(transparent)]
    Model(#[from] engine::Error),
    /// A dataset file is malformed; the message says where.
    #[error("{0}")]
    Data(String),
    /// The dataset's columns are ambiguous: the user must choose the mapping.
    #[error("{0}")]
    MappingUncertain(String),
    /// The action does not fit the current state (resuming a finished run, a run still
    /// training elsewhere).
    #[error("{0}")]
    Conflict(String),
    /// The OS keyring refused or is missing.
    #[error("{0}")]
    Keyring(String),
    /// A server could not be reached or broke off.
    #[error("{0}")]
    Network(String),
    /// A server refused access (a gated model, a missing token).
    #[error("{0}")]
    Unauthorized(String),
    /// The user stopped it; nothing changed.
    #[error("{0}")]
    Cancelled(String),
}

/// Result of a use case.
pub type Result<T> = std::result::Result<T, Error>;

impl From<data::Error> for Error {
    fn from(e: data::Error) -> Error {
        match e {
            data::Error::Io { path, source } => Error::Io { path, source },
            data::Error::Invalid(m) => Error::Data(m),
            data::Error::Cancelled => {
                Error::Cancelled("the import was cancelled: nothing changed".into())
            }
        }
    }
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io { path: path.display().to_string(), source }
    }

    /// The machine-readable kind of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidInput(_) => ErrorCode::InvalidInput,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Error::Integrity(_) => ErrorCode::Integrity,
            Error::Io { .. } => ErrorCode::Io,
            Error::Store(store::Error::Duplicate(_)) => ErrorCode::AlreadyExists,
            Error::Store(_) => ErrorCode::Store,
            Error::Vcs(_) => ErrorCode::Vcs,
            Error::Model(_) => ErrorCode::Model,
            Error::Data(_) => ErrorCode::Data,
            Error::MappingUncertain(_) => ErrorCode::MappingUncertain,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::Keyring(_) => ErrorCode::Keyring,
            Error::Network(_) => ErrorCode::Network,
            Error::Unauthorized(_) => ErrorCode::Unauthorized,
            Error::Cancelled(_) => ErrorCode::Cancelled,
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        ApiError { code: e.code(), message: e.to_string() }
    }
}
