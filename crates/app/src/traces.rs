//! Traces of the requests the local server answered: recorded in SQLite (at most
//! [`DEFAULT_TRACE_LIMIT`] rows, or `VIBEFLOW_TRACE_LIMIT`, the oldest deleted), listed, rated,
//! summed into usage figures, and turned into a project dataset through the ordinary import
//! (its report and its commit).
//!
//! No secret is ever stored: a request's `Authorization`, API key, password or token fields are
//! replaced before the row is written, and so is any `Bearer …` credential in its text.

use api::dataset::{DatasetDetail, ImportRequest, ImportSource};
use api::serve::{Trace, TraceFeedback, TraceFilter, TraceStats, TracesToDataset};
use serde_json::{Value, json};

use crate::{App, Error, Result, now};

/// Traces kept when `VIBEFLOW_TRACE_LIMIT` is not set.
pub const DEFAULT_TRACE_LIMIT: usize = 10_000;

/// Environment variable setting how many traces are kept.
pub const TRACE_LIMIT_ENV: &str = "VIBEFLOW_TRACE_LIMIT";

/// Traces listed when a filter sets no limit.
pub const DEFAULT_LIST_LIMIT: usize = 200;

/// What replaces a secret.
const REDACTED: &str = "[redacted]";

impl App {
    /// Records a trace (its id is assigned; `created_at` 0 means now), deleting the oldest
    /// beyond the retention limit; the new id. The request and response are stripped of
    /// credentials first. One SQLite transaction: the server calls it per request.
    pub fn trace_record(&self, t: &Trace) -> Result<i64> {
        let row = store::TraceRow {
            id: 0,
            created_at: if t.created_at == 0 { now() } else { t.created_at },
            endpoint: t.endpoint.clone(),
            model: t.model.clone(),
            alias: t.alias.clone(),
            request: redact(&t.request),
            response: scrub_bearer(&t.response),
            status: i64::from(t.status),
            stream: t.stream,
            latency_ms: t.latency_ms as i64,
            ttft_ms: t.ttft_ms as i64,
            prompt_tokens: t.prompt_tokens as i64,
            completion_tokens: t.completion_tokens as i64,
            feedback: t.feedback.map(i64::from),
            tags: tags_json(&t.tags),
        };
        Ok(self.store.insert_trace(&row, trace_limit()?)?)
    }

    /// The traces `filter` selects, newest first.
    pub fn trace_list(&self, filter: &TraceFilter) -> Result<Vec<Trace>> {
        let mut q = query(filter)?;
        q.limit = Some(if filter.limit == 0 { DEFAULT_LIST_LIMIT } else { filter.limit });
        Ok(self.store.traces(&q)?.into_iter().map(trace).collect())
    }

    /// One trace.
    pub fn trace_show(&self, id: i64) -> Result<Trace> {
        self.store.trace(id)?.map(trace).ok_or_else(|| {
            Error::NotFound(format!(
                "no trace {id}: it never existed or the retention limit removed it (see `vibeflow traces list`)"
            ))
        })
    }

    /// Usage over every trace `filter` selects (its `limit` ignored); see [`stats`].
    pub fn trace_stats(&self, filter: &TraceFilter) -> Result<TraceStats> {
        Ok(stats(&self.store.trace_figures(&query(filter)?)?))
    }

    /// Rates a trace (1 good, −1 bad, none to clear) and replaces its tags.
    pub fn trace_feedback(&self, f: &TraceFeedback) -> Result<()> {
        if let Some(v) = f.feedback
            && v != 1
            && v != -1
        {
            return Err(Error::InvalidInput(format!(
                "feedback must be 1 (good), -1 (bad) or none, got {v}"
            )));
        }
        if f.tags.iter().any(|t| t.trim().is_empty()) {
            return Err(Error::InvalidInput("tags cannot be empty".into()));
        }
        if !self.store.set_trace_feedback(f.id, f.feedback.map(i64::from), &tags_json(&f.tags))? {
            return Err(Error::NotFound(format!("no trace {}: see `vibeflow traces list`", f.id)));
        }
        Ok(())
    }

