//! `vibeflow generate`: a reply from a model, streamed.

use std::io::Write;
use std::path::PathBuf;

use app::App;

use crate::print;

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// Model: installed id (see `models list`), a .gguf file or a Hugging Face folder
    #[arg(long, default_value = app::DEFAULT_MODEL)]
    pub model: String,
    /// The user's message
    #[arg(long)]
    pub prompt: String,
    /// System message (else the template's default)
    #[arg(long)]
    pub system: Option<String>,
    /// PEFT adapter folder to apply (e.g. the adapter/ a `train` run wrote)
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Fold the adapter into the weights before generating (W + alpha/r·B·A): same outputs,
    /// the base model's speed
    #[arg(long, requires = "adapter")]
    pub merge: bool,
    /// Run the GGUF's quantized weights (Q4_1 …) directly instead of the f32 path (several
    /// times faster; an --adapter runs unmerged beside them)
    #[arg(long)]
    pub quantized: bool,
    /// Most tokens to generate
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// Sampling temperature; 0 is greedy
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f64,
    /// Nucleus sampling threshold
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    /// Keep only the k most likely tokens (0: all)
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Drop tokens below this fraction of the top token's probability
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f64,
    /// Penalty on tokens already present (1: none)
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    /// Sampler seed
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop before this string (repeatable)
    #[arg(long)]
    pub stop: Vec<String>,
    /// Print one JSON object at the end instead of streaming text
    #[arg(long)]
    pub json: bool,
}

/// Runs `generate`.
pub fn run(app: &App, g: GenerateArgs) -> anyhow::Result<()> {
    let req = app::GenerateRequest {
        model: g.model,
        system: g.system,
        prompt: g.prompt,
        adapter: g.adapter,
        merge: g.merge,
        quantized: g.quantized,
        sampling: app::Sampling {
            temperature: g.temperature,
            top_p: g.top_p,
            top_k: g.top_k,
            min_p: g.min_p,
            repetition_penalty: g.repetition_penalty,
            seed: g.seed,
            max_tokens: g.max_tokens,
            stop: g.stop,
            ..app::Sampling::default()
        },
    };
    let json = g.json;
    let mut stream = |piece: &str| {
        if !json {
            let mut out = std::io::stdout().lock();
            // Stop generating when the reader went away (`| head`).
            return write!(out, "{piece}").and_then(|_| out.flush()).is_ok();
        }
        true
    };
    let r = app.generate(&req, &mut stream)?;
    if json {
        print(true, &r, String::new)
    } else {
        out!();
        Ok(())
    }
}
