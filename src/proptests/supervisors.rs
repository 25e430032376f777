//! What the supervisors' own tools print (parsed in src/probe/supervisor/): `launchctl
//! print`, `supervisorctl status`, `sv status`, `systemctl show`, and the unit in
//! `/proc/PID/cgroup`. The text is the tool's, but it quotes names, paths and
//! environments the job's owner chose.

use proptest::prelude::*;

use super::{any_text, edits, mutate, one_line};
use crate::probe::supervisor::launchd::{LastExit, is_launchd_label, parse_print};
use crate::probe::supervisor::{Kind, Supervisor, parse_status, runit, supervisord, systemd};

fn fixture(path: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

fn supervisor(kind: Kind, name: &str) -> Supervisor {
    Supervisor {
        kind,
        name: name.to_string(),
        user: false,
        uid: 501,
        server_url: None,
        evidence: "test".to_string(),
        trust: Default::default(),
        domain: None,
        tool: Default::default(),
    }
}

/// Whether `text` shows `pid` whole between `before` and `after` (`pid 313,` shows
/// 313; `pid 31337,` does not, nor does `pid 313` at the end of a cut line).
fn shown_between(text: &str, before: &str, after: &str, pid: u32) -> bool {
    text.match_indices(before).any(|(at, _)| {
        text[at + before.len()..]
            .split_once(after)
            .is_some_and(|(number, _)| number.trim().parse() == Ok(pid))
    })
}

// --- launchctl print -------------------------------------------------------------------

/// A value as launchctl prints it after ` = `: one line, no surrounding blanks, not
/// opening or closing a block.
fn launchd_value() -> impl Strategy<Value = String> {
    "[A-Za-z0-9/._:()-][A-Za-z0-9/._:() =-]{0,20}[A-Za-z0-9/._:()-]|[A-Za-z0-9/._-]"
}

fn last_exit() -> impl Strategy<Value = LastExit> {
    prop_oneof![
        Just(LastExit::NeverExited),
        (any::<i32>(), proptest::option::of("[A-Z_]{1,12}"))
            .prop_map(|(code, name)| LastExit::Code { code, name }),
        "[A-Za-z][A-Za-z ()]{0,12}[A-Za-z()]"
            .prop_filter("not the never-exited form", |s| s != "(never exited)")
            .prop_map(LastExit::Other),
    ]
}

fn last_exit_text(exit: &LastExit) -> String {
    match exit {
        LastExit::NeverExited => "(never exited)".to_string(),
        LastExit::Code { code, name: None } => code.to_string(),
        LastExit::Code {
            code,
            name: Some(name),
        } => format!("{code}: {name}"),
        LastExit::Other(text) => text.clone(),
    }
}

#[derive(Debug, Clone)]
struct Job {
    target: String,
    pid: Option<u32>,
    state: Option<String>,
    last_exit: Option<LastExit>,
    last_signal: Option<String>,
    program: Option<String>,
    arguments: Vec<String>,
    /// Lines inside nested blocks that look like the job's own (`pid = 1`).
    decoys: Vec<(String, String)>,
}

fn job() -> impl Strategy<Value = Job> {
    (
        (
            "(gui/[0-9]{1,5}|system)/[a-z][a-z0-9.-]{0,20}",
            proptest::option::of(1u32..),
            proptest::option::of(launchd_value()),
            proptest::option::of(last_exit()),
        ),
        (
            proptest::option::of(launchd_value()),
            proptest::option::of(launchd_value()),
            // An argument as launchctl shows it, indented: no leading blank, and not a
            // lone `}` (which would close the block).
            prop::collection::vec("[^\\s}][^\n\r]{0,15}|[^\\s}]", 0..5),
            prop::collection::vec(
                (
                    prop::sample::select(vec!["pid", "state", "program", "last exit code"]),
                    launchd_value(),
                ),
                0..4,
            ),
        ),
    )
        .prop_map(
            |((target, pid, state, last_exit), (last_signal, program, arguments, decoys))| Job {
                target,
                pid,
                state,
                last_exit,
                last_signal,
                program,
                arguments,
                decoys: decoys
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            },
        )
}

/// The job as `launchctl print` lays it out: tab-indented `key = value` lines, nested
/// blocks for the environment and the endpoints, and the decoys inside them.
fn print_text(job: &Job) -> String {
    print_text_with(job, "x")
}

const PLIST: &str = "/Users/me/Library/LaunchAgents/x.plist";

/// [`print_text`] with `value` as an environment value, which the job's owner writes.
fn print_text_with(job: &Job, value: &str) -> String {
    let mut lines = vec![
        format!("{} = {{", job.target),
        "\tactive count = 1".into(),
        format!("\tpath = {PLIST}"),
        "\ttype = LaunchAgent".into(),
    ];
    let mut add = |key: &str, value: &Option<String>| {
        if let Some(value) = value {
            lines.push(format!("\t{key} = {value}"));
        }
    };
    add("state", &job.state);
    add("program", &job.program);
    lines.push("\targuments = {".into());
    lines.extend(job.arguments.iter().map(|a| format!("\t\t{a}")));
    lines.push("\t}".into());
    lines.push(String::new());
    lines.push("\tenvironment = {".into());
    lines.push(format!("\t\tXPC_SERVICE_NAME => {value}"));
    lines.extend(job.decoys.iter().map(|(k, v)| format!("\t\t{k} = {v}")));
    lines.push("\t}".into());
    lines.push("\tendpoints = {".into());
    lines.push("\t\t\"x.control\" = {".into());
    lines.extend(job.decoys.iter().map(|(k, v)| format!("\t\t\t{k} = {v}")));
    lines.push("\t\t}".into());
    lines.push("\t}".into());
    let pid = job.pid.map(|p| p.to_string());
    let mut add = |key: &str, value: &Option<String>| {
        if let Some(value) = value {
            lines.push(format!("\t{key} = {value}"));
        }
    };
    add("pid", &pid);
    add(
        "last exit code",
        &job.last_exit.as_ref().map(last_exit_text),
    );
    add("last terminating signal", &job.last_signal);
    lines.push("}".into());
    lines.join("\n") + "\n"
}

/// What an owner may put in an environment value to shift the layout: newlines,
/// tabs, braces and the keys the watchdog believes.
fn shifting_value() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "\n",
            "\t",
            "{",
            "}",
            " = ",
            " => ",
            "pid",
            "path",
            "type",
            "1",
            "4242",
            "/x.plist",
            "LaunchDaemon",
            "arguments",
            "x",
        ]),
        0..24,
    )
    .prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(super::config(256))]

    #[test]
    fn launchctl_print_never_panics(text in any_text(), edits in edits(), fixture_no in 0usize..4) {
        let _ = parse_print(&text);
        let name = ["running", "killed-spawn-scheduled", "never-exited-system", "not-running-ex-config"][fixture_no];
        let edited = mutate(&fixture(&format!("launchctl/{name}.txt")), &edits);
        // A PID is only ever one that the output shows.
        if let Some(pid) = parse_print(&edited).ok().and_then(|job| job.pid) {
            let shown = edited.lines().any(|line| {
                line.trim().split_once(" = ").is_some_and(|(k, v)| k.trim() == "pid" && v.trim().parse() == Ok(pid))
            });
            prop_assert!(shown, "{} in {:?}", pid, edited);
        }
        let _ = LastExit::parse(&text);
        let _ = is_launchd_label(&text);
        let _ = parse_status(&supervisor(Kind::Launchd, "x"), &text);
    }

    #[test]
    fn launchctl_print_round_trips(job in job(), crlf: bool, noise in proptest::option::of("[a-z ]{0,20}")) {
        let mut text = print_text(&job);
        if crlf {
            text = text.replace('\n', "\r\n");
        }
        if let Some(noise) = noise {
            // A warning before the header is not part of the job.
            text = format!("{noise}\n{text}");
        }
        let parsed = parse_print(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed.target, job.target);
        prop_assert_eq!(parsed.pid, job.pid);
        prop_assert_eq!(parsed.state, job.state);
        prop_assert_eq!(parsed.last_exit, job.last_exit);
        prop_assert_eq!(parsed.last_signal, job.last_signal);
        prop_assert_eq!(parsed.program, job.program);
        prop_assert_eq!(parsed.arguments, job.arguments);
        prop_assert_eq!(parsed.path.as_deref(), Some(PLIST));
        prop_assert_eq!(parsed.kind.as_deref(), Some("LaunchAgent"));
    }

    /// Whatever an environment value holds (newlines, tabs, braces, `pid = 1`), the
    /// job's `pid`, `path` and `type` are the ones launchctl printed for it, or the
    /// output is refused: a value never shifts what is believed (src/probe/supervisor/
    /// launchd.rs, parse_print; the job here runs, so it has a `pid` line of its own).
    #[test]
    fn an_environment_value_never_shifts_the_job(job in job(), value in shifting_value()) {
        let job = Job { pid: Some(job.pid.unwrap_or(77)), ..job };
        let text = print_text_with(&job, &value);
        if let Ok(parsed) = parse_print(&text) {
            prop_assert_eq!(parsed.pid, job.pid, "{:?}", text);
            prop_assert_eq!(parsed.path.as_deref(), Some(PLIST), "{:?}", text);
            prop_assert_eq!(parsed.kind.as_deref(), Some("LaunchAgent"), "{:?}", text);
            prop_assert_eq!(parsed.arguments, job.arguments, "{:?}", text);
        }
    }

    /// Lines after the job's closing `}` (the job's block closed early) are an error.
    #[test]
    fn text_after_the_job_is_an_error(job in job(), trailing in "[a-z]{1,5} = [0-9]{1,4}") {
        let text = format!("{}{trailing}\n", print_text(&job));
        prop_assert!(parse_print(&text).is_err());
    }

    /// However it is cut before the job's closing `}`, the output is an error, never
    /// a job with a shorter PID or none.
    #[test]
    fn launchctl_print_cut_short_is_an_error(job in job(), cut: prop::sample::Index) {
        let text = print_text(&job);
        let end = text.find("\n}\n").ok_or_else(|| TestCaseError::fail("no closing brace"))?;
        let mut at = cut.index(end + 2);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        prop_assert!(parse_print(&text[..at]).is_err(), "{:?}", &text[..at]);
    }

    #[test]
    fn last_exit_round_trips(exit in last_exit()) {
        prop_assert_eq!(LastExit::parse(&last_exit_text(&exit)), exit);
    }
}

