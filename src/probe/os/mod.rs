//! The one interface to the operating system's process tables, in the manner of monit's
//! `sysdep_*.c`: one file per platform, and this module is the only place that picks one.
//! Everything above this module is platform-free.

use std::path::PathBuf;
use std::time::SystemTime;

#[cfg(target_os = "linux")]
pub(crate) mod linux;
#[cfg(target_os = "linux")]
use linux as platform;
#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
use macos as platform;

// Pure parts of the macOS layer, compiled everywhere so that they are tested on Linux.
pub mod darwin_fd;
pub mod kinfo;
pub mod procargs;

/// Why a reading of another process failed. A permission error is never turned into
/// "0 FDs" or "no process": callers must be able to tell the three apart.
#[derive(Debug, thiserror::Error)]
pub enum OsError {
    #[error("no process with PID {0}")]
    NoSuchProcess(u32),
    #[error(
        "permission denied reading PID {pid} ({what}); run as the same user as the server, or as root"
    )]
    PermissionDenied { pid: u32, what: &'static str },
    #[error("cannot read {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse {what}: {detail}")]
    Parse { what: String, detail: String },
    /// The kernel shows the process's arguments but withholds its environment (macOS,
    /// for code-signing-restricted programs; root does not help). Unknown, never empty:
    /// a supervisor may be hiding behind it, and a replay would start the server bare.
    #[error(
        "the kernel withholds the environment of PID {pid} (macOS does so for restricted \
         programs, whoever asks), so it is unknown, not empty"
    )]
    EnvironmentHidden { pid: u32 },
}

/// What identifies one process across time: PIDs are reused, start times are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub pid: u32,
    /// Platform-specific start stamp (clock ticks since boot on Linux); compare for
    /// equality only.
    pub start_key: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcState {
    Running,
    /// Stopped by a signal (SIGSTOP, SIGTSTP) or traced: it acts on no signal but
    /// SIGKILL until continued (`src/act/signal.rs`, `treatment`).
    Stopped,
    /// In uninterruptible sleep (Linux `D`): it acts on no signal until the kernel
    /// wait ends; SIGKILL too, unless the wait is a killable one. macOS does not tell
    /// this apart from an ordinary sleep (`p_stat` has SSLEEP for both).
    Uninterruptible,
    /// Exited but not reaped: holds no FDs and no port; as good as dead to us.
    Zombie,
    Other,
}

impl ProcState {
    /// The word for the report's `target.state` and the incident's `process.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcState::Running => "running",
            ProcState::Stopped => "stopped",
            ProcState::Uninterruptible => "uninterruptible",
            ProcState::Zombie => "zombie",
            ProcState::Other => "other",
        }
    }

    /// For the operator, with the letter `ps` shows: "stopped (T)".
    pub fn label(self) -> &'static str {
        match self {
            ProcState::Running => "running",
            ProcState::Stopped => "stopped (T)",
            ProcState::Uninterruptible => "in uninterruptible sleep (D)",
            ProcState::Zombie => "a zombie (Z)",
            ProcState::Other => "in another state",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProcessInfo {
    pub identity: Identity,
    pub ppid: u32,
    pub uid: Option<u32>,
    /// The group it runs as: with `uid`, whom a replacement is started as.
    pub gid: Option<u32>,
    /// Wall-clock start, for ages and the pidfile mtime test (about 1 s precision on Linux).
    pub start_time: SystemTime,
    pub argv: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub rss_bytes: Option<u64>,
    pub state: ProcState,
}

impl ProcessInfo {
    pub fn pid(&self) -> u32 {
        self.identity.pid
    }
    pub fn command_line(&self) -> String {
        self.argv.join(" ")
    }
}

/// One open file descriptor and what it points at, as the kernel names it
/// (`/path`, `/path (deleted)`, `socket:[123]`, `pipe:[456]`, `anon_inode:[eventfd]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdEntry {
    pub fd: i32,
    /// The FD's link text (`readlink /proc/PID/fd/N` on Linux; the same forms on
    /// macOS). "Target" means the process acted on.
    pub link: String,
}

