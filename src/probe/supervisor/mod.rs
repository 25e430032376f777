//! Who supervises the server (docs/DESIGN.md, "Supervisors") and what that supervisor says
//! about its job. Detection reads the target itself — its environment, its ancestors,
//! its cgroup — and a status query runs the supervisor's own read-only command,
//! bounded. Nothing here restarts anything: that is `act::supervisor`, which runs the
//! command line [`Supervisor::restart_argv`] returns.
//!
//! Each supervisor is one file that owns it (`launchd/`, `systemd.rs`, `supervisord.rs`,
//! `runit.rs`): what in the target shows it, what outside the target backs that claim,
//! its status and restart command lines and how its answer reads, the config key that
//! names its job, and its hints. They implement [`Behaviour`], and [`Kind::behaviour`]
//! is the one place that picks the file for a kind. What is common stays here: [`Trust`],
//! resolution, the checks against forged claims, orphans.
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

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

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
    /// Every supervisor, in the order auto-detection asks them (docs/DESIGN.md,
    /// "Supervisors"): the nearest first, systemd last (supervisord and runsvdir often
    /// run inside a systemd unit themselves; restarting that unit would restart every
    /// program they run).
    pub const ALL: [Kind; 4] = [Kind::Launchd, Kind::Supervisor, Kind::Runit, Kind::Systemd];

    /// The file that owns this supervisor: the one `match` on the kind.
    fn behaviour(self) -> &'static dyn Behaviour {
        match self {
            Kind::Launchd => &launchd::Launchd,
            Kind::Systemd => &systemd::Systemd,
            Kind::Supervisor => &supervisord::Supervisord,
            Kind::Runit => &runit::Runit,
        }
    }

    pub fn method(self) -> Method {
        self.behaviour().method()
    }

    pub fn of(method: Method) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.method() == method)
    }

    /// The `restart.*` key that names this supervisor's job.
    pub fn config_key(self) -> &'static str {
        self.behaviour().config_key()
    }

    pub fn as_str(self) -> &'static str {
        self.method().as_str()
    }
}

/// What one supervisor's own file knows of it. Each file has a unit struct that
/// implements it (`launchd::Launchd`, `systemd::Systemd`, `supervisord::Supervisord`,
/// `runit::Runit`), and [`Kind::behaviour`] picks it.
///
/// A trait rather than a `match` on the kind in each operation: the matches are what
/// spread one supervisor over this module; here the compiler asks a new supervisor's
/// file for every operation, the defaults cover what only some supervisors need, and
/// this module calls the operations without naming any supervisor. A fifth supervisor is
/// its file, a `mod` line, its `Kind` (a variant, its arm in [`Kind::behaviour`] and
/// its place in [`Kind::ALL`]), and its `restart.method` in src/config.rs.
trait Behaviour {
    /// The `restart.method` that chooses it.
    fn method(&self) -> Method;

    /// The `restart.*` key that names its job (`label`, `unit`, `program`,
    /// `service_dir`): what messages tell the operator to set.
    fn config_key(&self) -> &'static str;

    /// The job the operator named under [`Behaviour::config_key`].
    fn configured_name(&self, cfg: &RestartConfig) -> Option<String>;

    /// Reads what it looks for around the target (an ancestor, the cgroup) into
    /// `clues`; the environment is read once for all.
    fn gather(&self, _target: &ProcessInfo, _clues: &mut Clues) {}

    /// The job the target's clues name, with the evidence, vouched for by nothing yet.
    /// `own_label` is the watchdog's own launchd label.
    fn detect(&self, clues: &Clues, own_label: Option<&str>) -> Option<Supervisor>;

    /// What outside the target backs a detected claim, before the supervisor is asked
    /// anything (docs/SECURITY.md, "Believing a supervisor"); `Err` says why nothing
    /// does, and [`precheck`] decides what that means for the target's user.
    fn claim(&self, supervisor: &Supervisor, clues: &Clues) -> Result<Claim, String>;

