//! Exports of a finished run: the PEFT adapter, the merged model in Hugging Face layout, or a
//! GGUF with an Ollama `Modelfile`; each with a model card (`README.md`).
//!
//! The exported files go to a folder of the user's choosing (by default the project's
//! `exports/<run>-<format>/`, which `exports/.gitignore` keeps out of git): weights are large,
//! and git holds none (`.gitignore`). What git records is a small manifest,
//! `exports/<run>-<format>.toml`: the files with their sizes and sha256, the folder, the type
//! and the source run, committed under the project's lock like every other change. The store's
//! `objects/` is not used: it holds datasets by hash, and `doctor` sweeps what no dataset
//! references.

use std::path::{Path, PathBuf};

use api::chat::ChatModel;
use api::export::{ExportFormat, ExportProgress, ExportRequest, ExportResult, GgufQuant};
use engine::export::TextSide;

use crate::{App, Error, Result};

/// What `exports/.gitignore` says: export folders stay out of git, their manifests are in.
const EXPORTS_GITIGNORE: &str = "# Exported files stay out of git; each export's manifest (<run>-<format>.toml) records them\n/*/\n";

impl App {
    /// Exports finished run `req.run` of `req.project` as `req.format`, reporting progress of
    /// the long steps; records the export in the project's history.
    pub fn export(
        &self,
        req: &ExportRequest,
        on_progress: &mut dyn FnMut(ExportProgress),
    ) -> Result<ExportResult> {
        if req.format.is_recipe() {
            return self.export_recipe(req, on_progress);
        }
        if req.run.trim().is_empty() {
            return Err(Error::InvalidInput(
                "--run is required for --format peft, merged and gguf: the run to export".into(),
            ));
        }
        let row = self.project_row(&req.project)?;
        let slug = row.slug.clone();
        let run =
            self.store.runs(&slug)?.into_iter().find(|r| r.id == req.run).ok_or_else(|| {
                Error::NotFound(format!("no run '{}' in project '{slug}'", req.run))
            })?;
        if run.method == "full" {
            return Err(Error::InvalidInput(format!(
                "run '{}' fine-tuned every weight: exporting a full fine-tune is not supported yet (LoRA, QLoRA and DPO runs are)",
                run.id
            )));
        }
        if req.quant.is_some() && req.format != ExportFormat::Gguf {
            return Err(Error::InvalidInput("--quant applies to --format gguf only".into()));
        }
        let adapter = self.run_adapter(&slug, &run.id)?;
        let quant = req.quant.unwrap_or_default();
        let label = label(&run.id, req.format, quant);
        let out = if req.out.trim().is_empty() {
            self.project_dir(&slug).join("exports").join(&label)
        } else {
            PathBuf::from(&req.out)
        };
        let created = prepare_out(&out)?;
        let base = self.resolve_model(&run.base_model)?;
        let mut tell = |stage: &str, fraction: f64| {
            on_progress(ExportProgress { stage: stage.into(), fraction })
        };
        let written = self.write_export(req.format, quant, &base, &adapter, &out, &mut tell);
        let written = match written.and_then(|files| {
            let card = self.model_card(&slug, &row.name, &run, req.format, quant, &base)?;
            let path = out.join("README.md");
            std::fs::write(&path, card).map_err(|e| Error::io(&path, e))?;
            Ok(files.into_iter().chain([path]).collect::<Vec<_>>())
        }) {
            Ok(w) => w,
            Err(e) => {
                clean_up(&out, created);
                return Err(e);
            }
        };
        let export = ManifestExport {
            run: run.id.clone(),
            format: format_name(req.format).into(),
            quant: (req.format == ExportFormat::Gguf).then(|| quant_name(quant).into()),
            out: String::new(),
            base_model: run.base_model.clone(),
            created_at: crate::now(),
        };
        self.record_export_files(&slug, &label, export, &out, written, on_progress)
            .inspect_err(|_| clean_up(&out, created))
    }

