//! `vibeflow data …`: import, report, fix, split and list a project's datasets.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::bail;
use app::App;
use clap::Subcommand;

use crate::print;

#[derive(Subcommand)]
pub enum DataCmd {
    /// Import a file (CSV, TSV, JSON, JSONL, Parquet) or a sample: detect, report, normalize, commit
    Import {
        /// The file (omit with --sample)
        #[arg(required_unless_present = "sample")]
        file: Option<PathBuf>,
        /// A sample dataset instead of a file (see `data samples`)
        #[arg(long, conflicts_with = "file")]
        sample: Option<String>,
        /// Project slug
        #[arg(short, long)]
        project: String,
        /// Dataset name (default: from the file name)
        #[arg(long)]
        name: Option<String>,
        /// Column holding the user's input (confirms the mapping)
        #[arg(long, requires = "output")]
        input: Option<String>,
        /// Column holding the reply to learn
        #[arg(long, requires = "input")]
        output: Option<String>,
        /// Column holding a system prompt
        #[arg(long, requires = "input")]
        system: Option<String>,
        /// Expected language (ISO 639-3, e.g. eng); default: the dataset's own
        #[arg(long)]
        language: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show the quality report of a dataset's current version
    Report {
        /// Project slug
        #[arg(short, long)]
        project: String,
        /// Dataset name (default: the current dataset)
        #[arg(long)]
        name: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Apply fixes (recorded in the manifest; rebuilt from the source): a new version
    Fix {
        /// Project slug
        #[arg(short, long)]
        project: String,
        /// Dataset name (default: the current dataset)
        #[arg(long)]
        name: Option<String>,
        /// Drop rows with an empty input or output
        #[arg(long)]
        drop_missing: bool,
        /// Drop exact duplicates (the first is kept)
        #[arg(long)]
        drop_duplicates: bool,
        /// Drop rows equal but for case, punctuation and spacing (the first is kept)
        #[arg(long)]
        drop_near_duplicates: bool,
        /// Drop rows longer than N tokens
        #[arg(long, value_name = "N")]
        max_tokens: Option<usize>,
        /// Keep only rows in this language (ISO 639-3, e.g. eng)
        #[arg(long, value_name = "CODE")]
        language: Option<String>,
        /// Drop rows scoring below N (0-100)
        #[arg(long, value_name = "N")]
        min_score: Option<u8>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Change the seeded train/test split: a new version
    Split {
        /// Project slug
        #[arg(short, long)]
        project: String,
        /// Dataset name (default: the current dataset)
        #[arg(long)]
        name: Option<String>,
        /// Held-out share (default: 0.2, or 0.1 above 10,000 rows)
        #[arg(long)]
        test_fraction: Option<f64>,
        /// Seed of the split
        #[arg(long)]
        seed: Option<u64>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List a project's dataset versions
    List {
        /// Project slug
        #[arg(short, long)]
        project: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Sample datasets shipped with VibeFlow, to import with `data import --sample ID`
    Samples {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `data` subcommand.
pub fn run(app: &App, cmd: DataCmd) -> anyhow::Result<()> {
    match cmd {
        DataCmd::Import { file, sample, project, name, input, output, system, language, json } => {
            let source = match (file, sample) {
                (_, Some(id)) => app::ImportSource::Sample(id),
                (Some(f), None) => app::ImportSource::File(f),
                (None, None) => bail!("give a FILE or --sample ID"),
            };
            let mapping = match (input, output) {
                (Some(input), Some(output)) => Some(app::ColumnMapping { input, output, system }),
                _ => None,
            };
            let req = app::ImportRequest { project, source, name, mapping, language };
            // A file that takes more than a second says how far it has come, once a second.
            let started = Instant::now();
            let said = Mutex::new(started);
            let on_rows = |rows: usize| {
                let mut said = said.lock().unwrap_or_else(|e| e.into_inner());
                if said.elapsed() >= Duration::from_secs(1) {
                    *said = Instant::now();
                    let secs = started.elapsed().as_secs();
                    err!(
                        "importing: {rows} rows read ({secs} s; Ctrl-C cancels, changing nothing)"
                    );
                }
                true
            };
            let d = app.data_import_watched(&req, &on_rows)?;
            print(json, &d, || describe_dataset(&d))
        }
        DataCmd::Report { project, name, json } => {
            let d = app.data_report(&project, name.as_deref())?;
            print(json, &d, || describe_dataset(&d))
        }
        DataCmd::Fix {
            project,
            name,
            drop_missing,
            drop_duplicates,
            drop_near_duplicates,
            max_tokens,
            language,
            min_score,
            json,
        } => {
            use app::Transform as T;
            let mut fixes = Vec::new();
            if drop_missing {
                fixes.push(T::DropMissing);
            }
            if drop_duplicates {
                fixes.push(T::DropDuplicates);
            }
            if drop_near_duplicates {
                fixes.push(T::DropNearDuplicates);
            }
            if let Some(code) = language {
                fixes.push(T::KeepLanguage { code });
            }
            if let Some(max_tokens) = max_tokens {
                fixes.push(T::DropLong { max_tokens });
            }
            if let Some(min) = min_score {
                fixes.push(T::DropBelowScore { min });
            }
            let d = app.data_fix(&project, name.as_deref(), &fixes)?;
            print(json, &d, || describe_dataset(&d))
        }
        DataCmd::Split { project, name, test_fraction, seed, json } => {
            let d = app.data_split(&project, name.as_deref(), test_fraction, seed)?;
            print(json, &d, || {
                format!(
                    "{} v{}: {} train / {} test (seed {}, {:.0} % held out){}",
                    d.name,
                    d.version,
                    d.split.train,
                    d.split.test,
                    d.split.seed,
                    d.split.test_fraction * 100.0,
                    if d.changed { "" } else { " — unchanged" }
                )
            })
        }
        DataCmd::List { project, json } => {
            let list = app.data_list(&project)?;
            print(json, &list, || {
                if list.is_empty() {
                    return format!("No datasets yet: vibeflow data import FILE -p {project}");
                }
                let mut s =
                    format!("  {:20} {:>4} {:>8}  {:12}  SOURCE", "NAME", "VER", "ROWS", "SHA256");
                for d in &list {
                    s += &format!(
                        "\n{} {:20} {:>4} {:>8}  {:12}  {}",
                        if d.current { "*" } else { " " },
                        d.name,
                        d.version,
                        d.rows,
                        &d.sha256[..12.min(d.sha256.len())],
                        d.source
                    );
                }
                s
            })
        }
        DataCmd::Samples { json } => {
            let list = app.data_samples()?;
            print(json, &list, || {
                let mut s =
                    String::from("Import one with: vibeflow data import --sample ID -p PROJECT\n");
                for d in &list {
                    s += &format!(
                        "\n{:18} {:>4} rows  {:14}  {} ({}, {})",
                        d.id, d.rows, d.task, d.title, d.format, d.license
                    );
                }
                s
            })
        }
    }
}

/// The detected mapping and the quality report, for people.
fn describe_dataset(d: &api::dataset::DatasetDetail) -> String {
    let r = &d.outcome.result;
    let pct = |n: usize| 100.0 * n as f64 / r.rows.max(1) as f64;
    let mut s = format!(
        "Dataset {} v{} of project {}{}\n",
        d.name,
        d.version,
        d.project,
        if d.changed { String::new() } else { " (unchanged: nothing committed)".into() }
    );
    s += &format!(
        "Source: {} ({}, {}{}, {} bytes)\n",
        d.source.file,
        d.source.format,
        d.source.encoding,
        if d.source.converted { ", converted to UTF-8: check the report" } else { "" },
        d.source.bytes
    );
    s += &format!(
        "Mapping: {} ({:.0} % sure{})\n",
        d.detection.mapping,
        d.detection.confidence * 100.0,
        if d.detection.confirmed { ", confirmed" } else { "" }
    );
    for e in &d.detection.evidence {
        s += &format!("  ✓ {e}\n");
    }
    for u in &d.detection.unused {
        s += &format!("  - '{}': {}\n", u.column, u.reason);
    }
    if !d.transforms.is_empty() {
        s += &format!("Fixes: {} ({} rows dropped)\n", d.transforms.join(", "), d.outcome.dropped);
    }
    s += &format!("\nQuality report ({} rows)\n", r.rows);
    if let Some(l) = &r.language {
        let checked = if r.language_checked < r.rows {
            format!(", {} rows checked", r.language_checked)
        } else {
            String::new()
        };
        s += &format!(
            "  Language:    {} ({:.0} % of detected rows{checked})\n",
            l.name,
            l.share * 100.0
        );
    }
    let t = &r.tokens;
    s += &format!(
        "  Tokens:      input mean {:.0} / output mean {:.0}; whole row mean {:.0}, p50 {}, p95 {}, max {}\n",
        t.input.mean, t.output.mean, t.total.mean, t.total.p50, t.total.p95, t.total.max
    );
    s += &format!(
        "  Over cutoff: {} rows ({:.1} %) > {} tokens; {} > context {}\n",
        t.over_cutoff,
        pct(t.over_cutoff),
        t.cutoff,
        t.over_context,
        t.context
    );
    s += "  Histogram:   ";
    s += &t
        .histogram
        .iter()
        .filter(|b| b.count > 0)
        .map(|b| format!("{}-{}: {}", b.from, b.to, b.count))
        .collect::<Vec<_>>()
        .join(", ");
    s += &format!(
        "\n  Mean score:  {:.0}/100 ({} rows below 50)\n  Split:       {} train / {} test (seed {})\n",
        r.mean_score, r.low_score_rows, d.split.train, d.split.test, d.split.seed
    );
    if r.issues.is_empty() {
        s += "  No issues found\n";
    }
    for i in &r.issues {
        let fix = i
            .fix
            .as_ref()
            .map(|f| format!("  → vibeflow data fix -p {} {f}", d.project))
            .unwrap_or_default();
        s += &format!("  ⚠ {}{fix}\n", i.message);
    }
    if !d.outcome.worst.is_empty() {
        s += "\nLowest-scoring rows:\n";
        for p in d.outcome.worst.iter().take(5) {
            s += &format!(
                "  row {:>5} (score {:>3}): {} | {}\n      {}\n",
                p.row,
                p.score,
                short(&p.input),
                short(&p.output),
                p.reasons.join("; ")
            );
        }
    }
    s += &format!(
        "\n{} rows in data/{}.jsonl ({}), commit {}",
        d.outcome.kept,
        d.name,
        if d.stored == "git" { "in git" } else { "in objects/: too large for git" },
        &d.commit[..d.commit.len().min(10)]
    );
    s
}

fn short(s: &str) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() > 50 {
        format!("{}…", one_line.chars().take(49).collect::<String>())
    } else {
        one_line
    }
}
