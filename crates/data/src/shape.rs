//! Shape detection: which columns are the input, the output and the system prompt, with a
//! confidence and the evidence for it, and how a row becomes a chat conversation.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::chat::{self, Conversation};

/// How rows map to conversations. Stored in the dataset manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "shape", rename_all = "snake_case")]
pub enum Mapping {
    /// OpenAI chat: a column holding `[{"role", "content"}, …]`.
    Messages {
        /// The column (usually `messages`).
        column: String,
    },
    /// ShareGPT: a column holding `[{"from", "value"}, …]`.
    Sharegpt {
        /// The column (usually `conversations`).
        column: String,
    },
    /// Alpaca: `instruction` (+ `input`, appended after a blank line) → user, `output` → assistant.
    Alpaca {
        /// Instruction column.
        instruction: String,
        /// Optional input column.
        input: Option<String>,
        /// Output column.
        output: String,
        /// Optional system column.
        system: Option<String>,
    },
    /// One input column → user, one output column → assistant.
    Columns {
        /// Input column.
        input: String,
        /// Output column.
        output: String,
        /// Optional system column.
        system: Option<String>,
    },
}

/// The result of [`detect`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// The most likely mapping.
    pub mapping: Mapping,
    /// 0–1; below [`crate::thresholds::MIN_CONFIDENCE`] the user must confirm.
    pub confidence: f64,
    /// Why, one line per decision.
    pub evidence: Vec<String>,
    /// Columns not needed for training, each with the reason.
    pub unused: Vec<Unused>,
    /// The user chose the mapping ([`confirmed`]) rather than [`detect`].
    pub confirmed: bool,
}

pub use api::dataset::Unused;

impl Mapping {
    /// The conversation of one row. Missing fields give empty messages (the report counts them).
    pub fn conversation(&self, mut row: Map<String, Value>) -> Conversation {
        let mut field = |c: &str| row.remove(c).map(chat::into_text).unwrap_or_default();
        let mut conv = Conversation::default();
        match self {
            Mapping::Messages { column } | Mapping::Sharegpt { column } => {
                let (role_key, text_key) = match self {
                    Mapping::Messages { .. } => ("role", "content"),
                    _ => ("from", "value"),
                };
                if let Some(Value::Array(items)) = row.remove(column.as_str()) {
                    for mut item in items {
                        let role = item.get(role_key).and_then(Value::as_str).and_then(chat::role);
                        if let Some(role) = role {
                            let text = item
                                .get_mut(text_key)
                                .map(|v| chat::into_text(v.take()))
                                .unwrap_or_default();
                            conv.push(role, text);
                        }
                    }
                }
                if !conv.messages.iter().any(|m| m.role == "user") {
                    conv.messages
                        .insert(0, chat::Message { role: "user".into(), content: "".into() })
                }
                if !conv.messages.iter().any(|m| m.role == "assistant") {
                    conv.push("assistant", String::new());
                }
            }
            Mapping::Alpaca { instruction, input, output, system } => {
                if let Some(s) = system.as_deref().map(&mut field).filter(|s| !s.trim().is_empty())
                {
                    conv.push("system", s);
                }
                let mut user = field(instruction);
                if let Some(extra) =
                    input.as_deref().map(&mut field).filter(|s| !s.trim().is_empty())
                {
                    if !user.is_empty() {
                        user.push_str("\n\n");
                    }
                    user.push_str(&extra);
                }
                conv.push("user", user);
                conv.push("assistant", field(output));
            }
            Mapping::Columns { input, output, system } => {
                if let Some(s) = system.as_deref().map(&mut field).filter(|s| !s.trim().is_empty())
                {
                    conv.push("system", s);
                }
                conv.push("user", field(input));
                conv.push("assistant", field(output));
            }
        }
        conv
    }

    /// The columns this mapping reads.
    pub fn columns(&self) -> Vec<&str> {
        match self {
            Mapping::Messages { column } | Mapping::Sharegpt { column } => vec![column],
            Mapping::Alpaca { instruction, input, output, system } => {
                [Some(instruction), input.as_ref(), Some(output), system.as_ref()]
                    .into_iter()
                    .flatten()
                    .map(String::as_str)
                    .collect()
            }
            Mapping::Columns { input, output, system } => {
                [Some(input), Some(output), system.as_ref()]
                    .into_iter()
                    .flatten()
                    .map(String::as_str)
                    .collect()
            }
        }
    }

