//! The desktop shell: a Tauri window around the Leptos UI. Each command is one line over the
//! `app` crate, the same library the CLI uses; errors cross as `api::ApiError` with a code.
//!
//! The home is opened once, at start, and shared; commands are async and run their work on
//! the blocking pool, so a slow one (a doctor hashing every object) never freezes the window.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use api::chat::{ChatEvent, ChatRequest, ChatStop, Conversation};
use api::dataset::{
    DatasetDetail, DatasetRef, DatasetSummary, FixRequest, ImportProgress, ImportRequest,
    ImportSource, Inspection, SampleDataset,
};
use api::eval::{
    ArenaEvent, ArenaRequest, ArenaSession, ArenaTurn, EvalProgress, EvalRef, EvalRequest,
    EvalSummary, Evaluation, PrefsExport, Ratings, VoteRequest,
};
use api::export::{ExportProgress, ExportRequest, ExportResult};
use api::serve::{
    Alias, AliasClone, AliasRef, AliasSave, ApiKey, GoLive, ServeConfig, ServeStatus, ServeTest,
    ServeTestReply, Trace, TraceFeedback, TraceFilter, TraceStats, TracesToDataset,
};
use api::train::{
    Checkpoint, Estimate, JobEvent, JobInfo, ProjectTrainRequest, RunRef, RunSummary, TrainPlan,
};
use api::{
    ApiError, CommitInfo, DiffRequest, DoctorReport, DoctorRequest, Endpoint, EndpointAdd,
    EndpointRef, EndpointTest, ErrorCode, JobRef, ModelInfo, ModelRef, NewProject, ProjectDetail,
    ProjectRef, ProjectSummary, RollbackOutcome, RollbackRequest, VersionDiff,
};
use app::{App, Jobs, Playground};
use tauri::Manager;
use tauri::ipc::Channel;

type Res<T> = Result<T, ApiError>;

/// What every command shares: the open home, its jobs and the Playground's loaded models.
struct Shell {
    app: Arc<App>,
    jobs: Jobs,
    playground: Playground,
    /// Bumped by Cancel: an import whose generation is older stops at its next batch.
    imports: Arc<AtomicU64>,
    /// The same for evaluations.
    evals: Arc<AtomicU64>,
    /// The local OpenAI-compatible server, while it runs.
    server: Arc<std::sync::Mutex<Option<serve::Server>>>,
}

/// Runs `f` on the blocking pool with the shared home.
async fn blocking<T: Send + 'static>(
    shell: &Shell,
    f: impl FnOnce(&App, &Jobs) -> app::Result<T> + Send + 'static,
) -> Res<T> {
    let (app, jobs) = (shell.app.clone(), shell.jobs.clone());
    tauri::async_runtime::spawn_blocking(move || f(&app, &jobs))
        .await
        .map_err(|e| ApiError { code: ErrorCode::Internal, message: e.to_string() })?
        .map_err(ApiError::from)
}

type S<'a> = tauri::State<'a, Shell>;

#[tauri::command]
async fn project_list(s: S<'_>) -> Res<Vec<ProjectSummary>> {
    blocking(&s, |a, _| a.project_list()).await
}

#[tauri::command]
async fn project_new(s: S<'_>, req: NewProject) -> Res<ProjectDetail> {
    blocking(&s, move |a, _| a.project_new(&req.name)).await
}

#[tauri::command]
async fn project_show(s: S<'_>, req: ProjectRef) -> Res<ProjectDetail> {
    blocking(&s, move |a, _| a.project_show(&req.slug)).await
}

#[tauri::command]
async fn project_history(s: S<'_>, req: ProjectRef) -> Res<Vec<CommitInfo>> {
    blocking(&s, move |a, _| a.history(&req.slug)).await
}

#[tauri::command]
async fn project_diff(s: S<'_>, req: DiffRequest) -> Res<VersionDiff> {
    blocking(&s, move |a, _| a.diff(&req.project, &req.from, req.to.as_deref())).await
}

#[tauri::command]
async fn project_rollback(s: S<'_>, req: RollbackRequest) -> Res<RollbackOutcome> {
    blocking(&s, move |a, _| a.rollback(&req.project, &req.to)).await
}

#[tauri::command]
async fn system_info(s: S<'_>) -> Res<api::SystemInfo> {
    blocking(&s, |a, _| a.system_info()).await
}

#[tauri::command]
async fn models_import(s: S<'_>, req: api::ModelImport) -> Res<ModelInfo> {
    blocking(&s, move |a, _| a.model_import(std::path::Path::new(&req.path), None)).await
}

