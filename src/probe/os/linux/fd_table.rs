//! The door to another process's FD table on Linux: [`list_fds`] reads `/proc/PID/fd`
//! (which FD numbers are open, then each one's target by `readlinkat`, on every core),
//! and [`fd_file_kind`] tells the kind of file one FD is open on.
//!
//! How the open numbers are found is the reader's one choice, [`Strategy::choose`]:
//! list the directory, or, when the table is dense (a leak fills it from the bottom),
//! find the highest open FD and read every number up to it. Both give the same
//! entries. A third way, copying each FD into this process with `pidfd_getfd` and
//! `statx`ing it to read each file's name once, was removed: it never ran below 1,024
//! FDs, so never at the default limit, and at 4,096 it saved about a fifth of a
//! `watchdog fds` run's CPU (a few milliseconds) for ptrace rights, Yama's log and
//! three checks against the copy's side effects (socket cgroup tags, a flush on NFS or
//! FUSE at close). bench/README.md ("The FD budget") has the measurements.

use std::ffi::OsStr;
use std::fs;
use std::io;

use super::super::{FdEntry, FileKind, OsError};
use super::{classify, proc_path};

/// The kind of file an FD's path names. Asks about the FD itself through its magic
/// link, so it is right in any mount namespace and for deleted files too; and only
/// what the kernel already has (`statx` with AT_STATX_DONT_SYNC): a plain stat of a
/// file on NFS, SMB or FUSE may ask the file's server, which blocks on a hung mount
/// and is traffic on the target's behalf. The type never changes, so the cached one is
/// the truth.
pub fn fd_file_kind(pid: u32, fd: i32, _path: &str) -> Option<FileKind> {
    let link = proc_path(pid, "fd").join(fd.to_string());
    let mode = cached_mode(&link).ok()?;
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

/// `statx` without AT_STATX_SYNC_AS_STAT: from the attributes the kernel has cached,
/// never asking a network or FUSE file's server (see [`fd_file_kind`]).
const STATX_FLAGS: libc::c_int = libc::AT_STATX_DONT_SYNC;

/// The file type and mode bits of what `path` names (following a final link: a
/// `/proc/PID/fd/N` magic link leads to the open file itself), from the attributes the
/// kernel has cached ([`STATX_FLAGS`]).
fn cached_mode(path: &std::path::Path) -> io::Result<u32> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: an all-zero statx is a valid out-parameter.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: statx of a NUL-terminated path we own, writing one statx through a
    // pointer to ours.
    let done = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            path.as_ptr(),
            STATX_FLAGS,
            libc::STATX_TYPE | libc::STATX_MODE,
            &mut st,
        )
    };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    if st.stx_mask & libc::STATX_TYPE == 0 {
        return Err(io::Error::other("statx gave no file type"));
    }
    Ok(u32::from(st.stx_mode))
}

/// The open FDs of `pid` with their link text, sorted by FD. `NoSuchProcess` when it is
/// gone, `PermissionDenied` when its table may not be read (another user's process,
/// for a watchdog that is not root): never an empty table for either.
pub fn list_fds(pid: u32) -> Result<Vec<FdEntry>, OsError> {
    let dir = FdDir::open(pid)?;
    let forced = std::env::var(STRATEGY_VARIABLE).ok();
    let numbers = match Strategy::choose(&dir, forced.as_deref()) {
        Strategy::List => dir.numbers()?,
        Strategy::Probe { span } => (0..span).collect(),
    };
    let mut fds = in_parallel(&numbers, |part| dir.targets(part))?;
    fds.sort_by_key(|entry| entry.fd);
    Ok(fds)
}

/// How the open FD numbers are found: the reader's one switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    /// List `/proc/PID/fd`: the kernel builds a dentry per open FD, about 0.85 µs each
    /// on the build machine, serial.
    List,
    /// Try every number below `span`, one past the highest open FD, which a binary
    /// search of `getdents64` seeks finds in a few dozen entries
    /// ([`FdDir::highest_open`]). A number that is not open costs one failed readlink
    /// (about 1.8 µs) and is skipped, as an FD closed meanwhile is.
    Probe { span: i32 },
}

