//! Types that cross the boundary between the back end (Tauri commands, CLI `--json`) and the UI.
//!
//! This crate is WASM-safe: it depends on `serde` alone, so `ui` (wasm32) and the native crates
//! share one declaration of every field. Field names here are the stable `--json` field names
//! documented in the README; renaming one is a breaking change.

use serde::{Deserialize, Serialize};

pub mod advisor;
pub mod chart;
pub mod chat;
pub mod cluster;
pub mod dataset;
pub mod eval;
pub mod export;
pub mod serve;
pub mod train;

pub use train::RunSummary;

/// Names of the Tauri commands, shared by `src-tauri` (registration) and `ui` (invoke).
pub mod cmd {
    /// List projects: no arguments, returns `Vec<ProjectSummary>`.
    pub const PROJECT_LIST: &str = "project_list";
    /// Create a project: [`super::NewProject`], returns [`super::ProjectDetail`].
    pub const PROJECT_NEW: &str = "project_new";
    /// Show a project: [`super::ProjectRef`], returns [`super::ProjectDetail`].
    pub const PROJECT_SHOW: &str = "project_show";
    /// Project history: [`super::ProjectRef`], returns `Vec<CommitInfo>`.
    pub const PROJECT_HISTORY: &str = "project_history";
    /// What changed between two versions: [`super::DiffRequest`], returns
    /// [`super::VersionDiff`].
    pub const PROJECT_DIFF: &str = "project_diff";
    /// Restore an earlier version as a new commit: [`super::RollbackRequest`], returns
    /// [`super::RollbackOutcome`].
    pub const PROJECT_ROLLBACK: &str = "project_rollback";
    /// This machine: no arguments, returns [`super::SystemInfo`].
    pub const SYSTEM_INFO: &str = "system_info";
    /// Import a GGUF file into the model store: [`super::ModelImport`], returns
    /// [`super::ModelInfo`].
    pub const MODELS_IMPORT: &str = "models_import";
    /// The model catalog with what is installed: no arguments, returns
    /// `Vec<advisor::CatalogModel>`.
    pub const CATALOG_LIST: &str = "catalog_list";
    /// Download a model from the Hugging Face hub: [`super::advisor::PullRequest`] and a
    /// channel of [`super::advisor::PullProgress`], returns [`super::ModelInfo`].
    pub const MODELS_PULL: &str = "models_pull";
    /// The assistant's recommendation: [`super::advisor::RecommendRequest`], returns
    /// [`super::advisor::Recommendation`].
    pub const RECOMMEND: &str = "recommend";
    /// A message to the assistant: [`super::advisor::AskRequest`], returns
    /// [`super::advisor::AskReply`].
    pub const ASK: &str = "ask";
    /// What the user told the assistant about a project so far: [`super::ProjectRef`],
    /// returns [`super::advisor::Brief`].
    pub const BRIEF: &str = "brief";
    /// What will likely go wrong with a run's settings: [`super::train::ProjectTrainRequest`],
    /// returns `Vec<advisor::Warning>`.
    pub const TRAIN_REVIEW: &str = "train_review";
    /// Installed models: no arguments, returns `Vec<ModelInfo>`.
    pub const MODELS_LIST: &str = "models_list";
    /// Remove an installed model (refused while a project is based on it): [`super::ModelRef`],
    /// returns `()`.
    pub const MODELS_REMOVE: &str = "models_remove";
    /// Remote OpenAI-compatible endpoints: no arguments, returns `Vec<Endpoint>`.
    pub const ENDPOINT_LIST: &str = "endpoint_list";
    /// Add (or replace) an endpoint, its key going to the OS keyring: [`super::EndpointAdd`],
    /// returns [`super::Endpoint`].
    pub const ENDPOINT_ADD: &str = "endpoint_add";
    /// Ask an endpoint for its models with its key: [`super::EndpointRef`], returns
    /// [`super::EndpointTest`].
    pub const ENDPOINT_TEST: &str = "endpoint_test";
    /// Forget an endpoint and delete its key from the keyring: [`super::EndpointRef`], returns
    /// `()`.
    pub const ENDPOINT_REMOVE: &str = "endpoint_remove";
    /// The native open-file dialog: no arguments, returns `Option<String>` (the path chosen).
    pub const PICK_FILE: &str = "pick_file";
    /// Draw a chart with plotters: [`super::chart::ChartRequest`], returns the SVG.
    pub const CHART_SVG: &str = "chart_svg";
    /// Check the home for inconsistencies: [`super::DoctorRequest`], returns
    /// [`super::DoctorReport`].
    pub const DOCTOR: &str = "doctor";
    /// A project's dataset versions: [`super::ProjectRef`], returns
    /// `Vec<dataset::DatasetSummary>`.
    pub const DATA_LIST: &str = "data_list";
    /// The sample datasets: no arguments, returns `Vec<dataset::SampleDataset>`.
    pub const DATA_SAMPLES: &str = "data_samples";
    /// Columns and detected mapping of a file before import: [`super::dataset::ImportSource`],
    /// returns [`super::dataset::Inspection`].
    pub const DATA_INSPECT: &str = "data_inspect";
    /// Import a file or sample: [`super::dataset::ImportRequest`] and `events` (a
    /// `Channel<dataset::ImportProgress>`, told the rows read as it goes), returns
    /// [`super::dataset::DatasetDetail`].
    pub const DATA_IMPORT: &str = "data_import";
    /// Stop the imports this window started (they end with [`super::ErrorCode::Cancelled`]
    /// and change nothing): no arguments, returns `()`.
    pub const DATA_IMPORT_CANCEL: &str = "data_import_cancel";
    /// A dataset's report as committed: [`super::dataset::DatasetRef`], returns
    /// [`super::dataset::DatasetDetail`].
    pub const DATA_REPORT: &str = "data_report";
    /// Apply fixes (a new version): [`super::dataset::FixRequest`], returns
    /// [`super::dataset::DatasetDetail`].
    pub const DATA_FIX: &str = "data_fix";
    /// Stream a reply: [`super::chat::ChatRequest`] and `events` (a channel of
    /// [`super::chat::ChatEvent`]); returns nothing when the reply ends.
    pub const CHAT_SEND: &str = "chat_send";
    /// Stop a reply: [`super::chat::ChatStop`], returns whether it was running.
    pub const CHAT_STOP: &str = "chat_stop";
    /// Save a conversation: [`super::chat::Conversation`], returns nothing.
    pub const CHAT_SAVE: &str = "chat_save";
    /// A project's conversations, newest first: [`super::ProjectRef`], returns
    /// `Vec<chat::Conversation>`.
    pub const CHAT_LIST: &str = "chat_list";
    /// A project's runs: [`super::ProjectRef`], returns `Vec<train::RunSummary>`.
    pub const RUNS: &str = "runs";
    /// The recommended run, its reasons and pre-flight checks: [`super::ProjectRef`], returns
    /// [`super::train::TrainPlan`].
    pub const TRAIN_PLAN: &str = "train_plan";
    /// Time and memory of a run, measured here: [`super::train::ProjectTrainRequest`],
    /// returns [`super::train::Estimate`].
    pub const TRAIN_ESTIMATE: &str = "train_estimate";
    /// Start training as a background job, here or on a registered cluster:
    /// [`super::train::TrainStart`], returns [`super::train::JobInfo`].
    pub const TRAIN_START: &str = "train_start";
    /// The registered clusters a run can be sent to: no arguments, returns
    /// `Vec<cluster::Cluster>`.
    pub const CLUSTER_LIST: &str = "cluster_list";
    /// Every job of the home, newest first: no arguments, returns `Vec<train::JobInfo>`.
    pub const JOB_LIST: &str = "job_list";
    /// Ask a job to stop after its step: [`super::JobRef`], returns `bool` (whether this
    /// window's process runs it).
    pub const JOB_STOP: &str = "job_stop";
    /// The checkpoints a run keeps: [`train::RunRef`], returns `Vec<train::Checkpoint>`.
    pub const RUN_CHECKPOINTS: &str = "run_checkpoints";
    /// Everything a job said (this process's record, or the job's log file):
    /// [`super::JobRef`], returns `Vec<train::JobEvent>`.
    pub const JOB_EVENTS: &str = "job_events";
    /// Write a job's log as text to the Downloads folder: [`super::JobRef`], returns the path.
    pub const JOB_LOG_SAVE: &str = "job_log_save";
    /// Stream a job's events (its history first) to a channel: [`super::JobRef`] and `events`
    /// (a `Channel<train::JobEvent>`), returns `bool` (whether this process runs it).
    pub const JOB_ATTACH: &str = "job_attach";
    /// Evaluate a model on its dataset's held-out rows: [`super::eval::EvalRequest`] and
    /// `events` (a channel of [`super::eval::EvalProgress`]), returns
    /// [`super::eval::Evaluation`] (saved and committed).
    pub const EVAL_RUN: &str = "eval_run";
    /// Stop the evaluations this window started (nothing is saved): no arguments, returns `()`.
    pub const EVAL_CANCEL: &str = "eval_cancel";
    /// A project's evaluations, newest first: [`super::ProjectRef`], returns
    /// `Vec<eval::EvalSummary>`.
    pub const EVAL_LIST: &str = "eval_list";
    /// One evaluation: [`super::eval::EvalRef`], returns [`super::eval::Evaluation`].
    pub const EVAL_SHOW: &str = "eval_show";
    /// Copy an evaluation's HTML report to the Downloads folder: [`super::eval::EvalRef`],
    /// returns the path.
    pub const EVAL_REPORT_SAVE: &str = "eval_report_save";
    /// Ask 2–4 models one prompt at once: [`super::eval::ArenaRequest`] and `events` (a
    /// channel of [`super::eval::ArenaEvent`]), returns [`super::eval::ArenaTurn`].
    pub const ARENA_SEND: &str = "arena_send";
    /// Vote on a turn: [`super::eval::VoteRequest`], returns [`super::eval::ArenaSession`].
    pub const ARENA_VOTE: &str = "arena_vote";
    /// A project's arena sessions, newest first: [`super::ProjectRef`], returns
    /// `Vec<eval::ArenaSession>`.
    pub const ARENA_SESSIONS: &str = "arena_sessions";
    /// Ratings from a project's votes: [`super::ProjectRef`], returns [`super::eval::Ratings`].
    pub const ARENA_RATINGS: &str = "arena_ratings";
    /// Votes as DPO preference pairs, committed: [`super::ProjectRef`], returns
    /// [`super::eval::PrefsExport`].
    pub const PREFS_EXPORT: &str = "prefs_export";
    /// Starts the local OpenAI-compatible server: [`super::serve::ServeConfig`], returns
    /// [`super::serve::ServeStatus`].
    pub const SERVE_START: &str = "serve_start";
    /// Stops it: no arguments, returns [`super::serve::ServeStatus`].
    pub const SERVE_STOP: &str = "serve_stop";
    /// The server now: no arguments, returns [`super::serve::ServeStatus`].
    pub const SERVE_STATUS: &str = "serve_status";
    /// Creates (or regenerates) the API key, shown once: no arguments, returns
    /// [`super::serve::ApiKey`].
    pub const SERVE_KEY_CREATE: &str = "serve_key_create";
    /// Revokes the API key: no arguments.
    pub const SERVE_KEY_REVOKE: &str = "serve_key_revoke";
    /// A chat request through the running server: [`super::serve::ServeTest`], returns
    /// [`super::serve::ServeTestReply`].
    pub const SERVE_TEST: &str = "serve_test";
    /// Every alias: no arguments, returns `Vec<serve::Alias>`.
    pub const ALIAS_LIST: &str = "alias_list";
    /// Creates or edits an alias: [`super::serve::AliasSave`], returns [`super::serve::Alias`].
    pub const ALIAS_SAVE: &str = "alias_save";
    /// Copies an alias: [`super::serve::AliasClone`], returns [`super::serve::Alias`].
    pub const ALIAS_CLONE: &str = "alias_clone";
    /// Makes a run the project's live version: [`super::serve::GoLive`], returns
    /// [`super::serve::Alias`].
    pub const GO_LIVE: &str = "go_live";
    /// Deletes an alias: [`super::serve::AliasRef`].
    pub const ALIAS_REMOVE: &str = "alias_remove";
    /// Recorded requests: [`super::serve::TraceFilter`], returns `Vec<serve::Trace>`.
    pub const TRACE_LIST: &str = "trace_list";
    /// Usage over them: [`super::serve::TraceFilter`], returns [`super::serve::TraceStats`].
    pub const TRACE_STATS: &str = "trace_stats";
    /// Rates or tags a trace: [`super::serve::TraceFeedback`].
    pub const TRACE_FEEDBACK: &str = "trace_feedback";
    /// Traces into a project dataset: [`super::serve::TracesToDataset`], returns
    /// [`super::dataset::DatasetDetail`].
    pub const TRACES_DATASET: &str = "traces_dataset";
    /// Exports a run, with progress on a channel: [`super::export::ExportRequest`], returns
    /// [`super::export::ExportResult`].
    pub const EXPORT_RUN: &str = "export_run";

