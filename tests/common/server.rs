//! The test server (`tests/support/testserver.py`): a real HTTP server that holds real
//! SQLite WAL handles, files and sockets on request.
//!
//! [`TestServer`] is a direct child of the test, reaped by a thread as a supervisor or
//! init would, so a killed server never lingers as a zombie; its drop SIGKILLs it. Also
//! here: its `/control` requests, the command line a supervisor runs for it, waiting for
//! one a supervisor started, and telling a live test server of this env from a reused
//! PID (tests run in parallel: the PID may now be another test's server).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::env::TestEnv;
use super::http::http_get;
use super::proc::{cmdline, is_alive, listener_pid};
use super::processes::wait_until;

/// How long a test server may take to come up.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(20);

/// How to start a [`TestServer`].
#[derive(Clone, Debug)]
pub struct ServerOpts {
    /// Pass `--ignore-sigterm`.
    pub ignore_sigterm: bool,
    /// Pass `--log-sigterm`: SIGTERM is handled (a line in DB/sigterm.log), then the
    /// server dies of it.
    pub log_sigterm: bool,
    /// Pass `--wedge-d-on-usr2`: SIGUSR2 puts the server's main thread in
    /// uninterruptible sleep (D) until DB/wedge.fifo is opened for writing.
    pub wedge_d_on_usr2: bool,
    /// Pass `--startup-delay S`.
    pub startup_delay: Option<f64>,
    /// Pass `--pidfile env.pidfile` (default true).
    pub pidfile: bool,
    /// Serve HTTPS with this certificate and key (`--tls-cert`, `--tls-key`). The
    /// server is then ready once it listens (the harness speaks plain HTTP only), and
    /// its `url`/`base` are `https://`: its `/control` requests cannot be made.
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl Default for ServerOpts {
    fn default() -> Self {
        ServerOpts {
            ignore_sigterm: false,
            log_sigterm: false,
            wedge_d_on_usr2: false,
            startup_delay: None,
            pidfile: true,
            tls: None,
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
        if opts.log_sigterm {
            cmd.arg("--log-sigterm");
        }
        if opts.wedge_d_on_usr2 {
            cmd.arg("--wedge-d-on-usr2");
        }
        if let Some(d) = opts.startup_delay {
            cmd.arg("--startup-delay").arg(d.to_string());
        }
        if let Some((cert, key)) = &opts.tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
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
                let scheme = if opts.tls.is_some() { "https" } else { "http" };
                let base = format!("{scheme}://127.0.0.1:{port}");
                // /control/fds answers whatever the /health mode is. Over TLS the kernel
                // saying it listens is enough: connections wait in its backlog.
                let answers = opts.tls.is_some()
                    || http_get(&format!("{base}/control/fds"), Duration::from_secs(2))
                        .is_ok_and(|r| r.status == 200);
                if answers && listener_pid(port) == Some(pid) {
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
