//! The quality report: measures of each row ([`measure`], parallel, no IO) folded into dataset
//! figures, per-row scores with reasons, and the issues worth a fix ([`analyze`]).

use std::collections::HashMap;

pub use api::dataset::{Bucket, Dist, Issue, Language, Report, SplitPlan, TokenStats};
use whatlang::Lang;
use xxhash_rust::xxh3::xxh3_64;

use crate::chat::Conversation;
use crate::thresholds::{self as th, penalty};

/// Token counting with the base model's tokenizer (implemented by the app).
pub trait Tokens: Sync {
    /// Tokens of `text` alone, without special tokens.
    fn count(&self, text: &str) -> usize;
    /// Tokens the chat template adds around a conversation of `messages` messages.
    fn overhead(&self, messages: usize) -> usize;
}

/// What one row measures. Small and `Copy`: one is kept per row, never the text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Tokens of the user messages.
    pub input_tokens: u32,
    /// Tokens of the assistant messages.
    pub output_tokens: u32,
    /// Tokens of the whole rendered conversation (what training sees).
    pub total_tokens: u32,
    /// Hash of the exact conversation.
    pub exact: u64,
    /// Hash of its user and assistant text with case, punctuation and spacing ignored (0 when
    /// there is no such text).
    pub near: u64,
    /// Language, when whatlang is confident.
    pub lang: Option<Lang>,
    /// [`flag`] bits.
    pub flags: u8,
}

/// Bits of [`Measured::flags`].
pub mod flag {
    /// No user text.
    pub const MISSING_INPUT: u8 = 1;
    /// No assistant text.
    pub const MISSING_OUTPUT: u8 = 2;
    /// Replacement characters or mojibake.
    pub const DAMAGED: u8 = 4;
    /// Input or output without a single letter or digit.
    pub const NO_TEXT: u8 = 8;
    /// The language was checked (see [`super::check_language`]).
    pub const LANGUAGE_CHECKED: u8 = 16;
}

/// Whether row `index` (0-based) gets its language checked; `every` when a fix depends on it.
pub fn check_language(index: usize, every: bool) -> bool {
    every || index.is_multiple_of(language_stride(index))
}

/// Every how many rows the language is checked around row `index` (see
/// [`th::LANGUAGE_ALL_ROWS`]): 1 in the first of those rows, then 2, 4, 8… each time the row
/// number doubles. A checked row stands for this many rows in the estimates.
pub fn language_stride(index: usize) -> usize {
    match index / th::LANGUAGE_ALL_ROWS {
        0 => 1,
        k => 2 << k.ilog2(),
    }
}

/// Settings of an analysis.
#[derive(Debug, Clone)]
pub struct Config {
    /// The base model's context length (tokens).
    pub context: usize,
    /// The training cutoff (`max_len`, tokens).
    pub cutoff: usize,
    /// The language the user expects (ISO 639-3, e.g. `eng`); else the dataset's own.
    pub expected_language: Option<String>,
}

/// Language detection: all of whatlang's languages, or a focused set (much cheaper: whatlang's
/// scoring is quadratic in the candidates).
pub struct Languages(whatlang::Detector);

impl Languages {
    /// Every language whatlang knows.
    pub fn all() -> Languages {
        Languages(whatlang::Detector::new())
    }

    /// The twelve most written languages and those `seen` in at least 1 % of the first rows'
    /// reliable detections (rarer ones there are mostly misreadings of names and made-up words).
    pub fn focused(seen: impl IntoIterator<Item = Lang>) -> Languages {
        use Lang::*;
        let mut list = vec![Eng, Cmn, Spa, Hin, Ara, Fra, Rus, Por, Deu, Jpn, Ita, Kor];
        let mut counts: HashMap<Lang, usize> = HashMap::new();
        for l in seen {
            *counts.entry(l).or_default() += 1;
        }
        let total: usize = counts.values().sum();
        let mut extra: Vec<Lang> = counts
            .into_iter()
            .filter(|&(l, n)| n * 100 >= total && !list.contains(&l))
            .map(|(l, _)| l)
            .collect();
        extra.sort_by_key(|l| l.code());
        list.extend(extra);
        Languages(whatlang::Detector::with_allowlist(list))
    }
}

