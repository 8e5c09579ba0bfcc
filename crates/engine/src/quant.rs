//! CPU matrix products on GGUF's 32-value blocks (Q4_0, Q4_1, Q8_0), the kernels of the quantized
//! decoding path (`models::qllama`).
//!
//! The weights stay in the file's own bytes; the activations are quantized on the fly to 8-bit
//! blocks of 32 with one scale each (and the scaled sum, which the 4-bit types' offsets need), and
//! each weight block meets its activation block in integer arithmetic: the scheme llama.cpp uses,
//! so the results agree with it to float rounding. candle 0.11 multiplies Q4_1 with scalar code
//! only, which is why the fast path has its own kernels: AVX2 + FMA + F16C on x86-64 (detected at
//! run time, so portable release binaries keep the fast path), plain Rust elsewhere.

use rayon::prelude::*;

/// Values per block in every type here.
pub const BLOCK: usize = 32;

/// The block types the kernels multiply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockType {
    /// f16 scale, 16 bytes of 4-bit values `q`, value = scale · (q − 8).
    Q4_0,
    /// f16 scale and minimum, 16 bytes of 4-bit values `q`, value = scale · q + minimum.
    Q4_1,
    /// f16 scale, 32 signed bytes, value = scale · q.
    Q8_0,
}

impl BlockType {
    /// Bytes of f16 scale (and minimum) that open a block.
    fn scale_bytes(self) -> usize {
        match self {
            BlockType::Q4_1 => 4,
            BlockType::Q4_0 | BlockType::Q8_0 => 2,
        }
    }

    /// Bytes per block of 32 values.
    pub fn block_bytes(self) -> usize {
        match self {
            BlockType::Q4_0 => 18,
            BlockType::Q4_1 => 20,
            BlockType::Q8_0 => 34,
        }
    }
}

/// A weight matrix of `rows` × `cols` values stored row by row in blocks, as in a GGUF file.
#[derive(Debug, Clone)]
pub struct QMatrix {
    kind: BlockType,
    rows: usize,
    cols: usize,
    data: Vec<u8>,
    /// Four rows per group, block by block (see [`QMatrix::interleave`]); else the file's layout.
    interleaved: bool,
}

impl QMatrix {
    /// Wraps a GGUF tensor's bytes; `cols` (the inner dimension) must be a multiple of 32.
    pub fn new(
        kind: BlockType,
        rows: usize,
        cols: usize,
        data: Vec<u8>,
    ) -> Result<QMatrix, String> {
        if !cols.is_multiple_of(BLOCK) {
            return Err(format!("{cols} columns are not a whole number of {BLOCK}-value blocks"));
        }
        let want = rows * cols / BLOCK * kind.block_bytes();
        if data.len() != want {
            return Err(format!("{rows}×{cols} {kind:?} needs {want} bytes, found {}", data.len()));
        }
        Ok(QMatrix { kind, rows, cols, data, interleaved: false })
    }

    /// Quantizes a row-major f32 matrix to Q8_0 (the type the kernels take for weights that
    /// arrive in another type).
    pub fn quantize_q8_0(rows: usize, cols: usize, values: &[f32]) -> Result<QMatrix, String> {
        if values.len() != rows * cols {
            return Err(format!("{} values for a {rows}×{cols} matrix", values.len()));
        }
        let mut data = Vec::with_capacity(rows * cols / BLOCK * 34);
        let acts = Q8Acts::quantize(values, cols)?;
        for b in 0..acts.d.len() {
            data.extend_from_slice(&half::f16::from_f32(acts.d[b]).to_le_bytes());
            data.extend(acts.qs[b * BLOCK..(b + 1) * BLOCK].iter().map(|&q| q as u8));
        }
        QMatrix::new(BlockType::Q8_0, rows, cols, data)
    }

    /// Rows of several matrices of one type and width stacked into one (so one parallel product
    /// computes, say, the query, key and value projections); `None` when they differ or one is
    /// already interleaved.
    pub fn stack(parts: &[&QMatrix]) -> Option<QMatrix> {
        let first = parts.first()?;
        if parts.iter().any(|p| p.kind != first.kind || p.cols != first.cols || p.interleaved) {
            return None;
        }
        let data = parts.iter().flat_map(|p| p.data.iter().copied()).collect();
        Some(QMatrix {
            kind: first.kind,
            rows: parts.iter().map(|p| p.rows).sum(),
            cols: first.cols,
            data,
            interleaved: false,
        })
    }

