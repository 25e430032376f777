//! Linux: everything read from `/proc` (and the listening sockets from netlink).
//!
//! Parsing is split from reading: each `parse_*` function takes the literal text of one
//! `/proc` file, so the odd cases (a `comm` with spaces and parentheses, a TIME_WAIT row)
//! are unit-tested on samples rather than on whatever this machine happens to run.

pub(crate) mod creds;
pub(crate) mod pidfd;
mod signal;
pub(crate) mod sock_diag;
pub(crate) mod sockets;

pub use creds::groups;
pub use signal::signal_if_same;

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{
    FdEntry, FdLimit, FileKind, Identity, OsError, PortOwner, ProcState, ProcessInfo, socket_inode,
};

// ---------------------------------------------------------------------------------------
// Public interface
// ---------------------------------------------------------------------------------------

pub fn process_info(pid: u32) -> Result<ProcessInfo, OsError> {
    let stat = read_stat(pid)?;
    let status = parse_status(&read_text(pid, "status", "status")?);
    let argv = split_nul_separated(&read_bytes(pid, "cmdline", "command line")?);
    let info = ProcessInfo {
        identity: Identity {
            pid,
            start_key: stat.start_ticks,
        },
        ppid: stat.ppid,
        uid: status.uid,
        gid: status.gid,
        start_time: wall_start_time(stat.start_ticks)?,
        argv,
        cwd: read_cwd(pid),
        rss_bytes: status.rss_kib.map(|kib| kib.saturating_mul(1024)),
        state: stat.state,
    };
    // The files above are read one after another; if the PID died and was reused in
    // between, they describe two processes. Re-reading the start stamp catches that.
    match read_stat(pid) {
        Ok(again) if again.start_ticks == stat.start_ticks => Ok(info),
        Ok(_) | Err(OsError::NoSuchProcess(_)) => Err(OsError::NoSuchProcess(pid)),
        Err(e) => Err(e),
    }
}

pub fn process_environ(pid: u32) -> Result<Vec<(String, String)>, OsError> {
    Ok(parse_environ(&read_bytes(pid, "environ", "environment")?))
}

pub fn identity(pid: u32) -> Result<Option<Identity>, OsError> {
    match read_stat(pid) {
        Ok(stat) if stat.state == ProcState::Zombie => Ok(None),
        Ok(stat) => Ok(Some(Identity {
            pid,
            start_key: stat.start_ticks,
        })),
        Err(OsError::NoSuchProcess(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn socket_descriptions(pid: u32) -> Result<HashMap<u64, String>, OsError> {
    Ok(sockets::descriptions(pid))
}

/// The kind of file an FD's path names. Asks about the FD itself through its magic
/// link, so it is right in any mount namespace and for deleted files too; and only
/// what the kernel already has (`statx` with AT_STATX_DONT_SYNC, as in `pidfd`): a
/// plain stat of a file on NFS, SMB or FUSE may ask the file's server, which blocks
/// on a hung mount and is traffic on the target's behalf. The type never changes, so
/// the cached one is the truth.
pub fn fd_file_kind(pid: u32, fd: i32, _path: &str) -> Option<FileKind> {
    let link = proc_path(pid, "fd").join(fd.to_string());
    let mode = pidfd::cached_mode(&link).ok()?;
    Some(kind_of_mode(mode))
}

fn kind_of_mode(mode: u32) -> FileKind {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileKind::Directory,
        libc::S_IFIFO => FileKind::Fifo,
        libc::S_IFCHR | libc::S_IFBLK => FileKind::Device,
        libc::S_IFREG => FileKind::Regular,
        _ => FileKind::Other,
    }
}

pub fn cgroup(pid: u32) -> Result<Option<String>, OsError> {
    read_text(pid, "cgroup", "cgroup").map(Some)
}

pub fn parent_pid(pid: u32) -> Result<u32, OsError> {
    read_stat(pid).map(|stat| stat.ppid)
}

pub fn list_fds(pid: u32) -> Result<Vec<FdEntry>, OsError> {
    let dir = FdDir::open(pid)?;
    // bench/fds_scaling.sh times each way of reading the table side by side: the
    // variable forces one (the safety checks of the copying way still apply).
    let forced = std::env::var("WATCHDOG_FD_STRATEGY").ok();
    let (probe, ident) = match forced.as_deref() {
        Some("list-link") => (Some(false), Some(false)),
        Some("probe-link") => (Some(true), Some(false)),
        Some("list-identity") => (Some(false), Some(true)),
        Some("probe-identity") => (Some(true), Some(true)),
        _ => (None, None),
    };
    let numbers = match probe {
        Some(false) => dir.numbers()?,
        Some(true) => match dir.highest_open().ok().flatten() {
            Some(h) => (0..h + 1).collect(),
            None => dir.numbers()?,
        },
        None => match dense_table(&dir) {
            Some(numbers) => numbers,
            None => dir.numbers()?,
        },
    };
    let by_identity = (ident.unwrap_or(numbers.len() >= BY_IDENTITY_FROM) && may_copy_fds_of(pid))
        .then(|| pidfd::Pidfd::open(pid).ok())
        .flatten()
        .and_then(|handle| targets_by_identity(&dir, &handle, &numbers).ok());
    let mut fds = match by_identity {
        Some(fds) => fds,
        None => in_parallel(&numbers, |part| dir.targets(part))?,
    };
    fds.sort_by_key(|entry| entry.fd);
    Ok(fds)
}

/// Whether copying the target's FDs (`pidfd`) is allowed without a trace, leaves its
/// sockets' cgroup network tags as they are, and cannot block or cause traffic when the
/// copy is closed: closing runs the file system's flush, which on NFS writes back
/// dirty pages and on FUSE asks the daemon (a hung one never answers). So where the
/// target sees any network or FUSE mount, its FDs are read by link instead
/// (`pidfd::has_flushing_mounts`). That costs one read of its mountinfo, a few dozen
/// µs, and is asked only for tables of BY_IDENTITY_FROM FDs or more, where the copy
/// saves about a millisecond per thousand FDs. Unreadable files count as a no.
fn may_copy_fds_of(pid: u32) -> bool {
    let scope = fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").ok();
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    if !pidfd::yama_lets_us_attach(scope.as_deref(), &status) {
        return false;
    }
    match read_text(pid, "mountinfo", "mounts") {
        Ok(mounts) if !pidfd::has_flushing_mounts(&mounts) => {}
        _ => return false,
    }
    let ours = fs::read_to_string("/proc/self/cgroup");
    let theirs = read_text(pid, "cgroup", "cgroup");
    matches!((ours, theirs), (Ok(ours), Ok(theirs)) if pidfd::leaves_socket_tags_alone(&ours, &theirs))
}

/// Every FD number up to the highest open one, when the table is mostly full (a leak
/// fills it from the bottom), so that the directory need not be listed: listing costs
/// the kernel a dentry per open FD (0.85 µs each on the build machine, serial), while
/// trying a number that is not open costs a failed readlink (1.8 µs) or
/// `pidfd_getfd` (0.9 µs). So numbers are probed while the closed ones are at most
/// half as many as the open ones. The open count is the directory's size (Linux 6.2
/// and later); without it, `None`, and the directory is listed. A number that turns
/// out not to be open is skipped by either way of reading the targets.
fn dense_table(dir: &FdDir) -> Option<Vec<i32>> {
    let open = dir.handle.metadata().ok()?.len();
    if open < PROBE_FROM {
        return None;
    }
    let span = dir.highest_open().ok()?? + 1;
    (u64::try_from(span).ok()? * 2 <= open * 3).then(|| (0..span).collect())
}

/// From this many open FDs on, a dense table is probed rather than listed; below it,
/// the binary search for the highest FD costs more than the listing saves.
const PROBE_FROM: u64 = 128;

/// From this many FDs on, they are identified by `pidfd_getfd` + `statx` and named
/// once per file (see `pidfd`); below it, a readlink each is as quick.
const BY_IDENTITY_FROM: usize = 1024;

/// The targets of a large FD table, reading each distinct file's name once (where one
/// name fits all its FDs: see `Pidfd::shares_one_name`). Sockets are named from their
/// inode, as the kernel names them. An FD closed meanwhile is skipped, and any other
/// failure to read a link is an error, as in `FdDir::targets`. An error (permission,
/// an old kernel) makes the caller fall back to a readlink per FD.
fn targets_by_identity(
    dir: &FdDir,
    handle: &pidfd::Pidfd,
    numbers: &[i32],
) -> Result<Vec<FdEntry>, OsError> {
    let identities = in_parallel(numbers, |part| {
        let mut found = Vec::with_capacity(part.len());
        for &fd in part {
            match handle.identify(fd) {
                Ok(Some(id)) => found.push((fd, id)),
                Ok(None) => {}
                Err(e) => return Err(classify(dir.pid, "open files", &dir.path, e)),
            }
        }
        Ok(found)
    })?;
    let mut names: HashMap<pidfd::FileId, String> = HashMap::new();
    let mut buffer = vec![0u8; libc::PATH_MAX as usize];
    let mut fds = Vec::with_capacity(identities.len());
    for (fd, identified) in identities {
        let id = identified.file;
        let target = if !handle.shares_one_name(&identified) {
            dir.target(fd, &mut buffer)?
        } else if let Some(name) = names.get(&id) {
            Some(name.clone())
        } else {
            let name = if id.is_socket() {
                Some(format!("socket:[{}]", id.ino))
            } else {
                // None: closed since it was identified; the next FD on the file names it.
                dir.target(fd, &mut buffer)?
            };
            if let Some(name) = &name {
                names.insert(id, name.clone());
            }
            name
        };
        if let Some(target) = target {
            fds.push(FdEntry { fd, target });
        }
    }
    Ok(fds)
}

/// Runs `work` over `numbers` on every core: each FD costs a fixed amount of kernel
/// work, independent of the others, so a table of tens of thousands is read in
/// parallel. Threads (this one among them) take blocks from a shared counter rather
/// than one half each: the numbers past the last open FD cost less, and a fixed split
/// left one core idle.
/// The results come in no particular order.
fn in_parallel<T: Send>(
    numbers: &[i32],
    work: impl Fn(&[i32]) -> Result<Vec<T>, OsError> + Sync,
) -> Result<Vec<T>, OsError> {
    let workers = usable_cpus()
        .min(MAX_FD_READERS)
        .min(numbers.len() / FDS_PER_READER)
        .max(1);
    if workers == 1 {
        return work(numbers);
    }
    let blocks: Vec<&[i32]> = numbers.chunks(FDS_PER_BLOCK).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let take_blocks = || {
        let mut found = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(block) = blocks.get(i) else {
                return Ok(found);
            };
            found.extend(work(block)?);
        }
    };
    // Helper threads are spawned with a Builder: when none can be started (the process
    // limit is reached, exactly when a thread-leaking server needs a look), this thread
    // takes the blocks itself instead of aborting the run. It takes blocks in any case,
    // so the blocks are read whatever number of helpers started.
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..workers)
            .map_while(|_| {
                std::thread::Builder::new()
                    .name("fd-reader".into())
                    .spawn_scoped(scope, take_blocks)
                    .ok()
            })
            .collect();
        let mut all = Vec::with_capacity(numbers.len());
        all.extend(take_blocks()?);
        for helper in helpers {
            let part = helper.join().unwrap_or_else(|_| {
                Err(OsError::Parse {
                    what: "/proc/PID/fd".into(),
                    detail: "an FD reader thread failed".into(),
                })
            })?;
            all.extend(part);
        }
        Ok(all)
    })
}

