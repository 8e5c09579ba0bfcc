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
    /// Model family (architecture as users know it).
    pub family: String,
    /// SPDX license of the weights.
    pub license: String,
    /// Whether this is the model new projects start from.
    #[serde(default)]
    pub default: bool,
    /// One line for the UI.
    pub description: String,
    /// Where setup gets the file.
    pub source: Source,
    /// Settings that suit this model (the Train pane's starting point).
    pub recommended: Option<Recommended>,
}

/// A card's recommended training settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Recommended {
    /// `lora`, `qlora` or `full`.
    pub method: String,
    /// LoRA rank.
    pub lora_r: usize,
    /// LoRA alpha.
    pub lora_alpha: f64,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Passes over a small dataset.
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

const CARDS: &[&str] = &[include_str!("../../../models/smollm2-135m-instruct.toml")];

/// All catalog cards.
pub fn catalog() -> Vec<Card> {
    // The cards are compiled in and parsed in a unit test, so a parse failure here is a build bug.
    CARDS.iter().filter_map(|c| toml::from_str(c).ok()).collect()
}

/// Catalog id of the model new projects start from (the card marked `default = true`).
pub const DEFAULT_MODEL: &str = "smollm2-135m-instruct";

/// The card of [`DEFAULT_MODEL`].
pub fn default_card() -> Option<Card> {
    catalog().into_iter().find(|c| c.id == DEFAULT_MODEL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_card_parses_and_one_is_default() {
        for c in CARDS {
            let card: Card = toml::from_str(c).unwrap();
            assert_eq!(card.source.sha256.len(), 64, "{}", card.id);
        }
        let defaults: Vec<_> = catalog().into_iter().filter(|c| c.default).collect();
        assert_eq!(defaults.len(), 1);
        assert_eq!(defaults[0].id, DEFAULT_MODEL);
        assert_eq!(default_card().unwrap().id, DEFAULT_MODEL);
    }
}
