//! End-to-end tests of restarts through a supervisor (docs/DESIGN.md, "Supervisors"),
//! the double-fork orphan and its events: a REAL supervisord and a REAL runit run the test
//! server, and the watchdog must find them, ask them to restart, and never fight them.
//! The watchdog reaches the real `supervisorctl` and `sv` through wrappers on its PATH that
//! record every call, so a restart is proven by what it asked, not by what it reported.
//! launchd and systemd cannot run here: stand-ins named `launchctl` and `systemctl`
//! (`tests/support/fake_supervisor.py`) record every call and behave like the real tools.
//!
//! Needs `python3 -m supervisor.supervisord` (`pip install supervisor`) and `runsv`/`sv`
//! (`apt-get install runit`); a missing one fails its tests with the install command.
//! Everything lives in the test's temp dir: supervisord's config, socket and logs, runit's
//! service directory, the stand-ins' state. supervisord and runsv are the test's children,
//! stopped on drop by SIGTERM (then SIGKILL); every server logs its PID, so the ones the
//! supervisors respawned are killed by `TestEnv`'s drop, which runs last.

// Linux only: runit, /proc/PID/cgroup, and stand-in `launchctl`/`systemctl` that on a Mac
// would compete with the real launchd (PID 1 there).
#![cfg(target_os = "linux")]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use common::*;

/// Generous: supervisord and Python start slowly on a small shared machine.
const UP_TIMEOUT: Duration = Duration::from_secs(30);
const LABEL: &str = "com.example.hermes-webui";
const UNIT: &str = "hermes.service";

// ---------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------

/// The one event named `name`, asserting there is exactly one.
#[track_caller]
fn one_event(env: &TestEnv, name: &str) -> Value {
    let evs = events_named(env, name);
    assert_eq!(
        evs.len(),
        1,
        "expected one {name:?} event:\n{}",
        log_text(env)
    );
    evs.into_iter().next().unwrap()
}

/// The position of the first event named `name` in the log.
#[track_caller]
fn event_index(env: &TestEnv, name: &str) -> usize {
    log_events(env)
        .iter()
        .position(|e| e["event"] == name)
        .unwrap_or_else(|| panic!("no {name:?} event in the log:\n{}", log_text(env)))
}

/// `restart` before `restarted`, both with `method`, no `restart_failed`.
#[track_caller]
fn assert_restart_events(env: &TestEnv, method: &str) {
    let restart = one_event(env, "restart");
    let restarted = one_event(env, "restarted");
    assert_eq!(restart["method"], method, "{restart}");
    assert_eq!(restarted["method"], method, "{restarted}");
    assert!(
        event_index(env, "restart") < event_index(env, "restarted"),
        "`restart` must come before `restarted`:\n{}",
        log_text(env)
    );
    assert!(
        events_named(env, "restart_failed").is_empty(),
        "{}",
        log_text(env)
    );
}

