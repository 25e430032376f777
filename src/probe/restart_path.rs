//! Whether a restart could start the server again, proven before anything is signalled:
//! a server killed by a restart that then cannot start it stays dead, and the next run
//! finds nothing to restart. So the way back is read from the target while it still
//! runs (its command line, working directory, environment and credentials), checked
//! without side effects, and kept: `act` starts exactly what was checked here.
//!
//! What is proven, by method:
//! - builtin replay: `argv[0]` resolves to an executable on the server's own `PATH`
//!   (a process title such as `hermes: webui` does not), the working directory still
//!   exists, the environment could be read, and the user, group and supplementary
//!   groups can be set (root: any; otherwise only the watchdog's own);
//! - `restart.start_command`: `/bin/sh` and a working directory;
//! - a supervisor: its command-line tool is found: beside the running supervisor when
//!   nobody but root and the watchdog's user could replace it there (the command line
//!   kept in `Supervisor::tool`, which the act runs too), else on PATH (cron's is
//!   minimal);
//! - `method = "command"`: `/bin/sh`, and the program if the command starts with a path.

use std::path::{Path, PathBuf};

use crate::config::{Config, Method};
use crate::probe::os::{self, ProcessInfo};
use crate::probe::supervisor::{Resolution, Supervisor};

/// Whom a started server runs as, when the watchdog runs as root: the old server's
/// real user and group and its supplementary groups.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Credentials {
    /// The list handed to `setgroups` before `setgid`: the group first, then the
    /// supplementary groups without it, in their order (what `initgroups(3)` builds,
    /// on Linux and macOS alike). Never empty, and never without the group. On xnu the
    /// effective gid *is* the first entry of the list (`#define cr_gid cr_groups[0]`,
    /// bsd/sys/ucred.h); `setgroups(0, …)` stores `{0}`, group wheel
    /// (`setgroups_internal`, bsd/kern/kern_prot.c); and `setgid` overwrites the first
    /// entry, or swaps it with a later one equal to the new gid (`setgid` →
    /// `kauth_cred_model_setresgid` → `kauth_cred_change_egid`,
    /// bsd/kern/kern_credential.c). So a list not starting with the gid would lose its
    /// first group to the `setgid`, and std's `Command::gid`, which calls
    /// `setgroups(0)` *after* `setgid`, leaves the server in group 0. macOS reports a
    /// process's list with its egid first (`cr_groups`), so there the list is the one
    /// captured; on Linux the gid joins the supplementary groups when it was not among
    /// them, as login and `initgroups(3)` put it there: it is the server's own group,
    /// so this grants it nothing it did not have.
    pub fn group_list(&self) -> Vec<u32> {
        let mut seen = std::collections::HashSet::from([self.gid]);
        std::iter::once(self.gid)
            .chain(self.groups.iter().copied().filter(|g| seen.insert(*g)))
            .collect()
    }

    /// `Err` when this kernel would refuse [`Credentials::group_list`] (more groups
    /// than `NGROUPS_MAX`: 16 on macOS): found before anything is signalled, not when
    /// the replacement starts after the old server is gone.
    fn settable(&self, whose: &str) -> Result<(), String> {
        // SAFETY: sysconf reads a system constant; no memory is passed.
        let max = unsafe { libc::sysconf(libc::_SC_NGROUPS_MAX) };
        let count = self.group_list().len();
        match usize::try_from(max) {
            Ok(max) if count > max => Err(format!(
                "{whose} runs with {count} groups, and this system lets a process have at \
                 most {max}, so its replacement could not get them back: give its user \
                 fewer groups"
            )),
            _ => Ok(()),
        }
    }
}

/// How to start the server again: what it was started with, captured while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The executable `argv[0]` resolved to (see [`Launch::resolve`]).
    pub program: PathBuf,
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    /// `None`: the watchdog's own user and groups.
    pub user: Option<Credentials>,
}

