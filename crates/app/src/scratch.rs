//! Temporary files: each process writes its own under `tmp/<session>/`, beside the lock
//! `tmp/<session>.lock` it holds while it lives. Opening a home sweeps away every session whose
//! lock is free (its process ended, however it ended), so what a killed import was writing
//! never stays to fill the disk.
//!
//! A lock file is locked before it gets its name (made as `<session>.new`, locked, renamed),
//! and the folder is made after: so a `.lock` file that can be locked is a dead session's, and
//! a folder without its `.lock` beside it is one too.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

/// This process's folder for temporary files, removed when dropped.
#[derive(Debug)]
pub(crate) struct Scratch {
    dir: PathBuf,
    next: AtomicU64,
    /// Locked while this process lives.
    _lock: std::fs::File,
}

impl Scratch {
    /// Creates a session folder under `root` (the home's `tmp/`).
    pub(crate) fn new(root: &Path) -> Result<Scratch> {
        std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for attempt in 0..3 {
            let name = format!("{}-{nanos:x}-{attempt}", std::process::id());
            let born = root.join(format!("{name}.new"));
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&born)
                .map_err(|e| Error::io(&born, e))?;
            file.try_lock().map_err(|e| Error::io(&born, std::io::Error::other(e.to_string())))?;
            match std::fs::rename(&born, root.join(format!("{name}.lock"))) {
                Ok(()) => {}
                // A sweeper took the unnamed lock for a dead one's: make another.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&born, e)),
            }
            let dir = root.join(&name);
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            return Ok(Scratch { dir, next: AtomicU64::new(0), _lock: file });
        }
        Err(Error::InvalidInput(format!(
            "cannot make a temporary folder in {}: something keeps removing it",
            root.display()
        )))
    }

    /// A path in the session folder that nothing else uses, ending in `suffix`.
    pub(crate) fn path(&self, suffix: &str) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("{n}-{suffix}"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        // The lock file goes with the folder: `_lock` is held until after this body, so a
        // sweeper meanwhile sees a held lock and leaves both alone.
        let mut lock = self.dir.clone().into_os_string();
        lock.push(".lock");
        let _ = std::fs::remove_file(lock);
    }
}

/// Removes the sessions under `root` whose process has ended, and the folders or files there
/// that belong to no session (left by older versions); returns what it removed, relative to
/// `root`'s parent.
pub(crate) fn sweep(root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root) else { return Vec::new() };
    let mut names: Vec<String> =
        entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    let mut removed = Vec::new();
    let rel = |name: &str| format!("tmp/{name}");
    for name in &names {
        let path = root.join(name);
        if let Some(session) = name.strip_suffix(".lock") {
            // A free lock: its process is gone.
            if let Some(lock) = lock_existing(&path) {
                let dir = root.join(session);
                if dir.exists() && std::fs::remove_dir_all(&dir).is_ok() {
                    removed.push(rel(session));
                }
                let _ = std::fs::remove_file(&path);
                drop(lock);
            }
            continue;
        }
        if name.ends_with(".new") {
            // A lock being born is locked by its maker; a free one's maker died.
            if let Some(lock) = lock_existing(&path) {
                let _ = std::fs::remove_file(&path);
                drop(lock);
            }
            continue;
        }
        // A folder is made after its lock is named: no lock now (asked again, not from the
        // listing, which may have missed a new one) means its process is gone, or that it
        // was left by an older version.
        if root.join(format!("{name}.lock")).exists() {
            continue;
        }
        let gone = if path.is_dir() {
            std::fs::remove_dir_all(&path).is_ok()
        } else {
            std::fs::remove_file(&path).is_ok()
        };
        if gone {
            removed.push(rel(name));
        }
    }
    removed
}

/// Locks an existing lock file if nobody holds it (never creates one: a sweeper must not
/// bring back the lock file of a session that just ended).
fn lock_existing(path: &Path) -> Option<std::fs::File> {
    let file = std::fs::OpenOptions::new().read(true).write(true).open(path).ok()?;
    file.try_lock().ok()?;
    Some(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_removes_dead_sessions_and_strays_but_not_live_ones() {
        let home = tempfile::tempdir().unwrap();
        let root = home.path().join("tmp");
        let live = Scratch::new(&root).unwrap();
        std::fs::write(live.path("a.jsonl"), "x").unwrap();
        // A dead session: a free lock file beside its folder.
        std::fs::create_dir_all(root.join("1-dead")).unwrap();
        std::fs::write(root.join("1-dead/0-big.jsonl"), "x").unwrap();
        std::fs::write(root.join("1-dead.lock"), "").unwrap();
        // Left by an older version: no lock at all.
        std::fs::create_dir_all(root.join("sample123")).unwrap();
        // A process killed after removing its folder, and one killed before naming its lock.
        std::fs::write(root.join("2-gone.lock"), "").unwrap();
        std::fs::write(root.join("3-unborn.new"), "").unwrap();
        let removed = sweep(&root);
        assert_eq!(removed, ["tmp/1-dead", "tmp/sample123"]);
        assert!(live.dir.exists() && std::fs::read_dir(&live.dir).unwrap().count() == 1);
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 2, "the live folder and its lock");
        let dir = live.dir.clone();
        drop(live);
        assert!(!dir.exists());
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
    }
}
