//! The recommended run for a project (from the base model's catalog card and the dataset's
//! report), its pre-flight checks, and an estimate measured on this machine.

use api::train::{
    Check, Estimate, Method, ProjectTrainRequest, Reason, Resume, TrainConfig, TrainPlan,
};

use crate::bench::{TrainShape, bench_ours};
use crate::{App, Error, Result};

/// Free disk a run needs at least: checkpoints and adapters of small models, with room.
const MIN_FREE_DISK: u64 = 1 << 30;

impl App {
    /// The recommended run for `project`'s current dataset, with a reason per setting and the
    /// pre-flight checks.
    pub fn train_plan(&self, project: &str) -> Result<TrainPlan> {
        let row = self.project_row(project)?;
        let mut checks = Vec::new();
        let report = self.data_report(&row.slug, None);
        let (train_rows, test_rows, mean, p95, context) = match &report {
            Ok(d) => {
                let t = &d.outcome.result.tokens;
                (d.split.train, d.split.test, t.total.mean, t.total.p95 as usize, t.context)
            }
            Err(_) => (0, 0, 0.0, 0, 2048),
        };
        checks.push(match &report {
            Ok(d) if d.split.test > 0 && d.split.train > 0 => Check {
                id: "dataset".into(),
                ok: true,
                message: format!(
                    "{} v{}: {} rows to train on, {} held out to measure progress",
                    d.name, d.version, d.split.train, d.split.test
                ),
            },
            Ok(d) => Check {
                id: "dataset".into(),
                ok: false,
                message: format!(
                    "{} v{} has no held-out rows ({} train / {} test): split it in the Data pane",
                    d.name, d.version, d.split.train, d.split.test
                ),
            },
            Err(e) => Check { id: "dataset".into(), ok: false, message: e.to_string() },
        });
        let model = self.models_list()?.into_iter().find(|m| m.id == row.base_model);
        checks.push(match &model {
            Some(m) => Check {
                id: "model".into(),
                ok: true,
                message: format!(
                    "{} is installed ({:.0} M parameters)",
                    m.id,
                    m.parameters as f64 / 1e6
                ),
            },
            None => Check {
                id: "model".into(),
                ok: false,
                message: format!(
                    "{} is not installed: run `cargo xtask setup` or import it in Settings",
                    row.base_model
                ),
            },
        });
        let system = self.system_info()?;
        checks.push(Check {
            id: "disk".into(),
            ok: system.free_disk_bytes >= MIN_FREE_DISK,
            message: format!(
                "{:.1} GB free where VibeFlow keeps its data (a run needs about 1 GB)",
                system.free_disk_bytes as f64 / 1e9
            ),
        });
        // f32 weights, their gradients' working set and the activations of checkpointed
        // blocks: four times the f32 weights covers the models and shapes the catalog has.
        let need = model.as_ref().map_or(0, |m| m.parameters * 4 * 4);
        checks.push(Check {
            id: "memory".into(),
            ok: need < system.memory_bytes * 8 / 10,
            message: format!(
                "about {:.1} GB needed of {:.1} GB (Estimate measures it)",
                need as f64 / 1e9,
                system.memory_bytes as f64 / 1e9
            ),
        });

        let card = crate::catalog().into_iter().find(|c| c.id == row.base_model);
        let rec = card.as_ref().and_then(|c| c.recommended.clone());
        let (r, alpha, lr, card_epochs) = rec
            .as_ref()
            .map_or((8, 16.0, 2e-4, 3), |r| (r.lora_r, r.lora_alpha, r.learning_rate, r.epochs));
        let mut reasons = Vec::new();
        let mut why = |setting: &str, value: String, why: String| {
            reasons.push(Reason { setting: setting.into(), value, why });
        };
        let source =
            card.as_ref().map_or("the defaults".to_string(), |c| format!("{}'s card", c.name));
        why(
            "Method",
            "LoRA".into(),
            format!(
                "trains small adapters beside the frozen model: a fraction of the memory of full fine-tuning and as good for teaching a style or a task ({source})"
            ),
        );
        why(
            "LoRA rank",
            r.to_string(),
            format!(
                "the adapters' size; {r} is plenty for a few hundred to a few thousand examples ({source})"
            ),
        );
        why(
            "LoRA alpha",
            format!("{alpha}"),
            "scales the adapters' update; twice the rank is the usual choice".into(),
        );
        why(
            "Learning rate",
            format!("{lr:e}"),
            format!(
                "the usual rate for LoRA on small models ({source}); halve it if the loss jumps around"
            ),
        );
        let epochs = match train_rows {
            n if n >= 2000 => 1,
            n if n >= 500 => 2.min(card_epochs),
            _ => card_epochs,
        };
        why(
            "Epochs",
            epochs.to_string(),
            format!("{train_rows} training rows: small datasets need a few passes, large ones one"),
        );
        let max_len = (p95.div_ceil(64) * 64).clamp(128, context.min(2048));
        why(
            "Longest example",
            format!("{max_len} tokens"),
            format!("95 % of the rows fit in {p95} tokens; longer ones are cut"),
        );
        let batch = if max_len > 512 { 2 } else { 4 };
        why(
            "Batch size",
            batch.to_string(),
            "examples per step: smoother updates without running out of memory on a CPU".into(),
        );
        let total_steps = train_rows.div_ceil(batch) * epochs;
        let eval_rows = test_rows.min(32);
        why(
            "Held-out rows evaluated",
            eval_rows.to_string(),
            "measured before, during and after training to show whether the model generalizes; more is slower".into(),
        );
        let config = TrainConfig {
            method: Method::Lora(api::train::LoraConfig {
                r,
                alpha,
                dropout: if train_rows < 1000 { 0.05 } else { 0.0 },
                ..api::train::LoraConfig::default()
            }),
            steps: None,
            epochs,
            batch_size: batch,
            max_len,
            adamw: api::train::AdamWConfig { lr, ..api::train::AdamWConfig::default() },
            warmup_steps: (total_steps * 3 / 100).max(1),
            eval_every: (total_steps / 5).max(1),
            checkpoint_every: (total_steps / 10).clamp(5, 50),
            ..TrainConfig::default()
        };
        let request = ProjectTrainRequest {
            project: row.slug.clone(),
            dataset: None,
            eval_rows,
            config,
            resume: Resume::No,
        };
        Ok(TrainPlan { request, reasons, checks, train_rows, mean_tokens: mean, total_steps })
    }

