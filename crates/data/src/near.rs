//! The near-duplicate key of a row: its input's and output's words, lower-cased, punctuation
//! and spacing dropped ([`near_hash`]). Rows with the same key are near-duplicates.
//!
//! ASCII runs are normalized 16 bytes at a time where the CPU has SSSE3 (every x86-64 CPU since
//! ~2008; detected at run time); other characters, and other CPUs, go byte by byte. Both paths
//! write the same bytes (test `simd_and_scalar_agree`).

use xxhash_rust::xxh3::xxh3_64;

/// The hash of [`normalize`]d input and output (0 when they hold no letter or digit), built in
/// a buffer each thread keeps.
pub(crate) fn near_hash(input: &str, output: &str) -> u64 {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        normalize_into(input, output, buf, simd());
        if buf.is_empty() { 0 } else { xxh3_64(buf) }
    })
}

/// Lower-case words of input and output, punctuation dropped, single spaces.
#[cfg(test)]
fn normalize(input: &str, output: &str) -> String {
    let mut out = Vec::new();
    normalize_into(input, output, &mut out, simd());
    String::from_utf8(out).unwrap()
}

/// Whether the 16-byte path can run here.
fn simd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("popcnt")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// ASCII letters and digits → themselves lower-cased; other ASCII → 0; non-ASCII → 0x80.
static ASCII: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if !c.is_ascii() {
            0x80
        } else if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            0
        };
        b += 1;
    }
    t
};

