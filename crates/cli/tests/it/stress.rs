//! Eight processes import, fix, split, train and resume in one project while a ninth kills
//! them at random; at the end git, the index and the folder agree and no version that any
//! command reported is lost. `VIBEFLOW_STRESS_SECS` sets the duration (default 60).

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Home;
use crate::hardening::{assert_consistent, versions_in_index};

/// What one worker saw.
#[derive(Default)]
struct Tally {
    ops: usize,
    killed: usize,
    /// (name, version, commit) of every dataset version a command said it committed.
    versions: Vec<(String, u64, String)>,
    /// (run id, commit) of every run a command said it recorded as done or stopped.
    runs: Vec<(String, String, String)>,
    /// Errors that are not a kill: none is expected but the two a concurrent resume can meet.
    errors: Vec<String>,
}

/// A tiny deterministic generator (no dependency, reproducible runs).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn op_args(rng: &mut Lcg, files: &[String]) -> Vec<String> {
    let names = ["alpha", "beta", "gamma"];
    let name = names[rng.next(3) as usize].to_string();
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match rng.next(10) {
        0..=3 => {
            let file = files[rng.next(files.len() as u64) as usize].clone();
            [
                v(&["data", "import"]),
                vec![file],
                v(&["-p", "s", "--name"]),
                vec![name],
                v(&["--json"]),
            ]
            .concat()
        }
        4 => [
            v(&["data", "fix", "-p", "s", "--name"]),
            vec![name],
            v(&["--drop-duplicates", "--json"]),
        ]
        .concat(),
        5 => {
            let max = (200 + rng.next(400)).to_string();
            [
                v(&["data", "fix", "-p", "s", "--name"]),
                vec![name],
                v(&["--max-tokens"]),
                vec![max],
                v(&["--json"]),
            ]
            .concat()
        }
        6 => {
            let f = format!("0.{}", 1 + rng.next(4));
            [
                v(&["data", "split", "-p", "s", "--name"]),
                vec![name],
                v(&["--test-fraction"]),
                vec![f],
                v(&["--json"]),
            ]
            .concat()
        }
        7 | 8 => [
            v(&["train", "-p", "s", "--dataset"]),
            vec![name],
            v(&["--steps", "2", "--batch", "1", "--max-len", "96", "--eval-rows", "1"]),
            v(&["--checkpoint-every", "1", "--json"]),
        ]
        .concat(),
        _ => v(&["train", "-p", "s", "--resume", "--json"]),
    }
}

