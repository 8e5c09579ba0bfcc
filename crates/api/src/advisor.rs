//! The brainstorm assistant: what the user tells it, what it recommends and why, the changes
//! it proposes (also the Monitor's one-click fixes), the catalog as the window lists it.

use serde::{Deserialize, Serialize};

use crate::train::{Estimate, MethodKind, TrainConfig, TrainPlan};

/// What the user wants the model to do, detected from their words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Replies to customers.
    Support,
    /// Answers questions about a domain.
    Qa,
    /// Puts a text into one of a few labels.
    Classification,
    /// Pulls fields out of text (often as JSON).
    Extraction,
    /// Shortens texts.
    Summarization,
    /// Writes or explains code.
    Code,
    /// Rewrites text in a voice or format.
    Style,
    /// Anything else: a general assistant.
    #[default]
    General,
}

impl Task {
    /// As the assistant says it.
    pub fn label(self) -> &'static str {
        match self {
            Task::Support => "customer support replies",
            Task::Qa => "answering questions",
            Task::Classification => "classification",
            Task::Extraction => "extracting information",
            Task::Summarization => "summarization",
            Task::Code => "code",
            Task::Style => "rewriting in a style",
            Task::General => "a general assistant",
        }
    }
}

/// What matters most to the user (the PRD's "speed, accuracy, or cost?").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// A first result soon: fewer passes, the smallest model that does the task.
    Speed,
    /// The catalog's settings for the data's size.
    #[default]
    Balanced,
    /// The best model this machine trains within the budget, more passes.
    Quality,
}

/// The hardware to plan for.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// The machine the assistant runs on, as detected.
    #[default]
    ThisMachine,
    /// A GPU with this much memory (the "what if I had a GPU?" question).
    Gpu {
        /// Its memory, bytes.
        memory_bytes: u64,
    },
}

/// What the user told the assistant: the PRD's clarifying questions, answered or not.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Brief {
    /// The goal in their words ("a support bot for our billing questions").
    #[serde(default)]
    pub goal: String,
    /// Speed, balanced or quality.
    #[serde(default)]
    pub priority: Priority,
    /// The most hours the run may take, if they said.
    #[serde(default)]
    pub max_hours: Option<f64>,
    /// Their price per hour of this machine (a rented one), for the cost.
    #[serde(default)]
    pub price_per_hour: Option<f64>,
    /// Their electricity price per kWh, for the cost.
    #[serde(default)]
    pub price_per_kwh: Option<f64>,
    /// The hardware to plan for.
    #[serde(default)]
    pub target: Target,
    /// A model they chose (a catalog or store id); otherwise the assistant picks.
    #[serde(default)]
    pub model: Option<String>,
    /// A method they chose; otherwise the assistant picks.
    #[serde(default)]
    pub method: Option<MethodKind>,
}

/// A project and what its user said: `recommend`'s argument.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RecommendRequest {
    /// The project slug.
    pub project: String,
    /// The answers so far.
    pub brief: Brief,
    /// Also measure the estimate on this machine (a short probe, cached).
    #[serde(default)]
    pub measure: bool,
}

/// A question the assistant still has, with the answers it offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// `goal`, `data`, `priority`, `budget`, `hardware`.
    pub id: String,
    /// The question.
    pub text: String,
    /// Suggested answers (free text is fine too).
    pub options: Vec<String>,
}

/// A model the assistant considered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Catalog id.
    pub model: String,
    /// Display name.
    pub name: String,
    /// Method it would need.
    pub method: MethodKind,
    /// Estimated peak training memory, bytes (catalog shape and the advisor's formula).
    pub memory_bytes: u64,
    /// Whether it fits the target's memory.
    pub fits: bool,
    /// Whether it is installed.
    pub installed: bool,
    /// Why it was or was not chosen.
    pub note: String,
}

/// One number the assistant shows and where it came from: `catalog`, `report`, `hardware`,
/// `probe`, `settings` or `brief` (what the user said).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    /// What it is (`training rows`).
    pub label: String,
    /// The number.
    pub value: f64,
    /// How it is shown (`1,200`, `2e-4`, `3.1 GB`).
    pub shown: String,
    /// Its source.
    pub source: String,
}

/// A change to a run's settings: proposed by a warning, an alert or the assistant, applied by
/// one click to the next run's form.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "setting", content = "value", rename_all = "snake_case")]
pub enum Change {
    /// Peak learning rate.
    LearningRate(f64),
    /// Examples per micro-batch.
    BatchSize(usize),
    /// Micro-batches per step.
    GradAccum(usize),
    /// Passes over the data.
    Epochs(usize),
    /// Longest example in tokens.
    MaxLen(usize),
    /// The method.
    Method(MethodKind),
}

