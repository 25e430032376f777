//! The health URL: `http[s]://host[:port][/path]`, checked when the configuration is
//! read so that a typo is a configuration error (exit 2), not a failed health check that
//! triggers a restart.

use std::net::Ipv6Addr;

/// The expected form, quoted in every URL error.
pub const URL_FORM: &str = "a URL of the form http[s]://host[:port][/path]";

/// The parts of a valid health URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// A host name, an IPv4 address, or an IPv6 address without its brackets.
    pub host: String,
    /// The explicit port, or the scheme's: 80, or 443 for https.
    pub port: u16,
    /// The path with any query, never empty (`"/"` when the URL has none).
    pub path: String,
    /// `https://`: the probe speaks TLS (src/probe/health/tls.rs).
    pub https: bool,
}

/// Parses and checks a health URL, `http://` or `https://` (Hermes WebUI serves HTTPS on
/// its one port when given a certificate).
pub fn parse_http_url(url: &str) -> Result<HttpUrl, String> {
    let (rest, https) = strip_scheme(url)?;
    if let Some(bad) = rest.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{url:?} contains {bad:?}: expected {URL_FORM}, with no spaces"
        ));
    }
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let (host, port) = split_authority(url, authority, if https { 443 } else { 80 })?;
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('/') => p.to_owned(),
        p => format!("/{p}"),
    };
    Ok(HttpUrl {
        host,
        port,
        path,
        https,
    })
}

/// The rest of the URL after its scheme, and whether that scheme is https.
pub(super) fn strip_scheme(url: &str) -> Result<(&str, bool), String> {
    let has = |scheme: &str| {
        url.get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
    };
    if has("http://") {
        Ok((&url[7..], false))
    } else if has("https://") {
        Ok((&url[8..], true))
    } else {
        Err(format!("expected {URL_FORM}, found {url:?}"))
    }
}

/// Splits `host[:port]` or `[v6]:port` and checks both parts; `default_port` when the
/// URL names none.
pub(super) fn split_authority(
    url: &str,
    authority: &str,
    default_port: u16,
) -> Result<(String, u16), String> {
    if authority.contains('@') {
        return Err(format!(
            "{url:?}: user names and passwords are not supported: expected {URL_FORM}"
        ));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (inside, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("{url:?}: unclosed '[' in the host: expected {URL_FORM}"))?;
        if inside.parse::<Ipv6Addr>().is_err() {
            return Err(format!(
                "{url:?}: {inside:?} is not an IPv6 address: expected {URL_FORM}"
            ));
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| {
                format!("{url:?}: unexpected {p:?} after the host: expected {URL_FORM}")
            })?),
        };
        (inside, port)
    } else if authority.matches(':').count() > 1 {
        return Err(format!(
            "{url:?}: an IPv6 address must be written in brackets, \
             e.g. http://[::1]:8787/health: expected {URL_FORM}"
        ));
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if !authority.starts_with('[') {
        check_host_name(url, host)?;
    }
    let port = match port {
        None => default_port,
        Some(p) => parse_port(url, p)?,
    };
    Ok((host.to_owned(), port))
}

fn check_host_name(url: &str, host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err(format!("{url:?} has no host: expected {URL_FORM}"));
    }
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    match host.chars().find(|c| !valid(*c)) {
        Some(bad) => Err(format!(
            "{url:?}: {bad:?} is not allowed in a host name: expected {URL_FORM} \
             (IPv6 addresses in brackets, e.g. http://[::1]:8787/health)"
        )),
        None => Ok(()),
    }
}

fn parse_port(url: &str, port: &str) -> Result<u16, String> {
    let valid = !port.is_empty() && port.chars().all(|c| c.is_ascii_digit());
    match port.parse::<u16>() {
        Ok(p) if valid && p != 0 => Ok(p),
        _ => Err(format!(
            "{url:?}: port {port:?} is not a TCP port from 1 to 65535: expected {URL_FORM}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_urls() {
        let cases: &[(&str, &str, u16, &str)] = &[
            ("http://127.0.0.1:8787/health", "127.0.0.1", 8787, "/health"),
            ("http://localhost", "localhost", 80, "/"),
            ("HTTP://localhost:81", "localhost", 81, "/"),
            ("http://[::1]:8787/health", "::1", 8787, "/health"),
            ("http://[::1]/", "::1", 80, "/"),
            ("http://host/health?deep=1", "host", 80, "/health?deep=1"),
            ("http://host?deep=1", "host", 80, "/?deep=1"),
            ("http://my-host.local:65535/x", "my-host.local", 65535, "/x"),
            (
                "https://127.0.0.1:8787/health",
                "127.0.0.1",
                8787,
                "/health",
            ),
            (
                "HTTPS://mini.local/health?deep=1",
                "mini.local",
                443,
                "/health?deep=1",
            ),
            ("https://[::1]/", "::1", 443, "/"),
        ];
        for (url, host, port, path) in cases {
            let parsed = parse_http_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(parsed.host, *host, "{url}");
            assert_eq!(parsed.port, *port, "{url}");
            assert_eq!(parsed.path, *path, "{url}");
            assert_eq!(parsed.https, url.to_ascii_lowercase().starts_with("https"));
        }
    }

    #[test]
    fn invalid_urls() {
        let cases: &[(&str, &str)] = &[
            ("ftp://host/", "http[s]://host[:port][/path]"),
            ("127.0.0.1:8787", "http[s]://host[:port][/path]"),
            ("", "http[s]://host[:port][/path]"),
            ("https:/host/", "http[s]://host[:port][/path]"),
            ("https://", "no host"),
            ("https://host:0/", "not a TCP port"),
            ("http://", "no host"),
            ("http:///health", "no host"),
            ("http://host:0/", "not a TCP port"),
            ("http://host:65536/", "not a TCP port"),
            ("http://host:/", "not a TCP port"),
            ("http://host:+80/", "not a TCP port"),
            ("http://host:80:81/", "in brackets"),
            ("http://::1:8787/", "in brackets"),
            ("http://[::1/", "unclosed"),
            ("http://[nope]:80/", "not an IPv6 address"),
            ("http://[::1]x/", "after the host"),
            ("http://user@host/", "user names"),
            ("http://ho st/", "no spaces"),
            ("http://hö/", "not allowed in a host name"),
        ];
        for (url, needle) in cases {
            let err = parse_http_url(url).expect_err(url);
            assert!(err.contains(needle), "{url}: {err}");
        }
    }
}
