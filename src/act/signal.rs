//! Signals, each sent only to the process identified (docs/SECURITY.md, "Signals"): PIDs are reused, so a
//! PID alone is never enough to signal. On Linux the signal goes through a pidfd
//! opened before the identity check, which closes the window between check and send;
//! on macOS the identity is re-checked right before `kill`.

use std::thread::sleep;
use std::time::Duration;

use crate::deadline::Deadline;
use crate::probe::os::{self, Delivery, Identity, ProcState, SignalFault};

const POLL: Duration = Duration::from_millis(50);
/// How long to wait for the kernel to tear a process down after SIGKILL. Covered by
/// the run bound's slack.
const AFTER_KILL: Duration = Duration::from_secs(2);
/// How long a process in uninterruptible sleep gets after SIGTERM to leave it before
/// SIGKILL (`Treatment::TermThenKillIfStillD`).
const D_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("refusing to signal PID {pid}: {why}")]
    Refused { pid: u32, why: String },
    /// The signal failed, or the process could not be told to be the same one
    /// (`os::SignalFault`, worded there).
    #[error(transparent)]
    Fault(#[from] SignalFault),
    #[error("PID {pid} survived SIGKILL (uninterruptible sleep?); not restarting over it")]
    Survived { pid: u32 },
}

/// The signals that end a process in a given state (`treatment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// SIGTERM, SIGKILL after `stop_timeout`.
    Term,
    /// SIGTERM then SIGCONT, SIGKILL after `stop_timeout`: a stopped process (SIGSTOP,
    /// SIGTSTP) keeps a handled SIGTERM pending until it is continued, so without the
    /// SIGCONT a server that shuts down cleanly on SIGTERM would sit out the whole
    /// `stop_timeout` and be killed. SIGCONT comes after SIGTERM, as systemd sends it
    /// (systemd.kill(5)): the SIGTERM is already pending when the process resumes, so
    /// it is handled before any more of the wedged work runs. A ptrace stop (`t`)
    /// ignores the SIGCONT; SIGKILL ends it.
    TermThenCont,
    /// SIGTERM; SIGKILL after [`D_GRACE`] if the process is still in uninterruptible
    /// sleep then, else after `stop_timeout`. In `D` no handler runs, so the SIGTERM
    /// can only be acted on once the kernel wait ends. Not SIGKILL at once: one `D`
    /// sample is also a disk read in progress, and a server that leaves it within the
    /// grace shuts down cleanly. Not the whole `stop_timeout`: a process still in `D`
    /// a second after SIGTERM, having failed health through the whole observation, is
    /// stuck (NFS, FUSE, a dead disk), and most such long waits are killable ones
    /// (TASK_KILLABLE, shown as `D`), which wake for SIGKILL but not for a SIGTERM the
    /// server handles. An unkillable wait survives both; `SignalError::Survived` says so.
    TermThenKillIfStillD,
}

/// Which signals end a process seen in `state` right before the first one.
pub fn treatment(state: ProcState) -> Treatment {
    match state {
        ProcState::Stopped => Treatment::TermThenCont,
        ProcState::Uninterruptible => Treatment::TermThenKillIfStillD,
        ProcState::Running | ProcState::Zombie | ProcState::Other => Treatment::Term,
    }
}

/// How a process went, in the state it was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub state: ProcState,
    pub ending: Ending,
}

impl Ended {
    /// For the run's steps (the log's `restart` event, the report).
    pub fn describe(self) -> String {
        match (treatment(self.state), self.ending) {
            (_, Ending::AlreadyGone) => Ending::AlreadyGone.describe().into(),
            (Treatment::TermThenCont, Ending::Terminated) => {
                "was stopped (T): sent SIGCONT after SIGTERM so it could act on it; it exited after SIGTERM".into()
            }
            (Treatment::TermThenCont, Ending::Killed) => {
                "was stopped (T): sent SIGCONT after SIGTERM, but it did not exit; killed with SIGKILL after stop_timeout".into()
            }
            (Treatment::TermThenKillIfStillD, Ending::Killed) => format!(
                "was in uninterruptible sleep (D), where SIGTERM cannot be acted on: still in it {}s after SIGTERM, so killed with SIGKILL then (or after stop_timeout)",
                D_GRACE.as_secs()
            ),
            (Treatment::TermThenKillIfStillD, Ending::Terminated) => {
                "was in uninterruptible sleep (D); it left it and exited after SIGTERM".into()
            }
            (Treatment::Term, ending) => ending.describe().into(),
        }
    }
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It was already gone before we signalled it.
    AlreadyGone,
    Terminated,
    Killed,
}