    /// Time and peak memory of `req` on this machine, measured with two training steps of its
    /// shape (batch × the dataset's typical row, capped at its longest example).
    pub fn train_estimate(&self, req: &ProjectTrainRequest) -> Result<Estimate> {
        if let Some((_, why)) = req.problems().into_iter().next() {
            return Err(Error::InvalidInput(why));
        }
        let row = self.project_row(&req.project)?;
        let d = self.data_report(&row.slug, req.dataset.as_deref())?;
        let t = &d.outcome.result.tokens;
        let c = &req.config;
        let seq = (t.total.p50 as usize).clamp(16, c.max_len);
        let epochs = if c.steps.is_some() { 1 } else { c.epochs };
        let tokens = match c.steps {
            Some(s) => (s * c.batch_size * c.grad_accum * seq) as u64,
            None => {
                (d.split.train as f64 * t.total.mean.min(c.max_len as f64) * epochs as f64) as u64
            }
        };
        let shape = TrainShape {
            batch: c.batch_size,
            seq,
            steps: 2,
            rounds: 1,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            gradient_checkpointing: c.gradient_checkpointing,
            precision: c.precision,
        };
        let path = self.resolve_model(&row.base_model)?;
        let m = bench_ours(&path, shape, &self.device()?)?;
        let memory_bytes = self.system_info()?.memory_bytes;
        Ok(Estimate {
            tokens_per_second: m.tokens_per_second,
            tokens,
            seconds: tokens as f64 / m.tokens_per_second.max(1e-9),
            peak_memory_bytes: m.peak_gpu_bytes.unwrap_or(m.peak_rss_bytes),
            memory_bytes,
        })
    }
}
