//! Arena: 2–4 models answer one prompt at the same time, each panel streaming with its time to
//! first token and speed; the user picks the better answer (blind if they like), the session
//! goes on from it, and the votes become ratings and preference pairs for the next run.

use api::chat::{ChatModel, Sampling};
use api::eval::{ArenaAnswer, ArenaEvent, ArenaRequest, Ratings, VoteChoice, VoteRequest};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::ipc;

/// One panel of the current turn.
#[derive(Clone, Default, PartialEq)]
struct Panel {
    text: String,
    answer: Option<ArenaAnswer>,
    failed: Option<String>,
}

fn value_of(m: &ChatModel) -> String {
    match m {
        ChatModel::Base => "base".into(),
        ChatModel::Run(r) => format!("run:{r}"),
        ChatModel::Installed(id) => format!("model:{id}"),
    }
}

fn model_of(v: &str) -> ChatModel {
    if let Some(r) = v.strip_prefix("run:") {
        ChatModel::Run(r.into())
    } else if let Some(m) = v.strip_prefix("model:") {
        ChatModel::Installed(m.into())
    } else {
        ChatModel::Base
    }
}

fn name(m: &ChatModel) -> String {
    match m {
        ChatModel::Base => "Base model".into(),
        ChatModel::Run(r) => format!("Fine-tuned {r}"),
        ChatModel::Installed(id) => id.clone(),
    }
}

