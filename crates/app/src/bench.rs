//! Benchmarks against peers, in the same run on the same machine: our LoRA training against
//! PyTorch + PEFT (`scripts/bench/peft_train.py`). A measuring tool, not a product path: it is
//! the one place that starts Python.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use candle_core::{Device, Tensor};
use engine::bundle::Bundle;
use engine::lora::LoraConfig;
use engine::optim::{AdamW, AdamWConfig};
use serde::Serialize;

use crate::{App, Error, Result};

/// Shape of a training benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TrainShape {
    /// Sequences per step.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq: usize,
    /// Timed steps per round (after one warmup step).
    pub steps: usize,
    /// Rounds, alternating ours and the peer.
    pub rounds: usize,
    /// Threads each side may use.
    pub threads: usize,
}

/// One side's measurement.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Measure {
    /// Training tokens per second.
    pub tokens_per_second: f64,
    /// Peak resident memory, bytes.
    pub peak_rss_bytes: u64,
}

/// The comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainBench {
    /// The shape measured.
    pub shape: TrainShape,
    /// Our rounds.
    pub ours: Vec<Measure>,
    /// The peer's rounds (empty without `--vs-peer`).
    pub peer: Vec<Measure>,
    /// Best of ours ÷ best of the peer, tokens/s (higher is better).
    pub speed_ratio: Option<f64>,
    /// Our peak memory ÷ the peer's (lower is better).
    pub memory_ratio: Option<f64>,
}

impl App {
    /// Runs the training benchmark on the default model (or `model`), alternating with the
    /// PyTorch + PEFT peer when `vs_peer`.
    pub fn bench_train(&self, model: &str, shape: TrainShape, vs_peer: bool) -> Result<TrainBench> {
        let path = self.resolve_model(model)?;
        let mut ours = Vec::new();
        let mut peer = Vec::new();
        for _ in 0..shape.rounds.max(1) {
            ours.push(bench_ours(&path, shape)?);
            if vs_peer {
                peer.push(bench_peer(&path, shape)?);
            }
        }
        let best = |v: &[Measure]| v.iter().map(|m| m.tokens_per_second).fold(f64::NAN, f64::max);
        let peak = |v: &[Measure]| v.iter().map(|m| m.peak_rss_bytes).max().unwrap_or(0) as f64;
        let (speed_ratio, memory_ratio) = if peer.is_empty() {
            (None, None)
        } else {
            (Some(best(&ours) / best(&peer)), Some(peak(&ours) / peak(&peer)))
        };
        Ok(TrainBench { shape, ours, peer, speed_ratio, memory_ratio })
    }
}

fn rss() -> u64 {
    memory_stats::memory_stats().map(|m| m.physical_mem as u64).unwrap_or(0)
}

fn bench_ours(path: &std::path::Path, s: TrainShape) -> Result<Measure> {
    let _hold = crate::memory::HoldPages::new();
    let mut b = Bundle::open(path, &Device::Cpu)?;
    let lora = LoraConfig { r: 8, alpha: 16.0, ..LoraConfig::default() };
    let params = engine::adapter::add_lora(&mut b.model, &lora, 0, &b.device)?;
    let mut opt =
        AdamW::new(params.vars.clone(), AdamWConfig { lr: 1e-4, ..AdamWConfig::default() })
            .map_err(engine::Error::from)?;
    // Fixed pseudo-random ids, every token labelled (as the peer).
    let n = s.batch * s.seq;
    let ids: Vec<u32> = (0..n as u64).map(|i| 3 + ((i * 2654435761) % 49000) as u32).collect();
    let ids = Tensor::from_vec(ids, (s.batch, s.seq), &b.device).map_err(engine::Error::from)?;
    let labels = ids.to_dtype(candle_core::DType::I64).map_err(engine::Error::from)?;
    let mut peak = rss();
    let mut step = || -> engine::Result<()> {
        let (loss, _) = engine::loss::causal_lm_loss(&b.model, &ids, &labels, None)?;
        let grads = loss.backward()?;
        peak = peak.max(rss());
        opt.step(&grads, 1e-4)?;
        Ok(())
    };
    step()?;
    let t = Instant::now();
    for _ in 0..s.steps {
        step()?;
    }
    let secs = t.elapsed().as_secs_f64();
    Ok(Measure { tokens_per_second: (s.steps * n) as f64 / secs, peak_rss_bytes: peak })
}

fn bench_peer(path: &std::path::Path, s: TrainShape) -> Result<Measure> {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench/peft_train.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(path)
        .args([s.steps, s.batch, s.seq, s.threads].map(|v| v.to_string()))
        .env("OMP_NUM_THREADS", s.threads.to_string())
        .output()
        .map_err(|e| {
            Error::InvalidInput(format!("cannot run the peer (python3 {}): {e}", script.display()))
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or_default();
        return Err(Error::InvalidInput(format!("the PyTorch + PEFT peer failed: {last}")));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or_default())
        .map_err(|e| Error::InvalidInput(format!("the peer printed no result: {e}")))
}
