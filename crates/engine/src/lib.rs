//! The model engine: model files, tokenizers, chat templates, generation and (coming) training,
//! in-process with Candle.
//!
//! `engine` knows nothing about SQLite, git, projects or Tauri: it takes paths and returns values.

pub mod adapter;
pub mod batcher;
pub mod bundle;
pub mod device;
pub mod dpo;
pub mod export;
pub mod generate;
pub mod gguf;
pub mod grammar;
pub mod logprob;
pub mod lora;
pub mod loss;
mod merges;
pub mod models;
pub mod ops;
pub mod optim;
pub mod pretokens;
pub mod quant;
pub mod template;
pub mod tokenizer;
pub mod train;
pub mod vmath;
pub mod weights;

use std::path::Path;

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid model file of the expected format.
    #[error("{path} is not a readable model: {reason}")]
    BadModel {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Tokenizing failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A chat template failed to compile or render.
    #[error("chat template: {0}")]
    Template(String),
    /// Training data is unusable; the message names the file and line when there is one.
    #[error("{0}")]
    Data(String),
    /// The requested device is unknown, not compiled in, or absent.
    #[error("device: {0}")]
    Device(String),
    /// A tensor operation failed.
    #[error("tensor: {0}")]
    Candle(#[from] candle_core::Error),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io { path: path.display().to_string(), source }
    }

    pub(crate) fn bad(path: &Path, reason: impl std::fmt::Display) -> Error {
        Error::BadModel { path: path.display().to_string(), reason: reason.to_string() }
    }
}

/// Result of the engine.
pub type Result<T> = std::result::Result<T, Error>;
