//! launchd (docs/DESIGN.md, "Supervisors"; docs/SECURITY.md, "launchd"): a target's
//! `XPC_SERVICE_NAME`, the job launchd's own listings pair with its PID
//! (`find_by_pid`), `launchctl print` and `kickstart -k` of the job in the domain
//! that answered for it, and the checks before a `kickstart -k` (`restartable`).
//! What `launchctl` prints is read in `launchctl.rs`, pure text handling.

pub mod launchctl;

pub use launchctl::{
    LastExit, LaunchctlParseError, LaunchdJob, Listed, candidate_domains, default_domain,
    domain_target, is_launchd_label, is_oneshot, is_starting, label_of, parse_domain_services,
    parse_list, parse_print,
};

use super::{
    Behaviour, Claim, Clues, Context, JobStatus, Kind, QUERY_TIMEOUT, Refused, Supervisor, Trust,
    first_line, is_self_or_ancestor,
};
use crate::command::{self, Finished, Output};
use crate::config::{Method, RestartConfig};
use crate::deadline::Deadline;
use crate::probe::os::{self, ProcessInfo};

/// launchd's part of [`Behaviour`].
pub(super) struct Launchd;

impl Behaviour for Launchd {
    fn method(&self) -> Method {
        Method::Launchd
    }

    fn config_key(&self) -> &'static str {
        "label"
    }

    fn configured_name(&self, cfg: &RestartConfig) -> Option<String> {
        cfg.label.clone()
    }

    /// An `XPC_SERVICE_NAME` equal to `own_label` (the watchdog's own job's label, which
    /// everything the watchdog starts inherits) names no job: the server carrying it is
    /// not run by the watchdog's job, whose PID is the watchdog.
    fn detect(&self, clues: &Clues, own_label: Option<&str>) -> Option<Supervisor> {
        let label = clues
            .var("XPC_SERVICE_NAME")
            .filter(|l| is_launchd_label(l) && Some(l.trim()) != own_label)?;
        Some(Supervisor::detected(
            Kind::Launchd,
            label.to_string(),
            clues,
            "XPC_SERVICE_NAME",
        ))
    }

    /// launchd is PID 1 on macOS: being its descendant proves nothing. What does is
    /// launchd's own listing ([`find_by_pid`]), which resolution asks instead.
    fn claim(&self, _supervisor: &Supervisor, _clues: &Clues) -> Result<Claim, String> {
        Err(
            "launchd is every process's ancestor, so nothing outside the process confirms it"
                .into(),
        )
    }

    fn describe(&self, supervisor: &Supervisor) -> String {
        format!("launchd job {}", service(supervisor))
    }

    fn status_argv(&self, supervisor: &Supervisor) -> Vec<String> {
        vec!["launchctl".into(), "print".into(), service(supervisor)]
    }

    fn restart_argv(&self, supervisor: &Supervisor) -> Vec<String> {
        vec![
            "launchctl".into(),
            "kickstart".into(),
            "-k".into(),
            service(supervisor),
        ]
    }

    fn parse_status(&self, _supervisor: &Supervisor, stdout: &str) -> Result<JobStatus, String> {
        let job = parse_print(stdout).map_err(|e| e.to_string())?;
        Ok(job_status(job))
    }

    /// launchd is asked in the domains that can hold the job until one answers, and the
    /// job it names must be one the watchdog may `kickstart -k` ([`status`]).
    fn first_status(
        &self,
        supervisor: &mut Supervisor,
        target: Option<&ProcessInfo>,
        ctx: &Context,
        deadline: Deadline,
    ) -> Result<JobStatus, Refused> {
        // With the server down the job's user is unknown; a named label is looked for in
        // the watchdog's own user's domains (and `system`).
        if target.is_none() && supervisor.domain.is_none() {
            supervisor.uid = ctx.own_uid;
        }
        status(supervisor, target, ctx, deadline)
    }
}

/// launchd's domain target for the job: in the domain that answered for it, or the
/// first candidate for its user before launchd was asked.
fn service(supervisor: &Supervisor) -> String {
    let domain = supervisor
        .domain
        .clone()
        .unwrap_or_else(|| default_domain(supervisor.uid));
    domain_target(&domain, &supervisor.name)
}

/// The status of a job `launchctl print` described: one reading for the status query
/// and for the job found while resolving ([`status`]).
fn job_status(job: LaunchdJob) -> JobStatus {
    let state = job.state.unwrap_or_else(|| "unknown".into());
    JobStatus {
        pid: job.pid,
        starting: is_starting(&state),
        state,
        start_limit_hit: false,
        program: job.program.or_else(|| job.arguments.first().cloned()),
    }
}

/// One read-only `launchctl` call, within [`QUERY_TIMEOUT`] and the run's deadline.
pub(super) fn ask_launchctl(args: &[String], deadline: Deadline) -> Result<Finished, String> {
    let mut argv = vec!["launchctl".to_string()];
    argv.extend_from_slice(args);
    command::run(&argv, &[], Output::Capture, deadline.sub(QUERY_TIMEOUT))
        .map_err(|e| e.to_string())
}

