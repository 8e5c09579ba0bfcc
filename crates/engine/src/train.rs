//! The training loop: chat examples in, a LoRA adapter (or full weights) out, with gradient
//! accumulation, clipping, warmup + decay, held-out evaluation, atomic checkpoints, exact
//! resume, cooperative stop and progress events.
//!
//! Everything random — LoRA init, data order, dropout — derives from the seed, the step and the
//! micro-batch, so a resumed run repeats an uninterrupted one exactly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::adapter::{self, Params};
use crate::bundle::Bundle;
use crate::device::{Precision, PrecisionExt};
use crate::lora::{QuantExt, TrainCtx};
use crate::loss::{IGNORE, causal_lm_loss};
use crate::models::llama::{Llama, Pass};
use crate::optim::{AdamW, clip_grad_norm, lr_at};
use crate::template::Message;
use crate::{Error, Result};

/// A tokenized example: ids and labels (assistant tokens only; others [`IGNORE`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Per-token label.
    pub labels: Vec<i64>,
}

pub use crate::lora::Recompute;
pub use api::train::{Method, Progress, Summary, TrainConfig};

/// The messages of one chat JSONL line, `{"messages": [...]}`.
pub fn parse_chat_line(line: &str) -> serde_json::Result<Vec<Message>> {
    #[derive(Deserialize)]
    struct Row {
        messages: Vec<Message>,
    }
    serde_json::from_str::<Row>(line).map(|r| r.messages)
}

/// Reads a chat JSONL file (one `{"messages": [...]}` per line); errors name file and line.
pub fn read_chat_jsonl(path: &Path) -> Result<Vec<Vec<Message>>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let messages = parse_chat_line(line)
            .map_err(|e| Error::Data(format!("{}:{}: {e}", path.display(), i + 1)))?;
        if !messages.iter().any(|m| m.role == "assistant") {
            return Err(Error::Data(format!(
                "{}:{}: no assistant message to learn from",
                path.display(),
                i + 1
            )));
        }
        out.push(messages);
    }
    if out.is_empty() {
        return Err(Error::Data(format!("{}: no examples", path.display())));
    }
    Ok(out)
}

/// Tokenizes a conversation with the model's chat template; only assistant replies (with their
/// end-of-turn tokens) are labelled.
pub fn tokenize(b: &Bundle, messages: &[Message], max_len: usize) -> Result<Example> {
    tokenize_completion(b, messages, 0, max_len)
}

/// [`tokenize`] labelling only the assistant replies from message `first` on: a preference
/// pair's completion after its prompt (whose own assistant turns are context).
pub fn tokenize_completion(
    b: &Bundle,
    messages: &[Message],
    first: usize,
    max_len: usize,
) -> Result<Example> {
    let ids = crate::tokenizer::encode(&b.tokenizer, &b.template.render(messages, false)?)?;
    let mut labels = vec![IGNORE; ids.len()];
    for (k, m) in messages.iter().enumerate().skip(first) {
        if m.role != "assistant" {
            continue;
        }
        let start =
            crate::tokenizer::encode(&b.tokenizer, &b.template.render(&messages[..k], true)?)?
                .len();
        let end =
            crate::tokenizer::encode(&b.tokenizer, &b.template.render(&messages[..=k], false)?)?
                .len();
        for i in start..end.min(ids.len()) {
            labels[i] = ids[i] as i64;
        }
    }
    let n = ids.len().min(max_len);
    Ok(Example { ids: ids[..n].to_vec(), labels: labels[..n].to_vec() })
}

/// Splits off a held-out set: `fraction` of the examples (or preference pairs; at least one),
/// chosen by `seed`.
pub fn split<T>(mut examples: Vec<T>, fraction: f64, seed: u64) -> (Vec<T>, Vec<T>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    examples.shuffle(&mut rng);
    let n_eval = ((examples.len() as f64 * fraction).round() as usize)
        .clamp(1, examples.len().saturating_sub(1).max(1));
    let eval = examples.split_off(examples.len() - n_eval);
    (examples, eval)
}

