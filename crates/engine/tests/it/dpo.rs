//! DPO against PyTorch + PEFT on the tiny models with their adapter: the reference
//! log-probabilities (the base without the adapter), DPO's loss and the gradient of every LoRA
//! tensor, within 1e-4 (relative). Fixtures: `scripts/reference/dpo_tiny.py`. Then DPO training
//! on the tiny model: the loss falls, the margin grows, a stopped run resumes exactly, and the
//! reference stays the base whatever the adapter holds.

use engine::adapter::load_peft;
use engine::dpo::{self, Pair, PairLogprobs};
use engine::lora::LoraConfig;
use engine::optim::AdamWConfig;
use engine::train::{Example, Method, TrainConfig};
use engine::weights::load_hf;

use crate::logprob::{Fixture, TOL, close, fixture_dir};

/// The fixture's two preference pairs.
fn fixture_pairs(fx: &Fixture) -> Vec<Pair> {
    let (c, r) = (fx.examples("chosen"), fx.examples("rejected"));
    c.into_iter().zip(r).map(|(chosen, rejected)| Pair { chosen, rejected }).collect()
}

fn dpo_parity(arch: &str) {
    let fx = Fixture::open(arch);
    let dev = crate::test_device();
    let mut model = load_hf(&fixture_dir(arch), &dev).unwrap();
    let (_, params) = load_peft(&mut model, &fixture_dir(arch).join("adapter"), &dev).unwrap();

    // The reference: the base without the adapter, though the adapter is on the model (with
    // B ≠ 0, so it would change every number).
    let pairs = fixture_pairs(&fx);
    let reference = dpo::reference_logprobs(&model, &pairs, 2).unwrap();
    for (i, r) in reference.iter().enumerate() {
        close(&format!("{arch} reference chosen {i}"), r.chosen, fx.floats("reference_chosen")[i]);
        close(
            &format!("{arch} reference rejected {i}"),
            r.rejected,
            fx.floats("reference_rejected")[i],
        );
    }
    let policy = dpo::pair_logprobs(&model, &pairs, 2).unwrap();
    assert!((policy[0].chosen - reference[0].chosen).abs() > 1e-3, "the adapter matters here");

    // DPO's loss and the gradient of every LoRA tensor, with and without checkpointing.
    let beta = fx.floats("beta")[0];
    let refs: Vec<&Pair> = pairs.iter().collect();
    for checkpointing in [true, false] {
        let recompute = engine::train::Recompute::from_checkpointing(checkpointing);
        let (loss, grads, _) =
            dpo::gradients(&model, &refs, &reference, beta, 5, recompute, 1.0).unwrap();
        close(&format!("{arch} DPO loss"), loss.loss, fx.floats("loss")[0]);
        let mut worst = 0f64;
        for (name, var) in &params.vars {
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{name}: no gradient"));
            let theirs = fx.get(&format!("grad.{name}")).to_device(g.device()).unwrap();
            let scale = theirs.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            let d = (g - &theirs).unwrap().abs().unwrap().max_all().unwrap();
            let d = d.to_scalar::<f32>().unwrap();
            assert!(scale > 0.0, "{arch}: {name}'s reference gradient is zero");
            let rel = f64::from(d / scale);
            worst = worst.max(rel);
            assert!(rel <= TOL, "{arch} DPO grad {name}: max diff {d:e}, largest {scale:e}");
        }
        eprintln!(
            "{arch} (checkpointing {checkpointing}): worst gradient difference {worst:e} of the largest"
        );
    }
}

#[test]
fn dpo_loss_and_lora_gradients_match_pytorch_on_tiny_llama() {
    dpo_parity("llama");
}

#[test]
fn dpo_loss_and_lora_gradients_match_pytorch_on_tiny_qwen2() {
    dpo_parity("qwen2");
}

/// Pairs over the tiny vocabulary: a shared prompt, a chosen completion that repeats one token
/// pattern, a rejected one of random tokens.
fn tiny_pairs(n: usize) -> Vec<Pair> {
    let mut x = 11u64;
    let mut next = || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        3 + (x >> 33) as u32 % 90
    };
    (0..n)
        .map(|_| {
            let prompt: Vec<u32> = (0..5).map(|_| next()).collect();
            let chosen: Vec<u32> = [7, 8, 9, 7, 8, 9].to_vec();
            let rejected: Vec<u32> = (0..6).map(|_| next()).collect();
            let side = |c: &[u32]| {
                let ids: Vec<u32> = prompt.iter().chain(c).copied().collect();
                let labels = (0..ids.len())
                    .map(|i| if i >= prompt.len() { ids[i] as i64 } else { -100 })
                    .collect();
                Example { ids, labels }
            };
            Pair { chosen: side(&chosen), rejected: side(&rejected) }
        })
        .collect()
}

