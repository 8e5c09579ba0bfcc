//! Training on a cluster. Slurm clusters are registered as `clusters/<name>.toml` (nothing
//! secret: SSH logs in with the user's agent or keys). Sending a run stages what its job needs
//! into the cluster's work folder (the run's rows and settings as `job.json`, the base model
//! and this `vibeflow` once per content), writes an `sbatch` script, submits it and follows it:
//! the queue state, and the training's own progress from the job's `events.jsonl`. A stop asks
//! `scancel`, whose SIGTERM the job answers like a local run (a checkpoint at the step). When
//! the job ends its adapter, checkpoints and events come back into `runs/<id>/`, recorded,
//! committed and tagged as a local run is, plus where it ran. A run the scheduler killed
//! (time limit, preemption) resumes from its last checkpoint: the job folder keeps them.
//!
//! The scheduler's tools (`sbatch`, `squeue`, `scontrol`, `scancel`) and `ssh`/`scp` are the
//! interfaces a cluster offers, so they are run as programs; the cluster's side is POSIX.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use api::cluster::{Cluster, JobState};
use api::train::{Progress, ProjectTrainRequest, RunRecord};

use crate::training::{Executed, RanCluster, RanOn, TrainJob};
use crate::{App, Error, Result};

/// `job.json`: what the job on the cluster is given.
#[derive(serde::Serialize, serde::Deserialize)]
struct JobFile {
    job: TrainJob,
    /// The staged base model, as the nodes see it.
    base: String,
    /// A prompt the job answers (greedy) with the trained adapter, as its own final check.
    check_prompt: Option<String>,
}

/// `result.json`: what the job wrote when training ended.
#[derive(serde::Serialize, serde::Deserialize)]
struct ResultFile {
    done: Executed,
    ran: RanOn,
    /// The greedy answer to `check_prompt` with the trained adapter.
    check: Option<CheckAnswer>,
}

/// The job's own greedy answer with its adapter: the imported adapter must give the same.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckAnswer {
    /// The user's message.
    pub prompt: String,
    /// The reply (greedy, [`CHECK_TOKENS`] tokens at most).
    pub text: String,
}

/// Tokens of the job's final check.
pub const CHECK_TOKENS: usize = 24;

/// `runs/<id>/cluster.json`: the job a run was sent as (to follow it again after a restart).
#[derive(serde::Serialize, serde::Deserialize)]
struct Sent {
    cluster: String,
    job_id: String,
    dir: String,
    /// Bytes of `events.jsonl` before this job (a resumed run's file holds its earlier jobs').
    #[serde(default)]
    events_from: u64,
}

const CLUSTERS: &str = "clusters";

