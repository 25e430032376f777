//! A root watchdog and supervisor identities it must not take on a process's word
//! (docs/SECURITY.md): another user's process that names a supervisord program in its
//! own environment, a program of root's supervisord that names another program, a
//! `supervisor` planted in the history; and a job that supervisord is still starting,
//! which is never an orphan. A REAL supervisord runs as root here (its programs as
//! other users, as `user =` does in production); the watchdog reaches the real
//! `supervisorctl` through a wrapper that records every call, so "nothing was asked"
//! is proven by what it ran, not by what it reported. systemd cannot run here: a
//! stand-in `systemctl` records its calls.
//!
//! The other users' processes run the system's `/usr/bin/python3` (the test's own
//! interpreter may live under root's home, which they cannot enter).

// Linux only: a root supervisord and runit running other users' programs through
// `setpriv` (util-linux), and a root-run test (the macOS CI job is not root).
#![cfg(target_os = "linux")]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use common::*;

/// Generous: supervisord and Python start slowly on a small shared machine.
const UP_TIMEOUT: Duration = Duration::from_secs(30);
/// An interpreter every user may run.
const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// A process that listens on `argv[1]` (and, given `argv[2]`, on that unix socket too,
/// a control socket of its own) and closes every connection at once: health fails.
/// Written to `listener.py` in the env ([`listener`]), so that its command line names
/// the env and a stray is found by it.
const LISTENER: &str = "\
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', int(sys.argv[1])))
s.listen(16)
if len(sys.argv) > 2:
    u = socket.socket(socket.AF_UNIX)
    u.bind(sys.argv[2])
    u.listen(1)
while True:
    c, _ = s.accept()
    c.close()
";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Lets other users traverse the temp dir (not list or write it), and gives `uid` a
/// directory of its own inside it.
fn dir_for(env: &TestEnv, name: &str, (uid, gid): (u32, u32)) -> PathBuf {
    fs::set_permissions(&env.root, fs::Permissions::from_mode(0o711)).unwrap();
    let dir = env.root.join(name);
    fs::create_dir_all(&dir).unwrap();
    chown_tree(&dir, uid, gid);
    dir
}

/// The listener script in the env, readable by every user.
fn listener(env: &TestEnv) -> String {
    let path = env.root.join("listener.py");
    fs::write(&path, LISTENER).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(&env.root, fs::Permissions::from_mode(0o711)).unwrap();
    path.display().to_string()
}

/// A supervisord program's command prefix that runs it as `uid`:`gid` (supervisord's
/// own `user =` wants a passwd entry, which the test users have not): setpriv execs,
/// so the program keeps supervisord's child PID.
fn as_user((uid, gid): (u32, u32)) -> String {
    format!("setpriv --reuid={uid} --regid={gid} --clear-groups --")
}

fn require_system_python() {
    assert!(
        Path::new(SYSTEM_PYTHON).exists(),
        "{SYSTEM_PYTHON} is missing: run `apt-get install python3` (other users' processes \
         run it)"
    );
}

/// A program nobody may touch: root's own job, a sleeper whose command line names the
/// env (so strays are found).
fn victim(env: &TestEnv) -> String {
    let marker = env.root.join("victim-marker");
    program(
        env,
        "victim",
        &format!(
            "{} -c 'import time, sys; time.sleep(100000)' {}",
            sh_quote(python()),
            sh_quote(&marker.display().to_string())
        ),
        "startsecs = 1\n",
    )
}

/// supervisord as these tests run it: as root, which its programs leave with setpriv
/// ([`as_user`]); started from the test's tool directory, so that the supervisorctl
/// beside it (which the watchdog runs before PATH's) is the recording wrapper.
fn start_supervisord(env: &TestEnv, programs: &str) -> Supervisord {
    let launch = Tools::new(env).supervisord_launcher();
    Supervisord::start_via(env, "user = root\n", programs, launch)
}

