//! Training: progress events, summaries, runs and the jobs that run them. What `train --json`
//! prints and what the Monitor pane receives are these types.

use serde::{Deserialize, Serialize};

/// The projections LoRA can target, by their Hugging Face module names.
pub const LORA_TARGETS: [&str; 7] =
    ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

/// How the model is adapted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Low-rank adapters on a frozen f32 base.
    Lora(LoraConfig),
    /// QLoRA: low-rank adapters on a frozen quantized base. Projections the checkpoint already
    /// stores quantized (a GGUF opened with `Bundle::open_quantized`) keep their blocks; dense
    /// ones are quantized to `quant` when training starts.
    Qlora {
        /// The adapters.
        lora: LoraConfig,
        /// Block type for dense projections.
        quant: Quant,
    },
    /// Every weight trained.
    Full,
    /// Direct preference optimization (sigmoid DPO) on preference pairs: LoRA adapters over a
    /// frozen base, whose reference model is that base without them.
    Dpo {
        /// The adapters.
        lora: LoraConfig,
        /// β: the loss is `−log σ(β·((π_c − r_c) − (π_r − r_r)))` over summed completion
        /// log-probabilities; a larger β keeps the policy closer to the reference.
        beta: f64,
    },
}

/// DPO's default β (TRL's).
pub const DEFAULT_DPO_BETA: f64 = 0.1;

/// Training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// LoRA or full.
    pub method: Method,
    /// Optimizer steps; when `None`, `epochs` decides.
    pub steps: Option<usize>,
    /// Passes over the training split (used when `steps` is `None`).
    pub epochs: usize,
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Longest example in tokens; longer ones are cut.
    pub max_len: usize,
    /// Optimizer settings (its `lr` is the peak learning rate).
    pub adamw: AdamWConfig,
    /// Warmup steps.
    pub warmup_steps: usize,
    /// Decay after warmup.
    pub schedule: Schedule,
    /// Gradient-norm clip (0: none).
    pub max_grad_norm: f64,
    /// Seed of init, data order and dropout.
    pub seed: u64,
    /// Evaluate every N steps (0: only at the end).
    pub eval_every: usize,
    /// Checkpoint every N steps (0: never).
    pub checkpoint_every: usize,
    /// Checkpoints kept (oldest removed first).
    pub keep_checkpoints: usize,
    /// Gradient checkpointing: recompute decoder blocks in the backward pass rather than keep
    /// their values from the forward pass (same results, a fraction of the memory, one more
    /// forward pass of compute) — only as many blocks as must be, so that the others' values
    /// fit half the memory free when the run starts. Off: every block's values kept.
    pub gradient_checkpointing: bool,
    /// The frozen base's and the activations' number format (adapters and optimizer state
    /// are f32 either way): f32, or bf16 on a GPU with bf16 tensor cores.
    pub precision: Precision,
}

impl Method {
    /// `lora`, `qlora`, `full` or `dpo`.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Lora(_) => "lora",
            Method::Qlora { .. } => "qlora",
            Method::Full => "full",
            Method::Dpo { .. } => "dpo",
        }
    }

    /// The adapter settings, unless all weights are trained.
    pub fn lora(&self) -> Option<&LoraConfig> {
        match self {
            Method::Lora(l) | Method::Qlora { lora: l, .. } | Method::Dpo { lora: l, .. } => {
                Some(l)
            }
            Method::Full => None,
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            method: Method::Lora(LoraConfig::default()),
            steps: None,
            epochs: 1,
            batch_size: 4,
            grad_accum: 1,
            max_len: 512,
            adamw: AdamWConfig::default(),
            warmup_steps: 0,
            schedule: Schedule::Cosine,
            max_grad_norm: 1.0,
            seed: 42,
            eval_every: 0,
            checkpoint_every: 0,
            keep_checkpoints: 2,
            gradient_checkpointing: true,
            precision: Precision::F32,
        }
    }
}

/// LoRA hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank.
    pub r: usize,
    /// Scaling numerator: the update is scaled by `alpha / r`.
    pub alpha: f64,
    /// Dropout on the LoRA input during training.
    pub dropout: f32,
    /// Module names (`q_proj` …) that get adapters.
    pub targets: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig {
            r: 8,
            alpha: 16.0,
            dropout: 0.0,
            targets: LORA_TARGETS.iter().map(|t| t.to_string()).collect(),
        }
    }
}

