//! The configuration file (docs/CONFIG.md): lookup order, defaults, validation with
//! file:line:column, and the effective configuration printed back as TOML.
//!
//! Every value is checked while it is deserialized, so an error carries the span of
//! the offending value and the expected form.
//!
//! `~` handling: `defaults`, `from_toml_str` and `lookup_path` take the home directory
//! as an argument. With `None`, paths starting with `~` are kept as written (never
//! replaced by a guess such as "/"); `load` finds the home directory from `$HOME` or
//! the user database and fails with `ConfigError::NoHome` if it still has none while
//! a path needs it, so later code never sees a literal `~`.

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod lookup;
pub mod notify;
mod raw;
mod render;
pub mod signal;
#[cfg(test)]
mod tests;
pub mod tls;
pub mod url;

pub use lookup::{Loaded, Lookup, SYSTEM_CONFIG, load, load_from, lookup_path};
pub use url::HttpUrl;

/// How a restart is carried out (docs/DESIGN.md, "Acting").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Auto,
    Builtin,
    Launchd,
    Systemd,
    Supervisor,
    Runit,
    Command,
    None,
}

/// What a `[[files]]` rule does when the file is over `max_size` (docs/DESIGN.md,
/// "Decision rules").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileAction {
    Warn,
    Restart,
}