/// The successful restart's report: `kind` through `method`, and the new server's PID.
#[track_caller]
fn assert_acted(rep: &Value, kind: &str, method: &str) -> u32 {
    let action = &rep["action"];
    assert_eq!(rep["exit_code"], 1, "{rep:#}");
    assert_eq!(action["kind"], kind, "{rep:#}");
    assert_eq!(action["method"], method, "{rep:#}");
    assert_eq!(action["result"], "restarted", "{rep:#}");
    assert_eq!(rep["restart_method"], method, "{rep:#}");
    action["new_pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("no action.new_pid: {rep:#}")) as u32
}

/// The new server holds the port, answers /health, is not the old one, and the old one
/// is gone.
#[track_caller]
fn assert_replaced(old: u32, new: u32, port: u16) {
    assert_ne!(new, old, "the job still runs the old PID");
    assert_eq!(
        listener_pid(port),
        Some(new),
        "the job's new PID does not hold port {port}"
    );
    assert!(
        healthy(&format!("http://127.0.0.1:{port}/health")),
        "the new server (PID {new}) is not healthy"
    );
    assert!(
        wait_until(Duration::from_secs(10), || !is_alive(old)),
        "the old server PID {old} is still alive"
    );
}

/// The watchdog config for the server on `port`: auto-detection, the harness defaults.
fn auto_config(env: &TestEnv, port: u16) -> ConfigToml {
    let mut cfg = ConfigToml::for_port(env, port);
    cfg.set("restart.method", "auto");
    cfg
}

/// `status --json`, which must exit 0 here: the server is healthy.
#[track_caller]
fn healthy_status(env: &TestEnv, tools: &Tools) -> Value {
    let r = tools.watchdog(env, &["status", "--json"]);
    assert_exit(env, &r, 0);
    report(&r)
}

/// The report's `target.supervisor`, asserting kind, name and evidence.
#[track_caller]
fn assert_supervisor(rep: &Value, kind: &str, name: &str, evidence: &str) -> Value {
    let sup = rep["target"]["supervisor"].clone();
    assert!(sup.is_object(), "no target.supervisor: {rep:#}");
    assert_eq!(sup["kind"], kind, "{rep:#}");
    assert_eq!(sup["name"], name, "{rep:#}");
    assert_eq!(sup["evidence"], evidence, "{rep:#}");
    assert_eq!(rep["restart_method"], kind, "{rep:#}");
    sup
}

/// What the watchdog really asked the supervisor, not what its report says: the calls
/// `tool`'s recording wrapper saw since the last look hold exactly one `restart` call
/// (arguments `restart`) and nothing but `status` queries (arguments `status`) besides.
#[track_caller]
fn assert_one_restart_call(tools: &Tools, tool: &str, restart: &str, status: &str) {
    let calls = tools.take_calls(tool);
    assert_eq!(
        calls.iter().filter(|c| *c == restart).count(),
        1,
        "the watchdog ran `{tool} {restart}` once: {calls:#?}"
    );
    assert!(
        calls.iter().all(|c| c == restart || c == status),
        "besides the restart, only `{tool} {status}`: {calls:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// supervisord
// ---------------------------------------------------------------------------------------

/// A `[program:webui]` in `[group:hermes]` (so the job is `hermes:webui`) running
/// `command`, its output in the temp dir.
fn program_section(env: &TestEnv, command: &[String], extra: &str) -> String {
    let extra = format!("directory = {}\n{extra}", env.root.display());
    format!(
        "{}{}",
        program(env, "webui", &sh_words(command), &extra),
        group(&["webui"])
    )
}

/// supervisord as these tests run it: as the test's user, logging at debug level,
/// started from `tools`' directory, so that the supervisorctl beside it (which the
/// watchdog runs before PATH's) is the recording wrapper.
fn start_supervisord(env: &TestEnv, tools: &Tools, programs: &str) -> Supervisord {
    Supervisord::start_via(
        env,
        "loglevel = debug\n",
        programs,
        tools.supervisord_launcher(),
    )
}

const JOB: &str = "hermes:webui";

/// The watchdog ran `supervisorctl -s URL restart hermes:webui` once, on `sup`'s socket,
/// and otherwise only `supervisorctl -s URL status hermes:webui`.
#[track_caller]
fn assert_supervisorctl_restart(tools: &Tools, sup: &Supervisord) {
    assert_one_restart_call(
        tools,
        "supervisorctl",
        &format!("-s {} restart {JOB}", sup.url),
        &format!("-s {} status {JOB}", sup.url),
    );
}

/// supervisord itself stopped the running job (what it logs when `supervisorctl restart`
/// stops it, naming the process, not GROUP:NAME), and never saw it die behind its back
/// (a kill by the watchdog would log `exited: webui (...; not expected)`, then respawn).
#[track_caller]
fn assert_stopped_by_supervisord(sup: &Supervisord) {
    let log = fs::read_to_string(&sup.log).unwrap_or_default();
    assert!(
        log.contains("stopped: webui (terminated by SIGTERM)"),
        "supervisord did not stop the job itself:\n{}",
        sup.logs()
    );
    assert!(
        !log.contains("not expected"),
        "the job died behind supervisord's back:\n{}",
        sup.logs()
    );
}

#[test]
#[ignore = "needs supervisord (pip install supervisor): run by script/test --all and .ci/run"]
fn supervisord_job_is_detected_and_an_fd_leak_is_restarted_through_supervisorctl() {
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    tools.install_supervisorctl();
    let sup = start_supervisord(
        &env,
        &tools,
        &program_section(
            &env,
            &testserver_argv(&env),
            "startsecs = 1\nstartretries = 3\n",
        ),
    );
    let job_pid = sup.wait_state(JOB, "RUNNING");
    let (pid, port) = wait_for_server(&env, UP_TIMEOUT, None);
    assert_eq!(job_pid, Some(pid), "supervisord runs the server itself");

    let mut cfg = auto_config(&env, port);
    cfg.set("fds.max", 150);
    cfg.write(&env);

    let rep = healthy_status(&env, &tools);
    let s = assert_supervisor(&rep, "supervisor", JOB, "SUPERVISOR_PROCESS_NAME");
    assert_eq!(s["job"]["pid"], pid, "{rep:#}");
    assert_eq!(s["job"]["state"], "RUNNING", "{rep:#}");
    assert_eq!(s["orphan"], false, "{rep:#}");
    assert_eq!(rep["target"]["pid"], pid, "{rep:#}");

    let base = format!("http://127.0.0.1:{port}");
    control(&base, "/control/leak?n=80"); // 161 FDs on state.db alone
    assert!(fd_count(pid) >= 150, "precondition: leak too small");

    let r = tools.watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 1);
    let rep = report(&r);
    let new_pid = assert_acted(&rep, "restart", "supervisor");
    assert!(
        reason_codes(&rep).contains(&"fds_over_limit".to_string()),
        "{rep:#}"
    );
    assert_restart_events(&env, "supervisor");
    let detail = rep["action"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!("-s {} restart {JOB}", sup.url)),
        "the restart went through supervisorctl -s URL restart GROUP:NAME: {detail}"
    );
    assert_supervisorctl_restart(&tools, &sup);
    assert_stopped_by_supervisord(&sup);

    let (state, now) = sup.status(JOB);
    assert_eq!(state, "RUNNING", "{}", sup.logs());
    assert_eq!(now, Some(new_pid), "supervisord runs the reported new PID");
    assert_replaced(pid, new_pid, port);
    assert!(
        environ(new_pid)
            .iter()
            .any(|v| v == "SUPERVISOR_PROCESS_NAME=webui"),
        "the new server was started by supervisord, not by the watchdog"
    );
    assert!(
        fd_count(new_pid) < 100,
        "the new server starts with a small FD count"
    );
}

#[test]
#[ignore = "needs supervisord (pip install supervisor): run by script/test --all and .ci/run"]
fn supervisord_program_in_fatal_is_started_through_supervisorctl() {
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    tools.install_supervisorctl();
    let (argv, flag) = testserver_argv_failing_if_flag(&env);
    // startretries = 0: one failed start is FATAL at once.
    let sup = start_supervisord(
        &env,
        &tools,
        &program_section(&env, &argv, "startsecs = 1\nstartretries = 0\n"),
    );
    sup.wait_state(JOB, "RUNNING");
    let (pid, port) = wait_for_server(&env, UP_TIMEOUT, None);
    auto_config(&env, port).write(&env);

    // A healthy run records the supervisor in the history.
    let r = tools.watchdog(&env, &["check"]);
    assert_exit(&env, &r, 0);
    let history: Value =
        serde_json::from_str(&fs::read_to_string(env.state_dir.join("history.json")).unwrap())
            .unwrap();
    assert_eq!(history["supervisor"]["name"], JOB, "{history:#}");

    // The program dies and supervisord gives up on it.
    let (code, out) = sup.ctl(&["stop", JOB]);
    assert_eq!(code, Some(0), "{out}");
    assert!(wait_until(Duration::from_secs(10), || !is_alive(pid)));
    fs::write(&flag, "").unwrap();
    sup.ctl(&["start", JOB]); // "ERROR (spawn error)"
    assert_eq!(sup.wait_state(JOB, "FATAL"), None);
    fs::remove_file(&flag).unwrap();
    assert_eq!(
        listener_pid(port),
        None,
        "precondition: nothing on the port"
    );

    let r = tools.watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 1);
    let rep = report(&r);
    assert!(rep["target"].is_null(), "{rep:#}");
    assert!(
        reason_codes(&rep).contains(&"no_process".to_string()),
        "{rep:#}"
    );
    let new_pid = assert_acted(&rep, "start", "supervisor");
    let start = one_event(&env, "start");
    assert_eq!(start["method"], "supervisor", "{start}");
    assert_eq!(one_event(&env, "restarted")["method"], "supervisor");
    let detail = rep["action"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!("-s {} restart {JOB}", sup.url)),
        "the remembered job was started through supervisorctl: {detail}"
    );
    assert_supervisorctl_restart(&tools, &sup);

    let (state, now) = sup.status(JOB);
    assert_eq!(state, "RUNNING", "{}", sup.logs());
    assert_eq!(now, Some(new_pid));
    assert_replaced(pid, new_pid, port);
}