    /// Every command the shell registers, in one list (a test checks the shell against it).
    pub const ALL: &[&str] = &[
        PROJECT_LIST,
        PROJECT_NEW,
        PROJECT_SHOW,
        PROJECT_HISTORY,
        PROJECT_DIFF,
        PROJECT_ROLLBACK,
        SYSTEM_INFO,
        MODELS_LIST,
        MODELS_IMPORT,
        MODELS_REMOVE,
        CATALOG_LIST,
        MODELS_PULL,
        RECOMMEND,
        ASK,
        TRAIN_REVIEW,
        BRIEF,
        ENDPOINT_LIST,
        ENDPOINT_ADD,
        ENDPOINT_TEST,
        ENDPOINT_REMOVE,
        PICK_FILE,
        CHART_SVG,
        DOCTOR,
        DATA_LIST,
        DATA_SAMPLES,
        DATA_INSPECT,
        DATA_IMPORT,
        DATA_IMPORT_CANCEL,
        DATA_REPORT,
        DATA_FIX,
        CHAT_SEND,
        CHAT_STOP,
        CHAT_SAVE,
        CHAT_LIST,
        RUNS,
        TRAIN_PLAN,
        TRAIN_ESTIMATE,
        TRAIN_START,
        CLUSTER_LIST,
        JOB_LIST,
        JOB_STOP,
        JOB_EVENTS,
        JOB_LOG_SAVE,
        RUN_CHECKPOINTS,
        JOB_ATTACH,
        EVAL_RUN,
        EVAL_CANCEL,
        EVAL_LIST,
        EVAL_SHOW,
        EVAL_REPORT_SAVE,
        ARENA_SEND,
        ARENA_VOTE,
        ARENA_SESSIONS,
        ARENA_RATINGS,
        PREFS_EXPORT,
        SERVE_START,
        SERVE_STOP,
        SERVE_STATUS,
        SERVE_KEY_CREATE,
        SERVE_KEY_REVOKE,
        SERVE_TEST,
        ALIAS_LIST,
        ALIAS_SAVE,
        ALIAS_CLONE,
        ALIAS_REMOVE,
        GO_LIVE,
        TRACE_LIST,
        TRACE_STATS,
        TRACE_FEEDBACK,
        TRACES_DATASET,
        EXPORT_RUN,
    ];
}

