//! The frame around the panes: the first-run welcome, the status bar, the command palette
//! (Ctrl/Cmd+Shift+P) and the theme.

use api::train::{JobEvent, JobState};
use api::{ProjectSummary, SystemInfo};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::state::JobsCtx;
use crate::{Pane, ipc};

/// Where the chosen theme is kept (a preference of this window, not of a project).
const THEME_KEY: &str = "vibeflow-theme";

/// `system`, `dark` or `light`.
pub fn theme() -> String {
    web_sys_storage()
        .and_then(|s| s.get_item(THEME_KEY).ok().flatten())
        .unwrap_or_else(|| "system".into())
}

/// Applies and remembers a theme (`system` follows the OS).
pub fn set_theme(t: &str) {
    if let Some(s) = web_sys_storage() {
        let _ = s.set_item(THEME_KEY, t);
    }
    apply_theme(t);
}

/// Sets `data-theme` on the document (none: the OS's preference decides, in the stylesheet).
pub fn apply_theme(t: &str) {
    let Some(root) = document().document_element() else { return };
    let _ = match t {
        "dark" | "light" => root.set_attribute("data-theme", t),
        _ => root.remove_attribute("data-theme"),
    };
}

fn web_sys_storage() -> Option<web_sys::Storage> {
    window().local_storage().ok().flatten()
}