    /// Regroups the bytes four rows at a time, block by block: the four rows' scales (then, for
    /// Q4_1, their minimums) side by side, then their values. Same bytes, so the SIMD kernel
    /// reads four scales in one load and sums four rows at once. A no-op where the SIMD kernels
    /// do not run or the rows are not a multiple of four.
    pub fn interleave(mut self) -> QMatrix {
        if self.interleaved || !self.rows.is_multiple_of(4) || !simd() {
            return self;
        }
        let (bytes, head) = (self.kind.block_bytes(), self.kind.scale_bytes());
        let mut out = Vec::with_capacity(self.data.len());
        for g in 0..self.rows / 4 {
            for b in 0..self.cols / BLOCK {
                let blocks: [&[u8]; 4] =
                    std::array::from_fn(|lane| &self.row(4 * g + lane)[b * bytes..(b + 1) * bytes]);
                for part in (0..head).step_by(2) {
                    for blk in blocks {
                        out.extend_from_slice(&blk[part..part + 2]);
                    }
                }
                for blk in blocks {
                    out.extend_from_slice(&blk[head..]);
                }
            }
        }
        self.data = out;
        self.interleaved = true;
        self
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row `r` as f32 values (an embedding lookup).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        for (b, out) in out.chunks_exact_mut(BLOCK).enumerate() {
            let blk = &self.block(r, b)[..self.kind.block_bytes()];
            let d = f16_at(blk, 0);
            match self.kind {
                BlockType::Q4_0 | BlockType::Q4_1 => {
                    let (min, qs) = match self.kind {
                        BlockType::Q4_1 => (f16_at(blk, 2), &blk[4..]),
                        _ => (-8.0 * d, &blk[2..]),
                    };
                    for (j, &q) in qs.iter().enumerate() {
                        out[j] = d * f32::from(q & 0x0F) + min;
                        out[j + BLOCK / 2] = d * f32::from(q >> 4) + min;
                    }
                }
                BlockType::Q8_0 => {
                    for (o, &q) in out.iter_mut().zip(&blk[2..]) {
                        *o = d * f32::from(q as i8);
                    }
                }
            }
        }
    }

    /// Row `r` in the file's layout (not interleaved).
    fn row(&self, r: usize) -> &[u8] {
        let n = self.cols / BLOCK * self.kind.block_bytes();
        &self.data[r * n..(r + 1) * n]
    }

    /// Block `b` of row `r` in the file's layout, whatever the storage.
    fn block(&self, r: usize, b: usize) -> [u8; 34] {
        let bytes = self.kind.block_bytes();
        let mut blk = [0u8; 34];
        if !self.interleaved {
            blk[..bytes].copy_from_slice(&self.row(r)[b * bytes..(b + 1) * bytes]);
            return blk;
        }
        let (head, lane) = (self.kind.scale_bytes(), r % 4);
        let group = &self.data[((r / 4) * (self.cols / BLOCK) + b) * 4 * bytes..][..4 * bytes];
        for part in (0..head).step_by(2) {
            blk[part..part + 2].copy_from_slice(&group[4 * part + 2 * lane..][..2]);
        }
        let values = bytes - head;
        blk[head..bytes].copy_from_slice(&group[4 * head + lane * values..][..values]);
        blk
    }
}

/// Activations quantized to 8-bit blocks: per block of 32 a scale `d`, the values `qs` and
/// `s = d · Σ qs` (llama.cpp's Q8_1; the 4-bit types' offsets multiply it).
#[derive(Debug, Clone, Default)]
pub struct Q8Acts {
    qs: Vec<i8>,
    d: Vec<f32>,
    s: Vec<f32>,
    cols: usize,
}

impl Q8Acts {
    /// Quantizes `values`, rows of `cols` (a multiple of 32) values each.
    pub fn quantize(values: &[f32], cols: usize) -> Result<Q8Acts, String> {
        if !cols.is_multiple_of(BLOCK) || !values.len().is_multiple_of(cols) {
            return Err(format!("{} values are not rows of {cols} in blocks of 32", values.len()));
        }
        let blocks = values.len() / BLOCK;
        let mut a = Q8Acts {
            qs: vec![0; values.len()],
            d: Vec::with_capacity(blocks),
            s: Vec::with_capacity(blocks),
            cols,
        };
        for (x, q) in values.chunks_exact(BLOCK).zip(a.qs.chunks_exact_mut(BLOCK)) {
            let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut sum = 0i32;
            for (q, &v) in q.iter_mut().zip(x) {
                *q = (v * inv).round() as i8;
                sum += i32::from(*q);
            }
            // llama.cpp stores both at f16; f32 costs nothing here and rounds less.
            a.d.push(d);
            a.s.push(d * sum as f32);
        }
        Ok(a)
    }

