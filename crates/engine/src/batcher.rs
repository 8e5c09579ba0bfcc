//! Serving: one model decodes many requests together (continuous batching).
//!
//! A [`Batcher`] owns one decoding thread. Jobs wait in arrival order; each turn of the loop
//! admits waiting jobs while there is room (each into a cache of its own, which starts from a
//! kept cache of its prompt's beginning when there is one), then one step runs every running
//! sequence's new tokens together (`QLlama::forward_chunks`: the weights read once for all):
//! the next token of those decoding and the prompts of those just admitted, in parts of at
//! most [`PROMPT_TOKENS_PER_STEP`] tokens so that a long prompt does not stall the others.
//! Each sequence samples with its own controls (seed, penalties, stop strings, logprobs,
//! grammar) and streams its tokens; one that ends, or whose client left, frees its place for
//! the next waiting job at once. A sequence's tokens are those `generate::generate` gives its
//! prompt alone, whatever its batch mates (`forward_chunks` computes each row as `forward`
//! does, to the bit, and a prompt read in parts gets the values it gets in one).
//!
//! The f32 model (Hugging Face folders, merged exports) and candle's quantized decoder keep one
//! cache inside: there the jobs run one at a time, through the same per-token code.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};

use candle_core::Device;
use rayon::prelude::*;

use crate::bundle::Bundle;
use crate::generate::{Decoder, F32Decoder, Finish, QuantDecoder, Sampling, Sequence};
use crate::models::llama::Llama;
use crate::models::qllama::{QCache, QLlama};
use crate::{Error, Result};

/// A model loaded for serving; decodes many requests together.
pub enum Backend {
    /// The quantized fast path: on our own kernels it batches (`QLlama::forward_batch`);
    /// on candle's decoder, one job at a time.
    Quant(QuantDecoder),
    /// The f32 model (with an adapter applied, if any): one job at a time.
    F32(Box<Bundle>),
}

/// A decoding thread serving jobs; dropping it ends the thread (the jobs still running or
/// waiting then get `Failed("the model was unloaded")`).
pub struct Batcher {
    tx: Option<mpsc::Sender<Job>>,
    shared: Arc<Shared>,
    tokenizer: tokenizers::Tokenizer,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// One request: a prompt to continue and how.
pub struct Job {
    /// Token ids of the prompt (rendered and tokenized by the caller).
    pub prompt: Vec<u32>,
    /// Sampling controls; `max_tokens` already clamped to the context (`generate::room`).
    pub sampling: Sampling,
    /// `Some(k)`: each generated token's logprob and the `k` (0..=20) most likely alternatives.
    pub logprobs: Option<usize>,
    /// A grammar the output must follow (`grammar::json_schema`…).
    pub constraint: Option<Box<dyn Constraint>>,
    /// Receives the job's events; returns `false` when the client left: the sequence then
    /// ends at once (`Finish::Cancelled`) and frees its place.
    pub on_event: Box<dyn FnMut(JobEvent) -> bool + Send>,
}

/// What a job reports, in order: `Token`s, then one `Done` or one `Failed`.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    /// One generated token; `text` is the text newly safe to show (may be empty while a
    /// possible stop string or incomplete UTF-8 is held back, exactly as
    /// `generate::generate` streams). An end token is not reported as a `Token`.
    Token {
        /// The token's id.
        id: u32,
        /// Text newly safe to show.
        text: String,
        /// Its logprob and alternatives, when the job asked for them.
        logprob: Option<TokenLogprob>,
    },
    /// The job ended. `text` is the whole generated text (cut before a stop string); the part
    /// the `Token` events did not carry (held back when the end came) is its tail after the
    /// concatenation of their `text`s.
    Done {
        /// Why it ended.
        finish: Finish,
        /// Tokens of the prompt.
        prompt_tokens: usize,
        /// Tokens generated (without the end token).
        completion_tokens: usize,
        /// The whole generated text.
        text: String,
    },
    /// The job could not run or broke off (a prompt too long, a grammar error, the model
    /// unloaded); the message says why.
    Failed(String),
}

