//! Sequence log-probabilities and perplexity against PyTorch: per-row summed log-probabilities
//! of the labelled tokens on the tiny models with their PEFT adapter (fixture
//! `scripts/reference/dpo_tiny.py`), and on SmolLM2 with its chat template, assistant-only
//! labels and tokenization (fixture `scripts/reference/logprobs_smollm2.py`), within 1e-4
//! relative.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use engine::adapter::load_peft;
use engine::bundle::Bundle;
use engine::logprob::{perplexity, sequence_logprobs};
use engine::template::Message;
use engine::train::{Example, tokenize};
use engine::weights::load_hf;

pub(crate) const TOL: f64 = 1e-4;

pub(crate) fn fixture_dir(arch: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(format!("tiny-{arch}"))
}

pub(crate) struct Fixture {
    expected: HashMap<String, Tensor>,
}

impl Fixture {
    pub(crate) fn open(arch: &str) -> Fixture {
        let path = fixture_dir(arch).join("preference.safetensors");
        Fixture { expected: candle_core::safetensors::load(path, &Device::Cpu).unwrap() }
    }

    pub(crate) fn get(&self, k: &str) -> &Tensor {
        self.expected.get(k).unwrap_or_else(|| panic!("fixture lacks {k}"))
    }

    pub(crate) fn floats(&self, k: &str) -> Vec<f64> {
        let t = self.get(k).to_dtype(candle_core::DType::F64).unwrap();
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// One side's rows as examples, padding cut off (each completion ends its row).
    pub(crate) fn examples(&self, side: &str) -> Vec<Example> {
        let ids = self.get(&format!("{side}_ids")).to_vec2::<i64>().unwrap();
        let labels = self.get(&format!("{side}_labels")).to_vec2::<i64>().unwrap();
        ids.into_iter()
            .zip(labels)
            .map(|(ids, labels)| {
                let n = labels.iter().rposition(|&l| l != -100).unwrap() + 1;
                Example {
                    ids: ids[..n].iter().map(|&i| i as u32).collect(),
                    labels: labels[..n].to_vec(),
                }
            })
            .collect()
    }
}

/// Asserts `ours` is within [`TOL`] of `theirs`, relatively; returns the relative difference.
pub(crate) fn close(what: &str, ours: f64, theirs: f64) -> f64 {
    let rel = (ours - theirs).abs() / theirs.abs().max(1e-12);
    assert!(rel <= TOL, "{what}: ours {ours} vs reference {theirs} (relative {rel:e})");
    rel
}

fn logprob_parity(arch: &str) {
    let fx = Fixture::open(arch);
    let dev = crate::test_device();
    let mut model = load_hf(&fixture_dir(arch), &dev).unwrap();
    load_peft(&mut model, &fixture_dir(arch).join("adapter"), &dev).unwrap();
    // Summed log-probabilities per row, with the adapter, one or two rows at a time.
    let mut worst = 0f64;
    for side in ["chosen", "rejected"] {
        let examples = fx.examples(side);
        let counts = fx.floats(&format!("{side}_tokens"));
        for batch in [1, 2] {
            let scores = sequence_logprobs(&model, &examples, batch).unwrap();
            for (i, s) in scores.iter().enumerate() {
                let theirs = fx.floats(&format!("policy_{side}"))[i];
                let rel = close(&format!("{arch} {side} row {i} logprob"), s.logprob, theirs);
                worst = worst.max(rel);
                assert_eq!(s.tokens as f64, counts[i]);
            }
            let theirs = fx.floats(&format!("policy_{side}"));
            let ppl = (-theirs.iter().sum::<f64>() / counts.iter().sum::<f64>()).exp();
            close(&format!("{arch} {side} perplexity"), perplexity(&scores), ppl);
        }
    }
    eprintln!("{arch}: worst log-probability difference {worst:e} (relative)");
}

#[test]
fn sequence_logprobs_match_pytorch_on_tiny_llama_with_its_adapter() {
    logprob_parity("llama");
}

#[test]
fn sequence_logprobs_match_pytorch_on_tiny_qwen2_with_its_adapter() {
    logprob_parity("qwen2");
}

#[test]
fn perplexity_of_smollm2_matches_transformers_with_the_same_tokens_and_labels() {
    let Some(gguf) = crate::default_gguf() else { return };
    let fx = crate::fixture("smollm2_logprobs.json");
    let b = Bundle::open(&gguf, &crate::test_device()).unwrap();
    let ints = |v: &serde_json::Value| -> Vec<i64> {
        v.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect()
    };
    let cases = fx["conversations"].as_array().unwrap();
    let mut examples = Vec::new();
    for case in cases {
        let messages: Vec<Message> = serde_json::from_value(case["messages"].clone()).unwrap();
        let e = tokenize(&b, &messages, 4096).unwrap();
        let ids: Vec<i64> = e.ids.iter().map(|&i| i64::from(i)).collect();
        assert_eq!(ids, ints(&case["ids"]), "tokens of {messages:?}");
        assert_eq!(e.labels, ints(&case["labels"]), "labels of {messages:?}");
        examples.push(e);
    }
    let scores = sequence_logprobs(&b.model, &examples, 3).unwrap();
    let mut worst = 0f64;
    for (s, case) in scores.iter().zip(cases) {
        assert_eq!(s.tokens as u64, case["tokens"].as_u64().unwrap());
        let theirs = case["logprob"].as_f64().unwrap();
        worst = worst.max(close("summed log-probability", s.logprob, theirs));
    }
    let ppl = perplexity(&scores);
    let rel = close("perplexity", ppl, fx["perplexity"].as_f64().unwrap());
    eprintln!("SmolLM2: perplexity {ppl} ({rel:e} from transformers'), worst row {worst:e}");
}
