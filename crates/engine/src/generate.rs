//! Text generation with a KV cache and the sampling controls users expect.

use std::ops::ControlFlow;

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};

use crate::Result;
use crate::models::llama::Llama;

// The controls are declared in `api` (the window's parameters panel and the server read them);
// the engine samples with them.
pub use api::chat::{MAX_STOPS, Sampling, TEMPERATURE_MAX};

/// How many tokens may follow a prompt of `prompt` tokens in a context of `context`: at most
/// `max_tokens`, and never past the context (a model's rotary tables and cache end there).
/// A prompt that leaves no room is an error naming both lengths.
pub fn room(
    prompt: usize,
    context: usize,
    max_tokens: usize,
) -> std::result::Result<usize, String> {
    if prompt >= context {
        return Err(format!(
            "the prompt is {prompt} tokens and the model's context is {context}: shorten the prompt to at most {} tokens",
            context.saturating_sub(1)
        ));
    }
    Ok(max_tokens.min(context - prompt))
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// An end-of-sequence token or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The callback asked to stop.
    Cancelled,
}

/// What a generation produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Generated token ids (without the prompt, without the end token).
    pub tokens: Vec<u32>,
    /// Generated text, cut before a stop string.
    pub text: String,
    /// Why it ended.
    pub finish: Finish,
}

/// Anything that turns a prompt's token ids into next-token logits with a cache.
pub trait Decoder {
    /// Logits `[vocab]` at the last position of `ids`, after the positions fed before.
    fn step(&mut self, ids: &[u32]) -> Result<Vec<f32>>;
}

/// The f32 model with its cache.
pub struct F32Decoder<'a> {
    model: &'a Llama,
    cache: crate::models::llama::Cache,
    device: Device,
}

impl<'a> F32Decoder<'a> {
    /// A decoder with an empty cache.
    pub fn new(model: &'a Llama, device: &Device) -> Self {
        F32Decoder { model, cache: model.cache(), device: device.clone() }
    }
}

impl Decoder for F32Decoder<'_> {
    fn step(&mut self, ids: &[u32]) -> Result<Vec<f32>> {
        let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let hidden =
            self.model.hidden(&input, Some(&mut self.cache), crate::models::llama::Pass::Infer)?;
        let last = hidden.narrow(1, ids.len() - 1, 1)?;
        Ok(self.model.logits(&last)?.flatten_all()?.to_vec1::<f32>()?)
    }
}

/// The quantized fast path: the GGUF's quantized weights, never dequantized (inference only).
///
/// Llama-family and Qwen2 files whose matrices are Q4_0, Q4_1 or Q8_0 (the common small-model
/// downloads, SmolLM2's included) run on our own kernels (`models::qllama`, `quant`) where the
/// CPU has them (x86-64 with AVX2); other files, and other CPUs, go through candle-transformers'
/// `quantized_llama` ("llama" GGUFs only), with the block types candle has no SIMD kernel for
/// (Q4_1, Q5_x) converted to Q8_0. candle's model ignores Llama 3's RoPE scaling (a GGUF's
/// `rope_freqs.weight`), so such a file that our kernels do not take is refused.
pub struct QuantDecoder {
    inner: Quant,
    device: Device,
}

enum Quant {
    Native(Box<crate::models::qllama::QLlama>, crate::models::qllama::QCache),
    Candle(Box<candle_transformers::models::quantized_llama::ModelWeights>, usize),
}

