//! Finding the server process (docs/DESIGN.md, "Finding the server"): `--pid`, the pidfile,
//! the LISTENing owner of the port, and `match` on the command line. Sources that are set
//! must agree; a stale pidfile is reported and never acted on.

pub(crate) mod pidfile;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::probe::os::{self, OsError, PortOwner, ProcState, ProcessInfo};

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

impl Sources {
    /// The sources one run looks at: an explicit `--pid` replaces the pidfile as the
    /// PID source; the port is the configured one or the health URL's.
    pub fn for_run(
        cfg: &crate::config::Config,
        pid: Option<u32>,
        last_known_pid: Option<u32>,
    ) -> Sources {
        Sources {
            pid,
            pidfile: if pid.is_some() {
                None
            } else {
                cfg.target.pidfile.clone()
            },
            port: cfg.port(),
            match_: cfg.target.match_.clone(),
            last_known_pid,
        }
    }
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
    /// The pidfile names a live process but could have been written by someone other
    /// than root and that process's owner (see `pidfile::check_trust`), or is a
    /// symlink. Its PID is never acted on; the other
    /// sources are used, as for a stale pidfile.
    UntrustedPidfile {
        path: PathBuf,
        pid: Option<u32>,
        /// The file's owner, where the file was opened.
        owner: Option<u32>,
        why: String,
    },
    /// `match` names processes, but none holds the configured port: a command line is
    /// text anyone can choose (`tail -f server.py`), so they are never signalled. The
    /// run goes on as if no process were found.
    MatchWithoutPort {
        port: u16,
        text: String,
        matches: Vec<Holder>,
    },
    /// The port is held by processes that are not one process tree (the server on
    /// 127.0.0.1 and another one on [::1]), or, `also_hidden`, by these and by a
    /// process this user cannot read: which one is the server is unclear. Nothing may
    /// be acted on.
    SeveralHolders {
        port: u16,
        holders: Vec<Holder>,
        also_hidden: bool,
    },
    /// The sources name different processes. Nothing may be acted on.
    Disagree { detail: String },
    /// Something listens on the port but no process this user can read holds it.
    /// Nothing may be acted on.
    PortHidden { port: u16 },
    /// `match` names more than one process and nothing else narrows it down.
    Ambiguous { detail: String },
    /// A process was named but could not be read (permission, vanished mid-read), or
    /// `--pid` names a process that is not running or may never be a target (PID 1, this
    /// watchdog, one of its ancestors): an explicit PID is never swapped for another.
    Unreadable { pid: u32, detail: String },
}

impl Finding {
    /// The finding in words, for the log, `status` and `fds`.
    pub fn describe(&self) -> String {
        match self {
            Finding::StalePidfile { path, why, .. } => {
                format!("stale pidfile {}: {why}", path.display())
            }
            Finding::UntrustedPidfile { path, pid, why, .. } => {
                let ignored = pid.map_or(String::new(), |pid| format!(", so PID {pid} is ignored"));
                format!(
                    "untrusted pidfile {}{ignored}: the file {why}",
                    path.display()
                )
            }
            Finding::MatchWithoutPort {
                port,
                text,
                matches,
            } => format!(
                "{text:?} matches {}, which does not hold port {port}: a process found only \
                 by match is never signalled",
                Holder::list(matches)
            ),
            Finding::SeveralHolders {
                port,
                holders,
                also_hidden: false,
            } => format!(
                "port {port} is held by {} processes that are not one process tree: {}; \
                 nothing is touched until only the server holds it (stop the other, or bind \
                 the server to both addresses)",
                holders.len(),
                Holder::list(holders)
            ),
            Finding::SeveralHolders {
                port,
                holders,
                also_hidden: true,
            } => format!(
                "port {port} is held by {} and also by a process this user cannot read \
                 (another user's, on another address?); nothing is touched: run the \
                 watchdog as root to see who it is",
                Holder::list(holders)
            ),
            Finding::Disagree { detail }
            | Finding::Ambiguous { detail }
            | Finding::Unreadable { detail, .. } => detail.clone(),
            Finding::PortHidden { port } => format!(
                "something listens on port {port} but no process this user can read holds it \
                 (another user's process?); run the watchdog as that user or as root"
            ),
        }
    }

    /// Whether this finding forbids acting on anything in this run.
    pub fn blocks_action(&self) -> bool {
        !matches!(
            self,
            Finding::StalePidfile { .. }
                | Finding::UntrustedPidfile { .. }
                | Finding::MatchWithoutPort { .. }
        )
    }
}

/// A process shown to the operator by PID, owner and command line: a port holder, or a
/// process that `match` found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Holder {
    pub pid: u32,
    pub uid: Option<u32>,
    /// The owner's login name, where the user database has one; filled in by
    /// [`Holder::named`] only where a holder is shown (a finding, `status`, `--json`):
    /// the lookup goes through NSS (nscd, nsswitch.conf, /etc/passwd), a cost a healthy
    /// check with one holder has no use for.
    pub user: Option<String>,
    pub argv: Vec<String>,
}

impl Holder {
    /// The holder without its login name (see [`Holder::named`]).
    pub fn of(info: &ProcessInfo) -> Holder {
        Holder {
            pid: info.pid(),
            uid: info.uid,
            user: None,
            argv: info.argv.clone(),
        }
    }

    /// The holder with its owner's login name looked up, for showing it.
    pub fn named(mut self) -> Holder {
        self.look_up_user();
        self
    }

    /// Looks up the login names of `holders` that do not have one yet.
    pub fn name_all(holders: &mut [Holder]) {
        holders.iter_mut().for_each(Holder::look_up_user);
    }

    fn look_up_user(&mut self) {
        if self.user.is_none() {
            self.user = self.uid.and_then(crate::users::user_name);
        }
    }

