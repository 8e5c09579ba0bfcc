//! Overview: the project at a glance and the installed models.

use api::{ModelInfo, ProjectDetail};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::ipc;

/// The Overview pane of project `slug`.
#[component]
pub fn Overview(slug: String) -> impl IntoView {
    let detail = RwSignal::new(None::<ProjectDetail>);
    let models = RwSignal::new(Vec::<ModelInfo>::new());
    let error = RwSignal::new(None::<String>);
    spawn_local(async move {
        match ipc::project_show(slug).await {
            Ok(d) => detail.set(Some(d)),
            Err(e) => error.set(Some(e.message)),
        }
        match ipc::models_list().await {
            Ok(m) => models.set(m),
            Err(e) => error.set(Some(e.message)),
        }
    });
    view! {
        <div class="overview" id="pane-overview">
            {move || {
                detail
                    .get()
                    .map(|d| {
                        view! {
                            <h1>{d.name.clone()}</h1>
                            <dl class="facts">
                                <dt>"Folder"</dt>
                                <dd>{d.path.clone()}</dd>
                                <dt>"Base model"</dt>
                                <dd>{d.base_model.clone()}</dd>
                                <dt>"Versions"</dt>
                                <dd>{d.commits}</dd>
                            </dl>
                        }
                    })
            }}
            <h2>"Installed models"</h2>
            <table class="models">
                <thead>
                    <tr>
                        <th>"Model"</th>
                        <th>"Architecture"</th>
                        <th>"Parameters"</th>
                        <th>"Quantization"</th>
                        <th>"Context"</th>
                        <th>"Chat template"</th>
                    </tr>
                </thead>
                <tbody>
                    {move || {
                        models
                            .get()
                            .into_iter()
                            .map(|m| {
                                view! {
                                    <tr>
                                        <td>{m.id}</td>
                                        <td>{m.architecture}</td>
                                        <td>{format!("{:.1} M", m.parameters as f64 / 1e6)}</td>
                                        <td>{m.quantization}</td>
                                        <td>{m.context_length}</td>
                                        <td>{if m.chat_template { "embedded" } else { "none" }}</td>
                                    </tr>
                                }
                            })
                            .collect_view()
                    }}
                </tbody>
            </table>
            <p class="error" class:hidden=move || error.get().is_none()>
                {move || error.get().unwrap_or_default()}
            </p>
        </div>
    }
}