    /// Turns traces into dataset `name` of project `project`: each one's conversation (a chat
    /// request's messages, or a completion's prompt as the user's turn) ending with its reply
    /// as the assistant's turn, written as chat JSON Lines and imported like any file (report,
    /// new version, commit). Traces of failed requests are refused.
    pub fn traces_to_dataset(&self, req: &TracesToDataset) -> Result<DatasetDetail> {
        if req.ids.is_empty() {
            return Err(Error::InvalidInput("no traces chosen: give at least one trace id".into()));
        }
        self.project_row(&req.project)?;
        let mut lines = String::new();
        for &id in &req.ids {
            let t = self.trace_show(id)?;
            let row = conversation(&t).map_err(|why| {
                Error::InvalidInput(format!("trace {id} cannot become a dataset row: {why}"))
            })?;
            lines.push_str(&row.to_string());
            lines.push('\n');
        }
        let dir = self.temp_dir("traces")?;
        let path = dir.path().join("traces.jsonl");
        std::fs::write(&path, lines).map_err(|e| Error::io(&path, e))?;
        self.data_import(&ImportRequest {
            project: req.project.clone(),
            source: ImportSource::File(path),
            name: Some(req.name.clone()),
            mapping: None,
            language: None,
        })
    }
}

/// Usage figures over traces. Latency percentiles are over answered requests (status < 400:
/// a refusal in a millisecond says nothing of the service's speed), time to first token over
/// those that produced one (`ttft_ms` > 0); both exact, by the nearest-rank method (the
/// smallest value with at least p % of the values at or below it).
pub fn stats(rows: &[store::TraceFigures]) -> TraceStats {
    let ok: Vec<&store::TraceFigures> = rows.iter().filter(|r| r.status < 400).collect();
    let mut latency: Vec<u64> = ok.iter().map(|r| r.latency_ms.max(0) as u64).collect();
    let mut ttft: Vec<u64> =
        ok.iter().filter(|r| r.ttft_ms > 0).map(|r| r.ttft_ms as u64).collect();
    latency.sort_unstable();
    ttft.sort_unstable();
    TraceStats {
        requests: rows.len(),
        errors: rows.len() - ok.len(),
        prompt_tokens: rows.iter().map(|r| r.prompt_tokens.max(0) as usize).sum(),
        completion_tokens: rows.iter().map(|r| r.completion_tokens.max(0) as usize).sum(),
        p50_ms: percentile(&latency, 50),
        p95_ms: percentile(&latency, 95),
        ttft_p50_ms: percentile(&ttft, 50),
    }
}

/// The nearest-rank `p`-th percentile of sorted values (0 for none).
fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// A dataset row from a trace: `{"messages": [...]}` ending with the reply.
pub(crate) fn conversation(t: &Trace) -> std::result::Result<Value, String> {
    if t.status >= 400 {
        return Err(format!(
            "its request failed (status {}): only answered requests become rows",
            t.status
        ));
    }
    let body: Value = serde_json::from_str(&t.request)
        .map_err(|_| "its request is not JSON, so it holds no conversation".to_string())?;
    let mut messages = Vec::new();
    if let Some(list) = body.get("messages") {
        let list = list.as_array().ok_or("its request's messages are not a list")?;
        for m in list {
            let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
            let role = match role {
                "developer" => "system",
                "system" | "user" | "assistant" => role,
                // Tool results and calls have no place in a chat row of text turns.
                "tool" | "function" => continue,
                other => return Err(format!("a message has the unknown role '{other}'")),
            };
            messages.push(json!({"role": role, "content": text(m.get("content"))}));
        }
    } else if let Some(p) = body.get("prompt") {
        let prompt = match p {
            Value::String(s) => s.clone(),
            Value::Array(a) if a.len() == 1 && a[0].is_string() => {
                a[0].as_str().unwrap_or_default().to_string()
            }
            _ => return Err("its prompt is not one string".into()),
        };
        messages.push(json!({"role": "user", "content": prompt}));
    } else {
        return Err("its request has neither messages nor a prompt".into());
    }
    if !messages.iter().any(|m| m["role"] == "user") {
        return Err("its conversation has no user message".into());
    }
    messages.push(json!({"role": "assistant", "content": t.response}));
    Ok(json!({ "messages": messages }))
}

