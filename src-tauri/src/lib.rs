//! The desktop shell: a Tauri window around the Leptos UI. Each command is one line over the
//! `app` crate, the same library the CLI uses; errors cross as `api::ApiError` with a code.

use api::{
    ApiError, CommitInfo, DoctorReport, DoctorRequest, ErrorCode, ModelInfo, NewProject,
    ProjectDetail, ProjectRef, ProjectSummary,
};
use app::App;

type Res<T> = Result<T, ApiError>;

fn app() -> Res<App> {
    Ok(App::open_default()?)
}

#[tauri::command]
fn project_list() -> Res<Vec<ProjectSummary>> {
    Ok(app()?.project_list()?)
}

#[tauri::command]
fn project_new(req: NewProject) -> Res<ProjectDetail> {
    Ok(app()?.project_new(&req.name)?)
}

#[tauri::command]
fn project_show(req: ProjectRef) -> Res<ProjectDetail> {
    Ok(app()?.project_show(&req.slug)?)
}

#[tauri::command]
fn project_history(req: ProjectRef) -> Res<Vec<CommitInfo>> {
    Ok(app()?.history(&req.slug)?)
}

#[tauri::command]
fn models_list() -> Res<Vec<ModelInfo>> {
    Ok(app()?.models_list()?)
}

/// Hashes every object of the home: off the main thread, so the window stays responsive.
#[tauri::command]
async fn doctor(req: DoctorRequest) -> Res<DoctorReport> {
    tauri::async_runtime::spawn_blocking(move || Ok(app()?.doctor(req.repair)?))
        .await
        .map_err(|e| ApiError { code: ErrorCode::Internal, message: e.to_string() })?
}

/// Starts the desktop app.
pub fn run() {
    let result = tauri::Builder::default()
        .plugin(tauri_plugin_fs::init())
        .invoke_handler(tauri::generate_handler![
            project_list,
            project_new,
            project_show,
            project_history,
            models_list,
            doctor
        ])
        .run(tauri::generate_context!());
    if let Err(e) = result {
        eprintln!("error: cannot start the VibeFlow window: {e}");
        std::process::exit(1);
    }
}
