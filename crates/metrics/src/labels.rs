//! Outputs that are labels (a class per example): detection, accuracy and macro-F1.

use std::collections::BTreeSet;

use api::eval::LabelScores;

use crate::text;

/// Most words a label has.
pub const MAX_LABEL_WORDS: usize = 3;
/// Most distinct labels a set may have and still count as classification.
pub const MAX_CLASSES: usize = 20;

/// Whether the references look like labels: every one is 1–3 words, and there are at most 20
/// distinct values (after trim and lowercase), fewer than half the examples — so each class
/// repeats on average. Free text rarely repeats; a label set always does.
pub fn detect_labels(refs: &[&str]) -> bool {
    if refs.is_empty() {
        return false;
    }
    let words_ok = refs.iter().all(|r| (1..=MAX_LABEL_WORDS).contains(&text::split(r).count()));
    if !words_ok {
        return false;
    }
    let classes: BTreeSet<String> = refs.iter().map(|r| normalize(r)).collect();
    classes.len() <= MAX_CLASSES && 2 * classes.len() < refs.len()
}

/// Accuracy and macro-F1 of `preds[i]` against `refs[i]`, compared after trim and lowercase.
/// F1 is averaged over the references' classes only (scikit-learn's
/// `f1_score(average="macro", labels=classes)`): a prediction outside them counts as a miss of
/// the true class, and a class never predicted scores 0.
pub fn label_scores(preds: &[&str], refs: &[&str], declared: bool) -> LabelScores {
    let pairs: Vec<(String, String)> =
        preds.iter().zip(refs).map(|(p, r)| (normalize(p), normalize(r))).collect();
    let classes: Vec<String> =
        pairs.iter().map(|(_, r)| r.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    if pairs.is_empty() {
        return LabelScores { accuracy: 0.0, macro_f1: 0.0, classes, declared };
    }
    let right = pairs.iter().filter(|(p, r)| p == r).count();
    let f1_sum: f64 = classes
        .iter()
        .map(|c| {
            let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
            for (p, r) in &pairs {
                match (p == c, r == c) {
                    (true, true) => tp += 1,
                    (true, false) => fp += 1,
                    (false, true) => fn_ += 1,
                    (false, false) => {}
                }
            }
            // Never 0/0: every class occurs in the references.
            2.0 * tp as f64 / (2 * tp + fp + fn_) as f64
        })
        .sum();
    LabelScores {
        accuracy: right as f64 / pairs.len() as f64,
        macro_f1: f1_sum / classes.len() as f64,
        classes,
        declared,
    }
}

fn normalize(label: &str) -> String {
    text::strip(label).to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects() {
        assert!(detect_labels(&["yes", "No ", "yes", "no", "YES"]));
        assert!(!detect_labels(&["yes", "no", "yes", "no"]));
        assert!(!detect_labels(&["a", "", "a", "a", "a"]));
    }

    #[test]
    fn macro_f1_over_reference_classes() {
        let s = label_scores(&["a", "a", "x"], &["a", "b", "b"], false);
        assert_eq!(s.classes, ["a", "b"]);
        assert!((s.accuracy - 1.0 / 3.0).abs() < 1e-12);
        // a: tp 1, fp 1 → 2/3; b: never predicted → 0.
        assert!((s.macro_f1 - 1.0 / 3.0).abs() < 1e-12);
    }
}
