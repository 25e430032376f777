//! End-to-end tests of what a root watchdog believes when it looks for the server
//! (docs/SECURITY.md): a pidfile is believed only if nobody but root and the owner of the
//! process it names could have written it; a process found by `match` alone that does
//! not hold the port is never signalled; several port holders that are not one process
//! tree are `target_unclear`. Each test runs the watchdog binary as root against real
//! processes of other users (`setpriv`), and asserts that the victim was never signalled
//! (its PID and start time unchanged, no signal pending), the exit code, and the reason
//! and message the operator sees.

// Linux only: root against other users' processes through `setpriv` (util-linux),
// /proc/net/tcp and /proc/PID/fd, and a root-run test (the macOS CI job is not root).
#![cfg(target_os = "linux")]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use common::*;

/// Processes of other users cannot run root's python (under /root, mode 0700): the
/// system's is used for them.
const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// A directory under /tmp with `mode` (e.g. 0o1777, like /tmp itself), removed on drop.
fn dir_with_mode(mode: u32) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("watchdog-trust-")
        .tempdir()
        .expect("temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(mode)).expect("chmod");
    dir
}

/// Runs `sh -c script` as `uid`:`gid` to completion; it must succeed.
fn run_as(user: (u32, u32), script: &str) {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    let mut child = spawn_as(user.0, user.1, &cmd);
    let status = child.0.wait().expect("wait for sh");
    assert!(status.success(), "`{script}` as uid {} failed", user.0);
}

/// The socket inodes LISTENing on `port` (IPv4 and IPv6).
fn listening_inodes(port: u16) -> Vec<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let on_port = cols
                .get(1)
                .and_then(|local| local.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok())
                == Some(port);
            if cols.len() >= 10 && cols[3] == "0A" && on_port {
                inodes.push(format!("socket:[{}]", cols[9]));
            }
        }
    }
    inodes
}

/// Whether `pid` holds a socket LISTENing on `port`.
fn listens(pid: u32, port: u16) -> bool {
    let inodes = listening_inodes(port);
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.flatten().any(|fd| {
                fs::read_link(fd.path())
                    .is_ok_and(|link| inodes.contains(&link.to_string_lossy().into_owned()))
            })
        })
        .unwrap_or(false)
}

/// A process of `user` that LISTENs on `address`:`port` (an IPv6 one with V6ONLY, so it
/// can share the port with an IPv4 one) and never answers: a hung server, or a squatter.
/// `tag` ends its command line. Returns once it listens.
fn listener_as(user: (u32, u32), address: &str, port: u16, tag: &str) -> ChildGuard {
    let family = if address.contains(':') {
        "AF_INET6"
    } else {
        "AF_INET"
    };
    let script = format!(
        "import socket, time\n\
         s = socket.socket(socket.{family})\n\
         if s.family == socket.AF_INET6:\n    \
             s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)\n\
         s.bind(('{address}', {port}))\n\
         s.listen()\n\
         time.sleep(300)\n"
    );
    let mut cmd = Command::new(SYSTEM_PYTHON);
    cmd.args(["-c", &script, tag]);
    let child = spawn_as(user.0, user.1, &cmd);
    let pid = child.pid();
    assert!(
        wait_until(Duration::from_secs(20), || listens(pid, port)),
        "uid {}'s listener on {address}:{port} did not start",
        user.0
    );
    child
}

/// The base config for a server on `port`, with `pidfile` as the pidfile.
fn config(env: &TestEnv, port: u16, pidfile: &Path) -> ConfigToml {
    let mut cfg = ConfigToml::for_port(env, port);
    cfg.set("target.pidfile", pidfile.to_string_lossy().into_owned());
    cfg
}

/// The reason with `code` in a `--json` report.
#[track_caller]
fn reason<'a>(report: &'a Value, code: &str) -> &'a Value {
    report["reasons"]
        .as_array()
        .and_then(|reasons| reasons.iter().find(|r| r["code"] == code))
        .unwrap_or_else(|| panic!("no {code} reason in {report:#}"))
}

