//! Notifications (docs/DESIGN.md, "Notifications"): at the end of a `check`, once its
//! outcome is known, the run's events go to `notify.command` and `notify.webhook`, and
//! `notify.heartbeat_url` is pinged. Each notifier has `notify.timeout` for all it sends
//! in one run, inside the run's bound (src/deadline.rs, `run_bound`); one that fails or
//! hangs is logged as `notify_failed` and never changes the exit code.
//!
//! Nothing the server sent reaches a shell as code: the command string is the
//! configuration's, the event (whose message may quote the server's answers) goes only
//! to its stdin and environment (docs/DESIGN.md, "Notifications").

use std::time::Duration;

use serde_json::Value;

use crate::command::{self, Output};
use crate::config::{Config, NotifyConfig};
use crate::deadline::{Deadline, failsafe};
use crate::exit_code::ExitCode;
use crate::log::{Emitted, Event, Level, Logger};
use crate::probe::health::{self, tls};
use crate::units::format_duration;

/// At most this much of a failing command's output goes into the log line.
const MAX_OUTPUT_SHOWN: usize = 300;

/// The notifiers of one run, in the order they are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Notifier {
    Command,
    Webhook,
    Heartbeat,
}

impl Notifier {
    fn as_str(self) -> &'static str {
        match self {
            Notifier::Command => "command",
            Notifier::Webhook => "webhook",
            Notifier::Heartbeat => "heartbeat",
        }
    }
}

/// One notifier that did not get through, for the `notify_failed` event.
#[derive(Debug, Clone, PartialEq)]
struct Failure {
    notifier: Notifier,
    /// The event it was sending; `None` for the heartbeat.
    notified: Option<String>,
    why: String,
}

/// Sends what a finished `check` has to tell (docs/DESIGN.md, "Notifications"): every
/// event the logger emitted that `notify.events` names, to the command and the webhook,
/// then the heartbeat. `logger` is `None` when the run ended before its log could be
/// trusted (exit 2): then only the heartbeat goes, and a failure is said on stderr.
/// Nothing for a dry run, nor for a run skipped for the lock (exit 5). `deadline` is
/// the run's: no notifier outlives it.
pub fn after_run(
    cfg: &Config,
    dry_run: bool,
    logger: Option<&mut Logger>,
    exit: ExitCode,
    deadline: Deadline,
) {
    let n = &cfg.notify;
    if dry_run || exit == ExitCode::Locked || n.notifiers() == 0 {
        return;
    }
    // The outcome is known: stopped while notifying, the run ends with its own code.
    failsafe::relabel(exit, "sending notifications");
    let events = logger
        .as_deref()
        .map(|l| payloads(l.emitted(), cfg, &hostname()))
        .unwrap_or_default();
    let mut failures = Vec::new();
    if let Some(shell) = &n.command {
        failures.extend(each_event(
            Notifier::Command,
            &events,
            n,
            deadline,
            |event, d| run_command(shell, event, d),
        ));
    }
    let agent = (n.webhook.is_some() || n.heartbeat_url.is_some()).then(|| agent(n.timeout));
    if let (Some(url), Some(agent)) = (&n.webhook, &agent) {
        failures.extend(each_event(
            Notifier::Webhook,
            &events,
            n,
            deadline,
            |event, d| post(agent, url, event, d),
        ));
    }
    if let (Some(url), Some(agent)) = (&n.heartbeat_url, &agent) {
        let url = heartbeat_target(url, exit);
        if let Err(why) = get(agent, &url, deadline.sub(n.timeout)) {
            failures.push(Failure {
                notifier: Notifier::Heartbeat,
                notified: None,
                why,
            });
        }
    }
    report(failures, logger, n);
}

