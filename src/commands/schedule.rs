//! `watchdog schedule <cron|launchd|systemd> [--every DURATION] [--install | --uninstall]`:
//! the job that runs `watchdog check` every minute (or every `--every`, where the
//! scheduler can: [`check_every`]), printed for review, installed for the current
//! user or removed again. Both change only the user's own crontab, LaunchAgents or
//! systemd user units, and say what they did.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::command::{self, Finished, Output};
use crate::deadline::Deadline;
use crate::exit_code::ExitCode;

/// Which scheduler runs the job (`watchdog schedule <cron|launchd|systemd>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleKind {
    Cron,
    Launchd,
    Systemd,
}

/// launchd's label and systemd's unit name for the job.
pub const LABEL: &str = "io.github.watchdog.check";
const UNIT: &str = "watchdog-check";
/// A bound on `crontab`, `launchctl` and `systemctl` while installing.
const TOOL_TIMEOUT: Duration = Duration::from_secs(20);
/// The interval without `--every`: what contrib/watchdog/ ships.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(60);
/// The shortest `--every`: below it, ticks mostly find the previous run still holding
/// the lock (a run may take up to its bound) and only exit 5.
pub const LEAST_EVERY: Duration = Duration::from_secs(10);

/// What the job runs: this binary, `check`, and the config file if one was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub exe: PathBuf,
    pub config: Option<PathBuf>,
    pub home: PathBuf,
    /// The operator's PATH when `schedule` ran (None: unset or not UTF-8). Cron runs
    /// jobs with `PATH=/usr/bin:/bin` and launchd with less, so tools the operator
    /// reaches (a pip-installed `supervisorctl`, Homebrew's) would be missing.
    pub path: Option<String>,
    /// How often the job runs ([`DEFAULT_EVERY`] unless `--every`).
    pub every: Duration,
}

/// Whether `kind` can run the job every `every`; why not, for the operator, else. `bound`
/// is the longest a run of this configuration may take (`bound_s`,
/// `crate::deadline::run_bound`), named in the refusal of a too short interval.
pub fn check_every(kind: ScheduleKind, every: Duration, bound: Duration) -> Result<(), String> {
    let shown = crate::units::format_duration(every);
    if every.subsec_nanos() != 0 {
        return Err(format!(
            "--every {shown}: the interval is a whole number of seconds (launchd's StartInterval \
             and systemd's timers count seconds)"
        ));
    }
    if every < LEAST_EVERY {
        return Err(format!(
            "--every {shown} is below {least}: a run may take up to its bound ({bound}s with this \
             configuration: `bound_s` in `watchdog status --json`) while the server does not \
             answer, and a run that starts while another holds the lock does nothing but exit 5; \
             ticks that close together add load, not detection. Use --every {least} or more",
            least = crate::units::format_duration(LEAST_EVERY),
            bound = bound.as_secs(),
        ));
    }
    let seconds = every.as_secs();
    let minutes = seconds / 60;
    if kind == ScheduleKind::Cron
        && (!seconds.is_multiple_of(60) || minutes >= 60 || 60 % minutes != 0)
    {
        return Err(format!(
            "--every {shown}: cron's finest field is the minute, and `*/N` in it repeats evenly \
             only for an N that divides 60, so cron runs the job every 1m, 2m, 3m, 4m, 5m, 6m, \
             10m, 12m, 15m, 20m or 30m; for seconds use `watchdog schedule launchd` or \
             `watchdog schedule systemd` (e.g. --every 30s)"
        ));
    }
    Ok(())
}

