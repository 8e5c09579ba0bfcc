//! Writing a model out for other runtimes: a Hugging Face folder (`model.safetensors`,
//! `config.json`, the tokenizer files with the chat template, `generation_config.json` with the
//! end tokens) that `transformers` loads, and a GGUF (f16, q8_0, or llama.cpp's Q4_K_M mix)
//! with the tokenizer and template embedded that llama.cpp loads, plus an Ollama `Modelfile`.
//!
//! The weights are the model as it is (call `adapter::merge_lora` first): f32 on the Hugging
//! Face side, so `transformers` computes with exactly the values our engine does.

use std::collections::HashMap;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{DType, Device, Tensor};
use serde_json::{Value as Json, json};
use tokenizers::Tokenizer;

use crate::bundle::Chat;
use crate::models::llama::{Llama, PROJECTIONS};
use crate::template::{CHATML, ChatTemplate, Message};
use crate::{Error, Result};

pub use api::export::GgufQuant;

/// The text side of a base model as an export needs it: the tokenizer, the chat template's
/// source, the special tokens, the end tokens our engine stops on, and a GGUF base's metadata
/// (copied into an exported GGUF).
pub struct TextSide {
    /// The tokenizer our engine encodes with.
    pub tokenizer: Tokenizer,
    /// The chat template's Jinja source (the model's own, else ChatML).
    pub template: String,
    /// Beginning-of-sequence token id, when the model declares one.
    pub bos: Option<u32>,
    /// The declared end-of-sequence token id.
    pub eos: Option<u32>,
    /// Padding token id, when declared.
    pub pad: Option<u32>,
    /// Unknown-token id, when declared.
    pub unk: Option<u32>,
    /// Whether the tokenizer puts BOS before every text (the template then must not).
    pub add_bos: bool,
    /// Every token id that ends a reply in our engine (the declared end token, `<|im_end|>`).
    pub ends: Vec<u32>,
    /// The context length the model declares.
    pub context: Option<usize>,
    /// A GGUF base's metadata.
    pub gguf: Option<HashMap<String, gguf_file::Value>>,
}

impl TextSide {
    /// Reads the text side of a `.gguf` file or a Hugging Face folder.
    pub fn open(path: &Path) -> Result<TextSide> {
        let Chat { tokenizer, eos: ends, context, .. } = Chat::open(path)?;
        if path.is_dir() {
            let cfg_path = path.join("tokenizer_config.json");
            let cfg: Json = match std::fs::read_to_string(&cfg_path) {
                Ok(text) => serde_json::from_str(&text).map_err(|e| Error::bad(&cfg_path, e))?,
                Err(_) => Json::Null,
            };
            let text = |k: &str| -> Option<String> {
                match &cfg[k] {
                    Json::String(s) => Some(s.clone()),
                    Json::Object(o) => o.get("content").and_then(|c| c.as_str()).map(String::from),
                    _ => None,
                }
            };
            let id = |k: &str| text(k).and_then(|t| tokenizer.token_to_id(&t));
            let template = text("chat_template")
                .or_else(|| std::fs::read_to_string(path.join("chat_template.jinja")).ok())
                .unwrap_or_else(|| CHATML.into());
            let (bos, eos, pad, unk) =
                (id("bos_token"), id("eos_token"), id("pad_token"), id("unk_token"));
            let add_bos = cfg["add_bos_token"].as_bool().unwrap_or(false);
            Ok(TextSide {
                tokenizer,
                template,
                bos,
                eos,
                pad,
                unk,
                add_bos,
                ends,
                context,
                gguf: None,
            })
        } else {
            let (content, _) = crate::gguf::open(path)?;
            let md = content.metadata;
            let id = |k: &str| md.get(k).and_then(crate::gguf::as_u64).map(|v| v as u32);
            let template = md
                .get("tokenizer.chat_template")
                .and_then(|v| v.to_string().ok())
                .cloned()
                .unwrap_or_else(|| CHATML.into());
            let add_bos = md
                .get("tokenizer.ggml.add_bos_token")
                .and_then(|v| v.to_bool().ok())
                .unwrap_or(false);
            Ok(TextSide {
                tokenizer,
                template,
                bos: id("tokenizer.ggml.bos_token_id"),
                eos: id("tokenizer.ggml.eos_token_id"),
                pad: id("tokenizer.ggml.padding_token_id"),
                unk: id("tokenizer.ggml.unknown_token_id"),
                add_bos,
                ends,
                context,
                gguf: Some(md),
            })
        }
    }

