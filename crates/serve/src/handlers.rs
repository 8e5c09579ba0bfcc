//! The endpoints: `GET /v1/models`, `POST /v1/chat/completions`, `POST /v1/completions`.
//!
//! A completion request is read (size and time limited), checked field by field, resolved to a
//! model (alias > run > installed), rendered and tokenized, checked against the context, then
//! handed to the model's batcher as one job per choice. Job events arrive on a channel: a
//! non-streamed answer collects them; a streamed one turns each into an SSE chunk. A client
//! that leaves drops the channel, and the next event tells the batcher to cancel the job.

use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use app::App;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use engine::batcher::{Job, JobEvent, TokenLogprob};
use engine::generate::{Finish, Sampling};
use engine::template::{ChatTemplate, Message};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::pool::{Lease, Pool};
use crate::request::{self, Endpoint, Format, Request};
use crate::trace::{Recorder, Traced};

/// Largest request body.
pub(crate) const BODY_LIMIT: usize = 4 << 20;
/// How long a client may take to send its body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a streamed answer waits for a client that does not read before giving up on it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// What every handler shares.
pub(crate) struct Shared {
    pub app: Arc<App>,
    pub key_required: bool,
    pub key: RwLock<Option<String>>,
    pub pool: Pool,
    /// Taken away when the server stops.
    pub recorder: std::sync::Mutex<Option<Recorder>>,
    /// Names resolved lately, with when: resolving reads the aliases folder and queries the
    /// index on every request (the model file's header only when the file changed: `App`
    /// keeps what it declared).
    pub resolved: std::sync::Mutex<Vec<(Instant, app::Served)>>,
}

/// How long a resolved name is reused: an alias edited or a run finished is served within it.
const RESOLVED_FOR: Duration = Duration::from_secs(2);

impl Shared {
    /// `name` as resolved less than [`RESOLVED_FOR`] ago.
    fn resolved(&self, name: &str) -> Option<app::Served> {
        let mut cache = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|(at, _)| at.elapsed() < RESOLVED_FOR);
        cache.iter().find(|(_, s)| s.name == name).map(|(_, s)| s.clone())
    }

    fn remember(&self, served: app::Served) -> app::Served {
        let mut cache = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|(_, s)| s.name != served.name);
        cache.push((Instant::now(), served.clone()));
        served
    }

    fn recorder(&self) -> Option<Recorder> {
        self.recorder.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Refuses a request without the right `Authorization: Bearer` key (when one is required).
    fn check_key(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if !self.key_required {
            return Ok(());
        }
        let unauthorized = |message: &str, code: Option<&'static str>| ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
            kind: "invalid_request_error",
            param: None,
            code,
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        let Some(given) = given else {
            return Err(unauthorized(
                "You didn't provide an API key: send it in the header Authorization: Bearer <key> (the key is created with `vibeflow serve key create` or in the Deploy pane)",
                None,
            ));
        };
        let key = self.key.read().unwrap_or_else(|e| e.into_inner());
        let ok = key.as_ref().is_some_and(|k| bool::from(k.as_bytes().ct_eq(given.as_bytes())));
        if ok {
            Ok(())
        } else {
            Err(unauthorized("Incorrect API key provided", Some("invalid_api_key")))
        }
    }
}

/// `GET /v1/models`: every name the server answers as.
pub(crate) async fn models(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(e) = s.check_key(&headers) {
        return e.into_response();
    }
    let app = s.app.clone();
    let list = match tokio::task::spawn_blocking(move || app.served_models()).await {
        Ok(Ok(list)) => list,
        Ok(Err(e)) => return ApiError::from_app(e).into_response(),
        Err(e) => return ApiError::internal(e.to_string()).into_response(),
    };
    let data: Vec<Value> = list
        .into_iter()
        .map(|m| {
            json!({"id": m.id, "object": "model", "created": 0, "owned_by": "vibeflow", "kind": m.kind, "detail": m.detail})
        })
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    complete(s, Endpoint::Chat, headers, body).await
}

/// `POST /v1/completions`.
pub(crate) async fn completions(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    complete(s, Endpoint::Completions, headers, body).await
}

/// Any other path.
pub(crate) async fn not_found() -> Response {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: "no such endpoint: this server answers GET /v1/models, POST /v1/chat/completions and POST /v1/completions".into(),
        kind: "invalid_request_error",
        param: None,
        code: Some("unknown_url"),
    }
    .into_response()
}

