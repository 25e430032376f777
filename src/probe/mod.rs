//! Observation: everything read about the target in one run. No side effects on it.

pub mod census;
pub mod discover;
pub mod fds;
pub mod files;
pub mod health;
pub mod os;
pub mod restart_path;
pub mod supervisor;

use std::time::SystemTime;

use crate::deadline::Deadline;
use crate::probe::discover::Discovery;
use crate::probe::fds::FdReading;
use crate::probe::files::FileReading;
use crate::probe::health::HealthResult;
use crate::probe::supervisor::{Resolution, Supervisor};

/// What one run saw, before any decision.
#[derive(Debug, Clone)]
pub struct Observation {
    pub discovery: Discovery,
    pub health: HealthResult,
    /// `None` when there is no target; `Err` with the reason when its FDs could not be
    /// read (another user's process, say).
    pub fds: Option<Result<FdReading, String>>,
    pub files: Vec<FileReading>,
    /// The restart method after auto-detection, and the supervisor that owns the
    /// server, if one does.
    pub restart: Resolution,
    /// Whether a restart could start the server again, and how; checked before
    /// anything is signalled (see `restart_path`).
    pub readiness: restart_path::Readiness,
    pub at: SystemTime,
}

impl Observation {
    pub fn fd_reading(&self) -> Option<&FdReading> {
        self.fds.as_ref().and_then(|r| r.as_ref().ok())
    }
}

/// How many paths the run's FD reading keeps (the incident snapshot keeps them all).
const TOP_PATHS: usize = 10;

/// What the previous run knew, to look there first.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory<'a> {
    pub last_pid: Option<u32>,
    pub supervisor: Option<&'a Supervisor>,
    /// Whom the server last seen ran as (root's watchdog only records it).
    pub last_user: Option<&'a restart_path::Credentials>,
}

/// Reads everything one run needs, in the order that keeps the target's identity
/// fresh: find it and its supervisor, probe health, then count its FDs.
pub fn observe(
    cfg: &crate::config::Config,
    pid: Option<u32>,
    memory: Memory,
    prober: &health::Prober,
    deadline: Deadline,
) -> Observation {
    let sources = discover::Sources::for_run(cfg, pid, memory.last_pid);
    let discovery = discover::discover(&sources);
    let target = discovery.target.as_ref().map(|t| &t.info);
    // The target's environment is read once: for its supervisor's identity, and for a
    // replay (src/probe/restart_path.rs).
    let clues = target.map(supervisor::gather).unwrap_or_default();
    let restart = supervisor::resolve(&cfg.restart, target, &clues, memory.supervisor, deadline);
    let target_env = (target.is_some() && clues.env_error.is_none()).then_some(&clues.env[..]);
    let readiness = restart_path::check(cfg, target, &restart, memory.last_user, target_env);
    let health = prober.check(deadline);
    let fds = discovery
        .target
        .as_ref()
        .map(|t| fds::read(t.info.pid(), &cfg.fds.paths, TOP_PATHS).map_err(|e| e.to_string()));
    Observation {
        discovery,
        health,
        fds,
        files: files::read(&cfg.files),
        restart,
        readiness,
        at: SystemTime::now(),
    }
}