    /// Checksums the files written into `out` and commits their manifest
    /// (`exports/<label>.toml`).
    pub(crate) fn record_export_files(
        &self,
        slug: &str,
        label: &str,
        mut export: ManifestExport,
        out: &Path,
        written: Vec<PathBuf>,
        on_progress: &mut dyn FnMut(ExportProgress),
    ) -> Result<ExportResult> {
        let mut files = Vec::new();
        let mut manifest_files = Vec::new();
        for (i, path) in written.iter().enumerate() {
            on_progress(ExportProgress {
                stage: "checksums".into(),
                fraction: i as f64 / written.len() as f64,
            });
            let name = path.strip_prefix(out).unwrap_or(path).to_string_lossy().into_owned();
            let bytes = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
            let sha256 = crate::sha256_file(path)?;
            files.push((name.clone(), bytes));
            manifest_files.push(ManifestFile { name, bytes, sha256 });
        }
        files.sort();
        manifest_files.sort_by(|a, b| a.name.cmp(&b.name));
        on_progress(ExportProgress { stage: "checksums".into(), fraction: 1.0 });
        let dir = std::fs::canonicalize(out).unwrap_or(out.to_path_buf());
        export.out = dir.display().to_string();
        let manifest = Manifest { export, files: manifest_files };
        let commit = self.record_export(slug, label, &manifest)?;
        Ok(ExportResult { dir: dir.display().to_string(), files, commit, notes: Vec::new() })
    }

    /// Writes the export's own files into `out`; returns their paths.
    fn write_export(
        &self,
        format: ExportFormat,
        quant: GgufQuant,
        base: &Path,
        adapter: &Path,
        out: &Path,
        tell: &mut dyn FnMut(&str, f64),
    ) -> Result<Vec<PathBuf>> {
        if format == ExportFormat::Peft {
            let mut files = Vec::new();
            for name in ["adapter_config.json", "adapter_model.safetensors"] {
                let (from, to) = (adapter.join(name), out.join(name));
                std::fs::copy(&from, &to).map_err(|e| Error::io(&from, e))?;
                files.push(to);
            }
            return Ok(files);
        }
        tell("loading the base model", 0.0);
        let device = self.device()?;
        let mut bundle = engine::bundle::Bundle::open(base, &device)?;
        let text = TextSide::open(base)?;
        tell("merging the adapter", 0.0);
        engine::adapter::load_peft(&mut bundle.model, adapter, &device)?;
        engine::adapter::merge_lora(&mut bundle.model)?;
        tell("merging the adapter", 1.0);
        if format == ExportFormat::Merged {
            return Ok(engine::export::write_hf(&bundle.model, &text, out, tell)?);
        }
        let file = gguf_file_name(base, quant);
        let path = out.join(&file);
        engine::export::write_gguf(&bundle.model, &text, base, quant, &path, tell)?;
        let modelfile = out.join("Modelfile");
        let system = text.default_system();
        let body = engine::export::modelfile(&text, &file, system.as_deref());
        std::fs::write(&modelfile, body).map_err(|e| Error::io(&modelfile, e))?;
        Ok(vec![path, modelfile])
    }