/// A known path with another method.
pub(crate) async fn wrong_method() -> Response {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: "wrong method: use GET for /v1/models and POST for the completions".into(),
        kind: "invalid_request_error",
        param: None,
        code: Some("method_not_allowed"),
    }
    .into_response()
}

/// A panic in a handler, as an answer (the process goes on).
pub(crate) fn panicked(_: Box<dyn std::any::Any + Send>) -> Response {
    ApiError::internal("internal error while answering: please report this").into_response()
}

/// A request ready to run: its jobs submitted, their events on `rx`.
struct Running {
    endpoint: Endpoint,
    req: Request,
    /// Keeps the model loaded while the answer runs.
    _lease: Lease,
    rx: mpsc::UnboundedReceiver<(usize, JobEvent)>,
    id: String,
    created: i64,
    prompt_tokens: usize,
}

async fn complete(s: Arc<Shared>, endpoint: Endpoint, headers: HeaderMap, body: Body) -> Response {
    let mut traced = Traced::new(s.recorder(), endpoint.path());
    let running = match start(&s, endpoint, &headers, body, &mut traced).await {
        Ok(r) => r,
        Err(e) => return fail(traced, e),
    };
    if running.req.stream { stream(running, traced) } else { collect(running, traced).await }
}

/// Records the error in the trace and answers it.
fn fail(mut traced: Traced, e: ApiError) -> Response {
    traced.trace.response = e.message.clone();
    traced.finish(e.status.as_u16());
    e.into_response()
}

async fn start(
    s: &Arc<Shared>,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: Body,
    traced: &mut Traced,
) -> Result<Running, ApiError> {
    s.check_key(headers)?;
    let bytes = read_body(body).await?;
    traced.trace.request = String::from_utf8_lossy(&bytes).into_owned();
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::invalid(format!(
            "We could not parse the JSON body of your request: {e}. The API expects a JSON object"
        ))
    })?;
    traced.trace.model = value.get("model").and_then(Value::as_str).unwrap_or_default().into();
    traced.trace.stream = value.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let req = request::parse(endpoint, &value)?;
    let served = match s.resolved(&req.model) {
        Some(served) => served,
        None => {
            let (app, name) = (s.app.clone(), req.model.clone());
            match tokio::task::spawn_blocking(move || app.served_model(&name)).await {
                Ok(Ok(served)) => s.remember(served),
                Ok(Err(app::Error::NotFound(m))) => {
                    return Err(ApiError {
                        status: StatusCode::NOT_FOUND,
                        message: format!(
                            "The model `{}` does not exist: {m} (GET /v1/models lists the names this server answers to)",
                            req.model
                        ),
                        kind: "invalid_request_error",
                        param: Some("model".into()),
                        code: Some("model_not_found"),
                    });
                }
                Ok(Err(e)) => return Err(ApiError::from_app(e)),
                Err(e) => return Err(ApiError::internal(e.to_string())),
            }
        }
    };
    traced.trace.alias = served.alias.as_ref().map(|a| a.alias.clone());
    let lease = s.pool.get(&s.app, &served).await?;
    // Rendering, tokenizing and building a grammar take CPU time: off the async workers' queue.
    let (prompt, constraints) =
        tokio::task::block_in_place(|| prepare(endpoint, &req, &served, &lease))?;
    traced.trace.prompt_tokens = prompt.len();
    let sampling = sampling(&req, &served, prompt.len())?;
    let (tx, rx) = mpsc::unbounded_channel();
    let mut constraints = constraints.into_iter();
    for i in 0..req.n {
        let tx = tx.clone();
        let job = Job {
            prompt: prompt.clone(),
            sampling: Sampling { seed: sampling.seed.wrapping_add(i as u64), ..sampling.clone() },
            logprobs: req.logprobs,
            constraint: constraints.next().flatten(),
            on_event: Box::new(move |e| tx.send((i, e)).is_ok()),
        };
        lease.batcher.submit(job).map_err(|e| ApiError::internal(e.to_string()))?;
    }
    let prefix = if endpoint == Endpoint::Chat { "chatcmpl" } else { "cmpl" };
    Ok(Running {
        endpoint,
        req,
        _lease: lease,
        rx,
        id: format!("{prefix}-{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>()),
        created: now(),
        prompt_tokens: prompt.len(),
    })
}

