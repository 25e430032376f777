//! Who supervises the server (SPEC §5, auto-detection) and what that supervisor says
//! about its job. Detection reads the target itself — its environment, its ancestors,
//! its cgroup — and a status query runs the supervisor's own read-only command,
//! bounded. Nothing here restarts anything: that is `act::supervisor`.

pub mod launchd;
pub mod runit;
pub mod supervisord;
pub mod systemd;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::command::{self, Output};
use crate::config::{Method, RestartConfig};
use crate::deadline::Deadline;
use crate::probe::os::{self, ProcessInfo};

/// A status query is one short read-only command; it gets at most this long, so that
/// a wedged supervisor costs little of the run's bound.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// How far up the process tree to look for `runsv`.
const MAX_ANCESTORS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Launchd,
    Systemd,
    Supervisor,
    Runit,
}

impl Kind {
    pub fn method(self) -> Method {
        match self {
            Kind::Launchd => Method::Launchd,
            Kind::Systemd => Method::Systemd,
            Kind::Supervisor => Method::Supervisor,
            Kind::Runit => Method::Runit,
        }
    }

    pub fn of(method: Method) -> Option<Kind> {
        match method {
            Method::Launchd => Some(Kind::Launchd),
            Method::Systemd => Some(Kind::Systemd),
            Method::Supervisor => Some(Kind::Supervisor),
            Method::Runit => Some(Kind::Runit),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.method().as_str()
    }
}

/// One supervised job: enough to ask its supervisor about it and to restart it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supervisor {
    pub kind: Kind,
    /// launchd label, systemd unit, supervisord `group:name`, runit service directory.
    pub name: String,
    /// systemd: the unit belongs to a user manager (`systemctl --user`).
    pub user: bool,
    /// The job's user: launchd addresses a user's agents as `gui/<uid>/<label>`.
    pub uid: u32,
    /// supervisord: `SUPERVISOR_SERVER_URL`, passed as `supervisorctl -s`.
    pub server_url: Option<String>,
    /// How the job was recognised, for the report and the log.
    pub evidence: String,
}

/// What the supervisor says about its job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobStatus {
    /// The job's main PID; `None` when it is not running.
    pub pid: Option<u32>,
    /// The supervisor's own word for the state (RUNNING, FATAL, active, down, ...).
    pub state: String,
    /// systemd refused further starts (StartLimitBurst).
    pub start_limit_hit: bool,
    /// The job's program, where the supervisor shows it (launchd).
    pub program: Option<String>,
}

/// The double-fork signature: the port is held by a process that carries the job's
/// identity, but the supervisor runs another PID for the job, or none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Orphan {
    pub holder: u32,
    pub job_pid: Option<u32>,
}

/// The supervisor of this run's target, what it said, and whether the target is an
/// orphan of its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supervision {
    pub supervisor: Supervisor,
    pub job: Result<JobStatus, String>,
    pub orphan: Option<Orphan>,
}

impl Supervisor {
    pub fn describe(&self) -> String {
        match self.kind {
            Kind::Launchd => format!("launchd job {}", self.target()),
            Kind::Systemd if self.user => format!("systemd user unit {}", self.name),
            Kind::Systemd => format!("systemd unit {}", self.name),
            Kind::Supervisor => format!("supervisord program {}", self.name),
            Kind::Runit => format!("runit service {}", self.name),
        }
    }

    /// launchd's domain target for the job.
    fn target(&self) -> String {
        launchd::domain_target(self.uid, &self.name)
    }

    fn tool(&self) -> Vec<String> {
        let mut argv = Vec::new();
        match self.kind {
            Kind::Launchd => argv.push("launchctl".to_string()),
            Kind::Systemd => {
                argv.push("systemctl".into());
                if self.user {
                    argv.push("--user".into());
                }
            }
            Kind::Supervisor => {
                argv.push("supervisorctl".into());
                if let Some(url) = &self.server_url {
                    argv.extend(["-s".into(), url.clone()]);
                }
            }
            Kind::Runit => argv.push("sv".into()),
        }
        argv
    }

