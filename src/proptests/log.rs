//! The log read back (src/log.rs `actions_since`): after an unusable history, the
//! crash-loop guard counts the `restart` and `start` events of the log. The log quotes
//! what the server and its supervisor show (command lines, output); none of that may
//! read back as an action, and every action written must read back as itself.

use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::{any_text, edits, mutate};
use crate::config::{LogConfig, LogFormat};
use crate::log::{Event, Level, LoggedAction, Logger, Verbosity, actions_since};
use crate::units::epoch_seconds;

/// One event the watchdog may log: an action (`restart`, `start`), perhaps a dry
/// run, or another event whose message quotes anything.
#[derive(Debug, Clone)]
struct Logged {
    event: &'static str,
    pid: Option<u32>,
    dry_run: bool,
    method: &'static str,
    message: String,
}

fn logged() -> impl Strategy<Value = Logged> {
    (
        prop::sample::select(vec![
            "restart",
            "start",
            "restarted",
            "warning",
            "suppressed",
            "healthy",
        ]),
        any::<Option<u32>>(),
        any::<bool>(),
        prop::sample::select(vec!["builtin", "supervisor", "systemd", "command"]),
        prop_oneof![
            any_text(),
            Just(()).prop_map(|()| forged()),
            one_line_with()
        ],
    )
        .prop_map(|(event, pid, dry_run, method, message)| Logged {
            event,
            pid,
            dry_run,
            method,
            message,
        })
}

/// Lines that look like actions taken now, in both formats, as a process could put
/// them in its command line (setproctitle keeps the time current).
fn forged() -> String {
    let now = chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
    format!(
        "\n{now} INFO restart pid=1: restarting PID 1 via builtin\n\
         {{\"ts\":\"{now}\",\"event\":\"start\",\"dry_run\":false}}\r\n{now} INFO start: x"
    )
}

/// A command line as a server may show it: words with the forged lines inside.
fn one_line_with() -> impl Strategy<Value = String> {
    "[a-z ]{0,10}".prop_map(|w| format!("python3 {w}{} --port 8787", forged()))
}

/// The message the watchdog writes for an action, as src/commands/check.rs does.
fn message(l: &Logged) -> String {
    match (l.event, l.pid) {
        ("restart", Some(pid)) => format!("restarting PID {pid} via {}", l.method),
        ("restart", None) => format!("restarting via {}", l.method),
        ("start", _) => format!("starting the server via {}", l.method),
        _ => l.message.clone(),
    }
}

proptest! {
    #![proptest_config(super::config(64))]

    /// What is written reads back as exactly the actions taken, in order, in either
    /// format, whatever the other messages quote.
    #[test]
    fn written_actions_read_back(events in prop::collection::vec(logged(), 1..6), json: bool) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let path = dir.path().join("watchdog.log");
        let cfg = LogConfig {
            file: Some(path.clone()),
            format: if json { LogFormat::Json } else { LogFormat::Text },
            syslog: false,
            max_size: 10 << 20,
            heartbeat: false,
        };
        let since = epoch_seconds(SystemTime::now()).saturating_sub(1);
        let mut logger = Logger::open(&cfg, Verbosity::Quiet);
        for l in &events {
            let event = Event::new(Level::Info, l.event, message(l))
                .pid(l.pid)
                .dry_run(l.dry_run)
                .with("method", l.method);
            logger.emit(&event);
        }
        let found = actions_since(&path, since).ok_or_else(|| TestCaseError::fail("log unreadable"))?;
        let until = epoch_seconds(SystemTime::now() + Duration::from_secs(1));
        let expected: Vec<(String, Option<u32>, String)> = events
            .iter()
            .filter(|l| matches!(l.event, "restart" | "start") && !l.dry_run)
            .map(|l| (l.event.to_string(), l.pid, l.method.to_string()))
            .collect();
        let got: Vec<(String, Option<u32>, String)> = found
            .iter()
            .map(|a: &LoggedAction| (a.event.clone(), a.pid, a.method.clone()))
            .collect();
        prop_assert_eq!(got, expected, "{}", std::fs::read_to_string(&path).unwrap_or_default());
        prop_assert!(found.iter().all(|a| a.at >= since && a.at <= until));
    }

    /// Any log file, and a real one edited: actions or none, never a panic.
    #[test]
    fn any_log_reads_or_is_skipped(text in any_text(), edits in edits()) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let path = dir.path().join("watchdog.log");
        let real = "{\"ts\":\"2026-12-01T21:00:00.000+00:00\",\"level\":\"info\",\"event\":\"restart\",\"pid\":4242,\"reasons\":[],\"dry_run\":false,\"message\":\"restarting PID 4242 via builtin\",\"method\":\"builtin\"}\n\
                    2026-12-01T21:00:00.000+00:00 INFO restart pid=4242: restarting PID 4242 via builtin\n";
        std::fs::write(&path, format!("{text}\n{}", mutate(real, &edits))).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let _ = actions_since(&path, 0);
    }
}
