//! Sequence log-probabilities: how likely a model finds the labelled tokens of each tokenized
//! conversation (the assistant's replies, [`crate::train::tokenize`]'s labels), and the
//! perplexity of a set. An inference pass: no graph is built, and a LoRA adapter on the model
//! (loaded with [`crate::adapter::load_peft`]) takes part without dropout.

use crate::Result;
use crate::loss::sequence_nll;
use crate::models::llama::{Llama, Pass};
use crate::train::{Example, collate};

/// One conversation's score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// `Σ log p(token | the tokens before it)` over its label tokens (0 when it has none).
    pub logprob: f64,
    /// Its label tokens (each predicted from the position before it).
    pub tokens: usize,
}

/// The score of each example, in order, running `batch_size` examples at a time (similar
/// lengths together, so little of a batch is padding).
pub fn sequence_logprobs(
    model: &Llama,
    examples: &[Example],
    batch_size: usize,
) -> Result<Vec<Scored>> {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| examples[i].ids.len());
    let mut out = vec![Scored { logprob: 0.0, tokens: 0 }; examples.len()];
    for chunk in order.chunks(batch_size.max(1)) {
        let batch: Vec<&Example> = chunk.iter().map(|&i| &examples[i]).collect();
        let (ids, labels, _) = collate(&batch, model.device())?;
        let (nll, counts) = sequence_nll(model, &ids, &labels, Pass::Infer)?;
        let nll = nll.to_vec1::<f32>()?;
        for ((&i, l), n) in chunk.iter().zip(nll).zip(counts) {
            out[i] = Scored { logprob: -f64::from(l), tokens: n };
        }
    }
    Ok(out)
}

/// `exp(−Σ logprob / Σ tokens)` over the set: the mean per-token cross-entropy,
/// exponentiated. NaN when no example has a label token.
pub fn perplexity(scores: &[Scored]) -> f64 {
    let tokens: usize = scores.iter().map(|s| s.tokens).sum();
    if tokens == 0 {
        return f64::NAN;
    }
    (-scores.iter().map(|s| s.logprob).sum::<f64>() / tokens as f64).exp()
}
