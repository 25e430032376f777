//! Test harness for watchdog's end-to-end tests.
//!
//! Everything a test touches lives in one temporary directory ([`TestEnv`]): the fake
//! HOME, the config file, the watchdog's state dir and log, and the test server's port
//! file, PID file, PID log, mode file and SQLite database. Every process a test starts is
//! ended when its guard drops, also when the test fails:
//!
//! - [`TestServer`] is a real HTTP server (`tests/support/testserver.py`) that holds real
//!   SQLite WAL handles on request. Its direct child is reaped by a thread, as a
//!   supervisor or init would, so a killed server never lingers as a zombie.
//! - [`TestEnv`]'s drop SIGKILLs every PID in its PID log (servers the watchdog respawned
//!   included), but only while `/proc/PID/cmdline` still names `testserver.py` and this
//!   env's PID log (a reused PID may be another test's server: tests run in parallel).
//! - [`ChildGuard`] and [`Running`] (any other helper: `sleep 300`, a shell loop, a
//!   watchdog run) start their child in a process group of its own and SIGKILL that whole
//!   group on drop (and [`Running`] at its timeout), so what the child started in its
//!   group (a shell loop's server) goes with it. Groups and sessions the child's own
//!   children create are not reached: the servers the watchdog starts call setsid (they
//!   are left to [`TestEnv`]), and the commands it runs (supervisorctl, sv, systemctl, a
//!   restart command) each get a group of their own from the watchdog.
//!
//! The watchdog binary runs with HOME, XDG_CONFIG_HOME and XDG_STATE_HOME inside the temp
//! dir and an explicit `--config`, and is killed after a generous timeout so that a hung
//! binary fails its test instead of hanging CI.

#![allow(dead_code)] // each test crate uses a different subset

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The timeout after which a watchdog run is killed and its test fails.
pub const WATCHDOG_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a test server may take to come up.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// The temporary environment
// ---------------------------------------------------------------------------------------

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
    server_seq: AtomicUsize,
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

// ---------------------------------------------------------------------------------------
// The configuration
// ---------------------------------------------------------------------------------------

/// A watchdog config as a TOML table, pre-filled for one test server:
///
/// - `[target]` port, pidfile, `startup_grace = "0s"`;
/// - `[health]` the server's /health, `timeout = "1s"`, `attempts = 3`,
///   `interval = "500ms"`, `expect_body = "\"status\": \"ok\""`;
/// - `[fds]` `max = 1000`, one `[[fds.paths]]` rule `state.db` with `max = 500`;
/// - `[restart]` `method = "builtin"`, `stop_timeout = "2s"`, `command_timeout = "5s"`,
///   `verify_timeout = "20s"`, `max_restarts = 3`, `window = "1h"`;
/// - `[log]` file in the temp dir, `format = "json"`; `[state] dir` in the temp dir;
/// - `files = []` (no check of the real `~/.hermes/state.db-wal`).
#[derive(Clone, Debug)]
pub struct ConfigToml(pub toml::Table);

impl ConfigToml {
    pub fn base(env: &TestEnv, server: &TestServer) -> ConfigToml {
        ConfigToml::for_port(env, server.port)
    }

    /// The base configuration (see [`ConfigToml`]) for a server on `port` that the test
    /// did not start itself (one a supervisor runs): `health.url` is its /health.
    pub fn for_port(env: &TestEnv, port: u16) -> ConfigToml {
        let url = format!("http://127.0.0.1:{port}/health");
        let text = format!(
            r#"
files = []

[target]
port = {port}
pidfile = {pidfile}
startup_grace = "0s"

[health]
url = {url}
timeout = "1s"
attempts = 3
interval = "500ms"
expect_status = [200]
expect_body = '"status": "ok"'

[fds]
max = 1000
max_percent = 90
warn_percent = 75

[[fds.paths]]
pattern = "state.db"
max = 500

[restart]
method = "builtin"
command_timeout = "5s"
stop_timeout = "2s"
verify_timeout = "20s"
max_restarts = 3
window = "1h"

[log]
file = {log}
format = "json"

[state]
dir = {state}
"#,
            pidfile = toml_str(&env.pidfile),
            url = toml::Value::from(url),
            log = toml_str(&env.log_file),
            state = toml_str(&env.state_dir),
        );
        ConfigToml(text.parse().expect("base config parses"))
    }

    /// Sets a dotted key, e.g. `set("fds.max", 150)` or `set("health.timeout", "3s")`.
    pub fn set(&mut self, dotted: &str, value: impl Into<toml::Value>) -> &mut Self {
        let (table, key) = self.parent_of(dotted);
        table.insert(key.to_string(), value.into());
        self
    }

    /// Removes a dotted key.
    pub fn remove(&mut self, dotted: &str) -> &mut Self {
        let (table, key) = self.parent_of(dotted);
        table.remove(key);
        self
    }

    /// Replaces the `[[fds.paths]]` rules: `fd_paths(&[])` disables them.
    pub fn fd_paths(&mut self, rules: &[(&str, i64)]) -> &mut Self {
        let arr: Vec<toml::Value> = rules
            .iter()
            .map(|(pattern, max)| {
                let mut t = toml::Table::new();
                t.insert("pattern".into(), (*pattern).into());
                t.insert("max".into(), (*max).into());
                toml::Value::Table(t)
            })
            .collect();
        self.set("fds.paths", arr)
    }

    pub fn text(&self) -> String {
        self.0.to_string()
    }

    /// Writes the config to `env.config_path` and returns the text written.
    pub fn write(&self, env: &TestEnv) -> String {
        let text = self.text();
        env.write_config(&text);
        text
    }

    /// A duration value of the config in seconds (e.g. `secs("restart.stop_timeout")`).
    pub fn secs(&self, dotted: &str) -> f64 {
        let v = self
            .get(dotted)
            .unwrap_or_else(|| panic!("{dotted} not set"));
        parse_duration_secs(v.as_str().expect("duration string"))
    }

    pub fn get(&self, dotted: &str) -> Option<&toml::Value> {
        let mut parts = dotted.split('.');
        let mut cur = self.0.get(parts.next()?)?;
        for p in parts {
            cur = cur.as_table()?.get(p)?;
        }
        Some(cur)
    }

    /// The bound on one run (docs/DESIGN.md, "Invariants"): attempts × timeout +
    /// (attempts − 1) × interval + 2 × stop_timeout + command_timeout + verify_timeout + 5 s.
    pub fn bound_secs(&self) -> f64 {
        let attempts = self
            .get("health.attempts")
            .and_then(|v| v.as_integer())
            .expect("health.attempts") as f64;
        attempts * self.secs("health.timeout")
            + (attempts - 1.0) * self.secs("health.interval")
            + 2.0 * self.secs("restart.stop_timeout")
            + self.secs("restart.command_timeout")
            + self.secs("restart.verify_timeout")
            + 5.0
    }

    fn parent_of<'a, 'b>(&'a mut self, dotted: &'b str) -> (&'a mut toml::Table, &'b str) {
        let mut parts: Vec<&str> = dotted.split('.').collect();
        let key = parts.pop().expect("non-empty key");
        let mut table = &mut self.0;
        for p in parts {
            table = table
                .entry(p.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .unwrap_or_else(|| panic!("{p} is not a table"));
        }
        (table, key)
    }
}

fn toml_str(p: &Path) -> String {
    toml::Value::from(p.to_str().expect("utf-8 path")).to_string()
}

/// "500ms", "5s", "2m", "1h" → seconds.
pub fn parse_duration_secs(s: &str) -> f64 {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().unwrap_or_else(|_| panic!("bad duration {s:?}"));
    match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => panic!("bad duration unit in {s:?}"),
    }
}

/// 1-based (line, column) of byte `offset` in `text`, columns counted in characters.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, text[line_start..offset].chars().count() + 1)
}

/// Byte offset in `text` of key `key` (value = false) or of its value (value = true)
/// inside the `[section]` table (`""` for the top level). Panics when absent.
pub fn locate(text: &str, section: &str, key: &str, value: bool) -> usize {
    let mut current = String::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            current = trimmed
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string();
        } else if current == section {
            let indent = line.len() - line.trim_start().len();
            if let Some(rest) = line.trim_start().strip_prefix(key)
                && rest.trim_start().starts_with('=')
            {
                if !value {
                    return offset + indent;
                }
                let eq = line.find('=').unwrap();
                let after = &line[eq + 1..];
                let ws = after.len() - after.trim_start().len();
                return offset + eq + 1 + ws;
            }
        }
        offset += line.len();
    }
    panic!("key {key} not found in [{section}] of:\n{text}")
}

// ---------------------------------------------------------------------------------------
// The test server
// ---------------------------------------------------------------------------------------

