//! Direct preference optimization (Rafailov et al., 2023; the sigmoid loss of TRL's
//! `DPOTrainer`): preference pairs in, a LoRA adapter out, through the training loop of
//! [`crate::train`] (steps, batches, checkpoints, resume, progress are the same).
//!
//! Per pair, with `π` the policy's and `r` the reference's summed log-probability of a
//! completion's tokens: `loss = −log σ(β·((π_c − r_c) − (π_r − r_r)))`, averaged over pairs.
//! Its derivative with respect to each sequence's log-probability is one number per sequence
//! (`∓β·σ(−z)/n`), so the gradient runs through the same checkpointed blocks and chunked
//! cross-entropy as supervised training: [`crate::loss::sequence_nll`] gives each sequence's
//! summed NLL with its gradient precomputed per token, scaled in the backward pass by the
//! sequence's weight.
//!
//! The reference model is the base without the adapter: its log-probabilities are computed
//! once, when the run starts, on [`without_adapters`]'s copy of the model, whose projections
//! have no LoRA pair at all. Whatever the adapter holds (fresh, resumed from a checkpoint, or
//! loaded), it cannot reach them.

use std::path::Path;

use candle_core::Tensor;
use candle_core::backprop::GradStore;
use serde::Deserialize;

use crate::bundle::Bundle;
use crate::loss::{IGNORE, sequence_nll};
use crate::models::llama::{Llama, Pass};
use crate::template::Message;
use crate::train::{Example, Method, Progress, Recompute, Summary, TrainConfig, collate};
use crate::{Error, Result};

pub use api::train::{DEFAULT_DPO_BETA, PreferenceStats};

/// One preference: a prompt, and the completion preferred over the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preference {
    /// The conversation so far (ends with the user's turn).
    pub prompt: Vec<Message>,
    /// The preferred completion (assistant messages).
    pub chosen: Vec<Message>,
    /// The other one.
    pub rejected: Vec<Message>,
}

/// A preference tokenized with the model's chat template: prompt + chosen, prompt + rejected,
/// labels on the completion's tokens only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// Prompt and chosen completion.
    pub chosen: Example,
    /// Prompt and rejected completion.
    pub rejected: Example,
}

/// Summed log-probabilities of a pair's two completions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairLogprobs {
    /// Of the chosen completion's tokens.
    pub chosen: f64,
    /// Of the rejected one's.
    pub rejected: f64,
}

/// DPO's loss over a set of pairs and its derivatives.
#[derive(Debug, Clone, PartialEq)]
pub struct DpoLoss {
    /// Mean over the pairs of `−log σ(β·((π_c − r_c) − (π_r − r_r)))`.
    pub loss: f64,
    /// Rewards, margins and accuracy.
    pub stats: PreferenceStats,
    /// Per pair, `∂loss/∂π_c` (the one of `π_r` is its negative).
    pub d_chosen: Vec<f64>,
}

/// Parses one line of TRL's preference format: `{"prompt": [...], "chosen": [...],
/// "rejected": [...]}` with lists of `{"role", "content"}` messages (conversational), or
/// strings (`prompt` one user message, `chosen` and `rejected` one assistant message each).
pub fn parse_preference_line(line: &str) -> std::result::Result<Preference, String> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Turns {
        Text(String),
        Messages(Vec<Message>),
    }
    #[derive(Deserialize)]
    struct Row {
        prompt: Option<Turns>,
        chosen: Option<Turns>,
        rejected: Option<Turns>,
    }
    let row: Row = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let turns = |t: Option<Turns>, key: &str, role: &str| match t {
        None => Err(format!("no \"{key}\": each line needs prompt, chosen and rejected")),
        Some(Turns::Text(s)) => Ok(vec![Message::new(role, &s)]),
        Some(Turns::Messages(m)) if m.is_empty() => Err(format!("\"{key}\" is empty")),
        Some(Turns::Messages(m)) => Ok(m),
    };
    let prompt = turns(row.prompt, "prompt", "user")?;
    let chosen = turns(row.chosen, "chosen", "assistant")?;
    let rejected = turns(row.rejected, "rejected", "assistant")?;
    for (key, c) in [("chosen", &chosen), ("rejected", &rejected)] {
        if !c.iter().any(|m| m.role == "assistant") {
            return Err(format!("\"{key}\" has no assistant message to score"));
        }
    }
    Ok(Preference { prompt, chosen, rejected })
}

/// Reads a preference JSONL file (see [`parse_preference_line`]); errors name file and line.
pub fn read_preferences(path: &Path) -> Result<Vec<Preference>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let p = parse_preference_line(line)
            .map_err(|e| Error::Data(format!("{}:{}: {e}", path.display(), i + 1)))?;
        out.push(p);
    }
    if out.is_empty() {
        return Err(Error::Data(format!("{}: no preference pairs", path.display())));
    }
    Ok(out)
}

