//! Nothing lost under concurrency, crashes, full disks and hostile input: each reproduction of
//! the hardening issue, through the binary, as a user (or a script beside the app) would meet it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

use crate::{Home, one_line_error};

/// The binary over `home`, with its pipes, not waited for.
fn spawn(home: &Home, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vibeflow"))
        .args(args)
        .env("VIBEFLOW_HOME", home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// What `git` itself says of a project: (commit count, `status --porcelain` lines, fsck ok).
fn git_view(home: &Home, slug: &str) -> (usize, Vec<String>) {
    let repo = home.path().join("projects").join(slug);
    let git = |args: &[&str]| {
        let out = Command::new("git").args(args).current_dir(&repo).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    git(&["fsck", "--full", "--no-progress"]);
    let commits = git(&["rev-list", "--count", "HEAD"]).trim().parse().unwrap();
    let status = git(&["status", "--porcelain"]).lines().map(str::to_string).collect();
    (commits, status)
}

/// The dataset versions git has for `slug`: (name, version, commit) of every manifest version
/// in HEAD's history, read with the `git` command (not our code).
fn versions_in_git(home: &Home, slug: &str) -> Vec<(String, u64, String)> {
    let repo = home.path().join("projects").join(slug);
    let log = Command::new("git")
        .args(["log", "--reverse", "--format=%H", "--", "data/*.toml"])
        .current_dir(&repo)
        .output()
        .unwrap();
    let mut out = Vec::new();
    for commit in String::from_utf8(log.stdout).unwrap().lines() {
        let files = Command::new("git")
            .args(["diff-tree", "--no-commit-id", "--name-only", "--diff-filter=AM", "-r", commit])
            .current_dir(&repo)
            .output()
            .unwrap();
        for f in String::from_utf8(files.stdout).unwrap().lines() {
            if !(f.starts_with("data/") && f.ends_with(".toml")) {
                continue;
            }
            let show = Command::new("git")
                .args(["show", &format!("{commit}:{f}")])
                .current_dir(&repo)
                .output()
                .unwrap();
            let m: toml::Value = toml::from_str(&String::from_utf8(show.stdout).unwrap()).unwrap();
            let d = &m["dataset"];
            out.push((
                d["name"].as_str().unwrap().to_string(),
                d["version"].as_integer().unwrap() as u64,
                commit.to_string(),
            ));
        }
    }
    out.sort();
    out
}

/// The dataset versions the index lists for `slug`.
pub(crate) fn versions_in_index(home: &Home, slug: &str) -> Vec<(String, u64, String)> {
    let list = home.json(&["data", "list", "-p", slug, "--json"]);
    let mut out: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_string(),
                d["version"].as_u64().unwrap(),
                d["commit"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// git, the index and the folder agree, and `doctor` finds nothing (after repairing what a
/// crash left, when `crashes`): the check every test here ends with.
pub(crate) fn assert_consistent(home: &Home, slug: &str, crashes: bool) {
    let in_git = versions_in_git(home, slug);
    assert_eq!(versions_in_index(home, slug), in_git, "the index and git disagree");
    // Versions of each dataset are 1, 2, 3… with no gap and no repeat.
    let mut names: Vec<&str> = in_git.iter().map(|(n, _, _)| n.as_str()).collect();
    names.dedup();
    for name in names {
        let v: Vec<u64> = in_git.iter().filter(|(n, _, _)| n == name).map(|(_, v, _)| *v).collect();
        assert_eq!(v, (1..=v.len() as u64).collect::<Vec<_>>(), "versions of {name}");
    }
    if crashes {
        // What a killed process left: repaired, and then nothing is left to find.
        let out = home.run(&["doctor", "--repair", "--json"]);
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let open: Vec<_> =
            r["findings"].as_array().unwrap().iter().filter(|f| f["repaired"] != true).collect();
        assert!(open.is_empty(), "doctor could not repair: {open:?}");
    }
    let r = home.json(&["doctor", "--json"]);
    assert_eq!(r["findings"], serde_json::json!([]), "doctor: {r}");
    // Tracked files are as committed; an untracked file may only be the adapter or record of a
    // run that was killed before its commit (it stays resumable).
    let (_, status) = git_view(home, slug);
    let stray: Vec<_> = status.iter().filter(|l| !l.starts_with("?? runs/")).collect();
    assert!(stray.is_empty(), "the work tree differs from HEAD: {status:?}");
    let tmp = home.path().join("tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "temporary files left in {}: {left:?}", tmp.display());
}

#[test]
fn concurrent_imports_from_many_processes_lose_no_version() {
    let Some(home) = Home::with_default_model() else { return };
    home.ok(&["project", "new", "S"]);
    let mut done = Vec::new();
    for round in 0..8 {
        let x = format!("x{round}");
        let y = format!("y{round}");
        let jobs = [
            vec!["data", "import", "--sample", "customer-support", "-p", "s", "--name", &x],
            vec!["data", "import", "--sample", "tech-qa", "-p", "s", "--name", &y],
            // Two processes writing versions of one dataset.
            vec!["data", "import", "--sample", "tech-qa", "-p", "s", "--name", "shared"],
            vec!["data", "import", "--sample", "review-sentiment", "-p", "s", "--name", "shared"],
        ];
        let children: Vec<Child> =
            jobs.iter().map(|j| spawn(&home, &[&j[..], &["--json"]].concat())).collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            if d["changed"] == true {
                done.push((
                    d["name"].as_str().unwrap().to_string(),
                    d["version"].as_u64().unwrap(),
                    d["commit"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    let in_git = versions_in_git(&home, "s");
    done.sort();
    // Every import that said it committed a version is in git and in the index; nothing else.
    assert_eq!(in_git, done);
    // 16 distinct datasets once each, and "shared" switched samples in every import after the
    // first of each round that changed its content.
    assert_eq!(in_git.iter().filter(|(n, _, _)| n != "shared").count(), 16);
    assert!(in_git.iter().filter(|(n, _, _)| n == "shared").count() >= 8);
    let (commits, _) = git_view(&home, "s");
    assert_eq!(commits, in_git.len() + 1, "one commit per version, after the project's own");
    assert_consistent(&home, "s", false);
}

/// `rows` prompt/completion rows in `home`'s `name`, each reply `phrase` `repeat` times.
pub(crate) fn prompt_file(
    home: &Home,
    name: &str,
    rows: usize,
    phrase: &str,
    repeat: usize,
) -> std::path::PathBuf {
    let file = home.path().join(name);
    let mut text = String::new();
    for i in 0..rows {
        let answer = format!("Answer {i}: {}", phrase.repeat(repeat));
        text +=
            &serde_json::json!({"prompt": format!("Question number {i}?"), "completion": answer})
                .to_string();
        text.push('\n');
    }
    std::fs::write(&file, text).unwrap();
    file
}

/// ~9 MB of normalized chat: over the 8 MiB git threshold, and an import that takes a while.
pub(crate) fn big_file(home: &Home) -> std::path::PathBuf {
    prompt_file(home, "big.jsonl", 9000, "this reply is long enough to matter. ", 24)
}

#[test]
fn kill_9_anywhere_in_an_import_loses_nothing() {
    let Some(home) = Home::with_default_model() else { return };
    home.ok(&["project", "new", "K"]);
    let big = big_file(&home);
    let small = home.path().join("small.csv");
    std::fs::write(&small, "question,answer\nWhere is my invoice?,Under Billing > History.\nCan I export?,Yes: Settings > Export.\n").unwrap();
    let import = |file: &std::path::Path, name: &str| {
        spawn(
            &home,
            &["data", "import", file.to_str().unwrap(), "-p", "k", "--name", name, "--json"],
        )
    };
    // How long one import takes here, to spread the kills over all of it.
    let t = std::time::Instant::now();
    assert!(import(&big, "big").wait().unwrap().success());
    let whole = t.elapsed();
    let kills = 12;
    for i in 0..kills {
        // Alternate a new dataset (the first version) and a new version of an old one.
        let mut child =
            if i % 2 == 0 { import(&big, &format!("b{i}")) } else { import(&small, "big") };
        std::thread::sleep(whole.mul_f64((i as f64 + 0.5) / kills as f64));
        let _ = child.kill();
        let _ = child.wait();
    }
    // The next import repairs what the kills left and commits as if nothing happened.
    let d = home.json(&[
        "data",
        "import",
        small.to_str().unwrap(),
        "-p",
        "k",
        "--name",
        "after",
        "--json",
    ]);
    assert_eq!(d["version"], 1);
    assert_consistent(&home, "k", true);
}

/// Trains in `home`'s project `p`, returning the child and its stdout as lines.
fn train(home: &Home, p: &str, extra: &[&str]) -> Child {
    let base = ["train", "-p", p, "--batch", "1", "--max-len", "64", "--eval-rows", "2", "--json"];
    spawn(home, &[&base[..], extra].concat())
}

fn project_with_data(home: &Home, name: &str) -> String {
    let p = home.json(&["project", "new", name, "--json"])["slug"].as_str().unwrap().to_string();
    home.ok(&["data", "import", "--sample", "tech-qa", "-p", &p]);
    p
}

/// Reads progress lines until one says a checkpoint was written.
fn until_checkpoint(child: &mut Child) -> serde_json::Value {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("the run ended before its first checkpoint").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if !v["checkpoint"].is_null() {
            return v;
        }
    }
}

fn runs(home: &Home, p: &str) -> Vec<(String, String, u64)> {
    home.json(&["runs", "-p", p, "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
                r["steps"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_killed_run_shows_as_interrupted_and_resumes_from_its_checkpoint() {
    let Some(home) = Home::with_default_model() else { return };
    let p = project_with_data(&home, "Run");
    let e = home.err(&["train", "-p", &p, "--resume"]);
    assert!(e.contains("has no interrupted or stopped run to resume"), "{e}");
    // Out-of-range settings are refused before a run is claimed.
    let e = home.err(&["train", "-p", &p, "--lr=0"]);
    assert!(e.contains("Learning rate: a number above 0"), "{e}");
    assert_eq!(runs(&home, &p), []);
    let mut child = train(&home, &p, &["--steps", "6", "--checkpoint-every", "2"]);
    let at = until_checkpoint(&mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    // The row knows the step of its last checkpoint: where a resume starts.
    let step = at["step"].as_u64().unwrap();
    assert_eq!(runs(&home, &p), [("run-1".into(), "interrupted".into(), step)]);
    let text = home.ok(&["runs", "-p", &p]);
    assert!(text.contains("Resume run-1 with: vibeflow train -p run --resume run-1"), "{text}");
    // `--resume` without a name takes the newest interrupted run, with its own settings.
    let out =
        home.ok(&["train", "-p", &p, "--resume", "--steps", "99", "--eval-rows", "50", "--json"]);
    let lines: Vec<serde_json::Value> =
        out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let record = lines.last().unwrap();
    assert_eq!((record["id"].as_str(), record["status"].as_str()), (Some("run-1"), Some("done")));
    assert_eq!(record["summary"]["steps"], 6, "the run's own 6 steps, not --steps 99");
    let run_toml = std::path::Path::new(record["path"].as_str().unwrap()).join("run.toml");
    let run_toml = std::fs::read_to_string(&run_toml).unwrap();
    assert!(run_toml.contains("eval_rows = 2"), "its own 2 held-out rows, not 50: {run_toml}");
    // Progress went on after the checkpoint, not from step 1.
    assert!(lines[0]["step"].as_u64().unwrap() > 2, "{}", lines[0]);
    assert_eq!(runs(&home, &p), [("run-1".into(), "done".into(), 6)]);
    let e = home.err(&["train", "-p", &p, "--resume", "run-1"]);
    assert!(e.contains("run 'run-1' is done (6 steps): there is nothing to resume"), "{e}");
    let e = home.err(&["train", "-p", &p, "--resume"]);
    assert!(e.contains("has no interrupted or stopped run"), "{e}");
    let history = home.ok(&["history", "-p", &p]);
    assert_eq!(history.matches("Train run-1").count(), 1, "{history}");
    // The jobs: the killed one interrupted, its resume done.
    let jobs = home.json(&["jobs", "--json"]);
    let states: Vec<_> =
        jobs.as_array().unwrap().iter().map(|j| j["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["done", "interrupted"], "{jobs}");
    assert_consistent(&home, &p, true);
}

#[cfg(unix)]
fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
}

#[cfg(unix)]
#[test]
fn sigterm_and_sigint_stop_a_run_at_a_step_with_a_checkpoint() {
    let Some(home) = Home::with_default_model() else { return };
    let p = project_with_data(&home, "Sig");
    for (sig, id) in [("-TERM", "run-1"), ("-INT", "run-2")] {
        let mut child = train(&home, &p, &["--steps", "200"]);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first: serde_json::Value =
            serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        assert_eq!(first["step"], 1);
        signal(&child, sig);
        let rest: Vec<String> = lines.map(Result::unwrap).collect();
        let status = child.wait().unwrap();
        assert!(status.success(), "{sig}: {status:?}");
        let record: serde_json::Value = serde_json::from_str(rest.last().unwrap()).unwrap();
        assert_eq!((record["id"].as_str(), record["status"].as_str()), (Some(id), Some("stopped")));
        let steps = record["summary"]["steps"].as_u64().unwrap();
        assert!(steps < 200, "{record}");
        let ckpt = home.path().join(format!("projects/{p}/runs/{id}/checkpoints/step-{steps:06}"));
        assert!(ckpt.join("state.json").is_file(), "{}", ckpt.display());
    }
    let r = runs(&home, &p);
    assert_eq!(r.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(), ["stopped", "stopped"]);
    // A second signal ends the process at once.
    let mut child = train(&home, &p, &["--steps", "200"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    lines.next().unwrap().unwrap();
    signal(&child, "-INT");
    // Signals of one kind sent together may arrive as one: the second goes once the first
    // was taken.
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let said = err.next().unwrap().unwrap();
    assert!(said.starts_with("stopping after the current step"), "{said}");
    signal(&child, "-INT");
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert_eq!(runs(&home, &p)[2].1, "interrupted");
    assert_consistent(&home, &p, true);
}

#[test]
fn a_closed_pipe_never_panics_and_the_run_is_recorded() {
    let Some(home) = Home::with_default_model() else { return };
    let p = project_with_data(&home, "Pipe");
    // `train … 2>&1 | head -1`: both pipes closed after the first line.
    let mut child = Command::new(env!("CARGO_BIN_EXE_vibeflow"))
        .args(["train", "-p", &p, "--steps", "3", "--batch", "1", "--max-len", "64"])
        .args(["--eval-rows", "2"])
        .env("VIBEFLOW_HOME", home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    assert!(first.starts_with("step     1/3"), "{first}");
    drop(err);
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "a closed pipe must not fail the run");
    assert_eq!(runs(&home, &p), [("run-1".into(), "done".into(), 3)]);
    // The same for a reader that stops after the first JSON line on stdout.
    let mut child = train(&home, &p, &["--steps", "2"]);
    let mut out = child.stdout.take().unwrap();
    let mut byte = [0u8; 1];
    out.read_exact(&mut byte).unwrap();
    drop(out);
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(0));
    assert_eq!(runs(&home, &p)[1], ("run-2".into(), "done".into(), 2));
}

#[test]
fn hostile_sampling_and_long_prompts_are_refused_before_any_work() {
    let home = Home::new();
    for (args, expected) in [
        (&["--temperature", "NaN"][..], "temperature must be between 0 and 2, got NaN"),
        (&["--temperature=-1"], "temperature must be between 0 and 2, got -1"),
        (&["--top-p", "2"], "top_p must be between 0 and 1, got 2"),
        (&["--min-p", "2"], "min_p must be between 0 and 1, got 2"),
        (
            &["--repetition-penalty", "NaN"],
            "repetition_penalty must be a number above 0 (1: none), got NaN",
        ),
        (&["--max-tokens", "0"], "max_tokens must be at least 1, got 0"),
        (&["--stop", ""], "stop strings cannot be empty"),
    ] {
        // No model is installed: the check comes first.
        let e = home.err(&[&["generate", "--prompt", "hi"][..], args].concat());
        assert_eq!(e, format!("error: {expected}"), "{args:?}");
    }
    let Some(home) = Home::with_default_model() else { return };
    let long = "word ".repeat(9000);
    for path in [&[][..], &["--quantized"]] {
        let e = home.err(&[&["generate", "--prompt", &long][..], path].concat());
        assert!(e.contains("tokens and the model's context is 8192: shorten the prompt"), "{e}");
    }
}

#[test]
fn a_truncated_gguf_is_not_installed() {
    let Some(gguf) = crate::default_gguf() else { return };
    let home = Home::new();
    let bytes = std::fs::read(&gguf).unwrap();
    let cut = home.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = home.err(&["models", "import", cut.to_str().unwrap()]);
    assert!(
        e.contains("cut.gguf is not a readable model: the file is") && e.contains("truncated"),
        "{e}"
    );
    assert_eq!(home.json(&["models", "list", "--json"]), serde_json::json!([]));
    assert_eq!(std::fs::read_dir(home.path().join("models")).unwrap().count(), 0);
}

#[test]
fn small_things_say_what_they_mean() {
    let home = Home::new();
    home.ok(&["project", "new", "P"]);
    let f = home.path().join("a.csv");
    std::fs::write(&f, "question,answer\nq,a\n").unwrap();
    let e = home.err(&["data", "import", f.to_str().unwrap(), "-p", "p", "--name", "../x"]);
    assert_eq!(e, "error: dataset name cannot contain '/' or '\\'");
    let Some(home) = Home::with_default_model() else { return };
    home.ok(&["project", "new", "P"]);
    let d = home.json(&["data", "import", "--sample", "tech-qa", "-p", "p", "--json"]);
    let r = home.json(&["data", "report", "-p", "p", "--json"]);
    assert_eq!((&r["commit"], &r["changed"]), (&d["commit"], &serde_json::json!(false)));
    assert_eq!(r["commit"].as_str().unwrap().len(), 40);
    let text = home.ok(&["data", "report", "-p", "p"]);
    assert!(
        text.ends_with(&format!("commit {}\n", &d["commit"].as_str().unwrap()[..10])),
        "{text}"
    );
    // A pipe is read once, into the import.
    #[cfg(unix)]
    {
        let csv = "question,answer\nWhere is my invoice?,Under Billing.\nCan I export?,Yes.\n";
        let out = home.run_with_input(
            &["data", "import", "/dev/stdin", "-p", "p", "--name", "piped", "--json"],
            csv,
        );
        assert!(out.status.success(), "{}", one_line_error(&out));
        let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!((d["name"].as_str(), d["kept"].as_u64()), (Some("piped"), Some(2)));
    }
    assert_consistent(&home, "p", false);
}

/// A real SQLite failure right after the git commit (a trigger that aborts, as a full disk
/// would): the commit is undone, so git and the index still agree.
#[test]
fn a_failed_index_write_undoes_its_commit() {
    let Some(home) = Home::with_default_model() else { return };
    home.ok(&["project", "new", "U"]);
    let head = || vcs::history(&home.path().join("projects/u")).unwrap()[0].id.clone();
    let before = head();
    let db = rusqlite::Connection::open(home.path().join("vibeflow.db")).unwrap();
    db.execute_batch("CREATE TRIGGER full BEFORE INSERT ON datasets BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;").unwrap();
    let e = home.err(&["data", "import", "--sample", "tech-qa", "-p", "u"]);
    assert!(e.contains("database or disk is full"), "{e}");
    assert_eq!(head(), before, "the commit was undone");
    assert!(!home.path().join("projects/u/data/tech-qa.toml").exists());
    db.execute_batch("DROP TRIGGER full;").unwrap();
    let d = home.json(&["data", "import", "--sample", "tech-qa", "-p", "u", "--json"]);
    assert_eq!((d["version"].as_u64(), d["changed"].as_bool()), (Some(1), Some(true)));
    // A git failure after the files were placed (its index lock cannot be made) leaves none.
    let lock = home.path().join("projects/u/.git/index.lock");
    std::fs::create_dir(&lock).unwrap();
    let e = home.err(&["data", "import", "--sample", "customer-support", "-p", "u"]);
    assert!(e.starts_with("error: git:"), "{e}");
    std::fs::remove_dir(&lock).unwrap();
    assert_consistent(&home, "u", false);
    assert!(!home.path().join("projects/u/data/customer-support.toml").exists());
}

/// A disk that fills up: every file the process writes is capped (`RLIMIT_FSIZE`), at sizes
/// that make an import fail at the database, at its copy of the source and at the normalized
/// rows, and at one that lets it through. Whatever fails, nothing is half done afterwards.
/// (A failing index write after the commit is `a_failed_index_write_undoes_its_commit`.)
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_fails_cleanly_wherever_it_strikes() {
    use std::os::unix::process::CommandExt;
    let Some(home) = Home::with_default_model() else { return };
    home.ok(&["project", "new", "D"]);
    // 300 rows, ~37 KB: above SQLite's 32 KB shared-memory file, below its normalized form.
    let file = prompt_file(&home, "rows.jsonl", 300, "this reply is long. ", 3);
    let size = std::fs::metadata(&file).unwrap().len();
    let caps =
        [(16 << 10, "disk I/O error"), (size - 1, "source"), (size + 2048, ".tmp"), (1 << 20, "")];
    for (limit, expected) in caps {
        let name = format!("d{limit}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vibeflow"));
        cmd.args(["data", "import", file.to_str().unwrap(), "-p", "d", "--name", &name])
            .env("VIBEFLOW_HOME", home.path());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let lim = libc::rlimit { rlim_cur: limit, rlim_max: limit };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        if expected.is_empty() {
            assert!(out.status.success(), "{limit}: {stderr}");
        } else {
            assert!(!out.status.success(), "{limit} bytes should not be enough");
            let line = one_line_error(&out);
            assert!(line.contains(expected), "{limit}: {line}");
        }
        assert_consistent(&home, "d", true);
    }
    assert_eq!(versions_in_git(&home, "d").len(), 1);
}
