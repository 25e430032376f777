//! Opening files that another user may have planted or swapped (docs/SECURITY.md).
//!
//! The watchdog often runs as root over directories an ordinary user owns. Every file it
//! reads from outside (config, pidfile, history) or writes (log, history, incidents) goes
//! through here, so that:
//! - a symlink at the final component is never followed (`O_NOFOLLOW`): root does not
//!   overwrite or read a file the link points at;
//! - a FIFO or device never blocks the run (`O_NONBLOCK` at open, then a check that the
//!   file is regular before any read);
//! - a directory that holds state is one only the effective user (or root) can change,
//!   all the way up from `/`, so nobody can swap a file between a check and its use;
//! - a file replaced atomically is written to a new file with an unpredictable name,
//!   created with `O_EXCL`, and made durable with `fsync` of the file and its directory.
//!
//! Everything here is plain POSIX, the same on Linux and macOS.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Why a file or directory is not used.
#[derive(Debug, thiserror::Error)]
pub enum SafeFsError {
    #[error("{path} is a symbolic link; refusing to follow it")]
    Symlink { path: PathBuf },
    #[error("{path} is not a regular file ({kind})")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{path} has {links} hard links; refusing to write into a file it shares")]
    HardLinked { path: PathBuf, links: u64 },
    #[error("{path} is larger than {max} bytes")]
    TooLarge { path: PathBuf, max: u64 },
    #[error("{path}: {why}")]
    Untrusted { path: PathBuf, why: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl SafeFsError {
    fn io(path: &Path, source: io::Error) -> SafeFsError {
        SafeFsError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The file is simply not there (not an error for optional files).
    pub fn is_not_found(&self) -> bool {
        matches!(self, SafeFsError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// What kind of file a mode describes, in words for an error message.
pub fn kind_name(file_type: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_file() {
        "a regular file"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() || file_type.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading without following a final symlink and without blocking on a
/// FIFO, and checks that it is a regular file. The returned file blocks again on reads.
pub fn open_regular(path: &Path) -> Result<File, SafeFsError> {
    open_regular_with(path, libc::O_NOFOLLOW).map(|(file, _)| file)
}

/// The opened regular file and its metadata (read from the opened file).
fn open_regular_with(
    path: &Path,
    extra_flags: libc::c_int,
) -> Result<(File, fs::Metadata), SafeFsError> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(extra_flags | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path);
    regular_opened(path, opened)
}

/// The file just opened at `path`, if the open succeeded and what it opened is a regular
/// file: a FIFO, socket, device or directory is refused by its kind.
fn regular_opened(
    path: &Path,
    opened: io::Result<File>,
) -> Result<(File, fs::Metadata), SafeFsError> {
    let file = opened.map_err(|e| opened_error(path, e))?;
    let meta = file.metadata().map_err(|e| SafeFsError::io(path, e))?;
    if !meta.is_file() {
        return Err(not_regular(path, meta.file_type()));
    }
    Ok((file, meta))
}

/// The refusal of what is at `path` because it is a `file_type`, not a regular file.
fn not_regular(path: &Path, file_type: fs::FileType) -> SafeFsError {
    SafeFsError::NotRegular {
        path: path.to_path_buf(),
        kind: kind_name(file_type),
    }
}

/// `O_NOFOLLOW` on a symlink fails with `ELOOP` (Linux and macOS): say what it means.
/// A FIFO without a reader, opened for writing without blocking, fails with `ENXIO`:
/// name the kind of file instead.
fn opened_error(path: &Path, e: io::Error) -> SafeFsError {
    match e.raw_os_error() {
        Some(libc::ELOOP) => SafeFsError::Symlink {
            path: path.to_path_buf(),
        },
        Some(libc::ENXIO) => match fs::symlink_metadata(path) {
            Ok(meta) => not_regular(path, meta.file_type()),
            Err(_) => SafeFsError::io(path, e),
        },
        _ => SafeFsError::io(path, e),
    }
}

/// Reads a whole regular file of at most `max` bytes (see [`open_regular`]).
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, SafeFsError> {
    let (file, meta) = open_regular_with(path, libc::O_NOFOLLOW)?;
    read_opened(path, file, &meta, max)
}

/// As [`read_regular`], but a symlink is followed to the file it names: for a file the
/// operator names and owns (the configuration, often a link into a dotfiles
/// repository), where a link is a choice, not a plant. A FIFO or device at the end of
/// the link is still refused at once.
pub fn read_regular_following(path: &Path, max: u64) -> Result<Vec<u8>, SafeFsError> {
    let (file, meta) = open_regular_with(path, 0)?;
    read_opened(path, file, &meta, max)
}

/// As [`read_regular_following`], for a file whose content the watchdog obeys (its
/// configuration, whose commands it runs): the file opened must belong to `euid` or
/// root and be writable by nobody else (its owner's private group aside). Judged on the
/// opened file, wherever a link led: what is read is what was checked.
pub fn read_trusted_following(path: &Path, max: u64, euid: u32) -> Result<Vec<u8>, SafeFsError> {
    let (file, meta) = open_regular_with(path, 0)?;
    let untrusted = |why: String| SafeFsError::Untrusted {
        path: path.to_path_buf(),
        why,
    };
    if meta.uid() != euid && meta.uid() != 0 {
        return Err(untrusted(format!(
            "is owned by uid {}, not by this user (uid {euid}) or root; run `chown {euid} {}`",
            meta.uid(),
            path.display()
        )));
    }
    if writable_by_others(&meta) {
        return Err(untrusted(format!(
            "is writable by {} (mode {:o}); run `chmod go-w {}`",
            writable_by(meta.mode()),
            meta.mode() & 0o7777,
            path.display()
        )));
    }
    read_opened(path, file, &meta, max)
}

/// Reads `file` (whose metadata is `meta`) to its end, refusing more than `max` bytes.
/// The buffer starts at the size the file had when opened: without it the read grows
/// from 32 bytes, a dozen reads and copies for a history of a few hundred KiB. The
/// size is only a hint: a file that grew is still read to its end, and capped.
fn read_opened(
    path: &Path,
    file: File,
    meta: &fs::Metadata,
    max: u64,
) -> Result<Vec<u8>, SafeFsError> {
    let hint = meta.len().min(max).saturating_add(1);
    let mut bytes = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| SafeFsError::io(path, e))?;
    if bytes.len() as u64 > max {
        return Err(SafeFsError::TooLarge {
            path: path.to_path_buf(),
            max,
        });
    }
    Ok(bytes)
}

/// Opens (creating with `mode` when missing) a regular file for appending, never through
/// a symlink, never a FIFO, and never a file with another name too: a hard link planted
/// at the name would have the appends land in the file it shares.
pub fn open_append(path: &Path, mode: u32) -> Result<File, SafeFsError> {
    let opened = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path);
    let (file, meta) = regular_opened(path, opened)?;
    let links = meta.nlink();
    if links > 1 {
        return Err(SafeFsError::HardLinked {
            path: path.to_path_buf(),
            links,
        });
    }
    Ok(file)
}

/// A name no other process can guess, for a temporary file beside its destination:
/// std's `RandomState` is seeded from the OS's random source once per process, mixed
/// here with the PID and the time.
pub fn unpredictable_name(prefix: &str) -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    format!("{prefix}.tmp-{:016x}", hasher.finish())
}

/// Replaces `path` with `bytes` atomically: a new file with an unpredictable name,
/// created exclusively (`O_EXCL`, so a planted file or link is never written through),
/// mode `mode`, renamed over `path`. With `durable`, the file and then its directory are
/// fsynced, so a power cut leaves the old content or the new, never none.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    durable: bool,
) -> Result<(), SafeFsError> {
    let dir = parent_of(path);
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(unpredictable_name(&format!(".{name}")));
    let written = write_new(&tmp, bytes, mode, durable)
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| SafeFsError::io(path, e)));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    if durable {
        fsync_dir(&dir)?;
    }
    Ok(())
}

/// Creates `path` (which must not exist) with `bytes`, mode exactly `mode`: the umask
/// (077 in many root crontabs) would otherwise narrow a file meant for another user's
/// reader, the node_exporter of a metrics textfile. Set on the file just created
/// (`fchmod`), never by path, which a link swapped in could redirect.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32, durable: bool) -> Result<(), SafeFsError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| opened_error(path, e))?;
    set_mode(&file, mode).map_err(|e| SafeFsError::io(path, e))?;
    file.write_all(bytes)
        .map_err(|e| SafeFsError::io(path, e))?;
    if durable {
        file.sync_all().map_err(|e| SafeFsError::io(path, e))?;
    }
    Ok(())
}

