//! Tests of the configuration module: defaults, validation with positions, lookup,
//! `~` expansion, list replacement, overrides and the TOML round trip.

use super::*;

const HOME: &str = "/home/me";

fn home() -> Option<&'static Path> {
    Some(Path::new(HOME))
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(text, Path::new("/etc/watchdog/watchdog.toml"), home())
}

fn parsed(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
}

/// Every key of the first release written out at its default, with the comments an
/// operator would write: it must parse to `defaults()` (docs/CONFIG.md).
const DEFAULTS_WRITTEN_OUT: &str = r#"
[target]                      # how to find the server process
pidfile = "~/.hermes/webui.pid"   # used when the file exists
port = 8787                   # the process LISTENing on this TCP port (default: port of health.url)
match = ""                    # substring of the full command line, e.g. "server.py"
startup_grace = "120s"        # a process younger than this is not restarted for failed health

[health]
url = "http://127.0.0.1:8787/health?deep=1"   # upstream's readiness probe for watchdogs
timeout = "5s"                # the whole request: connect, headers and body
attempts = 3                  # unhealthy only when every attempt fails
interval = "2s"               # pause between attempts
expect_status = [200]
expect_body = ""              # substring the body must contain, e.g. "\"status\": \"ok\""
insecure_tls = false          # https: skip certificate verification (warned unless loopback)
ca_file = ""                  # https: PEM bundle to trust, e.g. the server's self-signed cert

[fds]
max = 1000                    # restart at or above this many open FDs
max_percent = 90              # ... or this share of the target's soft RLIMIT_NOFILE, where readable
warn_percent = 75             # log a warning at this share of whichever limit applies
[[fds.paths]]                 # FDs whose path contains `pattern`
pattern = "state.db"
max = 200

[memory]
max_rss = ""                  # e.g. "2GiB"; empty = no check

[[files]]                     # file-size checks, e.g. an unbounded SQLite WAL
path = "~/.hermes/state.db-wal"
max_size = "1GiB"
action = "warn"               # "warn" or "restart"

[restart]
method = "auto"               # auto | builtin | launchd | systemd | supervisor | runit | command | none
label = ""                    # launchd label          (auto: target's XPC_SERVICE_NAME)
unit = ""                     # systemd unit           (auto: from the target's cgroup)
program = ""                  # supervisord program    (auto: SUPERVISOR_GROUP_NAME:SUPERVISOR_PROCESS_NAME)
service_dir = ""              # runit service directory (auto: cwd of the parent runsv)
command = ""                  # method=command: run with /bin/sh -c
start_command = ""            # builtin: run with /bin/sh -c to start the server instead of
                              # replaying the old argv, and when no server is running at all
command_timeout = "30s"       # bound on any supervisor command, `command` or `start_command`
stop_timeout = "10s"          # SIGTERM, wait this long, then SIGKILL
verify_timeout = "60s"        # after a restart, wait this long for health to pass
max_restarts = 3              # crash-loop guard: at most this many restarts ...
window = "1h"                 # ... within this window; then stop acting and say why
kill_orphans = true           # a port holder the supervisor does not own is killed first
pre_kill_signal = ""          # e.g. "USR1": sent first so the server dumps its stacks

[log]
file = "~/.local/state/watchdog/watchdog.log"   # "" disables the file
format = "json"               # json lines, or "text"
syslog = false
max_size = "10MiB"            # rotate to watchdog.log.1 past this size
heartbeat = false             # also log one line for a healthy run

[state]
dir = "~/.local/state/watchdog"   # lock, history, incident snapshots
"#;

#[test]
fn defaults_are_the_documented_values() {
    let cfg = defaults(home());
    let t = &cfg.target;
    assert_eq!(
        t.pidfile.as_deref(),
        Some(Path::new("/home/me/.hermes/webui.pid"))
    );
    assert_eq!(t.port, None);
    assert_eq!(t.match_, None);
    assert_eq!(t.startup_grace, Duration::from_secs(120));
    let h = &cfg.health;
    assert_eq!(h.url, "http://127.0.0.1:8787/health?deep=1");
    assert_eq!(h.timeout, Duration::from_secs(5));
    assert_eq!(h.attempts, 3);
    assert_eq!(h.interval, Duration::from_secs(2));
    assert_eq!(h.expect_status, vec![200]);
    assert_eq!(h.expect_body, None);
    assert!(!h.insecure_tls);
    assert_eq!(h.ca_file, None);
    let f = &cfg.fds;
    assert_eq!((f.max, f.max_percent, f.warn_percent), (1000, 90, 75));
    assert_eq!(
        f.paths,
        vec![FdPathRule {
            pattern: "state.db".into(),
            max: 200
        }]
    );
    assert_eq!(cfg.memory.max_rss, None);
    assert_eq!(
        cfg.files,
        vec![FileRule {
            path: "/home/me/.hermes/state.db-wal".into(),
            max_size: 1 << 30,
            action: FileAction::Warn,
        }]
    );
    let r = &cfg.restart;
    assert_eq!(r.method, Method::Auto);
    assert_eq!(
        (&r.label, &r.unit, &r.program, &r.command, &r.start_command),
        (&None, &None, &None, &None, &None)
    );
    assert_eq!(r.service_dir, None);
    assert_eq!(r.command_timeout, Duration::from_secs(30));
    assert_eq!(r.stop_timeout, Duration::from_secs(10));
    assert_eq!(r.verify_timeout, Duration::from_secs(60));
    assert_eq!(r.max_restarts, 3);
    assert_eq!(r.window, Duration::from_secs(3600));
    assert!(r.kill_orphans);
    assert_eq!(r.pre_kill_signal, None);
    let l = &cfg.log;
    assert_eq!(
        l.file.as_deref(),
        Some(Path::new("/home/me/.local/state/watchdog/watchdog.log"))
    );
    assert_eq!(l.format, LogFormat::Json);
    assert!(!l.syslog);
    assert_eq!(l.max_size, 10 << 20);
    assert!(!l.heartbeat);
    assert_eq!(cfg.state.dir, Path::new("/home/me/.local/state/watchdog"));
    assert_eq!(cfg.port(), Some(8787));
}

