//! systemd: the unit in the target's cgroup (a claim its MainPID must confirm),
//! `systemctl [--user] show` and `restart`, and what to tell the operator about a unit
//! systemd refused to start again or does not know.

use super::{Behaviour, Claim, Clues, JobStatus, Kind, Supervisor, job_argv};
use crate::config::{Method, RestartConfig};
use crate::probe::os::{self, ProcessInfo};

/// systemd's part of [`Behaviour`].
pub(super) struct Systemd;

impl Behaviour for Systemd {
    fn method(&self) -> Method {
        Method::Systemd
    }

    fn config_key(&self) -> &'static str {
        "unit"
    }

    fn configured_name(&self, cfg: &RestartConfig) -> Option<String> {
        cfg.unit.clone()
    }

    fn gather(&self, target: &ProcessInfo, clues: &mut Clues) {
        clues.unit = os::cgroup(target.pid())
            .ok()
            .flatten()
            .and_then(|text| unit_from_cgroup(&text));
    }

    fn detect(&self, clues: &Clues, _own_label: Option<&str>) -> Option<Supervisor> {
        let (unit, user) = clues.unit.as_ref()?;
        Some(Supervisor {
            user: *user,
            ..Supervisor::detected(Kind::Systemd, unit.clone(), clues, "cgroup")
        })
    }

    /// The cgroup is the kernel's, but a process merely inside a unit's cgroup is not
    /// proof that systemd runs it: resolution believes it once the unit's MainPID is the
    /// target or its ancestor.
    fn claim(&self, _supervisor: &Supervisor, _clues: &Clues) -> Result<Claim, String> {
        Ok(Claim::Cgroup)
    }

    fn describe(&self, supervisor: &Supervisor) -> String {
        if supervisor.user {
            format!("systemd user unit {}", supervisor.name)
        } else {
            format!("systemd unit {}", supervisor.name)
        }
    }

    fn status_argv(&self, supervisor: &Supervisor) -> Vec<String> {
        let mut argv = tool(supervisor);
        argv.extend([
            "show".into(),
            "-p".into(),
            SHOW_PROPERTIES.into(),
            supervisor.name.clone(),
        ]);
        argv
    }

    fn restart_argv(&self, supervisor: &Supervisor) -> Vec<String> {
        job_argv(tool(supervisor), "restart", &supervisor.name)
    }

    fn parse_status(&self, supervisor: &Supervisor, stdout: &str) -> Result<JobStatus, String> {
        let unit = parse_show(stdout);
        if unit.active_state.is_empty() || unit.load_state.is_empty() {
            return Err("systemctl show printed no ActiveState or no LoadState".into());
        }
        if unit.load_state != "loaded" {
            return Err(unit_not_loaded(supervisor, &unit.load_state));
        }
        Ok(JobStatus {
            pid: unit.main_pid,
            start_limit_hit: unit.start_limit_hit(),
            starting: unit.starting(),
            state: if unit.sub_state.is_empty() {
                unit.active_state
            } else {
                format!("{} ({})", unit.active_state, unit.sub_state)
            },
            program: None,
        })
    }

    fn reset_hint(&self, supervisor: &Supervisor) -> Option<String> {
        Some(format!(
            "systemd refused to start {} again (StartLimitBurst reached); fix the cause, \
             then run `systemctl{} reset-failed {}`",
            supervisor.name,
            user_flag(supervisor),
            supervisor.name
        ))
    }
}

/// `systemctl`, and `--user` for a unit of a user manager.
fn tool(supervisor: &Supervisor) -> Vec<String> {
    let mut argv = vec!["systemctl".to_string()];
    if supervisor.user {
        argv.push("--user".into());
    }
    argv
}

/// ` --user` where the operator's own commands need it.
fn user_flag(supervisor: &Supervisor) -> &'static str {
    if supervisor.user { " --user" } else { "" }
}

/// Why a unit `systemctl show` answered for is no job: systemd has not loaded it,
/// mostly because no unit has that name (a mistyped `restart.unit`). It would
/// otherwise read as a stopped job, and the server running without it as an orphan.
fn unit_not_loaded(supervisor: &Supervisor, load_state: &str) -> String {
    let what = if load_state == "not-found" {
        "does not exist"
    } else {
        "is not loaded"
    };
    format!(
        "systemd unit {} {what} (LoadState={load_state}): check the name in \
         restart.unit; `systemctl{} list-units --all --type=service` lists the \
         units systemd knows",
        supervisor.name,
        user_flag(supervisor)
    )
}

/// What `systemctl show -p MainPID,ActiveState,SubState,Result,NRestarts,LoadState UNIT`
/// says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitStatus {
    /// `loaded`, or why systemd has no such unit (`not-found`, `masked`, `bad-setting`,
    /// `error`). systemctl answers for a unit that does not exist too, with exit 0,
    /// MainPID=0 and ActiveState=inactive: only LoadState tells it from a stopped one.
    pub load_state: String,
    /// `None` when MainPID=0 (not running).
    pub main_pid: Option<u32>,
    pub active_state: String,
    pub sub_state: String,
    /// `start-limit-hit` when StartLimitBurst refused further starts.
    pub result: String,
    pub n_restarts: Option<u64>,
}