/// Pads examples on the right into `[b, t]` ids (pad 0, never attended by real tokens under the
/// causal mask) and labels (pad [`IGNORE`]).
pub fn collate(batch: &[&Example], dev: &Device) -> Result<(Tensor, Tensor, usize)> {
    let t = batch.iter().map(|e| e.ids.len()).max().unwrap_or(1);
    let mut ids = Vec::with_capacity(batch.len() * t);
    let mut labels = Vec::with_capacity(batch.len() * t);
    let mut real = 0;
    for e in batch {
        real += e.ids.len();
        ids.extend(e.ids.iter().copied().chain(std::iter::repeat_n(0, t - e.ids.len())));
        labels.extend(e.labels.iter().copied().chain(std::iter::repeat_n(IGNORE, t - e.ids.len())));
    }
    Ok((
        Tensor::from_vec(ids, (batch.len(), t), dev)?,
        Tensor::from_vec(labels, (batch.len(), t), dev)?,
        real,
    ))
}

/// Mean held-out loss per label token.
pub fn evaluate(model: &Llama, eval: &[Example], batch_size: usize) -> Result<f64> {
    let (mut total, mut tokens) = (0f64, 0usize);
    for chunk in eval.chunks(batch_size.max(1)) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let (ids, labels, _) = collate(&refs, model.device())?;
        match causal_lm_loss(model, &ids, &labels, Pass::Infer) {
            Ok((loss, n)) => {
                total += loss.detach().to_scalar::<f32>()? as f64 * n as f64;
                tokens += n;
            }
            Err(candle_core::Error::Msg(m)) if m.contains("no label tokens") => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(if tokens == 0 { f64::NAN } else { total / tokens as f64 })
}

/// What a checkpoint's `state.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    step: usize,
    seed: u64,
    losses: Vec<f64>,
    eval_loss_before: Option<f64>,
}

/// Trains `b.model` in place on `train`, evaluating on `eval`, writing checkpoints and the
/// result under `out`. With `resume`, continues from the newest checkpoint in that folder.
#[allow(clippy::too_many_arguments)]
pub fn train(
    model: &mut Llama,
    train: &[Example],
    eval: &[Example],
    cfg: &TrainConfig,
    base_name: &str,
    out: &Path,
    resume: Option<&Path>,
    on_progress: &mut dyn FnMut(&Progress) -> bool,
) -> Result<Summary> {
    if train.is_empty() {
        return Err(Error::Data("no training examples".into()));
    }
    if matches!(cfg.method, Method::Dpo { .. }) {
        return Err(Error::Data("DPO trains on preference pairs: use engine::dpo::train".into()));
    }
    // An example cut at `max_len` before its reply starts has nothing to learn or score.
    let learnable = |e: &&Example| e.labels.iter().any(|&l| l != IGNORE);
    let train: Vec<Example> = train.iter().filter(learnable).cloned().collect();
    let eval: Vec<Example> = eval.iter().filter(learnable).cloned().collect();
    if train.is_empty() {
        return Err(Error::Data(format!(
            "every example is cut at max_len {} before its reply starts: raise --max-len",
            cfg.max_len
        )));
    }
    let mut objective = CrossEntropy { train: &train, eval: &eval };
    run(model, &mut objective, cfg, base_name, out, resume, on_progress)
}

/// What a run minimizes, over training items (examples, or preference pairs) that the loop
/// picks by index: the loop owns steps, batches, the optimizer, checkpoints and progress.
pub(crate) trait Objective {
    /// Training items.
    fn len(&self) -> usize;
    /// Whether there is a held-out set to evaluate.
    fn has_eval(&self) -> bool;
    /// Prepares for a run on `model` once its trainable variables exist (before any step or
    /// evaluation; a resumed run's weights are not loaded yet).
    fn start(&mut self, _model: &Llama, _batch_size: usize) -> Result<()> {
        Ok(())
    }
    /// Sequences a micro-batch of `batch_size` items runs.
    fn sequences(&self, batch_size: usize) -> usize {
        batch_size
    }
    /// One micro-batch (items `batch`): its loss times `scale`, the gradients of that scaled
    /// loss, and the real tokens it ran.
    fn micro_step(
        &mut self,
        model: &Llama,
        batch: &[usize],
        seed: u64,
        recompute: Recompute,
        scale: f64,
    ) -> Result<(f64, GradStore, usize)>;
    /// The held-out loss.
    fn evaluate(&mut self, model: &Llama, batch_size: usize) -> Result<f64>;
    /// Figures gathered over the micro-steps since the last call (DPO's rewards).
    fn take_stats(&mut self) -> Option<api::train::PreferenceStats> {
        None
    }
}

