//! Evaluate: a run against the base (or another run) on the dataset's held-out rows — the
//! overall score and its gate, each metric with what it means, the judge, possible reasons
//! with where to fix them, and the examples side by side (regressions on demand).

use api::chat::ChatModel;
use api::eval::{
    EvalProgress, EvalRequest, EvalSide, EvalSummary, Evaluation, Gate, LengthBand, Preference,
    ReasonFix,
};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::Pane;
use crate::ipc;
use crate::state::PaneCtx;

fn value_of(m: &ChatModel) -> String {
    match m {
        ChatModel::Base => "base".into(),
        ChatModel::Run(r) | ChatModel::Installed(r) => r.clone(),
    }
}

fn model_of(v: &str) -> Option<ChatModel> {
    match v {
        "" | "none" => None,
        "base" => Some(ChatModel::Base),
        r => Some(ChatModel::Run(r.into())),
    }
}

fn name(m: &ChatModel) -> String {
    match m {
        ChatModel::Base => "Base model".into(),
        ChatModel::Run(r) => format!("Fine-tuned {r}"),
        ChatModel::Installed(id) => id.clone(),
    }
}

fn gate_class(g: Gate) -> &'static str {
    match g {
        Gate::Ready => "gate ready",
        Gate::Review => "gate review",
        Gate::Retrain => "gate retrain",
    }
}

/// Each metric on 0–100 with what it means, as the table shows it.
fn metric_rows(s: &EvalSide) -> Vec<(&'static str, String, &'static str)> {
    let m = &s.metrics;
    let pct = |v: f64| format!("{:.1}", v * 100.0);
    let mut rows = vec![
        ("Token F1", pct(m.f1), "How many words the answers share with the reference answers"),
        (
            "Exact match",
            pct(m.exact_match),
            "Answers identical to the reference (after normalizing)",
        ),
        (
            "BLEU",
            format!("{:.1}", m.bleu.score),
            "Phrases shared with the references (25+ acceptable, 50+ good)",
        ),
        ("ROUGE-L", pct(m.rouge_l.f1), "The longest stretch of the reference said in order"),
        (
            "ROUGE-1 / 2",
            format!("{} / {}", pct(m.rouge1.f1), pct(m.rouge2.f1)),
            "Reference words / word pairs covered",
        ),
        (
            "Length",
            format!("{:.2}×", m.length_ratio),
            match m.length_band {
                LengthBand::TooShort => "Much shorter than the references (below 0.7×)",
                LengthBand::Short => "A little shorter than the references",
                LengthBand::Ideal => "About as long as the references (0.9–1.1×)",
                LengthBand::Long => "A little longer than the references",
                LengthBand::TooLong => "Much longer than the references: verbose (above 1.3×)",
            },
        ),
    ];
    if let Some(p) = m.perplexity {
        rows.push((
            "Perplexity",
            format!("{p:.2}"),
            "How surprised the model is by the reference answers (lower is better)",
        ));
    }
    if let Some(l) = &m.labels {
        rows.push(("Accuracy", pct(l.accuracy), "Labels predicted right"));
        rows.push((
            "Macro-F1",
            pct(l.macro_f1),
            "F1 per label, averaged: rare labels count as much as common ones",
        ));
    }
    if let Some(j) = s.judge.as_ref().filter(|j| j.judged > 0) {
        rows.push((
            "Judge",
            format!("{:.2} / 5", j.average),
            "The judge's rubric: relevance, coherence, factuality, completeness, tone",
        ));
    }
    rows.push((
        "Speed",
        format!("{:.1} tokens/s", s.tokens_per_second),
        "Generation speed over the whole set",
    ));
    rows
}

