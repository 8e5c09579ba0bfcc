//! Loading checkpoints into [`Llama`]: Hugging Face folders (config.json + safetensors) and GGUF
//! files (dequantized, renamed to Hugging Face names, Q/K converted to the half-split RoPE layout).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QStorage, QTensor, gguf_file};
use candle_core::{DType, Device, Tensor};

use crate::models::llama::{Config, Llama};
use crate::ops::Weight;
use crate::{Error, Result};

/// The context length (`max_position_embeddings`) of a Hugging Face folder.
pub fn context_length(dir: &Path) -> Result<usize> {
    Ok(hf_config(dir)?.max_position_embeddings)
}

fn hf_config(dir: &Path) -> Result<Config> {
    let cfg_path = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::bad(&cfg_path, e))
}

/// Loads a Hugging Face folder: `config.json` and every `*.safetensors` in it (memory-mapped).
pub fn load_hf(dir: &Path, dev: &Device) -> Result<Llama> {
    let cfg = hf_config(dir)?;
    // A RoPE scaling we do not implement is refused before any tensor is read.
    cfg.rope_inv_freq().map_err(|e| Error::bad(&dir.join("config.json"), e))?;
    let mut tensors = HashMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::bad(dir, "no .safetensors file in the folder"));
    }
    for f in &files {
        let t = candle_core::safetensors::load(f, dev).map_err(|e| Error::bad(f, e))?;
        for (k, v) in t {
            tensors.insert(k, Weight::Dense(v.to_dtype(DType::F32).map_err(|e| Error::bad(f, e))?));
        }
    }
    Llama::new(cfg, &mut tensors, dev).map_err(|e| Error::bad(dir, e))
}

/// Loads a GGUF model with every tensor dequantized to f32.
pub fn load_gguf(path: &Path, dev: &Device) -> Result<Llama> {
    let (content, mut f) = crate::gguf::open(path)?;
    llama_from_gguf(&content, &mut f, path, dev, false)
}

/// Builds the model from an already-read GGUF header and its open file: all f32, or with
/// `keep_quantized` the projection weights left in the file's quantized blocks (QLoRA's base).
pub fn llama_from_gguf(
    content: &gguf_file::Content,
    f: &mut std::fs::File,
    path: &Path,
    dev: &Device,
    keep_quantized: bool,
) -> Result<Llama> {
    let cfg = gguf_config(content, f).map_err(|e| Error::bad(path, e))?;
    let arch = cfg.model_type.clone();
    let mut tensors = HashMap::new();
    for name in content.tensor_infos.keys() {
        let Some(hf) = hf_name(name) else { continue };
        let q = content.tensor(f, name, dev).map_err(|e| Error::bad(path, e))?;
        // llama.cpp's converter permutes Q and K of "llama" models for interleaved RoPE.
        let heads = match hf.rsplit('.').nth(1) {
            Some("q_proj") if arch == "llama" => Some(cfg.num_attention_heads),
            Some("k_proj") if arch == "llama" => Some(cfg.kv_heads()),
            _ => None,
        };
        let is_projection = hf.ends_with("_proj.weight");
        let w = if keep_quantized
            && is_projection
            && !matches!(q.dtype(), GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16)
        {
            let q = match heads {
                Some(h) => unpermute_rows(&q, h),
                None => Ok(q),
            };
            Weight::Quantized(Arc::new(q.map_err(|e| Error::bad(path, e))?))
        } else {
            let mut t = q.dequantize(dev).map_err(|e| Error::bad(path, e))?;
            if let Some(h) = heads {
                t = unpermute(&t, h).map_err(|e| Error::bad(path, e))?;
            }
            Weight::Dense(t)
        };
        tensors.insert(hf, w);
    }
    Llama::new(cfg, &mut tensors, dev).map_err(|e| Error::bad(path, e))
}