/// A server its supervisor has just started again and that has not bound its port yet
/// (Hermes WebUI binds up to 25 s after it starts) gets the startup grace: a `start`
/// through the supervisor would kill it and begin again, and the next one would be as
/// slow (found by bench/ttr; docs/RELIABILITY.md, "What the runs found").
#[test]
#[ignore = "needs supervisord (pip install supervisor): run by script/test --all and .ci/run"]
fn a_job_its_supervisor_just_started_again_is_left_to_bind_its_port() {
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    tools.install_supervisorctl();
    // The program starts slowly (binds after 60 s) once the flag exists.
    let slow = env.root.join("slow-start");
    let argv = sh_words(&testserver_argv(&env));
    let script = env.root.join("webui.sh");
    write_script(
        &script,
        &format!(
            "#!/bin/sh\nif [ -e {flag} ]; then exec {argv} --startup-delay 60; fi\nexec {argv}\n",
            flag = sh_quote(&slow.display().to_string())
        ),
    );
    let sup = start_supervisord(
        &env,
        &tools,
        &program_section(&env, &[script.display().to_string()], "startsecs = 1\n"),
    );
    sup.wait_state(JOB, "RUNNING");
    let (pid, port) = wait_for_server(&env, UP_TIMEOUT, None);
    auto_config(&env, port)
        .set("target.startup_grace", "2m")
        .write(&env);
    assert_exit(&env, &tools.watchdog(&env, &["check"]), 0);

    // It crashes; supervisord starts it again and calls it RUNNING after startsecs, long
    // before it binds.
    fs::write(&slow, "").unwrap();
    assert!(kill_if_testserver(&env.pid_log, pid, libc::SIGKILL));
    let mut again = None;
    assert!(
        wait_until(UP_TIMEOUT, || {
            again = match sup.status(JOB) {
                (state, Some(p)) if state == "RUNNING" && p != pid => Some(p),
                _ => None,
            };
            again.is_some()
        }),
        "supervisord did not start it again:\n{}",
        sup.logs()
    );
    assert_eq!(
        listener_pid(port),
        None,
        "precondition: nothing on the port yet"
    );
    tools.take_calls("supervisorctl");

    let r = tools.watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 4);
    let rep = report(&r);
    assert!(rep["target"].is_null(), "{rep:#}");
    assert_eq!(rep["action"]["result"], "suppressed", "{rep:#}");
    let detail = rep["action"]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("startup grace"), "{rep:#}");
    let calls = tools.take_calls("supervisorctl");
    assert!(
        calls.iter().all(|c| !c.contains(" restart ")),
        "the starting job was restarted: {calls:?}"
    );
    assert_eq!(sup.status(JOB), ("RUNNING".to_string(), again));
}

