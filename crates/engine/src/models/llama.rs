//! Llama-family decoder — Llama, SmolLM2, Mistral — and Qwen2 (q/k/v bias); upstream:
//! transformers' `modeling_llama.py` and `modeling_qwen2.py`.
//!
//! Unlike candle-transformers' llama, every op here backpropagates (our fused RMSNorm, RoPE,
//! SiLU·mul and causal softmax carry their own backward: `crate::ops`), the forward pass returns
//! hidden states at every position, and each projection is a [`Linear`] that can carry LoRA.
//! Weights use Hugging Face names and layout (half-split RoPE); GGUF checkpoints are converted on
//! load (`crate::weights`).

use std::collections::HashMap;

use candle_core::{DType, Device, Result, Tensor, Var};
use serde::Deserialize;

use crate::lora::{Linear, TrainCtx};
use crate::ops::{Rotary, Weight, rms_norm};

/// `config.json` of a Llama or Qwen2 checkpoint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Decoder blocks.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention); defaults to the query heads.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; defaults to `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base (transformers < 5 writes it here).
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// RoPE settings (transformers ≥ 5 writes `rope_theta` and the scaling here).
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
    /// RoPE scaling as transformers < 5 writes it (`null` when there is none).
    #[serde(default)]
    pub rope_scaling: Option<RopeParameters>,
    /// Per-pair divisors of the RoPE frequencies: a GGUF's `rope_freqs.weight` (llama.cpp's
    /// form of Llama 3's scaling); never in `config.json`.
    #[serde(skip)]
    pub rope_freqs: Option<Vec<f32>>,
    /// Context length.
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// Whether the LM head is the token embedding.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Llama: bias on q, k, v and o.
    #[serde(default)]
    pub attention_bias: bool,
    /// `llama`, `mistral`, `qwen2` …
    #[serde(default)]
    pub model_type: String,
}

/// transformers ≥ 5 `rope_parameters`, or < 5 `rope_scaling` (without the base, and maybe with
/// `type` for `rope_type`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RopeParameters {
    /// RoPE base.
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// `default` (or absent) and `llama3` are supported; others are refused on load.
    #[serde(default)]
    pub rope_type: Option<String>,
    /// The older name of `rope_type`.
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// Llama 3: how much the low frequencies are slowed down.
    #[serde(default)]
    pub factor: Option<f64>,
    /// Llama 3: wavelengths above `original_max_position_embeddings / low_freq_factor` are
    /// divided by `factor`.
    #[serde(default)]
    pub low_freq_factor: Option<f64>,
    /// Llama 3: wavelengths below `original_max_position_embeddings / high_freq_factor` stay.
    #[serde(default)]
    pub high_freq_factor: Option<f64>,
    /// Llama 3: the context length before scaling (default: `max_position_embeddings`).
    #[serde(default)]
    pub original_max_position_embeddings: Option<f64>,
}

impl RopeParameters {
    fn kind(&self) -> Option<&str> {
        self.rope_type.as_deref().or(self.type_.as_deref())
    }
}

fn default_eps() -> f64 {
    1e-6
}

fn default_max_pos() -> usize {
    4096
}

impl Config {
    /// Key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// RoPE base.
    pub fn rope_base(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|r| r.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(10_000.0)
    }

    /// RoPE's frequencies, one per rotated pair: `1 / base^(2i / head_dim)`, scaled as the
    /// configuration says (Llama 3's `rope_type`, or a GGUF's `rope_freqs` divisors). An error
    /// names a scaling this code does not implement: loading checks it, so that such a model is
    /// refused rather than run with the wrong positions.
    pub fn rope_inv_freq(&self) -> std::result::Result<Vec<f32>, String> {
        let (hd, base) = (self.head_dim(), self.rope_base());
        let plain = (0..hd / 2).map(|i| 1.0 / base.powf(2.0 * i as f64 / hd as f64));
        if let Some(div) = &self.rope_freqs {
            if div.len() != hd / 2 {
                return Err(format!(
                    "rope_freqs has {} values where the heads rotate {} pairs",
                    div.len(),
                    hd / 2
                ));
            }
            return Ok(plain.zip(div).map(|(f, &d)| (f / f64::from(d)) as f32).collect());
        }
        let scaling = [&self.rope_parameters, &self.rope_scaling]
            .into_iter()
            .flatten()
            .find(|p| p.kind().is_some());
        match scaling.and_then(|p| p.kind().map(|k| (p, k))) {
            None | Some((_, "default")) => Ok(plain.map(|f| f as f32).collect()),
            Some((p, "llama3")) => {
                let llama3 = Llama3::new(p, self.max_position_embeddings)?;
                Ok(plain.map(|f| llama3.scale(f) as f32).collect())
            }
            Some((_, other)) => {
                Err(format!("RoPE scaling '{other}' is not supported (default and llama3 are)"))
            }
        }
    }

