//! State, log and incident files under a root watchdog (docs/SECURITY.md), end to end:
//! a state or log directory another user can change is refused before anything is
//! touched; links planted in a private one are never followed, dry run or not; and a
//! history that cannot be used (corrupt, oversized, a FIFO, dated in the future) fails
//! safe: moved aside, reported, and the crash-loop guard rebuilt from the log or held.
//!
//! Every test runs the watchdog binary as root (CI does), against a real test server,
//! with real symlinks, FIFOs and ownership.

// Linux only: root-run (the macOS CI job is not root), with `prlimit` and /proc for
// process facts.
#![cfg(target_os = "linux")]

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use common::*;

/// A root-owned 0600 file and a root-owned directory with a file in it that planted
/// links point at: a run that follows a link changes them.
struct Victims {
    file: PathBuf,
    dir: PathBuf,
}

impl Victims {
    fn plant(env: &TestEnv) -> Victims {
        let file = env.root.join("victim");
        fs::write(&file, "root's secret\n").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        let dir = env.root.join("victim-dir");
        fs::create_dir(&dir).unwrap();
        // Named like an incident snapshot: the prune would delete it through a link.
        fs::write(dir.join("20200101T000000.000Z-1.json"), "{}").unwrap();
        Victims { file, dir }
    }

    fn snapshot(&self) -> Vec<(PathBuf, String)> {
        let mut all = tree_snapshot(&self.file, &[]);
        all.extend(tree_snapshot(&self.dir, &[]));
        all.push((
            self.file.clone(),
            fs::read_to_string(&self.file).unwrap_or_default(),
        ));
        all
    }
}

/// Links at every name the watchdog writes in `[state] dir` (and the history's old,
/// predictable temporary name), to the victims. `owner` plants them (lchown).
fn plant_links(state: &Path, victims: &Victims, names: &[&str], owner: Option<(u32, u32)>) {
    for name in names {
        let target = if *name == "incidents" {
            &victims.dir
        } else {
            &victims.file
        };
        let link = state.join(name);
        symlink(target, &link).unwrap();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::lchown(&link, Some(uid), Some(gid)).unwrap();
        }
    }
}

const STATE_NAMES: &[&str] = &[
    "history.json",
    "history.json.tmp",
    "lock",
    "incidents",
    "server.log",
    "command.log",
];

/// What changes under the temp root while a test server merely runs (its output, its
/// database, its mode file) is left out of the "nothing changed" snapshot.
fn quiet_snapshot(env: &TestEnv, server: &TestServer) -> Vec<(PathBuf, String)> {
    tree_snapshot(
        &env.root,
        &[
            &server.log_path,
            &env.db_dir,
            &env.mode_file,
            &env.port_file,
        ],
    )
}

fn setup() -> (TestEnv, TestServer, ConfigToml) {
    require_root();
    let env = TestEnv::new();
    let server = TestServer::start(&env, ServerOpts::default());
    let cfg = env.base_config(&server);
    (env, server, cfg)
}

/// Creates `env`'s state dir with `mode` (as root: root's own).
fn make_state_dir(env: &TestEnv, mode: u32) {
    fs::create_dir(&env.state_dir).unwrap();
    fs::set_permissions(&env.state_dir, fs::Permissions::from_mode(mode)).unwrap();
}

/// Entries of `dir` whose names start with `prefix`.
fn named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

