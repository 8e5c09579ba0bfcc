//! The VibeFlow IDE in the browser engine of the Tauri window: a project sidebar and the panes.
//!
//! Presentation only: every fact comes from a back-end command through [`ipc`].

pub mod chart;
pub mod clock;
pub mod ipc;
pub mod panes;
pub mod shell;
pub mod state;

use api::ProjectSummary;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::prelude::wasm_bindgen;

/// The panes of the main area, in navigation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pane {
    /// The project at a glance.
    Overview,
    /// Recommendation and chat about the project.
    Brainstorm,
    /// Dataset import, mapping, quality report, fixes.
    Data,
    /// Training configuration and pre-flight checks.
    Train,
    /// Live training progress.
    Monitor,
    /// Scores, base vs fine-tuned.
    Evaluate,
    /// Chat with a model.
    Playground,
    /// Several models on one prompt.
    Arena,
    /// The local server, API key, live version, exports and aliases.
    Deploy,
    /// Requests to the local server.
    Traces,
    /// Versions of the project (git).
    History,
    /// Keys, theme, hardware.
    Settings,
}

impl Pane {
    /// Every pane, in navigation order.
    pub const ALL: [Pane; 12] = [
        Pane::Overview,
        Pane::Brainstorm,
        Pane::Data,
        Pane::Train,
        Pane::Monitor,
        Pane::Evaluate,
        Pane::Playground,
        Pane::Arena,
        Pane::Deploy,
        Pane::Traces,
        Pane::History,
        Pane::Settings,
    ];

    /// Navigation label.
    pub fn label(self) -> &'static str {
        match self {
            Pane::Overview => "Overview",
            Pane::Brainstorm => "Brainstorm",
            Pane::Data => "Data",
            Pane::Train => "Train",
            Pane::Monitor => "Monitor",
            Pane::Evaluate => "Evaluate",
            Pane::Playground => "Playground",
            Pane::Arena => "Arena",
            Pane::Deploy => "Deploy",
            Pane::Traces => "Traces",
            Pane::History => "History",
            Pane::Settings => "Settings",
        }
    }

    fn id(self) -> String {
        format!("tab-{}", self.label().to_lowercase())
    }
}

/// Mounts the app on the page's body.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

