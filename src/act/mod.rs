//! Acting: the only code that signals, kills, spawns or runs a restart command
//! (docs/DESIGN.md, "Acting"). `--dry-run` never reaches this module.

pub mod signal;
pub mod spawn;
pub mod supervisor;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::command;
use crate::config::{Config, Method};
use crate::deadline::Deadline;
use crate::decide::{Action, ActionKind};
use crate::probe::health::Prober;
use crate::probe::os::{self, Identity, PortOwner, ProcessInfo};
use crate::probe::restart_path::RestartPath;
use crate::probe::supervisor::{self as jobs, Supervisor};

const POLL: Duration = Duration::from_millis(100);
/// How long a killed server's parent gets to restart it before the watchdog does.
const RESPAWN_GRACE: Duration = Duration::from_secs(2);
/// Time given to the server to act on `pre_kill_signal` (a stack dump) before SIGTERM.
const PRE_KILL_PAUSE: Duration = Duration::from_secs(1);
/// The least time a verify attempt gets, even past `verify_timeout` (within the run's
/// bound, whose slack covers it): an attempt cut to nothing by the end of the wait
/// proves nothing and would report "timed out after 0s" instead of what the server did.
const LEAST_ATTEMPT: Duration = Duration::from_secs(1);
/// `verify` polls every `FAST_POLL` for the first `FAST_FOR` after the restart, then
/// every `SLOW_POLL`: most servers bind within a second or two, so an answer is
/// seen within 100 ms of it; one that takes longer (upstream binds 25 s after start)
/// is not probed ten times a second for the whole wait (docs/DESIGN.md, "Acting").
const FAST_POLL: Duration = Duration::from_millis(100);
const FAST_FOR: Duration = Duration::from_secs(3);
const SLOW_POLL: Duration = Duration::from_millis(250);

/// What acting needs from the rest of the run.
pub struct Context<'a> {
    pub cfg: &'a Config,
    pub prober: &'a Prober,
    /// The run's bound: no step outlives it.
    pub deadline: Deadline,
    pub port: Option<u16>,
    pub state_dir: &'a Path,
}

/// What happened, for the report, the log and the history.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Healthy again after acting.
    pub ok: bool,
    /// Steps taken and what was seen, in words.
    pub detail: String,
    pub new_pid: Option<u32>,
    pub new_fds: Option<u64>,
}

impl Outcome {
    pub fn failed(steps: &[String], why: impl std::fmt::Display) -> Outcome {
        let mut all = steps.to_vec();
        all.push(why.to_string());
        Outcome {
            ok: false,
            detail: all.join("; "),
            new_pid: None,
            new_fds: None,
        }
    }
}

/// The file a server started by the watchdog writes its output to.
pub fn server_log(state_dir: &Path) -> PathBuf {
    state_dir.join("server.log")
}

fn command_log(state_dir: &Path) -> PathBuf {
    state_dir.join("command.log")
}

/// Carries out `action` on `target` (the process found this run; `None` for a start).
/// `supervisor` is the job's supervisor when one owns the server. `way_back` is how
/// the server starts again, proven during observation (`probe::restart_path`): a
/// builtin restart signals nothing without it, and starts exactly what it holds.
pub fn perform(
    action: &Action,
    target: Option<&ProcessInfo>,
    supervisor: Option<&Supervisor>,
    way_back: Option<&RestartPath>,
    ctx: &Context,
) -> Outcome {
    match (action.method, action.kind, target, supervisor) {
        (_, ActionKind::KillOrphan, Some(orphan), Some(supervisor)) => {
            kill_orphan(orphan, supervisor, ctx)
        }
        (_, _, target, Some(supervisor)) => {
            // A stack dump before the supervisor's restart is evidence, not a fight:
            // the signal does not end the process, and failing to send it (another
            // user's job) must not keep the supervisor from restarting it.
            let mut steps = Vec::new();
            if let Some(target) = target {
                before_supervisor_stop(target, &mut steps);
                if let Err(e) = pre_kill_signal(target, &mut steps, ctx) {
                    steps.push(format!("pre-kill signal not sent: {e}"));
                }
            }
            supervised_restart(steps, supervisor, target.map(|t| t.identity), ctx)
        }
        (Method::Command, _, _, None) => run_command(target, ctx),
        (Method::Builtin, ActionKind::Restart, Some(target), None) => {
            builtin_restart(target, way_back, ctx)
        }
        (Method::Builtin, ActionKind::Start, _, None) => builtin_start(way_back, ctx),
        (method, kind, _, _) => Outcome::failed(
            &[],
            format!("cannot {kind:?} with method {} here", method.as_str()).to_lowercase(),
        ),
    }
}

