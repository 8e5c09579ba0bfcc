//! `vibeflow doctor`: checks a home for inconsistencies between git, the SQLite index and the
//! files, and repairs what it safely can.
//!
//! git is the source of truth for a project's versions; the index is rebuilt from it. Nothing a
//! user made is ever deleted: only temporary files, git's stale lock files, leftovers of
//! interrupted writes in `data/` (HEAD has the committed content) and content objects that no
//! version of any project refers to.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use api::{DoctorReport, Finding};
use data::manifest::Manifest;

use crate::lock::{self, FileLock};
use crate::recover::ProjectLock;
use crate::{App, Result};

impl App {
    /// Checks the home; with `repair`, repairs what can be repaired without losing anything.
    pub fn doctor(&self, repair: bool) -> Result<DoctorReport> {
        let mut report = DoctorReport {
            home: self.home.display().to_string(),
            projects: 0,
            versions: 0,
            objects: 0,
            findings: Vec::new(),
        };
        let found = &mut report.findings;
        for s in &self.swept {
            found.push(finding(
                "tmp_leftover",
                None,
                format!("{s}: temporary files of a process that ended, removed"),
                true,
            ));
        }
        self.leftover_files(repair, found);
        for problem in self.store.quick_check()? {
            found.push(finding("database", None, format!("vibeflow.db: {problem}"), false));
        }
        let rows = self.store.projects()?;
        let mut referenced = BTreeSet::new();
        let mut locks = Vec::new();
        for row in &rows {
            let dir = self.project_dir(&row.slug);
            let slug = Some(row.slug.clone());
            if !dir.is_dir() {
                let repaired = repair && self.store.delete_project(&row.slug).is_ok();
                found.push(finding(
                    "missing_folder",
                    slug,
                    format!(
                        "{} is missing: the project is listed but its folder is gone{}",
                        dir.display(),
                        if repaired { "; removed from the list" } else { "" }
                    ),
                    repaired,
                ));
                continue;
            }
            if !vcs::is_repository(&dir) {
                found.push(finding(
                    "not_a_repository",
                    slug,
                    format!("{} is not a git repository: restore it from a backup", dir.display()),
                    false,
                ));
                continue;
            }
            report.projects += 1;
            match FileLock::try_acquire(&lock::project(&self.home, &row.slug))? {
                Some(l) => {
                    let held = ProjectLock::from(l);
                    report.versions +=
                        self.check_project(&row.slug, &held, repair, found, &mut referenced)?;
                    locks.push(held);
                }
                None => {
                    // Mid-change: what looks wrong may be work in progress.
                    found.push(finding(
                        "busy",
                        slug,
                        format!("project '{}' is being changed by another process: not checked; run doctor again when it is done", row.slug),
                        false,
                    ));
                    referenced.extend(self.referenced_objects(&row.slug).unwrap_or_default());
                }
            }
        }
        self.unindexed_projects(&rows, repair, found)?;
        // Unreferenced objects may be removed only while no import is placing any.
        let objects_lock =
            if repair { FileLock::try_acquire(&lock::objects(&self.home))? } else { None };
        report.objects = self.check_objects(&referenced, objects_lock.is_some(), found)?;
        drop(objects_lock);
        drop(locks);
        self.check_models(repair, found)?;
        Ok(report)
    }

