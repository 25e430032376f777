//! `contrib/` (contrib/README.md): the watchdog's own jobs are exactly what `watchdog
//! schedule` prints for the documented inputs (no drift; `WATCHDOG_BLESS=1` rewrites
//! them), and every file is read by the program that will read it on the operator's
//! machine: plistlib (and launchd's key types), `systemd-analyze verify`, supervisord's
//! own config loader, `sh -n`, logrotate (a dry run and a real forced rotation).
//! newsyslog has no Linux build: its lines are checked field by field here.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{
    RunResult, WATCHDOG_TIMEOUT, find_executable, python3_output, run_with_timeout, watchdog_bin,
};

/// The documented inputs the watchdog's contrib files are printed for
/// (contrib/README.md): the binary where `cargo install` users copy it or Homebrew
/// links it, cron's PATH with /usr/local/bin first, and a placeholder home per OS.
const EXE: &str = "/usr/local/bin/watchdog";
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";
const MAC_HOME: &str = "/Users/you";
const LINUX_HOME: &str = "/home/you";

fn contrib() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contrib")
}

fn read(relative: &str) -> String {
    let path = contrib().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The binary's path as `schedule` names it (its `current_exe`, symlinks resolved).
fn exe() -> String {
    let bin = watchdog_bin();
    fs::canonicalize(&bin).unwrap_or(bin).display().to_string()
}

/// `name` on PATH or in the sbin directories; missing is a failure that names the
/// install, never a skip (the tests that need a tool a fresh machine lacks are
/// `#[ignore]`d with it).
fn tool(name: &str, package: &str) -> PathBuf {
    find_executable(name, &["/usr/sbin", "/sbin"]).unwrap_or_else(|| {
        panic!("{name} is not installed: run script/bootstrap, or apt-get install {package}")
    })
}

/// `watchdog schedule kind` as `env -i PATH=$PATH HOME=home` runs it, the binary's
/// real path replaced by [`EXE`]: a path cannot be chosen for the binary under test,
/// and a flag only for this would be one more way to schedule a binary that is not
/// there.
fn schedule(kind: &str, home: &str) -> String {
    let mut cmd = Command::new(watchdog_bin());
    cmd.args(["schedule", kind])
        .env_clear()
        .env("PATH", PATH)
        .env("HOME", home);
    let out = run_with_timeout(cmd, WATCHDOG_TIMEOUT);
    assert_eq!(out.status, Some(0), "{}", out.dump());
    // No config file is found for the placeholder home; one in /etc would be named.
    assert!(
        !out.stdout.contains(" -c ") && !out.stdout.contains("<string>-c</string>"),
        "schedule named a config file (is there an /etc/watchdog/watchdog.toml on this \
         machine?):\n{}",
        out.stdout
    );
    let text = out.stdout.replace(&exe(), EXE);
    assert!(text.contains(EXE), "{text}");
    text
}

/// The two units from `schedule systemd`'s output, each after its `# path` header.
fn split_units(text: &str) -> (String, String) {
    let mut units = [String::new(), String::new()];
    let mut current = None;
    for line in text.lines() {
        if line.starts_with("# ") && line.ends_with(".service") {
            current = Some(0);
        } else if line.starts_with("# ") && line.ends_with(".timer") {
            current = Some(1);
        } else if line.starts_with("# then") {
            current = None;
        } else if let Some(i) = current {
            units[i].push_str(line);
            units[i].push('\n');
        }
    }
    // The blank line before the next header belongs to neither file.
    let [service, timer] = units.map(|unit| format!("{}\n", unit.trim_end()));
    (service, timer)
}

/// What contrib/watchdog/ must hold, file by file.
fn scheduled_files() -> BTreeMap<&'static str, String> {
    let (service, timer) = split_units(&schedule("systemd", LINUX_HOME));
    BTreeMap::from([
        ("watchdog/watchdog.crontab", schedule("cron", LINUX_HOME)),
        (
            "watchdog/io.github.watchdog.check.plist",
            schedule("launchd", MAC_HOME),
        ),
        ("watchdog/watchdog-check.service", service),
        ("watchdog/watchdog-check.timer", timer),
    ])
}

