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
    /// Every code, in order: the one source of the `--help` text and README's table.
    pub const ALL: [ExitCode; 6] = [
        ExitCode::Healthy,
        ExitCode::Restarted,
        ExitCode::Usage,
        ExitCode::RestartFailed,
        ExitCode::NotActed,
        ExitCode::Locked,
    ];

    pub fn code(self) -> u8 {
        self as u8
    }

    /// What the code tells the operator, every case that leads to it included, as
    /// README's table shows it (Markdown: `code` spans).
    pub fn meaning(self) -> &'static str {
        match self {
            ExitCode::Healthy => {
                "healthy (warnings allowed; a predictive restart deferred while busy, or not \
                 made in a dry run)"
            }
            ExitCode::Restarted => "unhealthy, restarted, and healthy again",
            ExitCode::Usage => "usage or configuration error; nothing touched",
            ExitCode::RestartFailed => {
                "restart attempted and failed, or not healthy within `verify_timeout` (also: \
                 `schedule --install` or `--uninstall` failed)"
            }
            ExitCode::NotActed => {
                "unhealthy but not acted on: `--dry-run`, startup grace, crash-loop guard, \
                 `method = \"none\"`, nothing to start, the target not clearly identified, an \
                 orphan it may not kill (also: `fds` found no process or may not read it)"
            }
            ExitCode::Locked => "skipped: another run holds the lock",
        }
    }
}

/// The "Exit codes:" part of `--help`: each code and its meaning, wrapped to `width`
/// columns, continuation lines indented under the meaning.
pub fn help_text(width: usize) -> String {
    let mut out = String::from("Exit codes:\n");
    for code in ExitCode::ALL {
        let indent = "     ";
        let mut line = format!("  {}  ", code.code());
        for word in code.meaning().replace('`', "").split_whitespace() {
            if line.len() + 1 + word.len() > width && line.len() > indent.len() + 2 {
                out.push_str(line.trim_end());
                out.push('\n');
                line = indent.to_string();
            } else if !line.ends_with("  ") && line != indent {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
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
    fn codes_are_the_documented_numbers() {
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

    /// README's table is this enum, row for row: one source, checked.
    #[test]
    fn readme_table_is_the_enum() {
        let readme = include_str!("../README.md");
        let rows: Vec<&str> = readme
            .split("## Exit codes")
            .nth(1)
            .expect("README has an Exit codes section")
            .split("\n## ")
            .next()
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| code"))
            .collect();
        let expected: Vec<String> = ExitCode::ALL
            .iter()
            .map(|c| format!("| {} | {} |", c.code(), c.meaning()))
            .collect();
        assert_eq!(rows, expected);
    }

    #[test]
    fn help_text_lists_every_code_within_the_width() {
        let text = help_text(78);
        for line in text.lines() {
            assert!(line.chars().count() <= 78, "{line:?}");
        }
        for code in ExitCode::ALL {
            assert!(
                text.contains(&format!("\n  {}  ", code.code())),
                "{code:?}: {text}"
            );
        }
        assert!(text.contains("not healthy within verify_timeout"), "{text}");
        assert!(!text.contains('`'));
    }

    #[test]
    fn serializes_as_a_number() {
        assert_eq!(serde_json::to_string(&ExitCode::NotActed).unwrap(), "4");
    }
}