#[tauri::command]
async fn models_list(s: S<'_>) -> Res<Vec<ModelInfo>> {
    blocking(&s, |a, _| a.models_list()).await
}

#[tauri::command]
async fn catalog_list(s: S<'_>) -> Res<Vec<api::advisor::CatalogModel>> {
    blocking(&s, |a, _| a.catalog_list()).await
}

#[tauri::command]
async fn models_pull(
    s: S<'_>,
    req: api::advisor::PullRequest,
    events: Channel<api::advisor::PullProgress>,
) -> Res<ModelInfo> {
    blocking(&s, move |a, _| {
        a.models_pull(&req.spec, &mut |p| {
            let _ = events.send(p);
        })
    })
    .await
}

#[tauri::command]
async fn doctor(s: S<'_>, req: DoctorRequest) -> Res<DoctorReport> {
    blocking(&s, move |a, _| a.doctor(req.repair)).await
}

#[tauri::command]
async fn data_list(s: S<'_>, req: ProjectRef) -> Res<Vec<DatasetSummary>> {
    blocking(&s, move |a, _| a.data_list(&req.slug)).await
}

#[tauri::command]
async fn data_samples(s: S<'_>) -> Res<Vec<SampleDataset>> {
    blocking(&s, |a, _| a.data_samples()).await
}

#[tauri::command]
async fn data_inspect(s: S<'_>, req: ImportSource) -> Res<Inspection> {
    blocking(&s, move |a, _| a.data_inspect(&req)).await
}

#[tauri::command]
async fn data_import(
    s: S<'_>,
    req: ImportRequest,
    events: Channel<ImportProgress>,
) -> Res<DatasetDetail> {
    let (imports, started) = (s.imports.clone(), std::time::Instant::now());
    let generation = imports.load(Ordering::SeqCst);
    blocking(&s, move |a, _| {
        let on_rows = |rows: usize| {
            let seconds = started.elapsed().as_secs_f64();
            let _ = events.send(ImportProgress { rows, seconds });
            imports.load(Ordering::SeqCst) == generation
        };
        a.data_import_watched(&req, &on_rows)
    })
    .await
}

