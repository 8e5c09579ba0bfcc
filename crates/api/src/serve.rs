//! Deploy: the local OpenAI-compatible server (its settings, status and API key), model aliases
//! (inference presets kept as YAML under `aliases/`), traces of the requests it served, and
//! turning traces into a dataset.

use serde::{Deserialize, Serialize};

/// The server's port when none is given.
pub const DEFAULT_PORT: u16 = 8734;

/// How the server is started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServeConfig {
    /// Address to bind; anything but a loopback address requires an API key.
    pub host: String,
    /// Port (0: any free port).
    pub port: u16,
    /// Require the API key even on loopback.
    pub require_key: bool,
    /// Most memory the loaded models may take, in MiB (least recently used unloaded beyond it).
    pub memory_budget_mb: u64,
    /// Sequences decoded together per model.
    pub max_batch: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            host: "127.0.0.1".into(),
            port: DEFAULT_PORT,
            require_key: false,
            memory_budget_mb: 4096,
            max_batch: 16,
        }
    }
}

/// The server as it runs now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServeStatus {
    /// Whether it is listening.
    pub running: bool,
    /// Base URL of the API, e.g. `http://127.0.0.1:8734/v1` (empty when stopped).
    pub url: String,
    /// Whether requests must carry the API key.
    pub key_required: bool,
    /// Whether an API key exists in the OS keyring.
    pub key_set: bool,
    /// Models loaded now, most recently used last.
    pub loaded: Vec<String>,
    /// Every model the server answers as: aliases, finished runs (`<project>/<run>`) and
    /// installed models.
    pub models: Vec<ServedModel>,
}

/// A model name the server answers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedModel {
    /// The name a request's `model` uses.
    pub id: String,
    /// `alias`, `run` or `installed`.
    pub kind: String,
    /// What it resolves to (an alias's model, a run's base model), for display.
    pub detail: String,
}

/// A freshly created API key: shown once, kept only in the OS keyring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// The key itself.
    pub key: String,
}

/// Per-request defaults an alias sets (a request's own values win).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestParams {
    /// 0–2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// (0, 1].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// −2–2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f32>,
    /// −2–2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f32>,
    /// ≥ 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    /// At most four stop strings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Sampler seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Caller label recorded in traces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// Per-model settings an alias sets (llama.cpp's names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContextParams {
    /// Context length (≤ the model's own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_ctx: Option<usize>,
    /// Sequences decoded together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_parallel: Option<usize>,
    /// Default most tokens to predict (a request's `max_tokens` wins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_predict: Option<usize>,
    /// Prompt tokens kept when the context overflows (≤ `n_ctx`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_keep: Option<usize>,
    /// Default seed (`request_params.seed` and a request's seed win).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// An inference preset: a model (or run) with its template and parameters, served by name.
/// Kept as `aliases/<name>.yaml` (the name made path-safe: other characters become `--`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Alias {
    /// The name requests use, e.g. `support-bot:v2`.
    pub alias: String,
    /// An installed model id, or a finished run as `<project>/<run>`.
    pub model: String,
    /// A chat template (Jinja) replacing the model's own; empty: the model's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<String>,
    /// A system message put first when a request has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Request defaults.
    pub request_params: RequestParams,
    /// Model settings.
    pub context_params: ContextParams,
}

/// Arguments of commands that act on one alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasRef {
    /// The alias name.
    pub alias: String,
}

/// Creates an alias, or replaces one (an edit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasSave {
    /// The alias.
    pub alias: Alias,
    /// Replace an alias of that name (else an existing name is refused).
    pub replace: bool,
}

/// Makes a finished run the project's live version: the alias named after the project points
/// at it (the alias's other settings kept); an earlier run is a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoLive {
    /// The project (its slug is the name clients ask for).
    pub project: String,
    /// The finished run.
    pub run: String,
}

/// Copies an alias under a new name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasClone {
    /// The alias copied.
    pub from: String,
    /// The new name.
    pub to: String,
}

/// One request the server answered (or refused), as recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// Row id (0 before it is recorded).
    pub id: i64,
    /// Unix seconds when the request arrived.
    pub created_at: i64,
    /// `/v1/chat/completions` or `/v1/completions`.
    pub endpoint: String,
    /// The request's `model` as sent.
    pub model: String,
    /// The alias it resolved through, if any.
    pub alias: Option<String>,
    /// The request body as received (JSON text; a body that is not JSON kept as text).
    pub request: String,
    /// The answer's text (first choice), or the error message.
    pub response: String,
    /// HTTP status sent.
    pub status: u16,
    /// Whether the answer streamed.
    pub stream: bool,
    /// Milliseconds from arrival to the last byte.
    pub latency_ms: u64,
    /// Milliseconds from arrival to the first token (0 when none).
    pub ttft_ms: u64,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens, over every choice.
    pub completion_tokens: usize,
    /// 1 good, −1 bad, none unrated.
    pub feedback: Option<i8>,
    /// Free tags.
    pub tags: Vec<String>,
}

/// Which traces to list (every field optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TraceFilter {
    /// Only this model name (as sent).
    pub model: Option<String>,
    /// `ok` (status < 400) or `error`.
    pub status: Option<String>,
    /// Text found in the request or the response.
    pub text: Option<String>,
    /// Only this tag.
    pub tag: Option<String>,
    /// Only traces created at or after these Unix seconds.
    pub since: Option<i64>,
    /// Newest first, at most this many (0: 200).
    pub limit: usize,
}

/// Usage over recorded traces.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceStats {
    /// Requests.
    pub requests: usize,
    /// Requests answered with status ≥ 400.
    pub errors: usize,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// Median latency, ms.
    pub p50_ms: u64,
    /// 95th percentile latency, ms.
    pub p95_ms: u64,
    /// Median time to first token, ms.
    pub ttft_p50_ms: u64,
}

/// Sets a trace's feedback and tags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceFeedback {
    /// The trace.
    pub id: i64,
    /// 1, −1, or none to clear.
    pub feedback: Option<i8>,
    /// Replaces the tags.
    pub tags: Vec<String>,
}

/// Turns traces into a project dataset (their conversations, each ending with the reply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracesToDataset {
    /// The traces, by id.
    pub ids: Vec<i64>,
    /// The project that receives the dataset.
    pub project: String,
    /// The dataset's name (e.g. `traces`).
    pub name: String,
}

/// Asks the running server a chat question from the Deploy pane's test box (through HTTP,
/// so it is traced like any client's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServeTest {
    /// The model name.
    pub model: String,
    /// The user's message.
    pub prompt: String,
}

/// The test box's answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServeTestReply {
    /// The reply's text.
    pub text: String,
    /// Milliseconds the request took.
    pub latency_ms: u64,
    /// Prompt tokens, generated tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
}
