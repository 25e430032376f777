//! End-to-end tests that run unchanged on Linux and macOS (README.md, "Running on
//! macOS under launchd"): the FD census, the port holder, `status`, a builtin restart, and the
//! launchd parsers on captured `launchctl print` output. Each test drives the watchdog
//! binary against a real test server (`tests/support/testserver.py`) in its own temp
//! dir, as the rest of the suite does.
//!
//! What the test itself knows about a process comes from the same tools on both
//! systems, never from /proc: `ps -ww -o KEY= -p PID` (alive, command line) and
//! `lsof` (the port's holder, the FD count), or from the watchdog's own JSON. The
//! harness underneath (`common/proc.rs`, with which `common/server.rs` starts and cleans
//! up servers) reads /proc on Linux and asks `ps`/`lsof` elsewhere, so what these tests
//! assert is checked the same way here and on a Mac.

mod common;

use std::fs;
use std::time::Duration;

use serde_json::Value;

use common::*;

/// How long a replaced server may take to be gone (the watchdog has already waited for
/// it; this only covers our reaper thread).
const GONE: Duration = Duration::from_secs(10);

fn setup_with(opts: ServerOpts) -> (TestEnv, TestServer, ConfigToml) {
    let env = TestEnv::new();
    let server = TestServer::start(&env, opts);
    let cfg = env.base_config(&server);
    (env, server, cfg)
}

fn setup() -> (TestEnv, TestServer, ConfigToml) {
    setup_with(ServerOpts::default())
}

/// `watchdog ARGS --json`, asserting the exit code; returns the one JSON document.
#[track_caller]
fn json_run(env: &TestEnv, args: &[&str], code: i32) -> (RunResult, Value) {
    let mut argv = args.to_vec();
    argv.push("--json");
    let r = run_watchdog(env, &argv);
    assert_exit(env, &r, code);
    let doc = report(&r);
    (r, doc)
}

/// The server's FD count by `lsof`, once two readings around `during` agree (a control
/// request's socket may still be closing); returns that count and what `during` gave.
fn lsof_count_around<T>(pid: u32, mut during: impl FnMut() -> T) -> (usize, T) {
    for _ in 0..20 {
        let before = lsof_fd_count(pid);
        let got = during();
        if lsof_fd_count(pid) == before {
            return (before, got);
        }
    }
    panic!("the FD count of PID {pid} never held still across a run");
}

/// The count of `path_part` in a census's `top_paths` (0 when absent).
fn top_path_count(fds: &Value, path_part: &str) -> u64 {
    fds["top_paths"]
        .as_array()
        .unwrap_or_else(|| panic!("no top_paths: {fds:#}"))
        .iter()
        .filter(|p| p["path"].as_str().is_some_and(|s| s.contains(path_part)))
        .map(|p| p["count"].as_u64().unwrap_or(0))
        .sum()
}

/// The effective UID of this test (the watchdog runs as the same user).
fn own_uid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

// ---------------------------------------------------------------------------------------
// The FD census
// ---------------------------------------------------------------------------------------

/// `watchdog fds --json` on a server holding N extra files: its total is the count
/// `lsof` gives, the N handles are one path with count N, and they are files.
#[test]
#[cfg_attr(
    target_os = "linux",
    ignore = "needs lsof on Linux (apt-get install lsof; part of macOS): run by script/test --all and .ci/run"
)]
fn fds_counts_a_servers_extra_files_as_lsof_does() {
    let (env, server, cfg) = setup();
    cfg.write(&env);
    let (_, before) = lsof_count_around(server.pid, || json_run(&env, &["fds"], 0).1);
    assert_eq!(before["target"]["pid"], server.pid, "{before:#}");
    assert_eq!(top_path_count(&before["fds"], "plain-file.txt"), 0);

    const N: usize = 37;
    leak_files(&server, N);
    let (lsof_total, doc) = lsof_count_around(server.pid, || json_run(&env, &["fds"], 0).1);
    let fds = &doc["fds"];
    assert_eq!(doc["target"]["pid"], server.pid, "{doc:#}");
    assert_eq!(
        fds["total"].as_u64(),
        Some(lsof_total as u64),
        "the census and lsof disagree on the total\n{fds:#}"
    );
    assert_eq!(
        top_path_count(fds, "plain-file.txt"),
        N as u64,
        "the N extra handles are one path with count N\n{fds:#}"
    );
    let files_before = before["fds"]["by_kind"]["file"].as_u64().unwrap();
    assert_eq!(
        fds["by_kind"]["file"].as_u64(),
        Some(files_before + N as u64),
        "{fds:#}"
    );
    // The listener is a TCP socket on the server's port in the census's socket list.
    let port = format!(":{}", server.port);
    assert!(
        fds["tcp"]
            .as_array()
            .is_some_and(|t| t.iter().any(|s| s["state"] == "LISTEN"
                && s["local"].as_str().is_some_and(|l| l.ends_with(&port)))),
        "{fds:#}"
    );
}

