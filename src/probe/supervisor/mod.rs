//! Who supervises the server (docs/DESIGN.md, "Supervisors") and what that supervisor says
//! about its job. Detection reads the target itself — its environment, its ancestors,
//! its cgroup — and a status query runs the supervisor's own read-only command,
//! bounded. Nothing here restarts anything: that is `act::supervisor`.
//!
//! What the target says about itself (its environment) is its own word, and under root
//! another user's word must not steer root's supervisors (docs/SECURITY.md). So an
//! identity is used only when something the target cannot forge confirms it (see
//! [`Trust`]): the supervisor's own process is its ancestor, holds the control socket
//! the target names, and says it runs the target (or an ancestor) as the job; systemd's
//! cgroup and MainPID; the operator's config; or the target runs as the watchdog's own
//! user, who could do whatever the claim asks anyway. Otherwise nothing is done and the
//! operator is told why ([`Resolution::unverified`]); no command runs on that word.

pub mod launchd;
pub mod runit;
pub mod supervisord;
pub mod systemd;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::command::{self, Finished, Output};
use crate::config::{Method, RestartConfig};
use crate::deadline::Deadline;
use crate::probe::os::{self, ProcessInfo};

/// A status query is one short read-only command; it gets at most this long, so that
/// a wedged supervisor costs little of the run's bound.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a run waits for a job its supervisor reports starting, at most, before it
/// reports "starting" and leaves it be. supervisord's STARTING lasts `startsecs` (1 s
/// by default) and BACKOFF pauses 1 s, 2 s, ... between tries; systemd's
/// `RestartSec` is 100 ms by default; runsv pauses 1 s. Five seconds sees the common
/// cases through and costs a run (bounded by `run_bound`, at least 30 s) little; a
/// job still starting after that is reported, never signalled.
pub const STARTING_WAIT: Duration = Duration::from_secs(5);
const STARTING_POLL: Duration = Duration::from_millis(500);

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

/// What vouches for a supervisor identity. A target's environment is the target's
/// own word: any process can set `SUPERVISOR_PROCESS_NAME` or `XPC_SERVICE_NAME`, so
/// under root that word alone would let a user steer root's supervisors
/// (docs/SECURITY.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trust {
    /// Nothing does yet; also what a history entry without this field reads as.
    #[default]
    Unverified,
    /// Seen from outside the target: the supervisor's own process is its ancestor
    /// (holding the control socket the target names, for supervisord) and says it runs
    /// the target or one of its ancestors as the job; for systemd the cgroup and the
    /// unit's MainPID.
    Confirmed,
    /// The operator named the job (`restart.program`, `unit`, `label`, `service_dir`)
    /// or the method.
    Configured,
    /// Only the target's word, but the target runs as the watchdog's own user: whatever
    /// that word makes the watchdog do, the target's user could do itself. The double
    /// fork's orphan (no longer a descendant of anything) and launchd jobs (every
    /// process descends from launchd) are known this way only.
    SameUser,
}

impl Trust {
    /// Whether a job remembered from an earlier run may be started while the server is
    /// down: only if it was vouched for when recorded, and a same-user job only while
    /// the watchdog still runs as that user.
    pub fn survives(self, job_uid: u32, own_uid: u32) -> bool {
        match self {
            Trust::Confirmed | Trust::Configured => true,
            Trust::SameUser => job_uid == own_uid,
            Trust::Unverified => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Trust::Unverified => "unverified",
            Trust::Confirmed => "confirmed",
            Trust::Configured => "configured",
            Trust::SameUser => "same_user",
        }
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
    /// What vouches for it; kept in the history so that a job is started from memory
    /// only if it was vouched for when it was recorded.
    #[serde(default)]
    pub trust: Trust,
    /// launchd: the domain that answered for the job (`gui/501`, `user/501`, `system`),
    /// so that status and `kickstart` address the same job; `None` until launchd was
    /// asked (and in history written before domains were looked up).
    #[serde(default)]
    pub domain: Option<String>,
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
    /// The supervisor is (re)starting the job: supervisord STARTING or BACKOFF, systemd
    /// `activating`, launchd spawning, runit `finish` or wanting it up. Its process,
    /// if any, is never an orphan.
    pub starting: bool,
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

    /// launchd's domain target for the job: in the domain that answered for it, or
    /// the first candidate for its user before launchd was asked.
    fn target(&self) -> String {
        let domain = self
            .domain
            .clone()
            .unwrap_or_else(|| launchd::default_domain(self.uid));
        launchd::domain_target(&domain, &self.name)
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
            Ok(launchd_job_status(job))
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
                starting: unit.starting(),
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
                starting: program.starting(),
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
                starting: service.starting(),
                state: service.state,
                start_limit_hit: false,
                program: None,
            })
        }
    }
}

