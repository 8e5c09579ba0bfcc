//! Reading an OpenAI request body: each field checked on its own, so an error names its
//! `param`, as OpenAI's do. Unknown fields are ignored (clients send many).

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Most choices (`n`) one request may ask for.
pub(crate) const MAX_N: usize = 16;
/// Most alternatives per token (`top_logprobs`), as OpenAI.
pub(crate) const MAX_TOP_LOGPROBS: usize = 20;
/// Most alternatives per token of `/v1/completions`' `logprobs`, as OpenAI.
pub(crate) const MAX_COMPLETION_LOGPROBS: usize = 5;

/// Which endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Completions,
}

impl Endpoint {
    /// The path.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
        }
    }
}

/// The output's shape (`response_format`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Format {
    /// Free text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON following this schema.
    JsonSchema(Value),
}

/// One chat message, its content flattened to text; tool use as it came.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Msg {
    pub role: String,
    pub content: String,
    pub tool_calls: Option<Value>,
    pub name: Option<String>,
    pub tool_call_id: Option<String>,
}

/// A completion request, read and range-checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Request {
    pub model: String,
    /// Chat: the conversation.
    pub messages: Vec<Msg>,
    /// Completions: the prompt.
    pub prompt: String,
    pub stream: bool,
    pub include_usage: bool,
    pub n: usize,
    pub stop: Option<Vec<String>>,
    pub seed: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_tokens: Option<usize>,
    pub frequency_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
    /// Alternatives per token when logprobs are asked for (0: the chosen token's only).
    pub logprobs: Option<usize>,
    pub format: Format,
    pub tools: Option<Value>,
    pub user: Option<String>,
}

