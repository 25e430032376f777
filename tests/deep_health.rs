//! Deep health (docs/CONFIG.md, "[health]"): the default URL is Hermes WebUI's
//! `/health?deep=1`, which upstream's `_handle_health` (api/routes.py of
//! nesquena/hermes-webui) answers with the plain fields plus a `checks` object, and 503
//! `"status": "degraded"` when a check fails. The test server answers it the same way
//! (tests/support/testserver.py), with a real SQLite open of `state.db`; its `state_db`
//! mode makes that open fail while plain `/health` stays 200, the failure the deep check
//! exists to catch. The verdict, `expect_body`, `busy_fields` and the `[fds.budget]`
//! field are checked against both bodies.

mod common;

use std::time::Duration;

use serde_json::Value;

use common::*;

fn setup() -> (TestEnv, TestServer, ConfigToml) {
    let env = TestEnv::new();
    let server = TestServer::start(&env, ServerOpts::default());
    let mut cfg = env.base_config(&server);
    cfg.set("health.url", deep_url(&server)).fd_paths(&[]);
    (env, server, cfg)
}

fn deep_url(server: &TestServer) -> String {
    format!("{}/health?deep=1", server.base)
}

/// `check --json`, asserting the exit code; returns the report.
#[track_caller]
fn check(env: &TestEnv, code: i32) -> Value {
    let r = run_watchdog(env, &["check", "--json"]);
    assert_exit(env, &r, code);
    report(&r)
}

/// The reason with `code`, if the report has it.
fn reason<'a>(rep: &'a Value, code: &str) -> Option<&'a Value> {
    rep["reasons"]
        .as_array()?
        .iter()
        .find(|r| r["code"] == code)
}

#[test]
fn the_default_url_is_the_deep_check() {
    let env = TestEnv::new();
    env.write_config("");
    let r = run_watchdog(&env, &["config"]);
    assert_exit(&env, &r, 0);
    assert!(
        r.stdout
            .contains("url = \"http://127.0.0.1:8787/health?deep=1\""),
        "{}",
        r.dump()
    );
    // The port still comes from the URL: 8787.
    assert!(
        r.stdout
            .contains("port = \"\"                     # the port of health.url"),
        "{}",
        r.dump()
    );
}