/// `list` or `probe` forces that strategy whatever the table's size, so that
/// bench/fds_scaling.sh can time both on the same process; anything else, or nothing,
/// leaves the choice to [`Strategy::choose`]. Both give the same entries.
const STRATEGY_VARIABLE: &str = "WATCHDOG_FD_STRATEGY";

/// From this many open FDs on, a dense table is probed rather than listed; below it,
/// the binary search for the highest FD costs more than the listing saves.
const PROBE_FROM: u64 = 128;

impl Strategy {
    /// Probe when the table holds PROBE_FROM open FDs or more and the closed numbers
    /// below its highest open FD are at most half as many as the open ones (trying a
    /// closed number costs about twice what listing an open one saves); else list. The
    /// open count is the directory's size (Linux 6.2 and later); without it, or when
    /// the search fails, the directory is listed. `forced` is [`STRATEGY_VARIABLE`]'s
    /// value.
    fn choose(dir: &FdDir, forced: Option<&str>) -> Strategy {
        let probe = || {
            let span = dir.highest_open().ok()??.checked_add(1)?;
            Some(Strategy::Probe { span })
        };
        match forced {
            Some("list") => return Strategy::List,
            Some("probe") => return probe().unwrap_or(Strategy::List),
            _ => {}
        }
        let Some(open) = dir.handle.metadata().ok().map(|meta| meta.len()) else {
            return Strategy::List;
        };
        if open < PROBE_FROM {
            return Strategy::List;
        }
        match probe() {
            Some(Strategy::Probe { span })
                if u64::try_from(span).is_ok_and(|span| span * 2 <= open.saturating_mul(3)) =>
            {
                Strategy::Probe { span }
            }
            _ => Strategy::List,
        }
    }
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
pub(super) struct FdDir {
    pid: u32,
    path: std::path::PathBuf,
    handle: fs::File,
}

impl FdDir {
    pub(super) fn open(pid: u32) -> Result<FdDir, OsError> {
        let path = proc_path(pid, "fd");
        let handle = fs::File::open(&path).map_err(|e| classify(pid, "open files", &path, e))?;
        Ok(FdDir { pid, path, handle })
    }

