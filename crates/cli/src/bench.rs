//! `vibeflow bench …`: speed and memory, against a peer in the same run.

use app::App;
use clap::Subcommand;

use crate::print;

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Training (LoRA r=8 on all seven projections, QLoRA or full fine-tuning) against PyTorch
    /// (+ PEFT): each side with and without gradient checkpointing, its fastest against the
    /// other's
    Train {
        /// Model to train
        #[arg(long, default_value = app::DEFAULT_MODEL)]
        model: String,
        /// lora, qlora (ours over Q4_1 blocks, the peer over bitsandbytes' NF4) or full
        #[arg(long, value_enum, default_value_t)]
        method: api::train::MethodKind,
        /// Also run PyTorch + PEFT (python3 with torch, transformers, peft, gguf), alternating
        #[arg(long)]
        vs_peer: bool,
        /// Sequences per step
        #[arg(long, default_value_t = 4)]
        batch: usize,
        /// Tokens per sequence
        #[arg(long, default_value_t = 256)]
        seq: usize,
        /// Timed steps per round (after one warmup step)
        #[arg(long, default_value_t = 3)]
        steps: usize,
        /// Rounds
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Threads for the peer (ours uses the machine's rayon pool)
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Gradient checkpointing: both (each side in each mode, its fastest compared with the
        /// other's: what a user of either would run), on or off (the same setting on both)
        #[arg(long, value_enum, default_value_t = Modes::Both)]
        checkpointing: Modes,
        /// Number format of the frozen base and the activations on both sides: f32, bf16, or
        /// auto (bf16 on a CUDA GPU of compute capability 8.0 or newer, else f32)
        #[arg(long, value_enum, default_value_t)]
        dtype: api::train::Dtype,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Dataset import + quality report (tokenization included) against pandas
    Data {
        /// Model whose tokenizer counts tokens
        #[arg(long, default_value = app::DEFAULT_MODEL)]
        model: String,
        /// Rows of the 1x file (about 600 bytes each)
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        /// Sizes to measure, as multiples of --rows
        #[arg(long, default_value = "1,4", value_delimiter = ',')]
        scales: Vec<usize>,
        /// Rounds at each size, ours and pandas alternating; the best of each counts
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Also run pandas (python3 with pandas) on the same file
        #[arg(long)]
        vs_peer: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// The calibrated estimate against whole runs: each case estimated, then trained, in
    /// fresh processes over a scratch home; estimate, actual and error for each
    Estimate {
        /// Only the first N of the default cases (LoRA, QLoRA and full; batch 1 to 8; 128 to
        /// 512 tokens)
        #[arg(long)]
        cases: Option<usize>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Greedy decoding, f32 and quantized paths, against llama.cpp (llama-cpp-python); with
    /// --batch, the quantized path's batched generation at each batch size instead
    Generate {
        /// Model (a GGUF for the quantized path and the peer)
        #[arg(long, default_value = app::DEFAULT_MODEL)]
        model: String,
        /// Also run llama.cpp through llama-cpp-python, alternating
        #[arg(long)]
        vs_peer: bool,
        /// Tokens decoded after the prompt (after each prompt with --batch)
        #[arg(long, default_value_t = 64)]
        tokens: usize,
        /// Rounds (default 2; 3 with --batch, whose figures are medians)
        #[arg(long)]
        rounds: Option<usize>,
        /// Threads for the peer
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Batch sizes to compare, e.g. 1,4,8,16: sequences decoded together on the quantized
        /// path, the same prompts and tokens at each
        #[arg(long, value_delimiter = ',')]
        batch: Vec<usize>,
        /// Prompts for --batch (chat questions of different lengths)
        #[arg(long, default_value_t = 16)]
        prompts: usize,
        /// A PEFT adapter folder applied beside the weights, for --batch
        #[arg(long)]
        adapter: Option<std::path::PathBuf>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Concurrent streaming chat requests against the local server (1, 8 and 64 at once):
    /// time to first token, per-stream and aggregate tokens/s, errors; --vs-peer runs the same
    /// load against llama.cpp's server
    Serve(crate::serve::BenchServeArgs),
}

/// Runs a `bench` subcommand.
pub fn run(app: &App, cmd: BenchCmd) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Serve(args) => crate::serve::bench(app, args),
        BenchCmd::Estimate { cases, json } => {
            let mut all = app::EstimateCase::defaults();
            all.truncate(cases.unwrap_or(all.len()));
            let exe = std::env::current_exe()?;
            let rows = app.bench_estimate(&exe, &all)?;
            print(json, &rows, || {
                let mut s = format!(
                    "{:18} {:16} {:>5} {:>7} {:>5}  {:>9} {:>9} {:>7}  {:>9} {:>9} {:>7}",
                    "DATASET",
                    "METHOD",
                    "BATCH",
                    "MAX LEN",
                    "STEPS",
                    "EST. S",
                    "ACTUAL S",
                    "ERROR",
                    "EST. MB",
                    "ACTUAL MB",
                    "ERROR"
                );
                for r in &rows {
                    let c = &r.case;
                    s += &format!(
                        "\n{:18} {:16} {:>5} {:>7} {:>5}  {:>9.1} {:>9.1} {:>+6.1}%  {:>9.0} {:>9.0} {:>+6.1}%",
                        c.sample,
                        c.method.label(),
                        c.batch,
                        c.max_len,
                        c.steps,
                        r.estimate.seconds,
                        r.actual_seconds,
                        r.time_error * 100.0,
                        r.estimate.peak_memory_bytes as f64 / 1e6,
                        r.actual_peak_bytes as f64 / 1e6,
                        r.memory_error * 100.0
                    );
                }
                let worst = |f: fn(&app::EstimateRow) -> f64| {
                    rows.iter().map(|r| f(r).abs()).fold(0.0, f64::max) * 100.0
                };
                s += &format!(
                    "\nLargest error: time {:.1} %, peak memory {:.1} %",
                    worst(|r| r.time_error),
                    worst(|r| r.memory_error)
                );
                s
            })
        }
        BenchCmd::Data { model, rows, scales, rounds, vs_peer, json } => {
            let b = app.bench_data(&model, rows, &scales, rounds, vs_peer)?;
            print(json, &b, || {
                let mut s = format!(
                    "Import + quality report (tokenized with the model's tokenizer) vs pandas (read_json lines, drop_duplicates, str.len); best of {rounds} alternating rounds\n",
                );
                for r in &b.sizes {
                    s += &format!(
                        "\n{} rows ({:.1} MB): ours {:.0} rows/s ({:.2} s), peak {:.0} MB",
                        r.rows,
                        r.bytes as f64 / 1e6,
                        r.ours.rows_per_second,
                        r.ours.seconds,
                        r.ours.peak_rss_bytes as f64 / 1e6
                    );
                    if let (Some(p), Some(ratio)) = (&r.peer, r.speed_ratio) {
                        s += &format!(
                            "; pandas {:.0} rows/s ({:.2} s), peak {:.0} MB; speed {:.2}x",
                            p.rows_per_second,
                            p.seconds,
                            p.peak_rss_bytes as f64 / 1e6,
                            ratio
                        );
                    }
                }
                s
            })
        }
        BenchCmd::Train {
            model,
            method,
            vs_peer,
            batch,
            seq,
            steps,
            rounds,
            threads,
            checkpointing,
            dtype,
            json,
        } => {
            let precision = app.precision(dtype.name())?;
            let checkpointing = match checkpointing {
                Modes::Both => app::Checkpointing::Both,
                Modes::On => app::Checkpointing::On,
                Modes::Off => app::Checkpointing::Off,
            };
            let shape = app::TrainShape {
                batch,
                seq,
                steps,
                rounds,
                threads,
                checkpointing,
                precision,
                method,
            };
            let r = app.bench_train(&model, shape, vs_peer)?;
            print(json, &r, || train_report(&r))
        }
        BenchCmd::Generate {
            model,
            vs_peer,
            tokens,
            rounds,
            threads,
            batch,
            prompts,
            adapter,
            json,
        } if !batch.is_empty() => {
            let rounds = rounds.unwrap_or(3);
            let r = app.bench_generate_batch(
                &model,
                adapter.as_deref(),
                &batch,
                prompts,
                tokens,
                rounds,
            )?;
            let _ = (vs_peer, threads);
            print(json, &r, || {
                let mut s = format!(
                    "Batched greedy decoding ({} kernels{}): {} prompts ({} tokens) x {} new \
                     tokens, median of {} rounds\n",
                    r.kernels,
                    if r.adapter.is_some() { ", with the adapter" } else { "" },
                    r.prompts,
                    r.prompt_tokens,
                    r.new_tokens,
                    r.rounds
                );
                s += "BATCH   TOKENS/S   DECODE TOKENS/S   DECODE SPEEDUP   PEAK MB";
                for m in &r.sizes {
                    s += &format!(
                        "\n{:>5} {:>10.1} {:>17.1} {:>15.2}x {:>9.0}",
                        m.batch,
                        m.tokens_per_second,
                        m.decode_tokens_per_second,
                        m.speedup,
                        m.peak_rss_bytes as f64 / 1e6
                    );
                }
                s += if r.identical {
                    "\nEvery batch size generated the same tokens."
                } else {
                    "\nThe batch sizes generated different tokens: a bug, please report it."
                };
                s
            })
        }
        BenchCmd::Generate { model, vs_peer, tokens, rounds, threads, json, .. } => {
            let rounds = rounds.unwrap_or(2);
            let shape = app::GenerateShape { new_tokens: tokens, rounds, threads };
            let r = app.bench_generate(&model, shape, vs_peer)?;
            print(json, &r, || {
                let best =
                    |v: &[app::Measure]| v.iter().map(|m| m.tokens_per_second).fold(0.0, f64::max);
                let mut s = format!("Greedy decoding, {tokens} tokens after a chat prompt\n");
                s += &format!("vibeflow f32        {:>7.1} tokens/s\n", best(&r.ours_f32));
                s += &format!("vibeflow quantized  {:>7.1} tokens/s", best(&r.ours_quantized));
                if !r.peer.is_empty() {
                    s += &format!("\nllama.cpp           {:>7.1} tokens/s", best(&r.peer));
                }
                if let (Some(q), Some(f)) = (r.quantized_ratio, r.f32_ratio) {
                    s += &format!("\nratio (ours/peer): quantized {q:.2}x, f32 {f:.2}x");
                }
                s
            })
        }
    }
}

/// `--checkpointing`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Modes {
    Both,
    On,
    Off,
}

/// `bench train`'s table: every mode of each side, then each side's fastest against the other's.
fn train_report(r: &app::TrainBench) -> String {
    let s = &r.shape;
    let mode = |on: bool| if on { "checkpointing on" } else { "checkpointing off" };
    let mut out = format!(
        "{} on {}, batch {} x {} tokens, {}, {}{}; best of {} rounds\n",
        match s.method {
            api::train::MethodKind::Full => "Full fine-tuning".to_string(),
            m => format!("{} training", m.label()),
        },
        r.device,
        s.batch,
        s.seq,
        match s.method {
            api::train::MethodKind::Full => "every weight",
            api::train::MethodKind::Qlora => "r=8, all projections, 4-bit base",
            _ => "r=8, all projections",
        },
        s.precision.name(),
        if r.tf32 { " (TF32 matrix products)" } else { "" },
        s.rounds.max(1)
    );
    let row = |name: &str, on: bool, v: &[app::Measure]| {
        let best = v.iter().map(|m| m.tokens_per_second).fold(f64::NAN, f64::max);
        let peak = v.iter().map(|m| m.peak_rss_bytes).max().unwrap_or(0);
        let gpu = v
            .iter()
            .filter_map(|m| m.peak_gpu_bytes)
            .max()
            .map(|b| format!("  {:>7.0} MB GPU peak", b as f64 / 1e6))
            .unwrap_or_default();
        format!(
            "{name:<14} {:<18} {best:>8.1} tokens/s  {:>7.0} MB peak{gpu}\n",
            mode(on),
            peak as f64 / 1e6
        )
    };
    for m in &r.modes {
        out += &row("vibeflow", m.gradient_checkpointing, &m.ours);
    }
    let peer = match s.method {
        api::train::MethodKind::Full => "pytorch",
        api::train::MethodKind::Qlora => "peft+bnb",
        _ => "pytorch+peft",
    };
    for m in r.modes.iter().filter(|m| !m.peer.is_empty()) {
        out += &row(peer, m.gradient_checkpointing, &m.peer);
    }
    if let (Some(o), Some(p), Some(sp), Some(mem)) =
        (r.best_ours, r.best_peer, r.speed_ratio, r.memory_ratio)
    {
        out += &format!(
            "best against best: vibeflow ({}) {:.1} tokens/s at {:.0} MB, {peer} ({}) {:.1} tokens/s at {:.0} MB\n\
             speed ratio (ours/peer) {sp:.2}x   memory ratio (ours/peer) {mem:.2}x",
            mode(o.gradient_checkpointing),
            o.tokens_per_second,
            o.peak_bytes as f64 / 1e6,
            mode(p.gradient_checkpointing),
            p.tokens_per_second,
            p.peak_bytes as f64 / 1e6,
        );
    }
    out.trim_end().to_string()
}
