//! The failsafe: every run ends by its bound, whatever the kernel does (docs/SECURITY.md).
//!
//! A run is started once a minute by cron, launchd or a timer; one that never ends
//! stacks up with the next. The waits of a run are bounded ([`crate::deadline`]), but a
//! system call may still not return: a read of `/proc/PID/cmdline` waits for the
//! target's mmap lock (`mmap_read_lock_killable`), a read on a hung NFS mount waits for
//! its server. Those are *killable* sleeps: only a fatal signal wakes them. A SIGALRM
//! handler makes SIGALRM non-fatal, so it never woke them, and the run hung for good.
//!
//! So a watcher thread sleeps until the bound, writes one line to stderr, and calls
//! `_exit(code)`. `_exit` is `exit_group(2)`: the kernel sends SIGKILL to every other
//! thread of the process and wakes each with `signal_wake_up(t, 1)`, which includes
//! `TASK_WAKEKILL` ("For SIGKILL, we want to wake it up in the stopped/traced/killable
//! case", Linux `kernel/signal.c`, `zap_other_threads` and `signal_wake_up`). The
//! stuck thread then leaves its killable sleep and the process exits with `code`.
//! macOS `exit` ends every thread of the task the same way.
//!
//! When the thread cannot be started (the process limit is reached, memory is short),
//! `alarm(2)` with SIGALRM's *default* action takes its place: a signal whose default
//! action terminates is fatal, and a fatal signal is turned into the same group-wide
//! SIGKILL (`complete_signal` in `kernel/signal.c`), so killable sleeps end too. That
//! exit is "killed by SIGALRM" rather than a code, and writes no line: it is the price
//! of a process that could not get a thread.
//!
//! The failsafe is armed first thing in `main`, with [`LOADING_BOUND`], before the
//! configuration is read; then again with the run's bound once it is known. A truly
//! uninterruptible sleep (`D` state that ignores SIGKILL) ends nothing; the process
//! then exits when the kernel returns. Nor does a process someone stopped (SIGSTOP):
//! its watcher is stopped with it, and a signal to a stopped process waits for SIGCONT.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crate::exit_code::ExitCode;

/// Reading the configuration file takes microseconds; this leaves room for a slow disk
/// while a file system that does not answer (an NFS home directory) still ends the run
/// well before the next one starts.
pub const LOADING_BOUND: Duration = Duration::from_secs(10);
/// Extra time past the run's bound before the failsafe ends it: the run's own deadline
/// ends its waits first and reports what it saw; this only catches what cannot end.
pub const GRACE: Duration = Duration::from_secs(2);
/// If writing the line blocks (stderr a full pipe nobody reads), a default-action
/// SIGALRM ends the process this much later.
const WRITE_BACKSTOP_SECS: u32 = 1;
/// Small: the watcher only sleeps and writes.
const WATCHER_STACK: usize = 64 * 1024;

/// When the run ends, in milliseconds after [`anchor`]; `u64::MAX`: never.
static END_MS: AtomicU64 = AtomicU64::new(u64::MAX);
/// The bound armed last, in seconds, for the line.
static BOUND_SECS: AtomicU64 = AtomicU64::new(0);
/// The exit code then.
static CODE: AtomicU8 = AtomicU8::new(ExitCode::RestartFailed as u8);
/// The line written then, formatted when armed: the watcher neither allocates nor
/// formats when it fires, and never waits for the lock.
static LINE: Mutex<String> = Mutex::new(String::new());
/// The watcher, or `None` when it could not be started (then `alarm` stands in).
static WATCHER: OnceLock<Option<Thread>> = OnceLock::new();

fn anchor() -> Instant {
    static ANCHOR: OnceLock<Instant> = OnceLock::new();
    *ANCHOR.get_or_init(Instant::now)
}

/// How long this process has run: from the first [`arm`], first thing in `main`, so
/// the run's duration in the report (docs/REPORT.md, "The report") includes reading
/// the configuration.
pub fn elapsed() -> Duration {
    anchor().elapsed()
}

