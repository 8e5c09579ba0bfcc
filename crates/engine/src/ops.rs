//! Ops candle lacks for training: a matmul against a frozen weight that builds no weight gradient,
//! dense or quantized.
//!
//! candle's `matmul` backward always computes the gradient of both operands, so a frozen base
//! weight costs a weight-sized tensor and an extra GEMM per layer and step. [`frozen_linear`]
//! is a custom op over the input alone: its forward runs the backend's GEMM against the weight,
//! its backward returns only `g·W`. A quantized weight (QLoRA's frozen base) is dequantized for
//! the GEMM in both directions and dropped right after, as bitsandbytes does: the model keeps
//! only the quantized blocks, and the result is exactly LoRA over the dequantized base.
//!
//! [`rms_norm`], [`rope`], [`silu_mul`] and [`causal_softmax`] (scale + causal mask + softmax)
//! are one pass each way on the CPU with hand-written backward passes: candle's fused forms record
//! no backward, and its composite forms record several activation-sized ops each. On a GPU the
//! values come from candle's fused kernels and the same backward is attached through
//! [`precomputed1`]/[`precomputed2`].

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, D, Layout, Result, Shape, Storage, Tensor};

/// A frozen projection weight `[out, in]`: f32, or quantized blocks (GGUF types).
#[derive(Debug, Clone)]
pub enum Weight {
    /// A plain tensor (also the trainable one under full fine-tuning).
    Dense(Tensor),
    /// Quantized blocks, dequantized on use.
    Quantized(Arc<QTensor>),
}

impl Weight {
    /// `(out, in)`.
    pub fn dims2(&self) -> Result<(usize, usize)> {
        match self {
            Weight::Dense(t) => t.dims2(),
            Weight::Quantized(q) => q.shape().dims2(),
        }
    }

    /// The f32 values (a cheap handle for `Dense`, a fresh dequantized tensor otherwise).
    pub fn dense(&self) -> Result<Tensor> {
        match self {
            Weight::Dense(t) => Ok(t.clone()),
            Weight::Quantized(q) => q.dequantize(&q.device()),
        }
    }

    /// The values as `dtype` (QLoRA over a bf16 base dequantizes to f32, then narrows).
    pub fn dense_as(&self, dtype: candle_core::DType) -> Result<Tensor> {
        self.dense()?.to_dtype(dtype)
    }

    /// The tensor when dense.
    pub fn as_dense(&self) -> Option<&Tensor> {
        match self {
            Weight::Dense(t) => Some(t),
            Weight::Quantized(_) => None,
        }
    }

    /// Bytes held.
    pub fn storage_bytes(&self) -> usize {
        match self {
            Weight::Dense(t) => t.elem_count() * t.dtype().size_in_bytes(),
            Weight::Quantized(q) => q.storage_size_in_bytes(),
        }
    }

    /// Quantizes a dense weight to `dtype` (a quantized one is kept as it is). Rows must be a
    /// whole number of `dtype`'s blocks.
    pub fn quantize(&self, dtype: GgmlDType) -> Result<Weight> {
        match self {
            Weight::Quantized(_) => Ok(self.clone()),
            Weight::Dense(t) => {
                let (_, inp) = t.dims2()?;
                if !inp.is_multiple_of(dtype.block_size()) {
                    candle_core::bail!(
                        "cannot quantize to {dtype:?}: rows of {inp} values are not a whole number of {}-value blocks",
                        dtype.block_size()
                    );
                }
                Ok(Weight::Quantized(Arc::new(QTensor::quantize(t, dtype)?)))
            }
        }
    }
}

/// `x · wᵀ` (`x`: `[.., in]`, `w`: `[out, in]`), differentiable in `x` only.
pub fn frozen_linear(x: &Tensor, w: &Weight) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let (out, inp) = w.dims2()?;
    let rows = x.elem_count() / inp;
    // One 2-D GEMM over all rows (faster than a batched one, and what the op expects).
    let x2 = x.contiguous()?.reshape((rows, inp))?;
    let y = x2.apply_op1(FrozenLinear { w: w.clone() })?;
    let mut shape = dims;
    if let Some(last) = shape.last_mut() {
        *last = out;
    }
    y.reshape(shape)
}

struct FrozenLinear {
    /// `[out, in]`.
    w: Weight,
}

impl FrozenLinear {
    fn out_shape(&self, l: &Layout) -> Result<(usize, usize, usize)> {
        let (m, k) = l.shape().dims2()?;
        let (n, k2) = self.w.dims2()?;
        if k != k2 {
            candle_core::bail!("frozen_linear: input width {k} does not match weight {n}x{k2}");
        }
        Ok((m, n, k))
    }
}

/// `x [m, k] · wᵀ` with `wᵀ` as a strided view of `w [n, k]`.
fn gemm<S: BackendStorage>(
    x: &S,
    xl: &Layout,
    w: &S,
    wl: &Layout,
    (m, n, k): (usize, usize, usize),
) -> Result<(S, Shape)> {
    let wt = wl.transpose(0, 1)?;
    Ok((x.matmul(w, (1, m, n, k), xl, &wt)?, Shape::from((m, n))))
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(&self, x: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        let mnk = self.out_shape(xl)?;
        let w = self.w.dense_as(x.dtype())?;
        let (ws, wl) = w.storage_and_layout();
        match &*ws {
            Storage::Cpu(w) => gemm(x, xl, w, wl, mnk),
            _ => candle_core::bail!("frozen_linear: weight and input are on different devices"),
        }
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        x: &candle_core::CudaStorage,
        xl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let mnk = self.out_shape(xl)?;
        let w = self.w.dense_as(x.dtype())?;
        let (ws, wl) = w.storage_and_layout();
        match &*ws {
            Storage::Cuda(w) => gemm(x, xl, w, wl, mnk),
            _ => candle_core::bail!("frozen_linear: weight and input are on different devices"),
        }
    }

    #[cfg(feature = "metal")]
    fn metal_fwd(
        &self,
        x: &candle_core::MetalStorage,
        xl: &Layout,
    ) -> Result<(candle_core::MetalStorage, Shape)> {
        let mnk = self.out_shape(xl)?;
        let w = self.w.dense_as(x.dtype())?;
        let (ws, wl) = w.storage_and_layout();
        match &*ws {
            Storage::Metal(w) => gemm(x, xl, w, wl, mnk),
            _ => candle_core::bail!("frozen_linear: weight and input are on different devices"),
        }
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.matmul(&self.w.dense_as(grad.dtype())?)?))
    }
}

