//! The full FD census of the target — what `lsof -p PID | sort | uniq -c | sort -rn`
//! tells, grouped: counts by detailed kind, every path with its count, the TCP
//! sockets with their ends and states, and SQLite databases with their `-wal`, `-shm`
//! and `-journal` files as one family. Used by `watchdog fds` and incident snapshots.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::config::FdPathRule;
use crate::probe::fds::{self, FdReading, PathCount};
use crate::probe::os::{self, FdEntry, FdLimit, FileKind, OsError};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Census {
    /// The same object as the run's report, with every path in `top_paths`.
    #[serde(flatten)]
    pub reading: FdReading,
    /// Count per detailed kind; only kinds present.
    pub kinds: BTreeMap<&'static str, u64>,
    pub tcp: Vec<TcpSocket>,
    pub sqlite: Vec<SqliteFamily>,
    /// FDs on files that have been deleted (still taking disk space).
    pub deleted: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TcpSocket {
    pub fd: i32,
    pub proto: String,
    pub local: String,
    pub remote: String,
    pub state: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SqliteFamily {
    pub database: String,
    pub total: u64,
    pub db: u64,
    pub wal: u64,
    pub shm: u64,
    pub journal: u64,
}

/// Reads the census of `pid`. Permission errors stay errors: an unreadable process is
/// never reported as holding no FDs.
pub fn take(pid: u32, rules: &[FdPathRule]) -> Result<Census, OsError> {
    let mut entries = os::list_fds(pid)?;
    let limit = os::fd_limit(pid)?;
    describe_sockets(
        &mut entries,
        &os::socket_descriptions(pid).unwrap_or_default(),
    );
    Ok(build(&entries, limit, rules, |fd, path| {
        os::fd_file_kind(pid, fd, path)
    }))
}

/// Replaces `socket:[INODE]` with `socket:[tcp 127.0.0.1:8787 LISTEN]` where the
/// inode is known.
fn describe_sockets(entries: &mut [FdEntry], descriptions: &HashMap<u64, String>) {
    for entry in entries {
        if let Some(text) = os::socket_inode(&entry.link).and_then(|i| descriptions.get(&i)) {
            entry.link = format!("socket:[{text}]");
        }
    }
}

/// The census of a listing. Everything about files is worked out once per distinct
/// path and weighed by its count: a leak repeats one path thousands of times.
pub fn build(
    entries: &[FdEntry],
    limit: Option<FdLimit>,
    rules: &[FdPathRule],
    file_kind: impl Fn(i32, &str) -> Option<FileKind>,
) -> Census {
    let reading = fds::summarize(entries, limit, rules, usize::MAX);
    let mut first_fd: HashMap<&str, i32> = HashMap::new();
    let mut kinds: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut tcp = Vec::new();
    for entry in entries {
        let target = entry.link.as_str();
        if target.starts_with('/') {
            first_fd.entry(target).or_insert(entry.fd);
            continue;
        }
        *kinds.entry(special_kind_name(target)).or_default() += 1;
        if let Some(socket) = tcp_socket(entry) {
            tcp.push(socket);
        }
    }
    let mut deleted = 0;
    for path in &reading.top_paths {
        if path.path.ends_with(" (deleted)") {
            deleted += path.count;
        }
        let fd = first_fd.get(path.path.as_str()).copied().unwrap_or(-1);
        *kinds
            .entry(file_kind_name(file_kind(fd, &path.path)))
            .or_default() += path.count;
    }
    Census {
        sqlite: sqlite_families(&reading.top_paths),
        reading,
        kinds,
        tcp,
        deleted,
    }
}

fn file_kind_name(kind: Option<FileKind>) -> &'static str {
    match kind {
        Some(FileKind::Directory) => "directory",
        Some(FileKind::Fifo) => "fifo",
        Some(FileKind::Device) => "device",
        Some(FileKind::Regular | FileKind::Other) | None => "file",
    }
}

/// Kinds named by the target text: sockets (described or not), pipes, anonymous inodes.
pub fn special_kind_name(target: &str) -> &'static str {
    if let Some(inner) = os::socket_text(target) {
        return match inner.split(' ').next() {
            Some("tcp") => "tcp",
            Some("tcp6") => "tcp6",
            Some("udp") => "udp",
            Some("udp6") => "udp6",
            Some("unix") => "unix",
            Some("netlink") => "netlink",
            _ => "socket",
        };
    }
    if target.starts_with("pipe:") {
        return "pipe";
    }
    if let Some(anon) = target.strip_prefix("anon_inode:") {
        let name = anon.trim_start_matches('[').trim_end_matches(']');
        return match name {
            "eventfd" => "eventfd",
            "inotify" => "inotify",
            "eventpoll" => "epoll",
            "timerfd" => "timerfd",
            "signalfd" => "signalfd",
            "kqueue" => "kqueue",
            _ => "anon",
        };
    }
    "other"
}

