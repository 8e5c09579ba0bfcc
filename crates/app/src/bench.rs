//! Benchmarks against peers, in the same run on the same machine: our LoRA training against
//! PyTorch + PEFT (`scripts/bench/peft_train.py`), and our decoding against llama.cpp
//! (`scripts/bench/llamacpp_generate.py`). A measuring tool, not a product path: it is
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
    /// The gradient-checkpointing modes each side runs in (recompute each decoder block in the
    /// backward pass, as ours does by default and PyTorch's `gradient_checkpointing_enable`;
    /// or keep every activation): both by default, so that each side's fastest is compared.
    pub checkpointing: Checkpointing,
    /// The frozen base's and the activations' format on both sides (adapters f32 on both).
    pub precision: engine::device::Precision,
    /// LoRA (r=8, all seven projections, over an f32 base), QLoRA (the same pairs over a 4-bit
    /// base: ours Q4_1 blocks, the peer bitsandbytes' NF4) or full fine-tuning (every weight,
    /// AdamW on both sides). DPO is not benchmarked.
    pub method: api::train::MethodKind,
}

/// One side's measurement.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Measure {
    /// Training tokens per second.
    pub tokens_per_second: f64,
    /// Peak resident memory, bytes.
    pub peak_rss_bytes: u64,
    /// Peak GPU memory in use (the driver's count, CUDA context included), bytes, when the
    /// side ran on a GPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_gpu_bytes: Option<u64>,
}

/// Which gradient-checkpointing modes a training benchmark runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Checkpointing {
    /// With and without, on both sides: each side's fastest is what a user of it would run.
    #[default]
    Both,
    /// Only with (the same setting on both sides).
    On,
    /// Only without.
    Off,
}

impl Checkpointing {
    /// The modes, as whether checkpointing is on.
    pub fn modes(self) -> &'static [bool] {
        match self {
            Checkpointing::Both => &[true, false],
            Checkpointing::On => &[true],
            Checkpointing::Off => &[false],
        }
    }
}

/// One mode's rounds on both sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeBench {
    /// Whether both sides recomputed each block in the backward pass.
    pub gradient_checkpointing: bool,
    /// Our rounds.
    pub ours: Vec<Measure>,
    /// The peer's rounds (empty without `--vs-peer`).
    pub peer: Vec<Measure>,
}

/// A side's fastest mode.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Best {
    /// Its mode.
    pub gradient_checkpointing: bool,
    /// Its best round's tokens/s.
    pub tokens_per_second: f64,
    /// Its peak memory over that mode's rounds (GPU memory when both sides ran on a GPU, else
    /// resident memory), bytes.
    pub peak_bytes: u64,
}

/// The comparison: every mode's rounds, and each side's fastest mode against the other's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainBench {
    /// The shape measured.
    pub shape: TrainShape,
    /// Each mode's rounds.
    pub modes: Vec<ModeBench>,
    /// Our fastest mode.
    pub best_ours: Option<Best>,
    /// The peer's fastest mode.
    pub best_peer: Option<Best>,
    /// Our fastest ÷ the peer's fastest, tokens/s (higher is better).
    pub speed_ratio: Option<f64>,
    /// Our fastest mode's peak memory ÷ the peer's fastest mode's (lower is better).
    pub memory_ratio: Option<f64>,
    /// Where ours ran (`cpu`, `cuda:0`, …); the peer runs on the same kind of device.
    pub device: String,
    /// f32 matrix products on TF32 tensor cores, on both sides (CUDA only).
    pub tf32: bool,
}

