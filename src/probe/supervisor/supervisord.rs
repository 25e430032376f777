//! supervisord: the target's `SUPERVISOR_*` environment (a claim that a supervisord
//! ancestor holding the control socket it names must back), `supervisorctl [-s URL]
//! status`, `pid` and `restart` of `group:name`, their output, and how to recognise
//! supervisord itself among a process's ancestors.

use super::{
    Behaviour, Claim, Clues, JobStatus, Kind, QUERY_TIMEOUT, Supervisor, holds_server_socket,
    job_argv, use_tool_beside,
};
use std::path::{Path, PathBuf};

use crate::command::{self, Output};
use crate::config::{Method, RestartConfig};
use crate::deadline::Deadline;
use crate::probe::os::{self, ProcessInfo};

/// supervisord's part of [`Behaviour`].
pub(super) struct Supervisord;

impl Behaviour for Supervisord {
    fn method(&self) -> Method {
        Method::Supervisor
    }

    fn config_key(&self) -> &'static str {
        "program"
    }

    fn configured_name(&self, cfg: &RestartConfig) -> Option<String> {
        cfg.program.clone()
    }

    /// The nearest ancestor whose command line is supervisord's.
    fn gather(&self, target: &ProcessInfo, clues: &mut Clues) {
        if let Some(info) = os::nearest_ancestor(target.ppid, |info| is_supervisord(&info.argv)) {
            clues.supervisord = Some(info.pid());
            clues.supervisord_argv = info.argv;
        }
    }

    /// supervisord names the program in its children's environment; a one-process group
    /// has no `SUPERVISOR_GROUP_NAME` and is `name:name`.
    fn detect(&self, clues: &Clues, _own_label: Option<&str>) -> Option<Supervisor> {
        let process = clues.var("SUPERVISOR_PROCESS_NAME")?;
        let group = clues.var("SUPERVISOR_GROUP_NAME").unwrap_or(process);
        Some(Supervisor {
            server_url: clues.var("SUPERVISOR_SERVER_URL").map(str::to_string),
            ..Supervisor::detected(
                Kind::Supervisor,
                format!("{group}:{process}"),
                clues,
                "SUPERVISOR_PROCESS_NAME",
            )
        })
    }

    /// A supervisord ancestor, holding the control socket the target names (if it names
    /// one): a forged `SUPERVISOR_SERVER_URL` must not even be queried.
    fn claim(&self, supervisor: &Supervisor, clues: &Clues) -> Result<Claim, String> {
        let Some(pid) = clues.supervisord else {
            return Err("no supervisord is its ancestor".into());
        };
        match &supervisor.server_url {
            Some(url) => match holds_server_socket(pid, url) {
                Ok(()) => Ok(Claim::Ancestor(format!("supervisord PID {pid}"))),
                Err(why) => Err(format!(
                    "its ancestor supervisord PID {pid} {why}, SUPERVISOR_SERVER_URL={url}"
                )),
            },
            None => Ok(Claim::Ancestor(format!("supervisord PID {pid}"))),
        }
    }

    fn describe(&self, supervisor: &Supervisor) -> String {
        format!("supervisord program {}", supervisor.name)
    }

    fn status_argv(&self, supervisor: &Supervisor) -> Vec<String> {
        job_argv(tool(supervisor), "status", &supervisor.name)
    }

    fn restart_argv(&self, supervisor: &Supervisor) -> Vec<String> {
        job_argv(tool(supervisor), "restart", &supervisor.name)
    }

    fn parse_status(&self, supervisor: &Supervisor, stdout: &str) -> Result<JobStatus, String> {
        let program = parse_status(stdout, &supervisor.name)
            .ok_or_else(|| format!("no status line for {}", supervisor.name))?;
        Ok(JobStatus {
            pid: program.pid,
            starting: program.starting(),
            state: program.state,
            start_limit_hit: false,
            program: None,
        })
    }

    /// The `supervisorctl` of the supervisord that runs the target: beside the script
    /// it runs, or the same interpreter's `-m supervisor.supervisorctl`; used when
    /// nobody but root and `own_uid` could replace it or a directory above it.
    fn locate_tool(&self, supervisor: &mut Supervisor, clues: &Clues, own_uid: u32) {
        let Some(pid) = clues.supervisord else {
            return;
        };
        let Some((argv, program)) = beside(&clues.supervisord_argv) else {
            return;
        };
        let what = format!("the supervisorctl beside supervisord PID {pid}");
        use_tool_beside(supervisor, &what, argv, &program, own_uid);
    }

    /// `supervisorctl status` prints no PID in STARTING, though the process runs (and may
    /// listen already); read as "runs nothing", it made the fresh process an orphan.
    /// `supervisorctl pid NAME` answers in STARTING too.
    fn complete_status(&self, supervisor: &Supervisor, status: &mut JobStatus, deadline: Deadline) {
        if !status.starting || status.pid.is_some() {
            return;
        }
        let argv = job_argv(tool(supervisor), "pid", &supervisor.name);
        status.pid = command::run(&argv, &[], Output::Capture, deadline.sub(QUERY_TIMEOUT))
            .ok()
            .and_then(|done| parse_pid(&done.stdout));
    }
}