/// [`start_supervisord`] with the one program `hermes:webui` running `command` (shell
/// words); `extra` adds lines to its section.
fn start_webui(env: &TestEnv, command: &str, extra: &str) -> Supervisord {
    start_supervisord(
        env,
        &format!(
            "{}{}",
            program(env, "webui", command, extra),
            group(&["webui"])
        ),
    )
}

/// Whether `call` (a recorded supervisorctl call) only asked `sup` about `hermes:webui`:
/// its status or its PID.
fn is_webui_query(sup: &Supervisord, call: &str) -> bool {
    call == format!("-s {} status hermes:webui", sup.url)
        || call == format!("-s {} pid hermes:webui", sup.url)
}

/// The config for a server on `port`: auto-detection, one health attempt.
fn auto_config(env: &TestEnv, port: u16) -> ConfigToml {
    let mut cfg = ConfigToml::for_port(env, port);
    cfg.set("restart.method", "auto");
    cfg.set("health.attempts", 1);
    cfg
}

/// [`auto_config`] where `target.match` recognises the squatter: before the checks, an
/// orphan that matched was killed and its claimed job restarted.
fn squatter_config(env: &TestEnv, port: u16) -> ConfigToml {
    let mut cfg = auto_config(env, port);
    cfg.set("target.match", "listener.py");
    cfg
}

#[track_caller]
fn has_reason(rep: &Value, code: &str) -> String {
    rep["reasons"]
        .as_array()
        .and_then(|all| all.iter().find(|r| r["code"] == code))
        .and_then(|r| r["detail"].as_str())
        .unwrap_or_else(|| panic!("no {code} reason: {rep:#}"))
        .to_string()
}

#[track_caller]
fn assert_contains(text: &str, words: &[&str]) {
    for w in words {
        assert!(text.contains(w), "{w:?} not in: {text}");
    }
}

/// The run did nothing: exit 4, its plan suppressed as `target_unclear` with the claim
/// named in the detail, no action event, no incident.
#[track_caller]
fn assert_refused(env: &TestEnv, r: &RunResult, words: &[&str]) -> Value {
    assert_exit(env, r, 4);
    let rep = report(r);
    assert_eq!(rep["action"]["result"], "suppressed", "{rep:#}");
    assert_eq!(rep["restart_method"], "none", "{rep:#}");
    let detail = rep["action"]["detail"].as_str().unwrap_or_default();
    assert_contains(detail, &["the target is not clearly identified"]);
    assert_contains(detail, words);
    assert_contains(&has_reason(&rep, "target_unclear"), words);
    assert!(rep["target"]["supervisor"].is_null(), "{rep:#}");
    assert_nothing_acted(env);
    rep
}

/// `check --json` with [`squatter_config`] for `port`, asserted [`assert_refused`]: the
/// run and its report.
#[track_caller]
fn check_refused(env: &TestEnv, tools: &Tools, port: u16, words: &[&str]) -> (RunResult, Value) {
    squatter_config(env, port).write(env);
    let r = tools.watchdog(env, &["check", "--json"]);
    let rep = assert_refused(env, &r, words);
    (r, rep)
}

// ---------------------------------------------------------------------------------------
// Another user's process claims a program of root's supervisord
// ---------------------------------------------------------------------------------------

/// ATTACKER listens on a free port (and on `own_socket`, if given) with `vars` in its
/// environment; returns the guard and the port.
fn attacker_listening(
    env: &TestEnv,
    vars: &[(&str, &str)],
    own_socket: Option<&Path>,
) -> (ChildGuard, u16) {
    require_system_python();
    let port = free_port();
    let mut cmd = Command::new(SYSTEM_PYTHON);
    cmd.arg(listener(env)).arg(port.to_string());
    if let Some(sock) = own_socket {
        cmd.arg(sock);
    }
    cmd.envs(vars.iter().copied()).current_dir("/");
    let guard = spawn_as(ATTACKER.0, ATTACKER.1, &cmd);
    let pid = guard.pid();
    assert!(
        wait_until(UP_TIMEOUT, || listener_pid(port) == Some(pid)),
        "the attacker's process did not listen on {port}"
    );
    (guard, port)
}

