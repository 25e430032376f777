//! Bounded external commands: every call to `launchctl`, `systemctl`, `supervisorctl`,
//! `sv` or a configured shell command goes through here, so none can outlive the run.
//! Each runs in its own process group; on timeout the whole group (which we started)
//! is killed, not only its leader.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::deadline::Deadline;

const POLL: Duration = Duration::from_millis(20);
/// How long output is collected after the command exited.
const AFTER_EXIT: Duration = Duration::from_secs(1);
/// Output beyond this is dropped: status commands print a few lines.
const MAX_CAPTURE: u64 = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot run `{command}`: {source}")]
    Start {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open {path} for the output of `{command}`: {source}")]
    Log {
        command: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` did not finish within {seconds:.0}s; it was killed")]
    TimedOut { command: String, seconds: f64 },
}

/// Where a command's output goes.
pub enum Output<'a> {
    /// Read it back (status queries).
    Capture,
    /// Append it to a file (restart commands, whose children may keep stdout open for
    /// ever if they daemonize).
    File(&'a Path),
}

#[derive(Debug, Clone)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// stdout and stderr, trimmed, for messages.
    pub fn text(&self) -> String {
        let both = format!("{}\n{}", self.stdout.trim(), self.stderr.trim());
        both.trim().to_string()
    }
}

/// The variables launchd sets in each job it starts, naming that job: removed from
/// every process the watchdog starts (see [`without_launchd_job`]).
pub const LAUNCHD_JOB_VARS: [&str; 2] = ["XPC_SERVICE_NAME", "XPC_FLAGS"];

/// Removes [`LAUNCHD_JOB_VARS`] from `command`'s environment, whatever it inherits or
/// was given. Every process the watchdog starts goes through here: the server it
/// replays or starts with `start_command` (src/act/spawn.rs), and the supervisor tools
/// and restart commands run by [`run`]. Why: under the recommended LaunchAgent, launchd
/// sets `XPC_SERVICE_NAME=<the watchdog's label>` in the watchdog's own environment, and
/// a replayed server may carry a label leaked the same way. A server started with it
/// looks, to the next run, like a process of the watchdog's own launchd job: one whose
/// job PID is not the server (an orphan, killed), and whose "restart" is a `launchctl
/// kickstart -k` of the watchdog itself. A server launchd really starts gets its label
/// from launchd again, never from us.
pub fn without_launchd_job(command: &mut Command) -> &mut Command {
    for var in LAUNCHD_JOB_VARS {
        command.env_remove(var);
    }
    command
}

/// Runs `argv` to completion within `deadline`, stdin from /dev/null.
pub fn run(
    argv: &[String],
    env: &[(&str, String)],
    output: Output,
    deadline: Deadline,
) -> Result<Finished, CommandError> {
    run_with_input(argv, env, None, output, deadline)
}

/// [`run`], with `input` written to the command's stdin (then closed) when given: a
/// notification command reads the event there (src/notify.rs).
pub fn run_with_input(
    argv: &[String],
    env: &[(&str, String)],
    input: Option<&[u8]>,
    output: Output,
    deadline: Deadline,
) -> Result<Finished, CommandError> {
    let shown = argv.join(" ");
    let Some((program, args)) = argv.split_first() else {
        return Err(CommandError::Start {
            command: shown,
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"),
        });
    };
    let mut command = Command::new(resolve(program));
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .stdin(match input {
            Some(_) => Stdio::piped(),
            None => Stdio::null(),
        })
        .process_group(0);
    without_launchd_job(&mut command);
    match output {
        Output::Capture => {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        Output::File(path) => {
            let (out, err) = output_log(path).map_err(|source| CommandError::Log {
                command: shown.clone(),
                path: path.to_path_buf(),
                source,
            })?;
            command.stdout(out).stderr(err);
        }
    }
    let mut child = command.spawn().map_err(|source| CommandError::Start {
        command: shown.clone(),
        source,
    })?;
    if let (Some(stdin), Some(input)) = (child.stdin.take(), input) {
        feed(stdin, input.to_vec());
    }
    let mut stdout = child.stdout.take().map(Collector::start);
    let mut stderr = child.stderr.take().map(Collector::start);
    let budget = deadline.remaining();
    let status = match wait(&mut child, deadline, &mut [&mut stdout, &mut stderr]) {
        Some(status) => status,
        None => {
            kill_group(&mut child);
            return Err(CommandError::TimedOut {
                command: shown,
                seconds: budget.as_secs_f64(),
            });
        }
    };
    // A grandchild it left running (a daemonized server) may hold the pipes open: the
    // output is what arrived within a moment of the exit, not a wait for the grandchild.
    let after_exit = deadline.cap(AFTER_EXIT).max(POLL);
    let collect = |c: Option<Collector>| c.map(|c| c.finish(after_exit)).unwrap_or_default();
    Ok(Finished {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

/// Where supervisor tools live when they are not on the caller's `PATH`: cron and
/// launchd give jobs a minimal `PATH`, while `supervisorctl` (pip, Homebrew) and `sv`
/// often sit in these.
const EXTRA_DIRS: &[&str] = &[
    "/usr/local/bin",
    "/usr/local/sbin",
    "/opt/homebrew/bin",
    "/usr/sbin",
    "/sbin",
];

/// A bare program name found on `PATH`, else in `EXTRA_DIRS`; anything else as given
/// (the spawn then reports it missing).
fn resolve(program: &str) -> PathBuf {
    find_program(program).unwrap_or_else(|| PathBuf::from(program))
}

/// The executable [`run`] would start for `program`: a path as given, a bare name on
/// the watchdog's `PATH` or in `EXTRA_DIRS`; `None` if there is none.
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let path = PathBuf::from(program);
        return is_executable(&path).then_some(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Opens `path` (a file in the checked state directory) for appending as the stdout
/// and stderr of a process we start: through `safe_fs`, never a symlink nor a FIFO; such
/// an intruder is moved aside and said on stderr, so the start still goes ahead
/// (docs/SECURITY.md).
pub fn output_log(path: &Path) -> std::io::Result<(File, File)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let (out, moved) = crate::safe_fs::open_append_replacing(path, 0o600)?;
    if let Some(moved) = moved {
        eprintln!(
            "watchdog: {} was not a regular file; moved it aside to {}",
            path.display(),
            moved.display()
        );
    }
    let err = out.try_clone()?;
    Ok((out, err))
}

/// `/bin/sh -c <shell>`, output appended to `log`.
pub fn shell(
    shell: &str,
    env: &[(&str, String)],
    log: &Path,
    deadline: Deadline,
) -> Result<Finished, CommandError> {
    let argv = ["/bin/sh".to_string(), "-c".into(), shell.into()];
    run(&argv, env, Output::File(log), deadline)
}

/// Writes `input` to a command's stdin and closes it: on a thread of its own, so that a
/// command that does not read its stdin never holds the run (the write ends with EPIPE
/// when the command exits or is killed); or, when no thread can be started, here, once,
/// without blocking: what fits in the pipe.
fn feed(stdin: ChildStdin, input: Vec<u8>) {
    let slot = Arc::new(Mutex::new(Some((stdin, input))));
    let theirs = Arc::clone(&slot);
    let started = std::thread::Builder::new()
        .name("command-input".into())
        .spawn(move || {
            if let Some((mut pipe, bytes)) = theirs.lock().ok().and_then(|mut s| s.take()) {
                let _ = pipe.write_all(&bytes);
            }
        });
    if started.is_ok() {
        return;
    }
    if let Some((pipe, bytes)) = slot.lock().ok().and_then(|mut s| s.take()) {
        let fd = OwnedFd::from(pipe);
        // SAFETY: fcntl on our own write end of the pipe (std creates it close-on-exec,
        // the child has its copy as fd 0), only adding O_NONBLOCK.
        unsafe {
            let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        let _ = File::from(fd).write(&bytes);
    }
}

/// Collects one pipe's output: on a thread of its own, so that a command that writes
/// much never blocks on a full pipe while we wait for it; or, when no thread can be
/// started (the process limit is reached), here on the calling thread, between the
/// polls of the wait, instead of aborting the run.
enum Collector {
    Thread(mpsc::Receiver<String>),
    Here(Pipe),
}

/// A pipe read here: non-blocking, drained whenever the wait polls it.
struct Pipe {
    file: File,
    bytes: Vec<u8>,
    open: bool,
}

impl Collector {
    fn start<R: Read + Send + Into<OwnedFd> + 'static>(pipe: R) -> Collector {
        let (tx, rx) = mpsc::channel();
        // The pipe waits in a slot: should the thread not start, its closure (and with
        // it a moved pipe) would be gone.
        let slot = Arc::new(Mutex::new(Some(pipe)));
        let theirs = Arc::clone(&slot);
        let started = std::thread::Builder::new()
            .name("command-output".into())
            .spawn(move || {
                let Some(pipe) = theirs.lock().ok().and_then(|mut p| p.take()) else {
                    return;
                };
                let mut bytes = Vec::new();
                let _ = pipe.take(MAX_CAPTURE).read_to_end(&mut bytes);
                let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
            });
        if started.is_ok() {
            return Collector::Thread(rx);
        }
        match slot.lock().ok().and_then(|mut p| p.take()) {
            Some(pipe) => Collector::Here(Pipe::new(pipe.into())),
            // Not reached: a thread that never started never took the pipe.
            None => Collector::Thread(rx),
        }
    }

    /// The output, collecting for at most `after_exit` more: a daemonized grandchild
    /// may hold the pipe open for ever.
    fn finish(self, after_exit: Duration) -> String {
        match self {
            Collector::Thread(rx) => rx.recv_timeout(after_exit).unwrap_or_default(),
            Collector::Here(mut pipe) => {
                let until = Instant::now() + after_exit;
                while pipe.open && Instant::now() < until {
                    pump(
                        &mut [&mut pipe],
                        until.saturating_duration_since(Instant::now()),
                    );
                }
                pipe.text()
            }
        }
    }
}

impl Pipe {
    fn new(fd: OwnedFd) -> Pipe {
        // SAFETY: fcntl on our own read end of the pipe (no one else holds it: std
        // creates it close-on-exec), only adding O_NONBLOCK.
        unsafe {
            let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        Pipe {
            file: File::from(fd),
            bytes: Vec::new(),
            open: true,
        }
    }

    /// Reads what is there now; output past MAX_CAPTURE is read and dropped, so the
    /// command never blocks on a full pipe.
    fn drain(&mut self) {
        let mut buffer = [0u8; 8192];
        loop {
            match self.file.read(&mut buffer) {
                Ok(0) => {
                    self.open = false;
                    return;
                }
                Ok(n) => {
                    let room = usize::try_from(MAX_CAPTURE).unwrap_or(usize::MAX);
                    let keep = n.min(room.saturating_sub(self.bytes.len()));
                    self.bytes.extend_from_slice(&buffer[..keep]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.open = false;
                    return;
                }
            }
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Waits up to `wait` for output on the pipes read here and reads it; with none, just
/// sleeps.
fn pump(pipes: &mut [&mut Pipe], wait: Duration) {
    let mut polled: Vec<libc::pollfd> = pipes
        .iter()
        .filter(|p| p.open)
        .map(|p| libc::pollfd {
            fd: p.file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    if polled.is_empty() {
        sleep(wait);
        return;
    }
    let millis = libc::c_int::try_from(wait.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: poll(2) reads and writes `polled.len()` pollfds in our own vector.
    let ready = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, millis) };
    if ready > 0 {
        for pipe in pipes.iter_mut().filter(|p| p.open) {
            pipe.drain();
        }
    }
}

fn wait(
    child: &mut Child,
    deadline: Deadline,
    collectors: &mut [&mut Option<Collector>],
) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if deadline.passed() => return None,
            Ok(None) => {
                let mut here: Vec<&mut Pipe> = collectors
                    .iter_mut()
                    .filter_map(|c| match c.as_mut() {
                        Some(Collector::Here(pipe)) => Some(pipe),
                        _ => None,
                    })
                    .collect();
                pump(&mut here, POLL.min(deadline.remaining()));
            }
            Err(_) => return None,
        }
    }
}

/// Kills the process group led by a child we started, then reaps the child.
fn kill_group(child: &mut Child) {
    if let Ok(pgid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with a negative PID signals the group this child leads (we
        // created it with process_group(0)); it has no memory effects.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn captures_output_and_status() {
        let long = Deadline::after(Duration::from_secs(20));
        let done = run(
            &argv(&["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]),
            &[],
            Output::Capture,
            long,
        )
        .unwrap();
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(done.stdout, "out\n");
        assert_eq!(done.stderr, "err\n");
        assert_eq!(done.text(), "out\nerr");
    }

    /// Without a thread (the process limit), the output is read on the calling thread
    /// while it waits, all of it, and more than a pipe holds does not block the command.
    #[test]
    fn output_is_collected_here_when_no_thread_can_start() {
        let mut child = Command::new("/bin/sh")
            .args([
                "-c",
                "echo first; head -c 200000 /dev/zero; sleep 0.1; echo last >&2",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let here = |pipe: OwnedFd| Some(Collector::Here(Pipe::new(pipe)));
        let mut out = here(child.stdout.take().unwrap().into());
        let mut err = here(child.stderr.take().unwrap().into());
        let deadline = Deadline::after(Duration::from_secs(20));
        let status = wait(&mut child, deadline, &mut [&mut out, &mut err]).unwrap();
        assert!(status.success());
        let out = out.unwrap().finish(AFTER_EXIT);
        assert!(
            out.starts_with("first\n") && out.len() == 6 + 200_000,
            "{}",
            out.len()
        );
        assert_eq!(err.unwrap().finish(AFTER_EXIT), "last\n");
    }

    #[test]
    fn input_reaches_stdin_and_a_command_that_ignores_it_is_not_held() {
        let long = Deadline::after(Duration::from_secs(20));
        let sh = |script: &str| argv(&["/bin/sh", "-c", script]);
        let done = run_with_input(
            &sh("cat; echo end"),
            &[],
            Some(b"{\"event\":\"restarted\"}\n"),
            Output::Capture,
            long,
        )
        .unwrap();
        assert_eq!(done.stdout, "{\"event\":\"restarted\"}\nend\n");
        // More than a pipe holds, never read: the command still ends, and so does the run.
        let big = vec![b'x'; 1 << 20];
        let done = run_with_input(&sh("exit 0"), &[], Some(&big), Output::Capture, long).unwrap();
        assert!(done.status.success());
    }

    #[test]
    fn bare_names_are_found_on_path_then_in_the_usual_places() {
        assert_eq!(resolve("/bin/sh"), PathBuf::from("/bin/sh"));
        assert!(resolve("sh").is_absolute(), "{:?}", resolve("sh"));
        assert_eq!(
            resolve("no-such-tool-here"),
            PathBuf::from("no-such-tool-here")
        );
    }

    #[test]
    fn a_missing_program_is_an_error_not_a_panic() {
        let long = Deadline::after(Duration::from_secs(5));
        let err = run(
            &argv(&["/nonexistent/launchctl"]),
            &[],
            Output::Capture,
            long,
        )
        .unwrap_err();
        assert!(matches!(err, CommandError::Start { .. }), "{err}");
        assert!(run(&[], &[], Output::Capture, long).is_err());
    }

    #[test]
    fn shell_output_goes_to_the_log_and_env_is_passed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("command.log");
        let long = Deadline::after(Duration::from_secs(20));
        let env = [("WATCHDOG_TARGET_PID", "99".to_string())];
        let done = shell("echo pid=$WATCHDOG_TARGET_PID", &env, &log, long).unwrap();
        assert!(done.status.success());
        assert_eq!(fs::read_to_string(&log).unwrap(), "pid=99\n");
    }

    /// launchd's job variables never reach a command we run, even when handed to
    /// `run` (the inherited ones go the same way: `env_remove` of the one helper); the
    /// other variables are kept.
    #[test]
    fn launchd_job_variables_are_removed_from_commands() {
        let long = Deadline::after(Duration::from_secs(20));
        let env = [
            ("XPC_SERVICE_NAME", "com.example.watchdog".to_string()),
            ("XPC_FLAGS", "1".to_string()),
            ("WATCHDOG_KEPT", "yes".to_string()),
        ];
        let done = run(&argv(&["/usr/bin/env"]), &env, Output::Capture, long).unwrap();
        assert!(done.status.success());
        let vars: Vec<&str> = done.stdout.lines().collect();
        assert!(vars.contains(&"WATCHDOG_KEPT=yes"), "{vars:?}");
        assert!(
            !vars.iter().any(|v| v.starts_with("XPC_")),
            "launchd's variables reached the command: {vars:?}"
        );
    }

    #[test]
    fn a_hanging_command_and_its_children_are_killed_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("command.log");
        let marker = dir.path().join("grandchild-pid");
        let script = format!("sleep 300 & echo $! > {}; wait", marker.display());
        let short = Deadline::after(Duration::from_millis(500));
        let err = shell(&script, &[], &log, short).unwrap_err();
        assert!(matches!(err, CommandError::TimedOut { .. }), "{err}");
        let grandchild: u32 = fs::read_to_string(&marker).unwrap().trim().parse().unwrap();
        let gone = Deadline::after(Duration::from_secs(5));
        while crate::probe::os::identity(grandchild)
            .ok()
            .flatten()
            .is_some()
            && !gone.passed()
        {
            sleep(POLL);
        }
        assert!(
            crate::probe::os::identity(grandchild)
                .ok()
                .flatten()
                .is_none(),
            "the whole group was killed"
        );
    }

    #[test]
    fn a_daemonizing_child_holding_the_pipe_does_not_stretch_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("daemon-pid");
        let script = format!("sleep 30 & echo $! > {}; echo started", marker.display());
        let start = std::time::Instant::now();
        let done = run(
            &argv(&["/bin/sh", "-c", &script]),
            &[],
            Output::Capture,
            Deadline::after(Duration::from_secs(2)),
        );
        let elapsed = start.elapsed();
        let daemon: i32 = fs::read_to_string(&marker).unwrap().trim().parse().unwrap();
        // SAFETY: kill(2) on the sleep this test started.
        unsafe {
            libc::kill(daemon, libc::SIGKILL);
        }
        // The sleep keeps stdout open; the run still ends by the deadline.
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
        assert!(done.unwrap().status.success());
    }
}
