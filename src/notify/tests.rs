use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::config::{self, notify::EVENTS};
use crate::log::{Event, Level, Logger, Verbosity};

fn cfg(events: &[&str]) -> Config {
    let mut cfg = config::defaults(None);
    cfg.health.url = "http://127.0.0.1:8787/health?deep=1".into();
    cfg.notify.events = events.iter().map(|e| e.to_string()).collect();
    cfg
}

fn emitted(events: &[Event]) -> Vec<Emitted> {
    let mut logger = Logger::stderr_only(Verbosity::Quiet);
    events.iter().for_each(|e| logger.emit(e));
    logger.emitted().to_vec()
}

fn suppressed(why: &str) -> Event {
    Event::new(Level::Warning, "suppressed", "would restart; not acting")
        .pid(Some(7))
        .with("why", why)
}

#[test]
fn the_heartbeat_fails_for_exit_2_3_and_4_in_the_healthchecks_convention() {
    let url = "https://hc-ping.com/uuid";
    assert_eq!(heartbeat_target(url, ExitCode::Healthy), url);
    assert_eq!(heartbeat_target(url, ExitCode::Restarted), url);
    for exit in [ExitCode::Usage, ExitCode::RestartFailed, ExitCode::NotActed] {
        assert_eq!(heartbeat_target(url, exit), "https://hc-ping.com/uuid/fail");
    }
    assert_eq!(
        heartbeat_target("http://h/ping/?rid=1", ExitCode::NotActed),
        "http://h/ping/fail?rid=1"
    );
}

#[test]
fn only_the_configured_events_notify_and_suppressed_only_for_the_crash_loop_guard() {
    let run = emitted(&[
        Event::new(Level::Warning, "unhealthy", "health failed").pid(Some(7)),
        suppressed("startup_grace"),
        suppressed("crash_loop"),
        Event::new(Level::Warning, "orphan", "PID 9 holds the port")
            .pid(Some(9))
            .dry_run(true),
        Event::new(Level::Info, "restarted", "healthy again").pid(Some(7)),
    ]);
    let sent = payloads(&run, &cfg(&config::notify::DEFAULT_EVENTS), "mini");
    let names: Vec<&str> = sent.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(names, ["suppressed", "restarted"], "{sent:#?}");
    assert_eq!(sent[0]["why"], "crash_loop");
    assert!(payloads(&run, &cfg(&[]), "mini").is_empty());
    let unhealthy = payloads(&run, &cfg(&["unhealthy"]), "mini");
    assert_eq!(unhealthy.len(), 1);
}

#[test]
fn a_payload_is_the_log_line_plus_host_target_and_text() {
    let run = emitted(
        &[Event::new(Level::Info, "restarted", "healthy again in 2 s")
            .pid(Some(7))
            .reasons(vec!["health_failed".into()])
            .with("new_pid", 8)],
    );
    let sent = payloads(&run, &cfg(&["restarted"]), "mini");
    let mut expected = run[0].json();
    let object = expected.as_object_mut().unwrap();
    object.insert("host".into(), json!("mini"));
    object.insert(
        "target".into(),
        json!("http://127.0.0.1:8787/health?deep=1"),
    );
    object.insert(
        "text".into(),
        json!("watchdog on mini: restarted pid=7: healthy again in 2 s"),
    );
    assert_eq!(sent, vec![expected]);
    for key in [
        "ts", "level", "pid", "reasons", "dry_run", "message", "new_pid",
    ] {
        assert!(sent[0].get(key).is_some(), "{key} missing: {}", sent[0]);
    }
}

#[test]
fn a_spent_budget_sends_nothing_more_and_says_so_once() {
    let events = vec![
        json!({"event": "orphan"}),
        json!({"event": "restart"}),
        json!({"event": "restarted"}),
    ];
    let mut n = cfg(&[]).notify;
    n.timeout = Duration::from_secs(5);
    let mut calls = 0;
    let spent = Deadline::after(Duration::ZERO);
    let failures = each_event(Notifier::Webhook, &events, &n, spent, |_, _| {
        calls += 1;
        Ok(())
    });
    assert_eq!(calls, 0);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].notified.as_deref(), Some("orphan"));
    assert!(
        failures[0].why.contains("nor the 2 event(s)"),
        "{failures:?}"
    );

    let long = Deadline::after(Duration::from_secs(60));
    let failures = each_event(Notifier::Command, &events, &n, long, |e, _| {
        calls += 1;
        match e["event"].as_str() {
            Some("restart") => Err("exited 1".into()),
            _ => Ok(()),
        }
    });
    assert_eq!(calls, 3, "one failure does not stop the others");
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].notified.as_deref(), Some("restart"));
}

#[test]
fn messages_show_a_url_without_its_secret_path() {
    assert_eq!(
        site("https://hooks.slack.com/services/T0/B0/secret"),
        "https://hooks.slack.com"
    );
    assert_eq!(site("http://127.0.0.1:9/x?y"), "http://127.0.0.1:9");
    let failed = failed_event(
        Failure {
            notifier: Notifier::Heartbeat,
            notified: None,
            why: "https://hc-ping.com answered 404, expected a 2xx status".into(),
        },
        &cfg(&[]).notify,
    );
    assert_eq!(failed.event, "notify_failed");
    assert!(
        failed
            .message
            .starts_with("notify.heartbeat_url was not pinged: "),
        "{}",
        failed.message
    );
    assert_eq!(failed.extra["notifier"], "heartbeat");
    assert!(!failed.extra.contains_key("notified"));
}

