//! HTTPS for the health probe (docs/CONFIG.md, "[health]"): whom the probe believes,
//! and a failed handshake said as what it is, with the key that fixes it.

use std::sync::Arc;

use rustls::CertificateError;
use ureq::tls::{RootCerts, TlsConfig, TlsProvider};

use crate::config::HealthConfig;
use crate::config::tls::{CaFileError, read_ca_file, wants_tls};
use crate::safe_fs;

/// The probe's TLS settings. `insecure_tls`: no verification at all. `ca_file`: its
/// certificates and nothing else, as `curl --cacert` does, so a self-signed server
/// certificate is trusted for this probe only. Otherwise the operating system's trust
/// store through rustls-platform-verifier: Security.framework on macOS (the keychains
/// and the operator's trust settings), the system bundle on Linux.
///
/// `ca_file` is read here again (src/config/tls.rs checked it at load): what the probe
/// trusts is what the file holds now, judged by the same rules.
pub fn config(h: &HealthConfig) -> Result<TlsConfig, CaFileError> {
    let builder = with_ring();
    if h.insecure_tls {
        return Ok(builder.disable_verification(true).build());
    }
    let roots = match &h.ca_file {
        Some(path) if wants_tls(h) => {
            RootCerts::new_with_certs(&read_ca_file(path, safe_fs::own_euid())?)
        }
        _ => RootCerts::PlatformVerifier,
    };
    Ok(builder.root_certs(roots).build())
}

/// The operating system's trust store, for every other https request the watchdog
/// makes (the notifiers' webhook and heartbeat, src/notify.rs): without a provider
/// named, ureq panics at the first https request.
pub fn system_roots() -> TlsConfig {
    with_ring().root_certs(RootCerts::PlatformVerifier).build()
}

/// ring, named here: ureq is built without a crypto provider of its own (Cargo.toml).
fn with_ring() -> ureq::tls::TlsConfigBuilder {
    let ring = Arc::new(rustls::crypto::ring::default_provider());
    TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(ring)
}

/// A failed TLS handshake, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFailure {
    pub why: String,
    /// The server answered, and what it answered (its certificate, or plain HTTP) is
    /// what failed: a restart would bring back the same answer.
    pub answered: bool,
}

/// What went wrong in TLS, or `None` when `error` is not a TLS error.
pub fn describe(error: &ureq::Error, h: &HealthConfig, host: &str) -> Option<TlsFailure> {
    let answered = |why: String| TlsFailure {
        why,
        answered: true,
    };
    let e = match error {
        ureq::Error::Rustls(e) => e,
        ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>()?,
        ureq::Error::Tls(what) => return Some(answered(format!("TLS: {what}"))),
        _ => return None,
    };
    Some(match e {
        rustls::Error::InvalidCertificate(cert) => answered(certificate(cert, h, host)),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => answered(
            "no TLS answer: the server does not speak TLS on this port (serving plain \
                 HTTP? then write http:// in health.url)"
                .to_owned(),
        ),
        rustls::Error::PeerIncompatible(why) => answered(format!(
            "TLS handshake failed: no protocol version or cipher in common with the server \
             ({why:?})"
        )),
        rustls::Error::AlertReceived(alert) => TlsFailure {
            why: format!("TLS handshake refused by the server (alert {alert:?})"),
            answered: false,
        },
        other => TlsFailure {
            why: format!("TLS handshake failed: {other}"),
            answered: false,
        },
    })
}

fn certificate(error: &CertificateError, h: &HealthConfig, host: &str) -> String {
    use CertificateError as C;
    match error {
        // No issuer the probe trusts verifies the signature. rustls-webpki reports the
        // last candidate issuer's failure: a system root that merely shares the subject
        // (Debian's ssl-cert-snakeoil is CN=localhost too) gives a signature-algorithm
        // error instead of UnknownIssuer, and means the same.
        C::UnknownIssuer
        | C::BadSignature
        | C::UnsupportedSignatureAlgorithmContext { .. }
        | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => match &h.ca_file {
            Some(path) => format!(
                "certificate not trusted: health.ca_file ({}) holds neither it nor its \
                 issuer; copy the server's certificate there",
                path.display()
            ),
            None => "certificate not trusted: set health.ca_file or insecure_tls".to_owned(),
        },
        C::NotValidForName => not_for_host(host, None),
        C::NotValidForNameContext { presented, .. } => not_for_host(host, Some(presented)),
        C::Expired | C::ExpiredContext { .. } => {
            "certificate expired: renew the server's certificate".to_owned()
        }
        C::NotValidYet | C::NotValidYetContext { .. } => {
            "certificate not valid yet: check this machine's clock".to_owned()
        }
        // rustls-webpki's CaUsedAsEndEntity, which rustls passes on only as text: what
        // `openssl req -x509` makes by default (basicConstraints CA:TRUE).
        C::Other(other) if other.to_string().contains("CaUsedAsEndEntity") => {
            "certificate not accepted: the server presents a CA certificate \
             (basicConstraints CA:TRUE), which cannot name a server; make one with \
             basicConstraints=critical,CA:FALSE (docs/CONFIG.md, \"[health]\")"
                .to_owned()
        }
        other => format!("certificate not accepted: {other:?}"),
    }
}

