//! Starting the server, detached in a new session with its output in a log file, as
//! the user, group and supplementary groups `probe::restart_path` captured.

use std::ffi::CString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub use crate::probe::restart_path::{Credentials, Launch};

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

/// Opens (appending) the file that a started process writes its output to.
fn output_log(path: &Path) -> Result<(File, File), SpawnError> {
    crate::command::output_log(path).map_err(|source| SpawnError::Log {
        path: path.to_path_buf(),
        source,
    })
}

/// Starts the server in a new session (so it outlives the watchdog, and no terminal or
/// cron job signal reaches it), stdin from /dev/null, output appended to `log`, in
/// `cwd`, as `user` when given.
///
/// The credentials are set by hand, not with `Command::uid`/`gid`: those clear the
/// supplementary groups (`setgroups(0)`), which loses the server's groups and on xnu
/// leaves group 0 in the list, as its effective group (`setgroups_internal`,
/// bsd/kern/kern_prot.c). The order is setgroups (the gid first, then the others:
/// `Credentials::group_list`), setgid, setuid (after setuid neither of the others is
/// allowed), then chdir as that user, so a directory it could not enter is an error
/// rather than a server started where it could not have been. Without `user` the
/// process keeps the watchdog's own identity: nothing is set.
///
/// launchd's job variables are removed from its environment
/// (`command::without_launchd_job`).
fn detached(
    mut command: Command,
    cwd: &Path,
    log: &Path,
    user: Option<&Credentials>,
) -> Result<Child, SpawnError> {
    let program = command.get_program().to_string_lossy().into_owned();
    let start_error = |source| SpawnError::Start {
        program: program.clone(),
        source,
    };
    let (out, err) = output_log(log)?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    // Everything the child uses is allocated here, before the fork: after it, only
    // async-signal-safe calls on memory that already exists.
    let dir = CString::new(cwd.as_os_str().as_bytes())
        .map_err(|e| start_error(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
    crate::command::without_launchd_job(&mut command);
    // The group first, then the supplementary groups: on xnu the first entry of the
    // list is the effective gid (see `Credentials::group_list`).
    let ids = user.map(|c| (c.uid, c.gid, c.group_list()));
    // SAFETY: the closure runs in the child between fork and exec. It calls only
    // async-signal-safe functions (setsid, setgroups, setgid, setuid, chdir) on
    // integers and on `dir` and `groups`, which were allocated before the fork and are
    // only read; it allocates nothing (`last_os_error` builds no heap value).
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some((uid, gid, groups)) = &ids {
                // The count's type differs (size_t on Linux, int on macOS); the list
                // came from the kernel, so it fits either.
                if libc::setgroups(groups.len() as _, groups.as_ptr()) == -1
                    || libc::setgid(*gid) == -1
                    || libc::setuid(*uid) == -1
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::chdir(dir.as_ptr()) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn().map_err(start_error)
}

/// The server's own command line, cwd and environment, exactly, as captured.
pub fn replay(launch: &Launch, log: &Path) -> Result<Child, SpawnError> {
    let mut command = Command::new(&launch.program);
    if let Some((first, rest)) = launch.argv.split_first() {
        command.arg0(first).args(rest);
    }
    command
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k, v)));
    detached(command, &launch.cwd, log, launch.user.as_ref())
}

/// `/bin/sh -c <shell>` as a detached server start, as `user` when given.
pub fn shell_detached(
    shell: &str,
    cwd: &Path,
    log: &Path,
    user: Option<&Credentials>,
) -> Result<Child, SpawnError> {
    let mut command = Command::new("/bin/sh");
    command.arg("-c").arg(shell);
    detached(command, cwd, log, user)
}

#[cfg(target_os = "linux")]
#[cfg(test)]
mod tests {
    use super::*;

    fn nobody() -> Credentials {
        Credentials {
            uid: 65534,
            gid: 65533,
            groups: vec![4242, 65532],
        }
    }

