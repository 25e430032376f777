//! `health.ca_file` and `health.insecure_tls` (docs/CONFIG.md, "[health]"): the PEM
//! bundle read through src/safe_fs.rs, checked when the configuration is loaded (an
//! error there names the key's line), and the warnings `watchdog config` prints.
//!
//! The bundle decides which server the probe believes, so it is trusted like the
//! configuration itself (docs/SECURITY.md, "Who may write what"): a regular file owned
//! by the watchdog's user or root and writable by nobody else; a link is followed and
//! the file it reaches is the one judged.

use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;
use ureq::tls::{Certificate, PemItem};

use super::{Config, ConfigError, HealthConfig};
use crate::safe_fs::{self, SafeFsError};

/// A CA bundle larger than this is not one (the whole Mozilla set is about 250 KiB).
const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

/// Why `health.ca_file` cannot be used; the message names the file and the fix.
#[derive(Debug, thiserror::Error)]
#[error("health.ca_file {path:?}: {why}")]
pub struct CaFileError {
    pub path: String,
    pub why: String,
}

/// The certificates of `path`, a PEM bundle: at least one, each usable as a trust
/// anchor. Anything else in the file (a private key, text) is skipped.
pub fn read_ca_file(path: &Path, euid: u32) -> Result<Vec<Certificate<'static>>, CaFileError> {
    let error = |why: String| CaFileError {
        path: path.display().to_string(),
        why,
    };
    let bytes =
        safe_fs::read_trusted_following(path, MAX_CA_FILE_BYTES, euid).map_err(|e| match e {
            SafeFsError::Io { source, .. } => error(format!(
                "cannot read it ({source}): write the server's certificate there (Hermes \
                 WebUI's HERMES_WEBUI_TLS_CERT file), or set ca_file = \"\" to use the \
                 system's trust store"
            )),
            SafeFsError::Untrusted { why, .. } => error(format!(
                "refusing it: it {why}. Whoever can write it chooses which server the \
                 health check believes"
            )),
            other => error(format!("{}: expected a PEM file", strip_path(&other))),
        })?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&bytes) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(e) => {
                return Err(error(format!(
                    "not a readable PEM file ({e}): expected certificates between \
                     -----BEGIN CERTIFICATE----- and -----END CERTIFICATE-----"
                )));
            }
        }
    }
    if certs.is_empty() {
        return Err(error(
            "holds no certificate (no -----BEGIN CERTIFICATE----- block): expected a PEM \
             bundle such as the server's certificate file"
                .to_owned(),
        ));
    }
    // rustls would skip an unusable certificate without a word and then trust nothing:
    // say which one at load time instead.
    for (n, cert) in certs.iter().enumerate() {
        let mut store = rustls::RootCertStore::empty();
        if let Err(e) = store.add(cert.der().to_vec().into()) {
            return Err(error(format!(
                "certificate {} of {} cannot be used ({e}): expected X.509 certificates \
                 in PEM form",
                n + 1,
                certs.len()
            )));
        }
    }
    Ok(certs)
}

fn strip_path(e: &SafeFsError) -> String {
    match e {
        SafeFsError::NotRegular { kind, .. } => format!("it is {kind}, not a regular file"),
        SafeFsError::TooLarge { max, .. } => format!("it is larger than {max} bytes"),
        SafeFsError::Symlink { .. } => "it is a symbolic link".to_owned(),
        other => other.to_string(),
    }
}

/// Reads `health.ca_file` once at load so that a missing, foreign or non-PEM file is a
/// configuration error (exit 2) at the key's line, not a failed health check that
/// could restart a working server.
pub(super) fn check_ca_file(cfg: &Config, text: &str, origin: &Path) -> Result<(), ConfigError> {
    let Some(path) = &cfg.health.ca_file else {
        return Ok(());
    };
    if path.starts_with("~") {
        return Ok(()); // no home directory: `load_from` reports that instead
    }
    read_ca_file(path, safe_fs::own_euid())
        .map(drop)
        .map_err(|e| super::invalid(text, origin, ca_file_span(text), e.to_string()))
}

