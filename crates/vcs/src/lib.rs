//! git versioning of projects: every project is a repository, every model version a commit.
//!
//! This crate knows git and files; it knows nothing about SQLite, models or Tauri. It never
//! touches the network (libgit2 is built without https/ssh).

use std::path::Path;

use git2::{Repository, Signature};

/// Errors of versioning.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// libgit2 failed.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// A path to commit is not inside the repository's work tree.
    #[error("{0} is not inside the project")]
    Outside(String),
    /// A file of the work tree could not be changed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

/// Result of versioning.
pub type Result<T> = std::result::Result<T, Error>;

/// One commit, newest first in [`history`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Full hexadecimal id.
    pub id: String,
    /// First line of the message.
    pub summary: String,
    /// Whole message.
    pub message: String,
    /// Author name.
    pub author: String,
    /// Seconds since the Unix epoch.
    pub time: i64,
    /// Tags that point at this commit, sorted.
    pub tags: Vec<String>,
}

/// Who commits: VibeFlow commits on the user's behalf with a fixed identity, so a machine without
/// a git configuration works the same as one with.
fn signature() -> Result<Signature<'static>> {
    Ok(Signature::now("VibeFlow", "vibeflow@localhost")?)
}

/// Creates a repository at `dir` (which must exist) and commits every file already in it as the
/// root commit with `message`. Returns the commit id.
pub fn init(dir: &Path, message: &str) -> Result<String> {
    let repo = Repository::init(dir)?;
    let mut index = repo.index()?;
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let sig = signature()?;
    let id = repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &[])?;
    Ok(id.to_string())
}

/// Stages the given paths (relative to the work tree; deleted files are removed from the index)
/// and commits them on HEAD. Returns the commit id.
///
/// The index is first reset to HEAD's tree, so entries a crashed writer staged never ride
/// along in this commit.
pub fn commit(dir: &Path, paths: &[&Path], message: &str) -> Result<String> {
    let repo = Repository::open(dir)?;
    let parent = repo.head()?.peel_to_commit()?;
    let mut index = repo.index()?;
    index.read_tree(&parent.tree()?)?;
    for p in paths {
        if p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            return Err(Error::Outside(p.display().to_string()));
        }
        if dir.join(p).exists() {
            index.add_path(p)?;
        } else if index.get_path(p, 0).is_some() {
            index.remove_path(p)?;
        }
    }
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let sig = signature()?;
    let id = repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &[&parent])?;
    Ok(id.to_string())
}

/// The HEAD commit's id.
pub fn head(dir: &Path) -> Result<String> {
    let repo = Repository::open(dir)?;
    Ok(repo.head()?.peel_to_commit()?.id().to_string())
}

/// Undoes commit `id` when it is HEAD: the branch moves back to its parent, and the index and
/// the tracked files return to the parent's content (untracked and ignored files are left
/// alone). Returns whether HEAD was `id`. For a commit whose index row could not be written.
pub fn undo(dir: &Path, id: &str) -> Result<bool> {
    let repo = Repository::open(dir)?;
    let head = repo.head()?.peel_to_commit()?;
    if head.id().to_string() != id {
        return Ok(false);
    }
    let parent = head.parent(0)?;
    repo.reset(parent.as_object(), git2::ResetType::Hard, None)?;
    Ok(true)
}