/// A generated token's log-probability and its most likely alternatives: the log-softmax of
/// the logits the token was drawn from (after penalties and the grammar's mask, before
/// temperature), as OpenAI reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// The token's text (its bytes read as UTF-8, lossily).
    pub token: String,
    /// The token's bytes.
    pub bytes: Vec<u8>,
    /// Its log-probability.
    pub logprob: f32,
    /// The most likely tokens at that position, most likely first: text, bytes, logprob.
    pub top: Vec<(String, Vec<u8>, f32)>,
}

/// A grammar that constrains decoding (`grammar::json_object`, `grammar::json_schema`).
pub trait Constraint: Send {
    /// Sets the logits of tokens the grammar forbids now to -inf (eos tokens are allowed only
    /// when the grammar may end).
    fn mask(&mut self, logits: &mut [f32]) -> Result<()>;
    /// The token chosen.
    fn commit(&mut self, token: u32) -> Result<()>;
    /// Whether the grammar is complete and must stop now (the sequence then ends with
    /// `Finish::Stop`).
    fn finished(&self) -> bool;
}

impl Batcher {
    /// Starts the decoding thread for `backend`: at most `max_batch` sequences decode
    /// together (1 where the backend cannot batch), each within `context` positions; `eos`
    /// are the tokens that end a reply.
    pub fn start(
        backend: Backend,
        tokenizer: tokenizers::Tokenizer,
        eos: Vec<u32>,
        context: usize,
        max_batch: usize,
    ) -> Batcher {
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let worker = Worker {
            shared: shared.clone(),
            tok: tokenizer.clone(),
            eos,
            context,
            max_batch: max_batch.max(1),
            bytes: OnceLock::new(),
        };
        let thread = std::thread::Builder::new()
            .name("vibeflow-batcher".into())
            .spawn(move || worker.run(&rx, backend))
            .ok();
        Batcher { tx: Some(tx), shared, tokenizer, thread }
    }

    /// Queues `job`; never waits for decoding. An error only when the decoding thread is gone.
    pub fn submit(&self, job: Job) -> Result<()> {
        let gone = || Error::Data("the model's decoding thread has stopped: load it again".into());
        let tx = self.tx.as_ref().ok_or_else(gone)?;
        self.shared.waiting.fetch_add(1, Ordering::SeqCst);
        if tx.send(job).is_err() {
            self.shared.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(gone());
        }
        Ok(())
    }

    /// `(running, waiting)`: sequences decoding now, jobs queued behind them.
    pub fn load(&self) -> (usize, usize) {
        (self.shared.running.load(Ordering::SeqCst), self.shared.waiting.load(Ordering::SeqCst))
    }

