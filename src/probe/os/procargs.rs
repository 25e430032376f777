//! Parser of the buffer the macOS `KERN_PROCARGS2` sysctl returns for a process: its
//! argv and its initial environment. Pure, so it is compiled and tested everywhere.
//!
//! Layout (xnu `sysctl_procargsx`), all in the process's own native byte order:
//!
//! ```text
//! argc: i32 | exec path \0 | \0 padding ... | argv[0] \0 ... argv[argc-1] \0 |
//! env[0] \0 ... env[n-1] \0 | \0 | "apple" strings (executable_path=..., ptr_munge=...)
//! ```
//!
//! The environment ends at the first empty string (or at the end of the buffer); what
//! follows it belongs to the kernel, not to the process's environment.
//!
//! The buffer comes from another process's memory, which that process may have
//! rewritten, and from a sysctl that may truncate it: every read is bounds-checked and a
//! malformed buffer is an error, never a panic.

/// What `KERN_PROCARGS2` says about a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcArgs {
    /// The path the kernel executed (not necessarily `argv[0]`).
    pub exec_path: String,
    pub argv: Vec<String>,
    /// `KEY=value` strings, in order, as the process received them at exec.
    pub env: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcArgsError {
    #[error("buffer of {0} bytes is too short to hold argc")]
    TooShort(usize),
    #[error("argc is {argc}, impossible for a buffer of {len} bytes")]
    BadArgc { argc: i32, len: usize },
    #[error("the executable path is not NUL-terminated")]
    UnterminatedExecPath,
    #[error("argc is {expected} but the buffer holds only {found} complete arguments")]
    MissingArgs { expected: usize, found: usize },
}

impl ProcArgs {
    /// The environment as `(key, value)` pairs, split at the first `=`. Strings without
    /// `=` or with an empty key are not environment variables and are left out.
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.env
            .iter()
            .filter_map(|entry| {
                let (key, value) = entry.split_once('=')?;
                (!key.is_empty()).then(|| (key.to_owned(), value.to_owned()))
            })
            .collect()
    }
}