fn is_link(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

// ---------------------------------------------------------------------------------------
// A state or log directory another user can change
// ---------------------------------------------------------------------------------------

/// The attack of the issue: a world-writable `[state] dir` where another user planted
/// links to a root-owned 0600 file. Every subcommand that uses the state refuses at once
/// (exit 2), names the directory and the fix, and touches nothing anywhere: no lock, no
/// log line, no history, not the victim, dry run or not.
#[test]
#[ignore = "needs root (another user's links in a root watchdog's state dir): run by script/test as root and .ci/run"]
fn a_world_writable_state_dir_is_refused_before_anything_is_touched() {
    let (env, server, cfg) = setup();
    cfg.write(&env);
    server.set_memory_mode("503");
    let victims = Victims::plant(&env);
    make_state_dir(&env, 0o777);
    plant_links(&env.state_dir, &victims, STATE_NAMES, Some(ATTACKER));
    let witness = Witness::of(server.pid);
    let before = quiet_snapshot(&env, &server);
    let victims_before = victims.snapshot();

    for args in [
        &["check", "--json"][..],
        &["check", "--dry-run", "--json"],
        &["status", "--json"],
    ] {
        let r = run_watchdog(&env, args);
        assert_eq!(r.status, Some(2), "{args:?}\n{}", r.dump());
        let dir = env.state_dir.display().to_string();
        assert!(
            r.stderr.contains(&format!("refusing [state] dir {dir}"))
                && r.stderr.contains(&format!("chmod go-w {dir}"))
                && r.stderr.contains("Nothing was touched"),
            "the message names the dir and the fix: {args:?}\n{}",
            r.dump()
        );
        assert!(r.stdout.is_empty(), "no report: {args:?}\n{}", r.dump());
        witness.assert_untouched(&r);
        assert_eq!(
            quiet_snapshot(&env, &server),
            before,
            "{args:?}\n{}",
            r.dump()
        );
        assert_eq!(victims.snapshot(), victims_before, "{args:?}");
    }
    assert!(!env.log_file.exists(), "no log line anywhere");
}

/// A `[state] dir` that belongs to another user, even private to them: they could swap
/// anything in it. Refused with `chown` as the fix.
#[test]
#[ignore = "needs root (chowns the state dir to another user): run by script/test as root and .ci/run"]
fn a_state_dir_of_another_user_is_refused() {
    let (env, server, cfg) = setup();
    cfg.write(&env);
    make_state_dir(&env, 0o700);
    chown_tree(&env.state_dir, ATTACKER.0, ATTACKER.1);
    let before = quiet_snapshot(&env, &server);
    for args in [&["check", "--json"][..], &["status"]] {
        let r = run_watchdog(&env, args);
        assert_eq!(r.status, Some(2), "{args:?}\n{}", r.dump());
        assert!(
            r.stderr.contains(&env.state_dir.display().to_string())
                && r.stderr.contains(&format!("owned by uid {}", ATTACKER.0))
                && r.stderr.contains("chown 0"),
            "{}",
            r.dump()
        );
        assert_eq!(quiet_snapshot(&env, &server), before, "{args:?}");
    }
}

/// The log's directory is held to the same rule: a log in a world-writable directory
/// (with a link planted at the log's name) is refused before the state dir is even
/// created.
#[test]
#[ignore = "needs root (a root watchdog's log dir others can write): run by script/test as root and .ci/run"]
fn a_world_writable_log_dir_is_refused() {
    let (env, server, mut cfg) = setup();
    let victims = Victims::plant(&env);
    let logs = env.root.join("logs");
    fs::create_dir(&logs).unwrap();
    fs::set_permissions(&logs, fs::Permissions::from_mode(0o777)).unwrap();
    let log = logs.join("watchdog.log");
    symlink(&victims.file, &log).unwrap();
    cfg.set("log.file", log.to_str().unwrap()).write(&env);
    server.set_memory_mode("503");
    let witness = Witness::of(server.pid);
    let before = quiet_snapshot(&env, &server);
    let victims_before = victims.snapshot();
    for args in [&["check", "--dry-run"][..], &["check"], &["status"]] {
        let r = run_watchdog(&env, args);
        assert_eq!(r.status, Some(2), "{args:?}\n{}", r.dump());
        assert!(
            r.stderr.contains(&format!(
                "refusing the directory of [log] file {}",
                logs.display()
            )) && r.stderr.contains(&format!("chmod go-w {}", logs.display())),
            "{}",
            r.dump()
        );
        witness.assert_untouched(&r);
        assert_eq!(quiet_snapshot(&env, &server), before, "{args:?}");
        assert_eq!(victims.snapshot(), victims_before);
    }
    assert!(!env.state_dir.exists(), "the state dir was not created");
}

/// The nobody test of tests/check_cycle.rs, the other way round: a private state dir of
/// that user's own works for that user (see `private_state_for`), but the same
/// directory is refused to root, whose it is not.
#[test]
#[ignore = "needs root (runs the watchdog as another user): run by script/test as root and .ci/run"]
fn a_users_private_state_dir_is_theirs_only() {
    let (env, server, mut cfg) = setup();
    let log = private_state_for(&env, SERVER_USER.0, SERVER_USER.1);
    cfg.set("log.file", log.to_str().unwrap()).write(&env);
    let r = run_with_timeout(
        watchdog_cmd_as(&env, SERVER_USER.0, SERVER_USER.1, &["check", "--json"]),
        WATCHDOG_TIMEOUT,
    );
    assert_ne!(r.status, Some(2), "{}", r.dump());
    assert_eq!(
        fs::metadata(env.state_dir.join("history.json"))
            .unwrap()
            .uid(),
        SERVER_USER.0
    );
    let r = run_watchdog(&env, &["check", "--json"]);
    assert_eq!(r.status, Some(2), "{}", r.dump());
    assert!(r.stderr.contains("chown 0"), "{}", r.dump());
    drop(server);
}

// ---------------------------------------------------------------------------------------
// Links planted in a private state dir
// ---------------------------------------------------------------------------------------

/// Links planted before the run in a private state dir (root playing the attacker's
/// earlier access, from when the dir was still open): none is followed, neither by a
/// dry run nor by a check that restarts the server. Each is moved aside and kept; the
/// files are created afresh; the restart goes ahead (its output file too) and the
/// incident snapshot lands in a real `incidents/`.
#[test]
#[ignore = "needs root (links to root's files in a root watchdog's state dir): run by script/test as root and .ci/run"]
fn planted_links_in_a_private_state_dir_are_never_followed() {
    for dry_run in [true, false] {
        let (env, server, cfg) = setup();
        cfg.write(&env);
        server.set_memory_mode("503");
        let victims = Victims::plant(&env);
        make_state_dir(&env, 0o700);
        plant_links(&env.state_dir, &victims, STATE_NAMES, None);
        let victims_before = victims.snapshot();

        let args: &[&str] = if dry_run {
            &["check", "--dry-run", "--json"]
        } else {
            &["check", "--json"]
        };
        let r = run_watchdog(&env, args);
        assert_eq!(
            victims.snapshot(),
            victims_before,
            "dry run {dry_run}\n{}",
            r.dump()
        );
        let history = history_path(&env);
        assert!(
            fs::symlink_metadata(&history).unwrap().is_file(),
            "a new history"
        );
        let aside = named(&env.state_dir, "history.json.corrupt-");
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert!(
            is_link(&aside[0]),
            "the planted link is kept for the operator"
        );
        let lock_aside = named(&env.state_dir, "lock.unsafe-");
        assert!(lock_aside.len() == 1 && is_link(&lock_aside[0]));
        assert_eq!(
            fs::read_link(env.state_dir.join("history.json.tmp")).unwrap(),
            victims.file,
            "the old, predictable temporary name is not used any more"
        );
        let errors: Vec<Value> = events_named(&env, "warning")
            .into_iter()
            .filter(|e| e["level"] == "error")
            .collect();
        assert!(
            errors.iter().any(|e| {
                let m = e["message"].as_str().unwrap_or_default();
                m.contains("symbolic link") && m.contains("moved it aside to")
            }),
            "the unusable history is reported at error level:\n{}",
            log_text(&env)
        );
        if dry_run {
            assert_eq!(r.status, Some(4), "{}", r.dump());
            let rep = report(&r);
            assert_eq!(rep["action"]["result"], "suppressed", "{rep:#}");
            assert_untouched(&server);
            assert!(is_link(&env.state_dir.join("incidents")), "nothing acted");
        } else {
            assert_eq!(r.status, Some(1), "{}", r.dump());
            assert_restarted(&env, &server);
            let incidents = env.state_dir.join("incidents");
            let meta = fs::symlink_metadata(&incidents).unwrap();
            assert!(meta.is_dir() && meta.mode() & 0o777 == 0o700);
            assert_eq!(named(&env.state_dir, "incidents.unsafe-").len(), 1);
            assert!(
                fs::symlink_metadata(env.state_dir.join("server.log"))
                    .unwrap()
                    .is_file(),
                "the new server writes to a new server.log"
            );
            assert_eq!(named(&env.state_dir, "server.log.unsafe-").len(), 1);
            assert!(r.stderr.contains("moved it aside"), "{}", r.dump());
        }
    }
}

// ---------------------------------------------------------------------------------------
// A history that fails safe
// ---------------------------------------------------------------------------------------

/// A FIFO at history.json (nobody writes to it) would block a blocking open until the
/// failsafe: it is refused at once. `status` leaves it in place and says so; `check`
/// moves it aside and reports it, and the healthy server gives exit 0 (the failsafe's
/// exit would be 3).
#[test]
#[ignore = "needs root (a root watchdog's state dir): run by script/test as root and .ci/run"]
fn a_fifo_at_the_history_does_not_block_the_run() {
    let (env, server, cfg) = setup();
    cfg.write(&env);
    make_state_dir(&env, 0o700);
    let history = history_path(&env);
    let c = std::ffi::CString::new(history.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo touches no memory of ours.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let witness = Witness::of(server.pid);

    let r = run_watchdog(&env, &["status"]);
    assert_eq!(r.status, Some(0), "{}", r.dump());
    assert!(r.stderr.contains("a FIFO") && r.stderr.contains("left it in place"));
    assert!(
        fs::symlink_metadata(&history)
            .unwrap()
            .file_type()
            .is_fifo()
    );

    let r = run_watchdog(&env, &["check", "--json"]);
    assert_eq!(r.status, Some(0), "{}", r.dump());
    witness.assert_untouched(&r);
    let aside = named(&env.state_dir, "history.json.corrupt-");
    assert_eq!(aside.len(), 1);
    assert!(
        fs::symlink_metadata(&aside[0])
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert!(fs::symlink_metadata(&history).unwrap().is_file());
    let reported = events_named(&env, "warning");
    assert!(
        reported.iter().any(|e| e["level"] == "error"
            && e["message"].as_str().unwrap_or_default().contains("a FIFO")),
        "{}",
        log_text(&env)
    );
}

/// JSON-lines `restart` events at `ages` seconds before now, as the watchdog writes them.
fn logged_restarts(ages: &[u64]) -> String {
    ages.iter()
        .map(|age| {
            let at = std::time::SystemTime::now() - Duration::from_secs(*age);
            let ts = chrono::DateTime::<chrono::Local>::from(at)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
            format!(
                "{}\n",
                json!({"ts": ts, "level": "warning", "event": "restart", "pid": 1234,
                       "reasons": ["health_failed"], "dry_run": false,
                       "message": "restarting PID 1234 via builtin", "method": "builtin"})
            )
        })
        .collect()
}

/// The JSON events of the log, skipping the garbage lines a test planted in it.
fn events_among_garbage(env: &TestEnv, name: &str) -> Vec<Value> {
    fs::read(&env.log_file)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == name)
        .collect()
}

#[track_caller]
fn assert_crash_loop(env: &TestEnv, r: &RunResult) {
    assert_eq!(r.status, Some(4), "{}", r.dump());
    let rep = report(r);
    assert_eq!(rep["action"]["result"], "suppressed", "{rep:#}");
    let detail = rep["action"]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("crash-loop guard"), "{rep:#}");
    let suppressed = events_among_garbage(env, "suppressed");
    assert!(
        suppressed
            .last()
            .is_some_and(|e| e.to_string().contains("crash-loop guard")),
        "{}",
        r.dump()
    );
}

/// A corrupt history no longer resets the crash-loop guard: three restarts within the
/// window, recorded in the log (one in the rotated generation, among garbage lines),
/// keep it reached. The corrupt file is kept for the operator, the error names it, and
/// the count carries over to the next run.
#[test]
#[ignore = "needs root (a root watchdog's state dir): run by script/test as root and .ci/run"]
fn a_corrupt_history_keeps_the_guard_from_the_log() {
    let (env, server, cfg) = setup();
    cfg.write(&env);
    server.set_memory_mode("503");
    make_state_dir(&env, 0o700);
    let garbage = "{\"version\": 1, \"restarts\": [{\"at\": 17";
    fs::write(history_path(&env), garbage).unwrap();
    let mut rotated = env.log_file.as_os_str().to_owned();
    rotated.push(".1");
    fs::write(
        &rotated,
        format!("not json\n{}", logged_restarts(&[7200, 3000])),
    )
    .unwrap();
    fs::write(
        &env.log_file,
        format!(
            "\u{0}garbage\n{}{{\"half\": \n",
            logged_restarts(&[900, 300])
        ),
    )
    .unwrap();
    let witness = Witness::of(server.pid);

    let r = run_watchdog(&env, &["check", "--json"]);
    assert_crash_loop(&env, &r);
    witness.assert_untouched(&r);
    let aside = named(&env.state_dir, "history.json.corrupt-");
    assert_eq!(aside.len(), 1);
    assert_eq!(fs::read_to_string(&aside[0]).unwrap(), garbage);
    let error = events_among_garbage(&env, "warning")
        .into_iter()
        .find(|e| e["level"] == "error")
        .unwrap_or_else(|| panic!("no error event\n{}", r.dump()));
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("corrupt")
            && message.contains(&aside[0].display().to_string())
            && message.contains("counts 3 restart(s)"),
        "{message}"
    );
    let restarts = read_history(&env)["restarts"].as_array().unwrap().len();
    assert_eq!(restarts, 3, "the rebuilt count is kept");

    let r = run_watchdog(&env, &["check", "--json"]);
    assert_crash_loop(&env, &r);
    witness.assert_untouched(&r);
}