/// `base + Σ aᵢ · bᵢ` for `aᵢ` `[m, kᵢ]`, `bᵢ` `[kᵢ, n]` and `base` `[m, n]` (any strides: a
/// transposed view costs nothing). On the CPU in f32 every product accumulates into one output
/// (no zeroed buffer per product, no separate sum over the rows); elsewhere candle's products
/// and adds. What a layer's input gradient is (`dy·W` plus each LoRA pair's `d(xA)·A`, over
/// the projections that share the input), and a LoRA projection's output.
pub(crate) fn products_sum(base: Option<&Tensor>, terms: &[(&Tensor, &Tensor)]) -> Result<Tensor> {
    let Some(&(a0, b0)) = terms.first() else {
        candle_core::bail!("products_sum: no product");
    };
    let on_cpu =
        terms.iter().all(|(a, b)| cpu_f32(a) && cpu_f32(b) && a.rank() == 2 && b.rank() == 2)
            && base.is_none_or(cpu_f32);
    if !on_cpu {
        let mut sum = a0.matmul(b0)?;
        for (a, b) in &terms[1..] {
            sum = (sum + a.matmul(b)?)?;
        }
        return match base {
            Some(base) => base + sum,
            None => Ok(sum),
        };
    }
    let (m, n) = (a0.dim(0)?, b0.dim(1)?);
    let mut out: Vec<f32> = Vec::with_capacity(m * n);
    let mut read = false;
    if let Some(base) = base {
        if base.dims() != [m, n] {
            candle_core::bail!("products_sum: base {:?} for a {m}x{n} sum", base.dims());
        }
        let base = base.contiguous()?;
        let (sb, lb) = base.storage_and_layout();
        let Storage::Cpu(sb) = &*sb else {
            candle_core::bail!("products_sum: a CPU base expected");
        };
        out.extend_from_slice(f32_values("products_sum", sb, lb)?);
        read = true;
    }
    // The buffer's start, valid for its whole capacity (`m × n`) whatever its length.
    let dst = out.as_mut_ptr();
    for (a, b) in terms {
        let k = a.dim(1)?;
        if a.dim(0)? != m || b.dims() != [k, n] {
            candle_core::bail!("products_sum: {:?} · {:?} into {m}x{n}", a.dims(), b.dims());
        }
        if m * n * k == 0 {
            continue;
        }
        let (sa, la) = a.storage_and_layout();
        let (sb, lb) = b.storage_and_layout();
        let (av, bv) = (in_bounds(&sa, la)?, in_bounds(&sb, lb)?);
        // SAFETY: `dst` has room for `m × n` values; both operands' layouts lie inside their
        // storage (`in_bounds`); with `read` false the output is only written.
        unsafe {
            gemm_f32(
                (m, n, k),
                dst,
                read,
                (av.as_ptr().add(la.start_offset()), la.stride()),
                (bv.as_ptr().add(lb.start_offset()), lb.stride()),
            )
        };
        read = true;
    }
    if !read {
        // Every product was empty: the sum is zero.
        out.resize(m * n, 0.0);
    } else if out.len() < m * n {
        // SAFETY: the first product wrote all `m × n` values.
        unsafe { out.set_len(m * n) };
    }
    Tensor::from_vec(out, (m, n), &candle_core::Device::Cpu)
}

/// `a · b` for `a` `[.., m, k]` and `b` `[.., k, n]` over the same leading dimensions (any
/// strides), as candle's `matmul` — on the CPU in f32 into an output that is not zero-filled
/// first (candle's is: a pass over every product's output).
pub(crate) fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let r = a.rank();
    let batch_dims = &a.dims()[..r.saturating_sub(2)];
    if !(cpu_f32(a) && cpu_f32(b) && r >= 2 && b.rank() == r && &b.dims()[..r - 2] == batch_dims) {
        return a.matmul(b);
    }
    let (m, k, n) = (a.dim(r - 2)?, a.dim(r - 1)?, b.dim(r - 1)?);
    if b.dim(r - 2)? != k {
        return a.matmul(b);
    }
    let batch: usize = batch_dims.iter().product();
    let mut out: Vec<f32> = Vec::with_capacity(batch * m * n);
    let mut shape = batch_dims.to_vec();
    shape.extend([m, n]);
    if batch * m * n == 0 {
        return Tensor::from_vec(out, shape, &candle_core::Device::Cpu);
    }
    if k == 0 {
        out.resize(batch * m * n, 0.0);
        return Tensor::from_vec(out, shape, &candle_core::Device::Cpu);
    }
    let (sa, la) = a.storage_and_layout();
    let (sb, lb) = b.storage_and_layout();
    let (av, bv) = (in_bounds(&sa, la)?, in_bounds(&sb, lb)?);
    let dst = out.as_mut_ptr();
    for i in 0..batch {
        // The i-th matrix of each operand, from its strides over the leading dimensions.
        let (mut oa, mut ob, mut rest) = (la.start_offset(), lb.start_offset(), i);
        for d in (0..r - 2).rev() {
            let at = rest % batch_dims[d];
            rest /= batch_dims[d];
            oa += at * la.stride()[d];
            ob += at * lb.stride()[d];
        }
        // SAFETY: `dst` has room for `batch × m × n` values, this product writes its own
        // `m × n` of them; every index the operands' layouts reach is inside their storage
        // (`in_bounds`); the output is only written.
        unsafe {
            gemm_f32(
                (m, n, k),
                dst.add(i * m * n),
                false,
                (av.as_ptr().add(oa), &la.stride()[r - 2..]),
                (bv.as_ptr().add(ob), &lb.stride()[r - 2..]),
            )
        };
    }
    // SAFETY: every product wrote its `m × n` values.
    unsafe { out.set_len(batch * m * n) };
    Tensor::from_vec(out, shape, &candle_core::Device::Cpu)
}

fn cpu_f32(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == candle_core::DType::F32
}

/// The f32 values of a CPU storage, once checked that every index `layout` reaches lies inside.
fn in_bounds<'a>(s: &'a Storage, layout: &Layout) -> Result<&'a [f32]> {
    let Storage::Cpu(CpuStorage::F32(v)) = s else {
        candle_core::bail!("f32 CPU operands expected");
    };
    let last = layout.start_offset()
        + layout
            .dims()
            .iter()
            .zip(layout.stride())
            .map(|(d, s)| d.saturating_sub(1) * s)
            .sum::<usize>();
    if layout.dims().iter().all(|&d| d > 0) && last >= v.len() {
        candle_core::bail!("an operand's layout reaches past its storage");
    }
    Ok(v)
}

