//! Trainable parameters of a model, and LoRA adapters in PEFT's on-disk layout
//! (`adapter_config.json` + `adapter_model.safetensors` with PEFT tensor names), so `peft`,
//! vLLM and llama.cpp's converter load what we write, and we load what they write.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor, Var};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::lora::{LoraConfig, LoraPair};
use crate::models::llama::{Llama, PROJECTIONS};
use crate::ops::Weight;
use crate::{Error, Result};

/// Named trainable tensors, in a stable order (names are PEFT's for LoRA, Hugging Face's for
/// full fine-tuning).
#[derive(Debug, Clone, Default)]
pub struct Params {
    /// `(name, variable)`.
    pub vars: Vec<(String, Var)>,
}

impl Params {
    /// Number of trainable scalars.
    pub fn count(&self) -> usize {
        self.vars.iter().map(|(_, v)| v.elem_count()).sum()
    }
}

/// PEFT's name of a LoRA tensor (`which` is `lora_A` or `lora_B`).
pub fn peft_name(layer: usize, parent: &str, proj: &str, which: &str) -> String {
    format!("base_model.model.model.layers.{layer}.{parent}.{proj}.{which}.weight")
}

/// Adds freshly initialised LoRA pairs (PEFT's init, from `seed`) to the targeted projections.
pub fn add_lora(model: &mut Llama, cfg: &LoraConfig, seed: u64, dev: &Device) -> Result<Params> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut params = Params::default();
    for (i, layer) in model.layers.iter_mut().enumerate() {
        for (parent, proj) in PROJECTIONS {
            if !cfg.targets.iter().any(|t| t == proj) {
                continue;
            }
            let Some(lin) = layer.proj.get_mut(proj) else { continue };
            let (out, inp) = lin.weight.dims2()?;
            let pair = LoraPair::init(inp, out, cfg, &mut rng, dev)?;
            params.vars.push((peft_name(i, parent, proj, "lora_A"), pair.a.clone()));
            params.vars.push((peft_name(i, parent, proj, "lora_B"), pair.b.clone()));
            lin.lora = Some(pair);
        }
    }
    Ok(params)
}

/// Makes every weight trainable (full fine-tuning); names are the checkpoint's.
pub fn make_full(model: &mut Llama) -> Result<Params> {
    let mut params = Params::default();
    let tied = model.lm_head.weight.as_dense().is_some_and(|w| w.id() == model.embed.id());
    let embed = Var::from_tensor(&model.embed)?;
    model.embed = embed.as_tensor().clone();
    params.vars.push(("model.embed_tokens.weight".into(), embed.clone()));
    for (i, layer) in model.layers.iter_mut().enumerate() {
        for (parent, proj) in PROJECTIONS {
            let Some(lin) = layer.proj.get_mut(proj) else { continue };
            let dense = lin.weight.as_dense().ok_or_else(|| {
                Error::Data(
                    "full fine-tuning needs a dense base: open the model unquantized".into(),
                )
            })?;
            let w = Var::from_tensor(dense)?;
            lin.weight = Weight::Dense(w.as_tensor().clone());
            params.vars.push((format!("model.layers.{i}.{parent}.{proj}.weight"), w.clone()));
            lin.full = Some(w);
            if let Some(b) = &lin.bias {
                let b = Var::from_tensor(b)?;
                lin.bias = Some(b.as_tensor().clone());
                params.vars.push((format!("model.layers.{i}.{parent}.{proj}.bias"), b));
            }
        }
        for (name, t) in [
            ("input_layernorm", &mut layer.attn_norm),
            ("post_attention_layernorm", &mut layer.mlp_norm),
        ] {
            let v = Var::from_tensor(t)?;
            *t = v.as_tensor().clone();
            params.vars.push((format!("model.layers.{i}.{name}.weight"), v));
        }
    }
    let norm = Var::from_tensor(&model.norm)?;
    model.norm = norm.as_tensor().clone();
    params.vars.push(("model.norm.weight".into(), norm));
    if tied {
        model.lm_head.weight = Weight::Dense(embed.as_tensor().clone());
        model.lm_head.full = Some(embed);
    } else {
        let w = Var::from_tensor(&model.lm_head.weight.dense()?)?;
        model.lm_head.weight = Weight::Dense(w.as_tensor().clone());
        params.vars.push(("lm_head.weight".into(), w.clone()));
        model.lm_head.full = Some(w);
    }
    Ok(params)
}

/// `adapter_config.json`, the fields we read and write (PEFT ignores none of them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterConfig {
    /// Always `LORA`.
    pub peft_type: String,
    /// Always `CAUSAL_LM`.
    #[serde(default)]
    pub task_type: Option<String>,
    /// Rank.
    pub r: usize,
    /// Scaling numerator.
    pub lora_alpha: f64,
    /// Dropout used in training.
    #[serde(default)]
    pub lora_dropout: f32,
    /// Targeted module names.
    pub target_modules: Vec<String>,
    /// Always `none`.
    #[serde(default)]
    pub bias: Option<String>,
    /// Always false for these models.
    #[serde(default)]
    pub fan_in_fan_out: bool,
    /// Scale by `alpha/√r` instead of `alpha/r`.
    #[serde(default)]
    pub use_rslora: bool,
    /// The base model the adapter was trained on.
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    /// Whether the adapter is for inference.
    #[serde(default)]
    pub inference_mode: bool,
}

