//! `watchdog schedule`: the printed units are valid (systemd-analyze verify where it is
//! installed), and `--install` writes only under the (temporary) home and calls the
//! right tools — stand-ins on PATH that record their arguments. Every run is bounded by
//! the shared harness's timeout, so a hung binary or tool fails its test.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

#[cfg(target_os = "linux")]
use common::find_executable;
use common::python3_output;
use common::{RunResult, WATCHDOG_TIMEOUT, run_with_timeout, watchdog_bin};

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let sandbox = Sandbox {
            dir: tempfile::tempdir().unwrap(),
        };
        fs::create_dir_all(sandbox.home()).unwrap();
        fs::create_dir_all(sandbox.bin()).unwrap();
        sandbox
    }
    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }
    fn calls(&self) -> String {
        fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default()
    }

    /// A stand-in that appends `name args...` to `calls` and runs `body`.
    fn stand_in(&self, name: &str, body: &str) {
        let path = self.bin().join(name);
        let script = format!(
            "#!/bin/sh\necho \"{name} $*\" >> '{}'\n{body}\n",
            self.dir.path().join("calls").display()
        );
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A `crontab` stand-in over a table file that starts as `initial`: `crontab -l`
    /// prints it, `crontab FILE` replaces it. Returns the table's path.
    fn crontab(&self, initial: &str) -> PathBuf {
        let table = self.dir.path().join("crontab.txt");
        fs::write(&table, initial).unwrap();
        self.stand_in(
            "crontab",
            &format!(
                "if [ \"$1\" = -l ]; then cat '{t}'; else cp \"$1\" '{t}'; fi",
                t = table.display()
            ),
        );
        table
    }

    /// A `crontab` stand-in whose `crontab -l` prints `message` on stderr and exits 1;
    /// `crontab FILE` writes the table, whose path is returned (it does not exist yet).
    fn crontab_failing_to_list(&self, message: &str) -> PathBuf {
        let table = self.dir.path().join("crontab.txt");
        self.stand_in(
            "crontab",
            &format!(
                "if [ \"$1\" = -l ]; then echo '{message}' >&2; exit 1; else cp \"$1\" '{t}'; fi",
                t = table.display()
            ),
        );
        table
    }

    /// The binary under test with only this sandbox's HOME, PATH and TMPDIR, killed
    /// after the harness timeout.
    fn watchdog(&self, args: &[&str]) -> RunResult {
        self.watchdog_within(args, WATCHDOG_TIMEOUT)
    }

    fn watchdog_within(&self, args: &[&str], timeout: Duration) -> RunResult {
        let mut cmd = Command::new(watchdog_bin());
        cmd.args(args);
        self.run_within(cmd, &self.path(), timeout)
    }

    /// The sandbox's PATH: its stand-ins, then cron's own directories.
    fn path(&self) -> String {
        format!("{}:/usr/bin:/bin", self.bin().display())
    }

    /// `cmd` with only this sandbox's HOME and TMPDIR, and `path` as PATH.
    fn run_within(&self, mut cmd: Command, path: &str, timeout: Duration) -> RunResult {
        cmd.env_clear()
            .env("HOME", self.home())
            .env("PATH", path)
            .env("TMPDIR", self.dir.path());
        run_with_timeout(cmd, timeout)
    }
}

