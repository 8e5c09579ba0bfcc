//! History: the project's versions as a timeline (tags and key numbers), the diff between any
//! two, and rollback — a new version that restores an earlier one (nothing is rewritten).

use api::{CommitInfo, VersionDiff};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::ipc;

/// What a commit did, from its subject (the library writes them; see `app`).
fn kind(summary: &str) -> &'static str {
    let first = summary.split_whitespace().next().unwrap_or_default();
    match first {
        "Create" => "created",
        "Train" => "run",
        "Roll" => "rollback",
        "Evaluate" => "evaluation",
        "Preferences" => "dataset",
        "Import" | "Fix" | "Split" => "dataset",
        _ => "change",
    }
}

/// `v2`, or the short id when a version has no tag.
fn label(c: &CommitInfo) -> String {
    c.tags.first().cloned().unwrap_or_else(|| c.id[..c.id.len().min(8)].to_string())
}

/// The History pane of project `slug`.
#[component]
pub fn History(slug: String) -> impl IntoView {
    let commits = RwSignal::new(None::<Vec<CommitInfo>>);
    let model_run = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<String>);
    let status = RwSignal::new(None::<String>);
    let confirm = RwSignal::new(None::<CommitInfo>);
    let busy = RwSignal::new(false);
    let from = RwSignal::new(String::new());
    let to = RwSignal::new(String::new());
    let diff = RwSignal::new(None::<VersionDiff>);
    let load = {
        let slug = slug.clone();
        move || {
            let slug = slug.clone();
            spawn_local(async move {
                match ipc::project_history(slug.clone()).await {
                    Ok(c) => {
                        // Compare the newest version with the one before, unless chosen.
                        if to.get_untracked().is_empty() || from.get_untracked().is_empty() {
                            to.set(c.first().map(|c| c.id.clone()).unwrap_or_default());
                            from.set(c.get(1).map(|c| c.id.clone()).unwrap_or_default());
                        }
                        commits.set(Some(c));
                    }
                    Err(e) => error.set(Some(e.message)),
                }
                match ipc::project_show(slug).await {
                    Ok(d) => model_run.set(d.model_run),
                    Err(e) => error.set(Some(e.message)),
                }
            });
        }
    };
    load();
    let compare = {
        let slug = slug.clone();
        move || {
            let (slug, a, b) = (slug.clone(), from.get_untracked(), to.get_untracked());
            spawn_local(async move {
                match ipc::project_diff(slug, a, Some(b)).await {
                    Ok(d) => {
                        diff.set(Some(d));
                        error.set(None);
                    }
                    Err(e) => error.set(Some(e.message)),
                }
            });
        }
    };
    let rollback = {
        let (slug, load) = (slug.clone(), load.clone());
        move |c: CommitInfo| {
            let (slug, load) = (slug.clone(), load.clone());
            busy.set(true);
            spawn_local(async move {
                match ipc::project_rollback(slug, c.id.clone()).await {
                    Ok(r) => {
                        status.set(Some(format!(
                            "Rolled back to {} in a new version: {}.",
                            label(&c),
                            r.restored.join(", ")
                        )));
                        error.set(None);
                        // The new version is the newest: compare it with the one before.
                        from.set(String::new());
                        load();
                    }
                    Err(e) => error.set(Some(e.message)),
                }
                confirm.set(None);
                busy.set(false);
            });
        }
    };
    let options = move |selected: RwSignal<String>| {
        commits
            .get()
            .unwrap_or_default()
            .into_iter()
            .map(|c| {
                let id = c.id.clone();
                let text = format!("{} — {}", label(&c), c.summary);
                view! {
                    <option value=id.clone() selected=move || selected.get() == id>
                        {text}
                    </option>
                }
            })
            .collect_view()
    };
    view! {
        <div class="history" id="pane-history">
            <h1>"History"</h1>
            <p class="hint" id="history-model">
                {move || match model_run.get() {
                    Some(run) => format!("The project's model is {run}. Every version below can be compared or restored; restoring adds a version, it never deletes one."),
                    None => "No finished run yet: the project's model is its base model. Every finished run becomes a version v1, v2 …".into(),
                }}
            </p>
            <p class="status" id="history-status" role="status" aria-live="polite">
                {move || status.get().unwrap_or_default()}
            </p>
            <p class="error" role="alert" class:hidden=move || error.get().is_none()>
                {move || error.get().unwrap_or_default()}
            </p>
            <div class="history-grid">
                <ol class="timeline" id="history-list" aria-label="Versions, newest first">
                    // Keyed by commit: a rollback prepends a version, and each row must stay
                    // the version it shows (an unkeyed rebuild reuses rows by position).
                    <For
                        each=move || commits.get().unwrap_or_default()
                        key=|c| c.id.clone()
                        children=move |c: CommitInfo| {
                            let is_head = {
                                let id = c.id.clone();
                                move || commits.with(|l| l.as_ref().and_then(|l| l.first()).is_some_and(|h| h.id == id))
                            };
                            let is_head2 = is_head.clone();
                            let tag = c.tags.first().cloned().unwrap_or_default();
                            let when = crate::clock::date_time(c.time);
                            let this = c.clone();
                            let rollback = rollback.clone();
                            let asking = {
                                let id = c.id.clone();
                                move || confirm.with(|x| x.as_ref().is_some_and(|x| x.id == id))
                            };
                            let asking2 = asking.clone();
                            view! {
                                <li class=format!("version {}", kind(&c.summary)) data-tag=tag>
                                    <div class="line">
                                        <span class="dot" aria-hidden="true"></span>
                                        {c.tags.iter().map(|t| view! { <span class="tag">{t.clone()}</span> }).collect_view()}
                                        <span class="summary">{c.summary.clone()}</span>
                                    </div>
                                    <div class="meta">
                                        <code>{c.id[..c.id.len().min(10)].to_string()}</code>
                                        <span>{when}</span>
                                        <span class="badge" class:hidden=move || !is_head()>"current"</span>
                                        <button
                                            class="rollback"
                                            class:hidden=is_head2
                                            aria-label=format!("Roll back to {}", label(&c))
                                            on:click=move |_| confirm.set(Some(this.clone()))
                                        >
                                            "Roll back to this"
                                        </button>
                                    </div>
                                    <div class="confirm" class:hidden=move || !asking()>
                                        <p>
                                            {format!("Restore the datasets and the model of {} as a new version? Later versions stay in the history.", label(&c))}
                                        </p>
                                        <button
                                            class="primary rollback-confirm"
                                            disabled=move || busy.get()
                                            on:click={
                                                let c = c.clone();
                                                move |_| if asking2() { rollback(c.clone()) }
                                            }
                                        >
                                            "Roll back"
                                        </button>
                                        <button on:click=move |_| confirm.set(None)>"Cancel"</button>
                                    </div>
                                </li>
                            }
                        }
                    />
                </ol>
                <section class="card compare" aria-labelledby="compare-title">
                    <h2 id="compare-title">"Compare two versions"</h2>
                    <form
                        class="compare-form"
                        on:submit={
                            let compare = compare.clone();
                            move |ev| {
                                ev.prevent_default();
                                compare();
                            }
                        }
                    >
                        <label class="field" for="diff-from">
                            <span class="label">"From"</span>
                            <select id="diff-from" on:change=move |ev| from.set(event_target_value(&ev))>
                                {move || options(from)}
                            </select>
                        </label>
                        <label class="field" for="diff-to">
                            <span class="label">"To"</span>
                            <select id="diff-to" on:change=move |ev| to.set(event_target_value(&ev))>
                                {move || options(to)}
                            </select>
                        </label>
                        <button id="diff-run" type="submit">"Compare"</button>
                    </form>
                    <div id="diff-files">
                        {move || diff.get().map(|d| {
                            if d.files.is_empty() {
                                return view! { <p class="hint">"No change to the configuration, the datasets or the runs between these two."</p> }.into_any();
                            }
                            d.files.into_iter().map(|f| view! {
                                <details class="file-diff" open=true>
                                    <summary><code>{f.path.clone()}</code>" "<span class="badge">{f.status.clone()}</span></summary>
                                    <pre class="patch">{f.patch.lines().map(|l| {
                                        let class = match l.chars().next() {
                                            Some('+') => "add",
                                            Some('-') => "del",
                                            Some('@') => "hunk",
                                            _ => "ctx",
                                        };
                                        view! { <span class=class>{format!("{l}\n")}</span> }
                                    }).collect_view()}</pre>
                                </details>
                            }).collect_view().into_any()
                        })}
                    </div>
                </section>
            </div>
        </div>
    }
}