/// `supervisorctl` (the one beside the job's supervisord, else PATH's), and `-s URL` for
/// the control socket the job's supervisord listens on.
fn tool(supervisor: &Supervisor) -> Vec<String> {
    let mut argv = supervisor.tool.argv_or("supervisorctl");
    if let Some(url) = &supervisor.server_url {
        argv.extend(["-s".into(), url.clone()]);
    }
    argv
}

/// The supervisorctl of a supervisord run as `argv`, and the file to trust for it:
/// `[python, -m, supervisor.supervisord, ...]` gives that interpreter's `-m
/// supervisor.supervisorctl`; `[python, /DIR/supervisord, ...]` or `[/DIR/supervisord,
/// ...]` (pip's scripts, a virtualenv's) gives `/DIR/supervisorctl`. A bare name or a
/// relative path says nothing of where it lives: `None`, and PATH is searched.
pub fn beside(argv: &[String]) -> Option<(Vec<String>, PathBuf)> {
    let absolute = |arg: &String| Path::new(arg).is_absolute().then(|| PathBuf::from(arg));
    if let Some(at) = argv
        .iter()
        .take(3)
        .position(|a| a == "supervisor.supervisord")
        && at >= 2
        && argv[at - 1] == "-m"
    {
        let python = absolute(argv.first()?)?;
        // The command line is written by whoever owns supervisord: `-m` names a module
        // only for a python (`/bin/sh -m ...` would run a script of another meaning).
        let name = python.file_name()?.to_str()?;
        if !(name.starts_with("python") || name.starts_with("pypy")) {
            return None;
        }
        let tool = vec![
            python.display().to_string(),
            "-m".into(),
            "supervisor.supervisorctl".into(),
        ];
        return Some((tool, python));
    }
    let script = argv
        .iter()
        .take(3)
        .find(|a| a.rsplit('/').next() == Some("supervisord"))?;
    let ctl = absolute(script)?.with_file_name("supervisorctl");
    Some((vec![ctl.display().to_string()], ctl))
}

/// One program line of `supervisorctl status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramStatus {
    pub name: String,
    /// RUNNING, STARTING, BACKOFF, FATAL, STOPPED, EXITED, STOPPING, UNKNOWN.
    pub state: String,
    pub pid: Option<u32>,
    /// The rest of the line: "pid 123, uptime 0:01:02" or "Exited too quickly ...".
    pub description: String,
}

impl ProgramStatus {
    /// supervisord is (re)starting the program: STARTING lasts `startsecs` after a spawn
    /// (the process exists, and may already listen, but `status` prints no PID for it);
    /// BACKOFF waits to spawn again and has retries left (when they run out the state
    /// is FATAL). Either way supervisord owns what happens next: a restart or a kill of
    /// ours would race it.
    pub fn starting(&self) -> bool {
        is_starting(&self.state)
    }

    /// States from which only an explicit start brings the program back: supervisord
    /// has given up (FATAL) or was told to stop. superlance's httpok ignores these; a
    /// restart here is exactly what is needed.
    pub fn given_up(&self) -> bool {
        matches!(self.state.as_str(), "FATAL" | "EXITED" | "STOPPED")
    }
}

/// See [`ProgramStatus::starting`].
pub fn is_starting(state: &str) -> bool {
    matches!(state, "STARTING" | "BACKOFF")
}

/// `supervisorctl pid NAME`: the program's PID, which it prints in STARTING too; `0`
/// (not running) and any complaint (`ERROR (no such process)`) are no PID.
pub fn parse_pid(text: &str) -> Option<u32> {
    text.lines()
        .next()?
        .trim()
        .parse()
        .ok()
        .filter(|&pid: &u32| pid > 0)
}