/// The first run: one click makes a project with a sample dataset and opens its Data pane.
#[component]
pub fn Welcome(
    projects: RwSignal<Vec<ProjectSummary>>,
    selected: RwSignal<Option<String>>,
    pane: RwSignal<Pane>,
) -> impl IntoView {
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let start = move || {
        busy.set(true);
        spawn_local(async move {
            let made = async {
                // "My first model", or "My first model 2" when that name is taken.
                let taken: Vec<String> =
                    projects.get_untracked().into_iter().map(|p| p.name).collect();
                let name = (1..)
                    .map(|n| {
                        if n == 1 {
                            "My first model".to_string()
                        } else {
                            format!("My first model {n}")
                        }
                    })
                    .find(|n| !taken.contains(n))
                    .unwrap_or_default();
                let p = ipc::project_new(name).await?;
                let req = api::dataset::ImportRequest {
                    project: p.slug.clone(),
                    source: api::dataset::ImportSource::Sample("tech-qa".into()),
                    name: None,
                    mapping: None,
                    language: None,
                };
                ipc::data_import(req, |_| {}).await?;
                Ok::<_, api::ApiError>(p.slug)
            };
            match made.await {
                Ok(slug) => {
                    if let Ok(list) = ipc::project_list().await {
                        projects.set(list);
                    }
                    pane.set(Pane::Data);
                    selected.set(Some(slug));
                }
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };
    view! {
        <div class="welcome" id="welcome">
            <h1>"Fine-tune an open model on this machine"</h1>
            <p>"VibeFlow trains small language models on your own examples, offline. Every version of your model is a git commit you can compare and roll back."</p>
            <ol class="journey">
                <li>"Bring a dataset (CSV, JSON, JSONL, Parquet) and fix what its report finds."</li>
                <li>"Train with the recommended settings and watch it live."</li>
                <li>"Chat with the result beside the base model."</li>
            </ol>
            <div class="actions">
                <button id="welcome-start" class="primary" disabled=move || busy.get() on:click=move |_| start()>
                    {move || if busy.get() { "Creating…" } else { "Start with a sample project" }}
                </button>
            </div>
            <p class="hint">"Or name a project on the left and bring your own data. Ctrl+Shift+P opens the command palette."</p>
            <p class="error" role="alert" class:hidden=move || error.get().is_none()>{move || error.get().unwrap_or_default()}</p>
        </div>
    }
}

/// The bottom line: the running job and its progress, the machine, the project's model.
#[component]
pub fn StatusBar(
    projects: RwSignal<Vec<ProjectSummary>>,
    selected: RwSignal<Option<String>>,
) -> impl IntoView {
    let jobs = expect_context::<JobsCtx>();
    let info = RwSignal::new(None::<SystemInfo>);
    spawn_local(async move {
        if let Ok(i) = ipc::system_info().await {
            info.set(Some(i));
        }
        // A job still running (the window was reloaded) is followed again.
        if let Ok(list) = ipc::job_list().await {
            for j in list.into_iter().filter(|j| j.state == JobState::Running) {
                jobs.attach(j.id);
            }
        }
    });
    let job = move || {
        let live = jobs.live.get();
        jobs.events.with(|all| {
            live.iter().filter_map(|id| all.get(id)).find_map(|events| {
                let ended = events.iter().any(|e| matches!(e, JobEvent::Ended { .. }));
                let run = events.iter().find_map(|e| match e {
                    JobEvent::Started { run, .. } => Some(run.clone()),
                    _ => None,
                })?;
                let p = events.iter().rev().find_map(|e| match e {
                    JobEvent::Progress { progress, .. } => Some(progress.clone()),
                    _ => None,
                });
                (!ended).then(|| match p {
                    Some(p) => format!(
                        "Training {run}: step {} / {} ({:.0} %), {:.0} s left",
                        p.step,
                        p.total_steps,
                        100.0 * p.step as f64 / p.total_steps.max(1) as f64,
                        p.eta_seconds
                    ),
                    None => format!("Training {run}: starting…"),
                })
            })
        })
    };
    let machine = move || {
        info.get().map(|i| {
            format!(
                "{} · {} cores · {:.0} GB · {}",
                i.device.to_uppercase(),
                i.cores,
                i.memory_bytes as f64 / 1e9,
                i.features.join(" ")
            )
        })
    };
    let model = move || {
        let slug = selected.get()?;
        projects
            .with(|l| l.iter().find(|p| p.slug == slug).map(|p| format!("Model: {}", p.base_model)))
    };
    view! {
        <footer class="statusbar" id="statusbar">
            <span id="status-job" class:busy=move || job().is_some()>
                {move || job().unwrap_or_else(|| "No job running".into())}
            </span>
            <span class="spacer"></span>
            <span id="status-model">{model}</span>
            <span id="status-machine" title=move || info.get().map(|i| format!("{} ({}, {})", i.cpu, i.os, i.arch))>{machine}</span>
        </footer>
    }
}

/// One action of the palette.
#[derive(Clone)]
struct Action {
    label: String,
    run: std::rc::Rc<dyn Fn()>,
}

/// The command palette: every pane, every project, a new project, the theme.
#[component]
pub fn Palette(
    open: RwSignal<bool>,
    projects: RwSignal<Vec<ProjectSummary>>,
    selected: RwSignal<Option<String>>,
    pane: RwSignal<Pane>,
) -> impl IntoView {
    let query = RwSignal::new(String::new());
    let cursor = RwSignal::new(0usize);
    let input = NodeRef::<leptos::html::Input>::new();
    Effect::new(move |_| {
        if open.get() {
            query.set(String::new());
            cursor.set(0);
            if let Some(i) = input.get() {
                let _ = i.focus();
            }
        }
    });
    let actions = move || -> Vec<Action> {
        let q = query.get();
        let ql = q.trim().to_lowercase();
        let mut all: Vec<Action> = Vec::new();
        let has_project = selected.get().is_some();
        for p in Pane::ALL {
            if has_project {
                all.push(Action {
                    label: format!("Go to {}", p.label()),
                    run: std::rc::Rc::new(move || pane.set(p)),
                });
            }
        }
        for p in projects.get() {
            let slug = p.slug.clone();
            all.push(Action {
                label: format!("Open project {}", p.name),
                run: std::rc::Rc::new(move || selected.set(Some(slug.clone()))),
            });
        }
        for t in ["dark", "light", "system"] {
            all.push(Action {
                label: format!("Theme: {t}"),
                run: std::rc::Rc::new(move || set_theme(t)),
            });
        }
        let mut shown: Vec<Action> = all
            .into_iter()
            .filter(|a| ql.is_empty() || a.label.to_lowercase().contains(&ql))
            .collect();
        // What matches nothing else can name a new project.
        let name = q.trim().strip_prefix("New project:").unwrap_or(q.trim()).trim().to_string();
        if !name.is_empty() {
            shown.push(Action {
                label: format!("New project: {name}"),
                run: std::rc::Rc::new(move || {
                    let name = name.clone();
                    spawn_local(async move {
                        if let Ok(p) = ipc::project_new(name).await {
                            if let Ok(list) = ipc::project_list().await {
                                projects.set(list);
                            }
                            pane.set(Pane::Overview);
                            selected.set(Some(p.slug));
                        }
                    });
                }),
            });
        }
        shown
    };
    let run = move |i: usize| {
        if let Some(a) = actions().get(i) {
            open.set(false);
            (a.run)();
        }
    };
    view! {
        <div class="palette-backdrop" class:hidden=move || !open.get() on:click=move |_| open.set(false)>
            <div class="palette" id="palette" role="dialog" aria-label="Command palette" on:click=|ev| ev.stop_propagation()>
                <input
                    id="palette-input"
                    node_ref=input
                    type="text"
                    placeholder="Type a command, a pane, a project — or a new project's name"
                    aria-label="Command"
                    prop:value=move || query.get()
                    on:input=move |ev| {
                        query.set(event_target_value(&ev));
                        cursor.set(0);
                    }
                    on:keydown=move |ev| match ev.key().as_str() {
                        "Escape" => open.set(false),
                        "ArrowDown" => {
                            ev.prevent_default();
                            cursor.update(|c| *c = (*c + 1).min(actions().len().saturating_sub(1)));
                        }
                        "ArrowUp" => {
                            ev.prevent_default();
                            cursor.update(|c| *c = c.saturating_sub(1));
                        }
                        "Enter" => {
                            ev.prevent_default();
                            run(cursor.get_untracked());
                        }
                        _ => {}
                    }
                />
                <ul class="palette-list" role="listbox" aria-label="Commands">
                    {move || {
                        actions()
                            .into_iter()
                            .enumerate()
                            .take(12)
                            .map(|(i, a)| {
                                view! {
                                    <li
                                        class="palette-item"
                                        role="option"
                                        aria-selected=move || (cursor.get() == i).to_string()
                                        class:active=move || cursor.get() == i
                                        on:click=move |_| run(i)
                                    >
                                        {a.label}
                                    </li>
                                }
                            })
                            .collect_view()
                    }}
                </ul>
            </div>
        </div>
    }
}
