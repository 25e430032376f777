//! launchd, as `launchctl` shows it: the job a process belongs to (its
//! `XPC_SERVICE_NAME`), the domains that can hold it, and parsers of `launchctl print
//! <domain-target>` (one job), `launchctl print <domain>` (its `services` listing) and
//! `launchctl list`. Pure text handling, compiled and tested everywhere; running
//! `launchctl` is the caller's business.
//!
//! `launchctl print` output is meant for people and Apple changes it between
//! releases. Only the job's own top-level `key = value` lines are read (`pid`,
//! `state`, `last exit code`, `last terminating signal`, `program`, `path`, `type`)
//! plus the `arguments = { ... }` block; nested blocks (`environment`, `endpoints`,
//! coalitions, `event triggers`, ...) are skipped whatever they hold, so their own
//! `state = active` lines never count. Unknown lines are ignored; a layout that does
//! not add up is an error (see [`parse_print`]).

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
    /// The plist the job was loaded from (`path = ...`); absent for jobs launchd made
    /// up itself, such as an IDE terminal's `com.apple.xpc.launchd.oneshot.0x…`.
    pub path: Option<String>,
    /// `type = LaunchAgent`, `LaunchDaemon`, `XPCService`, ... as printed.
    pub kind: Option<String>,
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
    /// The layout does not add up: a line is indented for another depth than its
    /// braces say, or a key the job has once is printed twice. The job's owner writes
    /// its environment and arguments, and a value with a newline and braces in it could
    /// otherwise pose as the job's own `pid` or `path` line; such output is not believed.
    #[error("launchctl output is ambiguous ({0}); it is not believed")]
    Ambiguous(String),
}

/// The domains that can hold a job of a process running as `uid`, in the order they
/// are asked: a user's agents are in `gui/<uid>` while that user is logged in at the
/// screen and in `user/<uid>` for background sessions (SSH, a headless Mac); daemons,
/// including those with `UserName` (which run as that user), are in `system`. Root
/// has no GUI login of its own; its daemons are in `system` first.
pub fn candidate_domains(uid: u32) -> Vec<String> {
    if uid == 0 {
        vec!["system".into(), "user/0".into()]
    } else {
        vec![format!("gui/{uid}"), format!("user/{uid}"), "system".into()]
    }
}

/// The domain assumed for a job whose domain is not known yet (the first candidate):
/// what messages name before launchd was asked.
pub fn default_domain(uid: u32) -> String {
    candidate_domains(uid).swap_remove(0)
}

/// The target that names a job in a domain: `gui/501/<label>`, `system/<label>`.
pub fn domain_target(domain: &str, label: &str) -> String {
    format!("{domain}/{label}")
}

/// The prefix launchd gives the job it makes up for a process started outside any
/// plist, e.g. an IDE's terminal (`com.apple.xpc.launchd.oneshot.0x10000001.Code`):
/// `kickstart -k` of it would restart the IDE's helper, not the server.
const ONESHOT_PREFIX: &str = "com.apple.xpc.launchd.oneshot.";

/// Whether a label is one of launchd's made-up one-shot jobs.
pub fn is_oneshot(label: &str) -> bool {
    label.trim().starts_with(ONESHOT_PREFIX)
}

/// Whether an `XPC_SERVICE_NAME` value names a launchd job. launchd sets `0` in
/// processes started from a terminal, `application.<bundle id>.<n>` in apps and what
/// they start, and `com.apple.xpc.launchd.oneshot.0x…` in what an IDE's terminal
/// starts; none is a job `launchctl` could restart for the server.
pub fn is_launchd_label(xpc_service_name: &str) -> bool {
    let name = xpc_service_name.trim();
    !name.is_empty() && name != "0" && !name.starts_with("application.") && !is_oneshot(name)
}

/// Whether a `launchctl print` state is launchd (re)spawning the job: `spawn
/// scheduled` (a KeepAlive job that died waits out its ThrottleInterval, 10 s by
/// default), then `spawning` and `xpcproxy` (the trampoline that execs the job in the
/// same PID). launchd will start it by itself; a kickstart of ours would race it.
pub fn is_starting(state: &str) -> bool {
    matches!(state.trim(), "spawn scheduled" | "spawning" | "xpcproxy")
}

/// The number of tabs a line starts with: launchctl indents each level of its output
/// with one tab (see the captures in tests/fixtures/launchctl/).
fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches('\t').len()
}

/// The key of a block opener `key = {` or `key => {`, if the line is one.
fn opener(trimmed: &str) -> Option<&str> {
    let head = trimmed.strip_suffix('{')?.trim_end();
    head.strip_suffix("=>")
        .or_else(|| head.strip_suffix('='))
        .map(str::trim)
}