/// The body, within [`BODY_LIMIT`] and [`BODY_TIMEOUT`].
async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    let too_large = || ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: format!("the request body is larger than {} MiB", BODY_LIMIT >> 20),
        kind: "invalid_request_error",
        param: None,
        code: Some("request_too_large"),
    };
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, BODY_LIMIT)).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = source {
                if s.is::<http_body_util::LengthLimitError>() {
                    return Err(too_large());
                }
                source = s.source();
            }
            Err(ApiError::invalid(format!("cannot read the request body: {e}")))
        }
        Err(_) => Err(ApiError {
            status: StatusCode::REQUEST_TIMEOUT,
            message: format!("the request body did not arrive within {} s", BODY_TIMEOUT.as_secs()),
            kind: "invalid_request_error",
            param: None,
            code: Some("request_timeout"),
        }),
    }
}

/// The prompt's token ids and one grammar per choice (none for free text).
#[allow(clippy::type_complexity)]
fn prepare(
    endpoint: Endpoint,
    req: &Request,
    served: &app::Served,
    model: &Lease,
) -> Result<(Vec<u32>, Vec<Option<Box<dyn engine::batcher::Constraint>>>), ApiError> {
    let chat = &model.chat;
    let text = match endpoint {
        Endpoint::Completions => req.prompt.clone(),
        Endpoint::Chat => {
            let mut messages: Vec<Message> = req
                .messages
                .iter()
                .map(|m| Message {
                    tool_calls: m.tool_calls.clone(),
                    name: m.name.clone(),
                    tool_call_id: m.tool_call_id.clone(),
                    ..Message::new(&m.role, &m.content)
                })
                .collect();
            if let Some(system) = served.alias.as_ref().and_then(|a| a.system.as_deref())
                && messages.first().is_none_or(|m| m.role != "system")
            {
                messages.insert(0, Message::new("system", system));
            }
            let own;
            let template = match &served.template {
                Some(source) => {
                    let eos = chat.eos.first().and_then(|&e| chat.tokenizer.id_to_token(e));
                    own = ChatTemplate::new(source, "", &eos.unwrap_or_default()).map_err(|e| {
                        ApiError::internal(format!(
                            "the alias's chat template does not compile: {e}"
                        ))
                    })?;
                    &own
                }
                None => &chat.template,
            };
            template.render_with(&messages, req.tools.as_ref(), true).map_err(|e| {
                ApiError::param(
                    "messages",
                    format!("the model's chat template refused the messages: {e}"),
                )
            })?
        }
    };
    let ids = engine::tokenizer::encode(&chat.tokenizer, &text)
        .map_err(|e| ApiError::internal(format!("cannot tokenize the prompt: {e}")))?;
    let mut constraints = Vec::with_capacity(req.n);
    for _ in 0..req.n {
        let c = match &req.format {
            Format::Text => None,
            Format::JsonObject => Some(
                engine::grammar::json_object(&chat.tokenizer, &chat.eos)
                    .map_err(|e| ApiError::param("response_format", e.to_string()))?,
            ),
            Format::JsonSchema(schema) => {
                Some(engine::grammar::json_schema(&chat.tokenizer, &chat.eos, schema).map_err(
                    |e| ApiError::param("response_format.json_schema.schema", e.to_string()),
                )?)
            }
        };
        constraints.push(c);
    }
    Ok((ids, constraints))
}

/// The request's sampling (request > alias > defaults), its tokens within the context.
fn sampling(req: &Request, served: &app::Served, prompt: usize) -> Result<Sampling, ApiError> {
    let context = served.context;
    let what = if req.messages.is_empty() { "prompt" } else { "messages" };
    let overflow = |message: String| {
        ApiError::param(what, message).with(StatusCode::BAD_REQUEST, "context_length_exceeded")
    };
    if prompt >= context {
        return Err(overflow(format!(
            "This model's maximum context length is {context} tokens, but the prompt is {prompt} tokens: shorten the {what}"
        )));
    }
    let room = context - prompt;
    if let Some(m) = req.max_tokens {
        if m > context {
            return Err(ApiError::param(
                "max_tokens",
                format!("max_tokens is too large: {m}. This model's context is {context} tokens"),
            ));
        }
        if m > room {
            return Err(overflow(format!(
                "This model's maximum context length is {context} tokens. However, you requested {} tokens ({prompt} in the prompt, {m} in the completion): ask for fewer tokens or shorten the prompt",
                prompt + m
            )));
        }
    }
    let params = api::serve::RequestParams {
        temperature: req.temperature,
        top_p: req.top_p,
        frequency_penalty: req.frequency_penalty,
        presence_penalty: req.presence_penalty,
        max_tokens: req.max_tokens,
        stop: req.stop.clone().unwrap_or_default(),
        seed: req.seed,
        user: req.user.clone(),
    };
    // OpenAI's defaults: temperature 1, the rest of the context, a fresh seed.
    let defaults = Sampling {
        temperature: 1.0,
        top_p: 1.0,
        max_tokens: room,
        seed: rand::random(),
        ..Sampling::default()
    };
    let mut s = app::aliases::apply(served.alias.as_ref(), &params, &defaults);
    // An alias's default may not fit after a long prompt: it shrinks, as the room does.
    s.max_tokens = s.max_tokens.clamp(1, room);
    Ok(s)
}