/// ATTACKER listens on a port with SUPERVISOR_* naming `hermes:victim` of supervisord
/// at `url`; returns the guard and the port.
fn attacker_claiming(env: &TestEnv, url: &str, own_socket: Option<&Path>) -> (ChildGuard, u16) {
    let vars = [
        ("SUPERVISOR_ENABLED", "1"),
        ("SUPERVISOR_SERVER_URL", url),
        ("SUPERVISOR_PROCESS_NAME", "victim"),
        ("SUPERVISOR_GROUP_NAME", "hermes"),
    ];
    attacker_listening(env, &vars, own_socket)
}

#[test]
#[ignore = "needs root and supervisord (another user claims root's program; pip install supervisor): run by script/test as root and .ci/run"]
fn another_users_claim_on_roots_supervisord_program_is_not_used() {
    require_root();
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    tools.install_supervisorctl();
    let sup = start_supervisord(&env, &format!("{}{}", victim(&env), group(&["victim"])));
    let victim = Witness::of(sup.wait_running("hermes:victim"));

    let (attacker, port) = attacker_claiming(&env, &sup.url, None);
    let squatter = Witness::of(attacker.pid());
    let (r, rep) = check_refused(
        &env,
        &tools,
        port,
        &[
            &format!(
                "PID {} claims supervisord program hermes:victim",
                attacker.pid()
            ),
            "no supervisord is its ancestor",
            "uid 4343",
            "nor by a builtin restart",
        ],
    );
    assert!(
        reason_codes(&rep).contains(&"health_failed".to_string()),
        "{rep:#}"
    );
    assert_eq!(
        tools.take_calls("supervisorctl"),
        Vec::<String>::new(),
        "no supervisorctl call on the attacker's word"
    );
    victim.assert_untouched(&r);
    squatter.assert_untouched(&r);
    assert_eq!(
        sup.status("hermes:victim"),
        ("RUNNING".to_string(), Some(victim.pid))
    );
    let log = fs::read_to_string(&sup.log).unwrap_or_default();
    assert!(!log.contains("stopped: victim"), "{}", sup.logs());
}

/// The same claim, pointing at a control socket the attacker holds itself.
#[test]
#[ignore = "needs root and supervisorctl (another user's control socket; pip install supervisor): run by script/test as root and .ci/run"]
fn another_users_claim_on_its_own_control_socket_is_not_used() {
    require_root();
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    tools.install_supervisorctl();
    let dir = dir_for(&env, "attacker", ATTACKER);
    let sock = dir.join("s.sock");
    let url = format!("unix://{}", sock.display());
    let (attacker, port) = attacker_claiming(&env, &url, Some(&sock));
    assert!(wait_until(UP_TIMEOUT, || sock.exists()));
    let squatter = Witness::of(attacker.pid());
    let outside = tree_snapshot(&dir, &[]);
    let (r, _) = check_refused(
        &env,
        &tools,
        port,
        &[
            &format!(
                "PID {} claims supervisord program hermes:victim",
                attacker.pid()
            ),
            "no supervisord is its ancestor",
        ],
    );
    assert_eq!(tools.take_calls("supervisorctl"), Vec::<String>::new());
    squatter.assert_untouched(&r);
    assert_eq!(tree_snapshot(&dir, &[]), outside, "the attacker's files");
}

