//! Serving (`batcher::Batcher`, `grammar`) on the real model: each job's tokens are those
//! `generate` gives its prompt alone, whatever runs beside it; a client that leaves frees its
//! place; a prompt too long fails alone; grammars hold.

use std::sync::mpsc;

use candle_core::Device;
use engine::batcher::{Backend, Batcher, Constraint, Job, JobEvent};
use engine::bundle::{Bundle, Chat};
use engine::generate::{F32Decoder, Finish, Output, QuantDecoder, Sampling, generate};
use engine::template::Message;

/// Questions of different lengths; some end early, so places free up mid-way.
const QUESTIONS: [&str; 10] = [
    "Hi!",
    "Answer yes or no: is the sun a star?",
    "What is the capital of France?",
    "Write a haiku about autumn leaves falling on a quiet river.",
    "Explain in two sentences why the sky is blue, for a child of seven.",
    "List three prime numbers.",
    "2 + 2 =",
    "Reply with one word: the opposite of hot.",
    "Why do we have seasons on Earth?",
    "Name a fruit that is yellow.",
];

fn prompt(chat: &Chat, q: &str) -> Vec<u32> {
    let text = chat.template.render(&[Message::new("user", q)], true).unwrap();
    engine::tokenizer::encode(&chat.tokenizer, &text).unwrap()
}

/// What a job reported: its tokens, the text its `Token`s carried, and its last event.
#[derive(Debug)]
struct Report {
    ids: Vec<u32>,
    streamed: String,
    logprobs: Vec<engine::batcher::TokenLogprob>,
    end: JobEvent,
}

/// Submits a job whose events go to the returned receiver.
fn submit(
    b: &Batcher,
    prompt: Vec<u32>,
    sampling: Sampling,
    logprobs: Option<usize>,
    constraint: Option<Box<dyn Constraint>>,
    leave_after: Option<usize>,
) -> mpsc::Receiver<JobEvent> {
    let (tx, rx) = mpsc::channel();
    let mut tokens = 0;
    let on_event = Box::new(move |e: JobEvent| {
        if matches!(e, JobEvent::Token { .. }) {
            tokens += 1;
        }
        let _ = tx.send(e);
        leave_after.is_none_or(|n| tokens < n)
    });
    b.submit(Job { prompt, sampling, logprobs, constraint, on_event }).unwrap();
    rx
}

fn collect(rx: mpsc::Receiver<JobEvent>) -> Report {
    let mut r = Report {
        ids: Vec::new(),
        streamed: String::new(),
        logprobs: Vec::new(),
        end: JobEvent::Failed("no end".into()),
    };
    for e in rx {
        match e {
            JobEvent::Token { id, text, logprob } => {
                assert!(matches!(r.end, JobEvent::Failed(_)), "a token after the end");
                r.ids.push(id);
                r.streamed.push_str(&text);
                r.logprobs.extend(logprob);
            }
            end => {
                r.end = end;
                break;
            }
        }
    }
    r
}

/// The Done of `r` is `alone`'s output, and its tokens streamed before it.
fn check_same(r: &Report, alone: &Output, prompt_len: usize, what: &str) {
    let JobEvent::Done { finish, prompt_tokens, completion_tokens, text } = &r.end else {
        panic!("{what}: {:?}", r.end)
    };
    assert_eq!((finish, text), (&alone.finish, &alone.text), "{what}");
    assert_eq!((*prompt_tokens, *completion_tokens), (prompt_len, alone.tokens.len()), "{what}");
    assert_eq!(r.ids, alone.tokens, "{what}");
    assert!(text.starts_with(&r.streamed), "{what}: streamed {:?} of {text:?}", r.streamed);
}

fn quant(gguf: &std::path::Path) -> Option<QuantDecoder> {
    let dec = QuantDecoder::open(gguf, &Device::Cpu).unwrap();
    if !dec.native() {
        eprintln!(
            "skipped: this CPU lacks AVX2, FMA or F16C, so candle's decoder runs (no batches)"
        );
        return None;
    }
    Some(dec)
}

