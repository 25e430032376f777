//! Signals through a pidfd (`pidfd_open(2)`, Linux 5.3; `pidfd_send_signal(2)`, 5.1).
//!
//! A PID alone names whatever process holds that number when the signal is sent: the
//! server may have exited and its PID been reused between the identity check and
//! `kill(2)`. A pidfd names one process for as long as it is open, so the identity is
//! read after the pidfd is opened: if it still matches, the pidfd refers to that very
//! process, and a signal sent through it can reach no other. On a kernel without
//! `pidfd_open` (ENOSYS) the re-check and `kill` of the other platforms is used.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::super::{Delivery, Identity, SignalFault, kill_after_recheck, signal_pid, still_same};

pub fn signal_if_same(who: Identity, signal: i32) -> Result<Delivery, SignalFault> {
    let failed = |source: io::Error| SignalFault::Failed {
        pid: who.pid,
        signal,
        source,
    };
    let pid = signal_pid(who, signal)?;
    // SAFETY: pidfd_open takes a PID and flags (none) and returns a new FD or -1; it
    // touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENOSYS) => kill_after_recheck(who, signal),
            Some(libc::ESRCH) => Ok(Delivery::Gone),
            _ => Err(failed(err)),
        };
    }
    let fd = i32::try_from(fd).map_err(|_| failed(io::Error::other("pidfd out of range")))?;
    // SAFETY: `fd` was just returned by pidfd_open, is open, and nothing else owns it;
    // the OwnedFd closes it once.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd) };
    // Read after the pidfd pins the process: a match now means the pidfd is that process.
    if !still_same(who)? {
        return Ok(Delivery::Gone);
    }
    // SAFETY: pidfd_send_signal(pidfd, sig, info, flags): a live pidfd of ours, a
    // plain signal number, a null siginfo (the kernel fills in a kill()-style one) and
    // no flags; no memory of ours is read or written.
    let sent = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if sent == 0 {
        return Ok(Delivery::Sent);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        // It exited after the check: nothing of it is left to signal.
        Some(libc::ESRCH) => Ok(Delivery::Gone),
        _ => Err(failed(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};

    /// A `sleep` that is stopped, so that a signal sent to it stays pending where
    /// /proc shows it (`ShdPnd:`) instead of ending it.
    struct Stopped(Child);

    impl Stopped {
        fn start() -> Stopped {
            let child = Command::new("sleep").arg("60").spawn().unwrap();
            let stopped = Stopped(child);
            // SAFETY: kill(2) on our own child, plain integers.
            assert_eq!(
                unsafe { libc::kill(stopped.pid() as i32, libc::SIGSTOP) },
                0
            );
            let mut tries = 0;
            while stopped.state() != Some('T') {
                tries += 1;
                assert!(tries < 1000, "sleep never stopped");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            stopped
        }
        fn pid(&self) -> u32 {
            self.0.id()
        }
        fn status(&self) -> String {
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap()
        }
        fn state(&self) -> Option<char> {
            let line = self.status();
            let state = line.lines().find_map(|l| l.strip_prefix("State:"))?;
            state.trim().chars().next()
        }
        /// The process-wide pending signals (`ShdPnd:`), as a mask.
        fn pending(&self) -> u64 {
            let status = self.status();
            let mask = status
                .lines()
                .find_map(|l| l.strip_prefix("ShdPnd:"))
                .unwrap()
                .trim();
            u64::from_str_radix(mask, 16).unwrap()
        }
        fn identity(&self) -> Identity {
            super::super::identity(self.pid()).unwrap().unwrap()
        }
    }

    impl Drop for Stopped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn bit(signal: i32) -> u64 {
        1 << (signal - 1)
    }

    /// `send` refuses an identity whose start time differs (another process that got
    /// the PID) and delivers `signal` to the real one.
    fn only_the_same_process_is_signalled(
        send: fn(Identity, i32) -> Result<Delivery, SignalFault>,
        signal: i32,
    ) {
        let target = Stopped::start();
        let real = target.identity();
        let reused = Identity {
            start_key: real.start_key + 1,
            ..real
        };
        assert!(matches!(send(reused, signal), Ok(Delivery::Gone)));
        assert_eq!(target.pending(), 0, "the other process got the signal");
        assert!(matches!(send(real, signal), Ok(Delivery::Sent)));
        assert_eq!(target.pending(), bit(signal));
    }

    #[test]
    fn a_reused_identity_is_not_signalled() {
        only_the_same_process_is_signalled(signal_if_same, libc::SIGTERM);
    }

    /// The path taken on kernels without pidfd_open refuses a reused identity too.
    #[test]
    fn the_fallback_rechecks_before_kill() {
        only_the_same_process_is_signalled(kill_after_recheck, libc::SIGUSR1);
    }

    #[test]
    fn a_reaped_process_is_gone() {
        let mut child = Command::new("true").spawn().unwrap();
        let who = super::super::identity(child.id()).unwrap();
        child.wait().unwrap();
        if let Some(who) = who {
            assert!(matches!(
                signal_if_same(who, libc::SIGTERM),
                Ok(Delivery::Gone)
            ));
        }
    }
}
