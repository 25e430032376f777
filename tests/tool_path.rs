//! End-to-end tests of where the watchdog finds a supervisor's command-line tool
//! (docs/DESIGN.md, "Supervisors"; docs/SECURITY.md, "Never kill what cannot be
//! started"): under cron's environment (`env -i PATH=/usr/bin:/bin`) a `supervisorctl`
//! installed by pip or in a virtualenv is on no PATH the watchdog has, so it is looked
//! for beside the supervisord that runs the job; and root runs it only when no other
//! user could replace it.
//!
//! A REAL supervisord runs the test server, started the way pip installs it: a script
//! `supervisord` whose `#!` names the interpreter, in a directory of the test's (not on
//! `/usr/bin:/bin`, nor in the directories the watchdog adds to PATH), with its
//! `supervisorctl` beside it. Needs `pip install supervisor` and root (the second test
//! gives the directory to another user).

#![cfg(target_os = "linux")]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const UP_TIMEOUT: Duration = Duration::from_secs(30);
const JOB: &str = "hermes:webui";
/// cron's environment: this PATH and nothing else.
const CRON_PATH: &str = "/usr/bin:/bin";

/// `supervisord` and `supervisorctl` as pip installs them, in `env.root/pipbin` (mode
/// 0755, root's): Python scripts naming the interpreter that has supervisor. The
/// supervisorctl also leaves `ran-supervisorctl` in the temp dir, so a test can tell
/// whether it was run at all.
fn pip_scripts(env: &TestEnv) -> PathBuf {
    let bin = env.root.join("pipbin");
    fs::create_dir(&bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    let mark = env.root.join("ran-supervisorctl");
    for (name, module, extra) in [
        ("supervisord", "supervisor.supervisord", String::new()),
        (
            "supervisorctl",
            "supervisor.supervisorctl",
            format!(
                "open({:?}, 'a').write('ran\\n')\n",
                mark.display().to_string()
            ),
        ),
    ] {
        write_script(
            &bin.join(name),
            &format!(
                "#!{}\nimport sys\n{extra}from {module} import main\nsys.exit(main())\n",
                python()
            ),
        );
    }
    bin
}

/// supervisord started from `bin/supervisord` (its argv is `PYTHON BIN/supervisord -n
/// -c CONF`), running the test server as `hermes:webui`; returns it, the server's PID
/// and port.
fn supervised_server(env: &TestEnv, bin: &Path) -> (Supervisord, u32, u16) {
    let extra = format!("directory = {}\nstartsecs = 1\n", env.root.display());
    let programs = format!(
        "{}{}",
        program(env, "webui", &sh_words(&testserver_argv(env)), &extra),
        group(&["webui"])
    );
    let sup = Supervisord::start_via(env, "", &programs, Command::new(bin.join("supervisord")));
    let job_pid = sup.wait_state(JOB, "RUNNING");
    let (pid, port) = wait_for_server(env, UP_TIMEOUT, None);
    assert_eq!(job_pid, Some(pid), "supervisord runs the server itself");
    (sup, pid, port)
}

/// The watchdog as cron runs it: `env -i PATH=/usr/bin:/bin`, the config and the temp
/// dir as its working directory, nothing else.
fn cron_run(env: &TestEnv, args: &[&str]) -> RunResult {
    let mut cmd = Command::new(watchdog_bin());
    cmd.args(args)
        .arg("--config")
        .arg(&env.config_path)
        .env_clear()
        .env("PATH", CRON_PATH)
        .current_dir(&env.root);
    run_with_timeout(cmd, Duration::from_secs(60))
}

/// Leaks FDs past `fds.max` so that a check restarts the server.
fn leak(env: &TestEnv, port: u16, pid: u32) {
    let mut cfg = ConfigToml::for_port(env, port);
    cfg.set("restart.method", "auto");
    cfg.set("fds.max", 150);
    cfg.write(env);
    control(&format!("http://127.0.0.1:{port}"), "/control/leak?n=80");
    assert!(fd_count(pid) >= 150, "precondition: leak too small");
}

#[test]
#[ignore = "needs supervisord (pip install supervisor): run by script/test --all and .ci/run"]
fn under_crons_path_supervisorctl_beside_supervisord_restarts_the_job() {
    let env = TestEnv::new();
    let bin = pip_scripts(&env);
    // The precondition of the bug: cron's PATH has no supervisorctl.
    assert_eq!(
        [
            "/usr/bin",
            "/bin",
            "/usr/local/bin",
            "/usr/local/sbin",
            "/usr/sbin",
            "/sbin"
        ]
        .iter()
        .find(|d| Path::new(d).join("supervisorctl").exists()),
        None,
        "a supervisorctl on cron's PATH would make this test prove nothing"
    );
    let (sup, pid, port) = supervised_server(&env, &bin);
    leak(&env, port, pid);

    let r = cron_run(&env, &["check", "--json"]);
    assert_exit(&env, &r, 1);
    let rep = report(&r);
    let ctl = bin.join("supervisorctl").display().to_string();
    let detail = rep["action"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!("{ctl} -s {} restart {JOB}", sup.url)),
        "the restart ran the supervisorctl beside supervisord: {rep:#}"
    );
    assert!(
        env.root.join("ran-supervisorctl").exists(),
        "that supervisorctl really ran"
    );
    let new_pid = sup.wait_running(JOB);
    assert_ne!(new_pid, pid, "the job still runs the old PID");
    assert_eq!(rep["action"]["new_pid"], new_pid, "{rep:#}");
    assert!(
        wait_until(Duration::from_secs(10), || listener_pid(port)
            == Some(new_pid)),
        "the new server does not listen on {port}"
    );
    assert!(
        wait_until(Duration::from_secs(10), || !is_alive(pid)),
        "the old server PID {pid} is still alive"
    );
}

/// A supervisorctl beside supervisord in a directory another user owns could be theirs
/// to replace: a root watchdog does not run it, falls back to PATH (where there is
/// none), and says why; the server is never signalled (exit 4: unhealthy, not acted on,
/// as for any restart that could not start the server again).
#[test]
#[ignore = "needs root and supervisord (chowns supervisorctl to another user; pip install supervisor): run by script/test as root and .ci/run"]
fn a_supervisorctl_another_user_could_replace_is_not_run_by_root() {
    require_root();
    let env = TestEnv::new();
    let bin = pip_scripts(&env);
    let (sup, pid, port) = supervised_server(&env, &bin);
    chown_tree(&bin, ATTACKER.0, ATTACKER.1);
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    leak(&env, port, pid);
    let witness = Witness::of(pid);

    let r = cron_run(&env, &["check", "--json"]);
    assert_exit(&env, &r, 4);
    witness.assert_untouched(&r);
    assert!(
        !env.root.join("ran-supervisorctl").exists(),
        "root ran a supervisorctl another user could replace"
    );
    let text = format!("{}{}", r.stdout, r.stderr);
    let ctl = bin.join("supervisorctl").display().to_string();
    for part in [
        format!(
            "the supervisorctl beside supervisord PID {} ({ctl}) is not used",
            sup.daemon.pid()
        ),
        format!("is owned by uid {}", ATTACKER.0),
        "it is looked for on PATH instead".to_string(),
        format!("`supervisorctl` is not on the watchdog's PATH ({CRON_PATH})"),
    ] {
        assert!(text.contains(&part), "missing {part:?} in:\n{}", r.dump());
    }
}