#[track_caller]
fn detail(report: &Value, code: &str) -> String {
    reason(report, code)["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// An unprivileged user writes the PID of an unrelated root process into a pidfile in a
/// world-writable sticky directory (like /tmp), with the port free. Before, root SIGTERMed
/// that process and re-spawned its command line as root (exit 3). Now the pidfile is
/// refused (untrusted_pidfile: the file, its owner and the fix), the root process is never
/// signalled, and with no way to start a server the run exits 4.
#[test]
#[ignore = "needs root (another user forges a pidfile for a root watchdog): run by script/test as root and .ci/run"]
fn a_pidfile_forged_by_another_user_never_names_a_process_to_root() {
    require_root();
    let env = TestEnv::new();
    let victim = spawn_sleep();
    let witness = Witness::of(victim.pid());
    let shared = dir_with_mode(0o1777);
    let pidfile = shared.path().join("webui.pid");
    run_as(
        ATTACKER,
        &format!("echo {} > {}", victim.pid(), pidfile.display()),
    );
    assert_eq!(
        fs::metadata(&pidfile)
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .ok(),
        Some(ATTACKER.0),
        "precondition: the attacker owns the pidfile"
    );
    let port = free_port();
    config(&env, port, &pidfile).write(&env);
    let outside = tree_snapshot(shared.path(), &[]);

    let r = run_watchdog(&env, &["check", "--json"]);
    let report = assert_no_target(&env, &r, &[witness]);
    let untrusted = detail(&report, "untrusted_pidfile");
    assert_eq!(reason(&report, "untrusted_pidfile")["severity"], "soft");
    for says in [
        format!("untrusted pidfile {}", pidfile.display()),
        format!("PID {} is ignored", victim.pid()),
        format!("is owned by uid {}", ATTACKER.0),
        "runs as uid 0".to_string(),
        format!("chown 0 {}", pidfile.display()),
    ] {
        assert!(untrusted.contains(&says), "{says:?} not in {untrusted:?}");
    }
    assert_eq!(report["action"]["result"], "suppressed", "{report:#}");
    assert_nothing_done(&env);
    assert_eq!(tree_snapshot(shared.path(), &[]), outside);

    // `status` shows the same warning in words.
    let r = run_watchdog(&env, &["status"]);
    witness.assert_untouched(&r);
    assert_exit(&env, &r, 4);
    assert!(
        r.stdout
            .contains("warning: untrusted_pidfile: untrusted pidfile"),
        "{}",
        r.dump()
    );
}

/// The same forgery against a watchdog that is not root: another user writes, into a
/// sticky directory, the PID of a process of the watchdog's own user that is not the
/// server, with the port free. The check used to be skipped without root ("it can only
/// signal its own user's processes"), so that process was killed and replayed on the
/// word of a user who could not have signalled it. Now it is refused the same way.
#[test]
#[ignore = "needs root (runs the victim and the watchdog as other users): run by script/test as root and .ci/run"]
fn a_pidfile_forged_by_another_user_never_names_a_process_to_a_watchdog_without_root() {
    require_root();
    let env = TestEnv::new();
    let port = free_port();
    let shared = dir_with_mode(0o1777);
    let pidfile = shared.path().join("webui.pid");
    let mut sleep = Command::new("sleep");
    sleep.arg("600").current_dir("/");
    let victim = spawn_as(SERVER_USER.0, SERVER_USER.1, &sleep);
    let witness = Witness::of(victim.pid());
    run_as(
        ATTACKER,
        &format!("echo {} > {}", victim.pid(), pidfile.display()),
    );
    let mut cfg = config(&env, port, &pidfile);
    cfg.write(&env);
    let log = private_state_for(&env, SERVER_USER.0, SERVER_USER.1);
    cfg.set("log.file", log.to_string_lossy().into_owned())
        .write(&env);

    let r = run_with_timeout(
        watchdog_cmd_as(&env, SERVER_USER.0, SERVER_USER.1, &["check", "--json"]),
        WATCHDOG_TIMEOUT,
    );
    witness.assert_untouched(&r);
    assert_exit(&env, &r, 4);
    let report = report(&r);
    assert_eq!(report["target"], Value::Null, "{report:#}");
    let untrusted = detail(&report, "untrusted_pidfile");
    for says in [
        format!("PID {} is ignored", victim.pid()),
        format!("is owned by uid {}", ATTACKER.0),
        format!("runs as uid {}", SERVER_USER.0),
    ] {
        assert!(untrusted.contains(&says), "{says:?} not in {untrusted:?}");
    }
    assert_eq!(report["action"]["result"], "suppressed", "{report:#}");
}

/// The same pidfile written by root (or by the process's own owner) is believed: the
/// rule refuses only what someone else could have forged.
#[test]
#[ignore = "needs root (runs the server as another user): run by script/test as root and .ci/run"]
fn a_pidfile_of_the_processs_own_owner_in_a_sticky_dir_is_believed() {
    require_root();
    let env = TestEnv::new();
    let shared = dir_with_mode(0o1777);
    let port = free_port();
    let server = listener_as(SERVER_USER, "127.0.0.1", port, "server.py");
    let pidfile = shared.path().join("webui.pid");
    run_as(
        SERVER_USER,
        &format!("echo {} > {}", server.pid(), pidfile.display()),
    );
    config(&env, port, &pidfile)
        .set("restart.method", "none")
        .write(&env);

    let r = run_watchdog(&env, &["status", "--json"]);
    let report = report(&r);
    assert_eq!(report["target"]["pid"], server.pid(), "{report:#}");
    assert_eq!(
        report["target"]["found_by"],
        serde_json::json!(["pidfile", "port"])
    );
    assert!(
        !reason_codes(&report).contains(&"untrusted_pidfile".to_string()),
        "{report:#}"
    );
}

/// With the port free and `match = "server.py"`, an operator's `tail -f …/server.py`
/// was killed and "restarted". Now a process found by match alone that does not hold the
/// port is never signalled: with no start_command the run reports no_process, saying that
/// a matching process exists but does not hold the port (exit 4); with a start_command a
/// new server is started and the tail is still untouched.
#[test]
#[ignore = "needs root (runs the server and the operator's process as other users): run by script/test as root and .ci/run"]
fn a_match_alone_never_signals_a_process_that_does_not_hold_the_port() {
    require_root();
    let env = TestEnv::new();
    let srv = dir_with_mode(0o755);
    let script = srv.path().join("server.py");
    // Empty: tail prints it to the test's output.
    fs::write(&script, "").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).unwrap();
    let mut tail = Command::new("tail");
    tail.arg("-f").arg(&script);
    let operator = spawn_as(SERVER_USER.0, SERVER_USER.1, &tail);
    assert!(
        wait_until(Duration::from_secs(10), || cmdline(operator.pid())
            .contains("server.py")),
        "tail did not start"
    );
    let witness = Witness::of(operator.pid());
    let port = free_port();
    let mut cfg = config(&env, port, &env.pidfile);
    // `server.py` as the operator wrote it, in this test's own directory: other tests'
    // servers on this machine are named server.py too.
    let wanted = script.to_string_lossy().into_owned();
    cfg.set("target.match", wanted.clone());
    cfg.write(&env);

    let r = run_watchdog(&env, &["check", "--json"]);
    let report = assert_no_target(&env, &r, &[witness]);
    let no_process = detail(&report, "no_process");
    for says in [
        format!("{wanted:?} matches PID {}", operator.pid()),
        format!("(uid {})", SERVER_USER.0),
        format!("does not hold port {port}"),
        "never signalled".to_string(),
    ] {
        assert!(no_process.contains(&says), "{says:?} not in {no_process:?}");
    }
    assert!(
        report["action"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("set restart.start_command")),
        "{report:#}"
    );
    assert_nothing_done(&env);

    // With a way to start a server, one is started; the tail is still not touched.
    fs::write(&env.port_file, port.to_string()).unwrap();
    let start = testserver_command(&env);
    let shell = std::iter::once(start.get_program())
        .chain(start.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    cfg.set("restart.start_command", format!("exec {shell}"));
    cfg.write(&env);
    let r = run_watchdog(&env, &["check", "--json"]);
    witness.assert_untouched(&r);
    assert_exit(&env, &r, 1);
    let started = common::report(&r);
    assert_eq!(started["action"]["kind"], "start", "{started:#}");
    let started = listener_pid(port).expect("a new server holds the port");
    assert!(env.logged_pids().contains(&started), "{}", r.dump());
}

/// In the gap after a crash (the pidfile stale, the port free), a check searched every
/// command line for `match` and killed a different server of the same user listening on
/// another port. Now that server is never signalled: stale_pidfile, and no_process saying
/// the match does not hold the port (exit 4).
#[test]
#[ignore = "needs root (runs another server as the server's user): run by script/test as root and .ci/run"]
fn in_the_gap_after_a_crash_another_server_of_the_same_user_is_not_killed() {
    require_root();
    let env = TestEnv::new();
    let port = free_port();
    let other_port = free_port();
    let wanted = format!("/srv/hermes-{}/server.py", std::process::id());
    let other = listener_as(
        SERVER_USER,
        "127.0.0.1",
        other_port,
        &format!("{wanted} --staging"),
    );
    let witness = Witness::of(other.pid());
    // The crashed server's pidfile: its own owner's, naming a PID that is gone.
    let mut crashed = Command::new("true").spawn().expect("spawn true");
    let dead = crashed.id();
    crashed.wait().expect("reap true");
    fs::write(&env.pidfile, format!("{dead}\n")).unwrap();
    chown_tree(&env.pidfile, SERVER_USER.0, SERVER_USER.1);
    let mut cfg = config(&env, port, &env.pidfile);
    cfg.set("target.match", wanted);
    cfg.write(&env);

    let r = run_watchdog(&env, &["check", "--json"]);
    let report = assert_no_target(&env, &r, &[witness]);
    assert_eq!(
        detail(&report, "stale_pidfile"),
        format!(
            "stale pidfile {}: PID {dead} is not running",
            env.pidfile.display()
        )
    );
    let no_process = detail(&report, "no_process");
    assert!(
        no_process.contains(&format!("matches PID {}", other.pid()))
            && no_process.contains(&format!("does not hold port {port}")),
        "{no_process}"
    );
    assert_nothing_done(&env);
}

/// SERVER_USER's listener on 127.0.0.1 and ATTACKER's on [::1] (V6ONLY), on one free
/// port; neither answers HTTP: health fails, so a run would act if it believed either.
/// The config (one health attempt) is written. Returns both, their witnesses and the port.
fn server_and_ipv6_squatter(env: &TestEnv) -> (ChildGuard, ChildGuard, [Witness; 2], u16) {
    let port = free_port();
    let server = listener_as(SERVER_USER, "127.0.0.1", port, "hermes-server.py");
    let squatter = listener_as(ATTACKER, "::1", port, "squatter.py");
    let witnesses = [Witness::of(server.pid()), Witness::of(squatter.pid())];
    let mut cfg = config(env, port, &env.pidfile);
    cfg.set("health.attempts", 1);
    cfg.write(env);
    (server, squatter, witnesses, port)
}

/// The run left every witness alone and found no target: exit 4. Its report.
#[track_caller]
fn assert_no_target(env: &TestEnv, r: &RunResult, witnesses: &[Witness]) -> Value {
    assert_all_untouched(witnesses, r);
    assert_exit(env, r, 4);
    let report = common::report(r);
    assert_eq!(report["target"], Value::Null, "{report:#}");
    report
}

#[track_caller]
fn assert_all_untouched(witnesses: &[Witness], r: &RunResult) {
    for w in witnesses {
        w.assert_untouched(r);
    }
}

/// The real server on 127.0.0.1 and another user's process on [::1] (V6ONLY) on the same
/// port: with no history the lowest PID won, and was acted on. Now several holders that
/// are not one process tree are target_unclear: nothing is touched (exit 4), and `status`
/// (text and --json) shows every holder with its PID, user and command line.
#[test]
#[ignore = "needs root (runs the server and a squatter as two other users): run by script/test as root and .ci/run"]
fn a_squatter_on_ipv6_beside_the_server_makes_the_target_unclear() {
    require_root();
    let env = TestEnv::new();
    let (server, squatter, witnesses, port) = server_and_ipv6_squatter(&env);

    let r = run_watchdog(&env, &["check", "--json"]);
    let report = assert_no_target(&env, &r, &witnesses);
    let unclear = detail(&report, "target_unclear");
    assert!(
        unclear.contains(&format!(
            "port {port} is held by 2 processes that are not one process tree"
        )),
        "{unclear}"
    );
    assert_eq!(report["action"]["result"], "suppressed");
    let action = report["action"]["detail"].as_str().unwrap_or_default();
    assert!(
        action.starts_with("the target is not clearly identified"),
        "{action}"
    );
    for (holder, user) in [(&server, SERVER_USER), (&squatter, ATTACKER)] {
        let shown = format!("PID {} (uid {}) `", holder.pid(), user.0);
        assert!(unclear.contains(&shown), "{shown:?} not in {unclear:?}");
    }
    assert_nothing_done(&env);

    // With a history that names either holder as the last known server, the candidate
    // shortcut of the port search used to answer with it alone: now the other listener
    // of the port is still seen.
    for last in [server.pid(), squatter.pid()] {
        let mut history = read_history(&env);
        history["last_pid"] = Value::from(last);
        write_history(&env, &history);
        let r = run_watchdog(&env, &["check", "--json"]);
        assert_all_untouched(&witnesses, &r);
        assert_exit(&env, &r, 4);
        let again = common::report(&r);
        assert!(
            detail(&again, "target_unclear").contains("not one process tree"),
            "last_pid {last}: {again:#}"
        );
    }
    assert_nothing_done(&env);

    let r = run_watchdog(&env, &["status", "--json"]);
    assert_exit(&env, &r, 4);
    let status = common::report(&r);
    let holders = status["port_holders"].as_array().expect("port_holders");
    assert_eq!(holders.len(), 2, "{status:#}");
    for (holder, user, tag) in [
        (&server, SERVER_USER, "hermes-server.py"),
        (&squatter, ATTACKER, "squatter.py"),
    ] {
        let shown = holders
            .iter()
            .find(|h| h["pid"] == holder.pid())
            .unwrap_or_else(|| panic!("PID {} not in {holders:?}", holder.pid()));
        assert_eq!(shown["uid"], user.0);
        assert_eq!(
            shown["argv"].as_array().and_then(|a| a.last()),
            Some(&Value::from(tag))
        );
    }

    let r = run_watchdog(&env, &["status"]);
    assert_all_untouched(&witnesses, &r);
    assert_exit(&env, &r, 4);
    // The text cuts long command lines; the --json report above has them whole.
    for (holder, user) in [(&server, SERVER_USER), (&squatter, ATTACKER)] {
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("holder    PID {} (uid {})", holder.pid(), user.0)))
            .unwrap_or_else(|| panic!("no holder line for PID {}\n{}", holder.pid(), r.dump()));
        assert!(line.contains("python3 -c import socket"), "{line}");
    }
}

