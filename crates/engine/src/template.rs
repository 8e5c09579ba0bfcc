//! Chat templates: the model's own Jinja template (GGUF `tokenizer.chat_template` or
//! `tokenizer_config.json`) rendered with minijinja, plus a ChatML fallback.

use minijinja::{Environment, ErrorKind, context};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One chat message (OpenAI shape). The optional fields of tool use pass to the template as
/// they came (absent when `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text.
    pub content: String,
    /// The assistant's tool calls (OpenAI's `tool_calls` array).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<serde_json::Value>,
    /// The author's name (a `tool` message: the function's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The call a `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    /// A message.
    pub fn new(role: &str, content: &str) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
            tool_calls: None,
            name: None,
            tool_call_id: None,
        }
    }
}

/// ChatML, used when a model brings no template.
pub const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// A compiled chat template with the special tokens it may reference.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
}

impl ChatTemplate {
    /// Compiles `source` (Hugging Face Jinja).
    pub fn new(source: &str, bos: &str, eos: &str) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_filter("tojson", tojson);
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| Error::Template(e.to_string()))?;
        Ok(ChatTemplate { env, bos: bos.into(), eos: eos.into() })
    }

    /// Renders `messages`; with `add_generation_prompt` the text ends where the assistant speaks.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        self.render_with(messages, None, add_generation_prompt)
    }

    /// Like [`ChatTemplate::render`], with the tools the model may call (OpenAI's `tools`
    /// array) passed to the template as `tools`, as Hugging Face's `apply_chat_template` does
    /// (`None`: `tools` is undefined).
    pub fn render_with(
        &self,
        messages: &[Message],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        let tmpl = self.env.get_template("chat").map_err(|e| Error::Template(e.to_string()))?;
        let base = context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos,
            eos_token => self.eos,
        };
        let ctx = match tools {
            Some(tools) => context! { tools => tools, ..base },
            None => base,
        };
        tmpl.render(ctx).map_err(|e| Error::Template(e.to_string()))
    }
}

/// Jinja's `tojson` as Hugging Face's templates get it (`json.dumps(x, ensure_ascii=False,
/// indent=indent)`): `", "` and `": "` between items, keys in their order, no HTML escaping
/// (minijinja's own filter is compact and escapes `<`, `>`, `&` and `'`, so a tool's
/// description would reach the model other than transformers renders it).
fn tojson(
    value: minijinja::Value,
    kwargs: minijinja::value::Kwargs,
) -> std::result::Result<minijinja::Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    let _: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&value)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let mut out = String::new();
    write_py_json(&json, indent, 0, &mut out);
    Ok(minijinja::Value::from_safe_string(out))
}

/// `json.dumps` of Python: items joined by `", "` (`","` and a new line when indented).
fn write_py_json(v: &serde_json::Value, indent: Option<usize>, depth: usize, out: &mut String) {
    use serde_json::Value as J;
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    let sep = if indent.is_some() { "," } else { ", " };
    match v {
        J::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, depth + 1);
                write_py_json(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push(']');
        }
        J::Object(map) if !map.is_empty() => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, depth + 1);
                out.push_str(&J::String(k.clone()).to_string());
                out.push_str(": ");
                write_py_json(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_renders_with_generation_prompt() {
        let t = ChatTemplate::new(CHATML, "", "<|im_end|>").unwrap();
        let s = t.render(&[Message::new("user", "Hi")], true).unwrap();
        assert_eq!(s, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    }

    /// Tools reach the template; `tojson` writes what Python's `json.dumps` writes (checked
    /// with `json.dumps(x, ensure_ascii=False)` and `indent=2`).
    #[test]
    fn tools_and_tool_messages_reach_the_template() {
        let src = "{% if tools %}{% for t in tools %}{{ t | tojson }}\n{{ t | tojson(indent=2) }}\n{% endfor %}{% endif %}{% for m in messages %}{{ m.role }}:{{ m.content }}{% if m.tool_calls %}{{ m.tool_calls | tojson }}{% endif %}{% if m.tool_call_id %}#{{ m.tool_call_id }}{% endif %};{% endfor %}";
        let t = ChatTemplate::new(src, "", "").unwrap();
        let tools: serde_json::Value = serde_json::from_str(
            r#"[{"type": "function", "function": {"name": "w", "description": "<é> & 'x'", "parameters": {"type": "object", "properties": {}, "required": []}}}]"#,
        )
        .unwrap();
        let mut call = Message::new("assistant", "");
        call.tool_calls = Some(serde_json::json!([{"id": "c1", "type": "function"}]));
        let mut answer = Message::new("tool", "sunny");
        answer.tool_call_id = Some("c1".into());
        let out = t.render_with(&[call, answer], Some(&tools), false).unwrap();
        let expected = r#"{"type": "function", "function": {"name": "w", "description": "<é> & 'x'", "parameters": {"type": "object", "properties": {}, "required": []}}}
{
  "type": "function",
  "function": {
    "name": "w",
    "description": "<é> & 'x'",
    "parameters": {
      "type": "object",
      "properties": {},
      "required": []
    }
  }
}
assistant:[{"id": "c1", "type": "function"}];tool:sunny#c1;"#;
        assert_eq!(out, expected);
        // Without tools the template sees none.
        assert_eq!(t.render(&[Message::new("user", "x")], false).unwrap(), "user:x;");
    }

    #[test]
    fn raise_exception_and_python_methods_work() {
        let src = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first must be user') }}{% endif %}{{ messages[0]['content'].strip() }}";
        let t = ChatTemplate::new(src, "", "").unwrap();
        assert_eq!(t.render(&[Message::new("user", "  x  ")], false).unwrap(), "x");
        let err = t.render(&[Message::new("system", "s")], false).unwrap_err().to_string();
        assert!(err.contains("first must be user"), "{err}");
    }
}