#[test]
fn the_watchdogs_jobs_are_what_schedule_prints() {
    let bless = std::env::var_os("WATCHDOG_BLESS").is_some_and(|v| v == "1");
    let mut drift = Vec::new();
    for (name, printed) in scheduled_files() {
        let path = contrib().join(name);
        if bless {
            fs::write(&path, &printed).unwrap();
            eprintln!("wrote {}", path.display());
        } else if fs::read_to_string(&path).ok().as_deref() != Some(printed.as_str()) {
            drift.push(format!("contrib/{name}:\n{printed}"));
        }
    }
    assert!(
        drift.is_empty(),
        "these differ from what `watchdog schedule` prints now; review, then rewrite them \
         with `WATCHDOG_BLESS=1 cargo test --test contrib the_watchdogs_jobs`:\n{}",
        drift.join("\n")
    );
}

/// Loads each plist with plistlib and checks every key against the type launchd.plist(5)
/// gives it: launchd ignores a job whose key has the wrong type (`<string>60</string>`
/// for StartInterval) or silently drops a misspelt key. Prints the plists as JSON.
const PLIST_CHECK: &str = r#"
import json, plistlib, sys
def strs(v): return type(v) is list and all(type(x) is str for x in v)
def str_dict(v): return type(v) is dict and all(type(x) is str for x in v.values())
def int_dict(v): return type(v) is dict and all(type(x) is int for x in v.values())
KEEPALIVE = {"SuccessfulExit": bool, "Crashed": bool, "NetworkState": bool,
             "PathState": dict, "OtherJobEnabled": dict, "AfterInitialDemand": dict}
def keepalive(v):
    return type(v) is bool or (type(v) is dict and
        all(k in KEEPALIVE and type(x) is KEEPALIVE[k] for k, x in v.items()))
TYPES = {
    "Label": str, "Program": str, "WorkingDirectory": str, "RootDirectory": str,
    "StandardInPath": str, "StandardOutPath": str, "StandardErrorPath": str,
    "UserName": str, "GroupName": str,
    "ProcessType": lambda v: v in ("Background", "Standard", "Adaptive", "Interactive"),
    "RunAtLoad": bool, "Disabled": bool, "AbandonProcessGroup": bool,
    "LowPriorityIO": bool, "EnableGlobbing": bool, "InitGroups": bool,
    "StartInterval": int, "ThrottleInterval": int, "ExitTimeOut": int, "TimeOut": int,
    "Nice": int, "Umask": int,
    "ProgramArguments": strs, "WatchPaths": strs, "QueueDirectories": strs,
    "EnvironmentVariables": str_dict,
    "SoftResourceLimits": int_dict, "HardResourceLimits": int_dict,
    "KeepAlive": keepalive,
}
out, errors = {}, []
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        if not f.read(6) == b"<?xml ":
            errors.append(f"{path}: does not start with the XML declaration")
        f.seek(0)
        plist = plistlib.load(f)
    if type(plist) is not dict:
        errors.append(f"{path}: not a dictionary")
        continue
    for key, value in plist.items():
        want = TYPES.get(key)
        if want is None:
            errors.append(f"{path}: {key} is not a launchd key")
        elif isinstance(want, type) and type(value) is not want:
            errors.append(f"{path}: {key} is a {type(value).__name__}, launchd wants {want.__name__}")
        elif not isinstance(want, type) and not want(value):
            errors.append(f"{path}: {key} = {value!r} is not what launchd takes")
    if "Label" not in plist or not ("Program" in plist or "ProgramArguments" in plist):
        errors.append(f"{path}: a job needs Label and Program or ProgramArguments")
    out[path] = plist
if errors:
    sys.exit("\n".join(errors))
print(json.dumps(out))
"#;

#[test]
fn plists_are_read_by_plistlib_with_launchd_key_types() {
    let watchdog = contrib().join("watchdog/io.github.watchdog.check.plist");
    let server = contrib().join("hermes-webui/com.example.hermes-webui.plist");
    let json = python3_output(PLIST_CHECK, &[&watchdog, &server], "");
    let plists: serde_json::Value = serde_json::from_str(&json).unwrap();
    let watchdog = &plists[watchdog.display().to_string()];
    assert_eq!(
        watchdog["ProgramArguments"],
        serde_json::json!([EXE, "check"])
    );
    assert_eq!(watchdog["StartInterval"], 60);
    let server = &plists[server.display().to_string()];
    // The server in the foreground (upstream's docs/supervisor.md), kept alive, and
    // not respawned faster than the throttle.
    assert_eq!(
        server["ProgramArguments"],
        serde_json::json!([
            "/bin/bash",
            "/Users/you/hermes-webui/start.sh",
            "--foreground"
        ])
    );
    assert_eq!(server["KeepAlive"], true);
    assert!(
        server["ThrottleInterval"].as_u64().is_some_and(|s| s >= 10),
        "{server}"
    );
    assert_eq!(server["WorkingDirectory"], "/Users/you/hermes-webui");
}