/// What one FD points at, from the name the kernel gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FdKind {
    File,
    Socket,
    Pipe,
    Other,
}

impl FdKind {
    pub fn of(link: &str) -> FdKind {
        if link.starts_with('/') {
            FdKind::File
        } else if link.starts_with("socket:") {
            FdKind::Socket
        } else if link.starts_with("pipe:") {
            FdKind::Pipe
        } else {
            FdKind::Other
        }
    }
}

/// The text between the brackets of an FD link `socket:[…]`: the inode where the
/// platform names sockets by inode (Linux: `socket:[12345]`), the description where it
/// describes them (macOS, or after the census: `socket:[tcp 127.0.0.1:8787 LISTEN]`).
/// `None` for any other link.
pub fn socket_text(link: &str) -> Option<&str> {
    link.strip_prefix("socket:[")?.strip_suffix(']')
}

/// `socket:[12345]` → 12345; `None` for a described socket or any other link.
pub fn socket_inode(link: &str) -> Option<u64> {
    socket_text(link)?.parse().ok()
}

/// The target's `RLIMIT_NOFILE`; `None` fields mean unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FdLimit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

impl FdLimit {
    /// `soft 4096 / hard unlimited`.
    pub fn describe(&self) -> String {
        let show = |v: Option<u64>| v.map_or("unlimited".to_string(), |v| v.to_string());
        format!("soft {} / hard {}", show(self.soft), show(self.hard))
    }
}

/// Who LISTENs on a TCP port, as far as this user can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortOwner {
    /// Nothing listens on the port.
    Free,
    /// These processes hold the listening socket (more than one after a fork that
    /// inherited it); the first is the one found first among the candidates, if any.
    Held(Vec<u32>),
    /// Something listens, but no process we can read holds it (another user's
    /// process, or another network namespace's). Never act on such a port.
    Hidden,
    /// These processes hold some of the listening sockets, but another listening socket
    /// of the port is held by no process we can read (another user's, beside the
    /// server on another address). Never act on such a port either. Only where sockets
    /// have an identity to tell them apart (Linux).
    PartlyHidden(Vec<u32>),
}

pub fn process_info(pid: u32) -> Result<ProcessInfo, OsError> {
    platform::process_info(pid)
}

/// The process's environment, for replaying it on restart and for spotting its
/// supervisor (`XPC_SERVICE_NAME`, `SUPERVISOR_PROCESS_NAME`, `INVOCATION_ID`).
pub fn process_environ(pid: u32) -> Result<Vec<(String, String)>, OsError> {
    platform::process_environ(pid)
}

/// The file the process executes (what the kernel recorded at exec: `/proc/PID/exe`,
/// or macOS's exec path), where `argv[0]` may be a bare name: runsvdir starts `runsv`
/// by name. For finding a supervisor's tool beside the supervisor (`sv` beside `runsv`).
pub fn executable(pid: u32) -> Result<PathBuf, OsError> {
    platform::executable(pid)
}

/// The process's identity now, or `None` if it no longer exists (or is a zombie).
pub fn identity(pid: u32) -> Result<Option<Identity>, OsError> {
    platform::identity(pid)
}

/// The user this process runs as.
pub fn own_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// The effective group and the supplementary groups this process runs with: what a
/// process started by a watchdog that is not root gets.
pub fn own_groups() -> (u32, Vec<u32>) {
    // SAFETY: getegid has no preconditions and cannot fail.
    let egid = unsafe { libc::getegid() };
    // SAFETY: with a size of 0, getgroups only returns the count and writes nothing.
    let count = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let mut groups: Vec<libc::gid_t> = vec![0; usize::try_from(count).unwrap_or(0)];
    // SAFETY: `groups` has room for `count` entries, the size passed; the kernel writes
    // at most that many and returns how many it wrote (or -1 if they grew meanwhile).
    let got = unsafe { libc::getgroups(count.max(0), groups.as_mut_ptr()) };
    groups.truncate(usize::try_from(got).unwrap_or(0));
    (egid, groups)
}

/// The supplementary groups `pid` runs with (see `probe::restart_path`: a replacement
/// started by root gets them back). On macOS the kernel reports at most 16.
pub fn groups(pid: u32) -> Result<Vec<u32>, OsError> {
    platform::groups(pid)
}

