//! Locks that hold across processes (the CLI, the app, a server), on files under the home's
//! `locks/` folder (`std::fs::File::lock`: `flock` on Unix, `LockFileEx` on Windows).
//!
//! The operating system releases a lock when its process dies, however it dies, so a lock that
//! can be taken also proves that nobody who held it is still at work: that is how a dead run and
//! a dead process's temporary files are told apart from live ones. Lock files are never deleted:
//! a process waiting on a deleted file's lock would hold a lock nobody else can see.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// An exclusive lock, released when dropped (or when the process ends).
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    /// Takes the lock at `path`, waiting for its holder to let go; `on_wait` is called once
    /// before waiting, when someone else holds it.
    pub(crate) fn acquire(path: &Path, on_wait: &dyn Fn()) -> Result<FileLock> {
        let file = open(path)?;
        match file.try_lock() {
            Ok(()) => return Ok(FileLock { _file: file }),
            Err(TryLockError::WouldBlock) => on_wait(),
            Err(TryLockError::Error(e)) => return Err(Error::io(path, e)),
        }
        file.lock().map_err(|e| Error::io(path, e))?;
        Ok(FileLock { _file: file })
    }

    /// Takes the lock at `path` if nobody holds it.
    pub(crate) fn try_acquire(path: &Path) -> Result<Option<FileLock>> {
        let file = open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(FileLock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(Error::io(path, e)),
        }
    }
}

fn open(path: &Path) -> Result<File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

/// Where the locks of a home live.
pub(crate) fn dir(home: &Path) -> PathBuf {
    home.join("locks")
}

/// The lock every change to project `slug` takes (one writer per project).
pub(crate) fn project(home: &Path, slug: &str) -> PathBuf {
    dir(home).join(format!("{slug}.lock"))
}

/// The lock held from placing content objects to indexing the commit that refers to them.
pub(crate) fn objects(home: &Path) -> PathBuf {
    dir(home).join("objects.lock")
}

/// The lock a background job's thread holds while it runs (job ids have no path separators).
pub(crate) fn job(home: &Path, id: &str) -> PathBuf {
    dir(home).join(format!("job.{id}.lock"))
}

/// The lock a run's process holds while it trains (slugs and run ids have no `.`).
pub(crate) fn run(home: &Path, slug: &str, id: &str) -> PathBuf {
    dir(home).join(format!("{slug}.{id}.lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_not_taken_twice_and_is_free_once_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locks/p.lock");
        let held = FileLock::acquire(&path, &|| panic!("nobody holds it")).unwrap();
        // A second handle, as another process would open it.
        assert!(FileLock::try_acquire(&path).unwrap().is_none());
        drop(held);
        assert!(FileLock::try_acquire(&path).unwrap().is_some());
    }

    #[test]
    fn acquire_waits_for_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.lock");
        let held = FileLock::acquire(&path, &|| {}).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        let waiter = std::thread::spawn(move || {
            let waited = std::sync::atomic::AtomicBool::new(false);
            let lock =
                FileLock::acquire(&p, &|| waited.store(true, std::sync::atomic::Ordering::SeqCst));
            tx.send(()).unwrap();
            (lock.is_ok(), waited.into_inner())
        });
        // The waiter cannot finish while the lock is held.
        assert!(rx.recv_timeout(std::time::Duration::from_millis(200)).is_err());
        drop(held);
        assert_eq!(waiter.join().unwrap(), (true, true));
    }
}