/// Parses a `KERN_PROCARGS2` buffer (only the bytes the sysctl reported as written).
/// Invalid UTF-8 is replaced (U+FFFD), as the rest of the crate works on `String`s.
pub fn parse(buf: &[u8]) -> Result<ProcArgs, ProcArgsError> {
    let Some((argc_bytes, rest)) = buf.split_first_chunk::<4>() else {
        return Err(ProcArgsError::TooShort(buf.len()));
    };
    let argc_raw = i32::from_ne_bytes(*argc_bytes);
    // Each argument takes at least its NUL, so argc can never exceed the bytes left.
    let argc = usize::try_from(argc_raw)
        .ok()
        .filter(|&n| n <= rest.len())
        .ok_or(ProcArgsError::BadArgc {
            argc: argc_raw,
            len: buf.len(),
        })?;

    let mut cursor = Cursor { buf: rest, pos: 0 };
    let exec_path = cursor
        .next_string()
        .ok_or(ProcArgsError::UnterminatedExecPath)?;
    cursor.skip_nuls();

    let mut argv = Vec::new();
    for found in 0..argc {
        match cursor.next_string() {
            Some(arg) => argv.push(arg),
            None => {
                return Err(ProcArgsError::MissingArgs {
                    expected: argc,
                    found,
                });
            }
        }
    }

    let mut env = Vec::new();
    // An unterminated last string was cut off by the sysctl: a value that may be
    // truncated is worse than a missing one (it would be replayed), so it is dropped.
    while let Some(entry) = cursor.next_string() {
        if entry.is_empty() {
            break;
        }
        env.push(entry);
    }

    Ok(ProcArgs {
        exec_path,
        argv,
        env,
    })
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    /// The NUL-terminated string at the cursor, or `None` at the end of the buffer or
    /// when the string has no terminating NUL.
    fn next_string(&mut self) -> Option<String> {
        let rest = self.buf.get(self.pos..)?;
        let len = rest.iter().position(|&b| b == 0)?;
        let s = String::from_utf8_lossy(rest.get(..len)?).into_owned();
        self.pos = self.pos.checked_add(len)?.checked_add(1)?;
        Some(s)
    }

    fn skip_nuls(&mut self) {
        while self.buf.get(self.pos) == Some(&0) {
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer shaped like the one macOS returns: argc, exec path, NUL padding to a
    /// word boundary (plus a few extra, as xnu leaves), argv, env, the terminating empty
    /// string and the "apple" strings after it.
    fn buffer(argc: i32, exec: &str, args: &[&str], env: &[&str], tail: &[&str]) -> Vec<u8> {
        let mut b = argc.to_ne_bytes().to_vec();
        b.extend_from_slice(exec.as_bytes());
        b.push(0);
        while !b.len().is_multiple_of(8) {
            b.push(0);
        }
        b.extend_from_slice(&[0; 8]);
        for s in args.iter().chain(env) {
            b.extend_from_slice(s.as_bytes());
            b.push(0);
        }
        b.push(0);
        for s in tail {
            b.extend_from_slice(s.as_bytes());
            b.push(0);
        }
        b
    }

    const ARGS: [&str; 4] = ["/usr/bin/python3", "server.py", "--port", "8787"];
    const ENV: [&str; 3] = [
        "XPC_SERVICE_NAME=com.example.hermes-webui",
        "HOME=/Users/me",
        "PATH=/usr/bin:/bin:/usr/sbin:/sbin",
    ];
    const APPLE: [&str; 2] = [
        "executable_path=/Library/Developer/CommandLineTools/usr/bin/python3",
        "ptr_munge=",
    ];

    fn hermes() -> Vec<u8> {
        buffer(
            4,
            "/Library/Developer/CommandLineTools/usr/bin/python3",
            &ARGS,
            &ENV,
            &APPLE,
        )
    }

    #[test]
    fn parses_a_realistic_buffer() {
        let parsed = parse(&hermes()).unwrap();
        assert_eq!(
            parsed.exec_path,
            "/Library/Developer/CommandLineTools/usr/bin/python3"
        );
        assert_eq!(parsed.argv, ARGS);
        assert_eq!(parsed.env, ENV, "the apple strings are not environment");
        assert_eq!(
            parsed.env_pairs(),
            vec![
                (
                    "XPC_SERVICE_NAME".to_owned(),
                    "com.example.hermes-webui".to_owned()
                ),
                ("HOME".to_owned(), "/Users/me".to_owned()),
                (
                    "PATH".to_owned(),
                    "/usr/bin:/bin:/usr/sbin:/sbin".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn keeps_empty_arguments_after_the_first() {
        let parsed = parse(&buffer(3, "/bin/sh", &["sh", "", "x"], &["A=1"], &[])).unwrap();
        assert_eq!(parsed.argv, ["sh", "", "x"]);
        assert_eq!(parsed.env, ["A=1"]);
    }

    #[test]
    fn env_ends_at_the_end_of_the_buffer_without_an_empty_string() {
        let mut b = buffer(1, "/bin/true", &["true"], &["A=1", "B=2"], &[]);
        b.pop(); // the empty string that ends the environment
        let parsed = parse(&b).unwrap();
        assert_eq!(parsed.env, ["A=1", "B=2"]);
    }

    #[test]
    fn an_unterminated_last_env_string_is_dropped() {
        let mut b = buffer(1, "/bin/true", &["true"], &["A=1", "B=2"], &[]);
        b.truncate(b.len() - 3); // cuts "B=2\0\0" to "B="
        let parsed = parse(&b).unwrap();
        assert_eq!(parsed.env, ["A=1"]);
    }

    #[test]
    fn no_environment_and_argc_zero() {
        let parsed = parse(&buffer(0, "/sbin/launchd", &[], &[], &[])).unwrap();
        assert_eq!(parsed.exec_path, "/sbin/launchd");
        assert!(parsed.argv.is_empty());
        assert!(parsed.env.is_empty());
    }

    #[test]
    fn env_pairs_skip_strings_that_are_not_variables() {
        let args = ProcArgs {
            exec_path: String::new(),
            argv: vec![],
            env: vec![
                "NOEQUALS".into(),
                "=empty-key".into(),
                "K=a=b".into(),
                "E=".into(),
            ],
        };
        assert_eq!(
            args.env_pairs(),
            vec![
                ("K".to_owned(), "a=b".to_owned()),
                ("E".to_owned(), String::new())
            ]
        );
    }

    #[test]
    fn too_short_for_argc() {
        for len in 0..4 {
            assert_eq!(parse(&hermes()[..len]), Err(ProcArgsError::TooShort(len)));
        }
    }

    #[test]
    fn negative_or_huge_argc() {
        let mut b = hermes();
        b[..4].copy_from_slice(&(-1i32).to_ne_bytes());
        assert!(matches!(
            parse(&b),
            Err(ProcArgsError::BadArgc { argc: -1, .. })
        ));
        b[..4].copy_from_slice(&i32::MAX.to_ne_bytes());
        assert!(matches!(parse(&b), Err(ProcArgsError::BadArgc { .. })));
    }

    #[test]
    fn argc_larger_than_the_strings_present() {
        // argc 9 but only 4 arguments and 3 env strings (plus the empty one and the
        // apple strings): the parser must not read the environment as arguments past
        // the end, nor index out of bounds.
        let mut b = buffer(9, "/usr/bin/python3", &ARGS, &ENV, &[]);
        assert!(matches!(
            parse(&b),
            Err(ProcArgsError::MissingArgs {
                expected: 9,
                found: 8
            })
        ));
        b.truncate(40);
        assert!(matches!(
            parse(&b),
            Err(ProcArgsError::MissingArgs { expected: 9, .. })
        ));
    }

    #[test]
    fn every_truncation_of_a_real_buffer_is_an_error_or_a_prefix() {
        let full = hermes();
        let whole = parse(&full).unwrap();
        for len in 0..full.len() {
            match parse(&full[..len]) {
                Err(_) => {}
                Ok(part) => {
                    assert_eq!(part.exec_path, whole.exec_path, "cut at {len}");
                    assert_eq!(part.argv, whole.argv, "cut at {len}");
                    assert!(whole.env.starts_with(&part.env), "cut at {len}");
                }
            }
        }
    }

    #[test]
    fn exec_path_without_nul() {
        let mut b = 1i32.to_ne_bytes().to_vec();
        b.extend_from_slice(b"/usr/bin/python3");
        assert_eq!(parse(&b), Err(ProcArgsError::UnterminatedExecPath));
    }

    #[test]
    fn garbage_never_panics() {
        // A small deterministic generator: no dependency, same bytes every run.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..2000 {
            let len = (next() % 300) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| (next() % 4) as u8 * 0x3f).collect();
            if round % 2 == 0 && b.len() >= 4 {
                // A plausible small argc, so the parser gets past the first check.
                b[..4].copy_from_slice(&((next() % 6) as i32).to_ne_bytes());
            }
            let _ = parse(&b);
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_not_rejected() {
        let mut b = 1i32.to_ne_bytes().to_vec();
        b.extend_from_slice(b"/bin/x\0\0\0arg\xff\0K=\xfe\0\0");
        let parsed = parse(&b).unwrap();
        assert_eq!(parsed.argv, ["arg\u{fffd}"]);
        assert_eq!(parsed.env, ["K=\u{fffd}"]);
    }
}