/// Thirteen jobs at once through a batch of 8 (so five wait), greedy and sampled with stop
/// strings and penalties, one with a prompt read over several steps, each equal to `generate`
/// alone; then with an adapter.
#[test]
fn concurrent_jobs_equal_generate_alone() {
    let Some(gguf) = crate::default_gguf() else { return };
    let chat = Chat::open(&gguf).unwrap();
    let Some(mut dec) = quant(&gguf) else { return };
    // All share the template's system prompt (kept once, `Native`'s prefix caches); the last
    // two repeat earlier prompts (kept to their last token).
    let mut prompts: Vec<Vec<u32>> = QUESTIONS.iter().map(|q| prompt(&chat, q)).collect();
    prompts.extend([prompts[3].clone(), prompts[4].clone()]);
    // A prompt longer than a step's share is read in parts while the others decode.
    let long = format!("Summarize this: {}", QUESTIONS.join(" ").repeat(3));
    prompts.insert(2, prompt(&chat, &long));
    assert!(prompts[2].len() > 2 * engine::batcher::PROMPT_TOKENS_PER_STEP, "{}", prompts[2].len());
    let greedy = Sampling { temperature: 0.0, max_tokens: 24, ..Sampling::default() };
    let sampled = |i: usize| Sampling {
        temperature: 0.8,
        top_p: 0.9,
        repetition_penalty: 1.1,
        max_tokens: 16 + i,
        seed: 5 + i as u64,
        stop: vec![".".into()],
        ..Sampling::default()
    };
    let dir = tempfile::tempdir().unwrap();
    crate::batch::random_adapter(&gguf, dir.path());
    for adapter in [false, true] {
        if adapter {
            dec.apply_adapter(dir.path()).unwrap();
        }
        // Each job's sampling: greedy for even ones, sampled for odd ones.
        let sampling = |i: usize| if i.is_multiple_of(2) { greedy.clone() } else { sampled(i) };
        let alone: Vec<Output> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                dec.reset();
                generate(&mut dec, &chat.tokenizer, p, &chat.eos, &sampling(i), &mut |_| true)
                    .unwrap()
            })
            .collect();
        let mut copy = quant(&gguf).unwrap();
        if adapter {
            copy.apply_adapter(dir.path()).unwrap();
        }
        let b =
            Batcher::start(Backend::Quant(copy), chat.tokenizer.clone(), chat.eos.clone(), 2048, 8);
        let rxs: Vec<_> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| submit(&b, p.clone(), sampling(i), None, None, None))
            .collect();
        for (i, rx) in rxs.into_iter().enumerate() {
            let r = collect(rx);
            check_same(&r, &alone[i], prompts[i].len(), &format!("adapter {adapter}: job {i}"));
        }
        // Conversations going on: each earlier prompt and more. The first time, its beginning
        // is read in the shared step and kept once read; the second time, it is taken from
        // there.
        let follow: Vec<Vec<u32>> =
            (0..2).map(|i| [&prompts[i][..], &prompts[3][1..]].concat()).collect();
        let alone: Vec<Output> = follow
            .iter()
            .map(|p| {
                dec.reset();
                generate(&mut dec, &chat.tokenizer, p, &chat.eos, &greedy, &mut |_| true).unwrap()
            })
            .collect();
        for time in ["first", "second"] {
            let rxs: Vec<_> = follow
                .iter()
                .map(|p| submit(&b, p.clone(), greedy.clone(), None, None, None))
                .collect();
            for (i, rx) in rxs.into_iter().enumerate() {
                let what = format!("adapter {adapter}: follow-up {i}, {time} time");
                check_same(&collect(rx), &alone[i], follow[i].len(), &what);
            }
        }
        assert_eq!(b.load(), (0, 0));
    }
}

/// A client that leaves ends its sequence at once; a prompt too long fails alone; the others
/// go on; dropping the batcher fails what still waits.
#[test]
fn a_job_that_leaves_or_fails_does_not_disturb_the_others() {
    let Some(gguf) = crate::default_gguf() else { return };
    let chat = Chat::open(&gguf).unwrap();
    let Some(mut dec) = quant(&gguf) else { return };
    let s = Sampling { temperature: 0.0, max_tokens: 12, ..Sampling::default() };
    let p = prompt(&chat, QUESTIONS[4]);
    let alone = generate(&mut dec, &chat.tokenizer, &p, &chat.eos, &s, &mut |_| true).unwrap();
    let b = Batcher::start(Backend::Quant(dec), chat.tokenizer.clone(), chat.eos.clone(), 64, 2);
    let long = prompt(&chat, &"word ".repeat(80));
    let leaves = submit(&b, p.clone(), s.clone(), None, None, Some(3));
    let too_long = submit(&b, long, s.clone(), None, None, None);
    let stays = submit(&b, p.clone(), s.clone(), None, None, None);
    let r = collect(leaves);
    assert_eq!(r.ids, alone.tokens[..3]);
    assert!(
        matches!(r.end, JobEvent::Done { finish: Finish::Cancelled, completion_tokens: 3, .. }),
        "{:?}",
        r.end
    );
    let r = collect(too_long);
    let JobEvent::Failed(e) = &r.end else { panic!("{:?}", r.end) };
    assert!(e.contains("the model's context is 64"), "{e}");
    check_same(&collect(stays), &alone, p.len(), "beside the others");
    // Unloading: the job running and the one waiting behind it are told.
    drop(b);
    let dec = quant(&gguf).unwrap();
    let b = Batcher::start(Backend::Quant(dec), chat.tokenizer.clone(), Vec::new(), 2048, 1);
    let endless = Sampling { max_tokens: 1500, ..s };
    let running = submit(&b, p.clone(), endless.clone(), None, None, None);
    let waiting = submit(&b, p, endless, None, None, None);
    // The second token comes after a step, so after the counts were updated.
    for _ in 0..2 {
        assert!(matches!(running.recv().unwrap(), JobEvent::Token { .. }));
    }
    assert_eq!(b.load(), (1, 1));
    drop(b);
    for rx in [running, waiting] {
        let r = collect(rx);
        assert_eq!(r.end, JobEvent::Failed("the model was unloaded".into()));
    }
}

