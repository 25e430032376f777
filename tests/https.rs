//! HTTPS health end to end (docs/CONFIG.md, "[health]"): the test server speaks TLS with
//! a certificate each test makes with `openssl req -x509` in its temp dir, as Hermes
//! WebUI does with `HERMES_WEBUI_TLS_CERT`/`HERMES_WEBUI_TLS_KEY`. Trusted through
//! `health.ca_file`, or not checked with `insecure_tls`, the server is healthy; with
//! neither its certificate is not trusted, said as such, and not restarted for. A
//! `ca_file` that is missing, not PEM, or writable by another user is a configuration
//! error (exit 2) before anything is probed.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use common::*;

/// A self-signed certificate and its key, made by `openssl req -x509` in `dir` under
/// `name`: an EC P-256 key, valid one day, with the `-addext` extensions given (none:
/// what a bare `openssl req -x509 -subj /CN=localhost` makes, basicConstraints CA:TRUE
/// and no subjectAltName).
fn self_signed(dir: &Path, name: &str, addext: &[&str]) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert);
    for ext in addext {
        cmd.args(["-addext", ext]);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("openssl is not installed ({e}): run script/bootstrap --basic, or apt-get install openssl")
    });
    assert!(out.status.success(), "openssl req failed: {out:?}");
    (cert, key)
}

/// A server certificate as the docs tell the operator to make one: names 127.0.0.1 and
/// localhost, and is not a CA.
const SERVER_EXTENSIONS: &[&str] = &[
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "basicConstraints=critical,CA:FALSE",
];

/// A TLS test server with a certificate made by [`self_signed`], and the base config
/// pointed at its deep health check over https.
fn tls_setup(addext: &[&str]) -> (TestEnv, TestServer, ConfigToml, PathBuf) {
    let env = TestEnv::new();
    let (cert, key) = self_signed(&env.root, "server", addext);
    let server = TestServer::start(
        &env,
        ServerOpts {
            tls: Some((cert.clone(), key)),
            ..ServerOpts::default()
        },
    );
    let mut cfg = env.base_config(&server);
    cfg.set("health.url", format!("{}/health?deep=1", server.base));
    (env, server, cfg, cert)
}

fn path_str(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_owned()
}

/// `check --json`, asserting the exit code; returns the report.
#[track_caller]
fn check(env: &TestEnv, code: i32) -> Value {
    let r = run_watchdog(env, &["check", "--json"]);
    assert_exit(env, &r, code);
    report(&r)
}

/// The `health_failed` reason's detail.
#[track_caller]
fn health_failed(rep: &Value) -> String {
    rep["reasons"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["code"] == "health_failed"))
        .and_then(|r| r["detail"].as_str())
        .unwrap_or_else(|| panic!("no health_failed reason: {rep:#}"))
        .to_owned()
}

#[test]
fn server_is_healthy_with_its_certificate_in_ca_file() {
    let (env, server, mut cfg, cert) = tls_setup(SERVER_EXTENSIONS);
    cfg.set("health.ca_file", path_str(&cert)).write(&env);
    let probes = server.health_requests();
    let rep = check(&env, 0);
    assert_eq!(rep["verdict"], "healthy", "{rep:#}");
    assert_eq!(rep["health"]["status"], 200, "{rep:#}");
    assert_eq!(rep["target"]["pid"], server.pid, "{rep:#}");
    assert!(
        server.health_requests() > probes,
        "the server was not asked"
    );
    assert_untouched(&server);
    assert_nothing_done(&env);
    // `config --check` has nothing to warn about.
    let r = run_watchdog(&env, &["config", "--check"]);
    assert_exit(&env, &r, 0);
    assert!(!r.stderr.contains("warning"), "{}", r.dump());
}

#[test]
fn server_is_healthy_with_insecure_tls_and_loopback_is_not_warned_about() {
    let (env, server, mut cfg, _cert) = tls_setup(SERVER_EXTENSIONS);
    cfg.set("health.insecure_tls", true).write(&env);
    let rep = check(&env, 0);
    assert_eq!(rep["verdict"], "healthy", "{rep:#}");
    assert_untouched(&server);
    let r = run_watchdog(&env, &["config", "--check"]);
    assert_exit(&env, &r, 0);
    assert!(!r.stderr.contains("warning"), "{}", r.dump());
}