impl Ending {
    pub fn describe(self) -> &'static str {
        match self {
            Ending::AlreadyGone => "was already gone",
            Ending::Terminated => "exited after SIGTERM",
            Ending::Killed => "killed with SIGKILL after stop_timeout",
        }
    }
}

/// Sends `signal` if, and only if, the process is still the one identified: on Linux
/// through a pidfd, so that not even a PID reused after the check can receive it
/// (`os::signal_if_same`). Returns `Ok(false)` when it is gone (or the PID now belongs
/// to another process).
pub fn send(who: Identity, signal: i32) -> Result<bool, SignalError> {
    refuse_protected(who.pid)?;
    match os::signal_if_same(who, signal)? {
        Delivery::Sent => Ok(true),
        Delivery::Gone => Ok(false),
    }
}

/// SIGTERM, wait up to `stop_timeout`, then SIGKILL, as the process's state right
/// before the SIGTERM calls for ([`treatment`]: SIGCONT for a stopped one, an early
/// SIGKILL for one stuck in uninterruptible sleep).
pub fn terminate(who: Identity, stop_timeout: Duration) -> Result<Ended, SignalError> {
    let state = state_of(who).unwrap_or(ProcState::Running);
    let ended = |ending| Ok(Ended { state, ending });
    if !send(who, libc::SIGTERM)? {
        return ended(Ending::AlreadyGone);
    }
    let stop = Deadline::after(stop_timeout);
    match treatment(state) {
        Treatment::Term => {}
        Treatment::TermThenCont => {
            send(who, libc::SIGCONT)?;
        }
        Treatment::TermThenKillIfStillD => {
            if wait_gone(who, Deadline::after(stop.cap(D_GRACE))) {
                return ended(Ending::Terminated);
            }
            if state_of(who) == Some(ProcState::Uninterruptible) {
                return kill(who).and_then(ended);
            }
        }
    }
    if wait_gone(who, stop) {
        return ended(Ending::Terminated);
    }
    kill(who).and_then(ended)
}

/// SIGKILL and the wait for the kernel to tear the process down.
fn kill(who: Identity) -> Result<Ending, SignalError> {
    if !send(who, libc::SIGKILL)? {
        return Ok(Ending::Terminated);
    }
    if wait_gone(who, Deadline::after(AFTER_KILL)) {
        Ok(Ending::Killed)
    } else {
        Err(SignalError::Survived { pid: who.pid })
    }
}

/// The state of `who`, if it still runs as that process (a PID reused since is
/// another process, whose state says nothing about ours).
pub fn state_of(who: Identity) -> Option<ProcState> {
    os::process_info(who.pid)
        .ok()
        .filter(|info| info.identity == who)
        .map(|info| info.state)
}

/// PID 0, init, the watchdog itself and its ancestors (the cron or launchd job, a
/// shell) are never signalled, whatever the sources said: the same rule discovery
/// applies (`probe::discover::Protected`), checked again at the last moment.
fn refuse_protected(pid: u32) -> Result<(), SignalError> {
    let why = if pid == 0 {
        Some("PID 0 is never signalled".to_string())
    } else {
        crate::probe::discover::Protected::current().why_not(pid)
    };
    match why {
        Some(why) => Err(SignalError::Refused { pid, why }),
        None => Ok(()),
    }
}

/// Whether `who` still runs; an identity that cannot be read is an error, never
/// taken for "gone".
fn still_running(who: Identity) -> Result<bool, SignalError> {
    Ok(os::still_same(who)?)
}

