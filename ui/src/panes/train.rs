//! Train: the settings of a run on the project's current dataset, checked in the form before
//! anything starts, and Start (a background job the Monitor follows).

use api::dataset::DatasetSummary;
use api::train::{
    DEFAULT_EVAL_ROWS, Estimate, Method, ProjectTrainRequest, Resume, TrainConfig, TrainPlan,
};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::state::{DraftCtx, JobsCtx, PaneCtx};
use crate::{Pane, ipc};

/// The form's fields as typed.
#[derive(Clone, Debug, PartialEq)]
struct Form {
    /// The settings the fields do not show (the plan's, else the defaults).
    base: TrainConfig,
    steps: String,
    epochs: String,
    eval_rows: String,
    batch: String,
    max_len: String,
    lr: String,
    lora_r: String,
    method: String,
}

impl Default for Form {
    fn default() -> Self {
        let d = TrainConfig::default();
        Form {
            base: d.clone(),
            steps: String::new(),
            epochs: d.epochs.to_string(),
            eval_rows: DEFAULT_EVAL_ROWS.to_string(),
            batch: d.batch_size.to_string(),
            max_len: d.max_len.to_string(),
            lr: d.adamw.lr.to_string(),
            lora_r: d.method.lora().map_or(8, |l| l.r).to_string(),
            method: "lora".into(),
        }
    }
}

/// A field's error: (field id, what is wrong).
type Problem = (&'static str, String);

impl Form {
    /// The form filled with a plan's request.
    fn of(req: &ProjectTrainRequest) -> Form {
        let c = &req.config;
        Form {
            base: c.clone(),
            steps: c.steps.map(|s| s.to_string()).unwrap_or_default(),
            epochs: c.epochs.to_string(),
            eval_rows: req.eval_rows.to_string(),
            batch: c.batch_size.to_string(),
            max_len: c.max_len.to_string(),
            lr: c.adamw.lr.to_string(),
            lora_r: c.method.lora().map_or(8, |l| l.r).to_string(),
            method: c.method.name().into(),
        }
    }
}

/// The form's field for each key of [`ProjectTrainRequest::problems`].
const FIELDS: [(&str, &str); 7] = [
    ("steps", "train-steps"),
    ("epochs", "train-epochs"),
    ("eval_rows", "train-eval-rows"),
    ("batch_size", "train-batch"),
    ("max_len", "train-max-len"),
    ("lora_r", "train-lora-r"),
    ("lr", "train-lr"),
];

/// The request the form describes, or what is wrong with it (every field checked). The form
/// only reads the text; the ranges are `api`'s, the same the CLI and `App` enforce.
fn request(form: &Form, project: &str) -> Result<ProjectTrainRequest, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut int = |id: &'static str, text: &str, what: &str| match text.trim().parse::<usize>() {
        Ok(v) => v,
        Err(_) => {
            problems.push((id, format!("{what}: a whole number")));
            0
        }
    };
    let steps = match form.steps.trim() {
        "" => None,
        s => Some(int("train-steps", s, "Steps")),
    };
    let epochs = int("train-epochs", &form.epochs, "Epochs");
    let eval_rows = int("train-eval-rows", &form.eval_rows, "Held-out rows");
    let batch_size = int("train-batch", &form.batch, "Batch size");
    let max_len = int("train-max-len", &form.max_len, "Longest example");
    let r = int("train-lora-r", &form.lora_r, "LoRA rank");
    let lr = form.lr.trim().parse::<f64>().unwrap_or(f64::NAN);
    let mut config = TrainConfig { steps, epochs, batch_size, max_len, ..form.base.clone() };
    config.adamw.lr = lr;
    let mut lora = config.method.lora().cloned().unwrap_or_default();
    if lora.r != r {
        lora.alpha = 2.0 * r as f64;
    }
    lora.r = r;
    config.method = match form.method.as_str() {
        "qlora" => Method::Qlora { lora, quant: api::train::Quant::Q4_1 },
        "full" => Method::Full,
        _ => Method::Lora(lora),
    };
    // Checkpoints often enough that Stop and a crash lose little.
    if config.checkpoint_every == 0 {
        config.checkpoint_every = 25;
    }
    let req = ProjectTrainRequest {
        project: project.to_string(),
        dataset: None,
        eval_rows,
        config,
        resume: Resume::No,
    };
    for (key, why) in req.problems() {
        let Some(&(_, id)) = FIELDS.iter().find(|(k, _)| *k == key) else { continue };
        if !problems.iter().any(|(f, _)| *f == id) {
            problems.push((id, why));
        }
    }
    match problems.is_empty() {
        true => Ok(req),
        false => Err(problems),
    }
}