/// The CPUs this process may run on (its affinity mask), at least 1. Not
/// `std::thread::available_parallelism`, which also reads the cgroup's CPU quota
/// (`/proc/self/cgroup` and two files under /sys/fs/cgroup, a tenth of the syscalls of
/// a healthy check): under a quota of less than two CPUs the helper thread just shares
/// it, as the blocks are taken from a shared counter.
fn usable_cpus() -> usize {
    // SAFETY: cpu_set_t is a plain bit array; all zero is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live cpu_set_t and its exact size is passed; the kernel writes
    // at most that many bytes into it.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return 1;
    }
    // SAFETY: `set` was filled in by sched_getaffinity above.
    let count = unsafe { libc::CPU_COUNT(&set) };
    usize::try_from(count).unwrap_or(1).max(1)
}

/// Below this many FDs per thread, one thread is faster than starting more. (Two
/// threads on a healthy server's 450 FDs took a `check` from 3.97 to 3.53 ms.)
const FDS_PER_READER: usize = 128;
const MAX_FD_READERS: usize = 4;
/// Small enough that the threads finish together, large enough that taking a block
/// costs nothing next to reading it.
const FDS_PER_BLOCK: usize = 256;

/// `/proc/PID/fd`, held open so that each link is read relative to it (`readlinkat`)
/// instead of resolving `/proc/PID/fd/N` from the root every time: a leaking server
/// has thousands of FDs, and the path walk was most of the cost of reading them.
struct FdDir {
    pid: u32,
    path: std::path::PathBuf,
    handle: fs::File,
}

impl FdDir {
    fn open(pid: u32) -> Result<FdDir, OsError> {
        let path = proc_path(pid, "fd");
        let handle = fs::File::open(&path).map_err(|e| classify(pid, "open files", &path, e))?;
        Ok(FdDir { pid, path, handle })
    }

    /// The open FD numbers, from listing `/proc/PID/fd`: about 0.85 µs per open FD
    /// on the build machine, serial, for the dentry the kernel builds for each.
    fn numbers(&self) -> Result<Vec<i32>, OsError> {
        let wrap = |e| classify(self.pid, "open files", &self.path, e);
        let mut numbers = Vec::new();
        for entry in fs::read_dir(&self.path).map_err(wrap)? {
            if let Some(fd) = parse_fd_name(&entry.map_err(wrap)?.file_name()) {
                numbers.push(fd);
            }
        }
        Ok(numbers)
    }