    /// `PID 4242 (uid 1000 alice) `python3 server.py``.
    pub fn describe(&self) -> String {
        let owner = match (self.uid, &self.user) {
            (Some(uid), Some(user)) => format!("uid {uid} {user}"),
            (Some(uid), None) => format!("uid {uid}"),
            (None, _) => "owner unknown".to_string(),
        };
        let line = one_line(&pidfile::shorten(&self.argv.join(" "), SHOWN_COMMAND_CHARS));
        format!("PID {} ({owner}) `{line}`", self.pid)
    }

    fn list(holders: &[Holder]) -> String {
        let shown: Vec<String> = holders.iter().map(Holder::describe).collect();
        shown.join(", ")
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
    /// Every process that holds the port (but init, this watchdog and its ancestors),
    /// for `status`: several that are not one tree make the target unclear.
    pub port_holders: Vec<Holder>,
}

/// Start times are precise to about a second (whole-second `btime` plus clock ticks), and
/// some filesystems keep mtimes to the second or coarser: a process that wrote its
/// pidfile at once must not look younger than the file.
const START_TIME_SLACK: Duration = Duration::from_secs(2);

/// Command lines in findings are cut to this many characters: enough to recognise.
const SHOWN_COMMAND_CHARS: usize = 120;

/// Processes listed in a finding; more are counted, not shown.
const SHOWN_PROCESSES: usize = 5;

pub fn discover(sources: &Sources) -> Discovery {
    let mut search = Search {
        sources,
        wanted: sources.match_.as_deref().filter(|text| !text.is_empty()),
        protected: Protected::current(),
        findings: Vec::new(),
        port_owner: None,
        port_holders: Vec::new(),
    };
    // `Err(Blocked)`: a finding that forbids acting was recorded; there is no target.
    let target = search.find_target().unwrap_or(None);
    Discovery {
        target,
        findings: search.findings,
        port_owner: search.port_owner,
        port_holders: search.port_holders,
    }
}

/// A finding that forbids acting has been recorded: discovery ends without a target.
struct Blocked;

/// A process named by one source, before it is checked against the others.
struct Named {
    info: ProcessInfo,
    source: &'static str,
}

/// One run of discovery: the sources, what is never a target, and what was noticed.
struct Search<'a> {
    sources: &'a Sources,
    /// `match`, when set to something non-empty.
    wanted: Option<&'a str>,
    protected: Protected,
    findings: Vec<Finding>,
    port_owner: Option<PortOwner>,
    port_holders: Vec<Holder>,
}

