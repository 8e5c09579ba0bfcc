//! Ops candle lacks for training: a matmul against a frozen weight that builds no weight gradient.
//!
//! candle's `matmul` backward always computes the gradient of both operands, so a frozen base
//! weight costs a weight-sized tensor and an extra GEMM per layer and step. [`frozen_linear`]
//! is a custom op over the input alone: its forward runs the backend's GEMM against the weight,
//! its backward returns only `g·W`.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Storage, Tensor};

/// `x · wᵀ` (`x`: `[.., in]`, `w`: `[out, in]`), differentiable in `x` only.
pub fn frozen_linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
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
    /// `[out, in]`, contiguous.
    w: Tensor,
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
        let (ws, wl) = self.w.storage_and_layout();
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
        let (ws, wl) = self.w.storage_and_layout();
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
        let (ws, wl) = self.w.storage_and_layout();
        match &*ws {
            Storage::Metal(w) => gemm(x, xl, w, wl, mnk),
            _ => candle_core::bail!("frozen_linear: weight and input are on different devices"),
        }
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.matmul(&self.w)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matches_matmul_and_builds_only_the_input_gradient() {
        let dev = Device::Cpu;
        let x =
            Var::from_tensor(&Tensor::arange(0f32, 24., &dev).unwrap().reshape((2, 3, 4)).unwrap())
                .unwrap();
        let w = (Tensor::arange(0f32, 20., &dev).unwrap().reshape((5, 4)).unwrap() * 0.1).unwrap();
        let y = frozen_linear(x.as_tensor(), &w).unwrap();
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
}
