//! Constrained decoding: grammars a reply must follow (any JSON object, a JSON schema), as
//! [`Constraint`]s for the [`crate::batcher::Batcher`], with `llguidance`.
//!
//! llguidance walks a trie of every token's bytes; we build it from our own tokenizer (GPT-2's
//! byte alphabet for byte-level BPE, `▁` and `<0xNN>` for SentencePiece-style vocabularies,
//! special tokens marked), once per vocabulary: the trie and llguidance's token classes are
//! cached.

use std::sync::{Arc, Mutex};

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{SimpleVob, TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};
use llguidance::{Matcher, ParserFactory};
use tokenizers::{DecoderWrapper, Tokenizer};

use crate::batcher::Constraint;
use crate::{Error, Result};

/// Any JSON object (OpenAI's `response_format: {"type": "json_object"}`).
pub fn json_object(tok: &Tokenizer, eos: &[u32]) -> Result<Box<dyn Constraint>> {
    json_schema(tok, eos, &serde_json::json!({"type": "object"}))
}

/// JSON that follows `schema` (OpenAI's `response_format: {"type": "json_schema"}`); a schema
/// llguidance does not support is an error that says what in it.
pub fn json_schema(
    tok: &Tokenizer,
    eos: &[u32],
    schema: &serde_json::Value,
) -> Result<Box<dyn Constraint>> {
    let factory = factory(tok, eos)?;
    let grammar = TopLevelGrammar::from_json_schema(schema.clone());
    let parser = factory
        .create_parser(grammar)
        .map_err(|e| Error::Data(format!("unsupported JSON schema: {e}")))?;
    let matcher = Matcher::new(Ok(parser));
    if let Some(e) = matcher.get_error() {
        return Err(Error::Data(format!("unsupported JSON schema: {e}")));
    }
    Ok(Box::new(Grammar {
        matcher,
        eos: eos.to_vec(),
        vocab: factory.tok_env().tok_trie().vocab_size(),
    }))
}

/// Every token's bytes (special tokens: their text), by id; ids the tokenizer does not know
/// are empty.
pub(crate) fn token_bytes(tok: &Tokenizer) -> Vec<Vec<u8>> {
    vocabulary(tok).into_iter().map(|(b, _)| b).collect()
}

/// A matcher and the end tokens it may allow.
struct Grammar {
    matcher: Matcher,
    eos: Vec<u32>,
    /// Tokens the trie knows; the model's logits may be wider (padding rows).
    vocab: usize,
}

impl Constraint for Grammar {
    fn mask(&mut self, logits: &mut [f32]) -> Result<()> {
        let mask: SimpleVob = self.matcher.compute_mask().map_err(fail)?;
        let accepting = self.matcher.is_accepting().map_err(fail)?;
        // The end tokens: as the model has them where the grammar may end, else forbidden.
        let ends: Vec<Option<f32>> =
            self.eos.iter().map(|&e| logits.get(e as usize).copied()).collect();
        for (i, l) in logits.iter_mut().enumerate() {
            if i >= self.vocab || i >= mask.len() || !mask.is_allowed(i as TokenId) {
                *l = f32::NEG_INFINITY;
            }
        }
        for (&e, end) in self.eos.iter().zip(ends) {
            if let (Some(l), Some(end)) = (logits.get_mut(e as usize), end) {
                *l = if accepting { end } else { f32::NEG_INFINITY };
            }
        }
        Ok(())
    }

    fn commit(&mut self, token: u32) -> Result<()> {
        self.matcher
            .consume_token(token)
            .map_err(|e| Error::Data(format!("grammar: token {token} refused: {e}")))
    }

    fn finished(&self) -> bool {
        self.matcher.is_stopped()
    }
}

fn fail(e: impl std::fmt::Display) -> Error {
    Error::Data(format!("grammar: {e}"))
}

