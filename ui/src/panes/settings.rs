//! Settings: the theme, this machine, the model store (the catalog with downloads from the
//! Hugging Face hub, import, remove), the data folder, API
//! keys of remote endpoints (in the OS keyring), and the home's health check (`vibeflow
//! doctor`), run when asked (it hashes every content object).

use api::{DoctorReport, Endpoint, EndpointAdd, EndpointTest, ModelInfo, SystemInfo};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::ipc;

/// The Settings pane.
#[component]
pub fn Settings() -> impl IntoView {
    let info = RwSignal::new(None::<SystemInfo>);
    let models = RwSignal::new(Vec::<ModelInfo>::new());
    let theme = RwSignal::new(crate::shell::theme());
    let model_path = RwSignal::new(String::new());
    let model_status = RwSignal::new(None::<Result<String, String>>);
    let load_models = move || {
        spawn_local(async move {
            if let Ok(m) = ipc::models_list().await {
                models.set(m);
            }
        });
    };
    load_models();
    let catalog = RwSignal::new(Vec::<api::advisor::CatalogModel>::new());
    let load_catalog = move || {
        spawn_local(async move {
            if let Ok(c) = ipc::catalog_list().await {
                catalog.set(c);
            }
        });
    };
    load_catalog();
    let pulling = RwSignal::new(None::<String>);
    let hub_spec = RwSignal::new(String::new());
    let pull = move |spec: String| {
        pulling.set(Some(spec.clone()));
        model_status.set(Some(Ok(format!("Downloading {spec}…"))));
        spawn_local(async move {
            let label = spec.clone();
            let progress = move |p: api::advisor::PullProgress| {
                model_status.set(Some(Ok(format!(
                    "Downloading {label}: {:.0} of {:.0} MB",
                    p.bytes as f64 / 1e6,
                    p.total as f64 / 1e6
                ))));
            };
            match ipc::models_pull(spec, progress).await {
                Ok(m) => {
                    model_status.set(Some(Ok(format!("Installed {} ({}).", m.id, m.quantization))));
                    load_models();
                    load_catalog();
                }
                Err(e) => model_status.set(Some(Err(e.message))),
            }
            pulling.set(None);
        });
    };
    spawn_local(async move {
        if let Ok(i) = ipc::system_info().await {
            info.set(Some(i));
        }
    });
    let import_model = move || {
        let path = model_path.get_untracked().trim().to_string();
        if path.is_empty() {
            return;
        }
        model_status.set(Some(Ok("Importing (the file is hashed and checked)…".into())));
        spawn_local(async move {
            match ipc::models_import(path).await {
                Ok(m) => {
                    model_status.set(Some(Ok(format!(
                        "Installed {} ({}, {:.0} M parameters).",
                        m.id,
                        m.quantization,
                        m.parameters as f64 / 1e6
                    ))));
                    model_path.set(String::new());
                    load_models();
                }
                Err(e) => model_status.set(Some(Err(e.message))),
            }
        });
    };
    let remove_model = move |id: String| {
        model_status.set(None);
        spawn_local(async move {
            match ipc::models_remove(id.clone()).await {
                Ok(()) => {
                    model_status.set(Some(Ok(format!("Removed {id}."))));
                    load_models();
                }
                Err(e) => model_status.set(Some(Err(e.message))),
            }
        });
    };
    let pick_model = move || {
        spawn_local(async move {
            if let Ok(Some(p)) = ipc::pick_file().await {
                model_path.set(p);
            }
        });
    };
    let report = RwSignal::new(None::<DoctorReport>);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let run = move |repair: bool| {
        busy.set(true);
        spawn_local(async move {
            match ipc::doctor(repair).await {
                Ok(r) => {
                    report.set(Some(r));
                    error.set(None);
                }
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };
    let open =
        move || report.get().map_or(0, |r| r.findings.iter().filter(|f| !f.repaired).count());
    view! {
        <div class="settings" id="pane-settings">
            <h1>"Settings"</h1>
            <section class="card" aria-labelledby="look-title">
                <h2 id="look-title">"Appearance"</h2>
                <label class="field inline" for="settings-theme">
                    <span class="label">"Theme"</span>
                    <select id="settings-theme" on:change=move |ev| {
                        let t = event_target_value(&ev);
                        crate::shell::set_theme(&t);
                        theme.set(t);
                    }>
                        {[("system", "Follow the system"), ("dark", "Dark"), ("light", "Light")].into_iter().map(|(v, label)| view! {
                            <option value=v selected=move || theme.get() == v>{label}</option>
                        }).collect_view()}
                    </select>
                </label>
            </section>
            <section class="card" aria-labelledby="machine-title">
                <h2 id="machine-title">"This machine"</h2>
                {move || info.get().map(|i| view! {
                    <dl class="facts" id="settings-machine">
                        <dt>"Processor"</dt><dd>{format!("{} ({} cores; {})", i.cpu, i.cores, i.features.join(", "))}</dd>
                        <dt>"Memory"</dt><dd>{format!("{:.1} GB, {:.1} GB free now", i.memory_bytes as f64 / 1e9, i.memory_free_bytes as f64 / 1e9)}</dd>
                        <dt>"Trains on"</dt><dd>{match &i.gpu {
                            Some(g) => format!("{} ({:.1} GB)", g.name, g.memory_bytes as f64 / 1e9),
                            None => "CPU (no GPU in use: see the README for CUDA and Metal builds)".to_string(),
                        }}</dd>
                        <dt>"System"</dt><dd>{format!("{} {}", i.os, i.arch)}</dd>
                        <dt>"Data folder"</dt><dd id="settings-home">{i.home.clone()}</dd>
                        <dt>"Free there"</dt><dd>{format!("{:.1} GB", i.free_disk_bytes as f64 / 1e9)}</dd>
                    </dl>
                })}
                <p class="hint">"The data folder is ~/.vibeflow unless VIBEFLOW_HOME names another; start the app with it set to move everything."</p>
            </section>
            <section class="card" aria-labelledby="models-title">
                <h2 id="models-title">"Models"</h2>
                <table class="grid-table" id="settings-models">
                    <thead><tr><th>"Model"</th><th>"Architecture"</th><th>"Parameters"</th><th>"Quantization"</th><th>"Context"</th><th>"Size"</th><th><span class="sr-only">"Actions"</span></th></tr></thead>
                    <tbody>
                        <For each=move || models.get() key=|m| m.id.clone() children=move |m: ModelInfo| view! {
                            <tr>
                                <td>{m.id.clone()}</td>
                                <td>{m.architecture.clone()}</td>
                                <td>{format!("{:.0} M", m.parameters as f64 / 1e6)}</td>
                                <td>{m.quantization.clone()}</td>
                                <td>{m.context_length}</td>
                                <td>{format!("{:.0} MB", m.size_bytes as f64 / 1e6)}</td>
                                <td>
                                    <button class="link" aria-label=format!("Remove {}", m.id) on:click={
                                        let id = m.id.clone();
                                        move |_| remove_model(id.clone())
                                    }>"Remove"</button>
                                </td>
                            </tr>
                        } />
                    </tbody>
                </table>
                <h3>"Catalog"</h3>
                <p class="hint">"Models VibeFlow trains, with their license; Download fetches one from Hugging Face (resumed if interrupted, its checksum verified). A gated model needs its license accepted on huggingface.co and your token: vibeflow keys hf."</p>
                <table class="grid-table" id="settings-catalog">
                    <thead><tr><th>"Model"</th><th>"Parameters"</th><th>"License"</th><th>"LoRA memory"</th><th>"Good at"</th><th><span class="sr-only">"Actions"</span></th></tr></thead>
                    <tbody>
                        {move || catalog.get().into_iter().map(|c| {
                            let id = c.id.clone();
                            view! {
                                <tr data-id=c.id.clone()>
                                    <td>{c.name.clone()}</td>
                                    <td>{format!("{:.2} B", c.parameters as f64 / 1e9)}</td>
                                    <td>{c.license.clone()}{c.gated.then_some(" (gated)")}</td>
                                    <td>{format!("{:.1} GB", c.lora_memory_bytes as f64 / 1e9)}</td>
                                    <td class="text">{c.strengths.clone()}</td>
                                    <td>{if c.installed {
                                        view! { <span class="ok">"Installed"</span> }.into_any()
                                    } else {
                                        view! { <button class="link" aria-label=format!("Download {}", c.name) disabled=move || pulling.get().is_some() on:click=move |_| pull(id.clone())>"Download"</button> }.into_any()
                                    }}</td>
                                </tr>
                            }.into_any()
                        }).collect_view()}
                    </tbody>
                </table>
                <form class="path-form" on:submit=move |ev| { ev.prevent_default(); let s = hub_spec.get_untracked(); if !s.trim().is_empty() { pull(s.trim().to_string()) } }>
                    <label class="sr-only" for="settings-hub-spec">"Hugging Face repository or file"</label>
                    <input id="settings-hub-spec" type="text" placeholder="OWNER/NAME or OWNER/NAME/FILE.gguf" prop:value=move || hub_spec.get() on:input=move |ev| hub_spec.set(event_target_value(&ev)) />
                    <button id="settings-hub-pull" type="submit" disabled=move || pulling.get().is_some()>"Download from Hugging Face"</button>
                </form>
                <form class="path-form" on:submit=move |ev| { ev.prevent_default(); import_model(); }>
                    <label class="sr-only" for="settings-model-path">"GGUF file to import"</label>
                    <input id="settings-model-path" type="text" placeholder="/path/to/model.gguf" prop:value=move || model_path.get() on:input=move |ev| model_path.set(event_target_value(&ev)) />
                    <button id="settings-model-browse" type="button" on:click=move |_| pick_model()>"Browse…"</button>
                    <button id="settings-model-import" type="submit">"Import a GGUF"</button>
                </form>
                <p class="status" role="status" id="settings-model-status" class:error=move || matches!(model_status.get(), Some(Err(_)))>
                    {move || match model_status.get() { Some(Ok(m)) | Some(Err(m)) => m, None => String::new() }}
                </p>
            </section>
            <Keys />
            <section class="card" aria-labelledby="health-title">
                <h2 id="health-title">"Home health"</h2>
                <p class="hint">
                    "Compares every project's git history with the index and the files: versions, runs, content objects, models. Repairs never delete anything you made."
                </p>
                <div class="actions">
                    <button id="doctor-check" disabled=move || busy.get() on:click=move |_| run(false)>
                        {move || if report.get().is_some() { "Check again" } else { "Check this home" }}
                    </button>
                    <button
                        id="doctor-repair"
                        class="primary"
                        disabled=move || busy.get() || open() == 0
                        on:click=move |_| run(true)
                    >
                        "Repair"
                    </button>
                </div>
                <p class="status" id="doctor-status" role="status" aria-live="polite">
                    {move || match (busy.get(), report.get()) {
                        (true, _) => "Checking…".to_string(),
                        (false, None) => String::new(),
                        (false, Some(r)) => {
                            let n = r.findings.iter().filter(|f| !f.repaired).count();
                            let problems = |n: usize| count(n, "problem");
                            let summary = format!(
                                "{}, {}, {} checked",
                                count(r.projects, "project"),
                                count(r.versions, "version"),
                                count(r.objects, "content object"),
                            );
                            let fixed = r.findings.len() - n;
                            if n == 0 && fixed > 0 {
                                format!("✓ Repaired {} — {summary}", problems(fixed))
                            } else if n == 0 {
                                format!("✓ No problems found — {summary}")
                            } else {
                                format!("{} found — {summary}", problems(n))
                            }
                        }
                    }}
                </p>
                <ul class="findings" id="doctor-findings">
                    {move || {
                        report
                            .get()
                            .map(|r| r.findings)
                            .unwrap_or_default()
                            .into_iter()
                            .map(|f| {
                                let class = if f.repaired { "finding repaired" } else { "finding" };
                                view! {
                                    <li class=class>
                                        <span class="badge">
                                            {if f.repaired { "repaired" } else { "found" }}
                                        </span>
                                        {f.project.map(|p| view! { <span class="tag">{p}</span> })}
                                        <span class="message">{f.message}</span>
                                    </li>
                                }
                            })
                            .collect_view()
                    }}
                </ul>
                <p class="error" class:hidden=move || error.get().is_none()>
                    {move || error.get().unwrap_or_default()}
                </p>
            </section>
        </div>
    }
}

/// API keys of remote OpenAI-compatible endpoints: add, test, remove. The key goes to the OS
/// keyring; the window never reads it back.
#[component]
fn Keys() -> impl IntoView {
    let list = RwSignal::new(Vec::<Endpoint>::new());
    let (name, url, key) =
        (RwSignal::new(String::new()), RwSignal::new(String::new()), RwSignal::new(String::new()));
    let status = RwSignal::new(None::<Result<String, String>>);
    let tests = RwSignal::new(Vec::<(String, EndpointTest)>::new());
    let load = move || {
        spawn_local(async move {
            match ipc::endpoint_list().await {
                Ok(l) => list.set(l),
                Err(e) => status.set(Some(Err(e.message))),
            }
        });
    };
    load();
    let add = move || {
        let req = EndpointAdd {
            name: name.get_untracked(),
            base_url: url.get_untracked(),
            key: key.get_untracked(),
        };
        spawn_local(async move {
            match ipc::endpoint_add(req).await {
                Ok(e) => {
                    status.set(Some(Ok(format!(
                        "Saved {}: its key is in the system keyring.",
                        e.name
                    ))));
                    name.set(String::new());
                    url.set(String::new());
                    key.set(String::new());
                    load();
                }
                Err(e) => status.set(Some(Err(e.message))),
            }
        });
    };
    let test = move |n: String| {
        spawn_local(async move {
            status.set(Some(Ok(format!("Asking {n} for its models…"))));
            match ipc::endpoint_test(n.clone()).await {
                Ok(t) => {
                    status.set(None);
                    tests.update(|v| {
                        v.retain(|(x, _)| x != &n);
                        v.push((n, t));
                    });
                }
                Err(e) => status.set(Some(Err(e.message))),
            }
        });
    };
    let remove = move |n: String| {
        spawn_local(async move {
            match ipc::endpoint_remove(n.clone()).await {
                Ok(()) => {
                    status.set(Some(Ok(format!("Removed {n} and its key."))));
                    tests.update(|v| v.retain(|(x, _)| x != &n));
                    load();
                }
                Err(e) => status.set(Some(Err(e.message))),
            }
        });
    };
    view! {
        <section class="card" aria-labelledby="keys-title">
            <h2 id="keys-title">"API keys"</h2>
            <p class="hint">"Remote OpenAI-compatible endpoints the assistant and the arena can use. Keys are stored in the system keyring only — never in files, the database or logs."</p>
            {move || {
                if list.with(Vec::is_empty) {
                    return view! { <p class="hint" id="keys-empty">"No endpoints yet."</p> }.into_any();
                }
                view! {
                    <table class="grid-table" id="settings-keys">
                        <thead><tr><th>"Name"</th><th>"Address"</th><th>"Key"</th><th>"Test"</th><th><span class="sr-only">"Actions"</span></th></tr></thead>
                        <tbody>
                            <For each=move || list.get() key=|e| (e.name.clone(), e.base_url.clone(), e.has_key) children=move |e: Endpoint| {
                                let n = e.name.clone();
                                let result = Memo::new({
                                    let n = n.clone();
                                    move |_| tests.with(|v| v.iter().find(|(x, _)| x == &n).map(|(_, t)| t.clone()))
                                });
                                let result = move || result.get();
                                let (t, r) = (n.clone(), n.clone());
                                view! {
                                    <tr>
                                        <td>{e.name.clone()}</td>
                                        <td class="path">{e.base_url.clone()}</td>
                                        <td>{if e.has_key { "in the keyring" } else { "none" }}</td>
                                        <td class="test-result" class:ok=move || result().is_some_and(|t| t.ok) class:error=move || result().is_some_and(|t| !t.ok)>
                                            {move || result().map(|t| if t.ok { format!("✓ {}", t.message) } else { t.message })}
                                        </td>
                                        <td class="actions-cell">
                                            <button aria-label=format!("Test {n}") on:click=move |_| test(t.clone())>"Test"</button>
                                            <button class="link" aria-label=format!("Remove {n}") on:click=move |_| remove(r.clone())>"Remove"</button>
                                        </td>
                                    </tr>
                                }
                            } />
                        </tbody>
                    </table>
                }
                .into_any()
            }}
            <form class="key-form" id="keys-form" on:submit=move |ev| { ev.prevent_default(); add(); }>
                <label class="field" for="key-name"><span class="label">"Name"</span>
                    <input id="key-name" type="text" placeholder="openai" prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) />
                </label>
                <label class="field" for="key-url"><span class="label">"Address"</span>
                    <input id="key-url" type="url" placeholder="https://api.openai.com/v1" prop:value=move || url.get() on:input=move |ev| url.set(event_target_value(&ev)) />
                </label>
                <label class="field" for="key-secret"><span class="label">"Key"</span>
                    <input id="key-secret" type="password" autocomplete="off" placeholder="sk-…" prop:value=move || key.get() on:input=move |ev| key.set(event_target_value(&ev)) />
                </label>
                <button id="key-add" type="submit" class="primary">"Save"</button>
            </form>
            <p class="status" role="status" id="keys-status" class:error=move || matches!(status.get(), Some(Err(_)))>
                {move || match status.get() { Some(Ok(m)) | Some(Err(m)) => m, None => String::new() }}
            </p>
        </section>
    }
}

/// "1 project", "2 projects".
fn count(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}
