//! The causal language-model loss, computed only where labels exist, with a chunked
//! cross-entropy that never holds more than [`CHUNK_ROWS`] rows of logits.

use candle_core::{D, Result, Tensor};

use crate::models::llama::{Llama, Pass};

/// Label value that masks a position out of the loss (PyTorch's `ignore_index`).
pub const IGNORE: i64 = -100;

/// Rows of logits computed at once on the CPU: 128 × a 49 k vocabulary is 25 MB, where a whole
/// batch's logits and their softmax intermediates take gigabytes.
pub const CHUNK_ROWS: usize = 128;

/// Rows at once on a GPU (200 MB at 49 k): a 128-row product leaves most of a GPU idle, and
/// each chunk costs a dozen kernel launches.
pub const GPU_CHUNK_ROWS: usize = 1024;

fn chunk_rows(dev: &candle_core::Device) -> usize {
    if dev.is_cpu() { CHUNK_ROWS } else { GPU_CHUNK_ROWS }
}

/// Mean cross-entropy of predicting `labels[b, t+1]` from position `t`, over positions whose
/// label is not [`IGNORE`] (transformers' `ForCausalLMLoss`). `ids` and `labels` are `[b, t]`
/// (u32 and i64). Logits are computed only at those positions, a chunk at a time. Returns the
/// loss and the number of tokens it averages over.
pub fn causal_lm_loss(
    model: &Llama,
    ids: &Tensor,
    labels: &Tensor,
    pass: Pass,
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
    let hidden = model.hidden(ids, None, pass)?;
    let hidden = hidden.reshape((b * t, hidden.dim(D::Minus1)?))?;
    let picked = hidden.index_select(&Tensor::new(rows, dev)?, 0)?;
    let Some(head) = model.lm_head.weight.as_dense() else {
        candle_core::bail!("the LM head must be dense");
    };
    let nll = cross_entropy_sum(&picked, head, &targets)?;
    Ok(((nll / n as f64)?, n))
}

/// Per row of `ids` and `labels` (`[b, t]`, as for [`causal_lm_loss`]): the summed
/// cross-entropy of its label tokens, `−Σ log p(label)`, as a `[b]` f32 tensor that is
/// differentiable through the hidden states (the head must be frozen), and each row's number of
/// label tokens. A row without any counts 0. This is the sequence log-probability (negated)
/// that DPO compares and perplexity averages; with [`Pass::Train`] the gradient of any function
/// of the rows reaches the model through the same checkpointed blocks as the training loss.
pub fn sequence_nll(
    model: &Llama,
    ids: &Tensor,
    labels: &Tensor,
    pass: Pass,
) -> Result<(Tensor, Vec<usize>)> {
    let (b, t) = ids.dims2()?;
    let lab = labels.to_vec2::<i64>()?;
    let (mut rows, mut targets, mut group) = (Vec::new(), Vec::new(), Vec::new());
    let mut counts = vec![0usize; b];
    for (bi, row) in lab.iter().enumerate() {
        for ti in 0..t.saturating_sub(1) {
            let y = row[ti + 1];
            if y != IGNORE {
                rows.push((bi * t + ti) as u32);
                targets.push(y as u32);
                group.push(bi as u32);
                counts[bi] += 1;
            }
        }
    }
    let dev = ids.device();
    if rows.is_empty() {
        return Ok((Tensor::zeros(b, candle_core::DType::F32, dev)?, counts));
    }
    let hidden = model.hidden(ids, None, pass)?;
    let hidden = hidden.reshape((b * t, hidden.dim(D::Minus1)?))?;
    let picked = hidden.index_select(&Tensor::new(rows, dev)?, 0)?;
    let Some(head) = model.lm_head.weight.as_dense() else {
        candle_core::bail!("the LM head must be dense");
    };
    Ok((cross_entropy_groups(&picked, head, &targets, &group, b)?, counts))
}