impl Search<'_> {
    fn find_target(&mut self) -> Result<Option<Target>, Blocked> {
        let by_pid = self.pid_source()?;
        let by_port = match self.sources.port {
            Some(port) => self.port_source(port, by_pid.as_ref())?,
            None => None,
        };
        let by_pid = match by_pid {
            Some(named) => self.confirm_pid_source(named, by_port.as_ref())?,
            None => None,
        };
        let by_port = match by_port {
            Some(holder) => Some(self.confirm_port_holder(holder)?),
            None => None,
        };
        let mut target = match (by_pid, by_port) {
            (Some(named), Some(holder)) => self.reconcile(named, holder)?,
            (Some(named), None) => Target {
                info: named.info,
                evidence: vec![named.source],
            },
            (None, Some(holder)) => Target {
                info: holder.info,
                evidence: vec!["port"],
            },
            // `match` only searches when no other source named a process.
            (None, None) => return Ok(self.search_by_match()),
        };
        if self.wanted.is_some() {
            target.evidence.push("match");
        }
        Ok(Some(target))
    }

    // --- the pid source: `--pid`, else the pidfile ---------------------------------------

    fn pid_source(&mut self) -> Result<Option<Named>, Blocked> {
        if let Some(pid) = self.sources.pid {
            return self.explicit_pid(pid).map(Some);
        }
        match self.sources.pidfile.clone() {
            Some(path) => self.pidfile(&path),
            None => Ok(None),
        }
    }

    /// `--pid` is the operator naming one process: if it is gone or forbidden, nothing
    /// else is substituted for it.
    fn explicit_pid(&mut self, pid: u32) -> Result<Named, Blocked> {
        if let Some(why) = self.protected.why_not(pid) {
            return Err(self.block(Finding::Unreadable { pid, detail: why }));
        }
        match live_process(pid) {
            Ok(info) => Ok(Named {
                info,
                source: "pid",
            }),
            Err(Lookup::NotRunning) => {
                let detail = format!("PID {pid} (from --pid) is not running");
                Err(self.block(Finding::Unreadable { pid, detail }))
            }
            Err(Lookup::Unreadable(detail)) => Err(self.block(Finding::Unreadable { pid, detail })),
        }
    }

    fn pidfile(&mut self, path: &Path) -> Result<Option<Named>, Blocked> {
        let (pid, written, file) = match pidfile::read(path) {
            pidfile::Pidfile::Missing => return Ok(None),
            pidfile::Pidfile::Invalid { why } => {
                self.stale(path, None, why);
                return Ok(None);
            }
            pidfile::Pidfile::Symlink => {
                self.findings.push(Finding::UntrustedPidfile {
                    path: path.to_path_buf(),
                    pid: None,
                    owner: None,
                    why: "is a symbolic link, which is never followed: set target.pidfile \
                          to the file itself"
                        .to_string(),
                });
                return Ok(None);
            }
            pidfile::Pidfile::Names { pid, written, file } => (pid, written, file),
        };
        if let Some(why) = self.protected.why_not(pid) {
            self.stale(path, Some(pid), why);
            return Ok(None);
        }
        let info = match live_process(pid) {
            Ok(info) => info,
            Err(Lookup::NotRunning) => {
                self.stale(path, Some(pid), format!("PID {pid} is not running"));
                return Ok(None);
            }
            Err(Lookup::Unreadable(detail)) => {
                return Err(self.block(Finding::Unreadable { pid, detail }));
            }
        };
        // A pidfile is only believed as far as its writer could have signalled the
        // process anyway. Not only under root: a watchdog of one user would otherwise
        // kill and replay another process of that user, named by someone else's file.
        if let Err(why) = pidfile::check_trust(path, &file, info.uid) {
            self.findings.push(Finding::UntrustedPidfile {
                path: path.to_path_buf(),
                pid: Some(pid),
                owner: Some(file.owner),
                why,
            });
            return Ok(None);
        }
        if written.is_some_and(|written| info.start_time > written + START_TIME_SLACK) {
            let why = "PID reused: started after the pidfile was written".to_string();
            self.stale(path, Some(pid), why);
            return Ok(None);
        }
        Ok(Some(Named {
            info,
            source: "pidfile",
        }))
    }

    /// The pid source must also satisfy `match`, unless it is a wrapper (`sh start.sh`)
    /// whose descendant is the matching port holder: then it names the right service.
    fn confirm_pid_source(
        &mut self,
        named: Named,
        holder: Option<&Named>,
    ) -> Result<Option<Named>, Blocked> {
        let Some(text) = self.wanted else {
            return Ok(Some(named));
        };
        let wraps_matching_holder = holder.is_some_and(|holder| {
            holder.info.command_line().contains(text)
                && is_descendant(&holder.info, named.info.pid())
        });
        if named.info.command_line().contains(text) || wraps_matching_holder {
            return Ok(Some(named));
        }
        let pid = named.info.pid();
        let why = format!(
            "PID {pid} runs `{}`, which does not contain {text:?}",
            shown(&named.info)
        );
        match &self.sources.pidfile {
            Some(path) if named.source == "pidfile" => {
                let path = path.clone();
                self.stale(&path, Some(pid), why);
                Ok(None)
            }
            _ => Err(self.block(Finding::Disagree {
                detail: format!("--pid: {why}"),
            })),
        }
    }

    // --- the port source -----------------------------------------------------------------

    fn port_source(&mut self, port: u16, by_pid: Option<&Named>) -> Result<Option<Named>, Blocked> {
        let candidates = self.port_candidates(by_pid);
        let owner = match os::port_owner(port, &candidates) {
            Ok(owner) => owner,
            // Without the socket table a free port cannot be told from a held one, and
            // acting blind could start a second server: treat it like a hidden holder.
            Err(_) => return Err(self.block(Finding::PortHidden { port })),
        };
        self.port_owner = Some(owner.clone());
        let (pids, also_hidden) = match owner {
            PortOwner::Free => return Ok(None),
            PortOwner::Hidden => return Err(self.block(Finding::PortHidden { port })),
            PortOwner::Held(pids) => (pids, false),
            PortOwner::PartlyHidden(pids) => (pids, true),
        };
        // PID 1 holds the socket of a socket-activated service alongside the service
        // itself; like this watchdog and its ancestors, it is passed over.
        let mut holders = Vec::new();
        for pid in pids {
            if self.protected.why_not(pid).is_some() {
                continue;
            }
            // The process the pidfile named was read a moment ago: reused while it is
            // still that process, rather than its /proc files read a second time.
            let known = by_pid.map(|named| &named.info);
            match live_process_known(pid, known) {
                Ok(info) => holders.push(info),
                // Exited since the scan: it holds nothing now.
                Err(Lookup::NotRunning) => {}
                Err(Lookup::Unreadable(detail)) => {
                    return Err(self.block(Finding::Unreadable { pid, detail }));
                }
            }
        }
        self.port_holders = holders.iter().map(Holder::of).collect();
        if also_hidden {
            Holder::name_all(&mut self.port_holders);
            let holders = self.port_holders.clone();
            return Err(self.block(Finding::SeveralHolders {
                port,
                holders,
                also_hidden,
            }));
        }
        if holders.is_empty() {
            return Ok(None);
        }
        // A pre-fork server (a master and the workers that inherited its socket) is one
        // target: the holder every other holder descends from. Anything else is several
        // parties on one port, and acting on any of them could hit the wrong one.
        let root = holders.iter().position(|candidate| {
            holders.iter().all(|other| {
                other.pid() == candidate.pid() || is_descendant(other, candidate.pid())
            })
        });
        let Some(root) = root else {
            Holder::name_all(&mut self.port_holders);
            let holders = self.port_holders.clone();
            return Err(self.block(Finding::SeveralHolders {
                port,
                holders,
                also_hidden,
            }));
        };
        Ok(Some(Named {
            info: holders.swap_remove(root),
            source: "port",
        }))
    }

    /// The processes most likely to hold the port, so the full scan is the last resort.
    fn port_candidates(&self, by_pid: Option<&Named>) -> Vec<u32> {
        let mut candidates: Vec<u32> = by_pid.map(|named| named.info.pid()).into_iter().collect();
        candidates.extend(self.sources.last_known_pid);
        candidates.dedup();
        candidates.retain(|&pid| self.protected.why_not(pid).is_none());
        candidates
    }

    fn confirm_port_holder(&mut self, holder: Named) -> Result<Named, Blocked> {
        match self.wanted {
            Some(text) if !holder.info.command_line().contains(text) => {
                let detail = format!(
                    "port {} is held by PID {} (`{}`), whose command line does not contain {text:?}",
                    self.sources.port.unwrap_or_default(),
                    holder.info.pid(),
                    shown(&holder.info),
                );
                Err(self.block(Finding::Disagree { detail }))
            }
            _ => Ok(holder),
        }
    }

    /// The pid source and the port holder must be one process, or the holder a
    /// descendant of the pid source (a wrapper whose child serves): then the holder is
    /// the target and both sources are evidence for it.
    fn reconcile(&mut self, named: Named, holder: Named) -> Result<Target, Blocked> {
        let evidence = vec![named.source, "port"];
        if holder.info.pid() == named.info.pid() || is_descendant(&holder.info, named.info.pid()) {
            return Ok(Target {
                info: holder.info,
                evidence,
            });
        }
        let source = if named.source == "pid" {
            "--pid"
        } else {
            "the pidfile"
        };
        let detail = format!(
            "{source} names PID {} (`{}`) but port {} is held by PID {} (`{}`)",
            named.info.pid(),
            shown(&named.info),
            self.sources.port.unwrap_or_default(),
            holder.info.pid(),
            shown(&holder.info),
        );
        Err(self.block(Finding::Disagree { detail }))
    }

    // --- the match source: a search of every command line --------------------------------

    fn search_by_match(&mut self) -> Option<Target> {
        let text = self.wanted?;
        let matches = self.processes_matching(text);
        if let Some(port) = self.sources.port
            && !matches.is_empty()
        {
            // The port is free (or held only by init or this watchdog): what matches is
            // not serving it. A command line is text anyone can choose, so it alone never
            // names a process to signal; a new server is started instead, if there is a
            // way.
            let matches = matches
                .iter()
                .take(SHOWN_PROCESSES)
                .map(|info| Holder::of(info).named())
                .collect();
            self.findings.push(Finding::MatchWithoutPort {
                port,
                text: text.to_string(),
                matches,
            });
            return None;
        }
        let chosen = match matches.len() {
            0 => return None,
            1 => matches.into_iter().next(),
            _ => self.unique_root(text, matches),
        };
        chosen.map(|info| Target {
            info,
            evidence: vec!["match"],
        })
    }

    fn processes_matching(&self, text: &str) -> Vec<ProcessInfo> {
        // Unreadable processes are skipped: nothing named them, so not finding them is
        // not a claim that they are absent.
        let Ok(pids) = os::all_pids() else {
            return Vec::new();
        };
        pids.into_iter()
            .filter(|&pid| self.protected.why_not(pid).is_none())
            .filter_map(|pid| live_process(pid).ok())
            .filter(|info| !info.argv.is_empty() && !self.protected.is_another_watchdog(info))
            .filter(|info| info.command_line().contains(text))
            .collect()
    }

    /// Several matches: a master and its workers, or a wrapper and its child, have one
    /// root (a match whose parent is not a match). Anything else is ambiguous.
    fn unique_root(&mut self, text: &str, matches: Vec<ProcessInfo>) -> Option<ProcessInfo> {
        let pids: Vec<u32> = matches.iter().map(ProcessInfo::pid).collect();
        let mut roots: Vec<&ProcessInfo> = matches
            .iter()
            .filter(|info| !pids.contains(&info.ppid))
            .collect();
        if roots.len() == 1 {
            return roots.pop().cloned();
        }
        let listed: Vec<String> = matches
            .iter()
            .take(SHOWN_PROCESSES)
            .map(|info| format!("{} (`{}`)", info.pid(), shown(info)))
            .collect();
        let more = if matches.len() > SHOWN_PROCESSES {
            format!(" and {} more", matches.len() - SHOWN_PROCESSES)
        } else {
            String::new()
        };
        let detail = format!("{text:?} matches PIDs {}{more}", listed.join(", "));
        self.findings.push(Finding::Ambiguous { detail });
        None
    }

    // --- findings --------------------------------------------------------------------------

    fn stale(&mut self, path: &Path, pid: Option<u32>, why: String) {
        self.findings.push(Finding::StalePidfile {
            path: path.to_path_buf(),
            pid,
            why,
        });
    }

    fn block(&mut self, finding: Finding) -> Blocked {
        debug_assert!(finding.blocks_action());
        self.findings.push(finding);
        Blocked
    }
}

