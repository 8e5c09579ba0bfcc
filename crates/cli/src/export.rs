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
    /// The finished run to export
    #[arg(long, value_name = "ID")]
    run: String,
    /// peft: the adapter; merged: the model with the adapter folded in (Hugging Face
    /// layout); gguf: one GGUF file and an Ollama Modelfile
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// The GGUF's weight type (gguf only; default q8_0)
    #[arg(long, value_enum)]
    quant: Option<GgufQuant>,
    /// Folder to write (created; must be empty). Default: the project's
    /// exports/<run>-<format>/
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// Runs `export`.
pub fn run(app: &App, a: ExportArgs) -> anyhow::Result<()> {
    let req = ExportRequest {
        project: a.project,
        run: a.run,
        format: a.format,
        quant: a.quant,
        out: a.out.map(|p| p.display().to_string()).unwrap_or_default(),
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
        s
    })
}
