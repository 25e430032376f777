//! End-to-end tests of one watchdog cycle (docs/DESIGN.md), driven through the CLI against a
//! real HTTP server holding real SQLite WAL handles, with real signals. Every test has its
//! own temp dir, server, config, state dir and log; see `common/env.rs`.

mod common;

use std::fs;
use std::time::Duration;
#[cfg(target_os = "linux")]
use std::time::SystemTime;

use serde_json::Value;

use common::*;

/// Slack on top of the spec's own bound (which already includes 5 s): the machine is
/// small and shared.
const BOUND_SLACK_S: f64 = 5.0;

fn setup() -> (TestEnv, TestServer, ConfigToml) {
    setup_with(ServerOpts::default())
}

fn setup_with(opts: ServerOpts) -> (TestEnv, TestServer, ConfigToml) {
    let env = TestEnv::new();
    let server = TestServer::start(&env, opts);
    let cfg = env.base_config(&server);
    (env, server, cfg)
}

#[track_caller]
fn assert_within_bound(r: &RunResult, cfg: &ConfigToml) {
    let limit = cfg.bound_secs() + BOUND_SLACK_S;
    assert!(
        r.elapsed.as_secs_f64() < limit,
        "run took {:.1?}, bound {} s + {BOUND_SLACK_S} s slack\n{}",
        r.elapsed,
        cfg.bound_secs(),
        r.dump()
    );
}

/// The report of a successful builtin restart.
#[track_caller]
fn assert_restart_report(rep: &Value, server: &TestServer, new_pid: u32) {
    assert_eq!(rep["exit_code"], 1, "{rep:#}");
    assert_eq!(rep["verdict"], "unhealthy", "{rep:#}");
    assert_eq!(rep["target"]["pid"], server.pid, "{rep:#}");
    let action = &rep["action"];
    assert_eq!(action["kind"], "restart", "{rep:#}");
    assert_eq!(action["method"], "builtin", "{rep:#}");
    assert_eq!(action["dry_run"], false, "{rep:#}");
    assert_eq!(action["result"], "restarted", "{rep:#}");
    assert_eq!(action["new_pid"], new_pid, "{rep:#}");
    assert!(action["new_fds"].is_u64(), "{rep:#}");
}

// ---------------------------------------------------------------------------------------
// Healthy
// ---------------------------------------------------------------------------------------

/// With syslog enabled but no syslog socket (as on this machine and CI: no /dev/log),
/// a healthy run still prints nothing: cron would mail a complaint every minute.
#[test]
fn healthy_check_with_syslog_unavailable_prints_nothing() {
    let (env, server, mut cfg) = setup();
    cfg.set("log.syslog", true).write(&env);
    let r = run_watchdog(&env, &["check"]);
    assert_exit(&env, &r, 0);
    assert_eq!(r.stderr, "", "{}", r.dump());
    assert_untouched(&server);
}

#[test]
fn healthy_check_exits_0_and_prints_nothing() {
    let (env, server, cfg) = setup();
    cfg.write(&env);
    let probes = server.health_requests();
    let r = run_watchdog(&env, &["check"]);
    assert_exit(&env, &r, 0);
    assert_eq!(r.stdout, "", "{}", r.dump());
    assert_eq!(r.stderr, "", "{}", r.dump());
    assert_eq!(
        server.health_requests(),
        probes + 1,
        "a healthy check makes exactly one /health request"
    );
    assert_untouched(&server);
    assert!(log_events(&env).is_empty(), "{}", log_text(&env));
    assert_nothing_done(&env);
}

#[test]
fn healthy_check_with_heartbeat_logs_one_line() {
    let (env, server, mut cfg) = setup();
    cfg.set("log.heartbeat", true).write(&env);
    let r = run_watchdog(&env, &["check"]);
    assert_exit(&env, &r, 0);
    assert_eq!(r.stdout, "", "{}", r.dump());
    assert_eq!(r.stderr, "", "{}", r.dump());
    let evs = log_events(&env);
    assert_eq!(evs.len(), 1, "{}", log_text(&env));
    assert_eq!(evs[0]["event"], "healthy");
    assert_eq!(evs[0]["pid"], server.pid);
    assert_log_shape(&env);
}

