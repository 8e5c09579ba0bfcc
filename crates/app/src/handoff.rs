//! A run handed to another trainer and taken back: `export --format llamafactory|axolotl`
//! writes a run's data (in the tool's chat format), its settings (the tool's YAML, same base,
//! template, LoRA, schedule, batch, length and seed) and launch commands for one GPU, several
//! GPUs and several nodes; `runs import` takes the PEFT adapter such a trainer writes back as a
//! run of the project, evaluated on the project's held-out rows like a run trained here.
//!
//! The export's `vibeflow.json` names the project, dataset version and settings it came from,
//! so the imported run records where it came from.

use std::path::{Path, PathBuf};

use api::export::{ExportFormat, ExportProgress, ExportRequest, ExportResult};
use api::train::{
    Method, Precision, ProjectTrainRequest, Resume, RunRecord, Schedule, Summary, TrainConfig,
};
use engine::template::Message;
use serde_norway::{Mapping, Value};

use crate::training::{Executed, RanOn};
use crate::{App, Error, Result};

/// The export's own record: what it was made from (`vibeflow.json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Handoff {
    /// `llamafactory` or `axolotl`.
    pub tool: String,
    pub project: String,
    /// The run whose settings were handed over; empty for the recommended settings.
    #[serde(default)]
    pub run: String,
    /// The project's base model reference.
    pub base_model: String,
    /// What the tool trains on: a hub repository, or `base` (the folder written beside).
    pub model_name_or_path: String,
    pub dataset: String,
    pub dataset_version: u32,
    pub dataset_sha256: String,
    pub train_rows: usize,
    pub test_rows: usize,
    pub config: TrainConfig,
    pub created_at: i64,
}

/// Where an imported run was trained: `[imported]` of its `run.toml`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Imported {
    /// `LLaMA-Factory`, `Axolotl` or `PEFT`.
    pub tool: String,
    /// The folder the adapter came from (absolute).
    pub from: String,
    /// What the adapter says it was trained on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_model_name_or_path: Option<String>,
    /// The export it was trained from, when the folder holds its `vibeflow.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_sha256: Option<String>,
}

/// The export file that names where it came from.
const HANDOFF_FILE: &str = "vibeflow.json";