/// Supervised fine-tuning: the causal-LM cross-entropy of the labelled tokens.
struct CrossEntropy<'a> {
    train: &'a [Example],
    eval: &'a [Example],
}

impl Objective for CrossEntropy<'_> {
    fn len(&self) -> usize {
        self.train.len()
    }

    fn has_eval(&self) -> bool {
        !self.eval.is_empty()
    }

    fn micro_step(
        &mut self,
        model: &Llama,
        batch: &[usize],
        seed: u64,
        recompute: Recompute,
        scale: f64,
    ) -> Result<(f64, GradStore, usize)> {
        let batch: Vec<&Example> = batch.iter().map(|&i| &self.train[i]).collect();
        let (ids, labels, real) = collate(&batch, model.device())?;
        let (loss, g) = gradients(model, &ids, &labels, seed, recompute, scale)?;
        Ok((loss, g, real))
    }

    fn evaluate(&mut self, model: &Llama, batch_size: usize) -> Result<f64> {
        evaluate(model, self.eval, batch_size)
    }
}

/// The training loop over `objective`'s items; see [`train`].
pub(crate) fn run(
    model: &mut Llama,
    objective: &mut dyn Objective,
    cfg: &TrainConfig,
    base_name: &str,
    out: &Path,
    resume: Option<&Path>,
    on_progress: &mut dyn FnMut(&Progress) -> bool,
) -> Result<Summary> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let dev = model.device().clone();
    let params = prepare(model, &cfg.method, cfg.precision, cfg.seed)?;
    objective.start(model, cfg.batch_size)?;
    let n = objective.len();
    let per_step = cfg.batch_size.max(1) * cfg.grad_accum.max(1);
    let steps_per_epoch = n.div_ceil(per_step);
    let total = cfg.steps.unwrap_or(steps_per_epoch * cfg.epochs.max(1));
    let mut opt = AdamW::new(params.vars.clone(), cfg.adamw)?;
    let rows = objective.sequences(cfg.batch_size.max(1));
    let recompute = recompute_for(model, cfg.gradient_checkpointing, rows, cfg.max_len);
    let mut state = State { step: 0, seed: cfg.seed, losses: Vec::new(), eval_loss_before: None };
    if let Some(dir) = resume {
        let ckpt = latest_checkpoint(dir)?
            .ok_or_else(|| Error::Data(format!("no checkpoint in {}", dir.display())))?;
        state = load_checkpoint(&ckpt, &params, &mut opt, &dev)?;
    } else if objective.has_eval() {
        state.eval_loss_before = Some(objective.evaluate(model, cfg.batch_size)?);
    }
    let started = Instant::now();
    let first_step = state.step;
    let mut stopped = false;
    let mut last_ckpt: Option<PathBuf> = None;
    while state.step < total {
        let step = state.step;
        let lr = lr_at(cfg.adamw.lr, step, cfg.warmup_steps, total, cfg.schedule);
        let t0 = Instant::now();
        let mut grads: Option<GradStore> = None;
        let (mut loss_sum, mut real_tokens) = (0f64, 0usize);
        for micro in 0..cfg.grad_accum.max(1) {
            let batch = micro_batch(n, cfg, step, micro);
            let seed = mix(cfg.seed, step as u64, micro as u64);
            let scale = 1.0 / cfg.grad_accum.max(1) as f64;
            let (loss, g, real) = objective.micro_step(model, &batch, seed, recompute, scale)?;
            real_tokens += real;
            loss_sum += loss;
            grads = Some(match grads {
                None => g,
                Some(mut acc) => {
                    for (_, v) in &params.vars {
                        if let Some(new) = g.get(v.as_tensor()) {
                            let sum = match acc.remove(v.as_tensor()) {
                                Some(old) => (old + new)?,
                                None => new.clone(),
                            };
                            acc.insert(v.as_tensor(), sum);
                        }
                    }
                    acc
                }
            });
        }
        let mut grads = grads.ok_or_else(|| Error::Data("empty step".into()))?;
        let grad_norm = clip_grad_norm(&mut grads, &params.vars, cfg.max_grad_norm)?;
        opt.step(&grads, lr)?;
        drop(grads);
        // The step's own work: an evaluation or a checkpoint after it is not training speed.
        let step_seconds = t0.elapsed().as_secs_f64();
        state.step += 1;
        state.losses.push(loss_sum);
        let done = state.step == total;
        let eval_loss = if objective.has_eval()
            && (done || (cfg.eval_every > 0 && state.step.is_multiple_of(cfg.eval_every)))
        {
            Some(objective.evaluate(model, cfg.batch_size)?)
        } else {
            None
        };
        let checkpoint =
            if cfg.checkpoint_every > 0 && state.step.is_multiple_of(cfg.checkpoint_every) && !done
            {
                let p = save_checkpoint(out, model, cfg, &params, &opt, &state, base_name)?;
                last_ckpt = Some(p.clone());
                Some(p.display().to_string())
            } else {
                None
            };
        let elapsed = started.elapsed().as_secs_f64();
        let per = elapsed / (state.step - first_step) as f64;
        let progress = Progress {
            step: state.step,
            total_steps: total,
            epoch: state.step as f64 / steps_per_epoch as f64,
            loss: loss_sum,
            eval_loss,
            lr,
            grad_norm,
            tokens_per_second: real_tokens as f64 / step_seconds.max(1e-9),
            memory_bytes: memory_stats::memory_stats().map(|m| m.physical_mem as u64).unwrap_or(0),
            elapsed_seconds: elapsed,
            eta_seconds: per * (total - state.step) as f64,
            checkpoint,
            preference: objective.take_stats(),
        };
        if !on_progress(&progress) && !done {
            // Cooperative stop: keep what was learned so far, resumable.
            if last_ckpt
                .as_deref()
                .map(|p| !p.ends_with(checkpoint_name(state.step)))
                .unwrap_or(true)
            {
                save_checkpoint(out, model, cfg, &params, &opt, &state, base_name)?;
            }
            stopped = true;
            break;
        }
    }
    let output = save_result(out, model, cfg, &params, base_name)?;
    let eval_loss_after = if stopped || !objective.has_eval() {
        None
    } else {
        Some(objective.evaluate(model, cfg.batch_size)?)
    };
    Ok(Summary {
        steps: state.step,
        stopped,
        eval_loss_before: state.eval_loss_before,
        eval_loss_after,
        losses: state.losses,
        trainable_parameters: params.count(),
        output: output.display().to_string(),
    })
}