/// A program root's supervisord runs as ATTACKER (`user =`) sets another program's
/// name in its environment: supervisord is its ancestor and holds the socket, but
/// supervisord runs `hermes:victim` as another PID. Only the status was asked.
#[test]
#[ignore = "needs root and supervisord (programs of other users; pip install supervisor): run by script/test as root and .ci/run"]
fn a_program_naming_another_program_of_its_supervisord_is_not_used() {
    require_root();
    require_system_python();
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    tools.install_supervisorctl();
    let port = free_port();
    let squatter = program(
        &env,
        "squatter",
        &format!(
            "{} /usr/bin/env SUPERVISOR_PROCESS_NAME=victim {SYSTEM_PYTHON} {} {port}",
            as_user(ATTACKER),
            sh_quote(&listener(&env)),
        ),
        "startsecs = 1\n",
    );
    let sup = start_supervisord(
        &env,
        &format!(
            "{}{squatter}{}",
            victim(&env),
            group(&["victim", "squatter"])
        ),
    );
    let victim = Witness::of(sup.wait_running("hermes:victim"));
    let holder = sup.wait_running("hermes:squatter");
    assert!(wait_until(UP_TIMEOUT, || listener_pid(port) == Some(holder)));
    let squatter = Witness::of(holder);
    let (r, _) = check_refused(
        &env,
        &tools,
        port,
        &[
            &format!("PID {holder} claims supervisord program hermes:victim"),
            &format!(
                "its ancestor supervisord PID {} runs that job as PID {}",
                sup.daemon.pid(),
                victim.pid
            ),
            "uid 4343",
        ],
    );
    let calls = tools.take_calls("supervisorctl");
    assert!(
        calls
            .iter()
            .all(|c| *c == format!("-s {} status hermes:victim", sup.url)),
        "only the job's status was asked: {calls:#?}"
    );
    victim.assert_untouched(&r);
    squatter.assert_untouched(&r);
}

/// The legitimate case the checks must keep: root's supervisord runs the server as
/// SERVER_USER; it is its ancestor, holds the socket and runs it as the job. The
/// restart goes through supervisorctl, and the history records the job as confirmed.
#[test]
#[ignore = "needs root and supervisord (a job of another user; pip install supervisor): run by script/test as root and .ci/run"]
fn a_confirmed_job_of_another_user_is_restarted_through_supervisorctl() {
    require_root();
    require_system_python();
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    tools.install_supervisorctl();
    let dir = dir_for(&env, "server", SERVER_USER);
    let path = |name: &str| sh_quote(&dir.join(name).display().to_string());
    fs::create_dir_all(dir.join("db")).unwrap();
    chown_tree(&dir, SERVER_USER.0, SERVER_USER.1);
    let command = format!(
        "{} {SYSTEM_PYTHON} {} --port-file {} --pid-log {} --db {} --mode-file {}",
        as_user(SERVER_USER),
        sh_quote(&testserver_script().display().to_string()),
        path("server.port"),
        path("pids.log"),
        path("db"),
        path("server.mode"),
    );
    let sup = start_webui(&env, &command, "startsecs = 1\n");
    let pid = sup.wait_running("hermes:webui");
    let port_file = dir.join("server.port");
    let mut port = 0;
    assert!(wait_until(UP_TIMEOUT, || {
        port = fs::read_to_string(&port_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        port != 0 && listener_pid(port) == Some(pid)
    }));
    // The lean test server holds about 4 FDs.
    let mut cfg = auto_config(&env, port);
    cfg.set("fds.max", 2);
    cfg.write(&env);

    let r = tools.watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 1);
    let rep = report(&r);
    assert_eq!(rep["action"]["kind"], "restart", "{rep:#}");
    assert_eq!(rep["action"]["method"], "supervisor", "{rep:#}");
    assert_eq!(rep["target"]["supervisor"]["trust"], "confirmed", "{rep:#}");
    let calls = tools.take_calls("supervisorctl");
    assert_eq!(
        calls
            .iter()
            .filter(|c| **c == format!("-s {} restart hermes:webui", sup.url))
            .count(),
        1,
        "{calls:#?}"
    );
    assert_eq!(read_history(&env)["supervisor"]["trust"], "confirmed");
    let new = sup.wait_running("hermes:webui");
    assert_ne!(new, pid, "{}", sup.logs());
}

