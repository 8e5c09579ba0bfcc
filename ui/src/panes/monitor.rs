//! Monitor: the project's jobs and, for the one followed, its progress live — step, losses, a
//! loss chart, speed, memory, ETA, alerts and the log — with Stop and Resume.

use api::train::{JobEvent, JobInfo, JobState, ProjectTrainRequest};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::ipc;
use crate::state::JobsCtx;

/// The Monitor pane of project `slug`.
#[component]
pub fn Monitor(slug: String) -> impl IntoView {
    let jobs = expect_context::<JobsCtx>();
    let list = RwSignal::new(Vec::<JobInfo>::new());
    let error = RwSignal::new(None::<String>);
    let refresh = {
        let slug = slug.clone();
        move || {
            let slug = slug.clone();
            spawn_local(async move {
                match ipc::job_list().await {
                    Ok(all) => {
                        let mine: Vec<JobInfo> =
                            all.into_iter().filter(|j| j.project == slug).collect();
                        // Follow the newest running job when none is chosen; attach to every
                        // running one (this window's process runs it, or it says no).
                        for j in mine.iter().filter(|j| j.state == JobState::Running) {
                            jobs.attach(j.id.clone());
                        }
                        let current = jobs.current.get_untracked();
                        if current.as_ref().is_none_or(|c| !mine.iter().any(|j| &j.id == c))
                            && let Some(j) = mine.first()
                        {
                            jobs.current.set(Some(j.id.clone()));
                        }
                        list.set(mine);
                    }
                    Err(e) => error.set(Some(e.message)),
                }
            });
        }
    };
    refresh();
    // The list's states follow the events that end jobs.
    let ended = Memo::new(move |_| {
        jobs.events
            .with(|m| m.values().flatten().filter(|e| matches!(e, JobEvent::Ended { .. })).count())
    });
    Effect::new({
        let refresh = refresh.clone();
        move |prev: Option<usize>| {
            let n = ended.get();
            if prev.is_some_and(|p| p != n) {
                refresh();
            }
            n
        }
    });
    let events = move || {
        let id = jobs.current.get();
        jobs.events.with(|m| id.and_then(|id| m.get(&id).cloned()).unwrap_or_default())
    };
    let progress = move || {
        events().into_iter().rev().find_map(|e| match e {
            JobEvent::Progress { progress, .. } => Some(progress),
            _ => None,
        })
    };
    let current_job = move || {
        let id = jobs.current.get();
        list.with(|l| l.iter().find(|j| Some(&j.id) == id.as_ref()).cloned())
    };
    let stop = move || {
        if let Some(id) = jobs.current.get_untracked() {
            spawn_local(async move {
                let _ = ipc::job_stop(id).await;
            });
        }
    };
    let refresh_later = refresh.clone();
    let resume = {
        let slug = slug.clone();
        move || {
            let Some(run) = current_job().and_then(|j| j.run) else { return };
            // A resumed run keeps the settings (and held-out rows) it started with.
            let req = ProjectTrainRequest::resume(&slug, &run);
            let refresh = refresh_later.clone();
            spawn_local(async move {
                match ipc::train_start(req).await {
                    Ok(job) => {
                        error.set(None);
                        jobs.attach(job.id.clone());
                        jobs.current.set(Some(job.id));
                        refresh();
                    }
                    Err(e) => error.set(Some(e.message)),
                }
            });
        }
    };
    view! {
        <div class="monitor" id="pane-monitor">
            <h1>"Monitor"</h1>
            {move || {
                if list.with(|l| l.is_empty()) {
                    return view! {
                        <p class="hint" id="monitor-empty">"No training yet: start one from the Train pane."</p>
                    }
                    .into_any();
                }
                view! {
                    <ul class="jobs" id="monitor-jobs">
                        // Keyed (with the state, which changes a chip): a resume prepends a job.
                        <For
                            each=move || list.get()
                            key=|j| (j.id.clone(), j.state)
                            children=move |j: JobInfo| {
                                let id = j.id.clone();
                                let selected = {
                                    let id = id.clone();
                                    move || jobs.current.get().as_ref() == Some(&id)
                                };
                                view! {
                                    <li class:selected=selected>
                                        <button
                                            class="job"
                                            on:click=move |_| {
                                                jobs.attach(id.clone());
                                                jobs.current.set(Some(id.clone()));
                                            }
                                        >
                                            <span class="run">{j.run.clone().unwrap_or_default()}</span>
                                            // A resume is a new job of the same run: the time tells them apart.
                                            <span class="when">{crate::clock::time(j.started_at)}</span>
                                            <span class=format!("state {}", j.state.name())>
                                                {j.state.name()}
                                            </span>
                                        </button>
                                    </li>
                                }
                            }
                        />
                    </ul>
                }
                .into_any()
            }}
            <section class="card live" aria-live="polite">
                <div class="figures" id="monitor-figures">
                    {move || match progress() {
                        None if current_job().is_some_and(|j| j.state != JobState::Running) => view! {
                            <p class="hint" id="monitor-earlier">"This job ran in an earlier session of the app, so there is no live data to draw; its record is in History, and Resume (when offered) goes on from its last checkpoint."</p>
                        }
                        .into_any(),
                        None => view! { <p class="hint">"Waiting for the first step…"</p> }.into_any(),
                        Some(p) => {
                            let pct = 100.0 * p.step as f64 / p.total_steps.max(1) as f64;
                            view! {
                                <div class="bar" role="progressbar" aria-valuenow=format!("{pct:.0}") aria-valuemin="0" aria-valuemax="100">
                                    <div style=format!("width: {pct:.1}%")></div>
                                </div>
                                <dl class="facts">
                                    <dt>"Step"</dt>
                                    <dd id="monitor-step">{format!("{} / {} ({pct:.0} %)", p.step, p.total_steps)}</dd>
                                    <dt>"Training loss"</dt>
                                    <dd>{format!("{:.4} — lower is better", p.loss)}</dd>
                                    <dt>"Held-out loss"</dt>
                                    <dd>{p.eval_loss.map_or("not evaluated at this step".into(), |e| format!("{e:.4}"))}</dd>
                                    <dt>"Speed"</dt>
                                    <dd>{format!("{:.0} tokens/s", p.tokens_per_second)}</dd>
                                    <dt>"Memory"</dt>
                                    <dd>{format!("{:.0} MB", p.memory_bytes as f64 / 1e6)}</dd>
                                    <dt>"Elapsed / left"</dt>
                                    <dd>{format!("{:.0} s / {:.0} s", p.elapsed_seconds, p.eta_seconds)}</dd>
                                </dl>
                            }
                            .into_any()
                        }
                    }}
                </div>
                {move || (progress().is_some()).then(|| chart(&events()))}
                <div class="actions">
                    <button
                        id="monitor-stop"
                        disabled=move || current_job().is_none_or(|j| j.state != JobState::Running)
                        on:click=move |_| stop()
                    >
                        "Stop (keeps a checkpoint)"
                    </button>
                    <button
                        id="monitor-resume"
                        class="primary"
                        disabled=move || {
                            current_job().is_none_or(|j| !matches!(j.state, JobState::Stopped | JobState::Interrupted))
                        }
                        on:click=move |_| resume()
                    >
                        "Resume"
                    </button>
                </div>
                <p class="status" id="monitor-state">
                    {move || current_job().map(|j| {
                        let what = match j.state {
                            JobState::Running => "Training…".to_string(),
                            JobState::Done => "Done: the run is a new version in History.".into(),
                            JobState::Stopped => "Stopped at a checkpoint: Resume continues it.".into(),
                            JobState::Interrupted => "Interrupted (the app closed while it trained): Resume continues from its last checkpoint.".into(),
                            JobState::Failed => format!("Failed: {}", j.message.unwrap_or_default()),
                        };
                        format!("{} — {what}", j.run.unwrap_or_default())
                    })}
                </p>
                <ul class="log" id="monitor-log">
                    {move || {
                        events()
                            .into_iter()
                            .filter_map(|e| match e {
                                JobEvent::Log { line, .. } => Some(("log", line)),
                                JobEvent::Alert { message, .. } => Some(("alert", message)),
                                _ => None,
                            })
                            .map(|(kind, line)| view! { <li class=kind>{line}</li> })
                            .collect_view()
                    }}
                </ul>
            </section>
            <p class="error" role="alert" class:hidden=move || error.get().is_none()>
                {move || error.get().unwrap_or_default()}
            </p>
        </div>
    }
}