/// Reads `body` (already JSON) as a request to `endpoint`.
pub(crate) fn parse(endpoint: Endpoint, body: &Value) -> Result<Request, ApiError> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::invalid("the request body must be a JSON object"));
    };
    let model: String = field(obj, "model")?
        .ok_or_else(|| ApiError::param("model", "you must provide a model parameter"))?;
    let (messages, prompt) = match endpoint {
        Endpoint::Chat => (messages(obj)?, String::new()),
        Endpoint::Completions => (Vec::new(), prompt(obj)?),
    };
    let stream = field::<bool>(obj, "stream")?.unwrap_or(false);
    let include_usage = match obj.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => field::<bool>(o, "include_usage")
            .map_err(|e| ApiError { param: Some("stream_options.include_usage".into()), ..e })?
            .unwrap_or(false),
        Some(_) => {
            return Err(ApiError::param("stream_options", "stream_options must be an object"));
        }
    };
    if include_usage && !stream {
        return Err(ApiError::param(
            "stream_options",
            "stream_options is only allowed when stream is true",
        ));
    }
    let n = match field::<i64>(obj, "n")? {
        None => 1,
        Some(n) if (1..=MAX_N as i64).contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::param("n", format!("n must be between 1 and {MAX_N}, got {n}")));
        }
    };
    let stop = match obj.get("stop") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(vec![s.clone()]),
        Some(Value::Array(a)) => {
            let mut v = Vec::with_capacity(a.len());
            for s in a {
                let Some(s) = s.as_str() else {
                    return Err(ApiError::param(
                        "stop",
                        "stop must be a string or an array of strings",
                    ));
                };
                v.push(s.to_string());
            }
            Some(v)
        }
        Some(_) => {
            return Err(ApiError::param("stop", "stop must be a string or an array of strings"));
        }
    };
    if let Some(stop) = &stop {
        if stop.len() > engine::generate::MAX_STOPS {
            return Err(ApiError::param(
                "stop",
                format!(
                    "stop takes at most {} strings, got {}",
                    engine::generate::MAX_STOPS,
                    stop.len()
                ),
            ));
        }
        if stop.iter().any(String::is_empty) {
            return Err(ApiError::param("stop", "stop strings cannot be empty"));
        }
    }
    // OpenAI's seed is any 64-bit integer; ours a u64 (the bits are the same).
    let seed = field::<i64>(obj, "seed")
        .or_else(|_| field::<u64>(obj, "seed").map(|s| s.map(|s| s as i64)))?
        .map(|s| s as u64);
    let temperature = range(obj, "temperature", 0.0, engine::generate::TEMPERATURE_MAX)?;
    let top_p = range(obj, "top_p", 0.0, 1.0)?;
    let frequency_penalty = range(obj, "frequency_penalty", -2.0, 2.0)?.map(|v| v as f32);
    let presence_penalty = range(obj, "presence_penalty", -2.0, 2.0)?.map(|v| v as f32);
    let max_tokens =
        match (field::<i64>(obj, "max_completion_tokens")?, field::<i64>(obj, "max_tokens")?) {
            (Some(m), _) => Some(("max_completion_tokens", m)),
            (None, Some(m)) => Some(("max_tokens", m)),
            (None, None) => None,
        };
    let max_tokens = match max_tokens {
        None => None,
        Some((_, m)) if m >= 1 => Some(m as usize),
        Some((name, m)) => {
            return Err(ApiError::param(name, format!("{name} must be at least 1, got {m}")));
        }
    };
    let logprobs = match endpoint {
        Endpoint::Chat => {
            let on = field::<bool>(obj, "logprobs")?.unwrap_or(false);
            let top = field::<i64>(obj, "top_logprobs")?;
            match top {
                Some(t) if !(0..=MAX_TOP_LOGPROBS as i64).contains(&t) => {
                    return Err(ApiError::param(
                        "top_logprobs",
                        format!("top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}, got {t}"),
                    ));
                }
                Some(_) if !on => {
                    return Err(ApiError::param(
                        "top_logprobs",
                        "top_logprobs needs logprobs set to true",
                    ));
                }
                _ => {}
            }
            on.then_some(top.unwrap_or(0) as usize)
        }
        Endpoint::Completions => match field::<i64>(obj, "logprobs")? {
            None => None,
            Some(t) if (0..=MAX_COMPLETION_LOGPROBS as i64).contains(&t) => Some(t as usize),
            Some(t) => {
                return Err(ApiError::param(
                    "logprobs",
                    format!("logprobs must be between 0 and {MAX_COMPLETION_LOGPROBS}, got {t}"),
                ));
            }
        },
    };
    let format = format(obj)?;
    let tools = match obj.get("tools") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) if a.is_empty() => None,
        Some(t @ Value::Array(_)) => Some(t.clone()),
        Some(_) => {
            return Err(ApiError::param("tools", "tools must be an array of tool definitions"));
        }
    };
    if tools.is_some() && endpoint == Endpoint::Completions {
        return Err(ApiError::param("tools", "tools are for /v1/chat/completions"));
    }
    let user = field::<String>(obj, "user")?;
    Ok(Request {
        model,
        messages,
        prompt,
        stream,
        include_usage,
        n,
        stop,
        seed,
        temperature,
        top_p,
        max_tokens,
        frequency_penalty,
        presence_penalty,
        logprobs,
        format,
        tools,
        user,
    })
}

/// Field `key` of `obj` as a `T` (absent or null: none), an error naming it otherwise.
fn field<T: DeserializeOwned>(obj: &Map<String, Value>, key: &str) -> Result<Option<T>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => T::deserialize(v)
            .map(Some)
            .map_err(|e| ApiError::param(key, format!("invalid value for '{key}': {e}"))),
    }
}

/// A number field within `[lo, hi]`.
fn range(obj: &Map<String, Value>, key: &str, lo: f64, hi: f64) -> Result<Option<f64>, ApiError> {
    match field::<f64>(obj, key)? {
        Some(v) if !(v.is_finite() && (lo..=hi).contains(&v)) => {
            Err(ApiError::param(key, format!("{key} must be between {lo} and {hi}, got {v}")))
        }
        v => Ok(v),
    }
}

