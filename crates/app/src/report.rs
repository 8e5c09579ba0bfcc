//! An evaluation as one self-contained HTML file: inline styles, charts drawn with plotters as
//! inline SVG, no script and nothing fetched, so it opens offline and can be mailed.

use std::fmt::Write;

use api::eval::{EvalSide, Evaluation, Preference};
use plotters::prelude::*;

const CANDIDATE: RGBColor = RGBColor(37, 99, 235);
const BASELINE: RGBColor = RGBColor(148, 163, 184);

/// The report's HTML.
pub fn html(e: &Evaluation) -> String {
    let c = &e.candidate;
    let mut h = String::new();
    let title = format!("Evaluation {} of {}", e.id, esc(&c.model.label()));
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>{STYLE}</style></head><body><h1>{title}</h1>\
         <p class=\"meta\">Project {} · dataset {} (held-out rows) · {} examples</p>",
        esc(&e.project),
        esc(&e.dataset),
        e.examples.len()
    );
    let _ = write!(
        h,
        "<section class=\"score\"><div class=\"big\">{:.0}<span>/100</span></div><div><b>{}</b>",
        c.overall.score,
        c.overall.gate.label()
    );
    if let Some(b) = &e.baseline {
        let d = c.overall.score - b.overall.score;
        let _ = write!(
            h,
            "<p>{}: {:.0}/100 · change {}{:.0} points</p>",
            esc(&b.model.label()),
            b.overall.score,
            if d >= 0.0 { "+" } else { "−" },
            d.abs()
        );
    }
    if let Some([w, l, t]) = e.pairwise {
        let _ = write!(
            h,
            "<p>The judge preferred {} in {w} examples, {} in {l}; {t} ties (or the two orders \
             disagreed).</p>",
            esc(&c.model.label()),
            e.baseline.as_ref().map(|b| esc(&b.model.label())).unwrap_or_default()
        );
    }
    h.push_str("</div></section>");
    if let Some(note) = &e.judge_note {
        let _ = write!(h, "<p class=\"note\">{}</p>", esc(note));
    }
    if !e.reasons.is_empty() {
        h.push_str("<h2>Possible reasons</h2><ol>");
        for r in &e.reasons {
            let _ = write!(h, "<li>{}</li>", esc(&r.text));
        }
        h.push_str("</ol>");
    }
    h.push_str("<h2>Scores</h2>");
    h.push_str(&bars(c, e.baseline.as_ref()));
    h.push_str(&table(c, e.baseline.as_ref()));
    if e.baseline.is_some() {
        h.push_str("<h2>Per example</h2><p>Each dot is one held-out example: its token F1 with the baseline (across) and the candidate (up). Below the line: a regression.</p>");
        h.push_str(&scatter(e));
    }
    h.push_str(
        "<h2>Examples</h2><table class=\"ex\"><tr><th>#</th><th>Prompt</th><th>Reference</th>",
    );
    if let Some(b) = &e.baseline {
        let _ = write!(h, "<th>{}</th>", esc(&b.model.label()));
    }
    let _ = write!(h, "<th>{}</th></tr>", esc(&c.model.label()));
    for x in &e.examples {
        let _ = write!(
            h,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td>",
            if x.regression { " class=\"reg\"" } else { "" },
            esc(&x.id),
            esc(&x.prompt),
            esc(&x.reference)
        );
        if let (Some(b), Some(s)) = (&x.baseline, &x.baseline_scores) {
            let _ = write!(h, "<td>{}<small>F1 {:.2}</small></td>", esc(b), s.f1);
        }
        let pref = match x.preference {
            Some(Preference::Candidate) => " · judge prefers this",
            _ => "",
        };
        let _ = write!(
            h,
            "<td>{}<small>F1 {:.2}{pref}</small></td></tr>",
            esc(&x.candidate),
            x.candidate_scores.f1
        );
    }
    h.push_str("</table></body></html>\n");
    h
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;\
padding:0 1em;color:#111827;background:#fff}h1{font-size:1.5em}h2{margin-top:2em}\
.meta{color:#4b5563}.score{display:flex;gap:2em;align-items:center;border:1px solid #e5e7eb;\
border-radius:8px;padding:1em 1.5em}.big{font-size:3em;font-weight:700}.big span{font-size:.4em;\
color:#4b5563}.note{background:#fef3c7;padding:.5em 1em;border-radius:6px}table{border-collapse:\
collapse;width:100%}td,th{border-bottom:1px solid #e5e7eb;padding:.4em;text-align:left;\
vertical-align:top}small{display:block;color:#4b5563}tr.reg{background:#fef2f2}";

/// Each metric as 0–100 with what it means in plain words.
fn rows(s: &EvalSide) -> Vec<(&'static str, Option<f64>, &'static str)> {
    let m = &s.metrics;
    vec![
        ("Exact match", Some(m.exact_match * 100.0), "answers identical to the reference"),
        ("Token F1", Some(m.f1 * 100.0), "words shared with the reference"),
        ("BLEU", Some(m.bleu.score), "phrases shared with the reference"),
        ("ROUGE-1", Some(m.rouge1.f1 * 100.0), "reference words covered"),
        ("ROUGE-2", Some(m.rouge2.f1 * 100.0), "reference word pairs covered"),
        ("ROUGE-L", Some(m.rouge_l.f1 * 100.0), "longest run in the reference's order"),
        (
            "Judge",
            s.judge.as_ref().filter(|j| j.judged > 0).map(|j| (j.average - 1.0) / 4.0 * 100.0),
            "the judge's rubric, 1–5 mapped to 0–100",
        ),
    ]
}

fn table(c: &EvalSide, b: Option<&EvalSide>) -> String {
    let mut h = String::from("<table><tr><th>Metric</th><th>Meaning</th>");
    if let Some(b) = b {
        let _ = write!(h, "<th>{}</th>", esc(&b.model.label()));
    }
    let _ = write!(h, "<th>{}</th></tr>", esc(&c.model.label()));
    let cell = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.1}"));
    let base_rows = b.map(rows);
    for (i, (name, v, meaning)) in rows(c).into_iter().enumerate() {
        let _ = write!(h, "<tr><td>{name}</td><td>{meaning}</td>");
        if let Some(br) = &base_rows {
            let _ = write!(h, "<td>{}</td>", cell(br[i].1));
        }
        let _ = write!(h, "<td>{}</td></tr>", cell(v));
    }
    let m = &c.metrics;
    let _ = write!(
        h,
        "<tr><td>Length</td><td>answers' length over the references' (ideal 0.9–1.1)</td>{}<td>{:.2}</td></tr>",
        b.map(|b| format!("<td>{:.2}</td>", b.metrics.length_ratio)).unwrap_or_default(),
        m.length_ratio
    );
    if let Some(p) = m.perplexity {
        let _ = write!(
            h,
            "<tr><td>Perplexity</td><td>how surprised the model is by the references (lower is better)</td>{}<td>{p:.2}</td></tr>",
            b.and_then(|b| b.metrics.perplexity)
                .map(|p| format!("<td>{p:.2}</td>"))
                .unwrap_or_default()
        );
    }
    if let Some(l) = &m.labels {
        let _ = write!(
            h,
            "<tr><td>Accuracy / macro-F1</td><td>labels right; F1 per class averaged</td>{}<td>{:.1} / {:.1}</td></tr>",
            b.and_then(|b| b.metrics.labels.as_ref())
                .map(|l| format!("<td>{:.1} / {:.1}</td>", l.accuracy * 100.0, l.macro_f1 * 100.0))
                .unwrap_or_default(),
            l.accuracy * 100.0,
            l.macro_f1 * 100.0
        );
    }
    h.push_str("</table>");
    h
}

