//! VibeFlow's use cases: one function per user action, over the store, git and the engine.
//!
//! The CLI and the Tauri commands are thin shells over [`App`]; neither holds logic of its own.
//! Everything an action touches lives under one home folder (`~/.vibeflow`, or `VIBEFLOW_HOME`),
//! which is injected, so tests run against temporary homes.

pub mod advisor;
pub mod aliases;
mod arena;
mod bench;
mod bench_data;
mod bench_estimate;
mod catalog;
mod chart;
mod cluster;
mod datasets;
mod doctor;
mod endpoints;
mod error;
mod estimate;
mod eval;
mod export;
mod handoff;
mod hub;
mod inference;
mod jobs;
mod lock;
mod memory;
mod models;
mod perplexity;
mod phrase;
mod plan;
mod playground;
mod projects;
mod recover;
mod report;
pub mod score;
mod scratch;
mod serve_ask;
mod serve_key;
pub mod slug;
mod threads;
pub mod traces;
mod training;
mod versions;

use std::path::{Path, PathBuf};

pub use aliases::Served;
pub use api::train::{DEFAULT_EVAL_ROWS, ProjectTrainRequest, Resume, RunRecord};
pub use bench::{
    Best, Checkpointing, GenerateBench, GenerateShape, Measure, ModeBench, TrainBench, TrainShape,
};
pub use bench_data::{DataBench, DataMeasure, DataSize};
pub use bench_estimate::{EstimateCase, EstimateRow};
pub use catalog::{Card, DEFAULT_MODEL, Source, card, catalog, default_card};
pub use chart::chart_svg;
pub use cluster::{CHECK_TOKENS, CheckAnswer, run_job as run_cluster_job};
pub use datasets::{ColumnMapping, DEFAULT_CUTOFF, ImportRequest, ImportSource, Transform};
/// Sampling controls, re-exported for the shells.
pub use engine::generate::Sampling;
/// Engine types the shells pass through.
pub use engine::{
    device::select as select_device,
    lora::{LoraConfig, Quant},
    optim::{AdamWConfig, Schedule},
    train::{Method, Progress, Summary, TrainConfig},
};
pub use error::{Error, Result};
pub use eval::DEFAULT_LIMIT as DEFAULT_EVAL_LIMIT;
pub use inference::{GenerateRequest, GenerateResult};
pub use jobs::Jobs;
pub use memory::HoldPages;
pub use playground::Playground;
pub use threads::fix_thread_count;
pub use traces::{DEFAULT_TRACE_LIMIT, TRACE_LIMIT_ENV};
pub use training::{ClaimedRun, TrainRequest};

/// The share of a chat file held out for evaluation when `train --data` trains on it alone.
pub const DEFAULT_EVAL_FRACTION: f64 = 0.1;

/// Environment variable overriding the home folder.
pub const HOME_ENV: &str = "VIBEFLOW_HOME";

/// Environment variable choosing where models run (`cpu`, `cuda[:N]`, `metal`, `auto`); the
/// CLI's `--device` overrides it. Default `auto`: the GPU a build supports, else the CPU.
pub const DEVICE_ENV: &str = "VIBEFLOW_DEVICE";

/// An open VibeFlow home: its folders and its SQLite index.
pub struct App {
    home: PathBuf,
    store: store::Store,
    device_spec: String,
    /// Resolved on first use (creating a GPU context costs time), then shared: tensors on two
    /// contexts of the same GPU cannot meet.
    device: std::sync::OnceLock<candle_core::Device>,
    /// This process's temporary files, made on first use.
    scratch: std::sync::OnceLock<scratch::Scratch>,
    /// What opening the home swept away (dead processes' temporary files), for `doctor`.
    swept: Vec<String>,
    /// Told when an action waits for another process's change to the same project.
    on_wait: Option<Notice>,
    /// Contexts read from model headers, by file and its size and time (a GGUF header holds
    /// the vocabulary: reading it costs tens of milliseconds, and the server needs it for
    /// every request).
    contexts: std::sync::Mutex<Vec<aliases::DeclaredContext>>,
}