/// How to start a [`TestServer`].
#[derive(Clone, Debug)]
pub struct ServerOpts {
    /// Pass `--ignore-sigterm`.
    pub ignore_sigterm: bool,
    /// Pass `--startup-delay S`.
    pub startup_delay: Option<f64>,
    /// Pass `--pidfile env.pidfile` (default true).
    pub pidfile: bool,
}

impl Default for ServerOpts {
    fn default() -> Self {
        ServerOpts {
            ignore_sigterm: false,
            startup_delay: None,
            pidfile: true,
        }
    }
}

/// A running `testserver.py`, a direct child of the test. Dropping it SIGKILLs it (if it
/// is still that test server) and waits, bounded, for the reaper.
pub struct TestServer {
    pub pid: u32,
    pub port: u16,
    /// `http://127.0.0.1:PORT/health`
    pub url: String,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// Its stdout and stderr.
    pub log_path: PathBuf,
    /// Its env's PID log (on its command line): tells it from another test's server.
    pid_log: PathBuf,
    exit: Arc<Mutex<Option<ExitStatus>>>,
    reaper: Option<JoinHandle<()>>,
}

/// The real interpreter behind `python3` (not a pyenv shim), found once.
pub fn python() -> &'static str {
    static PY: OnceLock<String> = OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 on PATH");
        assert!(out.status.success(), "python3 -c failed: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    })
}

pub fn testserver_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/testserver.py")
}

/// `python3 testserver.py` with `env`'s port file, PID log and database directory:
/// every server of one env shares the port and is cleaned up with it.
pub fn testserver_command(env: &TestEnv) -> Command {
    let mut cmd = Command::new(python());
    cmd.arg(testserver_script())
        .arg("--port-file")
        .arg(&env.port_file)
        .arg("--pid-log")
        .arg(&env.pid_log)
        .arg("--db")
        .arg(&env.db_dir);
    // On a Mac the test inherits XPC_SERVICE_NAME from whatever launchd job started it
    // (a CI runner's agent, say), and the watchdog would take the server for that job
    // (src/probe/supervisor/mod.rs, `detect`): a test server is a plain process.
    #[cfg(not(target_os = "linux"))]
    cmd.env_remove("XPC_SERVICE_NAME");
    cmd
}

impl TestServer {
    /// Starts a server with `--port-file`, `--pid-log`, `--db`, `--mode-file` (and
    /// `--pidfile`) in `env`, and waits (bounded) until it answers HTTP.
    pub fn start(env: &TestEnv, opts: ServerOpts) -> TestServer {
        let seq = env.server_seq.fetch_add(1, Ordering::SeqCst);
        let log_path = env.root.join(format!("server-{seq}.log"));
        let log = fs::File::create(&log_path).expect("server log");
        let mut cmd = testserver_command(env);
        cmd.arg("--mode-file").arg(&env.mode_file);
        if opts.pidfile {
            cmd.arg("--pidfile").arg(&env.pidfile);
        }
        if opts.ignore_sigterm {
            cmd.arg("--ignore-sigterm");
        }
        if let Some(d) = opts.startup_delay {
            cmd.arg("--startup-delay").arg(d.to_string());
        }
        cmd.current_dir(&env.root)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let mut child = cmd.spawn().expect("spawn testserver.py");
        let pid = child.id();
        let exit = Arc::new(Mutex::new(None));
        let exit2 = Arc::clone(&exit);
        let reaper = thread::spawn(move || {
            let status = child.wait().ok();
            *exit2.lock().unwrap() = status;
        });
        let mut server = TestServer {
            pid,
            port: 0,
            url: String::new(),
            base: String::new(),
            log_path,
            pid_log: env.pid_log.clone(),
            exit,
            reaper: Some(reaper),
        };
        let deadline =
            SERVER_START_TIMEOUT + Duration::from_secs_f64(opts.startup_delay.unwrap_or(0.0));
        let start = Instant::now();
        loop {
            if let Some(status) = server.exit_status() {
                panic!(
                    "test server exited during start-up ({status}); its log:\n{}",
                    fs::read_to_string(&server.log_path).unwrap_or_default()
                );
            }
            if let Some(port) = read_port(&env.port_file) {
                let base = format!("http://127.0.0.1:{port}");
                // /control/fds answers whatever the /health mode is.
                if http_get(&format!("{base}/control/fds"), Duration::from_secs(2))
                    .is_ok_and(|r| r.status == 200)
                    && listener_pid(port) == Some(pid)
                {
                    server.port = port;
                    server.url = format!("{base}/health");
                    server.base = base;
                    return server;
                }
            }
            if start.elapsed() > deadline {
                panic!(
                    "test server PID {pid} did not come up within {deadline:?}; its log:\n{}",
                    fs::read_to_string(&server.log_path).unwrap_or_default()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The exit status once the server has died and been reaped.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        *self.exit.lock().unwrap()
    }

    /// GET `base + path_and_query` (30 s timeout); panics on failure or a status other than 200.
    pub fn control(&self, path_and_query: &str) -> String {
        control(&self.base, path_and_query)
    }

    /// Sets the in-memory /health mode (not persisted: a restarted server is healthy
    /// unless the mode file says otherwise). `""` clears it.
    pub fn set_memory_mode(&self, mode: &str) {
        set_memory_mode_at(&self.base, mode);
    }

    /// How many GET /health requests this server has logged so far.
    pub fn health_requests(&self) -> usize {
        fs::read_to_string(&self.log_path)
            .unwrap_or_default()
            .matches("\"GET /health")
            .count()
    }

    /// Sends `sig` to this server (while it is still the test server).
    pub fn signal(&self, sig: i32) {
        assert!(
            kill_if_testserver(&self.pid_log, self.pid, sig),
            "PID {} is no longer the test server",
            self.pid
        );
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.exit_status().is_none() {
            kill_if_testserver(&self.pid_log, self.pid, libc::SIGKILL);
        }
        // The reaper returns once the child is dead; never block a test forever on it.
        let done = wait_until(Duration::from_secs(10), || self.exit_status().is_some());
        if done && let Some(h) = self.reaper.take() {
            let _ = h.join();
        }
    }
}

/// GET `base + path_and_query` on any test server, e.g. one the watchdog respawned
/// (30 s timeout); panics on failure or a status other than 200.
pub fn control(base: &str, path_and_query: &str) -> String {
    let url = format!("{base}{path_and_query}");
    match http_get(&url, Duration::from_secs(30)) {
        Ok(r) if r.status == 200 => r.text(),
        other => panic!("GET {url}: {other:?}"),
    }
}

/// Sets the in-memory /health mode of the server at `base` (`http://127.0.0.1:PORT`).
pub fn set_memory_mode_at(base: &str, mode: &str) {
    control(base, &format!("/control/mode?m={mode}"));
}

/// Opens `n` more SQLite WAL connections in the server; returns its FD count after.
pub fn leak(server: &TestServer, n: usize) -> usize {
    server
        .control(&format!("/control/leak?n={n}"))
        .trim()
        .parse()
        .expect("FD count")
}

/// Opens `n` more plain file handles in the server; returns its FD count after.
pub fn leak_files(server: &TestServer, n: usize) -> usize {
    server
        .control(&format!("/control/files?n={n}"))
        .trim()
        .parse()
        .expect("FD count")
}

/// Writes the persistent /health mode (read by every server in `env`, respawned ones too).
pub fn set_mode(env: &TestEnv, mode: &str) {
    fs::write(&env.mode_file, mode).expect("write mode file");
}

fn read_port(path: &Path) -> Option<u16> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

// ---------------------------------------------------------------------------------------
// Other helper processes
// ---------------------------------------------------------------------------------------

/// A child process started in a process group of its own; on drop the group is killed
/// (SIGKILL) and the child reaped (see [`kill_own_group`]).
pub struct ChildGuard(pub Child);

impl ChildGuard {
    pub fn spawn(cmd: &mut Command) -> ChildGuard {
        ChildGuard(cmd.process_group(0).spawn().expect("spawn helper process"))
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        kill_own_group(&mut self.0);
    }
}

/// True while `child` has not been reaped (it runs, or is a zombie): its PID, and so
/// the process group it leads, cannot have been given to anyone else. Asked with
/// `waitid(WNOWAIT)`, which reaps nothing; std's `try_wait` may have reaped it already.
fn unreaped(child: &Child) -> bool {
    let pid: libc::id_t = child.id();
    // SAFETY: waitid writes only into `info`, a zeroed siginfo_t we own; WNOWAIT leaves
    // the child waitable, WNOHANG keeps it from blocking.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_PID,
            pid,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        ) == 0
    }
}

/// SIGKILLs the process group `child` leads (it was spawned with `process_group(0)`, so
/// the group ID is its PID), then reaps it. The group is signalled only while `child`
/// is unreaped, so the ID still names the group this test created, even when the child
/// itself has exited and left members behind; never a group by any other ID.
fn kill_own_group(child: &mut Child) {
    if unreaped(child)
        && let Ok(pgid) = libc::pid_t::try_from(child.id())
    {
        // SAFETY: killpg(2) on the group our unreaped child leads; no memory involved.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `sleep 300` as an unrelated live process.
pub fn spawn_sleep() -> ChildGuard {
    ChildGuard::spawn(
        Command::new("sleep")
            .arg("300")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

// ---------------------------------------------------------------------------------------
// Running the watchdog
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
pub struct RunResult {
    /// `None` when killed by a signal (including the harness timeout).
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub timed_out: bool,
}

impl RunResult {
    /// A description for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "exit status {:?}{} after {:.1?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            if self.timed_out {
                " (KILLED: harness timeout)"
            } else {
                ""
            },
            self.elapsed,
            self.stdout,
            self.stderr
        )
    }
}

/// A watchdog (or other) process running in the background, in a process group of its
/// own; the group is killed at the timeout of [`Running::wait`] and on drop (see
/// [`kill_own_group`]).
pub struct Running {
    child: Option<Child>,
    started: Instant,
    out: Option<JoinHandle<String>>,
    err: Option<JoinHandle<String>>,
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Running {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let (out, err) = read_output(&mut child);
        Running {
            child: Some(child),
            started,
            out: Some(out),
            err: Some(err),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().unwrap().try_wait(), Ok(None))
    }

    /// Waits up to `timeout`, then kills its process group; collects its output.
    pub fn wait(mut self, timeout: Duration) -> RunResult {
        let mut child = self.child.take().unwrap();
        let mut timed_out = false;
        let status = loop {
            if let Some(s) = child.try_wait().expect("try_wait") {
                break s;
            }
            if self.started.elapsed() > timeout {
                timed_out = true;
                kill_own_group(&mut child);
                break child.wait().expect("wait");
            }
            thread::sleep(Duration::from_millis(20));
        };
        let elapsed = self.started.elapsed();
        // A grandchild that inherited the pipes could keep them open: don't wait forever.
        let stdout = join_bounded(self.out.take().unwrap());
        let stderr = join_bounded(self.err.take().unwrap());
        RunResult {
            status: status.code(),
            stdout,
            stderr,
            elapsed,
            timed_out,
        }
    }
}

/// Threads that read the piped stdout and stderr of `child` to their end; collect them
/// with [`join_bounded`].
pub fn read_output(child: &mut Child) -> (JoinHandle<String>, JoinHandle<String>) {
    let mut so = child.stdout.take().expect("piped stdout");
    let mut se = child.stderr.take().expect("piped stderr");
    let out = thread::spawn(move || {
        let mut b = Vec::new();
        let _ = so.read_to_end(&mut b);
        String::from_utf8_lossy(&b).into_owned()
    });
    let err = thread::spawn(move || {
        let mut b = Vec::new();
        let _ = se.read_to_end(&mut b);
        String::from_utf8_lossy(&b).into_owned()
    });
    (out, err)
}

/// What a [`read_output`] thread read, waiting at most 5 s: a grandchild that inherited
/// the pipes could keep them open.
pub fn join_bounded(h: JoinHandle<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !h.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    if h.is_finished() {
        h.join().unwrap_or_default()
    } else {
        "<output pipe still held open by another process>".into()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_own_group(&mut c);
        }
    }
}

/// Runs `cmd` to completion, killing its process group after `timeout`.
pub fn run_with_timeout(cmd: Command, timeout: Duration) -> RunResult {
    Running::spawn(cmd).wait(timeout)
}

/// The binary under test: `$WATCHDOG_TEST_BIN` when set (e.g. a release build), else the
/// one cargo built for this test run.
pub fn watchdog_bin() -> PathBuf {
    match std::env::var_os("WATCHDOG_TEST_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_watchdog")),
    }
}

