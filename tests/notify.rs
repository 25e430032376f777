//! End-to-end tests of `[notify]` (docs/DESIGN.md, "Notifications"): the watchdog binary
//! restarts a real test server and tells a real shell command (event JSON on stdin, the
//! three variables in its environment) and a real HTTP receiver (a Python
//! `http.server` on a port of its own) about it; notifiers that hang are cut off at
//! `notify.timeout`, logged as `notify_failed`, and never change the exit code.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use common::*;

/// Slack on top of the run's own bound: the machine is small and shared.
const BOUND_SLACK_S: f64 = 5.0;

fn setup() -> (TestEnv, TestServer, ConfigToml) {
    let env = TestEnv::new();
    let server = TestServer::start(&env, ServerOpts::default());
    let cfg = env.base_config(&server);
    (env, server, cfg)
}

#[track_caller]
fn assert_within_bound(r: &RunResult, cfg: &ConfigToml) {
    let limit = cfg.bound_secs() + BOUND_SLACK_S;
    assert!(
        r.elapsed.as_secs_f64() < limit,
        "run took {:.1?}, bound {} s + {BOUND_SLACK_S} s slack\n{}",
        r.elapsed,
        cfg.bound_secs(),
        r.dump()
    );
}

/// The machine's name as `uname -n` says it: what the events' `host` must be.
fn host() -> String {
    let out = Command::new("uname").arg("-n").output().expect("uname -n");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The events' `host`, `target` and `text` taken out: what is left is the log line.
fn without_notify_fields(event: &Value) -> Value {
    let mut event = event.clone();
    let object = event.as_object_mut().expect("an object");
    for key in ["host", "target", "text"] {
        object.remove(key);
    }
    event
}

/// A shell command that records each call in `dir/N-EVENT/`: its stdin, the three
/// variables, one file each; and the events' order in `dir/order`.
fn recording_command(dir: &Path) -> String {
    let dir = shell_quote(dir);
    format!(
        "d={dir}/$(wc -l < {dir}/order | tr -d ' ')-$WATCHDOG_EVENT; mkdir -p \"$d\"; \
         cat > \"$d/stdin.json\"; printf '%s' \"$WATCHDOG_EVENT\" > \"$d/event\"; \
         printf '%s' \"$WATCHDOG_MESSAGE\" > \"$d/message\"; \
         printf '%s' \"$WATCHDOG_PID\" > \"$d/pid\"; echo \"$WATCHDOG_EVENT\" >> {dir}/order"
    )
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

/// What the recording command saw for its `n`-th call (from 0).
struct Call {
    stdin: Value,
    event: String,
    message: String,
    pid: String,
}

fn call(dir: &Path, n: usize, event: &str) -> Call {
    let d = dir.join(format!("{n}-{event}"));
    let read = |f: &str| {
        fs::read_to_string(d.join(f)).unwrap_or_else(|e| panic!("{}/{f}: {e}", d.display()))
    };
    let text = read("stdin.json");
    Call {
        stdin: serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("stdin was not one JSON document ({e}): {text}")),
        event: read("event"),
        message: read("message"),
        pid: read("pid"),
    }
}

fn calls_dir(env: &TestEnv) -> PathBuf {
    let dir = env.root.join("calls");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("order"), "").unwrap();
    dir
}

// ---------------------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------------------