impl App {
    /// Runs the training benchmark on the default model (or `model`), alternating with the
    /// PyTorch + PEFT peer when `vs_peer`.
    pub fn bench_train(&self, model: &str, shape: TrainShape, vs_peer: bool) -> Result<TrainBench> {
        if shape.method == api::train::MethodKind::Dpo {
            return Err(Error::InvalidInput(
                "bench train measures LoRA, QLoRA and full fine-tuning; DPO is LoRA's speed over \
                 twice the sequences"
                    .into(),
            ));
        }
        let path = self.resolve_model(model)?;
        let device = self.device()?;
        let tf32 = engine::device::tf32(&device);
        let mut modes: Vec<ModeBench> = shape
            .checkpointing
            .modes()
            .iter()
            .map(|&gradient_checkpointing| ModeBench {
                gradient_checkpointing,
                ours: Vec::new(),
                peer: Vec::new(),
            })
            .collect();
        // Ours runs in this process, whose allocator keeps what a mode used: the mode that
        // needs least (checkpointing) goes first, all its rounds, so that no peak includes
        // another mode's leftovers. Within a mode the sides alternate round by round.
        for m in &mut modes {
            for _ in 0..shape.rounds.max(1) {
                m.ours.push(bench_ours(&path, shape, m.gradient_checkpointing, &device)?);
                if vs_peer {
                    let peer = bench_peer(&path, shape, m.gradient_checkpointing, &device, tf32)?;
                    m.peer.push(peer);
                }
            }
        }
        let gpu = device.is_cuda()
            && modes.iter().flat_map(|m| &m.peer).all(|p| p.peak_gpu_bytes.is_some());
        let best = |side: fn(&ModeBench) -> &Vec<Measure>| {
            modes
                .iter()
                .filter(|m| !side(m).is_empty())
                .map(|m| {
                    let rounds = side(m);
                    let bytes = |r: &Measure| match gpu {
                        true => r.peak_gpu_bytes.unwrap_or(0),
                        false => r.peak_rss_bytes,
                    };
                    Best {
                        gradient_checkpointing: m.gradient_checkpointing,
                        tokens_per_second: rounds
                            .iter()
                            .map(|r| r.tokens_per_second)
                            .fold(f64::NAN, f64::max),
                        peak_bytes: rounds.iter().map(bytes).max().unwrap_or(0),
                    }
                })
                .max_by(|a, b| a.tokens_per_second.total_cmp(&b.tokens_per_second))
        };
        let (best_ours, best_peer) = (best(|m| &m.ours), best(|m| &m.peer));
        let (speed_ratio, memory_ratio) = match (best_ours, best_peer) {
            (Some(o), Some(p)) => (
                Some(o.tokens_per_second / p.tokens_per_second),
                Some(o.peak_bytes as f64 / p.peak_bytes as f64),
            ),
            _ => (None, None),
        };
        let device = engine::device::name(&device);
        Ok(TrainBench {
            shape,
            modes,
            best_ours,
            best_peer,
            speed_ratio,
            memory_ratio,
            device,
            tf32,
        })
    }
}

fn rss() -> u64 {
    memory_stats::memory_stats().map(|m| m.physical_mem as u64).unwrap_or(0)
}

/// The highest resident memory (and GPU memory, on a GPU) seen while it lives, sampled every
/// 5 ms on its own thread (from `statm`: reading `smaps` walks every page table and slowed
/// training by a third) (the peak falls inside the backward pass, not between steps).
pub(crate) struct PeakRss {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<(u64, Option<u64>)>>,
}