/// The watchdog command for `env`: HOME, XDG_CONFIG_HOME and XDG_STATE_HOME inside the
/// temp dir, WATCHDOG_CONFIG unset, `args` followed by `--config env.config_path`.
pub fn watchdog_cmd(env: &TestEnv, args: &[&str]) -> Command {
    let mut cmd = Command::new(watchdog_bin());
    cmd.args(args);
    in_env(cmd, env)
}

/// `--config env.config_path`, and [`in_test_home`].
fn in_env(mut cmd: Command, env: &TestEnv) -> Command {
    cmd.arg("--config").arg(&env.config_path);
    in_test_home(cmd, env)
}

/// The temp dir as the working directory, the temp HOME and XDG dirs, no
/// WATCHDOG_CONFIG: where every watchdog run of a test lives.
pub fn in_test_home(mut cmd: Command, env: &TestEnv) -> Command {
    cmd.current_dir(&env.root)
        .env("HOME", &env.home)
        .env("XDG_CONFIG_HOME", env.home.join(".config"))
        .env("XDG_STATE_HOME", env.home.join(".local/state"))
        .env_remove("WATCHDOG_CONFIG");
    cmd
}

/// Runs the watchdog (see [`watchdog_cmd`]) with the harness timeout.
pub fn run_watchdog(env: &TestEnv, args: &[&str]) -> RunResult {
    run_with_timeout(watchdog_cmd(env, args), WATCHDOG_TIMEOUT)
}

/// Starts the watchdog in the background (see [`watchdog_cmd`]).
pub fn spawn_watchdog(env: &TestEnv, args: &[&str]) -> Running {
    Running::spawn(watchdog_cmd(env, args))
}

/// Asserts the exit status, showing the run and the log when it differs.
#[track_caller]
pub fn assert_exit(env: &TestEnv, r: &RunResult, code: i32) {
    assert_eq!(
        r.status,
        Some(code),
        "expected exit {code}\n{}\n--- log ---\n{}",
        r.dump(),
        log_text(env)
    );
}

/// Parses stdout of a `--json` run: exactly one JSON document and nothing else.
pub fn report(r: &RunResult) -> Value {
    serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not exactly one JSON document ({e})\n{}",
            r.dump()
        )
    })
}

