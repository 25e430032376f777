//! Signal names for `restart.pre_kill_signal`.

/// The expected form, quoted in every signal error.
pub const FORM: &str = r#"a signal name such as "USR1" or "SIGUSR1" (one of HUP, INT, QUIT, ABRT, USR1, USR2, TERM, WINCH), or "" for none"#;

/// Signals that make sense before a kill: the server can catch them and do something
/// useful (Hermes WebUI dumps its thread stacks on USR1).
const PRE_KILL: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ABRT", libc::SIGABRT),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("TERM", libc::SIGTERM),
    ("WINCH", libc::SIGWINCH),
];

/// Parses "USR1", "SIGUSR1" or "usr1" into its number.
pub fn parse_pre_kill(text: &str) -> Result<i32, String> {
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some((_, number)) = PRE_KILL.iter().find(|(n, _)| *n == name) {
        return Ok(*number);
    }
    if matches!(name, "KILL" | "STOP") {
        return Err(format!(
            "SIG{name} cannot be caught, so the server cannot dump anything before the \
             kill: expected {FORM}"
        ));
    }
    Err(format!("unknown signal {text:?}: expected {FORM}"))
}

/// The name `to_toml` writes back, without the "SIG" prefix.
pub fn name(number: i32) -> Option<&'static str> {
    PRE_KILL
        .iter()
        .find(|(_, n)| *n == number)
        .map(|(name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        let cases: &[(&str, i32)] = &[
            ("USR1", libc::SIGUSR1),
            ("SIGUSR1", libc::SIGUSR1),
            ("usr1", libc::SIGUSR1),
            ("sigterm", libc::SIGTERM),
            ("HUP", libc::SIGHUP),
            ("WINCH", libc::SIGWINCH),
        ];
        for (text, number) in cases {
            assert_eq!(parse_pre_kill(text), Ok(*number), "{text}");
            assert!(name(*number).is_some());
        }
    }

    #[test]
    fn names_rejected() {
        let cases: &[(&str, &str)] = &[
            ("KILL", "cannot be caught"),
            ("SIGSTOP", "cannot be caught"),
            ("USR3", "unknown signal"),
            ("10", "unknown signal"),
            ("SIG", "unknown signal"),
        ];
        for (text, needle) in cases {
            let err = parse_pre_kill(text).expect_err(text);
            assert!(err.contains(needle), "{text}: {err}");
            assert!(err.contains("\"USR1\""), "{text}: {err}");
        }
    }
}
