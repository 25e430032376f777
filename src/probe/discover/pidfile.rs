//! Reading a pidfile: the PID it names and when it was written.

use std::io::Read;
use std::path::Path;
use std::time::SystemTime;

use crate::safe_fs::{self, SafeFsError};

/// A pidfile is a line of digits; anything longer is not one, and reading a huge file
/// by mistake must not cost memory.
const MAX_PIDFILE_BYTES: u64 = 4096;

#[derive(Debug, Clone, PartialEq)]
pub enum Pidfile {
    /// The file does not exist: the source is simply not set this run.
    Missing,
    /// The file could not be read or holds no PID; `why` completes "the pidfile ...".
    Invalid { why: String },
    /// A symbolic link: never followed, whoever planted it.
    Symlink,
    Names {
        pid: u32,
        written: Option<SystemTime>,
        file: FileFacts,
    },
}

/// What the trust rule looks at, from the opened file itself (not the path, which could
/// be swapped after the open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileFacts {
    pub owner: u32,
    /// The file's group: a group-writable file is fine if it is the owner's private
    /// group (a umask of 002).
    pub group: u32,
    pub mode: u32,
    /// Hard links: more than one, and the file could be another file's content given
    /// this name by whoever may create files in the directory.
    pub links: u64,
}

pub fn read(path: &Path) -> Pidfile {
    use std::os::unix::fs::MetadataExt;
    // No symlink is followed and a FIFO never blocks (safe_fs): a pidfile is data
    // another user may have written, read by a watchdog that may be root.
    let mut file = match safe_fs::open_regular(path) {
        Ok(file) => file,
        Err(e) if e.is_not_found() => return Pidfile::Missing,
        Err(SafeFsError::Symlink { .. }) => return Pidfile::Symlink,
        Err(SafeFsError::NotRegular { kind, .. }) => {
            return Pidfile::Invalid {
                why: format!("is not a regular file ({kind})"),
            };
        }
        Err(SafeFsError::Io { source, .. }) => {
            return Pidfile::Invalid {
                why: format!("cannot be read: {source}"),
            };
        }
        Err(e) => {
            return Pidfile::Invalid {
                why: format!("cannot be read: {e}"),
            };
        }
    };
    let metadata = match file.metadata() {
        Ok(metadata) => metadata,
        Err(e) => {
            return Pidfile::Invalid {
                why: format!("cannot be read: {e}"),
            };
        }
    };
    let written = metadata.modified().ok();
    let mut bytes = Vec::new();
    if let Err(e) = file
        .by_ref()
        .take(MAX_PIDFILE_BYTES + 1)
        .read_to_end(&mut bytes)
    {
        return Pidfile::Invalid {
            why: format!("cannot be read: {e}"),
        };
    }
    // Cut at the limit, the digits at the cut would read as a shorter PID.
    if bytes.len() as u64 > MAX_PIDFILE_BYTES {
        return Pidfile::Invalid {
            why: format!("is longer than {MAX_PIDFILE_BYTES} bytes: not a pidfile"),
        };
    }
    match parse_pid(&bytes) {
        Ok(pid) => Pidfile::Names {
            pid,
            written,
            file: FileFacts {
                owner: metadata.uid(),
                group: metadata.gid(),
                mode: metadata.mode(),
                links: metadata.nlink(),
            },
        },
        Err(why) => Pidfile::Invalid { why },
    }
}

