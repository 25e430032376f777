//! A real supervisord and a real runsv (Linux), children of the test, with their config,
//! sockets, service directories and logs in the temp dir. Each fails the test (never
//! skips) when the supervisor is not installed, and is stopped on drop as its operator
//! would stop it; what it started and left behind is found by the test's temp dir on
//! its command line ([`kill_strays`]), never by a broad name.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::env::TestEnv;
use super::proc::{cmdline, is_alive};
use super::processes::{GracefulChild, wait_until};
use super::run::run_with_timeout;
use super::server::{is_testserver_of, kill_if_testserver, python};
use super::tools::{find_executable, write_script};

/// How long supervisord, its programs and runsv's service may take to come up, and a
/// `supervisorctl` call to answer: generous, Python starts slowly on a small shared
/// machine.
const SUPERVISOR_TIMEOUT: Duration = Duration::from_secs(30);

/// What the supervisor tests give the programs they run, named on their command lines
/// (with the test's temp dir): what [`Supervisord`]'s drop kills if it is left behind.
const SUPERVISED_NAMES: [&str; 4] = [
    "testserver.py",
    "double_fork_start.py",
    "victim-marker",
    "listener.py",
];

/// Fails (never skips) when supervisord is not installed for `python3`.
pub fn require_supervisor() {
    let ok = Command::new(python())
        .args([
            "-c",
            "import supervisor.supervisord, supervisor.supervisorctl",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "supervisord is not installed for {}: run script/bootstrap, or \
         `python3 -m pip install supervisor` (these tests start a real supervisord)",
        python()
    );
}

/// A real supervisord (`python3 -m supervisor.supervisord -n`), the test's child, with its
/// config, unix socket and logs in the temp dir; stopped by SIGTERM on drop, which stops
/// its programs too.
pub struct Supervisord {
    pub daemon: GracefulChild,
    root: PathBuf,
    /// `unix:///.../supervisor.sock`, as its children see it in SUPERVISOR_SERVER_URL.
    pub url: String,
    pub log: PathBuf,
}

impl Supervisord {
    /// Starts supervisord with `settings` (lines added to its `[supervisord]` section)
    /// and `programs` (config sections, one of them in `[group:hermes]`), and waits until
    /// it answers.
    pub fn start(env: &TestEnv, settings: &str, programs: &str) -> Supervisord {
        let mut launch = Command::new(python());
        launch.args(["-m", "supervisor.supervisord"]);
        Supervisord::start_via(env, settings, programs, launch)
    }

    /// [`Supervisord::start`], with `launch` the command that starts supervisord (a
    /// script installed as pip does, say); `-n -c CONF` are added to it.
    pub fn start_via(
        env: &TestEnv,
        settings: &str,
        programs: &str,
        mut launch: Command,
    ) -> Supervisord {
        require_supervisor();
        let root = env.root.display();
        let sock = env.root.join("supervisor.sock");
        // sun_path holds 108 bytes: a long TMPDIR would fail in supervisord's own words.
        assert!(
            sock.as_os_str().len() < 100,
            "socket path {} is too long for a unix socket: set a shorter TMPDIR",
            sock.display()
        );
        let url = format!("unix://{}", sock.display());
        let conf = env.root.join("supervisord.conf");
        let log = env.root.join("supervisord.log");
        fs::write(
            &conf,
            format!(
                "[unix_http_server]\nfile = {sock}\n\n\
                 [supervisord]\nlogfile = {log}\npidfile = {root}/supervisord.pid\n\
                 childlogdir = {root}\nnodaemon = true\n{settings}\n\
                 [rpcinterface:supervisor]\n\
                 supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n\
                 [supervisorctl]\nserverurl = {url}\n\n{programs}",
                sock = sock.display(),
                log = log.display(),
            ),
        )
        .unwrap();
        let out = fs::File::create(env.root.join("supervisord.out")).unwrap();
        let daemon = GracefulChild::spawn(
            launch
                .args(["-n", "-c"])
                .arg(&conf)
                .current_dir(&env.root)
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out),
            Duration::from_secs(20),
        );
        let mut sup = Supervisord {
            daemon,
            root: env.root.clone(),
            url,
            log,
        };
        let up = wait_until(SUPERVISOR_TIMEOUT, || {
            assert!(
                sup.daemon.try_wait().is_none(),
                "supervisord exited at start-up:\n{}",
                sup.logs()
            );
            sock.exists() && sup.ctl(&["status"]).1.contains("hermes:")
        });
        assert!(up, "supervisord did not answer:\n{}", sup.logs());
        sup
    }

    pub fn logs(&self) -> String {
        let out = self.log.with_file_name("supervisord.out");
        format!(
            "--- supervisord.log ---\n{}\n--- stdout/stderr ---\n{}",
            fs::read_to_string(&self.log).unwrap_or_default(),
            fs::read_to_string(out).unwrap_or_default()
        )
    }

    /// The real supervisorctl on this supervisord: exit code and output.
    pub fn ctl(&self, args: &[&str]) -> (Option<i32>, String) {
        let mut cmd = Command::new(python());
        cmd.args(["-m", "supervisor.supervisorctl", "-s", &self.url])
            .args(args);
        let r = run_with_timeout(cmd, SUPERVISOR_TIMEOUT);
        assert!(!r.timed_out, "supervisorctl {args:?} hung\n{}", r.dump());
        (r.status, format!("{}{}", r.stdout, r.stderr))
    }

    /// `supervisorctl status NAME` → state, and `supervisorctl pid NAME` (which answers
    /// in STARTING too, where the status line shows no PID).
    pub fn status(&self, name: &str) -> (String, Option<u32>) {
        let (_, out) = self.ctl(&["status", name]);
        let state = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("")
            .to_string();
        let (_, pid) = self.ctl(&["pid", name]);
        (state, pid.trim().parse().ok().filter(|&p: &u32| p > 0))
    }

    /// Waits (bounded) for `name` to reach `state`; returns its PID then.
    pub fn wait_state(&self, name: &str, state: &str) -> Option<u32> {
        self.wait_for(name, state, false)
    }

    /// Waits (bounded) for `name` to be RUNNING with a PID; returns the PID.
    pub fn wait_running(&self, name: &str) -> u32 {
        self.wait_for(name, "RUNNING", true).expect("a PID")
    }

    fn wait_for(&self, name: &str, state: &str, with_pid: bool) -> Option<u32> {
        let mut last = (String::new(), None);
        let reached = wait_until(SUPERVISOR_TIMEOUT, || {
            last = self.status(name);
            last.0 == state && (!with_pid || last.1.is_some())
        });
        assert!(
            reached,
            "{name} did not reach {state} (last: {last:?})\n{}",
            self.logs()
        );
        last.1
    }
}

