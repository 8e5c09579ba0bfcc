//! Data: bring a dataset (a path typed or pasted, a file dropped on the window, or a sample),
//! see the detected mapping and confirm it by hand when detection is unsure, then the quality
//! report with one-click fixes, the token-length histogram, the rows with their scores, the
//! split and the versions.

use api::dataset::{
    ColumnMapping, DatasetDetail, DatasetSummary, ImportProgress, ImportRequest, ImportSource,
    Inspection, RowPreview, SampleDataset,
};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::chart::Chart;
use crate::ipc;
use crate::state::DropCtx;

/// The Data pane of project `slug`.
#[component]
pub fn Data(slug: String) -> impl IntoView {
    let samples = RwSignal::new(Vec::<SampleDataset>::new());
    let versions = RwSignal::new(Vec::<DatasetSummary>::new());
    let report = RwSignal::new(None::<DatasetDetail>);
    let path = RwSignal::new(String::new());
    let inspection = RwSignal::new(None::<(ImportSource, Inspection)>);
    let mapping = RwSignal::new(None::<ColumnMapping>);
    let error = RwSignal::new(None::<String>);
    let status = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    // Rows read by the import under way, and its seconds (None when none runs).
    let importing = RwSignal::new(None::<ImportProgress>);
    let refresh = {
        let slug = slug.clone();
        move || {
            let slug = slug.clone();
            spawn_local(async move {
                match ipc::data_list(slug.clone()).await {
                    Ok(v) => {
                        let any = !v.is_empty();
                        versions.set(v);
                        if any {
                            match ipc::data_report(slug, None).await {
                                Ok(r) => report.set(Some(r)),
                                Err(e) => error.set(Some(e.message)),
                            }
                        }
                    }
                    Err(e) => error.set(Some(e.message)),
                }
            });
        }
    };
    refresh();
    spawn_local(async move {
        if let Ok(s) = ipc::data_samples().await {
            samples.set(s);
        }
    });
    let inspect = move |source: ImportSource| {
        busy.set(true);
        status.set(None);
        spawn_local(async move {
            match ipc::data_inspect(source.clone()).await {
                Ok(i) => {
                    mapping.set(i.guess.clone());
                    inspection.set(Some((source, i)));
                    error.set(None);
                }
                Err(e) => {
                    inspection.set(None);
                    error.set(Some(e.message));
                }
            }
            busy.set(false);
        });
    };
    // A file dropped on the window.
    let dropped = expect_context::<DropCtx>().0;
    Effect::new(move |_| {
        if let Some(p) = dropped.get() {
            path.set(p.clone());
            dropped.set(None);
            inspect(ImportSource::File(p.into()));
        }
    });
    let import = {
        let (slug, refresh) = (slug.clone(), refresh.clone());
        move || {
            let Some((source, i)) = inspection.get_untracked() else { return };
            let req = ImportRequest {
                project: slug.clone(),
                source,
                name: None,
                // Sent when the user saw the form: detection unsure, or a mapping of columns.
                mapping: mapping.get_untracked().filter(|_| i.needs_mapping || i.guess.is_some()),
                language: None,
            };
            let refresh = refresh.clone();
            busy.set(true);
            importing.set(Some(ImportProgress { rows: 0, seconds: 0.0 }));
            spawn_local(async move {
                let done = ipc::data_import(req, move |p| importing.set(Some(p))).await;
                importing.set(None);
                match done {
                    Ok(d) => {
                        status.set(Some(format!(
                            "Imported {} v{}: {} rows.",
                            d.name, d.version, d.outcome.kept
                        )));
                        error.set(None);
                        inspection.set(None);
                        report.set(Some(d));
                        refresh();
                    }
                    Err(e) if e.code == api::ErrorCode::Cancelled => {
                        status.set(Some("Import cancelled: nothing changed.".into()));
                        error.set(None);
                    }
                    Err(e) => error.set(Some(e.message)),
                }
                busy.set(false);
            });
        }
    };
    let fix = {
        let (slug, refresh) = (slug.clone(), refresh.clone());
        move |flag: String| {
            let (slug, refresh) = (slug.clone(), refresh.clone());
            let name = report.get_untracked().map(|r| r.name);
            busy.set(true);
            spawn_local(async move {
                match ipc::data_fix(slug, name, vec![flag.clone()]).await {
                    Ok(d) => {
                        status.set(Some(format!(
                            "Applied {flag}: {} v{} keeps {} rows ({} dropped).",
                            d.name, d.version, d.outcome.kept, d.outcome.dropped
                        )));
                        error.set(None);
                        report.set(Some(d));
                        refresh();
                    }
                    Err(e) => error.set(Some(e.message)),
                }
                busy.set(false);
            });
        }
    };
    view! {
        <div class="data" id="pane-data">
            <h1>"Data"</h1>
            <section class="card" aria-labelledby="bring-title">
                <h2 id="bring-title">"Bring a dataset"</h2>
                <p class="hint">
                    "CSV, TSV, JSON, JSONL or Parquet: browse for it, type or paste its path, or drop the file anywhere on the window. Nothing changes until you import."
                </p>
                <form
                    class="path-form"
                    on:submit=move |ev| {
                        ev.prevent_default();
                        let p = path.get_untracked();
                        if !p.trim().is_empty() {
                            inspect(ImportSource::File(p.trim().into()));
                        }
                    }
                >
                    <label class="sr-only" for="data-path">"File path"</label>
                    <input
                        id="data-path"
                        type="text"
                        placeholder="/home/me/tickets.csv"
                        prop:value=move || path.get()
                        on:input=move |ev| path.set(event_target_value(&ev))
                    />
                    <button
                        id="data-browse"
                        type="button"
                        disabled=move || busy.get()
                        on:click=move |_| {
                            spawn_local(async move {
                                match ipc::pick_file().await {
                                    Ok(Some(p)) => {
                                        path.set(p.clone());
                                        inspect(ImportSource::File(p.into()));
                                    }
                                    Ok(None) => {}
                                    Err(e) => error.set(Some(e.message)),
                                }
                            });
                        }
                    >
                        "Browse…"
                    </button>
                    <button id="data-inspect" type="submit" disabled=move || busy.get()>
                        "Inspect"
                    </button>
                </form>
                <h3 class="section">"Or start from a sample"</h3>
                <ul class="samples" id="data-samples">
                    <For
                        each=move || samples.get()
                        key=|s| s.id.clone()
                        children=move |s: SampleDataset| {
                            let id = s.id.clone();
                            view! {
                                <li>
                                    <button
                                        class="sample"
                                        data-id=s.id.clone()
                                        disabled=move || busy.get()
                                        on:click=move |_| inspect(ImportSource::Sample(id.clone()))
                                    >
                                        <span class="title">{s.title.clone()}</span>
                                        <span class="meta">{format!("{} rows · {} · {}", s.rows, s.format, s.task)}</span>
                                    </button>
                                </li>
                            }
                        }
                    />
                </ul>
            </section>
            <p class="status" id="data-status" role="status" aria-live="polite">
                {move || status.get().unwrap_or_default()}
            </p>
            {move || importing.get().map(|p| view! {
                <div class="importing" id="data-progress">
                    <span>{if p.rows == 0 { "Importing… reading the file".to_string() } else { format!("Importing… {} rows read ({:.0} s)", p.rows, p.seconds) }}</span>
                    <button id="data-cancel" on:click=move |_| {
                        spawn_local(async move {
                            let _ = ipc::data_import_cancel().await;
                        });
                    }>"Cancel"</button>
                </div>
            })}
            <p class="error" id="data-error" role="alert" class:hidden=move || error.get().is_none()>
                {move || error.get().unwrap_or_default()}
            </p>
            {move || inspection.get().map(|(_, i)| view! { <Detected i mapping busy on_import=import.clone() /> })}
            {move || report.get().map(|r| view! { <Report r busy on_fix=fix.clone() /> })}
            <section class="card" aria-labelledby="versions-title" class:hidden=move || versions.with(|v| v.is_empty())>
                <h2 id="versions-title">"Versions"</h2>
                <table class="grid-table" id="data-versions">
                    <thead><tr><th>"Dataset"</th><th>"Version"</th><th>"Rows"</th><th>"From"</th><th>"Created"</th></tr></thead>
                    <tbody>
                        <For
                            each=move || { let mut v = versions.get(); v.reverse(); v }
                            key=|v| (v.name.clone(), v.version, v.current)
                            children=move |v: DatasetSummary| view! {
                                <tr class:current=v.current>
                                    <td>{v.name.clone()}</td>
                                    <td>{format!("v{}", v.version)}{v.current.then_some(" (current)")}</td>
                                    <td>{v.rows}</td>
                                    <td>{v.source.clone()}</td>
                                    <td>{crate::clock::date_time(v.created_at)}</td>
                                </tr>
                            }
                        />
                    </tbody>
                </table>
            </section>
        </div>
    }
}

