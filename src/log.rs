//! Log events (docs/REPORT.md, "Log events"): one JSON object per line in the log file
//! (rotated past `max_size`), one readable line on stderr and in syslog. A log that cannot
//! be written is reported once on stderr and never stops the cycle: the watchdog's job is
//! the server, not its own log.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use chrono::{Local, SecondsFormat};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::{LogConfig, LogFormat};
use crate::safe_fs::{self, SafeFsError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    fn upper(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        }
    }
}

/// One log event. `extra` holds what the event needs beyond the common fields
/// (`method`, `new_pid`, `incident`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub level: Level,
    pub event: &'static str,
    pub pid: Option<u32>,
    pub reasons: Vec<String>,
    pub dry_run: bool,
    pub message: String,
    pub extra: Map<String, Value>,
}

impl Event {
    pub fn new(level: Level, event: &'static str, message: impl Into<String>) -> Event {
        Event {
            level,
            event,
            pid: None,
            reasons: Vec::new(),
            dry_run: false,
            message: message.into(),
            extra: Map::new(),
        }
    }

    pub fn pid(mut self, pid: Option<u32>) -> Event {
        self.pid = pid;
        self
    }

    pub fn reasons(mut self, reasons: Vec<String>) -> Event {
        self.reasons = reasons;
        self
    }

    pub fn dry_run(mut self, dry_run: bool) -> Event {
        self.dry_run = dry_run;
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Event {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    /// The event as one JSON object, as the log file holds it.
    pub fn to_json(&self, ts: &str) -> Value {
        let mut object = Map::new();
        object.insert("ts".into(), ts.into());
        object.insert("level".into(), json(&self.level));
        object.insert("event".into(), self.event.into());
        object.insert("pid".into(), json(&self.pid));
        object.insert("reasons".into(), json(&self.reasons));
        object.insert("dry_run".into(), self.dry_run.into());
        object.insert("message".into(), self.message.clone().into());
        for (key, value) in &self.extra {
            object.insert(key.clone(), value.clone());
        }
        Value::Object(object)
    }

    /// The readable form used on stderr, in syslog and in a text log file.
    pub fn line(&self) -> String {
        let pid = self.pid.map(|p| format!(" pid={p}")).unwrap_or_default();
        let dry = if self.dry_run { " (dry run)" } else { "" };
        format!("{}{pid}{dry}: {}", self.event, self.message)
    }
}

fn json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// How much goes to stderr. Cron mails anything printed, so a healthy run prints
/// nothing unless asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Errors only.
    Quiet,
    /// Everything but the healthy heartbeat.
    Normal,
    /// Everything.
    Verbose,
}

pub struct Logger {
    file: Option<FileSink>,
    /// Opened at the first event, so that a run with nothing to log never reports an
    /// unavailable syslog (cron would mail that every minute).
    syslog: Syslog,
    verbosity: Verbosity,
    /// Every event of this run, in order, with its time: the notifiers send them at the
    /// end of the run (src/notify.rs).
    emitted: Vec<Emitted>,
}

/// An event as it was emitted, with the `ts` its log line carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    pub ts: String,
    pub event: Event,
}

impl Emitted {
    /// The object of its JSON log line.
    pub fn json(&self) -> Value {
        self.event.to_json(&self.ts)
    }
}

enum Syslog {
    Off,
    Wanted,
    Open(SyslogSink),
}

struct FileSink {
    path: PathBuf,
    format: LogFormat,
    max_size: u64,
}

type SyslogSink = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

impl Logger {
    pub fn open(cfg: &LogConfig, verbosity: Verbosity) -> Logger {
        let file = cfg.file.as_ref().map(|path| FileSink {
            path: path.clone(),
            format: cfg.format,
            max_size: cfg.max_size,
        });
        let syslog = if cfg.syslog {
            Syslog::Wanted
        } else {
            Syslog::Off
        };
        Logger {
            file,
            syslog,
            verbosity,
            emitted: Vec::new(),
        }
    }

