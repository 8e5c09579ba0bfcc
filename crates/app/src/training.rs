//! Fine-tuning: from a chat JSONL file, or on a project's dataset (recording the run).

use std::path::PathBuf;

use api::train::{Method, ProjectTrainRequest, Resume, RunRecord};
use candle_core::Device;
use engine::bundle::Bundle;
use engine::dpo::Pair;
use engine::train::{Example, Progress, Summary, TrainConfig};

use crate::lock::{self, FileLock};
use crate::{App, Error, Result};

/// The preference file a project's DPO run trains on when none is named (relative to the
/// project folder): what `vibeflow prefs export` writes.
pub const DEFAULT_PREFS: &str = "prefs/preferences.jsonl";

/// A training request from the CLI or the app.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    /// Chat JSONL file; for DPO, a preference JSONL file (TRL's format: prompt, chosen,
    /// rejected).
    pub data: PathBuf,
    /// Output folder: checkpoints, then `adapter/` (LoRA) or `model/` (full).
    pub out: PathBuf,
    /// Base model reference (installed id, .gguf file or Hugging Face folder).
    pub base: String,
    /// Engine settings.
    pub config: TrainConfig,
    /// Share of examples held out for evaluation.
    pub eval_fraction: f64,
    /// Continue from the newest checkpoint in `out`.
    pub resume: bool,
}

impl App {
    /// Trains and returns the run's summary; `on_progress` sees every step and may stop the run
    /// (it then ends with a resumable checkpoint).
    pub fn train(
        &self,
        req: &TrainRequest,
        on_progress: &mut dyn FnMut(&Progress) -> bool,
    ) -> Result<Summary> {
        let _hold = crate::memory::HoldPages::new();
        let base = self.resolve_model(&req.base)?;
        let resume = req.resume.then_some(req.out.as_path());
        if let Method::Dpo { .. } = req.config.method {
            let prefs = engine::dpo::read_preferences(&req.data)?;
            let mut bundle = open_base(&base, &req.config.method, &self.device()?)?;
            let pairs = prefs
                .iter()
                .map(|p| engine::dpo::tokenize_pair(&bundle, p, req.config.max_len))
                .collect::<engine::Result<Vec<_>>>()?;
            let (train, eval) = if pairs.len() > 1 {
                engine::train::split(pairs, req.eval_fraction, req.config.seed)
            } else {
                (pairs, Vec::new())
            };
            return Ok(engine::dpo::train(
                &mut bundle.model,
                &train,
                &eval,
                &req.config,
                &req.base,
                &req.out,
                resume,
                on_progress,
            )?);
        }
        let conversations = engine::train::read_chat_jsonl(&req.data)?;
        let mut bundle = open_base(&base, &req.config.method, &self.device()?)?;
        let examples = conversations
            .iter()
            .map(|m| engine::train::tokenize(&bundle, m, req.config.max_len))
            .collect::<engine::Result<Vec<_>>>()?;
        let (train, eval) = if examples.len() > 1 {
            engine::train::split(examples, req.eval_fraction, req.config.seed)
        } else {
            (examples, Vec::new())
        };
        Ok(engine::train::train(
            &mut bundle.model,
            &train,
            &eval,
            &req.config,
            &req.base,
            &req.out,
            resume,
            on_progress,
        )?)
    }
}

/// The base model for `method`: QLoRA keeps a GGUF's quantized weights as they are stored.
pub(crate) fn open_base(
    path: &std::path::Path,
    method: &engine::train::Method,
    device: &Device,
) -> Result<Bundle> {
    Ok(match method {
        engine::train::Method::Qlora { .. } => Bundle::open_quantized(path, device)?,
        _ => Bundle::open(path, device)?,
    })
}

/// `runs/<id>/run.toml`.
#[derive(serde::Serialize)]
struct RunFile<'a> {
    run: RunSection<'a>,
    /// Where a run sent to a cluster ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<&'a RanCluster>,
    /// Which trainer made an imported run's adapter, and from where.
    #[serde(skip_serializing_if = "Option::is_none")]
    imported: Option<&'a crate::handoff::Imported>,
    dataset: RunDataset<'a>,
    config: &'a TrainConfig,
    result: RunResult,
}