impl Change {
    /// The button's words (`Use learning rate 1e-4`).
    pub fn label(&self) -> String {
        match self {
            Change::LearningRate(v) => format!("Use learning rate {v:e}"),
            Change::BatchSize(v) => format!("Use batch size {v}"),
            Change::GradAccum(v) => format!("Accumulate {v} micro-batches"),
            Change::Epochs(v) => format!("Train {v} epoch{}", if *v == 1 { "" } else { "s" }),
            Change::MaxLen(v) => format!("Use max length {v}"),
            Change::Method(m) => format!("Use {}", m.label()),
        }
    }

    /// Applies it to `c`.
    pub fn apply(&self, c: &mut TrainConfig) {
        match *self {
            Change::LearningRate(v) => c.adamw.lr = v,
            Change::BatchSize(v) => c.batch_size = v.max(1),
            Change::GradAccum(v) => c.grad_accum = v.max(1),
            Change::Epochs(v) => {
                c.epochs = v.max(1);
                c.steps = None;
            }
            Change::MaxLen(v) => c.max_len = v,
            Change::Method(m) => {
                let lora = c.method.lora().cloned().unwrap_or_default();
                c.method = crate::train::Method::of_kind(m, lora, crate::train::Quant::Q4_1);
            }
        }
    }
}

/// What will likely go wrong with a configuration, and the change that avoids it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    /// `memory`, `overfitting`, `truncation`, `learning_rate`, `time`, `small_data`.
    pub kind: String,
    /// What will happen, with the numbers behind it.
    pub message: String,
    /// The change that avoids it.
    pub fix: Option<Change>,
}

/// The assistant's recommendation for a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The task understood from the goal.
    pub task: Task,
    /// The chosen model (catalog id).
    pub model: String,
    /// Its display name.
    pub model_name: String,
    /// The run, its reasons and pre-flight checks (what the Train pane fills in).
    pub plan: TrainPlan,
    /// What was traded away, in plain words.
    pub tradeoffs: Vec<String>,
    /// Whether this machine can train it within the budget.
    pub feasible: bool,
    /// When not: why, and what would change that.
    pub limits: Vec<String>,
    /// Peak training memory from the catalog shape, bytes.
    pub memory_bytes: u64,
    /// The target's memory, bytes.
    pub target_memory_bytes: u64,
    /// The models considered.
    pub candidates: Vec<Candidate>,
    /// What could go wrong with these settings.
    pub warnings: Vec<Warning>,
    /// Questions not answered yet.
    pub questions: Vec<Question>,
    /// The measured estimate, when asked for.
    pub estimate: Option<Estimate>,
    /// Every number above and its source.
    pub facts: Vec<Fact>,
}

/// A follow-up in the brainstorm chat.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AskRequest {
    /// The project slug.
    pub project: String,
    /// The answers so far.
    pub brief: Brief,
    /// The user's message.
    pub text: String,
    /// Who phrases the reply: none (the rules' own words), `local` (an installed model) or
    /// an endpoint name.
    #[serde(default)]
    pub phrase_with: Option<String>,
}

/// The assistant's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AskReply {
    /// The reply, in plain words.
    pub text: String,
    /// The brief after this message (what the message answered is filled in).
    pub brief: Brief,
    /// The recommendation the reply speaks of.
    pub recommendation: Recommendation,
    /// Who phrased it (`rules`, a model id, an endpoint name) and, when a model's wording was
    /// dropped, why.
    pub phrased_by: String,
}

/// A catalog model as the Models view lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogModel {
    /// Catalog id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Architecture family.
    pub family: String,
    /// Parameters.
    pub parameters: u64,
    /// Context length.
    pub context: usize,
    /// License.
    pub license: String,
    /// Whether Hugging Face asks to accept the license first.
    pub gated: bool,
    /// One line.
    pub description: String,
    /// Strengths in plain words.
    pub strengths: String,
    /// Hugging Face repository.
    pub repo: String,
    /// Peak LoRA training memory at the card's sequence length, bytes.
    pub lora_memory_bytes: u64,
    /// Whether it is installed.
    pub installed: bool,
}

/// Download a model: a catalog id, `REPO` or `REPO/FILE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    /// What to pull.
    pub spec: String,
}

/// A download's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullProgress {
    /// Bytes on disk so far (a resumed download starts above 0).
    pub bytes: u64,
    /// Bytes in all.
    pub total: u64,
}