// --- supervisorctl status --------------------------------------------------------------

/// A program line's state and description as supervisorctl prints them.
fn program_state() -> impl Strategy<Value = (String, Option<u32>, String)> {
    prop_oneof![
        (
            prop::sample::select(vec!["RUNNING", "STOPPING"]),
            any::<u32>(),
            "[0-9]{1,2}:[0-9]{2}:[0-9]{2}|[0-9] days?, [0-9]:[0-9]{2}:[0-9]{2}"
        )
            .prop_map(|(state, pid, uptime)| {
                (
                    state.to_string(),
                    Some(pid),
                    format!("pid {pid}, uptime {uptime}"),
                )
            }),
        (
            prop::sample::select(vec![
                "FATAL", "BACKOFF", "STOPPED", "EXITED", "STARTING", "UNKNOWN"
            ]),
            prop::sample::select(vec![
                "",
                "Exited too quickly (process log may have details)",
                "Nov 28 01:02 PM",
                "Not started",
                "can't find command 'x'",
            ]),
        )
            .prop_map(|(state, description)| (
                state.to_string(),
                None,
                description.to_string()
            )),
    ]
}

proptest! {
    #![proptest_config(super::config(256))]

    #[test]
    fn supervisorctl_status_never_panics(text in any_text(), name in any_text(), edits in edits()) {
        let _ = supervisord::parse_status(&text, &name);
        let sample = "hermes:hermes-webui   RUNNING   pid 31337, uptime 1 day, 2:03:04\n\
                      other                 FATAL     Exited too quickly (process log may have details)\n";
        let edited = mutate(sample, &edits);
        if let Some(pid) = supervisord::parse_status(&edited, "hermes:hermes-webui").and_then(|p| p.pid) {
            // supervisorctl's columns are split at any blank.
            let words = edited.split_whitespace().collect::<Vec<_>>().join(" ");
            prop_assert!(shown_between(&words, "pid ", ",", pid), "{} in {:?}", pid, edited);
        }
        let _ = parse_status(&supervisor(Kind::Supervisor, &name), &text);
    }

    /// `%-Ns %-10s %s` per program (supervisorctl pads the name to the longest one).
    #[test]
    fn supervisorctl_status_round_trips(
        programs in prop::collection::btree_map(
            "[a-z][a-z0-9_.-]{0,10}(:[a-z][a-z0-9_.-]{0,10})?",
            program_state(),
            1..6,
        ),
        pick: prop::sample::Index,
    ) {
        let width = programs.keys().map(String::len).max().unwrap_or(0).max(32);
        let text: String = programs
            .iter()
            .map(|(name, (state, _, description))| format!("{name:<width$} {state:<10} {description}\n"))
            .collect();
        let (name, (state, pid, description)) = programs.iter().nth(pick.index(programs.len())).unwrap();
        let found = supervisord::parse_status(&text, name)
            .ok_or_else(|| TestCaseError::fail(format!("no line for {name}")))?;
        prop_assert_eq!(&found.name, name);
        prop_assert_eq!(&found.state, state);
        prop_assert_eq!(found.pid, *pid);
        prop_assert_eq!(&found.description, description);
        // A one-process group's line shows the bare name; `NAME:NAME` finds it.
        if !name.contains(':') && !programs.contains_key(&format!("{name}:{name}")) {
            prop_assert_eq!(supervisord::parse_status(&text, &format!("{name}:{name}")), Some(found));
        }
    }
}

