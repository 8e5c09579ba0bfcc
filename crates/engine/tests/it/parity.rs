//! Numerical parity with transformers + PEFT on tiny random Llama and Qwen2 models: logits,
//! masked loss (and the logits with the adapter merged), the gradient of every LoRA tensor, the weights after one AdamW step, and full
//! fine-tuning gradients, all within 1e-4. Four configurations: Llama (untied head), Qwen2 (tied),
//! Llama 3 (its RoPE scaling, tied head as Llama 3.2) and Qwen2 untied (as Qwen2.5 7B).
//! Fixtures: `scripts/reference/tiny_parity.py`.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use engine::adapter::{load_peft, make_full, merge_lora};
use engine::loss::causal_lm_loss;
use engine::optim::{AdamW, AdamWConfig};
use engine::weights::load_hf;

const TOL: f32 = 1e-4;

struct Fixture {
    dir: PathBuf,
    expected: HashMap<String, Tensor>,
}

impl Fixture {
    fn open(arch: &str) -> Fixture {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(format!("tiny-{arch}"));
        let expected =
            candle_core::safetensors::load(dir.join("expected.safetensors"), &Device::Cpu).unwrap();
        Fixture { dir, expected }
    }

    fn get(&self, k: &str) -> &Tensor {
        self.expected.get(k).unwrap_or_else(|| panic!("fixture lacks {k}"))
    }

    fn batch(&self, dev: &Device) -> (Tensor, Tensor) {
        let ids = self.get("input_ids").to_dtype(DType::U32).unwrap();
        (ids.to_device(dev).unwrap(), self.get("labels").to_device(dev).unwrap())
    }
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let a = a.to_device(b.device()).unwrap();
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn check(what: &str, ours: &Tensor, theirs: &Tensor) {
    let d = max_diff(ours, theirs);
    assert!(d <= TOL, "{what}: max |ours - reference| = {d:e} > {TOL:e}");
}

fn lora_parity(arch: &str) {
    let fx = Fixture::open(arch);
    let dev = crate::test_device();
    let mut model = load_hf(&fx.dir, &dev).unwrap();
    let tied = model.lm_head.weight.as_dense().is_some_and(|h| h.id() == model.embed.id());
    assert_eq!(tied, model.cfg.tie_word_embeddings, "{arch}: the head is tied as config.json says");
    // transformers' RoPE frequencies (the later fixtures hold them).
    if let Some(theirs) = fx.expected.get("inv_freq") {
        let ours = model.cfg.rope_inv_freq().unwrap();
        let ours = Tensor::new(ours.as_slice(), &Device::Cpu).unwrap();
        let d = max_diff(&ours, theirs);
        assert!(d <= 1e-7, "{arch} inv_freq: {ours} vs {theirs}");
    }
    let (cfg, params) = load_peft(&mut model, &fx.dir.join("adapter"), &dev).unwrap();
    assert_eq!((cfg.r, cfg.alpha), (4, 8.0));
    assert_eq!(params.vars.len(), 2 * 7 * 2, "every projection of both layers has A and B");
    let (ids, labels) = fx.batch(&dev);

    // Logits at the positions the attention mask keeps (right padding differs by design).
    let logits = model.forward(&ids, None).unwrap();
    let mask = fx.get("attention_mask").to_vec2::<i64>().unwrap();
    for (b, row) in mask.iter().enumerate() {
        let n = row.iter().filter(|&&m| m == 1).count();
        let ours = logits.get(b).unwrap().narrow(0, 0, n).unwrap();
        let theirs = fx.get("logits").get(b).unwrap().narrow(0, 0, n).unwrap();
        check(&format!("{arch} logits, row {b}"), &ours, &theirs);
    }
    // Merged into the weights (W + scale·B·A), the adapter gives the same logits.
    let mut merged = model.clone();
    assert_eq!(merge_lora(&mut merged).unwrap(), 2 * 7);
    assert!(merged.layers.iter().flat_map(|l| l.proj.values()).all(|p| p.lora.is_none()));
    let merged_logits = merged.forward(&ids, None).unwrap();
    for (b, row) in mask.iter().enumerate() {
        let n = row.iter().filter(|&&m| m == 1).count();
        let ours = merged_logits.get(b).unwrap().narrow(0, 0, n).unwrap();
        let theirs = fx.get("logits").get(b).unwrap().narrow(0, 0, n).unwrap();
        check(&format!("{arch} merged logits, row {b}"), &ours, &theirs);
    }

    let (loss, n) =
        causal_lm_loss(&model, &ids, &labels, engine::models::llama::Pass::Grad).unwrap();
    assert_eq!(n, 7 + 4, "label tokens after the shift: positions 5..12 and 5..9");
    check(&format!("{arch} loss"), &loss.reshape(1).unwrap(), fx.get("loss"));

    let grads = loss.backward().unwrap();
    for (name, var) in &params.vars {
        let g =
            grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{arch}: {name} got no gradient"));
        check(&format!("{arch} grad {name}"), g, fx.get(&format!("grad.{name}")));
    }

    let opt_cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx.dir.join("optimizer.json")).unwrap())
            .unwrap();
    let cfg = AdamWConfig {
        lr: opt_cfg["lr"].as_f64().unwrap(),
        beta1: opt_cfg["betas"][0].as_f64().unwrap(),
        beta2: opt_cfg["betas"][1].as_f64().unwrap(),
        eps: opt_cfg["eps"].as_f64().unwrap(),
        weight_decay: opt_cfg["weight_decay"].as_f64().unwrap(),
    };
    let mut opt = AdamW::new(params.vars.clone(), cfg).unwrap();
    opt.step(&grads, cfg.lr).unwrap();
    for (name, var) in &params.vars {
        check(
            &format!("{arch} after AdamW {name}"),
            var.as_tensor(),
            fx.get(&format!("after.{name}")),
        );
    }
}

