//! Traces: every request the local server answered, filtered by model, outcome and text; one
//! opened shows its conversation, reply, timing and tokens, can be rated, and can be re-run in
//! the Playground ("Experiment"); selected ones become a dataset of the project.

use api::chat::{ChatModel, Conversation, Sampling, Turn};
use api::serve::{Trace, TraceFeedback, TraceFilter, TracesToDataset};
use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::Deserialize;

use crate::state::{Experiment, ExperimentCtx, PaneCtx};
use crate::{Pane, ipc};

/// What the pane reads of a request body (chat or completions).
#[derive(Deserialize, Default)]
#[serde(default)]
struct Body {
    messages: Vec<Message>,
    prompt: Option<PromptText>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    max_tokens: Option<usize>,
    seed: Option<u64>,
    stop: Option<PromptText>,
    frequency_penalty: Option<f32>,
    presence_penalty: Option<f32>,
}

#[derive(Deserialize, Clone)]
struct Message {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

/// A message's content: text, or OpenAI's parts (their text joined).
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize, Clone)]
struct Part {
    #[serde(default)]
    text: String,
}

/// A string or a list of strings (a completions prompt, `stop`).
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum PromptText {
    One(String),
    Many(Vec<String>),
}

impl Content {
    fn text(&self) -> String {
        match self {
            Content::Text(t) => t.clone(),
            Content::Parts(p) => p.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join(""),
        }
    }
}

/// The request body, parsed by the browser's JSON (no JSON parser in the bundle).
fn body(request: &str) -> Body {
    js_sys::JSON::parse(request)
        .ok()
        .and_then(|v| serde_wasm_bindgen::from_value(v).ok())
        .unwrap_or_default()
}

/// The request's conversation as (role, text), a completions prompt as one user turn.
fn conversation(b: &Body) -> Vec<(String, String)> {
    if !b.messages.is_empty() {
        return b
            .messages
            .iter()
            .map(|m| (m.role.clone(), m.content.as_ref().map(Content::text).unwrap_or_default()))
            .collect();
    }
    match &b.prompt {
        Some(PromptText::One(p)) => vec![("user".into(), p.clone())],
        Some(PromptText::Many(p)) => vec![("user".into(), p.join("\n"))],
        None => Vec::new(),
    }
}

/// The first `n` characters of `text`, with an ellipsis when it goes on.
fn preview(text: &str, n: usize) -> String {
    match text.char_indices().nth(n) {
        Some((at, _)) => format!("{}…", text[..at].trim_end()),
        None => text.to_string(),
    }
}

fn time(secs: i64) -> String {
    crate::clock::date_time(secs)
}