/// The form of the log file's lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// The effective configuration: defaults, then the file, then command-line overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub target: TargetConfig,
    pub health: HealthConfig,
    pub fds: FdsConfig,
    pub memory: MemoryConfig,
    pub files: Vec<FileRule>,
    pub restart: RestartConfig,
    pub log: LogConfig,
    pub state: StateConfig,
    pub metrics: MetricsConfig,
    pub notify: NotifyConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TargetConfig {
    /// `None` when configured as "" (no pidfile).
    pub pidfile: Option<PathBuf>,
    /// `None`: the port of `health.url`.
    pub port: Option<u16>,
    /// `None` when configured as "".
    pub match_: Option<String>,
    pub startup_grace: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    pub url: String,
    pub timeout: Duration,
    pub attempts: u32,
    pub interval: Duration,
    pub expect_status: Vec<u16>,
    /// `None` when configured as "".
    pub expect_body: Option<String>,
    /// https: accept any certificate (docs/CONFIG.md, "[health]"); `watchdog config
    /// --check` warns when the host is not loopback.
    pub insecure_tls: bool,
    /// https: the PEM certificates to trust instead of the system's, e.g. the server's
    /// self-signed one; `None` when configured as "". Read through src/safe_fs.rs when
    /// the configuration is loaded and again when the probe is built (src/config/tls.rs).
    pub ca_file: Option<PathBuf>,
    /// Numeric fields of the /health JSON that say the server is busy (an agent run in
    /// flight): a restart for a predictive reason waits while any is non-zero.
    pub busy_fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FdsConfig {
    pub max: u64,
    pub max_percent: u8,
    pub warn_percent: u8,
    pub paths: Vec<FdPathRule>,
    /// The FD samples of the current process within this window feed the growth rate.
    pub trend_window: Duration,
    /// Warn when the projected time to the FD restart limit is within this; zero: off.
    pub trend_horizon: Duration,
    /// Restart (when idle) once the projection is within the horizon, instead of
    /// waiting for the limit.
    pub trend_restart: bool,
    /// The expected-FD budget, from a /health field.
    pub budget: Option<FdBudget>,
}

/// Expected FDs = `base` + `per` × the /health JSON's `field`; more than `factor` ×
/// expected is a warning (the seed's "cache size × FDs per agent, warn at 2×").
#[derive(Debug, Clone, PartialEq)]
pub struct FdBudget {
    pub base: u64,
    pub per: u64,
    pub field: String,
    pub factor: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FdPathRule {
    pub pattern: String,
    pub max: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemoryConfig {
    pub max_rss: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FileRule {
    pub path: PathBuf,
    pub max_size: u64,
    pub action: FileAction,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RestartConfig {
    pub method: Method,
    pub label: Option<String>,
    pub unit: Option<String>,
    pub program: Option<String>,
    pub service_dir: Option<PathBuf>,
    pub command: Option<String>,
    pub start_command: Option<String>,
    pub command_timeout: Duration,
    pub stop_timeout: Duration,
    pub verify_timeout: Duration,
    pub max_restarts: u32,
    pub window: Duration,
    pub kill_orphans: bool,
    /// A signal number, validated from a name such as "USR1" or "SIGUSR1".
    pub pre_kill_signal: Option<i32>,
    /// How long a restart for a predictive reason may wait for the server to be idle.
    pub max_defer: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `None` when configured as "" (no log file).
    pub file: Option<PathBuf>,
    pub format: LogFormat,
    pub syslog: bool,
    pub max_size: u64,
    pub heartbeat: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StateConfig {
    pub dir: PathBuf,
}

/// `[metrics]` (docs/CONFIG.md): the Prometheus textfile written at the end of each
/// `check` (src/metrics.rs).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    /// `None` when configured as "" (no metrics); always a `*.prom` file name.
    pub textfile: Option<PathBuf>,
}

/// `[notify]` (docs/CONFIG.md, "[notify]"): who hears about a run, and the dead-man
/// switch. Every notifier is bounded by `timeout` inside the run's bound.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    /// Run with `/bin/sh -c`, the event JSON on stdin; `None` when configured as "".
    pub command: Option<String>,
    /// POST the event JSON here; `None` when configured as "".
    pub webhook: Option<String>,
    /// The log events that notify, each one of [`notify::EVENTS`].
    pub events: Vec<String>,
    /// GET after every completed run (`/fail` appended when it ends badly).
    pub heartbeat_url: Option<String>,
    pub timeout: Duration,
}

impl NotifyConfig {
    /// How many notifiers are configured: each may take up to `timeout` of a run.
    pub fn notifiers(&self) -> u32 {
        [&self.command, &self.webhook, &self.heartbeat_url]
            .iter()
            .filter(|n| n.is_some())
            .count() as u32
    }
}

impl Method {
    /// Every method, in the order docs/CONFIG.md lists them.
    pub const ALL: [Method; 8] = [
        Method::Auto,
        Method::Builtin,
        Method::Launchd,
        Method::Systemd,
        Method::Supervisor,
        Method::Runit,
        Method::Command,
        Method::None,
    ];

    /// The name used in the configuration file and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Auto => "auto",
            Method::Builtin => "builtin",
            Method::Launchd => "launchd",
            Method::Systemd => "systemd",
            Method::Supervisor => "supervisor",
            Method::Runit => "runit",
            Method::Command => "command",
            Method::None => "none",
        }
    }
}

impl FileAction {
    pub fn as_str(self) -> &'static str {
        match self {
            FileAction::Warn => "warn",
            FileAction::Restart => "restart",
        }
    }
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Json => "json",
            LogFormat::Text => "text",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for FileAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why no configuration could be produced. Every variant means exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value in the file is wrong; `line` and `column` are 1-based and point at it.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("cannot read config {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// A file named by `--config` or `$WATCHDOG_CONFIG` does not exist.
    #[error(
        "config file {} does not exist (named by --config or $WATCHDOG_CONFIG): create it, \
         or write a starting point with `env -u WATCHDOG_CONFIG watchdog config > {}`",
        path.display(),
        path.display()
    )]
    NotFound { path: PathBuf },
    /// A command-line override such as `--url` has a bad value.
    #[error("{flag}: {message}")]
    Flag { flag: String, message: String },
    /// A path (the key named) starts with `~` and no home directory is known.
    #[error(
        "{key} starts with ~ but the home directory is unknown (HOME is not set): \
         set HOME or write an absolute path"
    )]
    NoHome { key: &'static str },
}

