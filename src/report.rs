//! The report of one run (docs/REPORT.md, "The report"): the `--json` document and the
//! readable `status` page, both built from the same observation, decision and outcome.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::act::Outcome;
use crate::deadline::failsafe;
use crate::decide::{Decision, Plan, Reason, Severity, Suppression, Verdict};
use crate::exit_code::ExitCode;
use crate::history::Counters;
use crate::probe::Observation;
use crate::probe::discover::{Holder, Target};
use crate::probe::fds::FdReading;
use crate::probe::health::HealthResult;
use crate::trend::Trend;
use crate::units::{human_duration, human_size, rfc3339};

#[derive(Debug, Serialize)]
pub struct Report {
    pub target: Option<TargetReport>,
    /// Every process that holds the port (init, this watchdog and its ancestors aside),
    /// with its owner and command line: several that are not one process tree make the
    /// target unclear, and the operator must see who they are.
    pub port_holders: Vec<Holder>,
    pub health: HealthReport,
    pub fds: Option<FdReading>,
    pub rss_bytes: Option<u64>,
    pub files: Vec<FileReport>,
    pub verdict: Verdict,
    pub reasons: Vec<Reason>,
    pub action: ActionReport,
    pub exit_code: ExitCode,
    /// The most this run could have taken (docs/DESIGN.md, "Invariants"), in seconds.
    pub bound_s: u64,
    /// The restart method after auto-detection.
    pub restart_method: &'static str,
    /// The FD growth of the current process (`null` with fewer than 3 samples).
    pub trend: Option<Trend>,
    /// The latest incident snapshots, newest first.
    pub incidents: Vec<String>,
    /// When this run started and how long it took until the report.
    pub run: RunReport,
    /// What the watchdog has done since its history began (monotonic while the
    /// history lasts; `watchdog_restarts_total` in src/metrics.rs).
    pub counters: Counters,
}

#[derive(Debug, Serialize)]
pub struct RunReport {
    /// RFC 3339, local offset.
    pub started: String,
    /// The same instant in seconds since the epoch (milliseconds kept).
    pub started_s: f64,
    /// From the start of the process to the report, in seconds (microseconds kept).
    pub duration_s: f64,
}

/// When a run started and how long it has taken so far.
#[derive(Debug, Clone, Copy)]
pub struct RunTimes {
    pub started: SystemTime,
    pub duration: Duration,
}

