//! GPT-2's pre-tokenizer as a byte scanner, for counting tokens fast.
//!
//! Byte-level BPE tokenizers (GPT-2, SmolLM) first split text with the regex
//! `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`; BPE never merges
//! across the pieces. `tokenizers` runs that regex with `fancy-regex` and builds a
//! `NormalizedString` per piece, which is most of the cost of counting a dataset's tokens. This
//! module finds the same pieces with one pass over the bytes and no allocation. The character
//! classes come from `regex-syntax`, the tables the regex itself is compiled from, so both agree
//! on every character. ASCII text (nearly all of most datasets) is split 64 bytes at a time:
//! each block's piece starts are computed at once from bit masks of its bytes' classes (SSE2 on
//! x86-64), with no branch per byte or per piece; a few pieces around each wide character go a
//! character at a time. The unit tests compare the pieces with `tokenizers`' own
//! pre-tokenizers; `tests/it/count.rs` compares the token counts built on them with the
//! encoder's.

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
///
/// ASCII stretches go 64 bytes at a time ([`split_ascii`]); around each character that is not
/// ASCII, a window goes a character at a time ([`split_chars`]). The regex matched from a piece
/// start never looks behind it, so a window from one piece start to another has the whole
/// text's pieces. The ASCII stretch's last piece may still grow into the wide character: it
/// opens the window. The window closes at the first ASCII space after the wide character that
/// follows an ASCII character other than a space — always a piece start (no piece ends with a
/// space when something other than a space follows it).
pub fn split<'t>(scheme: Scheme, text: &'t str, each: &mut impl FnMut(&'t str)) {
    let digits = scheme == Scheme::DigitsThenGpt2;
    let b = text.as_bytes();
    let space = |c: u8| c < 0x80 && TABLES.ascii[c as usize] == Class::Space;
    let mut from = 0;
    loop {
        let Some(wide) = first(b, from, |w| w & HIGH, |c| c >= 0x80) else {
            return split_ascii(digits, &text[from..], each);
        };
        // The stretch's pieces but the last; the window starts where the last one does.
        let mut last: Option<&'t str> = None;
        split_ascii(digits, &text[from..wide], &mut |p| {
            if let Some(done) = last.replace(p) {
                each(done)
            }
        });
        let start = last.map_or(from, |p| p.as_ptr().addr() - text.as_ptr().addr());
        let end = (wide + 1..b.len())
            .find(|&i| space(b[i]) && b[i - 1] < 0x80 && !space(b[i - 1]))
            .unwrap_or(b.len());
        split_chars(scheme, &text[start..end], each);
        if end == b.len() {
            return;
        }
        from = end;
    }
}

/// [`split`] a character at a time (any text).
fn split_chars<'t>(scheme: Scheme, text: &'t str, each: &mut impl FnMut(&'t str)) {
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

/// One bit a byte for 64 bytes of ASCII text: the classes the regex tells apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Masks {
    letter: u64,
    digit: u64,
    space: u64,
    /// `' '` (the one space a piece may start with).
    blank: u64,
    /// Neither a letter, a digit nor a space.
    other: u64,
    /// `'` (contractions).
    quote: u64,
}

/// [`Masks`] of the ASCII bytes `b[from..]`, at most 64 (those past the end are in no class).
#[inline]
fn classify(b: &[u8], from: usize) -> Masks {
    let mut block = [0u8; 64];
    let bytes = match b.get(from..from + 64) {
        Some(full) => full,
        None => {
            let rest = &b[from.min(b.len())..];
            block[..rest.len()].copy_from_slice(rest);
            &block
        }
    };
    let valid = match b.len() - from.min(b.len()) {
        n if n >= 64 => !0,
        n => (1u64 << n) - 1,
    };
    let mut m = classify_block(bytes.try_into().unwrap_or(&[0; 64]));
    m.other = valid & !(m.letter | m.digit | m.space);
    m
}