/// A corrupt history and a log that cannot be read (a link planted at its name, to a
/// root-owned file that must not be read or written): the guard counts as reached for
/// one window, and stays so on the next run.
#[test]
#[ignore = "needs root (a root watchdog's log linked to root's file): run by script/test as root and .ci/run"]
fn a_corrupt_history_and_an_unreadable_log_hold_the_guard() {
    let (env, server, cfg) = setup();
    cfg.write(&env);
    server.set_memory_mode("503");
    let victims = Victims::plant(&env);
    fs::write(&victims.file, logged_restarts(&[]) + "root's secret\n").unwrap();
    make_state_dir(&env, 0o700);
    fs::write(history_path(&env), "\u{0}\u{1}\u{2}").unwrap();
    symlink(&victims.file, &env.log_file).unwrap();
    let victims_before = victims.snapshot();
    let witness = Witness::of(server.pid);

    let r = run_watchdog(&env, &["check", "--json"]);
    assert_crash_loop(&env, &r);
    witness.assert_untouched(&r);
    assert_eq!(victims.snapshot(), victims_before);
    let text = log_text(&env);
    assert!(
        text.contains("the log cannot be read either")
            && text.contains("crash-loop guard counts as reached"),
        "{text}"
    );
    let held = read_history(&env)["guard_held_until"].as_u64();
    assert!(
        held.is_some_and(|until| until > epoch_now() && until <= epoch_now() + 3600),
        "{held:?}"
    );

    let r = run_watchdog(&env, &["check", "--json"]);
    assert_crash_loop(&env, &r);
    witness.assert_untouched(&r);
    assert!(
        log_text(&env).contains("an earlier run could read neither the history nor the log"),
        "the next run says why the guard holds:\n{}",
        log_text(&env)
    );
}