#[test]
fn empty_and_comment_only_files_are_the_defaults() {
    for text in ["", "\n", "# nothing here\n", "[target]\n[health]\n[fds]\n"] {
        assert_eq!(parsed(text), defaults(home()), "{text:?}");
    }
}

#[test]
fn defaults_written_out_are_the_defaults() {
    let mut expected = defaults(home());
    // The port is written out; the default leaves it to health.url.
    expected.target.port = Some(8787);
    assert_eq!(parsed(DEFAULTS_WRITTEN_OUT), expected);
}

/// (file text, line, column, a piece of the message naming the key or expected form)
const REJECTED: &[(&str, usize, usize, &str)] = &[
    // Unknown keys at every level.
    (
        "bogus = 1",
        1,
        1,
        "unknown field `bogus`, expected one of `target`",
    ),
    ("[bogus]", 1, 2, "unknown field `bogus`"),
    (
        "[target]\nport = 1\nbogus = 1",
        3,
        1,
        "target: unknown field `bogus`, expected one of `pidfile`",
    ),
    (
        "[health]\nretries = 3",
        2,
        1,
        "expected one of `url`, `timeout`",
    ),
    ("[fds]\nlimit = 3", 2, 1, "fds: unknown field `limit`"),
    (
        "[[fds.paths]]\npattern = \"x\"\nmax = 1\nmin = 1",
        4,
        1,
        "unknown field `min`",
    ),
    (
        "[memory]\nmax = \"1GiB\"",
        2,
        1,
        "memory: unknown field `max`, expected `max_rss`",
    ),
    (
        "[[files]]\npath = \"x\"\nmax_size = 1\nwhen = 1",
        4,
        1,
        "expected one of `path`, `max_size`, `action`",
    ),
    (
        "[restart]\nmethd = \"auto\"",
        2,
        1,
        "restart: unknown field `methd`",
    ),
    (
        "[log]\nlevel = \"info\"",
        2,
        1,
        "log: unknown field `level`",
    ),
    (
        "[state]\npath = \"/x\"",
        2,
        1,
        "state: unknown field `path`, expected `dir`",
    ),
    // Wrong types.
    ("target = 3", 1, 10, "expected the [target] table"),
    (
        "[health]\nattempts = \"3\"",
        2,
        12,
        "health.attempts: invalid type: string \"3\", expected a whole number, at least 1",
    ),
    (
        "[health]\ntimeout = 5",
        2,
        11,
        "a duration needs a unit: expected a duration such as \"500ms\"",
    ),
    (
        "[health]\ninsecure_tls = \"yes\"",
        2,
        16,
        "expected a boolean",
    ),
    (
        "[target]\nport = \"8787\"",
        2,
        8,
        "expected a TCP port from 1 to 65535",
    ),
    ("[target]\npidfile = 3", 2, 11, "expected a path such as"),
    (
        "[fds]\nmax_percent = 90.5",
        2,
        15,
        "expected a percentage from 1 to 100",
    ),
    (
        "[restart]\nmethod = 3",
        2,
        10,
        "expected one of \"auto\", \"builtin\"",
    ),
    (
        "[health]\nexpect_status = 200",
        2,
        17,
        "expected a sequence",
    ),
    // Durations.
    (
        "[health]\ntimeout = \"0s\"",
        2,
        11,
        "health.timeout: expected a duration greater than zero",
    ),
    (
        "[health]\ntimeout = \"5 seconds\"",
        2,
        11,
        "expected a duration such as \"500ms\", \"5s\", \"2m\" or \"1h\"",
    ),
    (
        "[health]\ninterval = \"-2s\"",
        2,
        12,
        "is negative: expected a duration",
    ),
    (
        "[health]\ntimeout = \"18446744073709551ms\"\nattempts = 4000000",
        3,
        12,
        "comes to",
    ),
    (
        "[health]\nattempts = 1000\ntimeout = \"5s\"",
        2,
        12,
        "expected at most 1h",
    ),
    ("[target]\nstartup_grace = \"2\"", 2, 17, "missing unit"),
    (
        "[restart]\ncommand_timeout = \"0ms\"",
        2,
        19,
        "restart.command_timeout: expected a duration greater than zero",
    ),
    (
        "[restart]\nstop_timeout = \"0s\"",
        2,
        16,
        "restart.stop_timeout: expected a duration greater than zero",
    ),
    (
        "[restart]\nverify_timeout = \"0h\"",
        2,
        18,
        "restart.verify_timeout: expected a duration greater than zero",
    ),
    (
        "[restart]\nwindow = \"0m\"",
        2,
        10,
        "restart.window: expected a duration greater than zero",
    ),
    // Counts, limits and percentages.
    (
        "[health]\nattempts = 0",
        2,
        12,
        "expected a whole number, at least 1, found 0",
    ),
    ("[health]\nattempts = -1", 2, 12, "at least 1, found -1"),
    (
        "[restart]\nmax_restarts = 0",
        2,
        16,
        "restart.max_restarts: expected a whole number, at least 1",
    ),
    (
        "[fds]\nmax = 0",
        2,
        7,
        "fds.max: expected a number of file descriptors, at least 1",
    ),
    (
        "[fds]\nmax_percent = 0",
        2,
        15,
        "expected a percentage from 1 to 100",
    ),
    (
        "[fds]\nmax_percent = 101",
        2,
        15,
        "expected a percentage from 1 to 100",
    ),
    (
        "[fds]\nwarn_percent = 200",
        2,
        16,
        "expected a percentage from 1 to 100",
    ),
    (
        "[fds]\nwarn_percent = 95",
        2,
        16,
        "fds.warn_percent (95) is above fds.max_percent (90)",
    ),
    (
        "[fds]\nmax_percent = 50",
        2,
        15,
        "fds.warn_percent (75) is above fds.max_percent (50)",
    ),
    (
        "[fds]\nwarn_percent = 60\nmax_percent = 50",
        2,
        16,
        "is above fds.max_percent (50)",
    ),
    // Ports and status codes.
    (
        "[target]\nport = 0",
        2,
        8,
        "expected a TCP port from 1 to 65535",
    ),
    ("[target]\nport = 65536", 2, 8, "found 65536"),
    (
        "[target]\nport = -80",
        2,
        8,
        "expected a TCP port from 1 to 65535",
    ),
    (
        "[health]\nexpect_status = []",
        2,
        17,
        "expected a non-empty list of HTTP status codes",
    ),
    (
        "[health]\nexpect_status = [200, 99]",
        2,
        23,
        "expected an HTTP status code from 100 to 599, found 99",
    ),
    ("[health]\nexpect_status = [600]", 2, 18, "found 600"),
    // URLs.
    (
        "[health]\nurl = \"https:127.0.0.1:8787/health\"",
        2,
        7,
        "expected a URL of the form http[s]://host[:port][/path]",
    ),
    (
        "[health]\nurl = \"127.0.0.1:8787\"",
        2,
        7,
        "expected a URL of the form http[s]://host[:port][/path]",
    ),
    (
        "[health]\nurl = \"http://127.0.0.1:99999/\"",
        2,
        7,
        "not a TCP port from 1 to 65535",
    ),
    ("[health]\nurl = \"http://::1:8787/\"", 2, 7, "in brackets"),
    ("[health]\nurl = \"\"", 2, 7, "http[s]://host[:port][/path]"),
    // Names.
    (
        "[restart]\nmethod = \"docker\"",
        2,
        10,
        "unknown restart method \"docker\": expected one of \"auto\", \"builtin\", \"launchd\", \"systemd\", \"supervisor\", \"runit\", \"command\", \"none\"",
    ),
    (
        "[log]\nformat = \"xml\"",
        2,
        10,
        "log.format: unknown log format \"xml\": expected \"json\" or \"text\"",
    ),
    (
        "[[files]]\npath = \"x\"\nmax_size = 1\naction = \"kill\"",
        4,
        10,
        "expected \"warn\" or \"restart\"",
    ),
    (
        "[restart]\npre_kill_signal = \"USR3\"",
        2,
        19,
        "unknown signal \"USR3\": expected a signal name such as \"USR1\"",
    ),
    (
        "[restart]\npre_kill_signal = \"SIGKILL\"",
        2,
        19,
        "SIGKILL cannot be caught",
    ),
    (
        "[restart]\npre_kill_signal = \"STOP\"",
        2,
        19,
        "SIGSTOP cannot be caught",
    ),
    (
        "[restart]\nmethod = \"command\"",
        2,
        10,
        "method = \"command\" needs restart.command",
    ),
    // Lists and sizes.
    (
        "[[fds.paths]]\npattern = \"\"\nmax = 1",
        2,
        11,
        "fds.paths.pattern: expected a non-empty string",
    ),
    (
        "[[fds.paths]]\npattern = \"x\"\nmax = 0",
        3,
        7,
        "at least 1",
    ),
    (
        "x = 1\n[[fds.paths]]\npattern = \"x\"",
        1,
        1,
        "unknown field `x`",
    ),
    (
        "[fds]\n[[fds.paths]]\npattern = \"x\"",
        2,
        1,
        "fds.paths: this entry has no max: expected both keys, e.g. pattern = \"state.db\" and max = 200",
    ),
    (
        "[[files]]\nmax_size = \"1GiB\"",
        1,
        1,
        "files: this entry has no path: expected path and max_size",
    ),
    (
        "[[files]]\npath = \"\"\nmax_size = 1",
        2,
        8,
        "expected a path such as",
    ),
    (
        "[[files]]\npath = \"x\"\nmax_size = \"0\"",
        3,
        12,
        "expected a size greater than zero such as \"512KiB\"",
    ),
    (
        "[[files]]\npath = \"x\"\nmax_size = \"-1GiB\"",
        3,
        12,
        "is negative: expected a size such as \"512KiB\", \"10MiB\", \"1GiB\"",
    ),
    (
        "[[files]]\npath = \"x\"\nmax_size = -1",
        3,
        12,
        "expected a size greater than zero",
    ),
    (
        "[log]\nmax_size = \"0B\"",
        2,
        12,
        "log.max_size: expected a size greater than zero",
    ),
    (
        "[log]\nmax_size = \"10 megs\"",
        2,
        12,
        "expected a size such as \"512KiB\"",
    ),
    (
        "[memory]\nmax_rss = \"0\"",
        2,
        11,
        "or \"\" for no limit, found \"0\"",
    ),
    (
        "[memory]\nmax_rss = \"-2GiB\"",
        2,
        11,
        "\"-2GiB\" is negative: expected a size",
    ),
    ("[state]\ndir = \"\"", 2, 7, "expected a path such as"),
    // TOML syntax, positions after multi-byte characters, inline tables.
    ("[target\n", 1, 8, "expected `]`"),
    (
        "[health]\nurl = \"http://x/\"\nurl = \"http://y/\"",
        3,
        1,
        "duplicate key",
    ),
    (
        "health = { expect_body = \"é\", attempts = 0 }",
        1,
        42,
        "health.attempts",
    ),
    // [notify]: event names from the list, http(s) URLs, a bounded timeout.
    (
        "[notify]\nevents = [\"restarted\", \"restartd\"]",
        2,
        24,
        "unknown notify event \"restartd\": expected one of \"restarted\", \"restart_failed\"",
    ),
    (
        "[notify]\nevents = [\"healthy\"]",
        2,
        11,
        "heartbeat_url instead",
    ),
    (
        "[notify]\nwebhook = \"ftp://x/\"",
        2,
        11,
        "expected a URL of the form http[s]://host[:port][/path]",
    ),
    (
        "[notify]\nheartbeat_url = \"https://\"",
        2,
        17,
        "has no host",
    ),
    (
        "[notify]\ntimeout = \"2m\"",
        2,
        11,
        "from \"1ms\" to \"1m\"",
    ),
    (
        "[notify]\ntimeout = \"0s\"",
        2,
        11,
        "from \"1ms\" to \"1m\"",
    ),
    ("[notify]\ntimeout = 5", 2, 11, "a duration needs a unit"),
    ("[notify]\nurl = \"x\"", 2, 1, "notify: unknown field `url`"),
    ("[health]\nca_file = 7", 2, 11, "expected a path such as"),
];