fn messages(obj: &Map<String, Value>) -> Result<Vec<Msg>, ApiError> {
    let Some(list) = obj.get("messages") else {
        return Err(ApiError::param("messages", "you must provide a messages parameter"));
    };
    let Some(list) = list.as_array() else {
        return Err(ApiError::param("messages", "messages must be an array of messages"));
    };
    if list.is_empty() {
        return Err(ApiError::param("messages", "messages must hold at least one message"));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let param = |what: &str| format!("messages[{i}].{what}");
        let Some(m) = m.as_object() else {
            return Err(ApiError::param(
                &format!("messages[{i}]"),
                "each message must be an object",
            ));
        };
        let role = match m.get("role").and_then(Value::as_str) {
            // OpenAI's newer name of the system role.
            Some("developer") => "system",
            Some(r @ ("system" | "user" | "assistant" | "tool")) => r,
            Some(r) => {
                return Err(ApiError::param(
                    &param("role"),
                    format!("'{r}' is not a role: use system, developer, user, assistant or tool"),
                ));
            }
            None => return Err(ApiError::param(&param("role"), "each message needs a role")),
        };
        let content = match m.get("content") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => {
                let mut text = String::new();
                for p in parts {
                    match (
                        p.get("type").and_then(Value::as_str),
                        p.get("text").and_then(Value::as_str),
                    ) {
                        (Some("text"), Some(t)) => text.push_str(t),
                        (kind, _) => {
                            return Err(ApiError::param(
                                &param("content"),
                                format!(
                                    "content parts of type {} are not supported: this server reads text only",
                                    kind.unwrap_or("(none)")
                                ),
                            ));
                        }
                    }
                }
                text
            }
            Some(_) => {
                return Err(ApiError::param(
                    &param("content"),
                    "content must be a string or an array of parts",
                ));
            }
        };
        let tool_calls = match m.get("tool_calls") {
            None | Some(Value::Null) => None,
            Some(calls @ Value::Array(_)) => Some(calls.clone()),
            Some(_) => {
                return Err(ApiError::param(&param("tool_calls"), "tool_calls must be an array"));
            }
        };
        let text = |key: &str| m.get(key).and_then(Value::as_str).map(String::from);
        let (name, tool_call_id) = (text("name"), text("tool_call_id"));
        out.push(Msg { role: role.into(), content, tool_calls, name, tool_call_id });
    }
    Ok(out)
}

fn prompt(obj: &Map<String, Value>) -> Result<String, ApiError> {
    match obj.get("prompt") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
            Ok(a[0].as_str().unwrap_or_default().to_string())
        }
        Some(Value::Array(_)) => Err(ApiError::param(
            "prompt",
            "this server takes one prompt per request: send a string",
        )),
        None | Some(Value::Null) => {
            Err(ApiError::param("prompt", "you must provide a prompt parameter"))
        }
        Some(_) => Err(ApiError::param("prompt", "prompt must be a string")),
    }
}