/// The Evaluate pane of project `slug`.
#[component]
pub fn Evaluate(slug: String) -> impl IntoView {
    let pane = expect_context::<PaneCtx>();
    let runs = RwSignal::new(Vec::<String>::new());
    let endpoints = RwSignal::new(Vec::<String>::new());
    let list = RwSignal::new(Vec::<EvalSummary>::new());
    let candidate = RwSignal::new(String::new());
    let baseline = RwSignal::new("base".to_string());
    let judge = RwSignal::new(String::new());
    let limit = RwSignal::new("40".to_string());
    let progress = RwSignal::new(None::<EvalProgress>);
    let shown = RwSignal::new(None::<Evaluation>);
    let only_regressions = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let saved = RwSignal::new(None::<String>);
    let slug = StoredValue::new(slug);
    let reload = move || {
        spawn_local(async move {
            if let Ok(l) = ipc::eval_list(slug.get_value()).await {
                list.set(l);
            }
        });
    };
    spawn_local(async move {
        match ipc::runs(slug.get_value()).await {
            Ok(r) => {
                let done: Vec<String> =
                    r.into_iter().filter(|r| r.status == "done").map(|r| r.id).collect();
                candidate.set(done.last().cloned().unwrap_or_default());
                runs.set(done);
            }
            Err(e) => error.set(Some(e.message)),
        }
        if let Ok(e) = ipc::endpoint_list().await {
            endpoints.set(e.into_iter().map(|e| e.name).collect());
        }
        if let Ok(l) = ipc::eval_list(slug.get_value()).await {
            if let Some(first) = l.first()
                && let Ok(e) = ipc::eval_show(slug.get_value(), first.id.clone()).await
            {
                shown.set(Some(e));
            }
            list.set(l);
        }
    });
    let start = move || {
        let Some(cand) = model_of(&candidate.get_untracked()) else { return };
        let req = EvalRequest {
            project: slug.get_value(),
            candidate: cand,
            baseline: model_of(&baseline.get_untracked()),
            judge: Some(judge.get_untracked()).filter(|j| !j.is_empty()),
            limit: limit.get_untracked().trim().parse().ok(),
            max_tokens: 128,
            labels: false,
        };
        error.set(None);
        saved.set(None);
        progress.set(Some(EvalProgress::Scoring));
        spawn_local(async move {
            match ipc::eval_run(req, move |p| progress.set(Some(p))).await {
                Ok(e) => {
                    shown.set(Some(e));
                    reload();
                }
                Err(e) => error.set(Some(e.message)),
            }
            progress.set(None);
        });
    };
    let open = move |id: String| {
        spawn_local(async move {
            match ipc::eval_show(slug.get_value(), id).await {
                Ok(e) => shown.set(Some(e)),
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let save_report = move || {
        let Some(e) = shown.get_untracked() else { return };
        spawn_local(async move {
            match ipc::eval_report_save(e.project, e.id).await {
                Ok(p) => saved.set(Some(p)),
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let running = move || progress.get().is_some();
    let progress_text = move || match progress.get() {
        Some(EvalProgress::Generating { model, done, total }) => {
            (format!("Generating answers with {}: {done} of {total}", name(&model)), done, total)
        }
        Some(EvalProgress::Judging { done, total }) => {
            (format!("The judge is reading the answers: {done} of {total}"), done, total)
        }
        Some(EvalProgress::Scoring) => ("Scoring…".to_string(), 0, 0),
        None => (String::new(), 0, 0),
    };

    view! {
        <div class="pane evaluate" id="pane-evaluate">
            <header class="rows-head">
                <h1>"Evaluate"</h1>
                <p class="hint">
                    "How much better is the fine-tuned model? Both answer the held-out rows of the dataset (never trained on); the answers are scored against the dataset's own."
                </p>
            </header>
            <form
                class="eval-form"
                on:submit=move |ev| {
                    ev.prevent_default();
                    start();
                }
            >
                <label class="field">
                    <span>"Model to evaluate"</span>
                    <select
                        id="eval-candidate"
                        on:change=move |ev| candidate.set(event_target_value(&ev))
                        prop:value=move || candidate.get()
                    >
                        {move || {
                            runs.get()
                                .into_iter()
                                .rev()
                                .map(|r| {
                                    let v = r.clone();
                                    view! { <option value=v>{format!("Fine-tuned {r}")}</option> }
                                })
                                .collect_view()
                        }}
                        <option value="base">"Base model"</option>
                    </select>
                </label>
                <label class="field">
                    <span>"Compared with"</span>
                    <select
                        id="eval-baseline"
                        on:change=move |ev| baseline.set(event_target_value(&ev))
                        prop:value=move || baseline.get()
                    >
                        <option value="base">"Base model"</option>
                        {move || {
                            runs.get()
                                .into_iter()
                                .map(|r| {
                                    let v = r.clone();
                                    view! { <option value=v>{format!("Fine-tuned {r}")}</option> }
                                })
                                .collect_view()
                        }}
                        <option value="none">"Nothing"</option>
                    </select>
                </label>
                <label class="field">
                    <span>"Judge"</span>
                    <select
                        id="eval-judge"
                        on:change=move |ev| judge.set(event_target_value(&ev))
                        prop:value=move || judge.get()
                    >
                        <option value="">"No judge (metrics only)"</option>
                        <option value="local">"The project's model"</option>
                        {move || {
                            endpoints
                                .get()
                                .into_iter()
                                .map(|e| {
                                    let v = e.clone();
                                    view! { <option value=v>{format!("Endpoint {e}")}</option> }
                                })
                                .collect_view()
                        }}
                    </select>
                </label>
                <label class="field">
                    <span>"Examples"</span>
                    <input
                        id="eval-limit"
                        type="number"
                        min="1"
                        prop:value=move || limit.get()
                        on:input=move |ev| limit.set(event_target_value(&ev))
                    />
                </label>
                <div class="actions">
                    <button
                        id="eval-start"
                        type="submit"
                        disabled=move || running() || candidate.get().is_empty()
                    >
                        "Evaluate"
                    </button>
                    <button
                        id="eval-cancel"
                        type="button"
                        class:hidden=move || !running()
                        on:click=move |_| {
                            spawn_local(async move {
                                let _ = ipc::eval_cancel().await;
                            })
                        }
                    >
                        "Cancel"
                    </button>
                </div>
            </form>
            <p class="empty" class:hidden=move || !runs.get().is_empty() || running()>
                "No finished run yet: train one in the Train pane, then evaluate it here."
            </p>
            <div class="importing" id="eval-progress" class:hidden=move || !running()>
                <p>{move || progress_text().0}</p>
                <progress
                    max=move || progress_text().2.max(1)
                    value=move || progress_text().1
                ></progress>
            </div>
            <p class="error" id="eval-error" class:hidden=move || error.get().is_none()>
                {move || error.get().unwrap_or_default()}
            </p>
            <div class="eval-grid">
                <div class="eval-main">
                    {move || {
                        shown
                            .get()
                            .map(|e| {
                                view! {
                                    <Result
                                        e
                                        only_regressions
                                        on_fix=move |f: ReasonFix| {
                                            pane.0
                                                .set(
                                                    match f {
                                                        ReasonFix::DataReport | ReasonFix::MoreData => Pane::Data,
                                                        ReasonFix::Settings => Pane::Train,
                                                        ReasonFix::LargerModel => Pane::Brainstorm,
                                                    },
                                                )
                                        }
                                        on_save=save_report
                                        saved
                                    />
                                }
                            })
                    }}
                </div>
                <aside class="eval-list">
                    <h2 class="section">"Evaluations"</h2>
                    <p class="empty" class:hidden=move || !list.get().is_empty()>"None yet."</p>
                    <ul>
                        <For
                            each=move || list.get()
                            key=|e| e.id.clone()
                            children=move |e: EvalSummary| {
                                let id = e.id.clone();
                                let vs = match (&e.baseline, e.baseline_score) {
                                    (Some(b), Some(s)) => format!(" vs {} {s:.0}", value_of(b)),
                                    _ => String::new(),
                                };
                                view! {
                                    <li>
                                        <button class="chip" on:click=move |_| open(id.clone())>
                                            <b>{format!("{:.0}", e.score)}</b>
                                            {format!(" {} · {}{vs}", e.id, value_of(&e.candidate))}
                                        </button>
                                    </li>
                                }
                            }
                        />
                    </ul>
                </aside>
            </div>
        </div>
    }
}

#[component]
fn Result(
    e: Evaluation,
    only_regressions: RwSignal<bool>,
    on_fix: impl Fn(ReasonFix) + Copy + Send + Sync + 'static,
    on_save: impl Fn() + Copy + Send + Sync + 'static,
    saved: RwSignal<Option<String>>,
) -> impl IntoView {
    let c = e.candidate.clone();
    let delta = e.baseline.as_ref().map(|b| (b.clone(), c.overall.score - b.overall.score));
    let regressions = e.examples.iter().filter(|x| x.regression).count();
    let examples = StoredValue::new(e.examples.clone());
    let cand_name = name(&c.model);
    let base_name = e.baseline.as_ref().map(|b| name(&b.model));
    let base_rows = e.baseline.as_ref().map(metric_rows);
    let rows = metric_rows(&c);
    view! {
        <section class="card eval-score" id="eval-result">
            <div class="big-score">
                <span class="number" id="eval-score">{format!("{:.0}", c.overall.score)}</span>
                <span class="of">"/100"</span>
            </div>
            <div>
                <p class=gate_class(c.overall.gate) id="eval-gate">{c.overall.gate.label()}</p>
                <p>{format!("{} on {} held-out examples of {}", cand_name, e.examples.len(), e.dataset)}</p>
                {delta
                    .map(|(b, d)| {
                        view! {
                            <p id="eval-delta">
                                {format!(
                                    "{}: {:.0}/100 · {}{:.0} points",
                                    name(&b.model),
                                    b.overall.score,
                                    if d >= 0.0 { "+" } else { "−" },
                                    d.abs(),
                                )}
                            </p>
                        }
                    })}
                {e.pairwise
                    .map(|[w, l, t]| {
                        view! {
                            <p class="hint">
                                {format!(
                                    "The judge preferred the fine-tuned answer {w} times, the other {l} times; {t} ties or disagreements between the two orders."
                                )}
                            </p>
                        }
                    })}
                <p class="hint">
                    "Score = accuracy (token F1) × 0.4 + judge × 0.4 + length × 0.2; without a judge, accuracy and length share its weight."
                </p>
            </div>
            <div class="actions">
                <button id="eval-save-report" on:click=move |_| on_save()>"Save report"</button>
                <span class="hint" id="eval-saved">{move || saved.get().map(|p| format!("Saved to {p}")).unwrap_or_default()}</span>
            </div>
        </section>
        {e.judge_note.clone().map(|n| view! { <p class="warning">{n}</p> })}
        {(!e.reasons.is_empty())
            .then(|| {
                view! {
                    <section class="card" id="eval-reasons">
                        <h2>"Possible reasons"</h2>
                        <ol>
                            {e.reasons
                                .clone()
                                .into_iter()
                                .map(|r| {
                                    let fix = r.fix;
                                    let label = match fix {
                                        ReasonFix::DataReport => "Review data quality",
                                        ReasonFix::MoreData => "Add examples",
                                        ReasonFix::Settings => "Try different settings",
                                        ReasonFix::LargerModel => "Try a larger model",
                                    };
                                    view! {
                                        <li>
                                            {r.text}
                                            " "
                                            <button class="link" on:click=move |_| on_fix(fix)>{label}</button>
                                        </li>
                                    }
                                })
                                .collect_view()}
                        </ol>
                    </section>
                }
            })}
        <section class="card">
            <h2>"Scores"</h2>
            <table class="metrics" id="eval-metrics">
                <thead>
                    <tr>
                        <th>"Metric"</th>
                        {base_name.clone().map(|b| view! { <th>{b}</th> })}
                        <th>{cand_name.clone()}</th>
                        <th>"What it means"</th>
                    </tr>
                </thead>
                <tbody>
                    {rows
                        .into_iter()
                        .enumerate()
                        .map(|(i, (m, v, meaning))| {
                            let b = base_rows.as_ref().and_then(|r| r.get(i)).map(|r| r.1.clone());
                            view! {
                                <tr>
                                    <td>{m}</td>
                                    {b.map(|b| view! { <td>{b}</td> })}
                                    <td>{v}</td>
                                    <td class="hint">{meaning}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </section>
        <section class="card">
            <div class="rows-head">
                <h2>"Examples"</h2>
                <label class="check" class:hidden=base_name.is_none()>
                    <input
                        id="eval-regressions"
                        type="checkbox"
                        prop:checked=move || only_regressions.get()
                        on:change=move |ev| only_regressions.set(event_target_checked(&ev))
                    />
                    {format!("Only where it got worse ({regressions})")}
                </label>
            </div>
            <div class="examples" id="eval-examples">
                {move || {
                    let only = only_regressions.get();
                    let shown: Vec<_> = examples
                        .get_value()
                        .into_iter()
                        .filter(|x| !only || x.regression)
                        .collect();
                    if shown.is_empty() {
                        return view! { <p class="empty">"No example got worse."</p> }.into_any();
                    }
                    shown
                        .into_iter()
                        .map(|x| {
                            let judged = |j: &Option<api::eval::Judgement>| {
                                j.as_ref()
                                    .map(|j| format!(" · judge {:.1}/5", j.average()))
                                    .unwrap_or_default()
                            };
                            let pref = match x.preference {
                                Some(Preference::Candidate) => " · judge prefers this",
                                _ => "",
                            };
                            view! {
                                <article class="example" class:regression=x.regression>
                                    <p class="prompt"><b>{format!("#{} ", x.id)}</b>{x.prompt.clone()}</p>
                                    <div class="replies">
                                        <div>
                                            <h3>"Reference"</h3>
                                            <p>{x.reference.clone()}</p>
                                        </div>
                                        {x.baseline
                                            .clone()
                                            .map(|b| {
                                                let s = x.baseline_scores.unwrap_or_default();
                                                view! {
                                                    <div>
                                                        <h3>"Before"</h3>
                                                        <p>{b}</p>
                                                        <p class="hint">{format!("F1 {:.2} · ROUGE-L {:.2}{}", s.f1, s.rouge_l, judged(&x.baseline_judgement))}</p>
                                                    </div>
                                                }
                                            })}
                                        <div>
                                            <h3>"After"</h3>
                                            <p>{x.candidate.clone()}</p>
                                            <p class="hint">
                                                {format!(
                                                    "F1 {:.2} · ROUGE-L {:.2}{}{pref}",
                                                    x.candidate_scores.f1,
                                                    x.candidate_scores.rouge_l,
                                                    judged(&x.candidate_judgement),
                                                )}
                                            </p>
                                        </div>
                                    </div>
                                    {x.judge_error.clone().map(|e| view! { <p class="warning">{e}</p> })}
                                </article>
                            }
                        })
                        .collect_view()
                        .into_any()
                }}
            </div>
        </section>
    }
}
