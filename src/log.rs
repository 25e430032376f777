//! Log events (SPEC §6): one JSON object per line in the log file (rotated past
//! `max_size`), one readable line on stderr and in syslog. A log that cannot be written
//! is reported once on stderr and never stops the cycle: the watchdog's job is the
//! server, not its own log.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{Local, SecondsFormat};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::{LogConfig, LogFormat};

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

    fn to_json(&self, ts: &str) -> Value {
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
        }
    }

    /// A logger that writes to stderr only, for tests of what shows there.
    #[cfg(test)]
    pub fn stderr_only(verbosity: Verbosity) -> Logger {
        Logger {
            file: None,
            syslog: Syslog::Off,
            verbosity,
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
    fn write(&self, event: &Event, ts: &str) -> std::io::Result<()> {
        let mut line = match self.format {
            LogFormat::Json => event.to_json(ts).to_string(),
            LogFormat::Text => format!("{ts} {} {}", event.level.upper(), event.line()),
        };
        line.push('\n');
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir)?;
        }
        self.rotate_if_needed(line.len() as u64)?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        file.write_all(line.as_bytes())
    }

    /// Keeps one old generation (`watchdog.log.1`): enough to see the last incident,
    /// bounded on a box nobody watches.
    fn rotate_if_needed(&self, incoming: u64) -> std::io::Result<()> {
        let size = match fs::metadata(&self.path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if size > 0 && size + incoming > self.max_size {
            fs::rename(&self.path, rotated(&self.path))?;
        }
        Ok(())
    }
}

fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".1");
    PathBuf::from(name)
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