impl QuantDecoder {
    /// Loads the GGUF at `path` without dequantizing it.
    pub fn open(path: &std::path::Path, device: &Device) -> Result<QuantDecoder> {
        use candle_core::quantized::gguf_file;
        let (content, mut f) = crate::gguf::open(path)?;
        if device.is_cpu()
            && crate::quant::simd()
            && let Some(m) = crate::models::qllama::QLlama::from_gguf(&content, &mut f, path)?
        {
            let cache = m.cache();
            let inner = Quant::Native(Box::new(m), cache);
            return Ok(QuantDecoder { inner, device: device.clone() });
        }
        let arch = crate::gguf::architecture(&content.metadata).ok();
        if arch.as_deref() != Some("llama") {
            return Err(crate::Error::bad(
                path,
                "the quantized fast path supports llama GGUFs here; use the f32 path",
            ));
        }
        // candle's model knows only the plain RoPE base: refuse what it would run wrongly.
        let cfg = crate::weights::gguf_config(&content, &mut f)
            .map_err(|e| crate::Error::bad(path, e))?;
        if cfg.rope_freqs.is_some() {
            return Err(crate::Error::bad(
                path,
                "Llama 3's RoPE scaling (rope_freqs) runs on the quantized fast path only for \
                 Q4_0/Q4_1/Q8_0 files on x86-64 CPUs with AVX2; use such a file or the f32 path",
            ));
        }
        let slow = content.tensor_infos.values().any(|t| !simd_type(t.ggml_dtype));
        let model = if slow {
            // Rewrite the file in memory with those blocks as Q8_0 (which holds a Q4_1 or Q5
            // block's values almost exactly), then load that.
            let mut copy = std::io::Cursor::new(
                requantize(&content, &mut f, device).map_err(|e| crate::Error::bad(path, e))?,
            );
            let content =
                gguf_file::Content::read(&mut copy).map_err(|e| crate::Error::bad(path, e))?;
            candle_transformers::models::quantized_llama::ModelWeights::from_gguf(
                content, &mut copy, device,
            )
        } else {
            candle_transformers::models::quantized_llama::ModelWeights::from_gguf(
                content, &mut f, device,
            )
        }
        .map_err(|e| crate::Error::bad(path, e))?;
        Ok(QuantDecoder { inner: Quant::Candle(Box::new(model), 0), device: device.clone() })
    }

    /// Applies a PEFT adapter, unmerged (our kernels only: candle's quantized model has no
    /// place for one); returns the number of projections it reached.
    pub fn apply_adapter(&mut self, dir: &std::path::Path) -> Result<usize> {
        match &mut self.inner {
            Quant::Native(model, cache) => {
                *cache = model.cache();
                model.apply_adapter(dir)
            }
            Quant::Candle(..) => Err(crate::Error::Data(
                "the quantized path applies adapters to Q4_0/Q4_1/Q8_0 llama GGUFs on x86-64 \
                 CPUs with AVX2; use the f32 path"
                    .into(),
            )),
        }
    }

    /// Forgets the cached keys and values: the next step starts a new sequence (the weights
    /// stay loaded, so a chat's next turn costs no load).
    pub fn reset(&mut self) {
        match &mut self.inner {
            Quant::Native(model, cache) => *cache = model.cache(),
            // candle's model starts its caches afresh at position 0.
            Quant::Candle(_, pos) => *pos = 0,
        }
    }

    /// Whether this decoder runs on our own kernels (else on candle's).
    pub fn native(&self) -> bool {
        matches!(self.inner, Quant::Native(..))
    }

    /// The model on our own kernels, for callers that keep their own caches (batches).
    pub(crate) fn native_model(&self) -> Option<&crate::models::qllama::QLlama> {
        match &self.inner {
            Quant::Native(model, _) => Some(model),
            Quant::Candle(..) => None,
        }
    }
}

/// Whether candle multiplies this block type with SIMD (AVX2 + FMA, NEON): Q4_1 and the Q5_x
/// types only have its scalar code, about 6× slower (measured on SmolLM2's Q4_1 file).
fn simd_type(t: candle_core::quantized::GgmlDType) -> bool {
    use candle_core::quantized::GgmlDType as T;
    !matches!(t, T::Q4_1 | T::Q5_0 | T::Q5_1 | T::Q8_1)
}