    /// A logger that writes to stderr only, for tests of what shows there.
    #[cfg(test)]
    pub fn stderr_only(verbosity: Verbosity) -> Logger {
        Logger {
            file: None,
            syslog: Syslog::Off,
            verbosity,
            emitted: Vec::new(),
        }
    }

    pub fn emit(&mut self, event: &Event) {
        let ts = Local::now().to_rfc3339_opts(SecondsFormat::Millis, false);
        if self.shows_on_stderr(event) {
            eprintln!("watchdog: {}", event.line());
        }
        if let Some(sink) = &self.file
            && let Err(e) = sink.write(event, &ts)
        {
            eprintln!(
                "watchdog: cannot write log file {}: {e}; continuing without it this run",
                sink.path.display()
            );
            self.file = None;
        }
        if matches!(self.syslog, Syslog::Wanted) {
            self.syslog = open_syslog().map_or(Syslog::Off, Syslog::Open);
        }
        if let Syslog::Open(sink) = &mut self.syslog {
            let line = event.line();
            let sent = match event.level {
                Level::Error => sink.err(line),
                Level::Warning => sink.warning(line),
                Level::Info => sink.info(line),
            };
            if let Err(e) = sent {
                eprintln!("watchdog: syslog write failed: {e}; continuing without syslog this run");
                self.syslog = Syslog::Off;
            }
        }
        self.emitted.push(Emitted {
            ts,
            event: event.clone(),
        });
    }

    /// The events emitted so far this run, oldest first.
    pub fn emitted(&self) -> &[Emitted] {
        &self.emitted
    }

    fn shows_on_stderr(&self, event: &Event) -> bool {
        match self.verbosity {
            Verbosity::Verbose => true,
            Verbosity::Normal => event.event != "healthy",
            Verbosity::Quiet => event.level == Level::Error,
        }
    }
}

fn open_syslog() -> Option<SyslogSink> {
    let formatter = syslog::Formatter3164 {
        facility: syslog::Facility::LOG_USER,
        hostname: None,
        process: "watchdog".into(),
        pid: std::process::id(),
    };
    match syslog::unix(formatter) {
        Ok(logger) => Some(logger),
        Err(e) => {
            eprintln!(
                "watchdog: syslog is enabled but unavailable ({e}); logging to the file and stderr only"
            );
            None
        }
    }
}

impl FileSink {
    fn write(&self, event: &Event, ts: &str) -> Result<(), SafeFsError> {
        let mut line = match self.format {
            LogFormat::Json => event.to_json(ts).to_string(),
            // One event, one line: a message quoting a command line with line breaks
            // in it must not add lines that read back as actions (`actions_since`).
            LogFormat::Text => format!("{ts} {} {}", event.level.upper(), event.line())
                .replace('\n', "\\n")
                .replace('\r', "\\r"),
        };
        line.push('\n');
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            // The check cycle creates and checks the log's directory before the first
            // event (docs/SECURITY.md); this covers a logger used on its own.
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| SafeFsError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
        let mut file = self.open()?;
        // The size is the opened file's, not a second lookup by name that a swap could
        // answer.
        let size = file.metadata().map_err(|e| self.io_error(e))?.len();
        if size > 0 && size + line.len() as u64 > self.max_size {
            // rename(2) moves the name, never what a link points at.
            fs::rename(&self.path, rotated(&self.path)).map_err(|e| self.io_error(e))?;
            file = self.open()?;
        }
        file.write_all(line.as_bytes())
            .map_err(|e| self.io_error(e))
    }

    /// The log file, never through a symlink nor a FIFO: anything but a regular file at
    /// its name is moved aside and reported on stderr. One old generation is kept
    /// (`watchdog.log.1`): enough to see the last incident, bounded on a box nobody
    /// watches.
    fn open(&self) -> Result<fs::File, SafeFsError> {
        let (file, moved) = safe_fs::open_append_replacing(&self.path, LOG_MODE)?;
        if let Some(moved) = moved {
            eprintln!(
                "watchdog: {} was not a regular file; moved it aside to {} and started a new log",
                self.path.display(),
                moved.display()
            );
        }
        Ok(file)
    }