/// The PATH a job carries when `schedule` ran with `path`: its entries, then the
/// system directories it lacks (`src/commands/schedule.rs`, `job_path`).
fn job_path(path: &str) -> String {
    let mut dirs: Vec<&str> = Vec::new();
    for dir in path
        .split(':')
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"])
    {
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs.join(":")
}

/// The binary's path as the job names it (its `current_exe`, symlinks resolved).
fn exe() -> String {
    let bin = watchdog_bin();
    fs::canonicalize(&bin).unwrap_or(bin).display().to_string()
}

fn stdout(out: &RunResult) -> String {
    out.stdout.clone()
}

#[track_caller]
fn assert_ok(out: &RunResult) {
    assert_eq!(out.status, Some(0), "{}", out.dump());
}

/// Exit 0, and `text` on stdout.
#[track_caller]
fn assert_ok_saying(out: &RunResult, text: &str) {
    assert_ok(out);
    assert!(
        stdout(out).contains(text),
        "{text:?} not in:\n{}",
        stdout(out)
    );
}

#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs systemd-analyze (apt-get install systemd): run by script/test --all and .ci/run"]
fn printed_systemd_units_pass_systemd_analyze_verify() {
    let sandbox = Sandbox::new();
    let out = sandbox.watchdog(&["schedule", "systemd"]);
    assert_ok(&out);
    let text = stdout(&out);
    let (service, timer) = split_units(&text);
    // A server the run restarts itself is in the service's cgroup; the default
    // KillMode=control-group would kill it when the oneshot run ends.
    assert!(
        service.lines().any(|l| l == "KillMode=process"),
        "no KillMode=process in the service:\n{service}"
    );
    verify_units(&sandbox, &service, &timer);
}

/// `systemd-analyze verify` on the two units, which must pass with no warning.
#[cfg(target_os = "linux")]
fn verify_units(sandbox: &Sandbox, service: &str, timer: &str) {
    let unit_dir = sandbox.dir.path().join("units");
    fs::create_dir_all(&unit_dir).unwrap();
    let service_path = unit_dir.join("watchdog-check.service");
    let timer_path = unit_dir.join("watchdog-check.timer");
    fs::write(&service_path, service).unwrap();
    fs::write(&timer_path, timer).unwrap();
    let analyze = find_executable("systemd-analyze", &[])
        .expect("systemd-analyze is needed: run script/bootstrap, or apt-get install systemd");
    let mut verify = Command::new(analyze);
    verify
        .args(["verify", "--man=no"])
        .arg(&service_path)
        .arg(&timer_path);
    let verify = run_with_timeout(verify, WATCHDOG_TIMEOUT);
    assert_eq!(
        verify.status,
        Some(0),
        "systemd-analyze verify:\n{}",
        verify.dump()
    );
    // A setting it cannot parse is a warning ("ignoring"), not a failure.
    assert!(
        !verify.stderr.contains("watchdog-check"),
        "systemd-analyze verify:\n{}",
        verify.dump()
    );
}

/// The two units from the printed text, each after its `# path` header.
#[cfg(target_os = "linux")]
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
    (units[0].clone(), units[1].clone())
}

#[test]
fn cron_install_adds_one_line_and_keeps_the_rest() {
    let sandbox = Sandbox::new();
    let table = sandbox.crontab("MAILTO=me@example.com\n0 3 * * * /usr/bin/backup\n");
    let config = sandbox.dir.path().join("watchdog.toml");
    fs::write(&config, "").unwrap();
    let config_arg = config.display().to_string();
    let out = sandbox.watchdog(&["schedule", "cron", "--install", "-c", &config_arg]);
    assert_ok(&out);
    let installed = fs::read_to_string(&table).unwrap();
    let exe = exe();
    assert_eq!(
        installed,
        format!(
            "MAILTO=me@example.com\n0 3 * * * /usr/bin/backup\n* * * * * PATH={} {exe} check -c {}\n",
            job_path(&sandbox.path()),
            config.display()
        )
    );
    // A second install changes nothing.
    let again = sandbox.watchdog(&["schedule", "cron", "--install", "-c", &config_arg]);
    assert_ok_saying(&again, "left unchanged");
    assert_eq!(fs::read_to_string(&table).unwrap(), installed);
}

#[test]
fn systemd_install_writes_user_units_and_enables_the_timer() {
    let sandbox = Sandbox::new();
    sandbox.stand_in("systemctl", "exit 0");
    let out = sandbox.watchdog(&["schedule", "systemd", "--install"]);
    assert_ok(&out);
    let dir = sandbox.home().join(".config/systemd/user");
    let service = fs::read_to_string(dir.join("watchdog-check.service")).unwrap();
    assert!(service.contains(&format!("ExecStart={} check", exe())));
    assert!(dir.join("watchdog-check.timer").exists());
    assert_eq!(
        sandbox.calls(),
        "systemctl --user daemon-reload\nsystemctl --user enable --now watchdog-check.timer\n"
    );
}

