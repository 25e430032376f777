//! Identifying another process's open files without resolving their paths: duplicate
//! each FD into this process with `pidfd_getfd(2)` (Linux 5.6), `fstat` it, close the
//! copy. That costs about half a `readlink` of `/proc/PID/fd/N`, which walks the path
//! and builds the name for every FD; a leak holds thousands of FDs on a handful of
//! files, so the names are then read once per file. The copy only adds a reference to
//! the target's open file for a moment: no lock, offset or state of it changes.
//!
//! It needs more than reading `/proc/PID/fd` does (ptrace attach rights: same user
//! and, under Yama's `ptrace_scope` 1, CAP_SYS_PTRACE); callers fall back to readlink
//! when it is refused.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// What an FD refers to: the same file has the same device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
}

impl FileId {
    pub fn is_socket(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFSOCK
    }
}

pub struct Pidfd(OwnedFd);

impl Pidfd {
    pub fn open(pid: u32) -> io::Result<Pidfd> {
        let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
        // SAFETY: pidfd_open takes a PID and flags and returns a new FD or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let fd = i32::try_from(fd).map_err(io::Error::other)?;
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        Ok(Pidfd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The identity of the target's FD `fd`; `None` when it is not open (any more).
    pub fn identify(&self, fd: i32) -> io::Result<Option<FileId>> {
        // SAFETY: pidfd_getfd takes our pidfd, the target's FD number and flags; it
        // returns a new FD of ours or -1.
        let copy = unsafe { libc::syscall(libc::SYS_pidfd_getfd, self.0.as_raw_fd(), fd, 0) };
        let copy = i32::try_from(copy).map_err(io::Error::other)?;
        if copy < 0 {
            let err = io::Error::last_os_error();
            return if err.raw_os_error() == Some(libc::EBADF) {
                Ok(None)
            } else {
                Err(err)
            };
        }
        // SAFETY: `copy` is a new FD of ours, closed when `owned` drops.
        let owned = unsafe { OwnedFd::from_raw_fd(copy) };
        // SAFETY: an all-zero stat is a valid out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat writes one stat through a pointer to ours.
        if unsafe { libc::fstat(owned.as_raw_fd(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Some(FileId {
            dev: st.st_dev,
            ino: st.st_ino,
            mode: st.st_mode,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_our_own_fds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        let a = std::fs::File::create(&path).unwrap();
        let b = std::fs::File::open(&path).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let pidfd = Pidfd::open(std::process::id()).unwrap();
        let id_a = pidfd.identify(a.as_raw_fd()).unwrap().unwrap();
        let id_b = pidfd.identify(b.as_raw_fd()).unwrap().unwrap();
        assert_eq!(id_a, id_b, "two FDs on one file share an identity");
        let socket = pidfd.identify(listener.as_raw_fd()).unwrap().unwrap();
        assert!(socket.is_socket());
        assert!(!id_a.is_socket());
        assert_eq!(pidfd.identify(1_000_000).unwrap(), None, "not open");
    }
}
