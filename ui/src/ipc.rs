//! The one typed wrapper over Tauri's `invoke`: components call these functions, never `invoke`
//! with strings. Command names and types come from the `api` crate.

use api::{
    ApiError, CommitInfo, DoctorReport, DoctorRequest, ErrorCode, ModelInfo, NewProject,
    ProjectDetail, ProjectRef, ProjectSummary, cmd,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = ["window", "__TAURI__", "core"], js_name = invoke, catch)]
    async fn tauri_invoke(cmd: &str, args: JsValue) -> Result<JsValue, JsValue>;
}

/// Tauri passes named arguments; every command takes its request as `req`.
#[derive(Serialize)]
struct Args<'a, T: Serialize> {
    req: &'a T,
}

async fn call<T: DeserializeOwned>(cmd: &str, args: JsValue) -> Result<T, ApiError> {
    match tauri_invoke(cmd, args).await {
        Ok(v) => serde_wasm_bindgen::from_value(v)
            .map_err(|e| internal(format!("bad reply to {cmd}: {e}"))),
        Err(e) => Err(serde_wasm_bindgen::from_value::<ApiError>(e.clone()).unwrap_or_else(|_| {
            internal(e.as_string().unwrap_or_else(|| format!("{cmd} failed")))
        })),
    }
}

async fn call_with<R: Serialize, T: DeserializeOwned>(cmd: &str, req: &R) -> Result<T, ApiError> {
    let ser = serde_wasm_bindgen::Serializer::json_compatible();
    let args = Args { req }.serialize(&ser).map_err(|e| internal(e.to_string()))?;
    call(cmd, args).await
}

fn internal(message: String) -> ApiError {
    ApiError { code: ErrorCode::Internal, message }
}

/// The assistant's recommendation for a project and what its user said.
pub async fn recommend(
    req: api::advisor::RecommendRequest,
) -> Result<api::advisor::Recommendation, ApiError> {
    call_with(cmd::RECOMMEND, &req).await
}

/// A message to the assistant.
pub async fn ask(req: api::advisor::AskRequest) -> Result<api::advisor::AskReply, ApiError> {
    call_with(cmd::ASK, &req).await
}

/// What the user told the assistant about a project so far.
pub async fn brief(slug: String) -> Result<api::advisor::Brief, ApiError> {
    call_with(cmd::BRIEF, &ProjectRef { slug }).await
}

/// What will likely go wrong with a run's settings.
pub async fn train_review(
    req: api::train::ProjectTrainRequest,
) -> Result<Vec<api::advisor::Warning>, ApiError> {
    call_with(cmd::TRAIN_REVIEW, &req).await
}

/// All projects.
pub async fn project_list() -> Result<Vec<ProjectSummary>, ApiError> {
    call(cmd::PROJECT_LIST, JsValue::UNDEFINED).await
}

/// Creates a project.
pub async fn project_new(name: String) -> Result<ProjectDetail, ApiError> {
    call_with(cmd::PROJECT_NEW, &NewProject { name }).await
}

/// One project in full.
pub async fn project_show(slug: String) -> Result<ProjectDetail, ApiError> {
    call_with(cmd::PROJECT_SHOW, &ProjectRef { slug }).await
}

/// A project's commits, newest first.
pub async fn project_history(slug: String) -> Result<Vec<CommitInfo>, ApiError> {
    call_with(cmd::PROJECT_HISTORY, &ProjectRef { slug }).await
}

/// What changed between two versions (`to`: none for the current one).
pub async fn project_diff(
    project: String,
    from: String,
    to: Option<String>,
) -> Result<api::VersionDiff, ApiError> {
    call_with(cmd::PROJECT_DIFF, &api::DiffRequest { project, from, to }).await
}

/// Restores an earlier version as a new commit.
pub async fn project_rollback(
    project: String,
    to: String,
) -> Result<api::RollbackOutcome, ApiError> {
    call_with(cmd::PROJECT_ROLLBACK, &api::RollbackRequest { project, to }).await
}

/// This machine.
pub async fn system_info() -> Result<api::SystemInfo, ApiError> {
    call(cmd::SYSTEM_INFO, JsValue::UNDEFINED).await
}

/// Imports a GGUF file into the model store.
pub async fn models_import(path: String) -> Result<ModelInfo, ApiError> {
    call_with(cmd::MODELS_IMPORT, &api::ModelImport { path }).await
}

