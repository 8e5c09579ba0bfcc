//! CPU matrix products on GGUF's 32-value blocks (Q4_0, Q4_1, Q8_0), the kernels of the quantized
//! decoding path (`models::qllama`).
//!
//! The weights stay in the file's own bytes; the activations are quantized on the fly to 8-bit
//! blocks of 32 with one scale each (and the scaled sum, which the 4-bit types' offsets need), and
//! each weight block meets its activation block in integer arithmetic: the scheme llama.cpp uses,
//! so the results agree with it to float rounding. candle 0.11 multiplies Q4_1 with scalar code
//! only, which is why the fast path has its own kernels: AVX2 + FMA + F16C on x86-64 (detected at
//! run time, so portable release binaries keep the fast path), plain Rust elsewhere. Several
//! tokens (a prompt, a batch of sequences) share each weight block once it is unpacked, on
//! AVX-512 VNNI where the CPU has it (`vnni`), and each token's values are the ones it gets
//! alone, to the bit.

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
    /// Σ qs per block (the batched Q8_0 kernel's correction).
    sums: Vec<i32>,
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
            sums: Vec::with_capacity(blocks),
            cols,
        };
        let simd = simd();
        for (x, q) in values.chunks_exact(BLOCK).zip(a.qs.chunks_exact_mut(BLOCK)) {
            let (d, sum) = match simd {
                // SAFETY: `simd()` confirmed AVX2, FMA and F16C on this CPU.
                #[cfg(target_arch = "x86_64")]
                true => unsafe { avx2::quantize_block(x, q) },
                _ => quantize_block(x, q),
            };
            // llama.cpp stores both at f16; f32 costs nothing here and rounds less.
            a.d.push(d);
            a.s.push(d * sum as f32);
            a.sums.push(sum);
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
            sums: &self.sums[t * b..(t + 1) * b],
        }
    }
}

/// One block of 32 values to bytes: `(scale, Σ bytes)`.
fn quantize_block(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut sum = 0i32;
    for (q, &v) in q.iter_mut().zip(x) {
        *q = (v * inv).round() as i8;
        sum += i32::from(*q);
    }
    (d, sum)
}