#[test]
fn launchd_install_writes_a_launch_agent_and_bootstraps_it() {
    let sandbox = Sandbox::new();
    // bootout of a job that was never loaded fails; install must not care.
    sandbox.stand_in(
        "launchctl",
        "if [ \"$1\" = bootout ]; then echo 'Boot-out failed: 3: No such process' >&2; exit 3; fi",
    );
    let out = sandbox.watchdog(&["schedule", "launchd", "--install"]);
    assert_ok(&out);
    let plist_path: PathBuf = sandbox
        .home()
        .join("Library/LaunchAgents/io.github.watchdog.check.plist");
    let plist = fs::read_to_string(&plist_path).unwrap();
    assert!(plist.contains("<integer>60</integer>"));
    assert!(plist.contains(&format!("<string>{}</string>", exe())));
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    assert_eq!(
        sandbox.calls(),
        format!(
            "launchctl bootout gui/{uid}/io.github.watchdog.check\n\
             launchctl bootstrap gui/{uid} {}\n",
            plist_path.display()
        )
    );
}

#[test]
fn a_failing_tool_is_reported_and_exits_non_zero() {
    let sandbox = Sandbox::new();
    sandbox.stand_in("systemctl", "echo 'Failed to connect to bus' >&2; exit 1");
    let out = sandbox.watchdog(&["schedule", "systemd", "--install"]);
    assert_eq!(out.status, Some(3), "{}", out.dump());
    assert!(
        out.stderr.contains("Failed to connect to bus"),
        "{}",
        out.dump()
    );
}

#[test]
fn printing_touches_nothing() {
    let sandbox = Sandbox::new();
    for kind in ["cron", "launchd", "systemd"] {
        let out = sandbox.watchdog(&["schedule", kind]);
        assert_ok(&out);
        assert!(stdout(&out).contains(&exe()));
    }
    let written: Vec<_> = fs::read_dir(sandbox.home()).unwrap().collect();
    assert!(written.is_empty(), "printing wrote {written:?}");
    assert_eq!(sandbox.calls(), "");
}

#[test]
fn cron_uninstall_removes_only_our_line() {
    let sandbox = Sandbox::new();
    let before = "MAILTO=me@example.com\n# a note\n0 3 * * * /usr/bin/backup\n";
    let table = sandbox.crontab(before);
    assert_ok(&sandbox.watchdog(&["schedule", "cron", "--install"]));
    assert_ne!(fs::read_to_string(&table).unwrap(), before);

    let out = sandbox.watchdog(&["schedule", "cron", "--uninstall"]);
    assert_ok_saying(&out, "removed from the crontab: * * * * *");
    assert_eq!(fs::read_to_string(&table).unwrap(), before);

    // Nothing of ours left: the crontab is read, not rewritten.
    let calls_before = sandbox.calls();
    let again = sandbox.watchdog(&["schedule", "cron", "--uninstall"]);
    assert_ok_saying(&again, "left unchanged");
    assert_eq!(
        sandbox.calls().strip_prefix(calls_before.as_str()),
        Some("crontab -l\n")
    );
}

#[test]
fn systemd_uninstall_stops_the_timer_and_removes_the_units() {
    let sandbox = Sandbox::new();
    sandbox.stand_in("systemctl", "exit 0");
    assert_ok(&sandbox.watchdog(&["schedule", "systemd", "--install"]));
    let dir = sandbox.home().join(".config/systemd/user");
    assert!(dir.join("watchdog-check.timer").exists());
    let calls_before = sandbox.calls();

    let out = sandbox.watchdog(&["schedule", "systemd", "--uninstall"]);
    assert_ok(&out);
    assert!(!dir.join("watchdog-check.timer").exists());
    assert!(!dir.join("watchdog-check.service").exists());
    assert_eq!(
        sandbox.calls().strip_prefix(calls_before.as_str()),
        Some(
            "systemctl --user disable --now watchdog-check.timer\n\
             systemctl --user daemon-reload\n"
        )
    );

    // Again: nothing installed, no tool called.
    let calls_before = sandbox.calls();
    let again = sandbox.watchdog(&["schedule", "systemd", "--uninstall"]);
    assert_ok_saying(&again, "nothing to remove");
    assert_eq!(sandbox.calls(), calls_before);
}