impl LoraConfig {
    /// Maps short names (`q`, `gate` …) and full names to module names; rejects unknown ones.
    pub fn parse_targets(list: &str) -> std::result::Result<Vec<String>, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                let full = if s.ends_with("_proj") { s.to_string() } else { format!("{s}_proj") };
                if LORA_TARGETS.contains(&full.as_str()) {
                    Ok(full)
                } else {
                    Err(format!("unknown LoRA target '{s}': choose from q,k,v,o,gate,up,down"))
                }
            })
            .collect()
    }

    /// The factor applied to `B·A`.
    pub fn scale(&self) -> f64 {
        self.alpha / self.r as f64
    }
}

/// The block type of QLoRA's frozen base (GGUF types whose blocks are 32 values wide, so any
/// model width that is a multiple of 32 fits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Quant {
    /// 4-bit, one scale per 32 values (4.5 bits per weight).
    #[serde(rename = "q4_0")]
    #[cfg_attr(feature = "clap", value(name = "q4_0"))]
    Q4_0,
    /// 4-bit, a scale and a minimum per 32 values (5 bits per weight); the default.
    #[serde(rename = "q4_1")]
    #[cfg_attr(feature = "clap", value(name = "q4_1"))]
    Q4_1,
    /// 8-bit, one scale per 32 values (8.5 bits per weight).
    #[serde(rename = "q8_0")]
    #[cfg_attr(feature = "clap", value(name = "q8_0"))]
    Q8_0,
}

/// Which fine-tuning method, without its settings (a command line's or a form's choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum MethodKind {
    /// Low-rank adapters over a frozen base.
    #[default]
    Lora,
    /// LoRA over a frozen base quantized to 4 or 8 bits.
    Qlora,
    /// Every weight trains.
    Full,
    /// LoRA trained on preference pairs (chosen vs rejected) with DPO's loss.
    Dpo,
}

impl MethodKind {
    /// As a person reads it: `LoRA`, `QLoRA`, `full fine-tuning`, `DPO`.
    pub fn label(self) -> &'static str {
        match self {
            MethodKind::Lora => "LoRA",
            MethodKind::Qlora => "QLoRA",
            MethodKind::Full => "full fine-tuning",
            MethodKind::Dpo => "DPO",
        }
    }
}

impl Method {
    /// The kind of this method.
    pub fn kind(&self) -> MethodKind {
        match self {
            Method::Lora(_) => MethodKind::Lora,
            Method::Qlora { .. } => MethodKind::Qlora,
            Method::Full => MethodKind::Full,
            Method::Dpo { .. } => MethodKind::Dpo,
        }
    }

    /// The method `kind` with these adapter settings (`lora` and `quant` where it has them;
    /// DPO with [`DEFAULT_DPO_BETA`]).
    pub fn of_kind(kind: MethodKind, lora: LoraConfig, quant: Quant) -> Method {
        match kind {
            MethodKind::Lora => Method::Lora(lora),
            MethodKind::Qlora => Method::Qlora { lora, quant },
            MethodKind::Full => Method::Full,
            MethodKind::Dpo => Method::Dpo { lora, beta: DEFAULT_DPO_BETA },
        }
    }
}

/// The number format asked for: `auto` lets the device decide (bf16 on a CUDA GPU of compute
/// capability 8.0 or newer, else f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// The device's best.
    #[default]
    Auto,
    /// 32-bit floats.
    F32,
    /// bfloat16.
    Bf16,
}

impl Dtype {
    /// `auto`, `f32`, `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Auto => "auto",
            Dtype::F32 => "f32",
            Dtype::Bf16 => "bf16",
        }
    }
}

impl Quant {
    /// Parses `q4_0`, `q4_1` or `q8_0`.
    pub fn parse(s: &str) -> std::result::Result<Quant, String> {
        match s.to_ascii_lowercase().as_str() {
            "q4_0" => Ok(Quant::Q4_0),
            "q4_1" => Ok(Quant::Q4_1),
            "q8_0" => Ok(Quant::Q8_0),
            other => Err(format!("unknown quantization '{other}': choose q4_0, q4_1 or q8_0")),
        }
    }
}

/// AdamW hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// Learning rate (the schedule scales it per step).
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig { lr: 2e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }
}

