//! Llama-family decoding (Llama, SmolLM2, Mistral, Qwen2) straight from a GGUF's quantized
//! blocks, for inference only: the quantized fast path of `generate::QuantDecoder`.
//!
//! The training model (`models::llama`) builds a graph of candle tensors; a decoding step is a few
//! hundred small products, where that bookkeeping costs more than the arithmetic. Here a step is
//! plain loops over f32 slices and the kernels of `quant` (the weights as the file stores them, the
//! activations quantized to 8 bits, as llama.cpp does), with the query, key and value projections
//! stacked into one product and gate and up into another.
//!
//! Several sequences decode together with `forward_batch`: one cache per sequence (`QCache`,
//! each as long as its own sequence, so none is padded; a sequence that ends is simply left out
//! of the next step), one product per projection for all of them, each sequence's attention over
//! its own cache. Every value of a sequence is the one it gets alone from `forward`, to the bit.

use std::path::Path;

use candle_core::Device;
use candle_core::quantized::{GgmlDType, gguf_file};
use rayon::prelude::*;

use crate::models::llama::Config;
use crate::quant::{BlockType, Q8Acts, QMatrix, matmul, matmul_f32};
use crate::{Error, Result};
use half::f16;
use half::slice::HalfFloatSliceExt;

/// A GGUF model whose projection matrices are Q4_0, Q4_1 or Q8_0.
#[derive(Debug)]
pub struct QLlama {
    cfg: Config,
    /// RoPE's frequencies (`Config::rope_inv_freq`), one per rotated pair.
    inv_freq: Vec<f32>,
    embed: QMatrix,
    lm_head: Option<QMatrix>,
    norm: Vec<f32>,
    layers: Vec<Layer>,
    products: Products,
}

/// How the projections multiply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Products {
    /// Activations quantized to 8 bits, integer kernels (the fast path, as llama.cpp).
    #[default]
    Quantized,
    /// f32 activations times each weight row dequantized: slow, a reference for tests.
    F32,
}

#[derive(Debug)]
struct Layer {
    attn_norm: Vec<f32>,
    qkv: QMatrix,
    /// Qwen2's query, key and value biases, stacked as the product is.
    qkv_bias: Option<Vec<f32>>,
    o: QMatrix,
    mlp_norm: Vec<f32>,
    gate_up: QMatrix,
    down: QMatrix,
    lora: Vec<Lora>,
}

/// The four products of a block; q, k, v share one and gate, up another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Qkv,
    O,
    GateUp,
    Down,
}

/// An adapter's pair on one projection, unmerged and in f32: `scale · B·(A·x)` joins rows
/// `offset..offset + out` of its slot's product.
#[derive(Debug)]
struct Lora {
    slot: Slot,
    offset: usize,
    /// rank × in, out × rank.
    a: Vec<f32>,
    b: Vec<f32>,
    /// B transposed (rank × out): eight output rows' values side by side.
    bt: Vec<f32>,
    rank: usize,
    scale: f32,
}

/// Keys and values of the positions decoded so far, per layer, in f16 (as llama.cpp keeps
/// them): attention reads every cached position of every sequence each step, and at a batch's
/// width that reading, not the arithmetic, bounds it.
#[derive(Debug, Clone, Default)]
pub struct QCache {
    k: Vec<Vec<f16>>,
    v: Vec<Vec<f16>>,
    len: usize,
}

impl QCache {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was decoded yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Memory its keys and values take, bytes.
    pub fn bytes(&self) -> usize {
        self.k.iter().chain(&self.v).map(|x| x.len() * size_of::<f16>()).sum()
    }
}

