//! Restarts through the supervisor that owns the server (docs/DESIGN.md, "Acting"; never
//! fight the supervisor: docs/DESIGN.md, "Invariants"). With a supervisor the watchdog
//! never spawns the server itself and never signals the job's own process:
//! - systemd with `Restart=on-failure` treats a process that exits on SIGTERM as a clean
//!   stop and leaves the unit dead; only `systemctl restart` brings it back;
//! - launchd (`KeepAlive`), supervisord (`autorestart`) and runit respawn a job that dies
//!   behind their back, so a restart of our own would race theirs for the port and
//!   leave a second, unsupervised copy;
//! - only the supervisor knows the job's real command, environment, user and limits.
//!
//! The one process signalled here is an orphan: it holds the port but the supervisor
//! no longer owns it, so nothing else will ever stop it.

use crate::command::{self, Output};
use crate::deadline::Deadline;
use crate::probe::supervisor::{self, Supervisor};

/// Asks the supervisor to restart its job, within `command_timeout`. Returns what was
/// run, or why it failed, with systemd's start-limit refusal named as such: retrying
/// blindly would only hit the limit again.
pub fn restart(supervisor: &Supervisor, deadline: Deadline) -> Result<String, String> {
    let argv = supervisor.restart_argv();
    let shown = argv.join(" ");
    let done = command::run(&argv, &[], Output::Capture, deadline).map_err(|e| e.to_string())?;
    if done.status.success() {
        return Ok(format!("ran `{shown}`"));
    }
    // Some refusals are only visible in the job's state afterwards.
    let after = supervisor::query(supervisor, deadline);
    if let Ok(job) = &after {
        if job.start_limit_hit
            && let Some(hint) = supervisor.reset_hint()
        {
            return Err(hint);
        }
        // supervisorctl exits non-zero for a program that was not running before the
        // restart (FATAL, BACKOFF), though it started it: the job's state decides.
        if job.pid.is_some() {
            return Ok(format!(
                "ran `{shown}` ({}; the job is {} now)",
                done.status, job.state
            ));
        }
    }
    Err(format!(
        "`{shown}` failed ({}): {}",
        done.status,
        one_line(&done.text())
    ))
}

fn one_line(text: &str) -> String {
    let joined = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    if joined.is_empty() {
        "no output".into()
    } else {
        joined
    }
}