/// Restarts dated a year ahead (clock skew) would keep the guard shut for a year: they
/// are dropped and reported, and the unhealthy server is restarted.
#[test]
#[ignore = "needs root (a root watchdog's state dir): run by script/test as root and .ci/run"]
fn restarts_dated_in_the_future_are_ignored_and_reported() {
    let (env, server, cfg) = setup();
    cfg.write(&env);
    server.set_memory_mode("503");
    make_state_dir(&env, 0o700);
    let year = 365 * 86400;
    let future: Vec<Value> = (1..=3)
        .map(|n| {
            json!({"at": epoch_now() + n * year, "ts": "later", "kind": "restart",
                   "method": "builtin", "old_pid": 1, "new_pid": 2,
                   "reasons": ["health_failed"], "result": "restarted"})
        })
        .collect();
    write_history(&env, &json!({"version": 1, "restarts": future}));

    let r = run_watchdog(&env, &["check", "--json"]);
    assert_eq!(r.status, Some(1), "{}", r.dump());
    assert_restarted(&env, &server);
    let warned = events_named(&env, "warning");
    assert!(
        warned.iter().any(|e| e["message"]
            .as_str()
            .unwrap_or_default()
            .contains("3 record(s) dated after now")),
        "{}",
        log_text(&env)
    );
    let restarts = read_history(&env)["restarts"].as_array().unwrap().clone();
    assert_eq!(restarts.len(), 1, "only this run's restart: {restarts:?}");
    assert!(restarts[0]["at"].as_u64().unwrap() <= epoch_now());
}