/// The Train pane of project `slug`.
#[component]
pub fn Train(slug: String) -> impl IntoView {
    let datasets = RwSignal::new(None::<Vec<DatasetSummary>>);
    let form = RwSignal::new(Form::default());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let jobs = expect_context::<JobsCtx>();
    let pane = expect_context::<PaneCtx>();
    let plan = RwSignal::new(None::<TrainPlan>);
    let estimate = RwSignal::new(None::<Result<Estimate, String>>);
    let estimating = RwSignal::new(false);
    let warnings = RwSignal::new(Vec::<api::advisor::Warning>::new());
    // Where the run trains: this machine (empty) or a registered cluster's name.
    let clusters = RwSignal::new(Vec::<api::cluster::Cluster>::new());
    let target = RwSignal::new(String::new());
    spawn_local(async move {
        if let Ok(c) = ipc::cluster_list().await {
            clusters.set(c);
        }
    });
    // Settings handed over by the assistant or an alert's fix, for this project, once.
    let draft = expect_context::<DraftCtx>();
    let handed = draft
        .request
        .get_untracked()
        .filter(|d| d.project == slug)
        .inspect(|_| draft.request.set(None));
    let change = draft
        .change
        .get_untracked()
        .filter(|(p, _)| *p == slug)
        .inspect(|_| draft.change.set(None))
        .map(|(_, c)| c);
    let s = slug.clone();
    spawn_local(async move {
        match ipc::data_list(s.clone()).await {
            Ok(d) => datasets.set(Some(d)),
            Err(e) => error.set(Some(e.message)),
        }
        match ipc::train_plan(s).await {
            Ok(p) => {
                // The form starts from the settings handed over, else the recommendation
                // (with an alert's change for the next run).
                let mut req = handed.clone().unwrap_or_else(|| p.request.clone());
                if let Some(c) = change {
                    c.apply(&mut req.config);
                }
                form.set(Form::of(&req));
                plan.set(Some(p));
            }
            Err(e) => error.set(Some(e.message)),
        }
    });
    let checked = {
        let slug = slug.clone();
        Memo::new(move |_| request(&form.get(), &slug))
    };
    let problem = move |id: &'static str| {
        checked.with(|c| match c {
            Err(p) => p.iter().find(|(f, _)| *f == id).map(|(_, m)| m.clone()),
            Ok(_) => None,
        })
    };
    // What will likely go wrong with the settings as edited (memory, overfitting, truncation,
    // the learning rate), asked again whenever they change.
    // Answers can come back out of order: only the latest request's is shown.
    let asked = StoredValue::new(0u64);
    Effect::new(move |_| {
        let Ok(req) = checked.get() else { return warnings.set(Vec::new()) };
        asked.update_value(|n| *n += 1);
        let mine = asked.get_value();
        spawn_local(async move {
            let found = ipc::train_review(req).await.unwrap_or_default();
            if asked.get_value() == mine {
                warnings.set(found);
            }
        });
    });
    let apply = move |change: api::advisor::Change| {
        let Ok(mut req) = checked.get_untracked() else { return };
        change.apply(&mut req.config);
        form.set(Form::of(&req));
    };
    // On a cluster, this machine's memory and disk do not decide.
    let ready = move || {
        let remote = !target.with(String::is_empty);
        plan.with(|p| {
            p.as_ref().is_some_and(|p| {
                p.checks
                    .iter()
                    .all(|c| c.ok || (remote && matches!(c.id.as_str(), "memory" | "disk")))
            })
        })
    };
    let estimate_now = move || {
        let Ok(req) = checked.get_untracked() else { return };
        estimating.set(true);
        spawn_local(async move {
            estimate.set(Some(ipc::train_estimate(req).await.map_err(|e| e.message)));
            estimating.set(false);
        });
    };
    let start = move || {
        let Ok(request) = checked.get_untracked() else { return };
        let on = Some(target.get_untracked()).filter(|t| !t.is_empty());
        busy.set(true);
        spawn_local(async move {
            match ipc::train_start(api::train::TrainStart { request, on }).await {
                Ok(job) => {
                    error.set(None);
                    jobs.current.set(Some(job.id.clone()));
                    jobs.attach(job.id);
                    pane.0.set(Pane::Monitor);
                }
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };
    let field = move |id: &'static str,
                      label: &'static str,
                      help: &'static str,
                      get: fn(&Form) -> String,
                      set: fn(&mut Form, String)| {
        view! {
            <label class="field" for=id>
                <span class="label">{label}</span>
                <input
                    id=id
                    type="text"
                    prop:value=move || form.with(get)
                    on:input=move |ev| form.update(|f| set(f, event_target_value(&ev)))
                    aria-invalid=move || problem(id).is_some().to_string()
                />
                <span class="help">{help}</span>
                <span class="invalid" role="alert">{move || problem(id).unwrap_or_default()}</span>
            </label>
        }
    };
    view! {
        <div class="train" id="pane-train">
            <h1>"Train"</h1>
            {move || match datasets.get() {
                None => view! { <p class="hint">"Loading the project's datasets…"</p> }.into_any(),
                Some(d) if d.is_empty() => view! {
                    <div class="empty-state" id="train-empty">
                        <p>"This project has no dataset yet. Import one first, then come back to train on it."</p>
                    </div>
                }
                .into_any(),
                Some(d) => {
                    let current = d.iter().find(|x| x.current).or(d.last()).cloned();
                    view! {
                        <p class="hint" id="train-dataset">
                            {current.map(|c| format!("Trains on {} v{} ({} rows), its held-out split evaluated before and after.", c.name, c.version, c.rows))}
                        </p>
                    }
                    .into_any()
                }
            }}
            {move || plan.get().map(|p| view! {
                <section class="card plan" id="train-plan" aria-labelledby="plan-title">
                    <h2 id="plan-title">"Recommended settings"</h2>
                    <p class="hint">{format!("{} optimizer steps over {} training rows (about {:.0} tokens each). The form below starts from these.", p.total_steps, p.train_rows, p.mean_tokens)}</p>
                    <table class="grid-table reasons">
                        <tbody>
                            {p.reasons.iter().map(|r| view! {
                                <tr><th scope="row">{r.setting.clone()}</th><td class="value">{r.value.clone()}</td><td>{r.why.clone()}</td></tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                    <div class="actions">
                        <button id="train-use-plan" type="button" on:click={
                            let req = p.request.clone();
                            move |_| form.set(Form::of(&req))
                        }>"Use these settings again"</button>
                    </div>
                    <h3>"Pre-flight"</h3>
                    <ul class="checks" id="train-checks">
                        {p.checks.iter().map(|c| view! {
                            <li class:ok=c.ok class:fail=!c.ok data-check=c.id.clone()>
                                <span aria-hidden="true">{if c.ok { "✓" } else { "✗" }}</span>
                                <span class="sr-only">{if c.ok { "passed:" } else { "failed:" }}</span>
                                " "{c.message.clone()}
                            </li>
                        }).collect_view()}
                    </ul>
                    <div class="actions">
                        <button id="train-estimate" type="button" disabled=move || estimating.get() || checked.with(|c| c.is_err()) on:click=move |_| estimate_now()>
                            {move || if estimating.get() { "Measuring a few steps…" } else { "Estimate time and memory" }}
                        </button>
                    </div>
                    <p class="status" id="train-estimate-result" role="status">
                        {move || match estimate.get() {
                            None => String::new(),
                            Some(Err(e)) => e,
                            Some(Ok(e)) => format!(
                                "About {} in all ({} training at {:.0} tokens/s, {} evaluations, {} loading and saving); peak memory {:.0} MB of {:.1} GB; {:.3} kWh.",
                                crate::clock::about(e.seconds), crate::clock::about(e.train_seconds), e.tokens_per_second, crate::clock::about(e.eval_seconds),
                                crate::clock::about(e.overhead_seconds), e.peak_memory_bytes as f64 / 1e6, e.memory_bytes as f64 / 1e9, e.energy_kwh
                            ),
                        }}
                    </p>
                </section>
            })}
            <form
                class="card train-form"
                on:submit=move |ev| {
                    ev.prevent_default();
                    start();
                }
            >
                <div class="grid">
                    <label class="field" for="train-method">
                        <span class="label">"Method"</span>
                        <select
                            id="train-method"
                            prop:value=move || form.with(|f| f.method.clone())
                            on:change=move |ev| form.update(|f| f.method = event_target_value(&ev))
                        >
                            <option value="lora">"LoRA"</option>
                            <option value="qlora">"QLoRA"</option>
                            <option value="full">"Full fine-tuning"</option>
                        </select>
                        <span class="help">"LoRA trains small adapters beside the frozen model; QLoRA does the same over its 4-bit weights, in less memory; full fine-tuning trains every weight (most memory)."</span>
                    </label>
                    {field("train-steps", "Steps", "Optimizer steps; empty: one pass over the training split.", |f| f.steps.clone(), |f, v| f.steps = v)}
                    {field("train-epochs", "Epochs", "Passes over the training split (when Steps is empty).", |f| f.epochs.clone(), |f, v| f.epochs = v)}
                    {field("train-lr", "Learning rate", "How big each update is; 2e-4 suits LoRA on small models.", |f| f.lr.clone(), |f, v| f.lr = v)}
                    {field("train-batch", "Batch size", "Examples per step; more is smoother but needs more memory.", |f| f.batch.clone(), |f, v| f.batch = v)}
                    {field("train-max-len", "Longest example (tokens)", "Longer examples are cut; the report shows how many.", |f| f.max_len.clone(), |f, v| f.max_len = v)}
                    {field("train-lora-r", "LoRA rank", "Adapter size; 8–16 is plenty for most tasks (alpha is twice the rank).", |f| f.lora_r.clone(), |f, v| f.lora_r = v)}
                    {field("train-eval-rows", "Held-out rows evaluated", "Rows of the test split scored before and after; fewer is faster.", |f| f.eval_rows.clone(), |f, v| f.eval_rows = v)}
                </div>
                <ul class="warnings" id="train-warnings" aria-live="polite">
                    {move || warnings.get().into_iter().map(|w| {
                        let fix = w.fix;
                        view! {
                            <li class="warning" data-kind=w.kind.clone()>
                                {w.message}
                                {fix.map(|c| view! {
                                    " "<button type="button" class="link fix" on:click=move |_| apply(c)>{c.label()}</button>
                                })}
                            </li>
                        }
                    }).collect_view()}
                </ul>
                <label class="field" for="train-target" class:hidden=move || clusters.with(Vec::is_empty)>
                    <span class="label">"Where"</span>
                    <select id="train-target" on:change=move |ev| target.set(event_target_value(&ev))>
                        <option value="" selected>"This machine"</option>
                        {move || {
                            clusters
                                .get()
                                .into_iter()
                                .map(|c| {
                                    let what = match c.gpus {
                                        0 => "CPU".to_string(),
                                        1 => "1 GPU".to_string(),
                                        n => format!("{n} GPUs"),
                                    };
                                    let place = c.ssh.clone().unwrap_or_else(|| "this machine's Slurm".into());
                                    view! {
                                        <option value=c.name.clone()>
                                            {format!("{} ({}, {what})", c.name, place)}
                                        </option>
                                    }
                                })
                                .collect_view()
                        }}
                    </select>
                    <span class="help">
                        {move || match target.get().as_str() {
                            "" => view! { "Trains here. Clusters are registered with " <code>"vibeflow cluster add"</code> "." }.into_any(),
                            name => format!("Sent to {name}'s Slurm queue: the Monitor shows its queue state and steps, Stop cancels it at a checkpoint, and the run comes back here as a version.").into_any(),
                        }}
                    </span>
                </label>
                <div class="actions">
                    <button
                        id="train-start"
                        type="submit"
                        class="primary"
                        disabled=move || busy.get() || checked.with(|c| c.is_err()) || !ready()
                    >
                        {move || if target.with(String::is_empty) { "Start training" } else { "Send to cluster" }}
                    </button>
                </div>
            </form>
            <p class="error" role="alert" class:hidden=move || error.get().is_none()>
                {move || error.get().unwrap_or_default()}
            </p>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_is_checked_before_anything_starts() {
        let ok = request(&Form::default(), "p").unwrap();
        assert_eq!((ok.config.steps, ok.eval_rows), (None, DEFAULT_EVAL_ROWS));
        let bad = Form { lr: "0".into(), batch: "x".into(), ..Form::default() };
        let problems = request(&bad, "p").unwrap_err();
        let ids: Vec<_> = problems.iter().map(|p| p.0).collect();
        assert_eq!(ids, ["train-batch", "train-lr"]);
        assert_eq!(problems[0].1, "Batch size: a whole number");
        assert!(problems[1].1.starts_with("Learning rate: a number above 0"));
        let f = Form {
            steps: "3".into(),
            lora_r: "16".into(),
            method: "qlora".into(),
            ..Form::default()
        };
        let r = request(&f, "p").unwrap();
        assert_eq!(r.config.steps, Some(3));
        assert!(
            matches!(r.config.method, Method::Qlora { ref lora, .. } if lora.r == 16 && lora.alpha == 32.0)
        );
        // A plan's request survives the form untouched: every setting the form does not
        // show is kept.
        let mut plan = request(&Form::default(), "p").unwrap();
        plan.config.epochs = 3;
        plan.config.warmup_steps = 5;
        plan.config.eval_every = 36;
        plan.config.checkpoint_every = 18;
        plan.config.method = Method::Lora(api::train::LoraConfig {
            dropout: 0.05,
            alpha: 12.0,
            ..Default::default()
        });
        assert_eq!(request(&Form::of(&plan), "p").unwrap(), plan);
    }
}