fn now_ms() -> u64 {
    u64::try_from(anchor().elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Ends the process `bound` from now with `code`, unless it has ended before or the
/// failsafe is armed again. `doing` names the work in the line written then
/// ("reading the configuration").
pub fn arm(bound: Duration, code: ExitCode, doing: &str) {
    let end = now_ms().saturating_add(u64::try_from(bound.as_millis()).unwrap_or(u64::MAX));
    BOUND_SECS.store(bound.as_secs(), Ordering::SeqCst);
    set_stakes(code, &line(bound.as_secs(), code, doing));
    END_MS.store(end, Ordering::SeqCst);
    match watcher() {
        Some(thread) => thread.unpark(),
        None => arm_alarm(bound),
    }
}

/// Keeps the bound and changes what ending there means: `check` about to act says
/// "restart failed" (3) if it is stopped; after acting, the outcome's code.
pub fn relabel(code: ExitCode, doing: &str) {
    let bound = BOUND_SECS.load(Ordering::SeqCst);
    set_stakes(code, &line(bound, code, doing));
}

fn line(bound_secs: u64, code: ExitCode, doing: &str) -> String {
    format!(
        "watchdog: this run did not end within its bound ({bound_secs}s) while {doing}; \
         stopped with exit {}: a read of /proc or of a file system did not return\n",
        code.code()
    )
}

fn set_stakes(code: ExitCode, line: &str) {
    // A poisoned lock only means a panic while formatting; the text is still whole.
    let mut held = LINE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    held.clear();
    held.push_str(line);
    CODE.store(code.code(), Ordering::SeqCst);
}

/// The watcher thread, started on first use. `None` when it cannot be.
fn watcher() -> Option<&'static Thread> {
    WATCHER
        .get_or_init(|| {
            std::thread::Builder::new()
                .name("failsafe".into())
                .stack_size(WATCHER_STACK)
                .spawn(watch)
                .ok()
                .map(|handle| handle.thread().clone())
        })
        .as_ref()
}

/// Sleeps until the end (re-read after every wake: [`arm`] may move it), then stops the
/// process.
fn watch() {
    loop {
        let end = END_MS.load(Ordering::SeqCst);
        let now = now_ms();
        if now >= end {
            stop();
        }
        std::thread::park_timeout(Duration::from_millis(end - now));
    }
}

fn stop() -> ! {
    // SAFETY: signal(2) and alarm(2) take plain values; the default action of SIGALRM
    // ends the process should the write below block.
    unsafe {
        libc::signal(libc::SIGALRM, libc::SIG_DFL);
        libc::alarm(WRITE_BACKSTOP_SECS);
    }
    let code = CODE.load(Ordering::SeqCst);
    match LINE.try_lock() {
        Ok(line) => write_stderr(line.as_bytes()),
        Err(_) => write_stderr(b"watchdog: this run did not end within its bound; stopped\n"),
    }
    // SAFETY: _exit(2) ends the whole process (exit_group) without running destructors
    // or flushing buffers another thread may hold locked.
    unsafe { libc::_exit(i32::from(code)) }
}

fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: write(2) reads `bytes.len()` bytes from a live slice.
        let written = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        match usize::try_from(written) {
            Ok(n) if n > 0 => bytes = &bytes[n.min(bytes.len())..],
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => return,
        }
    }
}

/// Without a watcher: SIGALRM with its default action, which is fatal (see the module
/// comment). Re-arming replaces the previous alarm.
fn arm_alarm(bound: Duration) {
    // alarm(0) would cancel: at least one second.
    let seconds = u32::try_from(bound.as_secs().max(1)).unwrap_or(u32::MAX);
    // SAFETY: signal(2) and alarm(2) take plain values and touch no memory of ours.
    unsafe {
        libc::signal(libc::SIGALRM, libc::SIG_DFL);
        libc::alarm(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_the_bound_the_work_and_the_code() {
        let text = line(47, ExitCode::NotActed, "reading it");
        assert!(text.starts_with("watchdog: "), "{text}");
        assert!(text.contains("(47s) while reading it"), "{text}");
        assert!(text.contains("exit 4"), "{text}");
        assert!(text.ends_with('\n') && text.matches('\n').count() == 1);
    }

    /// The fallback arms SIGALRM with its default action, even over an inherited
    /// "ignore": the alarm ends the process. (Shown in a forked child, which only makes
    /// async-signal-safe calls before it is ended.)
    #[test]
    fn without_a_watcher_the_alarm_ends_the_process() {
        // SAFETY: the child calls only signal(2), alarm(2), pause(2) and _exit(2).
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork");
        if child == 0 {
            // SAFETY: as above, in the child.
            unsafe {
                libc::signal(libc::SIGALRM, libc::SIG_IGN);
                arm_alarm(Duration::from_millis(10));
                libc::pause();
                libc::_exit(0);
            }
        }
        let mut status = 0;
        // SAFETY: waitpid on the child we forked, writing one int we own.
        assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGALRM,
            "{status:#x}"
        );
    }

    #[test]
    fn arming_far_ahead_and_relabelling_never_fires() {
        // The watcher of this test process: armed for a day, then for ever.
        arm(Duration::from_secs(24 * 3600), ExitCode::NotActed, "a test");
        relabel(ExitCode::RestartFailed, "a test, acting");
        assert_eq!(CODE.load(Ordering::SeqCst), 3);
        assert!(LINE.lock().unwrap().contains("a test, acting"));
        arm(Duration::MAX, ExitCode::NotActed, "a test");
        assert_eq!(END_MS.load(Ordering::SeqCst), u64::MAX);
        assert!(watcher().is_some(), "a test process can start a thread");
    }
}