/// Why a named PID gave no usable process.
enum Lookup {
    /// Gone, or a zombie (exited, holds nothing, only waits to be reaped).
    NotRunning,
    /// Exists but cannot be read: never to be mistaken for "no process".
    Unreadable(String),
}

/// [`live_process`], reusing `known` (a reading of this run) when it is of `pid` and
/// `pid` is still that process (same start stamp, not a zombie): one read of
/// `/proc/PID/stat` instead of four files. A PID reused since is read afresh.
fn live_process_known(pid: u32, known: Option<&ProcessInfo>) -> Result<ProcessInfo, Lookup> {
    if let Some(info) = known.filter(|info| info.pid() == pid) {
        match os::identity(pid) {
            Ok(Some(now)) if now == info.identity => return Ok(info.clone()),
            Ok(None) => return Err(Lookup::NotRunning),
            Ok(Some(_)) | Err(_) => {}
        }
    }
    live_process(pid)
}

fn live_process(pid: u32) -> Result<ProcessInfo, Lookup> {
    match os::process_info(pid) {
        Ok(info) if info.state == ProcState::Zombie => Err(Lookup::NotRunning),
        Ok(info) => Ok(info),
        Err(OsError::NoSuchProcess(_)) => Err(Lookup::NotRunning),
        Err(e) => Err(Lookup::Unreadable(e.to_string())),
    }
}

/// PIDs that are never a target (docs/DESIGN.md, "Invariants"): init, this watchdog, and
/// its ancestors (the shell or cron that runs it, whose command line may well contain the
/// `match` text).
pub struct Protected {
    own: u32,
    ancestors: Vec<u32>,
    /// Basename of our own argv[0], to pass over other watchdog runs in a `match`
    /// search: `watchdog status --match server.py` contains the text too.
    own_program: Option<String>,
}

impl Protected {
    pub fn current() -> Self {
        Protected {
            own: std::process::id(),
            ancestors: ancestry(std::os::unix::process::parent_id()).collect(),
            own_program: std::env::args().next().as_deref().and_then(program_name),
        }
    }

