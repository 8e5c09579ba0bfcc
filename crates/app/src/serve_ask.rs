//! The Deploy pane's test box: one chat request to the local server over HTTP, as any client
//! sends it (so it is traced, counted in the usage, and answered by the live version).

use std::time::{Duration, Instant};

use api::serve::{ServeTest, ServeTestReply};

use crate::{App, Error, Result};

/// A reply the test box waits for, at most (a model loads on first use).
const TIMEOUT: Duration = Duration::from_secs(300);

/// The longest answer the test box asks for.
const MAX_TOKENS: usize = 256;

impl App {
    /// Asks the server at `base_url` (`…/v1`) `req.prompt` as model `req.model`, with the API
    /// key from the keyring when one is set.
    pub fn serve_ask(&self, base_url: &str, req: &ServeTest) -> Result<ServeTestReply> {
        if req.prompt.trim().is_empty() {
            return Err(Error::InvalidInput("type a message to send".into()));
        }
        let key = self.serve_key()?;
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            // The server's OpenAI-style error bodies are what the user should read.
            .http_status_as_error(false)
            .build();
        let agent = ureq::Agent::new_with_config(config);
        // A short answer: a test, not a model left to talk to the end of its context.
        let body = serde_json::json!({
            "model": req.model,
            "messages": [{"role": "user", "content": req.prompt}],
            "max_tokens": MAX_TOKENS,
        });
        let mut post = agent.post(&format!("{base_url}/chat/completions"));
        if let Some(key) = &key {
            post = post.header("Authorization", &format!("Bearer {key}"));
        }
        let start = Instant::now();
        let mut resp = post
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .map_err(|e| Error::Network(format!("the server at {base_url} did not answer: {e}")))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| Error::Network(format!("the server's answer broke off: {e}")))?;
        let latency_ms = start.elapsed().as_millis() as u64;
        let answer: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::InvalidInput(format!("the server answered no JSON ({e})")))?;
        if status >= 400 {
            let message = answer["error"]["message"].as_str().unwrap_or(&text);
            return Err(Error::InvalidInput(format!("the server refused ({status}): {message}")));
        }
        let count = |k: &str| answer["usage"][k].as_u64().unwrap_or(0) as usize;
        Ok(ServeTestReply {
            text: answer["choices"][0]["message"]["content"].as_str().unwrap_or("").to_string(),
            latency_ms,
            prompt_tokens: count("prompt_tokens"),
            completion_tokens: count("completion_tokens"),
        })
    }
}
