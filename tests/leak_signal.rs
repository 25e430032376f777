//! End-to-end tests of the FD-leak signals (docs/DESIGN.md, "Decision rules"): the trend
//! fitted over the history's FD samples and its projection to the restart limit, the
//! busy-aware (deferred) predictive restart, the per-session FD budget, and the incident
//! snapshots written before a kill. Real server, real SQLite WAL handles, real restarts;
//! sample times are controlled by rewriting `history.json` between runs (moving earlier
//! samples into the past), never by waiting. See `common/records.rs`.

mod common;

use std::fs;
#[cfg(target_os = "linux")]
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use common::*;

fn setup() -> (TestEnv, TestServer, ConfigToml) {
    let env = TestEnv::new();
    let server = TestServer::start(&env, ServerOpts::default());
    let mut cfg = env.base_config(&server);
    // Only totals matter here: no path rule to trip.
    cfg.fd_paths(&[]);
    (env, server, cfg)
}

/// `check --json`, asserting the exit code; returns the report.
#[track_caller]
fn check(env: &TestEnv, code: i32) -> Value {
    let r = run_watchdog(env, &["check", "--json"]);
    assert_exit(env, &r, code);
    report(&r)
}

/// The server's FD count once two readings in a row agree (a control request's socket
/// may still be closing).
#[cfg(target_os = "linux")]
fn settled_fd_count(pid: u32) -> u64 {
    with_stable_fds(pid, || ()).0.total()
}

/// [`settled_fd_count`] where there is no /proc: `lsof`'s count once two readings in a
/// row agree.
#[cfg(not(target_os = "linux"))]
fn settled_fd_count(pid: u32) -> u64 {
    for _ in 0..20 {
        let first = fd_count(pid);
        if fd_count(pid) == first {
            return first as u64;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the FD count of PID {pid} never held still across two readings");
}

/// The reason with `code`, if the report has it.
fn reason<'a>(rep: &'a Value, code: &str) -> Option<&'a Value> {
    rep["reasons"]
        .as_array()?
        .iter()
        .find(|r| r["code"] == code)
}

/// Warning events that carry reason `code`.
fn warnings_with(env: &TestEnv, code: &str) -> Vec<Value> {
    events_named(env, "warning")
        .into_iter()
        .filter(|e| {
            e["reasons"]
                .as_array()
                .is_some_and(|a| a.iter().any(|c| c == code))
                || e["message"].as_str().is_some_and(|m| m.contains(code))
        })
        .collect()
}

#[track_caller]
fn assert_within(what: &str, got: f64, want: f64, tolerance: f64, context: &str) {
    assert!(
        (got - want).abs() <= tolerance * want.abs(),
        "{what} = {got}, expected {want} ± {:.0}%\n{context}",
        tolerance * 100.0
    );
}

/// Numbers in a text (integers and decimals).
fn numbers_in(text: &str) -> Vec<f64> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars().chain([' ']) {
        if c.is_ascii_digit() || (c == '.' && !cur.is_empty() && !cur.contains('.')) {
            cur.push(c);
        } else {
            if let Ok(n) = cur.trim_end_matches('.').parse() {
                out.push(n);
            }
            cur.clear();
        }
    }
    out
}

/// Durations written in a text, in seconds: "1h", "59m", "1h 2m", "3600s", "58 min",
/// "1.5 hours" (consecutive parts add up).
fn durations_in(text: &str) -> Vec<f64> {
    let unit_secs = |u: &str| -> Option<f64> {
        match u {
            "h" | "hr" | "hrs" | "hour" | "hours" => Some(3600.0),
            "m" | "min" | "mins" | "minute" | "minutes" => Some(60.0),
            "s" | "sec" | "secs" | "second" | "seconds" => Some(1.0),
            "d" | "day" | "days" => Some(86400.0),
            _ => None,
        }
    };
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut group: Option<(f64, usize)> = None; // (sum, end index)
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
            i += 1;
        }
        let num: f64 = match chars[start..i].iter().collect::<String>().parse() {
            Ok(n) => n,
            Err(_) => continue,
        };
        let mut j = i;
        if j < chars.len() && chars[j] == ' ' {
            j += 1;
        }
        let ustart = j;
        while j < chars.len() && chars[j].is_ascii_alphabetic() {
            j += 1;
        }
        let unit: String = chars[ustart..j].iter().collect::<String>().to_lowercase();
        match unit_secs(&unit) {
            Some(k) => {
                let adjacent = group.is_some_and(|(_, end)| {
                    chars[end..start]
                        .iter()
                        .all(|c| c.is_whitespace() || *c == ',')
                });
                let sum = if adjacent { group.unwrap().0 } else { 0.0 } + num * k;
                if !adjacent && let Some((s, _)) = group {
                    out.push(s);
                }
                group = Some((sum, j));
                i = j;
            }
            None => {
                if let Some((s, _)) = group.take() {
                    out.push(s);
                }
            }
        }
    }
    if let Some((s, _)) = group {
        out.push(s);
    }
    out
}