impl App {
    /// Writes run `req.run`'s (or the recommended run's) data, settings and launch commands for
    /// LLaMA-Factory or Axolotl, and records the export in the project's history.
    pub(crate) fn export_recipe(
        &self,
        req: &ExportRequest,
        on_progress: &mut dyn FnMut(ExportProgress),
    ) -> Result<ExportResult> {
        let tool = Tool::of(req.format)?;
        if req.quant.is_some() {
            return Err(Error::InvalidInput("--quant applies to --format gguf only".into()));
        }
        let row = self.project_row(&req.project)?;
        let slug = row.slug.clone();
        let mut notes = Vec::new();
        let (config, dataset, run_sha) = match req.run.trim() {
            "" => (self.train_plan(&slug)?.request.config, None, None),
            id => {
                let run =
                    self.store.runs(&slug)?.into_iter().find(|r| r.id == id).ok_or_else(|| {
                        Error::NotFound(format!("no run '{id}' in project '{slug}'"))
                    })?;
                let path = self.project_dir(&slug).join("runs").join(id).join("run.toml");
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    Error::Conflict(format!(
                        "run '{id}' has no recorded settings ({}: {e}): hand over a finished or stopped run, or none for the recommended settings",
                        path.display()
                    ))
                })?;
                let config = toml::from_str::<RunToml>(&text)
                    .map_err(|e| Error::Data(format!("{}: {e}", path.display())))?
                    .config;
                (config, Some(run.dataset), Some(run.dataset_sha256))
            }
        };
        if let Method::Dpo { .. } = config.method {
            return Err(Error::InvalidInput(
                "DPO runs cannot be handed to LLaMA-Factory or Axolotl yet (LoRA, QLoRA and full fine-tuning can)".into(),
            ));
        }
        if let Some(l) = config.method.lora()
            && l.alpha.fract() != 0.0
        {
            return Err(Error::InvalidInput(format!(
                "{} takes a whole-number LoRA alpha; this run's is {}: train with a whole alpha",
                tool.name(),
                l.alpha
            )));
        }
        let (lines, is_test, manifest) =
            self.dataset_rows(&slug, dataset.as_deref().filter(|d| !d.is_empty()))?;
        if let Some(sha) = run_sha.filter(|s| !s.is_empty() && *s != manifest.result.sha256) {
            notes.push(format!(
                "The dataset changed since run '{}' trained (on sha256 {}…): this export holds {} v{}.",
                req.run,
                &sha[..sha.len().min(12)],
                manifest.dataset.name,
                manifest.dataset.version
            ));
        }
        let label = format!(
            "{}-{}",
            if req.run.trim().is_empty() { "plan" } else { req.run.trim() },
            tool.key()
        );
        let out = if req.out.trim().is_empty() {
            self.project_dir(&slug).join("exports").join(&label)
        } else {
            PathBuf::from(&req.out)
        };
        let created = crate::export::prepare_out(&out)?;
        let written = (|| -> Result<(Vec<PathBuf>, Handoff)> {
            let base = self.resolve_model(&row.base_model)?;
            let text = engine::export::TextSide::open(&base)?;
            let system = text.default_system();
            let card = crate::catalog::card(&row.base_model);
            let mut files = Vec::new();
            // The rows, in the tool's chat format, the system turn written out.
            let mut rows = Rows::default();
            for (i, line) in lines.iter().enumerate() {
                let messages = engine::train::parse_chat_line(line).map_err(|e| {
                    Error::Data(format!("data/{}.jsonl:{}: {e}", manifest.dataset.name, i + 1))
                })?;
                rows.push(tool, messages, system.as_deref(), is_test[i]);
            }
            if rows.train.is_empty() {
                return Err(Error::Data(format!(
                    "no row of {} v{} fits {}'s chat format: {}",
                    manifest.dataset.name,
                    manifest.dataset.version,
                    tool.name(),
                    rows.skipped_note()
                )));
            }
            if rows.skipped.values().sum::<usize>() > 0 {
                notes.push(format!("Left out: {}.", rows.skipped_note()));
            }
            for (name, body) in [("train.jsonl", &rows.train), ("test.jsonl", &rows.test)] {
                let path = out.join(name);
                std::fs::write(&path, body.join("\n") + "\n").map_err(|e| Error::io(&path, e))?;
                files.push(path);
            }
            // What the tool trains on: the hub's repository, or the base written beside.
            let model = match (&card, req.base_weights) {
                (Some(c), false) => c.hub.repo.clone(),
                _ => {
                    let dir = out.join("base");
                    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                    on_progress(ExportProgress {
                        stage: "loading the base model".into(),
                        fraction: 0.0,
                    });
                    let bundle = engine::bundle::Bundle::open(&base, &self.device()?)?;
                    let mut tell = |stage: &str, fraction: f64| {
                        on_progress(ExportProgress { stage: format!("base: {stage}"), fraction })
                    };
                    files.extend(engine::export::write_hf(&bundle.model, &text, &dir, &mut tell)?);
                    "base".to_string()
                }
            };
            let name = manifest.dataset.name.clone();
            let template = card.as_ref().and_then(|c| llamafactory_template(&c.id));
            let yaml = match tool {
                Tool::Llamafactory => {
                    let info = serde_json::json!({
                        name.clone(): dataset_entry("train.jsonl"),
                        format!("{name}_test"): dataset_entry("test.jsonl"),
                    });
                    let path = out.join("dataset_info.json");
                    let body = serde_json::to_string_pretty(&info).unwrap_or_default();
                    std::fs::write(&path, body + "\n").map_err(|e| Error::io(&path, e))?;
                    files.push(path);
                    llamafactory_yaml(&config, &model, &name, template)
                }
                Tool::Axolotl => axolotl_yaml(&config, &model),
            };
            let path = out.join(tool.yaml());
            std::fs::write(&path, yaml).map_err(|e| Error::io(&path, e))?;
            files.push(path);
            for (file, body) in tool.launch_configs() {
                let path = out.join(file);
                std::fs::write(&path, body).map_err(|e| Error::io(&path, e))?;
                files.push(path);
            }
            let handoff = Handoff {
                tool: tool.key().into(),
                project: slug.clone(),
                run: req.run.trim().into(),
                base_model: row.base_model.clone(),
                model_name_or_path: model.clone(),
                dataset: name,
                dataset_version: manifest.dataset.version,
                dataset_sha256: manifest.result.sha256.clone(),
                train_rows: rows.train.len(),
                test_rows: rows.test.len(),
                config: config.clone(),
                created_at: crate::now(),
            };
            let path = out.join(HANDOFF_FILE);
            let body = serde_json::to_string_pretty(&handoff).unwrap_or_default();
            std::fs::write(&path, body + "\n").map_err(|e| Error::io(&path, e))?;
            files.push(path);
            let path = out.join("README.md");
            std::fs::write(&path, readme(tool, &handoff, template.is_some(), &notes))
                .map_err(|e| Error::io(&path, e))?;
            files.push(path);
            Ok((files, handoff))
        })();
        let (written, handoff) = match written {
            Ok(w) => w,
            Err(e) => {
                crate::export::clean_up(&out, created);
                return Err(e);
            }
        };
        let export = crate::export::ManifestExport {
            run: handoff.run.clone(),
            format: crate::export::format_name(req.format).into(),
            quant: None,
            out: String::new(),
            base_model: handoff.base_model.clone(),
            created_at: handoff.created_at,
        };
        let mut result = self
            .record_export_files(&slug, &label, export, &out, written, on_progress)
            .inspect_err(|_| crate::export::clean_up(&out, created))?;
        result.notes = notes;
        Ok(result)
    }

    /// Brings the PEFT adapter in `dir` (a LLaMA-Factory or Axolotl output folder, one of its
    /// `checkpoint-N/`, or any PEFT adapter folder) into `project` as a new run, evaluated on
    /// the first `eval_rows` of the project's held-out rows, committed and tagged like a run
    /// trained here.
    pub fn import_run(&self, project: &str, dir: &Path, eval_rows: usize) -> Result<RunRecord> {
        let adapter = find_adapter(dir)?;
        check_adapter(&adapter)?;
        let handoff = find_handoff(&adapter);
        let peft = engine::adapter::PeftAdapter::read(&adapter, &candle_core::Device::Cpu)?;
        let state = trainer_state(&adapter);
        let row = self.project_row(project)?;
        let lora = api::train::LoraConfig {
            r: peft.config.r,
            alpha: peft.config.alpha,
            dropout: peft.config.dropout,
            targets: peft.config.targets.clone(),
        };
        drop(peft);
        // The record keeps the settings the export handed over, with the adapter's own shape.
        let mut config = match &handoff {
            Some((h, _)) => h.config.clone(),
            None => TrainConfig::default(),
        };
        config.method = match config.method {
            Method::Qlora { quant, .. } => Method::Qlora { lora, quant },
            _ => Method::Lora(lora),
        };
        if let Some(s) = &state {
            config.steps = Some(s.steps.max(1));
        }
        let req = ProjectTrainRequest {
            project: row.slug.clone(),
            dataset: handoff
                .as_ref()
                .map(|(h, _)| h.dataset.clone())
                .filter(|d| self.dataset_name(&row.slug, Some(d)).is_ok()),
            eval_rows,
            config,
            resume: Resume::No,
        };
        let claimed = self.claim_run(&req)?;
        let result = self.import_claimed(&claimed, &adapter, handoff, state);
        if result.is_err() {
            self.claim_failed(&claimed.claim);
        }
        result
    }

    fn import_claimed(
        &self,
        claimed: &crate::ClaimedRun,
        adapter: &Path,
        handoff: Option<(Handoff, String)>,
        state: Option<TrainerState>,
    ) -> Result<RunRecord> {
        let (claim, row) = (&claimed.claim, &claimed.row);
        let mut record = claim.record.clone();
        let job = self.job_for(row, &claimed.req, claim, &mut record)?;
        let out = self.project_dir(&row.slug).join("runs").join(&claim.id);
        let dest = out.join("adapter");
        std::fs::create_dir_all(&dest).map_err(|e| Error::io(&dest, e))?;
        for name in ["adapter_config.json", "adapter_model.safetensors"] {
            let (from, to) = (adapter.join(name), dest.join(name));
            std::fs::copy(&from, &to).map_err(|e| Error::io(&from, e))?;
        }
        // Held-out loss without and with the adapter, on the rows a run here evaluates.
        let base = self.resolve_model(&row.base_model)?;
        let device = self.device()?;
        let mut bundle = crate::training::open_base(&base, &job.config.method, &device)?;
        let (train_rows, eval) = job.source.chat_items(&bundle, &job.config, job.eval_rows)?;
        let batch = job.config.batch_size.max(1);
        let before = match eval.is_empty() {
            true => None,
            false => Some(engine::train::evaluate(&bundle.model, &eval, batch)?),
        };
        let (_, params) = engine::adapter::load_peft(&mut bundle.model, &dest, &device)?;
        let after = match eval.is_empty() {
            true => None,
            false => Some(engine::train::evaluate(&bundle.model, &eval, batch)?),
        };
        let trainable_parameters =
            params.vars.iter().map(|(_, v)| v.as_tensor().elem_count()).sum();
        let config_text =
            std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap_or_default();
        let base_model_name_or_path = serde_json::from_str::<serde_json::Value>(&config_text)
            .ok()
            .and_then(|v| v["base_model_name_or_path"].as_str().map(String::from));
        let tool = tool_of(adapter);
        let state = state.unwrap_or_default();
        let done = Executed {
            summary: Summary {
                steps: state.steps,
                stopped: false,
                eval_loss_before: before,
                eval_loss_after: after,
                losses: state.losses,
                trainable_parameters,
                output: dest.display().to_string(),
            },
            train_rows,
            eval_rows: eval.len(),
        };
        let ran = RanOn {
            device: "elsewhere".into(),
            threads: 0,
            os: String::new(),
            arch: String::new(),
            cluster: None,
            imported: Some(Imported {
                tool,
                from: std::fs::canonicalize(adapter)
                    .unwrap_or_else(|_| adapter.to_path_buf())
                    .display()
                    .to_string(),
                base_model_name_or_path,
                export_sha256: handoff.map(|(_, sha)| sha),
            }),
        };
        self.record_run(row, &claim.id, record, &job, &done, &ran)
    }
}