/// Whether a command line is supervisord's: `supervisord ...`, `python3
/// /usr/bin/supervisord ...` or `python3 -m supervisor.supervisord ...`. The name
/// alone proves nothing (anyone can call a program that); what the caller confirms
/// next, that this process holds the control socket and runs the job, does.
pub fn is_supervisord(argv: &[String]) -> bool {
    argv.iter()
        .take(3)
        .any(|arg| arg == "supervisor.supervisord" || arg.rsplit('/').next() == Some("supervisord"))
}

/// Parses the line for `name` (`group:name`, or a bare name for a one-process group).
pub fn parse_status(text: &str, name: &str) -> Option<ProgramStatus> {
    text.lines().filter_map(parse_line).find(|p| {
        p.name == name
            || name
                .split_once(':')
                .is_some_and(|(g, n)| g == n && p.name == n)
    })
}

fn parse_line(line: &str) -> Option<ProgramStatus> {
    let mut parts = line.split_whitespace();
    let name = parts.next()?.to_string();
    let state = parts.next()?.to_string();
    if !state.chars().all(|c| c.is_ascii_uppercase()) {
        return None;
    }
    let description = parts.collect::<Vec<_>>().join(" ");
    let pid = match description.strip_prefix("pid ") {
        // Without the `,` after it the line was cut short, maybe inside the PID.
        Some(rest) => rest.split_once(',')?.0.trim().parse().ok(),
        None => None,
    };
    Some(ProgramStatus {
        name,
        state,
        pid,
        description,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "\
hermes:hermes-webui              RUNNING   pid 31337, uptime 1 day, 2:03:04
other                            FATAL     Exited too quickly (process log may have details)
looping                          BACKOFF   Exited too quickly (process log may have details)
stopped                          STOPPED   Nov 28 01:02 PM
";

    #[test]
    fn parses_each_state() {
        let running = parse_status(STATUS, "hermes:hermes-webui").unwrap();
        assert_eq!(running.state, "RUNNING");
        assert_eq!(running.pid, Some(31337));
        assert!(!running.given_up());

        let fatal = parse_status(STATUS, "other:other").unwrap();
        assert_eq!((fatal.state.as_str(), fatal.pid), ("FATAL", None));
        assert!(fatal.given_up());
        assert!(!fatal.starting());
        // BACKOFF has retries left: supervisord will spawn it again by itself.
        let looping = parse_status(STATUS, "looping").unwrap();
        assert!(looping.starting() && !looping.given_up());
        assert!(parse_status(STATUS, "stopped").unwrap().given_up());
        assert_eq!(parse_status(STATUS, "missing:missing"), None);
        assert_eq!(
            parse_status("error: <class 'ConnectionRefusedError'>", "x"),
            None
        );
    }

    /// A line cut inside `pid 31337,` would otherwise name PID 313.
    #[test]
    fn a_line_cut_inside_the_pid_is_no_status() {
        assert_eq!(parse_status("web   RUNNING   pid 313", "web"), None);
        assert_eq!(parse_status("web   RUNNING   pid 31337", "web"), None);
        let whole = parse_status("web   RUNNING   pid 31337, uptime 0:00:05", "web");
        assert_eq!(whole.and_then(|p| p.pid), Some(31337));
    }

    /// Captured from supervisord 4.3.0 (`supervisorctl status` and `supervisorctl pid`)
    /// with a program of `startsecs = 60` that already listens, and `/bin/false` with
    /// retries left: STARTING shows no PID, `pid` does; BACKOFF's `pid` is `0` (exit 7);
    /// an unknown name is a complaint (exit 1).
    #[test]
    fn starting_has_no_pid_in_status_but_pid_answers() {
        let status = "hermes:bad                       BACKOFF   Exited too quickly (process log may have details)\n\
                      hermes:webui                     STARTING  \n";
        let starting = parse_status(status, "hermes:webui").unwrap();
        assert_eq!((starting.state.as_str(), starting.pid), ("STARTING", None));
        assert!(starting.starting());
        let backoff = parse_status(status, "hermes:bad").unwrap();
        assert!(backoff.starting() && backoff.pid.is_none());
        assert_eq!(parse_pid("15537\n"), Some(15537));
        assert_eq!(parse_pid("0\n"), None);
        assert_eq!(parse_pid("No such process hermes:nosuch\n"), None);
        assert_eq!(parse_pid(""), None);
    }

    fn words(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    /// pip's script run by its interpreter, a script run directly, and `-m`: the
    /// supervisorctl of the same installation; a bare name says nothing.
    #[test]
    fn supervisorctl_is_looked_for_beside_the_supervisord_that_runs() {
        let ctl = |argv: &[&str]| beside(&words(argv));
        let script = (
            words(&["/usr/local/bin/supervisorctl"]),
            PathBuf::from("/usr/local/bin/supervisorctl"),
        );
        assert_eq!(
            ctl(&["/usr/bin/python3", "/usr/local/bin/supervisord", "-c", "x"]),
            Some(script.clone())
        );
        assert_eq!(ctl(&["/usr/local/bin/supervisord", "-n"]), Some(script));
        assert_eq!(
            ctl(&[
                "/opt/venv/bin/python3",
                "-m",
                "supervisor.supervisord",
                "-n"
            ]),
            Some((
                words(&["/opt/venv/bin/python3", "-m", "supervisor.supervisorctl"]),
                PathBuf::from("/opt/venv/bin/python3")
            ))
        );
        assert_eq!(ctl(&["python3", "-m", "supervisor.supervisord"]), None);
        // The command line is the supervisord owner's to write: `-m` is python's only
        // when the program is a python (root must not run `/bin/sh -m ...`).
        assert_eq!(ctl(&["/bin/sh", "-m", "supervisor.supervisord"]), None);
        assert_eq!(ctl(&["/usr/bin/env", "-m", "supervisor.supervisord"]), None);
        assert!(ctl(&["/usr/bin/python3.12", "-m", "supervisor.supervisord"]).is_some());
        assert!(ctl(&["/usr/bin/pypy3", "-m", "supervisor.supervisord"]).is_some());
        assert_eq!(ctl(&["supervisord", "-n"]), None);
        assert_eq!(ctl(&["python3", "bin/supervisord"]), None);
        assert_eq!(
            ctl(&["/usr/bin/python3", "-u", "/srv/venv/bin/supervisord"]),
            Some((
                words(&["/srv/venv/bin/supervisorctl"]),
                PathBuf::from("/srv/venv/bin/supervisorctl")
            ))
        );
    }

    /// The tool found is the one every status query and the restart run; one another
    /// user could replace is not, and the evidence says why.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_tool_another_user_could_replace_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let ctl = bin.join("supervisorctl");
        std::fs::write(&ctl, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&ctl, std::fs::Permissions::from_mode(0o755)).unwrap();
        let own = os::own_uid();
        let clues = Clues {
            supervisord: Some(7),
            supervisord_argv: words(&[
                "/usr/bin/python3",
                &bin.join("supervisord").display().to_string(),
            ]),
            ..Clues::default()
        };
        let mut sup = Supervisor::detected(Kind::Supervisor, "hermes:webui".into(), &clues, "E");
        Supervisord.locate_tool(&mut sup, &clues, own);
        let path = ctl.display().to_string();
        assert_eq!(sup.tool.argv, Some(vec![path.clone()]));
        assert_eq!(
            sup.restart_argv(),
            words(&[&path, "restart", "hermes:webui"])
        );
        assert_eq!(sup.status_argv(), words(&[&path, "status", "hermes:webui"]));

        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o777)).unwrap();
        let mut sup = Supervisor::detected(Kind::Supervisor, "hermes:webui".into(), &clues, "E");
        Supervisord.locate_tool(&mut sup, &clues, own);
        assert_eq!(sup.tool.argv, None);
        assert_eq!(
            sup.restart_argv(),
            words(&["supervisorctl", "restart", "hermes:webui"])
        );
        let why = sup.tool.refused.clone().unwrap();
        assert!(
            why.starts_with(&format!(
                "the supervisorctl beside supervisord PID 7 ({path}) is not used: "
            )) && why.contains("without the sticky bit")
                && why.ends_with("it is looked for on PATH instead"),
            "{why}"
        );
        assert_eq!(sup.evidence, format!("E; {why}"));
    }

    #[test]
    fn recognises_supervisord_command_lines() {
        let argv = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        for yes in [
            argv(&["/usr/bin/python3", "/usr/bin/supervisord", "-n", "-c", "x"]),
            argv(&["python3", "-m", "supervisor.supervisord", "-n"]),
            argv(&["supervisord"]),
        ] {
            assert!(is_supervisord(&yes), "{yes:?}");
        }
        for no in [
            argv(&["python3", "server.py", "--name", "a", "supervisord"]),
            argv(&["supervisorctl", "status"]),
            argv(&[]),
        ] {
            assert!(!is_supervisord(&no), "{no:?}");
        }
    }
}
