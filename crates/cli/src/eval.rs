//! `vibeflow eval`, `evals`, `compare`, `ratings` and `prefs`: evaluation and the arena.

use std::io::Write;

use api::chat::{ChatModel, Sampling};
use api::eval::{
    ArenaEvent, ArenaRequest, EvalProgress, EvalRequest, Evaluation, VoteChoice, VoteRequest,
};
use app::App;
use clap::{Args, Subcommand};

use crate::print;

/// `vibeflow eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// Project slug
    #[arg(short, long)]
    project: String,
    /// The run to evaluate (or `base`)
    #[arg(long, value_name = "ID")]
    run: String,
    /// Compare with `base` or another run (`none`: no comparison)
    #[arg(long, value_name = "base|RUN|none", default_value = "base")]
    vs: String,
    /// A judge on the PRD's rubric: `local` (the project's model), an installed model id, or
    /// an endpoint (`NAME` or `NAME:MODEL`, see `keys`)
    #[arg(long, value_name = "REF")]
    judge: Option<String>,
    /// Held-out examples to evaluate (the first N of the test split)
    #[arg(long, default_value_t = app::DEFAULT_EVAL_LIMIT)]
    limit: usize,
    /// Longest answer in tokens
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// The answers are labels (classes): accuracy and macro-F1
    #[arg(long)]
    labels: bool,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// A model reference of a project: `base`, a run id, else an installed model id.
fn model_of(app: &App, project: Option<&str>, name: &str) -> anyhow::Result<ChatModel> {
    if name == "base" && project.is_some() {
        return Ok(ChatModel::Base);
    }
    if let Some(p) = project
        && app.runs(p)?.iter().any(|r| r.id == name)
    {
        return Ok(ChatModel::Run(name.to_string()));
    }
    Ok(ChatModel::Installed(name.to_string()))
}