#[test]
fn json_report_on_a_healthy_check() {
    let (env, server, cfg) = setup();
    cfg.write(&env);
    leak(&server, 5);
    let r = run_watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 0);
    let rep = report(&r);
    for key in [
        "target",
        "health",
        "fds",
        "rss_bytes",
        "verdict",
        "reasons",
        "action",
        "exit_code",
    ] {
        assert!(rep.get(key).is_some(), "report lacks {key:?}: {rep:#}");
    }
    assert_eq!(rep["exit_code"], 0);
    assert_eq!(rep["verdict"], "healthy");
    assert_eq!(rep["reasons"], serde_json::json!([]));
    assert_eq!(rep["action"]["kind"], "none");
    assert!(rep["action"]["result"].is_null(), "{rep:#}");
    assert_eq!(rep["target"]["pid"], server.pid);
    assert_eq!(rep["target"]["port"], server.port);
    assert!(
        rep["target"]["argv"].as_array().is_some_and(|a| a
            .iter()
            .any(|s| s.as_str().is_some_and(|s| s.ends_with("testserver.py")))),
        "{rep:#}"
    );
    assert_eq!(rep["health"]["ok"], true);
    assert_eq!(rep["health"]["status"], 200);
    // 5 connections: 2 × 5 + 1 FDs on state.db; the total moves by a socket or two.
    let total = rep["fds"]["total"].as_u64().expect("fds.total");
    let now = fd_count(server.pid) as u64;
    assert!(
        total.abs_diff(now) <= 3,
        "fds.total {total}, /proc says {now}"
    );
    let patterns = rep["fds"]["patterns"].as_array().expect("fds.patterns");
    let state_db = patterns
        .iter()
        .find(|p| p["pattern"] == "state.db")
        .expect("state.db pattern");
    assert_eq!(state_db["count"], 11, "{rep:#}");
    assert_eq!(state_db["max"], 500, "{rep:#}");
    assert_eq!(
        rep["fds"]["limit"]["soft"].as_u64().map(|s| s > 0),
        Some(true)
    );
    assert!(rep["rss_bytes"].as_u64().is_some_and(|n| n > 0), "{rep:#}");
    assert_untouched(&server);
    assert_nothing_done(&env);
}

#[test]
fn proxy_variables_are_ignored_for_the_health_url() {
    let (env, server, cfg) = setup();
    cfg.write(&env);
    let mut cmd = watchdog_cmd(&env, &["check", "--json"]);
    for var in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
        // Port 9 (discard) on loopback: nothing listens; a proxied probe fails.
        cmd.env(var, "http://127.0.0.1:9");
    }
    cmd.env_remove("NO_PROXY").env_remove("no_proxy");
    let probes = server.health_requests();
    let r = run_with_timeout(cmd, WATCHDOG_TIMEOUT);
    assert_exit(&env, &r, 0);
    assert!(server.health_requests() > probes, "/health was never asked");
    assert_eq!(report(&r)["health"]["status"], 200, "{}", r.dump());
    assert_untouched(&server);
}

#[test]
fn status_on_a_healthy_server_prints_a_report_with_the_pid() {
    let (env, server, cfg) = setup();
    cfg.write(&env);
    let r = run_watchdog(&env, &["status"]);
    assert_exit(&env, &r, 0);
    assert!(
        r.stdout.contains(&server.pid.to_string()),
        "status does not show PID {}\n{}",
        server.pid,
        r.dump()
    );
    assert_untouched(&server);
    assert_nothing_done(&env);
}

#[test]
fn status_on_an_unhealthy_server_exits_4_and_touches_nothing() {
    let (env, server, cfg) = setup();
    cfg.write(&env);
    server.set_memory_mode("503");
    let r = run_watchdog(&env, &["status"]);
    assert_exit(&env, &r, 4);
    assert!(r.stdout.contains(&server.pid.to_string()), "{}", r.dump());
    assert_untouched(&server);
    assert_nothing_done(&env);
}

