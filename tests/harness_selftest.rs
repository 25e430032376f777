//! Self-tests of the harness and the test server: none of these runs the watchdog, so they
//! pass before the binary works. If one fails, the end-to-end tests cannot be trusted.

mod common;

use std::fs;
use std::process::Command;
use std::time::Duration;

use common::*;

fn start(env: &TestEnv) -> TestServer {
    TestServer::start(env, ServerOpts::default())
}

#[test]
fn health_answers_200_with_hermes_json() {
    let env = TestEnv::new();
    let server = start(&env);
    let r = http_get(&server.url, Duration::from_secs(5)).expect("GET /health");
    assert_eq!(r.status, 200, "{}", r.text());
    let doc = r.json();
    assert_eq!(doc["status"], "ok");
    for key in [
        "sessions",
        "active_streams",
        "active_runs",
        "uptime_seconds",
    ] {
        assert!(doc[key].is_u64(), "{key} missing or not a count in {doc}");
    }
    assert!(r.text().contains("\"status\": \"ok\""), "{}", r.text());
    assert!(healthy(&server.url));
    // The harness found the listener by /proc/net/tcp and agrees with the pidfile.
    assert_eq!(listener_pid(server.port), Some(server.pid));
    assert_eq!(env.pidfile_pid(), Some(server.pid));
    assert_eq!(env.logged_pids(), vec![server.pid]);
}

/// What one SQLite connection in WAL mode really holds open, measured through
/// /proc/PID/fd: the first connection opens state.db, state.db-wal and state.db-shm (3
/// FDs, the -shm also mmapped); every further connection in the same process opens its
/// own state.db and state.db-wal (2 FDs) and shares the process's one -shm FD.
/// N connections therefore hold 2N + 1 FDs whose path contains "state.db".
// Linux only: the -shm mapping is read from /proc/PID/maps.
#[cfg(target_os = "linux")]
#[test]
fn leak_opens_real_sqlite_wal_handles() {
    let env = TestEnv::new();
    let server = start(&env);
    let pid = server.pid;
    assert_eq!(count_fds_matching(pid, "state.db"), 0);

    leak(&server, 1);
    let targets = fd_targets(pid);
    let count_exact = |suffix: &str| {
        let want = env.db_dir.join(suffix);
        targets
            .iter()
            .filter(|t| t.as_str() == want.to_str().unwrap())
            .count()
    };
    assert_eq!(count_exact("state.db"), 1, "{targets:?}");
    assert_eq!(count_exact("state.db-wal"), 1, "{targets:?}");
    assert_eq!(count_exact("state.db-shm"), 1, "{targets:?}");
    assert_eq!(count_fds_matching(pid, "state.db"), 3);
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    assert!(
        maps.contains("state.db-shm"),
        "-shm is not mmapped:\n{maps}"
    );

    leak(&server, 1);
    assert_eq!(count_fds_matching(pid, "state.db"), 5);
    assert_eq!(count_fds_matching(pid, "state.db-shm"), 1);

    let reported = leak(&server, 10);
    assert_eq!(count_fds_matching(pid, "state.db"), 2 * 12 + 1);
    assert_eq!(count_fds_matching(pid, "state.db-wal"), 12);
    // The count the server reports is its own /proc/self/fd listing (which includes the
    // listing's own FD and the request's socket): close to ours.
    let ours = fd_count(pid);
    assert!(
        reported.abs_diff(ours) <= 3,
        "server says {reported} FDs, /proc says {ours}"
    );
}

#[test]
fn plain_files_raise_the_total_but_not_state_db() {
    let env = TestEnv::new();
    let server = start(&env);
    let before = fd_count(server.pid);
    leak_files(&server, 40);
    let after = fd_count(server.pid);
    assert!(after >= before + 40, "{before} -> {after}");
    assert_eq!(count_fds_matching(server.pid, "state.db"), 0);
    assert_eq!(count_fds_matching(server.pid, "plain-file.txt"), 40);
    let reported: usize = server.control("/control/fds").trim().parse().unwrap();
    assert!(reported.abs_diff(after) <= 3, "{reported} vs {after}");
}

#[test]
fn mode_503_answers_degraded() {
    let env = TestEnv::new();
    let server = start(&env);
    set_mode(&env, "503");
    let r = http_get(&server.url, Duration::from_secs(5)).expect("GET /health");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["status"], "degraded");
    assert!(!healthy(&server.url));
    set_mode(&env, "ok");
    assert!(healthy(&server.url));
}

