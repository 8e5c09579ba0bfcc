//! `vibeflow train`, `plan`, `runs`, `jobs`: fine-tuning and its runs.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::bail;
use api::train::{Dtype, MethodKind, Quant};
use app::App;

use crate::{JOB, STOP, TRAINING, print};

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Project slug: train on its current dataset and record the run (runs/<id>/)
    #[arg(short, long, conflicts_with_all = ["data", "out", "base"])]
    pub project: Option<String>,
    /// Dataset of the project (default: the current one)
    #[arg(long, requires = "project", conflicts_with = "prefs")]
    pub dataset: Option<String>,
    /// DPO's preference file (JSON Lines of prompt, chosen, rejected, as TRL reads them); with
    /// -p, relative to the project folder (default prefs/preferences.jsonl), else instead of
    /// --data
    #[arg(long)]
    pub prefs: Option<PathBuf>,
    /// Held-out rows evaluated during training (-p): the first N of the test split
    #[arg(long, default_value_t = app::DEFAULT_EVAL_ROWS, requires = "project")]
    pub eval_rows: usize,
    /// Chat JSONL file: one {"messages": [...]} per line
    #[arg(long, required_unless_present_any = ["project", "prefs"], requires = "out")]
    pub data: Option<PathBuf>,
    /// Output folder: checkpoints/, then adapter/ (LoRA) or model/ (full)
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Base model: installed id, .gguf file or Hugging Face folder
    #[arg(long, default_value = app::DEFAULT_MODEL)]
    pub base: String,
    /// lora, qlora (LoRA over a frozen quantized base), full, or dpo (LoRA trained on
    /// preference pairs: the chosen answer over the rejected one)
    #[arg(long, value_enum, default_value_t)]
    pub method: MethodKind,
    /// DPO's beta: how far the model may move from the base (larger: closer)
    #[arg(long, default_value_t = api::train::DEFAULT_DPO_BETA)]
    pub beta: f64,
    /// QLoRA: block type for base weights not already quantized (a GGUF's own blocks are kept)
    #[arg(long, value_enum, default_value_t = Quant::Q4_1)]
    pub quant: Quant,
    /// Optimizer steps (default: as many as --epochs need)
    #[arg(long, conflicts_with = "epochs")]
    pub steps: Option<usize>,
    /// Passes over the training split
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Peak learning rate
    #[arg(long, default_value_t = 2e-4)]
    pub lr: f64,
    /// Examples per micro-batch
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Micro-batches per optimizer step
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// LoRA rank
    #[arg(long, default_value_t = 8)]
    pub lora_r: usize,
    /// LoRA alpha (the update is scaled by alpha / r)
    #[arg(long, default_value_t = 16.0)]
    pub lora_alpha: f64,
    /// LoRA dropout
    #[arg(long, default_value_t = 0.0)]
    pub lora_dropout: f32,
    /// Projections that get adapters
    #[arg(long, default_value = "q,k,v,o,gate,up,down")]
    pub targets: String,
    /// Longest example in tokens
    #[arg(long, default_value_t = 512)]
    pub max_len: usize,
    /// Keep every layer's values instead of recomputing the layers that would not fit half the
    /// free memory in the backward pass (by default only those are recomputed; `vibeflow bench
    /// train` measures both extremes)
    #[arg(long)]
    pub no_gradient_checkpointing: bool,
    /// Number format of the frozen base and the activations (adapters stay f32): f32, bf16, or
    /// auto (bf16 on a CUDA GPU of compute capability 8.0 or newer, else f32)
    #[arg(long, value_enum, default_value_t)]
    pub dtype: Dtype,
    /// Warmup steps
    #[arg(long, default_value_t = 0)]
    pub warmup: usize,
    /// Seed of initialisation, data order and dropout
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Evaluate every N steps (0: start and end only)
    #[arg(long, default_value_t = 0)]
    pub eval_every: usize,
    /// Checkpoint every N steps (0: never)
    #[arg(long, default_value_t = 50)]
    pub checkpoint_every: usize,
    /// Continue from the newest checkpoint: of --out; with -p, of run RUN, or without RUN of the
    /// project's newest interrupted or stopped run (a resumed run keeps its own settings)
    #[arg(long, value_name = "RUN", num_args = 0..=1, default_missing_value = "")]
    pub resume: Option<String>,
    /// Before training, print the whole run's measured estimate (time, peak memory, energy:
    /// a short probe of its batches on this machine, cached per model, shape and method)
    #[arg(long, requires = "project")]
    pub estimate: bool,
    /// With --estimate: print it and stop, without training
    #[arg(long, requires = "estimate")]
    pub dry_run: bool,
    /// Train on a registered cluster instead of here: slurm:NAME (`vibeflow cluster add`);
    /// the run comes back into the project when its job ends
    #[arg(long, value_name = "slurm:NAME", requires = "project")]
    pub on: Option<String>,
    /// Print progress and the summary as JSON lines
    #[arg(long)]
    pub json: bool,
}