/// Tokenizes `p` with the model's chat template, cut at `max_len` tokens.
pub fn tokenize_pair(b: &Bundle, p: &Preference, max_len: usize) -> Result<Pair> {
    let side = |completion: &[Message]| {
        let messages: Vec<Message> = p.prompt.iter().chain(completion).cloned().collect();
        crate::train::tokenize_completion(b, &messages, p.prompt.len(), max_len)
    };
    Ok(Pair { chosen: side(&p.chosen)?, rejected: side(&p.rejected)? })
}

/// A copy of `model` without any LoRA pair (the frozen tensors are shared, not copied): DPO's
/// reference model.
pub fn without_adapters(model: &Llama) -> Llama {
    let mut base = model.clone();
    for layer in &mut base.layers {
        for lin in layer.proj.values_mut() {
            lin.lora = None;
        }
    }
    base
}

/// The summed completion log-probabilities of each pair under `model` as it is (an inference
/// pass, no dropout), `batch_size` pairs at a time.
pub fn pair_logprobs(
    model: &Llama,
    pairs: &[Pair],
    batch_size: usize,
) -> Result<Vec<PairLogprobs>> {
    let mut out = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(batch_size.max(1)) {
        let (nll, _) = batch_nll(model, chunk, Pass::Infer)?;
        let nll = nll.to_vec1::<f32>()?;
        let n = chunk.len();
        out.extend((0..n).map(|i| PairLogprobs {
            chosen: -f64::from(nll[i]),
            rejected: -f64::from(nll[n + i]),
        }));
    }
    Ok(out)
}

/// The reference log-probabilities: [`pair_logprobs`] on [`without_adapters`]`(model)`.
pub fn reference_logprobs(
    model: &Llama,
    pairs: &[Pair],
    batch_size: usize,
) -> Result<Vec<PairLogprobs>> {
    pair_logprobs(&without_adapters(model), pairs, batch_size)
}

/// DPO's sigmoid loss, its rewards and derivatives, for pairs' policy and reference
/// log-probabilities (same order).
pub fn dpo_loss(policy: &[PairLogprobs], reference: &[PairLogprobs], beta: f64) -> DpoLoss {
    let n = policy.len().max(1) as f64;
    let (mut loss, mut stats) = (0.0, PreferenceStats::default());
    let mut d_chosen = Vec::with_capacity(policy.len());
    for (p, r) in policy.iter().zip(reference) {
        let (chosen, rejected) = (beta * (p.chosen - r.chosen), beta * (p.rejected - r.rejected));
        let z = chosen - rejected;
        // −log σ(z) = log(1 + e^−z), written so that neither branch overflows.
        loss += if z > 0.0 { (-z).exp().ln_1p() } else { -z + z.exp().ln_1p() };
        // d/dz of −log σ(z) is −σ(−z).
        let sigma_neg = 1.0 / (1.0 + z.exp());
        d_chosen.push(-beta * sigma_neg / n);
        stats.accuracy += f64::from(u8::from(chosen > rejected));
        stats.margin += z;
        stats.chosen += chosen;
        stats.rejected += rejected;
    }
    for v in [&mut stats.accuracy, &mut stats.margin, &mut stats.chosen, &mut stats.rejected] {
        *v /= n;
    }
    DpoLoss { loss: loss / n, stats, d_chosen }
}

/// One micro-batch of pairs: DPO's loss (times `scale`) with dropout from `seed`, and the
/// gradients of that scaled loss; also the real tokens run. `reference` holds each pair's
/// reference log-probabilities.
#[allow(clippy::too_many_arguments)]
pub fn gradients(
    model: &Llama,
    pairs: &[&Pair],
    reference: &[PairLogprobs],
    beta: f64,
    seed: u64,
    recompute: Recompute,
    scale: f64,
) -> Result<(DpoLoss, GradStore, usize)> {
    let mut ctx = crate::train::train_ctx(seed, recompute);
    let (nll, real) = batch_nll(model, pairs, Pass::Train(&mut ctx))?;
    let values = nll.to_vec1::<f32>()?;
    let n = pairs.len();
    let policy: Vec<PairLogprobs> = (0..n)
        .map(|i| PairLogprobs {
            chosen: -f64::from(values[i]),
            rejected: -f64::from(values[n + i]),
        })
        .collect();
    let mut loss = dpo_loss(&policy, reference, beta);
    // loss(π) with π = −nll: ∂/∂nll_c = −∂loss/∂π_c, ∂/∂nll_r = +∂loss/∂π_c.
    let weights: Vec<f32> = loss
        .d_chosen
        .iter()
        .map(|&d| (-d * scale) as f32)
        .chain(loss.d_chosen.iter().map(|&d| (d * scale) as f32))
        .collect();
    let weights = Tensor::from_vec(weights, 2 * n, nll.device())?;
    // A surrogate whose gradient is the loss's: Σ weight · nll.
    let surrogate = (nll * weights)?.sum_all()?;
    let g = crate::train::backward(&surrogate, &ctx)?;
    loss.loss *= scale;
    Ok((loss, g, real))
}