/// A message's text: a string, or the text parts of OpenAI's content list, joined.
fn text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The request body with every credential replaced: fields named like a key or a token, at any
/// depth, and `Bearer …` in any text (a body that is not JSON included).
pub(crate) fn redact(request: &str) -> String {
    match serde_json::from_str::<Value>(request) {
        Ok(mut v) if v.is_object() || v.is_array() => {
            redact_value(&mut v);
            v.to_string()
        }
        _ => scrub_bearer(request),
    }
}

fn redact_value(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if is_secret_key(k) {
                    *val = Value::String(REDACTED.into());
                } else {
                    redact_value(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::String(s) => {
            let clean = scrub_bearer(s);
            if clean != *s {
                *s = clean;
            }
        }
        _ => {}
    }
}

fn is_secret_key(k: &str) -> bool {
    let k: String =
        k.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    matches!(
        k.as_str(),
        "authorization"
            | "proxyauthorization"
            | "apikey"
            | "xapikey"
            | "password"
            | "secret"
            | "token"
            | "accesstoken"
            | "bearer"
    ) || k.ends_with("apikey")
        || k.ends_with("secret")
}

/// `Bearer <credential>` (any case) with the credential replaced.
fn scrub_bearer(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    if !lower.contains("bearer ") {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while let Some(at) = lower[i..].find("bearer ") {
        let start = i + at + "bearer ".len();
        out.push_str(&s[i..start]);
        let rest = &s[start..];
        let len = rest
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '}' | ']'))
            .unwrap_or(rest.len());
        if len > 0 {
            out.push_str(REDACTED);
        }
        i = start + len;
    }
    out.push_str(&s[i..]);
    out
}

fn tags_json(tags: &[String]) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "[]".into())
}

fn query(f: &TraceFilter) -> Result<store::TraceQuery> {
    let ok = match f.status.as_deref().map(str::trim) {
        None | Some("") => None,
        Some("ok") => Some(true),
        Some("error") => Some(false),
        Some(other) => {
            return Err(Error::InvalidInput(format!(
                "status must be 'ok' or 'error', got '{other}'"
            )));
        }
    };
    let some = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    Ok(store::TraceQuery {
        model: some(&f.model),
        ok,
        text: some(&f.text),
        tag: some(&f.tag),
        since: f.since,
        limit: None,
    })
}

fn trace(r: store::TraceRow) -> Trace {
    Trace {
        id: r.id,
        created_at: r.created_at,
        endpoint: r.endpoint,
        model: r.model,
        alias: r.alias,
        request: r.request,
        response: r.response,
        status: u16::try_from(r.status).unwrap_or(0),
        stream: r.stream,
        latency_ms: r.latency_ms.max(0) as u64,
        ttft_ms: r.ttft_ms.max(0) as u64,
        prompt_tokens: r.prompt_tokens.max(0) as usize,
        completion_tokens: r.completion_tokens.max(0) as usize,
        feedback: r.feedback.and_then(|f| i8::try_from(f).ok()),
        tags: serde_json::from_str(&r.tags).unwrap_or_default(),
    }
}

/// The retention limit: `VIBEFLOW_TRACE_LIMIT`, else [`DEFAULT_TRACE_LIMIT`].
fn trace_limit() -> Result<usize> {
    parse_limit(std::env::var(TRACE_LIMIT_ENV).ok())
}

