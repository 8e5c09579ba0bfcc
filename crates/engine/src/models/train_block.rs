//! A decoder block of training (LoRA, QLoRA, full fine-tuning) with its backward pass written
//! out: the forward pass records no graph; the backward pass computes the input's gradient and
//! those of what trains (LoRA pairs; or every weight, bias and norm) with plain tensor ops, from
//! values the forward pass kept — with checkpointing a few costly ones, the rest recomputed;
//! without, all but the cheapest ([`written_out`]).
//!
//! Through candle's autograd every op of a block is a graph node whose gradient is accumulated
//! into a fresh zero tensor (a memset and an add per edge, attention's `[heads, t, t]` scores
//! included), and every LoRA pair is an op chain of its own. Written out, a block's backward is
//! its ~20 matrix products (products that share an input's gradient accumulate into one
//! output) and a handful of fused elementwise passes; on a GPU that is also a fraction of the
//! kernel launches, which bound small batches there.
//!
//! Same values and dropout masks as the autograd block ([`super::llama`]'s `block`), which
//! `written_out_gradients_equal_autograd_ones` and the checkpointing test hold it to.

use std::collections::HashMap;

use candle_core::{Result, Tensor};

use super::llama::{Block, BlockAt, Config};
use crate::lora::{Linear, TrainCtx};
use crate::ops::{self, Rotary};

/// Bytes that keeping `layer`'s values through a step (no recomputation) costs over
/// recomputing it, for `rows` sequences of `t` positions of `elem` bytes a value: what
/// [`Saved::All`] holds beyond [`Kept`].
pub(crate) fn keeping_costs(
    cfg: &Config,
    layer: &Block,
    rows: usize,
    t: usize,
    elem: usize,
) -> u64 {
    let (nh, hd) = (cfg.num_attention_heads, cfg.head_dim());
    let ranks: usize =
        layer.proj.values().filter_map(|l| l.lora.as_ref()).map(|l| l.a.dims()[0]).sum();
    let per_token = nh * t + nh * hd + ranks;
    (rows * t * per_token * elem) as u64
}

/// A block's LoRA pairs in the activations' type, cast once per step (not once per product):
/// `A`, and `B` already multiplied by the pair's scale.
type Pairs = HashMap<&'static str, (Tensor, Tensor)>;

fn pairs(layer: &Block, dtype: candle_core::DType) -> Result<Pairs> {
    let mut out = HashMap::new();
    for (name, lin) in &layer.proj {
        if let Some(l) = &lin.lora {
            let a = l.a.as_tensor().detach().to_dtype(dtype)?;
            let b = (l.b.as_tensor().detach() * l.scale)?.to_dtype(dtype)?;
            out.insert(*name, (a, b));
        }
    }
    Ok(out)
}

/// What a LoRA pair's backward needs: its (dropped-out) input, `input · Aᵀ`, and the mask.
struct LoraInput {
    z: Tensor,
    za: Tensor,
    mask: Option<Tensor>,
}

/// `base + x · Wᵀ + b + scale · B·A·dropout(x)` for `x` `[rows, in]`, with what the pair's
/// backward needs; the products accumulate into one output ([`ops::products_sum`]). Dropout
/// masks come from `ctx` in the order the autograd block draws them. Without `value`, only the
/// LoRA input is prepared (the replay of the backward pass).
fn project(
    lin: &Linear,
    pair: Option<&(Tensor, Tensor)>,
    x: &Tensor,
    base: Option<&Tensor>,
    ctx: &mut TrainCtx,
    value: bool,
) -> Result<(Option<Tensor>, Option<LoraInput>)> {
    let lora = match (&lin.lora, pair) {
        (Some(l), Some((a, _))) => {
            let mask = ctx.dropout_mask(x, l.dropout)?;
            let z = match &mask {
                Some(m) => (x * m)?,
                None => x.clone(),
            };
            let za = ops::matmul(&z, &a.t()?)?;
            Some(LoraInput { z, za, mask })
        }
        _ => None,
    };
    if !value {
        return Ok((None, lora));
    }
    // Detached: under full fine-tuning the weight is a variable, and no graph is wanted.
    let wt = lin.weight.dense_as(x.dtype())?.detach().t()?;
    let mut terms = vec![(x.clone(), wt)];
    if let (Some((_, scaled_b)), Some(input)) = (pair, &lora) {
        terms.push((input.za.clone(), scaled_b.t()?));
    }
    let mut y = products(base, &terms)?;
    if let Some(b) = &lin.bias {
        y = y.broadcast_add(&b.detach())?;
    }
    Ok((Some(y), lora))
}

