//! `vibeflow models …`: the model store.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use api::advisor::PullProgress;
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
    /// Download a GGUF model from the Hugging Face hub and install it: a catalog id,
    /// OWNER/NAME (its Q8_0, Q4_0 or Q4_1 file) or OWNER/NAME/FILE.gguf. A file already in
    /// the Hugging Face cache installs without network; a partial download resumes
    Pull {
        /// What to pull (see `models catalog`)
        spec: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// The supported base models: id, size, license, whether gated and installed
    Catalog {
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
        ModelsCmd::Pull { spec, json } => {
            let mut shown: Option<Instant> = None;
            let mut on_progress = |p: PullProgress| {
                // At most once a second, and the last block.
                if p.bytes == p.total || shown.is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
                {
                    shown = Some(Instant::now());
                    err!("pulled {:.1} MB of {:.1} MB", p.bytes as f64 / 1e6, p.total as f64 / 1e6);
                }
            };
            let m = app.models_pull(&spec, &mut on_progress)?;
            print(json, &m, || format!("Installed {} at {}", m.id, m.path))
        }
        ModelsCmd::Catalog { json } => {
            let list = app.catalog_list()?;
            print(json, &list, || {
                let width = |f: fn(&api::advisor::CatalogModel) -> &str, min: usize| {
                    list.iter().map(|c| f(c).len()).max().unwrap_or(min).max(min)
                };
                let w = width(|c| &c.id, 2);
                let n = width(|c| &c.name, 4);
                let l = width(|c| &c.license, 7);
                let mut s = format!(
                    "{:w$}  {:n$}  {:>6}  {:l$}  {:5}  INSTALLED",
                    "ID", "NAME", "PARAMS", "LICENSE", "GATED"
                );
                for c in &list {
                    s += &format!(
                        "\n{:w$}  {:n$}  {:>5.2}B  {:l$}  {:5}  {}",
                        c.id,
                        c.name,
                        c.parameters as f64 / 1e9,
                        c.license,
                        if c.gated { "yes" } else { "no" },
                        if c.installed { "yes" } else { "no" }
                    );
                }
                s + "\nInstall one with `vibeflow models pull ID`"
            })
        }
        ModelsCmd::Rm { id } => {
            app.model_remove(&id)?;
            out!("Removed {id}");
            Ok(())
        }
    }
}