fn finish_reason(f: Finish) -> &'static str {
    match f {
        Finish::Length => "length",
        Finish::Stop | Finish::Cancelled => "stop",
    }
}

/// One choice as the events built it.
#[derive(Default)]
struct Choice {
    text: String,
    /// Bytes of `text` streamed so far.
    streamed: usize,
    logprobs: Vec<TokenLogprob>,
    finish: Option<Finish>,
    completion_tokens: usize,
}

async fn collect(mut r: Running, mut traced: Traced) -> Response {
    let n = r.req.n;
    let mut choices: Vec<Choice> = (0..n).map(|_| Choice::default()).collect();
    let mut done = 0;
    while done < n {
        let Some((i, event)) = r.rx.recv().await else {
            return fail(traced, ApiError::internal("the model stopped before the answer ended"));
        };
        let c = &mut choices[i];
        match event {
            JobEvent::Token { text, logprob, .. } => {
                traced.first_token();
                c.text.push_str(&text);
                c.logprobs.extend(logprob);
            }
            JobEvent::Done { finish, completion_tokens, text, .. } => {
                c.text = text;
                c.finish = Some(finish);
                c.completion_tokens = completion_tokens;
                done += 1;
            }
            JobEvent::Failed(m) => return fail(traced, ApiError::internal(m)),
        }
    }
    let completion_tokens: usize = choices.iter().map(|c| c.completion_tokens).sum();
    let usage = usage(r.prompt_tokens, completion_tokens);
    let list: Vec<Value> = choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let reason = c.finish.map(finish_reason);
            match r.endpoint {
                Endpoint::Chat => json!({
                    "index": i,
                    "message": {"role": "assistant", "content": c.text, "refusal": null},
                    "logprobs": r.req.logprobs.map(|_| json!({"content": c.logprobs.iter().map(chat_logprob).collect::<Vec<_>>()})),
                    "finish_reason": reason,
                }),
                Endpoint::Completions => json!({
                    "index": i,
                    "text": c.text,
                    "logprobs": r.req.logprobs.map(|_| completion_logprobs(&c.logprobs, 0)),
                    "finish_reason": reason,
                }),
            }
        })
        .collect();
    let object = match r.endpoint {
        Endpoint::Chat => "chat.completion",
        Endpoint::Completions => "text_completion",
    };
    let body = json!({
        "id": r.id,
        "object": object,
        "created": r.created,
        "model": r.req.model,
        "system_fingerprint": "vibeflow",
        "choices": list,
        "usage": usage,
    });
    traced.trace.response = choices.swap_remove(0).text;
    traced.trace.completion_tokens = completion_tokens;
    traced.finish(200);
    axum::Json(body).into_response()
}

fn stream(r: Running, traced: Traced) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(pump(r, traced, tx));
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_else(|e| ApiError::internal(e.to_string()).into_response())
}