    /// The open FD numbers, from listing `/proc/PID/fd`: about 0.85 µs per open FD
    /// on the build machine, serial, for the dentry the kernel builds for each.
    pub(super) fn numbers(&self) -> Result<Vec<i32>, OsError> {
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
                fds.push(FdEntry { fd, link: target });
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

    pub(super) fn target_into(&self, fd: i32, buffer: &mut [u8]) -> io::Result<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::os::linux::tests::Reaped;
    use std::path::Path;
    use std::process::{Command, Stdio};

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

    #[test]
    fn the_usable_cpus_are_the_affinity_mask() {
        let cpus = usable_cpus();
        assert!(cpus >= 1);
        // Without a CPU quota on this box the two agree; with one, std's is smaller.
        let std_count = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!(cpus >= std_count, "{cpus} < {std_count}");
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
        assert_eq!(Path::new(&mine.link), path);
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

    /// Enough FDs that they are probed and read by several threads: every one is
    /// listed once, in order, with the target a readlink gives it.
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
            matches!(Strategy::choose(&dir, None), Strategy::Probe { .. }),
            "a table filled from the bottom is probed, not listed"
        );
        let fds = list_fds(pid).unwrap();
        let null = fds.iter().filter(|e| e.link == "/dev/null").count();
        assert!(null >= HELD, "{null} of {HELD} /dev/null FDs listed");
        assert!(
            fds.windows(2).all(|w| w[0].fd < w[1].fd),
            "sorted, no duplicates"
        );
        assert_eq!(fds, read_one_by_one(pid));
        assert!(fds.iter().any(|e| e.link.starts_with("socket:[")));
        assert!(fds.iter().any(|e| e.link.starts_with("pipe:[")));
        let named = |name: &str| fds.iter().filter(|e| e.link == name).count();
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
    /// a file deeper than the kernel will name: ENAMETOOLONG), is an error, not an FD
    /// quietly left out of the count: read alone, and in the whole table either way
    /// its numbers are found.
    #[test]
    fn an_fd_whose_link_cannot_be_read_is_an_error() {
        /// Removes the tree with `rm -rf` in a process of its own: `TempDir`'s own removal
        /// would hold FDs of directories too deep to name in this test process, where
        /// tests that read their own FDs run at the same time and would rightly fail.
        struct RemovedElsewhere(tempfile::TempDir);
        impl Drop for RemovedElsewhere {
            fn drop(&mut self) {
                let _ = std::process::Command::new("rm")
                    .arg("-rf")
                    .arg(self.0.path().join("d".repeat(250)))
                    .status();
            }
        }
        let files = RemovedElsewhere(tempfile::tempdir().unwrap());
        let files = &files.0;
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
        let too_long = |result: Result<Vec<FdEntry>, OsError>| {
            matches!(result, Err(OsError::Io { source, .. })
                if source.raw_os_error() == Some(libc::ENAMETOOLONG))
        };
        for fd in [500, 501] {
            assert!(too_long(dir.targets(&[fd])), "FD {fd} by readlink");
        }
        for strategy in [Strategy::List, Strategy::Probe { span: 502 }] {
            let numbers = match strategy {
                Strategy::List => dir.numbers().unwrap(),
                Strategy::Probe { span } => (0..span).collect(),
            };
            assert!(
                too_long(in_parallel(&numbers, |part| dir.targets(part))),
                "{strategy:?}"
            );
        }
        // An FD that is not open is no error: it is left out.
        assert_eq!(dir.targets(&[502]).unwrap(), []);
    }

    /// A few hundred FDs, as a healthy server holds: probed, read by link, the same
    /// as listing them.
    #[test]
    fn a_small_dense_fd_table_is_probed_and_read_completely() {
        let child = holding_fds("fds = [os.open('/dev/null', os.O_RDONLY) for _ in range(300)]");
        let pid = child.0.id();
        let dir = FdDir::open(pid).unwrap();
        assert!(matches!(
            Strategy::choose(&dir, None),
            Strategy::Probe { .. }
        ));
        let fds = list_fds(pid).unwrap();
        assert!(fds.len() > 300);
        assert_eq!(fds, read_one_by_one(pid));
    }

    /// FDs spread thinly over a large range are listed: the same result, and no probe
    /// of the empty numbers between them.
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
        assert_eq!(
            Strategy::choose(&dir, None),
            Strategy::List,
            "two in three numbers are free"
        );
        let fds = list_fds(pid).unwrap();
        assert!(fds.len() > 1500);
        assert_eq!(fds.iter().filter(|e| e.fd == 7000).count(), 1);
        assert_eq!(fds, read_one_by_one(pid));
    }

    /// WATCHDOG_FD_STRATEGY's values force a strategy whatever the table (for
    /// bench/fds_scaling.sh), and each gives the same entries; any other value leaves
    /// the choice to the table.
    #[test]
    fn a_forced_strategy_reads_the_same_table() {
        let child = holding_fds("os.dup2(0, 6000); os.dup2(0, 6001)");
        let pid = child.0.id();
        let dir = FdDir::open(pid).unwrap();
        assert_eq!(
            Strategy::choose(&dir, None),
            Strategy::List,
            "small and sparse"
        );
        assert_eq!(Strategy::choose(&dir, Some("auto")), Strategy::List);
        assert_eq!(Strategy::choose(&dir, Some("list")), Strategy::List);
        assert_eq!(
            Strategy::choose(&dir, Some("probe")),
            Strategy::Probe { span: 6002 }
        );
        let probed = in_parallel(&(0..6002).collect::<Vec<_>>(), |part| dir.targets(part));
        let mut probed = probed.unwrap();
        probed.sort_by_key(|e| e.fd);
        assert_eq!(probed, read_one_by_one(pid));
        assert_eq!(list_fds(pid).unwrap(), read_one_by_one(pid));
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

    /// The kind of an FD's file never asks a network or FUSE file's server: statx reads
    /// the cached attributes.
    #[test]
    fn statx_uses_cached_attributes_only() {
        assert_eq!(
            STATX_FLAGS & libc::AT_STATX_SYNC_TYPE,
            libc::AT_STATX_DONT_SYNC
        );
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
}