/// fsync of a directory, so that a rename or a new entry in it survives a power cut.
/// A symlink to the directory is followed: the directory was checked
/// ([`check_trusted_dir`] accepts a link of this user's or root's, as an operator's
/// `[state] dir` may be), and a read-only open of a directory writes nothing anywhere.
pub fn fsync_dir(dir: &Path) -> Result<(), SafeFsError> {
    let handle = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
        .map_err(|e| opened_error(dir, e))?;
    handle.sync_all().map_err(|e| SafeFsError::io(dir, e))
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates `dir` (mode 0700, parents as needed) and checks that nobody but the
/// effective user and root can change anything in it or above it (see [`check_trusted_dir`]).
pub fn ensure_private_dir(dir: &Path) -> Result<(), SafeFsError> {
    if let Err(e) = fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        return Err(SafeFsError::io(dir, e));
    }
    check_trusted_dir(dir, own_euid())
}

pub fn own_euid() -> u32 {
    // SAFETY: geteuid(2) has no arguments, always succeeds and touches no memory.
    unsafe { libc::geteuid() }
}

/// Whether only `euid` and root can change `dir` and every directory above it: each is
/// owned by `euid` or root; `dir` itself is owned by `euid` and writable by nobody else;
/// an ancestor writable by others is accepted only with the sticky bit (`/tmp`), where
/// others cannot rename or remove what they do not own. Symlinks on the way are followed
/// only when owned by `euid` or root, and the directory they lead to is checked the same
/// way. Without this, another user could swap a directory between the check and a write
/// (the reason ssh's `StrictModes` and systemd's `chase` walk the whole path).
pub fn check_trusted_dir(dir: &Path, euid: u32) -> Result<(), SafeFsError> {
    check_trusted_dir_with(dir, euid, &mut TrustedSoFar::default())
}

/// The directories one run has already found trusted (each one owned by a trusted user
/// or root and writable by nobody else unless sticky), so that checking several
/// directories (the state dir, the log's) walks a shared prefix (`/`, `/home`, …) once.
/// Only what passed is kept, and only for the one set of trusted users it was checked
/// for: a walk for another set ignores it. Once found trusted, a directory stays so for
/// the run: only those users can change it or anything above it.
#[derive(Debug, Default)]
pub struct TrustedSoFar {
    trusted: Vec<u32>,
    dirs: Vec<PathBuf>,
}

impl TrustedSoFar {
    fn knows(&self, trusted: &[u32], prefix: &Path) -> bool {
        self.trusted == trusted && self.dirs.iter().any(|dir| dir == prefix)
    }

    fn remember(&mut self, trusted: &[u32], prefix: &Path) {
        if self.dirs.is_empty() {
            self.trusted = trusted.to_vec();
        }
        if self.trusted == trusted {
            self.dirs.push(prefix.to_path_buf());
        }
    }
}

