//! Ops candle lacks for training: a matmul against a frozen weight that builds no weight gradient.
//!
//! candle's `matmul` backward always computes the gradient of both operands, so a frozen base
//! weight costs a weight-sized tensor and an extra GEMM per layer and step. [`frozen_linear`]
//! computes `x·Wᵀ` outside the graph and attaches only the input gradient `g·W`.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// `x · wᵀ` (`x`: `[.., in]`, `w`: `[out, in]`), differentiable in `x` only.
pub fn frozen_linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let y = x.detach().broadcast_matmul(&w.t()?)?;
    if !x.track_op() {
        return Ok(y);
    }
    x.apply_op2(&y, AttachInputGrad { w: w.clone() })
}

/// Forward: the second operand (already computed) unchanged. Backward: `g·W` for the first.
struct AttachInputGrad {
    w: Tensor,
}

fn clone_contiguous<S: BackendStorage>(s: &S, l: &Layout) -> Result<(S, Shape)> {
    if !l.is_contiguous() || l.start_offset() != 0 {
        candle_core::bail!("frozen_linear: output must be contiguous");
    }
    Ok((s.try_clone(l)?, l.shape().clone()))
}

impl CustomOp2 for AttachInputGrad {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        y: &CpuStorage,
        ly: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        clone_contiguous(y, ly)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
        y: &candle_core::CudaStorage,
        ly: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        clone_contiguous(y, ly)
    }

    #[cfg(feature = "metal")]
    fn metal_fwd(
        &self,
        _: &candle_core::MetalStorage,
        _: &Layout,
        y: &candle_core::MetalStorage,
        ly: &Layout,
    ) -> Result<(candle_core::MetalStorage, Shape)> {
        clone_contiguous(y, ly)
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _y: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(grad.broadcast_matmul(&self.w)?), None))
    }
}