    /// One line for people: `customer_message → user, support_reply → assistant`.
    pub fn describe(&self) -> String {
        match self {
            Mapping::Messages { column } => format!("OpenAI messages in '{column}'"),
            Mapping::Sharegpt { column } => format!("ShareGPT conversations in '{column}'"),
            Mapping::Alpaca { instruction, input, output, system } => {
                let mut s = format!("Alpaca: '{instruction}'");
                if let Some(i) = input {
                    s += &format!(" + '{i}'");
                }
                s += &format!(" → user, '{output}' → assistant");
                if let Some(sys) = system {
                    s += &format!(", '{sys}' → system");
                }
                s
            }
            Mapping::Columns { input, output, system } => {
                let mut s = format!("'{input}' → user, '{output}' → assistant");
                if let Some(sys) = system {
                    s += &format!(", '{sys}' → system");
                }
                s
            }
        }
    }
}

/// A mapping the user chose (`--input`, `--output`, `--system`), checked against the columns.
pub fn confirmed(
    columns: &[String],
    input: &str,
    output: &str,
    system: Option<&str>,
) -> std::result::Result<Detection, String> {
    for c in [Some(input), Some(output), system].into_iter().flatten() {
        if !columns.iter().any(|k| k == c) {
            return Err(format!("no column '{c}': the columns are {}", columns.join(", ")));
        }
    }
    if input == output {
        return Err(format!("'{input}' cannot be both the input and the output"));
    }
    let mapping = Mapping::Columns {
        input: input.into(),
        output: output.into(),
        system: system.map(str::to_string),
    };
    let used = mapping.columns().iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Ok(Detection {
        mapping,
        confidence: 1.0,
        evidence: vec!["mapping confirmed by you".into()],
        confirmed: true,
        unused: columns
            .iter()
            .filter(|c| !used.contains(c))
            .map(|c| Unused { column: c.clone(), reason: "not needed for training".into() })
            .collect(),
    })
}