#[derive(serde::Serialize)]
struct RunSection<'a> {
    id: &'a str,
    base_model: &'a str,
    started_at: i64,
    finished_at: i64,
    status: &'a str,
    /// Where it ran: `cpu`, `cuda:0`, `metal:0`.
    device: String,
    threads: usize,
    os: &'a str,
    arch: &'a str,
}

/// Where and how a run trained.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct RanOn {
    /// `cpu`, `cuda:0`, `metal:0`.
    pub device: String,
    pub threads: usize,
    pub os: String,
    pub arch: String,
    /// The cluster and job, for a run sent to one.
    #[serde(default)]
    pub cluster: Option<RanCluster>,
    /// The trainer and folder, for a run imported from another trainer.
    #[serde(default)]
    pub imported: Option<crate::handoff::Imported>,
}

/// A cluster run's place: `[cluster]` of its `run.toml`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct RanCluster {
    pub name: String,
    pub job_id: String,
    /// The SSH host, or `local` for a scheduler on this machine.
    pub host: String,
    /// The job's folder on the cluster.
    pub workdir: String,
    /// The job's own final check: a question and its greedy answer with the adapter (the
    /// imported adapter gives the same here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_answer: Option<String>,
}

/// Everything a run needs to train, apart from its base model's files: what a cluster job is
/// given (`job.json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct TrainJob {
    /// The project's base model reference (for the record).
    pub base_model: String,
    pub config: TrainConfig,
    pub eval_rows: usize,
    pub source: Source,
}

/// What training produced.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Executed {
    pub summary: Summary,
    pub train_rows: usize,
    pub eval_rows: usize,
}

/// Trains `job` on the model at `base` into `out` (checkpoints, then the adapter or model),
/// continuing from the newest checkpoint there. Needs no home: a cluster job runs it.
pub(crate) fn execute(
    job: &TrainJob,
    base: &std::path::Path,
    device: &Device,
    out: &std::path::Path,
    on_progress: &mut dyn FnMut(&Progress) -> bool,
) -> Result<Executed> {
    let config = &job.config;
    let mut bundle = open_base(base, &config.method, device)?;
    let items = job.source.tokenize(&bundle, config, job.eval_rows)?;
    // Continue from the newest checkpoint; a run that died before its first starts over.
    let from = engine::train::latest_checkpoint(out)?.map(|_| out);
    let model = &mut bundle.model;
    let summary = match &items {
        Items::Chat(train, eval) => engine::train::train(
            model,
            train,
            eval,
            config,
            &job.base_model,
            out,
            from,
            on_progress,
        )?,
        Items::Pairs(train, eval) => {
            engine::dpo::train(model, train, eval, config, &job.base_model, out, from, on_progress)?
        }
    };
    let (train_rows, eval_rows) = items.counts();
    Ok(Executed { summary, train_rows, eval_rows })
}

#[derive(serde::Serialize)]
struct RunDataset<'a> {
    name: &'a str,
    version: u32,
    sha256: &'a str,
    train_rows: usize,
    test_rows: usize,
    /// Test rows evaluated during training (the first `eval_rows` of the split).
    eval_rows: usize,
}

#[derive(serde::Serialize)]
struct RunResult {
    steps: usize,
    eval_loss_before: Option<f64>,
    eval_loss_after: Option<f64>,
    last_train_loss: Option<f64>,
    trainable_parameters: usize,
    /// sha256 of `adapter/adapter_model.safetensors` (weights stay out of git).
    adapter_sha256: Option<String>,
}

