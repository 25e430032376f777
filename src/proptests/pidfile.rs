//! Pidfiles (src/probe/discover/pidfile.rs): a file the server, or whoever can write its
//! directory, wrote.

use proptest::prelude::*;

use super::{any_bytes, any_text};
use crate::probe::discover::pidfile::{Pidfile, parse_pid, read};

/// Blanks a pidfile may carry around its number: a newline, CRLF, spaces, tabs.
fn blank() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec![" ", "\t", "\n", "\r\n"]), 0..3)
        .prop_map(|b| b.concat())
}

proptest! {
    #![proptest_config(super::config(256))]

    /// Any content: a PID only when the trimmed text is a positive number.
    #[test]
    fn any_content_is_a_pid_or_explained(bytes in any_bytes(200), text in any_text()) {
        for bytes in [bytes.as_slice(), text.as_bytes()] {
            let lossy = String::from_utf8_lossy(bytes);
            let expected = lossy.trim().parse::<u32>().ok().filter(|&p| p > 0);
            match parse_pid(bytes) {
                Ok(pid) => prop_assert_eq!(Some(pid), expected),
                Err(why) => {
                    prop_assert_eq!(None, expected);
                    prop_assert!(why.starts_with("does not contain a PID"), "{}", why);
                    // The reason quotes at most 40 characters of the file (escaped).
                    prop_assert!(why.chars().count() < 40 * 10 + 40, "{}", why);
                }
            }
        }
    }

    #[test]
    fn a_written_pid_round_trips(pid in 1u32.., before in blank(), after in blank()) {
        prop_assert_eq!(parse_pid(format!("{before}{pid}{after}").as_bytes()), Ok(pid));
    }

    /// Through the file: whatever it holds, `read` answers; past 4 KiB it refuses.
    #[test]
    fn any_file_is_read_or_refused(
        bytes in prop_oneof![any_bytes(300), (1u32.., 0usize..5000).prop_map(|(pid, pad)| {
            let mut b = pid.to_string().into_bytes();
            b.extend(std::iter::repeat_n(b' ', pad));
            b
        })],
    ) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let path = dir.path().join("server.pid");
        std::fs::write(&path, &bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        match read(&path) {
            Pidfile::Names { pid, written, .. } => {
                prop_assert_eq!(parse_pid(&bytes), Ok(pid));
                prop_assert!(bytes.len() <= 4096);
                prop_assert!(written.is_some());
            }
            // A file past the limit is refused, not read up to the limit.
            Pidfile::Invalid { why } if bytes.len() > 4096 => {
                prop_assert!(why.contains("longer than 4096 bytes"), "{}", why);
            }
            Pidfile::Invalid { why } => prop_assert_eq!(parse_pid(&bytes), Err(why)),
            other => prop_assert!(false, "a regular file read as {:?}", other),
        }
    }
}
