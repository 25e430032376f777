//! runit: `sv status DIR` output, e.g. `run: /etc/sv/hermes: (pid 21974) 2s; run: log:
//! (pid 21970) 2s` or `down: /etc/sv/hermes: 5s, normally up`.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    /// `run`, `down`, `finish`, `fail` or `warning`.
    pub state: String,
    pub pid: Option<u32>,
    /// A stop is pending (`, want down`).
    pub want_down: bool,
}

pub fn parse_status(text: &str) -> Option<ServiceStatus> {
    // The service's own part comes before the first "; " (the log service follows).
    let main = text.lines().next()?.split("; ").next()?;
    let (state, rest) = main.split_once(": ")?;
    let pid = rest
        .split_once("(pid ")
        .and_then(|(_, after)| after.split(')').next())
        .and_then(|pid| pid.parse().ok());
    Some(ServiceStatus {
        state: state.trim().to_string(),
        pid,
        want_down: rest.contains("want down"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_shape() {
        let run = parse_status("run: /tmp/sv/hermes: (pid 21974) 2s; run: log: (pid 21970) 2s\n")
            .unwrap();
        assert_eq!(
            (run.state.as_str(), run.pid, run.want_down),
            ("run", Some(21974), false)
        );

        let down = parse_status("down: /tmp/sv/hermes: 5s, normally up\n").unwrap();
        assert_eq!((down.state.as_str(), down.pid), ("down", None));

        let stopping = parse_status("run: /tmp/sv/hermes: (pid 5) 100s, want down\n").unwrap();
        assert!(stopping.want_down);

        let fail = parse_status("fail: /tmp/sv/hermes: runsv not running\n").unwrap();
        assert_eq!(fail.state, "fail");
        assert_eq!(parse_status(""), None);
    }
}
