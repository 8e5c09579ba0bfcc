//! `vibeflow bench serve`: concurrent streaming chat requests on loopback against our server
//! (started in-process) and, with `vs_peer`, the same load against llama.cpp's server
//! (`scripts/bench/serve_peer.py`, llama-cpp-python) on the same GGUF and thread count.
//! A measuring tool, not a product path: the peer is the one place Python runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::serve::ServeConfig;
use app::App;
use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{Error, Result, Server};

/// Longest a request of the benchmark may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(900);
/// Longest the peer may take to start listening.
const PEER_START: Duration = Duration::from_secs(180);

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The model name (alias, run or installed model); the peer needs a GGUF without adapter.
    pub model: String,
    /// Concurrent streams of each round, e.g. 1, 8, 64.
    pub streams: Vec<usize>,
    /// Tokens asked of each request (`max_tokens`).
    pub tokens: usize,
    /// Times each load runs; the round with the median aggregate tokens/s is reported.
    pub rounds: usize,
    /// The peer's threads (ours use the machine's rayon pool, of the same size by default).
    pub threads: usize,
    /// Sequences our server decodes together.
    pub max_batch: usize,
    /// Also measure llama.cpp's server.
    pub vs_peer: bool,
}

/// One load: `streams` requests at once.
#[derive(Debug, Clone, Serialize)]
pub struct LoadMeasure {
    /// Concurrent requests.
    pub streams: usize,
    /// Requests that failed (an error status, an error event, a broken stream).
    pub errors: usize,
    /// Median time to first token, ms.
    pub ttft_p50_ms: f64,
    /// 95th percentile time to first token, ms.
    pub ttft_p95_ms: f64,
    /// Median per-stream decoding rate after its first token, tokens/s.
    pub stream_tokens_per_second: f64,
    /// All tokens of all streams over the wall time of the round, tokens/s.
    pub aggregate_tokens_per_second: f64,
    /// Tokens generated, all streams.
    pub completion_tokens: usize,
    /// Wall time of the round, s.
    pub seconds: f64,
    /// The first error met, if any.
    pub first_error: Option<String>,
}

/// The benchmark's result.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The model name.
    pub model: String,
    /// Tokens asked of each request.
    pub tokens: usize,
    /// Rounds of each load (the median one reported).
    pub rounds: usize,
    /// The peer's threads.
    pub threads: usize,
    /// Our server's batch size.
    pub max_batch: usize,
    /// Our server, one measure per load.
    pub ours: Vec<LoadMeasure>,
    /// llama.cpp's server at the same loads (empty without `vs_peer`).
    pub peer: Vec<LoadMeasure>,
    /// Our aggregate tokens/s over the peer's, per load.
    pub ratios: Vec<Option<f64>>,
}

/// Runs the benchmark.
pub fn bench(app: Arc<App>, o: &BenchOptions) -> Result<BenchReport> {
    if o.streams.is_empty() || o.streams.contains(&0) || o.tokens == 0 || o.rounds == 0 {
        return Err(Error::Config("streams, tokens and rounds must be at least 1".into()));
    }
    let gguf = if o.vs_peer { Some(peer_model(&app, &o.model)?) } else { None };
    let cfg = ServeConfig {
        host: "127.0.0.1".into(),
        port: 0,
        require_key: false,
        memory_budget_mb: 1 << 16,
        max_batch: o.max_batch,
    };
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(Error::Start)?;
    let server = Server::start(app, cfg)?;
    let ours = rt.block_on(measure_all(server.addr(), &o.model, o))?;
    server.stop();
    let mut peer = Vec::new();
    if let Some(gguf) = gguf {
        let mut child = start_peer(&gguf, o.threads)?;
        let result = rt.block_on(async {
            let addr = child.1;
            wait_ready(addr, &mut child.0).await?;
            measure_all(addr, "bench", o).await
        });
        let _ = child.0.kill();
        let _ = child.0.wait();
        peer = result?;
    }
    let ratios = ours
        .iter()
        .map(|m| {
            let p = peer.iter().find(|p| p.streams == m.streams)?;
            (p.aggregate_tokens_per_second > 0.0)
                .then(|| m.aggregate_tokens_per_second / p.aggregate_tokens_per_second)
        })
        .collect();
    Ok(BenchReport {
        model: o.model.clone(),
        tokens: o.tokens,
        rounds: o.rounds,
        threads: o.threads,
        max_batch: o.max_batch,
        ours,
        peer,
        ratios,
    })
}

