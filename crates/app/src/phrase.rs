//! The assistant's wording. The rules write every reply; when the user asks for it, a local
//! instruct model (an installed model) or a remote OpenAI-compatible endpoint (its key from
//! the OS keyring) rewords it for a beginner. The wording is shown only if every number in it
//! is one of the recommendation's facts; otherwise the rules' own words are, with why.

use std::time::Duration;

use api::advisor::Recommendation;

use crate::{App, Error, GenerateRequest, Result, Sampling, advisor};

/// What the model is told: reword, keep the numbers, add none.
const SYSTEM: &str = "Rewrite the message below for someone new to machine learning: friendly, \
plain words, at most four sentences. Keep every number exactly as written and add no other number. \
Reply with the rewritten message only.";

/// Longest wait for an endpoint's answer.
const ENDPOINT_TIMEOUT: Duration = Duration::from_secs(60);

impl App {
    /// `text` reworded by `with` (`local`: the project's base model; an installed model id; an
    /// endpoint name, optionally `NAME:MODEL`): (the text shown, who phrased it and, when the
    /// rules' words were kept, why).
    pub(crate) fn phrase(
        &self,
        text: &str,
        rec: &Recommendation,
        base_model: &str,
        with: &str,
    ) -> (String, String) {
        let worded = match self.reword(text, base_model, with) {
            Ok(w) => w,
            Err(e) => return (text.to_string(), format!("rules ({with} could not word it: {e})")),
        };
        let worded = worded.trim();
        let cards = crate::catalog();
        let mut names: Vec<&str> = cards.iter().map(|c| c.name.as_str()).collect();
        names.push(&rec.model);
        let stray = advisor::ungrounded(worded, &rec.facts, &names);
        // The other way round too: a wording that drops the figures lost the answer.
        let kept: Vec<api::advisor::Fact> = advisor::numbers(&worded.to_lowercase())
            .into_iter()
            .map(|v| api::advisor::Fact {
                label: String::new(),
                value: v,
                shown: String::new(),
                source: String::new(),
            })
            .collect();
        let dropped = advisor::ungrounded(text, &kept, &names);
        let plural = |n: usize| if n == 1 { "a number" } else { "numbers" };
        if worded.is_empty() {
            (text.to_string(), format!("rules ({with} answered nothing)"))
        } else if !stray.is_empty() {
            let why = format!("the wording by {with} had {} without a source", plural(stray.len()));
            (text.to_string(), format!("rules ({why}: {})", stray.join(", ")))
        } else if !dropped.is_empty() {
            let why = format!("the wording by {with} left out {}", plural(dropped.len()));
            (text.to_string(), format!("rules ({why}: {})", dropped.join(", ")))
        } else {
            (worded.to_string(), with.to_string())
        }
    }

    fn reword(&self, text: &str, base_model: &str, with: &str) -> Result<String> {
        let installed: Vec<String> = self.models_list()?.into_iter().map(|m| m.id).collect();
        let model = match with {
            "local" => Some(base_model.to_string()),
            m if installed.iter().any(|i| i == m) => Some(m.to_string()),
            _ => None,
        };
        if let Some(model) = model {
            let path = self.resolve_model(&model)?;
            let quantized = path.extension().is_some_and(|e| e == "gguf");
            let req = GenerateRequest {
                model,
                system: Some(SYSTEM.into()),
                prompt: text.into(),
                adapter: None,
                merge: false,
                quantized,
                sampling: Sampling { temperature: 0.0, max_tokens: 200, ..Sampling::default() },
            };
            return Ok(self.generate(&req, &mut |_| true)?.text);
        }
        let (name, model) = with.split_once(':').unwrap_or((with, ""));
        self.endpoint_chat(name, model, SYSTEM, text, ENDPOINT_TIMEOUT)
    }