    /// The model's tokenizer (to count and render prompts).
    pub fn tokenizer(&self) -> &tokenizers::Tokenizer {
        &self.tokenizer
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const UNLOADED: &str = "the model was unloaded";

#[derive(Default)]
struct Shared {
    running: AtomicUsize,
    waiting: AtomicUsize,
    closed: AtomicBool,
}

/// The decoding thread's state.
struct Worker {
    shared: Arc<Shared>,
    tok: tokenizers::Tokenizer,
    eos: Vec<u32>,
    context: usize,
    max_batch: usize,
    /// Every token's bytes, built on the first request for logprobs.
    bytes: OnceLock<Vec<Vec<u8>>>,
}

/// Prompt tokens (of all the sequences reading theirs) one step runs at most, beside the
/// decoding sequences' next tokens: a step of ~100 ms for a 135M model on two cores, so a long
/// prompt delays the others' next tokens by no more than that, step after step.
pub const PROMPT_TOKENS_PER_STEP: usize = 128;

/// A running sequence.
struct Live {
    job: Job,
    seq: Sequence,
    /// Prompt tokens in its cache: it decodes once the whole prompt is.
    read: usize,
    /// A beginning of its prompt to keep as a prefix once read (`Stepper::snapshot`).
    keep_at: Option<usize>,
    /// The token to feed next, once decoding.
    next: u32,
}

impl Live {
    fn reading(&self) -> bool {
        self.read < self.job.prompt.len()
    }
}

/// How the model steps: our kernels keep one cache per sequence and batch; the others hold
/// one cache inside and run one sequence.
trait Stepper {
    /// Sequences that may decode together.
    fn width(&self) -> usize;
    /// Starts a sequence for `prompt` (with room for `room` more positions), placed last: how
    /// many of the prompt's first tokens its cache already holds (the rest go through `step`),
    /// and how many, once read, to keep for the prompts that will begin alike.
    fn begin(&mut self, prompt: &[u32], room: usize) -> Result<(usize, Option<usize>)>;
    /// One step: `chunks[i]`, the i-th sequence's new tokens (empty: it waits this step);
    /// rows of logits at the last new position of each sequence that had tokens.
    fn step(&mut self, chunks: &[&[u32]]) -> Result<Vec<f32>>;
    /// Forgets the i-th sequence.
    fn remove(&mut self, i: usize);
    /// Keeps the i-th sequence's cache, which holds `tokens`, as their prefix.
    fn snapshot(&mut self, _i: usize, _tokens: &[u32]) {}
}

/// Our kernels: one cache per sequence, and the caches of prompts' shared beginnings (a
/// system prompt, the same prompt asked `n` times), so that a new prompt runs only its own
/// tokens through the model. A prompt run in two parts gives the values it gets in one, to
/// the bit (each position's products, rotation and attention are computed alike).
struct Native<'a> {
    model: &'a QLlama,
    caches: Vec<QCache>,
    width: usize,
    /// Beginnings and their caches, most recently used last.
    prefixes: Vec<(Vec<u32>, QCache)>,
    /// Recent prompts, to find the beginnings worth keeping.
    recent: VecDeque<Vec<u32>>,
    /// The prompts begun since the last step.
    burst: Vec<Vec<u32>>,
}

/// Prefix caches kept, at most (a few for each sequence of a full batch: a system prompt and
/// each conversation going on), and their memory in all (a position of SmolLM2-135M's cache
/// is 23 KiB, of an 8B model's 128 KiB: 2048 positions).
const PREFIXES: usize = 16;
const PREFIX_BYTES: usize = 256 << 20;
/// A shared beginning shorter than this is run again rather than kept.
const MIN_PREFIX: usize = 8;
/// Prompts remembered to find shared beginnings.
const RECENT: usize = 16;

impl<'a> Native<'a> {
    fn new(model: &'a QLlama, width: usize) -> Self {
        Native {
            model,
            caches: Vec::new(),
            width,
            prefixes: Vec::new(),
            recent: VecDeque::new(),
            burst: Vec::new(),
        }
    }

    /// Keeps `cache` as the cache of `tokens`, forgetting the least recently used beyond the
    /// limits.
    fn keep(&mut self, tokens: Vec<u32>, cache: QCache) {
        self.prefixes.push((tokens, cache));
        while self.prefixes.len() > PREFIXES
            || self.prefixes.iter().map(|(_, c)| c.bytes()).sum::<usize>() > PREFIX_BYTES
        {
            self.prefixes.remove(0);
        }
    }
}

impl Stepper for Native<'_> {
    fn width(&self) -> usize {
        self.width
    }
    fn begin(&mut self, prompt: &[u32], room: usize) -> Result<(usize, Option<usize>)> {
        // A bad id would fail the step of every sequence: it fails its own job here.
        let vocab = self.model.vocab_size();
        if let Some(bad) = prompt.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::Data(format!("token {bad} is outside the vocabulary ({vocab})")));
        }
        // The longest kept beginning of this prompt (one token at least is left to run).
        let last = prompt.len().saturating_sub(1);
        let known = self
            .prefixes
            .iter()
            .enumerate()
            .filter(|(_, (t, _))| t.len() <= last && prompt.starts_with(t))
            .max_by_key(|(_, (t, _))| t.len())
            .map(|(i, _)| i);
        let (mut cache, mut done) = match known {
            Some(i) => {
                let entry = self.prefixes.remove(i);
                let found = (entry.1.clone(), entry.0.len());
                self.prefixes.push(entry);
                found
            }
            None => (self.model.cache_for(prompt.len() + room), 0),
        };
        let alike = |others: &mut dyn Iterator<Item = &Vec<u32>>| {
            others
                .map(|r| r.iter().zip(prompt).take_while(|(a, b)| a == b).count())
                .max()
                .unwrap_or(0)
                .min(last)
        };
        // A longer beginning shared with a prompt begun in this same turn (the same prompt
        // asked `n` times): run it once, now, and keep its cache for them all.
        let now = alike(&mut self.burst.iter());
        if now >= MIN_PREFIX.max(done + 1) {
            self.model.forward(&prompt[done..now], &mut cache)?;
            self.keep(prompt[..now].to_vec(), cache.clone());
            done = now;
        }
        // One shared with an earlier prompt (a conversation going on): read in the shared
        // steps like the rest of the prompt, and kept once read.
        let before = alike(&mut self.recent.iter());
        let keep_at = (before >= MIN_PREFIX.max(done + 1)).then_some(before);
        self.recent.push_back(prompt.to_vec());
        if self.recent.len() > RECENT {
            self.recent.pop_front();
        }
        self.burst.push(prompt.to_vec());
        self.caches.push(cache);
        Ok((done, keep_at))
    }
    fn step(&mut self, chunks: &[&[u32]]) -> Result<Vec<f32>> {
        self.burst.clear();
        self.model.forward_chunks(chunks, &mut self.caches)
    }
    fn remove(&mut self, i: usize) {
        self.caches.remove(i);
    }
    fn snapshot(&mut self, i: usize, tokens: &[u32]) {
        let cache = self.caches[i].clone();
        self.keep(tokens.to_vec(), cache);
    }
}

