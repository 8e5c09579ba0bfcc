//! The server driven as its users drive it — the official `openai` Python client, `curl`, many
//! streams at once — over a temporary home with the real default model and a short run.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::serve::{Alias, RequestParams, ServeConfig, Trace, TraceFilter};
use app::App;
use serde_json::{Value, json};
use serve::Server;

const BASE: &str = "smollm2-135m-instruct";

struct Home {
    _dir: tempfile::TempDir,
    app: Arc<App>,
}

/// A home with the real default model installed, when setup provided it (`cargo xtask test`
/// always does; there its absence is a failure, not a skip).
fn home() -> Option<Home> {
    let Some(gguf) = std::env::var_os("VIBEFLOW_DEFAULT_GGUF") else {
        assert!(
            std::env::var_os("VIBEFLOW_REQUIRE_SETUP").is_none(),
            "VIBEFLOW_DEFAULT_GGUF is not set: the setup of `cargo xtask test` is broken"
        );
        eprintln!("skipped: VIBEFLOW_DEFAULT_GGUF is not set (`cargo xtask test` sets it)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let app = App::open(dir.path()).unwrap();
    app.model_import(&PathBuf::from(gguf), None).unwrap();
    Some(Home { _dir: dir, app: Arc::new(app) })
}

/// Whether `program` runs (`probe` its arguments); under `cargo xtask test` it must.
fn have(program: &str, probe: &[&str], what: &str) -> bool {
    let ok = Command::new(program)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("VIBEFLOW_REQUIRE_SETUP").is_none(),
            "{what} is missing: the setup of `cargo xtask test` is broken"
        );
        eprintln!("skipped: {what} is not installed (`cargo xtask test` installs it)");
    }
    ok
}

fn have_curl() -> bool {
    have("curl", &["--version"], "curl")
}

/// A finished three-step run of project `chat` (big steps: its greedy answers differ).
fn train(app: &App) -> String {
    app.project_new("Chat").unwrap();
    let req = app::ImportRequest {
        project: "chat".into(),
        source: app::ImportSource::Sample("tech-qa".into()),
        name: None,
        mapping: None,
        language: None,
    };
    app.data_import(&req).unwrap();
    let mut config = app::TrainConfig {
        steps: Some(3),
        batch_size: 2,
        max_len: 64,
        ..app::TrainConfig::default()
    };
    config.adamw.lr = 5e-3;
    let run = app::ProjectTrainRequest {
        project: "chat".into(),
        dataset: None,
        eval_rows: 2,
        config,
        resume: app::Resume::No,
    };
    app.train_project(&run, &mut |_| true).unwrap();
    "chat/run-1".into()
}

fn loopback() -> ServeConfig {
    ServeConfig { port: 0, ..ServeConfig::default() }
}