/// Lines of launchctl output, without a trailing CR.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l))
}

/// Parses the output of `launchctl print <domain-target>` for one job.
///
/// Only the job's own top-level lines count, and only where braces and indentation
/// agree: each level is one tab deeper, a block's `}` sits at its opener's depth, and
/// `pid`, `path`, `type`, `state`, `program` and the `arguments` block appear at most
/// once. Output where they disagree is an error, not a guess: values inside blocks
/// (the environment, the arguments) are the job owner's text, and a value holding a
/// newline, a tab and a brace could otherwise end a block early and plant a `pid`.
///
/// What remains (known gap): a value that closes its block, plants a line and opens
/// a new block, all at the right depths, reads like launchctl's own layout. Where the
/// job prints its own line of that key too, two of them are an error; a job that is
/// not running prints no `pid`, and a planted one would be believed. That value is
/// its plist's, and only the target's own user or root can load a job into the
/// domains asked (`gui/<uid>`, `user/<uid>`, `system`), so the planted PID only ever
/// makes the watchdog restart that owner's own job, which the owner could do itself;
/// the watchdog's own PID and ancestors are refused whatever the output says.
pub fn parse_print(text: &str) -> Result<LaunchdJob, LaunchctlParseError> {
    let ambiguous = |what: String| Err(LaunchctlParseError::Ambiguous(what));
    let mut lines = lines(text);
    // Anything before the header (a warning, say) is not part of the job.
    let target = lines
        .by_ref()
        .find_map(|l| (indent(l) == 0).then(|| opener(l.trim()))?)
        .map(str::to_owned)
        .ok_or(LaunchctlParseError::NoJob)?;

    let mut job = LaunchdJob {
        target,
        ..LaunchdJob::default()
    };
    // Depth 1 is the job's own block; `in_arguments` is the arguments block in it.
    let mut depth = 1usize;
    let mut in_arguments = false;
    let mut seen_arguments = false;
    let mut pid_seen = false;
    for line in lines.by_ref() {
        let trimmed = line.trim();
        let level = indent(line);
        if in_arguments {
            if trimmed == "}" && level == 1 {
                in_arguments = false;
                depth -= 1;
            } else if level >= 2 {
                job.arguments.push(line.trim_start().to_owned());
            } else {
                return ambiguous(format!("an argument line indented {level} deep"));
            }
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        if trimmed == "}" {
            if level + 1 != depth {
                return ambiguous(format!("a `}}` indented {level} deep closes depth {depth}"));
            }
            depth -= 1;
            if depth == 0 {
                break;
            }
            continue;
        }
        if level != depth {
            return ambiguous(format!("a line indented {level} deep at depth {depth}"));
        }
        if let Some(key) = opener(trimmed) {
            if depth == 1 && key == "arguments" {
                if seen_arguments {
                    return ambiguous("two `arguments` blocks".into());
                }
                seen_arguments = true;
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
        let slot = match key.trim() {
            "pid" => {
                if pid_seen {
                    return ambiguous("two `pid` lines".into());
                }
                pid_seen = true;
                job.pid = value.parse::<u32>().ok().filter(|&p| p != 0);
                continue;
            }
            "state" => &mut job.state,
            "last terminating signal" => &mut job.last_signal,
            "program" => &mut job.program,
            "path" => &mut job.path,
            "type" => &mut job.kind,
            "last exit code" => {
                job.last_exit = Some(LastExit::parse(value));
                continue;
            }
            _ => continue,
        };
        if slot.is_some() {
            return ambiguous(format!("two `{}` lines", key.trim()));
        }
        *slot = Some(value.to_owned());
    }
    if depth != 0 {
        return Err(LaunchctlParseError::CutShort);
    }
    // launchctl prints one job and ends: text after its `}` means a value closed the
    // job's block early, and the job's own later lines (its `pid`) were left outside.
    if lines.any(|l| !l.trim().is_empty()) {
        return ambiguous("text after the job's closing `}`".into());
    }
    Ok(job)
}

/// One line of a domain's `services` block (`launchctl print <domain>`) or of
/// `launchctl list`: the job's label and, when it runs, its PID, as launchd pairs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub pid: Option<u32>,
    pub label: String,
}

/// A PID column: `0` or `-` is "not running".
fn listed_pid(column: &str) -> Result<Option<u32>, ()> {
    if column == "-" {
        return Ok(None);
    }
    column
        .parse::<u32>()
        .map(|p| (p != 0).then_some(p))
        .map_err(|_| ())
}

/// `PID STATUS LABEL`, split on blanks (the label is the rest of the line, where launchd
/// would keep anything after the second column).
fn listed_line(line: &str) -> Option<Listed> {
    let line = line.trim();
    let (pid, rest) = line.split_once(|c: char| c.is_ascii_whitespace())?;
    let (status, label) = rest
        .trim_start()
        .split_once(|c: char| c.is_ascii_whitespace())?;
    let label = label.trim();
    if status.is_empty() || label.is_empty() {
        return None;
    }
    Some(Listed {
        pid: listed_pid(pid).ok()?,
        label: label.to_owned(),
    })
}

/// Parses the `services = { ... }` block of `launchctl print <domain>` (`gui/501`,
/// `user/501`, `system`): one `PID STATUS LABEL` line per job, PID `0` when it does
/// not run. Only the block at the domain's top level counts (indented one tab, its
/// lines two); a line in it that is not of that form, or a second block, makes the
/// listing ambiguous: a label is its plist owner's text.
pub fn parse_domain_services(text: &str) -> Result<Vec<Listed>, LaunchctlParseError> {
    let ambiguous = |what: &str| Err(LaunchctlParseError::Ambiguous(what.to_string()));
    let mut lines = lines(text);
    lines
        .by_ref()
        .find(|l| indent(l) == 0 && opener(l.trim()).is_some())
        .ok_or(LaunchctlParseError::NoJob)?;
    let mut found: Option<Vec<Listed>> = None;
    let mut in_services = false;
    let mut depth = 1usize;
    for line in lines.by_ref() {
        let trimmed = line.trim();
        let level = indent(line);
        if in_services {
            if trimmed == "}" && level == 1 {
                in_services = false;
                depth -= 1;
            } else if level == 2 {
                match listed_line(trimmed) {
                    Some(listed) => found.get_or_insert_with(Vec::new).push(listed),
                    None => return ambiguous("a services line that is not `PID STATUS LABEL`"),
                }
            } else {
                return ambiguous("a services line at another depth");
            }
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        if trimmed == "}" {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                break;
            }
            continue;
        }
        if let Some(key) = opener(trimmed) {
            if depth == 1 && level == 1 && key == "services" {
                if found.is_some() {
                    return ambiguous("two services blocks");
                }
                found = Some(Vec::new());
                in_services = true;
            }
            depth += 1;
        }
    }
    if depth != 0 || in_services {
        return Err(LaunchctlParseError::CutShort);
    }
    if lines.any(|l| !l.trim().is_empty()) {
        return ambiguous("text after the domain's closing `}`");
    }
    found.ok_or_else(|| LaunchctlParseError::Ambiguous("no services block".into()))
}

/// Parses `launchctl list`: a `PID Status Label` header, then one tab-separated line per
/// job of the caller's domain, PID `-` when it does not run.
pub fn parse_list(text: &str) -> Result<Vec<Listed>, LaunchctlParseError> {
    let mut lines = lines(text).filter(|l| !l.trim().is_empty());
    let header = lines.next().ok_or(LaunchctlParseError::NoJob)?;
    if !header.split_whitespace().eq(["PID", "Status", "Label"]) {
        return Err(LaunchctlParseError::NoJob);
    }
    lines
        .map(|l| {
            listed_line(l).ok_or_else(|| {
                LaunchctlParseError::Ambiguous("a line that is not `PID STATUS LABEL`".into())
            })
        })
        .collect()
}

/// The one label a listing gives `pid`; `None` if none does, an error if several do
/// (launchd pairs one job with one PID: two lines claiming it mean a label shifted
/// the listing).
pub fn label_of(listing: &[Listed], pid: u32) -> Result<Option<&str>, LaunchctlParseError> {
    let mut labels = listing.iter().filter(|l| l.pid == Some(pid));
    let first = labels.next();
    if labels.next().is_some() {
        return Err(LaunchctlParseError::Ambiguous(format!(
            "PID {pid} is listed for two jobs"
        )));
    }
    Ok(first.map(|l| l.label.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/launchctl/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // Each fixture opens with `# ` lines saying where it came from.
        text.lines()
            .skip_while(|l| l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect()
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
        let text = "gui/501/x = {\n\tendpoints = {\n\t\t\"x.port\" = {\n\t\t\tpid = 7\n\t\t\tstate = active\n\t\t\tprogram = /bad\n\t\t}\n\t}\n\tevent triggers = {\n\t\tx.1 => {\n\t\t\tdescriptor = {\n\t\t\t\tpid = 8\n\t\t\t}\n\t\t}\n\t}\n\tstate = waiting\n}\n";
        let job = parse_print(text).unwrap();
        assert_eq!(job.pid, None, "pids inside blocks are not the job's");
        assert_eq!(job.state.as_deref(), Some("waiting"));
        assert_eq!(job.program, None);
        // A line after the job's end: the job's block was closed early.
        assert!(matches!(
            parse_print(&format!("{text}\tpid = 9\n")),
            Err(LaunchctlParseError::Ambiguous(_))
        ));
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
            domain_target("user/501", "com.example.hermes-webui"),
            "user/501/com.example.hermes-webui"
        );
        assert_eq!(default_domain(501), "gui/501");
        assert_eq!(default_domain(0), "system");
    }

    /// A user's agent is in gui/<uid> while that user is at the screen, in user/<uid>
    /// otherwise; a daemon, even one with UserName running as that user, in system.
    #[test]
    fn candidate_domains_cover_gui_user_and_system() {
        assert_eq!(candidate_domains(501), ["gui/501", "user/501", "system"]);
        assert_eq!(candidate_domains(0), ["system", "user/0"]);
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

    #[test]
    fn gui_agent_shows_its_plist_and_type() {
        let job = parse_print(&fixture("running.txt")).unwrap();
        assert_eq!(
            job.path.as_deref(),
            Some("/Users/me/Library/LaunchAgents/com.example.hermes-webui.plist")
        );
        assert_eq!(job.kind.as_deref(), Some("LaunchAgent"));
    }

    #[test]
    fn user_domain_agent() {
        let job = parse_print(&fixture("user-agent.txt")).unwrap();
        assert_eq!(job.target, "user/501/com.example.hermes-webui");
        assert_eq!(job.pid, Some(5120));
        assert_eq!(job.kind.as_deref(), Some("LaunchAgent"));
        assert_eq!(
            job.arguments,
            ["/bin/bash", "/Users/me/hermes-webui/start.sh"]
        );
        assert_eq!(job.state.as_deref(), Some("running"));
    }

    /// A daemon with UserName runs as that user but is in `system`; an environment
    /// value with a brace in it (`{hermes}`) is the owner's text and moves nothing.
    #[test]
    fn system_daemon_with_user_name() {
        let job = parse_print(&fixture("system-daemon-username.txt")).unwrap();
        assert_eq!(job.target, "system/com.example.hermes-webui");
        assert_eq!(job.pid, Some(6230));
        assert_eq!(job.kind.as_deref(), Some("LaunchDaemon"));
        assert_eq!(
            job.path.as_deref(),
            Some("/Library/LaunchDaemons/com.example.hermes-webui.plist")
        );
        assert_eq!(job.last_exit.and_then(|e| e.code()), Some(0));
    }

    #[test]
    fn ide_oneshot_job_has_no_plist() {
        let job = parse_print(&fixture("ide-oneshot.txt")).unwrap();
        assert!(is_oneshot(&job.target["gui/501/".len()..]));
        assert_eq!(job.path, None);
        assert_eq!(job.pid, Some(3391));
        assert_ne!(job.kind.as_deref(), Some("LaunchAgent"));
    }

    #[test]
    fn ide_terminals_are_no_launchd_jobs() {
        for name in [
            "com.apple.xpc.launchd.oneshot.0x10000003.Code",
            "com.apple.xpc.launchd.oneshot.0x10000006.webstorm",
            " com.apple.xpc.launchd.oneshot.0x10000001.clion",
        ] {
            assert!(!is_launchd_label(name), "{name}");
            assert!(is_oneshot(name), "{name}");
        }
        assert!(!is_oneshot("com.example.oneshot"));
    }

    /// A value the job's owner writes (its environment, its arguments) that tries to
    /// close a block early and plant a top-level line is an error, never believed.
    #[test]
    fn a_value_that_shifts_the_layout_is_not_believed() {
        let whole = fixture("running.txt");
        assert_eq!(parse_print(&whole).unwrap().pid, Some(4242));
        let planted = [
            // An environment value holding `\n\t}\n\tpid = 1\n\tx = {`: braces and
            // tabs agree, but the job's own `pid` line follows: two pids.
            "\t\tX => a\n\t}\n\tpid = 1\n\tx = {\n",
            // A value that opens a block without closing it.
            "\t\tX => {\n",
            // A value with a newline and a closing brace at the wrong depth.
            "\t\tX => a\n}\n\tpid = 1\n",
            // A line indented for no depth.
            "\t\tX => a\n\t\t\tpid = 1\n",
        ];
        for plant in planted {
            let text = whole.replacen(
                "\t\tXPC_SERVICE_NAME => com.example.hermes-webui\n",
                &format!("\t\tXPC_SERVICE_NAME => com.example.hermes-webui\n{plant}"),
                1,
            );
            assert_ne!(text, whole);
            match parse_print(&text) {
                Ok(job) => panic!("{plant:?} was believed: {job:?}"),
                Err(e) => assert!(
                    matches!(
                        e,
                        LaunchctlParseError::Ambiguous(_) | LaunchctlParseError::CutShort
                    ),
                    "{plant:?}: {e}"
                ),
            }
        }
        // Duplicated top-level keys: two `pid`, `path` or `type` lines.
        for key in ["pid = 7", "path = /tmp/x.plist", "type = LaunchDaemon"] {
            let text = fixture("running.txt").replacen(
                "\tstate = running\n",
                &format!("\tstate = running\n\t{key}\n"),
                1,
            );
            let text = if key.starts_with("pid") {
                text
            } else {
                text.replacen("\tpid = 4242\n", "", 1)
            };
            assert!(
                matches!(parse_print(&text), Err(LaunchctlParseError::Ambiguous(_))),
                "{key}"
            );
        }
        // An argument that is a lone `}` is an argument: it is indented as one.
        let text = "gui/501/x = {\n\targuments = {\n\t\t}\n\t\t-c\n\t}\n\tpid = 3\n}\n";
        let job = parse_print(text).unwrap();
        assert_eq!(job.arguments, ["}", "-c"]);
        assert_eq!(job.pid, Some(3));
    }

    #[test]
    fn gui_domain_listing() {
        let listed = parse_domain_services(&fixture("domain-gui-501.txt")).unwrap();
        assert_eq!(listed.len(), 7);
        assert_eq!(
            label_of(&listed, 4242),
            Ok(Some("com.example.hermes-webui"))
        );
        assert_eq!(
            label_of(&listed, 3391),
            Ok(Some("com.apple.xpc.launchd.oneshot.0x10000003.Code"))
        );
        assert_eq!(label_of(&listed, 0), Ok(None), "PID 0 is not running");
        assert_eq!(
            label_of(&listed, 536),
            Ok(None),
            "unmanaged processes are no jobs"
        );
        assert!(listed.contains(&Listed {
            pid: None,
            label: "com.example.broken".into()
        }));
    }

    #[test]
    fn user_and_system_domain_listings() {
        let user = parse_domain_services(&fixture("domain-user-501.txt")).unwrap();
        assert_eq!(label_of(&user, 5120), Ok(Some("com.example.hermes-webui")));
        let system = parse_domain_services(&fixture("domain-system.txt")).unwrap();
        assert_eq!(
            label_of(&system, 6230),
            Ok(Some("com.example.hermes-webui"))
        );
        assert_eq!(label_of(&system, 539), Ok(Some("com.apple.runningboardd")));
        assert_eq!(system.len(), 5);
    }

    #[test]
    fn a_listing_that_does_not_add_up_is_an_error() {
        let whole = fixture("domain-gui-501.txt");
        // A label with a newline that plants a second line for someone's PID.
        let planted = whole.replacen(
            "\t\t       0     78 \tcom.example.broken\n",
            "\t\t       0     78 \tcom.example.broken\n\t\t    4242      - \tcom.example.evil\n",
            1,
        );
        let listed = parse_domain_services(&planted).unwrap();
        assert!(matches!(
            label_of(&listed, 4242),
            Err(LaunchctlParseError::Ambiguous(_))
        ));
        let garbled = whole.replacen("com.example.broken\n", "com.example.broken\nx\n", 1);
        assert!(matches!(
            parse_domain_services(&garbled),
            Err(LaunchctlParseError::Ambiguous(_))
        ));
        let cut = &whole[..whole.find("\t\t       0     78").unwrap()];
        assert_eq!(
            parse_domain_services(cut),
            Err(LaunchctlParseError::CutShort)
        );
        assert_eq!(
            parse_domain_services("Bad request.\n"),
            Err(LaunchctlParseError::NoJob)
        );
    }

    #[test]
    fn launchctl_list() {
        let listed = parse_list(&fixture("list.txt")).unwrap();
        assert_eq!(listed.len(), 6);
        assert_eq!(label_of(&listed, 279), Ok(Some("com.apple.Finder")));
        assert_eq!(
            label_of(&listed, 4242),
            Ok(Some("com.example.hermes-webui"))
        );
        assert_eq!(listed[0].pid, None);
        assert_eq!(
            parse_list("nothing here\n"),
            Err(LaunchctlParseError::NoJob)
        );
    }
}
