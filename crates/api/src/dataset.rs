//! Datasets: the quality report, previews and detection as the data pane and `--json` show them.

use serde::{Deserialize, Serialize};

/// Where a record came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "at", rename_all = "lowercase")]
pub enum Loc {
    /// A 1-based line of a text file (where the record starts).
    Line(u64),
    /// A 1-based element of a JSON array.
    Item(u64),
    /// A 1-based row of a Parquet file.
    Row(u64),
}

impl std::fmt::Display for Loc {
    /// Follows a file name: `:17`, `: item 3`, `: row 9`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Loc::Line(n) => write!(f, ":{n}"),
            Loc::Item(n) => write!(f, ": item {n}"),
            Loc::Row(n) => write!(f, ": row {n}"),
        }
    }
}

/// A column left out of training.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unused {
    /// Column name.
    pub column: String,
    /// What it looks like.
    pub reason: String,
}

/// The report of a dataset (serialized into `--json` and the manifest folder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Rows.
    pub rows: usize,
    /// Rows with an empty input.
    pub missing_input: usize,
    /// Rows with an empty output.
    pub missing_output: usize,
    /// Rows repeating an earlier row exactly.
    pub duplicates: usize,
    /// Rows repeating an earlier row but for case, punctuation and spacing.
    pub near_duplicates: usize,
    /// Rows with replacement characters or mojibake.
    pub encoding_damaged: usize,
    /// Rows whose input or output has no letter or digit.
    pub no_text: usize,
    /// Rows whose input/output token ratio exceeds 10:1 either way.
    pub imbalanced: usize,
    /// Token lengths.
    pub tokens: TokenStats,
    /// The dataset's language, when one dominates.
    pub language: Option<Language>,
    /// Rows in another language (reliable detections among the checked rows).
    pub language_mismatches: usize,
    /// Rows whose language was checked: all of them up to 10,000 rows, then every tenth row
    /// (whatlang costs more than the rest of the report together); a fix that depends on
    /// the language checks every row.
    #[serde(default)]
    pub language_checked: usize,
    /// Mean row score.
    pub mean_score: f64,
    /// Rows scoring below the low-score threshold (50).
    pub low_score_rows: usize,
    /// Rows by score, in ten buckets of ten points (`[0, 10)` … `[90, 100]`; the last holds
    /// 100 too). Empty in reports written before it existed.
    #[serde(default)]
    pub score_histogram: Vec<Bucket>,
    /// The recommended split.
    pub split: SplitPlan,
    /// What deserves attention, most important first, with the fix that addresses it.
    pub issues: Vec<Issue>,
}

/// Distribution of token lengths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenStats {
    /// Of the user text.
    pub input: Dist,
    /// Of the assistant text.
    pub output: Dist,
    /// Of the whole templated conversation.
    pub total: Dist,
    /// Histogram of `total`: buckets of doubling width.
    pub histogram: Vec<Bucket>,
    /// The model's context length.
    pub context: usize,
    /// Rows longer than the context.
    pub over_context: usize,
    /// The training cutoff.
    pub cutoff: usize,
    /// Rows longer than the cutoff (their end is cut in training).
    pub over_cutoff: usize,
}

/// Summary of a distribution.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Dist {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u32,
    /// 95th percentile.
    pub p95: u32,
    /// Largest.
    pub max: u32,
}

/// `count` rows have `from ≤ total tokens < to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Inclusive lower bound.
    pub from: u32,
    /// Exclusive upper bound.
    pub to: u32,
    /// Rows.
    pub count: usize,
}

/// A detected language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Language {
    /// ISO 639-3 code (`eng`).
    pub code: String,
    /// English name.
    pub name: String,
    /// Share of reliably detected rows in it.
    pub share: f64,
}

/// The split the report recommends.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitPlan {
    /// Held-out share.
    pub test_fraction: f64,
    /// Training rows.
    pub train: usize,
    /// Held-out rows.
    pub test: usize,
}

/// One finding of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Issue {
    /// Stable identifier (`missing`, `duplicates`, …) the UI matches on.
    pub kind: String,
    /// `warning` or `info`.
    pub severity: String,
    /// Rows concerned.
    pub rows: usize,
    /// One line for people.
    pub message: String,
    /// The `vibeflow data fix` flag that addresses it, when there is one.
    pub fix: Option<String>,
}

/// One row as the data pane shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowPreview {
    /// 1-based row of the source.
    pub row: usize,
    /// Where it is in the file.
    pub loc: Loc,
    /// User text (shortened).
    pub input: String,
    /// Assistant text (shortened).
    pub output: String,
    /// 0–100.
    pub score: u8,
    /// Why not 100.
    pub reasons: Vec<String>,
    /// Removed by a transform.
    pub dropped: bool,
}

/// What the detection decided, for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionView {
    /// `columns`, `alpaca`, `messages` or `sharegpt`.
    pub shape: String,
    /// `'customer_message' → user, 'support_reply' → assistant`.
    pub mapping: String,
    /// 0–1.
    pub confidence: f64,
    /// The user chose the mapping.
    pub confirmed: bool,
    /// Why, one line per decision.
    pub evidence: Vec<String>,
    /// Columns left out, with reasons.
    pub unused: Vec<Unused>,
}