/// The target and its ancestors below PID 1, nearest first, as the kernel links them.
fn lineage(target: &ProcessInfo) -> Vec<u32> {
    let mut chain = vec![target.pid()];
    let mut pid = target.ppid;
    while pid > 1 && chain.len() < os::MAX_TREE_DEPTH {
        chain.push(pid);
        match os::parent_pid(pid) {
            Ok(parent) => pid = parent,
            Err(_) => break,
        }
    }
    chain
}

/// Whether `pid` is the watchdog itself or one of its ancestors (the job that runs the
/// watchdog, a shell it was started from): `kickstart -k` of its job would kill the
/// watchdog mid-run.
fn is_own_lineage(pid: u32, ctx: &Context) -> bool {
    pid == ctx.own_pid || os::descends_from(ctx.own_pid, pid)
}

/// The launchd job whose process is the target or its nearest ancestor, as launchd's
/// own listings (`launchctl print <domain>`, the `services` block) pair PIDs and labels,
/// in the domains that can hold a job of the target's user.
///
/// Why its word is `Trust::Confirmed` (docs/SECURITY.md): the listing is launchd's (it
/// runs as root), and the PID in it is the one launchd started, not anything the target
/// says. The domains asked are the target's own user's (`gui/<uid>`, `user/<uid>`, into
/// which only that user or root can load a job) and `system` (root's plists, including
/// daemons with `UserName`): a `kickstart -k` of such a job restarts what its own user,
/// or root, wrote, as launchd would after a crash. A job found nearer than any other
/// that may not be restarted (an IDE terminal's one-shot job, an app, the watchdog's
/// own job) ends the search: the server belongs to it, not to a job further up.
pub(super) fn find_by_pid(
    target: &ProcessInfo,
    ctx: &Context,
    deadline: Deadline,
) -> Option<Supervisor> {
    let uid = target.uid?;
    let chain = lineage(target);
    let mut listings = Vec::new();
    for domain in candidate_domains(uid) {
        if deadline.passed() {
            break;
        }
        let Ok(done) = (ctx.launchctl)(&["print".into(), domain.clone()], deadline) else {
            continue;
        };
        // An ambiguous or cut listing is no evidence either way.
        if let Ok(listing) = parse_domain_services(&done.stdout) {
            listings.push((domain, listing));
        }
    }
    if listings.is_empty() {
        return None;
    }
    for &pid in &chain {
        if is_own_lineage(pid, ctx) {
            return None;
        }
        // launchd starts a job's process as the job's user, and all it starts keeps that
        // user: an ancestor of another user (read, or unreadable) is a daemon that
        // started the server on someone's behalf (cron for a crontab, sshd for a
        // login, `sudo`), not the server's job. `kickstart -k system/com.vix.cron`
        // would restart cron, every run, and never the server.
        if pid != target.pid() && os::process_info(pid).ok().and_then(|p| p.uid) != Some(uid) {
            return None;
        }
        let mut found: Option<(&String, &str)> = None;
        for (domain, listing) in &listings {
            match label_of(listing, pid) {
                Ok(Some(label)) if found.is_none() => found = Some((domain, label)),
                // The same job seen from two domains (whether `user/<uid>` lists what
                // `gui/<uid>` runs while the user is logged in is not known without a
                // Mac): the first domain asked, the more specific one, is kept.
                Ok(Some(label)) if found.is_some_and(|(_, first)| first == label) => {}
                // Two jobs claiming one PID, or a PID listed twice: not believed.
                Ok(Some(_)) | Err(_) => return None,
                Ok(None) => {}
            }
        }
        let Some((domain, label)) = found else {
            continue;
        };
        if !is_launchd_label(label) || Some(label) == ctx.own_label.as_deref() {
            return None;
        }
        let whose = if pid == target.pid() {
            "its PID".to_string()
        } else {
            format!("its ancestor PID {pid}")
        };
        return Some(Supervisor {
            kind: Kind::Launchd,
            name: label.to_string(),
            user: false,
            uid,
            server_url: None,
            evidence: format!("launchd lists {whose} as a job of {domain}"),
            trust: Trust::Confirmed,
            domain: Some(domain.clone()),
            tool: Default::default(),
        });
    }
    None
}