/// Learning-rate schedule after linear warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Constant after warmup.
    Constant,
    /// Linear decay to zero at the last step.
    Linear,
    /// Cosine decay to zero at the last step.
    Cosine,
}

/// The number format a model's frozen weights and activations train in. Trainable tensors
/// (LoRA pairs, optimizer state) stay f32 either way, as PEFT keeps its adapters f32 over a
/// bf16 base ("autocast_adapter_dtype"): the frozen products run in the base's format, the
/// adapters' updates accumulate at full precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats everywhere: the CPU's format (bf16 products there widen to f32 on every
    /// call) and the reference the parity tests hold to 1e-4.
    #[default]
    F32,
    /// bfloat16 base weights and activations, with f32 softmax/norm statistics and loss: a
    /// CUDA GPU's tensor-core format (Ampere, compute capability 8.0, or newer).
    Bf16,
}

impl Precision {
    /// `f32`, `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

/// Default of [`ProjectTrainRequest::eval_rows`].
pub const DEFAULT_EVAL_ROWS: usize = 200;

/// `vibeflow train -p P`: train on the project's current dataset and record the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectTrainRequest {
    /// Project slug.
    pub project: String,
    /// Dataset name; default: the current one. For DPO, the preference file instead (JSON
    /// Lines, relative to the project folder or absolute); default `prefs/preferences.jsonl`.
    pub dataset: Option<String>,
    /// Held-out rows evaluated during training (the first of the test split): evaluation runs
    /// the model over each, so on a CPU a full large test split would dwarf the training.
    pub eval_rows: usize,
    /// Engine settings (a resumed run keeps its own).
    pub config: TrainConfig,
    /// Start a new run, or continue one from its newest checkpoint.
    pub resume: Resume,
}

/// A run to start as a background job, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainStart {
    /// The run.
    pub request: ProjectTrainRequest,
    /// A registered cluster's name to send it to; none: this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
}

impl ProjectTrainRequest {
    /// A request to continue `run` of `project` (the run keeps its own settings).
    pub fn resume(project: &str, run: &str) -> ProjectTrainRequest {
        ProjectTrainRequest {
            project: project.into(),
            dataset: None,
            eval_rows: DEFAULT_EVAL_ROWS,
            config: TrainConfig::default(),
            resume: Resume::Run(run.into()),
        }
    }

    /// What is out of range, as (field, why): the form shows each beside its field, the CLI
    /// and `App` refuse a new run with any.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = self.config.problems();
        if self.eval_rows > 100_000 {
            out.push(("eval_rows", "Held-out rows: a whole number from 0 to 100000".into()));
        }
        out
    }
}

impl TrainConfig {
    /// What is out of range, as (field, why); see [`ProjectTrainRequest::problems`].
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut int = |key, v: usize, lo: usize, hi: usize, what: &str| {
            if !(lo..=hi).contains(&v) {
                out.push((key, format!("{what}: a whole number from {lo} to {hi}")));
            }
        };
        if let Some(s) = self.steps {
            int("steps", s, 1, 1_000_000, "Steps");
        }
        int("epochs", self.epochs, 1, 1000, "Epochs");
        int("batch_size", self.batch_size, 1, 256, "Batch size");
        int("grad_accum", self.grad_accum, 1, 1024, "Gradient accumulation");
        int("max_len", self.max_len, 16, 32_768, "Longest example");
        if let Some(l) = self.method.lora() {
            int("lora_r", l.r, 1, 512, "LoRA rank");
        }
        let lr = self.adamw.lr;
        if !(lr.is_finite() && lr > 0.0 && lr <= 1.0) {
            out.push(("lr", "Learning rate: a number above 0, at most 1 (e.g. 2e-4)".into()));
        }
        if let Some(l) = self.method.lora() {
            if !(l.alpha.is_finite() && l.alpha > 0.0) {
                out.push(("lora_alpha", "LoRA alpha: a number above 0".into()));
            }
            if !(0.0..1.0).contains(&l.dropout) {
                out.push(("lora_dropout", "LoRA dropout: from 0 up to (not including) 1".into()));
            }
            if l.targets.is_empty() {
                out.push(("lora_targets", "LoRA targets: at least one projection".into()));
            }
        }
        if let Method::Dpo { beta, .. } = self.method
            && !(beta.is_finite() && beta > 0.0)
        {
            out.push(("dpo_beta", "DPO beta: a number above 0 (e.g. 0.1)".into()));
        }
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm >= 0.0) {
            out.push(("max_grad_norm", "Gradient clip: 0 (none) or a number above 0".into()));
        }
        let wd = self.adamw.weight_decay;
        if !(wd.is_finite() && (0.0..1.0).contains(&wd)) {
            out.push(("weight_decay", "Weight decay: from 0 up to (not including) 1".into()));
        }
        out
    }
}

