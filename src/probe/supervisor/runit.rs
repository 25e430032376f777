//! runit: the service directory of the target's `runsv` ancestor, `sv status` and
//! `sv restart` of it, and `sv status DIR` output, e.g. `run: /etc/sv/hermes: (pid
//! 21974) 2s; run: log: (pid 21970) 2s` or `down: /etc/sv/hermes: 5s, normally up`.
//! When `sv` cannot reach the service it prints `warning: DIR: ...` or `fail: DIR:
//! ...` instead (runsv not running, a supervise/ directory it may not open): those say
//! nothing about the service.

use super::{Behaviour, Claim, Clues, JobStatus, Kind, Supervisor, job_argv, use_tool_beside};
use crate::config::{Method, RestartConfig};
use crate::probe::os::{self, ProcessInfo};

/// runit's part of [`Behaviour`].
pub(super) struct Runit;

impl Behaviour for Runit {
    fn method(&self) -> Method {
        Method::Runit
    }

    fn config_key(&self) -> &'static str {
        "service_dir"
    }

    fn configured_name(&self, cfg: &RestartConfig) -> Option<String> {
        cfg.service_dir.as_ref().map(|d| d.display().to_string())
    }

    fn gather(&self, target: &ProcessInfo, clues: &mut Clues) {
        let Some(runsv) = runsv_ancestor(target.ppid) else {
            return;
        };
        clues.runsv_exe = os::executable(runsv.pid())
            .ok()
            .map(|exe| (runsv.pid(), exe));
        clues.runsv_dir = runsv.cwd;
    }

    /// The `sv` of the runit that runs the target: beside the `runsv` executable (which
    /// runsvdir starts by a bare name, so its file is read, not its argv).
    fn locate_tool(&self, supervisor: &mut Supervisor, clues: &Clues, own_uid: u32) {
        let Some((pid, exe)) = &clues.runsv_exe else {
            return;
        };
        let sv = exe.with_file_name("sv");
        let what = format!("the sv beside runsv PID {pid}");
        use_tool_beside(
            supervisor,
            &what,
            vec![sv.display().to_string()],
            &sv,
            own_uid,
        );
    }

    fn detect(&self, clues: &Clues, _own_label: Option<&str>) -> Option<Supervisor> {
        let dir = clues.runsv_dir.as_ref()?;
        Some(Supervisor::detected(
            Kind::Runit,
            dir.display().to_string(),
            clues,
            "runsv ancestor",
        ))
    }

    /// The service directory is the cwd of a `runsv` ancestor: found by ancestry only,
    /// and believed once `sv status` names the target or an ancestor as the job.
    fn claim(&self, _supervisor: &Supervisor, _clues: &Clues) -> Result<Claim, String> {
        Ok(Claim::Ancestor("runsv".into()))
    }

    fn describe(&self, supervisor: &Supervisor) -> String {
        format!("runit service {}", supervisor.name)
    }

    fn status_argv(&self, supervisor: &Supervisor) -> Vec<String> {
        job_argv(tool(supervisor), "status", &supervisor.name)
    }

    fn restart_argv(&self, supervisor: &Supervisor) -> Vec<String> {
        job_argv(tool(supervisor), "restart", &supervisor.name)
    }

    fn parse_status(&self, _supervisor: &Supervisor, stdout: &str) -> Result<JobStatus, String> {
        let service = parse_status(stdout)
            .ok_or_else(|| "sv status printed no run, down or finish state".to_string())?;
        Ok(JobStatus {
            pid: service.pid,
            starting: service.starting(),
            state: service.state,
            start_limit_hit: false,
            program: None,
        })
    }
}

/// `sv` beside the job's `runsv` where it may be run, else PATH's.
fn tool(supervisor: &Supervisor) -> Vec<String> {
    supervisor.tool.argv_or("sv")
}

/// The nearest `runsv` above `from`; its working directory is its service directory.
fn runsv_ancestor(from: u32) -> Option<ProcessInfo> {
    let is_runsv = |info: &ProcessInfo| {
        info.argv.first().map(|a| a.rsplit('/').next().unwrap_or(a)) == Some("runsv")
    };
    os::nearest_ancestor(from, is_runsv)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    /// `run`, `down` or `finish`.
    pub state: String,
    pub pid: Option<u32>,
    /// A stop is pending (`, want down`).
    pub want_down: bool,
    /// A start is pending (`, want up`): runsv waits a second after a run script that
    /// exited at once, then runs it again.
    pub want_up: bool,
}

