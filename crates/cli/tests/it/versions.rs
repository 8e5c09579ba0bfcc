//! Versions: finished runs are tagged v1, v2 …; diff between two versions; rollback restores an
//! earlier version as a new commit and rewrites nothing.

use crate::Home;

fn train(home: &Home, p: &str) -> serde_json::Value {
    let out = home.ok(&[
        "train",
        "-p",
        p,
        "--steps",
        "2",
        "--batch",
        "1",
        "--max-len",
        "64",
        "--eval-rows",
        "2",
        "--json",
    ]);
    serde_json::from_str(out.lines().last().unwrap()).unwrap()
}

fn datasets(home: &Home, p: &str) -> Vec<(u64, String, bool)> {
    let list = home.json(&["data", "list", "-p", p, "--json"]);
    list.as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let sha = d["sha256"].as_str().unwrap().to_string();
            (d["version"].as_u64().unwrap(), sha, d["current"].as_bool().unwrap())
        })
        .collect()
}

#[test]
fn runs_are_tagged_and_rollback_adds_a_version_that_restores_data_and_model() {
    let Some(home) = Home::with_default_model() else { return };
    let p =
        home.json(&["project", "new", "Versions", "--json"])["slug"].as_str().unwrap().to_string();
    assert!(home.json(&["project", "show", &p, "--json"])["model_run"].is_null());
    home.ok(&["data", "import", "--sample", "tech-qa", "-p", &p]);
    let first = train(&home, &p);
    assert_eq!((first["id"].as_str(), first["tag"].as_str()), (Some("run-1"), Some("v1")));
    assert_eq!(home.json(&["project", "show", &p, "--json"])["model_run"], "run-1");
    // A second dataset version, and a second run on it.
    home.ok(&["data", "fix", "-p", &p, "--max-tokens", "120"]);
    let v1_sha = datasets(&home, &p)[0].1.clone();
    let second = train(&home, &p);
    assert_eq!((second["id"].as_str(), second["tag"].as_str()), (Some("run-2"), Some("v2")));
    let history = home.ok(&["history", "-p", &p]);
    assert!(history.contains("(v1)  Train run-1"), "{history}");
    assert!(history.contains("(v2)  Train run-2"), "{history}");

    let diff = home.json(&["diff", "-p", &p, "v1", "v2", "--json"]);
    let files: Vec<(&str, &str)> = diff["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap(), f["status"].as_str().unwrap()))
        .collect();
    let name = first["dataset"].as_str().unwrap();
    let manifest = format!("data/{name}.toml");
    assert_eq!(
        files,
        [
            (manifest.as_str(), "modified"),
            ("runs/run-2/run.toml", "added"),
            ("vibeflow.toml", "modified")
        ],
        "{diff}"
    );
    let text = home.ok(&["diff", "-p", &p, "v1", "v2"]);
    assert!(text.contains("-run = \"run-1\"\n+run = \"run-2\""), "{text}");

    let before = home.json(&["history", "-p", &p, "--json"]).as_array().unwrap().len();
    let r = home.json(&["rollback", "-p", &p, "v1", "--json"]);
    assert_eq!(r["model_run"], "run-1");
    let restored: Vec<_> =
        r["restored"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(restored, [format!("dataset {name} v3 (the content of v1)"), "model run-1".into()]);
    // One commit more; v2 is still there (nothing rewritten).
    let history = home.json(&["history", "-p", &p, "--json"]);
    assert_eq!(history.as_array().unwrap().len(), before + 1);
    assert_eq!(history[0]["id"], r["commit"]);
    assert!(history[0]["summary"].as_str().unwrap().starts_with("Roll back to v1 ("), "{history}");
    assert!(history.as_array().unwrap().iter().any(|c| c["tags"][0] == "v2"));
    // The new current version holds v1's rows.
    let d = datasets(&home, &p);
    assert_eq!(d.last().unwrap(), &(3, v1_sha, true), "{d:?}");
    assert_eq!(home.json(&["project", "show", &p, "--json"])["model_run"], "run-1");
    home.ok(&["doctor"]);
    // Nothing left to restore; unknown versions are named.
    let e = home.err(&["rollback", "-p", &p, "v1"]);
    assert!(e.contains("v1 has the same datasets and model as the current version"), "{e}");
    let e = home.err(&["rollback", "-p", &p, "v9"]);
    assert!(e.contains("no version 'v9' in project 'versions': name a tag"), "{e}");
    // And v2 comes back the same way.
    let r = home.json(&["rollback", "-p", &p, "v2", "--json"]);
    assert_eq!(r["model_run"], "run-2");
    assert_eq!(datasets(&home, &p).last().unwrap().0, 4);
}

#[test]
fn plan_recommends_a_valid_run_with_reasons_checks_and_a_measured_estimate() {
    let Some(home) = Home::with_default_model() else { return };
    home.ok(&["project", "new", "Plan"]);
    let e = home.json(&["plan", "-p", "plan", "--json"]);
    let failed: Vec<_> =
        e["checks"].as_array().unwrap().iter().filter(|c| c["ok"] == false).collect();
    assert_eq!(failed.len(), 1, "{e}");
    assert_eq!(failed[0]["id"], "dataset");
    home.ok(&["data", "import", "--sample", "tech-qa", "-p", "plan"]);
    let plan = home.json(&["plan", "-p", "plan", "--estimate", "--json"]);
    assert!(plan["checks"].as_array().unwrap().iter().all(|c| c["ok"] == true), "{plan}");
    // 240 training rows: the card's tier for up to 1,000 rows (5 epochs, the PRD's 5–10), batch
    // 4, the rows' 95th percentile as max length.
    let c = &plan["request"]["config"];
    assert_eq!((c["epochs"].as_u64(), c["batch_size"].as_u64()), (Some(5), Some(4)));
    assert_eq!(plan["train_rows"], 240);
    assert_eq!(plan["total_steps"], 300);
    assert_eq!(c["max_len"].as_u64().unwrap() % 64, 0);
    let settings: Vec<_> = plan["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["setting"].as_str().unwrap())
        .collect();
    for s in ["Method", "LoRA rank", "Learning rate", "Epochs", "Max length", "Batch size"] {
        assert!(settings.contains(&s), "{settings:?}");
    }
    let est = &plan["estimate"];
    let (tps, secs) =
        (est["tokens_per_second"].as_f64().unwrap(), est["seconds"].as_f64().unwrap());
    assert!(tps > 1.0 && secs > 0.0, "{est}");
    // The training steps run the tokens at the speed; evaluations and loading add to them.
    let tokens = est["tokens"].as_f64().unwrap();
    let train = est["train_seconds"].as_f64().unwrap();
    assert!((train - tokens / tps).abs() < 1e-6 * train.max(1.0), "{est}");
    let parts = ["train_seconds", "eval_seconds", "overhead_seconds"];
    let sum: f64 = parts.iter().map(|k| est[k].as_f64().unwrap()).sum();
    assert!((secs - sum).abs() < 1e-6 * secs && est["eval_seconds"].as_f64().unwrap() > 0.0);
    assert!(est["peak_memory_bytes"].as_u64().unwrap() > 100_000_000, "{est}");
    // The recommended request is one `train` accepts as it is.
    let req: app::ProjectTrainRequest = serde_json::from_value(plan["request"].clone()).unwrap();
    assert!(req.problems().is_empty());
}