/// The status of a job `launchctl print` described: one reading for the status query
/// and for the job found while resolving ([`launchd_status`]).
fn launchd_job_status(job: launchd::LaunchdJob) -> JobStatus {
    let state = job.state.unwrap_or_else(|| "unknown".into());
    JobStatus {
        pid: job.pid,
        starting: launchd::is_starting(&state),
        state,
        start_limit_hit: false,
        program: job.program.or_else(|| job.arguments.first().cloned()),
    }
}

/// Asks the supervisor about its job. The status commands exit non-zero for a job
/// that is not running (supervisorctl exits 3), so the output decides, not the code.
pub fn query(supervisor: &Supervisor, deadline: Deadline) -> Result<JobStatus, String> {
    let argv = supervisor.status_argv();
    let done = command::run(&argv, &[], Output::Capture, deadline.sub(QUERY_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut status = parse_status(supervisor, &done.stdout).map_err(|why| {
        format!(
            "`{}` ({}): {why}; it said: {}",
            argv.join(" "),
            done.status,
            first_line(&done.text())
        )
    })?;
    // `supervisorctl status` prints no PID in STARTING, though the process runs (and may
    // listen already); read as "runs nothing", it made the fresh process an orphan.
    if supervisor.kind == Kind::Supervisor && status.starting && status.pid.is_none() {
        status.pid = supervisord_pid(supervisor, deadline);
    }
    Ok(status)
}

/// `supervisorctl pid NAME`, which answers in STARTING too.
fn supervisord_pid(supervisor: &Supervisor, deadline: Deadline) -> Option<u32> {
    let mut argv = supervisor.tool();
    argv.extend(["pid".into(), supervisor.name.clone()]);
    let done = command::run(&argv, &[], Output::Capture, deadline.sub(QUERY_TIMEOUT)).ok()?;
    supervisord::parse_pid(&done.stdout)
}

/// Waits, within [`STARTING_WAIT`] and the run's deadline, while the supervisor reports
/// its job starting; returns what it said last.
fn wait_while_starting(
    supervisor: &Supervisor,
    mut job: Result<JobStatus, String>,
    deadline: Deadline,
) -> Result<JobStatus, String> {
    let until = deadline.sub(STARTING_WAIT);
    while matches!(&job, Ok(status) if status.starting) && !until.passed() {
        std::thread::sleep(until.cap(STARTING_POLL));
        if until.passed() {
            break;
        }
        job = query(supervisor, deadline);
    }
    job
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
    /// The nearest ancestor whose command line is supervisord's.
    pub supervisord: Option<u32>,
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
        supervisord: supervisord_ancestor(target.ppid),
        unit: os::cgroup(target.pid())
            .ok()
            .flatten()
            .and_then(|text| systemd::unit_from_cgroup(&text)),
    }
}

fn supervisord_ancestor(from: u32) -> Option<u32> {
    os::nearest_ancestor(from, |info| supervisord::is_supervisord(&info.argv)).map(|i| i.pid())
}

fn runsv_ancestor(from: u32) -> Option<PathBuf> {
    let is_runsv = |info: &ProcessInfo| {
        info.argv.first().map(|a| a.rsplit('/').next().unwrap_or(a)) == Some("runsv")
    };
    os::nearest_ancestor(from, is_runsv).and_then(|info| info.cwd)
}

/// The nearest supervisor (docs/DESIGN.md, "Supervisors"): launchd, supervisord, runit, and
/// systemd last (supervisord and runsvdir often run inside a systemd unit themselves;
/// restarting that unit would restart every program they run). A systemd candidate
/// still has to be confirmed by its MainPID (see `resolve`).
pub fn detect(clues: &Clues) -> Option<Supervisor> {
    detect_except(clues, None)
}

/// [`detect`], where an `XPC_SERVICE_NAME` equal to `own_label` (the watchdog's own
/// job's label, which everything the watchdog starts inherits) names no job: the
/// server carrying it is not run by the watchdog's job, whose PID is the watchdog.
fn detect_except(clues: &Clues, own_label: Option<&str>) -> Option<Supervisor> {
    let found = |kind, name: String, evidence: &str| Supervisor {
        kind,
        name,
        user: false,
        uid: clues.uid,
        server_url: None,
        evidence: evidence.to_string(),
        trust: Trust::Unverified,
        domain: None,
    };
    if let Some(label) = clues
        .var("XPC_SERVICE_NAME")
        .filter(|l| launchd::is_launchd_label(l) && Some(l.trim()) != own_label)
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
/// over what was detected. Of the detected details it keeps what the target cannot
/// forge: systemd's user flag (from the cgroup), and supervisord's server URL only when
/// the supervisord that is the target's ancestor holds that socket, or the target is
/// the watchdog's own user (a double fork's orphan has no supervisord ancestor).
fn configured(kind: Kind, cfg: &RestartConfig, clues: &Clues, own_uid: u32) -> Option<Supervisor> {
    let name = match kind {
        Kind::Launchd => cfg.label.clone(),
        Kind::Systemd => cfg.unit.clone(),
        Kind::Supervisor => cfg.program.clone(),
        Kind::Runit => cfg.service_dir.as_ref().map(|d| d.display().to_string()),
    }?;
    let detected = detect(clues).filter(|s| s.kind == kind);
    let server_url = detected
        .as_ref()
        .and_then(|s| s.server_url.clone())
        .filter(|url| {
            clues.uid == own_uid
                || clues
                    .supervisord
                    .is_some_and(|pid| holds_server_socket(pid, url).is_ok())
        });
    Some(Supervisor {
        kind,
        name,
        user: detected.as_ref().is_some_and(|s| s.user),
        uid: clues.uid,
        server_url,
        evidence: "configured".into(),
        trust: Trust::Configured,
        domain: None,
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
    /// The target claims a supervisor that nothing confirms, and the watchdog runs as
    /// another user: why its word is not taken. Nothing is done this run, neither
    /// through that supervisor nor by a builtin restart, which could fight a real one.
    pub unverified: Option<String>,
    /// A job remembered from an earlier run that is not used, and why.
    pub ignored: Option<String>,
}

impl Resolution {
    /// A method with no supervision and nothing to say.
    pub fn plain(method: Method) -> Resolution {
        Resolution {
            method,
            supervision: None,
            problem: None,
            unverified: None,
            ignored: None,
        }
    }
}

/// Resolves `restart.method` against the target. `remembered` is the supervisor the
/// previous run found: when the server is down there is no process to read, but the
/// job that ran it is the one to start (a supervisord program in FATAL, say).
/// `clues` are what [`gather`] read of the target (the default when there is none).
pub fn resolve(
    cfg: &RestartConfig,
    target: Option<&ProcessInfo>,
    clues: &Clues,
    remembered: Option<&Supervisor>,
    deadline: Deadline,
) -> Resolution {
    let context = Context {
        own_uid: os::own_uid(),
        ..Context::of_this_process()
    };
    resolve_in(cfg, target, clues, remembered, &context, deadline)
}

/// What resolving needs to know of the watchdog itself and of the platform, and how it
/// asks launchctl (a stand-in in unit tests).
struct Context<'a> {
    own_uid: u32,
    own_pid: u32,
    /// The watchdog's own `XPC_SERVICE_NAME`, when it runs as a launchd job.
    own_label: Option<String>,
    /// [`os::LAUNCHD_IS_INIT`]: auto-detection asks launchd's listings by PID.
    launchd_is_init: bool,
    launchctl: &'a AskLaunchctl<'a>,
}

/// Runs `launchctl` with these arguments, bounded by the deadline.
type AskLaunchctl<'a> = dyn Fn(&[String], Deadline) -> Result<Finished, String> + 'a;

impl Context<'static> {
    fn of_this_process() -> Context<'static> {
        Context {
            own_uid: os::own_uid(),
            own_pid: std::process::id(),
            // Read from the watchdog's own environment: under a LaunchAgent, launchd
            // sets it to the watchdog's label, and every child inherits it.
            own_label: std::env::var("XPC_SERVICE_NAME")
                .ok()
                .filter(|l| launchd::is_launchd_label(l))
                .map(|l| l.trim().to_string()),
            launchd_is_init: os::LAUNCHD_IS_INIT,
            launchctl: &launchctl,
        }
    }
}

/// One read-only `launchctl` call, within [`QUERY_TIMEOUT`] and the run's deadline.
fn launchctl(args: &[String], deadline: Deadline) -> Result<Finished, String> {
    let mut argv = vec!["launchctl".to_string()];
    argv.extend_from_slice(args);
    command::run(&argv, &[], Output::Capture, deadline.sub(QUERY_TIMEOUT))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
fn resolve_with(
    cfg: &RestartConfig,
    target: Option<&ProcessInfo>,
    clues: &Clues,
    remembered: Option<&Supervisor>,
    own_uid: u32,
    deadline: Deadline,
) -> Resolution {
    let context = Context {
        own_uid,
        own_label: None,
        launchd_is_init: false,
        ..Context::of_this_process()
    };
    resolve_in(cfg, target, clues, remembered, &context, deadline)
}

fn resolve_in(
    cfg: &RestartConfig,
    target: Option<&ProcessInfo>,
    clues: &Clues,
    remembered: Option<&Supervisor>,
    ctx: &Context,
    deadline: Deadline,
) -> Resolution {
    let own_uid = ctx.own_uid;
    let own_label = ctx.own_label.as_deref();
    // launchd's own listings, asked for the target's PID when its environment names no
    // job (or cannot be read): on macOS for auto-detection, anywhere for "launchd".
    let by_pid = |asked: bool| {
        let target = target.filter(|_| asked)?;
        find_by_pid(target, ctx, deadline)
    };
    // The remembered job is worth a word only where it would have been used: with the
    // server down, and a method it could serve (with the server up the target itself
    // is read, and the history is rewritten from it).
    let (remembered, ignored) = match remembered {
        Some(s) if !s.trust.survives(s.uid, own_uid) => {
            let would_use = target.is_none()
                && (cfg.method == Method::Auto || Kind::of(cfg.method) == Some(s.kind));
            (None, would_use.then(|| forgotten(s, own_uid)))
        }
        other => (other, None),
    };
    let plain = |method| Resolution {
        ignored: ignored.clone(),
        ..Resolution::plain(method)
    };
    let candidate = match cfg.method {
        Method::Auto => target
            .and_then(|_| detect_except(clues, own_label))
            .or_else(|| by_pid(ctx.launchd_is_init))
            .or_else(|| target.is_none().then(|| remembered.cloned()).flatten()),
        method => match Kind::of(method) {
            None => return plain(method),
            Some(kind) => {
                let found = configured(kind, cfg, clues, own_uid)
                    .or_else(|| detect_except(clues, own_label).filter(|s| s.kind == kind))
                    .or_else(|| by_pid(kind == Kind::Launchd))
                    .or_else(|| remembered.filter(|s| s.kind == kind).cloned());
                if found.is_none() {
                    return Resolution {
                        problem: Some(format!(
                            "restart.method = {:?} but no {} job is known: set restart.{}",
                            method.as_str(),
                            kind.as_str(),
                            config_key(kind)
                        )),
                        ..plain(method)
                    };
                }
                found
            }
        },
    };
    let Some(mut supervisor) = candidate else {
        return Resolution {
            problem: target.and_then(|t| unknown_supervision(clues, t.pid())),
            ..plain(Method::Builtin)
        };
    };
    // What the target says about itself is checked before any command runs on its
    // word: a forged SUPERVISOR_SERVER_URL must not even be queried.
    let claim = match target {
        Some(target) if supervisor.trust == Trust::Unverified => {
            match precheck(&supervisor, clues, target, own_uid) {
                Ok(claim) => claim,
                // Another user's `XPC_SERVICE_NAME` is only that user's word; where
                // launchd is init its own listing may still vouch for the process (a
                // root watchdog watching a user's LaunchAgent), and then it is launchd's
                // pairing that is used, whatever label the environment named.
                Err(why) => match by_pid(supervisor.kind == Kind::Launchd && ctx.launchd_is_init) {
                    Some(found) => {
                        supervisor = found;
                        Claim::Vouched
                    }
                    None => {
                        return Resolution {
                            unverified: Some(why),
                            ..plain(Method::None)
                        };
                    }
                },
            }
        }
        _ => Claim::Vouched,
    };
    if claim == Claim::SameUser {
        supervisor.trust = Trust::SameUser;
    }
    // With the server down the job's user is unknown; a named label is looked for in
    // the watchdog's own user's domains (and `system`).
    if supervisor.kind == Kind::Launchd && target.is_none() && supervisor.domain.is_none() {
        supervisor.uid = own_uid;
    }
    let first = if supervisor.kind == Kind::Launchd {
        match launchd_status(&mut supervisor, target, ctx, deadline) {
            Ok(status) => Ok(status),
            Err(Refused::Unanswered(why)) => Err(why),
            Err(Refused::NotRestartable(why)) => {
                return Resolution {
                    unverified: Some(format!(
                        "{} ({}) is not restarted: {why}; nothing is restarted this run, \
                         neither through launchd nor by a builtin restart that could fight \
                         it; if the server is not that job, set restart.method = \"builtin\"",
                        supervisor.describe(),
                        supervisor.evidence
                    )),
                    ..plain(Method::None)
                };
            }
        }
    } else {
        query(&supervisor, deadline)
    };
    let job = wait_while_starting(&supervisor, first, deadline);
    if let Some(target) = target {
        match &claim {
            Claim::Vouched | Claim::SameUser => {}
            // A process merely inside a unit's cgroup is not proof that systemd runs
            // it: a server started by a cron job sits in cron.service. The cgroup is
            // believed only when the unit's MainPID is the target or its ancestor.
            Claim::Cgroup => match runs_target(&job, target) {
                Ok(()) => supervisor.trust = Trust::Confirmed,
                // `activating (auto-restart)` has no MainPID yet: unconfirmed, but a
                // builtin restart would race systemd's own; the run waits instead.
                Err(_) if matches!(&job, Ok(status) if status.starting) => {}
                Err(_) if cfg.method == Method::Auto => return plain(Method::Builtin),
                Err(_) => supervisor.trust = Trust::Configured,
            },
            Claim::Ancestor(ancestor) => match runs_target(&job, target) {
                Ok(()) => supervisor.trust = Trust::Confirmed,
                Err(_) if target.uid == Some(own_uid) => supervisor.trust = Trust::SameUser,
                Err(runs) => {
                    return Resolution {
                        unverified: Some(refusal(
                            &supervisor,
                            target,
                            own_uid,
                            &format!("its ancestor {ancestor} {runs}"),
                        )),
                        ..plain(Method::None)
                    };
                }
            },
        }
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
        ..plain(Method::None)
    }
}

/// What stands behind a detected identity before the supervisor is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Claim {
    /// Configured, or remembered from a run that vouched for it.
    Vouched,
    /// systemd's unit from the cgroup, to be confirmed by its MainPID.
    Cgroup,
    /// The supervisor's process (named here) is the target's ancestor, holding the
    /// socket the target names; to be confirmed by the job's PID.
    Ancestor(String),
    /// Nothing outside the target confirms it, but the target is the watchdog's user.
    SameUser,
}

/// Checks what can be checked without asking the supervisor anything. `Err` is the
/// operator's message when the claim is refused.
fn precheck(
    supervisor: &Supervisor,
    clues: &Clues,
    target: &ProcessInfo,
    own_uid: u32,
) -> Result<Claim, String> {
    let same_user = target.uid == Some(own_uid);
    let unconfirmed = |why: String| {
        if same_user {
            Ok(Claim::SameUser)
        } else {
            Err(refusal(supervisor, target, own_uid, &why))
        }
    };
    match supervisor.kind {
        Kind::Systemd => Ok(Claim::Cgroup),
        // runsv_dir is the cwd of a runsv ancestor: found by ancestry only.
        Kind::Runit => Ok(Claim::Ancestor("runsv".into())),
        // launchd is PID 1 on macOS: being its descendant proves nothing.
        Kind::Launchd => unconfirmed(
            "launchd is every process's ancestor, so nothing outside the process confirms it"
                .into(),
        ),
        Kind::Supervisor => {
            let Some(pid) = clues.supervisord else {
                return unconfirmed("no supervisord is its ancestor".into());
            };
            match &supervisor.server_url {
                Some(url) => match holds_server_socket(pid, url) {
                    Ok(()) => Ok(Claim::Ancestor(format!("supervisord PID {pid}"))),
                    Err(why) => unconfirmed(format!(
                        "its ancestor supervisord PID {pid} {why}, SUPERVISOR_SERVER_URL={url}"
                    )),
                },
                None => Ok(Claim::Ancestor(format!("supervisord PID {pid}"))),
            }
        }
    }
}

/// Why a claimed identity is not used, in the operator's words.
fn refusal(supervisor: &Supervisor, target: &ProcessInfo, own_uid: u32, why: &str) -> String {
    let uid = target
        .uid
        .map_or_else(|| "an unknown uid".to_string(), |u| format!("uid {u}"));
    format!(
        "PID {} claims {} ({}) but {why}; it runs as {uid}, not as the watchdog's uid \
         {own_uid}, so its word is not taken: nothing is restarted through that supervisor, \
         nor by a builtin restart that could fight a real one; if it is the server, set \
         restart.method and restart.{} to name the job (or restart.method = \"builtin\")",
        target.pid(),
        supervisor.describe(),
        supervisor.evidence,
        config_key(supervisor.kind)
    )
}

/// Why a remembered job is not started.
fn forgotten(supervisor: &Supervisor, own_uid: u32) -> String {
    let why = if supervisor.trust == Trust::Unverified {
        "nothing confirmed it when it was recorded".to_string()
    } else {
        format!(
            "it was known only by its process's word, as uid {}, and the watchdog runs as \
             uid {own_uid}",
            supervisor.uid
        )
    };
    format!(
        "the history remembers {}, but {why}: it is not used; set restart.method and \
         restart.{} to start it while the server is down",
        supervisor.describe(),
        config_key(supervisor.kind)
    )
}

/// Whether the supervisor says it runs the target (or an ancestor of it) as the job;
/// `Err` says what it runs instead.
fn runs_target(job: &Result<JobStatus, String>, target: &ProcessInfo) -> Result<(), String> {
    match job {
        Ok(status) => match status.pid {
            Some(pid) if is_self_or_ancestor(pid, target) => Ok(()),
            Some(pid) => Err(format!(
                "runs that job as PID {pid}, not as it or an ancestor"
            )),
            None => Err(format!(
                "runs nothing for that job (state {})",
                status.state
            )),
        },
        Err(e) => Err(format!("could not be asked about that job: {e}")),
    }
}

/// Whether supervisord `pid` holds the control socket `url` names: `unix://PATH` (it
/// binds `PATH.<its PID>` and renames it to PATH, and the kernel keeps the bound name)
/// or `http://HOST:PORT` (a listening TCP socket on PORT, and HOST this host: a
/// loopback or wildcard address, `localhost`, or the address the socket is bound to;
/// with another host the port would prove nothing, and supervisorctl would send its
/// config's credentials there). `Err` says what it lacks.
fn holds_server_socket(pid: u32, url: &str) -> Result<(), String> {
    enum Want {
        Unix(String),
        Tcp(String, u16),
    }
    let want = if let Some(path) = url.strip_prefix("unix://") {
        Want::Unix(path.to_string())
    } else if let Some(rest) = url.strip_prefix("http://") {
        let authority = rest.split('/').next().unwrap_or("");
        if authority.contains('@') {
            return Err("is not asked through a URL with user information in it".into());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(':') || host.starts_with('[') => {
                (host, port.parse().ok())
            }
            _ => (authority, Some(80)),
        };
        let Some(port) = port else {
            return Err("is not asked through a URL with a port number".into());
        };
        Want::Tcp(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
        )
    } else {
        return Err("is not asked through a URL that is neither unix:// nor http://".into());
    };
    let fds = os::list_fds(pid).map_err(|e| format!("cannot be read ({e})"))?;
    let by_inode = os::socket_descriptions(pid).unwrap_or_default();
    let held = fds.iter().filter_map(|fd| {
        let text = os::socket_text(&fd.link)?;
        match os::socket_inode(&fd.link) {
            Some(inode) => by_inode.get(&inode).map(String::as_str),
            None => Some(text),
        }
    });
    let matches = |description: &str| match &want {
        Want::Unix(path) => description.strip_prefix("unix ").is_some_and(|bound| {
            bound == path || bound.strip_prefix(path.as_str()) == Some(&format!(".{pid}"))
        }),
        Want::Tcp(host, port) => {
            description.starts_with("tcp")
                && description.ends_with(" LISTEN")
                && description
                    .split_whitespace()
                    .nth(1)
                    .and_then(|local| local.rsplit_once(':'))
                    .is_some_and(|(bound, p)| {
                        p.parse::<u16>().ok() == Some(*port) && names_this_host(host, bound)
                    })
        }
    };
    if held.into_iter().any(matches) {
        Ok(())
    } else {
        Err("holds no such socket".into())
    }
}

/// Whether `host` (from a URL, brackets removed) reaches this host's socket bound to
/// `bound` (`127.0.0.1`, `[::1]`, `0.0.0.0`).
fn names_this_host(host: &str, bound: &str) -> bool {
    let bound = bound.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host == bound
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}

/// Why a launchd job is not used.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refused {
    /// No domain answered for it: the status is unknown (reported as the job's error).
    Unanswered(String),
    /// launchd answered, but the job is none the watchdog may `kickstart -k`.
    NotRestartable(String),
}

