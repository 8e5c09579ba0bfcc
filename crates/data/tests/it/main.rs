//! Integration tests of the data crate: real files in, records, mappings and reports out.

mod errors;
mod pipeline;
mod read;
mod shape;

use std::path::{Path, PathBuf};

use data::quality::Tokens;

/// Words and punctuation as tokens: enough to test the arithmetic; the app's tests use the real
/// tokenizer.
pub struct Words;

impl Tokens for Words {
    fn count(&self, text: &str) -> usize {
        text.split(|c: char| c.is_whitespace()).filter(|w| !w.is_empty()).count()
    }
    fn overhead(&self, messages: usize) -> usize {
        3 * messages
    }
}

/// Writes `bytes` to `name` in a fresh temporary folder.
pub fn file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Every record of `path` as (location, fields).
pub fn records(path: &Path) -> data::Result<Vec<data::read::Record>> {
    let sniffed = data::read::sniff(path)?;
    let mut out = Vec::new();
    data::read::read(path, &sniffed, &mut |r| {
        out.push(r);
        Ok(())
    })?;
    Ok(out)
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}