/// A real restart notifies `restart` then `restarted`, in the log's order: each call gets
/// the log line's JSON (plus host, target, text) on stdin and the event, message and PID
/// in its environment.
#[test]
fn a_restart_runs_the_command_with_the_event_on_stdin_and_in_its_environment() {
    let (env, server, mut cfg) = setup();
    let dir = calls_dir(&env);
    cfg.set("notify.command", recording_command(&dir))
        .set(
            "notify.events",
            toml::Value::Array(vec!["restart".into(), "restarted".into()]),
        )
        .write(&env);
    server.set_memory_mode("503");

    let r = run_watchdog(&env, &["check"]);
    assert_exit(&env, &r, 1);
    let new_pid = assert_restarted(&env, &server);
    assert_eq!(
        fs::read_to_string(dir.join("order")).unwrap(),
        "restart\nrestarted\n"
    );
    let logged = |name: &str| expect_events(&env, name).remove(0);
    for (n, name) in ["restart", "restarted"].into_iter().enumerate() {
        let call = call(&dir, n, name);
        let line = logged(name);
        assert_eq!(without_notify_fields(&call.stdin), line, "{name}");
        assert_eq!(call.stdin["event"], name);
        assert_eq!(call.stdin["pid"], server.pid);
        assert_eq!(call.stdin["dry_run"], false);
        assert_eq!(call.stdin["host"], host());
        assert_eq!(call.stdin["target"], server.url);
        assert!(call.stdin["ts"].is_string(), "{}", call.stdin);
        let text = call.stdin["text"].as_str().unwrap();
        assert_eq!(
            text,
            format!(
                "watchdog on {}: {name} pid={}: {}",
                host(),
                server.pid,
                line["message"].as_str().unwrap()
            )
        );
        assert_eq!(call.event, name);
        assert_eq!(call.message, line["message"].as_str().unwrap());
        assert_eq!(call.pid, server.pid.to_string());
    }
    let restarted = call(&dir, 1, "restarted").stdin;
    assert_eq!(restarted["new_pid"], new_pid);
    assert_eq!(restarted["method"], "builtin");
    assert!(
        events_named(&env, "notify_failed").is_empty(),
        "{}",
        log_text(&env)
    );
    assert_log_shape(&env);
}

/// Kills, when dropped, the process whose PID a test's command wrote to `path`, if it is
/// still that `sleep 1000`: the watchdog should have killed it, a failing test must not
/// leave it behind.
struct SleeperGuard(PathBuf);

impl SleeperGuard {
    fn pid(&self) -> Option<u32> {
        fs::read_to_string(&self.0).ok()?.trim().parse().ok()
    }
}

impl Drop for SleeperGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.pid()
            && is_alive(pid)
            && cmdline(pid).contains("sleep 1000")
        {
            // SAFETY: kill(2) on the sleep this test's command started, just identified.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

/// A command that ignores SIGTERM and waits on a `sleep 1000` is cut off at
/// `notify.timeout`, its whole process group with it; `notify_failed` says so, and the
/// run still exits 1 for its restart.
#[test]
fn a_hanging_command_is_cut_off_at_its_timeout_and_the_exit_code_is_unchanged() {
    let (env, server, mut cfg) = setup();
    let sleeper = SleeperGuard(env.root.join("sleeper.pid"));
    let command = format!(
        "trap '' TERM; sleep 1000 & echo $! > {}; wait",
        shell_quote(&sleeper.0)
    );
    cfg.set("notify.command", command)
        .set("notify.timeout", "1s")
        .write(&env);
    server.set_memory_mode("503");

    let r = run_watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 1);
    assert_eq!(report(&r)["exit_code"], 1);
    assert_restarted(&env, &server);
    let sleeper_pid = sleeper.pid().expect("the command started its sleep");
    assert!(
        wait_until(Duration::from_secs(10), || !is_alive(sleeper_pid)),
        "the command's sleep {sleeper_pid} outlived the run"
    );
    let failed = expect_events(&env, "notify_failed");
    assert_eq!(failed.len(), 1, "{}", log_text(&env));
    assert_eq!(failed[0]["notifier"], "command");
    assert_eq!(failed[0]["notified"], "restarted");
    let message = failed[0]["message"].as_str().unwrap();
    assert!(
        message.contains("did not finish within") && message.contains("killed"),
        "{message}"
    );
    assert!(r.stderr.contains("notify_failed"), "{}", r.dump());
    assert_within_bound(&r, &cfg);
    assert_log_shape(&env);
}

// ---------------------------------------------------------------------------------------
// The webhook and the heartbeat
// ---------------------------------------------------------------------------------------

/// A loopback HTTP receiver (Python's `http.server`, one thread per request) that
/// records every request as one JSON line (`method`, `path`, `content_type`, `body`)
/// and answers 200, except under `/hang`, where it never answers. Killed with its
/// process group on drop.
struct Receiver {
    _child: ChildGuard,
    port: u16,
    requests: PathBuf,
}

