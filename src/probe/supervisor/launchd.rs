//! launchd, as `launchctl` shows it: the job a process belongs to (its
//! `XPC_SERVICE_NAME`), the domain target to address it, and a parser of
//! `launchctl print <domain-target>`. Pure text handling, compiled and tested
//! everywhere; running `launchctl` is the caller's business.
//!
//! `launchctl print` output is meant for people and Apple changes it between
//! releases. Only the job's own top-level `key = value` lines are read (`pid`,
//! `state`, `last exit code`, `last terminating signal`, `program`) plus the
//! `arguments = { ... }` block; nested blocks (`environment`, `endpoints`, coalitions,
//! `event triggers`, ...) are skipped whatever they hold, so their own `state = active`
//! lines never count. Unknown lines are ignored.

/// What `launchctl print` says about one job.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LaunchdJob {
    /// The header's target, e.g. `gui/501/com.example.hermes-webui`.
    pub target: String,
    /// The running instance's PID; `None` when no `pid` line is shown (not running).
    pub pid: Option<u32>,
    /// `running`, `not running`, `spawn scheduled`, ... as printed.
    pub state: Option<String>,
    pub last_exit: Option<LastExit>,
    /// `last terminating signal`, e.g. `Killed: 9` (shown instead of an exit code when
    /// the last instance died of a signal).
    pub last_signal: Option<String>,
    pub program: Option<String>,
    pub arguments: Vec<String>,
}

/// The `last exit code` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastExit {
    /// `(never exited)`: the current instance is the first, or it has not exited yet.
    NeverExited,
    /// `0`, or `78: EX_CONFIG` (code and the name launchctl gives it).
    Code { code: i32, name: Option<String> },
    /// Anything else, kept as printed.
    Other(String),
}

impl LastExit {
    pub fn parse(value: &str) -> LastExit {
        let value = value.trim();
        if value == "(never exited)" {
            return LastExit::NeverExited;
        }
        let (number, name) = match value.split_once(':') {
            Some((n, name)) => (n.trim(), Some(name.trim()).filter(|s| !s.is_empty())),
            None => (value, None),
        };
        match number.parse::<i32>() {
            Ok(code) => LastExit::Code {
                code,
                name: name.map(str::to_owned),
            },
            Err(_) => LastExit::Other(value.to_owned()),
        }
    }