impl Launch {
    /// The program to execute: an absolute `argv[0]`, one relative to the server's
    /// working directory, or the first match on the server's own `PATH` (not the
    /// watchdog's: cron's `PATH` is minimal). `None` unless it is an executable file.
    pub fn resolve(argv: &[String], cwd: &Path, env: &[(String, String)]) -> Option<PathBuf> {
        let first = argv.first()?;
        if first.contains('/') {
            let program = cwd.join(first);
            return crate::command::is_executable(&program).then_some(program);
        }
        let path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())?;
        path.split(':')
            .filter(|dir| !dir.is_empty())
            .map(|dir| cwd.join(dir).join(first))
            .find(|candidate| crate::command::is_executable(candidate))
    }
}

/// The proven way to start the server again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartPath {
    /// Replay the server's own command line.
    Replay(Launch),
    /// `restart.start_command` through `/bin/sh`, in `cwd`, as `user`.
    StartCommand {
        cwd: PathBuf,
        user: Option<Credentials>,
    },
    /// The supervisor's tool, or `restart.command`: found, nothing more to keep.
    Tool,
}

/// `None` when no action could be taken anyway (`method = "none"`, a supervisor method
/// without a job: the decision says why); `Err` says what to set.
pub type Readiness = Option<Result<RestartPath, String>>;

/// Checks the way back for what this run would do. Side-effect free: it reads the
/// target's `/proc` entries and looks at files. `last_user` is whom the server a run
/// last saw ran as (from the history): with no server running, a root watchdog starts
/// `start_command` as them.
pub fn check(
    cfg: &Config,
    target: Option<&ProcessInfo>,
    resolution: &Resolution,
    last_user: Option<&Credentials>,
    target_env: Option<&[(String, String)]>,
) -> Readiness {
    if let Some(supervision) = &resolution.supervision {
        return Some(supervisor_tool(&supervision.supervisor));
    }
    match resolution.method {
        Method::Command => Some(command_ready(cfg)),
        Method::Builtin => match (target, &cfg.restart.start_command) {
            (Some(target), None) => Some(replay_ready(target, target_env).map(RestartPath::Replay)),
            (target, Some(_)) => Some(start_command_ready(cfg, target, last_user)),
            (None, None) => None,
        },
        Method::None
        | Method::Auto
        | Method::Launchd
        | Method::Systemd
        | Method::Supervisor
        | Method::Runit => None,
    }
}

fn supervisor_tool(supervisor: &Supervisor) -> Result<RestartPath, String> {
    let argv = supervisor.restart_argv();
    let tool = argv.first().map(String::as_str).unwrap_or_default();
    if supervisor.tool.argv.is_some() {
        // Found beside the running supervisor, and checked there: the act runs this
        // same command line (`Supervisor::restart_argv`).
        return match crate::command::is_executable(std::path::Path::new(tool)) {
            true => Ok(RestartPath::Tool),
            false => Err(format!(
                "the restart goes through {}, but `{tool}` is no longer an executable file",
                supervisor.describe()
            )),
        };
    }
    let refused = supervisor
        .tool
        .refused
        .as_ref()
        .map(|why| format!(" ({why})"))
        .unwrap_or_default();
    match crate::command::find_program(tool) {
        Some(_) => Ok(RestartPath::Tool),
        None => Err(format!(
            "the restart goes through {}, but `{tool}` is not on the watchdog's PATH ({}) \
             nor in /usr/local/bin, /opt/homebrew/bin, /usr/sbin or /sbin{refused}: add \
             its directory to PATH in the watchdog's schedule",
            supervisor.describe(),
            std::env::var("PATH").unwrap_or_default()
        )),
    }
}

fn shell() -> Result<(), String> {
    if crate::command::is_executable(Path::new("/bin/sh")) {
        Ok(())
    } else {
        Err("/bin/sh is not an executable file here, and the restart runs through it".into())
    }
}

fn command_ready(cfg: &Config) -> Result<RestartPath, String> {
    let Some(command) = &cfg.restart.command else {
        return Err("method = \"command\" needs restart.command".into());
    };
    shell()?;
    // Only a leading path can be checked: a bare word may be a shell builtin or
    // function, and the shell finds it on its own PATH.
    if let Some(first) = command.split_whitespace().next()
        && first.starts_with('/')
        && !crate::command::is_executable(Path::new(first))
    {
        return Err(format!(
            "restart.command starts with `{first}`, which is not an executable file: \
             fix restart.command"
        ));
    }
    Ok(RestartPath::Tool)
}

