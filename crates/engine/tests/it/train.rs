//! The training loop: exact resume, held-out loss falls on the real model, and Python PEFT
//! loads the adapter we write with the same numbers.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::Tensor;
use engine::bundle::Bundle;
use engine::device::PrecisionExt;
use engine::lora::{LoraConfig, Quant, QuantExt};
use engine::ops::Weight;
use engine::optim::{AdamWConfig, Schedule};
use engine::template::Message;
use engine::train::{
    Example, Method, Recompute, TrainConfig, read_chat_jsonl, split, tokenize, train,
};
use engine::weights::load_hf;

fn tiny_examples(n: usize, seed: u64) -> Vec<Example> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            let ids: Vec<u32> = (0..10)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    3 + (x >> 33) as u32 % 90
                })
                .collect();
            let labels = ids
                .iter()
                .enumerate()
                .map(|(i, &t)| if i >= 4 { t as i64 } else { -100 })
                .collect();
            Example { ids, labels }
        })
        .collect()
}

fn tiny_config() -> TrainConfig {
    TrainConfig {
        method: Method::Lora(LoraConfig {
            r: 4,
            alpha: 8.0,
            dropout: 0.1,
            ..LoraConfig::default()
        }),
        steps: Some(6),
        batch_size: 2,
        grad_accum: 2,
        adamw: AdamWConfig { lr: 1e-2, ..AdamWConfig::default() },
        warmup_steps: 1,
        schedule: Schedule::Cosine,
        checkpoint_every: 2,
        keep_checkpoints: 5,
        eval_every: 3,
        ..TrainConfig::default()
    }
}

fn tiny_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama")
}

#[test]
fn killed_run_resumes_to_the_same_losses() {
    let data = tiny_examples(16, 7);
    let (tr, ev) = split(data, 0.25, 1);
    let cfg = tiny_config();
    let dev = crate::test_device();

    let whole = tempfile::tempdir().unwrap();
    let mut m = load_hf(&tiny_dir(), &dev).unwrap();
    let full = train(&mut m, &tr, &ev, &cfg, "tiny", whole.path(), None, &mut |_| true).unwrap();
    assert_eq!(full.steps, 6);
    assert!(!full.stopped);

    // Stop after step 3, then lose the step-3 checkpoint as if killed after the step-2 one.
    let cut = tempfile::tempdir().unwrap();
    let mut m = load_hf(&tiny_dir(), &dev).unwrap();
    let first =
        train(&mut m, &tr, &ev, &cfg, "tiny", cut.path(), None, &mut |p| p.step < 3).unwrap();
    assert!(first.stopped);
    assert_eq!(first.losses, full.losses[..3]);
    std::fs::remove_dir_all(cut.path().join("checkpoints/step-000003")).unwrap();
    assert!(cut.path().join("checkpoints/step-000002/state.json").exists());

    let mut m = load_hf(&tiny_dir(), &dev).unwrap();
    let resumed =
        train(&mut m, &tr, &ev, &cfg, "tiny", cut.path(), Some(cut.path()), &mut |_| true).unwrap();
    assert_eq!(resumed.steps, 6);
    assert_eq!(resumed.losses.len(), 6);
    for (i, (a, b)) in resumed.losses.iter().zip(&full.losses).enumerate() {
        assert!((a - b).abs() <= 1e-6, "step {}: resumed {a} vs uninterrupted {b}", i + 1);
    }
    assert_eq!(resumed.eval_loss_after, full.eval_loss_after);
    assert!(cut.path().join("adapter/adapter_model.safetensors").exists());
}