/// The reason codes of a report (`reasons[].code`).
pub fn reason_codes(report: &Value) -> Vec<String> {
    report["reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["code"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// The log
// ---------------------------------------------------------------------------------------

/// Every event in the JSON-lines log (empty when there is no log file). Panics on a line
/// that is not a JSON object.
pub fn log_events(env: &TestEnv) -> Vec<Value> {
    let text = match fs::read_to_string(&env.log_file) {
        Ok(t) => t,
        Err(_) => return Vec::new(),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"));
            assert!(v.is_object(), "log line is not an object: {l}");
            v
        })
        .collect()
}

/// The events named `name`.
pub fn events_named(env: &TestEnv, name: &str) -> Vec<Value> {
    log_events(env)
        .into_iter()
        .filter(|e| e["event"] == name)
        .collect()
}

/// The log as text, for assertion messages.
pub fn log_text(env: &TestEnv) -> String {
    fs::read_to_string(&env.log_file).unwrap_or_else(|_| "<no log file>".into())
}

// ---------------------------------------------------------------------------------------
// Process facts on any Unix: ps(1) and lsof(8)
// ---------------------------------------------------------------------------------------
//
// The same commands and options on Linux (procps-ng, lsof) and macOS (BSD ps, Apple's
// lsof), so a test that asks them runs unchanged on both; the Linux harness below reads
// /proc instead, and on other systems its core (`proc_state`, `cmdline`, `listener_pid`,
// `fd_count`, `count_fds_matching`, `parent_pid`) is answered from here.

/// One `ps` keyword of `pid` (`ps -ww -o KEY= -p PID`), trimmed; `None` when there is no
/// such process. `-ww`: BSD ps cuts lines at 79 columns when stdout is not a terminal.
pub fn ps_field(pid: u32, keyword: &str) -> Option<String> {
    let out = Command::new("ps")
        .args(["-ww", "-o", &format!("{keyword}="), "-p", &pid.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("run ps");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The state letter `ps` shows for `pid` (R, S, D, T, Z, and on macOS also I, U).
pub fn ps_state(pid: u32) -> Option<char> {
    ps_field(pid, "stat")?.chars().next()
}

/// Alive by `ps`: exists and is not a zombie.
pub fn ps_alive(pid: u32) -> bool {
    matches!(ps_state(pid), Some(s) if s != 'Z')
}

/// The command line `ps` shows for `pid` (arguments joined by spaces), empty if gone.
pub fn ps_args(pid: u32) -> String {
    ps_field(pid, "args").unwrap_or_default()
}

/// The parent PID `ps` shows for `pid`.
pub fn ps_ppid(pid: u32) -> Option<u32> {
    ps_field(pid, "ppid")?.parse().ok()
}

/// The PIDs with a TCP socket LISTENing on `port` (`lsof -t`), sorted. As root, every
/// user's; otherwise this user's.
pub fn lsof_listeners(port: u16) -> Vec<u32> {
    let mut cmd = Command::new(require_lsof());
    cmd.args(["-nP", "-t", &format!("-iTCP:{port}"), "-sTCP:LISTEN"]);
    let r = run_with_timeout(cmd, Duration::from_secs(60));
    // lsof exits 1 when it finds nothing.
    assert!(
        !r.timed_out && matches!(r.status, Some(0) | Some(1)),
        "lsof -iTCP:{port} failed\n{}",
        r.dump()
    );
    let mut pids: Vec<u32> = r
        .stdout
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// The number of open FDs of `pid` as `lsof` counts them (numeric FDs only).
pub fn lsof_fd_count(pid: u32) -> usize {
    lsof_fds(pid).len()
}

/// [`proc_state`] where there is no /proc: from `ps`.
#[cfg(not(target_os = "linux"))]
pub fn proc_state(pid: u32) -> Option<char> {
    ps_state(pid)
}

/// [`cmdline`] where there is no /proc: from `ps`.
#[cfg(not(target_os = "linux"))]
pub fn cmdline(pid: u32) -> String {
    ps_args(pid)
}

/// [`fd_count`] where there is no /proc: from `lsof`.
#[cfg(not(target_os = "linux"))]
pub fn fd_count(pid: u32) -> usize {
    lsof_fd_count(pid)
}

/// [`count_fds_matching`] where there is no /proc: the FDs whose name `lsof` shows
/// contains `pattern` (for a file, its path).
#[cfg(not(target_os = "linux"))]
pub fn count_fds_matching(pid: u32, pattern: &str) -> usize {
    lsof_fds(pid)
        .iter()
        .filter(|f| f.name.contains(pattern))
        .count()
}

/// [`parent_pid`] where there is no /proc: from `ps`.
#[cfg(not(target_os = "linux"))]
pub fn parent_pid(pid: u32) -> Option<u32> {
    ps_ppid(pid)
}

/// [`listener_pid`] where there is no /proc: the one holder `lsof` names (`None` when
/// there is none or several).
#[cfg(not(target_os = "linux"))]
pub fn listener_pid(port: u16) -> Option<u32> {
    match lsof_listeners(port)[..] {
        [pid] => Some(pid),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------------------

/// The number of open FDs of `pid`.
#[cfg(target_os = "linux")]
pub fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/fd: {e}"))
        .count()
}

/// The FD link targets of `pid`.
#[cfg(target_os = "linux")]
pub fn fd_targets(pid: u32) -> Vec<String> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/fd: {e}"))
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

/// The number of FDs of `pid` whose link target contains `pattern`.
#[cfg(target_os = "linux")]
pub fn count_fds_matching(pid: u32, pattern: &str) -> usize {
    fd_targets(pid)
        .iter()
        .filter(|t| t.contains(pattern))
        .count()
}

/// The state letter of `/proc/PID/stat` (R, S, D, T, t, Z, X, ...).
#[cfg(target_os = "linux")]
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: the state follows the last ')'.
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Alive: exists and is neither a zombie nor dead.
pub fn is_alive(pid: u32) -> bool {
    matches!(proc_state(pid), Some(s) if s != 'Z' && s != 'X' && s != 'x')
}

/// Stopped by a signal (or traced).
pub fn is_stopped(pid: u32) -> bool {
    matches!(proc_state(pid), Some('T') | Some('t'))
}

/// The command line of `pid`, arguments joined by spaces (see [`cmdline_args`]).
#[cfg(target_os = "linux")]
pub fn cmdline(pid: u32) -> String {
    cmdline_args(pid).join(" ")
}

/// True when `pid` is alive and its command line names `testserver.py`.
pub fn is_testserver(pid: u32) -> bool {
    is_alive(pid) && cmdline(pid).contains("testserver.py")
}

/// True when `pid` is a live test server of the env whose PID log is `pid_log`: its
/// command line names `testserver.py` and that PID log, as every server of an env is
/// started with `--pid-log` (see [`testserver_command`], [`testserver_argv`]).
pub fn is_testserver_of(pid_log: &Path, pid: u32) -> bool {
    let line = cmdline(pid);
    is_alive(pid) && line.contains("testserver.py") && line.contains(&*pid_log.to_string_lossy())
}

/// Sends `sig` to `pid` only if it is a live test server of the env whose PID log is
/// `pid_log` (never to a reused PID, nor to another test's server that reused it).
/// Returns whether the signal was sent.
pub fn kill_if_testserver(pid_log: &Path, pid: u32, sig: i32) -> bool {
    if pid <= 1 || !is_testserver_of(pid_log, pid) {
        return false;
    }
    // SAFETY: kill(2) with a positive PID we just identified; no memory is involved.
    unsafe { libc::kill(pid as libc::pid_t, sig) == 0 }
}

/// Signals pending for `pid` (SigPnd | ShdPnd of /proc/PID/status).
#[cfg(target_os = "linux")]
pub fn pending_signals(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .filter(|l| l.starts_with("SigPnd:") || l.starts_with("ShdPnd:"))
        .filter_map(|l| u64::from_str_radix(l.split(':').nth(1)?.trim(), 16).ok())
        .fold(0, |a, b| a | b)
}

/// The PID of the process LISTENing on 127.0.0.1:`port` (this user's processes only).
#[cfg(target_os = "linux")]
pub fn listener_pid(port: u16) -> Option<u32> {
    let inode = listening_inode(port)?;
    let needle = format!("socket:[{inode}]");
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == needle) {
                return Some(pid);
            }
        }
    }
    None
}

#[cfg(target_os = "linux")]
fn listening_inode(port: u16) -> Option<u64> {
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 || cols[3] != "0A" {
                continue;
            }
            let local_port = cols[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) {
                return cols[9].parse().ok();
            }
        }
    }
    None
}

/// True when some process holds a lock on `path` (from /proc/locks; the `flock` of
/// docs/DESIGN.md, "State between runs", but POSIX and OFD locks count too: tests use
/// this to synchronise, not to judge).
#[cfg(target_os = "linux")]
pub fn is_locked(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::metadata(path) else {
        return false;
    };
    let needle = format!(":{}", meta.ino());
    fs::read_to_string("/proc/locks")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            ["FLOCK", "POSIX", "OFDLCK"].iter().any(|k| l.contains(k))
                && l.split_whitespace()
                    .nth(5)
                    .is_some_and(|dev_ino| dev_ino.ends_with(&needle))
        })
}

// ---------------------------------------------------------------------------------------
// Misc
// ---------------------------------------------------------------------------------------

/// Polls `cond` every 50 ms until it holds or `timeout` passes; returns the last value.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// A port nothing listens on (bound, read and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local address")
        .port()
}

/// An HTTP response read by [`http_get`].
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
    /// The body was cut at [`HTTP_BODY_CAP`].
    pub truncated: bool,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
}

/// Bodies are read up to this many bytes.
pub const HTTP_BODY_CAP: usize = 2 * 1024 * 1024;

/// A minimal HTTP/1.1 GET of `http://127.0.0.1:PORT/path`, bounded by `timeout` as a
/// whole (connect, headers and body), no proxy. Errors are strings such as
/// "timed out", "connection reset: ...", "connection refused: ...".
pub fn http_get(url: &str, timeout: Duration) -> Result<HttpResponse, String> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr: SocketAddr = hostport.parse().map_err(|e| format!("bad address: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| describe_io("connect", &e))?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n");
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(req.as_bytes())
        .map_err(|e| describe_io("write", &e))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let mut header_end: Option<usize> = None;
    let mut content_length: Option<usize> = None;
    loop {
        if let Some(h) = header_end {
            let body_len = buf.len() - h;
            if content_length.is_some_and(|n| body_len >= n) || body_len >= HTTP_BODY_CAP {
                break;
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err("timed out".into());
        }
        stream
            .set_read_timeout(Some(deadline - now))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err("timed out".into());
            }
            Err(e) => return Err(describe_io("read", &e)),
        }
        if header_end.is_none()
            && let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n")
        {
            header_end = Some(i + 4);
            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
            content_length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok());
        }
    }
    let h = header_end.ok_or_else(|| {
        format!(
            "connection closed before the headers ended ({} bytes)",
            buf.len()
        )
    })?;
    let status_line = String::from_utf8_lossy(&buf[..h])
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut body = buf[h..].to_vec();
    let truncated = body.len() >= HTTP_BODY_CAP;
    body.truncate(HTTP_BODY_CAP);
    if let Some(n) = content_length
        && body.len() < n
        && !truncated
    {
        return Err(format!("body cut short: {} of {n} bytes", body.len()));
    }
    Ok(HttpResponse {
        status,
        body,
        truncated,
    })
}

fn describe_io(what: &str, e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionReset => format!("connection reset: {what}: {e}"),
        ConnectionRefused => format!("connection refused: {e}"),
        WouldBlock | TimedOut => "timed out".into(),
        _ => format!("{what}: {e}"),
    }
}