/// Command-line values that override the file (docs/CONFIG.md, "Validation"). Empty
/// `pidfile` or `match_` switch that source off, as "" does in the file; `pidfile` is used
/// as given (the shell has expanded any `~`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub url: Option<String>,
    pub port: Option<u16>,
    pub pidfile: Option<PathBuf>,
    pub match_: Option<String>,
    pub max_fds: Option<u64>,
}

/// The default `health.url`: Hermes WebUI's deep health check (docs/CONFIG.md, "[health]").
pub const DEFAULT_HEALTH_URL: &str = "http://127.0.0.1:8787/health?deep=1";

/// The defaults (docs/CONFIG.md), which watch a Hermes WebUI on 127.0.0.1:8787. `home`
/// expands `~`; with `None` those paths keep their literal `~` (see the module docs).
pub fn defaults(home: Option<&Path>) -> Config {
    let path = |p: &str| raw::expand_tilde(p, home);
    Config {
        target: TargetConfig {
            pidfile: Some(path("~/.hermes/webui.pid")),
            port: None,
            match_: None,
            startup_grace: Duration::from_secs(120),
        },
        health: HealthConfig {
            // Upstream's readiness probe for watchdogs (its docs/supervisor.md): it also
            // takes the stream lock and opens state.db, and answers 503 when either fails.
            url: DEFAULT_HEALTH_URL.to_owned(),
            timeout: Duration::from_secs(5),
            attempts: 3,
            interval: Duration::from_secs(2),
            expect_status: vec![200],
            expect_body: None,
            insecure_tls: false,
            ca_file: None,
            busy_fields: vec!["active_runs".to_owned(), "active_streams".to_owned()],
        },
        fds: FdsConfig {
            max: 1000,
            max_percent: 90,
            warn_percent: 75,
            paths: vec![FdPathRule {
                pattern: "state.db".to_owned(),
                max: 200,
            }],
            trend_window: Duration::from_secs(6 * 3600),
            trend_horizon: Duration::from_secs(2 * 3600),
            trend_restart: false,
            budget: None,
        },
        memory: MemoryConfig { max_rss: None },
        files: vec![FileRule {
            path: path("~/.hermes/state.db-wal"),
            max_size: 1 << 30,
            action: FileAction::Warn,
        }],
        restart: RestartConfig {
            method: Method::Auto,
            label: None,
            unit: None,
            program: None,
            service_dir: None,
            command: None,
            start_command: None,
            command_timeout: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(10),
            verify_timeout: Duration::from_secs(60),
            max_restarts: 3,
            window: Duration::from_secs(3600),
            kill_orphans: true,
            pre_kill_signal: None,
            max_defer: Duration::from_secs(30 * 60),
        },
        log: LogConfig {
            file: Some(path("~/.local/state/watchdog/watchdog.log")),
            format: LogFormat::Json,
            syslog: false,
            max_size: 10 << 20,
            heartbeat: false,
        },
        state: StateConfig {
            dir: path("~/.local/state/watchdog"),
        },
        metrics: MetricsConfig { textfile: None },
        notify: NotifyConfig {
            command: None,
            webhook: None,
            events: notify::DEFAULT_EVENTS
                .iter()
                .map(|e| (*e).to_owned())
                .collect(),
            heartbeat_url: None,
            timeout: Duration::from_secs(5),
        },
    }
}

