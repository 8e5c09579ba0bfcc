//! Tokenizers: from GGUF metadata (candle's `TokenizerFromGguf`, with the pre-tokenizers it
//! lacks) or from a Hugging Face `tokenizer.json`.

use std::path::Path;

use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use tokenizers::Tokenizer;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;

use crate::{Error, Result};

/// Builds the tokenizer a GGUF file describes.
pub fn from_gguf(content: &gguf_file::Content, path: &Path) -> Result<Tokenizer> {
    let mut tok = Tokenizer::from_gguf(content).map_err(|e| Error::bad(path, e))?;
    let pre = content
        .metadata
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok())
        .map(String::as_str);
    if pre == Some("smollm") {
        // SmolLM's tokenizer.json: single digits, then byte-level BPE without a prefix space.
        // candle treats unknown pre-tokenizers as GPT-2's, which adds a prefix space.
        let seq: Vec<PreTokenizerWrapper> =
            vec![Digits::new(true).into(), ByteLevel::new(false, true, true).into()];
        tok.with_pre_tokenizer(Some(Sequence::new(seq)));
    }
    Ok(tok)
}

/// Loads a Hugging Face `tokenizer.json`.
pub fn from_file(path: &Path) -> Result<Tokenizer> {
    Tokenizer::from_file(path).map_err(|e| Error::bad(path, e))
}

/// Token ids of `text`, without special tokens added (chat templates already contain them).
pub fn encode(tok: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    Ok(tok.encode(text, false).map_err(|e| Error::Tokenizer(e.to_string()))?.get_ids().to_vec())
}

/// Number of tokens of `text` (no special tokens added; 0 when the tokenizer fails on it).
pub fn count(tok: &Tokenizer, text: &str) -> usize {
    if text.is_empty() {
        return 0;
    }
    tok.encode_fast(text, false).map_or(0, |e| e.len())
}

/// Text of `ids`, special tokens skipped.
pub fn decode(tok: &Tokenizer, ids: &[u32]) -> Result<String> {
    tok.decode(ids, true).map_err(|e| Error::Tokenizer(e.to_string()))
}
