//! `history.json` (src/history.rs): read every run from the state directory, where
//! anyone who can write that directory can leave anything.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;

use super::{any_bytes, edits, mutate};
use crate::decide::ActionKind;
use crate::history::{History, RestartRecord};
use crate::probe::supervisor::{Kind, Supervisor, Trust};
use crate::trend::FdSample;

/// Times near both ends, where window arithmetic overflows if it is not careful.
fn time() -> BoxedStrategy<u64> {
    prop_oneof![
        3 => 1_700_000_000u64..1_900_000_000,
        1 => any::<u64>(),
        1 => prop::sample::select(vec![0, 1, u64::MAX, u64::MAX - 1, u64::MAX - 300]),
    ]
    .boxed()
}

/// Times before this was written: a history saved with them loads back whole, whatever
/// the loader does with records dated in the future.
fn past() -> BoxedStrategy<u64> {
    prop_oneof![Just(0u64), 1u64..1_700_000_000].boxed()
}

fn supervisor() -> impl Strategy<Value = Supervisor> {
    (
        prop::sample::select(vec![
            Kind::Launchd,
            Kind::Systemd,
            Kind::Supervisor,
            Kind::Runit,
        ]),
        any::<String>(),
        any::<bool>(),
        any::<u32>(),
        proptest::option::of(any::<String>()),
        any::<String>(),
        prop::sample::select(vec![
            Trust::Unverified,
            Trust::Confirmed,
            Trust::Configured,
            Trust::SameUser,
        ]),
        proptest::option::of(any::<String>()),
    )
        .prop_map(
            |(kind, name, user, uid, server_url, evidence, trust, domain)| Supervisor {
                kind,
                name,
                user,
                uid,
                server_url,
                evidence,
                trust,
                domain,
                tool: Default::default(),
            },
        )
}

fn restart(time: fn() -> BoxedStrategy<u64>) -> impl Strategy<Value = RestartRecord> {
    (
        time(),
        any::<String>(),
        prop::sample::select(vec![
            ActionKind::Restart,
            ActionKind::Start,
            ActionKind::KillOrphan,
        ]),
        "[a-z_]{0,10}",
        any::<Option<u32>>(),
        any::<Option<u32>>(),
        prop::collection::vec(any::<String>(), 0..3),
        prop::sample::select(vec!["restarted", "failed", "attempted"]),
    )
        .prop_map(
            |(at, ts, kind, method, old_pid, new_pid, reasons, result)| RestartRecord {
                at,
                ts,
                kind,
                method,
                old_pid,
                new_pid,
                reasons,
                result: result.to_string(),
            },
        )
}

fn sample(time: fn() -> BoxedStrategy<u64>) -> impl Strategy<Value = FdSample> {
    (
        time(),
        prop_oneof![Just(7u32), any::<u32>()],
        any::<u64>(),
        prop::collection::vec((any::<String>(), any::<u64>()), 0..3),
        prop::collection::vec((any::<String>(), any::<u64>()), 0..3),
    )
        .prop_map(|(at, pid, total, patterns, top)| FdSample {
            at,
            pid,
            total,
            patterns,
            top,
        })
}

fn history(time: fn() -> BoxedStrategy<u64>) -> impl Strategy<Value = History> {
    (
        any::<u32>(),
        any::<Option<u32>>(),
        proptest::option::of(supervisor()),
        prop::collection::vec(restart(time), 0..6),
        prop::collection::vec(sample(time), 0..10),
        prop::collection::btree_map(any::<String>(), time(), 0..4),
        (proptest::option::of(time()), proptest::option::of(time())),
    )
        .prop_map(
            |(
                version,
                last_pid,
                supervisor,
                restarts,
                samples,
                last_logged,
                (deferred_since, guard_held_until),
            )| History {
                version,
                last_pid,
                supervisor,
                last_user: None,
                restarts,
                samples,
                last_logged: last_logged.into_iter().collect::<BTreeMap<_, _>>(),
                deferred_since,
                guard_held_until,
                counters: Default::default(),
            },
        )
}

/// What a run does with a loaded history: counts for the guard, a message check, a
/// new sample and a restart. None of it may panic, whatever the file held.
fn use_history(mut history: History, now_s: u64, window_s: u64) {
    // The clock itself is sane (SystemTime holds it); the file's numbers need not be.
    let now_s = now_s.min(i64::MAX as u64 / 2);
    let now = UNIX_EPOCH + Duration::from_secs(now_s);
    let window = Duration::from_secs(window_s);
    let _ = history.restarts_within(window, now);
    let _ = history.guard_held(window, now);
    let _ = history.orphans_within(window, now);
    let _ = history.memory();
    let _ = history.due("warning:x", Duration::from_secs(3600), now);
    let sample = FdSample {
        at: now_s,
        pid: 7,
        total: 100,
        patterns: Vec::new(),
        top: Vec::new(),
    };
    history.record_sample(sample, window);
    let _ = serde_json::to_vec(&history);
}

