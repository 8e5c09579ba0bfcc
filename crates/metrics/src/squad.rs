//! SQuAD's answer normalization and token overlap (the official evaluation script's
//! `normalize_answer` and `f1_score`).

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

use crate::text;

/// Token precision, recall and F1 of one prediction against its reference (0–1).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TokenScores {
    /// Shared tokens over the prediction's tokens.
    pub precision: f64,
    /// Shared tokens over the reference's tokens.
    pub recall: f64,
    /// Their harmonic mean.
    pub f1: f64,
}

/// Lowercase, drop ASCII punctuation (Python's `string.punctuation`), drop the articles a, an,
/// the as whole words, collapse whitespace: SQuAD v1.1's `normalize_answer`, so scores compare
/// with published ones.
pub fn normalize_answer(s: &str) -> String {
    let lower = s.to_lowercase();
    let unpunctuated: String = lower.chars().filter(|c| !c.is_ascii_punctuation()).collect();
    text::collapse(&remove_articles(&unpunctuated))
}

/// Whether the prediction equals the reference once both are normalized.
pub fn exact_match(prediction: &str, reference: &str) -> bool {
    normalize_answer(prediction) == normalize_answer(reference)
}

/// Shared normalized tokens (counted with multiplicity, as `Counter &` does). When either side
/// has no token the SQuAD v2.0 script's rule applies: 1 if both are empty, else 0 (v1.1 gave 0
/// even for two empty answers, which contradicts their exact match).
pub fn token_scores(prediction: &str, reference: &str) -> TokenScores {
    let pred = normalize_answer(prediction);
    let gold = normalize_answer(reference);
    let pred: Vec<&str> = pred.split(' ').filter(|t| !t.is_empty()).collect();
    let gold: Vec<&str> = gold.split(' ').filter(|t| !t.is_empty()).collect();
    if pred.is_empty() || gold.is_empty() {
        let v = if pred == gold { 1.0 } else { 0.0 };
        return TokenScores { precision: v, recall: v, f1: v };
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in &gold {
        *counts.entry(t).or_default() += 1;
    }
    let mut same = 0usize;
    for t in &pred {
        if let Some(c) = counts.get_mut(t)
            && *c > 0
        {
            *c -= 1;
            same += 1;
        }
    }
    if same == 0 {
        return TokenScores::default();
    }
    let precision = same as f64 / pred.len() as f64;
    let recall = same as f64 / gold.len() as f64;
    TokenScores { precision, recall, f1: 2.0 * precision * recall / (precision + recall) }
}

/// Python's `re.sub(r"\b(a|an|the)\b", " ", text)`: a match is a whole run of word characters,
/// and Python's word characters are `str.isalnum()` (letters and numbers by general category)
/// plus `_` — not Unicode's `\w`, which also counts combining marks.
fn remove_articles(s: &str) -> String {
    static WORD: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"[\p{L}\p{N}_]+").expect("constant pattern"));
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for m in WORD.find_iter(s) {
        if matches!(m.as_str(), "a" | "an" | "the") {
            out.push_str(&s[last..m.start()]);
            out.push(' ');
            last = m.end();
        }
    }
    out.push_str(&s[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pred: &str, reference: &str, f1: f64) {
        let got = token_scores(pred, reference).f1;
        assert!((got - f1).abs() < 1e-12, "{pred:?} / {reference:?}: {got} ≠ {f1}");
    }

    #[test]
    fn normalizes_like_squad() {
        assert_eq!(normalize_answer("The  Cat's\tan ANswer!"), "cats answer");
        assert_eq!(normalize_answer("theatre a-ha an_ the_"), "theatre aha");
        // A combining mark is no word character for Python: the article goes, the mark stays.
        assert_eq!(normalize_answer("the\u{301} cat"), "\u{301} cat");
        assert_eq!(normalize_answer("1,000.5"), "10005");
    }

    #[test]
    fn token_f1() {
        check("the cat sat", "a cat sat down", 0.8);
        check("", "", 1.0);
        check("the", "", 1.0);
        check("", "x", 0.0);
        check("cat cat cat", "cat", 0.5);
        check("dog", "cat", 0.0);
    }
}