/// `systemd-analyze verify` on each unit, which must pass with no warning about it
/// (an unknown or malformed setting is only a warning: "ignoring").
#[cfg(target_os = "linux")]
fn verify_unit(dir: &std::path::Path, name: &str, text: &str) {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    let mut verify = Command::new(tool("systemd-analyze", "systemd"));
    verify.args(["verify", "--man=no"]).arg(&path);
    let out = run_with_timeout(verify, WATCHDOG_TIMEOUT);
    assert_eq!(out.status, Some(0), "{name}:\n{}", out.dump());
    let unit = name.split('.').next().unwrap();
    assert!(!out.stderr.contains(unit), "{name}:\n{}", out.dump());
}

// systemd exists only on Linux (as in tests/schedule.rs).
#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs systemd-analyze (apt-get install systemd): run by script/test --all and .ci/run"]
fn systemd_units_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    // verify also checks that ExecStart's program exists: the placeholder path is
    // given the binary under test, as the operator's copy would be there.
    for name in ["watchdog-check.service", "watchdog-check.timer"] {
        let text = read(&format!("watchdog/{name}")).replace(EXE, &exe());
        verify_unit(dir.path(), name, &text);
    }
    let server = read("hermes-webui/hermes-webui.service");
    for line in [
        "ExecStart=/bin/bash %h/hermes-webui/start.sh --foreground",
        "Restart=always",
    ] {
        assert!(server.lines().any(|l| l == line), "no {line}:\n{server}");
    }
    verify_unit(dir.path(), "hermes-webui.service", &server);
}

/// Loads a supervisord.conf that includes contrib's program section with supervisord's
/// own loader (`ServerOptions.realize`, what `supervisord -c` runs first) and prints
/// each program as supervisord understood it.
const SUPERVISORD_LOAD: &str = r#"
import json, sys
from supervisor.options import ServerOptions
# autorestart=true is the class RestartUnconditionally itself (supervisor/datatypes.py).
options = ServerOptions()
options.realize(args=["-c", sys.argv[1]])
out = {}
for group in options.process_group_configs:
    for p in group.process_configs:
        out[p.name] = {
            "command": p.command, "directory": p.directory, "uid": p.uid,
            "autostart": p.autostart, "autorestart": getattr(p.autorestart, "__name__", repr(p.autorestart)),
            "stopsignal": int(p.stopsignal), "stopasgroup": p.stopasgroup,
            "killasgroup": p.killasgroup, "startsecs": p.startsecs,
            "environment": p.environment,
        }
print(json.dumps(out))
"#;