/// What detection found in a file, and the mapping form when it is unsure (or asked for).
#[component]
fn Detected<F: Fn() + Clone + 'static>(
    i: Inspection,
    mapping: RwSignal<Option<ColumnMapping>>,
    busy: RwSignal<bool>,
    on_import: F,
) -> impl IntoView {
    let columns = i.columns.clone();
    let show_form = RwSignal::new(i.needs_mapping);
    let pct = (i.detection.confidence * 100.0).round();
    let select = move |id: &'static str,
                       label: &'static str,
                       optional: bool,
                       get: fn(&ColumnMapping) -> Option<String>,
                       set: fn(&mut ColumnMapping, Option<String>)| {
        let columns = columns.clone();
        view! {
            <label class="field" for=id>
                <span class="label">{label}</span>
                <select
                    id=id
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        mapping.update(|m| {
                            let m = m.get_or_insert_with(|| ColumnMapping { input: String::new(), output: String::new(), system: None });
                            set(m, Some(v).filter(|v| !v.is_empty()));
                        });
                    }
                >
                    <option value="" selected=move || mapping.with(|m| m.as_ref().and_then(get).is_none())>
                        {if optional { "(none)" } else { "(choose a column)" }}
                    </option>
                    {columns
                        .iter()
                        .map(|c| {
                            let c2 = c.clone();
                            view! {
                                <option
                                    value=c.clone()
                                    selected=move || mapping.with(|m| m.as_ref().and_then(get).as_deref() == Some(c2.as_str()))
                                >
                                    {c.clone()}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
            </label>
        }
    };
    let complete = move || {
        mapping.with(|m| m.as_ref().is_some_and(|m| !m.input.is_empty() && !m.output.is_empty()))
    };
    let can_map = i.guess.is_some() || i.needs_mapping;
    view! {
        <section class="card detected" id="data-detected" aria-labelledby="detected-title">
            <h2 id="detected-title">{format!("{} ({})", i.file, i.format)}</h2>
            <dl class="facts">
                <dt>"Shape"</dt>
                <dd>{i.detection.shape.clone()}</dd>
                <dt>"Mapping"</dt>
                <dd>{i.detection.mapping.clone()}</dd>
                <dt>"Confidence"</dt>
                <dd id="data-confidence" class:low=i.needs_mapping>
                    {format!("{pct:.0} %")}
                    {i.needs_mapping.then_some(" — too unsure to guess: choose the columns below")}
                </dd>
            </dl>
            <ul class="evidence">
                {i.detection.evidence.iter().map(|e| view! { <li>{e.clone()}</li> }).collect_view()}
            </ul>
            <button
                id="data-change-mapping"
                class="link"
                class:hidden=move || show_form.get() || !can_map
                on:click=move |_| show_form.set(true)
            >
                "Choose the columns myself"
            </button>
            <div class="mapping grid" class:hidden=move || !show_form.get()>
                {select("data-map-input", "Input (what the user says)", false, |m| Some(m.input.clone()).filter(|s| !s.is_empty()), |m, v| m.input = v.unwrap_or_default())}
                {select("data-map-output", "Output (the reply to learn)", false, |m| Some(m.output.clone()).filter(|s| !s.is_empty()), |m, v| m.output = v.unwrap_or_default())}
                {select("data-map-system", "System prompt (optional)", true, |m| m.system.clone(), |m, v| m.system = v)}
            </div>
            <div class="actions">
                <button
                    id="data-import"
                    class="primary"
                    disabled=move || busy.get() || (show_form.get() && !complete())
                    on:click=move |_| on_import()
                >
                    {move || if busy.get() { "Importing…" } else { "Import" }}
                </button>
            </div>
        </section>
    }
}

/// The committed report of the current version: measures, issues with fixes, histogram, rows.
#[component]
fn Report<F: Fn(String) + Clone + 'static>(
    r: DatasetDetail,
    busy: RwSignal<bool>,
    on_fix: F,
) -> impl IntoView {
    let rep = r.outcome.result.clone();
    let worst_only = RwSignal::new(false);
    let by_score = RwSignal::new(false);
    let preview = r.outcome.preview.clone();
    let worst = r.outcome.worst.clone();
    let rows = move || {
        let mut v: Vec<RowPreview> = if worst_only.get() { worst.clone() } else { preview.clone() };
        if by_score.get() {
            v.sort_by_key(|r| (r.score, r.row));
        }
        v
    };
    let t = &rep.tokens;
    let measures: Vec<(&str, String)> = vec![
        ("Rows", rep.rows.to_string()),
        (
            "Split",
            format!("{} train / {} test (seed {})", r.split.train, r.split.test, r.split.seed),
        ),
        ("Empty input or output", (rep.missing_input + rep.missing_output).to_string()),
        ("Exact duplicates", rep.duplicates.to_string()),
        ("Near-duplicates", rep.near_duplicates.to_string()),
        ("Encoding damage", rep.encoding_damaged.to_string()),
        ("Input/output imbalance", rep.imbalanced.to_string()),
        (
            "Tokens per row",
            format!(
                "mean {:.0}, median {}, 95 % {}, max {}",
                t.total.mean, t.total.p50, t.total.p95, t.total.max
            ),
        ),
        ("Over the cutoff", format!("{} (cutoff {} tokens)", t.over_cutoff, t.cutoff)),
        ("Over the context", format!("{} (context {} tokens)", t.over_context, t.context)),
        (
            "Language",
            rep.language.as_ref().map_or("not detected".into(), |l| {
                format!("{} ({:.0} %)", l.name, l.share * 100.0)
            }),
        ),
        (
            "Mean quality score",
            format!("{:.0} / 100 ({} rows below 50)", rep.mean_score, rep.low_score_rows),
        ),
    ];
    view! {
        <section class="card report" id="data-report" aria-labelledby="report-title">
            <h2 id="report-title">{format!("{} v{} — quality report", r.name, r.version)}</h2>
            <p class="hint">
                {format!("From {} ({}, {}); {} rows kept", r.source.file, r.source.format, r.source.encoding, r.outcome.kept)}
                {(r.outcome.dropped > 0).then(|| format!(", {} dropped by: {}", r.outcome.dropped, r.transforms.join(", ")))}
                "."
            </p>
            <div class="report-grid">
                <dl class="facts measures">
                    {measures.into_iter().map(|(k, v)| view! { <dt>{k}</dt><dd>{v}</dd> }).collect_view()}
                </dl>
                <div class="report-figures">
                <figure class="histogram" id="data-histogram">
                    {histogram(&rep.tokens.histogram, rep.tokens.cutoff)}
                    <figcaption>"Tokens per row (the line: the training cutoff)"</figcaption>
                </figure>
                {(!rep.score_histogram.is_empty()).then(|| {
                    let points: Vec<(f64, f64)> =
                        rep.score_histogram.iter().map(|b| (b.from as f64, b.count as f64)).collect();
                    let rows = vec![api::chart::Series { label: "rows by quality score (below 50: worth a look)".into(), slot: 0, points, dots: false }];
                    view! {
                        <Chart id="data-scores" title="Quality scores" series=Signal::stored(rows) x_label="score" y_format=api::chart::YFormat::Whole size=(360, 160) bar_width=Some(10.0) />
                    }
                })}
                </div>
            </div>
            <h3>"Issues"</h3>
            <ul class="issues" id="data-issues">
                {if rep.issues.is_empty() {
                    view! { <li class="ok">"No issues found."</li> }.into_any()
                } else {
                    rep.issues
                        .iter()
                        .map(|i| {
                            let fix = i.fix.clone();
                            let on_fix = on_fix.clone();
                            view! {
                                <li class=format!("issue {}", i.severity) data-kind=i.kind.clone()>
                                    <span class="badge">{i.severity.clone()}</span>
                                    <span class="message">{i.message.clone()}</span>
                                    {fix.map(|f| {
                                        let f2 = f.clone();
                                        view! {
                                            <button
                                                class="fix"
                                                data-fix=f.clone()
                                                title=format!("A new version with this fix ({f})")
                                                disabled=move || busy.get()
                                                on:click=move |_| on_fix(f2.clone())
                                            >
                                                "Fix"
                                            </button>
                                        }
                                    })}
                                </li>
                            }
                        })
                        .collect_view()
                        .into_any()
                }}
            </ul>
            <div class="rows-head">
                <h3>"Rows"</h3>
                <label><input type="checkbox" id="data-worst" on:change=move |ev| worst_only.set(event_target_checked(&ev)) />" Worst rows only"</label>
                <label><input type="checkbox" id="data-sort" on:change=move |ev| by_score.set(event_target_checked(&ev)) />" Lowest score first"</label>
            </div>
            <table class="grid-table rows" id="data-preview">
                <thead><tr><th>"Row"</th><th>"Input"</th><th>"Output"</th><th>"Score"</th><th>"Why"</th></tr></thead>
                <tbody>
                    {move || rows().into_iter().map(|p| view! {
                        <tr class:dropped=p.dropped>
                            <td>{p.row}</td>
                            <td class="text">{p.input}</td>
                            <td class="text">{p.output}</td>
                            <td class=if p.score < 50 { "score low" } else { "score" }>{p.score}</td>
                            <td>{p.reasons.join("; ")}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
}

/// The token-length histogram as SVG bars, with the cutoff marked.
fn histogram(buckets: &[api::dataset::Bucket], cutoff: usize) -> impl IntoView + use<> {
    let (w, h) = (360.0, 140.0);
    let max = buckets.iter().map(|b| b.count).max().unwrap_or(1).max(1) as f64;
    // The cutoff is drawn when it is near the data (an axis twice the data's would flatten it).
    let last = buckets.last().map_or(1, |b| b.to).max(1) as f64;
    let end = if (cutoff as f64) <= 2.0 * last { last.max(cutoff as f64) } else { last };
    let x = |t: f64| 30.0 + (w - 40.0) * (t / end).min(1.0);
    let bars = buckets
        .iter()
        .map(|b| {
            let (x0, x1) = (x(b.from as f64), x(b.to as f64));
            let bh = (h - 30.0) * b.count as f64 / max;
            view! {
                <rect class="hbar" x=format!("{x0:.1}") y=format!("{:.1}", h - 20.0 - bh) width=format!("{:.1}", (x1 - x0 - 1.0).max(1.0)) height=format!("{bh:.1}")>
                    <title>{format!("{}–{} tokens: {} rows", b.from, b.to, b.count)}</title>
                </rect>
            }
        })
        .collect_view();
    let cx = x(cutoff as f64);
    view! {
        <svg viewBox=format!("0 0 {w} {h}") role="img" aria-label="Histogram of tokens per row" data-buckets=buckets.len()>
            <line class="axis" x1="30" y1=format!("{}", h - 20.0) x2=format!("{}", w - 10.0) y2=format!("{}", h - 20.0) />
            {bars}
            <line class="cutoff" x1=format!("{cx:.1}") y1="8" x2=format!("{cx:.1}") y2=format!("{}", h - 20.0) />
            <text class="tick" x="30" y=format!("{}", h - 5.0)>"0"</text>
            <text class="tick" x=format!("{}", w - 40.0) y=format!("{}", h - 5.0)>{format!("{end:.0}")}</text>
        </svg>
    }
}