/// Grouped bars, one group per metric (0–100).
fn bars(c: &EvalSide, b: Option<&EvalSide>) -> String {
    let names: Vec<&str> = rows(c).iter().map(|r| r.0).collect();
    let sides: Vec<(RGBColor, Vec<Option<f64>>, String)> = b
        .map(|b| (BASELINE, rows(b).iter().map(|r| r.1).collect(), b.model.label()))
        .into_iter()
        .chain([(CANDIDATE, rows(c).iter().map(|r| r.1).collect(), c.model.label())])
        .collect();
    let mut out = String::new();
    let drawn = (|| -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
        let root = SVGBackend::with_string(&mut out, (720, 300)).into_drawing_area();
        root.fill(&WHITE)?;
        let n = names.len() as f64;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(0f64..n, 0f64..100f64)?;
        let label = |v: &f64| {
            let i = v.floor() as usize;
            if (v - v.floor() - 0.5).abs() < 0.01 {
                names.get(i).copied().unwrap_or("").into()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .x_labels(names.len() * 2 + 1)
            .x_label_formatter(&label)
            .y_labels(6)
            .light_line_style(TRANSPARENT)
            .bold_line_style(BLACK.mix(0.1))
            .label_style(("sans-serif", 12))
            .draw()?;
        let width = 0.8 / sides.len() as f64;
        for (k, (color, values, name)) in sides.iter().enumerate() {
            let color = *color;
            chart
                .draw_series(values.iter().enumerate().filter_map(|(i, v)| {
                    let v = (*v)?;
                    let x = i as f64 + 0.1 + k as f64 * width;
                    Some(Rectangle::new([(x, 0.0), (x + width * 0.92, v)], color.filled()))
                }))?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.2))
            .label_font(("sans-serif", 12))
            .draw()?;
        root.present()
    })();
    if drawn.is_err() {
        return String::new();
    }
    out
}

/// Per-example token F1, baseline across, candidate up, with the no-change diagonal.
fn scatter(e: &Evaluation) -> String {
    let points: Vec<(f64, f64, bool)> = e
        .examples
        .iter()
        .filter_map(|x| Some((x.baseline_scores?.f1, x.candidate_scores.f1, x.regression)))
        .collect();
    let mut out = String::new();
    let drawn = (|| -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
        let root = SVGBackend::with_string(&mut out, (360, 340)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)?;
        chart
            .configure_mesh()
            .x_desc("baseline F1")
            .y_desc("candidate F1")
            .light_line_style(TRANSPARENT)
            .bold_line_style(BLACK.mix(0.1))
            .label_style(("sans-serif", 12))
            .draw()?;
        chart.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3)))?;
        chart.draw_series(points.iter().map(|&(x, y, reg)| {
            let color = if reg { RGBColor(220, 38, 38) } else { CANDIDATE };
            Circle::new((x, y), 4, color.filled())
        }))?;
        root.present()
    })();
    if drawn.is_err() {
        return String::new();
    }
    out
}

/// Text as HTML.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