/// candle's quantized decoder: one sequence, its cache reset for each.
struct Alone<'a>(&'a mut QuantDecoder);

impl Stepper for Alone<'_> {
    fn width(&self) -> usize {
        1
    }
    fn begin(&mut self, _prompt: &[u32], _room: usize) -> Result<(usize, Option<usize>)> {
        self.0.reset();
        Ok((0, None))
    }
    fn step(&mut self, chunks: &[&[u32]]) -> Result<Vec<f32>> {
        self.0.step(alone(chunks)?)
    }
    fn remove(&mut self, _: usize) {}
}

/// The f32 model: one sequence, a fresh decoder (cache) for each.
struct Dense<'a> {
    model: &'a Llama,
    device: Device,
    dec: Option<F32Decoder<'a>>,
}

impl Stepper for Dense<'_> {
    fn width(&self) -> usize {
        1
    }
    fn begin(&mut self, _prompt: &[u32], _room: usize) -> Result<(usize, Option<usize>)> {
        self.dec = Some(F32Decoder::new(self.model, &self.device));
        Ok((0, None))
    }
    fn step(&mut self, chunks: &[&[u32]]) -> Result<Vec<f32>> {
        match &mut self.dec {
            Some(dec) => dec.step(alone(chunks)?),
            None => Err(Error::Data("no sequence to step".into())),
        }
    }
    fn remove(&mut self, _: usize) {
        self.dec = None;
    }
}

/// The one sequence's tokens, where the backend runs one.
fn alone<'a>(chunks: &[&'a [u32]]) -> Result<&'a [u32]> {
    match chunks {
        [one] if !one.is_empty() => Ok(one),
        _ => Err(Error::Data("this model decodes one sequence at a time".into())),
    }
}

/// What a sequence feeds one step.
#[derive(Clone, Copy)]
enum Feed {
    /// Nothing: its prompt waits for the next step's share.
    Wait,
    /// This many more of its prompt's tokens.
    Prompt(usize),
    /// Its next token.
    Next,
}

impl Worker {
    fn run(self, rx: &mpsc::Receiver<Job>, mut backend: Backend) {
        match &mut backend {
            Backend::Quant(q) => match q.native_model() {
                Some(model) => {
                    let width = self.max_batch;
                    self.serve(rx, &mut Native::new(model, width))
                }
                None => self.serve(rx, &mut Alone(q)),
            },
            Backend::F32(b) => {
                let device = b.device.clone();
                self.serve(rx, &mut Dense { model: &b.model, device, dec: None })
            }
        }
    }