/// GET /health with a 5 s timeout: true when it answers 200 with `"status": "ok"`.
pub fn healthy(url: &str) -> bool {
    http_get(url, Duration::from_secs(5))
        .is_ok_and(|r| r.status == 200 && r.text().contains("\"status\": \"ok\""))
}

// ---------------------------------------------------------------------------------------
// Test server: busy counters, sessions, the FD mix
// ---------------------------------------------------------------------------------------

/// Sets `active_runs` and `active_streams` in the server's /health JSON (in memory).
pub fn set_busy(base: &str, runs: u64, streams: u64) {
    control(
        base,
        &format!("/control/busy?runs={runs}&streams={streams}"),
    );
}

/// Sets `sessions` in the server's /health JSON (in memory).
pub fn set_sessions(base: &str, n: u64) {
    control(base, &format!("/control/sessions?n={n}"));
}

/// The /health JSON of the server at `base` (any status), for preconditions.
pub fn health_doc(base: &str) -> Value {
    http_get(&format!("{base}/health"), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("GET {base}/health: {e}"))
        .json()
}

/// Opens the test server's known FD mix (`/control/mix`) and returns its description:
/// `tcp.{listen,client,accepted}.{fd,local,remote}`, `tcp6.listen` (or null), `udp`,
/// `unix` [a, b], `pipe` [r, w], `fifo`, `dir`, `deleted` ({fd, path}), `eventfd`,
/// `epoll`, `inotify` (or null).
pub fn open_mix(server: &TestServer) -> Value {
    let text = server.control("/control/mix");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("/control/mix is not JSON ({e}): {text}"))
}

// ---------------------------------------------------------------------------------------
// The FD census computed from /proc by the test itself (the oracle)
// ---------------------------------------------------------------------------------------

/// One TCP socket of a process, from `/proc/PID/net/tcp{,6}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TcpSock {
    pub fd: i32,
    /// "tcp" or "tcp6".
    pub proto: String,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// "LISTEN", "ESTABLISHED", ... (netstat's names).
    pub state: String,
}

/// One open FD as the test classifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcFd {
    pub fd: i32,
    /// The readlink of /proc/PID/fd/N.
    pub target: String,
    /// The census kind: file, directory, fifo, device, tcp, tcp6, udp, udp6, unix,
    /// netlink, socket, pipe, eventfd, inotify, epoll, timerfd, signalfd, anon, other.
    pub kind: String,
}

/// One SQLite database and its companion files among the open FDs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SqliteFamily {
    pub database: String,
    pub db: u64,
    pub wal: u64,
    pub shm: u64,
    pub journal: u64,
}

impl SqliteFamily {
    pub fn total(&self) -> u64 {
        self.db + self.wal + self.shm + self.journal
    }
}

/// A process's FDs read and classified from /proc: readlink of every FD, `stat` through
/// the FD for path FDs, socket inodes looked up in `/proc/PID/net/*`.
#[derive(Debug, Clone)]
pub struct ProcCensus {
    pub pid: u32,
    /// Sorted by FD number.
    pub fds: Vec<ProcFd>,
    pub tcp: Vec<TcpSock>,
}

const TCP_STATES: [&str; 12] = [
    "", // 0 is not a state
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
];

/// "0100007F:1F90" (or the 32-hex-digit IPv6 form) → a socket address.
fn parse_proc_addr(s: &str) -> SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let (addr, port) = s
        .split_once(':')
        .unwrap_or_else(|| panic!("bad address {s}"));
    let port = u16::from_str_radix(port, 16).unwrap_or_else(|_| panic!("bad port in {s}"));
    // The kernel prints each 32-bit word of the (network-order) address as a host integer.
    let mut bytes = Vec::new();
    for i in (0..addr.len()).step_by(8) {
        let word =
            u32::from_str_radix(&addr[i..i + 8], 16).unwrap_or_else(|_| panic!("bad address {s}"));
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        16 => IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(bytes.as_slice()).unwrap(),
        )),
        _ => panic!("bad address {s}"),
    };
    SocketAddr::new(ip, port)
}

/// Socket inode → (kind, TCP endpoints and state) from the process's network namespace.
#[cfg(target_os = "linux")]
fn socket_table(pid: u32) -> std::collections::HashMap<u64, (String, Option<TcpSock>)> {
    let mut map = std::collections::HashMap::new();
    for (table, kind) in [
        ("tcp", "tcp"),
        ("tcp6", "tcp6"),
        ("udp", "udp"),
        ("udp6", "udp6"),
    ] {
        let text = fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 {
                continue;
            }
            let Ok(inode) = cols[9].parse::<u64>() else {
                continue;
            };
            if inode == 0 {
                continue; // TIME_WAIT and the like: no socket behind it
            }
            let tcp = kind.starts_with("tcp").then(|| {
                let st = usize::from_str_radix(cols[3], 16).unwrap_or(0);
                TcpSock {
                    fd: -1,
                    proto: kind.to_string(),
                    local: parse_proc_addr(cols[1]),
                    remote: parse_proc_addr(cols[2]),
                    state: TCP_STATES.get(st).copied().unwrap_or("UNKNOWN").to_string(),
                }
            });
            map.insert(inode, (kind.to_string(), tcp));
        }
    }
    // unix: "Num RefCount Protocol Flags Type St Inode Path"
    let text = fs::read_to_string(format!("/proc/{pid}/net/unix")).unwrap_or_default();
    for line in text.lines().skip(1) {
        if let Some(inode) = line
            .split_whitespace()
            .nth(6)
            .and_then(|i| i.parse::<u64>().ok())
        {
            map.insert(inode, ("unix".to_string(), None));
        }
    }
    // netlink: "sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode"
    let text = fs::read_to_string(format!("/proc/{pid}/net/netlink")).unwrap_or_default();
    for line in text.lines().skip(1) {
        if let Some(inode) = line
            .split_whitespace()
            .nth(9)
            .and_then(|i| i.parse::<u64>().ok())
        {
            map.insert(inode, ("netlink".to_string(), None));
        }
    }
    map
}

#[cfg(target_os = "linux")]
impl ProcCensus {
    /// Reads `pid`'s FDs now. FDs that vanish while being read are skipped.
    pub fn read(pid: u32) -> ProcCensus {
        use std::os::unix::fs::FileTypeExt;
        let sockets = socket_table(pid);
        let mut fds = Vec::new();
        let mut tcp = Vec::new();
        let dir = format!("/proc/{pid}/fd");
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {dir}: {e}")) {
            let Ok(entry) = entry else { continue };
            let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(target) = fs::read_link(entry.path()) else {
                continue;
            };
            let target = target.to_string_lossy().into_owned();
            let kind = if target.starts_with('/') {
                // stat through the FD: works for deleted files too.
                match fs::metadata(entry.path()) {
                    Ok(m) => {
                        let t = m.file_type();
                        if t.is_dir() {
                            "directory"
                        } else if t.is_fifo() {
                            "fifo"
                        } else if t.is_char_device() || t.is_block_device() {
                            "device"
                        } else {
                            "file"
                        }
                    }
                    Err(_) => continue,
                }
                .to_string()
            } else if let Some(ino) = target
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
            {
                let ino: u64 = ino.parse().unwrap_or_else(|_| panic!("bad {target}"));
                match sockets.get(&ino) {
                    Some((kind, t)) => {
                        if let Some(t) = t {
                            tcp.push(TcpSock { fd, ..t.clone() });
                        }
                        kind.clone()
                    }
                    None => "socket".to_string(),
                }
            } else if target.starts_with("pipe:") {
                "pipe".to_string()
            } else if let Some(anon) = target.strip_prefix("anon_inode:") {
                let name = anon.trim_start_matches('[').trim_end_matches(']');
                let name = name.split(':').next().unwrap_or(name);
                match name {
                    "eventfd" => "eventfd",
                    "eventpoll" => "epoll",
                    "inotify" => "inotify",
                    "timerfd" => "timerfd",
                    "signalfd" => "signalfd",
                    _ => "anon",
                }
                .to_string()
            } else {
                "other".to_string()
            };
            fds.push(ProcFd { fd, target, kind });
        }
        fds.sort_by_key(|f| f.fd);
        tcp.sort();
        ProcCensus { pid, fds, tcp }
    }

    pub fn total(&self) -> u64 {
        self.fds.len() as u64
    }

    /// (fd, target) pairs: two readings with equal lists saw the same table.
    pub fn table(&self) -> Vec<(i32, String)> {
        self.fds.iter().map(|f| (f.fd, f.target.clone())).collect()
    }

    /// Census kind → count (non-zero only).
    pub fn kinds(&self) -> std::collections::BTreeMap<String, u64> {
        let mut m = std::collections::BTreeMap::new();
        for f in &self.fds {
            *m.entry(f.kind.clone()).or_default() += 1;
        }
        m
    }

    /// The coarse report counts: file (every path FD), socket, pipe, other.
    pub fn by_kind(&self) -> std::collections::BTreeMap<String, u64> {
        let mut m: std::collections::BTreeMap<String, u64> = ["file", "socket", "pipe", "other"]
            .iter()
            .map(|k| (k.to_string(), 0))
            .collect();
        for f in &self.fds {
            let k = if f.target.starts_with('/') {
                "file"
            } else if f.target.starts_with("socket:") {
                "socket"
            } else if f.target.starts_with("pipe:") {
                "pipe"
            } else {
                "other"
            };
            *m.get_mut(k).unwrap() += 1;
        }
        m
    }

    /// Every path FD target → count (deleted files keep " (deleted)").
    pub fn paths(&self) -> std::collections::BTreeMap<String, u64> {
        let mut m = std::collections::BTreeMap::new();
        for f in self.fds.iter().filter(|f| f.target.starts_with('/')) {
            *m.entry(f.target.clone()).or_default() += 1;
        }
        m
    }

    /// FDs of deleted files.
    pub fn deleted(&self) -> u64 {
        self.fds
            .iter()
            .filter(|f| f.target.starts_with('/') && f.target.ends_with(" (deleted)"))
            .count() as u64
    }

    /// SQLite databases among the open FDs: a path with an open `-wal`, `-shm` or
    /// `-journal` companion, or an open file starting with the SQLite header.
    pub fn sqlite_families(&self) -> Vec<SqliteFamily> {
        let paths = self.paths();
        let mut bases = std::collections::BTreeSet::new();
        // Regular files only: reading a FIFO would block.
        for f in self.fds.iter().filter(|f| f.kind == "file") {
            let p = &f.target;
            if p.ends_with(" (deleted)") {
                continue;
            }
            for suffix in ["-wal", "-shm", "-journal"] {
                if let Some(base) = p.strip_suffix(suffix) {
                    bases.insert(base.to_string());
                }
            }
            let mut head = [0u8; 16];
            if fs::File::open(p)
                .and_then(|mut f| f.read_exact(&mut head))
                .is_ok()
                && &head == b"SQLite format 3\0"
            {
                bases.insert(p.clone());
            }
        }
        let count = |p: String| paths.get(&p).copied().unwrap_or(0);
        bases
            .into_iter()
            .map(|b| SqliteFamily {
                db: count(b.clone()),
                wal: count(format!("{b}-wal")),
                shm: count(format!("{b}-shm")),
                journal: count(format!("{b}-journal")),
                database: b,
            })
            .collect()
    }
}