/// Measures one conversation; `line` is its JSONL line ([`Conversation::to_line`]); its
/// language only when `langs` are given.
pub fn measure(
    conv: &Conversation,
    line: &str,
    tokens: &dyn Tokens,
    langs: Option<&Languages>,
) -> Measured {
    let input = conv.text_of("user");
    let output = conv.text_of("assistant");
    let mut total = tokens.overhead(conv.messages.len());
    let (mut input_tokens, mut output_tokens) = (0, 0);
    for m in &conv.messages {
        let n = tokens.count(&m.content);
        total += n;
        match m.role.as_str() {
            "user" => input_tokens += n,
            "assistant" => output_tokens += n,
            _ => {}
        }
    }
    let mut flags = 0;
    if input.trim().is_empty() {
        flags |= flag::MISSING_INPUT;
    }
    if output.trim().is_empty() {
        flags |= flag::MISSING_OUTPUT;
    }
    if conv.messages.iter().any(|m| damaged(&m.content)) {
        flags |= flag::DAMAGED;
    }
    let has_text = |s: &str| s.chars().any(char::is_alphanumeric);
    if flags & (flag::MISSING_INPUT | flag::MISSING_OUTPUT) == 0
        && (!has_text(&input) || !has_text(&output))
    {
        flags |= flag::NO_TEXT;
    }
    let near = crate::near::near_hash(&input, &output);
    if langs.is_some() {
        flags |= flag::LANGUAGE_CHECKED;
    }
    Measured {
        input_tokens: input_tokens as u32,
        output_tokens: output_tokens as u32,
        total_tokens: total as u32,
        exact: xxh3_64(line.as_bytes()),
        near,
        lang: langs.and_then(|l| language(&input, &output, l)),
        flags,
    }
}

/// The quality of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RowQuality {
    /// 0–100.
    pub score: u8,
    /// [`reason`] bits.
    pub reasons: u16,
    /// The 1-based row this one repeats (exactly or nearly), 0 if none.
    pub repeats: u32,
}

/// Bits of [`RowQuality::reasons`].
pub mod reason {
    /// Empty input.
    pub const MISSING_INPUT: u16 = 1;
    /// Empty output.
    pub const MISSING_OUTPUT: u16 = 2;
    /// Same as an earlier row.
    pub const DUPLICATE: u16 = 4;
    /// Same as an earlier row but for case, punctuation and spacing.
    pub const NEAR_DUPLICATE: u16 = 8;
    /// Replacement characters or mojibake.
    pub const ENCODING: u16 = 16;
    /// No letter or digit in the input or the output.
    pub const NO_TEXT: u16 = 32;
    /// Longer than the cutoff.
    pub const TRUNCATED: u16 = 64;
    /// Not the dataset's language.
    pub const LANGUAGE: u16 = 128;
    /// Input/output ratio beyond 10:1.
    pub const IMBALANCE: u16 = 256;
}

/// 80/20, or 90/10 above [`th::LARGE_DATASET_ROWS`]; at least one row each side when there are
/// two or more.
pub fn recommended_split(rows: usize) -> SplitPlan {
    let f = if rows > th::LARGE_DATASET_ROWS { th::TEST_FRACTION_LARGE } else { th::TEST_FRACTION };
    split_with(rows, f)
}

/// `fraction` of `rows` held out (rounded; at least one each side when there are two).
pub fn split_with(rows: usize, fraction: f64) -> SplitPlan {
    let test =
        if rows < 2 { 0 } else { ((rows as f64 * fraction).round() as usize).clamp(1, rows - 1) };
    SplitPlan { test_fraction: fraction, train: rows - test, test }
}

/// Exact and near duplicates, found row by row in file order: a row repeats the first one with
/// its text (exact), else the first one with its normalized text (near). The import finds them
/// as the rows are measured, while later rows still are (at the end, on 8–16 threads, it took
/// ~6–16 % of the import).
#[derive(Default)]
pub struct Duplicates {
    exact: rustc_hash::FxHashMap<u64, u32>,
    near: rustc_hash::FxHashMap<u64, u32>,
    /// Per row: the reason bit ([`reason::DUPLICATE`], [`reason::NEAR_DUPLICATE`] or 0) and the
    /// row (1-based) it repeats.
    found: Vec<(u16, u32)>,
}

impl Duplicates {
    /// Room for `rows` more rows. The keys are hashes already; sized up front, as growing
    /// rehashes them all (~30 % of the analysis).
    pub fn reserve(&mut self, rows: usize) {
        self.exact.reserve(rows);
        self.near.reserve(rows);
        self.found.reserve(rows);
    }