/// `run.toml`'s settings.
#[derive(serde::Deserialize)]
struct RunToml {
    config: TrainConfig,
}

/// The two trainers a run can be handed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Llamafactory,
    Axolotl,
}

impl Tool {
    fn of(format: ExportFormat) -> Result<Tool> {
        match format {
            ExportFormat::Llamafactory => Ok(Tool::Llamafactory),
            ExportFormat::Axolotl => Ok(Tool::Axolotl),
            f => Err(Error::InvalidInput(format!("{f:?} is not a trainer to hand a run to"))),
        }
    }

    fn key(self) -> &'static str {
        match self {
            Tool::Llamafactory => "llamafactory",
            Tool::Axolotl => "axolotl",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Tool::Llamafactory => "LLaMA-Factory",
            Tool::Axolotl => "Axolotl",
        }
    }

    fn yaml(self) -> &'static str {
        match self {
            Tool::Llamafactory => "llamafactory.yaml",
            Tool::Axolotl => "axolotl.yaml",
        }
    }

    /// The distributed launchers' configurations written beside the YAML.
    fn launch_configs(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Tool::Llamafactory => vec![
                ("ds_z2_config.json", DS_Z2),
                ("ds_z3_config.json", DS_Z3),
                ("fsdp_config.yaml", FSDP),
            ],
            Tool::Axolotl => vec![("deepspeed_zero2.json", DS_Z2), ("deepspeed_zero3.json", DS_Z3)],
        }
    }
}

/// DeepSpeed ZeRO-2 with every size left to the trainer (`auto`), as both tools' examples.
const DS_Z2: &str = r#"{
  "train_batch_size": "auto",
  "train_micro_batch_size_per_gpu": "auto",
  "gradient_accumulation_steps": "auto",
  "gradient_clipping": "auto",
  "zero_allow_untested_optimizer": true,
  "fp16": {"enabled": "auto", "loss_scale": 0, "loss_scale_window": 1000, "initial_scale_power": 16, "hysteresis": 2, "min_loss_scale": 1},
  "bf16": {"enabled": "auto"},
  "zero_optimization": {
    "stage": 2,
    "allgather_partitions": true,
    "allgather_bucket_size": 5e8,
    "overlap_comm": false,
    "reduce_scatter": true,
    "reduce_bucket_size": 5e8,
    "contiguous_gradients": true,
    "round_robin_gradients": true
  }
}
"#;

