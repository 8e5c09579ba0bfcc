//! The local OpenAI-compatible server: `GET /v1/models`, `POST /v1/chat/completions` and
//! `POST /v1/completions`, streamed (SSE) or not, over the models the app serves by name
//! (aliases, finished runs, installed models), each decoded by the engine's batcher.
//!
//! axum's router over hyper, one connection at a time through hyper-util (a header read
//! timeout against slow clients, graceful shutdown), on a tokio runtime of its own: the desktop
//! shell and the CLI start it with [`Server::start`] and stop it with [`Server::stop`].
//! Security: loopback by default; any other address, or `require_key`, needs the API key from
//! the OS keyring (compared in constant time); bodies are limited to 4 MiB and `max_tokens` to
//! the context; every refusal is OpenAI's error body; every request leaves a trace.

mod bench;
mod error;
mod handlers;
mod pool;
mod request;
mod trace;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use api::serve::{ServeConfig, ServeStatus};
use app::App;
use axum::Router;
use axum::routing::{get, post};

pub use bench::{BenchOptions, BenchReport, LoadMeasure, bench};
pub use error::Error;

/// Result of starting the server.
pub type Result<T> = std::result::Result<T, Error>;

/// How long a client may take to send a request's headers (hyper's timer).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Server::stop`] lets running answers finish before it cancels them.
const GRACE: Duration = Duration::from_secs(5);
/// Most connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 1024;

/// The status of a server that is not running: whether a key exists and every model a start
/// would serve.
pub fn stopped_status(app: &App) -> Result<ServeStatus> {
    Ok(ServeStatus {
        key_set: app.serve_key()?.is_some(),
        models: app.served_models()?,
        ..ServeStatus::default()
    })
}

/// A running server.
pub struct Server {
    shared: Arc<handlers::Shared>,
    addr: SocketAddr,
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    traces: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Binds `cfg.host:cfg.port` and serves on a thread of its own; returns once listening.
    /// Refuses a non-loopback host, or `require_key`, without an API key in the keyring.
    pub fn start(app: Arc<App>, cfg: ServeConfig) -> Result<Server> {
        let ip = host_ip(&cfg.host)?;
        let key_required = cfg.require_key || !ip.is_loopback();
        let key = if key_required { app.serve_key()? } else { None };
        if key_required && key.is_none() {
            let why = if ip.is_loopback() {
                "the server was asked to require an API key".to_string()
            } else {
                format!("listening on {} lets other machines reach the server", cfg.host)
            };
            return Err(Error::Config(format!(
                "{why}, and no API key exists: create one with `vibeflow serve key create` (or in the Deploy pane), then start again"
            )));
        }
        if cfg.max_batch == 0 || cfg.memory_budget_mb == 0 {
            return Err(Error::Config("max_batch and memory_budget_mb must be at least 1".into()));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vibeflow-serve")
            .enable_all()
            .build()
            .map_err(Error::Start)?;
        // Bound here with std, so the caller may itself run inside an async runtime (the
        // desktop shell's); tokio takes the socket over on the server's own runtime.
        let bind = SocketAddr::new(ip, cfg.port);
        let listener = std::net::TcpListener::bind(bind)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| Error::Bind { addr: bind.to_string(), source })?;
        let addr = listener.local_addr().map_err(Error::Start)?;
        let (recorder, traces) = trace::Recorder::start(app.clone()).map_err(Error::Start)?;
        let shared = Arc::new(handlers::Shared {
            app,
            key_required,
            key: RwLock::new(key),
            pool: pool::Pool::new(cfg.memory_budget_mb, cfg.max_batch),
            recorder: std::sync::Mutex::new(Some(recorder)),
            resolved: Default::default(),
        });
        let router = router(shared.clone());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("vibeflow-serve".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => serve(listener, router, stop_rx).await,
                        Err(e) => err_line(&format!("the server cannot listen: {e}")),
                    }
                });
                // Answers still running after the grace period end here: their jobs cancel.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(Error::Start)?;
        let host = if ip.is_ipv6() { format!("[{ip}]") } else { ip.to_string() };
        let url = format!("http://{host}:{}/v1", addr.port());
        Ok(Server {
            shared,
            addr,
            url,
            stop: Some(stop_tx),
            thread: Some(thread),
            traces: Some(traces),
        })
    }

    /// The API's base URL, e.g. `http://127.0.0.1:8734/v1`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address it listens on (the real port when the configuration asked for 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server now: its URL, key, loaded models and every model it answers as.
    pub fn status(&self) -> ServeStatus {
        let app = &self.shared.app;
        ServeStatus {
            running: self.thread.as_ref().is_some_and(|t| !t.is_finished()),
            url: self.url.clone(),
            key_required: self.shared.key_required,
            key_set: app.serve_key().ok().flatten().is_some(),
            loaded: self.shared.pool.loaded(),
            models: app.served_models().unwrap_or_default(),
        }
    }

    /// Reads the API key from the keyring again (after it was regenerated or revoked): requests
    /// use the new one from now on; with none, a server that requires a key refuses every
    /// request.
    pub fn reload_key(&self) -> Result<()> {
        let key = self.shared.app.serve_key()?;
        *self.shared.key.write().unwrap_or_else(|e| e.into_inner()) = key;
        Ok(())
    }

    /// Stops: no new connections; running answers get a few seconds to finish, then are
    /// cancelled; models are unloaded and every trace is written.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.shared.pool.clear();
        // The runtime is gone, and with it every request's trace (recorded as it dropped): the
        // recorder's thread ends once its queue is written.
        self.shared.recorder.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = self.traces.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A line on stderr for what cannot be answered to anyone (the listener failing after start).
fn err_line(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// `host` as an address: `localhost`, an IPv4 or an IPv6 address.
fn host_ip(host: &str) -> Result<IpAddr> {
    let host = host.trim();
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    host.trim_start_matches('[').trim_end_matches(']').parse().map_err(|_| {
        Error::Config(format!(
            "'{host}' is not an IP address: use 127.0.0.1 (this machine only) or 0.0.0.0 (every network interface, with an API key)"
        ))
    })
}

fn router(shared: Arc<handlers::Shared>) -> Router {
    Router::new()
        .route("/v1/models", get(handlers::models))
        .route("/v1/chat/completions", post(handlers::chat))
        .route("/v1/completions", post(handlers::completions))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::wrong_method)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(handlers::panicked))
        .with_state(shared)
}

/// Accepts connections until `stop`, then drains them for at most [`GRACE`].
async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = &mut stop => break,
        };
        let (stream, _) = tokio::select! {
            c = listener.accept() => match c {
                Ok(c) => c,
                // Out of file descriptors and the like: wait, then go on accepting.
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue }
            },
            _ = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(GRACE) => {}
    }
}