#[test]
fn status_json_reports_the_run_bound() {
    let (env, _server, mut cfg) = setup();
    cfg.write(&env);
    let r = run_watchdog(&env, &["status", "--json"]);
    assert_exit(&env, &r, 0);
    // 3 × 1 s + 2 × 0.5 s + 2 × 2 s + 5 s + 20 s + 5 s = 38 s
    assert_eq!(cfg.bound_secs(), 38.0);
    let bound = report(&r)["bound_s"].as_f64();
    assert_eq!(bound, Some(38.0), "{}", r.dump());

    cfg.set("health.attempts", 2)
        .set("health.timeout", "2s")
        .set("health.interval", "1s")
        .set("restart.stop_timeout", "3s")
        .set("restart.command_timeout", "4s")
        .set("restart.verify_timeout", "10s")
        .write(&env);
    // 2 × 2 s + 1 × 1 s + 2 × 3 s + 4 s + 10 s + 5 s = 30 s
    assert_eq!(cfg.bound_secs(), 30.0);
    let r = run_watchdog(&env, &["status", "--json"]);
    assert_exit(&env, &r, 0);
    assert_eq!(report(&r)["bound_s"].as_f64(), Some(30.0), "{}", r.dump());
}

// ---------------------------------------------------------------------------------------
// Unhealthy: restarted
// ---------------------------------------------------------------------------------------

#[test]
fn total_fds_over_max_restarts_the_server() {
    let (env, server, mut cfg) = setup();
    cfg.set("fds.max", 150).fd_paths(&[]).write(&env);
    leak(&server, 80); // 161 FDs on state.db alone
    assert!(fd_count(server.pid) >= 150, "precondition: leak too small");

    let r = run_watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 1);
    let new_pid = assert_restarted(&env, &server);
    assert!(
        fd_count(new_pid) < 150,
        "new server holds {} FDs",
        fd_count(new_pid)
    );
    assert_eq!(count_fds_matching(new_pid, "state.db"), 0);
    let rep = report(&r);
    assert_restart_report(&rep, &server, new_pid);
    assert!(rep["action"]["new_fds"].as_u64().unwrap() < 150, "{rep:#}");
    let codes = reason_codes(&rep);
    assert!(codes.contains(&"fds_over_limit".into()), "{codes:?}");
    assert!(!codes.contains(&"fd_path_over_limit".into()), "{codes:?}");
    assert!(!codes.contains(&"health_failed".into()), "{codes:?}");
    assert_within_bound(&r, &cfg);
}

#[test]
fn state_db_handles_over_path_max_restart_the_server() {
    let (env, server, mut cfg) = setup();
    cfg.set("fds.max", 1000)
        .fd_paths(&[("state.db", 50)])
        .write(&env);
    leak(&server, 40); // 81 FDs on state.db, ~90 in total
    assert!(count_fds_matching(server.pid, "state.db") > 50);
    assert!(fd_count(server.pid) < 1000);

    let r = run_watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 1);
    let new_pid = assert_restarted(&env, &server);
    assert_eq!(count_fds_matching(new_pid, "state.db"), 0);
    let rep = report(&r);
    assert_restart_report(&rep, &server, new_pid);
    let codes = reason_codes(&rep);
    assert!(codes.contains(&"fd_path_over_limit".into()), "{codes:?}");
    assert!(!codes.contains(&"fds_over_limit".into()), "{codes:?}");
}

/// Accept-and-never-answer, held in the server's memory so the respawned one is healthy.
#[test]
fn health_hang_restarts_within_the_bound() {
    let (env, server, cfg) = setup();
    cfg.write(&env);
    server.set_memory_mode("hang");

    let r = run_watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 1);
    let new_pid = assert_restarted(&env, &server);
    let rep = report(&r);
    assert_restart_report(&rep, &server, new_pid);
    assert_eq!(rep["health"]["ok"], false, "{rep:#}");
    assert!(reason_codes(&rep).contains(&"health_failed".into()));
    assert_within_bound(&r, &cfg);
}

/// A SIGSTOPped server: the kernel still accepts connections and nothing answers. Its
/// SIGTERM (default action) ends it even while stopped; one that handles SIGTERM needs
/// the SIGCONT the watchdog sends after it (tests/stopped.rs).
#[test]
fn sigstopped_server_is_killed_and_restarted_within_the_bound() {
    let (env, server, cfg) = setup();
    cfg.write(&env);
    server.signal(libc::SIGSTOP);
    assert!(wait_until(Duration::from_secs(5), || is_stopped(
        server.pid
    )));

    let r = run_watchdog(&env, &["check"]);
    assert_exit(&env, &r, 1);
    assert_restarted(&env, &server);
    assert!(server.exit_status().is_some(), "old server was not reaped");
    assert_within_bound(&r, &cfg);
}

