//! Corpus BLEU as `sacrebleu.corpus_bleu(preds, [refs])` computes it with its defaults: the 13a
//! tokenizer, case kept, `exp` smoothing, no effective order, four n-gram orders.

use std::collections::HashMap;

use api::eval::Bleu;

use crate::text;

const ORDER: usize = 4;

/// Corpus BLEU of `preds[i]` against `refs[i]` (one reference each; pairs by position). An
/// empty corpus, which sacrebleu rejects, scores 0 with a brevity penalty of 1.
pub fn corpus_bleu(preds: &[&str], refs: &[&str]) -> Bleu {
    let mut counts = [0u64; ORDER];
    let mut totals = [0u64; ORDER];
    let (mut sys_len, mut ref_len) = (0u64, 0u64);
    for (pred, reference) in preds.iter().zip(refs) {
        let hyp = tokenize_13a(pred);
        let gold = tokenize_13a(reference);
        let hyp: Vec<&str> = hyp.split(' ').filter(|t| !t.is_empty()).collect();
        let gold: Vec<&str> = gold.split(' ').filter(|t| !t.is_empty()).collect();
        sys_len += hyp.len() as u64;
        ref_len += gold.len() as u64;
        let gold_ngrams = ngrams(&gold);
        for (ngram, count) in ngrams(&hyp) {
            totals[ngram.len() - 1] += count;
            if let Some(&r) = gold_ngrams.get(ngram) {
                counts[ngram.len() - 1] += count.min(r);
            }
        }
    }
    compute(counts, totals, sys_len, ref_len)
}

/// The tokens BLEU counts, space-separated: trailing whitespace stripped (as sacrebleu does
/// before tokenizing), then mteval-v13a's tokenizer (`Tokenizer13a`): `<skipped>` and
/// hyphenated line breaks removed, four HTML entities unescaped, ASCII punctuation split off
/// except `'`, and `.`, `,` or `-` kept inside numbers.
pub fn tokenize_13a(line: &str) -> String {
    let mut line =
        text::rstrip(line).replace("<skipped>", "").replace("-\n", "").replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let chars: Vec<char> = format!(" {line} ").chars().collect();
    // ([\{-\~\[-\` -\&\(-\+\:-\@\/]) → " \1 "
    let mut spaced = Vec::with_capacity(chars.len() * 2);
    for c in chars {
        if matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/') {
            spaced.extend([' ', c, ' ']);
        } else {
            spaced.push(c);
        }
    }
    let is_digit = |c: char| c.is_ascii_digit();
    let is_dot_comma = |c: char| c == '.' || c == ',';
    // ([^0-9])([\.,]) → "\1 \2 "
    let s = substitute_pairs(&spaced, |c| !is_digit(c), is_dot_comma, |a, b| vec![a, ' ', b, ' ']);
    // ([\.,])([^0-9]) → " \1 \2"
    let s = substitute_pairs(&s, is_dot_comma, |c| !is_digit(c), |a, b| vec![' ', a, ' ', b]);
    // ([0-9])(-) → "\1 \2 "
    let s = substitute_pairs(&s, is_digit, |c| c == '-', |a, b| vec![a, ' ', b, ' ']);
    text::collapse(&s.into_iter().collect::<String>())
}

/// BLEU from its sufficient statistics: sacrebleu's `compute_bleu` with `exp` smoothing (an
/// order without matches gets 100 / (2^k × total), k counting such orders so far), stopping at
/// the first order without n-grams (whose precision stays 0, and with it the score).
fn compute(counts: [u64; ORDER], totals: [u64; ORDER], sys_len: u64, ref_len: u64) -> Bleu {
    let bp = if sys_len < ref_len {
        if sys_len > 0 { (1.0 - ref_len as f64 / sys_len as f64).exp() } else { 0.0 }
    } else {
        1.0
    };
    let mut precisions = [0.0; ORDER];
    let done = |score, precisions| Bleu { score, counts, totals, precisions, bp, sys_len, ref_len };
    if counts.iter().all(|&c| c == 0) {
        return done(0.0, precisions);
    }
    let mut smooth = 1.0;
    for n in 0..ORDER {
        if totals[n] == 0 {
            break;
        }
        precisions[n] = if counts[n] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * totals[n] as f64)
        } else {
            100.0 * counts[n] as f64 / totals[n] as f64
        };
    }
    // sacrebleu's `my_log` floors log(0) at -9999999999, which makes the score 0.
    let logs: f64 =
        precisions.iter().map(|&p| if p == 0.0 { -9_999_999_999.0 } else { p.ln() }).sum();
    done(bp * (logs / ORDER as f64).exp(), precisions)
}

/// Every n-gram of orders 1…4 with its count.
fn ngrams<'a, 'b>(tokens: &'b [&'a str]) -> HashMap<&'b [&'a str], u64> {
    let mut out = HashMap::new();
    for n in 1..=ORDER {
        for w in tokens.windows(n) {
            *out.entry(w).or_default() += 1;
        }
    }
    out
}

/// Python's `re.sub` of a two-character pattern `(A)(B)`: matches never overlap, and the scan
/// resumes after each replaced pair.
fn substitute_pairs(
    chars: &[char],
    first: impl Fn(char) -> bool,
    second: impl Fn(char) -> bool,
    replace: impl Fn(char, char) -> Vec<char>,
) -> Vec<char> {
    let mut out = Vec::with_capacity(chars.len() + chars.len() / 2);
    let mut i = 0;
    while i < chars.len() {
        if i + 1 < chars.len() && first(chars[i]) && second(chars[i + 1]) {
            out.extend(replace(chars[i], chars[i + 1]));
            i += 2;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizes_like_13a() {
        assert_eq!(
            tokenize_13a("Hello, world. 1,000.5 costs 3-4!"),
            "Hello , world . 1,000.5 costs 3 - 4 !"
        );
        assert_eq!(tokenize_13a("a.. b"), "a . . b");
        assert_eq!(tokenize_13a("one-\ntwo &amp;lt; x\n"), "onetwo < x");
        assert_eq!(tokenize_13a("it's e.g."), "it's e . g .");
    }

    #[test]
    fn perfect_and_empty() {
        let b = corpus_bleu(&["the cat sat on the mat"], &["the cat sat on the mat"]);
        assert!((b.score - 100.0).abs() < 1e-9);
        let b = corpus_bleu(&[""], &["the cat"]);
        assert_eq!((b.score, b.bp, b.sys_len, b.ref_len), (0.0, 0.0, 0, 2));
        assert_eq!(corpus_bleu(&[], &[]).bp, 1.0);
    }
}
