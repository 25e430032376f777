//! Helper processes, and how each is ended, also when its test fails.
//!
//! - [`ChildGuard`] (and `Running` in `run.rs`) start their child in a process group of
//!   its own and SIGKILL that whole group on drop, so what the child started in its group
//!   (a shell loop's server) goes with it. Groups and sessions the child's own children
//!   create are not reached: the servers the watchdog starts call setsid (they are left
//!   to `TestEnv`), and the commands it runs (supervisorctl, sv, systemctl, a restart
//!   command) each get a group of their own from the watchdog.
//! - [`GracefulChild`] stops a daemon (supervisord, runsv) as its operator would:
//!   SIGTERM, a bounded wait, SIGKILL.
//!
//! And [`wait_until`]: polling for a condition, bounded.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A child process started in a process group of its own; on drop the group is killed
/// (SIGKILL) and the child reaped (see [`kill_own_group`]).
pub struct ChildGuard(pub Child);

impl ChildGuard {
    pub fn spawn(cmd: &mut Command) -> ChildGuard {
        ChildGuard(cmd.process_group(0).spawn().expect("spawn helper process"))
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        kill_own_group(&mut self.0);
    }
}

/// True while `child` has not been reaped (it runs, or is a zombie): its PID, and so
/// the process group it leads, cannot have been given to anyone else. Asked with
/// `waitid(WNOWAIT)`, which reaps nothing; std's `try_wait` may have reaped it already.
fn unreaped(child: &Child) -> bool {
    let pid: libc::id_t = child.id();
    // SAFETY: waitid writes only into `info`, a zeroed siginfo_t we own; WNOWAIT leaves
    // the child waitable, WNOHANG keeps it from blocking.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_PID,
            pid,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        ) == 0
    }
}

/// SIGKILLs the process group `child` leads (it was spawned with `process_group(0)`, so
/// the group ID is its PID), then reaps it. The group is signalled only while `child`
/// is unreaped, so the ID still names the group this test created, even when the child
/// itself has exited and left members behind; never a group by any other ID.
pub(super) fn kill_own_group(child: &mut Child) {
    if unreaped(child)
        && let Ok(pgid) = libc::pid_t::try_from(child.id())
    {
        // SAFETY: killpg(2) on the group our unreaped child leads; no memory involved.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `sleep 300` as an unrelated live process.
pub fn spawn_sleep() -> ChildGuard {
    ChildGuard::spawn(
        Command::new("sleep")
            .arg("300")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// A daemon-like child (supervisord, runsv) stopped the way its operator would stop it:
/// SIGTERM, a bounded wait for it to stop its own children and exit, then SIGKILL; always
/// reaped. Only this PID is signalled.
pub struct GracefulChild {
    child: Option<Child>,
    /// How long to wait after SIGTERM before SIGKILL.
    pub grace: Duration,
}

impl GracefulChild {
    pub fn spawn(cmd: &mut Command, grace: Duration) -> GracefulChild {
        GracefulChild {
            child: Some(
                cmd.spawn()
                    .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program())),
            ),
            grace,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child").id()
    }

    /// The exit status if it has exited (and reaps it).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok()?
    }

    /// SIGTERM, wait up to `grace`, SIGKILL; reaps it. Returns whether SIGTERM sufficed.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        // SAFETY: kill(2) on our own unreaped child: the PID cannot have been reused.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for GracefulChild {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes; returns the last value.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}
