//! `vibeflow alias` (create → list → show → clone → rm, a bad alias refused) and
//! `vibeflow traces` (recorded → list → stats → a project dataset committed).

use crate::Home;

#[test]
fn aliases_are_created_listed_shown_cloned_and_removed() {
    let Some(home) = Home::with_default_model() else { return };
    let template = home.path().join("chatml.jinja");
    std::fs::write(
        &template,
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
    )
    .unwrap();
    let a = home.json(&[
        "alias",
        "create",
        "support-bot:v2",
        "--model",
        "smollm2-135m-instruct",
        "--temperature",
        "0.2",
        "--top-p",
        "0.9",
        "--frequency-penalty",
        "-0.5",
        "--max-tokens",
        "128",
        "--stop",
        "<|im_end|>",
        "--stop",
        "END",
        "--seed",
        "7",
        "--system",
        "You answer support questions.",
        "--n-ctx",
        "2048",
        "--template",
        template.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(a["alias"], "support-bot:v2");
    assert_eq!(a["request_params"]["frequency_penalty"], -0.5);
    assert_eq!(a["request_params"]["stop"], serde_json::json!(["<|im_end|>", "END"]));
    assert_eq!(a["context_params"]["n_ctx"], 2048);
    assert!(a["chat_template"].as_str().unwrap().starts_with("{% for m in messages %}"));
    // Bodhi's file: the name made path-safe.
    let yaml = std::fs::read_to_string(home.path().join("aliases/support-bot--v2.yaml")).unwrap();
    assert!(yaml.contains("alias: support-bot:v2\n"), "{yaml}");

    let list = home.ok(&["alias", "list"]);
    assert!(list.starts_with("ALIAS"), "{list}");
    assert!(list.contains("support-bot:v2  smollm2-135m-instruct"), "{list}");
    assert!(list.contains("temperature=0.2"), "{list}");
    let shown = home.ok(&["alias", "show", "support-bot:v2"]);
    assert!(shown.contains("system: You answer support questions."), "{shown}");
    assert_eq!(home.json(&["alias", "show", "support-bot:v2", "--json"]), a);

    let b = home.json(&["alias", "clone", "support-bot:v2", "support-bot:v3", "--json"]);
    assert_eq!(b["alias"], "support-bot:v3");
    assert_eq!(b["request_params"], a["request_params"]);
    let names: Vec<String> = home
        .json(&["alias", "list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alias"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["support-bot:v2", "support-bot:v3"]);

    // Refused, each problem naming its field; a taken name; nothing written.
    let e = home.err(&[
        "alias",
        "create",
        "bad",
        "--model",
        "smollm2-135m-instruct",
        "--temperature",
        "3",
        "--n-ctx",
        "100000",
    ]);
    assert_eq!(
        e,
        "error: alias 'bad' is not valid: request_params.temperature must be between 0 and 2, got 3; \
         context_params.n_ctx is 100000 but the model's context is 8192: use at most 8192"
    );
    let e = home.err(&["alias", "create", "ghost", "--model", "no-such-model"]);
    assert!(e.contains("model: 'no-such-model' is neither an installed model"), "{e}");
    let e = home.err(&["alias", "clone", "support-bot:v2", "support-bot:v3"]);
    assert_eq!(e, "error: alias 'support-bot:v3' exists already: choose another name, or edit it");
    assert!(!home.path().join("aliases/bad.yaml").exists());
    // --replace edits.
    home.ok(&["alias", "create", "support-bot:v3", "-m", "smollm2-135m-instruct", "--replace"]);
    let b = home.json(&["alias", "show", "support-bot:v3", "--json"]);
    assert_eq!(b["request_params"], serde_json::json!({}));

    assert_eq!(home.ok(&["alias", "rm", "support-bot:v3"]).trim(), "Removed alias support-bot:v3");
    let e = home.err(&["alias", "show", "support-bot:v3"]);
    assert_eq!(e, "error: no alias 'support-bot:v3': see `vibeflow alias list`");
    assert_eq!(home.json(&["alias", "list", "--json"]).as_array().unwrap().len(), 1);
}

#[test]
fn traces_are_listed_summed_and_become_a_committed_dataset() {
    let Some(home) = Home::with_default_model() else { return };
    home.ok(&["project", "new", "Support"]);
    // Recorded as the server records them (through the app; the server's own tests send
    // real requests).
    let app = app::App::open(home.path()).unwrap();
    let mut ids = Vec::new();
    for (i, (q, latency)) in
        [("How do I reset my password?", 120), ("Where is my invoice?", 80)].into_iter().enumerate()
    {
        let t = api::serve::Trace {
            created_at: 1_796_601_600 + i as i64,
            endpoint: "/v1/chat/completions".into(),
            model: "support-bot".into(),
            request: serde_json::json!({
                "model": "support-bot",
                "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": q}],
                "api_key": "sk-secret",
            })
            .to_string(),
            response: format!("Answer {i}: see the help page."),
            status: 200,
            latency_ms: latency,
            ttft_ms: 20,
            prompt_tokens: 15,
            completion_tokens: 8,
            ..Default::default()
        };
        ids.push(app.trace_record(&t).unwrap().to_string());
    }
    let refused = api::serve::Trace {
        endpoint: "/v1/chat/completions".into(),
        model: "nope".into(),
        request: "{\"model\": \"nope\"}".into(),
        response: "no model 'nope'".into(),
        status: 404,
        latency_ms: 1,
        ..Default::default()
    };
    let bad = app.trace_record(&refused).unwrap().to_string();
    drop(app);

    let list = home.ok(&["traces", "list"]);
    assert!(
        list.contains(
            "2026-12-07 00:00:01  support-bot     200      80ms      23  Where is my invoice?"
        ),
        "{list}"
    );
    let ok = home.json(&["traces", "list", "--status", "ok", "--text", "password", "--json"]);
    let ok = ok.as_array().unwrap();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0]["id"].to_string(), ids[0]);
    assert!(!ok[0]["request"].as_str().unwrap().contains("sk-secret"), "the key is not kept");
    let errors = home.json(&["traces", "list", "--status", "error", "--json"]);
    assert_eq!(errors.as_array().unwrap().len(), 1);
    let shown = home.ok(&["traces", "show", &ids[1]]);
    assert!(
        shown.contains("latency 80 ms, first token 20 ms, 15 prompt + 8 generated tokens"),
        "{shown}"
    );
    let stats = home.json(&["traces", "stats", "--json"]);
    assert_eq!(
        stats,
        serde_json::json!({"requests": 3, "errors": 1, "prompt_tokens": 30, "completion_tokens": 16,
            "p50_ms": 80, "p95_ms": 120, "ttft_p50_ms": 20})
    );
    home.ok(&["traces", "rate", &ids[0], "good", "--tag", "gold"]);
    let gold = home.json(&["traces", "list", "--tag", "gold", "--json"]);
    assert_eq!(gold[0]["feedback"], 1);

    let e = home.err(&["traces", "dataset", "-p", "support", &ids[0], &bad]);
    assert!(
        e.starts_with(&format!(
            "error: trace {bad} cannot become a dataset row: its request failed (status 404)"
        )),
        "{e}"
    );
    let d = home.json(&[
        "traces",
        "dataset",
        "-p",
        "support",
        "--name",
        "from-traces",
        &ids[0],
        &ids[1],
        "--json",
    ]);
    assert_eq!(
        (d["name"].as_str(), d["version"].as_u64(), d["kept"].as_u64()),
        (Some("from-traces"), Some(1), Some(2))
    );
    let history = home.json(&["history", "-p", "support", "--json"]);
    assert_eq!(history[0]["id"], d["commit"]);
    assert_eq!(history[0]["summary"], "Import dataset from-traces v1 from traces.jsonl: 2 rows");
    let rows = std::fs::read_to_string(home.path().join("projects/support/data/from-traces.jsonl"))
        .unwrap();
    let first: serde_json::Value = serde_json::from_str(rows.lines().next().unwrap()).unwrap();
    let roles: Vec<&str> =
        first["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant"]);
}