impl QLlama {
    /// Reads the model from a GGUF header and its open file; `Ok(None)` when a matrix is stored
    /// in a type these kernels do not take (K-quants, f16…).
    pub fn from_gguf(
        content: &gguf_file::Content,
        f: &mut std::fs::File,
        path: &Path,
    ) -> Result<Option<QLlama>> {
        let cfg = crate::weights::gguf_config(content, f).map_err(|e| Error::bad(path, e))?;
        let inv_freq = cfg.rope_inv_freq().map_err(|e| Error::bad(path, e))?;
        let mut matrices = content.tensor_infos.values().filter(|t| t.shape.rank() == 2);
        if matrices.any(|t| block_type(t.ggml_dtype).is_none()) {
            return Ok(None);
        }
        let mut r = Reader { content, f, path };
        let (h, ffn) = (cfg.hidden_size, cfg.intermediate_size);
        let (qd, kvd) = (cfg.num_attention_heads * cfg.head_dim(), cfg.kv_heads() * cfg.head_dim());
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = |n: &str| format!("blk.{i}.{n}");
            let (q, k, v) = (
                r.matrix(&p("attn_q.weight"), qd, h)?,
                r.matrix(&p("attn_k.weight"), kvd, h)?,
                r.matrix(&p("attn_v.weight"), kvd, h)?,
            );
            let (gate, up) =
                (r.matrix(&p("ffn_gate.weight"), ffn, h)?, r.matrix(&p("ffn_up.weight"), ffn, h)?);
            let qkv_bias = if content.tensor_infos.contains_key(&p("attn_q.bias")) {
                let (bq, bk) =
                    (r.vector(&p("attn_q.bias"), qd)?, r.vector(&p("attn_k.bias"), kvd)?);
                Some([bq, bk, r.vector(&p("attn_v.bias"), kvd)?].concat())
            } else {
                None
            };
            layers.push(Layer {
                attn_norm: r.vector(&p("attn_norm.weight"), h)?,
                qkv: stack(&[&q, &k, &v])?.interleave(),
                qkv_bias,
                o: r.matrix(&p("attn_output.weight"), h, qd)?.interleave(),
                mlp_norm: r.vector(&p("ffn_norm.weight"), h)?,
                gate_up: stack(&[&gate, &up])?.interleave(),
                down: r.matrix(&p("ffn_down.weight"), h, ffn)?.interleave(),
                lora: Vec::new(),
            });
        }
        let lm_head = if content.tensor_infos.contains_key("output.weight") {
            Some(r.matrix("output.weight", cfg.vocab_size, h)?.interleave())
        } else {
            None
        };
        Ok(Some(QLlama {
            embed: r.matrix("token_embd.weight", cfg.vocab_size, h)?.interleave(),
            lm_head,
            norm: r.vector("output_norm.weight", h)?,
            layers,
            cfg,
            inv_freq,
            products: Products::Quantized,
        }))
    }

    /// Tokens in the vocabulary (rows of the embedding).
    pub fn vocab_size(&self) -> usize {
        self.embed.rows()
    }

    /// Sets how the projections multiply.
    pub fn set_products(&mut self, p: Products) {
        self.products = p;
    }

    /// Applies a PEFT adapter (unmerged: the quantized weights stay as they are, the pairs run
    /// in f32 beside them); returns the number of projections it reached.
    pub fn apply_adapter(&mut self, dir: &Path) -> Result<usize> {
        let mut adapter = crate::adapter::PeftAdapter::read(dir, &Device::Cpu)?;
        let c = &self.cfg;
        let (hd, nh, nkv) = (c.head_dim(), c.num_attention_heads, c.kv_heads());
        let (qd, kvd, ffn) = (nh * hd, nkv * hd, c.intermediate_size);
        let permuted = self.llama_cpp_permuted();
        let mut count = 0;
        for (i, layer) in self.layers.iter_mut().enumerate() {
            layer.lora.clear();
            for (parent, proj) in crate::models::llama::PROJECTIONS {
                let Some((a, b)) = adapter.take(i, parent, proj)? else { continue };
                let (slot, offset, heads) = match proj {
                    "q_proj" => (Slot::Qkv, 0, permuted.then_some(nh)),
                    "k_proj" => (Slot::Qkv, qd, permuted.then_some(nkv)),
                    "v_proj" => (Slot::Qkv, qd + kvd, None),
                    "o_proj" => (Slot::O, 0, None),
                    "gate_proj" => (Slot::GateUp, 0, None),
                    "up_proj" => (Slot::GateUp, ffn, None),
                    _ => (Slot::Down, 0, None),
                };
                // PEFT's B rows are in the checkpoint's order; llama.cpp permuted the query
                // and key rows for RoPE on adjacent pairs: permute B's the same way.
                let b = match heads {
                    Some(heads) => crate::weights::permute(&b, heads)?,
                    None => b,
                };
                let (rank, _) = a.dims2()?;
                let a: Vec<f32> = a.flatten_all()?.to_vec1()?;
                let b: Vec<f32> = b.flatten_all()?.to_vec1()?;
                let rows = b.len() / rank.max(1);
                let bt = (0..rank * rows).map(|i| b[(i % rows) * rank + i / rows]).collect();
                let scale = adapter.scale as f32;
                let lora = Lora { slot, offset, a, b, bt, rank, scale };
                layer.lora.push(lora);
                count += 1;
            }
        }
        if count == 0 {
            return Err(adapter.matches_nothing());
        }
        Ok(count)
    }

    /// Whether the file's query and key rows are in llama.cpp's interleaved RoPE layout (it
    /// permutes "llama" models; Qwen2 keeps the checkpoint's half-split layout).
    fn llama_cpp_permuted(&self) -> bool {
        self.cfg.model_type == "llama"
    }

    /// An empty cache for this model.
    pub fn cache(&self) -> QCache {
        let n = self.layers.len();
        QCache { k: vec![Vec::new(); n], v: vec![Vec::new(); n], len: 0 }
    }

    /// An empty cache with room for `positions` (no reallocation, no copy, as it fills).
    pub fn cache_for(&self, positions: usize) -> QCache {
        let c = &self.cfg;
        let floats = positions * c.kv_heads() * c.head_dim();
        let n = self.layers.len();
        let room = || (0..n).map(|_| Vec::with_capacity(floats)).collect();
        QCache { k: room(), v: room(), len: 0 }
    }

    /// Runs `ids` (a prompt, or the next token) after the cached positions and returns the
    /// logits at the last one. `forward_chunks` with one sequence.
    pub fn forward(&self, ids: &[u32], cache: &mut QCache) -> Result<Vec<f32>> {
        self.forward_chunks(&[ids], std::slice::from_mut(cache))
    }

    /// One next token for each of several sequences (`ids[i]` after the positions of
    /// `caches[i]`, which may differ in length): their logits, `ids.len()` rows of the
    /// vocabulary. `forward_chunks` with one token each.
    pub fn forward_batch(&self, ids: &[u32], caches: &mut [QCache]) -> Result<Vec<f32>> {
        let chunks: Vec<&[u32]> = ids.iter().map(std::slice::from_ref).collect();
        self.forward_chunks(&chunks, caches)
    }

    /// Several sequences at once, each with its own new tokens: `chunks[i]` (a prompt or a part
    /// of one, or the next token) after the positions of `caches[i]`; an empty chunk leaves
    /// its sequence as it is. Returns the logits at the last new position of each sequence
    /// that had tokens, in order. Each projection multiplies every new row at once, its
    /// weights read once for all of them (`quant::matmul`); each row's values are those
    /// `forward` gives it alone, to the bit: its products, norms, rotations, attention over
    /// its own cache and adapter pairs are computed by the same code in the same order.
    pub fn forward_chunks(&self, chunks: &[&[u32]], caches: &mut [QCache]) -> Result<Vec<f32>> {
        if chunks.len() != caches.len() {
            return Err(Error::Data(format!(
                "{} chunks of tokens for {} sequences: one each",
                chunks.len(),
                caches.len()
            )));
        }
        // On a worker of the thread pool: each product's parallel split then costs a steal by a
        // spinning worker, not a sleep and a wake-up of the calling thread (~20 % of a step).
        rayon::scope(|_| self.step_batch(chunks, caches))
    }

    /// `t` rows of `x` through `w`.
    fn project(&self, w: &QMatrix, x: &[f32], t: usize) -> Result<Vec<f32>> {
        let mut out = vec![0f32; t * w.rows()];
        match self.products {
            Products::Quantized => {
                let acts = Q8Acts::quantize(x, w.cols()).map_err(Error::Data)?;
                matmul(w, &acts, &mut out)
            }
            Products::F32 => matmul_f32(w, x, &mut out),
        }
        .map_err(Error::Data)?;
        Ok(out)
    }

    fn mlp(&self, layer: &Layer, x: &[f32], t: usize) -> Result<Vec<f32>> {
        let c = &self.cfg;
        let ffn = c.intermediate_size;
        let normed = rms_norm(x, &layer.mlp_norm, c.rms_norm_eps);
        let mut gate_up = self.project(&layer.gate_up, &normed, t)?;
        add_lora(layer, Slot::GateUp, &normed, &mut gate_up);
        let mut act = vec![0f32; t * ffn];
        // A batch's rows on every thread (one row runs where it is, unsplit).
        let rows = gate_up.par_chunks_exact(2 * ffn).zip(act.par_chunks_exact_mut(ffn));
        rows.for_each(|(r, act)| {
            let (g, u) = r.split_at(ffn);
            crate::ops::silu_mul_row(g, u, act);
        });
        let mut down = self.project(&layer.down, &act, t)?;
        add_lora(layer, Slot::Down, &act, &mut down);
        Ok(down)
    }

    fn step_batch(&self, chunks: &[&[u32]], caches: &mut [QCache]) -> Result<Vec<f32>> {
        let c = &self.cfg;
        let h = c.hidden_size;
        let ids = chunks.concat();
        let rows = ids.len();
        if rows == 0 {
            return Err(Error::Data("nothing to decode: no tokens".into()));
        }
        let mut x = self.embedding(&ids)?;
        let ropes: Vec<Rope> = chunks
            .iter()
            .zip(caches.iter())
            .map(|(chunk, cache)| {
                Rope::new(&self.inv_freq, cache.len, chunk.len(), self.llama_cpp_permuted())
            })
            .collect();
        for (l, layer) in self.layers.iter().enumerate() {
            let attn = self.attention_batch(layer, l, &x, chunks, &ropes, caches)?;
            let mut o = self.project(&layer.o, &attn, rows)?;
            add_lora(layer, Slot::O, &attn, &mut o);
            add(&mut x, &o);
            let mlp = self.mlp(layer, &x, rows)?;
            add(&mut x, &mlp);
        }
        let mut last = Vec::with_capacity(chunks.len() * h);
        let mut end = 0;
        for (chunk, cache) in chunks.iter().zip(caches.iter_mut()) {
            cache.len += chunk.len();
            end += chunk.len();
            if !chunk.is_empty() {
                last.extend_from_slice(&x[(end - 1) * h..end * h]);
            }
        }
        let last = rms_norm(&last, &self.norm, c.rms_norm_eps);
        self.project(self.lm_head.as_ref().unwrap_or(&self.embed), &last, last.len() / h)
    }

    /// The rows of the embedding of `ids`.
    fn embedding(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let h = self.cfg.hidden_size;
        let mut x = vec![0f32; ids.len() * h];
        for (&id, x) in ids.iter().zip(x.chunks_exact_mut(h)) {
            if id as usize >= self.embed.rows() {
                return Err(Error::Data(format!("token {id} is outside the vocabulary")));
            }
            self.embed.dequantize_row(id as usize, x);
        }
        Ok(x)
    }

    /// `attention` for new positions in several sequences: one product for all of them, each
    /// row's keys and values appended to its own cache, each row's heads over its own cache.
    fn attention_batch(
        &self,
        layer: &Layer,
        l: usize,
        x: &[f32],
        chunks: &[&[u32]],
        ropes: &[Rope],
        caches: &mut [QCache],
    ) -> Result<Vec<f32>> {
        let c = &self.cfg;
        let (hd, nh, nkv) = (c.head_dim(), c.num_attention_heads, c.kv_heads());
        let rows = x.len() / c.hidden_size;
        let normed = rms_norm(x, &layer.attn_norm, c.rms_norm_eps);
        let mut qkv = self.project(&layer.qkv, &normed, rows)?;
        if let Some(b) = &layer.qkv_bias {
            qkv.chunks_exact_mut(b.len()).for_each(|row| add(row, b));
        }
        add_lora(layer, Slot::Qkv, &normed, &mut qkv);
        let width = (nh + 2 * nkv) * hd;
        let mut queries = Vec::with_capacity(rows * nh * hd);
        // Each row's sequence and the positions it sees.
        let mut seen = Vec::with_capacity(rows);
        let mut qkv_rows = qkv.chunks_exact_mut(width);
        for (i, ((chunk, rope), cache)) in
            chunks.iter().zip(ropes).zip(caches.iter_mut()).enumerate()
        {
            for (j, row) in qkv_rows.by_ref().take(chunk.len()).enumerate() {
                let (q, kv) = row.split_at_mut(nh * hd);
                let (k, v) = kv.split_at_mut(nkv * hd);
                for head in q.chunks_exact_mut(hd).chain(k.chunks_exact_mut(hd)) {
                    rope.apply(head, j);
                }
                queries.extend_from_slice(q);
                append_f16(&mut cache.k[l], k);
                append_f16(&mut cache.v[l], v);
                seen.push((i, cache.len + j + 1));
            }
        }
        let caches = &*caches;
        let scale = 1.0 / (hd as f32).sqrt();
        let group = nh / nkv;
        // One task per row: all its heads in one pass over the positions it sees. With fewer
        // rows than threads (one sequence decoding) and enough positions, one task per
        // key/value head instead, so that every thread has a share.
        let few = rows < 2 * rayon::current_num_threads();
        let split = if few && seen.iter().any(|&(_, s)| s >= SPLIT_POSITIONS) { nkv } else { 1 };
        let mut out = vec![0f32; rows * nh * hd];
        out.par_chunks_mut(nh * hd / split).enumerate().for_each(|(task, out)| {
            let (r, part) = (task / split, task % split);
            let (i, seen) = seen[r];
            let heads = nh / split;
            let heads = Heads {
                q: &queries[(r * nh + part * heads) * hd..][..heads * hd],
                keys: &caches[i].k[l],
                values: &caches[i].v[l],
                head_dim: hd,
                stride: nkv * hd,
                kv_offset: part * heads / group * hd,
                group,
                seen,
                scale,
            };
            heads.attend(out);
        });
        Ok(out)
    }
}