/// The Arena pane of project `slug`.
#[component]
pub fn Arena(slug: String) -> impl IntoView {
    let slug = StoredValue::new(slug);
    let choices = RwSignal::new(vec![ChatModel::Base]);
    let picked = RwSignal::new(Vec::<String>::new());
    let blind = RwSignal::new(true);
    let prompt = RwSignal::new(String::new());
    let session = RwSignal::new(None::<(String, Vec<ChatModel>)>);
    let turn = RwSignal::new(None::<usize>);
    let panels = RwSignal::new(Vec::<Panel>::new());
    let voted = RwSignal::new(None::<VoteChoice>);
    let why = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let ratings = RwSignal::new(None::<Ratings>);
    let exported = RwSignal::new(None::<String>);
    let asked = RwSignal::new(String::new());
    let load_ratings = move || {
        spawn_local(async move {
            if let Ok(r) = ipc::arena_ratings(slug.get_value()).await {
                ratings.set(Some(r));
            }
        });
    };
    spawn_local(async move {
        let mut all = vec![ChatModel::Base];
        match ipc::runs(slug.get_value()).await {
            Ok(r) => all
                .extend(r.into_iter().filter(|r| r.status == "done").map(|r| ChatModel::Run(r.id))),
            Err(e) => error.set(Some(e.message)),
        }
        let base = ipc::project_show(slug.get_value()).await.map(|p| p.base_model).ok();
        if let Ok(models) = ipc::models_list().await {
            all.extend(
                models
                    .into_iter()
                    .filter(|m| Some(&m.id) != base.as_ref())
                    .map(|m| ChatModel::Installed(m.id)),
            );
        }
        // Base against the newest runs, three panels when there are.
        let mut start: Vec<String> = vec![value_of(&ChatModel::Base)];
        start.extend(
            all.iter().filter(|m| matches!(m, ChatModel::Run(_))).rev().take(2).map(value_of),
        );
        if start.len() < 2
            && let Some(m) = all.iter().find(|m| matches!(m, ChatModel::Installed(_)))
        {
            start.push(value_of(m));
        }
        picked.set(start);
        choices.set(all);
    });
    load_ratings();

    let send = move || {
        let text = prompt.get_untracked();
        if text.trim().is_empty() || busy.get_untracked() {
            return;
        }
        let continuing = session.get_untracked().filter(|_| voted.get_untracked().is_some());
        let models: Vec<ChatModel> = match &continuing {
            Some((_, m)) => m.clone(),
            None => picked.get_untracked().iter().map(|v| model_of(v)).collect(),
        };
        if !(2..=4).contains(&models.len()) {
            error.set(Some("Pick 2 to 4 models.".into()));
            return;
        }
        let req = ArenaRequest {
            project: Some(slug.get_value()),
            session: continuing.as_ref().map(|(id, _)| id.clone()),
            models: models.clone(),
            blind: blind.get_untracked(),
            prompt: text.clone(),
            sampling: Sampling { temperature: 0.7, max_tokens: 160, ..Sampling::default() },
        };
        error.set(None);
        exported.set(None);
        voted.set(None);
        why.set(String::new());
        asked.set(text);
        prompt.set(String::new());
        panels.set(vec![Panel::default(); models.len()]);
        busy.set(true);
        spawn_local(async move {
            let on_event = move |e: ArenaEvent| match e {
                ArenaEvent::Session { id, turn: t } => {
                    session.set(Some((id, models.clone())));
                    turn.set(Some(t));
                }
                ArenaEvent::Delta { panel, text } => panels.update(|p| {
                    if let Some(p) = p.get_mut(panel) {
                        p.text.push_str(&text);
                    }
                }),
                ArenaEvent::Done { panel, answer } => panels.update(|p| {
                    if let Some(p) = p.get_mut(panel) {
                        p.answer = Some(answer);
                    }
                }),
                ArenaEvent::Failed { panel, message } => panels.update(|p| {
                    if let Some(p) = p.get_mut(panel) {
                        p.failed = Some(message);
                    }
                }),
            };
            if let Err(e) = ipc::arena_send(req, on_event).await {
                error.set(Some(e.message));
            }
            busy.set(false);
        });
    };
    let vote = move |choice: VoteChoice| {
        let (Some((id, _)), Some(t)) = (session.get_untracked(), turn.get_untracked()) else {
            return;
        };
        let req = VoteRequest {
            project: Some(slug.get_value()),
            session: id,
            turn: t,
            choice: choice.clone(),
            why: Some(why.get_untracked()).filter(|w| !w.trim().is_empty()),
        };
        spawn_local(async move {
            match ipc::arena_vote(req).await {
                Ok(_) => {
                    voted.set(Some(choice));
                    load_ratings();
                }
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let export = move || {
        spawn_local(async move {
            match ipc::prefs_export(slug.get_value()).await {
                Ok(x) => exported.set(Some(format!(
                    "{} preference pairs saved in the project ({}). Train on them: vibeflow train -p {} --method dpo",
                    x.pairs,
                    x.path,
                    slug.get_value()
                ))),
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let hidden_names = move || blind.get() && voted.get().is_none();
    let toggle = move |v: String, on: bool| {
        picked.update(|p| {
            p.retain(|x| x != &v);
            if on {
                p.push(v);
            }
        });
        // A new set of models starts a new session.
        session.set(None);
        voted.set(None);
    };

    view! {
        <div class="pane arena" id="pane-arena">
            <header class="rows-head">
                <h1>"Arena"</h1>
                <p class="hint">
                    "Ask several models the same thing at once and pick the better answer. Your votes rank the models and become training data for the next version."
                </p>
            </header>
            <fieldset class="arena-models" disabled=move || busy.get()>
                <legend>"Models (2 to 4)"</legend>
                {move || {
                    choices
                        .get()
                        .into_iter()
                        .map(|m| {
                            let v = value_of(&m);
                            let (v1, v2) = (v.clone(), v.clone());
                            view! {
                                <label class="check">
                                    <input
                                        type="checkbox"
                                        data-model=v
                                        prop:checked=move || picked.get().contains(&v1)
                                        on:change=move |ev| toggle(v2.clone(), event_target_checked(&ev))
                                    />
                                    {name(&m)}
                                </label>
                            }
                        })
                        .collect_view()
                }}
                <label class="check">
                    <input
                        id="arena-blind"
                        type="checkbox"
                        prop:checked=move || blind.get()
                        on:change=move |ev| blind.set(event_target_checked(&ev))
                    />
                    "Blind: hide the names until I vote"
                </label>
            </fieldset>
            <form
                class="composer"
                on:submit=move |ev| {
                    ev.prevent_default();
                    send();
                }
            >
                <textarea
                    id="arena-prompt"
                    rows="2"
                    placeholder=move || {
                        if voted.get().is_some() {
                            "Continue the conversation from the answer you preferred…"
                        } else {
                            "Ask all of them the same thing…"
                        }
                    }
                    prop:value=move || prompt.get()
                    on:input=move |ev| prompt.set(event_target_value(&ev))
                ></textarea>
                <button id="arena-send" type="submit" disabled=move || busy.get()>
                    {move || if busy.get() { "Answering…" } else { "Ask" }}
                </button>
            </form>
            <p class="error" id="arena-error" class:hidden=move || error.get().is_none()>
                {move || error.get().unwrap_or_default()}
            </p>
            <p class="empty" class:hidden=move || !panels.get().is_empty()>
                "Pick the models, then ask something your users would ask."
            </p>
            <p class="asked" class:hidden=move || panels.get().is_empty()>
                <b>"You: "</b>
                {move || asked.get()}
            </p>
            <div
                class="arena-panels"
                id="arena-panels"
                style=move || format!("--panels: {}", panels.get().len().max(1))
            >
                {move || {
                    let models = session.get().map(|s| s.1).unwrap_or_default();
                    panels
                        .get()
                        .into_iter()
                        .enumerate()
                        .map(|(i, p)| {
                            let title = match (hidden_names(), models.get(i)) {
                                (false, Some(m)) => name(m),
                                _ => format!("Model {}", (b'A' + i as u8) as char),
                            };
                            let chosen = voted.get() == Some(VoteChoice::Prefer { panel: i });
                            let stats = p
                                .answer
                                .as_ref()
                                .map(|a| {
                                    format!(
                                        "first token {:.1} s · {} tokens · {:.1} tokens/s",
                                        a.first_token_ms as f64 / 1000.0,
                                        a.tokens,
                                        a.tokens_per_second,
                                    )
                                })
                                .unwrap_or_else(|| {
                                    if p.failed.is_some() { String::new() } else { "answering…".into() }
                                });
                            let can_vote = p.answer.is_some() && !busy.get() && voted.get().is_none();
                            view! {
                                <section class="card arena-panel" class:chosen=chosen data-panel=i>
                                    <h2>{title}</h2>
                                    <p class="answer">{p.text.clone()}</p>
                                    {p.failed.clone().map(|f| view! { <p class="error">{f}</p> })}
                                    <p class="hint stats">{stats}</p>
                                    <button
                                        class="prefer"
                                        disabled=!can_vote
                                        on:click=move |_| vote(VoteChoice::Prefer { panel: i })
                                    >
                                        {if chosen { "Preferred" } else { "I prefer this" }}
                                    </button>
                                </section>
                            }
                        })
                        .collect_view()
                }}
            </div>
            <div class="vote-bar" class:hidden=move || panels.get().is_empty() || busy.get()>
                <input
                    id="arena-why"
                    type="text"
                    placeholder="Why? (optional, before you vote)"
                    prop:value=move || why.get()
                    on:input=move |ev| why.set(event_target_value(&ev))
                    disabled=move || voted.get().is_some()
                />
                <button
                    id="arena-tie"
                    disabled=move || voted.get().is_some()
                    on:click=move |_| vote(VoteChoice::Tie)
                >
                    "Tie"
                </button>
                <button
                    id="arena-bad"
                    disabled=move || voted.get().is_some()
                    on:click=move |_| vote(VoteChoice::BothBad)
                >
                    "All bad"
                </button>
                <span class="hint" id="arena-voted">
                    {move || voted.get().map(|_| "Vote saved. Ask again to continue from the answer you preferred.").unwrap_or_default()}
                </span>
            </div>
            <section class="card" id="arena-ratings">
                <div class="rows-head">
                    <h2>"Ratings"</h2>
                    <button id="arena-export" on:click=move |_| export()>
                        "Export votes for training"
                    </button>
                </div>
                <p class="hint" id="arena-exported" class:hidden=move || exported.get().is_none()>
                    {move || exported.get().unwrap_or_default()}
                </p>
                {move || match ratings.get() {
                    Some(r) if !r.ratings.is_empty() => {
                        view! {
                            <p class="hint">
                                {format!(
                                    "{} {}. Elo-scale Bradley–Terry strength with a 95 % interval (it narrows as votes add up).",
                                    r.votes,
                                    if r.votes == 1 { "vote" } else { "votes" },
                                )}
                            </p>
                            <table class="metrics">
                                <thead>
                                    <tr>
                                        <th>"Model"</th>
                                        <th>"Rating"</th>
                                        <th>"95 % interval"</th>
                                        <th>"Win rate"</th>
                                        <th>"Won · lost · tied"</th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {r.ratings
                                        .into_iter()
                                        .map(|x| {
                                            view! {
                                                <tr>
                                                    <td>{x.model}</td>
                                                    <td>{format!("{:.0}", x.elo)}</td>
                                                    <td>{format!("{:.0} – {:.0}", x.low, x.high)}</td>
                                                    <td>{format!("{:.0} %", x.win_rate * 100.0)}</td>
                                                    <td>{format!("{} · {} · {}", x.wins, x.losses, x.ties)}</td>
                                                </tr>
                                            }
                                        })
                                        .collect_view()}
                                </tbody>
                            </table>
                        }
                            .into_any()
                    }
                    _ => view! { <p class="empty">"No votes yet."</p> }.into_any(),
                }}
            </section>
        </div>
    }
}
