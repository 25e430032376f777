//! End-to-end tests of the launchd jobs the watchdog must recognise, and must never
//! mistake (src/probe/supervisor/launchd/, docs/SECURITY.md): an IDE terminal's
//! one-shot job and the watchdog's own label are no jobs to kickstart; a job is
//! addressed in the domain that holds it (`user/<uid>` on a headless Mac, `system` for
//! a daemon with UserName); and a job is found by its PID in launchd's own listing
//! when the server's environment names none.
//!
//! launchd cannot run here: a stand-in `launchctl` (tests/support/fake_supervisor.py)
//! records every call and answers like the real one from the captures in
//! tests/fixtures/launchctl/, so "never kickstarted" is proven by what the watchdog ran.
//! The stand-in's job runs the real test server; every server logs its PID, and
//! `TestEnv`'s drop kills the ones left.
//!
//! Linux only: the stand-in reads /proc and the daemon's server is started through
//! `setpriv`; on a Mac the real launchctl would answer instead.
#![cfg(target_os = "linux")]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use common::*;

/// Generous: Python starts slowly on a small shared machine.
const UP_TIMEOUT: Duration = Duration::from_secs(30);
const LABEL: &str = "com.example.hermes-webui";
/// The label `watchdog schedule launchd` gives the watchdog's own LaunchAgent.
const OWN_LABEL: &str = "io.github.watchdog.check";
const ONESHOT: &str = "com.apple.xpc.launchd.oneshot.0x10000003.Code";

/// The stand-in (common's [`FakeSupervisor`]) as `launchctl` alone.
struct FakeLaunchd(FakeSupervisor);

impl FakeLaunchd {
    /// `job` holds the label (and optionally `domain`, `argv`, `fixture`); the server
    /// is the test server with `server_env` added to its environment.
    fn new(env: &TestEnv, tools: &Tools, job: Value, server_env: Value) -> FakeLaunchd {
        FakeLaunchd(FakeSupervisor::new(
            env,
            tools,
            &["launchctl"],
            job,
            server_env,
        ))
    }

    /// Starts the job's server as launchd would; returns its PID.
    fn start_job(&self) -> u32 {
        self.0.start_job()
    }

    /// Every recorded `launchctl` call (its arguments), one per line; then cleared.
    fn take_calls(&self) -> Vec<String> {
        self.0
            .take_calls()
            .into_iter()
            .map(|l| l.strip_prefix("launchctl ").unwrap_or(&l).to_string())
            .collect()
    }

    /// The PID the stand-in's job runs now.
    fn job_pid(&self) -> Option<u32> {
        self.0.job_pid()
    }
}

/// Runs the watchdog with the stand-in on PATH and `extra` in its environment.
fn watchdog(env: &TestEnv, tools: &Tools, args: &[&str], extra: &[(&str, &str)]) -> RunResult {
    let mut cmd = watchdog_cmd(env, args);
    cmd.env("PATH", tools.path());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    run_with_timeout(cmd, WATCHDOG_TIMEOUT)
}

/// The server leaks FDs past `fds.max`: the next check must restart it.
fn make_unhealthy(port: u16) {
    control(&format!("http://127.0.0.1:{port}"), "/control/leak?n=80");
}

fn config(env: &TestEnv, port: u16, method: &str) -> ConfigToml {
    let mut cfg = ConfigToml::for_port(env, port);
    cfg.set("restart.method", method);
    cfg.set("fds.max", 150);
    cfg
}

