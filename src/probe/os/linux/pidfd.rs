//! Identifying another process's open files without resolving their paths: duplicate
//! each FD into this process with `pidfd_getfd(2)` (Linux 5.6), `statx` it, close the
//! copy. That costs about half a `readlink` of `/proc/PID/fd/N`, which walks the path
//! and builds the name for every FD; a leak holds thousands of FDs on a handful of
//! files, so the names are then read once per file. The copy only adds a reference to
//! the target's open file for a moment: no lock, offset or state of it changes.
//!
//! It needs more than reading `/proc/PID/fd` does: ptrace attach rights (same user,
//! and CAP_SYS_PTRACE under Yama's `ptrace_scope` 1 or 2). Yama logs every refused
//! attach to the kernel log, which once a minute would be a flood, so it is not even
//! tried where Yama would refuse ([`yama_lets_us_attach`]); callers then read a link
//! per FD, as they do when it is refused for another reason.
//!
//! One thing does change: a socket received by a process takes that process's cgroup
//! v1 `net_cls` class and `net_prio` index (the kernel's `__receive_sock`), which `tc`
//! filters and iptables' cgroup match act on. So the copy is only made when the
//! target sits in the same `net_cls` and `net_prio` groups as the watchdog, where the
//! tags it would get are the ones it has (see [`leaves_socket_tags_alone`]).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// What an FD refers to: the same file, seen through the same mount, has the same
/// device, inode and mount ID (`mount` is 0 where statx does not give it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub mount: u64,
}

impl FileId {
    pub fn is_socket(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFSOCK
    }
}

/// One FD as identified: its file, and how many names (hard links) the file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identified {
    pub file: FileId,
    pub links: u32,
}

pub struct Pidfd {
    handle: OwnedFd,
    /// The device of the kernel's anonymous-inode file system, learnt from an eventfd
    /// of our own.
    anonymous_device: Option<u64>,
}

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
        let handle = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Pidfd {
            handle,
            anonymous_device: anonymous_inode_device(),
        })
    }

    /// Whether every FD on this file shows the same name, so that one readlink names
    /// them all. Not for anonymous inodes: eventfds, epolls, timerfds, inotify
    /// instances and more share one inode (known by the missing file type bits or,
    /// should a kernel give them one, by their file system's device). Not for a file
    /// with several hard links either: each FD shows the name it was opened by.
    pub fn shares_one_name(&self, id: &Identified) -> bool {
        let kind = id.file.mode & libc::S_IFMT;
        let anonymous = kind == 0 || Some(id.file.dev) == self.anonymous_device;
        let other_names = kind != libc::S_IFDIR && id.links > 1;
        !anonymous && !other_names
    }

    /// The identity of the target's FD `fd`; `None` when it is not open (any more).
    pub fn identify(&self, fd: i32) -> io::Result<Option<Identified>> {
        // SAFETY: pidfd_getfd takes our pidfd, the target's FD number and flags; it
        // returns a new FD of ours or -1.
        let copy = unsafe { libc::syscall(libc::SYS_pidfd_getfd, self.handle.as_raw_fd(), fd, 0) };
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
        file_id(&owned).map(Some)
    }
}

/// `statx` of the copied FD itself (empty path), from what the kernel already has:
/// without AT_STATX_DONT_SYNC, a file on NFS, SMB or FUSE may have its attributes
/// fetched from its server, which can block (a hung mount) and is traffic on the
/// target's behalf. Device, inode, type and mount ID never need that; the link count
/// may then be the cached one.
const STATX_FLAGS: libc::c_int = libc::AT_EMPTY_PATH | libc::AT_STATX_DONT_SYNC;

fn file_id(fd: &OwnedFd) -> io::Result<Identified> {
    const WANTED: u32 = libc::STATX_TYPE | libc::STATX_INO | libc::STATX_NLINK | libc::STATX_MNT_ID;
    // SAFETY: an all-zero statx is a valid out-parameter.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: statx of our own FD (empty path), writing one statx through a pointer
    // to ours.
    let done = unsafe { libc::statx(fd.as_raw_fd(), c"".as_ptr(), STATX_FLAGS, WANTED, &mut st) };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    let mount = if st.stx_mask & libc::STATX_MNT_ID != 0 {
        st.stx_mnt_id
    } else {
        0
    };
    Ok(Identified {
        file: FileId {
            dev: libc::makedev(st.stx_dev_major, st.stx_dev_minor),
            ino: st.stx_ino,
            mode: u32::from(st.stx_mode),
            mount,
        },
        links: st.stx_nlink,
    })
}