    /// The job in the operator's words: "systemd unit hermes.service".
    fn describe(&self, supervisor: &Supervisor) -> String;

    /// The supervisor's own read-only status command for the job.
    fn status_argv(&self, supervisor: &Supervisor) -> Vec<String>;

    /// The supervisor's own restart command for the job.
    fn restart_argv(&self, supervisor: &Supervisor) -> Vec<String>;

    /// Reads the status command's output; `Err` says why it tells nothing.
    fn parse_status(&self, supervisor: &Supervisor, stdout: &str) -> Result<JobStatus, String>;

    /// Completes a status the status command left short (one more read-only query).
    fn complete_status(
        &self,
        _supervisor: &Supervisor,
        _status: &mut JobStatus,
        _deadline: Deadline,
    ) {
    }

    /// The first status while resolving, which may also settle details of the job (its
    /// launchd domain) or refuse it; by default the status query.
    fn first_status(
        &self,
        supervisor: &mut Supervisor,
        _target: Option<&ProcessInfo>,
        _ctx: &Context,
        deadline: Deadline,
    ) -> Result<JobStatus, Refused> {
        query(supervisor, deadline).map_err(Refused::Unanswered)
    }

    /// Looks for the supervisor's tool beside the running supervisor (what `clues`
    /// read of its process) and keeps it in [`Supervisor::tool`], with what
    /// `own_uid` may run (docs/SECURITY.md); by default the tool is found on PATH.
    fn locate_tool(&self, _supervisor: &mut Supervisor, _clues: &Clues, _own_uid: u32) {}

    /// What the operator can do once the supervisor refused to start the job again
    /// ([`JobStatus::start_limit_hit`]).
    fn reset_hint(&self, _supervisor: &Supervisor) -> Option<String> {
        None
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
    /// Where its command-line tool was found beside the running supervisor, or why the
    /// one there is not used ([`Behaviour::locate_tool`]). Not kept in the history: it
    /// is looked for again beside the supervisor that runs then.
    #[serde(skip)]
    pub tool: ToolPlace,
}

/// The supervisor's command-line tool as found beside the supervisor process itself
/// (docs/SECURITY.md, "Never kill what cannot be started"): cron runs the watchdog
/// with `PATH=/usr/bin:/bin`, and a `supervisorctl` installed by pip or in a virtualenv
/// is not there. Both the precheck (src/probe/restart_path.rs) and the act run this.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolPlace {
    /// The command that starts the tool (`/opt/venv/bin/supervisorctl`, or
    /// `/usr/bin/python3 -m supervisor.supervisorctl`); `None`: the tool's name, found
    /// on the watchdog's PATH.
    pub argv: Option<Vec<String>>,
    /// Why a tool beside the supervisor was not used (another user could replace it).
    pub refused: Option<String>,
}

impl ToolPlace {
    /// The command that starts the tool: the one found beside the running supervisor,
    /// else `name`, for the watchdog's PATH to find.
    fn argv_or(&self, name: &str) -> Vec<String> {
        self.argv.clone().unwrap_or_else(|| vec![name.to_string()])
    }
}

/// `tool VERB JOB`: how `sv`, `supervisorctl` and `systemctl` are asked about, or told
/// to act on, one job.
fn job_argv(mut tool: Vec<String>, verb: &str, job: &str) -> Vec<String> {
    tool.extend([verb.to_string(), job.to_string()]);
    tool
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
    /// When the job's process started, where it could be read: a supervisor that
    /// reports a job running may have started it a moment ago, before it binds its port
    /// (docs/RELIABILITY.md, "What the runs found"; the decision in src/decide.rs,
    /// `young_job`).
    pub job_started: Option<SystemTime>,
}

impl Supervisor {
    /// A job as detection finds it in `clues`, vouched for by nothing yet.
    fn detected(kind: Kind, name: String, clues: &Clues, evidence: &str) -> Supervisor {
        Supervisor {
            kind,
            name,
            user: false,
            uid: clues.uid,
            server_url: None,
            evidence: evidence.to_string(),
            trust: Trust::Unverified,
            domain: None,
            tool: ToolPlace::default(),
        }
    }