/// Asks launchd about the job in its domain, or, with none known yet, in each domain
/// that can hold it (see [`candidate_domains`]) until one answers: the one whose job
/// runs the target or an ancestor of it, else the first that knows the label. Records
/// that domain in `supervisor`, so that status and `kickstart` address the same job,
/// then checks the job may be restarted at all ([`restartable`]); if not, the refusal
/// is the operator's message.
fn status(
    supervisor: &mut Supervisor,
    target: Option<&ProcessInfo>,
    ctx: &Context,
    deadline: Deadline,
) -> Result<JobStatus, Refused> {
    let domains = match &supervisor.domain {
        Some(domain) => vec![domain.clone()],
        None => candidate_domains(supervisor.uid),
    };
    let mut answered: Option<(String, LaunchdJob)> = None;
    let mut failures = Vec::new();
    for domain in domains {
        if deadline.passed() {
            failures.push("the run's deadline passed".to_string());
            break;
        }
        let service = domain_target(&domain, &supervisor.name);
        let argv = ["print".to_string(), service.clone()];
        let done = match (ctx.launchctl)(&argv, deadline) {
            Ok(done) => done,
            Err(e) => {
                failures.push(format!("`launchctl print {service}`: {e}"));
                continue;
            }
        };
        match parse_print(&done.stdout) {
            Ok(job) => {
                let runs_target =
                    target.is_some_and(|t| job.pid.is_some_and(|pid| is_self_or_ancestor(pid, t)));
                if runs_target || target.is_none() {
                    answered = Some((domain, job));
                    break;
                }
                answered.get_or_insert((domain, job));
            }
            Err(why) => failures.push(format!(
                "`launchctl print {service}` ({}): {why}; it said: {}",
                done.status,
                first_line(&done.text())
            )),
        }
    }
    let Some((domain, job)) = answered else {
        return Err(Refused::Unanswered(failures.join("; ")));
    };
    supervisor.domain = Some(domain);
    if let Err(why) = restartable(supervisor, &job, target, ctx) {
        return Err(Refused::NotRestartable(format!(
            "{} ({}) is not restarted: {why}; nothing is restarted this run, neither \
             through launchd nor by a builtin restart that could fight it; if the server \
             is not that job, set restart.method = \"builtin\"",
            supervisor.describe(),
            supervisor.evidence
        )));
    }
    Ok(job_status(job))
}

/// Whether launchd's job may be `kickstart -k`ed for this target; `Err` says why not.
/// It must be a job loaded from a plist (a `path`, and the type of a LaunchAgent or a
/// LaunchDaemon), not one of launchd's made-up one-shot jobs, not the watchdog's own
/// job, and its process must not be the watchdog or an ancestor of it. Unless the
/// operator named it, it must also run the target (its PID is the target or an
/// ancestor) or the target's program (the same arguments: an orphan of the job).
fn restartable(
    supervisor: &Supervisor,
    job: &LaunchdJob,
    target: Option<&ProcessInfo>,
    ctx: &Context,
) -> Result<(), String> {
    if is_oneshot(&supervisor.name) {
        return Err(
            "it is launchd's one-shot job for a process started outside any plist (a \
             terminal inside an IDE, say): kickstart -k would restart that, not the server"
                .into(),
        );
    }
    if Some(supervisor.name.as_str()) == ctx.own_label.as_deref() {
        return Err("it is the watchdog's own job".into());
    }
    let Some(path) = &job.path else {
        return Err("launchctl print shows no plist path for it".into());
    };
    // /System is macOS's own read-only volume (SIP): no server's plist is there, but
    // the jobs of root's cron (com.vix.cron) and sshd (com.openssh.sshd) are, and a
    // server started from a crontab or a login descends from them. `kickstart -k` of
    // cron would restart cron, not the server.
    if path.starts_with("/System/") {
        return Err(format!(
            "its plist {path} is one of macOS's own jobs, which runs no server"
        ));
    }
    match job.kind.as_deref() {
        Some("LaunchAgent" | "LaunchDaemon") => {}
        Some(other) => {
            return Err(format!(
                "its type is {other}, not a LaunchAgent or a LaunchDaemon"
            ));
        }
        None => return Err("launchctl print shows no type for it".into()),
    }
    if let Some(pid) = job.pid
        && is_own_lineage(pid, ctx)
    {
        return Err(format!(
            "its PID {pid} is the watchdog or an ancestor of it: kickstart -k would kill \
             the watchdog"
        ));
    }
    let Some(target) = target else {
        return Ok(());
    };
    if supervisor.trust == Trust::Configured
        || job.pid.is_some_and(|pid| is_self_or_ancestor(pid, target))
        || runs_program_of(job, target)
    {
        return Ok(());
    }
    Err(format!(
        "launchd runs {} for it, neither PID {} nor an ancestor, and its program is not \
         the one PID {} runs",
        job.pid
            .map_or_else(|| "nothing".to_string(), |p| format!("PID {p}")),
        target.pid(),
        target.pid()
    ))
}

/// Whether the job's program and arguments are the target's command line.
fn runs_program_of(job: &LaunchdJob, target: &ProcessInfo) -> bool {
    if target.argv.is_empty() {
        return false;
    }
    if job.arguments.is_empty() {
        return job.program.as_deref() == target.argv.first().map(String::as_str)
            && target.argv.len() == 1;
    }
    job.arguments == target.argv
}
