//! Running the watchdog binary (or any command) bounded by a timeout: [`Running`] in the
//! background, [`RunResult`] once it ended. The watchdog runs with HOME, XDG_CONFIG_HOME
//! and XDG_STATE_HOME inside the temp dir and an explicit `--config`, and is killed after
//! a generous timeout so that a hung binary fails its test instead of hanging CI.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::env::TestEnv;
use super::processes::kill_own_group;

/// The timeout after which a watchdog run is killed and its test fails.
pub const WATCHDOG_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug)]
pub struct RunResult {
    /// `None` when killed by a signal (including the harness timeout).
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub timed_out: bool,
}

impl RunResult {
    /// A description for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "exit status {:?}{} after {:.1?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            if self.timed_out {
                " (KILLED: harness timeout)"
            } else {
                ""
            },
            self.elapsed,
            self.stdout,
            self.stderr
        )
    }
}

/// A watchdog (or other) process running in the background, in a process group of its
/// own; the group is killed at the timeout of [`Running::wait`] and on drop (see
/// [`kill_own_group`]).
pub struct Running {
    child: Option<Child>,
    started: Instant,
    out: Option<JoinHandle<String>>,
    err: Option<JoinHandle<String>>,
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Running {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let (out, err) = read_output(&mut child);
        Running {
            child: Some(child),
            started,
            out: Some(out),
            err: Some(err),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().unwrap().try_wait(), Ok(None))
    }

    /// Waits up to `timeout`, then kills its process group; collects its output.
    pub fn wait(mut self, timeout: Duration) -> RunResult {
        let mut child = self.child.take().unwrap();
        let mut timed_out = false;
        let status = loop {
            if let Some(s) = child.try_wait().expect("try_wait") {
                break s;
            }
            if self.started.elapsed() > timeout {
                timed_out = true;
                kill_own_group(&mut child);
                break child.wait().expect("wait");
            }
            thread::sleep(Duration::from_millis(20));
        };
        let elapsed = self.started.elapsed();
        // A grandchild that inherited the pipes could keep them open: don't wait forever.
        let stdout = join_bounded(self.out.take().unwrap());
        let stderr = join_bounded(self.err.take().unwrap());
        RunResult {
            status: status.code(),
            stdout,
            stderr,
            elapsed,
            timed_out,
        }
    }
}

/// Threads that read the piped stdout and stderr of `child` to their end; collect them
/// with [`join_bounded`].
pub fn read_output(child: &mut Child) -> (JoinHandle<String>, JoinHandle<String>) {
    let mut so = child.stdout.take().expect("piped stdout");
    let mut se = child.stderr.take().expect("piped stderr");
    let out = thread::spawn(move || {
        let mut b = Vec::new();
        let _ = so.read_to_end(&mut b);
        String::from_utf8_lossy(&b).into_owned()
    });
    let err = thread::spawn(move || {
        let mut b = Vec::new();
        let _ = se.read_to_end(&mut b);
        String::from_utf8_lossy(&b).into_owned()
    });
    (out, err)
}

/// What a [`read_output`] thread read, waiting at most 5 s: a grandchild that inherited
/// the pipes could keep them open.
pub fn join_bounded(h: JoinHandle<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !h.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    if h.is_finished() {
        h.join().unwrap_or_default()
    } else {
        "<output pipe still held open by another process>".into()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_own_group(&mut c);
        }
    }
}

/// Runs `cmd` to completion, killing its process group after `timeout`.
pub fn run_with_timeout(cmd: Command, timeout: Duration) -> RunResult {
    Running::spawn(cmd).wait(timeout)
}

/// The binary under test: `$WATCHDOG_TEST_BIN` when set (e.g. a release build), else the
/// one cargo built for this test run.
pub fn watchdog_bin() -> PathBuf {
    match std::env::var_os("WATCHDOG_TEST_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_watchdog")),
    }
}

/// The watchdog command for `env`: HOME, XDG_CONFIG_HOME and XDG_STATE_HOME inside the
/// temp dir, WATCHDOG_CONFIG unset, `args` followed by `--config env.config_path`.
pub fn watchdog_cmd(env: &TestEnv, args: &[&str]) -> Command {
    let mut cmd = Command::new(watchdog_bin());
    cmd.args(args);
    in_env(cmd, env)
}

/// `--config env.config_path`, and [`in_test_home`].
pub(super) fn in_env(mut cmd: Command, env: &TestEnv) -> Command {
    cmd.arg("--config").arg(&env.config_path);
    in_test_home(cmd, env)
}

/// The temp dir as the working directory, the temp HOME and XDG dirs, no
/// WATCHDOG_CONFIG: where every watchdog run of a test lives.
pub fn in_test_home(mut cmd: Command, env: &TestEnv) -> Command {
    cmd.current_dir(&env.root)
        .env("HOME", &env.home)
        .env("XDG_CONFIG_HOME", env.home.join(".config"))
        .env("XDG_STATE_HOME", env.home.join(".local/state"))
        .env_remove("WATCHDOG_CONFIG");
    cmd
}

/// Runs the watchdog (see [`watchdog_cmd`]) with the harness timeout.
pub fn run_watchdog(env: &TestEnv, args: &[&str]) -> RunResult {
    run_with_timeout(watchdog_cmd(env, args), WATCHDOG_TIMEOUT)
}

/// Starts the watchdog in the background (see [`watchdog_cmd`]).
pub fn spawn_watchdog(env: &TestEnv, args: &[&str]) -> Running {
    Running::spawn(watchdog_cmd(env, args))
}
