//! Linear layers with an optional LoRA pair, PEFT's formulation:
//! `y = x·Wᵀ + b + (alpha/r)·B(A(dropout(x)))`, A kaiming-uniform (a=√5), B zero.

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::{Rng, SeedableRng};

pub use api::train::{LoraConfig, Quant};

use crate::ops::Weight;

/// The GGML block type of a QLoRA [`Quant`].
pub trait QuantExt {
    /// The GGML block type.
    fn ggml(self) -> candle_core::quantized::GgmlDType;
}

impl QuantExt for Quant {
    fn ggml(self) -> candle_core::quantized::GgmlDType {
        use candle_core::quantized::GgmlDType;
        match self {
            Quant::Q4_0 => GgmlDType::Q4_0,
            Quant::Q4_1 => GgmlDType::Q4_1,
            Quant::Q8_0 => GgmlDType::Q8_0,
        }
    }
}

/// A trainable low-rank pair.
#[derive(Debug, Clone)]
pub struct LoraPair {
    /// `[r, in]`.
    pub a: Var,
    /// `[out, r]`.
    pub b: Var,
    /// `alpha / r`.
    pub scale: f64,
    /// Dropout probability on the input during training.
    pub dropout: f32,
}

impl LoraPair {
    /// PEFT's default initialisation: A ~ U(-1/√in, 1/√in), B = 0, from `rng`.
    pub fn init(
        in_dim: usize,
        out_dim: usize,
        cfg: &LoraConfig,
        rng: &mut rand::rngs::StdRng,
        dev: &Device,
    ) -> Result<LoraPair> {
        let bound = 1.0 / (in_dim as f32).sqrt();
        let a: Vec<f32> = (0..cfg.r * in_dim).map(|_| rng.random_range(-bound..bound)).collect();
        let a = Var::from_tensor(&Tensor::from_vec(a, (cfg.r, in_dim), dev)?)?;
        let b = Var::zeros((out_dim, cfg.r), DType::F32, dev)?;
        Ok(LoraPair { a, b, scale: cfg.scale(), dropout: cfg.dropout })
    }
}

/// Gradients of parameters used inside written-out or recomputed (checkpointed) blocks, found
/// during the backward pass and handed to the training loop (a block's backward may only return
/// its input's).
pub type Recomputed = std::sync::Arc<std::sync::Mutex<Vec<(Tensor, Tensor)>>>;

/// Which decoder blocks a training step runs again in its backward pass (gradient
/// checkpointing) instead of keeping their values from the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recompute {
    /// Every block: least memory, one more forward pass of compute.
    All,
    /// None: every block's values kept.
    Nothing,
    /// The first `n` blocks; the others keep their values (as many as a memory budget holds).
    First(usize),
}

impl Recompute {
    /// Every block with checkpointing, none without.
    pub fn from_checkpointing(on: bool) -> Recompute {
        if on { Recompute::All } else { Recompute::Nothing }
    }

    /// Whether decoder block `index` (from 0) is recomputed.
    pub fn block(self, index: usize) -> bool {
        match self {
            Recompute::All => true,
            Recompute::Nothing => false,
            Recompute::First(n) => index < n,
        }
    }
}

/// Per-step training state threaded through the forward pass: dropout masks come from here so
/// a run is reproducible from its seed and resumable; with checkpointing, it collects the
/// gradients that decoder blocks find when they are recomputed in the backward pass.
pub struct TrainCtx {
    rng: rand::rngs::StdRng,
    recomputed: Option<Recomputed>,
    recompute: Recompute,
}

impl TrainCtx {
    /// A context seeded for one step whose blocks all keep their values (none recomputed; the
    /// blocks' backward written out).
    pub fn new(seed: u64) -> TrainCtx {
        TrainCtx::recomputing(seed, Recompute::Nothing)
    }

    /// A context seeded for one step whose backward pass recomputes the blocks `recompute` names.
    pub fn recomputing(seed: u64, recompute: Recompute) -> TrainCtx {
        TrainCtx { recomputed: Some(Recomputed::default()), recompute, ..TrainCtx::autograd(seed) }
    }

