//! `vibeflow models …`: the model store.

use std::io::Write;
use std::path::PathBuf;

use app::App;
use clap::Subcommand;

use crate::print;

#[derive(Subcommand)]
pub enum ModelsCmd {
    /// List installed models with figures read from their files
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Copy a GGUF model file into the model store
    Import {
        /// Path of the .gguf file
        path: PathBuf,
        /// Refuse the file unless its sha256 is this
        #[arg(long)]
        sha256: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Remove an installed model (refused while a project is based on it)
    Rm {
        /// Model id (see `models list`)
        id: String,
    },
}

/// Runs a `models` subcommand.
pub fn run(app: &App, cmd: ModelsCmd) -> anyhow::Result<()> {
    match cmd {
        ModelsCmd::List { json } => {
            let list = app.models_list()?;
            print(json, &list, || {
                if list.is_empty() {
                    return "No models installed: run `cargo xtask setup`, or `vibeflow models import FILE.gguf`".into();
                }
                let mut s = format!(
                    "{:24}  {:8}  {:>8}  {:6}  {:>7}  TEMPLATE",
                    "ID", "ARCH", "PARAMS", "QUANT", "CONTEXT"
                );
                for m in &list {
                    s += &format!(
                        "\n{:24}  {:8}  {:>7.1}M  {:6}  {:>7}  {}",
                        m.id,
                        m.architecture,
                        m.parameters as f64 / 1e6,
                        m.quantization,
                        m.context_length,
                        if m.chat_template { "embedded" } else { "none" }
                    );
                }
                s
            })
        }
        ModelsCmd::Import { path, sha256, json } => {
            let m = app.model_import(&path, sha256.as_deref())?;
            print(json, &m, || format!("Installed {} at {}", m.id, m.path))
        }
        ModelsCmd::Rm { id } => {
            app.model_remove(&id)?;
            out!("Removed {id}");
            Ok(())
        }
    }
}
