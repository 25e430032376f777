//! The health probe (docs/DESIGN.md, "Health"): bounded HTTP(S) GETs against
//! `health.url`. TLS settings and TLS errors live in `tls.rs` beside this file.

pub mod tls;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout, time};

use crate::config::HealthConfig;
use crate::config::tls::CaFileError;
use crate::deadline::Deadline;
use crate::units::format_duration;

/// A body larger than this fails the attempt (docs/DESIGN.md, "Health"): a health endpoint
/// that sends megabytes is broken, and reading it would cost the watchdog memory.
const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// One GET of the health URL.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Attempt {
    pub ok: bool,
    pub status: Option<u16>,
    pub latency_ms: Option<u64>,
    /// Why the attempt failed, in words an operator can act on.
    pub error: Option<String>,
    /// The server answered the TLS handshake and its answer (the certificate, or plain
    /// HTTP) is what failed: a restart would not change it.
    #[serde(skip)]
    pub tls_refused: bool,
}

/// The outcome of all attempts: healthy as soon as one attempt passes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HealthResult {
    pub ok: bool,
    /// From the last attempt made.
    pub status: Option<u16>,
    pub latency_ms: Option<u64>,
    pub error: Option<String>,
    pub attempts: Vec<Attempt>,
    /// The body of the passing attempt parsed as JSON, when it was JSON.
    #[serde(skip)]
    pub json: Option<serde_json::Value>,
    /// Every attempt failed in TLS after the server answered (see `Attempt`): the
    /// decision does not restart for it (src/decide.rs, `Suppression::TlsRefused`).
    #[serde(skip)]
    pub tls_refused: bool,
}

pub struct Prober {
    cfg: HealthConfig,
    agent: ureq::Agent,
}

impl Prober {
    /// Builds the one HTTP agent used for every attempt. The proxy setting is fixed here:
    /// ureq's default reads `HTTP_PROXY`/`ALL_PROXY` when its config is built, so the
    /// environment at construction time is the one that must be (and is) ignored.
    ///
    /// Fails only when `health.ca_file` can no longer be used (it was checked when the
    /// configuration was loaded): a configuration error, exit 2, never a failed probe
    /// that could restart a working server.
    pub fn new(cfg: &HealthConfig) -> Result<Self, CaFileError> {
        Ok(Prober {
            cfg: cfg.clone(),
            agent: build_agent(cfg.timeout, tls::config(cfg)?),
        })
    }

    /// Up to `attempts` GETs, `interval` apart, stopping at the first that passes;
    /// each attempt and pause also ends at the run's `deadline`.
    pub fn check(&self, deadline: Deadline) -> HealthResult {
        let mut attempts = Vec::new();
        let mut json = None;
        let first = Instant::now();
        // `attempts` is validated as >= 1 by the config; max(1) keeps a zero from
        // producing a result with no attempt at all.
        let count = self.cfg.attempts.max(1);
        for n in 0..count {
            if n > 0 {
                let pause = pause_before(n, count, &self.cfg, first.elapsed());
                std::thread::sleep(deadline.cap(pause));
            }
            if n > 0 && deadline.passed() {
                break;
            }
            // Never a zero timeout: an attempt must end, not run unbounded.
            let timeout = deadline.cap(self.cfg.timeout).max(Duration::from_millis(1));
            let (attempt, body_json) = self.attempt(timeout);
            let passed = attempt.ok;
            attempts.push(attempt);
            if passed {
                json = body_json;
                break;
            }
        }
        summarize(attempts, json)
    }

    /// One GET bounded by `timeout` as a whole (connect, headers and body).
    pub fn attempt(&self, timeout: Duration) -> (Attempt, Option<serde_json::Value>) {
        let started = Instant::now();
        let outcome = self.get(timeout);
        let latency_ms = Some(elapsed_ms(started));
        match outcome {
            Ok(body) => {
                let json = serde_json::from_slice(&body.bytes).ok();
                (
                    Attempt {
                        ok: true,
                        status: Some(body.status),
                        latency_ms,
                        error: None,
                        tls_refused: false,
                    },
                    json,
                )
            }
            Err(failure) => {
                // A latency only means something when the server answered.
                let latency_ms = failure.status.and(latency_ms);
                let attempt = Attempt {
                    ok: false,
                    status: failure.status,
                    latency_ms,
                    error: Some(failure.why),
                    tls_refused: failure.tls_refused,
                };
                (attempt, None)
            }
        }
    }