/// Which run `train -p` continues.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resume {
    /// A new run.
    #[default]
    No,
    /// The project's newest interrupted or stopped run.
    Latest,
    /// This run.
    Run(String),
}

/// Progress of a run, sent after every optimizer step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Steps done.
    pub step: usize,
    /// Steps in the run.
    pub total_steps: usize,
    /// Fractional epoch.
    pub epoch: f64,
    /// Training loss of this step.
    pub loss: f64,
    /// Held-out loss, when evaluated at this step.
    pub eval_loss: Option<f64>,
    /// Learning rate used.
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Training tokens per second over this step's forward, backward and update (padding,
    /// and an evaluation or checkpoint after the step, excluded).
    pub tokens_per_second: f64,
    /// Resident memory of the process, bytes.
    pub memory_bytes: u64,
    /// Seconds since the run (or its resume) started.
    pub elapsed_seconds: f64,
    /// Estimated seconds left.
    pub eta_seconds: f64,
    /// Set when a checkpoint was written after this step.
    pub checkpoint: Option<String>,
    /// DPO's rewards over this step's pairs (preference runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preference: Option<PreferenceStats>,
}

/// DPO's figures over a set of preference pairs, as TRL logs them (`rewards/*`): a
/// completion's reward is β × (its policy − its reference log-probability).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PreferenceStats {
    /// Share of pairs whose chosen reward is above the rejected one (0–1).
    pub accuracy: f64,
    /// Mean of chosen − rejected reward.
    pub margin: f64,
    /// Mean reward of the chosen completions.
    pub chosen: f64,
    /// Mean reward of the rejected ones.
    pub rejected: f64,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Steps done.
    pub steps: usize,
    /// Whether the callback stopped the run early.
    pub stopped: bool,
    /// Held-out loss before training.
    pub eval_loss_before: Option<f64>,
    /// Held-out loss at the end.
    pub eval_loss_after: Option<f64>,
    /// Training loss of each step, first to last (resumed runs start after the checkpoint).
    pub losses: Vec<f64>,
    /// Trainable parameters.
    pub trainable_parameters: usize,
    /// Where the adapter or weights were written.
    pub output: String,
}

/// What `train -p` recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Run id (`run-1`, `run-2`, …).
    pub id: String,
    /// Dataset name trained on.
    pub dataset: String,
    /// Dataset version.
    pub dataset_version: u32,
    /// `done` or `stopped`.
    pub status: String,
    /// The run folder (`runs/<id>/` in the project).
    pub path: String,
    /// The commit that recorded it.
    pub commit: String,
    /// The version tag a finished run's commit got (`v1`, `v2` …); none for a stopped run.
    pub tag: Option<String>,
    /// The engine's summary.
    pub summary: Summary,
}

/// A checkpoint a run keeps: where training can resume from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The optimizer step it was saved after.
    pub step: usize,
    /// Its folder.
    pub path: String,
    /// Seconds since the Unix epoch.
    pub saved_at: i64,
}

/// Arguments of commands that act on one run of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRef {
    /// Project slug.
    pub project: String,
    /// Run id, e.g. `run-1`.
    pub run: String,
}

/// One training run of a project (`vibeflow runs -p P`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// `run-1`, `run-2`, …
    pub id: String,
    /// Dataset trained on.
    pub dataset: String,
    /// `lora`, `qlora`, `full` or `dpo`.
    pub method: String,
    /// `running`; `done`; `stopped` (asked to stop, resumable); `interrupted` (its process
    /// died, resumable); `failed`.
    pub status: String,
    /// Optimizer steps done.
    pub steps: u64,
    /// Last training loss.
    pub train_loss: Option<f64>,
    /// Held-out loss at the end.
    pub eval_loss: Option<f64>,
    /// Seconds since the Unix epoch.
    pub started_at: i64,
    /// When it ended.
    pub finished_at: Option<i64>,
}

