//! Detection order, command lines and status parsing, on literal inputs.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::*;
use crate::probe::os::{Identity, ProcState};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn clues(pairs: &[(&str, &str)]) -> Clues {
    Clues {
        env: env(pairs),
        env_error: None,
        uid: 501,
        runsv_dir: None,
        runsv_exe: None,
        unit: None,
        supervisord: None,
        supervisord_argv: Vec::new(),
    }
}

#[test]
fn an_unreadable_environment_leaves_the_supervisor_unknown() {
    assert_eq!(unknown_supervision(&clues(&[]), 42), None);
    let blind = Clues {
        env_error: Some("permission denied".into()),
        ..clues(&[])
    };
    let problem = unknown_supervision(&blind, 42).unwrap();
    assert!(problem.contains("PID 42") && problem.contains("set restart.method"));
}

#[test]
fn detection_follows_the_spec_order() {
    let mut all = clues(&[
        ("XPC_SERVICE_NAME", "com.example.hermes-webui"),
        ("SUPERVISOR_PROCESS_NAME", "web"),
        ("SUPERVISOR_GROUP_NAME", "hermes"),
        ("SUPERVISOR_SERVER_URL", "unix:///tmp/s.sock"),
    ]);
    all.runsv_dir = Some(PathBuf::from("/etc/sv/hermes"));
    all.unit = Some(("hermes.service".into(), false));

    let first = detect(&all).unwrap();
    assert_eq!(
        (first.kind, first.name.as_str()),
        (Kind::Launchd, "com.example.hermes-webui")
    );

    all.env.retain(|(k, _)| k != "XPC_SERVICE_NAME");
    let second = detect(&all).unwrap();
    assert_eq!(
        (second.kind, second.name.as_str()),
        (Kind::Supervisor, "hermes:web")
    );
    assert_eq!(second.server_url.as_deref(), Some("unix:///tmp/s.sock"));

    all.env.clear();
    let third = detect(&all).unwrap();
    assert_eq!(
        (third.kind, third.name.as_str()),
        (Kind::Runit, "/etc/sv/hermes")
    );

    all.runsv_dir = None;
    let last = detect(&all).unwrap();
    assert_eq!(
        (last.kind, last.name.as_str(), last.user),
        (Kind::Systemd, "hermes.service", false)
    );

    all.unit = None;
    assert_eq!(detect(&all), None);
}

#[test]
fn terminal_and_app_processes_are_not_launchd_jobs() {
    for name in ["0", "application.com.apple.Terminal.1234", ""] {
        assert_eq!(
            detect(&clues(&[("XPC_SERVICE_NAME", name)])),
            None,
            "{name:?}"
        );
    }
}

#[test]
fn a_one_process_group_is_named_group_colon_name() {
    let s = detect(&clues(&[("SUPERVISOR_PROCESS_NAME", "web")])).unwrap();
    assert_eq!(s.name, "web:web");
    assert_eq!(s.server_url, None);
}

fn supervisor(kind: Kind, name: &str) -> Supervisor {
    Supervisor {
        kind,
        name: name.into(),
        user: false,
        uid: 501,
        server_url: None,
        evidence: "test".into(),
        trust: Trust::Unverified,
        domain: None,
        tool: Default::default(),
    }
}

#[test]
fn command_lines() {
    let table: [(Supervisor, &str, &str); 5] = [
        (
            supervisor(Kind::Launchd, "com.x"),
            "launchctl print gui/501/com.x",
            "launchctl kickstart -k gui/501/com.x",
        ),
        (
            Supervisor {
                uid: 0,
                ..supervisor(Kind::Launchd, "com.x")
            },
            "launchctl print system/com.x",
            "launchctl kickstart -k system/com.x",
        ),
        (
            Supervisor {
                user: true,
                ..supervisor(Kind::Systemd, "hermes.service")
            },
            "systemctl --user show -p MainPID,ActiveState,SubState,Result,NRestarts,LoadState hermes.service",
            "systemctl --user restart hermes.service",
        ),
        (
            Supervisor {
                server_url: Some("unix:///tmp/s.sock".into()),
                ..supervisor(Kind::Supervisor, "hermes:web")
            },
            "supervisorctl -s unix:///tmp/s.sock status hermes:web",
            "supervisorctl -s unix:///tmp/s.sock restart hermes:web",
        ),
        (
            supervisor(Kind::Runit, "/etc/sv/hermes"),
            "sv status /etc/sv/hermes",
            "sv restart /etc/sv/hermes",
        ),
    ];
    for (s, status, restart) in table {
        assert_eq!(s.status_argv().join(" "), status);
        assert_eq!(s.restart_argv().join(" "), restart);
    }
}

