//! The causal language-model loss, computed only where labels exist.

use candle_core::{D, Result, Tensor};

use crate::lora::TrainCtx;
use crate::models::llama::Llama;

/// Label value that masks a position out of the loss (PyTorch's `ignore_index`).
pub const IGNORE: i64 = -100;

/// Mean cross-entropy of predicting `labels[b, t+1]` from position `t`, over positions whose
/// label is not [`IGNORE`] (transformers' `ForCausalLMLoss`). `ids` and `labels` are `[b, t]`
/// (u32 and i64). Logits are computed only at those positions. Returns the loss and the number
/// of tokens it averages over.
pub fn causal_lm_loss(
    model: &Llama,
    ids: &Tensor,
    labels: &Tensor,
    train: Option<&mut TrainCtx>,
) -> Result<(Tensor, usize)> {
    let (b, t) = ids.dims2()?;
    let lab = labels.to_vec2::<i64>()?;
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for (bi, row) in lab.iter().enumerate() {
        for ti in 0..t.saturating_sub(1) {
            let y = row[ti + 1];
            if y != IGNORE {
                rows.push((bi * t + ti) as u32);
                targets.push(y as u32);
            }
        }
    }
    let n = rows.len();
    if n == 0 {
        candle_core::bail!("the batch has no label tokens to learn from");
    }
    let dev = ids.device();
    let hidden = model.hidden(ids, None, train)?;
    let hidden = hidden.reshape((b * t, hidden.dim(D::Minus1)?))?;
    let picked = hidden.index_select(&Tensor::new(rows, dev)?, 0)?;
    let logits = model.logits(&picked)?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let targets = Tensor::new(targets, dev)?.unsqueeze(1)?;
    let nll = logp.gather(&targets, 1)?.sum_all()?.neg()?;
    Ok(((nll / n as f64)?, n))
}