impl Receiver {
    fn start(env: &TestEnv) -> Receiver {
        const SCRIPT: &str = r#"
import http.server, json, sys, time
out = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace")
        with open(out, "a") as f:
            f.write(json.dumps({"method": self.command, "path": self.path,
                                "content_type": self.headers.get("Content-Type"),
                                "body": body}) + "\n")
        if self.path.startswith("/hang"):
            time.sleep(1000)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")
    do_GET = handle_any
    do_POST = handle_any
    def log_message(self, *args):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
s.daemon_threads = True
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
        let requests = env.root.join("requests.jsonl");
        let mut child = ChildGuard::spawn(
            Command::new(python())
                .args(["-c", SCRIPT])
                .arg(&requests)
                .stdin(Stdio::null())
                .stdout(Stdio::piped()),
        );
        let mut line = String::new();
        let stdout = child.0.stdout.take().expect("piped");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the receiver's port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no port from the receiver: {line:?}"));
        Receiver {
            _child: child,
            port,
            requests,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request so far, in order.
    fn requests(&self) -> Vec<Value> {
        fs::read_to_string(&self.requests)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a request line"))
            .collect()
    }

    /// `METHOD path` of every request so far.
    fn seen(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r["method"].as_str().unwrap(),
                    r["path"].as_str().unwrap()
                )
            })
            .collect()
    }
}

/// A restart POSTs the `restarted` event as JSON (with its `text` line for Slack-style
/// hooks), and the run ends with a heartbeat GET of the URL itself.
#[test]
fn a_restart_posts_the_event_to_the_webhook_and_pings_the_heartbeat() {
    let (env, server, mut cfg) = setup();
    let receiver = Receiver::start(&env);
    cfg.set("notify.webhook", receiver.url("/hook"))
        .set("notify.heartbeat_url", receiver.url("/ping/abc"))
        .write(&env);
    server.set_memory_mode("503");

    let r = run_watchdog(&env, &["check"]);
    assert_exit(&env, &r, 1);
    let new_pid = assert_restarted(&env, &server);
    assert_eq!(
        receiver.seen(),
        ["POST /hook", "GET /ping/abc"],
        "{}",
        log_text(&env)
    );
    let post = &receiver.requests()[0];
    assert_eq!(post["content_type"], "application/json");
    let body: Value = serde_json::from_str(post["body"].as_str().unwrap()).expect("JSON body");
    let restarted = expect_events(&env, "restarted").remove(0);
    assert_eq!(without_notify_fields(&body), restarted);
    assert_eq!(body["new_pid"], new_pid);
    assert_eq!(body["target"], server.url);
    assert_eq!(body["host"], host());
    assert!(
        body["text"]
            .as_str()
            .is_some_and(|t| t.contains(&format!("restarted pid={}", server.pid))),
        "{body}"
    );
    assert!(
        events_named(&env, "notify_failed").is_empty(),
        "{}",
        log_text(&env)
    );
}

/// The heartbeat in the healthchecks.io convention: the URL after a healthy run, `/fail`
/// after an unhealthy one left alone (exit 4, `method = "none"`), which notifies nothing
/// else (a suppression by `method = "none"` is not the crash-loop guard); a dry run sends
/// nothing at all.
#[test]
fn a_healthy_run_pings_the_url_and_an_unhealthy_one_pings_fail() {
    let (env, server, mut cfg) = setup();
    let receiver = Receiver::start(&env);
    let dir = calls_dir(&env);
    cfg.set("notify.webhook", receiver.url("/hook"))
        .set("notify.command", recording_command(&dir))
        .set("notify.heartbeat_url", receiver.url("/ping/abc/"))
        .set("restart.method", "none")
        .write(&env);

    let r = run_watchdog(&env, &["check"]);
    assert_exit(&env, &r, 0);
    assert_eq!(r.stderr, "", "a healthy run prints nothing\n{}", r.dump());
    assert_eq!(receiver.seen(), ["GET /ping/abc/"]);

    server.set_memory_mode("503");
    let r = run_watchdog(&env, &["check", "--dry-run"]);
    assert_exit(&env, &r, 4);
    assert_eq!(
        receiver.seen(),
        ["GET /ping/abc/"],
        "a dry run sent something"
    );

    let r = run_watchdog(&env, &["check"]);
    assert_exit(&env, &r, 4);
    assert_untouched(&server);
    assert_eq!(receiver.seen(), ["GET /ping/abc/", "GET /ping/abc/fail"]);
    assert_eq!(fs::read_to_string(dir.join("order")).unwrap(), "");
    assert!(
        events_named(&env, "notify_failed").is_empty(),
        "{}",
        log_text(&env)
    );
}