/// Decides the shape from the column names (in file order when known) and a sample of rows.
pub fn detect(
    columns: &[String],
    sample: &[Map<String, Value>],
) -> std::result::Result<Detection, String> {
    if sample.is_empty() {
        return Err("no rows: the file has a header or brackets but no data".into());
    }
    let stats: Vec<ColumnStats> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| ColumnStats { position: i as f64, ..ColumnStats::of(c, sample) })
        .collect();
    let share = |f: &dyn Fn(&ColumnStats) -> f64| {
        stats.iter().map(|s| (f(s), s)).max_by(|a, b| a.0.total_cmp(&b.0))
    };
    // OpenAI messages and ShareGPT conversations are recognised by their content.
    if let Some((s, c)) = share(&|s| s.messages).filter(|(s, _)| *s > 0.0) {
        return Ok(whole(
            columns,
            Mapping::Messages { column: c.name.clone() },
            s,
            "OpenAI `messages` (role/content)",
        ));
    }
    if let Some((s, c)) = share(&|s| s.sharegpt).filter(|(s, _)| *s > 0.0) {
        return Ok(whole(
            columns,
            Mapping::Sharegpt { column: c.name.clone() },
            s,
            "ShareGPT `conversations` (from/value)",
        ));
    }
    let find = |name: &str| stats.iter().find(|s| s.key == name).map(|s| s.name.clone());
    let system = stats
        .iter()
        .find(|s| SYSTEM_NAMES.contains(&s.key.as_str()) && s.text > 0.0)
        .map(|s| s.name.clone());
    if let (Some(instruction), Some(output)) = (find("instruction"), find("output")) {
        let input = find("input");
        let mapping = Mapping::Alpaca { instruction, input, output, system: system.clone() };
        let mut d = whole(columns, mapping, 0.97, "Alpaca (instruction, input, output)");
        d.unused.retain(|u| Some(&u.column) != system.as_ref());
        return Ok(d);
    }

    let mut evidence = Vec::new();
    let candidates: Vec<&ColumnStats> =
        stats.iter().filter(|s| s.text >= 0.5 && Some(&s.name) != system.as_ref()).collect();
    if candidates.len() < 2 {
        return Err(format!(
            "need two text columns (an input and an output), found {}: {}",
            candidates.len(),
            if columns.is_empty() { "no columns".to_string() } else { columns.join(", ") }
        ));
    }
    let by_name = |names: &[&str], tokens: &[&str], s: &ColumnStats| -> f64 {
        if names.contains(&s.key.as_str()) {
            1.0
        } else if s.tokens.iter().any(|t| tokens.contains(&t.as_str())) {
            0.8
        } else {
            0.0
        }
    };
    let best = |f: &dyn Fn(&ColumnStats) -> f64, skip: Option<&str>| {
        candidates
            .iter()
            .filter(|s| Some(s.name.as_str()) != skip)
            .map(|s| (f(s), *s))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    };
    let mut confidence = 0.0;
    let input_named = best(&|s| by_name(INPUT_NAMES, INPUT_TOKENS, s), None).filter(|b| b.0 > 0.0);
    let output_named =
        best(&|s| by_name(OUTPUT_NAMES, OUTPUT_TOKENS, s), input_named.map(|b| b.1.name.as_str()))
            .filter(|b| b.0 > 0.0);
    let input = match input_named {
        Some((score, s)) => {
            confidence += 0.45 * score;
            evidence.push(format!("input: '{}' (its name says input)", s.name));
            s
        }
        None => {
            // Questions and requests: the column that most often asks, earlier columns on ties.
            let skip = output_named.map(|b| b.1.name.as_str());
            let (q, s) = best(&|s| s.question - s.position * 1e-3, skip).expect("two candidates");
            if q > 0.3 {
                confidence += 0.2;
                evidence.push(format!(
                    "input: '{}' ({:.0} % of its values are questions)",
                    s.name,
                    q * 100.0
                ));
            } else {
                confidence += 0.1;
                evidence.push(format!(
                    "input: '{}' (the first text column; names say nothing)",
                    s.name
                ));
            }
            s
        }
    };
    let output = match output_named {
        Some((score, s)) => {
            confidence += 0.45 * score;
            evidence.push(format!("output: '{}' (its name says output)", s.name));
            s
        }
        None => {
            let (_, s) = best(&|s| s.mean_len, Some(&input.name)).expect("two candidates");
            if s.mean_len > input.mean_len {
                confidence += 0.2;
                evidence.push(format!(
                    "output: '{}' (the longest other text column, {:.0} characters on average)",
                    s.name, s.mean_len
                ));
            } else {
                confidence += 0.1;
                evidence.push(format!(
                    "output: '{}' (the remaining text column; names say nothing)",
                    s.name
                ));
            }
            s
        }
    };
    if input.question > output.question + 0.3 {
        confidence += 0.05;
        evidence.push(format!("'{}' asks questions more often than '{}'", input.name, output.name));
    }
    if let Some(sys) = &system {
        evidence.push(format!("system: '{sys}' (its name says system prompt)"));
    }
    let mapping =
        Mapping::Columns { input: input.name.clone(), output: output.name.clone(), system };
    let used: Vec<&str> = mapping.columns();
    let unused = stats
        .iter()
        .filter(|s| !used.contains(&s.name.as_str()))
        .map(|s| Unused { column: s.name.clone(), reason: s.looks_like().into() })
        .collect();
    // Two decimals: the manifest shows it.
    let confidence = (confidence.min(0.98) * 100.0).round() / 100.0;
    Ok(Detection { mapping, confidence, evidence, unused, confirmed: false })
}

const INPUT_NAMES: &[&str] = &[
    "instruction",
    "question",
    "prompt",
    "input",
    "query",
    "user",
    "user_message",
    "customer_message",
    "message",
    "request",
    "human",
    "user_input",
    "source",
    "context",
];
const INPUT_TOKENS: &[&str] = &[
    "question",
    "prompt",
    "input",
    "query",
    "request",
    "instruction",
    "user",
    "customer",
    "human",
    "ask",
];
const OUTPUT_NAMES: &[&str] = &[
    "response",
    "answer",
    "completion",
    "output",
    "reply",
    "support_reply",
    "assistant",
    "target",
    "label",
    "bot",
    "gpt",
    "solution",
    "chosen",
    "agent_reply",
    "assistant_message",
];
const OUTPUT_TOKENS: &[&str] = &[
    "response",
    "answer",
    "completion",
    "output",
    "reply",
    "assistant",
    "target",
    "label",
    "bot",
    "agent",
    "solution",
    "summary",
    "sentiment",
    "category",
];
const SYSTEM_NAMES: &[&str] = &["system", "system_prompt", "system_message", "sys", "persona"];

fn whole(columns: &[String], mapping: Mapping, confidence: f64, what: &str) -> Detection {
    let used: Vec<String> = mapping.columns().iter().map(|s| s.to_string()).collect();
    Detection {
        evidence: vec![format!("{what}: {}", mapping.describe())],
        unused: columns
            .iter()
            .filter(|c| !used.contains(c))
            .map(|c| Unused { column: c.clone(), reason: "not needed for training".into() })
            .collect(),
        mapping,
        confidence,
        confirmed: false,
    }
}

