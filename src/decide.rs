//! The decision (docs/DESIGN.md, "Decision rules"): a pure function of what was observed,
//! the policy, the history and the clock. No I/O here, so every rule is a row in a table
//! test.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::config::{Config, FileAction, Method};
use crate::probe::Observation;
use crate::probe::discover::Finding;
use crate::probe::fds::FdReading;
use crate::trend::Trend;

/// Serialized through `as_str`, so that the report, the log and the text output spell
/// each code one way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonCode {
    HealthFailed,
    FdsOverLimit,
    FdPathOverLimit,
    RssOverLimit,
    FileOverSize,
    OrphanPortHolder,
    NoProcess,
    StalePidfile,
    /// The pidfile could have been written by someone other than root and the owner of
    /// the process it names: its PID is ignored (a warning; the other sources are used).
    UntrustedPidfile,
    /// Over `warn_percent` of the FD limit that applies: a warning only.
    FdsNearLimit,
    /// The FDs of the target could not be read (permission): a warning only.
    FdsUnreadable,
    /// The sources disagree or the port holder cannot be seen: never act.
    TargetUnclear,
    /// The FD count grows fast enough to reach its limit within `fds.trend_horizon`.
    FdLeakProjected,
    /// More FDs than `fds.budget.factor` × the expected count.
    FdsOverBudget,
    /// The supervisor reports its job starting: waited for, never acted on.
    SupervisorStarting,
}

impl ReasonCode {
    /// The code as it appears in the report and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::HealthFailed => "health_failed",
            ReasonCode::FdsOverLimit => "fds_over_limit",
            ReasonCode::FdPathOverLimit => "fd_path_over_limit",
            ReasonCode::RssOverLimit => "rss_over_limit",
            ReasonCode::FileOverSize => "file_over_size",
            ReasonCode::OrphanPortHolder => "orphan_port_holder",
            ReasonCode::NoProcess => "no_process",
            ReasonCode::StalePidfile => "stale_pidfile",
            ReasonCode::UntrustedPidfile => "untrusted_pidfile",
            ReasonCode::FdsNearLimit => "fds_near_limit",
            ReasonCode::FdsUnreadable => "fds_unreadable",
            ReasonCode::TargetUnclear => "target_unclear",
            ReasonCode::FdLeakProjected => "fd_leak_projected",
            ReasonCode::FdsOverBudget => "fds_over_budget",
            ReasonCode::SupervisorStarting => "supervisor_starting",
        }
    }
}

impl Serialize for ReasonCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Restart now.
    Hard,
    /// Log a warning; exit 0.
    Soft,
    /// Not broken yet, but will be: restart when the server is idle
    /// (`fds.trend_restart`).
    Predictive,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub code: ReasonCode,
    pub severity: Severity,
    pub detail: String,
    pub value: Option<u64>,
    pub limit: Option<u64>,
}

impl Reason {
    fn hard(code: ReasonCode, detail: String) -> Reason {
        Reason {
            code,
            severity: Severity::Hard,
            detail,
            value: None,
            limit: None,
        }
    }
    fn predictive(code: ReasonCode, detail: String) -> Reason {
        Reason {
            severity: Severity::Predictive,
            ..Reason::hard(code, detail)
        }
    }
    fn soft(code: ReasonCode, detail: String) -> Reason {
        Reason {
            severity: Severity::Soft,
            ..Reason::hard(code, detail)
        }
    }
    fn measured(mut self, value: u64, limit: u64) -> Reason {
        self.value = Some(value);
        self.limit = Some(limit);
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Healthy,
    /// Only soft reasons.
    Warning,
    Unhealthy,
}

/// Serialized as `as_str` writes it (`restart`, `start`, `kill_orphan`): the history
/// file keeps it in that form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Restart,
    Start,
    /// Kill the orphan holding the port, then restart through the supervisor.
    KillOrphan,
}

