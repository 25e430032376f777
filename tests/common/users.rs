//! Root against other users (docs/SECURITY.md): the trust tests run the watchdog as
//! root against processes owned by another user. The users ([`SERVER_USER`],
//! [`ATTACKER`], numeric: no passwd entry needed), [`require_root`], a command run as
//! one of them ([`spawn_as`], [`watchdog_cmd_as`]), a process that must come through a
//! run untouched ([`Witness`]), a tree that must not change ([`tree_snapshot`]), and
//! handing files over ([`chown_tree`], [`private_state_for`], [`server_user_dir`]).

use std::fs;
use std::path::{Path, PathBuf};

use super::env::TestEnv;
use super::server::python;

// What running as another user and watching a process need: Linux only, like them.
#[cfg(target_os = "linux")]
use {
    super::proc::{is_alive, pending_signals, start_ticks},
    super::processes::ChildGuard,
    super::run::{RunResult, in_env, watchdog_bin},
    std::process::{Command, Stdio},
};

/// An unprivileged user that plays the server's owner in the trust tests (no passwd entry
/// is needed: setpriv takes numeric IDs).
pub const SERVER_USER: (u32, u32) = (4242, 4242);
/// An unprivileged user that plays the attacker: a third party, neither root nor the
/// server's owner.
pub const ATTACKER: (u32, u32) = (4343, 4343);

/// Fails the test unless it runs as root (the trust tests are about a root watchdog;
/// CI runs as root). Never a silent skip: the tests that call it are `#[ignore]`d with
/// the reason, so plain `cargo test` lists them, and this says how to run them when
/// someone asks for them anyway (`--include-ignored`, `script/test --all`).
#[track_caller]
pub fn require_root() {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test plays root against other users: run it as root \
         (script/test as root runs every ignored test; .ci/run does)"
    );
}

/// `cmd` run through `setpriv` as `uid`:`gid` with no supplementary groups, in a process
/// group of its own (killed on drop).
#[cfg(target_os = "linux")]
pub fn spawn_as(uid: u32, gid: u32, cmd: &Command) -> ChildGuard {
    let mut wrapped = Command::new("setpriv");
    wrapped
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(Stdio::null());
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    ChildGuard::spawn(&mut wrapped)
}

/// The watchdog command of [`watchdog_cmd`], run through `setpriv` as `uid`:`gid` with no
/// supplementary groups. The caller makes the temp dir usable by that user.
#[cfg(target_os = "linux")]
pub fn watchdog_cmd_as(env: &TestEnv, uid: u32, gid: u32, args: &[&str]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg("--")
        .arg(watchdog_bin())
        .args(args);
    in_env(cmd, env)
}

/// A process that must come through a run untouched: its PID and start time, taken
/// before the run.
#[cfg(target_os = "linux")]
#[derive(Debug, Clone, Copy)]
pub struct Witness {
    pub pid: u32,
    pub start: u64,
}

#[cfg(target_os = "linux")]
impl Witness {
    #[track_caller]
    pub fn of(pid: u32) -> Witness {
        let start = start_ticks(pid).unwrap_or_else(|| panic!("PID {pid} is not running"));
        Witness { pid, start }
    }

    /// Still alive, the same process (same start time), and no signal pending for it.
    #[track_caller]
    pub fn assert_untouched(&self, r: &RunResult) {
        assert!(
            is_alive(self.pid) && start_ticks(self.pid) == Some(self.start),
            "PID {} was signalled or replaced by the run\n{}",
            self.pid,
            r.dump()
        );
        assert_eq!(
            pending_signals(self.pid),
            0,
            "a signal is pending for PID {}\n{}",
            self.pid,
            r.dump()
        );
    }
}

/// Every file under `root` with its length, mode and modification time, and every
/// symlink with its target: compare two snapshots to show that a run changed nothing
/// there. Paths under `except` (the state dir, say) are left out.
pub fn tree_snapshot(root: &Path, except: &[&Path]) -> Vec<(PathBuf, String)> {
    use std::os::unix::fs::MetadataExt;
    fn walk(p: &Path, except: &[&Path], out: &mut Vec<(PathBuf, String)>) {
        if except.iter().any(|e| p.starts_with(e)) {
            return;
        }
        let Ok(meta) = fs::symlink_metadata(p) else {
            return;
        };
        let what = if meta.file_type().is_symlink() {
            format!("link -> {:?}", fs::read_link(p).ok())
        } else {
            format!(
                "len {} mode {:o} uid {} mtime {}.{}",
                meta.len(),
                meta.mode(),
                meta.uid(),
                meta.mtime(),
                meta.mtime_nsec()
            )
        };
        out.push((p.to_path_buf(), what));
        if meta.is_dir()
            && let Ok(rd) = fs::read_dir(p)
        {
            let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            entries.sort();
            for e in entries {
                walk(&e, except, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, except, &mut out);
    out
}

/// chown -R `path` to `uid`:`gid` (never following symlinks).
pub fn chown_tree(path: &Path, uid: u32, gid: u32) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).expect("lchown");
    if meta.is_dir() {
        for e in fs::read_dir(path).expect("read_dir").flatten() {
            chown_tree(&e.path(), uid, gid);
        }
    }
}

/// What a watchdog run as `uid`:`gid` needs in `env` under the trust rules
/// (docs/SECURITY.md), and nothing more: the temp root traversable (0755, still root's),
/// the config readable, and a private `[state] dir` of that user's own (0700, chowned).
/// Returns the log file to configure, inside that dir: the log's directory must be the
/// user's too.
pub fn private_state_for(env: &TestEnv, uid: u32, gid: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&env.root, fs::Permissions::from_mode(0o755)).expect("chmod root");
    if env.config_path.exists() {
        fs::set_permissions(&env.config_path, fs::Permissions::from_mode(0o644))
            .expect("chmod config");
    }
    fs::create_dir_all(&env.state_dir).expect("create state dir");
    fs::set_permissions(&env.state_dir, fs::Permissions::from_mode(0o700))
        .expect("chmod state dir");
    chown_tree(&env.state_dir, uid, gid);
    env.state_dir.join("watchdog.log")
}

/// A Python that `SERVER_USER` may run: the suite's own may sit under root's 0700 home
/// (pyenv), so the system's is preferred.
pub fn user_python() -> &'static str {
    const SYSTEM: &str = "/usr/bin/python3";
    if Path::new(SYSTEM).exists() {
        SYSTEM
    } else {
        python()
    }
}

/// `env.root/srv`, created: the place for the files of a server of `SERVER_USER`
/// (the caller hands them over with [`chown_tree`]). `env.root` stays root's (the
/// watchdog's state and log live there) and is opened for traversal only.
pub fn server_user_dir(env: &TestEnv) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&env.root, fs::Permissions::from_mode(0o755)).unwrap();
    let srv = env.root.join("srv");
    fs::create_dir_all(&srv).unwrap();
    srv
}