/// [`check_trusted_dir`], skipping the ancestors `seen` already holds and adding those
/// it finds trusted.
pub fn check_trusted_dir_with(
    dir: &Path,
    euid: u32,
    seen: &mut TrustedSoFar,
) -> Result<(), SafeFsError> {
    let absolute = std::path::absolute(dir).map_err(|e| SafeFsError::io(dir, e))?;
    let meta = fs::metadata(&absolute).map_err(|e| SafeFsError::io(dir, e))?;
    if !meta.is_dir() {
        return Err(SafeFsError::Untrusted {
            path: dir.to_path_buf(),
            why: format!("is {}, not a directory", kind_name(meta.file_type())),
        });
    }
    if meta.uid() != euid {
        return Err(SafeFsError::Untrusted {
            path: dir.to_path_buf(),
            why: format!(
                "is owned by uid {}, not by this user (uid {euid}); use a directory of this \
                 user's, or `chown {euid} {}`",
                meta.uid(),
                dir.display()
            ),
        });
    }
    if writable_by_others(&meta) {
        return Err(SafeFsError::Untrusted {
            path: dir.to_path_buf(),
            why: format!(
                "is writable by {} (mode {:o}); run `chmod go-w {}`",
                writable_by(meta.mode()),
                meta.mode() & 0o7777,
                dir.display()
            ),
        });
    }
    check_path_chain(&absolute, &[euid], 0, seen)
}

/// Whether only root and the users in `trusted` can change what `path` names: every
/// directory from `/` down to `path` (through any symlink on the way) is owned by root
/// or one of them, and none is writable by group or others unless sticky (`/tmp`),
/// where others cannot rename or remove what they do not own. The last component is
/// checked for its owner only: a caller that opens it checks the opened file itself.
/// Used for files whose content the watchdog acts on (a pidfile read as root).
pub fn check_trusted_chain(path: &Path, trusted: &[u32]) -> Result<(), SafeFsError> {
    let absolute = std::path::absolute(path).map_err(|e| SafeFsError::io(path, e))?;
    check_path_chain(&absolute, trusted, 0, &mut TrustedSoFar::default())
}

/// Whether [`write_atomic`] may replace a file in `dir`, a directory the watchdog does
/// not own (a node_exporter collector directory another user may write): nobody but
/// `euid` and root can change any directory above it ([`check_trusted_chain`] of its
/// parent), so nobody can swap `dir` for a link to a directory of root's between this
/// check and the write. `dir` itself may be writable by others: `write_atomic` creates
/// only a new file of an unpredictable name with `O_EXCL | O_NOFOLLOW` and renames it,
/// which replaces a planted link or file instead of following or opening it; all they
/// can do there is make the write fail. A symlink at `dir` is followed only where that
/// parent is trusted (only `euid` or root put it there), and where it leads is checked
/// the same way.
pub fn check_replaceable_in(dir: &Path, euid: u32) -> Result<(), SafeFsError> {
    const MAX_LINKS: usize = 40;
    let mut dir = std::path::absolute(dir).map_err(|e| SafeFsError::io(dir, e))?;
    for _ in 0..MAX_LINKS {
        if let Some(parent) = dir.parent() {
            check_path_chain(parent, &[euid], 0, &mut TrustedSoFar::default())?;
        }
        let meta = fs::symlink_metadata(&dir).map_err(|e| SafeFsError::io(&dir, e))?;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&dir).map_err(|e| SafeFsError::io(&dir, e))?;
            dir = parent_of(&dir).join(target);
            continue;
        }
        if !meta.is_dir() {
            return Err(SafeFsError::Untrusted {
                path: dir,
                why: format!("is {}, not a directory", kind_name(meta.file_type())),
            });
        }
        return Ok(());
    }
    Err(SafeFsError::Untrusted {
        path: dir,
        why: "too many levels of symbolic links".into(),
    })
}

/// Whether a program may be run by a user who trusts only root and `trusted`: the
/// directories from `/` down to it pass [`check_trusted_chain`], and the file it names
/// (through any link) is a regular file owned by root or one of them and writable by
/// nobody else (its owner's private group aside). For a tool found beside another
/// user's process (docs/SECURITY.md, "Never kill what cannot be started"): root must
/// not run what another user could replace.
pub fn check_trusted_program(path: &Path, trusted: &[u32]) -> Result<(), SafeFsError> {
    check_trusted_chain(path, trusted)?;
    let meta = fs::metadata(path).map_err(|e| SafeFsError::io(path, e))?;
    if !meta.is_file() {
        return Err(not_regular(path, meta.file_type()));
    }
    if meta.uid() != 0 && !trusted.contains(&meta.uid()) {
        return Err(SafeFsError::Untrusted {
            path: path.to_path_buf(),
            why: format!(
                "is owned by uid {}, so that user could replace it; use a program owned \
                 by {} or root",
                meta.uid(),
                owners_text(trusted)
            ),
        });
    }
    if writable_by_others(&meta) {
        return Err(SafeFsError::Untrusted {
            path: path.to_path_buf(),
            why: format!(
                "is writable by {} (mode {:o}), so another user could replace it; run \
                 `chmod go-w {}`",
                writable_by(meta.mode()),
                meta.mode() & 0o7777,
                path.display()
            ),
        });
    }
    // A sticky directory anyone may write in (`/tmp`) keeps root's files from being
    // replaced, but not another user from adding a hard link to any program of root's
    // under the name looked for: the program's own directory must be closed to others.
    let real = fs::canonicalize(path).map_err(|e| SafeFsError::io(path, e))?;
    if let Some(dir) = real.parent() {
        let dir_meta = fs::metadata(dir).map_err(|e| SafeFsError::io(dir, e))?;
        if writable_by_others(&dir_meta) {
            return Err(SafeFsError::Untrusted {
                path: path.to_path_buf(),
                why: format!(
                    "is in {}, a directory anyone may add a program to (mode {:o}); \
                     install it in a directory writable only by its owner",
                    dir.display(),
                    dir_meta.mode() & 0o7777
                ),
            });
        }
    }
    Ok(())
}

