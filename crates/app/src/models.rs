//! The model store: `models/<id>/<file>`, indexed in SQLite; figures come from the files.

use std::io::Read;
use std::path::{Path, PathBuf};

use api::ModelInfo;
use sha2::{Digest, Sha256};

use crate::{App, Error, Result, catalog, now};

impl App {
    /// Installed models with figures read from their files.
    pub fn models_list(&self) -> Result<Vec<ModelInfo>> {
        self.store.models()?.into_iter().map(|row| self.model_info(row)).collect()
    }

    /// Copies the GGUF file at `src` into the model store, verifying `expected_sha256` when given.
    /// A file matching a catalog card takes the card's id. Importing the same file again
    /// copies nothing.
    pub fn model_import(&self, src: &Path, expected_sha256: Option<&str>) -> Result<ModelInfo> {
        if src.extension().and_then(|e| e.to_str()).map(|e| e.eq_ignore_ascii_case("gguf"))
            != Some(true)
        {
            return Err(Error::InvalidInput(format!(
                "{} is not a .gguf file: only GGUF models can be imported for now",
                src.display()
            )));
        }
        // Validate before copying anything: the header and every tensor's data.
        engine::gguf::inspect(src)?;
        let sha = sha256_file(src)?;
        if let Some(want) = expected_sha256.filter(|w| !w.eq_ignore_ascii_case(&sha)) {
            return Err(Error::Integrity(format!(
                "{} has sha256 {sha}, expected {want}: the file is damaged or not the one intended",
                src.display()
            )));
        }
        // A catalog model: the setup's file by its hash, a pulled one by its hub file name.
        let name = src.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let card = catalog().into_iter().find(|c| {
            c.source.as_ref().is_some_and(|s| s.sha256 == sha) || c.hub.gguf_file == name
        });
        let file_name = match &card {
            Some(c) => match &c.source {
                Some(s) if s.sha256 == sha => s.file.clone(),
                _ => name.clone(),
            },
            None => src
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| {
                    Error::InvalidInput(format!("{} has no usable file name", src.display()))
                })?
                .to_string(),
        };
        let id = match &card {
            Some(c) => c.id.clone(),
            None => crate::slug::slugify(file_name.trim_end_matches(".gguf"))
                .map_err(Error::InvalidInput)?,
        };
        let dir = self.models_dir().join(&id);
        let dest = dir.join(&file_name);
        let installed = self.store.models()?.into_iter().any(|m| m.id == id && m.sha256 == sha);
        if !(installed && dest.exists()) {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            // Copied among this process's temporary files and renamed into place, so a crash
            // never leaves a partial model (the next start sweeps the copy away).
            let tmp = self.scratch_path("model.gguf")?;
            std::fs::copy(src, &tmp).map_err(|e| Error::io(&dest, e))?;
            if let Err(e) = std::fs::rename(&tmp, &dest) {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::io(&dest, e));
            }
        }
        let size = std::fs::metadata(&dest).map_err(|e| Error::io(&dest, e))?.len();
        let row = store::ModelRow {
            id: id.clone(),
            file: format!("{id}/{file_name}"),
            format: "gguf".into(),
            sha256: sha,
            size_bytes: size as i64,
            added_at: now(),
        };
        self.store.upsert_model(&row)?;
        self.model_info(row)
    }

    /// The path of an installed model's file.
    pub fn model_path(&self, id: &str) -> Result<PathBuf> {
        let row = self.store.models()?.into_iter().find(|m| m.id == id).ok_or_else(|| {
            Error::NotFound(format!("no model '{id}' is installed: see `vibeflow models list`"))
        })?;
        Ok(self.models_dir().join(&row.file))
    }

    /// Removes an installed model: its file and its row. Refused while a project trains on it
    /// (its runs' adapters need it), naming the projects.
    pub fn model_remove(&self, id: &str) -> Result<()> {
        let path = self.model_path(id)?;
        let users: Vec<String> = self
            .store
            .projects()?
            .into_iter()
            .filter(|p| p.base_model == id)
            .map(|p| p.slug)
            .collect();
        if !users.is_empty() {
            return Err(Error::Conflict(format!(
                "model '{id}' is the base model of {}: its runs need it; delete those projects first",
                users.join(", ")
            )));
        }
        self.store.delete_model(id)?;
        // The row goes first: a file left behind by a failure below is only disk space,
        // which `doctor` reports, never a listed model without its file.
        let dir = path.parent().unwrap_or(&path).to_path_buf();
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&dir, e)),
            _ => Ok(()),
        }
    }

    fn model_info(&self, row: store::ModelRow) -> Result<ModelInfo> {
        let path = self.models_dir().join(&row.file);
        let s = engine::gguf::inspect(&path)?;
        Ok(ModelInfo {
            id: row.id,
            path: path.display().to_string(),
            format: row.format,
            architecture: s.architecture,
            parameters: s.parameters,
            quantization: s.quantization,
            context_length: s.context_length,
            chat_template: s.chat_template,
            size_bytes: row.size_bytes as u64,
            sha256: row.sha256,
        })
    }
}