/// `socket:[tcp L STATE]` or `socket:[tcp L->R STATE]`.
fn tcp_socket(entry: &FdEntry) -> Option<TcpSocket> {
    let inner = os::socket_text(&entry.link)?;
    let (proto, rest) = inner.split_once(' ')?;
    if proto != "tcp" && proto != "tcp6" {
        return None;
    }
    let (ends, state) = rest.rsplit_once(' ')?;
    let (local, remote) = match ends.split_once("->") {
        Some((local, remote)) => (local.to_string(), remote.to_string()),
        None if proto == "tcp6" => (ends.to_string(), "[::]:0".to_string()),
        None => (ends.to_string(), "0.0.0.0:0".to_string()),
    };
    Some(TcpSocket {
        fd: entry.fd,
        proto: proto.to_string(),
        local,
        remote,
        state: state.to_string(),
    })
}

/// Databases that have a `-wal`, `-shm` or `-journal` file open, each with the split
/// of its FDs: the signature of the leak this tool was written for.
fn sqlite_families(paths: &[PathCount]) -> Vec<SqliteFamily> {
    let mut families: HashMap<&str, SqliteFamily> = HashMap::new();
    for PathCount { path, count } in paths {
        if !path.starts_with('/') || path.ends_with(" (deleted)") {
            continue;
        }
        let (database, slot): (&str, fn(&mut SqliteFamily) -> &mut u64) =
            if let Some(base) = path.strip_suffix("-wal") {
                (base, |f| &mut f.wal)
            } else if let Some(base) = path.strip_suffix("-shm") {
                (base, |f| &mut f.shm)
            } else if let Some(base) = path.strip_suffix("-journal") {
                (base, |f| &mut f.journal)
            } else {
                (path, |f| &mut f.db)
            };
        let family = families.entry(database).or_insert_with(|| SqliteFamily {
            database: database.to_string(),
            ..SqliteFamily::default()
        });
        *slot(family) += count;
        family.total += count;
    }
    let mut found: Vec<SqliteFamily> = families
        .into_values()
        .filter(|f| f.wal + f.shm + f.journal > 0)
        .collect();
    found.sort_by(|a, b| {
        b.total
            .cmp(&a.total)
            .then_with(|| a.database.cmp(&b.database))
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::fds::tests::entries;

    #[test]
    fn kinds_from_names_and_file_types() {
        let list = entries(&[
            "/data/state.db",
            "/data",
            "/data/fifo",
            "/dev/null",
            "/tmp/x (deleted)",
            "socket:[tcp 127.0.0.1:8787 LISTEN]",
            "socket:[tcp6 [::1]:8787->[::1]:5000 ESTABLISHED]",
            "socket:[udp 0.0.0.0:5353]",
            "socket:[unix /run/s.sock]",
            "socket:[netlink]",
            "socket:[99999]",
            "pipe:[1]",
            "anon_inode:[eventfd]",
            "anon_inode:inotify",
            "anon_inode:[eventpoll]",
            "anon_inode:[timerfd]",
            "anon_inode:[signalfd]",
            "anon_inode:[pidfd]",
            "anon_inode:[kqueue]",
            "net:[4026531840]",
        ]);
        let census = build(&list, None, &[], |_, path| match path {
            "/data" => Some(FileKind::Directory),
            "/data/fifo" => Some(FileKind::Fifo),
            "/dev/null" => Some(FileKind::Device),
            _ => Some(FileKind::Regular),
        });
        let expected: BTreeMap<&str, u64> = [
            ("file", 2),
            ("directory", 1),
            ("fifo", 1),
            ("device", 1),
            ("tcp", 1),
            ("tcp6", 1),
            ("udp", 1),
            ("unix", 1),
            ("netlink", 1),
            ("socket", 1),
            ("pipe", 1),
            ("eventfd", 1),
            ("inotify", 1),
            ("epoll", 1),
            ("timerfd", 1),
            ("signalfd", 1),
            ("anon", 1),
            ("kqueue", 1),
            ("other", 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(census.kinds, expected);
        assert_eq!(census.kinds.values().sum::<u64>(), census.reading.total);
        assert_eq!(census.deleted, 1);
        assert_eq!(
            census.reading.by_kind.file, 5,
            "the coarse kinds count every path"
        );
    }

    #[test]
    fn tcp_sockets_with_their_ends() {
        let list = entries(&[
            "socket:[tcp 127.0.0.1:8787 LISTEN]",
            "socket:[tcp 127.0.0.1:8787->127.0.0.1:50000 ESTABLISHED]",
            "socket:[tcp6 [::1]:8787 LISTEN]",
            "socket:[udp 0.0.0.0:5353]",
        ]);
        let census = build(&list, None, &[], |_, _| None);
        let shown: Vec<(i32, &str, &str, &str, &str)> = census
            .tcp
            .iter()
            .map(|t| {
                (
                    t.fd,
                    t.proto.as_str(),
                    t.local.as_str(),
                    t.remote.as_str(),
                    t.state.as_str(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                (0, "tcp", "127.0.0.1:8787", "0.0.0.0:0", "LISTEN"),
                (1, "tcp", "127.0.0.1:8787", "127.0.0.1:50000", "ESTABLISHED"),
                (2, "tcp6", "[::1]:8787", "[::]:0", "LISTEN"),
            ]
        );
    }

    #[test]
    fn sqlite_families_group_the_wal_and_shm() {
        let mut targets = vec!["/h/state.db"; 5];
        targets.extend(vec!["/h/state.db-wal"; 5]);
        targets.push("/h/state.db-shm");
        targets.push("/h/other.db");
        targets.push("/h/cache.sqlite-journal");
        let census = build(&entries(&targets), None, &[], |_, _| {
            Some(FileKind::Regular)
        });
        assert_eq!(
            census.sqlite,
            vec![
                SqliteFamily {
                    database: "/h/state.db".into(),
                    total: 11,
                    db: 5,
                    wal: 5,
                    shm: 1,
                    journal: 0
                },
                SqliteFamily {
                    database: "/h/cache.sqlite".into(),
                    total: 1,
                    db: 0,
                    wal: 0,
                    shm: 0,
                    journal: 1
                },
            ]
        );
    }

    #[test]
    fn sockets_are_described_by_inode() {
        let mut list = entries(&["socket:[41234]", "socket:[5]", "pipe:[41234]"]);
        let descriptions = HashMap::from([(41234, "tcp 127.0.0.1:8787 LISTEN".to_string())]);
        describe_sockets(&mut list, &descriptions);
        assert_eq!(list[0].link, "socket:[tcp 127.0.0.1:8787 LISTEN]");
        assert_eq!(list[1].link, "socket:[5]");
        assert_eq!(list[2].link, "pipe:[41234]");
    }

    #[test]
    fn file_kinds_are_asked_once_per_path() {
        let list = entries(&["/same"; 1000]);
        let asked = std::cell::Cell::new(0);
        build(&list, None, &[], |_, _| {
            asked.set(asked.get() + 1);
            None
        });
        assert_eq!(asked.get(), 1);
    }

    #[test]
    fn a_live_census_of_this_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let _dir_fd = std::fs::File::open(dir.path()).unwrap();
        let census = take(std::process::id(), &[]).unwrap();
        assert!(
            census
                .tcp
                .iter()
                .any(|t| t.local == format!("127.0.0.1:{port}") && t.state == "LISTEN"),
            "{:?}",
            census.tcp
        );
        assert!(census.kinds.get("directory").copied().unwrap_or(0) >= 1);
        assert_eq!(census.kinds.values().sum::<u64>(), census.reading.total);
    }
}