/// Runs `f` between two readings of `pid`'s FD table and returns the reading and `f`'s
/// result once both readings agree (the test server closes a control request's socket
/// just after answering, so a reading can race it). Panics after 20 tries.
#[cfg(target_os = "linux")]
pub fn with_stable_fds<T>(pid: u32, mut f: impl FnMut() -> T) -> (ProcCensus, T) {
    let mut last = String::new();
    for _ in 0..20 {
        let before = ProcCensus::read(pid);
        let out = f();
        let after = ProcCensus::read(pid);
        if before.table() == after.table() && before.tcp == after.tcp {
            return (after, out);
        }
        last = format!("before: {:?}\nafter: {:?}", before.table(), after.table());
        thread::sleep(Duration::from_millis(200));
    }
    panic!("the FD table of PID {pid} never held still across a reading:\n{last}");
}

// ---------------------------------------------------------------------------------------
// lsof
// ---------------------------------------------------------------------------------------

/// One numeric-FD line of `lsof -F`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsofFd {
    pub fd: i32,
    /// TYPE: REG, DIR, FIFO, CHR, IPv4, IPv6, unix, a_inode, sock, netlink, ...
    pub ftype: String,
    /// Protocol for sockets (TCP, UDP, ...), else empty.
    pub proto: String,
    pub name: String,
}

impl LsofFd {
    /// The census kind this lsof line stands for.
    pub fn kind(&self) -> &'static str {
        match self.ftype.as_str() {
            "REG" => "file",
            "DIR" => "directory",
            "CHR" | "BLK" => "device",
            "FIFO" if self.name == "pipe" => "pipe",
            "FIFO" => "fifo",
            "IPv4" | "IPv6" => {
                let v6 = self.ftype == "IPv6";
                match (self.proto.as_str(), v6) {
                    ("TCP", false) => "tcp",
                    ("TCP", true) => "tcp6",
                    ("UDP", false) => "udp",
                    ("UDP", true) => "udp6",
                    _ => "socket",
                }
            }
            "unix" => "unix",
            "netlink" => "netlink",
            "sock" if self.name.contains("NETLINK") => "netlink",
            "sock" => "socket",
            "a_inode" => {
                let n = self.name.trim_start_matches('[');
                let n = n.split([':', ']']).next().unwrap_or("");
                match n {
                    "eventfd" => "eventfd",
                    "eventpoll" => "epoll",
                    "inotify" => "inotify",
                    "timerfd" => "timerfd",
                    "signalfd" => "signalfd",
                    _ => "anon",
                }
            }
            _ => "other",
        }
    }
}

/// The path of `lsof`; the test FAILS (never skips) when it is missing.
pub fn require_lsof() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
            .map(|d| d.join("lsof"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("lsof is not installed; this test compares against it: apt-get install lsof")
    })
}

/// `lsof -n -P -p PID -F ftPn`, numeric FDs only (cwd, txt, mem, ... are left out).
pub fn lsof_fds(pid: u32) -> Vec<LsofFd> {
    let mut cmd = Command::new(require_lsof());
    cmd.args(["-n", "-P", "-w", "-p", &pid.to_string(), "-F", "ftPn"]);
    let r = run_with_timeout(cmd, Duration::from_secs(60));
    assert!(
        r.status == Some(0) && !r.timed_out,
        "lsof -p {pid} failed\n{}",
        r.dump()
    );
    let mut out = Vec::new();
    let mut cur: Option<LsofFd> = None;
    for line in r.stdout.lines() {
        let (tag, value) = match line.chars().next() {
            Some(c) => (c, &line[c.len_utf8()..]),
            None => continue,
        };
        match tag {
            'f' => {
                if let Some(done) = cur.take() {
                    out.push(done);
                }
                if let Ok(fd) = value.parse::<i32>() {
                    cur = Some(LsofFd {
                        fd,
                        ftype: String::new(),
                        proto: String::new(),
                        name: String::new(),
                    });
                }
            }
            't' => {
                if let Some(c) = cur.as_mut() {
                    c.ftype = value.to_string();
                }
            }
            'P' => {
                if let Some(c) = cur.as_mut() {
                    c.proto = value.to_string();
                }
            }
            'n' => {
                if let Some(c) = cur.as_mut() {
                    c.name = value.to_string();
                }
            }
            'p' => {
                if let Some(done) = cur.take() {
                    out.push(done);
                }
            }
            _ => {}
        }
    }
    if let Some(done) = cur.take() {
        out.push(done);
    }
    out.sort_by_key(|f| f.fd);
    out
}

// ---------------------------------------------------------------------------------------
// history.json
// ---------------------------------------------------------------------------------------

pub fn history_path(env: &TestEnv) -> PathBuf {
    env.state_dir.join("history.json")
}

/// The watchdog's history file as JSON; panics when it is missing or not JSON.
pub fn read_history(env: &TestEnv) -> Value {
    let path = history_path(env);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {text}", path.display()))
}

/// Replaces the history file atomically (no watchdog may be running).
pub fn write_history(env: &TestEnv, doc: &Value) {
    let path = history_path(env);
    let tmp = env.state_dir.join(".history.test.tmp");
    fs::write(&tmp, serde_json::to_string_pretty(doc).unwrap()).expect("write history");
    fs::rename(&tmp, &path).expect("replace history");
}