/// `dst [m, n] (row-major) = (read ? dst : 0) + a · b` on rayon's threads; `a` and `b` given
/// as their first value and (row, column) strides.
///
/// # Safety
/// `dst` is valid for `m × n` writes (and reads with `read`); every index of `a` and `b` that
/// their strides reach over `m × k` and `k × n` is valid for reads.
unsafe fn gemm_f32(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    read: bool,
    (a, a_stride): (*const f32, &[usize]),
    (b, b_stride): (*const f32, &[usize]),
) {
    let threads = rayon::current_num_threads();
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: as the caller promises.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            read,
            a,
            a_stride[1] as isize,
            a_stride[0] as isize,
            b,
            b_stride[1] as isize,
            b_stride[0] as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

/// `softmax(scale · x + causal mask)` over the last dimension of attention scores
/// `[.., q, kv]`: query `i` sees keys `0..=i + kv − q` (the cached positions and itself).
/// Differentiable in `x`. On the CPU one fused pass; elsewhere candle's fused softmax (which
/// records no backward) with the same hand-written backward attached.
pub fn causal_softmax(x: &Tensor, scale: f64) -> Result<Tensor> {
    let dims = x.dims();
    let (q, kv) = match dims {
        [.., q, kv] if kv >= q => (*q, *kv),
        _ => candle_core::bail!("causal_softmax: scores {dims:?} are not [.., queries, keys]"),
    };
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        return x.contiguous()?.apply_op1(CausalSoftmax { scale: scale as f32 });
    }
    fused_causal_softmax(x, scale, q, kv)
}

/// The additive causal mask `[q, kv]`: 0 where a query sees a key, −∞ elsewhere. Built on the
/// device (a copy from the host would make the CPU wait for the GPU at every layer).
fn causal_mask(x: &Tensor, q: usize, kv: usize) -> Result<Tensor> {
    let dev = x.device();
    let last_seen = (Tensor::arange(0u32, q as u32, dev)? + (kv - q) as f64)?.unsqueeze(1)?;
    let keys = Tensor::arange(0u32, kv as u32, dev)?.unsqueeze(0)?;
    let seen = keys.broadcast_le(&last_seen)?;
    let zeros = Tensor::zeros((q, kv), x.dtype(), dev)?;
    let minus_inf = Tensor::full(f32::NEG_INFINITY, (q, kv), dev)?.to_dtype(x.dtype())?;
    seen.where_cond(&zeros, &minus_inf)
}

/// [`causal_softmax`] on any device: candle's fused softmax for the value, attached with
/// [`softmax_backward`] (three kernels forward and five backward instead of ~7 and ~15).
fn fused_causal_softmax(x: &Tensor, scale: f64, q: usize, kv: usize) -> Result<Tensor> {
    // Broadcasts as two-dimensional ones: candle's GPU kernels index a broadcast operand with a
    // division per dimension and element (the 5-D form took 7× a plain add).
    let rows = x.elem_count() / (q * kv);
    let mask = causal_mask(x, q, kv)?.reshape((1, q * kv))?;
    let scaled = (x.detach().contiguous()?.reshape((rows, q * kv))? * scale)?;
    let y = candle_nn::ops::softmax_last_dim(&scaled.broadcast_add(&mask)?.reshape(x.shape())?)?;
    // The backward reads the op's own result: no second copy of the scores is kept.
    let bwd = move |_: &Tensor, y: &Tensor, g: &Tensor| {
        Ok(Some(causal_softmax_backward(&y.detach(), g, scale)?))
    };
    precomputed1(x, y, Box::new(bwd))
}

/// [`softmax_backward`] for the output `y` `[.., q, kv]` of [`causal_softmax`]: on the CPU one
/// pass per row over the keys the query sees (the rest of the gradient is 0).
pub(crate) fn causal_softmax_backward(y: &Tensor, g: &Tensor, scale: f64) -> Result<Tensor> {
    let f32 = candle_core::DType::F32;
    if !(y.device().is_cpu() && y.dtype() == f32 && g.dtype() == f32) {
        return softmax_backward(y, g, scale);
    }
    match y.dims() {
        [.., q, kv] if kv >= q => {}
        dims => candle_core::bail!("causal_softmax_backward: {dims:?} are not [.., queries, keys]"),
    }
    y.contiguous()?.apply_op2_no_bwd(&g.contiguous()?, &CausalSoftmaxGrad { scale: scale as f32 })
}

/// `(y, g) -> s · y ⊙ (g − Σ g ⊙ y)` over the keys each query sees ([`causal_softmax_backward`]).
struct CausalSoftmaxGrad {
    scale: f32,
}

impl CustomOp2 for CausalSoftmaxGrad {
    fn name(&self) -> &'static str {
        "causal-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        ys: &CpuStorage,
        yl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        use rayon::prelude::*;
        let (yv, gv) = two_f32("causal_softmax backward", (ys, yl), (gs, gl))?;
        let dims = yl.dims();
        let (q, kv) = (dims[dims.len() - 2], dims[dims.len() - 1]);
        let mut out = vec![0f32; yv.len()];
        out.par_chunks_mut(kv).zip(yv.par_chunks(kv).zip(gv.par_chunks(kv))).enumerate().for_each(
            |(row, (d, (y, g)))| {
                let seen = row % q + kv - q + 1;
                let (d, y, g) = (&mut d[..seen], &y[..seen], &g[..seen]);
                let dot: f32 = y.iter().zip(g).map(|(y, g)| y * g).sum();
                for ((d, &y), &g) in d.iter_mut().zip(y).zip(g) {
                    *d = self.scale * y * (g - dot);
                }
            },
        );
        Ok((CpuStorage::F32(out), yl.shape().clone()))
    }
}

/// d/dx softmax(s·x) = s · y ⊙ (g − Σ g ⊙ y), for output `y` and upstream gradient `g`
/// (masked keys have y = 0).
fn softmax_backward(y: &Tensor, g: &Tensor, scale: f64) -> Result<Tensor> {
    // Rows of the last dimension as a 2-D tensor: the row sums broadcast over two dimensions.
    let kv = y.dim(candle_core::D::Minus1)?;
    let (y2, g2) = (y.reshape(((), kv))?, g.contiguous()?.reshape(((), kv))?);
    let dot = (&g2 * &y2)?.sum_keepdim(1)?;
    ((g2.broadcast_sub(&dot)? * y2)? * scale)?.reshape(y.shape())
}

/// [`causal_softmax`] from candle's composite ops (the reference of the tests).
#[cfg(test)]
fn composite_causal_softmax(x: &Tensor, scale: f64, q: usize, kv: usize) -> Result<Tensor> {
    candle_nn::ops::softmax(&(x * scale)?.broadcast_add(&causal_mask(x, q, kv)?)?, D::Minus1)
}

