//! Parser of the buffer the macOS `KERN_PROCARGS2` sysctl returns for a process: its
//! argv and its initial environment. Pure, so it is compiled and tested everywhere.
//!
//! What the buffer holds is the process's "strings area", which exec wrote at the top
//! of its stack (xnu bsd/kern/kern_exec.c: `exec_save_path`, `exec_extract_strings`,
//! `exec_add_apple_strings`, `exec_copyout_strings`), as `sysctl_procargsx`
//! (bsd/kern/kern_sysctl.c) copies it out, all in the process's own byte order:
//!
//! ```text
//! argc: i32 | exec path \0 | \0 x 0..7 | argv[0] \0 ... argv[argc-1] \0 |
//! env[0] \0 ... env[n-1] \0 | \0 x 0..7 | pfz=0x… \0 stack_guard=… \0 ... \0 x 0..7
//! ```
//!
//! - The exec path is the kernel's first "apple" string, `executable_path=<path>`, with
//!   its key cut off by the sysctl; it is not repeated among the apple strings after
//!   the environment.
//! - The padding after argv+env only aligns their end to 8 bytes (`exec_extract_strings`,
//!   "Align the tail of the combined argv+envv area"): when they already end on a
//!   boundary, about one process in eight, there is NO empty string between the last
//!   variable and the apple strings. So "the environment ends at the first empty
//!   string" is wrong; the kernel's strings are found by what they are instead.
//! - The apple strings always start with `pfz=` (`exec_add_apple_strings` adds it
//!   first and unconditionally, in every xnu since 2050, OS X 10.8). What follows it
//!   varies by release and by binary (`MallocNanoZone=1`, `stack_guard=`,
//!   `malloc_entropy=`, `ptr_munge=`, `main_stack=`, `executable_file=`, `dyld_file=`,
//!   `executable_cdhash=`, `executable_boothash=`, `th_port=`, `arm64e_abi=`,
//!   `HardenedRuntime=`, ...; some look like variables), so the environment is what lies
//!   between argv and the LAST string that starts with `pfz=`, less the padding.
//! - For a code-signing-restricted process (`cs_restricted`: Apple's hardened system
//!   binaries such as `/bin/sleep`, which ones depends on the release), read by anyone
//!   but itself without Apple's private entitlement, root included, `sysctl_procargsx`
//!   (`omit_env_vars`) cuts the buffer right after argv's last NUL: no environment,
//!   no padding, no apple strings. A whole buffer never ends there (the apple strings
//!   always follow), so a buffer that does is an omitted environment, never an empty
//!   one.
//!
//! The strings area lies in the process's own writable memory: it may have rewritten
//! it (setproctitle-style), and every read is bounds-checked and a malformed buffer is
//! an error, never a panic. What a process can do to its own buffer: show any argv
//! and any environment (including a forged `pfz=`), or make its environment look
//! omitted or unreadable. The kernel fixes the buffer's length at exec, so it cannot
//! make us read past it or into another process's memory. Nothing read here gives the
//! process more than it has: its environment is only replayed into its own replacement
//! (started as its own user, or the watchdog's when the watchdog is not root), which it
//! could have exec'ed with any environment itself; and an environment it hides or
//! garbles is "unknown", which holds a restart back rather than starting anything.

/// What `KERN_PROCARGS2` says about a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcArgs {
    /// The path the kernel executed (not necessarily `argv[0]`).
    pub exec_path: String,
    pub argv: Vec<String>,
    /// The environment, or why the buffer does not show it. Never an empty list in
    /// place of one that could not be read.
    pub env: Environment,
}

/// The environment part of a `KERN_PROCARGS2` buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Environment {
    /// The strings the process received at exec, in order (empty strings included,
    /// as execve passed them), without the kernel's apple strings and padding.
    Read(Vec<String>),
    /// The buffer ends right after argv: the kernel withheld the environment
    /// (`sysctl_procargsx`, `omit_env_vars`). Unknown, not empty.
    Omitted,
    /// Strings follow argv, but not the kernel's apple strings (no `pfz=`) that end
    /// every whole buffer: it was cut short or rewritten by the process, and where the
    /// environment ends cannot be told. Unknown, not empty.
    Undelimited,
}

/// The first of the kernel's apple strings after the environment
/// (`exec_add_apple_strings`, `PFZ_KEY`).
pub const APPLE_STRINGS_START: &str = "pfz=";

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