/// The GGUF's bytes with every tensor of a type without SIMD kernels converted to Q8_0.
fn requantize(
    content: &candle_core::quantized::gguf_file::Content,
    f: &mut std::fs::File,
    device: &Device,
) -> candle_core::Result<Vec<u8>> {
    use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
    let mut tensors = Vec::with_capacity(content.tensor_infos.len());
    for name in content.tensor_infos.keys() {
        let q = content.tensor(f, name, device)?;
        let q = if simd_type(q.dtype()) {
            q
        } else {
            QTensor::quantize(&q.dequantize(device)?, GgmlDType::Q8_0)?
        };
        tensors.push((name.as_str(), q));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> =
        content.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, q)| (*n, q)).collect();
    let mut out = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata, &refs)?;
    Ok(out.into_inner())
}

impl Decoder for QuantDecoder {
    fn step(&mut self, ids: &[u32]) -> Result<Vec<f32>> {
        match &mut self.inner {
            Quant::Native(model, cache) => model.forward(ids, cache),
            Quant::Candle(model, pos) => {
                let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
                let logits = model.forward(&input, *pos)?;
                *pos += ids.len();
                Ok(logits.flatten_all()?.to_vec1::<f32>()?)
            }
        }
    }
}

/// Generates after `prompt`, streaming each piece of text to `on_text` (return `false` to stop).
pub fn generate(
    dec: &mut dyn Decoder,
    tok: &tokenizers::Tokenizer,
    prompt: &[u32],
    eos: &[u32],
    s: &Sampling,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<Output> {
    let mut seq = Sequence::new(s.max_tokens, s, true);
    let mut logits = dec.step(prompt)?;
    let finish = loop {
        match seq.next(prompt, &mut logits, tok, eos, s, on_text)? {
            ControlFlow::Break(finish) => break finish,
            ControlFlow::Continue(next) => logits = dec.step(&[next])?,
        }
    };
    seq.finish(finish, tok, on_text)
}

/// How `generate_batch` groups its prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Sequences decoded together, at most (0 counts as 1).
    pub size: usize,
    /// The model's context: each prompt's new tokens stop there (`room`).
    pub context: usize,
}