struct CausalSoftmax {
    scale: f32,
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        use rayon::prelude::*;
        let x = f32_values("causal_softmax", s, l)?;
        let dims = l.dims();
        let (q, kv) = (dims[dims.len() - 2], dims[dims.len() - 1]);
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(kv).zip(x.par_chunks(kv)).enumerate().for_each(|(row, (y, x))| {
            // Keys past this query's position stay at probability 0.
            let seen = row % q + kv - q + 1;
            let (x, y) = (&x[..seen], &mut y[..seen]);
            let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v * self.scale));
            for (y, &x) in y.iter_mut().zip(x) {
                *y = x * self.scale - max;
            }
            crate::vmath::exp_in_place(y);
            let inv = 1.0 / y.iter().sum::<f32>();
            y.iter_mut().for_each(|y| *y *= inv);
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(causal_softmax_backward(y, grad, self.scale as f64)?))
    }
}

/// The backward of [`precomputed1`]: `(input, output, upstream gradient) -> input gradient`.
pub type Backward1 = Box<dyn Fn(&Tensor, &Tensor, &Tensor) -> Result<Option<Tensor>> + Send + Sync>;
/// The backward of [`precomputed2`]: `(a, b, upstream gradient) -> (a's, b's gradient)`.
pub type Backward2 = Box<
    dyn Fn(&Tensor, &Tensor, &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> + Send + Sync,
>;

/// `value`, computed without recording a graph, as the result of an op on `x` whose backward
/// is `bwd`: how a forward pass that keeps almost nothing (a checkpointed block) still takes
/// part in backpropagation. `value` must be a whole contiguous tensor; the op's result is a
/// copy of it, and the op lets go of `value` once copied (the graph keeps one copy, not two).
/// When `x` is not tracked (nothing to differentiate), the result is `value` itself.
pub fn precomputed1(x: &Tensor, value: Tensor, bwd: Backward1) -> Result<Tensor> {
    // Nothing to differentiate: the value as it is (the op would only copy it).
    if !x.track_op() {
        return Ok(value);
    }
    x.apply_op1(Precomputed { value: Some(value).into(), bwd })
}

/// [`precomputed1`] for an op of two inputs (a chunked loss over hidden states and a head).
pub fn precomputed2(a: &Tensor, b: &Tensor, value: Tensor, bwd: Backward2) -> Result<Tensor> {
    if !a.track_op() && !b.track_op() {
        return Ok(value);
    }
    a.apply_op2(b, Precomputed { value: Some(value).into(), bwd })
}

struct Precomputed<B> {
    /// Taken by the forward pass.
    value: std::sync::Mutex<Option<Tensor>>,
    bwd: B,
}

impl<B> Precomputed<B> {
    /// A copy of `value`'s storage on the backend `pick` selects.
    fn copy<S: BackendStorage>(&self, pick: impl Fn(&Storage) -> Option<&S>) -> Result<(S, Shape)> {
        let value = self.value.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(value) = value else {
            candle_core::bail!("precomputed op: the forward pass ran twice");
        };
        let (storage, layout) = value.storage_and_layout();
        let s = pick(&storage).ok_or_else(|| {
            candle_core::Error::Msg("precomputed op: value and inputs on different devices".into())
        })?;
        if !layout.is_contiguous() || layout.start_offset() != 0 {
            candle_core::bail!("precomputed op: the value is not a whole contiguous tensor");
        }
        Ok((s.try_clone(layout)?, layout.shape().clone()))
    }
}

fn cpu(s: &Storage) -> Option<&CpuStorage> {
    match s {
        Storage::Cpu(c) => Some(c),
        _ => None,
    }
}

#[cfg(feature = "cuda")]
fn cuda(s: &Storage) -> Option<&candle_core::CudaStorage> {
    match s {
        Storage::Cuda(c) => Some(c),
        _ => None,
    }
}

#[cfg(feature = "metal")]
fn metal(s: &Storage) -> Option<&candle_core::MetalStorage> {
    match s {
        Storage::Metal(c) => Some(c),
        _ => None,
    }
}

impl CustomOp1 for Precomputed<Backward1> {
    fn name(&self) -> &'static str {
        "precomputed"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        self.copy(cpu)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        self.copy(cuda)
    }

    #[cfg(feature = "metal")]
    fn metal_fwd(
        &self,
        _: &candle_core::MetalStorage,
        _: &Layout,
    ) -> Result<(candle_core::MetalStorage, Shape)> {
        self.copy(metal)
    }

    fn bwd(&self, x: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        (self.bwd)(x, res, grad)
    }
}

impl CustomOp2 for Precomputed<Backward2> {
    fn name(&self) -> &'static str {
        "precomputed"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.copy(cpu)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        self.copy(cuda)
    }

    #[cfg(feature = "metal")]
    fn metal_fwd(
        &self,
        _: &candle_core::MetalStorage,
        _: &Layout,
        _: &candle_core::MetalStorage,
        _: &Layout,
    ) -> Result<(candle_core::MetalStorage, Shape)> {
        self.copy(metal)
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        (self.bwd)(a, b, grad)
    }
}

/// RMSNorm over the last dimension, `x / √(mean(x²) + eps) · w`, differentiable in `x` and
/// `w`. On the CPU one fused pass; elsewhere candle's fused kernel (which records no backward)
/// with the same hand-written backward attached.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 && w.dtype() == x.dtype() {
        return x.contiguous()?.apply_op2(&w.contiguous()?, RmsNorm { eps });
    }
    fused_rms_norm(x, w, eps)
}

/// [`rms_norm`] on any device: candle's fused kernel for the value, [`rms_norm_backward`] for
/// the gradients.
fn fused_rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let (xd, wd) = (x.detach().contiguous()?, w.detach().contiguous()?);
    let y = candle_nn::ops::rms_norm(&xd, &wd, eps as f32)?;
    precomputed2(x, w, y, Box::new(move |x, w, g| rms_norm_backward(x, w, g, eps)))
}

#[cfg(test)]
fn composite_rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let var = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_div(&(var + eps)?.sqrt()?)?.broadcast_mul(w)
}

struct RmsNorm {
    eps: f64,
}

/// `y = x / √(mean(x²) + eps) ⊙ w` for one row: the CPU kernel of [`rms_norm`], also the
/// quantized decoder's.
pub(crate) fn rms_norm_row(x: &[f32], w: &[f32], eps: f64, y: &mut [f32]) {
    let mean = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let r = 1.0 / (mean + eps as f32).sqrt();
    for ((y, x), w) in y.iter_mut().zip(x).zip(w) {
        *y = x * r * w;
    }
}