/// Logprobs: the chosen token's and the top alternatives, most likely first, a distribution
/// (greedy: the chosen token is the first alternative).
#[test]
fn logprobs_name_the_token_and_its_alternatives() {
    let Some(gguf) = crate::default_gguf() else { return };
    let chat = Chat::open(&gguf).unwrap();
    let Some(dec) = quant(&gguf) else { return };
    let b = Batcher::start(Backend::Quant(dec), chat.tokenizer.clone(), chat.eos.clone(), 2048, 4);
    let s = Sampling { temperature: 0.0, max_tokens: 8, ..Sampling::default() };
    let r = collect(submit(&b, prompt(&chat, QUESTIONS[2]), s, Some(5), None, None));
    assert_eq!(r.logprobs.len(), r.ids.len());
    for (lp, &id) in r.logprobs.iter().zip(&r.ids) {
        assert_eq!(lp.top.len(), 5);
        assert_eq!(lp.top[0].2, lp.logprob);
        assert_eq!(lp.token, lp.top[0].0);
        assert_eq!(
            lp.bytes,
            engine::tokenizer::decode(&chat.tokenizer, &[id]).unwrap().into_bytes()
        );
        assert!(lp.top.windows(2).all(|w| w[0].2 >= w[1].2));
        let mass: f32 = lp.top.iter().map(|t| t.2.exp()).sum();
        assert!(lp.logprob <= 0.0 && mass <= 1.0001, "{lp:?}");
    }
}

/// The f32 model serves one job at a time, each equal to `generate` with `F32Decoder`.
#[test]
fn the_f32_model_serves_jobs_one_at_a_time() {
    let Some(gguf) = crate::default_gguf() else { return };
    let bundle = Bundle::open(&gguf, &Device::Cpu).unwrap();
    let s = Sampling { temperature: 0.0, max_tokens: 10, ..Sampling::default() };
    let chat = Chat::open(&gguf).unwrap();
    let prompts: Vec<Vec<u32>> = QUESTIONS[..3].iter().map(|q| prompt(&chat, q)).collect();
    let alone: Vec<Output> = prompts
        .iter()
        .map(|p| {
            let mut dec = F32Decoder::new(&bundle.model, &bundle.device);
            generate(&mut dec, &bundle.tokenizer, p, &bundle.eos, &s, &mut |_| true).unwrap()
        })
        .collect();
    let (tok, eos) = (bundle.tokenizer.clone(), bundle.eos.clone());
    let b = Batcher::start(Backend::F32(Box::new(bundle)), tok, eos, 2048, 8);
    let rxs: Vec<_> =
        prompts.iter().map(|p| submit(&b, p.clone(), s.clone(), None, None, None)).collect();
    for (i, rx) in rxs.into_iter().enumerate() {
        check_same(&collect(rx), &alone[i], prompts[i].len(), &format!("f32: job {i}"));
    }
}

