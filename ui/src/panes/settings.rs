//! Settings: the home's health check (`vibeflow doctor`), run when asked (it hashes every
//! content object, which takes a while on a big home).

use api::DoctorReport;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::ipc;

/// Settings: for now the home's health check (`vibeflow doctor`); keys, theme and hardware
/// come with the IDE's settings.
#[component]
pub fn Settings() -> impl IntoView {
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

/// "1 project", "2 projects".
fn count(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}