/// Positions whose keys (or values) `Heads::attend_avx2` widens at once: with three key/value
/// heads of 64, 24 KiB, within L1.
#[cfg(target_arch = "x86_64")]
const POSITIONS_PER_BLOCK: usize = 32;
/// Positions `Heads::widen_block` reads ahead of the one it widens.
#[cfg(target_arch = "x86_64")]
const READ_AHEAD: usize = 16;

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// `Heads::attend_avx2`'s block of widened positions, kept by each thread: a step runs a
    /// task per row and layer, a few hundred, and each would otherwise allocate and zero it.
    static WIDE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Eight positions' dot products with `q` (`hd` floats; the positions' keys `span` apart), as
/// two sets of four.
///
/// # Safety
/// The CPU must have AVX2 and FMA; the pointers must hold what they are read for.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn dots8(
    q: *const f32,
    k: *const f32,
    span: usize,
    hd: usize,
) -> [std::arch::x86_64::__m128; 2] {
    use std::arch::x86_64::*;
    let mut a = [_mm256_setzero_ps(); 8];
    for j in (0..hd).step_by(8) {
        // SAFETY: as the caller guarantees.
        unsafe {
            let qv = _mm256_loadu_ps(q.add(j));
            for (i, a) in a.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k.add(i * span + j)), *a);
            }
        }
    }
    [reduce4(a[0], a[1], a[2], a[3]), reduce4(a[4], a[5], a[6], a[7])]
}

