//! What `[notify]` accepts (docs/CONFIG.md, "[notify]"): the event names that may
//! notify, and the form of the webhook and heartbeat URLs.

use super::url::{split_authority, strip_scheme};

/// The log events (docs/REPORT.md, "Log events") an operator may be notified of. Left
/// out: `healthy` (every minute: that is what `heartbeat_url` is for) and
/// `notify_failed` (it is about the notifiers themselves; it goes to the log).
/// `src/notify.rs` checks this list against the events the log documents.
pub const EVENTS: [&str; 9] = [
    "restarted",
    "restart_failed",
    "orphan",
    "suppressed",
    "restart",
    "start",
    "unhealthy",
    "warning",
    "incident",
];

/// What notifies unless the file says otherwise: what the watchdog did, and the
/// crash-loop guard giving up.
pub const DEFAULT_EVENTS: [&str; 4] = ["restarted", "restart_failed", "orphan", "suppressed"];

/// The expected form of `notify.webhook` and `notify.heartbeat_url`.
pub const URL_FORM: &str = "a URL of the form http[s]://host[:port][/path]";

/// Checks a notifier URL: `http` or `https`, a valid host and port, no spaces. It is
/// only ever requested, never handed to a shell.
pub fn check_url(url: &str) -> Result<(), String> {
    let (rest, https) =
        strip_scheme(url).map_err(|_| format!("expected {URL_FORM}, found {url:?}"))?;
    if let Some(bad) = rest.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{url:?} contains {bad:?}: expected {URL_FORM}, with no spaces"
        ));
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    split_authority(url, authority, if https { 443 } else { 80 })
        .map(|_| ())
        .map_err(|e| e.replace(super::url::URL_FORM, URL_FORM))
}

/// Checks one name of `notify.events`.
pub fn check_event(name: &str) -> Result<(), String> {
    if EVENTS.contains(&name) {
        return Ok(());
    }
    let why = match name {
        "healthy" => " (a healthy run pings notify.heartbeat_url instead)",
        "notify_failed" => " (a notifier that fails is logged, never notified)",
        _ => "",
    };
    Err(format!(
        "unknown notify event {name:?}{why}: expected one of {}",
        EVENTS
            .iter()
            .map(|e| format!("{e:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifier_urls_are_http_or_https_with_a_host() {
        for good in [
            "https://hc-ping.com/5c2e0f0a-1111-2222-3333-444455556666",
            "http://127.0.0.1:9000/hook",
            "HTTPS://ntfy.sh/my-topic",
            "http://[::1]:8080",
        ] {
            assert_eq!(check_url(good), Ok(()), "{good}");
        }
        for (bad, needle) in [
            ("ftp://host/", "http[s]://host"),
            ("ntfy.sh/topic", "http[s]://host"),
            ("https://", "has no host"),
            ("https://host:0/", "not a TCP port"),
            ("https://ho st/", "no spaces"),
            ("https://user:pw@host/", "user names"),
        ] {
            let err = check_url(bad).expect_err(bad);
            assert!(err.contains(needle), "{bad}: {err}");
            assert!(!err.contains("form http://host"), "{bad}: {err}");
        }
    }

    #[test]
    fn event_names_outside_the_list_are_refused_with_the_list() {
        assert_eq!(check_event("restarted"), Ok(()));
        let err = check_event("restartd").unwrap_err();
        assert!(err.contains("\"restart_failed\""), "{err}");
        assert!(
            check_event("healthy")
                .unwrap_err()
                .contains("heartbeat_url")
        );
        assert!(check_event("notify_failed").is_err());
        for name in DEFAULT_EVENTS {
            assert_eq!(check_event(name), Ok(()));
        }
    }
}
