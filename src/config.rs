//! The configuration file (SPEC §4): lookup order, defaults, validation with
//! file:line:column, and the effective configuration printed back as TOML.
//!
//! Every value is checked while it is deserialized, so an error carries the span of
//! the offending value and the expected form.

use std::path::PathBuf;
use std::time::Duration;

/// How a restart is carried out (SPEC §5.5).
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileAction {
    Warn,
    Restart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

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
    pub insecure_tls: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FdsConfig {
    pub max: u64,
    pub max_percent: u8,
    pub warn_percent: u8,
    pub paths: Vec<FdPathRule>,
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