    /// Commits `exports/<label>.toml` (and `exports/.gitignore`) under the project's lock.
    fn record_export(&self, slug: &str, label: &str, manifest: &Manifest) -> Result<String> {
        let _held = self.lock_project(slug)?;
        let dir = self.project_dir(slug).join("exports");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let ignore = dir.join(".gitignore");
        std::fs::write(&ignore, EXPORTS_GITIGNORE).map_err(|e| Error::io(&ignore, e))?;
        let path = dir.join(format!("{label}.toml"));
        let text = toml::to_string_pretty(manifest)
            .map_err(|e| Error::InvalidInput(format!("cannot write {}: {e}", path.display())))?;
        crate::datasets::write_file(&path, text.as_bytes())?;
        let total: u64 = manifest.files.iter().map(|f| f.bytes).sum();
        let what = match &manifest.export.quant {
            Some(q) => format!("GGUF {q}"),
            None => manifest.export.format.clone(),
        };
        let (n, mb) = (manifest.files.len(), total as f64 / 1e6);
        let message = match manifest.export.format.as_str() {
            tool @ ("llamafactory" | "axolotl") => format!(
                "Hand {} to {} ({n} files, {mb:.1} MB)",
                match manifest.export.run.as_str() {
                    "" => "the recommended run",
                    run => run,
                },
                if tool == "axolotl" { "Axolotl" } else { "LLaMA-Factory" },
            ),
            _ => format!("Export {} as {what} ({n} files, {mb:.1} MB)", manifest.export.run),
        };
        let rel: Vec<PathBuf> = vec![
            PathBuf::from("exports/.gitignore"),
            PathBuf::from(format!("exports/{label}.toml")),
        ];
        let refs: Vec<&Path> = rel.iter().map(PathBuf::as_path).collect();
        self.commit_with_rows(slug, &refs, &message, |_| Vec::new())
    }