// --- sv status -------------------------------------------------------------------------

/// A service directory: any path on one line, except for the separators `sv status`
/// uses around it (`: `, `; `, `(pid `, `want down`), which its output cannot tell
/// from the directory's own.
fn service_dir() -> impl Strategy<Value = String> {
    "/[^\n\r]{1,30}".prop_filter("no sv separators", |dir| {
        !dir.contains(": ")
            && !dir.contains("; ")
            && !dir.contains("(pid ")
            && !dir.contains("want down")
            && !dir.ends_with(':')
    })
}

proptest! {
    #![proptest_config(super::config(256))]

    #[test]
    fn sv_status_never_panics(text in any_text(), edits in edits()) {
        let _ = runit::parse_status(&text);
        let sample = "run: /etc/sv/hermes: (pid 21974) 2s, want down; run: log: (pid 21970) 2s\n";
        let edited = mutate(sample, &edits);
        if let Some(pid) = runit::parse_status(&edited).and_then(|s| s.pid) {
            prop_assert!(shown_between(&edited, "(pid ", ")", pid), "{} in {:?}", pid, edited);
        }
        let _ = parse_status(&supervisor(Kind::Runit, "/etc/sv/x"), &text);
    }

    /// `sv status`: `STATE: DIR: [(pid N) ]Ns[, normally up|down][, paused][, got TERM]
    /// [, want up|down]`, then `; ` and the log service's own status.
    #[test]
    fn sv_status_round_trips(
        state in prop::sample::select(vec!["run", "down", "finish"]),
        dir in service_dir(),
        pid in 1u32..,
        seconds: u32,
        normally in proptest::option::of(prop::sample::select(vec!["up", "down"])),
        paused: bool,
        got_term: bool,
        want in proptest::option::of(prop::sample::select(vec!["up", "down"])),
        log in proptest::option::of((prop::sample::select(vec!["run", "down"]), any::<u32>())),
    ) {
        let shows_pid = state != "down";
        let mut line = format!("{state}: {dir}: ");
        if shows_pid {
            line.push_str(&format!("(pid {pid}) "));
        }
        line.push_str(&format!("{seconds}s"));
        if let Some(n) = normally {
            line.push_str(&format!(", normally {n}"));
        }
        if paused {
            line.push_str(", paused");
        }
        if got_term {
            line.push_str(", got TERM");
        }
        if let Some(w) = want {
            line.push_str(&format!(", want {w}"));
        }
        if let Some((log_state, log_pid)) = log {
            line.push_str(&format!("; {log_state}: log: (pid {log_pid}) 5s, want down"));
        }
        line.push('\n');
        let status = runit::parse_status(&line)
            .ok_or_else(|| TestCaseError::fail(format!("no status in {line:?}")))?;
        prop_assert_eq!(status.state, state);
        prop_assert_eq!(status.pid, shows_pid.then_some(pid));
        prop_assert_eq!(status.want_down, want == Some("down"));
    }

    /// `sv`'s complaints about reaching the service are no state.
    #[test]
    fn sv_complaints_are_no_state(
        kind in prop::sample::select(vec!["warning", "fail"]),
        dir in service_dir(),
        why in one_line(40),
    ) {
        prop_assert_eq!(runit::parse_status(&format!("{kind}: {dir}: {why}\n")), None);
    }
}

