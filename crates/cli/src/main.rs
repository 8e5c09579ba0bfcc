//! `vibeflow`: the command line over the same library the desktop app uses.
//!
//! Glue only: parse arguments, call one `app` function, print. Errors print as one line on stderr
//! with a non-zero exit; a panic, should one ever happen, prints one line too, never a backtrace.
//! Output goes through [`out!`] and [`err!`], which never panic: a closed pipe (`| head`) loses
//! the text, not the work. SIGINT and SIGTERM stop a training run after its current step, with a
//! checkpoint and a recorded state; other commands end at once (they are crash-safe).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
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

/// Set by SIGINT/SIGTERM while a run trains: it stops after the current step.
static STOP: AtomicBool = AtomicBool::new(false);
/// Whether a run is training (a signal then asks it to stop instead of ending the process).
static TRAINING: AtomicBool = AtomicBool::new(false);

/// The background job `train -p` waits for: a signal asks it to stop.
static JOB: std::sync::OnceLock<(app::Jobs, String)> = std::sync::OnceLock::new();

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
    Project(ProjectCmd),
    /// Show a project's versions (git commits and tags), newest first
    History {
        /// Project slug
        #[arg(short, long)]
        project: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// What changed in the configuration, datasets and runs between two versions
    Diff {
        /// Project slug
        #[arg(short, long)]
        project: String,
        /// The older version: a tag (v1) or a commit id
        from: String,
        /// The newer version (default: the current one)
        to: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Restore an earlier version (its datasets and model) as a new commit
    Rollback {
        /// Project slug
        #[arg(short, long)]
        project: String,
        /// The version: a tag (v1, v2 …) or a commit id from `vibeflow history`
        to: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Installed models
    #[command(subcommand)]
    Models(ModelsCmd),
    /// Generate a reply from a model (streams text as it comes)
    Generate(GenerateArgs),
    /// Import, inspect, fix and split a project's datasets
    #[command(subcommand)]
    Data(DataCmd),
    /// Fine-tune a model: on a project's dataset (-p), or on a chat JSONL file (--data --out)
    Train(TrainArgs),
    /// The recommended run for a project's dataset, each setting's reason and the pre-flight
    /// checks; --estimate measures its time and memory here
    Plan {
        /// Project slug
        #[arg(short, long)]
        project: String,
        /// Measure two training steps to estimate time and peak memory
        #[arg(long)]
        estimate: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// A project's training runs and their state (interrupted runs can be resumed)
    Runs {
        /// Project slug
        #[arg(short, long)]
        project: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Background jobs of the home (training runs from the app or the CLI) and their state
    Jobs {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Check the home for inconsistencies between git, the index and the files
    Doctor {
        /// Repair what can be repaired without losing anything
        #[arg(long)]
        repair: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Measure speed and memory, optionally against a peer in the same run
    #[command(subcommand)]
    Bench(BenchCmd),
}

#[derive(Subcommand)]
enum BenchCmd {
    /// LoRA training (r=8, all seven projections) against PyTorch + PEFT
    Train {
        /// Model to train
        #[arg(long, default_value = app::DEFAULT_MODEL)]
        model: String,
        /// Also run PyTorch + PEFT (python3 with torch, transformers, peft, gguf), alternating
        #[arg(long)]
        vs_peer: bool,
        /// Sequences per step
        #[arg(long, default_value_t = 4)]
        batch: usize,
        /// Tokens per sequence
        #[arg(long, default_value_t = 256)]
        seq: usize,
        /// Timed steps per round (after one warmup step)
        #[arg(long, default_value_t = 3)]
        steps: usize,
        /// Rounds
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Threads for the peer (ours uses the machine's rayon pool)
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Keep every layer's activations on both sides (no gradient checkpointing)
        #[arg(long)]
        no_gradient_checkpointing: bool,
        /// Number format of the frozen base and the activations on both sides: f32, bf16, or
        /// auto (bf16 on a CUDA GPU of compute capability 8.0 or newer, else f32)
        #[arg(long, default_value = "auto")]
        dtype: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Dataset import + quality report (tokenization included) against pandas
    Data {
        /// Model whose tokenizer counts tokens
        #[arg(long, default_value = app::DEFAULT_MODEL)]
        model: String,
        /// Rows of the 1x file (about 600 bytes each)
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        /// Sizes to measure, as multiples of --rows
        #[arg(long, default_value = "1,4", value_delimiter = ',')]
        scales: Vec<usize>,
        /// Rounds at each size, ours and pandas alternating; the best of each counts
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Also run pandas (python3 with pandas) on the same file
        #[arg(long)]
        vs_peer: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Greedy decoding, f32 and quantized paths, against llama.cpp (llama-cpp-python)
    Generate {
        /// Model (a GGUF for the quantized path and the peer)
        #[arg(long, default_value = app::DEFAULT_MODEL)]
        model: String,
        /// Also run llama.cpp through llama-cpp-python, alternating
        #[arg(long)]
        vs_peer: bool,
        /// Tokens decoded after the prompt
        #[arg(long, default_value_t = 64)]
        tokens: usize,
        /// Rounds
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Threads for the peer
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DataCmd {
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

#[derive(clap::Args)]
struct TrainArgs {
    /// Project slug: train on its current dataset and record the run (runs/<id>/)
    #[arg(short, long, conflicts_with_all = ["data", "out", "base"])]
    project: Option<String>,
    /// Dataset of the project (default: the current one)
    #[arg(long, requires = "project")]
    dataset: Option<String>,
    /// Held-out rows evaluated during training (-p): the first N of the test split
    #[arg(long, default_value_t = app::DEFAULT_EVAL_ROWS, requires = "project")]
    eval_rows: usize,
    /// Chat JSONL file: one {"messages": [...]} per line
    #[arg(long, required_unless_present = "project", requires = "out")]
    data: Option<PathBuf>,
    /// Output folder: checkpoints/, then adapter/ (LoRA) or model/ (full)
    #[arg(long)]
    out: Option<PathBuf>,
    /// Base model: installed id, .gguf file or Hugging Face folder
    #[arg(long, default_value = app::DEFAULT_MODEL)]
    base: String,
    /// lora, qlora (LoRA over a frozen quantized base) or full
    #[arg(long, default_value = "lora")]
    method: String,
    /// QLoRA: block type for base weights not already quantized (a GGUF's own blocks are kept)
    #[arg(long, default_value = "q4_1", value_name = "q4_0|q4_1|q8_0")]
    quant: String,
    /// Optimizer steps (default: as many as --epochs need)
    #[arg(long, conflicts_with = "epochs")]
    steps: Option<usize>,
    /// Passes over the training split
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Peak learning rate
    #[arg(long, default_value_t = 2e-4)]
    lr: f64,
    /// Examples per micro-batch
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Micro-batches per optimizer step
    #[arg(long, default_value_t = 1)]
    grad_accum: usize,
    /// LoRA rank
    #[arg(long, default_value_t = 8)]
    lora_r: usize,
    /// LoRA alpha (the update is scaled by alpha / r)
    #[arg(long, default_value_t = 16.0)]
    lora_alpha: f64,
    /// LoRA dropout
    #[arg(long, default_value_t = 0.0)]
    lora_dropout: f32,
    /// Projections that get adapters
    #[arg(long, default_value = "q,k,v,o,gate,up,down")]
    targets: String,
    /// Longest example in tokens
    #[arg(long, default_value_t = 512)]
    max_len: usize,
    /// Keep every layer's activations instead of recomputing them in the backward pass
    /// (faster, several times the memory)
    #[arg(long)]
    no_gradient_checkpointing: bool,
    /// Number format of the frozen base and the activations (adapters stay f32): f32, bf16, or
    /// auto (bf16 on a CUDA GPU of compute capability 8.0 or newer, else f32)
    #[arg(long, default_value = "auto")]
    dtype: String,
    /// Warmup steps
    #[arg(long, default_value_t = 0)]
    warmup: usize,
    /// Seed of initialisation, data order and dropout
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Evaluate every N steps (0: start and end only)
    #[arg(long, default_value_t = 0)]
    eval_every: usize,
    /// Checkpoint every N steps (0: never)
    #[arg(long, default_value_t = 50)]
    checkpoint_every: usize,
    /// Continue from the newest checkpoint: of --out; with -p, of run RUN, or without RUN of the
    /// project's newest interrupted or stopped run (a resumed run keeps its own settings)
    #[arg(long, value_name = "RUN", num_args = 0..=1, default_missing_value = "")]
    resume: Option<String>,
    /// Print progress and the summary as JSON lines
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// Model: installed id (see `models list`), a .gguf file or a Hugging Face folder
    #[arg(long, default_value = app::DEFAULT_MODEL)]
    model: String,
    /// The user's message
    #[arg(long)]
    prompt: String,
    /// System message (else the template's default)
    #[arg(long)]
    system: Option<String>,
    /// PEFT adapter folder to apply (e.g. the adapter/ a `train` run wrote)
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Fold the adapter into the weights before generating (W + alpha/r·B·A): same outputs,
    /// the base model's speed
    #[arg(long, requires = "adapter")]
    merge: bool,
    /// Run the GGUF's quantized weights (Q4_1 …) directly instead of the f32 path (several
    /// times faster; an --adapter runs unmerged beside them)
    #[arg(long)]
    quantized: bool,
    /// Most tokens to generate
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// Sampling temperature; 0 is greedy
    #[arg(long, default_value_t = 0.7)]
    temperature: f64,
    /// Nucleus sampling threshold
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    /// Keep only the k most likely tokens (0: all)
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Drop tokens below this fraction of the top token's probability
    #[arg(long, default_value_t = 0.0)]
    min_p: f64,
    /// Penalty on tokens already present (1: none)
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    /// Sampler seed
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop before this string (repeatable)
    #[arg(long)]
    stop: Vec<String>,
    /// Print one JSON object at the end instead of streaming text
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum ProjectCmd {
    /// Create a project (a git repository under the home's projects/)
    New {
        /// Project name; its folder name (slug) is derived from it
        name: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List projects
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one project
    Show {
        /// Project slug
        slug: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Delete a project and its history
    Rm {
        /// Project slug
        slug: String,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum ModelsCmd {
    /// List installed models with figures read from their files
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Copy a GGUF model file into the model store
    Import {
        /// Path of the .gguf file
        path: PathBuf,
        /// Refuse the file unless its sha256 is this
        #[arg(long)]
        sha256: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    // SAFETY: first thing in main; no other thread exists yet.
    unsafe { app::fix_thread_count() };
    // Silent hook: a panic a library catches (the Parquet reader's) prints nothing; one that
    // reaches here prints one line below, never a backtrace.
    std::panic::set_hook(Box::new(|_| {}));
    let cli = Cli::parse();
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
    let mut app = App::open_default()?;
    app.on_wait(Box::new(|line| err!("{line}…")));
    if let Some(d) = &cli.device {
        app.set_device(d)?;
    }
    App::set_tf32(cli.tf32);
    match cli.command {
        Command::Project(ProjectCmd::New { name, json }) => {
            let p = app.project_new(&name)?;
            print(json, &p, || format!("Created project {} ({}) at {}", p.name, p.slug, p.path))
        }
        Command::Project(ProjectCmd::List { json }) => {
            let list = app.project_list()?;
            print(json, &list, || {
                if list.is_empty() {
                    return "No projects yet: create one with `vibeflow project new NAME`".into();
                }
                let w = list.iter().map(|p| p.slug.len()).max().unwrap_or(4).max(4);
                let mut s = format!("{:w$}  {:20}  NAME", "SLUG", "BASE MODEL");
                for p in &list {
                    s += &format!("\n{:w$}  {:20}  {}", p.slug, p.base_model, p.name);
                }
                s
            })
        }
        Command::Project(ProjectCmd::Show { slug, json }) => {
            let p = app.project_show(&slug)?;
            print(json, &p, || {
                format!(
                    "name:       {}\nslug:       {}\nbase model: {}\npath:       {}\ncommits:    {}\nhead:       {}",
                    p.name, p.slug, p.base_model, p.path, p.commits, p.head
                )
            })
        }
        Command::Project(ProjectCmd::Rm { slug, yes }) => {
            let p = app.project_show(&slug)?;
            if !yes
                && !confirm(&format!(
                    "Delete project '{}' and its history ({} commits)?",
                    p.name, p.commits
                ))?
            {
                bail!("not deleted: answer 'y', or pass --yes to skip the question");
            }
            app.project_rm(&slug)?;
            out!("Deleted project {}", p.slug);
            Ok(())
        }
        Command::History { project, json } => {
            let h = app.history(&project)?;
            print(json, &h, || {
                h.iter()
                    .map(|c| {
                        let tags = if c.tags.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", c.tags.join(", "))
                        };
                        format!("{}{}  {}", &c.id[..c.id.len().min(10)], tags, c.summary)
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        Command::Plan { project, estimate, json } => {
            let plan = app.train_plan(&project)?;
            let est = match estimate {
                true => Some(app.train_estimate(&plan.request)?),
                false => None,
            };
            #[derive(serde::Serialize)]
            struct Out<'a> {
                #[serde(flatten)]
                plan: &'a api::train::TrainPlan,
                estimate: Option<api::train::Estimate>,
            }
            print(json, &Out { plan: &plan, estimate: est }, || {
                let mut s = format!(
                    "Recommended for {project}: {} steps over {} training rows\n",
                    plan.total_steps, plan.train_rows
                );
                for r in &plan.reasons {
                    s += &format!("  {:24} {:>10}  {}\n", r.setting, r.value, r.why);
                }
                s += "Pre-flight:\n";
                for c in &plan.checks {
                    s += &format!("  {} {:8} {}\n", if c.ok { "✓" } else { "✗" }, c.id, c.message);
                }
                if let Some(e) = est {
                    s += &format!(
                        "Estimate: {:.0} s of training at {:.0} tokens/s, peak memory {:.0} MB of {:.0} MB",
                        e.seconds,
                        e.tokens_per_second,
                        e.peak_memory_bytes as f64 / 1e6,
                        e.memory_bytes as f64 / 1e6
                    );
                }
                s.trim_end().to_string()
            })
        }
        Command::Diff { project, from, to, json } => {
            let d = app.diff(&project, &from, to.as_deref())?;
            print(json, &d, || {
                if d.files.is_empty() {
                    return "No changes to the configuration, datasets or runs.".into();
                }
                d.files
                    .iter()
                    .map(|f| format!("{} ({})\n{}", f.path, f.status, f.patch.trim_end()))
                    .collect::<Vec<_>>()
                    .join("\n\n")
            })
        }
        Command::Rollback { project, to, json } => {
            let r = app.rollback(&project, &to)?;
            print(json, &r, || {
                format!(
                    "Rolled back to {to} in a new version {}: {}",
                    &r.commit[..10],
                    r.restored.join(", ")
                )
            })
        }
        Command::Models(ModelsCmd::List { json }) => {
            let list = app.models_list()?;
            print(json, &list, || {
                if list.is_empty() {
                    return "No models installed: run `cargo xtask setup`, or `vibeflow models import FILE.gguf`".into();
                }
                let mut s = format!(
                    "{:24}  {:8}  {:>8}  {:6}  {:>7}  TEMPLATE",
                    "ID", "ARCH", "PARAMS", "QUANT", "CONTEXT"
                );
                for m in &list {
                    s += &format!(
                        "\n{:24}  {:8}  {:>7.1}M  {:6}  {:>7}  {}",
                        m.id,
                        m.architecture,
                        m.parameters as f64 / 1e6,
                        m.quantization,
                        m.context_length,
                        if m.chat_template { "embedded" } else { "none" }
                    );
                }
                s
            })
        }
        Command::Generate(g) => {
            let req = app::GenerateRequest {
                model: g.model,
                system: g.system,
                prompt: g.prompt,
                adapter: g.adapter,
                merge: g.merge,
                quantized: g.quantized,
                sampling: app::Sampling {
                    temperature: g.temperature,
                    top_p: g.top_p,
                    top_k: g.top_k,
                    min_p: g.min_p,
                    repetition_penalty: g.repetition_penalty,
                    seed: g.seed,
                    max_tokens: g.max_tokens,
                    stop: g.stop,
                    ..app::Sampling::default()
                },
            };
            let json = g.json;
            let mut stream = |piece: &str| {
                if !json {
                    let mut out = std::io::stdout().lock();
                    // Stop generating when the reader went away (`| head`).
                    return write!(out, "{piece}").and_then(|_| out.flush()).is_ok();
                }
                true
            };
            let r = app.generate(&req, &mut stream)?;
            if json {
                print(true, &r, String::new)
            } else {
                out!();
                Ok(())
            }
        }
        Command::Train(t) => {
            let lora = || -> anyhow::Result<app::LoraConfig> {
                Ok(app::LoraConfig {
                    r: t.lora_r,
                    alpha: t.lora_alpha,
                    dropout: t.lora_dropout,
                    targets: app::LoraConfig::parse_targets(&t.targets)
                        .map_err(anyhow::Error::msg)?,
                })
            };
            let method = match t.method.as_str() {
                "lora" => app::Method::Lora(lora()?),
                "qlora" => app::Method::Qlora {
                    lora: lora()?,
                    quant: app::Quant::parse(&t.quant).map_err(anyhow::Error::msg)?,
                },
                "full" => app::Method::Full,
                other => bail!("unknown method '{other}': choose lora, qlora or full"),
            };
            let config = app::TrainConfig {
                method,
                steps: t.steps,
                epochs: t.epochs,
                batch_size: t.batch,
                grad_accum: t.grad_accum,
                max_len: t.max_len,
                adamw: app::AdamWConfig { lr: t.lr, ..app::AdamWConfig::default() },
                warmup_steps: t.warmup,
                seed: t.seed,
                eval_every: t.eval_every,
                checkpoint_every: t.checkpoint_every,
                gradient_checkpointing: !t.no_gradient_checkpointing,
                precision: app.precision(&t.dtype)?,
                ..app::TrainConfig::default()
            };
            let json = t.json;
            let mut on_progress = |p: &app::Progress| {
                if json {
                    out!("{}", serde_json::to_string(p).unwrap_or_default());
                } else {
                    print_step(p);
                }
                !STOP.load(Ordering::SeqCst)
            };
            TRAINING.store(true, Ordering::SeqCst);
            if let Some(project) = t.project {
                let resume = match t.resume {
                    None => app::Resume::No,
                    Some(r) if r.is_empty() => app::Resume::Latest,
                    Some(r) => app::Resume::Run(r),
                };
                let req = app::ProjectTrainRequest {
                    project,
                    dataset: t.dataset,
                    eval_rows: t.eval_rows,
                    config,
                    resume,
                };
                // The same background job the window starts; this thread prints its events.
                let jobs = app::Jobs::new(app.home());
                let job = jobs.start_train(&app, &req)?;
                let _ = JOB.set((jobs.clone(), job.id.clone()));
                jobs.subscribe(
                    &job.id,
                    Box::new(move |event| {
                        print_event(event, json);
                        true
                    }),
                );
                let (end, record) = jobs.wait(&job.id)?;
                let Some(run) = record else {
                    bail!("{}", end.message.unwrap_or_else(|| "the run failed".into()));
                };
                if json {
                    // One line, after the progress lines.
                    out!("{}", serde_json::to_string(&run)?);
                    return Ok(());
                }
                let s = &run.summary;
                return print(false, &run, || {
                    let fmt = |l: Option<f64>| l.map(|l| format!("{l:.4}")).unwrap_or("-".into());
                    format!(
                        "Run {} ({}{}) on {} v{}: {} steps, held-out loss {} -> {}; saved to {}",
                        run.id,
                        run.status,
                        run.tag.as_ref().map(|t| format!(", version {t}")).unwrap_or_default(),
                        run.dataset,
                        run.dataset_version,
                        s.steps,
                        fmt(s.eval_loss_before),
                        fmt(s.eval_loss_after),
                        s.output
                    )
                });
            }
            let (Some(data), Some(out)) = (t.data, t.out) else {
                bail!(
                    "give a project (-p) or a data file and an output folder (--data FILE --out DIR)"
                );
            };
            let req = app::TrainRequest {
                data,
                out,
                base: t.base,
                config,
                eval_fraction: 0.1,
                resume: t.resume.is_some(),
            };
            let summary = app.train(&req, &mut on_progress)?;
            if json {
                out!("{}", serde_json::to_string(&summary)?);
                return Ok(());
            }
            print(false, &summary, || {
                let fmt = |l: Option<f64>| l.map(|l| format!("{l:.4}")).unwrap_or("-".into());
                format!(
                    "Trained {} steps: held-out loss {} -> {}; {} trainable parameters; saved to {}",
                    summary.steps,
                    fmt(summary.eval_loss_before),
                    fmt(summary.eval_loss_after),
                    summary.trainable_parameters,
                    summary.output
                )
            })
        }
        Command::Data(cmd) => data(&app, cmd),
        Command::Runs { project, json } => {
            let runs = app.runs(&project)?;
            print(json, &runs, || {
                if runs.is_empty() {
                    return format!("No runs yet: vibeflow train -p {project}");
                }
                let fmt = |l: Option<f64>| l.map_or("-".to_string(), |l| format!("{l:.4}"));
                let mut s = format!(
                    "{:10} {:12} {:6} {:>6}  {:>10}  {:>9}  DATASET",
                    "RUN", "STATUS", "METHOD", "STEPS", "TRAIN LOSS", "HELD-OUT"
                );
                for r in &runs {
                    s += &format!(
                        "\n{:10} {:12} {:6} {:>6}  {:>10}  {:>9}  {}",
                        r.id,
                        r.status,
                        r.method,
                        r.steps,
                        fmt(r.train_loss),
                        fmt(r.eval_loss),
                        r.dataset
                    );
                }
                if let Some(r) = runs
                    .iter()
                    .rev()
                    .find(|r| matches!(r.status.as_str(), "interrupted" | "stopped"))
                {
                    s += &format!(
                        "\n\nResume {} with: vibeflow train -p {project} --resume {}",
                        r.id, r.id
                    );
                }
                s
            })
        }
        Command::Jobs { json } => {
            let list = app::Jobs::new(app.home()).list(&app)?;
            print(json, &list, || {
                if list.is_empty() {
                    return "No jobs yet: vibeflow train -p PROJECT starts one".into();
                }
                let mut s = format!("{:32} {:12} {:20} STEPS", "JOB", "STATE", "PROJECT");
                for j in &list {
                    s += &format!(
                        "\n{:32} {:12} {:20} {}",
                        j.id,
                        j.state.name(),
                        j.project,
                        j.progress
                            .as_ref()
                            .map_or("-".into(), |p| format!("{}/{}", p.step, p.total_steps))
                    );
                }
                s
            })
        }
        Command::Doctor { repair, json } => {
            let r = app.doctor(repair)?;
            print(json, &r, || {
                let n = |n: usize, what: &str| {
                    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
                };
                let mut s = format!(
                    "Checked {}: {}, {}, {}\n",
                    r.home,
                    n(r.projects, "project"),
                    n(r.versions, "version"),
                    n(r.objects, "content object")
                );
                if r.findings.is_empty() {
                    s += "No problems found";
                }
                for f in &r.findings {
                    let mark = if f.repaired { "repaired" } else { "found" };
                    let project = f.project.as_ref().map(|p| format!("[{p}] ")).unwrap_or_default();
                    s += &format!("\n  {mark:8} {project}{}", f.message);
                }
                let open = r.findings.iter().filter(|f| !f.repaired).count();
                if open > 0 && !repair {
                    s += "\n\nRun `vibeflow doctor --repair` to repair what can be repaired safely";
                }
                s
            })?;
            let open = r.findings.iter().filter(|f| !f.repaired).count();
            if open > 0 {
                bail!(
                    "{open} problem{} remain{}",
                    if open == 1 { "" } else { "s" },
                    if open == 1 { "s" } else { "" }
                );
            }
            Ok(())
        }
        Command::Bench(BenchCmd::Data { model, rows, scales, rounds, vs_peer, json }) => {
            let b = app.bench_data(&model, rows, &scales, rounds, vs_peer)?;
            print(json, &b, || {
                let mut s = format!(
                    "Import + quality report (tokenized with the model's tokenizer) vs pandas (read_json lines, drop_duplicates, str.len); best of {rounds} alternating rounds\n",
                );
                for r in &b.sizes {
                    s += &format!(
                        "\n{} rows ({:.1} MB): ours {:.0} rows/s ({:.2} s), peak {:.0} MB",
                        r.rows,
                        r.bytes as f64 / 1e6,
                        r.ours.rows_per_second,
                        r.ours.seconds,
                        r.ours.peak_rss_bytes as f64 / 1e6
                    );
                    if let (Some(p), Some(ratio)) = (&r.peer, r.speed_ratio) {
                        s += &format!(
                            "; pandas {:.0} rows/s ({:.2} s), peak {:.0} MB; speed {:.2}x",
                            p.rows_per_second,
                            p.seconds,
                            p.peak_rss_bytes as f64 / 1e6,
                            ratio
                        );
                    }
                }
                s
            })
        }
        Command::Bench(BenchCmd::Train {
            model,
            vs_peer,
            batch,
            seq,
            steps,
            rounds,
            threads,
            no_gradient_checkpointing,
            dtype,
            json,
        }) => {
            let gradient_checkpointing = !no_gradient_checkpointing;
            let precision = app.precision(&dtype)?;
            let shape = app::TrainShape {
                batch,
                seq,
                steps,
                rounds,
                threads,
                gradient_checkpointing,
                precision,
            };
            let r = app.bench_train(&model, shape, vs_peer)?;
            print(json, &r, || {
                let side = |name: &str, v: &[app::Measure]| {
                    v.iter()
                        .map(|m| {
                            let gpu = m
                                .peak_gpu_bytes
                                .map(|b| format!("  {:>7.0} MB GPU peak", b as f64 / 1e6))
                                .unwrap_or_default();
                            format!(
                                "{name:<14} {:>8.1} tokens/s  {:>7.0} MB peak{gpu}",
                                m.tokens_per_second,
                                m.peak_rss_bytes as f64 / 1e6
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                let mut s = format!(
                    "LoRA training on {}, batch {batch} x {seq} tokens, r=8, all projections, {}{}, gradient checkpointing {}\n",
                    r.device,
                    precision.name(),
                    if r.tf32 { " (TF32 matrix products)" } else { "" },
                    if gradient_checkpointing { "on" } else { "off" }
                );
                s += &side("vibeflow", &r.ours);
                if !r.peer.is_empty() {
                    s += "\n";
                    s += &side("pytorch+peft", &r.peer);
                }
                if let (Some(sp), Some(mem)) = (r.speed_ratio, r.memory_ratio) {
                    s += &format!(
                        "\nspeed ratio (ours/peer) {sp:.2}x   memory ratio (ours/peer) {mem:.2}x"
                    );
                }
                s
            })
        }
        Command::Bench(BenchCmd::Generate { model, vs_peer, tokens, rounds, threads, json }) => {
            let shape = app::GenerateShape { new_tokens: tokens, rounds, threads };
            let r = app.bench_generate(&model, shape, vs_peer)?;
            print(json, &r, || {
                let best =
                    |v: &[app::Measure]| v.iter().map(|m| m.tokens_per_second).fold(0.0, f64::max);
                let mut s = format!("Greedy decoding, {tokens} tokens after a chat prompt\n");
                s += &format!("vibeflow f32        {:>7.1} tokens/s\n", best(&r.ours_f32));
                s += &format!("vibeflow quantized  {:>7.1} tokens/s", best(&r.ours_quantized));
                if !r.peer.is_empty() {
                    s += &format!("\nllama.cpp           {:>7.1} tokens/s", best(&r.peer));
                }
                if let (Some(q), Some(f)) = (r.quantized_ratio, r.f32_ratio) {
                    s += &format!("\nratio (ours/peer): quantized {q:.2}x, f32 {f:.2}x");
                }
                s
            })
        }
        Command::Models(ModelsCmd::Import { path, sha256, json }) => {
            let m = app.model_import(&path, sha256.as_deref())?;
            print(json, &m, || format!("Installed {} at {}", m.id, m.path))
        }
    }
}

fn print<T: Serialize>(
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

/// A job's event as `train` prints it: progress lines on stderr (JSON lines on stdout with
/// `--json`, the event's own fields), log lines and alerts on stderr.
fn print_event(event: &api::train::JobEvent, json: bool) {
    use api::train::JobEvent;
    match event {
        JobEvent::Progress { .. } | JobEvent::Alert { .. } if json => {
            out!("{}", serde_json::to_string(event).unwrap_or_default());
        }
        JobEvent::Progress { progress: p, .. } => print_step(p),
        JobEvent::Alert { message, .. } => err!("warning: {message}"),
        JobEvent::Log { line, .. } => err!("{line}"),
        JobEvent::Started { .. } | JobEvent::Ended { .. } => {}
    }
}

/// One step's line on stderr.
fn print_step(p: &app::Progress) {
    let eval = p.eval_loss.map(|e| format!("  eval {e:.4}")).unwrap_or_default();
    err!(
        "step {:>5}/{}  loss {:.4}{eval}  lr {:.2e}  grad {:.3}  {:.0} tok/s  {:.0} MB  eta {:.0}s",
        p.step,
        p.total_steps,
        p.loss,
        p.lr,
        p.grad_norm,
        p.tokens_per_second,
        p.memory_bytes as f64 / 1e6,
        p.eta_seconds
    );
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
fn confirm(question: &str) -> anyhow::Result<bool> {
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

fn data(app: &App, cmd: DataCmd) -> anyhow::Result<()> {
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
            let d = app.data_import(&req)?;
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
