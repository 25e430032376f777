//! Every run ends, whatever the kernel does, and no run aborts when the system is out of
//! processes (docs/SECURITY.md, "Every run ends").
//!
//! - A FIFO at the config path is refused at once (exit 2), instead of holding the run
//!   before its failsafe is armed; cron would stack one stuck run a minute.
//! - A run whose main thread sleeps where only SIGKILL wakes it is still ended at its
//!   bound, with the exit code that fits what it was doing. The sleep is real: the test
//!   ptraces the watchdog's main thread (only that thread) and leaves it in a
//!   syscall-entry stop at a chosen `openat`. A ptrace stop, like the killable sleep of a
//!   read of `/proc/PID/cmdline` under the target's mmap lock or a read on a hung NFS
//!   mount, is left only for SIGKILL: a SIGALRM handler is never run there (the old
//!   failsafe hung for ever). What this does not show: the same for a sleep in
//!   `mmap_read_lock_killable` itself (making one needs a FUSE or userfaultfd helper).
//! - Under a real `RLIMIT_NPROC` that is already exhausted (`prlimit --nproc=1` on a
//!   watchdog run as an unprivileged user: the limit is not enforced for root), `check`
//!   and `fds` finish with their proper exit code, never 134 (abort, release) or 101
//!   (panic, debug): every thread has a fallback on the calling thread.

mod common;

use std::path::Path;

