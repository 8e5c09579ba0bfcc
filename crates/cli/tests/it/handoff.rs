//! A run handed to LLaMA-Factory or Axolotl (`export --format llamafactory|axolotl`) and an
//! adapter trained elsewhere taken back (`runs import`). LLaMA-Factory itself trains from such
//! a folder in `scripts/llamafactory/roundtrip.sh` (it installs a large Python stack); here the
//! output folder a trainer writes is laid out around an adapter trained here, so the imported
//! run's numbers can be checked against the run that made the adapter.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::Home;

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The YAML as PyYAML reads it (both trainers read their settings with it), as JSON.
fn pyyaml(path: &Path) -> Value {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(path)
        .output()
        .expect("python3 runs (setup installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_run_goes_to_llamafactory_and_axolotl_and_an_adapter_comes_back_as_a_run() {
    let Some(home) = Home::with_default_model() else { return };
    let p = home.json(&["project", "new", "Lab", "--json"])["slug"].as_str().unwrap().to_string();
    home.ok(&["data", "import", "--sample", "tech-qa", "-p", &p]);
    let e = home.err(&["export", "-p", &p, "--format", "peft"]);
    assert!(e.contains("--run is required"), "{e}");
    let e = home.err(&["export", "-p", &p, "--format", "llamafactory", "--run", "run-9"]);
    assert!(e.contains("no run 'run-9'"), "{e}");

    // LLaMA-Factory: the recommended settings on the current dataset.
    let tmp = tempfile::tempdir().unwrap();
    let lf = tmp.path().join("lf");
    let r = home.json(&[
        "export",
        "-p",
        &p,
        "--format",
        "llamafactory",
        "--out",
        lf.to_str().unwrap(),
        "--json",
    ]);
    let files: Vec<&str> =
        r["files"].as_array().unwrap().iter().map(|f| f[0].as_str().unwrap()).collect();
    for f in [
        "README.md",
        "dataset_info.json",
        "ds_z2_config.json",
        "ds_z3_config.json",
        "fsdp_config.yaml",
        "llamafactory.yaml",
        "test.jsonl",
        "train.jsonl",
        "vibeflow.json",
    ] {
        assert!(files.contains(&f), "{f} in {files:?}");
    }
    assert!(!lf.join("base").exists(), "the hub names SmolLM2: no weights written");
    let handoff = read_json(&lf.join("vibeflow.json"));
    assert_eq!(
        (handoff["train_rows"].as_u64(), handoff["test_rows"].as_u64()),
        (Some(240), Some(60))
    );
    let train = std::fs::read_to_string(lf.join("train.jsonl")).unwrap();
    assert_eq!(train.lines().count(), 240);
    for line in train.lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        let roles: Vec<&str> = row["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["system", "user", "assistant"], "{line}");
    }
    let info = read_json(&lf.join("dataset_info.json"));
    assert_eq!(info["tech-qa"]["file_name"], "train.jsonl");
    assert_eq!(info["tech-qa"]["tags"]["role_tag"], "role");
    assert_eq!(info["tech-qa_test"]["file_name"], "test.jsonl");
    let config = &handoff["config"];
    let y = pyyaml(&lf.join("llamafactory.yaml"));
    assert_eq!(y["model_name_or_path"], "HuggingFaceTB/SmolLM2-135M-Instruct");
    assert_eq!((y["dataset"].as_str(), y["template"].as_str()), (Some("tech-qa"), Some("smollm2")));
    assert_eq!(y["lora_rank"], config["method"]["lora"]["r"]);
    assert_eq!(
        y["lora_alpha"].as_u64(),
        config["method"]["lora"]["alpha"].as_f64().map(|a| a as u64)
    );
    assert_eq!(y["cutoff_len"], config["max_len"]);
    assert_eq!(y["per_device_train_batch_size"], config["batch_size"]);
    assert_eq!(y["seed"], config["seed"]);
    // Floats are floats to PyYAML (`1e-8` would be a string).
    assert_eq!(y["learning_rate"].as_f64(), config["adamw"]["lr"].as_f64());
    assert_eq!(y["adam_epsilon"].as_f64(), config["adamw"]["eps"].as_f64());
    assert_eq!(y["lora_dropout"].as_f64(), Some(0.05));
    let readme = std::fs::read_to_string(lf.join("README.md")).unwrap();
    for launch in [
        "CUDA_VISIBLE_DEVICES=0,1,2,3 llamafactory-cli train",
        "NNODES=2",
        "deepspeed=ds_z3_config.json",
    ] {
        assert!(readme.contains(launch), "{launch}: {readme}");
    }
    let history = home.ok(&["history", "-p", &p]);
    assert!(history.contains("Hand the recommended run to LLaMA-Factory (9 files"), "{history}");

    // Axolotl: its chat-template dataset on the model's own template.
    let ax = tmp.path().join("ax");
    home.ok(&["export", "-p", &p, "--format", "axolotl", "--out", ax.to_str().unwrap()]);
    let y = pyyaml(&ax.join("axolotl.yaml"));
    assert_eq!(y["base_model"], "HuggingFaceTB/SmolLM2-135M-Instruct");
    assert_eq!(y["chat_template"], "tokenizer_default");
    assert_eq!(y["datasets"][0]["type"], "chat_template");
    assert_eq!(y["datasets"][0]["path"], "train.jsonl");
    assert_eq!(y["adapter"], "lora");
    assert_eq!(y["sequence_len"], config["max_len"]);
    assert!(ax.join("deepspeed_zero2.json").is_file());

    // An adapter trained here (the export's settings, two steps), laid out as LLaMA-Factory
    // writes its output: the adapter, a checkpoint, the trainer's state and log.
    let text = home.ok(&[
        "train",
        "-p",
        &p,
        "--steps",
        "2",
        "--max-len",
        &config["max_len"].to_string(),
        "--eval-rows",
        "8",
        "--json",
    ]);
    let run1: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(run1["status"], "done");
    let adapter = home.path().join("projects").join(&p).join("runs/run-1/adapter");
    let output = lf.join("output");
    for dir in [output.clone(), output.join("checkpoint-2")] {
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["adapter_config.json", "adapter_model.safetensors"] {
            std::fs::copy(adapter.join(f), dir.join(f)).unwrap();
        }
    }
    std::fs::write(
        output.join("trainer_state.json"),
        r#"{"global_step": 2, "log_history": [{"loss": 2.5, "step": 1}, {"loss": 2.25, "step": 2}, {"train_loss": 2.4, "step": 2}]}"#,
    )
    .unwrap();
    std::fs::write(output.join("trainer_log.jsonl"), "{\"current_steps\": 1, \"loss\": 2.5}\n")
        .unwrap();

    let e = home.err(&["runs", "import", "-p", &p, tmp.path().join("nothing").to_str().unwrap()]);
    assert!(e.contains("no such folder"), "{e}");
    let e = home.err(&["runs", "import", "-p", &p, ax.to_str().unwrap()]);
    assert!(e.contains("no PEFT adapter (adapter_config.json)"), "{e}");
    let dora = tmp.path().join("dora");
    std::fs::create_dir_all(&dora).unwrap();
    let mut cfg = read_json(&adapter.join("adapter_config.json"));
    cfg["use_dora"] = Value::Bool(true);
    std::fs::write(dora.join("adapter_config.json"), cfg.to_string()).unwrap();
    let e = home.err(&["runs", "import", "-p", &p, dora.to_str().unwrap()]);
    assert!(e.contains("DoRA"), "{e}");

    let run2 = home.json(&[
        "runs",
        "import",
        "-p",
        &p,
        lf.to_str().unwrap(),
        "--eval-rows",
        "8",
        "--json",
    ]);
    assert_eq!((run2["id"].as_str(), run2["tag"].as_str()), (Some("run-2"), Some("v2")));
    assert_eq!(run2["status"], "done");
    assert_eq!(run2["summary"]["steps"], 2);
    assert_eq!(run2["summary"]["losses"], serde_json::json!([2.5, 2.25]));
    // The same adapter on the same held-out rows: the same losses as where it was trained.
    for k in ["eval_loss_before", "eval_loss_after"] {
        let (a, b) = (run1["summary"][k].as_f64().unwrap(), run2["summary"][k].as_f64().unwrap());
        assert!((a - b).abs() < 1e-4, "{k}: trained here {a}, imported {b}");
    }
    let dir = home.path().join("projects").join(&p).join("runs/run-2");
    let toml: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.join("run.toml")).unwrap()).unwrap();
    assert_eq!(toml["imported"]["tool"].as_str(), Some("LLaMA-Factory"));
    assert!(toml["imported"]["from"].as_str().unwrap().ends_with("output"));
    assert!(toml["imported"]["export_sha256"].as_str().is_some_and(|s| s.len() == 64));
    assert_eq!(toml["dataset"]["name"].as_str(), Some("tech-qa"));
    let history = home.ok(&["history", "-p", &p]);
    assert!(
        history.contains("Import (LLaMA-Factory) run-2 on tech-qa v1 (done, 2 steps)"),
        "{history}"
    );
    // Its adapter answers, greedy, as the run's it came from.
    let ask = |run: &str| {
        let adapter = home.path().join("projects").join(&p).join("runs").join(run).join("adapter");
        home.ok(&[
            "generate",
            "--adapter",
            adapter.to_str().unwrap(),
            "--temperature",
            "0",
            "--max-tokens",
            "8",
            "--prompt",
            "What is a mutex?",
        ])
    };
    let answer = ask("run-2");
    assert_eq!(answer, ask("run-1"));
    assert!(!answer.trim().is_empty());
}
