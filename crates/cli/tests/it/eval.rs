//! Evaluation and the arena on the command line: a short run evaluated against its base with
//! a report, three models compared at once, the votes turned into ratings, preference pairs
//! and a DPO run.

use crate::Home;

fn trained(home: &Home, runs: usize) -> String {
    let p =
        home.json(&["project", "new", "Judge me", "--json"])["slug"].as_str().unwrap().to_string();
    home.ok(&["data", "import", "--sample", "tech-qa", "-p", &p]);
    for _ in 0..runs {
        home.ok(&[
            "train",
            "-p",
            &p,
            "--steps",
            "3",
            "--batch",
            "2",
            "--max-len",
            "64",
            "--lr",
            "5e-3",
        ]);
    }
    p
}

#[test]
fn a_run_is_evaluated_against_base_with_a_report() {
    let Some(home) = Home::with_default_model() else { return };
    let p = trained(&home, 1);
    let e = home.json(&[
        "eval",
        "-p",
        &p,
        "--run",
        "run-1",
        "--limit",
        "4",
        "--max-tokens",
        "12",
        "--json",
    ]);
    assert_eq!(e["id"], "eval-1");
    assert_eq!(e["candidate"]["model"]["run"], "run-1");
    assert_eq!(e["baseline"]["model"], "base");
    assert_eq!(e["examples"].as_array().unwrap().len(), 4);
    let score = e["candidate"]["overall"]["score"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&score));
    let listed = home.json(&["evals", "-p", &p, "--json"]);
    assert_eq!(listed[0]["id"], "eval-1");
    let report = home.ok(&["evals", "-p", &p, "eval-1", "--report"]);
    let html = std::fs::read_to_string(report.trim()).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.contains("<svg"));
    let history = home.ok(&["history", "-p", &p]);
    assert!(history.contains("Evaluate run-1 vs base model"), "{history}");
    let human = home.ok(&["evals", "-p", &p, "eval-1"]);
    assert!(human.contains("token F1") && human.contains("saved as eval-1"), "{human}");
    // A run that does not exist, an evaluation that does not exist: one clear line each.
    assert_eq!(
        home.err(&["eval", "-p", &p, "--run", "run-9"]),
        format!("error: no run 'run-9' in project '{p}'")
    );
    assert_eq!(home.err(&["evals", "-p", &p, "eval-7"]), "error: no evaluation 'eval-7'");
}

#[test]
fn three_models_compared_at_once_and_votes_train_the_next_run() {
    let Some(home) = Home::with_default_model() else { return };
    let p = trained(&home, 2);
    let ask = |prompt: &str, extra: &[&str]| {
        let mut args = vec![
            "compare",
            "-p",
            &p,
            "--prompt",
            prompt,
            "--max-tokens",
            "24",
            "--temperature",
            "0",
            "--json",
        ];
        args.extend_from_slice(extra);
        home.json(&args)
    };
    let s = ask(
        "What does a load balancer do?",
        &["--models", "base,run-1,run-2", "--prefer", "2", "--why", "clearer"],
    );
    assert_eq!(s["id"], "arena-1");
    let turn = &s["turns"][0];
    let answers = turn["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 3);
    let spans: Vec<(u64, u64, u64)> = answers
        .iter()
        .map(|a| {
            (
                a["start_ms"].as_u64().unwrap(),
                a["first_token_ms"].as_u64().unwrap(),
                a["end_ms"].as_u64().unwrap(),
            )
        })
        .collect();
    eprintln!("arena timings (start, first token, end) ms: {spans:?}");
    let last_start = spans.iter().map(|s| s.0).max().unwrap();
    let first_end = spans.iter().map(|s| s.2).min().unwrap();
    assert!(last_start < first_end, "the three answered at the same time: {spans:?}");
    assert_eq!(turn["vote"]["choice"], "prefer");
    assert_eq!(turn["why"], "clearer");
    let s = ask("And a reverse proxy?", &["--session", "arena-1", "--prefer", "3"]);
    assert_eq!(s["turns"].as_array().unwrap().len(), 2);
    ask("Thanks!", &["--session", "arena-1", "--prefer", "tie"]);

    let r = home.json(&["ratings", "-p", &p, "--json"]);
    assert_eq!(r["votes"], 3);
    assert_eq!(r["ratings"].as_array().unwrap().len(), 3);
    let x = home.json(&["prefs", "export", "-p", &p, "--json"]);
    assert_eq!((x["pairs"].as_u64(), x["skipped"].as_u64()), (Some(4), Some(1)));
    let pairs = std::fs::read_to_string(
        home.path().join("projects").join(&p).join("prefs/preferences.jsonl"),
    )
    .unwrap();
    assert_eq!(pairs.lines().count(), 4);
    // The loop closes: a DPO run on the votes, evaluated against the run it started from.
    home.ok(&[
        "train",
        "-p",
        &p,
        "--method",
        "dpo",
        "--steps",
        "2",
        "--batch",
        "2",
        "--max-len",
        "96",
    ]);
    let e = home.json(&[
        "eval",
        "-p",
        &p,
        "--run",
        "run-3",
        "--vs",
        "run-1",
        "--limit",
        "2",
        "--max-tokens",
        "8",
        "--json",
    ]);
    assert_eq!(
        (e["candidate"]["model"]["run"].as_str(), e["baseline"]["model"]["run"].as_str()),
        (Some("run-3"), Some("run-1"))
    );
    assert_eq!(e["dataset"], "tech-qa");
    let e = home.err(&["compare", "-p", &p, "--models", "base", "--prompt", "hi"]);
    assert_eq!(e, "error: the arena compares 2 to 4 models, got 1");
    let e = home.err(&[
        "compare",
        "-p",
        &p,
        "--models",
        "base,run-1",
        "--prompt",
        "hi",
        "--prefer",
        "9",
    ]);
    assert_eq!(e, "error: --prefer takes an answer's number (1 to 4), `tie` or `bad`, got \"9\"");
}
