//! The calibrated estimate: a run's batches simulated exactly (the engine's own shuffle over
//! the dataset's token lengths), priced with a short probe of real steps on this machine
//! (the longest batch, for the peak memory, and a typical one), cached per model, method,
//! shape, precision and hardware under `<home>/probes/`.

use std::path::Path;
use std::time::Instant;

use api::train::{Estimate, Method, ProjectTrainRequest, TrainConfig};
use engine::optim::{AdamW, clip_grad_norm};
use engine::train::{Example, epoch_order, parse_chat_line};
use serde::{Deserialize, Serialize};

use crate::bench::PeakRss;
use crate::{App, Error, Result};

/// Bumped when the probe measures differently: older cache entries are ignored.
const PROBE_VERSION: u32 = 3;

/// What a probe measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Probe {
    /// Loading the model and readying it for the method.
    load_seconds: f64,
    /// A typical micro-batch: padded length and seconds (gradients and the optimizer step).
    short_len: usize,
    short_seconds: f64,
    /// The longest micro-batch.
    long_len: usize,
    long_seconds: f64,
    /// One evaluation batch: padded length and seconds.
    eval_len: usize,
    eval_seconds: f64,
    /// Writing a checkpoint.
    checkpoint_seconds: f64,
    /// Peak resident (or GPU) memory over the probe.
    peak_bytes: u64,
    /// `lora`, `qlora`, `full`.
    method: String,
    /// Training throughput of the typical batch × the model's parameters: what the assistant
    /// scales to other models' sizes.
    param_tokens_per_second: f64,
}

impl Probe {
    /// Seconds of one micro-batch padded to `len`: a line through the two measured batches.
    fn step(&self, len: usize) -> f64 {
        line(self.short_len, self.short_seconds, self.long_len, self.long_seconds, len)
    }

    /// Seconds of one evaluation batch padded to `len` (the forward pass is linear enough).
    fn eval(&self, len: usize) -> f64 {
        self.eval_seconds * len as f64 / self.eval_len.max(1) as f64
    }
}

/// `y` at `x` on the line through `(x0, y0)` and `(x1, y1)`, never below proportional scaling
/// from the larger point's side (a noisy pair must not make long batches free).
fn line(x0: usize, y0: f64, x1: usize, y1: f64, x: usize) -> f64 {
    if x1 == x0 {
        return y1 * x as f64 / x1.max(1) as f64;
    }
    let slope = ((y1 - y0) / (x1 as f64 - x0 as f64)).max(0.0);
    (y0 + slope * (x as f64 - x0 as f64)).max(y1 * 0.2 * x as f64 / x1 as f64)
}

/// The run's micro-batches and evaluation batches, as padded lengths.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Schedule {
    /// Padded length of each training micro-batch, in order.
    pub micro: Vec<usize>,
    /// Training rows of the longest and of a typical micro-batch (indexes into the rows).
    pub longest: Vec<usize>,
    pub typical: Vec<usize>,
    /// Padded length of each evaluation batch of one evaluation.
    pub eval: Vec<usize>,
    /// Evaluations in the run (before, during, at the end, after).
    pub evaluations: usize,
    /// Checkpoints written.
    pub checkpoints: usize,
    /// Training tokens, padding included.
    pub tokens: u64,
}

/// Simulates the engine's loop (`engine::train::train`) over rows of these token lengths.
pub(crate) fn schedule(train: &[usize], eval: &[usize], c: &api::train::TrainConfig) -> Schedule {
    let (bs, accum) = (c.batch_size.max(1), c.grad_accum.max(1));
    let n = train.len().max(1);
    let total = c.steps.unwrap_or(n.div_ceil(bs * accum) * c.epochs.max(1));
    let mut micro = Vec::with_capacity(total * accum);
    let mut rows: Vec<Vec<usize>> = Vec::with_capacity(total * accum);
    let mut order = (usize::MAX, Vec::new());
    for m in 0..total * accum {
        let batch: Vec<usize> = (m * bs..(m + 1) * bs)
            .map(|k| {
                let epoch = k / n;
                if order.0 != epoch {
                    order = (epoch, epoch_order(n, c.seed, epoch));
                }
                order.1[k % n]
            })
            .collect();
        micro.push(batch.iter().map(|&i| train.get(i).copied().unwrap_or(0)).max().unwrap_or(0));
        rows.push(batch);
    }
    let longest = (0..micro.len()).max_by_key(|&i| micro[i]).unwrap_or(0);
    let mut sorted: Vec<usize> = (0..micro.len()).collect();
    sorted.sort_by_key(|&i| micro[i]);
    let typical = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
    let eval_batches: Vec<usize> =
        eval.chunks(bs).map(|ch| ch.iter().copied().max().unwrap_or(0)).collect();
    let during = total.checked_div(c.eval_every).unwrap_or(0);
    let at_end = usize::from(c.eval_every == 0 || !total.is_multiple_of(c.eval_every));
    let evaluations = if eval.is_empty() { 0 } else { 1 + during + at_end + 1 };
    let checkpoints = total.saturating_sub(1).checked_div(c.checkpoint_every).unwrap_or(0);
    Schedule {
        tokens: micro.iter().map(|&l| (l * bs) as u64).sum(),
        longest: rows.get(longest).cloned().unwrap_or_default(),
        typical: rows.get(typical).cloned().unwrap_or_default(),
        micro,
        eval: eval_batches,
        evaluations,
        checkpoints,
    }
}