// The failsafe and RLIMIT_NPROC tests need Linux (ptrace, prlimit, setpriv).
#[cfg(target_os = "linux")]
use std::{
    fs,
    os::unix::process::CommandExt,
    process::{Child, Command, Stdio},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use common::*;

/// Health, stop, command and verify timeouts of 1 s: a run bound of 10 s (+ 2 s of
/// failsafe grace), so that the runs left to the failsafe end soon.
#[cfg(target_os = "linux")]
fn short_bound(env: &TestEnv, port: u16) -> ConfigToml {
    let mut cfg = ConfigToml::for_port(env, port);
    cfg.set("health.attempts", 1)
        .set("health.timeout", "1s")
        .set("restart.stop_timeout", "1s")
        .set("restart.command_timeout", "1s")
        .set("restart.verify_timeout", "1s");
    assert_eq!(cfg.bound_secs(), 10.0);
    cfg
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo touches no memory of ours.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

// ---------------------------------------------------------------------------------------
// A FIFO at the config path
// ---------------------------------------------------------------------------------------

#[test]
fn a_fifo_at_the_config_path_is_refused_at_once() {
    let env = TestEnv::new();
    mkfifo(&env.config_path);
    for args in [
        &["check"][..],
        &["status"],
        &["fds"],
        &["config", "--check"],
    ] {
        let r = run_watchdog(&env, args);
        assert_exit(&env, &r, 2);
        assert!(
            r.stderr.contains("it is a FIFO, not a regular file")
                && r.stderr.contains(&env.config_path.display().to_string()),
            "{args:?}: the operator is told what is at the config path\n{}",
            r.dump()
        );
        assert!(
            !r.stderr.contains("did not end within its bound"),
            "{args:?}: refused at once, not ended by the failsafe\n{}",
            r.dump()
        );
    }
    assert!(
        !env.state_dir.exists() && !env.log_file.exists(),
        "nothing was written"
    );
}

// ---------------------------------------------------------------------------------------
// The failsafe, with the main thread where only SIGKILL wakes it
// ---------------------------------------------------------------------------------------

/// `struct ptrace_syscall_info` (linux/ptrace.h) as PTRACE_GET_SYSCALL_INFO fills it for
/// a syscall-entry stop; the tail covers the larger seccomp variant.
#[cfg(target_os = "linux")]
#[repr(C)]
#[derive(Default)]
struct SyscallInfo {
    op: u8,
    pad: [u8; 3],
    arch: u32,
    instruction_pointer: u64,
    stack_pointer: u64,
    nr: u64,
    args: [u64; 6],
    tail: [u64; 2],
}

#[cfg(target_os = "linux")]
const PTRACE_GET_SYSCALL_INFO: libc::c_uint = 0x420e;
#[cfg(target_os = "linux")]
const PTRACE_SYSCALL_INFO_ENTRY: u8 = 1;

/// A watchdog run traced by this test thread: only its main thread (no
/// PTRACE_O_TRACECLONE, so the threads it starts run freely) and killed with the test
/// (PTRACE_O_EXITKILL) or on drop.
#[cfg(target_os = "linux")]
struct Traced {
    child: Option<Child>,
    pid: libc::pid_t,
    started: Instant,
    out: Option<JoinHandle<String>>,
    err: Option<JoinHandle<String>>,
}

/// How a traced run went.
#[cfg(target_os = "linux")]
struct Stopped {
    /// The path of the `openat` where the main thread was left.
    frozen_at: String,
    result: RunResult,
}

#[cfg(target_os = "linux")]
impl Traced {
    fn spawn(mut cmd: Command) -> Traced {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: ptrace(PTRACE_TRACEME) is async-signal-safe and touches no memory.
        unsafe {
            cmd.pre_exec(|| {
                if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let started = Instant::now();
        let mut child = cmd.spawn().expect("spawn the traced watchdog");
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        let (out, err) = read_output(&mut child);
        Traced {
            child: Some(child),
            pid,
            started,
            out: Some(out),
            err: Some(err),
        }
    }

    fn wait_status(&self, flags: libc::c_int) -> Option<libc::c_int> {
        let mut status = 0;
        // SAFETY: waitpid on our own child, writing one int we own.
        let got = unsafe { libc::waitpid(self.pid, &mut status, flags | libc::__WALL) };
        assert!(got >= 0, "waitpid: {}", std::io::Error::last_os_error());
        (got == self.pid).then_some(status)
    }

    /// Runs the main thread from syscall to syscall until it enters an `openat` of a
    /// path `at` accepts, and leaves it stopped there; then waits (up to `limit`) for
    /// the process to end on its own.
    fn freeze_at(mut self, at: impl Fn(&str) -> bool, limit: Duration) -> Stopped {
        let first = self.wait_status(0).expect("the exec stop");
        assert!(
            libc::WIFSTOPPED(first),
            "the traced run stopped at exec: {first:#x}"
        );
        // SAFETY: ptrace requests on our stopped tracee, passing plain values.
        let set = unsafe {
            libc::ptrace(
                libc::PTRACE_SETOPTIONS,
                self.pid,
                0,
                libc::PTRACE_O_TRACESYSGOOD | libc::PTRACE_O_EXITKILL,
            )
        };
        assert_eq!(set, 0, "PTRACE_SETOPTIONS");
        let mut deliver = 0;
        let frozen_at = loop {
            // SAFETY: resume our stopped tracee to its next syscall stop.
            let resumed = unsafe { libc::ptrace(libc::PTRACE_SYSCALL, self.pid, 0, deliver) };
            assert_eq!(resumed, 0, "PTRACE_SYSCALL");
            deliver = 0;
            let status = self.wait_status(0).expect("a stop or the exit");
            if !libc::WIFSTOPPED(status) {
                panic!(
                    "the run ended before it opened the path the test waits for\n{}",
                    self.collect(status).dump()
                );
            }
            let signal = libc::WSTOPSIG(status);
            if signal != libc::SIGTRAP | 0x80 {
                // A signal for the main thread: deliver it on resuming (not the SIGTRAP
                // of an exec, which is ours).
                deliver = if signal == libc::SIGTRAP { 0 } else { signal };
                continue;
            }
            if let Some(path) = self.entering_openat()
                && at(&path)
            {
                break path;
            }
        };
        // Left in its syscall-entry stop: only SIGKILL moves it now.
        let end = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.wait_status(libc::WNOHANG) {
                break status;
            }
            if Instant::now() > end {
                // SAFETY: kill(2) of our own tracee.
                unsafe { libc::kill(self.pid, libc::SIGKILL) };
                let status = self.wait_status(0).unwrap_or(0);
                panic!(
                    "the run stopped at {frozen_at} never ended: its failsafe did not fire\n{}",
                    self.collect(status).dump()
                );
            }
            thread::sleep(Duration::from_millis(50));
        };
        let result = self.collect(status);
        Stopped { frozen_at, result }
    }

    /// At a syscall-entry stop of `openat`, the path it opens.
    fn entering_openat(&self) -> Option<String> {
        let mut info = SyscallInfo::default();
        // SAFETY: PTRACE_GET_SYSCALL_INFO writes at most `size` bytes into `info`.
        let got = unsafe {
            libc::ptrace(
                PTRACE_GET_SYSCALL_INFO,
                self.pid,
                std::mem::size_of::<SyscallInfo>(),
                &mut info as *mut SyscallInfo,
            )
        };
        if got <= 0 || info.op != PTRACE_SYSCALL_INFO_ENTRY {
            return None;
        }
        if info.nr != libc::SYS_openat as u64 {
            return None;
        }
        let mem = fs::File::open(format!("/proc/{}/mem", self.pid)).ok()?;
        let mut buffer = vec![0u8; 1024];
        let n = std::os::unix::fs::FileExt::read_at(&mem, &mut buffer, info.args[1]).ok()?;
        let bytes = &buffer[..n];
        let end = bytes.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&bytes[..end]).into_owned())
    }

    /// The run's result from the status `waitpid` gave (the child is reaped).
    fn collect(&mut self, status: libc::c_int) -> RunResult {
        self.child = None;
        let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
        let elapsed = self.started.elapsed();
        RunResult {
            status: code,
            stdout: join_bounded(self.out.take().unwrap()),
            stderr: join_bounded(self.err.take().unwrap()),
            elapsed,
            timed_out: false,
        }
    }
}

#[cfg(target_os = "linux")]
impl Drop for Traced {
    fn drop(&mut self) {
        if self.child.take().is_some() {
            // SAFETY: kill(2) and waitpid(2) of our own unreaped tracee.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), libc::__WALL);
            }
        }
    }
}

/// Generous: the runs below end at 10 s (loading) or 12 s (their bound + grace).
#[cfg(target_os = "linux")]
const FROZEN_LIMIT: Duration = Duration::from_secs(90);

/// Runs `watchdog ARGS` for `env`, leaves its main thread stopped at the first
/// `openat` whose path `at` accepts, and returns how the run ended.
#[cfg(target_os = "linux")]
fn frozen_run(env: &TestEnv, args: &[&str], at: impl Fn(&str) -> bool) -> Stopped {
    Traced::spawn(watchdog_cmd(env, args)).freeze_at(at, FROZEN_LIMIT)
}

#[cfg(target_os = "linux")]
#[track_caller]
fn assert_stopped(env: &TestEnv, stopped: &Stopped, code: i32, doing: &str) {
    let r = &stopped.result;
    assert_exit(env, r, code);
    let line = format!("while {doing}");
    assert!(
        r.stderr.contains("this run did not end within its bound")
            && r.stderr.contains(&line)
            && r.stderr.contains(&format!("stopped with exit {code}")),
        "the failsafe's one line names the work and the code (stopped at {})\n{}",
        stopped.frozen_at,
        r.dump()
    );
}

/// Stopped while reading the configuration: exit 2 at the fixed loading bound (the
/// failsafe is armed before the file is opened).
#[cfg(target_os = "linux")]
#[test]
fn a_run_stuck_reading_its_config_ends_with_exit_2() {
    let env = TestEnv::new();
    short_bound(&env, 1).write(&env);
    let config = env.config_path.display().to_string();
    for args in [&["check"][..], &["status"]] {
        let stopped = frozen_run(&env, args, |path| path == config);
        assert_stopped(&env, &stopped, 2, "reading the configuration");
        assert!(stopped.result.stderr.contains("(10s)"), "the loading bound");
    }
}

/// Stopped reading the server's command line, as a read under its mmap lock would be:
/// `check` before acting, `status` and `fds` exit 4 (not acted on), never 3, and the
/// server is untouched.
#[cfg(target_os = "linux")]
#[test]
fn a_run_stuck_reading_proc_ends_at_its_bound_with_the_code_of_its_subcommand() {
    let env = TestEnv::new();
    let server = TestServer::start(&env, ServerOpts::default());
    short_bound(&env, server.port).write(&env);
    let witness = Witness::of(server.pid);
    // `/proc/PID/cmdline` of the server, or of another process (a search by `match`),
    // or `cmdline` relative to a /proc/PID directory: every such read is before acting.
    let cmdline = |path: &str| path.ends_with("cmdline");
    let cases = [
        ("check", "checking the server, before acting on it"),
        ("status", "reading the server's status"),
        ("fds", "taking the server's FD census"),
    ];
    for (subcommand, doing) in cases {
        let stopped = frozen_run(&env, &[subcommand], cmdline);
        assert_stopped(&env, &stopped, 4, doing);
        assert!(
            stopped.result.stderr.contains("(12s)"),
            "the run's bound and the grace\n{}",
            stopped.result.dump()
        );
        witness.assert_untouched(&stopped.result);
    }
}

/// Stopped once `check` has begun a restart (at the incident snapshot it takes before
/// any signal): exit 3, the one case where "restart failed" is the truth.
#[cfg(target_os = "linux")]
#[test]
fn a_check_stuck_while_acting_says_restart_failed() {
    let env = TestEnv::new();
    let server = TestServer::start(&env, ServerOpts::default());
    short_bound(&env, server.port).write(&env);
    set_mode(&env, "503");
    let stopped = frozen_run(&env, &["check"], |path| path.contains("/incidents/"));
    assert_stopped(&env, &stopped, 3, "restarting the server");
}

// ---------------------------------------------------------------------------------------
// RLIMIT_NPROC exhausted
// ---------------------------------------------------------------------------------------

/// `argv` run as SERVER_USER through `setpriv` under `prlimit --nproc=1`: that user
/// already runs at least the test server and this process, so no thread or process
/// can be created (RLIMIT_NPROC counts every task of the real uid; it binds because the
/// uid is not root).
#[cfg(target_os = "linux")]
fn under_exhausted_nproc(env: &TestEnv, argv: &[&str]) -> Command {
    let (uid, gid) = SERVER_USER;
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .args(["--", "prlimit", "--nproc=1", "--"])
        .args(argv);
    in_test_home(cmd, env)
}

#[cfg(target_os = "linux")]
fn watchdog_under_exhausted_nproc(env: &TestEnv, args: &[&str]) -> RunResult {
    let bin = watchdog_bin();
    let config = env.config_path.display().to_string();
    let mut argv = vec![bin.to_str().expect("utf-8 path")];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--config", &config]);
    run_with_timeout(under_exhausted_nproc(env, &argv), WATCHDOG_TIMEOUT)
}

/// A test server run by SERVER_USER, who owns the whole env (a state dir of its own).
#[cfg(target_os = "linux")]
struct UserServer {
    _guard: ChildGuard,
    port: u16,
}

#[cfg(target_os = "linux")]
fn start_user_server(env: &TestEnv) -> UserServer {
    chown_tree(&env.root, SERVER_USER.0, SERVER_USER.1);
    let log = env.root.join("user-server.log");
    let out = fs::File::create(&log).unwrap();
    let (uid, gid) = SERVER_USER;
    let server = testserver_command(env);
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .args(["--clear-groups", "--"])
        .arg(server.get_program())
        .args(server.get_args())
        .arg("--mode-file")
        .arg(&env.mode_file)
        .arg("--pidfile")
        .arg(&env.pidfile)
        .current_dir(&env.root)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    let guard = ChildGuard::spawn(&mut cmd);
    let mut port = 0;
    let up = wait_until(Duration::from_secs(30), || {
        port = fs::read_to_string(&env.port_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        port != 0 && healthy(&format!("http://127.0.0.1:{port}/health"))
    });
    assert!(
        up,
        "the test server of SERVER_USER came up; its log:\n{}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    UserServer {
        _guard: guard,
        port,
    }
}

/// The config of a run as SERVER_USER against `server`, written and handed to that user.
#[cfg(target_os = "linux")]
fn user_config(env: &TestEnv, server: &UserServer, cfg: &mut ConfigToml) {
    cfg.set("target.port", i64::from(server.port)).set(
        "health.url",
        format!("http://127.0.0.1:{}/health", server.port),
    );
    cfg.write(env);
    chown_tree(&env.root, SERVER_USER.0, SERVER_USER.1);
}

#[cfg(target_os = "linux")]
#[track_caller]
fn assert_no_abort(r: &RunResult) {
    assert!(
        // An abort is SIGABRT (a shell shows 134); a panic in a debug build exits 101.
        r.status.is_some()
            && !matches!(r.status, Some(134) | Some(101))
            && !r.stderr.contains("failed to spawn"),
        "the run aborted or panicked\n{}",
        r.dump()
    );
}

#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs root (runs the server and the watchdog as another user under prlimit --nproc=1): run by script/test as root and .ci/run"]
fn with_no_process_left_check_and_fds_still_finish_with_their_codes() {
    require_root();
    let env = TestEnv::new();
    let mut cfg = short_bound(&env, 1);
    // Enough FDs that the census would read them on several threads.
    cfg.set("fds.max", 5000).fd_paths(&[]);
    let server = start_user_server(&env);
    user_config(&env, &server, &mut cfg);
    let base = format!("http://127.0.0.1:{}", server.port);
    let fds: usize = control(&base, "/control/files?n=600")
        .trim()
        .parse()
        .expect("FD count");
    assert!(fds >= 600, "the server holds {fds} FDs");

    // The limit binds: a shell under it cannot fork.
    let probe = run_with_timeout(
        under_exhausted_nproc(&env, &["/bin/sh", "-c", "/bin/true"]),
        WATCHDOG_TIMEOUT,
    );
    assert_ne!(
        probe.status,
        Some(0),
        "RLIMIT_NPROC does not bind here: the test would prove nothing\n{}",
        probe.dump()
    );

    let r = watchdog_under_exhausted_nproc(&env, &["check", "--json"]);
    assert_no_abort(&r);
    assert_exit(&env, &r, 0);

    let r = watchdog_under_exhausted_nproc(&env, &["fds"]);
    assert_no_abort(&r);
    assert_exit(&env, &r, 0);
    assert!(
        r.stdout.contains("open FDs") && r.stdout.lines().count() > 2,
        "the census is printed\n{}",
        r.dump()
    );

    // Unhealthy: the restart command cannot be forked. A clear failure, not an abort.
    cfg.set("restart.method", "command")
        .set("restart.command", "true");
    user_config(&env, &server, &mut cfg);
    fs::write(&env.mode_file, "503").unwrap();
    let r = watchdog_under_exhausted_nproc(&env, &["check"]);
    assert_no_abort(&r);
    assert!(
        matches!(r.status, Some(3) | Some(4)),
        "restart failed or not acted on\n{}\n--- log ---\n{}",
        r.dump(),
        log_text(&env)
    );
    assert!(
        r.stderr.contains("Resource temporarily unavailable"),
        "the operator is told why: the system refused a new process\n{}",
        r.dump()
    );
}