/// The training loss (and held-out loss) by step, as an SVG line chart.
fn chart(events: &[JobEvent]) -> impl IntoView + use<> {
    let points: Vec<(f64, f64, Option<f64>)> = events
        .iter()
        .filter_map(|e| match e {
            JobEvent::Progress { progress: p, .. } if p.loss.is_finite() => {
                Some((p.step as f64, p.loss, p.eval_loss))
            }
            _ => None,
        })
        .collect();
    let (w, h, pad) = (640.0, 200.0, 36.0);
    let max_x = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let (lo, hi) = points
        .iter()
        .flat_map(|p| std::iter::once(p.1).chain(p.2))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    let (lo, hi) = if lo.is_finite() { (lo, hi.max(lo + 1e-6)) } else { (0.0, 1.0) };
    let x = move |s: f64| pad + (w - 2.0 * pad) * s / max_x;
    let y = move |v: f64| h - pad - (h - 2.0 * pad) * (v - lo) / (hi - lo);
    let line: String =
        points.iter().map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1))).collect::<Vec<_>>().join(" ");
    let evals: Vec<(f64, f64)> =
        points.iter().filter_map(|p| p.2.map(|e| (x(p.0), y(e)))).collect();
    let count = points.len();
    view! {
        <figure class="chart" id="monitor-chart" data-points=count.to_string()>
            <svg viewBox=format!("0 0 {w} {h}") role="img" aria-label="Training loss by step">
                <line class="axis" x1=pad y1=h - pad x2=w - pad y2=h - pad />
                <line class="axis" x1=pad y1=pad x2=pad y2=h - pad />
                <text class="tick" x=pad - 4.0 y=pad + 4.0 text-anchor="end">{format!("{hi:.2}")}</text>
                <text class="tick" x=pad - 4.0 y=h - pad text-anchor="end">{format!("{lo:.2}")}</text>
                <text class="tick" x=w - pad y=h - pad + 16.0 text-anchor="end">{format!("step {max_x:.0}")}</text>
                <polyline class="loss" points=line fill="none" />
                {evals
                    .into_iter()
                    .map(|(cx, cy)| view! { <circle class="eval" cx=cx cy=cy r="4" /> })
                    .collect_view()}
            </svg>
            <figcaption>
                <span class="key loss">"training loss"</span>
                <span class="key eval">"held-out loss"</span>
            </figcaption>
        </figure>
    }
}