impl App {
    /// Trains on a project's dataset (its seeded split: train rows to learn, test rows to
    /// evaluate), records the run in SQLite and commits `runs/<id>/run.toml`.
    ///
    /// The run holds its own lock while it trains, so a run whose process dies shows as
    /// `interrupted` and can be resumed; the project's lock is taken only to claim the run and
    /// to record it, so imports go on meanwhile.
    pub fn train_project(
        &self,
        req: &ProjectTrainRequest,
        on_progress: &mut dyn FnMut(&Progress) -> bool,
    ) -> Result<RunRecord> {
        let claimed = self.claim_run(req)?;
        self.train_run(claimed, on_progress)
    }

    /// The first half of [`App::train_project`]: picks the run (a new id, or the one to
    /// resume), takes its lock and records it as `running`. Errors a user should see at once
    /// (a finished run, a run training elsewhere) come from here; the training itself can then
    /// go to another thread ([`crate::Jobs`]).
    pub fn claim_run(&self, req: &ProjectTrainRequest) -> Result<ClaimedRun> {
        if req.resume == Resume::No
            && let Some((_, why)) = req.problems().into_iter().next()
        {
            return Err(Error::InvalidInput(why));
        }
        let row = self.project_row(&req.project)?;
        if req.resume == Resume::No && matches!(req.config.method, Method::Dpo { .. }) {
            self.preference_path(&row.slug, req.dataset.as_deref())?;
        }
        let claim = self.claim(&row, req)?;
        Ok(ClaimedRun { claim, req: req.clone(), row })
    }

    /// The second half of [`App::train_project`]: trains the claimed run and records it.
    pub fn train_run(
        &self,
        run: ClaimedRun,
        on_progress: &mut dyn FnMut(&Progress) -> bool,
    ) -> Result<RunRecord> {
        let _hold = crate::memory::HoldPages::new();
        let ClaimedRun { claim, req, row } = run;
        let result = self.train_claimed(&row, &req, &claim, on_progress);
        if result.is_err() {
            self.claim_failed(&claim);
        }
        result
    }

    /// After a claimed run's training failed: this process lives on, so its row must say what
    /// happened (not `interrupted`): a new run failed; a resumed one stays as resumable as it
    /// was.
    pub(crate) fn claim_failed(&self, claim: &Claim) {
        let mut ended = claim.record.clone();
        ended.status = claim.previous.clone().unwrap_or_else(|| "failed".into());
        ended.finished_at = Some(crate::now());
        let _ = self.store.upsert_run(&ended);
    }

