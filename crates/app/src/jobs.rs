//! Background jobs: a training run goes to its own thread (with its own `App` over the same
//! home), says what happens as [`JobEvent`]s to whoever listens, keeps them for whoever comes
//! later, stops when asked (with a checkpoint), and is recorded in SQLite, so a job whose
//! process died shows as interrupted after a restart. Every event is also appended to
//! `jobs/<id>.jsonl` in the home, so a job's charts and log outlive its process. The CLI's `train -p` and the window start
//! runs through the same [`Jobs`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use api::train::{JobEvent, JobInfo, JobState, Progress, RunRecord};

use crate::lock::{self, FileLock};
use crate::{App, Error, ProjectTrainRequest, Result};

/// Progress reaches listeners at most this often; every other event, and progress that carries
/// a held-out loss or a checkpoint or ends the run, always passes.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Called with each event; returning `false` unsubscribes.
pub type Listener = Box<dyn FnMut(&JobEvent) -> bool + Send>;

/// The jobs this process runs, and the record of every job of the home. Cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    shared: Arc<Shared>,
}

struct Shared {
    home: PathBuf,
    jobs: Mutex<HashMap<String, Job>>,
    ended: Condvar,
}

struct Job {
    info: JobInfo,
    history: Vec<JobEvent>,
    listeners: Vec<Listener>,
    stop: Arc<AtomicBool>,
    last_progress: Option<Instant>,
    record: Option<RunRecord>,
    /// `jobs/<id>.jsonl`: every event, one JSON object a line.
    log: PathBuf,
}

impl Jobs {
    /// The jobs of the home at `home`.
    pub fn new(home: &Path) -> Jobs {
        Jobs {
            shared: Arc::new(Shared {
                home: home.to_path_buf(),
                jobs: Mutex::default(),
                ended: Condvar::new(),
            }),
        }
    }

    /// Claims the run `req` asks for (errors such as resuming a finished run come back here,
    /// at once) and trains it on a thread of its own; returns the job.
    pub fn start_train(&self, app: &App, req: &ProjectTrainRequest) -> Result<JobInfo> {
        self.start_train_on(app, req, None)
    }