#[test]
fn launchd_uninstall_boots_out_the_job_and_removes_the_plist() {
    let sandbox = Sandbox::new();
    sandbox.stand_in("launchctl", "exit 0");
    assert_ok(&sandbox.watchdog(&["schedule", "launchd", "--install"]));
    let plist_path = sandbox
        .home()
        .join("Library/LaunchAgents/io.github.watchdog.check.plist");
    assert!(plist_path.exists());
    let calls_before = sandbox.calls();

    let out = sandbox.watchdog(&["schedule", "launchd", "--uninstall"]);
    assert_ok(&out);
    assert!(!plist_path.exists());
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    assert_eq!(
        sandbox.calls().strip_prefix(calls_before.as_str()),
        Some(format!("launchctl bootout gui/{uid}/io.github.watchdog.check\n").as_str())
    );
}

#[test]
fn install_and_uninstall_together_is_a_usage_error() {
    let sandbox = Sandbox::new();
    let out = sandbox.watchdog(&["schedule", "cron", "--install", "--uninstall"]);
    assert_eq!(out.status, Some(2), "{}", out.dump());
    assert!(out.stderr.contains("cannot be used with"), "{}", out.dump());
    assert_eq!(sandbox.calls(), "");
}

#[test]
fn cron_install_for_a_user_without_a_crontab_writes_just_our_line() {
    let sandbox = Sandbox::new();
    let table = sandbox.crontab_failing_to_list("no crontab for me");
    let out = sandbox.watchdog(&["schedule", "cron", "--install"]);
    assert_ok_saying(&out, "added to the crontab");
    assert_eq!(
        fs::read_to_string(&table).unwrap(),
        format!(
            "* * * * * PATH={} {} check\n",
            job_path(&sandbox.path()),
            exe()
        )
    );
}

#[test]
fn a_crontab_that_cannot_be_read_is_never_replaced() {
    let sandbox = Sandbox::new();
    let pam = "You (me) are not allowed to access to (crontab) because of pam configuration.";
    let table = sandbox.crontab_failing_to_list(pam);
    for flag in ["--install", "--uninstall"] {
        let out = sandbox.watchdog(&["schedule", "cron", flag]);
        assert_eq!(out.status, Some(3), "{flag}: {}", out.dump());
        assert!(
            out.stderr.contains("because of pam configuration"),
            "{}",
            out.dump()
        );
    }
    // Only read, twice; `crontab FILE` (which would replace the table) never ran.
    assert_eq!(sandbox.calls(), "crontab -l\ncrontab -l\n");
    assert!(!table.exists());
}

#[test]
fn a_hung_run_is_killed_at_the_bound_instead_of_hanging_the_suite() {
    let sandbox = Sandbox::new();
    // Ends by itself soon after the test: the watchdog runs it in a group of its own,
    // which the harness's kill of the watchdog does not reach.
    sandbox.stand_in("systemctl", "exec sleep 4");
    let out = sandbox.watchdog_within(
        &["schedule", "systemd", "--install"],
        Duration::from_millis(500),
    );
    assert!(out.timed_out, "{}", out.dump());
    assert_eq!(out.status, None, "{}", out.dump());
    assert!(out.elapsed < Duration::from_secs(3), "{}", out.dump());
}

#[test]
fn without_home_nothing_is_written_anywhere() {
    let sandbox = Sandbox::new();
    sandbox.stand_in("systemctl", "exit 0");
    let mut cmd = Command::new(watchdog_bin());
    cmd.args(["schedule", "systemd", "--install"])
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", sandbox.bin().display()))
        .env("TMPDIR", sandbox.dir.path())
        .current_dir(sandbox.dir.path());
    let r = run_with_timeout(cmd, WATCHDOG_TIMEOUT);
    assert_eq!(r.status, Some(2), "{}", r.dump());
    assert!(r.stderr.contains("HOME is not set"), "{}", r.dump());
    assert_eq!(sandbox.calls(), "");
    assert!(!std::path::Path::new("/.config/systemd/user/watchdog-check.timer").exists());
}

/// A PATH as an operator may have one: a directory with a space, one with `%` (which
/// ends a crontab command), one with `&` and `"` (XML and systemd quoting), and the
/// sandbox's stand-ins and cron's own directories.
fn odd_path(sandbox: &Sandbox) -> String {
    let odd = sandbox.dir.path().join("odd");
    let dirs = ["my tools/bin", "100%/bin", "a&b \"c\"/bin"].map(|d| odd.join(d));
    let mut path: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    path.push(sandbox.path());
    path.join(":")
}