/// The file type and mode bits of what `path` names (following a final link: a
/// `/proc/PID/fd/N` magic link leads to the open file itself), from the attributes the
/// kernel has cached (AT_STATX_DONT_SYNC, see [`STATX_FLAGS`]).
pub fn cached_mode(path: &std::path::Path) -> io::Result<u32> {
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
            libc::AT_STATX_DONT_SYNC,
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

fn anonymous_inode_device() -> Option<u64> {
    // SAFETY: eventfd takes a count and flags and returns a new FD or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh descriptor that nothing else owns, closed on drop.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    file_id(&owned).ok().map(|id| id.file.dev)
}

/// Whether Yama (`/proc/sys/kernel/yama/ptrace_scope`, absent without Yama) lets this
/// process attach to another one it does not descend from: scope 0 does; 1 and 2 only
/// with CAP_SYS_PTRACE (bit 19 of `CapEff` in our `/proc/self/status`); 3 never.
pub fn yama_lets_us_attach(scope: Option<&str>, our_status: &str) -> bool {
    const CAP_SYS_PTRACE: u32 = 19;
    let Some(scope) = scope else {
        return true;
    };
    match scope.trim() {
        "0" => true,
        "1" | "2" => our_status
            .lines()
            .find_map(|line| line.strip_prefix("CapEff:"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .is_some_and(|caps| caps & (1 << CAP_SYS_PTRACE) != 0),
        _ => false,
    }
}

/// Whether a `/proc/PID/mountinfo` lists a mount whose file system does work on the
/// close of an FD (`flush`) that may block or reach the network: NFS writes back, FUSE
/// (`fuse`, `fuseblk`, `fuse.*`, virtiofs) asks its daemon, and the other network and
/// cluster file systems talk to their servers. The type is the first field after the
/// ` - ` separator of each line.
pub fn has_flushing_mounts(mountinfo: &str) -> bool {
    const NETWORK: &[&str] = &[
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ceph",
        "9p",
        "afs",
        "virtiofs",
        "glusterfs",
        "lustre",
        "gfs2",
        "ocfs2",
        "davfs",
        "ncpfs",
        "coda",
        "orangefs",
        "beegfs",
        "gpfs",
    ];
    mountinfo.lines().any(|line| {
        let Some((_, after)) = line.split_once(" - ") else {
            return false;
        };
        let fs_type = after.split_whitespace().next().unwrap_or("");
        fs_type.starts_with("fuse") || NETWORK.contains(&fs_type)
    })
}

/// Whether receiving the target's sockets keeps their cgroup v1 network tags: true
/// when every v1 hierarchy carrying `net_cls` or `net_prio` puts the watchdog
/// (`ours`, its `/proc/self/cgroup`) and the target (`theirs`) in the same group. A
/// hierarchy only one of them lists counts as a difference.
pub fn leaves_socket_tags_alone(ours: &str, theirs: &str) -> bool {
    network_tag_groups(ours) == network_tag_groups(theirs)
}

/// `(controllers, path)` of the v1 hierarchies that tag sockets, from lines such as
/// `5:net_cls,net_prio:/slice/x`; cgroup v2's `0::/path` tags nothing.
fn network_tag_groups(cgroup: &str) -> Vec<(&str, &str)> {
    let mut groups: Vec<(&str, &str)> = cgroup
        .lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once(':')?;
            let (controllers, path) = rest.split_once(':')?;
            controllers
                .split(',')
                .any(|c| c == "net_cls" || c == "net_prio")
                .then_some((controllers, path))
        })
        .collect();
    groups.sort_unstable();
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yama_scopes() {
        let root = "Name:\tw\nCapEff:\t000001fffeffffff\n";
        let user = "Name:\tw\nCapEff:\t0000000000000000\n";
        let only_ptrace = "CapEff:\t0000000000080000\n";
        let table = [
            (None, user, true),
            (Some("0\n"), user, true),
            (Some("1\n"), user, false),
            (Some("1\n"), root, true),
            (Some("2\n"), only_ptrace, true),
            (Some("2\n"), user, false),
            (Some("3\n"), root, false),
            (Some("1\n"), "no caps line", false),
            (Some("garbage"), root, false),
        ];
        for (scope, status, allowed) in table {
            assert_eq!(
                yama_lets_us_attach(scope, status),
                allowed,
                "{scope:?} {status:?}"
            );
        }
    }

    #[test]
    fn socket_tags_are_left_alone_only_in_the_same_network_groups() {
        let v2_only = "0::/user.slice/session-1.scope\n";
        let v1_root = "9:net_cls,net_prio:/\n4:memory:/a\n0::/\n";
        let v1_shaped = "9:net_cls,net_prio:/shaped\n4:memory:/b\n0::/\n";
        let v1_split = "9:net_cls:/shaped\n8:net_prio:/\n0::/\n";
        assert!(leaves_socket_tags_alone(
            v2_only,
            "0::/system.slice/x.service\n"
        ));
        assert!(
            leaves_socket_tags_alone(v1_root, "9:net_cls,net_prio:/\n4:memory:/other\n"),
            "other controllers may differ"
        );
        assert!(leaves_socket_tags_alone(v1_shaped, v1_shaped));
        assert!(!leaves_socket_tags_alone(v1_root, v1_shaped));
        assert!(!leaves_socket_tags_alone(v1_shaped, v1_split));
        assert!(
            !leaves_socket_tags_alone(v2_only, v1_root),
            "a hierarchy one side lacks"
        );
        assert!(leaves_socket_tags_alone("", ""), "no cgroups at all");
    }

    #[test]
    fn network_and_fuse_mounts_are_found_by_type() {
        let local = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                     23 22 0:21 / /proc rw,nosuid - proc proc rw\n\
                     24 22 0:22 / /tmp rw - tmpfs tmpfs rw\n";
        assert!(!has_flushing_mounts(local));
        assert!(!has_flushing_mounts(""));
        for fs_type in [
            "nfs4",
            "cifs",
            "fuse.sshfs",
            "fuseblk",
            "fuse",
            "ceph",
            "9p",
        ] {
            let text = format!("{local}30 22 0:50 / /mnt rw shared:9 - {fs_type} server:/x rw\n");
            assert!(has_flushing_mounts(&text), "{fs_type}");
        }
        // Optional fields before the separator, and a mount point named like a type.
        let tricky = "31 22 0:51 / /nfs rw shared:2 master:3 - xfs /dev/sdb rw\n";
        assert!(!has_flushing_mounts(tricky));
    }

    /// The statx never asks a network or FUSE file's server: it reads the cached
    /// attributes (and of the FD itself, not of a path).
    #[test]
    fn statx_uses_cached_attributes_only() {
        assert_eq!(
            STATX_FLAGS & libc::AT_STATX_SYNC_TYPE,
            libc::AT_STATX_DONT_SYNC
        );
        assert_ne!(STATX_FLAGS & libc::AT_EMPTY_PATH, 0);
    }

    #[test]
    fn identifies_our_own_fds() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        let a = std::fs::File::create(&path).unwrap();
        let b = std::fs::File::open(&path).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let pidfd = Pidfd::open(std::process::id()).unwrap();
        let id_a = pidfd.identify(a.as_raw_fd()).unwrap().unwrap();
        let id_b = pidfd.identify(b.as_raw_fd()).unwrap().unwrap();
        assert_eq!(id_a, id_b, "two FDs on one file share an identity");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((id_a.file.dev, id_a.file.ino), (meta.dev(), meta.ino()));
        assert_eq!(id_a.links, 1);
        assert!(pidfd.shares_one_name(&id_a));
        let socket = pidfd.identify(listener.as_raw_fd()).unwrap().unwrap();
        assert!(socket.file.is_socket() && !id_a.file.is_socket());
        assert!(pidfd.shares_one_name(&socket));
        assert_eq!(pidfd.identify(1_000_000).unwrap(), None, "not open");

        // A second name for the file: each FD must now be read by its link.
        std::fs::hard_link(&path, dir.path().join("y")).unwrap();
        let linked = pidfd.identify(a.as_raw_fd()).unwrap().unwrap();
        assert_eq!(linked.links, 2);
        assert!(!pidfd.shares_one_name(&linked));
        let here = std::fs::File::open(dir.path()).unwrap();
        assert!(
            pidfd.shares_one_name(&pidfd.identify(here.as_raw_fd()).unwrap().unwrap()),
            "a directory's links are its subdirectories, not other names"
        );

        // SAFETY: plain syscalls returning new FDs of ours, wrapped at once.
        let (event, poll) = unsafe {
            (
                OwnedFd::from_raw_fd(libc::eventfd(0, libc::EFD_CLOEXEC)),
                OwnedFd::from_raw_fd(libc::epoll_create1(libc::EPOLL_CLOEXEC)),
            )
        };
        let event = pidfd.identify(event.as_raw_fd()).unwrap().unwrap();
        let poll = pidfd.identify(poll.as_raw_fd()).unwrap().unwrap();
        assert!(!pidfd.shares_one_name(&event) && !pidfd.shares_one_name(&poll));
        assert!(pidfd.anonymous_device.is_some());
    }
}