/// In `mode`, /health never completes: a GET bounded at 1 s gives up with "timed out",
/// which `http_get` says only when its whole-request deadline fired (no wall-clock
/// assertion needed), and the control endpoints still answer meanwhile.
#[track_caller]
fn assert_health_times_out(mode: &str) {
    let env = TestEnv::new();
    let server = start(&env);
    set_mode(&env, mode);
    let r = http_get(&server.url, Duration::from_secs(1));
    assert_eq!(
        r.as_ref().err().map(String::as_str),
        Some("timed out"),
        "mode {mode}: {r:?}"
    );
    server.control("/control/fds");
}

#[test]
fn mode_hang_accepts_and_never_answers() {
    assert_health_times_out("hang");
}

#[test]
fn mode_reset_resets_the_connection() {
    let env = TestEnv::new();
    let server = start(&env);
    set_mode(&env, "reset");
    let r = http_get(&server.url, Duration::from_secs(5));
    let err = r.expect_err("a reset must not produce a response");
    assert!(err.contains("reset"), "{err}");
}

#[test]
fn mode_dribble_sends_headers_then_one_byte_per_second() {
    assert_health_times_out("dribble");
}

#[test]
fn mode_big_sends_a_body_over_one_mib() {
    let env = TestEnv::new();
    let server = start(&env);
    set_mode(&env, "big");
    let r = http_get(&server.url, Duration::from_secs(20)).expect("GET /health");
    assert_eq!(r.status, 200);
    assert!(r.body.len() > 1024 * 1024, "{} bytes", r.body.len());
    assert!(r.truncated);
    // Still serving after the client hung up mid-body.
    set_mode(&env, "ok");
    assert!(healthy(&server.url));
}

#[test]
fn mode_nobody_answers_200_without_the_expected_body() {
    let env = TestEnv::new();
    let server = start(&env);
    set_mode(&env, "nobody");
    let r = http_get(&server.url, Duration::from_secs(5)).expect("GET /health");
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("\"status\": \"ok\""), "{}", r.text());
}

#[test]
fn memory_mode_wins_over_the_file_and_does_not_persist() {
    let env = TestEnv::new();
    let server = start(&env);
    server.set_memory_mode("503");
    assert_eq!(
        http_get(&server.url, Duration::from_secs(5))
            .unwrap()
            .status,
        503
    );
    set_mode(&env, "503");
    server.set_memory_mode("ok");
    assert_eq!(
        http_get(&server.url, Duration::from_secs(5))
            .unwrap()
            .status,
        200
    );
    server.set_memory_mode("");
    assert_eq!(
        http_get(&server.url, Duration::from_secs(5))
            .unwrap()
            .status,
        503
    );
    set_mode(&env, "ok");

    // A new process on the same files starts without the in-memory mode.
    server.set_memory_mode("hang");
    server.signal(libc::SIGKILL);
    assert!(wait_until(Duration::from_secs(10), || server
        .exit_status()
        .is_some()));
    let second = start(&env);
    assert!(healthy(&second.url));
}

// Linux only: signals pending are read from /proc/PID/status.
#[cfg(target_os = "linux")]
#[test]
fn sigstopped_server_accepts_but_never_answers() {
    let env = TestEnv::new();
    let server = start(&env);
    server.signal(libc::SIGSTOP);
    assert!(wait_until(Duration::from_secs(5), || is_stopped(
        server.pid
    )));
    let r = http_get(&server.url, Duration::from_secs(1));
    assert_eq!(
        r.as_ref().err().map(String::as_str),
        Some("timed out"),
        "{r:?}"
    );
    // SIGTERM stays pending on a stopped process; SIGKILL still ends it.
    server.signal(libc::SIGTERM);
    thread_sleep(300);
    assert!(is_alive(server.pid) && is_stopped(server.pid));
    assert_ne!(pending_signals(server.pid) & (1 << (libc::SIGTERM - 1)), 0);
    server.signal(libc::SIGKILL);
    assert!(wait_until(Duration::from_secs(10), || !is_alive(
        server.pid
    )));
}

#[test]
fn ignore_sigterm_survives_sigterm_and_plain_server_does_not() {
    let env = TestEnv::new();
    let stubborn = TestServer::start(
        &env,
        ServerOpts {
            ignore_sigterm: true,
            ..ServerOpts::default()
        },
    );
    stubborn.signal(libc::SIGTERM);
    thread_sleep(1000);
    assert!(is_alive(stubborn.pid));
    assert!(healthy(&stubborn.url));
    stubborn.signal(libc::SIGKILL);
    assert!(wait_until(Duration::from_secs(10), || stubborn
        .exit_status()
        .is_some()));

    let plain = start(&env);
    plain.signal(libc::SIGTERM);
    assert!(wait_until(Duration::from_secs(10), || !is_alive(plain.pid)));
}

