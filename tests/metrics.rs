//! The Prometheus textfile (`[metrics] textfile`, src/metrics.rs) end to end: a real
//! test server, the watchdog binary, Debian's `promtool` (package `prometheus`) and a
//! real `prometheus-node-exporter` serving the file from its textfile collector
//! directory, scraped over HTTP. The values it serves must be the run's `--json`
//! report's; `watchdog_restarts_total` must grow across runs; a textfile that cannot be
//! written is logged and changes nothing else.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use common::*;

/// The first of `names` on PATH: Debian calls node_exporter `prometheus-node-exporter`,
/// Homebrew and the upstream tarball `node_exporter`. Missing is a failure that names
/// the install, never a skip (the tests that need these are `#[ignore]`d with it).
fn tool(names: &[&str], install: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{} is not installed: run script/bootstrap, or {install}",
                names[0]
            )
        })
}

fn promtool() -> PathBuf {
    tool(
        &["promtool"],
        "apt-get install prometheus (Homebrew: brew install prometheus)",
    )
}

fn node_exporter() -> PathBuf {
    tool(
        &["prometheus-node-exporter", "node_exporter"],
        "apt-get install prometheus-node-exporter (Homebrew: brew install node_exporter)",
    )
}

/// The alert rules contrib/prometheus/watchdog.rules.yml gives (checked here with
/// `promtool check rules`; README shows the same text): the watchdog has not run for 5
/// minutes, it restarted the server, a restart failed, the server is down.
const ALERT_RULES: &str = include_str!("../contrib/prometheus/watchdog.rules.yml");

/// A collector directory (root's, 0755, as node_exporter's would be) and the textfile
/// in it, written into the config.
fn with_textfile(env: &TestEnv, cfg: &mut ConfigToml) -> (PathBuf, PathBuf) {
    let dir = env.root.join("textfile");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.join("watchdog.prom");
    cfg.set("metrics.textfile", file.display().to_string());
    (dir, file)
}

/// A real node_exporter serving `dir`'s `*.prom` files (only the textfile collector),
/// killed on drop.
struct NodeExporter {
    _child: ChildGuard,
    url: String,
}

impl NodeExporter {
    fn start(dir: &Path) -> NodeExporter {
        let port = free_port();
        let child = ChildGuard::spawn(
            Command::new(node_exporter())
                .arg("--collector.disable-defaults")
                .arg("--collector.textfile")
                .arg(format!("--collector.textfile.directory={}", dir.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let url = format!("http://127.0.0.1:{port}/metrics");
        let up = wait_until(Duration::from_secs(20), || {
            http_get(&url, Duration::from_secs(2)).is_ok_and(|r| r.status == 200)
        });
        assert!(up, "node_exporter did not answer on {url}");
        NodeExporter { _child: child, url }
    }

    /// Our series as node_exporter serves them: `name` → (labels → value), labels
    /// written `k=v,k=v` with the values unescaped.
    fn scrape(&self) -> BTreeMap<String, BTreeMap<String, f64>> {
        let response = http_get(&self.url, Duration::from_secs(10)).expect("scrape");
        assert_eq!(response.status, 200);
        // Go's server sends a body this size chunked; the test client does not decode.
        let text = String::from_utf8(dechunk(&response.body)).expect("UTF-8");
        assert!(
            text.lines().any(|l| l == "node_textfile_scrape_error 0"),
            "node_exporter could not read the textfile:\n{text}"
        );
        parse_exposition(&text)
            .into_iter()
            .filter(|(name, _)| name.starts_with("watchdog_"))
            .collect()
    }
}

/// An HTTP/1.1 chunked body decoded: `SIZE\r\nDATA\r\n` … `0\r\n\r\n`.
fn dechunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).expect("hex chunk size");
        rest = &rest[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// The samples of a text exposition, label values unescaped (`\\`, `\"`, `\n`).
fn parse_exposition(text: &str) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut out: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value of {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').expect("}"))),
            None => (series, Vec::new()),
        };
        out.entry(name.to_string())
            .or_default()
            .insert(label_key(labels), value);
    }
    out
}

/// Labels as one sorted `k=v,k=v` key (node_exporter sorts them; we write `target`
/// first).
fn label_key(mut labels: Vec<(String, String)>) -> String {
    labels.sort();
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(",")
}

fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() {
            return labels;
        }
        assert_eq!(chars.next(), Some('"'), "quoted value in {text}");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => panic!("dangling escape in {text}"),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.push((name.trim_start_matches(',').to_string(), value));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
}

