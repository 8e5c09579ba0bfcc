//! Runs sent to a real single-node Slurm (Debian's slurm-wlm and munge, started here with a
//! generated slurm.conf on free ports): submitted, followed, imported as versions; a stopped
//! job resumes from its checkpoint; the imported adapter answers as the job's own check did.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::Home;

#[path = "../../../../tests/support/slurm.rs"]
mod slurm;
use slurm::Slurm;

/// `vibeflow ARGS` over `home`, with `slurm`'s configuration.
fn vibeflow(slurm: &Slurm, home: &Home, args: &[&str]) -> Command {
    let mut c = slurm.command(env!("CARGO_BIN_EXE_vibeflow"));
    c.args(args).env("VIBEFLOW_HOME", home.path());
    c
}

/// The JSON lines of a `train --on … --json`: scheduler states, steps, then the run.
fn lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

const TRAIN: [&str; 9] =
    ["train", "--batch", "1", "--max-len", "64", "--eval-rows", "2", "--json", "--on"];

#[test]
fn a_run_goes_to_slurm_and_comes_back_as_a_version_and_a_stopped_one_resumes() {
    let Some(home) = Home::with_default_model() else { return };
    let Some(slurm) = Slurm::start() else { return };
    let p = home.json(&["project", "new", "Lab", "--json"])["slug"].as_str().unwrap().to_string();
    home.ok(&["data", "import", "--sample", "tech-qa", "-p", &p]);
    let work = tempfile::tempdir().unwrap();
    let workdir = work.path().to_str().unwrap();
    let e = home.err(&["cluster", "add", "lab", "--slurm", "--workdir", "relative/path"]);
    assert!(e.contains("must be an absolute path"), "{e}");
    home.ok(&["cluster", "add", "lab", "--slurm", "--workdir", workdir, "--time-minutes", "20"]);
    let listed = home.json(&["cluster", "list", "--json"]);
    assert_eq!(listed[0]["name"], "lab");
    let e = home.err(&["train", "-p", &p, "--on", "slurm:nowhere"]);
    assert!(e.contains("no cluster 'nowhere'"), "{e}");

    // A short run: submitted, followed, imported.
    let out =
        vibeflow(&slurm, &home, &[&TRAIN[..], &["slurm:lab", "-p", &p, "--steps", "4"]].concat())
            .output()
            .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events = lines(&String::from_utf8(out.stdout).unwrap());
    // The scheduler's states, as the job's log lines ("job 1 on lab: RUNNING").
    let log = String::from_utf8(out.stderr).unwrap();
    let states: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("job "))
        .filter_map(|l| l.split(": ").nth(1))
        .collect();
    assert_eq!(states.last(), Some(&"COMPLETED"), "{log}");
    assert!(log.contains("the job's own check, greedy"), "{log}");
    let steps: Vec<u64> =
        events.iter().filter_map(|e| e["total_steps"].as_u64().and(e["step"].as_u64())).collect();
    // Progress reaches listeners throttled (about ten a second): steps read from the job's
    // events in one poll may pass as their last.
    assert!(steps.windows(2).all(|w| w[0] < w[1]) && steps.last() == Some(&4), "{steps:?}");
    let run = events.last().unwrap();
    assert_eq!((run["id"].as_str(), run["status"].as_str()), (Some("run-1"), Some("done")));
    assert_eq!(run["tag"], "v1");
    let dir = home.path().join("projects").join(&p).join("runs/run-1");
    assert_eq!(run["summary"]["output"].as_str(), Some(dir.join("adapter").to_str().unwrap()));
    let toml: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.join("run.toml")).unwrap()).unwrap();
    let cluster = &toml["cluster"];
    assert_eq!(cluster["name"].as_str(), Some("lab"));
    assert_eq!(cluster["host"].as_str(), Some("local"));
    // The job ran on the node, from the staged binary and model.
    assert!(std::fs::read_dir(work.path().join("vibeflow/bin")).unwrap().count() == 1);
    let log = std::fs::read_to_string(dir.join("slurm.out")).unwrap();
    assert!(log.contains("step     4/4"), "{log}");
    // The imported adapter answers as the job's own final check did, token for token.
    let prompt = cluster["check_prompt"].as_str().unwrap();
    let answer = cluster["check_answer"].as_str().unwrap();
    assert!(!answer.is_empty());
    let gguf = crate::default_gguf().unwrap();
    let here = home.ok(&[
        "generate",
        "--model",
        gguf.to_str().unwrap(),
        "--adapter",
        dir.join("adapter").to_str().unwrap(),
        "--temperature",
        "0",
        "--max-tokens",
        &app::CHECK_TOKENS.to_string(),
        "--prompt",
        prompt,
    ]);
    assert_eq!(here.trim_end(), answer.trim_end());
    // Committed as a local run is, with its events and the scheduler's log.
    let git = Command::new("git")
        .args(["show", "--stat", "--format=%s", "v1"])
        .current_dir(home.path().join("projects").join(&p))
        .output()
        .unwrap();
    let shown = String::from_utf8(git.stdout).unwrap();
    assert!(shown.starts_with("Train run-1 on tech-qa v1 (done, 4 steps, on lab job "), "{shown}");
    for f in ["run.toml", "events.jsonl", "slurm.out", "adapter_config.json"] {
        assert!(shown.contains(f), "{f} in {shown}");
    }

    // A stop (Ctrl-C here) reaches the job through scancel: it stops at a step with a
    // checkpoint and comes back as a stopped run, which resumes on the cluster.
    let mut child = vibeflow(
        &slurm,
        &home,
        &[&TRAIN[..], &["slurm:lab", "-p", &p, "--steps", "40", "--checkpoint-every", "2"]]
            .concat(),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut checkpoint = 0;
    let mut line = String::new();
    while checkpoint == 0 {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the run ended before a checkpoint");
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["checkpoint"].is_string() {
            checkpoint = v["step"].as_u64().unwrap();
        }
    }
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{rest}");
    let stopped = lines(&rest).pop().unwrap();
    assert_eq!(
        (stopped["id"].as_str(), stopped["status"].as_str()),
        (Some("run-2"), Some("stopped"))
    );
    let at = stopped["summary"]["steps"].as_u64().unwrap();
    assert!(at >= checkpoint && at < 40, "stopped at {at}, checkpoint {checkpoint}");
    assert!(stopped["tag"].is_null());

    let out = vibeflow(
        &slurm,
        &home,
        &["train", "-p", &p, "--resume", "run-2", "--json", "--on", "slurm:lab"],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events = lines(&String::from_utf8(out.stdout).unwrap());
    let first = events.iter().find_map(|e| e["total_steps"].as_u64().and(e["step"].as_u64()));
    // It goes on after the last checkpoint, not from the start.
    assert!(first.unwrap() > checkpoint, "{first:?} after the checkpoint at {checkpoint}");
    let run = events.last().unwrap();
    assert_eq!((run["id"].as_str(), run["status"].as_str()), (Some("run-2"), Some("done")));
    assert_eq!(run["summary"]["steps"].as_u64(), Some(40));
    assert_eq!(run["tag"], "v2");

    // The same cluster reached over SSH (a private sshd and key; `VIBEFLOW_SSH_CONFIG` names
    // the client's configuration): staged with scp, followed over ssh, brought back.
    let Some(sshd) = slurm::Sshd::start(&[("SLURM_CONF", &slurm.conf())]) else { return };
    let far = tempfile::tempdir().unwrap();
    home.ok(&[
        "cluster",
        "add",
        "far",
        "--slurm",
        "--ssh",
        slurm::Sshd::HOST,
        "--workdir",
        far.path().to_str().unwrap(),
    ]);
    let out =
        vibeflow(&slurm, &home, &[&TRAIN[..], &["slurm:far", "-p", &p, "--steps", "2"]].concat())
            .env("VIBEFLOW_SSH_CONFIG", sshd.config())
            .env_remove("SLURM_CONF")
            .output()
            .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = String::from_utf8(out.stderr).unwrap();
    assert!(log.contains("on far: COMPLETED"), "{log}");
    let run = lines(&String::from_utf8(out.stdout).unwrap()).pop().unwrap();
    assert_eq!((run["id"].as_str(), run["tag"].as_str()), (Some("run-3"), Some("v3")));
    let dir = home.path().join("projects").join(&p).join("runs/run-3");
    assert!(dir.join("adapter/adapter_model.safetensors").is_file());
    let toml: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.join("run.toml")).unwrap()).unwrap();
    assert_eq!(toml["cluster"]["host"].as_str(), Some(slurm::Sshd::HOST));
    assert!(far.path().join("vibeflow/jobs").join(&p).join("run-3/events.jsonl").is_file());
}