    /// Picks the run (a new id, or the one to resume), takes its lock and records it as
    /// `running`, under the project's lock.
    fn claim(&self, row: &store::ProjectRow, req: &ProjectTrainRequest) -> Result<Claim> {
        let _held = self.lock_project(&row.slug)?;
        let runs = self.store.runs(&row.slug)?;
        let dir = self.project_dir(&row.slug);
        let resumable = |r: &&store::RunRow| matches!(r.status.as_str(), "interrupted" | "stopped");
        let existing = match &req.resume {
            Resume::No => None,
            Resume::Latest => Some(
                runs.iter()
                    .filter(resumable)
                    .max_by_key(|r| (r.started_at, run_number(&r.id)))
                    .ok_or_else(|| {
                        Error::NotFound(format!(
                            "project '{}' has no interrupted or stopped run to resume: start one with `vibeflow train -p {}`",
                            row.slug, row.slug
                        ))
                    })?
                    .clone(),
            ),
            Resume::Run(id) => {
                let r = runs.iter().find(|r| &r.id == id).ok_or_else(|| {
                    Error::NotFound(format!("no run '{id}' in project '{}'", row.slug))
                })?;
                match r.status.as_str() {
                    "done" => {
                        return Err(Error::Conflict(format!(
                            "run '{id}' is done ({} steps): there is nothing to resume; start a new run with `vibeflow train -p {}`",
                            r.steps, row.slug
                        )));
                    }
                    "running" => {
                        return Err(Error::Conflict(format!(
                            "run '{id}' is still training in another process: stop it first"
                        )));
                    }
                    _ => Some(r.clone()),
                }
            }
        };
        let id = match &existing {
            Some(r) => r.id.clone(),
            None => next_run_id(&runs, &dir.join("runs")),
        };
        let lock =
            FileLock::try_acquire(&lock::run(&self.home, &row.slug, &id))?.ok_or_else(|| {
                Error::Conflict(format!("run '{id}' is still training in another process"))
            })?;
        let out = dir.join("runs").join(&id);
        std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
        // A resumed run goes on with its own settings, whatever the request says now.
        let config_path = out.join(RUN_CONFIG);
        let settings = match &existing {
            Some(_) => match std::fs::read_to_string(&config_path) {
                Ok(text) => serde_json::from_str(&text).map_err(|e| {
                    Error::Data(format!("{}: {e}: start a new run", config_path.display()))
                })?,
                Err(_) => RunSettings { config: req.config.clone(), eval_rows: req.eval_rows },
            },
            None => {
                let settings = RunSettings { config: req.config.clone(), eval_rows: req.eval_rows };
                let text = serde_json::to_string_pretty(&settings).unwrap_or_default();
                let dir = out.join("checkpoints");
                std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                std::fs::write(&config_path, text).map_err(|e| Error::io(&config_path, e))?;
                settings
            }
        };
        let RunSettings { config, eval_rows } = settings;
        let record = store::RunRow {
            id: id.clone(),
            project: row.slug.clone(),
            dataset: match &existing {
                Some(r) => r.dataset.clone(),
                None => req.dataset.clone().unwrap_or_default(),
            },
            dataset_sha256: existing.as_ref().map(|r| r.dataset_sha256.clone()).unwrap_or_default(),
            base_model: row.base_model.clone(),
            method: config.method.name().into(),
            status: "running".into(),
            steps: existing.as_ref().map_or(0, |r| r.steps),
            train_loss: None,
            eval_loss: None,
            started_at: existing.as_ref().map_or_else(crate::now, |r| r.started_at),
            finished_at: None,
        };
        self.store.upsert_run(&record)?;
        let previous = existing.map(|r| r.status);
        Ok(Claim {
            id,
            config,
            eval_rows,
            resumed: previous.is_some(),
            previous,
            record,
            _lock: lock,
        })
    }

    fn train_claimed(
        &self,
        row: &store::ProjectRow,
        req: &ProjectTrainRequest,
        claim: &Claim,
        on_progress: &mut dyn FnMut(&Progress) -> bool,
    ) -> Result<RunRecord> {
        let mut record = claim.record.clone();
        let job = self.job_for(row, req, claim, &mut record)?;
        let base = self.resolve_model(&row.base_model)?;
        let device = self.device()?;
        let dir = self.project_dir(&row.slug);
        let out = dir.join("runs").join(&claim.id);
        // The row follows the checkpoints: an interrupted run says where it will resume.
        let mut progress = |p: &Progress| {
            if p.checkpoint.is_some() {
                let mut at = record.clone();
                at.steps = p.step as i64;
                let _ = self.store.upsert_run(&at);
            }
            on_progress(p)
        };
        let done = execute(&job, &base, &device, &out, &mut progress)?;
        let ran = RanOn {
            device: engine::device::name(&device),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
            cluster: None,
            imported: None,
        };
        self.record_run(row, &claim.id, record, &job, &done, &ran)
    }

