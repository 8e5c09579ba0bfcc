//! The assistant on the command line: `recommend` returns a full configuration with reasons
//! and a measured estimate; `ask` keeps what was said; `train --estimate` holds against the
//! run it estimates.

use std::time::Instant;

use crate::Home;

fn project(home: &Home, sample: &str) -> String {
    let p =
        home.json(&["project", "new", "Assist", "--json"])["slug"].as_str().unwrap().to_string();
    home.ok(&["data", "import", "--sample", sample, "-p", &p]);
    p
}

#[test]
fn recommend_returns_a_full_configuration_with_reasons_and_an_estimate() {
    let Some(home) = Home::with_default_model() else { return };
    let p = project(&home, "customer-support");
    let r = home.json(&[
        "recommend",
        "-p",
        &p,
        "--goal",
        "reply to customers about billing",
        "--priority",
        "speed",
        // A day's budget: the time check must not hinge on a probe measured while other
        // tests load the machine (the brief keeps it for the second call).
        "--hours",
        "24",
        "--estimate",
        "--json",
    ]);
    assert_eq!(r["task"], "support");
    assert_eq!(r["model"], "smollm2-135m-instruct", "the smallest model for speed");
    assert_eq!(r["feasible"], true, "{r}");
    let plan = &r["plan"];
    assert_eq!(plan["train_rows"], 240);
    let config = &plan["request"]["config"];
    assert_eq!(config["method"]["lora"]["r"], 8);
    assert_eq!(config["epochs"], 3, "the catalog tier's 5 for < 1,000 rows, fewer for speed");
    let settings: Vec<&str> = plan["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["setting"].as_str().unwrap())
        .collect();
    for s in ["Model", "Method", "LoRA rank", "Learning rate", "Epochs", "Max length", "Batch size"]
    {
        assert!(settings.contains(&s), "{s} missing from {settings:?}");
    }
    assert!(plan["checks"].as_array().unwrap().iter().all(|c| c["ok"] == true), "{plan}");
    let e = &r["estimate"];
    assert!(e["seconds"].as_f64().unwrap() > 0.0 && e["peak_memory_bytes"].as_u64().unwrap() > 0);
    assert_eq!(e["cached"], false, "the first estimate measures");
    // Every fact has a source, and the report's agree with the report.
    let facts = r["facts"].as_array().unwrap();
    let fact = |label: &str| facts.iter().find(|f| f["label"] == label).unwrap().clone();
    assert_eq!(fact("training rows")["value"], 240.0);
    assert_eq!(fact("training rows")["source"], "report");
    assert_eq!(fact("measured peak memory")["source"], "probe");
    // The same shape again: the probe is cached.
    let again = home.json(&["recommend", "-p", &p, "--estimate", "--json"]);
    assert_eq!(again["feasible"], true, "{}", again["limits"]);
    assert_eq!(again["estimate"]["cached"], true);
    assert_eq!(again["estimate"]["peak_memory_bytes"], e["peak_memory_bytes"]);
    // Human output: the reasons and the trade-offs.
    let text = home.ok(&["recommend", "-p", &p]);
    assert!(text.contains("Why these settings?") && text.contains("Traded away:"), "{text}");
}

#[test]
fn ask_keeps_the_brief_and_answers_follow_ups() {
    let Some(home) = Home::with_default_model() else { return };
    let p = project(&home, "tech-qa");
    let first = home.json(&[
        "ask",
        "-p",
        &p,
        "I want a bot that answers questions about our docs",
        "--json",
    ]);
    assert_eq!(first["recommendation"]["task"], "qa");
    assert_eq!(first["brief"]["goal"], "I want a bot that answers questions about our docs");
    let speed = home.json(&["ask", "-p", &p, "speed please, under 30 minutes", "--json"]);
    assert_eq!(speed["brief"]["priority"], "speed");
    assert_eq!(speed["brief"]["max_hours"], 0.5);
    assert_eq!(speed["brief"]["goal"], first["brief"]["goal"], "kept from the first message");
    let why = home.ok(&["ask", "-p", &p, "why not full fine-tuning?"]);
    assert!(why.starts_with("Full fine-tuning trains every one of"), "{why}");
    let gpu = home.json(&["ask", "-p", &p, "what if I had a 24 GB GPU?", "--json"]);
    assert_eq!(gpu["brief"]["target"]["memory_bytes"], 24_000_000_000u64);
    assert!(gpu["text"].as_str().unwrap().starts_with("Planning for a GPU with 24.0 GB"), "{gpu}");
    // A model too large for the budget is said to be, with what would change it.
    let big = home.json(&[
        "recommend",
        "-p",
        &p,
        "--model",
        "mistral-7b-instruct-v0.3",
        "--gpu",
        "8",
        "--json",
    ]);
    assert_eq!(big["feasible"], false);
    let limits = big["limits"].to_string();
    assert!(limits.contains("smaller model") && limits.contains("GPU"), "{limits}");
    home.ok(&["recommend", "-p", &p, "--reset"]);
    let reset = home.json(&["ask", "-p", &p, "hello", "--json"]);
    assert_eq!(reset["brief"]["priority"], "balanced");
}

/// The estimate against the run it estimates. Other tests run beside this one, so the time
/// is checked loosely here; `vibeflow bench estimate` measures the ±20 % on a quiet machine.
#[test]
fn train_estimate_holds_against_the_run() {
    let Some(home) = Home::with_default_model() else { return };
    let p = project(&home, "customer-support");
    let args = [
        "train",
        "-p",
        &p,
        "--steps",
        "6",
        "--batch",
        "2",
        "--max-len",
        "128",
        "--eval-every",
        "3",
        "--eval-rows",
        "4",
        "--checkpoint-every",
        "3",
    ];
    let mut dry = args.to_vec();
    dry.extend(["--estimate", "--dry-run", "--json"]);
    let e: serde_json::Value = serde_json::from_str(home.ok(&dry).trim()).unwrap();
    assert!(
        home.json(&["runs", "-p", &p, "--json"]).as_array().unwrap().is_empty(),
        "a dry run trains nothing"
    );
    let seconds = e["seconds"].as_f64().unwrap();
    let parts =
        ["train_seconds", "eval_seconds", "overhead_seconds"].map(|k| e[k].as_f64().unwrap());
    assert!((parts.iter().sum::<f64>() - seconds).abs() < 1e-6, "{e}");
    let t = Instant::now();
    let mut run = args.to_vec();
    run.push("--json");
    let out = home.ok(&run);
    let actual = t.elapsed().as_secs_f64();
    assert!(out.lines().last().unwrap().contains("\"status\":\"done\""), "{out}");
    assert!(
        (0.33..3.0).contains(&(seconds / actual)),
        "estimated {seconds:.1} s, ran {actual:.1} s"
    );
    // The run's own memory reports (once a step) stay under the estimated peak, with room.
    let peak = e["peak_memory_bytes"].as_f64().unwrap();
    let seen = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["memory_bytes"].as_f64())
        .fold(0.0, f64::max);
    assert!(seen > 0.0 && (seen / peak - 1.0).abs() < 0.3, "estimated {peak}, seen {seen}");
}