/// Per group: `Σ −log softmax(x·wᵀ)[target]` over its rows (`group[i]` is row `i`'s, below
/// `groups`), a `[groups]` f32 tensor differentiable in `x`; `w` must not be tracked (a frozen
/// head). As in [`cross_entropy_sum`], each row's gradient `(softmax − one-hot)·w` is computed
/// while its logits exist; the backward pass scales each row's by its group's incoming
/// gradient, so any function of the group sums backpropagates exactly.
pub fn cross_entropy_groups(
    x: &Tensor,
    w: &Tensor,
    targets: &[u32],
    group: &[u32],
    groups: usize,
) -> Result<Tensor> {
    let (n, _) = x.dims2()?;
    if targets.len() != n || group.len() != n {
        candle_core::bail!(
            "cross_entropy_groups: {} targets and {} groups for {n} rows",
            targets.len(),
            group.len()
        );
    }
    if let Some(&g) = group.iter().find(|&&g| g as usize >= groups) {
        candle_core::bail!("cross_entropy_groups: group {g} of {groups}");
    }
    if w.track_op() {
        candle_core::bail!("per-sequence log-probabilities need a frozen head (LoRA, not full)");
    }
    let want_x = x.track_op();
    let (x0, w0) = (x.detach(), w.detach());
    let (dev, f32) = (x.device(), candle_core::DType::F32);
    let mut sums = vec![0f64; groups];
    let mut dx = Vec::new();
    let rows = chunk_rows(dev);
    let column = target_column(targets, dev)?;
    for (start, chunk) in (0..n).step_by(rows).zip(targets.chunks(rows)) {
        let xc = x0.narrow(0, start, chunk.len())?;
        let logits = crate::ops::matmul(&xc, &w0.t()?)?.to_dtype(f32)?;
        let (losses, d) = match cpu_rows(&logits, chunk)? {
            Some(found) => found,
            None => {
                let (losses, d) = device_rows(&logits, &column.narrow(0, start, chunk.len())?)?;
                (losses.to_vec1::<f32>()?.into_iter().map(f64::from).collect(), d)
            }
        };
        for (l, &g) in losses.iter().zip(&group[start..start + chunk.len()]) {
            sums[g as usize] += l;
        }
        if want_x {
            dx.push(crate::ops::matmul(&d.to_dtype(x.dtype())?, &w0)?);
        }
    }
    let value = Tensor::from_vec(sums.iter().map(|&s| s as f32).collect(), groups, dev)?;
    if !want_x {
        return Ok(value);
    }
    let dx = Tensor::cat(&dx, 0)?;
    let group = Tensor::new(group, dev)?;
    let bwd = move |_: &Tensor, _: &Tensor, g: &Tensor| {
        let per_row = g.to_dtype(dx.dtype())?.index_select(&group, 0)?.unsqueeze(1)?;
        Ok(Some(dx.broadcast_mul(&per_row)?))
    };
    crate::ops::precomputed1(x, value, Box::new(bwd))
}

/// `Σ_rows −log softmax(x·wᵀ)[target]` for `x` `[n, hidden]` and `w` `[vocab, hidden]`,
/// differentiable in both. Works through [`CHUNK_ROWS`] rows of logits at a time and never holds
/// more. The loss is the graph's last op, so its gradient is the gradient of this sum times one
/// scalar: each chunk's `softmax − one-hot` is multiplied by `w` (and by `x` when `w` trains)
/// while its logits are at hand, and the backward pass only scales the result. That costs
/// `[n, hidden]` floats between the passes and saves recomputing the logits (one of the three
/// head-sized products per step). A pass that wants no gradient (evaluation) computes none.
pub fn cross_entropy_sum(x: &Tensor, w: &Tensor, targets: &[u32]) -> Result<Tensor> {
    let (n, _) = x.dims2()?;
    if targets.len() != n {
        candle_core::bail!("cross_entropy_sum: {} targets for {n} rows", targets.len());
    }
    let (want_x, want_w) = (x.track_op(), w.track_op());
    let (x0, w0) = (x.detach(), w.detach());
    // Logits leave a bf16 product as f32: the log-sum-exp over the vocabulary, the loss and its
    // gradient are f32 whatever the activations are (transformers upcasts logits the same way).
    let (dev, f32) = (x.device(), candle_core::DType::F32);
    let mut total = Tensor::zeros((), f32, dev)?;
    let (mut dx, mut dw) = (Vec::new(), None::<Tensor>);
    let rows = chunk_rows(dev);
    let column = target_column(targets, dev)?;
    for (start, chunk) in (0..n).step_by(rows).zip(targets.chunks(rows)) {
        let xc = x0.narrow(0, start, chunk.len())?;
        let logits = crate::ops::matmul(&xc, &w0.t()?)?.to_dtype(f32)?;
        // d/dlogits of (lse − logit[target]) = softmax − one-hot, then in the activations'
        // type for the products.
        let d = if let Some((losses, d)) = cpu_rows(&logits, chunk)? {
            total = (total + losses.iter().sum::<f64>())?;
            d
        } else {
            let (losses, d) = device_rows(&logits, &column.narrow(0, start, chunk.len())?)?;
            total = (total + losses.sum_all()?)?;
            d
        };
        if !(want_x || want_w) {
            continue;
        }
        let d = d.to_dtype(x.dtype())?;
        if want_x {
            dx.push(crate::ops::matmul(&d, &w0)?);
        }
        if want_w {
            let dt = d.t()?;
            dw = Some(crate::ops::products_sum(dw.as_ref(), &[(&dt, &xc)])?);
        }
    }
    let dx = if want_x { Some(Tensor::cat(&dx, 0)?) } else { None };
    let bwd = move |_: &Tensor, _: &Tensor, g: &Tensor| {
        let scaled = |d: &Option<Tensor>| -> Result<Option<Tensor>> {
            d.as_ref().map(|d| d.broadcast_mul(&g.to_dtype(d.dtype())?)).transpose()
        };
        Ok((scaled(&dx)?, scaled(&dw)?))
    };
    crate::ops::precomputed2(x, w, total, Box::new(bwd))
}