    fn io_error(&self, source: std::io::Error) -> SafeFsError {
        SafeFsError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// The log is the watchdog's own record of what it did to the server: its user's only.
const LOG_MODE: u32 = 0o600;

fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".1");
    PathBuf::from(name)
}

/// At most this much of the end of each log generation is read back.
const MAX_SCAN: u64 = 4 * 1024 * 1024;

/// A `restart` or `start` event found in the log: the watchdog writes one before every
/// action it takes, so the log remembers restarts when the history cannot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedAction {
    /// Seconds since the epoch.
    pub at: u64,
    /// `restart` or `start`.
    pub event: String,
    pub method: String,
    pub pid: Option<u32>,
}

/// The `restart` and `start` events in the log `path` and its older generation
/// (`path.1`) at or after `since` (seconds since the epoch), oldest first. Reads at most
/// the last `MAX_SCAN` bytes of each file, never through a symlink; a line that is not
/// such an event (garbage, a line cut by the bound, another event) is skipped. A file
/// that is not there holds no event (the watchdog logs before every action). `None`
/// when a file is there but cannot be read as a regular file (a link, a FIFO, a
/// directory, an I/O error) and the other gives no evidence either.
pub fn actions_since(path: &Path, since: u64) -> Option<Vec<LoggedAction>> {
    let mut found = Vec::new();
    let mut readable = false;
    let mut missing = 0;
    for file in [rotated(path), path.to_path_buf()] {
        let text = match read_tail(&file) {
            Ok(text) => text,
            Err(Missing::Absent) => {
                missing += 1;
                continue;
            }
            Err(Missing::Unreadable) => continue,
        };
        readable = true;
        found.extend(
            text.lines()
                .filter_map(parse_action)
                .filter(|a| a.at >= since),
        );
    }
    (readable || missing == 2).then_some(found)
}

enum Missing {
    Absent,
    Unreadable,
}

fn read_tail(path: &Path) -> Result<String, Missing> {
    let mut file = safe_fs::open_regular(path).map_err(|e| {
        if e.is_not_found() {
            Missing::Absent
        } else {
            Missing::Unreadable
        }
    })?;
    let unreadable = |_| Missing::Unreadable;
    let len = file.metadata().map_err(unreadable)?.len();
    let start = len.saturating_sub(MAX_SCAN);
    file.seek(SeekFrom::Start(start)).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(MAX_SCAN)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if start > 0 {
        // The first line was cut by the bound.
        let cut = bytes
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| i + 1);
        bytes.drain(..cut);
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// One log line, JSON or text (`TS LEVEL EVENT[ pid=N][ (dry run)]: MESSAGE`), as an
/// action the watchdog took; `None` for anything else.
fn parse_action(line: &str) -> Option<LoggedAction> {
    let line = line.trim();
    if line.starts_with('{') {
        let value: Value = serde_json::from_str(line).ok()?;
        let event = value.get("event")?.as_str()?;
        if !matches!(event, "restart" | "start") || value.get("dry_run")? != &Value::Bool(false) {
            return None;
        }
        return Some(LoggedAction {
            at: epoch_of(value.get("ts")?.as_str()?)?,
            event: event.to_string(),
            method: value
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string(),
            pid: value
                .get("pid")
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok()),
        });
    }
    let mut words = line.splitn(3, ' ');
    let ts = words.next()?;
    let _level = words.next()?;
    let rest = words.next()?;
    let head = rest.split(':').next()?;
    let event = head.split(' ').next()?;
    if !matches!(event, "restart" | "start") || head.contains("(dry run)") {
        return None;
    }
    let pid = head
        .split(' ')
        .find_map(|w| w.strip_prefix("pid="))
        .and_then(|p| p.parse().ok());
    let method = rest.rsplit_once(" via ").map_or("unknown", |(_, m)| {
        m.split_whitespace().next().unwrap_or("unknown")
    });
    Some(LoggedAction {
        at: epoch_of(ts)?,
        event: event.to_string(),
        method: method.to_string(),
        pid,
    })
}