/// Arguments of commands that act on one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRef {
    /// The job's id.
    pub id: String,
}

/// Arguments of [`cmd::DOCTOR`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorRequest {
    /// Repair what can be repaired safely (else only report).
    pub repair: bool,
}

/// What `vibeflow doctor` found in a home.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorReport {
    /// The home checked.
    pub home: String,
    /// Projects checked.
    pub projects: usize,
    /// Dataset versions and runs compared between git and the index.
    pub versions: usize,
    /// Content objects checked (hashed).
    pub objects: usize,
    /// Everything found, repaired or not; empty when the home is consistent.
    pub findings: Vec<Finding>,
}

/// One inconsistency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Machine-readable kind: `tmp_leftover`, `git_lock`, `data_leftover`, `index_out_of_sync`,
    /// `run_interrupted`, `missing_object`, `corrupt_object`, `unreferenced_object`,
    /// `missing_folder`, `unindexed_project`, `not_a_repository`, `model_missing`,
    /// `model_damaged`, `database`.
    pub kind: String,
    /// The project concerned, if any.
    pub project: Option<String>,
    /// One line for a person: what is wrong (and, when not repaired, what to do).
    pub message: String,
    /// Whether it was repaired.
    pub repaired: bool,
}

/// Arguments of [`cmd::PROJECT_NEW`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewProject {
    /// Human name; the slug is derived from it.
    pub name: String,
}