// ---------------------------------------------------------------------------------------
// The double-fork orphan under supervisord
// ---------------------------------------------------------------------------------------

fn double_fork_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/double_fork_start.py")
}

/// supervisord runs the old bootstrap: a start script that starts the server in a new
/// session and exits 0 (startsecs = 0, autorestart: respawned in a loop). Returns the
/// supervisord and the orphan (the first server, holding the port) with its port.
fn orphan_setup(env: &TestEnv, tools: &Tools) -> (Supervisord, u32, u16) {
    let mut command = vec![
        python().to_string(),
        double_fork_script().display().to_string(),
        "--port-file".into(),
        env.port_file.display().to_string(),
        "--log".into(),
        env.root.join("orphans.log").display().to_string(),
        "--linger".into(),
        "2".into(),
        "--".into(),
    ];
    command.extend(testserver_argv(env));
    let sup = start_supervisord(
        env,
        tools,
        &program_section(env, &command, "startsecs = 0\n"),
    );
    let (orphan, port) = wait_for_server(env, UP_TIMEOUT, None);
    // The signature: the port holder carries the job's identity, but it is not the job's
    // process nor one of its descendants.
    assert!(
        environ(orphan)
            .iter()
            .any(|v| v == "SUPERVISOR_PROCESS_NAME=webui"),
        "precondition: the orphan carries the job's identity"
    );
    let (_, job_pid) = sup.status(JOB);
    assert_ne!(
        job_pid,
        Some(orphan),
        "precondition: supervisord runs the script"
    );
    (sup, orphan, port)
}

#[track_caller]
fn assert_orphan_event(env: &TestEnv, orphan: u32, recurring: bool) -> Value {
    let ev = one_event(env, "orphan");
    assert_eq!(ev["orphan_pid"], orphan, "{ev}");
    assert_eq!(ev["pid"], orphan, "{ev}");
    assert_eq!(ev["method"], "supervisor", "{ev}");
    assert_eq!(ev["evidence"], "SUPERVISOR_PROCESS_NAME", "{ev}");
    assert!(
        ev.get("job_pid").is_some() && ev["job_pid"] != orphan,
        "job_pid is the job's PID (the script's, or null): {ev}"
    );
    assert_eq!(ev["recurring"], recurring, "{ev}");
    ev
}