/// Even a certificate rustls would refuse as a server's (a CA, naming no host) passes:
/// `insecure_tls` checks nothing.
#[test]
fn insecure_tls_accepts_any_certificate() {
    let (env, server, mut cfg, _cert) = tls_setup(&[]);
    cfg.set("health.insecure_tls", true).write(&env);
    let rep = check(&env, 0);
    assert_eq!(rep["verdict"], "healthy", "{rep:#}");
    assert_untouched(&server);
}

/// Neither ca_file nor insecure_tls: the system's trust store does not know a
/// self-signed certificate. Unhealthy (exit 4) with the fix in the reason, the log and
/// the report; the server, which answered, is not restarted.
#[test]
fn untrusted_certificate_is_said_and_not_restarted_for() {
    let (env, server, cfg, _cert) = tls_setup(SERVER_EXTENSIONS);
    cfg.write(&env);
    let rep = check(&env, 4);
    assert_eq!(rep["verdict"], "unhealthy", "{rep:#}");
    let detail = health_failed(&rep);
    assert!(
        detail.ends_with("certificate not trusted: set health.ca_file or insecure_tls"),
        "{detail}"
    );
    assert_eq!(
        rep["health"]["error"], "certificate not trusted: set health.ca_file or insecure_tls",
        "{rep:#}"
    );
    let action = &rep["action"];
    assert_eq!(action["kind"], "restart", "{rep:#}");
    assert_eq!(action["result"], "suppressed", "{rep:#}");
    let why = action["detail"].as_str().unwrap_or_default();
    assert!(
        why.contains("a restart would bring back the same answer")
            && why.contains("set health.ca_file or insecure_tls"),
        "{why}"
    );
    assert_untouched(&server);
    assert_nothing_done(&env);
    let ev = &expect_events(&env, "suppressed")[0];
    assert!(
        ev.to_string().contains("certificate not trusted"),
        "the log does not say why: {ev}"
    );
    assert_log_shape(&env);
    // The server saw the handshake fail: the watchdog did reach it.
    let log = fs::read_to_string(&server.log_path).unwrap_or_default();
    assert!(log.contains("TLS handshake failed"), "{log}");
}

/// A certificate in ca_file that names another host: the error says which names it
/// carries and how to make one that fits.
#[test]
fn a_certificate_for_another_host_names_what_it_names() {
    let (env, server, mut cfg, cert) = tls_setup(&[
        "subjectAltName=DNS:elsewhere.example",
        "basicConstraints=critical,CA:FALSE",
    ]);
    cfg.set("health.ca_file", path_str(&cert))
        .set("restart.method", "none")
        .write(&env);
    let rep = check(&env, 4);
    let detail = health_failed(&rep);
    assert!(
        detail.contains(
            "certificate not valid for 127.0.0.1: it names elsewhere.example; use a host it \
             names in health.url, or make one with subjectAltName=DNS:localhost,IP:127.0.0.1"
        ),
        "{detail}"
    );
    assert_untouched(&server);
}

/// What a bare `openssl req -x509 -subj /CN=localhost` makes is a CA certificate: even
/// in ca_file it cannot name a server, and the error says how to make one that can.
#[test]
fn a_ca_certificate_as_the_servers_is_explained() {
    let (env, server, mut cfg, cert) = tls_setup(&[]);
    cfg.set(
        "health.url",
        format!("https://localhost:{}/health?deep=1", server.port),
    )
    .set("health.ca_file", path_str(&cert))
    .set("restart.method", "none")
    .write(&env);
    let rep = check(&env, 4);
    let detail = health_failed(&rep);
    assert!(
        detail.contains("the server presents a CA certificate (basicConstraints CA:TRUE)")
            && detail.contains("basicConstraints=critical,CA:FALSE"),
        "{detail}"
    );
    assert_untouched(&server);
}

#[test]
fn config_check_warns_about_insecure_tls_off_loopback() {
    let env = TestEnv::new();
    env.write_config(
        "[health]\nurl = \"https://10.255.255.1:8787/health?deep=1\"\ninsecure_tls = true\n",
    );
    let r = run_watchdog(&env, &["config", "--check"]);
    assert_exit(&env, &r, 0);
    assert!(
        r.stderr.contains(
            "watchdog: warning: health.insecure_tls = true skips certificate verification \
             for 10.255.255.1, which is not a loopback address"
        ) && r
            .stderr
            .contains("set health.ca_file to its certificate instead"),
        "{}",
        r.dump()
    );
    assert!(r.stderr.contains("configuration OK"), "{}", r.dump());
}