    /// The numeric exit code, if there is one.
    pub fn code(&self) -> Option<i32> {
        match self {
            LastExit::Code { code, .. } => Some(*code),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchctlParseError {
    #[error("no `<target> = {{` header in launchctl output")]
    NoJob,
    /// The job's block never closes: the output was cut (the capture keeps 256 KiB, and
    /// the job's environment, which its owner writes, comes before its `pid` line).
    #[error("launchctl output ends inside the job's block (cut short); its PID cannot be read")]
    CutShort,
}

/// The domain target that names a job: `gui/<uid>/<label>` for a user's agent,
/// `system/<label>` for root's daemons.
pub fn domain_target(uid: u32, label: &str) -> String {
    if uid == 0 {
        format!("system/{label}")
    } else {
        format!("gui/{uid}/{label}")
    }
}

/// Whether an `XPC_SERVICE_NAME` value names a launchd job. launchd sets `0` in
/// processes started from a terminal, and `application.<bundle id>.<n>` in apps and
/// what they start; neither is a job `launchctl` could restart.
pub fn is_launchd_label(xpc_service_name: &str) -> bool {
    let name = xpc_service_name.trim();
    !name.is_empty() && name != "0" && !name.starts_with("application.")
}

/// Whether a `launchctl print` state is launchd (re)spawning the job: `spawn
/// scheduled` (a KeepAlive job that died waits out its ThrottleInterval, 10 s by
/// default), then `spawning` and `xpcproxy` (the trampoline that execs the job in the
/// same PID). launchd will start it by itself; a kickstart of ours would race it.
pub fn is_starting(state: &str) -> bool {
    matches!(state.trim(), "spawn scheduled" | "spawning" | "xpcproxy")
}

/// Parses the output of `launchctl print <domain-target>` for one job.
pub fn parse_print(text: &str) -> Result<LaunchdJob, LaunchctlParseError> {
    let mut lines = text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l));
    // Anything before the header (a warning, say) is not part of the job.
    let target = lines
        .by_ref()
        .find_map(|l| l.trim().strip_suffix('{')?.trim_end().strip_suffix('='))
        .map(|t| t.trim().to_owned())
        .ok_or(LaunchctlParseError::NoJob)?;

    let mut job = LaunchdJob {
        target,
        ..LaunchdJob::default()
    };
    // Depth 1 is the job's own block; `in_arguments` is the arguments block in it.
    let mut depth = 1usize;
    let mut in_arguments = false;
    for line in lines {
        let trimmed = line.trim();
        if in_arguments {
            if trimmed == "}" {
                in_arguments = false;
                depth -= 1;
            } else {
                job.arguments.push(line.trim_start().to_owned());
            }
            continue;
        }
        if trimmed == "}" {
            depth -= 1;
            if depth == 0 {
                break;
            }
            continue;
        }
        if let Some(opener) = trimmed.strip_suffix('{') {
            if depth == 1 && opener.trim_end().strip_suffix('=').map(str::trim) == Some("arguments")
            {
                in_arguments = true;
            }
            depth += 1;
            continue;
        }
        if depth != 1 {
            continue;
        }
        let Some((key, value)) = trimmed.split_once(" = ") else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "pid" => job.pid = value.parse::<u32>().ok().filter(|&p| p != 0),
            "state" => job.state = Some(value.to_owned()),
            "last exit code" => job.last_exit = Some(LastExit::parse(value)),
            "last terminating signal" => job.last_signal = Some(value.to_owned()),
            "program" => job.program = Some(value.to_owned()),
            _ => {}
        }
    }
    if depth != 0 {
        return Err(LaunchctlParseError::CutShort);
    }
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/launchctl/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn running_job() {
        let job = parse_print(&fixture("running.txt")).unwrap();
        assert_eq!(job.target, "gui/501/com.example.hermes-webui");
        assert_eq!(job.pid, Some(4242));
        assert_eq!(
            job.state.as_deref(),
            Some("running"),
            "nested `state = active` must not win"
        );
        assert_eq!(
            job.last_exit,
            Some(LastExit::Code {
                code: 0,
                name: None
            })
        );
        assert_eq!(job.last_signal, None);
        assert_eq!(job.program.as_deref(), Some("/usr/bin/python3"));
        assert_eq!(
            job.arguments,
            [
                "/usr/bin/python3",
                "/Users/me/hermes-webui/server.py",
                "--port",
                "8787"
            ]
        );
    }

    #[test]
    fn job_that_is_not_running_after_a_config_error() {
        let job = parse_print(&fixture("not-running-ex-config.txt")).unwrap();
        assert_eq!(job.pid, None);
        assert_eq!(job.state.as_deref(), Some("not running"));
        let exit = job.last_exit.unwrap();
        assert_eq!(
            exit,
            LastExit::Code {
                code: 78,
                name: Some("EX_CONFIG".into())
            }
        );
        assert_eq!(exit.code(), Some(78));
        assert_eq!(
            job.program.as_deref(),
            Some("/Users/me/hermes-webui/start.sh")
        );
        assert_eq!(
            job.arguments,
            ["/Users/me/hermes-webui/start.sh", "--foreground"]
        );
    }

    #[test]
    fn system_job_that_never_exited() {
        let job = parse_print(&fixture("never-exited-system.txt")).unwrap();
        assert_eq!(job.target, "system/com.example.hermes-webui");
        assert_eq!(job.pid, Some(391));
        assert_eq!(job.state.as_deref(), Some("running"));
        assert_eq!(job.last_exit, Some(LastExit::NeverExited));
        assert_eq!(job.last_exit.unwrap().code(), None);
        assert_eq!(
            job.arguments,
            [
                "/opt/homebrew/bin/python3",
                "server.py",
                "--host",
                "127.0.0.1"
            ]
        );
    }

    #[test]
    fn job_killed_by_a_signal_waiting_to_respawn() {
        let job = parse_print(&fixture("killed-spawn-scheduled.txt")).unwrap();
        assert_eq!(job.pid, None);
        assert_eq!(job.state.as_deref(), Some("spawn scheduled"));
        assert!(is_starting("spawn scheduled"));
        assert_eq!(job.last_exit, None);
        assert_eq!(job.last_signal.as_deref(), Some("Killed: 9"));
    }

    #[test]
    fn only_spawn_states_are_starting() {
        for state in ["spawn scheduled", "spawning", "xpcproxy"] {
            assert!(is_starting(state), "{state}");
        }
        for state in ["running", "not running", "waiting", "exited", ""] {
            assert!(!is_starting(state), "{state}");
        }
        let running = parse_print(&fixture("running.txt")).unwrap();
        assert!(!is_starting(running.state.as_deref().unwrap_or("")));
    }