fn parse_limit(value: Option<String>) -> Result<usize> {
    match value {
        Some(v) if !v.trim().is_empty() => match v.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(Error::InvalidInput(format!(
                "{TRACE_LIMIT_ENV} must be a whole number of traces, at least 1, got '{v}'"
            ))),
        },
        _ => Ok(DEFAULT_TRACE_LIMIT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(status: i64, latency_ms: i64, ttft_ms: i64) -> store::TraceFigures {
        store::TraceFigures { status, latency_ms, ttft_ms, prompt_tokens: 10, completion_tokens: 5 }
    }

    /// Hand-computed: 20 answered latencies 10, 20, …, 200 ms and 2 errors. Nearest rank:
    /// p50 = the 10th value (100), p95 = the 19th (190); the errors' 1 ms latencies and their
    /// tokens count only where they should.
    #[test]
    fn stats_are_exact_nearest_rank_percentiles() {
        let mut rows: Vec<store::TraceFigures> =
            (1..=20).rev().map(|i| fig(200, i * 10, if i <= 4 { i } else { 0 })).collect();
        rows.push(fig(400, 1, 0));
        rows.push(fig(500, 1, 0));
        let s = stats(&rows);
        assert_eq!(
            s,
            TraceStats {
                requests: 22,
                errors: 2,
                prompt_tokens: 220,
                completion_tokens: 110,
                p50_ms: 100,
                p95_ms: 190,
                // ttft 1, 2, 3, 4: the 2nd.
                ttft_p50_ms: 2,
            }
        );
        assert_eq!(stats(&[]), TraceStats::default());
        let one = stats(&[fig(200, 7, 3)]);
        assert_eq!((one.p50_ms, one.p95_ms, one.ttft_p50_ms), (7, 7, 3));
        // 3 values: p50 is the 2nd (rank ceil(1.5)), p95 the 3rd.
        let three = stats(&[fig(200, 30, 0), fig(200, 10, 0), fig(200, 20, 0)]);
        assert_eq!((three.p50_ms, three.p95_ms), (20, 30));
    }

    #[test]
    fn secrets_never_reach_the_table() {
        let body = r#"{"model":"m","api_key":"sk-1","headers":{"Authorization":"Bearer sk-2","X-Api-Key":"k"},"messages":[{"role":"user","content":"my token is Bearer abc.def, ok"}],"max_tokens":5}"#;
        let clean = redact(body);
        for secret in ["sk-1", "sk-2", "\"k\"", "abc.def"] {
            assert!(!clean.contains(secret), "{secret} in {clean}");
        }
        let v: Value = serde_json::from_str(&clean).unwrap();
        assert_eq!(v["api_key"], REDACTED);
        assert_eq!(v["headers"]["Authorization"], REDACTED);
        assert_eq!(v["messages"][0]["content"], "my token is Bearer [redacted], ok");
        assert_eq!(v["max_tokens"], 5);
        // Not JSON: the text is kept, the credential is not.
        assert_eq!(
            redact("Authorization: bearer xyz\n{oops"),
            "Authorization: bearer [redacted]\n{oops"
        );
        assert_eq!(redact(r#"{"model":"m"}"#), r#"{"model":"m"}"#);
    }

    #[test]
    fn conversations_end_with_the_reply() {
        let chat = |request: &str, status: u16| Trace {
            endpoint: "/v1/chat/completions".into(),
            request: request.into(),
            response: "Paris.".into(),
            status,
            ..Trace::default()
        };
        let row = conversation(&chat(
            r#"{"messages":[{"role":"developer","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Capital"},{"type":"text","text":"of France?"}]}]}"#,
            200,
        ))
        .unwrap();
        assert_eq!(
            row,
            json!({"messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Capital\nof France?"},
                {"role": "assistant", "content": "Paris."},
            ]})
        );
        let row = conversation(&chat(r#"{"prompt":["Capital of France?"]}"#, 200)).unwrap();
        assert_eq!(row["messages"][0], json!({"role": "user", "content": "Capital of France?"}));
        assert_eq!(row["messages"][1]["content"], "Paris.");
        let e = conversation(&chat(r#"{"messages":[{"role":"user","content":"x"}]}"#, 400))
            .unwrap_err();
        assert!(e.contains("failed (status 400)"), "{e}");
        assert!(conversation(&chat("not json", 200)).unwrap_err().contains("not JSON"));
        let e = conversation(&chat(r#"{"messages":[{"role":"system","content":"x"}]}"#, 200))
            .unwrap_err();
        assert!(e.contains("no user message"), "{e}");
    }

    #[test]
    fn the_limit_comes_from_the_environment_or_the_default() {
        assert_eq!(parse_limit(None).unwrap(), DEFAULT_TRACE_LIMIT);
        assert_eq!(parse_limit(Some(" 50 ".into())).unwrap(), 50);
        let e = parse_limit(Some("0".into())).unwrap_err().to_string();
        assert!(e.starts_with("VIBEFLOW_TRACE_LIMIT must be a whole number"), "{e}");
        assert!(parse_limit(Some("many".into())).is_err());
    }

    /// Recorded, filtered, rated, summed, refused when failed, and a dataset of a project
    /// through the ordinary import (its commit in the history).
    #[test]
    fn traces_become_a_project_dataset() {
        let Some(gguf) = crate::models::tests_default_gguf() else { return };
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(dir.path()).unwrap();
        app.model_import(&gguf, None).unwrap();
        app.project_new("Support").unwrap();
        let mut ids = Vec::new();
        for (i, q) in ["How do I reset my password?", "Where is my invoice?", "Can I get a refund?"]
            .iter()
            .enumerate()
        {
            let t = Trace {
                created_at: 1_000 + i as i64,
                endpoint: "/v1/chat/completions".into(),
                model: "support-bot".into(),
                request:
                    json!({"model": "support-bot", "messages": [{"role": "user", "content": q}]})
                        .to_string(),
                response: format!("Answer {i}: see the help page, section {i}."),
                status: 200,
                latency_ms: 100 * (i as u64 + 1),
                ttft_ms: 10,
                prompt_tokens: 12,
                completion_tokens: 9,
                tags: vec!["faq".into()],
                ..Trace::default()
            };
            ids.push(app.trace_record(&t).unwrap());
        }
        let failed = Trace {
            endpoint: "/v1/chat/completions".into(),
            model: "nope".into(),
            request: "{not json".into(),
            response: "bad JSON".into(),
            status: 400,
            ..Trace::default()
        };
        let bad = app.trace_record(&failed).unwrap();
        assert!(app.trace_show(bad).unwrap().created_at > 1_000_000_000, "now, when unset");

        let list = app.trace_list(&TraceFilter::default()).unwrap();
        assert_eq!(list.iter().map(|t| t.id).collect::<Vec<_>>(), [bad, ids[2], ids[1], ids[0]]);
        let ok = TraceFilter {
            status: Some("ok".into()),
            text: Some("INVOICE".into()),
            ..Default::default()
        };
        assert_eq!(app.trace_list(&ok).unwrap().iter().map(|t| t.id).collect::<Vec<_>>(), [ids[1]]);
        let e = app.trace_list(&TraceFilter { status: Some("fine".into()), ..Default::default() });
        assert!(matches!(e, Err(Error::InvalidInput(_))));
        let s = app.trace_stats(&TraceFilter::default()).unwrap();
        assert_eq!(
            (s.requests, s.errors, s.p50_ms, s.p95_ms, s.completion_tokens),
            (4, 1, 200, 300, 27)
        );

        app.trace_feedback(&TraceFeedback {
            id: ids[0],
            feedback: Some(1),
            tags: vec!["gold".into()],
        })
        .unwrap();
        let t = app.trace_show(ids[0]).unwrap();
        assert_eq!((t.feedback, t.tags), (Some(1), vec!["gold".to_string()]));
        let gold = TraceFilter { tag: Some("gold".into()), ..Default::default() };
        assert_eq!(app.trace_list(&gold).unwrap().len(), 1);
        let e = app.trace_feedback(&TraceFeedback { id: ids[0], feedback: Some(2), tags: vec![] });
        assert!(matches!(e, Err(Error::InvalidInput(_))));
        let e = app.trace_feedback(&TraceFeedback { id: 999, feedback: None, tags: vec![] });
        assert!(matches!(e, Err(Error::NotFound(_))));

        let to = |ids: Vec<i64>| TracesToDataset {
            ids,
            project: "support".into(),
            name: "traces".into(),
        };
        let e = app.traces_to_dataset(&to(vec![ids[0], bad])).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "trace {bad} cannot become a dataset row: its request failed (status 400)"
            )),
            "{e}"
        );
        assert!(app.data_list("support").unwrap().is_empty(), "nothing imported");
        let d = app.traces_to_dataset(&to(ids.clone())).unwrap();
        assert_eq!((d.name.as_str(), d.version, d.outcome.kept), ("traces", 1, 3));
        let history = app.history("support").unwrap();
        assert_eq!(history[0].id, d.commit);
        assert!(
            history[0].summary.starts_with("Import dataset traces v1 from traces.jsonl: 3 rows"),
            "{}",
            history[0].summary
        );
        let jsonl =
            std::fs::read_to_string(dir.path().join("projects/support/data/traces.jsonl")).unwrap();
        assert!(
            jsonl.contains("Where is my invoice?")
                && jsonl.contains("see the help page, section 1."),
            "{jsonl}"
        );
    }
}
