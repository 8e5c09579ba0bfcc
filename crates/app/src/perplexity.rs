//! Perplexity of a model (optionally with a LoRA adapter) on chat conversations: how surprised
//! it is by their assistant replies. The evaluation measures its candidates with it.

use std::path::Path;

use api::chat::ChatMessage;
use engine::bundle::Bundle;
use engine::template::Message;

use crate::{App, Error, Result};

/// Conversations scored at once.
const BATCH: usize = 4;

/// The longest conversation scored, in tokens (longer ones are cut): bounds the memory of
/// one batch whatever the model's declared context.
const MAX_TOKENS: usize = 4096;

impl App {
    /// `exp(−Σ log p / Σ n)` over the assistant replies of `rows`: each reply's tokens (with its
    /// end-of-turn tokens) scored given everything before them, the conversation rendered with
    /// the model's chat template, as training labels them. `model` is a model file or folder
    /// (`App::resolve_model` turns an installed id into one); `adapter`, a PEFT adapter folder
    /// applied on top. Conversations are cut at the model's context (at most 4,096 tokens);
    /// rows without an assistant reply count for nothing, and a set without any is refused.
    pub fn perplexity(
        &self,
        model: &Path,
        adapter: Option<&Path>,
        rows: &[Vec<ChatMessage>],
    ) -> Result<f64> {
        let device = self.device()?;
        let context = engine::bundle::Chat::open(model)?.context.unwrap_or(MAX_TOKENS);
        let mut bundle = Bundle::open(model, &device)?;
        if let Some(dir) = adapter {
            engine::adapter::load_peft(&mut bundle.model, dir, &device)?;
        }
        let examples = rows
            .iter()
            .map(|row| {
                let messages: Vec<Message> =
                    row.iter().map(|m| Message::new(&m.role, &m.content)).collect();
                engine::train::tokenize(&bundle, &messages, context.min(MAX_TOKENS))
            })
            .collect::<engine::Result<Vec<_>>>()?;
        let scores = engine::logprob::sequence_logprobs(&bundle.model, &examples, BATCH)?;
        let ppl = engine::logprob::perplexity(&scores);
        if ppl.is_nan() {
            return Err(Error::InvalidInput(
                "perplexity needs at least one assistant reply to score".into(),
            ));
        }
        Ok(ppl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(turns: &[(&str, &str)]) -> Vec<ChatMessage> {
        turns
            .iter()
            .map(|(r, c)| ChatMessage { role: r.to_string(), content: c.to_string() })
            .collect()
    }

    /// The engine's SmolLM2 fixture: transformers' perplexity of the same conversations.
    fn fixture() -> serde_json::Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../engine/tests/fixtures/smollm2_logprobs.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn perplexity_of_the_default_model_matches_transformers() {
        let Some(gguf) = std::env::var_os("VIBEFLOW_DEFAULT_GGUF") else {
            assert!(
                std::env::var_os("VIBEFLOW_REQUIRE_SETUP").is_none(),
                "VIBEFLOW_DEFAULT_GGUF is not set: the setup of `cargo xtask test` is broken"
            );
            eprintln!("skipped: VIBEFLOW_DEFAULT_GGUF is not set (`cargo xtask test` sets it)");
            return;
        };
        let home = tempfile::tempdir().unwrap();
        let app = App::open(home.path()).unwrap();
        let fx = fixture();
        let rows: Vec<Vec<ChatMessage>> = fx["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| serde_json::from_value(c["messages"].clone()).unwrap())
            .collect();
        let ours = app.perplexity(Path::new(&gguf), None, &rows).unwrap();
        let theirs = fx["perplexity"].as_f64().unwrap();
        assert!((ours - theirs).abs() <= 1e-4 * theirs, "{ours} vs transformers' {theirs}");

        // A row with nothing to score is left out; a set with nothing is refused.
        let mut more = rows.clone();
        more.push(row(&[("user", "No reply yet")]));
        let same = app.perplexity(Path::new(&gguf), None, &more).unwrap();
        assert!((same - ours).abs() <= 1e-9 * ours);
        let e = app.perplexity(Path::new(&gguf), None, &more[more.len() - 1..]).unwrap_err();
        assert!(e.to_string().contains("at least one assistant reply"), "{e}");
    }
}