/// `y = silu(g) ⊙ u = g·σ(g)·u` for one run of values: the CPU kernel of [`silu_mul`], also the
/// quantized decoder's.
pub(crate) fn silu_mul_row(g: &[f32], u: &[f32], y: &mut [f32]) {
    // e^(−g) for the whole run first, vectorized.
    for (y, &g) in y.iter_mut().zip(g) {
        *y = -g;
    }
    crate::vmath::exp_in_place(y);
    for ((y, &g), &u) in y.iter_mut().zip(g).zip(u) {
        *y = g / (1.0 + *y) * u;
    }
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        use rayon::prelude::*;
        let (x, w) = (f32_values("rms_norm", xs, xl)?, f32_values("rms_norm", ws, wl)?);
        let h = w.len();
        if h == 0 || xl.dims().last() != Some(&h) {
            candle_core::bail!("rms_norm: weight of {h} for input {:?}", xl.dims());
        }
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(h)
            .zip(x.par_chunks(h))
            .for_each(|(y, x)| rms_norm_row(x, w, self.eps, y));
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        rms_norm_backward(x, w, g, self.eps)
    }
}

/// The gradients of [`rms_norm`]: for `x`, and for `w` when it trains.
pub(crate) fn rms_norm_backward(
    x: &Tensor,
    w: &Tensor,
    g: &Tensor,
    eps: f64,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let f32 = candle_core::DType::F32;
    if x.dtype() != f32 {
        // bf16 activations: the statistics in f32, as transformers' RMSNorm computes them.
        let (dx, dw) =
            rms_norm_backward(&x.to_dtype(f32)?, &w.to_dtype(f32)?, &g.to_dtype(f32)?, eps)?;
        let dw = if w.track_op() { dw.map(|d| d.to_dtype(w.dtype())).transpose()? } else { None };
        return Ok((dx.map(|d| d.to_dtype(x.dtype())).transpose()?, dw));
    }
    // n = x·r with r = (mean(x²) + eps)^-½; dx = r·(g⊙w − n·mean(g⊙w⊙n)); dw = Σ_rows g⊙n.
    if x.device().is_cpu() && !w.track_op() && w.dtype() == f32 && g.dtype() == f32 {
        return Ok((Some(rms_norm_dx_cpu(x, w, g, eps)?), None));
    }
    let r = (x.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?.recip()?;
    let n = x.broadcast_mul(&r)?;
    let gw = g.broadcast_mul(w)?;
    let dot = (&gw * &n)?.mean_keepdim(D::Minus1)?;
    let dx = (gw - n.broadcast_mul(&dot)?)?.broadcast_mul(&r)?;
    let dw = if w.track_op() {
        let h = w.elem_count();
        Some((g * n)?.reshape(((), h))?.sum(0)?.reshape(w.shape())?)
    } else {
        None
    };
    Ok((Some(dx), dw))
}

/// The input gradient of [`rms_norm`] on the CPU, one pass per row.
fn rms_norm_dx_cpu(x: &Tensor, w: &Tensor, g: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op3_no_bwd(&w.contiguous()?, &g.contiguous()?, &RmsNormGrad { eps })
}

/// `(x, w, g) -> dx` of [`rms_norm`] ([`rms_norm_dx_cpu`]).
struct RmsNormGrad {
    eps: f64,
}

impl candle_core::CustomOp3 for RmsNormGrad {
    fn name(&self) -> &'static str {
        "rms-norm-grad"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        use rayon::prelude::*;
        let (xv, gv) = two_f32("rms_norm backward", (xs, xl), (gs, gl))?;
        let wv = f32_values("rms_norm backward", ws, wl)?;
        let h = wv.len();
        if h == 0 || xl.dims().last() != Some(&h) {
            candle_core::bail!("rms_norm backward: weight of {h} for input {:?}", xl.dims());
        }
        let eps = self.eps as f32;
        let mut out = vec![0f32; xv.len()];
        out.par_chunks_mut(h).zip(xv.par_chunks(h).zip(gv.par_chunks(h))).for_each(
            |(d, (x, g))| {
                let mean = x.iter().map(|v| v * v).sum::<f32>() / h as f32;
                let r = 1.0 / (mean + eps).sqrt();
                // mean(g⊙w⊙n) with n = x·r.
                let dot = x.iter().zip(g).zip(wv).map(|((x, g), w)| g * w * x).sum::<f32>() * r
                    / h as f32;
                for (((d, &x), &g), &w) in d.iter_mut().zip(x).zip(g).zip(wv) {
                    *d = r * (g * w - x * r * dot);
                }
            },
        );
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }
}

/// `silu(gate) ⊙ up`, the gated MLP's activation, differentiable in both inputs. On the CPU
/// one pass forward and one backward (candle's composite records two ops forward, and about six
/// `[tokens, intermediate]`-sized ones backward); elsewhere candle's ops.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let f32 = candle_core::DType::F32;
    if gate.device().is_cpu()
        && gate.dtype() == f32
        && up.dtype() == f32
        && gate.shape() == up.shape()
    {
        return gate.contiguous()?.apply_op2(&up.contiguous()?, SiluMul);
    }
    gate.silu()? * up
}

/// `a + b` for two tensors of one shape. On the CPU (f32) a loop on rayon's threads, the ones
/// the matrix products run on: candle's own elementwise pool would wake its threads, which then
/// spin after each op and take cores from the next product. Elsewhere candle's add.
pub(crate) fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let f32 = candle_core::DType::F32;
    if !(a.device().is_cpu() && a.dtype() == f32 && b.dtype() == f32 && a.shape() == b.shape()) {
        return a + b;
    }
    a.contiguous()?.apply_op2_no_bwd(&b.contiguous()?, &Add)
}

/// `(a, b) -> a + b` on rayon's threads ([`add`]).
struct Add;

impl CustomOp2 for Add {
    fn name(&self) -> &'static str {
        "add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        use rayon::prelude::*;
        let (x, y) = two_f32("add", (s1, l1), (s2, l2))?;
        let mut out = Vec::with_capacity(x.len());
        out.par_extend(x.par_iter().zip(y.par_iter()).with_min_len(CHUNK).map(|(x, y)| x + y));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// The values of a contiguous f32 CPU tensor (the CPU kernels here take no other).
fn f32_values<'a>(what: &str, s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(all) = s else {
        candle_core::bail!("{what}: f32 input expected");
    };
    let Some((start, end)) = l.contiguous_offsets() else {
        candle_core::bail!("{what}: contiguous input expected");
    };
    Ok(&all[start..end])
}

