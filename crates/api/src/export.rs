//! Exports of a finished run: the PEFT adapter, a merged Hugging Face model, a GGUF with an
//! Ollama `Modelfile`, each with a model card and recorded in the project's history.

use serde::{Deserialize, Serialize};

/// What an export writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// The PEFT adapter (`adapter_config.json`, `adapter_model.safetensors`).
    #[default]
    Peft,
    /// The base model with the adapter folded in, Hugging Face layout (safetensors).
    Merged,
    /// One GGUF file (tokenizer and chat template embedded) and an Ollama `Modelfile`.
    Gguf,
    /// The run's data, settings and launch commands for LLaMA-Factory (`dataset_info.json`,
    /// `llamafactory.yaml`, DeepSpeed and FSDP configurations).
    #[cfg_attr(feature = "clap", value(name = "llamafactory"))]
    Llamafactory,
    /// The run's data, settings and launch commands for Axolotl (`axolotl.yaml`, a
    /// chat-template dataset, a DeepSpeed configuration).
    Axolotl,
}

impl ExportFormat {
    /// Whether it hands the run to another trainer (the data and settings, no weights of
    /// ours) rather than exporting what a finished run learned.
    pub fn is_recipe(self) -> bool {
        matches!(self, ExportFormat::Llamafactory | ExportFormat::Axolotl)
    }
}

/// The GGUF's weight type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum GgufQuant {
    /// 16-bit floats.
    F16,
    /// 8-bit blocks.
    #[default]
    #[cfg_attr(feature = "clap", value(name = "q8_0"))]
    Q8_0,
    /// llama.cpp's 4-bit k-quant mix.
    #[cfg_attr(feature = "clap", value(name = "q4_k_m"))]
    Q4KM,
}

/// An export request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRequest {
    /// The project.
    pub project: String,
    /// The finished run. For LLaMA-Factory and Axolotl, the run whose settings and dataset to
    /// hand over; empty: the project's recommended run on its current dataset.
    pub run: String,
    /// What to write.
    pub format: ExportFormat,
    /// The GGUF's weight type (GGUF only).
    pub quant: Option<GgufQuant>,
    /// Folder to write into (created; must be empty if it exists). Empty: the project's
    /// `exports/<run>-<format>/`.
    pub out: String,
    /// LLaMA-Factory and Axolotl: write the base model in Hugging Face layout into `base/` and
    /// train on that (always done for a base the Hugging Face hub does not name).
    #[serde(default)]
    pub base_weights: bool,
}

/// Progress of a long export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportProgress {
    /// What is being done.
    pub stage: String,
    /// 0–1.
    pub fraction: f64,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportResult {
    /// The folder written.
    pub dir: String,
    /// Files written, relative to `dir`, with their sizes in bytes.
    pub files: Vec<(String, u64)>,
    /// The commit that records the export in the project's history.
    pub commit: String,
    /// What the user should know: rows left out, a dataset changed since the run.
    #[serde(default)]
    pub notes: Vec<String>,
}