/// One position's dot product with `q`, in lane 0: the operations `dots8` does for each.
///
/// # Safety
/// As `dots8`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn dot1(q: *const f32, k: *const f32, hd: usize) -> std::arch::x86_64::__m128 {
    use std::arch::x86_64::*;
    let mut a = _mm256_setzero_ps();
    for j in (0..hd).step_by(8) {
        // SAFETY: as the caller guarantees.
        unsafe { a = _mm256_fmadd_ps(_mm256_loadu_ps(q.add(j)), _mm256_loadu_ps(k.add(j)), a) };
    }
    reduce4(a, a, a, a)
}

/// The sums of four vectors' lanes, each ((0+1)+(2+3))+((4+5)+(6+7)).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn reduce4(
    a: std::arch::x86_64::__m256,
    b: std::arch::x86_64::__m256,
    c: std::arch::x86_64::__m256,
    d: std::arch::x86_64::__m256,
) -> std::arch::x86_64::__m128 {
    use std::arch::x86_64::*;
    let t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps::<1>(t))
}

/// Positions a row must see before its heads are split over several tasks.
const SPLIT_POSITIONS: usize = 256;

/// Query heads of one position (all of them, or those of some key/value heads) over the
/// cached positions it sees. Every path (a prompt, a next token, a batch) computes a head
/// with this code, so a row's values do not depend on how the rows were grouped.
struct Heads<'a> {
    /// The heads' queries, one after another.
    q: &'a [f32],
    keys: &'a [f16],
    values: &'a [f16],
    head_dim: usize,
    /// Floats per position in the cache.
    stride: usize,
    /// Where the first head's key/value head starts within a position.
    kv_offset: usize,
    /// Query heads per key/value head.
    group: usize,
    seen: usize,
    scale: f32,
}