/// Readies `model` for `method` in `precision`: QLoRA's projections quantized, the frozen
/// tensors cast, then the trainable variables made (LoRA pairs seeded by `seed`, or every
/// weight). Full fine-tuning trains in f32 only (bf16 weights would need f32 master copies).
pub fn prepare(
    model: &mut Llama,
    method: &Method,
    precision: Precision,
    seed: u64,
) -> Result<adapter::Params> {
    if *method == Method::Full && precision != Precision::F32 {
        return Err(Error::Data(format!(
            "full fine-tuning trains in f32 only (bf16 weights would need f32 master copies): use --dtype f32, not {}",
            precision.name()
        )));
    }
    if let Method::Qlora { quant, .. } = method {
        model.quantize_projections(quant.ggml())?;
    }
    model.cast_frozen(precision.dtype())?;
    let dev = model.device().clone();
    Ok(match method.lora() {
        Some(l) => adapter::add_lora(model, l, seed, &dev)?,
        None => adapter::make_full(model)?,
    })
}

/// The blocks a run recomputes: none without checkpointing; with, as few as let the kept
/// values of the others fit half the memory free now ([`recompute_within`]).
pub fn recompute_for(model: &Llama, checkpointing: bool, rows: usize, t: usize) -> Recompute {
    match checkpointing {
        false => Recompute::Nothing,
        true => {
            let budget = crate::device::memory_available(model.device()) / 2;
            recompute_within(model, rows, t, budget)
        }
    }
}

