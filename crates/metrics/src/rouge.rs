//! ROUGE-1, ROUGE-2 and ROUGE-L of one example as rouge-score's
//! `RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)` computes them.

use std::collections::HashMap;

use api::eval::Rouge;

/// One example's ROUGE scores.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RougeScores {
    /// Unigram overlap.
    pub rouge1: Rouge,
    /// Bigram overlap.
    pub rouge2: Rouge,
    /// Longest common subsequence.
    pub rouge_l: Rouge,
}

/// ROUGE of a prediction against its reference. Either side without tokens scores 0.
pub fn rouge(prediction: &str, reference: &str) -> RougeScores {
    let pred = rouge_tokens(prediction);
    let gold = rouge_tokens(reference);
    RougeScores {
        rouge1: ngram_overlap(&pred, &gold, 1),
        rouge2: ngram_overlap(&pred, &gold, 2),
        rouge_l: lcs(&pred, &gold),
    }
}

/// rouge-score's default tokenizer: lowercase, then the runs of `[a-z0-9]`. Everything else
/// separates tokens, so text without ASCII letters or digits (CJK, emoji) has no tokens, and
/// accented words break apart ("café" → "caf"); a few non-ASCII letters lowercase to ASCII
/// ("İ" → "i" + a combining dot, the Kelvin sign → "k").
pub fn rouge_tokens(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut token = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            token.push(c);
        } else if !token.is_empty() {
            tokens.push(std::mem::take(&mut token));
        }
    }
    if !token.is_empty() {
        tokens.push(token);
    }
    tokens
}

/// `_score_ngrams`: clipped n-gram matches over the prediction's n-grams (precision) and the
/// reference's (recall), each denominator at least 1.
fn ngram_overlap(pred: &[String], gold: &[String], n: usize) -> Rouge {
    fn count(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
        let mut out = HashMap::new();
        for w in tokens.windows(n) {
            *out.entry(w).or_default() += 1;
        }
        out
    }
    let (p, g) = (count(pred, n), count(gold, n));
    let matched: usize = g.iter().map(|(k, &c)| c.min(p.get(k).copied().unwrap_or(0))).sum();
    let precision = matched as f64 / p.values().sum::<usize>().max(1) as f64;
    let recall = matched as f64 / g.values().sum::<usize>().max(1) as f64;
    scores(precision, recall)
}

/// `_score_lcs`: the longest common subsequence over each side's length.
fn lcs(pred: &[String], gold: &[String]) -> Rouge {
    if pred.is_empty() || gold.is_empty() {
        return Rouge::default();
    }
    let mut row = vec![0usize; pred.len() + 1];
    for g in gold {
        let mut diagonal = 0;
        for (j, p) in pred.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if g == p { diagonal + 1 } else { above.max(row[j]) };
            diagonal = above;
        }
    }
    let length = row[pred.len()] as f64;
    scores(length / pred.len() as f64, length / gold.len() as f64)
}

fn scores(precision: f64, recall: f64) -> Rouge {
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    Rouge { precision, recall, f1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert_eq!(
            rouge_tokens("Café 1,000.5 我 İx \u{212a}"),
            ["caf", "1", "000", "5", "i", "x", "k"]
        );
    }

    #[test]
    fn lcs_and_ngrams() {
        let r = rouge("the cat sat on the mat", "the cat is on the mat");
        assert!((r.rouge_l.f1 - 5.0 / 6.0).abs() < 1e-12);
        assert!((r.rouge2.precision - 3.0 / 5.0).abs() < 1e-12);
        assert_eq!(rouge("", "").rouge1, Rouge::default());
    }
}