// ---------------------------------------------------------------------------------------
// 5. The trend and its projection
// ---------------------------------------------------------------------------------------

/// One step of the slow leak, 600 s apart: 3 WAL connections (+6 FDs) and 20 plain
/// handles (+20): 26 FDs per step, 156 FDs an hour, `plain-file.txt` growing most.
const STEP_S: u64 = 600;
const STEP_FDS: u64 = 26;
const RATE_PER_HOUR: f64 = STEP_FDS as f64 * 3600.0 / STEP_S as f64;
/// The limit sits 9 steps above the first sample: at the 4th run the time to it is
/// (9 − 3) × 600 s = 3600 s.
const STEPS_TO_LIMIT: u64 = 9;

fn leak_step(server: &TestServer) {
    leak(server, 3);
    leak_files(server, 20);
}

/// Four `check` runs of a server leaking `STEP_FDS` per `STEP_S`; before each run but the
/// first, the history's samples are moved `STEP_S` into the past. Asserts the trend is
/// null with fewer than 3 samples and matches the leak at the 3rd and 4th runs. Returns
/// the env, the server and the last two reports (3rd and 4th run).
fn leaking_runs(horizon: &str) -> (TestEnv, TestServer, Value, Value) {
    let (env, server, mut cfg) = setup();
    leak(&server, 1); // the one -shm handle, so that every step adds exactly STEP_FDS
    let f0 = settled_fd_count(server.pid);
    let limit = f0 + STEPS_TO_LIMIT * STEP_FDS;
    cfg.set("fds.max", limit as i64)
        .set("fds.trend_window", "6h")
        .set("fds.trend_horizon", horizon)
        .set("fds.trend_restart", false)
        .write(&env);

    let mut reports = Vec::new();
    for run in 1..=4u64 {
        if run > 1 {
            let before = settled_fd_count(server.pid);
            leak_step(&server);
            let after = settled_fd_count(server.pid);
            assert_eq!(after - before, STEP_FDS, "precondition: one leak step");
            shift_samples(&env, STEP_S);
        }
        let rep = check(&env, 0);
        let mine = history_samples(&env)
            .iter()
            .filter(|s| s["pid"] == server.pid)
            .count();
        assert_eq!(
            mine as u64,
            run,
            "one sample per check run\n{}",
            read_history(&env)
        );
        if run < 3 {
            assert!(
                rep["trend"].is_null(),
                "trend with {run} sample(s) must be null: {:#}",
                rep["trend"]
            );
            assert!(
                rep.get("trend").is_some(),
                "report lacks \"trend\": {rep:#}"
            );
        }
        reports.push(rep);
    }
    let r4 = reports.pop().unwrap();
    let r3 = reports.pop().unwrap();
    assert_trend(&r3, 3, limit);
    assert_trend(&r4, 4, limit);
    (env, server, r3, r4)
}

/// The trend of a report of run `run` (3 or 4) matches the leak: rate, projection, limit,
/// samples, the growing path.
#[track_caller]
fn assert_trend(rep: &Value, run: u64, limit: u64) {
    let trend = &rep["trend"];
    assert!(trend.is_object(), "no trend at run {run}: {rep:#}");
    let ctx = format!("{trend:#}");
    assert_eq!(trend["samples"].as_u64(), Some(run), "{ctx}");
    assert_eq!(trend["limit"].as_u64(), Some(limit), "{ctx}");
    let rate = trend["rate_per_hour"].as_f64().expect("rate_per_hour");
    assert_within("rate_per_hour", rate, RATE_PER_HOUR, 0.10, &ctx);
    let t = ((STEPS_TO_LIMIT - (run - 1)) * STEP_S) as f64;
    let projected = trend["projected_s"].as_f64().expect("projected_s");
    assert_within("projected_s", projected, t, 0.10, &ctx);
    // The configured window, or the span the samples cover.
    let window = trend["window_s"].as_f64().expect("window_s");
    let span = ((run - 1) * STEP_S) as f64;
    assert!(
        (window - 6.0 * 3600.0).abs() < 1.0 || (window - span).abs() <= 0.05 * span,
        "window_s {window}: neither the 6 h window nor the {span} s span\n{ctx}"
    );
    let top = &trend["top_growing"];
    assert!(
        top["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/db/plain-file.txt")),
        "top_growing is not plain-file.txt (+20 a step, state.db +3)\n{ctx}"
    );
    // Over the last step or over the window.
    let delta = top["delta"].as_u64().expect("top_growing.delta");
    assert!(
        (20..=20 * (run - 1)).contains(&delta),
        "top_growing.delta {delta}\n{ctx}"
    );
}