#[tauri::command]
async fn data_import_cancel(s: S<'_>) -> Res<()> {
    s.imports.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[tauri::command]
async fn data_report(s: S<'_>, req: DatasetRef) -> Res<DatasetDetail> {
    blocking(&s, move |a, _| a.data_report(&req.project, req.dataset.as_deref())).await
}

#[tauri::command]
async fn data_fix(s: S<'_>, req: FixRequest) -> Res<DatasetDetail> {
    blocking(&s, move |a, _| a.data_fix_flags(&req.project, req.dataset.as_deref(), &req.fixes))
        .await
}

#[tauri::command]
async fn runs(s: S<'_>, req: ProjectRef) -> Res<Vec<RunSummary>> {
    blocking(&s, move |a, _| a.runs(&req.slug)).await
}

#[tauri::command]
async fn train_plan(s: S<'_>, req: ProjectRef) -> Res<TrainPlan> {
    blocking(&s, move |a, _| a.train_plan(&req.slug)).await
}

#[tauri::command]
async fn train_estimate(s: S<'_>, req: ProjectTrainRequest) -> Res<Estimate> {
    blocking(&s, move |a, _| a.train_estimate(&req)).await
}

#[tauri::command]
async fn train_review(s: S<'_>, req: ProjectTrainRequest) -> Res<Vec<api::advisor::Warning>> {
    blocking(&s, move |a, _| a.train_review(&req)).await
}

#[tauri::command]
async fn brief(s: S<'_>, req: ProjectRef) -> Res<api::advisor::Brief> {
    blocking(&s, move |a, _| a.brief(&req.slug)).await
}

#[tauri::command]
async fn recommend(
    s: S<'_>,
    req: api::advisor::RecommendRequest,
) -> Res<api::advisor::Recommendation> {
    blocking(&s, move |a, _| a.recommend(&req)).await
}

#[tauri::command]
async fn ask(s: S<'_>, req: api::advisor::AskRequest) -> Res<api::advisor::AskReply> {
    blocking(&s, move |a, _| a.ask(&req)).await
}

#[tauri::command]
async fn train_start(s: S<'_>, req: api::train::TrainStart) -> Res<JobInfo> {
    blocking(&s, move |a, j| j.start_train_on(a, &req.request, req.on)).await
}

#[tauri::command]
async fn cluster_list(s: S<'_>) -> Res<Vec<api::cluster::Cluster>> {
    blocking(&s, |a, _| a.clusters()).await
}

#[tauri::command]
async fn job_list(s: S<'_>) -> Res<Vec<JobInfo>> {
    blocking(&s, |a, j| j.list(a)).await
}

#[tauri::command]
async fn job_stop(s: S<'_>, req: JobRef) -> Res<bool> {
    Ok(s.jobs.stop(&req.id))
}

#[tauri::command]
async fn job_events(s: S<'_>, req: JobRef) -> Res<Vec<JobEvent>> {
    blocking(&s, move |_, j| j.events(&req.id)).await
}

#[tauri::command]
async fn job_log_save(s: S<'_>, tauri: tauri::AppHandle, req: JobRef) -> Res<String> {
    // The user's Downloads folder, as a browser would; the home when the system names none.
    let dir = tauri.path().download_dir().unwrap_or_else(|_| s.app.home().join("exports"));
    blocking(&s, move |_, j| j.save_log(&req.id, &dir)).await.map(|p| p.display().to_string())
}

#[tauri::command]
async fn run_checkpoints(s: S<'_>, req: RunRef) -> Res<Vec<Checkpoint>> {
    blocking(&s, move |a, _| a.run_checkpoints(&req.project, &req.run)).await
}

#[tauri::command]
async fn models_remove(s: S<'_>, req: ModelRef) -> Res<()> {
    blocking(&s, move |a, _| a.model_remove(&req.id)).await
}

#[tauri::command]
async fn endpoint_list(s: S<'_>) -> Res<Vec<Endpoint>> {
    blocking(&s, |a, _| a.endpoint_list()).await
}

#[tauri::command]
async fn endpoint_add(s: S<'_>, req: EndpointAdd) -> Res<Endpoint> {
    blocking(&s, move |a, _| a.endpoint_add(&req)).await
}

#[tauri::command]
async fn endpoint_test(s: S<'_>, req: EndpointRef) -> Res<EndpointTest> {
    blocking(&s, move |a, _| a.endpoint_test(&req.name)).await
}

#[tauri::command]
async fn endpoint_remove(s: S<'_>, req: EndpointRef) -> Res<()> {
    blocking(&s, move |a, _| a.endpoint_remove(&req.name)).await
}

#[tauri::command]
async fn chart_svg(req: api::chart::ChartRequest) -> Res<String> {
    Ok(app::chart_svg(&req))
}

/// The system's open-file dialog, for a dataset or a model; `None` when cancelled.
#[tauri::command]
async fn pick_file(tauri: tauri::AppHandle) -> Res<Option<String>> {
    use tauri_plugin_dialog::DialogExt;
    let (tx, rx) = std::sync::mpsc::channel();
    tauri.dialog().file().pick_file(move |f| {
        let _ = tx.send(f.and_then(|f| f.into_path().ok()));
    });
    let picked = tauri::async_runtime::spawn_blocking(move || rx.recv().ok().flatten())
        .await
        .map_err(|e| ApiError { code: ErrorCode::Internal, message: e.to_string() })?;
    Ok(picked.map(|p| p.display().to_string()))
}

#[tauri::command]
async fn job_attach(s: S<'_>, req: JobRef, events: Channel<JobEvent>) -> Res<bool> {
    // A window that went away ends its subscription with the first event it cannot take.
    Ok(s.jobs.subscribe(&req.id, Box::new(move |e| events.send(e.clone()).is_ok())))
}

#[tauri::command]
async fn chat_send(s: S<'_>, req: ChatRequest, events: Channel<ChatEvent>) -> Res<()> {
    let playground = s.playground.clone();
    blocking(&s, move |a, _| {
        let mut send = |e: ChatEvent| {
            let _ = events.send(e);
        };
        if let Err(e) = playground.send(a, &req, &mut send) {
            send(ChatEvent::Failed { message: e.to_string() });
        }
        Ok(())
    })
    .await
}

#[tauri::command]
async fn chat_stop(s: S<'_>, req: ChatStop) -> Res<bool> {
    Ok(s.playground.stop(&req.id))
}

#[tauri::command]
async fn chat_save(s: S<'_>, req: Conversation) -> Res<()> {
    blocking(&s, move |a, _| a.chat_save(&req)).await
}

#[tauri::command]
async fn chat_list(s: S<'_>, req: ProjectRef) -> Res<Vec<Conversation>> {
    blocking(&s, move |a, _| a.chat_list(&req.slug)).await
}

#[tauri::command]
async fn eval_run(s: S<'_>, req: EvalRequest, events: Channel<EvalProgress>) -> Res<Evaluation> {
    let evals = s.evals.clone();
    let generation = evals.load(Ordering::SeqCst);
    blocking(&s, move |a, _| {
        a.evaluate(&req, &mut |p| {
            let _ = events.send(p.clone());
            evals.load(Ordering::SeqCst) == generation
        })
    })
    .await
}

#[tauri::command]
async fn eval_cancel(s: S<'_>) -> Res<()> {
    s.evals.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[tauri::command]
async fn eval_list(s: S<'_>, req: ProjectRef) -> Res<Vec<EvalSummary>> {
    blocking(&s, move |a, _| a.eval_list(&req.slug)).await
}

#[tauri::command]
async fn eval_show(s: S<'_>, req: EvalRef) -> Res<Evaluation> {
    blocking(&s, move |a, _| a.eval_show(&req.project, &req.id)).await
}

#[tauri::command]
async fn eval_report_save(s: S<'_>, tauri: tauri::AppHandle, req: EvalRef) -> Res<String> {
    let dir = tauri.path().download_dir().unwrap_or_else(|_| s.app.home().join("exports"));
    blocking(&s, move |a, _| a.eval_report_save(&req.project, &req.id, &dir))
        .await
        .map(|p| p.display().to_string())
}

#[tauri::command]
async fn arena_send(s: S<'_>, req: ArenaRequest, events: Channel<ArenaEvent>) -> Res<ArenaTurn> {
    let playground = s.playground.clone();
    blocking(&s, move |a, _| {
        a.arena_turn(&playground, &req, &|e| {
            let _ = events.send(e);
        })
    })
    .await
}

#[tauri::command]
async fn arena_vote(s: S<'_>, req: VoteRequest) -> Res<ArenaSession> {
    blocking(&s, move |a, _| a.arena_vote(&req)).await
}

#[tauri::command]
async fn arena_sessions(s: S<'_>, req: ProjectRef) -> Res<Vec<ArenaSession>> {
    blocking(&s, move |a, _| a.arena_sessions(Some(&req.slug))).await
}

#[tauri::command]
async fn arena_ratings(s: S<'_>, req: ProjectRef) -> Res<Ratings> {
    blocking(&s, move |a, _| a.arena_ratings(Some(&req.slug))).await
}

#[tauri::command]
async fn prefs_export(s: S<'_>, req: ProjectRef) -> Res<PrefsExport> {
    blocking(&s, move |a, _| a.prefs_export(&req.slug, None)).await
}

/// A server error as the window shows it.
fn server_error(e: serve::Error) -> app::Error {
    match e {
        serve::Error::App(e) => e,
        // What to change (the address, the port, a key) is in the message.
        e => app::Error::InvalidInput(e.to_string()),
    }
}

/// The running server's status, or the stopped one.
fn serve_status_of(app: &App, server: &Option<serve::Server>) -> app::Result<ServeStatus> {
    match server {
        Some(s) => Ok(s.status()),
        None => serve::stopped_status(app).map_err(server_error),
    }
}

#[tauri::command]
async fn serve_start(s: S<'_>, req: ServeConfig) -> Res<ServeStatus> {
    let (server, shared) = (s.server.clone(), s.app.clone());
    blocking(&s, move |a, _| {
        let mut slot = server.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let started = serve::Server::start(shared, req).map_err(server_error)?;
            *slot = Some(started);
        }
        serve_status_of(a, &slot)
    })
    .await
}

#[tauri::command]
async fn serve_stop(s: S<'_>) -> Res<ServeStatus> {
    let server = s.server.clone();
    blocking(&s, move |a, _| {
        let running = server.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(r) = running {
            r.stop();
        }
        serve_status_of(a, &None)
    })
    .await
}

#[tauri::command]
async fn serve_status(s: S<'_>) -> Res<ServeStatus> {
    let server = s.server.clone();
    blocking(&s, move |a, _| serve_status_of(a, &server.lock().unwrap_or_else(|e| e.into_inner())))
        .await
}

#[tauri::command]
async fn serve_key_create(s: S<'_>) -> Res<ApiKey> {
    let server = s.server.clone();
    blocking(&s, move |a, _| {
        let key = a.serve_key_create()?;
        if let Some(s) = &*server.lock().unwrap_or_else(|e| e.into_inner()) {
            s.reload_key().map_err(server_error)?;
        }
        Ok(key)
    })
    .await
}

#[tauri::command]
async fn serve_key_revoke(s: S<'_>) -> Res<()> {
    let server = s.server.clone();
    blocking(&s, move |a, _| {
        a.serve_key_revoke()?;
        if let Some(s) = &*server.lock().unwrap_or_else(|e| e.into_inner()) {
            s.reload_key().map_err(server_error)?;
        }
        Ok(())
    })
    .await
}

#[tauri::command]
async fn serve_test(s: S<'_>, req: ServeTest) -> Res<ServeTestReply> {
    let url =
        s.server.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|s| s.url().to_string());
    blocking(&s, move |a, _| {
        let url = url.ok_or_else(|| {
            app::Error::Conflict("the server is not running: start it first".into())
        })?;
        a.serve_ask(&url, &req)
    })
    .await
}