    /// The highest open FD number; `None` when none is open. A binary search on "is
    /// any FD from k up open?", each step one `getdents64` from position k + 2 (the
    /// kernel numbers the entries by FD after `.` and `..`, and skips closed numbers
    /// in its bitmap), so it costs a few dozen entries, not one per open FD.
    fn highest_open(&self) -> io::Result<Option<i32>> {
        let Some(mut open) = self.first_open_from(0)? else {
            return Ok(None);
        };
        // Invariant: `open` is open, nothing from `closed_from` up is.
        let mut closed_from = i32::MAX;
        while closed_from - open > 1 {
            let middle = open + (closed_from - open) / 2;
            match self.first_open_from(middle)? {
                Some(fd) if fd >= middle => open = fd,
                None => closed_from = middle,
                // Only a kernel that ignored the seek answers below it; without this
                // the search would never end.
                Some(fd) => {
                    return Err(io::Error::other(format!(
                        "/proc/PID/fd listed FD {fd} when asked from {middle}"
                    )));
                }
            }
        }
        Ok(Some(open))
    }

    /// The lowest open FD number from `from` up.
    fn first_open_from(&self, from: i32) -> io::Result<Option<i32>> {
        use std::os::fd::AsRawFd;
        let fd = self.handle.as_raw_fd();
        // SAFETY: lseek on our own open directory FD.
        if unsafe { libc::lseek(fd, i64::from(from) + 2, libc::SEEK_SET) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // Room for one or two entries: each one the kernel returns costs a dentry.
        let mut buffer = [0u64; 8];
        // SAFETY: getdents64 writes at most size_of_val(&buffer) bytes into it.
        let length = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd,
                buffer.as_mut_ptr(),
                std::mem::size_of_val(&buffer),
            )
        };
        let length = usize::try_from(length).map_err(|_| io::Error::last_os_error())?;
        let bytes: Vec<u8> = buffer.iter().flat_map(|word| word.to_ne_bytes()).collect();
        Ok(first_dirent_name(&bytes[..length]).and_then(|name| name.parse().ok()))
    }

    /// The targets of `numbers`; an FD closed since the directory was read is skipped
    /// (it no longer exists, so leaving it out is the truth, not a loss).
    fn targets(&self, numbers: &[i32]) -> Result<Vec<FdEntry>, OsError> {
        let mut buffer = vec![0u8; libc::PATH_MAX as usize];
        let mut fds = Vec::with_capacity(numbers.len());
        for &fd in numbers {
            if let Some(target) = self.target(fd, &mut buffer)? {
                fds.push(FdEntry { fd, target });
            }
        }
        Ok(fds)
    }

    /// The target of `fd`; `None` when it is not open (any more). Any other failure to
    /// read the link is an error: leaving the FD out would undercount the table.
    fn target(&self, fd: i32, buffer: &mut [u8]) -> Result<Option<String>, OsError> {
        match self.target_into(fd, buffer) {
            Ok(target) => Ok(Some(target)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(classify(self.pid, "open files", &self.path, e)),
        }
    }

    fn target_into(&self, fd: i32, buffer: &mut [u8]) -> io::Result<String> {
        use std::os::fd::AsRawFd;
        let name = std::ffi::CString::new(fd.to_string()).map_err(io::Error::other)?;
        // SAFETY: the directory FD is open for the life of `self`, `name` is
        // NUL-terminated, and readlinkat writes at most buffer.len() bytes.
        let length = unsafe {
            libc::readlinkat(
                self.handle.as_raw_fd(),
                name.as_ptr(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
            )
        };
        let length = usize::try_from(length).map_err(|_| io::Error::last_os_error())?;
        Ok(String::from_utf8_lossy(&buffer[..length]).into_owned())
    }
}

pub fn fd_limit(pid: u32) -> Result<Option<FdLimit>, OsError> {
    let text = read_text(pid, "limits", "limits")?;
    parse_open_files_limit(&text)
        .map(Some)
        .ok_or_else(|| OsError::Parse {
            what: format!("/proc/{pid}/limits"),
            detail: "no \"Max open files\" row".to_string(),
        })
}

pub fn all_pids() -> Result<Vec<u32>, OsError> {
    let proc = Path::new("/proc");
    let entries = fs::read_dir(proc).map_err(|source| io_error(proc, source))?;
    let mut pids: Vec<u32> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

/// Only the caller's network namespace is visible: `/proc/net` is `/proc/self/net`. A
/// server in another namespace (a container) shows up as `Free`, not `Hidden`.
pub fn port_owner(port: u16, candidates: &[u32]) -> Result<PortOwner, OsError> {
    let inodes = listening_inodes(port)?;
    if inodes.is_empty() {
        return Ok(PortOwner::Free);
    }
    // The candidates (pidfile PID, last known PID) usually hold the socket; checking them
    // first keeps the common case to a few readlinks instead of every FD on the box. But
    // a candidate is the whole answer only if it holds every listening socket of the
    // port: another process listening on another address of the same port (a squatter
    // on [::1] beside the server on 127.0.0.1) must be seen, so anything less means the
    // full scan.
    for &pid in candidates {
        if sockets_held(pid, &inodes, true).len() == inodes.len() {
            return Ok(PortOwner::Held(vec![pid]));
        }
    }
    let mut seen = HashSet::new();
    let mut holders = Vec::new();
    for pid in all_pids()? {
        let held = sockets_held(pid, &inodes, false);
        if !held.is_empty() {
            holders.push(pid);
            seen.extend(held);
        }
    }
    if holders.is_empty() {
        return Ok(PortOwner::Hidden);
    }
    if seen.len() < inodes.len() {
        return Ok(PortOwner::PartlyHidden(master_first(holders)));
    }
    Ok(PortOwner::Held(master_first(holders)))
}

// ---------------------------------------------------------------------------------------
// Reading /proc
// ---------------------------------------------------------------------------------------

fn proc_path(pid: u32, file: &str) -> std::path::PathBuf {
    Path::new("/proc").join(pid.to_string()).join(file)
}

/// Maps an I/O error on a `/proc/PID/...` path to what it means for the process.
fn classify(pid: u32, what: &'static str, path: &Path, source: io::Error) -> OsError {
    match source.kind() {
        io::ErrorKind::NotFound => OsError::NoSuchProcess(pid),
        io::ErrorKind::PermissionDenied => OsError::PermissionDenied { pid, what },
        // ESRCH: the process exited while its file was open.
        _ if source.raw_os_error() == Some(libc::ESRCH) => OsError::NoSuchProcess(pid),
        _ => io_error(path, source),
    }
}

fn io_error(path: &Path, source: io::Error) -> OsError {
    OsError::Io {
        what: path.display().to_string(),
        source,
    }
}

fn read_bytes(pid: u32, file: &str, what: &'static str) -> Result<Vec<u8>, OsError> {
    let path = proc_path(pid, file);
    read_proc_file(&path).map_err(|e| classify(pid, what, &path, e))
}

/// `/proc` files report a size of 0, so `fs::read` would grow its buffer from 32 bytes
/// in many small reads; one page covers `stat`, `status` and most command lines.
fn read_proc_file(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(4096);
    fs::File::open(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn read_text(pid: u32, file: &str, what: &'static str) -> Result<String, OsError> {
    read_bytes(pid, file, what).map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

fn read_stat(pid: u32) -> Result<StatFields, OsError> {
    let text = read_text(pid, "stat", "stat")?;
    parse_stat(&text).map_err(|detail| OsError::Parse {
        what: format!("/proc/{pid}/stat"),
        detail,
    })
}

/// `None` when unreadable: another user's process (EACCES) or a zombie (ENOENT). The
/// working directory only matters for replaying a start, never for identifying.
fn read_cwd(pid: u32) -> Option<std::path::PathBuf> {
    fs::read_link(proc_path(pid, "cwd")).ok()
}

/// FDs tried one by one before a candidate's FD directory is listed.
const LOW_FDS: i32 = 32;

/// Which of the socket `inodes` `pid` holds. Processes we may not read, or that exit
/// mid-scan, hold none; if nobody readable holds a socket the answer is `Hidden` (or
/// `PartlyHidden`), never `Free`.
///
/// A server's listening sockets are nearly always among its first FDs, so for a
/// `candidate` those are tried directly first, and the search stops once it holds them
/// all: listing the directory costs the kernel a dentry per FD, thousands for a leaking
/// server. The full scan of every process lists instead, since most processes hold only
/// a few FDs.
fn sockets_held(pid: u32, inodes: &HashSet<u64>, candidate: bool) -> HashSet<u64> {
    let mut held = HashSet::new();
    let Ok(dir) = FdDir::open(pid) else {
        return held;
    };
    let mut buffer = vec![0u8; libc::PATH_MAX as usize];
    let mut look = |fd: i32| {
        if let Ok(link) = dir.target_into(fd, &mut buffer)
            && let Some(inode) = socket_inode(&link)
            && inodes.contains(&inode)
        {
            held.insert(inode);
        }
        held.len() == inodes.len()
    };
    if candidate && (0..LOW_FDS).any(&mut look) {
        return held;
    }
    let Ok(mut numbers) = dir.numbers() else {
        return held;
    };
    numbers.sort_unstable();
    for fd in numbers
        .into_iter()
        .filter(|&fd| !candidate || fd >= LOW_FDS)
    {
        if look(fd) {
            break;
        }
    }
    held
}

fn listening_inodes(port: u16) -> Result<HashSet<u64>, OsError> {
    match sock_diag::listening_inodes(port) {
        Ok(inodes) => Ok(inodes),
        // Netlink can be filtered (seccomp, some containers): /proc/net/tcp always works.
        Err(_) => listening_inodes_from_proc(port),
    }
}

fn listening_inodes_from_proc(port: u16) -> Result<HashSet<u64>, OsError> {
    let mut inodes = HashSet::new();
    for (table, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        match fs::read_to_string(table) {
            Ok(text) => inodes.extend(parse_listening_inodes(&text, port, v6)),
            // No tcp6 table on a kernel without IPv6.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(Path::new(table), e)),
        }
    }
    Ok(inodes)
}

/// Orders holders so that a process whose parent is not itself a holder (the master that
/// forked workers sharing the socket) comes first; ties by PID.
fn master_first(mut holders: Vec<u32>) -> Vec<u32> {
    let set: HashSet<u32> = holders.iter().copied().collect();
    let parent_holds = |pid: &u32| read_stat(*pid).is_ok_and(|s| set.contains(&s.ppid));
    holders.sort_by_key(|pid| (parent_holds(pid), *pid));
    holders
}

fn clock_ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        // SAFETY: sysconf has no preconditions; it only reads a constant.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        // 100 is USER_HZ on every mainstream architecture; only a broken libc returns <= 0.
        u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
    })
}

fn boot_time() -> Result<u64, OsError> {
    static BTIME: OnceLock<u64> = OnceLock::new();
    if let Some(&btime) = BTIME.get() {
        return Ok(btime);
    }
    let path = Path::new("/proc/stat");
    let bytes = read_proc_file(path).map_err(|e| io_error(path, e))?;
    let btime = parse_btime(&String::from_utf8_lossy(&bytes)).ok_or_else(|| OsError::Parse {
        what: "/proc/stat".to_string(),
        detail: "no btime line".to_string(),
    })?;
    Ok(*BTIME.get_or_init(|| btime))
}

fn wall_start_time(start_ticks: u64) -> Result<SystemTime, OsError> {
    wall_time(boot_time()?, start_ticks, clock_ticks_per_second())
}

/// The boot time (`btime`, seconds since the epoch) plus a start time in clock ticks
/// after boot. Both are numbers read from /proc; a sum past what `SystemTime` holds is
/// an error, not a panic.
pub(crate) fn wall_time(btime: u64, start_ticks: u64, hz: u64) -> Result<SystemTime, OsError> {
    let since_boot = Duration::from_secs(start_ticks / hz)
        + Duration::from_nanos(start_ticks % hz * 1_000_000_000 / hz);
    UNIX_EPOCH
        .checked_add(Duration::from_secs(btime))
        .and_then(|boot| boot.checked_add(since_boot))
        .ok_or_else(|| OsError::Parse {
            what: "/proc/stat btime and /proc/PID/stat starttime".to_string(),
            detail: format!("boot at {btime} s plus {start_ticks} ticks is past the largest time"),
        })
}

// ---------------------------------------------------------------------------------------
// Parsers (pure)
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StatFields {
    pub(crate) state: ProcState,
    pub(crate) ppid: u32,
    /// Field 22, `starttime`: clock ticks after boot.
    pub(crate) start_ticks: u64,
}

/// `/proc/PID/stat`: `pid (comm) state ppid ... starttime ...`. `comm` is chosen by the
/// process and may contain spaces and `)`, so the fixed fields start after the LAST `)`.
pub(crate) fn parse_stat(text: &str) -> Result<StatFields, String> {
    let close = text.rfind(')').ok_or("no ')' after the command name")?;
    // Fields after comm, numbered from 3 (state) as in proc(5).
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).copied().ok_or(format!("field {n} missing"));
    let state = field(3)?;
    let ppid = field(4)?;
    let start = field(22)?;
    Ok(StatFields {
        state: parse_state(state),
        ppid: ppid
            .parse()
            .map_err(|_| format!("ppid {ppid:?} is not a number"))?,
        start_ticks: start
            .parse()
            .map_err(|_| format!("starttime {start:?} is not a number"))?,
    })
}

fn parse_state(code: &str) -> ProcState {
    match code {
        "R" | "S" | "D" => ProcState::Running,
        "T" | "t" => ProcState::Stopped,
        "Z" | "X" | "x" => ProcState::Zombie,
        _ => ProcState::Other,
    }
}

/// `btime SECONDS` in `/proc/stat`: the boot time, in seconds since the epoch.
pub(crate) fn parse_btime(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime ")?.trim().parse().ok())
}

#[derive(Debug, Default, PartialEq)]
pub(crate) struct StatusFields {
    /// The real UID (first column of `Uid:`).
    pub(crate) uid: Option<u32>,
    /// The real GID (first column of `Gid:`).
    pub(crate) gid: Option<u32>,
    /// `VmRSS`, in KiB; absent for zombies and kernel threads.
    pub(crate) rss_kib: Option<u64>,
}

pub(crate) fn parse_status(text: &str) -> StatusFields {
    let mut fields = StatusFields::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Uid:") {
            fields.uid = rest.split_whitespace().next().and_then(|v| v.parse().ok());
        } else if let Some(rest) = line.strip_prefix("Gid:") {
            fields.gid = rest.split_whitespace().next().and_then(|v| v.parse().ok());
        } else if let Some(rest) = line.strip_prefix("VmRSS:") {
            fields.rss_kib = rest.split_whitespace().next().and_then(|v| v.parse().ok());
        }
    }
    fields
}

