//! What `check` and `status` both read before deciding: the trust of the state and log
//! directories, the history (failing safe), and the decision's context drawn from it.

use std::time::{Duration, SystemTime};

use crate::config::Config;
use crate::decide;
use crate::history::{self, History};
use crate::log::{Event, Level, Logger};
use crate::probe::Observation;
use crate::probe::health::Prober;
use crate::safe_fs;
use crate::trend::{self, FdSample};
use crate::units;

/// A condition that persists is logged again at most this often.
pub(super) const REPEAT_QUIET: Duration = Duration::from_secs(3600);
/// Paths kept per FD sample, to name the one that grows.
const SAMPLED_PATHS: usize = 5;
/// Incidents listed by `status` and the `--json` report.
pub(super) const LISTED_INCIDENTS: usize = 5;

/// The health prober, built before anything is touched: a `health.ca_file` that can no
/// longer be used is a configuration error (src/config/tls.rs), said on stderr, not a
/// failed health check. `None`: the run exits 2.
pub(super) fn prober(cfg: &Config) -> Option<Prober> {
    Prober::new(&cfg.health)
        .map_err(|e| eprintln!("watchdog: {e}"))
        .ok()
}

/// The state directory and the log's directory must be ones only this user (or root)
/// can change, all the way up (docs/SECURITY.md): otherwise another user could plant a
/// link that makes this run write where they choose. Checked before anything is
/// created, locked or written; with `create` (a `check`), a missing one is then
/// created with mode 0700 and checked again. The message names the directory and the
/// fix.
pub(super) fn trusted_dirs(cfg: &Config, create: bool) -> Result<(), String> {
    let euid = safe_fs::own_euid();
    let log_dir = cfg.log.file.as_deref().map(|file| match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    });
    let dirs = std::iter::once(("[state] dir", cfg.state.dir.clone()))
        .chain(log_dir.map(|dir| ("the directory of [log] file", dir)));
    let dirs: Vec<_> = dirs.collect();
    let refuse = |what: &str, dir: &std::path::Path, e: safe_fs::SafeFsError| {
        format!(
            "refusing {what} {}: {e}; another user could make this run write where they \
             choose. Nothing was touched",
            dir.display()
        )
    };
    // One walk per distinct directory: the log's directory is often the state dir or
    // one above it.
    let mut seen = safe_fs::TrustedSoFar::default();
    let mut missing = Vec::new();
    for (what, dir) in &dirs {
        let exists = safe_fs::check_trusted_or_absent_with(dir, euid, &mut seen)
            .map_err(|e| refuse(what, dir, e))?;
        if !exists {
            missing.push((what, dir));
        }
    }
    // A directory found trusted above stays so (only this user and root can change it
    // or anything above it): only a missing one is created, then checked as a whole.
    if create {
        for (what, dir) in missing {
            safe_fs::ensure_private_dir(dir)
                .map_err(|e| format!("cannot use {what} {}: {e}", dir.display()))?;
        }
    }
    Ok(())
}

/// The history as of `now`, failing safe (src/history.rs). With a logger (a `check`,
/// dry run included, which saves the history too), an unusable file is moved aside and
/// reported at error level in the log; without one (`status`, which touches nothing)
/// the same is said on stderr and the file is left in place.
pub(super) fn load_history(
    cfg: &Config,
    now: SystemTime,
    mut logger: Option<&mut Logger>,
) -> History {
    let path = history::path(&cfg.state.dir);
    let acting = logger.is_some();
    let loaded = History::load(&path, now);
    let mut history = loaded.history;
    let mut say = |level: Level, message: String| match logger.as_deref_mut() {
        Some(logger) => logger.emit(&Event::new(level, "warning", message)),
        None => eprintln!("watchdog: {message}"),
    };
    if let Some(future) = loaded.future {
        say(Level::Warning, future);
    }
    let Some(why) = loaded.unusable else {
        // A hold set by an earlier run: the suppression counts max_restarts, so say
        // why, once per REPEAT_QUIET (status always).
        if let Some(until) = history.guard_held_until
            && history.guard_held(cfg.restart.window, now)
            && (!acting || history.due("warning:guard_held", REPEAT_QUIET, now))
        {
            say(
                Level::Warning,
                format!(
                    "the crash-loop guard counts as reached until {}: an earlier run could \
                     read neither the history nor the log to count restarts",
                    units::rfc3339(std::time::UNIX_EPOCH + Duration::from_secs(until))
                ),
            );
        }
        return history;
    };
    let kept = if acting {
        match history::move_aside(&path) {
            Ok(Some(aside)) => format!("moved it aside to {}", aside.display()),
            Ok(None) => "it is gone".to_string(),
            Err(e) => format!("could not move it aside ({e})"),
        }
    } else {
        "left it in place (status changes nothing)".to_string()
    };
    let window = cfg.restart.window;
    let guard = match history.rebuild_guard(cfg.log.file.as_deref(), window, now) {
        history::Rebuilt::FromLog(count) => format!(
            "the crash-loop guard counts {count} restart(s) within the last {} from the log",
            units::human_duration(window)
        ),
        history::Rebuilt::Held { until } => format!(
            "the log cannot be read either, so the crash-loop guard counts as reached \
             until {} (one restart.window)",
            units::rfc3339(std::time::UNIX_EPOCH + Duration::from_secs(until))
        ),
    };
    say(
        Level::Error,
        format!("{why}; {kept}; {guard}; starting a new history"),
    );
    history
}

/// What the decision takes from the history: the crash-loop guard's count, the FD
/// trend (this run's sample included), and how long a restart has been deferred.
pub(super) fn decision_context(
    cfg: &Config,
    history: &History,
    obs: &Observation,
    now: SystemTime,
    dry_run: bool,
) -> decide::Context {
    let trend = current_sample(obs).and_then(|sample| {
        let reading = obs.fd_reading()?;
        let (limit, _) = decide::fd_restart_limit(reading, cfg);
        trend::compute(&history.samples, &sample, cfg.fds.trend_window, limit)
    });
    decide::Context {
        now,
        restarts_in_window: if history.guard_held(cfg.restart.window, now) {
            // Neither the history nor the log could count them (see load_history).
            history
                .restarts_within(cfg.restart.window, now)
                .max(cfg.restart.max_restarts)
        } else {
            history.restarts_within(cfg.restart.window, now)
        },
        trend,
        deferred_since: history
            .deferred_since
            .map(|at| std::time::UNIX_EPOCH + Duration::from_secs(at)),
        dry_run,
        own_uid: crate::probe::os::own_uid(),
    }
}

/// This run's FD sample of the target, for the history and the trend.
pub(super) fn current_sample(obs: &Observation) -> Option<FdSample> {
    let target = obs.discovery.target.as_ref()?;
    let reading = obs.fd_reading()?;
    Some(FdSample {
        at: units::epoch_seconds(obs.at),
        pid: target.info.pid(),
        total: reading.total,
        patterns: reading
            .patterns
            .iter()
            .map(|p| (p.pattern.clone(), p.count))
            .collect(),
        top: reading
            .top_paths
            .iter()
            .take(SAMPLED_PATHS)
            .map(|p| (p.path.clone(), p.count))
            .collect(),
    })
}