#[test]
#[ignore = "needs supervisord (pip install supervisor): run by script/test --all and .ci/run"]
fn double_fork_orphan_under_supervisord_is_killed_and_its_recurrence_explained() {
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    tools.install_supervisorctl();
    let (sup, orphan, port) = orphan_setup(&env, &tools);
    let mut cfg = auto_config(&env, port);
    cfg.set("target.match", "testserver.py");
    cfg.write(&env);

    let rep = orphan_status(&env, &tools);
    let s = assert_supervisor(&rep, "supervisor", JOB, "SUPERVISOR_PROCESS_NAME");
    assert_eq!(s["orphan"], true, "{rep:#}");

    let r = tools.watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 1);
    let rep = report(&r);
    assert!(
        reason_codes(&rep).contains(&"orphan_port_holder".to_string()),
        "{rep:#}"
    );
    let new_pid = assert_acted(&rep, "kill_orphan", "supervisor");
    let ev = assert_orphan_event(&env, orphan, false);
    assert!(
        !ev["message"].as_str().unwrap().contains("foreground"),
        "a first orphan names no recurrence: {ev}"
    );
    assert_restart_events(&env, "supervisor");
    assert_supervisorctl_restart(&tools, &sup);
    assert!(
        wait_until(Duration::from_secs(10), || !is_alive(orphan)),
        "the orphan PID {orphan} is still alive"
    );
    // The restarted script started a new server, and left it behind again.
    assert_eq!(listener_pid(port), Some(new_pid), "{}", sup.logs());
    assert!(healthy(&format!("http://127.0.0.1:{port}/health")));

    // Next run: the new server is an orphan too, and now the log says why.
    let second = new_pid;
    let _ = fs::remove_file(&env.log_file);
    let r = tools.watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 1);
    let rep = report(&r);
    assert_acted(&rep, "kill_orphan", "supervisor");
    assert_supervisorctl_restart(&tools, &sup);
    let ev = assert_orphan_event(&env, second, true);
    let message = ev["message"].as_str().unwrap();
    for words in ["exits after starting the server", "foreground"] {
        assert!(message.contains(words), "{words:?} not in: {message}");
    }
    assert!(wait_until(Duration::from_secs(10), || !is_alive(second)));
    assert!(healthy(&format!("http://127.0.0.1:{port}/health")));
}

/// `status --json` while an orphan holds the port: exit 4 (it would act), nothing done.
#[track_caller]
fn orphan_status(env: &TestEnv, tools: &Tools) -> Value {
    let r = tools.watchdog(env, &["status", "--json"]);
    assert_exit(env, &r, 4);
    report(&r)
}

#[test]
#[ignore = "needs supervisord (pip install supervisor): run by script/test --all and .ci/run"]
fn double_fork_orphan_is_left_alone_when_not_allowed_or_not_recognised() {
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    tools.install_supervisorctl();
    let (sup, orphan, port) = orphan_setup(&env, &tools);
    let untouched = |what: &str| {
        assert!(
            is_alive(orphan) && !is_stopped(orphan),
            "{what}: the orphan was signalled"
        );
        assert_eq!(listener_pid(port), Some(orphan), "{what}: {}", sup.logs());
        assert_nothing_acted(&env);
        let calls = tools.take_calls("supervisorctl");
        assert!(
            calls
                .iter()
                .all(|c| *c == format!("-s {} status {JOB}", sup.url)),
            "{what}: the watchdog only queried supervisord: {calls:#?}"
        );
    };

    // kill_orphans = false: reported, not killed.
    let mut cfg = auto_config(&env, port);
    cfg.set("target.match", "testserver.py");
    cfg.set("restart.kill_orphans", false);
    cfg.write(&env);
    let r = tools.watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 4);
    let rep = report(&r);
    assert_eq!(rep["action"]["kind"], "kill_orphan", "{rep:#}");
    assert_eq!(rep["action"]["result"], "suppressed", "{rep:#}");
    assert_orphan_event(&env, orphan, false);
    let ev = one_event(&env, "suppressed");
    assert_eq!(ev["method"], "supervisor", "{ev}");
    assert!(
        ev["message"].as_str().unwrap().contains("kill_orphans"),
        "{ev}"
    );
    untouched("kill_orphans = false");

    // No target.match, and supervisord does not show the job's program: the orphan
    // cannot be recognised as the server, so it is not killed.
    let _ = fs::remove_file(&env.log_file);
    cfg.remove("target.match");
    cfg.set("restart.kill_orphans", true);
    cfg.write(&env);
    let r = tools.watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 4);
    let rep = report(&r);
    assert_eq!(rep["action"]["result"], "suppressed", "{rep:#}");
    let detail = rep["action"]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("target.match"), "{rep:#}");
    assert!(
        one_event(&env, "suppressed")["message"]
            .as_str()
            .unwrap()
            .contains("target.match")
    );
    untouched("no target.match");

    // A target.match the port holder does not match: the sources disagree, so there is
    // no target at all; health passes, so this is a warning (exit 0), and nothing is
    // touched.
    let _ = fs::remove_file(&env.log_file);
    cfg.set("target.match", "no-such-server.py");
    cfg.write(&env);
    let r = tools.watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 0);
    let rep = report(&r);
    assert!(rep["target"].is_null(), "{rep:#}");
    assert!(
        reason_codes(&rep).contains(&"target_unclear".to_string()),
        "{rep:#}"
    );
    assert!(
        events_named(&env, "orphan").is_empty(),
        "{}",
        log_text(&env)
    );
    untouched("target.match not matching");
}