/// Installed models.
pub async fn models_list() -> Result<Vec<ModelInfo>, ApiError> {
    call(cmd::MODELS_LIST, JsValue::UNDEFINED).await
}

/// Checks the home for inconsistencies; with `repair`, repairs what is safe.
pub async fn doctor(repair: bool) -> Result<DoctorReport, ApiError> {
    call_with(cmd::DOCTOR, &DoctorRequest { repair }).await
}

/// A project's dataset versions.
pub async fn data_list(slug: String) -> Result<Vec<api::dataset::DatasetSummary>, ApiError> {
    call_with(cmd::DATA_LIST, &ProjectRef { slug }).await
}

/// The sample datasets shipped with VibeFlow.
pub async fn data_samples() -> Result<Vec<api::dataset::SampleDataset>, ApiError> {
    call(cmd::DATA_SAMPLES, JsValue::UNDEFINED).await
}

/// A file's columns and detected mapping, before import.
pub async fn data_inspect(
    source: api::dataset::ImportSource,
) -> Result<api::dataset::Inspection, ApiError> {
    call_with(cmd::DATA_INSPECT, &source).await
}

/// Imports a file or sample into a project.
pub async fn data_import(
    req: api::dataset::ImportRequest,
    on_progress: impl FnMut(api::dataset::ImportProgress) + 'static,
) -> Result<api::dataset::DatasetDetail, ApiError> {
    call_streaming(cmd::DATA_IMPORT, &req, on_progress).await
}

/// The model catalog, with what is installed.
pub async fn catalog_list() -> Result<Vec<api::advisor::CatalogModel>, ApiError> {
    call(cmd::CATALOG_LIST, JsValue::UNDEFINED).await
}

/// Downloads a model from the Hugging Face hub (a catalog id, `REPO` or `REPO/FILE`), with its
/// progress.
pub async fn models_pull(
    spec: String,
    on_progress: impl FnMut(api::advisor::PullProgress) + 'static,
) -> Result<ModelInfo, ApiError> {
    call_streaming(cmd::MODELS_PULL, &api::advisor::PullRequest { spec }, on_progress).await
}

/// Stops the imports this window started.
pub async fn data_import_cancel() -> Result<(), ApiError> {
    call(cmd::DATA_IMPORT_CANCEL, JsValue::UNDEFINED).await
}

/// A dataset's committed report.
pub async fn data_report(
    project: String,
    dataset: Option<String>,
) -> Result<api::dataset::DatasetDetail, ApiError> {
    call_with(cmd::DATA_REPORT, &api::dataset::DatasetRef { project, dataset }).await
}

/// Applies fixes, as the report's issues name them.
pub async fn data_fix(
    project: String,
    dataset: Option<String>,
    fixes: Vec<String>,
) -> Result<api::dataset::DatasetDetail, ApiError> {
    call_with(cmd::DATA_FIX, &api::dataset::FixRequest { project, dataset, fixes }).await
}

/// Stops a reply in progress.
pub async fn chat_stop(id: String) -> Result<bool, ApiError> {
    call_with(cmd::CHAT_STOP, &api::chat::ChatStop { id }).await
}

/// Saves a Playground conversation.
pub async fn chat_save(c: api::chat::Conversation) -> Result<(), ApiError> {
    call_with(cmd::CHAT_SAVE, &c).await
}

/// A project's saved conversations, newest first.
pub async fn chat_list(slug: String) -> Result<Vec<api::chat::Conversation>, ApiError> {
    call_with(cmd::CHAT_LIST, &ProjectRef { slug }).await
}

/// The recommended run for a project.
pub async fn train_plan(slug: String) -> Result<api::train::TrainPlan, ApiError> {
    call_with(cmd::TRAIN_PLAN, &ProjectRef { slug }).await
}

/// Time and memory of a run, measured on this machine.
pub async fn train_estimate(
    req: api::train::ProjectTrainRequest,
) -> Result<api::train::Estimate, ApiError> {
    call_with(cmd::TRAIN_ESTIMATE, &req).await
}

/// A project's runs.
pub async fn runs(slug: String) -> Result<Vec<api::train::RunSummary>, ApiError> {
    call_with(cmd::RUNS, &ProjectRef { slug }).await
}