fn schedule_with_path(sandbox: &Sandbox, kind: &str, path: &str) -> RunResult {
    let mut cmd = Command::new(watchdog_bin());
    cmd.args(["schedule", kind]);
    sandbox.run_within(cmd, path, WATCHDOG_TIMEOUT)
}

#[test]
fn printed_launchd_plist_is_read_by_plistlib_as_it_is() {
    let sandbox = Sandbox::new();
    let path = odd_path(&sandbox);
    let out = schedule_with_path(&sandbox, "launchd", &path);
    assert_ok(&out);
    // `> file.plist` is the plist: nothing before the XML declaration.
    assert!(out.stdout.starts_with("<?xml "), "{}", out.dump());
    // The hint is for the operator, on stderr.
    assert!(
        out.stderr.contains("launchctl bootstrap gui/"),
        "{}",
        out.dump()
    );
    let json = python3_output(
        "import json, plistlib, sys; print(json.dumps(plistlib.loads(sys.stdin.buffer.read())))",
        &[],
        &out.stdout,
    );
    let plist: serde_json::Value = serde_json::from_str(&json).unwrap();
    let log = sandbox.home().join("Library/Logs/watchdog.log");
    let expected = serde_json::json!({
        "Label": "io.github.watchdog.check",
        "ProgramArguments": [exe(), "check"],
        "StartInterval": 60,
        "RunAtLoad": true,
        "StandardErrorPath": log.display().to_string(),
        "EnvironmentVariables": {
            "PATH": format!("{}:/usr/local/bin:/opt/homebrew/bin", job_path(&path)),
        },
    });
    assert_eq!(plist, expected, "{}", out.stdout);
}

/// Emulates cron on one crontab line: five time fields, then the command, in which
/// `\%` is a `%` and the first bare `%` ends the command (crontab(5)).
fn cron_command(line: &str) -> String {
    let mut fields = line.splitn(6, ' ');
    for _ in 0..5 {
        fields.next().unwrap();
    }
    let raw = fields.next().unwrap();
    let mut command = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'%') => command.push(chars.next().unwrap()),
            '%' => break,
            c => command.push(c),
        }
    }
    command
}

#[test]
fn printed_cron_line_runs_with_the_operators_path() {
    let sandbox = Sandbox::new();
    let path = odd_path(&sandbox);
    let out = schedule_with_path(&sandbox, "cron", &path);
    assert_ok(&out);
    // A valid crontab as printed: comments, and one job line of five fields and a
    // command.
    let jobs: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(jobs.len(), 1, "{}", out.dump());
    assert!(jobs[0].starts_with("* * * * * "), "{}", out.dump());
    let command = cron_command(jobs[0]);
    let ours = format!("{} check", exe());
    assert!(command.ends_with(&ours), "{command}");
    // What /bin/sh makes of the command, with printenv in the watchdog's place: the
    // PATH the job runs with.
    let probe = command.replace(&ours, "/usr/bin/printenv PATH");
    let mut sh = Command::new("/bin/sh");
    sh.args(["-c", &probe]);
    let seen = sandbox.run_within(sh, "/usr/bin:/bin", WATCHDOG_TIMEOUT);
    assert_ok(&seen);
    assert_eq!(seen.stdout, format!("{}\n", job_path(&path)), "{probe}");
}

#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs systemd-analyze (apt-get install systemd): run by script/test --all and .ci/run"]
fn printed_systemd_units_carry_the_operators_path() {
    let sandbox = Sandbox::new();
    let path = odd_path(&sandbox);
    let out = schedule_with_path(&sandbox, "systemd", &path);
    assert_ok(&out);
    let (service, timer) = split_units(&out.stdout);
    // systemd's quoting: the whole assignment in double quotes, `"` and `\` escaped,
    // `%` doubled (a specifier otherwise).
    let quoted = job_path(&path).replace('%', "%%").replace('"', "\\\"");
    let line = format!("Environment=\"PATH={quoted}\"");
    assert!(
        service.lines().any(|l| l == line),
        "{line} not in:\n{service}"
    );
    verify_units(&sandbox, &service, &timer);
}

