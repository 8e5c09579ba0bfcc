//! `vibeflow export`: a finished run as a PEFT adapter, a merged Hugging Face model, or a GGUF
//! with an Ollama `Modelfile`, recorded in the project's history.

use std::io::Write;
use std::path::PathBuf;

use api::export::{ExportFormat, ExportRequest, GgufQuant};
use app::App;

use crate::print;

/// `vibeflow export`.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// Project slug
    #[arg(short, long)]
    project: String,
    /// The finished run to export. llamafactory and axolotl: the run whose settings and
    /// dataset to hand over (default: the recommended settings on the current dataset)
    #[arg(long, value_name = "ID")]
    run: Option<String>,
    /// peft: the adapter; merged: the model with the adapter folded in (Hugging Face
    /// layout); gguf: one GGUF file and an Ollama Modelfile; llamafactory, axolotl: the
    /// run's data, settings and launch commands for that trainer (one GPU, several, several
    /// nodes), brought back with `vibeflow runs import`
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// The GGUF's weight type (gguf only; default q8_0)
    #[arg(long, value_enum)]
    quant: Option<GgufQuant>,
    /// Folder to write (created; must be empty). Default: the project's
    /// exports/<run>-<format>/
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// llamafactory, axolotl: write the base model in Hugging Face layout into base/ and
    /// train on it instead of the hub's copy (always, for a base the hub does not name)
    #[arg(long)]
    base_weights: bool,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// Runs `export`.
pub fn run(app: &App, a: ExportArgs) -> anyhow::Result<()> {
    let req = ExportRequest {
        project: a.project,
        run: a.run.unwrap_or_default(),
        format: a.format,
        quant: a.quant,
        out: a.out.map(|p| p.display().to_string()).unwrap_or_default(),
        base_weights: a.base_weights,
    };
    let start = std::time::Instant::now();
    let mut last = String::new();
    let json = a.json;
    // One line per stage on stderr (stdout keeps the result, or the JSON).
    let mut on_progress = |p: api::export::ExportProgress| {
        if !json && p.stage != last {
            let _ = writeln!(std::io::stderr().lock(), "{}…", p.stage);
            last = p.stage;
        }
    };
    let r = app.export(&req, &mut on_progress)?;
    let secs = start.elapsed().as_secs_f64();
    print(a.json, &r, || {
        let total: u64 = r.files.iter().map(|(_, b)| b).sum();
        let mut s = format!(
            "Exported to {} in {secs:.1} s ({:.1} MB), recorded as commit {}",
            r.dir,
            total as f64 / 1e6,
            &r.commit[..r.commit.len().min(12)]
        );
        for (name, bytes) in &r.files {
            s.push_str(&format!("\n  {name:<36} {:>10.1} MB", *bytes as f64 / 1e6));
        }
        for n in &r.notes {
            s.push_str(&format!("\n{n}"));
        }
        if a.format.is_recipe() {
            s.push_str(&format!("\nLaunch commands: {}/README.md", r.dir));
        }
        s
    })
}