// ---------------------------------------------------------------------------------------
// A supervisor planted in the history
// ---------------------------------------------------------------------------------------

/// history.json names a systemd unit (as an attacker who could write the state dir
/// once did, or an older version that recorded a claim unchecked) and the port is
/// free: the unit is not started, nor even asked about.
#[test]
#[ignore = "needs root (a history planted for a root watchdog): run by script/test as root and .ci/run"]
fn a_planted_history_supervisor_is_never_started() {
    require_root();
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    // Answers like systemctl for a loaded, stopped unit; records every call.
    tools.install_recording(
        "systemctl",
        "printf 'MainPID=0\\nActiveState=inactive\\nSubState=dead\\nResult=success\\n\
         NRestarts=0\\nLoadState=loaded\\n'",
    );
    let port = free_port();
    auto_config(&env, port).write(&env);
    fs::create_dir_all(&env.state_dir).unwrap();
    fs::set_permissions(&env.state_dir, fs::Permissions::from_mode(0o700)).unwrap();
    write_history(
        &env,
        &serde_json::json!({
            "version": 1,
            "supervisor": {
                "kind": "systemd", "name": "victim.service", "user": false, "uid": 0,
                "server_url": null, "evidence": "cgroup"
            }
        }),
    );
    // The temp dir's own entry changes when the log file is created in it.
    let outside = || {
        let mut files = tree_snapshot(&env.root, &[&env.state_dir, &env.log_file, &tools.calls]);
        files.retain(|(path, _)| *path != env.root);
        files
    };
    let before = outside();

    let r = tools.watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 4);
    let rep = report(&r);
    assert!(rep["target"].is_null(), "{rep:#}");
    assert!(
        reason_codes(&rep).contains(&"no_process".to_string()),
        "{rep:#}"
    );
    assert_contains(
        &has_reason(&rep, "target_unclear"),
        &[
            "the history remembers systemd unit victim.service",
            "nothing confirmed it when it was recorded",
            "restart.unit",
        ],
    );
    assert_eq!(rep["action"]["result"], "suppressed", "{rep:#}");
    assert_eq!(rep["restart_method"], "builtin", "{rep:#}");
    assert_contains(
        rep["action"]["detail"].as_str().unwrap_or_default(),
        &["restart.start_command"],
    );
    assert_eq!(
        tools.take_calls("systemctl"),
        Vec::<String>::new(),
        "no systemctl call on the history's word"
    );
    assert_nothing_acted(&env);
    assert_eq!(outside(), before, "files outside the state dir changed");
}

// ---------------------------------------------------------------------------------------
// A job supervisord is still starting
// ---------------------------------------------------------------------------------------