fn start_command_ready(
    cfg: &Config,
    target: Option<&ProcessInfo>,
    last_user: Option<&Credentials>,
) -> Result<RestartPath, String> {
    shell()?;
    // The operator's command runs as the watchdog's user unless root restores the old
    // server's: it is the operator's to get the rest right. With no server running,
    // root starts it as the user the last server seen ran as: as root, a start script
    // in that user's directory would hand that user root. Only a server never seen
    // starts as root.
    let user = match target {
        Some(target) if os::own_uid() == 0 => Some(root_restores(target)?),
        None if os::own_uid() == 0 => last_user.cloned(),
        _ => None,
    };
    if let Some(user) = &user {
        user.settable(&format!("the server last seen (uid {})", user.uid))?;
    }
    // The old server's directory when it still exists; else somewhere that does, and
    // that the start's user can enter: it changes directory as that user, after the
    // old server is gone, and root's $HOME and state dir are closed to others.
    let another_user = user.as_ref().is_some_and(|u| u.uid != os::own_uid());
    let cwd = target
        .and_then(|t| usable_dir(t.cwd.as_deref()?))
        .or_else(|| another_user.then(|| PathBuf::from("/")))
        .or_else(|| fallback_cwd(&cfg.state.dir))
        .ok_or_else(|| {
            format!(
                "restart.start_command needs a working directory, and neither $HOME nor \
                 the state directory {} exists",
                cfg.state.dir.display()
            )
        })?;
    Ok(RestartPath::StartCommand { cwd, user })
}

/// Everything a replay of `target` needs, read now, while it runs. `known_env` is its
/// environment as this run already read it (for its supervisor), if it could.
fn replay_ready(
    target: &ProcessInfo,
    known_env: Option<&[(String, String)]>,
) -> Result<Launch, String> {
    let pid = target.pid();
    let set = "set restart.start_command";
    let Some(first) = target.argv.first() else {
        return Err(format!(
            "PID {pid}'s command line is empty, so there is nothing to replay: {set}"
        ));
    };
    let Some(cwd) = target.cwd.as_deref() else {
        return Err(format!(
            "PID {pid}'s working directory cannot be read, so it cannot be replayed: {set}"
        ));
    };
    let Some(cwd) = usable_dir(cwd) else {
        let shown = cwd.to_string_lossy();
        let (shown, gone) = match shown.strip_suffix(" (deleted)") {
            Some(path) => (path, "was deleted"),
            None => (shown.as_ref(), "no longer exists"),
        };
        return Err(format!(
            "PID {pid}'s working directory {shown} {gone}, so it cannot be started there \
             again: recreate it, or {set}"
        ));
    };
    // A replay never starts with an environment it does not know: one that could not
    // be read (macOS withholds that of restricted programs) is refused, and so is an
    // empty one, since on macOS an empty environment and a withheld one cannot always
    // be told apart, and a server started without PATH or HOME is not the one it was.
    let env = match known_env {
        Some(env) => env.to_vec(),
        None => os::process_environ(pid).map_err(|e| env_unreadable(pid, &e))?,
    };
    if env.is_empty() {
        return Err(format!(
            "PID {pid}'s environment is empty (started with `env -i`, or hidden by the \
             kernel), so a replay would start it without PATH, HOME or anything it was \
             given: set restart.start_command (or restart.method, if a supervisor starts it)"
        ));
    }
    let Some(program) = Launch::resolve(&target.argv, &cwd, &env) else {
        return Err(not_a_program(pid, first, &cwd, &env));
    };
    Ok(Launch {
        program,
        argv: target.argv.clone(),
        cwd,
        env,
        user: start_as(target)?,
    })
}

/// Why an environment that could not be read stops the replay, and what to set.
fn env_unreadable(pid: u32, error: &os::OsError) -> String {
    let fix = "set restart.start_command, or restart.method if a supervisor (launchd, \
               systemd…) starts it";
    match error {
        os::OsError::EnvironmentHidden { .. } => format!(
            "macOS hides the environment of PID {pid} (it does so for restricted programs, \
             even from root), so it cannot be replayed with the environment it had: {fix}"
        ),
        e => format!(
            "the environment of PID {pid} cannot be read ({e}), so it cannot be replayed: \
             {fix}"
        ),
    }
}