impl App {
    /// Time, peak memory and energy of the whole run `req` would start, from its batches
    /// simulated over the dataset and a short probe of its shape on this machine (cached).
    /// A DPO run is estimated as LoRA over twice the sequences (each preference pair's prompt
    /// with the chosen and with the rejected answer) and twice the batch; the reference pass
    /// at its start, one forward pass over the pairs, is left out.
    pub fn train_estimate(&self, req: &ProjectTrainRequest) -> Result<Estimate> {
        if let Some((_, why)) = req.problems().into_iter().next() {
            return Err(Error::InvalidInput(why));
        }
        let started = Instant::now();
        let row = self.project_row(&req.project)?;
        let (lines, is_test, file, label, c, eval_cap) = match &req.config.method {
            Method::Dpo { lora, .. } => {
                let (lines, is_test, name) =
                    self.preference_as_chat(&row.slug, req.dataset.as_deref())?;
                let c = TrainConfig {
                    method: Method::Lora(lora.clone()),
                    batch_size: 2 * req.config.batch_size,
                    ..req.config.clone()
                };
                (lines, is_test, name.clone(), name, c, 2 * req.eval_rows)
            }
            _ => {
                let (lines, is_test, manifest) =
                    self.dataset_rows(&row.slug, req.dataset.as_deref())?;
                let d = &manifest.dataset;
                let (file, label) =
                    (format!("data/{}.jsonl", d.name), format!("{} v{}", d.name, d.version));
                (lines, is_test, file, label, req.config.clone(), req.eval_rows)
            }
        };
        let c = &c;
        let base = self.resolve_model(&row.base_model)?;
        let chat = engine::bundle::Chat::open(&base)?;
        let (mut train, mut eval, mut train_rows, mut eval_rows) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, line) in lines.iter().enumerate() {
            if is_test[i] && eval.len() >= eval_cap {
                continue;
            }
            let messages =
                parse_chat_line(line).map_err(|e| Error::Data(format!("{file}:{}: {e}", i + 1)))?;
            let text = chat.template.render(&messages, false)?;
            let len = engine::tokenizer::encode(&chat.tokenizer, &text)?.len().min(c.max_len);
            if is_test[i] {
                eval.push(len);
                eval_rows.push(i);
            } else {
                train.push(len);
                train_rows.push(i);
            }
        }
        if train.is_empty() {
            return Err(Error::InvalidInput(format!("{label} has no training rows")));
        }
        let s = schedule(&train, &eval, c);
        let prepare_seconds = started.elapsed().as_secs_f64();
        let system = self.system_info()?;
        let key = probe_key(&base, c, &s, &train, &eval, &system.device, &system.cpu);
        let cache = self.home.join("probes").join(format!("{key}.json"));
        let cached =
            std::fs::read(&cache).ok().and_then(|b| serde_json::from_slice::<Probe>(&b).ok());
        let was_cached = cached.is_some();
        let probe = match cached {
            Some(p) => p,
            None => {
                let tokenize = |rows: &[usize], of: &[usize]| -> Result<Vec<String>> {
                    Ok(rows.iter().map(|&k| lines[of[k]].clone()).collect())
                };
                let long = tokenize(&s.longest, &train_rows)?;
                let typical = tokenize(&s.typical, &train_rows)?;
                let eval_lines =
                    tokenize(&(0..eval.len().min(c.batch_size)).collect::<Vec<_>>(), &eval_rows)?;
                let parameters = self
                    .models_list()?
                    .into_iter()
                    .find(|m| m.id == row.base_model)
                    .map_or(0, |m| m.parameters);
                let p = self.probe(&base, c, &long, &typical, &eval_lines, parameters)?;
                // A cache that cannot be written costs the next estimate a probe, nothing else.
                if std::fs::create_dir_all(cache.parent().unwrap_or(Path::new("."))).is_ok() {
                    let _ =
                        std::fs::write(&cache, serde_json::to_vec_pretty(&p).unwrap_or_default());
                }
                p
            }
        };
        let train_seconds: f64 = s.micro.iter().map(|&l| probe.step(l)).sum();
        let eval_seconds =
            s.evaluations as f64 * s.eval.iter().map(|&l| probe.eval(l)).sum::<f64>();
        // Loading, tokenizing (as long as this estimate's own pass over the rows took),
        // checkpoints, the final save and the commit.
        let overhead_seconds = probe.load_seconds
            + prepare_seconds
            + (s.checkpoints + 1) as f64 * probe.checkpoint_seconds
            + COMMIT_SECONDS;
        let seconds = train_seconds + eval_seconds + overhead_seconds;
        Ok(Estimate {
            tokens_per_second: s.tokens as f64 / train_seconds.max(1e-9),
            tokens: s.tokens,
            seconds,
            train_seconds,
            eval_seconds,
            overhead_seconds,
            peak_memory_bytes: probe.peak_bytes,
            memory_bytes: system.gpu.as_ref().map_or(system.memory_bytes, |g| g.memory_bytes),
            energy_kwh: seconds / 3600.0 * crate::advisor::tables::watts(&system) / 1000.0,
            cost: None,
            cached: was_cached,
        })
    }

    /// Loads the model for `c`'s method and runs real steps: the longest batch first (it sets
    /// the peak memory, and warms the allocator), then it and a typical one three times each, timed
    /// (the medians); then one evaluation batch three times and one checkpoint.
    fn probe(
        &self,
        base: &Path,
        c: &api::train::TrainConfig,
        long: &[String],
        typical: &[String],
        eval: &[String],
        parameters: u64,
    ) -> Result<Probe> {
        let _hold = crate::memory::HoldPages::new();
        let device = self.device()?;
        let peak = PeakRss::start(&device);
        let t = Instant::now();
        let mut b = crate::training::open_base(base, &c.method, &device)?;
        let params = engine::train::prepare(&mut b.model, &c.method, c.precision, c.seed)?;
        let mut opt = AdamW::new(params.vars.clone(), c.adamw).map_err(engine::Error::from)?;
        let load_seconds = t.elapsed().as_secs_f64();
        let examples = |rows: &[String]| -> Result<Vec<Example>> {
            rows.iter()
                .map(|l| {
                    let m = parse_chat_line(l).map_err(|e| Error::Data(e.to_string()))?;
                    Ok(engine::train::tokenize(&b, &m, c.max_len)?)
                })
                .collect()
        };
        let (long, typical, eval) = (examples(long)?, examples(typical)?, examples(eval)?);
        let sync = || device.synchronize().map_err(engine::Error::from);
        // As the run decides: the blocks it recomputes depend on the memory free.
        let (rows, t) = (c.batch_size.max(1), c.max_len);
        let recompute = engine::train::recompute_for(&b.model, c.gradient_checkpointing, rows, t);
        let mut step = |batch: &[Example]| -> Result<(usize, f64)> {
            let refs: Vec<&Example> = batch.iter().collect();
            let (ids, labels, _) = engine::train::collate(&refs, &device)?;
            let len = ids.dim(1).map_err(engine::Error::from)?;
            sync()?;
            let t = Instant::now();
            let (_, mut grads) = engine::train::gradients(
                &b.model,
                &ids,
                &labels,
                c.seed,
                recompute,
                1.0 / c.grad_accum.max(1) as f64,
            )?;
            clip_grad_norm(&mut grads, &params.vars, c.max_grad_norm)
                .map_err(engine::Error::from)?;
            opt.step(&grads, c.adamw.lr).map_err(engine::Error::from)?;
            sync()?;
            Ok((len, t.elapsed().as_secs_f64()))
        };
        // One step alone varies by ±20 % here, and now and then by far more (a neighbour on
        // the machine, the page cache): each figure is the median of three.
        step(&long)?;
        let mut median = |batch: &[Example]| -> Result<(usize, f64)> {
            let mut times = Vec::with_capacity(3);
            let mut len = 0;
            for _ in 0..3 {
                let (l, s) = step(batch)?;
                len = l;
                times.push(s);
            }
            times.sort_by(f64::total_cmp);
            Ok((len, times[1]))
        };
        let (long_len, long_seconds) = median(&long)?;
        let (short_len, short_seconds) = median(&typical)?;
        let mut evals = Vec::with_capacity(3);
        for _ in 0..3 {
            let t = Instant::now();
            if !eval.is_empty() {
                engine::train::evaluate(&b.model, &eval, c.batch_size)?;
            }
            evals.push(t.elapsed().as_secs_f64());
        }
        evals.sort_by(f64::total_cmp);
        let eval_seconds = evals[1];
        let eval_len = eval.iter().map(|e| e.ids.len()).max().unwrap_or(1);
        // A checkpoint is the trainable weights and the optimizer's moments: written as the
        // run writes them, into this session's scratch folder.
        let scratch = self.scratch_path("probe-checkpoint")?;
        let t = Instant::now();
        engine::train::save_params(&scratch, &b.model, c, &params, "probe")?;
        candle_core::safetensors::save(&opt.state(), scratch.join("optimizer.safetensors"))
            .map_err(engine::Error::from)?;
        let checkpoint_seconds = t.elapsed().as_secs_f64();
        let _ = std::fs::remove_dir_all(&scratch);
        let (rss, gpu) = peak.finish();
        Ok(Probe {
            load_seconds,
            short_len,
            short_seconds,
            long_len,
            long_seconds,
            eval_len,
            eval_seconds,
            checkpoint_seconds,
            peak_bytes: gpu.unwrap_or(rss),
            method: c.method.name().into(),
            param_tokens_per_second: (typical.len() * short_len) as f64 / short_seconds.max(1e-9)
                * parameters as f64,
        })
    }
}