/// Trains `model` in place with DPO on `train`, evaluating DPO's loss on `eval`, writing
/// checkpoints and the adapter under `out` (as [`crate::train::train`] does; `cfg.method` must
/// be [`Method::Dpo`]). The batch size counts pairs, each two sequences.
#[allow(clippy::too_many_arguments)]
pub fn train(
    model: &mut Llama,
    train: &[Pair],
    eval: &[Pair],
    cfg: &TrainConfig,
    base_name: &str,
    out: &Path,
    resume: Option<&Path>,
    on_progress: &mut dyn FnMut(&Progress) -> bool,
) -> Result<Summary> {
    let Method::Dpo { beta, .. } = cfg.method else {
        return Err(Error::Data(format!("DPO needs the dpo method, not {}", cfg.method.name())));
    };
    if !(beta.is_finite() && beta > 0.0) {
        return Err(Error::Data(format!("DPO beta must be above 0, not {beta}")));
    }
    if train.is_empty() {
        return Err(Error::Data("no preference pairs to train on".into()));
    }
    // A completion cut at `max_len` before it starts has nothing to compare.
    let learnable =
        |p: &&Pair| [&p.chosen, &p.rejected].iter().all(|e| e.labels.iter().any(|&l| l != IGNORE));
    let train: Vec<Pair> = train.iter().filter(learnable).cloned().collect();
    let eval: Vec<Pair> = eval.iter().filter(learnable).cloned().collect();
    if train.is_empty() {
        return Err(Error::Data(format!(
            "every pair is cut at max_len {} before a completion starts: raise --max-len",
            cfg.max_len
        )));
    }
    let mut objective = Dpo {
        train: &train,
        eval: &eval,
        beta,
        reference: Vec::new(),
        eval_reference: Vec::new(),
        stats: (PreferenceStats::default(), 0),
    };
    crate::train::run(model, &mut objective, cfg, base_name, out, resume, on_progress)
}

/// Sequences `[chosen…, rejected…]` of `pairs` in one batch: each one's summed NLL (`[2n]`)
/// and the batch's real tokens.
fn batch_nll<P: std::borrow::Borrow<Pair>>(
    model: &Llama,
    pairs: &[P],
    pass: Pass,
) -> Result<(Tensor, usize)> {
    let batch: Vec<&Example> = pairs
        .iter()
        .map(|p| &p.borrow().chosen)
        .chain(pairs.iter().map(|p| &p.borrow().rejected))
        .collect();
    let (ids, labels, real) = collate(&batch, model.device())?;
    let (nll, _) = sequence_nll(model, &ids, &labels, pass)?;
    Ok((nll, real))
}

struct Dpo<'a> {
    train: &'a [Pair],
    eval: &'a [Pair],
    beta: f64,
    reference: Vec<PairLogprobs>,
    eval_reference: Vec<PairLogprobs>,
    /// Pair-weighted sums of the rewards since the last progress, and the pairs.
    stats: (PreferenceStats, usize),
}