/// Removes the lock files git leaves behind when a writer dies (`index.lock`, `HEAD.lock`,
/// `refs/**.lock`, `packed-refs.lock`), and returns their paths relative to the repository.
/// Only for a caller that knows no other process is writing this repository.
pub fn remove_stale_locks(dir: &Path) -> Result<Vec<String>> {
    let git = dir.join(".git");
    let mut removed = Vec::new();
    let mut stack = vec![git.clone()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name();
            let name = name.to_string_lossy();
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            // Objects are written under temporary names and renamed: no locks there.
            if is_dir && name != "objects" {
                stack.push(path);
            } else if !is_dir && name.ends_with(".lock") && std::fs::remove_file(&path).is_ok() {
                let rel = path.strip_prefix(dir).unwrap_or(&path);
                removed.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    removed.sort();
    Ok(removed)
}

/// Files under the folder `prefix` (relative, `/`-separated) whose content differs from
/// HEAD: changed, deleted, or not tracked (ignored files excepted), sorted.
pub fn dirty(dir: &Path, prefix: &str) -> Result<Vec<String>> {
    let repo = Repository::open(dir)?;
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .pathspec(format!("{}/", prefix.trim_end_matches('/')))
        .disable_pathspec_match(false);
    let statuses = repo.statuses(Some(&mut opts))?;
    let mut out: Vec<String> = statuses
        .iter()
        .filter(|s| s.status() != git2::Status::CURRENT && !s.status().is_ignored())
        .filter_map(|s| s.path().ok().map(str::to_string))
        .collect();
    out.sort();
    Ok(out)
}

/// Makes the folder `prefix` equal to HEAD: changed and deleted tracked files are restored,
/// files git does not track are removed (ignored ones kept); the index entries under it are
/// reset too. Returns the paths it changed. Only for a caller that knows no other process is
/// writing there.
pub fn restore(dir: &Path, prefix: &str) -> Result<Vec<String>> {
    let repo = Repository::open(dir)?;
    let changed = dirty(dir, prefix)?;
    if changed.is_empty() {
        return Ok(changed);
    }
    let head = repo.head()?.peel_to_commit()?;
    let mut tracked = Vec::new();
    for path in &changed {
        if head.tree()?.get_path(Path::new(path)).is_ok() {
            tracked.push(path.clone());
        } else {
            let full = dir.join(path);
            if full.is_dir() {
                std::fs::remove_dir_all(&full).map_err(|e| Error::Io(path.clone(), e))?;
            } else if full.exists() {
                std::fs::remove_file(&full).map_err(|e| Error::Io(path.clone(), e))?;
            }
        }
    }
    // The index under `prefix` goes back to HEAD's entries as well.
    let mut index = repo.index()?;
    let head_tree = head.tree()?;
    let mut fresh = git2::Index::new()?;
    fresh.read_tree(&head_tree)?;
    let wanted = format!("{}/", prefix.trim_end_matches('/'));
    let stale: Vec<Vec<u8>> = index
        .iter()
        .filter(|e| e.path.starts_with(wanted.as_bytes()))
        .map(|e| e.path.clone())
        .collect();
    for p in stale {
        index.remove_path(Path::new(&String::from_utf8_lossy(&p).into_owned()))?;
    }
    for e in fresh.iter().filter(|e| e.path.starts_with(wanted.as_bytes())) {
        index.add(&e)?;
    }
    index.write()?;
    if !tracked.is_empty() {
        let mut co = git2::build::CheckoutBuilder::new();
        co.force();
        for p in &tracked {
            co.path(p);
        }
        repo.checkout_tree(head_tree.as_object(), Some(&mut co))?;
    }
    Ok(changed)
}

/// One version of a file in HEAD's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileVersion {
    /// The commit that added or changed the file.
    pub commit: String,
    /// Its time, seconds since the Unix epoch.
    pub time: i64,
    /// The file's path, relative, `/`-separated.
    pub path: String,
    /// Its content in that commit.
    pub content: Vec<u8>,
}

/// Every version of the files matching `pathspecs` (git pathspecs such as `data/*.toml`) that
/// a commit reachable from HEAD added or changed, oldest commit first. Deletions are not
/// listed.
pub fn file_versions(dir: &Path, pathspecs: &[&str]) -> Result<Vec<FileVersion>> {
    let repo = Repository::open(dir)?;
    let mut walk = repo.revwalk()?;
    walk.push_head()?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)?;
    let mut out = Vec::new();
    for oid in walk {
        let commit = repo.find_commit(oid?)?;
        let tree = commit.tree()?;
        let parent = match commit.parent(0) {
            Ok(p) => Some(p.tree()?),
            Err(_) => None,
        };
        let mut opts = git2::DiffOptions::new();
        for p in pathspecs {
            opts.pathspec(p);
        }
        let diff = repo.diff_tree_to_tree(parent.as_ref(), Some(&tree), Some(&mut opts))?;
        for delta in diff.deltas() {
            if matches!(delta.status(), git2::Delta::Deleted) {
                continue;
            }
            let file = delta.new_file();
            let Some(path) = file.path() else { continue };
            let blob = repo.find_blob(file.id())?;
            out.push(FileVersion {
                commit: commit.id().to_string(),
                time: commit.time().seconds(),
                path: path.to_string_lossy().replace('\\', "/"),
                content: blob.content().to_vec(),
            });
        }
    }
    Ok(out)
}