/// Polls until the process is gone (or a zombie, which holds no FDs and no port).
/// An identity that cannot be read counts as still there: waiting longer is safe.
pub fn wait_gone(who: Identity, deadline: Deadline) -> bool {
    loop {
        if matches!(still_running(who), Ok(false)) {
            return true;
        }
        if deadline.passed() {
            return false;
        }
        sleep(POLL.min(deadline.remaining()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reaped_process_is_gone_not_an_error() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let who = os::identity(child.id()).unwrap().unwrap();
        let alive = still_running(who);
        let _ = child.kill();
        let _ = child.wait();
        assert!(matches!(alive, Ok(true)), "{alive:?}");
        assert!(matches!(still_running(who), Ok(false)));
        assert!(!send(who, libc::SIGTERM).unwrap(), "nothing left to signal");
    }

    /// A process whose start time differs is another process that got the PID: it is
    /// not signalled (it survives a SIGKILL sent in its PID's name).
    #[test]
    fn a_reused_identity_is_not_signalled() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let real = os::identity(child.id()).unwrap().unwrap();
        let reused = Identity {
            start_key: real.start_key.wrapping_add(1),
            ..real
        };
        let sent = send(reused, libc::SIGKILL);
        let alive = child.try_wait().map(|s| s.is_none());
        let ended = terminate(real, Duration::from_secs(5));
        let _ = child.kill();
        let status = child.wait().unwrap();
        assert!(matches!(sent, Ok(false)), "{sent:?}");
        assert!(matches!(alive, Ok(true)));
        assert!(
            matches!(
                ended,
                Ok(Ended {
                    ending: Ending::Terminated,
                    ..
                })
            ),
            "{ended:?}"
        );
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(libc::SIGTERM),
            "only the real SIGTERM arrived"
        );
    }

    /// The signals by state: SIGCONT only for a stopped process, the early SIGKILL only
    /// for one in uninterruptible sleep, the plain SIGTERM → SIGKILL for the rest.
    #[test]
    fn the_signals_follow_the_state() {
        assert_eq!(treatment(ProcState::Running), Treatment::Term);
        assert_eq!(treatment(ProcState::Stopped), Treatment::TermThenCont);
        assert_eq!(
            treatment(ProcState::Uninterruptible),
            Treatment::TermThenKillIfStillD
        );
        assert_eq!(treatment(ProcState::Zombie), Treatment::Term);
        assert_eq!(treatment(ProcState::Other), Treatment::Term);
        let said = |state, ending| Ended { state, ending }.describe();
        assert!(said(ProcState::Stopped, Ending::Terminated).contains("stopped (T)"));
        assert!(said(ProcState::Stopped, Ending::Terminated).contains("SIGCONT"));
        assert!(
            said(ProcState::Uninterruptible, Ending::Killed)
                .contains("uninterruptible sleep (D), where SIGTERM cannot be acted on")
        );
        assert_eq!(
            said(ProcState::Running, Ending::Killed),
            Ending::Killed.describe()
        );
        assert_eq!(
            said(ProcState::Stopped, Ending::AlreadyGone),
            "was already gone"
        );
    }

    /// A stopped child that handles SIGTERM exits by its handler, not by SIGKILL: the
    /// SIGCONT let it act on the SIGTERM.
    #[test]
    fn a_stopped_process_acts_on_sigterm() {
        use std::io::BufRead;
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let who = os::identity(child.id()).unwrap().unwrap();
        // The trap is set once it says so.
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        assert_eq!(line, "ready\n");
        // SAFETY: kill(2) takes a PID and a signal number and touches no memory.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGSTOP) };
        let deadline = Deadline::after(Duration::from_secs(10));
        while state_of(who) != Some(ProcState::Stopped) && !deadline.passed() {
            sleep(POLL);
        }
        let ended = terminate(who, Duration::from_secs(20));
        let _ = child.kill();
        let status = child.wait().unwrap();
        assert_eq!(
            ended.ok(),
            Some(Ended {
                state: ProcState::Stopped,
                ending: Ending::Terminated
            })
        );
        assert_eq!(status.code(), Some(7), "{status:?}: the trap ran");
    }

    #[test]
    fn init_ourselves_and_every_ancestor_are_refused() {
        let parent = std::os::unix::process::parent_id();
        let grandparent = os::parent_pid(parent).unwrap();
        for pid in [0, 1, std::process::id(), parent, grandparent] {
            assert!(
                matches!(refuse_protected(pid), Err(SignalError::Refused { .. })),
                "PID {pid} was not refused"
            );
        }
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let allowed = refuse_protected(child.id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(allowed.is_ok(), "{allowed:?}");
    }
}
