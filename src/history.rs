//! The small history file (docs/DESIGN.md, "State between runs"): recent restarts for the
//! crash-loop guard, recent FD samples for the trend, and the last PID seen (searched first
//! next run). Bounded in size, written atomically through `safe_fs`, and it fails safe
//! (docs/SECURITY.md): a file that cannot be used (corrupt, over `MAX_BYTES`, a FIFO or a
//! symlink) is moved aside for the operator, the crash-loop guard's count is rebuilt from
//! the log's restart events, and when neither can be read the guard holds for one window.
//! Records dated after now (clock skew) are dropped, not obeyed for years.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::decide::ActionKind;
use crate::probe::Memory;
use crate::probe::restart_path::Credentials;
use crate::probe::supervisor::Supervisor;
use crate::safe_fs::{self, SafeFsError};
use crate::trend::FdSample;
use crate::units::{epoch_seconds, rfc3339};

/// At most this many of each record are kept, whatever the clock does.
const MAX_RESTARTS: usize = 100;
const MAX_SAMPLES: usize = 720;
const VERSION: u32 = 1;
/// FD samples are kept this long, or for the trend window if that is longer: a
/// window widened later still finds hours of data.
const SAMPLES_KEPT: Duration = Duration::from_secs(12 * 3600);
/// Within the last `FULL_RESOLUTION`, samples at least `RECENT_STEP` apart are kept;
/// older ones one per `THINNED_STEP`. The newest is always kept. That bounds the file
/// (read and rewritten every run) at about 250 samples for any run frequency (190 at
/// one run a minute): a file at the 720-sample cap, where the old rule took a
/// watchdog in two days, cost 2 to 2.8 ms a run, about as much as reading the FDs.
const FULL_RESOLUTION: Duration = Duration::from_secs(3600);
const RECENT_STEP: Duration = Duration::from_secs(30);
const THINNED_STEP: Duration = Duration::from_secs(300);
/// A history past this size is not read: the bounds above keep a real one far below
/// (tens of KiB), and reading 100 MB cost 300 MB of memory.
pub const MAX_BYTES: u64 = 4 * 1024 * 1024;
/// Unusable history files kept beside the new one, newest first.
const KEPT_ASIDE: usize = 5;
/// The file holds what the crash-loop guard counts: readable by its user only.
const MODE: u32 = 0o600;

/// The history file in the state directory `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("history.json")
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub version: u32,
    #[serde(default)]
    pub last_pid: Option<u32>,
    /// The supervisor that owned the server last time: when the server is down there
    /// is no process to read it from, and its job is the one to start. Its `trust`
    /// says what vouched for it then; one that nothing vouched for is not started
    /// (`probe::supervisor::Trust::survives`).
    #[serde(default)]
    pub supervisor: Option<Supervisor>,
    /// Whom the server last seen ran as (uid, gid, groups), where a root watchdog read
    /// it: a server that is down is started as them, not as root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_user: Option<Credentials>,
    #[serde(default)]
    pub restarts: Vec<RestartRecord>,
    #[serde(default)]
    pub samples: Vec<FdSample>,
    /// When each repeatable message (a warning, a suppression) was last logged, so that
    /// a condition that lasts for hours is logged once an hour, not once a minute.
    #[serde(default)]
    pub last_logged: BTreeMap<String, u64>,
    /// When a predictive restart was first put off because the server was busy.
    #[serde(default)]
    pub deferred_since: Option<u64>,
    /// Until when the crash-loop guard counts as reached because neither the history
    /// nor the log could say how many restarts the window holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard_held_until: Option<u64>,
    /// Counters since the history began, kept apart from `restarts` (pruned to
    /// `MAX_RESTARTS` and read for the window only) so that they never go down while
    /// the file lasts: Prometheus's `watchdog_restarts_total` (src/metrics.rs).
    #[serde(default)]
    pub counters: Counters,
}