    fn token(&self, id: Option<u32>) -> Option<String> {
        id.and_then(|i| self.tokenizer.id_to_token(i))
    }

    /// The system message the template puts first when a conversation has none (SmolLM2's
    /// "You are a helpful AI assistant named SmolLM…"), for ChatML templates; `None` when it
    /// adds none or is not ChatML.
    pub fn default_system(&self) -> Option<String> {
        let bos = self.token(self.bos).unwrap_or_default();
        let eos = self.token(self.eos).unwrap_or_default();
        let t = ChatTemplate::new(&self.template, &bos, &eos).ok()?;
        let text = t.render(&[Message::new("user", "x")], true).ok()?;
        let rest = text.strip_prefix("<|im_start|>system\n")?;
        Some(rest.split_once("<|im_end|>")?.0.to_string())
    }
}

/// Progress of a long write: what (a stage name) and how far (0–1).
pub type OnProgress<'a> = &'a mut dyn FnMut(&str, f64);

/// Writes `model` as a Hugging Face folder in `dir` (which must exist): `model.safetensors`
/// (f32), `config.json`, `generation_config.json`, `tokenizer.json`, `tokenizer_config.json`,
/// `special_tokens_map.json`. Returns the files written.
pub fn write_hf(
    model: &Llama,
    text: &TextSide,
    dir: &Path,
    on_progress: OnProgress<'_>,
) -> Result<Vec<PathBuf>> {
    let cfg = &model.cfg;
    if cfg.rope_freqs.is_some() && cfg.rope_parameters.is_none() && cfg.rope_scaling.is_none() {
        return Err(Error::Data(
            "this base stores Llama 3's RoPE scaling as a GGUF rope_freqs tensor, which \
             config.json cannot express yet: export it as GGUF, or train on the Hugging Face \
             folder of the model"
                .into(),
        ));
    }
    let mut written = Vec::new();
    on_progress("writing model.safetensors", 0.0);
    let tensors = hf_tensors(model)?;
    let path = dir.join("model.safetensors");
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let views: Vec<(&str, &Tensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    safetensors::tensor::serialize_to_file(views, Some(metadata), &path)
        .map_err(|e| Error::bad(&path, e))?;
    written.push(path);
    on_progress("writing model.safetensors", 1.0);

    let json_files = [
        ("config.json", config_json(model, text)),
        ("generation_config.json", generation_config(text)),
        ("tokenizer_config.json", tokenizer_config(text)),
        ("special_tokens_map.json", special_tokens_map(text)),
    ];
    for (name, value) in json_files {
        let path = dir.join(name);
        let body = serde_json::to_string_pretty(&value).map_err(|e| Error::bad(&path, e))?;
        std::fs::write(&path, body + "\n").map_err(|e| Error::io(&path, e))?;
        written.push(path);
    }
    let path = dir.join("tokenizer.json");
    let body = text.tokenizer.to_string(true).map_err(|e| Error::Tokenizer(e.to_string()))?;
    std::fs::write(&path, body).map_err(|e| Error::io(&path, e))?;
    written.push(path);
    Ok(written)
}

/// The model's tensors under their Hugging Face names, f32, contiguous, on the CPU (a tied
/// head is not written: `tie_word_embeddings` says so).
fn hf_tensors(model: &Llama) -> Result<Vec<(String, Tensor)>> {
    let cpu = |t: &Tensor| -> Result<Tensor> {
        Ok(t.to_device(&Device::Cpu)?.to_dtype(DType::F32)?.contiguous()?)
    };
    let mut out = vec![("model.embed_tokens.weight".to_string(), cpu(&model.embed)?)];
    for (i, layer) in model.layers.iter().enumerate() {
        let p = format!("model.layers.{i}");
        out.push((format!("{p}.input_layernorm.weight"), cpu(&layer.attn_norm)?));
        out.push((format!("{p}.post_attention_layernorm.weight"), cpu(&layer.mlp_norm)?));
        for (parent, name) in PROJECTIONS {
            let Some(lin) = layer.proj.get(name) else { continue };
            if lin.lora.is_some() {
                return Err(Error::Data("merge the adapter before writing the model".into()));
            }
            out.push((format!("{p}.{parent}.{name}.weight"), cpu(&lin.weight.dense()?)?));
            if let Some(b) = &lin.bias {
                out.push((format!("{p}.{parent}.{name}.bias"), cpu(b)?));
            }
        }
    }
    out.push(("model.norm.weight".into(), cpu(&model.norm)?));
    if !tied(model) {
        out.push(("lm_head.weight".into(), cpu(&model.lm_head.weight.dense()?)?));
    }
    Ok(out)
}

/// Whether the head is the token embedding (the same tensor).
fn tied(model: &Llama) -> bool {
    model.lm_head.weight.as_dense().is_some_and(|w| w.id() == model.embed.id())
}

fn config_json(model: &Llama, text: &TextSide) -> Json {
    let c = &model.cfg;
    let qwen = c.model_type == "qwen2";
    let mut v = json!({
        "architectures": [if qwen { "Qwen2ForCausalLM" } else { "LlamaForCausalLM" }],
        "model_type": if qwen { "qwen2" } else { "llama" },
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.num_hidden_layers,
        "num_attention_heads": c.num_attention_heads,
        "num_key_value_heads": c.kv_heads(),
        "head_dim": c.head_dim(),
        "hidden_act": "silu",
        "rms_norm_eps": c.rms_norm_eps,
        "rope_theta": c.rope_base(),
        "max_position_embeddings": c.max_position_embeddings,
        "vocab_size": c.vocab_size,
        "tie_word_embeddings": tied(model),
        "torch_dtype": "float32",
        "use_cache": true,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
    });
    if qwen {
        v["use_sliding_window"] = json!(false);
        v["sliding_window"] = json!(c.max_position_embeddings);
        v["max_window_layers"] = json!(c.num_hidden_layers);
    } else {
        v["attention_bias"] = json!(c.attention_bias);
        v["mlp_bias"] = json!(false);
        v["pretraining_tp"] = json!(1);
    }
    let kind =
        |p: &crate::models::llama::RopeParameters| p.rope_type.clone().or_else(|| p.type_.clone());
    let scaling =
        [&c.rope_parameters, &c.rope_scaling].into_iter().flatten().find(|p| kind(p).is_some());
    v["rope_scaling"] = match scaling {
        Some(p) if kind(p).as_deref() == Some("llama3") => json!({
            "rope_type": "llama3",
            "factor": p.factor,
            "low_freq_factor": p.low_freq_factor,
            "high_freq_factor": p.high_freq_factor,
            "original_max_position_embeddings": p.original_max_position_embeddings,
        }),
        _ => Json::Null,
    };
    if let Some(b) = text.bos {
        v["bos_token_id"] = json!(b);
    }
    if let Some(e) = text.eos {
        v["eos_token_id"] = json!(e);
    }
    if let Some(p) = text.pad {
        v["pad_token_id"] = json!(p);
    }
    v
}

fn generation_config(text: &TextSide) -> Json {
    let mut v = json!({ "eos_token_id": text.ends });
    if let Some(b) = text.bos {
        v["bos_token_id"] = json!(b);
    }
    // transformers pads finished rows of a batch with this id; the end token when none is set.
    if let Some(p) = text.pad.or(text.eos) {
        v["pad_token_id"] = json!(p);
    }
    v
}

/// The special tokens the tokenizer knows (`<|im_start|>`, `<|im_end|>`, …), by id.
fn added_tokens(text: &TextSide) -> Vec<(u32, String, bool)> {
    let mut out: Vec<(u32, String, bool)> = text
        .tokenizer
        .get_added_tokens_decoder()
        .into_iter()
        .map(|(id, t)| (id, t.content, t.special))
        .collect();
    out.sort();
    out
}

fn tokenizer_config(text: &TextSide) -> Json {
    let mut decoder = serde_json::Map::new();
    for (id, content, special) in added_tokens(text) {
        decoder.insert(
            id.to_string(),
            json!({
                "content": content,
                "lstrip": false,
                "normalized": false,
                "rstrip": false,
                "single_word": false,
                "special": special,
            }),
        );
    }
    let mut v = json!({
        "added_tokens_decoder": decoder,
        "chat_template": text.template,
        "clean_up_tokenization_spaces": false,
        "add_bos_token": text.add_bos,
        "add_eos_token": false,
        "model_max_length": text.context.unwrap_or(2048),
        // The tokenizer.json as written (pre-tokenizer included), not a class's own pipeline.
        "tokenizer_class": "PreTrainedTokenizerFast",
    });
    for (key, id) in [
        ("bos_token", text.bos),
        ("eos_token", text.eos),
        ("pad_token", text.pad),
        ("unk_token", text.unk),
    ] {
        if let Some(t) = text.token(id) {
            v[key] = json!(t);
        }
    }
    v
}

fn special_tokens_map(text: &TextSide) -> Json {
    let mut v = json!({});
    for (key, id) in [
        ("bos_token", text.bos),
        ("eos_token", text.eos),
        ("pad_token", text.pad),
        ("unk_token", text.unk),
    ] {
        if let Some(t) = text.token(id) {
            v[key] = json!({"content": t, "lstrip": false, "normalized": false, "rstrip": false, "single_word": false});
        }
    }
    let extra: Vec<String> = added_tokens(text)
        .into_iter()
        .filter(|(id, _, special)| {
            *special && ![text.bos, text.eos, text.pad, text.unk].contains(&Some(*id))
        })
        .map(|(_, t, _)| t)
        .collect();
    if !extra.is_empty() {
        v["additional_special_tokens"] = json!(extra);
    }
    v
}

/// llama.cpp's `general.file_type` of an export (`LLAMA_FTYPE_MOSTLY_*`).
pub fn file_type(quant: GgufQuant) -> u32 {
    match quant {
        GgufQuant::F16 => 1,
        GgufQuant::Q8_0 => 7,
        GgufQuant::Q4KM => 15,
    }
}

/// The file name suffix llama.cpp's tools use for a type (`F16`, `Q8_0`, `Q4_K_M`).
pub fn quant_label(quant: GgufQuant) -> &'static str {
    match quant {
        GgufQuant::F16 => "F16",
        GgufQuant::Q8_0 => "Q8_0",
        GgufQuant::Q4KM => "Q4_K_M",
    }
}