/// What the sample says about one column.
struct ColumnStats {
    name: String,
    /// Lower-case name.
    key: String,
    /// Name split at `_`, `-`, spaces and camelCase humps.
    tokens: Vec<String>,
    /// 0 for the first column, 1 for the second…
    position: f64,
    /// Share of rows with non-numeric, non-date text.
    text: f64,
    /// Share of rows holding OpenAI messages.
    messages: f64,
    /// Share of rows holding ShareGPT turns.
    sharegpt: f64,
    /// Share of non-empty values that contain a question mark.
    question: f64,
    /// Mean length in characters of non-empty values.
    mean_len: f64,
    numeric: f64,
    date: f64,
    distinct: f64,
}

impl ColumnStats {
    fn of(name: &str, sample: &[Map<String, Value>]) -> ColumnStats {
        let n = sample.len() as f64;
        let (mut text, mut messages, mut sharegpt, mut question, mut numeric, mut date) =
            (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        let (mut len, mut nonempty) = (0.0, 0.0);
        let mut seen = std::collections::HashSet::new();
        for row in sample {
            let Some(v) = row.get(name) else { continue };
            if let Value::Array(items) = v {
                let all = |a: &str, b: &str| {
                    !items.is_empty()
                        && items.iter().all(|i| i.get(a).is_some() && i.get(b).is_some())
                };
                if all("role", "content") {
                    messages += 1.0;
                } else if all("from", "value") {
                    sharegpt += 1.0;
                }
                continue;
            }
            let s = chat::text(v);
            let t = s.trim();
            if t.is_empty() {
                continue;
            }
            nonempty += 1.0;
            len += t.chars().count() as f64;
            seen.insert(t.to_string());
            if v.is_number() || t.parse::<f64>().is_ok() {
                numeric += 1.0;
            } else if looks_like_date(t) {
                date += 1.0;
            } else {
                text += 1.0;
                if t.contains('?') {
                    question += 1.0;
                }
            }
        }
        let key = name.trim().to_lowercase();
        ColumnStats {
            name: name.to_string(),
            tokens: split_name(name),
            key,
            position: 0.0,
            text: text / n,
            messages: messages / n,
            sharegpt: sharegpt / n,
            question: if nonempty > 0.0 { question / nonempty } else { 0.0 },
            mean_len: if nonempty > 0.0 { len / nonempty } else { 0.0 },
            numeric: numeric / n,
            date: date / n,
            distinct: if nonempty > 0.0 { seen.len() as f64 / nonempty } else { 0.0 },
        }
    }

    fn looks_like(&self) -> &'static str {
        let id_name = self.tokens.last().is_some_and(|t| t == "id" || t == "uuid" || t == "key");
        if id_name || (self.numeric > 0.9 && self.distinct > 0.99) {
            "an identifier: not needed for training"
        } else if self.date > 0.5
            || self.tokens.iter().any(|t| {
                ["date", "time", "timestamp", "created", "updated", "at"].contains(&t.as_str())
            })
        {
            "a date or time: not needed for training"
        } else if self.numeric > 0.5 {
            "numbers: not needed for training"
        } else if self.distinct < 0.2 {
            "a category with few values: not needed for training"
        } else {
            "not needed for training"
        }
    }
}

fn split_name(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for ch in name.chars() {
        if !ch.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if ch.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = ch.is_lowercase();
        cur.extend(ch.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `2024-05-01`, `2024-05-01T10:00:00Z`, `05/01/2024 10:00`: digits and date punctuation only.
fn looks_like_date(s: &str) -> bool {
    let digits = s.chars().filter(char::is_ascii_digit).count();
    s.len() <= 40
        && digits >= 6
        && s.chars().all(|c| c.is_ascii_digit() || "-/:.TZ +".contains(c))
        && (s.contains('-') || s.contains('/') || s.contains(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split() {
        assert_eq!(split_name("customerMessage"), ["customer", "message"]);
        assert_eq!(split_name("support_reply"), ["support", "reply"]);
        assert_eq!(split_name("Ticket ID"), ["ticket", "id"]);
    }

    #[test]
    fn dates() {
        assert!(looks_like_date("2024-05-01T10:00:00Z"));
        assert!(looks_like_date("05/01/2024 10:00"));
        assert!(!looks_like_date("12345678"));
        assert!(!looks_like_date("How do I reset it?"));
    }
}