/// A receiver that accepts and never answers is cut off at `notify.timeout`, for the
/// webhook and the heartbeat alike; both are logged, and the restart still exits 1.
#[test]
fn a_receiver_that_hangs_is_cut_off_and_the_exit_code_is_unchanged() {
    let (env, server, mut cfg) = setup();
    let receiver = Receiver::start(&env);
    cfg.set("notify.webhook", receiver.url("/hang/hook"))
        .set("notify.heartbeat_url", receiver.url("/hang/ping"))
        .set("notify.timeout", "1s")
        .write(&env);
    server.set_memory_mode("503");

    let r = run_watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 1);
    assert_eq!(report(&r)["exit_code"], 1);
    assert_restarted(&env, &server);
    assert_eq!(receiver.seen(), ["POST /hang/hook", "GET /hang/ping"]);
    let failed = expect_events(&env, "notify_failed");
    let notifiers: Vec<&str> = failed
        .iter()
        .filter_map(|e| e["notifier"].as_str())
        .collect();
    assert_eq!(notifiers, ["webhook", "heartbeat"], "{}", log_text(&env));
    for event in &failed {
        let message = event["message"].as_str().unwrap();
        assert!(
            message.contains("did not answer in time") && message.contains("notify.timeout = 1s"),
            "{message}"
        );
        // Only the receiver's scheme and host: a hook's path is often its secret.
        assert!(!message.contains("/hang"), "{message}");
    }
    assert_within_bound(&r, &cfg);
}

/// Events not in `notify.events` send nothing (the heartbeat is not an event: it goes).
#[test]
fn events_not_listed_send_nothing() {
    let (env, server, mut cfg) = setup();
    let receiver = Receiver::start(&env);
    let dir = calls_dir(&env);
    cfg.set("notify.webhook", receiver.url("/hook"))
        .set("notify.command", recording_command(&dir))
        .set("notify.heartbeat_url", receiver.url("/ping"))
        .set(
            "notify.events",
            toml::Value::Array(vec!["restart_failed".into()]),
        )
        .write(&env);
    server.set_memory_mode("503");

    let r = run_watchdog(&env, &["check"]);
    assert_exit(&env, &r, 1);
    assert_restarted(&env, &server);
    assert_eq!(receiver.seen(), ["GET /ping"]);
    assert_eq!(fs::read_to_string(dir.join("order")).unwrap(), "");
}