fn full_parity(arch: &str) {
    let fx = Fixture::open(arch);
    let dev = crate::test_device();
    let mut model = load_hf(&fx.dir, &dev).unwrap();
    let params = make_full(&mut model).unwrap();
    let (ids, labels) = fx.batch(&dev);
    let (loss, _) =
        causal_lm_loss(&model, &ids, &labels, engine::models::llama::Pass::Grad).unwrap();
    let grads = loss.backward().unwrap();
    let expected: Vec<&String> = fx.expected.keys().filter(|k| k.starts_with("full.")).collect();
    assert_eq!(expected.len(), params.vars.len(), "{arch}: same trainable tensors as PyTorch");
    for (name, var) in &params.vars {
        let g =
            grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{arch}: {name} got no gradient"));
        check(&format!("{arch} full grad {name}"), g, fx.get(&format!("full.{name}")));
    }
}

#[test]
fn lora_matches_peft_on_tiny_llama() {
    lora_parity("llama");
}

#[test]
fn lora_matches_peft_on_tiny_qwen2() {
    lora_parity("qwen2");
}

#[test]
fn lora_matches_peft_on_tiny_llama3() {
    lora_parity("llama3");
}

#[test]
fn lora_matches_peft_on_tiny_qwen2_untied() {
    lora_parity("qwen2-untied");
}

#[test]
fn full_fine_tuning_gradients_match_on_tiny_llama() {
    full_parity("llama");
}

#[test]
fn full_fine_tuning_gradients_match_on_tiny_qwen2() {
    full_parity("qwen2");
}

#[test]
fn full_fine_tuning_gradients_match_on_tiny_llama3() {
    full_parity("llama3");
}

#[test]
fn full_fine_tuning_gradients_match_on_tiny_qwen2_untied() {
    full_parity("qwen2-untied");
}

#[test]
fn llama3_fixture_depends_on_its_rope_scaling() {
    // The same weights with plain RoPE give logits far outside the tolerance: the parity above
    // does check the scaling.
    let fx = Fixture::open("llama3");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx.dir.join("config.json")).unwrap())
            .unwrap();
    cfg["rope_parameters"]["rope_type"] = "default".into();
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    std::fs::copy(fx.dir.join("model.safetensors"), dir.path().join("model.safetensors")).unwrap();
    let (ids, _) = fx.batch(&Device::Cpu);
    let logits = |d: &std::path::Path| {
        let mut model = load_hf(d, &Device::Cpu).unwrap();
        load_peft(&mut model, &fx.dir.join("adapter"), &Device::Cpu).unwrap();
        model.forward(&ids, None).unwrap()
    };
    let d = max_diff(&logits(dir.path()), &logits(&fx.dir));
    assert!(d > 100.0 * TOL, "plain RoPE changes the logits by only {d:e}");
}
