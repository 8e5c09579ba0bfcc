//! CLI workflows over a temporary home: the `vibeflow` binary as a user runs it.

mod alias;
mod assist;
mod cluster;
mod data;
mod dpo;
mod eval;
mod export;
mod handoff;
mod hardening;
mod pull;
mod score;
mod serve;
mod stress;
mod versions;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home { dir: tempfile::tempdir().unwrap() }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with_input(args, "")
    }

    fn run_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vibeflow"))
            .args(args)
            .env("VIBEFLOW_HOME", self.dir.path())
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs a command expected to succeed and returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}\n{text}"))
    }

    /// Runs a command expected to fail and returns its single stderr line.
    fn err(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} unexpectedly succeeded");
        one_line_error(&out)
    }

    /// A home with the real default model installed, when setup provided it (`cargo xtask test`
    /// always does); otherwise says why the test does nothing.
    fn with_default_model() -> Option<Home> {
        let gguf = default_gguf()?;
        let home = Home::new();
        home.ok(&["models", "import", gguf.to_str().unwrap()]);
        Some(home)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The real default model, when setup provided it; under `cargo xtask test`
/// (`VIBEFLOW_REQUIRE_SETUP`) its absence is a failure, not a skip.
fn default_gguf() -> Option<std::ffi::OsString> {
    let gguf = std::env::var_os("VIBEFLOW_DEFAULT_GGUF");
    if gguf.is_none() {
        assert!(
            std::env::var_os("VIBEFLOW_REQUIRE_SETUP").is_none(),
            "VIBEFLOW_DEFAULT_GGUF is not set: the setup of `cargo xtask test` is broken"
        );
        eprintln!("skipped: VIBEFLOW_DEFAULT_GGUF is not set (`cargo xtask test` sets it)");
    }
    gguf
}

fn one_line_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(stderr.lines().count(), 1, "error is not one line: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
    stderr.trim_end().to_string()
}

#[test]
fn project_new_then_history_shows_the_initial_commit() {
    let home = Home::new();
    let p = home.json(&["project", "new", "Support Bot", "--json"]);
    assert_eq!(p["slug"], "support-bot");
    assert_eq!(p["name"], "Support Bot");
    assert_eq!(p["base_model"], "smollm2-135m-instruct");
    assert_eq!(p["commits"], 1);

    let h = home.json(&["history", "-p", "support-bot", "--json"]);
    let h = h.as_array().unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["summary"], "Create project Support Bot");
    assert_eq!(h[0]["id"], p["head"]);
    assert_eq!(h[0]["id"].as_str().unwrap().len(), 40);
    // The same commit, read back by git itself.
    let on_disk = vcs::history(&home.path().join("projects/support-bot")).unwrap();
    assert_eq!(on_disk[0].id, h[0]["id"].as_str().unwrap());
    assert!(home.path().join("vibeflow.db").is_file());
    for dir in ["models", "objects", "projects", "aliases"] {
        assert!(home.path().join(dir).is_dir(), "{dir}");
    }
}

