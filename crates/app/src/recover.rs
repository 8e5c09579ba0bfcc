//! One writer per project, and what puts a project right after a writer died.
//!
//! Every change to a project takes its lock ([`App::lock_project`]), across processes. Taking
//! it also repairs what a writer killed half way may have left: git's own lock files, files in
//! `data/` that differ from HEAD, index rows that differ from git (git is the source of truth:
//! the rows are rebuilt from the manifests and run files in its history), and runs marked
//! `running` whose process is gone (`interrupted`: their lock is free).

use data::manifest::Manifest;

use crate::lock::{self, FileLock};
use crate::{App, Result};

/// Held while a project is changed; the next writer waits for it.
#[derive(Debug)]
pub(crate) struct ProjectLock {
    _lock: FileLock,
}

impl ProjectLock {
    /// The project lock `lock`, taken without recovery (`doctor` looks before it repairs).
    pub(crate) fn new(lock: FileLock) -> ProjectLock {
        ProjectLock { _lock: lock }
    }
}

impl App {
    /// Takes project `slug`'s write lock, waiting while another process changes it, then puts
    /// right what a writer that died may have left.
    pub(crate) fn lock_project(&self, slug: &str) -> Result<ProjectLock> {
        let path = lock::project(&self.home, slug);
        let wait = || {
            if let Some(f) = &self.on_wait {
                f(&format!("waiting for another change to project '{slug}' to finish"));
            }
        };
        let lock = ProjectLock { _lock: FileLock::acquire(&path, &wait)? };
        self.recover(slug, &lock)?;
        Ok(lock)
    }

    /// Repairs project `slug` under its lock (see the module's comment).
    pub(crate) fn recover(&self, slug: &str, _held: &ProjectLock) -> Result<()> {
        let dir = self.project_dir(slug);
        // Nobody else can be writing this repository now: its lock files are stale.
        vcs::remove_stale_locks(&dir)?;
        // Only an import, fix or split writes in data/, and only under this lock.
        vcs::restore(&dir, "data")?;
        if self.store.head(slug)? != vcs::head(&dir)? {
            self.resync(slug)?;
        }
        self.mark_dead_runs(slug)?;
        Ok(())
    }

    /// Brings the index of project `slug` up to date before it is read: rows rebuilt when
    /// git moved without them, dead runs marked. Cheap when nothing changed (one ref read).
    pub(crate) fn sync(&self, slug: &str) -> Result<()> {
        if self.store.head(slug)? != vcs::head(&self.project_dir(slug))? {
            drop(self.lock_project(slug)?);
        } else {
            self.mark_dead_runs(slug)?;
        }
        Ok(())
    }

    /// Marks `interrupted` the runs of `slug` recorded as `running` whose process is gone (their
    /// run lock is free); returns their ids.
    pub(crate) fn mark_dead_runs(&self, slug: &str) -> Result<Vec<String>> {
        let mut dead = Vec::new();
        for r in self.store.runs(slug)?.into_iter().filter(|r| r.status == "running") {
            // Held only for the check: a run being resumed takes this lock before its row
            // says `running` again.
            if let Some(_free) = FileLock::try_acquire(&lock::run(&self.home, slug, &r.id))?
                && self.store.set_run_status(slug, &r.id, "running", "interrupted")?
            {
                dead.push(r.id);
            }
        }
        Ok(dead)
    }

    /// Rebuilds project `slug`'s rows from git: a dataset row for every manifest version in
    /// HEAD's history, a run row for every committed run file (the newest of each run).
    pub(crate) fn resync(&self, slug: &str) -> Result<()> {
        let (head, datasets, runs) = self.rows_from_git(slug)?;
        // A run training now keeps its `running` row over an older committed state.
        let live: Vec<String> = self
            .store
            .runs(slug)?
            .into_iter()
            .filter(|r| r.status == "running")
            .filter(|r| {
                FileLock::try_acquire(&lock::run(&self.home, slug, &r.id))
                    .is_ok_and(|free| free.is_none())
            })
            .map(|r| r.id)
            .collect();
        let runs: Vec<store::RunRow> = runs.into_iter().filter(|r| !live.contains(&r.id)).collect();
        self.store.resync(slug, &head, &datasets, &runs)?;
        Ok(())
    }

    /// What the index rows of project `slug` should be, read from git: (HEAD, dataset rows,
    /// run rows).
    pub(crate) fn rows_from_git(
        &self,
        slug: &str,
    ) -> Result<(String, Vec<store::DatasetRow>, Vec<store::RunRow>)> {
        let dir = self.project_dir(slug);
        let head = vcs::head(&dir)?;
        let row = self.project_row(slug)?;
        let mut datasets: Vec<store::DatasetRow> = Vec::new();
        let mut runs: Vec<store::RunRow> = Vec::new();
        for v in vcs::file_versions(&dir, &["data/*.toml", "runs/*/run.toml"])? {
            let text = String::from_utf8_lossy(&v.content);
            if v.path.starts_with("data/") && v.path.matches('/').count() == 1 {
                // A manifest no version of VibeFlow could read is not a dataset version.
                let Ok(m) = Manifest::parse(&text) else { continue };
                let key = (m.dataset.name.clone(), m.dataset.version as i64);
                if datasets.iter().any(|d| (d.name.clone(), d.version) == key) {
                    continue;
                }
                datasets.push(store::DatasetRow {
                    project: slug.to_string(),
                    name: m.dataset.name,
                    version: m.dataset.version as i64,
                    rows: m.result.rows as i64,
                    sha256: m.result.sha256,
                    source: m.source.file,
                    commit_id: v.commit,
                    created_at: m.dataset.created_at,
                });
            } else if let Some(r) = run_row(slug, &row.base_model, &text) {
                runs.retain(|old| old.id != r.id);
                runs.push(r);
            }
        }
        Ok((head, datasets, runs))
    }
}

/// A run row from a committed `runs/<id>/run.toml`.
fn run_row(slug: &str, base: &str, text: &str) -> Option<store::RunRow> {
    let v: toml::Value = toml::from_str(text).ok()?;
    let run = v.get("run")?;
    let dataset = v.get("dataset")?;
    let result = v.get("result")?;
    let str_of = |t: &toml::Value, k: &str| t.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let int_of = |t: &toml::Value, k: &str| t.get(k).and_then(|x| x.as_integer());
    let float_of = |t: &toml::Value, k: &str| t.get(k).and_then(|x| x.as_float());
    // `method = "full"`, or a table named after the method (`[config.method.lora]`).
    let method = match v.get("config").and_then(|c| c.get("method")) {
        Some(toml::Value::String(s)) => s.clone(),
        Some(toml::Value::Table(t)) => t.keys().next().cloned().unwrap_or_default(),
        _ => String::new(),
    };
    Some(store::RunRow {
        id: str_of(run, "id")?,
        project: slug.to_string(),
        dataset: str_of(dataset, "name")?,
        dataset_sha256: str_of(dataset, "sha256").unwrap_or_default(),
        base_model: str_of(run, "base_model").unwrap_or_else(|| base.to_string()),
        method,
        status: str_of(run, "status")?,
        steps: int_of(result, "steps").unwrap_or(0),
        train_loss: float_of(result, "last_train_loss"),
        eval_loss: float_of(result, "eval_loss_after"),
        started_at: int_of(run, "started_at").unwrap_or(0),
        finished_at: int_of(run, "finished_at"),
    })
}