/// Every prefix of `path` (lexically, then through any symlink) is owned by root or a
/// user in `trusted`, and writable by nobody else unless sticky.
fn check_path_chain(
    path: &Path,
    trusted: &[u32],
    depth: usize,
    seen: &mut TrustedSoFar,
) -> Result<(), SafeFsError> {
    // Bounds symlink chains, as the kernel does (MAXSYMLINKS is 40 on Linux).
    const MAX_LINKS: usize = 40;
    let mut prefix = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                prefix.pop();
                continue;
            }
            Component::CurDir => continue,
            other => prefix.push(other.as_os_str()),
        }
        if seen.knows(trusted, &prefix) {
            continue;
        }
        let meta = fs::symlink_metadata(&prefix).map_err(|e| SafeFsError::io(&prefix, e))?;
        let owner_ok = meta.uid() == 0 || trusted.contains(&meta.uid());
        if !owner_ok {
            return Err(SafeFsError::Untrusted {
                path: prefix.clone(),
                why: format!(
                    "is owned by uid {}, so that user could swap what lies below it; \
                     use a path owned by {} or root",
                    meta.uid(),
                    owners_text(trusted)
                ),
            });
        }
        if meta.file_type().is_symlink() {
            if depth >= MAX_LINKS {
                return Err(SafeFsError::Untrusted {
                    path: prefix.clone(),
                    why: "too many levels of symbolic links".into(),
                });
            }
            let resolved = fs::canonicalize(&prefix).map_err(|e| SafeFsError::io(&prefix, e))?;
            check_path_chain(&resolved, trusted, depth + 1, seen)?;
            seen.remember(trusted, &prefix);
            continue;
        }
        let sticky = meta.mode() & 0o1000 != 0;
        if meta.is_dir() && writable_by_others(&meta) && !sticky {
            return Err(SafeFsError::Untrusted {
                path: prefix.clone(),
                why: format!(
                    "is writable by {} (mode {:o}) without the sticky bit, so another user \
                     could swap what lies below it; run `chmod go-w {}`",
                    writable_by(meta.mode()),
                    meta.mode() & 0o7777,
                    prefix.display()
                ),
            });
        }
        seen.remember(trusted, &prefix);
    }
    Ok(())
}

/// Whether someone other than the owner (and root) can write in `meta`'s file: it is
/// writable by others, or by a group that is not the owner's private group.
fn writable_by_others(meta: &fs::Metadata) -> bool {
    writable_by_others_than_owner(meta.mode(), meta.uid(), meta.gid())
}

/// [`writable_by_others`] from a file's mode, owner and group (a pidfile's, read from
/// the opened file).
pub fn writable_by_others_than_owner(mode: u32, uid: u32, gid: u32) -> bool {
    mode & 0o002 != 0 || (mode & 0o020 != 0 && !crate::users::is_private_group(gid, uid))
}

/// Like [`check_trusted_dir`] for a directory that may not exist yet: an existing `dir`
/// must be trusted; a missing one must have its nearest existing ancestor trusted as an
/// ancestor (owned by `euid` or root, writable by nobody else unless sticky), so that
/// creating it later cannot land in a place another user controls. Creates nothing.
pub fn check_trusted_or_absent(dir: &Path, euid: u32) -> Result<(), SafeFsError> {
    check_trusted_or_absent_with(dir, euid, &mut TrustedSoFar::default()).map(|_| ())
}

/// [`check_trusted_or_absent`] with what the run found trusted so far (see
/// [`TrustedSoFar`]); says whether `dir` exists (and so was checked as a whole).
pub fn check_trusted_or_absent_with(
    dir: &Path,
    euid: u32,
    seen: &mut TrustedSoFar,
) -> Result<bool, SafeFsError> {
    let absolute = std::path::absolute(dir).map_err(|e| SafeFsError::io(dir, e))?;
    match fs::symlink_metadata(&absolute) {
        Ok(_) => return check_trusted_dir_with(dir, euid, seen).map(|()| true),
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(SafeFsError::io(dir, e)),
        Err(_) => {}
    }
    let mut ancestor = absolute.as_path();
    while let Some(parent) = ancestor.parent() {
        ancestor = parent;
        match fs::symlink_metadata(ancestor) {
            Ok(_) => return check_path_chain(ancestor, &[euid], 0, seen).map(|()| false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(SafeFsError::io(ancestor, e)),
        }
    }
    Ok(false)
}

/// Renames `path` (whatever it is: a file, a symlink, a FIFO; a rename never follows
/// the link) to `PATH.TAG-YYYYmmddTHHMMSSZ` beside it, a new name each time, and returns
/// that name: what was found there is kept for the operator, not destroyed.
pub fn move_aside(path: &Path, tag: &str) -> Result<PathBuf, SafeFsError> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let base = format!("{}.{tag}-{stamp}", path.display());
    for n in 0..100u32 {
        let candidate = if n == 0 {
            PathBuf::from(&base)
        } else {
            PathBuf::from(format!("{base}-{n}"))
        };
        match fs::symlink_metadata(&candidate) {
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::rename(path, &candidate).map_err(|e| SafeFsError::io(path, e))?;
                return Ok(candidate);
            }
            Err(e) => return Err(SafeFsError::io(&candidate, e)),
        }
    }
    Err(SafeFsError::io(
        path,
        io::Error::new(io::ErrorKind::AlreadyExists, "too many files moved aside"),
    ))
}

/// [`open_append`] for a file of the watchdog's own in a directory only it can change
/// (its log, a started server's output): a symlink, FIFO, socket, device or hard link
/// found there is not the watchdog's and is moved aside (see [`move_aside`], tag
/// `unsafe`) so the file can be created afresh. Returns the file and where the intruder went, if any.
/// A directory in the way is left alone and refused.
pub fn open_append_replacing(
    path: &Path,
    mode: u32,
) -> Result<(File, Option<PathBuf>), SafeFsError> {
    match open_append(path, mode) {
        Ok(file) => Ok((file, None)),
        Err(SafeFsError::Symlink { .. })
        | Err(SafeFsError::NotRegular { .. })
        | Err(SafeFsError::HardLinked { .. })
            if fs::symlink_metadata(path)
                .is_ok_and(|m| !m.is_dir() && !is_the_systems(path, &m)) =>
        {
            let moved = move_aside(path, "unsafe")?;
            Ok((open_append(path, mode)?, Some(moved)))
        }
        Err(e) => Err(e),
    }
}

