//! The run lock (SPEC §7): one cycle at a time per state directory. The kernel drops
//! an `flock` when its holder dies, even by SIGKILL, so a crashed run never wedges the
//! next one.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another watchdog run holds {0}; skipping this run")]
    Held(PathBuf),
    #[error("cannot create the state directory or lock {path}: {source}")]
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
}

pub fn acquire(state_dir: &Path) -> Result<RunLock, LockError> {
    let path = state_dir.join("lock");
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    fs::create_dir_all(state_dir).map_err(io)?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(RunLock { _file: file }),
        Err(TryLockError::WouldBlock) => Err(LockError::Held(path)),
        Err(TryLockError::Error(e)) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let first = acquire(&state).expect("first lock");
        assert!(matches!(acquire(&state), Err(LockError::Held(_))));
        drop(first);
        acquire(&state).expect("free again");
    }
}