/// The one table of supervisors (`Kind::ALL`, each kind's file behind
/// `Kind::behaviour`): every `restart.method` that names a supervisor picks its kind and
/// no other, the kind's name in the history and the report is that method's, and each
/// names its job by its own key.
#[test]
fn each_kind_is_listed_once_with_its_method_and_key() {
    assert_eq!(
        Kind::ALL,
        [Kind::Launchd, Kind::Supervisor, Kind::Runit, Kind::Systemd]
    );
    let keys = Kind::ALL.map(Kind::config_key);
    assert_eq!(keys, ["label", "program", "service_dir", "unit"]);
    for kind in Kind::ALL {
        assert_eq!(Kind::of(kind.method()), Some(kind));
        assert_eq!(
            serde_json::to_value(kind).unwrap(),
            serde_json::Value::from(kind.as_str())
        );
    }
    let supervised = Method::ALL.into_iter().filter_map(Kind::of).count();
    assert_eq!(supervised, Kind::ALL.len());
}

fn fixture(path: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn status_of_each_supervisor() {
    let launchd = parse_status(
        &supervisor(Kind::Launchd, "com.example.hermes-webui"),
        &fixture("launchctl/running.txt"),
    )
    .unwrap();
    assert_eq!(
        (launchd.pid, launchd.state.as_str()),
        (Some(4242), "running")
    );
    assert_eq!(launchd.program.as_deref(), Some("/usr/bin/python3"));

    let down = parse_status(
        &supervisor(Kind::Launchd, "x"),
        &fixture("launchctl/not-running-ex-config.txt"),
    )
    .unwrap();
    assert_eq!(down.pid, None);

    let failed = parse_status(
        &supervisor(Kind::Systemd, "x"),
        &fixture("systemd/show-start-limit-hit.txt"),
    )
    .unwrap();
    assert!(failed.start_limit_hit);
    assert_eq!(failed.pid, None);
    assert_eq!(failed.state, "failed (failed)");

    // A mistyped unit: systemctl exits 0 and shows a stopped unit, whose job would make
    // the running server an orphan. Only LoadState says there is no such unit.
    for user in [false, true] {
        let mistyped = Supervisor {
            user,
            ..supervisor(Kind::Systemd, "hermes-webiu.service")
        };
        let why = parse_status(&mistyped, systemd::NOT_FOUND).unwrap_err();
        let list = if user {
            "`systemctl --user list-units"
        } else {
            "`systemctl list-units"
        };
        for words in [
            "unit hermes-webiu.service does not exist",
            "LoadState=not-found",
            "restart.unit",
            list,
        ] {
            assert!(why.contains(words), "{words:?} not in: {why}");
        }
    }
    let masked = "MainPID=0\nLoadState=masked\nActiveState=inactive\nSubState=dead\n";
    let why = parse_status(&supervisor(Kind::Systemd, "x.service"), masked).unwrap_err();
    assert!(
        why.contains("x.service is not loaded (LoadState=masked)"),
        "{why}"
    );
    let no_load_state = "MainPID=0\nActiveState=inactive\n";
    let why = parse_status(&supervisor(Kind::Systemd, "x.service"), no_load_state).unwrap_err();
    assert!(why.contains("no LoadState"), "{why}");

    let fatal = parse_status(
        &supervisor(Kind::Supervisor, "bad:bad"),
        "bad                              FATAL     Exited too quickly (process log may have details)\n",
    )
    .unwrap();
    assert_eq!((fatal.pid, fatal.state.as_str()), (None, "FATAL"));

    let run = parse_status(
        &supervisor(Kind::Runit, "/tmp/sv"),
        "run: /tmp/sv: (pid 17450) 2s\n",
    )
    .unwrap();
    assert_eq!(run.pid, Some(17450));
    // sv's own complaints are errors, not a stopped job (which would make the server
    // an orphan).
    for complaint in [
        "warning: /etc/sv/hermes: unable to open supervise/ok: access denied\n",
        "fail: /etc/sv/hermes: runsv not running\n",
    ] {
        let why = parse_status(&supervisor(Kind::Runit, "/etc/sv/hermes"), complaint).unwrap_err();
        assert!(why.contains("no run, down or finish state"), "{why}");
    }

    assert!(parse_status(&supervisor(Kind::Supervisor, "x:x"), "").is_err());
    assert!(parse_status(&supervisor(Kind::Systemd, "x"), "garbage\n").is_err());
    assert!(
        parse_status(
            &supervisor(Kind::Launchd, "x"),
            "Could not find service \"x\" in domain for port\n"
        )
        .is_err()
    );
}

fn process(pid: u32, ppid: u32) -> ProcessInfo {
    ProcessInfo {
        identity: Identity { pid, start_key: 1 },
        ppid,
        uid: Some(501),
        gid: Some(20),
        start_time: SystemTime::UNIX_EPOCH,
        argv: vec!["python3".into(), "server.py".into()],
        cwd: None,
        rss_bytes: None,
        state: ProcState::Running,
    }
}

fn job(pid: Option<u32>) -> JobStatus {
    JobStatus {
        pid,
        state: "x".into(),
        start_limit_hit: false,
        program: None,
        starting: false,
    }
}

#[test]
fn orphans_are_port_holders_outside_the_job() {
    // The job's own process, and its direct child, are not orphans.
    assert_eq!(orphan_of(&job(Some(4242)), &process(4242, 1)), None);
    assert_eq!(orphan_of(&job(Some(4000)), &process(4242, 4000)), None);
    // Reparented to init while the supervisor runs something else, or nothing.
    assert_eq!(
        orphan_of(&job(Some(4000)), &process(4242, 1)),
        Some(Orphan {
            holder: 4242,
            job_pid: Some(4000)
        })
    );
    assert_eq!(
        orphan_of(&job(None), &process(4242, 1)),
        Some(Orphan {
            holder: 4242,
            job_pid: None
        })
    );
}

#[test]
fn configured_names_win_and_keep_detected_details() {
    let cfg = RestartConfig {
        program: Some("hermes:web".into()),
        ..crate::config::defaults(None).restart
    };
    let seen = clues(&[
        ("SUPERVISOR_PROCESS_NAME", "other"),
        ("SUPERVISOR_SERVER_URL", "unix:///tmp/s.sock"),
    ]);
    let s = configured(Kind::Supervisor, &cfg, &seen, 0).unwrap();
    assert_eq!(s.name, "hermes:web");
    assert_eq!(s.evidence, "configured");
    assert_eq!(s.trust, Trust::Configured);
    // The URL is the target's word: with no supervisord ancestor holding that socket
    // it is dropped, and supervisorctl uses its own configuration.
    assert_eq!(s.server_url, None);
    assert_eq!(configured(Kind::Launchd, &cfg, &seen, 0), None);
    // From the watchdog's own user (uid 501 here), the URL is kept: a double fork's
    // orphan has no supervisord ancestor, and its user could ask that socket itself.
    let own = configured(Kind::Supervisor, &cfg, &seen, 501).unwrap();
    assert_eq!(own.server_url.as_deref(), Some("unix:///tmp/s.sock"));

    // This test process stands in for the supervisord ancestor: it holds the socket.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let url = format!("unix://{}", path.display());
    let held = Clues {
        supervisord: Some(std::process::id()),
        ..clues(&[
            ("SUPERVISOR_SERVER_URL", &url),
            ("SUPERVISOR_PROCESS_NAME", "x"),
        ])
    };
    let s = configured(Kind::Supervisor, &cfg, &held, 0).unwrap();
    assert_eq!(s.server_url.as_deref(), Some(url.as_str()));
}

/// Real sockets held by this test process: what a supervisord ancestor must hold for
/// the URL in its child's environment to be used.
#[test]
fn a_server_url_counts_only_if_the_process_holds_that_socket() {
    let me = std::process::id();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    // supervisord binds PATH.<pid> and renames it: the kernel keeps the bound name.
    let renamed = dir.path().join(format!("r.sock.{me}"));
    let _unix = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let _bound = std::os::unix::net::UnixListener::bind(&renamed).unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();

    let url = |p: &std::path::Path| format!("unix://{}", p.display());
    assert_eq!(holds_server_socket(me, &url(&path)), Ok(()));
    assert_eq!(
        holds_server_socket(me, &url(&dir.path().join("r.sock"))),
        Ok(())
    );
    assert_eq!(
        holds_server_socket(me, &format!("http://127.0.0.1:{port}")),
        Ok(())
    );
    assert_eq!(
        holds_server_socket(me, &format!("http://localhost:{port}/RPC2")),
        Ok(())
    );
    for other in [
        url(&dir.path().join("other.sock")),
        url(&dir.path().join("s")),
        format!("http://127.0.0.1:{}", port.wrapping_add(1)),
        "ftp://x".to_string(),
        // The port alone is not the socket: root's supervisorctl would send the
        // [supervisorctl] credentials of its config to another host.
        format!("http://evil.example:{port}"),
        format!("http://192.0.2.7:{port}/RPC2"),
        format!("http://127.0.0.1@evil.example:{port}"),
    ] {
        assert!(holds_server_socket(me, &other).is_err(), "{other}");
    }
    assert_eq!(
        holds_server_socket(me, &format!("http://[::1]:{port}")),
        Ok(()),
        "a loopback name of the host"
    );
}

fn foreign(pid: u32, uid: u32) -> ProcessInfo {
    ProcessInfo {
        uid: Some(uid),
        ..process(pid, 1)
    }
}

/// A claim that nothing confirms, from another user's process, is refused before any
/// supervisor command runs (none is on PATH here, and none is needed).
#[test]
fn another_users_unconfirmed_claims_are_refused_before_any_query() {
    let auto = crate::config::defaults(None).restart;
    let deadline = Deadline::after(Duration::from_secs(5));
    let forged = clues(&[
        ("SUPERVISOR_PROCESS_NAME", "victim"),
        ("SUPERVISOR_GROUP_NAME", "root-jobs"),
        ("SUPERVISOR_SERVER_URL", "unix:///run/supervisor.sock"),
    ]);
    let r = resolve_with(
        &auto,
        Some(&foreign(4242, 1001)),
        &forged,
        None,
        0,
        deadline,
    );
    assert_eq!(r.supervision, None);
    assert_eq!(r.method, Method::None);
    let why = r.unverified.unwrap();
    for words in [
        "PID 4242 claims supervisord program root-jobs:victim",
        "no supervisord is its ancestor",
        "uid 1001",
        "watchdog's uid 0",
        "nor by a builtin restart",
        "restart.program",
    ] {
        assert!(why.contains(words), "{words:?} not in: {why}");
    }

    // A supervisord ancestor that does not hold the named socket: refused too.
    let elsewhere = Clues {
        supervisord: Some(std::process::id()),
        ..forged.clone()
    };
    let r = resolve_with(
        &auto,
        Some(&foreign(4242, 1001)),
        &elsewhere,
        None,
        0,
        deadline,
    );
    let why = r.unverified.unwrap();
    assert!(why.contains("holds no such socket"), "{why}");

    // launchd cannot be confirmed by ancestry: another user's label is not taken.
    let xpc = clues(&[("XPC_SERVICE_NAME", "com.example.victim")]);
    let r = resolve_with(&auto, Some(&foreign(4242, 501)), &xpc, None, 0, deadline);
    let why = r.unverified.unwrap();
    assert!(
        why.contains("launchd job system/com.example.victim") || why.contains("com.example.victim"),
        "{why}"
    );
    assert!(why.contains("restart.label"), "{why}");

    // Named by the operator, the same label is used (no target process: nothing to ask).
    let named = RestartConfig {
        method: Method::Launchd,
        label: Some("com.example.hermes".into()),
        ..auto.clone()
    };
    let s = configured(Kind::Launchd, &named, &xpc, 0).unwrap();
    assert_eq!(s.trust, Trust::Configured);
}

/// A job in the history is started while the server is down only if something vouched
/// for it when it was recorded.
#[test]
fn only_vouched_for_remembered_jobs_survive() {
    for (trust, job_uid, own_uid, survives) in [
        (Trust::Confirmed, 1001, 0, true),
        (Trust::Configured, 1001, 0, true),
        (Trust::SameUser, 0, 0, true),
        (Trust::SameUser, 1001, 0, false),
        (Trust::Unverified, 0, 0, false),
    ] {
        assert_eq!(trust.survives(job_uid, own_uid), survives, "{trust:?}");
    }
    // An entry written without the field (injected, or by an older version).
    let injected: Supervisor = serde_json::from_str(
        r#"{"kind":"systemd","name":"victim.service","user":false,"uid":0,
            "server_url":null,"evidence":"cgroup"}"#,
    )
    .unwrap();
    assert_eq!(injected.trust, Trust::Unverified);
    let auto = crate::config::defaults(None).restart;
    let deadline = Deadline::after(Duration::from_secs(5));
    let r = resolve_with(&auto, None, &Clues::default(), Some(&injected), 0, deadline);
    assert_eq!((r.method, r.supervision), (Method::Builtin, None));
    let why = r.ignored.unwrap();
    assert!(
        why.contains("remembers systemd unit victim.service")
            && why.contains("nothing confirmed it")
            && why.contains("restart.unit"),
        "{why}"
    );
}