/// Fails (never skips) when supervisor is not installed for the `python3` on PATH.
fn require_supervisor() {
    let ok = Command::new(tool("python3", "python3"))
        .args(["-c", "import supervisor.options"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "supervisord is not installed for python3: run script/bootstrap, or \
         `python3 -m pip install supervisor`"
    );
}

#[test]
#[ignore = "needs supervisord (pip install supervisor): run by script/test --all and .ci/run"]
fn supervisord_loads_the_program_section() {
    require_supervisor();
    let dir = tempfile::tempdir().unwrap();
    // supervisord refuses an unknown user and a log file in a directory that is not
    // there: the placeholders become a user every system has and a home in the temp
    // dir with the server's log directory.
    let section = read("hermes-webui/hermes-webui.supervisord.conf");
    assert!(section.contains("\nuser=you\n"), "{section}");
    let home = dir.path().join("home").display().to_string();
    fs::create_dir_all(format!("{home}/.hermes/webui")).unwrap();
    let program = dir.path().join("hermes-webui.conf");
    fs::write(
        &program,
        section
            .replace("\nuser=you\n", "\nuser=nobody\n")
            .replace(LINUX_HOME, &home),
    )
    .unwrap();
    let conf = dir.path().join("supervisord.conf");
    fs::write(
        &conf,
        format!(
            "[supervisord]\nlogfile={d}/supervisord.log\npidfile={d}/supervisord.pid\n\
             [unix_http_server]\nfile={d}/supervisor.sock\n\
             [include]\nfiles={program}\n",
            d = dir.path().display(),
            program = program.display()
        ),
    )
    .unwrap();
    let json = python3_output(SUPERVISORD_LOAD, &[&conf], "");
    let programs: serde_json::Value = serde_json::from_str(&json).unwrap();
    let p = &programs["hermes-webui"];
    let nobody = python3_output("import pwd; print(pwd.getpwnam('nobody').pw_uid)", &[], "");
    assert_eq!(
        p["command"],
        format!("/bin/bash {home}/hermes-webui/start.sh --foreground"),
        "{programs}"
    );
    assert_eq!(p["directory"], format!("{home}/hermes-webui"), "{programs}");
    assert_eq!(p["uid"].to_string(), nobody.trim(), "{programs}");
    assert_eq!(p["autostart"], true, "{programs}");
    assert_eq!(p["autorestart"], "RestartUnconditionally", "{programs}");
    assert_eq!(p["stopsignal"], libc::SIGTERM, "{programs}");
    assert_eq!(p["stopasgroup"], true, "{programs}");
    assert_eq!(p["killasgroup"], true, "{programs}");
    assert_eq!(p["environment"]["HOME"], home, "{programs}");
}

/// `sh -n`: the script parses as POSIX sh.
fn sh_parses(what: &str, args: &[&str]) {
    let mut sh = Command::new("/bin/sh");
    sh.arg("-n").args(args);
    let out: RunResult = run_with_timeout(sh, WATCHDOG_TIMEOUT);
    assert_eq!(out.status, Some(0), "sh -n {what}:\n{}", out.dump());
    assert!(out.stderr.is_empty(), "sh -n {what}:\n{}", out.dump());
}

#[test]
fn runit_scripts_parse_and_exec_the_server_in_the_foreground() {
    for name in ["run", "log/run"] {
        let path = contrib().join("hermes-webui/runit/hermes-webui").join(name);
        let text = fs::read_to_string(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        // runsv runs `./run` itself: it must be executable as checked out.
        assert_eq!(mode & 0o111, 0o111, "{name}: mode {mode:o}");
        assert!(text.starts_with("#!/bin/sh\n"), "{name}:\n{text}");
        sh_parses(name, &[&path.display().to_string()]);
        // runsv supervises the process it started: the script must become the server
        // (or svlogd), not fork it.
        let last = text.lines().rfind(|l| !l.trim().is_empty()).unwrap();
        assert!(last.starts_with("exec "), "{name}: last line {last:?}");
    }
    let run = read("hermes-webui/runit/hermes-webui/run");
    assert!(run.contains("HERMES_WEBUI_FOREGROUND=1"), "{run}");
    assert!(run.contains("start.sh --foreground"), "{run}");
}

#[test]
fn the_crontab_line_is_one_job_every_minute_that_sh_parses() {
    let text = read("watchdog/watchdog.crontab");
    let jobs: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(jobs.len(), 1, "{text}");
    let fields: Vec<&str> = jobs[0].splitn(6, ' ').collect();
    assert_eq!(&fields[..5], ["*"; 5], "{text}");
    // cron hands the rest to /bin/sh -c, `\%` made `%` (crontab(5)).
    let command = fields[5].replace("\\%", "%");
    assert!(command.starts_with(&format!("PATH={PATH}")), "{command}");
    sh_parses("the crontab command", &["-c", &command]);
}

/// `log.file`'s default in docs/CONFIG.md, `~` made `home`: the file the snippets
/// rotate must be the one the watchdog writes.
fn default_log(home: &str) -> String {
    let config =
        fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/CONFIG.md"))
            .unwrap();
    let row = config
        .lines()
        .find(|l| l.starts_with("| `log.file` |"))
        .expect("docs/CONFIG.md has a log.file row");
    let default = row.split('|').nth(2).unwrap().trim();
    let path = default.trim_matches(|c| c == '`' || c == '"');
    path.replacen('~', home, 1)
}

#[test]
#[ignore = "needs logrotate (apt-get install logrotate): run by script/test --all and .ci/run"]
fn logrotate_reads_the_snippet_and_rotates_beside_the_watchdogs_own_generation() {
    let text = read("logs/logrotate.d/watchdog");
    let log = default_log(LINUX_HOME);
    assert!(
        text.contains(&format!("\n{log} {{\n")),
        "not {log}:\n{text}"
    );
    // The placeholders made real: a home in the temp dir, root as the log's owner.
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let state = home.join(".local/state/watchdog");
    fs::create_dir_all(&state).unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    let live = state.join("watchdog.log");
    let own = state.join("watchdog.log.1");
    fs::write(&live, "{\"event\":\"restart\"}\n").unwrap();
    fs::write(&own, "the watchdog's own older generation\n").unwrap();
    let conf = dir.path().join("watchdog");
    let mut instance = text.replace(LINUX_HOME, &home.display().to_string());
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    instance = if root {
        instance.replace("su you you", &format!("su {}", own_names()))
    } else {
        // Only root can switch users (setgroups); an ordinary user's logrotate
        // already works as the log's owner.
        instance.replace("    su you you\n", "")
    };
    fs::write(&conf, instance).unwrap();
    // logrotate ignores a config file others may write.
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).unwrap();
    let status = dir.path().join("status");
    let logrotate = tool("logrotate", "logrotate");

    let mut debug = Command::new(&logrotate);
    debug.arg("-d").arg("-s").arg(&status).arg(&conf);
    let out = run_with_timeout(debug, WATCHDOG_TIMEOUT);
    assert_eq!(out.status, Some(0), "logrotate -d:\n{}", out.dump());
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(!said.contains("error"), "logrotate -d:\n{said}");
    assert!(
        said.contains(&live.display().to_string()),
        "logrotate -d:\n{said}"
    );

    let mut forced = Command::new(&logrotate);
    forced.arg("-f").arg("-s").arg(&status).arg(&conf);
    let out = run_with_timeout(forced, WATCHDOG_TIMEOUT);
    assert_eq!(out.status, Some(0), "logrotate -f:\n{}", out.dump());
    let names: Vec<String> = fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // Renamed to a dated archive, no new file (the watchdog makes its own), and the
    // watchdog's own generation untouched.
    assert!(!live.exists(), "{names:?}");
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("watchdog.log-") && n.ends_with(".gz")),
        "{names:?}"
    );
    assert_eq!(
        fs::read_to_string(&own).unwrap(),
        "the watchdog's own older generation\n"
    );
}

