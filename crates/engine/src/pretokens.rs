//! GPT-2's pre-tokenizer as a byte scanner, for counting tokens fast.
//!
//! Byte-level BPE tokenizers (GPT-2, SmolLM) first split text with the regex
//! `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`; BPE never merges
//! across the pieces. `tokenizers` runs that regex with `fancy-regex` and builds a
//! `NormalizedString` per piece, which is most of the cost of counting a dataset's tokens. This
//! module finds the same pieces with one pass over the bytes and no allocation. The character
//! classes come from `regex-syntax`, the tables the regex itself is compiled from, so both agree
//! on every character. The unit tests compare the pieces with `tokenizers`' own pre-tokenizers;
//! `tests/it/count.rs` compares the token counts built on them with the encoder's.

use std::sync::LazyLock;

/// The splitting schemes [`split`] reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `ByteLevel` with its regex and no prefix space.
    Gpt2,
    /// `Digits(individual_digits)` then [`Scheme::Gpt2`] (SmolLM's tokenizer).
    DigitsThenGpt2,
}

/// Calls `each` with the pre-tokens of `text`, in order; they concatenate to `text`.
pub fn split<'t>(scheme: Scheme, text: &'t str, each: &mut impl FnMut(&'t str)) {
    match scheme {
        Scheme::Gpt2 => gpt2(text, each),
        Scheme::DigitsThenGpt2 => {
            // `Digits` isolates every numeric character (`char::is_numeric`, as it does); the
            // regex then runs on each piece between them.
            let bytes = text.as_bytes();
            let (mut from, mut i) = (0, 0);
            while let Some(k) = digit_or_wide(bytes, i) {
                i = k;
                let Some(c) = text[i..].chars().next() else { break };
                let end = i + c.len_utf8();
                if c.is_numeric() {
                    gpt2(&text[from..i], each);
                    each(&text[i..end]);
                    from = end;
                }
                i = end;
            }
            gpt2(&text[from..], each);
        }
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The first byte from `from` on for which `hit` holds, eight bytes at a time: `hits` gives the
/// high bit of each byte of a little-endian word for which `hit` holds (one branch per eight
/// bytes instead of a mispredicted one where the run ends).
#[inline(always)]
fn first(
    b: &[u8],
    from: usize,
    hits: impl Fn(u64) -> u64,
    hit: impl Fn(u8) -> bool,
) -> Option<usize> {
    let mut i = from;
    while let Some(w) = b.get(i..i + 8) {
        let found = hits(u64::from_le_bytes(w.try_into().unwrap_or_default()));
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..].iter().position(|&c| hit(c)).map(|k| i + k)
}

/// The first byte from `from` on that is an ASCII digit or not ASCII.
fn digit_or_wide(b: &[u8], from: usize) -> Option<usize> {
    let hits = |w: u64| {
        // With every high bit set no subtraction borrows across bytes: an ASCII byte is a
        // digit when it is at least '0' and not at least ':'.
        let x = w | HIGH;
        (x.wrapping_sub(ONES * 0x30) & !x.wrapping_sub(ONES * 0x3A) & HIGH) | (w & HIGH)
    };
    first(b, from, hits, |c| c.is_ascii_digit() || c >= 0x80)
}

/// The end of the run of ASCII letters at `from`: the first byte that is not one.
fn ascii_letters(b: &[u8], from: usize) -> usize {
    let others = |w: u64| {
        // Lower-cased (`| 0x20` maps no other byte into `a..=z`) and with every high bit set,
        // so that no subtraction borrows across bytes: a letter's low seven bits are at least
        // 'a' and not at least '{', and its high bit was clear.
        let x = w | (ONES * 0x20) | HIGH;
        !(x.wrapping_sub(ONES * 0x61) & !x.wrapping_sub(ONES * 0x7B) & !w) & HIGH
    };
    first(b, from, others, |c| !c.is_ascii_alphabetic()).unwrap_or(b.len())
}

/// What the regex distinguishes about a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// `\p{L}`.
    Letter,
    /// `\p{N}`.
    Number,
    /// `\s`.
    Space,
    /// Anything else.
    Other,
}

struct Tables {
    ascii: [Class; 128],
    letter: Vec<(char, char)>,
    number: Vec<(char, char)>,
    space: Vec<(char, char)>,
}

static TABLES: LazyLock<Tables> = LazyLock::new(|| {
    let ranges = |pattern: &str| -> Vec<(char, char)> {
        use regex_syntax::hir::{Class as C, HirKind};
        // Fixed, valid patterns: a failure here is a broken regex-syntax build.
        let hir = regex_syntax::parse(pattern).expect("a Unicode class");
        match hir.kind() {
            HirKind::Class(C::Unicode(u)) => {
                u.ranges().iter().map(|r| (r.start(), r.end())).collect()
            }
            other => panic!("{pattern} parsed as {other:?}"),
        }
    };
    let mut t = Tables {
        ascii: [Class::Other; 128],
        letter: ranges(r"\p{L}"),
        number: ranges(r"\p{N}"),
        space: ranges(r"\s"),
    };
    for b in 0..128u8 {
        t.ascii[b as usize] = t.slow(b as char);
    }
    t
});

impl Tables {
    fn slow(&self, c: char) -> Class {
        let within = |ranges: &[(char, char)]| {
            let i = ranges.partition_point(|&(_, hi)| hi < c);
            ranges.get(i).is_some_and(|&(lo, _)| lo <= c)
        };
        if within(&self.letter) {
            Class::Letter
        } else if within(&self.number) {
            Class::Number
        } else if within(&self.space) {
            Class::Space
        } else {
            Class::Other
        }
    }

    #[inline]
    fn class(&self, c: char) -> Class {
        if c.is_ascii() { self.ascii[c as usize] } else { self.slow(c) }
    }
}

/// The character at byte `i` of `s` and its class.
#[inline]
fn at(t: &Tables, s: &str, i: usize) -> Option<(char, Class)> {
    let b = *s.as_bytes().get(i)?;
    let c = if b < 0x80 {
        b as char
    } else {
        // `i` is always a character boundary here.
        s[i..].chars().next()?
    };
    Some((c, t.class(c)))
}

/// The end of the run of `class` characters starting at `i`.
#[inline]
fn run(t: &Tables, s: &str, mut i: usize, class: Class) -> usize {
    let b = s.as_bytes();
    if class == Class::Letter {
        i = ascii_letters(b, i);
    }
    while i < b.len() {
        if b[i] < 0x80 {
            if t.ascii[b[i] as usize] != class {
                break;
            }
            i += 1;
        } else {
            match at(t, s, i) {
                Some((c, k)) if k == class => i += c.len_utf8(),
                _ => break,
            }
        }
    }
    i
}

fn gpt2<'t>(s: &'t str, each: &mut impl FnMut(&'t str)) {
    let t = &*TABLES;
    let mut i = 0;
    while i < s.len() {
        let end = gpt2_piece(t, s, i);
        each(&s[i..end]);
        i = end;
    }
}

/// The end of the regex's match at `i` (alternatives tried in the regex's order).
fn gpt2_piece(t: &Tables, s: &str, i: usize) -> usize {
    let b = s.as_bytes();
    // 's 't 're 've 'm 'll 'd (case-sensitive, as in the pattern).
    if b[i] == b'\'' {
        match (b.get(i + 1), b.get(i + 2)) {
            (Some(b's' | b't' | b'm' | b'd'), _) => return i + 2,
            (Some(b'r' | b'v'), Some(b'e')) | (Some(b'l'), Some(b'l')) => return i + 3,
            _ => {}
        }
    }
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional space, then a run of one class.
    let Some((c, class)) = at(t, s, i) else { return s.len() };
    let start = if c == ' ' { i + 1 } else { i };
    if let Some((_, k)) = at(t, s, start)
        && k != Class::Space
    {
        return run(t, s, start, k);
    }
    debug_assert_eq!(class, Class::Space);
    // `\s+(?!\S)`: the whitespace run, less its last character when something follows it;
    // else `\s+`: the run (of one character).
    let end = run(t, s, i, Class::Space);
    if end == s.len() {
        return end;
    }
    let last = s[..end].char_indices().next_back().map_or(i, |(j, _)| j);
    if last > i { last } else { end }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The eight-bytes-at-a-time search finds what a byte-by-byte one finds, from every start.
    #[test]
    fn digit_or_wide_is_the_first_digit_or_wide_byte() {
        let text =
            "abc /:09 xyz é 9 word:/ 0 中 long run of letters without 1 digit \x7f\u{7f} end";
        let b = text.as_bytes();
        for from in 0..=b.len() {
            let want = b[from..].iter().position(|&c| c.is_ascii_digit() || c >= 0x80);
            assert_eq!(digit_or_wide(b, from), want.map(|k| from + k), "{from}");
        }
        for c in 0..=255u8 {
            let mut b = [b'a'; 19];
            b[11] = c;
            let want = c.is_ascii_digit() || c >= 0x80;
            assert_eq!(digit_or_wide(&b, 0), want.then_some(11), "{c}");
        }
    }

    /// The eight-bytes-at-a-time letter run ends where a byte-by-byte one does, from every
    /// start and at every byte value.
    #[test]
    fn ascii_letters_end_at_the_first_other_byte() {
        let text = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ@[`{ word é longer words";
        let b = text.as_bytes();
        for from in 0..=b.len() {
            let want = b[from..].iter().position(|c| !c.is_ascii_alphabetic());
            assert_eq!(ascii_letters(b, from), from + want.unwrap_or(b.len() - from), "{from}");
        }
        for c in 0..=255u8 {
            let mut b = [b'Q'; 19];
            b[5] = c;
            let want = if c.is_ascii_alphabetic() { 19 } else { 5 };
            assert_eq!(ascii_letters(&b, 0), want, "{c}");
        }
    }

    fn pieces(scheme: Scheme, s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        split(scheme, s, &mut |p| out.push(p));
        out
    }

    #[test]
    fn gpt2_pieces() {
        let g = Scheme::Gpt2;
        assert_eq!(pieces(g, "Hello world"), ["Hello", " world"]);
        assert_eq!(
            pieces(g, "I'm here, they'll go"),
            ["I", "'m", " here", ",", " they", "'ll", " go"]
        );
        assert_eq!(pieces(g, "a   b"), ["a", "  ", " b"]);
        assert_eq!(pieces(g, "a\n\nb  "), ["a", "\n", "\n", "b", "  "]);
        assert_eq!(pieces(g, "x 's ?!"), ["x", " '", "s", " ?!"]);
        assert_eq!(pieces(g, "abc123 45"), ["abc", "123", " 45"]);
        assert_eq!(pieces(g, "café naïve 中文"), ["café", " naïve", " 中文"]);
        assert_eq!(
            pieces(Scheme::DigitsThenGpt2, "abc123 45"),
            ["abc", "1", "2", "3", " ", "4", "5"]
        );
    }

    /// Asserts that [`split`]'s pieces of `text` have the byte ranges of `tokenizers`' own
    /// pre-tokenizers, for both schemes.
    fn assert_same_pieces(text: &str) {
        use tokenizers::pre_tokenizers::PreTokenizerWrapper;
        use tokenizers::pre_tokenizers::byte_level::ByteLevel;
        use tokenizers::pre_tokenizers::digits::Digits;
        use tokenizers::pre_tokenizers::sequence::Sequence;
        use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

        let byte_level = || PreTokenizerWrapper::from(ByteLevel::new(false, true, true));
        let schemes = [
            (Scheme::Gpt2, byte_level()),
            (
                Scheme::DigitsThenGpt2,
                Sequence::new(vec![Digits::new(true).into(), byte_level()]).into(),
            ),
        ];
        for (scheme, pre) in &schemes {
            let mut ours = Vec::new();
            let mut at = 0;
            split(*scheme, text, &mut |p| {
                ours.push((at, at + p.len()));
                at += p.len();
            });
            let mut pts = PreTokenizedString::from(text);
            pre.pre_tokenize(&mut pts).unwrap();
            let theirs: Vec<(usize, usize)> = pts
                .get_splits(OffsetReferential::Original, OffsetType::Byte)
                .into_iter()
                .map(|(_, o, _)| o)
                .collect();
            if ours != theirs {
                let i = ours.iter().zip(&theirs).position(|(a, b)| a != b).unwrap_or(0);
                let (a, b) = (ours.get(i).copied(), theirs.get(i).copied());
                let show = |r: Option<(usize, usize)>| r.map(|(x, y)| &text[x..y]);
                panic!("{scheme:?}: piece {i}: ours {:?}, theirs {:?}", show(a), show(b));
            }
        }
    }

    /// The pieces' byte ranges equal those of `tokenizers`' own pre-tokenizers, in several
    /// contexts (alone, doubled, after a space, before a digit, a newline and a contraction),
    /// for ASCII, the characters on either side of every class boundary, and every 61st
    /// scalar value (all of them: 35 s).
    #[test]
    fn same_pieces_as_the_tokenizers_crate_for_every_character() {
        let t = &*TABLES;
        let mut points: Vec<u32> = (0..128).chain((0..=0x10FFFF).step_by(61)).collect();
        for &(lo, hi) in t.letter.iter().chain(&t.number).chain(&t.space) {
            let (lo, hi) = (lo as u32, hi as u32);
            points.extend([lo.saturating_sub(1), lo, hi, hi + 1]);
        }
        points.sort_unstable();
        points.dedup();
        let chars: Vec<char> = points.into_iter().filter_map(char::from_u32).collect();
        for chunk in chars.chunks(8192) {
            let mut text = String::new();
            for &c in chunk {
                use std::fmt::Write;
                let _ = write!(text, "{c}a{c}{c} {c}1{c}\n{c}'s'VE{c}'ve're'll'd'm't'x  ");
            }
            assert_same_pieces(&text);
        }
    }

    /// Random mixes of long and short words (ASCII letters of both cases, letters that are
    /// not ASCII inside and next to them), digits, spaces, newlines, contractions and
    /// punctuation: the runs cross the eight-byte blocks of the letter scan at every offset.
    #[test]
    fn same_pieces_as_the_tokenizers_crate_for_random_mixes() {
        const ATOMS: &[&str] = &[
            "a",
            "Zy",
            "word",
            "Letters",
            "abcdefgh",
            "ABCDEFGHIJKLMNOPQ",
            "é",
            "ß",
            "中文",
            "İ",
            "\u{301}",
            "7",
            "42",
            "١",
            " ",
            "  ",
            "\n",
            "\t",
            "'s",
            "'ll",
            "'",
            ",",
            "?!",
            "@[`{",
            "\u{a0}",
            "🙂",
            "\u{1}",
            "\u{7f}",
        ];
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut text = String::new();
        for _ in 0..30_000 {
            text.push_str(ATOMS[rng.random_range(0..ATOMS.len())]);
        }
        assert_same_pieces(&text);
    }
}