/// DeepSpeed ZeRO-3: parameters sharded too, for a model that does not fit one GPU.
const DS_Z3: &str = r#"{
  "train_batch_size": "auto",
  "train_micro_batch_size_per_gpu": "auto",
  "gradient_accumulation_steps": "auto",
  "gradient_clipping": "auto",
  "zero_allow_untested_optimizer": true,
  "fp16": {"enabled": "auto", "loss_scale": 0, "loss_scale_window": 1000, "initial_scale_power": 16, "hysteresis": 2, "min_loss_scale": 1},
  "bf16": {"enabled": "auto"},
  "zero_optimization": {
    "stage": 3,
    "overlap_comm": false,
    "contiguous_gradients": true,
    "sub_group_size": 1e9,
    "reduce_bucket_size": "auto",
    "stage3_prefetch_bucket_size": "auto",
    "stage3_param_persistence_threshold": "auto",
    "stage3_max_live_parameters": 1e9,
    "stage3_max_reuse_distance": 1e9,
    "stage3_gather_16bit_weights_on_model_save": true
  }
}
"#;

/// An `accelerate` configuration for FSDP on two GPUs of one machine.
const FSDP: &str = "compute_environment: LOCAL_MACHINE
debug: false
distributed_type: FSDP
downcast_bf16: 'no'
fsdp_config:
  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
  fsdp_backward_prefetch: BACKWARD_PRE
  fsdp_cpu_ram_efficient_loading: true
  fsdp_forward_prefetch: false
  fsdp_offload_params: false
  fsdp_sharding_strategy: FULL_SHARD
  fsdp_state_dict_type: FULL_STATE_DICT
  fsdp_sync_module_states: true
  fsdp_use_orig_params: true
machine_rank: 0
main_training_function: main
mixed_precision: bf16
num_machines: 1
num_processes: 2  # the number of GPUs
rdzv_backend: static
same_network: true
tpu_env: []
tpu_use_cluster: false
tpu_use_sudo: false
use_cpu: false
";

/// LLaMA-Factory's template for a catalog model (its own names); `None`: the tokenizer's.
fn llamafactory_template(card_id: &str) -> Option<&'static str> {
    [("smollm2-", "smollm2"), ("qwen2.5-", "qwen"), ("llama-3", "llama3"), ("mistral-", "mistral")]
        .into_iter()
        .find(|(prefix, _)| card_id.starts_with(prefix))
        .map(|(_, t)| t)
}

/// A `dataset_info.json` entry for a file of OpenAI-style `messages` rows (LLaMA-Factory's
/// `sharegpt` formatting reads ShareGPT's `from`/`value` unless the tags say otherwise).
fn dataset_entry(file: &str) -> serde_json::Value {
    serde_json::json!({
        "file_name": file,
        "formatting": "sharegpt",
        "columns": {"messages": "messages"},
        "tags": {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
            "system_tag": "system"
        }
    })
}

/// The rows as written, and what was left out and why.
#[derive(Default)]
struct Rows {
    train: Vec<String>,
    test: Vec<String>,
    skipped: std::collections::BTreeMap<&'static str, usize>,
}

impl Rows {
    /// Adds one conversation, its system turn written out (the trainers' templates would add
    /// their own default, which is not always the model's: LLaMA-Factory's SmolLM2 one ends in a
    /// period the model's does not), or counts why it cannot be.
    fn push(&mut self, tool: Tool, mut messages: Vec<Message>, system: Option<&str>, test: bool) {
        if let Some(s) = system
            && messages.first().is_none_or(|m| m.role != "system")
        {
            messages.insert(0, Message::new("system", s));
        }
        if let Err(why) = fits(tool, &messages) {
            *self.skipped.entry(why).or_default() += 1;
            return;
        }
        let line = match tool {
            // Plain role/content: the tags of `dataset_info.json` name nothing else.
            Tool::Llamafactory => serde_json::json!({
                "messages": messages
                    .iter()
                    .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
                    .collect::<Vec<_>>()
            }),
            Tool::Axolotl => serde_json::json!({ "messages": messages }),
        };
        let line = line.to_string();
        if test { self.test.push(line) } else { self.train.push(line) }
    }