#[test]
fn a_binary_in_a_cargo_target_dir_is_warned_about() {
    let sandbox = Sandbox::new();
    let built = sandbox.dir.path().join("src/target/release/watchdog");
    let installed = sandbox.dir.path().join("cargo/bin/watchdog");
    for copy in [&built, &installed] {
        fs::create_dir_all(copy.parent().unwrap()).unwrap();
        fs::copy(watchdog_bin(), copy).unwrap();
    }
    for kind in ["cron", "launchd", "systemd"] {
        let out = sandbox.run_within(
            {
                let mut cmd = Command::new(&built);
                cmd.args(["schedule", kind]);
                cmd
            },
            &sandbox.path(),
            WATCHDOG_TIMEOUT,
        );
        assert_ok(&out);
        for needle in [
            format!("{} is inside a Cargo target/ directory", built.display()),
            "cargo clean".into(),
            "cargo install --path .".into(),
            "~/.cargo/bin/watchdog".into(),
        ] {
            assert!(out.stderr.contains(&needle), "{needle}: {}", out.dump());
        }
        // The job itself still names the binary that ran, and stdout has no warning.
        assert!(
            out.stdout.contains(&built.display().to_string()),
            "{}",
            out.dump()
        );
        assert!(!out.stdout.contains("cargo"), "{}", out.dump());

        let mut cmd = Command::new(&installed);
        cmd.args(["schedule", kind]);
        let out = sandbox.run_within(cmd, &sandbox.path(), WATCHDOG_TIMEOUT);
        assert_ok(&out);
        assert!(!out.stderr.contains("cargo"), "{}", out.dump());
    }
}

#[test]
fn a_path_directory_others_can_write_is_warned_about() {
    let sandbox = Sandbox::new();
    let open = sandbox.dir.path().join("open");
    let own = sandbox.dir.path().join("own");
    fs::create_dir_all(&open).unwrap();
    fs::create_dir_all(&own).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    fs::set_permissions(&own, fs::Permissions::from_mode(0o755)).unwrap();
    // Sticky like /tmp: others cannot remove what is there, but can add a tool.
    let sticky = sandbox.dir.path().join("sticky");
    fs::create_dir_all(&sticky).unwrap();
    fs::set_permissions(&sticky, fs::Permissions::from_mode(0o1777)).unwrap();
    let path = format!(
        "{}:{}:{}:{}",
        open.display(),
        sticky.display(),
        own.display(),
        sandbox.path()
    );
    let out = schedule_with_path(&sandbox, "cron", &path);
    assert_ok(&out);
    for (dir, mode) in [(&open, "mode 777"), (&sticky, "mode 1777")] {
        let warning = format!(
            "the job's PATH has {}, which another user can change (writable by others ({mode}))",
            dir.display()
        );
        assert!(out.stderr.contains(&warning), "{warning}: {}", out.dump());
    }
    assert!(
        !out.stderr.contains(&format!("PATH has {},", own.display())),
        "{}",
        out.dump()
    );
    // Only a warning: the line is printed as it would be.
    assert!(
        out.stdout.contains(&open.display().to_string()),
        "{}",
        out.dump()
    );
}

#[test]
fn an_older_cron_line_without_path_is_kept_and_named() {
    let sandbox = Sandbox::new();
    let before = format!("* * * * * {} check\n", exe());
    let table = sandbox.crontab(&before);
    let out = sandbox.watchdog(&["schedule", "cron", "--install"]);
    assert_ok_saying(&out, "left unchanged");
    assert!(
        stdout(&out).contains("--uninstall` and `--install` to replace it"),
        "{}",
        out.dump()
    );
    assert_eq!(fs::read_to_string(&table).unwrap(), before);
    // --uninstall removes it as before: it runs this binary's check.
    assert_ok_saying(
        &sandbox.watchdog(&["schedule", "cron", "--uninstall"]),
        "removed from the crontab",
    );
    assert_eq!(fs::read_to_string(&table).unwrap(), "");
}

// ---------------------------------------------------------------------------------------
// --every
// ---------------------------------------------------------------------------------------

