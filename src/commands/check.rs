//! `watchdog check` (the default subcommand): one run of observe → decide → act →
//! record. It trusts the state and log directories, takes the lock, loads the history,
//! then the four stages; `status` (src/commands/status.rs) stops after deciding.

use std::time::SystemTime;

use crate::act::{self, Outcome};
use crate::config::Config;
use crate::deadline::failsafe;
use crate::deadline::{Deadline, run_bound};
use crate::decide::{self, Decision, Plan, Severity, Verdict};
use crate::exit_code::ExitCode;
use crate::history::{self, History, RestartRecord};
use crate::incident;
use crate::lock::{self, LockError};
use crate::log::{Event, Level, Logger, Verbosity};
use crate::metrics;
use crate::notify;
use crate::probe::health::Prober;
use crate::probe::{self, Observation};
use crate::report;
use crate::units;

use super::state::{
    LISTED_INCIDENTS, REPEAT_QUIET, current_sample, decision_context, load_history, prober,
    trusted_dirs,
};
use super::{Options, print_json};

struct Run<'a> {
    cfg: &'a Config,
    opts: &'a Options,
    logger: Logger,
    history: History,
    /// When the observation was made: the run's one "now".
    now: SystemTime,
}

pub fn run(cfg: &Config, opts: &Options) -> ExitCode {
    let bound = run_bound(cfg);
    let Some(prober) = prober(cfg) else {
        return ExitCode::Usage;
    };
    let deadline = Deadline::after(bound);
    if let Err(refused) = trusted_dirs(cfg, true) {
        eprintln!("watchdog: {refused}");
        notify::after_run(cfg, opts.dry_run, None, ExitCode::Usage, deadline);
        return ExitCode::Usage;
    }
    let lock = match lock::acquire(&cfg.state.dir) {
        Ok(lock) => lock,
        Err(LockError::Held(path)) => {
            if opts.verbose() {
                eprintln!(
                    "watchdog: another run holds {}; skipping this one",
                    path.display()
                );
            }
            return ExitCode::Locked;
        }
        Err(e) => {
            eprintln!("watchdog: {e}; check [state] dir");
            notify::after_run(cfg, opts.dry_run, None, ExitCode::Usage, deadline);
            return ExitCode::Usage;
        }
    };
    let mut logger = Logger::open(&cfg.log, opts.verbosity);
    if let Some(moved) = &lock.moved_aside {
        logger.emit(&Event::new(
            Level::Warning,
            "warning",
            format!(
                "{} was not a regular file; moved it aside to {} (the watchdog never \
                 follows links in [state] dir)",
                cfg.state.dir.join("lock").display(),
                moved.display()
            ),
        ));
    }
    let history = load_history(cfg, SystemTime::now(), Some(&mut logger));
    let obs = probe::observe(cfg, opts.pid, history.memory(), &prober, deadline);
    // One clock for the run: the age the decision uses is the age the report shows.
    let mut run = Run {
        cfg,
        opts,
        logger,
        history,
        now: obs.at,
    };
    let context = run.context(&obs);
    let decision = decide::decide(&obs, cfg, &context);
    run.remember(&obs);
    run.note_deferral(&decision);
    run.log_decision(&obs, &decision);
    let outcome = match &decision.plan {
        Plan::Act(action) => {
            // Stopped from here on, the run did act: "restart failed"; once it has, the
            // outcome's own code (src/deadline/failsafe.rs).
            failsafe::relabel(ExitCode::RestartFailed, "restarting the server");
            let outcome = run.act(action, &obs, &decision, &prober, deadline);
            failsafe::relabel(
                exit_code(&decision, Some(&outcome)),
                "recording the restart",
            );
            Some(outcome)
        }
        _ => None,
    };
    // Durable (file and directory fsynced) when a restart was recorded: the crash-loop
    // guard counts it. A routine save is not: fsync took a healthy check from a median
    // of 8-10 ms to 24-26 ms on ext4, and a history a power cut leaves empty or torn
    // now fails safe (moved aside, the guard's count rebuilt from the log).
    if let Err(e) = run
        .history
        .save(&history::path(&cfg.state.dir), outcome.is_some())
    {
        eprintln!("watchdog: {e}");
    }
    let report = report::build(&report::Inputs {
        observation: &obs,
        decision: &decision,
        trend: context.trend.as_ref(),
        incidents: incident::latest(&cfg.state.dir, LISTED_INCIDENTS),
        outcome: outcome.as_ref(),
        exit_code: exit_code(&decision, outcome.as_ref()),
        port: cfg.port(),
        dry_run: opts.dry_run,
        bound,
        run: report::RunTimes::so_far(),
        counters: run.history.counters,
    });
    // After the history is safe, so that a collector directory that hangs cannot cost
    // it; a dry run touches nothing the scheduled runs own, and a manual one would make
    // a dead schedule look alive (docs/CONFIG.md, "[metrics]").
    if !opts.dry_run
        && let Err(e) = metrics::write(cfg, &report)
    {
        run.metrics_failed(&e);
    }
    let exit_code = report.exit_code;
    if opts.json {
        print_json(&report.with_user_names());
    }
    let logger = Some(&mut run.logger);
    notify::after_run(cfg, opts.dry_run, logger, exit_code, deadline);
    exit_code
}

