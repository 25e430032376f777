//! Finding the server process (SPEC §5.1): `--pid`, the pidfile, the LISTENing owner of
//! the port, and `match` on the command line. Sources that are set must agree; a stale
//! pidfile is reported and never acted on.

use std::path::PathBuf;

use crate::probe::os::{PortOwner, ProcessInfo};

/// Where to look. `None` means the source is not set.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub pid: Option<u32>,
    pub pidfile: Option<PathBuf>,
    pub port: Option<u16>,
    pub match_: Option<String>,
    /// The PID found by the previous run (from history): searched first for the port.
    pub last_known_pid: Option<u32>,
}

/// Something discovery noticed that the operator should hear about.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// The pidfile is missing its PID, names a dead process, or names a live process
    /// that is not the server (PID reused). A warning; the other sources are used.
    StalePidfile {
        path: PathBuf,
        pid: Option<u32>,
        why: String,
    },
    /// The sources name different processes. Nothing may be acted on.
    Disagree { detail: String },
    /// Something listens on the port but no process this user can read holds it.
    /// Nothing may be acted on.
    PortHidden { port: u16 },
    /// `match` names more than one process and nothing else narrows it down.
    Ambiguous { detail: String },
    /// A process was named but could not be read (permission, vanished mid-read).
    Unreadable { pid: u32, detail: String },
}

impl Finding {
    /// Whether this finding forbids acting on anything in this run.
    pub fn blocks_action(&self) -> bool {
        !matches!(self, Finding::StalePidfile { .. })
    }
}

#[derive(Debug, Clone)]
pub struct Target {
    pub info: ProcessInfo,
    /// Which sources named it: "pid", "pidfile", "port", "match".
    pub evidence: Vec<&'static str>,
}

#[derive(Debug, Clone)]
pub struct Discovery {
    pub target: Option<Target>,
    pub findings: Vec<Finding>,
    /// What holds the port, when a port was set and could be read.
    pub port_owner: Option<PortOwner>,
}

pub fn discover(_sources: &Sources) -> Discovery {
    todo!()
}
