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
pub fn commit(dir: &Path, paths: &[&Path], message: &str) -> Result<String> {
    let repo = Repository::open(dir)?;
    let mut index = repo.index()?;
    for p in paths {
        if p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            return Err(Error::Outside(p.display().to_string()));
        }
        if dir.join(p).exists() {
            index.add_path(p)?;
        } else {
            index.remove_path(p)?;
        }
    }
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let parent = repo.head()?.peel_to_commit()?;
    let sig = signature()?;
    let id = repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &[&parent])?;
    Ok(id.to_string())
}

/// Tags commit `id` (lightweight tag `name`).
pub fn tag(dir: &Path, name: &str, id: &str) -> Result<()> {
    let repo = Repository::open(dir)?;
    let obj = repo.revparse_single(id)?;
    repo.tag_lightweight(name, &obj, false)?;
    Ok(())
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
    fn plain_folder_is_not_a_repository() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_repository(dir.path()));
    }
}