/// On the CPU (f32 logits `[rows, vocab]`): each row's `lse − logit[target]` and `softmax −
/// one-hot`, one pass over each row (candle's ops take ten over the whole chunk). `None`
/// elsewhere.
fn cpu_rows(logits: &Tensor, targets: &[u32]) -> Result<Option<(Vec<f64>, Tensor)>> {
    use candle_core::{CpuStorage, Storage};
    use rayon::prelude::*;
    if !logits.device().is_cpu() || logits.dtype() != candle_core::DType::F32 {
        return Ok(None);
    }
    let logits = logits.contiguous()?;
    let (rows, vocab) = logits.dims2()?;
    let (storage, layout) = logits.storage_and_layout();
    let (Storage::Cpu(CpuStorage::F32(all)), Some((from, to))) =
        (&*storage, layout.contiguous_offsets())
    else {
        return Ok(None);
    };
    if let Some(&t) = targets.iter().find(|&&t| t as usize >= vocab) {
        candle_core::bail!("cross-entropy: target {t} outside a vocabulary of {vocab}");
    }
    let mut d = vec![0f32; rows * vocab];
    let losses: Vec<f64> = d
        .par_chunks_mut(vocab)
        .zip(all[from..to].par_chunks(vocab))
        .zip(targets.par_iter())
        .map(|((d, x), &t)| {
            let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            for (d, &x) in d.iter_mut().zip(x) {
                *d = x - max;
            }
            crate::vmath::exp_in_place(d);
            let sum: f64 = d.iter().map(|&e| f64::from(e)).sum();
            let inv = (1.0 / sum) as f32;
            d.iter_mut().for_each(|e| *e *= inv);
            d[t as usize] -= 1.0;
            sum.ln() + f64::from(max) - f64::from(x[t as usize])
        })
        .collect();
    drop(storage);
    Ok(Some((losses, Tensor::from_vec(d, (rows, vocab), logits.device())?)))
}

/// [`cpu_rows`] on any device, from candle's ops: one fused softmax kernel (f32 accumulation)
/// for both the loss, −log p[target] per row (`[rows]`), and the gradient; `column` holds the
/// targets `[rows, 1]`. p[target] is floored at the smallest normal f32, so a token whose
/// target logit trails by more than ~87 counts 87.3 instead of its true loss (its gradient is
/// exact).
fn device_rows(logits: &Tensor, column: &Tensor) -> Result<(Tensor, Tensor)> {
    let probs = candle_nn::ops::softmax_last_dim(logits)?;
    let picked = probs.gather(column, 1)?.clamp(f32::MIN_POSITIVE, 1f32)?.log()?;
    let minus_one = Tensor::full(-1f32, column.shape(), logits.device())?;
    Ok((picked.squeeze(1)?.neg()?, probs.scatter_add(column, &minus_one, 1)?))
}