impl App {
    /// Registers (or replaces) a cluster.
    pub fn cluster_add(&self, c: &Cluster) -> Result<()> {
        if c.name.is_empty()
            || !c.name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            return Err(Error::InvalidInput(format!(
                "cluster name '{}': use letters, digits, - and _",
                c.name
            )));
        }
        if c.scheduler != "slurm" {
            return Err(Error::InvalidInput(format!(
                "scheduler '{}': only slurm is supported",
                c.scheduler
            )));
        }
        if !c.workdir.starts_with('/') {
            return Err(Error::InvalidInput(format!(
                "workdir '{}' must be an absolute path on the cluster",
                c.workdir
            )));
        }
        let dir = self.home().join(CLUSTERS);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let path = dir.join(format!("{}.toml", c.name));
        let text = toml::to_string_pretty(c)
            .map_err(|e| Error::InvalidInput(format!("cannot write {}: {e}", path.display())))?;
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
    }

    /// The registered clusters, by name.
    pub fn clusters(&self) -> Result<Vec<Cluster>> {
        let dir = self.home().join(CLUSTERS);
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_some_and(|x| x == "toml") {
                let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
                out.push(
                    toml::from_str(&text)
                        .map_err(|e| Error::Data(format!("{}: {e}", path.display())))?,
                );
            }
        }
        out.sort_by(|a: &Cluster, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// A registered cluster.
    pub fn cluster(&self, name: &str) -> Result<Cluster> {
        self.clusters()?.into_iter().find(|c| c.name == name).ok_or_else(|| {
            Error::NotFound(format!(
                "no cluster '{name}': register it with `vibeflow cluster add {name} --slurm --workdir PATH`"
            ))
        })
    }

    /// Forgets a cluster (its jobs' folders stay on the cluster).
    pub fn cluster_remove(&self, name: &str) -> Result<()> {
        let c = self.cluster(name)?;
        let path = self.home().join(CLUSTERS).join(format!("{}.toml", c.name));
        std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))
    }

    /// Trains a run of a project on cluster `name`: staged, submitted and followed until the
    /// job ends (`on_state` hears the scheduler's state when it changes, `on_progress` each
    /// step; its `false` cancels the job, which stops at a step with a checkpoint), then
    /// imported as the run. A resumed run whose job still runs is followed again; otherwise
    /// its job is submitted again and continues from its last checkpoint.
    pub fn train_on_cluster(
        &self,
        req: &ProjectTrainRequest,
        name: &str,
        on_state: &mut dyn FnMut(&JobState),
        on_progress: &mut dyn FnMut(&Progress) -> bool,
    ) -> Result<(RunRecord, Option<CheckAnswer>)> {
        // An unknown cluster is refused before a run is claimed.
        self.cluster(name)?;
        let claimed = self.claim_run(req)?;
        self.train_claimed_on(claimed, name, on_state, on_progress)
    }

    /// The second half of [`App::train_on_cluster`], for a run claimed already (`Jobs`).
    pub fn train_claimed_on(
        &self,
        run: crate::training::ClaimedRun,
        name: &str,
        on_state: &mut dyn FnMut(&JobState),
        on_progress: &mut dyn FnMut(&Progress) -> bool,
    ) -> Result<(RunRecord, Option<CheckAnswer>)> {
        let crate::training::ClaimedRun { claim, req, row } = run;
        let result = self
            .cluster(name)
            .and_then(|cluster| self.send(&cluster, &row, &req, &claim, on_state, on_progress));
        if result.is_err() {
            self.claim_failed(&claim);
        }
        result
    }

    fn send(
        &self,
        cluster: &Cluster,
        row: &store::ProjectRow,
        req: &ProjectTrainRequest,
        claim: &crate::training::Claim,
        on_state: &mut dyn FnMut(&JobState),
        on_progress: &mut dyn FnMut(&Progress) -> bool,
    ) -> Result<(RunRecord, Option<CheckAnswer>)> {
        let mut record = claim.record.clone();
        let job = self.job_for(row, req, claim, &mut record)?;
        let shell = Shell::of(cluster);
        let local = self.project_dir(&row.slug).join("runs").join(&claim.id);
        let dir = format!("{}/vibeflow/jobs/{}/{}", cluster.workdir, row.slug, claim.id);
        // Out of git (checkpoints/ is ignored): it only serves to find the job again.
        let sent_path = local.join("checkpoints").join("cluster.json");
        // A job still queued or running (this process restarted) is followed, not sent again.
        let running = read_sent(&sent_path).filter(|s| {
            s.cluster == cluster.name && job_state(&shell, &s.job_id).is_ok_and(|st| !terminal(&st))
        });
        let events = format!("{dir}/events.jsonl");
        let (job_id, events_from) = match running {
            Some(s) => (s.job_id, s.events_from),
            None => {
                let events_from = shell.size(&events)?;
                let minutes = cluster.time_minutes.unwrap_or_else(|| {
                    let mut req = req.clone();
                    req.config = claim.config.clone();
                    self.time_limit(&req)
                });
                let script = self.stage_job(cluster, &shell, &dir, &job, minutes)?;
                let out = shell.run("sbatch", &["--parsable".into(), script])?;
                let id = out.trim().split(';').next().unwrap_or_default().to_string();
                if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
                    return Err(Error::Data(format!(
                        "sbatch answered '{}', not a job id",
                        out.trim()
                    )));
                }
                (id, events_from)
            }
        };
        let sent = Sent {
            cluster: cluster.name.clone(),
            job_id: job_id.clone(),
            dir: dir.clone(),
            events_from,
        };
        let parent = local.join("checkpoints");
        std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let text = serde_json::to_string_pretty(&sent).unwrap_or_default();
        std::fs::write(&sent_path, text).map_err(|e| Error::io(&sent_path, e))?;

        let state =
            self.follow(&shell, &job_id, &events, events_from, &record, on_state, on_progress)?;
        // Back home: the adapter, the checkpoints (a resume starts from them), the events and
        // the scheduler's log.
        for part in ["adapter", "model", "checkpoints"] {
            shell.fetch_dir(&format!("{dir}/out/{part}"), &local.join(part))?;
        }
        shell.fetch_file(&format!("{dir}/events.jsonl"), &local.join("events.jsonl"))?;
        shell.fetch_file(&format!("{dir}/slurm-{job_id}.out"), &local.join("slurm.out"))?;
        let result_path = local.join("cluster-result.json");
        let _ = std::fs::remove_file(&result_path);
        shell.fetch_file(&format!("{dir}/result.json"), &result_path)?;
        let result: Option<ResultFile> =
            std::fs::read_to_string(&result_path).ok().and_then(|t| serde_json::from_str(&t).ok());
        let _ = std::fs::remove_file(&result_path);
        let Some(result) = result else {
            let log = std::fs::read_to_string(local.join("slurm.out")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(12).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(Error::Data(format!(
                "job {job_id} on '{}' ended {state} without finishing its run{}{}",
                cluster.name,
                if resumable(&state) {
                    format!(
                        ": resume it with `vibeflow train -p {} --resume {} --on slurm:{}`",
                        row.slug, claim.id, cluster.name
                    )
                } else {
                    String::new()
                },
                if tail.is_empty() {
                    String::new()
                } else {
                    format!("; its log ends:\n{}", tail.join("\n"))
                }
            )));
        };
        let ran = RanOn {
            cluster: Some(RanCluster {
                name: cluster.name.clone(),
                job_id,
                host: cluster.ssh.clone().unwrap_or_else(|| "local".into()),
                workdir: dir,
                check_prompt: result.check.as_ref().map(|c| c.prompt.clone()),
                check_answer: result.check.as_ref().map(|c| c.text.clone()),
            }),
            ..result.ran
        };
        let mut done = result.done;
        // Where the weights are now: here, not in the job's folder.
        if let Some(name) = Path::new(&done.summary.output).file_name() {
            done.summary.output = local.join(name).display().to_string();
        }
        let run = self.record_run(row, &claim.id, record, &job, &done, &ran)?;
        Ok((run, result.check))
    }

    /// Copies what the job needs to the cluster; the `sbatch` script's path there.
    fn stage_job(
        &self,
        c: &Cluster,
        shell: &Shell,
        dir: &str,
        job: &TrainJob,
        minutes: u32,
    ) -> Result<String> {
        let root = format!("{}/vibeflow", c.workdir);
        shell.mkdir(&format!("{dir}/out"))?;
        shell.mkdir(&format!("{root}/models"))?;
        // The base model, once per content: an installed model's recorded sha256 names it (a
        // model of gigabytes is not hashed again for each run).
        let base = self.resolve_model(&job.base_model)?;
        let key = match self.store.models()?.into_iter().find(|m| m.id == job.base_model) {
            Some(m) => m.sha256.chars().take(12).collect(),
            None if base.is_dir() => short_sha(&base.join("config.json"))?,
            None => short_sha(&base)?,
        };
        let name = base.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let remote_base = format!("{root}/models/{key}-{name}");
        if base.is_dir() {
            for e in std::fs::read_dir(&base).map_err(|e| Error::io(&base, e))?.flatten() {
                if e.path().is_file() {
                    let file = e.file_name().to_string_lossy().into_owned();
                    shell.put_once(&e.path(), &format!("{remote_base}/{file}"))?;
                }
            }
        } else {
            shell.put_once(&base, &remote_base)?;
        }
        // This vibeflow, once per build, unless the cluster has one installed.
        let bin = match &c.vibeflow {
            Some(b) => b.clone(),
            None => {
                let exe = command_line()?;
                shell.mkdir(&format!("{root}/bin"))?;
                let remote = format!("{root}/bin/vibeflow-{}", short_sha(&exe)?);
                shell.put_once(&exe, &remote)?;
                remote
            }
        };
        // The first held-out row's question (else the first row's).
        let rows = || job.source.lines.iter().zip(&job.source.is_test);
        let check_prompt = rows()
            .find(|(_, test)| **test)
            .or_else(|| rows().next())
            .and_then(|((_, line), _)| first_user_message(line));
        let file = JobFile { job: job.clone(), base: remote_base, check_prompt };
        let scratch = tempfile::tempdir().map_err(|e| Error::io(Path::new("tempdir"), e))?;
        let local_job = scratch.path().join("job.json");
        let text = serde_json::to_string(&file).map_err(|e| Error::Data(e.to_string()))?;
        std::fs::write(&local_job, text).map_err(|e| Error::io(&local_job, e))?;
        shell.put(&local_job, &format!("{dir}/job.json"))?;
        let script = sbatch_script(c, dir, &bin, minutes, &job.source.name);
        let local_script = scratch.path().join("job.sh");
        std::fs::write(&local_script, script).map_err(|e| Error::io(&local_script, e))?;
        let remote_script = format!("{dir}/job.sh");
        shell.put(&local_script, &remote_script)?;
        Ok(remote_script)
    }

    /// A job's time limit when the cluster sets none: three times the estimate, at least 10
    /// minutes (an estimate that fails gives an hour).
    fn time_limit(&self, req: &ProjectTrainRequest) -> u32 {
        match self.train_estimate(req) {
            Ok(e) => ((e.seconds * 3.0 / 60.0).ceil() as u32).max(10),
            Err(_) => 60,
        }
    }

    /// Follows job `id` until it ends; its final state.
    #[allow(clippy::too_many_arguments)]
    fn follow(
        &self,
        shell: &Shell,
        id: &str,
        events: &str,
        from: u64,
        record: &store::RunRow,
        on_state: &mut dyn FnMut(&JobState),
        on_progress: &mut dyn FnMut(&Progress) -> bool,
    ) -> Result<String> {
        let (mut offset, mut pending) = (from, Vec::<u8>::new());
        let mut last = String::new();
        let mut cancelled = false;
        let pause = match shell {
            Shell::Here => Duration::from_millis(500),
            Shell::Ssh(_) => Duration::from_secs(3),
        };
        loop {
            let state = job_state(shell, id)?;
            let fresh = shell.read_from(events, offset)?;
            offset += fresh.len() as u64;
            pending.extend_from_slice(&fresh);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let Ok(event) = serde_json::from_slice::<Event>(&line) else { continue };
                let p = event.progress;
                if p.checkpoint.is_some() {
                    let mut at = record.clone();
                    at.steps = p.step as i64;
                    let _ = self.store.upsert_run(&at);
                }
                if !on_progress(&p) && !cancelled {
                    cancelled = true;
                    // SIGTERM: the job stops after its step with a checkpoint, as a local run.
                    shell.run("scancel", &["--signal=TERM".into(), "--full".into(), id.into()])?;
                }
            }
            if state != last {
                on_state(&JobState { job_id: id.into(), state: state.clone() });
                last = state.clone();
            }
            if terminal(&state) {
                return Ok(state);
            }
            std::thread::sleep(pause);
        }
    }
}