/// The `Max open files` row of `/proc/PID/limits`: soft and hard, `unlimited` → `None`.
pub(crate) fn parse_open_files_limit(text: &str) -> Option<FdLimit> {
    let row = text
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?;
    let mut columns = row.split_whitespace();
    let soft = parse_limit_value(columns.next()?)?;
    let hard = parse_limit_value(columns.next()?)?;
    Some(FdLimit { soft, hard })
}

/// `Some(None)` for `unlimited`, `None` for garbage.
fn parse_limit_value(value: &str) -> Option<Option<u64>> {
    if value == "unlimited" {
        Some(None)
    } else {
        value.parse().ok().map(Some)
    }
}

/// `cmdline`: NUL-terminated arguments. Empty arguments in the middle are kept (they
/// matter when replaying argv); only the final terminator is dropped.
pub(crate) fn split_nul_separated(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|&b| b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// `environ`: NUL-separated `KEY=VALUE`; entries without `=` (a process may scribble over
/// its own environment block) are skipped.
pub(crate) fn parse_environ(bytes: &[u8]) -> Vec<(String, String)> {
    bytes
        .split(|&b| b == 0)
        .filter_map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            let (key, value) = entry.split_once('=')?;
            (!key.is_empty()).then(|| (key.to_string(), value.to_string()))
        })
        .collect()
}