/// The double fork's leftover holds the port, so the supervisor's own restart could
/// never bind it: end the orphan first, then let the supervisor start its job.
fn kill_orphan(orphan: &ProcessInfo, supervisor: &Supervisor, ctx: &Context) -> Outcome {
    let mut steps = Vec::new();
    match signal::terminate(
        orphan.identity,
        ctx.deadline.cap(ctx.cfg.restart.stop_timeout),
    ) {
        Ok(ended) => steps.push(format!("orphan PID {} {}", orphan.pid(), ended.describe())),
        Err(e) => return Outcome::failed(&steps, e),
    }
    if let Err(why) = wait_port_free(ctx) {
        return Outcome::failed(&steps, why);
    }
    supervised_restart(steps, supervisor, Some(orphan.identity), ctx)
}

fn supervised_restart(
    mut steps: Vec<String>,
    supervisor: &Supervisor,
    old: Option<Identity>,
    ctx: &Context,
) -> Outcome {
    let deadline = ctx.deadline.sub(ctx.cfg.restart.command_timeout);
    match supervisor::restart(supervisor, deadline) {
        Ok(done) => {
            steps.push(done);
            verify(steps, None, false, Some(supervisor), old, ctx)
        }
        Err(why) => Outcome::failed(&steps, why),
    }
}

/// The supervisor's own stop sends SIGTERM and waits its stop timeout (supervisord's
/// `stopwaitsecs`, 10 s by default) before SIGKILL. A stopped server (`T`) cannot act
/// on that SIGTERM until continued, so the restart would sit out the whole wait: it is
/// sent SIGCONT first. A continue ends nothing, so the supervisor stays in charge of
/// the stop (docs/DESIGN.md, "Invariants"). A server in uninterruptible sleep (`D`)
/// acts on no signal until the kernel wait ends; that is said, and the supervisor's own
/// SIGKILL ends it: the watchdog does not kill a supervised process itself.
fn before_supervisor_stop(target: &ProcessInfo, steps: &mut Vec<String>) {
    let state = signal::state_of(target.identity).unwrap_or(target.state);
    match signal::treatment(state) {
        signal::Treatment::Term => {}
        signal::Treatment::TermThenCont => match signal::send(target.identity, libc::SIGCONT) {
            Ok(true) => steps.push(format!(
                "PID {} was stopped (T): sent SIGCONT so that it acts on the supervisor's SIGTERM at once",
                target.pid()
            )),
            Ok(false) => {}
            Err(e) => steps.push(format!(
                "PID {} is stopped (T) and SIGCONT was not sent ({e}): the supervisor's stop \
                 will wait its stop timeout and kill it",
                target.pid()
            )),
        },
        signal::Treatment::TermThenKillIfStillD => steps.push(format!(
            "PID {} is in uninterruptible sleep (D): it cannot act on the supervisor's SIGTERM \
             until the kernel wait ends; the supervisor's SIGKILL after its stop timeout ends it",
            target.pid()
        )),
    }
}

/// `restart.pre_kill_signal` (e.g. USR1: Hermes dumps its thread stacks to its log),
/// then a moment for the server to act on it.
fn pre_kill_signal(
    target: &ProcessInfo,
    steps: &mut Vec<String>,
    ctx: &Context,
) -> Result<(), signal::SignalError> {
    let Some(sig) = ctx.cfg.restart.pre_kill_signal else {
        return Ok(());
    };
    if signal::send(target.identity, sig)? {
        let name = crate::config::signal::name(sig).unwrap_or("?");
        steps.push(format!("sent SIG{name} to PID {}", target.pid()));
        sleep(ctx.deadline.cap(PRE_KILL_PAUSE));
    }
    Ok(())
}