// ---------------------------------------------------------------------------------------
// runit
// ---------------------------------------------------------------------------------------

#[test]
#[ignore = "needs runit's runsv and sv (apt-get install runit): run by script/test --all and .ci/run"]
fn runit_service_is_detected_and_restarted_through_sv() {
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    let service_log = env.root.join("service.log");
    // exec: runsv is the server's parent, as with any well-written run script.
    let run = format!(
        "#!/bin/sh\nexec {} >>{} 2>&1\n",
        sh_words(&testserver_argv(&env)),
        sh_quote(&service_log.display().to_string())
    );
    // A copy of the real runsv beside the real `sv` behind a wrapper that records what
    // the watchdog asks it: the watchdog runs the `sv` beside the job's runsv.
    let (real_runsv, real_sv) = require_runit();
    fs::copy(&real_runsv, tools.bin.join("runsv")).unwrap();
    tools.install_wrapper("sv", &sh_quote(&real_sv.display().to_string()));
    let runit = Runsv::start_via(&env, "hermes", &run, &tools.bin.join("runsv"));
    let (pid, port) = wait_for_server(&env, UP_TIMEOUT, None);
    assert_eq!(
        parent_pid(pid),
        Some(runit.daemon.pid()),
        "runsv runs the server"
    );
    let (out, sv_pid) = runit.status();
    assert!(out.starts_with("run: "), "{out}");
    assert_eq!(sv_pid, Some(pid), "{out}");

    let mut cfg = auto_config(&env, port);
    cfg.set("fds.max", 150);
    cfg.write(&env);
    let dir = runit.dir.display().to_string();
    let rep = healthy_status(&env, &tools);
    let s = assert_supervisor(&rep, "runit", &dir, "runsv ancestor");
    assert_eq!(s["job"]["pid"], pid, "{rep:#}");
    assert_eq!(s["job"]["state"], "run", "{rep:#}");
    assert_eq!(s["orphan"], false, "{rep:#}");

    control(&format!("http://127.0.0.1:{port}"), "/control/leak?n=80");
    let r = tools.watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 1);
    let rep = report(&r);
    let new_pid = assert_acted(&rep, "restart", "runit");
    assert_restart_events(&env, "runit");
    let detail = rep["action"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!("sv restart {dir}")),
        "the restart went through `sv restart DIR`: {detail}"
    );
    assert_one_restart_call(
        &tools,
        "sv",
        &format!("restart {dir}"),
        &format!("status {dir}"),
    );
    let (out, sv_pid) = runit.status();
    assert!(out.starts_with("run: "), "{out}");
    assert_eq!(sv_pid, Some(new_pid), "{out}");
    assert_eq!(parent_pid(new_pid), Some(runit.daemon.pid()));
    assert_replaced(pid, new_pid, port);
}

// ---------------------------------------------------------------------------------------
// launchd and systemd stand-ins
// ---------------------------------------------------------------------------------------

/// The stand-in (common's [`FakeSupervisor`]) as `launchctl` and `systemctl`; `job`
/// names the label or unit (`{"label": ...}` / `{"unit": ...}`).
fn fake_supervisor(env: &TestEnv, tools: &Tools, job: Value, server_env: Value) -> FakeSupervisor {
    FakeSupervisor::new(env, tools, &["launchctl", "systemctl"], job, server_env)
}

/// Starts the job's server as the supervisor would; waits until it serves.
fn start_job(fake: &FakeSupervisor, env: &TestEnv) -> (u32, u16) {
    let started = fake.start_job();
    let (pid, port) = wait_for_server(env, UP_TIMEOUT, None);
    assert_eq!(pid, started);
    (pid, port)
}

fn own_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

