//! Batched generation on the quantized fast path (`generate::generate_batch`,
//! `QLlama::forward_batch`) on the real model: a sequence's logits and tokens are the same, to
//! the bit, whatever batch it decodes in and whoever its batch mates are, and the same as
//! `generate` gives its prompt alone, with and without an adapter.

use candle_core::Device;
use engine::bundle::Chat;
use engine::generate::{
    Batching, Finish, Output, QuantDecoder, Sampling, generate, generate_batch,
};
use engine::models::qllama::QLlama;
use engine::template::Message;

/// Sixteen questions of different lengths; a few invite a short answer, so sequences end at
/// different steps and waiting prompts take their places.
const QUESTIONS: [&str; 16] = [
    "Hi!",
    "Answer yes or no: is the sun a star?",
    "What is the capital of France?",
    "Write a haiku about autumn leaves falling on a quiet river.",
    "Explain in two sentences why the sky is blue, for a child of seven.",
    "List three prime numbers.",
    "Translate 'good morning' into Spanish.",
    "Summarize the plot of Romeo and Juliet in one paragraph, naming the two families and \
     how the story ends for both lovers.",
    "2 + 2 =",
    "Give me a name for a small grey cat.",
    "What does a lighthouse keeper do all day? Describe a typical day from dawn to night.",
    "Reply with one word: the opposite of hot.",
    "Why do we have seasons on Earth?",
    "Write a short polite email declining a meeting invitation next Tuesday at ten because \
     of a scheduling conflict, and suggest Thursday afternoon instead.",
    "Name a fruit that is yellow.",
    "How many legs does a spider have?",
];

fn prompts(chat: &Chat) -> Vec<Vec<u32>> {
    QUESTIONS
        .iter()
        .map(|q| {
            let text = chat.template.render(&[Message::new("user", q)], true).unwrap();
            engine::tokenizer::encode(&chat.tokenizer, &text).unwrap()
        })
        .collect()
}

/// A PEFT adapter on every projection of the real model, its B matrices random (PEFT starts them
/// at zero, an adapter without effect).
pub(crate) fn random_adapter(gguf: &std::path::Path, dir: &std::path::Path) {
    use candle_core::Tensor;
    let dev = Device::Cpu;
    let mut b = engine::bundle::Bundle::open(gguf, &dev).unwrap();
    let targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
    let cfg = engine::lora::LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: targets.map(String::from).to_vec(),
    };
    let params = engine::adapter::add_lora(&mut b.model, &cfg, 11, &dev).unwrap();
    for (name, v) in &params.vars {
        if name.contains("lora_B") {
            v.set(&Tensor::randn(0f32, 0.05, v.shape(), &dev).unwrap()).unwrap();
        }
    }
    engine::adapter::save_peft(&b.model, &cfg, "SmolLM2", dir).unwrap();
}

/// `generate` on each prompt alone, the decoder reset between them.
fn one_by_one(
    dec: &mut QuantDecoder,
    chat: &Chat,
    prompts: &[Vec<u32>],
    s: &Sampling,
) -> Vec<Output> {
    prompts
        .iter()
        .map(|p| {
            dec.reset();
            generate(dec, &chat.tokenizer, p, &chat.eos, s, &mut |_| true).unwrap()
        })
        .collect()
}

fn check_batches(dec: &mut QuantDecoder, chat: &Chat, s: &Sampling, what: &str) {
    let prompts = prompts(chat);
    let alone = one_by_one(dec, chat, &prompts, s);
    let ended_early = alone.iter().filter(|o| o.finish == Finish::Stop).count();
    eprintln!("{what}: {ended_early} of {} sequences end before max_tokens", alone.len());
    for size in [1, 4, 8, 16] {
        let batching = Batching { size, context: chat.context.unwrap_or(2048) };
        let mut done = Vec::new();
        let outs =
            generate_batch(dec, &chat.tokenizer, &prompts, &chat.eos, s, batching, &mut |i, o| {
                assert_eq!(o, &alone[i], "{what}: batch {size}: prompt {i} as reported");
                done.push(i);
                true
            })
            .unwrap();
        for (i, (batched, alone)) in outs.iter().zip(&alone).enumerate() {
            assert_eq!(batched, alone, "{what}: batch {size}: prompt {i}");
        }
        done.sort_unstable();
        assert_eq!(done, (0..prompts.len()).collect::<Vec<_>>(), "{what}: batch {size}");
    }
}

#[test]
fn batched_generation_equals_generate_at_every_batch_size() {
    let Some(gguf) = crate::default_gguf() else { return };
    let chat = Chat::open(&gguf).unwrap();
    let mut dec = QuantDecoder::open(&gguf, &Device::Cpu).unwrap();
    if !dec.native() {
        eprintln!(
            "skipped: this CPU lacks AVX2, FMA or F16C, so candle's decoder runs (no batches)"
        );
        return;
    }
    let greedy = Sampling { temperature: 0.0, max_tokens: 24, ..Sampling::default() };
    check_batches(&mut dec, &chat, &greedy, "greedy");
    // Sampled, with penalties and a stop string: each sequence draws from its own generator.
    let sampled = Sampling {
        temperature: 0.8,
        top_p: 0.9,
        repetition_penalty: 1.1,
        max_tokens: 16,
        seed: 5,
        stop: vec![".".into()],
        ..Sampling::default()
    };
    check_batches(&mut dec, &chat, &sampled, "sampled");
    let dir = tempfile::tempdir().unwrap();
    random_adapter(&gguf, dir.path());
    assert_eq!(dec.apply_adapter(dir.path()).unwrap(), 30 * 7);
    check_batches(&mut dec, &chat, &greedy, "greedy, adapter");
}

