//! `vibeflow score`: the evaluation's metrics over predictions made elsewhere.

use std::path::PathBuf;

use api::eval::Metrics;

use crate::print;

#[derive(clap::Args)]
pub struct ScoreArgs {
    /// The outputs: JSON Lines of {"id": …, "text": …}
    #[arg(long)]
    pub predictions: PathBuf,
    /// The expected outputs, same shape and ids
    #[arg(long)]
    pub references: PathBuf,
    /// The outputs are labels (a class per example): also accuracy and macro-F1 (else
    /// detected from the references)
    #[arg(long)]
    pub labels: bool,
    /// Print the metrics as JSON
    #[arg(long)]
    pub json: bool,
}

/// Runs `score`.
pub fn run(args: ScoreArgs) -> anyhow::Result<()> {
    let m = app::score::score_files(&args.predictions, &args.references, args.labels)?;
    print(args.json, &m, || table(&m))
}

fn table(m: &Metrics) -> String {
    let pct = |x: f64| format!("{:.1} %", x * 100.0);
    let b = &m.bleu;
    let mut rows = vec![
        ("Examples", m.count.to_string()),
        ("Exact match", pct(m.exact_match)),
        (
            "Token F1",
            format!("{} (precision {}, recall {})", pct(m.f1), pct(m.precision), pct(m.recall)),
        ),
        (
            "BLEU",
            format!(
                "{:.2} (n-gram precision {:.1}/{:.1}/{:.1}/{:.1}, brevity penalty {:.3})",
                b.score, b.precisions[0], b.precisions[1], b.precisions[2], b.precisions[3], b.bp
            ),
        ),
        ("ROUGE-1 F1", format!("{:.3}", m.rouge1.f1)),
        ("ROUGE-2 F1", format!("{:.3}", m.rouge2.f1)),
        ("ROUGE-L F1", format!("{:.3}", m.rouge_l.f1)),
        ("Length ratio", format!("{:.2} ({})", m.length_ratio, band(m.length_band))),
    ];
    if let Some(l) = &m.labels {
        let how = if l.declared { "declared" } else { "detected" };
        rows.push(("Label accuracy", format!("{} ({how} labels)", pct(l.accuracy))));
        rows.push(("Macro-F1", format!("{:.3} over {} classes", l.macro_f1, l.classes.len())));
    }
    rows.iter().map(|(k, v)| format!("{k:<15} {v}")).collect::<Vec<_>>().join("\n")
}

fn band(b: api::eval::LengthBand) -> &'static str {
    use api::eval::LengthBand::*;
    match b {
        TooShort => "too short",
        Short => "short",
        Ideal => "ideal",
        Long => "long",
        TooLong => "too long",
    }
}