/// What a background job is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// At work.
    Running,
    /// Finished.
    Done,
    /// Asked to stop; resumable from its checkpoint.
    Stopped,
    /// Ended with an error.
    Failed,
    /// Its process died while it ran; resumable from its last checkpoint.
    Interrupted,
}

impl JobState {
    /// `running`, `done`, `stopped`, `failed`, `interrupted` (as serialized).
    pub fn name(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Stopped => "stopped",
            JobState::Failed => "failed",
            JobState::Interrupted => "interrupted",
        }
    }
}

/// A background job: a training run started by the app or the CLI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobInfo {
    /// Unique in the home.
    pub id: String,
    /// `train`.
    pub kind: String,
    /// The project it works on.
    pub project: String,
    /// The run it trains, once known.
    pub run: Option<String>,
    /// Its state.
    pub state: JobState,
    /// Seconds since the Unix epoch.
    pub started_at: i64,
    /// When it ended.
    pub finished_at: Option<i64>,
    /// Why it failed, when it did.
    pub message: Option<String>,
    /// The newest progress, while it trains.
    pub progress: Option<Progress>,
}

/// Something a job says, in order; the CLI prints them, the window draws them. Progress is
/// throttled for listeners (about ten a second); every other event always passes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum JobEvent {
    /// The run is claimed: its id is known.
    Started {
        /// The job.
        job: String,
        /// The run it trains.
        run: String,
    },
    /// An optimizer step ended.
    Progress {
        /// The job.
        job: String,
        /// The step's figures.
        #[serde(flatten)]
        progress: Progress,
    },
    /// A line for the log (a wait for the project's lock, a resume from a checkpoint).
    Log {
        /// The job.
        job: String,
        /// The line.
        line: String,
    },
    /// A run sent to a cluster: the scheduler's state of its job.
    Scheduler {
        /// The job (ours).
        job: String,
        /// The cluster's name.
        cluster: String,
        /// The scheduler's job id.
        job_id: String,
        /// As the scheduler names it: `PENDING`, `RUNNING`, `COMPLETED`, `CANCELLED`…
        state: String,
    },
    /// Something the user should look at (the loss is not a number, the held-out loss rises).
    Alert {
        /// The job.
        job: String,
        /// `nan_loss`, `overfitting`, `diverging`, `memory`.
        kind: String,
        /// What happened and what to do.
        message: String,
        /// The change for the next run that addresses it (one click in the Monitor).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fix: Option<crate::advisor::Change>,
    },
    /// The job ended.
    Ended {
        /// The job.
        job: String,
        /// How.
        state: JobState,
        /// Why it failed, when it did.
        message: Option<String>,
        /// What the run recorded, when it did.
        record: Option<RunRecord>,
    },
}

impl JobEvent {
    /// The line a person reads in the job's log, with its kind (`log`, `alert`, `step`): steps
    /// say something only when they evaluate or save a checkpoint.
    pub fn log_line(&self) -> Option<(&'static str, String)> {
        match self {
            JobEvent::Started { run, .. } => Some(("log", format!("started {run}"))),
            JobEvent::Log { line, .. } => Some(("log", line.clone())),
            JobEvent::Scheduler { cluster, job_id, state, .. } => {
                Some(("log", format!("job {job_id} on {cluster}: {state}")))
            }
            JobEvent::Alert { message, .. } => Some(("alert", format!("warning: {message}"))),
            JobEvent::Progress { progress: p, .. } => {
                let mut said = Vec::new();
                if let Some(e) = p.eval_loss {
                    said.push(format!("held-out loss {e:.4}"));
                }
                if let Some(c) = &p.checkpoint {
                    said.push(format!("checkpoint saved in {c}"));
                }
                (!said.is_empty()).then(|| {
                    let head = format!("step {}/{}: loss {:.4}", p.step, p.total_steps, p.loss);
                    ("step", format!("{head}, {}", said.join(", ")))
                })
            }
            JobEvent::Ended { state, message, .. } => Some((
                "log",
                match message {
                    Some(m) => format!("{}: {m}", state.name()),
                    None => format!("ended: {}", state.name()),
                },
            )),
        }
    }