impl Heads<'_> {
    /// Writes each head's softmax(q·K / √d)·V into its slice of `out` (zeros on entry).
    fn attend(&self, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if crate::quant::simd() && self.head_dim.is_multiple_of(64) {
            // SAFETY: `simd()` confirmed AVX2, FMA and F16C on this CPU.
            return unsafe { self.attend_avx2(out) };
        }
        self.attend_portable(out)
    }

    /// `attend_portable`'s two passes with explicit AVX2: a block of positions' keys (then
    /// values) widened once into a buffer within L1 for every head, eight positions' dot
    /// products at a time (independent chains, where one product alone waits on each
    /// addition), each head's values summed in registers, and the cache read ahead (what bounds
    /// this at a batch's width is reading the cache, not the arithmetic). A score's operations
    /// do not depend on the positions beside it (the one- and eight-position reductions add in
    /// the same order), so a row's values do not depend on how many positions it sees or how
    /// its heads are split.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn attend_avx2(&self, out: &mut [f32]) {
        use std::arch::x86_64::*;
        let (hd, seen, group) = (self.head_dim, self.seen, self.group);
        let heads = self.q.len() / hd;
        let span = heads.div_ceil(group) * hd;
        assert!(hd.is_multiple_of(64) && heads * hd == self.q.len() && out.len() >= heads * hd);
        if seen == 0 {
            return;
        }
        let last = (seen - 1) * self.stride + self.kv_offset + span;
        assert!(self.keys.len() >= last && self.values.len() >= last);
        let mut scores = vec![0f32; heads * seen];
        let scale = _mm_set1_ps(self.scale);
        WIDE.with_borrow_mut(|wide| {
            wide.resize(wide.len().max(POSITIONS_PER_BLOCK * span), 0.0);
            // SAFETY (of every block below): the asserts above bound each pointer: `wide`
            // holds `n ≤ POSITIONS_PER_BLOCK` positions of `span` floats, a head's key/value
            // head lies within `span`, `scores` holds `seen` per head, `out` `hd` per head.
            for p0 in (0..seen).step_by(POSITIONS_PER_BLOCK) {
                let n = (seen - p0).min(POSITIONS_PER_BLOCK);
                // The values, read next, on their way to L2 meanwhile.
                unsafe { self.widen_block(self.keys, Some(self.values), p0, n, span, wide) };
                for h in 0..heads {
                    unsafe {
                        let q = self.q.as_ptr().add(h * hd);
                        let k = wide.as_ptr().add(h / group * hd);
                        let s = scores.as_mut_ptr().add(h * seen + p0);
                        let mut i = 0;
                        while i + 8 <= n {
                            let [a, b] = dots8(q, k.add(i * span), span, hd);
                            _mm_storeu_ps(s.add(i), _mm_mul_ps(a, scale));
                            _mm_storeu_ps(s.add(i + 4), _mm_mul_ps(b, scale));
                            i += 8;
                        }
                        while i < n {
                            let a = dot1(q, k.add(i * span), hd);
                            *s.add(i) = _mm_cvtss_f32(_mm_mul_ps(a, scale));
                            i += 1;
                        }
                    }
                }
            }
            for s in scores.chunks_exact_mut(seen) {
                softmax(s);
            }
            for p0 in (0..seen).step_by(POSITIONS_PER_BLOCK) {
                let n = (seen - p0).min(POSITIONS_PER_BLOCK);
                unsafe { self.widen_block(self.values, None, p0, n, span, wide) };
                for h in 0..heads {
                    for c in (0..hd).step_by(64) {
                        unsafe {
                            let v = wide.as_ptr().add(h / group * hd + c);
                            let w = scores.as_ptr().add(h * seen + p0);
                            let o = out.as_mut_ptr().add(h * hd + c);
                            let mut acc = [_mm256_setzero_ps(); 8];
                            for (j, acc) in acc.iter_mut().enumerate() {
                                *acc = _mm256_loadu_ps(o.add(8 * j));
                            }
                            for i in 0..n {
                                let wi = _mm256_set1_ps(*w.add(i));
                                let v = v.add(i * span);
                                for (j, acc) in acc.iter_mut().enumerate() {
                                    let vj = _mm256_loadu_ps(v.add(8 * j));
                                    *acc = _mm256_fmadd_ps(wi, vj, *acc);
                                }
                            }
                            for (j, acc) in acc.into_iter().enumerate() {
                                _mm256_storeu_ps(o.add(8 * j), acc);
                            }
                        }
                    }
                }
            }
        })
    }

    /// Positions `p0..p0 + n` of `from` (this task's `span` floats of each) as f32 into `to`,
    /// reading `from` ahead into L1 and, when given, the same positions of `also` into L2.
    ///
    /// # Safety
    /// The CPU must have AVX2 and F16C.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn widen_block(
        &self,
        from: &[f16],
        also: Option<&[f16]>,
        p0: usize,
        n: usize,
        span: usize,
        to: &mut [f32],
    ) {
        use std::arch::x86_64::*;
        for i in 0..n {
            let at = (p0 + i) * self.stride + self.kv_offset;
            // Prefetches take any address (past the end too): `wrapping_add`, no access.
            let ahead = from.as_ptr().wrapping_add(at + READ_AHEAD * self.stride);
            for j in (0..span).step_by(32) {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(j) as *const i8);
                if let Some(also) = also {
                    _mm_prefetch::<_MM_HINT_T1>(also.as_ptr().wrapping_add(at + j) as *const i8);
                }
            }
            // SAFETY: the same features as `widen_f16c`'s (checked by the caller).
            unsafe { widen_f16c(&from[at..at + span], &mut to[i * span..][..span]) };
        }
    }

    /// One pass over the positions' keys for every head, then one over their values (each
    /// position's read once, in order).
    #[inline(always)]
    fn attend_portable(&self, out: &mut [f32]) {
        let (hd, seen) = (self.head_dim, self.seen);
        let heads = self.q.len() / hd;
        let span = heads.div_ceil(self.group) * hd;
        // Plain loops: an iterator adapter's closure would be compiled outside this function,
        // without its target features.
        let mut scores = vec![0f32; heads * seen];
        // One position's keys (then values) for these heads, widened to f32.
        let mut wide = vec![0f32; span];
        for p in 0..seen {
            widen(&self.keys[p * self.stride + self.kv_offset..][..span], &mut wide);
            let k = &wide[..];
            for h in 0..heads {
                let q = &self.q[h * hd..][..hd];
                let k = &k[h / self.group * hd..][..hd];
                scores[h * seen + p] = dot(q, k) * self.scale;
            }
        }
        for s in scores.chunks_exact_mut(seen) {
            softmax(s);
        }
        for p in 0..seen {
            widen(&self.values[p * self.stride + self.kv_offset..][..span], &mut wide);
            let v = &wide[..];
            for h in 0..heads {
                let w = scores[h * seen + p];
                let v = &v[h / self.group * hd..][..hd];
                for (o, &v) in out[h * hd..][..hd].iter_mut().zip(v) {
                    *o += w * v;
                }
            }
        }
    }
}