/// Where `ca_file` is written in `[health]`, found by a second, lenient parse of the
/// text (the first has already accepted it).
fn ca_file_span(text: &str) -> Option<std::ops::Range<usize>> {
    #[derive(Deserialize)]
    struct Doc {
        health: Option<Health>,
    }
    #[derive(Deserialize)]
    struct Health {
        ca_file: Option<Spanned<toml::Value>>,
    }
    let doc: Doc = toml::from_str(text).ok()?;
    Some(doc.health?.ca_file?.span())
}

/// What `watchdog config` warns about in `[health]`'s TLS keys: settings that do
/// nothing, and skipped verification of a server that is not on this machine.
pub fn warnings(cfg: &Config) -> Vec<String> {
    let h = &cfg.health;
    let Ok(url) = cfg.health_url_parts() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if !url.https {
        if h.insecure_tls || h.ca_file.is_some() {
            out.push(format!(
                "health.insecure_tls and health.ca_file apply to https:// URLs only; \
                 health.url is {:?}",
                h.url
            ));
        }
        return out;
    }
    if h.insecure_tls && !is_loopback(&url.host) {
        out.push(format!(
            "health.insecure_tls = true skips certificate verification for {}, which is \
             not a loopback address: anything on the way there can answer for the server \
             (and so keep a dead one running or get a live one restarted); set \
             health.ca_file to its certificate instead",
            url.host
        ));
    }
    if h.insecure_tls && h.ca_file.is_some() {
        out.push(
            "health.ca_file is not used while health.insecure_tls = true: remove one of them"
                .to_owned(),
        );
    }
    out
}

/// 127.0.0.0/8, ::1 (also IPv4-mapped), and the `localhost` names, which resolve only
/// to the loopback interface (RFC 6761).
fn is_loopback(host: &str) -> bool {
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.to_canonical().is_loopback(),
        Err(_) => {
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            host == "localhost" || host.ends_with(".localhost")
        }
    }
}