    /// Rows (tokens).
    pub fn rows(&self) -> usize {
        self.qs.len().checked_div(self.cols).unwrap_or(0)
    }

    fn row(&self, t: usize) -> ActRow<'_> {
        let (n, b) = (self.cols, self.cols / BLOCK);
        ActRow {
            qs: &self.qs[t * n..(t + 1) * n],
            d: &self.d[t * b..(t + 1) * b],
            s: &self.s[t * b..(t + 1) * b],
        }
    }
}

#[derive(Clone, Copy)]
struct ActRow<'a> {
    qs: &'a [i8],
    d: &'a [f32],
    s: &'a [f32],
}

/// `out[t][r] = Σ_c w[r][c] · x[t][c]` for every token `t` of `x`, in parallel over the weight's
/// rows (each row is read once and meets every token while it is in cache). `out` holds
/// `x.rows() × w.rows()` values.
pub fn matmul(w: &QMatrix, x: &Q8Acts, out: &mut [f32]) -> Result<(), String> {
    if x.cols != w.cols || out.len() != x.rows() * w.rows {
        return Err(format!(
            "cannot multiply {}×{} by {} rows of {} into {} values",
            w.rows,
            w.cols,
            x.rows(),
            x.cols,
            out.len()
        ));
    }
    let tokens = x.rows();
    let rows_fn = rows_fn(w.kind, simd(), w.interleaved);
    let row_bytes = w.cols / BLOCK * w.kind.block_bytes();
    // Chunks of rows: a few per thread, so an uneven start evens out; whole groups of four, the
    // rows the SIMD kernels take at once.
    let chunk = w.rows.div_ceil(4 * rayon::current_num_threads()).max(16).next_multiple_of(4);
    if tokens == 1 {
        let act = x.row(0);
        out.par_chunks_mut(chunk).enumerate().for_each(|(c, out)| {
            let start = c * chunk * row_bytes;
            rows_fn(&w.data[start..start + out.len() * row_bytes], act, out);
        });
        return Ok(());
    }
    // Token by token over each chunk of rows (the chunk stays in cache), by weight row first,
    // then transposed: each parallel chunk writes one contiguous slice.
    let mut by_token = vec![0f32; out.len()];
    by_token.par_chunks_mut(chunk * tokens).enumerate().for_each(|(c, out)| {
        let n = out.len() / tokens;
        let start = c * chunk * row_bytes;
        let rows = &w.data[start..start + n * row_bytes];
        for (t, out) in out.chunks_exact_mut(n).enumerate() {
            rows_fn(rows, x.row(t), out);
        }
    });
    for (c, block) in by_token.chunks(chunk * tokens).enumerate() {
        let n = block.len() / tokens;
        for (t, vals) in block.chunks_exact(n).enumerate() {
            out[t * w.rows + c * chunk..][..n].copy_from_slice(vals);
        }
    }
    Ok(())
}

/// The same product with f32 activations and each weight row dequantized (slow): the reference
/// that separates a model's structure from the activations' 8-bit rounding.
pub fn matmul_f32(w: &QMatrix, x: &[f32], out: &mut [f32]) -> Result<(), String> {
    let tokens = x.len() / w.cols.max(1);
    if x.len() != tokens * w.cols || out.len() != tokens * w.rows {
        return Err(format!("cannot multiply {}×{} by {} values", w.rows, w.cols, x.len()));
    }
    let mut row = vec![0f32; w.cols];
    for r in 0..w.rows {
        w.dequantize_row(r, &mut row);
        for (t, x) in x.chunks_exact(w.cols).enumerate() {
            out[t * w.rows + r] = row.iter().zip(x).map(|(a, b)| a * b).sum();
        }
    }
    Ok(())
}

