//! The configuration file (src/config.rs, src/config/raw.rs, src/config/render.rs):
//! read at the start of every run; a panic there is an abort (exit 134) where the
//! operator should get exit 2 and the line at fault.

use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;

use super::{any_text, edits, mutate};
use crate::config::{Config, ConfigError, FdPathRule, defaults};

fn home() -> Option<&'static Path> {
    Some(Path::new("/home/u"))
}

fn from_toml(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(text, Path::new("/etc/watchdog.toml"), home())
}

/// Free text as the file may hold it in a string: anything but NUL, not empty.
fn text() -> impl Strategy<Value = String> {
    "[^\0]{1,24}"
}

proptest! {
    #![proptest_config(super::config(128))]

    /// Any text: a configuration or an error that names a line, never a panic.
    #[test]
    fn any_file_is_a_config_or_an_error(text in any_text()) {
        if let Err(ConfigError::Invalid { line, column, .. }) = from_toml(&text) {
            prop_assert!(line >= 1 && column >= 1);
        }
    }

    /// The full file `watchdog config` writes, with random edits.
    #[test]
    fn an_edited_file_is_a_config_or_an_error(edits in edits()) {
        let written = defaults(home()).to_toml();
        let _ = from_toml(&mutate(&written, &edits));
    }

    /// What `watchdog config` writes reads back as the same configuration, whatever
    /// the strings in it hold (quotes, backslashes, control characters, any script).
    #[test]
    fn written_config_round_trips(
        match_ in proptest::option::of(text()),
        pidfile in proptest::option::of("/[^\0]{1,24}"),
        expect_body in proptest::option::of(text()),
        busy_fields in prop::collection::vec(text(), 0..3),
        paths in prop::collection::vec((text(), 1u64..100_000), 0..3),
        timeout_ms in 1u64..600_000,
        trend_window_s in 60u64..86_400,
        log_file in proptest::option::of("/[^\0]{1,24}"),
        ca_file in proptest::option::of("/[^\0]{1,24}"),
        insecure_tls: bool,
    ) {
        let mut cfg = defaults(home());
        cfg.target.match_ = match_;
        cfg.target.pidfile = pidfile.map(PathBuf::from);
        cfg.health.expect_body = expect_body;
        cfg.health.busy_fields = busy_fields;
        cfg.health.timeout = Duration::from_millis(timeout_ms);
        cfg.fds.paths = paths.into_iter().map(|(pattern, max)| FdPathRule { pattern, max }).collect();
        cfg.fds.trend_window = Duration::from_secs(trend_window_s);
        cfg.log.file = log_file.map(PathBuf::from);
        cfg.health.ca_file = ca_file.map(PathBuf::from);
        cfg.health.insecure_tls = insecure_tls;
        let written = cfg.to_toml();
        let read = from_toml(&written).map_err(|e| TestCaseError::fail(format!("{e}\n{written}")))?;
        prop_assert_eq!(read, cfg);
    }
}