    /// The next rows of the file.
    pub fn add(&mut self, rows: &[Measured]) {
        use std::collections::hash_map::Entry;
        for r in rows {
            let index = self.found.len() as u32 + 1;
            let found = match self.exact.entry(r.exact) {
                Entry::Occupied(first) => (reason::DUPLICATE, *first.get()),
                Entry::Vacant(slot) => {
                    slot.insert(index);
                    match r.near {
                        // No words to compare.
                        0 => (0, 0),
                        near => match self.near.entry(near) {
                            Entry::Occupied(first) => (reason::NEAR_DUPLICATE, *first.get()),
                            Entry::Vacant(slot) => {
                                slot.insert(index);
                                (0, 0)
                            }
                        },
                    }
                }
            };
            self.found.push(found);
        }
    }
}

/// Folds the measures of all rows (in order) into per-row quality and the report.
pub fn analyze(rows: &[Measured], cfg: &Config) -> (Vec<RowQuality>, Report) {
    let mut duplicates = Duplicates::default();
    duplicates.reserve(rows.len());
    duplicates.add(rows);
    analyze_found(rows, cfg, &duplicates)
}

/// [`analyze`] with the rows' duplicates found already (by [`Duplicates::add`], for `rows`).
pub fn analyze_found(
    rows: &[Measured],
    cfg: &Config,
    duplicates: &Duplicates,
) -> (Vec<RowQuality>, Report) {
    let n = rows.len();
    assert_eq!(duplicates.found.len(), n, "duplicates were looked for in other rows");
    // Language: the expected one, else the one most reliable detections agree on.
    let mut langs: HashMap<Lang, usize> = HashMap::new();
    for r in rows {
        if let Some(l) = r.lang {
            *langs.entry(l).or_default() += 1;
        }
    }
    let reliable: usize = langs.values().sum();
    let top = langs.iter().max_by_key(|(l, c)| (**c, l.code())).map(|(l, c)| (*l, *c));
    let expected = cfg.expected_language.as_deref().and_then(Lang::from_code);
    let dataset_lang = expected.or_else(|| {
        top.filter(|(_, c)| *c as f64 >= th::DOMINANT_LANGUAGE_SHARE * reliable as f64)
            .map(|(l, _)| l)
    });

    let mut quality = Vec::with_capacity(n);
    for (r, &(repeat, first)) in rows.iter().zip(&duplicates.found) {
        let mut q = RowQuality { score: 100, reasons: 0, repeats: 0 };
        let mut hit = |bit: u16, cost: u8| {
            q.reasons |= bit;
            q.score = q.score.saturating_sub(cost);
        };
        if r.flags & flag::MISSING_INPUT != 0 {
            hit(reason::MISSING_INPUT, 100);
        }
        if r.flags & flag::MISSING_OUTPUT != 0 {
            hit(reason::MISSING_OUTPUT, 100);
        }
        if r.flags & flag::DAMAGED != 0 {
            hit(reason::ENCODING, penalty::ENCODING);
        }
        if r.flags & flag::NO_TEXT != 0 {
            hit(reason::NO_TEXT, penalty::NO_TEXT);
        }
        if r.total_tokens as usize > cfg.cutoff {
            hit(reason::TRUNCATED, penalty::TRUNCATED);
        }
        if let (Some(l), Some(d)) = (r.lang, dataset_lang)
            && l != d
        {
            hit(reason::LANGUAGE, penalty::LANGUAGE);
        }
        if imbalanced(r) {
            hit(reason::IMBALANCE, penalty::IMBALANCE);
        }
        match repeat {
            reason::DUPLICATE => hit(reason::DUPLICATE, penalty::DUPLICATE),
            reason::NEAR_DUPLICATE => hit(reason::NEAR_DUPLICATE, penalty::NEAR_DUPLICATE),
            _ => {}
        }
        q.repeats = first;
        quality.push(q);
    }

    let count = |bit: u16| quality.iter().filter(|q| q.reasons & bit != 0).count();
    let dist = |f: &dyn Fn(&Measured) -> u32| distribution(rows.iter().map(f).collect());
    let totals: Vec<u32> = rows.iter().map(|r| r.total_tokens).collect();
    let tokens = TokenStats {
        input: dist(&|r| r.input_tokens),
        output: dist(&|r| r.output_tokens),
        total: dist(&|r| r.total_tokens),
        histogram: histogram(&totals),
        context: cfg.context,
        over_context: totals.iter().filter(|&&t| t as usize > cfg.context).count(),
        cutoff: cfg.cutoff,
        over_cutoff: count(reason::TRUNCATED),
    };
    let language = dataset_lang.map(|l| Language {
        code: l.code().to_string(),
        name: l.eng_name().to_string(),
        share: if reliable > 0 {
            langs.get(&l).copied().unwrap_or(0) as f64 / reliable as f64
        } else {
            0.0
        },
    });
    let mean_score =
        if n > 0 { quality.iter().map(|q| q.score as f64).sum::<f64>() / n as f64 } else { 0.0 };
    let mut report = Report {
        rows: n,
        missing_input: count(reason::MISSING_INPUT),
        missing_output: count(reason::MISSING_OUTPUT),
        duplicates: count(reason::DUPLICATE),
        near_duplicates: count(reason::NEAR_DUPLICATE),
        encoding_damaged: count(reason::ENCODING),
        no_text: count(reason::NO_TEXT),
        imbalanced: count(reason::IMBALANCE),
        tokens,
        language,
        language_mismatches: count(reason::LANGUAGE),
        language_checked: rows.iter().filter(|r| r.flags & flag::LANGUAGE_CHECKED != 0).count(),
        mean_score,
        low_score_rows: quality.iter().filter(|q| q.score < th::LOW_SCORE).count(),
        score_histogram: score_histogram(quality.iter().map(|q| q.score)),
        split: recommended_split(n),
        issues: Vec::new(),
    };
    // Rows in another language, estimated from the sampled rows when not all were checked.
    let mismatches: usize = (quality.iter().enumerate())
        .filter(|(_, q)| q.reasons & reason::LANGUAGE != 0)
        .map(|(i, _)| if report.language_checked < n { language_stride(i) } else { 1 })
        .sum();
    report.issues = issues(
        &report,
        mismatches,
        quality
            .iter()
            .filter(|q| q.reasons & (reason::MISSING_INPUT | reason::MISSING_OUTPUT) != 0)
            .count(),
    );
    (quality, report)
}