/// 67 min is just above the 60 min to the limit at the 4th run (and just below the
/// 70 min at the 3rd): the warning comes at the 4th run only.
#[test]
fn projection_within_the_horizon_warns_with_rate_projection_and_path() {
    let (env, server, r3, r4) = leaking_runs("67m");
    assert!(
        reason(&r3, "fd_leak_projected").is_none(),
        "70 min to the limit is beyond a 67 min horizon: {r3:#}"
    );
    let why = reason(&r4, "fd_leak_projected")
        .unwrap_or_else(|| panic!("no fd_leak_projected reason at 60 min to the limit: {r4:#}"));
    assert_eq!(why["severity"], "soft", "{why}");
    assert_eq!(r4["verdict"], "warning", "{r4:#}");
    assert_eq!(r4["exit_code"], 0, "{r4:#}");
    assert_eq!(r4["action"]["kind"], "none", "{r4:#}");
    assert!(is_alive(server.pid), "the server was touched");
    assert!(
        events_named(&env, "restart").is_empty(),
        "{}",
        log_text(&env)
    );

    let warnings = warnings_with(&env, "fd_leak_projected");
    assert_eq!(
        warnings.len(),
        1,
        "one warning, at the 4th run\n{}",
        log_text(&env)
    );

    // status reports the trend too, and adds no sample.
    let before = history_samples(&env).len();
    for _ in 0..2 {
        let r = run_watchdog(&env, &["status", "--json"]);
        assert_exit(&env, &r, 0);
        let st = report(&r);
        assert!(
            st["trend"].is_object(),
            "status --json lacks the trend: {st:#}"
        );
        assert!(
            reason(&st, "fd_leak_projected").is_some(),
            "status does not show the projection: {st:#}"
        );
    }
    assert_eq!(
        history_samples(&env).len(),
        before,
        "status appended samples"
    );
    let msg = warnings[0]["message"].as_str().unwrap_or_default();
    assert!(
        numbers_in(msg)
            .iter()
            .any(|&n| (n - RATE_PER_HOUR).abs() <= 0.10 * RATE_PER_HOUR),
        "the warning does not give the rate (~{RATE_PER_HOUR}/h): {msg}"
    );
    assert!(
        durations_in(msg)
            .iter()
            .any(|&d| (d - 3600.0).abs() <= 0.10 * 3600.0 + 60.0),
        "the warning does not give the projection (~1 h): {msg}"
    );
    assert!(
        msg.contains("plain-file.txt"),
        "the warning does not name the top-growing path: {msg}"
    );
}

/// 53 min is just below the 60 min to the limit: the trend is reported, nothing warns.
#[test]
fn projection_beyond_the_horizon_does_not_warn() {
    let (env, server, r3, r4) = leaking_runs("53m");
    for rep in [&r3, &r4] {
        assert!(reason(rep, "fd_leak_projected").is_none(), "{rep:#}");
        assert_eq!(rep["verdict"], "healthy", "{rep:#}");
    }
    assert!(
        warnings_with(&env, "fd_leak_projected").is_empty(),
        "{}",
        log_text(&env)
    );
    assert!(
        events_named(&env, "warning").is_empty(),
        "{}",
        log_text(&env)
    );
    assert!(is_alive(server.pid));
}

#[test]
fn flat_fds_project_nothing() {
    let (env, server, mut cfg) = setup();
    leak(&server, 5);
    let f0 = settled_fd_count(server.pid);
    // Anything growing by more than ~4 FDs an hour would warn within a day.
    cfg.set("fds.max", (f0 + 200) as i64)
        .set("fds.trend_horizon", "24h")
        .write(&env);
    let mut rep = Value::Null;
    for run in 1..=4 {
        if run > 1 {
            shift_samples(&env, STEP_S);
        }
        rep = check(&env, 0);
    }
    let trend = &rep["trend"];
    assert!(trend.is_object(), "no trend after 4 samples: {rep:#}");
    let rate = trend["rate_per_hour"].as_f64().expect("rate_per_hour");
    assert!(rate.abs() < 5.0, "flat FDs, rate {rate}/h: {trend:#}");
    assert!(
        trend["projected_s"].is_null()
            || trend["projected_s"]
                .as_f64()
                .is_some_and(|s| s > 24.0 * 3600.0),
        "{trend:#}"
    );
    assert!(reason(&rep, "fd_leak_projected").is_none(), "{rep:#}");
    assert!(
        events_named(&env, "warning").is_empty(),
        "{}",
        log_text(&env)
    );
}