/// Tags commit `id` (lightweight tag `name`).
pub fn tag(dir: &Path, name: &str, id: &str) -> Result<()> {
    let repo = Repository::open(dir)?;
    let obj = repo.revparse_single(id)?;
    repo.tag_lightweight(name, &obj, false)?;
    Ok(())
}

/// The commit a revision names (a tag such as `v1`, a full or abbreviated id), or `None`.
pub fn resolve(dir: &Path, rev: &str) -> Result<Option<String>> {
    let repo = Repository::open(dir)?;
    // Only names and ids: revision syntax (`HEAD~2`, `@{…}`) is not something a user means here.
    if rev.is_empty() || !rev.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Ok(None);
    }
    let found = match repo.revparse_single(&format!("refs/tags/{rev}")) {
        Ok(o) => Some(o),
        Err(_) => repo.revparse_single(rev).ok(),
    };
    Ok(found.and_then(|o| o.peel_to_commit().ok()).map(|c| c.id().to_string()))
}

/// The content of `path` (relative, `/`-separated) in commit `id`, or `None` when the commit
/// has no such file.
pub fn read_at(dir: &Path, id: &str, path: &str) -> Result<Option<Vec<u8>>> {
    let repo = Repository::open(dir)?;
    let tree = repo.find_commit(git2::Oid::from_str(id)?)?.tree()?;
    let Ok(entry) = tree.get_path(Path::new(path)) else { return Ok(None) };
    Ok(repo.find_blob(entry.id()).ok().map(|b| b.content().to_vec()))
}

/// The files of folder `folder` in commit `id` (one level), as `folder/name`, sorted.
pub fn files_at(dir: &Path, id: &str, folder: &str) -> Result<Vec<String>> {
    let repo = Repository::open(dir)?;
    let tree = repo.find_commit(git2::Oid::from_str(id)?)?.tree()?;
    let Ok(entry) = tree.get_path(Path::new(folder)) else { return Ok(Vec::new()) };
    let Ok(sub) = repo.find_tree(entry.id()) else { return Ok(Vec::new()) };
    let mut out: Vec<String> = sub
        .iter()
        .filter(|e| e.kind() == Some(git2::ObjectType::Blob))
        .filter_map(|e| e.name().ok().map(|n| format!("{folder}/{n}")))
        .collect();
    out.sort();
    Ok(out)
}

/// How one file changed between two commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// Path in the repository, `/`-separated.
    pub path: String,
    /// `added`, `deleted` or `modified`.
    pub status: &'static str,
    /// The unified diff (`+`/`-`/` ` lines after the `@@` hunk headers).
    pub patch: String,
}

/// What changed from commit `from` to commit `to` in the files `pathspecs` match (globs).
pub fn diff(dir: &Path, from: &str, to: &str, pathspecs: &[&str]) -> Result<Vec<FileChange>> {
    let repo = Repository::open(dir)?;
    let tree = |id: &str| -> Result<git2::Tree<'_>> {
        Ok(repo.find_commit(git2::Oid::from_str(id)?)?.tree()?)
    };
    let (a, b) = (tree(from)?, tree(to)?);
    let mut opts = git2::DiffOptions::new();
    for p in pathspecs {
        opts.pathspec(p);
    }
    let diff = repo.diff_tree_to_tree(Some(&a), Some(&b), Some(&mut opts))?;
    let mut out: Vec<FileChange> = Vec::new();
    diff.print(git2::DiffFormat::Patch, |delta, _hunk, line| {
        let path = delta
            .new_file()
            .path()
            .or(delta.old_file().path())
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        if out.last().is_none_or(|c| c.path != path) {
            let status = match delta.status() {
                git2::Delta::Added => "added",
                git2::Delta::Deleted => "deleted",
                _ => "modified",
            };
            out.push(FileChange { path, status, patch: String::new() });
        }
        let change = out.last_mut().expect("pushed above");
        let text = String::from_utf8_lossy(line.content());
        match line.origin() {
            c @ ('+' | '-' | ' ') => {
                change.patch.push(c);
                change.patch.push_str(&text);
            }
            'H' => change.patch.push_str(&text),
            _ => {}
        }
        true
    })?;
    Ok(out)
}