fn not_a_program(pid: u32, first: &str, cwd: &Path, env: &[(String, String)]) -> String {
    let set = "set restart.start_command";
    if first.contains('/') {
        return format!(
            "PID {pid}'s argv[0] `{first}` is not an executable file (from {}): {set}",
            cwd.display()
        );
    }
    if first.chars().any(char::is_whitespace) {
        return format!(
            "PID {pid}'s argv[0] `{first}` is a process title, not a program on its PATH: {set}"
        );
    }
    match env.iter().find(|(k, _)| k == "PATH") {
        Some((_, path)) => format!(
            "PID {pid}'s argv[0] `{first}` is not a program on its PATH ({path}); a \
             process title?: {set}"
        ),
        None => format!(
            "PID {pid}'s argv[0] `{first}` is a bare name and its environment has no PATH \
             to find it on: {set}"
        ),
    }
}

/// Whom the replacement runs as. Root restores the old server's user, group and
/// supplementary groups (root included: it never adds its own); any other user can
/// only start processes as itself, so the server must not have had a group it lacks.
fn start_as(target: &ProcessInfo) -> Result<Option<Credentials>, String> {
    if os::own_uid() == 0 {
        return root_restores(target).map(Some);
    }
    let pid = target.pid();
    let (egid, own) = os::own_groups();
    let theirs = os::groups(pid).map_err(|e| {
        format!(
            "cannot read the supplementary groups of PID {pid} ({e}): run the watchdog as \
             its user, or set restart.start_command"
        )
    })?;
    let has = |g: &u32| *g == egid || own.contains(g);
    let missing: Vec<String> = target
        .gid
        .iter()
        .chain(theirs.iter())
        .filter(|g| !has(g))
        .map(u32::to_string)
        .collect();
    if missing.is_empty() {
        Ok(None)
    } else {
        Err(format!(
            "PID {pid} runs with group(s) {} that the watchdog (uid {}) does not have, so \
             its replacement would lose them: run the watchdog as root, or set \
             restart.start_command",
            missing.join(", "),
            os::own_uid()
        ))
    }
}

/// The old server's real user and group and its supplementary groups, for root to
/// start the replacement with.
fn root_restores(target: &ProcessInfo) -> Result<Credentials, String> {
    let pid = target.pid();
    let (Some(uid), Some(gid)) = (target.uid, target.gid) else {
        return Err(format!(
            "cannot tell which user and group PID {pid} runs as, so its replacement \
             would run as root"
        ));
    };
    let groups = os::groups(pid).map_err(|e| {
        format!(
            "cannot read the supplementary groups of PID {pid} ({e}), so its replacement \
             could not get them back"
        )
    })?;
    let credentials = Credentials { uid, gid, groups };
    credentials.settable(&format!("PID {pid}"))?;
    Ok(credentials)
}

/// `dir` if it is an existing directory. Linux names a deleted working directory
/// `/path (deleted)`; that path does not exist (or is not the one the server had).
fn usable_dir(dir: &Path) -> Option<PathBuf> {
    let deleted = dir.to_string_lossy().ends_with(" (deleted)");
    (!deleted && dir.is_dir()).then(|| dir.to_path_buf())
}

