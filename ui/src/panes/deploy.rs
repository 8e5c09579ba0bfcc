//! Deploy: the local OpenAI-compatible server (start, stop, address, API key), which version of
//! the project's model is live (switch back to an earlier run in one click), snippets to call
//! it, a test box, live usage from the traces, exports of a run, and the aliases it serves.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use api::export::{ExportFormat, ExportProgress, ExportRequest, ExportResult, GgufQuant};
use api::serve::{Alias, RequestParams, ServeConfig, ServeStatus, TraceFilter, TraceStats};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::ipc;
use crate::state::sleep;

/// Copies `text` to the clipboard (the browser's own API; nothing in the bundle).
pub fn copy(text: &str) {
    let Some(w) = web_sys::window() else { return };
    let navigator = js_sys::Reflect::get(&w, &"navigator".into()).unwrap_or_default();
    let clipboard = js_sys::Reflect::get(&navigator, &"clipboard".into()).ok();
    if let Some(c) = clipboard.filter(|c| !c.is_undefined())
        && let Ok(f) = js_sys::Reflect::get(&c, &"writeText".into())
        && let Ok(f) = f.dyn_into::<js_sys::Function>()
    {
        let _ = f.call1(&c, &text.into());
    }
}

use wasm_bindgen::JsCast;

/// The snippets that call the server, for `model` at `url` (the key read from the environment,
/// never pasted into code).
fn snippets(url: &str, model: &str, key: bool) -> [(&'static str, String); 3] {
    let auth_curl = if key { " \\\n  -H \"Authorization: Bearer $VIBEFLOW_API_KEY\"" } else { "" };
    let auth_py = if key { "os.environ[\"VIBEFLOW_API_KEY\"]" } else { "\"none\"" };
    let auth_js =
        if key { ",\n    Authorization: `Bearer ${process.env.VIBEFLOW_API_KEY}`" } else { "" };
    [
        (
            "curl",
            format!(
                "curl {url}/chat/completions \\\n  -H \"Content-Type: application/json\"{auth_curl} \\\n  -d '{{\"model\": \"{model}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'"
            ),
        ),
        (
            "Python",
            format!(
                "import os\nfrom openai import OpenAI\n\nclient = OpenAI(base_url=\"{url}\", api_key={auth_py})\nreply = client.chat.completions.create(\n    model=\"{model}\",\n    messages=[{{\"role\": \"user\", \"content\": \"Hello\"}}],\n)\nprint(reply.choices[0].message.content)"
            ),
        ),
        (
            "JavaScript",
            format!(
                "const res = await fetch(\"{url}/chat/completions\", {{\n  method: \"POST\",\n  headers: {{\n    \"Content-Type\": \"application/json\"{auth_js}\n  }},\n  body: JSON.stringify({{\n    model: \"{model}\",\n    messages: [{{ role: \"user\", content: \"Hello\" }}],\n  }}),\n}});\nconsole.log((await res.json()).choices[0].message.content);"
            ),
        ),
    ]
}

fn format_name(f: ExportFormat) -> &'static str {
    match f {
        ExportFormat::Peft => "peft",
        ExportFormat::Merged => "merged",
        ExportFormat::Gguf => "gguf",
        ExportFormat::Llamafactory => "LLaMA-Factory",
        ExportFormat::Axolotl => "Axolotl",
    }
}