/// The parser factory of a vocabulary, built once (a few recent ones are kept).
fn factory(tok: &Tokenizer, eos: &[u32]) -> Result<Arc<ParserFactory>> {
    type Cached = (u64, Arc<ParserFactory>);
    static CACHE: Mutex<Vec<Cached>> = Mutex::new(Vec::new());
    const KEEP: usize = 4;
    // The key: every token's spelling and the end tokens (a few milliseconds; the
    // vocabulary's bytes and trie, only on a miss).
    let key = {
        use std::hash::{Hash, Hasher};
        let mut h = rustc_hash::FxHasher::default();
        for id in 0..tok.get_vocab_size(true) as u32 {
            tok.id_to_token(id).hash(&mut h);
        }
        eos.hash(&mut h);
        h.finish()
    };
    {
        let cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, f)) = cache.iter().find(|(k, _)| *k == key) {
            return Ok(f.clone());
        }
    }
    let words = vocabulary(tok);
    let first_eos = eos.first().copied().ok_or_else(|| {
        Error::Data("constrained decoding needs the model's end token: it declares none".into())
    })?;
    let marked: Vec<Vec<u8>> = words
        .into_iter()
        .map(|(mut b, special)| {
            if special {
                b.insert(0, TokTrie::SPECIAL_TOKEN_MARKER);
            }
            b
        })
        .collect();
    let info = TokRxInfo::new(marked.len() as u32, first_eos);
    let trie = TokTrie::from(&info, &marked).with_eos_tokens(eos);
    let env: TokEnv = Arc::new(Env { trie, tok: tok.clone() });
    let mut f = ParserFactory::new_simple(&env)
        .map_err(|e| Error::Data(format!("grammar: cannot index the vocabulary: {e}")))?;
    f.quiet();
    let f = Arc::new(f);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache.push((key, f.clone()));
    if cache.len() > KEEP {
        cache.remove(0);
    }
    Ok(f)
}

/// Our tokenizer as llguidance sees it.
struct Env {
    trie: TokTrie,
    tok: Tokenizer,
}

impl TokenizerEnv for Env {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        match self.tok.encode_fast(String::from_utf8_lossy(s).as_ref(), false) {
            Ok(e) => e.get_ids().to_vec(),
            // Cannot fail for our tokenizers; llguidance then falls back to the trie.
            Err(_) => self.trie.greedy_tokenize(s),
        }
    }
}

/// Each token's bytes and whether it is special, by id.
fn vocabulary(tok: &Tokenizer) -> Vec<(Vec<u8>, bool)> {
    let vocab = tok.get_vocab(true);
    let size = vocab.values().map(|&i| i as usize + 1).max().unwrap_or(0);
    let mut out = vec![(Vec::new(), false); size];
    let scheme = Scheme::of(tok);
    let added = tok.get_added_tokens_decoder();
    for (piece, id) in vocab {
        let slot = &mut out[id as usize];
        match added.get(&id) {
            Some(a) => *slot = (a.content.as_bytes().to_vec(), a.special),
            None => slot.0 = scheme.bytes(&piece),
        }
    }
    out
}

/// How a vocabulary spells bytes.
enum Scheme {
    /// GPT-2's byte alphabet (byte-level BPE).
    ByteLevel(Box<[Option<u8>; 0x180]>),
    /// `▁` for a space and `<0xNN>` for a raw byte (SentencePiece with byte fallback).
    Metaspace,
    /// The pieces are the text.
    Plain,
}

impl Scheme {
    fn of(tok: &Tokenizer) -> Scheme {
        fn byte_level(d: &DecoderWrapper) -> bool {
            match d {
                DecoderWrapper::ByteLevel(_) => true,
                DecoderWrapper::Sequence(s) => s.get_decoders().iter().any(byte_level),
                _ => false,
            }
        }
        fn metaspace(d: &DecoderWrapper) -> bool {
            match d {
                DecoderWrapper::Metaspace(_) | DecoderWrapper::ByteFallback(_) => true,
                DecoderWrapper::Sequence(s) => s.get_decoders().iter().any(metaspace),
                _ => false,
            }
        }
        match tok.get_decoder() {
            Some(d) if byte_level(d) => {
                // GPT-2's bytes_to_unicode, inverted: printable Latin-1 bytes stand for
                // themselves, the others for U+0100 onwards, in byte order.
                let mut map = Box::new([None; 0x180]);
                let mut next = 0x100;
                for b in 0..=255u8 {
                    if matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF) {
                        map[b as usize] = Some(b);
                    } else {
                        map[next] = Some(b);
                        next += 1;
                    }
                }
                Scheme::ByteLevel(map)
            }
            Some(d) if metaspace(d) => Scheme::Metaspace,
            _ => Scheme::Plain,
        }
    }

    fn bytes(&self, piece: &str) -> Vec<u8> {
        match self {
            Scheme::ByteLevel(map) => {
                let mapped: Option<Vec<u8>> =
                    piece.chars().map(|c| map.get(c as usize).copied().flatten()).collect();
                mapped.unwrap_or_else(|| piece.as_bytes().to_vec())
            }
            Scheme::Metaspace => {
                let hex = piece
                    .strip_prefix("<0x")
                    .and_then(|h| h.strip_suffix('>'))
                    .filter(|h| h.len() == 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => vec![b],
                    None => piece.replace('\u{2581}', " ").into_bytes(),
                }
            }
            Scheme::Plain => piece.as_bytes().to_vec(),
        }
    }
}