/// Earlier samples of the current PID, `steps` × 600 s apart, each `delta` FDs below
/// the next, ending at the real sample of the last run (copied, so every field keeps
/// the implementation's form). Every other field of the history is kept.
fn prefill_samples(env: &TestEnv, pid: u32, steps: u64, delta: i64) {
    let points: Vec<(u64, i64)> = (1..=steps)
        .rev()
        .map(|k| (k * STEP_S, -(k as i64) * delta))
        .collect();
    prefill_points(env, pid, &points);
}

#[test]
fn shrinking_fds_project_nothing() {
    let (env, server, mut cfg) = setup();
    leak(&server, 5);
    let f0 = settled_fd_count(server.pid);
    cfg.set("fds.max", (f0 + 200) as i64)
        .set("fds.trend_horizon", "24h")
        .write(&env);
    check(&env, 0);
    // 150, 100 and 50 FDs more than now, 30, 20 and 10 minutes ago.
    prefill_samples(&env, server.pid, 3, -50);
    let rep = check(&env, 0);
    let trend = &rep["trend"];
    assert!(trend.is_object(), "no trend: {rep:#}");
    let rate = trend["rate_per_hour"].as_f64().expect("rate_per_hour");
    assert!(rate < -200.0, "shrinking by 300/h, rate {rate}: {trend:#}");
    assert!(trend["projected_s"].is_null(), "{trend:#}");
    assert!(reason(&rep, "fd_leak_projected").is_none(), "{rep:#}");
    assert!(
        events_named(&env, "warning").is_empty(),
        "{}",
        log_text(&env)
    );
}

#[test]
fn horizon_0s_disables_the_projection_warning() {
    let (env, server, mut cfg) = setup();
    leak(&server, 60);
    let f = settled_fd_count(server.pid);
    // 180 FDs an hour, the limit 60 FDs (20 min) away.
    cfg.set("fds.max", (f + 60) as i64)
        .set("fds.trend_horizon", "0s")
        .write(&env);
    check(&env, 0);
    prefill_samples(&env, server.pid, 3, 30);
    let rep = check(&env, 0);
    assert!(
        rep["trend"].is_object(),
        "the trend is still reported: {rep:#}"
    );
    assert!(reason(&rep, "fd_leak_projected").is_none(), "{rep:#}");
    assert!(
        events_named(&env, "warning").is_empty(),
        "{}",
        log_text(&env)
    );
}

#[test]
fn samples_outside_the_window_do_not_count() {
    let (env, server, mut cfg) = setup();
    leak(&server, 160); // ~330 FDs: room for samples 300 below
    let f = settled_fd_count(server.pid);
    assert!(f > 300, "precondition: {f} FDs");
    cfg.set("fds.max", (f + 600) as i64)
        .set("fds.trend_window", "1h")
        .set("fds.trend_horizon", "2h")
        .write(&env);
    check(&env, 0);
    // Steep growth, but 2 h ago and earlier.
    prefill_points(
        &env,
        server.pid,
        &[(3 * 3600, -300), (2 * 3600 + 1800, -200), (2 * 3600, -100)],
    );
    let rep = check(&env, 0);
    assert!(
        rep["trend"].is_null(),
        "only 2 samples in the 1 h window: {:#}",
        rep["trend"]
    );
    assert!(reason(&rep, "fd_leak_projected").is_none(), "{rep:#}");

    cfg.set("fds.trend_window", "4h").write(&env);
    let point = |s: &Value| (s["at"].as_f64().unwrap(), s["total"].as_f64().unwrap());
    let mine = |samples: Vec<Value>| -> Vec<(f64, f64)> {
        samples
            .iter()
            .filter(|s| s["pid"] == server.pid)
            .map(point)
            .collect()
    };
    // The two real samples so far (the last two: the prefilled ones come first) are put
    // 20 s and 10 s before this run, whatever the runs took, so the second of the three
    // runs' samples is certain to be thinned when the third is stored.
    let mut doc = read_history(&env);
    let shown = doc.to_string();
    let samples = doc["samples"]
        .as_array_mut()
        .unwrap_or_else(|| panic!("history has no samples array: {shown}"));
    assert_eq!(samples.len(), 5, "3 prefilled and 2 real samples: {shown}");
    assert!(
        samples.iter().all(|s| s["pid"] == server.pid),
        "only this server's samples: {shown}"
    );
    let now = epoch_now();
    samples[3]["at"] = Value::from(now - 20);
    samples[4]["at"] = Value::from(now - 10);
    write_history(&env, &doc);
    let mut points = mine(history_samples(&env));
    let rep = check(&env, 0);
    let trend = &rep["trend"];
    assert_eq!(
        trend["samples"], 6,
        "all 6 samples in a 4 h window: {trend:#}"
    );
    // The least-squares slope over exactly those samples (~86 FDs an hour): the ones
    // before this run and this run's, the newest now.
    let after = mine(history_samples(&env));
    points.push(*after.last().unwrap());
    assert_eq!(points.len(), 6, "{points:?}");
    // Stored, the middle one of the three runs' samples (10 s after the first) is
    // thinned: samples are kept at least 30 s apart in the last hour, the newest always.
    assert_eq!(after.len(), 5, "{after:?}");
    assert_eq!(
        after[3], points[3],
        "the first run's sample is kept: {after:?}"
    );
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let want = sxy / sxx * 3600.0;
    assert!(want > 60.0, "precondition: the samples rise ({want}/h)");
    let rate = trend["rate_per_hour"].as_f64().expect("rate_per_hour");
    assert_within("rate_per_hour", rate, want, 0.01, &format!("{trend:#}"));
}