    /// The model card: base, dataset, method and configuration, evaluation, round trip,
    /// license, and how to use the files.
    fn model_card(
        &self,
        slug: &str,
        project: &str,
        run: &store::RunRow,
        format: ExportFormat,
        quant: GgufQuant,
        base: &Path,
    ) -> Result<String> {
        let card = crate::catalog::card(&run.base_model);
        let repo = card.as_ref().map(|c| c.hub.repo.clone());
        let license = card.as_ref().map(|c| c.license.clone()).or_else(|| gguf_license(base));
        let run_toml_path = self.project_dir(slug).join("runs").join(&run.id).join("run.toml");
        let run_toml: Option<toml::Value> =
            std::fs::read_to_string(&run_toml_path).ok().and_then(|t| toml::from_str(&t).ok());
        let field = |table: &str, key: &str| -> Option<String> {
            let v = run_toml.as_ref()?.get(table)?.get(key)?;
            Some(match v {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        };
        let mut s = String::from("---\n");
        if let Some(r) = &repo {
            s.push_str(&format!("base_model: {r}\n"));
        }
        if let Some(l) = &license {
            s.push_str(&format!("license: {}\n", license_tag(l)));
        }
        s.push_str(match format {
            // A hand-over to another trainer has no model card (see `handoff`).
            ExportFormat::Peft | ExportFormat::Llamafactory | ExportFormat::Axolotl => {
                "library_name: peft\n"
            }
            ExportFormat::Merged => "library_name: transformers\n",
            ExportFormat::Gguf => "library_name: gguf\n",
        });
        s.push_str(&format!("tags:\n- vibeflow\n- {}\n", run.method));
        s.push_str("---\n\n");
        s.push_str(&format!("# {project}: {}\n\n", run.id));
        let base_name = repo.clone().unwrap_or_else(|| run.base_model.clone());
        s.push_str(&format!(
            "Fine-tuned from **{base_name}** with VibeFlow ({}), exported as {}.\n\n",
            run.method,
            match format {
                ExportFormat::Peft | ExportFormat::Llamafactory | ExportFormat::Axolotl =>
                    "a PEFT LoRA adapter".to_string(),
                ExportFormat::Merged =>
                    "the merged model in Hugging Face layout (f32 safetensors)".to_string(),
                ExportFormat::Gguf => format!("a GGUF ({})", quant_name(quant)),
            }
        ));
        s.push_str("## Training\n\n");
        let dataset_version =
            field("dataset", "version").map(|v| format!(" v{v}")).unwrap_or_default();
        s.push_str(&format!(
            "- Dataset: `{}`{dataset_version}, sha256 `{}`",
            run.dataset, run.dataset_sha256
        ));
        if let (Some(tr), Some(te)) =
            (field("dataset", "train_rows"), field("dataset", "test_rows"))
        {
            s.push_str(&format!(" ({tr} training rows, {te} held out)"));
        }
        s.push('\n');
        s.push_str(&format!("- Method: {}, {} steps\n", run.method, run.steps));
        let loss = |l: Option<f64>| l.map_or("-".into(), |l| format!("{l:.4}"));
        let before =
            run_toml.as_ref().and_then(|t| t.get("result")?.get("eval_loss_before")?.as_float());
        s.push_str(&format!("- Held-out loss: {} → {}\n", loss(before), loss(run.eval_loss)));
        if let Some(config) = run_toml.as_ref().and_then(|t| t.get("config")) {
            let text = toml::to_string_pretty(config).unwrap_or_default();
            s.push_str(&format!(
                "\nConfiguration (`runs/{}/run.toml`):\n\n```toml\n{text}```\n",
                run.id
            ));
        }
        s.push_str("\n## Evaluation\n\n");
        let evals = self.eval_list(slug)?;
        match evals.iter().find(|e| e.candidate == ChatModel::Run(run.id.clone())) {
            Some(e) => {
                let vs = match (&e.baseline, e.baseline_score) {
                    (Some(b), Some(score)) => format!(" against {} ({score:.0}/100)", b.label()),
                    _ => String::new(),
                };
                s.push_str(&format!(
                    "{}: overall {:.0}/100 ({}){vs} on {} held-out examples (`evals/{}.json`).\n",
                    e.id,
                    e.score,
                    e.gate.label().to_lowercase(),
                    e.examples,
                    e.id
                ));
            }
            None => s.push_str("Not evaluated yet (`vibeflow eval`).\n"),
        }
        s.push_str("\n## Round trip\n\n");
        s.push_str(
            "The chat template and end tokens are the ones the model was trained with, embedded \
             in the export. VibeFlow's round-trip test sends the same chat prompts through its \
             own engine (with the adapter), the merged model in `transformers` and the GGUF in \
             llama.cpp: the prompt tokens are identical everywhere, greedy replies are identical \
             between VibeFlow and `transformers` and match in llama.cpp up to near ties of the \
             quantized weights, and every reply ends on the end token.\n",
        );
        s.push_str("\n## Use\n\n");
        s.push_str(&match format {
            ExportFormat::Peft | ExportFormat::Llamafactory | ExportFormat::Axolotl => format!(
                "```python\nfrom peft import AutoPeftModelForCausalLM\nmodel = AutoPeftModelForCausalLM.from_pretrained(\"./\")  # loads {base_name}\n```\n"
            ),
            ExportFormat::Merged => "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\ntok = AutoTokenizer.from_pretrained(\"./\")\nmodel = AutoModelForCausalLM.from_pretrained(\"./\")\nids = tok.apply_chat_template([{\"role\": \"user\", \"content\": \"Hi\"}], add_generation_prompt=True, return_tensors=\"pt\")\n```\n".to_string(),
            ExportFormat::Gguf => format!(
                "llama.cpp: `llama-cli -m {}`; Ollama: `ollama create my-model -f Modelfile`.\n",
                gguf_file_name(base, quant)
            ),
        });
        if let Some(l) = &license {
            s.push_str(&format!("\n## License\n\n{l}, the base model's license.\n"));
        }
        Ok(s)
    }
}

/// `run-1-peft`, `run-1-merged`, `run-1-gguf-q8_0`: the default folder and the manifest's name.
fn label(run: &str, format: ExportFormat, quant: GgufQuant) -> String {
    match format {
        ExportFormat::Gguf => format!("{run}-gguf-{}", quant_name(quant)),
        f => format!("{run}-{}", format_name(f)),
    }
}

pub(crate) fn format_name(f: ExportFormat) -> &'static str {
    match f {
        ExportFormat::Peft => "peft",
        ExportFormat::Merged => "merged",
        ExportFormat::Gguf => "gguf",
        ExportFormat::Llamafactory => "llamafactory",
        ExportFormat::Axolotl => "axolotl",
    }
}

fn quant_name(q: GgufQuant) -> &'static str {
    match q {
        GgufQuant::F16 => "f16",
        GgufQuant::Q8_0 => "q8_0",
        GgufQuant::Q4KM => "q4_k_m",
    }
}