#[test]
fn port_file_is_reused_and_bind_waits_for_the_old_process() {
    let env = TestEnv::new();
    let first = start(&env);
    let port = first.port;
    assert_eq!(
        fs::read_to_string(&env.port_file).unwrap().trim(),
        port.to_string()
    );

    // Started while the first still holds the port: the second retries the bind...
    let mut cmd = testserver_command(&env);
    cmd.arg("--pidfile")
        .arg(&env.pidfile)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut second = ChildGuard::spawn(&mut cmd);
    assert!(wait_until(Duration::from_secs(10), || env
        .logged_pids()
        .len()
        == 2));
    thread_sleep(500);
    assert_eq!(second.0.try_wait().unwrap(), None, "second server gave up");
    assert_eq!(listener_pid(port), Some(first.pid));

    // ... and binds the same port once the first is gone.
    first.signal(libc::SIGKILL);
    assert!(
        wait_until(Duration::from_secs(15), || listener_pid(port)
            == Some(second.pid())),
        "second server did not take over port {port}"
    );
    assert!(healthy(&first.url));
    assert_eq!(env.pidfile_pid(), Some(second.pid()));
    assert_eq!(env.logged_pids(), vec![first.pid, second.pid()]);
}

#[test]
fn startup_delay_delays_the_bind() {
    let env = TestEnv::new();
    let server = TestServer::start(
        &env,
        ServerOpts {
            startup_delay: Some(1.0),
            ..ServerOpts::default()
        },
    );
    assert!(healthy(&server.url));
}

#[test]
fn cleanup_kills_every_logged_server_and_nothing_else() {
    let env = TestEnv::new();
    let direct = start(&env);
    let direct_pid = direct.pid;

    // A server that is not our child, like one the watchdog respawned in a new session.
    let other_port_file = env.root.join("orphan.port");
    let q = |p: &std::path::Path| sh_quote(&p.display().to_string());
    let script = format!(
        "{py} {srv} --port-file {pf} --pid-log {pl} --db {db} >{log} 2>&1 </dev/null &",
        py = sh_quote(python()),
        srv = q(&testserver_script()),
        pf = q(&other_port_file),
        pl = q(&env.pid_log),
        db = q(&env.db_dir),
        log = q(&env.root.join("orphan.log")),
    );
    let st = Command::new("sh").arg("-c").arg(&script).status().unwrap();
    assert!(st.success());
    assert!(wait_until(Duration::from_secs(20), || other_port_file
        .exists()
        && env.logged_pids().len() == 2));
    let orphan_pid = env.logged_pids()[1];
    assert!(is_testserver(orphan_pid));

    // A PID in the log that is not a test server (as after PID reuse) is left alone.
    let sleeper = spawn_sleep();
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(&env.pid_log)
        .unwrap();
    std::io::Write::write_all(&mut f, format!("{}\n", sleeper.pid()).as_bytes()).unwrap();

    let root = env.root.clone();
    drop(direct);
    assert!(!is_alive(direct_pid), "direct child survived its guard");
    assert!(is_testserver(orphan_pid));
    drop(env);
    assert!(!is_alive(orphan_pid), "respawned server survived cleanup");
    assert!(
        is_alive(sleeper.pid()),
        "cleanup killed a non-test-server PID"
    );
    assert!(!root.exists(), "temp dir left behind");
}

#[test]
fn cleanup_leaves_another_envs_server_alone() {
    let env = TestEnv::new();
    let other_env = TestEnv::new();
    let other = start(&other_env);
    // As after PID reuse across parallel tests: this env's log names the other's server.
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&env.pid_log)
        .unwrap();
    std::io::Write::write_all(&mut f, format!("{}\n", other.pid).as_bytes()).unwrap();
    assert!(is_testserver(other.pid));
    assert!(!is_testserver_of(&env.pid_log, other.pid));
    assert!(is_testserver_of(&other_env.pid_log, other.pid));
    assert!(!kill_if_testserver(&env.pid_log, other.pid, libc::SIGKILL));
    drop(env);
    assert!(
        is_testserver(other.pid),
        "cleanup killed another env's test server"
    );
    assert!(healthy(&other.url));
}