// --- systemctl show, /proc/PID/cgroup --------------------------------------------------

proptest! {
    #![proptest_config(super::config(256))]

    #[test]
    fn systemctl_show_never_panics(text in any_text(), edits in edits()) {
        let _ = systemd::parse_show(&text);
        let edited = mutate(&fixture("systemd/show-running.txt"), &edits);
        if let Some(pid) = systemd::parse_show(&edited).main_pid {
            prop_assert!(edited.contains(&pid.to_string()), "{} in {:?}", pid, edited);
        }
        let _ = parse_status(&supervisor(Kind::Systemd, "x.service"), &text);
    }

    /// `KEY=VALUE` lines in any order, among properties that were not asked for.
    #[test]
    fn systemctl_show_round_trips(
        main_pid: u32,
        active in "[a-z-]{1,12}",
        sub in "[a-z-]{0,12}",
        result in "[a-z-]{1,16}",
        n_restarts: Option<u64>,
        load in "[a-z-]{1,12}",
        others in prop::collection::vec(("[A-Z][A-Za-z]{0,12}", "[^\n]{0,20}"), 0..5),
        rotate: usize,
    ) {
        const ASKED: [&str; 6] = ["MainPID", "ActiveState", "SubState", "Result", "NRestarts", "LoadState"];
        let mut lines = vec![
            format!("MainPID={main_pid}"),
            format!("ActiveState={active}"),
            format!("SubState={sub}"),
            format!("Result={result}"),
            format!("NRestarts={}", n_restarts.map_or("[not set]".into(), |n| n.to_string())),
            format!("LoadState={load}"),
        ];
        lines.extend(
            others.iter()
                .filter(|(key, _)| !ASKED.contains(&key.as_str()))
                .map(|(key, value)| format!("{key}={value}")),
        );
        let n = lines.len();
        lines.rotate_left(rotate % n);
        let status = systemd::parse_show(&(lines.join("\n") + "\n"));
        prop_assert_eq!(status.start_limit_hit(), result == "start-limit-hit");
        prop_assert_eq!(status.main_pid, (main_pid > 0).then_some(main_pid));
        prop_assert_eq!(status.active_state, active);
        prop_assert_eq!(status.sub_state, sub);
        prop_assert_eq!(status.result, result);
        prop_assert_eq!(status.n_restarts, n_restarts);
        prop_assert_eq!(status.load_state, load);
    }

    #[test]
    fn cgroup_unit_never_panics(text in any_text(), edits in edits()) {
        let _ = systemd::unit_from_cgroup(&text);
        let _ = systemd::unit_from_cgroup(&mutate(
            "12:pids:/system.slice/x.service\n1:name=systemd:/system.slice/cron.service\n0::/user.slice/user-1000.slice/user@1000.service/app.slice/hermes.service\n",
            &edits,
        ));
    }

    /// The unit systemd itself names for the process (`systemctl status PID`): the
    /// first component after the slices (after the user manager's `user@UID.service`
    /// for a user unit), whatever a delegated subtree below it holds (its owner names
    /// those cgroups: `x.service/sshd.service` is still `x.service`).
    #[test]
    fn cgroup_unit_round_trips(
        user in proptest::option::of(0u32..100_000),
        slices in prop::collection::vec("[a-z][a-z0-9-]{0,8}\\.slice", 0..3),
        unit in "[a-z][a-z0-9_.@-]{0,20}\\.service"
            .prop_filter("a user manager is no job", |u| !u.starts_with("user@")),
        below in prop::collection::vec("[a-z][a-z0-9_-]{0,8}(\\.service|\\.slice|\\.scope)?", 0..3),
        v1: bool,
    ) {
        let mut path = String::new();
        if let Some(uid) = user {
            path.push_str(&format!("/user.slice/user-{uid}.slice/user@{uid}.service"));
        }
        for slice in &slices {
            path.push('/');
            path.push_str(slice);
        }
        path.push('/');
        path.push_str(&unit);
        for sub in &below {
            path.push('/');
            path.push_str(sub);
        }
        let text = if v1 {
            format!("12:pids:/system.slice/other.service\n3:cpu,cpuacct:/x.service\n1:name=systemd:{path}\n")
        } else {
            format!("0::{path}\n")
        };
        prop_assert_eq!(systemd::unit_from_cgroup(&text), Some((unit, user.is_some())));
    }
}