#[test]
fn a_starting_job_has_no_orphan() {
    let starting = JobStatus {
        starting: true,
        ..job(None)
    };
    assert_eq!(orphan_of(&starting, &process(4242, 1)), None);
    let backoff_elsewhere = JobStatus {
        starting: true,
        ..job(Some(4000))
    };
    assert_eq!(orphan_of(&backoff_elsewhere, &process(4242, 1)), None);
}

// --- launchd: domains, the job found by PID, and what may be kickstarted -------------

/// A stand-in `launchctl`: `print X` answers with `answers[X]`, anything else as the
/// real one does for an unknown service (exit 113); every call is recorded.
struct Launchctl {
    answers: Vec<(String, String)>,
    calls: std::cell::RefCell<Vec<String>>,
}

impl Launchctl {
    fn new(answers: &[(&str, String)]) -> Launchctl {
        Launchctl {
            answers: answers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            calls: Default::default(),
        }
    }

    fn ask(&self, args: &[String], _deadline: Deadline) -> Result<Finished, String> {
        use std::os::unix::process::ExitStatusExt;
        let call = args.join(" ");
        self.calls.borrow_mut().push(call.clone());
        let found = args
            .strip_prefix(&["print".to_string()])
            .and_then(|rest| self.answers.iter().find(|(k, _)| [k.clone()] == rest));
        Ok(match found {
            Some((_, text)) => Finished {
                status: std::process::ExitStatus::from_raw(0),
                stdout: text.clone(),
                stderr: String::new(),
            },
            None => Finished {
                status: std::process::ExitStatus::from_raw(113 << 8),
                stdout: String::new(),
                stderr: format!("Could not find service for {call}\n"),
            },
        })
    }

    fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }
}

/// A `launchctl print <domain>/<label>` of the `fixture` job, as `domain` would print
/// it, running `pid` (none: the fixture's `pid` line is dropped).
fn printed(fixture_name: &str, domain: &str, label: &str, pid: Option<u32>) -> String {
    let text = fixture(&format!("launchctl/{fixture_name}"));
    let mut out = String::new();
    let mut header = false;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if !header {
            out.push_str(&format!("{domain}/{label} = {{\n"));
            header = true;
        } else if line.starts_with("\tpid = ") {
            if let Some(pid) = pid {
                out.push_str(&format!("\tpid = {pid}\n"));
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A domain listing whose services block pairs `pid` with `label`.
fn listing(domain: &str, jobs: &[(u32, &str)]) -> String {
    let mut out = format!("{domain} = {{\n\ttype = x\n\n\tservices = {{\n");
    for (pid, label) in jobs {
        out.push_str(&format!("\t\t{pid:>8}      - \t{label}\n"));
    }
    out.push_str("\t\t       0      0 \tcom.apple.cloudd\n\t}\n}\n");
    out
}

/// A PID no process has here, so that walks up the tree end at it.
const GONE: u32 = 999_999_000;

fn run_resolve(
    cfg: &RestartConfig,
    target: Option<&ProcessInfo>,
    clues: &Clues,
    launchctl: &Launchctl,
    own_label: Option<&str>,
    launchd_is_init: bool,
    own_pid: u32,
) -> Resolution {
    let ask = |args: &[String], deadline| launchctl.ask(args, deadline);
    let ctx = Context {
        own_uid: 501,
        own_pid,
        own_label: own_label.map(str::to_string),
        launchd_is_init,
        launchctl: &ask,
    };
    resolve_in(
        cfg,
        target,
        clues,
        None,
        &ctx,
        Deadline::after(Duration::from_secs(30)),
    )
}

/// [`run_resolve`] as most tests call it: `restart.method = "auto"`, the watchdog has no
/// label of its own and is PID `GONE`.
fn resolve_auto(
    server: &ProcessInfo,
    clues: &Clues,
    launchctl: &Launchctl,
    launchd_is_init: bool,
) -> Resolution {
    run_resolve(
        &auto(),
        Some(server),
        clues,
        launchctl,
        None,
        launchd_is_init,
        GONE,
    )
}

const LABEL: &str = "com.example.hermes-webui";

fn auto() -> RestartConfig {
    crate::config::defaults(None).restart
}

fn blind() -> Clues {
    Clues {
        env_error: Some("the kernel withholds the environment of PID 4242".into()),
        ..clues(&[])
    }
}

/// A `start.sh` run by /bin/bash under launchd: the server is bash's child, and the
/// kernel hides the environment of both. On a Mac (launchd is init) auto-detection
/// finds the job by the ancestor's PID in launchd's listing of user/501, trusts it
/// (launchd's own pairing), and addresses status and kickstart to that domain.
#[test]
#[cfg_attr(
    not(target_os = "macos"),
    ignore = "needs root (starts the job as uid 501, a Mac's first user; on a Mac runner that is itself): run by script/test as root and .ci/run"
)]
fn with_the_environment_hidden_the_job_is_found_by_an_ancestors_pid() {
    // A real process of the server's user: an ancestor is read, and must be that user's.
    let job_process = Sleeper::start(Some((501, 20)));
    let bash = job_process.pid();
    let server = ProcessInfo {
        argv: vec!["/usr/bin/python3".into(), "server.py".into()],
        ..process(GONE + 2, bash)
    };
    let launchctl = Launchctl::new(&[
        ("gui/501", listing("gui/501", &[(77, "com.apple.Finder")])),
        ("user/501", listing("user/501", &[(bash, LABEL)])),
        ("system", listing("system", &[])),
        (
            "user/501/com.example.hermes-webui",
            printed("user-agent.txt", "user/501", LABEL, Some(bash)),
        ),
    ]);
    let r = resolve_auto(&server, &blind(), &launchctl, true);
    assert_eq!(r.method, Method::Launchd, "{r:#?}");
    assert_eq!(r.problem, None);
    let s = r.supervision.unwrap();
    assert_eq!(s.supervisor.name, LABEL);
    assert_eq!(s.supervisor.domain.as_deref(), Some("user/501"));
    assert_eq!(s.supervisor.trust, Trust::Confirmed);
    assert!(
        s.supervisor
            .evidence
            .contains(&format!("ancestor PID {bash}"))
    );
    assert_eq!(s.job.unwrap().pid, Some(bash));
    assert_eq!(s.orphan, None);
    assert_eq!(
        s.supervisor.restart_argv().join(" "),
        "launchctl kickstart -k user/501/com.example.hermes-webui"
    );
    assert_eq!(
        launchctl.calls(),
        [
            "print gui/501",
            "print user/501",
            "print system",
            "print user/501/com.example.hermes-webui"
        ]
    );

    // Where launchd is not init, auto-detection does not ask it: the supervisor stays
    // unknown and the restart is held back.
    let quiet = Launchctl::new(&[]);
    let r = resolve_auto(&server, &blind(), &quiet, false);
    assert_eq!(r.method, Method::Builtin);
    assert!(r.problem.unwrap().contains("set restart.method"));
    assert!(quiet.calls().is_empty());
}

/// A server started from an IDE's terminal is in launchd's one-shot job; neither its
/// XPC_SERVICE_NAME nor the listing makes it a job to kickstart.
#[test]
fn an_ide_terminal_is_no_launchd_job() {
    let oneshot = "com.apple.xpc.launchd.oneshot.0x10000003.Code";
    let ide = clues(&[("XPC_SERVICE_NAME", oneshot)]);
    assert_eq!(detect(&ide), None);
    let server = process(GONE + 2, GONE + 1);
    let launchctl = Launchctl::new(&[
        ("gui/501", listing("gui/501", &[(GONE + 1, oneshot)])),
        ("user/501", listing("user/501", &[])),
        ("system", listing("system", &[])),
        (
            "gui/501/com.apple.xpc.launchd.oneshot.0x10000003.Code",
            printed("ide-oneshot.txt", "gui/501", oneshot, Some(GONE + 1)),
        ),
    ]);
    let r = resolve_auto(&server, &ide, &launchctl, true);
    assert_eq!((r.method, r.supervision), (Method::Builtin, None));
    assert!(
        !launchctl
            .calls()
            .iter()
            .any(|c| c.contains("/com.apple.xpc")),
        "{:?}",
        launchctl.calls()
    );
    // Named by the operator, it is still refused before any kickstart.
    let named = RestartConfig {
        method: Method::Launchd,
        label: Some(oneshot.into()),
        ..auto()
    };
    let r = run_resolve(&named, Some(&server), &ide, &launchctl, None, true, GONE);
    assert_eq!((r.method, r.supervision), (Method::None, None));
    assert!(r.unverified.unwrap().contains("one-shot job"));
}

/// The watchdog runs as a LaunchAgent, and its label leaked into the server it
/// started: that label names no job of the server's.
#[test]
fn the_watchdogs_own_label_is_not_the_servers_job() {
    let own = "io.github.watchdog.check";
    let leaked = clues(&[("XPC_SERVICE_NAME", own)]);
    let server = process(GONE + 2, 1);
    let launchctl = Launchctl::new(&[]);
    let r = run_resolve(
        &auto(),
        Some(&server),
        &leaked,
        &launchctl,
        Some(own),
        false,
        GONE,
    );
    assert_eq!((r.method, r.supervision), (Method::Builtin, None));
    assert!(launchctl.calls().is_empty(), "{:?}", launchctl.calls());
    // Without the watchdog's label the same clue is a job, as before.
    assert_eq!(detect(&leaked).map(|s| s.name), Some(own.to_string()));
}

/// A job whose PID is the watchdog (or an ancestor of it) is never kickstarted:
/// `kickstart -k` would kill the watchdog mid-run.
#[test]
fn a_job_run_by_the_watchdog_itself_is_not_restarted() {
    let me = std::process::id();
    let server = process(GONE + 2, 1);
    let labelled = clues(&[("XPC_SERVICE_NAME", LABEL)]);
    for pid in [me, std::os::unix::process::parent_id()] {
        let launchctl = Launchctl::new(&[(
            "gui/501/com.example.hermes-webui",
            printed("running.txt", "gui/501", LABEL, Some(pid)),
        )]);
        let r = run_resolve(
            &auto(),
            Some(&server),
            &labelled,
            &launchctl,
            None,
            false,
            me,
        );
        assert_eq!((r.method, &r.supervision), (Method::None, &None), "{pid}");
        let why = r.unverified.unwrap();
        assert!(why.contains("would kill the watchdog"), "{why}");
    }
}

/// The domain that answers is the one used: an agent only in user/501, a daemon with
/// UserName (running as 501) only in system.
#[test]
fn the_domain_that_answers_is_used_for_status_and_kickstart() {
    let labelled = clues(&[("XPC_SERVICE_NAME", LABEL)]);
    let server = ProcessInfo {
        argv: vec![
            "/opt/homebrew/bin/python3".into(),
            "/Users/me/hermes-webui/server.py".into(),
            "--port".into(),
            "8787".into(),
        ],
        ..process(GONE + 2, 1)
    };
    for (domain, fixture_name, calls) in [
        ("user/501", "user-agent.txt", 2),
        ("system", "system-daemon-username.txt", 3),
    ] {
        let service = format!("{domain}/{LABEL}");
        let launchctl = Launchctl::new(&[(
            service.as_str(),
            printed(fixture_name, domain, LABEL, Some(GONE + 2)),
        )]);
        let r = resolve_auto(&server, &labelled, &launchctl, false);
        let s = r.supervision.expect("supervised");
        assert_eq!(s.supervisor.domain.as_deref(), Some(domain));
        assert_eq!(s.supervisor.trust, Trust::SameUser);
        assert_eq!(
            s.supervisor.status_argv().join(" "),
            format!("launchctl print {service}")
        );
        assert_eq!(
            s.supervisor.restart_argv().join(" "),
            format!("launchctl kickstart -k {service}")
        );
        assert_eq!(launchctl.calls().len(), calls, "{:?}", launchctl.calls());
        assert_eq!(launchctl.calls().last(), Some(&format!("print {service}")));
    }
}

/// launchd answered, but the job is not one loaded from a plist, or it runs neither
/// the target nor its program: nothing is restarted through it.
#[test]
fn a_job_without_a_plist_or_unrelated_to_the_target_is_refused() {
    let labelled = clues(&[("XPC_SERVICE_NAME", LABEL)]);
    let server = process(GONE + 2, 1);
    let running = printed("running.txt", "gui/501", LABEL, Some(GONE + 2));
    for (text, words) in [
        (
            running.replacen(
                "\tpath = /Users/me/Library/LaunchAgents/com.example.hermes-webui.plist\n",
                "",
                1,
            ),
            "no plist path",
        ),
        (
            running.replacen("type = LaunchAgent", "type = XPCService", 1),
            "its type is XPCService",
        ),
        (
            printed("running.txt", "gui/501", LABEL, Some(GONE + 7)),
            "runs PID 999999007 for it",
        ),
    ] {
        let launchctl = Launchctl::new(&[("gui/501/com.example.hermes-webui", text)]);
        let r = resolve_auto(&server, &labelled, &launchctl, false);
        assert_eq!(r.method, Method::None, "{words}");
        let why = r.unverified.unwrap();
        assert!(why.contains(words), "{words:?} not in {why}");
        assert!(
            why.contains("launchd job gui/501/com.example.hermes-webui"),
            "{why}"
        );
    }
}

/// A history entry written before domains were recorded still reads.
#[test]
fn a_supervisor_without_a_domain_still_reads() {
    let old: Supervisor = serde_json::from_str(
        r#"{"kind":"launchd","name":"com.x","user":false,"uid":501,
            "server_url":null,"evidence":"XPC_SERVICE_NAME","trust":"same_user"}"#,
    )
    .unwrap();
    assert_eq!(old.domain, None);
    assert_eq!(old.status_argv().join(" "), "launchctl print gui/501/com.x");
}