/// The census in a `check`: the report's `fds` counts the N extra files, a path rule
/// counts them, and under its limit nothing is done.
#[test]
#[cfg_attr(
    target_os = "linux",
    ignore = "needs lsof on Linux (apt-get install lsof; part of macOS): run by script/test --all and .ci/run"
)]
fn check_reports_the_census_of_a_server_holding_n_extra_files() {
    let (env, server, mut cfg) = setup();
    const N: usize = 25;
    leak_files(&server, N);
    cfg.fd_paths(&[("plain-file.txt", N as i64)]).write(&env);
    let (lsof_total, (_, rep)) = lsof_count_around(server.pid, || json_run(&env, &["check"], 0));
    let fds = &rep["fds"];
    assert_eq!(rep["target"]["pid"], server.pid, "{rep:#}");
    assert_eq!(rep["verdict"], "healthy", "{rep:#}");
    assert_eq!(rep["action"]["kind"], "none", "{rep:#}");
    // The check's own health probe is a connection to the server, which the server
    // may still be closing when the census is taken: the total moves by a socket or two.
    let total = fds["total"].as_u64().expect("fds.total");
    assert!(
        total.abs_diff(lsof_total as u64) <= 3,
        "fds.total {total}, lsof says {lsof_total}\n{fds:#}"
    );
    let rule = fds["patterns"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["pattern"] == "plain-file.txt"))
        .unwrap_or_else(|| panic!("no plain-file.txt rule in {fds:#}"));
    assert_eq!(rule["count"], N as u64, "{fds:#}");
    assert_eq!(rule["max"], N as u64, "{fds:#}");
    assert!(ps_alive(server.pid), "the server was left alone");
    assert_nothing_done(&env);
}

// ---------------------------------------------------------------------------------------
// The port holder and `status`
// ---------------------------------------------------------------------------------------

/// With no pidfile (configured but absent, or not configured at all), `status` finds the
/// server by its port and names the PID `lsof` says holds it.
#[test]
#[cfg_attr(
    target_os = "linux",
    ignore = "needs lsof on Linux (apt-get install lsof; part of macOS): run by script/test --all and .ci/run"
)]
fn status_names_the_port_holder_without_a_pidfile() {
    let (env, server, mut cfg) = setup_with(ServerOpts {
        pidfile: false,
        ..ServerOpts::default()
    });
    assert!(!env.pidfile.exists());
    assert_eq!(lsof_listeners(server.port), [server.pid]);

    for configured in [true, false] {
        if !configured {
            cfg.remove("target.pidfile");
        }
        cfg.write(&env);
        let (_, rep) = json_run(&env, &["status"], 0);
        let target = &rep["target"];
        assert_eq!(
            target["pid"], server.pid,
            "pidfile configured: {configured}\n{rep:#}"
        );
        assert_eq!(target["port"], server.port, "{rep:#}");
        assert!(
            target["found_by"]
                .as_array()
                .is_some_and(|f| f.iter().any(|w| w == "port")),
            "found by its port\n{rep:#}"
        );
        let holders = rep["port_holders"].as_array().expect("port_holders");
        assert_eq!(holders.len(), 1, "{rep:#}");
        assert_eq!(holders[0]["pid"], server.pid, "{rep:#}");
        assert_eq!(holders[0]["uid"], own_uid(), "{rep:#}");

        let r = run_watchdog(&env, &["status"]);
        assert_exit(&env, &r, 0);
        assert!(
            r.stdout.contains(&format!("PID {}", server.pid)) && r.stdout.contains("found by port"),
            "the human status names the holder and how it was found\n{}",
            r.dump()
        );
    }
    assert!(ps_alive(server.pid));
    assert_nothing_done(&env);
}