#[test]
fn launchd_job_is_detected_from_xpc_service_name_and_kickstarted() {
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    let fake = fake_supervisor(
        &env,
        &tools,
        serde_json::json!({ "label": LABEL }),
        serde_json::json!({ "XPC_SERVICE_NAME": LABEL }),
    );
    let (pid, port) = start_job(&fake, &env);
    let mut cfg = auto_config(&env, port);
    cfg.set("fds.max", 150);
    cfg.write(&env);
    // launchd addresses root's jobs as system/<label>, a user's as gui/<uid>/<label>
    // (launchd::domain_target); CI runs as root.
    let uid = own_uid();
    let target = if uid == 0 {
        format!("system/{LABEL}")
    } else {
        format!("gui/{uid}/{LABEL}")
    };

    let rep = healthy_status(&env, &tools);
    let s = assert_supervisor(&rep, "launchd", LABEL, "XPC_SERVICE_NAME");
    assert_eq!(s["job"]["pid"], pid, "{rep:#}");
    assert_eq!(s["job"]["state"], "running", "{rep:#}");
    assert_eq!(s["orphan"], false, "{rep:#}");
    assert_eq!(fake.take_calls(), [format!("launchctl print {target}")]);

    control(&format!("http://127.0.0.1:{port}"), "/control/leak?n=80");
    let r = tools.watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 1);
    let rep = report(&r);
    let new_pid = assert_acted(&rep, "restart", "launchd");
    assert_restart_events(&env, "launchd");
    let calls = fake.take_calls();
    assert_eq!(
        calls[..2],
        [
            format!("launchctl print {target}"),
            format!("launchctl kickstart -k {target}")
        ],
        "{calls:#?}"
    );
    assert!(
        calls[2..]
            .iter()
            .all(|c| *c == format!("launchctl print {target}")),
        "after the kickstart, only status queries: {calls:#?}"
    );
    assert_eq!(
        fake.job_pid(),
        Some(new_pid),
        "the job's new PID is reported"
    );
    assert_replaced(pid, new_pid, port);

    // The kickstarted server is launchd's job again.
    let rep = healthy_status(&env, &tools);
    let s = assert_supervisor(&rep, "launchd", LABEL, "XPC_SERVICE_NAME");
    assert_eq!(s["job"]["pid"], new_pid, "{rep:#}");
}

/// Whether the server's cgroup puts it under a systemd user manager, in which case the
/// watchdog (rightly) adds `--user` to a configured unit's commands.
fn cgroup_says_user_unit(pid: u32) -> bool {
    let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    cgroup
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2).map(|p| (l, p)))
        .find(|(l, _)| {
            l.split(':')
                .nth(1)
                .is_some_and(|c| c.is_empty() || c == "name=systemd")
        })
        .is_some_and(|(_, path)| {
            let segments: Vec<&str> = path.split('/').collect();
            segments.iter().any(|s| s.starts_with("user@"))
                && segments
                    .iter()
                    .any(|s| s.ends_with(".service") && !s.starts_with("user@"))
        })
}

/// The systemd stand-in with the configured job `restart.unit = "hermes.service"`
/// (auto-detection needs the server's cgroup to name the unit, which cannot be arranged
/// here). Returns the env's pieces, the server, and `systemctl` (plus `--user` if the
/// cgroup says so).
fn systemd_setup(env: &TestEnv, tools: &Tools) -> (FakeSupervisor, u32, u16, String) {
    let fake = fake_supervisor(
        env,
        tools,
        serde_json::json!({ "unit": UNIT }),
        serde_json::json!({ "INVOCATION_ID": "0123456789abcdef0123456789abcdef" }),
    );
    let (pid, port) = start_job(&fake, env);
    let mut cfg = ConfigToml::for_port(env, port);
    cfg.set("restart.method", "systemd");
    cfg.set("restart.unit", UNIT);
    cfg.set("fds.max", 150);
    cfg.write(env);
    let systemctl = if cgroup_says_user_unit(pid) {
        "systemctl --user"
    } else {
        "systemctl"
    };
    (fake, pid, port, systemctl.to_string())
}

#[test]
fn systemd_unit_from_config_is_restarted_with_systemctl() {
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    let (fake, pid, port, systemctl) = systemd_setup(&env, &tools);
    let show = format!(
        "{systemctl} show -p MainPID,ActiveState,SubState,Result,NRestarts,LoadState {UNIT}"
    );

    let rep = healthy_status(&env, &tools);
    let s = assert_supervisor(&rep, "systemd", UNIT, "configured");
    assert_eq!(s["job"]["pid"], pid, "{rep:#}");
    assert_eq!(s["job"]["state"], "active (running)", "{rep:#}");
    assert_eq!(s["orphan"], false, "{rep:#}");
    assert_eq!(fake.take_calls(), std::slice::from_ref(&show));

    control(&format!("http://127.0.0.1:{port}"), "/control/leak?n=80");
    let r = tools.watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 1);
    let rep = report(&r);
    let new_pid = assert_acted(&rep, "restart", "systemd");
    assert_restart_events(&env, "systemd");
    let calls = fake.take_calls();
    assert_eq!(
        calls[..2],
        [show.clone(), format!("{systemctl} restart {UNIT}")],
        "{calls:#?}"
    );
    assert!(calls[2..].iter().all(|c| *c == show), "{calls:#?}");
    assert_eq!(fake.job_pid(), Some(new_pid));
    assert_replaced(pid, new_pid, port);
}

