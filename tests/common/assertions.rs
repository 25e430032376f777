//! What a run did, asserted: its exit code, the log's shape, nothing done, a server left
//! alone, a builtin restart. Each failure shows the run and the log.

use std::fs;
use std::time::Duration;

use serde_json::Value;

use super::env::TestEnv;
use super::http::healthy;
use super::proc::{cmdline, is_alive, is_stopped, listener_pid};
use super::processes::wait_until;
use super::records::{events_named, log_events, log_text};
use super::run::RunResult;
use super::server::{TestServer, is_testserver};

/// Asserts the exit status, showing the run and the log when it differs.
#[track_caller]
pub fn assert_exit(env: &TestEnv, r: &RunResult, code: i32) {
    assert_eq!(
        r.status,
        Some(code),
        "expected exit {code}\n{}\n--- log ---\n{}",
        r.dump(),
        log_text(env)
    );
}

/// Every log event has the fields of docs/REPORT.md, "Log events"; `ts` is RFC 3339, ms.
#[track_caller]
pub fn assert_log_shape(env: &TestEnv) {
    for ev in log_events(env) {
        for key in [
            "ts", "level", "event", "pid", "reasons", "dry_run", "message",
        ] {
            assert!(ev.get(key).is_some(), "log event lacks {key:?}: {ev}");
        }
        let ts = ev["ts"]
            .as_str()
            .unwrap_or_else(|| panic!("ts not a string: {ev}"));
        chrono::DateTime::parse_from_rfc3339(ts)
            .unwrap_or_else(|e| panic!("ts {ts:?} is not RFC 3339 ({e})"));
        let frac = ts
            .split_once('.')
            .map(|(_, f)| f.chars().take_while(|c| c.is_ascii_digit()).count());
        assert_eq!(frac, Some(3), "ts {ts:?} does not carry milliseconds");
        assert!(ev["reasons"].is_array(), "reasons not an array: {ev}");
        assert!(ev["dry_run"].is_boolean(), "dry_run not a bool: {ev}");
    }
}

/// The events named `name`, asserting there is at least one.
#[track_caller]
pub fn expect_events(env: &TestEnv, name: &str) -> Vec<Value> {
    let evs = events_named(env, name);
    assert!(
        !evs.is_empty(),
        "no {name:?} event in the log:\n{}",
        log_text(env)
    );
    evs
}

/// No orphan was reported, no event that acts was logged, no incident was saved.
#[track_caller]
pub fn assert_nothing_done(env: &TestEnv) {
    assert!(
        events_named(env, "orphan").is_empty(),
        "unexpected \"orphan\" event:\n{}",
        log_text(env)
    );
    assert_nothing_acted(env);
}

/// No event that acts was logged, no incident was saved (an orphan may have been
/// reported and left alone).
#[track_caller]
pub fn assert_nothing_acted(env: &TestEnv) {
    for name in [
        "restart",
        "restarted",
        "restart_failed",
        "start",
        "incident",
    ] {
        assert!(
            events_named(env, name).is_empty(),
            "unexpected {name:?} event:\n{}",
            log_text(env)
        );
    }
    assert!(
        env.incident_files().is_empty(),
        "incident saved: {:?}",
        env.incident_files()
    );
}

/// The server is the same process as before, alive, not stopped, still on its port.
#[track_caller]
pub fn assert_untouched(server: &TestServer) {
    assert!(is_alive(server.pid), "server PID {} died", server.pid);
    assert!(!is_stopped(server.pid), "server PID {} stopped", server.pid);
    assert_eq!(listener_pid(server.port), Some(server.pid));
}

/// After a successful restart: a new test server (≠ old) holds the port and answers
/// /health, the old one is gone, the log has `restart` and `restarted` with the method,
/// and an incident snapshot was saved and logged. Returns the new PID.
#[track_caller]
pub fn assert_restarted(env: &TestEnv, server: &TestServer) -> u32 {
    let new_pid = listener_pid(server.port)
        .unwrap_or_else(|| panic!("nothing listens on port {}\n{}", server.port, log_text(env)));
    assert_ne!(new_pid, server.pid, "the old server still holds the port");
    assert!(
        is_testserver(new_pid),
        "port holder {new_pid} is not a test server: {}",
        cmdline(new_pid)
    );
    assert!(
        env.logged_pids().contains(&new_pid),
        "the new server was not started from the replayed argv"
    );
    assert!(healthy(&server.url), "the new server is not healthy");
    assert!(
        wait_until(Duration::from_secs(2), || !is_alive(server.pid)),
        "old server PID {} is still alive",
        server.pid
    );
    for name in ["restart", "restarted"] {
        let ev = &expect_events(env, name)[0];
        assert_eq!(ev["method"], "builtin", "{name} event: {ev}");
    }
    // Names start with the time: the last one is this restart's.
    let incidents = env.incident_files();
    let newest = incidents.last().unwrap_or_else(|| {
        panic!(
            "no incident snapshot in {}",
            env.state_dir.join("incidents").display()
        )
    });
    let name = newest.file_name().unwrap().to_string_lossy().into_owned();
    let text = fs::read_to_string(newest).unwrap();
    let _: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("incident {name} is not JSON ({e}): {text}"));
    assert!(
        log_events(env)
            .iter()
            .any(|e| e.to_string().contains(&name)),
        "the log does not name the incident file {name}:\n{}",
        log_text(env)
    );
    assert_log_shape(env);
    new_pid
}
