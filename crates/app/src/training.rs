//! Fine-tuning: from a chat JSONL file, or on a project's dataset (recording the run).

use std::path::PathBuf;

use candle_core::Device;
use engine::bundle::Bundle;
use engine::train::{Progress, Summary, TrainConfig};

use crate::{App, Result};

/// A training request from the CLI or the app.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    /// Chat JSONL file.
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
        let resume = req.resume.then_some(req.out.as_path());
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
fn open_base(
    path: &std::path::Path,
    method: &engine::train::Method,
    device: &Device,
) -> Result<Bundle> {
    Ok(match method {
        engine::train::Method::Qlora { .. } => Bundle::open_quantized(path, device)?,
        _ => Bundle::open(path, device)?,
    })
}

/// Default of [`ProjectTrainRequest::eval_rows`].
pub const DEFAULT_EVAL_ROWS: usize = 200;

/// `vibeflow train -p P`: train on the project's current dataset and record the run.
#[derive(Debug, Clone)]
pub struct ProjectTrainRequest {
    /// Project slug.
    pub project: String,
    /// Dataset name; default: the current one.
    pub dataset: Option<String>,
    /// Held-out rows evaluated during training (the first of the test split): evaluation runs
    /// the model over each, so on a CPU a full large test split would dwarf the training.
    pub eval_rows: usize,
    /// Engine settings.
    pub config: TrainConfig,
    /// Continue this run (its newest checkpoint) instead of starting a new one.
    pub resume: Option<String>,
}

/// What `train -p` recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRecord {
    /// Run id (`run-1`, `run-2`, …).
    pub id: String,
    /// Dataset name and version trained on.
    pub dataset: String,
    /// Dataset version.
    pub dataset_version: u32,
    /// `done` or `stopped`.
    pub status: String,
    /// The run folder (`runs/<id>/` in the project).
    pub path: String,
    /// The commit that recorded it.
    pub commit: String,
    /// The engine's summary.
    pub summary: Summary,
}

/// `runs/<id>/run.toml`.
#[derive(serde::Serialize)]
struct RunFile<'a> {
    run: RunSection<'a>,
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
    os: &'static str,
    arch: &'static str,
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
    pub fn train_project(
        &self,
        req: &ProjectTrainRequest,
        on_progress: &mut dyn FnMut(&Progress) -> bool,
    ) -> Result<RunRecord> {
        let _hold = crate::memory::HoldPages::new();
        let row = self.project_row(&req.project)?;
        let (lines, is_test, manifest) = self.dataset_rows(&row.slug, req.dataset.as_deref())?;
        let base = self.resolve_model(&row.base_model)?;
        let device = self.device()?;
        let mut bundle = open_base(&base, &req.config.method, &device)?;
        let (mut train, mut eval) = (Vec::new(), Vec::new());
        for (i, line) in lines.iter().enumerate() {
            if is_test[i] && eval.len() >= req.eval_rows {
                continue;
            }
            let messages = engine::train::parse_chat_line(line).map_err(|e| {
                crate::Error::Data(format!("data/{}.jsonl:{}: {e}", manifest.dataset.name, i + 1))
            })?;
            let ex = engine::train::tokenize(&bundle, &messages, req.config.max_len)?;
            if is_test[i] { eval.push(ex) } else { train.push(ex) }
        }
        let existing = self.store.runs(&row.slug)?;
        let id = match &req.resume {
            Some(id) if existing.iter().any(|r| &r.id == id) => id.clone(),
            Some(id) => {
                return Err(crate::Error::NotFound(format!(
                    "no run '{id}' in project '{}'",
                    row.slug
                )));
            }
            None => format!("run-{}", existing.len() + 1),
        };
        let dir = self.project_dir(&row.slug);
        let rel = PathBuf::from("runs").join(&id);
        let out = dir.join(&rel);
        std::fs::create_dir_all(&out).map_err(|e| crate::Error::io(&out, e))?;
        let method = req.config.method.name();
        let started_at = crate::now();
        let mut record = store::RunRow {
            id: id.clone(),
            project: row.slug.clone(),
            dataset: manifest.dataset.name.clone(),
            dataset_sha256: manifest.result.sha256.clone(),
            base_model: row.base_model.clone(),
            method: method.into(),
            status: "running".into(),
            steps: 0,
            train_loss: None,
            eval_loss: None,
            started_at,
            finished_at: None,
        };
        self.store.upsert_run(&record)?;
        let result = engine::train::train(
            &mut bundle.model,
            &train,
            &eval,
            &req.config,
            &row.base_model,
            &out,
            req.resume.is_some().then_some(out.as_path()),
            on_progress,
        );
        let summary = match result {
            Ok(s) => s,
            Err(e) => {
                record.status = "failed".into();
                record.finished_at = Some(crate::now());
                self.store.upsert_run(&record)?;
                return Err(e.into());
            }
        };
        let status = if summary.stopped { "stopped" } else { "done" };
        let adapter = out.join("adapter").join("adapter_model.safetensors");
        let adapter_sha256 = adapter.exists().then(|| crate::sha256_file(&adapter)).transpose()?;
        let finished_at = crate::now();
        let file = RunFile {
            run: RunSection {
                id: &id,
                base_model: &row.base_model,
                started_at,
                finished_at,
                status,
                device: engine::device::name(&device),
                threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
                os: std::env::consts::OS,
                arch: std::env::consts::ARCH,
            },
            dataset: RunDataset {
                name: &manifest.dataset.name,
                version: manifest.dataset.version,
                sha256: &manifest.result.sha256,
                train_rows: train.len(),
                test_rows: manifest.split.test,
                eval_rows: eval.len(),
            },
            config: &req.config,
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
            .map_err(|e| crate::Error::InvalidInput(format!("cannot write run.toml: {e}")))?;
        let run_toml = out.join("run.toml");
        std::fs::write(&run_toml, text).map_err(|e| crate::Error::io(&run_toml, e))?;
        let mut paths = vec![rel.join("run.toml")];
        let adapter_config = rel.join("adapter").join("adapter_config.json");
        if dir.join(&adapter_config).exists() {
            paths.push(adapter_config);
        }
        let refs: Vec<&std::path::Path> = paths.iter().map(PathBuf::as_path).collect();
        let fmt = |l: Option<f64>| l.map_or("-".to_string(), |l| format!("{l:.4}"));
        let commit = vcs::commit(
            &dir,
            &refs,
            &format!(
                "Train {id} on {} v{} ({status}, {} steps): held-out loss {} -> {}",
                manifest.dataset.name,
                manifest.dataset.version,
                summary.steps,
                fmt(summary.eval_loss_before),
                fmt(summary.eval_loss_after)
            ),
        )?;
        record.status = status.into();
        record.steps = summary.steps as i64;
        record.train_loss = summary.losses.last().copied();
        record.eval_loss = summary.eval_loss_after;
        record.finished_at = Some(finished_at);
        self.store.upsert_run(&record)?;
        Ok(RunRecord {
            id,
            dataset: manifest.dataset.name.clone(),
            dataset_version: manifest.dataset.version,
            status: status.into(),
            path: out.display().to_string(),
            commit,
            summary,
        })
    }
}