/// Runs `args` as a child the killer can reach; returns (stdout, stderr, success, killed).
fn run(home: &Home, args: &[String], slot: &Mutex<Option<Child>>) -> (String, String, bool, bool) {
    let out = tempfile::NamedTempFile::new_in(home.path()).unwrap();
    let err = tempfile::NamedTempFile::new_in(home.path()).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_vibeflow"))
        .args(args)
        .env("VIBEFLOW_HOME", home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.reopen().unwrap()))
        .stderr(Stdio::from(err.reopen().unwrap()))
        .spawn()
        .unwrap();
    *slot.lock().unwrap() = Some(child);
    let status = loop {
        {
            let mut g = slot.lock().unwrap();
            if let Some(s) = g.as_mut().unwrap().try_wait().unwrap() {
                *g = None;
                break s;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |f: &tempfile::NamedTempFile| std::fs::read_to_string(f.path()).unwrap_or_default();
    // Killed by the killer: SIGKILL on Unix, exit code 1 from TerminateProcess on Windows.
    #[cfg(unix)]
    let killed = std::os::unix::process::ExitStatusExt::signal(&status) == Some(9);
    #[cfg(not(unix))]
    let killed = false;
    (read(&out), read(&err), status.success(), killed)
}

#[test]
fn eight_processes_and_random_kills_lose_no_version() {
    let Some(home) = Home::with_default_model() else { return };
    let home = Arc::new(home);
    home.ok(&["project", "new", "S"]);
    let secs: u64 =
        std::env::var("VIBEFLOW_STRESS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    // Three sources: each dataset name switches between them as imports overwrite it.
    let mut files = Vec::new();
    for (i, sample) in ["customer-support", "tech-qa", "review-sentiment"].iter().enumerate() {
        home.ok(&[
            "data",
            "import",
            "--sample",
            sample,
            "-p",
            "s",
            "--name",
            ["alpha", "beta", "gamma"][i],
        ]);
        let src = home.path().join(format!("src{i}.jsonl"));
        let rows =
            home.path().join(format!("projects/s/data/{}.jsonl", ["alpha", "beta", "gamma"][i]));
        std::fs::copy(&rows, &src).unwrap();
        files.push(src.to_str().unwrap().to_string());
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    let slots: Arc<Vec<Mutex<Option<Child>>>> =
        Arc::new((0..8).map(|_| Mutex::new(None)).collect());
    let workers: Vec<_> = (0..8u64)
        .map(|w| {
            let (home, slots, files) = (home.clone(), slots.clone(), files.clone());
            std::thread::spawn(move || {
                let mut rng = Lcg(w + 1);
                let mut t = Tally::default();
                while Instant::now() < deadline {
                    let args = op_args(&mut rng, &files);
                    let (out, err, ok, killed) = run(&home, &args, &slots[w as usize]);
                    t.ops += 1;
                    if killed {
                        t.killed += 1;
                        continue;
                    }
                    if !ok {
                        // What a resume meets when others train, kill and import meanwhile.
                        let benign = err.contains("has no interrupted or stopped run to resume")
                            || err.contains("is still training in another process")
                            || err.contains("start a new run");
                        if !benign {
                            t.errors.push(format!("{args:?}: {}", &err[..err.len().min(300)]));
                        }
                        continue;
                    }
                    // `data` prints one JSON document; `train` a line per step, then its record.
                    let parsed = serde_json::from_str(&out)
                        .or_else(|_| serde_json::from_str(out.lines().last().unwrap_or_default()));
                    let last: serde_json::Value = match parsed {
                        Ok(v) => v,
                        Err(e) => {
                            t.errors.push(format!("{args:?}: {e}: {}", &out[..out.len().min(200)]));
                            continue;
                        }
                    };
                    if args[0] == "data" && last["changed"] == true {
                        t.versions.push((
                            last["name"].as_str().unwrap().to_string(),
                            last["version"].as_u64().unwrap(),
                            last["commit"].as_str().unwrap().to_string(),
                        ));
                    } else if args[0] == "train" {
                        t.runs.push((
                            last["id"].as_str().unwrap().to_string(),
                            last["status"].as_str().unwrap().to_string(),
                            last["commit"].as_str().unwrap().to_string(),
                        ));
                    }
                }
                t
            })
        })
        .collect();
    // The killer: every 0.3–2 s, SIGKILL to a random worker's command.
    let mut rng = Lcg(99);
    let mut kills = 0;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300 + rng.next(1700)));
        let mut g = slots[rng.next(8) as usize].lock().unwrap();
        if let Some(child) = g.as_mut()
            && child.kill().is_ok()
        {
            kills += 1;
        }
    }
    let tallies: Vec<Tally> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let ops: usize = tallies.iter().map(|t| t.ops).sum();
    let killed: usize = tallies.iter().map(|t| t.killed).sum();
    let errors: Vec<&String> = tallies.iter().flat_map(|t| &t.errors).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // No version a command reported is lost: each is in the index with its commit.
    let indexed = versions_in_index(&home, "s");
    let versions: Vec<_> = tallies.iter().flat_map(|t| t.versions.clone()).collect();
    for v in &versions {
        assert!(indexed.contains(v), "lost: {v:?}");
    }
    let history: Vec<String> =
        vcs::history(&home.path().join("projects/s")).unwrap().into_iter().map(|c| c.id).collect();
    let runs = home.json(&["runs", "-p", "s", "--json"]);
    let trained: Vec<_> = tallies.iter().flat_map(|t| t.runs.clone()).collect();
    for (id, status, commit) in &trained {
        assert!(history.contains(commit), "run {id}'s commit {commit} is lost");
        let row = runs.as_array().unwrap().iter().find(|r| r["id"] == id.as_str()).unwrap();
        // A later resume may have taken it further; a finished run stays finished.
        assert!(status != "done" || row["status"] == "done", "{id}: {row}");
    }
    // What the kills left, as doctor sees it before repairing (the reads above already
    // marked dead runs and rebuilt the index where git had moved on).
    let out = home.run(&["doctor", "--json"]);
    let before: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut kinds: Vec<String> = before["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_string())
        .collect();
    kinds.sort();
    assert_consistent(&home, "s", true);
    eprintln!(
        "stress: {secs} s, 8 processes: {ops} operations ({} versions, {} runs recorded), {kills} kills sent, {killed} landed mid-command; crash residues found by doctor: {kinds:?}; versions lost or unindexed: 0; inconsistencies after repair: 0",
        versions.len(),
        trained.len()
    );
    assert!(ops >= 16, "too few operations ran to mean anything: {ops}");
}