/// With checkpointing, the blocks a run recomputes: the first ones, until the values of the
/// rest fit `budget` bytes (so a run that fits keeps everything and runs at full speed, and
/// one that does not still fits), for micro-batches of `rows` sequences of up to `t` tokens.
pub fn recompute_within(model: &Llama, rows: usize, t: usize, budget: u64) -> Recompute {
    let elem = model.dtype().size_in_bytes();
    let mut left = budget;
    let mut kept = 0;
    for layer in model.layers.iter().rev() {
        let cost = crate::models::train_block::keeping_costs(&model.cfg, layer, rows, t, elem);
        if cost > left {
            break;
        }
        left -= cost;
        kept += 1;
    }
    match model.layers.len() - kept {
        0 => Recompute::Nothing,
        n if n == model.layers.len() => Recompute::All,
        n => Recompute::First(n),
    }
}

/// One micro-batch's training pass: the loss (times `scale`) with dropout from `seed`, and the
/// gradients of that scaled loss, including those found when replaying checkpointed blocks.
pub fn gradients(
    model: &Llama,
    ids: &Tensor,
    labels: &Tensor,
    seed: u64,
    recompute: Recompute,
    scale: f64,
) -> Result<(f64, GradStore)> {
    gradients_in(model, ids, labels, train_ctx(seed, recompute), scale)
}

/// [`gradients`] with every decoder block through candle's autograd: the reference the
/// written-out LoRA blocks are tested against.
#[doc(hidden)]
pub fn gradients_autograd(
    model: &Llama,
    ids: &Tensor,
    labels: &Tensor,
    seed: u64,
    scale: f64,
) -> Result<(f64, GradStore)> {
    gradients_in(model, ids, labels, TrainCtx::autograd(seed), scale)
}

fn gradients_in(
    model: &Llama,
    ids: &Tensor,
    labels: &Tensor,
    mut ctx: TrainCtx,
    scale: f64,
) -> Result<(f64, GradStore)> {
    let (loss, _) = causal_lm_loss(model, ids, labels, Pass::Train(&mut ctx))?;
    let scaled = (loss * scale)?;
    let g = backward(&scaled, &ctx)?;
    // Read after the backward pass is queued: on a GPU, reading earlier would idle it.
    let value = scaled.to_scalar::<f32>()? as f64;
    Ok((value, g))
}

/// The dropout (and checkpointing) context of one micro-batch.
pub(crate) fn train_ctx(seed: u64, recompute: Recompute) -> TrainCtx {
    TrainCtx::recomputing(seed, recompute)
}

/// The gradients of the scalar `loss`, with those that checkpointed blocks found in `ctx`
/// while replaying added in.
pub(crate) fn backward(loss: &Tensor, ctx: &TrainCtx) -> Result<GradStore> {
    let mut g = loss.backward()?;
    for (t, new) in ctx.take_gradients() {
        let sum = match g.remove(&t) {
            Some(old) => (old + new)?,
            None => new,
        };
        g.insert(&t, sum);
    }
    Ok(g)
}

/// The order in which epoch `epoch` visits `n` training examples (a seeded shuffle): example
/// `k` of the run (counting micro-batch by micro-batch) is `order(k / n)[k % n]`. The
/// estimate simulates a run's batches with it.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(mix(seed, epoch as u64, u64::MAX)));
    order
}

/// The items (of `n`) of micro-batch `micro` of optimizer step `step`: epochs are seeded
/// shuffles.
fn micro_batch(n: usize, cfg: &TrainConfig, step: usize, micro: usize) -> Vec<usize> {
    let bs = cfg.batch_size.max(1);
    let first = (step * cfg.grad_accum.max(1) + micro) * bs;
    // A batch spans at most two epochs; shuffle each epoch's order once, not once per example.
    let mut orders: Vec<(usize, Vec<usize>)> = Vec::with_capacity(2);
    (first..first + bs)
        .map(|k| {
            let (epoch, i) = (k / n, k % n);
            if orders.last().is_none_or(|(e, _)| *e != epoch) {
                orders.push((epoch, epoch_order(n, cfg.seed, epoch)));
            }
            let (_, order) = &orders[orders.len() - 1];
            order[i]
        })
        .collect()
}