impl ActionKind {
    /// The kind as it appears in the report, the log and the history.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Restart => "restart",
            ActionKind::Start => "start",
            ActionKind::KillOrphan => "kill_orphan",
        }
    }

    /// The kind `as_str` names, back from its text (a log event's name).
    pub fn parse(text: &str) -> Option<ActionKind> {
        [
            ActionKind::Restart,
            ActionKind::Start,
            ActionKind::KillOrphan,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    pub kind: ActionKind,
    pub method: Method,
}

/// Why an unhealthy server is left alone this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Suppression {
    DryRun,
    StartupGrace {
        age: Duration,
        grace: Duration,
    },
    CrashLoop {
        restarts: u32,
        max: u32,
        window: Duration,
    },
    MethodNone,
    NothingToStart,
    TargetUnclear {
        detail: String,
    },
    NotPermitted {
        detail: String,
    },
    /// `kill_orphans = false`: the orphan is reported, not killed.
    OrphansNotKilled {
        holder: u32,
    },
    /// The orphan does not match `target.match` nor the job's program.
    OrphanUnmatched {
        detail: String,
    },
    /// A supervisor method was asked for, but no job is known to restart.
    NoJob {
        detail: String,
    },
    /// The server could not be started again (a process title for `argv[0]`, a
    /// deleted working directory, a supervisor tool not on `PATH`): killing it would
    /// leave it dead, so nothing is signalled. `detail` says what to set.
    CannotRestart {
        detail: String,
    },
    /// The supervisor is starting its job: a restart or a kill would race it.
    Starting {
        detail: String,
    },
    /// Health failed only because the server's TLS answer was refused (its certificate
    /// not trusted, or no TLS at all): the server answered, and a restart would bring
    /// back the same certificate. `detail` is the probe's error, which names the fix.
    TlsRefused {
        detail: String,
    },
}