#[test]
fn server_ignoring_sigterm_is_killed_and_restarted() {
    let (env, server, cfg) = setup_with(ServerOpts {
        ignore_sigterm: true,
        ..ServerOpts::default()
    });
    cfg.write(&env);
    server.set_memory_mode("503");

    let r = run_watchdog(&env, &["check"]);
    assert_exit(&env, &r, 1);
    assert_restarted(&env, &server);
    let status = server.exit_status().expect("old server reaped");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "old server: {status}");
    assert_within_bound(&r, &cfg);
}

#[test]
fn pre_kill_signal_reaches_the_old_server_before_the_kill() {
    let (env, server, mut cfg) = setup();
    cfg.set("restart.pre_kill_signal", "USR1");
    cfg.write(&env);
    server.set_memory_mode("503");

    let r = run_watchdog(&env, &["check"]);
    assert_exit(&env, &r, 1);
    assert_restarted(&env, &server);
    let dumps = fs::read_to_string(env.db_dir.join("usr1.log")).unwrap_or_default();
    assert_eq!(
        dumps,
        format!("{} stack dump\n", server.pid),
        "the old server got SIGUSR1 once"
    );
    let restart = expect_events(&env, "restarted");
    let detail = restart[0]["message"].as_str().unwrap_or_default();
    assert!(detail.contains("sent SIGUSR1"), "{detail}");
}

#[test]
fn fd_leak_is_restarted_even_within_startup_grace() {
    let (env, server, mut cfg) = setup();
    cfg.set("target.startup_grace", "1h")
        .fd_paths(&[("state.db", 20)])
        .write(&env);
    leak(&server, 15);
    let r = run_watchdog(&env, &["check"]);
    assert_exit(&env, &r, 1);
    assert_restarted(&env, &server);
}

// ---------------------------------------------------------------------------------------
// Unhealthy: restart failed
// ---------------------------------------------------------------------------------------

/// The mode file persists, so the respawned server is unhealthy too.
#[test]
fn restart_that_never_becomes_healthy_exits_3() {
    let (env, server, mut cfg) = setup();
    cfg.set("restart.verify_timeout", "3s").write(&env);
    set_mode(&env, "503");

    let r = run_watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 3);
    let ev = &expect_events(&env, "restart_failed")[0];
    assert_eq!(ev["method"], "builtin", "{ev}");
    let rep = report(&r);
    assert_eq!(rep["exit_code"], 3, "{rep:#}");
    assert_eq!(rep["action"]["kind"], "restart", "{rep:#}");
    assert_eq!(rep["action"]["result"], "failed", "{rep:#}");
    assert!(!is_alive(server.pid), "old server survived");
    assert_log_shape(&env);
    assert_within_bound(&r, &cfg);
}

// ---------------------------------------------------------------------------------------
// Unhealthy: suppressed (exit 4)
// ---------------------------------------------------------------------------------------

