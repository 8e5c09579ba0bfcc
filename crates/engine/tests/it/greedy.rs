//! Greedy generation of SmolLM2-135M-Instruct (f32 path) equals transformers' on the same GGUF.
//! Fixture: `scripts/reference/greedy_smollm2.py`.

use candle_core::Device;
use engine::bundle::Bundle;
use engine::generate::{F32Decoder, Sampling, generate};
use engine::template::Message;

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

#[test]
fn greedy_tokens_match_transformers() {
    let Some(gguf) = crate::default_gguf() else { return };
    let fx = crate::fixture("smollm2_greedy.json");
    let b = Bundle::open(&gguf, &Device::Cpu).unwrap();
    let n = fx["new_tokens"].as_u64().unwrap() as usize;
    for case in fx["cases"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        // Same template rendering and tokenization as transformers.
        let text = b.template.render(&[Message::new("user", prompt)], true).unwrap();
        assert_eq!(text, case["text"].as_str().unwrap(), "template, prompt {prompt:?}");
        let prompt_ids = b.prompt_ids(&[Message::new("user", prompt)]).unwrap();
        assert_eq!(prompt_ids, ids(&case["prompt_ids"]), "tokens, prompt {prompt:?}");
        // 32 greedy tokens, not stopping at the end token (as the reference).
        let s = Sampling { temperature: 0.0, max_tokens: n, ..Sampling::default() };
        let mut dec = F32Decoder::new(&b.model, &b.device);
        let out = generate(&mut dec, &b.tokenizer, &prompt_ids, &[], &s, &mut |_| true).unwrap();
        assert_eq!(out.tokens, ids(&case["generated_ids"]), "generation, prompt {prompt:?}");
    }
}