impl Drop for Supervisord {
    /// supervisord stops its programs on SIGTERM; what they started outside it (the
    /// double fork's servers, one perhaps still starting up and not yet in the PID log)
    /// or left behind is found by this test's temp dir in its command line and killed.
    fn drop(&mut self) {
        self.daemon.stop();
        wait_until(Duration::from_secs(5), || {
            kill_strays(&self.root, &SUPERVISED_NAMES) == 0
        });
    }
}

/// A `[program:NAME]` section running `command` (shell words), its output in the temp
/// dir; `extra` adds lines to it.
pub fn program(env: &TestEnv, name: &str, command: &str, extra: &str) -> String {
    format!(
        "[program:{name}]\ncommand = {command}\nautostart = true\nautorestart = true\n\
         stopwaitsecs = 5\nredirect_stderr = true\nstdout_logfile = {root}/{name}.log\n{extra}\n",
        root = env.root.display(),
    )
}

/// `[group:hermes]` of `programs` (the jobs are `hermes:NAME`).
pub fn group(programs: &[&str]) -> String {
    format!("[group:hermes]\nprograms = {}\n", programs.join(","))
}

/// `runsv` and `sv`, or the test fails with the install command.
pub fn require_runit() -> (PathBuf, PathBuf) {
    let dirs = ["/usr/bin", "/usr/sbin", "/sbin", "/bin"];
    let find = |name| {
        find_executable(name, &dirs).unwrap_or_else(|| {
            panic!(
                "{name} is not installed: run script/bootstrap, or `apt-get install runit` \
                 (these tests start a real runsv)"
            )
        })
    };
    (find("runsv"), find("sv"))
}