/// `--dry-run`: exit 4, the server untouched, a `suppressed` event saying what would have
/// been done, and the report's action marked suppressed and dry-run.
#[track_caller]
fn assert_dry_run(env: &TestEnv, server: &TestServer, r: &RunResult, reason: &str) {
    assert_exit(env, r, 4);
    assert_untouched(server);
    assert_nothing_done(env);
    let ev = &expect_events(env, "suppressed")[0];
    assert_eq!(ev["dry_run"], true, "{ev}");
    let said = format!(
        "{} {}",
        ev["message"],
        ev.get("detail").unwrap_or(&Value::Null)
    );
    assert!(
        said.to_lowercase().contains("restart"),
        "suppressed event does not say it would restart: {ev}"
    );
    assert_log_shape(env);
    let rep = report(r);
    assert_eq!(rep["exit_code"], 4, "{rep:#}");
    assert_eq!(rep["action"]["kind"], "restart", "{rep:#}");
    assert_eq!(rep["action"]["result"], "suppressed", "{rep:#}");
    assert_eq!(rep["action"]["dry_run"], true, "{rep:#}");
    assert!(
        rep["action"]["detail"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{rep:#}"
    );
    assert!(reason_codes(&rep).contains(&reason.into()), "{rep:#}");
}

#[test]
fn dry_run_with_fds_over_max_only_reports() {
    let (env, server, mut cfg) = setup();
    cfg.set("fds.max", 150).fd_paths(&[]).write(&env);
    leak(&server, 80);
    let r = run_watchdog(&env, &["check", "--dry-run", "--json"]);
    assert_dry_run(&env, &server, &r, "fds_over_limit");
}

#[test]
fn dry_run_with_state_db_over_path_max_only_reports() {
    let (env, server, mut cfg) = setup();
    cfg.fd_paths(&[("state.db", 50)]).write(&env);
    leak(&server, 40);
    let r = run_watchdog(&env, &["check", "--dry-run", "--json"]);
    assert_dry_run(&env, &server, &r, "fd_path_over_limit");
}

/// Also the default subcommand: `watchdog --dry-run` is `watchdog check --dry-run`.
#[test]
fn dry_run_with_failing_health_only_reports() {
    let (env, server, cfg) = setup();
    cfg.write(&env);
    server.set_memory_mode("503");
    let r = run_watchdog(&env, &["--dry-run", "--json"]);
    assert_dry_run(&env, &server, &r, "health_failed");
}

#[test]
fn failing_health_within_startup_grace_is_suppressed() {
    let (env, server, mut cfg) = setup();
    cfg.set("target.startup_grace", "1h").write(&env);
    server.set_memory_mode("503");
    let r = run_watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 4);
    assert_untouched(&server);
    assert_nothing_done(&env);
    expect_events(&env, "suppressed");
    let rep = report(&r);
    assert_eq!(rep["action"]["result"], "suppressed", "{rep:#}");
    assert_eq!(rep["action"]["dry_run"], false, "{rep:#}");
    assert_log_shape(&env);
}

/// The crash-loop guard counts the restarts the history holds: when the history cannot
/// be written (here a directory stands at history.json, which rename cannot replace even
/// for root and which the watchdog does not move aside), the restart is not made, the
/// server is left alone, and the run says why.
#[test]
fn a_restart_the_history_cannot_record_is_not_made() {
    let (env, server, mut cfg) = setup();
    cfg.set("fds.max", 150).fd_paths(&[]).write(&env);
    leak(&server, 80);
    assert!(fd_count(server.pid) >= 150, "precondition: leak too small");
    fs::create_dir_all(env.state_dir.join("history.json")).unwrap();

    let r = run_watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 3);
    assert_untouched(&server);
    let failed = expect_events(&env, "restart_failed");
    let message = failed[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("not acting") && message.contains("history"),
        "{message}"
    );
    assert!(
        events_named(&env, "restarted").is_empty(),
        "{}",
        log_text(&env)
    );
}

/// `method = "command"` with a command that returns without restarting anything: the
/// old server still answers /health, which is not a restart.
#[test]
fn a_restart_command_that_leaves_the_old_server_running_fails() {
    let (env, server, mut cfg) = setup();
    cfg.set("fds.max", 150)
        .fd_paths(&[])
        .set("restart.method", "command")
        .set("restart.command", "true")
        .set("restart.verify_timeout", "2s")
        .write(&env);
    leak(&server, 80);
    assert!(fd_count(server.pid) >= 150, "precondition: leak too small");

    let r = run_watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 3);
    assert_untouched(&server);
    let failed = expect_events(&env, "restart_failed");
    let message = failed[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("old server PID {} still runs", server.pid)),
        "{message}"
    );
}