/// The type of one GGUF tensor in an export of type `quant`, as llama.cpp's
/// `llama_tensor_get_type` picks it (without an importance matrix): 1-D tensors stay f32; in
/// Q4_K_M the head (the embedding when tied) is Q6_K, half of `attn_v` and `ffn_down` (the
/// first and last eighth of the layers and every third between, `use_more_bits`) Q6_K, the
/// rest Q4_K; a row length that is not a multiple of 256 falls back as llama.cpp does (Q4_K →
/// Q5_0, Q6_K → Q8_0; the head → Q8_0).
pub fn tensor_type(
    quant: GgufQuant,
    name: &str,
    shape: &[usize],
    layers: usize,
    has_output: bool,
) -> GgmlDType {
    if shape.len() < 2 {
        return GgmlDType::F32;
    }
    let row = shape[shape.len() - 1];
    match quant {
        GgufQuant::F16 => GgmlDType::F16,
        GgufQuant::Q8_0 => GgmlDType::Q8_0,
        GgufQuant::Q4KM => {
            let is_head = name == "output.weight" || (!has_output && name == "token_embd.weight");
            if is_head {
                return if row.is_multiple_of(256) { GgmlDType::Q6K } else { GgmlDType::Q8_0 };
            }
            let layer = name
                .strip_prefix("blk.")
                .and_then(|r| r.split('.').next())
                .and_then(|i| i.parse::<usize>().ok());
            let more_bits = |i: usize| {
                // llama.cpp's `use_more_bits`.
                i < layers / 8 || i >= 7 * layers / 8 || (i - layers / 8) % 3 == 2
            };
            let wanted = match layer {
                Some(i)
                    if (name.contains(".attn_v.") || name.contains(".ffn_down."))
                        && more_bits(i) =>
                {
                    GgmlDType::Q6K
                }
                _ => GgmlDType::Q4K,
            };
            if row.is_multiple_of(256) {
                wanted
            } else if wanted == GgmlDType::Q6K {
                GgmlDType::Q8_0
            } else {
                GgmlDType::Q5_0
            }
        }
    }
}