    /// `start_train`, on registered cluster `on` when there is one (`App::train_claimed_on`):
    /// the scheduler's states come as log lines, the job's steps as progress.
    pub fn start_train_on(
        &self,
        app: &App,
        req: &ProjectTrainRequest,
        on: Option<String>,
    ) -> Result<JobInfo> {
        if let Some(name) = &on {
            app.cluster(name)?;
        }
        let claimed = app.claim_run(req)?;
        // A resume is a job of its own: the id says which execution of the run it is.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let id = format!("train-{}-{}-{nanos:x}", claimed.project(), claimed.id());
        let job_lock = FileLock::try_acquire(&lock::job(&self.shared.home, &id))?
            .ok_or_else(|| Error::Conflict(format!("job {id} is running in another process")))?;
        let info = JobInfo {
            id: id.clone(),
            kind: "train".into(),
            project: claimed.project().to_string(),
            run: Some(claimed.id().to_string()),
            state: JobState::Running,
            started_at: crate::now(),
            finished_at: None,
            message: None,
            progress: None,
        };
        app.store.upsert_job(&row_of(&info))?;
        let stop = Arc::new(AtomicBool::new(false));
        let log = self.shared.home.join("jobs").join(format!("{id}.jsonl"));
        std::fs::create_dir_all(log.parent().unwrap_or(&self.shared.home))
            .map_err(|e| Error::io(&log, e))?;
        {
            let mut jobs = self.lock();
            jobs.insert(
                id.clone(),
                Job {
                    info: info.clone(),
                    history: Vec::new(),
                    listeners: Vec::new(),
                    stop: stop.clone(),
                    last_progress: None,
                    record: None,
                    log,
                },
            );
        }
        let run = claimed.id().to_string();
        self.emit(JobEvent::Started { job: id.clone(), run });
        if claimed.resumed() {
            let line = format!("resuming {} from its last checkpoint", claimed.id());
            self.emit(JobEvent::Log { job: id.clone(), line });
        }
        let jobs = self.clone();
        let device = app.device_spec.clone();
        let home = self.shared.home.clone();
        std::thread::Builder::new()
            .name(format!("job {id}"))
            .spawn(move || {
                let _held = job_lock;
                let app = App::open(&home).and_then(|mut app| {
                    app.set_device(&device)?;
                    let (j, job) = (jobs.clone(), id.clone());
                    app.on_wait(Box::new(move |line| {
                        j.emit(JobEvent::Log { job: job.clone(), line: line.to_string() })
                    }));
                    Ok(app)
                });
                let app = match app {
                    Ok(app) => app,
                    // Without an `App` the row stays `running` with a free lock: `list` shows
                    // it as interrupted, which it is.
                    Err(e) => return jobs.finish(&id, None, Err(e)),
                };
                let mut watch = Watch {
                    memory_limit: crate::projects::total_memory(),
                    config: Some(claimed.config().clone()),
                    ..Watch::default()
                };
                let mut on_progress = |p: &Progress| {
                    jobs.emit(JobEvent::Progress { job: id.clone(), progress: p.clone() });
                    if let Some((kind, message)) = watch.look(p) {
                        let fix = watch.fix(&kind);
                        jobs.emit(JobEvent::Alert { job: id.clone(), kind, message, fix });
                    }
                    !stop.load(Ordering::SeqCst)
                };
                let result = match &on {
                    None => app.train_run(claimed, &mut on_progress),
                    Some(name) => {
                        let (j, job) = (jobs.clone(), id.clone());
                        let mut on_state = |s: &api::cluster::JobState| {
                            j.emit(JobEvent::Scheduler {
                                job: job.clone(),
                                cluster: name.clone(),
                                job_id: s.job_id.clone(),
                                state: s.state.clone(),
                            })
                        };
                        app.train_claimed_on(claimed, name, &mut on_state, &mut on_progress).map(
                            |(run, check)| {
                                if let Some(c) = check {
                                    let line = format!(
                                        "the job's own check, greedy: {:?} -> {:?}",
                                        c.prompt, c.text
                                    );
                                    jobs.emit(JobEvent::Log { job: id.clone(), line });
                                }
                                run
                            },
                        )
                    }
                };
                jobs.finish(&id, Some(&app), result);
            })
            .map_err(|e| Error::Io { path: "a job's thread".into(), source: e })?;
        Ok(info)
    }

    /// Listens to job `id`: `listener` first gets every event said so far, then each new one
    /// (progress throttled). Returns `false` when this process does not run that job.
    pub fn subscribe(&self, id: &str, mut listener: Listener) -> bool {
        let mut jobs = self.lock();
        let Some(job) = jobs.get_mut(id) else { return false };
        for e in &job.history {
            if !listener(e) {
                return true;
            }
        }
        if job.info.state == JobState::Running {
            job.listeners.push(listener);
        }
        true
    }