#[test]
fn list_and_show_read_commands_have_json_and_text() {
    let home = Home::new();
    assert!(home.ok(&["project", "list"]).contains("No projects yet"));
    assert_eq!(home.json(&["project", "list", "--json"]), serde_json::json!([]));
    home.ok(&["project", "new", "Alpha"]);
    home.ok(&["project", "new", "Beta Two"]);
    let list = home.json(&["project", "list", "--json"]);
    let slugs: Vec<_> =
        list.as_array().unwrap().iter().map(|p| p["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, ["alpha", "beta-two"]);
    let text = home.ok(&["project", "list"]);
    assert!(text.contains("beta-two") && text.contains("Beta Two"), "{text}");
    let show = home.json(&["project", "show", "beta-two", "--json"]);
    assert!(show["path"].as_str().unwrap().ends_with("beta-two"));
    assert!(home.ok(&["project", "show", "alpha"]).contains("commits:    1"));
    assert_eq!(home.json(&["models", "list", "--json"]), serde_json::json!([]));
}

#[test]
fn failures_are_one_line_and_non_zero() {
    let home = Home::new();
    home.ok(&["project", "new", "Bot"]);
    let e = home.err(&["project", "new", "bot"]);
    assert!(e.contains("exists already"), "{e}");
    let e = home.err(&["project", "new", "../../escape"]);
    assert!(e.contains("cannot contain"), "{e}");
    let e = home.err(&["project", "new", ""]);
    assert!(e.contains("empty"), "{e}");
    let e = home.err(&["project", "show", "nope"]);
    assert!(e.contains("no project 'nope'"), "{e}");
    let e = home.err(&["history", "-p", "nope", "--json"]);
    assert!(e.contains("no project 'nope'"), "{e}");
    let e = home.err(&["models", "import", "/definitely/missing.gguf"]);
    assert!(e.contains("missing.gguf"), "{e}");
    assert_eq!(std::fs::read_dir(home.path().join("projects")).unwrap().count(), 1);
}

#[test]
fn rm_asks_first() {
    let home = Home::new();
    home.ok(&["project", "new", "Doomed"]);
    let out = home.run_with_input(&["project", "rm", "doomed"], "n\n");
    assert!(!out.status.success());
    assert!(one_line_error(&out).contains("not deleted"));
    // No answer at all (closed stdin) is a no too.
    assert!(!home.run(&["project", "rm", "doomed"]).status.success());
    assert!(home.path().join("projects/doomed").exists());

    let out = home.run_with_input(&["project", "rm", "doomed"], "y\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!home.path().join("projects/doomed").exists());

    home.ok(&["project", "new", "Doomed"]);
    home.ok(&["project", "rm", "doomed", "--yes"]);
    assert_eq!(home.json(&["project", "list", "--json"]), serde_json::json!([]));
}

#[test]
fn every_command_has_help() {
    let home = Home::new();
    for args in [
        &["--help"][..],
        &["project", "--help"],
        &["project", "new", "--help"],
        &["project", "list", "--help"],
        &["project", "show", "--help"],
        &["project", "rm", "--help"],
        &["history", "--help"],
        &["models", "--help"],
        &["models", "list", "--help"],
        &["models", "import", "--help"],
        &["generate", "--help"],
        &["train", "--help"],
        &["data", "--help"],
        &["data", "import", "--help"],
        &["data", "report", "--help"],
        &["data", "fix", "--help"],
        &["data", "split", "--help"],
        &["data", "list", "--help"],
        &["data", "samples", "--help"],
        &["runs", "--help"],
        &["jobs", "--help"],
        &["doctor", "--help"],
        &["bench", "train", "--help"],
        &["bench", "generate", "--help"],
        &["bench", "serve", "--help"],
        &["serve", "--help"],
        &["serve", "key", "create", "--help"],
    ] {
        let text = home.ok(args);
        assert!(text.contains("Usage: vibeflow"), "{args:?}: {text}");
    }
}

#[test]
fn default_model_is_listed_with_figures_from_its_file() {
    let Some(gguf) = default_gguf() else { return };
    let home = Home::new();
    let sha = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
    home.ok(&["models", "import", gguf.to_str().unwrap(), "--sha256", sha]);
    let list = home.json(&["models", "list", "--json"]);
    let m = &list[0];
    assert_eq!(m["id"], "smollm2-135m-instruct");
    assert_eq!(m["architecture"], "llama");
    assert_eq!(m["quantization"], "Q4_1");
    assert_eq!(m["context_length"], 8192);
    assert_eq!(m["chat_template"], true);
    assert_eq!(m["sha256"], sha);
    let text = home.ok(&["models", "list"]);
    assert!(text.contains("smollm2-135m-instruct") && text.contains("embedded"), "{text}");
}

#[test]
fn generate_greedy_answers_from_the_default_model() {
    let Some(home) = Home::with_default_model() else { return };
    let args = ["generate", "--prompt", "What is the capital of France?", "--temperature", "0"];
    let text = home.ok(&[&args[..], &["--max-tokens", "12"]].concat());
    assert!(text.contains("Paris"), "{text}");
    let r = home.json(&[&args[..], &["--max-tokens", "3", "--json"]].concat());
    assert_eq!(r["completion_tokens"], 3);
    assert_eq!(r["finish_reason"], "length");
    // The quantized path: same prompt tokens, without building the f32 model.
    let q = home.json(&[&args[..], &["--max-tokens", "3", "--quantized", "--json"]].concat());
    assert_eq!(
        (q["prompt_tokens"].clone(), q["completion_tokens"].as_u64()),
        (r["prompt_tokens"].clone(), Some(3))
    );
    let e = home.err(&[&args[..], &["--quantized", "--adapter", "/x"]].concat());
    assert!(e.contains("adapter_config.json"), "{e}");
    let e = home.err(&["generate", "--model", "nope", "--prompt", "x"]);
    assert!(e.contains("no model 'nope'"), "{e}");
}

#[test]
fn train_writes_a_peft_adapter_and_resumes() {
    let Some(home) = Home::with_default_model() else { return };
    let data = home.path().join("robot.jsonl");
    let rows: String = ["apple", "river", "window", "garden", "coffee", "bridge"]
        .iter()
        .map(|w| {
            serde_json::json!({"messages": [
                {"role": "user", "content": format!("Say {w} in robot.")},
                {"role": "assistant", "content": format!("BEEP {} BOOP.", w.to_uppercase())},
            ]})
            .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(&data, rows).unwrap();
    let out = home.path().join("run");
    let (data, out) = (data.to_str().unwrap(), out.to_str().unwrap());
    let common = ["train", "--data", data, "--out", out, "--batch", "2", "--lr", "1e-3"];
    let text =
        home.ok(&[&common[..], &["--steps", "2", "--checkpoint-every", "1", "--json"]].concat());
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "two progress events and the summary: {text}");
    assert_eq!(lines[1]["step"], 2);
    assert_eq!(lines[2]["steps"], 2);
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(home.path().join("run/adapter/adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!((cfg["peft_type"].as_str(), cfg["r"].as_u64()), (Some("LORA"), Some(8)));
    assert!(home.path().join("run/adapter/adapter_model.safetensors").is_file());
    // Resuming a finished-at-step-1 checkpoint continues to the new total.
    let text = home.ok(&[&common[..], &["--steps", "3", "--resume", "--json"]].concat());
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["steps"], 3);
    assert_eq!(last["losses"].as_array().unwrap().len(), 3);

    // The adapter applies at generation time, and merged into the weights it says the same.
    let adapter = format!("{out}/adapter");
    let greedy = |merge: &[&str]| {
        let args = ["generate", "--prompt", "Say apple in robot.", "--temperature", "0"];
        let rest = ["--max-tokens", "4", "--adapter", &adapter, "--json"];
        home.json(&[&args[..], &rest[..], merge].concat())
    };
    let r = greedy(&[]);
    assert_eq!(r["completion_tokens"], 4);
    let merged = greedy(&["--merge"]);
    assert_eq!(merged["text"], r["text"], "merged {merged} vs unmerged {r}");
    // On the quantized path the adapter runs beside the GGUF's blocks.
    let q = greedy(&["--quantized"]);
    assert_eq!(q["completion_tokens"], 4, "{q}");
    let e = home.err(&["generate", "--prompt", "x", "--adapter", "/nonexistent/adapter"]);
    assert!(e.contains("adapter_config.json"), "{e}");

    let bad = home.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"messages\": [}\n").unwrap();
    let e = home.err(&["train", "--data", bad.to_str().unwrap(), "--out", out]);
    assert!(e.contains("bad.jsonl:1:"), "{e}");
    let e = home.err(&[&common[..], &["--method", "qlora2"]].concat());
    // Clap refuses it with the choices (the enum is api's `MethodKind`).
    assert!(e.contains("invalid value 'qlora2'") && e.contains("lora, qlora, full"), "{e}");

    // QLoRA: the same adapter format, trained over the GGUF's quantized blocks.
    let qout = home.path().join("qrun");
    let q = [
        "train",
        "--data",
        data,
        "--out",
        qout.to_str().unwrap(),
        "--batch",
        "2",
        "--steps",
        "1",
        "--method",
        "qlora",
    ];
    let last = home.ok(&[&q[..], &["--json"]].concat());
    let summary: serde_json::Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
    assert_eq!(summary["steps"], 1, "{summary}");
    assert!(qout.join("adapter/adapter_model.safetensors").is_file());
    let e = home.err(&[&q[..], &["--quant", "q3"]].concat());
    assert!(e.contains("invalid value 'q3'") && e.contains("q4_0, q4_1, q8_0"), "{e}");
}

#[test]
fn bench_commands_measure_our_side() {
    let Some(home) = Home::with_default_model() else { return };
    let g = home.json(&["bench", "generate", "--tokens", "2", "--rounds", "1", "--json"]);
    assert!(g["ours_f32"][0]["tokens_per_second"].as_f64().unwrap() > 0.0, "{g}");
    assert!(g["ours_quantized"][0]["tokens_per_second"].as_f64().unwrap() > 0.0, "{g}");
    assert_eq!(g["peer"], serde_json::json!([]));
    let t = home.json(&[
        "bench", "train", "--batch", "1", "--seq", "16", "--steps", "1", "--rounds", "1", "--json",
    ]);
    // Both modes by default, each measured; without a peer there is no ratio.
    let modes = t["modes"].as_array().unwrap();
    let on: Vec<bool> =
        modes.iter().map(|m| m["gradient_checkpointing"].as_bool().unwrap()).collect();
    assert_eq!(on, [true, false], "{t}");
    for m in modes {
        assert!(m["ours"][0]["tokens_per_second"].as_f64().unwrap() > 0.0, "{t}");
        assert!(m["ours"][0]["peak_rss_bytes"].as_u64().unwrap() > 500_000_000, "{t}");
    }
    let best = t["best_ours"]["tokens_per_second"].as_f64().unwrap();
    let fastest = modes
        .iter()
        .map(|m| m["ours"][0]["tokens_per_second"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(best, fastest, "{t}");
    assert!(t["speed_ratio"].is_null() && t["best_peer"].is_null());
    assert_eq!(t["shape"]["method"], "lora", "{t}");
    // QLoRA and full fine-tuning run too (one mode each, to stay short); DPO is refused.
    for method in ["qlora", "full"] {
        let t = home.json(&[
            "bench",
            "train",
            "--method",
            method,
            "--checkpointing",
            "on",
            "--batch",
            "1",
            "--seq",
            "16",
            "--steps",
            "1",
            "--rounds",
            "1",
            "--json",
        ]);
        assert_eq!(t["shape"]["method"], method, "{t}");
        assert!(t["best_ours"]["tokens_per_second"].as_f64().unwrap() > 0.0, "{t}");
    }
    let e = home.err(&["bench", "train", "--method", "dpo", "--steps", "1"]);
    assert!(e.contains("DPO"), "{e}");
}