    fn serve(&self, rx: &mpsc::Receiver<Job>, stepper: &mut dyn Stepper) {
        let mut waiting: VecDeque<Job> = VecDeque::new();
        let mut running: Vec<Live> = Vec::new();
        loop {
            if self.shared.closed.load(Ordering::SeqCst) {
                break;
            }
            if running.is_empty() && waiting.is_empty() {
                match rx.recv() {
                    Ok(job) => waiting.push_back(job),
                    Err(_) => break,
                }
            }
            waiting.extend(rx.try_iter());
            while running.len() < stepper.width()
                && let Some(job) = waiting.pop_front()
            {
                self.shared.waiting.fetch_sub(1, Ordering::SeqCst);
                if let Some(live) = self.admit(job, stepper) {
                    running.push(live);
                }
            }
            self.shared.running.store(running.len(), Ordering::SeqCst);
            if running.is_empty() {
                continue;
            }
            // Prompts share the step's budget in arrival order; one backend that runs a single
            // sequence reads its prompt whole (as `generate` does).
            let mut budget = if stepper.width() > 1 { PROMPT_TOKENS_PER_STEP } else { usize::MAX };
            let feeds: Vec<Feed> = running
                .iter()
                .map(|l| {
                    if !l.reading() {
                        return Feed::Next;
                    }
                    // A beginning to keep is read to its end first.
                    let end = l.keep_at.unwrap_or(l.job.prompt.len());
                    let take = (end - l.read).min(budget);
                    budget -= take;
                    if take == 0 { Feed::Wait } else { Feed::Prompt(take) }
                })
                .collect();
            let chunks: Vec<&[u32]> = running
                .iter()
                .zip(&feeds)
                .map(|(l, feed)| match *feed {
                    Feed::Wait => &[][..],
                    Feed::Prompt(take) => &l.job.prompt[l.read..l.read + take],
                    Feed::Next => std::slice::from_ref(&l.next),
                })
                .collect();
            let rows = chunks.iter().filter(|c| !c.is_empty()).count();
            let mut logits = match stepper.step(&chunks) {
                Ok(l) => l,
                Err(e) => {
                    for i in (0..running.len()).rev() {
                        stepper.remove(i);
                        let mut live = running.remove(i);
                        (live.job.on_event)(JobEvent::Failed(e.to_string()));
                    }
                    continue;
                }
            };
            let width = logits.len() / rows;
            // The sequences with a token to pick: those decoding, and those whose prompt is
            // now read whole.
            let mut picks = Vec::with_capacity(rows);
            let mut rows = logits.chunks_exact_mut(width);
            for (r, (live, feed)) in running.iter_mut().zip(&feeds).enumerate() {
                match *feed {
                    Feed::Wait => continue,
                    Feed::Prompt(take) => {
                        live.read += take;
                        if live.keep_at == Some(live.read) {
                            stepper.snapshot(r, &live.job.prompt[..live.read]);
                            live.keep_at = None;
                        }
                    }
                    Feed::Next => {}
                }
                let Some(row) = rows.next() else { break };
                if !live.reading() {
                    picks.push((r, live, row));
                }
            }
            // Each sequence samples and streams on its own (on the pool's threads when
            // there are several: their penalties, draws and decoding are independent).
            let flows: Vec<(usize, Result<ControlFlow<Finish, u32>>)> = picks
                .into_par_iter()
                .with_max_len(1)
                .map(|(r, live, row)| (r, self.advance(live, row)))
                .collect();
            let mut ended = Vec::new();
            for (r, flow) in flows {
                match flow {
                    Ok(ControlFlow::Continue(next)) => running[r].next = next,
                    Ok(ControlFlow::Break(finish)) => ended.push((r, Ok(finish))),
                    Err(e) => ended.push((r, Err(e))),
                }
            }
            let mut done = Vec::with_capacity(ended.len());
            for (r, end) in ended.into_iter().rev() {
                stepper.remove(r);
                done.push((running.remove(r), end));
            }
            // Counted before the ends are reported: whoever hears of one sees the place free.
            self.shared.running.store(running.len(), Ordering::SeqCst);
            for (live, end) in done {
                self.end(live, end);
            }
        }
        // Unloaded: whoever still waits or runs is told.
        self.shared.running.store(0, Ordering::SeqCst);
        waiting.extend(rx.try_iter());
        for mut job in waiting {
            self.shared.waiting.fetch_sub(1, Ordering::SeqCst);
            (job.on_event)(JobEvent::Failed(UNLOADED.into()));
        }
        for mut live in running {
            (live.job.on_event)(JobEvent::Failed(UNLOADED.into()));
        }
    }