/// A textfile node_exporter would never read is refused where it is written; "" is
/// none, `~` expands, and the key prints back.
#[test]
fn metrics_textfile_must_be_a_prom_file() {
    assert_eq!(defaults(home()).metrics.textfile, None);
    let cfg = parsed("[metrics]\ntextfile = \"~/textfile/watchdog.prom\"");
    assert_eq!(
        cfg.metrics.textfile.as_deref(),
        Some(Path::new("/home/me/textfile/watchdog.prom"))
    );
    assert_eq!(parsed(&cfg.to_toml()), cfg);
    assert_eq!(parsed("[metrics]\ntextfile = \"\"").metrics.textfile, None);
    for bad in [
        "/var/lib/node_exporter/watchdog.txt",
        "/var/lib/x/.prom",
        "/var/lib/x/",
    ] {
        let text = format!("[metrics]\ntextfile = {bad:?}");
        let err = parse(&text).expect_err(bad).to_string();
        assert!(
            err.starts_with("/etc/watchdog/watchdog.toml:2:12: metrics.textfile: expected a path ending in \".prom\"")
                && err.contains("reads only *.prom files"),
            "{err}"
        );
    }
    let err = parse("[metrics]\ntext_file = \"a.prom\"").expect_err("unknown key");
    assert!(err.to_string().contains("text_file"), "{err}");
}