#[test]
fn qlora_is_lora_over_the_quantized_base_in_a_fraction_of_the_memory() {
    let data = tiny_examples(16, 11);
    let (tr, ev) = split(data, 0.25, 1);
    let lora = match tiny_config().method {
        Method::Lora(l) => l,
        _ => unreachable!(),
    };
    let dev = crate::test_device();
    for quant in [Quant::Q4_1, Quant::Q8_0] {
        // QLoRA: the projections become quantized blocks when training starts.
        let cfg =
            TrainConfig { method: Method::Qlora { lora: lora.clone(), quant }, ..tiny_config() };
        let out = tempfile::tempdir().unwrap();
        let mut q = load_hf(&tiny_dir(), &dev).unwrap();
        let dense_bytes = q.projection_bytes();
        let qs = train(&mut q, &tr, &ev, &cfg, "tiny", out.path(), None, &mut |_| true).unwrap();
        let quant_bytes = q.projection_bytes();
        assert!(
            quant_bytes * 3 < dense_bytes,
            "{quant:?}: {quant_bytes} bytes of projections vs {dense_bytes} dense"
        );

        // Plain LoRA over a dense copy of the same quantized values: the same run, step by step.
        let mut d = load_hf(&tiny_dir(), &dev).unwrap();
        for layer in &mut d.layers {
            for lin in layer.proj.values_mut() {
                let w = lin.weight.quantize(quant.ggml()).unwrap().dense().unwrap();
                lin.weight = Weight::Dense(w);
            }
        }
        let cfg = TrainConfig { method: Method::Lora(lora.clone()), ..tiny_config() };
        let out2 = tempfile::tempdir().unwrap();
        let ds = train(&mut d, &tr, &ev, &cfg, "tiny", out2.path(), None, &mut |_| true).unwrap();
        assert_eq!(qs.trainable_parameters, ds.trainable_parameters);
        for (i, (a, b)) in qs.losses.iter().zip(&ds.losses).enumerate() {
            assert!((a - b).abs() <= 1e-6, "{quant:?} step {}: qlora {a} vs lora {b}", i + 1);
        }
        // Learning happened, and it is not the dense model's run.
        assert!(qs.eval_loss_after.unwrap() < qs.eval_loss_before.unwrap());
        let mut f = load_hf(&tiny_dir(), &dev).unwrap();
        let cfg = TrainConfig { method: Method::Lora(lora.clone()), ..tiny_config() };
        let out3 = tempfile::tempdir().unwrap();
        let fs = train(&mut f, &tr, &ev, &cfg, "tiny", out3.path(), None, &mut |_| true).unwrap();
        assert_ne!(fs.losses, qs.losses, "{quant:?}: quantizing must change the base");
        assert!(out.path().join("adapter/adapter_model.safetensors").exists());
    }
}

#[test]
fn gradient_checkpointing_changes_memory_not_results() {
    let data = tiny_examples(16, 5);
    let (tr, ev) = split(data, 0.25, 1);
    let dev = crate::test_device();
    // LoRA with dropout (the replay must draw the same masks), and full fine-tuning (norms,
    // projections and the embedding all trained).
    for method in [tiny_config().method, Method::Full] {
        let run = |checkpointing: bool| {
            let cfg = TrainConfig {
                method: method.clone(),
                gradient_checkpointing: checkpointing,
                ..tiny_config()
            };
            let out = tempfile::tempdir().unwrap();
            let mut m = load_hf(&tiny_dir(), &dev).unwrap();
            let s = train(&mut m, &tr, &ev, &cfg, "tiny", out.path(), None, &mut |_| true).unwrap();
            let file = if method == Method::Full {
                "model/model.safetensors"
            } else {
                "adapter/adapter_model.safetensors"
            };
            let tensors = candle_core::safetensors::load(out.path().join(file), &dev).unwrap();
            (s, tensors)
        };
        let (on, on_w) = run(true);
        let (off, off_w) = run(false);
        for (i, (a, b)) in on.losses.iter().zip(&off.losses).enumerate() {
            assert!((a - b).abs() <= 1e-6, "{}: step {}: {a} vs {b}", method.name(), i + 1);
        }
        assert_eq!(on_w.len(), off_w.len());
        for (name, a) in &on_w {
            let d = (a - &off_w[name])
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(d <= 1e-5, "{}: {name} differs by {d}", method.name());
        }
        assert!(on.eval_loss_after.unwrap() < on.eval_loss_before.unwrap());
        // A run with checkpointing recomputes only what its memory budget does not hold (on
        // a tiny model: nothing), so the recomputing paths are held here step by step too:
        // every block, none, and the first only.
        let mut m = load_hf(&tiny_dir(), &dev).unwrap();
        let params =
            engine::train::prepare(&mut m, &method, engine::device::Precision::F32, 3).unwrap();
        let refs: Vec<&Example> = tr.iter().take(4).collect();
        let (ids, labels, _) = engine::train::collate(&refs, &dev).unwrap();
        let (l0, g0) =
            engine::train::gradients(&m, &ids, &labels, 9, Recompute::Nothing, 1.0).unwrap();
        for recompute in [Recompute::All, Recompute::First(1)] {
            let (l, g) = engine::train::gradients(&m, &ids, &labels, 9, recompute, 1.0).unwrap();
            let at = format!("{}, {recompute:?}", method.name());
            assert!((l - l0).abs() <= 1e-6, "{at}: loss {l} vs {l0}");
            assert_gradients_close(&at, &params.vars, &g, &g0, false);
        }
    }
}

