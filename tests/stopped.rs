//! End-to-end tests of a stopped server (`T`: SIGSTOP) ended as its state calls for
//! (docs/DESIGN.md, "Acting"; `src/act/signal.rs`, `treatment`): a real test server that
//! handles SIGTERM (`--log-sigterm`: a line in DB/sigterm.log, then it dies of SIGTERM)
//! is stopped with a real SIGSTOP. A stopped process acts on no handled signal until
//! continued, so without the SIGCONT the builtin restart would end it with SIGKILL after
//! `stop_timeout`, and supervisord's own stop would wait its `stopwaitsecs` and kill it.
//! The proof is what the server did (its handler's line, its exit by SIGTERM) and what
//! supervisord logged, never how long it took.

mod common;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use serde_json::Value;

use common::*;

/// The server handled its SIGTERM (the line its handler writes), so it ran again.
#[track_caller]
fn assert_handled_sigterm(env: &TestEnv, pid: u32) {
    let handled = fs::read_to_string(env.db_dir.join("sigterm.log")).unwrap_or_default();
    assert!(
        handled.contains(&format!("{pid} SIGTERM handled")),
        "PID {pid} never ran its SIGTERM handler: {handled:?}"
    );
}

/// Stops the server `pid` of `env` and waits (bounded) until the kernel says so.
fn sigstop(env: &TestEnv, pid: u32) {
    assert!(
        kill_if_testserver(&env.pid_log, pid, libc::SIGSTOP),
        "PID {pid} is not the test server"
    );
    assert!(
        wait_until(Duration::from_secs(5), || is_stopped(pid)),
        "PID {pid} did not stop"
    );
}

/// Under the builtin method: the status page names the state, and `check` sends SIGCONT
/// after the SIGTERM, so the server's own handler runs and it dies of the SIGTERM (not
/// of SIGKILL after stop_timeout); the replacement answers.
#[test]
fn a_stopped_server_is_continued_and_acts_on_sigterm_under_builtin() {
    let env = TestEnv::new();
    let server = TestServer::start(
        &env,
        ServerOpts {
            log_sigterm: true,
            ..ServerOpts::default()
        },
    );
    let cfg = env.base_config(&server);
    cfg.write(&env);
    sigstop(&env, server.pid);

    let r = run_watchdog(&env, &["status"]);
    assert_exit(&env, &r, 4);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("target    PID") && l.ends_with(", stopped (T)")),
        "the status page names the stopped state:\n{}",
        r.dump()
    );

    let r = run_watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 1);
    let rep = report(&r);
    assert_eq!(rep["target"]["state"], "stopped", "{rep:#}");
    assert_eq!(rep["action"]["method"], "builtin", "{rep:#}");
    let detail = rep["action"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!(
            "PID {} was stopped (T): sent SIGCONT after SIGTERM so it could act on it; it exited after SIGTERM",
            server.pid
        )),
        "{rep:#}"
    );
    assert_restarted(&env, &server);
    let status = server.exit_status().expect("the old server was reaped");
    assert_eq!(
        status.signal(),
        Some(libc::SIGTERM),
        "the old server died of its SIGTERM, not of SIGKILL: {status}"
    );
    assert_handled_sigterm(&env, server.pid);

    let incident = env
        .incident_files()
        .pop()
        .expect("an incident before the restart");
    let incident: Value =
        serde_json::from_str(&fs::read_to_string(&incident).expect("incident")).expect("JSON");
    assert_eq!(incident["process"]["state"], "stopped", "{incident:#}");
}

