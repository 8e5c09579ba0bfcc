//! `exp` over f32 slices, vectorized: the fused CPU ops' softmax and SiLU spend their time in
//! it, and libm's `expf` is one value per call.
//!
//! Cephes' `expf` scheme: `e^x = 2^n · e^r` with `n = round(x / ln 2)` and `|r| ≤ ln 2 / 2`, a
//! degree-6 polynomial for `e^r`, `2^n` built from its exponent bits. Within 2 ulp of `f32::exp`
//! on `[-87, 88]`; below that it flushes to `2^-126`-scale values instead of 0, which no softmax
//! or sigmoid here can tell apart. Plain loops that the compiler vectorizes: eight wide where
//! the CPU has AVX2 (chosen at run time, as the quantized kernels are), four (SSE2) elsewhere.

/// `x ← e^x` for every value.
pub fn exp_in_place(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::quant::simd() {
        // SAFETY: `simd()` confirmed AVX2 and FMA on this CPU.
        return unsafe { exp_avx2(xs) };
    }
    exp_portable(xs)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_avx2(xs: &mut [f32]) {
    exp_portable(xs)
}

#[inline(always)]
fn exp_portable(xs: &mut [f32]) {
    for x in xs {
        *x = exp1(*x);
    }
}

#[inline(always)]
fn exp1(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so `n · ln 2` is exact in its high part.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 · 2^23 rounds to the nearest integer in plain float
    // arithmetic (no `roundps` needed on baseline x86-64).
    const ROUND: f32 = 12_582_912.0;
    // `max`/`min` (not `clamp`) so a NaN becomes a number here and the conversion below is
    // defined; the NaN itself is returned at the end.
    #[allow(clippy::manual_clamp)] // clamp keeps NaN, which the conversion below must not see
    let xc = x.max(-87.3).min(88.7);
    let n = (xc * LOG2_E + ROUND) - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e = p * r * r + r + 1.0;
    // SAFETY: xc is a number in [-87.3, 88.7], so n is an integer in [-126, 128].
    let n = unsafe { n.to_int_unchecked::<i32>() };
    let y = e * f32::from_bits(((n + 127) as u32) << 23);
    if x.is_nan() { x } else { y }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_libm() {
        let xs: Vec<f32> = (0..200_001).map(|i| -87.0 + 175.0 * i as f32 / 200_000.0).collect();
        let mut ours = xs.clone();
        exp_in_place(&mut ours);
        let mut portable = xs.clone();
        exp_portable(&mut portable);
        for ((&x, &e), &p) in xs.iter().zip(&ours).zip(&portable) {
            let want = x.exp();
            let ulp = (want.to_bits() as i64 - e.to_bits() as i64).abs();
            assert!(ulp <= 2, "exp({x}) = {e}, libm {want} ({ulp} ulp)");
            assert_eq!(e, p, "the AVX2 and portable builds differ at {x}");
        }
        let mut edges = [0.0f32, -200.0, 200.0, f32::NEG_INFINITY, f32::NAN];
        exp_in_place(&mut edges);
        assert_eq!(edges[0], 1.0);
        assert!(edges[1] >= 0.0 && edges[1] < 1e-37 && edges[2] > 1e38 && edges[3] < 1e-37);
        // A diverging run's NaN must stay visible.
        assert!(edges[4].is_nan());
    }
}