/// The limit the projection aims at is the one a restart would happen at: the lower of
/// `fds.max` and `max_percent` of the server's soft RLIMIT_NOFILE.
// Linux only: prlimit(2) on the server, its hard limit from /proc/PID/limits.
#[cfg(target_os = "linux")]
#[test]
fn projection_aims_at_the_lower_of_max_and_max_percent() {
    let (env, server, mut cfg) = setup();
    // Soft limit 400 (hard unchanged): 50 % of it, 200, is below fds.max = 1000.
    let lim = libc::rlimit {
        rlim_cur: 400,
        rlim_max: fd_hard_limit(server.pid),
    };
    // SAFETY: prlimit(2) on our own child with a valid rlimit; no old value asked for.
    let rc = unsafe {
        libc::prlimit(
            server.pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &lim,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    leak(&server, 45); // ~100 FDs
    cfg.set("fds.max", 1000)
        .set("fds.max_percent", 50)
        .set("fds.warn_percent", 45)
        .set("fds.trend_horizon", "2h")
        .write(&env);
    check(&env, 0);
    prefill_samples(&env, server.pid, 3, 30); // 180 FDs an hour
    let rep = check(&env, 0);
    let trend = &rep["trend"];
    assert_eq!(trend["limit"], 200, "{trend:#}");
    let f = rep["fds"]["total"].as_f64().unwrap();
    let projected = trend["projected_s"].as_f64().expect("projected_s");
    let want = (200.0 - f) / 180.0 * 3600.0;
    assert_within("projected_s", projected, want, 0.10, &format!("{trend:#}"));
    assert!(reason(&rep, "fd_leak_projected").is_some(), "{rep:#}");
}

/// The hard "Max open files" limit of `pid`.
#[cfg(target_os = "linux")]
fn fd_hard_limit(pid: u32) -> u64 {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    match line.split_whitespace().nth(4).unwrap() {
        "unlimited" => libc::RLIM_INFINITY,
        n => n.parse().unwrap(),
    }
}

// ---------------------------------------------------------------------------------------
// 6. Busy-aware predictive restarts
// ---------------------------------------------------------------------------------------

/// A server whose history shows 180 FDs an hour with the limit 180 FDs away (1 h) and
/// a 2 h horizon, `trend_restart = true`. Returns the config (written) for tweaks.
fn predictive_setup() -> (TestEnv, TestServer, ConfigToml) {
    let (env, server, mut cfg) = setup();
    leak(&server, 60);
    let f = settled_fd_count(server.pid);
    cfg.set("fds.max", (f + 180) as i64)
        .set("fds.trend_horizon", "2h")
        .set("fds.trend_restart", true)
        .write(&env);
    // One real sample, then three earlier ones: -90, -60, -30 FDs at -30, -20, -10 min.
    let rep = check(&env, 0);
    assert!(rep["trend"].is_null(), "{rep:#}");
    prefill_samples(&env, server.pid, 3, 30);
    (env, server, cfg)
}

#[track_caller]
fn assert_not_restarted(env: &TestEnv, server: &TestServer) {
    assert_untouched(server);
    assert_nothing_acted(env);
}

#[test]
fn predictive_restart_waits_while_busy_and_restarts_once_idle() {
    let (env, server, _cfg) = predictive_setup();
    set_busy(&server.base, 2, 0);
    assert_eq!(health_doc(&server.base)["active_runs"], 2, "precondition");

    let rep = check(&env, 0);
    let why = reason(&rep, "fd_leak_projected")
        .unwrap_or_else(|| panic!("no fd_leak_projected reason: {rep:#}"));
    assert_eq!(why["severity"], "predictive", "{why}");
    let action = &rep["action"];
    assert_eq!(action["kind"], "restart", "{rep:#}");
    assert_eq!(action["result"], "deferred", "{rep:#}");
    assert!(
        action["detail"]
            .as_str()
            .is_some_and(|d| d.contains("active_runs")),
        "the deferral does not name the busy field: {action}"
    );
    assert_eq!(rep["exit_code"], 0, "{rep:#}");
    let deferred: Vec<Value> = events_named(&env, "warning")
        .into_iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("deferred"))
        })
        .collect();
    assert_eq!(
        deferred.len(),
        1,
        "one deferral warning\n{}",
        log_text(&env)
    );
    assert_not_restarted(&env, &server);

    set_busy(&server.base, 0, 0);
    let rep = check(&env, 1);
    let new_pid = assert_restarted(&env, &server);
    assert_eq!(rep["action"]["result"], "restarted", "{rep:#}");
    assert_eq!(rep["action"]["new_pid"], new_pid, "{rep:#}");
    assert_eq!(
        reason(&rep, "fd_leak_projected").map(|r| r["severity"].clone()),
        Some(Value::from("predictive")),
        "{rep:#}"
    );
    // A predictive restart is a kill too: it leaves an incident.
    let incidents = env.incident_files();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    let snap: Value = serde_json::from_str(&fs::read_to_string(&incidents[0]).unwrap()).unwrap();
    assert_eq!(snap["pid"], server.pid, "{snap:#}");
    assert!(
        snap["reasons"].to_string().contains("fd_leak_projected"),
        "{snap:#}"
    );

    // The new server starts a trend of its own: the old PID's samples do not count.
    let rep = check(&env, 0);
    assert_eq!(rep["target"]["pid"], new_pid, "{rep:#}");
    assert!(rep["trend"].is_null(), "{:#}", rep["trend"]);
}

