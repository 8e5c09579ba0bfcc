//! Byte-level BPE that only counts: how many tokens the model's merges leave of one pre-token,
//! without building the tokens (`tokenizers`' BPE builds each token's string and offsets:
//! ~1.5 µs a new word; this ~250 ns for a 13-byte word, measured on SmolLM2's merges). Used by
//! [`crate::tokenizer::count`] for the pre-tokens it has not seen yet; checked against
//! `tokenizers` in the tests.

use std::borrow::Cow;

use rustc_hash::FxHashMap;
use tokenizers::models::ModelWrapper;
use tokenizers::{Model, Tokenizer};

/// The merges of a byte-level BPE model, by token ids.
pub(crate) struct Merges {
    /// The id of each byte's character in GPT-2's byte alphabet; [`UNKNOWN`] for those the
    /// vocabulary lacks (bytes that UTF-8 never uses, some control bytes), which BPE without an
    /// unknown token skips.
    byte_ids: [u32; 256],
    /// (left id, right id) → (rank, merged id).
    pairs: FxHashMap<(u32, u32), (u32, u32)>,
}

const UNKNOWN: u32 = u32::MAX;

/// Longest pre-token counted here (in bytes); longer ones go to the model.
pub(crate) const MAX_BYTES: usize = 64;

impl Merges {
    /// The merges of `tok`'s model, when it is a plain byte-level BPE: no unknown token or
    /// byte fallback, no dropout, no subword prefix or suffix, merges not skipped for whole
    /// words (the options this counter does not follow). `None` otherwise.
    pub(crate) fn of(tok: &Tokenizer, byte_chars: &[char; 256]) -> Option<Merges> {
        let ModelWrapper::BPE(bpe) = tok.get_model() else { return None };
        if bpe.dropout.is_some_and(|d| d > 0.0)
            || bpe.continuing_subword_prefix.is_some()
            || bpe.end_of_word_suffix.is_some()
            || bpe.ignore_merges
            || bpe.unk_token.is_some()
            || bpe.byte_fallback
        {
            return None;
        }
        let mut byte_ids = [0u32; 256];
        for (id, c) in byte_ids.iter_mut().zip(byte_chars) {
            *id = bpe.token_to_id(c.encode_utf8(&mut [0; 4])).unwrap_or(UNKNOWN);
        }
        // The merges are not public: the model's own serialization lists them, by rank (read
        // back borrowed, the vocabulary skipped: a tree of values took most of the time).
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Merge<'a> {
            Pair(#[serde(borrow)] Cow<'a, str>, #[serde(borrow)] Cow<'a, str>),
            Joined(#[serde(borrow)] Cow<'a, str>),
        }
        #[derive(serde::Deserialize)]
        struct Model<'a> {
            #[serde(borrow)]
            merges: Vec<Merge<'a>>,
        }
        let json = serde_json::to_vec(bpe).ok()?;
        let model: Model = serde_json::from_slice(&json).ok()?;
        let mut pairs = FxHashMap::default();
        pairs.reserve(model.merges.len());
        let mut joined = String::new();
        for (rank, m) in model.merges.iter().enumerate() {
            let (a, b) = match m {
                Merge::Pair(a, b) => (a.as_ref(), b.as_ref()),
                Merge::Joined(s) => s.split_once(' ')?,
            };
            joined.clear();
            joined.push_str(a);
            joined.push_str(b);
            let ids = (bpe.token_to_id(a)?, bpe.token_to_id(b)?);
            pairs.entry(ids).or_insert((rank as u32, bpe.token_to_id(&joined)?));
        }
        Some(Merges { byte_ids, pairs })
    }