#[test]
fn systemd_start_limit_hit_exits_3_and_names_reset_failed() {
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    let (fake, pid, port, systemctl) = systemd_setup(&env, &tools);
    fs::write(fake.state.join("mode"), "start-limit").unwrap();
    control(&format!("http://127.0.0.1:{port}"), "/control/leak?n=80");

    let r = tools.watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 3);
    let rep = report(&r);
    assert_eq!(rep["action"]["kind"], "restart", "{rep:#}");
    assert_eq!(rep["action"]["method"], "systemd", "{rep:#}");
    assert_eq!(rep["action"]["result"], "failed", "{rep:#}");
    let failed = one_event(&env, "restart_failed");
    assert_eq!(failed["method"], "systemd", "{failed}");
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{systemctl} reset-failed {UNIT}")),
        "the operator is told how to clear the start limit: {message}"
    );
    assert!(events_named(&env, "restarted").is_empty());
    let show = format!(
        "{systemctl} show -p MainPID,ActiveState,SubState,Result,NRestarts,LoadState {UNIT}"
    );
    assert_eq!(
        fake.take_calls(),
        [show.clone(), format!("{systemctl} restart {UNIT}"), show],
        "the refusal is read from the unit's state after the failed restart"
    );
    assert!(
        wait_until(Duration::from_secs(5), || !is_alive(pid)),
        "the stand-in stopped the server"
    );
}

/// A mistyped `restart.unit`: systemctl shows the missing unit as a stopped one (exit
/// 0, MainPID=0). Taken at its word, the healthy server running without it would be an
/// orphan of the job, and killed (target.match recognises it). The watchdog must
/// instead say the unit does not exist, and leave the server alone.
#[test]
fn systemd_mistyped_unit_is_an_error_not_an_orphan() {
    const TYPO: &str = "hermes-webiu.service";
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    let (fake, pid, port, systemctl) = systemd_setup(&env, &tools);
    let mut cfg = ConfigToml::for_port(&env, port);
    cfg.set("restart.method", "systemd");
    cfg.set("restart.unit", TYPO);
    cfg.set("target.match", "testserver.py");
    cfg.write(&env);

    let rep = healthy_status(&env, &tools);
    let s = assert_supervisor(&rep, "systemd", TYPO, "configured");
    assert_eq!(s["orphan"], false, "{rep:#}");
    let error = s["job"]["error"].as_str().unwrap_or_default();
    for words in [
        "unit hermes-webiu.service does not exist",
        "restart.unit",
        "list-units",
    ] {
        assert!(
            error.contains(words),
            "{words:?} not in the job's error: {rep:#}"
        );
    }

    let r = tools.watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 0);
    assert_nothing_done(&env);
    assert!(
        is_alive(pid) && !is_stopped(pid),
        "the server was signalled"
    );
    assert_eq!(listener_pid(port), Some(pid));
    let show = format!(
        "{systemctl} show -p MainPID,ActiveState,SubState,Result,NRestarts,LoadState {TYPO}"
    );
    assert_eq!(
        fake.take_calls(),
        [show.clone(), show],
        "only status queries"
    );
}

// ---------------------------------------------------------------------------------------
// No supervisor
// ---------------------------------------------------------------------------------------

#[test]
fn plain_server_has_no_supervisor_and_restarts_builtin() {
    let env = TestEnv::new();
    let server = TestServer::start(&env, ServerOpts::default());
    let mut cfg = env.base_config(&server);
    cfg.set("restart.method", "auto");
    cfg.write(&env);
    let r = run_watchdog(&env, &["status", "--json"]);
    assert_exit(&env, &r, 0);
    let rep = report(&r);
    assert_eq!(rep["target"]["pid"], server.pid, "{rep:#}");
    assert!(
        rep["target"]
            .as_object()
            .is_some_and(|t| t.get("supervisor") == Some(&Value::Null)),
        "target.supervisor must be present and null: {rep:#}"
    );
    assert_eq!(rep["restart_method"], "builtin", "{rep:#}");
}