/// A real `runsv DIR`, the test's child. Dropping it sends SIGTERM (runsv stops the
/// service and exits), then kills the service's last PID if it is still this env's test
/// server.
pub struct Runsv {
    pub daemon: GracefulChild,
    /// The service directory, canonical.
    pub dir: PathBuf,
    pub sv: PathBuf,
    /// The env's PID log, named on its servers' command lines.
    pid_log: PathBuf,
}

impl Runsv {
    /// Starts runsv on the service `service/NAME` in the temp dir, whose `run` script is
    /// `run`.
    pub fn start(env: &TestEnv, name: &str, run: &str) -> Runsv {
        let (runsv, _) = require_runit();
        Runsv::start_via(env, name, run, &runsv)
    }

    /// [`Runsv::start`] with the `runsv` executable at `runsv` (a copy beside a recording
    /// `sv`: the watchdog looks for `sv` beside the runsv that runs the job first).
    pub fn start_via(env: &TestEnv, name: &str, run: &str, runsv: &Path) -> Runsv {
        let (_, sv) = require_runit();
        let dir = env.root.join("service").join(name);
        fs::create_dir_all(&dir).unwrap();
        write_script(&dir.join("run"), run);
        let dir = dir.canonicalize().unwrap();
        let out = fs::File::create(env.root.join("runsv.out")).unwrap();
        let daemon = GracefulChild::spawn(
            Command::new(runsv)
                .arg(&dir)
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out),
            Duration::from_secs(15),
        );
        Runsv {
            daemon,
            dir,
            sv,
            pid_log: env.pid_log.clone(),
        }
    }

    /// `sv status DIR` → (output, pid).
    pub fn status(&self) -> (String, Option<u32>) {
        let mut cmd = Command::new(&self.sv);
        cmd.arg("status").arg(&self.dir);
        let r = run_with_timeout(cmd, Duration::from_secs(20));
        let pid = r
            .stdout
            .split_once("(pid ")
            .and_then(|(_, rest)| rest.split(')').next()?.parse().ok());
        (r.stdout, pid)
    }
}

impl Drop for Runsv {
    fn drop(&mut self) {
        let last = fs::read_to_string(self.dir.join("supervise/pid"))
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok());
        self.daemon.stop();
        if let Some(pid) = last {
            wait_until(Duration::from_secs(5), || {
                !is_testserver_of(&self.pid_log, pid)
            });
            kill_if_testserver(&self.pid_log, pid, libc::SIGKILL);
        }
    }
}

/// SIGKILLs every live process (other than this one) whose command line contains `root`
/// (a test's unique temp dir) and one of `names` (e.g. "testserver.py"): what a
/// supervisor started for this test and may have left behind, found by what it was
/// given, never by a broad name. Returns how many were signalled.
pub fn kill_strays(root: &Path, names: &[&str]) -> usize {
    let root = root.to_string_lossy();
    let me = std::process::id();
    let mut killed = 0;
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid <= 1 || pid == me || !is_alive(pid) {
            continue;
        }
        let line = cmdline(pid);
        if line.contains(root.as_ref()) && names.iter().any(|n| line.contains(n)) {
            // SAFETY: kill(2) on a PID just identified by its command line.
            if unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) } == 0 {
                killed += 1;
            }
        }
    }
    killed
}