/// A restart that fails notifies `restart_failed` (exit 3, heartbeat `/fail`); the next
/// run, stopped by the crash-loop guard, notifies `suppressed` (exit 4), carrying
/// `why = "crash_loop"`.
#[test]
fn a_failed_restart_and_the_crash_loop_guard_notify() {
    let (env, _server, mut cfg) = setup();
    let receiver = Receiver::start(&env);
    cfg.set("notify.webhook", receiver.url("/hook"))
        .set("notify.heartbeat_url", receiver.url("/ping"))
        .set("restart.max_restarts", 1)
        .set("restart.verify_timeout", "3s")
        .write(&env);
    // Persistent: the respawned server is unhealthy too.
    set_mode(&env, "503");

    let r = run_watchdog(&env, &["check"]);
    assert_exit(&env, &r, 3);
    let r = run_watchdog(&env, &["check"]);
    assert_exit(&env, &r, 4);
    assert_eq!(
        receiver.seen(),
        [
            "POST /hook",
            "GET /ping/fail",
            "POST /hook",
            "GET /ping/fail"
        ],
        "{}",
        log_text(&env)
    );
    let bodies: Vec<Value> = receiver
        .requests()
        .iter()
        .filter(|r| r["method"] == "POST")
        .map(|r| serde_json::from_str(r["body"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(bodies[0]["event"], "restart_failed");
    assert_eq!(bodies[1]["event"], "suppressed");
    assert_eq!(bodies[1]["why"], "crash_loop");
}

/// A `check` that refuses to watch (a state directory others may write: exit 2) pings
/// `/fail` at once, and notifies nothing else: its log is not trusted, so there is no
/// event, and a failing notifier is said on stderr.
#[test]
fn a_run_that_refuses_its_state_dir_pings_fail() {
    use std::os::unix::fs::PermissionsExt;
    let (env, server, mut cfg) = setup();
    let receiver = Receiver::start(&env);
    let dir = calls_dir(&env);
    cfg.set("notify.command", recording_command(&dir))
        .set("notify.heartbeat_url", receiver.url("/ping"))
        .write(&env);
    server.set_memory_mode("503");
    fs::create_dir(&env.state_dir).unwrap();
    fs::set_permissions(&env.state_dir, fs::Permissions::from_mode(0o777)).unwrap();

    let r = run_watchdog(&env, &["check"]);
    assert_exit(&env, &r, 2);
    assert!(r.stderr.contains("refusing [state] dir"), "{}", r.dump());
    assert_eq!(receiver.seen(), ["GET /ping/fail"]);
    assert_eq!(fs::read_to_string(dir.join("order")).unwrap(), "");
    assert_untouched(&server);
}

/// Each configured notifier adds `notify.timeout` to the run's bound, as `status --json`
/// reports it; `status` itself notifies nothing.
#[test]
fn each_notifier_adds_its_timeout_to_the_bound_and_status_sends_nothing() {
    let (env, server, mut cfg) = setup();
    let receiver = Receiver::start(&env);
    let before = cfg.bound_secs();
    cfg.set("notify.webhook", receiver.url("/hook"))
        .set("notify.heartbeat_url", receiver.url("/ping"))
        .set("notify.timeout", "3s")
        .write(&env);
    assert_eq!(cfg.bound_secs(), before + 6.0);
    server.set_memory_mode("503");
    let r = run_watchdog(&env, &["status", "--json"]);
    assert_exit(&env, &r, 4);
    assert_eq!(
        report(&r)["bound_s"].as_f64(),
        Some(cfg.bound_secs()),
        "{}",
        r.dump()
    );
    assert!(receiver.seen().is_empty(), "{:?}", receiver.seen());
}

/// The ntfy example of docs/CONFIG.md, "[notify]", as written there (only its ntfy.sh
/// URL pointed at the local receiver): curl posts the message, with its spaces and
/// quotes, as the body and the event in the title.
#[test]
#[cfg_attr(
    target_os = "linux",
    ignore = "needs curl on Linux (apt-get install curl; part of macOS): run by script/test --all and .ci/run"
)]
fn the_documented_curl_example_delivers_the_message() {
    let doc =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/CONFIG.md")).unwrap();
    let example = doc
        .split("```toml\n")
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("ntfy.sh"))
        .expect("the ntfy example in docs/CONFIG.md");
    let table: toml::Table = example.parse().expect("the example is TOML");
    let command = table["notify"]["command"].as_str().unwrap().to_string();
    assert!(
        Command::new("curl").arg("--version").output().is_ok(),
        "curl is not installed: run script/bootstrap, or apt-get install curl"
    );
    let (env, server, mut cfg) = setup();
    let receiver = Receiver::start(&env);
    let command = command.replace("https://ntfy.sh/my-watchdog-topic", &receiver.url("/topic"));
    cfg.set("notify.command", command).write(&env);
    server.set_memory_mode("503");

    let r = run_watchdog(&env, &["check"]);
    assert_exit(&env, &r, 1);
    assert!(
        events_named(&env, "notify_failed").is_empty(),
        "{}",
        log_text(&env)
    );
    let requests = receiver.requests();
    assert_eq!(receiver.seen(), ["POST /topic"], "{}", log_text(&env));
    let restarted = expect_events(&env, "restarted").remove(0);
    assert_eq!(requests[0]["body"], restarted["message"]);
}