/// The step itself: logits of sequences at different lengths decoded together equal each one's
/// `forward` alone, to the bit, in any grouping.
#[test]
fn batched_logits_equal_each_sequence_alone_to_the_bit() {
    let Some(gguf) = crate::default_gguf() else { return };
    let chat = Chat::open(&gguf).unwrap();
    let (content, mut f) = engine::gguf::open(&gguf).unwrap();
    let model = QLlama::from_gguf(&content, &mut f, &gguf).unwrap().unwrap();
    let prompts = prompts(&chat);
    let mut caches = Vec::new();
    let mut next = Vec::new();
    for p in &prompts[..6] {
        let mut cache = model.cache();
        let logits = model.forward(p, &mut cache).unwrap();
        next.push(crate::argmax(&logits) as u32);
        caches.push(cache);
    }
    let vocab = chat.tokenizer.get_vocab_size(true);
    for group in [&[0usize, 1, 2, 3, 4, 5][..], &[5, 0, 3], &[2, 4]] {
        let mut batch: Vec<_> = group.iter().map(|&i| caches[i].clone()).collect();
        let ids: Vec<u32> = group.iter().map(|&i| next[i]).collect();
        let logits = model.forward_batch(&ids, &mut batch).unwrap();
        assert_eq!(logits.len() % group.len(), 0);
        let width = logits.len() / group.len();
        assert!(width >= vocab);
        for (r, &i) in group.iter().enumerate() {
            let mut alone = caches[i].clone();
            let expected = model.forward(&[next[i]], &mut alone).unwrap();
            assert!(expected == logits[r * width..(r + 1) * width], "sequence {i} in {group:?}");
            assert_eq!(batch[r].len(), alone.len());
        }
    }
}

/// A step of mixed chunks (a whole prompt, a prompt's second part, next tokens, a sequence that
/// waits) gives each sequence the logits `forward` gives it alone, to the bit.
#[test]
fn chunks_of_prompts_and_next_tokens_equal_each_sequence_alone() {
    let Some(gguf) = crate::default_gguf() else { return };
    let chat = Chat::open(&gguf).unwrap();
    let (content, mut f) = engine::gguf::open(&gguf).unwrap();
    let model = QLlama::from_gguf(&content, &mut f, &gguf).unwrap().unwrap();
    let prompts = prompts(&chat);
    let (a, b, c, d) = (&prompts[0], &prompts[1], &prompts[2], &prompts[3]);
    // a: decoding its next token; b: its prompt's second part; c: its whole prompt; d: waits.
    let mut ca = model.cache();
    let next_a = crate::argmax(&model.forward(a, &mut ca).unwrap()) as u32;
    let half = b.len() / 2;
    let mut cb = model.cache();
    model.forward(&b[..half], &mut cb).unwrap();
    let mut cd = model.cache();
    model.forward(d, &mut cd).unwrap();
    let mut caches = vec![ca.clone(), cb.clone(), model.cache(), cd.clone()];
    let chunks: [&[u32]; 4] = [&[next_a], &b[half..], c, &[]];
    let logits = model.forward_chunks(&chunks, &mut caches).unwrap();
    let width = logits.len() / 3;
    let expected = [
        model.forward(&[next_a], &mut ca).unwrap(),
        model.forward(b, &mut model.cache()).unwrap(),
        model.forward(c, &mut model.cache()).unwrap(),
    ];
    for (r, e) in expected.iter().enumerate() {
        assert!(e[..] == logits[r * width..][..e.len()], "row {r}");
    }
    let lens: Vec<usize> = caches.iter().map(|c| c.len()).collect();
    assert_eq!(lens, [a.len() + 1, b.len(), c.len(), cd.len()]);
}

/// Stopping from the progress callback: what ran ends as cancelled, nothing more is decoded.
#[test]
fn a_batch_stops_when_its_callback_says_so() {
    let Some(gguf) = crate::default_gguf() else { return };
    let chat = Chat::open(&gguf).unwrap();
    let mut dec = QuantDecoder::open(&gguf, &Device::Cpu).unwrap();
    let prompts = prompts(&chat);
    let s = Sampling { temperature: 0.0, max_tokens: 8, ..Sampling::default() };
    let batching = Batching { size: 4, context: 2048 };
    let mut reported = 0;
    let outs =
        generate_batch(&mut dec, &chat.tokenizer, &prompts, &[], &s, batching, &mut |_, o| {
            assert_eq!(o.finish, Finish::Length);
            reported += 1;
            false
        })
        .unwrap();
    assert_eq!((reported, outs.len()), (1, prompts.len()));
    let finished = outs.iter().filter(|o| o.finish == Finish::Length).count();
    assert_eq!(finished, 1);
    // The prompts never started produced nothing.
    assert!(outs[4..].iter().all(|o| o.finish == Finish::Cancelled && o.tokens.is_empty()));
    // A prompt that leaves no room is refused before anything runs.
    let tight = Batching { size: 4, context: 10 };
    let err = generate_batch(&mut dec, &chat.tokenizer, &prompts, &[], &s, tight, &mut |_, _| true);
    assert!(err.unwrap_err().to_string().contains("prompt 1:"), "names the first too long");
}