/// [`ops::products_sum`] over owned pairs.
fn products(base: Option<&Tensor>, terms: &[(Tensor, Tensor)]) -> Result<Tensor> {
    let refs: Vec<(&Tensor, &Tensor)> = terms.iter().map(|(a, b)| (a, b)).collect();
    ops::products_sum(base, &refs)
}

/// The input's gradient of [`project`] of `x` for its output's gradient `dy`, as products for
/// the caller to sum with those of the projections that share the input: `dy · W`, and the
/// pair's `d(xA) · A` (a masked one, under dropout, as a value in `masked`). The gradients of
/// what trains — the pair (f32, as its variables), or the weight and bias under full
/// fine-tuning — go to `grads`.
#[allow(clippy::too_many_arguments)]
fn project_backward(
    lin: &Linear,
    pair: Option<&(Tensor, Tensor)>,
    x: &Tensor,
    input: Option<&LoraInput>,
    dy: &Tensor,
    grads: &mut Vec<(Tensor, Tensor)>,
    terms: &mut Vec<(Tensor, Tensor)>,
    masked: &mut Vec<Tensor>,
) -> Result<()> {
    terms.push((dy.clone(), lin.weight.dense_as(dy.dtype())?.detach()));
    if let Some(w) = &lin.full {
        // y = x·Wᵀ: dW = dyᵀ·x.
        grads.push((w.as_tensor().clone(), products(None, &[(dy.t()?, x.clone())])?));
    }
    if let Some(b) = lin.bias.as_ref().filter(|b| b.is_variable()) {
        grads.push((b.clone(), dy.sum(0)?));
    }
    let (Some(l), Some((a_cast, scaled_b)), Some(input)) = (&lin.lora, pair, input) else {
        return Ok(());
    };
    let (a, b) = (l.a.as_tensor(), l.b.as_tensor());
    // y += za·(s·B)ᵀ: dB = s·dyᵀ·za (scaled at B's small size), d(za) = dy·(s·B).
    let db = (ops::matmul(&dy.t()?, &input.za)? * l.scale)?;
    let dza = ops::matmul(dy, scaled_b)?;
    let da = ops::matmul(&dza.t()?, &input.z)?;
    match &input.mask {
        Some(m) => masked.push((ops::matmul(&dza, a_cast)? * m)?),
        None => terms.push((dza, a_cast.clone())),
    }
    grads.push((a.clone(), da.to_dtype(a.dtype())?));
    grads.push((b.clone(), db.to_dtype(b.dtype())?));
    Ok(())
}

/// What a block's forward pass keeps for its backward pass besides its input: the values that
/// cost a matrix product to recompute (`[rows, ..]`, rows = batch × positions; q and k rotated).
/// 4,608 floats a token and block for SmolLM2, against 3 × 576 that the peer's checkpointing
/// drops and a full activation set of ~25,000.
#[derive(Clone)]
struct Kept {
    /// `[b, kv heads, n·t, head_dim]` (query heads stacked per K/V head).
    q: Tensor,
    /// `[b, kv heads, t, head_dim]`.
    k: Tensor,
    /// `[b, kv heads, t, head_dim]`.
    v: Tensor,
    /// The residual stream after attention.
    x2: Tensor,
    /// The MLP's gate and up projections (LoRA included).
    gate: Tensor,
    up: Tensor,
}

/// A block's values for its backward pass.
struct Values {
    kept: Kept,
    x: Tensor,
    probs: Tensor,
    /// The projections' inputs: the norms' outputs, the attention's, SiLU·mul's.
    h1: Tensor,
    att: Tensor,
    h2: Tensor,
    silu: Tensor,
    lora: HashMap<&'static str, LoraInput>,
}