/// Whether what is at `path` is the system's, not a stranger's: a device node (making
/// one needs privilege, so nobody planted it) or anything in `/dev` (`/dev/stdout`,
/// `/dev/log`). Named as `[log] file` (`/dev/null` to turn the file off), moving it
/// aside would take it from every process on the box and leave a 0600 regular file of
/// root's in its place: it is refused instead, and left as it is.
fn is_the_systems(path: &Path, meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    kind.is_char_device()
        || kind.is_block_device()
        || fs::canonicalize(parent_of(path)).is_ok_and(|dir| dir.starts_with("/dev"))
}

/// Creates the subdirectory `dir` (mode 0700) of a trusted directory, or checks the one
/// there: a real directory (not a symlink, which is moved aside like in
/// [`open_append_replacing`]), owned by the effective user, writable by nobody else
/// (its mode is narrowed if it is the user's own). Returns where an intruder went.
pub fn ensure_private_subdir(dir: &Path) -> Result<Option<PathBuf>, SafeFsError> {
    let create = || match fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(SafeFsError::io(dir, e)),
        _ => Ok(()),
    };
    create()?;
    let mut moved = None;
    let mut meta = fs::symlink_metadata(dir).map_err(|e| SafeFsError::io(dir, e))?;
    if !meta.is_dir() {
        moved = Some(move_aside(dir, "unsafe")?);
        create()?;
        meta = fs::symlink_metadata(dir).map_err(|e| SafeFsError::io(dir, e))?;
    }
    if !meta.is_dir() || meta.uid() != own_euid() {
        return Err(SafeFsError::Untrusted {
            path: dir.to_path_buf(),
            why: format!(
                "is {} owned by uid {}, not a directory of this user (uid {}); remove it",
                kind_name(meta.file_type()),
                meta.uid(),
                own_euid()
            ),
        });
    }
    if meta.mode() & 0o022 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| SafeFsError::io(dir, e))?;
    }
    Ok(moved)
}

