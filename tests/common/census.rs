//! The FD census computed from /proc by the test itself (Linux): the oracle the
//! watchdog's `fds` report is compared with. Every FD read and classified
//! ([`ProcCensus`]), TCP sockets with their endpoints and state, SQLite databases with
//! their companion files.

use std::fs;
use std::io::Read;
use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

/// One TCP socket of a process, from `/proc/PID/net/tcp{,6}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TcpSock {
    pub fd: i32,
    /// "tcp" or "tcp6".
    pub proto: String,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// "LISTEN", "ESTABLISHED", ... (netstat's names).
    pub state: String,
}

/// One open FD as the test classifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcFd {
    pub fd: i32,
    /// The readlink of /proc/PID/fd/N.
    pub target: String,
    /// The census kind: file, directory, fifo, device, tcp, tcp6, udp, udp6, unix,
    /// netlink, socket, pipe, eventfd, inotify, epoll, timerfd, signalfd, anon, other.
    pub kind: String,
}

/// One SQLite database and its companion files among the open FDs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SqliteFamily {
    pub database: String,
    pub db: u64,
    pub wal: u64,
    pub shm: u64,
    pub journal: u64,
}

impl SqliteFamily {
    pub fn total(&self) -> u64 {
        self.db + self.wal + self.shm + self.journal
    }
}

/// A process's FDs read and classified from /proc: readlink of every FD, `stat` through
/// the FD for path FDs, socket inodes looked up in `/proc/PID/net/*`.
#[derive(Debug, Clone)]
pub struct ProcCensus {
    pub pid: u32,
    /// Sorted by FD number.
    pub fds: Vec<ProcFd>,
    pub tcp: Vec<TcpSock>,
}

const TCP_STATES: [&str; 12] = [
    "", // 0 is not a state
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
];

/// "0100007F:1F90" (or the 32-hex-digit IPv6 form) → a socket address.
fn parse_proc_addr(s: &str) -> SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let (addr, port) = s
        .split_once(':')
        .unwrap_or_else(|| panic!("bad address {s}"));
    let port = u16::from_str_radix(port, 16).unwrap_or_else(|_| panic!("bad port in {s}"));
    // The kernel prints each 32-bit word of the (network-order) address as a host integer.
    let mut bytes = Vec::new();
    for i in (0..addr.len()).step_by(8) {
        let word =
            u32::from_str_radix(&addr[i..i + 8], 16).unwrap_or_else(|_| panic!("bad address {s}"));
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        16 => IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(bytes.as_slice()).unwrap(),
        )),
        _ => panic!("bad address {s}"),
    };
    SocketAddr::new(ip, port)
}

/// Socket inode → (kind, TCP endpoints and state) from the process's network namespace.
fn socket_table(pid: u32) -> std::collections::HashMap<u64, (String, Option<TcpSock>)> {
    let mut map = std::collections::HashMap::new();
    for (table, kind) in [
        ("tcp", "tcp"),
        ("tcp6", "tcp6"),
        ("udp", "udp"),
        ("udp6", "udp6"),
    ] {
        let text = fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 {
                continue;
            }
            let Ok(inode) = cols[9].parse::<u64>() else {
                continue;
            };
            if inode == 0 {
                continue; // TIME_WAIT and the like: no socket behind it
            }
            let tcp = kind.starts_with("tcp").then(|| {
                let st = usize::from_str_radix(cols[3], 16).unwrap_or(0);
                TcpSock {
                    fd: -1,
                    proto: kind.to_string(),
                    local: parse_proc_addr(cols[1]),
                    remote: parse_proc_addr(cols[2]),
                    state: TCP_STATES.get(st).copied().unwrap_or("UNKNOWN").to_string(),
                }
            });
            map.insert(inode, (kind.to_string(), tcp));
        }
    }
    // unix: "Num RefCount Protocol Flags Type St Inode Path"
    let text = fs::read_to_string(format!("/proc/{pid}/net/unix")).unwrap_or_default();
    for line in text.lines().skip(1) {
        if let Some(inode) = line
            .split_whitespace()
            .nth(6)
            .and_then(|i| i.parse::<u64>().ok())
        {
            map.insert(inode, ("unix".to_string(), None));
        }
    }
    // netlink: "sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode"
    let text = fs::read_to_string(format!("/proc/{pid}/net/netlink")).unwrap_or_default();
    for line in text.lines().skip(1) {
        if let Some(inode) = line
            .split_whitespace()
            .nth(9)
            .and_then(|i| i.parse::<u64>().ok())
        {
            map.insert(inode, ("netlink".to_string(), None));
        }
    }
    map
}