/// Whether the SIMD kernels run on this CPU.
pub fn simd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Dot products of consecutive weight rows (`w` holds `out.len()` of them) with one token.
type RowsFn = fn(&[u8], ActRow<'_>, &mut [f32]);

/// The AVX2 kernel `$kernel` (`rows` or `groups`) compiled for the block type `$kind`. The
/// caller states why the CPU has AVX2, FMA and F16C.
#[cfg(target_arch = "x86_64")]
macro_rules! avx2_kernel {
    ($kind:expr, $kernel:ident) => {
        match $kind {
            BlockType::Q4_0 => |w, a, out| unsafe { avx2::$kernel::<{ avx2::Q4_0 }>(w, a, out) },
            BlockType::Q4_1 => |w, a, out| unsafe { avx2::$kernel::<{ avx2::Q4_1 }>(w, a, out) },
            BlockType::Q8_0 => |w, a, out| unsafe { avx2::$kernel::<{ avx2::Q8_0 }>(w, a, out) },
        }
    };
}

fn rows_fn(kind: BlockType, simd: bool, interleaved: bool) -> RowsFn {
    #[cfg(target_arch = "x86_64")]
    if interleaved {
        // SAFETY (of the calls inside): only `interleave` sets the flag, after `simd()`.
        return avx2_kernel!(kind, groups);
    }
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY (of the calls inside): `simd()` confirmed AVX2, FMA and F16C on this CPU.
        return avx2_kernel!(kind, rows);
    }
    let _ = interleaved;
    let _ = simd;
    fn each(w: &[u8], a: ActRow<'_>, out: &mut [f32], dot: fn(&[u8], ActRow<'_>) -> f32) {
        let n = w.len() / out.len().max(1);
        for (o, row) in out.iter_mut().zip(w.chunks_exact(n)) {
            *o = dot(row, a);
        }
    }
    match kind {
        BlockType::Q4_0 => |w, a, out| each(w, a, out, |w, a| scalar::dot_q4(w, a, false)),
        BlockType::Q4_1 => |w, a, out| each(w, a, out, |w, a| scalar::dot_q4(w, a, true)),
        BlockType::Q8_0 => |w, a, out| each(w, a, out, scalar::dot_q8_0),
    }
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

mod scalar {
    use super::{ActRow, BLOCK, f16_at};

    /// Q4_0 (`with_min` false: the offset is −8 · scale) or Q4_1 times 8-bit activations.
    pub(super) fn dot_q4(w: &[u8], a: ActRow<'_>, with_min: bool) -> f32 {
        let bytes = if with_min { 20 } else { 18 };
        let mut sum = 0f32;
        for (b, blk) in w.chunks_exact(bytes).enumerate() {
            let d = f16_at(blk, 0);
            let (min, qs) =
                if with_min { (f16_at(blk, 2), &blk[4..]) } else { (-8.0 * d, &blk[2..]) };
            let y = &a.qs[b * BLOCK..(b + 1) * BLOCK];
            let mut dot = 0i32;
            for (j, &q) in qs.iter().enumerate() {
                dot += i32::from(q & 0x0F) * i32::from(y[j])
                    + i32::from(q >> 4) * i32::from(y[j + BLOCK / 2]);
            }
            sum += d * a.d[b] * dot as f32 + min * a.s[b];
        }
        sum
    }

