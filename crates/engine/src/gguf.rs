//! GGUF metadata: what a model file says about itself, read with candle's GGUF reader.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file;

use crate::{Error, Result};

/// What a GGUF file declares: figures shown by `vibeflow models list`.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// `general.architecture`, e.g. `llama`.
    pub architecture: String,
    /// `general.name`, when present.
    pub name: Option<String>,
    /// Number of parameters, summed over all tensors.
    pub parameters: u64,
    /// Tensor type holding the most parameters, e.g. `Q4_1`.
    pub quantization: String,
    /// Number of tensors per type name.
    pub tensor_types: Vec<(String, usize)>,
    /// `<arch>.context_length`.
    pub context_length: u64,
    /// `<arch>.block_count`.
    pub blocks: u64,
    /// `<arch>.embedding_length`.
    pub hidden_size: u64,
    /// Whether `tokenizer.chat_template` is present.
    pub chat_template: bool,
}

/// Reads the header of the GGUF file at `path` (metadata and tensor table) and checks that the
/// file holds every tensor's data (a truncated download fails here, not at first use).
pub fn inspect(path: &Path) -> Result<Summary> {
    let (content, file) = open(path)?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    check_tensor_data(&content, len).map_err(|reason| Error::bad(path, reason))?;
    summarize(&content).map_err(|reason| Error::bad(path, reason))
}

/// Every tensor's data must lie inside a file of `len` bytes, in whole blocks of its type.
fn check_tensor_data(content: &gguf_file::Content, len: u64) -> std::result::Result<(), String> {
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    for name in names {
        let info = &content.tensor_infos[name];
        let (block, size) = (info.ggml_dtype.block_size(), info.ggml_dtype.type_size());
        let elems = info.shape.elem_count();
        if !elems.is_multiple_of(block) {
            return Err(format!(
                "tensor {name} has {elems} values, not a whole number of {block}-value blocks"
            ));
        }
        let bytes = (elems / block) as u64 * size as u64;
        let end = content
            .tensor_data_offset
            .checked_add(info.offset)
            .and_then(|start| start.checked_add(bytes));
        match end {
            Some(end) if end <= len => {}
            _ => {
                return Err(format!(
                    "the file is {len} bytes but tensor {name} ends at byte {}: it is truncated (download it again)",
                    content.tensor_data_offset.saturating_add(info.offset).saturating_add(bytes)
                ));
            }
        }
    }
    Ok(())
}

/// Reads the header of the GGUF file at `path` through a buffer (candle reads each value of
/// the metadata with its own small reads: ~200,000 system calls for a 49,152-token vocabulary
/// read straight from the file), and returns it with the file, positioned where the header
/// ends, for the tensors.
pub fn open(path: &Path) -> Result<(gguf_file::Content, std::fs::File)> {
    use std::io::{Seek, SeekFrom};
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = std::io::BufReader::new(file);
    let content = gguf_file::Content::read(&mut reader).map_err(|e| Error::bad(path, e))?;
    let end = reader.stream_position().map_err(|e| Error::io(path, e))?;
    let mut file = reader.into_inner();
    file.seek(SeekFrom::Start(end)).map_err(|e| Error::io(path, e))?;
    Ok((content, file))
}

/// GGUF metadata: key → value.
type Metadata = HashMap<String, gguf_file::Value>;

/// `general.architecture` (e.g. `llama`): the prefix of the model's own metadata keys.
pub(crate) fn architecture(md: &Metadata) -> std::result::Result<String, String> {
    (md.get("general.architecture").and_then(|v| v.to_string().ok()).cloned())
        .ok_or_else(|| "metadata key general.architecture is missing".into())
}

/// The integer `<arch>.<suffix>` (`context_length`, `block_count`…).
pub(crate) fn arch_number(
    md: &Metadata,
    arch: &str,
    suffix: &str,
) -> std::result::Result<u64, String> {
    let key = format!("{arch}.{suffix}");
    let v = md.get(&key).ok_or(format!("metadata key {key} is missing"))?;
    as_u64(v).ok_or(format!("metadata key {key} is not an integer"))
}

fn summarize(content: &gguf_file::Content) -> std::result::Result<Summary, String> {
    let md = &content.metadata;
    let text = |key: &str| md.get(key).and_then(|v| v.to_string().ok()).cloned();
    let architecture = self::architecture(md)?;
    let number = |suffix: &str| arch_number(md, &architecture, suffix);

    let mut params_by_type: HashMap<String, (u64, usize)> = HashMap::new();
    let mut parameters = 0u64;
    for info in content.tensor_infos.values() {
        let n = info.shape.elem_count() as u64;
        parameters += n;
        let e = params_by_type.entry(type_name(info.ggml_dtype)).or_default();
        e.0 += n;
        e.1 += 1;
    }
    let quantization = params_by_type
        .iter()
        .max_by_key(|(name, (n, _))| (*n, std::cmp::Reverse((*name).clone())))
        .map(|(name, _)| name.clone())
        .ok_or("the file holds no tensors")?;
    let mut tensor_types: Vec<(String, usize)> =
        params_by_type.into_iter().map(|(k, (_, count))| (k, count)).collect();
    tensor_types.sort();

    Ok(Summary {
        name: text("general.name"),
        parameters,
        quantization,
        tensor_types,
        context_length: number("context_length")?,
        blocks: number("block_count")?,
        hidden_size: number("embedding_length")?,
        chat_template: md.contains_key("tokenizer.chat_template"),
        architecture,
    })
}

