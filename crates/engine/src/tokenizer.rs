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

use crate::merges::Merges;
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
///
/// Equal to `encode(text).len()`, computed the way BPE allows: tokens never cross pre-token
/// boundaries, so the count is the sum over pre-tokens, each counted once per thread and
/// cached. No `Encoding` (offsets, token strings) is built. GPT-2-style byte-level
/// pre-tokenizers are run by our own scanner ([`crate::pretokens`]), others by the tokenizer.
/// Texts containing an added token, or tokenizers with a normalizer, take the full path.
pub fn count(tok: &Tokenizer, text: &str) -> usize {
    use std::cell::RefCell;
    use tokenizers::{Model, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

    if text.is_empty() {
        return 0;
    }
    let full = || tok.encode_fast(text, false).map_or(0, |e| e.len());
    let Some(pre) = tok.get_pre_tokenizer() else { return full() };
    if tok.get_normalizer().is_some() {
        return full();
    }
    thread_local! {
        static CACHE: RefCell<PieceCache> = RefCell::new(PieceCache::default());
    }
    CACHE.with_borrow_mut(|cache| {
        // One cache per tokenizer: a thread that switches tokenizers starts afresh.
        let me = Owner::of(tok);
        if cache.owner != me || cache.counts.len() + cache.short.len() > MAX_PIECES {
            cache.owner = me;
            cache.merges = merges_of(tok);
            cache.scheme = scheme(pre);
            let mut starts: Vec<char> = (tok.get_added_vocabulary().get_vocab().keys())
                .filter_map(|t| t.chars().next())
                .collect();
            starts.sort_unstable();
            starts.dedup();
            cache.added_starts = starts;
            cache.counts.clear();
            cache.short.clear();
        }
        // An added token in the text is matched whole before pre-tokenizing: full path.
        if cache.added_starts.iter().any(|&c| text.contains(c))
            && tok.get_added_vocabulary().get_vocab().keys().any(|t| text.contains(t.as_str()))
        {
            return full();
        }
        let mut n = 0usize;
        match cache.scheme {
            Some(scheme) => {
                let PieceCache { counts, short, merges, .. } = cache;
                let merges = merges.as_deref();
                // Short pieces are looked up in groups, their slots fetched from memory first:
                // the groups' cache misses overlap instead of following one another.
                // Two groups in flight: a group is looked up once the next one is gathered,
                // so that every slot has had a group's scanning time to arrive.
                let mut group = [0u128; 2 * GROUP];
                let mut len = 0;
                crate::pretokens::split(
                    scheme,
                    text,
                    &mut |piece| match short_key_in(text, piece) {
                        Some(key) => {
                            short.prefetch(key);
                            group[len] = key;
                            len += 1;
                            if len == 2 * GROUP {
                                n += short_counts(tok, me, merges, short, &group[..GROUP]);
                                group.copy_within(GROUP.., 0);
                                len = GROUP;
                            }
                        }
                        None => {
                            n += match counts.get(piece) {
                                Some(&c) => c as usize,
                                None => {
                                    let c = piece_tokens(tok, merges, piece.as_bytes());
                                    counts.insert(piece.into(), c as u32);
                                    c
                                }
                            }
                        }
                    },
                );
                for keys in group[..len].chunks(GROUP) {
                    n += short_counts(tok, me, merges, short, keys);
                }
            }
            None => {
                let mut pts = PreTokenizedString::from(text);
                if pre.pre_tokenize(&mut pts).is_err() {
                    return full();
                }
                for (piece, _, _) in pts.get_splits(OffsetReferential::Normalized, OffsetType::Byte)
                {
                    n += match cache.counts.get(piece) {
                        Some(&c) => c as usize,
                        None => {
                            let c = tok.get_model().tokenize(piece).map_or(0, |t| t.len());
                            cache.counts.insert(piece.into(), c as u32);
                            c
                        }
                    };
                }
            }
        }
        n
    })
}

/// Short pieces looked up together (see [`count`]).
const GROUP: usize = 16;

/// The tokens of the short pieces `keys`, from `short`, else the shared table, else the model.
/// Only a thread's own misses go to the shared table (its lock taken for every group was one
/// cache line that all threads wrote to: on 16 threads the import's measuring took ~10 % longer
/// at 100,000 rows, ~25 % at 400,000).
fn short_counts(
    tok: &Tokenizer,
    owner: Owner,
    merges: Option<&Merges>,
    short: &mut ShortCounts,
    keys: &[u128],
) -> usize {
    let mut n = 0;
    for &key in keys {
        let c = match short.get(key) {
            Some(c) => c,
            None => {
                let c = shared_count(owner, key, || {
                    // At most 15 tokens: every token covers a byte or more.
                    let bytes = key.to_le_bytes();
                    piece_tokens(tok, merges, &bytes[..bytes[15] as usize]) as u8
                });
                short.insert_new(key, c);
                c
            }
        };
        n += c as usize;
    }
    n
}

/// A thread's counts of pre-tokens for one tokenizer. Keys are the pre-tokens as the tokenizer
/// sees them after its pre-tokenizer (the byte-level alphabet) without a scheme, the raw text
/// pieces with one.
#[derive(Default)]
struct PieceCache {
    owner: Owner,
    /// First characters of the tokenizer's added tokens (a text without any has none).
    added_starts: Vec<char>,
    scheme: Option<crate::pretokens::Scheme>,
    /// The model's merges, when a counter of our own can follow them.
    merges: Option<std::sync::Arc<Merges>>,
    counts: std::collections::HashMap<Box<str>, u32, rustc_hash::FxBuildHasher>,
    /// Pieces of up to 15 bytes (nearly all).
    short: ShortCounts,
}

/// Counts of pieces of up to 15 bytes, keyed by [`short_key`]: an open-addressing table of
/// 16-byte entries, each the key with the count in the high half of its last byte (the length
/// takes the low half). No pointer to follow, no `memcmp`, and a probe nearly always reads
/// one cache line (four entries): on large datasets the table outgrows the CPU's caches, and a
/// probe's cost is mostly its memory access.
#[derive(Default)]
struct ShortCounts {
    /// A power of two of entries, 0 where empty (a key's length is never 0).
    slots: Vec<u128>,
    len: usize,
}

impl ShortCounts {
    /// The key bits of an entry (all but the count).
    const KEY: u128 = !(0xF0 << 120);

    fn hash(key: u128) -> u64 {
        (key as u64 ^ ((key >> 64) as u64).rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn slot(&self, key: u128) -> usize {
        (Self::hash(key) >> 32) as usize & (self.slots.len() - 1)
    }

    /// The shard of [`SHARED`] that holds `key`: the hash's top bits (a slot takes bits from
    /// the 32nd up, at most 20 of them in a full table: the shard's keys still spread).
    fn shard(key: u128) -> usize {
        (Self::hash(key) >> (64 - SHARDS.trailing_zeros())) as usize
    }

    fn get(&self, key: u128) -> Option<u8> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.slot(key);
        loop {
            let e = self.slots[i];
            if e & Self::KEY == key {
                return Some((e >> 124) as u8);
            }
            if e == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Adds `key` unless it is there; `count` ≤ 15.
    fn insert_new(&mut self, key: u128, count: u8) {
        debug_assert!(count < 16);
        if self.get(key).is_some() {
            return;
        }
        // At most three quarters full.
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            let size = (self.slots.len() * 2).max(1024);
            let old = std::mem::replace(&mut self.slots, vec![0; size]);
            for e in old.into_iter().filter(|&e| e != 0) {
                self.put(e);
            }
        }
        self.put(key | (count as u128) << 124);
        self.len += 1;
    }

    fn put(&mut self, entry: u128) {
        let mask = self.slots.len() - 1;
        let mut i = self.slot(entry & Self::KEY);
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = entry;
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Starts loading the slot where `key` is looked for into the CPU's cache.
    fn prefetch(&self, key: u128) {
        #[cfg(target_arch = "x86_64")]
        if !self.slots.is_empty() {
            let slot = &self.slots[self.slot(key)];
            // SAFETY: a prefetch only hints the CPU; the address is that of a live slot.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    (slot as *const u128).cast(),
                )
            }
        }
    }

    fn clear(&mut self) {
        *self = ShortCounts::default();
    }
}

/// Bumped by [`forget_counts`]: every thread's cache starts afresh at its next count.
static GENERATION: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Empties every thread's cache of pre-token counts (at each thread's next [`count`]), so
/// that a benchmark's rounds each start cold.
pub fn forget_counts() {
    GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Pieces a cache holds before it starts afresh.
const MAX_PIECES: usize = 1 << 20;

/// The tokenizer a cache belongs to: its address, vocabulary size and added tokens' count (a
/// tokenizer freed and another built at the same address must not inherit the first one's
/// counts; tokens added later must be seen), and the [`GENERATION`] it was filled in.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Owner {
    address: usize,
    vocab: usize,
    added: usize,
    generation: usize,
}

impl Owner {
    fn of(tok: &Tokenizer) -> Owner {
        Owner {
            address: tok as *const Tokenizer as usize,
            vocab: tok.get_vocab_size(false),
            added: tok.get_added_vocabulary().len(),
            generation: GENERATION.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

/// Counts of short pieces shared by all threads, behind each thread's own cache: a piece one
/// rayon worker met is not run through BPE again by another (~250 ns a word with our own
/// counter). Only a thread's own misses come here. In shards, each behind its own lock, by
/// the key's hash: threads that meet new pieces at once (on a cold import, all of them) seldom
/// wait for one another.
static SHARED: std::sync::LazyLock<[std::sync::RwLock<SharedCounts>; SHARDS]> =
    std::sync::LazyLock::new(|| std::array::from_fn(|_| Default::default()));

/// Shards of [`SHARED`] (a power of two).
const SHARDS: usize = 64;

#[derive(Default)]
struct SharedCounts {
    owner: Owner,
    /// The same 16-byte entries as a thread's table (a map of `(u128, u8)` takes 32 bytes an
    /// entry, and twice that memory touched anew as it grows).
    short: ShortCounts,
}

/// The tokens of the short piece `key`: from the shared table, else from `compute` (then
/// shared). A read lock of its shard, and a write lock when it was missing.
fn shared_count(owner: Owner, key: u128, compute: impl FnOnce() -> u8) -> u8 {
    let shard = &SHARED[ShortCounts::shard(key)];
    // A panic elsewhere while a lock was held leaves valid counts: the table is still used.
    let found = {
        let shared = shard.read().unwrap_or_else(|e| e.into_inner());
        shared.short.get(key).filter(|_| shared.owner == owner)
    };
    if let Some(found) = found {
        return found;
    }
    let computed = compute();
    let mut shared = shard.write().unwrap_or_else(|e| e.into_inner());
    if shared.owner != owner || shared.short.len() > MAX_PIECES / SHARDS {
        shared.owner = owner;
        shared.short.clear();
    }
    shared.short.insert_new(key, computed);
    computed
}

/// A piece of up to 15 bytes as one key: its bytes, zero-padded, then its length (in the
/// last byte, little-endian).
fn short_key(piece: &str) -> Option<u128> {
    let b = piece.as_bytes();
    if b.len() > 15 {
        return None;
    }
    let mut key = [0u8; 16];
    key[..b.len()].copy_from_slice(b);
    key[15] = b.len() as u8;
    Some(u128::from_le_bytes(key))
}

/// [`short_key`] of `piece`, a slice of `text`: read as the 16 bytes of `text` from its start,
/// masked, when as many follow (a copy of the piece into a buffer calls `memcpy`, and reading
/// the buffer back as one value waits for the copy to land).
fn short_key_in(text: &str, piece: &str) -> Option<u128> {
    let len = piece.len();
    if len > 15 {
        return None;
    }
    let start = piece.as_ptr().addr().wrapping_sub(text.as_ptr().addr());
    match text.as_bytes().get(start..start.wrapping_add(16)).map(<[u8; 16]>::try_from) {
        Some(Ok(w)) if len > 0 => {
            Some(u128::from_le_bytes(w) & ((1u128 << (8 * len)) - 1) | (len as u128) << 120)
        }
        _ => short_key(piece),
    }
}

/// The scheme our scanner runs for `pre`, when it is one it knows.
fn scheme(pre: &PreTokenizerWrapper) -> Option<crate::pretokens::Scheme> {
    use crate::pretokens::Scheme;
    let gpt2 = |p: &PreTokenizerWrapper| matches!(p, PreTokenizerWrapper::ByteLevel(b) if b.use_regex && !b.add_prefix_space);
    match pre {
        p if gpt2(p) => Some(Scheme::Gpt2),
        PreTokenizerWrapper::Sequence(seq) => match seq.as_ref() {
            [PreTokenizerWrapper::Digits(d), b] if d.individual_digits && gpt2(b) => {
                Some(Scheme::DigitsThenGpt2)
            }
            _ => None,
        },
        _ => None,
    }
}

/// Builds ahead what [`count`] needs of `tok` that takes a while (its merges, tens of
/// milliseconds for a 50,000-token vocabulary), as loading a tokenizer does.
pub fn prepare_count(tok: &Tokenizer) {
    merges_of(tok);
}

/// The merges of the tokenizer last asked for, by [`Owner`] (not by generation: they do not
/// change when counts are forgotten).
fn merges_of(tok: &Tokenizer) -> Option<std::sync::Arc<Merges>> {
    type Built = Option<(Owner, Option<std::sync::Arc<Merges>>)>;
    static LAST: std::sync::Mutex<Built> = std::sync::Mutex::new(None);
    let owner = Owner { generation: 0, ..Owner::of(tok) };
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((o, m)) = last.as_ref()
        && *o == owner
    {
        return m.clone();
    }
    let m = Merges::of(tok, &BYTE_CHARS).map(std::sync::Arc::new);
    *last = Some((owner, m.clone()));
    m
}

/// Tokens of one pre-token of a byte-level scheme: by our own counter over the model's
/// `merges` when there are, else its bytes in GPT-2's byte alphabet (what `ByteLevel` turns
/// them into), then the model.
fn piece_tokens(tok: &Tokenizer, merges: Option<&Merges>, piece: &[u8]) -> usize {
    use tokenizers::Model;
    if let Some(m) = merges
        && piece.len() <= crate::merges::MAX_BYTES
    {
        return m.count(piece);
    }
    thread_local! {
        static MAPPED: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    MAPPED.with_borrow_mut(|mapped| {
        mapped.clear();
        mapped.extend(piece.iter().map(|&b| BYTE_CHARS[b as usize]));
        tok.get_model().tokenize(mapped).map_or(0, |t| t.len())
    })
}

/// The character that stands for each byte in GPT-2's byte alphabet.
#[cfg(test)]
pub(crate) fn byte_chars() -> &'static [char; 256] {
    &BYTE_CHARS
}

/// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes stand for themselves, the others for
/// U+0100 onwards, in byte order.
static BYTE_CHARS: std::sync::LazyLock<[char; 256]> = std::sync::LazyLock::new(|| {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut out = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        out[b as usize] = if printable(b) {
            b as char
        } else {
            next += 1;
            char::from_u32(next - 1).unwrap_or('\0')
        };
    }
    out
});

/// Text of `ids`, special tokens skipped.
pub fn decode(tok: &Tokenizer, ids: &[u32]) -> Result<String> {
    tok.decode(ids, true).map_err(|e| Error::Tokenizer(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key is exactly the piece's bytes, zero-padded, then its length: two pieces share a
    /// key only when they are equal.
    #[test]
    fn short_keys_are_the_bytes_and_the_length() {
        let text = "abcdefghijklmnopé中";
        for from in 0..text.len() {
            for to in from..=text.len() {
                let Some(piece) = text.get(from..to) else { continue };
                let key = short_key(piece);
                assert_eq!(short_key_in(text, piece), key, "{piece:?}");
                if piece.len() > 15 {
                    assert_eq!(key, None);
                    continue;
                }
                let mut want = [0u8; 16];
                want[..piece.len()].copy_from_slice(piece.as_bytes());
                want[15] = piece.len() as u8;
                assert_eq!(key, Some(u128::from_le_bytes(want)), "{piece:?}");
            }
        }
    }
}