    /// Whether q, k, v carry a bias (Qwen2 always, Llama with `attention_bias`).
    pub fn qkv_bias(&self) -> bool {
        self.model_type == "qwen2" || self.attention_bias
    }

    /// Whether o carries a bias (Llama with `attention_bias` only).
    pub fn o_bias(&self) -> bool {
        self.model_type != "qwen2" && self.attention_bias
    }
}

/// Llama 3's frequency adjustment (transformers' `_compute_llama3_parameters`): long
/// wavelengths slowed down by `factor`, short ones kept, a smooth blend between.
struct Llama3 {
    factor: f64,
    low: f64,
    high: f64,
    original: f64,
}

impl Llama3 {
    fn new(p: &RopeParameters, max_positions: usize) -> std::result::Result<Llama3, String> {
        let need = |v: Option<f64>, name: &str| {
            v.ok_or_else(|| format!("llama3 RoPE scaling lacks '{name}'"))
        };
        Ok(Llama3 {
            factor: need(p.factor, "factor")?,
            low: need(p.low_freq_factor, "low_freq_factor")?,
            high: need(p.high_freq_factor, "high_freq_factor")?,
            original: p.original_max_position_embeddings.unwrap_or(max_positions as f64),
        })
    }

    fn scale(&self, inv_freq: f64) -> f64 {
        let wavelen = 2.0 * std::f64::consts::PI / inv_freq;
        if wavelen < self.original / self.high {
            inv_freq
        } else if wavelen > self.original / self.low {
            inv_freq / self.factor
        } else {
            let smooth = (self.original / wavelen - self.low) / (self.high - self.low);
            (1.0 - smooth) * inv_freq / self.factor + smooth * inv_freq
        }
    }
}

/// One decoder block.
#[derive(Debug, Clone)]
pub struct Block {
    /// `input_layernorm.weight`.
    pub attn_norm: Tensor,
    /// `post_attention_layernorm.weight`.
    pub mlp_norm: Tensor,
    /// Projections by module name: q_proj … down_proj.
    pub proj: HashMap<&'static str, Linear>,
}

/// Keys and values of past positions, per layer.
#[derive(Debug, Clone, Default)]
pub struct Cache {
    kv: Vec<Option<(Tensor, Tensor)>>,
}