    /// What claimed run `claim` trains on and how, its row updated with the dataset.
    pub(crate) fn job_for(
        &self,
        row: &store::ProjectRow,
        req: &ProjectTrainRequest,
        claim: &Claim,
        record: &mut store::RunRow,
    ) -> Result<TrainJob> {
        let id = &claim.id;
        let config = &claim.config;
        // A resumed run trains on what it started on.
        let dataset = match claim.resumed {
            true => Some(claim.record.dataset.clone()).filter(|d| !d.is_empty()),
            false => req.dataset.clone(),
        };
        let source = match config.method {
            Method::Dpo { .. } => self.preference_rows(&row.slug, dataset.as_deref())?,
            _ => {
                let (lines, is_test, manifest) =
                    self.dataset_rows(&row.slug, dataset.as_deref())?;
                Source {
                    name: manifest.dataset.name.clone(),
                    version: manifest.dataset.version,
                    sha256: manifest.result.sha256.clone(),
                    file: format!("data/{}.jsonl", manifest.dataset.name),
                    test_rows: manifest.split.test,
                    lines: lines.into_iter().enumerate().map(|(i, l)| (i + 1, l)).collect(),
                    is_test,
                }
            }
        };
        if claim.resumed
            && !claim.record.dataset_sha256.is_empty()
            && claim.record.dataset_sha256 != source.sha256
        {
            return Err(Error::Conflict(source.changed_since(id)));
        }
        record.dataset = source.name.clone();
        record.dataset_sha256 = source.sha256.clone();
        self.store.upsert_run(record)?;
        Ok(TrainJob {
            base_model: row.base_model.clone(),
            config: config.clone(),
            eval_rows: claim.eval_rows,
            source,
        })
    }

    /// Writes a trained run's `run.toml`, commits it (and tags a finished run) with its row.
    pub(crate) fn record_run(
        &self,
        row: &store::ProjectRow,
        id: &str,
        mut record: store::RunRow,
        job: &TrainJob,
        done: &Executed,
        ran: &RanOn,
    ) -> Result<RunRecord> {
        let (config, source, summary) = (&job.config, &job.source, &done.summary);
        let dir = self.project_dir(&row.slug);
        let rel = PathBuf::from("runs").join(id);
        let out = dir.join(&rel);
        let status = if summary.stopped { "stopped" } else { "done" };
        let adapter = out.join("adapter").join("adapter_model.safetensors");
        let adapter_sha256 = adapter.exists().then(|| crate::sha256_file(&adapter)).transpose()?;
        let finished_at = crate::now();
        let file = RunFile {
            run: RunSection {
                id,
                base_model: &row.base_model,
                started_at: record.started_at,
                finished_at,
                status,
                device: ran.device.clone(),
                threads: ran.threads,
                os: &ran.os,
                arch: &ran.arch,
            },
            cluster: ran.cluster.as_ref(),
            imported: ran.imported.as_ref(),
            dataset: RunDataset {
                name: &source.name,
                version: source.version,
                sha256: &source.sha256,
                train_rows: done.train_rows,
                test_rows: source.test_rows,
                eval_rows: done.eval_rows,
            },
            config,
            result: RunResult {
                steps: summary.steps,
                eval_loss_before: summary.eval_loss_before,
                eval_loss_after: summary.eval_loss_after,
                last_train_loss: summary.losses.last().copied(),
                trainable_parameters: summary.trainable_parameters,
                adapter_sha256,
            },
        };
        let text = toml::to_string_pretty(&file)
            .map_err(|e| Error::InvalidInput(format!("cannot write run.toml: {e}")))?;
        record.status = status.into();
        record.steps = summary.steps as i64;
        record.train_loss = summary.losses.last().copied();
        record.eval_loss = summary.eval_loss_after;
        record.finished_at = Some(finished_at);
        let fmt = |l: Option<f64>| l.map_or("-".to_string(), |l| format!("{l:.4}"));
        let message = format!(
            "{} {id}{} on {} ({status}, {} steps{}): held-out loss {} -> {}",
            match &ran.imported {
                Some(i) => format!("Import ({})", i.tool),
                None => "Train".into(),
            },
            match config.method {
                Method::Dpo { .. } => " (DPO)",
                _ => "",
            },
            source.label(),
            summary.steps,
            match &ran.cluster {
                Some(c) => format!(", on {} job {}", c.name, c.job_id),
                None => String::new(),
            },
            fmt(summary.eval_loss_before),
            fmt(summary.eval_loss_after)
        );
        let (commit, tag) = {
            let _held = self.lock_project(&row.slug)?;
            let run_toml = out.join("run.toml");
            std::fs::write(&run_toml, text).map_err(|e| Error::io(&run_toml, e))?;
            let mut paths = vec![rel.join("run.toml")];
            // A cluster run's own events and scheduler log come with it.
            for file in [
                rel.join("adapter").join("adapter_config.json"),
                rel.join("events.jsonl"),
                rel.join("slurm.out"),
            ] {
                if dir.join(&file).exists() {
                    paths.push(file);
                }
            }
            // A finished run is the project's model from now on.
            if status == "done" {
                crate::projects::set_model_run(&dir, Some(id))?;
                paths.push("vibeflow.toml".into());
            }
            let refs: Vec<&std::path::Path> = paths.iter().map(PathBuf::as_path).collect();
            let commit = self.commit_with_rows(&row.slug, &refs, &message, |_| {
                vec![store::Change::Run(record.clone())]
            })?;
            let tag = match status {
                "done" => Some(self.tag_version(&row.slug, &commit)?),
                _ => None,
            };
            (commit, tag)
        };
        Ok(RunRecord {
            id: id.to_string(),
            dataset: source.name.clone(),
            dataset_version: source.version,
            status: status.into(),
            path: out.display().to_string(),
            commit,
            tag,
            summary: summary.clone(),
        })
    }