/// Where a start with no directory of its own runs: `$HOME`, else the state directory.
fn fallback_cwd(state_dir: &Path) -> Option<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .and_then(|home| usable_dir(&home))
        .or_else(|| usable_dir(state_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn resolve(argv: &[&str], path: &str) -> Option<PathBuf> {
        let env = vec![("PATH".to_string(), path.to_string())];
        Launch::resolve(&strings(argv), Path::new("/"), &env)
    }

    #[test]
    fn program_resolution() {
        assert_eq!(
            resolve(&["/usr/bin/env", "x"], ""),
            Some(PathBuf::from("/usr/bin/env"))
        );
        assert_eq!(resolve(&["./bin/sh"], ""), Some(PathBuf::from("/./bin/sh")));
        assert_eq!(
            resolve(&["sh"], "/nonexistent:/bin"),
            Some(PathBuf::from("/bin/sh"))
        );
        assert_eq!(resolve(&["no-such-program-here"], "/bin"), None);
        assert_eq!(resolve(&["hermes: webui"], "/bin:/usr/bin"), None);
        assert_eq!(resolve(&["/etc/passwd"], ""), None, "not executable");
        assert_eq!(resolve(&[], "/bin"), None);
    }

    #[test]
    fn a_deleted_directory_is_not_usable() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(usable_dir(dir.path()), Some(dir.path().to_path_buf()));
        let deleted = PathBuf::from(format!("{} (deleted)", dir.path().display()));
        std::fs::create_dir(&deleted).unwrap();
        assert_eq!(usable_dir(&deleted), None, "the kernel's mark wins");
        assert_eq!(usable_dir(&dir.path().join("gone")), None);
    }

    fn resolution(method: Method) -> Resolution {
        Resolution::plain(method)
    }

    #[test]
    fn a_restart_command_that_names_a_missing_program_is_refused() {
        let mut cfg = crate::config::defaults(None);
        cfg.restart.command = Some("/nonexistent/bin/restart-hermes --now".into());
        let checked = check(&cfg, None, &resolution(Method::Command), None, None);
        assert_eq!(
            checked,
            Some(Err(
                "restart.command starts with `/nonexistent/bin/restart-hermes`, \
                      which is not an executable file: fix restart.command"
                    .into()
            ))
        );
        // A bare word may be a shell builtin or function: only the shell can tell.
        cfg.restart.command = Some("cd /srv && ./restart".into());
        assert_eq!(
            check(&cfg, None, &resolution(Method::Command), None, None),
            Some(Ok(RestartPath::Tool))
        );
    }

    /// Our own process, replayed: everything is read while it runs, and as root its
    /// credentials (groups included) are kept for the spawn.
    #[test]
    fn our_own_process_can_be_replayed() {
        let me = os::process_info(std::process::id()).unwrap();
        let cfg = crate::config::defaults(None);
        let Some(Ok(RestartPath::Replay(launch))) =
            check(&cfg, Some(&me), &resolution(Method::Builtin), None, None)
        else {
            panic!("not replayable");
        };
        assert_eq!(launch.argv, me.argv);
        assert_eq!(Some(launch.cwd.clone()), me.cwd);
        assert!(launch.program.is_absolute());
        if os::own_uid() == 0 {
            let user = launch.user.unwrap();
            assert_eq!((Some(user.uid), Some(user.gid)), (me.uid, me.gid));
            assert_eq!(user.groups, os::groups(me.pid()).unwrap());
        }
    }

    /// The environment the run already read (for the supervisor) is the one replayed;
    /// without one, it is read from the process.
    #[test]
    fn a_replay_uses_the_environment_the_run_read() {
        let me = os::process_info(std::process::id()).unwrap();
        let cfg = crate::config::defaults(None);
        let read = os::process_environ(me.pid()).unwrap();
        let mut known = read.clone();
        known.push(("WATCHDOG_READ_ONCE".into(), "1".into()));
        let replay = |env: Option<&[(String, String)]>| match check(
            &cfg,
            Some(&me),
            &resolution(Method::Builtin),
            None,
            env,
        ) {
            Some(Ok(RestartPath::Replay(launch))) => launch.env,
            other => panic!("not replayable: {other:?}"),
        };
        assert_eq!(replay(Some(&known)), known);
        assert_eq!(replay(None), read);
    }

    #[test]
    fn with_start_command_a_start_needs_only_a_shell_and_a_directory() {
        let mut cfg = crate::config::defaults(None);
        cfg.restart.start_command = Some("./run.sh".into());
        let Some(Ok(RestartPath::StartCommand { cwd, user })) =
            check(&cfg, None, &resolution(Method::Builtin), None, None)
        else {
            panic!("no start path");
        };
        assert!(cwd.is_dir());
        assert_eq!(
            user, None,
            "a start with no old server runs as the watchdog"
        );
        cfg.restart.start_command = None;
        assert_eq!(
            check(&cfg, None, &resolution(Method::Builtin), None, None),
            None
        );
    }

    /// A start as another user enters its directory as that user: root's `$HOME`
    /// (/root, 0700) or the state dir (0700) would fail that chdir after the server was
    /// killed (a deleted cwd) or leave a down server down. Such a start runs in `/`.
    #[cfg(target_os = "linux")]
    #[test]
    #[ignore = "needs root (a start as another user is root's): run by script/test as root and .ci/run"]
    fn a_start_as_another_user_never_falls_back_to_roots_directories() {
        assert_eq!(
            os::own_uid(),
            0,
            "run as root: the start is as another user (script/test as root runs it; so does .ci/run)"
        );
        let mut cfg = crate::config::defaults(None);
        cfg.restart.start_command = Some("./run.sh".into());
        let last = Credentials {
            uid: 4242,
            gid: 4242,
            groups: vec![],
        };
        let Some(Ok(RestartPath::StartCommand { cwd, user })) =
            check(&cfg, None, &resolution(Method::Builtin), Some(&last), None)
        else {
            panic!("no start path");
        };
        assert_eq!(user.as_ref(), Some(&last));
        assert_eq!(cwd, Path::new("/"));
    }

    /// An environment the kernel withheld is not replayed, and the operator is told
    /// that macOS hides it and what to set instead.
    #[test]
    fn a_hidden_environment_names_macos_and_the_fix() {
        let why = env_unreadable(123, &os::OsError::EnvironmentHidden { pid: 123 });
        assert_eq!(
            why,
            "macOS hides the environment of PID 123 (it does so for restricted programs, \
             even from root), so it cannot be replayed with the environment it had: set \
             restart.start_command, or restart.method if a supervisor (launchd, systemd…) \
             starts it"
        );
        let why = env_unreadable(
            123,
            &os::OsError::PermissionDenied {
                pid: 123,
                what: "environ",
            },
        );
        assert!(
            why.starts_with("the environment of PID 123 cannot be read (permission denied")
                && why.ends_with(
                    "set restart.start_command, or restart.method if a supervisor \
                                  (launchd, systemd…) starts it"
                ),
            "{why}"
        );
    }

    /// An empty environment is not replayed: the server would start without PATH or
    /// HOME (and on macOS, empty may be the kernel hiding it).
    #[test]
    fn an_empty_environment_is_not_replayed() {
        let me = os::process_info(std::process::id()).unwrap();
        let cfg = crate::config::defaults(None);
        let checked = check(
            &cfg,
            Some(&me),
            &resolution(Method::Builtin),
            None,
            Some(&[]),
        );
        let Some(Err(why)) = checked else {
            panic!("replayed with an empty environment: {checked:?}");
        };
        assert_eq!(
            why,
            format!(
                "PID {}'s environment is empty (started with `env -i`, or hidden by the \
                 kernel), so a replay would start it without PATH, HOME or anything it was \
                 given: set restart.start_command (or restart.method, if a supervisor \
                 starts it)",
                me.pid()
            )
        );
    }

    /// More groups than the kernel allows a process is found before the server is
    /// signalled, not when its replacement fails to start.
    #[test]
    fn more_groups_than_the_kernel_allows_are_refused_before_anything_is_done() {
        // SAFETY: sysconf reads a system constant.
        let max = usize::try_from(unsafe { libc::sysconf(libc::_SC_NGROUPS_MAX) }).unwrap();
        let user = Credentials {
            uid: 4242,
            gid: 4242,
            groups: (10_000..10_000 + max as u32).collect(),
        };
        let why = user.settable("PID 7").unwrap_err();
        assert_eq!(
            why,
            format!(
                "PID 7 runs with {} groups, and this system lets a process have at most \
                 {max}, so its replacement could not get them back: give its user \
                 fewer groups",
                max + 1
            )
        );
        let fits = Credentials {
            groups: user.groups[1..].to_vec(),
            ..user
        };
        assert_eq!(fits.settable("PID 7"), Ok(()));
    }

    #[test]
    fn a_process_title_is_named_as_such() {
        let env = vec![("PATH".to_string(), "/bin".to_string())];
        let why = not_a_program(123, "hermes: webui", Path::new("/"), &env);
        assert_eq!(
            why,
            "PID 123's argv[0] `hermes: webui` is a process title, not a program on its \
             PATH: set restart.start_command"
        );
    }
}