    fn skipped_note(&self) -> String {
        self.skipped
            .iter()
            .map(|(why, n)| format!("{n} {} ({why})", if *n == 1 { "row" } else { "rows" }))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whether a conversation is one the tool trains on as it is. LLaMA-Factory silently drops a
/// row whose turns do not alternate user/assistant after an optional system turn, ending on
/// the assistant: such rows are counted here instead.
fn fits(tool: Tool, messages: &[Message]) -> std::result::Result<(), &'static str> {
    if !messages.iter().any(|m| m.role == "assistant") {
        return Err("no assistant reply");
    }
    if tool == Tool::Axolotl {
        return Ok(());
    }
    let turns = match messages.first() {
        Some(m) if m.role == "system" => &messages[1..],
        _ => messages,
    };
    if turns.iter().any(|m| !matches!(m.role.as_str(), "user" | "assistant")) {
        return Err("tool or other roles");
    }
    let alternates = turns
        .iter()
        .enumerate()
        .all(|(i, m)| m.role == if i % 2 == 0 { "user" } else { "assistant" });
    if !alternates || turns.len() % 2 != 0 {
        return Err("turns that do not alternate user, assistant");
    }
    Ok(())
}

/// One commented YAML section: `### title` then its keys.
fn section(out: &mut String, title: &str, keys: Vec<(&str, Value)>) {
    out.push_str(&format!("### {title}\n"));
    for (k, v) in keys {
        match v.as_f64().filter(|_| v.is_f64()) {
            Some(x) => out.push_str(&format!("{k}: {}\n", yaml_float(x))),
            None => {
                let mut map = Mapping::new();
                map.insert(Value::String(k.into()), v);
                out.push_str(&serde_norway::to_string(&map).unwrap_or_default());
            }
        }
    }
    out.push('\n');
}

/// A float as YAML 1.1 readers (PyYAML, so both trainers) read a float: with a point, and an
/// exponent with its sign (`1.0e-08`); `1e-8` would be read as a string.
fn yaml_float(x: f64) -> String {
    if x != 0.0 && !(1e-4..1e6).contains(&x.abs()) {
        let e = format!("{x:e}");
        let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
        let mantissa =
            if mantissa.contains('.') { mantissa.to_string() } else { format!("{mantissa}.0") };
        let exp = exp.strip_prefix('-').map_or(format!("+{exp}"), |n| format!("-{n}"));
        return format!("{mantissa}e{exp}");
    }
    format!("{x:?}")
}

fn int(n: usize) -> Value {
    Value::Number((n as u64).into())
}

fn float(x: f64) -> Value {
    Value::Number(x.into())
}

/// An f32 setting as the decimal it was written as (0.05, not 0.05000000074505806).
fn float32(x: f32) -> Value {
    float(x.to_string().parse().unwrap_or(x as f64))
}

fn text(s: &str) -> Value {
    Value::String(s.into())
}

/// The schedule by Hugging Face's name (both tools pass it to `transformers`).
fn schedule(c: &TrainConfig) -> &'static str {
    match c.schedule {
        Schedule::Cosine => "cosine",
        Schedule::Linear => "linear",
        Schedule::Constant if c.warmup_steps > 0 => "constant_with_warmup",
        Schedule::Constant => "constant",
    }
}