/// The environment as `(key, value)` pairs, split at the first `=`. Strings without
/// `=` or with an empty key are not environment variables and are left out.
pub fn env_pairs(entries: &[String]) -> Vec<(String, String)> {
    entries
        .iter()
        .filter_map(|entry| {
            let (key, value) = entry.split_once('=')?;
            (!key.is_empty()).then(|| (key.to_owned(), value.to_owned()))
        })
        .collect()
}

/// Parses a `KERN_PROCARGS2` buffer (only the bytes the sysctl reported as written).
/// Invalid UTF-8 is replaced (U+FFFD), as the rest of the crate works on `String`s.
/// argv is returned whenever it is whole, whatever the environment's fate.
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
    // All the NULs, as `sysctl_procargsx` itself skips them when it finds where argv
    // ends for an omitted environment: the two walks must agree on that end. (An empty
    // argv[0] is taken for padding by both; only a process exec'ed so is misread.)
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

    Ok(ProcArgs {
        exec_path,
        argv,
        env: environment(cursor.rest()),
    })
}

/// The environment in what follows argv (see the module's comment).
fn environment(tail: &[u8]) -> Environment {
    if tail.is_empty() {
        return Environment::Omitted;
    }
    // NUL-terminated strings; bytes after the last NUL were cut off and are dropped
    // (they can only belong to the apple strings of a buffer that has its `pfz=`).
    let mut strings: Vec<&[u8]> = tail.split(|&b| b == 0).collect();
    strings.pop();
    let Some(apple) = strings
        .iter()
        .rposition(|s| s.starts_with(APPLE_STRINGS_START.as_bytes()))
    else {
        return Environment::Undelimited;
    };
    let mut env = &strings[..apple];
    // The alignment padding before the apple strings: 0 to 7 empty strings.
    while let Some((last, before)) = env.split_last()
        && last.is_empty()
    {
        env = before;
    }
    Environment::Read(
        env.iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
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

    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pads `b` with NULs as exec aligns the strings area: to 8 bytes counted from
    /// the start of the area, which lies 16 bytes (`executable_path=`, cut off by the
    /// sysctl) before the exec path, i.e. 4 bytes into the buffer after argc.
    fn align(b: &mut Vec<u8>) {
        while !(b.len() - 4).is_multiple_of(8) {
            b.push(0);
        }
    }

    fn strings(b: &mut Vec<u8>, list: &[&str]) {
        for s in list {
            b.extend_from_slice(s.as_bytes());
            b.push(0);
        }
    }

    /// A buffer laid out as `exec_copyout_strings` and `sysctl_procargsx` make it (see
    /// the module's comment): argc, exec path, padding, argv, env, padding (none when
    /// argv+env end on a boundary), the apple strings, padding. No Mac here to capture
    /// one from; the layout and the apple strings' order are read in xnu-11417.
    fn buffer(argc: i32, exec: &str, args: &[&str], env: &[&str], apple: &[&str]) -> Vec<u8> {
        let mut b = argc.to_ne_bytes().to_vec();
        strings(&mut b, &[exec]);
        align(&mut b);
        strings(&mut b, args);
        strings(&mut b, env);
        align(&mut b);
        strings(&mut b, apple);
        align(&mut b);
        b
    }

    /// What the sysctl gives for a restricted process: cut right after argv.
    fn omitted(argc: i32, exec: &str, args: &[&str]) -> Vec<u8> {
        let mut b = argc.to_ne_bytes().to_vec();
        strings(&mut b, &[exec]);
        align(&mut b);
        strings(&mut b, args);
        b
    }

    const ARGS: [&str; 4] = ["/usr/bin/python3", "server.py", "--port", "8787"];
    const ENV: [&str; 3] = [
        "XPC_SERVICE_NAME=com.example.hermes-webui",
        "HOME=/Users/me",
        "PATH=/usr/bin:/bin:/usr/sbin:/sbin",
    ];
    /// In `exec_add_apple_strings`' order, as an arm64 Mac gives them to a python3
    /// spawned with the nano allocator (values made up, in the kernel's formats).
    const APPLE: [&str; 11] = [
        "pfz=0xffeaf0000",
        "MallocNanoZone=1",
        "stack_guard=0x92a1c1d3b2e400f1",
        "malloc_entropy=0x4a1c7e0f7b3c9d21,0x6f2d3c4b5a697887",
        "ptr_munge=0x9d3c2b1a09f8e7d6",
        "main_stack=0x16f604000,0x800000,0x16b604000,0x4000000",
        "executable_file=0x1a01000011,0x3d3f5e",
        "dyld_file=0x1a01000011,0xfffffff0",
        "executable_cdhash=5a4f3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a",
        "executable_boothash=0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c",
        "th_port=0x103",
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

    fn read(env: &[&str]) -> Environment {
        Environment::Read(env.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn parses_a_realistic_buffer() {
        let parsed = parse(&hermes()).unwrap();
        assert_eq!(
            parsed.exec_path,
            "/Library/Developer/CommandLineTools/usr/bin/python3"
        );
        assert_eq!(parsed.argv, ARGS);
        assert_eq!(
            parsed.env,
            read(&ENV),
            "the apple strings are not environment"
        );
        let Environment::Read(env) = parsed.env else {
            unreachable!()
        };
        assert_eq!(
            env_pairs(&env),
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

    /// The kernel's apple strings are no environment (docs/SECURITY.md, "launchd"): when argv+env end on an 8-byte boundary the apple strings
    /// follow the last variable with no empty string between; the old parser, which
    /// ended the environment at the first empty string, returned `pfz=`,
    /// `MallocNanoZone=1`, `stack_guard=`... as variables, to be replayed.
    #[test]
    fn no_padding_before_the_apple_strings() {
        let mut b = 1i32.to_ne_bytes().to_vec();
        strings(&mut b, &["/bin/x"]); // 7 bytes: 4 + 7 = 11, aligned to 12
        align(&mut b);
        strings(&mut b, &["x", "HOME=/Users/me"]); // 2 + 15 = 17 bytes
        strings(&mut b, &["A=1234"]); // 7 more: 24, a multiple of 8
        assert!((b.len() - 4).is_multiple_of(8), "{}", b.len());
        let apple_at = b.len();
        strings(&mut b, &APPLE);
        align(&mut b);
        assert_eq!(&b[apple_at - 7..apple_at + 4], b"A=1234\0pfz=");

        let parsed = parse(&b).unwrap();
        assert_eq!(parsed.argv, ["x"]);
        assert_eq!(parsed.env, read(&["HOME=/Users/me", "A=1234"]));
    }

    /// Every padding length, 0 to 7, between the environment and the apple strings.
    #[test]
    fn every_padding_before_the_apple_strings() {
        let mut paddings = std::collections::BTreeSet::new();
        for len in 0..16 {
            let var = format!("V={}", "v".repeat(len));
            let b = buffer(1, "/bin/x", &["x"], &["HOME=/h", &var], &APPLE);
            let pfz = b.windows(4).position(|w| w == b"pfz=").unwrap();
            let padding = b[..pfz].iter().rev().take_while(|&&c| c == 0).count() - 1;
            paddings.insert(padding);
            let parsed = parse(&b).unwrap();
            assert_eq!(parsed.env, read(&["HOME=/h", &var]), "padding {padding}");
        }
        assert_eq!(paddings, (0..8).collect());
    }

    /// An environment the kernel hides (docs/SECURITY.md, "launchd"): the sysctl's buffer for a restricted process ends after
    /// argv. That is an omitted environment, which the old parser returned as an
    /// empty one.
    #[test]
    fn an_omitted_environment_is_not_an_empty_one() {
        let parsed = parse(&omitted(2, "/bin/sleep", &["sleep", "30"])).unwrap();
        assert_eq!(parsed.exec_path, "/bin/sleep");
        assert_eq!(parsed.argv, ["sleep", "30"]);
        assert_eq!(parsed.env, Environment::Omitted);
        // argc 0: the exec path and its padding, nothing after.
        let parsed = parse(&omitted(0, "/sbin/launchd", &[])).unwrap();
        assert!(parsed.argv.is_empty());
        assert_eq!(parsed.env, Environment::Omitted);

        // A whole buffer with no variables still has its apple strings.
        let parsed = parse(&buffer(2, "/bin/sleep", &["sleep", "30"], &[], &APPLE)).unwrap();
        assert_eq!(parsed.env, Environment::Read(vec![]));
    }

    #[test]
    fn keeps_empty_arguments_after_the_first() {
        let b = buffer(3, "/bin/sh", &["sh", "", "x"], &["A=1"], &APPLE);
        let parsed = parse(&b).unwrap();
        assert_eq!(parsed.argv, ["sh", "", "x"]);
        assert_eq!(parsed.env, read(&["A=1"]));
    }

    /// An empty string inside the environment does not end it (execve passes such
    /// strings on); it is no variable, so `env_pairs` leaves it out.
    #[test]
    fn an_empty_string_inside_the_environment() {
        let b = buffer(1, "/bin/x", &["x"], &["A=1", "", "B=2"], &APPLE);
        let parsed = parse(&b).unwrap();
        assert_eq!(parsed.env, read(&["A=1", "", "B=2"]));
    }

    /// A variable named like an apple string stays a variable: the kernel's own
    /// strings are those from the last `pfz=` on.
    #[test]
    fn variables_that_look_like_apple_strings() {
        let env = ["pfz=mine", "stack_guard=x", "MallocNanoZone=0"];
        let parsed = parse(&buffer(1, "/bin/x", &["x"], &env, &APPLE)).unwrap();
        assert_eq!(parsed.env, read(&env));
    }

    #[test]
    fn without_the_apple_strings_the_environment_is_undelimited() {
        // Cut inside the environment (the sysctl never cuts the end, but a process can
        // zero its own strings area).
        let b = buffer(1, "/bin/x", &["x"], &["A=1", "B=2"], &[]);
        assert_eq!(parse(&b).unwrap().env, Environment::Undelimited);
        let mut b = buffer(1, "/bin/x", &["x"], &["A=1", "B=2"], &APPLE);
        let pfz = b.windows(4).position(|w| w == b"pfz=").unwrap();
        b.truncate(pfz + 2);
        assert_eq!(parse(&b).unwrap().env, Environment::Undelimited);
        // A `pfz=` cut before its NUL is not one.
        b.truncate(pfz + 4);
        assert_eq!(parse(&b).unwrap().env, Environment::Undelimited);
        // Zeroed after argv.
        let mut b = omitted(1, "/bin/x", &["x"]);
        b.extend_from_slice(&[0; 24]);
        assert_eq!(parse(&b).unwrap().env, Environment::Undelimited);
    }

    #[test]
    fn the_apple_strings_may_be_cut_after_pfz() {
        let mut b = hermes();
        let pfz = b.windows(4).position(|w| w == b"pfz=").unwrap();
        b.truncate(pfz + "pfz=0xffeaf0000".len() + 5);
        assert_eq!(parse(&b).unwrap().env, read(&ENV));
    }

    #[test]
    fn env_pairs_skip_strings_that_are_not_variables() {
        let env = ["NOEQUALS", "=empty-key", "K=a=b", "E=", ""].map(String::from);
        assert_eq!(
            env_pairs(&env),
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
        // argc 30 but only 4 arguments, 3 variables, 11 apple strings and a few empty
        // ones of padding: the parser must not index out of bounds.
        let mut b = buffer(30, "/usr/bin/python3", &ARGS, &ENV, &APPLE);
        assert!(matches!(
            parse(&b),
            Err(ProcArgsError::MissingArgs {
                expected: 30,
                found: 18..30
            })
        ));
        b.truncate(40);
        assert!(matches!(
            parse(&b),
            Err(ProcArgsError::MissingArgs { expected: 30, .. })
        ));
    }

    /// A cut buffer gives an error, or argv whole with the environment whole, omitted
    /// (cut right after argv) or undelimited: never part of it, never apple strings.
    #[test]
    fn every_truncation_of_a_real_buffer() {
        let full = hermes();
        let whole = parse(&full).unwrap();
        let after_argv = omitted(4, &whole.exec_path, &ARGS).len();
        for len in 0..full.len() {
            let Ok(part) = parse(&full[..len]) else {
                continue;
            };
            assert_eq!(part.exec_path, whole.exec_path, "cut at {len}");
            assert_eq!(part.argv, whole.argv, "cut at {len}");
            match part.env {
                Environment::Read(_) => assert_eq!(part.env, whole.env, "cut at {len}"),
                Environment::Omitted => assert_eq!(len, after_argv),
                Environment::Undelimited => {}
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
        b.extend_from_slice(b"/bin/x\0\0\0arg\xff\0K=\xfe\0\0pfz=0x1\0");
        let parsed = parse(&b).unwrap();
        assert_eq!(parsed.argv, ["arg\u{fffd}"]);
        assert_eq!(parsed.env, read(&["K=\u{fffd}"]));
    }
}