/// Starts training as a background job, here or on a registered cluster.
pub async fn train_start(req: api::train::TrainStart) -> Result<api::train::JobInfo, ApiError> {
    call_with(cmd::TRAIN_START, &req).await
}

/// The registered clusters a run can be sent to.
pub async fn cluster_list() -> Result<Vec<api::cluster::Cluster>, ApiError> {
    call(cmd::CLUSTER_LIST, JsValue::UNDEFINED).await
}

/// Every job of the home, newest first.
pub async fn job_list() -> Result<Vec<api::train::JobInfo>, ApiError> {
    call(cmd::JOB_LIST, JsValue::UNDEFINED).await
}

/// Everything a job said: this process's record, or the job's log file.
pub async fn job_events(id: String) -> Result<Vec<api::train::JobEvent>, ApiError> {
    call_with(cmd::JOB_EVENTS, &api::JobRef { id }).await
}

/// Writes a job's log to the Downloads folder; the file's path.
pub async fn job_log_save(id: String) -> Result<String, ApiError> {
    call_with(cmd::JOB_LOG_SAVE, &api::JobRef { id }).await
}

/// The checkpoints a run keeps, oldest first.
pub async fn run_checkpoints(
    project: String,
    run: String,
) -> Result<Vec<api::train::Checkpoint>, ApiError> {
    call_with(cmd::RUN_CHECKPOINTS, &api::train::RunRef { project, run }).await
}

/// Removes an installed model.
pub async fn models_remove(id: String) -> Result<(), ApiError> {
    call_with(cmd::MODELS_REMOVE, &api::ModelRef { id }).await
}

/// Remote OpenAI-compatible endpoints.
pub async fn endpoint_list() -> Result<Vec<api::Endpoint>, ApiError> {
    call(cmd::ENDPOINT_LIST, JsValue::UNDEFINED).await
}

/// Adds an endpoint; its key goes to the OS keyring.
pub async fn endpoint_add(req: api::EndpointAdd) -> Result<api::Endpoint, ApiError> {
    call_with(cmd::ENDPOINT_ADD, &req).await
}

/// Asks an endpoint for its models with its key.
pub async fn endpoint_test(name: String) -> Result<api::EndpointTest, ApiError> {
    call_with(cmd::ENDPOINT_TEST, &api::EndpointRef { name }).await
}

/// Forgets an endpoint and its key.
pub async fn endpoint_remove(name: String) -> Result<(), ApiError> {
    call_with(cmd::ENDPOINT_REMOVE, &api::EndpointRef { name }).await
}

/// A chart drawn by the back end, as SVG.
pub async fn chart_svg(req: api::chart::ChartRequest) -> Result<String, ApiError> {
    call_with(cmd::CHART_SVG, &req).await
}

/// The system's open-file dialog; the path chosen.
pub async fn pick_file() -> Result<Option<String>, ApiError> {
    call(cmd::PICK_FILE, JsValue::UNDEFINED).await
}

/// Asks a job to stop after its current step.
pub async fn job_stop(id: String) -> Result<bool, ApiError> {
    call_with(cmd::JOB_STOP, &api::JobRef { id }).await
}

#[wasm_bindgen]
extern "C" {
    /// Tauri's `Channel`: the back end sends events to it, `onmessage` receives them.
    #[wasm_bindgen(js_namespace = ["window", "__TAURI__", "core"], js_name = Channel)]
    type TauriChannel;

    #[wasm_bindgen(constructor, js_namespace = ["window", "__TAURI__", "core"], js_class = "Channel")]
    fn new() -> TauriChannel;

    #[wasm_bindgen(method, setter, js_name = onmessage)]
    fn set_onmessage(this: &TauriChannel, f: &js_sys::Function);
}

/// Streams the reply to `req` to `on_event` until it is done (or failed).
pub async fn chat_send(
    req: api::chat::ChatRequest,
    on_event: impl FnMut(api::chat::ChatEvent) + 'static,
) -> Result<(), ApiError> {
    call_streaming(cmd::CHAT_SEND, &req, on_event).await
}