#[test]
fn only_the_configured_busy_fields_defer() {
    let (env, server, mut cfg) = predictive_setup();
    // active_runs is not listed: 3 runs do not hold the restart back.
    cfg.set("health.busy_fields", vec!["active_streams"])
        .write(&env);
    set_busy(&server.base, 3, 0);
    let rep = check(&env, 1);
    assert_restarted(&env, &server);
    assert_eq!(rep["action"]["result"], "restarted", "{rep:#}");
}

#[test]
fn active_streams_defer_too() {
    let (env, server, _cfg) = predictive_setup();
    set_busy(&server.base, 0, 1);
    let rep = check(&env, 0);
    assert_eq!(rep["action"]["result"], "deferred", "{rep:#}");
    assert!(
        rep["action"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("active_streams")),
        "{rep:#}"
    );
    assert_not_restarted(&env, &server);
}

#[test]
fn hard_fd_limit_restarts_at_once_even_while_busy() {
    let (env, server, mut cfg) = setup();
    cfg.set("fds.max", 150).write(&env);
    set_busy(&server.base, 2, 1);
    leak(&server, 80); // 161 FDs on state.db alone
    let rep = check(&env, 1);
    assert_restarted(&env, &server);
    assert_eq!(rep["action"]["result"], "restarted", "{rep:#}");
    let why = reason(&rep, "fds_over_limit").unwrap_or_else(|| panic!("{rep:#}"));
    assert_eq!(why["severity"], "hard", "{why}");
}

#[test]
fn failing_health_restarts_at_once_even_while_busy() {
    let (env, server, cfg) = setup();
    cfg.write(&env);
    set_busy(&server.base, 1, 0);
    server.set_memory_mode("503"); // the 503 body still says active_runs = 1
    let doc = http_get(&server.url, Duration::from_secs(5)).unwrap();
    assert_eq!(
        (doc.status, doc.json()["active_runs"].clone()),
        (503, Value::from(1))
    );
    let rep = check(&env, 1);
    assert_restarted(&env, &server);
    assert_eq!(rep["action"]["result"], "restarted", "{rep:#}");
    assert!(reason(&rep, "health_failed").is_some(), "{rep:#}");
}

#[test]
fn deferral_ends_after_max_defer() {
    let (env, server, mut cfg) = predictive_setup();
    cfg.set("restart.max_defer", "30m").write(&env);
    set_busy(&server.base, 1, 0);
    let rep = check(&env, 0);
    assert_eq!(rep["action"]["result"], "deferred", "{rep:#}");
    assert_not_restarted(&env, &server);
    // max_defer passes since the first deferral: its start, recorded in the history,
    // moves 31 minutes into the past.
    let mut doc = read_history(&env);
    let since = doc["deferred_since"]
        .as_u64()
        .unwrap_or_else(|| panic!("the first deferral is not recorded: {doc:#}"));
    doc["deferred_since"] = Value::from(since - 31 * 60);
    write_history(&env, &doc);
    let rep = check(&env, 1);
    assert_eq!(health_doc(&server.base)["active_runs"], 0, "a new server");
    let new_pid = assert_restarted(&env, &server);
    assert_eq!(rep["action"]["result"], "restarted", "{rep:#}");

    // The new server, busy and leaking, gets a deferral of its own: the old server's
    // (long expired) first deferral does not carry over.
    control(&server.base, "/control/leak?n=60");
    set_busy(&server.base, 1, 0);
    let f = settled_fd_count(new_pid);
    cfg.set("fds.max", (f + 180) as i64).write(&env);
    let rep = check(&env, 0);
    assert_eq!(rep["target"]["pid"], new_pid, "{rep:#}");
    prefill_samples(&env, new_pid, 3, 30);
    let rep = check(&env, 0);
    assert_eq!(rep["action"]["result"], "deferred", "{rep:#}");
    assert!(is_alive(new_pid), "the new server was restarted at once");
}

