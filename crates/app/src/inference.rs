//! Generation from a model reference: a catalog id, an installed model id, or a path.

use std::path::{Path, PathBuf};

use engine::bundle::Bundle;
use engine::generate::{F32Decoder, Sampling};
use engine::template::Message;

use crate::{App, Error, Result};

/// A generation request, as the CLI and the app's playground make it.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    /// Model reference: installed id, or a `.gguf` file or Hugging Face folder.
    pub model: String,
    /// Optional system message.
    pub system: Option<String>,
    /// The user's message.
    pub prompt: String,
    /// A PEFT adapter folder to apply, e.g. a run's `adapter/`.
    pub adapter: Option<PathBuf>,
    /// Fold the adapter into the weights first (faster per token) instead of applying it
    /// unmerged.
    pub merge: bool,
    /// Run a GGUF's quantized weights directly instead of the f32 path (an adapter then runs
    /// unmerged beside them; `merge` does not apply).
    pub quantized: bool,
    /// Sampling controls.
    pub sampling: Sampling,
}

/// What a generation produced.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GenerateResult {
    /// The model reference, resolved to a path.
    pub model_path: String,
    /// Generated text.
    pub text: String,
    /// Number of prompt tokens.
    pub prompt_tokens: usize,
    /// Number of generated tokens.
    pub completion_tokens: usize,
    /// `stop`, `length` or `cancelled`.
    pub finish_reason: String,
    /// Decoding speed, tokens per second (prompt excluded).
    pub tokens_per_second: f64,
}

use crate::aliases::DEFAULT_CONTEXT;

impl App {
    /// Resolves a model reference to a file or folder.
    pub fn resolve_model(&self, reference: &str) -> Result<PathBuf> {
        let p = Path::new(reference);
        if p.exists() {
            return Ok(p.to_path_buf());
        }
        self.model_path(reference)
    }

    /// Generates a reply, streaming text pieces to `on_text` (return `false` to stop).
    pub fn generate(
        &self,
        req: &GenerateRequest,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<GenerateResult> {
        req.sampling.validate().map_err(Error::InvalidInput)?;
        let path = self.resolve_model(&req.model)?;
        let device = self.device()?;
        let mut messages = Vec::new();
        if let Some(s) = &req.system {
            messages.push(Message::new("system", s));
        }
        messages.push(Message::new("user", &req.prompt));
        // The text side first (a header read): a prompt the context cannot hold is refused
        // before any weights are loaded.
        let chat = engine::bundle::Chat::open(&path)?;
        let text = chat.template.render(&messages, true)?;
        let ids = engine::tokenizer::encode(&chat.tokenizer, &text)?;
        let context = chat.context.unwrap_or(DEFAULT_CONTEXT);
        let sampling = Sampling {
            max_tokens: engine::generate::room(ids.len(), context, req.sampling.max_tokens)
                .map_err(Error::InvalidInput)?,
            ..req.sampling.clone()
        };
        // The quantized path needs only the text side and the GGUF's own weights: the f32
        // model is not built (it costs seconds and ~0.5 GB for SmolLM2).
        let bundle;
        let mut f32_dec;
        let mut q_dec;
        let dec: &mut dyn engine::generate::Decoder = if req.quantized {
            q_dec = engine::generate::QuantDecoder::open(&path, &device)?;
            if let Some(dir) = &req.adapter {
                // Unmerged: merging would requantize the weights and blur the adapter.
                q_dec.apply_adapter(dir)?;
            }
            &mut q_dec
        } else {
            let mut b = Bundle::open(&path, &device)?;
            if let Some(dir) = &req.adapter {
                engine::adapter::load_peft(&mut b.model, dir, &b.device)?;
                if req.merge {
                    engine::adapter::merge_lora(&mut b.model)?;
                }
            }
            bundle = b;
            f32_dec = F32Decoder::new(&bundle.model, &bundle.device);
            &mut f32_dec
        };
        let (tokenizer, eos) = (&chat.tokenizer, &chat.eos);
        let start = std::time::Instant::now();
        let out = engine::generate::generate(dec, tokenizer, &ids, eos, &sampling, on_text)
            .map_err(Error::from)?;
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        Ok(GenerateResult {
            model_path: path.display().to_string(),
            prompt_tokens: ids.len(),
            completion_tokens: out.tokens.len(),
            finish_reason: match out.finish {
                engine::generate::Finish::Stop => "stop",
                engine::generate::Finish::Length => "length",
                engine::generate::Finish::Cancelled => "cancelled",
            }
            .into(),
            tokens_per_second: out.tokens.len() as f64 / secs,
            text: out.text,
        })
    }
}
