//! Monitor: the project's jobs and, for the one followed, its progress live — step, ETA,
//! charts of the losses (other runs overlaid), learning rate, gradient norm, speed and memory,
//! alerts, checkpoints and a searchable log — with Stop and Resume. A job of an earlier session
//! or of the CLI is drawn from its log.

use api::train::{JobEvent, JobInfo, JobState, ProjectTrainRequest};
use leptos::prelude::*;
use leptos::task::spawn_local;

use api::chart::{Series, YFormat};
use api::train::Progress;

use crate::chart::Chart;
use crate::ipc;
use crate::state::JobsCtx;

/// The Monitor pane of project `slug`.
#[component]
pub fn Monitor(slug: String) -> impl IntoView {
    let jobs = expect_context::<JobsCtx>();
    let (draft, pane) =
        (expect_context::<crate::state::DraftCtx>(), expect_context::<crate::state::PaneCtx>());
    let project = StoredValue::new(slug.clone());
    let next_run = move |c: api::advisor::Change| {
        draft.change.set(Some((project.get_value(), c)));
        pane.0.set(crate::Pane::Train);
    };
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
                        // A finished job (or one another process runs) is read from its log, with
                        // the earlier jobs of its run (a resumed run is drawn whole).
                        if let Some(c) = jobs.current.get_untracked() {
                            let run = mine.iter().find(|j| j.id == c).and_then(|j| j.run.clone());
                            for j in mine.iter().filter(|j| j.run == run && j.id != c) {
                                jobs.attach(j.id.clone());
                            }
                            jobs.attach(c);
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
                match ipc::train_start(api::train::TrainStart { request: req, on: None }).await {
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
    // The checkpoints the run keeps on disk (older ones are pruned, Stop adds one), read
    // again when the job saves one or ends.
    let checkpoints = RwSignal::new(Vec::<api::train::Checkpoint>::new());
    let marks = Memo::new(move |_| {
        let id = jobs.current.get();
        jobs.events.with(|m| {
            id.and_then(|id| m.get(&id)).map_or(0, |evs| {
                evs.iter()
                    .filter(|e| match e {
                        JobEvent::Progress { progress, .. } => progress.checkpoint.is_some(),
                        JobEvent::Ended { .. } => true,
                        _ => false,
                    })
                    .count()
            })
        })
    });
    Effect::new({
        let slug = slug.clone();
        move |_| {
            let _ = marks.get();
            let Some(run) = current_job().and_then(|j| j.run) else {
                checkpoints.set(Vec::new());
                return;
            };
            let slug = slug.clone();
            spawn_local(async move {
                if let Ok(c) = ipc::run_checkpoints(slug, run).await {
                    checkpoints.set(c);
                }
            });
        }
    });
    let others = RwSignal::new(Vec::<String>::new());
    // The charts are made once a job has steps; their series follow these.
    let has_steps = Memo::new(move |_| progress().is_some());
    // A resumed run is one curve: the steps of its earlier jobs (up to where this job took
    // over from their checkpoint) come first.
    let steps = Memo::new(move |_| {
        let own = steps_of(&events());
        let Some(cur) = current_job() else { return own };
        let mut earlier: Vec<JobInfo> = list.with(|l| {
            l.iter()
                .filter(|j| j.run == cur.run && j.started_at < cur.started_at)
                .cloned()
                .collect()
        });
        earlier.sort_by_key(|j| j.started_at);
        let mut all = Vec::new();
        jobs.events.with(|m| {
            for j in &earlier {
                let first = all.last().map_or(0, |p: &Progress| p.step);
                all.extend(
                    m.get(&j.id)
                        .map(|e| steps_of(e))
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|p| p.step > first),
                );
            }
        });
        let from = own.first().map_or(usize::MAX, |p| p.step);
        all.retain(|p| p.step < from);
        all.extend(own);
        all
    });
    let overlays = Memo::new(move |_| {
        let chosen = others.get();
        let names = list.get();
        jobs.events.with(|m| {
            chosen
                .iter()
                .filter_map(|id| {
                    let j = names.iter().find(|j| &j.id == id)?;
                    let run = j.run.clone().unwrap_or_default();
                    let label = format!("{run} ({})", crate::clock::time(j.started_at));
                    Some((label, steps_of(m.get(id)?)))
                })
                .collect::<Vec<_>>()
        })
    });
    let search = RwSignal::new(String::new());
    let saved = RwSignal::new(None::<String>);
    let save_log = move || {
        let Some(id) = jobs.current.get_untracked() else { return };
        spawn_local(async move {
            match ipc::job_log_save(id).await {
                Ok(path) => saved.set(Some(format!("Log saved to {path}"))),
                Err(e) => saved.set(Some(e.message)),
            }
        });
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
                                let (id, run) = (j.id.clone(), j.run.clone());
                                let selected = {
                                    let id = id.clone();
                                    move || jobs.current.get().as_ref() == Some(&id)
                                };
                                view! {
                                    <li class:selected=selected>
                                        <button
                                            class="job"
                                            on:click=move |_| {
                                                // With its run's earlier jobs: one curve.
                                                for o in list.get_untracked().into_iter().filter(|o| o.run == run) {
                                                    jobs.attach(o.id);
                                                }
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
                            <p class="hint" id="monitor-earlier">"This job left no steps to draw (it ended before its first step)."</p>
                        }
                        .into_any(),
                        None => view! { <p class="hint">"Waiting for the first step…"</p> }.into_any(),
                        Some(p) => {
                            let pct = 100.0 * p.step as f64 / p.total_steps.max(1) as f64;
                            view! {
                                <div class="bar" role="progressbar" aria-label="Training progress" aria-valuenow=format!("{pct:.0}") aria-valuemin="0" aria-valuemax="100">
                                    <div style=format!("width: {pct:.1}%")></div>
                                </div>
                                <dl class="facts">
                                    <dt>"Step"</dt>
                                    <dd id="monitor-step">{format!("{} / {} ({pct:.0} %), epoch {:.2}", p.step, p.total_steps, p.epoch)}</dd>
                                    <dt>"Training loss"</dt>
                                    <dd>{format!("{:.4} — lower is better", p.loss)}</dd>
                                    <dt>"Held-out loss"</dt>
                                    <dd>{p.eval_loss.map_or("not evaluated at this step".into(), |e| format!("{e:.4}"))}</dd>
                                    <dt>"Speed"</dt>
                                    <dd>{format!("{:.0} tokens/s", p.tokens_per_second)}</dd>
                                    <dt>"Memory"</dt>
                                    <dd>{format!("{:.0} MB", p.memory_bytes as f64 / 1e6)}</dd>
                                    <dt>"Elapsed / left"</dt>
                                    <dd>{format!("{} / {}", duration(p.elapsed_seconds), duration(p.eta_seconds))}</dd>
                                </dl>
                            }
                            .into_any()
                        }
                    }}
                </div>
                <div class="alerts" id="monitor-alerts">
                    {move || {
                        events()
                            .into_iter()
                            .filter_map(|e| match e {
                                JobEvent::Alert { kind, message, fix, .. } => Some(view! {
                                    <p class="alert" role="alert" data-kind=kind>
                                        {message}
                                        {fix.map(|c| view! {
                                            " "<button type="button" class="link fix" on:click=move |_| next_run(c)>
                                                {format!("{} in the next run", c.label())}
                                            </button>
                                        })}
                                    </p>
                                }),
                                _ => None,
                            })
                            .collect_view()
                    }}
                </div>
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
                {move || {
                    events()
                        .into_iter()
                        .rev()
                        .find_map(|e| match e {
                            JobEvent::Scheduler { cluster, job_id, state, .. } => Some(view! {
                                <p class="status" id="monitor-cluster">
                                    {format!("On cluster {cluster}, Slurm job {job_id}: {}", state.to_lowercase())}
                                </p>
                            }),
                            _ => None,
                        })
                }}
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
            </section>
            {move || has_steps.get().then(|| charts(steps, overlays))}
            {move || {
                // Other jobs of the project, to draw beside this one.
                let current = jobs.current.get();
                let rest: Vec<JobInfo> =
                    list.get().into_iter().filter(|j| Some(&j.id) != current.as_ref()).collect();
                (!rest.is_empty() && progress().is_some()).then(|| view! {
                    <fieldset class="overlay" id="monitor-overlay">
                        <legend>"Compare with earlier runs on the loss chart"</legend>
                        {rest
                            .into_iter()
                            .map(|j| {
                                let id = j.id.clone();
                                let checked = {
                                    let id = id.clone();
                                    move || others.with(|o| o.contains(&id))
                                };
                                let label = format!(
                                    "{} ({}, {})",
                                    j.run.clone().unwrap_or_default(),
                                    crate::clock::time(j.started_at),
                                    j.state.name()
                                );
                                view! {
                                    <label>
                                        <input
                                            type="checkbox"
                                            prop:checked=checked
                                            on:change=move |ev| {
                                                let on = event_target_checked(&ev);
                                                if on {
                                                    jobs.attach(id.clone());
                                                }
                                                others.update(|o| {
                                                    o.retain(|x| x != &id);
                                                    if on {
                                                        o.push(id.clone());
                                                    }
                                                });
                                            }
                                        />
                                        {label}
                                    </label>
                                }
                            })
                            .collect_view()}
                    </fieldset>
                })
            }}
            <section class="card">
                <h2>"Checkpoints"</h2>
                {move || {
                    if checkpoints.with(Vec::is_empty) {
                        return view! {
                            <p class="hint" id="monitor-no-checkpoints">"None yet: a checkpoint is saved every few steps and when you press Stop; Resume starts from the newest."</p>
                        }
                        .into_any();
                    }
                    view! {
                        <table class="grid-table" id="monitor-checkpoints">
                            <thead><tr><th scope="col">"Step"</th><th scope="col">"Saved"</th><th scope="col">"Folder"</th></tr></thead>
                            <tbody>
                                {checkpoints
                                    .get()
                                    .into_iter()
                                    .map(|c| view! { <tr><td>{c.step}</td><td>{crate::clock::time(c.saved_at)}</td><td class="path">{c.path}</td></tr> })
                                    .collect_view()}
                            </tbody>
                        </table>
                    }
                    .into_any()
                }}
            </section>
            <section class="card">
                <h2>"Log"</h2>
                <div class="row">
                    <input
                        id="monitor-log-search"
                        type="search"
                        placeholder="Filter the log"
                        aria-label="Filter the log"
                        prop:value=move || search.get()
                        on:input=move |ev| search.set(event_target_value(&ev))
                    />
                    <button
                        id="monitor-log-save"
                        disabled=move || jobs.current.get().is_none()
                        on:click=move |_| save_log()
                    >
                        "Save log…"
                    </button>
                </div>
                <p class="status" id="monitor-log-saved">{move || saved.get()}</p>
                <ul class="log" id="monitor-log">
                    {move || {
                        let needle = search.get().to_lowercase();
                        events()
                            .iter()
                            .filter_map(JobEvent::log_line)
                            .filter(|(_, line)| needle.is_empty() || line.to_lowercase().contains(&needle))
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

/// `95 s`, `12 min 5 s`, `1 h 3 min`.
fn duration(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// The steps' figures among `events`.
fn steps_of(events: &[JobEvent]) -> Vec<Progress> {
    events
        .iter()
        .filter_map(|e| match e {
            JobEvent::Progress { progress, .. } => Some(progress.clone()),
            _ => None,
        })
        .collect()
}

/// The dashboard's charts: losses (with `overlays`, other jobs' training losses), learning
/// rate, gradient norm, speed and memory, by step. Made once; they redraw as `steps` grows.
fn charts(
    steps: Memo<Vec<Progress>>,
    overlays: Memo<Vec<(String, Vec<Progress>)>>,
) -> impl IntoView {
    let line = move |label: &'static str, slot: u8, f: fn(&Progress) -> Option<f64>| {
        Signal::derive(move || {
            let points =
                steps.with(|ps| ps.iter().filter_map(|p| Some((p.step as f64, f(p)?))).collect());
            vec![Series { label: label.into(), slot, points, dots: false }]
        })
    };
    let losses = Signal::derive(move || {
        let points = |f: fn(&Progress) -> Option<f64>| -> Vec<(f64, f64)> {
            steps.with(|ps| ps.iter().filter_map(|p| Some((p.step as f64, f(p)?))).collect())
        };
        let mut all = vec![Series {
            label: "training loss".into(),
            slot: 0,
            points: points(|p| Some(p.loss)),
            dots: false,
        }];
        let eval = points(|p| p.eval_loss);
        if !eval.is_empty() {
            all.push(Series { label: "held-out loss".into(), slot: 1, points: eval, dots: true });
        }
        for (label, ps) in overlays.get() {
            let points = ps.iter().map(|p| (p.step as f64, p.loss)).collect();
            all.push(Series {
                label: format!("training loss of {label}"),
                slot: 3,
                points,
                dots: false,
            });
        }
        all
    });
    let small = (420, 180);
    view! {
        <section class="charts" id="monitor-charts">
            <Chart id="monitor-chart" title="Loss by step" series=losses x_label="step" />
            <div class="small-charts">
                <Chart id="monitor-lr" title="Learning rate" series=line("learning rate", 2, |p| Some(p.lr)) x_label="step" y_format=YFormat::Scientific size=small />
                <Chart id="monitor-grad" title="Gradient norm" series=line("gradient norm", 0, |p| Some(p.grad_norm)) x_label="step" size=small />
                <Chart id="monitor-speed" title="Speed (tokens/s)" series=line("tokens per second", 0, |p| Some(p.tokens_per_second)) x_label="step" y_format=YFormat::Whole size=small />
                <Chart id="monitor-memory" title="Memory (MB)" series=line("memory in use", 2, |p| Some(p.memory_bytes as f64 / 1e6)) x_label="step" y_format=YFormat::Whole size=small />
            </div>
        </section>
    }
}
