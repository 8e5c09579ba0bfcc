//! Runs sent to a real single-node Slurm (Debian's slurm-wlm and munge, started here with a
//! generated slurm.conf on free ports): submitted, followed, imported as versions; a stopped
//! job resumes from its checkpoint; the imported adapter answers as the job's own check did.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Home;

/// A private Slurm controller and node (and their munge), stopped when dropped.
struct Slurm {
    dir: tempfile::TempDir,
    daemons: Vec<Child>,
}

impl Slurm {
    /// Starts one, or says why it cannot (`None`; under `cargo xtask test` a missing Slurm is a
    /// broken setup: it panics).
    fn start() -> Option<Slurm> {
        let missing: Vec<&str> = ["munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel"]
            .into_iter()
            .filter(|p| which(p).is_none())
            .collect();
        if !missing.is_empty() {
            assert!(
                std::env::var_os("VIBEFLOW_REQUIRE_SETUP").is_none(),
                "{missing:?} not found: the setup of `cargo xtask test` installs slurm-wlm and munge"
            );
            eprintln!("skipped: {missing:?} not found (slurm-wlm and munge)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["state", "spool", "munge"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let key = d.join("munge/munge.key");
        std::fs::write(&key, (0..1024).map(|i| (i * 7 + 13) as u8).collect::<Vec<u8>>()).unwrap();
        set_mode(&key, 0o600);
        let mut daemons = Vec::new();
        let sock = d.join("munge/sock");
        daemons.push(
            Command::new(which("munged").unwrap())
                .arg("-F")
                .arg("--force")
                .arg(format!("--socket={}", sock.display()))
                .arg(format!("--key-file={}", key.display()))
                .arg(format!("--log-file={}", d.join("munge/log").display()))
                .arg(format!("--pid-file={}", d.join("munge/pid").display()))
                .arg(format!("--seed-file={}", d.join("munge/seed").display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_for(|| sock.exists(), "munged's socket");
        let host = output("hostname", &["-s"]).trim().to_string();
        let user = output("id", &["-un"]).trim().to_string();
        let (ctl, node) = (free_port(), free_port());
        let conf = format!(
            "ClusterName=vibeflowtest\nSlurmctldHost={host}\nSlurmUser={user}\nSlurmdUser={user}\n\
             AuthType=auth/munge\nAuthInfo=socket={sock}\nCredType=cred/munge\n\
             SlurmctldPort={ctl}\nSlurmdPort={node}\nStateSaveLocation={d}/state\n\
             SlurmdSpoolDir={d}/spool\nSlurmctldPidFile={d}/slurmctld.pid\n\
             SlurmdPidFile={d}/slurmd.pid\nSlurmctldLogFile={d}/slurmctld.log\n\
             SlurmdLogFile={d}/slurmd.log\nProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n\
             SwitchType=switch/none\nMpiDefault=none\nSelectType=select/cons_tres\n\
             SelectTypeParameters=CR_Core\nSchedulerType=sched/backfill\nReturnToService=2\n\
             MinJobAge=600\nKillWait=30\nJobCompType=jobcomp/none\n\
             AccountingStorageType=accounting_storage/none\nJobAcctGatherType=jobacct_gather/none\n\
             NodeName={host} CPUs={cpus} State=UNKNOWN\n\
             PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
            sock = sock.display(),
            d = d.display(),
            cpus = std::thread::available_parallelism().map_or(1, |n| n.get()),
        );
        std::fs::write(d.join("slurm.conf"), conf).unwrap();
        for daemon in ["slurmctld", "slurmd"] {
            daemons.push(
                Command::new(which(daemon).unwrap())
                    .args(["-D", "-c"])
                    .env("SLURM_CONF", d.join("slurm.conf"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            );
        }
        let slurm = Slurm { dir, daemons };
        wait_for(
            || {
                let out = slurm.command("sinfo").args(["-h", "-o", "%T"]).output().unwrap();
                String::from_utf8_lossy(&out.stdout).trim() == "idle"
            },
            "the node to be idle",
        );
        Some(slurm)
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", self.conf());
        c
    }

    /// `vibeflow ARGS` over `home`, with this Slurm's configuration.
    fn vibeflow(&self, home: &Home, args: &[&str]) -> Command {
        let mut c = self.command(env!("CARGO_BIN_EXE_vibeflow"));
        c.args(args).env("VIBEFLOW_HOME", home.path());
        c
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        for d in self.daemons.iter_mut().rev() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn wait_for(mut ready: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < Duration::from_secs(60), "waited 60 s for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
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
    let out = slurm
        .vibeflow(&home, &[&TRAIN[..], &["slurm:lab", "-p", &p, "--steps", "4"]].concat())
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
    assert_eq!(steps, [1, 2, 3, 4]);
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
    let mut child = slurm
        .vibeflow(
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

    let out = slurm
        .vibeflow(&home, &["train", "-p", &p, "--resume", "run-2", "--json", "--on", "slurm:lab"])
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
}