/// The letter, digit, space, blank and quote bits of 64 ASCII bytes (SSE2: part of x86-64).
#[cfg(target_arch = "x86_64")]
fn classify_block(b: &[u8; 64]) -> Masks {
    use std::arch::x86_64::*;
    let mut m = Masks::default();
    // SAFETY: SSE2 is part of x86-64; the loads read 16 of the 64 bytes each.
    unsafe {
        let splat = |x: u8| _mm_set1_epi8(x as i8);
        // `x` within `lo..lo + n` (unsigned): shifted so that `lo` is the smallest signed byte.
        let within = |x: __m128i, lo: u8, n: u8| {
            _mm_cmplt_epi8(_mm_sub_epi8(x, splat(lo ^ 0x80)), splat(0x80 + n))
        };
        for k in 0..4 {
            let x = _mm_loadu_si128(b.as_ptr().add(16 * k).cast());
            let bits = |v: __m128i| (_mm_movemask_epi8(v) as u16 as u64) << (16 * k);
            let blank = _mm_cmpeq_epi8(x, splat(b' '));
            m.letter |= bits(within(_mm_or_si128(x, splat(0x20)), b'a', 26));
            m.digit |= bits(within(x, b'0', 10));
            m.space |= bits(_mm_or_si128(within(x, b'\t', 5), blank));
            m.blank |= bits(blank);
            m.quote |= bits(_mm_cmpeq_epi8(x, splat(b'\'')));
        }
    }
    m
}

/// The letter, digit, space, blank and quote bits of 64 ASCII bytes.
#[cfg(not(target_arch = "x86_64"))]
fn classify_block(b: &[u8; 64]) -> Masks {
    classify_bytes(b)
}

/// [`classify_block`] a byte at a time, from the regex's own classes.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn classify_bytes(b: &[u8; 64]) -> Masks {
    let t = &*TABLES;
    let mut m = Masks::default();
    for (j, &c) in b.iter().enumerate() {
        let class = if c < 0x80 { t.ascii[c as usize] } else { Class::Other };
        m.letter |= ((class == Class::Letter) as u64) << j;
        m.digit |= ((class == Class::Number) as u64) << j;
        m.space |= ((class == Class::Space) as u64) << j;
        m.blank |= ((c == b' ') as u64) << j;
        m.quote |= ((c == b'\'') as u64) << j;
    }
    m
}

/// Where pieces start in a block of ASCII text, `cur`, between the blocks before and after
/// it (no bits where there are none), contractions aside. `digits`: every digit is a piece
/// ([`Scheme::DigitsThenGpt2`]); else digits run like letters.
#[inline]
fn starts(digits: bool, prev: &Masks, cur: &Masks, next: &Masks) -> u64 {
    // A class's bits one byte later (the byte before each byte) and one byte earlier.
    let before = |x: u64, p: u64| x << 1 | p >> 63;
    let after = |x: u64, n: u64| x >> 1 | n << 63;
    let (l, d, o, s) = (cur.letter, cur.digit, cur.other, cur.space);
    let (pl, pd, po, ps) = (prev.letter, prev.digit, prev.other, prev.space);
    // What a space may lead: a digit only without `Digits` (which cuts the text before it).
    let leads = |m: &Masks| m.letter | m.other | if digits { 0 } else { m.digit };
    let mut at =
        l & before(d | o, pd | po) | d & before(l | o, pl | po) | o & before(l | d, pl | pd);
    if digits {
        at |= d | before(d, pd);
    }
    // A run of spaces starts a piece; its last space starts another when something it may
    // lead follows (`\s+(?!\S)`), taking it along when it is a blank (` ?\p{L}+`…).
    at |= s & !before(s, ps);
    at |= s & after(leads(cur), leads(next));
    at |= leads(cur) & before(s & !cur.blank, ps & !prev.blank);
    at & (l | d | o | s)
}