    /// Checks one project under its lock; returns the versions compared.
    fn check_project(
        &self,
        slug: &str,
        _held: &ProjectLock,
        repair: bool,
        found: &mut Vec<Finding>,
        referenced: &mut BTreeSet<String>,
    ) -> Result<usize> {
        let dir = self.project_dir(slug);
        let p = || Some(slug.to_string());
        for l in git_locks(&dir) {
            found.push(finding(
                "git_lock",
                p(),
                format!("{l}: a lock file left by a git write that died{}", removed(repair)),
                repair,
            ));
        }
        if repair {
            vcs::remove_stale_locks(&dir)?;
        }
        let dirty = vcs::dirty(&dir, "data")?;
        for f in &dirty {
            found.push(finding(
                "data_leftover",
                p(),
                format!(
                    "{f}: differs from the last commit (an interrupted write){}",
                    if repair { "; restored" } else { "" }
                ),
                repair,
            ));
        }
        if repair && !dirty.is_empty() {
            vcs::restore(&dir, "data")?;
        }
        // The index against git.
        let (head, datasets, runs) = self.rows_from_git(slug)?;
        let indexed = self.store.datasets(slug)?;
        let mut out_of_sync = Vec::new();
        for d in &datasets {
            if !indexed.contains(d) {
                out_of_sync.push(format!(
                    "dataset {} v{} (commit {}) is in git but not in the index",
                    d.name,
                    d.version,
                    short(&d.commit_id)
                ));
            }
        }
        for d in &indexed {
            if !datasets.contains(d) {
                out_of_sync.push(format!(
                    "dataset {} v{} is in the index but no commit of the project has it",
                    d.name, d.version
                ));
            }
        }
        let indexed_runs = self.store.runs(slug)?;
        for r in &runs {
            match indexed_runs.iter().find(|i| i.id == r.id) {
                None => out_of_sync.push(format!("run {} is in git but not in the index", r.id)),
                // A run resumed since its last commit is ahead of git: fine.
                Some(i) if i.status == "running" || i.status == "interrupted" => {}
                Some(i) if (i.status.as_str(), i.steps) != (r.status.as_str(), r.steps) => {
                    out_of_sync.push(format!(
                        "run {} is {} after {} steps in git but {} after {} in the index",
                        r.id, r.status, r.steps, i.status, i.steps
                    ));
                }
                Some(_) => {}
            }
        }
        let head_known = self.store.head(slug)? == head;
        if !head_known && out_of_sync.is_empty() {
            out_of_sync.push(format!("the index does not know commit {} (HEAD)", short(&head)));
        }
        for m in &out_of_sync {
            found.push(finding(
                "index_out_of_sync",
                p(),
                format!("{m}{}", if repair { "; index rebuilt from git" } else { "" }),
                repair,
            ));
        }
        if repair && !out_of_sync.is_empty() {
            self.resync(slug)?;
        }
        for r in indexed_runs.iter().filter(|r| r.status == "running") {
            if FileLock::try_acquire(&lock::run(&self.home, slug, &r.id))?.is_some() {
                let done =
                    repair && self.store.set_run_status(slug, &r.id, "running", "interrupted")?;
                found.push(finding(
                    "run_interrupted",
                    p(),
                    format!("run {} is recorded as running but its process is gone{}", r.id, if done { "; marked interrupted (resume it with `vibeflow train -p {slug} --resume`)" } else { "" }),
                    done,
                ));
            }
        }
        for partial in partial_checkpoints(&dir.join("runs")) {
            let id = partial.parent().and_then(Path::parent).and_then(Path::file_name);
            let id = id.map(|i| i.to_string_lossy().into_owned()).unwrap_or_default();
            // Only a run that is not training now can have a dead write.
            if FileLock::try_acquire(&lock::run(&self.home, slug, &id))?.is_none() {
                continue;
            }
            let done = repair && std::fs::remove_dir_all(&partial).is_ok();
            let rel = partial.strip_prefix(&dir).unwrap_or(&partial).display().to_string();
            found.push(finding(
                "tmp_leftover",
                p(),
                format!("{rel}: a checkpoint whose write was interrupted{}", removed(done)),
                done,
            ));
        }
        // The current versions' content.
        for d in current_manifests(&dir.join("data")) {
            let (name, m) = d;
            let source = self.object_path(&m.source.sha256);
            if !source.is_file() {
                found.push(finding("missing_object", p(), format!("dataset {name}: its source {} is missing from objects/: fixes cannot rebuild it; import it again", m.source.file), false));
            }
            let stored = match m.result.stored.as_str() {
                "objects" => self.object_path(&m.result.sha256),
                _ => dir.join("data").join(format!("{name}.jsonl")),
            };
            match crate::sha256_file(&stored) {
                Ok(sha) if sha == m.result.sha256 => {}
                Ok(_) => found.push(finding("corrupt_object", p(), format!("dataset {name}: {} differs from its manifest's hash: import or fix it again", stored.display()), false)),
                Err(_) => found.push(finding("missing_object", p(), format!("dataset {name}: {} is missing: import it again", stored.display()), false)),
            }
        }
        referenced.extend(self.referenced_objects(slug)?);
        Ok(datasets.len() + runs.len())
    }

    /// Every content object a version of project `slug` refers to (all of history).
    fn referenced_objects(&self, slug: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for v in vcs::file_versions(&self.project_dir(slug), &["data/*.toml"])? {
            if let Ok(m) = Manifest::parse(&String::from_utf8_lossy(&v.content)) {
                out.push(m.source.sha256);
                if m.result.stored == "objects" {
                    out.push(m.result.sha256);
                }
            }
        }
        Ok(out)
    }

    /// Hashes every object; reports those whose content differs from their name and those
    /// nothing refers to (removed when `repair`: the objects lock is then held, so no import
    /// is between placing an object and indexing its version). Returns the count.
    fn check_objects(
        &self,
        referenced: &BTreeSet<String>,
        repair: bool,
        found: &mut Vec<Finding>,
    ) -> Result<usize> {
        let root = self.home.join("objects").join("sha256");
        let mut count = 0;
        for prefix in read_dir_sorted(&root) {
            for file in read_dir_sorted(&prefix) {
                let name = format!(
                    "{}{}",
                    prefix.file_name().unwrap_or_default().to_string_lossy(),
                    file.file_name().unwrap_or_default().to_string_lossy()
                );
                count += 1;
                let rel = format!(
                    "objects/sha256/{}/{}",
                    &name[..2.min(name.len())],
                    &name[2.min(name.len())..]
                );
                if !referenced.contains(&name) {
                    let done = repair && std::fs::remove_file(&file).is_ok();
                    found.push(finding("unreferenced_object", None, format!("{rel}: no version of any project refers to it (left by an interrupted import){}", removed(done)), done));
                    continue;
                }
                if crate::sha256_file(&file)? != name {
                    found.push(finding("corrupt_object", None, format!("{rel}: its content does not match its hash: import the dataset that uses it again"), false));
                }
            }
        }
        Ok(count)
    }