/// Whether the probe of `h` needs a TLS configuration at all.
pub fn wants_tls(h: &HealthConfig) -> bool {
    super::url::parse_http_url(&h.url).is_ok_and(|u| u.https)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn cfg_with(url: &str, insecure: bool, ca: Option<&str>) -> Config {
        let mut cfg = super::super::defaults(None);
        cfg.health.url = url.to_owned();
        cfg.health.insecure_tls = insecure;
        cfg.health.ca_file = ca.map(Into::into);
        cfg
    }

    #[test]
    fn insecure_tls_is_warned_about_off_loopback_only() {
        let table: &[(&str, bool, Option<&str>, &[&str])] = &[
            ("https://127.0.0.1:8787/health", true, None, &[]),
            ("https://[::1]:8787/health", true, None, &[]),
            ("https://localhost:8787/health", true, None, &[]),
            (
                "https://mini.local:8787/health",
                true,
                None,
                &["not a loopback"],
            ),
            (
                "https://10.0.0.5/health",
                true,
                None,
                &["10.0.0.5, which is not a loopback"],
            ),
            ("https://10.0.0.5/health", false, Some("/ca.pem"), &[]),
            (
                "https://127.0.0.1/",
                true,
                Some("/ca.pem"),
                &["ca_file is not used"],
            ),
            (
                "http://127.0.0.1:8787/health",
                true,
                None,
                &["https:// URLs only"],
            ),
            (
                "http://127.0.0.1:8787/health",
                false,
                Some("/ca.pem"),
                &["https:// URLs only"],
            ),
            ("http://127.0.0.1:8787/health", false, None, &[]),
        ];
        for (url, insecure, ca, expected) in table {
            let found = warnings(&cfg_with(url, *insecure, *ca));
            assert_eq!(found.len(), expected.len(), "{url}: {found:?}");
            for (text, needle) in found.iter().zip(expected.iter()) {
                assert!(text.contains(needle), "{url}: {text}");
            }
        }
    }

    #[test]
    fn loopback_names_and_addresses() {
        for host in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "::ffff:127.0.0.1",
            "localhost",
            "LOCALHOST.",
            "a.localhost",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "10.0.0.1",
            "::",
            "0.0.0.0",
            "mini.local",
            "localhost.example.com",
            "notlocalhost",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    }

    #[test]
    fn a_pem_bundle_is_read_and_anything_else_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let euid = safe_fs::own_euid();
        let good = write(dir.path(), "ca.pem", &valid_pem());
        let certs = read_ca_file(&good, euid).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(certs.len(), 1);
        // A key in the same file is skipped, not refused.
        let with_key = write(
            dir.path(),
            "both.pem",
            &format!(
                "{}-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
                valid_pem()
            ),
        );
        assert_eq!(read_ca_file(&with_key, euid).map(|c| c.len()).ok(), Some(1));

        let cases: Vec<(std::path::PathBuf, &str)> = vec![
            (
                dir.path().join("missing.pem"),
                "cannot read it (No such file",
            ),
            (write(dir.path(), "empty.pem", ""), "holds no certificate"),
            (
                write(dir.path(), "text.pem", "hello\n"),
                "holds no certificate",
            ),
            (
                write(dir.path(), "cut.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n"),
                "not a readable PEM file",
            ),
            (
                write(
                    dir.path(),
                    "junk.pem",
                    "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
                ),
                "certificate 1 of 1 cannot be used",
            ),
            (dir.path().to_path_buf(), "not a regular file"),
        ];
        for (path, needle) in cases {
            let err = read_ca_file(&path, euid).expect_err(&path.display().to_string());
            let text = err.to_string();
            assert!(
                text.starts_with(&format!(
                    "health.ca_file {:?}: ",
                    path.display().to_string()
                )),
                "{text}"
            );
            assert!(text.contains(needle), "{path:?}: {text}");
        }
        // Writable by others: refused like the configuration itself.
        let open = write(dir.path(), "open.pem", &valid_pem());
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o666)).unwrap();
        let text = read_ca_file(&open, euid).unwrap_err().to_string();
        assert!(
            text.contains("refusing it") && text.contains("chmod go-w"),
            "{text}"
        );
    }

    /// The key's line and column, and the file named in the message.
    #[test]
    fn a_bad_ca_file_is_a_config_error_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let text = format!(
            "[health]\nurl = \"https://127.0.0.1:8787/health\"\nca_file = {:?}\n",
            missing.display().to_string()
        );
        let origin = Path::new("/etc/watchdog/watchdog.toml");
        let cfg = Config::from_toml_str(&text, origin, None).expect("parses without I/O");
        assert_eq!(cfg.health.ca_file.as_deref(), Some(missing.as_path()));
        let err = check_ca_file(&cfg, &text, origin).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "/etc/watchdog/watchdog.toml:3:11: health.ca_file {:?}: cannot read it",
                missing.display().to_string()
            )),
            "{err}"
        );
        let good = write(dir.path(), "ca.pem", &valid_pem());
        let text = format!("[health]\nca_file = {:?}\n", good.display().to_string());
        let cfg = Config::from_toml_str(&text, origin, None).unwrap();
        check_ca_file(&cfg, &text, origin).unwrap_or_else(|e| panic!("{e}"));
    }

    fn valid_pem() -> String {
        VALID_PEM.to_owned()
    }

    /// `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes
    /// -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1`
    const VALID_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBlzCCATygAwIBAgIUYfUd9HGa4oOTJ9caMWEkC25bO3EwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MB4XDTI2MTIwMjAyMDEzNloXDTM2MTEyOTAy
MDEzNlowFDESMBAGA1UEAwwJbG9jYWxob3N0MFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAEoQOqk1MvY8Ek9rGhKlM7/MMNpXMTQZiMs+vfVm0vxG5JxQyMhO9ICWS5
3WzcVZzdAheCX3R+UXA5LsSV+bxvLKNsMGowHQYDVR0OBBYEFMZyihgPLUNg0Qtj
Q2+I6Rf/vzVsMB8GA1UdIwQYMBaAFMZyihgPLUNg0QtjQ2+I6Rf/vzVsMBoGA1Ud
EQQTMBGCCWxvY2FsaG9zdIcEfwAAATAMBgNVHRMBAf8EAjAAMAoGCCqGSM49BAMC
A0kAMEYCIQDqjFFcTeImoRdT+4UCpRskBUx9pJ53fTP5XD9h8RiI9AIhAIAyI3Ch
o/5nk/K0KqVU0NtHvX901F0ysglRPBU/sBHp
-----END CERTIFICATE-----
";
}