/// A ca_file that cannot be used stops every command at the configuration, with the
/// file, line and column of the key and the fix, before the server is probed.
#[test]
fn a_missing_or_non_pem_ca_file_is_a_config_error_at_its_line() {
    let (env, server, mut cfg, _cert) = tls_setup(SERVER_EXTENSIONS);
    let not_pem = env.root.join("notes.txt");
    fs::write(&not_pem, "not a certificate\n").unwrap();
    let cases = [
        (
            env.root.join("missing.pem"),
            "cannot read it (No such file or directory",
        ),
        (
            not_pem,
            "holds no certificate (no -----BEGIN CERTIFICATE----- block)",
        ),
        (env.root.clone(), "it is a directory, not a regular file"),
    ];
    for (path, needle) in cases {
        let text = cfg.set("health.ca_file", path_str(&path)).write(&env);
        let (line, column) = line_col(&text, locate(&text, "health", "ca_file", true));
        let probes = server.health_requests();
        for args in [&["check"][..], &["status"], &["config", "--check"]] {
            let r = run_watchdog(&env, args);
            assert_exit(&env, &r, 2);
            let expected = format!(
                "watchdog: {}:{line}:{column}: health.ca_file {:?}: ",
                env.config_path.display(),
                path_str(&path)
            );
            assert!(
                r.stderr.starts_with(&expected) && r.stderr.contains(needle),
                "{args:?}: expected {expected}…{needle}\n{}",
                r.dump()
            );
        }
        assert_eq!(server.health_requests(), probes, "probed despite the error");
    }
    assert_untouched(&server);
    assert_nothing_done(&env);
}

/// Under a root watchdog, the CA bundle decides which server the health check believes,
/// so it is trusted like the configuration (docs/SECURITY.md): another user's file, one
/// others may write, or a link to either is refused (exit 2), and the server is never
/// signalled; a link to root's own file is followed, as the configuration's is.
#[cfg(target_os = "linux")]
mod ownership {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    #[ignore = "needs root (chowns CA files to another user): run by script/test as root and .ci/run"]
    fn a_ca_file_another_user_can_write_is_refused() {
        require_root();
        let (env, server, mut cfg, cert) = tls_setup(SERVER_EXTENSIONS);
        let witness = Witness::of(server.pid);
        let pem = fs::read(&cert).unwrap();
        let (uid, gid) = ATTACKER;

        let theirs = env.root.join("theirs.pem");
        fs::write(&theirs, &pem).unwrap();
        chown_tree(&theirs, uid, gid);

        let group_writable = env.root.join("group-writable.pem");
        fs::write(&group_writable, &pem).unwrap();
        std::os::unix::fs::chown(&group_writable, Some(0), Some(gid)).unwrap();
        fs::set_permissions(&group_writable, fs::Permissions::from_mode(0o664)).unwrap();

        // A link in a directory of the attacker's, to the attacker's file.
        let their_dir = env.root.join("attacker");
        fs::create_dir(&their_dir).unwrap();
        let link = their_dir.join("ca.pem");
        symlink(&theirs, &link).unwrap();
        chown_tree(&their_dir, uid, gid);

        let cases = [
            (
                &theirs,
                format!("is owned by uid {uid}, not by this user (uid 0) or root"),
            ),
            (&group_writable, "is writable by its group".to_owned()),
            (&link, format!("is owned by uid {uid}")),
        ];
        for (path, needle) in cases {
            cfg.set("health.ca_file", path_str(path)).write(&env);
            let outside = tree_snapshot(&env.root, &[&env.state_dir, &server.log_path]);
            let r = run_watchdog(&env, &["check", "--json"]);
            assert_exit(&env, &r, 2);
            assert!(
                r.stderr.contains(&format!(
                    "health.ca_file {:?}: refusing it: it ",
                    path_str(path)
                )) && r.stderr.contains(&needle)
                    && r.stderr
                        .contains("chooses which server the health check believes"),
                "{path:?}: {}",
                r.dump()
            );
            assert_eq!(r.stdout, "", "no report for a configuration error");
            witness.assert_untouched(&r);
            assert_eq!(
                tree_snapshot(&env.root, &[&env.state_dir, &server.log_path]),
                outside,
                "a file outside the state dir changed"
            );
        }
        assert_nothing_done(&env);

        // root's own file through a link (the operator's dotfiles, say): followed.
        let own_link = env.root.join("linked.pem");
        symlink(&cert, &own_link).unwrap();
        cfg.set("health.ca_file", path_str(&own_link)).write(&env);
        let rep = check(&env, 0);
        assert_eq!(rep["verdict"], "healthy", "{rep:#}");
        assert_untouched(&server);
    }
}