#[test]
fn crash_loop_guard_stops_after_max_restarts() {
    let (env, server, mut cfg) = setup();
    cfg.set("restart.max_restarts", 1)
        .set("restart.window", "1h")
        .write(&env);
    server.set_memory_mode("503");
    let r = run_watchdog(&env, &["check"]);
    assert_exit(&env, &r, 1);
    let new_pid = assert_restarted(&env, &server);

    // The respawned server goes bad too: the guard must hold.
    set_memory_mode_at(&server.base, "503");
    let r = run_watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 4);
    assert!(is_alive(new_pid) && !is_stopped(new_pid));
    assert_eq!(listener_pid(server.port), Some(new_pid));
    assert_eq!(events_named(&env, "restart").len(), 1, "{}", log_text(&env));
    let evs = expect_events(&env, "suppressed");
    let said = evs.last().unwrap().to_string().to_lowercase();
    assert!(
        said.contains("max_restarts") || said.contains("crash-loop") || said.contains("crash loop"),
        "suppressed event does not name the crash-loop guard: {said}"
    );
    let rep = report(&r);
    assert_eq!(rep["action"]["result"], "suppressed", "{rep:#}");
    assert_eq!(rep["target"]["pid"], new_pid, "{rep:#}");
    assert_log_shape(&env);
}

// ---------------------------------------------------------------------------------------
// Stale pidfile
// ---------------------------------------------------------------------------------------

/// The sleeper received no signal: alive, sleeping, nothing pending.
// Linux only: signals pending for a process are read from /proc/PID/status.
#[cfg(target_os = "linux")]
#[track_caller]
fn assert_never_signalled(sleeper: &ChildGuard) {
    let pid = sleeper.pid();
    assert!(is_alive(pid), "the unrelated process {pid} was killed");
    assert!(!is_stopped(pid), "the unrelated process {pid} was stopped");
    assert_eq!(pending_signals(pid), 0, "signals pending for {pid}");
    assert!(cmdline(pid).starts_with("sleep"), "{}", cmdline(pid));
}

/// A pidfile left from an old server whose PID now belongs to another program that
/// started after the file was written (PID reuse, detected by start time vs mtime).
// Linux only: assert_never_signalled reads /proc/PID/status.
#[cfg(target_os = "linux")]
#[test]
fn stale_pidfile_naming_a_newer_process_is_never_signalled() {
    let (env, server, cfg) = setup_with(ServerOpts {
        pidfile: false,
        ..ServerOpts::default()
    });
    cfg.write(&env);
    let sleeper = spawn_sleep();
    fs::write(&env.pidfile, format!("{}\n", sleeper.pid())).unwrap();
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&env.pidfile)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    server.set_memory_mode("503");

    let r = run_watchdog(&env, &["check", "--json"]);
    assert_never_signalled(&sleeper);
    assert_exit(&env, &r, 1);
    let rep = report(&r);
    assert!(
        reason_codes(&rep).contains(&"stale_pidfile".into()),
        "{rep:#}"
    );
    assert_eq!(rep["target"]["pid"], server.pid, "{rep:#}");
    assert!(
        log_text(&env).contains("stale_pidfile"),
        "log does not mention stale_pidfile:\n{}",
        log_text(&env)
    );
    assert_restarted(&env, &server);
    assert_never_signalled(&sleeper);
}

/// A fresh pidfile naming a live process whose command line does not match
/// `target.match`: stale (a warning), and the healthy server found by its port is fine.
// Linux only: assert_never_signalled reads /proc/PID/status.
#[cfg(target_os = "linux")]
#[test]
fn stale_pidfile_naming_another_program_is_a_warning() {
    let (env, server, mut cfg) = setup_with(ServerOpts {
        pidfile: false,
        ..ServerOpts::default()
    });
    cfg.set("target.match", "testserver.py").write(&env);
    let sleeper = spawn_sleep();
    fs::write(&env.pidfile, format!("{}\n", sleeper.pid())).unwrap();

    let r = run_watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 0);
    let rep = report(&r);
    assert!(
        reason_codes(&rep).contains(&"stale_pidfile".into()),
        "{rep:#}"
    );
    assert_eq!(rep["target"]["pid"], server.pid, "{rep:#}");
    assert_never_signalled(&sleeper);
    assert_untouched(&server);
    assert_nothing_done(&env);
}

// ---------------------------------------------------------------------------------------
// Lock
// ---------------------------------------------------------------------------------------