pub(crate) fn parse_fd_name(name: &OsStr) -> Option<i32> {
    name.to_str()?.parse().ok()
}

/// The name in the first `linux_dirent64` record of a `getdents64` buffer: after
/// the 8-byte inode, 8-byte offset, 2-byte length and 1-byte type, up to a NUL.
pub(crate) fn first_dirent_name(records: &[u8]) -> Option<&str> {
    const NAME_AT: usize = 19;
    let length = usize::from(u16::from_ne_bytes([*records.get(16)?, *records.get(17)?]));
    let name = records.get(NAME_AT..length.min(records.len()))?;
    let end = name.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&name[..end]).ok()
}

/// Inodes of the LISTEN rows for `port` in `/proc/net/tcp` or `/proc/net/tcp6`.
/// Columns: `sl local_address rem_address st ... uid timeout inode`, the local address
/// being `HEXIP:HEXPORT`. Rows in other states (TIME_WAIT has inode 0) are not listeners.
pub(crate) fn parse_listening_inodes(text: &str, port: u16, v6: bool) -> Vec<u64> {
    sockets::parse_inet_rows(text, v6)
        .filter(|row| row.local.port() == port && row.state == sock_diag::TCP_LISTEN)
        .map(|row| row.inode)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command, Stdio};

    // --- parsers on literal samples --------------------------------------------------

    #[test]
    fn stat_with_spaces_and_parentheses_in_comm() {
        let text = "4242 (my (weird) name) S 17 4242 17 0 -1 4194560 1 0 0 0 3 4 0 0 20 0 1 0 \
                    987654 1000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let stat = parse_stat(text).unwrap();
        assert_eq!(
            stat,
            StatFields {
                state: ProcState::Running,
                ppid: 17,
                start_ticks: 987654
            }
        );
    }

    #[test]
    fn stat_with_a_closing_parenthesis_then_space_then_letter_in_comm() {
        // A comm of ") Z 1 (" would fool a parser that splits at the first ')'.
        let text = "7 (a) Z 1 (b) T 3 7 3 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 555 0 0";
        let stat = parse_stat(text).unwrap();
        assert_eq!(stat.state, ProcState::Stopped);
        assert_eq!(stat.ppid, 3);
        assert_eq!(stat.start_ticks, 555);
    }

    #[test]
    fn stat_states() {
        assert_eq!(parse_state("D"), ProcState::Running);
        assert_eq!(parse_state("t"), ProcState::Stopped);
        assert_eq!(parse_state("Z"), ProcState::Zombie);
        assert_eq!(parse_state("X"), ProcState::Zombie);
        assert_eq!(parse_state("I"), ProcState::Other);
    }

    #[test]
    fn truncated_or_garbage_stat_is_an_error_not_a_panic() {
        assert!(parse_stat("").is_err());
        assert!(parse_stat("12 (x) S 1 2 3").is_err());
        assert!(parse_stat("12 (x) S notanumber 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5").is_err());
    }

    #[test]
    fn btime_from_proc_stat() {
        let text = "cpu  1 2 3 4\nintr 5\nctxt 6\nbtime 1764316800\nprocesses 7\n";
        assert_eq!(parse_btime(text), Some(1_764_316_800));
        assert_eq!(parse_btime("cpu 1\n"), None);
    }

    #[test]
    fn start_time_past_the_clock_is_an_error_not_a_panic() {
        let start = wall_time(1_764_316_800, 250, 100).unwrap();
        assert_eq!(
            start.duration_since(UNIX_EPOCH).unwrap(),
            Duration::from_millis(1_764_316_802_500)
        );
        for (btime, ticks) in [(u64::MAX, 0), (i64::MAX as u64, u64::MAX), (0, u64::MAX)] {
            match wall_time(btime, ticks, 1) {
                Err(OsError::Parse { detail, .. }) => {
                    assert!(detail.contains("past the largest time"), "{detail}")
                }
                other => panic!("btime {btime}, {ticks} ticks: {other:?}"),
            }
        }
    }

    #[test]
    fn status_uid_and_rss() {
        let text = "Name:\tpython3\nUmask:\t0022\nState:\tS (sleeping)\nPid:\t4242\n\
                    Uid:\t501\t502\t503\t504\nGid:\t20\t20\t20\t20\nVmPeak:\t  300000 kB\n\
                    VmRSS:\t  179200 kB\nThreads:\t4\n";
        assert_eq!(
            parse_status(text),
            StatusFields {
                uid: Some(501),
                gid: Some(20),
                rss_kib: Some(179_200)
            }
        );
    }

    #[test]
    fn status_of_a_zombie_has_no_rss() {
        let text = "Name:\tdefunct\nState:\tZ (zombie)\nUid:\t0\t0\t0\t0\n";
        assert_eq!(
            parse_status(text),
            StatusFields {
                uid: Some(0),
                gid: None,
                rss_kib: None
            }
        );
    }

    const LIMITS: &str = "\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max processes             96365                96365                processes 