/// The GGUF the peer loads: the model's file, when it is a GGUF without an adapter.
fn peer_model(app: &App, model: &str) -> Result<PathBuf> {
    let served = app.served_model(model)?;
    if served.adapter.is_some() || served.base.extension().is_none_or(|e| e != "gguf") {
        return Err(Error::Config(format!(
            "--vs-peer needs a GGUF model without an adapter (llama.cpp loads the file as it is); '{model}' is {}",
            if served.adapter.is_some() { "a fine-tuned run" } else { "not a GGUF" }
        )));
    }
    Ok(served.base)
}

async fn measure_all(addr: SocketAddr, model: &str, o: &BenchOptions) -> Result<Vec<LoadMeasure>> {
    // Loads the model (and warms the caches) before anything is timed, with a prompt none of
    // the rounds sends (a server's prompt cache must not flatter the one-stream round).
    let warm = request(addr, model, usize::MAX, 4).await;
    if let Err(e) = warm {
        return Err(Error::Config(format!(
            "the server at {addr} did not answer the warm-up request: {e}"
        )));
    }
    // Every request of the benchmark asks for a story of its own: a prompt sent again would
    // find its whole beginning cached (ours and the peer's), which real clients rarely get.
    let mut sent = 0;
    // Round by round, each load in turn: a slow spell of a shared machine then slows every
    // load alike instead of the one that happened to run through it.
    let mut loads: Vec<Vec<LoadMeasure>> = vec![Vec::with_capacity(o.rounds); o.streams.len()];
    for _ in 0..o.rounds {
        for (&n, load) in o.streams.iter().zip(&mut loads) {
            load.push(measure(addr, model, sent..sent + n, o.tokens).await);
            sent += n;
        }
    }
    let median = |mut rounds: Vec<LoadMeasure>| {
        rounds.sort_by(|a, b| {
            a.aggregate_tokens_per_second.total_cmp(&b.aggregate_tokens_per_second)
        });
        rounds.swap_remove(rounds.len() / 2)
    };
    Ok(loads.into_iter().map(median).collect())
}

/// One stream's figures.
struct Sample {
    ttft: Duration,
    total: Duration,
    tokens: usize,
}

/// One load: requests numbered `ids`, all at once.
async fn measure(
    addr: SocketAddr,
    model: &str,
    ids: std::ops::Range<usize>,
    tokens: usize,
) -> LoadMeasure {
    let n = ids.len();
    let start = Instant::now();
    let tasks: Vec<_> = ids
        .map(|i| {
            let model = model.to_string();
            tokio::spawn(async move { request(addr, &model, i, tokens).await })
        })
        .collect();
    let mut samples = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok(Ok(s)) => samples.push(s),
            Ok(Err(e)) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut ttft: Vec<f64> = samples.iter().map(|s| s.ttft.as_secs_f64() * 1e3).collect();
    ttft.sort_by(f64::total_cmp);
    let mut rates: Vec<f64> = samples
        .iter()
        .filter(|s| s.tokens > 1 && s.total > s.ttft)
        .map(|s| (s.tokens - 1) as f64 / (s.total - s.ttft).as_secs_f64())
        .collect();
    rates.sort_by(f64::total_cmp);
    let completion_tokens: usize = samples.iter().map(|s| s.tokens).sum();
    LoadMeasure {
        streams: n,
        errors,
        ttft_p50_ms: percentile(&ttft, 0.5),
        ttft_p95_ms: percentile(&ttft, 0.95),
        stream_tokens_per_second: percentile(&rates, 0.5),
        aggregate_tokens_per_second: completion_tokens as f64 / seconds.max(1e-9),
        completion_tokens,
        seconds,
        first_error,
    }
}

/// The `q` quantile of sorted `v` (nearest rank), 0 for none.
fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

const TOPICS: &[&str] = &[
    "a lighthouse keeper",
    "a robot learning to paint",
    "the history of bread",
    "a journey across a desert",
    "how bees build a hive",
    "a city under the sea",
    "the first day at a new school",
    "a dragon who is afraid of fire",
];