#[test]
fn dpo_training_lowers_the_loss_and_widens_the_margin_and_keeps_the_base_as_reference() {
    let dev = crate::test_device();
    let pairs = tiny_pairs(8);
    let (train, eval) = engine::train::split(pairs, 0.25, 1);
    let cfg = TrainConfig {
        method: Method::Dpo {
            lora: LoraConfig { r: 4, alpha: 8.0, dropout: 0.1, ..LoraConfig::default() },
            beta: 0.1,
        },
        steps: Some(8),
        batch_size: 2,
        grad_accum: 1,
        adamw: AdamWConfig { lr: 2e-2, ..AdamWConfig::default() },
        checkpoint_every: 4,
        ..TrainConfig::default()
    };
    let out = tempfile::tempdir().unwrap();
    let mut m = load_hf(&fixture_dir("llama"), &dev).unwrap();
    let base = dpo::pair_logprobs(&m, &eval, 4).unwrap();
    let mut seen = Vec::new();
    let summary = dpo::train(&mut m, &train, &eval, &cfg, "tiny", out.path(), None, &mut |p| {
        seen.push(p.preference.expect("DPO steps report rewards"));
        true
    })
    .unwrap();
    assert_eq!(summary.steps, 8);
    let (first, last) = (summary.losses[0], *summary.losses.last().unwrap());
    // At step 0 the fresh adapter (B = 0) is the base: the loss is log 2, the margin 0.
    assert!((first - 2f64.ln()).abs() < 1e-5, "first loss {first}");
    assert!(seen[0].margin.abs() < 1e-5, "first margin {}", seen[0].margin);
    assert!(last < first - 0.05, "losses {:?}", summary.losses);
    assert!(seen.last().unwrap().margin > 0.2, "margins {seen:?}");
    let (before, after) = (summary.eval_loss_before.unwrap(), summary.eval_loss_after.unwrap());
    assert!(after < before, "held-out DPO loss {before} -> {after}");

    // The trained adapter loads; the reference computed with it on is still the base.
    let adapter = out.path().join("adapter");
    assert!(adapter.join("adapter_model.safetensors").exists());
    let mut trained = load_hf(&fixture_dir("llama"), &dev).unwrap();
    load_peft(&mut trained, &adapter, &dev).unwrap();
    let reference = dpo::reference_logprobs(&trained, &eval, 4).unwrap();
    assert_eq!(reference, base, "the adapter reached the reference");
    let policy = dpo::pair_logprobs(&trained, &eval, 4).unwrap();
    let margin = |p: &[PairLogprobs]| p.iter().map(|p| p.chosen - p.rejected).sum::<f64>();
    assert!(margin(&policy) > margin(&base) + 1.0, "held-out margin did not grow");

    // Resumed from the step-4 checkpoint, the run ends where the whole one did.
    let cut = tempfile::tempdir().unwrap();
    let mut m = load_hf(&fixture_dir("llama"), &dev).unwrap();
    let stopped =
        dpo::train(&mut m, &train, &eval, &cfg, "tiny", cut.path(), None, &mut |p| p.step < 4)
            .unwrap();
    assert!(stopped.stopped);
    let mut m = load_hf(&fixture_dir("llama"), &dev).unwrap();
    let resumed =
        dpo::train(&mut m, &train, &eval, &cfg, "tiny", cut.path(), Some(cut.path()), &mut |_| {
            true
        })
        .unwrap();
    assert_eq!(resumed.losses.len(), summary.losses.len());
    for (a, b) in resumed.losses.iter().zip(&summary.losses) {
        assert!((a - b).abs() < 1e-5, "resumed {:?} vs {:?}", resumed.losses, summary.losses);
    }
}

#[test]
fn dpo_refuses_a_method_that_is_not_dpo_and_pairs_cut_before_their_completion() {
    let dev = crate::test_device();
    let mut m = load_hf(&fixture_dir("llama"), &dev).unwrap();
    let out = tempfile::tempdir().unwrap();
    let pairs = tiny_pairs(2);
    let lora = TrainConfig::default();
    let e = dpo::train(&mut m, &pairs, &[], &lora, "tiny", out.path(), None, &mut |_| true)
        .unwrap_err();
    assert!(e.to_string().contains("DPO needs the dpo method"), "{e}");
    let e = engine::train::train(
        &mut m,
        &[pairs[0].chosen.clone()],
        &[],
        &TrainConfig {
            method: Method::Dpo { lora: LoraConfig::default(), beta: 0.1 },
            ..TrainConfig::default()
        },
        "tiny",
        out.path(),
        None,
        &mut |_| true,
    )
    .unwrap_err();
    assert!(e.to_string().contains("preference pairs"), "{e}");
    let mut cut = pairs.clone();
    for p in &mut cut {
        for e in [&mut p.chosen, &mut p.rejected] {
            e.ids.truncate(4);
            e.labels.truncate(4);
        }
    }
    let cfg = TrainConfig {
        method: Method::Dpo { lora: LoraConfig::default(), beta: 0.1 },
        ..TrainConfig::default()
    };
    let e =
        dpo::train(&mut m, &cut, &[], &cfg, "tiny", out.path(), None, &mut |_| true).unwrap_err();
    assert!(e.to_string().contains("before a completion starts"), "{e}");
}
