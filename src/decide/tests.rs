//! Table tests: one row per rule of docs/DESIGN.md, "Decision rules".

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::*;
use crate::config::{self, FdPathRule, FileAction};
use crate::probe::discover::{Discovery, Holder, Target};
use crate::probe::fds::{FdReading, KindCounts, PatternCount};
use crate::probe::files::FileReading;
use crate::probe::health::{Attempt, HealthResult};
use crate::probe::os::{FdLimit, Identity, PortOwner, ProcState, ProcessInfo};
use crate::probe::restart_path::RestartPath;
use crate::probe::supervisor::{
    JobStatus, Kind, Orphan, Resolution, Supervision, Supervisor, Trust,
};
use crate::trend::Trend;

const NOW_S: u64 = 1_800_000_000;
const OWN_UID: u32 = 1000;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_S)
}

fn server(age: Duration) -> Target {
    Target {
        info: ProcessInfo {
            identity: Identity {
                pid: 4242,
                start_key: 77,
            },
            ppid: 1,
            uid: Some(OWN_UID),
            gid: Some(OWN_UID),
            start_time: now() - age,
            argv: vec!["python3".into(), "server.py".into()],
            cwd: Some(PathBuf::from("/srv/hermes")),
            rss_bytes: Some(100 << 20),
            state: ProcState::Running,
        },
        evidence: vec!["port"],
    }
}

fn healthy() -> HealthResult {
    HealthResult {
        ok: true,
        status: Some(200),
        latency_ms: Some(3),
        error: None,
        attempts: vec![Attempt {
            ok: true,
            status: Some(200),
            latency_ms: Some(3),
            error: None,
            tls_refused: false,
        }],
        json: None,
        tls_refused: false,
    }
}

fn hanging() -> HealthResult {
    let failed = Attempt {
        ok: false,
        status: None,
        latency_ms: None,
        error: Some("timed out after 5s".into()),
        tls_refused: false,
    };
    HealthResult {
        ok: false,
        status: None,
        latency_ms: None,
        error: Some("timed out after 5s".into()),
        attempts: vec![failed.clone(), failed.clone(), failed],
        json: None,
        tls_refused: false,
    }
}

/// Every attempt reached the server and its certificate was not trusted.
fn untrusted_certificate() -> HealthResult {
    let why = "certificate not trusted: set health.ca_file or insecure_tls";
    let failed = Attempt {
        ok: false,
        status: None,
        latency_ms: None,
        error: Some(why.into()),
        tls_refused: true,
    };
    HealthResult {
        ok: false,
        status: None,
        latency_ms: None,
        error: Some(why.into()),
        attempts: vec![failed.clone(), failed],
        json: None,
        tls_refused: true,
    }
}

/// A soft limit low enough that `max_percent` is the limit that applies.
const SMALL_LIMIT: FdLimit = FdLimit {
    soft: Some(256),
    hard: Some(1024),
};

/// `total` FDs (10 on state.db) under `limit` (`None`: unknown, as on macOS).
fn fds_with_limit(total: u64, limit: Option<FdLimit>) -> FdReading {
    FdReading {
        limit,
        ..fds(total, 10)
    }
}

fn fds(total: u64, state_db: u64) -> FdReading {
    FdReading {
        total,
        limit: Some(FdLimit {
            soft: Some(4096),
            hard: None,
        }),
        by_kind: KindCounts {
            file: total,
            ..KindCounts::default()
        },
        top_paths: vec![],
        patterns: vec![PatternCount {
            pattern: "state.db".into(),
            count: state_db,
            max: 200,
        }],
    }
}

/// A healthy, hour-old server with 100 FDs; each row changes one thing.
fn observation() -> Observation {
    Observation {
        discovery: Discovery {
            target: Some(server(Duration::from_secs(3600))),
            findings: vec![],
            port_owner: None,
            port_holders: vec![],
        },
        health: healthy(),
        fds: Some(Ok(fds(100, 30))),
        files: vec![],
        restart: Resolution::plain(Method::Builtin),
        readiness: Some(Ok(RestartPath::Tool)),
        at: now(),
    }
}

/// The way back was checked and there is none: the message says what to set.
fn cannot_restart(o: &mut Observation) {
    o.readiness = Some(Err(
        "PID 4242's argv[0] `hermes: webui` is a process title, not a program on its PATH: \
         set restart.start_command"
            .into(),
    ));
}

/// The target runs under supervisord; `orphan` makes it the double fork's leftover.
fn supervised(o: &mut Observation, orphan: bool) {
    let holder = o.discovery.target.as_ref().map_or(0, |t| t.info.pid());
    o.restart = Resolution {
        supervision: Some(Supervision {
            supervisor: Supervisor {
                kind: Kind::Supervisor,
                name: "hermes:web".into(),
                user: false,
                uid: OWN_UID,
                server_url: None,
                evidence: "SUPERVISOR_PROCESS_NAME".into(),
                trust: Trust::Confirmed,
                domain: None,
                tool: Default::default(),
            },
            job: Ok(JobStatus {
                pid: if orphan { Some(5000) } else { Some(holder) },
                state: "RUNNING".into(),
                start_limit_hit: false,
                program: None,
                starting: false,
            }),
            orphan: orphan.then_some(Orphan {
                holder,
                job_pid: Some(5000),
            }),
            job_started: None,
        }),
        ..Resolution::plain(Method::Supervisor)
    };
}

