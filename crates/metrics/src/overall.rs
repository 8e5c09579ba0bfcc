//! The length checks and the PRD's overall score.

use api::eval::{Bleu, Gate, LengthBand, Metrics, Overall};

/// Prediction tokens over reference tokens, BLEU's 13a tokens (`sys_len / ref_len`); 0 when the
/// references have no tokens (as sacrebleu's `ratio`).
pub fn length_ratio(bleu: &Bleu) -> f64 {
    if bleu.ref_len == 0 { 0.0 } else { bleu.sys_len as f64 / bleu.ref_len as f64 }
}

/// The PRD's bands: below 0.7, [0.7, 0.9), [0.9, 1.1], (1.1, 1.3], above 1.3 (the ideal band
/// closed at both ends).
pub fn length_band(ratio: f64) -> LengthBand {
    if ratio < 0.7 {
        LengthBand::TooShort
    } else if ratio < 0.9 {
        LengthBand::Short
    } else if ratio <= 1.1 {
        LengthBand::Ideal
    } else if ratio <= 1.3 {
        LengthBand::Long
    } else {
        LengthBand::TooLong
    }
}

/// Length appropriateness (0–100): 100 inside 0.9–1.1, falling linearly to 0 at 0.5 and 1.5.
pub fn length_score(ratio: f64) -> f64 {
    if (0.9..=1.1).contains(&ratio) {
        100.0
    } else if ratio < 0.9 {
        ((ratio - 0.5) / 0.4 * 100.0).max(0.0)
    } else {
        ((1.5 - ratio) / 0.4 * 100.0).max(0.0)
    }
}

/// A judge's 1–5 average on 0–100 ((avg − 1) / 4 × 100, clamped).
pub fn judge_score(average: f64) -> f64 {
    ((average - 1.0) / 4.0 * 100.0).clamp(0.0, 100.0)
}

/// The PRD's overall score: accuracy × 0.4 + judge × 0.4 + length × 0.2, each 0–100, where
/// accuracy is the label accuracy when the outputs are labels, else token F1. Without a judge
/// its weight goes to the other two in proportion (0.4/0.6 and 0.2/0.6).
pub fn overall(metrics: &Metrics, judge_average: Option<f64>) -> Overall {
    let accuracy = metrics.labels.as_ref().map_or(metrics.f1, |l| l.accuracy) * 100.0;
    let length = length_score(metrics.length_ratio);
    let judge = judge_average.map(judge_score);
    let score = match judge {
        Some(j) => accuracy * 0.4 + j * 0.4 + length * 0.2,
        None => accuracy * (0.4 / 0.6) + length * (0.2 / 0.6),
    };
    Overall { score, accuracy, judge, length, gate: Gate::of(score) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length() {
        assert_eq!(length_score(1.1), 100.0);
        assert!((length_score(0.7) - 50.0).abs() < 1e-9);
        assert!((length_score(1.4) - 25.0).abs() < 1e-9);
        assert_eq!(length_score(3.0), 0.0);
        assert_eq!(length_band(0.0), LengthBand::TooShort);
        assert_eq!(length_band(1.3), LengthBand::Long);
    }

    #[test]
    fn weights() {
        let m = Metrics { f1: 0.5, length_ratio: 1.0, ..Metrics::default() };
        let o = overall(&m, Some(5.0));
        assert!((o.score - 80.0).abs() < 1e-9);
        assert_eq!(o.gate, Gate::Ready);
        let o = overall(&m, None);
        assert!((o.score - 200.0 / 3.0).abs() < 1e-9);
        assert_eq!(o.gate, Gate::Review);
    }
}
