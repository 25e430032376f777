//! Property tests for every parser of data from outside the process: `/proc` files,
//! supervisor tools' output, `history.json`, pidfiles, macOS kernel buffers, the
//! health body and the configuration's units.
//!
//! Each parser gets two kinds of property:
//! - arbitrary input (any string or bytes, and a real sample with random edits) never
//!   panics: the text comes from a process, a file or a tool the target's owner may
//!   control, and a panic under `panic = "abort"` ends the run with no exit code of ours;
//! - well-formed input generated from parts parses back to those parts.
//!
//! They live apart from the parsers so that the parsers' own files stay short; the
//! parsers are reached through `crate::…` (`pub(crate)` where they were private).

mod config;
mod fds;
mod history;
mod log;
mod pidfile;
// The /proc and netlink parsers exist only in the Linux build (src/probe/os/mod.rs
// picks the platform); everything else here is platform-free.
#[cfg(target_os = "linux")]
mod proc;
mod procargs;
#[cfg(target_os = "linux")]
mod sockets;
mod supervisors;
mod units;

use proptest::prelude::*;
use proptest::sample::Index;

/// One random edit of a sample: what to do, where, and the character it may insert.
#[derive(Debug, Clone)]
pub enum Edit {
    Delete(Index),
    Insert(Index, char),
    Replace(Index, char),
    /// Repeats a short run of characters in place (a duplicated field or line).
    Repeat(Index, usize),
    Truncate(Index),
}

/// Characters that mean something to one parser or another, and a few that mean
/// nothing to any of them.
fn edit_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(vec![
            ' ', '\t', '\n', '\r', '\0', ':', '=', '(', ')', '{', '}', ',', ';', '-', '+', '/',
            '@', '0', '1', '9', 'A', 'F', 'x', '\u{fffd}', 'é', '\u{85}',
        ]),
        1 => any::<char>(),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => any::<Index>().prop_map(Edit::Delete),
        3 => (any::<Index>(), edit_char()).prop_map(|(at, c)| Edit::Insert(at, c)),
        3 => (any::<Index>(), edit_char()).prop_map(|(at, c)| Edit::Replace(at, c)),
        1 => (any::<Index>(), 1usize..12).prop_map(|(at, n)| Edit::Repeat(at, n)),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ]
}

/// Up to eight random edits.
pub fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(edit(), 1..8)
}

/// `text` with `edits` applied, character by character (so every result is a string).
pub fn mutate(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for edit in edits {
        // `Index` picks a position within the current length; an empty text only grows.
        let len = chars.len();
        match *edit {
            Edit::Insert(at, c) => chars.insert(at.index(len + 1), c),
            _ if len == 0 => {}
            Edit::Delete(at) => {
                chars.remove(at.index(len));
            }
            Edit::Replace(at, c) => chars[at.index(len)] = c,
            Edit::Repeat(at, n) => {
                let from = at.index(len);
                let run: Vec<char> = chars[from..(from + n).min(len)].to_vec();
                chars.splice(from..from, run);
            }
            Edit::Truncate(at) => chars.truncate(at.index(len)),
        }
    }
    chars.into_iter().collect()
}

/// `bytes` with `edits` applied byte by byte (an inserted character is its first byte).
pub fn mutate_bytes(bytes: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for edit in edits {
        let len = out.len();
        let byte = |c: char| {
            let mut buf = [0u8; 4];
            c.encode_utf8(&mut buf).as_bytes()[0]
        };
        match *edit {
            Edit::Insert(at, c) => out.insert(at.index(len + 1), byte(c)),
            _ if len == 0 => {}
            Edit::Delete(at) => {
                out.remove(at.index(len));
            }
            Edit::Replace(at, c) => out[at.index(len)] = byte(c),
            Edit::Repeat(at, n) => {
                let from = at.index(len);
                let run = out[from..(from + n).min(len)].to_vec();
                out.splice(from..from, run);
            }
            Edit::Truncate(at) => out.truncate(at.index(len)),
        }
    }
    out
}

/// Text with no line break: one field of a line-oriented format.
pub fn one_line(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        any::<char>().prop_filter("no line break", |c| *c != '\n'),
        0..max,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// Any text, biased towards the short lines and separators parsers split on.
pub fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(edit_char(), 0..200).prop_map(|c| c.into_iter().collect()),
    ]
}

/// Any bytes, biased towards NULs and ASCII.
pub fn any_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..max),
        prop::collection::vec(
            prop::sample::select(vec![0u8, 0, b'=', b'a', b'/', 0xff]),
            0..max
        ),
    ]
}

/// `cases` cases a property, unless `PROPTEST_CASES` asks for another number (a
/// longer hunt: `PROPTEST_CASES=10000 cargo test --lib proptests`). Failures are not
/// saved under `proptest-regressions/`: each one found becomes a plain unit test
/// beside the parser it broke.
pub fn config(cases: u32) -> ProptestConfig {
    // The default reads PROPTEST_CASES and the other PROPTEST_* settings.
    let from_environment = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            from_environment.cases
        } else {
            cases
        },
        failure_persistence: None,
        ..from_environment
    }
}