/// supervisord keeps a program in STARTING for `startsecs`, while it already listens,
/// and `supervisorctl status` prints no PID then. The watchdog must ask `supervisorctl
/// pid`, wait (bounded), say "starting", and neither kill the process as an orphan nor
/// restart it, healthy or not.
#[test]
#[ignore = "needs root and supervisord (root's supervisord, user = root; pip install supervisor): run by script/test as root and .ci/run"]
fn a_program_supervisord_is_starting_is_never_an_orphan() {
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    tools.install_supervisorctl();
    let command = sh_words(&testserver_argv(&env));
    let sup = start_webui(&env, &command, "startsecs = 600\n");
    let (pid, port) = wait_for_server(&env, UP_TIMEOUT, None);
    assert_eq!(
        sup.status("hermes:webui"),
        ("STARTING".to_string(), Some(pid)),
        "precondition: listening while STARTING"
    );
    let server = Witness::of(pid);
    let mut cfg = auto_config(&env, port);
    cfg.set("target.match", "testserver.py");
    cfg.write(&env);
    let starting =
        format!("supervisord program hermes:webui is starting the server (STARTING, PID {pid})");
    let only_queries = |calls: Vec<String>| {
        assert!(
            !calls.is_empty() && calls.iter().all(|c| is_webui_query(&sup, c)),
            "only status and pid were asked: {calls:#?}"
        );
    };

    // Healthy: a warning that says so, exit 0.
    let r = tools.watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 0);
    let rep = report(&r);
    assert_contains(&has_reason(&rep, "supervisor_starting"), &[&starting]);
    assert!(
        !reason_codes(&rep).contains(&"orphan_port_holder".to_string()),
        "{rep:#}"
    );
    assert_eq!(rep["target"]["supervisor"]["orphan"], false, "{rep:#}");
    assert_eq!(rep["target"]["supervisor"]["starting"], true, "{rep:#}");
    assert_eq!(rep["target"]["supervisor"]["job"]["pid"], pid, "{rep:#}");
    only_queries(tools.take_calls("supervisorctl"));
    server.assert_untouched(&r);
    let r = tools.watchdog(&env, &["status"]);
    assert_exit(&env, &r, 0);
    assert_contains(
        &r.stdout,
        &[&format!(
            "via supervisor hermes:webui (found by SUPERVISOR_PROCESS_NAME, confirmed): \
             STARTING, PID {pid}; the supervisor is STARTING it: left to finish"
        )],
    );
    tools.take_calls("supervisorctl");

    // Over the FD limit while starting: not acted on, exit 4, and the reason is given.
    cfg.set("fds.max", 2);
    cfg.write(&env);
    let r = tools.watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 4);
    let rep = report(&r);
    assert_eq!(rep["action"]["result"], "suppressed", "{rep:#}");
    assert_contains(
        rep["action"]["detail"].as_str().unwrap_or_default(),
        &["starting: ", &starting, "waited for up to 5s"],
    );
    only_queries(tools.take_calls("supervisorctl"));
    assert_nothing_acted(&env);
    server.assert_untouched(&r);
    assert_eq!(
        sup.status("hermes:webui"),
        ("STARTING".to_string(), Some(pid)),
        "{}",
        sup.logs()
    );
}

// ---------------------------------------------------------------------------------------
// A fake runsv
// ---------------------------------------------------------------------------------------