impl Cache {
    /// Number of positions cached.
    pub fn len(&self) -> usize {
        self.kv.first().and_then(|l| l.as_ref()).map(|(k, _)| k.dim(2).unwrap_or(0)).unwrap_or(0)
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The decoder.
#[derive(Debug, Clone)]
pub struct Llama {
    /// Its configuration.
    pub cfg: Config,
    /// `model.embed_tokens.weight`, `[vocab, hidden]`.
    pub embed: Tensor,
    /// Blocks.
    pub layers: Vec<Block>,
    /// `model.norm.weight`.
    pub norm: Tensor,
    /// `lm_head` (the embedding when tied).
    pub lm_head: Linear,
    cos: Tensor,
    sin: Tensor,
}

/// Module names inside a block, with their `self_attn`/`mlp` parent.
pub const PROJECTIONS: [(&str, &str); 7] = [
    ("self_attn", "q_proj"),
    ("self_attn", "k_proj"),
    ("self_attn", "v_proj"),
    ("self_attn", "o_proj"),
    ("mlp", "gate_proj"),
    ("mlp", "up_proj"),
    ("mlp", "down_proj"),
];

impl Llama {
    /// Builds the model from tensors named as in a Hugging Face checkpoint. Projections keep
    /// the form they come in (quantized for QLoRA); everything else is made dense.
    pub fn new(cfg: Config, w: &mut HashMap<String, Weight>, dev: &Device) -> Result<Llama> {
        let mut take_weight = |name: &str| -> Result<Weight> {
            w.remove(name)
                .ok_or_else(|| candle_core::Error::Msg(format!("tensor {name} is missing")))
        };
        let embed = take_weight("model.embed_tokens.weight")?.dense()?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let mut proj = HashMap::new();
            for (parent, name) in PROJECTIONS {
                let weight = take_weight(&format!("{p}.{parent}.{name}.weight"))?;
                let has_bias = match name {
                    "q_proj" | "k_proj" | "v_proj" => cfg.qkv_bias(),
                    "o_proj" => cfg.o_bias(),
                    _ => false,
                };
                let bias = if has_bias {
                    Some(take_weight(&format!("{p}.{parent}.{name}.bias"))?.dense()?)
                } else {
                    None
                };
                proj.insert(name, Linear::new(weight, bias));
            }
            layers.push(Block {
                attn_norm: take_weight(&format!("{p}.input_layernorm.weight"))?.dense()?,
                mlp_norm: take_weight(&format!("{p}.post_attention_layernorm.weight"))?.dense()?,
                proj,
            });
        }
        let norm = take_weight("model.norm.weight")?.dense()?;
        // Without its own head the model is tied, whatever the config says.
        let head = match take_weight("lm_head.weight") {
            Ok(w) => w.dense()?,
            Err(_) => embed.clone(),
        };
        let lm_head = Linear::new(Weight::Dense(head), None);
        let (cos, sin) = rope_tables(&cfg, dev)?;
        Ok(Llama { cfg, embed, layers, norm, lm_head, cos, sin })
    }

    /// Quantizes every dense projection weight to `dtype` (QLoRA's frozen base); projections
    /// already quantized keep their type.
    pub fn quantize_projections(&mut self, dtype: candle_core::quantized::GgmlDType) -> Result<()> {
        for layer in &mut self.layers {
            for lin in layer.proj.values_mut() {
                if lin.full.is_some() {
                    candle_core::bail!("a fully trained projection cannot be quantized");
                }
                lin.weight = lin.weight.quantize(dtype)?;
            }
        }
        Ok(())
    }

    /// Converts the frozen dense tensors (embedding, norms, dense projections and their
    /// biases, the head) to `dtype`; activations then follow them. Quantized projections stay
    /// as they are (dequantized to the activations' type on use), a tied head stays tied, and
    /// the rotary tables stay f32 (cast per pass). Call before adding adapters or making
    /// weights trainable: variables are not converted.
    pub fn cast_frozen(&mut self, dtype: DType) -> Result<()> {
        if self.embed.dtype() == dtype {
            return Ok(());
        }
        let tied = self.lm_head.weight.as_dense().is_some_and(|h| h.id() == self.embed.id());
        self.embed = self.embed.to_dtype(dtype)?;
        self.norm = self.norm.to_dtype(dtype)?;
        self.lm_head.weight = Weight::Dense(match self.lm_head.weight.as_dense() {
            _ if tied => self.embed.clone(),
            Some(h) => h.to_dtype(dtype)?,
            None => candle_core::bail!("the LM head must be dense"),
        });
        for layer in &mut self.layers {
            layer.attn_norm = layer.attn_norm.to_dtype(dtype)?;
            layer.mlp_norm = layer.mlp_norm.to_dtype(dtype)?;
            for lin in layer.proj.values_mut() {
                if lin.full.is_some() || lin.lora.is_some() {
                    candle_core::bail!("cast the model before adding trainable weights");
                }
                if let Weight::Dense(w) = &lin.weight {
                    lin.weight = Weight::Dense(w.to_dtype(dtype)?);
                }
                lin.bias = lin.bias.as_ref().map(|b| b.to_dtype(dtype)).transpose()?;
            }
        }
        Ok(())
    }

    /// The type of the activations (the embedding's).
    pub fn dtype(&self) -> DType {
        self.embed.dtype()
    }

    /// Bytes held by the projection weights (quantized or not).
    pub fn projection_bytes(&self) -> usize {
        self.layers.iter().flat_map(|l| l.proj.values()).map(|p| p.weight.storage_bytes()).sum()
    }

    /// Where the model's tensors live.
    pub fn device(&self) -> &Device {
        self.embed.device()
    }

    /// A fresh cache for generation.
    pub fn cache(&self) -> Cache {
        Cache { kv: vec![None; self.layers.len()] }
    }

    /// Hidden states after the final norm, `[batch, seq, hidden]`, for `ids` `[batch, seq]`
    /// placed after the cached positions.
    pub fn hidden(
        &self,
        ids: &Tensor,
        mut cache: Option<&mut Cache>,
        mut pass: Pass,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let offset = cache.as_ref().map(|c| c.len()).unwrap_or(0);
        let mut x = self.embed.index_select(&ids.flatten_all()?, 0)?.reshape((
            b,
            t,
            self.cfg.hidden_size,
        ))?;
        // The rotary tables in the activations' type (candle's fused RoPE takes one type).
        let table = |tab: &Tensor| tab.narrow(0, offset, t)?.to_dtype(x.dtype());
        let pos = Rotary::new(&table(&self.cos)?, &table(&self.sin)?)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let kv = cache.as_deref_mut().map(|c| &mut c.kv[i]);
            x = match &mut pass {
                Pass::Infer => {
                    let y = block(&self.cfg, layer, &x, &pos, kv, None)?.detach();
                    // Keep the cache free of graph edges too (a LoRA variable would hold
                    // every step's activations alive through it).
                    if let Some(Some((k, v))) = cache.as_deref_mut().map(|c| &mut c.kv[i]) {
                        (*k, *v) = (k.detach(), v.detach());
                    }
                    y
                }
                Pass::Grad => block(&self.cfg, layer, &x, &pos, kv, None)?,
                Pass::Train(ctx) => {
                    let at = BlockAt { cfg: &self.cfg, layer, x: &x, pos: &pos };
                    match (ctx.recomputed().cloned(), ctx.recomputes(i)) {
                        (Some(_), true) if kv.is_some() => {
                            candle_core::bail!("checkpointed training runs without a cache")
                        }
                        (Some(sink), true) => written_out(&at, ctx, sink, true)?,
                        (Some(sink), false) if kv.is_none() => written_out(&at, ctx, sink, false)?,
                        _ => block(&self.cfg, layer, &x, &pos, kv, Some(&mut **ctx))?,
                    }
                }
            };
        }
        rms_norm(&x, &self.norm, self.cfg.rms_norm_eps)
    }