/// `(a, b)` of two contiguous f32 CPU tensors of one shape.
fn two_f32<'a>(
    what: &str,
    (a, al): (&'a CpuStorage, &Layout),
    (b, bl): (&'a CpuStorage, &Layout),
) -> Result<(&'a [f32], &'a [f32])> {
    if al.shape() != bl.shape() {
        candle_core::bail!("{what}: shapes {:?} and {:?} differ", al.dims(), bl.dims());
    }
    Ok((f32_values(what, a, al)?, f32_values(what, b, bl)?))
}

/// Rows per parallel task of the elementwise kernels.
const CHUNK: usize = 4096;

struct SiluMul;

impl CustomOp2 for SiluMul {
    fn name(&self) -> &'static str {
        "silu-mul"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        use rayon::prelude::*;
        let (g, u) = two_f32("silu_mul", (gs, gl), (us, ul))?;
        let mut out = vec![0f32; g.len()];
        out.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
            .for_each(|(y, (g, u))| silu_mul_row(g, u, y));
        Ok((CpuStorage::F32(out), gl.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dg, du) = silu_mul_backward(grad, gate, up)?;
        Ok((Some(dg), Some(du)))
    }
}

/// The gradients of [`silu_mul`] for the upstream gradient `d`: `(d/dgate, d/dup)`.
pub(crate) fn silu_mul_backward(
    d: &Tensor,
    gate: &Tensor,
    up: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let f32 = candle_core::DType::F32;
    if d.device().is_cpu() && [d, gate, up].iter().all(|t| t.dtype() == f32) {
        let both = d.contiguous()?.apply_op3_no_bwd(
            &gate.contiguous()?,
            &up.contiguous()?,
            &SiluMulGrad,
        )?;
        return Ok((both.get(0)?, both.get(1)?));
    }
    silu_mul_backward_composite(d, gate, up)
}

/// [`silu_mul_backward`] from candle's ops (any device and type).
fn silu_mul_backward_composite(d: &Tensor, gate: &Tensor, up: &Tensor) -> Result<(Tensor, Tensor)> {
    // silu'(g) = σ(g)·(1 + g·(1 − σ(g))) = σ + silu − silu·σ.
    let sig = candle_nn::ops::sigmoid(gate)?;
    let silu = gate.silu()?;
    let slope = ((&sig + &silu)? - (&silu * &sig)?)?;
    Ok((((d * up)? * slope)?, (d * silu)?))
}

/// `(d, gate, up) -> [d ⊙ up ⊙ σ(gate)·(1 + gate·(1 − σ(gate))), d ⊙ silu(gate)]`, stacked.
struct SiluMulGrad;

impl candle_core::CustomOp3 for SiluMulGrad {
    fn name(&self) -> &'static str {
        "silu-mul-grad"
    }

    fn cpu_fwd(
        &self,
        ds: &CpuStorage,
        dl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        use rayon::prelude::*;
        let (d, g) = two_f32("silu_mul backward", (ds, dl), (gs, gl))?;
        let (_, u) = two_f32("silu_mul backward", (ds, dl), (us, ul))?;
        let n = d.len();
        let mut out = vec![0f32; 2 * n];
        let (dg, du) = out.split_at_mut(n);
        dg.par_chunks_mut(CHUNK)
            .zip(du.par_chunks_mut(CHUNK))
            .zip(d.par_chunks(CHUNK).zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK))))
            .for_each(|((dg, du), (d, (g, u)))| {
                // e^(−g) for the whole chunk first, in `dg`.
                for (e, &g) in dg.iter_mut().zip(g) {
                    *e = -g;
                }
                crate::vmath::exp_in_place(dg);
                for i in 0..d.len() {
                    let s = 1.0 / (1.0 + dg[i]);
                    dg[i] = d[i] * u[i] * s * (1.0 + g[i] * (1.0 - s));
                    du[i] = d[i] * g[i] * s;
                }
            });
        let mut dims = vec![2];
        dims.extend_from_slice(dl.dims());
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}

/// The rotary tables of the positions a forward pass computes, `cos` and `sin`
/// `[positions, head_dim / 2]`, prepared once for every [`rope`] of that pass: as plain values
/// for the CPU kernel, and with `−sin` for the GPU form's backward.
#[derive(Debug, Clone)]
pub struct Rotary {
    cos: Tensor,
    sin: Tensor,
    minus_sin: Tensor,
    /// On the CPU.
    values: Option<Arc<RotaryValues>>,
}