fn not_for_host(host: &str, presented: Option<&Vec<String>>) -> String {
    let names: Vec<String> = presented
        .into_iter()
        .flatten()
        .map(|name| bare_name(name))
        .collect();
    let named = if names.is_empty() {
        "it names no host in subjectAltName (the CN is not used)".to_owned()
    } else {
        format!("it names {}", names.join(", "))
    };
    format!(
        "certificate not valid for {host}: {named}; use a host it names in health.url, or \
         make one with subjectAltName=DNS:localhost,IP:127.0.0.1"
    )
}

/// `DnsName("localhost")` → `localhost`, `IpAddress(127.0.0.1)` → `127.0.0.1`, as
/// rustls-webpki writes them; anything else as it is.
fn bare_name(name: &str) -> String {
    match (name.find('('), name.rfind(')')) {
        (Some(open), Some(close)) if open < close => {
            name[open + 1..close].trim_matches('"').to_owned()
        }
        _ => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn health(ca: Option<&str>) -> HealthConfig {
        let mut h = crate::config::defaults(None).health;
        h.url = "https://127.0.0.1:8787/health".to_owned();
        h.ca_file = ca.map(Into::into);
        h
    }

    /// As ureq hands them over: inside an I/O error from the handshake.
    fn wrapped(e: rustls::Error) -> ureq::Error {
        ureq::Error::Io(io::Error::new(io::ErrorKind::InvalidData, e))
    }

    #[test]
    fn each_tls_failure_names_its_fix() {
        let cert = |c| wrapped(rustls::Error::InvalidCertificate(c));
        let table: Vec<(ureq::Error, Option<&str>, &str, bool)> = vec![
            (
                cert(CertificateError::UnknownIssuer),
                None,
                "certificate not trusted: set health.ca_file or insecure_tls",
                true,
            ),
            (
                cert(CertificateError::UnknownIssuer),
                Some("/etc/watchdog/hermes.pem"),
                "certificate not trusted: health.ca_file (/etc/watchdog/hermes.pem) holds \
                 neither it nor its issuer; copy the server's certificate there",
                true,
            ),
            (
                cert(CertificateError::NotValidForNameContext {
                    expected: rustls::pki_types::ServerName::try_from("127.0.0.1")
                        .unwrap()
                        .to_owned(),
                    presented: vec![
                        "DnsName(\"mini.local\")".into(),
                        "IpAddress(10.0.0.5)".into(),
                    ],
                }),
                None,
                "certificate not valid for 127.0.0.1: it names mini.local, 10.0.0.5; use a \
                 host it names in health.url, or make one with \
                 subjectAltName=DNS:localhost,IP:127.0.0.1",
                true,
            ),
            (
                cert(CertificateError::NotValidForName),
                None,
                "certificate not valid for 127.0.0.1: it names no host in subjectAltName (the \
                 CN is not used)",
                true,
            ),
            (
                cert(
                    CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext {
                        signature_algorithm_id: vec![],
                        public_key_algorithm_id: vec![],
                    },
                ),
                None,
                "certificate not trusted: set health.ca_file or insecure_tls",
                true,
            ),
            (
                cert(CertificateError::Expired),
                None,
                "certificate expired: renew the server's certificate",
                true,
            ),
            (
                cert(CertificateError::Other(rustls::OtherError(Arc::new(
                    io::Error::other("CaUsedAsEndEntity"),
                )))),
                None,
                "certificate not accepted: the server presents a CA certificate \
                 (basicConstraints CA:TRUE)",
                true,
            ),
            (
                ureq::Error::Rustls(rustls::Error::InvalidMessage(
                    rustls::InvalidMessage::InvalidContentType,
                )),
                None,
                "no TLS answer: the server does not speak TLS on this port",
                true,
            ),
            (
                wrapped(rustls::Error::AlertReceived(
                    rustls::AlertDescription::HandshakeFailure,
                )),
                None,
                "TLS handshake refused by the server (alert HandshakeFailure)",
                false,
            ),
        ];
        for (error, ca, expected, answered) in table {
            let found = describe(&error, &health(ca), "127.0.0.1").expect("a TLS error");
            assert!(
                found.why.starts_with(expected),
                "{found:?}\nexpected: {expected}"
            );
            assert_eq!(found.answered, answered, "{found:?}");
        }
    }

    #[test]
    fn other_errors_are_not_tls() {
        let h = health(None);
        assert_eq!(describe(&ureq::Error::ConnectionFailed, &h, "h"), None);
        let refused = ureq::Error::Io(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(describe(&refused, &h, "h"), None);
    }

    #[test]
    fn roots_follow_the_configuration() {
        let mut h = health(None);
        assert!(matches!(
            config(&h).unwrap().root_certs(),
            RootCerts::PlatformVerifier
        ));
        h.insecure_tls = true;
        assert!(config(&h).unwrap().disable_verification());
        // An http URL never reads ca_file: there is no handshake to use it in.
        h.insecure_tls = false;
        h.url = "http://127.0.0.1:8787/health".to_owned();
        h.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(config(&h).is_ok());
        h.url = "https://127.0.0.1:8787/health".to_owned();
        let err = config(&h).unwrap_err().to_string();
        assert!(
            err.starts_with("health.ca_file \"/nonexistent/ca.pem\": cannot read it"),
            "{err}"
        );
    }
}
