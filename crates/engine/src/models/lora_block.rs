//! A decoder block of LoRA training with its backward pass written out: the forward pass
//! records no graph; the backward pass computes the input's and the LoRA pairs' gradients with
//! plain tensor ops, from values the forward pass kept — with checkpointing a few costly ones,
//! the rest recomputed; without, all of them ([`written_out`]).
//!
//! Through candle's autograd every op of a replayed block is a graph node whose gradient is
//! accumulated into a fresh zero tensor (a memset and an add per edge, attention's
//! `[heads, t, t]` scores included), and every LoRA pair is an op chain of its own. Written out,
//! a block's backward is its ~20 matrix products and a handful of fused elementwise passes; on a
//! GPU that is also a fraction of the kernel launches, which bound small batches there.
//!
//! Frozen parts only: a block whose norms, biases or projections train (full fine-tuning) takes
//! the autograd replay (`llama::autograd_checkpoint`). Same values and dropout masks as the autograd
//! block ([`super::llama`]'s `block`), which `written_out_lora_gradients_equal_autograd_ones`
//! and the checkpointing test hold it to.

use std::collections::HashMap;

use candle_core::{Result, Tensor};

use super::llama::{Block, BlockAt, Config};
use crate::lora::{Linear, TrainCtx};
use crate::ops::{self, Rotary};

/// Whether `layer` can take the written-out backward: nothing in it trains but LoRA pairs.
pub(crate) fn applies(layer: &Block) -> bool {
    !layer.attn_norm.is_variable()
        && !layer.mlp_norm.is_variable()
        && layer
            .proj
            .values()
            .all(|l| l.full.is_none() && l.bias.as_ref().is_none_or(|b| !b.is_variable()))
}

/// Bytes that keeping `layer`'s values through a step (no recomputation) costs over
/// recomputing it, for `rows` sequences of `t` positions of `elem` bytes a value: for a block
/// that [`applies`], what [`Saved::All`] holds beyond [`Kept`]; for one that trains through
/// candle's autograd, the graph's every intermediate value (about eight times the kept set,
/// and the attention's scores three times over).
pub(crate) fn keeping_costs(
    cfg: &Config,
    layer: &Block,
    rows: usize,
    t: usize,
    elem: usize,
) -> u64 {
    let (nh, hd) = (cfg.num_attention_heads, cfg.head_dim());
    let scores = nh * t;
    let per_token = if applies(layer) {
        let ranks: usize =
            layer.proj.values().filter_map(|l| l.lora.as_ref()).map(|l| l.a.dims()[0]).sum();
        scores + nh * hd + ranks
    } else {
        let (h, kv, i) = (cfg.hidden_size, cfg.kv_heads() * hd, cfg.intermediate_size);
        8 * (h + nh * hd + 2 * kv + h + 2 * i) + 3 * scores
    };
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

/// `x · Wᵀ + b + scale · B·A·dropout(x)` for `x` `[rows, in]`, with what the pair's backward
/// needs. Dropout masks come from `ctx` in the order the autograd block draws them. Without
/// `value`, only the LoRA input is prepared (the replay of the backward pass).
fn project(
    lin: &Linear,
    pair: Option<&(Tensor, Tensor)>,
    x: &Tensor,
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
            let za = z.matmul(&a.t()?)?;
            Some(LoraInput { z, za, mask })
        }
        _ => None,
    };
    if !value {
        return Ok((None, lora));
    }
    let mut y = ops::frozen_linear(x, &lin.weight)?;
    if let Some(b) = &lin.bias {
        y = y.broadcast_add(b)?;
    }
    if let (Some((_, scaled_b)), Some(input)) = (pair, &lora) {
        y = ops::add(&y, &input.za.matmul(&scaled_b.t()?)?)?;
    }
    Ok((Some(y), lora))
}