/// `promtool check metrics` accepts the file with no lint at all.
#[track_caller]
fn assert_promtool_accepts(file: &Path) {
    let out = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(fs::File::open(file).expect("open the textfile"))
        .output()
        .expect("run promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {:?}\n{}{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        fs::read_to_string(file).unwrap_or_default()
    );
}

/// The value of `name` for `target` (and `extra` labels) as served.
#[track_caller]
fn served(
    scraped: &BTreeMap<String, BTreeMap<String, f64>>,
    name: &str,
    target: &str,
    extra: &str,
) -> Option<f64> {
    let mut labels = vec![("target".to_string(), target.to_string())];
    if let Some((k, v)) = extra.split_once('=') {
        labels.push((k.to_string(), v.to_string()));
    }
    scraped
        .get(name)
        .and_then(|series| series.get(&label_key(labels)))
        .copied()
}

/// The files in `dir`, sorted: the textfile only, no temporary file left behind.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// A healthy check: the file passes promtool, node_exporter serves it, and every
/// series equals the `--json` report (a pattern with a quote, a backslash and a line
/// break in it comes back unescaped, as written in the config).
#[test]
#[ignore = "needs promtool and prometheus-node-exporter (apt-get install prometheus prometheus-node-exporter): run by script/test --all and .ci/run"]
fn node_exporter_serves_the_values_of_the_json_report() {
    let env = TestEnv::new();
    let server = TestServer::start(&env, ServerOpts::default());
    let mut cfg = env.base_config(&server);
    let odd = "say \"hi\" \\ \n";
    cfg.fd_paths(&[("state.db", 500), (odd, 5)]);
    let (dir, file) = with_textfile(&env, &mut cfg);
    cfg.write(&env);
    leak(&server, 5);

    let r = run_watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 0);
    let rep = report(&r);
    assert_promtool_accepts(&file);
    assert_eq!(names_in(&dir), ["watchdog.prom"], "no temporary file left");
    let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "readable by node_exporter's user");

    let exporter = NodeExporter::start(&dir);
    let scraped = exporter.scrape();
    let t = &server.url;
    let get = |name: &str| {
        served(&scraped, name, t, "").unwrap_or_else(|| panic!("{name} not served: {scraped:#?}"))
    };
    let fds = &rep["fds"];
    assert_eq!(get("watchdog_health_up"), 1.0);
    assert_eq!(rep["health"]["ok"], true);
    assert_eq!(get("watchdog_target_up"), 1.0);
    assert_eq!(get("watchdog_last_exit_code"), num(&rep["exit_code"]));
    assert_eq!(get("watchdog_target_fds"), num(&fds["total"]));
    assert_eq!(get("watchdog_target_fds_limit"), num(&fds["limit"]["soft"]));
    assert_eq!(get("watchdog_target_rss_bytes"), num(&rep["rss_bytes"]));
    assert_eq!(
        get("watchdog_target_age_seconds"),
        num(&rep["target"]["age_s"])
    );
    assert_eq!(
        get("watchdog_health_latency_seconds"),
        num(&rep["health"]["latency_ms"]) / 1000.0
    );
    assert_eq!(
        get("watchdog_last_run_timestamp_seconds"),
        num(&rep["run"]["started_s"])
    );
    assert_eq!(
        get("watchdog_run_duration_seconds"),
        num(&rep["run"]["duration_s"])
    );
    assert!(num(&rep["run"]["duration_s"]) > 0.0, "{rep:#}");
    assert_eq!(get("watchdog_restarts_total"), 0.0);
    assert_eq!(num(&rep["counters"]["restarts_total"]), 0.0);
    assert_eq!(get("watchdog_restart_failures_total"), 0.0);
    for p in fds["patterns"].as_array().unwrap() {
        let pattern = p["pattern"].as_str().unwrap();
        assert_eq!(
            served(
                &scraped,
                "watchdog_target_fds_pattern",
                t,
                &format!("pattern={pattern}")
            ),
            Some(num(&p["count"])),
            "{pattern:?}: {scraped:#?}"
        );
    }
    assert!(num(&fds["patterns"][0]["count"]) >= 5.0, "{rep:#}");
    // Three samples at most: no trend yet, so no growth series (never a made-up 0).
    assert!(rep["trend"].is_null());
    assert!(
        !scraped.contains_key("watchdog_fd_growth_per_hour"),
        "{scraped:#?}"
    );
    assert_eq!(names_in(&dir), ["watchdog.prom"]);
    assert!(
        events_named(&env, "metrics_failed").is_empty(),
        "{}",
        log_text(&env)
    );
}