/// The `samples` array of the history (empty when absent).
pub fn history_samples(env: &TestEnv) -> Vec<Value> {
    read_history(env)["samples"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Moves every FD sample `secs` seconds into the past, keeping everything else intact.
pub fn shift_samples(env: &TestEnv, secs: u64) {
    let mut doc = read_history(env);
    let shown = doc.to_string();
    let samples = doc["samples"]
        .as_array_mut()
        .unwrap_or_else(|| panic!("history has no samples array: {shown}"));
    for s in samples.iter_mut() {
        let at = s["at"]
            .as_u64()
            .unwrap_or_else(|| panic!("sample without at: {s}"));
        s["at"] = Value::from(at - secs);
    }
    write_history(env, &doc);
}

/// Seconds since the epoch now.
pub fn epoch_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------------------------------
// Running the watchdog as another user
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Servers that a supervisor runs
// ---------------------------------------------------------------------------------------

/// The test server's command line for a supervisor to run in `env`: the real interpreter,
/// `testserver.py`, `--port-file`, `--pid-log`, `--db` and `--mode-file` (no pidfile:
/// respawned copies that lose the race for the port would overwrite it). Every copy logs
/// its PID, so [`TestEnv`]'s drop ends the ones the supervisor respawned.
pub fn testserver_argv(env: &TestEnv) -> Vec<String> {
    let path = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    vec![
        python().to_string(),
        path(&testserver_script()),
        "--port-file".into(),
        path(&env.port_file),
        "--pid-log".into(),
        path(&env.pid_log),
        "--db".into(),
        path(&env.db_dir),
        "--mode-file".into(),
        path(&env.mode_file),
    ]
}

/// [`testserver_argv`] for a server that fails at start-up while the returned flag file
/// exists (`--fail-if-exists`); the flag is not created.
pub fn testserver_argv_failing_if_flag(env: &TestEnv) -> (Vec<String>, PathBuf) {
    let flag = env.root.join("fail-at-start");
    let mut argv = testserver_argv(env);
    argv.extend(["--fail-if-exists".into(), flag.display().to_string()]);
    (argv, flag)
}

/// Waits (bounded) until a test server of `env` listens on the port in `env.port_file`
/// and answers; returns its PID and the port. `not` excludes a PID (the old server
/// while waiting for a new one).
pub fn wait_for_server(env: &TestEnv, timeout: Duration, not: Option<u32>) -> (u32, u16) {
    let mut found = None;
    let up = wait_until(timeout, || {
        let Some(port) = read_port(&env.port_file) else {
            return false;
        };
        let Some(pid) = listener_pid(port).filter(|&p| Some(p) != not) else {
            return false;
        };
        let answers = http_get(
            &format!("http://127.0.0.1:{port}/control/fds"),
            Duration::from_secs(2),
        )
        .is_ok_and(|r| r.status == 200);
        if answers && is_testserver(pid) {
            found = Some((pid, port));
        }
        found.is_some()
    });
    assert!(
        up,
        "no test server (other than {not:?}) came up within {timeout:?}; port file: {:?}, \
         logged PIDs: {:?}",
        fs::read_to_string(&env.port_file).ok(),
        env.logged_pids()
    );
    found.unwrap()
}

/// The environment of `pid` (`/proc/PID/environ`) as `KEY=VALUE` strings.
#[cfg(target_os = "linux")]
pub fn environ(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_default()
        .split(|&c| c == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// The parent PID of `pid` (field 4 of `/proc/PID/stat`).
#[cfg(target_os = "linux")]
pub fn parent_pid(pid: u32) -> Option<u32> {
    stat_field(pid, 4)
}

/// Field `n` (counted from 1, as in proc(5)) of `/proc/PID/stat`, read after the command
/// name, which may hold spaces and parentheses.
#[cfg(target_os = "linux")]
pub fn stat_field<T: std::str::FromStr>(pid: u32, n: usize) -> Option<T> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(n.checked_sub(3)?)?
        .parse()
        .ok()
}

/// A daemon-like child (supervisord, runsv) stopped the way its operator would stop it:
/// SIGTERM, a bounded wait for it to stop its own children and exit, then SIGKILL; always
/// reaped. Only this PID is signalled.
pub struct GracefulChild {
    child: Option<Child>,
    /// How long to wait after SIGTERM before SIGKILL.
    pub grace: Duration,
}

impl GracefulChild {
    pub fn spawn(cmd: &mut Command, grace: Duration) -> GracefulChild {
        GracefulChild {
            child: Some(
                cmd.spawn()
                    .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program())),
            ),
            grace,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child").id()
    }

    /// The exit status if it has exited (and reaps it).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok()?
    }

    /// SIGTERM, wait up to `grace`, SIGKILL; reaps it. Returns whether SIGTERM sufficed.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        // SAFETY: kill(2) on our own unreaped child: the PID cannot have been reused.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for GracefulChild {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The first executable named `name` on PATH or in `extra` directories.
pub fn find_executable(name: &str, extra: &[&str]) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Writes an executable shell script.
pub fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod script");
}

/// `text` quoted for /bin/sh (and for supervisord's shlex-split `command`).
pub fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// SIGKILLs every live process (other than this one) whose command line contains `root`
/// (a test's unique temp dir) and one of `names` (e.g. "testserver.py"): what a
/// supervisor started for this test and may have left behind, found by what it was
/// given, never by a broad name. Returns how many were signalled.
#[cfg(target_os = "linux")]
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

// ---------------------------------------------------------------------------------------
// What a run did: the log's shape, nothing done, a server left alone, a builtin restart.

/// Every log event has the fields of docs/REPORT.md, "Log events"; `ts` is RFC 3339, ms.
#[track_caller]
pub fn assert_log_shape(env: &TestEnv) {
    for ev in log_events(env) {
        for key in [
            "ts", "level", "event", "pid", "reasons", "dry_run", "message",
        ] {
            assert!(ev.get(key).is_some(), "log event lacks {key:?}: {ev}");
        }
        let ts = ev["ts"]
            .as_str()
            .unwrap_or_else(|| panic!("ts not a string: {ev}"));
        chrono::DateTime::parse_from_rfc3339(ts)
            .unwrap_or_else(|e| panic!("ts {ts:?} is not RFC 3339 ({e})"));
        let frac = ts
            .split_once('.')
            .map(|(_, f)| f.chars().take_while(|c| c.is_ascii_digit()).count());
        assert_eq!(frac, Some(3), "ts {ts:?} does not carry milliseconds");
        assert!(ev["reasons"].is_array(), "reasons not an array: {ev}");
        assert!(ev["dry_run"].is_boolean(), "dry_run not a bool: {ev}");
    }
}

/// The events named `name`, asserting there is at least one.
#[track_caller]
pub fn expect_events(env: &TestEnv, name: &str) -> Vec<Value> {
    let evs = events_named(env, name);
    assert!(
        !evs.is_empty(),
        "no {name:?} event in the log:\n{}",
        log_text(env)
    );
    evs
}

/// No orphan was reported, no event that acts was logged, no incident was saved.
#[track_caller]
pub fn assert_nothing_done(env: &TestEnv) {
    assert!(
        events_named(env, "orphan").is_empty(),
        "unexpected \"orphan\" event:\n{}",
        log_text(env)
    );
    assert_nothing_acted(env);
}

/// No event that acts was logged, no incident was saved (an orphan may have been
/// reported and left alone).
#[track_caller]
pub fn assert_nothing_acted(env: &TestEnv) {
    for name in [
        "restart",
        "restarted",
        "restart_failed",
        "start",
        "incident",
    ] {
        assert!(
            events_named(env, name).is_empty(),
            "unexpected {name:?} event:\n{}",
            log_text(env)
        );
    }
    assert!(
        env.incident_files().is_empty(),
        "incident saved: {:?}",
        env.incident_files()
    );
}

/// The server is the same process as before, alive, not stopped, still on its port.
#[track_caller]
pub fn assert_untouched(server: &TestServer) {
    assert!(is_alive(server.pid), "server PID {} died", server.pid);
    assert!(!is_stopped(server.pid), "server PID {} stopped", server.pid);
    assert_eq!(listener_pid(server.port), Some(server.pid));
}

/// After a successful restart: a new test server (≠ old) holds the port and answers
/// /health, the old one is gone, the log has `restart` and `restarted` with the method,
/// and an incident snapshot was saved and logged. Returns the new PID.
#[track_caller]
pub fn assert_restarted(env: &TestEnv, server: &TestServer) -> u32 {
    let new_pid = listener_pid(server.port)
        .unwrap_or_else(|| panic!("nothing listens on port {}\n{}", server.port, log_text(env)));
    assert_ne!(new_pid, server.pid, "the old server still holds the port");
    assert!(
        is_testserver(new_pid),
        "port holder {new_pid} is not a test server: {}",
        cmdline(new_pid)
    );
    assert!(
        env.logged_pids().contains(&new_pid),
        "the new server was not started from the replayed argv"
    );
    assert!(healthy(&server.url), "the new server is not healthy");
    assert!(
        wait_until(Duration::from_secs(2), || !is_alive(server.pid)),
        "old server PID {} is still alive",
        server.pid
    );
    for name in ["restart", "restarted"] {
        let ev = &expect_events(env, name)[0];
        assert_eq!(ev["method"], "builtin", "{name} event: {ev}");
    }
    // Names start with the time: the last one is this restart's.
    let incidents = env.incident_files();
    let newest = incidents.last().unwrap_or_else(|| {
        panic!(
            "no incident snapshot in {}",
            env.state_dir.join("incidents").display()
        )
    });
    let name = newest.file_name().unwrap().to_string_lossy().into_owned();
    let text = fs::read_to_string(newest).unwrap();
    let _: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("incident {name} is not JSON ({e}): {text}"));
    assert!(
        log_events(env)
            .iter()
            .any(|e| e.to_string().contains(&name)),
        "the log does not name the incident file {name}:\n{}",
        log_text(env)
    );
    assert_log_shape(env);
    new_pid
}