impl From<SafeFsError> for io::Error {
    /// For callers whose errors carry an `io::Error`: the kind of an I/O failure is
    /// kept; a refusal becomes `InvalidData` with its message.
    fn from(e: SafeFsError) -> io::Error {
        match e {
            SafeFsError::Io { source, .. } => source,
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

/// `this user (uid 501)` for the watchdog's own checks, `uid 501` otherwise.
fn owners_text(trusted: &[u32]) -> String {
    match trusted {
        [uid] if *uid == own_euid() => format!("this user (uid {uid})"),
        uids => {
            let uids: Vec<String> = uids.iter().map(|uid| format!("uid {uid}")).collect();
            uids.join(" or ")
        }
    }
}

fn writable_by(mode: u32) -> &'static str {
    match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "its group and everyone",
        (true, false) => "its group",
        _ => "everyone",
    }
}

/// Sets `mode` on a file the caller just created (umask may have narrowed it).
pub fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    file.set_permissions(fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn private_tempdir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    /// A private temp dir holding `run`, a directory owned by `uid` (real ownership:
    /// only root can give a directory away).
    #[cfg(target_os = "linux")]
    fn dir_owned_by(uid: u32) -> (tempfile::TempDir, PathBuf) {
        assert_eq!(
            own_euid(),
            0,
            "this test chowns: run it as root (script/test as root runs it; so does .ci/run)"
        );
        let dir = private_tempdir();
        let run = dir.path().join("run");
        fs::create_dir(&run).unwrap();
        std::os::unix::fs::chown(&run, Some(uid), Some(uid)).unwrap();
        (dir, run)
    }

    /// A real FIFO at `path`, returned.
    fn mkfifo(path: &Path) -> PathBuf {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo touches no memory of ours.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        path.to_path_buf()
    }

    #[test]
    fn a_symlink_is_never_read_or_appended_through() {
        let dir = private_tempdir();
        let real = dir.path().join("real");
        fs::write(&real, "secret").unwrap();
        let link = dir.path().join("link");
        symlink(&real, &link).unwrap();
        assert!(matches!(
            open_regular(&link),
            Err(SafeFsError::Symlink { .. })
        ));
        assert!(matches!(
            open_append(&link, 0o600),
            Err(SafeFsError::Symlink { .. })
        ));
        assert_eq!(fs::read_to_string(&real).unwrap(), "secret");
    }

    #[test]
    fn a_fifo_is_refused_at_once() {
        let dir = private_tempdir();
        let fifo = mkfifo(&dir.path().join("fifo"));
        let err = read_regular(&fifo, 100).unwrap_err();
        assert!(err.to_string().contains("a FIFO"), "{err}");
        let err = open_append(&fifo, 0o600).unwrap_err();
        assert!(err.to_string().contains("a FIFO"), "{err}");
    }

    #[test]
    fn following_reads_through_a_link_but_never_a_fifo() {
        let dir = private_tempdir();
        let real = dir.path().join("real.toml");
        fs::write(&real, "x = 1").unwrap();
        let link = dir.path().join("link.toml");
        symlink(&real, &link).unwrap();
        assert_eq!(read_regular_following(&link, 100).unwrap(), b"x = 1");
        let fifo = mkfifo(&dir.path().join("fifo"));
        let to_fifo = dir.path().join("to-fifo");
        symlink(&fifo, &to_fifo).unwrap();
        for path in [&fifo, &to_fifo] {
            let err = read_regular_following(path, 100).unwrap_err();
            assert!(
                err.to_string().contains("not a regular file (a FIFO)"),
                "{err}"
            );
        }
        assert!(
            read_regular_following(&dir.path().join("absent"), 100)
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn a_file_over_the_cap_is_refused() {
        let dir = private_tempdir();
        let file = dir.path().join("big");
        fs::write(&file, vec![b'x'; 11]).unwrap();
        assert_eq!(read_regular(&file, 11).unwrap().len(), 11);
        assert!(matches!(
            read_regular(&file, 10),
            Err(SafeFsError::TooLarge { max: 10, .. })
        ));
    }

    #[test]
    fn the_size_at_open_is_only_a_hint() {
        // A file that grows between the open and the read (a log, a history another
        // run rewrites) is read to its end, and still capped.
        let dir = private_tempdir();
        let path = dir.path().join("growing");
        fs::write(&path, b"first").unwrap();
        let (file, meta) = open_regular_with(&path, libc::O_NOFOLLOW).unwrap();
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&[b'x'; 5000])
            .unwrap();
        let read = read_opened(&path, file, &meta, 10_000).unwrap();
        assert_eq!(read.len(), 5005);
        let (file, meta) = open_regular_with(&path, libc::O_NOFOLLOW).unwrap();
        fs::write(&path, vec![b'y'; 20_000]).unwrap();
        assert!(matches!(
            read_opened(&path, file, &meta, 10_000),
            Err(SafeFsError::TooLarge { max: 10_000, .. })
        ));
    }

    #[test]
    fn an_atomic_write_replaces_the_file_not_a_planted_link() {
        let dir = private_tempdir();
        let victim = dir.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        let path = dir.path().join("history.json");
        symlink(&victim, &path).unwrap();
        write_atomic(&path, b"new", 0o600, true).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert!(
            !fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(left.len(), 2, "no temporary file is left behind: {left:?}");
    }

    #[test]
    fn a_durable_write_works_in_a_dir_reached_through_a_link() {
        let dir = private_tempdir();
        let real = dir.path().join("real");
        fs::create_dir(&real).unwrap();
        let state = dir.path().join("state");
        symlink(&real, &state).unwrap();
        check_trusted_dir(&state, own_euid()).unwrap();
        write_atomic(&state.join("history.json"), b"{}", 0o600, true).unwrap();
        assert_eq!(fs::read_to_string(real.join("history.json")).unwrap(), "{}");
    }

    #[test]
    fn temporary_names_differ() {
        assert_ne!(unpredictable_name("x"), unpredictable_name("x"));
    }

    #[test]
    fn a_private_dir_is_trusted_and_a_shared_one_is_not() {
        let dir = private_tempdir();
        let state = dir.path().join("a/b/state");
        ensure_private_dir(&state).unwrap();
        assert_eq!(fs::metadata(&state).unwrap().mode() & 0o777, 0o700);

        fs::set_permissions(&state, fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_trusted_dir(&state, own_euid()).unwrap_err();
        assert!(err.to_string().contains("chmod go-w"), "{err}");

        fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(dir.path().join("a"), fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_trusted_dir(&state, own_euid()).unwrap_err();
        assert!(err.to_string().contains("without the sticky bit"), "{err}");

        fs::set_permissions(dir.path().join("a"), fs::Permissions::from_mode(0o1777)).unwrap();
        check_trusted_dir(&state, own_euid()).expect("a sticky ancestor is fine");
    }

    #[test]
    fn what_a_run_found_trusted_spares_no_directory_its_own_check() {
        let dir = private_tempdir();
        let shared = dir.path().join("shared");
        let state = shared.join("state");
        ensure_private_dir(&state).unwrap();
        // `shared` is a fine ancestor while sticky, but as a directory of the
        // watchdog's own (the log's) it is writable by others: refused, though the
        // walk for `state` already passed it.
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        let mut seen = TrustedSoFar::default();
        assert!(check_trusted_or_absent_with(&state, own_euid(), &mut seen).unwrap());
        let err = check_trusted_or_absent_with(&shared, own_euid(), &mut seen).unwrap_err();
        assert!(err.to_string().contains("chmod go-w"), "{err}");
        // A missing directory is said to be missing, its ancestors checked.
        let log = state.join("log");
        assert!(!check_trusted_or_absent_with(&log, own_euid(), &mut seen).unwrap());
    }

    #[cfg(target_os = "linux")]
    #[test]
    #[ignore = "needs root (chowns a directory to another user): run by script/test as root and .ci/run"]
    fn what_was_found_trusted_for_one_user_is_not_trusted_for_another() {
        let other = 4242;
        let (_dir, run) = dir_owned_by(other);
        let mut seen = TrustedSoFar::default();
        check_path_chain(&run, &[other], 0, &mut seen).expect("owned by a trusted user");
        let err = check_path_chain(&run, &[], 0, &mut seen).unwrap_err();
        assert!(err.to_string().contains("is owned by uid 4242"), "{err}");
    }

    #[test]
    fn a_missing_dir_is_checked_at_its_nearest_ancestor() {
        let dir = private_tempdir();
        let state = dir.path().join("a/b/state");
        check_trusted_or_absent(&state, own_euid()).expect("private parents");
        assert!(!dir.path().join("a").exists(), "nothing is created");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_trusted_or_absent(&state, own_euid()).unwrap_err();
        assert!(err.to_string().contains("chmod go-w"), "{err}");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        fs::create_dir_all(&state).unwrap();
        fs::set_permissions(&state, fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_trusted_or_absent(&state, own_euid()).unwrap_err();
        assert!(err.to_string().contains("chmod go-w"), "{err}");
    }

    #[test]
    fn an_intruder_at_an_own_file_is_moved_aside_not_followed() {
        let dir = private_tempdir();
        let victim = dir.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        let log = dir.path().join("server.log");
        symlink(&victim, &log).unwrap();
        let (mut file, moved) = open_append_replacing(&log, 0o600).unwrap();
        file.write_all(b"line\n").unwrap();
        let moved = moved.expect("the link was moved aside");
        assert!(
            moved.to_string_lossy().contains("server.log.unsafe-"),
            "{moved:?}"
        );
        assert_eq!(fs::read_link(&moved).unwrap(), victim);
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(fs::read_to_string(&log).unwrap(), "line\n");
        let (_, again) = open_append_replacing(&log, 0o600).unwrap();
        assert!(again.is_none(), "a regular file is used as it is");

        let sub = dir.path().join("incidents");
        symlink(dir.path(), &sub).unwrap();
        let moved = ensure_private_subdir(&sub).unwrap().expect("moved aside");
        assert!(
            fs::symlink_metadata(&moved)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let meta = fs::symlink_metadata(&sub).unwrap();
        assert!(meta.is_dir() && meta.mode() & 0o777 == 0o700);
        assert_eq!(ensure_private_subdir(&sub).unwrap(), None);
    }

    /// A hard link is a regular file too: one planted at the log's name while the
    /// directory was still open to others (or on macOS, which lets anyone link anyone's
    /// file) made every log line land in the file it shares, root's own included. It is
    /// moved aside like a symlink, and the file it shares is left as it was.
    #[test]
    fn a_hard_link_at_an_own_file_is_moved_aside_not_appended_to() {
        let dir = private_tempdir();
        let victim = dir.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        let log = dir.path().join("watchdog.log");
        fs::hard_link(&victim, &log).unwrap();
        let (mut file, moved) = open_append_replacing(&log, 0o600).unwrap();
        file.write_all(b"line\n").unwrap();
        assert!(moved.is_some(), "the link was moved aside");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(fs::read_to_string(&log).unwrap(), "line\n");
        let err = open_append(&victim, 0o600).unwrap_err();
        assert!(err.to_string().contains("hard links"), "{err}");
    }

    /// `[log] file = "/dev/null"` (or `/dev/stdout`, `/dev/log`): what is there is the
    /// system's, and moving it aside as a stranger took `/dev/null` from every process
    /// and left a 0600 regular file of root's in its place. A device node is refused
    /// wherever it is (a real one, made here with mknod: root only), and anything in
    /// `/dev` is the system's (only looked at here, never opened).
    #[cfg(target_os = "linux")]
    #[test]
    #[ignore = "needs root (mknod makes a real device): run by script/test as root and .ci/run"]
    fn a_device_or_anything_in_dev_is_refused_never_moved_aside() {
        use std::os::unix::fs::FileTypeExt;
        assert_eq!(
            own_euid(),
            0,
            "mknod needs root: run it as root (script/test as root runs it; so does .ci/run)"
        );
        let dir = private_tempdir();
        let null = dir.path().join("watchdog.log");
        let c = std::ffi::CString::new(null.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mknod touches no memory of ours. The node
        // is /dev/null's (1, 3): writing to it is harmless.
        let made = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
        assert_eq!(made, 0, "{}", io::Error::last_os_error());
        let err = open_append_replacing(&null, 0o600).unwrap_err();
        assert!(err.to_string().contains("a device"), "{err}");
        assert!(
            fs::symlink_metadata(&null)
                .unwrap()
                .file_type()
                .is_char_device()
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "nothing moved aside"
        );

        let stdout = Path::new("/dev/stdout");
        if let Ok(meta) = fs::symlink_metadata(stdout) {
            assert!(is_the_systems(stdout, &meta));
        }
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: as above, for mkfifo.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let meta = fs::symlink_metadata(&fifo).unwrap();
        assert!(!is_the_systems(&fifo, &meta), "a FIFO here is a stranger's");
    }

    #[test]
    fn moving_aside_twice_keeps_both() {
        let dir = private_tempdir();
        let path = dir.path().join("history.json");
        fs::write(&path, "one").unwrap();
        let first = move_aside(&path, "corrupt").unwrap();
        fs::write(&path, "two").unwrap();
        let second = move_aside(&path, "corrupt").unwrap();
        assert_ne!(first, second);
        assert_eq!(fs::read_to_string(first).unwrap(), "one");
        assert_eq!(fs::read_to_string(second).unwrap(), "two");
        assert!(!path.exists());
    }

    #[test]
    fn a_dir_of_another_user_is_not_trusted() {
        let dir = private_tempdir();
        let err = check_trusted_dir(dir.path(), own_euid().wrapping_add(1)).unwrap_err();
        assert!(err.to_string().contains("is owned by uid"), "{err}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    #[ignore = "needs root (chowns a directory to another user): run by script/test as root and .ci/run"]
    fn a_chain_is_trusted_only_when_owned_by_root_or_the_trusted_users() {
        let other = 4242;
        let (_dir, run) = dir_owned_by(other);
        check_trusted_chain(&run, &[other]).expect("owned by a trusted user");
        let err = check_trusted_chain(&run, &[]).unwrap_err();
        assert!(err.to_string().contains("is owned by uid 4242"), "{err}");
        assert!(err.to_string().contains("or root"), "{err}");

        fs::set_permissions(&run, fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_trusted_chain(&run, &[other]).unwrap_err();
        assert!(err.to_string().contains("without the sticky bit"), "{err}");
        fs::set_permissions(&run, fs::Permissions::from_mode(0o1777)).unwrap();
        check_trusted_chain(&run, &[other]).expect("sticky, owned by the trusted");
    }

    /// A collector directory another user may write is fine; one below a directory
    /// another user owns (who could swap it for a link to /etc) is not, nor a link
    /// another user could have placed, nor a link to such a place.
    #[cfg(target_os = "linux")]
    #[test]
    #[ignore = "needs root (chowns a directory to another user): run by script/test as root and .ci/run"]
    fn a_file_is_replaceable_only_where_nobody_else_can_swap_the_directory() {
        let other = 4242;
        let (dir, theirs) = dir_owned_by(other);
        let root = own_euid();
        // Theirs and writable by them: fine, nothing above it is theirs.
        check_replaceable_in(&theirs, root).expect("the directory itself may be theirs");
        fs::set_permissions(&theirs, fs::Permissions::from_mode(0o777)).unwrap();
        check_replaceable_in(&theirs, root).expect("even writable by everyone");
        // Below it: they could rename `collector` away and put a link there.
        let below = theirs.join("collector");
        fs::create_dir(&below).unwrap();
        let err = check_replaceable_in(&below, root).unwrap_err();
        assert!(err.to_string().contains("is owned by uid 4242"), "{err}");
        // A link of ours in a trusted directory is followed, and judged where it leads.
        let ours = dir.path().join("ours");
        fs::create_dir(&ours).unwrap();
        let link = dir.path().join("link");
        symlink(&ours, &link).unwrap();
        check_replaceable_in(&link, root).expect("a link of ours to a directory of ours");
        let to_below = dir.path().join("to-below");
        symlink(&below, &to_below).unwrap();
        let err = check_replaceable_in(&to_below, root).unwrap_err();
        assert!(err.to_string().contains("is owned by uid 4242"), "{err}");
        // A link inside their directory is theirs to change.
        let planted = theirs.join("planted");
        symlink(&ours, &planted).unwrap();
        let err = check_replaceable_in(&planted.join("x"), root).unwrap_err();
        assert!(err.to_string().contains("is owned by uid 4242"), "{err}");
        // Not a directory at all.
        let file = ours.join("file");
        fs::write(&file, "x").unwrap();
        let err = check_replaceable_in(&file, root).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
        assert!(
            check_replaceable_in(&ours.join("absent"), root)
                .unwrap_err()
                .is_not_found()
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    #[ignore = "needs root (chowns a program and its directory to another user): run by script/test as root and .ci/run"]
    fn a_program_is_trusted_only_when_nobody_else_can_replace_it() {
        assert_eq!(
            own_euid(),
            0,
            "this test chowns: run it as root (script/test as root runs it; so does .ci/run)"
        );
        let dir = private_tempdir();
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let tool = bin.join("supervisorctl");
        fs::write(&tool, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).unwrap();
        check_trusted_program(&tool, &[0]).expect("root's, in root's directories");

        fs::set_permissions(&tool, fs::Permissions::from_mode(0o757)).unwrap();
        let err = check_trusted_program(&tool, &[0]).unwrap_err();
        assert!(err.to_string().contains("writable by everyone"), "{err}");
        fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).unwrap();

        std::os::unix::fs::chown(&tool, Some(4242), None).unwrap();
        let err = check_trusted_program(&tool, &[0]).unwrap_err();
        assert!(err.to_string().contains("is owned by uid 4242"), "{err}");
        check_trusted_program(&tool, &[4242]).expect("owned by a trusted user");
        std::os::unix::fs::chown(&tool, Some(0), None).unwrap();

        std::os::unix::fs::chown(&bin, Some(4242), None).unwrap();
        let err = check_trusted_program(&tool, &[0]).unwrap_err();
        assert!(err.to_string().contains("is owned by uid 4242"), "{err}");
        std::os::unix::fs::chown(&bin, Some(0), None).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_trusted_program(&tool, &[0]).unwrap_err();
        assert!(err.to_string().contains("without the sticky bit"), "{err}");
        assert!(check_trusted_program(&bin.join("missing"), &[0]).is_err());
    }

    /// In a sticky directory anyone may write in (`/tmp`), another user cannot replace
    /// root's files, but can put there a hard link to any program of root's under the
    /// name looked for (macOS allows it; Linux unless `fs.protected_hardlinks` is set):
    /// a program is run from there only if that directory is writable by nobody else.
    #[test]
    #[ignore = "needs root (the trust rule for root's own programs): run by script/test as root and .ci/run"]
    fn a_program_in_a_directory_anyone_may_add_to_is_not_trusted() {
        assert_eq!(
            own_euid(),
            0,
            "this test runs root's program: run it as root (script/test as root runs it; so does .ci/run)"
        );
        let dir = private_tempdir();
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        let tool = shared.join("supervisorctl");
        fs::write(&tool, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).unwrap();
        let err = check_trusted_program(&tool, &[0]).unwrap_err();
        assert!(err.to_string().contains("anyone may add"), "{err}");
        // Through a link of root's from a trusted directory: the same.
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        std::os::unix::fs::symlink(&tool, bin.join("supervisorctl")).unwrap();
        let err = check_trusted_program(&bin.join("supervisorctl"), &[0]).unwrap_err();
        assert!(err.to_string().contains("anyone may add"), "{err}");
    }

    /// Debian, Ubuntu and Fedora give each user a group of their own and a umask of
    /// 002, so `mkdir ~/.local/state` is mode 775 (and so is a state dir the watchdog
    /// made before it created them 0700 itself): writable only by the owner's own
    /// group. Refusing it stopped every run (exit 2) on such a box. A group with anyone
    /// else in it, or one that is not the owner's, is still refused. Real ownership:
    /// root's private group `root` (gid 0, no members) and groups that are not it.
    #[cfg(target_os = "linux")]
    #[test]
    #[ignore = "needs root (chowns directories to other groups): run by script/test as root and .ci/run"]
    fn a_dir_writable_only_by_its_owners_private_group_is_trusted() {
        use std::os::unix::fs::chown;
        assert_eq!(
            own_euid(),
            0,
            "this test chowns: run it as root (script/test as root runs it; so does .ci/run)"
        );
        let dir = private_tempdir();
        let home = dir.path().join("home");
        let state = home.join(".local/state/watchdog");
        fs::create_dir_all(&state).unwrap();
        for path in [
            &home,
            &home.join(".local"),
            &home.join(".local/state"),
            &state,
        ] {
            fs::set_permissions(path, fs::Permissions::from_mode(0o775)).unwrap();
        }
        check_trusted_dir(&state, 0).expect("root's own group only");
        check_trusted_or_absent(&state.join("sub"), 0).expect("root's own group only");
        check_trusted_chain(&state, &[4242]).expect("root's own group only");

        // gid 1 exists (daemon, bin) but is not root's; gid 4242 names no group.
        for gid in [1, 4242] {
            chown(home.join(".local"), None, Some(gid)).unwrap();
            let err = check_trusted_dir(&state, 0).unwrap_err();
            assert!(err.to_string().contains("writable by its group"), "{err}");
            chown(home.join(".local"), None, Some(0)).unwrap();
            chown(&state, None, Some(gid)).unwrap();
            let err = check_trusted_dir(&state, 0).unwrap_err();
            assert!(err.to_string().contains("chmod go-w"), "{err}");
            chown(&state, None, Some(0)).unwrap();
        }
        // Writable by others is never the owner's alone.
        fs::set_permissions(&state, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(check_trusted_dir(&state, 0).is_err());
    }

    #[test]
    fn a_symlinked_dir_is_checked_where_it_leads() {
        let dir = private_tempdir();
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
        let link = dir.path().join("state");
        symlink(&shared, &link).unwrap();
        let err = check_trusted_dir(&link, own_euid()).unwrap_err();
        assert!(err.to_string().contains("writable by"), "{err}");
    }
}