/// What became of a signal sent by [`signal_if_same`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// The process had exited, or its PID now names another process: nothing was sent.
    Gone,
}

#[derive(Debug, thiserror::Error)]
pub enum SignalFault {
    #[error(
        "cannot tell whether PID {pid} is still the same process ({source}); not signalling it"
    )]
    Unverifiable {
        pid: u32,
        #[source]
        source: OsError,
    },
    #[error("signal {signal} to PID {pid} failed: {source}")]
    Failed {
        pid: u32,
        signal: i32,
        #[source]
        source: std::io::Error,
    },
}

/// Sends `signal` to the process `who` names, and to no other: on Linux through a
/// pidfd opened before the identity is checked, so that a PID reused after the check
/// cannot receive it; on macOS (no pidfd) right after re-checking the identity, which
/// leaves the smallest window the platform allows.
pub fn signal_if_same(who: Identity, signal: i32) -> Result<Delivery, SignalFault> {
    platform::signal_if_same(who, signal)
}

/// Whether `who`'s PID still names that very process (same start time); an identity
/// that cannot be read is an error, never taken for "gone" or "the same".
pub fn still_same(who: Identity) -> Result<bool, SignalFault> {
    match identity(who.pid) {
        Ok(now) => Ok(now == Some(who)),
        Err(source) => Err(SignalFault::Unverifiable {
            pid: who.pid,
            source,
        }),
    }
}

/// `who`'s PID as `kill(2)` and `pidfd_open(2)` take it; the error a failed `signal`
/// reports otherwise.
fn signal_pid(who: Identity, signal: i32) -> Result<libc::pid_t, SignalFault> {
    libc::pid_t::try_from(who.pid).map_err(|_| SignalFault::Failed {
        pid: who.pid,
        signal,
        source: std::io::Error::other("PID out of range"),
    })
}

/// The identity re-checked, then `kill(2)`: macOS, and Linux kernels older than
/// `pidfd_open` (5.3).
fn kill_after_recheck(who: Identity, signal: i32) -> Result<Delivery, SignalFault> {
    if !still_same(who)? {
        return Ok(Delivery::Gone);
    }
    let pid = signal_pid(who, signal)?;
    // SAFETY: kill(2) takes plain integers and has no memory effects.
    if unsafe { libc::kill(pid, signal) } == 0 {
        return Ok(Delivery::Sent);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        return Ok(Delivery::Gone);
    }
    Err(SignalFault::Failed {
        pid: who.pid,
        signal,
        source: err,
    })
}

/// What kind of file an FD's path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Regular,
    Directory,
    Fifo,
    Device,
    Other,
}

impl FileKind {
    pub fn of(file_type: std::fs::FileType) -> FileKind {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_dir() {
            FileKind::Directory
        } else if file_type.is_fifo() {
            FileKind::Fifo
        } else if file_type.is_char_device() || file_type.is_block_device() {
            FileKind::Device
        } else if file_type.is_file() {
            FileKind::Regular
        } else {
            FileKind::Other
        }
    }
}

/// Descriptions of the process's sockets by inode (`tcp 127.0.0.1:8787 LISTEN`), where
/// the platform names sockets by inode; empty where the FD targets already describe
/// them.
pub fn socket_descriptions(pid: u32) -> Result<std::collections::HashMap<u64, String>, OsError> {
    platform::socket_descriptions(pid)
}

/// The kind of file FD `fd` (whose target is `path`) of `pid` is; `None` if unknown.
pub fn fd_file_kind(pid: u32, fd: i32, path: &str) -> Option<FileKind> {
    platform::fd_file_kind(pid, fd, path)
}

/// The process's control-group membership as the kernel prints it
/// (`/proc/PID/cgroup`), which names its systemd unit; `None` where the platform has
/// no cgroups.
pub fn cgroup(pid: u32) -> Result<Option<String>, OsError> {
    platform::cgroup(pid)
}

/// The parent's PID: cheaper than `process_info` when walking up a process tree.
pub fn parent_pid(pid: u32) -> Result<u32, OsError> {
    platform::parent_pid(pid)
}