/// The deep body as upstream sends it: the plain fields at the top, `checks` beside
/// them; with state.db present its check opens it.
#[test]
fn deep_body_passes_with_expect_body_and_its_checks() {
    let (env, server, mut cfg) = setup();
    leak(&server, 1); // state.db exists: its check opens it ("ok", not "missing")
    let doc = http_get(&deep_url(&server), Duration::from_secs(5)).unwrap();
    assert_eq!(doc.status, 200, "{}", doc.text());
    let body = doc.json();
    assert_eq!(body["status"], "ok", "{body:#}");
    for check in [
        "streams_lock",
        "stream_runtime",
        "sessions",
        "projects",
        "state_db",
    ] {
        assert_eq!(body["checks"][check]["status"], "ok", "{check}: {body:#}");
    }
    // expect_body may name a deep check too.
    cfg.set("health.expect_body", r#""state_db": {"status": "ok""#)
        .write(&env);
    let rep = check(&env, 0);
    assert_eq!(rep["verdict"], "healthy", "{rep:#}");
    assert_eq!(rep["health"]["status"], 200, "{rep:#}");
    assert_untouched(&server);
    assert_nothing_done(&env);
}

/// The incident's failure: the server answers plain /health but cannot open state.db.
/// Shallow, the watchdog sees nothing; deep, it sees 503 "degraded" with the failed
/// check and restarts; the new server is healthy again.
#[test]
fn a_failed_state_db_check_is_unhealthy_only_through_the_deep_url() {
    let (env, server, mut cfg) = setup();
    server.set_memory_mode("state_db");
    let shallow = http_get(&server.url, Duration::from_secs(5)).unwrap();
    assert_eq!(shallow.status, 200, "precondition: {}", shallow.text());
    let deep = http_get(&deep_url(&server), Duration::from_secs(5)).unwrap();
    assert_eq!(deep.status, 503, "precondition: {}", deep.text());
    let body = deep.json();
    assert_eq!(body["status"], "degraded", "{body:#}");
    assert_eq!(body["checks"]["state_db"]["status"], "error", "{body:#}");
    assert_eq!(
        body["checks"]["state_db"]["error"], "OperationalError",
        "{body:#}"
    );
    // The degraded body still carries `"status": "ok"`, in the checks that passed:
    // the 503 is what fails it, before expect_body is read.
    assert!(deep.text().contains(r#""status": "ok""#));

    cfg.set("health.url", server.url.clone()).write(&env);
    let rep = check(&env, 0);
    assert_eq!(rep["verdict"], "healthy", "shallow sees nothing: {rep:#}");

    cfg.set("health.url", deep_url(&server)).write(&env);
    let rep = check(&env, 1);
    let why = reason(&rep, "health_failed").unwrap_or_else(|| panic!("{rep:#}"));
    assert_eq!(
        why["detail"], "health check failed (3 attempts): status 503, expected 200",
        "{why}"
    );
    assert_eq!(rep["health"]["status"], 503, "{rep:#}");
    let new_pid = assert_restarted(&env, &server);
    let deep = http_get(
        &format!("http://127.0.0.1:{}/health?deep=1", server.port),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(
        deep.status,
        200,
        "the new server ({new_pid}): {}",
        deep.text()
    );
}

/// `[fds.budget] field` reads the deep body's top-level `sessions`, never a number
/// inside `checks` (`checks.sessions.count`).
#[test]
fn the_budget_field_is_read_from_the_deep_body() {
    let (env, server, mut cfg) = setup();
    leak(&server, 25); // ~60 FDs
    cfg.set("fds.budget.base", 10)
        .set("fds.budget.per", 2)
        .set("fds.budget.field", "sessions")
        .set("fds.budget.factor", 2.0)
        .write(&env);
    // 0 sessions: 10 FDs expected, at most 20.
    set_sessions(&server.base, 0);
    let rep = check(&env, 0);
    let why = reason(&rep, "fds_over_budget").unwrap_or_else(|| panic!("{rep:#}"));
    assert!(
        why["detail"]
            .as_str()
            .is_some_and(|d| d.contains("for sessions = 0")),
        "{why}"
    );
    assert_eq!(rep["verdict"], "warning", "{rep:#}");
    // 100 sessions: 210 expected, at most 420.
    set_sessions(&server.base, 100);
    let rep = check(&env, 0);
    assert!(reason(&rep, "fds_over_budget").is_none(), "{rep:#}");
    assert_eq!(rep["verdict"], "healthy", "{rep:#}");
    assert_untouched(&server);
}

/// `busy_fields` read the deep body's top-level `active_runs`: a predicted FD leak's
/// restart waits while a run is in flight, and the deferral names the field.
#[test]
fn busy_fields_of_the_deep_body_defer_a_predictive_restart() {
    let (env, server, mut cfg) = setup();
    leak(&server, 30);
    cfg.set("fds.trend_horizon", "2h")
        .set("fds.trend_restart", true)
        .write(&env);
    let rep = check(&env, 0);
    let total = rep["fds"]["total"].as_u64().expect("fds.total");
    // The restart limit 120 FDs away, approached at 120 FDs an hour: 1 h < 2 h.
    cfg.set("fds.max", (total + 120) as i64).write(&env);
    prefill_points(&env, server.pid, &[(1800, -60), (1200, -40), (600, -20)]);
    set_busy(&server.base, 2, 0);
    let body = http_get(&deep_url(&server), Duration::from_secs(5))
        .unwrap()
        .json();
    assert_eq!(body["active_runs"], 2, "precondition: {body:#}");
    assert!(body["checks"].is_object(), "precondition: {body:#}");

    let rep = check(&env, 0);
    let why = reason(&rep, "fd_leak_projected").unwrap_or_else(|| panic!("{rep:#}"));
    assert_eq!(why["severity"], "predictive", "{why}");
    assert_eq!(rep["action"]["result"], "deferred", "{rep:#}");
    assert!(
        rep["action"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("active_runs=2")),
        "the deferral does not name the busy field: {rep:#}"
    );
    assert_untouched(&server);
    assert_nothing_acted(&env);
}