/// The optimizer's settings under the names both tools pass to `transformers`.
fn transformers_keys(c: &TrainConfig) -> [(&'static str, Value); 7] {
    [
        ("warmup_steps", int(c.warmup_steps)),
        ("weight_decay", float(c.adamw.weight_decay)),
        ("adam_beta1", float(c.adamw.beta1)),
        ("adam_beta2", float(c.adamw.beta2)),
        ("adam_epsilon", float(c.adamw.eps)),
        ("max_grad_norm", float(c.max_grad_norm)),
        ("seed", int(c.seed as usize)),
    ]
}

/// LLaMA-Factory's training YAML: only keys it knows (it refuses unknown ones).
fn llamafactory_yaml(
    c: &TrainConfig,
    model: &str,
    dataset: &str,
    template: Option<&str>,
) -> String {
    let mut s = String::from(
        "# LLaMA-Factory (0.9.5) settings written by VibeFlow from the project's run: the same\n\
         # base, data, LoRA, schedule, batch, length and seed. Launch commands: README.md.\n\n",
    );
    section(
        &mut s,
        "model",
        vec![("model_name_or_path", text(model)), ("trust_remote_code", Value::Bool(true))],
    );
    let mut method = vec![("stage", text("sft")), ("do_train", Value::Bool(true))];
    match c.method.lora() {
        Some(l) => {
            method.push(("finetuning_type", text("lora")));
            method.push(("lora_rank", int(l.r)));
            method.push(("lora_alpha", int(l.alpha as usize)));
            method.push(("lora_dropout", float32(l.dropout)));
            method.push(("lora_target", text(&l.targets.join(","))));
            if let Method::Qlora { .. } = c.method {
                // bitsandbytes' 4-bit NF4: a GPU's, as VibeFlow's QLoRA keeps GGUF blocks.
                method.push(("quantization_bit", int(4)));
            }
        }
        None => method.push(("finetuning_type", text("full"))),
    }
    section(&mut s, "method", method);
    let mut data = vec![("dataset", text(dataset)), ("dataset_dir", text("."))];
    if let Some(t) = template {
        data.push(("template", text(t)));
    }
    data.push(("cutoff_len", int(c.max_len)));
    data.push(("overwrite_cache", Value::Bool(true)));
    section(&mut s, "dataset", data);
    let mut output = vec![
        ("output_dir", text("output")),
        ("logging_steps", int(1)),
        ("overwrite_output_dir", Value::Bool(true)),
        ("report_to", text("none")),
    ];
    if c.checkpoint_every > 0 {
        output.push(("save_steps", int(c.checkpoint_every)));
        output.push(("save_total_limit", int(c.keep_checkpoints.max(1))));
    }
    section(&mut s, "output", output);
    let mut train = vec![
        ("per_device_train_batch_size", int(c.batch_size)),
        ("gradient_accumulation_steps", int(c.grad_accum)),
        ("learning_rate", float(c.adamw.lr)),
    ];
    match c.steps {
        Some(n) => train.push(("max_steps", int(n))),
        None => train.push(("num_train_epochs", float(c.epochs as f64))),
    }
    train.push(("lr_scheduler_type", text(schedule(c))));
    train.extend(transformers_keys(c));
    train.extend([
        ("bf16", Value::Bool(c.precision == Precision::Bf16)),
        ("disable_gradient_checkpointing", Value::Bool(!c.gradient_checkpointing)),
        ("ddp_timeout", int(180_000_000)),
    ]);
    section(&mut s, "train", train);
    s
}

/// Axolotl's YAML, on the tokenizer's own chat template (the model's, exactly).
fn axolotl_yaml(c: &TrainConfig, model: &str) -> String {
    let mut s = String::from(
        "# Axolotl settings written by VibeFlow from the project's run: the same base, data,\n\
         # LoRA, schedule, batch, length and seed. Launch commands: README.md.\n\n",
    );
    section(
        &mut s,
        "model",
        vec![("base_model", text(model)), ("trust_remote_code", Value::Bool(true))],
    );
    let mut dataset = Mapping::new();
    for (k, v) in [
        ("path", text("train.jsonl")),
        ("ds_type", text("json")),
        ("type", text("chat_template")),
        ("field_messages", text("messages")),
        ("roles_to_train", Value::Sequence(vec![text("assistant")])),
        ("train_on_eos", text("turn")),
    ] {
        dataset.insert(text(k), v);
    }
    section(
        &mut s,
        "dataset",
        vec![
            ("chat_template", text("tokenizer_default")),
            ("datasets", Value::Sequence(vec![Value::Mapping(dataset)])),
            ("val_set_size", float(0.0)),
            ("dataset_prepared_path", text("last_run_prepared")),
            ("sequence_len", int(c.max_len)),
            ("sample_packing", Value::Bool(false)),
        ],
    );
    let mut method = Vec::new();
    if let Some(l) = c.method.lora() {
        if let Method::Qlora { .. } = c.method {
            method.push(("adapter", text("qlora")));
            method.push(("load_in_4bit", Value::Bool(true)));
        } else {
            method.push(("adapter", text("lora")));
        }
        method.push(("lora_r", int(l.r)));
        method.push(("lora_alpha", int(l.alpha as usize)));
        method.push(("lora_dropout", float32(l.dropout)));
        method.push((
            "lora_target_modules",
            Value::Sequence(l.targets.iter().map(|t| text(t)).collect()),
        ));
    }
    if !method.is_empty() {
        section(&mut s, "method", method);
    }
    let mut train = vec![
        ("output_dir", text("output")),
        ("micro_batch_size", int(c.batch_size)),
        ("gradient_accumulation_steps", int(c.grad_accum)),
        ("learning_rate", float(c.adamw.lr)),
    ];
    match c.steps {
        Some(n) => train.push(("max_steps", int(n))),
        None => train.push(("num_epochs", float(c.epochs as f64))),
    }
    train.extend([("lr_scheduler", text(schedule(c))), ("optimizer", text("adamw_torch"))]);
    train.extend(transformers_keys(c));
    train.extend([
        ("bf16", text("auto")),
        ("gradient_checkpointing", Value::Bool(c.gradient_checkpointing)),
        ("logging_steps", int(1)),
    ]);
    if c.checkpoint_every > 0 {
        train.push(("save_steps", int(c.checkpoint_every)));
        train.push(("save_total_limit", int(c.keep_checkpoints.max(1))));
    }
    section(&mut s, "train", train);
    s
}

/// The export's README: what is in it and how to launch it.
fn readme(tool: Tool, h: &Handoff, template: bool, notes: &[String]) -> String {
    let mut s = format!(
        "# {} v{} for {}\n\nWritten by VibeFlow from project `{}`{}: {} training rows (`train.jsonl`), {} held out (`test.jsonl`), \
         every conversation with its system turn written out. Trains on `{}`.\n\n",
        h.dataset,
        h.dataset_version,
        tool.name(),
        h.project,
        if h.run.is_empty() {
            " (its recommended settings)".to_string()
        } else {
            format!(", run `{}`'s settings", h.run)
        },
        h.train_rows,
        h.test_rows,
        h.model_name_or_path,
    );
    for n in notes {
        s.push_str(&format!("> {n}\n\n"));
    }
    let yaml = tool.yaml();
    match tool {
        Tool::Llamafactory => {
            if !template {
                s.push_str(
                    "No LLaMA-Factory template is named for this base: LLaMA-Factory reads the tokenizer's chat template.\n\n",
                );
            }
            s.push_str(&format!(
                "Install: `pip install llamafactory==0.9.5` (add `\"deepspeed>=0.10.0,<=0.18.4\"` for DeepSpeed). Run every command in this folder.\n\n\
                 | Where | Command |\n|---|---|\n\
                 | one GPU | `CUDA_VISIBLE_DEVICES=0 llamafactory-cli train {yaml}` (set `bf16: true` on an Ampere or newer GPU) |\n\
                 | several GPUs (DDP) | `CUDA_VISIBLE_DEVICES=0,1,2,3 llamafactory-cli train {yaml}` |\n\
                 | several GPUs, DeepSpeed ZeRO-2 | `FORCE_TORCHRUN=1 llamafactory-cli train {yaml} deepspeed=ds_z2_config.json` |\n\
                 | a model too big for one GPU (ZeRO-3) | `FORCE_TORCHRUN=1 llamafactory-cli train {yaml} deepspeed=ds_z3_config.json` |\n\
                 | FSDP (set `num_processes` in the file) | `accelerate launch --config_file fsdp_config.yaml -m llamafactory.launcher {yaml}` |\n\
                 | several nodes (run on each, `NODE_RANK` 0, 1, …) | `FORCE_TORCHRUN=1 NNODES=2 NODE_RANK=0 MASTER_ADDR=<node 0's address> MASTER_PORT=29500 llamafactory-cli train {yaml} deepspeed=ds_z2_config.json` |\n\
                 | a CPU, to check the setup | `CUDA_VISIBLE_DEVICES= DISABLE_VERSION_CHECK=1 llamafactory-cli train {yaml} max_steps=3` |\n\n"
            ));
        }
        Tool::Axolotl => {
            s.push_str(&format!(
                "Install: `pip install axolotl[deepspeed]` (a CUDA machine). Run every command in this folder.\n\n\
                 | Where | Command |\n|---|---|\n\
                 | one GPU | `CUDA_VISIBLE_DEVICES=0 axolotl train {yaml}` |\n\
                 | several GPUs | `axolotl train {yaml} --launcher accelerate -- --num_processes=4` |\n\
                 | several GPUs, DeepSpeed ZeRO-2 | `axolotl train {yaml} --deepspeed deepspeed_zero2.json` |\n\
                 | a model too big for one GPU (ZeRO-3) | `axolotl train {yaml} --deepspeed deepspeed_zero3.json` |\n\
                 | several nodes (run on each) | `axolotl train {yaml} --launcher torchrun -- --nnodes 2 --nproc_per_node 4 --rdzv_id vibeflow --rdzv_backend c10d --rdzv_endpoint <node 0's address>:29400` |\n\n"
            ));
        }
    }
    s.push_str(&format!(
        "The adapter lands in `output/`. Bring it back as a run of the project (evaluated on its held-out rows, committed and tagged):\n\n\
         ```sh\nvibeflow runs import -p {} output\n```\n",
        h.project
    ));
    s
}

/// The adapter folder in `dir`: `dir` itself, its `output/` (or another folder holding one),
/// else the newest `checkpoint-N/` in either.
fn find_adapter(dir: &Path) -> Result<PathBuf> {
    let has = |d: &Path| d.join("adapter_config.json").is_file();
    if has(dir) {
        return Ok(dir.to_path_buf());
    }
    if !dir.is_dir() {
        return Err(Error::NotFound(format!("{}: no such folder", dir.display())));
    }
    let children = |d: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .map(|r| r.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    let newest_checkpoint = |d: &Path| {
        children(d)
            .into_iter()
            .filter(|p| has(p))
            .filter_map(|p| {
                let n =
                    p.file_name()?.to_str()?.strip_prefix("checkpoint-")?.parse::<u64>().ok()?;
                Some((n, p))
            })
            .max()
            .map(|(_, p)| p)
    };
    let output = dir.join("output");
    if has(&output) {
        return Ok(output);
    }
    if let Some(found) = children(dir).into_iter().find(|p| has(p) && !is_checkpoint(p)) {
        return Ok(found);
    }
    newest_checkpoint(&output).or_else(|| newest_checkpoint(dir)).ok_or_else(|| {
        Error::NotFound(format!(
            "{}: no PEFT adapter (adapter_config.json) here, in output/ or in a checkpoint-N/ folder",
            dir.display()
        ))
    })
}

fn is_checkpoint(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("checkpoint-"))
}

/// Refuses what the engine cannot apply as it was trained: DoRA, per-module ranks, fully
/// trained modules, targets given as a pattern, or no weights.
fn check_adapter(dir: &Path) -> Result<()> {
    let path = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::Data(format!("{}: {e}", path.display())))?;
    let bad = |why: &str| Err(Error::InvalidInput(format!("{}: {why}", path.display())));
    let non_empty = |k: &str| match &v[k] {
        serde_json::Value::Object(o) => !o.is_empty(),
        serde_json::Value::Array(a) => !a.is_empty(),
        serde_json::Value::Null => false,
        _ => true,
    };
    if v["use_dora"].as_bool() == Some(true) {
        return bad("a DoRA adapter (use_dora) cannot be imported: train plain LoRA");
    }
    if non_empty("rank_pattern") || non_empty("alpha_pattern") {
        return bad("per-module ranks (rank_pattern, alpha_pattern) cannot be imported yet");
    }
    if non_empty("modules_to_save") {
        return bad("fully trained modules (modules_to_save) cannot be imported: only LoRA pairs");
    }
    if v["target_modules"].is_string() {
        return bad("target_modules is a pattern: name the modules (q_proj, v_proj, …)");
    }
    let weights = dir.join("adapter_model.safetensors");
    if !weights.is_file() {
        return Err(Error::NotFound(format!(
            "{}: missing (a `.bin` adapter must be saved as safetensors)",
            weights.display()
        )));
    }
    Ok(())
}