/// What the watchdog has done since its history began (docs/REPORT.md, "The report").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Every restart, start or orphan kill attempted, failed ones included: what the
    /// crash-loop guard counts.
    #[serde(default)]
    pub restarts_total: u64,
    /// Those that ended in `restart_failed`.
    #[serde(default)]
    pub restart_failures_total: u64,
}

impl Counters {
    /// One more attempt (saturating: the number comes from a file).
    pub fn count_restart(&mut self) {
        self.restarts_total = self.restarts_total.saturating_add(1);
    }

    pub fn count_failure(&mut self) {
        self.restart_failures_total = self.restart_failures_total.saturating_add(1);
    }
}

/// One restart (or start) the watchdog carried out or attempted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartRecord {
    /// Seconds since the epoch; what the window arithmetic uses.
    pub at: u64,
    /// The same instant, readable.
    pub ts: String,
    pub kind: ActionKind,
    pub method: String,
    pub old_pid: Option<u32>,
    pub new_pid: Option<u32>,
    pub reasons: Vec<String>,
    /// "restarted" or "failed"; "attempted" while it is under way (saved before acting,
    /// so a run that dies while acting still counts towards the crash-loop guard).
    pub result: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot write history {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: SafeFsError,
    },
}

/// A history read from disk, with what was wrong with it.
pub struct Loaded {
    pub history: History,
    /// Why the file could not be used at all (corrupt, too large, not a regular file,
    /// unreadable): an error; the crash-loop guard's count must come from elsewhere
    /// ([`History::rebuild_guard`]) and the file should be moved aside
    /// ([`move_aside`]).
    pub unusable: Option<String>,
    /// Records dated after now that were dropped (clock skew, a hand edit).
    pub future: Option<String>,
}

/// What [`History::rebuild_guard`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebuilt {
    /// This many restarts within the window, read from the log.
    FromLog(usize),
    /// Neither the history nor the log could be read: the guard holds until then
    /// (seconds since the epoch).
    Held { until: u64 },
}

impl History {
    /// Reads the history at `path` as of `now`, touching nothing: never through a
    /// symlink, never blocking on a FIFO, at most `MAX_BYTES`.
    pub fn load(path: &Path, now: SystemTime) -> Loaded {
        let unusable = |why: String| Loaded {
            history: History::new(),
            unusable: Some(why),
            future: None,
        };
        let bytes = match safe_fs::read_regular(path, MAX_BYTES) {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => {
                return Loaded {
                    history: History::new(),
                    unusable: None,
                    future: None,
                };
            }
            Err(e @ SafeFsError::TooLarge { .. }) => {
                return unusable(format!("history {e}, far more than it ever holds"));
            }
            Err(e) => return unusable(format!("cannot read history: {e}")),
        };
        let mut history = match serde_json::from_slice::<History>(&bytes) {
            Ok(history) => history,
            Err(e) => return unusable(format!("history {} is corrupt ({e})", path.display())),
        };
        let dropped = history.drop_future(epoch_seconds(now));
        Loaded {
            history,
            unusable: None,
            future: (dropped > 0).then(|| {
                format!(
                    "history {} holds {dropped} record(s) dated after now (the clock went \
                     back, or the file was edited); ignoring them",
                    path.display()
                )
            }),
        }
    }

    /// Drops what is dated after `now_s`: a restart "in the future" would keep the
    /// crash-loop guard shut until that date, a message "logged in the future" would be
    /// silenced as long. Returns how many were dropped.
    fn drop_future(&mut self, now_s: u64) -> usize {
        let before = self.restarts.len() + self.samples.len() + self.last_logged.len();
        self.restarts.retain(|r| r.at <= now_s);
        self.samples.retain(|s| s.at <= now_s);
        self.last_logged.retain(|_, at| *at <= now_s);
        let mut dropped =
            before - (self.restarts.len() + self.samples.len() + self.last_logged.len());
        if self.deferred_since.is_some_and(|at| at > now_s) {
            self.deferred_since = None;
            dropped += 1;
        }
        dropped
    }