#[test]
fn run_with_timeout_kills_a_hung_command() {
    let mut cmd = Command::new("sleep");
    cmd.arg("30");
    let r = run_with_timeout(cmd, Duration::from_secs(1));
    // timed_out is set only once the deadline passed, and status None says it was killed.
    assert!(r.timed_out, "{}", r.dump());
    assert_eq!(r.status, None);

    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
    let r = run_with_timeout(cmd, Duration::from_secs(10));
    assert!(!r.timed_out);
    assert_eq!(r.status, Some(3));
    assert_eq!(r.stdout, "out\n");
    assert_eq!(r.stderr, "err\n");
}

/// The PID a helper's `sh -c` wrote to `file` once it has (bounded).
fn background_pid(file: &std::path::Path) -> u32 {
    let mut pid = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            pid = fs::read_to_string(file)
                .ok()
                .and_then(|t| t.trim().parse().ok());
            pid.is_some()
        }),
        "the helper never wrote its background PID to {}",
        file.display()
    );
    pid.unwrap()
}

#[test]
fn a_timeout_and_a_dropped_guard_kill_the_whole_process_group() {
    let env = TestEnv::new();
    // A background `sleep` the shell leaves in its (the helper's) process group.
    let script = |file: &std::path::Path| {
        format!(
            "sleep 300 >/dev/null 2>&1 </dev/null & echo $! >{}; wait",
            sh_quote(&file.display().to_string())
        )
    };

    let file = env.root.join("timed-out.pid");
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script(&file));
    let r = run_with_timeout(cmd, Duration::from_secs(2));
    assert!(r.timed_out, "{}", r.dump());
    let left = background_pid(&file);
    assert!(
        wait_until(Duration::from_secs(5), || !is_alive(left)),
        "the timed-out helper's background PID {left} survived"
    );

    let file = env.root.join("guarded.pid");
    let guard = ChildGuard::spawn(Command::new("sh").arg("-c").arg(script(&file)));
    let left = background_pid(&file);
    assert!(is_alive(left));
    drop(guard);
    assert!(
        wait_until(Duration::from_secs(5), || !is_alive(left)),
        "the dropped guard's background PID {left} survived"
    );
}

// Linux only: is_locked reads /proc/locks.
#[cfg(target_os = "linux")]
#[test]
fn is_locked_sees_a_held_flock() {
    let env = TestEnv::new();
    let path = env.root.join("lock");
    let f = fs::File::create(&path).unwrap();
    assert!(!is_locked(&path));
    f.try_lock().expect("flock");
    assert!(is_locked(&path));
    f.unlock().unwrap();
    assert!(!is_locked(&path));
}

#[test]
fn base_config_and_its_bound() {
    let env = TestEnv::new();
    let server = start(&env);
    let mut cfg = env.base_config(&server);
    let text = cfg.write(&env);
    assert_eq!(fs::read_to_string(&env.config_path).unwrap(), text);
    let parsed: toml::Table = text.parse().unwrap();
    assert_eq!(parsed["files"].as_array().map(Vec::len), Some(0), "{text}");
    assert_eq!(
        parsed["target"]["port"].as_integer(),
        Some(server.port as i64)
    );
    assert_eq!(parsed["health"]["url"].as_str(), Some(server.url.as_str()));
    assert!(
        parsed["log"]["file"]
            .as_str()
            .unwrap()
            .starts_with(env.root.to_str().unwrap())
    );
    assert!(
        parsed["state"]["dir"]
            .as_str()
            .unwrap()
            .starts_with(env.root.to_str().unwrap())
    );
    // 3 × 1 s + 2 × 0.5 s + 2 × 2 s + 5 s + 20 s + 5 s
    assert_eq!(cfg.bound_secs(), 38.0);
    cfg.set("fds.max", 150).fd_paths(&[]);
    let parsed: toml::Table = cfg.text().parse().unwrap();
    assert_eq!(parsed["fds"]["max"].as_integer(), Some(150));
    assert_eq!(parsed["fds"]["paths"].as_array().map(Vec::len), Some(0));
    assert_eq!(parse_duration_secs("500ms"), 0.5);
    assert_eq!(parse_duration_secs("2m"), 120.0);

    let text = "a = 1\n[health]\n  attempts = \"three\"\n";
    let at = locate(text, "health", "attempts", true);
    assert_eq!(&text[at..at + 7], "\"three\"");
    assert_eq!(line_col(text, at), (3, 14));
    assert_eq!(
        line_col(text, locate(text, "health", "attempts", false)),
        (3, 3)
    );
    assert_eq!(line_col(text, locate(text, "", "a", false)), (1, 1));
}

fn thread_sleep(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}