Max open files            4096                 524288               files     
Max locked memory         8388608              8388608              bytes     
";

    #[test]
    fn limits_open_files_row() {
        assert_eq!(
            parse_open_files_limit(LIMITS),
            Some(FdLimit {
                soft: Some(4096),
                hard: Some(524_288)
            })
        );
    }

    #[test]
    fn limits_unlimited_is_none() {
        let text = "Max open files            1024                 unlimited            files\n";
        assert_eq!(
            parse_open_files_limit(text),
            Some(FdLimit {
                soft: Some(1024),
                hard: None
            })
        );
    }

    #[test]
    fn limits_without_the_row_or_with_garbage() {
        assert_eq!(
            parse_open_files_limit("Max processes 1 1 processes\n"),
            None
        );
        assert_eq!(
            parse_open_files_limit("Max open files  lots  more files\n"),
            None
        );
    }

    #[test]
    fn cmdline_keeps_empty_middle_arguments() {
        assert_eq!(
            split_nul_separated(b"python3\0server.py\0\0--x\0"),
            ["python3", "server.py", "", "--x"]
        );
        assert!(split_nul_separated(b"").is_empty());
        // setproctitle-style rewrite without a terminator.
        assert_eq!(
            split_nul_separated(b"nginx: master process"),
            ["nginx: master process"]
        );
    }

    #[test]
    fn cmdline_invalid_utf8_is_lossy() {
        assert_eq!(split_nul_separated(b"a\xffb\0"), ["a\u{fffd}b"]);
    }

    #[test]
    fn environ_pairs_skip_entries_without_equals() {
        let bytes = b"HOME=/root\0garbage\0EMPTY=\0A=b=c\0\0";
        assert_eq!(
            parse_environ(bytes),
            vec![
                ("HOME".to_string(), "/root".to_string()),
                ("EMPTY".to_string(), String::new()),
                ("A".to_string(), "b=c".to_string()),
            ]
        );
    }

    const TCP: &str = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2254 00000000:0000 0A 00000000:00000000 00:00000000 00000000   501        0 43210 1 0000000000000000 100 0 0 10 0
   1: 0100007F:2254 0100007F:C350 06 00000000:00000000 03:00000F5B 00000000     0        0 0 3 0000000000000000
   2: 0100007F:C350 0100007F:2254 01 00000000:00000000 00:00000000 00000000   501        0 55555 1 0000000000000000 20 4 30 10 -1
   3: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