/// Writes `model` as one GGUF at `path`: the base GGUF's metadata (every `general.*`,
/// `<arch>.*` and `tokenizer.*` key: vocabulary, merges, token types, special ids, chat
/// template) with `general.file_type` set for `quant`, the tensors under llama.cpp's names with
/// a "llama" model's Q/K rows permuted back to its interleaved RoPE layout, in the types
/// [`tensor_type`] picks, and any base tensor the model does not hold (`rope_freqs.weight`)
/// copied as it is. A Hugging Face base is refused: its tokenizer's llama.cpp name cannot be
/// derived here.
pub fn write_gguf(
    model: &Llama,
    text: &TextSide,
    base: &Path,
    quant: GgufQuant,
    path: &Path,
    on_progress: OnProgress<'_>,
) -> Result<()> {
    let Some(base_md) = &text.gguf else {
        return Err(Error::Data(format!(
            "GGUF export needs a GGUF base model ({} is a Hugging Face folder): export \
             --format merged and convert it with llama.cpp's convert_hf_to_gguf.py",
            base.display()
        )));
    };
    let cfg = &model.cfg;
    let arch = crate::gguf::architecture(base_md).map_err(|e| Error::bad(base, e))?;
    let has_output = !tied(model);
    let mut named: Vec<(String, Tensor)> = Vec::new();
    named.push(("token_embd.weight".into(), model.embed.clone()));
    for (i, layer) in model.layers.iter().enumerate() {
        named.push((format!("blk.{i}.attn_norm.weight"), layer.attn_norm.clone()));
        for (_, name) in PROJECTIONS {
            let Some(lin) = layer.proj.get(name) else { continue };
            if lin.lora.is_some() {
                return Err(Error::Data("merge the adapter before writing the model".into()));
            }
            let gguf = gguf_module(name);
            let heads = match name {
                "q_proj" if cfg.model_type == "llama" => Some(cfg.num_attention_heads),
                "k_proj" if cfg.model_type == "llama" => Some(cfg.kv_heads()),
                _ => None,
            };
            let mut w = lin.weight.dense()?;
            let mut b = lin.bias.clone();
            if let Some(h) = heads {
                w = crate::weights::permute(&w, h)?;
                // A bias is one column of the same rows.
                if let Some(bias) = &b {
                    b = Some(crate::weights::permute(&bias.unsqueeze(1)?, h)?.squeeze(1)?);
                }
            }
            named.push((format!("blk.{i}.{gguf}.weight"), w));
            if let Some(b) = b {
                named.push((format!("blk.{i}.{gguf}.bias"), b));
            }
        }
        named.push((format!("blk.{i}.ffn_norm.weight"), layer.mlp_norm.clone()));
    }
    named.push(("output_norm.weight".into(), model.norm.clone()));
    if has_output {
        named.push(("output.weight".into(), model.lm_head.weight.dense()?));
    }

    let total = named.len() as f64;
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(named.len() + 1);
    // Base tensors the model holds no counterpart of (Llama 3's rope_freqs), as they are.
    let (content, mut file) = crate::gguf::open(base)?;
    let mut extra: Vec<&String> = content
        .tensor_infos
        .keys()
        .filter(|k| {
            !named.iter().any(|(n, _)| n == *k)
                && !k.starts_with("blk.")
                && !matches!(
                    k.as_str(),
                    "output.weight" | "token_embd.weight" | "output_norm.weight"
                )
        })
        .collect();
    extra.sort();
    for name in extra {
        let q = content.tensor(&mut file, name, &Device::Cpu).map_err(|e| Error::bad(base, e))?;
        tensors.push((name.clone(), q));
    }
    for (done, (name, t)) in named.into_iter().enumerate() {
        on_progress("quantizing", done as f64 / total);
        let t = t.to_device(&Device::Cpu)?.to_dtype(DType::F32)?.contiguous()?;
        let dtype = tensor_type(quant, &name, t.dims(), cfg.num_hidden_layers, has_output);
        let q = QTensor::quantize(&t, dtype)
            .map_err(|e| Error::Data(format!("quantizing {name} to {dtype:?}: {e}")))?;
        tensors.push((name, q));
    }
    on_progress("quantizing", 1.0);

    let mut metadata: Vec<(String, gguf_file::Value)> = base_md
        .iter()
        .filter(|(k, _)| {
            let keep = k.starts_with("general.")
                || k.starts_with("tokenizer.")
                || k.starts_with(&format!("{arch}."));
            keep && !matches!(k.as_str(), "general.file_type" | "general.quantization_version")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    metadata.push(("general.file_type".into(), gguf_file::Value::U32(file_type(quant))));
    metadata.push(("general.quantization_version".into(), gguf_file::Value::U32(2)));
    // The architecture first, then the rest by name, as llama.cpp's converter orders them.
    metadata.sort_by(|a, b| {
        (a.0 != "general.architecture", &a.0).cmp(&(b.0 != "general.architecture", &b.0))
    });

    on_progress("writing the GGUF", 0.0);
    let md: Vec<(&str, &gguf_file::Value)> =
        metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::new(f);
    gguf_file::write(&mut w, &md, &ts).map_err(|e| Error::bad(path, e))?;
    w.flush().map_err(|e| Error::io(path, e))?;
    w.get_mut().sync_all().map_err(|e| Error::io(path, e))?;
    w.stream_position().map_err(|e| Error::io(path, e))?;
    on_progress("writing the GGUF", 1.0);
    Ok(())
}

/// llama.cpp's module name of a projection.
fn gguf_module(proj: &str) -> &'static str {
    match proj {
        "q_proj" => "attn_q",
        "k_proj" => "attn_k",
        "v_proj" => "attn_v",
        "o_proj" => "attn_output",
        "gate_proj" => "ffn_gate",
        "up_proj" => "ffn_up",
        _ => "ffn_down",
    }
}

/// The chat template family, for runtimes with templates of their own (Ollama).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateFamily {
    /// `<|im_start|>role\n…<|im_end|>` (SmolLM2, Qwen2).
    ChatMl,
    /// `<|start_header_id|>role<|end_header_id|>\n\n…<|eot_id|>` (Llama 3).
    Llama3,
    /// Anything else.
    Other,
}