/// The arguments of `pid` (`/proc/PID/cmdline`, split at NULs; empty arguments and a
/// process that is gone or unreadable give none).
#[cfg(target_os = "linux")]
pub fn cmdline_args(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|&c| c == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Attacks by another local user (docs/SECURITY.md)
// ---------------------------------------------------------------------------------------

/// An unprivileged user that plays the server's owner in the trust tests (no passwd entry
/// is needed: setpriv takes numeric IDs).
pub const SERVER_USER: (u32, u32) = (4242, 4242);
/// An unprivileged user that plays the attacker: a third party, neither root nor the
/// server's owner.
pub const ATTACKER: (u32, u32) = (4343, 4343);

/// Fails the test unless it runs as root (the trust tests are about a root watchdog;
/// CI runs as root). Never a silent skip.
#[track_caller]
pub fn require_root() {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test plays root against other users: run it as root"
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

/// The start time of `pid` in clock ticks since boot (field 22 of `/proc/PID/stat`).
#[cfg(target_os = "linux")]
pub fn start_ticks(pid: u32) -> Option<u64> {
    stat_field(pid, 22)
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

// ---------------------------------------------------------------------------------------
// A real supervisord and runsv, and the tools on the watchdog's PATH
// ---------------------------------------------------------------------------------------

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

/// A directory of tools prepended to PATH for the watchdog runs, and the record of the
/// calls their recording wrappers saw.
pub struct Tools {
    pub bin: PathBuf,
    pub calls: PathBuf,
}

impl Tools {
    pub fn new(env: &TestEnv) -> Tools {
        let bin = env.root.join("bin");
        let calls = env.root.join("calls");
        fs::create_dir_all(&bin).unwrap();
        fs::create_dir_all(&calls).unwrap();
        Tools { bin, calls }
    }

    /// PATH for the watchdog: this directory first.
    pub fn path(&self) -> String {
        let rest = std::env::var("PATH").unwrap_or_default();
        format!("{}:{rest}", self.bin.display())
    }

    /// Installs `name` as the shell script `script`, recording nothing.
    pub fn install(&self, name: &str, script: &str) {
        write_script(&self.bin.join(name), script);
    }

    /// Installs `name` as a wrapper that appends its arguments (one call a line) to its
    /// calls file, then runs `then` (shell text): what the watchdog really asked, whatever
    /// its report says.
    pub fn install_recording(&self, name: &str, then: &str) {
        let calls = self.calls.join(name);
        self.install(
            name,
            &format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" >>{}\n{then}\n",
                sh_quote(&calls.display().to_string())
            ),
        );
    }

    /// [`Tools::install_recording`] that then execs `real` (shell words, already quoted)
    /// with the same arguments.
    pub fn install_wrapper(&self, name: &str, real: &str) {
        self.install_recording(name, &format!("exec {real} \"$@\""));
    }

    /// supervisorctl for the watchdog: the real one, run through the same interpreter the
    /// tests use (a pip install under pyenv puts no command on PATH until `pyenv rehash`),
    /// behind a wrapper that records every call ([`Tools::take_calls`]).
    pub fn install_supervisorctl(&self) {
        self.install_wrapper(
            "supervisorctl",
            &format!("{} -m supervisor.supervisorctl", sh_quote(python())),
        );
    }

    /// The arguments of every call the wrapper `name` recorded, one call each; the record
    /// is then cleared.
    pub fn take_calls(&self, name: &str) -> Vec<String> {
        let path = self.calls.join(name);
        let text = fs::read_to_string(&path).unwrap_or_default();
        let _ = fs::remove_file(&path);
        text.lines().map(String::from).collect()
    }

    /// Runs the watchdog with this PATH.
    pub fn watchdog(&self, env: &TestEnv, args: &[&str]) -> RunResult {
        let mut cmd = watchdog_cmd(env, args);
        cmd.env("PATH", self.path());
        run_with_timeout(cmd, WATCHDOG_TIMEOUT)
    }
}

/// `argv` as shell words (and as supervisord's shlex-split `command`).
pub fn sh_words(argv: &[String]) -> String {
    let words: Vec<String> = argv.iter().map(|a| sh_quote(a)).collect();
    words.join(" ")
}

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
        "supervisord is not installed for {}: run `pip install supervisor` \
         (these tests start a real supervisord)",
        python()
    );
}

/// A real supervisord (`python3 -m supervisor.supervisord -n`), the test's child, with its
/// config, unix socket and logs in the temp dir; stopped by SIGTERM on drop, which stops
/// its programs too.
#[cfg(target_os = "linux")]
pub struct Supervisord {
    pub daemon: GracefulChild,
    root: PathBuf,
    /// `unix:///.../supervisor.sock`, as its children see it in SUPERVISOR_SERVER_URL.
    pub url: String,
    pub log: PathBuf,
}

#[cfg(target_os = "linux")]
impl Supervisord {
    /// Starts supervisord with `settings` (lines added to its `[supervisord]` section)
    /// and `programs` (config sections, one of them in `[group:hermes]`), and waits until
    /// it answers.
    pub fn start(env: &TestEnv, settings: &str, programs: &str) -> Supervisord {
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
            Command::new(python())
                .args(["-m", "supervisor.supervisord", "-n", "-c"])
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

#[cfg(target_os = "linux")]
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
            panic!("{name} is not installed: run `apt-get install runit` (these tests start a real runsv)")
        })
    };
    (find("runsv"), find("sv"))
}

/// A real `runsv DIR`, the test's child. Dropping it sends SIGTERM (runsv stops the
/// service and exits), then kills the service's last PID if it is still this env's test
/// server.
#[cfg(target_os = "linux")]
pub struct Runsv {
    pub daemon: GracefulChild,
    /// The service directory, canonical.
    pub dir: PathBuf,
    pub sv: PathBuf,
    /// The env's PID log, named on its servers' command lines.
    pid_log: PathBuf,
}

#[cfg(target_os = "linux")]
impl Runsv {
    /// Starts runsv on the service `service/NAME` in the temp dir, whose `run` script is
    /// `run`.
    pub fn start(env: &TestEnv, name: &str, run: &str) -> Runsv {
        let (runsv, sv) = require_runit();
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

#[cfg(target_os = "linux")]
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

/// The launchd and systemd stand-in (tests/support/fake_supervisor.py): its state
/// directory, and its `launchctl`/`systemctl` wrappers on the watchdog's PATH. It
/// records every call and answers like the real tool from its job and fixture.
pub struct FakeSupervisor {
    pub state: PathBuf,
}

impl FakeSupervisor {
    /// Installs the stand-in as each of `names` in `tools`. `job` holds the label or
    /// unit (and optionally `domain`, `argv`, `fixture`: by default the test server
    /// and `running.txt`); the server gets `server_env` added to its environment.
    pub fn new(
        env: &TestEnv,
        tools: &Tools,
        names: &[&str],
        mut job: Value,
        server_env: Value,
    ) -> FakeSupervisor {
        let state = env.root.join("fake-supervisor");
        fs::create_dir_all(&state).unwrap();
        if job.get("argv").is_none() {
            job["argv"] = serde_json::json!(testserver_argv(env));
        }
        job["env"] = server_env;
        job["cwd"] = env.root.display().to_string().into();
        job["log"] = env.root.join("job.log").display().to_string().into();
        if job.get("fixture").is_none() {
            job["fixture"] = launchctl_fixture("running.txt").into();
        }
        fs::write(state.join("job.json"), job.to_string()).unwrap();
        for tool in names {
            tools.install(
                tool,
                &format!(
                    "#!/bin/sh\nexec {} {} --state {} {tool} \"$@\"\n",
                    sh_quote(python()),
                    sh_quote(&fake_supervisor_script().display().to_string()),
                    sh_quote(&state.display().to_string()),
                ),
            );
        }
        FakeSupervisor { state }
    }

    /// Starts the job's server as the supervisor would; returns its PID.
    pub fn start_job(&self) -> u32 {
        let mut cmd = Command::new(python());
        cmd.arg(fake_supervisor_script())
            .arg("--state")
            .arg(&self.state)
            .arg("start");
        let r = run_with_timeout(cmd, Duration::from_secs(20));
        assert_eq!(r.status, Some(0), "{}", r.dump());
        r.stdout.trim().parse().expect("started PID")
    }

    /// The PID the stand-in's job runs now.
    pub fn job_pid(&self) -> Option<u32> {
        fs::read_to_string(self.state.join("job.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Every recorded call (the tool, then its arguments), one per line; the record is
    /// then cleared.
    pub fn take_calls(&self) -> Vec<String> {
        let path = self.state.join("calls.log");
        let text = fs::read_to_string(&path).unwrap_or_default();
        let _ = fs::remove_file(&path);
        text.lines().map(String::from).collect()
    }
}

pub fn fake_supervisor_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/fake_supervisor.py")
}

/// The path of the captured `launchctl` output `name` in tests/fixtures/launchctl/.
pub fn launchctl_fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/launchctl")
        .join(name)
        .display()
        .to_string()
}