/// The user and group the test runs as, by name (logrotate's `su` takes names).
fn own_names() -> String {
    python3_output(
        "import os, pwd, grp; \
         print(pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name)",
        &[],
        "",
    )
    .trim()
    .to_string()
}

/// newsyslog.conf(5): `logfile [owner:group] mode count size when flags [pidfile]
/// [signal]`. No Linux build reads it, so each field is checked here.
#[test]
fn newsyslog_lines_have_newsyslogs_fields() {
    let text = read("logs/newsyslog.d/watchdog.conf");
    let mut files = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            fields.len(),
            7,
            "logfile owner:group mode count size when flags: {line}"
        );
        let [file, owner, mode, count, size, when, flags] = fields[..] else {
            unreachable!()
        };
        assert!(file.starts_with('/'), "{line}");
        assert!(
            owner
                .split_once(':')
                .is_some_and(|(u, g)| !u.is_empty() && !g.is_empty()),
            "{line}"
        );
        assert!(
            mode.len() == 3 && mode.chars().all(|c| ('0'..='7').contains(&c)),
            "{line}"
        );
        assert!(count.parse::<u32>().is_ok(), "{line}");
        assert!(size == "*" || size.parse::<u64>().is_ok(), "{line}");
        // `*`, hours, or an ISO-8601 (`@`) or day/week/month (`$`) time spec.
        assert!(
            when == "*"
                || when.parse::<u32>().is_ok()
                || (when.len() > 1 && (when.starts_with('@') || when.starts_with('$'))),
            "{line}"
        );
        assert!(
            size != "*" || when != "*",
            "rotated neither by size nor time: {line}"
        );
        assert!(flags.chars().all(|c| "BCDGJNUXZRT".contains(c)), "{line}");
        // Without a pid file newsyslog signals syslogd unless told N.
        assert!(flags.contains('N'), "{line}");
        files.push(file.to_string());
    }
    // The event log at its default, and the LaunchAgent's stderr.
    let plist = read("watchdog/io.github.watchdog.check.plist");
    let stderr = plist
        .split("<key>StandardErrorPath</key>")
        .nth(1)
        .and_then(|rest| rest.split("<string>").nth(1))
        .and_then(|rest| rest.split("</string>").next())
        .unwrap();
    assert_eq!(files, [default_log(MAC_HOME), stderr.to_string()]);
}

#[test]
fn contrib_readme_names_every_file() {
    let readme = read("README.md");
    let mut missing = Vec::new();
    let mut stack = vec![contrib()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path.strip_prefix(contrib()).unwrap().display().to_string();
            if relative != "README.md" && !readme.contains(&format!("`{relative}`")) {
                missing.push(relative);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "contrib/README.md does not name {missing:?}"
    );
}