    pub fn status_argv(&self) -> Vec<String> {
        let mut argv = self.tool();
        match self.kind {
            Kind::Launchd => argv.extend(["print".into(), self.target()]),
            Kind::Systemd => argv.extend([
                "show".into(),
                "-p".into(),
                systemd::SHOW_PROPERTIES.into(),
                self.name.clone(),
            ]),
            Kind::Supervisor | Kind::Runit => argv.extend(["status".into(), self.name.clone()]),
        }
        argv
    }

    /// The supervisor's own restart: it stops the job, starts it, and keeps owning it.
    pub fn restart_argv(&self) -> Vec<String> {
        let mut argv = self.tool();
        match self.kind {
            Kind::Launchd => argv.extend(["kickstart".into(), "-k".into(), self.target()]),
            Kind::Systemd | Kind::Supervisor | Kind::Runit => {
                argv.extend(["restart".into(), self.name.clone()])
            }
        }
        argv
    }

    /// Why a unit `systemctl show` answered for is no job: systemd has not loaded it,
    /// mostly because no unit has that name (a mistyped `restart.unit`). It would
    /// otherwise read as a stopped job, and the server running without it as an orphan.
    fn unit_not_loaded(&self, load_state: &str) -> String {
        let user = if self.user { " --user" } else { "" };
        let what = if load_state == "not-found" {
            "does not exist"
        } else {
            "is not loaded"
        };
        format!(
            "systemd unit {} {what} (LoadState={load_state}): check the name in \
             restart.unit; `systemctl{user} list-units --all --type=service` lists the \
             units systemd knows",
            self.name
        )
    }

    /// The hint for an operator whose supervisor refused.
    pub fn reset_hint(&self) -> Option<String> {
        (self.kind == Kind::Systemd).then(|| {
            let user = if self.user { " --user" } else { "" };
            format!(
                "systemd refused to start {} again (StartLimitBurst reached); fix the cause, \
                 then run `systemctl{user} reset-failed {}`",
                self.name, self.name
            )
        })
    }
}

/// Reads a status command's output.
pub fn parse_status(supervisor: &Supervisor, stdout: &str) -> Result<JobStatus, String> {
    match supervisor.kind {
        Kind::Launchd => {
            let job = launchd::parse_print(stdout).map_err(|e| e.to_string())?;
            Ok(JobStatus {
                pid: job.pid,
                state: job.state.unwrap_or_else(|| "unknown".into()),
                start_limit_hit: false,
                program: job.program.or_else(|| job.arguments.first().cloned()),
            })
        }
        Kind::Systemd => {
            let unit = systemd::parse_show(stdout);
            if unit.active_state.is_empty() || unit.load_state.is_empty() {
                return Err("systemctl show printed no ActiveState or no LoadState".into());
            }
            if unit.load_state != "loaded" {
                return Err(supervisor.unit_not_loaded(&unit.load_state));
            }
            Ok(JobStatus {
                pid: unit.main_pid,
                start_limit_hit: unit.start_limit_hit(),
                state: if unit.sub_state.is_empty() {
                    unit.active_state
                } else {
                    format!("{} ({})", unit.active_state, unit.sub_state)
                },
                program: None,
            })
        }
        Kind::Supervisor => {
            let program = supervisord::parse_status(stdout, &supervisor.name)
                .ok_or_else(|| format!("no status line for {}", supervisor.name))?;
            Ok(JobStatus {
                pid: program.pid,
                state: program.state,
                start_limit_hit: false,
                program: None,
            })
        }
        Kind::Runit => {
            let service = runit::parse_status(stdout)
                .ok_or_else(|| "sv status printed no run, down or finish state".to_string())?;
            Ok(JobStatus {
                pid: service.pid,
                state: service.state,
                start_limit_hit: false,
                program: None,
            })
        }
    }
}