/// The block's forward pass without a graph: its output and what its backward pass needs.
fn forward(
    cfg: &Config,
    layer: &Block,
    pairs: &Pairs,
    x: &Tensor,
    pos: &Rotary,
    ctx: &mut TrainCtx,
    keep_all: bool,
) -> Result<(Tensor, Saved)> {
    let (b, t, hidden) = x.dims3()?;
    let (nh, nkv, hd) = (cfg.num_attention_heads, cfg.kv_heads(), cfg.head_dim());
    let n = nh / nkv;
    let x = x.detach().reshape((b * t, hidden))?;
    let mut lora = HashMap::new();
    let mut run = |name: &'static str, input: &Tensor, base: Option<&Tensor>| {
        let (y, input) = project(&layer.proj[name], pairs.get(name), input, base, ctx, true)?;
        if let (true, Some(LoraInput { za, mask, .. })) = (keep_all, input) {
            lora.insert(name, PairKept { za, mask });
        }
        y.ok_or_else(|| candle_core::Error::Msg("no value".into()))
    };
    let h1 = ops::rms_norm(&x, &layer.attn_norm.detach(), cfg.rms_norm_eps)?;
    let (q, k, v) =
        (run("q_proj", &h1, None)?, run("k_proj", &h1, None)?, run("v_proj", &h1, None)?);
    let heads =
        |y: Tensor, count: usize| y.reshape((b, t, count, hd))?.transpose(1, 2)?.contiguous();
    let q = ops::rope(&heads(q, nh)?, pos)?.reshape((b, nkv, n * t, hd))?;
    let k = ops::rope(&heads(k, nkv)?, pos)?;
    let v = heads(v, nkv)?;
    let (probs, att) = attention(cfg, &q, &k, &v, b, t)?;
    // The residual stream is each sum's starting value.
    let x2 = run("o_proj", &att, Some(&x))?;
    let h2 = ops::rms_norm(&x2, &layer.mlp_norm.detach(), cfg.rms_norm_eps)?;
    let (gate, up) = (run("gate_proj", &h2, None)?, run("up_proj", &h2, None)?);
    let out = run("down_proj", &ops::silu_mul(&gate, &up)?, Some(&x2))?.reshape((b, t, hidden))?;
    let kept = Kept { q, k, v, x2, gate, up };
    let saved = match keep_all {
        true => Saved::All { kept, probs, att, lora },
        false => Saved::Kept(kept),
    };
    Ok((out, saved))
}

