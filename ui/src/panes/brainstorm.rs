//! Brainstorm: the assistant asks what the model should do, for how long and on what, and
//! answers with a recommended run, its reasons, what was traded away and an estimate measured
//! on this machine; "Use this configuration" fills the Train pane. The rules decide in the
//! back end; this pane draws the conversation and the recommendation.

use api::advisor::{AskRequest, Brief, RecommendRequest, Recommendation};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::state::{AssistCtx, DraftCtx, PaneCtx};
use crate::{Pane, ipc};

/// The Brainstorm pane of project `slug`.
#[component]
pub fn Brainstorm(slug: String) -> impl IntoView {
    let brief = RwSignal::new(Brief::default());
    let rec = RwSignal::new(None::<Recommendation>);
    let all = expect_context::<AssistCtx>().0;
    let transcript = NodeRef::<leptos::html::Div>::new();
    let input = RwSignal::new(String::new());
    let pending = RwSignal::new(false);
    let measuring = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    // Who words the replies: the rules alone (""), the project's model ("local") or an endpoint.
    let wording = RwSignal::new(String::new());
    let endpoints = RwSignal::new(Vec::<String>::new());
    spawn_local(async move {
        if let Ok(list) = ipc::endpoint_list().await {
            endpoints.set(list.into_iter().map(|e| e.name).collect());
        }
    });
    let draft = expect_context::<DraftCtx>();
    let pane = expect_context::<PaneCtx>();
    let project = StoredValue::new(slug.clone());
    // This project's conversation, kept in the window's store.
    let said =
        Memo::new(move |_| all.with(|m| m.get(&project.get_value()).cloned().unwrap_or_default()));
    let say = move |from_user: bool, text: String| {
        all.update(|m| m.entry(project.get_value()).or_default().push((from_user, text)));
    };
    // The newest message in view, as in any chat.
    Effect::new(move |_| {
        let n = said.with(Vec::len);
        if let Some(el) = transcript.get() {
            el.set_scroll_top(el.scroll_height() + n as i32);
        }
    });
    let load = move |b: Brief, greet: bool| {
        pending.set(true);
        spawn_local(async move {
            let req = RecommendRequest { project: project.get_value(), brief: b, measure: false };
            match ipc::recommend(req).await {
                Ok(r) => {
                    if greet {
                        let ask = r.questions.first().map_or(String::new(), |q| q.text.clone());
                        all.update(|m| {
                            m.insert(project.get_value(), Vec::new());
                        });
                        say(
                            false,
                            format!(
                                "Hi! I'll help you set up a first run that fits this machine. {ask}"
                            ),
                        );
                    }
                    rec.set(Some(r));
                    error.set(None);
                }
                Err(e) => error.set(Some(e.message)),
            }
            pending.set(false);
        });
    };
    spawn_local(async move {
        let b = ipc::brief(project.get_value()).await.unwrap_or_default();
        brief.set(b.clone());
        // A conversation already under way goes on; otherwise the assistant greets.
        load(b, said.get_untracked().is_empty());
    });
    let send = move |text: String| {
        let text = text.trim().to_string();
        if text.is_empty() || pending.get_untracked() {
            return;
        }
        say(true, text.clone());
        input.set(String::new());
        pending.set(true);
        spawn_local(async move {
            let req = AskRequest {
                project: project.get_value(),
                brief: brief.get_untracked(),
                text,
                phrase_with: Some(wording.get_untracked()).filter(|w| !w.is_empty()),
            };
            match ipc::ask(req).await {
                Ok(reply) => {
                    let by = reply.phrased_by;
                    // A wording that was not shown says why, after the rules' words.
                    let note = by
                        .strip_prefix("rules (")
                        .map(|w| format!("\n\n(Kept the plain answer: {}", w));
                    say(false, reply.text + &note.unwrap_or_default());
                    brief.set(reply.brief);
                    rec.set(Some(reply.recommendation));
                    error.set(None);
                }
                Err(e) => error.set(Some(e.message)),
            }
            pending.set(false);
        });
    };
    let measure = move || {
        measuring.set(true);
        spawn_local(async move {
            let req = RecommendRequest {
                project: project.get_value(),
                brief: brief.get_untracked(),
                measure: true,
            };
            match ipc::recommend(req).await {
                Ok(r) => rec.set(Some(r)),
                Err(e) => error.set(Some(e.message)),
            }
            measuring.set(false);
        });
    };
    let start_over = move || {
        brief.set(Brief::default());
        load(Brief::default(), true);
    };
    let use_it = move || {
        if let Some(r) = rec.get_untracked() {
            draft.request.set(Some(r.plan.request));
            pane.0.set(Pane::Train);
        }
    };
    // The chips: the first open question's answers, and "use the installed model" when the
    // recommendation needs a download.
    // The first open question's answers, and "use the installed model" when the
    // recommendation needs a download. The data question's answer is the Data pane itself.
    let chips = Memo::new(move |_| {
        rec.with(|r| {
            let Some(r) = r else { return (false, Vec::new()) };
            let q = r.questions.first();
            let opens_data = q.is_some_and(|q| q.id == "data");
            let mut c: Vec<String> = q.map(|q| q.options.clone()).unwrap_or_default();
            let installed = r.plan.checks.iter().any(|c| c.id == "model" && c.ok);
            if !installed && !opens_data {
                c.insert(0, "Use the installed model".into());
            }
            (opens_data, c)
        })
    });
    let chip = move |text: String| match chips.with_untracked(|c| c.0) {
        true => pane.0.set(Pane::Data),
        false => send(text),
    };
    view! {
        <div class="brainstorm" id="pane-brainstorm">
            <div class="chat-main">
                <h1>"Brainstorm"</h1>
                <div class="transcript" id="assist-transcript" node_ref=transcript role="log" aria-live="polite" aria-label="Conversation with the assistant" tabindex="0">
                    <For each=move || said.get().into_iter().enumerate() key=|(i, _)| *i let:item>
                        <div class="bubble" class:user=item.1.0 class:reply=!item.1.0 data-said=item.0>
                            <span class="who">{if item.1.0 { "You" } else { "Assistant" }}</span>
                            {item.1.1}
                        </div>
                    </For>
                </div>
                <div class="chips" id="assist-chips" role="group" aria-label="Suggested answers">
                    {move || chips.get().1.into_iter().map(|c| {
                        let text = c.clone();
                        view! { <button type="button" class="chip" disabled=move || pending.get() on:click=move |_| chip(text.clone())>{c}</button> }
                    }.into_any()).collect_view()}
                </div>
                <p class="error" role="alert" id="assist-error" class:hidden=move || error.get().is_none()>{move || error.get().unwrap_or_default()}</p>
                <label class="field inline wording" for="assist-wording">
                    <span class="label">"Replies worded by"</span>
                    <select id="assist-wording" on:change=move |ev| wording.set(event_target_value(&ev))>
                        <option value="">"The rules (instant)"</option>
                        <option value="local">"This project's model"</option>
                        {move || endpoints.get().into_iter().map(|e| view! { <option value=e.clone()>{format!("Endpoint {e}")}</option> }.into_any()).collect_view()}
                    </select>
                </label>
                <form class="composer" on:submit=move |ev| { ev.prevent_default(); send(input.get_untracked()); }>
                    <label class="sr-only" for="assist-input">"Message to the assistant"</label>
                    <textarea
                        id="assist-input"
                        rows="2"
                        placeholder="Describe your goal, or ask: why not full fine-tuning? what if I had a GPU?"
                        prop:value=move || input.get()
                        on:input=move |ev| input.set(event_target_value(&ev))
                        on:keydown=move |ev| {
                            if ev.key() == "Enter" && !ev.shift_key() {
                                ev.prevent_default();
                                send(input.get_untracked());
                            }
                        }
                    ></textarea>
                    <button id="assist-send" type="submit" class="primary" disabled=move || pending.get()>
                        {move || if pending.get() { "Thinking…" } else { "Send" }}
                    </button>
                </form>
            </div>
            <aside class="chat-side assist-side" id="assist-recommendation" aria-labelledby="rec-title">
                <h2 id="rec-title" class="section">"Recommendation"</h2>
                {move || match rec.get() {
                    None => view! { <p class="hint">"Reading the project's data and this machine…"</p> }.into_any(),
                    Some(r) => recommendation(r, measuring, measure, use_it, start_over).into_any(),
                }}
            </aside>
        </div>
    }
}