    /// Temporary files older versions left where no sweep looks.
    fn leftover_files(&self, repair: bool, found: &mut Vec<Finding>) {
        let mut stale: Vec<PathBuf> = Vec::new();
        let legacy = self.home.join("objects").join("tmp");
        if legacy.exists() {
            stale.push(legacy);
        }
        for model in read_dir_sorted(&self.models_dir()) {
            stale.extend(read_dir_sorted(&model).into_iter().filter(|f| {
                f.file_name().is_some_and(|n| n.to_string_lossy().ends_with(".partial"))
            }));
        }
        for path in stale {
            let done = repair
                && if path.is_dir() {
                    std::fs::remove_dir_all(&path).is_ok()
                } else {
                    std::fs::remove_file(&path).is_ok()
                };
            let rel = path.strip_prefix(&self.home).unwrap_or(&path).display().to_string();
            found.push(finding(
                "tmp_leftover",
                None,
                format!("{rel}: left by an interrupted write{}", removed(done)),
                done,
            ));
        }
    }

    /// Project folders with a `vibeflow.toml` and a repository that the index does not list:
    /// listed again when `repair` (their rows rebuilt from git).
    fn unindexed_projects(
        &self,
        rows: &[store::ProjectRow],
        repair: bool,
        found: &mut Vec<Finding>,
    ) -> Result<()> {
        for dir in read_dir_sorted(&self.projects_dir()) {
            let slug = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
            if rows.iter().any(|r| r.slug == slug) || !vcs::is_repository(&dir) {
                continue;
            }
            let Some(row) = crate::projects::read_project_file(&dir) else { continue };
            let done = repair && row.slug == slug && self.store.insert_project(&row).is_ok();
            if done {
                let held = self.lock_project(&slug)?;
                drop(held);
            }
            found.push(finding(
                "unindexed_project",
                Some(slug.clone()),
                format!(
                    "{} is a project the index does not list{}",
                    dir.display(),
                    if done { "; listed again" } else { "" }
                ),
                done,
            ));
        }
        Ok(())
    }

    fn check_models(&self, repair: bool, found: &mut Vec<Finding>) -> Result<()> {
        for m in self.store.models()? {
            let path = self.models_dir().join(&m.file);
            let Ok(meta) = path.metadata() else {
                let done = repair && self.store.delete_model(&m.id).is_ok();
                found.push(finding(
                    "model_missing",
                    None,
                    format!(
                        "model {}: {} is missing{}",
                        m.id,
                        path.display(),
                        if done { "; removed from the list" } else { ": import it again" }
                    ),
                    done,
                ));
                continue;
            };
            let damage = if meta.len() != m.size_bytes as u64 {
                Some(format!("{} bytes, {} when installed", meta.len(), m.size_bytes))
            } else {
                engine::gguf::inspect(&path).err().map(|e| e.to_string())
            };
            if let Some(why) = damage {
                found.push(finding(
                    "model_damaged",
                    None,
                    format!("model {}: {why}: import it again", m.id),
                    false,
                ));
            }
        }
        Ok(())
    }
}

impl From<FileLock> for ProjectLock {
    fn from(lock: FileLock) -> ProjectLock {
        ProjectLock::new(lock)
    }
}

fn finding(kind: &str, project: Option<String>, message: String, repaired: bool) -> Finding {
    Finding { kind: kind.into(), project, message, repaired }
}

fn removed(done: bool) -> &'static str {
    if done { "; removed" } else { "" }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(10)]
}

/// The entries of `dir`, sorted (none when it cannot be read).
fn read_dir_sorted(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    v.sort();
    v
}

/// git's lock files in `dir`'s repository (relative paths).
fn git_locks(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join(".git")];
    while let Some(d) = stack.pop() {
        for p in read_dir_sorted(&d) {
            let name = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
            if p.is_dir() && name != "objects" {
                stack.push(p);
            } else if name.ends_with(".lock") {
                out.push(p.strip_prefix(dir).unwrap_or(&p).display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// `runs/<id>/checkpoints/*.partial` folders.
fn partial_checkpoints(runs: &Path) -> Vec<PathBuf> {
    read_dir_sorted(runs)
        .into_iter()
        .flat_map(|run| read_dir_sorted(&run.join("checkpoints")))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().ends_with(".partial")))
        .collect()
}

/// The manifests in `data/` (the current versions), by dataset name.
fn current_manifests(data: &Path) -> Vec<(String, Manifest)> {
    read_dir_sorted(data)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .filter_map(|p| {
            let m = Manifest::parse(&std::fs::read_to_string(&p).ok()?).ok()?;
            Some((m.dataset.name.clone(), m))
        })
        .collect()
}
