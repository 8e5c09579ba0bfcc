//! Datasets: read any common file, detect its shape, report its quality, fix, split and normalize
//! it to OpenAI chat JSONL.
//!
//! The crate knows files and text only: no SQLite, git, projects or models. Token counts come in
//! through [`quality::Tokens`], which the app implements with the base model's tokenizer.
//!
//! The flow of an import (see [`pipeline::run`]):
//! [`read::sniff`] (format, encoding) → [`shape::detect`] (mapping, confidence, evidence) →
//! one streaming pass that normalizes every row to chat, writes it to a JSONL file and measures it
//! ([`quality::measure`]; duplicates found in file order meanwhile, [`quality::Duplicates`]) →
//! [`quality::analyze_found`] (language, scores, the report) →
//! [`transform::apply`] (the manifest's fixes) → the kept rows, and a seeded split
//! ([`split::assign`]).

pub mod chat;
pub mod manifest;
mod near;
pub mod pipeline;
pub mod quality;
pub mod read;
pub mod shape;
pub mod split;
pub mod thresholds;
pub mod transform;

use std::path::Path;

/// Errors of the data crate. Messages are one line and name the file (and line, when known).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The content is not what we can use; the message says where and why.
    #[error("{0}")]
    Invalid(String),
    /// The caller asked the import to stop ([`pipeline::Options::on_rows`]).
    #[error("cancelled")]
    Cancelled,
}

/// Result of the data crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io { path: path.display().to_string(), source }
    }

    /// An error about `path` as a whole.
    pub(crate) fn file(path: &Path, msg: impl std::fmt::Display) -> Error {
        Error::Invalid(format!("{}: {msg}", path.display()))
    }

    /// An error at one place in `path`.
    pub(crate) fn at(path: &Path, loc: read::Loc, msg: impl std::fmt::Display) -> Error {
        Error::Invalid(format!("{}{loc}: {msg}", path.display()))
    }
}

/// The body of the fuzz targets (`crates/data/fuzz`): read `bytes` as the file `name`, detect
/// the shape of what was read and measure every row. Must never panic, whatever the bytes.
#[doc(hidden)]
pub fn fuzz_one(name: &str, bytes: &[u8]) {
    struct Chars;
    impl quality::Tokens for Chars {
        fn count(&self, text: &str) -> usize {
            text.len() / 4
        }
        fn overhead(&self, messages: usize) -> usize {
            messages
        }
    }
    let mut rows = Vec::new();
    let _ = read::read_bytes(Path::new(name), bytes, &mut |r| {
        if rows.len() < 64 {
            rows.push(r.fields);
        }
        Ok(())
    });
    let mut columns: Vec<String> = Vec::new();
    for r in &rows {
        columns.extend(r.keys().filter(|k| !columns.contains(k)).cloned().collect::<Vec<_>>());
    }
    if let Ok(d) = shape::detect(&columns, &rows) {
        // Measuring is the costly part (language detection): a few rows keep the fuzzer fast.
        let measured: Vec<quality::Measured> = rows
            .iter()
            .take(4)
            .map(|r| {
                let conv = d.mapping.conversation(r.clone());
                quality::measure(&conv, &conv.to_line(), &Chars, Some(&quality::Languages::all()))
            })
            .collect();
        let cfg = quality::Config { context: 64, cutoff: 32, expected_language: None };
        let (q, report) = quality::analyze(&measured, &cfg);
        for (m, q) in measured.iter().zip(&q) {
            let _ = quality::reasons(m, q, &report);
        }
    }
}