fn recommendation(
    r: Recommendation,
    measuring: RwSignal<bool>,
    measure: impl Fn() + Copy + 'static,
    use_it: impl Fn() + Copy + 'static,
    start_over: impl Fn() + Copy + 'static,
) -> impl IntoView {
    let c = &r.plan.request.config;
    let ready = r.plan.checks.iter().all(|c| c.ok) && r.feasible;
    let summary = [
        ("Model", r.model_name.clone()),
        ("Method", c.method.kind().label().to_string()),
        ("Task", r.task.label().to_string()),
        (
            "Steps",
            match r.plan.train_rows {
                0 => "no dataset yet".to_string(),
                n => format!("{} over {n} training rows", r.plan.total_steps),
            },
        ),
        (
            "Memory",
            format!(
                "about {:.1} GB of {:.1} GB",
                r.memory_bytes as f64 / 1e9,
                r.target_memory_bytes as f64 / 1e9
            ),
        ),
    ];
    let body = view! {
        <div class="card rec" class:infeasible=!r.feasible>
            <table class="grid-table" id="rec-summary">
                <tbody>
                    {summary.into_iter().map(|(k, v)| view! { <tr><th scope="row">{k}</th><td>{v}</td></tr> }.into_any()).collect_view()}
                </tbody>
            </table>
            {r.limits.iter().map(|l| {
                let text = if r.plan.train_rows > 0 { format!("Beyond this machine: {l}") } else { l.clone() };
                view! { <p class="warning limit" role="note">{text}</p> }.into_any()
            }).collect_view()}
            <details class="why" open=true>
                <summary>"Why these settings?"</summary>
                <table class="grid-table reasons" id="rec-reasons">
                    <tbody>
                        {r.plan.reasons.iter().map(|x| view! {
                            <tr><th scope="row">{x.setting.clone()}</th><td class="value">{x.value.clone()}</td><td>{x.why.clone()}</td></tr>
                        }.into_any()).collect_view()}
                    </tbody>
                </table>
            </details>
            {(!r.tradeoffs.is_empty()).then(|| view! {
                <h3>"Traded away"</h3>
                <ul class="tradeoffs">{r.tradeoffs.iter().map(|t| view! { <li>{t.clone()}</li> }.into_any()).collect_view()}</ul>
            }.into_any())}
            {(!r.warnings.is_empty()).then(|| view! {
                <ul class="warnings">{r.warnings.iter().map(|w| view! { <li class="warning">{w.message.clone()}</li> }.into_any()).collect_view()}</ul>
            }.into_any())}
            <h3>"Pre-flight"</h3>
            <ul class="checks" id="rec-checks">
                {r.plan.checks.iter().map(|c| view! {
                    <li class:ok=c.ok class:fail=!c.ok data-check=c.id.clone()>
                        <span aria-hidden="true">{if c.ok { "✓" } else { "✗" }}</span>
                        <span class="sr-only">{if c.ok { "passed:" } else { "failed:" }}</span>
                        " "{c.message.clone()}
                    </li>
                }.into_any()).collect_view()}
            </ul>
            <p class="status" id="rec-estimate" role="status">
                {match &r.estimate {
                    None => "Not measured yet: the estimate runs a few real training steps here (cached afterwards).".to_string(),
                    Some(e) => format!(
                        "Measured here: about {} in all ({} training, {} evaluations, {} loading and saving), peak memory {:.1} GB, {:.3} kWh{}.",
                        crate::clock::about(e.seconds), crate::clock::about(e.train_seconds), crate::clock::about(e.eval_seconds), crate::clock::about(e.overhead_seconds),
                        e.peak_memory_bytes as f64 / 1e9, e.energy_kwh,
                        e.cost.map_or(String::new(), |c| format!(", cost {c:.2}"))
                    ),
                }}
            </p>
            <div class="actions">
                <button id="rec-measure" type="button" disabled=move || measuring.get() || !ready on:click=move |_| measure()>
                    {move || if measuring.get() { "Measuring…" } else { "Measure on this machine" }}
                </button>
                <button id="rec-use" type="button" class="primary" disabled=!ready on:click=move |_| use_it()>"Use this configuration"</button>
                <button id="rec-reset" type="button" class="link" on:click=move |_| start_over()>"Start over"</button>
            </div>
        </div>
    };
    body.into_any()
}