/// The supervisor's job process started `ago` before the observation.
fn job_started(o: &mut Observation, ago: Duration) {
    if let Some(supervision) = o.restart.supervision.as_mut() {
        supervision.job_started = now().checked_sub(ago);
    }
}

/// The supervisor reports its job starting (STARTING, `pid` giving `pid`).
fn starting(o: &mut Observation, pid: Option<u32>) {
    if let Some(Ok(job)) = o.restart.supervision.as_mut().map(|s| s.job.as_mut()) {
        job.starting = true;
        job.state = "STARTING".into();
        job.pid = pid;
    }
}

fn policy() -> Config {
    let mut cfg = config::defaults(Some(std::path::Path::new("/home/me")));
    cfg.fds.paths = vec![FdPathRule {
        pattern: "state.db".into(),
        max: 200,
    }];
    cfg
}

fn context() -> Context {
    Context {
        now: now(),
        restarts_in_window: 0,
        trend: None,
        deferred_since: None,
        dry_run: false,
        own_uid: OWN_UID,
    }
}

/// The plan, reduced to what a row asserts.
#[derive(Debug, PartialEq)]
enum Expect {
    Nothing,
    Restart,
    Start,
    KillOrphan,
    Deferred,
    Suppressed(&'static str),
}

fn shape(plan: &Plan) -> Expect {
    match plan {
        Plan::Nothing => Expect::Nothing,
        Plan::Deferred { .. } => Expect::Deferred,
        Plan::Act(a) => match a.kind {
            ActionKind::Restart => Expect::Restart,
            ActionKind::Start => Expect::Start,
            ActionKind::KillOrphan => Expect::KillOrphan,
        },
        Plan::Suppressed { why, .. } => Expect::Suppressed(why.key()),
    }
}

type Change = fn(&mut Observation, &mut Config, &mut Context);

struct Row {
    name: &'static str,
    change: Change,
    verdict: Verdict,
    codes: &'static [(ReasonCode, Severity)],
    plan: Expect,
}

use ReasonCode::*;
use Severity::*;

fn no_target(o: &mut Observation) {
    o.discovery.target = None;
    o.fds = None;
}

const ROWS: &[Row] = &[
    Row {
        name: "healthy",
        change: |_, _, _| {},
        verdict: Verdict::Healthy,
        codes: &[],
        plan: Expect::Nothing,
    },
    Row {
        name: "health failed restarts",
        change: |o, _, _| o.health = hanging(),
        verdict: Verdict::Unhealthy,
        codes: &[(HealthFailed, Hard)],
        plan: Expect::Restart,
    },
    Row {
        name: "fds at max restarts",
        change: |o, _, _| o.fds = Some(Ok(fds(1000, 10))),
        verdict: Verdict::Unhealthy,
        codes: &[(FdsOverLimit, Hard)],
        plan: Expect::Restart,
    },
    Row {
        name: "fds one under max only warns",
        change: |o, _, _| o.fds = Some(Ok(fds(999, 10))),
        verdict: Verdict::Warning,
        codes: &[(FdsNearLimit, Soft)],
        plan: Expect::Nothing,
    },
    Row {
        name: "fds under warn share is healthy",
        change: |o, _, _| o.fds = Some(Ok(fds(749, 10))),
        verdict: Verdict::Healthy,
        codes: &[],
        plan: Expect::Nothing,
    },
    Row {
        name: "fds over max_percent of a small soft limit restarts",
        change: |o, _, _| o.fds = Some(Ok(fds_with_limit(240, Some(SMALL_LIMIT)))),
        verdict: Verdict::Unhealthy,
        codes: &[(FdsOverLimit, Hard)],
        plan: Expect::Restart,
    },
    Row {
        name: "warn share applies to the percent limit",
        change: |o, _, _| o.fds = Some(Ok(fds_with_limit(180, Some(SMALL_LIMIT)))),
        verdict: Verdict::Warning,
        codes: &[(FdsNearLimit, Soft)],
        plan: Expect::Nothing,
    },
    Row {
        name: "unknown limit (macOS) uses max only",
        change: |o, _, _| o.fds = Some(Ok(fds_with_limit(900, None))),
        verdict: Verdict::Warning,
        codes: &[(FdsNearLimit, Soft)],
        plan: Expect::Nothing,
    },
    Row {
        name: "state.db over its pattern max restarts",
        change: |o, _, _| o.fds = Some(Ok(fds(400, 201))),
        verdict: Verdict::Unhealthy,
        codes: &[(FdPathOverLimit, Hard)],
        plan: Expect::Restart,
    },
    Row {
        name: "state.db at its pattern max is fine",
        change: |o, _, _| o.fds = Some(Ok(fds(400, 200))),
        verdict: Verdict::Healthy,
        codes: &[],
        plan: Expect::Nothing,
    },
    Row {
        name: "unreadable fds warn",
        change: |o, _, _| o.fds = Some(Err("permission denied".into())),
        verdict: Verdict::Warning,
        codes: &[(FdsUnreadable, Soft)],
        plan: Expect::Nothing,
    },
    Row {
        name: "rss over max restarts",
        change: |_, c, _| c.memory.max_rss = Some(50 << 20),
        verdict: Verdict::Unhealthy,
        codes: &[(RssOverLimit, Hard)],
        plan: Expect::Restart,
    },
    Row {
        name: "file over size with warn",
        change: |o, _, _| o.files = vec![file(2000, FileAction::Warn)],
        verdict: Verdict::Warning,
        codes: &[(FileOverSize, Soft)],
        plan: Expect::Nothing,
    },
    Row {
        name: "file over size with restart",
        change: |o, _, _| o.files = vec![file(2000, FileAction::Restart)],
        verdict: Verdict::Unhealthy,
        codes: &[(FileOverSize, Hard)],
        plan: Expect::Restart,
    },
    Row {
        name: "missing file is no reading",
        change: |o, _, _| {
            let mut f = file(0, FileAction::Restart);
            f.size = None;
            o.files = vec![f];
        },
        verdict: Verdict::Healthy,
        codes: &[],
        plan: Expect::Nothing,
    },
    Row {
        name: "stale pidfile is a warning and the real target is still acted on",
        change: |o, _, _| {
            o.discovery.findings = vec![Finding::StalePidfile {
                path: "/run/x.pid".into(),
                pid: Some(7),
                why: "PID 7 is not running".into(),
            }];
            o.health = hanging();
        },
        verdict: Verdict::Unhealthy,
        codes: &[(StalePidfile, Soft), (HealthFailed, Hard)],
        plan: Expect::Restart,
    },
    Row {
        name: "stale pidfile alone exits healthy-with-warning",
        change: |o, _, _| {
            o.discovery.findings = vec![Finding::StalePidfile {
                path: "/run/x.pid".into(),
                pid: None,
                why: "does not contain a PID".into(),
            }];
        },
        verdict: Verdict::Warning,
        codes: &[(StalePidfile, Soft)],
        plan: Expect::Nothing,
    },
    Row {
        name: "an untrusted pidfile is a warning of its own and the port holder is still the target",
        change: |o, _, _| {
            o.discovery.findings = vec![untrusted_pidfile()];
            o.health = hanging();
        },
        verdict: Verdict::Unhealthy,
        codes: &[(UntrustedPidfile, Soft), (HealthFailed, Hard)],
        plan: Expect::Restart,
    },
    Row {
        name: "an untrusted pidfile and a free port: nothing to restart, nothing to start",
        change: |o, _, _| {
            no_target(o);
            o.discovery.findings = vec![untrusted_pidfile()];
            o.discovery.port_owner = Some(PortOwner::Free);
            o.health = hanging();
        },
        verdict: Verdict::Unhealthy,
        codes: &[(UntrustedPidfile, Soft), (NoProcess, Hard)],
        plan: Expect::Suppressed("nothing_to_start"),
    },
    Row {
        name: "a match that does not hold the port is no target: nothing to start",
        change: |o, _, _| {
            no_target(o);
            o.discovery.findings = vec![match_without_port()];
            o.health = hanging();
        },
        verdict: Verdict::Unhealthy,
        codes: &[(NoProcess, Hard)],
        plan: Expect::Suppressed("nothing_to_start"),
    },
    Row {
        name: "a match that does not hold the port: a start command starts a new server",
        change: |o, c, _| {
            no_target(o);
            o.discovery.findings = vec![match_without_port()];
            o.health = hanging();
            c.restart.start_command = Some("./start.sh".into());
        },
        verdict: Verdict::Unhealthy,
        codes: &[(NoProcess, Hard)],
        plan: Expect::Start,
    },
    Row {
        name: "several port holders that are not one tree never act",
        change: |o, c, _| {
            no_target(o);
            o.discovery.findings = vec![several_holders()];
            o.health = hanging();
            c.restart.start_command = Some("./start.sh".into());
        },
        verdict: Verdict::Unhealthy,
        codes: &[(TargetUnclear, Soft), (NoProcess, Hard)],
        plan: Expect::Suppressed("target_unclear"),
    },
    Row {
        name: "disagreeing sources never act",
        change: |o, _, _| {
            o.discovery.target = None;
            o.fds = None;
            o.discovery.findings = vec![Finding::Disagree {
                detail: "pidfile names 7, port held by 8".into(),
            }];
            o.health = hanging();
        },
        verdict: Verdict::Unhealthy,
        codes: &[(TargetUnclear, Soft), (NoProcess, Hard)],
        plan: Expect::Suppressed("target_unclear"),
    },
    Row {
        name: "hidden port holder never acts",
        change: |o, _, _| {
            no_target(o);
            o.discovery.findings = vec![Finding::PortHidden { port: 8787 }];
            o.health = hanging();
        },
        verdict: Verdict::Unhealthy,
        codes: &[(TargetUnclear, Soft), (NoProcess, Hard)],
        plan: Expect::Suppressed("target_unclear"),
    },
    Row {
        name: "no process and no start command: nothing to start",
        change: |o, _, _| {
            no_target(o);
            o.health = hanging();
        },
        verdict: Verdict::Unhealthy,
        codes: &[(NoProcess, Hard)],
        plan: Expect::Suppressed("nothing_to_start"),
    },
    Row {
        name: "no process with a start command starts",
        change: |o, c, _| {
            no_target(o);
            o.health = hanging();
            c.restart.start_command = Some("./start.sh".into());
        },
        verdict: Verdict::Unhealthy,
        codes: &[(NoProcess, Hard)],
        plan: Expect::Start,
    },
    Row {
        name: "no process with method command starts",
        change: |o, _, _| {
            no_target(o);
            o.health = hanging();
            o.restart.method = Method::Command;
        },
        verdict: Verdict::Unhealthy,
        codes: &[(NoProcess, Hard)],
        plan: Expect::Start,
    },
    Row {
        name: "no process but health passes is a warning",
        change: |o, _, _| no_target(o),
        verdict: Verdict::Warning,
        codes: &[(NoProcess, Soft)],
        plan: Expect::Nothing,
    },
    Row {
        name: "a certificate the probe does not trust is not restarted for",
        change: |o, _, _| o.health = untrusted_certificate(),
        verdict: Verdict::Unhealthy,
        codes: &[(HealthFailed, Hard)],
        plan: Expect::Suppressed("tls_refused"),
    },
    Row {
        name: "a refused certificate does not hold back another hard reason",
        change: |o, _, _| {
            o.health = untrusted_certificate();
            o.fds = Some(Ok(fds(1500, 30)));
        },
        verdict: Verdict::Unhealthy,
        codes: &[(HealthFailed, Hard), (FdsOverLimit, Hard)],
        plan: Expect::Restart,
    },
    Row {
        name: "method none never acts",
        change: |o, _, _| {
            o.health = hanging();
            o.restart.method = Method::None;
        },
        verdict: Verdict::Unhealthy,
        codes: &[(HealthFailed, Hard)],
        plan: Expect::Suppressed("method_none"),
    },
    Row {
        name: "young process failing health is in its grace",
        change: |o, _, _| {
            o.discovery.target = Some(server(Duration::from_secs(30)));
            o.health = hanging();
        },
        verdict: Verdict::Unhealthy,
        codes: &[(HealthFailed, Hard)],
        plan: Expect::Suppressed("startup_grace"),
    },
    Row {
        name: "grace does not cover an FD leak",
        change: |o, _, _| {
            o.discovery.target = Some(server(Duration::from_secs(30)));
            o.health = hanging();
            o.fds = Some(Ok(fds(1200, 10)));
        },
        verdict: Verdict::Unhealthy,
        codes: &[(HealthFailed, Hard), (FdsOverLimit, Hard)],
        plan: Expect::Restart,
    },
    Row {
        name: "grace of 0s restarts at once",
        change: |o, c, _| {
            o.discovery.target = Some(server(Duration::from_secs(1)));
            o.health = hanging();
            c.target.startup_grace = Duration::ZERO;
        },
        verdict: Verdict::Unhealthy,
        codes: &[(HealthFailed, Hard)],
        plan: Expect::Restart,
    },
    Row {
        name: "crash-loop guard at max_restarts",
        change: |o, _, x| {
            o.health = hanging();
            x.restarts_in_window = 3;
        },
        verdict: Verdict::Unhealthy,
        codes: &[(HealthFailed, Hard)],
        plan: Expect::Suppressed("crash_loop"),
    },
    Row {
        name: "one under the guard still restarts",
        change: |o, _, x| {
            o.health = hanging();
            x.restarts_in_window = 2;
        },
        verdict: Verdict::Unhealthy,
        codes: &[(HealthFailed, Hard)],
        plan: Expect::Restart,
    },
    Row {
        name: "dry run reports and does nothing",
        change: |o, _, x| {
            o.fds = Some(Ok(fds(1000, 10)));
            x.dry_run = true;
        },
        verdict: Verdict::Unhealthy,
        codes: &[(FdsOverLimit, Hard)],
        plan: Expect::Suppressed("dry_run"),
    },
    Row {
        name: "dry run names the guard that would stop a real run",
        change: |o, _, x| {
            o.health = hanging();
            x.dry_run = true;
            x.restarts_in_window = 5;
        },
        verdict: Verdict::Unhealthy,
        codes: &[(HealthFailed, Hard)],
        plan: Expect::Suppressed("crash_loop"),
    },
    Row {
        name: "dry run of a healthy server does nothing",
        change: |_, _, x| x.dry_run = true,
        verdict: Verdict::Healthy,
        codes: &[],
        plan: Expect::Nothing,
    },
    Row {
        name: "what could not be started again is not killed",
        change: |o, _, _| {
            o.health = hanging();
            cannot_restart(o);
        },
        verdict: Verdict::Unhealthy,
        codes: &[(HealthFailed, Hard)],
        plan: Expect::Suppressed("cannot_restart"),
    },
    Row {
        name: "what could not be started again is not killed for a leak either",
        change: |o, _, _| {
            o.fds = Some(Ok(fds(1000, 10)));
            cannot_restart(o);
        },
        verdict: Verdict::Unhealthy,
        codes: &[(FdsOverLimit, Hard)],
        plan: Expect::Suppressed("cannot_restart"),
    },
    Row {
        name: "a dry run names the missing way back",
        change: |o, _, x| {
            o.health = hanging();
            cannot_restart(o);
            x.dry_run = true;
        },
        verdict: Verdict::Unhealthy,
        codes: &[(HealthFailed, Hard)],
        plan: Expect::Suppressed("cannot_restart"),
    },
    Row {
        name: "no way back is no concern while healthy",
        change: |o, _, _| cannot_restart(o),
        verdict: Verdict::Healthy,
        codes: &[],
        plan: Expect::Nothing,
    },
    Row {
        name: "a start with no way to run start_command is suppressed",
        change: |o, c, _| {
            no_target(o);
            o.health = hanging();
            c.restart.start_command = Some("./run.sh".into());
            o.readiness = Some(Err("/bin/sh is not an executable file here".into()));
        },
        verdict: Verdict::Unhealthy,
        codes: &[(NoProcess, Hard)],
        plan: Expect::Suppressed("cannot_restart"),
    },
    Row {
        name: "a supervisor tool not on PATH suppresses the supervised restart",
        change: |o, _, _| {
            o.health = hanging();
            supervised(o, false);
            o.readiness = Some(Err("`supervisorctl` is not on the watchdog's PATH".into()));
        },
        verdict: Verdict::Unhealthy,
        codes: &[(HealthFailed, Hard)],
        plan: Expect::Suppressed("cannot_restart"),
    },
    Row {
        name: "another user's process is not permitted, whatever its way back",
        change: |o, _, _| {
            o.health = hanging();
            cannot_restart(o);
            if let Some(t) = o.discovery.target.as_mut() {
                t.info.uid = Some(0);
            }
        },
        verdict: Verdict::Unhealthy,
        codes: &[(HealthFailed, Hard)],
        plan: Expect::Suppressed("not_permitted"),
    },
    Row {
        name: "another user's process is not killed by a builtin restart",
        change: |o, _, _| {
            o.health = hanging();
            if let Some(t) = o.discovery.target.as_mut() {
                t.info.uid = Some(0);
            }
        },
        verdict: Verdict::Unhealthy,
        codes: &[(HealthFailed, Hard)],
        plan: Expect::Suppressed("not_permitted"),
    },
    Row {
        name: "root may restart another user's process",
        change: |o, _, x| {
            o.health = hanging();
            x.own_uid = 0;
        },
        verdict: Verdict::Unhealthy,
        codes: &[(HealthFailed, Hard)],
        plan: Expect::Restart,
    },
    Row {
        name: "a supervised leak restarts through the supervisor",
        change: |o, _, _| {
            supervised(o, false);
            o.fds = Some(Ok(fds(1000, 10)));
        },
        verdict: Verdict::Unhealthy,
        codes: &[(FdsOverLimit, Hard)],
        plan: Expect::Restart,
    },
    Row {
        name: "a supervised job that is down is started by its supervisor",
        change: |o, _, _| {
            supervised(o, false);
            no_target(o);
            o.health = hanging();
        },
        verdict: Verdict::Unhealthy,
        codes: &[(NoProcess, Hard)],
        plan: Expect::Start,
    },
    Row {
        name: "a job its supervisor started a moment ago, not yet on the port, gets the startup grace",
        change: |o, _, _| {
            supervised(o, false);
            no_target(o);
            o.health = hanging();
            job_started(o, Duration::from_secs(5));
        },
        verdict: Verdict::Unhealthy,
        codes: &[(NoProcess, Hard)],
        plan: Expect::Suppressed("startup_grace"),
    },
    Row {
        name: "a job running past the startup grace with nothing on the port is started",
        change: |o, _, _| {
            supervised(o, false);
            no_target(o);
            o.health = hanging();
            job_started(o, Duration::from_secs(600));
        },
        verdict: Verdict::Unhealthy,
        codes: &[(NoProcess, Hard)],
        plan: Expect::Start,
    },
    Row {
        name: "a young job does not shield an orphan holding the port",
        change: |o, c, _| {
            supervised(o, true);
            c.target.match_ = Some("server.py".into());
            job_started(o, Duration::from_secs(1));
        },
        verdict: Verdict::Unhealthy,
        codes: &[(OrphanPortHolder, Hard)],
        plan: Expect::KillOrphan,
    },
    Row {
        name: "an orphan on the port is killed even while healthy",
        change: |o, c, _| {
            supervised(o, true);
            c.target.match_ = Some("server.py".into());
        },
        verdict: Verdict::Unhealthy,
        codes: &[(OrphanPortHolder, Hard)],
        plan: Expect::KillOrphan,
    },
    Row {
        name: "an orphan is not killed when kill_orphans is off",
        change: |o, c, _| {
            supervised(o, true);
            c.target.match_ = Some("server.py".into());
            c.restart.kill_orphans = false;
        },
        verdict: Verdict::Unhealthy,
        codes: &[(OrphanPortHolder, Hard)],
        plan: Expect::Suppressed("orphans_not_killed"),
    },
    Row {
        name: "an orphan that does not match target.match is not killed",
        change: |o, c, _| {
            supervised(o, true);
            c.target.match_ = Some("gunicorn".into());
        },
        verdict: Verdict::Unhealthy,
        codes: &[(OrphanPortHolder, Hard)],
        plan: Expect::Suppressed("orphan_unmatched"),
    },
    Row {
        name: "without target.match or a known program an orphan is not killed",
        change: |o, _, _| supervised(o, true),
        verdict: Verdict::Unhealthy,
        codes: &[(OrphanPortHolder, Hard)],
        plan: Expect::Suppressed("orphan_unmatched"),
    },
    Row {
        name: "an orphan of another user's job is not signalled",
        change: |o, c, _| {
            supervised(o, true);
            c.target.match_ = Some("server.py".into());
            if let Some(t) = o.discovery.target.as_mut() {
                t.info.uid = Some(0);
            }
        },
        verdict: Verdict::Unhealthy,
        codes: &[(OrphanPortHolder, Hard)],
        plan: Expect::Suppressed("not_permitted"),
    },
    Row {
        name: "a supervised restart does not signal, so another user's job is fine",
        change: |o, _, _| {
            supervised(o, false);
            o.health = hanging();
            if let Some(t) = o.discovery.target.as_mut() {
                t.info.uid = Some(0);
            }
        },
        verdict: Verdict::Unhealthy,
        codes: &[(HealthFailed, Hard)],
        plan: Expect::Restart,
    },
    Row {
        name: "a supervisor identity nothing confirms is never acted on",
        change: |o, _, _| {
            o.health = hanging();
            o.restart = Resolution {
                unverified: Some("PID 4242 claims supervisord program x:x but ...".into()),
                ..Resolution::plain(Method::None)
            };
        },
        verdict: Verdict::Unhealthy,
        codes: &[(TargetUnclear, Soft), (HealthFailed, Hard)],
        plan: Expect::Suppressed("target_unclear"),
    },
    Row {
        name: "an unconfirmed identity of a healthy server is a warning only",
        change: |o, _, _| {
            o.restart = Resolution {
                unverified: Some("PID 4242 claims supervisord program x:x but ...".into()),
                ..Resolution::plain(Method::None)
            };
        },
        verdict: Verdict::Warning,
        codes: &[(TargetUnclear, Soft)],
        plan: Expect::Nothing,
    },
    Row {
        name: "a remembered job nothing vouched for is not started; start_command is",
        change: |o, c, _| {
            no_target(o);
            o.health = hanging();
            c.restart.start_command = Some("./start.sh".into());
            o.restart = Resolution {
                ignored: Some("the history remembers systemd unit x.service, but ...".into()),
                ..Resolution::plain(Method::Builtin)
            };
        },
        verdict: Verdict::Unhealthy,
        codes: &[(TargetUnclear, Soft), (NoProcess, Hard)],
        plan: Expect::Start,
    },
    Row {
        name: "a job its supervisor is starting is waited for, not restarted",
        change: |o, _, _| {
            supervised(o, false);
            starting(o, None);
            o.health = hanging();
        },
        verdict: Verdict::Unhealthy,
        codes: &[(SupervisorStarting, Soft), (HealthFailed, Hard)],
        plan: Expect::Suppressed("starting"),
    },
    Row {
        name: "a starting job is never an orphan, even holding the port healthy",
        change: |o, _, _| {
            supervised(o, false);
            starting(o, None);
        },
        verdict: Verdict::Warning,
        codes: &[(SupervisorStarting, Soft)],
        plan: Expect::Nothing,
    },
    Row {
        name: "with the server down, a job starting is not started again",
        change: |o, _, _| {
            supervised(o, false);
            no_target(o);
            starting(o, None);
            o.health = hanging();
        },
        verdict: Verdict::Unhealthy,
        codes: &[(SupervisorStarting, Soft), (NoProcess, Hard)],
        plan: Expect::Suppressed("starting"),
    },
    Row {
        name: "a supervisor method with no known job does nothing",
        change: |o, _, _| {
            o.health = hanging();
            o.restart = Resolution {
                problem: Some("no launchd job is known".into()),
                ..Resolution::plain(Method::Launchd)
            };
        },
        verdict: Verdict::Unhealthy,
        codes: &[(HealthFailed, Hard)],
        plan: Expect::Suppressed("no_job"),
    },
    Row {
        name: "a leak projected within the horizon warns",
        change: |_, _, x| x.trend = Some(leak(3600)),
        verdict: Verdict::Warning,
        codes: &[(FdLeakProjected, Soft)],
        plan: Expect::Nothing,
    },
    Row {
        name: "a leak projected beyond the horizon is quiet",
        change: |_, _, x| x.trend = Some(leak(3 * 3600)),
        verdict: Verdict::Healthy,
        codes: &[],
        plan: Expect::Nothing,
    },
    Row {
        name: "a zero horizon turns the projection off",
        change: |_, c, x| {
            x.trend = Some(leak(60));
            c.fds.trend_horizon = Duration::ZERO;
        },
        verdict: Verdict::Healthy,
        codes: &[],
        plan: Expect::Nothing,
    },
    Row {
        name: "with trend_restart an idle server is restarted before the limit",
        change: |o, c, x| {
            x.trend = Some(leak(3600));
            c.fds.trend_restart = true;
            o.health.json = Some(serde_json::json!({"active_runs": 0, "active_streams": 0}));
        },
        verdict: Verdict::Warning,
        codes: &[(FdLeakProjected, Predictive)],
        plan: Expect::Restart,
    },
    Row {
        name: "startup grace does not cover a predicted leak",
        change: |o, c, x| {
            x.trend = Some(leak(3600));
            c.fds.trend_restart = true;
            c.target.startup_grace = Duration::from_secs(3600);
            o.discovery.target = Some(server(Duration::from_secs(1800)));
            o.health.json = Some(serde_json::json!({"active_runs": 0}));
        },
        verdict: Verdict::Warning,
        codes: &[(FdLeakProjected, Predictive)],
        plan: Expect::Restart,
    },
    Row {
        name: "a busy server defers a predictive restart",
        change: |o, c, x| {
            x.trend = Some(leak(3600));
            c.fds.trend_restart = true;
            o.health.json = Some(serde_json::json!({"active_runs": 2}));
        },
        verdict: Verdict::Warning,
        codes: &[(FdLeakProjected, Predictive)],
        plan: Expect::Deferred,
    },
    Row {
        name: "a deferral ends after max_defer",
        change: |o, c, x| {
            x.trend = Some(leak(3600));
            c.fds.trend_restart = true;
            o.health.json = Some(serde_json::json!({"active_streams": 1}));
            x.deferred_since = Some(now() - Duration::from_secs(31 * 60));
        },
        verdict: Verdict::Warning,
        codes: &[(FdLeakProjected, Predictive)],
        plan: Expect::Restart,
    },
    Row {
        name: "a hard reason restarts a busy server at once",
        change: |o, _, _| {
            o.health.json = Some(serde_json::json!({"active_runs": 2}));
            o.fds = Some(Ok(fds(1000, 10)));
        },
        verdict: Verdict::Unhealthy,
        codes: &[(FdsOverLimit, Hard)],
        plan: Expect::Restart,
    },
    Row {
        name: "more FDs than the budget allows warns",
        change: |o, c, _| {
            budget_of_fifty(o, c);
            o.fds = Some(Ok(fds(101, 10)));
        },
        verdict: Verdict::Warning,
        codes: &[(FdsOverBudget, Soft)],
        plan: Expect::Nothing,
    },
    Row {
        name: "within the budget is healthy",
        change: |o, c, _| budget_of_fifty(o, c),
        verdict: Verdict::Healthy,
        codes: &[],
        plan: Expect::Nothing,
    },
];

fn untrusted_pidfile() -> Finding {
    Finding::UntrustedPidfile {
        path: "/tmp/x.pid".into(),
        pid: Some(7),
        owner: Some(4343),
        why: "is owned by uid 4343, but the process it names runs as uid 0".into(),
    }
}

fn holder(pid: u32, uid: u32, argv: &[&str]) -> Holder {
    Holder {
        pid,
        uid: Some(uid),
        user: None,
        argv: argv.iter().map(|a| a.to_string()).collect(),
    }
}

fn match_without_port() -> Finding {
    Finding::MatchWithoutPort {
        port: 8787,
        text: "server.py".into(),
        matches: vec![holder(77, OWN_UID, &["tail", "-f", "/srv/server.py"])],
    }
}

fn several_holders() -> Finding {
    Finding::SeveralHolders {
        port: 8787,
        holders: vec![
            holder(4242, OWN_UID, &["python3", "server.py"]),
            holder(4343, 4343, &["nc", "-l", "::1", "8787"]),
        ],
        also_hidden: false,
    }
}

/// Expected 10 + 2 × 20 sessions = 50 FDs, allowed 2 × 50 = 100: 100 FDs is within,
/// 101 over.
fn budget_of_fifty(o: &mut Observation, c: &mut Config) {
    c.fds.budget = Some(crate::config::FdBudget {
        base: 10,
        per: 2,
        field: "sessions".into(),
        factor: 2.0,
    });
    o.health.json = Some(serde_json::json!({"sessions": 20}));
}

/// A trend that reaches the limit in `eta_s` seconds (the default horizon is 2 h).
fn leak(eta_s: u64) -> Trend {
    Trend {
        samples: 6,
        window_s: 6 * 3600,
        rate_per_hour: 120.0,
        limit: 1000,
        projected_s: Some(eta_s),
        top_growing: None,
    }
}

fn file(size: u64, action: FileAction) -> FileReading {
    FileReading {
        path: "/home/me/.hermes/state.db-wal".into(),
        size: Some(size),
        max_size: 1000,
        action,
        error: None,
    }
}

#[test]
fn every_rule() {
    for row in ROWS {
        let (mut obs, mut cfg, mut ctx) = (observation(), policy(), context());
        (row.change)(&mut obs, &mut cfg, &mut ctx);
        let decision = decide(&obs, &cfg, &ctx);
        let codes: Vec<(ReasonCode, Severity)> = decision
            .reasons
            .iter()
            .map(|r| (r.code, r.severity))
            .collect();
        assert_eq!(decision.verdict, row.verdict, "{}: verdict", row.name);
        assert_eq!(codes, row.codes, "{}: reasons", row.name);
        assert_eq!(shape(&decision.plan), row.plan, "{}: plan", row.name);
    }
}

#[test]
fn no_process_says_a_matching_process_does_not_hold_the_port() {
    let mut obs = observation();
    no_target(&mut obs);
    obs.discovery.findings = vec![match_without_port()];
    obs.health = hanging();
    let decision = decide(&obs, &policy(), &context());
    let detail = &decision.reasons[0].detail;
    assert!(detail.starts_with("no server process found"), "{detail}");
    assert!(
        detail.contains("\"server.py\" matches PID 77")
            && detail.contains("does not hold port 8787")
            && detail.contains("never signalled"),
        "{detail}"
    );
}

#[test]
fn health_passing_with_a_stale_pidfile_and_a_free_port_is_a_restart_in_progress() {
    let mut obs = observation();
    no_target(&mut obs);
    obs.discovery.port_owner = Some(PortOwner::Free);
    obs.discovery.findings = vec![Finding::StalePidfile {
        path: "/run/x.pid".into(),
        pid: Some(7),
        why: "PID 7 is not running".into(),
    }];
    let decision = decide(&obs, &policy(), &context());
    let no_process = decision
        .reasons
        .iter()
        .find(|r| r.code == NoProcess)
        .expect("no_process");
    assert!(
        no_process.detail.contains("probably being restarted"),
        "{}",
        no_process.detail
    );
    assert!(
        !no_process
            .detail
            .starts_with("health passes but no server process was found"),
        "{}",
        no_process.detail
    );
}

#[test]
fn several_holders_are_all_named_in_the_suppression() {
    let mut obs = observation();
    no_target(&mut obs);
    obs.discovery.findings = vec![several_holders()];
    obs.health = hanging();
    let decision = decide(&obs, &policy(), &context());
    let Plan::Suppressed {
        why: Suppression::TargetUnclear { detail },
        ..
    } = &decision.plan
    else {
        panic!("{:?}", decision.plan);
    };
    assert!(
        detail.contains("PID 4242 (uid 1000) `python3 server.py`")
            && detail.contains("PID 4343 (uid 4343) `nc -l ::1 8787`"),
        "{detail}"
    );
}

#[test]
fn reasons_carry_value_limit_and_readable_detail() {
    let mut obs = observation();
    obs.fds = Some(Ok(fds(420, 420)));
    let decision = decide(&obs, &policy(), &context());
    let path = &decision.reasons[0];
    assert_eq!(path.code, FdPathOverLimit);
    assert_eq!((path.value, path.limit), (Some(420), Some(200)));
    assert_eq!(path.detail, "420 FDs match \"state.db\" (max 200)");
}

#[test]
fn suppressed_plans_say_what_would_have_been_done() {
    let mut obs = observation();
    obs.health = hanging();
    let mut ctx = context();
    ctx.dry_run = true;
    let decision = decide(&obs, &policy(), &ctx);
    assert_eq!(
        decision.plan,
        Plan::Suppressed {
            would: Action {
                kind: ActionKind::Restart,
                method: Method::Builtin
            },
            why: Suppression::DryRun
        }
    );
}

#[test]
fn a_clock_behind_the_start_time_counts_as_age_zero() {
    let mut obs = observation();
    obs.discovery.target = Some(server(Duration::ZERO));
    if let Some(t) = obs.discovery.target.as_mut() {
        t.info.start_time = now() + Duration::from_secs(60);
    }
    obs.health = hanging();
    let decision = decide(&obs, &policy(), &context());
    assert_eq!(shape(&decision.plan), Expect::Suppressed("startup_grace"));
}

#[test]
fn reason_codes_read_the_same_in_json_and_text() {
    for code in [
        HealthFailed,
        FdsOverLimit,
        FdPathOverLimit,
        RssOverLimit,
        FileOverSize,
        OrphanPortHolder,
        NoProcess,
        StalePidfile,
        UntrustedPidfile,
        FdsNearLimit,
        FdsUnreadable,
        TargetUnclear,
        FdLeakProjected,
        FdsOverBudget,
    ] {
        assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
    }
}

/// The race after a crash: the run found no server, then supervisord respawned it and
/// health passed. The report says the supervisor did it, not "check [target]".
#[test]
fn a_respawn_in_the_race_is_credited_to_the_supervisor() {
    let mut obs = observation();
    supervised(&mut obs, false);
    no_target(&mut obs);
    let decision = decide(&obs, &policy(), &context());
    assert_eq!(decision.plan, Plan::Nothing);
    let detail = &decision.reasons[0].detail;
    assert!(
        detail.contains("supervisord program hermes:web runs it again as PID")
            && detail.contains("respawned")
            && !detail.contains("check [target]"),
        "{detail}"
    );

    starting(&mut obs, None);
    let decision = decide(&obs, &policy(), &context());
    let texts: Vec<&str> = decision.reasons.iter().map(|r| r.detail.as_str()).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("supervisord program hermes:web is starting the server (STARTING)")),
        "{texts:#?}"
    );
    assert!(
        !texts.iter().any(|t| t.contains("check [target]")),
        "{texts:#?}"
    );
}