/// The family of a Jinja chat template.
pub fn template_family(template: &str) -> TemplateFamily {
    if template.contains("<|im_start|>") {
        TemplateFamily::ChatMl
    } else if template.contains("<|start_header_id|>") {
        TemplateFamily::Llama3
    } else {
        TemplateFamily::Other
    }
}

const OLLAMA_CHATML: &str = r#"{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if ne .Role "system" }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}
{{- if and $last (ne .Role "assistant") }}<|im_start|>assistant
{{ end }}
{{- end }}"#;

const OLLAMA_LLAMA3: &str = r#"{{- if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>
{{- end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if ne .Role "system" }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- end }}
{{- if and $last (ne .Role "assistant") }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- end }}"#;

/// An Ollama `Modelfile` for the GGUF `file` (beside it): `FROM`, the template in Ollama's Go
/// syntax for the template's family (none for another family: Ollama then uses the GGUF's own
/// and a comment says so), `PARAMETER stop` for each end token, and `SYSTEM` when there is a
/// default system message.
pub fn modelfile(text: &TextSide, file: &str, system: Option<&str>) -> String {
    let mut out = format!("# Ollama: ollama create <name> -f Modelfile\nFROM ./{file}\n\n");
    match template_family(&text.template) {
        TemplateFamily::ChatMl => {
            out.push_str(&format!("TEMPLATE \"\"\"{OLLAMA_CHATML}\"\"\"\n\n"))
        }
        TemplateFamily::Llama3 => {
            out.push_str(&format!("TEMPLATE \"\"\"{OLLAMA_LLAMA3}\"\"\"\n\n"))
        }
        TemplateFamily::Other => out.push_str(
            "# No TEMPLATE: this chat template's family has no Ollama translation here; Ollama\n\
             # reads the Jinja template embedded in the GGUF (tokenizer.chat_template).\n\n",
        ),
    }
    for id in &text.ends {
        if let Some(t) = text.tokenizer.id_to_token(*id) {
            out.push_str(&format!("PARAMETER stop {}\n", go_quote(&t)));
        }
    }
    if let Some(s) = system.filter(|s| !s.is_empty()) {
        out.push_str(&format!("\nSYSTEM \"\"\"{s}\"\"\"\n"));
    }
    out
}