#[tauri::command]
async fn alias_list(s: S<'_>) -> Res<Vec<Alias>> {
    blocking(&s, |a, _| a.alias_list()).await
}

#[tauri::command]
async fn alias_save(s: S<'_>, req: AliasSave) -> Res<Alias> {
    blocking(&s, move |a, _| a.alias_save(&req.alias, req.replace)).await
}

#[tauri::command]
async fn alias_clone(s: S<'_>, req: AliasClone) -> Res<Alias> {
    blocking(&s, move |a, _| a.alias_clone(&req.from, &req.to)).await
}

#[tauri::command]
async fn go_live(s: S<'_>, req: GoLive) -> Res<Alias> {
    blocking(&s, move |a, _| a.go_live(&req.project, &req.run)).await
}

#[tauri::command]
async fn alias_remove(s: S<'_>, req: AliasRef) -> Res<()> {
    blocking(&s, move |a, _| a.alias_remove(&req.alias)).await
}

#[tauri::command]
async fn trace_list(s: S<'_>, req: TraceFilter) -> Res<Vec<Trace>> {
    blocking(&s, move |a, _| a.trace_list(&req)).await
}

#[tauri::command]
async fn trace_stats(s: S<'_>, req: TraceFilter) -> Res<TraceStats> {
    blocking(&s, move |a, _| a.trace_stats(&req)).await
}