/// What a block's forward pass leaves for its backward pass.
enum Saved {
    /// With checkpointing: the costly values; the rest is replayed.
    Kept(Kept),
    /// Without: also what costs a product or a random draw to recompute (the attention's
    /// probabilities and output, each pair's `input · Aᵀ` and dropout mask); the norms'
    /// outputs and SiLU·mul, which the pairs' inputs are, cost one pass over the rows and are
    /// recomputed ([`restore`]).
    All { kept: Kept, probs: Tensor, att: Tensor, lora: HashMap<&'static str, PairKept> },
}

/// What a LoRA pair's backward needs besides its input.
struct PairKept {
    za: Tensor,
    mask: Option<Tensor>,
}

/// A block's [`Values`] from what a forward pass without checkpointing kept: its pairs' inputs
/// recomputed (two norms and SiLU·mul, no product).
fn restore(
    cfg: &Config,
    layer: &Block,
    x: &Tensor,
    kept: Kept,
    probs: Tensor,
    att: Tensor,
    pairs: HashMap<&'static str, PairKept>,
) -> Result<Values> {
    let (b, t, hidden) = x.dims3()?;
    let x = x.detach().reshape((b * t, hidden))?;
    let h1 = ops::rms_norm(&x, &layer.attn_norm.detach(), cfg.rms_norm_eps)?;
    let h2 = ops::rms_norm(&kept.x2, &layer.mlp_norm.detach(), cfg.rms_norm_eps)?;
    let silu = ops::silu_mul(&kept.gate, &kept.up)?;
    let mut lora = HashMap::new();
    for (name, PairKept { za, mask }) in pairs {
        let input = match name {
            "q_proj" | "k_proj" | "v_proj" => &h1,
            "o_proj" => &att,
            "gate_proj" | "up_proj" => &h2,
            "down_proj" => &silu,
            other => candle_core::bail!("no input for a pair on {other}"),
        };
        let z = match &mask {
            Some(m) => (input * m)?,
            None => input.clone(),
        };
        lora.insert(name, LoraInput { z, za, mask });
    }
    Ok(Values { kept, x, probs, h1, att, h2, silu, lora })
}

/// Grouped-query attention as the autograd block computes it (the query heads that share a
/// K/V head stacked along the rows): the probabilities `[b, kv heads, n·t, t]` and the output
/// `[b·t, heads·head_dim]`.
fn attention(
    cfg: &Config,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    b: usize,
    t: usize,
) -> Result<(Tensor, Tensor)> {
    let (nh, nkv, hd) = (cfg.num_attention_heads, cfg.kv_heads(), cfg.head_dim());
    let n = nh / nkv;
    let scores = ops::matmul(q, &k.t()?)?.reshape((b, nkv, n, t, t))?;
    let probs =
        ops::causal_softmax(&scores, 1.0 / (hd as f64).sqrt())?.reshape((b, nkv, n * t, t))?;
    let att = ops::matmul(&probs, v)?
        .reshape((b, nh, t, hd))?
        .transpose(1, 2)?
        .reshape((b * t, nh * hd))?;
    Ok((probs, att))
}

/// The forward pass again for the backward pass, from the block's input, its kept values and
/// the forward pass's dropout state: the attention probabilities and the LoRA pairs' inputs
/// (norms, one attention, SiLU·mul and the pairs' `r`-wide products; no frozen product).
fn replay(
    cfg: &Config,
    layer: &Block,
    pairs: &Pairs,
    x: &Tensor,
    ctx: &mut TrainCtx,
    kept: Kept,
) -> Result<Values> {
    let (b, t, hidden) = x.dims3()?;
    let x = x.detach().reshape((b * t, hidden))?;
    let mut lora = HashMap::new();
    // Every pair's mask is drawn, in the forward pass's order.
    let mut prepare = |name: &'static str, input: &Tensor| -> Result<()> {
        if let (_, Some(l)) = project(&layer.proj[name], pairs.get(name), input, None, ctx, false)?
        {
            lora.insert(name, l);
        }
        Ok(())
    };
    let (attn_norm, mlp_norm) = (layer.attn_norm.detach(), layer.mlp_norm.detach());
    let h1 = ops::rms_norm(&x, &attn_norm, cfg.rms_norm_eps)?;
    for name in ["q_proj", "k_proj", "v_proj"] {
        prepare(name, &h1)?;
    }
    let (probs, att) = attention(cfg, &kept.q, &kept.k, &kept.v, b, t)?;
    prepare("o_proj", &att)?;
    let h2 = ops::rms_norm(&kept.x2, &mlp_norm, cfg.rms_norm_eps)?;
    prepare("gate_proj", &h2)?;
    prepare("up_proj", &h2)?;
    let silu = ops::silu_mul(&kept.gate, &kept.up)?;
    prepare("down_proj", &silu)?;
    Ok(Values { kept, x, probs, h1, att, h2, silu, lora })
}