/// Whether a pidfile may name a process owned by `process_uid` (docs/SECURITY.md): to
/// a root watchdog, which could signal anything, and to any other, which could signal
/// its own user's processes that are not the server. The rule is systemd's for `PIDFile=` (src/core/service.c,
/// `service_load_pid_file`): a PID read from a file that someone other than the
/// process's owner or root could have written is not believed — systemd only accepts a
/// PID outside the unit's control group when the file is owned by root and reached
/// without an unsafe symlink chain. Here, without a control group to compare with:
/// - the file is owned by root or by the process's owner (a user may name their own
///   processes, nobody else's);
/// - neither the file nor any directory above it is writable by anyone else; a sticky
///   directory (`/tmp`) is fine, as others cannot replace a file they do not own there;
/// - it has one name: a hard link made by someone who may create files in the
///   directory (where `fs.protected_hardlinks` is off) would give root's own file, and
///   the PID in it, the pidfile's name.
///
/// `Err` completes "the pidfile ...", naming the owner and the fix.
pub fn check_trust(path: &Path, file: &FileFacts, process_uid: Option<u32>) -> Result<(), String> {
    let FileFacts {
        owner,
        group,
        mode,
        links,
    } = *file;
    let Some(process_uid) = process_uid else {
        return Err("names a process whose owner cannot be read".to_string());
    };
    if owner != 0 && owner != process_uid {
        return Err(format!(
            "is owned by uid {owner}, but the process it names runs as uid {process_uid}: a \
             user may only name their own processes; have the server write it as uid \
             {process_uid}, or `chown {process_uid} {}`",
            path.display()
        ));
    }
    if links > 1 {
        return Err(format!(
            "(owned by uid {owner}) has {links} hard links, so it may be another file given \
             this name; have the server write it afresh (e.g. write a new file and rename it)"
        ));
    }
    if safe_fs::writable_by_others_than_owner(mode, owner, group) {
        return Err(format!(
            "is writable by others than its owner uid {owner} (mode {:o}); run `chmod go-w {}`",
            mode & 0o7777,
            path.display()
        ));
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    safe_fs::check_trusted_chain(dir, &[process_uid]).map_err(|e| {
        format!(
            "(owned by uid {owner}) lies where a user other than root and the process's \
             owner uid {process_uid} could replace it: {e}"
        )
    })
}

/// The whole content, trimmed, must be a positive PID.
pub(crate) fn parse_pid(bytes: &[u8]) -> Result<u32, String> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.is_empty() {
        return Err("does not contain a PID: the file is empty".to_string());
    }
    match text.parse::<u32>() {
        Ok(pid) if pid > 0 => Ok(pid),
        _ => Err(format!("does not contain a PID: {:?}", shorten(text, 40))),
    }
}