    /// Logits for hidden states `[.., hidden]`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.lm_head.forward(hidden, None)
    }

    /// Logits at every position, `[batch, seq, vocab]`, without gradients.
    pub fn forward(&self, ids: &Tensor, cache: Option<&mut Cache>) -> Result<Tensor> {
        self.logits(&self.hidden(ids, cache, Pass::Infer)?)
    }
}

/// How a forward pass runs.
pub enum Pass<'a> {
    /// No gradients will be asked for: each block's graph is dropped as soon as it is done
    /// (evaluation, generation).
    Infer,
    /// Every op recorded, no dropout (gradient checks).
    Grad,
    /// Training: dropout masks from the context, and block checkpointing when it asks for it.
    Train(&'a mut TrainCtx),
}

/// One decoder block with its residual connections: `[b, t, hidden]` in and out.
fn block(
    cfg: &Config,
    layer: &Block,
    x: &Tensor,
    pos: &Rotary,
    kv: Option<&mut Option<(Tensor, Tensor)>>,
    mut train: Option<&mut TrainCtx>,
) -> Result<Tensor> {
    let h = rms_norm(x, &layer.attn_norm, cfg.rms_norm_eps)?;
    let h = attention(cfg, layer, &h, pos, kv, train.as_deref_mut())?;
    let x = (x + h)?;
    let h = rms_norm(&x, &layer.mlp_norm, cfg.rms_norm_eps)?;
    let gate = layer.proj["gate_proj"].forward(&h, train.as_deref_mut())?;
    let up = layer.proj["up_proj"].forward(&h, train.as_deref_mut())?;
    let h = layer.proj["down_proj"].forward(&crate::ops::silu_mul(&gate, &up)?, train)?;
    x + h
}

