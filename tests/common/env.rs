//! One test's private world: [`TestEnv`], a temporary directory holding the fake HOME,
//! the config file, the watchdog's state dir and log, and the test server's port file,
//! PID file, PID log, mode file and SQLite database.
//!
//! Dropping it SIGKILLs every PID in its PID log (servers the watchdog respawned
//! included), but only while `/proc/PID/cmdline` still names `testserver.py` and this
//! env's PID log (a reused PID may be another test's server: tests run in parallel).

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use super::config::ConfigToml;
use super::proc::is_alive;
use super::processes::wait_until;
use super::server::{TestServer, is_testserver_of, kill_if_testserver};

/// One test's private world. Dropping it kills every test server in its PID log.
pub struct TestEnv {
    /// The temporary directory; removed on drop, after the processes are gone.
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    /// HOME for the watchdog (`~` in the config expands here).
    pub home: PathBuf,
    /// `[state] dir`. Not created in advance: the watchdog creates it.
    pub state_dir: PathBuf,
    /// `[log] file` (JSON lines).
    pub log_file: PathBuf,
    /// The file passed with `--config`.
    pub config_path: PathBuf,
    /// The PIDs of every test server started in this env, one a line (servers append).
    pub pid_log: PathBuf,
    /// Where the test server records its port; a replayed argv reuses the port.
    pub port_file: PathBuf,
    /// The server's PID file (like Hermes' `~/.hermes/webui.pid`).
    pub pidfile: PathBuf,
    /// Read by the server on every /health request; persists across restarts.
    pub mode_file: PathBuf,
    /// Directory holding the server's `state.db`.
    pub db_dir: PathBuf,
    pub(super) server_seq: AtomicUsize,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix("watchdog-test-")
            .tempdir()
            .expect("create temp dir");
        let root = dir.path().to_path_buf();
        let home = root.join("home");
        let db_dir = root.join("db");
        fs::create_dir_all(home.join(".config")).unwrap();
        fs::create_dir_all(home.join(".local/state")).unwrap();
        fs::create_dir_all(&db_dir).unwrap();
        TestEnv {
            state_dir: root.join("state"),
            log_file: root.join("watchdog.log"),
            config_path: root.join("watchdog.toml"),
            pid_log: root.join("server-pids.log"),
            port_file: root.join("server.port"),
            pidfile: root.join("webui.pid"),
            mode_file: root.join("server.mode"),
            dir,
            root,
            home,
            db_dir,
            server_seq: AtomicUsize::new(0),
        }
    }

    /// Writes `text` verbatim to the config file passed with `--config`.
    pub fn write_config(&self, text: &str) {
        fs::write(&self.config_path, text).expect("write config");
    }

    /// The base configuration for `server` (see [`ConfigToml`]); tweak it, then
    /// [`ConfigToml::write`] it.
    pub fn base_config(&self, server: &TestServer) -> ConfigToml {
        ConfigToml::base(self, server)
    }

    /// The PIDs in the PID log, in start order.
    pub fn logged_pids(&self) -> Vec<u32> {
        fs::read_to_string(&self.pid_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// The PID in the server's PID file, if any.
    pub fn pidfile_pid(&self) -> Option<u32> {
        fs::read_to_string(&self.pidfile).ok()?.trim().parse().ok()
    }

    /// The files in `state_dir/incidents/`.
    pub fn incident_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(self.state_dir.join("incidents"))
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    /// SIGKILLs every PID in the PID log that is still a live test server of this env.
    pub fn kill_logged_servers(&self) {
        for pid in self.logged_pids() {
            kill_if_testserver(&self.pid_log, pid, libc::SIGKILL);
        }
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        TestEnv::new()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Which logged PIDs are test servers is decided before the kill: a dying
        // process's cmdline reads empty, which must not count as "gone".
        let servers: Vec<u32> = self
            .logged_pids()
            .into_iter()
            .filter(|&p| is_testserver_of(&self.pid_log, p))
            .collect();
        self.kill_logged_servers();
        // Respawned servers are not our children: wait (bounded) until they are gone
        // before the temp dir holding their files is removed.
        wait_until(Duration::from_secs(5), || {
            servers.iter().all(|&p| !is_alive(p))
        });
    }
}