impl PeakRss {
    pub(crate) fn start(device: &Device) -> PeakRss {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let device = device.clone();
        let thread = std::thread::spawn(move || {
            let gpu = || engine::device::gpu_memory_used(&device);
            let (mut peak, mut peak_gpu) = (rss(), gpu());
            loop {
                peak = peak.max(rss());
                peak_gpu = peak_gpu.max(gpu());
                if flag.load(Ordering::Relaxed) {
                    return (peak, peak_gpu);
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
        PeakRss { stop, thread: Some(thread) }
    }

    /// (peak resident bytes, peak GPU bytes).
    pub(crate) fn finish(mut self) -> (u64, Option<u64>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or((0, None))
    }
}

impl Drop for PeakRss {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

pub(crate) fn bench_ours(
    path: &std::path::Path,
    s: TrainShape,
    checkpointing: bool,
    device: &Device,
) -> Result<Measure> {
    let _hold = crate::memory::HoldPages::new();
    let peak = PeakRss::start(device);
    let lora = LoraConfig { r: 8, alpha: 16.0, ..LoraConfig::default() };
    let method = engine::train::Method::of_kind(s.method, lora, api::train::Quant::Q4_1);
    let mut b = crate::training::open_base(path, &method, device)?;
    let params = engine::train::prepare(&mut b.model, &method, s.precision, 0)?;
    let mut opt =
        AdamW::new(params.vars.clone(), AdamWConfig { lr: 1e-4, ..AdamWConfig::default() })
            .map_err(engine::Error::from)?;
    // Fixed pseudo-random ids, every token labelled (as the peer).
    let n = s.batch * s.seq;
    let ids: Vec<u32> = (0..n as u64).map(|i| 3 + ((i * 2654435761) % 49000) as u32).collect();
    let ids = Tensor::from_vec(ids, (s.batch, s.seq), &b.device).map_err(engine::Error::from)?;
    let labels = ids.to_dtype(candle_core::DType::I64).map_err(engine::Error::from)?;
    // The training loop's step (engine::train), without its data handling.
    let mut step = || -> engine::Result<()> {
        let recompute = engine::train::Recompute::from_checkpointing(checkpointing);
        let (_, grads) = engine::train::gradients(&b.model, &ids, &labels, 0, recompute, 1.0)?;
        opt.step(&grads, 1e-4)?;
        Ok(())
    };
    // A GPU queues work: wait for it before starting and stopping the clock.
    let sync = || device.synchronize().map_err(engine::Error::from);
    step()?;
    sync()?;
    let t = Instant::now();
    for _ in 0..s.steps {
        step()?;
    }
    sync()?;
    let secs = t.elapsed().as_secs_f64();
    let (peak_rss_bytes, peak_gpu_bytes) = peak.finish();
    Ok(Measure { tokens_per_second: (s.steps * n) as f64 / secs, peak_rss_bytes, peak_gpu_bytes })
}

fn bench_peer(
    path: &std::path::Path,
    s: TrainShape,
    checkpointing: bool,
    device: &Device,
    tf32: bool,
) -> Result<Measure> {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench/peft_train.py");
    let mut c = Command::new("python3");
    c.arg(&script)
        .arg(path)
        .args([s.steps, s.batch, s.seq, s.threads].map(|v| v.to_string()))
        .arg(if checkpointing { "1" } else { "0" })
        .arg(if device.is_cuda() { "cuda" } else { "cpu" })
        .arg(if tf32 { "1" } else { "0" })
        .arg(s.precision.name())
        .arg(match s.method {
            api::train::MethodKind::Qlora => "qlora",
            api::train::MethodKind::Full => "full",
            _ => "lora",
        })
        .env("OMP_NUM_THREADS", s.threads.to_string());
    run_peer(c, "PyTorch + PEFT")
}

/// Shape of a generation benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GenerateShape {
    /// Tokens decoded after the prompt (greedy, not stopping at end tokens).
    pub new_tokens: usize,
    /// Rounds, alternating ours and the peer.
    pub rounds: usize,
    /// Threads the peer may use.
    pub threads: usize,
}

/// Decoding speed: our f32 and quantized paths against llama.cpp.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GenerateBench {
    /// The shape measured.
    pub shape: GenerateShape,
    /// Our f32 path.
    pub ours_f32: Vec<Measure>,
    /// Our quantized (GGUF weights as stored) path.
    pub ours_quantized: Vec<Measure>,
    /// llama.cpp through llama-cpp-python (empty without `--vs-peer`).
    pub peer: Vec<Measure>,
    /// Best quantized ÷ best peer, tokens/s.
    pub quantized_ratio: Option<f64>,
    /// Best f32 ÷ best peer, tokens/s.
    pub f32_ratio: Option<f64>,
}

impl App {
    /// Runs the decoding benchmark, alternating with llama.cpp when `vs_peer`.
    pub fn bench_generate(
        &self,
        model: &str,
        shape: GenerateShape,
        vs_peer: bool,
    ) -> Result<GenerateBench> {
        let path = self.resolve_model(model)?;
        let b = Bundle::open(&path, &self.device()?)?;
        let prompt = b.prompt_ids(&[engine::template::Message::new(
            "user",
            "Write a short story about a lighthouse keeper.",
        )])?;
        let (mut f, mut q, mut peer) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..shape.rounds.max(1) {
            let mut dec = engine::generate::F32Decoder::new(&b.model, &b.device);
            f.push(decode(&mut dec, &prompt, shape.new_tokens)?);
            let mut dec = engine::generate::QuantDecoder::open(&path, &b.device)?;
            q.push(decode(&mut dec, &prompt, shape.new_tokens)?);
            if vs_peer {
                peer.push(generate_peer(&path, &prompt, shape)?);
            }
        }
        let best = |v: &[Measure]| v.iter().map(|m| m.tokens_per_second).fold(f64::NAN, f64::max);
        let ratio = |v: &[Measure]| (!peer.is_empty()).then(|| best(v) / best(&peer));
        Ok(GenerateBench {
            shape,
            quantized_ratio: ratio(&q),
            f32_ratio: ratio(&f),
            ours_f32: f,
            ours_quantized: q,
            peer,
        })
    }
}

/// Batched generation (`engine::generate::generate_batch`) at several batch sizes, the same
/// prompts and the same number of new tokens at each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchBench {
    /// Prompts (questions rendered with the model's chat template).
    pub prompts: usize,
    /// Their tokens, all together.
    pub prompt_tokens: usize,
    /// Tokens generated after each prompt (greedy, end tokens ignored: every batch size
    /// generates as many).
    pub new_tokens: usize,
    /// Rounds, the batch sizes alternating within each; every figure is a median.
    pub rounds: usize,
    /// The adapter applied beside the weights, if any.
    pub adapter: Option<String>,
    /// What decoded: `avx512-vnni` or `avx2` (our kernels, in batches), or `candle` (one
    /// prompt after another: no batches).
    pub kernels: String,
    /// One row per batch size, in the order asked.
    pub sizes: Vec<BatchMeasure>,
    /// Whether every batch size generated the tokens the first did (it must: a sequence's
    /// values do not depend on its batch mates).
    pub identical: bool,
}

/// One batch size's measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchMeasure {
    /// Sequences decoded together, at most.
    pub batch: usize,
    /// Generated tokens per second of the whole call, prompts included (median).
    pub tokens_per_second: f64,
    /// Generated tokens per second of decoding alone: the tokens after each prompt's first over
    /// the call's time less that of a call which only reads the prompts (median).
    pub decode_tokens_per_second: f64,
    /// Decode tokens per second ÷ the first batch size's.
    pub speedup: f64,
    /// Each round's decode tokens per second.
    pub decode_rounds: Vec<f64>,
    /// Peak resident memory during the calls, bytes.
    pub peak_rss_bytes: u64,
}

/// Questions of different lengths for the batched benchmark (cycled for more prompts).
const QUESTIONS: [&str; 16] = [
    "Hi!",
    "Answer yes or no: is the sun a star?",
    "What is the capital of France?",
    "Write a haiku about autumn leaves falling on a quiet river.",
    "Explain in two sentences why the sky is blue, for a child of seven.",
    "List three prime numbers.",
    "Translate 'good morning' into Spanish.",
    "Summarize the plot of Romeo and Juliet in one paragraph, naming the two families and how \
     the story ends for both lovers.",
    "2 + 2 =",
    "Give me a name for a small grey cat.",
    "What does a lighthouse keeper do all day? Describe a typical day from dawn to night.",
    "Reply with one word: the opposite of hot.",
    "Why do we have seasons on Earth?",
    "Write a short polite email declining a meeting invitation next Tuesday at ten because of a \
     scheduling conflict, and suggest Thursday afternoon instead.",
    "Name a fruit that is yellow.",
    "How many legs does a spider have?",
];

impl App {
    /// Runs the batched generation benchmark on the quantized path of `model` (a GGUF), with
    /// `adapter` (a PEFT folder) beside it if given: `prompts` prompts, `new_tokens` tokens
    /// each, at every size of `batches`, `rounds` times.
    pub fn bench_generate_batch(
        &self,
        model: &str,
        adapter: Option<&std::path::Path>,
        batches: &[usize],
        prompts: usize,
        new_tokens: usize,
        rounds: usize,
    ) -> Result<BatchBench> {
        if batches.is_empty() || batches.contains(&0) || prompts == 0 || new_tokens == 0 {
            return Err(Error::InvalidInput(
                "give batch sizes of at least 1, and at least one prompt and one new token".into(),
            ));
        }
        let path = self.resolve_model(model)?;
        let mut dec = engine::generate::QuantDecoder::open(&path, &self.device()?)?;
        if let Some(dir) = adapter {
            dec.apply_adapter(dir)?;
        }
        let chat = engine::bundle::Chat::open(&path)?;
        let mut ids = Vec::with_capacity(prompts);
        for q in QUESTIONS.iter().cycle().take(prompts) {
            let text = chat.template.render(&[engine::template::Message::new("user", q)], true)?;
            ids.push(engine::tokenizer::encode(&chat.tokenizer, &text)?);
        }
        let batching =
            |size| engine::generate::Batching { size, context: chat.context.unwrap_or(2048) };
        let greedy = |max_tokens| engine::generate::Sampling {
            temperature: 0.0,
            max_tokens,
            ..engine::generate::Sampling::default()
        };
        // Seconds of one call, and its outputs' tokens.
        let mut run = |size, max_tokens| -> Result<(f64, Vec<Vec<u32>>)> {
            let t = Instant::now();
            let outs = engine::generate::generate_batch(
                &mut dec,
                &chat.tokenizer,
                &ids,
                &[],
                &greedy(max_tokens),
                batching(size),
                &mut |_, _| true,
            )?;
            Ok((t.elapsed().as_secs_f64(), outs.into_iter().map(|o| o.tokens).collect()))
        };
        let rounds = rounds.max(1);
        let (mut all, mut decode) =
            (vec![Vec::new(); batches.len()], vec![Vec::new(); batches.len()]);
        let mut peaks = vec![0u64; batches.len()];
        let mut first: Option<Vec<Vec<u32>>> = None;
        let mut identical = true;
        let device = self.device()?;
        for round in 0..rounds {
            for (i, &size) in batches.iter().enumerate() {
                let peak = PeakRss::start(&device);
                let (prefill, _) = run(size, 1)?;
                let (secs, tokens) = run(size, new_tokens)?;
                peaks[i] = peaks[i].max(peak.finish().0);
                let generated: usize = tokens.iter().map(Vec::len).sum();
                all[i].push(generated as f64 / secs);
                let after_first = generated.saturating_sub(ids.len());
                decode[i].push(after_first as f64 / (secs - prefill).max(1e-9));
                if round == 0 {
                    match &first {
                        None => first = Some(tokens),
                        Some(f) => identical &= *f == tokens,
                    }
                }
            }
        }
        let base = median(&decode[0]);
        let sizes = batches
            .iter()
            .enumerate()
            .map(|(i, &batch)| BatchMeasure {
                batch,
                tokens_per_second: median(&all[i]),
                decode_tokens_per_second: median(&decode[i]),
                speedup: median(&decode[i]) / base,
                decode_rounds: decode[i].clone(),
                peak_rss_bytes: peaks[i],
            })
            .collect();
        let kernels = if !dec.native() {
            "candle"
        } else if engine::quant::vnni() {
            "avx512-vnni"
        } else {
            "avx2"
        };
        Ok(BatchBench {
            prompts,
            prompt_tokens: ids.iter().map(Vec::len).sum(),
            new_tokens,
            rounds,
            adapter: adapter.map(|p| p.display().to_string()),
            kernels: kernels.into(),
            sizes,
            identical,
        })
    }
}

/// The middle value (the mean of the middle two for an even count).
fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn decode(dec: &mut dyn engine::generate::Decoder, prompt: &[u32], n: usize) -> Result<Measure> {
    let argmax = |v: &[f32]| {
        v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i as u32).unwrap_or(0)
    };
    let mut logits = dec.step(prompt)?;
    let t = Instant::now();
    let mut peak = rss();
    for _ in 0..n {
        logits = dec.step(&[argmax(&logits)])?;
        peak = peak.max(rss());
    }
    Ok(Measure {
        tokens_per_second: n as f64 / t.elapsed().as_secs_f64(),
        peak_rss_bytes: peak,
        peak_gpu_bytes: None,
    })
}

fn generate_peer(path: &std::path::Path, prompt: &[u32], s: GenerateShape) -> Result<Measure> {
    let dir = std::env::temp_dir().join(format!("vibeflow-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let ids = dir.join("prompt.json");
    std::fs::write(&ids, serde_json::to_string(prompt).unwrap_or_default())
        .map_err(|e| Error::io(&ids, e))?;
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench/llamacpp_generate.py");
    let mut c = Command::new("python3");
    c.arg(&script).arg(path).arg(&ids).args([s.new_tokens, s.threads].map(|v| v.to_string()));
    let r = run_peer(c, "llama.cpp (llama-cpp-python)");
    let _ = std::fs::remove_dir_all(&dir);
    r
}

/// Runs a Python peer and parses the JSON object on the last line of its output.
pub(crate) fn run_peer<T: serde::de::DeserializeOwned>(mut c: Command, name: &str) -> Result<T> {
    let out =
        c.output().map_err(|e| Error::InvalidInput(format!("cannot run the {name} peer: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or_default();
        return Err(Error::InvalidInput(format!("the {name} peer failed: {last}")));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or_default())
        .map_err(|e| Error::InvalidInput(format!("the {name} peer printed no result: {e}")))
}