/// The repository's tag names, sorted.
pub fn tags(dir: &Path) -> Result<Vec<String>> {
    let repo = Repository::open(dir)?;
    let mut out: Vec<String> =
        repo.tag_names(None)?.iter().flatten().flatten().map(str::to_string).collect();
    out.sort();
    Ok(out)
}

/// Whether `dir` is the top of a git repository.
pub fn is_repository(dir: &Path) -> bool {
    // `open` does not search parent folders, so a plain folder inside a repository is not one.
    Repository::open(dir).is_ok()
}

/// Commits reachable from HEAD, newest first, with their tags.
pub fn history(dir: &Path) -> Result<Vec<Commit>> {
    let repo = Repository::open(dir)?;
    let mut tags: std::collections::HashMap<git2::Oid, Vec<String>> = Default::default();
    repo.tag_foreach(|oid, name| {
        let name = String::from_utf8_lossy(name);
        let short = name.strip_prefix("refs/tags/").unwrap_or(&name).to_string();
        // Annotated tags point at a tag object; peel to the commit.
        let target = repo
            .find_object(oid, None)
            .and_then(|o| o.peel_to_commit())
            .map(|c| c.id())
            .unwrap_or(oid);
        tags.entry(target).or_default().push(short);
        true
    })?;
    let mut walk = repo.revwalk()?;
    walk.push_head()?;
    walk.set_sorting(git2::Sort::TIME | git2::Sort::TOPOLOGICAL)?;
    let mut out = Vec::new();
    for oid in walk {
        let oid = oid?;
        let c = repo.find_commit(oid)?;
        let mut t = tags.remove(&oid).unwrap_or_default();
        t.sort();
        out.push(Commit {
            id: oid.to_string(),
            // Lossy: a commit made elsewhere with a non-UTF-8 message still lists.
            summary: String::from_utf8_lossy(c.summary_bytes().unwrap_or_default()).into_owned(),
            message: String::from_utf8_lossy(c.message_bytes()).into_owned(),
            author: String::from_utf8_lossy(c.author().name_bytes()).into_owned(),
            time: c.time().seconds(),
            tags: t,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_commit_tag_and_history() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("vibeflow.toml"), "x = 1\n").unwrap();
        let first = init(d, "Create project").unwrap();
        assert!(is_repository(d));
        let h = history(d).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].id, first);
        assert_eq!(h[0].summary, "Create project");
        assert_eq!(h[0].author, "VibeFlow");

        std::fs::create_dir(d.join("runs")).unwrap();
        std::fs::write(d.join("runs/run.toml"), "loss = 1.0\n").unwrap();
        let second = commit(d, &[Path::new("runs/run.toml")], "Fine-tune\n\nbody").unwrap();
        tag(d, "v1", &second).unwrap();
        let h = history(d).unwrap();
        let got: Vec<_> = h.iter().map(|c| (c.summary.as_str(), c.tags.clone())).collect();
        assert_eq!(got, vec![("Fine-tune", vec!["v1".to_string()]), ("Create project", vec![])]);
        assert_eq!(h[0].message, "Fine-tune\n\nbody");
    }

    #[test]
    fn commit_refuses_paths_outside_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "").unwrap();
        init(dir.path(), "init").unwrap();
        let err = commit(dir.path(), &[Path::new("../escape")], "x").unwrap_err();
        assert!(matches!(err, Error::Outside(_)), "{err}");
    }

    #[test]
    fn undo_restore_and_file_versions() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("vibeflow.toml"), "x = 1\n").unwrap();
        let root = init(d, "init").unwrap();
        std::fs::create_dir(d.join("data")).unwrap();
        std::fs::write(d.join("data/a.toml"), "v = 1\n").unwrap();
        let c1 = commit(d, &[Path::new("data/a.toml")], "v1").unwrap();
        std::fs::write(d.join("data/a.toml"), "v = 2\n").unwrap();
        std::fs::write(d.join("data/b.toml"), "b\n").unwrap();
        let c2 = commit(d, &[Path::new("data/a.toml"), Path::new("data/b.toml")], "v2").unwrap();
        assert_eq!(head(d).unwrap(), c2);
        let got: Vec<_> = file_versions(d, &["data/*.toml"])
            .unwrap()
            .into_iter()
            .map(|v| (v.commit, v.path, String::from_utf8(v.content).unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                (c1.clone(), "data/a.toml".into(), "v = 1\n".into()),
                (c2.clone(), "data/a.toml".into(), "v = 2\n".into()),
                (c2.clone(), "data/b.toml".into(), "b\n".into()),
            ]
        );
        // Undo: HEAD and the files go back; a commit that is not HEAD is left alone.
        assert!(!undo(d, &root).unwrap());
        assert!(undo(d, &c2).unwrap());
        assert_eq!(head(d).unwrap(), c1);
        assert_eq!(std::fs::read_to_string(d.join("data/a.toml")).unwrap(), "v = 1\n");
        assert!(!d.join("data/b.toml").exists());
        // Leftovers of a dead writer: found, then removed or restored.
        std::fs::write(d.join("data/a.toml"), "half").unwrap();
        std::fs::write(d.join("data/.c.tmp"), "x").unwrap();
        std::fs::write(d.join("other.txt"), "not in data/").unwrap();
        assert_eq!(dirty(d, "data").unwrap(), ["data/.c.tmp", "data/a.toml"]);
        assert_eq!(restore(d, "data").unwrap(), ["data/.c.tmp", "data/a.toml"]);
        assert!(dirty(d, "data").unwrap().is_empty());
        assert_eq!(std::fs::read_to_string(d.join("data/a.toml")).unwrap(), "v = 1\n");
        assert!(d.join("other.txt").exists());
        std::fs::write(d.join(".git/index.lock"), "").unwrap();
        assert_eq!(remove_stale_locks(d).unwrap(), [".git/index.lock"]);
        // The index a dead writer staged does not ride along in the next commit.
        let repo = Repository::open(d).unwrap();
        let mut index = repo.index().unwrap();
        index.add_path(Path::new("other.txt")).unwrap();
        index.write().unwrap();
        std::fs::write(d.join("data/a.toml"), "v = 3\n").unwrap();
        commit(d, &[Path::new("data/a.toml")], "v3").unwrap();
        let tree = repo.head().unwrap().peel_to_tree().unwrap();
        assert!(tree.get_path(Path::new("other.txt")).is_err());
    }

    #[test]
    fn plain_folder_is_not_a_repository() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_repository(dir.path()));
    }

    #[test]
    fn resolve_read_and_diff_between_versions() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("data")).unwrap();
        std::fs::write(d.join("data/a.toml"), "version = 1\nrows = 10\n").unwrap();
        let first = init(d, "first").unwrap();
        tag(d, "v1", &first).unwrap();
        std::fs::write(d.join("data/a.toml"), "version = 2\nrows = 10\n").unwrap();
        std::fs::write(d.join("data/b.toml"), "x = 1\n").unwrap();
        let second =
            commit(d, &[Path::new("data/a.toml"), Path::new("data/b.toml")], "second").unwrap();
        assert_eq!(resolve(d, "v1").unwrap().as_deref(), Some(first.as_str()));
        assert_eq!(resolve(d, &second[..8]).unwrap().as_deref(), Some(second.as_str()));
        assert_eq!(resolve(d, "v9").unwrap(), None);
        assert_eq!(resolve(d, "HEAD~1").unwrap(), None, "no revision syntax");
        assert_eq!(
            read_at(d, &first, "data/a.toml").unwrap().unwrap(),
            b"version = 1\nrows = 10\n"
        );
        assert_eq!(read_at(d, &first, "data/b.toml").unwrap(), None);
        assert_eq!(files_at(d, &second, "data").unwrap(), ["data/a.toml", "data/b.toml"]);
        let changes = diff(d, &first, &second, &["data/*.toml"]).unwrap();
        let got: Vec<_> = changes.iter().map(|c| (c.path.as_str(), c.status)).collect();
        assert_eq!(got, [("data/a.toml", "modified"), ("data/b.toml", "added")]);
        assert!(
            changes[0].patch.contains("-version = 1\n+version = 2\n rows = 10\n"),
            "{}",
            changes[0].patch
        );
        assert!(changes[0].patch.starts_with("@@ "), "{}", changes[0].patch);
    }
}
