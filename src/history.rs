//! The small history file (SPEC §7): recent restarts for the crash-loop guard, recent
//! FD samples for the trend, and the last PID seen (searched first next run). Bounded
//! in size, written atomically, and a corrupt file is reported and replaced rather
//! than stopping the watchdog.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::decide::ActionKind;
use crate::probe::Memory;
use crate::probe::supervisor::Supervisor;

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
    /// is no process to read it from, and its job is the one to start.
    #[serde(default)]
    pub supervisor: Option<Supervisor>,
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
}

/// One restart (or start) the watchdog carried out or attempted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartRecord {
    /// Seconds since the epoch; what the window arithmetic uses.
    pub at: u64,
    /// The same instant, readable.
    pub ts: String,
    pub kind: String,
    pub method: String,
    pub old_pid: Option<u32>,
    pub new_pid: Option<u32>,
    pub reasons: Vec<String>,
    /// "restarted" or "failed"; "attempted" while it is under way (saved before acting,
    /// so a run that dies while acting still counts towards the crash-loop guard).
    pub result: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FdSample {
    pub at: u64,
    pub pid: u32,
    pub total: u64,
    #[serde(default)]
    pub patterns: Vec<(String, u64)>,
    /// The most-held paths and their counts, to name the path that grows.
    #[serde(default)]
    pub top: Vec<(String, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot write history {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A history read from disk, with what was wrong with the file if it was unusable.
pub struct Loaded {
    pub history: History,
    pub problem: Option<String>,
}

pub fn epoch_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl History {
    pub fn load(path: &Path) -> Loaded {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Loaded {
                    history: History::new(),
                    problem: None,
                };
            }
            Err(e) => {
                return Loaded {
                    history: History::new(),
                    problem: Some(format!("cannot read history {}: {e}", path.display())),
                };
            }
        };
        match serde_json::from_str::<History>(&text) {
            Ok(history) => Loaded {
                history,
                problem: None,
            },
            Err(e) => Loaded {
                history: History::new(),
                problem: Some(format!(
                    "history {} is corrupt ({e}); starting a new one",
                    path.display()
                )),
            },
        }
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
        }
    }

    /// Orphans cleared within `window` before `now`: more than one means the
    /// supervised program keeps forking the server away.
    pub fn orphans_within(&self, window: Duration, now: SystemTime) -> u32 {
        let since = epoch_seconds(now).saturating_sub(window.as_secs());
        self.restarts
            .iter()
            .filter(|r| r.at > since && r.kind == ActionKind::KillOrphan.as_str())
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
                || last_kept.is_none_or(|(pid, at)| pid != s.pid || s.at >= at + step.as_secs());
            if keep {
                last_kept = Some((s.pid, s.at));
            }
            keep
        });
        trim_front(&mut self.samples, MAX_SAMPLES);
    }

    /// Writes to a temporary file beside the target and renames it over the old one, so
    /// a crash mid-write leaves the previous history intact. `durable` also syncs it to
    /// disk first: worth it when a restart was recorded (the crash-loop guard counts
    /// them), not for a routine FD sample once a minute.
    pub fn save(&self, path: &Path, durable: bool) -> Result<(), HistoryError> {
        let wrap = |source| HistoryError::Write {
            path: path.to_path_buf(),
            source,
        };
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec(self)
            .map_err(std::io::Error::other)
            .map_err(wrap)?;
        let mut file = fs::File::create(&tmp).map_err(wrap)?;
        file.write_all(&text).map_err(wrap)?;
        if durable {
            file.sync_all().map_err(wrap)?;
        }
        fs::rename(&tmp, path).map_err(wrap)
    }
}

fn trim_front<T>(items: &mut Vec<T>, keep: usize) {
    if items.len() > keep {
        items.drain(..items.len() - keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restart_at(at: u64) -> RestartRecord {
        RestartRecord {
            at,
            ts: String::new(),
            kind: "restart".into(),
            method: "builtin".into(),
            old_pid: Some(1),
            new_pid: Some(2),
            reasons: vec!["health_failed".into()],
            result: "restarted".into(),
        }
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

    #[test]
    fn round_trips_and_replaces_a_corrupt_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = super::path(dir.path());
        assert!(History::load(&path).problem.is_none(), "absent is fine");

        let mut h = History::new();
        h.last_pid = Some(42);
        h.record_restart(restart_at(10));
        h.save(&path, true).unwrap();
        let loaded = History::load(&path);
        assert!(loaded.problem.is_none());
        assert_eq!(loaded.history, h);

        fs::write(&path, b"{\"version\": 1, \"restarts\": [tru").unwrap();
        let loaded = History::load(&path);
        let problem = loaded.problem.expect("corruption is reported");
        assert!(problem.contains("corrupt"), "{problem}");
        assert_eq!(loaded.history, History::new());
    }
}