pub(crate) fn as_u64(v: &gguf_file::Value) -> Option<u64> {
    use gguf_file::Value::*;
    match *v {
        U8(x) => Some(x.into()),
        U16(x) => Some(x.into()),
        U32(x) => Some(x.into()),
        U64(x) => Some(x),
        I8(x) => u64::try_from(x).ok(),
        I16(x) => u64::try_from(x).ok(),
        I32(x) => u64::try_from(x).ok(),
        I64(x) => u64::try_from(x).ok(),
        _ => None,
    }
}

/// The llama.cpp spelling of a tensor type (`Q4_1`, `Q4_K`, `F32`).
fn type_name(t: candle_core::quantized::GgmlDType) -> String {
    let debug = format!("{t:?}");
    // candle spells the k-quants `Q4K`; llama.cpp and users say `Q4_K`.
    match debug.strip_suffix('K') {
        Some(head) if head.starts_with('Q') => format!("{head}_K"),
        _ => debug,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    /// Writes a tiny GGUF with candle's writer, so the reader is checked against real bytes.
    fn write_tiny(path: &Path, with_template: bool) {
        let dev = Device::Cpu;
        let emb = QTensor::quantize(
            &Tensor::zeros((64, 32), candle_core::DType::F32, &dev).unwrap(),
            GgmlDType::Q8_0,
        )
        .unwrap();
        let w = QTensor::quantize(
            &Tensor::zeros((32, 32), candle_core::DType::F32, &dev).unwrap(),
            GgmlDType::Q4_1,
        )
        .unwrap();
        let w2 = QTensor::quantize(
            &Tensor::zeros((32, 64), candle_core::DType::F32, &dev).unwrap(),
            GgmlDType::Q4_1,
        )
        .unwrap();
        let norm = QTensor::quantize(
            &Tensor::ones(32, candle_core::DType::F32, &dev).unwrap(),
            GgmlDType::F32,
        )
        .unwrap();
        use gguf_file::Value;
        let mut md = vec![
            ("general.architecture", Value::String("llama".into())),
            ("llama.context_length", Value::U32(2048)),
            ("llama.block_count", Value::U32(1)),
            ("llama.embedding_length", Value::U32(32)),
        ];
        if with_template {
            md.push(("tokenizer.chat_template", Value::String("{{ x }}".into())));
        }
        let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
        let tensors = [
            ("token_embd.weight", &emb),
            ("blk.0.attn_q.weight", &w),
            ("blk.0.ffn_up.weight", &w2),
            ("blk.0.attn_norm.weight", &norm),
        ];
        let mut f = std::fs::File::create(path).unwrap();
        gguf_file::write(&mut f, &md_refs, &tensors).unwrap();
    }

    #[test]
    fn summary_is_read_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tiny.gguf");
        write_tiny(&p, true);
        let s = inspect(&p).unwrap();
        assert_eq!(s.architecture, "llama");
        assert_eq!(s.parameters, 64 * 32 + 32 * 32 + 32 * 64 + 32);
        // Q4_1 holds 3072 parameters, Q8_0 2048: the dominant type wins.
        assert_eq!(s.quantization, "Q4_1");
        assert_eq!(s.tensor_types, vec![("F32".into(), 1), ("Q4_1".into(), 2), ("Q8_0".into(), 1)]);
        assert_eq!((s.context_length, s.blocks, s.hidden_size), (2048, 1, 32));
        assert!(s.chat_template);

        write_tiny(&p, false);
        assert!(!inspect(&p).unwrap().chat_template);
    }

    #[test]
    fn a_truncated_file_is_refused_by_its_tensor_data() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tiny.gguf");
        write_tiny(&p, true);
        let bytes = std::fs::read(&p).unwrap();
        // The header still reads; the last tensor (128 bytes of f32) lacks its end.
        std::fs::write(&p, &bytes[..bytes.len() - 16]).unwrap();
        let err = inspect(&p).unwrap_err().to_string();
        assert!(err.contains("tiny.gguf is not a readable model: the file is"), "{err}");
        assert!(err.contains("it is truncated (download it again)"), "{err}");
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.gguf");
        std::fs::write(&p, b"definitely not gguf").unwrap();
        let err = inspect(&p).unwrap_err().to_string();
        assert!(err.contains("bad.gguf is not a readable model"), "{err}");
        let err = inspect(&dir.path().join("missing.gguf")).unwrap_err().to_string();
        assert!(err.starts_with("cannot read"), "{err}");
    }

    #[test]
    fn k_quant_names_follow_llama_cpp() {
        assert_eq!(type_name(GgmlDType::Q4K), "Q4_K");
        assert_eq!(type_name(GgmlDType::Q8_0), "Q8_0");
        assert_eq!(type_name(GgmlDType::F32), "F32");
    }
}