#[test]
fn command_output_in_a_message_is_one_bounded_line() {
    assert_eq!(
        shown("curl: (6)\n  Could not resolve\n"),
        "curl: (6) Could not resolve"
    );
    let long = "é".repeat(1000);
    let cut = shown(&long);
    assert_eq!(cut.chars().count(), MAX_OUTPUT_SHOWN + 3);
    assert_eq!(env_safe("a\0b"), "a\\0b");
}

#[test]
fn nothing_is_sent_for_a_dry_run_or_a_locked_run_or_without_notifiers() {
    // A command that would leave a mark: it must never run.
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("ran");
    let mut config = cfg(&["restarted"]);
    config.notify.command = Some(format!("touch '{}'", mark.display()));
    let deadline = Deadline::after(Duration::from_secs(20));
    let mut logger = Logger::stderr_only(Verbosity::Quiet);
    logger.emit(&Event::new(Level::Info, "restarted", "ok"));
    after_run(
        &config,
        true,
        Some(&mut logger),
        ExitCode::Restarted,
        deadline,
    );
    after_run(
        &config,
        false,
        Some(&mut logger),
        ExitCode::Locked,
        deadline,
    );
    assert!(!mark.exists());
    after_run(
        &config,
        false,
        Some(&mut logger),
        ExitCode::Restarted,
        deadline,
    );
    assert!(mark.exists(), "the same run, not dry, notifies");
}

/// Every name `notify.events` accepts is a log event docs/REPORT.md documents (and
/// `tests/docs_contract.rs` keeps those in step with the code).
#[test]
fn notifiable_events_are_documented_log_events() {
    let report = include_str!("../../docs/REPORT.md");
    let log_events = &report[report.find("## Log events").expect("section")..];
    for name in EVENTS {
        assert!(
            log_events.contains(&format!("| `{name}` |")),
            "{name} is not a documented log event"
        );
    }
}

#[test]
fn the_host_has_a_name() {
    let host = hostname();
    assert!(!host.is_empty() && host != "unknown", "{host:?}");
    let _: Value = json!(host);
}

/// Text the server may have put into a message (a health answer quoted in it) reaches
/// the command only through its environment and stdin, never as shell code.
#[test]
fn server_text_in_an_event_is_never_run_by_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let planted = dir.path().join("planted");
    let out = dir.path().join("out");
    let hostile = format!(
        "status 503: $(touch {p}) `touch {p}`; touch {p} \"'\n",
        p = planted.display()
    );
    let event = json!({"event": "restart_failed", "message": hostile, "pid": 7});
    let shell = format!(
        "printf '%s' \"$WATCHDOG_MESSAGE\" > '{o}'; cat >> '{o}'",
        o = out.display()
    );
    let budget = Deadline::after(Duration::from_secs(20));
    run_command(&shell, &event, budget).unwrap();
    assert!(!planted.exists(), "the shell ran text from the event");
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(written.starts_with(&hostile), "{written}");
    let stdin: Value = serde_json::from_str(written[hostile.len()..].trim()).unwrap();
    assert_eq!(stdin, event);
    let failed = run_command("echo nope >&2; exit 3", &event, budget).unwrap_err();
    assert_eq!(failed, "`echo nope >&2; exit 3` exited 3: nope");
}

/// What a failed request says: the kind of failure, the site without its path.
#[test]
fn a_request_that_fails_says_why_and_where() {
    let budget = Deadline::after(Duration::from_secs(10));
    // Bound and listening, never answering: the TLS handshake never completes within
    // the budget.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let refused = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap().port()
    };
    let short = Deadline::after(Duration::from_millis(500));
    let https = post(
        &agent(Duration::from_secs(10)),
        &format!("https://127.0.0.1:{port}/secret"),
        &json!({}),
        short,
    )
    .unwrap_err();
    assert!(
        https.starts_with(&format!("https://127.0.0.1:{port} ")) && !https.contains("secret"),
        "{https}"
    );
    let closed = get(
        &agent(Duration::from_secs(10)),
        &format!("http://127.0.0.1:{refused}/secret"),
        budget,
    )
    .unwrap_err();
    assert!(closed.contains("refused"), "{closed}");
    assert!(!closed.contains("secret"), "{closed}");
}

/// An https webhook goes through the same TLS stack as the health probe (ring, the
/// system's roots): a server that is no TLS server is a failure to report, never a
/// panic for want of a crypto provider.
#[test]
fn an_https_webhook_is_spoken_to_with_tls() {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        }
    });
    let url = format!("https://127.0.0.1:{port}/hook");
    let sent = post(
        &agent(Duration::from_secs(10)),
        &url,
        &serde_json::json!({"text": "x"}),
        Deadline::after(Duration::from_secs(5)),
    );
    let err = sent.expect_err("a plain-HTTP answer to a TLS hello is no delivery");
    assert!(err.contains("127.0.0.1"), "{err}");
    let _ = server.join();
}