/// A root watchdog (or any other user) watching a user's LaunchAgent: the label in the
/// target's environment is only that user's word, but on a Mac launchd's own listing
/// pairs the target's PID with its job, and that is what is used. Where launchd is not
/// init, or lists nothing for the PID, the claim is refused as before.
#[test]
fn another_users_label_is_used_only_as_launchd_lists_it() {
    let server = ProcessInfo {
        uid: Some(502),
        ..process(GONE + 2, GONE)
    };
    let env = clues(&[("XPC_SERVICE_NAME", "com.example.claimed")]);
    let launchctl = Launchctl::new(&[
        ("gui/502", listing("gui/502", &[(GONE + 2, LABEL)])),
        // The same job seen again from the user domain is the same job.
        ("user/502", listing("user/502", &[(GONE + 2, LABEL)])),
        ("system", listing("system", &[])),
        (
            "gui/502/com.example.hermes-webui",
            printed("running.txt", "gui/502", LABEL, Some(GONE + 2)),
        ),
    ]);
    let r = resolve_auto(&server, &env, &launchctl, true);
    assert_eq!(r.method, Method::Launchd, "{r:#?}");
    assert_eq!(r.unverified, None);
    let s = r.supervision.unwrap();
    assert_eq!(
        s.supervisor.name, LABEL,
        "launchd's label, not the claimed one"
    );
    assert_eq!(s.supervisor.trust, Trust::Confirmed);
    assert_eq!(s.supervisor.domain.as_deref(), Some("gui/502"));
    assert!(s.supervisor.evidence.contains("launchd lists its PID"));

    // Two different jobs for one PID across domains: not believed, the claim refused.
    let split = Launchctl::new(&[
        ("gui/502", listing("gui/502", &[(GONE + 2, LABEL)])),
        (
            "user/502",
            listing("user/502", &[(GONE + 2, "com.example.other")]),
        ),
        ("system", listing("system", &[])),
    ]);
    let r = resolve_auto(&server, &env, &split, true);
    assert_eq!(r.method, Method::None, "{r:#?}");
    assert!(r.unverified.unwrap().contains("com.example.claimed"));
    assert!(!split.calls().iter().any(|c| c.contains("com.example")));

    // Where launchd is not init nothing is asked.
    let quiet = Launchctl::new(&[]);
    let r = resolve_auto(&server, &env, &quiet, false);
    assert_eq!(r.method, Method::None);
    assert!(r.unverified.is_some());
    assert!(quiet.calls().is_empty());
}

