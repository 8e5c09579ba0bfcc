//! The quantized decoder's model (`models::qllama`) on GGUFs written here from the tiny Llama and
//! Qwen2 checkpoints, the way llama.cpp's converter writes them (Llama's query and key rows
//! permuted for RoPE on adjacent pairs, Qwen2's biases kept, Llama 3's RoPE scaling as a
//! `rope_freqs.weight` of per-pair divisors): with f32 products it must give the f32 path's
//! logits on the same file, with and without the fixtures' PEFT adapters. Runs without the real
//! model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use engine::generate::{Decoder, F32Decoder};
use engine::models::qllama::{Products, QLlama};

use crate::max_diff;

fn tiny(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// The GGUF name of a checkpoint tensor (llama.cpp's converter's names).
fn gguf_name(hf: &str) -> String {
    match hf {
        "model.embed_tokens.weight" => return "token_embd.weight".into(),
        "model.norm.weight" => return "output_norm.weight".into(),
        "lm_head.weight" => return "output.weight".into(),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.").unwrap();
    let (i, rest) = rest.split_once('.').unwrap();
    let (module, kind) = rest.rsplit_once('.').unwrap();
    let module = match module {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        other => panic!("unexpected module {other}"),
    };
    format!("blk.{i}.{module}.{kind}")
}

/// Writes the tiny checkpoint `name` as a GGUF with its matrices in `dtype`.
pub(crate) fn write_gguf(name: &str, dtype: GgmlDType, dir: &Path) -> PathBuf {
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tiny(name).join("config.json")).unwrap())
            .unwrap();
    let arch = cfg["model_type"].as_str().unwrap().to_string();
    let u = |k: &str| gguf_file::Value::U32(cfg[k].as_u64().unwrap() as u32);
    let heads = cfg["num_attention_heads"].as_u64().unwrap() as usize;
    let kv_heads = cfg["num_key_value_heads"].as_u64().unwrap() as usize;
    let metadata: Vec<(String, gguf_file::Value)> = vec![
        ("general.architecture".into(), gguf_file::Value::String(arch.clone())),
        (format!("{arch}.embedding_length"), u("hidden_size")),
        (format!("{arch}.feed_forward_length"), u("intermediate_size")),
        (format!("{arch}.block_count"), u("num_hidden_layers")),
        (format!("{arch}.attention.head_count"), u("num_attention_heads")),
        (format!("{arch}.attention.head_count_kv"), u("num_key_value_heads")),
        (format!("{arch}.context_length"), u("max_position_embeddings")),
        (
            format!("{arch}.attention.layer_norm_rms_epsilon"),
            gguf_file::Value::F32(cfg["rms_norm_eps"].as_f64().unwrap() as f32),
        ),
        (
            format!("{arch}.rope.freq_base"),
            gguf_file::Value::F32(cfg["rope_parameters"]["rope_theta"].as_f64().unwrap() as f32),
        ),
    ];
    let weights =
        candle_core::safetensors::load(tiny(name).join("model.safetensors"), &Device::Cpu).unwrap();
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    // Llama 3's scaling, as llama.cpp's converter computes it (the fixture holds its values).
    let expected =
        candle_core::safetensors::load(tiny(name).join("expected.safetensors"), &Device::Cpu)
            .unwrap();
    if let Some(divisors) = expected.get("rope_freqs") {
        tensors.push((
            "rope_freqs.weight".into(),
            QTensor::quantize(divisors, GgmlDType::F32).unwrap(),
        ));
    }
    for (hf, w) in &weights {
        let mut w = w.clone();
        if hf.ends_with(".bias") {
            // transformers starts biases at zero, which would test nothing: give them values.
            let n = w.elem_count();
            let v: Vec<f32> = (0..n).map(|i| ((i * 7 + 3) as f32).sin() * 0.5).collect();
            w = Tensor::from_vec(v, n, &Device::Cpu).unwrap();
        }
        if arch == "llama" && hf.contains("q_proj.weight") {
            w = engine::weights::permute(&w, heads).unwrap();
        } else if arch == "llama" && hf.contains("k_proj.weight") {
            w = engine::weights::permute(&w, kv_heads).unwrap();
        }
        let q = if w.rank() == 2 { dtype } else { GgmlDType::F32 };
        tensors.push((gguf_name(hf), QTensor::quantize(&w, q).unwrap()));
    }
    let path = dir.join(format!("{name}.gguf"));
    let mut f = std::fs::File::create(&path).unwrap();
    let md: Vec<(&str, &gguf_file::Value)> =
        metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut f, &md, &ts).unwrap();
    path
}

#[test]
fn tiny_llama_and_qwen2_ggufs_decode_as_the_f32_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = HashMap::new();
    for name in ["tiny-llama", "tiny-qwen2", "tiny-llama3", "tiny-qwen2-untied"] {
        // The GGUF's RoPE (rope_freqs for Llama 3) is the checkpoint's.
        let hf = engine::weights::load_hf(&tiny(name), &Device::Cpu).unwrap();
        let hf_inv = hf.cfg.rope_inv_freq().unwrap();
        for dtype in [GgmlDType::Q8_0, GgmlDType::Q4_1] {
            let path = write_gguf(name, dtype, dir.path());
            let gguf_inv = engine::weights::load_gguf(&path, &Device::Cpu)
                .unwrap()
                .cfg
                .rope_inv_freq()
                .unwrap();
            let d = max_diff(&gguf_inv, &hf_inv);
            assert!(d < 1e-7, "{name}: GGUF RoPE {gguf_inv:?}, checkpoint's {hf_inv:?}");
            for adapter in [None, Some(tiny(name).join("adapter"))] {
                let mut model = engine::weights::load_gguf(&path, &Device::Cpu).unwrap();
                let (content, mut f) = engine::gguf::open(&path).unwrap();
                let mut q = QLlama::from_gguf(&content, &mut f, &path).unwrap().unwrap();
                q.set_products(Products::F32);
                if let Some(a) = &adapter {
                    engine::adapter::load_peft(&mut model, a, &Device::Cpu).unwrap();
                    assert_eq!(q.apply_adapter(a).unwrap(), 2 * 7);
                }
                let mut reference = F32Decoder::new(&model, &Device::Cpu);
                let mut cache = q.cache();
                let mut input = vec![1u32, 17, 42, 5, 90, 33, 8];
                for step in 0..3 {
                    let ours = q.forward(&input, &mut cache).unwrap();
                    let theirs = reference.step(&input).unwrap();
                    let d = max_diff(&ours, &theirs);
                    assert!(
                        d < 1e-4,
                        "{name} {dtype:?} adapter {}: step {step}: {d}",
                        adapter.is_some()
                    );
                    input = vec![crate::argmax(&theirs) as u32];
                }
                checked.insert((name, format!("{dtype:?}"), adapter.is_some()), ());
            }
        }
    }
    assert_eq!(checked.len(), 16);
}
