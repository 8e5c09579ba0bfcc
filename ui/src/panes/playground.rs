//! Playground: chat with the base model or a finished run, tokens streaming in; side by side,
//! the same conversation goes to two models at once. A system prompt, the sampling controls with
//! their ranges, Stop, the raw request, and conversations saved per project.

use api::chat::{ChatEvent, ChatModel, ChatRequest, Conversation, Sampling, Turn};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::ipc;

/// The sampling controls as typed.
#[derive(Clone, Debug, PartialEq)]
struct Params {
    temperature: String,
    top_p: String,
    top_k: String,
    min_p: String,
    max_tokens: String,
    repetition_penalty: String,
    frequency_penalty: String,
    presence_penalty: String,
    seed: String,
    stop: String,
}

impl Default for Params {
    fn default() -> Self {
        let s = Sampling::default();
        Params {
            temperature: s.temperature.to_string(),
            top_p: s.top_p.to_string(),
            top_k: s.top_k.to_string(),
            min_p: s.min_p.to_string(),
            max_tokens: s.max_tokens.to_string(),
            repetition_penalty: s.repetition_penalty.to_string(),
            frequency_penalty: s.frequency_penalty.to_string(),
            presence_penalty: s.presence_penalty.to_string(),
            seed: s.seed.to_string(),
            stop: String::new(),
        }
    }
}

/// The controls the fields describe, or what is wrong (the ranges are `api`'s, the ones the
/// engine and the server check).
fn sampling(p: &Params) -> Result<Sampling, String> {
    fn num<T: std::str::FromStr>(name: &str, text: &str) -> Result<T, String> {
        text.trim().parse().map_err(|_| format!("{name}: a number, got '{}'", text.trim()))
    }
    let s = Sampling {
        temperature: num("temperature", &p.temperature)?,
        top_p: num("top_p", &p.top_p)?,
        top_k: num("top_k", &p.top_k)?,
        min_p: num("min_p", &p.min_p)?,
        max_tokens: num("max_tokens", &p.max_tokens)?,
        repetition_penalty: num("repetition_penalty", &p.repetition_penalty)?,
        frequency_penalty: num("frequency_penalty", &p.frequency_penalty)?,
        presence_penalty: num("presence_penalty", &p.presence_penalty)?,
        seed: num("seed", &p.seed)?,
        stop: p
            .stop
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    };
    s.validate()?;
    Ok(s)
}

/// `value` as indented JSON (the browser's own JSON, no serializer in the bundle).
fn pretty<T: serde::Serialize>(value: &T) -> String {
    let ser = serde_wasm_bindgen::Serializer::json_compatible();
    value
        .serialize(&ser)
        .ok()
        .and_then(|v| {
            js_sys::JSON::stringify_with_replacer_and_space(
                &v,
                &wasm_bindgen::JsValue::NULL,
                &2.into(),
            )
            .ok()
        })
        .and_then(|s| s.as_string())
        .unwrap_or_default()
}

/// `chat-<ms>`: unique enough for one user's conversations, and a safe file name.
fn new_id() -> String {
    format!("c-{}", js_sys::Date::now() as u64)
}

fn now() -> i64 {
    (js_sys::Date::now() / 1000.0) as i64
}

fn blank(project: &str) -> Conversation {
    Conversation {
        id: new_id(),
        project: project.into(),
        title: String::new(),
        updated_at: now(),
        models: vec![ChatModel::Base],
        system: String::new(),
        turns: Vec::new(),
        sampling: Sampling::default(),
    }
}

fn model_value(m: &ChatModel) -> String {
    match m {
        ChatModel::Base => "base".into(),
        ChatModel::Run(r) | ChatModel::Installed(r) => r.clone(),
    }
}

fn model_of(v: &str) -> ChatModel {
    if v == "base" { ChatModel::Base } else { ChatModel::Run(v.into()) }
}