fn target_column(targets: &[u32], dev: &candle_core::Device) -> Result<Tensor> {
    Tensor::new(targets, dev)?.unsqueeze(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn the_cpu_rows_and_the_device_form_agree() {
        let dev = Device::Cpu;
        let logits = Tensor::randn(0f32, 4., (5, 300), &dev).unwrap();
        let targets = [0u32, 299, 17, 150, 3];
        let (losses, d) = cpu_rows(&logits, &targets).unwrap().unwrap();
        let sum = losses.iter().sum::<f64>() as f32;
        let (dlosses, dd) = device_rows(&logits, &target_column(&targets, &dev).unwrap()).unwrap();
        let dsum = dlosses.sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!((sum - dsum).abs() <= 1e-5 * sum.abs(), "{sum} vs {dsum}");
        assert!(crate::ops::tests::max_diff(&d, &dd) <= 1e-6);
    }

    #[test]
    fn grouped_cross_entropy_matches_log_softmax_per_group_in_value_and_gradient() {
        let dev = Device::Cpu;
        let n = CHUNK_ROWS + 45;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (n, 16), &dev).unwrap()).unwrap();
        let w = Tensor::randn(0f32, 1., (50, 16), &dev).unwrap();
        let targets: Vec<u32> = (0..n as u32).map(|i| (i * 11 + 5) % 50).collect();
        // Three groups of uneven sizes, interleaved across the chunk seam.
        let group: Vec<u32> = (0..n as u32).map(|i| (i * i) % 3).collect();
        let ours = cross_entropy_groups(x.as_tensor(), &w, &targets, &group, 3).unwrap();
        let logits = x.as_tensor().matmul(&w.t().unwrap()).unwrap();
        let logp = candle_nn::ops::log_softmax(&logits, 1).unwrap();
        let col = Tensor::new(targets.as_slice(), &dev).unwrap().unsqueeze(1).unwrap();
        let nll = logp.gather(&col, 1).unwrap().squeeze(1).unwrap().neg().unwrap();
        let one_hot: Vec<f32> =
            (0..3).flat_map(|g| group.iter().map(move |&r| f32::from(u8::from(r == g)))).collect();
        let one_hot = Tensor::from_vec(one_hot, (3, n), &dev).unwrap();
        let reference = one_hot.matmul(&nll.unsqueeze(1).unwrap()).unwrap().squeeze(1).unwrap();
        // Sums of ~60 terms near 5: f32's rounding, relative to their size.
        let size = reference.abs().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        let d = crate::ops::tests::max_diff(&ours, &reference);
        assert!(d <= 1e-5 * size, "group sums differ by {d} (largest {size})");
        // A weight per group, as DPO's gradient gives each sequence.
        let weights = Tensor::new(&[0.5f32, -2.0, 3.0], &dev).unwrap();
        let g1 = (ours * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (reference * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let d = crate::ops::tests::max_diff(
            g1.get(x.as_tensor()).unwrap(),
            g2.get(x.as_tensor()).unwrap(),
        );
        assert!(d <= 1e-5, "gradient differs by {d}");
    }

    #[test]
    fn chunked_cross_entropy_matches_log_softmax_in_value_and_gradients() {
        let dev = Device::Cpu;
        // More rows than a chunk, so the chunk seams are crossed.
        let n = CHUNK_ROWS * 2 + 37;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (n, 16), &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 1., (50, 16), &dev).unwrap()).unwrap();
        let targets: Vec<u32> = (0..n as u32).map(|i| (i * 7 + 3) % 50).collect();
        let ours = cross_entropy_sum(x.as_tensor(), w.as_tensor(), &targets).unwrap();
        let logits = x.as_tensor().matmul(&w.as_tensor().t().unwrap()).unwrap();
        let logp = candle_nn::ops::log_softmax(&logits, 1).unwrap();
        let col = Tensor::new(targets.as_slice(), &dev).unwrap().unsqueeze(1).unwrap();
        let reference = logp.gather(&col, 1).unwrap().sum_all().unwrap().neg().unwrap();
        let (a, b) = (ours.to_scalar::<f32>().unwrap(), reference.to_scalar::<f32>().unwrap());
        assert!((a - b).abs() <= 1e-5 * b.abs(), "{a} vs {b}");
        // Scale the loss so the incoming gradient is not 1.
        let g1 = (ours * 0.5).unwrap().backward().unwrap();
        let g2 = (reference * 0.5).unwrap().backward().unwrap();
        for v in [&x, &w] {
            let d = crate::ops::tests::max_diff(
                g1.get(v.as_tensor()).unwrap(),
                g2.get(v.as_tensor()).unwrap(),
            );
            assert!(d <= 1e-5, "gradient differs by {d}");
        }
    }
}