    pub fn why_not(&self, pid: u32) -> Option<String> {
        if pid == 1 {
            Some("PID 1 is init, never a target".to_string())
        } else if pid == self.own {
            Some(format!("PID {pid} is this watchdog"))
        } else if self.ancestors.contains(&pid) {
            Some(format!("PID {pid} is an ancestor of this watchdog"))
        } else {
            None
        }
    }

    fn is_another_watchdog(&self, info: &ProcessInfo) -> bool {
        let theirs = info.argv.first().and_then(|arg0| program_name(arg0));
        theirs.is_some() && theirs == self.own_program
    }
}

fn program_name(arg0: &str) -> Option<String> {
    Path::new(arg0)
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
}

/// `first_parent`, its parent, and so on, up to and including PID 1.
fn ancestry(first_parent: u32) -> impl Iterator<Item = u32> {
    std::iter::successors(Some(first_parent), |&pid| {
        if pid <= 1 {
            None
        } else {
            os::parent_pid(pid).ok()
        }
    })
    .take_while(|&pid| pid != 0)
    .take(os::MAX_TREE_DEPTH)
}

fn is_descendant(info: &ProcessInfo, ancestor: u32) -> bool {
    os::descends_from(info.ppid, ancestor)
}

fn shown(info: &ProcessInfo) -> String {
    one_line(&pidfile::shorten(&info.command_line(), SHOWN_COMMAND_CHARS))
}