/// The Traces pane (`slug`: the project a dataset goes to).
#[component]
pub fn Traces(slug: String) -> impl IntoView {
    let slug = StoredValue::new(slug);
    let traces = RwSignal::new(Vec::<Trace>::new());
    let model = RwSignal::new(String::new());
    let outcome = RwSignal::new(String::new());
    let text = RwSignal::new(String::new());
    let selected = RwSignal::new(Vec::<i64>::new());
    let open = RwSignal::new(None::<i64>);
    let name = RwSignal::new("traces".to_string());
    let error = RwSignal::new(None::<String>);
    let made = RwSignal::new(None::<String>);
    let loading = RwSignal::new(true);
    let pane = use_context::<PaneCtx>();
    let experiment = use_context::<ExperimentCtx>();
    let load = move || {
        let filter = TraceFilter {
            model: Some(model.get_untracked()).filter(|m| !m.is_empty()),
            status: Some(outcome.get_untracked()).filter(|m| !m.is_empty()),
            text: Some(text.get_untracked()).filter(|m| !m.trim().is_empty()),
            limit: 200,
            ..TraceFilter::default()
        };
        loading.set(true);
        spawn_local(async move {
            match ipc::trace_list(filter).await {
                Ok(t) => {
                    error.set(None);
                    traces.set(t);
                }
                Err(e) => error.set(Some(e.message)),
            }
            loading.set(false);
        });
    };
    load();
    let models = Memo::new(move |_| {
        let mut m: Vec<String> = traces.with(|t| t.iter().map(|t| t.model.clone()).collect());
        m.sort();
        m.dedup();
        m
    });
    let toggle = move |id: i64, on: bool| {
        selected.update(|s| {
            s.retain(|x| *x != id);
            if on {
                s.push(id);
            }
        })
    };
    let make_dataset = move || {
        let ids = selected.get_untracked();
        if ids.is_empty() {
            return;
        }
        let req = TracesToDataset { ids, project: slug.get_value(), name: name.get_untracked() };
        spawn_local(async move {
            match ipc::traces_dataset(req).await {
                Ok(d) => {
                    error.set(None);
                    made.set(Some(format!(
                        "Dataset \"{}\" version {} made from {} traces: {} rows kept. It is in the Data pane and in History.",
                        d.name,
                        d.version,
                        selected.get_untracked().len(),
                        d.outcome.kept,
                    )));
                    selected.set(Vec::new());
                }
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let rate = move |t: Trace, feedback: Option<i8>| {
        let req = TraceFeedback { id: t.id, feedback, tags: t.tags.clone() };
        spawn_local(async move {
            match ipc::trace_feedback(req).await {
                Ok(()) => traces.update(|all| {
                    if let Some(x) = all.iter_mut().find(|x| x.id == t.id) {
                        x.feedback = feedback;
                    }
                }),
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let run_in_playground = move |t: Trace| {
        let b = body(&t.request);
        let conv = conversation(&b);
        let system = conv.iter().find(|(r, _)| r == "system").map(|(_, c)| c.clone());
        let rest: Vec<(String, String)> = conv.into_iter().filter(|(r, _)| r != "system").collect();
        // Earlier exchanges become the history; the last user message waits in the composer.
        let mut turns = Vec::new();
        let mut pending_user = None::<String>;
        for (role, content) in rest {
            match role.as_str() {
                "user" => pending_user = Some(content),
                "assistant" => turns.push(Turn {
                    user: pending_user.take().unwrap_or_default(),
                    replies: vec![content.clone(), content],
                }),
                _ => {}
            }
        }
        let stop = match b.stop.clone() {
            Some(PromptText::One(s)) => vec![s],
            Some(PromptText::Many(s)) => s,
            None => Vec::new(),
        };
        let d = Sampling::default();
        let sampling = Sampling {
            temperature: b.temperature.unwrap_or(d.temperature),
            top_p: b.top_p.unwrap_or(d.top_p),
            max_tokens: b.max_tokens.unwrap_or(d.max_tokens),
            seed: b.seed.unwrap_or(d.seed),
            frequency_penalty: b.frequency_penalty.unwrap_or(0.0),
            presence_penalty: b.presence_penalty.unwrap_or(0.0),
            stop,
            ..d
        };
        let project = slug.get_value();
        let model = match t.model.strip_prefix(&format!("{project}/")) {
            Some(run) => ChatModel::Run(run.into()),
            None => ChatModel::Base,
        };
        let c = Conversation {
            id: format!("c-{}", js_sys::Date::now() as u64),
            project,
            title: format!("Experiment: trace #{}", t.id),
            updated_at: (js_sys::Date::now() / 1000.0) as i64,
            models: vec![model.clone(), ChatModel::Base],
            system: system.unwrap_or_default(),
            turns,
            sampling,
        };
        if let (Some(x), Some(p)) = (experiment, pane) {
            x.0.set(Some(Experiment {
                conversation: c,
                input: pending_user.unwrap_or_default(),
                note: format!(
                    "Trace #{} from {} answered: {}",
                    t.id,
                    t.model,
                    preview(&t.response, 300)
                ),
            }));
            p.0.set(Pane::Playground);
        }
    };

    view! {
        <div class="traces">
            <header class="pane-head">
                <h1>"Traces"</h1>
                <span class="hint">"Every request to the local server, newest first."</span>
            </header>
            <form class="row filters" on:submit=move |ev| { ev.prevent_default(); load(); }>
                <label class="field inline">
                    <span class="label">"Model"</span>
                    <select id="trace-model" on:change=move |ev| { model.set(event_target_value(&ev)); load(); }>
                        <option value="">"All models"</option>
                        {move || models.get().into_iter().map(|m| view! { <option value=m.clone() selected=model.get() == m>{m.clone()}</option> }).collect_view()}
                    </select>
                </label>
                <label class="field inline">
                    <span class="label">"Outcome"</span>
                    <select id="trace-status" on:change=move |ev| { outcome.set(event_target_value(&ev)); load(); }>
                        <option value="">"All"</option>
                        <option value="ok">"Answered"</option>
                        <option value="error">"Errors"</option>
                    </select>
                </label>
                <label class="field inline">
                    <span class="label">"Text"</span>
                    <input id="trace-text" type="search" placeholder="In the request or reply" prop:value=move || text.get() on:input=move |ev| text.set(event_target_value(&ev)) />
                </label>
                <button id="trace-refresh" type="submit">"Refresh"</button>
            </form>
            <p class="error" id="traces-error" class:hidden=move || error.get().is_none()>{move || error.get().unwrap_or_default()}</p>
            <p class="notice" id="traces-made" role="status" class:hidden=move || made.get().is_none()>{move || made.get().unwrap_or_default()}</p>
            <div class="empty-state" id="traces-empty" class:hidden=move || loading.get() || !traces.get().is_empty()>
                <p>"No requests yet. Start the server in the Deploy pane and send one (its test box will do): every request shows up here."</p>
                <button id="traces-to-deploy" class="primary" on:click=move |_| { if let Some(p) = pane { p.0.set(Pane::Deploy) } }>"Open Deploy"</button>
            </div>
            <div class="dataset-bar row" class:hidden=move || traces.get().is_empty()>
                <span id="traces-selected">{move || format!("{} selected", selected.get().len())}</span>
                <label class="field inline">
                    <span class="label">"Dataset name"</span>
                    <input id="traces-dataset-name" type="text" prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) />
                </label>
                <button id="traces-dataset" class="primary" disabled=move || selected.get().is_empty() on:click=move |_| make_dataset()>
                    "Generate dataset"
                </button>
            </div>
            <table class="metrics trace-table" id="trace-table" class:hidden=move || traces.get().is_empty()>
                <thead>
                    <tr>
                        <th><span class="sr-only">"Select"</span></th>
                        <th>"When"</th>
                        <th>"Model"</th>
                        <th>"Request"</th>
                        <th>"Status"</th>
                        <th>"Latency"</th>
                        <th>"Tokens"</th>
                    </tr>
                </thead>
                <tbody>
                    <For
                        each=move || traces.get()
                        key=|t| (t.id, t.feedback)
                        children=move |t: Trace| {
                            let id = t.id;
                            let b = body(&t.request);
                            let last = conversation(&b).into_iter().rev().find(|(r, _)| r == "user").map(|(_, c)| c).unwrap_or_default();
                            let short: String = last.chars().take(80).collect();
                            let ok = t.status < 400;
                            view! {
                                <tr class:open=move || open.get() == Some(id) data-trace=id>
                                    <td>
                                        <input type="checkbox" aria-label=format!("Select trace {id}") prop:checked=move || selected.get().contains(&id) on:change=move |ev| toggle(id, event_target_checked(&ev)) />
                                    </td>
                                    <td>{time(t.created_at)}</td>
                                    <td><code>{t.model.clone()}</code></td>
                                    <td>
                                        <button class="link trace-open" on:click=move |_| open.update(|o| *o = if *o == Some(id) { None } else { Some(id) })>
                                            {if short.is_empty() { format!("#{id}") } else { short }}
                                        </button>
                                    </td>
                                    <td class=if ok { "ok" } else { "bad" }>{t.status}</td>
                                    <td>{format!("{} ms", t.latency_ms)}</td>
                                    <td>{format!("{} → {}", t.prompt_tokens, t.completion_tokens)}</td>
                                </tr>
                            }
                        }
                    />
                </tbody>
            </table>
            {move || {
                let id = open.get()?;
                let t = traces.with(|all| all.iter().find(|t| t.id == id).cloned())?;
                let conv = conversation(&body(&t.request));
                let (t1, t2, t3, t4) = (t.clone(), t.clone(), t.clone(), t.clone());
                Some(view! {
                    <section class="card trace-detail" id="trace-detail">
                        <div class="rows-head">
                            <h2>{format!("Trace #{} · {}", t.id, t.endpoint)}</h2>
                            <span class="hint">
                                {format!(
                                    "{} · {}{} · status {} · {} ms, first token {} ms · {} prompt + {} generated tokens{}",
                                    time(t.created_at),
                                    t.model,
                                    t.alias.as_ref().map(|a| format!(" (alias {a})")).unwrap_or_default(),
                                    t.status,
                                    t.latency_ms,
                                    t.ttft_ms,
                                    t.prompt_tokens,
                                    t.completion_tokens,
                                    if t.stream { " · streamed" } else { "" },
                                )}
                            </span>
                        </div>
                        <div class="transcript">
                            {conv.into_iter().map(|(role, content)| {
                                let class = if role == "user" { "bubble user" } else { "bubble reply" };
                                view! {
                                <div class=class>
                                    <span class="who">{role}</span>
                                    <p>{content}</p>
                                </div>
                            }}).collect_view()}
                            <div class=if t.status < 400 { "bubble reply" } else { "bubble reply failed" }>
                                <span class="who">{if t.status < 400 { "reply" } else { "error" }}</span>
                                <p id="trace-response">{t.response.clone()}</p>
                            </div>
                        </div>
                        <div class="actions">
                            <button aria-pressed=(t.feedback == Some(1)).to_string() on:click=move |_| rate(t1.clone(), if t1.feedback == Some(1) { None } else { Some(1) })>"Good"</button>
                            <button aria-pressed=(t.feedback == Some(-1)).to_string() on:click=move |_| rate(t2.clone(), if t2.feedback == Some(-1) { None } else { Some(-1) })>"Bad"</button>
                            <button id="trace-experiment" class="primary" disabled={t3.status >= 400} on:click=move |_| run_in_playground(t3.clone())>"Experiment in Playground"</button>
                        </div>
                        <details class="raw">
                            <summary>"Request (JSON)"</summary>
                            <pre>{t4.request.clone()}</pre>
                        </details>
                    </section>
                })
            }}
        </div>
    }
}