impl ServiceStatus {
    /// runsv is bringing the service back: its `finish` script runs (then `run` again),
    /// or it is down but wanted up.
    pub fn starting(&self) -> bool {
        self.state == "finish" || (self.state == "down" && self.want_up)
    }
}

/// The states runit reports for a service; any other prefix is `sv` reporting its
/// own trouble (`warning:`, `fail:`).
const SERVICE_STATES: [&str; 3] = ["run", "down", "finish"];

/// The service's status; `None` when the output is not a service's status line.
pub fn parse_status(text: &str) -> Option<ServiceStatus> {
    // The service's own part comes before the first "; " (the log service follows).
    let main = text.lines().next()?.split("; ").next()?;
    let (state, rest) = main.split_once(": ")?;
    let state = state.trim();
    if !SERVICE_STATES.contains(&state) {
        return None;
    }
    let pid = match rest.split_once("(pid ") {
        // Without its `)` the line was cut short, maybe inside the PID: no status.
        Some((_, after)) => after.split_once(')')?.0.parse().ok(),
        None => None,
    };
    Some(ServiceStatus {
        state: state.to_string(),
        pid,
        want_down: rest.contains("want down"),
        want_up: rest.contains("want up"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sv` is the one beside the runsv that runs the job (its executable, whatever its
    /// argv said), for the status query and the restart alike; one in a directory
    /// another user can write is not, and the evidence says why.
    #[cfg(target_os = "linux")]
    #[test]
    fn sv_is_looked_for_beside_runsv() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let sv = bin.join("sv");
        std::fs::write(&sv, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&sv, std::fs::Permissions::from_mode(0o755)).unwrap();
        let clues = Clues {
            runsv_exe: Some((9, bin.join("runsv"))),
            runsv_dir: Some("/etc/sv/hermes".into()),
            ..Clues::default()
        };
        let own = os::own_uid();
        let mut sup = Runit.detect(&clues, None).unwrap();
        Runit.locate_tool(&mut sup, &clues, own);
        let path = sv.display().to_string();
        assert_eq!(
            sup.restart_argv(),
            [path.as_str(), "restart", "/etc/sv/hermes"]
        );
        assert_eq!(
            sup.status_argv(),
            [path.as_str(), "status", "/etc/sv/hermes"]
        );

        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o777)).unwrap();
        let mut sup = Runit.detect(&clues, None).unwrap();
        Runit.locate_tool(&mut sup, &clues, own);
        assert_eq!(sup.restart_argv(), ["sv", "restart", "/etc/sv/hermes"]);
        let why = sup.tool.refused.unwrap();
        assert!(
            why.starts_with(&format!("the sv beside runsv PID 9 ({path}) is not used: "))
                && why.contains("without the sticky bit"),
            "{why}"
        );

        // No sv beside it: PATH's, and nothing to say.
        std::fs::remove_file(&sv).unwrap();
        let mut sup = Runit.detect(&clues, None).unwrap();
        Runit.locate_tool(&mut sup, &clues, own);
        assert_eq!(sup.tool, Default::default());
    }

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

        let finish = parse_status("finish: /tmp/sv/hermes: (pid 7) 0s, normally up\n").unwrap();
        assert_eq!((finish.state.as_str(), finish.pid), ("finish", Some(7)));
        assert!(finish.starting());
        assert!(!down.starting() && !run.starting());
        let wanted = parse_status("down: /tmp/sv/hermes: 0s, normally up, want up\n").unwrap();
        assert!(wanted.starting() && wanted.want_up);

        assert_eq!(parse_status(""), None);
    }

    /// A line cut inside `(pid 21974)` would otherwise name PID 2.
    #[test]
    fn a_line_cut_inside_the_pid_is_no_status() {
        assert_eq!(parse_status("run: /etc/sv/hermes: (pid 2"), None);
        assert_eq!(parse_status("run: /etc/sv/hermes: (pid 21974"), None);
    }

    /// What `sv status` prints when it cannot reach the service (captured from sv 2.1.2,
    /// directory renamed: as a user who may not open root's supervise/, after runsv was
    /// killed, for a directory that does not exist, and before runsv ever ran). None of
    /// them is a state: read as "warning" with no PID, it made a healthy server an orphan.
    #[test]
    fn sv_complaints_are_not_states() {
        for line in [
            "warning: /etc/sv/hermes: unable to open supervise/ok: access denied\n",
            "fail: /etc/sv/hermes: runsv not running\n",
            "fail: /etc/sv/nosuch: unable to change to service directory: file does not exist\n",
            "warning: /etc/sv/hermes: unable to open supervise/ok: file does not exist\n",
        ] {
            assert_eq!(parse_status(line), None, "{line:?}");
        }
    }
}