/// `vibeflow plan`.
#[derive(clap::Args)]
pub struct PlanArgs {
    /// Project slug
    #[arg(short, long)]
    project: String,
    /// Measure two training steps to estimate time and peak memory
    #[arg(long)]
    estimate: bool,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// `vibeflow runs`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct RunsArgs {
    #[command(subcommand)]
    action: Option<RunsAction>,
    /// Project slug
    #[arg(short, long, required = true)]
    project: Option<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// `vibeflow runs import`.
#[derive(clap::Subcommand)]
enum RunsAction {
    /// Bring a PEFT adapter trained elsewhere (LLaMA-Factory's or Axolotl's output folder, one
    /// of its checkpoint-N folders, any PEFT adapter folder) into the project as a new run:
    /// evaluated on its held-out rows, committed and tagged
    Import {
        /// Project slug
        #[arg(short, long)]
        project: String,
        /// The folder holding adapter_config.json (or its output/ or checkpoint-N/)
        dir: std::path::PathBuf,
        /// Held-out rows to evaluate it on (the first of the test split, as `train` does)
        #[arg(long, default_value_t = app::DEFAULT_EVAL_ROWS)]
        eval_rows: usize,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// `vibeflow jobs`.
#[derive(clap::Args)]
pub struct JobsArgs {
    /// A job's id: print its log (every event with --json) instead of the list
    id: Option<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// Runs `train`: a project's run as a background job whose events it prints, or a file.
pub fn run(app: &App, t: TrainArgs) -> anyhow::Result<()> {
    let lora = || -> anyhow::Result<app::LoraConfig> {
        Ok(app::LoraConfig {
            r: t.lora_r,
            alpha: t.lora_alpha,
            dropout: t.lora_dropout,
            targets: app::LoraConfig::parse_targets(&t.targets).map_err(anyhow::Error::msg)?,
        })
    };
    let mut method = app::Method::of_kind(t.method, lora()?, t.quant);
    if let app::Method::Dpo { beta, .. } = &mut method {
        *beta = t.beta;
    } else if t.prefs.is_some() {
        bail!("--prefs names DPO's preference pairs: add --method dpo");
    }
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
        precision: app.precision(t.dtype.name())?,
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
            // A DPO run's data is its preference file.
            dataset: t.prefs.map(|p| p.display().to_string()).or(t.dataset),
            eval_rows: t.eval_rows,
            config,
            resume,
        };
        if t.estimate {
            let e = app.train_estimate(&req)?;
            match json {
                true => out!("{}", serde_json::to_string(&e)?),
                false => err!("{}", estimate_line(&e)),
            }
            if t.dry_run {
                return Ok(());
            }
        }
        let on = match &t.on {
            None => None,
            Some(on) => match on.strip_prefix("slurm:") {
                Some(name) => Some(name.to_string()),
                None => {
                    bail!("--on {on}: name a cluster as slurm:NAME (see `vibeflow cluster list`)")
                }
            },
        };
        // The same background job the window starts; this thread prints its events.
        let jobs = app::Jobs::new(app.home());
        let job = jobs.start_train_on(app, &req, on)?;
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
        return print_run(json, &run);
    }
    let (Some(data), Some(out)) = (t.prefs.or(t.data), t.out) else {
        bail!("give a project (-p) or a data file and an output folder (--data FILE --out DIR)");
    };
    let req = app::TrainRequest {
        data,
        out,
        base: t.base,
        config,
        eval_fraction: app::DEFAULT_EVAL_FRACTION,
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

/// A project run's record: one JSON line, or a sentence.
fn print_run(json: bool, run: &app::RunRecord) -> anyhow::Result<()> {
    if json {
        // One line, after the progress lines.
        out!("{}", serde_json::to_string(&run)?);
        return Ok(());
    }
    let s = &run.summary;
    print(false, run, || {
        let fmt = |l: Option<f64>| l.map(|l| format!("{l:.4}")).unwrap_or("-".into());
        format!(
            "Run {} ({}{}) on {}{}: {} steps, held-out loss {} -> {}; saved to {}",
            run.id,
            run.status,
            run.tag.as_ref().map(|t| format!(", version {t}")).unwrap_or_default(),
            run.dataset,
            // A preference file has no dataset version.
            match run.dataset_version {
                0 => String::new(),
                v => format!(" v{v}"),
            },
            s.steps,
            fmt(s.eval_loss_before),
            fmt(s.eval_loss_after),
            s.output
        )
    })
}

/// `vibeflow plan`: the recommended run, its reasons, the checks, the estimate.
pub fn plan(app: &App, PlanArgs { project, estimate, json }: PlanArgs) -> anyhow::Result<()> {
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
            s += &estimate_line(&e);
        }
        s.trim_end().to_string()
    })
}

/// `vibeflow runs`.
pub fn runs(app: &App, RunsArgs { action, project, json }: RunsArgs) -> anyhow::Result<()> {
    if let Some(RunsAction::Import { project, dir, eval_rows, json }) = action {
        let r = app.import_run(&project, &dir, eval_rows)?;
        return print(json, &r, || {
            let fmt = |l: Option<f64>| l.map_or("-".to_string(), |l| format!("{l:.4}"));
            format!(
                "Imported {} ({} steps) as {}{}, commit {}: held-out loss {} -> {}",
                dir.display(),
                r.summary.steps,
                r.id,
                r.tag.as_deref().map(|t| format!(" ({t})")).unwrap_or_default(),
                &r.commit[..r.commit.len().min(12)],
                fmt(r.summary.eval_loss_before),
                fmt(r.summary.eval_loss_after)
            )
        });
    }
    let project = project.unwrap_or_default();
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
        if let Some(r) =
            runs.iter().rev().find(|r| matches!(r.status.as_str(), "interrupted" | "stopped"))
        {
            s +=
                &format!("\n\nResume {} with: vibeflow train -p {project} --resume {}", r.id, r.id);
        }
        s
    })
}