    /// The checkpoints run `run` of `project` keeps, oldest first (older ones are pruned as
    /// training goes on; Resume starts from the newest).
    pub fn run_checkpoints(&self, project: &str, run: &str) -> Result<Vec<api::train::Checkpoint>> {
        let row = self.project_row(project)?;
        if run.is_empty() || run.contains(['/', '\\']) || run.starts_with('.') {
            return Err(Error::InvalidInput(format!("'{run}' is not a run id")));
        }
        let out = self.project_dir(&row.slug).join("runs").join(run);
        Ok(engine::train::list_checkpoints(&out)
            .into_iter()
            .map(|(step, path)| {
                let saved_at = std::fs::metadata(path.join("state.json"))
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs() as i64);
                api::train::Checkpoint { step, path: path.display().to_string(), saved_at }
            })
            .collect())
    }

    /// The runs of a project, oldest first; a run whose process died shows as `interrupted`.
    pub fn runs(&self, project: &str) -> Result<Vec<api::RunSummary>> {
        let row = self.project_row(project)?;
        self.sync(&row.slug)?;
        Ok(self
            .store
            .runs(&row.slug)?
            .into_iter()
            .map(|r| api::RunSummary {
                id: r.id,
                dataset: r.dataset,
                method: r.method,
                status: r.status,
                steps: r.steps.max(0) as u64,
                train_loss: r.train_loss,
                eval_loss: r.eval_loss,
                started_at: r.started_at,
                finished_at: r.finished_at,
            })
            .collect())
    }
}

/// `runs/<id>/checkpoints/run-config.json`: the settings a run started with, which its resumes
/// keep (beside the checkpoints, out of git: `run.toml` records them when the run ends).
const RUN_CONFIG: &str = "checkpoints/run-config.json";

/// What `run-config.json` holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct RunSettings {
    config: TrainConfig,
    eval_rows: usize,
}

/// A run claimed by [`App::claim_run`], holding its lock until it is trained (or dropped).
pub struct ClaimedRun {
    pub(crate) claim: Claim,
    pub(crate) req: ProjectTrainRequest,
    pub(crate) row: store::ProjectRow,
}

impl ClaimedRun {
    /// The run's id (`run-3`).
    pub fn id(&self) -> &str {
        &self.claim.id
    }

    /// The settings it trains with (a resumed run's own).
    pub fn config(&self) -> &api::train::TrainConfig {
        &self.claim.config
    }

    /// The project's slug.
    pub fn project(&self) -> &str {
        &self.row.slug
    }

    /// Whether it continues an interrupted or stopped run.
    pub fn resumed(&self) -> bool {
        self.claim.resumed
    }
}