/// The check restarted the server with `method`; returns the new PID.
#[track_caller]
fn assert_restarted(env: &TestEnv, r: &RunResult, method: &str) -> u32 {
    assert_exit(env, r, 1);
    let rep = report(r);
    assert_eq!(rep["action"]["kind"], "restart", "{rep:#}");
    assert_eq!(rep["action"]["method"], method, "{rep:#}");
    assert_eq!(rep["action"]["result"], "restarted", "{rep:#}");
    rep["action"]["new_pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("no action.new_pid: {rep:#}")) as u32
}

/// The server `pid` on `port` is no launchd job to the watchdog (run with `extra` in its
/// environment): `status` names no supervisor and a builtin restart, and once the
/// server is unhealthy `check` restarts it itself, to a new PID, without ever running
/// `launchctl`.
#[track_caller]
fn assert_no_job_and_restarted_builtin(
    env: &TestEnv,
    tools: &Tools,
    fake: &FakeLaunchd,
    (pid, port): (u32, u16),
    extra: &[(&str, &str)],
) {
    let r = watchdog(env, tools, &["status", "--json"], extra);
    assert_exit(env, &r, 0);
    let rep = report(&r);
    assert_eq!(rep["restart_method"], "builtin", "{rep:#}");
    assert!(rep["target"]["supervisor"].is_null(), "{rep:#}");

    make_unhealthy(port);
    let r = watchdog(env, tools, &["check", "--json"], extra);
    let new_pid = assert_restarted(env, &r, "builtin");
    assert_ne!(new_pid, pid);
    assert_eq!(fake.take_calls(), Vec::<String>::new(), "launchctl was run");
}

/// A server started from a terminal inside an IDE carries launchd's one-shot label.
/// It is not a launchd job: the watchdog restarts it itself and never runs
/// `launchctl kickstart -k` of the IDE's job (before, it did).
#[test]
fn an_ide_oneshot_target_is_never_kickstarted() {
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    let fake = FakeLaunchd::new(
        &env,
        &tools,
        serde_json::json!({ "label": ONESHOT, "fixture": launchctl_fixture("ide-oneshot.txt") }),
        serde_json::json!({ "XPC_SERVICE_NAME": ONESHOT }),
    );
    let pid = fake.start_job();
    let (found, port) = wait_for_server(&env, UP_TIMEOUT, None);
    assert_eq!(found, pid);
    config(&env, port, "auto").write(&env);

    assert_no_job_and_restarted_builtin(&env, &tools, &fake, (pid, port), &[]);
}

/// The watchdog runs as a LaunchAgent (`XPC_SERVICE_NAME` is its own label) and the
/// server, which it once started, inherited that label. Taken at its word, the job
/// would be the watchdog's own (kickstart -k kills the watchdog); it is no job of the
/// server's, and the server is restarted by the watchdog itself.
#[test]
fn a_target_carrying_the_watchdogs_own_label_is_not_kickstarted() {
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    let fake = FakeLaunchd::new(
        &env,
        &tools,
        serde_json::json!({ "label": OWN_LABEL }),
        serde_json::json!({ "XPC_SERVICE_NAME": OWN_LABEL }),
    );
    let pid = fake.start_job();
    let (_, port) = wait_for_server(&env, UP_TIMEOUT, None);
    config(&env, port, "auto").write(&env);
    let own = [("XPC_SERVICE_NAME", OWN_LABEL)];

    assert_no_job_and_restarted_builtin(&env, &tools, &fake, (pid, port), &own);
}

/// The job the server names is run by an ancestor of the watchdog (here the test
/// itself, which runs the watchdog; in production the job that runs the watchdog).
/// `kickstart -k` of it would kill the watchdog: refused, exit 4 with the reason, and
/// nothing else is done either (before: the server was taken for an orphan of that
/// job and the job kickstarted).
#[test]
#[ignore = "needs root (a root watchdog, whose jobs are in launchd's system domain): run by script/test as root and .ci/run"]
fn a_job_run_by_an_ancestor_of_the_watchdog_is_never_kickstarted() {
    require_root();
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    let fake = FakeLaunchd::new(
        &env,
        &tools,
        serde_json::json!({ "label": LABEL, "pid_of": std::process::id() }),
        serde_json::json!({ "XPC_SERVICE_NAME": LABEL }),
    );
    let pid = fake.start_job();
    let (_, port) = wait_for_server(&env, UP_TIMEOUT, None);
    config(&env, port, "auto").write(&env);
    let witness = Witness::of(pid);

    make_unhealthy(port);
    let r = watchdog(&env, &tools, &["check", "--json"], &[]);
    assert_exit(&env, &r, 4);
    let rep = report(&r);
    assert_eq!(rep["action"]["result"], "suppressed", "{rep:#}");
    let detail = rep["action"]["detail"].as_str().unwrap_or_default();
    for words in [
        format!(
            "its PID {} is the watchdog or an ancestor of it",
            std::process::id()
        ),
        "kickstart -k would kill the watchdog".to_string(),
        format!("launchd job system/{LABEL}"),
    ] {
        assert!(detail.contains(&words), "{words:?} not in: {rep:#}");
    }
    let calls = fake.take_calls();
    assert!(
        calls.iter().all(|c| c.starts_with("print ")),
        "only status queries: {calls:#?}"
    );
    assert_nothing_acted(&env);
    witness.assert_untouched(&r);
}

/// `restart.method = "launchd"` with no label, and a server whose environment names no
/// job: the watchdog finds the job by the server's PID in launchd's listings of the
/// domains that can hold it. Here it is only in `user/0` (an agent of a user who is not
/// at the screen): `print system` lists no such PID, `print user/0` does, and status
/// and kickstart address `user/0/<label>` (before: "no launchd job is known").
#[test]
#[ignore = "needs root (a root watchdog finds a user-domain job by its PID): run by script/test as root and .ci/run"]
fn a_job_found_by_pid_only_in_the_user_domain_is_kickstarted_there() {
    require_root();
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    let fake = FakeLaunchd::new(
        &env,
        &tools,
        serde_json::json!({ "label": LABEL, "domain": "user/0",
                            "fixture": launchctl_fixture("user-agent.txt") }),
        serde_json::json!({}),
    );
    let pid = fake.start_job();
    let (_, port) = wait_for_server(&env, UP_TIMEOUT, None);
    config(&env, port, "launchd").write(&env);
    let service = format!("user/0/{LABEL}");

    let r = watchdog(&env, &tools, &["status", "--json"], &[]);
    assert_exit(&env, &r, 0);
    let rep = report(&r);
    let s = &rep["target"]["supervisor"];
    assert_eq!(rep["restart_method"], "launchd", "{rep:#}");
    assert_eq!(s["name"], LABEL, "{rep:#}");
    assert_eq!(s["trust"], "confirmed", "{rep:#}");
    assert_eq!(
        s["evidence"], "launchd lists its PID as a job of user/0",
        "{rep:#}"
    );
    assert_eq!(s["job"]["pid"], pid, "{rep:#}");
    assert_eq!(
        fake.take_calls(),
        [
            "print system".to_string(),
            "print user/0".to_string(),
            format!("print {service}")
        ]
    );

    make_unhealthy(port);
    let r = watchdog(&env, &tools, &["check", "--json"], &[]);
    let new_pid = assert_restarted(&env, &r, "launchd");
    let calls = fake.take_calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("kickstart"))
            .collect::<Vec<_>>(),
        [&format!("kickstart -k {service}")],
        "{calls:#?}"
    );
    assert!(
        calls
            .iter()
            .all(|c| c.starts_with("print ") || c.starts_with("kickstart -k user/0/")),
        "{calls:#?}"
    );
    assert_eq!(
        fake.job_pid(),
        Some(new_pid),
        "the job's new PID is reported"
    );
    assert!(wait_until(Duration::from_secs(10), || !is_alive(pid)));
}