/// A history over 4 MiB is not read (it cost 3× its size in memory): a 5 MiB one and a
/// 256 MiB one are moved aside and reported, and the run goes on within a memory limit
/// far below the file's size.
#[test]
#[ignore = "needs root (a root watchdog's state dir): run by script/test as root and .ci/run"]
fn an_oversized_history_is_moved_aside_with_bounded_memory() {
    let (env, server, cfg) = setup();
    cfg.write(&env);
    make_state_dir(&env, 0o700);
    let history = history_path(&env);
    // Valid JSON, 5 MiB of samples.
    let sample = json!({"at": epoch_now() - 60, "pid": server.pid, "total": 10});
    let mut doc = json!({"version": 1, "samples": []});
    let one = sample.to_string().len() + 1;
    doc["samples"] = Value::Array(vec![sample; 5 * 1024 * 1024 / one + 1]);
    fs::write(&history, doc.to_string()).unwrap();
    assert!(fs::metadata(&history).unwrap().len() > 5 * 1024 * 1024);

    let r = run_watchdog(&env, &["check", "--json"]);
    assert_eq!(r.status, Some(0), "{}", r.dump());
    let aside = named(&env.state_dir, "history.json.corrupt-");
    assert_eq!(aside.len(), 1);
    assert!(fs::metadata(&aside[0]).unwrap().len() > 5 * 1024 * 1024);
    assert!(
        log_text(&env).contains("is larger than 4194304 bytes"),
        "{}",
        log_text(&env)
    );

    // 256 MiB (sparse: zeros cost no disk), under a 96 MiB limit on the address space
    // (a real `prlimit`): a run that read the file whole could not allocate it.
    let file = fs::File::create(&history).unwrap();
    file.set_len(256 * 1024 * 1024).unwrap();
    drop(file);
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--as={}", 96 * 1024 * 1024))
        .arg("--")
        .arg(watchdog_bin())
        .args(["check", "--json"])
        .arg("--config")
        .arg(&env.config_path)
        .env("HOME", &env.home);
    let r = run_with_timeout(cmd, WATCHDOG_TIMEOUT);
    assert_eq!(r.status, Some(0), "{}", r.dump());
    assert_eq!(named(&env.state_dir, "history.json.corrupt-").len(), 2);
    assert!(fs::symlink_metadata(&history).unwrap().len() < 4 * 1024 * 1024);
}