/// Arguments of commands that act on one project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectRef {
    /// The project's slug (its folder name under `projects/`).
    pub slug: String,
}

/// One row of the project list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectSummary {
    /// Path-safe identifier, unique in the store.
    pub slug: String,
    /// Name as the user typed it.
    pub name: String,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: i64,
    /// Catalog id of the base model.
    pub base_model: String,
    /// `draft` (no finished run), `training` (a run is training) or `trained`.
    pub status: String,
}

/// Request of [`cmd::MODELS_IMPORT`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelImport {
    /// A `.gguf` file.
    pub path: String,
}

/// This machine, as Settings and the status bar show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemInfo {
    /// `linux`, `macos`, `windows`.
    pub os: String,
    /// `x86_64`, `aarch64`.
    pub arch: String,
    /// The CPU's brand name.
    pub cpu: String,
    /// Logical cores.
    pub cores: usize,
    /// CPU features the engine uses, present on this machine (`avx2`, `fma`, `neon` …).
    pub features: Vec<String>,
    /// Installed memory.
    pub memory_bytes: u64,
    /// Memory free now (what other programs leave).
    #[serde(default)]
    pub memory_free_bytes: u64,
    /// The GPU training runs on, when it is one: its name and memory.
    #[serde(default)]
    pub gpu: Option<Gpu>,
    /// Free space on the disk of the VibeFlow home.
    pub free_disk_bytes: u64,
    /// Where training and inference run (`cpu`, `cuda:0`, `metal`).
    pub device: String,
    /// The VibeFlow home (the data folder).
    pub home: String,
}
/// A GPU, as Settings and the assistant show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    /// Its name (`NVIDIA H100 80GB HBM3`, `Apple M2`).
    pub name: String,
    /// Its memory, bytes (on Apple silicon: the unified memory).
    pub memory_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectDetail {
    /// Path-safe identifier, unique in the store.
    pub slug: String,
    /// Name as the user typed it.
    pub name: String,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: i64,
    /// Catalog id of the base model.
    pub base_model: String,
    /// Absolute path of the project's git repository.
    pub path: String,
    /// Number of commits reachable from HEAD.
    pub commits: usize,
    /// Full id of the HEAD commit.
    pub head: String,
    /// The run that is the project's model now: the newest finished run, or the one a rollback
    /// restored; none before the first finished run.
    pub model_run: Option<String>,
}