/// A JSON schema holds: the reply parses and has its fields with their types; so does "any
/// JSON object"; an unsupported schema is refused with a reason.
#[test]
fn grammars_constrain_the_reply_to_json() {
    let Some(gguf) = crate::default_gguf() else { return };
    let chat = Chat::open(&gguf).unwrap();
    let Some(dec) = quant(&gguf) else { return };
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"]
    });
    let t0 = std::time::Instant::now();
    let person = engine::grammar::json_schema(&chat.tokenizer, &chat.eos, &schema).unwrap();
    let first = t0.elapsed();
    let t0 = std::time::Instant::now();
    let object = engine::grammar::json_object(&chat.tokenizer, &chat.eos).unwrap();
    eprintln!("grammar: first {first:?} (builds the trie), then {:?}", t0.elapsed());
    let b = Batcher::start(Backend::Quant(dec), chat.tokenizer.clone(), chat.eos.clone(), 2048, 4);
    let s = Sampling { temperature: 0.0, max_tokens: 80, ..Sampling::default() };
    let q = "Invent a person: reply in JSON with their name and age.";
    let a = submit(&b, prompt(&chat, q), s.clone(), None, Some(person), None);
    let o = submit(
        &b,
        prompt(&chat, "Give a cat a name and a colour, as a JSON object with two short fields."),
        s,
        None,
        Some(object),
        None,
    );
    for (rx, what) in [(a, "schema"), (o, "object")] {
        let r = collect(rx);
        let JobEvent::Done { text, finish, .. } = &r.end else { panic!("{what}: {:?}", r.end) };
        eprintln!("{what}: {finish:?} {text}");
        assert_eq!(*finish, Finish::Stop, "{what}: {text}");
        let v: serde_json::Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: {e}: {text}"));
        assert!(v.is_object(), "{what}: {text}");
        if what == "schema" {
            assert!(v["name"].is_string() && v["age"].is_i64(), "{text}");
        }
    }
    let bad = serde_json::json!({"type": "object", "properties": {"x": {"$ref": "#/nowhere"}}});
    let e = engine::grammar::json_schema(&chat.tokenizer, &chat.eos, &bad).err().unwrap();
    assert!(e.to_string().contains("unsupported JSON schema"), "{e}");
}

/// candle's quantized decoder (a file our kernels do not take: f16 matrices) serves one job
/// at a time, each equal to `generate` on the same decoder. Runs without the real model.
#[test]
fn candles_decoder_serves_jobs_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = crate::quantized::write_gguf(
        "tiny-llama",
        candle_core::quantized::GgmlDType::F16,
        dir.path(),
    );
    // candle's model also wants the rotary dimension (llama.cpp writes it; the kernels'
    // loader derives it).
    {
        use candle_core::quantized::gguf_file;
        let mut f = std::fs::File::open(&path).unwrap();
        let content = gguf_file::Content::read(&mut f).unwrap();
        let mut md: Vec<(String, gguf_file::Value)> =
            content.metadata.clone().into_iter().collect();
        let n = |k: &str| content.metadata[k].to_u32().unwrap();
        let head_dim = n("llama.embedding_length") / n("llama.attention.head_count");
        md.push(("llama.rope.dimension_count".into(), gguf_file::Value::U32(head_dim)));
        let tensors: Vec<(String, candle_core::quantized::QTensor)> = content
            .tensor_infos
            .keys()
            .map(|k| (k.clone(), content.tensor(&mut f, k, &Device::Cpu).unwrap()))
            .collect();
        let md: Vec<(&str, &gguf_file::Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let ts: Vec<(&str, &candle_core::quantized::QTensor)> =
            tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
        gguf_file::write(&mut std::fs::File::create(&path).unwrap(), &md, &ts).unwrap();
    }
    let mut dec = QuantDecoder::open(&path, &Device::Cpu).unwrap();
    assert!(!dec.native(), "f16 matrices run on candle's decoder");
    // A word per token id: any text will do, the same on both sides.
    let vocab: serde_json::Map<String, serde_json::Value> =
        (0..96).map(|i| (format!("t{i}"), serde_json::json!(i))).collect();
    let tok: tokenizers::Tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "t0"}
    })
    .to_string()
    .parse()
    .unwrap();
    let s = Sampling { temperature: 0.0, max_tokens: 6, ..Sampling::default() };
    let prompts = [vec![1u32, 17, 42, 5], vec![3, 9], vec![8, 8, 8, 60, 2, 11]];
    let eos = vec![2u32];
    let alone: Vec<Output> = prompts
        .iter()
        .map(|p| {
            dec.reset();
            generate(&mut dec, &tok, p, &eos, &s, &mut |_| true).unwrap()
        })
        .collect();
    assert!(alone.iter().any(|o| o.tokens.len() == 6), "{alone:?}");
    let b = Batcher::start(Backend::Quant(dec), tok, eos, 64, 8);
    let rxs: Vec<_> =
        prompts.iter().map(|p| submit(&b, p.clone(), s.clone(), None, None, None)).collect();
    for (i, rx) in rxs.into_iter().enumerate() {
        check_same(&collect(rx), &alone[i], prompts[i].len(), &format!("candle: job {i}"));
    }
}