/// `vibeflow eval`.
pub fn eval(app: &App, a: EvalArgs) -> anyhow::Result<()> {
    let p = Some(a.project.as_str());
    let req = EvalRequest {
        project: a.project.clone(),
        candidate: match a.run.as_str() {
            "base" => ChatModel::Base,
            r => ChatModel::Run(r.to_string()),
        },
        baseline: match a.vs.as_str() {
            "none" => None,
            v => Some(model_of(app, p, v)?),
        },
        judge: a.judge,
        limit: Some(a.limit),
        max_tokens: a.max_tokens,
        labels: a.labels,
    };
    let mut last = String::new();
    let e = app.evaluate(&req, &mut |p| {
        let line = match p {
            EvalProgress::Generating { model, done, total } => {
                format!("generating with {}: {done}/{total}", model.label())
            }
            EvalProgress::Judging { done, total } => format!("judging: {done}/{total}"),
            EvalProgress::Scoring => "scoring".into(),
        };
        if line != last {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{line}\x1b[K");
            last = line;
        }
        true
    })?;
    eprintln!();
    print(a.json, &e, || human(&e))
}

fn human(e: &Evaluation) -> String {
    let c = &e.candidate;
    let mut out = format!(
        "{} on {} ({} held-out examples): {:.0}/100 — {}\n",
        c.model.label(),
        e.dataset,
        e.examples.len(),
        c.overall.score,
        c.overall.gate.label()
    );
    let row = |name: &str, f: &dyn Fn(&api::eval::EvalSide) -> String| {
        let base = e.baseline.as_ref().map(|b| format!("{:>12}", f(b))).unwrap_or_default();
        format!("  {name:<14}{base}{:>12}\n", f(c))
    };
    if let Some(b) = &e.baseline {
        out.push_str(&format!("  {:<14}{:>12}{:>12}\n", "", b.model.label(), c.model.label()));
    }
    out.push_str(&row("overall", &|s| format!("{:.1}", s.overall.score)));
    out.push_str(&row("token F1", &|s| format!("{:.1}", s.metrics.f1 * 100.0)));
    out.push_str(&row("exact match", &|s| format!("{:.1}", s.metrics.exact_match * 100.0)));
    out.push_str(&row("BLEU", &|s| format!("{:.1}", s.metrics.bleu.score)));
    out.push_str(&row("ROUGE-L", &|s| format!("{:.1}", s.metrics.rouge_l.f1 * 100.0)));
    out.push_str(&row("length ratio", &|s| format!("{:.2}", s.metrics.length_ratio)));
    out.push_str(&row("perplexity", &|s| {
        s.metrics.perplexity.map_or("—".into(), |p| format!("{p:.2}"))
    }));
    if e.judge.is_some() {
        out.push_str(&row("judge (1–5)", &|s| {
            s.judge
                .as_ref()
                .filter(|j| j.judged > 0)
                .map_or("—".into(), |j| format!("{:.2}", j.average))
        }));
    }
    out.push_str(&row("tokens/s", &|s| format!("{:.1}", s.tokens_per_second)));
    if let Some([w, l, t]) = e.pairwise {
        out.push_str(&format!("  judge's pairwise verdicts: {w} wins, {l} losses, {t} ties\n"));
    }
    let regressions = e.examples.iter().filter(|x| x.regression).count();
    if e.baseline.is_some() {
        out.push_str(&format!("  {regressions} examples scored below the baseline\n"));
    }
    let failed = e.examples.iter().filter(|x| x.judge_error.is_some()).count();
    if failed > 0 {
        out.push_str(&format!(
            "  the judge's reply did not parse for {failed} examples (not scored)\n"
        ));
    }
    if let Some(n) = &e.judge_note {
        out.push_str(&format!("  note: {n}\n"));
    }
    for (i, r) in e.reasons.iter().enumerate() {
        out.push_str(&format!("  possible reason {}: {}\n", i + 1, r.text));
    }
    out.push_str(&format!("saved as {} (evals/{}.json, report evals/{}.html)", e.id, e.id, e.id));
    out
}

/// `vibeflow evals`.
#[derive(Args)]
pub struct EvalsArgs {
    /// Project slug
    #[arg(short, long)]
    project: String,
    /// Show this evaluation (`eval-N`); without it, list them
    id: Option<String>,
    /// Print the report's path (open it in a browser)
    #[arg(long)]
    report: bool,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// `vibeflow evals`.
pub fn evals(app: &App, a: EvalsArgs) -> anyhow::Result<()> {
    match a.id {
        Some(id) if a.report => {
            let path = app.eval_report(&a.project, &id)?;
            print(a.json, &path.display().to_string(), || path.display().to_string())
        }
        Some(id) => {
            let e = app.eval_show(&a.project, &id)?;
            print(a.json, &e, || human(&e))
        }
        None => {
            let list = app.eval_list(&a.project)?;
            print(a.json, &list, || {
                if list.is_empty() {
                    return format!("no evaluation yet: vibeflow eval -p {} --run RUN", a.project);
                }
                list.iter()
                    .map(|e| {
                        let vs = match (&e.baseline, e.baseline_score) {
                            (Some(b), Some(s)) => format!(" (vs {} {s:.0})", b.label()),
                            _ => String::new(),
                        };
                        format!(
                            "{:<8} {:<10} {:>3.0}/100{vs} {} · {} examples",
                            e.id,
                            e.candidate.label(),
                            e.score,
                            e.gate.label(),
                            e.examples
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
    }
}

/// `vibeflow compare`.
#[derive(Args)]
pub struct CompareArgs {
    /// Project slug (its `base` and runs); without it, installed models only
    #[arg(short, long)]
    project: Option<String>,
    /// 2–4 models, comma-separated: `base`, run ids, installed model ids
    #[arg(long, value_delimiter = ',', required_unless_present = "session")]
    models: Vec<String>,
    /// The message all of them answer at once
    #[arg(long)]
    prompt: String,
    /// Continue this session (from the answer its last vote preferred)
    #[arg(long)]
    session: Option<String>,
    /// Hide the models' names until the vote
    #[arg(long)]
    blind: bool,
    /// Vote: the answer you prefer (1-based panel), `tie` or `bad`
    #[arg(long, value_name = "N|tie|bad")]
    prefer: Option<String>,
    /// Why (with --prefer)
    #[arg(long, requires = "prefer")]
    why: Option<String>,
    /// Longest answer in tokens
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// Sampling temperature (0: greedy)
    #[arg(long, default_value_t = 0.7)]
    temperature: f64,
    /// Print JSON (the turn and its timings)
    #[arg(long)]
    json: bool,
}

/// `vibeflow compare`.
pub fn compare(app: &App, a: CompareArgs) -> anyhow::Result<()> {
    let p = a.project.as_deref();
    let models =
        a.models.iter().map(|m| model_of(app, p, m.trim())).collect::<anyhow::Result<Vec<_>>>()?;
    let choice = a.prefer.as_deref().map(vote_of).transpose()?;
    let req = ArenaRequest {
        project: a.project.clone(),
        session: a.session.clone(),
        models,
        blind: a.blind,
        prompt: a.prompt.clone(),
        sampling: Sampling {
            temperature: a.temperature,
            max_tokens: a.max_tokens,
            ..Sampling::default()
        },
    };
    let playground = app::Playground::new();
    let session = std::sync::Mutex::new(String::new());
    let turn = app.arena_turn(&playground, &req, &|e| {
        if let ArenaEvent::Session { id, .. } = &e {
            *session.lock().unwrap_or_else(|e| e.into_inner()) = id.clone();
        }
        if !a.json
            && let ArenaEvent::Done { panel, answer } = &e
        {
            eprintln!(
                "answer {} done: first token {} ms, {} tokens, {:.1} tokens/s",
                panel + 1,
                answer.first_token_ms,
                answer.tokens,
                answer.tokens_per_second
            );
        }
    })?;
    let id = session.into_inner().unwrap_or_else(|e| e.into_inner());
    let current = app.arena_session(p, &id)?;
    let n = current.turns.len() - 1;
    let after = match choice {
        Some(choice) => Some(app.arena_vote(&VoteRequest {
            project: a.project.clone(),
            session: id.clone(),
            turn: n,
            choice,
            why: a.why.clone(),
        })?),
        None => None,
    };
    let shown = after.as_ref().unwrap_or(&current);
    print(a.json, shown, || {
        let hide = shown.blind && shown.turns[n].vote.is_none();
        let mut out = format!("{} turn {}\n", shown.id, n + 1);
        for (i, ans) in turn.answers.iter().enumerate() {
            let name = if hide { format!("model {}", i + 1) } else { shown.models[i].label() };
            out.push_str(&format!(
                "── {} · {name} · first token {} ms · {} tokens · {:.1} tokens/s\n{}\n",
                i + 1,
                ans.first_token_ms,
                ans.tokens,
                ans.tokens_per_second,
                ans.text.trim()
            ));
        }
        match &shown.turns[n].vote {
            Some(v) => out.push_str(&format!("vote recorded: {}", vote_label(v, shown))),
            None => out.push_str(&format!(
                "vote with: vibeflow compare{} --session {} --prompt … --prefer N|tie|bad, or in the Arena",
                p.map(|p| format!(" -p {p}")).unwrap_or_default(),
                shown.id
            )),
        }
        out
    })
}

fn vote_of(s: &str) -> anyhow::Result<VoteChoice> {
    match s {
        "tie" => Ok(VoteChoice::Tie),
        "bad" | "both-bad" => Ok(VoteChoice::BothBad),
        n => match n.parse::<usize>() {
            Ok(k @ 1..=4) => Ok(VoteChoice::Prefer { panel: k - 1 }),
            _ => anyhow::bail!(
                "--prefer takes an answer's number (1 to 4), `tie` or `bad`, got {s:?}"
            ),
        },
    }
}

fn vote_label(v: &VoteChoice, s: &api::eval::ArenaSession) -> String {
    match v {
        VoteChoice::Prefer { panel } => {
            format!("answer {} ({})", panel + 1, s.models[*panel].label())
        }
        VoteChoice::Tie => "a tie".into(),
        VoteChoice::BothBad => "all bad".into(),
    }
}

/// `vibeflow ratings`.
#[derive(Args)]
pub struct RatingsArgs {
    /// Project slug; without it, every session's votes
    #[arg(short, long)]
    project: Option<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// `vibeflow ratings`.
pub fn ratings(app: &App, a: RatingsArgs) -> anyhow::Result<()> {
    let r = app.arena_ratings(a.project.as_deref())?;
    print(a.json, &r, || {
        if r.ratings.is_empty() {
            return "no votes yet: vote in the Arena or with vibeflow compare --prefer".into();
        }
        let mut out = format!(
            "{} votes\n  {:<28}{:>7}  {:>15}  {:>9}\n",
            r.votes, "model", "Elo", "95 % interval", "win rate"
        );
        for x in &r.ratings {
            out.push_str(&format!(
                "  {:<28}{:>7.0}  {:>6.0} – {:<6.0}  {:>8.0}%  ({}W {}L {}T)\n",
                x.model,
                x.elo,
                x.low,
                x.high,
                x.win_rate * 100.0,
                x.wins,
                x.losses,
                x.ties
            ));
        }
        out.trim_end().to_string()
    })
}

/// `vibeflow prefs`.
#[derive(Subcommand)]
pub enum PrefsCmd {
    /// Write the arena's votes as preference pairs (prompt, chosen, rejected; the JSONL TRL
    /// reads) into the project's prefs/preferences.jsonl and commit it; `train --method dpo`
    /// trains on it
    Export {
        /// Project slug
        #[arg(short, long)]
        project: String,
        /// Also write a copy here
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// `vibeflow prefs`.
pub fn prefs(app: &App, cmd: PrefsCmd) -> anyhow::Result<()> {
    match cmd {
        PrefsCmd::Export { project, out, json } => {
            let x = app.prefs_export(&project, out.as_deref())?;
            print(json, &x, || {
                format!(
                    "{} preference pairs written to {}{}{}",
                    x.pairs,
                    x.path,
                    if x.skipped > 0 {
                        format!(" ({} tied or all-bad votes give no pair)", x.skipped)
                    } else {
                        String::new()
                    },
                    if x.commit.is_none() { " (unchanged since the last export)" } else { "" }
                )
            })
        }
    }
}