/// ATTACKER's process under a parent it named `runsv`, whose cwd is root's real
/// service directory: the ancestor's name and cwd say "runit service", but root's real
/// runsv runs another PID for that service. Only `sv status` was asked.
#[test]
#[ignore = "needs root and runit (another user's fake runsv; apt-get install runit): run by script/test as root and .ci/run"]
fn a_process_under_a_fake_runsv_in_roots_service_dir_is_not_used() {
    require_root();
    require_system_python();
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    let marker = env.root.join("victim-marker");
    // Dropped last: whatever runsv leaves behind, even when the test fails.
    let _strays = Strays(env.root.clone());
    let real = Runsv::start(
        &env,
        "victim",
        &format!(
            "#!/bin/sh\nexec {} -c 'import time; time.sleep(100000)' {}\n",
            sh_quote(python()),
            sh_quote(&marker.display().to_string())
        ),
    );
    tools.install_wrapper("sv", &sh_quote(&real.sv.display().to_string()));
    let service = real.dir.clone();
    fs::set_permissions(env.root.join("service"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&service, fs::Permissions::from_mode(0o755)).unwrap();
    let supervise_pid = service.join("supervise/pid");
    let mut victim_pid = 0;
    assert!(
        wait_until(UP_TIMEOUT, || {
            victim_pid = fs::read_to_string(&supervise_pid)
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
            victim_pid != 0 && cmdline(victim_pid).contains("victim-marker")
        }),
        "root's runsv did not start the victim service"
    );
    let victim = Witness::of(victim_pid);

    // `exec -a runsv`: the parent shell shows `runsv` as its argv[0], in the service dir.
    let port = free_port();
    let script = format!(
        "exec -a runsv /bin/bash -c '{SYSTEM_PYTHON} {} {port}; true'",
        listener(&env)
    );
    let mut cmd = Command::new("/bin/bash");
    cmd.args(["-c", &script]).current_dir(&service);
    let fake = spawn_as(ATTACKER.0, ATTACKER.1, &cmd);
    let mut holder = 0;
    assert!(
        wait_until(UP_TIMEOUT, || {
            holder = listener_pid(port).unwrap_or(0);
            holder != 0
        }),
        "the attacker's process did not listen"
    );
    assert_eq!(parent_pid(holder), Some(fake.pid()), "precondition");
    assert!(cmdline(fake.pid()).starts_with("runsv"), "precondition");
    let squatter = Witness::of(holder);
    let (r, _) = check_refused(
        &env,
        &tools,
        port,
        &[
            &format!(
                "PID {holder} claims runit service {} (runsv ancestor)",
                service.display()
            ),
            &format!("its ancestor runsv runs that job as PID {victim_pid}"),
            "uid 4343",
            "restart.service_dir",
        ],
    );
    let calls = tools.take_calls("sv");
    assert!(
        calls
            .iter()
            .all(|c| *c == format!("status {}", service.display())),
        "only `sv status` was asked: {calls:#?}"
    );
    victim.assert_untouched(&r);
    squatter.assert_untouched(&r);
    drop(fake);
    drop(real);
}

/// Kills this env's sleepers and listeners on drop.
struct Strays(PathBuf);

impl Drop for Strays {
    fn drop(&mut self) {
        wait_until(Duration::from_secs(5), || {
            kill_strays(&self.0, &["victim-marker", "listener.py"]) == 0
        });
    }
}

/// The gap after a crash: the run finds the pidfile stale and the port free while
/// supervisord is respawning the server, which listens a moment later. The run waits
/// for the starting job (bounded), leaves it alone, and credits the supervisor in the
/// report instead of pointing the operator at a [target] config that is fine.
#[test]
#[ignore = "needs root and supervisord (root's supervisord, user = root; pip install supervisor): run by script/test as root and .ci/run"]
fn a_respawn_in_the_gap_after_a_crash_is_reported_as_the_supervisor_starting_it() {
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    tools.install_supervisorctl();
    let mut argv = testserver_argv(&env);
    argv.extend(["--startup-delay".into(), "0.5".into()]);
    let command = sh_words(&argv);
    let sup = start_webui(&env, &command, "startsecs = 600\nstartretries = 10\n");
    let (pid, port) = wait_for_server(&env, UP_TIMEOUT, None);
    auto_config(&env, port).write(&env);

    // A first run records the job, confirmed (supervisord is the server's parent).
    let r = tools.watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 0);
    assert_eq!(read_history(&env)["supervisor"]["trust"], "confirmed");
    tools.take_calls("supervisorctl");

    // The crash: supervisord respawns it after a second (BACKOFF), and it listens half a
    // second after that, within the run's wait for a starting job.
    fs::write(&env.pidfile, format!("{pid}\n")).unwrap();
    // SAFETY: kill(2) on the test server this test started through supervisord.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    assert!(wait_until(Duration::from_secs(10), || !is_alive(pid)));
    let r = tools.watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 0);
    let rep = report(&r);
    assert!(rep["target"].is_null(), "{rep:#}");
    let detail = has_reason(&rep, "no_process");
    assert_contains(
        &detail,
        &[
            "no server process was found when this run looked",
            "supervisord program hermes:webui is starting the server (STARTING)",
            "health passes",
        ],
    );
    assert!(!detail.contains("check [target]"), "{detail}");
    let calls = tools.take_calls("supervisorctl");
    assert!(
        calls.iter().all(|c| is_webui_query(&sup, c)),
        "only status and pid were asked: {calls:#?}"
    );
    assert_nothing_acted(&env);
    let (state, new) = sup.status("hermes:webui");
    assert_eq!(state, "STARTING", "{}", sup.logs());
    assert!(new.is_some() && new != Some(pid), "{}", sup.logs());
    assert_eq!(
        listener_pid(port),
        new,
        "the respawned server holds the port"
    );
    let log = fs::read_to_string(&sup.log).unwrap_or_default();
    assert_eq!(
        log.matches("spawned: 'webui'").count(),
        2,
        "supervisord spawned the server twice, the watchdog never:\n{}",
        sup.logs()
    );
}