impl Config {
    /// Parses and validates a configuration file's text. Missing keys keep their
    /// defaults; a `[[fds.paths]]` or `[[files]]` list in the file replaces the default
    /// list (`files = []` removes it). `origin` is only used in error messages.
    pub fn from_toml_str(
        text: &str,
        origin: &Path,
        home: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| toml_error(&e, text, origin))?;
        let mut cfg = defaults(home);
        raw.overlay(&mut cfg, home)
            .map_err(|e| invalid(text, origin, Some(e.span), e.message))?;
        Ok(cfg)
    }

    /// Applies command-line overrides with the same checks as the file. `--url` moves
    /// the effective port with it unless `target.port` is set.
    pub fn apply(&mut self, o: &Overrides) -> Result<(), ConfigError> {
        let flag = |flag: &str, message: String| ConfigError::Flag {
            flag: flag.to_owned(),
            message,
        };
        if let Some(url) = &o.url {
            url::parse_http_url(url).map_err(|m| flag("--url", m))?;
            self.health.url = url.clone();
        }
        if let Some(port) = o.port {
            if port == 0 {
                return Err(flag(
                    "--port",
                    "expected a TCP port from 1 to 65535, found 0".to_owned(),
                ));
            }
            self.target.port = Some(port);
        }
        if let Some(max) = o.max_fds {
            if max == 0 {
                return Err(flag(
                    "--max-fds",
                    "expected a number of file descriptors, at least 1, found 0".to_owned(),
                ));
            }
            self.fds.max = max;
        }
        if let Some(pidfile) = &o.pidfile {
            self.target.pidfile = (!pidfile.as_os_str().is_empty()).then(|| pidfile.clone());
        }
        if let Some(text) = &o.match_ {
            self.target.match_ = (!text.is_empty()).then(|| text.clone());
        }
        Ok(())
    }

    /// The TCP port the target listens on: `target.port`, else the port of
    /// `health.url` (80, or 443 for https, when it names none). `None` only if `health.url` was changed
    /// to something invalid after validation.
    pub fn port(&self) -> Option<u16> {
        self.target
            .port
            .or_else(|| self.health_url_parts().ok().map(|u| u.port))
    }

    /// `health.url` split into host, port and path.
    pub fn health_url_parts(&self) -> Result<HttpUrl, String> {
        url::parse_http_url(&self.health.url)
    }

    /// The effective configuration as TOML, every key present; reading it back with
    /// `from_toml_str` gives an equal `Config`.
    pub fn to_toml(&self) -> String {
        render::to_toml(self)
    }

    /// The first key whose path still starts with `~` (no home directory was known).
    pub fn unexpanded_tilde(&self) -> Option<&'static str> {
        let tilde = |p: &Path| p.starts_with("~");
        let opt = |p: &Option<PathBuf>| p.as_deref().is_some_and(tilde);
        [
            ("target.pidfile", opt(&self.target.pidfile)),
            ("health.ca_file", opt(&self.health.ca_file)),
            ("files.path", self.files.iter().any(|f| tilde(&f.path))),
            ("restart.service_dir", opt(&self.restart.service_dir)),
            ("log.file", opt(&self.log.file)),
            ("state.dir", tilde(&self.state.dir)),
            ("metrics.textfile", opt(&self.metrics.textfile)),
        ]
        .into_iter()
        .find_map(|(key, unexpanded)| unexpanded.then_some(key))
    }
}

/// A toml error as `Invalid`, prefixed with the dotted key it concerns.
fn toml_error(err: &toml::de::Error, text: &str, origin: &Path) -> ConfigError {
    let message = err.message().trim_end();
    let message = match key_path(err) {
        Some(key) => format!("{key}: {message}"),
        None => message.to_owned(),
    };
    invalid(text, origin, err.span(), message)
}

/// The dotted key path of a toml error. The crate keeps it private but prints it as
/// "in `a.b`" when the error has no input attached, so that is where it is read from.
fn key_path(err: &toml::de::Error) -> Option<String> {
    let mut bare = err.clone();
    bare.set_input(None);
    bare.to_string()
        .lines()
        .rev()
        .find_map(|l| Some(l.strip_prefix("in `")?.strip_suffix('`')?.to_owned()))
}

fn invalid(text: &str, origin: &Path, span: Option<Range<usize>>, message: String) -> ConfigError {
    // No span happens only for errors about the document as a whole.
    let (line, column) = span.map_or((1, 1), |s| line_column(text, s.start));
    ConfigError::Invalid {
        path: origin.to_path_buf(),
        line,
        column,
        message,
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}