#[derive(Clone, Copy)]
struct ActRow<'a> {
    qs: &'a [i8],
    d: &'a [f32],
    s: &'a [f32],
    sums: &'a [i32],
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
    let acts: Vec<ActRow<'_>> = (0..tokens).map(|t| x.row(t)).collect();
    if let Some(f) = tokens_fn(w.kind, w.interleaved, vnni()) {
        // Interleaved rows meet every token block by block, each group unpacked once for
        // several tokens (a batch's rows, a prompt's tokens: the weights are read once for all
        // of them). Each parallel chunk of rows writes its columns of `out` in place.
        let base = Strided { ptr: out.as_mut_ptr(), rows: 0, stride: w.rows };
        // Whole pairs of groups: the VNNI kernel takes eight rows at once.
        let chunk = chunk.next_multiple_of(8);
        let chunks = w.rows.div_ceil(chunk);
        (0..chunks).into_par_iter().for_each(|c| {
            let (start, n) = (c * chunk, chunk.min(w.rows - c * chunk));
            let rows = &w.data[start * row_bytes..(start + n) * row_bytes];
            // SAFETY: `out` holds `tokens` rows of `w.rows` values (checked above); this chunk
            // alone writes columns start..start + n of each.
            unsafe { f(rows, &acts, base.columns(start, n)) };
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
            rows_fn(rows, acts[t], out);
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

/// Whether the batched kernels may use AVX-512 VNNI (`vpdpbusd` on 256-bit vectors, with the
/// 32 registers of AVX-512), besides [`simd`].
pub fn vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            simd()
                && std::arch::is_x86_feature_detected!("avx512vnni")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512bw")
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

/// Interleaved rows (`out.rows` of them) times several tokens, written in place.
///
/// # Safety
/// `out` must be valid for writes of `out.rows` values at `out.ptr + t · out.stride` for each
/// token `t`, with no other reference to them.
type TokensFn = unsafe fn(&[u8], &[ActRow<'_>], Strided);

/// Where a chunk of rows writes its products: `rows` values per token, from `ptr`, tokens
/// `stride` values apart (a chunk's columns of a `tokens × rows` output).
#[derive(Clone, Copy)]
struct Strided {
    ptr: *mut f32,
    rows: usize,
    stride: usize,
}

impl Strided {
    /// `n` columns from `start`.
    ///
    /// # Safety
    /// They must lie within the output.
    unsafe fn columns(&self, start: usize, n: usize) -> Strided {
        // SAFETY: the caller's.
        Strided { ptr: unsafe { self.ptr.add(start) }, rows: n, stride: self.stride }
    }
}

// SAFETY: a plain address; `matmul` hands each parallel chunk disjoint columns.
unsafe impl Send for Strided {}
unsafe impl Sync for Strided {}

/// The kernel that shares each unpacked weight block among tokens, where the rows are
/// interleaved (so the SIMD kernels run).
fn tokens_fn(kind: BlockType, interleaved: bool, vnni: bool) -> Option<TokensFn> {
    #[cfg(target_arch = "x86_64")]
    if interleaved && vnni {
        // SAFETY (of the calls inside): `vnni()` confirmed AVX-512 VNNI, VL and BW besides
        // `simd()`'s AVX2, FMA and F16C.
        let f: TokensFn = match kind {
            BlockType::Q4_0 => vnni::pairs::<{ avx2::Q4_0 }>,
            BlockType::Q4_1 => vnni::pairs::<{ avx2::Q4_1 }>,
            BlockType::Q8_0 => vnni::pairs::<{ avx2::Q8_0 }>,
        };
        return Some(f);
    }
    #[cfg(target_arch = "x86_64")]
    if interleaved {
        // SAFETY (of the calls inside): only `interleave` sets the flag, after `simd()`.
        let f: TokensFn = match kind {
            BlockType::Q4_0 => {
                |w, a, out| unsafe { avx2::groups_tokens::<{ avx2::Q4_0 }>(w, a, out) }
            }
            BlockType::Q4_1 => {
                |w, a, out| unsafe { avx2::groups_tokens::<{ avx2::Q4_1 }>(w, a, out) }
            }
            BlockType::Q8_0 => {
                |w, a, out| unsafe { avx2::groups_tokens::<{ avx2::Q8_0 }>(w, a, out) }
            }
        };
        return Some(f);
    }
    let _ = (kind, interleaved, vnni);
    None
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
    use super::{ActRow, BLOCK, Strided};
    use std::arch::x86_64::*;

    /// Block types as const parameters, so each kernel is compiled for one type.
    pub(super) const Q4_0: u8 = 0;
    pub(super) const Q4_1: u8 = 1;
    pub(super) const Q8_0: u8 = 2;

    pub(super) const fn block_bytes(kind: u8) -> usize {
        match kind {
            Q4_0 => 18,
            Q4_1 => 20,
            _ => 34,
        }
    }

    /// `super::quantize_block` eight values at a time, to the same bytes: the same maximum
    /// (NaN ignored, as `f32::max` does), the same products, and rounding half away from zero
    /// as `f32::round` (adding just under one half with the value's sign, then truncating, is
    /// exact below 2²³), saturating as `as i8` does, NaN to 0.
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn quantize_block(x: &[f32], q: &mut [i8]) -> (f32, i32) {
        assert!(x.len() == BLOCK && q.len() == BLOCK);
        let magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
        let sign = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MIN));
        // SAFETY: 32 values at `x` (asserted above); unaligned loads.
        let v: [__m256; 4] = unsafe {
            let p = x.as_ptr();
            [
                _mm256_loadu_ps(p),
                _mm256_loadu_ps(p.add(8)),
                _mm256_loadu_ps(p.add(16)),
                _mm256_loadu_ps(p.add(24)),
            ]
        };
        // max_ps returns its second operand where either is NaN: NaN values are skipped.
        let mut m = _mm256_setzero_ps();
        for v in v {
            m = _mm256_max_ps(_mm256_and_ps(v, magnitude), m);
        }
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
        let d = amax / 127.0;
        let inv = _mm256_set1_ps(if d > 0.0 { 1.0 / d } else { 0.0 });
        let half = _mm256_set1_ps(0.499_999_97);
        let (lo, hi) = (_mm256_set1_ps(-128.0), _mm256_set1_ps(127.0));
        let mut ints = [_mm256_setzero_si256(); 4];
        let mut sum = _mm256_setzero_si256();
        for (i, v) in v.into_iter().enumerate() {
            let v = _mm256_mul_ps(v, inv);
            let number = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_ORD_Q>(v, v));
            let v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
            let v = _mm256_add_ps(v, _mm256_or_ps(_mm256_and_ps(v, sign), half));
            ints[i] = _mm256_and_si256(_mm256_cvttps_epi32(v), number);
            sum = _mm256_add_epi32(sum, ints[i]);
        }
        let bytes = _mm256_packs_epi16(
            _mm256_packs_epi32(ints[0], ints[1]),
            _mm256_packs_epi32(ints[2], ints[3]),
        );
        let bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        // SAFETY: 32 bytes at `q` (asserted above).
        unsafe { _mm256_storeu_si256(q.as_mut_ptr() as *mut __m256i, bytes) };
        let s = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        (d, _mm_cvtsi128_si32(s))
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

    /// Interleaved rows (`out.rows` of them, a multiple of four) times the tokens `a`, written
    /// in place (row r of token t at `out.ptr + t · out.stride + r`). Each group's blocks are
    /// unpacked once
    /// for up to four tokens ([`TILE`]); each token meets them in the operations of `dot4`, in
    /// the same order, so its values are those `groups` gives it alone, to the bit (a row of a
    /// batch does not depend on its batch mates).
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C; `out` as [`super::TokensFn`] says.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn groups_tokens<const K: u8>(w: &[u8], a: &[ActRow<'_>], out: Strided) {
        let (tokens, rows, stride) = (a.len(), out.rows, out.stride);
        let group = 4 * block_bytes(K);
        let per_group = w.len() / (rows / 4).max(1);
        let blocks = per_group / group;
        assert!(rows.is_multiple_of(4) && rows <= stride);
        assert!(per_group * (rows / 4) == w.len() && blocks * group == per_group);
        for a in a {
            assert!(a.d.len() >= blocks && a.s.len() >= blocks && a.qs.len() >= blocks * BLOCK);
        }
        for g in 0..rows / 4 {
            // SAFETY: group g spans `per_group` bytes of `w` and every token holds `blocks`
            // blocks (asserted above); the caller lends `rows` values per token at `out`.
            unsafe {
                let w = w.as_ptr().add(g * per_group);
                let out = out.ptr.add(4 * g);
                let mut t = 0;
                while t < tokens {
                    let n = (tokens - t).min(TILE);
                    let a = &a[t..t + n];
                    match n {
                        4 => store(dot4_tokens::<K, 4>(w, blocks, a), out.add(t * stride), stride),
                        3 => store(dot4_tokens::<K, 3>(w, blocks, a), out.add(t * stride), stride),
                        2 => store(dot4_tokens::<K, 2>(w, blocks, a), out.add(t * stride), stride),
                        _ => store(dot4_tokens::<K, 1>(w, blocks, a), out.add(t * stride), stride),
                    }
                    t += n;
                }
            }
        }
    }

    /// Tokens that share one unpacking of a group's block: four keep the accumulators and the
    /// unpacked rows in registers.
    const TILE: usize = 4;

    /// Each token's four values at `out`, tokens `stride` apart.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(super) unsafe fn store<const T: usize>(v: [__m128; T], out: *mut f32, stride: usize) {
        for (t, v) in v.into_iter().enumerate() {
            // SAFETY: the caller points at T rows of `stride` values with four left in each.
            unsafe { _mm_storeu_ps(out.add(t * stride), v) };
        }
    }

    /// Four interleaved rows of `blocks` blocks at `w` times `T` tokens (`a`): `dot4` for each
    /// token, with the rows unpacked once.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(super) unsafe fn dot4_tokens<const K: u8, const T: usize>(
        w: *const u8,
        blocks: usize,
        a: &[ActRow<'_>],
    ) -> [__m128; T] {
        let low = _mm256_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let head = if K == Q4_1 { 16 } else { 8 };
        let values = if K == Q8_0 { 32 } else { 16 };
        assert!(a.len() == T);
        // Plain loops, no closures: a closure would be compiled without the target features.
        let mut acc = [_mm_setzero_ps(); T];
        let mut offsets = [_mm_setzero_ps(); T];
        let mut xs = [_mm256_setzero_si256(); 4];
        let mut dots = [_mm256_setzero_si256(); 4];
        for b in 0..blocks {
            // SAFETY: the caller guarantees `blocks` groups of four blocks at `w` and activation
            // blocks up to `blocks` in every token; all loads are unaligned.
            unsafe {
                let p = w.add(b * 4 * block_bytes(K));
                // The next group, a block's share per block (see `vnni::dot8`).
                let next = p.wrapping_add(blocks * 4 * block_bytes(K));
                for l in (0..4 * block_bytes(K)).step_by(64) {
                    _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(l) as *const i8);
                }
                let d = _mm_cvtph_ps(_mm_loadl_epi64(p as *const __m128i));
                // The offset's factor: Q4_1's minimums, Q4_0's −8 · scale (as `dot4`).
                let m = if K == Q4_1 {
                    _mm_cvtph_ps(_mm_loadl_epi64(p.add(8) as *const __m128i))
                } else {
                    _mm_mul_ps(d, _mm_set1_ps(-8.0))
                };
                for (r, x) in xs.iter_mut().enumerate() {
                    let q = p.add(head + r * values);
                    *x = if K == Q8_0 {
                        _mm256_loadu_si256(q as *const __m256i)
                    } else {
                        let q = _mm_loadu_si128(q as *const __m128i);
                        _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), low)
                    };
                }
                for t in 0..T {
                    let at = &a[t];
                    let y = _mm256_loadu_si256(at.qs.as_ptr().add(b * BLOCK) as *const __m256i);
                    for (dot, &x) in dots.iter_mut().zip(&xs) {
                        let prod = if K == Q8_0 {
                            _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
                        } else {
                            _mm256_maddubs_epi16(x, y)
                        };
                        *dot = _mm256_madd_epi16(prod, ones);
                    }
                    let s = _mm256_hadd_epi32(
                        _mm256_hadd_epi32(dots[0], dots[1]),
                        _mm256_hadd_epi32(dots[2], dots[3]),
                    );
                    let s =
                        _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
                    let dd = _mm_mul_ps(d, _mm_set1_ps(*at.d.get_unchecked(b)));
                    acc[t] = _mm_fmadd_ps(dd, _mm_cvtepi32_ps(s), acc[t]);
                    if K != Q8_0 {
                        let ys = _mm_set1_ps(*at.s.get_unchecked(b));
                        offsets[t] = _mm_fmadd_ps(m, ys, offsets[t]);
                    }
                }
            }
        }
        let mut out = [_mm_setzero_ps(); T];
        for t in 0..T {
            out[t] = _mm_add_ps(acc[t], offsets[t]);
        }
        out
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

/// The batched kernel on AVX-512 VNNI: eight rows (two interleaved groups) at a time, one row
/// per 32-bit lane. `vpdpbusd` adds four byte products to each lane, so eight of them (the
/// block's 32 values, transposed once so that a lane holds its row's bytes) leave each lane
/// with its row's whole block sum for one token, whose four bytes are broadcast: no horizontal
/// sums, and the unpacked, transposed block serves every token. The integer sums are exact, and
/// the float steps per row and token are `avx2::dot4`'s (scale times the token's scale, times
/// the sum, added in block order; the offsets apart), so the values are `groups`'s to the bit.
#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::avx2::{self, Q4_1, Q8_0, block_bytes};
    use super::{ActRow, BLOCK, Strided};
    use std::arch::x86_64::*;

    /// Tokens per pass over a block: the block's eight transposed vectors and each token's
    /// sum, accumulator and offsets about fill AVX-512's 32 registers (measured against 4 and
    /// 6: fewer passes over the block per token, the most tokens per second).
    const TILE: usize = 8;

    /// Interleaved rows (`out.rows` of them, a multiple of four) times the tokens `a`, written
    /// in place (row r of token t at `out.ptr + t · out.stride + r`).
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA, F16C and AVX-512 VNNI, VL and BW; `out` as
    /// [`super::TokensFn`] says.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
    pub(super) unsafe fn pairs<const K: u8>(w: &[u8], a: &[ActRow<'_>], out: Strided) {
        let (tokens, rows, stride) = (a.len(), out.rows, out.stride);
        let group = 4 * block_bytes(K);
        let per_group = w.len() / (rows / 4).max(1);
        let blocks = per_group / group;
        assert!(rows.is_multiple_of(4) && rows <= stride);
        assert!(per_group * (rows / 4) == w.len() && blocks * group == per_group);
        for a in a {
            assert!(a.d.len() >= blocks && a.s.len() >= blocks && a.sums.len() >= blocks);
            assert!(a.qs.len() >= blocks * BLOCK);
        }
        let groups = rows / 4;
        for g in (0..groups).step_by(2) {
            // SAFETY: groups g (and g + 1) span `per_group` bytes each of `w` and every token
            // holds `blocks` blocks (asserted above); the caller lends `rows` values per token
            // at `out`.
            unsafe {
                let w0 = w.as_ptr().add(g * per_group);
                let out = out.ptr.add(4 * g);
                if g + 1 == groups {
                    // A last group alone: its four rows as `groups_tokens` computes them.
                    let mut t = 0;
                    while t < tokens {
                        let n = (tokens - t).min(4);
                        let (a, o) = (&a[t..t + n], out.add(t * stride));
                        match n {
                            4 => avx2::store(avx2::dot4_tokens::<K, 4>(w0, blocks, a), o, stride),
                            3 => avx2::store(avx2::dot4_tokens::<K, 3>(w0, blocks, a), o, stride),
                            2 => avx2::store(avx2::dot4_tokens::<K, 2>(w0, blocks, a), o, stride),
                            _ => avx2::store(avx2::dot4_tokens::<K, 1>(w0, blocks, a), o, stride),
                        }
                        t += n;
                    }
                    continue;
                }
                let w1 = w0.add(per_group);
                let mut t = 0;
                while t < tokens {
                    let n = (tokens - t).min(TILE);
                    let (a, o) = (&a[t..t + n], out.add(t * stride));
                    match n {
                        8 => store(dot8::<K, 8>(w0, w1, blocks, a), o, stride),
                        7 => store(dot8::<K, 7>(w0, w1, blocks, a), o, stride),
                        6 => store(dot8::<K, 6>(w0, w1, blocks, a), o, stride),
                        5 => store(dot8::<K, 5>(w0, w1, blocks, a), o, stride),
                        4 => store(dot8::<K, 4>(w0, w1, blocks, a), o, stride),
                        3 => store(dot8::<K, 3>(w0, w1, blocks, a), o, stride),
                        2 => store(dot8::<K, 2>(w0, w1, blocks, a), o, stride),
                        _ => store(dot8::<K, 1>(w0, w1, blocks, a), o, stride),
                    }
                    t += n;
                }
            }
        }
    }

    /// Each token's eight values at `out`, tokens `stride` apart.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn store<const T: usize>(v: [__m256; T], out: *mut f32, stride: usize) {
        for (t, v) in v.into_iter().enumerate() {
            // SAFETY: the caller points at T rows of `stride` values with eight left in each.
            unsafe { _mm256_storeu_ps(out.add(t * stride), v) };
        }
    }

    /// Eight rows (the interleaved groups at `w0` and `w1`, `blocks` blocks each) times `T`
    /// tokens: each token's eight values in row order.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn dot8<const K: u8, const T: usize>(
        w0: *const u8,
        w1: *const u8,
        blocks: usize,
        a: &[ActRow<'_>],
    ) -> [__m256; T] {
        assert!(a.len() == T);
        let group = 4 * block_bytes(K);
        let per_group = blocks * group;
        let low = _mm256_set1_epi8(0x0F);
        let flip = _mm256_set1_epi8(-128);
        // The 4-bit types' transpose leaves rows 0, 2, 4, 6, 1, 3, 5, 7 in lanes 0..8: their
        // scales are gathered in that order (the f16 words, before conversion) and the results
        // put back in row order at the end; Q8_0's transpose keeps the rows in order.
        let to_lanes = _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
        let to_rows = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        let head = if K == Q4_1 { 16 } else { 8 };
        // Plain loops, no closures: a closure would be compiled without the target features.
        let mut acc = [_mm256_setzero_ps(); T];
        let mut offsets = [_mm256_setzero_ps(); T];
        let mut x = [_mm256_setzero_si256(); 8];
        for b in 0..blocks {
            // SAFETY: the caller guarantees `blocks` groups of four blocks at `w0` and `w1` and
            // activation blocks up to `blocks` in every token; all loads are unaligned.
            unsafe {
                let (p0, p1) = (w0.add(b * 4 * block_bytes(K)), w1.add(b * 4 * block_bytes(K)));
                // The next two groups (just past `w1`'s), a share per block: at this loop's
                // pace the hardware's prefetcher alone leaves the loads waiting on memory.
                let next = w1.wrapping_add(per_group + b * 2 * group);
                for l in (0..2 * group).step_by(64) {
                    _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(l) as *const i8);
                }
                // The eight rows' f16 scales (and Q4_1's minimums) as f32, in lane order.
                let (d, m);
                if K == Q8_0 {
                    d = _mm256_cvtph_ps(halves(p0, p1));
                    m = _mm256_setzero_ps();
                } else {
                    d = _mm256_cvtph_ps(_mm_shuffle_epi8(halves(p0, p1), to_lanes));
                    m = if K == Q4_1 {
                        let h = halves(p0.add(8), p1.add(8));
                        _mm256_cvtph_ps(_mm_shuffle_epi8(h, to_lanes))
                    } else {
                        _mm256_mul_ps(d, _mm256_set1_ps(-8.0))
                    };
                }
                // x[j]: every row's bytes 4j..4j + 4 of the block, one row per lane (unsigned:
                // Q8_0's values plus 128, corrected below).
                let (v0, v1) = (p0.add(head), p1.add(head));
                if K == Q8_0 {
                    let mut r = [_mm256_setzero_si256(); 8];
                    for (i, r) in r.iter_mut().enumerate() {
                        let p = if i < 4 { v0.add(32 * i) } else { v1.add(32 * (i - 4)) };
                        *r = _mm256_loadu_si256(p as *const __m256i);
                    }
                    let mut u = [_mm256_setzero_si256(); 8];
                    for i in 0..4 {
                        let (e, f) = (r[2 * i], r[2 * i + 1]);
                        u[2 * i] = _mm256_unpacklo_epi32(e, f);
                        u[2 * i + 1] = _mm256_unpackhi_epi32(e, f);
                    }
                    // u[0], u[1]: rows 0, 1 (dwords 0, 1 | 4, 5 and 2, 3 | 6, 7); u[2], u[3]
                    // rows 2, 3; then rows 4..8.
                    let mut q = [_mm256_setzero_si256(); 8];
                    for h in 0..2 {
                        for i in 0..2 {
                            let (e, f) = (u[4 * h + i], u[4 * h + 2 + i]);
                            q[4 * h + 2 * i] = _mm256_unpacklo_epi64(e, f);
                            q[4 * h + 2 * i + 1] = _mm256_unpackhi_epi64(e, f);
                        }
                    }
                    // q[h·4 + k]: rows 4h..4h + 4, dword k | k + 4.
                    for k in 0..4 {
                        let lo = _mm256_permute2x128_si256::<0x20>(q[k], q[4 + k]);
                        let hi = _mm256_permute2x128_si256::<0x31>(q[k], q[4 + k]);
                        x[k] = _mm256_xor_si256(lo, flip);
                        x[k + 4] = _mm256_xor_si256(hi, flip);
                    }
                } else {
                    let pq = _mm256_loadu_si256(v0 as *const __m256i);
                    let qq = _mm256_loadu_si256(v0.add(32) as *const __m256i);
                    let rq = _mm256_loadu_si256(v1 as *const __m256i);
                    let sq = _mm256_loadu_si256(v1.add(32) as *const __m256i);
                    let (a0, a1) = (_mm256_unpacklo_epi32(pq, qq), _mm256_unpackhi_epi32(pq, qq));
                    let (b0, b1) = (_mm256_unpacklo_epi32(rq, sq), _mm256_unpackhi_epi32(rq, sq));
                    let packed = [
                        _mm256_unpacklo_epi64(a0, b0),
                        _mm256_unpackhi_epi64(a0, b0),
                        _mm256_unpacklo_epi64(a1, b1),
                        _mm256_unpackhi_epi64(a1, b1),
                    ];
                    // Low nibbles are values 0..16, high nibbles 16..32.
                    for (j, p) in packed.into_iter().enumerate() {
                        x[j] = _mm256_and_si256(p, low);
                        x[j + 4] = _mm256_and_si256(_mm256_srli_epi16(p, 4), low);
                    }
                }
                for t in 0..T {
                    let at = &a[t];
                    let y = at.qs.as_ptr().add(b * BLOCK) as *const i32;
                    // Integer sums, so their order is free: with few tokens, two dependency
                    // chains each.
                    let mut s;
                    if T >= 6 {
                        s = _mm256_setzero_si256();
                        for (j, &x) in x.iter().enumerate() {
                            let yj = _mm256_set1_epi32(y.add(j).read_unaligned());
                            s = _mm256_dpbusd_epi32(s, x, yj);
                        }
                    } else {
                        let (mut s0, mut s1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                        for j in (0..8).step_by(2) {
                            let y0 = _mm256_set1_epi32(y.add(j).read_unaligned());
                            let y1 = _mm256_set1_epi32(y.add(j + 1).read_unaligned());
                            s0 = _mm256_dpbusd_epi32(s0, x[j], y0);
                            s1 = _mm256_dpbusd_epi32(s1, x[j + 1], y1);
                        }
                        s = _mm256_add_epi32(s0, s1);
                    }
                    if K == Q8_0 {
                        let sum = *at.sums.get_unchecked(b);
                        s = _mm256_sub_epi32(s, _mm256_set1_epi32(sum << 7));
                    }
                    let dd = _mm256_mul_ps(d, _mm256_set1_ps(*at.d.get_unchecked(b)));
                    acc[t] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(s), acc[t]);
                    if K != Q8_0 {
                        let ys = _mm256_set1_ps(*at.s.get_unchecked(b));
                        offsets[t] = _mm256_fmadd_ps(m, ys, offsets[t]);
                    }
                }
            }
        }
        let mut out = [_mm256_setzero_ps(); T];
        for t in 0..T {
            let v = _mm256_add_ps(acc[t], offsets[t]);
            out[t] = if K == Q8_0 { v } else { _mm256_permutevar8x32_ps(v, to_rows) };
        }
        out
    }

    /// Four f16 words at `p`, then four at `q`.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn halves(p: *const u8, q: *const u8) -> __m128i {
        // SAFETY: the caller points at eight readable bytes at each.
        unsafe {
            _mm_unpacklo_epi64(
                _mm_loadl_epi64(p as *const __m128i),
                _mm_loadl_epi64(q as *const __m128i),
            )
        }
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
    fn each_token_of_a_product_is_its_product_alone_to_the_bit() {
        // What batched decoding rests on: a row's values do not depend on its batch mates, and
        // every number of tokens (the kernels' tiles and their remainders) gives them. 44 rows:
        // eleven groups of four, so the eight-row kernel leaves one group to the four-row one.
        let (rows, cols) = (44, 96);
        for kind in [BlockType::Q4_0, BlockType::Q4_1, BlockType::Q8_0] {
            let (plain, _) = quantized(kind, rows, cols);
            for m in [plain.clone(), plain.interleave()] {
                for tokens in [2, 3, 4, 5, 8, 9, 16] {
                    let x = values(tokens * cols, 13 + tokens as u32);
                    let acts = Q8Acts::quantize(&x, cols).unwrap();
                    let mut out = vec![0f32; tokens * rows];
                    matmul(&m, &acts, &mut out).unwrap();
                    let mut each = Vec::new();
                    for t in 0..tokens {
                        let one = Q8Acts::quantize(&x[t * cols..(t + 1) * cols], cols).unwrap();
                        let mut alone = vec![0f32; rows];
                        matmul(&m, &one, &mut alone).unwrap();
                        let (kind, inter) = (kind, m.interleaved);
                        assert_eq!(alone, out[t * rows..(t + 1) * rows], "{kind:?} {inter} {t}");
                        each.extend(alone);
                    }
                    // Both batched kernels, whichever `matmul` chose on this CPU.
                    for vnni in [false, vnni()] {
                        let Some(f) = tokens_fn(kind, m.interleaved, vnni) else { continue };
                        let acts: Vec<_> = (0..tokens).map(|t| acts.row(t)).collect();
                        let mut out = vec![0f32; tokens * rows];
                        let to = Strided { ptr: out.as_mut_ptr(), rows, stride: rows };
                        unsafe { f(&m.data, &acts, to) };
                        assert_eq!(out, each, "{kind:?} {tokens} tokens, VNNI {vnni}");
                    }
                }
            }
        }
    }

    #[test]
    fn quantized_activations_are_the_scalar_codes_bytes() {
        let mut blocks: Vec<Vec<f32>> = (0..200).map(|i| values(BLOCK, i)).collect();
        // Ties of the rounding, zeros, tiny and huge values, NaN and infinities.
        // A maximum of 127 makes the scale 1: every other value is an exact tie.
        blocks.push((0..32).map(|k| if k == 0 { 127.0 } else { k as f32 - 16.5 }).collect());
        blocks.push((0..32).map(|k| k as f32 * 0.5).collect());
        blocks.push((0..32).map(|k| -(k as f32) * 0.5 - 63.5).collect());
        blocks.push(
            (0..32).map(|k| (k as f32 + 0.5) * if k % 2 == 0 { 1.0 } else { -1.0 }).collect(),
        );
        blocks.push(vec![0.0; 32]);
        blocks.push((0..32).map(|k| if k == 3 { -0.0 } else { 1e-42 * k as f32 }).collect());
        blocks.push((0..32).map(|k| k as f32 * 3e38 / 32.0).collect());
        let mut odd = values(BLOCK, 9);
        odd[4] = f32::NAN;
        odd[9] = f32::INFINITY;
        blocks.push(odd.clone());
        odd[9] = 2.0;
        blocks.push(odd);
        for x in &blocks {
            let (mut a, mut b) = ([0i8; BLOCK], [0i8; BLOCK]);
            let scalar = quantize_block(x, &mut a);
            #[cfg(target_arch = "x86_64")]
            if simd() {
                let fast = unsafe { avx2::quantize_block(x, &mut b) };
                assert_eq!((fast.0.to_bits(), fast.1), (scalar.0.to_bits(), scalar.1), "{x:?}");
                assert_eq!(a, b, "{x:?}");
            }
            let _ = &mut b;
        }
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