proptest! {
    #![proptest_config(super::config(128))]

    /// Any file: a history or a problem, never a panic; and whatever loaded can be used.
    #[test]
    fn any_file_loads_or_is_reported(bytes in any_bytes(400), now in 1_700_000_000u64..1_900_000_000, window in 0u64..100_000) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let path = crate::history::path(dir.path());
        std::fs::write(&path, &bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let loaded = History::load(&path, UNIX_EPOCH + Duration::from_secs(now));
        let parsed = serde_json::from_slice::<History>(&bytes).ok();
        // Unparsable is always unusable (moved aside, the guard rebuilt from the log).
        prop_assert_eq!(loaded.unusable.is_some(), parsed.is_none());
        use_history(loaded.history, now, window);
    }

    /// A real history with random edits (a truncated write, a flipped byte, a
    /// hand-edited number): parsed or reported, and usable either way.
    #[test]
    fn edited_history_loads_or_is_reported(history in history(time), edits in edits(), now in time(), window in 0u64..100_000) {
        let text = serde_json::to_string(&history).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let edited = mutate(&text, &edits);
        let loaded = serde_json::from_str::<History>(&edited).unwrap_or_else(|_| History::new());
        use_history(loaded, now, window);
    }

    /// Whatever is saved loads back the same, with no problem.
    #[test]
    fn saved_history_round_trips(history in history(past), durable: bool) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let path = crate::history::path(dir.path());
        history.save(&path, durable).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let loaded = History::load(&path, SystemTime::now());
        prop_assert_eq!(loaded.unusable, None);
        prop_assert_eq!(loaded.future, None);
        prop_assert_eq!(loaded.history, history);
    }

    /// Whatever the file holds, nothing dated after now survives the load (a restart
    /// "in the future" would hold the guard shut until then), and that is reported.
    #[test]
    fn nothing_after_now_survives_a_load(history in history(time), now in 1_700_000_000u64..1_900_000_000) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let path = crate::history::path(dir.path());
        history.save(&path, false).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let loaded = History::load(&path, UNIX_EPOCH + Duration::from_secs(now));
        prop_assert_eq!(loaded.unusable, None);
        let h = &loaded.history;
        prop_assert!(h.restarts.iter().all(|r| r.at <= now));
        prop_assert!(h.samples.iter().all(|s| s.at <= now));
        prop_assert!(h.last_logged.values().all(|&at| at <= now));
        prop_assert!(h.deferred_since.is_none_or(|at| at <= now));
        let dropped = history.restarts.len() + history.samples.len() + history.last_logged.len()
            + usize::from(history.deferred_since.is_some())
            > h.restarts.len() + h.samples.len() + h.last_logged.len() + usize::from(h.deferred_since.is_some());
        prop_assert_eq!(loaded.future.is_some(), dropped);
        // A mark holding the guard further ahead than one window is not ours: ignored.
        let window = Duration::from_secs(3600);
        let held = h.guard_held(window, UNIX_EPOCH + Duration::from_secs(now));
        prop_assert_eq!(held, h.guard_held_until.is_some_and(|until| now < until && until <= now + 3600));
    }

    /// Any history, any clock: the guard's counts, the message check and a new sample
    /// never overflow (times in the file are anyone's numbers).
    #[test]
    fn any_history_is_usable(history in history(time), now in time(), window in prop_oneof![0u64..100_000, Just(u64::MAX)]) {
        use_history(history, now, window);
    }
}

// --- the trend over the samples of the file (src/trend.rs) -----------------------------

/// A sample of the same PID within an hour, on one of two paths, with counts of any
/// size: what meets in the trend's arithmetic.
fn close_sample() -> impl Strategy<Value = FdSample> {
    let count = || prop_oneof![0u64..100, any::<u64>(), Just(1 << 63), Just(u64::MAX)];
    (
        1_800_000_000u64..1_800_003_600,
        count(),
        prop::collection::vec((prop::sample::select(vec!["/a", "/b"]), count()), 0..3),
    )
        .prop_map(|(at, total, top)| FdSample {
            at,
            pid: 7,
            total,
            patterns: Vec::new(),
            top: top.into_iter().map(|(p, c)| (p.to_string(), c)).collect(),
        })
}

proptest! {
    #![proptest_config(super::config(256))]

    /// The FD trend is computed from the file's samples and the current one: any
    /// numbers there give a trend or none, never an overflow.
    #[test]
    fn any_samples_give_a_trend_or_none(
        samples in prop::collection::vec(prop_oneof![sample(time), close_sample()], 0..12),
        current in close_sample(),
        window in prop_oneof![0u64..100_000, Just(u64::MAX)],
        limit: u64,
    ) {
        let current = FdSample { pid: 7, ..current };
        let _ = crate::trend::compute(&samples, &current, Duration::from_secs(window), limit);
    }

    /// A steady leak of `rate` FDs a minute over the window is seen as one, and the
    /// path that leaks is named.
    #[test]
    fn a_steady_leak_is_seen(rate in 1u64..50, minutes in 10u64..60, start in 1_700_000_000u64..1_800_000_000, base in 0u64..1000) {
        let at = |m: u64| FdSample {
            at: start + m * 60,
            pid: 7,
            total: base + rate * m,
            patterns: Vec::new(),
            top: vec![("/srv/state.db".to_string(), base + rate * m)],
        };
        let samples: Vec<FdSample> = (0..minutes).map(at).collect();
        let trend = crate::trend::compute(&samples, &at(minutes), Duration::from_secs(3 * 3600), u64::MAX)
            .ok_or_else(|| TestCaseError::fail("no trend"))?;
        prop_assert!((trend.rate_per_hour - (rate * 60) as f64).abs() < 1e-6 * (rate * 60) as f64, "{}", trend.rate_per_hour);
        let growing = trend.top_growing.ok_or_else(|| TestCaseError::fail("nothing grows"))?;
        prop_assert_eq!(growing.path.as_str(), "/srv/state.db");
        prop_assert_eq!(u64::try_from(growing.delta).ok(), Some(rate * minutes));
    }
}