impl UnitStatus {
    pub fn start_limit_hit(&self) -> bool {
        self.result == "start-limit-hit"
    }

    /// systemd is starting the unit: `activating` covers ExecStartPre (`start-pre`),
    /// the start itself (`start`, before a `Type=notify` service says READY) and the
    /// wait before a `Restart=` (`auto-restart`). Its MainPID, where there is one, is
    /// the job's; a restart of ours would only queue behind systemd's own.
    pub fn starting(&self) -> bool {
        self.active_state == "activating"
    }
}

pub const SHOW_PROPERTIES: &str = "MainPID,ActiveState,SubState,Result,NRestarts,LoadState";

pub fn parse_show(text: &str) -> UnitStatus {
    let mut status = UnitStatus::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "MainPID" => status.main_pid = value.parse().ok().filter(|&pid: &u32| pid > 0),
            "ActiveState" => status.active_state = value.into(),
            "SubState" => status.sub_state = value.into(),
            "Result" => status.result = value.into(),
            "NRestarts" => status.n_restarts = value.parse().ok(),
            "LoadState" => status.load_state = value.into(),
            _ => {}
        }
    }
    status
}

/// The unit a process belongs to, from `/proc/PID/cgroup` (v2 `0::/path` or the
/// v1 `name=systemd` hierarchy), by systemd's own rule (`systemctl status PID`): the
/// first component after the slices, or after the user manager's `user@UID.service`
/// and its slices for a user unit; and whether it is a user unit. Cgroups below the
/// unit's are named by whoever it delegated them to: a `sshd.service` among them is
/// not sshd's.
pub fn unit_from_cgroup(cgroup: &str) -> Option<(String, bool)> {
    let path = cgroup.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_id, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        (controllers.is_empty() || controllers == "name=systemd").then_some(path)
    })?;
    let mut segments = path
        .split('/')
        .filter(|s| !s.is_empty() && !s.ends_with(".slice"));
    let mut unit = segments.next()?;
    let user = unit.starts_with("user@") && unit.ends_with(".service");
    if user {
        unit = segments.next()?;
    }
    unit.ends_with(".service").then(|| (unit.to_string(), user))
}

/// `systemctl show -p MainPID,ActiveState,SubState,Result,NRestarts,LoadState
/// no-such.service`, in the order systemd prints the properties (its Service
/// interface before its Unit one). Written by hand: no systemd runs here to capture
/// it from; what matters is that it exits 0 and looks like a stopped unit.
#[cfg(test)]
pub(crate) const NOT_FOUND: &str = "MainPID=0\nResult=success\nNRestarts=0\n\
    LoadState=not-found\nActiveState=inactive\nSubState=dead\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_show_output() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/systemd/show-running.txt"
        ))
        .unwrap();
        let status = parse_show(&text);
        assert_eq!(status.main_pid, Some(48213));
        assert_eq!(status.load_state, "loaded");
        assert_eq!(status.active_state, "active");
        assert_eq!(status.sub_state, "running");
        assert_eq!(status.n_restarts, Some(2));
        assert!(!status.start_limit_hit());

        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/systemd/show-start-limit-hit.txt"
        ))
        .unwrap();
        let status = parse_show(&text);
        assert_eq!(status.main_pid, None);
        assert_eq!(status.active_state, "failed");
        assert!(status.start_limit_hit());

        // Between a crash and `Restart=`: written in systemd's format like the fixtures
        // above (no systemd PID 1 runs here to capture it from).
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/systemd/show-activating.txt"
        ))
        .unwrap();
        let status = parse_show(&text);
        assert!(status.starting(), "{status:?}");
        assert_eq!(status.main_pid, None);
        assert_eq!(status.sub_state, "auto-restart");
        assert!(!status.start_limit_hit());

        let status = parse_show(NOT_FOUND);
        assert_eq!(status.load_state, "not-found");
        assert_eq!(status.main_pid, None);
        assert_eq!(status.active_state, "inactive");
    }

    #[test]
    fn finds_the_unit_in_the_cgroup() {
        let table = [
            (
                "0::/system.slice/hermes-webui.service\n",
                Some(("hermes-webui.service", false)),
            ),
            (
                "0::/user.slice/user-1000.slice/user@1000.service/app.slice/hermes.service\n",
                Some(("hermes.service", true)),
            ),
            ("0::/user.slice/user-1000.slice/session-3.scope\n", None),
            (
                "12:pids:/system.slice/x.service\n1:name=systemd:/system.slice/cron.service\n",
                Some(("cron.service", false)),
            ),
            ("0::/\n", None),
            ("", None),
            // Below a unit, the cgroups are named by whoever it delegated them to.
            (
                "0::/system.slice/docker.service/sshd.service\n",
                Some(("docker.service", false)),
            ),
            (
                "0::/user.slice/user-1000.slice/user@1000.service/app.slice/hermes.service/sshd.service\n",
                Some(("hermes.service", true)),
            ),
            (
                "0::/user.slice/user-1000.slice/user@1000.service/init.scope\n",
                None,
            ),
        ];
        for (cgroup, expected) in table {
            let found = unit_from_cgroup(cgroup);
            assert_eq!(
                found.as_ref().map(|(u, user)| (u.as_str(), *user)),
                expected,
                "{cgroup:?}"
            );
        }
    }
}