/// The target and its ancestors below PID 1, nearest first, as the kernel links them.
fn lineage(target: &ProcessInfo) -> Vec<u32> {
    let mut chain = vec![target.pid()];
    let mut pid = target.ppid;
    while pid > 1 && chain.len() < os::MAX_TREE_DEPTH {
        chain.push(pid);
        match os::parent_pid(pid) {
            Ok(parent) => pid = parent,
            Err(_) => break,
        }
    }
    chain
}

/// Whether `pid` is the watchdog itself or one of its ancestors (the job that runs the
/// watchdog, a shell it was started from): `kickstart -k` of its job would kill the
/// watchdog mid-run.
fn is_own_lineage(pid: u32, ctx: &Context) -> bool {
    pid == ctx.own_pid || os::descends_from(ctx.own_pid, pid)
}

/// The launchd job whose process is the target or its nearest ancestor, as launchd's
/// own listings (`launchctl print <domain>`, the `services` block) pair PIDs and labels,
/// in the domains that can hold a job of the target's user.
///
/// Why its word is `Trust::Confirmed` (docs/SECURITY.md): the listing is launchd's (it
/// runs as root), and the PID in it is the one launchd started, not anything the target
/// says. The domains asked are the target's own user's (`gui/<uid>`, `user/<uid>`, into
/// which only that user or root can load a job) and `system` (root's plists, including
/// daemons with `UserName`): a `kickstart -k` of such a job restarts what its own user,
/// or root, wrote, as launchd would after a crash. A job found nearer than any other
/// that may not be restarted (an IDE terminal's one-shot job, an app, the watchdog's
/// own job) ends the search: the server belongs to it, not to a job further up.
fn find_by_pid(target: &ProcessInfo, ctx: &Context, deadline: Deadline) -> Option<Supervisor> {
    let uid = target.uid?;
    let chain = lineage(target);
    let mut listings = Vec::new();
    for domain in launchd::candidate_domains(uid) {
        if deadline.passed() {
            break;
        }
        let Ok(done) = (ctx.launchctl)(&["print".into(), domain.clone()], deadline) else {
            continue;
        };
        // An ambiguous or cut listing is no evidence either way.
        if let Ok(listing) = launchd::parse_domain_services(&done.stdout) {
            listings.push((domain, listing));
        }
    }
    if listings.is_empty() {
        return None;
    }
    for &pid in &chain {
        if is_own_lineage(pid, ctx) {
            return None;
        }
        // launchd starts a job's process as the job's user, and all it starts keeps that
        // user: an ancestor of another user (read, or unreadable) is a daemon that
        // started the server on someone's behalf (cron for a crontab, sshd for a
        // login, `sudo`), not the server's job. `kickstart -k system/com.vix.cron`
        // would restart cron, every run, and never the server.
        if pid != target.pid() && os::process_info(pid).ok().and_then(|p| p.uid) != Some(uid) {
            return None;
        }
        let mut found: Option<(&String, &str)> = None;
        for (domain, listing) in &listings {
            match launchd::label_of(listing, pid) {
                Ok(Some(label)) if found.is_none() => found = Some((domain, label)),
                // The same job seen from two domains (whether `user/<uid>` lists what
                // `gui/<uid>` runs while the user is logged in is not known without a
                // Mac): the first domain asked, the more specific one, is kept.
                Ok(Some(label)) if found.is_some_and(|(_, first)| first == label) => {}
                // Two jobs claiming one PID, or a PID listed twice: not believed.
                Ok(Some(_)) | Err(_) => return None,
                Ok(None) => {}
            }
        }
        let Some((domain, label)) = found else {
            continue;
        };
        if !launchd::is_launchd_label(label) || Some(label) == ctx.own_label.as_deref() {
            return None;
        }
        let whose = if pid == target.pid() {
            "its PID".to_string()
        } else {
            format!("its ancestor PID {pid}")
        };
        return Some(Supervisor {
            kind: Kind::Launchd,
            name: label.to_string(),
            user: false,
            uid,
            server_url: None,
            evidence: format!("launchd lists {whose} as a job of {domain}"),
            trust: Trust::Confirmed,
            domain: Some(domain.clone()),
        });
    }
    None
}