/// Whether launchd is PID 1 here (macOS), so that any process may be a launchd job
/// whatever its environment says: auto-detection then asks launchd's own listings
/// for the target's PID when its environment names no job or cannot be read.
pub const LAUNCHD_IS_INIT: bool = cfg!(target_os = "macos");

/// Bounds every walk up a process tree: real trees are a few dozen deep at most.
pub const MAX_TREE_DEPTH: usize = 256;

/// Whether `pid` is `ancestor` or one of its descendants. A process that cannot be read
/// on the way up ends the walk with no: only the kernel's parent links count.
pub fn descends_from(pid: u32, ancestor: u32) -> bool {
    let mut current = pid;
    for _ in 0..MAX_TREE_DEPTH {
        if current == ancestor {
            return true;
        }
        if current <= 1 {
            return false;
        }
        match parent_pid(current) {
            Ok(parent) => current = parent,
            Err(_) => return false,
        }
    }
    false
}

/// The nearest of `from` and its ancestors (below PID 1) for which `is` holds, read
/// whole; `None` when none does or one on the way cannot be read.
pub fn nearest_ancestor(from: u32, is: impl Fn(&ProcessInfo) -> bool) -> Option<ProcessInfo> {
    let mut pid = from;
    for _ in 0..MAX_TREE_DEPTH {
        if pid <= 1 {
            return None;
        }
        let info = process_info(pid).ok()?;
        if is(&info) {
            return Some(info);
        }
        pid = info.ppid;
    }
    None
}

pub fn list_fds(pid: u32) -> Result<Vec<FdEntry>, OsError> {
    platform::list_fds(pid)
}

pub fn fd_limit(pid: u32) -> Result<Option<FdLimit>, OsError> {
    platform::fd_limit(pid)
}

/// Every PID on the system (that this user can list).
pub fn all_pids() -> Result<Vec<u32>, OsError> {
    platform::all_pids()
}

/// Whether anything LISTENs on `port` (TCP, IPv4 or IPv6) and who holds it. The
/// `candidates` are searched first (pidfile PID, last known PID) so that the full scan
/// of every process's FDs is the last resort.
pub fn port_owner(port: u16, candidates: &[u32]) -> Result<PortOwner, OsError> {
    platform::port_owner(port, candidates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_inode_from_link() {
        assert_eq!(socket_inode("socket:[123456]"), Some(123_456));
        assert_eq!(socket_inode("pipe:[123456]"), None);
        assert_eq!(socket_inode("/tmp/socket:[1]"), None);
        assert_eq!(socket_inode("socket:[x]"), None);
    }

    #[test]
    fn socket_text_of_a_described_socket() {
        let described = "socket:[tcp 127.0.0.1:8787 LISTEN]";
        assert_eq!(socket_text(described), Some("tcp 127.0.0.1:8787 LISTEN"));
        assert_eq!(socket_inode(described), None);
        assert_eq!(socket_text("socket:[12345]"), Some("12345"));
        assert_eq!(socket_text("pipe:[12345]"), None);
    }

    /// What the kernel recorded at exec, whatever argv says: a child started as `sh`
    /// (a bare name) executes /bin/sh or a link to it; a gone PID is no process.
    #[test]
    fn executable_is_the_file_executed() {
        let own = executable(std::process::id()).unwrap();
        assert_eq!(
            std::fs::canonicalize(&own).unwrap(),
            std::fs::canonicalize(std::env::current_exe().unwrap()).unwrap()
        );
        let mut child = std::process::Command::new("sh")
            .args(["-c", "read _"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let exe = executable(child.id());
        drop(child.stdin.take());
        child.wait().unwrap();
        let exe = exe.unwrap();
        assert!(exe.is_absolute(), "{}", exe.display());
        assert!(
            std::fs::canonicalize(&exe).unwrap() == std::fs::canonicalize("/bin/sh").unwrap()
                || exe
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().contains("sh")),
            "{}",
            exe.display()
        );
        assert!(
            executable(child.id()).is_err(),
            "a reaped child has no executable"
        );
    }
}