/// A LaunchDaemon with `UserName`: its server runs as another user (uid 4242 here) but
/// the job is in `system`, not in `gui/4242` (which exists only while that user is at
/// the screen). The operator named the label; the watchdog asks `gui/4242`, then
/// `user/4242`, then `system`, which answers, and kickstarts `system/<label>` (before:
/// `gui/4242/<label>`, which launchctl refuses).
#[test]
#[ignore = "needs root (runs the daemon as another user): run by script/test as root and .ci/run"]
fn a_system_daemon_with_user_name_is_kickstarted_in_system() {
    require_root();
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    let srv = user_dir(&env);
    let port_file = srv.join("server.port");
    let argv: Vec<String> = [
        "setpriv",
        &format!("--reuid={}", SERVER_USER.0),
        &format!("--regid={}", SERVER_USER.1),
        "--clear-groups",
        "--",
        user_python(),
        &testserver_script().display().to_string(),
        "--port-file",
        &port_file.display().to_string(),
        "--pid-log",
        &env.pid_log.display().to_string(),
        "--db",
        &srv.join("db").display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let fake = FakeLaunchd::new(
        &env,
        &tools,
        serde_json::json!({ "label": LABEL, "domain": "system", "argv": argv,
                            "fixture": launchctl_fixture("system-daemon-username.txt") }),
        serde_json::json!({ "XPC_SERVICE_NAME": LABEL }),
    );
    let pid = fake.start_job();
    let port = wait_for_port(&port_file, pid);
    let mut cfg = config(&env, port, "launchd");
    cfg.set("restart.label", LABEL);
    cfg.write(&env);
    let service = format!("system/{LABEL}");
    let asked = [
        format!("print gui/{}/{LABEL}", SERVER_USER.0),
        format!("print user/{}/{LABEL}", SERVER_USER.0),
        format!("print {service}"),
    ];

    let r = watchdog(&env, &tools, &["status", "--json"], &[]);
    assert_exit(&env, &r, 0);
    let rep = report(&r);
    assert_eq!(rep["restart_method"], "launchd", "{rep:#}");
    assert_eq!(rep["target"]["supervisor"]["job"]["pid"], pid, "{rep:#}");
    assert_eq!(fake.take_calls(), asked);

    make_unhealthy(port);
    let r = watchdog(&env, &tools, &["check", "--json"], &[]);
    let new_pid = assert_restarted(&env, &r, "launchd");
    let calls = fake.take_calls();
    assert_eq!(calls[..3], asked, "{calls:#?}");
    assert_eq!(calls[3], format!("kickstart -k {service}"), "{calls:#?}");
    assert!(
        calls[4..].iter().all(|c| *c == format!("print {service}")),
        "after the kickstart, only status queries of the same job: {calls:#?}"
    );
    assert_eq!(fake.job_pid(), Some(new_pid));
    assert!(wait_until(Duration::from_secs(10), || !is_alive(pid)));
}

/// `env.root/srv`, owned by `SERVER_USER`, with the env's PID log handed to that user;
/// `env.root` stays root's and is opened for traversal only.
fn user_dir(env: &TestEnv) -> PathBuf {
    let srv = server_user_dir(env);
    fs::create_dir_all(srv.join("db")).unwrap();
    fs::write(&env.pid_log, "").unwrap();
    chown_tree(&srv, SERVER_USER.0, SERVER_USER.1);
    chown_tree(&env.pid_log, SERVER_USER.0, SERVER_USER.1);
    srv
}

/// Waits (bounded) until `pid` listens on the port in `port_file` and is healthy.
fn wait_for_port(port_file: &Path, pid: u32) -> u16 {
    let mut port = None;
    let up = wait_until(UP_TIMEOUT, || {
        port = fs::read_to_string(port_file)
            .ok()
            .and_then(|t| t.trim().parse::<u16>().ok())
            .filter(|&p| {
                listener_pid(p) == Some(pid) && healthy(&format!("http://127.0.0.1:{p}/health"))
            });
        port.is_some()
    });
    assert!(up, "the server PID {pid} did not come up");
    port.unwrap()
}
