//! The normalized form of a row: an OpenAI chat conversation, one JSON object per JSONL line.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// One training example: `{"messages": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// The messages in order.
    pub messages: Vec<Message>,
}

impl Conversation {
    /// Appends a message (empty content is kept: the report counts it as missing).
    pub fn push(&mut self, role: &str, content: String) {
        self.messages.push(Message { role: role.to_string(), content });
    }

    /// The text of every message with `role`, joined by blank lines (borrowed when there is
    /// one such message).
    pub fn text_of(&self, role: &str) -> Cow<'_, str> {
        let mut parts = self.messages.iter().filter(|m| m.role == role).map(|m| m.content.as_str());
        let Some(first) = parts.next() else { return Cow::Borrowed("") };
        match parts.next() {
            None => Cow::Borrowed(first),
            Some(second) => {
                let mut all = [first, second].join("\n\n");
                for p in parts {
                    all.push_str("\n\n");
                    all.push_str(p);
                }
                Cow::Owned(all)
            }
        }
    }

    /// The JSONL line (without the newline).
    pub fn to_line(&self) -> String {
        // Sized once: the texts, plus room for the keys and some escapes.
        let size: usize = self.messages.iter().map(|m| m.content.len() + 40).sum();
        let mut out = Vec::with_capacity(size + 16);
        // A struct of strings always serializes, to valid UTF-8.
        if serde_json::to_writer(&mut out, self).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// A field as text: strings as they are, numbers and booleans printed, null empty, arrays and
/// objects as compact JSON (except lists of strings/parts, whose texts are joined).
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => into_text(other.clone()),
    }
}

/// [`text`], taking the value (a string moves instead of being copied).
pub fn into_text(v: Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s,
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) if items.iter().all(|i| part_text(i).is_some()) => {
            items.iter().filter_map(part_text).collect::<Vec<_>>().join("\n")
        }
        other => other.to_string(),
    }
}

/// A string, or an OpenAI content part `{"type": "text", "text": …}`.
fn part_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("text").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// A role name as OpenAI spells it: ShareGPT's `human`/`gpt`, `bot`, `model` and friends mapped.
pub fn role(name: &str) -> Option<&'static str> {
    match name.trim().to_ascii_lowercase().as_str() {
        "system" | "developer" => Some("system"),
        "user" | "human" | "customer" | "prompter" | "question" => Some("user"),
        "assistant" | "gpt" | "bot" | "model" | "ai" | "chatgpt" | "agent" | "answer" => {
            Some("assistant")
        }
        _ => None,
    }
}
