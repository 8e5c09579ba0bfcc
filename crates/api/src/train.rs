//! Training: progress events, summaries, runs and the jobs that run them. What `train --json`
//! prints and what the Monitor pane receives are these types.

use serde::{Deserialize, Serialize};

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
    /// Training tokens per second over this step (padding excluded).
    pub tokens_per_second: f64,
    /// Resident memory of the process, bytes.
    pub memory_bytes: u64,
    /// Seconds since the run (or its resume) started.
    pub elapsed_seconds: f64,
    /// Estimated seconds left.
    pub eta_seconds: f64,
    /// Set when a checkpoint was written after this step.
    pub checkpoint: Option<String>,
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
    /// The engine's summary.
    pub summary: Summary,
}

/// One training run of a project (`vibeflow runs -p P`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// `run-1`, `run-2`, …
    pub id: String,
    /// Dataset trained on.
    pub dataset: String,
    /// `lora`, `qlora` or `full`.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Something the user should look at (the loss is not a number, the held-out loss rises).
    Alert {
        /// The job.
        job: String,
        /// `nan_loss`, `overfitting`.
        kind: String,
        /// What happened and what to do.
        message: String,
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
    /// The job that said it.
    pub fn job(&self) -> &str {
        match self {
            JobEvent::Started { job, .. }
            | JobEvent::Log { job, .. }
            | JobEvent::Progress { job, .. }
            | JobEvent::Alert { job, .. }
            | JobEvent::Ended { job, .. } => job,
        }
    }
}
