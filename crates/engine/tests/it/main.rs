//! Engine checks against reference outputs (transformers, PEFT) on real and tiny models.

mod batch;
mod count;
mod dpo;
mod greedy;
mod logprob;
mod parity;
mod quantized;
mod serve;
mod train;

use std::path::PathBuf;

/// The real default model, when setup provided it (`cargo xtask test` always does).
pub fn default_gguf() -> Option<PathBuf> {
    match std::env::var_os("VIBEFLOW_DEFAULT_GGUF") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            // Under `cargo xtask test` a missing model is a broken setup, not a skip.
            assert!(
                std::env::var_os("VIBEFLOW_REQUIRE_SETUP").is_none(),
                "VIBEFLOW_DEFAULT_GGUF is not set: the setup of `cargo xtask test` is broken"
            );
            eprintln!("skipped: VIBEFLOW_DEFAULT_GGUF is not set (`cargo xtask test` sets it)");
            None
        }
    }
}

/// Where the tests run: `$VIBEFLOW_TEST_DEVICE` (`cpu`, `cuda`, `metal`; default `cpu`), so that
/// a GPU build runs the same parity and training checks on its GPU.
pub fn test_device() -> candle_core::Device {
    let spec = std::env::var("VIBEFLOW_TEST_DEVICE").unwrap_or_else(|_| "cpu".into());
    engine::device::select(&spec).unwrap_or_else(|e| panic!("VIBEFLOW_TEST_DEVICE={spec}: {e}"))
}

/// A committed fixture, parsed.
pub fn fixture(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Index of the largest value (the greedy token).
pub fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i)
}

/// Largest absolute difference between two logit vectors.
pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max)
}