/// Under a real supervisord: the watchdog continues the stopped server (a continue ends
/// nothing) and asks supervisorctl to restart it; supervisord's SIGTERM is then acted on
/// at once, so supervisord logs the job stopped by SIGTERM, not killed by SIGKILL after
/// its `stopwaitsecs`, and never saw it die behind its back.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs supervisord (pip install supervisor): run by script/test --all and .ci/run"]
fn a_stopped_server_under_supervisord_is_continued_before_its_restart() {
    const JOB: &str = "hermes:webui";
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    tools.install_supervisorctl();
    let mut argv = testserver_argv(&env);
    argv.push("--log-sigterm".into());
    let extra = format!(
        "directory = {}\nstartsecs = 1\nstartretries = 3\nstopwaitsecs = 10\n",
        env.root.display()
    );
    let programs = format!(
        "{}{}",
        program(&env, "webui", &sh_words(&argv), &extra),
        group(&["webui"])
    );
    let sup = Supervisord::start_via(
        &env,
        "loglevel = debug\n",
        &programs,
        tools.supervisord_launcher(),
    );
    let job_pid = sup.wait_state(JOB, "RUNNING");
    let (pid, port) = wait_for_server(&env, Duration::from_secs(30), None);
    assert_eq!(job_pid, Some(pid), "supervisord runs the server itself");
    let mut cfg = ConfigToml::for_port(&env, port);
    cfg.set("restart.method", "auto");
    cfg.write(&env);
    sigstop(&env, pid);

    let r = tools.watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 1);
    let rep = report(&r);
    assert_eq!(rep["target"]["state"], "stopped", "{rep:#}");
    assert_eq!(rep["action"]["method"], "supervisor", "{rep:#}");
    assert_eq!(rep["action"]["result"], "restarted", "{rep:#}");
    let detail = rep["action"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!(
            "PID {pid} was stopped (T): sent SIGCONT so that it acts on the supervisor's SIGTERM at once"
        )) && detail.contains(&format!("restart {JOB}")),
        "{rep:#}"
    );

    let log = fs::read_to_string(&sup.log).unwrap_or_default();
    assert!(
        log.contains("stopped: webui (terminated by SIGTERM)"),
        "supervisord stopped the job with its SIGTERM:\n{}",
        sup.logs()
    );
    assert!(
        !log.contains("SIGKILL") && !log.contains("not expected"),
        "supervisord neither had to kill it nor saw it die behind its back:\n{}",
        sup.logs()
    );
    assert_handled_sigterm(&env, pid);
    let (state, now) = sup.status(JOB);
    assert_eq!(state, "RUNNING", "{}", sup.logs());
    assert_ne!(now, Some(pid), "supervisord runs a new server");
    assert_eq!(now, rep["action"]["new_pid"].as_u64().map(|p| p as u32));
}

/// Opens the wedged server's FIFO for writing when the test ends, so that the child its
/// `posix_spawn` left blocked on it execs `/bin/true` and exits (`--wedge-d-on-usr2`).
#[cfg(target_os = "linux")]
struct ReleaseFifo(std::path::PathBuf);

#[cfg(target_os = "linux")]
impl Drop for ReleaseFifo {
    fn drop(&mut self) {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: fails at once (ENXIO) when no child waits on it any more.
        let _ = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.0);
    }
}

/// A server whose main thread is in uninterruptible sleep (`D`, a real killable kernel
/// wait: the parent of a vfork-style `posix_spawn` whose child blocks on a FIFO) acts on
/// no SIGTERM, though it handles one: still in `D` a second after the SIGTERM, it is
/// killed with SIGKILL, its handler never having run, and the step says why.
#[cfg(target_os = "linux")]
#[test]
fn a_server_stuck_in_uninterruptible_sleep_gets_sigkill_and_the_step_says_why() {
    let env = TestEnv::new();
    let server = TestServer::start(
        &env,
        ServerOpts {
            log_sigterm: true,
            wedge_d_on_usr2: true,
            ..ServerOpts::default()
        },
    );
    let _release = ReleaseFifo(env.db_dir.join("wedge.fifo"));
    let cfg = env.base_config(&server);
    cfg.write(&env);
    server.signal(libc::SIGUSR2);
    assert!(
        wait_until(Duration::from_secs(10), || proc_state(server.pid)
            == Some('D')),
        "the server did not enter uninterruptible sleep: state {:?}",
        proc_state(server.pid)
    );

    let r = run_watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 1);
    let rep = report(&r);
    assert_eq!(rep["target"]["state"], "uninterruptible", "{rep:#}");
    let detail = rep["action"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!(
            "PID {} was in uninterruptible sleep (D), where SIGTERM cannot be acted on",
            server.pid
        )),
        "{rep:#}"
    );
    assert_restarted(&env, &server);
    let status = server.exit_status().expect("the old server was reaped");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    let handled = fs::read_to_string(env.db_dir.join("sigterm.log")).unwrap_or_default();
    assert!(
        !handled.contains(&format!("{} SIGTERM handled", server.pid)),
        "a process in D ran its SIGTERM handler: {handled:?}"
    );
}
