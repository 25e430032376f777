//! What the test knows of a process: alive, stopped, its command line, parent, start
//! time, environment, FDs, pending signals, the port it listens on, the locks held.
//! On Linux from /proc; elsewhere the core of it from ps and lsof (`ps_lsof.rs`).

#[cfg(target_os = "linux")]
use std::{fs, path::Path};

#[cfg(not(target_os = "linux"))]
use super::ps_lsof::{lsof_fd_count, lsof_fds, lsof_listeners, ps_args, ps_ppid, ps_state};

/// Alive: exists and is neither a zombie nor dead.
pub fn is_alive(pid: u32) -> bool {
    matches!(proc_state(pid), Some(s) if s != 'Z' && s != 'X' && s != 'x')
}

/// Stopped by a signal (or traced).
pub fn is_stopped(pid: u32) -> bool {
    matches!(proc_state(pid), Some('T') | Some('t'))
}

// On Linux: from /proc.

/// The number of open FDs of `pid`.
#[cfg(target_os = "linux")]
pub fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/fd: {e}"))
        .count()
}

/// The FD link targets of `pid`.
#[cfg(target_os = "linux")]
pub fn fd_targets(pid: u32) -> Vec<String> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/fd: {e}"))
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

/// The number of FDs of `pid` whose link target contains `pattern`.
#[cfg(target_os = "linux")]
pub fn count_fds_matching(pid: u32, pattern: &str) -> usize {
    fd_targets(pid)
        .iter()
        .filter(|t| t.contains(pattern))
        .count()
}

/// The state letter of `/proc/PID/stat` (R, S, D, T, t, Z, X, ...).
#[cfg(target_os = "linux")]
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: the state follows the last ')'.
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// The command line of `pid`, arguments joined by spaces (see [`cmdline_args`]).
#[cfg(target_os = "linux")]
pub fn cmdline(pid: u32) -> String {
    cmdline_args(pid).join(" ")
}

/// Signals pending for `pid` (SigPnd | ShdPnd of /proc/PID/status).
#[cfg(target_os = "linux")]
pub fn pending_signals(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .filter(|l| l.starts_with("SigPnd:") || l.starts_with("ShdPnd:"))
        .filter_map(|l| u64::from_str_radix(l.split(':').nth(1)?.trim(), 16).ok())
        .fold(0, |a, b| a | b)
}

/// The PID of the process LISTENing on 127.0.0.1:`port` (this user's processes only).
#[cfg(target_os = "linux")]
pub fn listener_pid(port: u16) -> Option<u32> {
    let inode = listening_inode(port)?;
    let needle = format!("socket:[{inode}]");
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == needle) {
                return Some(pid);
            }
        }
    }
    None
}

#[cfg(target_os = "linux")]
fn listening_inode(port: u16) -> Option<u64> {
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 || cols[3] != "0A" {
                continue;
            }
            let local_port = cols[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) {
                return cols[9].parse().ok();
            }
        }
    }
    None
}

/// True when some process holds a lock on `path` (from /proc/locks; the `flock` of
/// docs/DESIGN.md, "State between runs", but POSIX and OFD locks count too: tests use
/// this to synchronise, not to judge).
#[cfg(target_os = "linux")]
pub fn is_locked(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::metadata(path) else {
        return false;
    };
    let needle = format!(":{}", meta.ino());
    fs::read_to_string("/proc/locks")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            ["FLOCK", "POSIX", "OFDLCK"].iter().any(|k| l.contains(k))
                && l.split_whitespace()
                    .nth(5)
                    .is_some_and(|dev_ino| dev_ino.ends_with(&needle))
        })
}

/// The environment of `pid` (`/proc/PID/environ`) as `KEY=VALUE` strings.
#[cfg(target_os = "linux")]
pub fn environ(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_default()
        .split(|&c| c == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// The parent PID of `pid` (field 4 of `/proc/PID/stat`).
#[cfg(target_os = "linux")]
pub fn parent_pid(pid: u32) -> Option<u32> {
    stat_field(pid, 4)
}

/// Field `n` (counted from 1, as in proc(5)) of `/proc/PID/stat`, read after the command
/// name, which may hold spaces and parentheses.
#[cfg(target_os = "linux")]
pub fn stat_field<T: std::str::FromStr>(pid: u32, n: usize) -> Option<T> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(n.checked_sub(3)?)?
        .parse()
        .ok()
}

/// The arguments of `pid` (`/proc/PID/cmdline`, split at NULs; empty arguments and a
/// process that is gone or unreadable give none).
#[cfg(target_os = "linux")]
pub fn cmdline_args(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|&c| c == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// The start time of `pid` in clock ticks since boot (field 22 of `/proc/PID/stat`).
#[cfg(target_os = "linux")]
pub fn start_ticks(pid: u32) -> Option<u64> {
    stat_field(pid, 22)
}

// Without /proc (macOS): the same answers from ps and lsof.

/// [`proc_state`] where there is no /proc: from `ps`.
#[cfg(not(target_os = "linux"))]
pub fn proc_state(pid: u32) -> Option<char> {
    ps_state(pid)
}

/// [`cmdline`] where there is no /proc: from `ps`.
#[cfg(not(target_os = "linux"))]
pub fn cmdline(pid: u32) -> String {
    ps_args(pid)
}

/// [`fd_count`] where there is no /proc: from `lsof`.
#[cfg(not(target_os = "linux"))]
pub fn fd_count(pid: u32) -> usize {
    lsof_fd_count(pid)
}

/// [`count_fds_matching`] where there is no /proc: the FDs whose name `lsof` shows
/// contains `pattern` (for a file, its path).
#[cfg(not(target_os = "linux"))]
pub fn count_fds_matching(pid: u32, pattern: &str) -> usize {
    lsof_fds(pid)
        .iter()
        .filter(|f| f.name.contains(pattern))
        .count()
}

/// [`parent_pid`] where there is no /proc: from `ps`.
#[cfg(not(target_os = "linux"))]
pub fn parent_pid(pid: u32) -> Option<u32> {
    ps_ppid(pid)
}

/// [`listener_pid`] where there is no /proc: the one holder `lsof` names (`None` when
/// there is none or several).
#[cfg(not(target_os = "linux"))]
pub fn listener_pid(port: u16) -> Option<u32> {
    match lsof_listeners(port)[..] {
        [pid] => Some(pid),
        _ => None,
    }
}