/// Every variable's gradient in `got` within 1e-5 of the largest of its `reference` gradient
/// (and that one non-zero, with `nonzero`: a zero reference would make the check empty).
fn assert_gradients_close(
    at: &str,
    vars: &[(String, candle_core::Var)],
    got: &candle_core::backprop::GradStore,
    reference: &candle_core::backprop::GradStore,
    nonzero: bool,
) {
    for (name, var) in vars {
        let g = got.get(var.as_tensor()).unwrap_or_else(|| panic!("{at}: {name} got no gradient"));
        let r = reference.get(var.as_tensor()).unwrap();
        let scale = r.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        let d = (g - r).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(!nonzero || scale > 0.0, "{at}: {name}'s gradient is zero");
        let tolerance = 1e-5 * if nonzero { scale } else { scale.max(1e-6) };
        assert!(d <= tolerance, "{at}: {name} differs by {d} (largest {scale})");
    }
}

/// The memory budget decides how many blocks a run recomputes: the first ones, until the
/// others' kept values fit.
#[test]
fn a_memory_budget_decides_which_blocks_are_recomputed() {
    use engine::train::recompute_within;
    let dev = crate::test_device();
    let mut m = load_hf(&tiny_dir(), &dev).unwrap();
    engine::train::prepare(&mut m, &tiny_config().method, engine::device::Precision::F32, 3)
        .unwrap();
    let layers = m.layers.len();
    assert!(layers >= 2);
    assert_eq!(recompute_within(&m, 4, 64, 0), Recompute::All);
    assert_eq!(recompute_within(&m, 4, 64, u64::MAX), Recompute::Nothing);
    // Find one block's cost: the smallest budget that keeps one block.
    let one = (1..).map(|k| k * 1024).find(|&b| recompute_within(&m, 4, 64, b) != Recompute::All);
    let one = one.unwrap();
    assert_eq!(recompute_within(&m, 4, 64, one), Recompute::First(layers - 1));
    assert_eq!(recompute_within(&m, 4, 64, one * layers as u64), Recompute::Nothing);
    // Longer sequences cost more (the attention's probabilities grow with the square).
    assert_eq!(recompute_within(&m, 4, 128, one), Recompute::All);
}

/// The written-out block backward — checkpointed (replayed), with every value kept, and mixed —
/// gives the gradients candle's autograd gives, tensor by tensor: for LoRA (B made non-zero so
/// that A's gradients are too, with dropout) and for full fine-tuning (every weight, bias,
/// norm and the embedding), on Llama and on Qwen2 (q/k/v biases, grouped-query attention).
#[test]
fn written_out_gradients_equal_autograd_ones() {
    let dev = crate::test_device();
    let data = tiny_examples(4, 3);
    let refs: Vec<&Example> = data.iter().collect();
    let (ids, labels, _) = engine::train::collate(&refs, &dev).unwrap();
    let lora = LoraConfig { r: 4, alpha: 8.0, dropout: 0.1, ..LoraConfig::default() };
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for method in [Method::Lora(lora), Method::Full] {
        for model in ["tiny-llama", "tiny-qwen2"] {
            let mut m = load_hf(&fixtures.join(model), &dev).unwrap();
            let precision = engine::device::Precision::F32;
            let params = engine::train::prepare(&mut m, &method, precision, 1).unwrap();
            for (name, var) in &params.vars {
                if name.contains("lora_B") {
                    let shape = var.as_tensor().shape().clone();
                    var.set(&Tensor::randn(0f32, 0.1, shape, &dev).unwrap()).unwrap();
                }
            }
            let (la, ga) = engine::train::gradients_autograd(&m, &ids, &labels, 9, 0.5).unwrap();
            assert!(m.layers.len() >= 2, "{model}: a mixed run needs two blocks");
            for recompute in [Recompute::All, Recompute::Nothing, Recompute::First(1)] {
                let (lc, gc) =
                    engine::train::gradients(&m, &ids, &labels, 9, recompute, 0.5).unwrap();
                let at = format!("{} on {model}, recomputing {recompute:?}", method.name());
                assert!((lc - la).abs() <= 1e-6, "{at}: loss {lc} vs {la}");
                assert_gradients_close(&at, &params.vars, &gc, &ga, true);
            }
        }
    }
}

