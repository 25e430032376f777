//! The run lock (docs/DESIGN.md, "State between runs"): one cycle at a time per state
//! directory. The kernel drops an `flock` when its holder dies, even by SIGKILL, so a
//! crashed run never wedges the next one.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use crate::safe_fs::{self, SafeFsError};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another watchdog run holds {0}; skipping this run")]
    Held(PathBuf),
    #[error("cannot open the lock: {0}")]
    Open(#[source] SafeFsError),
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Held until dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    /// What was at the lock's path instead of a regular file (a symlink, a FIFO) and
    /// where it was moved, for the log.
    pub moved_aside: Option<PathBuf>,
}

/// Locks `state_dir/lock`. The caller has checked that only this user can change
/// `state_dir` (`safe_fs::ensure_private_dir`); the lock is opened without following a
/// symlink and without blocking on a FIFO (docs/SECURITY.md), and anything else found
/// there is moved aside rather than written through.
pub fn acquire(state_dir: &Path) -> Result<RunLock, LockError> {
    let path = state_dir.join("lock");
    let (file, moved_aside) =
        safe_fs::open_append_replacing(&path, 0o600).map_err(LockError::Open)?;
    match file.try_lock() {
        Ok(()) => Ok(RunLock {
            _file: file,
            moved_aside,
        }),
        Err(TryLockError::WouldBlock) => Err(LockError::Held(path)),
        Err(TryLockError::Error(source)) => Err(LockError::Io { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        safe_fs::ensure_private_dir(&state).unwrap();
        let first = acquire(&state).expect("first lock");
        assert!(matches!(acquire(&state), Err(LockError::Held(_))));
        drop(first);
        acquire(&state).expect("free again");
    }

    #[test]
    fn a_planted_link_is_moved_aside_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let state = dir.path().join("state");
        safe_fs::ensure_private_dir(&state).unwrap();
        std::os::unix::fs::symlink(&victim, state.join("lock")).unwrap();
        let lock = acquire(&state).expect("lock");
        assert!(lock.moved_aside.is_some());
        assert!(
            std::fs::symlink_metadata(state.join("lock"))
                .unwrap()
                .is_file()
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }
}