    /// The job that said it.
    pub fn job(&self) -> &str {
        match self {
            JobEvent::Started { job, .. }
            | JobEvent::Log { job, .. }
            | JobEvent::Scheduler { job, .. }
            | JobEvent::Progress { job, .. }
            | JobEvent::Alert { job, .. }
            | JobEvent::Ended { job, .. } => job,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_settings_are_named_by_field() {
        assert!(ProjectTrainRequest::resume("p", "run-1").problems().is_empty());
        let mut r = ProjectTrainRequest::resume("p", "run-1");
        r.config.adamw.lr = 0.0;
        r.config.batch_size = 0;
        r.config.steps = Some(0);
        r.config.method = Method::Lora(LoraConfig { dropout: 1.0, ..LoraConfig::default() });
        r.eval_rows = 100_001;
        let keys: Vec<_> = r.problems().into_iter().map(|p| p.0).collect();
        assert_eq!(keys, ["steps", "batch_size", "lr", "lora_dropout", "eval_rows"]);
        r.config.adamw.lr = f64::NAN;
        assert!(r.problems()[2].1.starts_with("Learning rate: a number above 0"));
    }

    #[test]
    fn dpo_is_lora_with_a_beta_above_zero() {
        let mut c = TrainConfig {
            method: Method::of_kind(MethodKind::Dpo, LoraConfig::default(), Quant::Q4_1),
            ..TrainConfig::default()
        };
        assert_eq!(c.method, Method::Dpo { lora: LoraConfig::default(), beta: DEFAULT_DPO_BETA });
        assert_eq!((c.method.name(), c.method.kind()), ("dpo", MethodKind::Dpo));
        assert_eq!(c.method.lora(), Some(&LoraConfig::default()));
        assert!(c.problems().is_empty());
        for beta in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            c.method = Method::Dpo { lora: LoraConfig::default(), beta };
            let keys: Vec<_> = c.problems().into_iter().map(|p| p.0).collect();
            assert_eq!(keys, ["dpo_beta"], "beta {beta}");
        }
        let m = Method::Dpo { lora: LoraConfig::default(), beta: 0.25 };
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["dpo"]["beta"], 0.25);
        assert_eq!(serde_json::from_value::<Method>(json).unwrap(), m);
    }
}

/// One recommended setting and why (`vibeflow train --plan`, the Train pane).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// The setting, as the form names it (`Learning rate`).
    pub setting: String,
    /// Its value, as shown.
    pub value: String,
    /// Why, in plain words.
    pub why: String,
}

/// One pre-flight check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// `dataset`, `model`, `disk`, `memory`.
    pub id: String,
    /// Whether it passes.
    pub ok: bool,
    /// What was found (and what to do when it fails).
    pub message: String,
}

/// The recommended run for a project: settings from the model's card and the dataset's
/// report, each with its reason, and the pre-flight checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainPlan {
    /// The run to start.
    pub request: ProjectTrainRequest,
    /// Each setting and why.
    pub reasons: Vec<Reason>,
    /// Pre-flight checks; Start waits for all to pass.
    pub checks: Vec<Check>,
    /// Training rows of the current dataset.
    pub train_rows: usize,
    /// Mean tokens per row.
    pub mean_tokens: f64,
    /// Optimizer steps the plan makes.
    pub total_steps: usize,
}

/// Time, memory and cost of a whole run, from a short probe of its shape on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Training tokens per second measured (padding included, as the run pads).
    pub tokens_per_second: f64,
    /// Training tokens the run will process, padding included.
    pub tokens: u64,
    /// Seconds of the whole run: loading, training steps, evaluations, checkpoints.
    pub seconds: f64,
    /// Of which the training steps.
    #[serde(default)]
    pub train_seconds: f64,
    /// Of which the held-out evaluations (before, during and after).
    #[serde(default)]
    pub eval_seconds: f64,
    /// Of which loading the model, preparing the data and saving the result.
    #[serde(default)]
    pub overhead_seconds: f64,
    /// Peak memory, bytes: the probe's at the run's longest batch.
    pub peak_memory_bytes: u64,
    /// The machine's memory, bytes.
    pub memory_bytes: u64,
    /// Energy the run draws, kWh (the CPU's or GPU's typical power × time).
    #[serde(default)]
    pub energy_kwh: f64,
    /// Cost at the prices given (per hour and per kWh), when any was.
    #[serde(default)]
    pub cost: Option<f64>,
    /// Whether the probe was measured earlier (the cache) rather than now.
    #[serde(default)]
    pub cached: bool,
}