/// What a builtin restart starts after the kill.
enum Start<'a> {
    Replay(&'a spawn::Launch),
    Shell(&'a str, &'a Path, Option<&'a spawn::Credentials>),
}

/// Kill the server and start it again: optional pre-kill signal, SIGTERM → SIGKILL,
/// wait for the port, start what was captured before (`way_back`), verify.
fn builtin_restart(target: &ProcessInfo, way_back: Option<&RestartPath>, ctx: &Context) -> Outcome {
    let restart = &ctx.cfg.restart;
    let mut steps = Vec::new();
    let start = match (way_back, &restart.start_command) {
        (Some(RestartPath::Replay(launch)), _) => Start::Replay(launch),
        (Some(RestartPath::StartCommand { cwd, user }), Some(shell)) => {
            Start::Shell(shell, cwd, user.as_ref())
        }
        _ => {
            return Outcome::failed(
                &steps,
                format!(
                    "no way to start PID {} again was proven, so it was not signalled",
                    target.pid()
                ),
            );
        }
    };
    if let Err(e) = pre_kill_signal(target, &mut steps, ctx) {
        return Outcome::failed(&steps, e);
    }
    match signal::terminate(target.identity, ctx.deadline.cap(restart.stop_timeout)) {
        Ok(ended) => steps.push(format!("PID {} {}", target.pid(), ended.describe())),
        Err(e) => return Outcome::failed(&steps, e),
    }
    if let Err(why) = wait_port_free(ctx) {
        return Outcome::failed(&steps, why);
    }
    if let Some(respawned) = respawned_by_parent(target, ctx) {
        steps.push(respawned);
        return verify(steps, None, false, None, Some(target.identity), ctx);
    }
    let log = server_log(ctx.state_dir);
    let child = match start {
        Start::Replay(launch) => spawn::replay(launch, &log),
        Start::Shell(shell, cwd, user) => spawn::shell_detached(shell, cwd, &log, user),
    };
    match child {
        Ok(child) => {
            steps.push(format!("started PID {}", child.id()));
            verify(
                steps,
                Some(child),
                matches!(start, Start::Replay(_)),
                None,
                Some(target.identity),
                ctx,
            )
        }
        Err(e) => Outcome::failed(&steps, e),
    }
}

/// A server whose parent is still alive may have a supervisor the detection does not
/// know (a shell loop, s6, a container's init): if something takes the port again
/// within a moment of the kill, that is its restart, and starting a second copy would
/// fight it. Returns what happened when the parent restarted it. Only holders that
/// descend from that parent, or run as the old server's user (a wrapper script that
/// ended with the server, started again by a loop above it), count: anyone may bind a
/// port the moment it is free (another user's squatter), and taking that for the
/// restart would start no server and verify the squatter's answer instead
/// (docs/SECURITY.md).
fn respawned_by_parent(old: &ProcessInfo, ctx: &Context) -> Option<String> {
    let port = ctx.port?;
    if old.ppid <= 1 || !matches!(os::identity(old.ppid), Ok(Some(_))) {
        return None;
    }
    let deadline = ctx.deadline.sub(RESPAWN_GRACE);
    loop {
        if let Ok(PortOwner::Held(pids)) = os::port_owner(port, &[])
            && pids.iter().all(|&pid| {
                os::descends_from(pid, old.ppid)
                    || (old.uid.is_some()
                        && os::process_info(pid).ok().and_then(|p| p.uid) == old.uid)
            })
        {
            return Some(format!(
                "PID {} took port {port} back at once: the old server's parent PID {} \
                 restarts it (an undetected supervisor?), so no second copy was started; \
                 set restart.method to that supervisor",
                pids[0], old.ppid
            ));
        }
        if deadline.passed() {
            return None;
        }
        sleep(POLL.min(deadline.remaining()));
    }
}

/// No server is running: start one with `start_command`, where observation found a
/// working directory for it.
fn builtin_start(way_back: Option<&RestartPath>, ctx: &Context) -> Outcome {
    let Some(shell) = &ctx.cfg.restart.start_command else {
        return Outcome::failed(&[], "no start_command configured");
    };
    let Some(RestartPath::StartCommand { cwd, user }) = way_back else {
        return Outcome::failed(&[], "no working directory for start_command was found");
    };
    if let Err(why) = wait_port_free(ctx) {
        return Outcome::failed(&[], why);
    }
    match spawn::shell_detached(shell, cwd, &server_log(ctx.state_dir), user.as_ref()) {
        Ok(child) => {
            let steps = vec![format!("ran start_command as PID {}", child.id())];
            verify(steps, Some(child), false, None, None, ctx)
        }
        Err(e) => Outcome::failed(&[], e),
    }
}

/// `method = "command"`: the operator's own restart command, bounded by
/// `command_timeout`. It learns the old PID from `WATCHDOG_TARGET_PID`.
fn run_command(target: Option<&ProcessInfo>, ctx: &Context) -> Outcome {
    let Some(shell) = &ctx.cfg.restart.command else {
        return Outcome::failed(&[], "method = \"command\" needs restart.command");
    };
    let env: Vec<(&str, String)> = target
        .map(|t| vec![("WATCHDOG_TARGET_PID", t.pid().to_string())])
        .unwrap_or_default();
    let deadline = ctx.deadline.sub(ctx.cfg.restart.command_timeout);
    match command::shell(shell, &env, &command_log(ctx.state_dir), deadline) {
        Ok(done) if done.status.success() => verify(
            vec![format!("ran `{shell}`")],
            None,
            false,
            None,
            target.map(|t| t.identity),
            ctx,
        ),
        Ok(done) => Outcome::failed(
            &[],
            format!(
                "`{shell}` failed ({}); its output is in {}",
                done.status,
                command_log(ctx.state_dir).display()
            ),
        ),
        Err(e) => Outcome::failed(&[], e),
    }
}

/// A new server refuses to start while anything holds its port, so wait for the old
/// one's socket to close (up to `stop_timeout`).
fn wait_port_free(ctx: &Context) -> Result<(), String> {
    let Some(port) = ctx.port else {
        return Ok(());
    };
    let deadline = ctx.deadline.sub(ctx.cfg.restart.stop_timeout);
    loop {
        let owner = os::port_owner(port, &[]);
        if matches!(owner, Ok(PortOwner::Free)) {
            return Ok(());
        }
        if deadline.passed() {
            let holder = match owner {
                Ok(PortOwner::Held(pids)) => format!("PID {}", pids[0]),
                Ok(_) => "a process this user cannot see".to_string(),
                Err(e) => format!("unknown ({e})"),
            };
            return Err(format!(
                "port {port} is still held by {holder} after {:.0}s; not starting a second server",
                ctx.cfg.restart.stop_timeout.as_secs_f64()
            ));
        }
        sleep(POLL.min(deadline.remaining()));
    }
}

/// Waits up to `verify_timeout` for health to pass, then names the new server and
/// counts its FDs. A started server that exits first fails at once rather than at the
/// end of the wait.
fn verify(
    mut steps: Vec<String>,
    mut child: Option<Child>,
    child_is_server: bool,
    supervisor: Option<&Supervisor>,
    old: Option<Identity>,
    ctx: &Context,
) -> Outcome {
    let started = Instant::now();
    let verify_timeout = ctx.cfg.restart.verify_timeout;
    let deadline = ctx.deadline.sub(verify_timeout);
    let health_timeout = ctx.cfg.health.timeout;
    let mut last_error: Option<String> = None;
    // Once the old server answered, that is the explanation, whatever came after.
    let mut old_answered: Option<u32> = None;
    loop {
        let budget = ctx
            .deadline
            .cap(deadline.remaining().max(LEAST_ATTEMPT).min(health_timeout));
        let (attempt, _) = ctx.prober.attempt(budget);
        // A restart that returned before ending the old server (an asynchronous
        // command) is not done while the old server is the one answering.
        let old_still_runs = old.filter(|o| os::identity(o.pid).ok().flatten() == Some(*o));
        if attempt.ok
            && let Some(o) = old_still_runs
        {
            old_answered = Some(o.pid);
        } else if attempt.ok {
            steps.push(format!(
                "healthy after {:.1}s",
                started.elapsed().as_secs_f64()
            ));
            let spawned = child.as_ref().map(Child::id);
            let new_pid = new_server_pid(ctx, spawned, supervisor, deadline)
                .or(spawned.filter(|_| child_is_server));
            let new_fds = new_pid
                .and_then(|pid| os::list_fds(pid).ok())
                .map(|fds| fds.len() as u64);
            return Outcome {
                ok: true,
                detail: steps.join("; "),
                new_pid,
                new_fds,
            };
        }
        // An attempt cut short that got no answer only says time ran out; what an
        // earlier full attempt saw says more.
        let cut_short = budget < health_timeout && attempt.status.is_none();
        if let Some(error) = attempt.error
            && !(cut_short && last_error.is_some())
        {
            last_error = Some(error);
        }
        if let Some(exit) = early_exit(child.as_mut(), child_is_server) {
            return Outcome::failed(
                &steps,
                format!(
                    "{exit} before becoming healthy (its output is in {})",
                    server_log(ctx.state_dir).display()
                ),
            );
        }
        if deadline.passed() {
            let why = match old_answered {
                Some(pid) => format!(
                    "the old server PID {pid} still runs and answers: the restart did not end it"
                ),
                None => last_error.unwrap_or_else(|| "no health check completed".into()),
            };
            return Outcome::failed(
                &steps,
                format!(
                    "not healthy within verify_timeout {:.0}s: {why}",
                    verify_timeout.as_secs_f64()
                ),
            );
        }
        sleep(deadline.cap(verify_pause(started.elapsed())));
    }
}

/// The pause after a failed verify attempt made `elapsed` after the wait began:
/// [`FAST_POLL`] at first, then [`SLOW_POLL`]. The wait's deadline caps it (`verify`).
pub fn verify_pause(elapsed: Duration) -> Duration {
    if elapsed < FAST_FOR {
        FAST_POLL
    } else {
        SLOW_POLL
    }
}

/// A replayed server that exits has failed; a start command that exits 0 may have
/// daemonized the server, so only its failure counts.
fn early_exit(child: Option<&mut Child>, child_is_server: bool) -> Option<String> {
    let status = child?.try_wait().ok()??;
    if child_is_server || !status.success() {
        Some(format!("the new process exited ({status})"))
    } else {
        None
    }
}

/// The new server: what answers on the port (found from the process we started, if
/// any), else what the supervisor says its job runs now.
fn new_server_pid(
    ctx: &Context,
    spawned: Option<u32>,
    supervisor: Option<&Supervisor>,
    deadline: Deadline,
) -> Option<u32> {
    let candidates: Vec<u32> = spawned.into_iter().collect();
    let on_port = ctx
        .port
        .and_then(|port| match os::port_owner(port, &candidates) {
            Ok(PortOwner::Held(pids)) => pids.first().copied(),
            _ => None,
        });
    on_port.or_else(|| supervisor.and_then(|s| jobs::query(s, deadline).ok()?.pid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// When attempts that fail at once (connection refused) are made: every 100 ms for
    /// the first 3 s (30 of them), then every 250 ms, and never past the deadline.
    #[test]
    fn verify_polls_fast_first_then_backs_off() {
        let deadline = Duration::from_secs(5);
        let mut at = Duration::ZERO;
        let mut times = vec![at];
        loop {
            at += verify_pause(at).min(deadline.saturating_sub(at));
            times.push(at);
            if at >= deadline {
                break;
            }
        }
        let gaps: Vec<u128> = times
            .windows(2)
            .map(|w| (w[1] - w[0]).as_millis())
            .collect();
        assert_eq!(&gaps[..30], &[100; 30][..]);
        assert_eq!(times[30], Duration::from_secs(3));
        assert_eq!(&gaps[30..], &[250; 8][..]);
        assert_eq!(times.last(), Some(&deadline));
        assert_eq!(verify_pause(Duration::from_secs(3)), SLOW_POLL);
        assert_eq!(verify_pause(Duration::from_secs(60)), SLOW_POLL);
    }

    /// A server that answers every request at once with HTTP 500, until dropped.
    fn failing_server() -> (TcpListener, String) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/health", listener.local_addr().unwrap());
        let accepting = listener.try_clone().unwrap();
        std::thread::spawn(move || {
            for stream in accepting.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        (listener, url)
    }

    /// The wait ends while the server keeps failing: the report names what the server
    /// answered, not a last attempt cut to nothing ("timed out after 0s").
    #[test]
    fn verify_reports_the_last_real_error() {
        let (_server, url) = failing_server();
        let state = tempfile::tempdir().unwrap();
        let mut cfg = crate::config::defaults(None);
        cfg.health.url = url;
        cfg.health.timeout = Duration::from_secs(5);
        cfg.restart.verify_timeout = Duration::from_millis(1100);
        let prober = Prober::new(&cfg.health).expect("no ca_file");
        let ctx = Context {
            cfg: &cfg,
            prober: &prober,
            deadline: Deadline::after(Duration::from_secs(30)),
            port: None,
            state_dir: state.path(),
        };
        let outcome = verify(vec!["started PID 1".into()], None, false, None, None, &ctx);
        assert!(!outcome.ok);
        assert!(
            outcome
                .detail
                .contains("not healthy within verify_timeout 1s")
                && outcome.detail.contains("500")
                && !outcome.detail.contains("timed out"),
            "{}",
            outcome.detail
        );
    }
}

#[cfg(target_os = "linux")]
#[cfg(test)]
mod respawn_tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::process::{Command, Stdio};

    /// A process killed (by PID, it is no child of ours) when the test ends.
    struct Killed(u32);

    impl Drop for Killed {
        fn drop(&mut self) {
            // SAFETY: kill(2) takes a PID and a signal number and touches no memory.
            unsafe { libc::kill(self.0 as libc::pid_t, libc::SIGKILL) };
        }
    }

    /// A child of ours, killed and reaped when the test ends.
    struct Reaped(std::process::Child);

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn context<'a>(cfg: &'a Config, prober: &'a Prober, port: u16, state: &'a Path) -> Context<'a> {
        Context {
            cfg,
            prober,
            deadline: Deadline::after(Duration::from_secs(10)),
            port: Some(port),
            state_dir: state,
        }
    }

    /// The old server's parent is alive, and right after the kill the port is taken by
    /// another user's process that does not descend from that parent (a squatter, on a
    /// shared box): that is not the parent's restart. Taking it for one started no
    /// server, verified the squatter's health answer and reported "restarted".
    #[test]
    #[ignore = "needs root (runs the port's stranger as uid 4343 through setpriv): run by script/test as root and .ci/run"]
    fn a_port_taken_by_a_stranger_is_not_the_parents_respawn() {
        // The old server: a child of this test process, whose parent (us) lives on.
        let old = Reaped(
            Command::new("sleep")
                .arg("60")
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let old = os::process_info(old.0.id()).unwrap();
        assert_eq!(old.ppid, std::process::id());
        // The stranger: re-parented away from us (its shell exits at once).
        let script = "import os, socket, time\n\
            s = socket.socket()\n\
            s.bind(('127.0.0.1', 0))\n\
            s.listen()\n\
            print(s.getsockname()[1], os.getpid(), flush=True)\n\
            time.sleep(60)\n";
        // As `user` (another one, through setpriv), or as the old server's (root).
        let reparented = |user: Option<u32>| {
            let mut command = match user {
                Some(uid) => {
                    let mut c = Command::new("setpriv");
                    c.args([
                        format!("--reuid={uid}"),
                        format!("--regid={uid}"),
                        "--clear-groups".into(),
                        "--".into(),
                    ]);
                    c.arg("sh");
                    c
                }
                None => Command::new("sh"),
            };
            let mut shell = command
                .args(["-c", "/usr/bin/python3 -c \"$1\" &", "sh", script])
                .current_dir("/")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            BufReader::new(shell.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            let _ = shell.wait();
            let mut words = line.split_whitespace().map(|w| w.parse::<u32>().unwrap());
            let port = u16::try_from(words.next().unwrap()).unwrap();
            let holder = Killed(words.next().unwrap());
            assert_ne!(os::parent_pid(holder.0).unwrap(), std::process::id());
            (port, holder)
        };
        assert_eq!(
            crate::probe::os::own_uid(),
            0,
            "run as root: a stranger is uid 4343 (script/test as root runs it; so does .ci/run)"
        );
        let (port, _stranger) = reparented(Some(4343));

        let cfg = crate::config::defaults(None);
        let prober = Prober::new(&cfg.health).expect("no ca_file");
        let state = tempfile::tempdir().unwrap();
        let ctx = context(&cfg, &prober, port, state.path());
        assert_eq!(respawned_by_parent(&old, &ctx), None);

        // The old server's own user, outside the parent's tree: a wrapper script that
        // ended with the server, run again by a loop above it.
        let (port, _again) = reparented(None);
        let ctx = context(&cfg, &prober, port, state.path());
        assert!(respawned_by_parent(&old, &ctx).is_some());

        // The parent itself (or a child of it) taking the port is its restart.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let own_port = listener.local_addr().unwrap().port();
        let ctx = context(&cfg, &prober, own_port, state.path());
        let said = respawned_by_parent(&old, &ctx).expect("the parent's own listener");
        assert!(said.contains(&format!("parent PID {}", old.ppid)), "{said}");
    }
}
