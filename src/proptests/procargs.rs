//! macOS `KERN_PROCARGS2` buffers (src/probe/os/procargs.rs), read from the target's
//! own memory, and the pure helpers that name macOS FDs from kernel structs
//! (src/probe/os/darwin_fd.rs). Both are plain functions over bytes; they run here.

use proptest::prelude::*;

use super::{any_bytes, edits, mutate_bytes};
use crate::probe::os::darwin_fd;
use crate::probe::os::procargs::{APPLE_STRINGS_START, Environment, ProcArgs, env_pairs, parse};

/// A buffer laid out as xnu's `sysctl_procargsx` writes it: argv+env padded to 8
/// bytes (no NUL at all when they end on a boundary), then the apple strings, which
/// always start with `pfz=`; or, with `apple` `None`, cut after argv as for a
/// restricted process.
fn buffer(
    argc: i32,
    exec: &str,
    padding: usize,
    argv: &[String],
    env: &[String],
    apple: Option<&[String]>,
) -> Vec<u8> {
    let mut b = argc.to_ne_bytes().to_vec();
    b.extend(exec.as_bytes());
    b.push(0);
    b.extend(std::iter::repeat_n(0, padding));
    for s in argv {
        b.extend(s.as_bytes());
        b.push(0);
    }
    let Some(apple) = apple else {
        return b;
    };
    for s in env {
        b.extend(s.as_bytes());
        b.push(0);
    }
    while !(b.len() - 4).is_multiple_of(8) {
        b.push(0);
    }
    b.extend(APPLE_STRINGS_START.as_bytes());
    b.extend(b"0xffeaf0000\0");
    for s in apple {
        b.extend(s.as_bytes());
        b.push(0);
    }
    b
}

/// A string of the buffer: no NUL; `nonempty` where an empty one would read as padding
/// (argv[0]) or as the end of the environment.
fn string(nonempty: bool) -> BoxedStrategy<String> {
    if nonempty {
        "[^\0]{1,16}".boxed()
    } else {
        "[^\0]{0,16}".boxed()
    }
}

#[derive(Debug, Clone)]
struct Parts {
    exec: String,
    padding: usize,
    argv: Vec<String>,
    env: Vec<String>,
    /// `None`: the environment omitted.
    apple: Option<Vec<String>>,
}

fn parts() -> impl Strategy<Value = Parts> {
    (
        string(false),
        0usize..16,
        (string(true), prop::collection::vec(string(false), 0..5)),
        prop::collection::vec(string(false), 0..6),
        prop::option::weighted(0.9, prop::collection::vec(string(false), 0..3)),
    )
        .prop_map(|(exec, padding, (first, rest), env, apple)| Parts {
            exec,
            padding,
            argv: std::iter::once(first).chain(rest).collect(),
            // A variable that starts like the kernel's first apple string would end the
            // environment of a buffer cut after it: only a cut made by the process
            // itself can do that (the sysctl never cuts the end), and that is its own
            // business, not a property of the parser.
            env: env
                .into_iter()
                .map(|s| {
                    if s.starts_with(APPLE_STRINGS_START) {
                        format!("x{s}")
                    } else {
                        s
                    }
                })
                .collect(),
            apple,
        })
}

fn to_buffer(p: &Parts) -> Vec<u8> {
    let argc = i32::try_from(p.argv.len()).unwrap();
    buffer(
        argc,
        &p.exec,
        p.padding,
        &p.argv,
        &p.env,
        p.apple.as_deref(),
    )
}