/// [`normalize`] into `out` (UTF-8): each part's words, a space after each, the last one's
/// dropped, then a 1 byte. ASCII is read 16 bytes at a time when `simd`, else byte by byte
/// through a table without a branch per byte; other characters are decoded.
fn normalize_into(input: &str, output: &str, out: &mut Vec<u8>, simd: bool) {
    out.clear();
    let mut words = false;
    for part in [input, output] {
        let bytes = part.as_bytes();
        // Room for the part written byte for byte; lower-casing may grow a character: the
        // slow path makes room. Invariant: `j + (bytes.len() - i) < out.len()`.
        let start = out.len();
        let mut j = start;
        out.resize(j + bytes.len() + 1, 0);
        let mut in_word = false;
        let mut i = 0;
        while i < bytes.len() {
            #[cfg(target_arch = "x86_64")]
            if simd {
                // SAFETY: `simd` is only true where SSSE3 and POPCNT were detected.
                (i, j) = unsafe { x86::ascii_runs(bytes, i, out, j, &mut in_word) };
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = simd;
            // A run of ASCII, written through a slice (its pointer stays in a register).
            let buf = &mut out[..];
            while let Some(&b) = bytes.get(i) {
                let m = ASCII[b as usize];
                if m >= 0x80 {
                    break;
                }
                // A letter or digit is written; a separator is written as a space right after
                // a word and overwritten otherwise.
                buf[j] = if m == 0 { b' ' } else { m };
                j += (m != 0 || in_word) as usize;
                in_word = m != 0;
                i += 1;
            }
            if i == bytes.len() {
                break;
            }
            let Some(c) = part[i..].chars().next() else { break };
            i += c.len_utf8();
            if c.is_alphanumeric() {
                let mut buf = [0u8; 4];
                for l in c.to_lowercase() {
                    let l = l.encode_utf8(&mut buf).as_bytes();
                    if out.len() < j + l.len() + (bytes.len() - i) + 1 {
                        out.resize(j + l.len() + (bytes.len() - i) + 1, 0);
                    }
                    out[j..j + l.len()].copy_from_slice(l);
                    j += l.len();
                }
                in_word = true;
            } else {
                if in_word {
                    out[j] = b' ';
                    j += 1;
                }
                in_word = false;
            }
        }
        if j > start && out[j - 1] == b' ' {
            j -= 1;
        }
        words |= j > start;
        out.truncate(j);
        out.push(1);
    }
    if !words {
        out.clear();
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// For each 8-bit mask, the `pshufb` control that packs the bytes whose bits are set to the
    /// front, in order.
    static PACK: [u64; 256] = {
        let mut t = [0u64; 256];
        let mut m = 0;
        while m < 256 {
            let (mut v, mut k, mut bit) = (0u64, 0, 0);
            while bit < 8 {
                if m & (1 << bit) != 0 {
                    v |= (bit as u64) << (8 * k);
                    k += 1;
                }
                bit += 1;
            }
            t[m] = v;
            m += 1;
        }
        t
    };

    /// Normalizes 16-byte blocks of ASCII from `bytes[i..]` into `out[j..]` while whole blocks
    /// remain and hold only ASCII; returns the new `(i, j)`. A block's letters and digits are
    /// lower-cased, other bytes become spaces, and a space is kept only right after a letter or
    /// digit (`in_word` carries that across blocks): the kept bytes are packed by `pshufb`.
    ///
    /// # Safety
    /// The CPU must have SSSE3 and POPCNT.
    #[target_feature(enable = "ssse3,popcnt")]
    pub(super) unsafe fn ascii_runs(
        bytes: &[u8],
        mut i: usize,
        out: &mut [u8],
        mut j: usize,
        in_word: &mut bool,
    ) -> (usize, usize) {
        let mut prev = *in_word as u32;
        // Each block writes at most 16 bytes at `j`: the bounds are checked before the stores.
        while i + 16 <= bytes.len() && j + 16 <= out.len() {
            // SAFETY: `i + 16 <= bytes.len()`, `j + 16 <= out.len()` (two 8-byte stores at `j`
            // and at `j + popcount(lo) <= j + 8`); the features are the caller's promise.
            unsafe {
                let c = _mm_loadu_si128(bytes.as_ptr().add(i) as *const __m128i);
                if _mm_movemask_epi8(c) != 0 {
                    break;
                }
                let lower = _mm_or_si128(c, _mm_set1_epi8(0x20));
                let letter = _mm_and_si128(
                    _mm_cmpgt_epi8(lower, _mm_set1_epi8(b'a' as i8 - 1)),
                    _mm_cmplt_epi8(lower, _mm_set1_epi8(b'z' as i8 + 1)),
                );
                let digit = _mm_and_si128(
                    _mm_cmpgt_epi8(c, _mm_set1_epi8(b'0' as i8 - 1)),
                    _mm_cmplt_epi8(c, _mm_set1_epi8(b'9' as i8 + 1)),
                );
                let alnum = _mm_or_si128(letter, digit);
                // Digits already have bit 0x20 set: `lower` is right for both.
                let v = _mm_or_si128(
                    _mm_and_si128(alnum, lower),
                    _mm_andnot_si128(alnum, _mm_set1_epi8(b' ' as i8)),
                );
                let a = _mm_movemask_epi8(alnum) as u32;
                let keep = a | ((a << 1 | prev) & 0xFFFF);
                prev = a >> 15;
                let (lo, hi) = ((keep & 0xFF) as usize, (keep >> 8) as usize);
                let dst = out.as_mut_ptr().add(j);
                let lo_ctrl = _mm_cvtsi64_si128(PACK[lo] as i64);
                _mm_storel_epi64(dst as *mut __m128i, _mm_shuffle_epi8(v, lo_ctrl));
                let n = lo.count_ones() as usize;
                let hi_ctrl = _mm_cvtsi64_si128((PACK[hi] | 0x0808_0808_0808_0808) as i64);
                _mm_storel_epi64(dst.add(n) as *mut __m128i, _mm_shuffle_epi8(v, hi_ctrl));
                j += n + hi.count_ones() as usize;
                i += 16;
            }
        }
        *in_word = prev != 0;
        (i, j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_duplicates_ignore_case_and_punctuation() {
        assert_eq!(normalize("Hello, World!", "Yes."), normalize("hello world", "YES"));
        assert_ne!(normalize("hello world", "yes"), normalize("hello", "world yes"));
        assert_eq!(normalize("", "?!"), "");
        // ASCII runs and other letters in one word; words split at punctuation.
        assert_eq!(normalize("Ärger, CAFÉ-au-lait!", "x2"), "ärger café au lait\u{1}x2\u{1}");
        assert_eq!(normalize(" -- İstanbul ß!", ""), "i\u{307}stanbul ß\u{1}\u{1}");
        assert_eq!(normalize("a", ""), normalize("A!", "  "));
        assert_ne!(normalize("a b", ""), normalize("ab", ""));
        assert_ne!(normalize("a", "b"), normalize("a b", ""));
    }

    /// The 16-byte path writes what the byte-by-byte one does, at every offset and for every
    /// kind of byte: letters of both cases, digits, punctuation runs, spaces, control bytes,
    /// and characters that are not ASCII (some of which lower-case to more bytes).
    #[test]
    fn simd_and_scalar_agree() {
        if !simd() {
            return;
        }
        const ATOMS: &[&str] = &[
            "a", "Z", "q", "M", "0", "9", "5", " ", "  ", ",", ", ", ". ", "!?", "-", "_", "@",
            "[", "`", "{", "/", ":", "\t", "\n", "\u{7f}", "\u{1}", "é", "Ä", "İ", "ß", "日本",
            "—", "\u{a0}", "🙂", "١٢", "word", "Words", "HELLO", "x2", "a1b2", "...", " -- ",
        ];
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut text = || {
            let n = rng.random_range(0..120);
            let mut s = String::new();
            // Mostly ASCII, as most datasets are; some rows with other characters.
            let ascii_only = rng.random_ratio(2, 3);
            for _ in 0..n {
                let a = ATOMS[rng.random_range(0..ATOMS.len())];
                if !ascii_only || a.is_ascii() {
                    s.push_str(a);
                }
            }
            s
        };
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        for _ in 0..20_000 {
            let (input, output) = (text(), text());
            normalize_into(&input, &output, &mut fast, true);
            normalize_into(&input, &output, &mut slow, false);
            assert_eq!(fast, slow, "{input:?} / {output:?}");
        }
        // Long words and long separator runs cross the 16-byte blocks.
        let long = format!("{}, {}!!  {}", "Ab".repeat(40), "-".repeat(37), "9z".repeat(20));
        normalize_into(&long, &long[3..], &mut fast, true);
        normalize_into(&long, &long[3..], &mut slow, false);
        assert_eq!(fast, slow);
    }
}