/// Two real restarts of a hanging server in one state dir: the counter reads 1, then
/// 2, as the report's `counters` do; a healthy run after keeps 2.
#[test]
#[ignore = "needs promtool and prometheus-node-exporter (apt-get install prometheus prometheus-node-exporter): run by script/test --all and .ci/run"]
fn restarts_total_grows_across_runs_and_a_healthy_run_keeps_it() {
    let env = TestEnv::new();
    let server = TestServer::start(&env, ServerOpts::default());
    let mut cfg = env.base_config(&server);
    let (dir, file) = with_textfile(&env, &mut cfg);
    cfg.write(&env);
    let exporter = NodeExporter::start(&dir);
    let t = &server.url;

    for expected in [1.0, 2.0] {
        // In memory only: the server the watchdog starts answers again.
        set_memory_mode_at(&server.base, "hang");
        let r = run_watchdog(&env, &["check", "--json"]);
        assert_exit(&env, &r, 1);
        let rep = report(&r);
        assert_eq!(rep["action"]["result"], "restarted", "{rep:#}");
        assert_eq!(num(&rep["counters"]["restarts_total"]), expected, "{rep:#}");
        assert_promtool_accepts(&file);
        let scraped = exporter.scrape();
        assert_eq!(
            served(&scraped, "watchdog_restarts_total", t, ""),
            Some(expected)
        );
        assert_eq!(
            served(&scraped, "watchdog_last_exit_code", t, ""),
            Some(1.0)
        );
        assert_eq!(served(&scraped, "watchdog_health_up", t, ""), Some(0.0));
        assert_eq!(
            served(&scraped, "watchdog_restart_failures_total", t, ""),
            Some(0.0)
        );
        assert!(wait_until(Duration::from_secs(10), || healthy(&server.url)));
    }
    let r = run_watchdog(&env, &["check", "--json"]);
    assert_exit(&env, &r, 0);
    assert_eq!(num(&report(&r)["counters"]["restarts_total"]), 2.0);
    let scraped = exporter.scrape();
    assert_eq!(
        served(&scraped, "watchdog_restarts_total", t, ""),
        Some(2.0)
    );
    assert_eq!(served(&scraped, "watchdog_health_up", t, ""), Some(1.0));
    assert_eq!(
        served(&scraped, "watchdog_last_exit_code", t, ""),
        Some(0.0)
    );
    assert_eq!(names_in(&dir), ["watchdog.prom"], "no temporary file left");
}

/// A textfile the watchdog must not or cannot write: below a directory another user
/// owns (they could swap the collector directory for a link to one of root's), or in
/// a directory that does not exist. Each is logged as `metrics_failed` with the fix;
/// the exit code and the rest of the run are unchanged; nothing is written there.
#[test]
#[ignore = "needs root (chowns the collector directory to another user): run by script/test as root and .ci/run"]
fn a_textfile_that_cannot_be_written_is_logged_and_the_exit_code_is_unchanged() {
    require_root();
    let env = TestEnv::new();
    let server = TestServer::start(&env, ServerOpts::default());
    let theirs = env.root.join("theirs");
    let collector = theirs.join("collector");
    fs::create_dir_all(&collector).unwrap();
    std::os::unix::fs::chown(&theirs, Some(ATTACKER.0), Some(ATTACKER.1)).unwrap();
    let cases = [
        (collector.join("watchdog.prom"), "is owned by uid 4343"),
        (env.root.join("absent/watchdog.prom"), "does not exist"),
    ];
    for (textfile, why) in cases {
        let mut cfg = env.base_config(&server);
        cfg.set("metrics.textfile", textfile.display().to_string())
            .write(&env);
        let r = run_watchdog(&env, &["check"]);
        assert_exit(&env, &r, 0);
        assert_untouched(&server);
        let failed = events_named(&env, "metrics_failed");
        let last = failed
            .last()
            .unwrap_or_else(|| panic!("not logged\n{}", r.dump()));
        let message = last["message"].as_str().unwrap();
        assert!(message.contains(why), "{message}");
        assert_eq!(last["level"], "warning");
        assert_eq!(last["textfile"], textfile.display().to_string());
        assert!(!textfile.exists());
        // The history remembers when it was said: once an hour, not every minute.
        let again = run_watchdog(&env, &["check"]);
        assert_exit(&env, &again, 0);
        assert_eq!(events_named(&env, "metrics_failed").len(), failed.len());
        fs::remove_file(&env.log_file).unwrap();
        fs::remove_file(history_path(&env)).unwrap();
    }
    assert!(
        names_in(&collector).is_empty(),
        "nothing written below another user's directory"
    );
}

