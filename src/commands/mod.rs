//! One file per subcommand: `check.rs`, `status.rs`, `fds.rs`, `config.rs`,
//! `schedule.rs` (and `state.rs`, what `check` and `status` both read first), and
//! `generate.rs`, the `--generate` flag's man page and completions.
//!
//! They take plain values, never clap's types: `src/main.rs` turns the parsed command
//! line (`src/cli.rs`, where clap stops) into a [`Command`] and the [`Options`] below,
//! and hands them to [`run`] with the loaded configuration.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::exit_code::ExitCode;
use crate::log::Verbosity;
use crate::report::Report;

pub mod check;
pub mod config;
pub mod fds;
pub mod generate;
pub mod schedule;
mod state;
pub mod status;

/// What the options shared by every subcommand ask, beyond the configuration they
/// override (those are merged into [`Config`] before a subcommand runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `--pid`: the server's PID, instead of the pidfile.
    pub pid: Option<u32>,
    /// `--dry-run`: decide and report, touch nothing.
    pub dry_run: bool,
    /// `--json`: exactly one JSON document on stdout.
    pub json: bool,
    /// `-v` / `-q`.
    pub verbosity: Verbosity,
}

impl Options {
    pub fn verbose(&self) -> bool {
        self.verbosity == Verbosity::Verbose
    }
}

/// The subcommand and its own arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Check,
    Status,
    Fds {
        top: usize,
    },
    Config {
        check_only: bool,
    },
    Schedule {
        kind: schedule::ScheduleKind,
        step: schedule::Step,
        /// `--every`: how often the job runs.
        every: std::time::Duration,
    },
}

impl Command {
    /// What a run of this subcommand stopped by the failsafe (src/deadline/failsafe.rs)
    /// exits with, and the words of its line, once the configuration is loaded. Only
    /// `check` acts, and it says 3 only once it does (`failsafe::relabel`); until then a
    /// stopped run has acted on nothing: 4, "unhealthy but not acted on", as `check
    /// --dry-run` would exit. `status` is that dry run. `fds` says 4 as it does when it
    /// cannot take the census. `config` only prints what it loaded (2: its failures are
    /// configuration errors); `schedule` reports a failed install with 3 itself, and so
    /// does the failsafe.
    pub fn stakes(&self) -> (ExitCode, &'static str) {
        match self {
            Command::Check => (
                ExitCode::NotActed,
                "checking the server, before acting on it (nothing was signalled)",
            ),
            Command::Status => (
                ExitCode::NotActed,
                "reading the server's status (nothing was signalled)",
            ),
            Command::Fds { .. } => (
                ExitCode::NotActed,
                "taking the server's FD census (nothing was signalled)",
            ),
            Command::Config { .. } => (ExitCode::Usage, "printing the configuration"),
            Command::Schedule { .. } => (ExitCode::RestartFailed, "installing the schedule"),
        }
    }
}

/// Runs `command` with the loaded configuration; `source` is the file it came from, if
/// any.
pub fn run(command: &Command, cfg: &Config, source: Option<&Path>, opts: &Options) -> ExitCode {
    match command {
        Command::Check => check::run(cfg, opts),
        Command::Status => status::run(cfg, opts),
        Command::Fds { top } => fds::run(cfg, opts, *top),
        Command::Config { check_only } => config::run(cfg, source, *check_only),
        Command::Schedule { kind, step, every } => {
            // The units and the LaunchAgent go under the user's home: never guess it.
            let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) else {
                eprintln!("watchdog: HOME is not set: schedule needs the user's home directory");
                return ExitCode::Usage;
            };
            let job = schedule::Job {
                exe: std::env::current_exe().unwrap_or_else(|_| "watchdog".into()),
                // The job runs from another directory: a relative path would not hold.
                config: source.and_then(|p| std::path::absolute(p).ok()),
                home: PathBuf::from(home),
                path: std::env::var("PATH").ok(),
                every: *every,
            };
            schedule::run(*kind, *step, &job, crate::deadline::run_bound(cfg))
        }
    }
}

fn print_json(report: &Report) {
    match serde_json::to_string_pretty(report) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("watchdog: cannot encode the report: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_check_may_say_restart_failed_and_only_once_it_acts() {
        let commands = [
            (Command::Check, ExitCode::NotActed),
            (Command::Status, ExitCode::NotActed),
            (Command::Fds { top: 20 }, ExitCode::NotActed),
            (Command::Config { check_only: true }, ExitCode::Usage),
        ];
        for (command, code) in commands {
            assert_eq!(command.stakes().0, code, "{command:?}");
        }
    }
}