// Linux only: the held lock is seen in /proc/locks.
#[cfg(target_os = "linux")]
#[test]
fn second_concurrent_run_exits_5_at_once() {
    let (env, server, mut cfg) = setup();
    // 3 attempts × 3 s + 2 × 0.5 s: the first run probes for about 10 s.
    cfg.set("health.timeout", "3s").write(&env);
    server.set_memory_mode("hang");

    let mut first = spawn_watchdog(&env, &["check"]);
    let lock = env.state_dir.join("lock");
    assert!(
        wait_until(Duration::from_secs(15), || is_locked(&lock)),
        "the first run never held {}",
        lock.display()
    );
    let second = run_watchdog(&env, &["check"]);
    // Read as soon as the second run is done: "at once" means it exited 5 while the
    // first run still ran and still held the lock, not after waiting for it.
    let first_still_running = first.is_running();
    let lock_still_held = is_locked(&lock);
    assert_exit(&env, &second, 5);
    assert!(
        first_still_running,
        "the first run ended before the second did"
    );
    assert!(
        lock_still_held,
        "the lock {} was free when the second run exited: it waited for the first",
        lock.display()
    );

    let first = first.wait(WATCHDOG_TIMEOUT);
    assert_exit(&env, &first, 1);
    assert_restarted(&env, &server);
    assert_eq!(events_named(&env, "restart").len(), 1, "{}", log_text(&env));
}

// ---------------------------------------------------------------------------------------
// Bad configuration
// ---------------------------------------------------------------------------------------

/// Exit 2, stderr names `PATH:LINE:COL` of the offending text, and nothing was touched:
/// the server is untouched, no log and no state were written.
#[track_caller]
fn assert_config_rejected(
    env: &TestEnv,
    server: &TestServer,
    r: &RunResult,
    text: &str,
    offset: usize,
) {
    assert_exit(env, r, 2);
    let (line, col) = line_col(text, offset);
    let want = format!("{}:{line}:{col}", env.config_path.display());
    assert!(
        r.stderr.contains(&want),
        "stderr does not name {want}\n{}\n--- config ---\n{text}",
        r.dump()
    );
    assert_untouched(server);
    assert!(!env.log_file.exists(), "log written: {}", log_text(env));
    let state_entries = fs::read_dir(&env.state_dir)
        .map(|rd| rd.count())
        .unwrap_or(0);
    assert_eq!(
        state_entries,
        0,
        "state written in {}",
        env.state_dir.display()
    );
}

#[test]
fn unknown_key_is_rejected_with_its_location() {
    let (env, server, mut cfg) = setup();
    // Unhealthy, so a binary that ignored the error would act.
    server.set_memory_mode("503");
    cfg.set("health.retries", 3);
    let text = cfg.write(&env);
    let at = locate(&text, "health", "retries", false);
    let r = run_watchdog(&env, &["check"]);
    assert_config_rejected(&env, &server, &r, &text, at);

    let r = run_watchdog(&env, &["config", "--check"]);
    assert_config_rejected(&env, &server, &r, &text, at);
}

/// `[health] key = "value"` is rejected, pointing at the value, on an unhealthy server
/// (a binary that ignored the error would act).
fn assert_health_value_rejected(key: &str, value: &str) {
    let (env, server, mut cfg) = setup();
    server.set_memory_mode("503");
    cfg.set(&format!("health.{key}"), value);
    let text = cfg.write(&env);
    let at = locate(&text, "health", key, true);
    let quoted = format!("{value:?}");
    assert_eq!(&text[at..at + quoted.len()], quoted);
    let r = run_watchdog(&env, &["check"]);
    assert_config_rejected(&env, &server, &r, &text, at);
}

#[test]
fn wrong_type_is_rejected_with_its_location() {
    assert_health_value_rejected("attempts", "three");
}

#[test]
fn zero_timeout_is_rejected_with_its_location() {
    assert_health_value_rejected("timeout", "0s");
}

// ---------------------------------------------------------------------------------------
// What counts as a failed probe (docs/DESIGN.md, "Health")
// ---------------------------------------------------------------------------------------