/// bf16 training (the GPU default): the base and the activations in bf16, the adapters and
/// the optimizer in f32. Same losses as f32 to bf16's precision, f32 adapters that moved the
/// same way, QLoRA too; full fine-tuning refuses it.
#[test]
fn bf16_training_follows_f32_with_f32_adapters() {
    use engine::device::Precision;
    let data = tiny_examples(16, 5);
    let (tr, ev) = split(data, 0.25, 1);
    let dev = crate::test_device();
    let lora = match tiny_config().method {
        Method::Lora(l) => l,
        _ => unreachable!(),
    };
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (model, method) in [
        ("tiny-llama", Method::Lora(lora.clone())),
        ("tiny-qwen2", Method::Lora(lora.clone())),
        ("tiny-llama", Method::Qlora { lora: lora.clone(), quant: Quant::Q8_0 }),
    ] {
        let run = |precision: Precision| {
            let cfg = TrainConfig { method: method.clone(), precision, ..tiny_config() };
            let out = tempfile::tempdir().unwrap();
            let mut m = load_hf(&fixtures.join(model), &dev).unwrap();
            let s = train(&mut m, &tr, &ev, &cfg, "tiny", out.path(), None, &mut |_| true).unwrap();
            assert_eq!(m.dtype(), precision.dtype(), "{model}: the base trained in {precision:?}");
            let file = out.path().join("adapter/adapter_model.safetensors");
            (s, candle_core::safetensors::load(file, &dev).unwrap())
        };
        let (f, f_w) = run(Precision::F32);
        let (h, h_w) = run(Precision::Bf16);
        let what = format!("{model} {}", method.name());
        assert_ne!(f.losses, h.losses, "{what}: bf16 must change the arithmetic");
        for (i, (a, b)) in f.losses.iter().zip(&h.losses).enumerate() {
            // bf16 keeps 8 significant bits: ~0.4 % per value, less once averaged.
            assert!((a - b).abs() <= 0.02 * a.abs(), "{what} step {}: f32 {a} vs bf16 {b}", i + 1);
        }
        let (fa, ha) = (f.eval_loss_after.unwrap(), h.eval_loss_after.unwrap());
        assert!((fa - ha).abs() <= 0.005 * fa, "{what}: held-out loss f32 {fa} vs bf16 {ha}");
        assert_eq!(f_w.len(), h_w.len());
        for (name, a) in &f_w {
            let b = &h_w[name];
            assert_eq!(b.dtype(), candle_core::DType::F32, "{what}: {name} is saved as f32");
            // What training changed (B starts at zero; A from its seeded init) agrees.
            let norm =
                |t: &Tensor| t.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap().sqrt();
            let rel = norm(&(a - b).unwrap()) / norm(a).max(1e-12);
            // (Seen: up to 0.02 for either; a pair that did not train would be 1.)
            let bound = if name.contains("lora_B") { 0.1 } else { 0.05 };
            assert!(rel <= bound, "{what}: {name} differs by {rel} of its norm");
        }
    }
    let cfg = TrainConfig { method: Method::Full, precision: Precision::Bf16, ..tiny_config() };
    let out = tempfile::tempdir().unwrap();
    let mut m = load_hf(&tiny_dir(), &dev).unwrap();
    let err = train(&mut m, &tr, &ev, &cfg, "tiny", out.path(), None, &mut |_| true).unwrap_err();
    assert!(err.to_string().contains("full fine-tuning trains in f32"), "{err}");
}