/// `vibeflow jobs`.
pub fn jobs(app: &App, JobsArgs { id, json }: JobsArgs) -> anyhow::Result<()> {
    let jobs = app::Jobs::new(app.home());
    if let Some(id) = id {
        if json {
            return print(true, &jobs.events(&id)?, String::new);
        }
        out!("{}", jobs.log_text(&id)?.trim_end());
        return Ok(());
    }
    let list = jobs.list(app)?;
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
                j.progress.as_ref().map_or("-".into(), |p| format!("{}/{}", p.step, p.total_steps))
            );
        }
        s
    })
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
        JobEvent::Scheduler { .. } => err!("{}", event.log_line().unwrap_or_default().1),
        JobEvent::Started { .. } | JobEvent::Ended { .. } => {}
    }
}

/// One step's line on stderr.
pub(crate) fn print_step(p: &app::Progress) {
    let eval = p.eval_loss.map(|e| format!("  eval {e:.4}")).unwrap_or_default();
    // DPO: the share of pairs whose chosen answer the model now prefers more than the base
    // did, and the mean reward margin.
    let dpo = p
        .preference
        .map(|r| format!("  acc {:.2}  margin {:.3}", r.accuracy, r.margin))
        .unwrap_or_default();
    err!(
        "step {:>5}/{}  loss {:.4}{eval}{dpo}  lr {:.2e}  grad {:.3}  {:.0} tok/s  {:.0} MB  eta {:.0}s",
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

/// The estimate in one line: `Estimate: 4.2 min (training 3.5, evaluations 0.6, loading and
/// saving 0.1) at 94 tokens/s, peak memory 1.2 GB of 25.3 GB, 0.014 kWh`.
pub(crate) fn estimate_line(e: &api::train::Estimate) -> String {
    let m = |s: f64| s / 60.0;
    format!(
        "Estimate: {:.1} min (training {:.1}, evaluations {:.1}, loading and saving {:.1}) at {:.0} tokens/s, peak memory {:.1} GB of {:.1} GB, {:.3} kWh{}{}",
        m(e.seconds),
        m(e.train_seconds),
        m(e.eval_seconds),
        m(e.overhead_seconds),
        e.tokens_per_second,
        e.peak_memory_bytes as f64 / 1e9,
        e.memory_bytes as f64 / 1e9,
        e.energy_kwh,
        e.cost.map_or(String::new(), |c| format!(", cost {c:.2}")),
        if e.cached { " (probe cached)" } else { "" },
    )
}