/// The highest LoRA throughput any cached probe measured on this machine, as parameter-tokens
/// per second (the assistant's speed for models not probed yet).
pub(crate) fn cached_throughput(home: &Path) -> Option<f64> {
    let dir = std::fs::read_dir(home.join("probes")).ok()?;
    dir.filter_map(|e| std::fs::read(e.ok()?.path()).ok())
        .filter_map(|b| serde_json::from_slice::<Probe>(&b).ok())
        .filter(|p| p.method == "lora" && p.param_tokens_per_second > 0.0)
        .map(|p| p.param_tokens_per_second)
        .reduce(f64::max)
}

/// Recording the run: `run.toml`, the commit, the tag.
const COMMIT_SECONDS: f64 = 0.5;

/// The cache key: the model file, the method and shape, the batches probed, the hardware.
fn probe_key(
    base: &Path,
    c: &api::train::TrainConfig,
    s: &Schedule,
    train: &[usize],
    eval: &[usize],
    device: &str,
    cpu: &str,
) -> String {
    use sha2::{Digest, Sha256};
    let meta = std::fs::metadata(base).ok();
    let longest: Vec<usize> = s.longest.iter().map(|&i| train[i]).collect();
    let typical: Vec<usize> = s.typical.iter().map(|&i| train[i]).collect();
    let first_eval: Vec<usize> = eval.iter().take(c.batch_size).copied().collect();
    let text = format!(
        "{PROBE_VERSION}|{}|{:?}|{:?}|{}|{:?}|{:?}|{}|{}|{}|{:?}|{:?}|{:?}|{cpu}|{}|{device}",
        base.display(),
        meta.as_ref().map(|m| m.len()),
        meta.and_then(|m| m.modified().ok()),
        c.method.name(),
        c.method.lora(),
        c.method,
        c.batch_size,
        c.max_len,
        c.gradient_checkpointing,
        c.precision,
        longest,
        (typical, first_eval),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let hash = Sha256::digest(text.as_bytes());
    hash.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_follows_the_engines_loop() {
        let c = api::train::TrainConfig {
            batch_size: 2,
            epochs: 2,
            eval_every: 3,
            checkpoint_every: 2,
            ..Default::default()
        };
        let train = [10, 20, 30, 40, 50];
        let s = schedule(&train, &[7, 9, 11], &c);
        // 5 rows in batches of 2: 3 steps an epoch, 6 in all.
        assert_eq!(s.micro.len(), 6);
        // Each epoch visits every row once (the last batch of epoch 1 spills into epoch 2).
        let order0 = epoch_order(5, c.seed, 0);
        assert_eq!(s.micro[0], train[order0[0]].max(train[order0[1]]));
        assert_eq!(s.tokens, s.micro.iter().map(|&l| l as u64 * 2).sum::<u64>());
        assert_eq!(s.eval, [9, 11]);
        // Before, at steps 3 and 6 (the end), after.
        assert_eq!(s.evaluations, 4);
        // At steps 2 and 4 (not at the end).
        assert_eq!(s.checkpoints, 2);
        assert_eq!(s.micro[s.micro.len() / 2..].len(), 3);
        assert!(s.longest.iter().any(|&i| train[i] == 50));
    }

    #[test]
    fn the_step_time_line_never_turns_free() {
        assert!((line(100, 1.0, 200, 2.0, 150) - 1.5).abs() < 1e-9);
        assert!((line(200, 2.0, 200, 2.0, 100) - 1.0).abs() < 1e-9);
        // A noisy pair (the longer batch measured faster) falls back to a floor.
        assert!(line(100, 3.0, 200, 2.0, 50) > 0.0);
    }
}