impl RunTimes {
    /// Measured from the start of the process (`failsafe::elapsed`).
    pub fn so_far() -> RunTimes {
        let duration = failsafe::elapsed();
        let now = SystemTime::now();
        RunTimes {
            started: now.checked_sub(duration).unwrap_or(now),
            duration,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct TargetReport {
    pub pid: u32,
    pub start_time: String,
    pub age_s: u64,
    pub argv: Vec<String>,
    pub port: Option<u16>,
    /// Its state at the observation (`ProcState::as_str`): a stopped or
    /// uninterruptible server is ended differently (`src/act/signal.rs`).
    pub state: &'static str,
    /// The same, for the status page: "stopped (T)".
    #[serde(skip)]
    pub state_label: &'static str,
    /// Which sources named the process: "pid", "pidfile", "port", "match".
    pub found_by: Vec<&'static str>,
    /// The supervisor that owns the process, once supervisors are detected.
    pub supervisor: Option<serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct HealthReport {
    pub ok: bool,
    pub status: Option<u16>,
    pub latency_ms: Option<u64>,
    pub error: Option<String>,
    pub attempts: usize,
    /// One entry per failed attempt, in order.
    pub errors: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct FileReport {
    pub path: String,
    pub size: Option<u64>,
    pub max_size: u64,
}

#[derive(Debug, Serialize)]
pub struct ActionReport {
    pub kind: &'static str,
    pub method: Option<&'static str>,
    pub dry_run: bool,
    pub result: Option<&'static str>,
    pub detail: Option<String>,
    pub new_pid: Option<u32>,
    pub new_fds: Option<u64>,
}

pub struct Inputs<'a> {
    pub observation: &'a Observation,
    pub decision: &'a Decision,
    pub trend: Option<&'a Trend>,
    pub incidents: Vec<std::path::PathBuf>,
    pub outcome: Option<&'a Outcome>,
    /// The code the run ends with (`commands::check::exit_code`).
    pub exit_code: ExitCode,
    pub port: Option<u16>,
    pub dry_run: bool,
    pub bound: Duration,
    pub run: RunTimes,
    pub counters: Counters,
}

impl Report {
    /// The report with the port holders' login names looked up: done only where the
    /// report is shown (`status`, `--json`), not on every check (see
    /// [`Holder::named`]).
    pub fn with_user_names(mut self) -> Report {
        Holder::name_all(&mut self.port_holders);
        self
    }
}

pub fn build(inputs: &Inputs) -> Report {
    let obs = inputs.observation;
    let target = obs.discovery.target.as_ref();
    Report {
        target: target.map(|t| target_report(t, inputs.port, obs)),
        port_holders: obs.discovery.port_holders.clone(),
        health: health_report(&obs.health),
        fds: obs.fd_reading().cloned(),
        rss_bytes: target.and_then(|t| t.info.rss_bytes),
        files: obs
            .files
            .iter()
            .map(|f| FileReport {
                path: f.path.display().to_string(),
                size: f.size,
                max_size: f.max_size,
            })
            .collect(),
        verdict: inputs.decision.verdict,
        reasons: inputs.decision.reasons.clone(),
        action: action_report(inputs),
        exit_code: inputs.exit_code,
        bound_s: inputs.bound.as_secs(),
        restart_method: obs.restart.method.as_str(),
        trend: inputs.trend.cloned(),
        incidents: inputs
            .incidents
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        run: run_report(inputs.run),
        counters: inputs.counters,
    }
}

fn run_report(run: RunTimes) -> RunReport {
    let started_ms = run
        .started
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    RunReport {
        started: rfc3339(run.started),
        started_s: started_ms as f64 / 1000.0,
        duration_s: run.duration.as_micros() as f64 / 1e6,
    }
}

fn target_report(target: &Target, port: Option<u16>, obs: &Observation) -> TargetReport {
    TargetReport {
        pid: target.info.pid(),
        start_time: rfc3339(target.info.start_time),
        age_s: age(target, obs.at).as_secs(),
        argv: target.info.argv.clone(),
        port,
        state: target.info.state.as_str(),
        state_label: target.info.state.label(),
        found_by: target.evidence.clone(),
        supervisor: supervisor_report(obs),
    }
}

/// `{"kind", "name", "evidence", "job": {"pid", "state"} or {"error"}, "orphan"}`.
fn supervisor_report(obs: &Observation) -> Option<serde_json::Value> {
    let supervision = obs.restart.supervision.as_ref()?;
    let s = &supervision.supervisor;
    let job = match &supervision.job {
        Ok(job) => serde_json::json!({ "pid": job.pid, "state": job.state }),
        Err(e) => serde_json::json!({ "error": e }),
    };
    let starting = supervision.job.as_ref().is_ok_and(|job| job.starting);
    Some(serde_json::json!({
        "kind": s.kind,
        "name": s.name,
        "evidence": s.evidence,
        "trust": s.trust.as_str(),
        "starting": starting,
        "job": job,
        "orphan": supervision.orphan.is_some(),
    }))
}

pub fn age(target: &Target, now: SystemTime) -> Duration {
    now.duration_since(target.info.start_time)
        .unwrap_or(Duration::ZERO)
}

fn health_report(health: &HealthResult) -> HealthReport {
    HealthReport {
        ok: health.ok,
        status: health.status,
        latency_ms: health.latency_ms,
        error: health.error.clone(),
        attempts: health.attempts.len(),
        errors: health
            .attempts
            .iter()
            .filter_map(|a| a.error.clone())
            .collect(),
    }
}

fn action_report(inputs: &Inputs) -> ActionReport {
    let none = ActionReport {
        kind: "none",
        method: None,
        dry_run: inputs.dry_run,
        result: None,
        detail: None,
        new_pid: None,
        new_fds: None,
    };
    match &inputs.decision.plan {
        Plan::Nothing => none,
        Plan::Deferred { would, why } => ActionReport {
            kind: would.kind.as_str(),
            method: Some(would.method.as_str()),
            result: Some("deferred"),
            detail: Some(why.clone()),
            ..none
        },
        Plan::Suppressed { would, why } => ActionReport {
            kind: would.kind.as_str(),
            method: Some(would.method.as_str()),
            result: Some("suppressed"),
            detail: Some(suppression_text(why)),
            ..none
        },
        Plan::Act(action) => {
            let outcome = inputs.outcome;
            ActionReport {
                kind: action.kind.as_str(),
                method: Some(action.method.as_str()),
                result: Some(match outcome {
                    Some(o) if o.ok => "restarted",
                    _ => "failed",
                }),
                detail: outcome.map(|o| o.detail.clone()),
                new_pid: outcome.and_then(|o| o.new_pid),
                new_fds: outcome.and_then(|o| o.new_fds),
                ..none
            }
        }
    }
}

/// Why nothing was done, in the words the log and `status` use.
pub fn suppression_text(why: &Suppression) -> String {
    match why {
        Suppression::DryRun => "dry run: nothing was touched".into(),
        Suppression::StartupGrace { age, grace } => format!(
            "startup grace: the process is {} old, younger than startup_grace {}",
            human_duration(*age),
            human_duration(*grace)
        ),
        Suppression::CrashLoop {
            restarts,
            max,
            window,
        } => format!(
            "crash-loop guard: {restarts} restarts within the last {} (max_restarts = {max}); \
             not restarting again until older ones leave the window — look at the server's log",
            human_duration(*window)
        ),
        Suppression::MethodNone => "restart.method = \"none\": observing only".into(),
        Suppression::NothingToStart => {
            "no server process is running and there is no way to start one: \
             set restart.start_command (or method = \"command\")"
                .into()
        }
        Suppression::TargetUnclear { detail } => {
            format!("the target is not clearly identified, so nothing is touched: {detail}")
        }
        Suppression::NotPermitted { detail } => detail.clone(),
        Suppression::OrphansNotKilled { holder } => format!(
            "restart.kill_orphans = false: orphan PID {holder} keeps the port, so a restart \
             through the supervisor could not bind it; stop it by hand or set kill_orphans = true"
        ),
        Suppression::OrphanUnmatched { detail } => {
            format!("the orphan is not clearly the server, so it is not killed: {detail}")
        }
        Suppression::NoJob { detail } => detail.clone(),
        Suppression::CannotRestart { detail } => {
            format!(
                "nothing was signalled, because the server could not be started again: {detail}"
            )
        }
        Suppression::TlsRefused { detail } => format!(
            "the server answered, but its TLS answer was refused ({detail}): a restart \
             would bring back the same answer"
        ),
        Suppression::Starting { detail } => format!(
            "starting: {detail}; it was waited for up to {} and is left alone this run",
            human_duration(crate::probe::supervisor::STARTING_WAIT)
        ),
    }
}

/// The `status` page: what was seen, what it means and what `check` would do.
pub fn status_text(report: &Report, url: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "watchdog status — {url}");
    match &report.target {
        Some(t) => {
            // Only a state that changes what is done is shown: "stopped (T)".
            let state = match t.state {
                "running" => String::new(),
                _ => format!(", {}", t.state_label),
            };
            let _ = writeln!(
                out,
                "target    PID {} `{}`, up {}, found by {}{state}",
                t.pid,
                t.argv.join(" "),
                human_duration(Duration::from_secs(t.age_s)),
                t.found_by.join(", ")
            );
        }
        None => {
            let _ = writeln!(out, "target    no server process found");
        }
    }
    let target_pid = report.target.as_ref().map(|t| t.pid);
    let only_the_target =
        matches!(report.port_holders.as_slice(), [one] if Some(one.pid) == target_pid);
    if !only_the_target {
        for holder in &report.port_holders {
            let _ = writeln!(out, "holder    {}", holder.describe());
        }
    }
    let supervisor = report.target.as_ref().and_then(|t| t.supervisor.as_ref());
    let _ = writeln!(out, "restart   {}", restart_line(report, supervisor));
    let h = &report.health;
    if h.ok {
        let _ = writeln!(
            out,
            "health    ok: status {} in {} ms",
            h.status.map_or("?".into(), |s| s.to_string()),
            h.latency_ms.unwrap_or(0)
        );
    } else {
        let _ = writeln!(
            out,
            "health    FAILED ({} attempt{}): {}",
            h.attempts,
            if h.attempts == 1 { "" } else { "s" },
            h.errors.join(" | ")
        );
    }
    if let Some(fds) = &report.fds {
        let k = &fds.by_kind;
        let _ = writeln!(
            out,
            "fds       {} open ({}): file {}, socket {}, pipe {}, other {}",
            fds.total,
            fds.describe_limit(),
            k.file,
            k.socket,
            k.pipe,
            k.other
        );
        for p in &fds.patterns {
            let _ = writeln!(out, "          {}", p.describe());
        }
    }
    if let Some(t) = &report.trend {
        let eta = t.projected_s.map_or("not growing".to_string(), |s| {
            format!(
                "limit {} in {}",
                t.limit,
                human_duration(Duration::from_secs(s))
            )
        });
        let growing = t
            .top_growing
            .as_ref()
            .map(|g| format!("; {}", g.describe()))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "trend     {:+.1} FDs/hour over {} samples: {eta}{growing}",
            t.rate_per_hour, t.samples
        );
    }
    if let Some(rss) = report.rss_bytes {
        let _ = writeln!(out, "memory    {} resident", human_size(rss));
    }
    for f in &report.files {
        if let Some(size) = f.size {
            let _ = writeln!(
                out,
                "file      {} {} (max {})",
                f.path,
                human_size(size),
                human_size(f.max_size)
            );
        }
    }
    let _ = writeln!(out, "verdict   {}", verdict_name(report.verdict));
    for r in &report.reasons {
        let mark = match r.severity {
            Severity::Hard => "restart",
            Severity::Soft => "warning",
            Severity::Predictive => "restart when idle",
        };
        let _ = writeln!(out, "  {mark}: {}: {}", r.code.as_str(), r.detail);
    }
    let a = &report.action;
    let would = match a.result {
        None => "nothing to do".to_string(),
        Some("deferred") => format!(
            "{} via {} deferred: {}",
            a.kind,
            a.method.unwrap_or("?"),
            a.detail.as_deref().unwrap_or("")
        ),
        Some("suppressed") => format!(
            "would {} via {}, but will not: {}",
            a.kind,
            a.method.unwrap_or("?"),
            a.detail.as_deref().unwrap_or("")
        ),
        Some(result) => format!(
            "{} via {}: {result} {}",
            a.kind,
            a.method.unwrap_or("?"),
            a.detail.as_deref().unwrap_or("")
        ),
    };
    let _ = writeln!(out, "action    {would}");
    let _ = writeln!(out, "bound     a run ends within {}s", report.bound_s);
    if let Some((newest, older)) = report.incidents.split_first() {
        let _ = writeln!(out, "incidents {newest} (newest)");
        for path in older {
            let _ = writeln!(out, "          {path}");
        }
    }
    out
}

/// How a restart would be done: the supervisor and what it says, or the method.
fn restart_line(report: &Report, supervisor: Option<&serde_json::Value>) -> String {
    let Some(s) = supervisor else {
        return format!("method {}", report.restart_method);
    };
    let text = |key: &str| s[key].as_str().unwrap_or("?").to_string();
    let job = &s["job"];
    let state = match (job["state"].as_str(), job["pid"].as_u64()) {
        (Some(state), Some(pid)) => format!("{state}, PID {pid}"),
        (Some(state), None) => state.to_string(),
        _ => format!("status unknown: {}", job["error"].as_str().unwrap_or("?")),
    };
    let orphan = if s["orphan"].as_bool() == Some(true) {
        "; the port holder is an ORPHAN of this job"
    } else if s["starting"].as_bool() == Some(true) {
        "; the supervisor is STARTING it: left to finish"
    } else {
        ""
    };
    format!(
        "via {} {} (found by {}, {}): {state}{orphan}",
        text("kind"),
        text("name"),
        text("evidence"),
        text("trust").replace('_', " ")
    )
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Healthy => "healthy",
        Verdict::Warning => "healthy, with warnings",
        Verdict::Unhealthy => "UNHEALTHY",
    }
}
