//! Versions of a project: the tags finished runs get, the diff between two versions, and
//! rollback, which restores an earlier version as a new commit (history is never rewritten).

use std::path::{Path, PathBuf};

use api::{FileDiff, RollbackOutcome, VersionDiff};
use data::manifest::Manifest;

use crate::datasets::write_file;
use crate::projects::{model_run_of, set_model_run};
use crate::{App, Error, Result};

/// The files a version diff shows: the project's configuration, the datasets' manifests and
/// the runs' records (rows and weights are content objects, named by their hashes there).
const DIFFED: [&str; 3] = ["vibeflow.toml", "data/*.toml", "runs/*/run.toml"];

impl App {
    /// What changed from version `from` to version `to` (default: the current one).
    pub fn diff(&self, project: &str, from: &str, to: Option<&str>) -> Result<VersionDiff> {
        let row = self.project_row(project)?;
        let dir = self.project_dir(&row.slug);
        let from = self.version(&row.slug, from)?;
        let to = match to {
            Some(t) => self.version(&row.slug, t)?,
            None => vcs::head(&dir)?,
        };
        let files = vcs::diff(&dir, &from, &to, &DIFFED)?
            .into_iter()
            .map(|c| FileDiff { path: c.path, status: c.status.into(), patch: c.patch })
            .collect();
        Ok(VersionDiff { from, to, files })
    }