/// One line of the job's `events.jsonl`.
#[derive(serde::Serialize, serde::Deserialize)]
struct Event {
    progress: Progress,
}

/// Runs a staged job (the `sbatch` script's `vibeflow cluster run-job DIR`): trains into
/// `DIR/out` (from its newest checkpoint, if any), appends each step to `DIR/events.jsonl`, and
/// writes `DIR/result.json` with the summary and the adapter's greedy answer to the check
/// prompt. `on_progress` may stop the run (a signal): it then ends with a checkpoint.
pub fn run_job(
    dir: &Path,
    device: &candle_core::Device,
    on_progress: &mut dyn FnMut(&Progress) -> bool,
) -> Result<bool> {
    let path = dir.join("job.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let file: JobFile =
        serde_json::from_str(&text).map_err(|e| Error::Data(format!("{}: {e}", path.display())))?;
    let events_path = dir.join("events.jsonl");
    let mut events = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&events_path)
        .map_err(|e| Error::io(&events_path, e))?;
    let mut progress = |p: &Progress| {
        use std::io::Write;
        if let Ok(line) = serde_json::to_string(&Event { progress: p.clone() }) {
            let _ = writeln!(events, "{line}");
            let _ = events.flush();
        }
        on_progress(p)
    };
    let out = dir.join("out");
    let base = PathBuf::from(&file.base);
    let done = crate::training::execute(&file.job, &base, device, &out, &mut progress)?;
    let adapter = out.join("adapter");
    let check = match (&file.check_prompt, done.summary.stopped || !adapter.is_dir()) {
        (Some(prompt), false) => {
            let scratch = tempfile::tempdir().map_err(|e| Error::io(Path::new("tempdir"), e))?;
            let app = App::open(scratch.path())?;
            let answer = app.generate(
                &crate::GenerateRequest {
                    model: file.base.clone(),
                    system: None,
                    prompt: prompt.clone(),
                    adapter: Some(adapter),
                    merge: false,
                    quantized: false,
                    // Greedy: the same request here reproduces the answer.
                    sampling: engine::generate::Sampling {
                        temperature: 0.0,
                        max_tokens: CHECK_TOKENS,
                        ..engine::generate::Sampling::default()
                    },
                },
                &mut |_| true,
            )?;
            Some(CheckAnswer { prompt: prompt.clone(), text: answer.text })
        }
        _ => None,
    };
    let ran = RanOn {
        device: engine::device::name(device),
        threads: std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        os: std::env::consts::OS.into(),
        arch: std::env::consts::ARCH.into(),
        cluster: None,
        imported: None,
    };
    let stopped = done.summary.stopped;
    let result = ResultFile { done, ran, check };
    let tmp = dir.join("result.json.tmp");
    let text = serde_json::to_string_pretty(&result).map_err(|e| Error::Data(e.to_string()))?;
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    let path = dir.join("result.json");
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    Ok(!stopped)
}