fn attention(
    cfg: &Config,
    layer: &Block,
    x: &Tensor,
    pos: &Rotary,
    kv: Option<&mut Option<(Tensor, Tensor)>>,
    mut train: Option<&mut TrainCtx>,
) -> Result<Tensor> {
    let (b, t, _) = x.dims3()?;
    let (nh, nkv, hd) = (cfg.num_attention_heads, cfg.kv_heads(), cfg.head_dim());
    let q = layer.proj["q_proj"].forward(x, train.as_deref_mut())?;
    let k = layer.proj["k_proj"].forward(x, train.as_deref_mut())?;
    let v = layer.proj["v_proj"].forward(x, train.as_deref_mut())?;
    let q = q.reshape((b, t, nh, hd))?.transpose(1, 2)?.contiguous()?;
    let k = k.reshape((b, t, nkv, hd))?.transpose(1, 2)?.contiguous()?;
    let mut v = v.reshape((b, t, nkv, hd))?.transpose(1, 2)?.contiguous()?;
    let q = crate::ops::rope(&q, pos)?;
    let mut k = crate::ops::rope(&k, pos)?;
    if let Some(slot) = kv {
        if let Some((pk, pv)) = slot.as_ref() {
            k = Tensor::cat(&[pk, &k], 2)?;
            v = Tensor::cat(&[pv, &v], 2)?;
        }
        *slot = Some((k.clone(), v.clone()));
    }
    // Grouped-query attention without copying K and V per query head: the query heads that
    // share a key/value head (heads `g·n .. g·n + n`, as transformers' `repeat_kv` pairs them)
    // are stacked along the rows, `[b, kv heads, n·t, hd]`, and meet their K and V in one
    // product. The scores `[b, kv heads, n, t, keys]` keep one `[t, keys]` block per head.
    let n = nh / nkv;
    let keys = k.dim(2)?;
    let scores = q.reshape((b, nkv, n * t, hd))?.matmul(&k.t()?)?;
    let att = crate::ops::causal_softmax(
        &scores.reshape((b, nkv, n, t, keys))?,
        1.0 / (hd as f64).sqrt(),
    )?;
    let y = att.reshape((b, nkv, n * t, keys))?.matmul(&v)?;
    let y = y.reshape((b, nh, t, hd))?.transpose(1, 2)?.reshape((b, t, nh * hd))?;
    layer.proj["o_proj"].forward(&y, train)
}

/// A decoder block about to run on its input `x` with the pass's rotary tables.
#[derive(Clone, Copy)]
pub(crate) struct BlockAt<'a> {
    pub(crate) cfg: &'a Config,
    pub(crate) layer: &'a Block,
    pub(crate) x: &'a Tensor,
    pub(crate) pos: &'a Rotary,
}

/// A training block with its backward written out ([`super::train_block::written_out`]): no
/// graph through the block; with checkpointing (the forward pass keeps its input, its output
/// and the values that cost a product) a replay, without none.
fn written_out(
    at: &BlockAt,
    ctx: &mut TrainCtx,
    sink: crate::lora::Recomputed,
    checkpointing: bool,
) -> Result<Tensor> {
    let (out, bwd) = super::train_block::written_out(at, ctx, sink, checkpointing)?;
    precomputed(at, out, bwd)
}

/// The block's output as one op on its input whose backward is `bwd`.
fn precomputed(at: &BlockAt, out: Tensor, bwd: crate::ops::Backward1) -> Result<Tensor> {
    let x = at.x;
    // The op is only recorded on a tracked input: the first block's input (a frozen embedding
    // lookup) becomes a variable whose gradient is simply not used.
    let x = if x.track_op() { x.clone() } else { Var::from_tensor(x)?.into_inner() };
    crate::ops::precomputed1(&x, out, bwd)
}