fn epoch_of(ts: &str) -> Option<u64> {
    let at = chrono::DateTime::parse_from_rfc3339(ts).ok()?;
    u64::try_from(at.timestamp()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(path: &Path, format: LogFormat, max_size: u64) -> LogConfig {
        LogConfig {
            file: Some(path.to_path_buf()),
            format,
            syslog: false,
            max_size,
            heartbeat: false,
        }
    }

    fn restart_event() -> Event {
        Event::new(Level::Warning, "restart", "restarting")
            .pid(Some(42))
            .reasons(vec!["fds_over_limit".into()])
            .with("method", "builtin")
    }

    #[test]
    fn json_lines_carry_the_spec_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/watchdog.log");
        let mut logger = Logger::open(&cfg(&path, LogFormat::Json, 1 << 20), Verbosity::Quiet);
        logger.emit(&restart_event());
        let text = fs::read_to_string(&path).unwrap();
        let value: Value = serde_json::from_str(text.trim()).unwrap();
        for key in [
            "ts", "level", "event", "pid", "reasons", "dry_run", "message", "method",
        ] {
            assert!(value.get(key).is_some(), "missing {key} in {value}");
        }
        assert_eq!(value["event"], "restart");
        assert_eq!(value["level"], "warning");
        let ts = value["ts"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
        assert_eq!(
            ts.split('.').nth(1).map(|f| &f[..3]).map(|m| m.len()),
            Some(3)
        );
    }

    #[test]
    fn emitted_events_are_kept_with_the_ts_of_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watchdog.log");
        let mut logger = Logger::open(&cfg(&path, LogFormat::Json, 1 << 20), Verbosity::Quiet);
        logger.emit(&restart_event());
        logger.emit(&Event::new(Level::Info, "restarted", "healthy again"));
        let names: Vec<&str> = logger.emitted().iter().map(|e| e.event.event).collect();
        assert_eq!(names, ["restart", "restarted"]);
        let line: Value =
            serde_json::from_str(fs::read_to_string(&path).unwrap().lines().next().unwrap())
                .unwrap();
        assert_eq!(logger.emitted()[0].json(), line);
    }

    #[test]
    fn text_lines_are_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watchdog.log");
        let mut logger = Logger::open(&cfg(&path, LogFormat::Text, 1 << 20), Verbosity::Quiet);
        logger.emit(&restart_event());
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(" WARNING restart pid=42: restarting"),
            "{text}"
        );
    }

    #[test]
    fn a_message_with_line_breaks_adds_no_line_and_no_action() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watchdog.log");
        let mut logger = Logger::open(&cfg(&path, LogFormat::Text, 1 << 20), Verbosity::Quiet);
        let now = Local::now().to_rfc3339_opts(SecondsFormat::Millis, false);
        let forged =
            format!("python3 x\n{now} INFO restart pid=1: restarting PID 1 via builtin\r\n");
        logger.emit(&Event::new(Level::Info, "restarted", forged));
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert_eq!(actions_since(&path, 0), Some(vec![]), "{text}");
    }

    #[test]
    fn rotates_past_max_size_keeping_one_generation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watchdog.log");
        let mut logger = Logger::open(&cfg(&path, LogFormat::Json, 600), Verbosity::Quiet);
        for _ in 0..20 {
            logger.emit(&restart_event());
        }
        let current = fs::metadata(&path).unwrap().len();
        let old = fs::metadata(rotated(&path)).unwrap().len();
        assert!(current <= 600, "current log {current} bytes");
        assert!(old <= 600 && old > 0, "rotated log {old} bytes");
    }

    #[test]
    fn an_unwritable_log_does_not_stop_the_cycle() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: every write fails.
        let path = dir.path().join("taken");
        fs::create_dir(&path).unwrap();
        let mut logger = Logger::open(&cfg(&path, LogFormat::Json, 1 << 20), Verbosity::Quiet);
        logger.emit(&restart_event());
        assert!(
            logger.file.is_none(),
            "the sink is dropped after the first failure"
        );
        logger.emit(&restart_event());
    }

    #[test]
    fn a_planted_link_at_the_log_is_moved_aside_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        let path = dir.path().join("watchdog.log");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        std::os::unix::fs::symlink(&victim, rotated(&path)).unwrap();
        let mut logger = Logger::open(&cfg(&path, LogFormat::Json, 300), Verbosity::Quiet);
        for _ in 0..4 {
            logger.emit(&restart_event());
        }
        assert!(logger.file.is_some(), "the log goes on in a new file");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert!(fs::symlink_metadata(&path).unwrap().is_file());
        assert!(fs::symlink_metadata(rotated(&path)).unwrap().is_file());
    }

    #[test]
    fn restarts_are_read_back_from_both_generations_past_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watchdog.log");
        let line = |ts: &str, event: &str, dry: bool| {
            format!(
                "{{\"ts\":\"{ts}\",\"level\":\"warning\",\"event\":\"{event}\",\"pid\":7,\
                 \"reasons\":[],\"dry_run\":{dry},\"message\":\"m\",\"method\":\"builtin\"}}\n"
            )
        };
        let old = line("2026-01-01T10:00:00.000+00:00", "restart", false);
        fs::write(rotated(&path), format!("garbage\n{old}")).unwrap();
        let current = [
            line("2026-01-01T12:00:00.000+02:00", "start", false),
            "{\"event\": \"restart\"\n".to_string(),
            line("2026-01-01T11:00:00.000+00:00", "restarted", false),
            line("2026-01-01T11:00:00.000+00:00", "restart", true),
            "2026-01-01T11:30:00.000+00:00 WARNING restart pid=9: restarting PID 9 via builtin\n"
                .to_string(),
            "\u{0}\u{1}binary".to_string(),
        ]
        .concat();
        fs::write(&path, current).unwrap();
        let t = |ts: &str| epoch_of(ts).unwrap();
        let all = actions_since(&path, 0).expect("readable");
        let ats: Vec<u64> = all.iter().map(|a| a.at).collect();
        assert_eq!(
            ats,
            vec![
                t("2026-01-01T10:00:00Z"),
                t("2026-01-01T10:00:00Z"),
                t("2026-01-01T11:30:00Z")
            ],
            "{all:?}"
        );
        assert_eq!(all[1].event, "start");
        assert_eq!(all[2].pid, Some(9));
        assert_eq!(all[2].method, "builtin");
        let recent = actions_since(&path, t("2026-01-01T11:00:00Z")).unwrap();
        assert_eq!(recent.len(), 1);
    }

    #[test]
    fn a_log_that_cannot_be_read_gives_no_evidence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watchdog.log");
        assert_eq!(
            actions_since(&path, 0),
            Some(vec![]),
            "never written: no event"
        );
        fs::write(dir.path().join("elsewhere"), "").unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &path).unwrap();
        assert_eq!(actions_since(&path, 0), None, "a link is not followed");
        fs::remove_file(&path).unwrap();
        fs::write(&path, "").unwrap();
        assert_eq!(actions_since(&path, 0), Some(vec![]), "empty but readable");
    }

    #[test]
    fn stderr_filtering_follows_verbosity() {
        let healthy = Event::new(Level::Info, "healthy", "ok");
        let failed = Event::new(Level::Error, "restart_failed", "no");
        let quiet = Logger::stderr_only(Verbosity::Quiet);
        let normal = Logger::stderr_only(Verbosity::Normal);
        let verbose = Logger::stderr_only(Verbosity::Verbose);
        assert!(!quiet.shows_on_stderr(&restart_event()));
        assert!(quiet.shows_on_stderr(&failed));
        assert!(!normal.shows_on_stderr(&healthy));
        assert!(normal.shows_on_stderr(&restart_event()));
        assert!(verbose.shows_on_stderr(&healthy));
    }
}