impl ProcCensus {
    /// Reads `pid`'s FDs now. FDs that vanish while being read are skipped.
    pub fn read(pid: u32) -> ProcCensus {
        use std::os::unix::fs::FileTypeExt;
        let sockets = socket_table(pid);
        let mut fds = Vec::new();
        let mut tcp = Vec::new();
        let dir = format!("/proc/{pid}/fd");
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {dir}: {e}")) {
            let Ok(entry) = entry else { continue };
            let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(target) = fs::read_link(entry.path()) else {
                continue;
            };
            let target = target.to_string_lossy().into_owned();
            let kind = if target.starts_with('/') {
                // stat through the FD: works for deleted files too.
                match fs::metadata(entry.path()) {
                    Ok(m) => {
                        let t = m.file_type();
                        if t.is_dir() {
                            "directory"
                        } else if t.is_fifo() {
                            "fifo"
                        } else if t.is_char_device() || t.is_block_device() {
                            "device"
                        } else {
                            "file"
                        }
                    }
                    Err(_) => continue,
                }
                .to_string()
            } else if let Some(ino) = target
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
            {
                let ino: u64 = ino.parse().unwrap_or_else(|_| panic!("bad {target}"));
                match sockets.get(&ino) {
                    Some((kind, t)) => {
                        if let Some(t) = t {
                            tcp.push(TcpSock { fd, ..t.clone() });
                        }
                        kind.clone()
                    }
                    None => "socket".to_string(),
                }
            } else if target.starts_with("pipe:") {
                "pipe".to_string()
            } else if let Some(anon) = target.strip_prefix("anon_inode:") {
                let name = anon.trim_start_matches('[').trim_end_matches(']');
                let name = name.split(':').next().unwrap_or(name);
                super::ps_lsof::anon_inode_kind(name).to_string()
            } else {
                "other".to_string()
            };
            fds.push(ProcFd { fd, target, kind });
        }
        fds.sort_by_key(|f| f.fd);
        tcp.sort();
        ProcCensus { pid, fds, tcp }
    }

    pub fn total(&self) -> u64 {
        self.fds.len() as u64
    }

    /// (fd, target) pairs: two readings with equal lists saw the same table.
    pub fn table(&self) -> Vec<(i32, String)> {
        self.fds.iter().map(|f| (f.fd, f.target.clone())).collect()
    }

    /// Census kind → count (non-zero only).
    pub fn kinds(&self) -> std::collections::BTreeMap<String, u64> {
        let mut m = std::collections::BTreeMap::new();
        for f in &self.fds {
            *m.entry(f.kind.clone()).or_default() += 1;
        }
        m
    }

    /// The coarse report counts: file (every path FD), socket, pipe, other.
    pub fn by_kind(&self) -> std::collections::BTreeMap<String, u64> {
        let mut m: std::collections::BTreeMap<String, u64> = ["file", "socket", "pipe", "other"]
            .iter()
            .map(|k| (k.to_string(), 0))
            .collect();
        for f in &self.fds {
            let k = if f.target.starts_with('/') {
                "file"
            } else if f.target.starts_with("socket:") {
                "socket"
            } else if f.target.starts_with("pipe:") {
                "pipe"
            } else {
                "other"
            };
            *m.get_mut(k).unwrap() += 1;
        }
        m
    }

    /// Every path FD target → count (deleted files keep " (deleted)").
    pub fn paths(&self) -> std::collections::BTreeMap<String, u64> {
        let mut m = std::collections::BTreeMap::new();
        for f in self.fds.iter().filter(|f| f.target.starts_with('/')) {
            *m.entry(f.target.clone()).or_default() += 1;
        }
        m
    }

    /// FDs of deleted files.
    pub fn deleted(&self) -> u64 {
        self.fds
            .iter()
            .filter(|f| f.target.starts_with('/') && f.target.ends_with(" (deleted)"))
            .count() as u64
    }

    /// SQLite databases among the open FDs: a path with an open `-wal`, `-shm` or
    /// `-journal` companion, or an open file starting with the SQLite header.
    pub fn sqlite_families(&self) -> Vec<SqliteFamily> {
        let paths = self.paths();
        let mut bases = std::collections::BTreeSet::new();
        // Regular files only: reading a FIFO would block.
        for f in self.fds.iter().filter(|f| f.kind == "file") {
            let p = &f.target;
            if p.ends_with(" (deleted)") {
                continue;
            }
            for suffix in ["-wal", "-shm", "-journal"] {
                if let Some(base) = p.strip_suffix(suffix) {
                    bases.insert(base.to_string());
                }
            }
            let mut head = [0u8; 16];
            if fs::File::open(p)
                .and_then(|mut f| f.read_exact(&mut head))
                .is_ok()
                && &head == b"SQLite format 3\0"
            {
                bases.insert(p.clone());
            }
        }
        let count = |p: String| paths.get(&p).copied().unwrap_or(0);
        bases
            .into_iter()
            .map(|b| SqliteFamily {
                db: count(b.clone()),
                wal: count(format!("{b}-wal")),
                shm: count(format!("{b}-shm")),
                journal: count(format!("{b}-journal")),
                database: b,
            })
            .collect()
    }
}

/// Runs `f` between two readings of `pid`'s FD table and returns the reading and `f`'s
/// result once both readings agree (the test server closes a control request's socket
/// just after answering, so a reading can race it). Panics after 20 tries.
pub fn with_stable_fds<T>(pid: u32, mut f: impl FnMut() -> T) -> (ProcCensus, T) {
    let mut last = String::new();
    for _ in 0..20 {
        let before = ProcCensus::read(pid);
        let out = f();
        let after = ProcCensus::read(pid);
        if before.table() == after.table() && before.tcp == after.tcp {
            return (after, out);
        }
        last = format!("before: {:?}\nafter: {:?}", before.table(), after.table());
        thread::sleep(Duration::from_millis(200));
    }
    panic!("the FD table of PID {pid} never held still across a reading:\n{last}");
}