#[test]
fn each_kind_of_bad_answer_fails_health() {
    let (env, server, mut cfg) = setup();
    cfg.set("health.attempts", 1).write(&env);
    for mode in ["503", "hang", "reset", "dribble", "big", "nobody"] {
        server.set_memory_mode(mode);
        let r = run_watchdog(&env, &["check", "--dry-run", "--json"]);
        assert_exit(&env, &r, 4);
        let rep = report(&r);
        assert_eq!(rep["health"]["ok"], false, "mode {mode}: {rep:#}");
        assert!(
            rep["health"]["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty()),
            "mode {mode}: no error reported: {rep:#}"
        );
        assert!(
            reason_codes(&rep).contains(&"health_failed".into()),
            "mode {mode}: {rep:#}"
        );
        assert!(
            r.elapsed < Duration::from_secs_f64(cfg.bound_secs() + BOUND_SLACK_S),
            "mode {mode}: took {:.1?}",
            r.elapsed
        );
    }
    server.set_memory_mode("ok");
    let r = run_watchdog(&env, &["check", "--dry-run", "--json"]);
    assert_exit(&env, &r, 0);
    assert_untouched(&server);
    assert_nothing_done(&env);
}

/// A server owned by another user (root here) seen by a watchdog running as `nobody`:
/// its FDs cannot be read, the port's owner cannot be seen, so nothing is signalled
/// and the run says why.
// Linux only: another user through setpriv (util-linux), as root.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs root (runs the watchdog as nobody against root's server): run by script/test as root and .ci/run"]
fn another_users_server_is_never_signalled() {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    assert_eq!(
        uid, 0,
        "this test starts the server as root and the watchdog as nobody: run it as root \
         (script/test as root runs it; so does .ci/run)"
    );
    let (env, server, mut cfg) = setup();
    server.set_memory_mode("503");
    // nobody reads the config and writes a state dir and a log of its own: a shared
    // one would be refused (tests/trust_state.rs).
    let log = private_state_for(&env, 65534, 65534);
    cfg.set("log.file", log.to_str().unwrap()).write(&env);
    let cmd = watchdog_cmd_as(&env, 65534, 65534, &["check", "--json"]);
    let r = run_with_timeout(cmd, Duration::from_secs(60));
    assert_exit(&env, &r, 4);
    let rep = report(&r);
    assert_eq!(rep["action"]["result"], "suppressed", "{rep}");
    let codes = reason_codes(&rep);
    assert!(
        codes.iter().any(|c| c == "target_unclear"),
        "the watchdog says it cannot see the port's owner: {codes:?}"
    );
    assert_untouched(&server);
    assert_eq!(
        pending_signals(server.pid),
        0,
        "nothing was sent to the server"
    );
}

/// A server kept alive by a shell loop the watchdog cannot recognise as a supervisor:
/// after the kill the loop starts it again, and the watchdog sees that and does not
/// start a second copy.
#[test]
fn a_parent_that_restarts_the_server_is_not_fought() {
    let env = TestEnv::new();
    let q = |p: &std::path::Path| sh_quote(&p.display().to_string());
    let script = format!(
        "while :; do {py} {srv} --port-file {pf} --pid-log {pl} --db {db}; sleep 0.2; done",
        py = sh_quote(python()),
        srv = q(&testserver_script()),
        pf = q(&env.port_file),
        pl = q(&env.pid_log),
        db = q(&env.db_dir),
    );
    // Declared after env, so dropped first: the loop must not outlive the cleanup.
    let supervisor_loop =
        ChildGuard::spawn(std::process::Command::new("sh").arg("-c").arg(&script));
    assert!(
        wait_until(Duration::from_secs(20), || env.port_file.exists()
            && env.logged_pids().len() == 1),
        "the looped server did not start"
    );
    let (_, port) = wait_for_server(&env, Duration::from_secs(20), None);
    let first = env.logged_pids()[0];
    assert!(wait_until(Duration::from_secs(20), || listener_pid(port)
        == Some(first)));

    let mut cfg = ConfigToml::for_port(&env, port);
    cfg.set("fds.max", 60);
    cfg.write(&env);
    control(&format!("http://127.0.0.1:{port}"), "/control/leak?n=40");

    let r = run_watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 1);
    let rep = report(&r);
    let detail = rep["action"]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(detail.contains("parent"), "{detail}");
    // Exactly one new server, started by the loop, and it holds the port.
    let pids = env.logged_pids();
    assert_eq!(
        pids.len(),
        2,
        "one restart by the loop, none by the watchdog: {pids:?}"
    );
    let second = pids[1];
    assert_eq!(listener_pid(port), Some(second));
    assert_eq!(parent_pid(second), Some(supervisor_loop.pid()));
    assert!(!is_alive(first));
}