/// `status` and `status --json` on a healthy server: the PID, the command line `ps`
/// shows, health 200, a census, nothing done; the human form says the same.
#[test]
fn status_human_and_json_on_a_healthy_server() {
    let (env, server, cfg) = setup();
    cfg.write(&env);
    let (_, rep) = json_run(&env, &["status"], 0);
    let target = &rep["target"];
    assert_eq!(target["pid"], server.pid, "{rep:#}");
    assert_eq!(target["port"], server.port, "{rep:#}");
    let argv: Vec<&str> = target["argv"]
        .as_array()
        .expect("argv")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        argv.join(" "),
        ps_args(server.pid),
        "the watchdog and ps read the same command line\n{rep:#}"
    );
    assert_eq!(rep["health"]["ok"], true, "{rep:#}");
    assert_eq!(rep["health"]["status"], 200, "{rep:#}");
    assert_eq!(rep["verdict"], "healthy", "{rep:#}");
    assert_eq!(rep["action"]["kind"], "none", "{rep:#}");
    assert_eq!(rep["action"]["dry_run"], true, "status never acts\n{rep:#}");
    assert_eq!(rep["exit_code"], 0, "{rep:#}");
    assert!(
        rep["fds"]["total"].as_u64().is_some_and(|t| t > 0),
        "{rep:#}"
    );
    assert!(rep["bound_s"].as_u64().is_some_and(|b| b > 0), "{rep:#}");

    let r = run_watchdog(&env, &["status"]);
    assert_exit(&env, &r, 0);
    for want in [
        format!("PID {}", server.pid),
        "ok: status 200".to_string(),
        "nothing to do".to_string(),
    ] {
        assert!(
            r.stdout.contains(&want),
            "status lacks {want:?}\n{}",
            r.dump()
        );
    }
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("verdict") && l.contains("healthy")),
        "{}",
        r.dump()
    );
    assert!(ps_alive(server.pid));
    assert_nothing_done(&env);
}

/// `status` on a server answering 503 exits 4, says why, and touches nothing.
#[test]
#[cfg_attr(
    target_os = "linux",
    ignore = "needs lsof on Linux (apt-get install lsof; part of macOS): run by script/test --all and .ci/run"
)]
fn status_on_an_unhealthy_server_exits_4_and_touches_nothing() {
    let (env, server, cfg) = setup();
    cfg.write(&env);
    server.set_memory_mode("503");
    let (_, rep) = json_run(&env, &["status"], 4);
    assert_eq!(rep["target"]["pid"], server.pid, "{rep:#}");
    assert_eq!(rep["health"]["ok"], false, "{rep:#}");
    assert_eq!(rep["verdict"], "unhealthy", "{rep:#}");
    assert!(
        reason_codes(&rep).iter().any(|c| c == "health_failed"),
        "{rep:#}"
    );
    let r = run_watchdog(&env, &["status"]);
    assert_exit(&env, &r, 4);
    assert!(
        r.stdout.contains(&format!("PID {}", server.pid)),
        "{}",
        r.dump()
    );
    assert!(ps_alive(server.pid), "status killed the server");
    assert_eq!(lsof_listeners(server.port), [server.pid]);
    assert_nothing_done(&env);
}

// ---------------------------------------------------------------------------------------
// A builtin restart
// ---------------------------------------------------------------------------------------

/// After `check` exited 1: the report names a builtin restart to a new PID; that PID is
/// a test server of this env (ps), holds the port (lsof) and answers /health; the old
/// one is gone (ps). Returns the new PID.
#[track_caller]
fn assert_builtin_restart(env: &TestEnv, server: &TestServer, rep: &Value, reason: &str) -> u32 {
    assert!(
        reason_codes(rep).iter().any(|c| c == reason),
        "reason {reason} expected\n{rep:#}"
    );
    let action = &rep["action"];
    assert_eq!(action["kind"], "restart", "{rep:#}");
    assert_eq!(action["method"], "builtin", "{rep:#}");
    assert_eq!(action["result"], "restarted", "{rep:#}");
    assert_eq!(rep["exit_code"], 1, "{rep:#}");
    let new_pid = u32::try_from(action["new_pid"].as_u64().expect("new_pid")).unwrap();
    assert_ne!(new_pid, server.pid, "{rep:#}");

    assert!(
        wait_until(GONE, || !ps_alive(server.pid)),
        "old server PID {} is still alive",
        server.pid
    );
    assert!(
        ps_alive(new_pid),
        "new server PID {new_pid} is not running\n{}",
        log_text(env)
    );
    let args = ps_args(new_pid);
    assert!(
        args.contains("testserver.py") && args.contains(&*env.pid_log.to_string_lossy()),
        "PID {new_pid} is not this env's test server: {args}"
    );
    assert!(
        env.logged_pids().contains(&new_pid),
        "the new server was started from the replayed argv"
    );
    assert_eq!(
        lsof_listeners(server.port),
        [new_pid],
        "the new server holds the port"
    );
    let health = http_get(&server.url, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("the new server does not answer /health: {e}"));
    assert_eq!(health.status, 200, "{}", health.text());
    for name in ["restart", "restarted"] {
        let ev = &expect_events(env, name)[0];
        assert_eq!(ev["method"], "builtin", "{name} event: {ev}");
    }
    assert_eq!(
        env.incident_files().len(),
        1,
        "one incident snapshot per kill"
    );
    new_pid
}