#[test]
fn bad_values_are_rejected_at_their_position() {
    let mut failures = Vec::new();
    for (text, line, column, needle) in REJECTED {
        match parse(text) {
            Err(ConfigError::Invalid {
                path,
                line: l,
                column: c,
                message,
            }) => {
                assert_eq!(path, Path::new("/etc/watchdog/watchdog.toml"));
                if (l, c) != (*line, *column) || !message.contains(needle) {
                    failures.push(format!("{text:?}: {l}:{c}: {message}"));
                }
            }
            other => failures.push(format!("{text:?} should be Invalid, got {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_displays_as_path_line_column_message() {
    let err = parse("[health]\nattempts = 0").expect_err("attempts = 0");
    assert_eq!(
        err.to_string(),
        "/etc/watchdog/watchdog.toml:2:12: health.attempts: expected a whole number, at least 1, found 0"
    );
}

#[test]
fn tls_keys_are_read_and_the_url_may_be_https() {
    let cfg = parsed(
        "[health]\nurl = \"https://127.0.0.1:8787/health?deep=1\"\ninsecure_tls = true\n\
         ca_file = \"~/.hermes/cert.pem\"",
    );
    assert!(cfg.health.insecure_tls);
    assert_eq!(
        cfg.health.ca_file.as_deref(),
        Some(Path::new("/home/me/.hermes/cert.pem"))
    );
    assert_eq!(cfg.port(), Some(8787));
    assert_eq!(parsed("[health]\nca_file = \"\"").health.ca_file, None);
    assert_eq!(parsed("[health]\ninsecure_tls = false"), defaults(home()));
    // An https URL without a port is the server on 443.
    assert_eq!(
        parsed("[health]\nurl = \"https://mini.local/health\"").port(),
        Some(443)
    );
}

#[test]
fn edge_values_are_accepted() {
    type Check = fn(&Config) -> bool;
    let cases: &[(&str, Check)] = &[
        ("[target]\nstartup_grace = \"0s\"", |c| {
            c.target.startup_grace.is_zero()
        }),
        ("[health]\ninterval = \"0s\"", |c| {
            c.health.interval.is_zero()
        }),
        ("[health]\ntimeout = \"500ms\"", |c| {
            c.health.timeout == Duration::from_millis(500)
        }),
        ("[target]\nport = 65535", |c| c.target.port == Some(65535)),
        ("[target]\nport = 1", |c| c.port() == Some(1)),
        ("[target]\nport = \"\"", |c| c.target.port.is_none()),
        ("[fds]\nmax_percent = 100\nwarn_percent = 100", |c| {
            c.fds.warn_percent == 100
        }),
        ("[fds]\nmax_percent = 1\nwarn_percent = 1", |c| {
            c.fds.max_percent == 1
        }),
        ("[health]\nexpect_status = [100, 599]", |c| {
            c.health.expect_status == [100, 599]
        }),
        ("[health]\nurl = \"http://[::1]:9000/health\"", |c| {
            c.port() == Some(9000)
        }),
        ("[health]\nurl = \"http://localhost/health\"", |c| {
            c.port() == Some(80)
        }),
        ("[memory]\nmax_rss = \"2GiB\"", |c| {
            c.memory.max_rss == Some(2 << 30)
        }),
        ("[memory]\nmax_rss = 4096", |c| {
            c.memory.max_rss == Some(4096)
        }),
        ("[log]\nmax_size = \"1MB\"", |c| c.log.max_size == 1_000_000),
        ("[log]\nfile = \"\"\nformat = \"text\"", |c| {
            c.log.file.is_none() && c.log.format == LogFormat::Text
        }),
        ("[target]\npidfile = \"\"\nmatch = \"server.py\"", |c| {
            c.target.pidfile.is_none() && c.target.match_.as_deref() == Some("server.py")
        }),
        ("[restart]\npre_kill_signal = \"SIGUSR1\"", |c| {
            c.restart.pre_kill_signal == Some(libc::SIGUSR1)
        }),
        ("[restart]\npre_kill_signal = \"USR1\"", |c| {
            c.restart.pre_kill_signal == Some(libc::SIGUSR1)
        }),
        (
            "[restart]\nmethod = \"command\"\ncommand = \"sv restart x\"",
            |c| c.restart.method == Method::Command,
        ),
        ("[restart]\nmethod = \"none\"", |c| {
            c.restart.method == Method::None
        }),
        ("[fds]\nmax_percent = 70\nwarn_percent = 50", |c| {
            c.fds.max_percent == 70
        }),
    ];
    for (text, check) in cases {
        assert!(check(&parsed(text)), "{text:?}");
    }
}

#[test]
fn lists_in_the_file_replace_the_default_lists() {
    let cfg = parsed("files = []\n[fds]\npaths = []");
    assert!(cfg.files.is_empty());
    assert!(cfg.fds.paths.is_empty());

    let cfg = parsed(
        "[[fds.paths]]\npattern = \"a\"\nmax = 1\n[[fds.paths]]\npattern = \"b\"\nmax = 2\n\
         [[files]]\npath = \"/var/x\"\nmax_size = \"5MiB\"\naction = \"restart\"",
    );
    let patterns: Vec<_> = cfg
        .fds
        .paths
        .iter()
        .map(|p| (p.pattern.as_str(), p.max))
        .collect();
    assert_eq!(patterns, [("a", 1), ("b", 2)]);
    assert_eq!(
        cfg.files,
        vec![FileRule {
            path: "/var/x".into(),
            max_size: 5 << 20,
            action: FileAction::Restart
        }]
    );

    // Setting other [fds] keys keeps the default paths; action defaults to warn.
    let cfg = parsed("[fds]\nmax = 500\n[[files]]\npath = \"/x\"\nmax_size = 1");
    assert_eq!(cfg.fds.paths, defaults(home()).fds.paths);
    assert_eq!(cfg.files[0].action, FileAction::Warn);
}

#[test]
fn tilde_expands_to_home() {
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("~/.hermes/x.pid", Some(HOME), "/home/me/.hermes/x.pid"),
        ("~", Some(HOME), "/home/me"),
        ("/abs/x.pid", Some(HOME), "/abs/x.pid"),
        ("rel/x.pid", Some(HOME), "rel/x.pid"),
        ("~other/x.pid", Some(HOME), "~other/x.pid"),
        ("a/~/x", Some(HOME), "a/~/x"),
        ("~/x.pid", None, "~/x.pid"),
    ];
    for (written, home, expected) in cases {
        let text = format!("[target]\npidfile = {written:?}");
        let cfg = Config::from_toml_str(&text, Path::new("w.toml"), home.map(Path::new))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            cfg.target.pidfile.as_deref(),
            Some(Path::new(expected)),
            "{written}"
        );
    }
    let cfg =
        parsed("[restart]\nservice_dir = \"~/sv/web\"\n[[files]]\npath = \"~/w\"\nmax_size = 1");
    assert_eq!(
        cfg.restart.service_dir.as_deref(),
        Some(Path::new("/home/me/sv/web"))
    );
    assert_eq!(cfg.files[0].path, Path::new("/home/me/w"));
}

#[test]
fn without_home_tilde_paths_stay_literal_and_are_reported() {
    let cfg = defaults(None);
    assert_eq!(cfg.state.dir, Path::new("~/.local/state/watchdog"));
    assert_eq!(cfg.unexpanded_tilde(), Some("target.pidfile"));
    assert_eq!(defaults(home()).unexpanded_tilde(), None);
    let text = "files = []\n[target]\npidfile = \"\"\n[log]\nfile = \"/var/log/w.log\"\n\
                [state]\ndir = \"/var/lib/w\"";
    let cfg = Config::from_toml_str(text, Path::new("w"), None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.unexpanded_tilde(), None);
}

/// A configuration with every key away from its default, strings that need escaping.
const NON_DEFAULT: &str = r#"
files = []
[target]
pidfile = "/run/web \"x\".pid"
port = 9000
match = "server.py --port 9000\tC:\\x"
startup_grace = "0s"
[health]
url = "http://[::1]:9000/health?deep=1"
timeout = "1500ms"
attempts = 1
interval = "0s"
expect_status = [200, 204]
expect_body = "\"status\": \"ok\"\n"
insecure_tls = false
[fds]
max = 4000
max_percent = 80
warn_percent = 80
paths = []
[memory]
max_rss = "1536MiB"
[restart]
method = "command"
label = "com.example.web"
unit = "web.service"
program = "web:server"
service_dir = "/etc/sv/web"
command = "sv restart /etc/sv/web"
start_command = "cd /srv && ./start.sh --foreground"
command_timeout = "90s"
stop_timeout = "1m"
verify_timeout = "2h"
max_restarts = 10
window = "1500ms"
kill_orphans = false
pre_kill_signal = "SIGUSR2"
[log]
file = ""
format = "text"
syslog = true
max_size = "1000000"
heartbeat = true
[state]
dir = "/var/lib/watchdög"
[notify]
command = "osascript -e 'display notification (system attribute \"WATCHDOG_MESSAGE\")'"
webhook = "https://hooks.example.com/services/T0/B0/x"
events = ["restart_failed", "warning"]
heartbeat_url = "http://127.0.0.1:8000/ping/1?x=1"
timeout = "1m"
"#;

#[test]
fn to_toml_reads_back_unchanged() {
    let non_default = parsed(NON_DEFAULT);
    let mut with_lists = non_default.clone();
    with_lists.files = defaults(home()).files;
    with_lists.fds.paths = vec![
        FdPathRule {
            pattern: "a\"b".into(),
            max: 1,
        },
        FdPathRule {
            pattern: "c".into(),
            max: 2,
        },
    ];
    // Expanded paths do not depend on the home directory any more; literal `~` paths
    // (no home) read back as themselves only without a home.
    let elsewhere = Some(Path::new("/elsewhere"));
    let cases = [
        (defaults(home()), elsewhere),
        (defaults(None), None),
        (non_default, elsewhere),
        (with_lists, elsewhere),
    ];
    for (cfg, home) in cases {
        let text = cfg.to_toml();
        let back = Config::from_toml_str(&text, Path::new("out.toml"), home)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back, cfg, "{text}");
    }
}

#[test]
fn to_toml_writes_every_key_in_the_documented_order() {
    let text = defaults(home()).to_toml();
    let tables: Vec<&str> = text.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(
        tables,
        [
            "[target]",
            "[health]",
            "[fds]",
            "[[fds.paths]]",
            "[fds.budget]",
            "[memory]",
            "[[files]]",
            "[restart]",
            "[log]",
            "[state]",
            "[metrics]",
            "[notify]"
        ]
    );
    for needle in [
        "startup_grace = \"2m\"",
        "port = \"\"",
        "max_size = \"1GiB\"",
        "max_size = \"10MiB\"",
        "verify_timeout = \"1m\"",
        "pre_kill_signal = \"\"",
        "expect_status = [200]",
        "kill_orphans = true",
        "busy_fields = [\"active_runs\", \"active_streams\"]",
        "trend_window = \"6h\"",
        "trend_horizon = \"2h\"",
        "max_defer = \"30m\"",
        "events = [\"restarted\", \"restart_failed\", \"orphan\", \"suppressed\"]",
        "insecure_tls = false",
        "ca_file = \"\"",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    let keys = text
        .lines()
        .filter(|l| l.contains(" = ") && !l.starts_with('#'))
        .count();
    // 4 target + 9 health + 6 fds + 2 fds.paths + 4 fds.budget + 1 memory + 3 files
    // + 15 restart + 5 log + 1 state + 1 metrics + 5 notify
    assert_eq!(keys, 56, "{text}");
}

#[test]
fn lookup_order() {
    let p = |s: &'static str| Some(Path::new(s));
    let req = |s: &str| Lookup::Required(PathBuf::from(s));
    let first = |v: &[&str]| Lookup::FirstExisting(v.iter().map(PathBuf::from).collect());
    let cases = [
        // (explicit, $WATCHDOG_CONFIG, $XDG_CONFIG_HOME, $HOME, expected)
        (
            p("/a.toml"),
            p("/b.toml"),
            p("/xdg"),
            p(HOME),
            req("/a.toml"),
        ),
        (p("/a.toml"), p("/a.toml"), None, None, req("/a.toml")),
        (None, p("/b.toml"), p("/xdg"), p(HOME), req("/b.toml")),
        (None, p("~/w.toml"), None, p(HOME), req("/home/me/w.toml")),
        (p(""), p("/b.toml"), None, None, req("/b.toml")),
        (
            None,
            p(""),
            p("/xdg"),
            p(HOME),
            first(&["/xdg/watchdog/watchdog.toml", SYSTEM_CONFIG]),
        ),
        (
            None,
            None,
            None,
            p(HOME),
            first(&["/home/me/.config/watchdog/watchdog.toml", SYSTEM_CONFIG]),
        ),
        (
            None,
            None,
            p(""),
            p(HOME),
            first(&["/home/me/.config/watchdog/watchdog.toml", SYSTEM_CONFIG]),
        ),
        (
            None,
            None,
            p("rel/xdg"),
            p(HOME),
            first(&["/home/me/.config/watchdog/watchdog.toml", SYSTEM_CONFIG]),
        ),
        (
            None,
            None,
            p("/xdg"),
            None,
            first(&["/xdg/watchdog/watchdog.toml", SYSTEM_CONFIG]),
        ),
        (None, None, None, None, first(&[SYSTEM_CONFIG])),
        (None, None, None, p(""), first(&[SYSTEM_CONFIG])),
    ];
    for (explicit, env, xdg, home, expected) in cases {
        assert_eq!(
            lookup_path(explicit, env, xdg, home),
            expected,
            "{explicit:?} {env:?} {xdg:?} {home:?}"
        );
    }
}

#[test]
fn load_reads_the_named_or_first_existing_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let good = dir.path().join("good.toml");
    let bad = dir.path().join("bad.toml");
    let missing = dir.path().join("missing.toml");
    std::fs::write(&good, "[fds]\nmax = 7\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&bad, "[fds]\nmax = 0\n").unwrap_or_else(|e| panic!("{e}"));

    let loaded =
        load_from(&Lookup::Required(good.clone()), home()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.source.as_deref(), Some(good.as_path()));
    assert_eq!(loaded.config.fds.max, 7);

    let loaded = load_from(
        &Lookup::FirstExisting(vec![missing.clone(), good.clone()]),
        home(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.source.as_deref(), Some(good.as_path()));

    let loaded = load_from(&Lookup::FirstExisting(vec![missing.clone()]), home())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        loaded,
        Loaded {
            config: defaults(home()),
            source: None
        }
    );

    match load_from(&Lookup::Required(missing.clone()), home()) {
        Err(e @ ConfigError::NotFound { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("does not exist") && text.contains("watchdog config"),
                "{text}"
            );
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    match load_from(
        &Lookup::FirstExisting(vec![bad.clone(), good.clone()]),
        home(),
    ) {
        Err(ConfigError::Invalid {
            path,
            line: 2,
            column: 7,
            ..
        }) => assert_eq!(path, bad),
        other => panic!("expected Invalid, got {other:?}"),
    }
    // An existing default location that cannot be read is an error, not skipped.
    match load_from(
        &Lookup::FirstExisting(vec![dir.path().to_path_buf(), good.clone()]),
        home(),
    ) {
        Err(e @ ConfigError::Read { .. }) => {
            assert!(e.to_string().starts_with("cannot read config"))
        }
        other => panic!("expected Read, got {other:?}"),
    }
    // A file under a regular file ("not a directory") counts as absent.
    let under_file = good.join("watchdog.toml");
    let loaded = load_from(&Lookup::FirstExisting(vec![under_file]), home())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.source, None);
}

/// A FIFO at the config path is refused at once (it would block the run before its
/// bound is known), whether named or found at a default location; a link to a
/// regular file is read.
#[test]
fn load_refuses_a_fifo_at_once_and_follows_a_link() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let fifo = dir.path().join("watchdog.toml");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo touches no memory of ours.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for lookup in [
        Lookup::Required(fifo.clone()),
        Lookup::FirstExisting(vec![fifo.clone()]),
    ] {
        match load_from(&lookup, home()) {
            Err(e @ ConfigError::Read { .. }) => {
                let text = e.to_string();
                assert!(text.contains("it is a FIFO, not a regular file"), "{text}");
            }
            other => panic!("expected Read, got {other:?}"),
        }
    }
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[fds]\nmax = 7\n").unwrap_or_else(|e| panic!("{e}"));
    let link = dir.path().join("link.toml");
    std::os::unix::fs::symlink(&good, &link).unwrap_or_else(|e| panic!("{e}"));
    let loaded = load_from(&Lookup::Required(link), home()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.config.fds.max, 7);
}

#[test]
fn load_without_home_rejects_tilde_paths() {
    match load_from(&Lookup::FirstExisting(vec![]), None) {
        Err(
            e @ ConfigError::NoHome {
                key: "target.pidfile",
            },
        ) => {
            assert!(e.to_string().contains("HOME"), "{e}");
        }
        other => panic!("expected NoHome, got {other:?}"),
    }
}

#[test]
fn overrides_apply_with_the_same_checks() {
    let mut cfg = defaults(home());
    cfg.apply(&Overrides {
        url: Some("http://127.0.0.1:9999/health".into()),
        ..Overrides::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.port(), Some(9999), "the port follows --url");

    let mut cfg = parsed("[target]\nport = 8787");
    let all = Overrides {
        url: Some("http://localhost:9999/".into()),
        port: None,
        pidfile: Some("".into()),
        match_: Some("server.py".into()),
        max_fds: Some(300),
    };
    cfg.apply(&all).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.port(), Some(8787), "target.port wins over the URL");
    assert_eq!(cfg.target.pidfile, None);
    assert_eq!(cfg.target.match_.as_deref(), Some("server.py"));
    assert_eq!(cfg.fds.max, 300);

    cfg.apply(&Overrides {
        port: Some(7000),
        pidfile: Some("/run/x.pid".into()),
        match_: Some(String::new()),
        ..Overrides::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.port(), Some(7000));
    assert_eq!(cfg.target.pidfile.as_deref(), Some(Path::new("/run/x.pid")));
    assert_eq!(cfg.target.match_, None);

    let rejected: &[(Overrides, &str, &str)] = &[
        (
            Overrides {
                url: Some("ftp://x/".into()),
                ..Overrides::default()
            },
            "--url",
            "http[s]://host[:port][/path]",
        ),
        (
            Overrides {
                url: Some("localhost:80".into()),
                ..Overrides::default()
            },
            "--url",
            "http[s]://host[:port][/path]",
        ),
        (
            Overrides {
                port: Some(0),
                ..Overrides::default()
            },
            "--port",
            "from 1 to 65535",
        ),
        (
            Overrides {
                max_fds: Some(0),
                ..Overrides::default()
            },
            "--max-fds",
            "at least 1",
        ),
    ];
    for (o, flag_name, needle) in rejected {
        let before = cfg.clone();
        match cfg.apply(o) {
            Err(ConfigError::Flag { flag, message }) => {
                assert_eq!(flag, *flag_name);
                assert!(message.contains(needle), "{flag}: {message}");
            }
            other => panic!("{o:?}: expected Flag, got {other:?}"),
        }
        assert_eq!(cfg, before, "a rejected override changes nothing");
    }
}

#[test]
fn line_column_counts_characters() {
    let text = "ab\nçé x\n";
    assert_eq!(line_column(text, 0), (1, 1));
    assert_eq!(line_column(text, 3), (2, 1));
    assert_eq!(line_column(text, 3 + "çé ".len()), (2, 4));
    assert_eq!(line_column(text, 4), (2, 1), "inside a character");
    assert_eq!(line_column(text, 1000), (3, 1), "past the end");
}

#[test]
fn fd_budget_and_trend_keys() {
    let text = "[health]\nbusy_fields = [\"active_runs\"]\n[fds]\ntrend_window = \"3h\"\n\
                trend_horizon = \"0s\"\ntrend_restart = true\n[fds.budget]\nbase = 40\n\
                per = 3\nfield = \"sessions\"\n[restart]\nmax_defer = \"10m\"\n";
    let cfg = Config::from_toml_str(text, Path::new("w.toml"), home()).unwrap();
    assert_eq!(cfg.health.busy_fields, vec!["active_runs".to_string()]);
    assert_eq!(cfg.fds.trend_window, Duration::from_secs(3 * 3600));
    assert_eq!(cfg.fds.trend_horizon, Duration::ZERO);
    assert!(cfg.fds.trend_restart);
    let budget = cfg.fds.budget.clone().unwrap();
    assert_eq!(
        (budget.base, budget.per, budget.field.as_str()),
        (40, 3, "sessions")
    );
    assert_eq!(budget.factor, 2.0);
    assert_eq!(cfg.restart.max_defer, Duration::from_secs(600));
    let again = Config::from_toml_str(&cfg.to_toml(), Path::new("w.toml"), home()).unwrap();
    assert_eq!(again, cfg);

    for (bad, needle) in [
        (
            "[fds.budget]\nfield = \"sessions\"\nper = 3\nfactor = 0.5\n",
            "at least 1.0",
        ),
        ("[fds.budget]\nfield = \"sessions\"\n", "both 0"),
        ("[fds.budget]\nfield = \"sessions\"\nper = -1\n", "per"),
        ("[fds]\ntrend_window = \"0s\"\n", "trend_window"),
    ] {
        let err = Config::from_toml_str(bad, Path::new("w.toml"), home()).unwrap_err();
        assert!(err.to_string().contains(needle), "{bad:?}: {err}");
    }
}

/// The config is the operator's word: `restart.command` runs as the watchdog's user
/// (root, often), and so does `start_command` when no server runs. A file another user
/// can write (a config in the server user's home named by root's crontab) would let that
/// user run anything as root; it is refused (exit 2) like a state dir they could change.
/// Real ownership: run as root.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs root (chowns the config to other users): run by script/test as root and .ci/run"]
fn a_config_another_user_could_write_is_refused() {
    use std::os::unix::fs::{PermissionsExt, chown};
    assert_eq!(
        crate::safe_fs::own_euid(),
        0,
        "this test chowns files: run it as root (script/test as root runs it; so does .ci/run)"
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("watchdog.toml");
    std::fs::write(&path, "[restart]\nmethod = \"command\"\ncommand = \"id\"\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let load = || load_from(&Lookup::Required(path.clone()), home());
    let chmod = |mode: u32| {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("{e}"));
    };
    load().unwrap_or_else(|e| panic!("root's own file: {e}"));
    chmod(0o664);
    load().unwrap_or_else(|e| panic!("root's own private group: {e}"));

    chmod(0o644);
    chown(&path, Some(4242), Some(4242)).unwrap_or_else(|e| panic!("{e}"));
    let err = load().unwrap_err().to_string();
    assert!(
        err.contains("is owned by uid 4242")
            && err.contains(&format!("chown 0 {}", path.display())),
        "{err}"
    );
    chown(&path, Some(0), Some(4242)).unwrap_or_else(|e| panic!("{e}"));
    chmod(0o664);
    let err = load().unwrap_err().to_string();
    assert!(err.contains("chmod go-w"), "{err}");
    chmod(0o646);
    assert!(load().is_err());

    // Through a link, the file it leads to is judged.
    chmod(0o644);
    chown(&path, Some(0), Some(0)).unwrap_or_else(|e| panic!("{e}"));
    let theirs = dir.path().join("theirs.toml");
    std::fs::copy(&path, &theirs).unwrap_or_else(|e| panic!("{e}"));
    chown(&theirs, Some(4343), Some(4343)).unwrap_or_else(|e| panic!("{e}"));
    let link = dir.path().join("link.toml");
    std::os::unix::fs::symlink(&theirs, &link).unwrap_or_else(|e| panic!("{e}"));
    let err = load_from(&Lookup::Required(link), home())
        .unwrap_err()
        .to_string();
    assert!(err.contains("is owned by uid 4343"), "{err}");
}
