//! The Playground: sampling controls, chat requests, their streamed events and saved
//! conversations.

use serde::{Deserialize, Serialize};

/// Sampling controls. `temperature == 0` is greedy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sampling {
    /// Softmax temperature; 0 picks the most likely token.
    pub temperature: f64,
    /// Nucleus: keep the smallest set of tokens whose probability reaches this.
    pub top_p: f64,
    /// Keep only the k most likely tokens (0: all).
    pub top_k: usize,
    /// Drop tokens less likely than `min_p` × the top token's probability.
    pub min_p: f64,
    /// CTRL-style penalty on tokens already present (1: none).
    pub repetition_penalty: f32,
    /// OpenAI frequency penalty: subtract `count × this` from a seen token's logit.
    pub frequency_penalty: f32,
    /// OpenAI presence penalty: subtract this from a seen token's logit.
    pub presence_penalty: f32,
    /// Seed of the sampler.
    pub seed: u64,
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Generation stops before any of these strings.
    pub stop: Vec<String>,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: 0.7,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: 0,
            max_tokens: 256,
            stop: Vec::new(),
        }
    }
}

/// The ranges of the sampling controls: OpenAI's where it has the control, llama.cpp's and
/// transformers' otherwise.
pub const TEMPERATURE_MAX: f64 = 2.0;
/// OpenAI accepts at most this many stop strings.
pub const MAX_STOPS: usize = 4;

impl Sampling {
    /// Checks every control before any work: the error names the parameter, its valid range
    /// and the value given (the CLI, the app and the server share these checks).
    pub fn validate(&self) -> std::result::Result<(), String> {
        fn range(name: &str, v: f64, lo: f64, hi: f64) -> std::result::Result<(), String> {
            if v.is_finite() && (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} must be between {lo} and {hi}, got {v}"))
            }
        }
        range("temperature", self.temperature, 0.0, TEMPERATURE_MAX)?;
        range("top_p", self.top_p, 0.0, 1.0)?;
        range("min_p", self.min_p, 0.0, 1.0)?;
        range("frequency_penalty", self.frequency_penalty.into(), -2.0, 2.0)?;
        range("presence_penalty", self.presence_penalty.into(), -2.0, 2.0)?;
        let rp = self.repetition_penalty;
        if !(rp.is_finite() && rp > 0.0) {
            return Err(format!("repetition_penalty must be a number above 0 (1: none), got {rp}"));
        }
        if self.max_tokens == 0 {
            return Err("max_tokens must be at least 1, got 0".into());
        }
        if self.stop.len() > MAX_STOPS {
            return Err(format!("stop takes at most {MAX_STOPS} strings, got {}", self.stop.len()));
        }
        if self.stop.iter().any(String::is_empty) {
            return Err("stop strings cannot be empty".into());
        }
        Ok(())
    }
}

/// Which model of a project answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatModel {
    /// The project's base model.
    Base,
    /// A finished run: the base model with its adapter.
    Run(String),
    /// Any installed model, by id (the arena's third and fourth panels).
    Installed(String),
}

impl ChatModel {
    /// `base model`, `run-2`.
    pub fn label(&self) -> String {
        match self {
            ChatModel::Base => "base model".into(),
            ChatModel::Run(r) | ChatModel::Installed(r) => r.clone(),
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// Its text.
    pub content: String,
}

/// Request of `chat_send`: a reply to `messages` from `model`, streamed as [`ChatEvent`]s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// Chosen by the caller, unique among its requests: `chat_stop` names it.
    pub id: String,
    /// Project slug.
    pub project: String,
    /// Who answers.
    pub model: ChatModel,
    /// The conversation so far (a system message first, if any), ending with the user's.
    pub messages: Vec<ChatMessage>,
    /// Sampling controls.
    pub sampling: Sampling,
}

/// What a chat request says, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ChatEvent {
    /// The model is being loaded (only when it is not loaded already).
    Loading,
    /// More text of the reply.
    Delta {
        /// The new text.
        text: String,
    },
    /// The reply is complete.
    Done {
        /// `stop`, `length` or `cancelled`.
        finish_reason: String,
        /// Tokens of the templated conversation.
        prompt_tokens: usize,
        /// Tokens generated.
        completion_tokens: usize,
        /// Decoding speed.
        tokens_per_second: f64,
    },
    /// It failed; nothing more follows.
    Failed {
        /// Why, in words.
        message: String,
    },
}

/// One exchange of a saved conversation: the user's message and each model's reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    /// What the user said.
    pub user: String,
    /// The replies, one per model of the conversation, in order.
    pub replies: Vec<String>,
}

/// A Playground conversation, saved per project (one model, or two side by side).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// Unique in the project (`c-<time>`).
    pub id: String,
    /// Project slug.
    pub project: String,
    /// Its first words.
    pub title: String,
    /// Last change, seconds since the Unix epoch.
    pub updated_at: i64,
    /// The models that answer (two: side by side).
    pub models: Vec<ChatModel>,
    /// System prompt.
    pub system: String,
    /// The exchanges, oldest first.
    pub turns: Vec<Turn>,
    /// The controls it used.
    pub sampling: Sampling,
}

impl Conversation {
    /// The messages model `i` sees: the system prompt, then each turn with its own replies.
    pub fn messages_for(&self, i: usize) -> Vec<ChatMessage> {
        let mut out = Vec::new();
        if !self.system.trim().is_empty() {
            out.push(ChatMessage { role: "system".into(), content: self.system.clone() });
        }
        for t in &self.turns {
            out.push(ChatMessage { role: "user".into(), content: t.user.clone() });
            if let Some(r) = t.replies.get(i).filter(|r| !r.is_empty()) {
                out.push(ChatMessage { role: "assistant".into(), content: r.clone() });
            }
        }
        out
    }
}

/// A project's conversation (`chat_load`, `chat_delete`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationRef {
    /// Project slug.
    pub project: String,
    /// Conversation id.
    pub id: String,
}

/// Request of `chat_stop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatStop {
    /// The [`ChatRequest::id`] to stop.
    pub id: String,
}