/// The same squatter, seen by a watchdog that runs as the server's owner: it cannot read
/// the attacker's process, but sees in the socket table that another listener of the port
/// is held by no process it can read. That too is target_unclear (exit 4), never "the
/// server is the only holder".
#[test]
#[ignore = "needs root (runs the watchdog and a squatter as other users): run by script/test as root and .ci/run"]
fn a_squatter_the_watchdog_cannot_read_still_makes_the_target_unclear() {
    require_root();
    let env = TestEnv::new();
    let (server, _squatter, witnesses, port) = server_and_ipv6_squatter(&env);
    chown_tree(&env.root, SERVER_USER.0, SERVER_USER.1);

    let cmd = watchdog_cmd_as(&env, SERVER_USER.0, SERVER_USER.1, &["check", "--json"]);
    let r = run_with_timeout(cmd, WATCHDOG_TIMEOUT);
    let report = assert_no_target(&env, &r, &witnesses);
    let unclear = detail(&report, "target_unclear");
    for says in [
        format!(
            "port {port} is held by PID {} (uid {})",
            server.pid(),
            SERVER_USER.0
        ),
        "also by a process this user cannot read".to_string(),
        "run the watchdog as root".to_string(),
    ] {
        assert!(unclear.contains(&says), "{says:?} not in {unclear:?}");
    }
    assert_nothing_done(&env);
}