    /// Restores version `to` (a tag such as `v1`, or a commit id) as a new commit: each dataset
    /// whose content differs from then gets a new version holding that content, and the
    /// project's model becomes the run it was then. Later versions stay in the history (and
    /// can be restored in turn).
    pub fn rollback(&self, project: &str, to: &str) -> Result<RollbackOutcome> {
        let row = self.project_row(project)?;
        let _held = self.lock_project(&row.slug)?;
        let dir = self.project_dir(&row.slug);
        let target = self.version(&row.slug, to)?;
        if target == vcs::head(&dir)? {
            return Err(Error::Conflict(format!(
                "project '{}' is at {to} already: nothing to roll back",
                row.slug
            )));
        }
        let mut paths: Vec<PathBuf> = Vec::new();
        let mut restored = Vec::new();
        let mut rows = Vec::new();
        let datasets = self.store.datasets(&row.slug)?;
        for file in vcs::files_at(&dir, &target, "data")? {
            let Some(name) = file.strip_prefix("data/").and_then(|f| f.strip_suffix(".toml"))
            else {
                continue;
            };
            let then = read_manifest(&dir, &target, &file)?;
            let now = std::fs::read_to_string(dir.join(&file)).ok();
            if now.and_then(|t| Manifest::parse(&t).ok()).is_some_and(|m| same_content(&m, &then)) {
                continue;
            }
            let version = datasets
                .iter()
                .filter(|d| d.name == name)
                .map(|d| d.version as u32)
                .max()
                .unwrap_or(0)
                + 1;
            let (old_version, created_at) = (then.dataset.version, crate::now());
            let mut m = then;
            m.dataset.version = version;
            m.dataset.created_at = created_at;
            let jsonl = format!("data/{name}.jsonl");
            if m.result.stored == "git" {
                let rows = vcs::read_at(&dir, &target, &jsonl)?.ok_or_else(|| {
                    Error::Integrity(format!("{to}: {jsonl} is missing from that version"))
                })?;
                write_file(&dir.join(&jsonl), &rows)?;
            } else {
                let obj = self.object_path(&m.result.sha256);
                if !obj.exists() {
                    return Err(Error::Integrity(format!(
                        "the rows of dataset {name} v{old_version} ({}) are gone from the store: it cannot be restored",
                        obj.display()
                    )));
                }
                let _ = std::fs::remove_file(dir.join(&jsonl));
            }
            write_file(&dir.join(&file), m.to_toml().as_bytes())?;
            let report = format!("data/{name}.report.json");
            if let Some(bytes) = vcs::read_at(&dir, &target, &report)? {
                let mut v: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Data(format!("{to}: {report}: {e}")))?;
                v["version"] = version.into();
                v["commit"] = "".into();
                let text = serde_json::to_string_pretty(&v).unwrap_or_default();
                write_file(&dir.join(&report), text.as_bytes())?;
                paths.push(report.into());
            }
            paths.push(file.clone().into());
            paths.push(jsonl.into());
            restored.push(format!("dataset {name} v{version} (the content of v{old_version})"));
            rows.push(store::DatasetRow {
                project: row.slug.clone(),
                name: name.to_string(),
                version: version as i64,
                rows: m.result.rows as i64,
                sha256: m.result.sha256.clone(),
                source: m.source.file.clone(),
                commit_id: String::new(),
                created_at,
            });
        }
        let model_run = self.model_run_at(&row.slug, &target)?;
        let now = std::fs::read_to_string(dir.join("vibeflow.toml")).ok();
        if now.as_deref().and_then(model_run_of) != model_run {
            set_model_run(&dir, model_run.as_deref())?;
            paths.push("vibeflow.toml".into());
            restored.push(match &model_run {
                Some(run) => format!("model {run}"),
                None => "the base model (no finished run then)".into(),
            });
        }
        if restored.is_empty() {
            return Err(Error::Conflict(format!(
                "{to} has the same datasets and model as the current version: nothing to roll back"
            )));
        }
        let short = &target[..target.len().min(10)];
        let label =
            if to.starts_with(short) { short.to_string() } else { format!("{to} ({short})") };
        let message = format!("Roll back to {label}: {}", restored.join(", "));
        let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
        let commit = self.commit_with_rows(&row.slug, &refs, &message, |commit| {
            rows.into_iter()
                .map(|r| {
                    store::Change::Dataset(store::DatasetRow { commit_id: commit.into(), ..r })
                })
                .collect()
        })?;
        Ok(RollbackOutcome { commit, target, restored, model_run })
    }

    /// The commit of version `rev` of a project, or a clear error.
    fn version(&self, slug: &str, rev: &str) -> Result<String> {
        vcs::resolve(&self.project_dir(slug), rev.trim())?.ok_or_else(|| {
            Error::NotFound(format!(
                "no version '{rev}' in project '{slug}': name a tag (v1, v2 …) or a commit id from `vibeflow history -p {slug}`"
            ))
        })
    }

    /// The run that was the project's model at commit `id`: its `model.run`, or (before that
    /// was recorded) the newest run whose record there says `done`.
    fn model_run_at(&self, slug: &str, id: &str) -> Result<Option<String>> {
        let dir = self.project_dir(slug);
        if let Some(run) = vcs::read_at(&dir, id, "vibeflow.toml")?
            .and_then(|b| model_run_of(&String::from_utf8_lossy(&b)))
        {
            return Ok(Some(run));
        }
        let mut done = Vec::new();
        for r in self.store.runs(slug)? {
            let Some(text) = vcs::read_at(&dir, id, &format!("runs/{}/run.toml", r.id))? else {
                continue;
            };
            if String::from_utf8_lossy(&text).contains("status = \"done\"") {
                done.push(r.id);
            }
        }
        Ok(done.into_iter().max_by_key(|id| crate::training::run_number(id)))
    }

    /// Tags commit `id` of a finished run with the next free `vN`.
    pub(crate) fn tag_version(&self, slug: &str, id: &str) -> Result<String> {
        let dir = self.project_dir(slug);
        let n = vcs::tags(&dir)?
            .iter()
            .filter_map(|t| t.strip_prefix('v').and_then(|n| n.parse::<u64>().ok()))
            .max()
            .unwrap_or(0);
        let tag = format!("v{}", n + 1);
        vcs::tag(&dir, &tag, id)?;
        Ok(tag)
    }
}

fn read_manifest(dir: &Path, id: &str, file: &str) -> Result<Manifest> {
    let bytes = vcs::read_at(dir, id, file)?
        .ok_or_else(|| Error::NotFound(format!("{file} is not in version {id}")))?;
    Manifest::parse(&String::from_utf8_lossy(&bytes))
        .map_err(|e| Error::Data(format!("{file} at {id}: {e}")))
}

/// Whether two manifests describe the same rows, split alike.
fn same_content(a: &Manifest, b: &Manifest) -> bool {
    a.result.sha256 == b.result.sha256
        && a.split.seed == b.split.seed
        && a.split.test == b.split.test
}