/// A command line is text its owner chose: control characters (a newline in a
/// `python -c` script, or one planted to forge a line of `status` or the log) are shown
/// escaped, so it stays on one line.
fn one_line(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};
    use std::time::{Instant, SystemTime};

    /// No target, and exactly one finding, which matches the pattern.
    macro_rules! assert_no_target_but {
        ($found:expr, $pattern:pat $(if $guard:expr)?) => {{
            let found = &$found;
            assert!(found.target.is_none(), "{:?}", found.findings);
            assert!(
                matches!(found.findings.as_slice(), [$pattern] $(if $guard)?),
                "{:?}",
                found.findings
            );
        }};
    }

    /// A child process killed and reaped when the test ends, pass or fail.
    struct Reaped(Child);

    impl Reaped {
        fn pid(&self) -> u32 {
            self.0.id()
        }
    }

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Spawns and waits until the kernel shows the new argv: right after exec the
    /// command line reads empty for a moment, and a `match` search would miss it.
    fn spawn(program: &str, args: &[&str]) -> Reaped {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        let child = Reaped(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !os::process_info(child.pid())
            .is_ok_and(|i| i.argv.first().is_some_and(|a| a.ends_with(program)))
        {
            assert!(Instant::now() < deadline, "{program} did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        child
    }

    /// A unique `sleep` argument per test and per test run, so parallel tests (and other
    /// runs on the same box) cannot match each other's sleeps.
    fn unique_seconds(tag: u32) -> String {
        format!("{tag}.{}", std::process::id())
    }

    const HOLD_PORT: &str = "import os, socket, time\n\
        s = socket.socket()\n\
        s.bind(('127.0.0.1', 0))\n\
        s.listen()\n\
        print(s.getsockname()[1], os.getpid(), flush=True)\n\
        time.sleep(60)\n";

    /// A process that LISTENs on a free port: returns it, the port and the listener's PID.
    fn port_holder(program: &str, args: &[&str]) -> (Reaped, u16, u32) {
        let mut child = spawn(program, args);
        let stdout = child.0.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("port line");
        let mut words = line
            .split_whitespace()
            .map(|w| w.parse::<u32>().expect("number"));
        let port = u16::try_from(words.next().expect("port")).expect("port fits");
        let pid = words.next().expect("pid");
        (child, port, pid)
    }

    fn python_port_holder() -> (Reaped, u16, u32) {
        port_holder("python3", &["-c", HOLD_PORT])
    }

    fn write_pidfile(dir: &Path, pid: u32) -> PathBuf {
        let path = dir.join("server.pid");
        std::fs::write(&path, format!("{pid}\n")).unwrap();
        path
    }

    /// Discovery from the port alone.
    fn by_port(port: u16) -> Discovery {
        discover(&Sources {
            port: Some(port),
            ..Sources::default()
        })
    }

    /// Discovery from the pidfile alone.
    fn by_pidfile(pidfile: PathBuf) -> Discovery {
        discover(&Sources {
            pidfile: Some(pidfile),
            ..Sources::default()
        })
    }

    /// Discovery from `match` alone.
    fn by_match(text: String) -> Discovery {
        discover(&Sources {
            match_: Some(text),
            ..Sources::default()
        })
    }

    fn only_stale(discovery: &Discovery) -> (Option<u32>, String) {
        match discovery.findings.as_slice() {
            [Finding::StalePidfile { pid, why, .. }] => (*pid, why.clone()),
            other => panic!("expected one stale pidfile finding, got {other:?}"),
        }
    }

    #[test]
    fn port_source_names_the_listener() {
        let (_child, port, pid) = python_port_holder();
        let found = by_port(port);
        let target = found.target.expect("target");
        assert_eq!(target.info.pid(), pid);
        assert_eq!(target.evidence, ["port"]);
        assert_eq!(found.port_owner, Some(PortOwner::Held(vec![pid])));
        assert!(found.findings.is_empty());
    }

    #[test]
    fn port_and_match_agree() {
        let (_child, port, pid) = python_port_holder();
        let sources = Sources {
            port: Some(port),
            match_: Some("socket".into()),
            ..Sources::default()
        };
        let target = discover(&sources).target.expect("target");
        assert_eq!(target.info.pid(), pid);
        assert_eq!(target.evidence, ["port", "match"]);
    }

    #[test]
    fn port_holder_not_matching_is_a_disagreement() {
        let (_child, port, _) = python_port_holder();
        let sources = Sources {
            port: Some(port),
            match_: Some("server-nope.py".into()),
            ..Sources::default()
        };
        let found = discover(&sources);
        assert_no_target_but!(found, Finding::Disagree { .. });
    }

    #[test]
    fn free_port_and_nothing_else_is_no_target() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let found = by_port(port);
        assert!(found.target.is_none());
        assert!(found.findings.is_empty());
        assert_eq!(found.port_owner, Some(PortOwner::Free));
    }

    #[test]
    fn port_held_by_this_watchdog_is_never_the_target() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let found = by_port(port);
        assert!(found.target.is_none());
        // Another test of this process may be between fork and exec at that moment, its
        // child holding a copy of the listener until exec closes it (CLOEXEC): the
        // watchdog is among the holders, and none of them is the target.
        match &found.port_owner {
            Some(PortOwner::Held(holders)) => {
                assert!(holders.contains(&std::process::id()), "{holders:?}")
            }
            other => panic!("the port is held by this process: {other:?}"),
        }
    }

    #[test]
    fn live_pidfile_is_the_target() {
        let sleep = spawn("sleep", &[&unique_seconds(40)]);
        let dir = tempfile::tempdir().unwrap();
        let pidfile = write_pidfile(dir.path(), sleep.pid());
        let found = by_pidfile(pidfile);
        let target = found.target.expect("target");
        assert_eq!(target.info.pid(), sleep.pid());
        assert_eq!(target.evidence, ["pidfile"]);
        assert!(found.findings.is_empty());
    }

    #[test]
    fn missing_pidfile_is_an_unset_source() {
        let dir = tempfile::tempdir().unwrap();
        let sources = Sources {
            pidfile: Some(dir.path().join("none.pid")),
            ..Sources::default()
        };
        let found = discover(&sources);
        assert!(found.target.is_none());
        assert!(found.findings.is_empty());
    }

    #[test]
    fn pidfile_with_dead_pid_is_stale() {
        let mut done = Command::new("true").spawn().unwrap();
        let pid = done.id();
        done.wait().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pidfile = write_pidfile(dir.path(), pid);
        let found = by_pidfile(pidfile);
        assert!(found.target.is_none());
        assert_eq!(
            only_stale(&found),
            (Some(pid), format!("PID {pid} is not running"))
        );
        assert!(!found.findings[0].blocks_action());
    }

    #[test]
    fn pidfile_older_than_its_process_means_pid_reuse() {
        let sleep = spawn("sleep", &[&unique_seconds(41)]);
        let dir = tempfile::tempdir().unwrap();
        let pidfile = write_pidfile(dir.path(), sleep.pid());
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&pidfile)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        let found = by_pidfile(pidfile);
        assert!(found.target.is_none());
        let (pid, why) = only_stale(&found);
        assert_eq!(pid, Some(sleep.pid()));
        assert_eq!(why, "PID reused: started after the pidfile was written");
    }

    #[test]
    fn pidfile_naming_another_program_is_stale() {
        let sleep = spawn("sleep", &[&unique_seconds(42)]);
        let dir = tempfile::tempdir().unwrap();
        let pidfile = write_pidfile(dir.path(), sleep.pid());
        let sources = Sources {
            pidfile: Some(pidfile),
            match_: Some(format!("server-{}.py", std::process::id())),
            ..Sources::default()
        };
        let found = discover(&sources);
        assert!(found.target.is_none());
        let (pid, why) = only_stale(&found);
        assert_eq!(pid, Some(sleep.pid()));
        assert!(why.contains("does not contain"), "{why}");
    }

    #[test]
    fn garbage_pidfile_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("server.pid");
        std::fs::write(&pidfile, "hello\n").unwrap();
        let found = by_pidfile(pidfile);
        assert!(found.target.is_none());
        assert_eq!(
            only_stale(&found),
            (None, r#"does not contain a PID: "hello""#.to_string())
        );
    }

    #[test]
    fn pidfile_naming_the_watchdog_or_its_parent_or_init_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        for pid in [std::process::id(), std::os::unix::process::parent_id(), 1] {
            let pidfile = write_pidfile(dir.path(), pid);
            let found = by_pidfile(pidfile);
            assert!(found.target.is_none());
            let (named, why) = only_stale(&found);
            assert_eq!(named, Some(pid));
            assert!(why.contains("watchdog") || why.contains("init"), "{why}");
        }
    }

    #[test]
    fn explicit_pid_that_is_dead_or_protected_blocks() {
        let mut done = Command::new("true").spawn().unwrap();
        let dead = done.id();
        done.wait().unwrap();
        for pid in [dead, std::process::id(), 1] {
            let found = discover(&Sources {
                pid: Some(pid),
                ..Sources::default()
            });
            assert_no_target_but!(found, Finding::Unreadable { pid: p, .. } if *p == pid);
            assert!(found.findings[0].blocks_action());
        }
    }

    #[test]
    fn explicit_pid_wins_over_the_pidfile() {
        let sleep = spawn("sleep", &[&unique_seconds(43)]);
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("server.pid");
        std::fs::write(&pidfile, "garbage").unwrap();
        let sources = Sources {
            pid: Some(sleep.pid()),
            pidfile: Some(pidfile),
            ..Sources::default()
        };
        let found = discover(&sources);
        assert_eq!(found.target.expect("target").evidence, ["pid"]);
        assert!(
            found.findings.is_empty(),
            "the pidfile is not read when --pid is set"
        );
    }

    #[test]
    fn pidfile_and_port_naming_different_processes_disagree() {
        let sleep = spawn("sleep", &[&unique_seconds(44)]);
        let dir = tempfile::tempdir().unwrap();
        let pidfile = write_pidfile(dir.path(), sleep.pid());
        let (_holder, port, holder_pid) = python_port_holder();
        let sources = Sources {
            pidfile: Some(pidfile),
            port: Some(port),
            ..Sources::default()
        };
        let found = discover(&sources);
        assert!(found.target.is_none());
        let [Finding::Disagree { detail }] = found.findings.as_slice() else {
            panic!("expected a disagreement, got {:?}", found.findings);
        };
        assert!(detail.contains(&sleep.pid().to_string()), "{detail}");
        assert!(detail.contains(&holder_pid.to_string()), "{detail}");
        assert!(
            detail.contains("sleep") && detail.contains("python"),
            "{detail}"
        );
    }

    #[test]
    fn pidfile_naming_a_wrapper_whose_child_holds_the_port_agrees() {
        // `; true` keeps sh from exec'ing python, so sh stays as the wrapper.
        let (wrapper, port, holder_pid) =
            port_holder("sh", &["-c", "python3 -c \"$1\"; true", "sh", HOLD_PORT]);
        assert_ne!(wrapper.pid(), holder_pid);
        let dir = tempfile::tempdir().unwrap();
        let pidfile = write_pidfile(dir.path(), wrapper.pid());
        let sources = Sources {
            pidfile: Some(pidfile),
            port: Some(port),
            // Only the child's command line names the script's content.
            match_: Some("socket.socket".into()),
            ..Sources::default()
        };
        let found = discover(&sources);
        let target = found.target.expect("target");
        assert_eq!(target.info.pid(), holder_pid);
        assert_eq!(target.evidence, ["pidfile", "port", "match"]);
        assert!(found.findings.is_empty(), "{:?}", found.findings);
    }

    /// A directory like /tmp: anyone may create files, nobody may replace another's.
    #[cfg(target_os = "linux")]
    fn sticky_dir() -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        dir
    }

    #[cfg(target_os = "linux")]
    #[test]
    #[ignore = "needs root (chowns a pidfile to another user; the rule is root's): run by script/test as root and .ci/run"]
    fn a_pidfile_another_user_wrote_naming_roots_process_is_untrusted() {
        assert_eq!(
            crate::safe_fs::own_euid(),
            0,
            "run as root: the rule is root's (script/test as root runs it; so does .ci/run)"
        );
        let sleep = spawn("sleep", &[&unique_seconds(48)]);
        let dir = sticky_dir();
        let pidfile = write_pidfile(dir.path(), sleep.pid());
        std::os::unix::fs::chown(&pidfile, Some(4343), Some(4343)).unwrap();
        let found = by_pidfile(pidfile.clone());
        assert!(found.target.is_none(), "{:?}", found.target);
        let [Finding::UntrustedPidfile { pid, owner, .. }] = found.findings.as_slice() else {
            panic!("expected an untrusted pidfile, got {:?}", found.findings);
        };
        assert_eq!((*pid, *owner), (Some(sleep.pid()), Some(4343)));
        assert!(
            !found.findings[0].blocks_action(),
            "the other sources still count"
        );
        let text = found.findings[0].describe();
        assert!(
            text.starts_with(&format!("untrusted pidfile {}", pidfile.display()))
                && text.contains(&format!("PID {} is ignored", sleep.pid()))
                && text.contains("owned by uid 4343"),
            "{text}"
        );

        // The same file owned by root is believed.
        std::os::unix::fs::chown(&pidfile, Some(0), Some(0)).unwrap();
        let found = by_pidfile(pidfile);
        assert_eq!(found.target.expect("target").info.pid(), sleep.pid());
    }

    #[test]
    fn a_symlinked_pidfile_is_never_followed() {
        let sleep = spawn("sleep", &[&unique_seconds(49)]);
        let dir = tempfile::tempdir().unwrap();
        let real = write_pidfile(dir.path(), sleep.pid());
        let link = dir.path().join("link.pid");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let found = by_pidfile(link);
        assert_no_target_but!(found, Finding::UntrustedPidfile { pid: None, .. });
        assert!(found.findings[0].describe().contains("symbolic link"));
    }

    /// Listens on `address` port `port` (0: any), IPv6 sockets V6ONLY; with `fork`, a
    /// child inherits the socket (a pre-fork worker). Prints the port and its PID.
    fn listener(address: &str, port: u16, fork: bool) -> (Reaped, u16, u32) {
        let family = if address.contains(':') {
            "AF_INET6"
        } else {
            "AF_INET"
        };
        let script = format!(
            "import os, socket, time\n\
             s = socket.socket(socket.{family})\n\
             if s.family == socket.AF_INET6:\n    \
                 s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)\n\
             s.bind(('{address}', {port}))\n\
             s.listen()\n\
             if {fork} and os.fork() == 0:\n    \
                 time.sleep(60)\n    \
                 os._exit(0)\n\
             print(s.getsockname()[1], os.getpid(), flush=True)\n\
             time.sleep(60)\n",
            fork = if fork { "True" } else { "False" },
        );
        port_holder("python3", &["-c", &script])
    }

    #[cfg(target_os = "linux")]
    #[test]
    #[ignore = "needs root (the holders it starts must read as uid 0 root): run by script/test as root and .ci/run"]
    fn port_holders_that_are_not_one_tree_are_unclear_and_all_shown() {
        let (_server, port, server_pid) = listener("127.0.0.1", 0, false);
        let (_squatter, _, squatter_pid) = listener("::1", port, false);
        for last_known_pid in [None, Some(server_pid), Some(squatter_pid)] {
            let found = discover(&Sources {
                port: Some(port),
                last_known_pid,
                ..Sources::default()
            });
            assert_no_target_but!(found, Finding::SeveralHolders { .. });
            let mut shown: Vec<u32> = found.port_holders.iter().map(|h| h.pid).collect();
            shown.sort_unstable();
            let mut both = vec![server_pid, squatter_pid];
            both.sort_unstable();
            assert_eq!(shown, both, "with last_known_pid {last_known_pid:?}");
            let text = found.findings[0].describe();
            assert!(
                text.contains(&format!("PID {server_pid} (uid 0 root) `"))
                    && text.contains(&format!("PID {squatter_pid} (uid 0 root) `"))
                    && text.contains("AF_INET6"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_master_and_its_worker_on_one_socket_are_one_target() {
        let (_master, port, master_pid) = listener("127.0.0.1", 0, true);
        let worker_listens = || {
            matches!(
                os::port_owner(port, &[]),
                Ok(PortOwner::Held(pids)) if pids.len() == 2
            )
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !worker_listens() {
            assert!(Instant::now() < deadline, "the worker did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        let found = by_port(port);
        assert_eq!(found.target.expect("target").info.pid(), master_pid);
        assert!(found.findings.is_empty(), "{:?}", found.findings);
        assert_eq!(found.port_holders.len(), 2);
        // Shown nowhere in a run without a finding: no user database lookup.
        assert!(found.port_holders.iter().all(|h| h.user.is_none()));
    }

    #[test]
    fn a_match_that_does_not_hold_the_port_is_never_the_target() {
        let seconds = unique_seconds(50);
        let sleep = spawn("sleep", &[&seconds]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let found = discover(&Sources {
            port: Some(port),
            match_: Some(format!("sleep {seconds}")),
            ..Sources::default()
        });
        assert_no_target_but!(found, Finding::MatchWithoutPort { .. });
        assert!(
            !found.findings[0].blocks_action(),
            "a new server may be started"
        );
        let text = found.findings[0].describe();
        assert!(
            text.contains(&format!("PID {}", sleep.pid()))
                && text.contains(&format!("does not hold port {port}")),
            "{text}"
        );
    }

    #[test]
    fn a_reading_of_the_run_is_reused_only_for_the_same_process() {
        let mut sleep = spawn("sleep", &[&unique_seconds(46)]);
        let pid = sleep.pid();
        let read = live_process(pid).unwrap_or_else(|_| panic!("PID {pid} is running"));
        let mut known = read.clone();
        known.argv = vec!["read earlier".into()];
        let reused = live_process_known(pid, Some(&known))
            .unwrap_or_else(|_| panic!("PID {pid} is running"));
        assert_eq!(
            reused.argv,
            ["read earlier"],
            "the same process: not read again"
        );
        // Another start stamp: the PID was reused, and what it runs now is read.
        known.identity.start_key += 1;
        let fresh = live_process_known(pid, Some(&known))
            .unwrap_or_else(|_| panic!("PID {pid} is running"));
        assert_eq!(fresh.argv, read.argv);
        sleep.0.kill().unwrap();
        sleep.0.wait().unwrap();
        known.identity = read.identity;
        assert!(matches!(
            live_process_known(pid, Some(&known)),
            Err(Lookup::NotRunning)
        ));
    }

    #[test]
    fn a_holder_is_named_only_when_shown() {
        let holder = Holder {
            pid: 7,
            uid: Some(0),
            user: None,
            argv: vec!["server".into()],
        };
        let mut several = vec![holder.clone(), holder.clone()];
        assert_eq!(holder.clone().named().user.as_deref(), Some("root"));
        Holder::name_all(&mut several);
        assert!(several.iter().all(|h| h.user.as_deref() == Some("root")));
        let bare = Holder {
            uid: Some(4_000_000_000),
            ..holder
        };
        assert_eq!(bare.named().user, None);
    }

    #[test]
    fn a_shown_command_line_stays_on_one_line() {
        let holder = Holder {
            pid: 7,
            uid: Some(4343),
            user: None,
            argv: vec![
                "sh".into(),
                "-c".into(),
                "x\nholder    PID 1 (uid 0 root)\t`".into(),
            ],
        };
        assert_eq!(
            holder.describe(),
            "PID 7 (uid 4343) `sh -c x\\nholder    PID 1 (uid 0 root)\\t``"
        );
    }

    #[test]
    fn match_search_finds_a_unique_process() {
        let seconds = unique_seconds(45);
        let sleep = spawn("sleep", &[&seconds]);
        let found = by_match(format!("sleep {seconds}"));
        let target = found.target.expect("target");
        assert_eq!(target.info.pid(), sleep.pid());
        assert_eq!(target.evidence, ["match"]);
    }

    #[test]
    fn match_search_with_two_unrelated_processes_is_ambiguous() {
        let seconds = unique_seconds(46);
        let _a = spawn("sleep", &[&seconds]);
        let _b = spawn("sleep", &[&seconds]);
        let found = by_match(seconds);
        assert_no_target_but!(found, Finding::Ambiguous { .. });
    }

    #[test]
    fn match_search_prefers_the_single_root_of_a_tree() {
        let seconds = unique_seconds(47);
        let script = format!("sleep {seconds}; true");
        let wrapper = spawn("sh", &["-c", &script]);
        let deadline = Instant::now() + Duration::from_secs(5);
        let tree = || {
            os::all_pids()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|pid| os::process_info(pid).ok())
                .any(|info| {
                    info.ppid == wrapper.pid() && info.command_line() == format!("sleep {seconds}")
                })
        };
        while !tree() {
            assert!(Instant::now() < deadline, "sleep child did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        let found = by_match(seconds);
        assert_eq!(found.target.expect("target").info.pid(), wrapper.pid());
    }

    #[test]
    fn match_search_finding_nothing_is_no_target() {
        let text = format!("no-such-server-{}.py", std::process::id());
        let found = by_match(text);
        assert!(found.target.is_none());
        assert!(found.findings.is_empty());
    }
}