/// `cos` and `sin`, `[positions, head_dim / 2]` row-major.
#[derive(Debug)]
struct RotaryValues {
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Rotary {
    /// Tables from `cos` and `sin` `[positions, head_dim / 2]`.
    pub fn new(cos: &Tensor, sin: &Tensor) -> Result<Rotary> {
        if cos.dims2()? != sin.dims2()? {
            candle_core::bail!("rope: cos {:?} and sin {:?} differ", cos.dims(), sin.dims());
        }
        let (cos, sin) = (cos.contiguous()?, sin.contiguous()?);
        let values = if cos.device().is_cpu() && cos.dtype() == candle_core::DType::F32 {
            let v = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
            Some(Arc::new(RotaryValues { cos: v(&cos)?, sin: v(&sin)? }))
        } else {
            None
        };
        Ok(Rotary { minus_sin: sin.neg()?, cos, sin, values })
    }
}

/// Rotary position embedding in the half-split layout (Hugging Face's `rotate_half`) of
/// `x [batch, heads, positions, head_dim]`: `(x₁, x₂) -> (x₁·cos − x₂·sin, x₂·cos + x₁·sin)`.
/// Differentiable in `x` (its backward is the inverse rotation). On the CPU one pass each way
/// (candle's `rope_slow` records six ops); elsewhere candle's fused `rope` (which records no
/// backward), its backward the same kernel with `−sin`.
pub fn rope(x: &Tensor, r: &Rotary) -> Result<Tensor> {
    let (_, _, t, d) = x.dims4()?;
    if r.cos.dims2()? != (t, d / 2) || d % 2 != 0 {
        candle_core::bail!("rope: tables {:?} for input {:?}", r.cos.dims(), x.dims());
    }
    match &r.values {
        Some(values) if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 => {
            let op = Rope { values: values.clone(), inverse: false };
            x.contiguous()?.apply_op1(op)
        }
        _ => fused_rope(x, r),
    }
}

/// [`rope`] on any device through candle's fused kernel, both ways.
fn fused_rope(x: &Tensor, r: &Rotary) -> Result<Tensor> {
    let y = candle_nn::rotary_emb::rope(&x.detach().contiguous()?, &r.cos, &r.sin)?;
    let r = r.clone();
    let bwd = move |_: &Tensor, _: &Tensor, g: &Tensor| Ok(Some(rope_backward(g, &r)?));
    precomputed1(x, y, Box::new(bwd))
}

/// The gradient of [`rope`] for the upstream gradient `g`: the inverse rotation.
pub(crate) fn rope_backward(g: &Tensor, r: &Rotary) -> Result<Tensor> {
    match &r.values {
        Some(values) if g.device().is_cpu() && g.dtype() == candle_core::DType::F32 => {
            let op = Rope { values: values.clone(), inverse: true };
            g.contiguous()?.apply_op1_no_bwd(&op)
        }
        _ => candle_nn::rotary_emb::rope(&g.contiguous()?, &r.cos, &r.minus_sin),
    }
}

struct Rope {
    values: Arc<RotaryValues>,
    /// Rotate by −θ (the backward pass).
    inverse: bool,
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "rope"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        use rayon::prelude::*;
        let x = f32_values("rope", s, l)?;
        let (_, _, t, d) = l.shape().dims4()?;
        let half = d / 2;
        let sign = if self.inverse { -1.0 } else { 1.0 };
        let mut out = vec![0f32; x.len()];
        // One task per (batch, head): `t` rows of `d`.
        out.par_chunks_mut(t * d).zip(x.par_chunks(t * d)).for_each(|(y, x)| {
            for p in 0..t {
                let (cos, sin) =
                    (&self.values.cos[p * half..][..half], &self.values.sin[p * half..][..half]);
                let (x1, x2) = x[p * d..][..d].split_at(half);
                let (y1, y2) = y[p * d..][..d].split_at_mut(half);
                for i in 0..half {
                    let s = sign * sin[i];
                    y1[i] = x1[i] * cos[i] - x2[i] * s;
                    y2[i] = x2[i] * cos[i] + x1[i] * s;
                }
            }
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let inverse = Rope { values: self.values.clone(), inverse: !self.inverse };
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&inverse)?))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Largest absolute difference between two tensors of one shape.
    pub(crate) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
    }

    /// The uninitialized-output products equal candle's, over transposed and narrowed views,
    /// batches, a starting value and several products summed.
    #[test]
    fn products_equal_candles() {
        let dev = Device::Cpu;
        let r = |shape: &[usize]| Tensor::randn(0f32, 1.0, shape, &dev).unwrap();
        let (a, b) = (r(&[2, 3, 7, 5]), r(&[2, 3, 6, 5]));
        // b transposed (strided), a narrowed (offset).
        let (an, bt) = (a.narrow(2, 1, 4).unwrap(), b.t().unwrap());
        let ours = matmul(&an, &bt).unwrap();
        assert_eq!(ours.dims(), &[2, 3, 4, 6]);
        assert!(max_diff(&ours, &an.matmul(&bt).unwrap()) < 1e-5);
        let (x, y, p, q, base) = (r(&[9, 4]), r(&[4, 3]), r(&[3, 9]), r(&[3, 3]), r(&[9, 3]));
        let pt = p.t().unwrap();
        let sum = products_sum(Some(&base), &[(&x, &y), (&pt, &q)]).unwrap();
        let reference = (&base + x.matmul(&y).unwrap() + pt.matmul(&q).unwrap()).unwrap();
        assert!(max_diff(&sum, &reference) < 1e-5);
        let sum = products_sum(None, &[(&x, &y)]).unwrap();
        assert!(max_diff(&sum, &x.matmul(&y).unwrap()) < 1e-5);
        assert!(products_sum(None, &[(&x, &q)]).is_err(), "4 columns times 3 rows");
    }

    #[test]
    fn matches_matmul_and_builds_only_the_input_gradient() {
        let dev = Device::Cpu;
        let x =
            Var::from_tensor(&Tensor::arange(0f32, 24., &dev).unwrap().reshape((2, 3, 4)).unwrap())
                .unwrap();
        let w = (Tensor::arange(0f32, 20., &dev).unwrap().reshape((5, 4)).unwrap() * 0.1).unwrap();
        let y = frozen_linear(x.as_tensor(), &Weight::Dense(w.clone())).unwrap();
        let reference = x.as_tensor().broadcast_matmul(&w.t().unwrap()).unwrap();
        assert_eq!(y.dims(), &[2, 3, 5]);
        assert_eq!(y.to_vec3::<f32>().unwrap(), reference.to_vec3::<f32>().unwrap());
        let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let gx = grads.get(x.as_tensor()).unwrap();
        let expected = (reference * 2.0).unwrap().broadcast_matmul(&w).unwrap();
        let diff =
            (gx - expected).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-4, "{diff}");
        assert!(grads.get(&w).is_none(), "the frozen weight must get no gradient");
    }

    #[test]
    fn a_quantized_weight_acts_as_its_dequantized_values() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (3, 64), &dev).unwrap()).unwrap();
        let w = Tensor::randn(0f32, 1., (5, 64), &dev).unwrap();
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let q = Weight::Dense(w.clone()).quantize(dtype).unwrap();
            assert!(q.storage_bytes() * 3 < 5 * 64 * 4, "{dtype:?} must be smaller than f32");
            let dq = q.dense().unwrap();
            // Quantized, not merely relabelled: the values moved, but not far.
            let err =
                (&dq - &w).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(err > 0.0 && err < 0.5, "{dtype:?}: {err}");
            let y = frozen_linear(x.as_tensor(), &q).unwrap();
            let reference = x.as_tensor().matmul(&dq.t().unwrap()).unwrap();
            assert_eq!(y.to_vec2::<f32>().unwrap(), reference.to_vec2::<f32>().unwrap());
            let grads = y.sum_all().unwrap().backward().unwrap();
            let gx = grads.get(x.as_tensor()).unwrap();
            let expected =
                Tensor::ones((3, 5), candle_core::DType::F32, &dev).unwrap().matmul(&dq).unwrap();
            let diff = (gx - expected)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-4, "{dtype:?}: {diff}");
        }
        assert!(
            Weight::Dense(Tensor::zeros((2, 48), candle_core::DType::F32, &dev).unwrap())
                .quantize(GgmlDType::Q4_1)
                .is_err(),
            "48 values are not whole 32-value blocks"
        );
    }

    /// Asserts that `ours` has `reference`'s values (within `value_tol`) and sends `vars` the
    /// same gradients (same shapes, within `grad_tol`) for one non-uniform upstream gradient.
    fn assert_matches(
        what: &str,
        (ours, reference): (Tensor, Tensor),
        vars: &[&Var],
        (value_tol, grad_tol): (f32, f32),
    ) {
        let d = max_diff(&ours, &reference);
        assert!(d < value_tol, "{what}: values differ by {d}");
        let up = Tensor::randn(0f32, 1., ours.shape(), ours.device()).unwrap();
        let g1 = (ours * &up).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (reference * &up).unwrap().sum_all().unwrap().backward().unwrap();
        for v in vars {
            let (a, b) = (g1.get(v.as_tensor()).unwrap(), g2.get(v.as_tensor()).unwrap());
            assert_eq!(a.dims(), v.dims(), "{what}: gradient shape");
            let d = max_diff(a, b);
            assert!(d < grad_tol, "{what}: gradient differs by {d}");
        }
    }

    #[test]
    fn causal_softmax_matches_the_composite_in_value_and_gradient() {
        let dev = Device::Cpu;
        // Two heads, 5 queries after 3 cached keys (8 keys), and a square case.
        for (q, kv) in [(5, 8), (6, 6), (1, 4)] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 2., (2, q, kv), &dev).unwrap()).unwrap();
            let scale = 0.125;
            let ours = causal_softmax(x.as_tensor(), scale).unwrap();
            let reference = composite_causal_softmax(x.as_tensor(), scale, q, kv).unwrap();
            assert_matches(&format!("{q}x{kv}"), (ours, reference), &[&x], (1e-6, 1e-6));
        }
    }

    #[test]
    fn rms_norm_matches_the_composite_in_value_and_gradients() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 3., (2, 5, 16), &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(1f32, 0.5, 16, &dev).unwrap()).unwrap();
        let ours = rms_norm(x.as_tensor(), w.as_tensor(), 1e-6).unwrap();
        let reference = composite_rms_norm(x.as_tensor(), w.as_tensor(), 1e-6).unwrap();
        assert_matches("rms_norm", (ours, reference), &[&x, &w], (1e-5, 1e-4));
        // A frozen weight gets no gradient, and the input's comes from the one-pass kernel.
        let frozen = w.as_tensor().detach();
        let pair = (
            rms_norm(x.as_tensor(), &frozen, 1e-6).unwrap(),
            composite_rms_norm(x.as_tensor(), &frozen, 1e-6).unwrap(),
        );
        assert_matches("rms_norm, frozen weight", pair, &[&x], (1e-5, 1e-4));
        let y = rms_norm(x.as_tensor(), &frozen, 1e-6).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        assert!(g.get(&frozen).is_none() && g.get(x.as_tensor()).is_some());
    }

    #[test]
    fn silu_mul_matches_the_composite_in_value_and_gradients() {
        let dev = Device::Cpu;
        // More than one parallel chunk, and a ragged tail.
        let shape = (3, 2 * CHUNK / 3 + 7);
        let gate = Var::from_tensor(&Tensor::randn(0f32, 3., shape, &dev).unwrap()).unwrap();
        let up = Var::from_tensor(&Tensor::randn(0f32, 1., shape, &dev).unwrap()).unwrap();
        let ours = silu_mul(gate.as_tensor(), up.as_tensor()).unwrap();
        let reference = (gate.as_tensor().silu().unwrap() * up.as_tensor()).unwrap();
        assert_matches("silu_mul", (ours, reference), &[&gate, &up], (1e-5, 1e-5));
    }

    /// `(cos, sin)` of random angles, `[t, d / 2]`.
    fn rotary_tables(t: usize, d: usize) -> (Tensor, Tensor) {
        let angles = Tensor::randn(0f32, 2., (t, d / 2), &Device::Cpu).unwrap();
        (angles.cos().unwrap(), angles.sin().unwrap())
    }

    #[test]
    fn rope_matches_rope_slow_in_value_and_gradient() {
        let dev = Device::Cpu;
        let (t, d) = (5, 8);
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (2, 3, t, d), &dev).unwrap()).unwrap();
        let (cos, sin) = rotary_tables(t, d);
        let ours = rope(x.as_tensor(), &Rotary::new(&cos, &sin).unwrap()).unwrap();
        let reference = candle_nn::rotary_emb::rope_slow(x.as_tensor(), &cos, &sin).unwrap();
        assert_matches("rope", (ours, reference), &[&x], (1e-6, 1e-6));
        let short = Rotary::new(&cos.narrow(0, 0, 4).unwrap(), &sin.narrow(0, 0, 4).unwrap());
        assert!(rope(x.as_tensor(), &short.unwrap()).is_err());
        assert!(Rotary::new(&cos.narrow(0, 0, 4).unwrap(), &sin).is_err());
    }

    /// The GPU forms (candle's fused kernels for the value, our backward attached), run here on
    /// the CPU, against candle's composite ops.
    #[test]
    fn fused_kernel_forms_match_the_composites_in_value_and_gradients() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 2., (2, 3, 5, 8), &dev).unwrap()).unwrap();
        let softmax = (
            fused_causal_softmax(x.as_tensor(), 0.3, 5, 8).unwrap(),
            composite_causal_softmax(x.as_tensor(), 0.3, 5, 8).unwrap(),
        );
        assert_matches("softmax", softmax, &[&x], (1e-5, 1e-5));
        let w = Var::from_tensor(&Tensor::randn(1f32, 0.5, 8, &dev).unwrap()).unwrap();
        let norm = (
            fused_rms_norm(x.as_tensor(), w.as_tensor(), 1e-6).unwrap(),
            composite_rms_norm(x.as_tensor(), w.as_tensor(), 1e-6).unwrap(),
        );
        assert_matches("rms_norm", norm, &[&x, &w], (1e-4, 1e-4));
        let (cos, sin) = rotary_tables(5, 8);
        let rope = (
            fused_rope(x.as_tensor(), &Rotary::new(&cos, &sin).unwrap()).unwrap(),
            candle_nn::rotary_emb::rope_slow(x.as_tensor(), &cos, &sin).unwrap(),
        );
        assert_matches("rope", rope, &[&x], (1e-5, 1e-5));
        let (d, g, u) = (
            Tensor::randn(0f32, 1., (4, 9), &dev).unwrap(),
            Tensor::randn(0f32, 2., (4, 9), &dev).unwrap(),
            Tensor::randn(0f32, 1., (4, 9), &dev).unwrap(),
        );
        let (dg, du) = silu_mul_backward_composite(&d, &g, &u).unwrap();
        let (kg, ku) = silu_mul_backward(&d, &g, &u).unwrap();
        assert!(max_diff(&dg, &kg) < 1e-5 && max_diff(&du, &ku) < 1e-5, "silu_mul backward");
    }
}