/// `curl` with `args` against `server`'s `path`: the status and the body (JSON when it is).
fn curl(server: &Server, path: &str, args: &[&str]) -> (u16, String) {
    let url = format!("{}{path}", server.url());
    let out = Command::new("curl")
        .args(["-sS", "-N", "-w", "\n%{http_code}", "-H", "Content-Type: application/json"])
        .args(args)
        .arg(&url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

fn post(server: &Server, path: &str, body: &Value) -> (u16, Value) {
    let (status, text) = curl(server, path, &["-d", &body.to_string()]);
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")))
}

/// Checks an OpenAI error body: its status, code and param, every key present.
fn check_error(got: (u16, Value), status: u16, code: Value, param: Value) -> String {
    let (s, body) = got;
    assert_eq!(s, status, "{body}");
    let e = &body["error"];
    for key in ["message", "type", "param", "code"] {
        assert!(e.get(key).is_some(), "no {key} in {body}");
    }
    assert_eq!((e["code"].clone(), e["param"].clone()), (code, param), "{body}");
    e["message"].as_str().unwrap().to_string()
}

fn traces(app: &App) -> Vec<Trace> {
    let mut t = app.trace_list(&TraceFilter { limit: 1000, ..TraceFilter::default() }).unwrap();
    t.reverse();
    t
}

fn chat(content: &str, max_tokens: usize) -> Value {
    json!({"model": BASE, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens, "temperature": 0})
}

/// The `openai` client against a base model, a fine-tuned run and an alias of it: plain and
/// streamed answers with usage, JSON that follows a schema, n choices with logprobs,
/// completions, and the errors it raises as typed exceptions; every request is traced.
#[test]
fn openai_client_talks_to_the_base_a_run_and_an_alias() {
    let Some(home) = home() else { return };
    if !have("python3", &["-c", "import openai"], "python3 with the openai package") {
        return;
    }
    let app = &home.app;
    let run = train(app);
    let system = "You answer in one short sentence.";
    let alias = Alias {
        alias: "support:v1".into(),
        model: run.clone(),
        system: Some(system.into()),
        request_params: RequestParams { temperature: Some(0.0), ..RequestParams::default() },
        ..Alias::default()
    };
    app.alias_save(&alias, false).unwrap();
    let server = Server::start(app.clone(), loopback()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/openai_client.py");
    let out = Command::new("python3")
        .args([script, server.url(), "not-needed", BASE, &run, "support:v1", system])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!(r["models"], json!([run, BASE, "support:v1"]));
    let (base, tuned) = (&r["base"], &r["run"]);
    assert!(!base["text"].as_str().unwrap().is_empty());
    assert_ne!(base["text"], tuned["text"], "the adapter changes the greedy answer");
    assert_eq!(base["usage"]["completion_tokens"], 16);
    assert_eq!(base["finish"], "length");
    let u = &base["usage"];
    assert_eq!(u["total_tokens"], u["prompt_tokens"].as_u64().unwrap() + 16);
    // The alias is the run with its system message and temperature.
    assert_eq!(r["alias"]["text"], r["run_with_system"]["text"]);
    assert_ne!(r["alias"]["text"], tuned["text"], "the alias's system message is used");
    // Streamed: the same greedy text, in pieces, the role first, usage last.
    let s = &r["run_stream"];
    assert_eq!(s["text"], tuned["text"]);
    assert!(s["pieces"].as_u64().unwrap() > 3, "{s}");
    assert_eq!((s["roles"].clone(), s["finish"].clone()), (json!(["assistant"]), json!("length")));
    assert_eq!(s["usage"], tuned["usage"]);
    // The schema is followed: the JSON parses with exactly its keys.
    let js: Value = serde_json::from_str(r["json_schema"]["text"].as_str().unwrap()).unwrap();
    let keys: Vec<_> = js.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["name", "legs"], "{js}");
    assert!(js["name"].is_string() && js["legs"].is_i64(), "{js}");
    assert_eq!(r["json_schema"]["finish"], "stop");
    let jo = &r["json_object"];
    assert_eq!(jo["finish"], "stop", "{jo}");
    let jo: Value = serde_json::from_str(jo["text"].as_str().unwrap()).unwrap();
    assert!(jo.is_object(), "{jo}");
    // n choices, each with its logprobs and two alternatives per token; greedy: the same.
    let n = r["n"].as_array().unwrap();
    assert_eq!(n.len(), 2);
    assert_eq!(n[0], n[1]);
    assert_eq!(n[0]["top"], json!([2, 2, 2, 2]));
    assert!(n[0]["logprobs"].as_array().unwrap().iter().all(|l| l.as_f64().unwrap() <= 0.0));
    assert_eq!(
        n[0]["tokens"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect::<String>(),
        n[0]["text"].as_str().unwrap()
    );
    assert_eq!(r["n_usage"]["completion_tokens"], 8);
    assert_eq!(r["completion"]["text"], r["completion_stream"]);
    assert!(r["completion"]["text"].as_str().unwrap().contains("Paris"), "{}", r["completion"]);
    assert_eq!(
        r["errors"],
        json!({
            "unknown_model": {"status": 404, "code": "model_not_found", "param": "model"},
            "temperature": {"status": 400, "code": null, "param": "temperature"},
        })
    );
    server.stop();

    // Every completion request is traced: model, alias, status, stream, tokens, timings.
    let t = traces(app);
    assert_eq!(t.len(), 12, "{t:#?}");
    let aliased: Vec<_> = t.iter().filter(|t| t.alias.is_some()).collect();
    assert_eq!(aliased.len(), 1);
    assert_eq!(
        (aliased[0].model.as_str(), aliased[0].alias.as_deref()),
        ("support:v1", Some("support:v1"))
    );
    assert_eq!(aliased[0].response, r["alias"]["text"].as_str().unwrap());
    let streamed = t.iter().find(|t| t.stream && t.model == run).unwrap();
    assert_eq!(streamed.response, tuned["text"].as_str().unwrap());
    assert_eq!((streamed.status, streamed.completion_tokens), (200, 16));
    assert!(streamed.ttft_ms <= streamed.latency_ms && streamed.prompt_tokens > 0);
    let failed: Vec<_> = t.iter().filter(|t| t.status >= 400).map(|t| t.status).collect();
    assert_eq!(failed, [404, 400]);
    assert!(
        t.iter().all(|t| t.request.contains("\"messages\"") || t.request.contains("\"prompt\""))
    );
}

/// Every bad request gets OpenAI's error body with the right status, code and param; a good
/// one its answer, plain or streamed.
#[test]
fn curl_gets_answers_and_error_bodies() {
    let Some(home) = home() else { return };
    if !have_curl() {
        return;
    }
    let server = Server::start(home.app.clone(), loopback()).unwrap();
    let (s, body) = post(&server, "/chat/completions", &chat("What is a mutex?", 8));
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["usage"]["completion_tokens"], 8);
    let (s, text) = curl(&server, "/chat/completions", &["-d", &json!({"model": BASE, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "stream": true}).to_string()]);
    assert_eq!(s, 200);
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.last(), Some(&"data: [DONE]"), "{text}");
    assert!(events.iter().all(|e| e.starts_with("data: ")), "{text}");
    let (s, models) = curl(&server, "/models", &[]);
    assert_eq!(s, 200);
    assert_eq!(serde_json::from_str::<Value>(&models).unwrap()["data"][0]["id"], BASE);

    // Tools reach the chat template (an alias's, which writes them before the messages).
    let template = "{% if tools %}Tools: {{ tools | tojson }}\n{% endif %}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}<|im_start|>assistant\n";
    let alias = Alias {
        alias: "tools".into(),
        model: BASE.into(),
        chat_template: Some(template.into()),
        ..Alias::default()
    };
    home.app.alias_save(&alias, false).unwrap();
    let mut b = chat("What is the weather in Paris?", 1);
    b["model"] = json!("tools");
    let (s, plain) = post(&server, "/chat/completions", &b);
    assert_eq!(s, 200, "{plain}");
    b["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let (s, with_tools) = post(&server, "/chat/completions", &b);
    assert_eq!(s, 200, "{with_tools}");
    let prompt = |v: &Value| v["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(prompt(&with_tools) > prompt(&plain) + 10, "{plain} {with_tools}");

    let m = check_error(
        post(
            &server,
            "/chat/completions",
            &json!({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}),
        ),
        404,
        json!("model_not_found"),
        json!("model"),
    );
    assert!(m.contains("gpt-9") && m.contains(BASE), "{m}");
    let bad_json = curl(&server, "/chat/completions", &["-d", "{\"model\": "]);
    let m = check_error(
        (bad_json.0, serde_json::from_str(&bad_json.1).unwrap()),
        400,
        Value::Null,
        Value::Null,
    );
    assert!(m.contains("parse the JSON"), "{m}");
    for (field, value) in [
        ("temperature", json!(2.5)),
        ("top_p", json!(-1)),
        ("n", json!(0)),
        ("max_tokens", json!(0)),
        ("frequency_penalty", json!(3)),
    ] {
        let mut b = chat("x", 4);
        b[field] = value;
        check_error(post(&server, "/chat/completions", &b), 400, Value::Null, json!(field));
    }
    let mut b = chat("x", 4);
    b["max_tokens"] = json!(100_000);
    check_error(post(&server, "/chat/completions", &b), 400, Value::Null, json!("max_tokens"));
    // The context is 8192 tokens: a prompt over it, or a prompt and max_tokens over it.
    let long = "word ".repeat(9000);
    let m = check_error(
        post(&server, "/chat/completions", &chat(&long, 4)),
        400,
        json!("context_length_exceeded"),
        json!("messages"),
    );
    assert!(m.contains("8192"), "{m}");
    check_error(
        post(&server, "/chat/completions", &chat(&"word ".repeat(4000), 8000)),
        400,
        json!("context_length_exceeded"),
        json!("messages"),
    );
    check_error(
        post(&server, "/completions", &json!({"model": BASE, "prompt": long})),
        400,
        json!("context_length_exceeded"),
        json!("prompt"),
    );
    let big = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(big.path(), vec![b' '; 5 << 20]).unwrap();
    let (s, text) =
        curl(&server, "/completions", &["--data-binary", &format!("@{}", big.path().display())]);
    check_error(
        (s, serde_json::from_str(&text).unwrap()),
        413,
        json!("request_too_large"),
        Value::Null,
    );
    let (s, text) = curl(&server, "/embeddings", &["-d", "{}"]);
    check_error((s, serde_json::from_str(&text).unwrap()), 404, json!("unknown_url"), Value::Null);
    let (s, text) = curl(&server, "/chat/completions", &[]);
    check_error(
        (s, serde_json::from_str(&text).unwrap()),
        405,
        json!("method_not_allowed"),
        Value::Null,
    );
    server.stop();
    let statuses: Vec<u16> = traces(&home.app).iter().map(|t| t.status).collect();
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 404, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 413]
    );
}

/// On loopback no key is needed unless asked for; with `require_key` only the keyring's key
/// passes (a missing or wrong one is a 401); another address without a key does not start.
#[test]
fn the_api_key_guards_the_server_when_required() {
    let Some(home) = home() else { return };
    if !have_curl() {
        return;
    }
    let app = &home.app;
    let no_key = Server::start(app.clone(), ServeConfig { host: "0.0.0.0".into(), ..loopback() });
    let key = match app.serve_key_create() {
        Ok(k) => k.key,
        Err(app::Error::Keyring(m)) if std::env::var_os("VIBEFLOW_REQUIRE_SETUP").is_none() => {
            eprintln!("skipped: {m} (`cargo xtask test` provides one)");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let e = no_key.err().expect("no key: refused").to_string();
    assert!(e.contains("0.0.0.0") && e.contains("vibeflow serve key create"), "{e}");
    let open = Server::start(app.clone(), loopback()).unwrap();
    assert!(!open.status().key_required && open.status().key_set);
    assert_eq!(curl(&open, "/models", &[]).0, 200);
    open.stop();

    let server =
        Server::start(app.clone(), ServeConfig { require_key: true, ..loopback() }).unwrap();
    assert!(server.status().key_required);
    let body = chat("Hi", 2).to_string();
    let bearer = |k: &str| format!("Authorization: Bearer {k}");
    let (s, text) = curl(&server, "/chat/completions", &["-d", &body]);
    let m = check_error((s, serde_json::from_str(&text).unwrap()), 401, Value::Null, Value::Null);
    assert!(m.contains("Authorization: Bearer"), "{m}");
    let (s, text) = curl(&server, "/chat/completions", &["-H", &bearer("vf-wrong"), "-d", &body]);
    check_error(
        (s, serde_json::from_str(&text).unwrap()),
        401,
        json!("invalid_api_key"),
        Value::Null,
    );
    assert!(!text.contains(&key));
    let (s, text) = curl(&server, "/models", &["-H", &bearer(&key[..key.len() - 1])]);
    check_error(
        (s, serde_json::from_str(&text).unwrap()),
        401,
        json!("invalid_api_key"),
        Value::Null,
    );
    assert_eq!(curl(&server, "/chat/completions", &["-H", &bearer(&key), "-d", &body]).0, 200);
    assert_eq!(curl(&server, "/models", &["-H", &bearer(&key)]).0, 200);
    // Regenerated: the old key stops working once the server reads the keyring again.
    let fresh = app.serve_key_create().unwrap().key;
    server.reload_key().unwrap();
    assert_eq!(curl(&server, "/models", &["-H", &bearer(&key)]).0, 401);
    assert_eq!(curl(&server, "/models", &["-H", &bearer(&fresh)]).0, 200);
    app.serve_key_revoke().unwrap();
    server.reload_key().unwrap();
    assert_eq!(curl(&server, "/models", &["-H", &bearer(&fresh)]).0, 401);
    server.stop();
    let statuses: Vec<u16> = traces(app).iter().map(|t| t.status).collect();
    assert_eq!(statuses, [401, 401, 200]);
}

/// Many streams at once all finish (batched by the engine); a client that leaves cancels its
/// stream, traced as 499; a stop ends the streams still running.
#[test]
fn many_streams_at_once_complete_and_leaving_clients_cancel() {
    let Some(home) = home() else { return };
    if !have_curl() {
        return;
    }
    let server =
        Server::start(home.app.clone(), ServeConfig { max_batch: 8, ..loopback() }).unwrap();
    let url = format!("{}/chat/completions", server.url());
    let streams = 12;
    let children: Vec<_> = (0..streams)
        .map(|i| {
            let body = json!({"model": BASE, "messages": [{"role": "user", "content": format!("Tell me story number {i}.")}], "max_tokens": 24, "stream": true, "stream_options": {"include_usage": true}});
            Command::new("curl")
                .args(["-sS", "-N", "-H", "Content-Type: application/json", "-d", &body.to_string(), &url])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        let usage: Vec<Value> = text
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter(|v| v["usage"].is_object())
            .collect();
        assert_eq!(usage.len(), 1, "{text}");
        assert!(usage[0]["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    }

    // A client that reads two events and leaves: its long stream is cancelled, not finished.
    let body = json!({"model": BASE, "messages": [{"role": "user", "content": "Write a very long essay."}], "max_tokens": 4000, "temperature": 0, "stream": true});
    let mut c = Command::new("curl")
        .args(["-sS", "-N", "-H", "Content-Type: application/json", "-d", &body.to_string(), &url])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
    let mut seen = 0;
    while seen < 2 {
        if lines.next().unwrap().unwrap().starts_with("data: ") {
            seen += 1;
        }
    }
    c.kill().unwrap();
    c.wait().unwrap();
    drop(lines);
    // A stream that runs when the server stops: it ends (cancelled after the grace period).
    let mut late = Command::new("curl")
        .args(["-sS", "-N", "-H", "Content-Type: application/json", "-d", &body.to_string(), &url])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(late.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.starts_with("data: "), "{first}");
    // Read on, as a client does (a full pipe would stop curl reading the socket).
    let drain = std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let t = Instant::now();
    server.stop();
    assert!(t.elapsed() < Duration::from_secs(15), "stop took {:?}", t.elapsed());
    late.wait().unwrap();
    drain.join().unwrap().unwrap();

    // Traces are found by their request: a finished stream's trace may be written after its
    // client has read [DONE], so the order of the rows is not the order of the requests.
    let t = traces(&home.app);
    assert_eq!(t.len(), streams + 2);
    let (long, short): (Vec<_>, Vec<_>) = t.iter().partition(|t| t.request.contains("long essay"));
    assert!(short.iter().all(|t| t.status == 200 && t.stream && t.completion_tokens > 0));
    assert_eq!(long.len(), 2);
    assert!(long.iter().any(|t| !t.response.is_empty()), "{long:?}");
    for gone in long {
        // The prompt runs to max_tokens when nobody stops it (greedy), so 499 is the cancel.
        assert_eq!(gone.status, 499, "{gone:?}");
        assert!(gone.completion_tokens < 4000, "{gone:?}");
    }
}

/// Models load on first use and stay loaded; beyond the memory budget the least recently used
/// idle one is unloaded; a model larger than the whole budget is refused with a clear error.
#[test]
fn models_load_on_first_use_within_the_memory_budget() {
    let Some(home) = home() else { return };
    if !have_curl() {
        return;
    }
    let app = &home.app;
    let run = train(app);
    let gguf_mb = std::fs::metadata(app.model_path(BASE).unwrap()).unwrap().len() >> 20;
    let tiny =
        Server::start(app.clone(), ServeConfig { memory_budget_mb: gguf_mb / 2, ..loopback() })
            .unwrap();
    let m = check_error(
        post(&tiny, "/chat/completions", &chat("Hi", 2)),
        507,
        json!("memory_budget_exceeded"),
        Value::Null,
    );
    assert!(m.contains("--memory-budget"), "{m}");
    tiny.stop();

    // Room for one model, not two.
    let server =
        Server::start(app.clone(), ServeConfig { memory_budget_mb: gguf_mb * 3 / 2, ..loopback() })
            .unwrap();
    assert!(server.status().loaded.is_empty());
    assert_eq!(server.status().models.len(), 2);
    assert_eq!(post(&server, "/chat/completions", &chat("Hi", 2)).0, 200);
    assert_eq!(server.status().loaded, [BASE]);
    let mut b = chat("Hi", 2);
    b["model"] = json!(run);
    assert_eq!(post(&server, "/chat/completions", &b).0, 200);
    assert_eq!(server.status().loaded, [run.as_str()]);
    assert_eq!(post(&server, "/chat/completions", &chat("Hi", 2)).0, 200);
    assert_eq!(server.status().loaded, [BASE]);
    server.stop();
}