";

    const TCP6: &str = "\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:2254 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   501        0 98765 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn tcp_listen_rows_only() {
        // 0x2254 = 8788: one LISTEN row; the TIME_WAIT (06) and ESTABLISHED (01, remote
        // port 8788) rows do not count.
        assert_eq!(parse_listening_inodes(TCP, 8788, false), [43210]);
        assert_eq!(parse_listening_inodes(TCP, 8080, false), [777]);
        assert!(parse_listening_inodes(TCP, 50000, false).is_empty());
    }

    #[test]
    fn tcp6_listen_rows() {
        assert_eq!(parse_listening_inodes(TCP6, 8788, true), [98765]);
        assert_eq!(parse_listening_inodes(TCP6, 22, true), [4444]);
    }

    #[test]
    fn tcp_garbage_lines_are_skipped() {
        let text = "header\nnot a row\n   0: zz:zz 0:0 0A 0 0 0 0 0 notanumber\n";
        assert!(parse_listening_inodes(text, 0, false).is_empty());
    }

    // --- live, on this test process and children it spawns ------------------------------

    /// The kind comes from the open file itself (its magic link), cached attributes only.
    #[test]
    fn fd_file_kinds_of_our_own_fds() {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = fs::File::create(dir.path().join("f")).unwrap();
        let here = fs::File::open(dir.path()).unwrap();
        let null = fs::File::open("/dev/null").unwrap();
        let fifo_path = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo_path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo touches no memory of ours.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let fifo = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo_path)
            .unwrap();
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let me = std::process::id();
        let kind = |fd: i32| fd_file_kind(me, fd, "");
        assert_eq!(kind(file.as_raw_fd()), Some(FileKind::Regular));
        assert_eq!(kind(here.as_raw_fd()), Some(FileKind::Directory));
        assert_eq!(kind(null.as_raw_fd()), Some(FileKind::Device));
        assert_eq!(kind(fifo.as_raw_fd()), Some(FileKind::Fifo));
        assert_eq!(kind(socket.as_raw_fd()), Some(FileKind::Other));
        assert_eq!(kind(1_000_000), None, "not open");
    }

    /// A child process killed and reaped when the test ends, pass or fail.
    struct Reaped(Child);

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn spawn_sleep() -> Reaped {
        let child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sleep");
        Reaped(child)
    }

    #[test]
    fn the_usable_cpus_are_the_affinity_mask() {
        let cpus = usable_cpus();
        assert!(cpus >= 1);
        // Without a CPU quota on this box the two agree; with one, std's is smaller.
        let std_count = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!(cpus >= std_count, "{cpus} < {std_count}");
    }

    #[test]
    fn own_process_info() {
        let me = std::process::id();
        let info = process_info(me).unwrap();
        assert_eq!(info.pid(), me);
        assert_eq!(info.ppid, std::os::unix::process::parent_id());
        assert_eq!(info.state, ProcState::Running);
        // SAFETY: getuid cannot fail.
        assert_eq!(info.uid, Some(unsafe { libc::getuid() }));
        assert!(info.rss_bytes.is_some_and(|rss| rss > 0));
        assert_eq!(info.cwd, std::env::current_dir().ok());
        let exe = std::env::args().next().unwrap();
        assert_eq!(info.argv.first(), Some(&exe));
        let age = SystemTime::now()
            .duration_since(info.start_time)
            .unwrap_or_default();
        assert!(age < Duration::from_secs(3600), "started {age:?} ago?");
        assert_eq!(identity(me).unwrap(), Some(info.identity));
    }

    #[test]
    fn own_environ() {
        let env = process_environ(std::process::id()).unwrap();
        // PATH is inherited at exec, so it is in the initial environment block.
        let path = std::env::var("PATH").unwrap();
        assert!(env.iter().any(|(k, v)| k == "PATH" && *v == path));
    }

    #[test]
    fn own_fds_include_a_file_we_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marker.txt");
        let file = fs::File::create(&path).unwrap();
        let fds = list_fds(std::process::id()).unwrap();
        use std::os::fd::AsRawFd;
        let mine = fds
            .iter()
            .find(|e| e.fd == file.as_raw_fd())
            .expect("our fd listed");
        assert_eq!(Path::new(&mine.target), path);
        assert!(fds.windows(2).all(|w| w[0].fd < w[1].fd));
    }

    /// A python3 child that runs `setup` (with `os` imported and its FD limit raised),
    /// then waits; killed and reaped when dropped.
    fn holding_fds(setup: &str) -> Reaped {
        use std::io::{BufRead, BufReader};
        let script = format!(
            "import os, resource, socket, time\n\
             soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n\
             resource.setrlimit(resource.RLIMIT_NOFILE, (min(8192, hard), hard))\n\
             {setup}\n\
             print('ready', flush=True)\n\
             time.sleep(60)\n"
        );
        let mut child = Command::new("python3")
            .args(["-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let stdout = child.stdout.take().unwrap();
        let guard = Reaped(child);
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the child could not set up: {setup}");
        guard
    }

    /// What a readlink per FD of a full listing gives: the reference for the faster ways.
    fn read_one_by_one(pid: u32) -> Vec<FdEntry> {
        let dir = FdDir::open(pid).unwrap();
        let mut fds = dir.targets(&dir.numbers().unwrap()).unwrap();
        fds.sort_by_key(|e| e.fd);
        fds
    }

    /// Enough FDs that they are probed, identified and read by several threads: every
    /// one is listed once, in order, with the target a readlink gives it.
    #[test]
    fn a_large_dense_fd_table_is_read_completely() {
        const HELD: usize = 3000;
        let files = tempfile::tempdir().unwrap();
        let (first, second) = (files.path().join("a.db"), files.path().join("b.db"));
        std::fs::write(&first, "").unwrap();
        std::fs::hard_link(&first, &second).unwrap();
        let child = holding_fds(&format!(
            "fds = [os.open('/dev/null', os.O_RDONLY) for _ in range({HELD})]\n\
             pair = socket.socketpair(); r, w = os.pipe()\n\
             import select; loops = [select.epoll() for _ in range(3)]\n\
             events = [os.eventfd(0) for _ in range(3)]\n\
             linked = [os.open(p, os.O_RDONLY) for p in [{first:?}, {second:?}] * 2]"
        ));
        let pid = child.0.id();
        let dir = FdDir::open(pid).unwrap();
        assert!(
            dense_table(&dir).is_some(),
            "a table filled from the bottom is probed, not listed"
        );
        // Our child shares our cgroups, so only Yama, or a network or FUSE mount that
        // closing a copy could flush to, may keep its FDs from being copied.
        let scope = fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").ok();
        let status = fs::read_to_string("/proc/self/status").unwrap();
        let mounts = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
        assert_eq!(
            may_copy_fds_of(pid),
            pidfd::yama_lets_us_attach(scope.as_deref(), &status)
                && !pidfd::has_flushing_mounts(&mounts)
        );
        let fds = list_fds(pid).unwrap();
        let null = fds.iter().filter(|e| e.target == "/dev/null").count();
        assert!(null >= HELD, "{null} of {HELD} /dev/null FDs listed");
        assert!(
            fds.windows(2).all(|w| w[0].fd < w[1].fd),
            "sorted, no duplicates"
        );
        assert_eq!(fds, read_one_by_one(pid));
        // The copying way itself, whichever way list_fds took (Yama lets a parent
        // attach to its child).
        let handle = pidfd::Pidfd::open(pid).unwrap();
        let numbers = dense_table(&dir).unwrap();
        let mut by_identity = targets_by_identity(&dir, &handle, &numbers).unwrap();
        by_identity.sort_by_key(|e| e.fd);
        assert_eq!(by_identity, fds);
        assert!(fds.iter().any(|e| e.target.starts_with("socket:[")));
        assert!(fds.iter().any(|e| e.target.starts_with("pipe:[")));
        let named = |name: &str| fds.iter().filter(|e| e.target == name).count();
        assert_eq!(
            named("anon_inode:[eventpoll]"),
            3,
            "told apart from eventfds"
        );
        assert_eq!(named("anon_inode:[eventfd]"), 3);
        let (first, second) = (first.to_str().unwrap(), second.to_str().unwrap());
        assert_eq!(
            (named(first), named(second)),
            (2, 2),
            "hard links keep their names"
        );
    }

    /// An FD whose link cannot be read, for another reason than its being closed (here
    /// a file deeper than the kernel will name: ENAMETOOLONG), is an error either way
    /// the targets are read, not an FD quietly left out of the count. Both the FD of a
    /// file named once for all its FDs and that of a hard-linked one, read by link.
    #[test]
    fn an_fd_whose_link_cannot_be_read_is_an_error_either_way() {
        let files = tempfile::tempdir().unwrap();
        let child = holding_fds(&format!(
            "d = os.open({root:?}, os.O_RDONLY)\n\
             for _ in range(20):\n\
             \x20   os.mkdir('d' * 250, dir_fd=d)\n\
             \x20   d = os.open('d' * 250, os.O_RDONLY, dir_fd=d)\n\
             one = os.open('one', os.O_CREAT | os.O_RDWR, dir_fd=d)\n\
             two = os.open('two', os.O_CREAT | os.O_RDWR, dir_fd=d)\n\
             os.link('two', 'also-two', src_dir_fd=d, dst_dir_fd=d)\n\
             os.dup2(one, 500); os.dup2(two, 501)",
            root = files.path().display().to_string(),
        ));
        let pid = child.0.id();
        let dir = FdDir::open(pid).unwrap();
        let handle = pidfd::Pidfd::open(pid).unwrap();
        let named_once = handle.identify(500).unwrap().unwrap();
        let by_link = handle.identify(501).unwrap().unwrap();
        assert!(handle.shares_one_name(&named_once) && !handle.shares_one_name(&by_link));
        let too_long = |result: Result<Vec<FdEntry>, OsError>| {
            matches!(result, Err(OsError::Io { source, .. })
                if source.raw_os_error() == Some(libc::ENAMETOOLONG))
        };
        for fd in [500, 501] {
            assert!(too_long(dir.targets(&[fd])), "FD {fd} by readlink");
            assert!(
                too_long(targets_by_identity(&dir, &handle, &[fd])),
                "FD {fd} by identity"
            );
        }
        // An FD that is not open is no error: it is left out.
        assert_eq!(dir.targets(&[502]).unwrap(), []);
        assert_eq!(targets_by_identity(&dir, &handle, &[502]).unwrap(), []);
    }

    /// A few hundred FDs, as a healthy server holds: probed, read by link, the same
    /// as listing them.
    #[test]
    fn a_small_dense_fd_table_is_probed_and_read_completely() {
        let child = holding_fds("fds = [os.open('/dev/null', os.O_RDONLY) for _ in range(300)]");
        let pid = child.0.id();
        let dir = FdDir::open(pid).unwrap();
        assert!(dense_table(&dir).is_some());
        let fds = list_fds(pid).unwrap();
        assert!(fds.len() > 300);
        assert_eq!(fds, read_one_by_one(pid));
    }

    /// FDs spread thinly over a large range are listed, then identified: the same
    /// result, and no probe of the empty numbers between them.
    #[test]
    fn a_large_sparse_fd_table_is_read_completely() {
        let child = holding_fds(
            "src = os.open('/dev/null', os.O_RDONLY)\n\
             [os.dup2(src, 3 * n + 100) for n in range(1500)]\n\
             pair = socket.socketpair()\n\
             os.dup2(pair[0].fileno(), 7000)",
        );
        let pid = child.0.id();
        let dir = FdDir::open(pid).unwrap();
        assert_eq!(dir.highest_open().unwrap(), Some(7000));
        assert!(dense_table(&dir).is_none(), "two in three numbers are free");
        let fds = list_fds(pid).unwrap();
        assert!(fds.len() > 1500);
        assert_eq!(fds.iter().filter(|e| e.fd == 7000).count(), 1);
        assert_eq!(fds, read_one_by_one(pid));
    }

    #[test]
    fn highest_open_fd_of_a_small_table() {
        // Above anything the child may inherit from the test runner.
        let child = holding_fds("os.dup2(0, 6000); os.dup2(0, 6001)");
        let dir = FdDir::open(child.0.id()).unwrap();
        assert_eq!(dir.highest_open().unwrap(), Some(6001));
        assert_eq!(dir.first_open_from(5000).unwrap(), Some(6000));
        assert_eq!(dir.first_open_from(6002).unwrap(), None);
        assert_eq!(dir.first_open_from(0).unwrap(), Some(0));
    }

    #[test]
    fn dirent_names() {
        // linux_dirent64: ino 8, off 8, reclen 2, type 1, name NUL-terminated.
        let mut record = vec![0u8; 24];
        record[16..18].copy_from_slice(&24u16.to_ne_bytes());
        record[19..23].copy_from_slice(b"1234");
        assert_eq!(first_dirent_name(&record), Some("1234"));
        assert_eq!(first_dirent_name(&record[..10]), None, "truncated");
        assert_eq!(first_dirent_name(&[]), None);
        record[19..24].copy_from_slice(b"12345");
        assert_eq!(first_dirent_name(&record), None, "no NUL inside the record");
    }

    #[test]
    fn own_fd_limit_matches_getrlimit() {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a valid pointer to a properly sized struct.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        let as_option = |v: libc::rlim_t| (v != libc::RLIM_INFINITY).then_some(v);
        assert_eq!(
            fd_limit(std::process::id()).unwrap(),
            Some(FdLimit {
                soft: as_option(limit.rlim_cur),
                hard: as_option(limit.rlim_max)
            })
        );
    }

    #[test]
    fn all_pids_includes_us_and_init() {
        let pids = all_pids().unwrap();
        assert!(pids.contains(&std::process::id()));
        assert!(pids.contains(&1));
    }

    #[test]
    fn missing_process_is_no_such_process() {
        // PID_MAX_LIMIT is 4194304; anything above can never exist.
        let pid = 4_194_305;
        assert!(matches!(process_info(pid), Err(OsError::NoSuchProcess(p)) if p == pid));
        assert!(matches!(list_fds(pid), Err(OsError::NoSuchProcess(_))));
        assert!(matches!(fd_limit(pid), Err(OsError::NoSuchProcess(_))));
        assert!(matches!(
            process_environ(pid),
            Err(OsError::NoSuchProcess(_))
        ));
        assert_eq!(identity(pid).unwrap(), None);
    }

    #[test]
    fn child_identity_then_zombie_then_gone() {
        let mut child = spawn_sleep();
        let pid = child.0.id();
        // Right after exec the kernel has not yet published the new argv (cmdline reads
        // empty for a moment), so wait for it.
        wait_for(|| process_info(pid).is_ok_and(|i| !i.argv.is_empty()));
        let info = process_info(pid).unwrap();
        assert_eq!(info.ppid, std::process::id());
        assert_eq!(info.argv, ["sleep", "30"]);
        let id = identity(pid).unwrap().expect("alive");
        assert_eq!(id, info.identity);

        child.0.kill().unwrap();
        // Not reaped yet: a zombie, which holds nothing and counts as gone.
        wait_for(|| process_info(pid).is_ok_and(|i| i.state == ProcState::Zombie));
        assert_eq!(identity(pid).unwrap(), None);

        child.0.wait().unwrap();
        assert_eq!(identity(pid).unwrap(), None);
    }

    #[test]
    fn port_free_when_nothing_listens() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        assert_eq!(port_owner(port, &[]).unwrap(), PortOwner::Free);
    }

    #[test]
    fn port_held_by_this_process_full_scan_and_candidate() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let me = std::process::id();
        assert_eq!(port_owner(port, &[]).unwrap(), PortOwner::Held(vec![me]));
        // A candidate that does not hold it is passed over; one that does wins at once.
        assert_eq!(
            port_owner(port, &[1, me]).unwrap(),
            PortOwner::Held(vec![me])
        );
    }

    #[test]
    fn a_candidate_holding_one_of_two_listeners_is_not_the_whole_answer() {
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        // Another process listens on [::1] with the same port (IPV6_V6ONLY, so both
        // binds succeed): python3 does what std cannot, set V6ONLY before bind.
        let script = format!(
            "import socket, sys, time\n\
             s = socket.socket(socket.AF_INET6)\n\
             s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)\n\
             s.bind(('::1', {port}))\n\
             s.listen()\n\
             print('ok', flush=True)\n\
             time.sleep(60)\n"
        );
        let mut squatter = Reaped(
            std::process::Command::new("python3")
                .args(["-c", &script])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(squatter.0.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(
            line.trim(),
            "ok",
            "the squatter could not bind [::1]:{port}"
        );
        let me = std::process::id();
        let Ok(PortOwner::Held(holders)) = port_owner(port, &[me]) else {
            panic!("port {port} not held");
        };
        let mut holders = holders;
        holders.sort_unstable();
        let mut expected = vec![me, squatter.0.id()];
        expected.sort_unstable();
        assert_eq!(
            holders, expected,
            "the full scan must find the squatter too"
        );
        drop(v4);
    }

    #[test]
    fn port_held_on_ipv6() {
        let Ok(listener) = std::net::TcpListener::bind("[::1]:0") else {
            return; // no IPv6 loopback in this environment
        };
        let port = listener.local_addr().unwrap().port();
        assert_eq!(
            port_owner(port, &[]).unwrap(),
            PortOwner::Held(vec![std::process::id()])
        );
    }

    fn wait_for(condition: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !condition() {
            assert!(
                std::time::Instant::now() < deadline,
                "condition not met within 5 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