    /// Asks job `id` to stop after its current step (it saves a checkpoint and ends as
    /// `stopped`). Returns whether this process runs it.
    pub fn stop(&self, id: &str) -> bool {
        match self.lock().get(id) {
            Some(job) => {
                job.stop.store(true, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// Waits until job `id` (of this process) ends; its final state and what the run recorded.
    pub fn wait(&self, id: &str) -> Result<(JobInfo, Option<RunRecord>)> {
        let mut jobs = self.lock();
        loop {
            let job = jobs
                .get(id)
                .ok_or_else(|| Error::NotFound(format!("no job '{id}' in this process")))?;
            if job.info.state != JobState::Running {
                return Ok((job.info.clone(), job.record.clone()));
            }
            jobs = self.shared.ended.wait(jobs).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Everything job `id` said, in order: this process's record of a job it runs, or the
    /// job's log file (a job of an earlier session or another process; a line its process
    /// died while writing is left out).
    pub fn events(&self, id: &str) -> Result<Vec<JobEvent>> {
        if let Some(job) = self.lock().get(id) {
            return Ok(job.history.clone());
        }
        if id.contains(['/', '\\']) || id.starts_with('.') {
            return Err(Error::NotFound(format!("no job '{id}'")));
        }
        let path = self.shared.home.join("jobs").join(format!("{id}.jsonl"));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(format!("no log of job '{id}'")));
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
    }

    /// Job `id`'s log as text, one line per event a person reads (as the Monitor shows it).
    pub fn log_text(&self, id: &str) -> Result<String> {
        let lines: Vec<String> =
            self.events(id)?.iter().filter_map(|e| e.log_line()).map(|(_, l)| l).collect();
        Ok(lines.join("\n") + "\n")
    }

    /// Writes job `id`'s log as `vibeflow-<id>.log` in `dir` (created when missing); its path.
    pub fn save_log(&self, id: &str, dir: &Path) -> Result<PathBuf> {
        let text = self.log_text(id)?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(format!("vibeflow-{id}.log"));
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        Ok(path)
    }

    /// Every job of the home, newest first: this process's with their latest progress, the
    /// others' as recorded (a `running` one whose process died is `interrupted`).
    pub fn list(&self, app: &App) -> Result<Vec<JobInfo>> {
        let live = self.lock();
        let mut out = Vec::new();
        for row in app.store.jobs()? {
            if let Some(job) = live.get(&row.id) {
                out.push(job.info.clone());
                continue;
            }
            let mut info = info_of(&row);
            if info.state == JobState::Running
                && FileLock::try_acquire(&lock::job(&self.shared.home, &row.id))?.is_some()
            {
                info.state = JobState::Interrupted;
                app.store.upsert_job(&row_of(&info))?;
            }
            out.push(info);
        }
        Ok(out)
    }

    fn info(&self, id: &str) -> Option<JobInfo> {
        self.lock().get(id).map(|j| j.info.clone())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Job>> {
        // A listener that panicked must not take every job with it.
        self.shared.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `event` and hands it to the listeners (progress throttled).
    fn emit(&self, event: JobEvent) {
        let mut jobs = self.lock();
        let Some(job) = jobs.get_mut(event.job()) else { return };
        let pass = match &event {
            JobEvent::Progress { progress: p, .. } => {
                job.info.progress = Some(p.clone());
                let due = job.last_progress.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY);
                let marked = p.eval_loss.is_some() || p.checkpoint.is_some();
                due || marked || p.step == p.total_steps
            }
            _ => true,
        };
        if pass {
            if matches!(event, JobEvent::Progress { .. }) {
                job.last_progress = Some(Instant::now());
            }
            job.listeners.retain_mut(|l| l(&event));
        }
        append_line(&job.log, &event);
        job.history.push(event);
    }

    /// Ends job `id` with `result`: its row (through the job's own `app`), its state and the
    /// last event.
    fn finish(&self, id: &str, app: Option<&App>, result: Result<RunRecord>) {
        let (state, message, record) = match result {
            Ok(r) if r.status == "stopped" => (JobState::Stopped, None, Some(r)),
            Ok(r) => (JobState::Done, None, Some(r)),
            Err(e) => (JobState::Failed, Some(e.to_string()), None),
        };
        if let (Some(app), Some(info)) = (app, self.info(id)) {
            let row = store::JobRow {
                state: state.name().into(),
                finished_at: Some(crate::now()),
                message: message.clone(),
                ..row_of(&info)
            };
            let _ = app.store.upsert_job(&row);
        }
        self.emit(JobEvent::Ended {
            job: id.to_string(),
            state,
            message: message.clone(),
            record: record.clone(),
        });
        let mut jobs = self.lock();
        if let Some(job) = jobs.get_mut(id) {
            job.info.state = state;
            job.info.finished_at = Some(crate::now());
            job.info.message = message;
            job.record = record;
            job.listeners.clear();
        }
        self.shared.ended.notify_all();
    }
}

/// Watches a run's progress for what a user should be told, once each.
#[derive(Default)]
struct Watch {
    /// The machine's memory: using most of it is worth a word (0: unknown).
    memory_limit: u64,
    /// The run's settings, for the fix each alert proposes for the next run.
    config: Option<api::train::TrainConfig>,
    said: Vec<&'static str>,
    evals: Vec<f64>,
    /// The epoch of the lowest held-out loss so far.
    best_epoch: f64,
    losses: Vec<f64>,
}

impl Watch {
    /// An alert for this step, if one is due: (kind, message).
    fn look(&mut self, p: &Progress) -> Option<(String, String)> {
        self.losses.push(p.loss);
        if !p.loss.is_finite() {
            return self.once(
                "nan_loss",
                format!(
                    "the training loss is {} at step {}: lower the learning rate (half, say) and start again or resume from an earlier checkpoint",
                    p.loss, p.step
                ),
            );
        }
        // Past 90 % the system starts swapping, then kills the biggest process: this one.
        if self.memory_limit > 0 && p.memory_bytes > self.memory_limit / 10 * 9 {
            return self.once(
                "memory",
                format!(
                    "the run uses {:.1} GB of this machine's {:.1} GB: stop it and resume with a smaller batch size or maximum length (or QLoRA), or close other programs",
                    p.memory_bytes as f64 / 1e9,
                    self.memory_limit as f64 / 1e9
                ),
            );
        }
        let e = p.eval_loss?;
        if self.evals.iter().all(|&x| e < x) {
            self.best_epoch = p.epoch;
        }
        self.evals.push(e);
        // The held-out loss rose at two evaluations in a row while the training loss fell.
        let n = self.evals.len();
        if n >= 3 && self.evals[n - 1] > self.evals[n - 2] && self.evals[n - 2] > self.evals[n - 3]
        {
            let half = self.losses.len() / 2;
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
            if half > 0 && mean(&self.losses[half..]) < mean(&self.losses[..half]) {
                return self.once(
                    "overfitting",
                    format!(
                        "the held-out loss rose at the last two evaluations ({:.4} → {:.4}) while the training loss fell: the model is memorizing; stop and keep an earlier checkpoint, or train fewer steps or on more data",
                        self.evals[n - 3],
                        e
                    ),
                );
            }
            // Both losses rise: the steps are too big, not the data too small.
            if half > 0 && n >= 4 && self.evals[n - 3] > self.evals[n - 4] {
                return self.once(
                    "diverging",
                    format!(
                        "the held-out loss rose at the last three evaluations ({:.4} → {:.4}) and the training loss is not falling: the learning rate is likely too high; stop, and start again with half of it",
                        self.evals[n - 4],
                        e
                    ),
                );
            }
        }
        None
    }

    /// The change for the next run that addresses alert `kind` (the PRD's table: halve the
    /// learning rate for a NaN loss, a tenth of it for a diverging one; a smaller batch, then
    /// QLoRA, for memory; as many epochs as reached the best held-out loss for overfitting).
    fn fix(&self, kind: &str) -> Option<api::advisor::Change> {
        use api::advisor::Change;
        let c = self.config.as_ref()?;
        match kind {
            "nan_loss" => Some(Change::LearningRate(c.adamw.lr / 2.0)),
            "diverging" => Some(Change::LearningRate(c.adamw.lr / 10.0)),
            "memory" if c.batch_size > 1 => Some(Change::BatchSize(c.batch_size / 2)),
            "memory" => Some(Change::Method(api::train::MethodKind::Qlora)),
            "overfitting" => {
                Some(Change::Epochs((self.best_epoch.ceil() as usize).clamp(1, c.epochs.max(1))))
            }
            _ => None,
        }
    }

    fn once(&mut self, kind: &'static str, message: String) -> Option<(String, String)> {
        if self.said.contains(&kind) {
            return None;
        }
        self.said.push(kind);
        Some((kind.to_string(), message))
    }
}

/// Appends `event` to the job's log. A log that cannot be written costs the job its later
/// replay, not its run: the error is dropped.
fn append_line(path: &Path, event: &JobEvent) {
    use std::io::Write;
    let Ok(mut line) = serde_json::to_vec(event) else { return };
    line.push(b'\n');
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path);
    // One write per line: a kill leaves at most one partial last line, which `events` skips.
    let _ = file.and_then(|mut f| f.write_all(&line));
}

fn row_of(info: &JobInfo) -> store::JobRow {
    store::JobRow {
        id: info.id.clone(),
        kind: info.kind.clone(),
        project: info.project.clone(),
        run: info.run.clone(),
        state: info.state.name().into(),
        started_at: info.started_at,
        finished_at: info.finished_at,
        message: info.message.clone(),
    }
}

fn info_of(row: &store::JobRow) -> JobInfo {
    JobInfo {
        id: row.id.clone(),
        kind: row.kind.clone(),
        project: row.project.clone(),
        run: row.run.clone(),
        state: match row.state.as_str() {
            "done" => JobState::Done,
            "stopped" => JobState::Stopped,
            "failed" => JobState::Failed,
            "interrupted" => JobState::Interrupted,
            _ => JobState::Running,
        },
        started_at: row.started_at,
        finished_at: row.finished_at,
        message: row.message.clone(),
        progress: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(step: usize, loss: f64, eval: Option<f64>) -> Progress {
        Progress {
            step,
            total_steps: 100,
            epoch: 0.0,
            loss,
            eval_loss: eval,
            lr: 1e-4,
            grad_norm: 1.0,
            tokens_per_second: 1.0,
            memory_bytes: 0,
            elapsed_seconds: 0.0,
            eta_seconds: 0.0,
            checkpoint: None,
            preference: None,
        }
    }

    /// A real run as a job: events in order, throttled progress, stop with a checkpoint, the
    /// record, and a job whose process died listed as interrupted.
    #[test]
    fn a_train_job_streams_stops_and_is_listed() {
        let Some(gguf) = crate::models::tests_default_gguf() else { return };
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(dir.path()).unwrap();
        app.model_import(&gguf, None).unwrap();
        app.project_new("J").unwrap();
        let sample = crate::ImportSource::Sample("tech-qa".into());
        let req = crate::ImportRequest {
            project: "j".into(),
            source: sample,
            name: None,
            mapping: None,
            language: None,
        };
        app.data_import(&req).unwrap();
        let config = crate::TrainConfig {
            steps: Some(50),
            batch_size: 1,
            max_len: 96,
            checkpoint_every: 0,
            ..crate::TrainConfig::default()
        };
        let req = ProjectTrainRequest {
            project: "j".into(),
            dataset: None,
            eval_rows: 1,
            config,
            resume: crate::Resume::No,
        };
        let jobs = Jobs::new(dir.path());
        let job = jobs.start_train(&app, &req).unwrap();
        assert!(job.id.starts_with("train-j-run-1-") && job.state == JobState::Running, "{job:?}");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, j) = (seen.clone(), jobs.clone());
        let id = job.id.clone();
        assert!(jobs.subscribe(
            &job.id,
            Box::new(move |e| {
                if let JobEvent::Progress { progress, .. } = e
                    && progress.step == 2
                {
                    // Not from inside a listener: a listener must not call back into Jobs.
                    let (j, id) = (j.clone(), id.clone());
                    std::thread::spawn(move || j.stop(&id));
                }
                s.lock().unwrap().push(e.clone());
                true
            })
        ));
        let (end, record) = jobs.wait(&job.id).unwrap();
        assert_eq!(end.state, JobState::Stopped);
        let record = record.unwrap();
        assert_eq!((record.id.as_str(), record.status.as_str()), ("run-1", "stopped"));
        let steps = record.summary.steps;
        assert!((2..50).contains(&steps), "{steps}");
        // Stop left a checkpoint at the step it stopped after.
        let kept = app.run_checkpoints("j", "run-1").unwrap();
        assert_eq!(kept.iter().map(|c| c.step).collect::<Vec<_>>(), [steps], "{kept:?}");
        assert!(app.run_checkpoints("j", "../x").is_err());
        let seen = seen.lock().unwrap();
        assert!(matches!(&seen[0], JobEvent::Started { run, .. } if run == "run-1"));
        assert!(matches!(seen.last(), Some(JobEvent::Ended { state: JobState::Stopped, .. })));
        // A listener that comes late gets the whole history.
        let late = Arc::new(Mutex::new(0usize));
        let l = late.clone();
        jobs.subscribe(
            &job.id,
            Box::new(move |_| {
                *l.lock().unwrap() += 1;
                true
            }),
        );
        assert!(*late.lock().unwrap() >= seen.len());
        // Another process (or a later session) reads the same events from the job's log,
        // progress unthrottled; a line cut by a kill is skipped.
        let all = jobs.events(&job.id).unwrap();
        let log = dir.path().join("jobs").join(format!("{}.jsonl", job.id));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"event\":\"prog"))
            .unwrap();
        let replayed = Jobs::new(dir.path()).events(&job.id).unwrap();
        assert_eq!(replayed, all);
        let steps_logged = all.iter().filter(|e| matches!(e, JobEvent::Progress { .. })).count();
        assert_eq!(steps_logged, steps, "every step is in the log");
        assert!(Jobs::new(dir.path()).events("../x").is_err());
        let text = Jobs::new(dir.path()).log_text(&job.id).unwrap();
        assert!(
            text.starts_with("started run-1\n") && text.ends_with("ended: stopped\n"),
            "{text}"
        );
        // Listed as stopped; a `running` row whose process is gone is interrupted.
        let mut row = row_of(&end);
        row.id = "train-j-run-9-0".into();
        row.state = "running".into();
        app.store.upsert_job(&row).unwrap();
        let list = Jobs::new(dir.path()).list(&app).unwrap();
        let states: Vec<_> = list.iter().map(|j| (j.id.as_str(), j.state)).collect();
        assert!(states.contains(&(job.id.as_str(), JobState::Stopped)), "{states:?}");
        assert!(states.contains(&("train-j-run-9-0", JobState::Interrupted)), "{states:?}");
    }

    #[test]
    fn alerts_say_nan_overfitting_divergence_and_memory_once_each() {
        let mut w = Watch::default();
        assert_eq!(w.look(&step(1, 2.0, Some(2.0))), None);
        let (kind, msg) = w.look(&step(2, f64::NAN, None)).unwrap();
        assert_eq!(kind, "nan_loss");
        assert!(msg.starts_with("the training loss is NaN at step 2: lower the learning rate"));
        assert_eq!(w.look(&step(3, f64::NAN, None)), None, "said once");

        let mut w = Watch::default();
        let evals = [2.0, 1.8, 1.9, 2.1];
        let mut alerts = Vec::new();
        for (i, e) in evals.iter().enumerate() {
            // Training loss falls all along.
            alerts.push(w.look(&step(i + 1, 2.0 - i as f64 * 0.3, Some(*e))).map(|a| a.0));
        }
        assert_eq!(alerts, [None, None, None, Some("overfitting".to_string())]);
        // A held-out loss that rises while the training loss rises too is not memorizing:
        // after three rises it is a learning rate too high.
        let mut w = Watch::default();
        let mut alerts = Vec::new();
        for (i, e) in [2.0, 1.8, 1.9, 2.1, 2.4].iter().enumerate() {
            alerts.push(w.look(&step(i + 1, 1.0 + i as f64, Some(*e))).map(|a| a.0));
        }
        assert_eq!(alerts, [None, None, None, None, Some("diverging".to_string())]);
        // Memory near the machine's limit, said once.
        let mut w = Watch { memory_limit: 1000, ..Watch::default() };
        let mut big = step(1, 1.0, None);
        big.memory_bytes = 950;
        assert_eq!(w.look(&big).map(|a| a.0).as_deref(), Some("memory"));
        assert_eq!(w.look(&big), None);
    }
}