/// `text` cut to its first `max_chars` characters, with `…` marking a cut.
pub(super) fn shorten(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut short: String = text.chars().take(max_chars).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_os = "linux")]
    use std::path::PathBuf;

    #[test]
    fn plain_pid_with_newline() {
        assert_eq!(parse_pid(b"4242\n"), Ok(4242));
        assert_eq!(parse_pid(b"  17  "), Ok(17));
    }

    #[test]
    fn garbage_is_explained() {
        assert_eq!(
            parse_pid(b""),
            Err("does not contain a PID: the file is empty".into())
        );
        assert_eq!(
            parse_pid(b"abc"),
            Err(r#"does not contain a PID: "abc""#.into())
        );
        assert!(parse_pid(b"0").is_err());
        assert!(parse_pid(b"-5").is_err());
        assert!(parse_pid(b"12 34").is_err());
        assert!(parse_pid(b"99999999999").is_err());
        assert!(parse_pid(b"\xff\xfe").is_err());
        let long = parse_pid("x".repeat(100).as_bytes()).unwrap_err();
        assert!(long.chars().count() < 80, "{long}");
    }

    #[test]
    fn a_fifo_or_a_directory_is_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("webui.pid");
        let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo takes a NUL-terminated path and a mode.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        let not_a_file = |kind: &str| Pidfile::Invalid {
            why: format!("is not a regular file ({kind})"),
        };
        assert_eq!(read(&fifo), not_a_file("a FIFO"));
        assert_eq!(read(dir.path()), not_a_file("a directory"));
    }

    /// The trust rule on real files with real owners and real directory modes (root
    /// only: only root can give a file away).
    #[cfg(target_os = "linux")]
    #[test]
    #[ignore = "needs root (chowns pidfiles and their directories to other users): run by script/test as root and .ci/run"]
    fn a_pidfile_is_trusted_only_if_its_writers_could_signal_the_process_anyway() {
        use std::os::unix::fs::{PermissionsExt, chown};
        assert_eq!(
            crate::safe_fs::own_euid(),
            0,
            "this test chowns files: run it as root (script/test as root runs it; so does .ci/run)"
        );
        let (server, attacker) = (4242, 4343);
        let dir = tempfile::tempdir().unwrap();
        let subdir = |name: &str, owner: u32, mode: u32| {
            let path = dir.path().join(name);
            std::fs::create_dir(&path).unwrap();
            chown(&path, Some(owner), Some(owner)).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        };
        let pidfile = |dir: &Path, owner: u32, mode: u32| {
            let path = dir.join(format!("{owner}-{mode:o}.pid"));
            std::fs::write(&path, "123\n").unwrap();
            chown(&path, Some(owner), Some(owner)).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let Pidfile::Names { file, .. } = read(&path) else {
                panic!("{} not read", path.display());
            };
            (path, file)
        };
        let check = |(path, file): &(PathBuf, FileFacts), process: Option<u32>| {
            check_trust(path, file, process)
        };
        let refused = |(path, file): &(PathBuf, FileFacts), process: u32, says: &str| {
            let why = check_trust(path, file, Some(process)).unwrap_err();
            assert!(why.contains(says), "{}: {why}", path.display());
        };

        let private = subdir("private", 0, 0o755);
        check(&pidfile(&private, server, 0o644), Some(server)).expect("the owner's own file");
        check(&pidfile(&private, 0, 0o644), Some(server)).expect("root's file names anyone");
        refused(
            &pidfile(&private, attacker, 0o644),
            server,
            "is owned by uid 4343, but the process it names runs as uid 4242",
        );
        refused(&pidfile(&private, attacker, 0o644), server, "chown 4242");
        refused(&pidfile(&private, server, 0o666), server, "chmod go-w");
        // Group-writable: fine for the owner's private group (root's `root` here; a
        // umask of 002 makes every file so), not for a group that is not one.
        check(&pidfile(&private, 0, 0o664), Some(server)).expect("root's own group");
        refused(&pidfile(&private, server, 0o664), server, "chmod go-w");
        assert!(check(&pidfile(&private, server, 0o644), None).is_err());

        // /tmp-like: others may create files, but not replace the owner's.
        let sticky = subdir("sticky", 0, 0o1777);
        check(&pidfile(&sticky, server, 0o644), Some(server)).expect("sticky dir");
        refused(
            &pidfile(&sticky, attacker, 0o644),
            0,
            "is owned by uid 4343",
        );

        let shared = subdir("shared", 0, 0o777);
        refused(
            &pidfile(&shared, server, 0o644),
            server,
            "without the sticky bit",
        );

        let attackers = subdir("attackers", attacker, 0o755);
        refused(
            &pidfile(&attackers, server, 0o644),
            server,
            "is owned by uid 4343",
        );
        let servers = subdir("servers", server, 0o755);
        check(&pidfile(&servers, server, 0o644), Some(server)).expect("the owner's dir");
        // The server's owner may not name root's processes from a directory they own.
        refused(&pidfile(&servers, 0, 0o644), 0, "is owned by uid 4242");

        // Root's own file, given a second name in a sticky directory.
        let roots = pidfile(&private, 0, 0o644);
        let planted = sticky.join("planted.pid");
        std::fs::hard_link(&roots.0, &planted).unwrap();
        let Pidfile::Names { file, .. } = read(&planted) else {
            panic!("not read");
        };
        refused(&(planted, file), 0, "has 2 hard links");
    }

    #[test]
    fn missing_file_is_not_set() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(&dir.path().join("nope.pid")), Pidfile::Missing);
    }

    #[test]
    fn file_on_disk_with_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pid");
        std::fs::write(&path, "123\n").unwrap();
        let Pidfile::Names { pid, written, .. } = read(&path) else {
            panic!("not read")
        };
        assert_eq!(pid, 123);
        assert!(written.is_some());
    }

    #[test]
    fn a_file_longer_than_the_limit_is_invalid_not_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pid");
        // Cut at 4096 bytes, this would read as PID 42.
        let padded = format!("{}4242\n", " ".repeat(MAX_PIDFILE_BYTES as usize - 2));
        std::fs::write(&path, padded).unwrap();
        let Pidfile::Invalid { why } = read(&path) else {
            panic!("read as a PID")
        };
        assert!(why.contains("longer than 4096 bytes"), "{why}");
    }

    #[test]
    fn directory_is_invalid_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(read(dir.path()), Pidfile::Invalid { .. }));
    }
}