/// Calls `cmd` with `req` and a channel whose messages go to `on_event` (as `T`).
async fn call_streaming<R: Serialize, T: DeserializeOwned + 'static, O: DeserializeOwned>(
    cmd: &str,
    req: &R,
    mut on_event: impl FnMut(T) + 'static,
) -> Result<O, ApiError> {
    let channel = TauriChannel::new();
    let handler = Closure::<dyn FnMut(JsValue)>::new(move |v: JsValue| {
        if let Ok(e) = serde_wasm_bindgen::from_value(v) {
            on_event(e);
        }
    });
    channel.set_onmessage(handler.as_ref().unchecked_ref());
    // The channel may outlive this call (a job goes on): the closure must too.
    handler.forget();
    let ser = serde_wasm_bindgen::Serializer::json_compatible();
    let req = req.serialize(&ser).map_err(|e| internal(e.to_string()))?;
    let args = js_sys::Object::new();
    js_sys::Reflect::set(&args, &"req".into(), &req).map_err(|_| internal("args".into()))?;
    js_sys::Reflect::set(&args, &"events".into(), &channel).map_err(|_| internal("args".into()))?;
    call(cmd, args.into()).await
}

/// Streams job `id`'s events to `on_event`, its history first, until the job ends or the page
/// goes away. Returns whether this window's process runs the job.
pub async fn job_attach(
    id: String,
    on_event: impl FnMut(api::train::JobEvent) + 'static,
) -> Result<bool, ApiError> {
    call_streaming(cmd::JOB_ATTACH, &api::JobRef { id }, on_event).await
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = ["window", "__TAURI__", "event"], js_name = listen, catch)]
    async fn tauri_listen(event: &str, handler: &js_sys::Function) -> Result<JsValue, JsValue>;
}

/// Calls `on_drop` with the path of each file dropped on the window (Tauri's drag-drop event),
/// for as long as the page lives.
pub fn on_file_drop(on_drop: impl Fn(String) + 'static) {
    let handler = Closure::<dyn Fn(JsValue)>::new(move |e: JsValue| {
        let paths = js_sys::Reflect::get(&e, &"payload".into())
            .and_then(|p| js_sys::Reflect::get(&p, &"paths".into()));
        if let Some(first) = paths.ok().and_then(|p| js_sys::Array::from(&p).get(0).as_string()) {
            on_drop(first);
        }
    });
    let f: js_sys::Function = handler.as_ref().unchecked_ref::<js_sys::Function>().clone();
    handler.forget();
    leptos::task::spawn_local(async move {
        let _ = tauri_listen("tauri://drag-drop", &f).await;
    });
}

/// Evaluates a model on its dataset's held-out rows, progress to `on_progress`; the saved
/// evaluation.
pub async fn eval_run(
    req: api::eval::EvalRequest,
    on_progress: impl FnMut(api::eval::EvalProgress) + 'static,
) -> Result<api::eval::Evaluation, ApiError> {
    call_streaming(cmd::EVAL_RUN, &req, on_progress).await
}

/// Stops this window's evaluations (nothing is saved).
pub async fn eval_cancel() -> Result<(), ApiError> {
    call(cmd::EVAL_CANCEL, JsValue::UNDEFINED).await
}

/// A project's evaluations, newest first.
pub async fn eval_list(slug: String) -> Result<Vec<api::eval::EvalSummary>, ApiError> {
    call_with(cmd::EVAL_LIST, &ProjectRef { slug }).await
}

/// One evaluation.
pub async fn eval_show(project: String, id: String) -> Result<api::eval::Evaluation, ApiError> {
    call_with(cmd::EVAL_SHOW, &api::eval::EvalRef { project, id }).await
}

/// Copies an evaluation's HTML report to the Downloads folder; its path.
pub async fn eval_report_save(project: String, id: String) -> Result<String, ApiError> {
    call_with(cmd::EVAL_REPORT_SAVE, &api::eval::EvalRef { project, id }).await
}

/// Asks every panel of an arena session one prompt, streamed to `on_event`; the turn.
pub async fn arena_send(
    req: api::eval::ArenaRequest,
    on_event: impl FnMut(api::eval::ArenaEvent) + 'static,
) -> Result<api::eval::ArenaTurn, ApiError> {
    call_streaming(cmd::ARENA_SEND, &req, on_event).await
}

/// Votes on a turn; the session as it now stands.
pub async fn arena_vote(req: api::eval::VoteRequest) -> Result<api::eval::ArenaSession, ApiError> {
    call_with(cmd::ARENA_VOTE, &req).await
}

/// A project's arena sessions, newest first.
pub async fn arena_sessions(slug: String) -> Result<Vec<api::eval::ArenaSession>, ApiError> {
    call_with(cmd::ARENA_SESSIONS, &ProjectRef { slug }).await
}