/// A well-spread seed from three numbers (splitmix64 finalizer).
fn mix(a: u64, b: u64, c: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ c.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn checkpoint_name(step: usize) -> String {
    format!("step-{step:06}")
}

/// The newest complete checkpoint under `dir/checkpoints`.
pub fn latest_checkpoint(dir: &Path) -> Result<Option<PathBuf>> {
    Ok(checkpoints(&dir.join("checkpoints")).pop())
}

/// The complete checkpoints of the run whose output folder is `dir`, oldest first, with the
/// step each was saved at.
pub fn list_checkpoints(dir: &Path) -> Vec<(usize, PathBuf)> {
    checkpoints(&dir.join("checkpoints"))
        .into_iter()
        .filter_map(|p| {
            let step = p.file_name()?.to_str()?.strip_prefix("step-")?.parse().ok()?;
            Some((step, p))
        })
        .collect()
}

/// Complete checkpoints under `root`, oldest first (a `.partial` folder is an interrupted write).
fn checkpoints(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("step-") && !n.ends_with(".partial"))
        })
        .filter(|p| p.join("state.json").exists())
        .collect();
    found.sort();
    found
}

/// Writes the trainable weights (a PEFT adapter, or the full model's tensors) into `dir`.
pub fn save_params(
    dir: &Path,
    model: &Llama,
    cfg: &TrainConfig,
    params: &Params,
    base: &str,
) -> Result<()> {
    match cfg.method.lora() {
        Some(l) => adapter::save_peft(model, l, base, dir),
        None => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            let tensors: HashMap<String, Tensor> =
                params.vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
            candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
            Ok(())
        }
    }
}

fn save_checkpoint(
    out: &Path,
    model: &Llama,
    cfg: &TrainConfig,
    params: &Params,
    opt: &AdamW,
    state: &State,
    base: &str,
) -> Result<PathBuf> {
    let root = out.join("checkpoints");
    let name = checkpoint_name(state.step);
    let tmp = root.join(format!("{name}.partial"));
    let dest = root.join(&name);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    save_params(&tmp, model, cfg, params, base)?;
    candle_core::safetensors::save(&opt.state(), tmp.join("optimizer.safetensors"))?;
    let json = serde_json::to_vec_pretty(state).map_err(|e| Error::Data(e.to_string()))?;
    std::fs::write(tmp.join("state.json"), json).map_err(|e| Error::io(&tmp, e))?;
    let _ = std::fs::remove_dir_all(&dest);
    // The rename makes the checkpoint appear whole or not at all.
    std::fs::rename(&tmp, &dest).map_err(|e| Error::io(&dest, e))?;
    prune_checkpoints(&root, cfg.keep_checkpoints.max(1));
    Ok(dest)
}

fn prune_checkpoints(root: &Path, keep: usize) {
    let mut all = checkpoints(root);
    while all.len() > keep {
        let _ = std::fs::remove_dir_all(all.remove(0));
    }
}

fn load_checkpoint(dir: &Path, params: &Params, opt: &mut AdamW, dev: &Device) -> Result<State> {
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
    let state: State = serde_json::from_str(&text).map_err(|e| Error::bad(&state_path, e))?;
    let weights_path = if dir.join("adapter_model.safetensors").exists() {
        dir.join("adapter_model.safetensors")
    } else {
        dir.join("model.safetensors")
    };
    let weights = candle_core::safetensors::load(&weights_path, dev)
        .map_err(|e| Error::bad(&weights_path, e))?;
    for (name, var) in &params.vars {
        let t = weights
            .get(name)
            .ok_or_else(|| Error::bad(&weights_path, format!("{name} is missing")))?;
        var.set(t)?;
    }
    let opt_path = dir.join("optimizer.safetensors");
    let opt_state =
        candle_core::safetensors::load(&opt_path, dev).map_err(|e| Error::bad(&opt_path, e))?;
    opt.restore(&opt_state, state.step)?;
    Ok(state)
}

fn save_result(
    out: &Path,
    model: &Llama,
    cfg: &TrainConfig,
    params: &Params,
    base: &str,
) -> Result<PathBuf> {
    let dir = match cfg.method.lora() {
        Some(_) => out.join("adapter"),
        None => out.join("model"),
    };
    save_params(&dir, model, cfg, params, base)?;
    Ok(dir)
}