/// Writes the model's LoRA pairs as a PEFT adapter in `dir` (created if needed).
pub fn save_peft(model: &Llama, cfg: &LoraConfig, base: &str, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (i, layer) in model.layers.iter().enumerate() {
        for (parent, proj) in PROJECTIONS {
            if let Some(l) = layer.proj.get(proj).and_then(|l| l.lora.as_ref()) {
                tensors.insert(peft_name(i, parent, proj, "lora_A"), l.a.as_tensor().clone());
                tensors.insert(peft_name(i, parent, proj, "lora_B"), l.b.as_tensor().clone());
            }
        }
    }
    let ac = AdapterConfig {
        peft_type: "LORA".into(),
        task_type: Some("CAUSAL_LM".into()),
        r: cfg.r,
        lora_alpha: cfg.alpha,
        lora_dropout: cfg.dropout,
        target_modules: cfg.targets.clone(),
        bias: Some("none".into()),
        fan_in_fan_out: false,
        use_rslora: false,
        base_model_name_or_path: Some(base.into()),
        inference_mode: true,
    };
    let json = serde_json::to_string_pretty(&ac).map_err(|e| Error::bad(dir, e))?;
    write_atomic(&dir.join("adapter_config.json"), json.as_bytes())?;
    let tmp = dir.join(".adapter_model.safetensors.partial");
    candle_core::safetensors::save(&tensors, &tmp)?;
    let dest = dir.join("adapter_model.safetensors");
    std::fs::rename(&tmp, &dest).map_err(|e| Error::io(&dest, e))
}

/// A PEFT adapter as read from its folder.
#[derive(Debug)]
pub struct PeftAdapter {
    /// Its configuration.
    pub config: LoraConfig,
    /// The factor on `B·A`: `alpha/r`, or `alpha/√r` with rsLoRA.
    pub scale: f64,
    tensors: HashMap<String, Tensor>,
    path: std::path::PathBuf,
}

impl PeftAdapter {
    /// Reads `adapter_config.json` and `adapter_model.safetensors` from `dir`.
    pub fn read(dir: &Path, dev: &Device) -> Result<PeftAdapter> {
        let cfg_path = dir.join("adapter_config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        let ac: AdapterConfig =
            serde_json::from_str(&text).map_err(|e| Error::bad(&cfg_path, e))?;
        if ac.peft_type != "LORA" {
            return Err(Error::bad(
                &cfg_path,
                format!("peft_type {} is not supported (LORA is)", ac.peft_type),
            ));
        }
        let path = dir.join("adapter_model.safetensors");
        let tensors =
            candle_core::safetensors::load(&path, dev).map_err(|e| Error::bad(&path, e))?;
        let scale = if ac.use_rslora {
            ac.lora_alpha / (ac.r as f64).sqrt()
        } else {
            ac.lora_alpha / ac.r as f64
        };
        let config = LoraConfig {
            r: ac.r,
            alpha: ac.lora_alpha,
            dropout: ac.lora_dropout,
            targets: ac.target_modules.clone(),
        };
        Ok(PeftAdapter { config, scale, tensors, path })
    }

    /// Takes the f32 `(A, B)` of one projection (`A`: rank × in, `B`: out × rank), if the
    /// adapter has it.
    pub fn take(
        &mut self,
        layer: usize,
        parent: &str,
        proj: &str,
    ) -> Result<Option<(Tensor, Tensor)>> {
        let (an, bn) =
            (peft_name(layer, parent, proj, "lora_A"), peft_name(layer, parent, proj, "lora_B"));
        let (Some(a), Some(b)) = (self.tensors.remove(&an), self.tensors.remove(&bn)) else {
            return Ok(None);
        };
        Ok(Some((a.to_dtype(candle_core::DType::F32)?, b.to_dtype(candle_core::DType::F32)?)))
    }

    /// The error for an adapter none of whose tensors fit the model.
    pub fn matches_nothing(&self) -> Error {
        Error::bad(&self.path, "no LoRA tensor matches this model's layers")
    }
}

/// Loads a PEFT adapter from `dir` onto the model (unmerged); returns its configuration and
/// trainable parameters.
pub fn load_peft(model: &mut Llama, dir: &Path, dev: &Device) -> Result<(LoraConfig, Params)> {
    let mut adapter = PeftAdapter::read(dir, dev)?;
    let mut params = Params::default();
    for (i, layer) in model.layers.iter_mut().enumerate() {
        for (parent, proj) in PROJECTIONS {
            let Some(lin) = layer.proj.get_mut(proj) else { continue };
            let Some((a, b)) = adapter.take(i, parent, proj)? else { continue };
            let (a, b) = (Var::from_tensor(&a)?, Var::from_tensor(&b)?);
            params.vars.push((peft_name(i, parent, proj, "lora_A"), a.clone()));
            params.vars.push((peft_name(i, parent, proj, "lora_B"), b.clone()));
            let (scale, dropout) = (adapter.scale, adapter.config.dropout);
            lin.lora = Some(LoraPair { a, b, scale, dropout });
        }
    }
    if params.vars.is_empty() {
        return Err(adapter.matches_nothing());
    }
    Ok((adapter.config, params))
}

/// Folds every LoRA pair into its projection (`W + (alpha/r)·B·A`) and removes the pair: the
/// model then runs at the base model's cost per token, with the adapter's outputs. A quantized
/// projection becomes dense. Returns the number of projections merged.
pub fn merge_lora(model: &mut Llama) -> Result<usize> {
    let mut merged = 0;
    for layer in &mut model.layers {
        for lin in layer.proj.values_mut() {
            let Some(pair) = lin.lora.take() else { continue };
            let delta = (pair.b.as_tensor().matmul(pair.a.as_tensor())? * pair.scale)?;
            lin.weight = Weight::Dense((lin.weight.dense()? + delta)?.detach());
            merged += 1;
        }
    }
    Ok(merged)
}

/// Writes `bytes` to a temporary file beside `path`, then renames it into place.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
