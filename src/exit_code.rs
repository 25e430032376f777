//! The process exit codes (docs/DESIGN.md, "Exit codes"), as one typed enum so that no code
//! path invents a number of its own.

use std::process::ExitCode as StdExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(into = "u8")]
pub enum ExitCode {
    /// Healthy (warnings allowed).
    Healthy = 0,
    /// Unhealthy, restarted, and healthy again.
    Restarted = 1,
    /// Usage or configuration error; nothing was touched.
    Usage = 2,
    /// A restart was attempted and failed, or the server was not healthy within
    /// `verify_timeout`.
    RestartFailed = 3,
    /// Unhealthy but not acted on: dry run, startup grace, crash-loop guard,
    /// `method = "none"`, nothing to start, or a target that could not be named safely.
    NotActed = 4,
    /// Skipped: another run holds the lock.
    Locked = 5,
}

impl ExitCode {
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<ExitCode> for u8 {
    fn from(code: ExitCode) -> u8 {
        code.code()
    }
}

impl From<ExitCode> for StdExitCode {
    fn from(code: ExitCode) -> StdExitCode {
        StdExitCode::from(code.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_spec() {
        let table = [
            (ExitCode::Healthy, 0),
            (ExitCode::Restarted, 1),
            (ExitCode::Usage, 2),
            (ExitCode::RestartFailed, 3),
            (ExitCode::NotActed, 4),
            (ExitCode::Locked, 5),
        ];
        for (code, number) in table {
            assert_eq!(code.code(), number, "{code:?}");
        }
    }

    #[test]
    fn serializes_as_a_number() {
        assert_eq!(serde_json::to_string(&ExitCode::NotActed).unwrap(), "4");
    }
}
