//! `vibeflow serve`: the local OpenAI-compatible server until Ctrl-C; `serve key …`: its API
//! key in the OS keyring; `bench serve`'s arguments and report.

use std::io::Write;
use std::sync::Arc;

use app::App;
use clap::{Args, Subcommand};

use crate::print;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServeArgs {
    #[command(subcommand)]
    sub: Option<ServeSub>,
    /// Address to listen on; anything but loopback (e.g. 0.0.0.0) requires the API key
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port
    #[arg(long, default_value_t = api::serve::DEFAULT_PORT)]
    port: u16,
    /// Require the API key (Authorization: Bearer) even on loopback
    #[arg(long)]
    require_key: bool,
    /// Most memory the loaded models may take, in MB (the least recently used idle model is
    /// unloaded beyond it)
    #[arg(long, default_value_t = api::serve::ServeConfig::default().memory_budget_mb)]
    memory_budget: u64,
    /// Sequences each model decodes together
    #[arg(long, default_value_t = api::serve::ServeConfig::default().max_batch)]
    max_batch: usize,
}

#[derive(Subcommand)]
enum ServeSub {
    /// The server's API key, kept in the OS keyring
    #[command(subcommand)]
    Key(KeyCmd),
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Create the API key (replacing any earlier one) and print it: the only time it is shown
    Create {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Delete the API key: requests that need it are refused from then on
    Revoke,
    /// Whether an API key exists (never the key itself)
    ShowStatus {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// Runs `serve` or a `serve key` subcommand.
pub fn run(app: App, args: ServeArgs) -> anyhow::Result<()> {
    match args.sub {
        Some(ServeSub::Key(KeyCmd::Create { json })) => {
            let key = app.serve_key_create()?;
            print(json, &key, || {
                format!(
                    "{}\nThis is the only time the key is shown: copy it now. Clients send it as Authorization: Bearer <key>.",
                    key.key
                )
            })
        }
        Some(ServeSub::Key(KeyCmd::Revoke)) => {
            app.serve_key_revoke()?;
            err!("API key revoked");
            Ok(())
        }
        Some(ServeSub::Key(KeyCmd::ShowStatus { json })) => {
            let set = app.serve_key()?.is_some();
            print(json, &serde_json::json!({ "key_set": set }), || {
                if set {
                    "An API key exists (create a new one to see a key again)".into()
                } else {
                    "No API key: `vibeflow serve key create` makes one".into()
                }
            })
        }
        None => {
            let cfg = api::serve::ServeConfig {
                host: args.host,
                port: args.port,
                require_key: args.require_key,
                memory_budget_mb: args.memory_budget,
                max_batch: args.max_batch,
            };
            let (tx, rx) = std::sync::mpsc::channel();
            let _ = crate::SERVING.set(tx);
            let server = ::serve::Server::start(Arc::new(app), cfg)?;
            let status = server.status();
            out!("Serving the OpenAI-compatible API at {}", server.url());
            out!(
                "{} models: {}",
                status.models.len(),
                status.models.iter().map(|m| m.id.as_str()).collect::<Vec<_>>().join(", ")
            );
            if status.key_required {
                out!("Requests must send the API key: Authorization: Bearer <key>");
            }
            out!("Press Ctrl-C to stop");
            let _ = rx.recv();
            drop(rx);
            err!("stopping the server…");
            server.stop();
            Ok(())
        }
    }
}

/// `bench serve`'s arguments.
#[derive(Args)]
pub struct BenchServeArgs {
    /// Model (an alias, a run <project>/<run>, or an installed model; --vs-peer needs a GGUF)
    #[arg(long, default_value = app::DEFAULT_MODEL)]
    model: String,
    /// Concurrent streaming requests of each round
    #[arg(long, default_value = "1,8,64", value_delimiter = ',')]
    streams: Vec<usize>,
    /// Tokens asked of each request (max_tokens)
    #[arg(long, default_value_t = 64)]
    tokens: usize,
    /// Times each load runs (ours and the peer's); the median round by aggregate tokens/s is
    /// reported
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Threads for the peer (default: ours, the machine's physical cores)
    #[arg(long)]
    threads: Option<usize>,
    /// Sequences our server decodes together
    #[arg(long, default_value_t = 64)]
    max_batch: usize,
    /// Also run llama.cpp's server (python3 with llama-cpp-python[server]) on the same GGUF
    /// and thread count, under the same load
    #[arg(long)]
    vs_peer: bool,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// Runs `bench serve` (the server needs an app of its own: the home is opened again).
pub fn bench(app: &App, args: BenchServeArgs) -> anyhow::Result<()> {
    let threads = args.threads.unwrap_or_else(|| {
        std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    });
    let o = ::serve::BenchOptions {
        model: args.model,
        streams: args.streams,
        tokens: args.tokens,
        rounds: args.rounds,
        threads,
        max_batch: args.max_batch,
        vs_peer: args.vs_peer,
    };
    let r = ::serve::bench(Arc::new(App::open(app.home())?), &o)?;
    print(args.json, &r, || {
        let mut s = format!(
            "Streaming chat requests on loopback, {} tokens each, greedy, median of {} rounds; our server decodes up to {} together; {} threads\n",
            r.tokens, r.rounds, r.max_batch, r.threads
        );
        s += "SERVER     STREAMS  ERRORS  TTFT P50 MS  TTFT P95 MS  STREAM TOK/S  AGGREGATE TOK/S";
        let rows = |name: &str, v: &[::serve::LoadMeasure]| {
            v.iter()
                .map(|m| {
                    format!(
                        "\n{name:<10} {:>7} {:>7} {:>12.0} {:>12.0} {:>13.1} {:>16.1}",
                        m.streams,
                        m.errors,
                        m.ttft_p50_ms,
                        m.ttft_p95_ms,
                        m.stream_tokens_per_second,
                        m.aggregate_tokens_per_second
                    )
                })
                .collect::<String>()
        };
        s += &rows("vibeflow", &r.ours);
        s += &rows("llama.cpp", &r.peer);
        let one = r.ours.iter().find(|m| m.streams == 1).map(|m| m.aggregate_tokens_per_second);
        if let (Some(one), Some(eight)) = (one, r.ours.iter().find(|m| m.streams == 8)) {
            s += &format!(
                "\nbatching: aggregate tokens/s at 8 streams = {:.2}x one stream",
                eight.aggregate_tokens_per_second / one.max(1e-9)
            );
        }
        for (m, ratio) in r.ours.iter().zip(&r.ratios) {
            if let Some(x) = ratio {
                s += &format!(
                    "\nratio (ours/llama.cpp aggregate) at {} streams: {x:.2}x",
                    m.streams
                );
            }
        }
        for (name, v) in [("vibeflow", &r.ours), ("llama.cpp", &r.peer)] {
            for m in v.iter().filter(|m| m.errors > 0) {
                s += &format!(
                    "\n{name} at {} streams: {} errors, the first: {}",
                    m.streams,
                    m.errors,
                    m.first_error.as_deref().unwrap_or_default()
                );
            }
        }
        s
    })
}