fn go_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_k_m_follows_llama_cpp_recipe_and_fallbacks() {
        let t = |name: &str, shape: &[usize], has_output| {
            tensor_type(GgufQuant::Q4KM, name, shape, 32, has_output)
        };
        // Rows of 4096: no fallback. use_more_bits over 32 layers: 0–3, 28–31, and 6, 9, …
        assert_eq!(t("blk.0.attn_v.weight", &[1024, 4096], true), GgmlDType::Q6K);
        assert_eq!(t("blk.4.attn_v.weight", &[1024, 4096], true), GgmlDType::Q4K);
        assert_eq!(t("blk.6.ffn_down.weight", &[4096, 14336], true), GgmlDType::Q6K);
        assert_eq!(t("blk.7.ffn_down.weight", &[4096, 14336], true), GgmlDType::Q4K);
        assert_eq!(t("blk.31.ffn_down.weight", &[4096, 14336], true), GgmlDType::Q6K);
        assert_eq!(t("blk.5.attn_q.weight", &[4096, 4096], true), GgmlDType::Q4K);
        assert_eq!(t("output.weight", &[32000, 4096], true), GgmlDType::Q6K);
        assert_eq!(t("token_embd.weight", &[32000, 4096], true), GgmlDType::Q4K);
        // Tied: the embedding is the head.
        assert_eq!(t("token_embd.weight", &[32000, 4096], false), GgmlDType::Q6K);
        // SmolLM2-135M: rows of 576 fall back; the head to Q8_0.
        assert_eq!(t("blk.5.attn_q.weight", &[576, 576], false), GgmlDType::Q5_0);
        assert_eq!(t("blk.0.attn_v.weight", &[192, 576], false), GgmlDType::Q8_0);
        assert_eq!(t("token_embd.weight", &[49152, 576], false), GgmlDType::Q8_0);
        assert_eq!(t("blk.0.ffn_down.weight", &[576, 1536], false), GgmlDType::Q6K);
        assert_eq!(t("blk.0.attn_norm.weight", &[576], false), GgmlDType::F32);
        assert_eq!(
            tensor_type(GgufQuant::F16, "blk.0.attn_norm.weight", &[576], 30, false),
            GgmlDType::F32
        );
        assert_eq!(
            tensor_type(GgufQuant::Q8_0, "output.weight", &[10, 576], 30, true),
            GgmlDType::Q8_0
        );
    }

    #[test]
    fn template_families() {
        assert_eq!(template_family(CHATML), TemplateFamily::ChatMl);
        assert_eq!(template_family("<|start_header_id|>{{ x }}"), TemplateFamily::Llama3);
        assert_eq!(template_family("[INST] {{ x }}"), TemplateFamily::Other);
    }
}