/// The first user message of a chat line.
fn first_user_message(line: &str) -> Option<String> {
    let messages = engine::train::parse_chat_line(line).ok()?;
    messages.into_iter().find(|m| m.role == "user").map(|m| m.content)
}

fn read_sent(path: &Path) -> Option<Sent> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// The first 12 hex digits of a file's sha256.
fn short_sha(path: &Path) -> Result<String> {
    Ok(crate::sha256_file(path)?.chars().take(12).collect())
}

/// The job's `sbatch` script.
fn sbatch_script(c: &Cluster, dir: &str, bin: &str, minutes: u32, dataset: &str) -> String {
    let mut s = String::from("#!/bin/sh\n");
    let name: String = format!("vibeflow-{dataset}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' })
        .collect();
    s += &format!("#SBATCH --job-name={name}\n");
    s += &format!("#SBATCH --output={dir}/slurm-%j.out\n");
    s += &format!("#SBATCH --chdir={dir}\n");
    s += "#SBATCH --nodes=1\n#SBATCH --ntasks=1\n";
    if let Some(n) = c.cpus {
        s += &format!("#SBATCH --cpus-per-task={n}\n");
    }
    if let Some(g) = c.mem_gb {
        s += &format!("#SBATCH --mem={g}G\n");
    }
    s += &format!("#SBATCH --time={minutes}\n");
    if let Some(p) = &c.partition {
        s += &format!("#SBATCH --partition={p}\n");
    }
    if c.gpus > 0 {
        s += &format!("#SBATCH --gres=gpu:{}\n", c.gpus);
    }
    let device = if c.gpus > 0 { "cuda" } else { "cpu" };
    // The engine's threads follow the cores the job was given.
    s += "if [ -n \"$SLURM_CPUS_PER_TASK\" ]; then export RAYON_NUM_THREADS=$SLURM_CPUS_PER_TASK; fi\n";
    s += &format!("exec {} --device {device} cluster run-job {}\n", quote(bin), quote(dir));
    s
}

/// States after which a job does no more.
fn terminal(state: &str) -> bool {
    !matches!(
        state,
        "PENDING"
            | "CONFIGURING"
            | "RUNNING"
            | "COMPLETING"
            | "REQUEUED"
            | "RESIZING"
            | "SUSPENDED"
            | "STAGE_OUT"
            | "SIGNALING"
            | "REQUEUE_HOLD"
            | "REQUEUE_FED"
            | "RESV_DEL_HOLD"
    )
}

/// States a run resumes from (the scheduler ended it, not the training).
fn resumable(state: &str) -> bool {
    matches!(state, "CANCELLED" | "TIMEOUT" | "PREEMPTED" | "NODE_FAIL" | "DEADLINE" | "BOOT_FAIL")
}

/// The scheduler's state of job `id`: `squeue` while it is known there, then `scontrol`.
fn job_state(shell: &Shell, id: &str) -> Result<String> {
    if let Ok(out) =
        shell.run("squeue", &["-h".into(), "-j".into(), id.into(), "-o".into(), "%T".into()])
        && let Some(state) = out.split_whitespace().next()
    {
        return Ok(state.to_string());
    }
    let out = shell.run("scontrol", &["show".into(), "job".into(), "-o".into(), id.into()])?;
    out.split_whitespace()
        .find_map(|f| f.strip_prefix("JobState="))
        .map(str::to_string)
        .ok_or_else(|| Error::Data(format!("scontrol does not know job {id}: {}", out.trim())))
}

/// `'text'` for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Where the cluster's commands run: here, or over SSH.
enum Shell {
    Here,
    Ssh(String),
}

impl Shell {
    fn of(c: &Cluster) -> Shell {
        match &c.ssh {
            Some(host) => Shell::Ssh(host.clone()),
            None => Shell::Here,
        }
    }

    fn command(&self, program: &str, args: &[String]) -> Command {
        match self {
            Shell::Here => {
                let mut c = Command::new(program);
                c.args(args);
                c
            }
            Shell::Ssh(host) => {
                let mut c = ssh_command("ssh");
                let line: Vec<String> = std::iter::once(program.to_string())
                    .chain(args.iter().map(|a| quote(a)))
                    .collect();
                c.args(["-o", "BatchMode=yes", host.as_str(), "--"]).arg(line.join(" "));
                c
            }
        }
    }

    /// Runs `program`; its standard output, or an error with its standard error.
    fn run(&self, program: &str, args: &[String]) -> Result<String> {
        let out = self.command(program, args).output().map_err(|e| {
            let what = match self {
                Shell::Here => program.to_string(),
                Shell::Ssh(_) => "ssh".to_string(),
            };
            Error::Data(format!("cannot run {what}: {e} (is {what} installed and on PATH?)"))
        })?;
        if !out.status.success() {
            return Err(Error::Data(format!(
                "{program} {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn mkdir(&self, dir: &str) -> Result<()> {
        match self {
            Shell::Here => std::fs::create_dir_all(dir).map_err(|e| Error::io(Path::new(dir), e)),
            Shell::Ssh(_) => self.run("mkdir", &["-p".into(), dir.into()]).map(drop),
        }
    }

    fn exists(&self, path: &str) -> bool {
        match self {
            Shell::Here => Path::new(path).exists(),
            Shell::Ssh(_) => self.run("test", &["-e".into(), path.into()]).is_ok(),
        }
    }

    /// Copies a file there (written under a temporary name, then renamed: a reader never sees
    /// half of it).
    fn put(&self, local: &Path, remote: &str) -> Result<()> {
        let part = format!("{remote}.part");
        match self {
            Shell::Here => {
                std::fs::copy(local, &part).map_err(|e| Error::io(Path::new(&part), e))?;
                std::fs::rename(&part, remote).map_err(|e| Error::io(Path::new(remote), e))
            }
            Shell::Ssh(host) => {
                let out = ssh_command("scp")
                    .args(["-q", "-B", "-p"])
                    .arg(local)
                    .arg(format!("{host}:{part}"))
                    .output()
                    .map_err(|e| Error::Data(format!("cannot run scp: {e}")))?;
                if !out.status.success() {
                    return Err(Error::Data(format!(
                        "scp to {host} failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    )));
                }
                self.run("mv", &["-f".into(), part, remote.into()]).map(drop)
            }
        }
    }

    /// `put`, unless the file is there already (staged files are named by their content).
    fn put_once(&self, local: &Path, remote: &str) -> Result<()> {
        if self.exists(remote) {
            return Ok(());
        }
        if let Some((parent, _)) = remote.rsplit_once('/') {
            self.mkdir(parent)?;
        }
        self.put(local, remote)
    }

    /// A file's size there (0 while it does not exist).
    fn size(&self, remote: &str) -> Result<u64> {
        match self {
            Shell::Here => Ok(std::fs::metadata(remote).map_or(0, |m| m.len())),
            Shell::Ssh(_) if !self.exists(remote) => Ok(0),
            Shell::Ssh(_) => {
                let out = self.run("wc", &["-c".into(), remote.into()])?;
                out.split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| Error::Data(format!("wc -c {remote} answered '{}'", out.trim())))
            }
        }
    }

    /// The bytes of a file there from `offset` on (none while it does not exist).
    fn read_from(&self, remote: &str, offset: u64) -> Result<Vec<u8>> {
        match self {
            Shell::Here => {
                let Ok(mut f) = std::fs::File::open(remote) else { return Ok(Vec::new()) };
                f.seek(SeekFrom::Start(offset)).map_err(|e| Error::io(Path::new(remote), e))?;
                let mut out = Vec::new();
                f.read_to_end(&mut out).map_err(|e| Error::io(Path::new(remote), e))?;
                Ok(out)
            }
            Shell::Ssh(_) => {
                if !self.exists(remote) {
                    return Ok(Vec::new());
                }
                let out = self
                    .command("tail", &["-c".into(), format!("+{}", offset + 1), remote.into()])
                    .output()
                    .map_err(|e| Error::Data(format!("cannot run ssh: {e}")))?;
                Ok(out.stdout)
            }
        }
    }

    /// Copies a file back, if it exists.
    fn fetch_file(&self, remote: &str, local: &Path) -> Result<()> {
        if self.exists(remote) { self.copy_back(remote, local) } else { Ok(()) }
    }

    /// Copies a folder back (its files merged into `local`), if it exists.
    fn fetch_dir(&self, remote: &str, local: &Path) -> Result<()> {
        if !self.exists(remote) {
            return Ok(());
        }
        let mut files = Vec::new();
        match self {
            Shell::Here => crate::hub::files_under(Path::new(remote), "", &mut files),
            Shell::Ssh(_) => files.extend(
                self.run("find", &[remote.into(), "-type".into(), "f".into()])?
                    .lines()
                    .filter_map(|l| l.strip_prefix(remote))
                    .map(|r| r.trim_start_matches('/').to_string()),
            ),
        }
        for rel in files {
            self.copy_back(&format!("{remote}/{rel}"), &local.join(&rel))?;
        }
        Ok(())
    }

    /// Copies an existing file back.
    fn copy_back(&self, remote: &str, local: &Path) -> Result<()> {
        if let Some(parent) = local.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        match self {
            Shell::Here => std::fs::copy(remote, local).map(drop).map_err(|e| Error::io(local, e)),
            Shell::Ssh(host) => {
                let out = ssh_command("scp")
                    .args(["-q", "-B", "-p"])
                    .arg(format!("{host}:{remote}"))
                    .arg(local)
                    .output()
                    .map_err(|e| Error::Data(format!("cannot run scp: {e}")))?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(Error::Data(format!(
                        "scp from {host} failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    )))
                }
            }
        }
    }
}

/// The environment variable naming an SSH configuration file for clusters (`ssh -F`): hosts,
/// ports, keys and known hosts apart from the user's own `~/.ssh/config`.
pub const SSH_CONFIG_ENV: &str = "VIBEFLOW_SSH_CONFIG";

/// `ssh` or `scp`, with the configuration file [`SSH_CONFIG_ENV`] names, if any.
fn ssh_command(program: &str) -> Command {
    let mut c = Command::new(program);
    if let Some(file) = std::env::var_os(SSH_CONFIG_ENV) {
        c.arg("-F").arg(file);
    }
    c
}
/// The `vibeflow` command line to stage on a cluster: this program when it is the command line,
/// else the one installed beside it (the desktop app's own binary needs a desktop's libraries,
/// which nodes lack).
fn command_line() -> Result<std::path::PathBuf> {
    let exe = std::env::current_exe().map_err(|e| Error::io(Path::new("vibeflow"), e))?;
    let name = format!("vibeflow{}", std::env::consts::EXE_SUFFIX);
    if exe.file_name().is_some_and(|n| n == name.as_str()) {
        return Ok(exe);
    }
    let beside = exe.with_file_name(&name);
    match beside.is_file() {
        true => Ok(beside),
        false => Err(Error::InvalidInput(format!(
            "no `vibeflow` command line beside {}: install one on the cluster and register its path with `vibeflow cluster add NAME --slurm --workdir DIR --vibeflow PATH`",
            exe.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_asks_for_what_the_cluster_sets() {
        let c = Cluster {
            name: "lab".into(),
            scheduler: "slurm".into(),
            ssh: None,
            workdir: "/scratch/me".into(),
            partition: Some("gpu".into()),
            gpus: 2,
            cpus: Some(8),
            mem_gb: Some(32),
            time_minutes: None,
            vibeflow: None,
        };
        let s = sbatch_script(
            &c,
            "/scratch/me/vibeflow/jobs/p/run-1",
            "/opt/vf's/vibeflow",
            90,
            "tech qa",
        );
        for line in [
            "#SBATCH --job-name=vibeflow-tech-qa",
            "#SBATCH --cpus-per-task=8",
            "#SBATCH --mem=32G",
            "#SBATCH --time=90",
            "#SBATCH --partition=gpu",
            "#SBATCH --gres=gpu:2",
            "exec '/opt/vf'\\''s/vibeflow' --device cuda cluster run-job '/scratch/me/vibeflow/jobs/p/run-1'",
        ] {
            assert!(s.lines().any(|l| l == line), "{line} in\n{s}");
        }
        let cpu = sbatch_script(
            &Cluster { gpus: 0, cpus: None, mem_gb: None, partition: None, ..c },
            "/d",
            "/b",
            10,
            "x",
        );
        assert!(!cpu.contains("--gres") && !cpu.contains("--mem") && cpu.contains("--device cpu"));
    }

    #[test]
    fn states_that_end_a_job_and_those_a_run_resumes_from() {
        for s in ["PENDING", "RUNNING", "COMPLETING", "REQUEUED"] {
            assert!(!terminal(s), "{s}");
        }
        for s in ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "PREEMPTED", "OUT_OF_MEMORY"] {
            assert!(terminal(s), "{s}");
        }
        assert!(resumable("TIMEOUT") && resumable("PREEMPTED") && !resumable("FAILED"));
    }
}