    /// Tokens of the pre-token `piece` (at most [`MAX_BYTES`]): starting from its bytes, the
    /// adjacent pair of lowest rank is merged, the leftmost first among equals, until no pair
    /// has a merge — what `tokenizers`' BPE does with its queue.
    pub(crate) fn count(&self, piece: &[u8]) -> usize {
        debug_assert!(piece.len() <= MAX_BYTES);
        let mut ids = [0u32; MAX_BYTES];
        let mut n0 = 0;
        for &b in piece {
            let id = self.byte_ids[b as usize];
            if id != UNKNOWN {
                ids[n0] = id;
                n0 += 1;
            }
        }
        if n0 < 2 {
            return n0;
        }
        // merge[i]: the merge of ids[i] and ids[i + 1], rank u32::MAX when none.
        const NONE: (u32, u32) = (u32::MAX, 0);
        let pair = |a: u32, b: u32| self.pairs.get(&(a, b)).copied().unwrap_or(NONE);
        let mut merge = [NONE; MAX_BYTES];
        for i in 0..n0 - 1 {
            merge[i] = pair(ids[i], ids[i + 1]);
        }
        let mut n = n0;
        while n > 1 {
            let mut best = 0;
            for i in 1..n - 1 {
                if merge[i].0 < merge[best].0 {
                    best = i;
                }
            }
            if merge[best].0 == u32::MAX {
                break;
            }
            ids[best] = merge[best].1;
            ids.copy_within(best + 2..n, best + 1);
            if best + 2 < n {
                merge.copy_within(best + 2..n - 1, best + 1);
            }
            n -= 1;
            if best + 1 < n {
                merge[best] = pair(ids[best], ids[best + 1]);
            } else {
                merge[best] = NONE;
            }
            if best > 0 {
                merge[best - 1] = pair(ids[best - 1], ids[best]);
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// On pre-tokens of every kind — all bytes and byte pairs, then random mixes of letters,
    /// digits, spaces, punctuation and multi-byte characters up to [`MAX_BYTES`] — the count
    /// equals the number of tokens `tokenizers`' BPE makes of the same bytes.
    #[test]
    fn counts_what_the_model_makes() {
        let Some(gguf) = std::env::var_os("VIBEFLOW_DEFAULT_GGUF") else {
            assert!(
                std::env::var_os("VIBEFLOW_REQUIRE_SETUP").is_none(),
                "VIBEFLOW_DEFAULT_GGUF is not set: the setup of `cargo xtask test` is broken"
            );
            eprintln!("skipped: VIBEFLOW_DEFAULT_GGUF is not set (`cargo xtask test` sets it)");
            return;
        };
        let chat = crate::bundle::Chat::open(std::path::Path::new(&gguf)).unwrap();
        let tok = &chat.tokenizer;
        let chars = crate::tokenizer::byte_chars();
        let merges = Merges::of(tok, chars).expect("SmolLM2's tokenizer is a byte-level BPE");
        let model = |piece: &[u8]| {
            let mapped: String = piece.iter().map(|&b| chars[b as usize]).collect();
            tok.get_model().tokenize(&mapped).unwrap().len()
        };
        let mut pieces: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        pieces.push(b"a\x04b\xffc".to_vec());
        for a in 0..=255u8 {
            for b in (0..=255u8).step_by(3) {
                pieces.push(vec![a, b]);
            }
        }
        const PARTS: &[&str] = &[
            "a", "e", "t", "th", "in", "er", "ing", "tion", " ", "  ", "s", "ed", "un", "re", "0",
            "1", "9", "'", ".", ",", "!", "-", "_", "/", "é", "ü", "ß", "ñ", "中", "文", "日",
            "本", "한", "🙂", "Ж", "д", "ا", "\n", "\t", "<", "|", ">", "A", "Q", "Z", "x", "q",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..30_000 {
            let mut p = Vec::new();
            let parts = rng.random_range(1..12);
            for _ in 0..parts {
                let part = PARTS[rng.random_range(0..PARTS.len())].as_bytes();
                if p.len() + part.len() > MAX_BYTES {
                    break;
                }
                p.extend_from_slice(part);
            }
            pieces.push(p);
        }
        for p in &pieces {
            assert_eq!(merges.count(p), model(p), "{:?}", String::from_utf8_lossy(p));
        }
    }
}