/// `config --check` says at set-up time what the log would say every hour; the
/// configuration itself is valid (exit 0), and a good place draws no warning.
#[test]
#[ignore = "needs root (chowns the collector directory to another user): run by script/test as root and .ci/run"]
fn config_check_warns_about_a_textfile_the_watchdog_could_not_write() {
    require_root();
    let env = TestEnv::new();
    let theirs = env.root.join("theirs");
    fs::create_dir_all(theirs.join("collector")).unwrap();
    std::os::unix::fs::chown(&theirs, Some(ATTACKER.0), Some(ATTACKER.1)).unwrap();
    let mut cfg = ConfigToml::for_port(&env, free_port());
    let textfile = theirs.join("collector/watchdog.prom");
    cfg.set("metrics.textfile", textfile.display().to_string())
        .write(&env);
    let r = run_watchdog(&env, &["config", "--check"]);
    assert_exit(&env, &r, 0);
    assert!(
        r.stderr.contains("warning: metrics.textfile")
            && r.stderr.contains("is owned by uid 4343")
            && r.stderr.contains("--collector.textfile.directory"),
        "{}",
        r.dump()
    );
    let (_dir, _file) = with_textfile(&env, &mut cfg);
    cfg.write(&env);
    let r = run_watchdog(&env, &["config", "--check"]);
    assert_exit(&env, &r, 0);
    assert!(!r.stderr.contains("warning"), "{}", r.dump());
}

/// Root's crontab often runs with `umask 077`: the textfile must still be 0644, or
/// node_exporter (its own user) could not read it and would serve none of it.
#[test]
fn the_textfile_is_readable_by_node_exporter_under_a_strict_umask() {
    use std::os::unix::process::CommandExt;
    let env = TestEnv::new();
    let server = TestServer::start(&env, ServerOpts::default());
    let mut cfg = env.base_config(&server);
    let (_dir, file) = with_textfile(&env, &mut cfg);
    cfg.write(&env);
    let mut cmd = watchdog_cmd(&env, &["check"]);
    // SAFETY: umask(2) is async-signal-safe, touches no memory and cannot fail.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o077);
            Ok(())
        });
    }
    let r = run_with_timeout(cmd, Duration::from_secs(60));
    assert_exit(&env, &r, 0);
    let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "{}", r.dump());
    // The watchdog's own files keep their private modes.
    let history = fs::metadata(history_path(&env))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(history, 0o600);
}

/// `--dry-run` touches nothing the scheduled runs own: no textfile (a manual dry run
/// would also make a dead schedule look alive); `status` neither.
#[test]
fn a_dry_run_and_status_write_no_metrics() {
    let env = TestEnv::new();
    let server = TestServer::start(&env, ServerOpts::default());
    let mut cfg = env.base_config(&server);
    let (dir, _file) = with_textfile(&env, &mut cfg);
    cfg.write(&env);
    assert_exit(&env, &run_watchdog(&env, &["check", "--dry-run"]), 0);
    assert_exit(&env, &run_watchdog(&env, &["status"]), 0);
    assert!(names_in(&dir).is_empty(), "{:?}", names_in(&dir));
}

/// The alert rules of contrib/ are valid Prometheus rules, and README shows them as they
/// are.
#[test]
#[ignore = "needs promtool (apt-get install prometheus): run by script/test --all and .ci/run"]
fn the_readme_alert_rules_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("watchdog.rules.yml");
    fs::write(&rules, ALERT_RULES).unwrap();
    let out = Command::new(promtool())
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 4 rules found"));
}