/// Ratings from a project's votes.
pub async fn arena_ratings(slug: String) -> Result<api::eval::Ratings, ApiError> {
    call_with(cmd::ARENA_RATINGS, &ProjectRef { slug }).await
}

/// The project's votes as DPO preference pairs, committed.
pub async fn prefs_export(slug: String) -> Result<api::eval::PrefsExport, ApiError> {
    call_with(cmd::PREFS_EXPORT, &ProjectRef { slug }).await
}

/// Starts the local OpenAI-compatible server.
pub async fn serve_start(
    cfg: api::serve::ServeConfig,
) -> Result<api::serve::ServeStatus, ApiError> {
    call_with(cmd::SERVE_START, &cfg).await
}

/// Stops the server.
pub async fn serve_stop() -> Result<api::serve::ServeStatus, ApiError> {
    call(cmd::SERVE_STOP, JsValue::UNDEFINED).await
}

/// The server now.
pub async fn serve_status() -> Result<api::serve::ServeStatus, ApiError> {
    call(cmd::SERVE_STATUS, JsValue::UNDEFINED).await
}

/// A new API key (replacing the old one), shown once.
pub async fn serve_key_create() -> Result<api::serve::ApiKey, ApiError> {
    call(cmd::SERVE_KEY_CREATE, JsValue::UNDEFINED).await
}

/// Revokes the API key.
pub async fn serve_key_revoke() -> Result<(), ApiError> {
    call(cmd::SERVE_KEY_REVOKE, JsValue::UNDEFINED).await
}

/// A chat request through the running server (traced like any client's).
pub async fn serve_test(
    model: String,
    prompt: String,
) -> Result<api::serve::ServeTestReply, ApiError> {
    call_with(cmd::SERVE_TEST, &api::serve::ServeTest { model, prompt }).await
}

/// Every alias.
pub async fn alias_list() -> Result<Vec<api::serve::Alias>, ApiError> {
    call(cmd::ALIAS_LIST, JsValue::UNDEFINED).await
}

/// Creates an alias, or replaces one.
pub async fn alias_save(
    alias: api::serve::Alias,
    replace: bool,
) -> Result<api::serve::Alias, ApiError> {
    call_with(cmd::ALIAS_SAVE, &api::serve::AliasSave { alias, replace }).await
}

/// Copies an alias under a new name.
pub async fn alias_clone(from: String, to: String) -> Result<api::serve::Alias, ApiError> {
    call_with(cmd::ALIAS_CLONE, &api::serve::AliasClone { from, to }).await
}

/// Makes a finished run the project's live version (the alias named after the project).
pub async fn go_live(project: String, run: String) -> Result<api::serve::Alias, ApiError> {
    call_with(cmd::GO_LIVE, &api::serve::GoLive { project, run }).await
}

/// Deletes an alias.
pub async fn alias_remove(alias: String) -> Result<(), ApiError> {
    call_with(cmd::ALIAS_REMOVE, &api::serve::AliasRef { alias }).await
}

/// Recorded requests, newest first.
pub async fn trace_list(
    filter: api::serve::TraceFilter,
) -> Result<Vec<api::serve::Trace>, ApiError> {
    call_with(cmd::TRACE_LIST, &filter).await
}

/// Usage over recorded requests.
pub async fn trace_stats(
    filter: api::serve::TraceFilter,
) -> Result<api::serve::TraceStats, ApiError> {
    call_with(cmd::TRACE_STATS, &filter).await
}

/// Rates or tags a trace.
pub async fn trace_feedback(req: api::serve::TraceFeedback) -> Result<(), ApiError> {
    call_with(cmd::TRACE_FEEDBACK, &req).await
}

/// Turns traces into a project dataset.
pub async fn traces_dataset(
    req: api::serve::TracesToDataset,
) -> Result<api::dataset::DatasetDetail, ApiError> {
    call_with(cmd::TRACES_DATASET, &req).await
}

/// Exports a run, progress to `on_progress`.
pub async fn export_run(
    req: api::export::ExportRequest,
    on_progress: impl FnMut(api::export::ExportProgress) + 'static,
) -> Result<api::export::ExportResult, ApiError> {
    call_streaming(cmd::EXPORT_RUN, &req, on_progress).await
}