/// One streaming chat request; its time to first token, duration and tokens.
async fn request(
    addr: SocketAddr,
    model: &str,
    i: usize,
    tokens: usize,
) -> std::result::Result<Sample, String> {
    let body = json!({
        "model": model,
        "messages": [{"role": "user", "content": if i == usize::MAX {
            "Say hello.".to_string()
        } else {
            format!("Write a long story about {} (story {i}).", TOPICS[i % TOPICS.len()])
        }}],
        "max_tokens": tokens,
        "temperature": 0,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    tokio::time::timeout(REQUEST_TIMEOUT, stream_chat(addr, body.to_string()))
        .await
        .map_err(|_| format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()))?
}

async fn stream_chat(addr: SocketAddr, body: String) -> std::result::Result<Sample, String> {
    let start = Instant::now();
    let mut resp = send(addr, "POST", "/v1/chat/completions", body).await?;
    if resp.status() != 200 {
        let text = collect(resp.body_mut()).await.unwrap_or_default();
        return Err(format!("status {}: {text}", resp.status()));
    }
    let mut buf = String::new();
    let (mut first, mut chunks, mut usage, mut done) = (None, 0usize, None, false);
    // Until [DONE], as OpenAI's clients read (sse-starlette may hold the response open after it).
    while !done && let Some(frame) = resp.body_mut().frame().await {
        let frame = frame.map_err(|e| format!("the stream broke: {e}"))?;
        let Ok(data) = frame.into_data() else { continue };
        buf.push_str(&String::from_utf8_lossy(&data));
        // Events end with a blank line (sse-starlette writes CRLF).
        if buf.contains('\r') {
            buf = buf.replace("\r\n", "\n");
        }
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            for line in event.lines() {
                let Some(data) = line.strip_prefix("data:").map(str::trim) else { continue };
                if data == "[DONE]" {
                    done = true;
                    continue;
                }
                let v: Value =
                    serde_json::from_str(data).map_err(|e| format!("bad chunk {data}: {e}"))?;
                if let Some(e) = v.get("error") {
                    return Err(format!("error event: {e}"));
                }
                if let Some(u) = v.get("usage").and_then(|u| u["completion_tokens"].as_u64()) {
                    usage = Some(u as usize);
                }
                let content = v["choices"][0]["delta"]["content"].as_str().unwrap_or_default();
                if !content.is_empty() {
                    first.get_or_insert_with(|| start.elapsed());
                    chunks += 1;
                }
            }
        }
    }
    if !done {
        return Err("the stream ended without [DONE]".into());
    }
    let total = start.elapsed();
    Ok(Sample { ttft: first.unwrap_or(total), total, tokens: usage.unwrap_or(chunks) })
}

/// One HTTP/1.1 request on a fresh connection.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: String,
) -> std::result::Result<hyper::Response<hyper::body::Incoming>, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    sender.send_request(req).await.map_err(|e| e.to_string())
}

async fn collect(body: &mut hyper::body::Incoming) -> std::result::Result<String, String> {
    let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Starts llama.cpp's server on a free port: the process and its address.
fn start_peer(gguf: &Path, threads: usize) -> Result<(std::process::Child, SocketAddr)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(Error::Start)?
        .port();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench/serve_peer.py");
    let child = std::process::Command::new("python3")
        .arg(&script)
        .arg(gguf)
        .args([threads.to_string(), port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::Config(format!(
                "cannot run the llama.cpp peer (python3 {}): {e}",
                script.display()
            ))
        })?;
    Ok((child, SocketAddr::from(([127, 0, 0, 1], port))))
}

/// Waits until the peer answers `GET /v1/models`.
async fn wait_ready(addr: SocketAddr, child: &mut std::process::Child) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < PEER_START {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            let last = err.lines().last().unwrap_or_default().to_string();
            return Err(Error::Config(format!(
                "the llama.cpp peer exited ({status}): {last} (pip install 'llama-cpp-python[server]')"
            )));
        }
        if let Ok(r) = send(addr, "GET", "/v1/models", String::new()).await
            && r.status() == 200
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(Error::Config(format!(
        "the llama.cpp peer did not listen within {} s",
        PEER_START.as_secs()
    )))
}