    /// After an unusable history: the crash-loop guard's count is rebuilt from the
    /// `restart` and `start` events of the log `log_file` within `window`, kept as
    /// records so that the next runs count them too. When the log cannot be read
    /// either, the guard holds for one window (remembered in the history), since a
    /// crash loop the watchdog cannot see must not restart the server every minute.
    pub fn rebuild_guard(
        &mut self,
        log_file: Option<&Path>,
        window: Duration,
        now: SystemTime,
    ) -> Rebuilt {
        let now_s = epoch_seconds(now);
        let since = now_s.saturating_sub(window.as_secs());
        match log_file.and_then(|path| crate::log::actions_since(path, since)) {
            Some(actions) => {
                let mut count = 0;
                for action in actions.into_iter().filter(|a| a.at <= now_s) {
                    count += 1;
                    self.record_restart(RestartRecord {
                        at: action.at,
                        ts: rfc3339(UNIX_EPOCH + Duration::from_secs(action.at)),
                        // The log yields `restart` and `start` events only
                        // (`log::actions_since`); each counts towards the guard.
                        kind: ActionKind::parse(&action.event).unwrap_or(ActionKind::Restart),
                        method: action.method,
                        old_pid: action.pid,
                        new_pid: None,
                        reasons: Vec::new(),
                        result: "from_log".into(),
                    });
                }
                Rebuilt::FromLog(count)
            }
            None => {
                let until = now_s.saturating_add(window.as_secs());
                self.guard_held_until = Some(until);
                Rebuilt::Held { until }
            }
        }
    }

    /// Whether the crash-loop guard is held at `now` (see [`History::rebuild_guard`]).
    /// A mark further ahead than one `window` cannot be one this watchdog set: ignored.
    pub fn guard_held(&self, window: Duration, now: SystemTime) -> bool {
        let now_s = epoch_seconds(now);
        self.guard_held_until
            .is_some_and(|until| now_s < until && until <= now_s.saturating_add(window.as_secs()))
    }

    pub fn new() -> History {
        History {
            version: VERSION,
            ..History::default()
        }
    }