/// [`split`] for ASCII text, 64 bytes at a time: the piece starts of each block are computed
/// at once from its bytes' classes (no branch per byte or per piece to mispredict).
fn split_ascii<'t>(digits: bool, text: &'t str, each: &mut impl FnMut(&'t str)) {
    let b = text.as_bytes();
    let (mut prev, mut cur) = (Masks::default(), classify(b, 0));
    // Starts set and cleared in the next block by a contraction at the end of this one.
    let (mut set, mut clear) = (0u64, 0u64);
    let mut from = 0;
    let mut base = 0;
    while base < b.len() {
        let next = if base + 64 < b.len() { classify(b, base + 64) } else { Masks::default() };
        // The text's first piece starts at its first byte.
        let mut at = starts(digits, &prev, &cur, &next) & !clear | set | (base == 0) as u64;
        (set, clear) = (0, 0);
        // `'s|'t|'re|'ve|'m|'ll|'d` where a piece starts with `'`: the contraction is the
        // piece, and the next one starts right after it.
        let mut quotes = cur.quote & at;
        while quotes != 0 {
            let q = quotes.trailing_zeros() as usize;
            quotes &= quotes - 1;
            let i = base + q;
            let len = match (b.get(i + 1), b.get(i + 2)) {
                (Some(b's' | b't' | b'm' | b'd'), _) => 2,
                (Some(b'r' | b'v'), Some(b'e')) | (Some(b'l'), Some(b'l')) => 3,
                _ => continue,
            };
            let inside = ((1u128 << (len - 1)) - 1) << (q + 1);
            let end = 1u128 << (q + len);
            at = at & !(inside as u64) | end as u64;
            clear |= (inside >> 64) as u64;
            set |= (end >> 64) as u64;
        }
        // No piece before the first; none past the end.
        at &= (cur.letter | cur.digit | cur.other | cur.space) & !((base == 0) as u64);
        while at != 0 {
            let to = base + at.trailing_zeros() as usize;
            at &= at - 1;
            each(&text[from..to]);
            from = to;
        }
        (prev, cur) = (cur, next);
        base += 64;
    }
    if from < b.len() {
        each(&text[from..]);
    }
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
    /// The class of every character of the Basic Multilingual Plane (64 KiB: the ranges'
    /// binary searches cost ~100 ns a character, and most wide characters of a dataset — curly
    /// quotes, dashes, accented letters, CJK — are there).
    bmp: Vec<Class>,
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
        bmp: vec![Class::Other; 0x10000],
        letter: ranges(r"\p{L}"),
        number: ranges(r"\p{N}"),
        space: ranges(r"\s"),
    };
    // In the reverse of `slow`'s order, so that its first class wins (they are disjoint).
    for (ranges, class) in
        [(&t.space, Class::Space), (&t.number, Class::Number), (&t.letter, Class::Letter)]
    {
        for &(lo, hi) in ranges.iter().filter(|&&(lo, _)| (lo as usize) < 0x10000) {
            let hi = (hi as usize).min(0xFFFF);
            t.bmp[lo as usize..=hi].fill(class);
        }
    }
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
        match c as usize {
            a @ ..0x80 => self.ascii[a],
            w @ ..0x10000 => self.bmp[w],
            _ => self.slow(c),
        }
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

    /// Random `atoms` one after another, until `bytes` long or longer.
    fn draw(rng: &mut rand::rngs::StdRng, atoms: &[&str], bytes: usize) -> String {
        use rand::Rng;
        let mut text = String::new();
        while text.len() < bytes {
            text.push_str(atoms[rng.random_range(0..atoms.len())]);
        }
        text
    }

    /// Random mixes of long and short words (ASCII letters of both cases, letters that are
    /// not ASCII inside and next to them), digits, spaces, newlines, contractions and
    /// punctuation: the runs cross the eight-byte blocks of the letter scan at every offset.
    #[test]
    fn same_pieces_as_the_tokenizers_crate_for_random_mixes() {
        #[rustfmt::skip]
        const ATOMS: &[&str] = &[
            "a", "Zy", "word", "Letters", "abcdefgh", "ABCDEFGHIJKLMNOPQ", "é", "ß", "中文", "İ",
            "\u{301}", "7", "42", "١", " ", "  ", "\n", "\t", "'s", "'ll", "'", ",", "?!", "@[`{",
            "\u{a0}", "🙂", "\u{1}", "\u{7f}",
        ];
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        assert_same_pieces(&draw(&mut rng, ATOMS, 30_000));
    }

    /// The table of the Basic Multilingual Plane gives every character the class of the
    /// ranges' binary search.
    #[test]
    fn bmp_classes_are_the_ranges_classes() {
        let t = &*TABLES;
        for c in (0..0x10000).filter_map(char::from_u32) {
            assert_eq!(t.class(c), t.slow(c), "{:?}", c);
        }
        assert_eq!(t.class('’'), Class::Other);
        assert_eq!(t.class('é'), Class::Letter);
        assert_eq!(t.class('\u{a0}'), Class::Space);
        assert_eq!(t.class('١'), Class::Number);
    }

    /// The SIMD classes of every ASCII byte, at every place in a block, are the regex's.
    #[test]
    fn block_classes_are_the_regex_classes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for round in 0..2_000 {
            let mut b = [0u8; 64];
            for (j, c) in b.iter_mut().enumerate() {
                // Every byte value at every place, then random ones.
                *c = if round < 128 { ((round + j) % 128) as u8 } else { rng.random_range(0..128) };
            }
            assert_eq!(classify_block(&b), classify_bytes(&b), "{b:?}");
        }
    }

    /// Under both schemes, the pieces of `text` by [`split`] (`whole`, any text) or by
    /// [`split_ascii`] (ASCII text) are those of the character scanner.
    fn assert_pieces_are_the_scanners(text: &str, whole: bool) {
        for scheme in [Scheme::Gpt2, Scheme::DigitsThenGpt2] {
            let (mut ours, mut chars) = (Vec::new(), Vec::new());
            if whole {
                split(scheme, text, &mut |p| ours.push(p));
            } else {
                split_ascii(scheme == Scheme::DigitsThenGpt2, text, &mut |p| ours.push(p));
            }
            split_chars(scheme, text, &mut |p| chars.push(p));
            assert_eq!(ours, chars, "{scheme:?} {text:?}");
        }
    }

    /// ASCII texts take the 64-bytes-at-a-time path: its pieces are those of the character
    /// scanner and of `tokenizers`, for texts of every length around the blocks' edges, with
    /// contractions, runs of spaces and digits across them; and so are those of texts that mix
    /// in characters that are not ASCII.
    #[test]
    fn ascii_pieces_are_the_character_scanners() {
        #[rustfmt::skip]
        const ATOMS: &[&str] = &[
            "a", "Zy", "word", "Letters", "abcdefgh", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef", "7", "42",
            " ", "  ", "   ", "\n", "\t", "\r\n", "\x0b", "\x0c", "'s", "'t", "'re", "'ve", "'m",
            "'ll", "'d", "'S", "'r", "'l", "'", "''", ",", "?!", "@[`{", "\u{1}", "\u{1f}",
            "\u{7f}", "_", "-", ".",
        ];
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut all = String::new();
        for round in 0..20_000 {
            let bytes = if round < 400 { round / 2 } else { rng.random_range(0..300) };
            let text = draw(&mut rng, ATOMS, bytes);
            assert!(text.is_ascii());
            assert_pieces_are_the_scanners(&text, false);
            all.push_str(&text);
        }
        assert_same_pieces(&all);
        // Mostly ASCII, with characters that are not (letters, digits, spaces, others) before,
        // inside and after ASCII runs: the windows around them.
        let mut mixed: Vec<&str> = ATOMS.to_vec();
        mixed.extend(["é", "’", "中文", "\u{a0}", "١", "🙂", "İ", "\u{301}", "\u{2028}"]);
        let mut all = String::new();
        for round in 0..20_000 {
            let text = draw(&mut rng, &mixed, if round < 400 { round / 2 } else { 150 });
            assert_pieces_are_the_scanners(&text, true);
            all.push_str(&text);
        }
        assert_same_pieces(&all);
        for c in 0..128u8 {
            let c = c as char;
            assert_same_pieces(&format!("{c}a{c}{c} {c}1{c}\n{c}'s'VE{c}'ve're'll'd'm't'x  {c}"));
        }
    }
}
