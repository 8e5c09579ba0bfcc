//! Where tensors live: choosing CPU, CUDA or Metal from a user's word, and reading how much
//! accelerator memory is in use.
//!
//! The GPU backends are cargo features (`cuda`, `metal`), off by default: a CPU build answers a
//! request for them with an error that names the feature, and `auto` falls back to the CPU.

use candle_core::Device;

use crate::{Error, Result};

pub use api::train::Precision;

/// The candle type of a [`Precision`].
pub trait PrecisionExt {
    /// The candle type of the frozen weights and activations.
    fn dtype(self) -> candle_core::DType;
}

impl PrecisionExt for Precision {
    fn dtype(self) -> candle_core::DType {
        match self {
            Precision::F32 => candle_core::DType::F32,
            Precision::Bf16 => candle_core::DType::BF16,
        }
    }
}

/// The device named by `spec`: `cpu`, `cuda` (`cuda:N` for the N-th GPU), `metal`, or `auto`
/// (the first GPU this build supports and this machine has, else the CPU).
pub fn select(spec: &str) -> Result<Device> {
    let spec = spec.trim().to_ascii_lowercase();
    let (kind, ordinal) = match spec.split_once(':') {
        Some((k, n)) => {
            let n = n.parse::<usize>().map_err(|_| {
                Error::Device(format!("`{spec}`: the GPU number must be a whole number"))
            })?;
            (k, n)
        }
        None => (spec.as_str(), 0),
    };
    match kind {
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(ordinal),
        "metal" => metal(ordinal),
        "auto" => Ok(cuda(ordinal).or_else(|_| metal(ordinal)).unwrap_or(Device::Cpu)),
        _ => {
            Err(Error::Device(format!("unknown device `{spec}`: use cpu, cuda[:N], metal or auto")))
        }
    }
}

fn cuda(ordinal: usize) -> Result<Device> {
    if !cfg!(feature = "cuda") {
        return Err(Error::Device(
            "this build has no CUDA support: rebuild with `--features cuda` (needs the CUDA toolkit)"
                .into(),
        ));
    }
    Device::new_cuda(ordinal).map_err(|e| Error::Device(format!("CUDA GPU {ordinal}: {e}")))
}

fn metal(ordinal: usize) -> Result<Device> {
    if !cfg!(feature = "metal") {
        return Err(Error::Device(
            "this build has no Metal support: rebuild with `--features metal` (macOS)".into(),
        ));
    }
    Device::new_metal(ordinal).map_err(|e| Error::Device(format!("Metal GPU {ordinal}: {e}")))
}

/// A short name for messages and records: `cpu`, `cuda:0`, `metal:0`.
pub fn name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// Bytes of the GPU's memory in use (by every process: the driver's count), or `None` on the
/// CPU and on backends that do not say.
pub fn gpu_memory_used(device: &Device) -> Option<u64> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(d) = device {
        let (free, total) = d.cuda_stream().context().mem_get_info().ok()?;
        return Some((total - free) as u64);
    }
    let _ = device;
    None
}

/// The precision named by `spec` (`f32`, `bf16` or `auto`) for training on `device`. `auto` is
/// bf16 on a CUDA GPU with bf16 tensor cores (compute capability 8.0 or newer) and f32 elsewhere;
/// bf16 on the CPU is allowed (slow: every product widens to f32) and used by the tests.
pub fn precision(spec: &str, device: &Device) -> Result<Precision> {
    match spec.trim().to_ascii_lowercase().as_str() {
        "f32" | "fp32" | "float32" => Ok(Precision::F32),
        "bf16" | "bfloat16" => Ok(Precision::Bf16),
        "auto" => Ok(if cuda_capability(device).is_some_and(|(major, _)| major >= 8) {
            Precision::Bf16
        } else {
            Precision::F32
        }),
        other => Err(Error::Device(format!("unknown precision `{other}`: use f32, bf16 or auto"))),
    }
}

/// The compute capability `(major, minor)` of a CUDA device.
pub fn cuda_capability(device: &Device) -> Option<(i32, i32)> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(d) = device {
        return d.cuda_stream().context().compute_capability().ok();
    }
    let _ = device;
    None
}

/// Lets CUDA run f32 matrix products on tensor cores at TF32 precision (10-bit mantissa, f32
/// range), as PyTorch's `allow_tf32` does: several times faster on Ampere and newer GPUs, at
/// about 1e-3 relative error per product. Process-wide; off by default; no effect elsewhere.
pub fn set_tf32(on: bool) {
    candle_core::cuda::set_gemm_reduced_precision_f32(on);
}

/// Whether f32 matrix products on `device` run at TF32 precision ([`set_tf32`]).
pub fn tf32(device: &Device) -> bool {
    // Only a CUDA build asks candle: its CPU-only stand-in answers `true`.
    device.is_cuda() && candle_core::cuda::gemm_reduced_precision_f32()
}

/// Bytes of memory a CUDA GPU has in all, or `None` elsewhere (Apple GPUs share the machine's
/// memory: the caller counts that).
pub fn gpu_memory_total(device: &Device) -> Option<u64> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(d) = device {
        let (_, total) = d.cuda_stream().context().mem_get_info().ok()?;
        return Some(total as u64);
    }
    let _ = device;
    None
}

/// Bytes of memory free for a run on `device` now: the GPU's free memory on CUDA, else the
/// machine's available memory (Apple GPUs share it).
pub fn memory_available(device: &Device) -> u64 {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(d) = device {
        if let Ok((free, _)) = d.cuda_stream().context().mem_get_info() {
            return free as u64;
        }
    }
    let _ = device;
    use sysinfo::{MemoryRefreshKind, RefreshKind, System};
    System::new_with_specifics(
        RefreshKind::nothing().with_memory(MemoryRefreshKind::nothing().with_ram()),
    )
    .available_memory()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_name_devices_and_unknown_ones_are_errors() {
        assert!(select("cpu").unwrap().is_cpu());
        assert!(select(" CPU ").unwrap().is_cpu());
        let auto = select("auto").unwrap();
        if !cfg!(any(feature = "cuda", feature = "metal")) {
            assert!(auto.is_cpu(), "a CPU build runs auto on the CPU");
        }
        let err = select("tpu").unwrap_err().to_string();
        assert!(err.contains("unknown device `tpu`"), "{err}");
        let err = select("cuda:x").unwrap_err().to_string();
        assert!(err.contains("whole number"), "{err}");
        if !cfg!(feature = "cuda") {
            let err = select("cuda").unwrap_err().to_string();
            assert!(err.contains("--features cuda"), "{err}");
        }
        if !cfg!(feature = "metal") {
            let err = select("metal").unwrap_err().to_string();
            assert!(err.contains("--features metal"), "{err}");
        }
        assert_eq!(name(&Device::Cpu), "cpu");
        assert_eq!(gpu_memory_used(&Device::Cpu), None);
        assert!(memory_available(&Device::Cpu) > 0, "a machine has some memory free");
        assert!(!tf32(&Device::Cpu), "TF32 is a CUDA setting");
        assert_eq!(precision("auto", &Device::Cpu).unwrap(), Precision::F32);
        assert_eq!(precision("BF16", &Device::Cpu).unwrap(), Precision::Bf16);
        assert_eq!(precision("f32", &Device::Cpu).unwrap().dtype(), candle_core::DType::F32);
        let err = precision("fp8", &Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("unknown precision `fp8`"), "{err}");
    }
}