/// The export's `vibeflow.json` above an adapter (the output folder's parent, or the
/// checkpoint's grandparent), with its sha256.
fn find_handoff(adapter: &Path) -> Option<(Handoff, String)> {
    adapter.ancestors().take(3).find_map(|d| {
        let path = d.join(HANDOFF_FILE);
        let text = std::fs::read_to_string(&path).ok()?;
        let h = serde_json::from_str::<Handoff>(&text).ok()?;
        Some((h, crate::sha256_file(&path).ok()?))
    })
}

/// What the Hugging Face trainer logged: its steps and the loss of each logged step.
#[derive(Debug, Default)]
struct TrainerState {
    steps: usize,
    losses: Vec<f64>,
}

/// `trainer_state.json` beside the adapter, or in its newest checkpoint (Axolotl writes it only
/// there).
fn trainer_state(adapter: &Path) -> Option<TrainerState> {
    #[derive(serde::Deserialize)]
    struct State {
        global_step: usize,
        #[serde(default)]
        log_history: Vec<serde_json::Value>,
    }
    let mut candidates = vec![adapter.join("trainer_state.json")];
    let mut checkpoints: Vec<(u64, PathBuf)> = std::fs::read_dir(adapter)
        .map(|r| {
            r.flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_str()?.strip_prefix("checkpoint-")?.parse().ok()?;
                    Some((n, e.path().join("trainer_state.json")))
                })
                .collect()
        })
        .unwrap_or_default();
    checkpoints.sort();
    candidates.extend(checkpoints.into_iter().rev().map(|(_, p)| p));
    candidates.into_iter().find_map(|p| {
        let s: State = serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()?;
        let losses = s.log_history.iter().filter_map(|e| e["loss"].as_f64()).collect();
        Some(TrainerState { steps: s.global_step, losses })
    })
}

