//! `vibeflow traces …`: the requests the local server answered, their usage, and a dataset
//! made of them.

use std::io::Write;

use api::serve::{Trace, TraceFeedback, TraceFilter, TracesToDataset};
use app::App;
use clap::{Args, Subcommand, ValueEnum};

use crate::print;

#[derive(Subcommand)]
pub enum TracesCmd {
    /// Recorded requests, newest first
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// At most this many
        #[arg(long, default_value_t = app::traces::DEFAULT_LIST_LIMIT)]
        limit: usize,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// One request: its body, the answer and its figures
    Show {
        /// Trace id (see `traces list`)
        id: i64,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Usage over the recorded requests: requests, errors, tokens, p50/p95 latency
    Stats {
        #[command(flatten)]
        filter: FilterArgs,
        /// Only the last N seconds
        #[arg(long, value_name = "SECONDS")]
        last: Option<u64>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Rate a trace (good, bad or none) and set its tags
    Rate {
        /// Trace id
        id: i64,
        /// The rating
        rating: Rating,
        /// A tag (repeat for more; replaces the trace's tags)
        #[arg(long)]
        tag: Vec<String>,
    },
    /// Turn traces into a project dataset (each conversation ending with its reply), imported
    /// like a file: report, new version, commit
    Dataset(DatasetArgs),
}

/// Which traces.
#[derive(Args)]
pub struct FilterArgs {
    /// Only this model name (as requests sent it)
    #[arg(long, short)]
    model: Option<String>,
    /// Only answered requests (ok) or refused ones (error)
    #[arg(long)]
    status: Option<Status>,
    /// Only requests or answers containing this text
    #[arg(long)]
    text: Option<String>,
    /// Only traces with this tag
    #[arg(long)]
    tag: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Status {
    /// Status below 400
    Ok,
    /// Status 400 or above
    Error,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Rating {
    /// A good answer
    Good,
    /// A bad answer
    Bad,
    /// Not rated
    None,
}

/// `vibeflow traces dataset`.
#[derive(Args)]
pub struct DatasetArgs {
    /// Project slug
    #[arg(short, long)]
    project: String,
    /// The dataset's name
    #[arg(long, default_value = "traces")]
    name: String,
    /// Trace ids
    #[arg(required = true)]
    ids: Vec<i64>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

impl FilterArgs {
    fn filter(self, limit: usize) -> TraceFilter {
        TraceFilter {
            model: self.model,
            status: self.status.map(|s| match s {
                Status::Ok => "ok".into(),
                Status::Error => "error".into(),
            }),
            text: self.text,
            tag: self.tag,
            since: None,
            limit,
        }
    }
}

/// Runs a `traces` subcommand.
pub fn run(app: &App, cmd: TracesCmd) -> anyhow::Result<()> {
    match cmd {
        TracesCmd::List { filter, limit, json } => {
            let list = app.trace_list(&filter.filter(limit))?;
            print(json, &list, || {
                if list.is_empty() {
                    return "No traces: requests to `vibeflow serve` are recorded here".into();
                }
                let m = list.iter().map(|t| t.model.len()).max().unwrap_or(5).max(5);
                let mut s = format!(
                    "{:>6}  {:19}  {:m$}  {:>6}  {:>8}  {:>6}  REQUEST",
                    "ID", "TIME (UTC)", "MODEL", "STATUS", "LATENCY", "TOKENS"
                );
                for t in &list {
                    s += &format!(
                        "\n{:>6}  {:19}  {:m$}  {:>6}  {:>6}ms  {:>6}  {}",
                        t.id,
                        utc(t.created_at),
                        t.model,
                        t.status,
                        t.latency_ms,
                        t.prompt_tokens + t.completion_tokens,
                        clip(&last_prompt(t), 60)
                    );
                }
                s
            })
        }
        TracesCmd::Show { id, json } => {
            let t = app.trace_show(id)?;
            print(json, &t, || {
                let mut s = format!(
                    "trace {} at {} UTC: {} {} -> {}{}\n",
                    t.id,
                    utc(t.created_at),
                    t.endpoint,
                    t.model,
                    t.status,
                    t.alias.as_ref().map(|a| format!(" (alias {a})")).unwrap_or_default()
                );
                s += &format!(
                    "latency {} ms, first token {} ms, {} prompt + {} generated tokens{}\n",
                    t.latency_ms,
                    t.ttft_ms,
                    t.prompt_tokens,
                    t.completion_tokens,
                    if t.stream { ", streamed" } else { "" }
                );
                if let Some(f) = t.feedback {
                    s += &format!("rated {}\n", if f > 0 { "good" } else { "bad" });
                }
                if !t.tags.is_empty() {
                    s += &format!("tags: {}\n", t.tags.join(", "));
                }
                s += &format!("request:\n{}\nresponse:\n{}", pretty(&t.request), t.response);
                s
            })
        }
        TracesCmd::Stats { filter, last, json } => {
            let mut f = filter.filter(0);
            f.since = last.map(|secs| now().saturating_sub(secs as i64));
            let s = app.trace_stats(&f)?;
            print(json, &s, || {
                format!(
                    "{} requests, {} errors\n{} prompt tokens, {} generated tokens\nlatency p50 {} ms, p95 {} ms; first token p50 {} ms",
                    s.requests,
                    s.errors,
                    s.prompt_tokens,
                    s.completion_tokens,
                    s.p50_ms,
                    s.p95_ms,
                    s.ttft_p50_ms
                )
            })
        }
        TracesCmd::Rate { id, rating, tag } => {
            let feedback = match rating {
                Rating::Good => Some(1),
                Rating::Bad => Some(-1),
                Rating::None => None,
            };
            app.trace_feedback(&TraceFeedback { id, feedback, tags: tag })?;
            out!("Rated trace {id}");
            Ok(())
        }
        TracesCmd::Dataset(d) => {
            let req = TracesToDataset { ids: d.ids, project: d.project, name: d.name };
            let detail = app.traces_to_dataset(&req)?;
            print(d.json, &detail, || {
                format!(
                    "Imported {} traces as dataset {} v{} of {} (commit {})",
                    detail.outcome.kept,
                    detail.name,
                    detail.version,
                    detail.project,
                    &detail.commit[..detail.commit.len().min(10)]
                )
            })
        }
    }
}

/// The last user message of a chat request, or a completion's prompt, else the body.
fn last_prompt(t: &Trace) -> String {
    let body: serde_json::Value = match serde_json::from_str(&t.request) {
        Ok(v) => v,
        Err(_) => return t.request.clone(),
    };
    if let Some(list) = body.get("messages").and_then(|m| m.as_array())
        && let Some(m) = list.iter().rev().find(|m| m["role"] == "user")
    {
        return match &m["content"] {
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        };
    }
    match body.get("prompt") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => t.request.clone(),
    }
}

/// At most `n` characters on one line.
fn clip(s: &str, n: usize) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() <= n {
        return one;
    }
    one.chars().take(n.saturating_sub(1)).collect::<String>() + "…"
}

fn pretty(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| body.to_string())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC; Howard Hinnant's civil-from-days).
fn utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}