/// sha256 of a file, hexadecimal, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// [`tests::default_gguf`], for the tests of other modules.
#[cfg(test)]
pub(crate) fn tests_default_gguf() -> Option<PathBuf> {
    tests::default_gguf()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEFAULT_MODEL;

    /// The real default model, when setup provided it (`cargo xtask test` always does).
    pub(crate) fn default_gguf() -> Option<PathBuf> {
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

    #[test]
    fn default_model_imports_with_its_catalog_id_and_real_figures() {
        let Some(gguf) = default_gguf() else { return };
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(dir.path()).unwrap();
        let card = crate::default_card().unwrap();
        let err = app.model_import(&gguf, Some(&"0".repeat(64))).unwrap_err();
        assert!(matches!(err, Error::Integrity(_)), "{err}");
        assert!(app.models_list().unwrap().is_empty());
        let m = app.model_import(&gguf, Some(&card.source.as_ref().unwrap().sha256)).unwrap();
        assert_eq!(m.id, DEFAULT_MODEL);
        assert_eq!(m.architecture, "llama");
        assert_eq!(m.quantization, "Q4_1");
        assert_eq!(m.context_length, 8192);
        assert!(m.chat_template);
        assert_eq!(m.size_bytes, card.source.unwrap().size_bytes);
        // SmolLM2-135M: 134.5 M parameters (tied embedding counted once).
        assert!((134_000_000..=135_000_000).contains(&m.parameters), "{}", m.parameters);
        assert_eq!(app.models_list().unwrap(), vec![m.clone()]);
        // Idempotent.
        assert_eq!(app.model_import(&gguf, None).unwrap().id, DEFAULT_MODEL);
        assert_eq!(app.models_list().unwrap().len(), 1);
        assert_eq!(app.model_path(DEFAULT_MODEL).unwrap(), PathBuf::from(&m.path));
        // Removal: refused while a project is based on it, then file and row go.
        app.project_new("Uses it").unwrap();
        let err = app.model_remove(DEFAULT_MODEL).unwrap_err();
        assert!(matches!(&err, Error::Conflict(m) if m.contains("uses-it")), "{err}");
        assert!(PathBuf::from(&m.path).exists());
        let bare = tempfile::tempdir().unwrap();
        let app = App::open(bare.path()).unwrap();
        let m = app.model_import(&gguf, None).unwrap();
        app.model_remove(DEFAULT_MODEL).unwrap();
        assert!(app.models_list().unwrap().is_empty());
        assert!(!PathBuf::from(&m.path).exists());
        assert!(matches!(app.model_remove(DEFAULT_MODEL).unwrap_err(), Error::NotFound(_)));
    }

    #[test]
    fn wrong_hash_and_non_models_are_refused_without_copying() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(dir.path()).unwrap();
        let fake = dir.path().join("fake.gguf");
        std::fs::write(&fake, b"GGUF but not really").unwrap();
        let err = app.model_import(&fake, None).unwrap_err();
        assert!(matches!(err, Error::Model(_)), "{err}");
        let txt = dir.path().join("notes.txt");
        std::fs::write(&txt, b"x").unwrap();
        assert!(matches!(app.model_import(&txt, None).unwrap_err(), Error::InvalidInput(_)));
        assert_eq!(std::fs::read_dir(dir.path().join("models")).unwrap().count(), 0);
        assert!(app.models_list().unwrap().is_empty());
    }

    #[test]
    fn sha256_matches_known_vector() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