impl crate::train::Objective for Dpo<'_> {
    fn len(&self) -> usize {
        self.train.len()
    }

    fn has_eval(&self) -> bool {
        !self.eval.is_empty()
    }

    fn sequences(&self, batch_size: usize) -> usize {
        // Each pair's chosen and rejected completions.
        2 * batch_size
    }

    fn start(&mut self, model: &Llama, batch_size: usize) -> Result<()> {
        self.reference = reference_logprobs(model, self.train, batch_size)?;
        self.eval_reference = reference_logprobs(model, self.eval, batch_size)?;
        Ok(())
    }

    fn micro_step(
        &mut self,
        model: &Llama,
        batch: &[usize],
        seed: u64,
        recompute: Recompute,
        scale: f64,
    ) -> Result<(f64, GradStore, usize)> {
        let pairs: Vec<&Pair> = batch.iter().map(|&i| &self.train[i]).collect();
        let reference: Vec<PairLogprobs> = batch.iter().map(|&i| self.reference[i]).collect();
        let (loss, g, real) =
            gradients(model, &pairs, &reference, self.beta, seed, recompute, scale)?;
        let (sum, count) = &mut self.stats;
        let k = pairs.len() as f64;
        sum.accuracy += loss.stats.accuracy * k;
        sum.margin += loss.stats.margin * k;
        sum.chosen += loss.stats.chosen * k;
        sum.rejected += loss.stats.rejected * k;
        *count += pairs.len();
        Ok((loss.loss, g, real))
    }

    fn evaluate(&mut self, model: &Llama, batch_size: usize) -> Result<f64> {
        let policy = pair_logprobs(model, self.eval, batch_size)?;
        Ok(dpo_loss(&policy, &self.eval_reference, self.beta).loss)
    }

    fn take_stats(&mut self) -> Option<PreferenceStats> {
        let (sum, count) = std::mem::take(&mut self.stats);
        (count > 0).then(|| {
            let n = count as f64;
            PreferenceStats {
                accuracy: sum.accuracy / n,
                margin: sum.margin / n,
                chosen: sum.chosen / n,
                rejected: sum.rejected / n,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_of_trl_preference_lines_parse() {
        let conv = r#"{"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello."}], "rejected": [{"role": "assistant", "content": "Go away."}]}"#;
        let p = parse_preference_line(conv).unwrap();
        assert_eq!(p.prompt.len(), 2);
        assert_eq!(p.chosen, vec![Message::new("assistant", "Hello.")]);
        let plain = r#"{"prompt": "Hi", "chosen": "Hello.", "rejected": "Go away."}"#;
        let p = parse_preference_line(plain).unwrap();
        assert_eq!(p.prompt, vec![Message::new("user", "Hi")]);
        assert_eq!(p.rejected, vec![Message::new("assistant", "Go away.")]);
    }

    #[test]
    fn malformed_preference_lines_say_what_is_wrong() {
        let check = |line: &str, want: &str| {
            let e = parse_preference_line(line).unwrap_err();
            assert!(e.contains(want), "{line}: {e}");
        };
        check(r#"{"prompt": "Hi", "chosen": "Hello."}"#, "no \"rejected\"");
        check(r#"{"prompt": "Hi", "chosen": [], "rejected": "x"}"#, "\"chosen\" is empty");
        check(
            r#"{"prompt": "Hi", "chosen": [{"role": "user", "content": "x"}], "rejected": "y"}"#,
            "\"chosen\" has no assistant message",
        );
        check(r#"{"prompt": 3, "chosen": "a", "rejected": "b"}"#, "did not match");
        check("not json", "expected");
    }

    #[test]
    fn read_preferences_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prefs.jsonl");
        let good = r#"{"prompt": "Hi", "chosen": "Hello.", "rejected": "Go away."}"#;
        std::fs::write(&path, format!("{good}\n\n{{\"prompt\": \"Hi\"}}\n")).unwrap();
        let e = read_preferences(&path).unwrap_err().to_string();
        assert!(e.contains("prefs.jsonl:3: no \"chosen\""), "{e}");
        std::fs::write(&path, "\n").unwrap();
        assert!(read_preferences(&path).unwrap_err().to_string().contains("no preference pairs"));
        std::fs::write(&path, format!("{good}\n{good}\n")).unwrap();
        assert_eq!(read_preferences(&path).unwrap().len(), 2);
    }

    #[test]
    fn the_loss_is_log_two_at_the_reference_and_its_slope_follows_the_margin() {
        let at = |c: f64, r: f64| PairLogprobs { chosen: c, rejected: r };
        let reference = [at(-10.0, -12.0), at(-5.0, -4.0)];
        let l = dpo_loss(&reference, &reference, 0.1);
        assert!((l.loss - 2f64.ln()).abs() < 1e-12);
        assert_eq!(l.d_chosen, vec![-0.1 * 0.5 / 2.0; 2]);
        assert_eq!(l.stats.accuracy, 0.0);
        // The chosen completion 20 nats likelier than at the reference: z = 0.1 × 20 = 2.
        let policy = [at(10.0, -12.0), at(-5.0, -4.0)];
        let l = dpo_loss(&policy[..1], &reference[..1], 0.1);
        assert!((l.loss - (1.0 + (-2f64).exp()).ln()).abs() < 1e-12);
        assert!((l.stats.margin - 2.0).abs() < 1e-12);
        assert_eq!(l.stats.accuracy, 1.0);
        // Far past either side, the loss neither overflows nor loses its value.
        let l = dpo_loss(&[at(-1e4, 0.0)], &[at(0.0, 0.0)], 1.0);
        assert_eq!(l.loss, 1e4);
        let l = dpo_loss(&[at(1e4, 0.0)], &[at(0.0, 0.0)], 1.0);
        assert_eq!(l.loss, 0.0);
    }
}