// --- the status of a job, whatever the supervisor ---------------------------------------

proptest! {
    #![proptest_config(super::config(256))]

    /// `systemctl show` becomes a job status only for a loaded unit with a state; the
    /// PID and state pass through.
    #[test]
    fn systemd_job_status(
        main_pid: u32,
        active in "[a-z-]{0,10}",
        sub in "[a-z-]{0,10}",
        load in prop_oneof![Just("loaded".to_string()), Just("not-found".to_string()), Just(String::new()), "[a-z-]{1,10}"],
        result in prop_oneof![Just("start-limit-hit"), Just("success")],
    ) {
        let text = format!("MainPID={main_pid}\nResult={result}\nLoadState={load}\nActiveState={active}\nSubState={sub}\n");
        let status = parse_status(&supervisor(Kind::Systemd, "hermes.service"), &text);
        if active.is_empty() || load != "loaded" {
            let why = status.err().ok_or_else(|| TestCaseError::fail("a status for no loaded unit"))?;
            if !active.is_empty() && !load.is_empty() {
                prop_assert!(why.contains("hermes.service") && why.contains("restart.unit"), "{}", why);
            }
        } else {
            let job = status.map_err(TestCaseError::fail)?;
            prop_assert_eq!(job.pid, (main_pid > 0).then_some(main_pid));
            let state = if sub.is_empty() { active.clone() } else { format!("{active} ({sub})") };
            prop_assert_eq!(job.state, state);
            prop_assert_eq!(job.start_limit_hit, result == "start-limit-hit");
        }
    }

    /// supervisord's and runit's PIDs pass through to the job status.
    #[test]
    fn supervisord_and_runit_job_status(pid in 1u32.., running: bool) {
        let line = if running {
            format!("web:web   RUNNING   pid {pid}, uptime 0:00:05\n")
        } else {
            "web:web   FATAL     Exited too quickly (process log may have details)\n".to_string()
        };
        let job = parse_status(&supervisor(Kind::Supervisor, "web:web"), &line).map_err(TestCaseError::fail)?;
        prop_assert_eq!(job.pid, running.then_some(pid));
        prop_assert_eq!(job.state, if running { "RUNNING" } else { "FATAL" });

        let line = if running { format!("run: /etc/sv/web: (pid {pid}) 5s\n") } else { "down: /etc/sv/web: 5s, normally up\n".to_string() };
        let job = parse_status(&supervisor(Kind::Runit, "/etc/sv/web"), &line).map_err(TestCaseError::fail)?;
        prop_assert_eq!(job.pid, running.then_some(pid));
        prop_assert_eq!(job.state, if running { "run" } else { "down" });
    }
}
