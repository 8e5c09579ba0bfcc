//! Fine-tuning from a chat JSONL file (the project-aware form comes with datasets).

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
        let mut bundle = Bundle::open(&base, &Device::Cpu)?;
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