/// Asks launchd about the job in its domain, or, with none known yet, in each domain
/// that can hold it (see [`launchd::candidate_domains`]) until one answers: the one
/// whose job runs the target or an ancestor of it, else the first that knows the
/// label. Records that domain in `supervisor`, so that status and `kickstart` address
/// the same job, then checks the job may be restarted at all ([`restartable`]).
fn launchd_status(
    supervisor: &mut Supervisor,
    target: Option<&ProcessInfo>,
    ctx: &Context,
    deadline: Deadline,
) -> Result<JobStatus, Refused> {
    let domains = match &supervisor.domain {
        Some(domain) => vec![domain.clone()],
        None => launchd::candidate_domains(supervisor.uid),
    };
    let mut answered: Option<(String, launchd::LaunchdJob)> = None;
    let mut failures = Vec::new();
    for domain in domains {
        if deadline.passed() {
            failures.push("the run's deadline passed".to_string());
            break;
        }
        let service = launchd::domain_target(&domain, &supervisor.name);
        let argv = ["print".to_string(), service.clone()];
        let done = match (ctx.launchctl)(&argv, deadline) {
            Ok(done) => done,
            Err(e) => {
                failures.push(format!("`launchctl print {service}`: {e}"));
                continue;
            }
        };
        match launchd::parse_print(&done.stdout) {
            Ok(job) => {
                let runs_target =
                    target.is_some_and(|t| job.pid.is_some_and(|pid| is_self_or_ancestor(pid, t)));
                if runs_target || target.is_none() {
                    answered = Some((domain, job));
                    break;
                }
                answered.get_or_insert((domain, job));
            }
            Err(why) => failures.push(format!(
                "`launchctl print {service}` ({}): {why}; it said: {}",
                done.status,
                first_line(&done.text())
            )),
        }
    }
    let Some((domain, job)) = answered else {
        return Err(Refused::Unanswered(failures.join("; ")));
    };
    supervisor.domain = Some(domain);
    restartable(supervisor, &job, target, ctx).map_err(Refused::NotRestartable)?;
    Ok(launchd_job_status(job))
}