/// Reasons of one row, for people.
pub fn reasons(m: &Measured, q: &RowQuality, report: &Report) -> Vec<String> {
    let mut out = Vec::new();
    let has = |bit| q.reasons & bit != 0;
    if has(reason::MISSING_INPUT) {
        out.push("missing input".to_string());
    }
    if has(reason::MISSING_OUTPUT) {
        out.push("missing output".to_string());
    }
    if has(reason::DUPLICATE) {
        out.push(format!("duplicate of row {}", q.repeats));
    }
    if has(reason::NEAR_DUPLICATE) {
        out.push(format!("near-duplicate of row {}", q.repeats));
    }
    if has(reason::ENCODING) {
        out.push("encoding damage (replacement characters or mojibake)".into());
    }
    if has(reason::NO_TEXT) {
        out.push("no letters or digits in the input or output".into());
    }
    if has(reason::TRUNCATED) {
        out.push(format!(
            "{} tokens: longer than the cutoff ({}), the end is cut",
            m.total_tokens, report.tokens.cutoff
        ));
    }
    if has(reason::LANGUAGE) {
        let lang = m.lang.map(|l| l.eng_name()).unwrap_or("?");
        let dataset = report.language.as_ref().map_or("?", |l| l.name.as_str());
        out.push(format!("in {lang}, the dataset is in {dataset}"));
    }
    if has(reason::IMBALANCE) {
        out.push(format!(
            "input {} tokens vs output {}: beyond {}:1",
            m.input_tokens,
            m.output_tokens,
            th::IMBALANCE_RATIO
        ));
    }
    out
}

fn imbalanced(r: &Measured) -> bool {
    let (i, o) = (r.input_tokens as f64, r.output_tokens as f64);
    i > 0.0 && o > 0.0 && (i / o > th::IMBALANCE_RATIO || o / i > th::IMBALANCE_RATIO)
}

