//! Process facts on any Unix: ps(1) and lsof(8).
//!
//! The same commands and options on Linux (procps-ng, lsof) and macOS (BSD ps, Apple's
//! lsof), so a test that asks them runs unchanged on both. On Linux `proc.rs` reads
//! /proc instead; on other systems its core (`proc_state`, `cmdline`, `listener_pid`,
//! `fd_count`, `count_fds_matching`, `parent_pid`) is answered from here. `lsof -F` is
//! also the second witness the FD census is compared with (`census.rs`).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::run::run_with_timeout;

/// One `ps` keyword of `pid` (`ps -ww -o KEY= -p PID`), trimmed; `None` when there is no
/// such process. `-ww`: BSD ps cuts lines at 79 columns when stdout is not a terminal.
pub fn ps_field(pid: u32, keyword: &str) -> Option<String> {
    let out = Command::new("ps")
        .args(["-ww", "-o", &format!("{keyword}="), "-p", &pid.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("run ps");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The state letter `ps` shows for `pid` (R, S, D, T, Z, and on macOS also I, U).
pub fn ps_state(pid: u32) -> Option<char> {
    ps_field(pid, "stat")?.chars().next()
}

/// Alive by `ps`: exists and is not a zombie.
pub fn ps_alive(pid: u32) -> bool {
    matches!(ps_state(pid), Some(s) if s != 'Z')
}

/// The command line `ps` shows for `pid` (arguments joined by spaces), empty if gone.
pub fn ps_args(pid: u32) -> String {
    ps_field(pid, "args").unwrap_or_default()
}

/// The parent PID `ps` shows for `pid`.
pub fn ps_ppid(pid: u32) -> Option<u32> {
    ps_field(pid, "ppid")?.parse().ok()
}

/// The PIDs with a TCP socket LISTENing on `port` (`lsof -t`), sorted. As root, every
/// user's; otherwise this user's.
pub fn lsof_listeners(port: u16) -> Vec<u32> {
    let mut cmd = Command::new(require_lsof());
    cmd.args(["-nP", "-t", &format!("-iTCP:{port}"), "-sTCP:LISTEN"]);
    let r = run_with_timeout(cmd, Duration::from_secs(60));
    // lsof exits 1 when it finds nothing.
    assert!(
        !r.timed_out && matches!(r.status, Some(0) | Some(1)),
        "lsof -iTCP:{port} failed\n{}",
        r.dump()
    );
    let mut pids: Vec<u32> = r
        .stdout
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// The number of open FDs of `pid` as `lsof` counts them (numeric FDs only).
pub fn lsof_fd_count(pid: u32) -> usize {
    lsof_fds(pid).len()
}

/// One numeric-FD line of `lsof -F`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsofFd {
    pub fd: i32,
    /// TYPE: REG, DIR, FIFO, CHR, IPv4, IPv6, unix, a_inode, sock, netlink, ...
    pub ftype: String,
    /// Protocol for sockets (TCP, UDP, ...), else empty.
    pub proto: String,
    pub name: String,
}

impl LsofFd {
    /// The census kind this lsof line stands for.
    pub fn kind(&self) -> &'static str {
        match self.ftype.as_str() {
            "REG" => "file",
            "DIR" => "directory",
            "CHR" | "BLK" => "device",
            "FIFO" if self.name == "pipe" => "pipe",
            "FIFO" => "fifo",
            "IPv4" | "IPv6" => {
                let v6 = self.ftype == "IPv6";
                match (self.proto.as_str(), v6) {
                    ("TCP", false) => "tcp",
                    ("TCP", true) => "tcp6",
                    ("UDP", false) => "udp",
                    ("UDP", true) => "udp6",
                    _ => "socket",
                }
            }
            "unix" => "unix",
            "netlink" => "netlink",
            "sock" if self.name.contains("NETLINK") => "netlink",
            "sock" => "socket",
            "a_inode" => {
                let n = self.name.trim_start_matches('[');
                let n = n.split([':', ']']).next().unwrap_or("");
                anon_inode_kind(n)
            }
            _ => "other",
        }
    }
}

/// The path of `lsof`; the test FAILS (never skips) when it is missing.
pub fn require_lsof() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
            .map(|d| d.join("lsof"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "lsof is not installed; this test compares against it: run script/bootstrap, \
             or `apt-get install lsof`"
        )
    })
}

/// `lsof -n -P -p PID -F ftPn`, numeric FDs only (cwd, txt, mem, ... are left out).
pub fn lsof_fds(pid: u32) -> Vec<LsofFd> {
    let mut cmd = Command::new(require_lsof());
    cmd.args(["-n", "-P", "-w", "-p", &pid.to_string(), "-F", "ftPn"]);
    let r = run_with_timeout(cmd, Duration::from_secs(60));
    assert!(
        r.status == Some(0) && !r.timed_out,
        "lsof -p {pid} failed\n{}",
        r.dump()
    );
    let mut out = Vec::new();
    let mut cur: Option<LsofFd> = None;
    for line in r.stdout.lines() {
        let (tag, value) = match line.chars().next() {
            Some(c) => (c, &line[c.len_utf8()..]),
            None => continue,
        };
        match tag {
            'f' => {
                if let Some(done) = cur.take() {
                    out.push(done);
                }
                if let Ok(fd) = value.parse::<i32>() {
                    cur = Some(LsofFd {
                        fd,
                        ftype: String::new(),
                        proto: String::new(),
                        name: String::new(),
                    });
                }
            }
            't' => {
                if let Some(c) = cur.as_mut() {
                    c.ftype = value.to_string();
                }
            }
            'P' => {
                if let Some(c) = cur.as_mut() {
                    c.proto = value.to_string();
                }
            }
            'n' => {
                if let Some(c) = cur.as_mut() {
                    c.name = value.to_string();
                }
            }
            'p' => {
                if let Some(done) = cur.take() {
                    out.push(done);
                }
            }
            _ => {}
        }
    }
    if let Some(done) = cur.take() {
        out.push(done);
    }
    out.sort_by_key(|f| f.fd);
    out
}

/// The census kind of an anonymous inode by its kernel name (`eventfd`, `eventpoll`, …),
/// as both test references (lsof's `a_inode` rows, `/proc` links) name it.
pub fn anon_inode_kind(name: &str) -> &'static str {
    match name {
        "eventfd" => "eventfd",
        "eventpoll" => "epoll",
        "inotify" => "inotify",
        "timerfd" => "timerfd",
        "signalfd" => "signalfd",
        _ => "anon",
    }
}