// ---------------------------------------------------------------------------------------
// 7. The FD budget
// ---------------------------------------------------------------------------------------

#[test]
fn fds_over_the_session_budget_warn() {
    let (env, server, mut cfg) = setup();
    leak(&server, 25); // ~60 FDs
    let total = settled_fd_count(server.pid);
    assert!(total > 48, "precondition: {total} FDs");
    cfg.set("fds.budget.base", 10)
        .set("fds.budget.per", 2)
        .set("fds.budget.field", "sessions")
        .set("fds.budget.factor", 2.0)
        .write(&env);

    // expected = 10 + 2 × s; warn above 2 × expected = 20 + 4 s. First just above the
    // total (no warning), then just below it.
    let s_ok = (total + 4 - 20).div_ceil(4); // 20 + 4 s ≥ total + 4
    set_sessions(&server.base, s_ok);
    assert_eq!(health_doc(&server.base)["sessions"], s_ok, "precondition");
    let rep = check(&env, 0);
    assert!(
        reason(&rep, "fds_over_budget").is_none(),
        "{total} FDs within 2 × (10 + 2 × {s_ok})\n{rep:#}"
    );
    assert!(
        events_named(&env, "warning").is_empty(),
        "{}",
        log_text(&env)
    );

    let s_warn = (total - 4 - 20) / 4; // 20 + 4 s ≤ total − 4
    set_sessions(&server.base, s_warn);
    let rep = check(&env, 0);
    let why = reason(&rep, "fds_over_budget")
        .unwrap_or_else(|| panic!("{total} FDs over 2 × (10 + 2 × {s_warn}): {rep:#}"));
    assert_eq!(why["severity"], "soft", "{why}");
    assert_eq!(rep["verdict"], "warning", "{rep:#}");
    assert_eq!(rep["action"]["kind"], "none", "{rep:#}");
    assert_eq!(
        warnings_with(&env, "fds_over_budget").len(),
        1,
        "{}",
        log_text(&env)
    );
    assert!(is_alive(server.pid));
}

#[test]
fn five_sessions_allow_forty_fds() {
    let (env, server, mut cfg) = setup();
    cfg.set("fds.budget.base", 10)
        .set("fds.budget.per", 2)
        .set("fds.budget.field", "sessions")
        .set("fds.budget.factor", 2.0)
        .write(&env);
    set_sessions(&server.base, 5);
    assert!(
        settled_fd_count(server.pid) < 40,
        "precondition: a fresh server"
    );
    let rep = check(&env, 0);
    assert!(reason(&rep, "fds_over_budget").is_none(), "{rep:#}");
    leak(&server, 20); // +41: over 40
    assert!(settled_fd_count(server.pid) > 40);
    let rep = check(&env, 0);
    assert!(reason(&rep, "fds_over_budget").is_some(), "{rep:#}");
    assert_eq!(rep["exit_code"], 0, "{rep:#}");
    assert_eq!(
        warnings_with(&env, "fds_over_budget").len(),
        1,
        "{}",
        log_text(&env)
    );
}

#[test]
fn budget_is_off_by_default() {
    let (env, server, cfg) = setup();
    cfg.write(&env);
    set_sessions(&server.base, 0);
    leak(&server, 40);
    let rep = check(&env, 0);
    assert!(reason(&rep, "fds_over_budget").is_none(), "{rep:#}");
}

// ---------------------------------------------------------------------------------------
// 8. Incident snapshots
// ---------------------------------------------------------------------------------------