/// The whole window.
#[component]
pub fn App() -> impl IntoView {
    let projects = RwSignal::new(Vec::<ProjectSummary>::new());
    let selected = RwSignal::new(None::<String>);
    let pane = RwSignal::new(Pane::Overview);
    let error = RwSignal::new(None::<String>);
    let palette = RwSignal::new(false);
    provide_context(state::PaneCtx(pane));
    provide_context(state::JobsCtx::new());
    provide_context(state::AssistCtx::default());
    provide_context(state::ExperimentCtx(RwSignal::new(None)));
    provide_context(state::DraftCtx { request: RwSignal::new(None), change: RwSignal::new(None) });
    let dropped = RwSignal::new(None::<String>);
    provide_context(state::DropCtx(dropped));
    shell::apply_theme(&shell::theme());
    // A file dropped anywhere goes to the Data pane.
    ipc::on_file_drop(move |path| {
        dropped.set(Some(path));
        pane.set(Pane::Data);
    });
    // Ctrl+Shift+P (Cmd+Shift+P on a Mac) opens the palette from anywhere.
    let _ = window_event_listener(leptos::ev::keydown, move |ev| {
        if (ev.ctrl_key() || ev.meta_key()) && ev.shift_key() && ev.key().eq_ignore_ascii_case("p")
        {
            ev.prevent_default();
            palette.set(true);
        }
    });
    let reload = move || {
        spawn_local(async move {
            match ipc::project_list().await {
                Ok(list) => projects.set(list),
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    reload();
    // A project's status (draft, training, trained) follows its jobs.
    let jobs = expect_context::<state::JobsCtx>();
    Effect::new(move |prev: Option<usize>| {
        let ended = jobs.events.with(|m| {
            m.values()
                .flatten()
                .filter(|e| {
                    matches!(
                        e,
                        api::train::JobEvent::Started { .. } | api::train::JobEvent::Ended { .. }
                    )
                })
                .count()
        });
        if prev.is_some_and(|p| p != ended) {
            reload();
        }
        ended
    });

    view! {
        <div class="shell">
            <Sidebar projects selected error />
            <main class="main">
                <nav class="tabs" aria-label="Panes">
                    {Pane::ALL
                        .into_iter()
                        .map(|p| {
                            view! {
                                <button
                                    id=p.id()
                                    class="tab"
                                    class:active=move || pane.get() == p
                                    aria-current=move || (pane.get() == p).then_some("page")
                                    disabled=move || selected.get().is_none()
                                    title=move || {
                                        selected
                                            .get()
                                            .is_none()
                                            .then_some("Pick or create a project first")
                                    }
                                    on:click=move |_| pane.set(p)
                                >
                                    {p.label()}
                                </button>
                            }
                        })
                        .collect_view()}
                </nav>
                <section class="pane">
                    {move || match selected.get() {
                        None => view! { <shell::Welcome projects selected pane /> }.into_any(),
                        Some(slug) => pane_view(pane.get(), slug),
                    }}
                </section>
            </main>
            <shell::StatusBar projects selected />
            <shell::Palette open=palette projects selected pane />
        </div>
    }
}

#[component]
fn Sidebar(
    projects: RwSignal<Vec<ProjectSummary>>,
    selected: RwSignal<Option<String>>,
    error: RwSignal<Option<String>>,
) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let create = move || {
        let n = name.get_untracked();
        busy.set(true);
        spawn_local(async move {
            match ipc::project_new(n).await {
                Ok(p) => {
                    name.set(String::new());
                    error.set(None);
                    if let Ok(list) = ipc::project_list().await {
                        projects.set(list);
                    }
                    selected.set(Some(p.slug));
                }
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };

    view! {
        <aside class="sidebar">
            <div class="brand">
                <img src="icon.png" alt="" />
                <span>"VibeFlow"</span>
            </div>
            <form
                class="new-project"
                on:submit=move |ev| {
                    ev.prevent_default();
                    create();
                }
            >
                <input
                    id="new-project-name"
                    type="text"
                    placeholder="New project name"
                    prop:value=move || name.get()
                    on:input=move |ev| name.set(event_target_value(&ev))
                />
                <button id="create-project" type="submit" disabled=move || busy.get()>
                    "Create"
                </button>
            </form>
            <p class="error" id="error" class:hidden=move || error.get().is_none()>
                {move || error.get().unwrap_or_default()}
            </p>
            <h2 class="section">"Projects"</h2>
            <ul class="project-list" id="project-list">
                <For
                    each=move || projects.get()
                    key=|p| (p.slug.clone(), p.status.clone())
                    children=move |p: ProjectSummary| {
                        let slug = p.slug.clone();
                        let slug_click = p.slug.clone();
                        view! {
                            <li
                                data-slug=p.slug.clone()
                                class:selected=move || selected.get().as_deref() == Some(slug.as_str())
                            >
                                <button
                                    class="project"
                                    aria-label=format!("Open project {} ({})", p.name, p.status)
                                    on:click=move |_| selected.set(Some(slug_click.clone()))
                                >
                                    <span class="name">{p.name.clone()}</span>
                                    <span class="meta">
                                        <span class=format!("status {}", p.status)>{p.status.clone()}</span>
                                        " · "
                                        {p.base_model.clone()}
                                    </span>
                                </button>
                            </li>
                        }
                    }
                />
            </ul>
            <p class="empty" class:hidden=move || !projects.get().is_empty()>
                "No projects yet: name one above to start."
            </p>
        </aside>
    }
}

fn pane_view(pane: Pane, slug: String) -> AnyView {
    match pane {
        Pane::Overview => view! { <panes::overview::Overview slug /> }.into_any(),
        Pane::History => view! { <panes::history::History slug /> }.into_any(),
        Pane::Settings => view! { <panes::settings::Settings /> }.into_any(),
        Pane::Train => view! { <panes::train::Train slug /> }.into_any(),
        Pane::Monitor => view! { <panes::monitor::Monitor slug /> }.into_any(),
        Pane::Data => view! { <panes::data::Data slug /> }.into_any(),
        Pane::Playground => view! { <panes::playground::Playground slug /> }.into_any(),
        Pane::Brainstorm => view! { <panes::brainstorm::Brainstorm slug /> }.into_any(),
        Pane::Evaluate => view! { <panes::evaluate::Evaluate slug /> }.into_any(),
        Pane::Arena => view! { <panes::arena::Arena slug /> }.into_any(),
        Pane::Deploy => view! { <panes::deploy::Deploy slug /> }.into_any(),
        Pane::Traces => view! { <panes::traces::Traces slug /> }.into_any(),
    }
}