/// `<base name>-<TYPE>.gguf`, e.g. `SmolLM2-135M-Instruct-Q8_0.gguf`.
fn gguf_file_name(base: &Path, quant: GgufQuant) -> String {
    let stem = base.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    // The base's own type suffix (`.Q4_1`, `-Q8_0`) goes.
    let is_type = |t: &str| {
        let t = t.to_uppercase();
        let digit_after = |p: &str| {
            t.strip_prefix(p).is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        };
        digit_after("Q")
            || digit_after("IQ")
            || ["F16", "F32", "BF16", "FP16", "FP32"].contains(&t.as_str())
    };
    let stem = match stem.rsplit_once(['.', '-']) {
        Some((head, tail)) if is_type(tail) => head.to_string(),
        _ => stem,
    };
    let stem = if stem.is_empty() { "model".to_string() } else { stem };
    format!("{stem}-{}.gguf", engine::export::quant_label(quant))
}

/// The license a GGUF base declares (`general.license`).
fn gguf_license(base: &Path) -> Option<String> {
    if base.is_dir() {
        return None;
    }
    let (content, _) = engine::gguf::open(base).ok()?;
    content.metadata.get("general.license")?.to_string().ok().cloned()
}

/// The Hugging Face card's `license:` value: SPDX ids lower-cased, custom ones as `other`.
fn license_tag(spdx: &str) -> String {
    if spdx.starts_with("LicenseRef-") { "other".into() } else { spdx.to_lowercase() }
}

/// Makes `out` an empty folder; whether it was created (else it existed, empty).
pub(crate) fn prepare_out(out: &Path) -> Result<bool> {
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::Conflict(format!(
                    "{} is not empty: choose another --out or remove it",
                    out.display()
                )));
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
            Ok(true)
        }
        Err(e) => Err(Error::io(out, e)),
    }
}

/// Removes what a failed export wrote: the folder when it made it, else its files.
pub(crate) fn clean_up(out: &Path, created: bool) {
    if created {
        let _ = std::fs::remove_dir_all(out);
    } else if let Ok(entries) = std::fs::read_dir(out) {
        for e in entries.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// `exports/<label>.toml`.
#[derive(serde::Serialize)]
struct Manifest {
    export: ManifestExport,
    files: Vec<ManifestFile>,
}

#[derive(serde::Serialize)]
pub(crate) struct ManifestExport {
    /// The run exported (empty: a hand-over of the recommended settings).
    pub run: String,
    pub format: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quant: Option<String>,
    /// The folder written (absolute).
    pub out: String,
    pub base_model: String,
    pub created_at: i64,
}

#[derive(serde::Serialize)]
struct ManifestFile {
    name: String,
    bytes: u64,
    sha256: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_names_drop_the_base_type() {
        let n = |p: &str, q| gguf_file_name(Path::new(p), q);
        assert_eq!(
            n("/m/SmolLM2-135M-Instruct.Q4_1.gguf", GgufQuant::Q8_0),
            "SmolLM2-135M-Instruct-Q8_0.gguf"
        );
        assert_eq!(
            n("/m/Llama-3.2-1B-Instruct-Q8_0.gguf", GgufQuant::Q4KM),
            "Llama-3.2-1B-Instruct-Q4_K_M.gguf"
        );
        assert_eq!(
            n("/m/qwen2.5-0.5b-instruct-fp16.gguf", GgufQuant::F16),
            "qwen2.5-0.5b-instruct-F16.gguf"
        );
        assert_eq!(label("run-2", ExportFormat::Gguf, GgufQuant::Q4KM), "run-2-gguf-q4_k_m");
        assert_eq!(label("run-2", ExportFormat::Merged, GgufQuant::Q8_0), "run-2-merged");
    }
}