/// Which trainer wrote the folder: LLaMA-Factory logs `trainer_log.jsonl`; Axolotl's model card
/// embeds its YAML.
fn tool_of(adapter: &Path) -> String {
    let near = |name: &str| adapter.ancestors().take(2).map(|d| d.join(name)).find(|p| p.is_file());
    if near("trainer_log.jsonl").is_some() {
        return "LLaMA-Factory".into();
    }
    if let Some(card) = near("README.md")
        && std::fs::read_to_string(card).is_ok_and(|t| t.contains("axolotl"))
    {
        return "Axolotl".into();
    }
    "PEFT".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(role: &str) -> Message {
        Message::new(role, "x")
    }

    #[test]
    fn llamafactory_takes_alternating_turns_that_end_on_the_assistant() {
        let lf = |roles: &[&str]| {
            fits(Tool::Llamafactory, &roles.iter().map(|r| m(r)).collect::<Vec<_>>())
        };
        assert_eq!(lf(&["system", "user", "assistant"]), Ok(()));
        assert_eq!(lf(&["user", "assistant", "user", "assistant"]), Ok(()));
        assert!(lf(&["user", "assistant", "user"]).is_err());
        assert!(lf(&["system", "assistant"]).is_err());
        assert!(lf(&["user", "user", "assistant"]).is_err());
        assert!(lf(&["user", "assistant", "tool", "assistant"]).is_err());
        assert!(lf(&["system", "user"]).is_err());
        let ax = fits(Tool::Axolotl, &[m("user"), m("assistant"), m("tool"), m("assistant")]);
        assert_eq!(ax, Ok(()));
    }

    #[test]
    fn rows_get_the_models_system_turn_and_count_what_is_left_out() {
        let mut rows = Rows::default();
        rows.push(Tool::Llamafactory, vec![m("user"), m("assistant")], Some("Be brief"), false);
        rows.push(Tool::Llamafactory, vec![m("user"), m("user")], Some("Be brief"), false);
        rows.push(
            Tool::Llamafactory,
            vec![m("system"), m("user"), m("assistant")],
            Some("Be brief"),
            true,
        );
        assert_eq!(
            rows.train,
            [
                r#"{"messages":[{"role":"system","content":"Be brief"},{"role":"user","content":"x"},{"role":"assistant","content":"x"}]}"#
            ]
        );
        assert_eq!(rows.test.len(), 1);
        assert!(!rows.test[0].contains("Be brief"), "a row's own system turn stays");
        assert_eq!(rows.skipped_note(), "1 row (no assistant reply)");
    }

    #[test]
    fn yaml_names_only_keys_the_trainers_know() {
        let c = TrainConfig {
            method: Method::Lora(api::train::LoraConfig {
                r: 8,
                alpha: 16.0,
                dropout: 0.05,
                targets: vec!["q_proj".into(), "v_proj".into()],
            }),
            steps: Some(30),
            ..TrainConfig::default()
        };
        let y = llamafactory_yaml(&c, "base", "qa", Some("smollm2"));
        let v: serde_norway::Value = serde_norway::from_str(&y).unwrap();
        assert_eq!(v["lora_alpha"], Value::Number(16u64.into()));
        assert_eq!(v["lora_target"], text("q_proj,v_proj"));
        assert_eq!(v["max_steps"], Value::Number(30u64.into()));
        assert_eq!(v["template"], text("smollm2"));
        assert_eq!(v["learning_rate"].as_f64(), Some(c.adamw.lr));
        let known = [
            "model_name_or_path",
            "trust_remote_code",
            "stage",
            "do_train",
            "finetuning_type",
            "lora_rank",
            "lora_alpha",
            "lora_dropout",
            "lora_target",
            "dataset",
            "dataset_dir",
            "template",
            "cutoff_len",
            "overwrite_cache",
            "output_dir",
            "logging_steps",
            "overwrite_output_dir",
            "report_to",
            "save_steps",
            "save_total_limit",
            "per_device_train_batch_size",
            "gradient_accumulation_steps",
            "learning_rate",
            "max_steps",
            "lr_scheduler_type",
            "warmup_steps",
            "weight_decay",
            "adam_beta1",
            "adam_beta2",
            "adam_epsilon",
            "max_grad_norm",
            "seed",
            "bf16",
            "disable_gradient_checkpointing",
            "ddp_timeout",
        ];
        for k in v.as_mapping().unwrap().keys() {
            assert!(
                known.contains(&k.as_str().unwrap()),
                "LLaMA-Factory refuses unknown key {k:?}"
            );
        }
        let a: serde_norway::Value = serde_norway::from_str(&axolotl_yaml(&c, "base")).unwrap();
        assert_eq!(a["lora_target_modules"][1], text("v_proj"));
        assert_eq!(a["datasets"][0]["type"], text("chat_template"));
        assert_eq!(a["chat_template"], text("tokenizer_default"));
    }

    #[test]
    fn floats_read_back_as_floats_in_yaml_1_1() {
        assert_eq!(yaml_float(1e-8), "1.0e-8");
        assert_eq!(yaml_float(2.5e-7), "2.5e-7");
        assert_eq!(yaml_float(3e7), "3.0e+7");
        assert_eq!(yaml_float(0.0005), "0.0005");
        assert_eq!(yaml_float(5.0), "5.0");
        assert_eq!(yaml_float(0.0), "0.0");
        assert_eq!(float32(0.05f32).as_f64(), Some(0.05));
    }

    #[test]
    fn templates_by_catalog_model() {
        assert_eq!(llamafactory_template("smollm2-135m-instruct"), Some("smollm2"));
        assert_eq!(llamafactory_template("qwen2.5-0.5b-instruct"), Some("qwen"));
        assert_eq!(llamafactory_template("llama-3.2-1b-instruct"), Some("llama3"));
        assert_eq!(llamafactory_template("my-model"), None);
    }
}