/// The input's gradient of [`project`] for its output's gradient `dy`; the pair's gradients
/// (f32, as its variables) go to `grads`.
fn project_backward(
    lin: &Linear,
    pair: Option<&(Tensor, Tensor)>,
    input: Option<&LoraInput>,
    dy: &Tensor,
    grads: &mut Vec<(Tensor, Tensor)>,
) -> Result<Tensor> {
    let dx = dy.matmul(&lin.weight.dense_as(dy.dtype())?)?;
    let (Some(l), Some((a_cast, scaled_b)), Some(input)) = (&lin.lora, pair, input) else {
        return Ok(dx);
    };
    let (a, b) = (l.a.as_tensor(), l.b.as_tensor());
    // y += za·(s·B)ᵀ: dB = s·dyᵀ·za (scaled at B's small size), d(za) = dy·(s·B).
    let db = (dy.t()?.matmul(&input.za)? * l.scale)?;
    let dza = dy.matmul(scaled_b)?;
    let da = dza.t()?.matmul(&input.z)?;
    let mut dz = dza.matmul(a_cast)?;
    if let Some(m) = &input.mask {
        dz = (dz * m)?;
    }
    grads.push((a.clone(), da.to_dtype(a.dtype())?));
    grads.push((b.clone(), db.to_dtype(b.dtype())?));
    ops::add(&dx, &dz)
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
    let mut run = |name: &'static str, input: &Tensor| {
        let (y, input) = project(&layer.proj[name], pairs.get(name), input, ctx, true)?;
        if let (true, Some(LoraInput { za, mask, .. })) = (keep_all, input) {
            lora.insert(name, PairKept { za, mask });
        }
        y.ok_or_else(|| candle_core::Error::Msg("no value".into()))
    };
    let h1 = ops::rms_norm(&x, &layer.attn_norm, cfg.rms_norm_eps)?;
    let (q, k, v) = (run("q_proj", &h1)?, run("k_proj", &h1)?, run("v_proj", &h1)?);
    let heads =
        |y: Tensor, count: usize| y.reshape((b, t, count, hd))?.transpose(1, 2)?.contiguous();
    let q = ops::rope(&heads(q, nh)?, pos)?.reshape((b, nkv, n * t, hd))?;
    let k = ops::rope(&heads(k, nkv)?, pos)?;
    let v = heads(v, nkv)?;
    let (probs, att) = attention(cfg, &q, &k, &v, b, t)?;
    let x2 = ops::add(&x, &run("o_proj", &att)?)?;
    let h2 = ops::rms_norm(&x2, &layer.mlp_norm, cfg.rms_norm_eps)?;
    let (gate, up) = (run("gate_proj", &h2)?, run("up_proj", &h2)?);
    let down = run("down_proj", &ops::silu_mul(&gate, &up)?)?;
    let out = ops::add(&x2, &down)?.reshape((b, t, hidden))?;
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
    let h1 = ops::rms_norm(&x, &layer.attn_norm, cfg.rms_norm_eps)?;
    let h2 = ops::rms_norm(&kept.x2, &layer.mlp_norm, cfg.rms_norm_eps)?;
    let s = ops::silu_mul(&kept.gate, &kept.up)?;
    let mut lora = HashMap::new();
    for (name, PairKept { za, mask }) in pairs {
        let input = match name {
            "q_proj" | "k_proj" | "v_proj" => &h1,
            "o_proj" => &att,
            "gate_proj" | "up_proj" => &h2,
            "down_proj" => &s,
            other => candle_core::bail!("no input for a pair on {other}"),
        };
        let z = match &mask {
            Some(m) => (input * m)?,
            None => input.clone(),
        };
        lora.insert(name, LoraInput { z, za, mask });
    }
    Ok(Values { kept, x, probs, lora })
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
    let scores = q.matmul(&k.t()?)?.reshape((b, nkv, n, t, t))?;
    let probs =
        ops::causal_softmax(&scores, 1.0 / (hd as f64).sqrt())?.reshape((b, nkv, n * t, t))?;
    let att =
        probs.matmul(v)?.reshape((b, nh, t, hd))?.transpose(1, 2)?.reshape((b * t, nh * hd))?;
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
        if let (_, Some(l)) = project(&layer.proj[name], pairs.get(name), input, ctx, false)? {
            lora.insert(name, l);
        }
        Ok(())
    };
    let h1 = ops::rms_norm(&x, &layer.attn_norm, cfg.rms_norm_eps)?;
    for name in ["q_proj", "k_proj", "v_proj"] {
        prepare(name, &h1)?;
    }
    let (probs, att) = attention(cfg, &kept.q, &kept.k, &kept.v, b, t)?;
    prepare("o_proj", &att)?;
    let h2 = ops::rms_norm(&kept.x2, &layer.mlp_norm, cfg.rms_norm_eps)?;
    prepare("gate_proj", &h2)?;
    prepare("up_proj", &h2)?;
    prepare("down_proj", &ops::silu_mul(&kept.gate, &kept.up)?)?;
    Ok(Values { kept, x, probs, lora })
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
    let mut back = |name: &'static str, dy: &Tensor| {
        project_backward(&layer.proj[name], pairs.get(name), s.lora.get(name), dy, grads)
    };
    // MLP: out = x2 + down(silu(gate) ⊙ up), gate and up of h2 = norm(x2).
    let dm = back("down_proj", &dout)?;
    let (dgate, dup) = ops::silu_mul_backward(&dm, &s.kept.gate, &s.kept.up)?;
    let dh2 = ops::add(&back("gate_proj", &dgate)?, &back("up_proj", &dup)?)?;
    let (dx2, _) = ops::rms_norm_backward(&s.kept.x2, &layer.mlp_norm, &dh2, cfg.rms_norm_eps)?;
    let dx2 =
        ops::add(&dout, &dx2.ok_or_else(|| candle_core::Error::Msg("rms_norm: no dx".into()))?)?;
    // Attention: x2 = x + o(att), att = softmax(q·kᵀ)·v per head.
    let datt = back("o_proj", &dx2)?;
    let dy = datt.reshape((b, t, nh, hd))?.transpose(1, 2)?.contiguous()?.reshape((
        b,
        nkv,
        n * t,
        hd,
    ))?;
    let dprobs = dy.matmul(&s.kept.v.t()?)?;
    let dv = s.probs.t()?.matmul(&dy)?;
    // One `[t, t]` block per query head, as the forward pass's softmax saw them.
    let per_head = |p: &Tensor| p.reshape((b, nkv, n, t, t));
    let dscores = ops::causal_softmax_backward(
        &per_head(&s.probs)?,
        &per_head(&dprobs)?,
        1.0 / (hd as f64).sqrt(),
    )?
    .reshape((b, nkv, n * t, t))?;
    let dq = dscores.matmul(&s.kept.k)?.reshape((b, nh, t, hd))?;
    let dk = dscores.t()?.matmul(&s.kept.q)?;
    let rows =
        |d: Tensor, count: usize| d.transpose(1, 2)?.contiguous()?.reshape((b * t, count * hd));
    let dq = rows(ops::rope_backward(&dq, pos)?, nh)?;
    let dk = rows(ops::rope_backward(&dk, pos)?, nkv)?;
    let dv = rows(dv, nkv)?;
    let dh1 =
        ops::add(&ops::add(&back("q_proj", &dq)?, &back("k_proj", &dk)?)?, &back("v_proj", &dv)?)?;
    let (dx, _) = ops::rms_norm_backward(&s.x, &layer.attn_norm, &dh1, cfg.rms_norm_eps)?;
    let dx = ops::add(&dx2, &dx.ok_or_else(|| candle_core::Error::Msg("rms_norm: no dx".into()))?)?;
    dx.reshape((b, t, hidden))
}

/// The forward pass of a block that [`applies`], and its backward: with checkpointing, replay
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