/// The Playground pane of project `slug`.
#[component]
pub fn Playground(slug: String) -> impl IntoView {
    let conv = RwSignal::new(blank(&slug));
    let runs = RwSignal::new(Vec::<String>::new());
    let saved = RwSignal::new(Vec::<Conversation>::new());
    let params = RwSignal::new(Params::default());
    let left = RwSignal::new(ChatModel::Base);
    let right = RwSignal::new(None::<ChatModel>);
    let side = RwSignal::new(false);
    let input = RwSignal::new(String::new());
    let pending = RwSignal::new(0usize);
    let status = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let raw = RwSignal::new(String::new());
    let in_flight = RwSignal::new(Vec::<String>::new());
    let experiment_note = RwSignal::new(None::<String>);
    let alias_name = RwSignal::new(String::new());
    let alias_saved = RwSignal::new(None::<Result<String, String>>);
    // A trace sent here from Traces ("Experiment"): its conversation and settings, its last
    // message in the composer, and side by side against the base model.
    if let Some(x) = use_context::<crate::state::ExperimentCtx>()
        .and_then(|x| x.0.try_update(Option::take).flatten())
    {
        let s = &x.conversation.sampling;
        params.set(Params {
            temperature: s.temperature.to_string(),
            top_p: s.top_p.to_string(),
            max_tokens: s.max_tokens.to_string(),
            frequency_penalty: s.frequency_penalty.to_string(),
            presence_penalty: s.presence_penalty.to_string(),
            seed: s.seed.to_string(),
            stop: s.stop.join(", "),
            ..Params::default()
        });
        let models = x.conversation.models.clone();
        left.set(models.first().cloned().unwrap_or(ChatModel::Base));
        right.set(models.get(1).cloned());
        side.set(models.len() > 1);
        input.set(x.input);
        experiment_note.set(Some(x.note));
        conv.set(x.conversation);
    }
    {
        let slug = slug.clone();
        spawn_local(async move {
            match ipc::runs(slug.clone()).await {
                Ok(r) => {
                    let done: Vec<String> =
                        r.into_iter().filter(|r| r.status == "done").map(|r| r.id).collect();
                    // Side by side starts as base against the newest finished run.
                    if experiment_note.get_untracked().is_none() {
                        right.set(done.last().cloned().map(ChatModel::Run));
                    }
                    runs.set(done);
                }
                Err(e) => error.set(Some(e.message)),
            }
            if let Ok(c) = ipc::chat_list(slug).await {
                saved.set(c);
            }
        });
    }
    let checked = Memo::new(move |_| sampling(&params.get()));
    let models = move || {
        let mut m = vec![left.get()];
        if side.get()
            && let Some(r) = right.get()
        {
            m.push(r);
        }
        m
    };
    let save = {
        let slug = slug.clone();
        move || {
            let c = conv.get_untracked();
            let slug = slug.clone();
            spawn_local(async move {
                if ipc::chat_save(c).await.is_ok()
                    && let Ok(list) = ipc::chat_list(slug).await
                {
                    saved.set(list);
                }
            });
        }
    };
    let send = {
        let slug = slug.clone();
        move || {
            let text = input.get_untracked();
            let Ok(sampling) = checked.get_untracked() else { return };
            if text.trim().is_empty() || pending.get_untracked() > 0 {
                return;
            }
            let models = models();
            // A conversation keeps the models it started with.
            conv.update(|c| {
                if c.turns.is_empty() {
                    c.models = models.clone();
                    c.title = text.chars().take(60).collect();
                }
                c.sampling = sampling.clone();
                c.turns.push(Turn {
                    user: text.clone(),
                    replies: vec![String::new(); c.models.len()],
                });
                c.updated_at = now();
            });
            input.set(String::new());
            error.set(None);
            let c = conv.get_untracked();
            let turn = c.turns.len() - 1;
            let requests: Vec<ChatRequest> = c
                .models
                .iter()
                .enumerate()
                .map(|(i, m)| ChatRequest {
                    id: format!("{}-{turn}-{i}", c.id),
                    project: slug.clone(),
                    model: m.clone(),
                    messages: c.messages_for(i),
                    sampling: sampling.clone(),
                })
                .collect();
            raw.set(pretty(&requests));
            pending.set(requests.len());
            in_flight.set(requests.iter().map(|r| r.id.clone()).collect());
            status.set("Thinking…".into());
            for (i, req) in requests.into_iter().enumerate() {
                let save = save.clone();
                let label = req.model.label();
                let on_event = move |e: ChatEvent| {
                    let end = |msg: String| {
                        status.set(msg);
                        pending.update(|n| *n = n.saturating_sub(1));
                        if pending.get_untracked() == 0 {
                            in_flight.set(Vec::new());
                            save();
                        }
                    };
                    match e {
                        ChatEvent::Loading => status.set(format!("Loading {label}…")),
                        ChatEvent::Delta { text } => conv.update(|c| {
                            if let Some(r) =
                                c.turns.get_mut(turn).and_then(|t| t.replies.get_mut(i))
                            {
                                r.push_str(&text);
                            }
                        }),
                        ChatEvent::Done {
                            finish_reason,
                            completion_tokens,
                            tokens_per_second,
                            ..
                        } => end(format!(
                            "{label}: {completion_tokens} tokens at {tokens_per_second:.1} tokens/s ({finish_reason})"
                        )),
                        ChatEvent::Failed { message } => {
                            error.set(Some(format!("{label}: {message}")));
                            end(String::new());
                        }
                    }
                };
                spawn_local(async move {
                    if let Err(e) = ipc::chat_send(req, on_event).await {
                        error.set(Some(e.message));
                    }
                });
            }
        }
    };
    let stop = move || {
        for id in in_flight.get_untracked() {
            spawn_local(async move {
                let _ = ipc::chat_stop(id).await;
            });
        }
    };
    let fresh = {
        let slug = slug.clone();
        move || {
            conv.set(blank(&slug));
            raw.set(String::new());
            status.set(String::new());
        }
    };
    let options = move |selected: RwSignal<ChatModel>| {
        let mut all = vec![ChatModel::Base];
        all.extend(runs.get().into_iter().map(ChatModel::Run));
        all.into_iter()
            .map(|m| {
                let v = model_value(&m);
                let text = match &m {
                    ChatModel::Base => "Base model".to_string(),
                    ChatModel::Run(r) => format!("Fine-tuned: {r}"),
                    ChatModel::Installed(id) => format!("Model: {id}"),
                };
                let m2 = m.clone();
                view! { <option value=v selected=move || selected.get() == m2>{text}</option> }
            })
            .collect_view()
    };
    let right_sel = RwSignal::new(ChatModel::Base);
    Effect::new(move |_| {
        if let Some(r) = right.get() {
            right_sel.set(r);
        }
    });
    let save_alias = {
        let slug = slug.clone();
        move || {
            let name = alias_name.get_untracked().trim().to_string();
            let Ok(s) = checked.get_untracked() else { return };
            if name.is_empty() {
                alias_saved.set(Some(Err("Name the alias first.".into())));
                return;
            }
            let (slug, system) = (slug.clone(), conv.with_untracked(|c| c.system.clone()));
            let picked = left.get_untracked();
            spawn_local(async move {
                let model = match picked {
                    ChatModel::Run(r) => format!("{slug}/{r}"),
                    ChatModel::Installed(id) => id,
                    ChatModel::Base => match ipc::project_show(slug).await {
                        Ok(p) => p.base_model,
                        Err(e) => {
                            alias_saved.set(Some(Err(e.message)));
                            return;
                        }
                    },
                };
                let alias = api::serve::Alias {
                    alias: name.clone(),
                    model,
                    system: Some(system).filter(|s| !s.trim().is_empty()),
                    request_params: api::serve::RequestParams {
                        temperature: Some(s.temperature),
                        top_p: Some(s.top_p),
                        frequency_penalty: Some(s.frequency_penalty),
                        presence_penalty: Some(s.presence_penalty),
                        max_tokens: Some(s.max_tokens),
                        stop: s.stop.clone(),
                        seed: Some(s.seed),
                        user: None,
                    },
                    ..api::serve::Alias::default()
                };
                alias_saved.set(Some(
                    ipc::alias_save(alias, false)
                        .await
                        .map(|a| {
                            format!(
                                "Saved: the server answers to \"{}\" with these settings.",
                                a.alias
                            )
                        })
                        .map_err(|e| e.message),
                ));
            });
        }
    };
    let param = move |id: &'static str,
                      label: &'static str,
                      help: &'static str,
                      get: fn(&Params) -> String,
                      set: fn(&mut Params, String)| {
        view! {
            <label class="field" for=id title=help>
                <span class="label">{label}</span>
                <input id=id type="text" prop:value=move || params.with(get) on:input=move |ev| params.update(|p| set(p, event_target_value(&ev))) />
                <span class="help">{help}</span>
            </label>
        }
    };
    let send2 = send.clone();
    view! {
        <div class="playground" id="pane-playground">
            <div class="chat-main">
                <h1>"Playground"</h1>
                <div class="chat-head">
                    <label class="field inline" for="chat-model-a">
                        <span class="label">{move || if side.get() { "Left" } else { "Answer with" }}</span>
                        <select id="chat-model-a" disabled=move || !conv.with(|c| c.turns.is_empty()) on:change=move |ev| left.set(model_of(&event_target_value(&ev)))>
                            {move || options(left)}
                        </select>
                    </label>
                    <label class="check">
                        <input type="checkbox" id="chat-side" prop:checked=move || side.get() disabled=move || !conv.with(|c| c.turns.is_empty()) on:change=move |ev| side.set(event_target_checked(&ev)) />
                        " Side by side"
                    </label>
                    <label class="field inline" for="chat-model-b" class:hidden=move || !side.get()>
                        <span class="label">"Right"</span>
                        <select id="chat-model-b" disabled=move || !conv.with(|c| c.turns.is_empty()) on:change=move |ev| right.set(Some(model_of(&event_target_value(&ev))))>
                            {move || options(right_sel)}
                        </select>
                    </label>
                    <button id="chat-new" on:click=move |_| fresh()>"New conversation"</button>
                </div>
                <p class="notice" id="chat-experiment" class:hidden=move || experiment_note.get().is_none()>
                    {move || experiment_note.get().unwrap_or_default()}
                </p>
                <div class="transcript" id="chat-transcript" aria-live="polite">
                    {move || conv.with(|c| c.turns.is_empty()).then(|| view! {
                        <p class="hint" id="chat-empty">"Ask something your fine-tuned model should now answer better. Side by side sends the same conversation to two models at once."</p>
                    })}
                    // Keyed turns whose replies read the store themselves: a token updates one
                    // text node, not the whole transcript.
                    <For
                        each=move || conv.with(|c| (0..c.turns.len()).map(|n| (c.id.clone(), n)).collect::<Vec<_>>())
                        key=|k| k.clone()
                        children=move |(_, n): (String, usize)| {
                            let (user, heads) = conv.with_untracked(|c| {
                                (c.turns[n].user.clone(), c.models.iter().map(ChatModel::label).collect::<Vec<_>>())
                            });
                            let class = if heads.len() > 1 { "replies two" } else { "replies" };
                            view! {
                                <div class="turn" data-turn=n>
                                    <div class="bubble user">{user}</div>
                                    <div class=class>
                                        {heads.into_iter().enumerate().map(|(i, who)| view! {
                                            <div class="bubble reply" data-model=i>
                                                <span class="who">{who}</span>
                                                <p>{move || conv.with(|c| c.turns.get(n).and_then(|t| t.replies.get(i)).cloned().unwrap_or_default())}</p>
                                            </div>
                                        }).collect_view()}
                                    </div>
                                </div>
                            }
                        }
                    />
                </div>
                <p class="status" id="chat-status" role="status">{move || status.get()}</p>
                <p class="error" role="alert" id="chat-error" class:hidden=move || error.get().is_none()>{move || error.get().unwrap_or_default()}</p>
                <form class="composer" on:submit=move |ev| { ev.prevent_default(); send(); }>
                    <label class="sr-only" for="chat-input">"Message"</label>
                    <textarea
                        id="chat-input"
                        rows="2"
                        placeholder="Message (Enter sends, Shift+Enter for a new line)"
                        prop:value=move || input.get()
                        on:input=move |ev| input.set(event_target_value(&ev))
                        on:keydown=move |ev| {
                            if ev.key() == "Enter" && !ev.shift_key() {
                                ev.prevent_default();
                                send2();
                            }
                        }
                    ></textarea>
                    <button id="chat-send" type="submit" class="primary" disabled={move || pending.get() > 0 || checked.with(|c| c.is_err())}>"Send"</button>
                    <button id="chat-stop" type="button" disabled=move || pending.get() == 0 on:click=move |_| stop()>"Stop"</button>
                </form>
            </div>
            <aside class="chat-side">
                <label class="field" for="chat-system">
                    <span class="label">"System prompt"</span>
                    <textarea id="chat-system" rows="3" prop:value=move || conv.with(|c| c.system.clone()) on:input=move |ev| conv.update(|c| c.system = event_target_value(&ev))></textarea>
                    <span class="help">"Instructions every reply follows; sent first, before the conversation."</span>
                </label>
                <details class="params" open=true>
                    <summary>"Parameters"</summary>
                    {param("p-temperature", "Temperature (0–2)", "0 always picks the likeliest token; higher is more varied.", |p| p.temperature.clone(), |p, v| p.temperature = v)}
                    {param("p-top-p", "Top-p (0–1)", "Keep the likeliest tokens whose probabilities add up to this.", |p| p.top_p.clone(), |p, v| p.top_p = v)}
                    {param("p-top-k", "Top-k (0: off)", "Keep only the k likeliest tokens.", |p| p.top_k.clone(), |p, v| p.top_k = v)}
                    {param("p-min-p", "Min-p (0–1)", "Drop tokens less likely than this share of the top one.", |p| p.min_p.clone(), |p, v| p.min_p = v)}
                    {param("p-max-tokens", "Max tokens (≥ 1)", "The longest reply, in tokens.", |p| p.max_tokens.clone(), |p, v| p.max_tokens = v)}
                    {param("p-repetition", "Repetition penalty (> 0; 1: off)", "Above 1 makes repeating a token less likely.", |p| p.repetition_penalty.clone(), |p, v| p.repetition_penalty = v)}
                    {param("p-frequency", "Frequency penalty (−2–2)", "Lowers a token the more often it appeared.", |p| p.frequency_penalty.clone(), |p, v| p.frequency_penalty = v)}
                    {param("p-presence", "Presence penalty (−2–2)", "Lowers any token that appeared at all.", |p| p.presence_penalty.clone(), |p, v| p.presence_penalty = v)}
                    {param("p-seed", "Seed", "The same seed and settings give the same reply.", |p| p.seed.clone(), |p, v| p.seed = v)}
                    {param("p-stop", "Stop strings (comma-separated, ≤ 4)", "The reply ends before any of these.", |p| p.stop.clone(), |p, v| p.stop = v)}
                    <p class="invalid" role="alert" id="chat-params-error">{move || checked.get().err().unwrap_or_default()}</p>
                </details>
                <form class="save-alias" on:submit=move |ev| { ev.prevent_default(); save_alias(); }>
                    <label class="field" for="chat-alias-name">
                        <span class="label">"Save as alias"</span>
                        <input id="chat-alias-name" type="text" placeholder="e.g. support-bot:v2" prop:value=move || alias_name.get() on:input=move |ev| alias_name.set(event_target_value(&ev)) />
                        <span class="help">"The left model with this system prompt and these parameters, served under that name (Deploy pane)."</span>
                    </label>
                    <button id="chat-alias-save" type="submit" disabled=move || checked.with(|c| c.is_err())>"Save alias"</button>
                    {move || alias_saved.get().map(|r| match r {
                        Ok(m) => view! { <p class="hint" id="chat-alias-saved">{m}</p> }.into_any(),
                        Err(e) => view! { <p class="invalid" id="chat-alias-saved">{e}</p> }.into_any(),
                    })}
                </form>
                <details class="raw">
                    <summary>"Raw request (JSON)"</summary>
                    <pre id="chat-raw">{move || raw.get()}</pre>
                </details>
                <h2 class="section">"Saved conversations"</h2>
                <ul class="saved" id="chat-saved">
                    <For
                        each=move || saved.get()
                        key=|c| (c.id.clone(), c.updated_at)
                        children=move |c: Conversation| {
                            let title = if c.title.is_empty() { "(untitled)".to_string() } else { c.title.clone() };
                            let who = c.models.iter().map(ChatModel::label).collect::<Vec<_>>().join(" vs ");
                            view! {
                                <li>
                                    <button class="link" on:click=move |_| {
                                        side.set(c.models.len() >= 2);
                                        conv.set(c.clone());
                                    }>{title}</button>
                                    <span class="meta">{who}</span>
                                </li>
                            }
                        }
                    />
                </ul>
            </aside>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked_with_the_engine_ranges() {
        assert_eq!(sampling(&Params::default()).unwrap(), Sampling::default());
        let bad = Params { temperature: "3".into(), ..Params::default() };
        assert_eq!(sampling(&bad).unwrap_err(), "temperature must be between 0 and 2, got 3");
        let bad = Params { top_k: "many".into(), ..Params::default() };
        assert_eq!(sampling(&bad).unwrap_err(), "top_k: a number, got 'many'");
        let p = Params { stop: " END , ###,".into(), ..Params::default() };
        assert_eq!(sampling(&p).unwrap().stop, ["END", "###"]);
    }
}