    pub fn describe(&self) -> String {
        self.kind.behaviour().describe(self)
    }

    /// The supervisor's own read-only status query for the job.
    pub fn status_argv(&self) -> Vec<String> {
        self.kind.behaviour().status_argv(self)
    }

    /// The supervisor's own restart: it stops the job, starts it, and keeps owning it.
    pub fn restart_argv(&self) -> Vec<String> {
        self.kind.behaviour().restart_argv(self)
    }

    /// The hint for an operator whose supervisor refused to start the job again.
    pub fn reset_hint(&self) -> Option<String> {
        self.kind.behaviour().reset_hint(self)
    }
}

/// Keeps `argv` (which runs `program`, found beside the running supervisor and named
/// `what` in messages) as the supervisor's tool when `own_uid` may run it; when another
/// user could replace it, the evidence and [`ToolPlace::refused`] say why it is not
/// used, and PATH is searched. Nothing is said of a tool that is not there.
fn use_tool_beside(
    supervisor: &mut Supervisor,
    what: &str,
    argv: Vec<String>,
    program: &Path,
    own_uid: u32,
) {
    if !command::is_executable(program) {
        return;
    }
    match trusted_tool(program, own_uid) {
        Ok(()) => supervisor.tool.argv = Some(argv),
        Err(why) => {
            let refused = format!(
                "{what} ({}) is not used: {why}; it is looked for on PATH instead",
                argv.join(" ")
            );
            supervisor.evidence = format!("{}; {refused}", supervisor.evidence);
            supervisor.tool.refused = Some(refused);
        }
    }
}

