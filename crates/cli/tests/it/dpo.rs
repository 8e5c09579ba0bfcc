//! DPO: `train --method dpo` on a project's preference file (a normal run of the project) and
//! on a file with `--data`: the loss falls from log 2, the chosen-over-rejected margin grows,
//! the adapter loads for generation; malformed lines and missing files are named.

use std::path::Path;

use crate::Home;

/// Preference pairs in TRL's formats: the chosen answer talks like a pirate, the rejected one
/// does not. Even rows use the conversational form, odd rows the plain one.
fn preferences(n: usize) -> String {
    let things = [
        ("the sea", "blue"),
        ("grass", "green"),
        ("the sun", "yellow"),
        ("snow", "white"),
        ("coal", "black"),
        ("a cherry", "red"),
        ("an orange", "orange"),
        ("a plum", "purple"),
        ("sand", "beige"),
        ("a cloud", "grey"),
        ("a rose", "red"),
        ("the night sky", "dark blue"),
    ];
    (0..n)
        .map(|i| {
            let (thing, colour) = things[i % things.len()];
            let prompt = format!("What colour is {thing}?");
            let chosen = format!("Arr, {thing} be {colour}, matey!");
            let rejected = format!("{thing} is {colour}.");
            let line = if i % 2 == 0 {
                serde_json::json!({
                    "prompt": [{"role": "user", "content": prompt}],
                    "chosen": [{"role": "assistant", "content": chosen}],
                    "rejected": [{"role": "assistant", "content": rejected}],
                })
            } else {
                serde_json::json!({"prompt": prompt, "chosen": chosen, "rejected": rejected})
            };
            line.to_string() + "\n"
        })
        .collect()
}

/// `train … --json`'s progress lines and its last line.
fn progress_and_result(text: &str) -> (Vec<serde_json::Value>, serde_json::Value) {
    let mut lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let last = lines.pop().unwrap();
    (lines, last)
}

#[test]
fn dpo_run_of_a_project_lowers_its_loss_widens_the_margin_and_its_adapter_loads() {
    let Some(home) = Home::with_default_model() else { return };
    let p =
        home.json(&["project", "new", "Pirate", "--json"])["slug"].as_str().unwrap().to_string();
    // Without the file `prefs export` writes, the run says where it looked and what to do.
    let e = home.err(&["train", "-p", &p, "--method", "dpo", "--steps", "1"]);
    assert!(e.contains("prefs/preferences.jsonl") && e.contains("prefs export"), "{e}");
    let e = home.err(&["train", "-p", &p, "--prefs", "x.jsonl", "--steps", "1"]);
    assert!(e.contains("--method dpo"), "{e}");

    let dir = home.path().join("projects").join(&p);
    std::fs::create_dir_all(dir.join("prefs")).unwrap();
    std::fs::write(dir.join("prefs/preferences.jsonl"), preferences(12)).unwrap();
    let args = ["train", "-p", &p, "--method", "dpo", "--beta", "0.1", "--steps", "8"];
    let rest = ["--batch", "2", "--lr", "5e-3", "--max-len", "96", "--checkpoint-every", "0"];
    let text = home.ok(&[&args[..], &rest[..], &["--json"]].concat());
    let (steps, run) = progress_and_result(&text);
    assert_eq!(steps.len(), 8, "{text}");
    let loss = |s: &serde_json::Value| s["loss"].as_f64().unwrap();
    let margin = |s: &serde_json::Value| s["preference"]["margin"].as_f64().unwrap();
    // The fresh adapter is the base: the first step's loss is log 2 and its margin 0.
    assert!((loss(&steps[0]) - 2f64.ln()).abs() < 1e-4, "{}", steps[0]);
    assert!(margin(&steps[0]).abs() < 1e-4, "{}", steps[0]);
    let last = &steps[7];
    assert!(loss(last) < loss(&steps[0]) - 0.1, "losses: {text}");
    assert!(margin(last) > margin(&steps[0]) + 0.2, "margins: {text}");
    assert!(last["preference"]["accuracy"].as_f64().unwrap() > 0.5, "{last}");

    // A normal run of the project: recorded, tagged, the project's model from now on.
    assert_eq!((run["id"].as_str(), run["status"].as_str()), (Some("run-1"), Some("done")));
    assert_eq!(run["dataset"], "prefs/preferences.jsonl");
    let summary = &run["summary"];
    let (before, after) = (
        summary["eval_loss_before"].as_f64().unwrap(),
        summary["eval_loss_after"].as_f64().unwrap(),
    );
    assert!((before - 2f64.ln()).abs() < 1e-4 && after < before, "held-out {before} -> {after}");
    let runs = home.json(&["runs", "-p", &p, "--json"]);
    assert_eq!(runs[0]["method"], "dpo");
    assert_eq!(home.json(&["project", "show", &p, "--json"])["model_run"], "run-1");
    let history = home.ok(&["history", "-p", &p]);
    assert!(history.contains("Train run-1 (DPO) on prefs/preferences.jsonl"), "{history}");

    // The adapter loads for generation (as the Playground loads it).
    let adapter = dir.join("runs/run-1/adapter");
    let reply = home.json(&[
        "generate",
        "--prompt",
        "What colour is the sea?",
        "--temperature",
        "0",
        "--max-tokens",
        "6",
        "--adapter",
        adapter.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(reply["completion_tokens"], 6, "{reply}");
}

#[test]
fn dpo_on_a_file_trains_and_names_malformed_lines() {
    let Some(home) = Home::with_default_model() else { return };
    let prefs = home.path().join("prefs.jsonl");
    let out = home.path().join("run");
    let (file, dir) = (prefs.to_str().unwrap(), out.to_str().unwrap());
    let train = |extra: &[&str]| -> String {
        let args = ["train", "--data", file, "--out", dir, "--method", "dpo", "--steps", "2"];
        let all = [&args[..], &["--batch", "2", "--max-len", "96"], extra].concat();
        home.ok(&all)
    };
    std::fs::write(&prefs, preferences(2) + "{\"prompt\": \"Hi\", \"chosen\": \"Hello\"}\n")
        .unwrap();
    let args = ["train", "--data", file, "--out", dir, "--method", "dpo", "--steps", "2"];
    let e = home.err(&args);
    assert!(e.contains("prefs.jsonl:3: no \"rejected\""), "{e}");

    std::fs::write(&prefs, preferences(4)).unwrap();
    let text = train(&["--json"]);
    let (steps, summary) = progress_and_result(&text);
    assert_eq!(steps.len(), 2, "{text}");
    assert!(steps.iter().all(|s| s["preference"]["accuracy"].is_f64()), "{text}");
    assert_eq!(summary["steps"], 2);
    assert!(Path::new(dir).join("adapter/adapter_model.safetensors").is_file());
    // --prefs is the same file by its own name.
    let e = home.err(&["train", "--prefs", file, "--out", dir, "--method", "dpo", "--beta", "0"]);
    assert!(e.contains("DPO beta"), "{e}");
}
