//! The model engine: reading model files, and (coming with the engine issue) in-process Candle
//! training and generation.
//!
//! `engine` knows nothing about SQLite, git, projects or Tauri: it takes paths and returns values.

pub mod gguf;

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid model file of the expected format.
    #[error("{path} is not a readable GGUF model: {reason}")]
    BadModel {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Result of the engine.
pub type Result<T> = std::result::Result<T, Error>;