/// Whether `own_uid` may run `program` (docs/SECURITY.md, "Believing a supervisor"):
/// nobody but root and `own_uid` can replace it, a directory above it, or the
/// interpreter its `#!` line names. `Err` says which file and why.
fn trusted_tool(program: &Path, own_uid: u32) -> Result<(), String> {
    crate::safe_fs::check_trusted_program(program, &[own_uid]).map_err(|e| e.to_string())?;
    if let Some(interpreter) = shebang(program) {
        crate::safe_fs::check_trusted_program(&interpreter, &[own_uid])
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The interpreter a script's `#!` line names, if it names an absolute one.
fn shebang(program: &Path) -> Option<PathBuf> {
    use std::io::Read;
    let mut head = Vec::with_capacity(256);
    // The file a link leads to is the one executed (and the one checked).
    crate::safe_fs::open_regular(&std::fs::canonicalize(program).ok()?)
        .ok()?
        .take(256)
        .read_to_end(&mut head)
        .ok()?;
    let line = head.strip_prefix(b"#!")?;
    let line = String::from_utf8_lossy(line.split(|&b| b == b'\n').next()?).into_owned();
    let interpreter = line.split_whitespace().next()?;
    Path::new(interpreter)
        .is_absolute()
        .then(|| PathBuf::from(interpreter))
}

/// Reads a status command's output.
pub fn parse_status(supervisor: &Supervisor, stdout: &str) -> Result<JobStatus, String> {
    supervisor.kind.behaviour().parse_status(supervisor, stdout)
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
    supervisor
        .kind
        .behaviour()
        .complete_status(supervisor, &mut status, deadline);
    Ok(status)
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
    /// That `runsv`'s PID and the file it executes: where its own `sv` is.
    pub runsv_exe: Option<(u32, PathBuf)>,
    /// The `.service` in the target's cgroup, and whether it is a user unit.
    pub unit: Option<(String, bool)>,
    /// The nearest ancestor whose command line is supervisord's.
    pub supervisord: Option<u32>,
    /// That ancestor's command line: where its own `supervisorctl` is.
    pub supervisord_argv: Vec<String>,
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

/// Reads what the target reveals: its environment here, and what each supervisor looks
/// for in its ancestors and cgroup ([`Behaviour::gather`]).
pub fn gather(target: &ProcessInfo) -> Clues {
    let (env, env_error) = match os::process_environ(target.pid()) {
        Ok(env) => (env, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let mut clues = Clues {
        env,
        env_error,
        uid: target.uid.unwrap_or(0),
        ..Clues::default()
    };
    for kind in Kind::ALL {
        kind.behaviour().gather(target, &mut clues);
    }
    clues
}

/// The nearest supervisor (docs/DESIGN.md, "Supervisors"), asked in the order of
/// [`Kind::ALL`]: launchd, supervisord, runit, and systemd last. A systemd candidate
/// still has to be confirmed by its MainPID (see `resolve`).
pub fn detect(clues: &Clues) -> Option<Supervisor> {
    detect_except(clues, None)
}

/// [`detect`], where an `XPC_SERVICE_NAME` equal to `own_label` (the watchdog's own
/// job's label, which everything the watchdog starts inherits) names no job: the
/// server carrying it is not run by the watchdog's job, whose PID is the watchdog.
fn detect_except(clues: &Clues, own_label: Option<&str>) -> Option<Supervisor> {
    Kind::ALL
        .into_iter()
        .find_map(|kind| kind.behaviour().detect(clues, own_label))
}

/// A job named in the config (`label`, `unit`, `program`, `service_dir`), which wins
/// over what was detected. Of the detected details it keeps what the target cannot
/// forge: systemd's user flag (from the cgroup), and supervisord's server URL only when
/// the supervisord that is the target's ancestor holds that socket, or the target is
/// the watchdog's own user (a double fork's orphan has no supervisord ancestor).
fn configured(kind: Kind, cfg: &RestartConfig, clues: &Clues, own_uid: u32) -> Option<Supervisor> {
    let name = kind.behaviour().configured_name(cfg)?;
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
        tool: ToolPlace::default(),
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
            launchctl: &launchd::ask_launchctl,
        }
    }
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
        launchd::find_by_pid(target, ctx, deadline)
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
                            kind.config_key()
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
    // The tool the status queries and the restart run: the one beside the running
    // supervisor where root may run it, else PATH's.
    let behaviour = supervisor.kind.behaviour();
    behaviour.locate_tool(&mut supervisor, clues, own_uid);
    // The supervisor's first answer; launchd's also checks the job may be restarted at
    // all, and refuses it with the operator's message.
    let first = match behaviour.first_status(&mut supervisor, target, ctx, deadline) {
        Ok(status) => Ok(status),
        Err(Refused::Unanswered(why)) => Err(why),
        Err(Refused::NotRestartable(why)) => {
            return Resolution {
                unverified: Some(why),
                ..plain(Method::None)
            };
        }
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
    let job_started = job
        .as_ref()
        .ok()
        .and_then(|status| status.pid)
        .and_then(|pid| os::process_info(pid).ok())
        .map(|info| info.start_time);
    Resolution {
        method: supervisor.kind.method(),
        supervision: Some(Supervision {
            supervisor,
            job,
            orphan,
            job_started,
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
    match supervisor.kind.behaviour().claim(supervisor, clues) {
        Ok(claim) => Ok(claim),
        // Nothing outside the target confirms it: its word is taken only from the
        // watchdog's own user, who could run the supervisor's command anyway.
        Err(_) if target.uid == Some(own_uid) => Ok(Claim::SameUser),
        Err(why) => Err(refusal(supervisor, target, own_uid, &why)),
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
        supervisor.kind.config_key()
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
        supervisor.kind.config_key()
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

/// Why the supervisor's first answer, while resolving, is not used.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refused {
    /// The supervisor could not be asked, or gave no answer that reads: the status is
    /// unknown (reported as the job's error).
    Unanswered(String),
    /// It answered, but the job is none the watchdog may restart (launchd's checks
    /// before a `kickstart -k`): the operator's message; nothing is restarted this run.
    NotRestartable(String),
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