/// The exit code a run ends with (docs/DESIGN.md, "Exit codes"; the codes and their
/// meanings are src/exit_code.rs). `status` ends as `check --dry-run` would: with no
/// outcome.
pub fn exit_code(decision: &Decision, outcome: Option<&Outcome>) -> ExitCode {
    match (&decision.plan, outcome) {
        (Plan::Nothing | Plan::Deferred { .. }, _) => ExitCode::Healthy,
        // 4 is "unhealthy but not acted on": a predictive restart put off by a dry
        // run or the guard leaves a server that is healthy, with a warning.
        (Plan::Suppressed { .. }, _) if decision.verdict != Verdict::Unhealthy => ExitCode::Healthy,
        (Plan::Suppressed { .. }, _) => ExitCode::NotActed,
        (Plan::Act(_), Some(outcome)) if outcome.ok => ExitCode::Restarted,
        (Plan::Act(_), _) => ExitCode::RestartFailed,
    }
}

impl Run<'_> {
    fn context(&self, obs: &Observation) -> decide::Context {
        decision_context(self.cfg, &self.history, obs, self.now, self.opts.dry_run)
    }

    /// A deferral's clock starts at the first deferred run and stops when the plan
    /// changes.
    fn note_deferral(&mut self, decision: &Decision) {
        if self.opts.dry_run {
            return;
        }
        match decision.plan {
            Plan::Deferred { .. } => {
                self.history
                    .deferred_since
                    .get_or_insert(units::epoch_seconds(self.now));
            }
            _ => self.history.deferred_since = None,
        }
    }

    /// The FD sample for the trend and the PID to search first next time.
    fn remember(&mut self, obs: &Observation) {
        let Some(target) = &obs.discovery.target else {
            return;
        };
        // A server found without a supervisor no longer has one to remember.
        self.history.supervisor = obs
            .restart
            .supervision
            .as_ref()
            .map(|s| s.supervisor.clone());
        self.history.last_pid = Some(target.info.pid());
        // Whom it runs as, where root read it for the restart: a later start of a
        // server that is down runs as them (src/probe/restart_path.rs).
        use crate::probe::restart_path::RestartPath;
        match &obs.readiness {
            Some(Ok(RestartPath::Replay(launch))) if launch.user.is_some() => {
                self.history.last_user = launch.user.clone();
            }
            Some(Ok(RestartPath::StartCommand {
                user: Some(user), ..
            })) => {
                self.history.last_user = Some(user.clone());
            }
            _ => {}
        }
        if let Some(sample) = current_sample(obs) {
            self.history
                .record_sample(sample, self.cfg.fds.trend_window);
        }
    }

    /// Healthy: at most a heartbeat. Warnings and suppressions that persist are logged
    /// once per REPEAT_QUIET, not every minute; a manual run (dry run, verbose) always
    /// shows them.
    fn log_decision(&mut self, obs: &Observation, decision: &Decision) {
        let pid = obs.discovery.target.as_ref().map(|t| t.info.pid());
        let dry_run = self.opts.dry_run;
        let (hard, soft): (Vec<_>, Vec<_>) = decision
            .reasons
            .iter()
            .partition(|r| r.severity == Severity::Hard);
        let codes =
            |rs: &[&decide::Reason]| -> Vec<String> { rs.iter().map(|r| code(r)).collect() };
        let details = |rs: &[&decide::Reason]| -> String {
            rs.iter()
                .map(|r| r.detail.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        };

        if decision.reasons.is_empty() {
            self.heartbeat(obs, pid);
            return;
        }
        if !soft.is_empty() && self.due(&format!("warning:{}", codes(&soft).join(","))) {
            let event = Event::new(Level::Warning, "warning", details(&soft))
                .pid(pid)
                .reasons(codes(&soft))
                .dry_run(dry_run);
            self.logger.emit(&event);
        }
        if let Plan::Deferred { would, why } = &decision.plan {
            if self.due("deferred") {
                let message = format!(
                    "restart deferred: would {} PID {} via {}, but {why}",
                    would.kind.as_str(),
                    pid.map_or("?".into(), |p| p.to_string()),
                    would.method.as_str()
                );
                let event = Event::new(Level::Warning, "warning", message)
                    .pid(pid)
                    .reasons(codes(&soft))
                    .dry_run(dry_run)
                    .with("method", would.method.as_str())
                    .with("deferred", true);
                self.logger.emit(&event);
            }
            return;
        }
        if hard.is_empty() {
            return;
        }
        let unhealthy = Event::new(Level::Warning, "unhealthy", details(&hard))
            .pid(pid)
            .reasons(codes(&hard))
            .dry_run(dry_run);
        let orphan = self.orphan_event(obs);
        match &decision.plan {
            Plan::Suppressed { would, why } => {
                let key = format!("suppressed:{}:{}", codes(&hard).join(","), why.key());
                if !self.due(&key) {
                    return;
                }
                self.logger.emit(&unhealthy);
                if let Some(event) = orphan {
                    self.logger.emit(&event.dry_run(dry_run));
                }
                let target = pid.map_or("a new server".into(), |p| format!("PID {p}"));
                let message = format!(
                    "would {} {target} via {}; not acting: {}",
                    would.kind.as_str(),
                    would.method.as_str(),
                    report::suppression_text(why)
                );
                let event = Event::new(Level::Warning, "suppressed", message)
                    .pid(pid)
                    .reasons(codes(&hard))
                    .dry_run(dry_run)
                    .with("method", would.method.as_str())
                    .with("would", would.kind.as_str())
                    .with("why", why.key());
                self.logger.emit(&event);
            }
            _ => {
                self.logger.emit(&unhealthy);
                if let Some(event) = orphan {
                    self.logger.emit(&event.dry_run(dry_run));
                }
            }
        }
    }

    /// The double-fork signature, with both PIDs and the evidence; when orphans keep
    /// coming back, the likely cause and its fix.
    fn orphan_event(&self, obs: &Observation) -> Option<Event> {
        let supervision = obs.restart.supervision.as_ref()?;
        let orphan = supervision.orphan.as_ref()?;
        let supervisor = &supervision.supervisor;
        let job = match orphan.job_pid {
            Some(pid) => format!("PID {pid}"),
            None => "nothing".to_string(),
        };
        let mut message = format!(
            "PID {} holds the port and carries the identity of {} ({}), but the supervisor runs {job} for that job",
            orphan.holder,
            supervisor.describe(),
            supervisor.evidence
        );
        let earlier = self
            .history
            .orphans_within(self.cfg.restart.window, self.now);
        if earlier > 0 {
            message.push_str(&format!(
                "; orphans recur ({} cleared in the last {}): the supervised program most likely \
                 exits after starting the server in the background; run the server in the \
                 foreground under the supervisor (e.g. `start.sh --foreground`, or exec the server)",
                earlier,
                units::human_duration(self.cfg.restart.window)
            ));
        }
        Some(
            Event::new(Level::Warning, "orphan", message)
                .pid(Some(orphan.holder))
                .reasons(vec!["orphan_port_holder".into()])
                .with("method", supervisor.kind.as_str())
                .with("orphan_pid", orphan.holder)
                .with("job_pid", orphan.job_pid)
                .with("supervisor", supervisor.describe())
                .with("evidence", supervisor.evidence.clone())
                .with("recurring", earlier > 0),
        )
    }

    fn heartbeat(&mut self, obs: &Observation, pid: Option<u32>) {
        if !self.cfg.log.heartbeat && self.opts.verbosity != Verbosity::Verbose {
            return;
        }
        let fds = obs.fd_reading().map_or("?".into(), |f| f.total.to_string());
        let message = format!(
            "healthy: status {} in {} ms, {fds} FDs",
            obs.health.status.map_or("?".into(), |s| s.to_string()),
            obs.health.latency_ms.unwrap_or(0)
        );
        let event = Event::new(Level::Info, "healthy", message).pid(pid);
        if self.cfg.log.heartbeat {
            self.logger.emit(&event);
        } else {
            eprintln!("watchdog: {}", event.line());
        }
    }

    /// Logged once per REPEAT_QUIET, not every minute; the history, saved already, is
    /// saved again to remember when.
    fn metrics_failed(&mut self, e: &metrics::MetricsError) {
        if self.due("metrics_failed") {
            self.logger.emit(&e.event());
            if let Err(e) = self
                .history
                .save(&history::path(&self.cfg.state.dir), false)
            {
                eprintln!("watchdog: {e}");
            }
        }
    }

    fn due(&mut self, key: &str) -> bool {
        self.opts.dry_run || self.opts.verbose() || self.history.due(key, REPEAT_QUIET, self.now)
    }

    /// Snapshot, announce, act, report the result and remember it for the guard.
    fn act(
        &mut self,
        action: &decide::Action,
        obs: &Observation,
        decision: &Decision,
        prober: &Prober,
        deadline: Deadline,
    ) -> Outcome {
        let target = obs.discovery.target.as_ref().map(|t| &t.info);
        let pid = target.map(|t| t.pid());
        let method = action.method.as_str();
        let reasons: Vec<String> = decision
            .reasons
            .iter()
            .filter(|r| r.severity != Severity::Soft)
            .map(code)
            .collect();
        if let Some(target) = target {
            self.snapshot(target, obs, decision);
        }
        let (event, message) = match (action.kind, pid) {
            (decide::ActionKind::KillOrphan, Some(pid)) => (
                "restart",
                format!("killing orphan PID {pid}, then restarting via {method}"),
            ),
            (_, Some(pid)) => ("restart", format!("restarting PID {pid} via {method}")),
            (_, None) => ("start", format!("starting the server via {method}")),
        };
        self.logger.emit(
            &Event::new(Level::Warning, event, message)
                .pid(pid)
                .reasons(reasons.clone())
                .with("method", method),
        );
        // The crash-loop guard counts what the history holds: a restart it could not
        // record would be repeated every minute without limit.
        self.history.record_restart(RestartRecord {
            at: units::epoch_seconds(SystemTime::now()),
            ts: units::rfc3339(SystemTime::now()),
            kind: action.kind,
            method: method.into(),
            old_pid: pid,
            new_pid: None,
            reasons: reasons.clone(),
            result: "attempted".into(),
        });
        self.history.counters.count_restart();
        let supervisor = obs.restart.supervision.as_ref().map(|s| &s.supervisor);
        let outcome = match self.history.save(&history::path(&self.cfg.state.dir), true) {
            Err(e) => Outcome::failed(
                &[],
                format!(
                    "not acting: {e}, so the crash-loop guard could not count this restart; \
                     make [state] dir writable"
                ),
            ),
            Ok(()) => act::perform(
                action,
                target,
                supervisor,
                obs.readiness.as_ref().and_then(|r| r.as_ref().ok()),
                &act::Context {
                    cfg: self.cfg,
                    prober,
                    deadline,
                    port: self.cfg.port(),
                    state_dir: &self.cfg.state.dir,
                },
            ),
        };
        let event = if outcome.ok {
            Event::new(Level::Info, "restarted", outcome.detail.clone())
        } else {
            Event::new(Level::Error, "restart_failed", outcome.detail.clone())
        };
        self.logger.emit(
            &event
                .pid(pid)
                .reasons(reasons.clone())
                .with("method", method)
                .with("new_pid", outcome.new_pid)
                .with("new_fds", outcome.new_fds),
        );
        if let Some(attempt) = self.history.restarts.last_mut() {
            attempt.new_pid = outcome.new_pid;
            attempt.result = if outcome.ok { "restarted" } else { "failed" }.into();
        }
        if let Some(new_pid) = outcome.new_pid {
            self.history.last_pid = Some(new_pid);
        }
        if !outcome.ok {
            self.history.counters.count_failure();
        }
        outcome
    }

    /// Evidence first: a snapshot that cannot be written is reported, and the restart
    /// goes ahead — a server that is down matters more than its post-mortem.
    fn snapshot(
        &mut self,
        target: &crate::probe::os::ProcessInfo,
        obs: &Observation,
        decision: &Decision,
    ) {
        let written = incident::write(
            &self.cfg.state.dir,
            target,
            obs,
            &decision.reasons,
            &self.history.samples,
            &self.cfg.fds.paths,
        );
        let event = match written {
            Ok(path) => Event::new(
                Level::Info,
                "incident",
                format!(
                    "snapshot of PID {} saved to {}",
                    target.pid(),
                    path.display()
                ),
            )
            .with("incident", path.display().to_string()),
            Err(e) => Event::new(
                Level::Warning,
                "incident",
                format!(
                    "cannot save the snapshot of PID {} in {}: {e}",
                    target.pid(),
                    incident::dir(&self.cfg.state.dir).display()
                ),
            ),
        };
        self.logger.emit(&event.pid(Some(target.pid())));
    }
}

fn code(reason: &decide::Reason) -> String {
    reason.code.as_str().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::Suppression;

    #[test]
    fn a_suppressed_restart_exits_4_only_when_the_server_is_unhealthy() {
        use crate::config::Method;
        use crate::decide::{Action, ActionKind};
        let suppressed = |verdict| Decision {
            verdict,
            reasons: Vec::new(),
            plan: Plan::Suppressed {
                would: Action {
                    kind: ActionKind::Restart,
                    method: Method::Builtin,
                },
                why: Suppression::DryRun,
            },
        };
        assert_eq!(
            exit_code(&suppressed(Verdict::Unhealthy), None),
            ExitCode::NotActed
        );
        assert_eq!(
            exit_code(&suppressed(Verdict::Warning), None),
            ExitCode::Healthy
        );
    }
}