/// A run claimed by this process: its id, settings and lock.
pub(crate) struct Claim {
    pub(crate) id: String,
    pub(crate) config: TrainConfig,
    /// Held-out rows evaluated (kept by resumes, so a run's eval losses stay comparable).
    pub(crate) eval_rows: usize,
    pub(crate) resumed: bool,
    /// The status of the run resumed.
    pub(crate) previous: Option<String>,
    pub(crate) record: store::RunRow,
    pub(crate) _lock: FileLock,
}

/// `run-N` for the N after every run the index or the `runs/` folder knows (a folder left by a
/// run that never reached the index keeps its number).
fn next_run_id(runs: &[store::RunRow], folder: &std::path::Path) -> String {
    let in_folder = std::fs::read_dir(folder)
        .map(|d| {
            d.flatten().map(|e| run_number(&e.file_name().to_string_lossy())).max().unwrap_or(0)
        })
        .unwrap_or(0);
    let in_index = runs.iter().map(|r| run_number(&r.id)).max().unwrap_or(0);
    format!("run-{}", in_folder.max(in_index) + 1)
}

pub(crate) fn run_number(id: &str) -> u64 {
    id.strip_prefix("run-").and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// What a run trains on, read: a dataset version's rows with their split, or a DPO run's
/// preference file (whose lines the same content-keyed split holds out).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Source {
    /// The dataset's name, or the preference file as named (relative to the project folder).
    pub(crate) name: String,
    /// The dataset's version; 0 for a preference file (versioned by git, not the index).
    pub(crate) version: u32,
    pub(crate) sha256: String,
    /// Where a line number points (`data/<name>.jsonl`, the preference file).
    pub(crate) file: String,
    pub(crate) test_rows: usize,
    /// The rows, each with its line number in `file`.
    pub(crate) lines: Vec<(usize, String)>,
    pub(crate) is_test: Vec<bool>,
}

impl Source {
    /// `tech-qa v2`, or the preference file.
    fn label(&self) -> String {
        match self.version {
            0 => self.name.clone(),
            v => format!("{} v{v}", self.name),
        }
    }

    /// Why run `id` cannot resume on this source: it changed since the run started.
    fn changed_since(&self, id: &str) -> String {
        match self.version {
            0 => format!(
                "preference file '{}' changed since run '{id}' started: start a new run",
                self.name
            ),
            v => format!(
                "dataset '{}' changed since run '{id}' started (it is v{v} now): start a new run",
                self.name
            ),
        }
    }

    /// Tokenized training and held-out items (the first `eval_rows` of the test split):
    /// examples, or preference pairs for DPO.
    fn tokenize(&self, bundle: &Bundle, config: &TrainConfig, eval_rows: usize) -> Result<Items> {
        let dpo = matches!(config.method, Method::Dpo { .. });
        let mut items = if dpo {
            Items::Pairs(Vec::new(), Vec::new())
        } else {
            Items::Chat(Vec::new(), Vec::new())
        };
        let mut held_out = 0;
        for (i, (number, line)) in self.lines.iter().enumerate() {
            if self.is_test[i] && held_out >= eval_rows {
                continue;
            }
            held_out += usize::from(self.is_test[i]);
            let at = |e: String| Error::Data(format!("{}:{number}: {e}", self.file));
            match &mut items {
                Items::Chat(train, eval) => {
                    let messages =
                        engine::train::parse_chat_line(line).map_err(|e| at(e.to_string()))?;
                    let ex = engine::train::tokenize(bundle, &messages, config.max_len)?;
                    if self.is_test[i] { eval.push(ex) } else { train.push(ex) }
                }
                Items::Pairs(train, eval) => {
                    let p = engine::dpo::parse_preference_line(line).map_err(at)?;
                    let pair = engine::dpo::tokenize_pair(bundle, &p, config.max_len)?;
                    if self.is_test[i] { eval.push(pair) } else { train.push(pair) }
                }
            }
        }
        Ok(items)
    }
}

