//! A model ready to use: weights, tokenizer, chat template and end tokens, from one GGUF file or
//! one Hugging Face folder.

use std::path::Path;

use candle_core::Device;
use candle_core::quantized::gguf_file;
use tokenizers::Tokenizer;

use crate::models::llama::Llama;
use crate::template::{CHATML, ChatTemplate, Message};
use crate::{Error, Result, tokenizer, weights};

/// Everything needed to prompt, generate and train.
pub struct Bundle {
    /// The f32 model.
    pub model: Llama,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// Its chat template (the model's own, else ChatML).
    pub template: ChatTemplate,
    /// Token ids that end a reply.
    pub eos: Vec<u32>,
    /// Where the tensors live.
    pub device: Device,
}

impl Bundle {
    /// Opens a `.gguf` file or a Hugging Face folder.
    pub fn open(path: &Path, device: &Device) -> Result<Bundle> {
        if path.is_dir() { open_hf(path, device) } else { open_gguf(path, device, false) }
    }

    /// Like [`Bundle::open`], but a GGUF's quantized projection weights stay quantized (QLoRA's
    /// frozen base, never dequantized whole); a Hugging Face folder opens dense.
    pub fn open_quantized(path: &Path, device: &Device) -> Result<Bundle> {
        if path.is_dir() { open_hf(path, device) } else { open_gguf(path, device, true) }
    }

    /// Token ids of `messages` rendered with the chat template, ready for the assistant to speak.
    pub fn prompt_ids(&self, messages: &[Message]) -> Result<Vec<u32>> {
        let text = self.template.render(messages, true)?;
        tokenizer::encode(&self.tokenizer, &text)
    }
}

/// The text side of a model: tokenizer, chat template and end tokens, without its weights
/// (fast to open: for counting tokens and rendering prompts).
pub struct Chat {
    /// The tokenizer.
    pub tokenizer: Tokenizer,
    /// Its chat template (the model's own, else ChatML).
    pub template: ChatTemplate,
    /// Token ids that end a reply.
    pub eos: Vec<u32>,
    /// The context length the model declares (GGUF `<arch>.context_length`, `config.json`'s
    /// `max_position_embeddings`), when it does: read with the rest, not from a second pass.
    pub context: Option<usize>,
}

impl Chat {
    /// Opens the text side of a `.gguf` file or a Hugging Face folder.
    pub fn open(path: &Path) -> Result<Chat> {
        if path.is_dir() {
            chat_hf(path)
        } else {
            let (content, _) = crate::gguf::open(path)?;
            chat_gguf(&content, path)
        }
    }
}

fn open_gguf(path: &Path, device: &Device, keep_quantized: bool) -> Result<Bundle> {
    let (content, mut f) = crate::gguf::open(path)?;
    let model = weights::llama_from_gguf(&content, &mut f, path, device, keep_quantized)?;
    let Chat { tokenizer, template, eos, .. } = chat_gguf(&content, path)?;
    Ok(Bundle { model, tokenizer, template, eos, device: device.clone() })
}

fn chat_gguf(content: &gguf_file::Content, path: &Path) -> Result<Chat> {
    let tok = tokenizer::from_gguf(content, path)?;
    let md = &content.metadata;
    let id = |k: &str| md.get(k).and_then(crate::gguf::as_u64).map(|v| v as u32);
    let token = |i: Option<u32>| i.and_then(|i| tok.id_to_token(i)).unwrap_or_default();
    let (bos, eos) = (id("tokenizer.ggml.bos_token_id"), id("tokenizer.ggml.eos_token_id"));
    let source =
        md.get("tokenizer.chat_template").and_then(|v| v.to_string().ok()).map(String::as_str);
    let template = ChatTemplate::new(source.unwrap_or(CHATML), &token(bos), &token(eos))?;
    let eos = end_tokens(&tok, eos);
    let context = crate::gguf::architecture(md)
        .and_then(|arch| crate::gguf::arch_number(md, &arch, "context_length"))
        .ok()
        .map(|v| v as usize);
    Ok(Chat { tokenizer: tok, template, eos, context })
}

fn open_hf(dir: &Path, device: &Device) -> Result<Bundle> {
    let model = weights::load_hf(dir, device)?;
    let Chat { tokenizer, template, eos, .. } = chat_hf(dir)?;
    Ok(Bundle { model, tokenizer, template, eos, device: device.clone() })
}

fn chat_hf(dir: &Path) -> Result<Chat> {
    let tok = tokenizer::from_file(&dir.join("tokenizer.json"))?;
    let cfg_path = dir.join("tokenizer_config.json");
    let cfg: serde_json::Value = match std::fs::read_to_string(&cfg_path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| Error::bad(&cfg_path, e))?,
        Err(_) => serde_json::Value::Null,
    };
    let text = |k: &str| -> Option<String> {
        match &cfg[k] {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(o) => {
                o.get("content").and_then(|c| c.as_str()).map(String::from)
            }
            _ => None,
        }
    };
    // Newer checkpoints keep the template in chat_template.jinja.
    let source = text("chat_template")
        .or_else(|| std::fs::read_to_string(dir.join("chat_template.jinja")).ok());
    let (bos, eos) = (text("bos_token").unwrap_or_default(), text("eos_token").unwrap_or_default());
    let template = ChatTemplate::new(source.as_deref().unwrap_or(CHATML), &bos, &eos)?;
    let eos = end_tokens(&tok, tok.token_to_id(&eos));
    let context = weights::context_length(dir).ok();
    Ok(Chat { tokenizer: tok, template, eos, context })
}

/// The declared end token, plus `<|im_end|>` where the vocabulary has it: ChatML replies end
/// there even when a file names another end token.
fn end_tokens(tok: &Tokenizer, declared: Option<u32>) -> Vec<u32> {
    let mut ids: Vec<u32> = declared.into_iter().collect();
    if let Some(im_end) = tok.token_to_id("<|im_end|>").filter(|id| !ids.contains(id)) {
        ids.push(im_end);
    }
    ids
}
