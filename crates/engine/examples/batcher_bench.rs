//! Aggregate decoding speed of the `Batcher` with 1, 8 and 16 concurrent jobs (or the counts
//! given; the best of three runs), each generating exactly `TOKENS` tokens (no end token) after a short chat prompt.
//!
//! `cargo run --release -p engine --example batcher_bench -- MODEL.gguf [JOBS...]`; greedy,
//! or sampled at `$BENCH_TEMPERATURE` (each job its own seed).

use std::sync::mpsc;
use std::time::Instant;

use engine::batcher::{Backend, Batcher, Job, JobEvent};
use engine::bundle::Chat;
use engine::generate::{Batching, QuantDecoder, Sampling, generate_batch};
use engine::template::Message;

const TOKENS: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path =
        std::path::PathBuf::from(args.next().ok_or("usage: batcher_bench MODEL.gguf [JOBS...]")?);
    let mut counts: Vec<usize> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    if counts.is_empty() {
        counts = vec![1, 8, 16];
    }
    let chat = Chat::open(&path)?;
    let mut reference = QuantDecoder::open(&path, &candle_core::Device::Cpu)?;
    let dec = QuantDecoder::open(&path, &candle_core::Device::Cpu)?;
    println!("model {} (our kernels: {}), {TOKENS} tokens a job", path.display(), dec.native());
    let max = counts.iter().copied().max().unwrap_or(1);
    // No end token: every job runs its TOKENS.
    let b = Batcher::start(Backend::Quant(dec), chat.tokenizer.clone(), Vec::new(), 2048, max);
    let prompt = |i: usize| -> Result<Vec<u32>, engine::Error> {
        let q = format!("Tell me a story about the number {i}.");
        let text = chat.template.render(&[Message::new("user", &q)], true)?;
        engine::tokenizer::encode(&chat.tokenizer, &text)
    };
    // Warm up: the thread pool and the caches.
    run(&b, &[prompt(0)?])?;
    let mut single = None;
    for &n in &counts {
        let prompts: Vec<Vec<u32>> = (0..n).map(prompt).collect::<Result<_, _>>()?;
        // The best of three runs: other work on the machine only slows a run down.
        let (mut secs, mut first) = run(&b, &prompts)?;
        for _ in 0..2 {
            let again = run(&b, &prompts)?;
            if again.0 < secs {
                (secs, first) = again;
            }
        }
        let rate = (n * TOKENS) as f64 / secs;
        let base = *single.get_or_insert(rate);
        println!(
            "{n:>3} jobs: {:.2} s, {rate:.1} tokens/s aggregate ({:.2}x one job), {:.1} tokens/s per job, first token after {:.0} ms at worst",
            secs,
            rate / base,
            rate / n as f64,
            first * 1e3
        );
        // The same prompts through `generate_batch` (no streaming, no thread): the reference.
        let t0 = Instant::now();
        let s = Sampling { temperature: 0.0, max_tokens: TOKENS, ..Sampling::default() };
        let batching = Batching { size: n, context: 2048 };
        generate_batch(
            &mut reference,
            &chat.tokenizer,
            &prompts,
            &[],
            &s,
            batching,
            &mut |_, _| true,
        )?;
        let secs = t0.elapsed().as_secs_f64();
        println!("     generate_batch: {secs:.2} s, {:.1} tokens/s", (n * TOKENS) as f64 / secs);
    }
    Ok(())
}

/// Runs the jobs together: the seconds until the last one ends, and the longest wait for a
/// first token.
fn run(b: &Batcher, prompts: &[Vec<u32>]) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    let (tx, rx) = mpsc::channel();
    for (i, p) in prompts.iter().enumerate() {
        let tx = tx.clone();
        let mut first = true;
        let temperature = std::env::var("BENCH_TEMPERATURE").ok().and_then(|t| t.parse().ok());
        let sampling = Sampling {
            temperature: temperature.unwrap_or(0.0),
            seed: i as u64,
            max_tokens: TOKENS,
            ..Sampling::default()
        };
        b.submit(Job {
            prompt: p.clone(),
            sampling,
            logprobs: None,
            constraint: None,
            on_event: Box::new(move |e| {
                match e {
                    JobEvent::Token { .. } if first => {
                        first = false;
                        let _ = tx.send((i, Ok(Some(t0.elapsed().as_secs_f64()))));
                    }
                    JobEvent::Token { .. } => {}
                    JobEvent::Done { completion_tokens, .. } if completion_tokens == TOKENS => {
                        let _ = tx.send((i, Ok(None)));
                    }
                    JobEvent::Done { completion_tokens, .. } => {
                        let _ = tx.send((i, Err(format!("{completion_tokens} tokens"))));
                    }
                    JobEvent::Failed(m) => {
                        let _ = tx.send((i, Err(m)));
                    }
                }
                true
            }),
        })?;
    }
    drop(tx);
    let (mut done, mut worst) = (0, 0f64);
    for (_, e) in rx {
        match e? {
            Some(first) => worst = worst.max(first),
            None => done += 1,
        }
    }
    if done != prompts.len() {
        return Err(format!("{done} of {} jobs ended", prompts.len()).into());
    }
    Ok((t0.elapsed().as_secs_f64(), worst))
}