    /// A context seeded for one step whose blocks all run through candle's autograd (the
    /// reference the written-out blocks are checked against).
    pub fn autograd(seed: u64) -> TrainCtx {
        TrainCtx {
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            recomputed: None,
            recompute: Recompute::Nothing,
        }
    }

    /// Where written-out and checkpointed blocks leave their parameters' gradients (none:
    /// everything goes through candle's autograd).
    pub fn recomputed(&self) -> Option<&Recomputed> {
        self.recomputed.as_ref()
    }

    /// Whether decoder block `index` is recomputed in the backward pass.
    pub fn recomputes(&self, index: usize) -> bool {
        self.recompute.block(index)
    }

    /// The dropout state as it is now, for autograd: replaying a block from it draws the same
    /// masks.
    pub fn snapshot(&self) -> TrainCtx {
        TrainCtx { rng: self.rng.clone(), recomputed: None, recompute: Recompute::Nothing }
    }

    /// Takes the parameter gradients left by checkpointed blocks since the last call.
    pub fn take_gradients(&self) -> Vec<(Tensor, Tensor)> {
        match &self.recomputed {
            Some(r) => std::mem::take(&mut *r.lock().unwrap_or_else(|e| e.into_inner())),
            None => Vec::new(),
        }
    }

    fn dropout(&mut self, x: &Tensor, p: f32) -> Result<Tensor> {
        match self.dropout_mask(x, p)? {
            Some(mask) => x.mul(&mask),
            None => Ok(x.clone()),
        }
    }

    /// The next dropout mask shaped and typed like `x` (0, or `1 / (1 − p)` for kept values),
    /// or `None` when `p` is 0: what [`Linear::forward`] multiplies a LoRA input by.
    pub(crate) fn dropout_mask(&mut self, x: &Tensor, p: f32) -> Result<Option<Tensor>> {
        if p <= 0.0 {
            return Ok(None);
        }
        let keep = 1.0 / (1.0 - p);
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| if self.rng.random::<f32>() < p { 0.0 } else { keep })
            .collect();
        Ok(Some(Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?))
    }
}

/// A projection: frozen (dense or quantized) or trainable weight, optional bias, optional LoRA.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[out, in]`.
    pub weight: Weight,
    /// `[out]`.
    pub bias: Option<Tensor>,
    /// Set when fine-tuning all weights: then `weight` is this variable's (dense) tensor.
    pub full: Option<Var>,
    /// Set when this projection has an adapter.
    pub lora: Option<LoraPair>,
}

impl Linear {
    /// A frozen projection.
    pub fn new(weight: Weight, bias: Option<Tensor>) -> Linear {
        Linear { weight, bias, full: None, lora: None }
    }

    /// `[.., in] -> [.., out]`; `train` enables LoRA dropout.
    pub fn forward(&self, x: &Tensor, train: Option<&mut TrainCtx>) -> Result<Tensor> {
        let (out, inp) = self.weight.dims2()?;
        let mut shape = x.dims().to_vec();
        // All rows in one 2-D GEMM: faster than batched matmuls over a broadcast weight.
        let x = x.contiguous()?.reshape((x.elem_count() / inp, inp))?;
        let mut y = match &self.full {
            Some(w) => x.matmul(&w.as_tensor().t()?)?,
            None => crate::ops::frozen_linear(&x, &self.weight)?,
        };
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        if let Some(l) = &self.lora {
            let x = match train {
                Some(ctx) => ctx.dropout(&x, l.dropout)?,
                None => x,
            };
            // Over a bf16 base the f32 pair is cast for the products (as autocast does); the
            // cast's backward hands the pair f32 gradients.
            let (a, b) =
                (l.a.as_tensor().to_dtype(x.dtype())?, l.b.as_tensor().to_dtype(x.dtype())?);
            let delta = x.matmul(&a.t()?)?.matmul(&b.t()?)?;
            y = (y + (delta * l.scale)?)?;
        }
        if let Some(last) = shape.last_mut() {
            *last = out;
        }
        y.reshape(shape)
    }
}
