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

/// SIGTERM, wait up to `stop_timeout`, then SIGKILL. A stopped process (SIGSTOP) is
/// also sent SIGCONT so that it can act on the SIGTERM; if it does not, SIGKILL ends
/// it regardless of the stop.
pub fn terminate(who: Identity, stop_timeout: Duration) -> Result<Ending, SignalError> {
    if !send(who, libc::SIGTERM)? {
        return Ok(Ending::AlreadyGone);
    }
    if is_stopped(who.pid) {
        send(who, libc::SIGCONT)?;
    }
    if wait_gone(who, Deadline::after(stop_timeout)) {
        return Ok(Ending::Terminated);
    }
    if !send(who, libc::SIGKILL)? {
        return Ok(Ending::Terminated);
    }
    if wait_gone(who, Deadline::after(AFTER_KILL)) {
        Ok(Ending::Killed)
    } else {
        Err(SignalError::Survived { pid: who.pid })
    }
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

fn is_stopped(pid: u32) -> bool {
    matches!(os::process_info(pid), Ok(info) if info.state == ProcState::Stopped)
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
        assert!(matches!(ended, Ok(Ending::Terminated)), "{ended:?}");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(libc::SIGTERM),
            "only the real SIGTERM arrived"
        );
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