/// The events a run notifies, as sent: the log's JSON object plus `host`, `target`
/// (the health URL) and `text` (the readable line). `suppressed` only when the
/// crash-loop guard stopped the restart (a grace period or `method = "none"` is the
/// operator's own choice, said in the log).
fn payloads(emitted: &[Emitted], cfg: &Config, host: &str) -> Vec<Value> {
    emitted
        .iter()
        .filter(|e| !e.event.dry_run)
        .filter(|e| cfg.notify.events.iter().any(|name| name == e.event.event))
        .filter(|e| {
            e.event.event != "suppressed"
                || e.event.extra.get("why").and_then(Value::as_str) == Some("crash_loop")
        })
        .map(|e| {
            let mut json = e.json();
            if let Value::Object(object) = &mut json {
                object.insert("host".into(), host.into());
                object.insert("target".into(), cfg.health.url.clone().into());
                object.insert(
                    "text".into(),
                    format!("watchdog on {host}: {}", e.event.line()).into(),
                );
            }
            json
        })
        .collect()
}

/// Sends `events` in order through one notifier, all within one `notify.timeout` (and
/// the run's deadline): once that is spent, the rest are not sent, and said so once.
fn each_event(
    notifier: Notifier,
    events: &[Value],
    cfg: &NotifyConfig,
    deadline: Deadline,
    mut send: impl FnMut(&Value, Deadline) -> Result<(), String>,
) -> Vec<Failure> {
    let budget = deadline.sub(cfg.timeout);
    let mut failures = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let notified = event["event"].as_str().map(str::to_string);
        if budget.passed() {
            failures.push(Failure {
                notifier,
                notified,
                why: format!(
                    "not sent, nor the {} event(s) after it: notify.timeout ({}) was spent \
                     on the earlier ones",
                    events.len() - i - 1,
                    format_duration(cfg.timeout)
                ),
            });
            break;
        }
        if let Err(why) = send(event, budget) {
            failures.push(Failure {
                notifier,
                notified,
                why,
            });
        }
    }
    failures
}

/// `/bin/sh -c COMMAND` with the event JSON on stdin and `WATCHDOG_EVENT`,
/// `WATCHDOG_MESSAGE`, `WATCHDOG_PID` (empty when there is none) in its environment,
/// through the crate's one child runner: its own process group, killed whole at the
/// budget, launchd's job variables removed.
fn run_command(shell: &str, event: &Value, budget: Deadline) -> Result<(), String> {
    let text = |key: &str| event[key].as_str().unwrap_or_default().to_string();
    let env = [
        ("WATCHDOG_EVENT", env_safe(&text("event"))),
        ("WATCHDOG_MESSAGE", env_safe(&text("message"))),
        (
            "WATCHDOG_PID",
            event["pid"]
                .as_u64()
                .map(|p| p.to_string())
                .unwrap_or_default(),
        ),
    ];
    let argv = ["/bin/sh".to_string(), "-c".into(), shell.into()];
    let input = format!("{event}\n");
    match command::run_with_input(&argv, &env, Some(input.as_bytes()), Output::Capture, budget) {
        Ok(done) if done.status.success() => Ok(()),
        Ok(done) => {
            let status = match done.status.code() {
                Some(code) => format!("exited {code}"),
                None => "was killed by a signal".to_string(),
            };
            let output = shown(&done.text());
            Err(if output.is_empty() {
                format!("`{shell}` {status}")
            } else {
                format!("`{shell}` {status}: {output}")
            })
        }
        Err(e) => Err(e.to_string()),
    }
}

/// A variable's value cannot hold a NUL byte (the spawn would fail): shown as `\0`.
fn env_safe(text: &str) -> String {
    text.replace('\0', "\\0")
}

/// The first [`MAX_OUTPUT_SHOWN`] bytes of a command's output, on one line.
fn shown(output: &str) -> String {
    let one_line = output.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(MAX_OUTPUT_SHOWN) {
        Some((cut, _)) => format!("{}...", &one_line[..cut]),
        None => one_line,
    }
}

/// The HTTP agent of the webhook and the heartbeat: the health probe's
/// (src/probe/health.rs, `build_agent`: no proxy from the environment, which a
/// scheduled run does not share with the shell; no redirects; a status is a reading;
/// names looked up without aborting when no thread can start), verified against the
/// system's trust store, with no setting to weaken it. Each request sets its own
/// timeout from what is left of the notifier's budget.
fn agent(timeout: Duration) -> ureq::Agent {
    health::build_agent(timeout, tls::system_roots())
}