/// Turns job events into SSE chunks until every choice is done or the client is gone.
async fn pump(mut r: Running, mut traced: Traced, tx: mpsc::Sender<Bytes>) {
    let send = |value: &Value| {
        let bytes = Bytes::from(format!("data: {value}\n\n"));
        let tx = tx.clone();
        async move { matches!(tokio::time::timeout(WRITE_TIMEOUT, tx.send(bytes)).await, Ok(Ok(()))) }
    };
    let n = r.req.n;
    let usage_field = r.req.include_usage;
    let chunk = |i: usize, delta: Value, logprobs: Value, finish: Option<&str>| -> Value {
        let mut v = match r.endpoint {
            Endpoint::Chat => json!({
                "id": r.id,
                "object": "chat.completion.chunk",
                "created": r.created,
                "model": r.req.model,
                "system_fingerprint": "vibeflow",
                "choices": [{"index": i, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
            }),
            Endpoint::Completions => json!({
                "id": r.id,
                "object": "text_completion",
                "created": r.created,
                "model": r.req.model,
                "choices": [{"index": i, "text": delta.get("content").cloned().unwrap_or(json!("")), "logprobs": logprobs, "finish_reason": finish}],
            }),
        };
        if usage_field {
            v["usage"] = Value::Null;
        }
        v
    };
    if r.endpoint == Endpoint::Chat {
        for i in 0..n {
            if !send(&chunk(i, json!({"role": "assistant", "content": ""}), Value::Null, None))
                .await
            {
                return;
            }
        }
    }
    let mut choices: Vec<Choice> = (0..n).map(|_| Choice::default()).collect();
    let mut done = 0;
    while done < n {
        let Some((i, event)) = r.rx.recv().await else {
            let e = ApiError::internal("the model stopped before the answer ended");
            let _ = send(&e.body()).await;
            traced.trace.response = e.message;
            return traced.finish(500);
        };
        let c = &mut choices[i];
        match event {
            JobEvent::Token { text, logprob, .. } => {
                traced.first_token();
                if text.is_empty() && logprob.is_none() {
                    continue;
                }
                let lp = match (&logprob, r.endpoint) {
                    (None, _) => Value::Null,
                    (Some(lp), Endpoint::Chat) => json!({"content": [chat_logprob(lp)]}),
                    (Some(lp), Endpoint::Completions) => {
                        completion_logprobs(std::slice::from_ref(lp), c.text.len())
                    }
                };
                c.text.push_str(&text);
                c.streamed = c.text.len();
                if i == 0 {
                    traced.trace.response.push_str(&text);
                }
                if !send(&chunk(i, json!({"content": text}), lp, None)).await {
                    return;
                }
            }
            JobEvent::Done { finish, completion_tokens, text, .. } => {
                // The tail held back when the end came (a partial stop string that was not one).
                if let Some(tail) = text.get(c.streamed..).filter(|t| !t.is_empty())
                    && text.starts_with(&c.text)
                {
                    if i == 0 {
                        traced.trace.response.push_str(tail);
                    }
                    if !send(&chunk(i, json!({"content": tail}), Value::Null, None)).await {
                        return;
                    }
                }
                c.text = text;
                c.completion_tokens = completion_tokens;
                traced.trace.completion_tokens += completion_tokens;
                let delta =
                    if r.endpoint == Endpoint::Chat { json!({}) } else { json!({"content": ""}) };
                if !send(&chunk(i, delta, Value::Null, Some(finish_reason(finish)))).await {
                    return;
                }
                done += 1;
            }
            JobEvent::Failed(m) => {
                let e = ApiError::internal(m);
                let _ = send(&e.body()).await;
                traced.trace.response = e.message;
                return traced.finish(500);
            }
        }
    }
    if usage_field {
        let completion: usize = choices.iter().map(|c| c.completion_tokens).sum();
        let mut last = chunk(0, json!({}), Value::Null, None);
        last["choices"] = json!([]);
        last["usage"] = usage(r.prompt_tokens, completion);
        if !send(&last).await {
            return;
        }
    }
    if matches!(
        tokio::time::timeout(WRITE_TIMEOUT, tx.send(Bytes::from_static(b"data: [DONE]\n\n"))).await,
        Ok(Ok(()))
    ) {
        traced.finish(200);
    }
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

fn chat_logprob(lp: &TokenLogprob) -> Value {
    json!({
        "token": lp.token,
        "logprob": lp.logprob,
        "bytes": lp.bytes,
        "top_logprobs": lp.top.iter().map(|(t, b, l)| json!({"token": t, "logprob": l, "bytes": b})).collect::<Vec<_>>(),
    })
}

/// `/v1/completions`' logprobs of `tokens`, the first at text offset `offset`.
fn completion_logprobs(tokens: &[TokenLogprob], mut offset: usize) -> Value {
    let mut offsets = Vec::with_capacity(tokens.len());
    for t in tokens {
        offsets.push(offset);
        offset += t.token.len();
    }
    json!({
        "tokens": tokens.iter().map(|t| &t.token).collect::<Vec<_>>(),
        "token_logprobs": tokens.iter().map(|t| t.logprob).collect::<Vec<_>>(),
        "top_logprobs": tokens.iter().map(|t| {
            t.top.iter().map(|(s, _, l)| (s.clone(), json!(l))).collect::<serde_json::Map<_, _>>()
        }).collect::<Vec<_>>(),
        "text_offset": offsets,
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
