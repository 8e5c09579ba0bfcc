//! `vibeflow`: the command line over the same library the desktop app uses.
//!
//! Glue only: parse arguments, call one `app` function, print. Errors print as one line on stderr
//! with a non-zero exit; a panic, should one ever happen, prints one line too, never a backtrace.
//! Output goes through [`out!`] and [`err!`], which never panic: a closed pipe (`| head`) loses
//! the text, not the work. SIGINT and SIGTERM stop a training run after its current step, with a
//! checkpoint and a recorded state; other commands end at once (they are crash-safe).
//!
//! One module per command group (its arguments and what it prints); this file holds the
//! command tree, the signal handling and the printing helpers they share.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use app::App;
use clap::{Parser, Subcommand};
use serde::Serialize;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `println!` that ignores a closed stdout.
macro_rules! out {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `eprintln!` that ignores a closed stderr.
macro_rules! err {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod alias;
mod assist;
mod bench;
mod cluster;
mod data;
mod eval;
mod export;
mod generate;
mod home;
mod keys;
mod models;
mod project;
mod score;
mod serve;
mod traces;
mod train;

/// Set by SIGINT/SIGTERM while a run trains: it stops after the current step.
pub(crate) static STOP: AtomicBool = AtomicBool::new(false);
/// Whether a run is training (a signal then asks it to stop instead of ending the process).
pub(crate) static TRAINING: AtomicBool = AtomicBool::new(false);

/// Told by the first SIGINT/SIGTERM while `vibeflow serve` runs: the server stops gracefully.
pub(crate) static SERVING: std::sync::OnceLock<std::sync::mpsc::Sender<()>> =
    std::sync::OnceLock::new();

/// The background job `train -p` waits for: a signal asks it to stop.
pub(crate) static JOB: std::sync::OnceLock<(app::Jobs, String)> = std::sync::OnceLock::new();

/// First signal during training: stop after this step; otherwise, or a second time: exit now.
fn on_signal() {
    if TRAINING.load(Ordering::SeqCst) && !STOP.swap(true, Ordering::SeqCst) {
        if let Some((jobs, id)) = JOB.get() {
            jobs.stop(id);
        }
        err!(
            "stopping after the current step, with a checkpoint (press Ctrl-C again to quit at once)"
        );
        return;
    }
    // A server stops gracefully; a second signal (the receiver gone) exits at once.
    if SERVING.get().is_some_and(|tx| tx.send(()).is_ok()) {
        return;
    }
    // 128 + SIGINT, as shells report it.
    std::process::exit(130);
}

#[derive(Parser)]
#[command(name = "vibeflow", version, about = "Fine-tune an open LLM on your own machine, offline")]
struct Cli {
    /// Where models run: cpu, cuda[:N], metal or auto (default: $VIBEFLOW_DEVICE, else auto:
    /// the GPU this build supports, else the CPU)
    #[arg(long, global = true)]
    device: Option<String>,
    /// On a CUDA GPU, run f32 matrix products on TF32 tensor cores (faster, ~1e-3 relative
    /// error per product; PyTorch's allow_tf32)
    #[arg(long, global = true)]
    tf32: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create, list, show and delete projects
    #[command(subcommand)]
    Project(project::ProjectCmd),
    /// Show a project's versions (git commits and tags), newest first
    History(project::HistoryArgs),
    /// What changed in the configuration, datasets and runs between two versions
    Diff(project::DiffArgs),
    /// Restore an earlier version (its datasets and model) as a new commit
    Rollback(project::RollbackArgs),
    /// Installed models
    #[command(subcommand)]
    Models(models::ModelsCmd),
    /// API keys of remote OpenAI-compatible endpoints (kept in the OS keyring)
    #[command(subcommand)]
    Keys(keys::KeysCmd),
    /// Generate a reply from a model (streams text as it comes)
    Generate(generate::GenerateArgs),
    /// Import, inspect, fix and split a project's datasets
    #[command(subcommand)]
    Data(data::DataCmd),
    /// Fine-tune a model: on a project's dataset (-p), or on a chat JSONL file (--data --out)
    Train(train::TrainArgs),
    /// The recommended run for a project's dataset, each setting's reason and the pre-flight
    /// checks; --estimate measures its time and memory here
    Plan(train::PlanArgs),
    /// The brainstorm assistant's recommended run: model, method and settings with their
    /// reasons, what was traded away, warnings, and the questions it still has
    Recommend(assist::RecommendArgs),
    /// Tell or ask the brainstorm assistant something ("I want a support bot", "why not full
    /// fine-tuning?", "what if I had a GPU?"); it keeps what you said for the next message
    Ask(assist::AskArgs),
    /// A project's training runs and their state (interrupted runs can be resumed); `runs
    /// import` brings in an adapter trained elsewhere (LLaMA-Factory, Axolotl, PEFT)
    Runs(train::RunsArgs),
    /// Background jobs of the home (training runs from the app or the CLI) and their state;
    /// with a job id, its log
    Jobs(train::JobsArgs),
    /// Evaluate a run on its dataset's held-out rows against the base (or another run):
    /// metrics, an optional judge, the overall score and its gate; saved and committed as
    /// evals/<id>.json with an HTML report
    Eval(eval::EvalArgs),
    /// A project's evaluations, or one of them (--report: its HTML file)
    Evals(eval::EvalsArgs),
    /// Ask 2–4 models one prompt at the same time (the arena), streamed with their timings;
    /// --prefer votes
    Compare(eval::CompareArgs),
    /// Win rates and Elo-scale Bradley–Terry ratings from the arena's votes
    Ratings(eval::RatingsArgs),
    /// Preference pairs from the arena's votes, for DPO training
    #[command(subcommand)]
    Prefs(eval::PrefsCmd),
    /// Export a finished run: the PEFT adapter, the merged model (Hugging Face layout) or a
    /// GGUF (f16, q8_0, q4_k_m) with an Ollama Modelfile, each with a model card; or hand a
    /// run's data and settings to LLaMA-Factory or Axolotl; recorded in the project's history
    Export(export::ExportArgs),
    /// Score predictions made elsewhere against references (two JSON Lines files of
    /// {"id", "text"}): exact match, token F1, BLEU, ROUGE, length, labels
    Score(score::ScoreArgs),
    /// Check the home for inconsistencies between git, the index and the files
    Doctor(home::DoctorArgs),
    /// Measure speed and memory, optionally against a peer in the same run
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// Model aliases: a model or run with its template and parameters, served by name
    /// (YAML files in the home's aliases/)
    #[command(subcommand)]
    Alias(alias::AliasCmd),
    /// Requests the local server answered: list, inspect, rate, usage, and a dataset of them
    #[command(subcommand)]
    Traces(traces::TracesCmd),
    /// Serve models (aliases, finished runs, installed models) through an OpenAI-compatible
    /// API on this machine until Ctrl-C; `serve key` manages its API key
    Serve(serve::ServeArgs),
    /// Clusters a project's runs can train on (`train -p P --on slurm:NAME`)
    #[command(subcommand)]
    Cluster(cluster::ClusterCmd),
}

fn main() -> ExitCode {
    // SAFETY: first thing in main; no other thread exists yet.
    unsafe { app::fix_thread_count() };
    // Silent hook: a panic a library catches (the Parquet reader's) prints nothing; one that
    // reaches here prints one line below, never a backtrace.
    std::panic::set_hook(Box::new(|_| {}));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        // A usage error is one line too, with its choices ("[possible values: …]").
        Err(e) => {
            let text = e.render().to_string();
            let line: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
                .collect();
            err!("{}", line.join(" "));
            return ExitCode::from(2);
        }
    };
    // Without a handler the process ends as usual; with one, training can stop cleanly.
    let _ = ctrlc::set_handler(on_signal);
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            err!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            err!("error: internal error: {msg} (please report this)");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Cluster(cluster::ClusterCmd::RunJob { dir }) = &cli.command {
        return cluster::run_job(cli.device.as_deref(), dir);
    }
    let mut app = App::open_default()?;
    app.on_wait(Box::new(|line| err!("{line}…")));
    if let Some(d) = &cli.device {
        app.set_device(d)?;
    }
    App::set_tf32(cli.tf32);
    match cli.command {
        Command::Project(cmd) => project::run(&app, cmd),
        Command::History(args) => project::history(&app, args),
        Command::Diff(args) => project::diff(&app, args),
        Command::Rollback(args) => project::rollback(&app, args),
        Command::Models(cmd) => models::run(&app, cmd),
        Command::Keys(cmd) => keys::run(&app, cmd),
        Command::Generate(args) => generate::run(&app, args),
        Command::Data(cmd) => data::run(&app, cmd),
        Command::Train(args) => train::run(&app, args),
        Command::Plan(args) => train::plan(&app, args),
        Command::Recommend(args) => assist::recommend(&app, args),
        Command::Ask(args) => assist::ask(&app, args),
        Command::Runs(args) => train::runs(&app, args),
        Command::Jobs(args) => train::jobs(&app, args),
        Command::Eval(args) => eval::eval(&app, args),
        Command::Evals(args) => eval::evals(&app, args),
        Command::Compare(args) => eval::compare(&app, args),
        Command::Ratings(args) => eval::ratings(&app, args),
        Command::Prefs(cmd) => eval::prefs(&app, cmd),
        Command::Export(args) => export::run(&app, args),
        Command::Score(args) => score::run(args),
        Command::Doctor(args) => home::doctor(&app, args),
        Command::Bench(cmd) => bench::run(&app, cmd),
        Command::Alias(cmd) => alias::run(&app, cmd),
        Command::Traces(cmd) => traces::run(&app, cmd),
        Command::Serve(args) => serve::run(app, args),
        Command::Cluster(cmd) => cluster::run(&app, cmd),
    }
}

pub(crate) fn print<T: Serialize>(
    json: bool,
    value: &T,
    human: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    let text = if json { serde_json::to_string_pretty(value)? } else { human() };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`vibeflow … | head`) is not an error worth a message.
    match writeln!(out, "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// The error chain on one line, outermost first, skipping causes a message already quotes.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line.replace('\n', " ")
}

/// Asks on the terminal; from a pipe, reads the answer without printing the question.
pub(crate) fn confirm(question: &str) -> anyhow::Result<bool> {
    let tty = std::io::stdin().is_terminal();
    if tty {
        let _ = write!(std::io::stderr(), "{question} [y/N] ");
    }
    let mut answer = String::new();
    let n = std::io::stdin().read_line(&mut answer).context("cannot read the answer")?;
    if tty && n == 0 {
        err!();
    }
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}