/// A server that accepts but never answers /health is replaced: exit 1, a new PID that
/// answers, the old one gone.
#[test]
#[cfg_attr(
    target_os = "linux",
    ignore = "needs lsof on Linux (apt-get install lsof; part of macOS): run by script/test --all and .ci/run"
)]
fn a_wedged_server_is_restarted_builtin() {
    let (env, server, cfg) = setup();
    cfg.write(&env);
    // In memory only: the replacement starts healthy.
    server.set_memory_mode("hang");
    let (_, rep) = json_run(&env, &["check"], 1);
    assert_eq!(rep["target"]["pid"], server.pid, "{rep:#}");
    assert_eq!(rep["health"]["ok"], false, "{rep:#}");
    assert_builtin_restart(&env, &server, &rep, "health_failed");
    let (_, after) = json_run(&env, &["check"], 0);
    assert_eq!(after["verdict"], "healthy", "{after:#}");
}

/// A server holding more files on one path than its rule allows is replaced, though
/// its /health is fine; the replacement holds none of them.
#[test]
#[cfg_attr(
    target_os = "linux",
    ignore = "needs lsof on Linux (apt-get install lsof; part of macOS): run by script/test --all and .ci/run"
)]
fn an_over_limit_server_is_restarted_builtin() {
    let (env, server, mut cfg) = setup();
    leak_files(&server, 30);
    cfg.fd_paths(&[("plain-file.txt", 20)]).write(&env);
    let (_, rep) = json_run(&env, &["check"], 1);
    assert_eq!(rep["health"]["ok"], true, "{rep:#}");
    let rule = rep["fds"]["patterns"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["pattern"] == "plain-file.txt"))
        .unwrap_or_else(|| panic!("no plain-file.txt rule in {rep:#}"));
    assert_eq!(rule["count"], 30, "{rep:#}");
    let new_pid = assert_builtin_restart(&env, &server, &rep, "fd_path_over_limit");
    let (_, doc) = json_run(&env, &["fds"], 0);
    assert_eq!(doc["target"]["pid"], new_pid, "{doc:#}");
    assert_eq!(top_path_count(&doc["fds"], "plain-file.txt"), 0, "{doc:#}");
    // The incident snapshot kept the old server's census.
    let incident = fs::read_to_string(&env.incident_files()[0]).unwrap();
    assert!(incident.contains("plain-file.txt"), "{incident}");
}

// ---------------------------------------------------------------------------------------
// launchd: the parser on captured `launchctl print` output
// ---------------------------------------------------------------------------------------

mod launchctl_fixtures {
    use watchdog::probe::supervisor::launchd::{LastExit, is_starting, parse_print};

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/launchctl/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// What each captured job says: (fixture, target, pid, state, last exit code,
    /// last terminating signal, starting).
    #[allow(clippy::type_complexity)]
    const JOBS: [(
        &str,
        &str,
        Option<u32>,
        &str,
        Option<i32>,
        Option<&str>,
        bool,
    ); 4] = [
        (
            "running.txt",
            "gui/501/com.example.hermes-webui",
            Some(4242),
            "running",
            Some(0),
            None,
            false,
        ),
        (
            "never-exited-system.txt",
            "system/com.example.hermes-webui",
            Some(391),
            "running",
            None,
            None,
            false,
        ),
        (
            "not-running-ex-config.txt",
            "gui/501/com.example.hermes-webui",
            None,
            "not running",
            Some(78),
            None,
            false,
        ),
        (
            "killed-spawn-scheduled.txt",
            "gui/501/com.example.hermes-webui",
            None,
            "spawn scheduled",
            None,
            Some("Killed: 9"),
            true,
        ),
    ];

    #[test]
    fn every_captured_job_reads_as_launchctl_printed_it() {
        for (name, target, pid, state, code, signal, starting) in JOBS {
            let job = parse_print(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(job.target, target, "{name}");
            assert_eq!(job.pid, pid, "{name}");
            assert_eq!(job.state.as_deref(), Some(state), "{name}");
            assert_eq!(
                job.last_exit.as_ref().and_then(LastExit::code),
                code,
                "{name}"
            );
            assert_eq!(job.last_signal.as_deref(), signal, "{name}");
            assert_eq!(is_starting(state), starting, "{name}");
            assert!(
                job.program.is_some() && !job.arguments.is_empty(),
                "{name}: program and arguments\n{job:?}"
            );
            assert_eq!(
                job.arguments.first(),
                job.program.as_ref(),
                "{name}: argv[0] is the program"
            );
        }
    }

    /// A capture cut anywhere inside the job's block never yields a PID (a cut inside
    /// `pid = 4242` would read as 42).
    #[test]
    fn a_capture_cut_short_never_yields_a_pid() {
        for (name, ..) in JOBS {
            let whole = fixture(name);
            let end = whole.trim_end().len() - 1; // the job's closing brace
            for cut in (0..end).filter(|&i| whole.is_char_boundary(i)) {
                if let Ok(job) = parse_print(&whole[..cut]) {
                    panic!("{name} cut at {cut} parsed: {job:?}");
                }
            }
        }
    }
}