/// A small style-transfer task the base model cannot do: robot speak.
fn robot_data() -> Vec<Vec<Message>> {
    let words = [
        "apple", "river", "mountain", "window", "garden", "music", "coffee", "bridge", "forest",
        "pencil", "rocket", "candle", "planet", "mirror", "island", "ladder", "tiger", "violin",
        "harbor", "desert", "button", "castle", "dragon", "engine", "falcon", "glacier", "hammer",
        "jungle", "kettle", "lemon", "marble", "needle", "ocean", "pepper", "quartz", "saddle",
        "tunnel", "umbrella", "valley", "wizard",
    ];
    words
        .iter()
        .map(|w| {
            vec![
                Message::new("user", &format!("Say {w} in robot.")),
                Message::new("assistant", &format!("BEEP {} BOOP.", w.to_uppercase())),
            ]
        })
        .collect()
}

fn python_peft_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import torch, transformers, peft, gguf"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var_os("VIBEFLOW_REQUIRE_SETUP").is_none(),
            "python3 with torch, transformers, peft and gguf is missing: the setup of `cargo xtask test` is broken"
        );
        eprintln!(
            "skipped the PEFT cross-check: python3 with torch, transformers, peft and gguf is not installed (`cargo xtask test` installs them)"
        );
    }
    ok
}

fn peft_logits(base: &Path, adapter: &Path, ids: &[u32]) -> Vec<f32> {
    let dir = tempfile::tempdir().unwrap();
    let (ids_path, out_path) = (dir.path().join("ids.json"), dir.path().join("out.json"));
    std::fs::write(&ids_path, serde_json::to_string(ids).unwrap()).unwrap();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/reference/peft_logits.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(base)
        .arg(adapter)
        .arg(&ids_path)
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "peft_logits.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(out_path).unwrap()).unwrap()
}

#[test]
fn lora_on_smollm2_lowers_held_out_loss_and_peft_agrees() {
    let Some(gguf) = crate::default_gguf() else { return };
    let mut b = Bundle::open(&gguf, &crate::test_device()).unwrap();
    let examples: Vec<Example> =
        robot_data().iter().map(|m| tokenize(&b, m, 128).unwrap()).collect();
    // Only the reply is learned: the template's prompt part is masked.
    let ex = &examples[0];
    let learned: Vec<u32> =
        ex.ids.iter().zip(&ex.labels).filter(|(_, l)| **l != -100).map(|(t, _)| *t).collect();
    let text = engine::tokenizer::decode(&b.tokenizer, &learned).unwrap();
    assert!(text.starts_with("BEEP APPLE BOOP."), "{text:?}");
    let (tr, ev) = split(examples, 0.2, 3);
    let cfg = TrainConfig {
        method: Method::Lora(LoraConfig { r: 8, alpha: 16.0, ..LoraConfig::default() }),
        steps: Some(30),
        batch_size: 4,
        adamw: AdamWConfig { lr: 1e-3, ..AdamWConfig::default() },
        warmup_steps: 3,
        ..TrainConfig::default()
    };
    let out = tempfile::tempdir().unwrap();
    let mut events = Vec::new();
    let s =
        train(&mut b.model, &tr, &ev, &cfg, "smollm2-135m-instruct", out.path(), None, &mut |p| {
            events.push(p.clone());
            true
        })
        .unwrap();
    let (before, after) = (s.eval_loss_before.unwrap(), s.eval_loss_after.unwrap());
    eprintln!(
        "held-out loss {before:.3} -> {after:.3}; {} trainable parameters",
        s.trainable_parameters
    );
    assert!(after < before * 0.5, "held-out loss {before} -> {after}");
    assert_eq!(events.len(), 30);
    assert!(
        events
            .iter()
            .all(|p| p.tokens_per_second > 0.0 && p.grad_norm.is_finite() && p.memory_bytes > 0)
    );
    // r·(in + out) per projection: q and o 576→576, k and v 576→192, gate/up/down 576↔1536.
    assert_eq!(
        s.trainable_parameters,
        30 * 8 * (2 * (576 + 576) + 2 * (576 + 192) + 3 * (576 + 1536))
    );

    // The fine-tuned model now speaks robot.
    let prompt = b.prompt_ids(&[Message::new("user", "Say kitchen in robot.")]).unwrap();
    let sampling =
        engine::generate::Sampling { temperature: 0.0, max_tokens: 12, ..Default::default() };
    let mut dec = engine::generate::F32Decoder::new(&b.model, &b.device);
    let reply =
        engine::generate::generate(&mut dec, &b.tokenizer, &prompt, &b.eos, &sampling, &mut |_| {
            true
        })
        .unwrap();
    assert!(reply.text.starts_with("BEEP"), "{:?}", reply.text);

    if python_peft_available() {
        let ours = b
            .model
            .forward(
                &Tensor::new(prompt.as_slice(), &b.device).unwrap().unsqueeze(0).unwrap(),
                None,
            )
            .unwrap();
        let ours: Vec<f32> = ours.get(0).unwrap().get(prompt.len() - 1).unwrap().to_vec1().unwrap();
        let theirs = peft_logits(&gguf, Path::new(&s.output), &prompt);
        let d = crate::max_diff(&ours, &theirs);
        assert!(d <= 1e-3, "max |ours - peft| = {d}");
    }
}