/// Whether launchd's job may be `kickstart -k`ed for this target; `Err` says why not.
/// It must be a job loaded from a plist (a `path`, and the type of a LaunchAgent or a
/// LaunchDaemon), not one of launchd's made-up one-shot jobs, not the watchdog's own
/// job, and its process must not be the watchdog or an ancestor of it. Unless the
/// operator named it, it must also run the target (its PID is the target or an
/// ancestor) or the target's program (the same arguments: an orphan of the job).
fn restartable(
    supervisor: &Supervisor,
    job: &launchd::LaunchdJob,
    target: Option<&ProcessInfo>,
    ctx: &Context,
) -> Result<(), String> {
    if launchd::is_oneshot(&supervisor.name) {
        return Err(
            "it is launchd's one-shot job for a process started outside any plist (a \
             terminal inside an IDE, say): kickstart -k would restart that, not the server"
                .into(),
        );
    }
    if Some(supervisor.name.as_str()) == ctx.own_label.as_deref() {
        return Err("it is the watchdog's own job".into());
    }
    let Some(path) = &job.path else {
        return Err("launchctl print shows no plist path for it".into());
    };
    // /System is macOS's own read-only volume (SIP): no server's plist is there, but
    // the jobs of root's cron (com.vix.cron) and sshd (com.openssh.sshd) are, and a
    // server started from a crontab or a login descends from them. `kickstart -k` of
    // cron would restart cron, not the server.
    if path.starts_with("/System/") {
        return Err(format!(
            "its plist {path} is one of macOS's own jobs, which runs no server"
        ));
    }
    match job.kind.as_deref() {
        Some("LaunchAgent" | "LaunchDaemon") => {}
        Some(other) => {
            return Err(format!(
                "its type is {other}, not a LaunchAgent or a LaunchDaemon"
            ));
        }
        None => return Err("launchctl print shows no type for it".into()),
    }
    if let Some(pid) = job.pid
        && is_own_lineage(pid, ctx)
    {
        return Err(format!(
            "its PID {pid} is the watchdog or an ancestor of it: kickstart -k would kill \
             the watchdog"
        ));
    }
    let Some(target) = target else {
        return Ok(());
    };
    if supervisor.trust == Trust::Configured
        || job.pid.is_some_and(|pid| is_self_or_ancestor(pid, target))
        || runs_program_of(job, target)
    {
        return Ok(());
    }
    Err(format!(
        "launchd runs {} for it, neither PID {} nor an ancestor, and its program is not \
         the one PID {} runs",
        job.pid
            .map_or_else(|| "nothing".to_string(), |p| format!("PID {p}")),
        target.pid(),
        target.pid()
    ))
}

/// Whether the job's program and arguments are the target's command line.
fn runs_program_of(job: &launchd::LaunchdJob, target: &ProcessInfo) -> bool {
    if target.argv.is_empty() {
        return false;
    }
    if job.arguments.is_empty() {
        return job.program.as_deref() == target.argv.first().map(String::as_str)
            && target.argv.len() == 1;
    }
    job.arguments == target.argv
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
/// PID or a descendant of it, or the supervisor is still starting the job (its new
/// process may not be the one named yet, or not named at all).
fn orphan_of(job: &JobStatus, target: &ProcessInfo) -> Option<Orphan> {
    if job.starting {
        return None;
    }
    match job.pid {
        Some(pid) if is_self_or_ancestor(pid, target) => None,
        job_pid => Some(Orphan {
            holder: target.pid(),
            job_pid,
        }),
    }
}

/// The target's own reading gives its parent (no second read of it).
fn is_self_or_ancestor(pid: u32, target: &ProcessInfo) -> bool {
    pid == target.pid() || os::descends_from(target.ppid, pid)
}

#[cfg(test)]
mod tests;