/// The source file of a dataset version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceView {
    /// File name.
    pub file: String,
    /// `csv`, `json`, `jsonl` or `parquet`.
    pub format: String,
    /// Encoding as read (`UTF-8`, `UTF-16LE (BOM)`, `windows-1252`).
    pub encoding: String,
    /// Converted from a legacy encoding.
    pub converted: bool,
    /// Size in bytes.
    pub bytes: u64,
    /// sha256 of the bytes.
    pub sha256: String,
}

/// The seeded split of a dataset version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitView {
    /// Seed.
    pub seed: u64,
    /// Held-out share.
    pub test_fraction: f64,
    /// Training rows.
    pub train: usize,
    /// Held-out rows.
    pub test: usize,
}

/// One dataset version with its report: the answer of `data import|fix|split|report`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetDetail {
    /// Project slug.
    pub project: String,
    /// Dataset name (`data/<name>.jsonl`).
    pub name: String,
    /// Version (1 for the first import).
    pub version: u32,
    /// False when the request produced exactly the current version (nothing committed).
    pub changed: bool,
    /// The source file.
    pub source: SourceView,
    /// The mapping and why.
    pub detection: DetectionView,
    /// Fixes applied, in order.
    pub transforms: Vec<String>,
    /// Reports, previews, counts and hash of the normalized JSONL (fields inlined in JSON).
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The split.
    pub split: SplitView,
    /// `git` or `objects`.
    pub stored: String,
    /// The commit that recorded this version.
    pub commit: String,
}

/// One row of `data list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetSummary {
    /// Dataset name.
    pub name: String,
    /// Version.
    pub version: u32,
    /// Rows kept.
    pub rows: usize,
    /// sha256 of the normalized JSONL.
    pub sha256: String,
    /// Source file name.
    pub source: String,
    /// Commit id.
    pub commit: String,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    /// The newest version of the project's newest dataset: what `train -p` uses.
    pub current: bool,
}

/// A sample dataset shipped with VibeFlow (offline dataset discovery).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleDataset {
    /// Id to import it by.
    pub id: String,
    /// Title.
    pub title: String,
    /// One sentence.
    pub description: String,
    /// File name.
    pub file: String,
    /// `csv`, `jsonl`, `json`.
    pub format: String,
    /// Rows.
    pub rows: usize,
    /// `chat`, `qa`, `classification`.
    pub task: String,
    /// SPDX license id.
    pub license: String,
}

/// What one import run produced (`data::pipeline::run`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The report of the source rows, before any fix.
    pub report: Report,
    /// The report of the kept rows (equal to `report` when there are no transforms).
    pub result: Report,
    /// Rows kept.
    pub kept: usize,
    /// Rows the transforms removed.
    pub dropped: usize,
    /// The first rows of the source with their scores.
    pub preview: Vec<RowPreview>,
    /// The lowest-scoring rows of the source (score below 100), worst first.
    pub worst: Vec<RowPreview>,
    /// sha256 of the written JSONL.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
}

/// Where the rows of an import come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportSource {
    /// A file on disk.
    File(std::path::PathBuf),
    /// A sample dataset by id (`vibeflow data samples`).
    Sample(String),
}

/// Columns the user chose (CLI `--input --output --system`, the Data pane's mapping form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnMapping {
    /// Input column.
    pub input: String,
    /// Output column.
    pub output: String,
    /// Optional system column.
    pub system: Option<String>,
}

/// How far an import has come, told while it reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportProgress {
    /// Rows read so far.
    pub rows: usize,
    /// Seconds since the import started.
    pub seconds: f64,
}

/// `vibeflow data import`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRequest {
    /// Project slug.
    pub project: String,
    /// The file or sample.
    pub source: ImportSource,
    /// Dataset name; default: from the file name.
    pub name: Option<String>,
    /// The user's mapping; required when detection is less than 60 % sure.
    pub mapping: Option<ColumnMapping>,
    /// Expected language (ISO 639-3); default: the dataset's own.
    pub language: Option<String>,
}

/// What a file looks like before it is imported: its columns and the detected mapping, so the
/// Data pane can ask for the mapping when detection is unsure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inspection {
    /// The file's name.
    pub file: String,
    /// `csv`, `jsonl` …
    pub format: String,
    /// The columns (fields) found.
    pub columns: Vec<String>,
    /// The detected shape and mapping, with confidence and evidence.
    pub detection: DetectionView,
    /// The detected columns, when the shape maps columns (input, output, system).
    pub guess: Option<ColumnMapping>,
    /// Whether detection is too unsure to import without the user's mapping.
    pub needs_mapping: bool,
}

/// Request of `data_fix`: the fixes as the report's issues name them (`--drop-duplicates`,
/// `--max-tokens 512` …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixRequest {
    /// Project slug.
    pub project: String,
    /// Dataset name; default: the current one.
    pub dataset: Option<String>,
    /// The fixes, each as [`Issue::fix`] writes it.
    pub fixes: Vec<String>,
}

/// A project's dataset (`None`: the current one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetRef {
    /// Project slug.
    pub project: String,
    /// Dataset name.
    pub dataset: Option<String>,
}