/// Asks the supervisor about its job. The status commands exit non-zero for a job
/// that is not running (supervisorctl exits 3), so the output decides, not the code.
pub fn query(supervisor: &Supervisor, deadline: Deadline) -> Result<JobStatus, String> {
    let argv = supervisor.status_argv();
    let done = command::run(&argv, &[], Output::Capture, deadline.sub(QUERY_TIMEOUT))
        .map_err(|e| e.to_string())?;
    parse_status(supervisor, &done.stdout).map_err(|why| {
        format!(
            "`{}` ({}): {why}; it said: {}",
            argv.join(" "),
            done.status,
            first_line(&done.text())
        )
    })
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// What the target reveals about its supervisor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clues {
    pub env: Vec<(String, String)>,
    /// Why the environment could not be read: then no supervisor can be ruled out.
    pub env_error: Option<String>,
    pub uid: u32,
    /// The service directory of the nearest `runsv` ancestor (its cwd).
    pub runsv_dir: Option<PathBuf>,
    /// The `.service` in the target's cgroup, and whether it is a user unit.
    pub unit: Option<(String, bool)>,
}

impl Clues {
    fn var(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

pub fn gather(target: &ProcessInfo) -> Clues {
    let (env, env_error) = match os::process_environ(target.pid()) {
        Ok(env) => (env, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    Clues {
        env,
        env_error,
        uid: target.uid.unwrap_or(0),
        runsv_dir: runsv_ancestor(target.ppid),
        unit: os::cgroup(target.pid())
            .ok()
            .flatten()
            .and_then(|text| systemd::unit_from_cgroup(&text)),
    }
}

fn runsv_ancestor(mut pid: u32) -> Option<PathBuf> {
    for _ in 0..MAX_ANCESTORS {
        if pid <= 1 {
            return None;
        }
        let info = os::process_info(pid).ok()?;
        let program = info.argv.first().map(|a| a.rsplit('/').next().unwrap_or(a));
        if program == Some("runsv") {
            return info.cwd;
        }
        pid = info.ppid;
    }
    None
}

/// The nearest supervisor, in the order of SPEC §5: launchd, supervisord, runit, and
/// systemd last (supervisord and runsvdir often run inside a systemd unit themselves;
/// restarting that unit would restart every program they run). A systemd candidate
/// still has to be confirmed by its MainPID (see `resolve`).
pub fn detect(clues: &Clues) -> Option<Supervisor> {
    let found = |kind, name: String, evidence: &str| Supervisor {
        kind,
        name,
        user: false,
        uid: clues.uid,
        server_url: None,
        evidence: evidence.to_string(),
    };
    if let Some(label) = clues
        .var("XPC_SERVICE_NAME")
        .filter(|l| launchd::is_launchd_label(l))
    {
        return Some(found(Kind::Launchd, label.to_string(), "XPC_SERVICE_NAME"));
    }
    if let Some(process) = clues.var("SUPERVISOR_PROCESS_NAME") {
        let group = clues.var("SUPERVISOR_GROUP_NAME").unwrap_or(process);
        return Some(Supervisor {
            server_url: clues.var("SUPERVISOR_SERVER_URL").map(str::to_string),
            ..found(
                Kind::Supervisor,
                format!("{group}:{process}"),
                "SUPERVISOR_PROCESS_NAME",
            )
        });
    }
    if let Some(dir) = &clues.runsv_dir {
        return Some(found(
            Kind::Runit,
            dir.display().to_string(),
            "runsv ancestor",
        ));
    }
    if let Some((unit, user)) = &clues.unit {
        return Some(Supervisor {
            user: *user,
            ..found(Kind::Systemd, unit.clone(), "cgroup")
        });
    }
    None
}

/// A job named in the config (`label`, `unit`, `program`, `service_dir`), which wins
/// over what was detected.
fn configured(kind: Kind, cfg: &RestartConfig, clues: &Clues) -> Option<Supervisor> {
    let name = match kind {
        Kind::Launchd => cfg.label.clone(),
        Kind::Systemd => cfg.unit.clone(),
        Kind::Supervisor => cfg.program.clone(),
        Kind::Runit => cfg.service_dir.as_ref().map(|d| d.display().to_string()),
    }?;
    let detected = detect(clues).filter(|s| s.kind == kind);
    Some(Supervisor {
        kind,
        name,
        user: detected.as_ref().is_some_and(|s| s.user),
        uid: clues.uid,
        server_url: detected.and_then(|s| s.server_url),
        evidence: "configured".into(),
    })
}

/// How this run will restart: the method, and the supervision when a supervisor owns
/// the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub method: Method,
    pub supervision: Option<Supervision>,
    /// Why a supervisor method cannot be used this run (no job known).
    pub problem: Option<String>,
}

/// Resolves `restart.method` against the target. `remembered` is the supervisor the
/// previous run found: when the server is down there is no process to read, but the
/// job that ran it is the one to start (a supervisord program in FATAL, say).
pub fn resolve(
    cfg: &RestartConfig,
    target: Option<&ProcessInfo>,
    remembered: Option<&Supervisor>,
    deadline: Deadline,
) -> Resolution {
    let plain = |method| Resolution {
        method,
        supervision: None,
        problem: None,
    };
    let clues = target.map(gather).unwrap_or_default();
    let candidate = match cfg.method {
        Method::Auto => target
            .and_then(|_| detect(&clues))
            .or_else(|| target.is_none().then(|| remembered.cloned()).flatten()),
        method => match Kind::of(method) {
            None => return plain(method),
            Some(kind) => {
                let found = configured(kind, cfg, &clues)
                    .or_else(|| detect(&clues).filter(|s| s.kind == kind))
                    .or_else(|| remembered.filter(|s| s.kind == kind).cloned());
                if found.is_none() {
                    return Resolution {
                        method,
                        supervision: None,
                        problem: Some(format!(
                            "restart.method = {:?} but no {} job is known: set restart.{}",
                            method.as_str(),
                            kind.as_str(),
                            config_key(kind)
                        )),
                    };
                }
                found
            }
        },
    };
    let Some(supervisor) = candidate else {
        return Resolution {
            problem: target.and_then(|t| unknown_supervision(&clues, t.pid())),
            ..plain(Method::Builtin)
        };
    };
    let job = query(&supervisor, deadline);
    // A process merely inside a unit's cgroup is not proof that systemd runs it: a
    // server started by a cron job sits in cron.service. Auto-detection believes the
    // cgroup only when the unit's MainPID is the target or one of its ancestors.
    if cfg.method == Method::Auto
        && supervisor.kind == Kind::Systemd
        && supervisor.evidence == "cgroup"
        && let Some(target) = target
        && !matches!(&job, Ok(status) if status.pid.is_some_and(|pid| is_self_or_ancestor(pid, target)))
    {
        return plain(Method::Builtin);
    }
    let orphan = match (&job, target) {
        (Ok(status), Some(target)) => orphan_of(status, target),
        _ => None,
    };
    Resolution {
        method: supervisor.kind.method(),
        supervision: Some(Supervision {
            supervisor,
            job,
            orphan,
        }),
        problem: None,
    }
}

/// Auto-detection found no supervisor, but without the environment it could not look:
/// a builtin restart might then fight a supervisor that restarts the server too.
fn unknown_supervision(clues: &Clues, pid: u32) -> Option<String> {
    clues.env_error.as_ref().map(|e| {
        format!(
            "cannot read the environment of PID {pid} ({e}), so whether a supervisor runs it \
             is unknown: set restart.method"
        )
    })
}

fn config_key(kind: Kind) -> &'static str {
    match kind {
        Kind::Launchd => "label",
        Kind::Systemd => "unit",
        Kind::Supervisor => "program",
        Kind::Runit => "service_dir",
    }
}

/// The target carries the job's identity; it is an orphan unless it is the job's
/// PID or a descendant of it.
fn orphan_of(job: &JobStatus, target: &ProcessInfo) -> Option<Orphan> {
    match job.pid {
        Some(pid) if is_self_or_ancestor(pid, target) => None,
        job_pid => Some(Orphan {
            holder: target.pid(),
            job_pid,
        }),
    }
}

fn is_self_or_ancestor(pid: u32, target: &ProcessInfo) -> bool {
    if pid == target.pid() {
        return true;
    }
    let mut current = target.ppid;
    for _ in 0..MAX_ANCESTORS {
        if current == pid {
            return true;
        }
        if current <= 1 {
            return false;
        }
        match os::parent_pid(current) {
            Ok(parent) => current = parent,
            Err(_) => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests;