/// Generates after each of `prompts` (as `generate` would after each alone: same stop rules,
/// penalties and sampling, each sequence's random numbers its own, seeded with `s.seed`, so its
/// output does not depend on its batch mates) and returns one output per prompt, in order.
/// `on_done(i, output)` reports each prompt as it ends (in any order: return `false` to stop;
/// the sequences then under way end as `Cancelled`, with what they had, and the prompts not
/// started as `Cancelled` with nothing).
///
/// On our kernels up to `batching.size` sequences decode together: each prompt runs through the
/// model alone into a cache of its own (`QLlama::forward`), then one step gives every running
/// sequence its next token (`QLlama::forward_batch`: the weights read once for all), and a
/// sequence that ends makes room for the next prompt at once. Elsewhere (candle's decoder) the
/// prompts run one after another through `generate`. A prompt with no room before the context
/// ends is an error, before anything runs.
pub fn generate_batch(
    dec: &mut QuantDecoder,
    tok: &tokenizers::Tokenizer,
    prompts: &[Vec<u32>],
    eos: &[u32],
    s: &Sampling,
    batching: Batching,
    on_done: &mut dyn FnMut(usize, &Output) -> bool,
) -> Result<Vec<Output>> {
    let mut limits = Vec::with_capacity(prompts.len());
    for (i, p) in prompts.iter().enumerate() {
        let max = room(p.len(), batching.context, s.max_tokens)
            .map_err(|e| crate::Error::Data(format!("prompt {}: {e}", i + 1)))?;
        limits.push(max);
    }
    let cancelled =
        || Output { tokens: Vec::new(), text: String::new(), finish: Finish::Cancelled };
    let mut outputs: Vec<Option<Output>> = vec![None; prompts.len()];
    let model = match &dec.inner {
        Quant::Native(model, _) => model.as_ref(),
        Quant::Candle(..) => {
            for (i, p) in prompts.iter().enumerate() {
                dec.reset();
                let s = Sampling { max_tokens: limits[i], ..s.clone() };
                let out = generate(dec, tok, p, eos, &s, &mut |_| true)?;
                let go_on = on_done(i, &out);
                outputs[i] = Some(out);
                if !go_on {
                    break;
                }
            }
            dec.reset();
            return Ok(outputs.into_iter().map(|o| o.unwrap_or_else(cancelled)).collect());
        }
    };
    // The running sequences and their caches, side by side.
    let mut running: Vec<(usize, Sequence, u32)> = Vec::new();
    let mut caches: Vec<crate::models::qllama::QCache> = Vec::new();
    let mut waiting = 0..prompts.len();
    let mut quiet = |_: &str| true;
    let size = batching.size.max(1);
    'decode: loop {
        while running.len() < size {
            let Some(i) = waiting.next() else { break };
            let mut cache = model.cache_for(prompts[i].len() + limits[i]);
            let mut logits = model.forward(&prompts[i], &mut cache)?;
            let mut seq = Sequence::new(limits[i], s, false);
            let finish = match seq.next(&prompts[i], &mut logits, tok, eos, s, &mut quiet)? {
                ControlFlow::Continue(_) if seq.full() => Finish::Length,
                ControlFlow::Continue(next) => {
                    running.push((i, seq, next));
                    caches.push(cache);
                    continue;
                }
                ControlFlow::Break(finish) => finish,
            };
            let out = seq.finish(finish, tok, &mut quiet)?;
            let go_on = on_done(i, &out);
            outputs[i] = Some(out);
            if !go_on {
                break 'decode;
            }
        }
        if running.is_empty() {
            break;
        }
        let ids: Vec<u32> = running.iter().map(|(_, _, next)| *next).collect();
        let mut logits = model.forward_batch(&ids, &mut caches)?;
        let vocab = logits.len() / ids.len();
        let mut keep = vec![true; running.len()];
        let mut stop = false;
        for (r, logits) in logits.chunks_exact_mut(vocab).enumerate() {
            let (i, seq, next) = &mut running[r];
            // A sequence at its limit ends without another step (`generate` would run one and
            // not use it).
            let finish = match seq.next(&prompts[*i], logits, tok, eos, s, &mut quiet)? {
                ControlFlow::Continue(_) if seq.full() => Finish::Length,
                ControlFlow::Continue(token) => {
                    *next = token;
                    continue;
                }
                ControlFlow::Break(finish) => finish,
            };
            keep[r] = false;
            let out = seq.finish(finish, tok, &mut quiet)?;
            stop |= !on_done(*i, &out);
            outputs[*i] = Some(out);
            if stop {
                break;
            }
        }
        if stop {
            break;
        }
        let mut flags = keep.iter();
        running.retain(|_| *flags.next().unwrap_or(&true));
        let mut flags = keep.iter();
        caches.retain(|_| *flags.next().unwrap_or(&true));
    }
    // Cancelled: what the running sequences had.
    for (i, mut seq, _) in running {
        if outputs[i].is_none() {
            outputs[i] = Some(seq.finish(Finish::Cancelled, tok, &mut quiet)?);
        }
    }
    Ok(outputs.into_iter().map(|o| o.unwrap_or_else(cancelled)).collect())
}

/// One sequence's sampling between steps: its tokens, their counts for the penalties, its
/// random numbers, and the text streamed so far. (Its prompt is passed to each step, so that
/// the owner of the prompt may keep both side by side.)
pub(crate) struct Sequence {
    max_tokens: usize,
    rng: rand::rngs::StdRng,
    tokens: Vec<u32>,
    counts: std::collections::HashMap<u32, usize>,
    /// Text is decoded as tokens arrive (else once at the end, where nothing streams and no
    /// stop string needs it).
    streams: bool,
    text: String,
    /// Bytes of `text` already streamed.
    emitted: usize,
}