impl Suppression {
    /// A short stable name, for the log's de-duplication and for tests.
    pub fn key(&self) -> &'static str {
        match self {
            Suppression::DryRun => "dry_run",
            Suppression::StartupGrace { .. } => "startup_grace",
            Suppression::CrashLoop { .. } => "crash_loop",
            Suppression::MethodNone => "method_none",
            Suppression::NothingToStart => "nothing_to_start",
            Suppression::TargetUnclear { .. } => "target_unclear",
            Suppression::NotPermitted { .. } => "not_permitted",
            Suppression::OrphansNotKilled { .. } => "orphans_not_killed",
            Suppression::OrphanUnmatched { .. } => "orphan_unmatched",
            Suppression::NoJob { .. } => "no_job",
            Suppression::CannotRestart { .. } => "cannot_restart",
            Suppression::Starting { .. } => "starting",
            Suppression::TlsRefused { .. } => "tls_refused",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Nothing,
    /// A predictive restart put off while the server is busy (exit 0).
    Deferred {
        would: Action,
        why: String,
    },
    Act(Action),
    /// `would` is what a run without the suppression would have done.
    Suppressed {
        would: Action,
        why: Suppression,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub verdict: Verdict,
    pub reasons: Vec<Reason>,
    pub plan: Plan,
}

/// What the decision needs besides the observation and the config.
#[derive(Debug, Clone)]
pub struct Context {
    pub now: SystemTime,
    /// Restarts recorded in history within `restart.window` before `now`.
    pub restarts_in_window: u32,
    /// The FD trend of the current process, from the history.
    pub trend: Option<Trend>,
    /// When a predictive restart was first deferred, if it still is.
    pub deferred_since: Option<SystemTime>,
    pub dry_run: bool,
    /// The user the watchdog runs as: a builtin restart can only signal its own
    /// processes unless it is root.
    pub own_uid: u32,
}

pub fn decide(obs: &Observation, cfg: &Config, ctx: &Context) -> Decision {
    let reasons = reasons(obs, cfg, ctx);
    let verdict = verdict(&reasons);
    let acts = reasons
        .iter()
        .any(|r| matches!(r.severity, Severity::Hard | Severity::Predictive));
    let plan = if acts {
        plan(obs, cfg, ctx, &reasons)
    } else {
        Plan::Nothing
    };
    Decision {
        verdict,
        reasons,
        plan,
    }
}

/// A predictive reason alone leaves the server "healthy, with warnings": it works now.
fn verdict(reasons: &[Reason]) -> Verdict {
    if reasons.iter().any(|r| r.severity == Severity::Hard) {
        Verdict::Unhealthy
    } else if reasons.is_empty() {
        Verdict::Healthy
    } else {
        Verdict::Warning
    }
}

fn reasons(obs: &Observation, cfg: &Config, ctx: &Context) -> Vec<Reason> {
    let mut reasons: Vec<Reason> = obs
        .discovery
        .findings
        .iter()
        .filter_map(finding_reason)
        .collect();
    let restart = &obs.restart;
    for note in [&restart.unverified, &restart.ignored]
        .into_iter()
        .flatten()
    {
        reasons.push(Reason::soft(ReasonCode::TargetUnclear, note.clone()));
    }
    reasons.extend(
        starting_reason(obs).map(|detail| Reason::soft(ReasonCode::SupervisorStarting, detail)),
    );
    reasons.extend(orphan_reason(obs));
    reasons.extend(health_reason(obs));
    match &obs.fds {
        Some(Ok(reading)) => reasons.extend(fd_reasons(reading, cfg)),
        Some(Err(why)) => reasons.push(Reason::soft(
            ReasonCode::FdsUnreadable,
            format!("cannot count the target's FDs: {why}"),
        )),
        None => {}
    }
    if let Some(reading) = obs.fd_reading() {
        reasons.extend(budget_reason(obs, reading, cfg));
        let over = reasons.iter().any(|r| r.code == ReasonCode::FdsOverLimit);
        if !over {
            reasons.extend(trend_reason(ctx.trend.as_ref(), cfg));
        }
    }
    reasons.extend(rss_reason(obs, cfg));
    reasons.extend(file_reasons(obs));
    reasons
}

/// The warning a finding gives. A match without the port gives none of its own: it is
/// part of the `no_process` reason, which says why nothing was found.
fn finding_reason(finding: &Finding) -> Option<Reason> {
    let code = match finding {
        Finding::StalePidfile { .. } => ReasonCode::StalePidfile,
        Finding::UntrustedPidfile { .. } => ReasonCode::UntrustedPidfile,
        Finding::MatchWithoutPort { .. } => return None,
        Finding::Disagree { .. }
        | Finding::PortHidden { .. }
        | Finding::Ambiguous { .. }
        | Finding::Unreadable { .. }
        | Finding::SeveralHolders { .. } => ReasonCode::TargetUnclear,
    };
    Some(Reason::soft(code, finding.describe()))
}

/// What the supervisor says when it reports its job starting (after the bounded wait
/// in `probe::supervisor`), in the operator's words.
fn starting_reason(obs: &Observation) -> Option<String> {
    let supervision = obs.restart.supervision.as_ref()?;
    let job = supervision.job.as_ref().ok().filter(|job| job.starting)?;
    let pid = job
        .pid
        .map(|pid| format!(", PID {pid}"))
        .unwrap_or_default();
    Some(format!(
        "{} is starting the server ({}{pid}); it is left to finish, not restarted",
        supervision.supervisor.describe(),
        job.state
    ))
}

fn orphan_reason(obs: &Observation) -> Option<Reason> {
    let supervision = obs.restart.supervision.as_ref()?;
    let orphan = supervision.orphan.as_ref()?;
    let runs = match (&supervision.job, orphan.job_pid) {
        (_, Some(pid)) => format!("runs the job as PID {pid}"),
        (Ok(job), None) => format!("runs nothing for it (state {})", job.state),
        (Err(_), None) => "runs nothing for it".to_string(),
    };
    Some(Reason::hard(
        ReasonCode::OrphanPortHolder,
        format!(
            "PID {} holds the port with the identity of {} ({}), but the supervisor {runs}",
            orphan.holder,
            supervision.supervisor.describe(),
            supervision.supervisor.evidence
        ),
    ))
}

fn health_reason(obs: &Observation) -> Option<Reason> {
    let health = &obs.health;
    let has_target = obs.discovery.target.is_some();
    if health.ok {
        return (!has_target).then(|| {
            Reason::soft(
                ReasonCode::NoProcess,
                respawned(obs)
                    .unwrap_or_else(|| format!("health passes but {}", why_no_process(obs))),
            )
        });
    }
    let error = health.error.as_deref().unwrap_or("failed");
    let attempts = health.attempts.len();
    let tried = if attempts == 1 {
        "1 attempt".to_string()
    } else {
        format!("{attempts} attempts")
    };
    if has_target {
        Some(Reason::hard(
            ReasonCode::HealthFailed,
            format!("health check failed ({tried}): {error}"),
        ))
    } else {
        let mut detail = format!("no server process found, and health failed ({tried}): {error}");
        if let Some(matched) = match_without_port(obs) {
            detail = format!("{detail}; {}", matched.describe());
        }
        Some(Reason::hard(ReasonCode::NoProcess, detail))
    }
}

fn match_without_port(obs: &Observation) -> Option<&Finding> {
    obs.discovery
        .findings
        .iter()
        .find(|f| matches!(f, Finding::MatchWithoutPort { .. }))
}

/// Why no process was found while health passes, completing "health passes but ...".
/// Discovery runs before the health check: a server that bound its port in between
/// (a respawn by its supervisor, just after a crash) is not a wrong config, and its
/// old pidfile is stale until it rewrites it.
fn why_no_process(obs: &Observation) -> String {
    use crate::probe::os::PortOwner;
    if let Some(matched) = match_without_port(obs) {
        return format!(
            "no process holding the port was found: {}",
            matched.describe()
        );
    }
    let stale = obs
        .discovery
        .findings
        .iter()
        .any(|f| matches!(f, Finding::StalePidfile { .. }));
    match (&obs.discovery.port_owner, stale) {
        (Some(PortOwner::Free), true) => "the port was free and the pidfile stale a moment \
            earlier: the server was probably being restarted and has not rewritten its \
            pidfile yet; the next run will find it (if this persists, check [target])"
            .to_string(),
        (Some(PortOwner::Free), false) => "the port was free a moment earlier: the server \
            was probably starting; the next run will find it (if this persists, check [target])"
            .to_string(),
        _ => "no server process was found: check [target]".to_string(),
    }
}

/// The age of the process a supervisor reports running as its job, when no server was
/// found and it is younger than `grace`: a supervisor restarted the server a moment
/// ago and it has not bound its port yet (Hermes WebUI binds up to 25 s after it
/// starts). A `start` through the supervisor would kill it and begin again
/// (docs/RELIABILITY.md, "What the runs found"); it gets the target's startup grace.
fn young_job(obs: &Observation, now: SystemTime, grace: Duration) -> Option<Duration> {
    let supervision = obs.restart.supervision.as_ref()?;
    let job = supervision.job.as_ref().ok()?;
    job.pid?;
    let age = now
        .duration_since(supervision.job_started?)
        .unwrap_or(Duration::ZERO);
    (age < grace).then_some(age)
}

/// The race after a crash: no server was found when the run looked, but its supervisor
/// has started (or is starting) a new one by the time health passed. The config is
/// fine; say so instead of pointing at [target].
fn respawned(obs: &Observation) -> Option<String> {
    let supervision = obs.restart.supervision.as_ref()?;
    let job = supervision.job.as_ref().ok()?;
    let what = supervision.supervisor.describe();
    match (job.starting, job.pid) {
        (true, _) => Some(format!(
            "no server process was found when this run looked, but {what} is starting the \
             server ({}), and health passes",
            job.state
        )),
        (false, Some(pid)) => Some(format!(
            "no server process was found when this run looked, but {what} runs it again as \
             PID {pid} ({}), and health passes: the supervisor respawned it",
            job.state
        )),
        (false, None) => None,
    }
}

/// A leak that would reach the limit within the horizon: a warning, or a restart at an
/// idle moment with `fds.trend_restart`.
fn trend_reason(trend: Option<&Trend>, cfg: &Config) -> Option<Reason> {
    let trend = trend?;
    let horizon = cfg.fds.trend_horizon;
    let eta = Duration::from_secs(trend.projected_s?);
    if horizon.is_zero() || eta > horizon || trend.rate_per_hour <= 0.0 {
        return None;
    }
    let growing = trend
        .top_growing
        .as_ref()
        .map(|g| format!("; {}", g.describe()))
        .unwrap_or_default();
    let detail = format!(
        "FDs growing {:.0}/hour over {} samples; the limit {} is {} away at this rate{growing}",
        trend.rate_per_hour,
        trend.samples,
        trend.limit,
        crate::units::human_duration(eta)
    );
    let reason = if cfg.fds.trend_restart {
        Reason::predictive(ReasonCode::FdLeakProjected, detail)
    } else {
        Reason::soft(ReasonCode::FdLeakProjected, detail)
    };
    Some(reason.measured(trend.projected_s.unwrap_or(0), horizon.as_secs()))
}

/// The seed's self-diagnosing signal: expected FDs from a /health number.
fn budget_reason(obs: &Observation, reading: &FdReading, cfg: &Config) -> Option<Reason> {
    let budget = cfg.fds.budget.as_ref()?;
    let count = obs.health.json.as_ref()?.get(&budget.field)?.as_f64()?;
    let expected = budget.base as f64 + budget.per as f64 * count.max(0.0);
    let allowed = (expected * budget.factor).ceil() as u64;
    (reading.total > allowed).then(|| {
        Reason::soft(
            ReasonCode::FdsOverBudget,
            format!(
                "{} open FDs, over {}× the {expected:.0} expected for {} = {count} \
                 ({} + {} per {}): a leak?",
                reading.total, budget.factor, budget.field, budget.base, budget.per, budget.field
            ),
        )
        .measured(reading.total, allowed)
    })
}

/// The first busy field of the /health JSON that is non-zero, as `name=value`.
pub(crate) fn busy(obs: &Observation, cfg: &Config) -> Option<String> {
    let json = obs.health.json.as_ref()?;
    cfg.health.busy_fields.iter().find_map(|field| {
        let value = json.get(field)?.as_f64()?;
        (value > 0.0).then(|| format!("{field}={value}"))
    })
}

/// The FD count at which a restart is due: the smaller of `fds.max` and
/// `max_percent` of the target's soft limit, where that limit is known.
pub fn fd_restart_limit(reading: &FdReading, cfg: &Config) -> (u64, String) {
    let by_count = (cfg.fds.max, format!("max {}", cfg.fds.max));
    match reading.limit.and_then(|l| l.soft) {
        Some(soft) => {
            let by_percent = soft * u64::from(cfg.fds.max_percent) / 100;
            if by_percent < by_count.0 {
                (
                    by_percent,
                    format!("{}% of the soft limit {soft}", cfg.fds.max_percent),
                )
            } else {
                by_count
            }
        }
        None => by_count,
    }
}

fn fd_reasons(reading: &FdReading, cfg: &Config) -> Vec<Reason> {
    let mut reasons = Vec::new();
    let (limit, limit_text) = fd_restart_limit(reading, cfg);
    let total = reading.total;
    if total >= limit {
        reasons.push(
            Reason::hard(
                ReasonCode::FdsOverLimit,
                format!("{total} open FDs ({limit_text})"),
            )
            .measured(total, limit),
        );
    } else {
        let warn_at = limit * u64::from(cfg.fds.warn_percent) / 100;
        if total >= warn_at {
            reasons.push(
                Reason::soft(
                    ReasonCode::FdsNearLimit,
                    format!(
                        "{total} open FDs, over {}% of the restart limit {limit} ({limit_text})",
                        cfg.fds.warn_percent
                    ),
                )
                .measured(total, limit),
            );
        }
    }
    for pattern in &reading.patterns {
        if pattern.count > pattern.max {
            reasons.push(
                Reason::hard(
                    ReasonCode::FdPathOverLimit,
                    format!(
                        "{} FDs match {:?} (max {})",
                        pattern.count, pattern.pattern, pattern.max
                    ),
                )
                .measured(pattern.count, pattern.max),
            );
        }
    }
    reasons
}

fn rss_reason(obs: &Observation, cfg: &Config) -> Option<Reason> {
    let max = cfg.memory.max_rss?;
    let rss = obs.discovery.target.as_ref()?.info.rss_bytes?;
    (rss > max).then(|| {
        Reason::hard(
            ReasonCode::RssOverLimit,
            format!("resident memory {rss} bytes (max {max})"),
        )
        .measured(rss, max)
    })
}

fn file_reasons(obs: &Observation) -> Vec<Reason> {
    obs.files
        .iter()
        .filter_map(|file| {
            let size = file.size?;
            if size <= file.max_size {
                return None;
            }
            let detail = format!(
                "{} is {size} bytes (max {})",
                file.path.display(),
                file.max_size
            );
            let reason = match file.action {
                FileAction::Restart => Reason::hard(ReasonCode::FileOverSize, detail),
                FileAction::Warn => Reason::soft(ReasonCode::FileOverSize, detail),
            };
            Some(reason.measured(size, file.max_size))
        })
        .collect()
}

/// The one action for an unhealthy run, or why none is taken. The order of the
/// checks matters: safety first (never act on an unclear target), then what the
/// operator configured, then the guards; a dry run reports whatever would have
/// stopped a real run.
fn plan(obs: &Observation, cfg: &Config, ctx: &Context, reasons: &[Reason]) -> Plan {
    let target = obs.discovery.target.as_ref();
    let method = obs.restart.method;
    let orphan = obs
        .restart
        .supervision
        .as_ref()
        .and_then(|s| s.orphan.as_ref().map(|o| (s, o)));
    let kind = match (orphan, target) {
        (Some(_), _) => ActionKind::KillOrphan,
        (None, Some(_)) => ActionKind::Restart,
        (None, None) => ActionKind::Start,
    };
    let action = Action { kind, method };
    let suppressed = |why| Plan::Suppressed { would: action, why };

    if let Some(finding) = obs.discovery.findings.iter().find(|f| f.blocks_action()) {
        return suppressed(Suppression::TargetUnclear {
            detail: finding.describe(),
        });
    }
    if let Some(detail) = &obs.restart.unverified {
        return suppressed(Suppression::TargetUnclear {
            detail: detail.clone(),
        });
    }
    if let Some(detail) = starting_reason(obs) {
        return suppressed(Suppression::Starting { detail });
    }
    if method == Method::None {
        return suppressed(Suppression::MethodNone);
    }
    if obs.health.tls_refused && only_health_failed(reasons) {
        return suppressed(Suppression::TlsRefused {
            detail: obs.health.error.clone().unwrap_or_default(),
        });
    }
    if let Some(problem) = &obs.restart.problem {
        return suppressed(Suppression::NoJob {
            detail: problem.clone(),
        });
    }
    if kind == ActionKind::Start && !can_start(cfg, method) {
        return suppressed(Suppression::NothingToStart);
    }
    if let Some((supervision, orphan)) = orphan {
        if !cfg.restart.kill_orphans {
            return suppressed(Suppression::OrphansNotKilled {
                holder: orphan.holder,
            });
        }
        let job_program = supervision
            .job
            .as_ref()
            .ok()
            .and_then(|j| j.program.as_deref());
        if let Some(target) = target
            && let Err(detail) = orphan_killable(&target.info.argv, cfg, job_program)
        {
            return suppressed(Suppression::OrphanUnmatched { detail });
        }
    }
    if let Some(target) = target {
        let signals_it = method == Method::Builtin || kind == ActionKind::KillOrphan;
        if signals_it
            && let Some(uid) = target.info.uid
            && ctx.own_uid != 0
            && uid != ctx.own_uid
        {
            return suppressed(Suppression::NotPermitted {
                detail: format!(
                    "PID {} belongs to uid {uid} and the watchdog runs as uid {}: \
                     run it as that user or as root",
                    target.info.pid(),
                    ctx.own_uid
                ),
            });
        }
    }
    // Never kill what cannot be started again.
    if let Some(Err(detail)) = &obs.readiness {
        return suppressed(Suppression::CannotRestart {
            detail: detail.clone(),
        });
    }
    if let Some(target) = target {
        let age = ctx
            .now
            .duration_since(target.info.start_time)
            .unwrap_or(Duration::ZERO);
        if age < cfg.target.startup_grace && only_health_failed(reasons) {
            return suppressed(Suppression::StartupGrace {
                age,
                grace: cfg.target.startup_grace,
            });
        }
    }
    if kind == ActionKind::Start
        && let Some(age) = young_job(obs, ctx.now, cfg.target.startup_grace)
    {
        return suppressed(Suppression::StartupGrace {
            age,
            grace: cfg.target.startup_grace,
        });
    }
    let only_predictive = !reasons.iter().any(|r| r.severity == Severity::Hard);
    if only_predictive && let Some(busy) = busy(obs, cfg) {
        let waited = ctx
            .deferred_since
            .and_then(|since| ctx.now.duration_since(since).ok())
            .unwrap_or(Duration::ZERO);
        if waited < cfg.restart.max_defer {
            return Plan::Deferred {
                would: action,
                why: format!(
                    "the server is busy ({busy}); a restart for a predicted leak waits until \
                     it is idle, at most restart.max_defer {} (waited {} so far)",
                    crate::units::human_duration(cfg.restart.max_defer),
                    crate::units::human_duration(waited)
                ),
            };
        }
    }
    if ctx.restarts_in_window >= cfg.restart.max_restarts {
        return suppressed(Suppression::CrashLoop {
            restarts: ctx.restarts_in_window,
            max: cfg.restart.max_restarts,
            window: cfg.restart.window,
        });
    }
    if ctx.dry_run {
        return suppressed(Suppression::DryRun);
    }
    Plan::Act(action)
}

/// An orphan is killed only when it is recognisably the server: its command line
/// contains `target.match`, or the program the supervisor runs for the job. The
/// job's identity in its environment alone could be inherited by anything the job
/// ever started.
fn orphan_killable(argv: &[String], cfg: &Config, job_program: Option<&str>) -> Result<(), String> {
    let line = argv.join(" ");
    if let Some(text) = &cfg.target.match_ {
        return if line.contains(text.as_str()) {
            Ok(())
        } else {
            Err(format!(
                "the orphan's command line does not contain target.match {text:?}"
            ))
        };
    }
    let program = job_program.map(|p| p.rsplit('/').next().unwrap_or(p));
    match program {
        Some(name) if argv.iter().any(|a| a.rsplit('/').next() == Some(name)) => Ok(()),
        _ => Err(
            "set target.match (e.g. \"server.py\") so the orphan can be recognised \
                  as the server before it is killed"
                .to_string(),
        ),
    }
}

/// With no process to restart, only a method that knows how to start one can act.
fn can_start(cfg: &Config, method: Method) -> bool {
    match method {
        Method::Builtin => cfg.restart.start_command.is_some(),
        Method::Auto | Method::None => false,
        Method::Command
        | Method::Launchd
        | Method::Systemd
        | Method::Supervisor
        | Method::Runit => true,
    }
}

/// Whether every reason that would act is a failed health check: what startup grace
/// covers. A predictive or other hard reason is not covered.
fn only_health_failed(reasons: &[Reason]) -> bool {
    reasons
        .iter()
        .filter(|r| r.severity != Severity::Soft)
        .all(|r| r.code == ReasonCode::HealthFailed)
}

#[cfg(test)]
mod tests;