    /// What the next run should look at first.
    pub fn memory(&self) -> Memory<'_> {
        Memory {
            last_pid: self.last_pid,
            supervisor: self.supervisor.as_ref(),
            last_user: self.last_user.as_ref(),
        }
    }

    /// Orphans cleared within `window` before `now`: more than one means the
    /// supervised program keeps forking the server away.
    pub fn orphans_within(&self, window: Duration, now: SystemTime) -> u32 {
        let since = epoch_seconds(now).saturating_sub(window.as_secs());
        self.restarts
            .iter()
            .filter(|r| r.at > since && r.kind == ActionKind::KillOrphan)
            .count() as u32
    }

    /// Restarts within `window` before `now`: what the crash-loop guard counts. Every
    /// attempt counts, failed ones too, or a restart that always fails would be
    /// retried every minute for ever.
    pub fn restarts_within(&self, window: Duration, now: SystemTime) -> u32 {
        let since = epoch_seconds(now).saturating_sub(window.as_secs());
        self.restarts.iter().filter(|r| r.at > since).count() as u32
    }

    pub fn record_restart(&mut self, record: RestartRecord) {
        self.restarts.push(record);
        trim_front(&mut self.restarts, MAX_RESTARTS);
    }

    /// Whether a message identified by `key` is due: not logged within `quiet` before
    /// `now`. Marks it logged when it is.
    pub fn due(&mut self, key: &str, quiet: Duration, now: SystemTime) -> bool {
        let now_s = epoch_seconds(now);
        let due = self
            .last_logged
            .get(key)
            .is_none_or(|&at| now_s >= at.saturating_add(quiet.as_secs()));
        if due {
            self.last_logged.insert(key.to_string(), now_s);
        }
        // Keys of conditions that ended long ago would otherwise pile up.
        let stale = now_s.saturating_sub(quiet.as_secs() * 24);
        self.last_logged.retain(|_, at| *at >= stale);
        due
    }

    /// Adds a sample, then drops the samples older than `SAMPLES_KEPT` (or `window`,
    /// if longer) and thins the rest (see `RECENT_STEP`, `THINNED_STEP`).
    pub fn record_sample(&mut self, sample: FdSample, window: Duration) {
        let now = sample.at;
        let kept_since = now.saturating_sub(SAMPLES_KEPT.max(window).as_secs());
        let recent_since = now.saturating_sub(FULL_RESOLUTION.as_secs());
        self.samples.push(sample);
        let newest = self.samples.len() - 1;
        let mut last_kept: Option<(u32, u64)> = None;
        let mut index = 0;
        self.samples.retain(|s| {
            let is_newest = index == newest;
            index += 1;
            if s.at < kept_since && !is_newest {
                return false;
            }
            let step = if s.at >= recent_since {
                RECENT_STEP
            } else {
                THINNED_STEP
            };
            let keep = is_newest
                || last_kept.is_none_or(|(pid, at)| {
                    pid != s.pid || s.at >= at.saturating_add(step.as_secs())
                });
            if keep {
                last_kept = Some((s.pid, s.at));
            }
            keep
        });
        trim_front(&mut self.samples, MAX_SAMPLES);
    }

    /// Replaces the file atomically (`safe_fs::write_atomic`: a new file with an
    /// unpredictable name, `O_EXCL`, renamed over the old one), so a crash mid-write
    /// leaves the previous history intact and a planted link is never written through.
    /// `durable` also fsyncs the file and the directory.
    pub fn save(&self, path: &Path, durable: bool) -> Result<(), HistoryError> {
        let wrap = |source| HistoryError::Write {
            path: path.to_path_buf(),
            source,
        };
        let text = serde_json::to_vec(self)
            .map_err(|e| SafeFsError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other(e),
            })
            .map_err(wrap)?;
        safe_fs::write_atomic(path, &text, MODE, durable).map_err(wrap)
    }
}

/// Moves an unusable history at `path` aside to `history.json.corrupt-TIME` (a symlink
/// or FIFO is moved as it is, never followed or opened), keeping the newest
/// `KEPT_ASIDE` of them. `Ok(None)` when nothing is there any more. A directory is
/// left where it is (nothing the watchdog writes looks like one): the saves then fail
/// and say so, and the operator removes it.
pub fn move_aside(path: &Path) -> Result<Option<PathBuf>, SafeFsError> {
    match fs::symlink_metadata(path) {
        Err(_) => return Ok(None),
        Ok(meta) if meta.is_dir() => {
            return Err(SafeFsError::NotRegular {
                path: path.to_path_buf(),
                kind: "a directory; remove it",
            });
        }
        Ok(_) => {}
    }
    let moved = safe_fs::move_aside(path, "corrupt")?;
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
        let prefix = format!("{}.corrupt-", name.to_string_lossy());
        let mut aside: Vec<PathBuf> = fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        aside.sort();
        let excess = aside.len().saturating_sub(KEPT_ASIDE);
        for old in &aside[..excess] {
            // Unlinks the name; a link is removed, not what it points at.
            let _ = fs::remove_file(old);
        }
    }
    Ok(Some(moved))
}