fn issues(r: &Report, mismatches: usize, missing: usize) -> Vec<Issue> {
    let pct = |k: usize| 100.0 * k as f64 / r.rows.max(1) as f64;
    let mut out = Vec::new();
    let mut add = |kind: &str, severity: &str, rows: usize, message: String, fix: Option<&str>| {
        out.push(Issue {
            kind: kind.into(),
            severity: severity.into(),
            rows,
            message,
            fix: fix.map(str::to_string),
        })
    };
    if r.rows < th::FEW_ROWS {
        add(
            "size",
            "warning",
            r.rows,
            format!(
                "only {} rows: the model will likely memorise them (overfitting); aim for {} or more",
                r.rows,
                th::FEW_ROWS
            ),
            None,
        );
    } else if r.rows > th::MANY_ROWS {
        add(
            "size",
            "warning",
            r.rows,
            format!("{} rows: training on all of them takes long; consider a sample", r.rows),
            None,
        );
    }
    if missing > 0 {
        add(
            "missing",
            "warning",
            missing,
            format!("{missing} rows ({:.1} %) have an empty input or output", pct(missing)),
            Some("--drop-missing"),
        );
    }
    if r.duplicates > 0 {
        add(
            "duplicates",
            "warning",
            r.duplicates,
            format!(
                "{} rows ({:.1} %) repeat an earlier row exactly",
                r.duplicates,
                pct(r.duplicates)
            ),
            Some("--drop-duplicates"),
        );
    }
    if r.near_duplicates > 0 {
        add(
            "near_duplicates",
            "warning",
            r.near_duplicates,
            format!(
                "{} rows ({:.1} %) repeat an earlier row but for case, punctuation or spacing",
                r.near_duplicates,
                pct(r.near_duplicates)
            ),
            Some("--drop-near-duplicates"),
        );
    }
    if r.encoding_damaged > 0 {
        add(
            "encoding",
            "warning",
            r.encoding_damaged,
            format!(
                "{} rows ({:.1} %) show encoding damage (� or mojibake such as 'Ã©')",
                r.encoding_damaged,
                pct(r.encoding_damaged)
            ),
            Some("--min-score 60"),
        );
    }
    if r.no_text > 0 {
        add(
            "no_text",
            "warning",
            r.no_text,
            format!("{} rows have an input or output without a letter or digit", r.no_text),
            Some("--min-score 60"),
        );
    }
    if r.tokens.over_cutoff > 0 {
        add(
            "too_long",
            "warning",
            r.tokens.over_cutoff,
            format!(
                "{} rows ({:.1} %) are longer than the cutoff of {} tokens and would be cut; {} exceed the model's context ({})",
                r.tokens.over_cutoff,
                pct(r.tokens.over_cutoff),
                r.tokens.cutoff,
                r.tokens.over_context,
                r.tokens.context
            ),
            Some(&format!("--max-tokens {}", r.tokens.cutoff)),
        );
    }
    if r.language_mismatches > 0 {
        let lang = r.language.as_ref().map_or("the dataset's", |l| l.name.as_str());
        let message = if r.language_checked < r.rows {
            format!(
                "{} of the {} rows checked are not in {lang} (about {mismatches} in all; a fix by language checks every row)",
                r.language_mismatches, r.language_checked
            )
        } else {
            format!("{} rows are not in {lang}", r.language_mismatches)
        };
        let fix = r.language.as_ref().map(|l| format!("--language {}", l.code));
        add("language", "warning", r.language_mismatches, message, fix.as_deref());
    }
    if r.imbalanced > 0 {
        add(
            "imbalance",
            "info",
            r.imbalanced,
            format!(
                "{} rows ({:.1} %) have an input/output length ratio beyond {}:1 (normal for classification; review otherwise)",
                r.imbalanced,
                pct(r.imbalanced),
                th::IMBALANCE_RATIO
            ),
            None,
        );
    }
    out
}

/// Mean, p50, p95 and max of `values` (the percentiles as in the sorted values, found by
/// selection: no full sort).
fn distribution(mut values: Vec<u32>) -> Dist {
    let Some(&max) = values.iter().max() else { return Dist::default() };
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64;
    let at = |p: f64| ((values.len() - 1) as f64 * p).round() as usize;
    let (i50, i95) = (at(0.5), at(0.95));
    let (below, &mut p95, _) = values.select_nth_unstable(i95);
    let p50 = if i50 == i95 { p95 } else { *below.select_nth_unstable(i50).1 };
    Dist { mean, p50, p95, max }
}

/// Buckets `[0, 32)`, `[32, 64)`, `[64, 128)`… up to the largest value.
fn histogram(values: &[u32]) -> Vec<Bucket> {
    let Some(&max) = values.iter().max() else { return Vec::new() };
    let mut buckets = vec![Bucket { from: 0, to: 32, count: 0 }];
    while buckets.last().is_some_and(|b| b.to <= max) {
        let to = buckets.last().map_or(32, |b| b.to);
        buckets.push(Bucket { from: to, to: to.saturating_mul(2), count: 0 });
    }
    for &v in values {
        let i = if v < 32 { 0 } else { (31 - v.leading_zeros()) as usize - 4 };
        let last = buckets.len() - 1;
        buckets[i.min(last)].count += 1;
    }
    buckets
}