// Linux only: the old server's argv is read from /proc/PID/cmdline (`cmdline_args`).
#[cfg(target_os = "linux")]
#[test]
fn incident_is_written_before_the_kill_pruned_to_20_and_listed_by_status() {
    let (env, server, mut cfg) = setup();
    cfg.set("fds.max", 150).write(&env);
    let old_argv = cmdline_args(server.pid);
    assert!(
        !old_argv.is_empty(),
        "no command line for PID {}",
        server.pid
    );
    check(&env, 0); // one sample of the old server

    // 25 old snapshots, named like the watchdog names them, older than any new one.
    let dir = env.state_dir.join("incidents");
    fs::create_dir_all(&dir).unwrap();
    let old_names: Vec<String> = (0..25)
        .map(|i| format!("20200101T0000{i:02}.000Z-{}.json", 1000 + i))
        .collect();
    for name in &old_names {
        fs::write(dir.join(name), "{}").unwrap();
    }

    leak(&server, 80); // 161 FDs on state.db
    let state_db = count_fds_matching(server.pid, "state.db") as u64;
    let rep = check(&env, 1);
    let new_pid = assert_restarted(&env, &server);

    // The incident event names the new file.
    let ev = events_named(&env, "incident");
    assert_eq!(ev.len(), 1, "{}", log_text(&env));
    let path = PathBuf::from(
        ev[0]["incident"]
            .as_str()
            .unwrap_or_else(|| panic!("incident event lacks \"incident\": {}", ev[0])),
    );
    assert!(path.is_file(), "{} does not exist", path.display());
    assert_eq!(
        path.parent().unwrap().canonicalize().unwrap(),
        dir.canonicalize().unwrap()
    );
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.ends_with(&format!("-{}.json", server.pid)),
        "{name} does not end with -<old pid>.json"
    );

    // Pruned to the newest 20: the new one and the 19 newest old ones.
    let mut left: Vec<String> = env
        .incident_files()
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let mut want: Vec<String> = old_names[6..].to_vec();
    want.push(name.clone());
    want.sort();
    assert_eq!(left, want, "incidents kept");

    // The snapshot is of the old process, taken while it was alive.
    let text = fs::read_to_string(&path).unwrap();
    let snap: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON ({e}): {text}"));
    for key in [
        "ts",
        "pid",
        "process",
        "reasons",
        "health",
        "fds",
        "recent_fd_samples",
    ] {
        assert!(snap.get(key).is_some(), "snapshot lacks {key:?}: {snap:#}");
    }
    assert_eq!(snap["pid"], server.pid, "{snap:#}");
    assert_ne!(snap["pid"], new_pid);
    let argv: Vec<String> = snap["process"]["argv"]
        .as_array()
        .unwrap_or_else(|| panic!("process.argv: {snap:#}"))
        .iter()
        .map(|a| a.as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(argv, old_argv, "process.argv");
    assert!(
        snap["reasons"].to_string().contains("fds_over_limit"),
        "{:#}",
        snap["reasons"]
    );
    let fds = &snap["fds"];
    assert!(fds["total"].as_u64().is_some_and(|t| t >= 150), "{fds:#}");
    for key in ["kinds", "tcp", "sqlite", "deleted", "top_paths", "by_kind"] {
        assert!(
            fds.get(key).is_some(),
            "snapshot fds lacks {key:?}: {fds:#}"
        );
    }
    let fam = fds["sqlite"]
        .as_array()
        .and_then(|a| {
            a.iter().find(|f| {
                f["database"]
                    .as_str()
                    .is_some_and(|d| d.ends_with("state.db"))
            })
        })
        .unwrap_or_else(|| panic!("no state.db family in the snapshot: {fds:#}"));
    assert_eq!(fam["total"].as_u64(), Some(state_db), "{fam}");
    assert_eq!(fam["db"], 80, "{fam}");
    assert!(
        fds["tcp"]
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t["state"] == "LISTEN"
                && t["local"]
                    .as_str()
                    .is_some_and(|l| l.ends_with(&format!(":{}", server.port))))),
        "the snapshot does not show the old server's listener: {:#}",
        fds["tcp"]
    );
    let recent = snap["recent_fd_samples"]
        .as_array()
        .unwrap_or_else(|| panic!("recent_fd_samples: {snap:#}"));
    assert!(!recent.is_empty(), "{snap:#}");
    assert!(recent.iter().all(|s| s["pid"] == server.pid), "{recent:#?}");
    assert_eq!(rep["action"]["result"], "restarted");

    // status lists the newest incident, text and JSON.
    let r = run_watchdog(&env, &["status"]);
    assert_exit(&env, &r, 0);
    assert!(
        r.stdout.contains(&name),
        "status does not list the newest incident {name}\n{}",
        r.dump()
    );
    let r = run_watchdog(&env, &["status", "--json"]);
    assert_exit(&env, &r, 0);
    let st = report(&r);
    let listed: Vec<String> = st["incidents"]
        .as_array()
        .unwrap_or_else(|| panic!("status --json lacks incidents: {st:#}"))
        .iter()
        .map(|p| p.as_str().unwrap_or_default().to_string())
        .collect();
    assert!(!listed.is_empty() && listed.len() <= 20, "{listed:?}");
    assert!(
        listed[0].ends_with(&name),
        "newest first: {name} vs {listed:?}"
    );
    let names: Vec<String> = listed
        .iter()
        .map(|p| p.rsplit('/').next().unwrap().to_string())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(names, sorted, "incidents not newest first");
}