fn trim_front<T>(items: &mut Vec<T>, keep: usize) {
    if items.len() > keep {
        items.drain(..items.len() - keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The history file keeps an action's kind as the report and the log name it, so
    /// files written before it was typed read back the same.
    #[test]
    fn action_kinds_are_kept_as_the_report_names_them() {
        for kind in [
            ActionKind::Restart,
            ActionKind::Start,
            ActionKind::KillOrphan,
        ] {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.as_str());
            assert_eq!(serde_json::from_value::<ActionKind>(json).unwrap(), kind);
            assert_eq!(ActionKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ActionKind::parse("healthy"), None);
    }

    fn restart_at(at: u64) -> RestartRecord {
        RestartRecord {
            at,
            ts: String::new(),
            kind: ActionKind::Restart,
            method: "builtin".into(),
            old_pid: Some(1),
            new_pid: Some(2),
            reasons: vec!["health_failed".into()],
            result: "restarted".into(),
        }
    }

    /// A history written before the counters existed reads with both at 0; the
    /// counters outlive the pruning of old restart records.
    #[test]
    fn counters_read_from_old_files_and_survive_the_pruning_of_restarts() {
        let old = r#"{"version": 1, "restarts": [], "samples": []}"#;
        let h: History = serde_json::from_str(old).unwrap();
        assert_eq!(h.counters, Counters::default());

        let mut h = History::new();
        for at in 0..(MAX_RESTARTS as u64 + 10) {
            h.record_restart(restart_at(at));
            h.counters.count_restart();
        }
        h.counters.count_failure();
        assert_eq!(h.restarts.len(), MAX_RESTARTS);
        let dir = tempfile::tempdir().unwrap();
        let path = super::path(dir.path());
        h.save(&path, false).unwrap();
        let loaded = History::load(&path, now()).history;
        assert_eq!(loaded.counters.restarts_total, MAX_RESTARTS as u64 + 10);
        assert_eq!(loaded.counters.restart_failures_total, 1);

        let mut full = Counters {
            restarts_total: u64::MAX,
            restart_failures_total: u64::MAX,
        };
        full.count_restart();
        full.count_failure();
        assert_eq!(full.restarts_total, u64::MAX, "saturates, never wraps to 0");
    }

    #[test]
    fn counts_restarts_inside_the_window_only() {
        let mut h = History::new();
        for at in [1000, 5000, 6000, 6500] {
            h.record_restart(restart_at(at));
        }
        let now = UNIX_EPOCH + Duration::from_secs(7000);
        assert_eq!(h.restarts_within(Duration::from_secs(3600), now), 3);
        assert_eq!(h.restarts_within(Duration::from_secs(600), now), 1);
    }

    #[test]
    fn repeated_messages_are_due_once_per_quiet_period() {
        let mut h = History::new();
        let hour = Duration::from_secs(3600);
        let t0 = UNIX_EPOCH + Duration::from_secs(100_000);
        assert!(h.due("warning:stale_pidfile", hour, t0));
        assert!(!h.due("warning:stale_pidfile", hour, t0 + Duration::from_secs(60)));
        assert!(h.due("warning:fds_near_limit", hour, t0 + Duration::from_secs(60)));
        assert!(h.due("warning:stale_pidfile", hour, t0 + hour));
    }

    fn sample(at: u64, pid: u32) -> FdSample {
        FdSample {
            at,
            pid,
            total: at,
            patterns: vec![],
            top: vec![],
        }
    }

    const WINDOW: Duration = Duration::from_secs(6 * 3600);

    #[test]
    fn old_samples_are_thinned_to_one_per_five_minutes() {
        let mut h = History::new();
        // One a minute for three hours.
        for minute in 0..180u64 {
            h.record_sample(sample(minute * 60, 7), WINDOW);
        }
        let now = 179 * 60;
        let recent = h.samples.iter().filter(|s| s.at + 3600 >= now).count();
        let old: Vec<u64> = h
            .samples
            .iter()
            .filter(|s| s.at + 3600 < now)
            .map(|s| s.at)
            .collect();
        assert_eq!(recent, 61, "the last hour at full resolution");
        assert!(old.windows(2).all(|w| w[1] - w[0] >= 300), "{old:?}");
        assert_eq!(old.len(), 24, "two hours at one per five minutes: {old:?}");
    }

    #[test]
    fn stays_bounded() {
        let mut h = History::new();
        for at in 0..(MAX_RESTARTS as u64 + 10) {
            h.record_restart(restart_at(at));
        }
        // A new PID every run, so none is thinned.
        for at in 0..(MAX_SAMPLES as u64 + 10) {
            h.record_sample(sample(10_000 + at, at as u32), WINDOW);
        }
        assert_eq!(h.restarts.len(), MAX_RESTARTS);
        assert_eq!(h.restarts[0].at, 10, "the oldest are dropped");
        assert_eq!(h.samples.len(), MAX_SAMPLES);
    }

    #[test]
    fn a_garbage_time_in_the_file_does_not_overflow() {
        let mut h = History::new();
        h.last_logged.insert("warning:x".into(), u64::MAX);
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert!(!h.due("warning:x", Duration::from_secs(3600), now));
    }

    #[test]
    fn a_garbage_sample_time_in_the_file_does_not_overflow() {
        let mut h = History::new();
        h.samples.push(sample(u64::MAX, 7));
        h.samples.push(sample(1_800_000_000, 7));
        h.record_sample(sample(1_800_000_060, 7), WINDOW);
        assert_eq!(h.samples.last().map(|s| s.at), Some(1_800_000_060));
    }

    #[test]
    fn frequent_runs_keep_one_sample_per_30_s_and_the_newest() {
        let mut h = History::new();
        // A run every 5 s for two hours.
        for at in (0..7200u64).step_by(5) {
            h.record_sample(sample(100_000 + at, 7), WINDOW);
        }
        let ats: Vec<u64> = h.samples.iter().map(|s| s.at).collect();
        assert_eq!(ats.last(), Some(&(100_000 + 7195)), "the newest is kept");
        let spaced = &ats[..ats.len() - 1];
        assert!(spaced.windows(2).all(|w| w[1] - w[0] >= 30), "{ats:?}");
        assert!(
            h.samples.len() <= 120 + 12 + 1,
            "{} samples",
            h.samples.len()
        );
    }

    #[test]
    fn samples_older_than_twelve_hours_or_the_window_are_dropped() {
        let day = 24 * 3600;
        for (window_h, kept_h) in [(6, 12), (20, 20)] {
            let mut h = History::new();
            for minute in 0..(day / 60) {
                h.record_sample(sample(minute * 60, 7), Duration::from_secs(window_h * 3600));
            }
            let now = day - 60;
            let oldest = h.samples.first().map(|s| s.at).unwrap();
            assert!(
                now - oldest <= kept_h * 3600,
                "window {window_h} h: {oldest}"
            );
            assert!(
                now - oldest >= kept_h * 3600 - 300,
                "window {window_h} h: {oldest}"
            );
        }
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn round_trips_and_reports_a_corrupt_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = super::path(dir.path());
        assert!(
            History::load(&path, now()).unusable.is_none(),
            "absent is fine"
        );

        let mut h = History::new();
        h.last_pid = Some(42);
        h.record_restart(restart_at(10));
        h.save(&path, true).unwrap();
        let loaded = History::load(&path, now());
        assert!(loaded.unusable.is_none() && loaded.future.is_none());
        assert_eq!(loaded.history, h);

        fs::write(&path, b"{\"version\": 1, \"restarts\": [tru").unwrap();
        let loaded = History::load(&path, now());
        let problem = loaded.unusable.expect("corruption is reported");
        assert!(problem.contains("corrupt"), "{problem}");
        assert_eq!(loaded.history, History::new());
    }

    #[test]
    fn a_save_never_writes_through_planted_links() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        let path = super::path(dir.path());
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        std::os::unix::fs::symlink(&victim, path.with_extension("json.tmp")).unwrap();
        let loaded = History::load(&path, now());
        assert!(loaded.unusable.unwrap().contains("symbolic link"));
        History::new().save(&path, false).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert!(fs::symlink_metadata(&path).unwrap().is_file());
    }

    #[test]
    fn an_oversized_file_or_a_fifo_is_unusable_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = super::path(dir.path());
        let file = fs::File::create(&path).unwrap();
        file.set_len(MAX_BYTES + 1).unwrap();
        let problem = History::load(&path, now()).unusable.unwrap();
        assert!(problem.contains("larger than"), "{problem}");

        fs::remove_file(&path).unwrap();
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo touches no memory of ours.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Would block for ever if the FIFO were opened for a blocking read.
        let problem = History::load(&path, now()).unusable.unwrap();
        assert!(problem.contains("FIFO"), "{problem}");
        let moved = move_aside(&path).unwrap().unwrap();
        assert!(moved.to_string_lossy().contains("history.json.corrupt-"));
        assert!(!path.exists());
    }

    #[test]
    fn records_dated_after_now_are_dropped_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = super::path(dir.path());
        let now_s = epoch_seconds(now());
        let mut h = History::new();
        h.record_restart(restart_at(now_s - 60));
        for years in 1..=3 {
            h.record_restart(restart_at(now_s + years * 365 * 86400));
        }
        h.record_sample(sample(now_s + 86400, 7), WINDOW);
        h.last_logged.insert("warning:x".into(), now_s + 86400);
        h.deferred_since = Some(now_s + 86400);
        h.save(&path, false).unwrap();
        let loaded = History::load(&path, now());
        let future = loaded.future.expect("reported");
        assert!(future.contains("6 record(s) dated after now"), "{future}");
        let h = loaded.history;
        assert_eq!(h.restarts_within(Duration::from_secs(3600), now()), 1);
        assert!(h.samples.is_empty() && h.last_logged.is_empty());
        assert_eq!(h.deferred_since, None);
    }

    #[test]
    fn the_guard_is_rebuilt_from_the_log_or_held_for_one_window() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("watchdog.log");
        let now_s = epoch_seconds(now());
        let line = |at: u64| {
            let ts = chrono::DateTime::<chrono::Utc>::from(UNIX_EPOCH + Duration::from_secs(at))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
            format!(
                "{{\"ts\":\"{ts}\",\"level\":\"warning\",\"event\":\"restart\",\"pid\":3,\
                 \"reasons\":[],\"dry_run\":false,\"message\":\"m\",\"method\":\"builtin\"}}\n"
            )
        };
        let text: String = [
            now_s - 7200,
            now_s - 1800,
            now_s - 600,
            now_s - 60,
            now_s + 600,
        ]
        .into_iter()
        .map(line)
        .collect();
        fs::write(&log, text).unwrap();
        let window = Duration::from_secs(3600);
        let mut h = History::new();
        assert_eq!(
            h.rebuild_guard(Some(&log), window, now()),
            Rebuilt::FromLog(3)
        );
        assert_eq!(h.restarts_within(window, now()), 3);
        assert!(!h.guard_held(window, now()));

        let mut h = History::new();
        // Root reads any file: a directory where the log should be is unreadable.
        let unreadable = dir.path().join("taken.log");
        fs::create_dir(&unreadable).unwrap();
        let until = now_s + 3600;
        assert_eq!(
            h.rebuild_guard(Some(&unreadable), window, now()),
            Rebuilt::Held { until }
        );
        assert!(h.guard_held(window, now()));
        assert!(!h.guard_held(window, now() + window), "for one window only");
        let mut none = History::new();
        assert_eq!(
            none.rebuild_guard(None, window, now()),
            Rebuilt::Held { until }
        );
        let mut skewed = History::new();
        skewed.guard_held_until = Some(now_s + 10 * 365 * 86400);
        assert!(
            !skewed.guard_held(window, now()),
            "a mark years ahead is ignored"
        );
    }

    #[test]
    fn only_the_newest_files_moved_aside_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = super::path(dir.path());
        for _ in 0..(KEPT_ASIDE + 3) {
            fs::write(&path, "x").unwrap();
            move_aside(&path).unwrap().unwrap();
        }
        let left = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(left, KEPT_ASIDE);
        fs::create_dir(&path).unwrap();
        assert!(move_aside(&path).is_err(), "a directory stays");
        assert!(path.is_dir());
    }
}