    pub(super) fn dot_q8_0(w: &[u8], a: ActRow<'_>) -> f32 {
        let mut sum = 0f32;
        for (b, blk) in w.chunks_exact(34).enumerate() {
            let y = &a.qs[b * BLOCK..(b + 1) * BLOCK];
            let dot: i32 =
                blk[2..].iter().zip(y).map(|(&q, &y)| i32::from(q as i8) * i32::from(y)).sum();
            sum += f16_at(blk, 0) * a.d[b] * dot as f32;
        }
        sum
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{ActRow, BLOCK};
    use std::arch::x86_64::*;

    /// Block types as const parameters, so each kernel is compiled for one type.
    pub(super) const Q4_0: u8 = 0;
    pub(super) const Q4_1: u8 = 1;
    pub(super) const Q8_0: u8 = 2;

    const fn block_bytes(kind: u8) -> usize {
        match kind {
            Q4_0 => 18,
            Q4_1 => 20,
            _ => 34,
        }
    }

    /// Rows of `w` (`out.len()` of them) times one token: four rows at a time, so four
    /// independent sums hide each other's latency and share each activation block.
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn rows<const K: u8>(w: &[u8], a: ActRow<'_>, out: &mut [f32]) {
        let n = w.len() / out.len().max(1);
        let blocks = n / block_bytes(K);
        assert!(n * out.len() == w.len() && blocks * block_bytes(K) == n);
        assert!(a.d.len() >= blocks && a.s.len() >= blocks && a.qs.len() >= blocks * BLOCK);
        let mut r = 0;
        while r + 4 <= out.len() {
            // SAFETY: rows r..r+4 lie in `w` and hold `blocks` blocks each (asserted above).
            let v = unsafe { dot::<4, K>(w.as_ptr().add(r * n), n, blocks, a) };
            out[r..r + 4].copy_from_slice(&v);
            r += 4;
        }
        while r < out.len() {
            // SAFETY: as above, one row.
            out[r] = unsafe { dot::<1, K>(w.as_ptr().add(r * n), n, blocks, a)[0] };
            r += 1;
        }
    }

    /// `R` rows of type `K` starting at `w`, `stride` bytes apart, `blocks` blocks each.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn dot<const R: usize, const K: u8>(
        w: *const u8,
        stride: usize,
        blocks: usize,
        a: ActRow<'_>,
    ) -> [f32; R] {
        let low = _mm256_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); R];
        let mut offsets = [0f32; R];
        for b in 0..blocks {
            // SAFETY: the caller guarantees R rows of `blocks` blocks at `w` and activation
            // blocks up to `blocks` in `a`; all loads are unaligned.
            unsafe {
                let y = _mm256_loadu_si256(a.qs.as_ptr().add(b * BLOCK) as *const __m256i);
                let (yd, ys) = (*a.d.get_unchecked(b), *a.s.get_unchecked(b));
                for r in 0..R {
                    let p = w.add(r * stride + b * block_bytes(K));
                    let d = scale(p);
                    let dot = if K == Q8_0 {
                        let x = _mm256_loadu_si256(p.add(2) as *const __m256i);
                        // maddubs wants one unsigned side: |x| times y with x's sign.
                        _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
                    } else {
                        let (min, qs) = if K == Q4_1 {
                            (scale(p.add(2)), p.add(4))
                        } else {
                            (-8.0 * d, p.add(2))
                        };
                        offsets[r] += min * ys;
                        let q = _mm_loadu_si128(qs as *const __m128i);
                        // Low nibbles are values 0..16, high nibbles 16..32.
                        let x = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), low);
                        _mm256_maddubs_epi16(x, y)
                    };
                    let dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(dot, ones));
                    acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * yd), dot, acc[r]);
                }
            }
        }
        let mut out = [0f32; R];
        for r in 0..R {
            out[r] = hsum(acc[r]) + offsets[r];
        }
        out
    }

    /// Interleaved rows (`QMatrix::interleave`; `out.len()` of them, a multiple of four) times
    /// one token.
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn groups<const K: u8>(w: &[u8], a: ActRow<'_>, out: &mut [f32]) {
        let group = 4 * block_bytes(K);
        let per_group = w.len() / (out.len() / 4).max(1);
        let blocks = per_group / group;
        assert!(out.len().is_multiple_of(4) && per_group * (out.len() / 4) == w.len());
        assert!(blocks * group == per_group);
        assert!(a.d.len() >= blocks && a.s.len() >= blocks && a.qs.len() >= blocks * BLOCK);
        for (g, out) in out.chunks_exact_mut(4).enumerate() {
            // SAFETY: group g spans `per_group` bytes of `w` (asserted above); `out` holds four.
            unsafe {
                let v = dot4::<K>(w.as_ptr().add(g * per_group), blocks, a);
                _mm_storeu_ps(out.as_mut_ptr(), v);
            }
        }
    }

    /// Four interleaved rows of `blocks` blocks at `w`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn dot4<const K: u8>(w: *const u8, blocks: usize, a: ActRow<'_>) -> __m128 {
        let low = _mm256_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let head = if K == Q4_1 { 16 } else { 8 };
        let values = if K == Q8_0 { 32 } else { 16 };
        let mut acc = _mm_setzero_ps();
        let mut offsets = _mm_setzero_ps();
        for b in 0..blocks {
            // SAFETY: the caller guarantees `blocks` groups of four blocks at `w` and activation
            // blocks up to `blocks` in `a`; all loads are unaligned.
            unsafe {
                let p = w.add(b * 4 * block_bytes(K));
                let y = _mm256_loadu_si256(a.qs.as_ptr().add(b * BLOCK) as *const __m256i);
                let d = _mm_cvtph_ps(_mm_loadl_epi64(p as *const __m128i));
                let mut dots = [_mm256_setzero_si256(); 4];
                for (r, dot) in dots.iter_mut().enumerate() {
                    let q = p.add(head + r * values);
                    let prod = if K == Q8_0 {
                        let x = _mm256_loadu_si256(q as *const __m256i);
                        // maddubs wants one unsigned side: |x| times y with x's sign.
                        _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
                    } else {
                        let q = _mm_loadu_si128(q as *const __m128i);
                        // Low nibbles are values 0..16, high nibbles 16..32.
                        let x = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), low);
                        _mm256_maddubs_epi16(x, y)
                    };
                    *dot = _mm256_madd_epi16(prod, ones);
                }
                // Row r's eight partial sums end in lane r.
                let s = _mm256_hadd_epi32(
                    _mm256_hadd_epi32(dots[0], dots[1]),
                    _mm256_hadd_epi32(dots[2], dots[3]),
                );
                let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
                let dd = _mm_mul_ps(d, _mm_set1_ps(*a.d.get_unchecked(b)));
                acc = _mm_fmadd_ps(dd, _mm_cvtepi32_ps(s), acc);
                let ys = _mm_set1_ps(*a.s.get_unchecked(b));
                if K == Q4_1 {
                    let m = _mm_cvtph_ps(_mm_loadl_epi64(p.add(8) as *const __m128i));
                    offsets = _mm_fmadd_ps(m, ys, offsets);
                } else if K == Q4_0 {
                    offsets = _mm_fmadd_ps(_mm_mul_ps(d, _mm_set1_ps(-8.0)), ys, offsets);
                }
            }
        }
        _mm_add_ps(acc, offsets)
    }

    /// The f16 at `p` as f32.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn scale(p: *const u8) -> f32 {
        // SAFETY: the caller points at two readable bytes.
        let bits = unsafe { (p as *const u16).read_unaligned() };
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    fn values(n: usize, seed: u32) -> Vec<f32> {
        // Deterministic, sign-mixed, a few large values per block like real activations.
        (0..n)
            .map(|i| {
                let h = (i as u32 ^ seed).wrapping_mul(2_654_435_761) >> 8;
                let v = (h % 2001) as f32 / 1000.0 - 1.0;
                if h.is_multiple_of(97) { v * 8.0 } else { v }
            })
            .collect()
    }

    /// A matrix in `kind`, quantized by candle (the GGUF writer's bytes), and its f32 values.
    fn quantized(kind: BlockType, rows: usize, cols: usize) -> (QMatrix, Vec<f32>) {
        let dtype = match kind {
            BlockType::Q4_0 => GgmlDType::Q4_0,
            BlockType::Q4_1 => GgmlDType::Q4_1,
            BlockType::Q8_0 => GgmlDType::Q8_0,
        };
        let w = Tensor::from_vec(values(rows * cols, 7), (rows, cols), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, dtype).unwrap();
        let deq = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        (QMatrix::new(kind, rows, cols, q.data().unwrap().into_owned()).unwrap(), deq)
    }

    #[test]
    fn rows_dequantize_to_candles_values() {
        for kind in [BlockType::Q4_0, BlockType::Q4_1, BlockType::Q8_0] {
            let (m, deq) = quantized(kind, 3, 64);
            let mut row = vec![0f32; 64];
            m.dequantize_row(2, &mut row);
            assert_eq!(row, deq[128..], "{kind:?}");
        }
    }

    #[test]
    fn products_match_the_dequantized_matrix_and_simd_matches_scalar() {
        let (rows, cols, tokens) = (43, 96, 3); // 43: groups of four and a remainder
        let x = values(tokens * cols, 11);
        let acts = Q8Acts::quantize(&x, cols).unwrap();
        // The activations as the kernels see them: each within half a step of the input.
        let xq: Vec<f32> =
            acts.qs.iter().enumerate().map(|(i, &q)| f32::from(q) * acts.d[i / BLOCK]).collect();
        for (i, (a, b)) in x.iter().zip(&xq).enumerate() {
            assert!((a - b).abs() <= acts.d[i / BLOCK] / 2.0 + 1e-6, "{a} quantized to {b}");
        }
        for kind in [BlockType::Q4_0, BlockType::Q4_1, BlockType::Q8_0] {
            let (m, deq) = quantized(kind, rows, cols);
            let mut out = vec![0f32; tokens * rows];
            matmul(&m, &acts, &mut out).unwrap();
            for t in 0..tokens {
                for r in 0..rows {
                    let exact: f32 = (0..cols).map(|c| deq[r * cols + c] * xq[t * cols + c]).sum();
                    let got = out[t * rows + r];
                    assert!(
                        (got - exact).abs() < 1e-4 * (1.0 + exact.abs()),
                        "{kind:?} {t} {r}: {got} vs {exact}"
                    );
                    let scalar = match kind {
                        BlockType::Q4_0 => scalar::dot_q4(m.row(r), acts.row(t), false),
                        BlockType::Q4_1 => scalar::dot_q4(m.row(r), acts.row(t), true),
                        BlockType::Q8_0 => scalar::dot_q8_0(m.row(r), acts.row(t)),
                    };
                    assert!(
                        (got - scalar).abs() <= 1e-5 * (1.0 + scalar.abs()),
                        "{kind:?}: {got} vs {scalar}"
                    );
                }
            }
            // One token alone gives the same row as among several.
            let one = Q8Acts::quantize(&x[cols..2 * cols], cols).unwrap();
            let mut single = vec![0f32; rows];
            matmul(&m, &one, &mut single).unwrap();
            assert_eq!(single, out[rows..2 * rows]);
        }
    }

    #[test]
    fn interleaved_rows_give_the_same_values_and_products() {
        let (rows, cols) = (44, 96);
        for kind in [BlockType::Q4_0, BlockType::Q4_1, BlockType::Q8_0] {
            let (plain, _) = quantized(kind, rows, cols);
            let mixed = plain.clone().interleave();
            assert_eq!(mixed.interleaved, simd(), "{kind:?}");
            let (mut a, mut b) = (vec![0f32; cols], vec![0f32; cols]);
            for r in [0, 5, 43] {
                plain.dequantize_row(r, &mut a);
                mixed.dequantize_row(r, &mut b);
                assert_eq!(a, b, "{kind:?} row {r}");
            }
            for tokens in [1, 3] {
                let acts = Q8Acts::quantize(&values(tokens * cols, 5), cols).unwrap();
                let (mut p, mut m) = (vec![0f32; tokens * rows], vec![0f32; tokens * rows]);
                matmul(&plain, &acts, &mut p).unwrap();
                matmul(&mixed, &acts, &mut m).unwrap();
                for (x, y) in p.iter().zip(&m) {
                    assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{kind:?}: {x} vs {y}");
                }
            }
        }
        // Interleaving needs whole groups of four rows.
        let (odd, _) = quantized(BlockType::Q4_1, 6, 32);
        assert!(!odd.interleave().interleaved);
    }

    #[test]
    fn stacked_matrices_multiply_as_their_parts() {
        let (a, _) = quantized(BlockType::Q4_1, 5, 64);
        let (b, _) = quantized(BlockType::Q4_1, 3, 64);
        let (c, _) = quantized(BlockType::Q8_0, 3, 64);
        assert!(QMatrix::stack(&[&a, &c]).is_none());
        let ab = QMatrix::stack(&[&a, &b]).unwrap();
        let acts = Q8Acts::quantize(&values(64, 3), 64).unwrap();
        let (mut whole, mut pa, mut pb) = (vec![0f32; 8], vec![0f32; 5], vec![0f32; 3]);
        matmul(&ab, &acts, &mut whole).unwrap();
        matmul(&a, &acts, &mut pa).unwrap();
        matmul(&b, &acts, &mut pb).unwrap();
        assert_eq!(whole, [pa, pb].concat());
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(QMatrix::new(BlockType::Q4_1, 2, 48, vec![0; 60]).is_err());
        assert!(QMatrix::new(BlockType::Q4_1, 2, 64, vec![0; 79]).is_err());
        let (m, _) = quantized(BlockType::Q8_0, 2, 64);
        let acts = Q8Acts::quantize(&values(32, 1), 32).unwrap();
        assert!(matmul(&m, &acts, &mut [0f32; 2]).is_err());
    }
}
