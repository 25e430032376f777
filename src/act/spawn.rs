//! Starting the server, detached in a new session with its output in a log file.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot open the server's output log {path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {program}: {source}")]
    Start {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// How to start the server again: what it was started with, captured before the kill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    /// The user and group to start it as (see `act::start_as`); `None`: the
    /// watchdog's own.
    pub user: Option<(u32, u32)>,
}

impl Launch {
    /// The program to execute: an absolute `argv[0]`, one relative to the server's
    /// working directory, or the first match on the server's own `PATH` (not the
    /// watchdog's: cron's `PATH` is minimal).
    pub fn program(&self) -> Option<PathBuf> {
        let first = self.argv.first()?;
        if first.contains('/') {
            return Some(self.cwd.join(first));
        }
        let path = self
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())?;
        path.split(':')
            .filter(|dir| !dir.is_empty())
            .map(|dir| self.cwd.join(dir).join(first))
            .find(|candidate| crate::command::is_executable(candidate))
    }
}

/// Opens (appending) the file that a started process writes its output to.
fn output_log(path: &Path) -> Result<(File, File), SpawnError> {
    crate::command::output_log(path).map_err(|source| SpawnError::Log {
        path: path.to_path_buf(),
        source,
    })
}

/// Starts the server in a new session (so it outlives the watchdog, and no terminal or
/// cron job signal reaches it), stdin from /dev/null, output appended to `log`, as
/// `user` (uid, gid) when given.
fn detached(
    mut command: Command,
    log: &Path,
    user: Option<(u32, u32)>,
) -> Result<Child, SpawnError> {
    let (out, err) = output_log(log)?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let program = command.get_program().to_string_lossy().into_owned();
    command
        .spawn()
        .map_err(|source| SpawnError::Start { program, source })
}

/// The server's own command line, cwd and environment, exactly.
pub fn replay(launch: &Launch, log: &Path) -> Result<Child, SpawnError> {
    let program = launch.program().ok_or_else(|| SpawnError::Start {
        program: launch.argv.first().cloned().unwrap_or_default(),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "not found on the server's PATH; set restart.start_command",
        ),
    })?;
    let mut command = Command::new(program);
    command
        .arg0(&launch.argv[0])
        .args(&launch.argv[1..])
        .current_dir(&launch.cwd)
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k, v)));
    detached(command, log, launch.user)
}

/// `/bin/sh -c <shell>` as a detached server start, as `user` when given.
pub fn shell_detached(
    shell: &str,
    cwd: &Path,
    log: &Path,
    user: Option<(u32, u32)>,
) -> Result<Child, SpawnError> {
    let mut command = Command::new("/bin/sh");
    command.arg("-c").arg(shell).current_dir(cwd);
    detached(command, log, user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(argv: &[&str], path: &str) -> Launch {
        Launch {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            cwd: PathBuf::from("/srv/app"),
            env: vec![("PATH".into(), path.into())],
            user: None,
        }
    }

    #[test]
    fn program_resolution() {
        assert_eq!(
            launch(&["/usr/bin/env", "x"], "").program(),
            Some(PathBuf::from("/usr/bin/env"))
        );
        assert_eq!(
            launch(&["./server.py"], "").program(),
            Some(PathBuf::from("/srv/app/./server.py"))
        );
        assert_eq!(
            launch(&["sh"], "/nonexistent:/bin").program(),
            Some(PathBuf::from("/bin/sh"))
        );
        assert_eq!(launch(&["no-such-program-here"], "/bin").program(), None);
        assert_eq!(launch(&[], "/bin").program(), None);
    }

    /// Root starting another user's server starts it as that user. (The tests run as
    /// root, as CI does.)
    #[test]
    fn a_replacement_starts_as_the_given_user() {
        assert_eq!(crate::probe::os::own_uid(), 0, "this test needs root");
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        let mut start = launch(&["/bin/sh", "-c", "id -u; id -g"], "/bin:/usr/bin");
        start.cwd = PathBuf::from("/");
        start.user = Some((65534, 65533));
        let mut child = replay(&start, &log).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "65534\n65533\n");

        let shell_log = dir.path().join("shell.log");
        let mut child =
            shell_detached("id -u", Path::new("/"), &shell_log, Some((65534, 65534))).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(std::fs::read_to_string(&shell_log).unwrap(), "65534\n");
    }
}