#[test]
fn qlora_on_smollm2_keeps_the_gguf_blocks_and_matches_lora() {
    let Some(gguf) = crate::default_gguf() else { return };
    let dev = crate::test_device();
    let mut q = Bundle::open_quantized(&gguf, &dev).unwrap();
    let mut d = Bundle::open(&gguf, &dev).unwrap();
    // Every projection stays in the file's Q4_1 blocks: 5 bits per weight instead of 32.
    let (qb, db) = (q.model.projection_bytes(), d.model.projection_bytes());
    eprintln!(
        "projection weights: {:.1} MB quantized vs {:.1} MB f32",
        qb as f64 / 1e6,
        db as f64 / 1e6
    );
    assert!(
        q.model.layers.iter().flat_map(|l| l.proj.values()).all(|p| p.weight.as_dense().is_none())
    );
    assert_eq!(qb * 32, db * 5, "Q4_1 is 20 bytes per 32 weights");
    let examples: Vec<Example> =
        robot_data().iter().map(|m| tokenize(&d, m, 128).unwrap()).collect();
    let (tr, ev) = split(examples, 0.2, 3);
    let lora = LoraConfig { r: 8, alpha: 16.0, ..LoraConfig::default() };
    let cfg = |method| TrainConfig {
        method,
        steps: Some(3),
        batch_size: 4,
        adamw: AdamWConfig { lr: 1e-3, ..AdamWConfig::default() },
        ..TrainConfig::default()
    };
    let ev = &ev[..4];
    let (o1, o2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let qcfg = cfg(Method::Qlora { lora: lora.clone(), quant: Quant::Q4_1 });
    let qs =
        train(&mut q.model, &tr, ev, &qcfg, "smollm2", o1.path(), None, &mut |_| true).unwrap();
    let ds = train(
        &mut d.model,
        &tr,
        ev,
        &cfg(Method::Lora(lora)),
        "smollm2",
        o2.path(),
        None,
        &mut |_| true,
    )
    .unwrap();
    eprintln!("qlora losses {:?}, lora losses {:?}", qs.losses, ds.losses);
    for (i, (a, b)) in qs.losses.iter().zip(&ds.losses).enumerate() {
        assert!((a - b).abs() <= 1e-5, "step {}: qlora {a} vs lora {b}", i + 1);
    }
    assert!(qs.eval_loss_after.unwrap() < qs.eval_loss_before.unwrap());
}

#[test]
fn bad_chat_jsonl_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("data.jsonl");
    std::fs::write(&p, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}]}\n{\"messages\": [}\n").unwrap();
    let err = read_chat_jsonl(&p).unwrap_err().to_string();
    assert!(err.contains("data.jsonl:2:"), "{err}");
    std::fs::write(&p, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n").unwrap();
    let err = read_chat_jsonl(&p).unwrap_err().to_string();
    assert!(err.contains("data.jsonl:1: no assistant message"), "{err}");
}