/// A duration as people read it: `840 ms`, `5.4 s`; a dash while nothing was measured.
fn ms(v: u64, measured: bool) -> String {
    match (measured, v) {
        (false, _) => "–".into(),
        (_, v) if v < 1000 => format!("{v} ms"),
        _ => format!("{:.1} s", v as f64 / 1000.0),
    }
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.0} KB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// The Deploy pane of project `slug`.
#[component]
pub fn Deploy(slug: String) -> impl IntoView {
    let slug = StoredValue::new(slug);
    let status = RwSignal::new(ServeStatus::default());
    let host = RwSignal::new("127.0.0.1".to_string());
    let port = RwSignal::new(api::serve::DEFAULT_PORT.to_string());
    let require_key = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let new_key = RwSignal::new(None::<String>);
    let runs = RwSignal::new(Vec::<String>::new());
    let aliases = RwSignal::new(Vec::<Alias>::new());
    let pick_run = RwSignal::new(String::new());
    let stats = RwSignal::new(TraceStats::default());
    let snippet = RwSignal::new(0usize);
    let test_model = RwSignal::new(String::new());
    let test_prompt = RwSignal::new(String::new());
    let test_reply = RwSignal::new(None::<Result<api::serve::ServeTestReply, String>>);
    let testing = RwSignal::new(false);

    let reload_aliases = move || {
        spawn_local(async move {
            match ipc::alias_list().await {
                Ok(a) => aliases.set(a),
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let refresh = move || {
        spawn_local(async move {
            if let Ok(s) = ipc::serve_status().await {
                status.set(s);
            }
            let filter = TraceFilter { model: Some(slug.get_value()), ..TraceFilter::default() };
            if let Ok(s) = ipc::trace_stats(filter).await {
                stats.set(s);
            }
        });
    };
    spawn_local(async move {
        match ipc::runs(slug.get_value()).await {
            Ok(r) => {
                let done: Vec<String> =
                    r.into_iter().filter(|r| r.status == "done").map(|r| r.id).collect();
                pick_run.set(done.last().cloned().unwrap_or_default());
                runs.set(done);
            }
            Err(e) => error.set(Some(e.message)),
        }
    });
    reload_aliases();
    refresh();
    // Usage and status follow the server while the pane is open.
    let open = Arc::new(AtomicBool::new(true));
    {
        let open = open.clone();
        spawn_local(async move {
            while open.load(Ordering::Relaxed) {
                sleep(3000).await;
                if open.load(Ordering::Relaxed) {
                    refresh();
                }
            }
        });
    }
    on_cleanup(move || open.store(false, Ordering::Relaxed));

    // The project's own alias (its slug) is what "live" means: clients ask for that name and
    // get the run it points at.
    let live_run = Memo::new(move |_| {
        let name = slug.get_value();
        aliases.with(|a| {
            a.iter()
                .find(|a| a.alias == name)
                .and_then(|a| a.model.strip_prefix(&format!("{name}/")).map(String::from))
        })
    });
    let make_live = move || {
        let run = pick_run.get_untracked();
        if run.is_empty() {
            return;
        }
        spawn_local(async move {
            match ipc::go_live(slug.get_value(), run).await {
                Ok(_) => {
                    error.set(None);
                    reload_aliases();
                    refresh();
                }
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let start = move || {
        let Ok(p) = port.get_untracked().trim().parse::<u16>() else {
            error.set(Some("Port: a number from 1 to 65535.".into()));
            return;
        };
        let cfg = ServeConfig {
            host: host.get_untracked().trim().to_string(),
            port: p,
            require_key: require_key.get_untracked(),
            ..ServeConfig::default()
        };
        busy.set(true);
        spawn_local(async move {
            match ipc::serve_start(cfg).await {
                Ok(s) => {
                    error.set(None);
                    status.set(s);
                }
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };
    let stop = move || {
        busy.set(true);
        spawn_local(async move {
            match ipc::serve_stop().await {
                Ok(s) => status.set(s),
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };
    let create_key = move || {
        spawn_local(async move {
            match ipc::serve_key_create().await {
                Ok(k) => {
                    new_key.set(Some(k.key));
                    refresh();
                }
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let revoke_key = move || {
        spawn_local(async move {
            match ipc::serve_key_revoke().await {
                Ok(()) => {
                    new_key.set(None);
                    refresh();
                }
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let send_test = move || {
        let (model, prompt) = (test_model.get_untracked(), test_prompt.get_untracked());
        if prompt.trim().is_empty() || testing.get_untracked() {
            return;
        }
        let model = if model.is_empty() { slug.get_value() } else { model };
        testing.set(true);
        test_reply.set(None);
        spawn_local(async move {
            test_reply.set(Some(ipc::serve_test(model, prompt).await.map_err(|e| e.message)));
            testing.set(false);
            refresh();
        });
    };
    let model_names = move || {
        let mut names: Vec<String> =
            status.with(|s| s.models.iter().map(|m| m.id.clone()).collect());
        if !names.contains(&slug.get_value()) {
            names.insert(0, slug.get_value());
        }
        names
    };

    view! {
        <div class="deploy">
            <header class="pane-head">
                <h1>"Deploy"</h1>
                <span
                    id="serve-state"
                    class=move || if status.get().running { "badge ok" } else { "badge" }
                    role="status"
                    aria-live="polite"
                >
                    {move || if status.get().running { "Serving" } else { "Stopped" }}
                </span>
            </header>
            <p class="error" id="deploy-error" class:hidden=move || error.get().is_none()>
                {move || error.get().unwrap_or_default()}
            </p>
            <section class="card" id="serve-card">
                <h2>"Local server"</h2>
                <p class="hint">
                    "An OpenAI-compatible API on this computer: any OpenAI client can use your fine-tuned model. Off this computer (another address than 127.0.0.1) it always needs the API key."
                </p>
                <div class="row">
                    <label class="field inline">
                        <span class="label">"Address"</span>
                        <input
                            id="serve-host"
                            type="text"
                            prop:value=move || host.get()
                            on:input=move |ev| host.set(event_target_value(&ev))
                            disabled=move || status.get().running
                        />
                    </label>
                    <label class="field inline">
                        <span class="label">"Port"</span>
                        <input
                            id="serve-port"
                            type="text"
                            inputmode="numeric"
                            prop:value=move || port.get()
                            on:input=move |ev| port.set(event_target_value(&ev))
                            disabled=move || status.get().running
                        />
                    </label>
                    <label class="check">
                        <input
                            id="serve-require-key"
                            type="checkbox"
                            prop:checked=move || require_key.get()
                            on:change=move |ev| require_key.set(event_target_checked(&ev))
                            disabled=move || status.get().running
                        />
                        "Require the API key here too"
                    </label>
                </div>
                <div class="actions">
                    <button
                        id="serve-start"
                        class="primary"
                        class:hidden=move || status.get().running
                        disabled=move || busy.get()
                        on:click=move |_| start()
                    >
                        "Start server"
                    </button>
                    <button
                        id="serve-stop"
                        class:hidden=move || !status.get().running
                        disabled=move || busy.get()
                        on:click=move |_| stop()
                    >
                        "Stop server"
                    </button>
                </div>
                <div class="endpoint" class:hidden=move || !status.get().running>
                    <code id="serve-url">{move || status.get().url}</code>
                    <button class="link" on:click=move |_| copy(&status.get_untracked().url)>
                        "Copy URL"
                    </button>
                    <span class="hint">
                        {move || {
                            let s = status.get();
                            let loaded = if s.loaded.is_empty() {
                                "no model loaded yet (the first request loads it)".to_string()
                            } else {
                                format!("loaded: {}", s.loaded.join(", "))
                            };
                            format!(
                                "{} · {}",
                                if s.key_required { "key required" } else { "no key needed on this computer" },
                                loaded,
                            )
                        }}
                    </span>
                </div>
            </section>

            <section class="card" id="key-card">
                <h2>"API key"</h2>
                <p class="hint">
                    {move || {
                        if status.get().key_set {
                            "A key is set. It lives only in the system keyring; create a new one to replace it."
                        } else {
                            "No key yet. Create one before serving off this computer."
                        }
                    }}
                </p>
                <div class="key-once" class:hidden=move || new_key.get().is_none()>
                    <p class="warning">"Copy it now: it is shown only once."</p>
                    <code id="serve-key">{move || new_key.get().unwrap_or_default()}</code>
                    <button
                        class="link"
                        on:click=move |_| copy(&new_key.get_untracked().unwrap_or_default())
                    >
                        "Copy key"
                    </button>
                </div>
                <div class="actions">
                    <button id="key-create" on:click=move |_| create_key()>
                        {move || if status.get().key_set { "Regenerate key" } else { "Create key" }}
                    </button>
                    <button
                        id="key-revoke"
                        disabled=move || !status.get().key_set
                        on:click=move |_| revoke_key()
                    >
                        "Revoke key"
                    </button>
                </div>
            </section>

            <section class="card" id="live-card">
                <h2>"Live version"</h2>
                <p id="live-run">
                    {move || match live_run.get() {
                        Some(r) => format!("Clients asking for \"{}\" get run {r}.", slug.get_value()),
                        None => format!(
                            "No run is live under \"{}\" yet: pick a finished run and make it live.",
                            slug.get_value(),
                        ),
                    }}
                </p>
                <p class="empty" class:hidden=move || !runs.get().is_empty()>
                    "No finished run yet: train one in the Train pane, then deploy it here."
                </p>
                <div class="row" class:hidden=move || runs.get().is_empty()>
                    <label class="field inline">
                        <span class="label">"Run"</span>
                        <select
                            id="live-select"
                            on:change=move |ev| pick_run.set(event_target_value(&ev))
                            prop:value=move || pick_run.get()
                        >
                            {move || {
                                runs.get()
                                    .into_iter()
                                    .rev()
                                    .map(|r| view! { <option value=r.clone()>{r.clone()}</option> })
                                    .collect_view()
                            }}
                        </select>
                    </label>
                    <button
                        id="make-live"
                        class="primary"
                        disabled=move || live_run.get().as_deref() == Some(pick_run.get().as_str())
                        on:click=move |_| make_live()
                    >
                        {move || {
                            if live_run.get().is_some() { "Switch to this run" } else { "Make live" }
                        }}
                    </button>
                </div>
            </section>

            <section class="card" id="usage-card">
                <h2>"Usage"</h2>
                <p class="hint">{move || format!("Requests for \"{}\", from the traces.", slug.get_value())}</p>
                <dl class="stats" id="usage-stats">
                    <div><dt>"Requests"</dt><dd id="usage-requests">{move || stats.get().requests}</dd></div>
                    <div><dt>"Errors"</dt><dd>{move || stats.get().errors}</dd></div>
                    <div><dt>"Tokens in / out"</dt><dd>{move || { let s = stats.get(); format!("{} / {}", s.prompt_tokens, s.completion_tokens) }}</dd></div>
                    <div><dt>"Latency p50 / p95"</dt><dd>{move || { let s = stats.get(); let m = s.requests > 0; format!("{} / {}", ms(s.p50_ms, m), ms(s.p95_ms, m)) }}</dd></div>
                    <div><dt>"First token p50"</dt><dd>{move || { let s = stats.get(); ms(s.ttft_p50_ms, s.requests > 0) }}</dd></div>
                </dl>
            </section>

            <section class="card" id="test-card">
                <h2>"Test"</h2>
                <p class="hint">"Sends a chat request through the server, as any client would (it shows up in Traces)."</p>
                <div class="row">
                    <label class="field inline">
                        <span class="label">"Model"</span>
                        <select id="test-model" on:change=move |ev| test_model.set(event_target_value(&ev))>
                            {move || {
                                model_names()
                                    .into_iter()
                                    .map(|m| view! { <option value=m.clone()>{m.clone()}</option> })
                                    .collect_view()
                            }}
                        </select>
                    </label>
                    <input
                        id="test-prompt"
                        type="text"
                        aria-label="Test message"
                        placeholder="Ask something…"
                        prop:value=move || test_prompt.get()
                        on:input=move |ev| test_prompt.set(event_target_value(&ev))
                        on:keydown=move |ev| {
                            if ev.key() == "Enter" {
                                send_test();
                            }
                        }
                    />
                    <button
                        id="test-send"
                        class="primary"
                        disabled=move || !status.get().running || testing.get()
                        title=move || (!status.get().running).then_some("Start the server first")
                        on:click=move |_| send_test()
                    >
                        {move || if testing.get() { "Waiting…" } else { "Send" }}
                    </button>
                </div>
                {move || {
                    test_reply
                        .get()
                        .map(|r| match r {
                            Ok(r) => view! {
                                <div class="test-reply" id="test-reply">
                                    <p>{r.text}</p>
                                    <p class="hint">
                                        {format!(
                                            "{} ms · {} prompt tokens · {} generated",
                                            r.latency_ms, r.prompt_tokens, r.completion_tokens,
                                        )}
                                    </p>
                                </div>
                            }
                            .into_any(),
                            Err(e) => view! { <p class="error" id="test-reply">{e}</p> }.into_any(),
                        })
                }}
            </section>

            <section class="card" id="snippets-card">
                <div class="rows-head">
                    <h2>"Call it from code"</h2>
                    <div class="segmented" role="tablist" aria-label="Language">
                        {["curl", "Python", "JavaScript"]
                            .into_iter()
                            .enumerate()
                            .map(|(i, l)| {
                                view! {
                                    <button
                                        role="tab"
                                        aria-selected=move || (snippet.get() == i).to_string()
                                        class:active=move || snippet.get() == i
                                        on:click=move |_| snippet.set(i)
                                    >
                                        {l}
                                    </button>
                                }
                            })
                            .collect_view()}
                    </div>
                </div>
                {move || {
                    let s = status.get();
                    let url = if s.url.is_empty() {
                        format!("http://127.0.0.1:{}/v1", port.get())
                    } else {
                        s.url.clone()
                    };
                    let model = if live_run.get().is_some() {
                        slug.get_value()
                    } else {
                        test_model.get()
                    };
                    let model = if model.is_empty() { slug.get_value() } else { model };
                    let (_, code) = snippets(&url, &model, s.key_required || s.key_set).into_iter().nth(snippet.get()).unwrap_or_default();
                    let copied = code.clone();
                    view! {
                        <pre class="code" id="snippet"><code>{code}</code></pre>
                        <button class="link" on:click=move |_| copy(&copied)>"Copy"</button>
                    }
                }}
            </section>

            <Export slug=slug.get_value() runs />
            <Aliases aliases reload=reload_aliases error />
        </div>
    }
}

/// Exports of a run: format, quantization, progress, what was written.
#[component]
fn Export(slug: String, runs: RwSignal<Vec<String>>) -> impl IntoView {
    let slug = StoredValue::new(slug);
    let run = RwSignal::new(String::new());
    let format = RwSignal::new(ExportFormat::Gguf);
    let quant = RwSignal::new(GgufQuant::Q8_0);
    let progress = RwSignal::new(None::<ExportProgress>);
    let result = RwSignal::new(None::<Result<ExportResult, String>>);
    let busy = RwSignal::new(false);
    let go = move || {
        let r = run.get_untracked();
        let r =
            if r.is_empty() { runs.get_untracked().last().cloned().unwrap_or_default() } else { r };
        if r.is_empty() || busy.get_untracked() {
            return;
        }
        let f = format.get_untracked();
        let req = ExportRequest {
            project: slug.get_value(),
            run: r,
            format: f,
            quant: (f == ExportFormat::Gguf).then(|| quant.get_untracked()),
            out: String::new(),
            base_weights: false,
        };
        busy.set(true);
        result.set(None);
        spawn_local(async move {
            let r = ipc::export_run(req, move |p| progress.set(Some(p))).await;
            result.set(Some(r.map_err(|e| e.message)));
            progress.set(None);
            busy.set(false);
        });
    };
    view! {
        <section class="card" id="export-card">
            <h2>"Export"</h2>
            <p class="hint">
                "The adapter for PEFT, a merged model that transformers loads, or a GGUF for llama.cpp and Ollama (with a Modelfile). Each keeps the chat template and end tokens it was trained with, and is recorded in History. LLaMA-Factory and Axolotl get the run's data and settings to train on many GPUs; "
                <code>"vibeflow runs import"</code>
                " brings their adapter back."
            </p>
            <p class="empty" class:hidden=move || !runs.get().is_empty()>"No finished run to export yet."</p>
            <div class="row" class:hidden=move || runs.get().is_empty()>
                <label class="field inline">
                    <span class="label">"Run"</span>
                    <select id="export-run" on:change=move |ev| run.set(event_target_value(&ev))>
                        {move || {
                            runs.get()
                                .into_iter()
                                .rev()
                                .map(|r| view! { <option value=r.clone()>{r.clone()}</option> })
                                .collect_view()
                        }}
                    </select>
                </label>
                <label class="field inline">
                    <span class="label">"Format"</span>
                    <select
                        id="export-format"
                        on:change=move |ev| {
                            format.set(match event_target_value(&ev).as_str() {
                                "peft" => ExportFormat::Peft,
                                "merged" => ExportFormat::Merged,
                                "llamafactory" => ExportFormat::Llamafactory,
                                "axolotl" => ExportFormat::Axolotl,
                                _ => ExportFormat::Gguf,
                            })
                        }
                    >
                        <option value="gguf" selected>"GGUF (llama.cpp, Ollama)"</option>
                        <option value="merged">"Merged (transformers)"</option>
                        <option value="peft">"Adapter (PEFT)"</option>
                        <option value="llamafactory">"LLaMA-Factory (data, settings, launch)"</option>
                        <option value="axolotl">"Axolotl (data, settings, launch)"</option>
                    </select>
                </label>
                <label class="field inline" class:hidden=move || format.get() != ExportFormat::Gguf>
                    <span class="label">"Weights"</span>
                    <select
                        id="export-quant"
                        on:change=move |ev| {
                            quant.set(match event_target_value(&ev).as_str() {
                                "f16" => GgufQuant::F16,
                                "q4_k_m" => GgufQuant::Q4KM,
                                _ => GgufQuant::Q8_0,
                            })
                        }
                    >
                        <option value="q8_0" selected>"Q8_0 (8-bit, near lossless)"</option>
                        <option value="q4_k_m">"Q4_K_M (4-bit, smallest)"</option>
                        <option value="f16">"F16 (16-bit)"</option>
                    </select>
                </label>
                <button id="export-go" class="primary" disabled=move || busy.get() on:click=move |_| go()>
                    {move || if busy.get() { "Exporting…" } else { "Export" }}
                </button>
            </div>
            {move || {
                progress
                    .get()
                    .map(|p| {
                        view! {
                            <div class="progress-line" role="status">
                                <progress max="1" value=p.fraction></progress>
                                <span class="hint">{p.stage}</span>
                            </div>
                        }
                    })
            }}
            {move || {
                result
                    .get()
                    .map(|r| match r {
                        Ok(r) => view! {
                            <div id="export-result">
                                <p>
                                    {format!("Written to {} ({}).", r.dir, format_name(format.get_untracked()))}
                                    " "
                                    <button class="link" on:click={let d = r.dir.clone(); move |_| copy(&d)}>"Copy path"</button>
                                </p>
                                <ul class="files">
                                    {r.files
                                        .into_iter()
                                        .map(|(f, b)| view! { <li><code>{f}</code>" "<span class="hint">{size(b)}</span></li> })
                                        .collect_view()}
                                </ul>
                                {r.notes.into_iter().map(|n| view! { <p class="hint">{n}</p> }).collect_view()}
                            </div>
                        }
                        .into_any(),
                        Err(e) => view! { <p class="error" id="export-result">{e}</p> }.into_any(),
                    })
            }}
        </section>
    }
}

/// The aliases the server answers to: presets of a model with its parameters.
#[component]
fn Aliases(
    aliases: RwSignal<Vec<Alias>>,
    reload: impl Fn() + Copy + Send + Sync + 'static,
    error: RwSignal<Option<String>>,
) -> impl IntoView {
    let editing = RwSignal::new(None::<(Alias, bool)>);
    let remove = move |name: String| {
        spawn_local(async move {
            match ipc::alias_remove(name).await {
                Ok(()) => reload(),
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let clone = move |from: String| {
        let to = format!("{from}-copy");
        spawn_local(async move {
            match ipc::alias_clone(from, to).await {
                Ok(_) => reload(),
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    view! {
        <section class="card" id="aliases-card">
            <div class="rows-head">
                <h2>"Aliases"</h2>
                <button
                    id="alias-new"
                    on:click=move |_| editing.set(Some((Alias::default(), false)))
                >
                    "New alias"
                </button>
            </div>
            <p class="hint">"A name the server answers to: a model or run with its own defaults (temperature, length, stop words, system message). A request's own values win."</p>
            <p class="empty" class:hidden=move || !aliases.get().is_empty()>
                "No aliases yet. Make a run live above, or save one from the Playground."
            </p>
            <table class="metrics" class:hidden=move || aliases.get().is_empty() id="alias-table">
                <thead>
                    <tr><th>"Alias"</th><th>"Model"</th><th>"Defaults"</th><th></th></tr>
                </thead>
                <tbody>
                    <For
                        each=move || aliases.get()
                        key=|a| format!("{a:?}")
                        children=move |a: Alias| {
                            let p = &a.request_params;
                            let mut d = Vec::new();
                            if let Some(t) = p.temperature { d.push(format!("temperature {t}")); }
                            if let Some(t) = p.top_p { d.push(format!("top_p {t}")); }
                            if let Some(m) = p.max_tokens { d.push(format!("max {m} tokens")); }
                            if !p.stop.is_empty() { d.push(format!("stop {:?}", p.stop)); }
                            if a.system.is_some() { d.push("system message".into()); }
                            let (n1, n2, edit) = (a.alias.clone(), a.alias.clone(), a.clone());
                            view! {
                                <tr>
                                    <td><code>{a.alias.clone()}</code></td>
                                    <td>{a.model.clone()}</td>
                                    <td class="hint">{if d.is_empty() { "model defaults".into() } else { d.join(" · ") }}</td>
                                    <td class="actions-cell">
                                        <button class="link" on:click=move |_| editing.set(Some((edit.clone(), true)))>"Edit"</button>
                                        <button class="link" on:click=move |_| clone(n1.clone())>"Clone"</button>
                                        <button class="link" on:click=move |_| remove(n2.clone())>"Delete"</button>
                                    </td>
                                </tr>
                            }
                        }
                    />
                </tbody>
            </table>
            {move || editing.get().map(|(a, replace)| view! { <AliasForm alias=a replace editing reload error /> })}
        </section>
    }
}

#[component]
fn AliasForm(
    alias: Alias,
    replace: bool,
    editing: RwSignal<Option<(Alias, bool)>>,
    reload: impl Fn() + Copy + Send + Sync + 'static,
    error: RwSignal<Option<String>>,
) -> impl IntoView {
    let p = alias.request_params.clone();
    let opt = |v: Option<String>| RwSignal::new(v.unwrap_or_default());
    let name = RwSignal::new(alias.alias.clone());
    let model = RwSignal::new(alias.model.clone());
    let temperature = opt(p.temperature.map(|v| v.to_string()));
    let top_p = opt(p.top_p.map(|v| v.to_string()));
    let max_tokens = opt(p.max_tokens.map(|v| v.to_string()));
    let stop = RwSignal::new(p.stop.join(", "));
    let system = opt(alias.system.clone());
    let problem = RwSignal::new(None::<String>);
    let base = StoredValue::new(alias);
    let save = move || {
        fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<Option<T>, String> {
            let v = v.trim();
            if v.is_empty() {
                return Ok(None);
            }
            v.parse().map(Some).map_err(|_| format!("{name}: a number, got '{v}'"))
        }
        let built = (|| -> Result<Alias, String> {
            Ok(Alias {
                alias: name.get_untracked().trim().to_string(),
                model: model.get_untracked().trim().to_string(),
                system: Some(system.get_untracked()).filter(|s| !s.trim().is_empty()),
                request_params: RequestParams {
                    temperature: num("temperature", &temperature.get_untracked())?,
                    top_p: num("top_p", &top_p.get_untracked())?,
                    max_tokens: num("max_tokens", &max_tokens.get_untracked())?,
                    stop: stop
                        .get_untracked()
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect(),
                    ..base.get_value().request_params
                },
                ..base.get_value()
            })
        })();
        let a = match built {
            Ok(a) => a,
            Err(e) => {
                problem.set(Some(e));
                return;
            }
        };
        spawn_local(async move {
            match ipc::alias_save(a, replace).await {
                Ok(_) => {
                    editing.set(None);
                    error.set(None);
                    reload();
                }
                Err(e) => problem.set(Some(e.message)),
            }
        });
    };
    let field = move |id: &'static str,
                      label: &'static str,
                      sig: RwSignal<String>,
                      help: &'static str| {
        view! {
            <label class="field">
                <span class="label">{label}</span>
                <input id=id type="text" prop:value=move || sig.get() on:input=move |ev| sig.set(event_target_value(&ev)) />
                <span class="help">{help}</span>
            </label>
        }
    };
    view! {
        <form class="alias-form" id="alias-form" on:submit=move |ev| { ev.prevent_default(); save(); }>
            <div class="grid">
                {field("alias-name", "Name", name, "What clients put in \"model\", e.g. support-bot:v2.")}
                {field("alias-model", "Model", model, "An installed model id, or a run as project/run.")}
                {field("alias-temperature", "Temperature", temperature, "0–2; empty: the model's default.")}
                {field("alias-top-p", "Top p", top_p, "0–1; empty: 1.")}
                {field("alias-max-tokens", "Max tokens", max_tokens, "Longest reply; empty: 256.")}
                {field("alias-stop", "Stop strings", stop, "Up to 4, separated by commas.")}
                {field("alias-system", "System message", system, "Put first when a request has none.")}
            </div>
            <p class="error" class:hidden=move || problem.get().is_none()>{move || problem.get().unwrap_or_default()}</p>
            <div class="actions">
                <button class="primary" type="submit" id="alias-save">"Save alias"</button>
                <button type="button" on:click=move |_| editing.set(None)>"Cancel"</button>
            </div>
        </form>
    }
}