/// Exit 2, nothing on stdout (a `> file` gets no half file), and every word of `said`
/// in the message.
#[track_caller]
fn assert_refused(out: &RunResult, said: &[&str]) {
    assert_eq!(out.status, Some(2), "{}", out.dump());
    assert_eq!(out.stdout, "", "{}", out.dump());
    for words in said {
        assert!(
            out.stderr.contains(words),
            "{words:?} not in:\n{}",
            out.dump()
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs systemd-analyze (apt-get install systemd): run by script/test --all and .ci/run"]
fn a_30s_systemd_timer_passes_verify_and_differs_only_in_its_interval() {
    let sandbox = Sandbox::new();
    let default = sandbox.watchdog(&["schedule", "systemd"]);
    let out = sandbox.watchdog(&["schedule", "systemd", "--every", "30s"]);
    assert_ok(&out);
    let (service, timer) = split_units(&stdout(&out));
    let (default_service, default_timer) = split_units(&stdout(&default));
    assert_eq!(service, default_service);
    assert_eq!(
        timer,
        default_timer
            .replace("every minute", "every 30s")
            .replace("OnUnitActiveSec=1min", "OnUnitActiveSec=30s")
    );
    // systemd's default AccuracySec (a minute) would coalesce 30 s ticks.
    assert!(timer.lines().any(|l| l == "AccuracySec=1s"), "{timer}");
    verify_units(&sandbox, &service, &timer);
    // And systemd reads the span as 30 seconds.
    let analyze = find_executable("systemd-analyze", &[])
        .expect("systemd-analyze is needed: run script/bootstrap, or apt-get install systemd");
    let mut span = Command::new(analyze);
    span.args(["timespan", "30s"]);
    let span = run_with_timeout(span, WATCHDOG_TIMEOUT);
    assert!(
        span.stdout.lines().any(|l| l.trim() == "μs: 30000000"),
        "{}",
        span.dump()
    );
}

#[test]
fn a_30s_launchd_plist_is_read_by_plistlib_with_start_interval_30() {
    let sandbox = Sandbox::new();
    let default = sandbox.watchdog(&["schedule", "launchd"]);
    let out = sandbox.watchdog(&["schedule", "launchd", "--every", "30s"]);
    assert_ok(&out);
    assert_eq!(
        out.stdout,
        default
            .stdout
            .replace("<integer>60</integer>", "<integer>30</integer>"),
        "only StartInterval changes"
    );
    let json = python3_output(
        "import json, plistlib, sys; print(json.dumps(plistlib.loads(sys.stdin.buffer.read())))",
        &[],
        &out.stdout,
    );
    let plist: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(plist["StartInterval"], 30, "{}", out.stdout);
}

#[test]
fn cron_takes_whole_minutes_and_refuses_seconds_with_the_reason() {
    let sandbox = Sandbox::new();
    let out = sandbox.watchdog(&["schedule", "cron", "--every", "5m"]);
    assert_ok(&out);
    let line = stdout(&out).lines().nth(1).unwrap_or_default().to_string();
    assert!(line.starts_with("*/5 * * * * PATH="), "{}", out.dump());
    assert_eq!(
        cron_command(&line),
        cron_command(
            stdout(&sandbox.watchdog(&["schedule", "cron"]))
                .lines()
                .nth(1)
                .unwrap()
        ),
        "only the minute field changes"
    );
    for every in ["30s", "90s", "7m"] {
        assert_refused(
            &sandbox.watchdog(&["schedule", "cron", "--every", every]),
            &[
                "cron's finest field is the minute",
                "watchdog schedule launchd",
                "watchdog schedule systemd",
            ],
        );
    }
    // --install refuses the same, and leaves the crontab alone.
    let table = sandbox.crontab("");
    assert_refused(
        &sandbox.watchdog(&["schedule", "cron", "--every", "30s", "--install"]),
        &["cron's finest field is the minute"],
    );
    assert_eq!(fs::read_to_string(&table).unwrap(), "");
    assert!(sandbox.calls().is_empty(), "{}", sandbox.calls());
}

#[test]
fn an_interval_below_10s_is_refused_naming_the_run_bound_and_the_lock() {
    let sandbox = Sandbox::new();
    for kind in ["cron", "launchd", "systemd"] {
        assert_refused(
            &sandbox.watchdog(&["schedule", kind, "--every", "5s"]),
            &["below 10s", "bound_s", "exit 5"],
        );
    }
    assert_refused(
        &sandbox.watchdog(&["schedule", "launchd", "--every", "1500ms"]),
        &["whole number of seconds"],
    );
}