/// The model configuration a GGUF file declares: its header, and the `rope_freqs.weight`
/// tensor read from `f` where there is one (Llama 3's RoPE scaling, as llama.cpp stores it). An
/// error names what is missing or not supported (a RoPE scaling other than that one).
pub fn gguf_config(
    c: &gguf_file::Content,
    f: &mut std::fs::File,
) -> std::result::Result<Config, String> {
    let md = &c.metadata;
    let arch = crate::gguf::architecture(md)?;
    if !matches!(arch.as_str(), "llama" | "qwen2" | "mistral") {
        return Err(format!(
            "architecture '{arch}' is not supported yet (llama, mistral, qwen2 are)"
        ));
    }
    let num = |k: &str| crate::gguf::arch_number(md, &arch, k);
    let float = |k: &str| -> Option<f64> {
        md.get(&format!("{arch}.{k}"))
            .and_then(|v| v.to_f32().ok().map(f64::from).or_else(|| v.to_f64().ok()))
    };
    let heads = num("attention.head_count")? as usize;
    let vocab = match md.get("tokenizer.ggml.tokens") {
        Some(gguf_file::Value::Array(a)) => a.len(),
        _ => c
            .tensor_infos
            .get("token_embd.weight")
            .map(|t| t.shape.dims()[0])
            .ok_or("vocabulary size is unknown")?,
    };
    // llama.cpp's converter writes a scaling type for linear and YaRN scaling (Llama 3's is
    // the rope_freqs tensor instead); a factor of 1 scales nothing.
    if let Some(kind) =
        md.get(&format!("{arch}.rope.scaling.type")).and_then(|v| v.to_string().ok())
    {
        let factor = float("rope.scaling.factor").unwrap_or(1.0);
        if kind != "none" && factor != 1.0 {
            return Err(format!(
                "RoPE scaling '{kind}' (factor {factor}) is not supported (none, and Llama 3's \
                 rope_freqs, are)"
            ));
        }
    }
    let rope_freqs = if c.tensor_infos.contains_key("rope_freqs.weight") {
        let values = c
            .tensor(f, "rope_freqs.weight", &Device::Cpu)
            .and_then(|q| q.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>());
        Some(values.map_err(|e| format!("rope_freqs.weight: {e}"))?)
    } else {
        None
    };
    let cfg = Config {
        vocab_size: vocab,
        hidden_size: num("embedding_length")? as usize,
        intermediate_size: num("feed_forward_length")? as usize,
        num_hidden_layers: num("block_count")? as usize,
        num_attention_heads: heads,
        num_key_value_heads: Some(
            num("attention.head_count_kv").map(|v| v as usize).unwrap_or(heads),
        ),
        head_dim: None,
        rms_norm_eps: float("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
        rope_theta: Some(float("rope.freq_base").unwrap_or(10_000.0)),
        rope_parameters: None,
        rope_scaling: None,
        rope_freqs,
        max_position_embeddings: num("context_length")? as usize,
        tie_word_embeddings: !c.tensor_infos.contains_key("output.weight"),
        attention_bias: false,
        model_type: if arch == "mistral" { "llama".into() } else { arch },
    };
    cfg.rope_inv_freq()?;
    Ok(cfg)
}

/// GGUF tensor name → Hugging Face name.
fn hf_name(gguf: &str) -> Option<String> {
    Some(match gguf {
        "token_embd.weight" => "model.embed_tokens.weight".into(),
        "output_norm.weight" => "model.norm.weight".into(),
        "output.weight" => "lm_head.weight".into(),
        _ => {
            let rest = gguf.strip_prefix("blk.")?;
            let (i, rest) = rest.split_once('.')?;
            let (module, kind) = rest.rsplit_once('.')?;
            let hf = match module {
                "attn_norm" => "input_layernorm",
                "ffn_norm" => "post_attention_layernorm",
                "attn_q" => "self_attn.q_proj",
                "attn_k" => "self_attn.k_proj",
                "attn_v" => "self_attn.v_proj",
                "attn_output" => "self_attn.o_proj",
                "ffn_gate" => "mlp.gate_proj",
                "ffn_up" => "mlp.up_proj",
                "ffn_down" => "mlp.down_proj",
                _ => return None,
            };
            format!("model.layers.{i}.{hf}.{kind}")
        }
    })
}

/// llama.cpp's `permute` of a "llama" query or key weight (`reshape(H, 2, hd/2, in)
/// .swapaxes(1, 2)`): half-split RoPE rows to the interleaved layout its GGUFs store. The
/// quantized decoder applies it to an adapter's B; `unpermute` undoes it.
pub fn permute(w: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (out, inp) = w.dims2()?;
    let hd = out / heads;
    w.reshape((heads, 2, hd / 2, inp))?.transpose(1, 2)?.contiguous()?.reshape((out, inp))
}

/// Inverse of llama.cpp's `permute`: interleaved RoPE rows back to the half-split layout.
fn unpermute(w: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (out, inp) = w.dims2()?;
    let hd = out / heads;
    w.reshape((heads, hd / 2, 2, inp))?.transpose(1, 2)?.contiguous()?.reshape((out, inp))
}

/// `unpermute` on a quantized weight: whole rows of blocks move, no value changes.
fn unpermute_rows(q: &QTensor, heads: usize) -> candle_core::Result<QTensor> {
    let (out, _) = q.shape().dims2()?;
    let dev = q.device();
    // Where each row comes from: the same permutation applied to the row numbers.
    let rows =
        Tensor::arange(0u32, out as u32, &Device::Cpu)?.to_dtype(DType::F32)?.reshape((out, 1))?;
    let from: Vec<f32> = unpermute(&rows, heads)?.flatten_all()?.to_vec1()?;
    let data = q.data()?;
    let row_bytes = data.len() / out;
    let mut moved = Vec::with_capacity(data.len());
    for r in from {
        let r = r as usize;
        moved.extend_from_slice(&data[r * row_bytes..(r + 1) * row_bytes]);
    }
    let storage = QStorage::from_data(std::borrow::Cow::Owned(moved), &dev, q.dtype())?;
    QTensor::new(storage, q.shape().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_names_map_to_hf() {
        assert_eq!(
            hf_name("blk.3.attn_q.weight").unwrap(),
            "model.layers.3.self_attn.q_proj.weight"
        );
        assert_eq!(
            hf_name("blk.0.ffn_down.weight").unwrap(),
            "model.layers.0.mlp.down_proj.weight"
        );
        assert_eq!(hf_name("blk.1.attn_k.bias").unwrap(), "model.layers.1.self_attn.k_proj.bias");
        assert_eq!(hf_name("token_embd.weight").unwrap(), "model.embed_tokens.weight");
        assert_eq!(hf_name("rope_freqs.weight"), None);
    }

    /// The config of a GGUF header for a one-block `arch` model with `metadata` added, and a
    /// tensor per `extra` entry.
    fn gguf_config_with(
        arch: &str,
        metadata: &[(&str, gguf_file::Value)],
        extra: &[(&str, &[f32])],
    ) -> std::result::Result<Config, String> {
        use gguf_file::Value;
        let key = |k: &str| format!("{arch}.{k}");
        let mut md = vec![
            ("general.architecture".to_string(), Value::String(arch.into())),
            (key("context_length"), Value::U32(64)),
            (key("block_count"), Value::U32(1)),
            (key("embedding_length"), Value::U32(32)),
            (key("feed_forward_length"), Value::U32(64)),
            (key("attention.head_count"), Value::U32(4)),
            (key("rope.freq_base"), Value::F32(100.0)),
        ];
        md.extend(metadata.iter().map(|(k, v)| (key(k), v.clone())));
        let q = |t: Tensor| QTensor::quantize(&t, GgmlDType::F32).unwrap();
        let mut tensors = vec![(
            "token_embd.weight",
            q(Tensor::zeros((96, 32), DType::F32, &Device::Cpu).unwrap()),
        )];
        for &(name, values) in extra {
            tensors.push((name, q(Tensor::new(values, &Device::Cpu).unwrap())));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        let md: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (*k, v)).collect();
        gguf_file::write(&mut std::fs::File::create(&path).unwrap(), &md, &ts).unwrap();
        let (content, mut f) = crate::gguf::open(&path).unwrap();
        gguf_config(&content, &mut f)
    }

    fn assert_close(ours: &[f32], theirs: &[f32]) {
        assert_eq!(ours.len(), theirs.len());
        for (a, b) in ours.iter().zip(theirs) {
            assert!(((a - b) / b).abs() < 1e-6, "{ours:?} vs {theirs:?}");
        }
    }

    #[test]
    fn gguf_rope_freqs_scale_the_frequencies_as_llama3_does() {
        // As llama.cpp's convert_hf_to_gguf.py writes Llama 3's scaling: one divisor per pair
        // (the tiny-llama3 fixture's `rope_freqs`: base 100, factor 32, low 1, high 4, original
        // context 32), so that a pair's frequency is the plain one divided by its divisor.
        let divisors = [1.0, 4.378_248, 32.0, 32.0];
        let cfg = gguf_config_with("llama", &[], &[("rope_freqs.weight", &divisors)]).unwrap();
        let hf: Config = serde_json::from_str(
            r#"{"vocab_size": 96, "hidden_size": 32, "intermediate_size": 64,
                "num_hidden_layers": 1, "num_attention_heads": 4, "max_position_embeddings": 64,
                "rope_parameters": {"rope_type": "llama3", "rope_theta": 100.0, "factor": 32.0,
                    "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 32}}"#,
        )
        .unwrap();
        let theirs = hf.rope_inv_freq().unwrap();
        assert_close(&cfg.rope_inv_freq().unwrap(), &theirs);
        // transformers' inv_freq for that configuration (tiny-llama3's expected `inv_freq`).
        assert_close(&theirs, &[1.0, 0.072_227_01, 0.003_125, 0.000_988_211_8]);
        // Without the tensor the frequencies are plain.
        let plain = gguf_config_with("llama", &[], &[]).unwrap();
        assert_close(&plain.rope_inv_freq().unwrap(), &[1.0, 0.316_227_76, 0.1, 0.031_622_78]);
    }

    #[test]
    fn gguf_rope_scaling_we_lack_is_refused() {
        use gguf_file::Value;
        let yarn = [
            ("rope.scaling.type", Value::String("yarn".into())),
            ("rope.scaling.factor", Value::F32(4.0)),
        ];
        assert_eq!(
            gguf_config_with("qwen2", &yarn, &[]).unwrap_err(),
            "RoPE scaling 'yarn' (factor 4) is not supported (none, and Llama 3's rope_freqs, are)"
        );
        // A scaling type with factor 1 changes nothing.
        let unscaled = [
            ("rope.scaling.type", Value::String("linear".into())),
            ("rope.scaling.factor", Value::F32(1.0)),
        ];
        let cfg = gguf_config_with("llama", &unscaled, &[]).unwrap();
        assert_close(&cfg.rope_inv_freq().unwrap(), &[1.0, 0.316_227_76, 0.1, 0.031_622_78]);
        // Divisors that do not fit the heads.
        let odd = gguf_config_with("llama", &[], &[("rope_freqs.weight", &[1.0, 2.0])]);
        assert_eq!(odd.unwrap_err(), "rope_freqs has 2 values where the heads rotate 4 pairs");
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // llama.cpp: w.reshape(H, 2, hd/2, in).swapaxes(1, 2).reshape(out, in)
        let (h, hd, inp) = (2, 4, 3);
        let w = Tensor::arange(0f32, (h * hd * inp) as f32, &Device::Cpu)
            .unwrap()
            .reshape((h * hd, inp))
            .unwrap();
        let permuted = permute(&w, h).unwrap();
        // Row 1 of head 0 is half-split row 2 (j = 1, i = 0): interleaved pairs (x_i, x_{i+hd/2}).
        assert_eq!(permuted.get(1).unwrap().to_vec1::<f32>().unwrap(), [6.0, 7.0, 8.0]);
        let back = unpermute(&permuted, h).unwrap();
        assert_eq!(back.to_vec2::<f32>().unwrap(), w.to_vec2::<f32>().unwrap());
    }

    #[test]
    fn unpermuting_quantized_rows_equals_unpermuting_values() {
        let (h, hd, inp) = (2, 4, 64);
        let w = Tensor::randn(0f32, 1., (h * hd, inp), &Device::Cpu).unwrap();
        for dtype in
            [candle_core::quantized::GgmlDType::Q4_1, candle_core::quantized::GgmlDType::Q8_0]
        {
            let q = QTensor::quantize(&w, dtype).unwrap();
            let by_rows = unpermute_rows(&q, h).unwrap().dequantize(&Device::Cpu).unwrap();
            let by_values = unpermute(&q.dequantize(&Device::Cpu).unwrap(), h).unwrap();
            assert_eq!(by_rows.to_vec2::<f32>().unwrap(), by_values.to_vec2::<f32>().unwrap());
            assert_ne!(
                by_rows.to_vec2::<f32>().unwrap(),
                q.dequantize(&Device::Cpu).unwrap().to_vec2::<f32>().unwrap()
            );
        }
    }
}