/// A line for the user, told while an action waits (see [`App::on_wait`]).
pub type Notice = Box<dyn Fn(&str) + Send + Sync>;

impl App {
    /// The home folder: `$VIBEFLOW_HOME`, else `~/.vibeflow`.
    pub fn default_home() -> Result<PathBuf> {
        if let Some(h) = std::env::var_os(HOME_ENV).filter(|h| !h.is_empty()) {
            return Ok(PathBuf::from(h));
        }
        std::env::home_dir().map(|h| h.join(".vibeflow")).ok_or_else(|| {
            Error::InvalidInput(format!("cannot find the home folder: set {HOME_ENV}"))
        })
    }

    /// Opens the home at `home`, creating its folders and database when missing, and sweeps
    /// away the temporary files of processes that have ended.
    pub fn open(home: &Path) -> Result<App> {
        for sub in ["", "models", "objects", "projects", "aliases"] {
            let dir = home.join(sub);
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        let store = store::Store::open(&home.join("vibeflow.db"))?;
        let device_spec = std::env::var(DEVICE_ENV)
            .ok()
            .filter(|d| !d.trim().is_empty())
            .unwrap_or_else(|| "auto".into());
        let swept = scratch::sweep(&home.join("tmp"));
        Ok(App {
            home: home.to_path_buf(),
            store,
            device_spec,
            device: Default::default(),
            scratch: Default::default(),
            swept,
            on_wait: None,
            contexts: Default::default(),
        })
    }

    /// Calls `f` with a line for the user whenever an action must wait for another process's
    /// change to the same project (the CLI prints it; changes to one project queue).
    pub fn on_wait(&mut self, f: Notice) {
        self.on_wait = Some(f);
    }

    /// A fresh path for a temporary file of this process, `…-suffix`, in the home's `tmp/`
    /// (on the home's disk, so it can be renamed into place).
    pub(crate) fn scratch_path(&self, suffix: &str) -> Result<PathBuf> {
        if let Some(s) = self.scratch.get() {
            return Ok(s.path(suffix));
        }
        let s = scratch::Scratch::new(&self.home.join("tmp"))?;
        Ok(self.scratch.get_or_init(|| s).path(suffix))
    }

    /// Runs models on `spec` (`cpu`, `cuda[:N]`, `metal`, `auto`) from now on; an unknown
    /// device, or one this build or machine lacks, is an error here rather than mid-run.
    pub fn set_device(&mut self, spec: &str) -> Result<()> {
        let device = engine::device::select(spec)?;
        self.device_spec = spec.to_string();
        self.device = std::sync::OnceLock::from(device);
        Ok(())
    }

    /// Lets f32 matrix products on a CUDA GPU use TF32 tensor cores (process-wide; see
    /// [`engine::device::set_tf32`]); `bench train` asks the peer for the same.
    pub fn set_tf32(on: bool) {
        engine::device::set_tf32(on);
    }

    /// The training precision named by `spec` (`f32`, `bf16`, `auto`) on this app's device
    /// ([`engine::device::precision`]).
    pub fn precision(&self, spec: &str) -> Result<engine::device::Precision> {
        Ok(engine::device::precision(spec, &self.device()?)?)
    }

    /// Where models run.
    pub fn device(&self) -> Result<candle_core::Device> {
        if let Some(d) = self.device.get() {
            return Ok(d.clone());
        }
        let d = engine::device::select(&self.device_spec)?;
        Ok(self.device.get_or_init(|| d).clone())
    }

    /// Opens [`App::default_home`].
    pub fn open_default() -> Result<App> {
        Self::open(&Self::default_home()?)
    }

    /// The home folder.
    pub fn home(&self) -> &Path {
        &self.home
    }

    fn projects_dir(&self) -> PathBuf {
        self.home.join("projects")
    }

    fn models_dir(&self) -> PathBuf {
        self.home.join("models")
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub use models::sha256_file;