    /// Root starting another user's server starts it as that user, with its group and
    /// supplementary groups, and none of root's. (The tests run as root, as CI does.)
    #[test]
    #[ignore = "needs root (starts the replacement as uid 65534 with other groups): run by script/test as root and .ci/run"]
    fn a_replacement_starts_as_the_given_user_and_groups() {
        assert_eq!(
            crate::probe::os::own_uid(),
            0,
            "this test needs root (script/test as root runs it; so does .ci/run)"
        );
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        let start = Launch {
            program: PathBuf::from("/bin/sh"),
            argv: ["sh", "-c", "id -u; id -g; id -G; pwd"]
                .map(String::from)
                .to_vec(),
            cwd: PathBuf::from("/tmp"),
            env: vec![("PATH".into(), "/bin:/usr/bin".into())],
            user: Some(nobody()),
        };
        let mut child = replay(&start, &log).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "65534\n65533\n65533 4242 65532\n/tmp\n"
        );

        let shell_log = dir.path().join("shell.log");
        let mut child =
            shell_detached("id -u; id -G", Path::new("/"), &shell_log, Some(&nobody())).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(
            std::fs::read_to_string(&shell_log).unwrap(),
            "65534\n65533 4242 65532\n"
        );
    }

    /// The list given to setgroups starts with the gid, as xnu needs (its first entry is
    /// the effective gid), and is never empty (xnu stores an empty one as `{0}`).
    #[test]
    fn the_group_list_starts_with_the_gid_and_is_never_empty() {
        let with = |groups: &[u32]| Credentials {
            uid: 4242,
            gid: 4242,
            groups: groups.to_vec(),
        };
        assert_eq!(with(&[]).group_list(), [4242]);
        assert_eq!(with(&[4343, 5000]).group_list(), [4242, 4343, 5000]);
        // macOS reports the egid first already: that list is kept as it is.
        assert_eq!(with(&[4242, 4343]).group_list(), [4242, 4343]);
        assert_eq!(with(&[4343, 4242, 5000]).group_list(), [4242, 4343, 5000]);
    }

    /// Kills and reaps a child a test started, also when the test fails.
    struct Reaped(Child);

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A server that ran with no supplementary groups gets its own group as its one
    /// group, never an empty list: std's `Command::gid` cleared the list after
    /// `setgid` (`setgroups(0)`), which left Linux with none and made group 0 the
    /// effective group on xnu. Read from the kernel with the product's own reader.
    #[test]
    #[ignore = "needs root (starts a server as uid 65534): run by script/test as root and .ci/run"]
    fn a_server_without_supplementary_groups_gets_its_own_group() {
        assert_eq!(
            crate::probe::os::own_uid(),
            0,
            "this test needs root (script/test as root runs it; so does .ci/run)"
        );
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        let user = Credentials {
            uid: 65534,
            gid: 65533,
            groups: vec![],
        };
        // spawn returns once the exec succeeded: the credentials are set by then.
        let child = shell_detached("exec sleep 30", Path::new("/"), &log, Some(&user));
        let child = Reaped(child.unwrap());
        let pid = child.0.id();
        let info = crate::probe::os::process_info(pid).unwrap();
        assert_eq!((info.uid, info.gid), (Some(65534), Some(65533)));
        assert_eq!(crate::probe::os::groups(pid).unwrap(), [65533]);
    }

    /// launchd's job variables, in the captured environment or inherited from the
    /// watchdog, never reach the server; the rest of its environment does.
    #[test]
    fn a_replay_drops_launchds_job_variables() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        let start = Launch {
            program: PathBuf::from("/usr/bin/env"),
            argv: vec!["env".into()],
            cwd: PathBuf::from("/"),
            env: vec![
                ("XPC_SERVICE_NAME".into(), "com.example.watchdog".into()),
                ("XPC_FLAGS".into(), "1".into()),
                ("HOME".into(), "/srv".into()),
            ],
            user: None,
        };
        let mut child = replay(&start, &log).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "HOME=/srv\n");
    }

    /// A working directory the user may not enter fails the start (chdir runs as the
    /// user), rather than starting it where it could never have run.
    #[test]
    #[ignore = "needs root (starts a process as uid 65534): run by script/test as root and .ci/run"]
    fn the_directory_is_entered_as_the_user() {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            crate::probe::os::own_uid(),
            0,
            "this test needs root (script/test as root runs it; so does .ci/run)"
        );
        let dir = tempfile::tempdir().unwrap();
        let closed = dir.path().join("closed");
        std::fs::create_dir(&closed).unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
        let log = dir.path().join("server.log");
        let started = shell_detached("true", &closed, &log, Some(&nobody()));
        assert!(
            matches!(&started, Err(SpawnError::Start { source, .. })
                if source.raw_os_error() == Some(libc::EACCES)),
            "{started:?}"
        );
    }
}