impl Source {
    /// The number of training rows and the tokenized held-out examples (the first
    /// `eval_rows` of the test split): what evaluating an adapter trained elsewhere needs.
    pub(crate) fn chat_items(
        &self,
        bundle: &Bundle,
        config: &TrainConfig,
        eval_rows: usize,
    ) -> Result<(usize, Vec<Example>)> {
        let train = self.is_test.iter().filter(|t| !**t).count();
        let mut eval = Vec::new();
        for (i, (number, line)) in self.lines.iter().enumerate() {
            if !self.is_test[i] || eval.len() >= eval_rows {
                continue;
            }
            let messages = engine::train::parse_chat_line(line)
                .map_err(|e| Error::Data(format!("{}:{number}: {e}", self.file)))?;
            eval.push(engine::train::tokenize(bundle, &messages, config.max_len)?);
        }
        Ok((train, eval))
    }
}

/// A run's tokenized training and held-out items.
enum Items {
    Chat(Vec<Example>, Vec<Example>),
    Pairs(Vec<Pair>, Vec<Pair>),
}

impl Items {
    /// Training and held-out items.
    fn counts(&self) -> (usize, usize) {
        match self {
            Items::Chat(t, e) => (t.len(), e.len()),
            Items::Pairs(t, e) => (t.len(), e.len()),
        }
    }
}

impl App {
    /// The lines of a DPO run's preference file (`name`, relative to the project folder or
    /// absolute; default [`DEFAULT_PREFS`]), a tenth of them (at most the run's held-out rows)
    /// held out by the same content-keyed split as datasets.
    fn preference_rows(&self, slug: &str, name: Option<&str>) -> Result<Source> {
        let (name, path) = self.preference_path(slug, name)?;
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let lines: Vec<(usize, String)> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| (i + 1, l.to_string()))
            .collect();
        if lines.is_empty() {
            return Err(Error::Data(format!("{name}: no preference pairs")));
        }
        let refs: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
        let test_rows = lines.len() / 10;
        Ok(Source {
            name: name.clone(),
            version: 0,
            sha256: crate::sha256_file(&path)?,
            file: name,
            test_rows,
            is_test: data::split::assign(&refs, PREFS_SPLIT_SEED, test_rows),
            lines,
        })
    }
}

impl App {
    /// A DPO run's preference file: its name (`name`, default [`DEFAULT_PREFS`]) and path
    /// (relative to the project folder unless absolute), which must exist.
    fn preference_path(&self, slug: &str, name: Option<&str>) -> Result<(String, PathBuf)> {
        let name = name.unwrap_or(DEFAULT_PREFS);
        let path = self.project_dir(slug).join(name);
        if !path.is_file() {
            return Err(Error::NotFound(format!(
                "project '{slug}' has no preference file {name}: vote in the arena and export the votes with `vibeflow prefs export -p {slug}`, or name a file with --prefs"
            )));
        }
        Ok((name.to_string(), path))
    }

    /// A DPO run's preference file as chat JSONL lines, two per pair (the prompt with the
    /// chosen and with the rejected answer, each on its pair's side of the split), and the
    /// file's name: the sequences the run trains on, for the estimate.
    pub(crate) fn preference_as_chat(
        &self,
        slug: &str,
        name: Option<&str>,
    ) -> Result<(Vec<String>, Vec<bool>, String)> {
        let source = self.preference_rows(slug, name)?;
        let (mut lines, mut is_test) = (Vec::new(), Vec::new());
        for ((number, line), &test) in source.lines.iter().zip(&source.is_test) {
            let p = engine::dpo::parse_preference_line(line)
                .map_err(|e| Error::Data(format!("{}:{number}: {e}", source.file)))?;
            for completion in [&p.chosen, &p.rejected] {
                let messages: Vec<_> = p.prompt.iter().chain(completion).collect();
                lines.push(serde_json::json!({ "messages": messages }).to_string());
                is_test.push(test);
            }
        }
        Ok((lines, is_test, source.name))
    }
}

/// The seed of a preference file's held-out split.
const PREFS_SPLIT_SEED: u64 = 42;