    /// `POST {base_url}/chat/completions` on endpoint `name` with its key (`system`, then
    /// `text` as the user's message, temperature 0); `model` empty: the first the endpoint
    /// lists. An answer slower than `timeout` is an error saying so.
    pub(crate) fn endpoint_chat(
        &self,
        name: &str,
        model: &str,
        system: &str,
        text: &str,
        timeout: Duration,
    ) -> Result<String> {
        let model = match model {
            "" => self.endpoint_test(name)?.models.into_iter().next().ok_or_else(|| {
                Error::NotFound(format!(
                    "'{name}' is neither an installed model nor an endpoint that lists a model: see Settings → API keys"
                ))
            })?,
            m => m.to_string(),
        };
        let row = self.endpoint_row(name)?;
        let key = self.endpoint_key(name)?;
        let config = ureq::Agent::config_builder().timeout_global(Some(timeout)).build();
        let agent = ureq::Agent::new_with_config(config);
        let body = serde_json::json!({
            "model": model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": text},
            ],
        });
        let mut req = agent.post(&format!("{}/chat/completions", row.base_url));
        if let Some(key) = &key {
            req = req.header("Authorization", &format!("Bearer {key}"));
        }
        // The key is in no error: ureq's errors name the URL and the status, not the headers.
        let mut resp = req
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .map_err(|e| match e {
                ureq::Error::Timeout(_) => Error::Network(format!(
                    "endpoint '{name}' did not answer within {} s",
                    timeout.as_secs()
                )),
                e => Error::InvalidInput(format!("endpoint '{name}': {e}")),
            })?;
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| Error::InvalidInput(format!("endpoint '{name}': {e}")))?;
        let answer: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::InvalidInput(format!("endpoint '{name}' answered no JSON: {e}")))?;
        answer["choices"][0]["message"]["content"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| Error::InvalidInput(format!("endpoint '{name}' answered no message")))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use api::advisor::{AskRequest, Priority};
    use api::dataset::ImportSource;

    use super::*;

    /// An OpenAI-compatible stand-in whose chat answer is `answer`'s current text.
    fn endpoint(answer: Arc<Mutex<String>>) -> String {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", server.server_addr().to_ip().unwrap());
        std::thread::spawn(move || {
            for req in server.incoming_requests() {
                let body = match req.url() {
                    "/v1/models" => r#"{"object":"list","data":[{"id":"m1","object":"model"}]}"#.to_string(),
                    _ => serde_json::json!({"choices": [{"message": {"role": "assistant", "content": *answer.lock().unwrap()}}]}).to_string(),
                };
                let _ = req.respond(tiny_http::Response::from_string(body));
            }
        });
        url
    }

    fn project(app: &App) -> Option<String> {
        let gguf = std::env::var_os("VIBEFLOW_DEFAULT_GGUF");
        let Some(gguf) = gguf else {
            assert!(std::env::var_os("VIBEFLOW_REQUIRE_SETUP").is_none(), "no default model");
            eprintln!("skipped: VIBEFLOW_DEFAULT_GGUF is not set");
            return None;
        };
        app.model_import(std::path::Path::new(&gguf), None).unwrap();
        let p = app.project_new("Words").unwrap().slug;
        let req = crate::ImportRequest {
            project: p.clone(),
            source: ImportSource::Sample("customer-support".into()),
            name: None,
            mapping: None,
            language: None,
        };
        app.data_import(&req).unwrap();
        Some(p)
    }

    /// A wording is shown only when every number in it has a source; else the rules' words.
    #[test]
    fn a_wording_with_an_invented_number_is_not_shown() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(dir.path()).unwrap();
        let Some(p) = project(&app) else { return };
        let answer = Arc::new(Mutex::new(String::new()));
        let url = endpoint(answer.clone());
        let add = api::EndpointAdd { name: "words".into(), base_url: url, key: String::new() };
        match app.endpoint_add(&add) {
            Ok(_) => {}
            Err(Error::Keyring(m)) if std::env::var_os("VIBEFLOW_REQUIRE_SETUP").is_none() => {
                eprintln!("skipped: {m}");
                return;
            }
            Err(e) => panic!("{e}"),
        }
        let brief = api::advisor::Brief { priority: Priority::Speed, ..Default::default() };
        let ask = |with: &str| {
            app.ask(&AskRequest {
                project: p.clone(),
                brief: brief.clone(),
                text: "a support bot".into(),
                phrase_with: Some(with.into()),
            })
            .unwrap()
        };
        *answer.lock().unwrap() = "Great news: SmolLM2-135M-Instruct will learn from your 240 examples in 3 passes, 4 at a time, at learning rate 5e-4, each cut at 192 tokens.".into();
        let r = ask("words");
        assert_eq!(r.phrased_by, "words");
        assert!(r.text.starts_with("Great news"), "{}", r.text);
        *answer.lock().unwrap() = "It will be done in 7 minutes with 99 % accuracy.".into();
        let r = ask("words:m1");
        assert!(
            r.text.starts_with("For customer support replies with 240 training rows"),
            "{}",
            r.text
        );
        assert_eq!(
            r.phrased_by,
            "rules (the wording by words:m1 had numbers without a source: 7, 99)"
        );
        *answer.lock().unwrap() = "Your bot will be great, trust me.".into();
        let r = ask("words");
        assert!(
            r.phrased_by.starts_with("rules (the wording by words left out numbers: 240, 3"),
            "{}",
            r.phrased_by
        );
        // The local model: whatever it says, no number without a source reaches the user.
        let r = ask("local");
        let names = [r.recommendation.model_name.as_str()];
        assert_eq!(
            advisor::ungrounded(&r.text, &r.recommendation.facts, &names),
            Vec::<String>::new()
        );
        let kept = r.phrased_by.starts_with("rules (") && r.phrased_by.contains("local");
        assert!(r.phrased_by == "local" || kept, "{}", r.phrased_by);
    }
}