/// Angles of the `t` positions after `past`, shared by every layer of one step.
struct Rope {
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
    /// Pairs (2j, 2j+1), else (j, j + half).
    interleaved: bool,
}

impl Rope {
    fn new(inv: &[f32], past: usize, t: usize, interleaved: bool) -> Rope {
        let half = inv.len();
        let (mut cos, mut sin) = (Vec::with_capacity(t * half), Vec::with_capacity(t * half));
        for p in past..past + t {
            for &f in inv {
                // As the f32 path's tables: position times frequency in f32.
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Rope { cos, sin, half, interleaved }
    }

    /// Rotates one head at the `i`th new position.
    fn apply(&self, head: &mut [f32], i: usize) {
        let (cos, sin) =
            (&self.cos[i * self.half..][..self.half], &self.sin[i * self.half..][..self.half]);
        for j in 0..self.half {
            let (a, b) = if self.interleaved { (2 * j, 2 * j + 1) } else { (j, j + self.half) };
            let (x0, x1) = (head[a], head[b]);
            head[a] = x0 * cos[j] - x1 * sin[j];
            head[b] = x0 * sin[j] + x1 * cos[j];
        }
    }
}

/// Adds the layer's LoRA pairs on `slot` to its product `out` (rows of the slot's width) of the
/// rows `x`.
fn add_lora(layer: &Layer, slot: Slot, x: &[f32], out: &mut [f32]) {
    for l in layer.lora.iter().filter(|l| l.slot == slot) {
        let cols = l.a.len() / l.rank;
        let tokens = x.len() / cols;
        let width = out.len() / tokens;
        // Each token (a prompt's, a batch's) on its own: in parallel when there are several.
        if tokens > 1 {
            let rows = x.par_chunks_exact(cols).zip(out.par_chunks_exact_mut(width));
            rows.for_each(|(x, out)| l.add(x, out));
        } else {
            l.add(x, out);
        }
    }
}

impl Lora {
    /// Adds `scale · B·(A·x)` for one token `x` to its product's row `out`.
    fn add(&self, x: &[f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if crate::quant::simd() {
            // SAFETY: `simd()` confirmed AVX2 and FMA on this CPU.
            return unsafe { self.add_avx2(x, out) };
        }
        self.add_portable(x, out)
    }

    /// The same loops compiled for AVX2, where the compiler vectorizes them eight wide (the
    /// crate itself targets baseline x86-64).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn add_avx2(&self, x: &[f32], out: &mut [f32]) {
        self.add_portable(x, out)
    }

    /// `out[o] += dot(B[o], ax)` with `ax = A·x · scale`, eight output rows at a time from `bt`:
    /// each lane does `dot`'s operations in `dot`'s order (its eight running sums, summed in
    /// order from the empty sum, then the remainder's sum), so the values are `dot`'s, to the
    /// bit; any last rows go through `dot` itself.
    #[inline(always)]
    fn add_portable(&self, x: &[f32], out: &mut [f32]) {
        let (rank, cols) = (self.rank, x.len());
        let rows = self.b.len() / rank;
        let out = &mut out[self.offset..self.offset + rows];
        // Plain loops: an iterator adapter's closure would be compiled outside this function,
        // without its target features.
        let mut ax = vec![0f32; rank];
        for (j, ax) in ax.iter_mut().enumerate() {
            *ax = dot(&self.a[j * cols..][..cols], x) * self.scale;
        }
        // What `dot`'s sums start from (`Sum for f32` folds from it).
        let empty: f32 = std::iter::empty::<f32>().sum();
        let whole = rank / 8 * 8;
        let mut o = 0;
        while o + 8 <= rows {
            let mut acc = [[0f32; 8]; 8];
            for (k, &ax) in ax[..whole].iter().enumerate() {
                let bt = &self.bt[k * rows + o..][..8];
                for (acc, &b) in acc[k % 8].iter_mut().zip(bt) {
                    *acc += b * ax;
                }
            }
            let (mut sum, mut tail) = ([empty; 8], [empty; 8]);
            for acc in &acc {
                for (sum, &a) in sum.iter_mut().zip(acc) {
                    *sum += a;
                }
            }
            for (k, &ax) in ax.iter().enumerate().skip(whole) {
                let bt = &self.bt[k * rows + o..][..8];
                for (tail, &b) in tail.iter_mut().zip(bt) {
                    *tail += b * ax;
                }
            }
            for ((out, &sum), &tail) in out[o..o + 8].iter_mut().zip(&sum).zip(&tail) {
                *out += sum + tail;
            }
            o += 8;
        }
        for (out, b) in out[o..].iter_mut().zip(self.b[o * rank..].chunks_exact(rank)) {
            *out += dot(b, &ax);
        }
    }
}

/// Every row of `x` normalized (rows as wide as `w`).
fn rms_norm(x: &[f32], w: &[f32], eps: f64) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    for (x, y) in x.chunks_exact(w.len()).zip(y.chunks_exact_mut(w.len())) {
        crate::ops::rms_norm_row(x, w, eps, y);
    }
    y
}

fn add(x: &mut [f32], y: &[f32]) {
    for (x, &y) in x.iter_mut().zip(y) {
        *x += y;
    }
}

/// `from` as f32 into `to` (as long): eight at a time with F16C where the CPU has it (half's
/// slice conversion asks the CPU and copies through a buffer for every eight values, which
/// cost attention what the f16 cache saved).
#[inline(always)]
fn widen(from: &[f16], to: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::quant::simd() {
        // SAFETY: `simd()` confirmed F16C (and AVX2) on this CPU.
        return unsafe { widen_f16c(from, to) };
    }
    from.convert_to_f32_slice(to);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
#[inline]
unsafe fn widen_f16c(from: &[f16], to: &mut [f32]) {
    use std::arch::x86_64::*;
    assert_eq!(from.len(), to.len());
    let (eights, rest) = (from.len() / 8 * 8, from.len() % 8);
    for i in (0..eights).step_by(8) {
        // SAFETY: i + 8 <= len of both (asserted above); unaligned loads and stores.
        unsafe {
            let h = _mm_loadu_si128(from.as_ptr().add(i) as *const __m128i);
            _mm256_storeu_ps(to.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
        }
    }
    if rest > 0 {
        from[eights..].convert_to_f32_slice(&mut to[eights..]);
    }
}

/// Appends `x` rounded to f16 (to nearest, ties to even: F16C's rounding and `half`'s).
fn append_f16(to: &mut Vec<f16>, x: &[f32]) {
    let at = to.len();
    to.resize(at + x.len(), f16::ZERO);
    #[cfg(target_arch = "x86_64")]
    if crate::quant::simd() {
        // SAFETY: `simd()` confirmed F16C (and AVX2) on this CPU.
        return unsafe { narrow_f16c(x, &mut to[at..]) };
    }
    to[at..].convert_from_f32_slice(x);
}

/// `widen_f16c` the other way, for the same reason.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
unsafe fn narrow_f16c(from: &[f32], to: &mut [f16]) {
    use std::arch::x86_64::*;
    assert_eq!(from.len(), to.len());
    let (eights, rest) = (from.len() / 8 * 8, from.len() % 8);
    for i in (0..eights).step_by(8) {
        // SAFETY: i + 8 <= len of both (asserted above); unaligned loads and stores.
        unsafe {
            let h =
                _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(from.as_ptr().add(i)));
            _mm_storeu_si128(to.as_mut_ptr().add(i) as *mut __m128i, h);
        }
    }
    if rest > 0 {
        to[eights..].convert_from_f32_slice(&from[eights..]);
    }
}

/// Eight running sums, so the compiler keeps them in one SIMD register (one sum in order cannot
/// be vectorized without changing its rounding).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(a, b)| a * b).sum();
    for (a, b) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += a[i] * b[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn softmax(s: &mut [f32]) {
    let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    s.iter_mut().for_each(|v| *v -= max);
    crate::vmath::exp_in_place(s);
    let inv = 1.0 / s.iter().sum::<f32>();
    s.iter_mut().for_each(|v| *v *= inv);
}

/// The parts' rows as one matrix; parts of different types (a file that keeps one projection at
/// 8 bits) are requantized to Q8_0 together, trading that layer's 4-bit speed for correctness.
fn stack(parts: &[&QMatrix]) -> Result<QMatrix> {
    if let Some(m) = QMatrix::stack(parts) {
        return Ok(m);
    }
    let cols = parts.first().map_or(0, |p| p.cols());
    let mut values = Vec::new();
    let mut row = vec![0f32; cols];
    for p in parts {
        for r in 0..p.rows() {
            p.dequantize_row(r, &mut row);
            values.extend_from_slice(&row);
        }
    }
    let rows = parts.iter().map(|p| p.rows()).sum();
    QMatrix::quantize_q8_0(rows, cols, &values).map_err(Error::Data)
}

fn block_type(t: GgmlDType) -> Option<BlockType> {
    match t {
        GgmlDType::Q4_0 => Some(BlockType::Q4_0),
        GgmlDType::Q4_1 => Some(BlockType::Q4_1),
        GgmlDType::Q8_0 => Some(BlockType::Q8_0),
        _ => None,
    }
}

struct Reader<'a> {
    content: &'a gguf_file::Content,
    f: &'a mut std::fs::File,
    path: &'a Path,
}

impl Reader<'_> {
    fn matrix(&mut self, name: &str, rows: usize, cols: usize) -> Result<QMatrix> {
        let q = self
            .content
            .tensor(self.f, name, &Device::Cpu)
            .map_err(|e| Error::bad(self.path, e))?;
        let bad = |e: String| Error::bad(self.path, format!("{name}: {e}"));
        if q.shape().dims() != [rows, cols] {
            return Err(bad(format!("shape {:?}, expected [{rows}, {cols}]", q.shape().dims())));
        }
        let kind = block_type(q.dtype()).ok_or_else(|| bad(format!("type {:?}", q.dtype())))?;
        let data = q.data().map_err(|e| Error::bad(self.path, e))?.into_owned();
        QMatrix::new(kind, rows, cols, data).map_err(bad)
    }

    fn vector(&mut self, name: &str, len: usize) -> Result<Vec<f32>> {
        let q = self
            .content
            .tensor(self.f, name, &Device::Cpu)
            .map_err(|e| Error::bad(self.path, e))?;
        let v: Vec<f32> = q
            .dequantize(&Device::Cpu)
            .and_then(|t| t.flatten_all()?.to_vec1())
            .map_err(|e| Error::bad(self.path, e))?;
        if v.len() != len {
            return Err(Error::bad(
                self.path,
                format!("{name}: {} values, expected {len}", v.len()),
            ));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values of both signs, some zeros of both signs.
    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let h = (i as u32 ^ seed).wrapping_mul(2_654_435_761) >> 8;
                match h % 17 {
                    0 => 0.0,
                    1 => -0.0,
                    _ => (h % 2001) as f32 / 1000.0 - 1.0,
                }
            })
            .collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|f| f.to_bits()).collect()
    }

    #[test]
    fn heads_attend_as_the_plain_loops_do_and_alike_however_split() {
        // SmolLM2's heads (nine over three key/value heads of 64), Qwen2.5-0.5B's (fourteen over
        // two) and heads of 128 (Llama 3.2 3B's group of three); position counts around the
        // blocks of eight (dot products) and of `POSITIONS_PER_BLOCK` (widening).
        let shapes = [(64, 9, 3), (64, 14, 2), (128, 6, 2)];
        for (seen, (hd, nh, nkv)) in [1, 7, 8, 9, 31, 32, 33, 70, 300]
            .into_iter()
            .flat_map(|seen| shapes.map(|shape| (seen, shape)))
        {
            let (group, stride) = (nh / nkv, nkv * hd);
            let q = values(nh * hd, seen as u32);
            let half = |v: Vec<f32>| v.into_iter().map(f16::from_f32).collect::<Vec<_>>();
            let keys = half(values(seen * stride, 7));
            let vals = half(values(seen * stride, 8));
            let heads = |q, kv_offset| Heads {
                q,
                keys: &keys,
                values: &vals,
                head_dim: hd,
                stride,
                kv_offset,
                group,
                seen,
                scale: 0.125,
            };
            let mut whole = vec![0f32; nh * hd];
            heads(&q, 0).attend(&mut whole);
            let mut plain = vec![0f32; nh * hd];
            heads(&q, 0).attend_portable(&mut plain);
            for (i, (a, b)) in whole.iter().zip(&plain).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5,
                    "{nh}×{hd}, {seen} positions, value {i}: {a} vs {b}"
                );
            }
            // A long row of a short batch: one task per key/value head.
            let per = nh / nkv;
            let mut split = vec![0f32; nh * hd];
            for (part, out) in split.chunks_mut(per * hd).enumerate() {
                heads(&q[part * per * hd..][..per * hd], part * per / group * hd).attend(out);
            }
            assert_eq!(bits(&split), bits(&whole), "{nh}×{hd}, {seen} positions, split");
        }
    }

    #[test]
    fn cached_keys_round_to_f16_as_half_does() {
        let mut x = values(1003, 9);
        // Ties between two f16 values, their neighbours, the smallest f16 numbers, overflow.
        let tie = f32::from_bits(f16::from_f32(1.0).to_f32().to_bits() + (1 << 12));
        x.extend([tie, f32::from_bits(tie.to_bits() + 1), f32::from_bits(tie.to_bits() - 1)]);
        x.extend([6e-8, -3e-8, 1e-5, 65504.0, 65520.0, -1e6, f32::INFINITY, f32::NAN]);
        let mut ours = Vec::new();
        append_f16(&mut ours, &x);
        for (i, (&a, &v)) in ours.iter().zip(&x).enumerate() {
            let b = f16::from_f32(v);
            assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "value {i}: {v}");
        }
    }

    #[test]
    fn adapter_pairs_add_what_a_dot_product_per_row_adds() {
        // The pairs' rows go eight at a time; each must be `dot`'s value to the bit (the
        // batched and the single path share this code, and their outputs are compared).
        for (rank, rows, cols) in [(4, 40, 64), (8, 19, 32), (12, 24, 96), (16, 7, 32), (3, 9, 32)]
        {
            let (a, b) = (values(rank * cols, 1), values(rows * rank, 2));
            let bt = (0..rank * rows).map(|i| b[(i % rows) * rank + i / rows]).collect();
            let l = Lora { slot: Slot::O, offset: 2, a, b, bt, rank, scale: 1.5 };
            let x = values(cols, 3);
            let mut out = values(rows + 3, 4);
            let mut expected = out.clone();
            let ax: Vec<f32> = l.a.chunks_exact(cols).map(|a| dot(a, &x) * l.scale).collect();
            for (o, b) in expected[2..2 + rows].iter_mut().zip(l.b.chunks_exact(rank)) {
                *o += dot(b, &ax);
            }
            l.add(&x, &mut out);
            assert_eq!(bits(&out), bits(&expected), "rank {rank}, {rows} rows");
        }
    }
}