#[tauri::command]
async fn trace_feedback(s: S<'_>, req: TraceFeedback) -> Res<()> {
    blocking(&s, move |a, _| a.trace_feedback(&req)).await
}

#[tauri::command]
async fn traces_dataset(s: S<'_>, req: TracesToDataset) -> Res<DatasetDetail> {
    blocking(&s, move |a, _| a.traces_to_dataset(&req)).await
}

#[tauri::command]
async fn export_run(
    s: S<'_>,
    req: ExportRequest,
    events: Channel<ExportProgress>,
) -> Res<ExportResult> {
    blocking(&s, move |a, _| {
        a.export(&req, &mut |p| {
            let _ = events.send(p);
        })
    })
    .await
}

/// Starts the desktop app.
pub fn run() {
    let result = tauri::Builder::default()
        .plugin(tauri_plugin_fs::init())
        .plugin(tauri_plugin_dialog::init())
        .setup(|tauri| {
            let app = App::open_default()?;
            let jobs = Jobs::new(app.home());
            let imports = Arc::new(AtomicU64::new(0));
            tauri.manage(Shell {
                app: Arc::new(app),
                jobs,
                playground: Playground::new(),
                imports,
                evals: Arc::new(AtomicU64::new(0)),
                server: Default::default(),
            });
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            project_list,
            project_new,
            project_show,
            project_history,
            project_diff,
            project_rollback,
            system_info,
            models_list,
            models_import,
            catalog_list,
            models_pull,
            doctor,
            data_list,
            data_samples,
            data_inspect,
            data_import,
            data_import_cancel,
            data_report,
            data_fix,
            chat_send,
            chat_stop,
            chat_save,
            chat_list,
            runs,
            train_plan,
            train_estimate,
            train_review,
            recommend,
            ask,
            brief,
            train_start,
            cluster_list,
            job_list,
            job_stop,
            job_events,
            job_log_save,
            run_checkpoints,
            models_remove,
            endpoint_list,
            endpoint_add,
            endpoint_test,
            endpoint_remove,
            pick_file,
            chart_svg,
            job_attach,
            eval_run,
            eval_cancel,
            eval_list,
            eval_show,
            eval_report_save,
            arena_send,
            arena_vote,
            arena_sessions,
            arena_ratings,
            prefs_export,
            serve_start,
            serve_stop,
            serve_status,
            serve_key_create,
            serve_key_revoke,
            serve_test,
            alias_list,
            alias_save,
            alias_clone,
            alias_remove,
            go_live,
            trace_list,
            trace_stats,
            trace_feedback,
            traces_dataset,
            export_run
        ])
        .run(tauri::generate_context!());
    if let Err(e) = result {
        eprintln!("error: cannot start the VibeFlow window: {e}");
        std::process::exit(1);
    }
}
