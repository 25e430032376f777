//! A minimal HTTP/1.1 client for the tests ([`http_get`]: no proxy, bounded as a whole,
//! the kind of failure in its error), whether a /health answers ok, and a port nothing
//! listens on.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

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
