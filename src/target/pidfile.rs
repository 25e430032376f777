//! Reading a pidfile: the PID it names and when it was written.

use std::io::Read;
use std::path::Path;
use std::time::SystemTime;

/// A pidfile is a line of digits; anything longer is not one, and reading a huge file
/// by mistake must not cost memory.
const MAX_PIDFILE_BYTES: u64 = 4096;

#[derive(Debug, Clone, PartialEq)]
pub enum Pidfile {
    /// The file does not exist: the source is simply not set this run.
    Missing,
    /// The file could not be read or holds no PID; `why` completes "the pidfile ...".
    Invalid { why: String },
    Names {
        pid: u32,
        written: Option<SystemTime>,
    },
}

pub fn read(path: &Path) -> Pidfile {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: opening a FIFO for reading would otherwise wait for a writer.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
    let mut file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Pidfile::Missing,
        Err(e) => {
            return Pidfile::Invalid {
                why: format!("cannot be read: {e}"),
            };
        }
    };
    let metadata = match file.metadata() {
        Ok(metadata) if metadata.is_file() => metadata,
        Ok(_) => {
            return Pidfile::Invalid {
                why: "is not a regular file".to_string(),
            };
        }
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
        .take(MAX_PIDFILE_BYTES)
        .read_to_end(&mut bytes)
    {
        return Pidfile::Invalid {
            why: format!("cannot be read: {e}"),
        };
    }
    match parse_pid(&bytes) {
        Ok(pid) => Pidfile::Names { pid, written },
        Err(why) => Pidfile::Invalid { why },
    }
}

/// The whole content, trimmed, must be a positive PID.
fn parse_pid(bytes: &[u8]) -> Result<u32, String> {
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
        let not_a_file = Pidfile::Invalid {
            why: "is not a regular file".into(),
        };
        assert_eq!(read(&fifo), not_a_file);
        assert_eq!(read(dir.path()), not_a_file);
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
        let Pidfile::Names { pid, written } = read(&path) else {
            panic!("not read")
        };
        assert_eq!(pid, 123);
        assert!(written.is_some());
    }

    #[test]
    fn directory_is_invalid_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(read(dir.path()), Pidfile::Invalid { .. }));
    }
}
