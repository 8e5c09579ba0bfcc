//! Evaluation metrics and arena ratings as pure functions of strings and numbers: SQuAD token
//! scores, corpus BLEU (sacrebleu's), ROUGE (rouge-score's), labels, the length ratio, the
//! PRD's overall score, and Bradley–Terry ratings with bootstrap intervals. No IO; each metric
//! is pinned to the Python package it imitates (`scripts/reference/metrics.py`).

mod bleu;
mod labels;
mod overall;
mod ratings;
mod rouge;
mod squad;
mod text;

use api::eval::{ExampleMetrics, Metrics, Rouge};

pub use bleu::{corpus_bleu, tokenize_13a};
pub use labels::{MAX_CLASSES, MAX_LABEL_WORDS, detect_labels, label_scores};
pub use overall::{judge_score, length_band, length_ratio, length_score, overall};
pub use ratings::{PRIOR_GAMES, SplitMix64, bradley_terry, ratings};
pub use rouge::{RougeScores, rouge, rouge_tokens};
pub use squad::{TokenScores, exact_match, normalize_answer, token_scores};

/// Every automatic metric of `preds[i]` against `refs[i]` (pairs by position; the longer
/// slice's extra items are ignored). `labels`: `Some(true)` declares the outputs labels,
/// `Some(false)` declares them free text, `None` detects ([`detect_labels`]). Per-example
/// scores are averaged with equal weight; BLEU is corpus-level. Perplexity is left `None`: it
/// needs the model.
pub fn score(preds: &[&str], refs: &[&str], labels: Option<bool>) -> Metrics {
    debug_assert_eq!(preds.len(), refs.len(), "predictions and references pair by position");
    let n = preds.len().min(refs.len());
    let (preds, refs) = (&preds[..n], &refs[..n]);
    let mut sums = Sums::default();
    for (pred, reference) in preds.iter().zip(refs) {
        sums.add(pred, reference);
    }
    let mean = |x: f64| if n == 0 { 0.0 } else { x / n as f64 };
    let mean_rouge =
        |r: Rouge| Rouge { precision: mean(r.precision), recall: mean(r.recall), f1: mean(r.f1) };
    let bleu = corpus_bleu(preds, refs);
    let ratio = length_ratio(&bleu);
    let is_labels = labels.unwrap_or_else(|| detect_labels(refs));
    Metrics {
        count: n,
        exact_match: mean(sums.exact),
        precision: mean(sums.precision),
        recall: mean(sums.recall),
        f1: mean(sums.f1),
        bleu,
        rouge1: mean_rouge(sums.rouge1),
        rouge2: mean_rouge(sums.rouge2),
        rouge_l: mean_rouge(sums.rouge_l),
        length_ratio: ratio,
        length_band: length_band(ratio),
        perplexity: None,
        labels: is_labels.then(|| label_scores(preds, refs, labels == Some(true))),
    }
}

/// One example's scores, as the evaluation report shows them beside its outputs.
pub fn example(prediction: &str, reference: &str) -> ExampleMetrics {
    ExampleMetrics {
        exact: exact_match(prediction, reference),
        f1: token_scores(prediction, reference).f1,
        rouge_l: rouge(prediction, reference).rouge_l.f1,
    }
}

/// Running sums of the per-example scores, added in order (as the reference's `sum`).
#[derive(Default)]
struct Sums {
    exact: f64,
    precision: f64,
    recall: f64,
    f1: f64,
    rouge1: Rouge,
    rouge2: Rouge,
    rouge_l: Rouge,
}

impl Sums {
    fn add(&mut self, pred: &str, reference: &str) {
        if exact_match(pred, reference) {
            self.exact += 1.0;
        }
        let t = token_scores(pred, reference);
        self.precision += t.precision;
        self.recall += t.recall;
        self.f1 += t.f1;
        let r = rouge(pred, reference);
        for (sum, x) in [
            (&mut self.rouge1, r.rouge1),
            (&mut self.rouge2, r.rouge2),
            (&mut self.rouge_l, r.rouge_l),
        ] {
            sum.precision += x.precision;
            sum.recall += x.recall;
            sum.f1 += x.f1;
        }
    }
}