/// The gradients of the block for its output's gradient `dout` `[b, t, hidden]`: the input's,
/// and the LoRA pairs' (into `grads`).
fn backward(
    cfg: &Config,
    layer: &Block,
    pairs: &Pairs,
    pos: &Rotary,
    s: &Values,
    dout: &Tensor,
    grads: &mut Vec<(Tensor, Tensor)>,
) -> Result<Tensor> {
    let (b, t, hidden) = dout.dims3()?;
    let (nh, nkv, hd) = (cfg.num_attention_heads, cfg.kv_heads(), cfg.head_dim());
    let n = nh / nkv;
    let dout = dout.reshape((b * t, hidden))?;
    // The gradient of `x`, the input that projections `names` share, for their outputs' `dys`.
    let mut back = |x: &Tensor, names: &[&'static str], dys: &[&Tensor]| -> Result<Tensor> {
        let (mut terms, mut masked) = (Vec::new(), Vec::new());
        for (name, dy) in names.iter().zip(dys) {
            let (lin, pair, input) = (&layer.proj[name], pairs.get(name), s.lora.get(name));
            project_backward(lin, pair, x, input, dy, grads, &mut terms, &mut masked)?;
        }
        masked.iter().try_fold(products(None, &terms)?, |sum, m| ops::add(&sum, m))
    };
    // MLP: out = x2 + down(silu(gate) ⊙ up), gate and up of h2 = norm(x2).
    let dm = back(&s.silu, &["down_proj"], &[&dout])?;
    let (dgate, dup) = ops::silu_mul_backward(&dm, &s.kept.gate, &s.kept.up)?;
    let dh2 = back(&s.h2, &["gate_proj", "up_proj"], &[&dgate, &dup])?;
    let (dx2, dw2) = ops::rms_norm_backward(&s.kept.x2, &layer.mlp_norm, &dh2, cfg.rms_norm_eps)?;
    let dx2 =
        ops::add(&dout, &dx2.ok_or_else(|| candle_core::Error::Msg("rms_norm: no dx".into()))?)?;
    // Attention: x2 = x + o(att), att = softmax(q·kᵀ)·v per head.
    let datt = back(&s.att, &["o_proj"], &[&dx2])?;
    let dy = datt.reshape((b, t, nh, hd))?.transpose(1, 2)?.contiguous()?.reshape((
        b,
        nkv,
        n * t,
        hd,
    ))?;
    let dprobs = ops::matmul(&dy, &s.kept.v.t()?)?;
    let dv = ops::matmul(&s.probs.t()?, &dy)?;
    // One `[t, t]` block per query head, as the forward pass's softmax saw them.
    let per_head = |p: &Tensor| p.reshape((b, nkv, n, t, t));
    let dscores = ops::causal_softmax_backward(
        &per_head(&s.probs)?,
        &per_head(&dprobs)?,
        1.0 / (hd as f64).sqrt(),
    )?
    .reshape((b, nkv, n * t, t))?;
    let dq = ops::matmul(&dscores, &s.kept.k)?.reshape((b, nh, t, hd))?;
    let dk = ops::matmul(&dscores.t()?, &s.kept.q)?;
    let rows =
        |d: Tensor, count: usize| d.transpose(1, 2)?.contiguous()?.reshape((b * t, count * hd));
    let dq = rows(ops::rope_backward(&dq, pos)?, nh)?;
    let dk = rows(ops::rope_backward(&dk, pos)?, nkv)?;
    let dv = rows(dv, nkv)?;
    let dh1 = back(&s.h1, &["q_proj", "k_proj", "v_proj"], &[&dq, &dk, &dv])?;
    let (dx, dw1) = ops::rms_norm_backward(&s.x, &layer.attn_norm, &dh1, cfg.rms_norm_eps)?;
    // Trained norms (full fine-tuning).
    for (w, dw) in [(&layer.attn_norm, dw1), (&layer.mlp_norm, dw2)] {
        if let Some(dw) = dw.filter(|_| w.is_variable()) {
            grads.push((w.clone(), dw));
        }
    }
    let dx = ops::add(&dx2, &dx.ok_or_else(|| candle_core::Error::Msg("rms_norm: no dx".into()))?)?;
    dx.reshape((b, t, hidden))
}

/// The forward pass of a training block, and its backward: with checkpointing, replay
/// the block from its [`Kept`] values (with the forward pass's dropout masks); without, use the
/// values the forward pass kept (the attention probabilities and the LoRA inputs too). Then run
/// [`backward`], leave the LoRA gradients in `sink` and return the input's.
pub(crate) fn written_out(
    at: &BlockAt,
    ctx: &mut TrainCtx,
    sink: crate::lora::Recomputed,
    checkpointing: bool,
) -> Result<(Tensor, ops::Backward1)> {
    let BlockAt { cfg, layer, x, pos } = *at;
    let dropout = ctx.snapshot();
    let pairs = pairs(layer, x.dtype())?;
    let (out, saved) = forward(cfg, layer, &pairs, x, pos, ctx, !checkpointing)?;
    // Taken by the backward pass, so each block's values are freed as soon as it is done.
    let saved = std::sync::Mutex::new(Some(saved));
    let (cfg, layer, pos) = (cfg.clone(), layer.clone(), pos.clone());
    let bwd = move |x: &Tensor, _: &Tensor, grad: &Tensor| -> Result<Option<Tensor>> {
        let values = match saved.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(Saved::All { kept, probs, att, lora }) => {
                restore(&cfg, &layer, x, kept, probs, att, lora)?
            }
            Some(Saved::Kept(kept)) => {
                replay(&cfg, &layer, &pairs, x, &mut dropout.snapshot(), kept)?
            }
            None => candle_core::bail!("a block's backward ran twice"),
        };
        let mut grads = Vec::new();
        let dx = backward(&cfg, &layer, &pairs, &pos, &values, &grad.detach(), &mut grads)?;
        sink.lock().unwrap_or_else(|e| e.into_inner()).extend(grads);
        Ok(Some(dx))
    };
    Ok((out, Box::new(bwd)))
}