fn format(obj: &Map<String, Value>) -> Result<Format, ApiError> {
    let rf = match obj.get("response_format") {
        None | Some(Value::Null) => return Ok(Format::Text),
        Some(Value::Object(o)) => o,
        Some(_) => {
            return Err(ApiError::param("response_format", "response_format must be an object"));
        }
    };
    match rf.get("type").and_then(Value::as_str) {
        Some("text") => Ok(Format::Text),
        Some("json_object") => Ok(Format::JsonObject),
        Some("json_schema") => {
            let schema = rf.get("json_schema").and_then(|j| j.get("schema"));
            match schema {
                Some(s @ Value::Object(_)) => Ok(Format::JsonSchema(s.clone())),
                _ => Err(ApiError::param(
                    "response_format.json_schema.schema",
                    "a json_schema response_format needs json_schema.schema, a JSON Schema object",
                )),
            }
        }
        Some(t) => Err(ApiError::param(
            "response_format.type",
            format!("'{t}' is not a response format: use text, json_object or json_schema"),
        )),
        None => Err(ApiError::param("response_format.type", "response_format needs a type")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check_err(endpoint: Endpoint, body: Value, param: Option<&str>, message: &str) {
        let e = parse(endpoint, &body).unwrap_err();
        assert_eq!(e.param.as_deref(), param, "{e:?}");
        assert!(e.message.contains(message), "{} does not contain {message}", e.message);
        assert_eq!(e.status, 400);
    }

    #[test]
    fn reads_a_full_chat_request() {
        let r = parse(
            Endpoint::Chat,
            &json!({
                "model": "m", "messages": [
                    {"role": "developer", "content": "Be brief."},
                    {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}
                ],
                "stream": true, "stream_options": {"include_usage": true}, "n": 2, "stop": "END",
                "seed": -1, "temperature": 0.5, "top_p": 0.9, "max_completion_tokens": 7,
                "max_tokens": 99, "frequency_penalty": 0.1, "presence_penalty": -0.1,
                "logprobs": true, "top_logprobs": 3, "user": "u1",
                "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
                "tools": [{"type": "function", "function": {"name": "f"}}], "unknown": 1
            }),
        )
        .unwrap();
        assert_eq!(
            (r.messages[0].role.as_str(), r.messages[0].content.as_str()),
            ("system", "Be brief.")
        );
        assert_eq!(r.messages[1].content, "Hi there");
        assert!(r.stream && r.include_usage);
        assert_eq!(
            (r.n, r.stop.clone(), r.seed),
            (2, Some(vec!["END".to_string()]), Some(u64::MAX))
        );
        assert_eq!((r.max_tokens, r.logprobs, r.user.as_deref()), (Some(7), Some(3), Some("u1")));
        assert_eq!(r.format, Format::JsonSchema(json!({"type": "object"})));
        assert!(r.tools.is_some());
    }

    #[test]
    fn each_bad_field_is_named() {
        let chat = |extra: Value| {
            let mut b = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
            for (k, v) in extra.as_object().unwrap() {
                b[k] = v.clone();
            }
            b
        };
        check_err(Endpoint::Chat, json!([1]), None, "JSON object");
        check_err(Endpoint::Chat, json!({"messages": []}), Some("model"), "model");
        check_err(
            Endpoint::Chat,
            json!({"model": "m", "messages": []}),
            Some("messages"),
            "at least one",
        );
        check_err(
            Endpoint::Chat,
            chat(json!({"temperature": 3})),
            Some("temperature"),
            "between 0 and 2",
        );
        check_err(
            Endpoint::Chat,
            chat(json!({"temperature": "hot"})),
            Some("temperature"),
            "invalid",
        );
        check_err(Endpoint::Chat, chat(json!({"top_p": 1.5})), Some("top_p"), "between 0 and 1");
        check_err(Endpoint::Chat, chat(json!({"n": 0})), Some("n"), "between 1 and 16");
        check_err(Endpoint::Chat, chat(json!({"max_tokens": 0})), Some("max_tokens"), "at least 1");
        check_err(
            Endpoint::Chat,
            chat(json!({"stop": ["a", "b", "c", "d", "e"]})),
            Some("stop"),
            "at most 4",
        );
        check_err(
            Endpoint::Chat,
            chat(json!({"presence_penalty": -3})),
            Some("presence_penalty"),
            "between -2 and 2",
        );
        check_err(
            Endpoint::Chat,
            chat(json!({"top_logprobs": 2})),
            Some("top_logprobs"),
            "logprobs set to true",
        );
        check_err(
            Endpoint::Chat,
            chat(json!({"logprobs": true, "top_logprobs": 21})),
            Some("top_logprobs"),
            "between 0 and 20",
        );
        check_err(
            Endpoint::Chat,
            chat(json!({"stream_options": {"include_usage": true}})),
            Some("stream_options"),
            "stream is true",
        );
        check_err(
            Endpoint::Chat,
            chat(json!({"response_format": {"type": "xml"}})),
            Some("response_format.type"),
            "xml",
        );
        check_err(
            Endpoint::Chat,
            chat(json!({"response_format": {"type": "json_schema"}})),
            Some("response_format.json_schema.schema"),
            "schema",
        );
        check_err(
            Endpoint::Chat,
            json!({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}),
            Some("messages[0].role"),
            "wizard",
        );
        check_err(Endpoint::Completions, json!({"model": "m"}), Some("prompt"), "prompt");
        check_err(
            Endpoint::Completions,
            json!({"model": "m", "prompt": "x", "logprobs": 6}),
            Some("logprobs"),
            "between 0 and 5",
        );
    }
}