proptest! {
    #![proptest_config(super::config(256))]

    #[test]
    fn any_buffer_parses_or_is_an_error(bytes in any_bytes(300), argc in prop_oneof![Just(-1i32), Just(i32::MIN), Just(i32::MAX), 0i32..8]) {
        if let Ok(ProcArgs { env: Environment::Read(env), .. }) = parse(&bytes) {
            let _ = env_pairs(&env);
        }
        let mut with_argc = argc.to_ne_bytes().to_vec();
        with_argc.extend(&bytes);
        if let Ok(args) = parse(&with_argc) {
            prop_assert_eq!(i32::try_from(args.argv.len()).ok(), Some(argc));
        }
    }

    #[test]
    fn edited_buffer_parses_or_is_an_error(parts in parts(), edits in edits()) {
        if let Ok(ProcArgs { env: Environment::Read(env), .. }) = parse(&mutate_bytes(&to_buffer(&parts), &edits)) {
            let _ = env_pairs(&env);
        }
    }

    #[test]
    fn buffer_round_trips(parts in parts()) {
        let parsed = parse(&to_buffer(&parts)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // Empty strings at the end of the environment read as padding, and they are no
        // variables anyway.
        let mut env = parts.env.clone();
        while env.last().is_some_and(String::is_empty) {
            env.pop();
        }
        let env = if parts.apple.is_some() { Environment::Read(env) } else { Environment::Omitted };
        prop_assert_eq!(parsed, ProcArgs { exec_path: parts.exec, argv: parts.argv, env });
    }

    /// A buffer cut anywhere (a process may zero its own strings area): an error, or a
    /// parse whose argv is whole and whose environment is whole, omitted or
    /// undelimited, never a part of it.
    #[test]
    fn a_cut_buffer_is_an_error_or_a_prefix(parts in parts(), cut: prop::sample::Index) {
        let whole = to_buffer(&parts);
        let at = cut.index(whole.len() + 1);
        if let Ok(parsed) = parse(&whole[..at]) {
            prop_assert_eq!(&parsed.exec_path, &parts.exec);
            prop_assert_eq!(&parsed.argv, &parts.argv);
            if let Environment::Read(env) = &parsed.env {
                prop_assert!(parts.apple.is_some());
                prop_assert!(parts.env.starts_with(env) && parts.env[env.len()..].iter().all(String::is_empty), "{:?} vs {:?}", env, parts.env);
            }
        }
    }

    #[test]
    fn env_pairs_round_trip(pairs in prop::collection::vec(("[^\0=]{1,10}", "[^\0]{0,12}"), 0..6), junk in prop::collection::vec("[^\0=]{1,8}", 0..3)) {
        let env: Vec<String> = junk.iter().cloned()
            .chain(pairs.iter().map(|(k, v)| format!("{k}={v}")))
            .collect();
        prop_assert_eq!(env_pairs(&env), pairs);
    }

    /// The FD naming helpers take kernel structs' fields as they come.
    #[test]
    fn darwin_fd_helpers_never_panic(
        raw in any_bytes(120),
        vflag: u8,
        family: i32,
        addr: [u8; 16],
        port: i32,
        vtype: i32,
        nlink: u16,
        ino: u64,
        fdtype: u32,
        state: i32,
    ) {
        let _ = darwin_fd::unix_path_from_sockaddr(&raw);
        let _ = darwin_fd::vnode_target(&raw, vtype, nlink, ino);
        let _ = darwin_fd::inet_addr(vflag, family, &addr);
        let _ = darwin_fd::InetEndpoints::from_raw(vflag, family, &addr, port, &addr, port);
        let _ = darwin_fd::generic_target(fdtype);
        let _ = darwin_fd::tcp_state_name(state);
        prop_assert_eq!(u32::from(darwin_fd::port_from_raw(i32::from(u16::try_from(port & 0xffff).unwrap_or(0).to_be()))), u32::try_from(port & 0xffff).unwrap_or(0));
        let c = darwin_fd::c_str_bytes(&raw);
        prop_assert!(!c.contains(&0) && raw.starts_with(c));
    }

    /// `sockaddr_un`: length, family, path, NUL; the path comes back.
    #[test]
    fn unix_sockaddr_round_trips(path in "[^\0]{1,60}", spare in 0usize..8) {
        // At most 240 bytes: the length fits its byte.
        let mut raw = vec![0u8, 1];
        raw.extend(path.as_bytes());
        raw.push(0);
        raw[0] = u8::try_from(raw.len()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        raw.extend(std::iter::repeat_n(0, spare));
        prop_assert_eq!(darwin_fd::unix_path_from_sockaddr(&raw), Some(path));
    }
}