/// POSTs the event JSON with `Content-Type: application/json`; any 2xx is delivered.
fn post(agent: &ureq::Agent, url: &str, event: &Value, budget: Deadline) -> Result<(), String> {
    let timeout = budget.remaining().max(Duration::from_millis(1));
    let sent = agent
        .post(url)
        .header("Content-Type", "application/json")
        .config()
        .timeout_global(Some(timeout))
        .build()
        .send(event.to_string().as_bytes());
    answered(sent, url)
}

/// GETs the heartbeat URL; any 2xx is delivered.
fn get(agent: &ureq::Agent, url: &str, budget: Deadline) -> Result<(), String> {
    let timeout = budget.remaining().max(Duration::from_millis(1));
    let sent = agent
        .get(url)
        .config()
        .timeout_global(Some(timeout))
        .build()
        .call();
    answered(sent, url)
}

/// The outcome of one request in words. The URL is shown as its scheme and host only:
/// a webhook's or a ping's path is often its secret (Slack, healthchecks.io).
fn answered(
    sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    url: &str,
) -> Result<(), String> {
    let site = site(url);
    match sent {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(format!(
            "{site} answered {}, expected a 2xx status",
            response.status().as_u16()
        )),
        Err(ureq::Error::Timeout(_)) => Err(format!("{site} did not answer in time")),
        Err(ureq::Error::Io(io)) if io.kind() == std::io::ErrorKind::TimedOut => {
            Err(format!("{site} did not answer in time"))
        }
        Err(ureq::Error::Io(io)) => Err(format!("{site}: {io}")),
        Err(ureq::Error::HostNotFound) => Err(format!("{site}: host not found")),
        Err(ureq::Error::TlsRequired) => Err(format!(
            "{site}: https is not supported by this build; use an http:// URL"
        )),
        Err(e) => Err(format!("{site}: {e}")),
    }
}

/// `scheme://host[:port]` of a URL, for messages.
fn site(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    format!("{scheme}://{host}")
}

/// The heartbeat for a run that ended with `exit`, in the healthchecks.io convention:
/// the URL for a run that ends healthy (0) or healthy again (1); `URL/fail` when it
/// ends unhealthy or failed (3, 4) or could not watch at all (2: the state or log
/// directory refused, the lock unavailable). A run that did not happen (5) sends
/// nothing, see [`after_run`].
fn heartbeat_target(url: &str, exit: ExitCode) -> String {
    if matches!(exit, ExitCode::Healthy | ExitCode::Restarted) {
        return url.to_string();
    }
    let (base, query) = match url.find(['?', '#']) {
        Some(at) => url.split_at(at),
        None => (url, ""),
    };
    format!("{}/fail{query}", base.trim_end_matches('/'))
}

/// Logs each failure as `notify_failed`, or says it on stderr when the run has no log.
fn report(failures: Vec<Failure>, logger: Option<&mut Logger>, cfg: &NotifyConfig) {
    let events: Vec<Event> = failures.into_iter().map(|f| failed_event(f, cfg)).collect();
    match logger {
        Some(logger) => events.iter().for_each(|e| logger.emit(e)),
        None => events
            .iter()
            .for_each(|e| eprintln!("watchdog: {}", e.line())),
    }
}

fn failed_event(failure: Failure, cfg: &NotifyConfig) -> Event {
    let what = match (&failure.notified, failure.notifier) {
        (Some(event), notifier) => format!("notify.{} did not send {event}", notifier.as_str()),
        (None, _) => "notify.heartbeat_url was not pinged".to_string(),
    };
    let message = format!(
        "{what}: {} (the run's exit code is unchanged; each notifier has notify.timeout \
         = {})",
        failure.why,
        format_duration(cfg.timeout)
    );
    let event = Event::new(Level::Warning, "notify_failed", message)
        .with("notifier", failure.notifier.as_str());
    match failure.notified {
        Some(notified) => event.with("notified", notified),
        None => event,
    }
}

/// This machine's name, for the `host` field and the `text` line: several watchdogs
/// may notify one channel.
fn hostname() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname(3) writes at most `buffer.len()` bytes into our own buffer.
    let status = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if status != 0 {
        return "unknown".to_string();
    }
    // POSIX leaves the NUL out when the name is cut: the buffer's end bounds it then.
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

#[cfg(test)]
mod tests;