    /// The GET and every check on its answer; `Ok` only for a passing attempt.
    fn get(&self, timeout: Duration) -> Result<PassingBody, Failure> {
        let request = self
            .agent
            .get(&self.cfg.url)
            .config()
            .timeout_global(Some(timeout))
            .build();
        let mut response = request
            .call()
            .map_err(|e| Failure::no_answer(&e, timeout, &self.cfg))?;
        let status = response.status().as_u16();
        if !self.cfg.expect_status.contains(&status) {
            return Err(Failure::answered(
                status,
                unexpected_status(status, &self.cfg.expect_status),
            ));
        }
        // The global timeout keeps running while the body is read, so a server that
        // dribbles its body still cannot stretch the attempt.
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_vec()
            .map_err(|e| Failure::answered(status, describe_body_error(&e, timeout)))?;
        if let Some(expected) = &self.cfg.expect_body {
            // Lossy: a stray invalid byte elsewhere in the body must not hide the text.
            if !String::from_utf8_lossy(&bytes).contains(expected.as_str()) {
                return Err(Failure::answered(
                    status,
                    format!("body does not contain `{expected}`"),
                ));
            }
        }
        Ok(PassingBody { status, bytes })
    }
}

struct PassingBody {
    status: u16,
    bytes: Vec<u8>,
}

struct Failure {
    /// Set when the server sent a status line before the attempt failed.
    status: Option<u16>,
    why: String,
    tls_refused: bool,
}

impl Failure {
    fn no_answer(error: &ureq::Error, timeout: Duration, cfg: &HealthConfig) -> Self {
        let host = cfg
            .url
            .parse::<Uri>()
            .ok()
            .and_then(|u| u.host().map(str::to_owned))
            .unwrap_or_default();
        match tls::describe(error, cfg, &host) {
            Some(tls) => Failure {
                status: None,
                why: tls.why,
                tls_refused: tls.answered,
            },
            None => Failure {
                status: None,
                why: describe_error(error, timeout),
                tls_refused: false,
            },
        }
    }
    fn answered(status: u16, why: String) -> Self {
        Failure {
            status: Some(status),
            why,
            tls_refused: false,
        }
    }
}

pub(crate) fn build_agent(timeout: Duration, tls: ureq::tls::TlsConfig) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        // A 503 is a reading (the server says it is degraded), not a transport error.
        .http_status_as_error(false)
        // A redirect is reported as its status; following it would probe another URL.
        .max_redirects(0)
        // Never through a proxy (docs/DESIGN.md, "Invariants"); ureq's default proxy from
        // the environment has no loopback exemption and would send 127.0.0.1 to the proxy.
        .proxy(None)
        // A fresh connection per attempt: a wedged accept loop
        // (docs/DESIGN.md, "Why it exists", failure 3) only shows on connect, and a pooled
        // keep-alive connection would hide it.
        .max_idle_connections(0)
        .max_idle_connections_per_host(0)
        .user_agent(concat!("watchdog/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls)
        .build();
    ureq::Agent::with_parts(config, DefaultConnector::new(), ThreadlessResolver)
}

/// ureq's own resolver starts a thread for every lookup that has a timeout, an IP
/// literal included, with `std::thread::spawn`: out of processes (`RLIMIT_NPROC`, when a
/// thread-leaking server most needs a restart) that aborts the run. This one answers an
/// IP literal (the usual `http://127.0.0.1:PORT/...`) at once, without a thread; a name
/// is looked up on a thread so that the timeout holds, or, when no thread can start,
/// on the calling thread, bounded then only by the failsafe (src/deadline/failsafe.rs).
#[derive(Debug)]
struct ThreadlessResolver;

impl Resolver for ThreadlessResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        if let Some(addr) = literal_address(uri) {
            let mut found = self.empty();
            for wanted in config.ip_family().keep_wanted(std::iter::once(addr)) {
                found.push(wanted);
            }
            return if found.is_empty() {
                Err(ureq::Error::HostNotFound)
            } else {
                Ok(found)
            };
        }
        // DefaultResolver without a timeout looks up on the calling thread.
        let here = NextTimeout {
            after: time::Duration::NotHappening,
            ..timeout
        };
        if timeout.after.is_not_happening() {
            return DefaultResolver::default().resolve(uri, config, here);
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let (their_uri, their_config) = (uri.clone(), config.clone());
        let started = std::thread::Builder::new()
            .name("resolver".into())
            .spawn(move || {
                let _ =
                    tx.send(DefaultResolver::default().resolve(&their_uri, &their_config, here));
            });
        if started.is_err() {
            return DefaultResolver::default().resolve(uri, config, here);
        }
        match rx.recv_timeout(*timeout.after) {
            Ok(resolved) => resolved,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                Err(ureq::Error::Timeout(timeout.reason))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(ureq::Error::HostNotFound),
        }
    }
}