/// `vibeflow diff -p P FROM [TO]`: what changed in the configuration, the dataset manifests
/// and the runs' records between two versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionDiff {
    /// The older version's commit id.
    pub from: String,
    /// The newer version's commit id.
    pub to: String,
    /// Each changed file.
    pub files: Vec<FileDiff>,
}

/// One file of a [`VersionDiff`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDiff {
    /// Path in the project, `/`-separated.
    pub path: String,
    /// `added`, `deleted` or `modified`.
    pub status: String,
    /// Unified diff: `@@` hunk headers, then lines starting with `+`, `-` or a space.
    pub patch: String,
}

/// Request of [`cmd::PROJECT_DIFF`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffRequest {
    /// Project slug.
    pub project: String,
    /// A tag (`v1`) or commit id.
    pub from: String,
    /// A tag or commit id; none: the current version.
    pub to: Option<String>,
}

/// Request of [`cmd::PROJECT_ROLLBACK`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackRequest {
    /// Project slug.
    pub project: String,
    /// A tag (`v1`) or commit id.
    pub to: String,
}

/// What `vibeflow rollback` did: one new commit that restores an earlier version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackOutcome {
    /// The new commit.
    pub commit: String,
    /// The version restored (its commit id).
    pub target: String,
    /// What was restored, in words (`dataset tech-qa v3 (the content of v1)`).
    pub restored: Vec<String>,
    /// The run that is the project's model after the rollback.
    pub model_run: Option<String>,
}

/// One commit of a project's history, newest first in lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    /// Full hexadecimal commit id.
    pub id: String,
    /// First line of the message.
    pub summary: String,
    /// Whole message.
    pub message: String,
    /// Author name.
    pub author: String,
    /// Commit time, seconds since the Unix epoch.
    pub time: i64,
    /// Tags pointing at this commit (`v1`, `v2` …).
    pub tags: Vec<String>,
}

