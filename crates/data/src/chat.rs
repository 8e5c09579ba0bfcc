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

    /// The JSONL line (without the newline): what `serde_json` writes for it, byte for byte.
    pub fn to_line(&self) -> String {
        // Sized once: the texts, plus room for the keys and some escapes.
        let size: usize = self.messages.iter().map(|m| m.content.len() + 40).sum();
        let mut out = String::with_capacity(size + 16);
        out.push_str("{\"messages\":[");
        for (i, m) in self.messages.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"role\":");
            json_string(&mut out, &m.role);
            out.push_str(",\"content\":");
            json_string(&mut out, &m.content);
            out.push('}');
        }
        out.push_str("]}");
        out
    }
}

/// `s` as a JSON string, escaped as `serde_json` escapes: `"`, `\\` and control characters
/// (`\n`, `\t`… or `\u00XX`), nothing else. Eight bytes are checked at a time (`serde_json`
/// looks every byte up in a table), the runs between escapes copied whole.
fn json_string(out: &mut String, s: &str) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Whether any of the 8 bytes is below 0x20, a quote or a backslash (exact for "any").
    let special = |w: u64| {
        let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
        (w.wrapping_sub(ONES * 0x20) & !w & HIGH)
            | zero(w ^ (ONES * b'"' as u64))
            | zero(w ^ (ONES * b'\\' as u64))
            != 0
    };
    out.push('"');
    let b = s.as_bytes();
    let (mut from, mut i) = (0, 0);
    while i < b.len() {
        if let Some(w) = b.get(i..i + 8)
            && !special(u64::from_le_bytes(w.try_into().unwrap_or_default()))
        {
            i += 8;
            continue;
        }
        let short = match b[i] {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            c if c < 0x20 => "",
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&s[from..i]);
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[(b[i] >> 4) as usize] as char);
            out.push(HEX[(b[i] & 15) as usize] as char);
        } else {
            out.push_str(short);
        }
        i += 1;
        from = i;
    }
    out.push_str(&s[from..]);
    out.push('"');
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte for byte what `serde_json` writes, on every control character, quotes, backslashes,
    /// multi-byte characters, at every position relative to the 8-byte steps.
    #[test]
    fn lines_are_what_serde_json_writes() {
        let mut atoms: Vec<String> = (0u8..0x20).map(|b| (b as char).to_string()).collect();
        atoms.extend(
            ["\"", "\\", "/", "\u{7f}", "é", "中", "🙂", "a", "word ", "\u{2028}"]
                .map(String::from),
        );
        // A seeded mix: strings of 0 to 40 atoms.
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for _ in 0..20_000 {
            let mut conv = Conversation::default();
            for role in ["system", "user", "assistant"] {
                let n = rng.random_range(0..=40);
                let text: String =
                    (0..n).map(|_| atoms[rng.random_range(0..atoms.len())].as_str()).collect();
                conv.push(role, text);
            }
            let want = serde_json::to_string(&conv).unwrap();
            assert_eq!(conv.to_line(), want);
        }
        assert_eq!(Conversation::default().to_line(), r#"{"messages":[]}"#);
    }
}