/// The address of a URL whose host is an IP literal (`127.0.0.1`, `[::1]`), with its
/// port or its scheme's (80, 443); `None` for a name or another scheme.
fn literal_address(uri: &Uri) -> Option<SocketAddr> {
    let host = uri.host()?;
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = bare.parse().ok()?;
    let port = match (uri.port_u16(), uri.scheme_str()) {
        (Some(port), _) => port,
        (None, Some(scheme)) if scheme.eq_ignore_ascii_case("http") => 80,
        (None, Some(scheme)) if scheme.eq_ignore_ascii_case("https") => 443,
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

fn summarize(attempts: Vec<Attempt>, json: Option<serde_json::Value>) -> HealthResult {
    let last = attempts.last();
    HealthResult {
        ok: last.is_some_and(|a| a.ok),
        status: last.and_then(|a| a.status),
        latency_ms: last.and_then(|a| a.latency_ms),
        error: last.and_then(|a| a.error.clone()),
        json,
        tls_refused: !attempts.is_empty() && attempts.iter().all(|a| a.tls_refused),
        attempts,
    }
}

/// The pause before attempt `n` (counted from 0; `n` ≥ 1) of `attempts`, `since_first`
/// after the first began: `health.interval`, except before the last attempt, which is
/// made no sooner than `attempts × interval` after the first. Failures that come at once
/// (a 503, a refused connection) would otherwise span only `(attempts − 1) × interval`,
/// and a fault a little longer than that, but shorter than `attempts × interval`, would
/// fail every attempt and cause a restart (found by bench/ttr; docs/RELIABILITY.md).
/// Never later than attempts that each waited their whole timeout would have made it,
/// so the run's bound (src/deadline.rs) is unchanged.
fn pause_before(n: u32, attempts: u32, h: &HealthConfig, since_first: Duration) -> Duration {
    if n + 1 < attempts {
        return h.interval;
    }
    let hung = h
        .timeout
        .saturating_add(h.interval)
        .saturating_mul(attempts.saturating_sub(1));
    let span = h.interval.saturating_mul(attempts).min(hung);
    span.saturating_sub(since_first).max(h.interval)
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn unexpected_status(status: u16, expected: &[u16]) -> String {
    let expected: Vec<String> = expected.iter().map(u16::to_string).collect();
    format!("status {status}, expected {}", expected.join(" or "))
}

fn describe_body_error(error: &ureq::Error, timeout: Duration) -> String {
    match error {
        ureq::Error::BodyExceedsLimit(_) => "body larger than 1 MiB".to_string(),
        other => format!("reading the body: {}", describe_error(other, timeout)),
    }
}

/// Short words for a failed GET. The common cases get fixed phrases so that logs and
/// reports can be grepped; the rest keep ureq's text.
fn describe_error(error: &ureq::Error, timeout: Duration) -> String {
    match error {
        ureq::Error::Timeout(_) => timed_out(timeout),
        ureq::Error::Io(io) => describe_io_error(io, timeout),
        ureq::Error::HostNotFound => "host not found".to_string(),
        ureq::Error::ConnectionFailed => "connection failed".to_string(),
        ureq::Error::BadUri(uri) => format!("invalid URL: {uri}"),
        ureq::Error::Protocol(e) => format!("bad HTTP response: {e}"),
        other => other.to_string(),
    }
}

fn describe_io_error(io: &std::io::Error, timeout: Duration) -> String {
    use std::io::ErrorKind;
    match io.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_string(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => "connection reset".to_string(),
        ErrorKind::UnexpectedEof | ErrorKind::BrokenPipe => {
            "connection closed before a complete response".to_string()
        }
        ErrorKind::TimedOut | ErrorKind::WouldBlock => timed_out(timeout),
        _ => format!("connection failed: {io}"),
    }
}

/// The timeout in the form the configuration file uses (`5s`, `500ms`, `1500ms`), so it
/// can be found as written in `health.timeout`.
fn timed_out(timeout: Duration) -> String {
    format!("timed out after {}", format_duration(timeout))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::thread;

    fn config(url: String, timeout: Duration) -> HealthConfig {
        HealthConfig {
            url,
            timeout,
            attempts: 1,
            interval: Duration::ZERO,
            expect_status: vec![200],
            expect_body: None,
            insecure_tls: false,
            ca_file: None,
            busy_fields: Vec::new(),
        }
    }

    #[test]
    fn ip_literals_are_answered_without_a_lookup() {
        let table = [
            ("http://127.0.0.1:8787/health", Some("127.0.0.1:8787")),
            ("http://[::1]:9000/", Some("[::1]:9000")),
            ("http://10.1.2.3/x", Some("10.1.2.3:80")),
            ("https://10.1.2.3/x", Some("10.1.2.3:443")),
            ("https://[::1]:8443/", Some("[::1]:8443")),
            ("http://localhost:8787/health", None),
            ("http://example.com/", None),
        ];
        for (url, expected) in table {
            let uri: Uri = url.parse().unwrap();
            let found = literal_address(&uri).map(|a| a.to_string());
            assert_eq!(found.as_deref(), expected, "{url}");
        }
        let config = ureq::config::Config::default();
        let timeout = NextTimeout {
            after: time::Duration::from_secs(5),
            ..NextTimeout::default()
        };
        let uri: Uri = "http://127.0.0.1:8787/".parse().unwrap();
        let found = ThreadlessResolver.resolve(&uri, &config, timeout).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].to_string(), "127.0.0.1:8787");
        // A name is still looked up.
        let uri: Uri = "http://localhost:8787/".parse().unwrap();
        let found = ThreadlessResolver.resolve(&uri, &config, timeout).unwrap();
        assert!(
            found
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 8787)
        );
    }

    /// Serves each incoming connection with the next handler, in a background thread.
    /// Returns the URL of `/health` on it.
    fn serve(handlers: Vec<Box<dyn FnOnce(TcpStream) + Send>>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            for handler in handlers {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                handler(stream);
            }
        });
        format!("http://127.0.0.1:{port}/health")
    }

    fn read_request(stream: &mut TcpStream) {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    }

    fn respond(status: &'static str, body: &'static [u8]) -> Box<dyn FnOnce(TcpStream) + Send> {
        Box::new(move |mut stream| {
            read_request(&mut stream);
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body);
        })
    }

    fn check_with(url: String, adjust: impl FnOnce(&mut HealthConfig)) -> HealthResult {
        let mut cfg = config(url, Duration::from_secs(2));
        adjust(&mut cfg);
        Prober::new(&cfg)
            .expect("no ca_file")
            .check(Deadline::after(Duration::from_secs(60)))
    }

    const OK_BODY: &[u8] = br#"{"status": "ok", "sessions": 2, "uptime_seconds": 12.5}"#;

    #[test]
    fn ok_200_with_json() {
        let url = serve(vec![respond("200 OK", OK_BODY)]);
        let result = check_with(url, |c| c.expect_body = Some(r#""status": "ok""#.into()));
        assert!(result.ok, "{result:?}");
        assert_eq!(result.status, Some(200));
        assert!(result.latency_ms.is_some());
        assert_eq!(result.error, None);
        assert_eq!(result.attempts.len(), 1);
        assert_eq!(result.json.unwrap()["sessions"], 2);
    }

    #[test]
    fn non_json_body_passes_without_json() {
        let url = serve(vec![respond("200 OK", b"fine")]);
        let result = check_with(url, |_| {});
        assert!(result.ok);
        assert_eq!(result.json, None);
    }

    #[test]
    fn status_503_fails() {
        let url = serve(vec![respond(
            "503 Service Unavailable",
            br#"{"status": "degraded"}"#,
        )]);
        let result = check_with(url, |_| {});
        assert!(!result.ok);
        assert_eq!(result.status, Some(503));
        assert!(result.latency_ms.is_some());
        assert_eq!(result.error.as_deref(), Some("status 503, expected 200"));
        assert_eq!(result.json, None);
    }

    #[test]
    fn several_expected_statuses_are_listed() {
        let url = serve(vec![respond("500 Internal Server Error", b"")]);
        let result = check_with(url, |c| c.expect_status = vec![200, 204]);
        assert_eq!(
            result.error.as_deref(),
            Some("status 500, expected 200 or 204")
        );
    }

    #[test]
    fn redirect_is_a_status_not_followed() {
        let url = serve(vec![Box::new(|mut stream: TcpStream| {
            read_request(&mut stream);
            let _ = stream.write_all(
                b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n\r\n",
            );
        })]);
        let result = check_with(url, |_| {});
        assert_eq!(result.error.as_deref(), Some("status 302, expected 200"));
    }

    #[test]
    fn wrong_body_names_the_missing_text() {
        let url = serve(vec![respond("200 OK", br#"{"status": "degraded"}"#)]);
        let result = check_with(url, |c| c.expect_body = Some(r#""status": "ok""#.into()));
        assert!(!result.ok);
        assert_eq!(result.status, Some(200));
        assert_eq!(
            result.error.as_deref(),
            Some(r#"body does not contain `"status": "ok"`"#)
        );
    }

    #[test]
    fn non_utf8_body_still_matches_expected_text() {
        let url = serve(vec![respond("200 OK", b"\xff\xfe status: ok \xc3")]);
        let result = check_with(url, |c| c.expect_body = Some("status: ok".into()));
        assert!(result.ok, "{result:?}");
    }

    /// The run's deadline ends the attempts early: the first one gets what is left of
    /// it, and no attempt starts after it.
    #[test]
    fn attempts_stop_at_the_runs_deadline() {
        let hang = || -> Box<dyn FnOnce(TcpStream) + Send> {
            Box::new(|stream: TcpStream| {
                thread::sleep(Duration::from_secs(10));
                drop(stream);
            })
        };
        let url = serve(vec![hang(), hang(), hang()]);
        let mut cfg = config(url, Duration::from_secs(5));
        cfg.attempts = 3;
        cfg.interval = Duration::ZERO;
        let result = Prober::new(&cfg)
            .expect("no ca_file")
            .check(Deadline::after(Duration::from_millis(500)));
        assert!(!result.ok);
        assert_eq!(result.attempts.len(), 1, "{result:?}");
        let error = result.error.unwrap_or_default();
        assert!(
            error.starts_with("timed out after") && !error.contains("5s"),
            "{error}"
        );
    }

    #[test]
    fn hang_after_accept_is_bounded_by_timeout() {
        let url = serve(vec![Box::new(|stream: TcpStream| {
            thread::sleep(Duration::from_secs(30));
            drop(stream);
        })]);
        let started = Instant::now();
        let result = check_with(url, |c| c.timeout = Duration::from_millis(300));
        let took = started.elapsed();
        assert!(!result.ok);
        assert_eq!(result.error.as_deref(), Some("timed out after 300ms"));
        assert_eq!(result.status, None);
        assert_eq!(result.latency_ms, None);
        assert!(took < Duration::from_millis(1000), "took {took:?}");
    }

    #[test]
    fn dribbled_body_is_bounded_by_timeout() {
        let url = serve(vec![Box::new(|mut stream: TcpStream| {
            read_request(&mut stream);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
            for _ in 0..1000 {
                if stream.write_all(b"x").is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
        })]);
        let started = Instant::now();
        let result = check_with(url, |c| c.timeout = Duration::from_millis(500));
        let took = started.elapsed();
        assert!(!result.ok);
        assert_eq!(result.status, Some(200));
        assert!(
            result
                .error
                .as_deref()
                .is_some_and(|e| e.contains("timed out after 500ms")),
            "{result:?}"
        );
        assert!(took < Duration::from_millis(1200), "took {took:?}");
    }

    #[test]
    fn dribbled_headers_are_bounded_by_timeout() {
        let url = serve(vec![Box::new(|mut stream: TcpStream| {
            read_request(&mut stream);
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: "
                .iter()
                .chain([b'a'; 1000].iter())
            {
                if stream.write_all(&[*byte]).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
        })]);
        let started = Instant::now();
        let result = check_with(url, |c| c.timeout = Duration::from_millis(500));
        let took = started.elapsed();
        assert_eq!(result.error.as_deref(), Some("timed out after 500ms"));
        assert!(took < Duration::from_millis(1200), "took {took:?}");
    }

    #[test]
    fn body_over_one_mib_is_rejected() {
        static BIG: [u8; 2 * 1024 * 1024] = [b'a'; 2 * 1024 * 1024];
        let url = serve(vec![respond("200 OK", &BIG)]);
        let result = check_with(url, |_| {});
        assert!(!result.ok);
        assert_eq!(result.status, Some(200));
        assert_eq!(result.error.as_deref(), Some("body larger than 1 MiB"));
    }

    #[test]
    fn chunked_body_over_one_mib_is_rejected() {
        let url = serve(vec![Box::new(|mut stream: TcpStream| {
            read_request(&mut stream);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            let chunk = vec![b'a'; 64 * 1024];
            for _ in 0..40 {
                let _ = stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes());
                let _ = stream.write_all(&chunk);
                if stream.write_all(b"\r\n").is_err() {
                    return;
                }
            }
            let _ = stream.write_all(b"0\r\n\r\n");
        })]);
        let result = check_with(url, |_| {});
        assert_eq!(result.error.as_deref(), Some("body larger than 1 MiB"));
    }

    #[test]
    fn connection_refused() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let result = check_with(format!("http://127.0.0.1:{port}/health"), |_| {});
        assert!(!result.ok);
        assert_eq!(result.error.as_deref(), Some("connection refused"));
        assert_eq!(result.status, None);
    }

    #[test]
    fn connection_reset() {
        use std::os::fd::AsRawFd;
        let url = serve(vec![Box::new(|mut stream: TcpStream| {
            read_request(&mut stream);
            // SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: a valid socket and a properly sized option value.
            unsafe {
                libc::setsockopt(
                    stream.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&raw const linger).cast(),
                    size_of::<libc::linger>() as libc::socklen_t,
                );
            }
            drop(stream);
        })]);
        let result = check_with(url, |_| {});
        assert!(!result.ok);
        assert_eq!(result.error.as_deref(), Some("connection reset"));
    }

    #[test]
    fn closed_without_answer() {
        let url = serve(vec![Box::new(|mut stream: TcpStream| {
            read_request(&mut stream);
            drop(stream);
        })]);
        let result = check_with(url, |_| {});
        assert!(!result.ok);
        assert_eq!(
            result.error.as_deref(),
            Some("connection closed before a complete response")
        );
    }

    /// An https URL against a plain-HTTP server (Hermes WebUI falls back to HTTP when
    /// its certificate does not load): said as such, and marked as an answer a restart
    /// would not change.
    #[test]
    fn https_against_plain_http_says_so() {
        // Answered at once: a server that waits for a request line may never see one in
        // a ClientHello, and then it is a hang.
        let url = serve(vec![Box::new(|mut stream: TcpStream| {
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            thread::sleep(Duration::from_millis(500));
        })]);
        let result = check_with(url.replace("http://", "https://"), |_| {});
        assert!(!result.ok);
        assert_eq!(
            result.error.as_deref(),
            Some(
                "no TLS answer: the server does not speak TLS on this port (serving plain \
                 HTTP? then write http:// in health.url)"
            )
        );
        assert!(result.tls_refused, "{result:?}");
    }

    /// A server that accepts and never answers the handshake is a hang like any other
    /// (restartable), not a TLS refusal.
    #[test]
    fn https_hang_is_a_timeout() {
        let url = serve(vec![Box::new(|stream: TcpStream| {
            thread::sleep(Duration::from_secs(3));
            drop(stream);
        })]);
        let result = check_with(url.replace("http://", "https://"), |c| {
            c.timeout = Duration::from_millis(300)
        });
        assert_eq!(result.error.as_deref(), Some("timed out after 300ms"));
        assert!(!result.tls_refused);
    }

    #[test]
    fn garbage_url_is_an_error_not_a_panic() {
        let result = check_with("not a url".into(), |_| {});
        assert!(!result.ok);
        assert!(result.error.is_some());
    }

    #[test]
    fn third_attempt_passes_after_two_failures() {
        let url = serve(vec![
            respond("503 Service Unavailable", b""),
            respond("503 Service Unavailable", b""),
            respond("200 OK", OK_BODY),
        ]);
        let result = check_with(url, |c| {
            c.attempts = 3;
            c.interval = Duration::from_millis(50);
        });
        assert!(result.ok, "{result:?}");
        assert_eq!(result.attempts.len(), 3);
        assert_eq!(
            result.attempts[0].error.as_deref(),
            Some("status 503, expected 200")
        );
        assert!(!result.attempts[1].ok);
        assert!(result.attempts[2].ok);
        assert_eq!(result.status, Some(200));
        assert_eq!(result.error, None);
        assert!(result.json.is_some());
    }

    /// The last attempt waits until the attempts span `attempts × interval` when the
    /// failures came at once, and no longer than hung attempts would have taken.
    #[test]
    fn the_last_attempt_comes_no_sooner_than_attempts_times_interval() {
        let mut h = crate::config::defaults(None).health;
        h.timeout = Duration::from_secs(2);
        h.interval = Duration::from_secs(1);
        let ms = Duration::from_millis;
        // Fast failures: 1 s, then up to 3 s after the first.
        assert_eq!(pause_before(1, 3, &h, ms(10)), ms(1000));
        assert_eq!(pause_before(2, 3, &h, ms(1020)), ms(1980));
        // Hung attempts (2 s each): the usual interval, as before.
        assert_eq!(pause_before(2, 3, &h, ms(5000)), ms(1000));
        // Two attempts: the second 2 s after the first.
        assert_eq!(pause_before(1, 2, &h, ms(5)), ms(1995));
        // A timeout short beside the interval: never later than hung attempts would be
        // (2 × (0.1 + 10) = 20.2 s, not 3 × 10 = 30 s).
        h.timeout = ms(100);
        h.interval = Duration::from_secs(10);
        assert_eq!(pause_before(2, 3, &h, ms(10_050)), ms(10_150));
    }

    #[test]
    fn stops_at_first_pass() {
        let url = serve(vec![respond("200 OK", OK_BODY)]);
        let result = check_with(url, |c| c.attempts = 3);
        assert!(result.ok);
        assert_eq!(result.attempts.len(), 1);
    }

    #[test]
    fn all_attempts_failing_reports_the_last() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let result = check_with(format!("http://127.0.0.1:{port}/"), |c| {
            c.attempts = 2;
            c.interval = Duration::from_millis(10);
        });
        assert!(!result.ok);
        assert_eq!(result.attempts.len(), 2);
        assert_eq!(result.error.as_deref(), Some("connection refused"));
    }

    /// Environment variables are process-wide and tests run in parallel threads, so this
    /// test sets the proxy variables only in a child copy of the test binary, which runs
    /// `proxy_env_child` alone.
    #[test]
    fn proxy_environment_is_ignored() {
        let exe = std::env::current_exe().unwrap();
        let output = std::process::Command::new(exe)
            .args([
                "--exact",
                "probe::health::tests::proxy_env_child",
                "--test-threads=1",
            ])
            .env("WATCHDOG_PROXY_CHILD", "1")
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("http_proxy", "http://127.0.0.1:9")
            .env("ALL_PROXY", "http://127.0.0.1:9")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("1 passed"), "{stdout}");
    }

    #[test]
    fn proxy_env_child() {
        if std::env::var_os("WATCHDOG_PROXY_CHILD").is_none() {
            return; // only meaningful when run by proxy_environment_is_ignored
        }
        let url = serve(vec![respond("200 OK", OK_BODY)]);
        let result = check_with(url, |_| {});
        assert!(result.ok, "{result:?}");
    }

    #[test]
    fn durations_print_like_the_config() {
        assert_eq!(timed_out(Duration::from_secs(5)), "timed out after 5s");
        assert_eq!(
            timed_out(Duration::from_millis(500)),
            "timed out after 500ms"
        );
        assert_eq!(
            timed_out(Duration::from_millis(1500)),
            "timed out after 1500ms"
        );
        let printed = format_duration(Duration::from_millis(1500));
        assert_eq!(
            crate::units::parse_duration(&printed),
            Ok(Duration::from_millis(1500))
        );
    }
}