/// U+FFFD, or UTF-8 read as Latin-1/cp1252: `Ã©`, `â€™`, `Â ` and friends.
fn damaged(s: &str) -> bool {
    if s.is_ascii() {
        return false;
    }
    if s.contains('\u{FFFD}') {
        return true;
    }
    // Every pattern below starts with Ã, Â or â: UTF-8 0xC3 0x83, 0xC3 0x82, 0xC3 0xA2.
    if !s.as_bytes().contains(&0xC3) {
        return false;
    }
    let mut prev = '\0';
    for c in s.chars() {
        if matches!(prev, 'Ã' | 'Â') && ('\u{80}'..='\u{BF}').contains(&c) {
            return true;
        }
        if matches!(prev, 'Ã' | 'Â' | 'â') && "€œ™ž¦©®¢¡§¨ª«¬".contains(c) {
            return true;
        }
        prev = c;
    }
    false
}

/// The language of a row when whatlang is sure (on at most a few hundred characters).
fn language(input: &str, output: &str, langs: &Languages) -> Option<Lang> {
    let mut sample = String::with_capacity(th::LANGUAGE_SAMPLE_CHARS * 4);
    for part in [output, input] {
        for c in part.chars() {
            if sample.len() >= th::LANGUAGE_SAMPLE_CHARS {
                break;
            }
            sample.push(c);
        }
        sample.push(' ');
    }
    let info = langs.0.detect(&sample)?;
    info.is_reliable().then_some(info.lang())
}

/// Rows by score in ten buckets of ten points; 100 counts in the last.
fn score_histogram(scores: impl Iterator<Item = u8>) -> Vec<Bucket> {
    let mut counts = [0usize; 10];
    for s in scores {
        counts[(s as usize / 10).min(9)] += 1;
    }
    (0..10u32)
        .map(|i| Bucket {
            from: i * 10,
            to: if i == 9 { 101 } else { i * 10 + 10 },
            count: counts[i as usize],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mojibake() {
        assert!(damaged("cafÃ© au lait"));
        assert!(damaged("it\u{e2}\u{20ac}\u{2122}s"));
        assert!(damaged("bad \u{FFFD} byte"));
        assert!(!damaged("café, naïve, Ärger, Ölkanne"));
        assert!(!damaged("Ã alone"));
    }

    /// Selection gives the sorted values' percentiles.
    #[test]
    fn distribution_is_that_of_the_sorted_values() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(12345);
        for len in [1usize, 2, 3, 19, 20, 21, 100, 1001] {
            let v: Vec<u32> = (0..len).map(|_| rng.random_range(0..50)).collect();
            let mut sorted = v.clone();
            sorted.sort_unstable();
            let at = |p: f64| sorted[((len - 1) as f64 * p).round() as usize];
            let d = distribution(v);
            assert_eq!((d.p50, d.p95, d.max), (at(0.5), at(0.95), sorted[len - 1]), "{len}");
            let mean = sorted.iter().map(|&x| x as f64).sum::<f64>() / len as f64;
            assert!((d.mean - mean).abs() < 1e-9);
        }
        assert_eq!(distribution(Vec::new()), Dist::default());
    }

    #[test]
    fn histogram_buckets() {
        let h = histogram(&[0, 31, 32, 100, 129]);
        let counts: Vec<_> = h.iter().map(|b| (b.from, b.to, b.count)).collect();
        assert_eq!(counts, [(0, 32, 2), (32, 64, 1), (64, 128, 1), (128, 256, 1)]);
        let h = score_histogram([0, 9, 10, 49, 50, 99, 100].into_iter());
        let counts: Vec<_> = h.iter().map(|b| b.count).collect();
        assert_eq!(counts, [2, 1, 0, 0, 1, 1, 0, 0, 0, 2]);
        assert_eq!((h[9].from, h[9].to), (90, 101));
    }

    #[test]
    fn split_plans() {
        assert_eq!(recommended_split(300).test, 60);
        assert_eq!(recommended_split(20_000).test, 2_000);
        assert_eq!(recommended_split(2).test, 1);
        assert_eq!(recommended_split(1).test, 0);
    }
}