// ---------------------------------------------------------------------------------------
// launchd
// ---------------------------------------------------------------------------------------

/// launchd is every process's ancestor on macOS, so XPC_SERVICE_NAME cannot be
/// confirmed by ancestry: a root watchdog does not take another user's label (the
/// stand-in `launchctl` records that it was never run).
#[test]
#[ignore = "needs root (another user's process carries a launchd label): run by script/test as root and .ci/run"]
fn another_users_launchd_label_is_not_used_by_a_root_watchdog() {
    require_root();
    require_system_python();
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    tools.install_recording("launchctl", "exit 0");
    let (attacker, port) =
        attacker_listening(&env, &[("XPC_SERVICE_NAME", "com.example.victim")], None);
    let pid = attacker.pid();
    let squatter = Witness::of(pid);
    let (r, _) = check_refused(
        &env,
        &tools,
        port,
        &[
            &format!("PID {pid} claims launchd job gui/4343/com.example.victim"),
            "launchd is every process's ancestor",
            "restart.label",
        ],
    );
    assert_eq!(tools.take_calls("launchctl"), Vec::<String>::new());
    squatter.assert_untouched(&r);
}

/// The server crashed and fails at start; supervisord retries it (BACKOFF, retries
/// left). The run waits (bounded), reports "starting" with exit 4, and does not start
/// it again behind supervisord's back: supervisord owns the retries.
#[test]
#[ignore = "needs root and supervisord (root's supervisord, user = root; pip install supervisor): run by script/test as root and .ci/run"]
fn a_program_in_backoff_with_retries_left_is_left_to_supervisord() {
    let env = TestEnv::new();
    let tools = Tools::new(&env);
    tools.install_supervisorctl();
    let (argv, flag) = testserver_argv_failing_if_flag(&env);
    let command = sh_words(&argv);
    let sup = start_webui(&env, &command, "startsecs = 1\nstartretries = 1000\n");
    sup.wait_running("hermes:webui");
    let (pid, port) = wait_for_server(&env, UP_TIMEOUT, None);
    auto_config(&env, port).write(&env);
    let r = tools.watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 0);
    assert_eq!(read_history(&env)["supervisor"]["trust"], "confirmed");
    tools.take_calls("supervisorctl");

    fs::write(&flag, "").unwrap();
    // SAFETY: kill(2) on the test server this test started through supervisord.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    let mut state = String::new();
    assert!(
        wait_until(UP_TIMEOUT, || {
            state = sup.status("hermes:webui").0;
            state == "BACKOFF"
        }),
        "precondition: supervisord retries the program (last: {state})\n{}",
        sup.logs()
    );
    let r = tools.watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 4);
    let rep = report(&r);
    assert!(rep["target"].is_null(), "{rep:#}");
    assert_eq!(rep["action"]["result"], "suppressed", "{rep:#}");
    assert_contains(
        rep["action"]["detail"].as_str().unwrap_or_default(),
        &[
            "starting: supervisord program hermes:webui is starting the server (",
            "left alone this run",
        ],
    );
    let calls = tools.take_calls("supervisorctl");
    assert!(
        !calls.is_empty() && calls.iter().all(|c| is_webui_query(&sup, c)),
        "only status and pid were asked: {calls:#?}"
    );
    assert_nothing_acted(&env);
}