/// cos and sin of the rotary angles, `[max_positions, head_dim / 2]`.
fn rope_tables(cfg: &Config, dev: &Device) -> Result<(Tensor, Tensor)> {
    let inv = cfg.rope_inv_freq().map_err(candle_core::Error::Msg)?;
    let inv = Tensor::from_vec(inv, (1, cfg.head_dim() / 2), dev)?;
    let pos =
        Tensor::arange(0u32, cfg.max_position_embeddings as u32, dev)?.to_dtype(DType::F32)?;
    let freqs = pos.reshape((cfg.max_position_embeddings, 1))?.broadcast_mul(&inv)?;
    Ok((freqs.cos()?, freqs.sin()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Llama-3.2-1B's `config.json` as transformers 4.45 writes it, with `rope_scaling` as given.
    fn llama32(rope_scaling: &str) -> Config {
        let json = format!(
            r#"{{"vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192,
                "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
                "head_dim": 64, "rope_theta": 500000.0, "max_position_embeddings": 131072,
                "tie_word_embeddings": true, "model_type": "llama",
                "rope_scaling": {rope_scaling}}}"#
        );
        serde_json::from_str(&json).unwrap()
    }

    const LLAMA3: &str = r#"{"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192, "rope_type": "llama3"}"#;

    fn check(cfg: &Config, expected: &[(usize, f64)]) {
        let inv = cfg.rope_inv_freq().unwrap();
        assert_eq!(inv.len(), 32);
        for &(i, want) in expected {
            let rel = ((f64::from(inv[i]) - want) / want).abs();
            assert!(rel < 1e-6, "pair {i}: {} vs {want} (relative {rel:e})", inv[i]);
        }
    }

    #[test]
    fn llama3_rope_scaling_matches_transformers() {
        // transformers 5.24 `_compute_llama3_parameters` on Llama-3.2-1B's configuration
        // (head_dim 64, rope_theta 500000, factor 32, low 1, high 4, original 8192):
        //   LlamaConfig(hidden_size=2048, num_attention_heads=32, head_dim=64,
        //       rope_parameters=dict(rope_theta=500000.0, rope_type="llama3", factor=32.0,
        //           low_freq_factor=1.0, high_freq_factor=4.0,
        //           original_max_position_embeddings=8192))
        //   inv, _ = _compute_llama3_parameters(config, "cpu"); inv[i].item()
        // Pairs 0..=14 are kept, 15..=17 smoothed, 18.. divided by 32.
        let expected = [
            (0, 1.0),
            (1, 0.663601279258728),
            (14, 0.0032114461064338684),
            (15, 0.0012905480107292533),
            (16, 0.000429556705057621),
            (17, 9.708286233944818e-05),
            (18, 1.9461638657958247e-05),
            (31, 9.418306490260875e-08),
        ];
        check(&llama32(LLAMA3), &expected);
        // The older key `type`, and transformers ≥ 5's `rope_parameters` carrying the base.
        check(&llama32(&LLAMA3.replace("rope_type", "type")), &expected);
        let v5 = Config {
            rope_theta: None,
            rope_scaling: None,
            rope_parameters: Some(RopeParameters {
                rope_theta: Some(500_000.0),
                ..serde_json::from_str(LLAMA3).unwrap()
            }),
            ..llama32("null")
        };
        check(&v5, &expected);
        // Unscaled: pair 31 is 32 times faster.
        check(&llama32("null"), &[(17, 0.0009384738514199853), (31, 3.01385807688348e-06)]);
        check(&llama32(r#"{"rope_type": "default"}"#), &[(31, 3.01385807688348e-06)]);
    }

    #[test]
    fn gguf_rope_freqs_divide_the_frequencies() {
        // llama.cpp's converter stores Llama 3's scaling as one divisor per pair.
        let plain = llama32("null").rope_inv_freq().unwrap();
        let scaled = llama32(LLAMA3).rope_inv_freq().unwrap();
        let divisors = plain.iter().zip(&scaled).map(|(p, s)| p / s).collect();
        let gguf = Config { rope_freqs: Some(divisors), ..llama32("null") };
        let from_divisors = gguf.rope_inv_freq().unwrap();
        for (a, b) in from_divisors.iter().zip(&scaled) {
            assert!(((a - b) / b).abs() < 1e-6, "{a} vs {b}");
        }
        let wrong = Config { rope_freqs: Some(vec![1.0; 16]), ..llama32("null") };
        assert_eq!(
            wrong.rope_inv_freq().unwrap_err(),
            "rope_freqs has 16 values where the heads rotate 32 pairs"
        );
    }

    #[test]
    fn unknown_rope_scaling_is_an_error() {
        for kind in ["yarn", "linear", "dynamic"] {
            let cfg = llama32(&format!(r#"{{"rope_type": "{kind}", "factor": 4.0}}"#));
            assert_eq!(
                cfg.rope_inv_freq().unwrap_err(),
                format!("RoPE scaling '{kind}' is not supported (default and llama3 are)")
            );
        }
        let partial = llama32(r#"{"rope_type": "llama3", "factor": 32.0}"#);
        assert_eq!(
            partial.rope_inv_freq().unwrap_err(),
            "llama3 RoPE scaling lacks 'low_freq_factor'"
        );
    }
}