/// A real process for a test's process tree, killed and reaped when the test ends,
/// also when it fails.
struct Sleeper(std::process::Child);

impl Sleeper {
    /// `sleep 30` as `uid`/`gid` (which needs root, as CI runs the tests), or as the
    /// test's own user.
    fn start(ids: Option<(u32, u32)>) -> Sleeper {
        use std::os::unix::process::CommandExt;
        let mut command = std::process::Command::new("sleep");
        command.arg("30");
        // The test's own user (a Mac runner's is 501) needs no change of user.
        if let Some((uid, gid)) = ids.filter(|&(uid, _)| uid != os::own_uid()) {
            assert_eq!(
                os::own_uid(),
                0,
                "this test needs root (script/test as root runs it; so does .ci/run)"
            );
            command.uid(uid).gid(gid);
        }
        Sleeper(command.spawn().unwrap())
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A launchctl that prints `cron_job` for `system/LABEL` and lists cron (PID `cron`)
/// as the one job of `system`, and no job in the other domains `uid`'s server may be in.
fn launchctl_knowing_cron(uid: u32, label: &str, cron: u32, cron_job: String) -> Launchctl {
    let mut answers = vec![(format!("system/{label}"), cron_job)];
    for domain in launchd::candidate_domains(uid) {
        let jobs: &[(u32, &str)] = if domain == "system" {
            &[(cron, label)]
        } else {
            &[]
        };
        answers.push((domain.clone(), listing(&domain, jobs)));
    }
    let answers: Vec<(&str, String)> = answers
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    Launchctl::new(&answers)
}

/// Resolves `server` (a child of cron) in auto mode, and asserts cron was not taken
/// for its job.
fn resolve_not_cron(server: &ProcessInfo, launchctl: &Launchctl) -> Resolution {
    let r = run_resolve(&auto(), Some(server), &blind(), launchctl, None, true, GONE);
    assert_ne!(r.method, Method::Launchd, "{r:#?}");
    assert!(
        r.supervision.is_none(),
        "cron taken for the server's job: {r:#?}"
    );
    r
}

/// A server a user's crontab started (or one started from an SSH login) descends
/// from a daemon of launchd's `system` domain that runs as root: cron, sshd. That
/// daemon is not the server's job: `kickstart -k system/com.vix.cron` would restart
/// cron, every run, and never the server. A job found by an ancestor's PID is only
/// believed while the walk stays with the target's user.
#[test]
fn an_ancestor_of_another_user_is_not_the_servers_job() {
    let cron = Sleeper::start(None);
    let uid = os::own_uid() + 1;
    let server = ProcessInfo {
        uid: Some(uid),
        argv: vec!["/usr/bin/python3".into(), "server.py".into()],
        ..process(GONE + 2, cron.pid())
    };
    let cron_label = "com.vix.cron";
    let cron_job = printed(
        "never-exited-system.txt",
        "system",
        cron_label,
        Some(cron.pid()),
    );
    let launchctl = launchctl_knowing_cron(uid, cron_label, cron.pid(), cron_job);
    resolve_not_cron(&server, &launchctl);
    assert!(
        !launchctl.calls().iter().any(|c| c.contains(cron_label)),
        "{:?}",
        launchctl.calls()
    );
}

/// A root server a root crontab started descends from cron, a job of `system` that
/// runs as root too: the same user all the way up. cron's plist is macOS's own
/// (/System/Library/LaunchDaemons), as sshd's is, and such a job runs no server:
/// `kickstart -k system/com.vix.cron` would restart cron and leave the server down.
#[test]
fn macos_own_jobs_are_never_the_servers_job() {
    let cron = Sleeper::start(None);
    let uid = os::own_uid();
    let server = ProcessInfo {
        uid: Some(uid),
        argv: vec!["/usr/bin/python3".into(), "server.py".into()],
        ..process(GONE + 2, cron.pid())
    };
    let label = "com.vix.cron";
    let cron_job = printed("never-exited-system.txt", "system", label, Some(cron.pid())).replacen(
        "/Library/LaunchDaemons/com.example.hermes-webui.plist",
        "/System/Library/LaunchDaemons/com.vix.cron.plist",
        1,
    );
    assert!(cron_job.contains("path = /System/Library/LaunchDaemons/com.vix.cron.plist"));
    let launchctl = launchctl_knowing_cron(uid, label, cron.pid(), cron_job);
    let r = resolve_not_cron(&server, &launchctl);
    let why = r.unverified.expect("the operator is told");
    assert!(why.contains("macOS's own jobs"), "{why}");
}