    /// Starts a job's sequence in the stepper; `None` when it cannot run (reported).
    fn admit(&self, mut job: Job, stepper: &mut dyn Stepper) -> Option<Live> {
        let started = if job.prompt.is_empty() {
            Err(Error::Data("the prompt is empty: nothing to continue".into()))
        } else {
            crate::generate::room(job.prompt.len(), self.context, job.sampling.max_tokens)
                .map_err(Error::Data)
                .and_then(|room| Ok((room, stepper.begin(&job.prompt, room)?)))
        };
        match started {
            Ok((room, (read, keep_at))) => {
                let seq = Sequence::new(room, &job.sampling, true);
                Some(Live { job, seq, read, keep_at, next: 0 })
            }
            Err(e) => {
                (job.on_event)(JobEvent::Failed(e.to_string()));
                None
            }
        }
    }

    /// Picks a sequence's next token after `logits` and streams it: the token to feed next,
    /// or why the sequence ended.
    fn advance(&self, live: &mut Live, logits: &mut [f32]) -> Result<ControlFlow<Finish, u32>> {
        let Live { job, seq, .. } = live;
        let s = &job.sampling;
        if seq.full() {
            return Ok(ControlFlow::Break(Finish::Length));
        }
        seq.penalize(&job.prompt, logits, s);
        if let Some(c) = &mut job.constraint {
            c.mask(logits)?;
            if !logits.iter().any(|l| l.is_finite()) {
                return Err(Error::Data("the grammar allows no next token".into()));
            }
        }
        let token = seq.draw(logits, s);
        let logprob = job.logprobs.map(|k| self.logprob(logits, token, k.min(20)));
        if self.eos.contains(&token) {
            return Ok(ControlFlow::Break(Finish::Stop));
        }
        if let Some(c) = &mut job.constraint {
            c.commit(token)?;
        }
        let mut text = String::new();
        let flow = seq.accept(token, &self.tok, &self.eos, s, &mut |t| {
            text.push_str(t);
            true
        })?;
        if !(job.on_event)(JobEvent::Token { id: token, text, logprob }) {
            return Ok(ControlFlow::Break(Finish::Cancelled));
        }
        match flow {
            ControlFlow::Break(finish) => Ok(ControlFlow::Break(finish)),
            _ if job.constraint.as_ref().is_some_and(|c| c.finished()) => {
                Ok(ControlFlow::Break(Finish::Stop))
            }
            // At its limit the sequence ends without another step.
            _ if seq.full() => Ok(ControlFlow::Break(Finish::Length)),
            ControlFlow::Continue(next) => Ok(ControlFlow::Continue(next)),
        }
    }

    /// Reports a sequence's end.
    fn end(&self, mut live: Live, end: Result<Finish>) {
        let event = match end.and_then(|finish| {
            let out = live.seq.finish(finish, &self.tok, &mut |_| true)?;
            Ok(JobEvent::Done {
                finish,
                prompt_tokens: live.job.prompt.len(),
                completion_tokens: out.tokens.len(),
                text: out.text,
            })
        }) {
            Ok(done) => done,
            Err(e) => JobEvent::Failed(e.to_string()),
        };
        (live.job.on_event)(event);
    }

    fn logprob(&self, logits: &[f32], token: u32, k: usize) -> TokenLogprob {
        let bytes = self.bytes.get_or_init(|| crate::grammar::token_bytes(&self.tok));
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
        let lse = max as f64 + sum.ln();
        let lp = |i: usize| (logits[i] as f64 - lse) as f32;
        let piece = |i: usize| {
            let b = bytes.get(i).cloned().unwrap_or_default();
            (String::from_utf8_lossy(&b).into_owned(), b)
        };
        let mut idx: Vec<usize> = (0..logits.len()).collect();
        let top = if k == 0 {
            Vec::new()
        } else {
            let k = k.min(idx.len());
            let by = |a: &usize, b: &usize| logits[*b].total_cmp(&logits[*a]).then(a.cmp(b));
            idx.select_nth_unstable_by(k - 1, by);
            idx.truncate(k);
            idx.sort_unstable_by(by);
            idx.iter()
                .map(|&i| {
                    let (t, b) = piece(i);
                    (t, b, lp(i))
                })
                .collect()
        };
        let (t, b) = piece(token as usize);
        TokenLogprob { token: t, bytes: b, logprob: lp(token as usize), top }
    }
}
