//! Linux: everything read from `/proc` (and the listening sockets from netlink).
//!
//! Parsing is split from reading: each `parse_*` function takes the literal text of one
//! `/proc` file, so the odd cases (a `comm` with spaces and parentheses, a TIME_WAIT row)
//! are unit-tested on samples rather than on whatever this machine happens to run.

pub(crate) mod creds;
pub(crate) mod fd_table;
mod signal;
pub(crate) mod sock_diag;
pub(crate) mod sockets;

pub use creds::groups;
use fd_table::FdDir;
pub use fd_table::{fd_file_kind, list_fds};
pub use signal::signal_if_same;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{FdLimit, Identity, OsError, PortOwner, ProcState, ProcessInfo, socket_inode};

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

pub fn executable(pid: u32) -> Result<std::path::PathBuf, OsError> {
    let path = proc_path(pid, "exe");
    fs::read_link(&path).map_err(|e| classify(pid, "executable", &path, e))
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

pub fn cgroup(pid: u32) -> Result<Option<String>, OsError> {
    read_text(pid, "cgroup", "cgroup").map(Some)
}

pub fn parent_pid(pid: u32) -> Result<u32, OsError> {
    read_stat(pid).map(|stat| stat.ppid)
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
        "R" | "S" => ProcState::Running,
        "D" => ProcState::Uninterruptible,
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
        assert_eq!(parse_state("S"), ProcState::Running);
        assert_eq!(parse_state("D"), ProcState::Uninterruptible);
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

    /// A child process killed and reaped when the test ends, pass or fail.
    pub(super) struct Reaped(pub(super) Child);

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
