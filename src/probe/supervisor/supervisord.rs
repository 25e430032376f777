//! supervisord: `supervisorctl status NAME` output.

/// One program line of `supervisorctl status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramStatus {
    pub name: String,
    /// RUNNING, STARTING, BACKOFF, FATAL, STOPPED, EXITED, STOPPING, UNKNOWN.
    pub state: String,
    pub pid: Option<u32>,
    /// The rest of the line: "pid 123, uptime 0:01:02" or "Exited too quickly ...".
    pub description: String,
}

impl ProgramStatus {
    /// States from which only an explicit start brings the program back: supervisord
    /// has given up (FATAL) or is waiting to retry (BACKOFF). superlance's httpok
    /// ignores these; a restart here is exactly what is needed.
    pub fn given_up(&self) -> bool {
        matches!(
            self.state.as_str(),
            "FATAL" | "BACKOFF" | "EXITED" | "STOPPED"
        )
    }
}

/// Parses the line for `name` (`group:name`, or a bare name for a one-process group).
pub fn parse_status(text: &str, name: &str) -> Option<ProgramStatus> {
    text.lines().filter_map(parse_line).find(|p| {
        p.name == name
            || name
                .split_once(':')
                .is_some_and(|(g, n)| g == n && p.name == n)
    })
}

fn parse_line(line: &str) -> Option<ProgramStatus> {
    let mut parts = line.split_whitespace();
    let name = parts.next()?.to_string();
    let state = parts.next()?.to_string();
    if !state.chars().all(|c| c.is_ascii_uppercase()) {
        return None;
    }
    let description = parts.collect::<Vec<_>>().join(" ");
    let pid = match description.strip_prefix("pid ") {
        // Without the `,` after it the line was cut short, maybe inside the PID.
        Some(rest) => rest.split_once(',')?.0.trim().parse().ok(),
        None => None,
    };
    Some(ProgramStatus {
        name,
        state,
        pid,
        description,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "\
hermes:hermes-webui              RUNNING   pid 31337, uptime 1 day, 2:03:04
other                            FATAL     Exited too quickly (process log may have details)
looping                          BACKOFF   Exited too quickly (process log may have details)
stopped                          STOPPED   Nov 28 01:02 PM
";

    #[test]
    fn parses_each_state() {
        let running = parse_status(STATUS, "hermes:hermes-webui").unwrap();
        assert_eq!(running.state, "RUNNING");
        assert_eq!(running.pid, Some(31337));
        assert!(!running.given_up());

        let fatal = parse_status(STATUS, "other:other").unwrap();
        assert_eq!((fatal.state.as_str(), fatal.pid), ("FATAL", None));
        assert!(fatal.given_up());
        assert!(parse_status(STATUS, "looping").unwrap().given_up());
        assert!(parse_status(STATUS, "stopped").unwrap().given_up());
        assert_eq!(parse_status(STATUS, "missing:missing"), None);
        assert_eq!(
            parse_status("error: <class 'ConnectionRefusedError'>", "x"),
            None
        );
    }

    /// A line cut inside `pid 31337,` would otherwise name PID 313.
    #[test]
    fn a_line_cut_inside_the_pid_is_no_status() {
        assert_eq!(parse_status("web   RUNNING   pid 313", "web"), None);
        assert_eq!(parse_status("web   RUNNING   pid 31337", "web"), None);
        let whole = parse_status("web   RUNNING   pid 31337, uptime 0:00:05", "web");
        assert_eq!(whole.and_then(|p| p.pid), Some(31337));
    }
}
