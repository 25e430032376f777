//! A restart never leaves the server dead (docs/SECURITY.md): a root watchdog proves the
//! way back before it signals anything, and a replayed server gets back its user,
//! group and supplementary groups. Each test runs the watchdog as root against a test
//! server of `SERVER_USER`.

// Linux only: root against other users' processes through `setpriv` (util-linux) and
// /proc/PID/status, and a root-run test (the macOS CI job is not root).
#![cfg(target_os = "linux")]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A test server of `SERVER_USER`, started through `setpriv` (`wrap` puts anything
/// between setpriv and python, e.g. `bash -c 'exec -a TITLE …'`), with its port file,
/// database and working directory in `srv`, a directory that user owns. The env's PID
/// log (which the env's drop cleans up by) is handed to the user.
struct UserServer {
    guard: ChildGuard,
    port: u16,
    base: String,
}

impl UserServer {
    fn pid(&self) -> u32 {
        self.guard.pid()
    }

    fn start(env: &TestEnv, setpriv: &[&str], wrap: &[&str], cwd: &Path) -> UserServer {
        let srv = server_user_dir(env);
        let port_file = srv.join("server.port");
        let db = srv.join("db");
        fs::create_dir_all(&db).unwrap();
        fs::write(&env.pid_log, "").unwrap();
        chown_tree(&srv, SERVER_USER.0, SERVER_USER.1);
        chown_tree(&env.pid_log, SERVER_USER.0, SERVER_USER.1);
        let mut cmd = Command::new("setpriv");
        cmd.args(setpriv)
            .arg("--")
            .args(wrap)
            .arg(user_python())
            .arg(testserver_script())
            .arg("--port-file")
            .arg(&port_file)
            .arg("--pid-log")
            .arg(&env.pid_log)
            .arg("--db")
            .arg(&db)
            .current_dir(cwd);
        let log = fs::File::create(env.root.join("user-server.log")).unwrap();
        cmd.stdout(log.try_clone().unwrap()).stderr(log);
        let guard = ChildGuard::spawn(&mut cmd);
        let pid = guard.pid();
        let start = Instant::now();
        loop {
            if let Some(port) = fs::read_to_string(&port_file)
                .ok()
                .and_then(|t| t.trim().parse::<u16>().ok())
                && listener_pid(port) == Some(pid)
                && healthy(&format!("http://127.0.0.1:{port}/health"))
            {
                return UserServer {
                    guard,
                    port,
                    base: format!("http://127.0.0.1:{port}"),
                };
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the test server of uid {} did not come up; its output:\n{}",
                SERVER_USER.0,
                fs::read_to_string(env.root.join("user-server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn as_server_user() -> [String; 3] {
    [
        format!("--reuid={}", SERVER_USER.0),
        format!("--regid={}", SERVER_USER.1),
        "--clear-groups".to_string(),
    ]
}

/// A [`UserServer`] of `SERVER_USER` with no supplementary groups.
fn server_user_server(env: &TestEnv, wrap: &[&str], cwd: &Path) -> UserServer {
    let user = as_server_user();
    let setpriv: Vec<&str> = user.iter().map(String::as_str).collect();
    UserServer::start(env, &setpriv, wrap, cwd)
}

/// A [`server_user_server`] whose working directory (`srv/release-41`) was deleted
/// under it: the server, `srv` and the deleted directory.
fn server_in_deleted_cwd(env: &TestEnv) -> (UserServer, PathBuf, PathBuf) {
    let srv = server_user_dir(env);
    let work = srv.join("release-41");
    fs::create_dir(&work).unwrap();
    let server = server_user_server(env, &[], &work);
    fs::remove_dir(&work).unwrap();
    (server, srv, work)
}

/// The run restarted the server: exit 1 and a new PID on its port, returned.
#[track_caller]
fn assert_replaced(env: &TestEnv, r: &RunResult, server: &UserServer) -> u32 {
    assert_exit(env, r, 1);
    let new_pid = listener_pid(server.port).expect("a new server holds the port");
    assert_ne!(new_pid, server.pid());
    new_pid
}

/// A `restart.start_command` that starts the test server again with the files in
/// `srv` (its port file, database) and the env's PID log.
fn start_command(env: &TestEnv, srv: &Path) -> String {
    format!(
        "exec {} {} --port-file {} --pid-log {} --db {}",
        user_python(),
        testserver_script().display(),
        srv.join("server.port").display(),
        env.pid_log.display(),
        srv.join("db").display()
    )
}

fn config_for(env: &TestEnv, server: &UserServer) -> ConfigToml {
    let mut cfg = ConfigToml::for_port(env, server.port);
    cfg.remove("target.pidfile");
    cfg
}

/// `Uid:`, `Gid:` and `Groups:` of `/proc/PID/status`.
fn credentials(pid: u32) -> Vec<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .filter(|l| l.starts_with("Uid:") || l.starts_with("Gid:") || l.starts_with("Groups:"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// The run was suppressed with `cannot_restart`, exit 4, and the operator is told why
/// in the report and the log.
#[track_caller]
fn assert_cannot_restart(env: &TestEnv, r: &RunResult, pid: u32, why: &str) {
    assert_exit(env, r, 4);
    let rep = report(r);
    let action = &rep["action"];
    assert_eq!(action["result"], "suppressed", "{rep:#}");
    let detail = action["detail"].as_str().unwrap_or_default();
    assert!(
        detail
            .starts_with("nothing was signalled, because the server could not be started again: ")
            && detail.contains(&format!("PID {pid}"))
            && detail.contains(why),
        "{detail}"
    );
    let suppressed = events_named(env, "suppressed");
    assert!(
        suppressed.iter().any(|e| e.to_string().contains(why)),
        "{}",
        log_text(env)
    );
    assert_nothing_acted(env);
}

/// `server` made unhealthy (503) and checked: it is not signalled, the run is
/// [`assert_cannot_restart`] for `why`, and once healthy again it still serves.
#[track_caller]
fn assert_unhealthy_but_not_killed(env: &TestEnv, server: &UserServer, why: &str) {
    config_for(env, server).write(env);
    set_memory_mode_at(&server.base, "503");
    let witness = Witness::of(server.pid());

    let r = run_watchdog(env, &["check", "--json"]);

    witness.assert_untouched(&r);
    assert_cannot_restart(env, &r, server.pid(), why);
    set_memory_mode_at(&server.base, "");
    assert!(healthy(&format!("{}/health", server.base)), "still serving");
}

/// A process title for argv[0] (setproctitle, `exec -a`): its replay could never start,
/// so the server is not killed, and the operator is told to set start_command.
#[test]
#[ignore = "needs root (runs the server as another user): run by script/test as root and .ci/run"]
fn a_process_title_is_not_killed_for_a_replay_that_cannot_start() {
    require_root();
    let env = TestEnv::new();
    let srv = server_user_dir(&env);
    let server = server_user_server(
        &env,
        &["bash", "-c", "exec -a 'hermes: webui' \"$0\" \"$@\""],
        &srv,
    );
    assert_eq!(cmdline_args(server.pid())[0], "hermes: webui");
    assert_unhealthy_but_not_killed(
        &env,
        &server,
        "argv[0] `hermes: webui` is a process title, not a program on its PATH: set \
         restart.start_command",
    );
    assert_eq!(listener_pid(server.port), Some(server.pid()));
}

/// A working directory deleted under the running server: a replay could not start
/// there, so the server is not killed.
#[test]
#[ignore = "needs root (runs the server as another user): run by script/test as root and .ci/run"]
fn a_server_whose_cwd_was_deleted_is_not_killed() {
    require_root();
    let env = TestEnv::new();
    let (server, _, work) = server_in_deleted_cwd(&env);
    assert_unhealthy_but_not_killed(
        &env,
        &server,
        &format!(
            "working directory {} was deleted, so it cannot be started there again: \
             recreate it, or set restart.start_command",
            work.display()
        ),
    );
}

/// With start_command set, the deleted directory is no obstacle: the command runs
/// elsewhere, so the restart goes ahead (as the server's user).
#[test]
#[ignore = "needs root (restarts another user's server as that user): run by script/test as root and .ci/run"]
fn start_command_restarts_a_server_whose_cwd_was_deleted() {
    require_root();
    let env = TestEnv::new();
    let (server, srv, _) = server_in_deleted_cwd(&env);
    let start = start_command(&env, &srv);
    let mut cfg = config_for(&env, &server);
    cfg.set("restart.start_command", start.as_str()).write(&env);
    set_memory_mode_at(&server.base, "503");

    let r = run_watchdog(&env, &["check", "--json"]);

    let new_pid = assert_replaced(&env, &r, &server);
    assert_eq!(credentials(new_pid)[0], "Uid: 4242 4242 4242 4242");
}

/// A server that is down has no process to take its user from, and root ran
/// start_command as root: a server of SERVER_USER, started from that user's directory,
/// came back as root (and with it whatever that user can write there). Now the user,
/// group and groups of the server a run last saw are remembered (in the private
/// history) and the start runs as them.
#[test]
#[ignore = "needs root (starts a server as the user it last ran as): run by script/test as root and .ci/run"]
fn start_command_starts_a_server_that_is_down_as_the_user_it_last_ran_as() {
    require_root();
    let env = TestEnv::new();
    let srv = server_user_dir(&env);
    let server = server_user_server(&env, &[], &srv);
    let start = start_command(&env, &srv);
    let mut cfg = config_for(&env, &server);
    cfg.set("restart.start_command", start.as_str()).write(&env);
    let r = run_watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 0);

    let port = server.port;
    drop(server);
    assert!(
        wait_until(Duration::from_secs(10), || listener_pid(port).is_none()),
        "the server did not go away"
    );
    let r = run_watchdog(&env, &["check", "--json"]);

    assert_exit(&env, &r, 1);
    let new_pid = listener_pid(port).expect("a new server holds the port");
    let credentials = credentials(new_pid);
    assert_eq!(
        credentials[0], "Uid: 4242 4242 4242 4242",
        "{credentials:?}"
    );
    assert_eq!(
        credentials[1], "Gid: 4242 4242 4242 4242",
        "{credentials:?}"
    );
}

/// Root replays a server of SERVER_USER that runs with supplementary groups: the
/// replacement has the same uid, gid and groups, and no group of root's.
#[test]
#[ignore = "needs root (replays another user's server with its groups): run by script/test as root and .ci/run"]
fn a_replayed_server_keeps_its_user_group_and_supplementary_groups() {
    let (_, after, r) = credentials_across_restart(
        &format!("{},5000", ATTACKER.1),
        [
            "Uid: 4242 4242 4242 4242",
            "Gid: 4242 4242 4242 4242",
            "Groups: 4343 5000",
        ],
        false,
    );
    // Its own group joins its supplementary groups, as `initgroups(3)` puts it there
    // (src/probe/restart_path.rs, `Credentials::group_list`: on xnu the list must start
    // with it); nothing else is added.
    assert_eq!(
        after,
        [
            "Uid: 4242 4242 4242 4242",
            "Gid: 4242 4242 4242 4242",
            "Groups: 4242 4343 5000"
        ],
        "{}",
        r.dump()
    );
}

/// The `Gid:` and `Groups:` numbers of `credentials`.
fn group_ids(credentials: &[String]) -> Vec<u32> {
    credentials
        .iter()
        .filter(|l| l.starts_with("Gid:") || l.starts_with("Groups:"))
        .flat_map(|l| l.split_whitespace().skip(1))
        .map(|n| n.parse().unwrap())
        .collect()
}

/// A server of SERVER_USER started with the supplementary `groups` (setpriv's
/// `--groups` list), whose credentials are checked to be `expected`, made unhealthy
/// under a root watchdog whose restart goes through a replay, or through
/// `start_command` when `start` is given: the credentials before, those of the
/// replacement, and the run.
fn credentials_across_restart(
    groups: &str,
    expected: [&str; 3],
    start: bool,
) -> (Vec<String>, Vec<String>, RunResult) {
    require_root();
    let env = TestEnv::new();
    let srv = server_user_dir(&env);
    let (uid, gid) = SERVER_USER;
    let reuid = format!("--reuid={uid}");
    let regid = format!("--regid={gid}");
    let groups = format!("--groups={groups}");
    let server = UserServer::start(&env, &[&reuid, &regid, &groups], &[], &srv);
    let before = credentials(server.pid());
    assert_eq!(before, expected);
    let mut cfg = config_for(&env, &server);
    if start {
        cfg.set("restart.start_command", start_command(&env, &srv).as_str());
    }
    cfg.write(&env);
    set_memory_mode_at(&server.base, "503");

    let r = run_watchdog(&env, &["check", "--json"]);

    let new_pid = assert_replaced(&env, &r, &server);
    assert!(is_testserver(new_pid), "{}", cmdline(new_pid));
    (before, credentials(new_pid), r)
}

/// [`credentials_across_restart`] of a server started as a login would (its own group
/// among its supplementary groups, with two more): the credentials before and of the
/// replacement.
fn restored_credentials(start: bool) -> (Vec<String>, Vec<String>) {
    let (before, after, _) = credentials_across_restart(
        &format!("{},{},5000", SERVER_USER.1, ATTACKER.1),
        [
            "Uid: 4242 4242 4242 4242",
            "Gid: 4242 4242 4242 4242",
            "Groups: 4242 4343 5000",
        ],
        start,
    );
    (before, after)
}

/// Root restarting a server of another user restores its user, group and
/// supplementary groups exactly, by replay and by `start_command` alike, and group 0
/// (root's, wheel on macOS) is in none of them. std's `Command::uid`/`gid` would have
/// cleared the groups (`setgroups(0)`; on xnu that list is `{0}` and makes group 0 the
/// effective group): the identity is set by hand (src/act/spawn.rs).
#[test]
#[ignore = "needs root (replays another user's server with its groups): run by script/test as root and .ci/run"]
fn a_replay_restores_the_servers_groups_and_never_group_0() {
    let (before, after) = restored_credentials(false);
    assert_eq!(after, before);
    assert!(!group_ids(&after).contains(&0), "{after:?}");
}

/// [`a_replay_restores_the_servers_groups_and_never_group_0`], through `start_command`.
#[test]
#[ignore = "needs root (starts another user's server with its groups): run by script/test as root and .ci/run"]
fn start_command_restores_the_servers_groups_and_never_group_0() {
    let (before, after) = restored_credentials(true);
    assert_eq!(after, before);
    assert!(!group_ids(&after).contains(&0), "{after:?}");
}

/// `XPC_SERVICE_NAME` and `XPC_FLAGS`, set by launchd in the watchdog's environment
/// under a LaunchAgent, and carried by a server's own environment when leaked into it,
/// reach no server the watchdog starts: with them, the next run would take the server
/// for a process of the watchdog's own launchd job (src/command.rs,
/// `without_launchd_job`). The rest of the environment is kept. `start`: through
/// `start_command` (which inherits the watchdog's environment), else a replay (of the
/// server's own). Returns the replacement's environment.
fn environment_of_replacement(start: bool) -> Vec<String> {
    require_root();
    let env = TestEnv::new();
    let srv = server_user_dir(&env);
    let leaked = [
        "env",
        "XPC_SERVICE_NAME=com.example.leaked",
        "XPC_FLAGS=1",
        "SERVER_KEPT=kept",
    ];
    let server = server_user_server(&env, &leaked, &srv);
    let before = environ(server.pid());
    assert!(
        before.contains(&"XPC_SERVICE_NAME=com.example.leaked".to_string())
            && before.contains(&"SERVER_KEPT=kept".to_string()),
        "{before:?}"
    );
    let mut cfg = config_for(&env, &server);
    // Named, not detected: on Linux a label is no launchd job, and the start under test
    // is the builtin one.
    cfg.set("restart.method", "builtin");
    if start {
        cfg.set("restart.start_command", start_command(&env, &srv).as_str());
    }
    cfg.write(&env);
    set_memory_mode_at(&server.base, "503");

    let r = check_as_launch_agent(&env);

    let new_pid = assert_replaced(&env, &r, &server);
    assert!(is_testserver(new_pid), "{}", cmdline(new_pid));
    let after = environ(new_pid);
    assert!(
        !after
            .iter()
            .any(|v| v.starts_with("XPC_SERVICE_NAME=") || v.starts_with("XPC_FLAGS=")),
        "launchd's job variables reached the new server: {after:?}\n{}",
        r.dump()
    );
    after
}

/// `watchdog check --json` as under a LaunchAgent: launchd's job variables
/// (`XPC_SERVICE_NAME`, `XPC_FLAGS`) in its environment, and `WATCHDOG_KEPT=kept`, a
/// variable of its own to look for where it starts something.
fn check_as_launch_agent(env: &TestEnv) -> RunResult {
    let mut cmd = watchdog_cmd(env, &["check", "--json"]);
    cmd.env("XPC_SERVICE_NAME", "com.example.watchdog")
        .env("XPC_FLAGS", "1")
        .env("WATCHDOG_KEPT", "kept");
    run_with_timeout(cmd, WATCHDOG_TIMEOUT)
}

#[test]
#[ignore = "needs root (replays another user's server): run by script/test as root and .ci/run"]
fn a_replayed_server_gets_no_launchd_job_variables() {
    let after = environment_of_replacement(false);
    // Its own environment, less launchd's variables: none of the watchdog's.
    assert!(after.contains(&"SERVER_KEPT=kept".to_string()), "{after:?}");
    assert!(
        !after.contains(&"WATCHDOG_KEPT=kept".to_string()),
        "{after:?}"
    );
}

#[test]
#[ignore = "needs root (starts another user's server): run by script/test as root and .ci/run"]
fn start_command_gets_no_launchd_job_variables() {
    let after = environment_of_replacement(true);
    // The watchdog's environment, less launchd's variables.
    assert!(
        after.contains(&"WATCHDOG_KEPT=kept".to_string()),
        "{after:?}"
    );
}

/// `restart.command` (and so every tool run through src/command.rs: launchctl,
/// systemctl, supervisorctl, sv) gets the watchdog's environment without launchd's
/// job variables. The command here only records its environment; the server stays
/// unhealthy, so the restart is reported failed.
#[test]
#[ignore = "needs root (runs the restart command of another user's server): run by script/test as root and .ci/run"]
fn a_restart_command_gets_no_launchd_job_variables() {
    require_root();
    let env = TestEnv::new();
    let srv = server_user_dir(&env);
    let server = server_user_server(&env, &[], &srv);
    let seen = env.root.join("command-env");
    let mut cfg = config_for(&env, &server);
    cfg.set("restart.method", "command")
        .set(
            "restart.command",
            format!("env > {}", seen.display()).as_str(),
        )
        .set("restart.verify_timeout", "1s")
        .write(&env);
    set_memory_mode_at(&server.base, "503");

    let r = check_as_launch_agent(&env);

    assert_exit(&env, &r, 3);
    let vars = fs::read_to_string(&seen).unwrap_or_default();
    let vars: Vec<&str> = vars.lines().collect();
    assert!(
        vars.contains(&"WATCHDOG_KEPT=kept"),
        "{vars:?}\n{}",
        r.dump()
    );
    assert!(
        !vars
            .iter()
            .any(|v| v.starts_with("XPC_SERVICE_NAME=") || v.starts_with("XPC_FLAGS=")),
        "launchd's job variables reached restart.command: {vars:?}"
    );
}

/// A server started with an empty environment (`env -i`; on macOS an environment the
/// kernel hides can read as empty) is not replayed bare, without PATH or HOME: it is
/// not killed, and the operator is told to set start_command.
#[test]
#[ignore = "needs root (runs the server as another user): run by script/test as root and .ci/run"]
fn a_server_with_an_empty_environment_is_not_killed_for_a_bare_replay() {
    require_root();
    let env = TestEnv::new();
    let srv = server_user_dir(&env);
    let server = server_user_server(&env, &["env", "-i"], &srv);
    assert_eq!(environ(server.pid()), Vec::<String>::new());
    assert_unhealthy_but_not_killed(
        &env,
        &server,
        &format!(
            "PID {}'s environment is empty (started with `env -i`, or hidden by the \
             kernel), so a replay would start it without PATH, HOME or anything it was \
             given: set restart.start_command (or restart.method, if a supervisor starts it)",
            server.pid()
        ),
    );
}

/// A watchdog that is not root can start a replacement only with its own groups: a
/// server of its user that runs with a group the watchdog lacks is not killed, since
/// its replacement would lose that group.
#[test]
#[ignore = "needs root (runs the server and the watchdog as another user with other groups): run by script/test as root and .ci/run"]
fn a_watchdog_without_root_does_not_replay_groups_it_lacks() {
    require_root();
    let env = TestEnv::new();
    let srv = server_user_dir(&env);
    let (uid, gid) = SERVER_USER;
    let reuid = format!("--reuid={uid}");
    let regid = format!("--regid={gid}");
    let server = UserServer::start(&env, &[&reuid, &regid, "--groups=5000"], &[], &srv);
    // The watchdog runs as the same user, without group 5000: its state and log live
    // in the user's directory.
    let mut cfg = config_for(&env, &server);
    let state = srv.join("watchdog-state");
    let log = srv.join("watchdog.log");
    cfg.set("state.dir", state.to_str().unwrap())
        .set("log.file", log.to_str().unwrap())
        .write(&env);
    set_memory_mode_at(&server.base, "503");
    let witness = Witness::of(server.pid());

    let mut cmd = Command::new("setpriv");
    cmd.args([&reuid, &regid, "--clear-groups", "--"])
        .arg(watchdog_bin())
        .args(["check", "--json", "--config"])
        .arg(&env.config_path)
        .current_dir(&srv)
        .env("HOME", &srv)
        .env_remove("WATCHDOG_CONFIG");
    let r = run_with_timeout(cmd, WATCHDOG_TIMEOUT);

    witness.assert_untouched(&r);
    assert_eq!(r.status, Some(4), "{}", r.dump());
    let rep: serde_json::Value = serde_json::from_str(&r.stdout).expect("a JSON report");
    let detail = rep["action"]["detail"].as_str().unwrap_or_default();
    assert_eq!(
        detail,
        format!(
            "nothing was signalled, because the server could not be started again: PID {} \
             runs with group(s) 5000 that the watchdog (uid {uid}) does not have, so its \
             replacement would lose them: run the watchdog as root, or set \
             restart.start_command",
            server.pid()
        ),
        "{rep:#}"
    );
    set_memory_mode_at(&server.base, "");
    assert!(healthy(&format!("{}/health", server.base)), "still serving");
}