impl Sequence {
    pub(crate) fn new(max_tokens: usize, s: &Sampling, streams: bool) -> Self {
        Sequence {
            max_tokens,
            rng: rand::rngs::StdRng::seed_from_u64(s.seed),
            tokens: Vec::new(),
            counts: Default::default(),
            streams: streams || !s.stop.is_empty(),
            text: String::new(),
            emitted: 0,
        }
    }

    /// Whether `max_tokens` are out: the next `next` ends with `Length` whatever the logits.
    pub(crate) fn full(&self) -> bool {
        self.tokens.len() >= self.max_tokens
    }

    /// Picks the token after `logits` (the model's at the last position of `prompt` and the
    /// tokens generated so far): the token to feed next, or why the sequence ended.
    pub(crate) fn next(
        &mut self,
        prompt: &[u32],
        logits: &mut [f32],
        tok: &tokenizers::Tokenizer,
        eos: &[u32],
        s: &Sampling,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<ControlFlow<Finish, u32>> {
        if self.full() {
            return Ok(ControlFlow::Break(Finish::Length));
        }
        self.penalize(prompt, logits, s);
        let next = self.draw(logits, s);
        self.accept(next, tok, eos, s, on_text)
    }

    /// The repetition, frequency and presence penalties applied to `logits`.
    pub(crate) fn penalize(&self, prompt: &[u32], logits: &mut [f32], s: &Sampling) {
        apply_penalties(logits, prompt, &self.counts, s);
    }

    /// A token drawn from `logits` (already penalized) with this sequence's random numbers.
    pub(crate) fn draw(&mut self, logits: &[f32], s: &Sampling) -> u32 {
        sample(logits, s, &mut self.rng)
    }

    /// Takes `next` as the sequence's next token: an end token ends it; else its text is
    /// decoded, cut at a stop string, and what is safe to show goes to `on_text`.
    pub(crate) fn accept(
        &mut self,
        next: u32,
        tok: &tokenizers::Tokenizer,
        eos: &[u32],
        s: &Sampling,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<ControlFlow<Finish, u32>> {
        if eos.contains(&next) {
            return Ok(ControlFlow::Break(Finish::Stop));
        }
        self.tokens.push(next);
        *self.counts.entry(next).or_default() += 1;
        if !self.streams {
            return Ok(ControlFlow::Continue(next));
        }
        let text = &mut self.text;
        *text = crate::tokenizer::decode(tok, &self.tokens)?;
        // Stop strings: cut the text before the first one.
        if let Some(cut) = s.stop.iter().filter_map(|st| text.find(st.as_str())).min() {
            text.truncate(cut);
            if cut > self.emitted && !on_text(&text[self.emitted..]) {
                return Ok(ControlFlow::Break(Finish::Cancelled));
            }
            self.emitted = text.len();
            return Ok(ControlFlow::Break(Finish::Stop));
        }
        // Hold back a possible start of a stop string and incomplete UTF-8 (U+FFFD).
        let hold = s.stop.iter().map(|st| partial_suffix(text, st)).max().unwrap_or(0);
        let safe = if text.ends_with('\u{FFFD}') {
            text.len() - '\u{FFFD}'.len_utf8()
        } else {
            text.len() - hold
        };
        if safe > self.emitted && text.is_char_boundary(safe) {
            if !on_text(&text[self.emitted..safe]) {
                return Ok(ControlFlow::Break(Finish::Cancelled));
            }
            self.emitted = safe;
        }
        Ok(ControlFlow::Continue(next))
    }

    /// The output, after the rest of the text is streamed (unless cancelled).
    pub(crate) fn finish(
        &mut self,
        finish: Finish,
        tok: &tokenizers::Tokenizer,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Output> {
        if !self.streams {
            self.text = crate::tokenizer::decode(tok, &self.tokens)?;
        }
        if self.emitted < self.text.len() && finish != Finish::Cancelled {
            on_text(&self.text[self.emitted..]);
        }
        let (tokens, text) = (std::mem::take(&mut self.tokens), std::mem::take(&mut self.text));
        Ok(Output { tokens, text, finish })
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `stop`.
fn partial_suffix(text: &str, stop: &str) -> usize {
    (1..stop.len())
        .rev()
        .find(|&n| text.len() >= n && stop.is_char_boundary(n) && text.ends_with(&stop[..n]))
        .unwrap_or(0)
}

fn apply_penalties(
    logits: &mut [f32],
    prompt: &[u32],
    counts: &std::collections::HashMap<u32, usize>,
    s: &Sampling,
) {
    if s.repetition_penalty != 1.0 {
        for &t in prompt.iter().chain(counts.keys()) {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = if *l > 0.0 { *l / s.repetition_penalty } else { *l * s.repetition_penalty };
            }
        }
    }
    if s.frequency_penalty != 0.0 || s.presence_penalty != 0.0 {
        for (&t, &n) in counts.iter().filter(|(_, n)| **n > 0) {
            if let Some(l) = logits.get_mut(t as usize) {
                *l -= n as f32 * s.frequency_penalty + s.presence_penalty;
            }
        }
    }
}

/// Picks the next token from `logits` under `s`.
///
/// Temperature, then top-k, min-p (relative to the top token) and nucleus (top-p), as
/// transformers and llama.cpp apply them, without sorting the vocabulary: the weights are
/// exponentials eight at a time (`vmath`), top-k is a selection, only the nucleus's
/// candidates are sorted (all of them only when those above 1e-9 of the top token do not
/// reach `top_p`), and the draw walks the kept tokens in id order (the same distribution as
/// walking them by probability).
pub fn sample(logits: &[f32], s: &Sampling, rng: &mut rand::rngs::StdRng) -> u32 {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |b, (i, &l)| if l > b.1 { (i, l) } else { b })
            .0 as u32
    };
    if s.temperature <= 0.0 {
        return argmax();
    }
    let top = argmax();
    let max = logits[top as usize];
    if !max.is_finite() {
        return top;
    }
    let inv_t = (1.0 / s.temperature) as f32;
    // Weights relative to the top token's (1); below e^-87 (and -inf, NaN) nothing.
    let weigh = |w: &mut [f32], ls: &mut dyn Iterator<Item = f32>| {
        let scaled: Vec<f32> = ls.map(|l| (l - max) * inv_t).collect();
        w.copy_from_slice(&scaled);
        crate::vmath::exp_in_place(w);
        for (w, x) in w.iter_mut().zip(scaled) {
            if x.is_nan() || x < -87.0 {
                *w = 0.0;
            }
        }
    };
    // (token, weight) of the candidates, and the weight of all of them.
    let mut cands: Vec<(u32, f32)> = if s.top_k > 0 && s.top_k < logits.len() {
        let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
        let by =
            |a: &u32, b: &u32| logits[*b as usize].total_cmp(&logits[*a as usize]).then(a.cmp(b));
        idx.select_nth_unstable_by(s.top_k - 1, by);
        idx.truncate(s.top_k);
        idx.sort_unstable();
        let mut w = vec![0f32; idx.len()];
        weigh(&mut w, &mut idx.iter().map(|&i| logits[i as usize]));
        idx.into_iter().zip(w).collect()
    } else {
        let mut w = vec![0f32; logits.len()];
        weigh(&mut w, &mut logits.iter().copied());
        if s.min_p <= 0.0 && s.top_p >= 1.0 {
            // Every token may come: draw straight from the weights.
            let total: f64 = w.iter().map(|&x| x as f64).sum();
            return draw(w.iter().enumerate().map(|(i, &x)| (i as u32, x)), total, rng)
                .unwrap_or(top);
        }
        w.into_iter().enumerate().filter(|(_, x)| *x > 0.0).map(|(i, x)| (i as u32, x)).collect()
    };
    let total: f64 = cands.iter().map(|c| c.1 as f64).sum();
    if s.min_p > 0.0 {
        cands.retain(|c| c.1 as f64 >= s.min_p);
    }
    if s.top_p < 1.0 {
        // The smallest set, by probability, whose mass reaches top_p (one token at least).
        let nucleus = |mut by_p: Vec<(u32, f32)>| {
            by_p.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let mut acc = 0.0;
            let n = by_p
                .iter()
                .take_while(|c| {
                    let before = acc;
                    acc += c.1 as f64 / total;
                    before < s.top_p
                })
                .count()
                .max(1);
            let reached = acc >= s.top_p;
            by_p.truncate(n);
            (by_p, reached)
        };
        let big: Vec<(u32, f32)> = cands.iter().copied().filter(|c| c.1 >= 1e-9).collect();
        let (mut kept, reached) = nucleus(big);
        if !reached {
            kept = nucleus(cands).0;
        }
        kept.sort_unstable_by_key(|c| c.0);
        cands = kept;
    }
    let kept: f64 = cands.iter().map(|c| c.1 as f64).sum();
    draw(cands.into_iter(), kept, rng).unwrap_or(top)
}

/// A token drawn from `(token, weight)` pairs whose weights sum to `total`.
fn draw(
    weights: impl Iterator<Item = (u32, f32)>,
    total: f64,
    rng: &mut rand::rngs::StdRng,
) -> Option<u32> {
    let mut r = rng.random::<f64>() * total;
    let mut last = None;
    for (i, w) in weights {
        if w <= 0.0 {
            continue;
        }
        r -= w as f64;
        last = Some(i);
        if r <= 0.0 {
            break;
        }
    }
    last
}

#[cfg(test)]
mod validation_tests {
    use super::*;

    fn check(change: impl Fn(&mut Sampling), expected: &str) {
        let mut s = Sampling::default();
        change(&mut s);
        assert_eq!(s.validate().unwrap_err(), expected);
    }

    #[test]
    fn hostile_sampling_is_refused_with_the_parameter_and_its_range() {
        assert_eq!(Sampling::default().validate(), Ok(()));
        check(|s| s.temperature = f64::NAN, "temperature must be between 0 and 2, got NaN");
        check(|s| s.temperature = -1.0, "temperature must be between 0 and 2, got -1");
        check(|s| s.temperature = f64::INFINITY, "temperature must be between 0 and 2, got inf");
        check(|s| s.top_p = 2.0, "top_p must be between 0 and 1, got 2");
        check(|s| s.min_p = 2.0, "min_p must be between 0 and 1, got 2");
        check(|s| s.min_p = -0.1, "min_p must be between 0 and 1, got -0.1");
        check(
            |s| s.repetition_penalty = f32::NAN,
            "repetition_penalty must be a number above 0 (1: none), got NaN",
        );
        check(
            |s| s.repetition_penalty = 0.0,
            "repetition_penalty must be a number above 0 (1: none), got 0",
        );
        check(|s| s.frequency_penalty = 3.0, "frequency_penalty must be between -2 and 2, got 3");
        check(|s| s.max_tokens = 0, "max_tokens must be at least 1, got 0");
        check(|s| s.stop = vec![String::new()], "stop strings cannot be empty");
        check(|s| s.stop = vec!["a".into(); 5], "stop takes at most 4 strings, got 5");
    }

    #[test]
    fn generation_never_runs_past_the_context() {
        assert_eq!(room(10, 2048, 256), Ok(256));
        assert_eq!(room(2000, 2048, 256), Ok(48));
        assert_eq!(
            room(2048, 2048, 1).unwrap_err(),
            "the prompt is 2048 tokens and the model's context is 2048: shorten the prompt to at most 2047 tokens"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(temperature: f64) -> Sampling {
        Sampling { temperature, ..Sampling::default() }
    }

    #[test]
    fn greedy_takes_the_max_and_top_k_one_is_greedy() {
        let logits = [0.1, 3.0, 2.9, -1.0];
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        assert_eq!(sample(&logits, &s(0.0), &mut rng), 1);
        let k1 = Sampling { top_k: 1, ..s(1.0) };
        for _ in 0..20 {
            assert_eq!(sample(&logits, &k1, &mut rng), 1);
        }
    }

    #[test]
    fn top_p_and_min_p_cut_the_tail() {
        let logits = [5.0, 4.0, -10.0, -10.0];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let nucleus = Sampling { top_p: 0.5, ..s(1.0) };
        let minp = Sampling { min_p: 0.2, ..s(1.0) };
        for _ in 0..200 {
            assert_eq!(sample(&logits, &nucleus, &mut rng), 0);
            assert!(sample(&logits, &minp, &mut rng) < 2);
        }
    }

    #[test]
    fn sampling_is_seeded() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let draw = |seed| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            (0..30).map(|_| sample(&logits, &s(1.0), &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }

    /// Draws follow the softmax at the temperature, within top-k; far-off tokens never come.
    #[test]
    fn draws_follow_the_softmax() {
        let two = std::f32::consts::LN_2;
        // Weights 1 : 2 : 4 at temperature 1; at temperature 2, 1 : √2 : 2.
        let logits = [0.0, two, 2.0 * two, -80.0];
        let freq = |s: &Sampling| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(9);
            let mut n = [0usize; 4];
            for _ in 0..20_000 {
                n[sample(&logits, s, &mut rng) as usize] += 1;
            }
            n.map(|c| c as f64 / 20_000.0)
        };
        let close = |got: [f64; 4], want: [f64; 4]| {
            assert!(got.iter().zip(want).all(|(g, w)| (g - w).abs() < 0.015), "{got:?} {want:?}");
        };
        close(freq(&s(1.0)), [1.0 / 7.0, 2.0 / 7.0, 4.0 / 7.0, 0.0]);
        let r = std::f64::consts::SQRT_2;
        let t = 1.0 + r + 2.0;
        close(freq(&s(2.0)), [1.0 / t, r / t, 2.0 / t, 0.0]);
        close(freq(&Sampling { top_k: 2, ..s(1.0) }), [0.0, 1.0 / 3.0, 2.0 / 3.0, 0.0]);
        // Nucleus 0.6: 4/7 = 0.57 is not enough, the next (2/7) joins.
        close(freq(&Sampling { top_p: 0.6, ..s(1.0) }), [0.0, 1.0 / 3.0, 2.0 / 3.0, 0.0]);
        close(freq(&Sampling { min_p: 0.4, ..s(1.0) }), [0.0, 1.0 / 3.0, 2.0 / 3.0, 0.0]);
    }

    #[test]
    fn penalties_push_seen_tokens_down() {
        let mut logits = vec![2.0, 2.0, -1.0];
        let mut counts = std::collections::HashMap::new();
        counts.insert(0u32, 2usize);
        let p = Sampling {
            repetition_penalty: 2.0,
            frequency_penalty: 0.5,
            presence_penalty: 0.25,
            ..s(1.0)
        };
        apply_penalties(&mut logits, &[2], &counts, &p);
        assert_eq!(logits, vec![2.0 / 2.0 - 1.0 - 0.25, 2.0, -2.0]);
    }

    #[test]
    fn partial_stop_suffixes_are_held_back() {
        assert_eq!(partial_suffix("hello <|im", "<|im_end|>"), 4);
        assert_eq!(partial_suffix("hello", "<|im_end|>"), 0);
    }
}