    #[test]
    fn nested_blocks_never_leak_into_the_job() {
        let text = "gui/501/x = {\n\tendpoints = {\n\t\t\"x.port\" = {\n\t\t\tpid = 7\n\t\t\tstate = active\n\t\t\tprogram = /bad\n\t\t}\n\t}\n\tevent triggers = {\n\t\tx.1 => {\n\t\t\tdescriptor = {\n\t\t\t\tpid = 8\n\t\t\t}\n\t\t}\n\t}\n\tstate = waiting\n}\n\tpid = 9\n";
        let job = parse_print(text).unwrap();
        assert_eq!(
            job.pid, None,
            "pids inside blocks or after the job's end are not the job's"
        );
        assert_eq!(job.state.as_deref(), Some("waiting"));
        assert_eq!(job.program, None);
    }

    #[test]
    fn crlf_leading_noise_and_empty_arguments() {
        let text = "warning: something\r\ngui/501/x = {\r\n\tpid = 12\r\n\targuments = {\r\n\t\t/bin/sh\r\n\t\t\r\n\t\t-c\r\n\t}\r\n\tstate = running\r\n}\r\n";
        let job = parse_print(text).unwrap();
        assert_eq!(job.target, "gui/501/x");
        assert_eq!(job.pid, Some(12));
        assert_eq!(job.arguments, ["/bin/sh", "", "-c"]);
        assert_eq!(job.state.as_deref(), Some("running"));
    }

    /// Output cut anywhere before the job's closing `}` (here inside `pid = 4242`,
    /// which would read as PID 42) says nothing reliable about the job.
    #[test]
    fn output_cut_inside_the_job_is_an_error() {
        let whole = fixture("running.txt");
        let pid_line = whole.find("\tpid = 4242").unwrap();
        for cut in [pid_line + "\tpid = 42".len(), pid_line, whole.len() - 2] {
            assert_eq!(
                parse_print(&whole[..cut]),
                Err(LaunchctlParseError::CutShort),
                "cut at {cut}"
            );
        }
        assert_eq!(parse_print(&whole).unwrap().pid, Some(4242));
    }

    #[test]
    fn bad_pid_values_are_not_pids() {
        for bad in ["pid = 0", "pid = -1", "pid = abc", "pid = 99999999999"] {
            let job = parse_print(&format!("gui/501/x = {{\n\t{bad}\n}}\n")).unwrap();
            assert_eq!(job.pid, None, "{bad}");
        }
    }

    #[test]
    fn output_without_a_job() {
        for text in [
            "",
            "Could not find service \"com.example.x\" in domain for user gui: 501\n",
            "Bad request.\n",
        ] {
            assert_eq!(
                parse_print(text),
                Err(LaunchctlParseError::NoJob),
                "{text:?}"
            );
        }
    }

    #[test]
    fn last_exit_forms() {
        assert_eq!(LastExit::parse("(never exited)"), LastExit::NeverExited);
        assert_eq!(LastExit::parse("1").code(), Some(1));
        assert_eq!(LastExit::parse("-9").code(), Some(-9));
        assert_eq!(
            LastExit::parse("78: EX_CONFIG"),
            LastExit::Code {
                code: 78,
                name: Some("EX_CONFIG".into())
            }
        );
        assert_eq!(
            LastExit::parse("something new"),
            LastExit::Other("something new".into())
        );
    }

    #[test]
    fn domain_targets() {
        assert_eq!(
            domain_target(501, "com.example.hermes-webui"),
            "gui/501/com.example.hermes-webui"
        );
        assert_eq!(
            domain_target(0, "com.example.hermes-webui"),
            "system/com.example.hermes-webui"
        );
    }

    #[test]
    fn launchd_labels() {
        assert!(is_launchd_label("com.example.hermes-webui"));
        assert!(is_launchd_label("homebrew.mxcl.postgresql@16"));
        assert!(!is_launchd_label("0"));
        assert!(!is_launchd_label(""));
        assert!(!is_launchd_label("  "));
        assert!(!is_launchd_label(
            "application.com.apple.Terminal.12345678.12345679"
        ));
        assert!(!is_launchd_label(
            "application.com.googlecode.iterm2.13032123.13032129"
        ));
    }
}