/// An installed model, with figures read from its file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Store id (catalog id when the file matches a catalog card).
    pub id: String,
    /// Absolute path of the model file.
    pub path: String,
    /// File format: `gguf`.
    pub format: String,
    /// Architecture (`general.architecture`), e.g. `llama`.
    pub architecture: String,
    /// Parameter count, summed over the file's tensors.
    pub parameters: u64,
    /// Dominant tensor type by parameter count, e.g. `Q4_1`.
    pub quantization: String,
    /// Context length the model was trained for.
    pub context_length: u64,
    /// Whether the file embeds a chat template.
    pub chat_template: bool,
    /// File size in bytes.
    pub size_bytes: u64,
    /// sha256 of the file, hexadecimal.
    pub sha256: String,
}

/// Arguments of commands that act on one installed model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    /// The model's store id.
    pub id: String,
}

/// A remote OpenAI-compatible endpoint (`vibeflow keys list`). Its key is in the OS keyring,
/// never here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The name it is chosen by, e.g. `openai`.
    pub name: String,
    /// Base URL of its API, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Whether the keyring holds a key for it.
    pub has_key: bool,
    /// Seconds since the Unix epoch.
    pub added_at: i64,
}

/// Arguments of [`cmd::ENDPOINT_ADD`]. The key crosses once, into the keyring; `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointAdd {
    /// Name: letters, digits, `-` and `_`.
    pub name: String,
    /// Base URL (`http://` or `https://`), e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// The API key (empty: an endpoint without a key, e.g. a local server).
    pub key: String,
}

impl std::fmt::Debug for EndpointAdd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointAdd")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("key", &if self.key.is_empty() { "" } else { "<hidden>" })
            .finish()
    }
}

/// Arguments of commands that act on one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRef {
    /// The endpoint's name.
    pub name: String,
}

/// What an endpoint answered to `GET {base_url}/models` with its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointTest {
    /// It answered 200 with a model list.
    pub ok: bool,
    /// The HTTP status, when it answered.
    pub status: Option<u16>,
    /// The models it lists.
    pub models: Vec<String>,
    /// What happened, in words (the endpoint's own error message when it sent one).
    pub message: String,
}

/// Machine-readable error kinds. The UI matches on these, never on message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request was malformed (bad name, bad argument).
    InvalidInput,
    /// The thing asked for does not exist.
    NotFound,
    /// The thing to create exists already.
    AlreadyExists,
    /// A file's content did not match its expected hash.
    Integrity,
    /// Reading or writing a file failed.
    Io,
    /// The store (SQLite) failed.
    Store,
    /// Versioning (git) failed.
    Vcs,
    /// A model file could not be read.
    Model,
    /// A dataset file is malformed (the message says where).
    Data,
    /// The dataset's columns are ambiguous: the user must choose the mapping.
    MappingUncertain,
    /// The action does not fit the current state (resuming a finished run, a run still
    /// training in another process).
    Conflict,
    /// The OS keyring refused or is missing.
    Keyring,
    /// A server (the Hugging Face hub) could not be reached or broke off: offline, or down.
    Network,
    /// A server refused access: a gated model's license to accept, or a token to save.
    Unauthorized,
    /// The user stopped it; nothing changed.
    Cancelled,
    /// Anything else.
    Internal,
}

/// An error as the UI sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// One line for a person: what failed and what to do.
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_code_serializes_as_snake_case() {
        let err = ApiError { code: ErrorCode::AlreadyExists, message: "x".into() };
        let json = serde_json::to_string(&err).unwrap();
        assert_eq!(json, r#"{"code":"already_exists","message":"x"}"#);
    }

    #[test]
    fn commit_info_field_names_are_stable() {
        let c = CommitInfo {
            id: "abc".into(),
            summary: "s".into(),
            message: "s\n".into(),
            author: "a".into(),
            time: 1,
            tags: vec!["v1".into()],
        };
        let v: serde_json::Value = serde_json::to_value(&c).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["author", "id", "message", "summary", "tags", "time"]);
    }
}