/// A timer span as systemd writes it: `1min` (the default's form), `2min`, `30s`.
fn systemd_span(every: Duration) -> String {
    let seconds = every.as_secs();
    if seconds.is_multiple_of(60) {
        format!("{}min", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

/// "every minute" (the default's words), "every 30s", "every 2m".
fn every_words(every: Duration) -> String {
    if every == DEFAULT_EVERY {
        "every minute".into()
    } else {
        format!("every {}", crate::units::format_duration(every))
    }
}

/// Directories every job's PATH ends with, so that the system's own tools (`ps`,
/// `lsof` in /usr/sbin on macOS, `launchctl`, `systemctl`) are always found.
const SYSTEM_PATH: &[&str] = &["/usr/bin", "/bin", "/usr/sbin", "/sbin"];
/// launchd's agents also got Homebrew's directories before PATH was carried over.
const LAUNCHD_EXTRA_PATH: &[&str] = &["/usr/local/bin", "/opt/homebrew/bin"];

/// The PATH the job runs with: the operator's entries in their order, then the system
/// directories it lacks. Relative entries (`.`, empty, `bin`) are dropped: the job runs
/// from another directory (cron: the home), where they would name whatever is there.
/// Entries with control characters are dropped too: a newline would end the crontab
/// line or the unit's setting.
pub fn job_path(operator: Option<&str>, extra: &[&str]) -> String {
    let mut dirs: Vec<&str> = Vec::new();
    let given = operator.unwrap_or("").split(':');
    let defaults = SYSTEM_PATH.iter().chain(extra).copied();
    for dir in given.chain(defaults) {
        if dir.starts_with('/') && !dir.chars().any(char::is_control) && !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs.join(":")
}

impl Job {
    fn argv(&self) -> Vec<String> {
        let mut argv = vec![self.exe.display().to_string(), "check".into()];
        if let Some(config) = &self.config {
            argv.extend(["-c".into(), config.display().to_string()]);
        }
        argv
    }
}

/// Cron mails what a job prints; a healthy `check` prints nothing, so every mail is
/// news. `flock`-style overlap protection is built in (exit 5), so no wrapper. PATH is
/// set on the command itself (`PATH=... watchdog check`, which `/bin/sh` runs), not as
/// a `PATH=` line, which would change every other job of the crontab too.
pub fn cron_line(job: &Job) -> String {
    let mut words = vec![format!(
        "PATH={}",
        shell_quote(&job_path(job.path.as_deref(), &[]))
    )];
    words.extend(job.argv().iter().map(|a| shell_quote(a)));
    // `check_every` let through only whole minutes below 60 that divide it.
    let minutes = (job.every.as_secs() / 60).max(1);
    let minute = if minutes == 1 {
        "*".to_string()
    } else {
        format!("*/{minutes}")
    };
    format!("{minute} * * * * {}", cron_escape(&words.join(" ")))
}

/// Cron ends a command at its first unescaped `%` (the rest becomes stdin), and drops
/// the backslash of `\%` before `/bin/sh` sees the command (crontab(5)).
fn cron_escape(command: &str) -> String {
    command.replace('%', "\\%")
}

/// A LaunchAgent run every `job.every` (60 s by default). launchd gives agents a minimal PATH; the one here is
/// the operator's (see [`job_path`]) and also reaches Homebrew's `supervisorctl`,
/// should the server run under supervisord.
pub fn launchd_plist(job: &Job) -> String {
    let args: String = job
        .argv()
        .iter()
        .map(|a| format!("        <string>{}</string>\n", xml_escape(a)))
        .collect();
    let log = job.home.join("Library/Logs/watchdog.log");
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
    <key>Label</key>
    <string>{LABEL}</string>
    <key>ProgramArguments</key>
    <array>
{args}    </array>
    <key>StartInterval</key>
    <integer>{every}</integer>
    <key>RunAtLoad</key>
    <true/>
    <key>StandardErrorPath</key>
    <string>{log}</string>
    <key>EnvironmentVariables</key>
    <dict>
        <key>PATH</key>
        <string>{path}</string>
    </dict>
</dict>
</plist>
"#,
        every = job.every.as_secs(),
        log = xml_escape(&log.display().to_string()),
        path = xml_escape(&job_path(job.path.as_deref(), LAUNCHD_EXTRA_PATH)),
    )
}

/// A oneshot service and the timer that starts it every minute (every `job.every`), as
/// user units. Under a minute, `OnUnitActiveSec=30s` counts from the service's last
/// start, and `AccuracySec=1s` keeps systemd from coalescing the ticks (its default
/// accuracy is a minute). The
/// service's default `KillMode=control-group` would kill, when a run ends, everything
/// left in its cgroup: a server the run restarted itself (`setsid` leaves the session,
/// not the cgroup) included. `KillMode=process` ends only the watchdog.
pub fn systemd_units(job: &Job) -> (String, String) {
    let exec: Vec<String> = job.argv().iter().map(|a| systemd_quote(a)).collect();
    let service = format!(
        "[Unit]\n\
         Description=watchdog: one health and FD check of the local web server\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         # The PATH of the shell that ran `watchdog schedule`: the user manager's own\n\
         # lacks pip's and Homebrew's directories.\n\
         Environment={}\n\
         ExecStart={}\n\
         # Exit 4 (not acted on) and 5 (another run holds the lock) are not failures.\n\
         SuccessExitStatus=1 4 5\n\
         # A server this run restarts stays in its cgroup: at the end, stop only the watchdog.\n\
         KillMode=process\n",
        systemd_quote(&format!("PATH={}", job_path(job.path.as_deref(), &[]))),
        exec.join(" ")
    );
    let timer = format!(
        "[Unit]\n\
         Description=Run watchdog-check {words}\n\
         \n\
         [Timer]\n\
         OnBootSec=1min\n\
         OnUnitActiveSec={span}\n\
         AccuracySec=1s\n\
         Unit={UNIT}.service\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n",
        words = every_words(job.every),
        span = systemd_span(job.every),
    );
    (service, timer)
}

/// Where each kind installs, under the user's home.
pub fn install_paths(kind: ScheduleKind, home: &Path) -> Vec<PathBuf> {
    match kind {
        ScheduleKind::Cron => Vec::new(),
        ScheduleKind::Launchd => vec![home.join(format!("Library/LaunchAgents/{LABEL}.plist"))],
        ScheduleKind::Systemd => {
            let dir = home.join(".config/systemd/user");
            vec![
                dir.join(format!("{UNIT}.service")),
                dir.join(format!("{UNIT}.timer")),
            ]
        }
    }
}

/// What `schedule` does with the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Print,
    Install,
    Uninstall,
}

/// `bound` is the longest a run of the configuration may take (`bound_s`), for the
/// refusal of a too short `--every`.
pub fn run(kind: ScheduleKind, step: Step, job: &Job, bound: Duration) -> ExitCode {
    if step != Step::Uninstall
        && let Err(why) = check_every(kind, job.every, bound)
    {
        eprintln!("watchdog: schedule: {why}");
        return ExitCode::Usage;
    }
    // Warnings about the job to be scheduled, on stderr: never in the printed file.
    if step != Step::Uninstall {
        let path = job_path(job.path.as_deref(), &[]);
        let warnings = cargo_target_warning(&job.exe)
            .into_iter()
            .chain(untrusted_path_dirs(&path));
        for warning in warnings {
            eprintln!("{warning}");
        }
    }
    let (done, flag) = match step {
        Step::Print => {
            // stdout is the file itself (`> file.plist` must be valid as-is); what to
            // do with it goes to stderr.
            let (text, hint) = render(kind, job);
            print!("{text}");
            if let Some(hint) = hint {
                eprintln!("{hint}");
            }
            return ExitCode::Healthy;
        }
        Step::Install => (install_job(kind, job), "--install"),
        Step::Uninstall => (uninstall_job(kind, job), "--uninstall"),
    };
    match done {
        Ok(done) => {
            for line in done {
                println!("{line}");
            }
            ExitCode::Healthy
        }
        Err(why) => {
            eprintln!("watchdog: schedule {flag} failed: {why}");
            ExitCode::RestartFailed
        }
    }
}

/// A binary in a Cargo `target/` directory (`target/release/watchdog`, also under a
/// target triple) is deleted by the next `cargo clean` and replaced by the next build:
/// the job would stop, or run whatever was built last. `None` for any other path.
pub fn cargo_target_warning(exe: &Path) -> Option<String> {
    let names: Vec<&std::ffi::OsStr> = exe.parent()?.iter().collect();
    let in_target = names.iter().enumerate().any(|(i, name)| {
        *name == "target"
            && names[i + 1..]
                .iter()
                .any(|n| *n == "release" || *n == "debug")
    });
    in_target.then(|| {
        format!(
            "watchdog: warning: {} is inside a Cargo target/ directory, which `cargo clean` \
             deletes and the next build replaces; install it with `cargo install --path .` \
             (it goes to ~/.cargo/bin/watchdog, or $CARGO_HOME/bin/watchdog) and run \
             `~/.cargo/bin/watchdog schedule` from there",
            exe.display()
        )
    })
}

/// The job's PATH directories that another user could write to (the directory writable
/// by others, sticky or not: the sticky bit of `/tmp` stops removing, not adding a
/// `supervisorctl`; or one above it not owned by this user or root, or writable by
/// others without the sticky bit): each would let that user plant a tool the job runs
/// with this user's rights (root's, in root's crontab). A missing directory is flagged
/// when another user could create it (its nearest existing directory is theirs to
/// write, like `/tmp/bin`): the job would then run what they put there.
pub fn untrusted_path_dirs(path: &str) -> Vec<String> {
    let euid = crate::safe_fs::own_euid();
    let mut warnings = Vec::new();
    for dir in path.split(':') {
        // A missing directory: its nearest existing ancestor decides who may create it.
        let mut existing = Path::new(dir);
        let meta = loop {
            match fs::metadata(existing) {
                Ok(meta) => break Some(meta),
                Err(_) => match existing.parent() {
                    Some(up) if !up.as_os_str().is_empty() => existing = up,
                    _ => break None,
                },
            }
        };
        let Some(meta) = meta else {
            continue;
        };
        let missing = existing != Path::new(dir);
        let (mode, uid, gid) = (meta.mode(), meta.uid(), meta.gid());
        let why = if crate::safe_fs::writable_by_others_than_owner(mode, uid, gid) {
            if missing {
                format!(
                    "missing, and {} is writable by others (mode {:o}), so they can create it",
                    existing.display(),
                    mode & 0o7777
                )
            } else {
                format!("writable by others (mode {:o})", mode & 0o7777)
            }
        } else if let Err(e) = crate::safe_fs::check_trusted_chain(existing, &[euid]) {
            e.to_string()
        } else {
            continue;
        };
        warnings.push(format!(
            "watchdog: warning: the job's PATH has {dir}, which another user can change \
             ({why}); the job would run what they put there: take it out of PATH before \
             `schedule`"
        ));
    }
    warnings
}

/// The text to print (the file, valid as it is) and a hint for stderr.
fn render(kind: ScheduleKind, job: &Job) -> (String, Option<String>) {
    let mut out = String::new();
    let mut hint = None;
    match kind {
        ScheduleKind::Cron => {
            let _ = writeln!(
                out,
                "# add with `crontab -e`, or run `watchdog schedule cron --install`"
            );
            let _ = writeln!(out, "{}", cron_line(job));
        }
        ScheduleKind::Launchd => {
            // Nothing may come before the XML declaration: the hint goes to stderr.
            let path = &install_paths(kind, &job.home)[0];
            hint = Some(format!(
                "# save as {} and load with: launchctl bootstrap gui/$(id -u) {}",
                path.display(),
                path.display()
            ));
            out.push_str(&launchd_plist(job));
        }
        ScheduleKind::Systemd => {
            let paths = install_paths(kind, &job.home);
            let (service, timer) = systemd_units(job);
            let _ = writeln!(out, "# {}", paths[0].display());
            out.push_str(&service);
            let _ = writeln!(out, "\n# {}", paths[1].display());
            out.push_str(&timer);
            let _ = writeln!(
                out,
                "\n# then: systemctl --user daemon-reload && systemctl --user enable --now {UNIT}.timer"
            );
        }
    }
    (out, hint)
}

fn install_job(kind: ScheduleKind, job: &Job) -> Result<Vec<String>, String> {
    match kind {
        ScheduleKind::Cron => install_cron(job),
        ScheduleKind::Launchd => {
            let path = &install_paths(kind, &job.home)[0];
            write_file(path, &launchd_plist(job))?;
            let uid = crate::probe::os::own_uid();
            // A job loaded before is unloaded first, so the new plist takes effect;
            // "not loaded" is not an error here.
            let _ = tool(&["launchctl", "bootout", &launchd_job(uid)]);
            tool(&[
                "launchctl",
                "bootstrap",
                &format!("gui/{uid}"),
                &path.display().to_string(),
            ])?;
            Ok(vec![
                format!("wrote {}", path.display()),
                format!(
                    "loaded it: launchctl bootstrap gui/{uid} {}",
                    path.display()
                ),
            ])
        }
        ScheduleKind::Systemd => {
            let paths = install_paths(kind, &job.home);
            let (service, timer) = systemd_units(job);
            write_file(&paths[0], &service)?;
            write_file(&paths[1], &timer)?;
            tool(&["systemctl", "--user", "daemon-reload"])?;
            tool(&[
                "systemctl",
                "--user",
                "enable",
                "--now",
                &format!("{UNIT}.timer"),
            ])?;
            Ok(vec![
                format!("wrote {} and {}", paths[0].display(), paths[1].display()),
                format!("enabled and started {UNIT}.timer (systemctl --user)"),
            ])
        }
    }
}

/// Adds the line unless the crontab already runs this binary's `check`; the rest of
/// the crontab is kept as it was.
fn install_cron(job: &Job) -> Result<Vec<String>, String> {
    let line = cron_line(job);
    let current = read_crontab()?;
    if let Some(existing) = current.lines().find(|l| runs_our_check(l, job)) {
        let mut done = vec![format!(
            "the crontab already runs {} check; left unchanged",
            quoted_exe(job)
        )];
        if existing != line {
            // An older line (before PATH was carried, or another PATH) is the
            // operator's to replace: --uninstall removes every line of ours.
            done.push(format!(
                "its line differs from `{line}`: run `watchdog schedule cron --uninstall` and `--install` to replace it"
            ));
        }
        return Ok(done);
    }
    let mut updated = current;
    if !updated.is_empty() && !updated.ends_with('\n') {
        updated.push('\n');
    }
    updated.push_str(&line);
    updated.push('\n');
    replace_crontab(&updated)?;
    Ok(vec![format!("added to the crontab: {line}")])
}

/// Removes every line that runs this binary's `check` (whatever its schedule or
/// options); comments and other jobs stay.
fn uninstall_cron(job: &Job) -> Result<Vec<String>, String> {
    let current = read_crontab()?;
    let (ours, kept): (Vec<&str>, Vec<&str>) =
        current.lines().partition(|l| runs_our_check(l, job));
    if ours.is_empty() {
        return Ok(vec![format!(
            "the crontab does not run {} check; left unchanged",
            quoted_exe(job)
        )]);
    }
    let mut updated = kept.join("\n");
    if !updated.is_empty() {
        updated.push('\n');
    }
    replace_crontab(&updated)?;
    Ok(ours
        .iter()
        .map(|line| format!("removed from the crontab: {line}"))
        .collect())
}

fn quoted_exe(job: &Job) -> String {
    shell_quote(&job.exe.display().to_string())
}

fn runs_our_check(line: &str, job: &Job) -> bool {
    let ours = cron_escape(&format!("{} check", quoted_exe(job)));
    !line.trim_start().starts_with('#') && line.contains(&ours)
}

/// The user's crontab, as `crontab -l` prints it. It fails when the user has none yet,
/// which is an empty table; any other failure (a timeout, PAM or permission trouble) is
/// an error, since replacing a table we could not read would wipe it.
fn read_crontab() -> Result<String, String> {
    let done = run_tool(&["crontab", "-l"])?;
    if done.status.success() {
        Ok(done.stdout)
    } else if says_no_crontab(&done.text()) {
        Ok(String::new())
    } else {
        Err(failed(&["crontab", "-l"], &done))
    }
}

/// Debian's cron, cronie and macOS all say `no crontab for USER` when there is none.
fn says_no_crontab(message: &str) -> bool {
    message.contains("no crontab for ")
}

/// Hands the whole new table to `crontab FILE`, the one way to replace it.
fn replace_crontab(text: &str) -> Result<(), String> {
    let dir = tempfile_dir()?;
    let staged = dir.join("crontab");
    let result = write_file(&staged, text)
        .and_then(|()| tool(&["crontab", &staged.display().to_string()]).map(drop));
    let _ = fs::remove_dir_all(&dir);
    result
}

fn uninstall_job(kind: ScheduleKind, job: &Job) -> Result<Vec<String>, String> {
    match kind {
        ScheduleKind::Cron => uninstall_cron(job),
        ScheduleKind::Launchd => {
            let path = &install_paths(kind, &job.home)[0];
            let target = launchd_job(crate::probe::os::own_uid());
            let mut done = Vec::new();
            // Unloaded first, so launchd does not run a plist that is gone; a job that
            // was never loaded is what we want anyway.
            match tool(&["launchctl", "bootout", &target]) {
                Ok(_) => done.push(format!("unloaded it: launchctl bootout {target}")),
                Err(why) => done.push(format!("not loaded ({why})")),
            }
            let paths = std::slice::from_ref(path);
            let removed = remove_files(paths)?;
            if removed.is_empty() {
                done.push(nothing_to_remove(paths));
            }
            done.extend(removed);
            Ok(done)
        }
        ScheduleKind::Systemd => {
            let paths = install_paths(kind, &job.home);
            let timer = format!("{UNIT}.timer");
            let mut done = Vec::new();
            if paths.iter().any(|p| p.exists()) {
                tool(&["systemctl", "--user", "disable", "--now", &timer])?;
                done.push(format!("stopped and disabled {timer} (systemctl --user)"));
            }
            let removed = remove_files(&paths)?;
            if removed.is_empty() {
                done.push(nothing_to_remove(&paths));
            } else {
                tool(&["systemctl", "--user", "daemon-reload"])?;
            }
            done.extend(removed);
            Ok(done)
        }
    }
}

/// The job in the user's GUI domain, as `launchctl bootout` names it.
fn launchd_job(uid: u32) -> String {
    format!("gui/{uid}/{LABEL}")
}

/// Removes the files that exist and says which; an empty list when there were none.
fn remove_files(paths: &[PathBuf]) -> Result<Vec<String>, String> {
    let mut done = Vec::new();
    for path in paths.iter().filter(|p| p.exists()) {
        fs::remove_file(path).map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
        done.push(format!("removed {}", path.display()));
    }
    Ok(done)
}

fn nothing_to_remove(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    format!("nothing to remove: no {}", names.join(" or "))
}

fn tempfile_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("watchdog-schedule-{}", std::process::id()));
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Runs a tool to completion (bounded); its stdout on success.
fn tool(argv: &[&str]) -> Result<String, String> {
    let done = run_tool(argv)?;
    if done.status.success() {
        Ok(done.stdout)
    } else {
        Err(failed(argv, &done))
    }
}

/// Runs a tool to completion (bounded), whatever its exit status.
fn run_tool(argv: &[&str]) -> Result<Finished, String> {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    command::run(&argv, &[], Output::Capture, Deadline::after(TOOL_TIMEOUT))
        .map_err(|e| e.to_string())
}

fn failed(argv: &[&str], done: &Finished) -> String {
    format!(
        "`{}` failed ({}): {}",
        argv.join(" "),
        done.status,
        done.text()
    )
}

fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:+,@".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// systemd's ExecStart quoting: double quotes, with `\` and `"` escaped; `%` doubled.
fn systemd_quote(word: &str) -> String {
    let escaped = word.replace('%', "%%");
    if escaped
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-=:+,@%".contains(c))
        && !escaped.is_empty()
    {
        escaped
    } else {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/tmp/bin` that does not exist yet names nothing today, but anyone may create
    /// it tomorrow and fill it: the operator is warned as for a directory others write.
    #[test]
    fn a_missing_path_directory_others_could_create_is_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let sticky = dir.path().join("sticky");
        fs::create_dir(&sticky).unwrap();
        fs::set_permissions(&sticky, fs::Permissions::from_mode(0o1777)).unwrap();
        let own = dir.path().join("own");
        fs::create_dir(&own).unwrap();
        fs::set_permissions(&own, fs::Permissions::from_mode(0o755)).unwrap();
        let later = sticky.join("bin");
        let path = format!("{}:{}", later.display(), own.join("bin").display());
        let warnings = untrusted_path_dirs(&path);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains(&format!(
                "PATH has {}, which another user can change (missing, and {} is writable by \
                 others (mode 1777), so they can create it)",
                later.display(),
                sticky.display()
            )),
            "{warnings:?}"
        );
    }

    fn job(config: Option<&str>) -> Job {
        Job {
            exe: PathBuf::from("/usr/local/bin/watchdog"),
            config: config.map(PathBuf::from),
            home: PathBuf::from("/Users/me"),
            path: Some("/opt/homebrew/bin:/usr/bin:/bin".into()),
            every: DEFAULT_EVERY,
        }
    }

    /// launchd and systemd take seconds from 10 s up; cron only whole minutes dividing
    /// 60; each refusal says why and what to use instead.
    #[test]
    fn every_is_checked_against_the_scheduler() {
        use ScheduleKind::*;
        let bound = Duration::from_secs(134);
        let secs = Duration::from_secs;
        for kind in [Launchd, Systemd] {
            for ok in [10, 30, 45, 60, 90, 300] {
                assert_eq!(check_every(kind, secs(ok), bound), Ok(()), "{kind:?} {ok}");
            }
        }
        for ok in [60, 120, 300, 600, 1800] {
            assert_eq!(check_every(Cron, secs(ok), bound), Ok(()), "{ok}");
        }
        for bad in [30, 90, 420, 3600] {
            let why = check_every(Cron, secs(bad), bound).unwrap_err();
            assert!(
                why.contains("cron's finest field is the minute")
                    && why.contains("watchdog schedule systemd"),
                "{why}"
            );
        }
        for kind in [Cron, Launchd, Systemd] {
            let why = check_every(kind, secs(5), bound).unwrap_err();
            assert!(
                why.contains("below 10s") && why.contains("134s") && why.contains("exit 5"),
                "{why}"
            );
            let why = check_every(kind, Duration::from_millis(10_500), bound).unwrap_err();
            assert!(why.contains("whole number of seconds"), "{why}");
        }
    }

    /// Only the interval changes: the cron minute field, StartInterval, OnUnitActiveSec
    /// and the timer's description.
    #[test]
    fn every_changes_only_the_interval() {
        let at = |every| Job {
            every: Duration::from_secs(every),
            ..job(None)
        };
        assert_eq!(
            cron_line(&at(300)),
            cron_line(&at(60)).replacen("* * * * *", "*/5 * * * *", 1)
        );
        assert_eq!(
            launchd_plist(&at(30)),
            launchd_plist(&at(60)).replace("<integer>60</integer>", "<integer>30</integer>")
        );
        let (service, timer) = systemd_units(&at(30));
        let (service60, timer60) = systemd_units(&at(60));
        assert_eq!(service, service60);
        assert_eq!(
            timer,
            timer60
                .replace("every minute", "every 30s")
                .replace("OnUnitActiveSec=1min", "OnUnitActiveSec=30s")
        );
        assert!(systemd_units(&at(120)).1.contains("OnUnitActiveSec=2min\n"));
    }

    const PATH: &str = "PATH=/opt/homebrew/bin:/usr/bin:/bin:/usr/sbin:/sbin";

    #[test]
    fn cron_line_runs_check_every_minute() {
        assert_eq!(
            cron_line(&job(None)),
            format!("* * * * * {PATH} /usr/local/bin/watchdog check")
        );
        assert_eq!(
            cron_line(&job(Some("/home/me/my watchdog.toml"))),
            format!(
                "* * * * * {PATH} /usr/local/bin/watchdog check -c '/home/me/my watchdog.toml'"
            )
        );
        // `%` would end cron's command: every one is escaped, in PATH and arguments.
        let mut odd = job(Some("/home/me/50%.toml"));
        odd.path = Some("/home/me/my bin:/opt/100%/bin".into());
        assert_eq!(
            cron_line(&odd),
            "* * * * * PATH='/home/me/my bin:/opt/100\\%/bin:/usr/bin:/bin:/usr/sbin:/sbin' \
             /usr/local/bin/watchdog check -c '/home/me/50\\%.toml'"
        );
    }

    #[test]
    fn job_path_keeps_the_operators_absolute_entries_then_the_system_ones() {
        assert_eq!(
            job_path(Some("/a:.::bin:/a:/usr/bin:/b\nc:/d"), &[]),
            "/a:/usr/bin:/d:/bin:/usr/sbin:/sbin"
        );
        assert_eq!(job_path(None, &[]), "/usr/bin:/bin:/usr/sbin:/sbin");
        assert_eq!(
            job_path(None, LAUNCHD_EXTRA_PATH),
            "/usr/bin:/bin:/usr/sbin:/sbin:/usr/local/bin:/opt/homebrew/bin"
        );
    }

    #[test]
    fn only_a_binary_under_cargos_target_dir_is_warned_about() {
        for built in [
            "/home/me/watchdog/target/release/watchdog",
            "/home/me/watchdog/target/debug/watchdog",
            "/src/w/target/x86_64-unknown-linux-gnu/release/watchdog",
        ] {
            let warning = cargo_target_warning(Path::new(built)).expect(built);
            assert!(warning.contains("cargo install --path ."), "{warning}");
            assert!(warning.contains("~/.cargo/bin/watchdog"), "{warning}");
            assert!(warning.contains(built), "{warning}");
        }
        for installed in [
            "/home/me/.cargo/bin/watchdog",
            "/usr/local/bin/watchdog",
            "/opt/target/bin/watchdog",
            "/srv/release/watchdog",
        ] {
            assert_eq!(
                cargo_target_warning(Path::new(installed)),
                None,
                "{installed}"
            );
        }
    }

    #[test]
    fn launchd_plist_has_the_interval_and_arguments() {
        let plist = launchd_plist(&job(Some("/Users/me/.config/watchdog/w&d.toml")));
        for needle in [
            "<string>io.github.watchdog.check</string>",
            "<key>StartInterval</key>\n    <integer>60</integer>",
            "<string>/usr/local/bin/watchdog</string>",
            "<string>check</string>",
            "<string>/Users/me/.config/watchdog/w&amp;d.toml</string>",
            "<string>/Users/me/Library/Logs/watchdog.log</string>",
            "<string>/opt/homebrew/bin:/usr/bin:/bin:/usr/sbin:/sbin:/usr/local/bin</string>",
        ] {
            assert!(plist.contains(needle), "{needle} missing:\n{plist}");
        }
    }

    #[test]
    fn systemd_units_pair_a_oneshot_with_a_timer() {
        let (service, timer) = systemd_units(&job(Some("/home/me/50% off.toml")));
        assert!(service.contains("Type=oneshot"));
        assert!(
            service
                .contains("ExecStart=/usr/local/bin/watchdog check -c \"/home/me/50%% off.toml\""),
            "{service}"
        );
        assert!(
            service
                .contains("\nEnvironment=PATH=/opt/homebrew/bin:/usr/bin:/bin:/usr/sbin:/sbin\n"),
            "{service}"
        );
        let mut odd = job(None);
        odd.path = Some("/my bin:/100%".into());
        assert!(
            systemd_units(&odd)
                .0
                .contains("\nEnvironment=\"PATH=/my bin:/100%%:/usr/bin:/bin:/usr/sbin:/sbin\"\n")
        );
        assert!(service.contains("SuccessExitStatus=1 4 5"));
        assert!(service.contains("\nKillMode=process\n"), "{service}");
        assert!(timer.contains("OnUnitActiveSec=1min"));
        assert!(timer.contains("Unit=watchdog-check.service"));
        assert!(timer.contains("WantedBy=timers.target"));
    }

    #[test]
    fn only_no_crontab_for_user_is_an_empty_crontab() {
        for none in [
            "no crontab for me",          // Debian's cron, cronie
            "crontab: no crontab for me", // macOS
        ] {
            assert!(says_no_crontab(none), "{none}");
        }
        for trouble in [
            "crontab: Permission denied",
            "You (me) are not allowed to access to (crontab) because of pam configuration.",
            "",
        ] {
            assert!(!says_no_crontab(trouble), "{trouble}");
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("plain/path-1.toml"), "plain/path-1.toml");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(systemd_quote("a b"), "\"a b\"");
        assert_eq!(xml_escape("<&>"), "&lt;&amp;&gt;");
    }
}
